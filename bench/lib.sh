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
