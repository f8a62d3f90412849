#!/usr/bin/env bash
# Builds Outpost's Debian packages from a staged tree with `dpkg-deb --build` (no cargo-deb:
# nothing to compile before packaging, and the layout below is all there is to review).
#
#   packaging/build.sh                   # release binaries -> target/packages/release/*.deb
#   packaging/build.sh --profile dev     # debug binaries (CI: the ones the tests built)
#   packaging/build.sh --out DIR
#   packaging/build.sh --no-build        # package the binaries already in target/PROFILE
#
# Packages: outpost-edge-node (edge-node + origin-shield), outpost-control-plane, outpostctl,
# and for each a -dbgsym package with the split debug info. Each binary is built with
# `cargo build -p PKG --bin BIN` (plus --release); CI packages the ones its tests built
# (--profile dev --no-build). Each binary's debug info is split off (objcopy, as Debian's
# dh_strip does): the packaged binary keeps its symbol table (function names in a backtrace)
# and a .gnu_debuglink; the -dbgsym package installs /usr/lib/debug/.build-id/XX/YYYY.debug,
# where gdb and Rust's own backtraces find file:line.
#
# Needs: cargo, dpkg-deb, objcopy, objdump (binutils), gzip.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

profile=release
out=
build=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile=${2:?--profile needs release or dev}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --no-build) build=no; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$profile" in
    # xz for what ships; gzip -1 for CI's debug packages (xz takes minutes on 2 busy cores).
    release) bindir=$root/target/release; cargo_profile=(--release); compress=(-Zxz) ;;
    dev) bindir=$root/target/debug; cargo_profile=(); compress=(-Zgzip -z1) ;;
    *) echo "build.sh: --profile is release or dev, not $profile" >&2; exit 2 ;;
esac
out=${out:-$root/target/packages/$profile}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)-1
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"
rm -f "$out"/*.deb

if [ "$build" = yes ]; then
    echo "== cargo build (${profile}): edge-node, origin-shield, control-plane, outpostctl"
    for pkg_bin in edge-node:edge-node origin-shield:origin-shield control-plane:control-plane control-plane:outpostctl; do
        cargo build --locked "${cargo_profile[@]}" -p "${pkg_bin%%:*}" --bin "${pkg_bin##*:}"
    done
fi

# install_bin PKG BIN: BIN, stripped of its debug info, into PKG's tree; the debug info into
# PKG-dbgsym's, by build id.
install_bin() {
    local pkg=$1 bin=$2 tree=$stage/$1 dbg=$stage/$1-dbgsym
    local id
    id=$(readelf -n "$bindir/$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
    [ -n "$id" ] || { echo "build.sh: $bin has no build id" >&2; exit 1; }
    install -d "$tree/usr/bin" "$dbg/usr/lib/debug/.build-id/${id:0:2}"
    local debug=$dbg/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
    objcopy --only-keep-debug --compress-debug-sections=zlib "$bindir/$bin" "$debug"
    chmod 0644 "$debug"
    objcopy --strip-debug --add-gnu-debuglink="$debug" "$bindir/$bin" "$tree/usr/bin/$bin"
    chmod 0755 "$tree/usr/bin/$bin"
    echo "$id" >> "$stage/$pkg.build-ids"
}

# depends BIN...: the Depends line for what the binaries link (glibc's highest symbol version).
depends() {
    local libs glibc
    libs=$(objdump -p "$@" | sed -n 's/^ *NEEDED *//p' | sort -u)
    for lib in $libs; do
        case "$lib" in
            libc.so.6|libm.so.6|ld-linux-*) ;;
            libgcc_s.so.1) ;;
            *) echo "build.sh: $* links $lib: add its package to depends()" >&2; exit 1 ;;
        esac
    done
    glibc=$(objdump -T "$@" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    local line="libc6 (>= $glibc)"
    if grep -qx libgcc_s.so.1 <<< "$libs"; then line="$line, libgcc-s1 (>= 3.0)"; fi
    echo "$line"
}

