#!/usr/bin/env bash
# The cache-HIT path of the edge node against nginx with proxy_cache, measured in the same run.
#
# Both servers sit in front of one static origin on loopback, are warmed until each object is a
# hit, then wrk drives each (HTTP/1.1 keep-alive) at a 1 KiB and a 100 KiB object. Each server
# runs twice: with its access log off, and on (nginx's default `access_log`, combined, to a
# file; the edge node's default JSON log to a file). The server under test runs on CPU 0, wrk on
# CPU 1. The table goes to stdout; progress goes to stderr.
# Nothing is written outside a temp dir, which is removed on exit with every process started here.
#
# Environment:
#   EDGE_NODE_BIN      edge-node binary to use; unset: `cargo build --release -p edge-node`
#   BENCH_DURATION     wrk duration per measured case (Ns or Nm). Default: 10s
#   BENCH_CONNECTIONS  wrk connections. Default: 32
#   BENCH_ROUNDS       rounds; the table shows the median, the order alternates. Default: 3
#   BENCH_WARMUP       wrk warm-up per case before the first round (0 skips it). Default: 2s
#   BENCH_RULES        N > 0 adds a fifth server, edge-node-rules: the edge node whose service has
#                      N rules of which only the last matches (it sets a response field), to
#                      measure what evaluating rules costs a hit. Default: 0 (off)
#
# See bench/README.md for how to read the ratios.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2s}
SERVER_CPU=0
LOAD_CPU=1
HOST=bench.test
# name:bytes
OBJECTS=(1KiB:1024 100KiB:102400)
# Servers: the *-log instances write their access log to a file in the temp dir.
SERVERS=(nginx edge-node nginx-log edge-node-log)
RULES=${BENCH_RULES:-0}
[[ "$RULES" =~ ^[0-9]+$ ]] || { echo "BENCH_RULES=$RULES: a whole number" >&2; exit 2; }
if ((RULES > 0)); then SERVERS+=(edge-node-rules); fi
declare -A PORT ADMIN

