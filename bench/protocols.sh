#!/usr/bin/env bash
# Cache hits over HTTP/3 beside HTTP/2 and HTTP/1.1, from one edge node in the same run.
#
# One edge node listens for HTTPS (HTTP/1.1 and HTTP/2 by ALPN) and HTTP/3 on the same port
# number (TCP and UDP), in front of a small origin on loopback. Once a 1 KiB and a 100 KiB object
# are hits, one load generator, outpost-load (tests/src/bin/outpost-load.rs), drives the node
# with each protocol in turn: the same client code, timing and histogram for all three. The node
# runs on CPU 0, outpost-load and the origin on CPU 1. The table goes to stdout; progress goes
# to stderr. Nothing is written outside a temp dir, which is removed on exit with every process
# started here.
#
# Environment:
#   EDGE_NODE_BIN          edge-node binary; unset: `cargo build --release -p edge-node`
#   OUTPOST_LOAD_BIN       outpost-load binary; unset: `cargo build --release -p outpost-tests`
#   BENCH_DURATION         measured time per case (Ns or Nm). Default: 10s
#   BENCH_WARMUP           unmeasured time at the start of each case, on the same connections
#                          (0 skips it). Default: 2s
#   BENCH_ROUNDS           rounds; the table shows the median, the order rotates. Default: 3
#   BENCH_CONCURRENCY      requests in flight, for every protocol. Default: 32
#   BENCH_MUX_CONNECTIONS  HTTP/2 and HTTP/3 connections; each carries CONCURRENCY / this many
#                          concurrent streams. HTTP/1.1 uses CONCURRENCY connections. Default: 4
#
# The report explains its columns and ratios below the table.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
ROUNDS=${BENCH_ROUNDS:-3}
CONCURRENCY=${BENCH_CONCURRENCY:-32}
MUX_CONNECTIONS=${BENCH_MUX_CONNECTIONS:-4}
SERVER_CPU=0
LOAD_CPU=1
HOST=bench.test
# name:bytes
OBJECTS=(1KiB:1024 100KiB:102400)
PROTOS=(h1 h2 h3)

