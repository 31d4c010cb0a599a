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

# component_status NAME: the component's status (JSON on one line); "" while the agent does
# not answer.
component_status() {
  quietpatch --json status 2>/dev/null |
    jq -c --arg name "$1" '.components[] | select(.name == $name)' 2>/dev/null || true
}

# until_component NAME JQ SECONDS: waits up to SECONDS for the jq expression JQ to be true of
# the component's status; prints the status and fails the function otherwise.
until_component() {
  local st=""
  for _ in $(seq $(($3 * 10))); do
    st=$(component_status "$1")
    if [ -n "$st" ] && [ "$(jq -r "$2" <<<"$st" 2>/dev/null)" = true ]; then return 0; fi
    sleep 0.1
  done
  echo "waited ${3}s for: $2" >&2
  echo "$1's status: $st" >&2
  return 1
}

# installed LABEL UPSTREAM: waits up to a minute for `quietpatch status` to show the fix
# LABEL, then checks the component's files are those of libssl3 UPSTREAM (trees/LABEL).
installed() {
  until_component openssl ".patch_level == \"3.0.17-1~deb12u2 ($1)\"" 60 || return 1
  [ "$(digest /opt/openssl)" = "$(digest "$T/trees/$1")" ] ||
    fail "the component's files differ from libssl3 $2's"
}

# ExecStart of a unit, as systemd would run it (no quoting in ours to undo).
exec_start() { sed -n 's/^ExecStart=//p' "/lib/systemd/system/$1"; }
# unit_value UNIT KEY
unit_value() { sed -n "s/^$2=//p" "/lib/systemd/system/$1" | tail -n 1; }

# quietpatch-server as its unit runs it (user, umask, no new privileges, no capabilities),
# in the background; server_pid is its pid.
start_server() {
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
  server_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$T/server.log" && break; sleep 0.1; done
  grep -q "listening on" "$T/server.log" || { cat "$T/server.log"; fail "the server did not start"; }
}

# quietpatchd as its unit runs it, in the background; agent_pid is its pid.
start_agent() {
  # CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER ... -> setpriv's -all,+chown,+fowner,...
  local caps
  caps=-all$(unit_value quietpatchd.service CapabilityBoundingSet | tr ' ' '\n' |
    sed -n 's/^CAP_\(.*\)/,+\L\1/p' | tr -d '\n')
  rm -f /run/quietpatch/control.sock
  (umask "$(unit_value quietpatchd.service UMask)"
   # shellcheck disable=SC2046
   exec setpriv --no-new-privs --bounding-set="$caps" $(exec_start quietpatchd.service)) \
     >> "$T/agent.log" 2>&1 &
  agent_pid=$!
  for _ in $(seq 100); do [ -S /run/quietpatch/control.sock ] && break; sleep 0.1; done
  [ -S /run/quietpatch/control.sock ] || { cat "$T/agent.log"; fail "quietpatchd did not start"; }
}

# stop PID: SIGTERM, and its end awaited.
stop() {
  kill "$1"
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  fail "pid $1 did not stop"
}

