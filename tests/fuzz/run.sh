#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on the stable toolchain, then runs each for SECONDS
# (two at a time, at nice 19: the machine is shared), and prints per target the execs, exec/s,
# coverage (libFuzzer's `cov` edges and `ft` features), corpus size and findings.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
#   JOBS=1 tests/fuzz/run.sh 600 dns             one at a time
#
# Seeds (committed) are in seeds/TARGET; the growing corpus in corpus/TARGET, crashes in
# artifacts/TARGET, logs in logs/TARGET.log (none of them committed). See README.md.
set -euo pipefail
cd "$(dirname "$0")"

SECS=${1:-60}
shift || true
# Most likely to find something first.
ALL=(purge_log entry_codec ndjson config dns image_params vary http_date range cache_control)
TARGETS=("${@:-${ALL[@]}}")
JOBS=${JOBS:-2}

# Into the root workspace's target directory with the root's dev profile, so that every
# dependency the root has built is reused; rustc-wrapper.sh instruments Outpost's crates and
# the targets (README.md: "How it builds on stable Rust").
ROOT=$(cd ../.. && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export RUSTC_WRAPPER=$PWD/rustc-wrapper.sh
nice -n 19 cargo build --locked $(printf -- '--bin %s ' "${TARGETS[@]}")
BIN=$CARGO_TARGET_DIR/debug

mkdir -p logs
run_one() {
    local t=$1 secs=$2 bin=$3/$1
    local dict=
    case $t in
        purge_log | ndjson) dict=-dict=dicts/json.dict ;;
        cache_control | range | http_date | vary | image_params) dict=-dict=dicts/http.dict ;;
        config) dict=-dict=dicts/toml.dict ;;
    esac
    mkdir -p "corpus/$t" "artifacts/$t"
    # Fork mode: a crash, timeout or OOM is saved and fuzzing goes on for the whole time.
    nice -n 19 "$bin" "corpus/$t" "seeds/$t" $dict -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=16384 \
        -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1 || true
}
export -f run_one
# No backtraces while fuzzing: symbolising one on a starved core can outlast -timeout, and
# libFuzzer then hangs in its crash path. Reproduce a finding by hand to see one.
export RUST_BACKTRACE=0
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c "run_one {} $SECS $BIN"

# The last status line of a fork-mode run:
# #EXECS: cov: C ft: F corp: N exec/s: R oom/timeout/crash: O/T/X time: Ss job: J ...
printf '%-14s %10s %7s %6s %6s %6s %9s %s\n' target execs exec/s cov ft corpus o/t/crash seconds
for t in "${TARGETS[@]}"; do
    last=$(grep -E '^#[0-9]+: cov' "logs/$t.log" | tail -1)
    # `|` as the delimiter: the field names contain `/` (exec/s:, oom/timeout/crash:); a space
    # before the name, or `time:` would match `dft_time:`.
    field() { sed -n "s|.* $1 \([^ ]*\).*|\1|p" <<<"$last"; }
    execs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' <<<"$last")
    corpus=$(find "corpus/$t" -type f | wc -l)
    printf '%-14s %10s %7s %6s %6s %6s %9s %s\n' "$t" "${execs:-?}" "$(field exec/s:)" "$(field cov:)" "$(field ft:)" \
        "$corpus" "$(field oom/timeout/crash:)" "$(field time:)"
done
