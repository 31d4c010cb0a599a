#!/usr/bin/env bash
# Fleet simulator benchmark (quietpatch-fleetsim, tools/fleetsim):
#   1. validation: the simulator with the demo's parameters against a real
#      `scripts/demo.sh --act 1` run in this script, with watch and polling only: time from
#      publication to the last device protected, within +-25%;
#   2. the standard scenarios, 1 M, 10 M and 100 M devices: quietpatch (watch + edge;
#      polling only) and the anchors on the same population, each with its time to
#      50/90/95/99% protected, egress, watchers, reports, requests and instances needed;
#      the goal figure (95% of the devices online in the first hour protected within it);
#      and a PNG plot of the protected share over time per scenario.
# Writes bench/fleetsim_results.txt and bench/fleetsim_*.png.
#
#   bench/fleetsim.sh [--quick]     (--quick: the validation and 1 M only)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = --quick ] && quick=1
scripts/setup.sh >/dev/null
command -v gnuplot >/dev/null || apt-get install -y -qq gnuplot-nox >/dev/null
SIM=build/release/tools/fleetsim/quietpatch-fleetsim
[ -x "$SIM" ] || { echo "fleetsim: $SIM is missing (scripts/setup.sh builds it)" >&2; exit 1; }
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'rm -rf "$work"' EXIT
out=bench/fleetsim_results.txt
{
  echo "# $(date -u +%Y-%m-%d), $(git rev-parse --short HEAD), $(nproc) cores: bench/fleetsim.sh$([ $quick = 1 ] && echo ' --quick')"
} > "$out"
log() { echo "$@" | tee -a "$out"; }

