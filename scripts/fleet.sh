#!/usr/bin/env bash
# The fleet service at the shape it is deployed in, on loopback, from one command:
# PostgreSQL, several quietpatch-server instances sharing it (--shared-repository), HAProxy
# in front of them (health checks on /healthz), nginx as the caching edge in front of
# HAProxy (the repository: timestamp.json cached 1 s, everything else for ever), and N real
# quietpatchd devices holding libssl3 3.0.17's files. The publisher publishes the 3.0.20
# fix to the database (quietpatch-repo --database), at 100%; the script waits until every
# device is protected and prints the time from publication to the last one.
#
#   scripts/fleet.sh [--devices N] [--instances M] [--faults] [--timeout S] [--work DIR] [--keep]
#
# --faults, mid-rollout: kill -9 the signer and one other instance, restart PostgreSQL
# (pg_ctl restart -m immediate), halt the rollout and resume it through the load balancer
# during the failover. Then it checks, from the database and the devices: every device
# protected; no report lost (each device's events 1..N stored once, none pending); no
# timestamp version pushed twice or out of order; the watchers on the surviving instance
# and on the load balancer saw the halt and the resume. Exit status 1 when a check fails.
# Everything started is stopped at the end (unless --keep), and the run is bounded by
# --timeout (300 s).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

devices=20
instances=3
faults=0
timeout=300
keep=0
work=/tmp/quietpatch-fleet
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices="$2"; shift ;;
    --instances) instances="$2"; shift ;;
    --faults) faults=1 ;;
    --timeout) timeout="$2"; shift ;;
    --work) work="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "fleet: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$instances" -ge 1 ] || { echo "fleet: at least 1 instance" >&2; exit 2; }
[ "$faults" -eq 0 ] || [ "$instances" -ge 3 ] || { echo "fleet: --faults needs 3 instances" >&2; exit 2; }

source scripts/device_config.sh
DEVICE_INTERVAL=60 DEVICE_MAX_BACKOFF=5
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
if [ -z "${QP_BIN_DIR:-}" ]; then
  say "installing packages and building (scripts/setup.sh)"
  scripts/setup.sh >/dev/null
fi
BIN=${QP_BIN_DIR:-$ROOT/build/release/src/apps}
for tool in quietpatch-repo quietpatch-server quietpatchd quietpatch; do
  [ -x "$BIN/$tool" ] || { echo "fleet: $BIN/$tool is missing" >&2; exit 1; }