BENCH_NAME=hit-path
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_settings() {
    [[ "$DURATION" =~ ^[1-9][0-9]*[sm]?$ ]] || die "BENCH_DURATION=$DURATION: write e.g. 10s or 1m"
    [[ "$WARMUP" =~ ^[0-9]+[sm]?$ ]] || die "BENCH_WARMUP=$WARMUP: write e.g. 2s, or 0 to skip"
    [[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS=$CONNECTIONS: a whole number, at least 1"
    [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$ROUNDS: a whole number, at least 1"
    taskset -c "$LOAD_CPU" true 2>/dev/null ||
        die "needs CPUs $SERVER_CPU and $LOAD_CPU (servers on one, wrk on the other); this machine has $(nproc)"
}

# nginx, wrk and curl from Debian's packages when missing. apt-get update runs once, and only
# when something is missing. The system's nginx service is never started, stopped or configured.
install_tools() {
    local need=() pkgs=() tool policy
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
    command -v wrk >/dev/null || need+=(wrk)
    command -v curl >/dev/null || need+=(curl)
    command -v taskset >/dev/null || die "taskset not found (Debian package util-linux)"
    if ((${#need[@]})); then
        [[ $(id -u) == 0 ]] || die "missing: ${need[*]}; as root: apt-get update && apt-get install -y nginx-light wrk curl"
        command -v apt-get >/dev/null || die "missing: ${need[*]}, and no apt-get to install them"
        log "installing from Debian's packages: ${need[*]}"
        apt-get update -qq >&2
        for tool in "${need[@]}"; do
            if [[ $tool == nginx ]]; then
                # nginx-light has proxy_cache and fewer modules; plain nginx where it is not packaged.
                # (Output captured first: grep -q under pipefail can fail the pipeline on SIGPIPE.)
                policy=$(apt-cache policy nginx-light 2>/dev/null || true)
                if [[ "$policy" =~ Candidate:\ [0-9] ]]; then
                    pkgs+=(nginx-light)
                else
                    pkgs+=(nginx)
                fi
            else
                pkgs+=("$tool")
            fi
        done
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    [[ -x "$NGINX" ]] || die "nginx not found after install"
}

build_edge() {
    if [[ -n "${EDGE_NODE_BIN:-}" ]]; then
        EDGE=$EDGE_NODE_BIN
    else
        log "building edge-node (cargo build --release -p edge-node)"
        (cd "$ROOT" && cargo build --release -p edge-node) >&2
        local target=${CARGO_TARGET_DIR:-target}
        [[ "$target" == /* ]] || target="$ROOT/$target"
        EDGE="$target/release/edge-node"
    fi
    [[ -x "$EDGE" ]] || die "edge-node binary not found or not executable: $EDGE"
}

# A free loopback port: nothing answers a connect on it. nginx fails loudly if one is taken in
# between. (The edge node binds port 0 and reports its ports in the ready file.)
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free loopback port found"
}

wait_port() { # port pid name
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
    die "$3 did not listen on 127.0.0.1:$1 within 10s"
}

# nginx's temp paths for every module compiled in, so none lands in /var/lib/nginx.
temp_paths() { # dir
    local out="client_body_temp_path $1/client_body;" m built
    built=$("$NGINX" -V 2>&1)
    for m in proxy fastcgi uwsgi scgi; do
        if [[ "$built" != *"--without-http_${m}_module"* ]]; then
            out+=" ${m}_temp_path $1/${m}_temp;"
        fi
    done
    echo "$out"
}

start_nginx() { # name template port cpu [access_log directive]
    local name=$1 dir="$WORK/$1" conf="$WORK/$1/nginx.conf" user="" access=${5:-"access_log off;"}
    mkdir -p "$dir"
    # As root, nginx's workers would switch to an unprivileged user that cannot enter the temp dir.
    [[ $(id -u) == 0 ]] && user="user root root;"
    sed -e "s|@DIR@|$WORK|g" -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$3|g" -e "s|@ORIGIN_PORT@|${ORIGIN_PORT:-0}|g" \
        -e "s|@USER@|$user|" -e "s|@TEMP_PATHS@|$(temp_paths "$dir")|" -e "s|@ACCESS_LOG@|$access|" "$2" >"$conf"
    "$NGINX" -q -t -p "$dir/" -e "$WORK/logs/$name-error.log" -c "$conf" -g 'daemon off;' 2>>"$WORK/logs/$name.stderr" ||
        die "$name: nginx rejected $conf: $(cat "$WORK/logs/$name.stderr")"
    taskset -c "$4" "$NGINX" -p "$dir/" -e "$WORK/logs/$name-error.log" -c "$conf" -g 'daemon off;' \
        </dev/null >>"$WORK/logs/$name.stderr" 2>&1 &
    PIDS+=("$!")
    wait_port "$3" "$!" "$name"
}

# N rules for the service: N-1 that never match (a path and a field each, so every one is
# looked at) and a last one, matching every path, that sets a response field.
rules_line() { # n
    local i out="rules = ["
    for ((i = 1; i < $1; i++)); do
        out+="{ match = { paths = [\"/never-$i/*\"], headers = [{ name = \"x-never\", value = \"v$i\" }] }, response_headers = { set = { \"x-rule\" = \"r$i\" } } }, "
    done
    echo "$out{ name = \"last\", match = { paths = [\"/*\"] }, response_headers = { set = { \"x-rule\" = \"last\" } } }]"
}

start_edge() { # name access [rules]
    local name=$1 dir="$WORK/$1" pid http admin
    mkdir -p "$dir/cache"
    cat >"$dir/edge.toml" <<EOF
[node]
name = "bench-edge"

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "bench-admin-token-0123456789"   # the admin listener needs a token (README: Admin listener)

[cache]
memory = "256MiB"
disk_path = "$dir/cache"
disk = "1GiB"
max_object_size = "64MiB"

[log]
access = "$2"
level = "warn"

[[services]]
name = "bench"
hosts = ["$HOST"]
origin = "http://127.0.0.1:$ORIGIN_PORT"
EOF
    if [[ -n "${3:-}" ]]; then rules_line "$3" >>"$dir/edge.toml"; fi
    taskset -c "$SERVER_CPU" "$EDGE" --config "$dir/edge.toml" --ready-file "$dir/ready.json" \
        </dev/null >/dev/null 2>>"$WORK/logs/edge-node.stderr" &
    pid=$!
    PIDS+=("$pid")
    [[ $name == edge-node ]] && EDGE_PID=$pid
    for _ in $(seq 600); do
        [[ -s "$dir/ready.json" ]] && break
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up"
        sleep 0.1
    done
    [[ -s "$dir/ready.json" ]] || die "$name wrote no ready file within 60s"
    http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$dir/ready.json")
    admin=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$dir/ready.json")
    [[ -n "$http" && -n "$admin" ]] || die "ready file unreadable: $(cat "$dir/ready.json")"
    PORT[$name]=${http##*:}
    ADMIN[$name]=$admin
}

# The edge node's threads by name, and the CPUs they may run on. tokio sizes its worker pool
# from the CPUs the process may use (available_parallelism), which taskset has cut to one; its
# blocking-pool threads share the workers' name and exit after 10 s idle.
edge_threads() {
    local names cpus
    names=$(cat /proc/"$EDGE_PID"/task/*/comm 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s x%d", sep, $2, $1; sep = ", " }')
    cpus=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/"$EDGE_PID"/task/*/status 2>/dev/null | sort -u | paste -sd' ')
    echo "$names; allowed CPUs: $cpus"
}

port_of() { echo "${PORT[$1]}"; }

# One GET; prints "status bytes cache-verdict" where the verdict is hit or other.
probe() { # server path
    local headers="$WORK/probe.headers" out verdict=other
    out=$(curl -sS -o /dev/null -D "$headers" -w '%{http_code} %{size_download}' \
        -H "Host: $HOST" "http://127.0.0.1:$(port_of "$1")$2") || die "$1: GET $2 failed"
    if [[ $1 == nginx* ]]; then
        grep -qi '^x-cache-status: *HIT' "$headers" && verdict=hit
    else
        # Contract (docs/contracts.md): a fresh hit is `bench-edge; hit; ttl=N`.
        grep -qiE '^cache-status: *bench-edge; *hit(;|[[:space:]]*$)' "$headers" && verdict=hit
    fi
    echo "$out $verdict"
}

# Fill each cache, then the second and third requests must be hits with the whole body.
warm() { # server
    local obj name bytes got
    for obj in "${OBJECTS[@]}"; do
        name=${obj%%:*} bytes=${obj##*:}
        probe "$1" "/$name.bin" >/dev/null
        for i in 2 3; do
            got=$(probe "$1" "/$name.bin")
            [[ "$got" == "200 $bytes hit" ]] ||
                die "$1: request $i for /$name.bin: expected '200 $bytes hit', got '$got'"
        done
    done
    log "$1 warmed: request 2 and 3 for each object were hits"
}

# Requests the edge node answered other than as a hit, from its own metrics.
edge_non_hits() { # server
    curl -sS -H "Authorization: Bearer bench-admin-token-0123456789" "http://${ADMIN[$1]}/metrics" |
        awk '/^outpost_requests_total\{/ && !/cache="hit"/ { s += $NF } END { printf "%d\n", s }'
}

# Lines the edge node dropped from its access log (a full queue or a failed write).
edge_log_dropped() { # server
    curl -sS -H "Authorization: Bearer bench-admin-token-0123456789" "http://${ADMIN[$1]}/metrics" |
        awk '/^outpost_access_log_dropped_total/ { s += $NF } END { printf "%d\n", s }'
}

# wrk's latency figures in milliseconds.
run_wrk() { # server object duration outfile
    local secs
    secs=$(seconds "$3")
    timeout --kill-after=5 $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"$3" --latency -H "Host: $HOST" \
        "http://127.0.0.1:$(port_of "$1")/$2.bin" >"$4" 2>&1 ||
        die "wrk against $1 /$2.bin failed: $(cat "$4")"
}

declare -A RPS P50 P99 NOTE

# shellcheck disable=SC2034 # P50 and P99 are read through the nameref in figure().
measure() { # server object round
    local out="$WORK/wrk-$1-$2-$3.txt" before after rps p50 p99 non2xx sockerr got
    [[ $1 == edge-node* ]] && before=$(edge_non_hits "$1")
    run_wrk "$1" "$2" "$DURATION" "$out"
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(awk '$1 == "50%" { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || die "could not read wrk's output: $(cat "$out")"
    RPS[$1,$2,$3]=$rps
    P50[$1,$2,$3]=$(to_ms "$p50") || die "unknown latency unit in '$p50'"
    P99[$1,$2,$3]=$(to_ms "$p99") || die "unknown latency unit in '$p99'"
    non2xx=$(awk '/^ *Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sockerr=$(awk '/^ *Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out")
    [[ -n "$non2xx" ]] && NOTE[$1,$2]+=" round $3: $non2xx non-2xx responses;"
    [[ -n "$sockerr" ]] && NOTE[$1,$2]+=" round $3: socket errors ($sockerr);"
    # Still a hit afterwards; for the edge node, no request in the run was anything but a hit.
    got=$(probe "$1" "/$2.bin")
    [[ "$got" == *" hit" ]] || NOTE[$1,$2]+=" round $3: not a hit after the run ($got);"
    if [[ $1 == edge-node* ]]; then
        after=$(edge_non_hits "$1")
        ((after - before == 0)) || NOTE[$1,$2]+=" round $3: $((after - before)) non-hit responses;"
    fi
    log "$(printf 'round %d  %-9s %-7s %10s req/s  p50 %s  p99 %s' "$3" "$1" "$2" "$rps" "$p50" "$p99")"
}

figure() { # array-name server object
    local -n arr=$1
    local r vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("${arr[$2,$3,$r]}"); done
    median "${vals[@]}"
}


# One table row: object, label, req/s, p50, p99.
row() { printf '%-8s %-22s %12s %10s %10s\n' "$@"; }

# Ratio rows of server a over server b, per column.
ratio_row() { # object label a b
    row "$1" "$2" "$(ratio "$(figure RPS "$3" "$1")" "$(figure RPS "$4" "$1")")" \
        "$(ratio "$(figure P50 "$3" "$1")" "$(figure P50 "$4" "$1")")" \
        "$(ratio "$(figure P99 "$3" "$1")" "$(figure P99 "$4" "$1")")"
}

report() {
    local obj name threads s r line lines
    threads=$(edge_threads)
    echo "Outpost edge-node cache HIT path vs nginx proxy_cache ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "  machine:   $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    echo "  edge-node: $EDGE_REV ($EDGE)"
    echo "  nginx:     $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes 1, proxy_cache (bodies in files,"
    echo "             sent from the page cache with sendfile; keys in shared memory)"
    echo "  logs:      nginx: access_log off; nginx-log: access_log FILE (combined, its default, unbuffered)"
    echo "             edge-node: log.access = \"off\"; edge-node-log: log.access = FILE (JSON, default buffer and flush)"
    echo "  load:      wrk -t1 -c$CONNECTIONS -d$DURATION --latency, HTTP/1.1 keep-alive, Host: $HOST, one URL per case;"
    echo "             ${WARMUP} wrk warm-up per case, then $ROUNDS round(s), order alternating; figures are the median"
    echo "  pinning:   each server on CPU $SERVER_CPU (taskset -c $SERVER_CPU), wrk on CPU $LOAD_CPU (taskset -c $LOAD_CPU);"
    echo "             edge-node has no worker-thread setting: taskset alone confines it, and tokio sizes its"
    echo "             worker pool from the affinity mask: it sees $(taskset -c "$SERVER_CPU" nproc) CPU, so starts that many workers."
    echo "             Its threads now: $threads"
    echo
    row object server "req/s" "p50 ms" "p99 ms"
    for obj in "${OBJECTS[@]}"; do
        name=${obj%%:*}
        for s in "${SERVERS[@]}"; do
            printf '%-8s %-22s %12.0f %10.3f %10.3f\n' "$name" "$s" "$(figure RPS "$s" "$name")" \
                "$(figure P50 "$s" "$name")" "$(figure P99 "$s" "$name")"
        done
        ratio_row "$name" "edge/nginx, logs off" edge-node nginx
        ratio_row "$name" "edge/nginx, logs on" edge-node-log nginx-log
        ratio_row "$name" "edge log on/off" edge-node-log edge-node
        ratio_row "$name" "nginx log on/off" nginx-log nginx
        if ((RULES > 0)); then ratio_row "$name" "edge $RULES rules/none" edge-node-rules edge-node; fi
    done
    echo
    echo "edge/nginx: req/s above 1.00x means the edge node served more; p50/p99 below 1.00x means it"
    echo "answered sooner. log on/off: the share of the log-off figure a server keeps with its log on."
    echo "Compare within this run only."
    lines=$(wc -l <"$WORK/logs/edge-access.log" 2>/dev/null || echo 0)
    echo "edge-node-log: $lines lines in its access log, $(edge_log_dropped edge-node-log) dropped (outpost_access_log_dropped_total);"
    echo "nginx-log: $(wc -l <"$WORK/logs/nginx-access.log" 2>/dev/null || echo 0) lines in its access log"
    if ((ROUNDS > 1)); then
        echo
        echo "req/s per round:"
        for obj in "${OBJECTS[@]}"; do
            name=${obj%%:*}
            for s in "${SERVERS[@]}"; do
                line=""
                for ((r = 1; r <= ROUNDS; r++)); do line+=$(printf ' %10.0f' "${RPS[$s,$name,$r]}"); done
                printf '  %-8s %-14s%s\n' "$name" "$s" "$line"
            done
        done
    fi
    local warned=""
    for obj in "${OBJECTS[@]}"; do
        for s in "${SERVERS[@]}"; do
            if [[ -n "${NOTE[$s,${obj%%:*}]:-}" ]]; then
                if [[ -z "$warned" ]]; then
                    printf '\nwarnings:\n'
                    warned=1
                fi
                echo "  $s ${obj%%:*}:${NOTE[$s,${obj%%:*}]}"
            fi
        done
    done
}

main() {
    check_settings
    install_tools
    build_edge
    EDGE_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "unknown revision")
    [[ -n "${EDGE_NODE_BIN:-}" ]] && EDGE_REV="given by EDGE_NODE_BIN; tree at $EDGE_REV"

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/outpost-hit-path.XXXXXX")
    mkdir -p "$WORK/logs" "$WORK/www"
    local obj
    for obj in "${OBJECTS[@]}"; do
        head -c "${obj##*:}" /dev/urandom >"$WORK/www/${obj%%:*}.bin"
    done

    # The origin only serves the warm-up's misses; it shares wrk's CPU, away from the servers.
    ORIGIN_PORT=$(free_port)
    start_nginx nginx-origin "$BENCH_DIR/nginx-origin.conf.in" "$ORIGIN_PORT" "$LOAD_CPU"
    PORT[nginx]=$(free_port)
    start_nginx nginx "$BENCH_DIR/nginx-cache.conf.in" "${PORT[nginx]}" "$SERVER_CPU"
    PORT[nginx-log]=$(free_port)
    # nginx's default: `access_log <file>;` is the combined format, one write() per request.
    start_nginx nginx-log "$BENCH_DIR/nginx-cache.conf.in" "${PORT[nginx-log]}" "$SERVER_CPU" \
        "access_log $WORK/logs/nginx-access.log;"
    start_edge edge-node off
    start_edge edge-node-log "$WORK/logs/edge-access.log"
    if ((RULES > 0)); then start_edge edge-node-rules off "$RULES"; fi
    log "origin 127.0.0.1:$ORIGIN_PORT; $(for s in "${SERVERS[@]}"; do printf '%s 127.0.0.1:%s  ' "$s" "${PORT[$s]}"; done)"

    for s in "${SERVERS[@]}"; do warm "$s"; done

    local s name r order
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    if [[ "$(seconds "$WARMUP")" != 0 ]]; then
        log "wrk warm-up, $WARMUP per case"
        for obj in "${OBJECTS[@]}"; do
            for s in "${SERVERS[@]}"; do
                run_wrk "$s" "${obj%%:*}" "$WARMUP" "$WORK/wrk-warmup.txt"
            done
        done
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then order=("${SERVERS[@]}"); else order=(edge-node-log nginx-log edge-node nginx); fi
        if ((RULES > 0 && r % 2 == 0)); then order=(edge-node-rules "${order[@]}"); fi
        for obj in "${OBJECTS[@]}"; do
            name=${obj%%:*}
            for s in "${order[@]}"; do
                measure "$s" "$name" "$r"
            done
        done
    done
    report
}

main "$@"
