#!/usr/bin/env bash
# Builds the Debian packages (quietpatch, quietpatch-server, quietpatch-publisher) the Debian
# way, dpkg-buildpackage -b -us -uc, then checks them with lintian (an error, or a warning
# debian/source/lintian-overrides does not explain, fails). The .debs land in dist/.
#
#   scripts/package.sh            packages, build, lintian
#   scripts/package.sh --no-lint  without lintian
#
set -euo pipefail
cd "$(dirname "$0")/.."
lint=1
[ "${1:-}" = --no-lint ] && lint=0
scripts/setup.sh --packages-only
# ccache as scripts/setup.sh uses it: the optimized build has these flags too, so a package
# built after it compiles nothing.
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/quietpatch-ccache}" CCACHE_NOHASHDIR=1
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-nocheck} parallel=$(nproc)"
mkdir -p build
log=build/package.log
if ! dpkg-buildpackage -b -us -uc --no-sign > "$log" 2>&1; then
  tail -n 60 "$log"
  echo "package: dpkg-buildpackage failed" >&2
  exit 1
fi
rm -rf dist
mkdir -p dist
version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
mv ../quietpatch*_"${version}"_"${arch}".deb ../quietpatch_"${version}"_"${arch}".buildinfo \
  ../quietpatch_"${version}"_"${arch}".changes dist/
debian/rules clean > /dev/null 2>&1 || true
for deb in quietpatch quietpatch-server quietpatch-publisher; do
  [ -s "dist/${deb}_${version}_${arch}.deb" ] || { echo "package: ${deb} was not built" >&2; exit 1; }
done
ls -l dist/*.deb
if [ "$lint" -eq 1 ]; then
  # --fail-on error,warning: a warning nobody explained in an override fails the build.
  lintian --fail-on error,warning --display-info --suppress-tags-from-file /dev/null \
    "dist/quietpatch_${version}_${arch}.changes"
  echo "package: lintian clean ($(lintian --version))"
fi
