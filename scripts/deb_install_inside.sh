#!/bin/bash
# Runs inside the throwaway Debian 12 root (scripts/deb_install_test.sh copies it to
# /qp-test/inside.sh, beside the three .debs and two libssl3 trees).
#
#   inside.sh install   apt installs the packages; files, modes, users, conffiles; the
#                       server and the agent run as their units would, and the device
#                       receives a fix from the server
#   inside.sh boot      in the root booted by systemd-nspawn: systemctl, a second fix
#   inside.sh purge     apt-get purge leaves nothing of theirs but the system user
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "deb_install (in the root): $*" >&2; exit 1; }
say() { echo "deb_install: $*"; }
T=/qp-test

# mode_owner PATH MODE OWNER:GROUP
mode_owner() {
  local got
  got=$(stat -c '%a %U:%G' "$1") || fail "$1 is missing"
  [ "$got" = "$2 $3" ] || fail "$1 is $got, not $2 $3"
}

digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }

# installed LABEL UPSTREAM: waits up to a minute for `quietpatch status` to show the fix
# LABEL, then checks the component's files are those of libssl3 UPSTREAM (trees/LABEL).
installed() {
  local status=""
  for _ in $(seq 300); do
    status=$(quietpatch --json status 2>/dev/null || true)
    grep -q "\"patch_level\": *\"3.0.17-1~deb12u2 ($1)\"" <<<"$status" && break
    sleep 0.2
  done
  grep -q "\"patch_level\": *\"3.0.17-1~deb12u2 ($1)\"" <<<"$status" || { echo "$status"; return 1; }
  [ "$(digest /opt/openssl)" = "$(digest "$T/trees/$1")" ] ||
    fail "the component's files differ from libssl3 $2's"
}

# ExecStart of a unit, as systemd would run it (no quoting in ours to undo).
exec_start() { sed -n 's/^ExecStart=//p' "/lib/systemd/system/$1"; }
# unit_value UNIT KEY
unit_value() { sed -n "s/^$2=//p" "/lib/systemd/system/$1" | tail -n 1; }

