#!/usr/bin/env bash
# The quietpatch fleet demo, on loopback, from one command:
#   act 1: a signed repository, quietpatch-server, a fleet of real quietpatchd devices each
#          holding the real libssl3 3.0.17-1~deb12u2 files; openssl (a) (3.0.20's files) is
#          published as an exploited, critical fix and installs itself everywhere it should.
#   act 2: a cumulative (b) (3.0.22's files) at a 50% rollout, halted when the failing
#          device reports, and a `quietpatch remove` on one device.
#
#   scripts/demo.sh [--devices N] [--act 1|2|both] [--keep] [--poll-only] [--work DIR]
#
# One device has "Automatically Install" off; one has a health check that fails.
# --keep leaves the server and the fleet running to explore; otherwise everything this
# script started is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

devices=20
act=both
keep=0
watch=true
work=/tmp/quietpatch-demo
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices="$2"; shift ;;
    --act) act="$2"; shift ;;
    --keep) keep=1 ;;
    --poll-only) watch=false ;;
    --work) work="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$devices" -ge 3 ] || { echo "demo: at least 3 devices" >&2; exit 2; }

source scripts/device_config.sh
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
if [ -z "${QP_BIN_DIR:-}" ]; then
  say "installing packages and building (scripts/setup.sh)"
  scripts/setup.sh >/dev/null
fi
# QP_BIN_DIR: where the commands are (a build's src/apps, or /usr/bin once installed); the
# dashboard's files are found beside them when installed.
BIN=${QP_BIN_DIR:-$ROOT/build/release/src/apps}
DASHBOARD=$ROOT/src/server/dashboard
[ -d "$BIN/../share/quietpatch/dashboard" ] && DASHBOARD=$(cd "$BIN/../share/quietpatch/dashboard" && pwd)
for tool in quietpatch-repo quietpatch-server quietpatchd quietpatch; do
  [ -x "$BIN/$tool" ] || { echo "demo: $BIN/$tool is missing" >&2; exit 1; }
done

# --- the real Debian packages, pinned (testdata/debs, verified against SHA256SUMS) --------
BASE=3.0.17-1~deb12u2
A_VER=3.0.20-1~deb12u2
B_VER=3.0.22-1~deb12u2
scripts/testdata.sh >/dev/null
deb_base=$ROOT/testdata/debs/libssl3_${BASE}_amd64.deb
deb_a=$ROOT/testdata/debs/libssl3_${A_VER}_amd64.deb
deb_b=$ROOT/testdata/debs/libssl3_${B_VER}_amd64.deb

# --- a clean stage ------------------------------------------------------------------------
if [ -f "$work/pids" ]; then xargs -r kill < "$work/pids" 2>/dev/null || true; sleep 0.5; fi
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
: > "$work/pids"
cleanup() {
  if [ "$keep" -eq 0 ]; then
    xargs -r kill < "$work/pids" 2>/dev/null || true
    sleep 0.5
  fi
}
trap cleanup EXIT
for v in base a b; do
  deb_var="deb_$v"; mkdir -p "$work/trees/$v"; dpkg-deb -x "${!deb_var}" "$work/trees/$v"
done
full_deb_bytes=$(stat -c %s "$deb_a")
digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
A_DIGEST=$(digest "$work/trees/a")
B_DIGEST=$(digest "$work/trees/b")
BASE_DIGEST=$(digest "$work/trees/base")

