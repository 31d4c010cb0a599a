#!/usr/bin/env bash
# Patch engine benchmark: quietpatch-delta against bsdiff, xdelta3 and zstd --patch-from
# (all from Debian, run here side by side) on the real security updates in
# testdata/debs. Prints, per pair: patch bytes, diff and apply wall seconds and peak
# memory, every patch verified byte for byte; and quietpatch's size as a ratio of the best
# public tool (the smallest of the tools run here and HDiffPatch's published figure from
# testdata/README.md, which Debian does not package); the same for the arm64 builds of the
# same updates (AArch64 prediction), with their ratio to bsdiff, the largest apply memory and
# libnode's diff time against bsdiff's (issue 21's figures). Then whole package trees against
# debdelta, Debian's package delta tool (its figures from testdata/README.md).
#
# --large: browser engines instead (issue 23): chromium 150 -> 156 and libwebkit2gtk-4.1
# deb12u1 -> deb12u2, fetched with apt-get download (a version that has left the archive is
# reported and its pair skipped), against HDiffPatch (hdiffz -m-6 -SD -c-lzma2-9-16m) if it
# is installed, else bsdiff (about 25 minutes and 5 GB on chromium), in the same run.
#
#   bench/delta_bench.sh [--quick | --large]     --quick: skip the 47 MB libnode pair
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 large=0
[ "${1:-}" = "--quick" ] && quick=1
[ "${1:-}" = "--large" ] && large=1

scripts/setup.sh >/dev/null
qp=build/release/src/apps/quietpatch-delta
corpus=testdata/debs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run OUT_VAR cmd...: wall seconds and peak MB of one command, "s MB"
measure() {
  local out
  out=$( { /usr/bin/time -f "%e %M" "$@" >/dev/null 2>"$work/err"; } 2>&1 ) || {
    echo "command failed: $*" >&2; cat "$work/err" >&2; exit 1; }
  tail -n 1 "$work/err" | awk '{printf "%.2f %d", $1, $2/1024}'
}
verify() { cmp -s "$1" "$2" || { echo "MISMATCH: $3 did not rebuild $2" >&2; exit 1; }; }

