#!/usr/bin/env bash
# End-to-end test of the main job: runs scripts/demo.sh with a small fleet, then checks
# every outcome from the files on disk, `quietpatch status --json` and the server's API,
# not from the demo's printout.
#
#   scripts/demo_e2e_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${1:-build/release}" && pwd)
BIN=$BUILD/src/apps
work=$(mktemp -d -p "${TMPDIR:-/tmp}" qp-demo-e2e-XXXXXX)
N=6
stop() { [ -f "$work/pids" ] && xargs -r kill < "$work/pids" 2>/dev/null || true; sleep 0.5; rm -rf "$work"; }
trap stop EXIT
QP_BIN_DIR=$BUILD/src/apps bash scripts/demo.sh --devices $N --keep --work "$work" > "$work.log" 2>&1 ||
  { cat "$work.log"; exit 1; }
rm -f "$work.log"

fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
status() { "$BIN/quietpatch" --socket "$work/devices/$1/control.sock" --json status; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
URL=$(cat "$work/server/url")
api=$(curl -s -H "Authorization: Bearer $(cat "$work/server/viewer.token")" "$URL/v1/fleet/improvements")
admin=$(cat "$work/server/admin.token")
BASE=$(ls "$work/repo/targets/improvements/openssl")
A="openssl/$BASE/a"; B="openssl/$BASE/b"
failing=$(cat "$work/failing_device"); opted=$(cat "$work/opted_out_device"); removed=$(cat "$work/removed_device")
A_D=$(digest "$work/trees/a"); B_D=$(digest "$work/trees/b"); BASE_D=$(digest "$work/trees/base")
dev() { python3 -c "import json,sys; i={x['id']:x for x in json.load(sys.stdin)['improvements']}[sys.argv[1]]; print(i['devices'][sys.argv[2]] if sys.argv[2] in i['devices'] else i['rollout'][sys.argv[2]])" "$1" "$2" <<<"$api"; }

# The fleet enrolled: every device with its own key, accepted, through one token.
devices=$(curl -s -H "Authorization: Bearer $admin" "$URL/v1/admin/devices")
check "server: all $N devices enrolled and accepted, each with its own install id" \
  "[ \"\$(field 'len({x[\"id\"] for x in d if x[\"status\"] == \"accepted\"})' <<<\"\$devices\")\" = $N ]"
check "server: the fleet views refuse a request without a token" \
  "[ \"\$(curl -s -o /dev/null -w '%{http_code}' $URL/v1/fleet/improvements)\" = 401 ]"

# Act 1: every device with Automatically Install on got (a) (trees may have moved on to
# (b) in act 2, or back to (a) after the remove), the server saw them protected.
on_a=0; on_b=0
for i in $(seq 1 $N); do
  [ "$i" -eq "$opted" ] || [ "$i" -eq "$failing" ] && continue
  d=$(digest "$work/devices/$i/opt/openssl")
  if [ "$d" = "$A_D" ]; then on_a=$((on_a + 1)); elif [ "$d" = "$B_D" ]; then on_b=$((on_b + 1)); fi
done
check "every auto-install device holds 3.0.20's or 3.0.22's files byte for byte" "[ $((on_a + on_b)) -eq $((N - 2)) ]"
check "server: (a) protected on all $((N - 2)) auto-install devices" "[ $(dev "$A" protected) -eq $((N - 2)) ]"
check "server: the failing device's (a) rolled back" "[ $(dev "$A" rolled_back) -eq 1 ]"
check "server: the opted-out device has (a) available" "[ $(dev "$A" available) -eq 1 ]"
check "opted-out device: files unchanged" "[ $(digest "$work/devices/$opted/opt/openssl") = $BASE_D ]"
check "opted-out device: status shows the fix available, auto-install off" \
  "[ \"\$(status $opted | field 'd[\"auto_install\"] is False and d[\"components\"][0][\"available\"][\"state\"] == \"available\"')\" = True ]"
check "failing device: files unchanged after rollbacks" "[ $(digest "$work/devices/$failing/opt/openssl") = $BASE_D ]"
check "failing device: status says why" \
  "status $failing | field 'd[\"components\"][0][\"last_error\"]' | grep -q 'health check failed'"
check "failing device: history records the rollback" \
  "$BIN/quietpatch --socket $work/devices/$failing/control.sock history | grep -q 'rollback base -> (a): rolled_back'"
check "a protected device: patch level and CVEs mitigated" \
  "[ \"\$(status 1 | field 'd[\"components\"][0][\"protected\"] and \"CVE-2025-9230\" in d[\"components\"][0][\"cves_mitigated\"]')\" = True ]"
check "time from publication to the last device protected was measured" "[ -s $work/act1_seconds ]"
# Act 2: (b) at 50%, halted after the failing device reported, one device removed (b).
check "server: (b) rollout halted" "[ $(dev "$B" halted) = True ]"
check "server: (b) rollout at 50%" "[ $(dev "$B" percent) -eq 50 ]"
check "server: the failing device's (b) rolled back" "[ $(dev "$B" rolled_back) -ge 1 ]"
if [ "$removed" -gt 0 ]; then
  check "removed device: back on (a), files identical to 3.0.20's" \
    "[ $(digest "$work/devices/$removed/opt/openssl") = $A_D ] && [ \"\$(status $removed | field 'd[\"components\"][0][\"improvement\"]')\" = a ]"
  check "server: the removal was reported" "[ $(dev "$B" removed) -ge 1 ]"
fi
check "dashboard page is served" "curl -sf $URL/ | grep -q 'quietpatch fleet'"
echo "act 1: publication to the last device protected in $(cat "$work/act1_seconds")s; downloaded $(cut -d' ' -f1 "$work/act1_bytes") bytes vs $(cut -d' ' -f2 "$work/act1_bytes") for the full packages"
exit $fail