say "creating a signed repository (quietpatch-repo init: root 2-of-3, offline and online keys)"
R="$BIN/quietpatch-repo --repo $work/repo --keys $work/keys"
$R init >/dev/null
mkdir -p "$work/server/keys" && chmod 700 "$work/server/keys"
cp -p "$work"/keys/{rollout,snapshot,timestamp}.key "$work/server/keys/"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/server/admin.token"
chmod 600 "$work/server/admin.token"
TOKEN=$(cat "$work/server/admin.token")
(umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/server/viewer.token")
VIEWER=$(cat "$work/server/viewer.token")

say "starting quietpatch-server (SQLite, auto-halt: >= 20 reports and > 5% failed)"
"$BIN/quietpatch-server" --listen 127.0.0.1:0 --repo "$work/repo" --keys "$work/server/keys" \
  --database "sqlite:$work/server/reports.db" --admin-token-file "$work/server/admin.token" \
  --viewer-token-file "$work/server/viewer.token" \
  --audit-log "$work/server/audit.log" --dashboard-dir "$DASHBOARD" \
  > "$work/server/server.log" 2>&1 &
echo $! >> "$work/pids"
for _ in $(seq 100); do grep -q "listening on" "$work/server/server.log" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$work/server/server.log")
URL="http://127.0.0.1:$PORT"
echo "$URL" > "$work/server/url"

# --- the fleet ----------------------------------------------------------------------------
B_ID="openssl/$BASE/b"
cohort() { printf '%s' "$1/$2" | sha256sum | python3 -c 'import sys; print(int(sys.stdin.read()[:16], 16) % 10000)'; }
ids=(); failing=0
# Each device makes its own key; its install id is derived from it (quietpatchd --identity).
identity() { "$BIN/quietpatchd" --state-dir "$work/devices/$1/state" --identity; }
for i in $(seq 1 "$devices"); do
  mkdir -p "$work/devices/$i/state"
  ids[$i]=$(identity "$i")
done
# The failing device is one the 50% rollout of (b) reaches, so act 2 can show it.
for i in $(seq 3 "$devices"); do
  if [ "$(cohort "${ids[$i]}" "$B_ID")" -lt 5000 ]; then failing=$i; break; fi
done
if [ "$failing" -eq 0 ]; then
  failing=3
  while [ "$(cohort "${ids[$failing]}" "$B_ID")" -ge 5000 ]; do
    rm -f "$work/devices/$failing/state/device.key"  # a new device, a new key
    ids[$failing]=$(identity "$failing")
  done
fi
say "enrolling the fleet: one enrollment token for $devices devices, valid for a day"
ENROLL=$(curl -s -X POST -H "Authorization: Bearer $TOKEN" \
  -d "{\"uses\": $devices, \"days\": 1, \"note\": \"demo fleet\"}" "$URL/v1/admin/enrollments" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
OPTED_OUT=2
say "starting $devices devices (device $OPTED_OUT: Automatically Install off; device $failing: failing health check)"
for i in $(seq 1 "$devices"); do
  d="$work/devices/$i"
  mkdir -p "$d/etc/components" "$d/state" "$d/opt"
  chmod 755 "$work/devices" "$d"
  cp -a "$work/trees/base" "$d/opt/openssl"
  cp "$work/repo/metadata/1.root.json" "$d/etc/root.json"
  (umask 077; printf '%s\n' "$ENROLL" > "$d/etc/enrollment.token")
  [ "$i" -eq "$OPTED_OUT" ] && echo '{"auto_install": false}' > "$d/state/settings.json"
  check="[\"test\", \"-s\", \"$d/opt/openssl/usr/lib/x86_64-linux-gnu/libssl.so.3\"]"
  [ "$i" -eq "$failing" ] && check='["sh", "-c", "echo TLS self-test failed: handshake error >&2; exit 1"]'
  device_config "$d" "\"$URL/repo\"" "\"$URL\"" "$watch" "$check"
  "$BIN/quietpatchd" --config-dir "$d/etc" --state-dir "$d/state" > "$d/agent.log" 2>&1 &
  echo $! >> "$work/pids"
done
echo "$failing" > "$work/failing_device"; echo "$OPTED_OUT" > "$work/opted_out_device"
for i in $(seq 1 "$devices"); do
  for _ in $(seq 200); do
    "$BIN/quietpatch" --socket "$work/devices/$i/control.sock" --json status 2>/dev/null |
      python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["last_check"] else 1)' 2>/dev/null && break
    sleep 0.1
  done
done

fleet() { curl -s -H "Authorization: Bearer $VIEWER" "$URL/v1/fleet/improvements"; }
# progress ID LABEL TARGET_PROTECTED START_TIME EXPECT_FAILURES -> waits, prints live progress
progress() {
  local id=$1 target=$2 start=$3 want_failed=$4 timeout=${5:-180}
  while true; do
    local line
    line=$(fleet | python3 -c '
import json, sys
id, full = sys.argv[1], int(sys.argv[2])
imps = {i["id"]: i for i in json.load(sys.stdin)["improvements"]}
i = imps.get(id)
if not i: print("0 0 0 0 0"); sys.exit()
d = i["devices"]
fetched = sum(d[s] for s in ("downloading", "installed", "protected", "failed", "rolled_back", "removed"))
print(d["protected"], d["failed"] + d["rolled_back"], fetched * i["patch_bytes"], fetched * full, d["available"])
' "$id" "$full_deb_bytes")
    read -r prot bad bytes full avail <<<"$line"
    local t; t=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
    printf '\r  protected %2d/%d  failed or rolled back %d  opted out %d  %5ss since publication  downloaded %s KB (full packages: %s KB)   ' \
      "$prot" "$target" "$bad" "$avail" "$t" $((bytes / 1024)) $((full / 1024))
    if [ "$prot" -ge "$target" ] && [ "$bad" -ge "$want_failed" ]; then echo; LAST_T=$t; LAST_BYTES=$bytes; LAST_FULL=$full; return 0; fi
    if python3 -c "import time,sys; sys.exit(0 if time.time() - $start > $timeout else 1)"; then echo; echo "demo: timed out" >&2; return 1; fi
    sleep 0.5
  done
}

if [ "$act" = 1 ] || [ "$act" = both ]; then
  say "act 1: building openssl $BASE (a) from the files of $A_VER"
  $R build --component openssl --platform linux-x86_64 --base "$BASE" --label a \
    --base-tree "$work/trees/base" --new-tree "$work/trees/a" \
    --cve CVE-2025-9230 --cve CVE-2025-9231 --cve CVE-2025-9232 --urgency critical --exploited \
    --out "$work/improvements/a" >/dev/null
  patch_a=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["patches"][0]["bytes"])' "$work/improvements/a/improvement.json")
  say "publishing (a): exploited in the wild, critical, 100% rollout; patch $((patch_a / 1024)) KB vs the $((full_deb_bytes / 1024)) KB package"
  t0=$(python3 -c 'import time; print(time.time())')
  $R publish "$work/improvements/a" --percent 100
  echo "$t0" > "$work/act1_published"
  progress "openssl/$BASE/a" $((devices - 2)) "$t0" 1
  echo "$LAST_T" > "$work/act1_seconds"
  echo "$LAST_BYTES $LAST_FULL" > "$work/act1_bytes"
  # The summary, from the files on disk and the devices themselves.
  ok=0; bad=0
  for i in $(seq 1 "$devices"); do
    [ "$i" -eq "$OPTED_OUT" ] || [ "$i" -eq "$failing" ] && continue
    if [ "$(digest "$work/devices/$i/opt/openssl")" = "$A_DIGEST" ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
  done
  say "act 1 summary"
  differ=""; [ "$bad" -gt 0 ] && differ=" ($bad differ!)"
  echo "  devices with Automatically Install on: $ok of $((devices - 2)) protected, tree identical to libssl3 ${A_VER}${differ}"
  st=$("$BIN/quietpatch" --socket "$work/devices/$OPTED_OUT/control.sock" --json status)
  echo "  device $OPTED_OUT (opted out): $(python3 -c 'import json,sys; c=json.load(sys.stdin)["components"][0]; a=c["available"]; print("version", c["patch_level"], "- available:", "("+a["label"]+")", a["state"] if a else "none")' <<<"$st"), tree unchanged: $([ "$(digest "$work/devices/$OPTED_OUT/opt/openssl")" = "$BASE_DIGEST" ] && echo yes || echo NO)"
  st=$("$BIN/quietpatch" --socket "$work/devices/$failing/control.sock" --json status)
  echo "  device $failing (failing health check): $(python3 -c 'import json,sys; c=json.load(sys.stdin)["components"][0]; print("version", c["patch_level"], "-", c["last_error"])' <<<"$st")"
  read -r bytes full < "$work/act1_bytes"
  echo "  publication to the last device protected: ${LAST_T}s ($([ "$watch" = true ] && echo watch || echo polling only))"
  echo "  downloaded by the fleet: $((bytes / 1024)) KB; the full packages would have been $((full / 1024)) KB"
  echo "  dashboard: $URL/#token=$VIEWER"
fi

if [ "$act" = 2 ] || [ "$act" = both ]; then
  say "act 2: a cumulative (b) from the files of $B_VER, patches from the base and from (a)"
  $R build --component openssl --platform linux-x86_64 --base "$BASE" --label b \
    --base-tree "$work/trees/base" --from "a=$work/trees/a" --new-tree "$work/trees/b" \
    --cve CVE-2025-9230 --cve CVE-2025-9231 --cve CVE-2025-9232 --cve CVE-2026-0001 --urgency high \
    --out "$work/improvements/b" >/dev/null
  say "publishing (b) at a 50% rollout"
  t0=$(python3 -c 'import time; print(time.time())')
  $R publish "$work/improvements/b" --percent 50
  # Wait for the failing device to report, then halt (as the operator, through the API).
  for _ in $(seq 600); do
    n=$(fleet | python3 -c 'import json,sys; i={x["id"]:x for x in json.load(sys.stdin)["improvements"]}.get(sys.argv[1]); print(i["devices"]["rolled_back"]+i["devices"]["failed"] if i else 0)' "$B_ID")
    [ "$n" -ge 1 ] && break; sleep 0.2
  done
  say "the failing device reported a rollback of (b): halting the rollout"
  curl -s -X POST -H "Authorization: Bearer $TOKEN" \
    -d "{\"id\": \"$B_ID\", \"halted\": true, \"reason\": \"device $failing rolled back: health check failed\"}" \
    "$URL/v1/admin/rollout" >/dev/null
  sleep 3
  on_b=0
  for i in $(seq 1 "$devices"); do
    [ "$(digest "$work/devices/$i/opt/openssl")" = "$B_DIGEST" ] && on_b=$((on_b + 1))
  done
  # Remove (b) on one device that has it: it returns to (a).
  removed=0
  for i in $(seq 1 "$devices"); do
    if [ "$(digest "$work/devices/$i/opt/openssl")" = "$B_DIGEST" ]; then
      "$BIN/quietpatch" --socket "$work/devices/$i/control.sock" remove openssl >/dev/null
      removed=$i; break
    fi
  done
  echo "$removed" > "$work/removed_device"
  say "act 2 summary"
  echo "  devices on (b) when halted: $on_b of $devices (50% rollout)"
  echo "  rollout of (b): $(fleet | python3 -c 'import json,sys; i={x["id"]:x for x in json.load(sys.stdin)["improvements"]}[sys.argv[1]]; r=i["rollout"]; print(("HALTED: " + r["reason"]) if r["halted"] else "running")' "$B_ID")"
  [ "$removed" -gt 0 ] && echo "  device $removed: quietpatch remove openssl -> $("$BIN/quietpatch" --socket "$work/devices/$removed/control.sock" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["components"][0]["patch_level"])')"
  echo "  dashboard: $URL/#token=$VIEWER"
fi

if [ "$keep" -eq 1 ]; then
  say "left running (stop with: xargs kill < $work/pids)"
  echo "  dashboard:  $URL/#token=$VIEWER"
  echo "  a device:   $BIN/quietpatch --socket $work/devices/1/control.sock status"
  echo "  publisher:  $BIN/quietpatch-repo --repo $work/repo status"
fi
