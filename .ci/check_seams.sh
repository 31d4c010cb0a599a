#!/usr/bin/env bash
# The seams of DESIGN.md, enforced: outside src/core/ (which implements them), code in src/
# and tools/ reads time only through qp::Clock and files only through qp::Env. Fails on a direct clock read
# (std::chrono::*_clock::now, time(), gettimeofday, clock_gettime) or raw file I/O
# (fstream, fopen, ::open, std::filesystem) in a production source file. Tests, fuzz targets
# and test helpers are exempt; any other exception is listed with its reason in
# .ci/seams_allow.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
allow=.ci/seams_allow.txt
clock_re='(steady_clock|system_clock|high_resolution_clock)::now\(|[^_[:alnum:]]time\((nullptr|NULL|0)\)|gettimeofday\(|clock_gettime\('
file_re='std::(i|o)?fstream|[^_[:alnum:]]fopen\(|[^_[:alnum:]:]::open\(|std::filesystem::'
bad=0
check() {  # check KIND REGEX
  local kind=$1 re=$2 f
  while IFS= read -r f; do
    if grep -q "^$f|$kind|." "$allow"; then continue; fi
    grep -nE "$re" "$f" | sed "s|^|seams: $kind read outside core/: $f:|" >&2
    bad=1
  done < <(git ls-files 'src/*.cc' 'src/*.h' 'tools/*.cc' 'tools/*.h' | grep -v '^src/core/' |
           grep -vE '(_test|_fuzzer|_test_util)\.(cc|h)$|/test_[a-z_]+\.(cc|h)$' |
           xargs grep -lE "$re" || true)
}
check clock "$clock_re"
check file "$file_re"
# An allow-list line whose file no longer needs it is stale.
while IFS='|' read -r path kind why; do
  case "$path" in ''|'#'*) continue ;; esac
  re=$clock_re; [ "$kind" = file ] && re=$file_re
  if [ -z "$why" ] || ! grep -qE "$re" "$path" 2>/dev/null; then
    echo "seams: stale or unexplained allow-list line: $path|$kind" >&2
    bad=1
  fi
done < "$allow"
[ "$bad" -eq 0 ] || { echo "seams: use qp::Clock / qp::Env, or add a reasoned line to $allow" >&2; exit 1; }
echo "seams: clock and file access go through core/ (with $(grep -c '^src/' "$allow") listed exceptions)"