done
source scripts/pg_cluster.sh
for tool in haproxy nginx; do command -v "$tool" >/dev/null || { echo "fleet: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }; done

BASE=3.0.17-1~deb12u2
A_VER=3.0.20-1~deb12u2
scripts/testdata.sh >/dev/null

# --- a clean stage, and everything stopped at the end -------------------------------------
if [ -f "$work/pids" ]; then xargs -r kill -9 < "$work/pids" 2>/dev/null || true; fi
[ -f "$work/pg/data/postmaster.pid" ] && pg_stop "$work/pg" immediate
rm -rf "$work"
mkdir -p "$work"
chmod 755 "$work"
: > "$work/pids"
cleanup() {
  local rc=$?
  if [ "$keep" -eq 0 ]; then
    xargs -r kill < "$work/pids" 2>/dev/null || true
    pg_stop "$work/pg"
    # The devices' trees take a few GB at 200 devices: kept only to look into a failure.
    if [ "$rc" -eq 0 ]; then sleep 0.5; rm -rf "$work"; else echo "fleet: left $work to look into" >&2; fi
  fi
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"  # a socket or two for every device, on each side
deadline=$(( $(date +%s) + timeout ))
past_deadline() { [ "$(date +%s)" -ge "$deadline" ]; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for v in base a; do mkdir -p "$work/trees/$v"; done
dpkg-deb -x "$ROOT/testdata/debs/libssl3_${BASE}_amd64.deb" "$work/trees/base"
dpkg-deb -x "$ROOT/testdata/debs/libssl3_${A_VER}_amd64.deb" "$work/trees/a"
digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }
A_DIGEST=$(digest "$work/trees/a")

say "PostgreSQL (one cluster, a Unix socket)"
pg_start "$work/pg"
sql() { psql "$PGURL" -Atc "$1"; }

say "the repository, in the database (quietpatch-repo --database init)"
R="$BIN/quietpatch-repo --repo $work/publisher --keys $work/keys --database $PGURL"
$R init >/dev/null
mkdir -p "$work/server/keys" && chmod 700 "$work/server/keys"
cp -p "$work"/keys/{rollout,snapshot,timestamp}.key "$work/server/keys/"
(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/server/admin.token")
TOKEN=$(cat "$work/server/admin.token")

say "$instances quietpatch-server instances (--shared-repository, each with its own directory)"
ports=()
start_instance() {  # $1 index
  local i=$1 log="$work/server/instance-$1.log"
  "$BIN/quietpatch-server" --listen "127.0.0.1:${ports[$i]:-0}" --repo "$work/server/instance-$i" \
    --keys "$work/server/keys" --database "$PGURL" --shared-repository --instance-name "instance-$i" \
    --admin-token-file "$work/server/admin.token" --audit-log "$work/server/audit-$i.log" \
    >> "$log" 2>&1 &
  echo $! > "$work/server/instance-$i.pid"; echo $! >> "$work/pids"
  disown $!  # a kill -9 of it is the script's own doing, not news
  for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.05; done
  ports[$i]=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$log" | tail -1)
}
for i in $(seq 1 "$instances"); do start_instance "$i"; done

say "HAProxy in front of them (health checks on /healthz), nginx as the caching edge"
LB_PORT=$(free_port); EDGE_PORT=$(free_port)
{
  cat <<CONF
global
  maxconn 8000
defaults
  mode http
  timeout connect 1s
  timeout client 120s
  timeout server 120s
  retries 2
  option redispatch
frontend fleet
  bind 127.0.0.1:$LB_PORT
  default_backend instances
backend instances
  balance roundrobin
  option httpchk GET /healthz
CONF
  for i in $(seq 1 "$instances"); do
    echo "  server instance-$i 127.0.0.1:${ports[$i]} check inter 500ms fall 2 rise 1"
  done
} > "$work/haproxy.cfg"
haproxy -f "$work/haproxy.cfg" -db > "$work/haproxy.log" 2>&1 &
echo $! >> "$work/pids"
mkdir -p "$work/edge/cache" && chmod 777 "$work/edge" "$work/edge/cache"
cat > "$work/edge/nginx.conf" <<CONF
worker_processes 2;
pid $work/edge/nginx.pid;
error_log $work/edge/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path $work/edge/cache keys_zone=repo:10m max_size=1g inactive=1d use_temp_path=off;
  server {
    listen 127.0.0.1:$EDGE_PORT;
    location /repo/ {
      proxy_pass http://127.0.0.1:$LB_PORT;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache repo;
      proxy_cache_lock on;
      proxy_cache_revalidate on;
      proxy_cache_use_stale error timeout updating http_502 http_503 http_504;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
CONF
nginx -c "$work/edge/nginx.conf"
for _ in $(seq 50); do [ -s "$work/edge/nginx.pid" ] && break; sleep 0.1; done
cat "$work/edge/nginx.pid" >> "$work/pids"
LB="http://127.0.0.1:$LB_PORT"; EDGE="http://127.0.0.1:$EDGE_PORT"
for _ in $(seq 100); do curl -sf "$LB/healthz" >/dev/null && curl -sf "$EDGE/repo/metadata/timestamp.json" >/dev/null && break; sleep 0.1; done

say "enrolling and starting $devices devices (repository from the edge, /v1 from the load balancer)"
ENROLL=$(curl -sf -X POST -H "Authorization: Bearer $TOKEN" \
  -d "{\"uses\": $devices, \"days\": 1, \"note\": \"fleet.sh\"}" "$LB/v1/admin/enrollments" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
for i in $(seq 1 "$devices"); do
  d="$work/devices/$i"
  mkdir -p "$d/etc/components" "$d/state" "$d/opt"
  cp -a "$work/trees/base" "$d/opt/openssl"
  cp "$work/publisher/metadata/1.root.json" "$d/etc/root.json"
  (umask 077; printf '%s\n' "$ENROLL" > "$d/etc/enrollment.token")
  device_config "$d" "[\"$EDGE/repo\", \"$LB/repo\"]" "\"$LB\"" true \
    "[\"test\", \"-s\", \"$d/opt/openssl/usr/lib/x86_64-linux-gnu/libssl.so.3\"]"
  "$BIN/quietpatchd" --config-dir "$d/etc" --state-dir "$d/state" > "$d/agent.log" 2>&1 &
  echo $! >> "$work/pids"; echo $! >> "$work/agent.pids"
done
status() { "$BIN/quietpatch" --socket "$work/devices/$1/control.sock" --json status 2>/dev/null; }
for i in $(seq 1 "$devices"); do
  until status "$i" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["last_check"] else 1)' 2>/dev/null; do
    past_deadline && { echo "fleet: device $i never checked" >&2; exit 1; }
    sleep 0.1
  done
done

# Watchers that record every version they are answered (one on each instance, one
# through the load balancer).
watcher() {  # $1 base URL, $2 output file
  python3 - "$1" "$2" <<'PY' &
import json, sys, time, urllib.request
base, out = sys.argv[1], sys.argv[2]
v = 0
while True:
    try:
        with urllib.request.urlopen(f"{base}/v1/watch?timestamp={v}&timeout=30", timeout=40) as r:
            if r.status == 200:
                v = json.load(r)["timestamp"]
                with open(out, "a") as f:
                    f.write(f"{time.time():.3f} {v}\n")
    except Exception:
        time.sleep(0.2)
PY
  echo $! >> "$work/pids"
}
for i in $(seq 1 "$instances"); do watcher "http://127.0.0.1:${ports[$i]}" "$work/watch-instance-$i"; done
watcher "$LB" "$work/watch-load-balancer"

say "building the fix (libssl3 $BASE -> $A_VER) and publishing it to the database at 100%"
"$BIN/quietpatch-repo" --repo "$work/publisher" build --component openssl --platform linux-x86_64 \
  --base "$BASE" --label a --base-tree "$work/trees/base" --new-tree "$work/trees/a" \
  --cve CVE-2025-9230 --urgency critical --exploited --out "$work/improvement" >/dev/null
# CPU time (user + system) of the devices and of the instances, from /proc, with that of
# the children they waited for: a device's install runs gzip -9n to rebuild a changelog.gz
# and its health check, and that is the device's work.
cpu_seconds() {  # FILE of pids [children] -> seconds (children: only theirs)
  # One read of every /proc/PID/stat (a process per pid would take a minute under the load
  # of 1,000 devices, and the figures would be read long after the clock).
  local fields='$14 + $15 + $16 + $17'
  [ "${2:-}" = children ] && fields='$16 + $17'
  # (A process that is gone, such as an instance the fault test killed, counts nothing.)
  sed 's|.*|/proc/&/stat|' "$1" | { xargs -r cat 2>/dev/null || true; } |
    awk -v hz="$(getconf CLK_TCK)" "{t += $fields} END {print t / hz}"
}
# The whole machine's busy time (every process, the kernel), from /proc/stat.
busy_seconds() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8) / '"$(getconf CLK_TCK)"'}' /proc/stat; }
cat "$work"/server/instance-*.pid > "$work/instance.pids"
agents0=$(cpu_seconds "$work/agent.pids"); instances0=$(cpu_seconds "$work/instance.pids")
children0=$(cpu_seconds "$work/agent.pids" children)
busy0=$(busy_seconds)
t0=$(now)
$R publish "$work/improvement" --percent 100 >/dev/null
ID="openssl/$BASE/a"
# Progress from the reports (the database); the devices' own trees are checked at the end.
protected_now() {
  sql "SELECT COUNT(*) FROM devices WHERE improvement_id = '$ID' AND state = 'protected'" 2>/dev/null || echo 0
}
protected_trees() {
  local n=0
  for i in $(seq 1 "$devices"); do
    [ "$(digest "$work/devices/$i/opt/openssl")" = "$A_DIGEST" ] && n=$((n + 1))
  done
  echo "$n"
}

admin() {  # $1 JSON body: retried through the failover until the service answers 200
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 -X POST -H "Authorization: Bearer $TOKEN" -d "$1" "$LB/v1/admin/rollout")" = 200 ]; do
    past_deadline && { echo "fleet: the rollout change never landed: $1" >&2; exit 1; }
    sleep 0.2
  done
}
if [ "$faults" -eq 1 ]; then
  # Mid-rollout: as soon as the first device has the fix in place (its report may take a
  # while to come, with every core busy).
  lib=usr/lib/x86_64-linux-gnu/libssl.so.3
  has_fix() { cmp -s "$work/devices/$1/opt/openssl/$lib" "$work/trees/a/$lib"; }
  first=""
  until [ -n "$first" ]; do
    for i in $(seq 1 "$devices"); do has_fix "$i" && { first=$i; break; }; done
    past_deadline && break
  done
  signer=$(sql "SELECT pushed_by FROM repo_generations WHERE pushed_by LIKE 'instance-%' ORDER BY generation DESC LIMIT 1" || true)
  signer=${signer#instance-}
  if [ -z "$signer" ]; then signer=$(grep -l "is the signer" "$work"/server/instance-*.log | head -1 | sed 's/.*instance-\([0-9]*\).log/\1/'); fi
  other=1; [ "$other" = "$signer" ] && other=2
  survivor=$(seq 1 "$instances" | grep -vx "$signer" | grep -vx "$other" | head -1)
  say "faults at $(python3 -c "print(f'{$(now) - $t0:.1f}')")s, $(n=0; for i in $(seq 1 "$devices"); do has_fix "$i" && n=$((n + 1)); done; echo "$n") of $devices devices had the fix: kill -9 instance-$signer (the signer) and instance-$other; restart PostgreSQL; halt, then resume"
  kill -9 "$(cat "$work/server/instance-$signer.pid")" "$(cat "$work/server/instance-$other.pid")"
  pg_restart "$work/pg" immediate
  t_halt=$(now)
  admin "{\"id\": \"$ID\", \"halted\": true, \"reason\": \"fleet.sh: halted during the failover\"}"
  halt_v=$(sql "SELECT MAX(timestamp_version) FROM repo_generations")
  echo "  halted after $(python3 -c "print(f'{$(now) - $t_halt:.1f}')")s (timestamp version $halt_v), by instance-$survivor"
  sleep 2
  admin "{\"id\": \"$ID\", \"halted\": false}"
  resume_v=$(sql "SELECT MAX(timestamp_version) FROM repo_generations")
  echo "  resumed (timestamp version $resume_v)"
fi

say "waiting for every device to report itself protected"
while true; do
  n=$(protected_now)
  printf '\r  protected %d/%d  %5.1fs since publication ' "$n" "$devices" "$(awk -v a="$(now)" -v b="$t0" 'BEGIN {print a - b}')"
  [ "$n" -ge "$devices" ] && break
  past_deadline && { echo; echo "fleet: timed out with $n of $devices protected" >&2; exit 1; }
  sleep 0.5
done
echo
t_all=$(now)
busy1=$(busy_seconds)
agents1=$(cpu_seconds "$work/agent.pids"); instances1=$(cpu_seconds "$work/instance.pids")
children1=$(cpu_seconds "$work/agent.pids" children)
# The devices' own clocks (whole seconds): when the last one committed the fix.
last=$(sql "SELECT MAX(t) FROM (SELECT MIN(time) AS t FROM events WHERE state = 'protected' GROUP BY install_id) p")
python3 - "$t0" "$last" "$t_all" "$agents0" "$agents1" "$instances0" "$instances1" "$(nproc)" "$devices" "$instances" "$faults" "$busy0" "$busy1" "$children0" "$children1" <<'PY' | tee "$work/result"
import sys
t0, last, t_all, a0, a1, i0, i1, cores, n, m, faults, b0, b1, c0, c1 = map(float, sys.argv[1:])
devices_s = max(0.0, last + 1 - t0)
agents, inst = a1 - a0, i1 - i0
print(f"  publication to the last device protected: {devices_s:.0f} s at most by the devices' clocks "
      f"(whole seconds), {t_all - t0:.1f} s until the last report was stored ({n:.0f} devices, {m:.0f} instances)")
if faults:
    print("  (CPU not counted: two instances were killed)")
else:
    goal = 1.25 * agents / cores + 2
    other = (b1 - b0) - agents - inst
    print(f"  CPU during the rollout: devices {agents:.1f} s ({c1 - c0:.1f} s of it in the "
          f"processes they ran: gzip, health checks), instances {inst:.1f} s "
          f"({100 * inst / agents:.1f}% of the devices'; goal <= 10%), everything else "
          f"{other:.1f} s (PostgreSQL, HAProxy, nginx, this script, the kernel), "
          f"{cores * (t_all - t0) - (b1 - b0):.1f} s idle")
    print(f"  goal: last protected <= 1.25 x devices' CPU / {cores:.0f} cores + 2 s = {goal:.1f} s: "
          f"{'met' if devices_s <= goal else 'NOT met'} ({devices_s:.0f} s)")
PY

if [ "$faults" -eq 1 ]; then
  say "checks"
  failed=0
  check() { if eval "$2"; then echo "  ok: $1"; else echo "  FAILED: $1"; failed=1; fi; }
  # Reports: every device's queue drained, its events 1..N stored once each.
  for _ in $(seq 100); do
    pending=0
    for i in $(seq 1 "$devices"); do
      p=$(status "$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending_reports"])' 2>/dev/null || echo 1)
      pending=$((pending + p))
    done
    [ "$pending" -eq 0 ] && break
    sleep 0.2
  done
  trees=$(protected_trees)
  check "every device protected: $trees of $devices trees identical to $A_VER" '[ "$trees" -eq "$devices" ]'
  check "no report pending on any device" '[ "$pending" -eq 0 ]'
  gaps=$(sql "SELECT COUNT(*) FROM (SELECT install_id FROM events GROUP BY install_id HAVING COUNT(*) <> MAX(seq)) g")
  stored=$(sql "SELECT COUNT(DISTINCT install_id) FROM events")
  check "no report lost: each of $stored devices' events 1..N stored once ($gaps with a gap)" '[ "$gaps" -eq 0 ] && [ "$stored" -eq "$devices" ]'
  protected_db=$(sql "SELECT COUNT(*) FROM devices WHERE improvement_id = '$ID' AND state = 'protected'")
  check "the database counts $protected_db protected" '[ "$protected_db" -eq "$devices" ]'
  twice=$(sql "SELECT COUNT(*) - COUNT(DISTINCT timestamp_version) FROM repo_generations")
  backwards=$(sql "SELECT COUNT(*) FROM (SELECT timestamp_version - LAG(timestamp_version) OVER (ORDER BY generation) AS d FROM repo_generations) s WHERE d <= 0")
  check "no timestamp version pushed twice ($twice) or out of order ($backwards)" '[ "$twice" -eq 0 ] && [ "$backwards" -eq 0 ]'
  for w in "instance-$survivor" load-balancer; do
    saw=$(awk -v h="$halt_v" -v r="$resume_v" '$2 >= h && $2 < r {a=1} $2 >= r {b=1} END {print (a && b) ? "yes" : "no"}' "$work/watch-$w")
    check "the watcher on $w saw the halt (version $halt_v) and the resume ($resume_v)" '[ "$saw" = yes ]'
  done
  [ "$failed" -eq 0 ] || exit 1
fi
if [ "$keep" -eq 1 ]; then
  say "left running (stop with: xargs kill < $work/pids)"
  echo "  load balancer: $LB   edge: $EDGE   database: psql '$PGURL'"
fi
