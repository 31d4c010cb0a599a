#!/usr/bin/env bash
# Fleet server load benchmark on loopback, bounded in count and time. Prints in one run:
#  - requests/s for timestamp.json from quietpatch-server and from nginx (Debian) serving
#    the same directory, both measured with wrk at 16, 64 and 256 connections, and their
#    ratio (goal: >= 1.0 at 64);
#  - signed reports from enrolled devices stored per second with no loss (sent = stored),
#    on SQLite and on PostgreSQL;
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
start_server() {  # $1 database URL -> sets PORT
  "$B/src/apps/quietpatch-server" --config "$work/server.toml" --listen 127.0.0.1:0 --repo "$work/repo" --keys "$work/keys" \
    --database "$1" --admin-token-file "$work/token" --audit-log "$work/audit.log" --threads 2 \
    --log-level warn > "$work/server.out" 2>&1 &
  SERVER_PID=$!
  pids+=("$SERVER_PID")
  for _ in $(seq 100); do grep -q listening "$work/server.out" && break; sleep 0.05; done
  PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$work/server.out")
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

# 2. Reports stored per second, no loss, on both backends.
python3 bench/report_load.py --help >/dev/null
start_server "sqlite:$work/reports.db"
python3 bench/report_load.py "http://127.0.0.1:$PORT" 200 50 "sqlite" "sqlite:$work/reports.db" "$work/token"
stop_server
pg="$work/pg"; mkdir -p "$pg/sock"; chown -R postgres:postgres "$pg"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
runuser -u postgres -- "$PGBIN/initdb" -D "$pg/data" -A trust -U postgres --no-sync >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg/data" -w -l "$pg/log" -o "-k $pg/sock -p 18932 -c listen_addresses=''" start >/dev/null
PGURL="postgresql:///postgres?host=$pg/sock&port=18932&user=postgres"
start_server "$PGURL"
python3 bench/report_load.py "http://127.0.0.1:$PORT" 200 50 "postgresql" "$PGURL" "$work/token"
stop_server
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null

# 3. 10,000 idle watchers: memory, and time from a publish to all of them answered.
ulimit -n "$(ulimit -Hn)"  # 10,000 sockets on each side
start_server "sqlite:$work/reports.db"
rss0=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
python3 bench/watch_load.py "$PORT" 10000 "$SERVER_PID" "$rss0" "$B/src/apps/quietpatch-repo" "$work/repo" "$work/keys"
stop_server
