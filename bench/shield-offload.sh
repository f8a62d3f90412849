#!/usr/bin/env bash
# Origin offload over two tiers for a Zipf workload, and the latency a shield hop adds to a
# miss, each against its peer measured in the same run: the same edges without shields.
#
# On loopback: one counting origin (bench/counting_origin.py), two origin-shield nodes, three
# edge-node nodes. Every edge has two services on the same origin: `tiered` (both shields
# listed) and `direct` (no shields). bench/zipf_load.py sends the workload and prints the
# figures. The report goes to stdout; progress to stderr. Nothing is written outside a temp
# dir, which is removed on exit with every process started here.
#
# Environment:
#   EDGE_NODE_BIN          edge-node binary; unset: built with `cargo build --release`
#   ORIGIN_SHIELD_BIN      origin-shield binary; unset: built with `cargo build --release`
#   BENCH_REQUESTS         client requests per topology. Default: 20000
#   BENCH_OBJECTS          distinct objects the Zipf distribution draws from. Default: 5000
#   BENCH_ZIPF_S           Zipf exponent. Default: 1.0
#   BENCH_SEED             seed of the request sequence. Default: 1
#   BENCH_CONCURRENCY      client threads for the offload runs. Default: 16
#   BENCH_LATENCY_OBJECTS  fresh objects per case for the shield-hop latency. Default: 2000
#   BENCH_TIMEOUT          seconds the measurement may take before it is stopped. Default: 900
#
# See bench/README.md for how to read the figures.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
REQUESTS=${BENCH_REQUESTS:-20000}
OBJECTS=${BENCH_OBJECTS:-5000}
ZIPF_S=${BENCH_ZIPF_S:-1.0}
SEED=${BENCH_SEED:-1}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
LATENCY_OBJECTS=${BENCH_LATENCY_OBJECTS:-2000}
TIMEOUT=${BENCH_TIMEOUT:-900}
TIERED_HOST=tiered.bench.test
DIRECT_HOST=direct.bench.test

