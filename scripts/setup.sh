#!/usr/bin/env bash
# Installs every Debian package quietpatch needs (idempotent: a no-op when all are present),
# verifies the real-data corpus (scripts/testdata.sh) and configures + builds one build tree.
#
#   scripts/setup.sh                 packages, then build/release
#   scripts/setup.sh --packages-only packages only
#   scripts/setup.sh --build DIR [--sanitize | --tsan] [--fuzz] [--target T ...]
#
# Works on a fresh Debian 12 machine as root; as a non-root user it uses sudo when the
# packages are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang clang-14 libclang-rt-14-dev
  libfuzzer-14-dev
  # libraries
  libssl-dev libzstd-dev liblzma-dev zlib1g-dev gzip libdivsufsort-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libtomlplusplus-dev
  libboost-dev libsqlite3-dev libpq-dev libsystemd-dev
  # services and tools the tests and benchmarks drive
  postgresql nginx-light haproxy wrk chromium util-linux
  # tools the tests and benchmarks drive
  bsdiff xdelta3 zstd time dpkg python3 python3-cryptography faketime curl man-db binutils
  # Debian packages: building (scripts/package.sh), checking, and the install test's root
  debhelper dpkg-dev fakeroot lintian mmdebstrap systemd systemd-container
)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "setup: installing ${missing[*]}" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_dir=build/release
sanitize=OFF
fuzz=OFF
tsan=OFF
packages_only=0
target=()
while [ $# -gt 0 ]; do
  case "$1" in
    --packages-only) packages_only=1 ;;
    --build) build_dir="$2"; shift ;;
    --sanitize) sanitize=ON ;;
    --fuzz) fuzz=ON ;;
    --tsan) tsan=ON ;;
    --target) [ ${#target[@]} -eq 0 ] && target=(--target); target+=("$2"); shift ;;
    *) echo "setup: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

install_packages
# Node.js for the dashboard's pinned front-end packages (Chart.js) and its browser test
# (playwright-core driving Debian's Chromium). Debian's nodejs/npm only when none is there.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES=(nodejs npm)
  install_packages
fi
if [ ! -f src/server/dashboard/node_modules/.package-lock.json ] ||
   [ src/server/dashboard/package-lock.json -nt src/server/dashboard/node_modules/.package-lock.json ]; then
  (cd src/server/dashboard && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
scripts/testdata.sh >/dev/null
[ "$packages_only" -eq 1 ] && exit 0

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/quietpatch-ccache}"
# The build directory is not part of ccache's key, so builds of one tree in two places (the
# optimized build here, the Debian package's in obj-*/) share their objects.
export CCACHE_NOHASHDIR=1
compiler=()
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "$fuzz" = ON ]; then
  compiler=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++)
fi
# Sanitizer builds stay optimized (-O2 -g): the matcher at -O0 under ASan is ~100x slower.
# The optimized build uses Debian's hardened flags (debian/rules: dpkg-buildflags with
# hardening=+all, -DNDEBUG), in the order debhelper gives them to CMake: the tests run the
# code the packages ship, and the package build finds every object in ccache.
if [ "$sanitize$tsan$fuzz" = OFFOFFOFF ]; then
  . packaging/build-flags.sh
  export LC_ALL=C.UTF-8  # as dpkg-buildpackage runs the compiler (ccache hashes the locale)
  flags=(-DCMAKE_BUILD_TYPE=None "-DCMAKE_C_FLAGS=$QP_CFLAGS" "-DCMAKE_CXX_FLAGS=$QP_CXXFLAGS"
         "-DCMAKE_EXE_LINKER_FLAGS=$QP_LDFLAGS")
fi

cmake -S . -B "$build_dir" -G Ninja "${flags[@]}" \
  -DQP_SANITIZE="$sanitize" -DQP_TSAN="$tsan" -DQP_FUZZ="$fuzz" "${compiler[@]}" >/dev/null
cmake --build "$build_dir" -j "$(nproc)" "${target[@]}"
