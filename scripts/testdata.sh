#!/usr/bin/env bash
# Checks the project's real-data corpus, testdata/debs/: every package listed in
# testdata/debs/SHA256SUMS must be there with that SHA-256. The repository carries the
# packages (see testdata/README.md for why); a package that is missing (a partial copy of
# the tree) is fetched with `apt-get download` while Debian still serves that version, and
# verified. Anything else is reported by package name and version, with what to do.
#
#   scripts/testdata.sh        exit 0 when every pinned package is present and intact
set -euo pipefail
cd "$(dirname "$0")/../testdata/debs"

failed=0
while read -r sum file; do
  [ -n "$file" ] || continue
  # libssl3_3.0.17-1~deb12u2_amd64.deb -> libssl3 3.0.17-1~deb12u2 amd64
  IFS=_ read -r pkg ver arch <<<"${file%.deb}"
  if [ ! -s "$file" ]; then
    echo "testdata: $pkg $ver ($arch) is missing; trying apt-get download $pkg:$arch=$ver" >&2
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -q "$pkg:$arch=$ver" >/dev/null 2>&1) &&
       got=$(ls "$tmp"/*.deb 2>/dev/null | head -1) && [ -n "$got" ]; then
      mv "$got" "$file"
    fi
    rm -rf "$tmp"
  fi
  if [ ! -s "$file" ]; then
    echo "testdata: $pkg $ver ($arch) cannot be had: it is not in testdata/debs and Debian no longer" \
         "serves it. Restore it from the repository (git checkout -- testdata/debs/$file)." >&2
    failed=1
  elif ! echo "$sum  $file" | sha256sum -c --status; then
    echo "testdata: $pkg $ver ($arch): testdata/debs/$file does not match its pinned SHA-256 $sum" \
         "(altered or truncated). Restore it: git checkout -- testdata/debs/$file" >&2
    failed=1
  fi
done < SHA256SUMS
[ "$failed" -eq 0 ] || exit 1
echo "testdata: $(grep -c . SHA256SUMS) pinned packages present and verified"
