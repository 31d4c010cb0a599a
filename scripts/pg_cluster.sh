# A private PostgreSQL cluster for the scripts and benchmarks that need one (sourced, not
# run): it listens on a Unix socket in its own directory only, as the postgres user.
#   pg_start DIR [PORT]   initdb + start; sets PGURL (a libpq URI)
#   pg_stop DIR [MODE]    pg_ctl stop -m MODE (fast)
#   pg_restart DIR MODE   pg_ctl restart -m MODE (immediate: as after a crash)
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
pg_start() {
  local dir=$1 port=${2:-5432}
  mkdir -p "$dir/sock"
  chown -R postgres:postgres "$dir"
  runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$dir/data" -w -l "$dir/log" \
    -o "-k $dir/sock -p $port -c listen_addresses='' -c max_connections=300" start >/dev/null
  PGURL="postgresql:///postgres?host=$dir/sock&port=$port&user=postgres"
}
pg_stop() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1/data" -m "${2:-fast}" -w stop >/dev/null 2>&1 || true; }
pg_restart() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1/data" -m "$2" -w restart >/dev/null; }
