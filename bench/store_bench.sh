#!/usr/bin/env bash
# Store benchmark: installing the libnode108 improvement (47 MB library) and the whole
# libssl3 3.0.17 -> 3.0.20 (the demo's fix) and 3.0.17 -> 3.0.22 package trees from testdata/debs through the store, time and
# extra disk space, against a plain copy of the new files in the same run as the baseline.
#
#   bench/store_bench.sh [--baseline BUILD_DIR]
#     --baseline: another build of the project (an older commit's, configured the same way):
#     its quietpatch-delta makes its own patch and its store_bench installs it, alternating
#     with this build's, 5 times each; the median install times are printed with their
#     ratio (this build / the baseline). Issue 20's "0.5x today's" is measured this way.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=
if [ "${1:-}" = --baseline ]; then baseline=$(realpath "$2"); shift 2; fi
scripts/setup.sh >/dev/null
qp=build/release/src/apps/quietpatch-delta
bench=build/release/bench/store_bench
corpus=testdata/debs
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'rm -rf "$work"' EXIT

# The wall seconds of "install (...): S s" in a store_bench output.
install_seconds() { sed -n 's/^install ([^)]*): \([0-9.]*\) s.*/\1/p' <<< "$1"; }
median() { printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"; }

run() {
  local name=$1 old_deb=$2 new_deb=$3
  dpkg-deb -x "$corpus/$old_deb" "$work/$name-old"
  dpkg-deb -x "$corpus/$new_deb" "$work/$name-new"
  "$qp" diff "$work/$name-old" "$work/$name-new" "$work/$name.qpatch" >/dev/null
  echo "== $name ($(stat -c %s "$work/$name.qpatch") byte patch)"
  "$bench" "$work/$name-old" "$work/$name-new" "$work/$name.qpatch" "$work/$name-run"
  rm -rf "$work/$name-run"
  [ -n "$baseline" ] || return 0
  "$baseline/src/apps/quietpatch-delta" diff "$work/$name-old" "$work/$name-new" \
    "$work/$name.base.qpatch" >/dev/null
  local ours=() theirs=()
  for _ in 1 2 3 4 5; do
    theirs+=("$(install_seconds "$("$baseline/bench/store_bench" "$work/$name-old" \
      "$work/$name-new" "$work/$name.base.qpatch" "$work/$name-run")")")
    rm -rf "$work/$name-run"
    ours+=("$(install_seconds "$("$bench" "$work/$name-old" "$work/$name-new" \
      "$work/$name.qpatch" "$work/$name-run")")")
    rm -rf "$work/$name-run"
  done
  local a b
  a=$(median "${ours[@]}"); b=$(median "${theirs[@]}")
  echo "install wall time, median of 5: this build $a s (${ours[*]}), baseline $b s" \
    "(${theirs[*]}; its patch $(stat -c %s "$work/$name.base.qpatch") bytes), ratio" \
    "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
  rm -rf "$work/$name-old" "$work/$name-new"
}

run libssl3-3.0.17-to-3.0.20 libssl3_3.0.17-1~deb12u2_amd64.deb libssl3_3.0.20-1~deb12u2_amd64.deb
run libssl3-3.0.17-to-3.0.22 libssl3_3.0.17-1~deb12u2_amd64.deb libssl3_3.0.22-1~deb12u2_amd64.deb
node_old=$(ls "$corpus" | grep '^libnode108_.*_amd64\.deb$' | sort | head -1)
node_new=$(ls "$corpus" | grep '^libnode108_.*_amd64\.deb$' | sort | tail -1)
run libnode108 "$node_old" "$node_new"
