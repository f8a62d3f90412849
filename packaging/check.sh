#!/usr/bin/env bash
# Checks the packages packaging/build.sh made: installs them into a clean root (`dpkg --root`
# on an empty dpkg database; the maintainer scripts run chrootless, under DPKG_ROOT), runs each
# installed binary's check-config on the installed default config and its --help, verifies the
# systemd units (`systemd-analyze verify` when present, and the directives they must keep), the
# logrotate file, the maintainer scripts' syntax, and a purge. Run as root.
#
#   packaging/check.sh [DIR]     # DIR: where the .deb files are (default target/packages/release)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/packages/release}
fail() { echo "check.sh: $*" >&2; exit 1; }
shopt -s nullglob
debs=("$dir"/*.deb)
[ ${#debs[@]} -eq 6 ] || fail "expected 6 packages in $dir, found ${#debs[@]}"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "== install into a clean root"
[ "$(id -u)" -eq 0 ] || fail "run as root: dpkg --root installs files owned by root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
: > "$root/var/lib/dpkg/status"
: > "$root/var/lib/dpkg/available"
# The maintainer scripts run on this host with DPKG_ROOT set (the root has no shell to chroot
# into); they act under it only. libc6 is not in this root: --force-depends.
dpkg --root="$root" --force-depends --force-script-chrootless --install "${debs[@]}" >/dev/null 2>"$root/dpkg.log" \
    || fail "dpkg --install: $(cat "$root/dpkg.log")"
for p in outpost-edge-node outpost-control-plane outpostctl; do
    dpkg --root="$root" -s "$p" | grep -q '^Status: install ok installed' || fail "$p not installed"
done
conffiles=$(dpkg --root="$root" -s outpost-edge-node | sed -n '/^Conffiles:/,/^[A-Z]/p')
for f in /etc/outpost/edge.toml /etc/outpost/shield.toml /etc/logrotate.d/outpost-edge-node; do
    grep -q " $f " <<< "$conffiles" || fail "$f is not a conffile of outpost-edge-node"
done
dpkg --root="$root" -s outpost-control-plane | grep -q ' /etc/outpost/control-plane.toml ' \
    || fail "/etc/outpost/control-plane.toml is not a conffile of outpost-control-plane"
# postinst: the system user, and /etc/outpost readable by its group only.
gid=$(awk -F: '$1 == "outpost" { print $3 }' "$root/etc/group")
[ -n "$gid" ] && grep -q '^outpost:x:[0-9]*:'"$gid"':.*:/usr/sbin/nologin$' "$root/etc/passwd" \
    || fail "postinst made no system user outpost: $(cat "$root/etc/passwd" 2>/dev/null)"
[ "$(stat -c '%g %a' "$root/etc/outpost")" = "$gid 750" ] || fail "/etc/outpost: $(stat -c '%G %a' "$root/etc/outpost")"

echo "== installed binaries on the shipped defaults"
"$root/usr/bin/edge-node" check-config "$root/etc/outpost/edge.toml"
"$root/usr/bin/origin-shield" check-config "$root/etc/outpost/shield.toml"
"$root/usr/bin/control-plane" check-config "$root/etc/outpost/control-plane.toml"
for t in packaging/docker/edge.toml packaging/docker/shield.toml; do "$root/usr/bin/edge-node" check-config "$t"; done
"$root/usr/bin/control-plane" check-config packaging/docker/control-plane.toml
for bin in edge-node origin-shield control-plane outpostctl; do
    "$root/usr/bin/$bin" --help > "$root/help.txt" || fail "$bin --help failed"
    grep -q 'Exit status' "$root/help.txt" || fail "$bin --help has no exit status section"
    "$root/usr/bin/$bin" --version
done
# The packaged binaries carry no debug info; the -dbgsym packages do, by build id.
for bin in edge-node origin-shield control-plane outpostctl; do
    if readelf -S "$root/usr/bin/$bin" | grep -q '\.debug_line'; then fail "$bin still has debug info"; fi
    id=$(readelf -n "$root/usr/bin/$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
    [ -f "$root/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" ] || fail "no split debug info for $bin ($id)"
done

echo "== systemd units"
units=("$root"/lib/systemd/system/*.service)
[ ${#units[@]} -eq 3 ] || fail "expected 3 units, found ${#units[@]}"
for unit in "${units[@]}"; do
    for want in Type=notify WatchdogSec= NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
        PrivateTmp=yes CapabilityBoundingSet=CAP_NET_BIND_SERVICE AmbientCapabilities=CAP_NET_BIND_SERVICE \
        StateDirectory= LimitNOFILE= User=outpost; do
        grep -q "^$want" "$unit" || fail "$(basename "$unit") lacks $want"
    done
done
for unit in edge-node origin-shield; do
    grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$root/lib/systemd/system/$unit.service" || fail "$unit: ExecReload"
    grep -q '^CacheDirectory=' "$root/lib/systemd/system/$unit.service" || fail "$unit: CacheDirectory"
    grep -q '^LogsDirectory=' "$root/lib/systemd/system/$unit.service" || fail "$unit: LogsDirectory"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    # The units name /usr/bin/...: verify them against the clean root's binaries.
    for unit in "${units[@]}"; do
        name=$(basename "$unit")
        sed "s|/usr/bin/|$root/usr/bin/|g" "$unit" > "$root/$name"
        out=$(systemd-analyze verify "$root/$name" 2>&1 || true)
        # Warnings about the host (no running systemd, missing dependencies' units) are not the unit's.
        problems=$(grep -v -e 'Failed to connect' -e 'System has not been booted' -e 'network-online.target' \
            -e 'multi-user.target' <<< "$out" | grep -E -i 'unknown|invalid|failed|error|ignoring' || true)
        [ -z "$problems" ] || fail "systemd-analyze verify $name: $problems"
        echo "$name: verified"
    done
else
    echo "systemd-analyze not found: units checked by their directives only"
fi

echo "== logrotate"
if command -v logrotate >/dev/null 2>&1; then
    # The user exists once postinst ran; parse the file as root's here.
    sed -e 's/su outpost outpost/su root root/' -e 's/create 0640 outpost adm/create 0640 root root/' \
        "$root/etc/logrotate.d/outpost-edge-node" > "$root/logrotate.conf"
    out=$(logrotate --debug --state "$root/logrotate.state" "$root/logrotate.conf" 2>&1)
    if grep -qi error <<< "$out"; then fail "logrotate: $out"; fi
    grep -q 'rotating pattern: /var/log/outpost/\*.log' <<< "$out" || fail "logrotate: no pattern: $out"
    echo "logrotate config parsed"
else
    echo "logrotate not found: its config is not parsed"
fi

echo "== maintainer scripts"
for script in packaging/debian/*/{postinst,prerm,postrm}; do
    [ -f "$script" ] || continue
    sh -n "$script" || fail "$script: syntax"
    if command -v shellcheck >/dev/null 2>&1; then shellcheck -s sh "$script"; fi
done
echo "== remove and purge"
dpkg --root="$root" --force-depends --force-script-chrootless --purge \
    outpost-edge-node-dbgsym outpost-edge-node >/dev/null 2>"$root/dpkg.log" || fail "dpkg --purge: $(cat "$root/dpkg.log")"
for f in /usr/bin/edge-node /etc/outpost/edge.toml /lib/systemd/system/edge-node.service; do
    [ ! -e "$root$f" ] || fail "$f left after purge"
done
[ -f "$root/etc/outpost/control-plane.toml" ] || fail "purging the edge removed the control plane's config"

echo "== contents"
for deb in "${debs[@]}"; do echo "-- $(basename "$deb")"; dpkg-deb -c "$deb" | awk '{print $3, $6}'; done
echo "packages ok"
