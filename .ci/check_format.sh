#!/usr/bin/env bash
# Fails when a C++ file of the repository differs from what clang-format (the root's
# .clang-format) makes of it. Fix with: git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r -d '' f; do
  clang-format --style=file "$f" | cmp -s - "$f" || bad+=("$f")
done < <(git ls-files -z '*.cc' '*.h')
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: ${#bad[@]} file(s) differ from clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format: $(git ls-files '*.cc' '*.h' | wc -l) files match clang-format"
