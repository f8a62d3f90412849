#!/usr/bin/env bash
# The transform phase of the edge node, each figure beside a peer measured in the same run:
#
#   1. cache hits of a 100 KiB JavaScript-like object, its stored brotli variant against the
#      identity object (wrk, HTTP/1.1 keep-alive);
#   2. compression through the node of an 8 MiB JavaScript-like object, per coding, at the
#      service's cached levels (a stored base, the variant made and stored) and pass levels
#      (a no-store response, compressed for each request), beside the reference command-line
#      compressors (brotli, zstd, gzip) on the same file and core;
#   3. a 2000x1500 JPEG to 400-pixel WebP and AVIF through the node, beside libvips'
#      `vipsthumbnail` on the same file and core.
#
# One edge node (one service, compression at its defaults, images enabled) in front of
# counting_origin.py serving generated files. The node, vips and the compressors run on CPU 0;
# wrk, curl and the origin on CPU 1. The tables go to stdout; progress goes to stderr. Nothing
# is written outside a temp dir, which is removed on exit with every process started here.
#
# Environment:
#   EDGE_NODE_BIN         edge-node binary; unset: `cargo build --release -p edge-node`
#   BENCH_DURATION        wrk duration per measured hit case (Ns or Nm). Default: 5s
#   BENCH_CONNECTIONS     wrk connections. Default: 32
#   BENCH_ROUNDS          hit rounds; the table shows the median, the order alternates. Default: 3
#   BENCH_WARMUP          wrk warm-up per hit case before the first round (0 skips it). Default: 2s
#   BENCH_COMPRESS_MIB    size of the object compressed through the node, in MiB. Default: 8
#   BENCH_COMPRESS_REPS   requests per coding and level (each a new URL). Default: 5
#   BENCH_TEXT_FILE       a file compressed instead of the generated text (e.g. real minified
#                         JavaScript); BENCH_COMPRESS_MIB is then ignored. Default: unset
#   BENCH_IMAGE_REPS      node requests per image case (each a new URL), and images per
#                         vipsthumbnail batch. Default: 7
#   BENCH_VIPS_ROUNDS     runs of each vipsthumbnail command; the median counts. Default: 3
#
# See bench/README.md for how to read the figures.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
DURATION=${BENCH_DURATION:-5s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2s}
COMPRESS_MIB=${BENCH_COMPRESS_MIB:-8}
COMPRESS_REPS=${BENCH_COMPRESS_REPS:-5}
TEXT_FILE=${BENCH_TEXT_FILE:-}
IMAGE_REPS=${BENCH_IMAGE_REPS:-7}
VIPS_ROUNDS=${BENCH_VIPS_ROUNDS:-3}
SERVER_CPU=0
LOAD_CPU=1
HOST=bench.test
HIT_BYTES=102400
# Compression levels, image quality and AVIF speed: the defaults, read from the config
# crate's source by read_defaults and written into the node's config, so that the report names
# what ran even when EDGE_NODE_BIN was built from another tree; the peers run at the same.
declare -A CACHED_LEVEL PASS_LEVEL
CODINGS=(br zstd gzip)
QUALITY=""
AVIF_SPEED=""

