#!/usr/bin/env bash
# Install test (ctest install_tree): `cmake --install` of the build into an empty prefix
# gives every command, the units, the example configurations, the dashboard and the
# documentation; the installed commands run from there alone (no path into the build
# tree), and the installed server serves the installed dashboard.
set -euo pipefail
BUILD=${1:?usage: install_test.sh BUILD_DIR}
prefix=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$prefix"; }
trap cleanup EXIT
fail() { echo "install_tree: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$prefix" > "$prefix.log" 2>&1 || { cat "$prefix.log"; fail "cmake --install failed"; }
rm -f "$prefix.log"
for cmd in quietpatch-delta quietpatch-tuf-client quietpatch-repo quietpatch-server quietpatchd quietpatch; do
  [ -x "$prefix/bin/$cmd" ] || fail "bin/$cmd missing"
  "$prefix/bin/$cmd" --help > /dev/null || fail "$cmd --help failed"
  if readelf -d "$prefix/bin/$cmd" | grep -E 'R(UN)?PATH' | grep -q "$BUILD"; then
    fail "$cmd still looks for libraries in the build tree"
  fi
done
for f in lib/systemd/system/quietpatchd.service lib/systemd/system/quietpatch-server.service \
         lib/systemd/system-generators/quietpatch-generator lib/sysusers.d/quietpatch-server.conf \
         etc/quietpatch/agent.toml etc/apt/apt.conf.d/50quietpatch etc/dpkg/dpkg.cfg.d/quietpatch \
         etc/quietpatch-server/server.toml \
         share/quietpatch/dashboard/index.html share/quietpatch/dashboard/app.js \
         share/quietpatch/dashboard/node_modules/chart.js/dist/chart.umd.js \
         share/doc/quietpatch/threat-model.md share/doc/quietpatch/operations.md \
         share/man/man1/quietpatch.1 share/man/man8/quietpatchd.8 share/man/man8/quietpatch-server.8 \
         share/man/man5/quietpatch-agent.toml.5 share/man/man1/quietpatch-repo.1 \
         share/bash-completion/completions/quietpatch; do
  [ -s "$prefix/$f" ] || fail "$f missing"
done

# Every man page renders without a warning.
for page in "$prefix"/share/man/man*/*; do
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null || true)
  [ -z "$warnings" ] || fail "$page: $warnings"
done

# The installed server, with nothing but installed files.
"$prefix/bin/quietpatch-repo" --repo "$prefix/repo" --keys "$prefix/keys" init > /dev/null
"$prefix/bin/quietpatch-server" --listen 127.0.0.1:0 --repo "$prefix/repo" --keys "$prefix/keys" \
  --database "sqlite:$prefix/reports.db" --dashboard-dir "$prefix/share/quietpatch/dashboard" \
  > "$prefix/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$prefix/server.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$prefix/server.log")
[ -n "$port" ] || { cat "$prefix/server.log"; fail "the installed server did not start"; }
for path in / /app.js /assets/chart.umd.js /repo/metadata/timestamp.json; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
  [ "$code" = 200 ] || fail "GET $path: HTTP $code"
done
echo "install_tree: $(find "$prefix" -type f | wc -l) files installed; the installed server serves its dashboard"
