#!/usr/bin/env bash
# Installs what is needed, then builds and runs the whole test suite twice: an optimized
# build and an ASan+UBSan build; then builds the fuzz targets with clang and runs each
# briefly over its seed corpus. Any failure, warning (-Werror) or sanitizer report fails.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds="${QP_FUZZ_SECONDS:-5}"

echo "== optimized build (g++) =="
scripts/setup.sh --build build/release
logs=$(mktemp -d)
ctest --test-dir build/release --output-on-failure -j "$jobs" --timeout 600 >"$logs/release.log" 2>&1 \
  || { tail -n 80 "$logs/release.log"; exit 1; }
tail -n 4 "$logs/release.log"

echo "== ASan+UBSan build (g++) =="
scripts/setup.sh --build build/asan --sanitize
# strict_memcmp=0: the matcher memcmp()s long suffixes that differ early; checking whole
# ranges makes its binary search quadratic under ASan.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:strict_memcmp=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --test-dir build/asan --output-on-failure -j "$jobs" --timeout 900 >"$logs/asan.log" 2>&1 \
  || { tail -n 80 "$logs/asan.log"; exit 1; }
tail -n 4 "$logs/asan.log"

echo "== fuzz build (clang, libFuzzer) =="
scripts/setup.sh --build build/fuzz --fuzz --target fuzzers
found=0
for target in build/fuzz/src/*/*_fuzzer; do
  [ -x "$target" ] || continue
  found=$((found + 1))
  name=$(basename "$target")
  seeds="src/$(basename "$(dirname "$target")")/fuzz_corpus/${name%_fuzzer}"
  work=$(mktemp -d)
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
  echo "fuzz: $name for ${fuzz_seconds}s"
  "$target" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=0 \
    "$work" 2>"$work.log" || { tail -n 40 "$work.log"; exit 1; }
  rm -rf "$work" "$work.log"
done
echo "fuzz: $found target(s) ran clean"

# One closing line over both suites: "tests: N passed, M failed".
total=0
for log in "$logs"/*.log; do
  n=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log")
  total=$((total + n))
done
rm -rf "$logs"
echo "tests: $total passed, 0 failed"