step_install() {
  say "apt-get install ./quietpatch*.deb (dependencies from Debian)"
  apt-get update -qq
  (cd "$T" && apt-get install -y -qq --no-install-recommends ./quietpatch_*.deb \
     ./quietpatch-server_*.deb ./quietpatch-publisher_*.deb curl > "$T/apt.log" 2>&1) ||
    { tail -n 30 "$T/apt.log"; fail "apt-get install failed"; }

  say "files, modes, the system user and the conffiles"
  for cmd in quietpatchd quietpatch quietpatch-server quietpatch-repo quietpatch-delta \
             quietpatch-tuf-client; do
    mode_owner "/usr/bin/$cmd" 755 root:root
    "/usr/bin/$cmd" --help > /dev/null || fail "$cmd --help failed"
  done
  for f in /lib/systemd/system/quietpatchd.service /lib/systemd/system/quietpatch-server.service \
           /usr/lib/sysusers.d/quietpatch-server.conf /usr/share/man/man8/quietpatchd.8.gz \
           /usr/share/man/man5/quietpatch-agent.toml.5.gz /usr/share/man/man1/quietpatch-repo.1.gz \
           /usr/share/quietpatch/dashboard/index.html /usr/share/bash-completion/completions/quietpatch \
           /usr/share/doc/quietpatch/copyright /usr/share/doc/quietpatch-server/operations.md.gz; do
    [ -s "$f" ] || fail "$f is missing"
  done
  mode_owner /lib/systemd/system-generators/quietpatch-generator 755 root:root
  getent passwd quietpatch-server > /dev/null || fail "no quietpatch-server user"
  local shell home
  IFS=: read -r _ _ _ _ _ home shell < <(getent passwd quietpatch-server)
  [ "$home" = /var/lib/quietpatch-server ] || fail "quietpatch-server's home is $home"
  case "$shell" in */nologin|/bin/false) ;; *) fail "quietpatch-server may log in ($shell)" ;; esac
  mode_owner /etc/quietpatch-server 750 root:quietpatch-server
  mode_owner /etc/quietpatch-server/keys 700 quietpatch-server:quietpatch-server
  mode_owner /etc/quietpatch-server/admin.token 600 quietpatch-server:quietpatch-server
  mode_owner /etc/quietpatch-server/viewer.token 600 quietpatch-server:quietpatch-server
  mode_owner /var/lib/quietpatch-server 750 quietpatch-server:quietpatch-server
  [ "$(wc -c < /etc/quietpatch-server/admin.token)" -eq 64 ] || fail "the admin token is not 32 random bytes"
  mode_owner /etc/quietpatch/components 755 root:root
  dpkg-query -W -f='${Conffiles}\n' quietpatch | grep -q '^ /etc/quietpatch/agent.toml ' ||
    fail "agent.toml is not a conffile"
  dpkg-query -W -f='${Conffiles}\n' quietpatch-server | grep -q '^ /etc/quietpatch-server/server.toml ' ||
    fail "server.toml is not a conffile"

  say "a repository, made by the publisher's quietpatch-repo with offline keys kept by root"
  local repo=/var/lib/quietpatch-server/repo keys=/root/quietpatch-keys
  quietpatch-repo --repo "$repo" --keys "$keys" init > /dev/null
  install -m 0600 -o quietpatch-server -g quietpatch-server \
    "$keys/rollout.key" "$keys/snapshot.key" "$keys/timestamp.key" /etc/quietpatch-server/keys/
  chown -R quietpatch-server:quietpatch-server "$repo"

  say "quietpatch-server as its unit runs it (user, umask, no new privileges, no capabilities)"
  # The administrator's one change to the conffile: a port for this test.
  sed -i 's/^listen = .*/listen = "127.0.0.1:38080"/' /etc/quietpatch-server/server.toml
  local user umask_ limit
  user=$(unit_value quietpatch-server.service User)
  umask_=$(unit_value quietpatch-server.service UMask)
  limit=$(unit_value quietpatch-server.service LimitNOFILE)
  [ "$user" = quietpatch-server ] || fail "the server's unit runs as $user"
  # LimitNOFILE=, or this machine's hard limit when that is lower.
  (umask "$umask_"; ulimit -n "$limit" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
   # shellcheck disable=SC2046
   exec setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs --inh-caps=-all \
     --bounding-set=-all $(exec_start quietpatch-server.service)) > "$T/server.log" 2>&1 &
  local url=http://127.0.0.1:38080
  for _ in $(seq 100); do grep -q "listening on" "$T/server.log" && break; sleep 0.1; done
  grep -q "listening on" "$T/server.log" || { cat "$T/server.log"; fail "the server did not start"; }
  local admin viewer
  admin=$(cat /etc/quietpatch-server/admin.token)
  viewer=$(cat /etc/quietpatch-server/viewer.token)
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/")" = 200 ] || fail "the dashboard is not served"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $viewer" \
       "$url/v1/fleet/improvements")" = 200 ] || fail "the viewer token is refused"
  local enroll
  enroll=$(curl -sf -X POST -H "Authorization: Bearer $admin" -d '{"uses": 1, "days": 1}' \
    "$url/v1/admin/enrollments" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  [ -n "$enroll" ] || fail "the admin token could not make an enrollment token"

  say "a device: the fleet's root, an enrollment token, one component"
  cp -a "$T/trees/base" /opt/openssl
  cp "$repo/metadata/1.root.json" /etc/quietpatch/root.json
  (umask 077; printf '%s\n' "$enroll" > /etc/quietpatch/enrollment.token)
  sed -i "s|^# repository_url = .*|repository_url = \"$url/repo\"|; s|^# server_url = .*|server_url = \"$url\"|" \
    /etc/quietpatch/agent.toml
  cat > /etc/quietpatch/components/openssl.toml <<'CONF'
name = "openssl"
platform = "linux-x86_64"
root = "/opt/openssl"
[base_version]
literal = "3.0.17-1~deb12u2"
[health_check]
command = ["test", "-s", "/opt/openssl/usr/lib/x86_64-linux-gnu/libssl.so.3"]
CONF
  # The generator gives the unit the directory where the component's root is swapped.
  mkdir -p /tmp/generator
  /lib/systemd/system-generators/quietpatch-generator /tmp/generator
  grep -qx 'ReadWritePaths=-/opt' /tmp/generator/quietpatchd.service.d/50-components.conf ||
    { cat /tmp/generator/quietpatchd.service.d/50-components.conf; fail "the generator did not list /opt (where /opt/openssl is swapped)"; }

  say "quietpatchd as its unit runs it"
  mkdir -p -m 0755 /run/quietpatch /var/lib/quietpatch
  # CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER ... -> setpriv's -all,+chown,+fowner,...
  local caps
  caps=-all$(unit_value quietpatchd.service CapabilityBoundingSet | tr ' ' '\n' |
    sed -n 's/^CAP_\(.*\)/,+\L\1/p' | tr -d '\n')
  (umask "$(unit_value quietpatchd.service UMask)"
   # shellcheck disable=SC2046
   exec setpriv --no-new-privs --bounding-set="$caps" $(exec_start quietpatchd.service)) \
     > "$T/agent.log" 2>&1 &
  for _ in $(seq 100); do [ -S /run/quietpatch/control.sock ] && break; sleep 0.1; done
  [ -S /run/quietpatch/control.sock ] || { cat "$T/agent.log"; fail "quietpatchd did not start"; }

  say "the publisher builds and publishes a real fix: libssl3 3.0.17 -> 3.0.20"
  quietpatch-repo --repo "$repo" --keys "$keys" build --component openssl --platform linux-x86_64 \
    --base 3.0.17-1~deb12u2 --label a --base-tree "$T/trees/base" --new-tree "$T/trees/a" \
    --cve CVE-2025-9230 --urgency critical --out /root/improvement-a > /dev/null
  quietpatch-repo --repo "$repo" --keys "$keys" publish /root/improvement-a --percent 100 > /dev/null
  chown -R quietpatch-server:quietpatch-server "$repo"

  installed a 3.0.20 || { tail -n 20 "$T/agent.log"; fail "the device did not install (a)"; }
  local fleet=""
  for _ in $(seq 100); do
    fleet=$(curl -s -H "Authorization: Bearer $viewer" "$url/v1/fleet/improvements")
    grep -q '"protected": *1' <<<"$fleet" && break
    sleep 0.2
  done
  grep -q '"protected": *1' <<<"$fleet" || { echo "$fleet"; fail "the server did not hear the device"; }
  say "the device installed the fix from the server and reported it protected"
  quietpatch status | sed 's/^/  /'
  package_component "$repo" "$keys"
}