if [ $large -eq 1 ]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/quietpatch-bench
  mkdir -p "$cache"
  if command -v hdiffz >/dev/null && command -v hpatchz >/dev/null; then peer=HDiffPatch; else peer=bsdiff; fi
  # name | package | old version | new version | file | HDiffPatch's bytes and diff seconds
  # as the issue measured them (another machine: for reference beside the run's own peer)
  large_pairs=(
    "chromium 150->156|chromium|150.0.7871.100-1~deb12u1|156.0.8078.114-1~deb12u1|usr/lib/chromium/chromium|58609657|171"
    "libwebkit2gtk-4.1 u1->u2|libwebkit2gtk-4.1-0|2.50.6-1~deb12u1|2.50.6-1~deb12u2|usr/lib/x86_64-linux-gnu/libwebkit2gtk-4.1.so.0.19.9|120|0.7"
  )
  printf "%-26s %-11s %11s %8s %8s %8s %8s\n" pair tool bytes diff_s diff_MB apply_s apply_MB
  for p in "${large_pairs[@]}"; do
    IFS='|' read -r name pkg oldv newv file ref_bytes ref_s <<<"$p"
    missing=0
    for v in "$oldv" "$newv"; do
      deb=$(ls "$cache/${pkg}_${v//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
      if [ -z "$deb" ]; then
        (cd "$cache" && apt-get download "$pkg=$v" >/dev/null 2>&1) || true
        deb=$(ls "$cache/${pkg}_${v//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
      fi
      if [ -z "$deb" ]; then echo "missing: $pkg $v is not in the archive any more; $name skipped"; missing=1; continue; fi
      rm -rf "$work/$v"; dpkg-deb -x "$deb" "$work/$v"
    done
    [ $missing -eq 1 ] && continue
    old="$work/$oldv/$file"; new="$work/$newv/$file"; t="$work/t"; rm -rf "$t"; mkdir "$t"
    d=$(measure "$qp" diff "$old" "$new" "$t/qp.qpatch")
    a=$(measure "$qp" apply "$old" "$t/qp.qpatch" "$t/qp.out"); verify "$t/qp.out" "$new" quietpatch
    qb=$(stat -c %s "$t/qp.qpatch"); qd=${d%% *}
    printf "%-26s %-11s %11d %8s %8s %8s %8s\n" "$name" quietpatch "$qb" $d $a
    rm -f "$t/qp.out"
    if [ $peer = HDiffPatch ]; then
      pd=$(measure hdiffz -m-6 -SD -c-lzma2-9-16m -f "$old" "$new" "$t/peer.patch")
      pa=$(measure hpatchz -f "$old" "$t/peer.patch" "$t/peer.out")
    else
      pd=$(measure bsdiff "$old" "$new" "$t/peer.patch")
      pa=$(measure bspatch "$old" "$t/peer.out" "$t/peer.patch")
    fi
    verify "$t/peer.out" "$new" $peer
    pb=$(stat -c %s "$t/peer.patch")
    printf "%-26s %-11s %11d %8s %8s %8s %8s\n" "" $peer "$pb" $pd $pa
    printf "%-26s %-11s %11d %8s   (the issue's figures, another machine)\n" "" "HDiffPatch*" "$ref_bytes" "$ref_s"
    printf "%-26s quietpatch/%s: bytes %.3f, diff time %.2f; quietpatch/HDiffPatch* bytes %.3f\n" "" $peer \
      "$(awk -v a=$qb -v b=$pb 'BEGIN{print a/b}')" "$(awk -v a=$qd -v b=${pd%% *} 'BEGIN{print a/b}')" \
      "$(awk -v a=$qb -v b=$ref_bytes 'BEGIN{print a/b}')"
    rm -rf "$t" "$work/$oldv" "$work/$newv"
  done
  echo "goals: chromium patch <= 0.85x HDiffPatch's, diff <= 2x its time and <= 4096 MB, apply <= 64 MB;"
  echo "       webkit diff <= 2 s, patch <= HDiffPatch's + 100 bytes"
  exit 0
fi

for deb in "$corpus"/*.deb; do
  dpkg-deb -x "$deb" "$work/$(basename "$deb" .deb)"
done
# file_pairs ARCH TRIPLET [HDIFF ...]: "name|old file|new file|HDiffPatch best" for each file
# pair of the corpus built for ARCH; the HDiffPatch figures (bytes, testdata/README.md; amd64
# only) in the pairs' order, "-" where there is none.
file_pairs() {
  local arch=$1 s=usr/lib/$2 l=lib/$2 i=0 spec name old new file
  shift 2
  for spec in \
    "libssl.so.3 17->20|libssl3_3.0.17-1~deb12u2|libssl3_3.0.20-1~deb12u2|$s/libssl.so.3" \
    "libcrypto.so.3 17->20|libssl3_3.0.17-1~deb12u2|libssl3_3.0.20-1~deb12u2|$s/libcrypto.so.3" \
    "libssl.so.3 20->22|libssl3_3.0.20-1~deb12u2|libssl3_3.0.22-1~deb12u2|$s/libssl.so.3" \
    "libcrypto.so.3 20->22|libssl3_3.0.20-1~deb12u2|libssl3_3.0.22-1~deb12u2|$s/libcrypto.so.3" \
    "libssl.so.3 17->22|libssl3_3.0.17-1~deb12u2|libssl3_3.0.22-1~deb12u2|$s/libssl.so.3" \
    "libcrypto.so.3 17->22|libssl3_3.0.17-1~deb12u2|libssl3_3.0.22-1~deb12u2|$s/libcrypto.so.3" \
    "libc.so.6 u7->u14|libc6_2.36-9+deb12u7|libc6_2.36-9+deb12u14|$l/libc.so.6" \
    "libnode.so.108 u2->u3|libnode108_18.20.4+dfsg-1~deb12u2|libnode108_18.20.4+dfsg-1~deb12u3|$s/libnode.so.108"; do
    IFS='|' read -r name old new file <<<"$spec"
    i=$((i + 1))
    echo "$name|${old}_$arch/$file|${new}_$arch/$file|${!i:--}"
  done
}
mapfile -t pairs < <(file_pairs amd64 x86_64-linux-gnu 21033 228359 29612 193171 34125 255666 51073 694916)

# run_pairs PAIR...: one table of file pairs (bytes, times, memory per tool) and its totals;
# sets sum_qp, sum_best, sum_bsdiff, worst_ratio and worst_bsdiff. A pair without an
# HDiffPatch figure ("-") is compared with the tools run here only.
run_pairs() {
  sum_qp=0; sum_best=0; sum_bsdiff=0; worst_ratio=0; worst_bsdiff=0; max_apply_mb=0
  node_diff_ratio=-
  printf "%-24s %-8s %10s %8s %8s %8s %8s\n" pair tool bytes diff_s diff_MB apply_s apply_MB
  local p name old new hdiff t d a best best_tool tool ratio
  for p in "$@"; do
    IFS='|' read -r name old new hdiff <<<"$p"
    if [ $quick -eq 1 ] && [[ $name == libnode* ]]; then continue; fi
    old="$work/$old"; new="$work/$new"; t="$work/t"; rm -rf "$t"; mkdir "$t"
    declare -A bytes=()
    # quietpatch
    d=$(measure "$qp" diff "$old" "$new" "$t/qp.qpatch")
    a=$(measure "$qp" apply "$old" "$t/qp.qpatch" "$t/qp.out"); verify "$t/qp.out" "$new" quietpatch
    bytes[quietpatch]=$(stat -c %s "$t/qp.qpatch")
    printf "%-24s %-8s %10d %8s %8s %8s %8s\n" "$name" quietpatch "${bytes[quietpatch]}" $d $a
    local qp_diff_s=${d%% *} apply_mb=${a##* }
    [ "$apply_mb" -gt "$max_apply_mb" ] && max_apply_mb=$apply_mb
    # bsdiff 4.3
    d=$(measure bsdiff "$old" "$new" "$t/bs.patch")
    a=$(measure bspatch "$old" "$t/bs.out" "$t/bs.patch"); verify "$t/bs.out" "$new" bsdiff
    bytes[bsdiff]=$(stat -c %s "$t/bs.patch")
    printf "%-24s %-8s %10d %8s %8s %8s %8s\n" "" bsdiff "${bytes[bsdiff]}" $d $a
    if [[ $name == libnode* ]]; then
      node_diff_ratio=$(awk -v a="$qp_diff_s" -v b="${d%% *}" 'BEGIN{printf "%.2f", a/b}')
    fi
    # xdelta3 -9 -S lzma
    d=$(measure xdelta3 -e -9 -S lzma -f -s "$old" "$new" "$t/xd.patch")
    a=$(measure xdelta3 -d -f -s "$old" "$t/xd.patch" "$t/xd.out"); verify "$t/xd.out" "$new" xdelta3
    bytes[xdelta3]=$(stat -c %s "$t/xd.patch")
    printf "%-24s %-8s %10d %8s %8s %8s %8s\n" "" xdelta3 "${bytes[xdelta3]}" $d $a
    # zstd -19 --long=31 --patch-from
    d=$(measure zstd -q -f -19 --long=31 --patch-from="$old" "$new" -o "$t/zs.patch")
    a=$(measure zstd -q -f -d --long=31 --memory=2048MB --patch-from="$old" "$t/zs.patch" -o "$t/zs.out")
    verify "$t/zs.out" "$new" zstd
    bytes[zstd]=$(stat -c %s "$t/zs.patch")
    printf "%-24s %-8s %10d %8s %8s %8s %8s\n" "" zstd "${bytes[zstd]}" $d $a
    if [ "$hdiff" = - ]; then
      best=${bytes[bsdiff]}; best_tool=bsdiff
    else
      best=$hdiff; best_tool="HDiffPatch(ref)"
    fi
    for tool in bsdiff xdelta3 zstd; do
      if [ "${bytes[$tool]}" -lt "$best" ]; then best=${bytes[$tool]}; best_tool=$tool; fi
    done
    ratio=$(awk -v a="${bytes[quietpatch]}" -v b="$best" 'BEGIN{printf "%.3f", a/b}')
    printf "%-24s %-8s %10s   best public: %s; quietpatch/best = %s, quietpatch/bsdiff = %s\n" "" \
      HDiffPatch "$hdiff" "$best_tool" "$ratio" \
      "$(awk -v a="${bytes[quietpatch]}" -v b="${bytes[bsdiff]}" 'BEGIN{printf "%.3f", a/b}')"
    sum_qp=$((sum_qp + bytes[quietpatch])); sum_best=$((sum_best + best))
    sum_bsdiff=$((sum_bsdiff + bytes[bsdiff]))
    worst_ratio=$(awk -v a="$ratio" -v b="$worst_ratio" 'BEGIN{print (a>b)?a:b}')
    worst_bsdiff=$(awk -v a="${bytes[quietpatch]}" -v b="${bytes[bsdiff]}" -v w="$worst_bsdiff" \
      'BEGIN{r=a/b; print (r>w)?sprintf("%.3f", r):w}')
    unset bytes
  done
}

echo "== amd64 (x86-64 prediction)"
run_pairs "${pairs[@]}"
echo
printf "total: quietpatch %d bytes, best public %d bytes, ratio %.3f (target <= 0.85); worst pair ratio %s (target < 1)\n" \
  "$sum_qp" "$sum_best" "$(awk -v a=$sum_qp -v b=$sum_best 'BEGIN{print a/b}')" "$worst_ratio"
amd64_qp=$sum_qp

# The same Debian updates built for arm64, patched with AArch64 prediction (transform 4:
# branches, ADRP pairs, literal loads, address tables and stack-frame offsets).
mapfile -t arm64_pairs < <(file_pairs arm64 aarch64-linux-gnu)
echo
echo "== arm64 (AArch64 prediction)"
run_pairs "${arm64_pairs[@]}"
echo
printf "total arm64: quietpatch %d bytes, bsdiff %d bytes, ratio %.3f (goal <= 0.5 on every pair; worst %s); arm64/amd64 quietpatch sums %.3f (goal <= 1.3)\n" \
  "$sum_qp" "$sum_bsdiff" "$(awk -v a=$sum_qp -v b=$sum_bsdiff 'BEGIN{print a/b}')" "$worst_bsdiff" \
  "$(awk -v a=$sum_qp -v b=$amd64_qp 'BEGIN{print a/b}')"
printf "arm64: largest apply memory %d MB (goal <= 32); libnode diff time / bsdiff's %s (goal <= 1)\n" \
  "$max_apply_mb" "$node_diff_ratio"

# Whole package trees (every file of the package, as the demo ships them) against Debian's
# own package delta tool: debdelta's figures are from testdata/README.md (debdelta -n 9
# --delta-algo bsdiff; its runs take minutes, so they are not repeated here).
echo
printf "%-32s %12s %8s %8s %14s %12s %8s\n" "package tree" quietpatch diff_s apply_s "debdelta(ref)" "full .deb" ratio
# name | old deb | new deb | debdelta bytes
trees=(
  "libssl3 3.0.17 -> 3.0.20|libssl3_3.0.17-1~deb12u2_amd64|libssl3_3.0.20-1~deb12u2_amd64|297946"
  "libssl3 3.0.20 -> 3.0.22|libssl3_3.0.20-1~deb12u2_amd64|libssl3_3.0.22-1~deb12u2_amd64|267998"
  "libssl3 3.0.17 -> 3.0.22|libssl3_3.0.17-1~deb12u2_amd64|libssl3_3.0.22-1~deb12u2_amd64|359444"
  "libc6 deb12u7 -> deb12u14|libc6_2.36-9+deb12u7_amd64|libc6_2.36-9+deb12u14_amd64|168888"
  "libnode108 deb12u2 -> deb12u3|libnode108_18.20.4+dfsg-1~deb12u2_amd64|libnode108_18.20.4+dfsg-1~deb12u3_amd64|669912"
)
for p in "${trees[@]}"; do
  IFS='|' read -r name old new debdelta <<<"$p"
  if [ $quick -eq 1 ] && [[ $name == libnode* ]]; then continue; fi
  t="$work/t"; rm -rf "$t"; mkdir "$t"
  d=$(measure "$qp" diff "$work/$old" "$work/$new" "$t/tree.qpatch")
  a=$(measure "$qp" apply "$work/$old" "$t/tree.qpatch" "$t/out")
  diff -r --no-dereference "$t/out" "$work/$new" >/dev/null || { echo "MISMATCH: tree $name" >&2; exit 1; }
  b=$(stat -c %s "$t/tree.qpatch"); full=$(stat -c %s "$corpus/$new.deb")
  printf "%-32s %12d %8s %8s %14d %12d %8s\n" "$name" "$b" "${d%% *}" "${a%% *}" "$debdelta" "$full" \
    "$(awk -v a="$b" -v b="$debdelta" 'BEGIN{printf "%.3f", a/b}')"
done
