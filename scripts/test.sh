#!/usr/bin/env bash
# Installs what is needed, then builds and runs the whole test suite twice: an optimized
# build (then the Debian packages from its objects, and their install test in a Debian 12
# root) and an ASan+UBSan build; then builds the fuzz targets with clang and runs each
# briefly over its seed corpus. Any failure, warning (-Werror), sanitizer report or skipped
# test fails. Prints each phase's wall time, and closes with "tests: N passed, M failed"
# counting the tests that ran in both suites.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds="${QP_FUZZ_SECONDS:-5}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

phases=()
phase_start=0
begin() { echo "== $1 =="; phase_name=$1; phase_start=$(date +%s); }
end() {
  local s=$(( $(date +%s) - phase_start ))
  phases+=("$(printf '%-34s %5d s' "$phase_name" "$s")")
  echo "phase: $phase_name took $s s"
}

passed=0
failed=0
# run_ctest NAME BUILD_DIR TIMEOUT [CTEST ARGS]: one ctest run; a failure or a test that did
# not run (skipped, not built) ends the script.
run_ctest() {
  local name=$1 dir=$2 timeout=$3 log="$logs/$1.log" rc=0
  shift 3
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout "$timeout" "$@" >"$log" 2>&1 || rc=$?
  local total fail
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log")
  fail=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$log")
  if [ "$rc" -ne 0 ] || [ -z "$total" ] || grep -q 'The following tests did not run' "$log"; then
    tail -n 80 "$log"
    echo "tests: $(( passed + ${total:-0} - ${fail:-0} )) passed, $(( failed + ${fail:-1} )) failed"
    exit 1
  fi
  [ "$total" -gt 0 ] || { echo "$name: ctest found no tests" >&2; exit 1; }
  tail -n 3 "$log"
  passed=$(( passed + total - fail ))
  failed=$(( failed + fail ))
}

begin "packages and test data"
scripts/setup.sh --packages-only
end

begin "checks (format, seams, layers)"
bash .ci/check_format.sh
bash .ci/check_seams.sh
bash .ci/check_layers.sh
end

begin "optimized build (g++)"
scripts/setup.sh --build build/release
end
begin "optimized tests"
run_ctest release build/release 600
end

# The Debian packages, built from the optimized build's objects (same flags, ccache), then
# installed by apt in a throwaway Debian 12 root where a device gets a fix from the server.
begin "Debian packages (build, lintian)"
scripts/package.sh
end
begin "install test in a Debian 12 root"
scripts/deb_install_test.sh dist
end

begin "ASan+UBSan build (g++)"
scripts/setup.sh --build build/asan --sanitize
end
begin "ASan+UBSan tests"
# strict_memcmp=0: the matcher memcmp()s long suffixes that differ early; checking whole
# ranges makes its binary search quadratic under ASan.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:strict_memcmp=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run_ctest asan build/asan 900
end

# ThreadSanitizer: the parts with threads (the agent's loop and control socket, the
# server's I/O threads, watch hub and signer, on SQLite and PostgreSQL). The agent's
# end-to-end tests are not among them: they build patches, and the patch engine under TSan
# takes longer than CI has (the agent's logic runs in agent_test). The fleet simulator's
# workers meet at a spinning barrier of its own: fleetsim_test runs under TSan too.
tsan_tests=(agent_test server_test fleetsim_test)
begin "TSan build (agent, server and fleet simulator tests)"
scripts/setup.sh --build build/tsan --tsan $(printf -- '--target %s ' "${tsan_tests[@]}")
end
begin "TSan tests"
labels="^($(IFS='|'; echo "${tsan_tests[*]}"))\$"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  run_ctest tsan build/tsan 900 -L "$labels"
end

begin "fuzz build (clang, libFuzzer)"
scripts/setup.sh --build build/fuzz --fuzz --target fuzzers
end
begin "fuzz run (${fuzz_seconds} s per target)"
found=0
for target in build/fuzz/src/*/*_fuzzer build/fuzz/tools/*/*_fuzzer; do
  [ -x "$target" ] || continue
  found=$((found + 1))
  name=$(basename "$target")
  rel=${target#build/fuzz/}
  seeds="$(dirname "$rel")/fuzz_corpus/${name%_fuzzer}"
  work=$(mktemp -d)
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
  echo "fuzz: $name for ${fuzz_seconds}s"
  "$target" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=0 \
    "$work" 2>"$work.log" || { tail -n 40 "$work.log"; exit 1; }
  rm -rf "$work" "$work.log"
done
[ "$found" -gt 0 ] || { echo "fuzz: no fuzz target was built" >&2; exit 1; }
echo "fuzz: $found target(s) ran clean"
end

echo "== phase times =="
printf '%s\n' "${phases[@]}"
echo "tests: $passed passed, $failed failed"
