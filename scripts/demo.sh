#!/usr/bin/env bash
# The main job, until the fleet demo exists: patch real Debian security updates end to end
# with quietpatch-delta. For each old -> new package in ../shared/corpus it builds a .qpatch
# of the whole package tree, applies it to the old tree, checks the result is byte-identical
# to the new package, and prints the patch size against the full new package.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
qp=build/release/src/apps/quietpatch-delta
corpus=../shared/corpus/debs
[ -d "$corpus" ] || { echo "demo: corpus not found at $corpus" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pairs=(
  "libssl3_3.0.17-1~deb12u2_amd64 libssl3_3.0.20-1~deb12u2_amd64"
  "libssl3_3.0.20-1~deb12u2_amd64 libssl3_3.0.22-1~deb12u2_amd64"
  "libssl3_3.0.17-1~deb12u2_amd64 libssl3_3.0.22-1~deb12u2_amd64"
  "libc6_2.36-9+deb12u7_amd64 libc6_2.36-9+deb12u14_amd64"
  "libnode108_18.20.4+dfsg-1~deb12u2_amd64 libnode108_18.20.4+dfsg-1~deb12u3_amd64"
)
printf "%-58s %12s %12s %8s %s\n" "old -> new package tree" "patch bytes" "full .deb" "ratio" "result"
for p in "${pairs[@]}"; do
  read -r old new <<<"$p"
  for v in "$old" "$new"; do [ -d "$work/$v" ] || dpkg-deb -x "$corpus/$v.deb" "$work/$v"; done
  patch="$work/$old--$new.qpatch"
  "$qp" diff "$work/$old" "$work/$new" "$patch" >/dev/null
  "$qp" apply "$work/$old" "$patch" "$work/out" >/dev/null
  if diff -r --no-dereference "$work/$new" "$work/out" >/dev/null; then result="identical"; else result="DIFFERENT"; fi
  rm -rf "$work/out"
  size=$(stat -c %s "$patch"); deb=$(stat -c %s "$corpus/$new.deb")
  printf "%-58s %12d %12d %8.4f %s\n" "${old%%_amd64} -> ${new#*_}" "$size" "$deb" \
    "$(awk -v a="$size" -v b="$deb" 'BEGIN{print a/b}')" "$result"
  [ "$result" = identical ] || exit 1
done
echo
echo "Inspect a patch: $qp info PATCH. Benchmark against bsdiff/xdelta3/zstd: bench/delta_bench.sh"