BENCH_NAME=transform
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_settings() {
    [[ "$DURATION" =~ ^[1-9][0-9]*[sm]?$ ]] || die "BENCH_DURATION=$DURATION: write e.g. 5s or 1m"
    [[ "$WARMUP" =~ ^[0-9]+[sm]?$ ]] || die "BENCH_WARMUP=$WARMUP: write e.g. 2s, or 0 to skip"
    local v
    for v in CONNECTIONS ROUNDS COMPRESS_MIB COMPRESS_REPS VIPS_ROUNDS; do
        [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v=${!v}: a whole number, at least 1"
    done
    if ! [[ "$IMAGE_REPS" =~ ^[1-9][0-9]*$ ]] || ((IMAGE_REPS < 2)); then
        die "BENCH_IMAGE_REPS=$IMAGE_REPS: a whole number, at least 2 (a vips batch needs two images)"
    fi
    ((COMPRESS_MIB <= 48)) || die "BENCH_COMPRESS_MIB=$COMPRESS_MIB: at most 48 (the node's max_object_size here is 64MiB)"
    if [[ -n "$TEXT_FILE" ]]; then
        [[ -f "$TEXT_FILE" && -r "$TEXT_FILE" ]] || die "BENCH_TEXT_FILE=$TEXT_FILE: not a readable file"
        (($(stat -c %s "$TEXT_FILE") <= 48 << 20)) || die "BENCH_TEXT_FILE=$TEXT_FILE: larger than 48MiB"
    fi
    taskset -c "$LOAD_CPU" true 2>/dev/null ||
        die "needs CPUs $SERVER_CPU and $LOAD_CPU (the node on one, the load on the other); this machine has $(nproc)"
}

# wrk, curl, vips (libvips-tools), and the brotli and zstd command-line tools from Debian's
# packages when missing. apt-get update runs once, and only when something is missing.
install_tools() {
    local need=() tool
    declare -A pkg=([wrk]=wrk [curl]=curl [vipsthumbnail]=libvips-tools [vips]=libvips-tools [brotli]=brotli [zstd]=zstd [gzip]=gzip)
    for tool in wrk curl vipsthumbnail vips brotli zstd gzip; do
        command -v "$tool" >/dev/null || need+=("${pkg[$tool]}")
    done
    for tool in taskset python3; do
        command -v "$tool" >/dev/null || die "$tool not found"
    done
    if ((${#need[@]})); then
        mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
        [[ $(id -u) == 0 ]] || die "missing: ${need[*]}; as root: apt-get update && apt-get install -y ${need[*]}"
        command -v apt-get >/dev/null || die "missing: ${need[*]}, and no apt-get to install them"
        log "installing from Debian's packages: ${need[*]}"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
    fi
}

# `pub const CACHED: Levels = Levels { br: 6, zstd: 8, gzip: 6 };` and the same for PASS in
# config/src/compression.rs; `default_quality: 85,` and `avif_speed: 9,` in the Default of
# config/src/images.rs.
read_defaults() {
    local src="$ROOT/config/src/compression.rs" images="$ROOT/config/src/images.rs" line c v
    for v in CACHED PASS; do
        line=$(grep -E "pub const $v: Levels = Levels \{" "$src") || die "no Levels::$v in $src"
        for c in "${CODINGS[@]}"; do
            [[ "$line" =~ [^a-z]$c:\ ([0-9]+) ]] || die "no $c level in Levels::$v in $src: $line"
            if [[ $v == CACHED ]]; then CACHED_LEVEL[$c]=${BASH_REMATCH[1]}; else PASS_LEVEL[$c]=${BASH_REMATCH[1]}; fi
        done
    done
    # The first of each is the Default; the tests further down set other values.
    QUALITY=$(sed -nE '/^ *default_quality: ([0-9]+),$/ { s//\1/p; q }' "$images")
    AVIF_SPEED=$(sed -nE '/^ *avif_speed: ([0-9]+),$/ { s//\1/p; q }' "$images")
    [[ "$QUALITY" =~ ^[0-9]+$ && "$AVIF_SPEED" =~ ^[0-9]+$ ]] ||
        die "could not read default_quality and avif_speed from the Default of ImagesConfig in $images"
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

# Text that compresses like minified JavaScript and HTML: the vocabulary of the unit tests'
# generator (edge-node/src/transform/compress/test_data.rs), one token in three an identifier.
# shellcheck disable=SC2016 # Python source, not shell.
TEXT_PY='
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
words = ["function", "return", "const ", "let ", "var ", "this.", "document.", "getElementById(",
    "querySelector(", "addEventListener(", "\"click\"", "=>", " = ", " === ", "if (", "} else {",
    "for (", "null", "true", "false", "undefined", "{", "}", "(", ")", ";", ",", ".", "\n", "  ",
    "<div class=\"", "\">", "</div>", "<span>", "</span>", "<a href=\"/", "</a>", "<li>", "</li>",
    "window.", "Promise.resolve(", "await ", "async ", "JSON.parse(", ".length", ".map(",
    ".filter(", "[0]", "0", "1", "42"]
rnd = random.Random(seed)
letters = "abcdefghijklmnopqrstuvwxyz"
idents = ["".join(rnd.choice(letters) for _ in range(2 + rnd.randrange(9))) for _ in range(300)]
pool = words + idents
weights = [2 / len(words)] * len(words) + [1 / len(idents)] * len(idents)
out, n = [], 0
while n < size:
    chunk = "".join(rnd.choices(pool, weights, k=65536))
    out.append(chunk)
    n += len(chunk)
with open(path, "wb") as f:
    f.write("".join(out).encode()[:size])
'

# A 2000x1500 photo-like JPEG (q90): luminance at three scales of smoothed noise plus a
# gradient, weaker colour, fine grain. Made with the vips command line (no Python imaging).
make_photo() { # out.jpg
    local d="$WORK/gen" s
    mkdir -p "$d"
    # octave name width height sigma mean seed upscale: noise, enlarged with a cubic kernel.
    octave() {
        vips gaussnoise "$d/$1.small.v" "$2" "$3" --sigma "$4" --mean "$5" --seed "$6"
        vips resize "$d/$1.small.v" "$d/$1.v" "$7" --kernel cubic
    }
    octave la 40 30 40 85 1 50
    octave lb 200 150 16 0 2 10
    octave lc 500 375 8 0 3 4
    vips xyz "$d/xy.v" 2000 1500
    vips bandmean "$d/xy.v" "$d/xym.v"
    vips linear "$d/xym.v" "$d/grad.v" 0.05 0
    vips sum "$d/la.v $d/lb.v $d/lc.v $d/grad.v" "$d/luma.v"
    for s in 1 2 3; do octave "ch$s" 40 30 14 0 $((s + 10)) 50; done
    vips bandjoin "$d/ch1.v $d/ch2.v $d/ch3.v" "$d/chroma.v"
    vips gaussnoise "$d/grain.v" 2000 1500 --sigma 3 --mean 0 --seed 30
    vips sum "$d/luma.v $d/chroma.v $d/grain.v" "$d/rgb.v"
    vips cast "$d/rgb.v" "$d/u8.v" uchar
    vips copy "$d/u8.v" "$d/srgb.v" --interpretation srgb
    vips jpegsave "$d/srgb.v" "$1" --Q 90 --strip
    rm -rf "$d"
}

make_files() {
    mkdir -p "$WORK/files"
    log "generating the test files"
    python3 -c "$TEXT_PY" "$WORK/files/app.js" "$HIT_BYTES" 1
    if [[ -n "$TEXT_FILE" ]]; then
        cp "$TEXT_FILE" "$WORK/files/big.js"
        TEXT_WHAT="the file $TEXT_FILE"
    else
        python3 -c "$TEXT_PY" "$WORK/files/big.js" $((COMPRESS_MIB << 20)) 2
        TEXT_WHAT="generated JavaScript-like text"
    fi
    make_photo "$WORK/files/photo.jpg" 2>>"$WORK/logs/vips.stderr" ||
        die "vips could not make the test JPEG: $(tail -n 3 "$WORK/logs/vips.stderr")"
    BIG_BYTES=$(stat -c %s "$WORK/files/big.js")
    PHOTO_BYTES=$(stat -c %s "$WORK/files/photo.jpg")
    [[ "$(vipsheader "$WORK/files/photo.jpg" 2>/dev/null)" == *"2000x1500"* ]] || die "the test JPEG is not 2000x1500"
}

start_origin() {
    taskset -c "$LOAD_CPU" python3 "$BENCH_DIR/counting_origin.py" --port-file "$WORK/origin.port" --files "$WORK/files" \
        </dev/null >/dev/null 2>>"$WORK/logs/origin.stderr" &
    PIDS+=("$!")
    wait_file "$WORK/origin.port" "$!" origin
    ORIGIN_PORT=$(cat "$WORK/origin.port")
}

start_edge() {
    local dir="$WORK/edge"
    mkdir -p "$dir/cache"
    cat >"$dir/edge.toml" <<EOF
[node]
name = "bench-edge"

[listen]
http = "127.0.0.1:0"
admin = "127.0.0.1:0"
admin_token = "bench-admin-token-0123456789"   # the admin listener needs a token (README: Admin listener)

[cache]
memory = "512MiB"
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

[services.compression]
cached_level = { br = ${CACHED_LEVEL[br]}, zstd = ${CACHED_LEVEL[zstd]}, gzip = ${CACHED_LEVEL[gzip]} }
pass_level = { br = ${PASS_LEVEL[br]}, zstd = ${PASS_LEVEL[zstd]}, gzip = ${PASS_LEVEL[gzip]} }

[services.images]
enabled = true
default_quality = $QUALITY
avif_speed = $AVIF_SPEED
EOF
    taskset -c "$SERVER_CPU" "$EDGE" --config "$dir/edge.toml" --ready-file "$dir/ready.json" \
        </dev/null >/dev/null 2>>"$WORK/logs/edge-node.stderr" &
    EDGE_PID=$!
    PIDS+=("$EDGE_PID")
    wait_file "$dir/ready.json" "$EDGE_PID" edge-node
    EDGE_HTTP=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$dir/ready.json")
    EDGE_ADMIN=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$dir/ready.json")
    [[ -n "$EDGE_HTTP" && -n "$EDGE_ADMIN" ]] || die "ready file unreadable: $(cat "$dir/ready.json")"
}

# The edge node's threads by name, and the CPUs they may run on (as in hit-path.sh).
edge_threads() {
    local names cpus
    names=$(cat /proc/"$EDGE_PID"/task/*/comm 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s x%d", sep, $2, $1; sep = ", " }')
    cpus=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/"$EDGE_PID"/task/*/status 2>/dev/null | sort -u | paste -sd' ')
    echo "$names; allowed CPUs: $cpus"
}

# The sum of a metric's samples whose labels hold the given text, from the node's /metrics.
metric() { # name label-text
    curl -sS -H "Authorization: Bearer bench-admin-token-0123456789" "http://$EDGE_ADMIN/metrics" | awk -v name="$1" -v want="$2" '
        { series = $1; sub(/\{.*/, "", series) }
        series == name && index($0, want) { s += $NF }
        END { printf "%.6f\n", s }'
}

edge_non_hits() {
    curl -sS -H "Authorization: Bearer bench-admin-token-0123456789" "http://$EDGE_ADMIN/metrics" |
        awk '/^outpost_requests_total\{/ && !/cache="hit"/ { s += $NF } END { printf "%d\n", s }'
}

# One GET from CPU 1; prints "status bytes seconds content-encoding content-type cache-verdict".
fetch() { # path accept-encoding body-file
    local headers="$WORK/fetch.headers" out ce ct verdict=other args=(-H "Host: $HOST")
    [[ -n "$2" ]] && args+=(-H "Accept-Encoding: $2")
    out=$(taskset -c "$LOAD_CPU" curl -sS -o "$3" -D "$headers" -w '%{http_code} %{size_download} %{time_total}' \
        "${args[@]}" "http://$EDGE_HTTP$1") || die "GET $1 failed"
    ce=$(awk -F': *' 'tolower($1) == "content-encoding" { v = $2 } END { gsub(/\r/, "", v); print (v == "" ? "identity" : v) }' "$headers")
    ct=$(awk -F': *' 'tolower($1) == "content-type" { v = $2 } END { gsub(/[\r ]/, "", v); print (v == "" ? "none" : v) }' "$headers")
    # Contract (docs/contracts.md): a fresh hit is `bench-edge; hit; ttl=N`.
    grep -qiE '^cache-status: *bench-edge; *hit(;|[[:space:]]*$)' "$headers" && verdict=hit
    echo "$out $ce $ct $verdict"
}

# ---- 1. hits: the brotli variant against identity ----------------------------------------

declare -A RPS P50 P99 NOTE HIT_BODY

hit_ae() { [[ $1 == br ]] && echo br || echo ""; }

warm_hits() {
    local c got i status bytes ce verdict
    for c in identity br; do
        for i in 1 2 3; do
            got=$(fetch /files/app.js "$(hit_ae "$c")" /dev/null)
            read -r status bytes _ ce _ verdict <<<"$got"
            ((i == 1)) && continue
            [[ $status == 200 && $ce == "$c" && $verdict == hit ]] ||
                die "request $i for /files/app.js ($c): expected 200, $c, a hit; got '$got'"
            HIT_BODY[$c]=$bytes
        done
    done
    ((HIT_BODY[identity] == HIT_BYTES)) || die "identity body of ${HIT_BODY[identity]} bytes, expected $HIT_BYTES"
    log "hits warmed: requests 2 and 3 were hits, brotli variant ${HIT_BODY[br]} bytes"
}

run_wrk() { # case duration outfile
    local secs args=(-H "Host: $HOST")
    secs=$(seconds "$2")
    [[ $1 == br ]] && args+=(-H "Accept-Encoding: br")
    timeout --kill-after=5 $((secs + 30)) taskset -c "$LOAD_CPU" \
        wrk -t1 -c"$CONNECTIONS" -d"$2" --latency "${args[@]}" "http://$EDGE_HTTP/files/app.js" >"$3" 2>&1 ||
        die "wrk ($1) failed: $(cat "$3")"
}

# shellcheck disable=SC2034 # P50 and P99 are read through the nameref in figure().
measure_hits() { # case round
    local out="$WORK/wrk-$1-$2.txt" before after vbefore vafter rps p50 p99 non2xx sockerr
    before=$(edge_non_hits)
    vbefore=$(metric outpost_transform_variants_total 'outcome="miss"')
    run_wrk "$1" "$DURATION" "$out"
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(awk '$1 == "50%" { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    [[ -n "$rps" && -n "$p50" && -n "$p99" ]] || die "could not read wrk's output: $(cat "$out")"
    RPS[$1,$2]=$rps
    P50[$1,$2]=$(to_ms "$p50") || die "unknown latency unit in '$p50'"
    P99[$1,$2]=$(to_ms "$p99") || die "unknown latency unit in '$p99'"
    non2xx=$(awk '/^ *Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sockerr=$(awk '/^ *Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out")
    [[ -n "$non2xx" ]] && NOTE[$1]+=" round $2: $non2xx non-2xx responses;"
    [[ -n "$sockerr" ]] && NOTE[$1]+=" round $2: socket errors ($sockerr);"
    after=$(edge_non_hits)
    vafter=$(metric outpost_transform_variants_total 'outcome="miss"')
    ((after - before == 0)) || NOTE[$1]+=" round $2: $((after - before)) non-hit responses;"
    [[ "$vafter" == "$vbefore" ]] || NOTE[$1]+=" round $2: variants made during the run;"
    log "$(printf 'hits round %d  %-8s %10s req/s  p50 %s  p99 %s' "$2" "$1" "$rps" "$p50" "$p99")"
}

figure() { # array-name case
    local -n arr=$1
    local r vals=()
    for ((r = 1; r <= ROUNDS; r++)); do vals+=("${arr[$2,$r]}"); done
    median "${vals[@]}"
}

bench_hits() {
    local c r order
    warm_hits
    if [[ "$(seconds "$WARMUP")" != 0 ]]; then
        log "wrk warm-up, $WARMUP per case"
        for c in identity br; do run_wrk "$c" "$WARMUP" "$WORK/wrk-warmup.txt"; done
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then order=(identity br); else order=(br identity); fi
        for c in "${order[@]}"; do measure_hits "$c" "$r"; done
    done
}

# ---- 2. compression through the node, and the command-line compressors -----------------

declare -A CTIME CBYTES PEER_MS PEER_BYTES

level_of() { # cached|pass coding
    if [[ $1 == cached ]]; then echo "${CACHED_LEVEL[$2]}"; else echo "${PASS_LEVEL[$2]}"; fi
}

# Seconds of one request, checked: 200, the wanted coding, and for `hit` a base served from
# the cache. Appends to CTIME[key] and sets CBYTES[key].
compress_request() { # key path coding(identity|br|...) expect(hit|any)
    local got status bytes secs ce verdict ae=""
    [[ $3 != identity ]] && ae=$3
    got=$(fetch "$2" "$ae" /dev/null)
    read -r status bytes secs ce _ verdict <<<"$got"
    [[ $status == 200 && $ce == "$3" ]] || die "GET $2 ($3): expected 200 in $3, got '$got'"
    [[ $4 == hit && $verdict != hit ]] && NOTE[compress]+=" $2 ($3): base not a hit;"
    CTIME[$1]+="$secs "
    CBYTES[$1]=$bytes
}

bench_compression() {
    local i c url
    log "compression: $COMPRESS_REPS new URLs per level, $BIG_BYTES bytes each"
    for ((i = 1; i <= COMPRESS_REPS; i++)); do
        # Cached: the base is fetched and stored once (identity miss), then each coding is made
        # from the stored base at cached_level and stored as a variant.
        url="/files/big.js?v=c$i"
        compress_request identity-miss "$url" identity any
        compress_request identity-hit "$url" identity hit
        for c in "${CODINGS[@]}"; do compress_request "cached-$c" "$url" "$c" hit; done
        # Pass: the origin says no-store, so every request goes to it and is compressed at
        # pass_level for that request alone.
        url="/files/big.js?v=p$i&cache-control=no-store"
        compress_request identity-pass "$url" identity any
        for c in "${CODINGS[@]}"; do compress_request "pass-$c" "$url" "$c" any; done
    done
    # The peers: each tool at the same level on the same file, on the node's core, output
    # discarded. The first run of each warms the page cache and is not counted.
    local level cmd
    for c in "${CODINGS[@]}"; do
        for level in cached pass; do
            case $c in
                br) cmd=(brotli -q "$(level_of "$level" br)" -c "$WORK/files/big.js") ;;
                zstd) cmd=(zstd -q "-$(level_of "$level" zstd)" -c "$WORK/files/big.js") ;;
                gzip) cmd=(gzip "-$(level_of "$level" gzip)" -c "$WORK/files/big.js") ;;
            esac
            PEER_MS[$level-$c]=$(time_command "$COMPRESS_REPS" "${cmd[@]}")
            PEER_BYTES[$level-$c]=$("${cmd[@]}" | wc -c)
        done
    done
}

# ---- 3. images through the node, and vipsthumbnail ---------------------------------------

declare -A ITIME IBYTES IFILE

bench_images() {
    local i case path got status bytes secs ct want
    declare -A query=([jpeg]="" [webp]="&width=400&format=webp" [avif]="&width=400&format=avif")
    declare -A type=([jpeg]=image/jpeg [webp]=image/webp [avif]=image/avif)
    # One unmeasured request of each first: the first AVIF encode sets up rav1e's thread pool.
    for case in jpeg webp avif; do
        fetch "/files/photo.jpg?v=warm-$case${query[$case]}" "" /dev/null >/dev/null
    done
    for case in webp avif; do
        IN_NODE_SUM0[$case]=$(metric outpost_image_transcode_duration_seconds_sum "format=\"$case\"")
        IN_NODE_COUNT0[$case]=$(metric outpost_image_transcode_duration_seconds_count "format=\"$case\"")
    done
    log "images through the node: $IMAGE_REPS new URLs per case"
    for ((i = 1; i <= IMAGE_REPS; i++)); do
        for case in jpeg webp avif; do
            path="/files/photo.jpg?v=$case$i${query[$case]}"
            IFILE[$case]="$WORK/node-out.$case"
            got=$(fetch "$path" "" "${IFILE[$case]}")
            read -r status bytes secs _ ct _ <<<"$got"
            [[ $status == 200 && $ct == "${type[$case]}" ]] || die "GET $path: expected 200 ${type[$case]}, got '$got'"
            ITIME[$case]+="$secs "
            IBYTES[$case]=$bytes
        done
    done
    for case in webp avif; do
        IN_NODE_SUM[$case]=$(metric outpost_image_transcode_duration_seconds_sum "format=\"$case\"")
        IN_NODE_COUNT[$case]=$(metric outpost_image_transcode_duration_seconds_count "format=\"$case\"")
        want=$(awk -v a="${IN_NODE_COUNT[$case]}" -v b="${IN_NODE_COUNT0[$case]}" 'BEGIN { printf "%d", a - b }')
        ((want == IMAGE_REPS)) || NOTE[images]+=" $case: $want transcodes counted by the node for $IMAGE_REPS requests;"
    done
    bench_vips
}
declare -A IN_NODE_SUM0 IN_NODE_COUNT0 IN_NODE_SUM IN_NODE_COUNT

# vipsthumbnail pays its process start (libvips and its loaders) on every run; one run over a
# batch of copies of the input pays it once. Per image: (batch - one) / (batch size - 1).
declare -A VIPS_ONE VIPS_BATCH VIPS_PER VIPS_BYTES VIPS_FILE
VIPS_CASES=(webp avif-e0 avif-e4)

bench_vips() {
    local dir="$WORK/vips" i case inputs=()
    # Output suffix and save options: WebP at libwebp's method 4, as the node's webp crate
    # encodes (vips' default effort); AVIF at effort 0 (aom speed 9, the node's rav1e speed 9
    # by name) and at vips' default effort 4 (aom speed 5). Bit depth 8, chroma 4:2:0 below Q 90.
    declare -A VIPS_OPTS=([webp]="webp[Q=$QUALITY]" [avif-e0]="avif[Q=$QUALITY,effort=0]" [avif-e4]="avif[Q=$QUALITY]")
    mkdir -p "$dir/in" "$dir/out"
    for ((i = 1; i <= IMAGE_REPS; i++)); do
        cp "$WORK/files/photo.jpg" "$dir/in/p$i.jpg"
        inputs+=("$dir/in/p$i.jpg")
    done
    for case in "${VIPS_CASES[@]}"; do
        log "vipsthumbnail: $case, $VIPS_ROUNDS runs of 1 image and of $IMAGE_REPS"
        VIPS_ONE[$case]=$(time_command "$VIPS_ROUNDS" vipsthumbnail "${inputs[0]}" -s 400 -o "$dir/out/%s-$case.${VIPS_OPTS[$case]}")
        VIPS_BATCH[$case]=$(time_command "$VIPS_ROUNDS" vipsthumbnail "${inputs[@]}" -s 400 -o "$dir/out/%s-$case.${VIPS_OPTS[$case]}")
        VIPS_PER[$case]=$(awk -v b="${VIPS_BATCH[$case]}" -v o="${VIPS_ONE[$case]}" -v n="$IMAGE_REPS" \
            'BEGIN { printf "%.1f\n", (b - o) / (n - 1) }')
        VIPS_FILE[$case]="$dir/out/p1-$case.${case%%-*}"
        [[ -s "${VIPS_FILE[$case]}" ]] || die "vipsthumbnail wrote no ${VIPS_FILE[$case]}"
        VIPS_BYTES[$case]=$(stat -c %s "${VIPS_FILE[$case]}")
        [[ "$(vipsheader "${VIPS_FILE[$case]}" 2>/dev/null)" == *"400x300"* ]] ||
            NOTE[images]+=" vipsthumbnail $case: not 400x300;"
    done
}

# Median milliseconds of a command run N times on the node's core, after one unmeasured run;
# with hyperfine when it is installed (no shell), else a loop over `date +%s%N`.
time_command() { # runs command...
    local runs=$1 i start end vals=()
    shift
    if [[ -n "$HYPERFINE" ]]; then
        taskset -c "$SERVER_CPU" hyperfine -N --style none --warmup 1 --runs "$runs" \
            --export-json "$WORK/hyperfine.json" -- "$(printf '%q ' "$@")" >/dev/null 2>>"$WORK/logs/hyperfine.stderr" ||
            die "hyperfine failed on: $*"
        python3 -c 'import json, sys; print("%.1f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' \
            "$WORK/hyperfine.json"
        return
    fi
    taskset -c "$SERVER_CPU" "$@" >/dev/null 2>>"$WORK/logs/peers.stderr" || die "failed: $* ($(tail -n 2 "$WORK/logs/peers.stderr"))"
    for ((i = 0; i < runs; i++)); do
        start=$(date +%s%N)
        taskset -c "$SERVER_CPU" "$@" >/dev/null 2>>"$WORK/logs/peers.stderr"
        end=$(date +%s%N)
        vals+=("$(((end - start) / 1000))")
    done
    awk -v us="$(median "${vals[@]}")" 'BEGIN { printf "%.1f\n", us / 1000 }'
}

# Chroma and depth of an AVIF (its av1C box) or a WebP (lossy VP8 is always 4:2:0).
# shellcheck disable=SC2016 # Python source, not shell.
FORMAT_PY='
import sys
data = open(sys.argv[1], "rb").read()
i = data.find(b"av1C")
if i >= 0:
    b = data[i + 6]
    depth = (12 if b & 0x20 else 10) if b & 0x40 else 8
    sub = {(1, 1): "4:2:0", (1, 0): "4:2:2", (0, 0): "4:4:4"}.get(((b >> 3) & 1, (b >> 2) & 1), "?")
    print("mono" if b & 0x10 else sub, "%d-bit" % depth)
elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
    print("4:2:0 8-bit" if b"VP8 " in data[12:64] else "lossless" if b"VP8L" in data[12:64] else "?")
else:
    print("?")
'
chroma() { python3 -c "$FORMAT_PY" "$1" 2>/dev/null || echo "?"; }

# ---- report ---------------------------------------------------------------------------

# The median of a list of seconds ("0.12 0.11 ..."), in milliseconds.
ms_of() {
    local -a secs
    read -ra secs <<<"$1"
    awk -v s="$(median "${secs[@]}")" 'BEGIN { printf "%.1f\n", s * 1000 }'
}
mbps() { awk -v b="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.1f\n", b / ms / 1000; else print "n/a" }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", a - b }'; }

levels() { # array-name
    local -n of=$1
    echo "br ${of[br]}, zstd ${of[zstd]}, gzip ${of[gzip]}"
}

versions() {
    local p out=""
    for p in libvips42 libheif1 libaom3 libwebp7; do
        out+="$p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo '?'), "
    done
    echo "${out%, }"
}

rav1e_features() {
    local f
    f=$(cd "$ROOT" && timeout 120 cargo tree -p edge-node -e features -i rav1e --offline 2>/dev/null |
        grep -o 'rav1e feature "[a-z_-]*"' | sed 's/.*"\(.*\)"/\1/' | sort -u | paste -sd, -) || true
    echo "${f:-unknown}"
}

report_hits() {
    local c rps p50 p99
    echo "1. Cache hits of a $HIT_BYTES-byte JavaScript-like object: the stored brotli variant against identity"
    echo "   wrk -t1 -c$CONNECTIONS -d$DURATION --latency, HTTP/1.1 keep-alive, one URL; $WARMUP warm-up per case,"
    echo "   $ROUNDS round(s), order alternating; figures are the median. br: -H 'Accept-Encoding: br'."
    printf '   %-12s %10s %10s %9s %9s\n' case "body bytes" "req/s" "p50 ms" "p99 ms"
    for c in identity br; do
        printf '   %-12s %10d %10.0f %9.3f %9.3f\n' "$c" "${HIT_BODY[$c]}" "$(figure RPS "$c")" \
            "$(figure P50 "$c")" "$(figure P99 "$c")"
    done
    printf '   %-12s %10s %10s %9s %9s\n' "br/identity" "$(ratio "${HIT_BODY[br]}" "${HIT_BODY[identity]}")" \
        "$(ratio "$(figure RPS br)" "$(figure RPS identity)")" "$(ratio "$(figure P50 br)" "$(figure P50 identity)")" \
        "$(ratio "$(figure P99 br)" "$(figure P99 identity)")"
    if ((ROUNDS > 1)); then
        for c in identity br; do
            local line="" r
            for ((r = 1; r <= ROUNDS; r++)); do line+=$(printf ' %8.0f' "${RPS[$c,$r]}"); done
            printf '   req/s per round, %-8s%s\n' "$c" "$line"
        done
    fi
}

report_compression() {
    local level c key ms floor net peer tool
    echo "2. Compression of $BIG_BYTES bytes of $TEXT_WHAT through the node (curl on CPU $LOAD_CPU,"
    echo "   median of $COMPRESS_REPS requests, each a new URL), beside the command-line tool at the same"
    echo "   level on the same file and core (median of $COMPRESS_REPS runs). MB = 10^6 bytes of input."
    printf '   %-8s %-6s %5s %10s %7s %9s %9s %9s %9s %9s\n' level coding "lvl" "out bytes" ratio "node ms" "net ms" \
        "net MB/s" "tool MB/s" "node/tool"
    for level in cached pass; do
        if [[ $level == cached ]]; then key=identity-hit; else key=identity-pass; fi
        floor=$(ms_of "${CTIME[$key]}")
        printf '   %-8s %-6s %5s %10d %7s %9.1f %9s %9s %9s %9s\n' "$level" identity - "$BIG_BYTES" 1.00x "$floor" - - - -
        for c in "${CODINGS[@]}"; do
            ms=$(ms_of "${CTIME[$level-$c]}")
            net=$(minus "$ms" "$floor")
            peer=$(mbps "$BIG_BYTES" "${PEER_MS[$level-$c]}")
            printf '   %-8s %-6s %5s %10d %7s %9.1f %9.1f %9s %9s %9s\n' "$level" "$c" "$(level_of "$level" "$c")" "${CBYTES[$level-$c]}" \
                "$(ratio "$BIG_BYTES" "${CBYTES[$level-$c]}")" "$ms" "$net" "$(mbps "$BIG_BYTES" "$net")" "$peer" \
                "$(ratio "$(mbps "$BIG_BYTES" "$net")" "$peer")"
        done
    done
    echo "   identity rows are the floor each coding's 'net ms' subtracts: cached, a hit on the stored base"
    echo "   (the coded requests are hits on the same base, their variants made now: one request made each);"
    echo "   pass, a no-store miss passed through (each coded request is one more such miss)."
    echo "   identity miss that filled each cached base: $(ms_of "${CTIME[identity-miss]}") ms."
    printf '   tool bytes at the same levels:'
    for level in cached pass; do
        for c in "${CODINGS[@]}"; do printf ' %s %s' "$c-$level" "${PEER_BYTES[$level-$c]}"; done
    done
    echo
    tool="brotli $(brotli --version 2>/dev/null | awk '{ print $2 }'), "
    tool+="zstd $(zstd --version 2>/dev/null | grep -o 'v[0-9.]*' | head -1), $(gzip --version 2>/dev/null | head -1)"
    echo "   tools: $tool"
}

report_images() {
    local jpeg webp avif case v
    jpeg=$(ms_of "${ITIME[jpeg]}")
    echo "3. A ${PHOTO_BYTES}-byte 2000x1500 JPEG (q90) to 400x300 (width=400 / -s 400), quality $QUALITY, one image at a time"
    echo "   on CPU $SERVER_CPU. edge-node: median of $IMAGE_REPS requests, each a new URL (?v=N: a new source fetch);"
    echo "   'net' subtracts the median of $IMAGE_REPS JPEG-only requests for new URLs (${jpeg} ms: the source miss"
    echo "   passed through), 'in node' is the node's own mean transcode time (decode, resize, encode;"
    echo "   outpost_image_transcode_duration_seconds). vipsthumbnail: per image in a batch of $IMAGE_REPS in one"
    echo "   process, less one run of 1 image (process start excluded). 'whole ms': edge-node the whole request,"
    echo "   vipsthumbnail one process for one image (median of $VIPS_ROUNDS runs)."
    printf '   %-6s %-50s %8s %8s %8s %7s  %s\n' output "who, settings" "net ms" "in node" "whole ms" "bytes" "chroma"
    for case in webp avif; do
        local req net in_node speed
        req=$(ms_of "${ITIME[$case]}")
        net=$(minus "$req" "$jpeg")
        in_node=$(awk -v s1="${IN_NODE_SUM[$case]}" -v s0="${IN_NODE_SUM0[$case]}" -v c1="${IN_NODE_COUNT[$case]}" \
            -v c0="${IN_NODE_COUNT0[$case]}" 'BEGIN { if (c1 > c0) printf "%.1f\n", (s1 - s0) * 1000 / (c1 - c0); else print "n/a" }')
        if [[ $case == webp ]]; then speed="libwebp (webp crate), method 4"; else speed="rav1e speed $AVIF_SPEED (image crate, ravif)"; fi
        printf '   %-6s %-50s %8.1f %8s %8.1f %7d  %s\n' "$case" "edge-node: $speed" "$net" "$in_node" "$req" \
            "${IBYTES[$case]}" "$(chroma "${IFILE[$case]}")"
        for v in "${VIPS_CASES[@]}"; do
            [[ ${v%%-*} == "$case" ]] || continue
            case $v in
                webp) speed="Q=$QUALITY, effort 4 (libwebp method 4)" ;;
                avif-e0) speed="Q=$QUALITY, effort=0 (aom speed 9)" ;;
                avif-e4) speed="Q=$QUALITY, effort 4 default (aom speed 5)" ;;
            esac
            printf '   %-6s %-50s %8.1f %8s %8.1f %7d  %s\n' "$case" "vipsthumbnail $speed" "${VIPS_PER[$v]}" - \
                "${VIPS_ONE[$v]}" "${VIPS_BYTES[$v]}" "$(chroma "${VIPS_FILE[$v]}")"
        done
    done
    webp=$(minus "$(ms_of "${ITIME[webp]}")" "$jpeg")
    avif=$(minus "$(ms_of "${ITIME[avif]}")" "$jpeg")
    echo "   edge-node net / vipsthumbnail per image: webp $(ratio "$webp" "${VIPS_PER[webp]}"), avif $(ratio "$avif" "${VIPS_PER[avif-e0]}")" \
        "against effort=0, $(ratio "$avif" "${VIPS_PER[avif-e4]}") against the default effort"
}

report() {
    echo "Outpost edge-node transform phase: compression and image transcoding ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "  machine:   $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    echo "  edge-node: $EDGE_REV ($EDGE)"
    echo "             one service, with the defaults of config/src (written into its config): compression"
    echo "             prefer br, zstd, gzip; cached_level $(levels CACHED_LEVEL); pass_level $(levels PASS_LEVEL);"
    echo "             images.enabled = true, default_quality $QUALITY, avif_speed $AVIF_SPEED"
    echo "             rav1e features in this tree: $(rav1e_features); nasm: $(command -v nasm >/dev/null && echo installed || echo absent)"
    echo "  pinning:   edge-node, vipsthumbnail and the compressors on CPU $SERVER_CPU (taskset); wrk, curl and the origin"
    echo "             on CPU $LOAD_CPU. edge-node threads now: $(edge_threads)"
    echo "  vips:      $(vipsthumbnail --vips-version 2>/dev/null | head -1); $(versions)"
    if [[ -n "$HYPERFINE" ]]; then
        echo "  timing:    hyperfine $(hyperfine --version | awk '{ print $2 }') -N for the command-line peers"
    else
        echo "  timing:    date +%s%N around each run of the command-line peers (hyperfine not installed)"
    fi
    echo
    report_hits
    echo
    report_compression
    echo
    report_images
    echo
    echo "Ratios: for req/s and MB/s above 1.00x means the first named is faster; for ms below 1.00x."
    echo "Compare within this run only."
    local k warned=""
    for k in identity br compress images; do
        if [[ -n "${NOTE[$k]:-}" ]]; then
            [[ -z "$warned" ]] && printf '\nwarnings:\n' && warned=1
            echo "  $k:${NOTE[$k]}"
        fi
    done
}

main() {
    check_settings
    install_tools
    read_defaults
    HYPERFINE=$(command -v hyperfine || true)
    build_edge
    EDGE_REV=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "unknown revision")
    [[ -n "${EDGE_NODE_BIN:-}" ]] && EDGE_REV="given by EDGE_NODE_BIN; tree at $EDGE_REV"

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/outpost-transform.XXXXXX")
    mkdir -p "$WORK/logs"
    make_files
    start_origin
    start_edge
    log "origin 127.0.0.1:$ORIGIN_PORT, edge-node $EDGE_HTTP (admin $EDGE_ADMIN)"

    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    bench_hits
    bench_compression
    bench_images
    report
}

main "$@"