# --- 1. validation against the real demo ----------------------------------------------
validate() {  # $1: watch | poll
  local mode=$1 dir="$work/demo-$1"
  QP_BIN_DIR=build/release/src/apps bash scripts/demo.sh --act 1 --work "$dir" \
    $([ "$mode" = poll ] && echo --poll-only) > "$work/demo-$mode.log" 2>&1 ||
    { cat "$work/demo-$mode.log" >&2; echo "fleetsim: the demo failed" >&2; exit 1; }
  # From the demo's own files: publication = timestamp.json written; each agent's start
  # (its first check) and its commit, from its log.
  python3 - "$dir" > "$work/real-$mode" <<'PY'
import datetime, glob, os, statistics, sys
d = sys.argv[1]
pub = os.stat(os.path.join(d, "repo/metadata/timestamp.json")).st_mtime
def ts(line):
    return datetime.datetime.strptime(line.split()[0], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
starts, commits = [], []
for log in glob.glob(os.path.join(d, "devices/*/agent.log")):
    lines = open(log).read().splitlines()
    s = [ts(l) for l in lines if "agent: started" in l]
    c = [ts(l) for l in lines if "install base -> (a): committed" in l]
    if s: starts.append(s[0])
    if c: commits.append(c[0])
print(f"{pub - statistics.median(starts):.3f} {max(commits) - pub:.3f} {len(commits)} {len(starts)}")
PY
  read -r started last committed devices < "$work/real-$mode"
  local agent="quietpatch (watch + edge)"
  [ "$mode" = poll ] && agent="quietpatch (polling only)"
  cat > "$work/demo-$mode.toml" <<TOML
# The demo's fleet: $devices devices on this host ($(nproc) cores), all online, interval 30 s
# + up to 5 s, one with Automatically Install off, one failing its health check.
name = "demo ($mode)"
horizon_hours = 1
step_ms = 10
threads = 1
agents = ["$agent"]
[population]
devices = $devices
auto_install_share = $(python3 -c "print(1 - 1 / $devices)")
started_before_publication_s = $started
[[population.classes]]
name = "loopback"
kind = "always"
share = 1
[[population.zones]]
offset_hours = 0
share = 1
[[population.bases]]
name = "3.0.17"
share = 1
patch_bytes = "delta.tree_bytes:libssl3 3.0.17 -> 3.0.20"
[agent."$agent"]
interval_s = 30
jitter_s = 5
[network]
median_mbps = 10000
sigma = 0
download_failure_probability = 0
[failure]
class_share = $(python3 -c "print(1 / $devices)")
probability = 1
[host]
cores = $(nproc)
TOML
  "$SIM" --scenario "$work/demo-$mode.toml" --tsv "$work/sim-$mode.tsv" > "$work/sim-$mode.out"
  local sim
  sim=$(tr '\t' '\n' < "$work/sim-$mode.tsv" | sed -n 's/^last_protected_s=//p')
  log "validation, $mode: the real demo ($devices devices, $committed protected, agents started ${started}s before publication): last device protected ${last}s after publication; the simulator: ${sim}s; ratio $(awk -v a="$sim" -v b="$last" 'BEGIN{r=a/b; printf "%.2f (%s)", r, (r >= 0.75 && r <= 1.25) ? "within +-25%" : "OUTSIDE +-25%"}')"
}
validate watch
validate poll

# --- 2. the standard scenarios ----------------------------------------------------------
sizes="1000000"
[ "$quick" = 0 ] && sizes="1000000 10000000 100000000"
for n in $sizes; do
  label=$(awk -v n="$n" 'BEGIN{printf "%dM", n/1e6}')
  log ""
  log "== $label devices (bench/fleetsim_$label.png)"
  /usr/bin/time -f "%e %M" -o "$work/time" "$SIM" --devices "$n" --curves "$work/curves-$label.dat" \
    --tsv "$work/runs-$label.tsv" > "$work/sim-$label.out"
  read -r wall rss_kb < "$work/time"
  [ "$n" = 1000000 ] && sed -n '/^parameters/,/^ran /p' "$work/sim-$label.out" | grep -v '^ran ' | tee -a "$out"
  grep '^ran ' "$work/sim-$label.out" | tee -a "$out"
  sed -n '/^agent /,$p' "$work/sim-$label.out" | tee -a "$out"
  log "whole run: $wall s wall, peak RSS $((rss_kb / 1024)) MB ($(awk -v k="$rss_kb" -v n="$n" 'BEGIN{printf "%.1f", k*1024/n}') bytes/device)"
  # The goal: 95% of the devices online in the first hour protected within it.
  python3 - "$work/runs-$label.tsv" <<'PY' | tee -a "$out"
import sys
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    kv = dict(x.split("=", 1) for x in f[1:])
    share = 100 * float(kv["protected_1h"]) / max(1, float(kv["reachable_1h"]))
    goal = "goal met" if share >= 95 else "goal not met"
    print(f"goal (>= 95% of devices online in the first hour protected within it): {f[0]}: {share:.1f}% ({goal}); "
          f"peak egress {float(kv['peak_egress_gbps']):.1f} Gb/s, {float(kv['total_egress_bytes'])/1e12:.2f} TB, "
          f"{kv['instances']} instances")
PY
  cols=$(head -1 "$work/curves-$label.dat" | awk -F'\t' '{print NF}')
  gnuplot <<GP
set terminal pngcairo size 1000,600 font ",10"
set output "bench/fleetsim_$label.png"
set title "quietpatch-fleetsim: $label devices, share of reachable devices protected after publication"
set logscale x
set xrange [1:$(awk -v h=336 'BEGIN{print h*3600}')]
set xtics ("1 s" 1, "10 s" 10, "1 min" 60, "10 min" 600, "1 h" 3600, "6 h" 21600, "1 d" 86400, "14 d" 1209600)
set yrange [0:1]
set ylabel "protected share"
set key top left
set grid
set datafile separator "\t"
plot for [i=2:$cols] "$work/curves-$label.dat" using 1:i with lines lw 2 title columnhead(i)
GP
done
echo "wrote $out"
