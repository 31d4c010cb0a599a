#!/usr/bin/env bash
# Fleet server load benchmark on loopback, bounded in count and time. Prints in one run:
#  - requests/s for timestamp.json from quietpatch-server and from nginx (Debian) serving
#    the same directory, both measured with wrk at 16, 64 and 256 connections, and their
#    ratio (goal: >= 1.0 at 64);
#  - signed reports from enrolled devices stored per second with no loss (sent = stored),
#    on SQLite and on PostgreSQL with one and three instances;
#  - memory with 10,000 idle watch connections;
#  - time from a publish to all watchers answered.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
B=build/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$work"; }
trap cleanup EXIT
chmod 755 "$work"

# A repository with one improvement.
$B/src/apps/quietpatch-repo --repo "$work/repo" --keys "$work/keys" init >/dev/null
mkdir -p "$work/v0" "$work/v1"; echo old > "$work/v0/f"; echo new > "$work/v1/f"
$B/src/apps/quietpatch-repo --repo "$work/repo" build --component comp --platform linux-x86_64 --base 1.0 \
  --base-tree "$work/v0" --new-tree "$work/v1" --out "$work/imp" >/dev/null
$B/src/apps/quietpatch-repo --repo "$work/repo" --keys "$work/keys" publish "$work/imp" --percent 100
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"; chmod 600 "$work/token"

# Every simulated client comes from 127.0.0.1: one address may hold all the watches here.
echo 'watch_per_address = 20000' > "$work/server.toml"
starts=0
start_server() {  # $1 database URL -> sets PORT and SERVER_PID
  local out="$work/server-$((++starts)).out"
  "$B/src/apps/quietpatch-server" --config "$work/server.toml" --listen 127.0.0.1:0 --repo "$work/repo" --keys "$work/keys" \
    --database "$1" --admin-token-file "$work/token" --audit-log "$work/audit.log" --threads 2 \
    --log-level warn > "$out" 2>&1 &
  SERVER_PID=$!
  pids+=("$SERVER_PID")
  for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
  PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$out")
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }

# 1. timestamp.json: quietpatch-server vs nginx (2 workers, like the server's 2 threads),
# same files, same wrk settings, at 16, 64 and 256 connections.
rps() { wrk -t2 -c"$1" -d8s "$2" | awk '/Requests\/sec/ {print $2}'; }
start_server "sqlite:$work/reports.db"
declare -A qp_rps ng_rps
for c in 16 64 256; do qp_rps[$c]=$(rps "$c" "http://127.0.0.1:$PORT/repo/metadata/timestamp.json"); done
stop_server
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18931;
    location /repo/ { alias $work/repo/; }
  }
}
CONF
nginx -c "$work/nginx/nginx.conf"
for c in 16 64 256; do ng_rps[$c]=$(rps "$c" "http://127.0.0.1:18931/repo/metadata/timestamp.json"); done
nginx -c "$work/nginx/nginx.conf" -s stop
for c in 16 64 256; do
  echo "timestamp.json requests/s at $c connections: quietpatch-server ${qp_rps[$c]}, nginx ${ng_rps[$c]}, ratio $(awk -v a="${qp_rps[$c]}" -v b="${ng_rps[$c]}" 'BEGIN{printf "%.2f", a/b}') (goal >= 1.0 at 64)"
done

# 2. Reports stored per second, no loss: bench/report_bench.cc (C++: a Python client
# could not send fast enough), 1,000 enrolled devices on 64 keep-alive connections, each
# request signed and verified. 10 events a request (an agent's report after an install)
# and 50 (a backlog); SQLite with one instance, PostgreSQL with one and with three
# instances sharing the database (the connections spread over them). Goal: 20,000/s on
# PostgreSQL.
reports() {  # $1 label, $2 ports, $3 events per request, $4 database URL for the count
  local line
  line=$($B/bench/report_bench --ports "$2" --devices 1000 --events 100 --batch "$3" --connections 64 \
    --admin-token-file "$work/token")
  echo "reports on $1: $line; the database holds $(count_events "$4") events"
}
count_events() {
  case "$1" in
    sqlite:*) python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from events").fetchone()[0])' "${1#sqlite:}" ;;
    *) psql "$1" -Atc 'select count(*) from events' ;;
  esac
}
clear_events() { psql "$1" -qc 'delete from events; delete from devices; delete from event_counts' >/dev/null; }
for b in 10 50; do
  rm -f "$work/reports.db"*
  start_server "sqlite:$work/reports.db"
  reports "sqlite, 1 instance, $b events a request" "$PORT" "$b" "sqlite:$work/reports.db"
  stop_server
done
source scripts/pg_cluster.sh
pg_start "$work/pg" 18932
for n in 1 3; do
  ports=""; servers=()
  for i in $(seq "$n"); do
    start_server "$PGURL"; ports="${ports:+$ports,}$PORT"; servers+=("$SERVER_PID")
  done
  for b in 10 50; do
    clear_events "$PGURL"
    reports "postgresql, $n instance(s), $b events a request (goal: 20000/s)" "$ports" "$b" "$PGURL"
  done
  for p in "${servers[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
done
pg_stop "$work/pg"

# 3. 10,000 idle watchers: memory, and time from a publish to all of them answered.
ulimit -n "$(ulimit -Hn)"  # 10,000 sockets on each side
start_server "sqlite:$work/reports.db"
python3 bench/watch_load.py "$PORT" 10000 "$SERVER_PID" "$work/repo" -- \
  "$B/src/apps/quietpatch-repo" --repo "$work/repo" --keys "$work/keys" rollout comp/1.0/a 50
stop_server
