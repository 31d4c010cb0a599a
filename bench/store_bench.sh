#!/usr/bin/env bash
# Store benchmark: installing the libnode108 improvement (47 MB library) and the whole
# libssl3 3.0.17 -> 3.0.20 (the demo's fix) and 3.0.17 -> 3.0.22 package trees from testdata/debs through the store, time and
# extra disk space, against a plain copy of the new files in the same run as the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
qp=build/release/src/apps/quietpatch-delta
bench=build/release/bench/store_bench
corpus=testdata/debs
work=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
trap 'rm -rf "$work"' EXIT

run() {
  local name=$1 old_deb=$2 new_deb=$3
  dpkg-deb -x "$corpus/$old_deb" "$work/$name-old"
  dpkg-deb -x "$corpus/$new_deb" "$work/$name-new"
  "$qp" diff "$work/$name-old" "$work/$name-new" "$work/$name.qpatch" >/dev/null
  echo "== $name ($(stat -c %s "$work/$name.qpatch") byte patch)"
  "$bench" "$work/$name-old" "$work/$name-new" "$work/$name.qpatch" "$work/$name-run"
  rm -rf "$work/$name-run"
}

run libssl3-3.0.17-to-3.0.20 libssl3_3.0.17-1~deb12u2_amd64.deb libssl3_3.0.20-1~deb12u2_amd64.deb
run libssl3-3.0.17-to-3.0.22 libssl3_3.0.17-1~deb12u2_amd64.deb libssl3_3.0.22-1~deb12u2_amd64.deb
node_old=$(ls "$corpus" | grep '^libnode108_.*_amd64\.deb$' | sort | head -1)
node_new=$(ls "$corpus" | grep '^libnode108_.*_amd64\.deb$' | sort | tail -1)
run libnode108 "$node_old" "$node_new"
