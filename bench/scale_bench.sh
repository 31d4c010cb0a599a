#!/usr/bin/env bash
# Scale-out benchmark: the fleet service as several instances on one PostgreSQL database,
# each figure beside a one-instance run of the same script.
#  1. Time to protection for 200 and 1,000 real devices through 1 and 3 instances behind
#     HAProxy and the nginx edge (scripts/fleet.sh), with the devices' and the instances'
#     CPU over the rollout and the goal: last protected <= 1.25 x the devices' CPU-seconds /
#     cores + 2 s, instances <= 10% of the devices' CPU.
#  2. Reports stored per second through 1 and 3 shared-repository instances (goal 20,000/s),
#     the median of three runs each, with the instances' and PostgreSQL's CPU per event.
#  3. Watchers per instance and memory per watcher, and the time from a publish (through
#     the database) to every watcher on every instance answered (goal 1 s).
#
#   bench/scale_bench.sh [--quick | --service]
#     --quick: 200 devices only; --service: parts 2 and 3 only (no devices)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
[ "${1:-}" = "--service" ] && quick=2
scripts/setup.sh >/dev/null
B=build/release
source scripts/pg_cluster.sh
work=$(mktemp -d /var/tmp/qp-scale.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; pg_stop "$work/pg"; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

echo "# $(date -u +%F), $(nproc) cores: bench/scale_bench.sh"
# 1. Time to protection.
sizes=(200 1000); [ "$quick" -eq 1 ] && sizes=(200); [ "$quick" -eq 2 ] && sizes=()
for n in "${sizes[@]}"; do
  for m in 1 3; do
    echo "time to protection, $n devices, $m instance(s) behind HAProxy and the edge:"
    QP_BIN_DIR=$B/src/apps scripts/fleet.sh --devices "$n" --instances "$m" --timeout 1200 \
      --work "$work/fleet" > "$work/fleet.log" 2>&1 || { tail -20 "$work/fleet.log"; exit 1; }
    grep -A2 "publication to the last device protected" "$work/fleet.log"
  done
done

# 2 and 3: three instances sharing one database and repository.
pg_start "$work/pg" 18934
R="$B/src/apps/quietpatch-repo --repo $work/publisher --keys $work/keys --database $PGURL"
$R init >/dev/null
mkdir -p "$work/v0" "$work/v1"; echo old > "$work/v0/f"; echo new > "$work/v1/f"
$B/src/apps/quietpatch-repo --repo "$work/publisher" build --component comp --platform linux-x86_64 \
  --base 1.0 --base-tree "$work/v0" --new-tree "$work/v1" --out "$work/imp" >/dev/null
$R publish "$work/imp" --percent 100 >/dev/null
(umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token")
echo 'watch_per_address = 20000' > "$work/server.toml"
ports=(); spids=()
for i in 1 2 3; do
  "$B/src/apps/quietpatch-server" --config "$work/server.toml" --listen 127.0.0.1:0 \
    --repo "$work/instance-$i" --keys "$work/keys" --database "$PGURL" --shared-repository \
    --instance-name "instance-$i" --admin-token-file "$work/token" --threads 2 --log-level warn \
    > "$work/instance-$i.log" 2>&1 &
  pids+=($!); spids+=($!)
  for _ in $(seq 100); do grep -q listening "$work/instance-$i.log" && break; sleep 0.05; done
  ports+=("$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$work/instance-$i.log")")
done
for b in 10 50; do
  for m in 1 3; do
    list=$(IFS=,; echo "${ports[*]:0:$m}")
    # Three runs, each printed; the median is the figure (the machine is shared and noisy).
    rates=()
    for run in 1 2 3; do
      psql "$PGURL" -qc 'delete from events; delete from devices; delete from event_counts' >/dev/null
      line=$($B/bench/report_bench --ports "$list" --devices 1000 --events 100 --batch "$b" \
        --connections 64 --admin-token-file "$work/token" \
        --cpu "instances=$(IFS=,; echo "${spids[*]:0:$m}")" --cpu "postgresql=$(pgrep -d, -u postgres)")
      echo "  run $run: $line"
      rates+=("$(sed -n 's/.* = \([0-9]*\) events\/s stored.*/\1/p' <<< "$line")")
    done
    median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
    echo "reports, $m instance(s), $b events a request (goal: 20000/s): median of 3 runs $median events/s"
  done
done
for m in 1 3; do
  python3 bench/watch_load.py "$(IFS=,; echo "${ports[*]:0:$m}")" $((3000 * m)) \
    "$(IFS=,; echo "${spids[*]:0:$m}")" "$work/instance-1" -- \
    $R rollout comp/1.0/a $((40 + m))
done
