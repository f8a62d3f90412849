#!/usr/bin/env bash
# Purge propagation: how long a purge takes from the API request to the acknowledgement of the
# last node, with a control plane and BENCH_NODES edge-node processes on loopback, beside the
# figure Fastly publishes for its global purge (~150 ms average).
#
# One control plane (embedded store, default settings) and BENCH_NODES edge nodes, each started
# with `[control]` and no services of its own, small caches, spread over BENCH_POPS PoPs. One
# service is created through the API; every node must have applied it (acked its seq) before the
# first purge. Then BENCH_PURGES purges, one after another, each
# `POST /v1/services/bench/purge?wait=true` (a new tag each, operator token: no rate limit).
# Every answer must be 200 with `complete: true` and every node acked, or the script stops.
#
# Figures, each p50 / p99 / max / mean over the purges:
#   - client: from sending the request to reading the 200 (what a user of wait=true sees);
#   - last ack: the slowest node's `ms` in the answer (the control plane's clock, purge creation
#     to that node's ack, whole milliseconds);
#   - per node: every node's `ms` over every purge.
# The comparison is the client p99 and mean against Fastly's ~150 ms (a global network, not
# loopback: it shows the protocol's own overhead is a small part of such a budget, nothing more).
#
# The tables go to stdout; progress goes to stderr. Nothing is written outside a temp dir, which
# is removed on exit with every process started here.
#
# Environment:
#   CONTROL_PLANE_BIN  control-plane binary; unset: `cargo build --release` (with edge-node)
#   EDGE_NODE_BIN      edge-node binary; unset: as above
#   BENCH_NODES        edge-node processes. Default: 20
#   BENCH_POPS         PoPs the nodes are spread over (round robin). Default: 4
#   BENCH_PURGES       purges measured. Default: 200
#   BENCH_WARMUP       purges sent first and not counted. Default: 10
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
NODES=${BENCH_NODES:-20}
POPS=${BENCH_POPS:-4}
PURGES=${BENCH_PURGES:-200}
WARMUP=${BENCH_WARMUP:-10}
OPERATOR_TOKEN=bench-operator-token
NODE_TOKEN=bench-node-token
FASTLY_MS=150

BENCH_NAME=purge-propagation
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_settings() {
    local name
    for name in NODES POPS PURGES; do
        [[ "${!name}" =~ ^[1-9][0-9]*$ ]] || die "BENCH_$name=${!name}: a whole number, at least 1"
    done
    [[ "$WARMUP" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP=$WARMUP: a whole number"
    ((NODES <= 200)) || die "BENCH_NODES=$NODES: at most 200"
    command -v python3 >/dev/null || die "python3 not found (the purge driver uses its standard library)"
    command -v sha256sum >/dev/null || die "sha256sum not found (the control plane's config holds token hashes)"
}

hash_token() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

start_control_plane() {
    mkdir -p "$WORK/cp"
    cat >"$WORK/cp/cp.toml" <<EOF
listen = "127.0.0.1:0"
data = "cp.redb"

[[tokens]]
name = "bench"
operator = true
sha256 = "$(hash_token "$OPERATOR_TOKEN")"

[[tokens]]
name = "nodes"
node = true
sha256 = "$(hash_token "$NODE_TOKEN")"
EOF
    RUST_LOG=warn "$CP" run --config "$WORK/cp/cp.toml" --ready-file "$WORK/cp/ready.json" \
        </dev/null >/dev/null 2>>"$WORK/logs/control-plane.stderr" &
    PIDS+=("$!")
    wait_file "$WORK/cp/ready.json" "$!" control-plane
    API=$(sed -n 's/.*"api":"\([^"]*\)".*/\1/p' "$WORK/cp/ready.json")
    [[ -n "$API" ]] || die "control-plane ready file unreadable: $(cat "$WORK/cp/ready.json")"
}

start_nodes() {
    local i dir pid
    for i in $(seq "$NODES"); do
        dir="$WORK/edge-$i"
        mkdir -p "$dir/cache"
        cat >"$dir/node.toml" <<EOF
[node]
name = "edge-$i"
pop = "pop-$(((i - 1) % POPS + 1))"
region = "bench"

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "bench-admin-token-0123456789"   # the admin listener needs a token (README: Admin listener)

[cache]
memory = "4MiB"
disk_path = "$dir/cache"
disk = "16MiB"
max_object_size = "1MiB"

[log]
access = "off"
level = "warn"

[control]
url = "http://$API"
token = "$NODE_TOKEN"
state_dir = "$dir"
EOF
        "$EDGE" --config "$dir/node.toml" --ready-file "$dir/ready.json" \
            </dev/null >/dev/null 2>>"$WORK/logs/edge-$i.stderr" &
        PIDS+=("$!")
        pid=$!
        wait_file "$dir/ready.json" "$pid" "edge-$i"
    done
}

# The purge driver: creates the service, waits (bounded) until every node acked it, sends the
# purges, and prints one line per figure: `name p50 p99 max mean count`.
drive() {
    python3 - "$API" "$OPERATOR_TOKEN" "$NODES" "$PURGES" "$WARMUP" <<'PY'
import http.client, json, statistics, sys, time

api, token, nodes, purges, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
host, port = api.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=70)
auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}

def call(method, path, body=None):
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=auth)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, (json.loads(data) if data else None)

