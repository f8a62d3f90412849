#!/usr/bin/env bash
# RUSTC_WRAPPER for the fuzz build: adds libFuzzer's coverage instrumentation (the flags
# cargo-fuzz passes, without the sanitizer, which needs nightly's -Zsanitizer) to Outpost's own
# crates and the fuzz targets only. Dependencies are built as the root workspace builds them,
# so the root's target directory already has them; cargo does not fingerprint the wrapper.
rustc=$1
shift
crate=
prev=
for arg in "$@"; do
    [ "$prev" = "--crate-name" ] && crate=$arg
    prev=$arg
done
case "$crate" in
    edge_node | outpost_config | control_plane | outpost_fuzz | cache_control | range | http_date | vary | \
        image_params | entry_codec | purge_log | config | ndjson | dns)
        exec "$rustc" "$@" -Cpasses=sancov-module \
            -Cllvm-args=-sanitizer-coverage-level=4 \
            -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
            -Cllvm-args=-sanitizer-coverage-pc-table \
            -Cllvm-args=-sanitizer-coverage-trace-compares \
            --cfg fuzzing
        ;;
    *) exec "$rustc" "$@" ;;
esac
