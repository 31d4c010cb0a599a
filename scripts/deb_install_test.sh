#!/usr/bin/env bash
# The Debian packages in a throwaway Debian 12 root (run by scripts/test.sh after
# scripts/package.sh): apt installs the three .debs with their dependencies from Debian;
# files, modes, the system user and the conffiles are checked; the units pass
# `systemd-analyze verify`; quietpatch-server and quietpatchd run as their units would
# (same user, paths, arguments, umask and no new privileges, under setpriv) and the device
# receives a real fix (libssl3 3.0.17 -> 3.0.20) from the server; `apt-get purge` then
# leaves nothing of theirs but the system user. Where systemd-nspawn can boot the root, the
# root is booted too and the units, started by systemd, install a second fix.
#
#   scripts/deb_install_test.sh [DIST_DIR]     (default dist/)
#
# The root comes from mmdebstrap (--variant=apt, the machine's own apt sources) once, and is
# cached as a tarball in ${QP_CACHE_DIR:-~/.cache/quietpatch}.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${1:-dist}
cache=${QP_CACHE_DIR:-$HOME/.cache/quietpatch}
fail() { echo "deb_install: $*" >&2; exit 1; }
say() { echo "deb_install: $*"; }

version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
debs=()
for p in quietpatch quietpatch-server quietpatch-publisher; do
  f="$dist/${p}_${version}_${arch}.deb"
  [ -s "$f" ] || fail "$f is missing (scripts/package.sh builds it)"
  debs+=("$f")
done

tarball="$cache/bookworm-apt.tar"
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  sources=/etc/apt/sources.list.d/debian.sources
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  say "making a Debian 12 root with mmdebstrap (once; cached in $tarball)"
  mmdebstrap --quiet --variant=apt bookworm "$cache/bookworm-apt.partial.tar" "$sources" \
    || fail "mmdebstrap failed"
  mv "$cache/bookworm-apt.partial.tar" "$tarball"
fi

work=$(mktemp -d /tmp/qp-deb-install.XXXXXX)
root="$work/root"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir "$root"
tar -xf "$tarball" -C "$root"
mkdir -p "$root/qp-test/trees"
cp "${debs[@]}" "$root/qp-test/"
scripts/testdata.sh > /dev/null
for v in base:3.0.17-1~deb12u2 a:3.0.20-1~deb12u2 b:3.0.22-1~deb12u2; do
  dpkg-deb -x "testdata/debs/libssl3_${v#*:}_${arch}.deb" "$root/qp-test/trees/${v%%:*}"
  # The packages themselves, for the component that is the installed libssl3.
  cp "testdata/debs/libssl3_${v#*:}_${arch}.deb" "$root/qp-test/"
done
# openssl's command, for a TLS server that maps libssl and the TLS health check.
cp "testdata/debs/openssl_3.0.17-1~deb12u2_${arch}.deb" "$root/qp-test/"
cp scripts/deb_install_inside.sh "$root/qp-test/inside.sh"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# in_root STEP: scripts/deb_install_inside.sh STEP in the root, in a mount and PID namespace
# of its own: the mounts go with it, and every process started inside (the server, the
# agent) is killed when its first process ends.
in_root() {
  unshare --mount --pid --fork --propagation private bash -c '
    set -e
    root=$1
    mount --rbind /dev "$root/dev"
    mount -t proc proc "$root/proc"
    mount -t sysfs sys "$root/sys"
    mount -t tmpfs tmpfs "$root/run"
    mount -t tmpfs tmpfs "$root/tmp"
    chroot "$root" /bin/bash /qp-test/inside.sh "$2"
  ' _ "$root" "$1" || fail "step $1 in the root failed (exit $?)"
}

in_root install

# The units, checked by the host's systemd against the root's files (the commands they
# start, the users they name).
# Their Documentation= pages are looked up in the root (the host's man cannot).
say "systemd-analyze verify of the installed units"
units=("$root/lib/systemd/system/quietpatchd.service" "$root/lib/systemd/system/quietpatch-server.service")
out=$(systemd-analyze verify --man=no --root="$root" "${units[@]#$root}" 2>&1) ||
  fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
for page in $(sed -n 's/^Documentation=//p' "${units[@]}" | tr ' ' '\n' | sed -n 's/^man://p'); do
  name=${page%(*}; section=${page#*(}; section=${section%)}
  [ -s "$root/usr/share/man/man$section/$name.$section.gz" ] || fail "the units name $page, not installed"
done

# systemd's own exposure score of each hardened unit (lower is better), for the record.
for unit in "${units[@]}"; do
  score=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1 | sed -n 's/.*Overall exposure level for \(.*\)/\1/p')
  say "systemd-analyze security: ${score:-?}"
done

# With systemd able to boot the root (systemd-nspawn --boot), the units run under systemd
# itself: a one-shot unit in the root runs the boot step, then powers the container off.
if systemd-nspawn -q --register=no --keep-unit -D "$root" /bin/true > "$work/probe.log" 2>&1; then
  say "booting the root (systemd-nspawn --boot): the units under systemd, with systemctl"
  cat > "$root/etc/systemd/system/qp-boot-test.service" <<'UNIT'
[Unit]
Description=quietpatch's install test, under systemd
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/bash -c '/bin/bash /qp-test/inside.sh boot > /qp-test/boot.log 2>&1; echo $? > /qp-test/boot.rc'
ExecStartPost=/bin/systemctl --no-block poweroff
[Install]
WantedBy=multi-user.target
UNIT
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf /etc/systemd/system/qp-boot-test.service "$root/etc/systemd/system/multi-user.target.wants/"
  timeout 300 systemd-nspawn -q --register=no --keep-unit -D "$root" --boot > "$work/nspawn.log" 2>&1 || true
  sed 's/^/  /' "$root/qp-test/boot.log" 2>/dev/null || true
  [ "$(cat "$root/qp-test/boot.rc" 2>/dev/null)" = 0 ] ||
    { tail -n 30 "$work/nspawn.log"; fail "the boot step failed"; }
  rm -f "$root/etc/systemd/system/qp-boot-test.service" \
    "$root/etc/systemd/system/multi-user.target.wants/qp-boot-test.service"
else
  say "systemd-nspawn cannot start a container here ($(tail -n 1 "$work/probe.log")): the units ran under setpriv only"
fi

in_root purge
say "passed"
