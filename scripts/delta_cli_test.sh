#!/usr/bin/env bash
# quietpatch-delta's command line on a real arm64 library (ctest delta_cli): `diff` makes a
# format 5 file patch with an AArch64 delta (transform 4, controls by column), `apply` rebuilds the new file exactly, and
# `info --old` replays the delta and prints its predictions by kind; `info --old` with a
# missing source says so instead of failing silently.
set -euo pipefail
BUILD=${1:?usage: delta_cli_test.sh BUILD_DIR}
cd "$(dirname "$0")/.."
qp="$BUILD/src/apps/quietpatch-delta"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "delta_cli: $*" >&2; exit 1; }

lib=usr/lib/aarch64-linux-gnu/libssl.so.3
for v in 3.0.17 3.0.20; do
  deb=testdata/debs/libssl3_${v}-1~deb12u2_arm64.deb
  [ -s "$deb" ] || fail "$deb missing (scripts/testdata.sh fetches the corpus)"
  dpkg-deb -x "$deb" "$work/$v"
done
"$qp" diff "$work/3.0.17/$lib" "$work/3.0.20/$lib" "$work/p.qpatch" > /dev/null
"$qp" apply "$work/3.0.17/$lib" "$work/p.qpatch" "$work/out" > /dev/null
cmp -s "$work/out" "$work/3.0.20/$lib" || fail "apply did not rebuild libssl.so.3"

"$qp" info "$work/p.qpatch" --old "$work/3.0.17/$lib" > "$work/info"
grep -q '^format version   5$' "$work/info" || fail "not a format 5 file patch: $(cat "$work/info")"
grep -q 'transform aarch64 learned, frames (tables 0x1f), [0-9]* controls (by column)' "$work/info" ||
  fail "no AArch64 transform 4 with controls by column: $(cat "$work/info")"
# Every kind of reference the library has is replayed, most of them foreseen.
for kind in 'a64 b/bl' 'a64 b.cond/cbz/tbz' 'a64 adrp pair' 'a64 frame offset' 'relocation' \
  '.eh_frame'; do
  line=$(grep -F "      $kind " "$work/info") || fail "no '$kind' predictions: $(cat "$work/info")"
  read -r hit miss <<<"$(awk '{print $(NF-1), $NF}' <<<"$line")"
  [ "$hit" -gt $((10 * miss)) ] || fail "$kind: $hit hits, $miss misses"
done

"$qp" info "$work/p.qpatch" --old "$work/missing" > "$work/info2"
grep -q 'predictions: .*missing' "$work/info2" || fail "a missing source is not reported: $(cat "$work/info2")"
echo "delta_cli: ok"