# docs PKG FILE...: copyright and the given docs under /usr/share/doc/PKG.
docs() {
    local pkg=$1; shift
    local doc=$stage/$pkg/usr/share/doc/$pkg
    install -d "$doc"
    install -m 0644 "$@" "$doc/"
    cat > "$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: outpost
Source: https://example.invalid/outpost

Files: *
Copyright: Outpost contributors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
}

# deb PKG: DEBIAN/ from packaging/debian/PKG (control filled in, conffiles = every file under
# /etc), then dpkg-deb; and PKG-dbgsym beside it.
deb() {
    local pkg=$1 tree=$stage/$1
    install -d "$tree/DEBIAN"
    local bins=("$tree"/usr/bin/*)
    local size deps
    size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
    deps=$(depends "${bins[@]}")
    sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$deps/" \
        "packaging/debian/$pkg/control" > "$tree/DEBIAN/control"
    for script in postinst prerm postrm; do
        if [ -f "packaging/debian/$pkg/$script" ]; then install -m 0755 "packaging/debian/$pkg/$script" "$tree/DEBIAN/"; fi
    done
    if [ -d "$tree/etc" ]; then (cd "$tree" && find etc -type f | sed 's|^|/|' | sort) > "$tree/DEBIAN/conffiles"; fi
    dpkg-deb --root-owner-group "${compress[@]}" --build "$tree" "$out/${pkg}_${version}_${arch}.deb" >/dev/null

    local dbg=$stage/$pkg-dbgsym
    install -d "$dbg/DEBIAN"
    cat > "$dbg/DEBIAN/control" <<EOF
Package: $pkg-dbgsym
Source: outpost
Version: $version
Architecture: $arch
Maintainer: Outpost maintainers <outpost@example.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$dbg" | cut -f1)
Depends: $pkg (= $version)
Section: debug
Priority: optional
Auto-Built-Package: debug-symbols
Build-Ids: $(tr '\n' ' ' < "$stage/$pkg.build-ids" | sed 's/ $//')
Description: debug symbols for $pkg
EOF
    dpkg-deb --root-owner-group "${compress[@]}" --build "$dbg" "$out/${pkg}-dbgsym_${version}_${arch}.deb" >/dev/null
}

echo "== stage"
p=outpost-edge-node
install_bin $p edge-node
install_bin $p origin-shield
install -D -m 0644 packaging/etc/edge.toml "$stage/$p/etc/outpost/edge.toml"
install -D -m 0644 packaging/etc/shield.toml "$stage/$p/etc/outpost/shield.toml"
install -D -m 0644 packaging/systemd/edge-node.service "$stage/$p/lib/systemd/system/edge-node.service"
install -D -m 0644 packaging/systemd/origin-shield.service "$stage/$p/lib/systemd/system/origin-shield.service"
install -D -m 0644 packaging/logrotate/outpost-edge-node "$stage/$p/etc/logrotate.d/outpost-edge-node"
install -D -m 0644 packaging/sysusers/outpost-edge-node.conf "$stage/$p/usr/lib/sysusers.d/outpost-edge-node.conf"
docs $p README.md
install -D -m 0644 config/examples/edge.toml "$stage/$p/usr/share/doc/$p/examples/edge.toml"

p=outpost-control-plane
install_bin $p control-plane
install -D -m 0644 packaging/etc/control-plane.toml "$stage/$p/etc/outpost/control-plane.toml"
install -D -m 0644 packaging/systemd/control-plane.service "$stage/$p/lib/systemd/system/control-plane.service"
install -D -m 0644 packaging/sysusers/outpost-control-plane.conf "$stage/$p/usr/lib/sysusers.d/outpost-control-plane.conf"
docs $p README.md

p=outpostctl
install_bin $p outpostctl
docs $p README.md

echo "== dpkg-deb"
for p in outpost-edge-node outpost-control-plane outpostctl; do deb $p; done
ls -l "$out"