BENCH_NAME=protocols
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_settings() {
    [[ "$DURATION" =~ ^[1-9][0-9]*[sm]?$ ]] || die "BENCH_DURATION=$DURATION: write e.g. 10s or 1m"
    [[ "$WARMUP" =~ ^[0-9]+[sm]?$ ]] || die "BENCH_WARMUP=$WARMUP: write e.g. 2s, or 0 to skip"
    [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$ROUNDS: a whole number, at least 1"
    if ! [[ "$CONCURRENCY" =~ ^[1-9][0-9]*$ ]] || ((CONCURRENCY > 1000)); then
        die "BENCH_CONCURRENCY=$CONCURRENCY: a whole number from 1 to 1000"
    fi
    if ! [[ "$MUX_CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || ((CONCURRENCY % MUX_CONNECTIONS != 0)); then
        die "BENCH_MUX_CONNECTIONS=$MUX_CONNECTIONS: a whole number that divides BENCH_CONCURRENCY=$CONCURRENCY"
    fi
    STREAMS=$((CONCURRENCY / MUX_CONNECTIONS))
    # The node's default limits.max_concurrent_streams (HTTP/2 and HTTP/3) is 100.
    ((STREAMS <= 100)) || die "$STREAMS streams per connection: above the node's default limit of 100"
    taskset -c "$LOAD_CPU" true 2>/dev/null ||
        die "needs CPUs $SERVER_CPU and $LOAD_CPU (the node on one, the load on the other); this machine has $(nproc)"
    local tool
    for tool in taskset curl python3; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
}

# One binary of the workspace in release mode, unless the given variable names one.
build() { # package bin override
    local target=${CARGO_TARGET_DIR:-target}
    if [[ -n "$3" ]]; then
        echo "$3"
        return
    fi
    log "building $2 (cargo build --release -p $1 --bin $2)"
    (cd "$ROOT" && cargo build --release -p "$1" --bin "$2") >&2
    [[ "$target" == /* ]] || target="$ROOT/$target"
    echo "$target/release/$2"
}

# counting_origin.py, with a body of each object's size instead of its fixed 2048 bytes: the
# handler looks body_for up in the module at each request, so replacing it there is enough.
# shellcheck disable=SC2016 # Python source, not shell.
ORIGIN_PY='
import sys
bench_dir, port_file, objects = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, bench_dir)
import counting_origin as origin

sizes = {"/%s.bin" % o.split(":")[0]: int(o.split(":")[1]) for o in objects}
fixed_size_body = origin.body_for

def body_for(path):
    body = fixed_size_body(path)
    n = sizes.get(path, len(body))
    return (body * (n // len(body) + 1))[:n]

origin.body_for = body_for
sys.argv = ["counting_origin.py", "--port-file", port_file]
origin.main()
'

start_origin() {
    taskset -c "$LOAD_CPU" python3 -c "$ORIGIN_PY" "$BENCH_DIR" "$WORK/origin.port" "${OBJECTS[@]}" \
        </dev/null >/dev/null 2>>"$WORK/logs/origin.stderr" &
    PIDS+=("$!")
    wait_file "$WORK/origin.port" "$!" origin
    ORIGIN_PORT=$(cat "$WORK/origin.port")
}

start_edge() {
    local dir="$WORK/edge"
    mkdir -p "$dir/cache"
    "$LOAD" certs --dir "$WORK/tls" --host "$HOST"
    cat >"$dir/edge.toml" <<EOF
[node]
name = "bench-edge"

[listen]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "bench-admin-token-0123456789"   # the admin listener needs a token (README: Admin listener)
http3 = true

[[tls.certificates]]
hosts = ["$HOST"]
cert = "$WORK/tls/cert.pem"
key = "$WORK/tls/key.pem"

[cache]
memory = "256MiB"
disk_path = "$dir/cache"
disk = "1GiB"
max_object_size = "64MiB"

[log]
access = "off"
level = "warn"

[[services]]
name = "bench"
hosts = ["$HOST"]
origin = "http://127.0.0.1:$ORIGIN_PORT"
EOF
    taskset -c "$SERVER_CPU" "$EDGE" --config "$dir/edge.toml" --ready-file "$dir/ready.json" \
        </dev/null >/dev/null 2>>"$WORK/logs/edge-node.stderr" &
    EDGE_PID=$!
    PIDS+=("$EDGE_PID")
    wait_file "$dir/ready.json" "$EDGE_PID" edge-node
    EDGE_HTTPS=$(sed -n 's/.*"https":"\([^"]*\)".*/\1/p' "$dir/ready.json")
    EDGE_ADMIN=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$dir/ready.json")
    [[ -n "$EDGE_HTTPS" && -n "$EDGE_ADMIN" ]] || die "ready file unreadable: $(cat "$dir/ready.json")"
    EDGE_PORT=${EDGE_HTTPS##*:}
}

# The edge node's threads by name, and the CPUs they may run on (as in hit-path.sh).
edge_threads() {
    local names cpus
    names=$(cat /proc/"$EDGE_PID"/task/*/comm 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s x%d", sep, $2, $1; sep = ", " }')
    cpus=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/"$EDGE_PID"/task/*/status 2>/dev/null | sort -u | paste -sd' ')
    echo "$names; allowed CPUs: $cpus"
}

# One GET over HTTPS (curl); prints "status bytes cache-verdict" where the verdict is hit or other.
probe() { # path
    local headers="$WORK/probe.headers" out verdict=other
    out=$(curl -sS -o /dev/null -D "$headers" -w '%{http_code} %{size_download}' --cacert "$WORK/tls/ca.pem" \
        --resolve "$HOST:$EDGE_PORT:127.0.0.1" "https://$HOST:$EDGE_PORT$1") || die "GET $1 failed"
    # Contract (docs/contracts.md): a fresh hit is `bench-edge; hit; ttl=N`.
    grep -qiE '^cache-status: *bench-edge; *hit(;|[[:space:]]*$)' "$headers" && verdict=hit
    echo "$out $verdict"
}

# Fill the cache; the second and third requests for each object must be hits with the whole body.
warm() {
    local obj name bytes got
    for obj in "${OBJECTS[@]}"; do
        name=${obj%%:*} bytes=${obj##*:}
        probe "/$name.bin" >/dev/null
        for i in 2 3; do
            got=$(probe "/$name.bin")
            [[ "$got" == "200 $bytes hit" ]] || die "request $i for /$name.bin: expected '200 $bytes hit', got '$got'"
        done
    done
    log "edge-node warmed: request 2 and 3 for each object were hits"
}

# Requests the edge node answered other than as a hit, from its own metrics.
edge_non_hits() {
    curl -sS -H "Authorization: Bearer bench-admin-token-0123456789" "http://$EDGE_ADMIN/metrics" |
        awk '/^outpost_requests_total\{/ && !/cache="hit"/ { s += $NF } END { printf "%d\n", s }'
}

# A number from outpost-load's one-line JSON report.
field() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" "$1"; }

load_args() { # proto
    if [[ $1 == h1 ]]; then
        echo "--connections $CONCURRENCY --streams-per-connection 1"
    else
        echo "--connections $MUX_CONNECTIONS --streams-per-connection $STREAMS"
    fi
}

declare -A RPS P50 P99 CPU_REQ NODE_UTIL CLIENT_UTIL NOTE

# shellcheck disable=SC2034 # The arrays are read through the nameref in figure().
measure() { # proto object bytes round
    local out="$WORK/load-$1-$2-$4.json" before after secs requests errors node client
    secs=$(seconds "$DURATION")
    before=$(edge_non_hits)
    # shellcheck disable=SC2046 # load_args is a list of words.
    timeout --kill-after=5 $((secs + $(seconds "$WARMUP") + 60)) taskset -c "$LOAD_CPU" \
        "$LOAD" --proto "$1" --addr "$EDGE_HTTPS" --host "$HOST" --path "/$2.bin" --ca "$WORK/tls/ca.pem" \
        $(load_args "$1") --duration "$DURATION" --warmup "$WARMUP" --expect-bytes "$3" \
        --server-pid "$EDGE_PID" >"$out" 2>>"$WORK/logs/outpost-load.stderr" ||
        die "outpost-load $1 /$2.bin failed: $(tail -n 3 "$WORK/logs/outpost-load.stderr")"
    requests=$(field "$out" requests) errors=$(field "$out" errors)
    node=$(field "$out" server_cpu_s) client=$(field "$out" client_cpu_s)
    [[ -n "$requests" && -n "$errors" && -n "$node" ]] || die "could not read outpost-load's report: $(cat "$out")"
    ((requests > 0)) || die "outpost-load $1 /$2.bin: no successful request: $(cat "$out")"
    RPS[$1,$2,$4]=$(field "$out" rps)
    P50[$1,$2,$4]=$(awk -v v="$(field "$out" p50_us)" 'BEGIN { printf "%.3f\n", v / 1000 }')
    P99[$1,$2,$4]=$(awk -v v="$(field "$out" p99_us)" 'BEGIN { printf "%.3f\n", v / 1000 }')
    CPU_REQ[$1,$2,$4]=$(awk -v c="$node" -v n="$requests" 'BEGIN { printf "%.2f\n", c * 1e6 / n }')
    NODE_UTIL[$1,$2,$4]=$(awk -v c="$node" -v s="$secs" 'BEGIN { printf "%.1f\n", c * 100 / s }')
    CLIENT_UTIL[$1,$2,$4]=$(awk -v c="$client" -v s="$secs" 'BEGIN { printf "%.1f\n", c * 100 / s }')
    ((errors == 0)) || NOTE[$1,$2]+=" round $4: $errors errors ($(sed -n 's/.*"first_error":\("[^"]*"\).*/\1/p' "$out"));"
    # Every request of the run (warm-up included) must have been a hit.
    after=$(edge_non_hits)
    ((after - before == 0)) || NOTE[$1,$2]+=" round $4: $((after - before)) non-hit responses;"
    log "$(printf 'round %d  %-3s %-7s %10s req/s  p50 %s ms  p99 %s ms  node %s us/req, %s%% CPU; client %s%% CPU' \
        "$4" "$1" "$2" "${RPS[$1,$2,$4]}" "${P50[$1,$2,$4]}" "${P99[$1,$2,$4]}" "${CPU_REQ[$1,$2,$4]}" \
        "${NODE_UTIL[$1,$2,$4]}" "${CLIENT_UTIL[$1,$2,$4]}")"
}

figure() { # array-name proto object
    local -n arr=$1
    local r vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("${arr[$2,$3,$r]}"); done
    median "${vals[@]}"
}

row() { # object proto
    printf '%-8s %-6s %10.0f %9.3f %9.3f %11.2f %9.1f%% %9.1f%%\n' "$1" "$2" \
        "$(figure RPS "$2" "$1")" "$(figure P50 "$2" "$1")" "$(figure P99 "$2" "$1")" \
        "$(figure CPU_REQ "$2" "$1")" "$(figure NODE_UTIL "$2" "$1")" "$(figure CLIENT_UTIL "$2" "$1")"
}

ratio_row() { # object proto peer
    local c out=()
    for c in RPS P50 P99 CPU_REQ; do out+=("$(ratio "$(figure "$c" "$2" "$1")" "$(figure "$c" "$3" "$1")")"); done
    printf '%-8s %-6s %10s %9s %9s %11s\n' "$1" "$2/$3" "${out[@]}"
}

report() {
    local obj name p r line
    echo "Outpost edge-node cache hits over HTTP/1.1, HTTP/2 and HTTP/3 ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "  machine:   $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    echo "  edge-node: $EDGE_REV ($EDGE); TLS 1.3 for all three (rustls, ring), HTTP/3 by quinn + h3"
    echo "  load:      outpost-load, one thread, closed loop, $CONCURRENCY requests in flight for each protocol:"
    echo "             h1 $CONCURRENCY connections x 1; h2 and h3 $MUX_CONNECTIONS connections x $STREAMS streams. Bodies read whole;"
    echo "             $WARMUP warm-up then $DURATION measured per case, $ROUNDS round(s), order rotating; figures are the median"
    echo "  pinning:   edge-node on CPU $SERVER_CPU (taskset), outpost-load and the origin on CPU $LOAD_CPU."
    echo "             edge-node threads now: $(edge_threads)"
    echo
    printf '%-8s %-6s %10s %9s %9s %11s %10s %10s\n' object proto "req/s" "p50 ms" "p99 ms" "node us/req" "node CPU" "load CPU"
    for obj in "${OBJECTS[@]}"; do
        name=${obj%%:*}
        for p in "${PROTOS[@]}"; do row "$name" "$p"; done
        ratio_row "$name" h3 h2
        ratio_row "$name" h3 h1
    done
    echo
    echo "node us/req: the node's CPU time (user + system, from /proc/<pid>/stat) over the measured"
    echo "window divided by the requests in it. node CPU / load CPU: share of one core used over the"
    echo "window; near 100% the node (or the load generator) is the limit, and req/s says which."
    echo "Ratios: req/s above 1.00x means h3 served more; p50, p99 and us/req below 1.00x mean h3 was"
    echo "faster or cheaper. Compare within this run only."
    if ((ROUNDS > 1)); then
        echo
        echo "req/s per round:"
        for obj in "${OBJECTS[@]}"; do
            name=${obj%%:*}
            for p in "${PROTOS[@]}"; do
                line=""
                for ((r = 1; r <= ROUNDS; r++)); do line+=$(printf ' %10.0f' "${RPS[$p,$name,$r]}"); done
                printf '  %-8s %-6s%s\n' "$name" "$p" "$line"
            done
        done
    fi
    local warned=""
    for obj in "${OBJECTS[@]}"; do
        for p in "${PROTOS[@]}"; do
            if [[ -n "${NOTE[$p,${obj%%:*}]:-}" ]]; then
                if [[ -z "$warned" ]]; then
                    printf '\nwarnings:\n'
                    warned=1
                fi
                echo "  $p ${obj%%:*}:${NOTE[$p,${obj%%:*}]}"
            fi
        done
    done
}

main() {
    check_settings
    EDGE=$(build edge-node edge-node "${EDGE_NODE_BIN:-}")
    LOAD=$(build outpost-tests outpost-load "${OUTPOST_LOAD_BIN:-}")
    [[ -x "$EDGE" ]] || die "edge-node binary not found or not executable: $EDGE"
    [[ -x "$LOAD" ]] || die "outpost-load binary not found or not executable: $LOAD"
    EDGE_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "unknown revision")
    [[ -n "${EDGE_NODE_BIN:-}" ]] && EDGE_REV="given by EDGE_NODE_BIN; tree at $EDGE_REV"

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/outpost-protocols.XXXXXX")
    mkdir -p "$WORK/logs"
    start_origin
    start_edge
    log "origin 127.0.0.1:$ORIGIN_PORT, edge-node https and h3 $EDGE_HTTPS (admin $EDGE_ADMIN)"
    warm

    local obj p r i order
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    for ((r = 1; r <= ROUNDS; r++)); do
        # h1 h2 h3, then h2 h3 h1, then h3 h1 h2: each protocol takes each place in turn.
        order=()
        for i in 0 1 2; do order+=("${PROTOS[(r - 1 + i) % 3]}"); done
        for obj in "${OBJECTS[@]}"; do
            for p in "${order[@]}"; do
                measure "$p" "${obj%%:*}" "${obj##*:}" "$r"
            done
        done
    done
    report
}

main "$@"