# The files of libssl3 VERSION as a component's tree: its regular files at their paths
# (symlinks and directories are dpkg's, not the component's), in DIR.
package_tree() {
  dpkg-deb -x "$T/libssl3_$1_amd64.deb" "$2"
  find "$2" -type l -delete
  find "$2" -depth -type d -empty -delete
}

# shows PATTERN SECONDS: waits up to SECONDS for `quietpatch --json status` to match the
# extended regular expression PATTERN; prints the status and fails the function otherwise.
shows() {
  local status=""
  for _ in $(seq $(($2 * 10))); do
    status=$(quietpatch --json status 2>/dev/null || true)
    grep -Eq "$1" <<<"$status" && return 0
    sleep 0.1
  done
  echo "$status"
  return 1
}

# pkg_files_are VERSION: the installed libssl3 files are those of VERSION, byte for byte.
pkg_files_are() {
  local f
  for f in $(cd "$T/pkg-$1" && find . -type f | sed 's|^\.||'); do
    cmp -s "$f" "$T/pkg-$1$f" || return 1
  done
}

# A component that is the installed Debian package libssl3: its files are dpkg's, in
# /usr/lib; the agent patches them beside apt, and an upgrade by apt supersedes the fix.
package_component() {
  local repo=$1 keys=$2 v17=3.0.17-1~deb12u2 v20=3.0.20-1~deb12u2 v22=3.0.22-1~deb12u2
  say "the installed libssl3 as a component (package = \"libssl3\"): dpkg -i $v17"
  dpkg -i "$T/libssl3_${v17}_amd64.deb" > "$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -i failed"; }
  for v in $v17 $v20 $v22; do package_tree "$v" "$T/pkg-$v"; done
  cat > /etc/quietpatch/components/libssl3.toml <<'CONF'
name = "libssl3"
package = "libssl3"
[health_check]
# A process that loads the new libssl and libcrypto.
command = ["/usr/bin/quietpatch", "--help"]
CONF
  pkill -HUP -x quietpatchd
  shows "\"patch_level\": *\"$v17\"" 10 ||
    fail "the agent did not take libssl3 $v17 from dpkg's database"

  quietpatch-repo --repo "$repo" --keys "$keys" build --component libssl3 --platform linux-x86_64 \
    --base "$v17" --label p --base-tree "$T/pkg-$v17" --new-tree "$T/pkg-$v20" \
    --cve CVE-2025-9230 --urgency critical --out /root/improvement-p > /dev/null
  quietpatch-repo --repo "$repo" --keys "$keys" publish /root/improvement-p --percent 100 > /dev/null
  chown -R quietpatch-server:quietpatch-server "$repo"
  quietpatch check > /dev/null 2>&1 || true
  shows "\"patch_level\": *\"$v17 \\(p\\)\"" 60 ||
    { tail -n 20 "$T/agent.log"; fail "the agent did not patch dpkg's libssl3"; }
  pkg_files_are "$v20" || fail "libssl3's files in /usr/lib are not those of $v20"
  say "dpkg's libssl3 files are now those of $v20, patched in place by the agent"

  say "apt-get install libssl3 $v22: the apt hook reloads the agent, the fix is superseded"
  (cd "$T" && apt-get install -y -qq --no-install-recommends "./libssl3_${v22}_amd64.deb" \
     > "$T/apt-upgrade.log" 2>&1) || { tail -n 20 "$T/apt-upgrade.log"; fail "apt-get install failed"; }
  shows "\"patch_level\": *\"$v22\"" 10 ||
    { tail -n 20 "$T/agent.log"; fail "the upgrade by apt did not supersede the fix"; }
  pkg_files_are "$v22" || fail "libssl3's files are not those of $v22 after the upgrade"
  local verify
  verify=$(dpkg --verify libssl3 2>&1) || true
  [ -z "$verify" ] || fail "dpkg --verify libssl3 after the upgrade: $verify"
  local left
  left=$(find /usr/lib /usr/share/doc/libssl3 -name '.*.qp-*' 2>/dev/null)
  [ -z "$left" ] || fail "left beside dpkg's files: $left"
  say "superseded within seconds; dpkg --verify libssl3 prints nothing; no .qp-* file left"
}