BENCH_NAME=shield-offload
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_settings() {
    local name
    for name in REQUESTS OBJECTS CONCURRENCY LATENCY_OBJECTS TIMEOUT; do
        [[ "${!name}" =~ ^[1-9][0-9]*$ ]] || die "BENCH_$name=${!name}: a whole number, at least 1"
    done
    [[ "$SEED" =~ ^[0-9]+$ ]] || die "BENCH_SEED=$SEED: a whole number"
    [[ "$ZIPF_S" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_ZIPF_S=$ZIPF_S: a number such as 1.0"
    command -v python3 >/dev/null || die "python3 not found (the origin and the load generator use its standard library)"
}

# Builds what EDGE_NODE_BIN / ORIGIN_SHIELD_BIN do not name, in one cargo invocation.
build_nodes() {
    local pkgs=() target
    [[ -n "${EDGE_NODE_BIN:-}" ]] || pkgs+=(-p edge-node)
    [[ -n "${ORIGIN_SHIELD_BIN:-}" ]] || pkgs+=(-p origin-shield)
    if ((${#pkgs[@]})); then
        log "building: cargo build --release ${pkgs[*]}"
        (cd "$ROOT" && cargo build --release "${pkgs[@]}") >&2 ||
            die "cargo build --release ${pkgs[*]} failed"
    fi
    target=${CARGO_TARGET_DIR:-target}
    [[ "$target" == /* ]] || target="$ROOT/$target"
    EDGE=${EDGE_NODE_BIN:-$target/release/edge-node}
    SHIELD=${ORIGIN_SHIELD_BIN:-$target/release/origin-shield}
    [[ -x "$EDGE" ]] || die "edge-node binary not found or not executable: $EDGE"
    [[ -x "$SHIELD" ]] || die "origin-shield binary not found or not executable: $SHIELD"
}

# Waits for a file a process writes once it listens.
start_origin() {
    python3 "$BENCH_DIR/counting_origin.py" --port-file "$WORK/origin.port" \
        </dev/null >/dev/null 2>>"$WORK/logs/origin.stderr" &
    PIDS+=("$!")
    wait_file "$WORK/origin.port" "$!" origin
    ORIGIN_PORT=$(cat "$WORK/origin.port")
}

# Writes a node's config; the caller appends its services.
node_config() { # name role dir
    mkdir -p "$3/cache"
    cat >"$3/node.toml" <<EOF
[node]
name = "$1"
role = "$2"

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "bench-admin-token-0123456789"   # the admin listener needs a token (README: Admin listener)

[cache]
memory = "256MiB"
disk_path = "$3/cache"
disk = "1GiB"

[log]
access = "off"
level = "warn"
EOF
}

# Starts one node in the background; its ready file is read by read_ready.
launch() { # binary name dir
    "$1" --config "$3/node.toml" --ready-file "$3/ready.json" \
        </dev/null >/dev/null 2>>"$WORK/logs/$2.stderr" &
    PIDS+=("$!")
    NODE_PID[$2]=$!
}

# The node's listener and admin addresses, from its ready file.
read_ready() { # name dir
    wait_file "$2/ready.json" "${NODE_PID[$1]}" "$1"
    local http admin
    http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$2/ready.json")
    admin=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$2/ready.json")
    [[ -n "$http" && -n "$admin" ]] || die "$1: ready file unreadable: $(cat "$2/ready.json")"
    HTTP[$1]=$http
    ADMIN[$1]=$admin
}

declare -A NODE_PID HTTP ADMIN

start_shields() {
    local i dir
    for i in 1 2; do
        dir="$WORK/shield-$i"
        node_config "shield-$i" shield "$dir"
        cat >>"$dir/node.toml" <<EOF

[[services]]
name = "tiered"
hosts = ["$TIERED_HOST"]
origin = "http://127.0.0.1:$ORIGIN_PORT"
EOF
        launch "$SHIELD" "shield-$i" "$dir"
    done
    for i in 1 2; do read_ready "shield-$i" "$WORK/shield-$i"; done
}

start_edges() {
    local i dir
    for i in 1 2 3; do
        dir="$WORK/edge-$i"
        node_config "edge-$i" edge "$dir"
        cat >>"$dir/node.toml" <<EOF

[[services]]
name = "tiered"
hosts = ["$TIERED_HOST"]
origin = "http://127.0.0.1:$ORIGIN_PORT"
shields = [
    { url = "http://${HTTP[shield-1]}", pop = "s1" },
    { url = "http://${HTTP[shield-2]}", pop = "s2" },
]

[services.health]
path = "/__health"

[[services]]
name = "direct"
hosts = ["$DIRECT_HOST"]
origin = "http://127.0.0.1:$ORIGIN_PORT"
EOF
        launch "$EDGE" "edge-$i" "$dir"
    done
    for i in 1 2 3; do read_ready "edge-$i" "$WORK/edge-$i"; done
}

write_topology() {
    local i sep=""
    {
        printf '{"origin": "127.0.0.1:%s", "shields": [' "$ORIGIN_PORT"
        for i in 1 2; do
            printf '%s{"name": "shield-%s", "pop": "s%s", "url": "http://%s", "http": "%s", "admin": "%s"}' \
                "$sep" "$i" "$i" "${HTTP[shield-$i]}" "${HTTP[shield-$i]}" "${ADMIN[shield-$i]}"
            sep=", "
        done
        printf '], "edges": ['
        sep=""
        for i in 1 2 3; do
            printf '%s{"name": "edge-%s", "http": "%s", "admin": "%s"}' \
                "$sep" "$i" "${HTTP[edge-$i]}" "${ADMIN[edge-$i]}"
            sep=", "
        done
        printf ']}\n'
    } >"$WORK/topology.json"
}

# Both services answer through every edge before the measurement starts.
check_topology() {
    local i host out
    for i in 1 2 3; do
        for host in "$TIERED_HOST" "$DIRECT_HOST"; do
            out=$(curl -sS -o /dev/null -w '%{http_code}' -H "Host: $host" "http://${HTTP[edge-$i]}/__health") ||
                die "edge-$i: GET /__health (Host $host) failed"
            [[ "$out" == 200 ]] || die "edge-$i: GET /__health (Host $host): status $out"
        done
    done
}

main() {
    check_settings
    command -v curl >/dev/null || die "curl not found"
    build_nodes
    local rev
    rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "unknown revision")

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/outpost-shield-offload.XXXXXX")
    mkdir -p "$WORK/logs"
    start_origin
    start_shields
    start_edges
    write_topology
    check_topology
    log "origin 127.0.0.1:$ORIGIN_PORT; shields ${HTTP[shield-1]} ${HTTP[shield-2]}; edges ${HTTP[edge-1]} ${HTTP[edge-2]} ${HTTP[edge-3]}"

    echo "Outpost origin offload and shield-hop latency ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "  machine:   $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
    echo "  tree:      $rev"
    echo "  binaries:  $EDGE, $SHIELD"
    echo "  topology:  loopback, no CPU pinning; origin: bench/counting_origin.py (Python, counts per Host and path);"
    echo "             shield-1, shield-2: one service ($TIERED_HOST -> origin);"
    echo "             edge-1..3: $TIERED_HOST (shields s1, s2 -> origin) and $DIRECT_HOST (-> origin);"
    echo "             256MiB memory + 1GiB disk cache per node, access log off"

    # In the background and waited for, so that the EXIT trap can stop it by PID.
    timeout --kill-after=5 "$TIMEOUT" python3 "$BENCH_DIR/zipf_load.py" --topology "$WORK/topology.json" \
        --requests "$REQUESTS" --objects "$OBJECTS" --zipf-s "$ZIPF_S" --seed "$SEED" \
        --concurrency "$CONCURRENCY" --latency-objects "$LATENCY_OBJECTS" </dev/null &
    PIDS+=("$!")
    local status=0
    wait "$!" || status=$?
    ((status == 124)) && die "the measurement took more than BENCH_TIMEOUT=${TIMEOUT}s"
    ((status == 0)) || die "zipf_load.py failed (exit $status)"
    local name
    for name in shield-1 shield-2 edge-1 edge-2 edge-3; do
        kill -0 "${NODE_PID[$name]}" 2>/dev/null || echo "  warning: $name exited during the run (see its stderr)"
    done
    echo
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

main "$@"