def fail(message):
    print(f"[purge-propagation] error: {message}", file=sys.stderr)
    sys.exit(1)

status, created = call("PUT", "/v1/services/bench?tenant=bench",
                       {"hosts": ["bench.test"], "origin": "http://127.0.0.1:9"})
if status not in (200, 201):
    fail(f"create the service: {status} {created}")
version = created["version"]
deadline = time.monotonic() + 60
while True:
    status, listed = call("GET", "/v1/nodes")
    ready = [n for n in listed["nodes"] if n["live"] and n["acked"] >= version]
    if len(ready) == nodes:
        break
    if time.monotonic() > deadline:
        fail(f"{len(ready)} of {nodes} nodes live and acked seq {version} after 60s: {listed}")
    time.sleep(0.1)
print(f"[purge-propagation] {nodes} nodes live and acked seq {version}", file=sys.stderr)

client, last, per_node = [], [], []
for i in range(warmup + purges):
    start = time.perf_counter()
    status, answer = call("POST", "/v1/services/bench/purge?wait=true&timeout=30s", {"tags": [f"t{i}"]})
    elapsed = (time.perf_counter() - start) * 1000
    if status != 200 or not answer.get("complete"):
        fail(f"purge {i}: {status} {answer}")
    acked = [n for n in answer["nodes"].values() if n["acked"]]
    if len(acked) != nodes or any(n["ms"] is None for n in acked):
        fail(f"purge {i}: {len(acked)} of {nodes} nodes acked with a time: {answer}")
    if i < warmup:
        continue
    client.append(elapsed)
    ms = [n["ms"] for n in acked]
    last.append(max(ms))
    per_node.extend(ms)

def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]

for name, values in (("client", client), ("last_ack", last), ("per_node", per_node)):
    print(name, *(f"{v:.2f}" for v in (pct(values, 50), pct(values, 99), max(values), statistics.fmean(values))), len(values))
PY
}

report() { # figures file
    local name p50 p99 max mean count client_p99 client_mean
    echo
    echo "Purge propagation: $NODES edge nodes in $POPS PoPs on loopback, $PURGES purges with wait=true (after $WARMUP not counted)"
    echo
    printf '| %-40s | %8s | %8s | %8s | %8s | %7s |\n' "figure (ms)" p50 p99 max mean samples
    printf '|%s|%s|%s|%s|%s|%s|\n' "------------------------------------------" ---------- ---------- ---------- ---------- ---------
    while read -r name p50 p99 max mean count; do
        case "$name" in
            client) name="client: request to 200 (all acked)" ;;
            last_ack) name="last ack: creation to slowest node's ack" ;;
            per_node) name="per node: creation to the node's ack" ;;
        esac
        printf '| %-40s | %8s | %8s | %8s | %8s | %7s |\n' "$name" "$p50" "$p99" "$max" "$mean" "$count"
    done <"$1"
    client_p99=$(awk '$1 == "client" { print $3 }' "$1")
    client_mean=$(awk '$1 == "client" { print $5 }' "$1")
    echo
    echo "Fastly's published global purge: ~${FASTLY_MS} ms average."
    echo "client p99 / Fastly average: $(ratio "$client_p99" "$FASTLY_MS"); client mean / Fastly average: $(ratio "$client_mean" "$FASTLY_MS")"
    echo "(loopback, one machine with $(nproc) CPUs running all $((NODES + 1)) processes: the protocol's own cost, no network)"
}

main() {
    check_settings
    release_binaries CONTROL_PLANE_BIN=control-plane EDGE_NODE_BIN=edge-node
    CP=${BIN[control-plane]}
    EDGE=${BIN[edge-node]}
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/outpost-bench-purge.XXXXXX")
    mkdir -p "$WORK/logs"
    log "control plane"
    start_control_plane
    log "$NODES edge nodes following it at $API"
    start_nodes
    log "purges"
    drive >"$WORK/figures"
    report "$WORK/figures"
}

main "$@"
