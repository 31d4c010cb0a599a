#!/usr/bin/env bash
# Checks cmake/qp_gtest_tests.cmake, the way every test of the project is registered with
# CTest: builds the small project beside this script and expects its failing-setup and
# skipping cases to FAIL (never "Skipped" or "Passed") and the others to pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$here" -B "$work" -G Ninja >/dev/null
cmake --build "$work" >/dev/null
ctest --test-dir "$work" >"$work/ctest.log" 2>&1 || true
expect() {  # expect NAME STATUS
  grep -Eq "Test +#[0-9]+: $1 \.+ *\**$2" "$work/ctest.log" ||
    { cat "$work/ctest.log"; echo "skip_check: $1 is not $2" >&2; exit 1; }
}
expect BrokenFixture.FailsWhenItsSuiteSetupFails Failed
expect Skipping.FailsWhenItSkips Failed
expect Plain.PassesWithItsEnvironment Passed
expect Values/Param.Passes/0 Passed
expect Values/Param.Passes/1 Passed
if grep -q 'did not run\|Skipped' "$work/ctest.log"; then
  cat "$work/ctest.log"; echo "skip_check: a test was counted as skipped" >&2; exit 1
fi
echo "skip_check: 2 failing cases failed, 3 passing cases passed, none skipped"
