# Shared by the bench scripts: logging, and cleanup on exit of every process the script
# started (by PID, in PIDS) and of its temp dir (WORK). Source it after setting BENCH_NAME.
# shellcheck shell=bash

PIDS=()
WORK=""

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Every process this script started, by PID, then the temp dir. Nothing else.
cleanup() {
    local status=$? pid i
    set +e
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "PID $pid did not stop after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    if [[ -n "$WORK" && -d "$WORK" ]]; then
        if ((status != 0)) && [[ -d "$WORK/logs" ]]; then
            log "logs of this run:"
            tail -n 20 "$WORK"/logs/* >&2 2>/dev/null
        fi
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Helpers shared by the scripts that came after hit-path.sh and shield-offload.sh (those two
# still define their own copies of the same functions).

# Waits (at most 60 s) for a process to write a non-empty file, e.g. a ready or port file.
wait_file() { # file pid name
    for _ in $(seq 600); do
        [[ -s "$1" ]] && return
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
        sleep 0.1
    done
    die "$3 wrote no ready file within 60s"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx\n", a / b; else print "n/a" }'; }

# A duration as wrk takes it (`10s`, `1m`, or a bare number of seconds), in seconds.
seconds() {
    case "$1" in
        *[0-9]s) echo "${1%s}" ;;
        *[0-9]m) echo $((${1%m} * 60)) ;;
        *) echo "$1" ;;
    esac
}

# One of wrk's latency figures (`812.00us`, `1.20ms`, `2.01s`) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (f < 0) exit 1
        printf "%.3f\n", n * f
    }'
}

# For each "ENV_VAR=package" argument, sets BIN[package]: the binary ENV_VAR names, else
# target/release/<package>, built first (one `cargo build --release` for all those not named).
declare -A BIN
release_binaries() {
    local pkgs=() arg var pkg target
    for arg in "$@"; do
        var=${arg%%=*}
        [[ -n "${!var:-}" ]] || pkgs+=(-p "${arg#*=}")
    done
    if ((${#pkgs[@]})); then
        log "building: cargo build --release ${pkgs[*]}"
        (cd "$ROOT" && cargo build --release "${pkgs[@]}") >&2 || die "cargo build --release ${pkgs[*]} failed"
    fi
    target=${CARGO_TARGET_DIR:-target}
    [[ "$target" == /* ]] || target="$ROOT/$target"
    for arg in "$@"; do
        var=${arg%%=*}
        pkg=${arg#*=}
        BIN[$pkg]=${!var:-$target/release/$pkg}
        [[ -x "${BIN[$pkg]}" ]] || die "$pkg binary not found or not executable: ${BIN[$pkg]} (set $var)"
    done
}
