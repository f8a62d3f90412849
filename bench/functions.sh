#!/usr/bin/env bash
# Edge functions: the SDK's hello example served by the edge node, beside `wasmtime serve`
# running the same component, in the same run.
#
# Both servers instantiate the component afresh for every request (the node from its
# pre-instantiated template with the pooling allocator; `wasmtime serve` reuses no instance for a
# WASIp2 component). Each runs pinned to CPU 0 in turn; wrk and nothing else runs on CPU 1.
# Figures per server: requests/s, and the server's CPU time per request (its utime + stime from
# /proc over the measured run, divided by the requests wrk completed). Then microseconds per
# instantiation, from the edge node's own ignored bench test. The table goes to stdout, progress
# to stderr; every process started here is stopped on exit and its temp dir removed.
#
# Environment:
#   EDGE_NODE_BIN      edge-node binary; unset: `cargo build --release -p edge-node`
#   WASMTIME_BIN       wasmtime CLI, version 48.0.8 like the node's wasmtime; unset: `wasmtime`
#                      on the PATH, else /work/tools/wasmtime/bin/wasmtime. Install it with
#                      `cargo install --locked wasmtime-cli --version 48.0.8 --root DIR`.
#   HELLO_WASM         the component; unset: `cargo build --release -p outpost-sdk --example
#                      hello --target wasm32-wasip2`
#   BENCH_DURATION     measured time per case (Ns or Nm). Default: 5s
#   BENCH_WARMUP       unmeasured wrk run per server before the rounds (0 skips it). Default: 2s
#   BENCH_ROUNDS       rounds; the table shows the median, the order alternates; the target is
#                      read from the median of the rounds' own ratios. Default: 10
#   BENCH_CONNECTIONS  wrk connections (one wrk thread). Default: 32
#   BENCH_INSTANTIATION  1 runs the instantiation bench test (a release build of edge-node's
#                      tests); 0 skips it. Default: 1
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-2s}
ROUNDS=${BENCH_ROUNDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
INSTANTIATION=${BENCH_INSTANTIATION:-1}
WASMTIME_VERSION=48.0.8
SERVER_CPU=0
LOAD_CPU=1
HOST=bench.test
SERVERS=(edge-node wasmtime-serve)

BENCH_NAME=functions
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_settings() {
    [[ "$DURATION" =~ ^[1-9][0-9]*[sm]?$ ]] || die "BENCH_DURATION=$DURATION: write e.g. 10s or 1m"
    [[ "$WARMUP" =~ ^[0-9]+[sm]?$ ]] || die "BENCH_WARMUP=$WARMUP: write e.g. 2s, or 0 to skip"
    [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$ROUNDS: a whole number, at least 1"
    [[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS=$CONNECTIONS: a whole number, at least 1"
    [[ "$INSTANTIATION" =~ ^[01]$ ]] || die "BENCH_INSTANTIATION=$INSTANTIATION: 0 or 1"
    taskset -c "$LOAD_CPU" true 2>/dev/null ||
        die "needs CPUs $SERVER_CPU and $LOAD_CPU (a server on one, wrk on the other); this machine has $(nproc)"
    local tool
    for tool in taskset curl wrk; do
        command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install $tool)"
    done
}

find_wasmtime() {
    WASMTIME=${WASMTIME_BIN:-$(command -v wasmtime || echo /work/tools/wasmtime/bin/wasmtime)}
    [[ -x "$WASMTIME" ]] || die "no wasmtime CLI at $WASMTIME; install it with" \
        "\`cargo install --locked wasmtime-cli --version $WASMTIME_VERSION --root DIR\` and set WASMTIME_BIN"
    local v
    v=$("$WASMTIME" --version | awk '{ print $2 }')
    [[ "$v" == "$WASMTIME_VERSION" ]] ||
        die "$WASMTIME is wasmtime $v; the node runs wasmtime $WASMTIME_VERSION, compare like with like"
}

build() {
    if [[ -n "${EDGE_NODE_BIN:-}" ]]; then
        EDGE=$EDGE_NODE_BIN
    else
        log "building edge-node (cargo build --release -p edge-node)"
        (cd "$ROOT" && cargo build --release -p edge-node --bin edge-node) >&2
        EDGE="${CARGO_TARGET_DIR:-$ROOT/target}/release/edge-node"
    fi
    if [[ -n "${HELLO_WASM:-}" ]]; then
        WASM=$HELLO_WASM
    else
        log "building the hello example (cargo build --release -p outpost-sdk --example hello --target wasm32-wasip2)"
        (cd "$ROOT" && cargo build --release -p outpost-sdk --example hello --target wasm32-wasip2) >&2
        WASM="${CARGO_TARGET_DIR:-$ROOT/target}/wasm32-wasip2/release/examples/hello.wasm"
    fi
    [[ -x "$EDGE" ]] || die "no edge-node binary at $EDGE"
    [[ -s "$WASM" ]] || die "no component at $WASM"
    # The node resolves a relative path against its config file's directory (the temp dir).
    WASM=$(realpath "$WASM")
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_edge() {
    local dir="$WORK/edge"
    mkdir -p "$dir/cache"
    # The origin is never asked: hello answers every request itself.
    cat >"$dir/edge.toml" <<EOF
[node]
name = "bench-edge"

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "bench-admin-token-0123456789"   # the admin listener needs a token (README: Admin listener)

[cache]
memory = "64MiB"
disk_path = "$dir/cache"
disk = "256MiB"

[log]
access = "off"
level = "warn"

[functions]
cache_dir = "$dir/functions"

[[services]]
name = "bench"
hosts = ["$HOST"]
origin = "http://127.0.0.1:9"

[services.function]
wasm = "$WASM"
EOF
    taskset -c "$SERVER_CPU" "$EDGE" --config "$dir/edge.toml" --ready-file "$dir/ready.json" \
        </dev/null >/dev/null 2>>"$WORK/logs/edge-node.stderr" &
    EDGE_PID=$!
    PIDS+=("$EDGE_PID")
    wait_file "$dir/ready.json" "$EDGE_PID" edge-node
    EDGE_HTTP=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$dir/ready.json")
    [[ -n "$EDGE_HTTP" ]] || die "ready file unreadable: $(cat "$dir/ready.json")"
    EDGE_PORT=${EDGE_HTTP##*:}
}

start_wasmtime() {
    WASMTIME_PORT=$(free_port)
    # `-S cli`: link wasi:cli as the node does (Rust's std imports wasi:cli/environment);
    # defaults otherwise, as a user would run it. It compiles the component at start-up.
    taskset -c "$SERVER_CPU" "$WASMTIME" serve -S cli --addr "127.0.0.1:$WASMTIME_PORT" "$WASM" \
        </dev/null >/dev/null 2>>"$WORK/logs/wasmtime.stderr" &
    WASMTIME_PID=$!
    PIDS+=("$WASMTIME_PID")
    for _ in $(seq 600); do
        curl -s -o /dev/null "http://127.0.0.1:$WASMTIME_PORT/" && return
        kill -0 "$WASMTIME_PID" 2>/dev/null || die "wasmtime serve exited during start-up"
        sleep 0.1
    done
    die "wasmtime serve did not answer within 60s"
}

port_of() { [[ $1 == edge-node ]] && echo "$EDGE_PORT" || echo "$WASMTIME_PORT"; }
pid_of() { [[ $1 == edge-node ]] && echo "$EDGE_PID" || echo "$WASMTIME_PID"; }

# Both must answer the same: 200 and the hello body.
check_answer() { # server
    local body
    body=$(curl -sS -H "Host: $HOST" "http://127.0.0.1:$(port_of "$1")/") || die "$1: GET / failed"
    [[ "$body" == "hello from "* ]] || die "$1: GET / answered '$body', not hello's body"
    log "$1 answers: $body"
}

# CPU time the process has used, user + system, in clock ticks (all threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run_wrk() { # server duration outfile
    local secs
    secs=$(seconds "$2")
    timeout --kill-after=5 $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"$2" --latency -H "Host: $HOST" \
        "http://127.0.0.1:$(port_of "$1")/" >"$3" 2>&1 || die "wrk against $1 failed: $(cat "$3")"
}

declare -A RPS CPU P50 NOTE

# shellcheck disable=SC2034 # P50 is read through the nameref in figure().
measure() { # server round
    local out="$WORK/wrk-$1-$2.txt" pid before after requests rps p50 non2xx sockerr
    pid=$(pid_of "$1")
    before=$(cpu_ticks "$pid")
    run_wrk "$1" "$DURATION" "$out"
    after=$(cpu_ticks "$pid")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    requests=$(awk '/ requests in / { print $1 }' "$out")
    p50=$(awk '$1 == "50%" { print $2 }' "$out")
    [[ -n "$rps" && -n "$requests" && -n "$p50" ]] || die "could not read wrk's output: $(cat "$out")"
    RPS[$1,$2]=$rps
    P50[$1,$2]=$(to_ms "$p50") || die "unknown latency unit in '$p50'"
    CPU[$1,$2]=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
        'BEGIN { printf "%.1f\n", (n > 0) ? t / hz * 1e6 / n : 0 }')
    non2xx=$(awk '/^ *Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sockerr=$(awk '/^ *Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out")
    [[ -n "$non2xx" ]] && NOTE[$1]+=" round $2: $non2xx non-2xx responses;"
    [[ -n "$sockerr" ]] && NOTE[$1]+=" round $2: socket errors ($sockerr);"
    log "$(printf 'round %d  %-15s %10s req/s  %8s us CPU/request  p50 %s' "$2" "$1" "$rps" "${CPU[$1,$2]}" "$p50")"
}

figure() { # array-name server
    local -n arr=$1
    local r vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("${arr[$2,$r]}"); done
    median "${vals[@]}"
}

# edge-node's ignored bench test: prints `instantiation_us N` (a fresh instance from the
# template) and `request_us N` (a whole request into the node in process, one connection).
instantiation() {
    local out="$WORK/instantiation.txt"
    log "instantiation: cargo test --release -p edge-node --lib -- --ignored --exact $INST_TEST"
    # Not pinned: cargo builds the test first; the test's runtime has its own two workers.
    if (cd "$ROOT" && OUTPOST_BENCH_WASM="$WASM" \
        cargo test --release -p edge-node --lib -- --ignored --exact "$INST_TEST" --nocapture) >"$out" 2>&1; then
        local inst req
        inst=$(awk '/^instantiation_us / { print $2 }' "$out")
        req=$(awk '/^request_us / { print $2 }' "$out")
        if [[ -n "$inst" ]]; then
            INST_LINE="$inst us per instantiation; $req us per whole request in process (one connection)"
        else
            INST_LINE="no figure in the test's output: $(tail -5 "$out" | tr '\n' ' ')"
        fi
    else
        INST_LINE="failed: $(tail -5 "$out" | tr '\n' ' ')"
    fi
}
INST_TEST=${BENCH_INSTANTIATION_TEST:-function::tests::bench_instantiation_and_request}

report() {
    local rps_e rps_w cpu_e cpu_w p50_e p50_w s r line
    echo "Outpost edge functions: hello through edge-node vs wasmtime serve ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "  machine:   $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    echo "  edge-node: $EDGE_REV ($EDGE)"
    echo "  wasmtime:  $("$WASMTIME" --version) serve -S cli, otherwise default options ($WASMTIME)"
    echo "  component: $WASM ($(stat -c %s "$WASM") bytes), the SDK's hello example"
    echo "  load:      wrk -t1 -c$CONNECTIONS -d$DURATION --latency, HTTP/1.1 keep-alive, GET /, Host: $HOST;"
    echo "             ${WARMUP} wrk warm-up per server, then $ROUNDS round(s), order alternating; figures are the median"
    echo "  pinning:   each server on CPU $SERVER_CPU (taskset), wrk on CPU $LOAD_CPU; CPU/request is the server's"
    echo "             utime+stime over the run divided by the requests completed"
    echo
    printf '%-16s %12s %16s %10s\n' server "req/s" "CPU us/request" "p50 ms"
    rps_e=$(figure RPS edge-node) rps_w=$(figure RPS wasmtime-serve)
    cpu_e=$(figure CPU edge-node) cpu_w=$(figure CPU wasmtime-serve)
    p50_e=$(figure P50 edge-node) p50_w=$(figure P50 wasmtime-serve)
    printf '%-16s %12.0f %16.1f %10.3f\n' edge-node "$rps_e" "$cpu_e" "$p50_e"
    printf '%-16s %12.0f %16.1f %10.3f\n' "wasmtime serve" "$rps_w" "$cpu_w" "$p50_w"
    printf '%-16s %12s %16s %10s\n' "node/wasmtime" "$(ratio "$rps_e" "$rps_w")" "$(ratio "$cpu_e" "$cpu_w")" \
        "$(ratio "$p50_e" "$p50_w")"
    echo
    echo "ratio = edge-node / wasmtime serve: req/s above 1.00x means the node served more (target: 2.00x,"
    echo "read from the median of the rounds' own ratios below); CPU/request and p50 below 1.00x mean"
    echo "the node spent less. Compare within this run only."
    if ((ROUNDS > 1)); then
        echo
        echo "req/s per round:"
        for s in "${SERVERS[@]}"; do
            line=""
            for ((r = 1; r <= ROUNDS; r++)); do line+=$(printf ' %10.0f' "${RPS[$s,$r]}"); done
            printf '  %-16s%s\n' "$s" "$line"
        done
        # A round's two runs are back to back, so a change in the machine's load between rounds
        # moves both: the median of the rounds' own ratios is the steadier figure.
        local paired=()
        line=""
        for ((r = 1; r <= ROUNDS; r++)); do
            paired+=("$(awk -v a="${RPS[edge-node,$r]}" -v b="${RPS[wasmtime-serve,$r]}" \
                'BEGIN { printf "%.3f\n", (b > 0) ? a / b : 0 }')")
            line+=$(printf ' %9.2fx' "${paired[-1]}")
        done
        printf '  %-16s%s   median %.2fx\n' "node/wasmtime" "$line" "$(median "${paired[@]}")"
    fi
    if ((INSTANTIATION)); then
        echo
        echo "instantiation (edge-node's $INST_TEST, release): $INST_LINE"
    fi
    local warned=""
    for s in "${SERVERS[@]}"; do
        if [[ -n "${NOTE[$s]:-}" ]]; then
            [[ -z "$warned" ]] && printf '\nwarnings:\n' && warned=1
            echo "  $s:${NOTE[$s]}"
        fi
    done
}

main() {
    check_settings
    find_wasmtime
    build
    CLK_TCK=$(getconf CLK_TCK)
    EDGE_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "unknown revision")
    [[ -n "${EDGE_NODE_BIN:-}" ]] && EDGE_REV="given by EDGE_NODE_BIN; tree at $EDGE_REV"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/outpost-functions.XXXXXX")
    mkdir -p "$WORK/logs"

    start_edge
    start_wasmtime
    log "edge-node $EDGE_HTTP, wasmtime serve 127.0.0.1:$WASMTIME_PORT"
    check_answer edge-node
    check_answer wasmtime-serve

    local s r order
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    if [[ "$(seconds "$WARMUP")" != 0 ]]; then
        log "wrk warm-up, $WARMUP per server"
        for s in "${SERVERS[@]}"; do run_wrk "$s" "$WARMUP" "$WORK/wrk-warmup.txt"; done
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then order=(edge-node wasmtime-serve); else order=(wasmtime-serve edge-node); fi
        for s in "${order[@]}"; do measure "$s" "$r"; done
    done
    ((INSTANTIATION)) && instantiation
    report
}

main "$@"