# In the booted root (systemd-nspawn --boot): the units, enabled by the packages, were
# started by systemd; the publisher publishes (b) and the agent under its hardened unit (its
# writable paths from the generator) installs it.
step_boot() {
  local repo=/var/lib/quietpatch-server/repo keys=/root/quietpatch-keys
  for _ in $(seq 150); do
    systemctl is-active -q quietpatch-server quietpatchd && break
    sleep 0.2
  done
  systemctl is-active -q quietpatch-server quietpatchd ||
    { systemctl status --no-pager quietpatch-server quietpatchd || true; fail "the units did not start"; }
  say "systemd started both units (Type=notify: READY=1 received)"
  systemctl cat quietpatchd | grep -qx 'ReadWritePaths=-/opt' ||
    fail "the generator's drop-in is not part of quietpatchd.service"
  # The watchdog: 2 s for a while, so a server that stopped pinging would be killed.
  mkdir -p /run/systemd/system/quietpatch-server.service.d
  printf '[Service]\nWatchdogSec=2s\n' > /run/systemd/system/quietpatch-server.service.d/watchdog.conf
  systemctl daemon-reload
  systemctl restart quietpatch-server
  sleep 5
  local restarts
  restarts=$(systemctl show -P NRestarts quietpatch-server)
  systemctl is-active -q quietpatch-server && [ "$restarts" = 0 ] ||
    fail "quietpatch-server missed its watchdog (NRestarts=$restarts)"
  say "quietpatch-server kept a 2 s watchdog fed for 5 s"

  say "the publisher publishes (b), cumulative from the base and from (a)"
  quietpatch-repo --repo "$repo" --keys "$keys" build --component openssl --platform linux-x86_64 \
    --base 3.0.17-1~deb12u2 --label b --base-tree "$T/trees/base" --from "a=$T/trees/a" \
    --new-tree "$T/trees/b" --cve CVE-2026-0001 --urgency high --out /root/improvement-b > /dev/null
  quietpatch-repo --repo "$repo" --keys "$keys" publish /root/improvement-b --percent 100 > /dev/null
  chown -R quietpatch-server:quietpatch-server "$repo"
  installed b 3.0.22 ||
    { journalctl -u quietpatchd --no-pager | tail -n 20; fail "the unit did not install (b)"; }
  say "quietpatchd.service installed (b) under ProtectSystem=strict"
  journalctl --no-pager -o verbose QP_COMPONENT=openssl | grep -q 'QP_IMPROVEMENT=openssl/3.0.17-1~deb12u2/b' ||
    fail "the journal has no entry with QP_COMPONENT=openssl and QP_IMPROVEMENT of (b)"
  say "the journal has its entries: journalctl QP_COMPONENT=openssl"
  systemctl stop quietpatchd quietpatch-server
  ! systemctl is-failed -q quietpatchd quietpatch-server || fail "a unit failed when stopped"
  say "systemctl stop: both stopped cleanly"
}

step_purge() {
  say "apt-get purge"
  apt-get purge -y -qq quietpatch quietpatch-server quietpatch-publisher > "$T/purge.log" 2>&1 ||
    { tail -n 30 "$T/purge.log"; fail "apt-get purge failed"; }
  local left
  left=$(find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /qp-test \
           -o -path /root/quietpatch-keys -o -path /root/improvement-a -o -path /root/improvement-b \
           -o -path /root/improvement-p \
           -o -path /opt/openssl \) -prune \
           -o -name '*quietpatch*' -print)
  [ -z "$left" ] || fail "purge left: $left"
  getent passwd quietpatch-server > /dev/null || fail "purge removed the system user (policy: keep it)"
  dpkg-query -W 'quietpatch*' 2>/dev/null | grep -q . && fail "dpkg still lists a quietpatch package"
  say "purge left nothing but the system user"
}

case "${1:-}" in
  install) step_install ;;
  boot) step_boot ;;
  purge) step_purge ;;
  *) fail "usage: inside.sh install|purge" ;;
esac