step_install() {
  say "apt-get install ./quietpatch*.deb (dependencies from Debian)"
  apt-get update -qq
  (cd "$T" && apt-get install -y -qq --no-install-recommends ./quietpatch_*.deb \
     ./quietpatch-server_*.deb ./quietpatch-publisher_*.deb curl jq > "$T/apt.log" 2>&1) ||
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
  start_server
  local url=http://127.0.0.1:38080
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
  start_agent

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

# pkg_files_are VERSION: the installed libssl3 files are those of VERSION, byte for byte.
pkg_files_are() {
  local f
  for f in $(cd "$T/pkg-$1" && find . -type f | sed 's|^\.||'); do
    cmp -s "$f" "$T/pkg-$1$f" || return 1
  done
}

v17=3.0.17-1~deb12u2 v20=3.0.20-1~deb12u2 v22=3.0.22-1~deb12u2

# Which version libssl3's files in /usr/lib wholly are; "mixed" when none.
files_version() {
  local v
  for v in $v17 $v20 $v22; do
    if pkg_files_are "$v"; then echo "$v"; return; fi
  done
  echo mixed
}

# A wait for the libssl3 component's status (until_component).
until_pkg() { until_component libssl3 "$1" "$2"; }

# No copy of quietpatch's beside dpkg's files (with "rollback-copies-ok": none but the
# rollback copies of an installed fix, .qp-previous), and dpkg left nothing half-done.
clean_beside_dpkg() {
  local left keep=()
  [ "${2:-}" = rollback-copies-ok ] && keep=(! -name '*.qp-previous')
  left=$(find /usr/lib /usr/share/doc/libssl3 -name '.*.qp-*' "${keep[@]}" 2>/dev/null)
  [ -z "$left" ] || fail "$1: left beside dpkg's files: $left"
  left=$(dpkg --audit 2>&1)
  [ -z "$left" ] || fail "$1: dpkg --audit: $left"
}

verify_clean() {
  local verify
  verify=$(dpkg --verify libssl3 2>&1) || true
  [ -z "$verify" ] || fail "$1: dpkg --verify libssl3: $verify"
}

# A long-running process that maps libssl: openssl s_server on 127.0.0.1:44330.
start_tls_server() {
  openssl s_server -accept 127.0.0.1:44330 -cert "$T/tls/cert.pem" -key "$T/tls/key.pem" \
    -www -quiet < /dev/null > "$T/s_server.log" 2>&1 &
  tls_pid=$!
  for _ in $(seq 50); do
    echo | openssl s_client -connect 127.0.0.1:44330 -brief 2>&1 | grep -q '^CONNECTION ESTABLISHED' && return 0
    sleep 0.1
  done
  cat "$T/s_server.log"
  fail "openssl s_server did not start"
}

# A component that is the installed Debian package libssl3: its files are dpkg's, in
# /usr/lib. The publisher builds the fix from the packages; the agent patches dpkg's files
# beside apt and dpkg, a process still running the old library is named, quietpatch remove
# gives dpkg's files back, and dpkg or apt replacing the package supersedes the fix.
package_component() {
  local repo=$1 keys=$2
  say "dpkg -i libssl3 and openssl $v17; a long-running openssl s_server maps libssl"
  dpkg -i "$T/libssl3_${v17}_amd64.deb" "$T/openssl_${v17}_amd64.deb" > "$T/dpkg.log" 2>&1 ||
    { cat "$T/dpkg.log"; fail "dpkg -i failed"; }
  for v in $v17 $v20 $v22; do package_tree "$v" "$T/pkg-$v"; done
  mkdir -p "$T/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -days 2 -keyout "$T/tls/key.pem" -out "$T/tls/cert.pem" > /dev/null 2>&1 || fail "openssl req failed"
  start_tls_server
  local first_server=$tls_pid
  # The health check: a real TLS handshake through the libssl on disk, between a fresh
  # s_server and s_client.
  cat > "$T/tls-check" <<'CHECK'
#!/bin/sh
PATH=/usr/bin:/bin
port=$((30000 + $$ % 20000))
openssl s_server -accept "127.0.0.1:$port" -cert /qp-test/tls/cert.pem -key /qp-test/tls/key.pem \
  -naccept 1 -quiet < /dev/null > /dev/null 2>&1 &
server=$!
ok=1
for _ in $(seq 50); do
  if echo | openssl s_client -connect "127.0.0.1:$port" -brief 2>&1 | grep -q '^CONNECTION ESTABLISHED'; then
    ok=0
    break
  fi
  sleep 0.1
done
kill "$server" 2> /dev/null
exit $ok
CHECK
  cat > /etc/quietpatch/components/libssl3.toml <<'CONF'
name = "libssl3"
package = "libssl3"
[health_check]
command = ["/bin/sh", "/qp-test/tls-check"]
CONF
  pkill -HUP -x quietpatchd
  until_pkg ".patch_level == \"$v17\" and .platform == \"linux-x86_64\"" 10 ||
    fail "the agent did not take libssl3 $v17 from dpkg's database"

  say "the publisher builds (p) from the packages: build --from-deb $v17 --to-deb $v20"
  quietpatch-repo --repo "$repo" --keys "$keys" build --from-deb "$T/libssl3_${v17}_amd64.deb" \
    --to-deb "$T/libssl3_${v20}_amd64.deb" --label p --cve CVE-2025-9230 --urgency critical \
    --out /root/improvement-p > /dev/null
  quietpatch-repo --repo "$repo" --keys "$keys" publish /root/improvement-p --percent 100 > /dev/null
  chown -R quietpatch-server:quietpatch-server "$repo"
  quietpatch check > /dev/null 2>&1 || true
  until_pkg ".patch_level == \"$v17 (p)\"" 60 ||
    { tail -n 20 "$T/agent.log"; fail "the agent did not patch dpkg's libssl3"; }
  pkg_files_are "$v20" || fail "libssl3's files in /usr/lib are not those of $v20"
  quietpatch history | grep -q 'libssl3  install base -> (p): committed' ||
    { quietpatch history; fail "no committed install of (p) in the history"; }
  say "dpkg's libssl3 files are those of $v20 byte for byte; the TLS health check passed"
  until_pkg "any(.restart_needed[]; .pid == $first_server and .name == \"openssl\")" 10 ||
    fail "status does not name the s_server (pid $first_server) as running the old libssl"
  # quietpatch's own daemons map libcrypto too, and are named with it.
  until_pkg "any(.restart_needed[]; .pid == $agent_pid) and any(.restart_needed[]; .pid == $server_pid)" 5 ||
    fail "status does not name quietpatchd ($agent_pid) and quietpatch-server ($server_pid)"
  until_pkg '.cves_fixed_on_disk == ["CVE-2025-9230"] and .cves_mitigated == [] and .protected == false' 5 ||
    fail "status claims the CVE mitigated while the old library runs"
  until_pkg 'any(.package_files_changed[]; .path == "/usr/lib/x86_64-linux-gnu/libssl.so.3")' 5 ||
    fail "status does not list libssl.so.3 beside dpkg's md5sum"
  quietpatch status | grep -q "restart needed by:.* pid $first_server (openssl)" ||
    { quietpatch status; fail "quietpatch status does not say which process needs a restart"; }
  say "status: restart needed by pid $first_server (openssl), quietpatchd and quietpatch-server; CVE-2025-9230 fixed on disk, not mitigated"
  quietpatch status | sed -n '/^libssl3/,/^$/p' | sed 's/^/  /'
  stop "$first_server"
  start_tls_server
  until_pkg "any(.restart_needed[]; .pid == $first_server) | not" 5 ||
    fail "the stopped s_server is still named"
  until_pkg '.cves_mitigated == []' 1 || fail "mitigated while quietpatch's daemons run the old library"
  stop "$server_pid"
  start_server
  stop "$agent_pid"
  start_agent
  until_pkg '.restart_needed == [] and .cves_mitigated == ["CVE-2025-9230"] and .protected == true' 10 ||
    fail "after the restarts, the CVE is not mitigated"
  say "s_server, quietpatch-server and quietpatchd restarted: CVE-2025-9230 mitigated, libssl3 protected"

  say "quietpatch remove libssl3: dpkg's files again"
  quietpatch remove libssl3 > "$T/remove.log" 2>&1 || { cat "$T/remove.log"; fail "quietpatch remove failed"; }
  until_pkg ".patch_level == \"$v17\" and .package_files_changed == []" 5 || fail "status after remove"
  pkg_files_are "$v17" || fail "after remove, the files are not those of $v17"
  verify_clean "after remove"
  clean_beside_dpkg "after remove"
  say "removed: the files are dpkg's $v17, dpkg --verify libssl3 prints nothing"

  race_with_dpkg

  say "apt-get install libssl3 $v22 over (p): the hooks reload the agent, the fix is superseded"
  quietpatch install libssl3 > /dev/null 2>&1 || true
  until_pkg ".patch_level == \"$v17 (p)\"" 30 || fail "(p) did not install again"
  (cd "$T" && apt-get install -y -qq --no-install-recommends "./libssl3_${v22}_amd64.deb" \
     > "$T/apt-upgrade.log" 2>&1) || { tail -n 20 "$T/apt-upgrade.log"; fail "apt-get install failed"; }
  until_pkg ".patch_level == \"$v22\" and .superseded.by == \"libssl3 $v22\" and .superseded.label == \"p\"" 10 ||
    { tail -n 20 "$T/agent.log"; fail "the upgrade by apt did not supersede the fix"; }
  quietpatch status | grep -q "superseded:   (p) by libssl3 $v22" ||
    { quietpatch status; fail "quietpatch status does not say what superseded (p)"; }
  pkg_files_are "$v22" || fail "libssl3's files are not those of $v22 after the upgrade"
  verify_clean "after the upgrade"
  clean_beside_dpkg "after the upgrade"
  quietpatch settings auto-install on > /dev/null
  say "superseded by libssl3 $v22 within seconds; dpkg --verify libssl3 prints nothing; no .qp-* file left"
}

# 20 rounds of `quietpatch install libssl3` and `dpkg -i libssl3 3.0.22` started together
# (dpkg a random 0 to 0.4 s later): each time the files are wholly one version, and dpkg's
# database agrees with them, or quietpatch's status does; nothing is left half-written.
race_with_dpkg() {
  say "a race, 20 rounds: quietpatch install and dpkg -i libssl3 $v22 at the same moment"
  quietpatch settings auto-install off > /dev/null
  local round qp dp dv fv ours=0 theirs=0 neither=0
  for round in $(seq 20); do
    quietpatch check > /dev/null 2>&1 || true
    until_pkg ".patch_level == \"$v17\" and .available.label == \"p\"" 15 ||
      fail "round $round: not at $v17 with (p) available"
    quietpatch install libssl3 > "$T/race-qp.log" 2>&1 &
    qp=$!
    (sleep "0.$((RANDOM % 5))"; exec dpkg -i "$T/libssl3_${v22}_amd64.deb") > "$T/race-dpkg.log" 2>&1 &
    dp=$!
    wait "$qp" || true
    wait "$dp" || true
    dv=$(dpkg-query -W -f='${Version}' libssl3)
    # The dpkg hook reloads the agent after dpkg's run.
    until_pkg ".base_version == \"$dv\"" 10 || fail "round $round: status never took dpkg's $dv"
    fv=$(files_version)
    clean_beside_dpkg "round $round" rollback-copies-ok
    case "$fv/$dv" in
      "$v20/$v17")  # quietpatch had the lock; dpkg refused to run
        until_pkg ".patch_level == \"$v17 (p)\" and (.package_files_changed | length) > 0" 5 ||
          fail "round $round: the files are (p)'s, status does not say so"
        grep -q 'lock' "$T/race-dpkg.log" || { cat "$T/race-dpkg.log"; fail "round $round: dpkg failed, not for the lock"; }
        ours=$((ours + 1)) ;;
      "$v22/$v22")  # dpkg first; the install gave way
        until_pkg ".patch_level == \"$v22\"" 5 || fail "round $round: status claims a fix on $v22"
        verify_clean "round $round"
        theirs=$((theirs + 1)) ;;
      "$v17/$v17")  # neither changed anything
        until_pkg ".patch_level == \"$v17\"" 5 || fail "round $round: status claims a fix not on disk"
        verify_clean "round $round"
        neither=$((neither + 1)) ;;
      *)
        cat "$T/race-qp.log" "$T/race-dpkg.log"
        fail "round $round: files of $fv, dpkg says $dv" ;;
    esac
    # Back to dpkg's $v17 (a reinstall when (p) is on disk: dpkg's files again, superseded).
    dpkg -i "$T/libssl3_${v17}_amd64.deb" > "$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "round $round: dpkg -i $v17"; }
    until_pkg ".patch_level == \"$v17\" and .package_files_changed == []" 10 ||
      fail "round $round: status after dpkg -i $v17"
    pkg_files_are "$v17" || fail "round $round: not $v17's files after dpkg -i $v17"
    verify_clean "round $round, back at $v17"
    clean_beside_dpkg "round $round, back at $v17"
  done
  say "race: quietpatch first $ours, dpkg first $theirs, neither $neither; every round one version, agreed"
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

  say "dpkg -i libssl3 $v17 under systemd: the unit patches dpkg's files in /usr/lib"
  systemctl cat quietpatchd | grep -qx 'ReadWritePaths=-/var/lib/dpkg/lock-frontend' ||
    fail "the generator did not give the unit dpkg's lock (libssl3 is a component)"
  systemctl cat quietpatchd | grep -qx 'ReadWritePaths=-/usr/lib/x86_64-linux-gnu' ||
    fail "the generator did not give the unit libssl3's directory"
  dpkg -i "$T/libssl3_${v17}_amd64.deb" > "$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -i failed"; }
  until_pkg ".base_version == \"$v17\"" 10 || fail "dpkg's hook did not reload the unit"
  quietpatch check > /dev/null 2>&1 || true
  until_pkg ".patch_level == \"$v17 (p)\"" 60 ||
    { journalctl -u quietpatchd --no-pager | tail -n 20; fail "the unit did not patch libssl3"; }
  pkg_files_are "$v20" || fail "libssl3's files are not those of $v20"
  dpkg -i "$T/libssl3_${v22}_amd64.deb" > "$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -i failed"; }
  until_pkg ".patch_level == \"$v22\" and .superseded.by == \"libssl3 $v22\"" 10 ||
    fail "dpkg -i $v22 did not supersede (p) under systemd"
  verify_clean "under systemd"
  clean_beside_dpkg "under systemd"
  say "the unit installed (p) into /usr/lib under ProtectSystem=strict; dpkg -i $v22 superseded it"
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
