#!/usr/bin/env bash
# Checks the parts' dependencies as CMake sees them (cmake --graphviz) against .ci/layers.txt:
# no library links a part it may not use, and no executable reaches a part it must not
# (quietpatch-server never links the patch engine or the publisher). Prints the graph.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S . -B "$work/build" -G Ninja --graphviz="$work/graph.dot" >/dev/null
python3 - "$work/graph.dot" .ci/layers.txt <<'PY'
import re, sys
dot, rules = open(sys.argv[1]).read(), open(sys.argv[2]).read()
labels = dict(re.findall(r'"(node\d+)" \[ label = "([^"]+)"', dot))
edges = {}
for a, b in re.findall(r'"(node\d+)" -> "(node\d+)"', dot):
    edges.setdefault(labels[a], set()).add(labels[b])
allowed, never = {}, {}
for line in rules.splitlines():
    line = line.split('#', 1)[0].strip()
    if not line:
        continue
    if line.startswith('executable:'):
        exe, _, parts = line[len('executable:'):].partition(' never ')
        never[exe.strip()] = set(parts.split())
    else:
        part, _, deps = line.partition(':')
        allowed[part.strip()] = set(deps.split())
bad = []
for part in sorted(p for p in edges if p.startswith('qp_')):
    own = {d for d in edges[part] if d.startswith('qp_')}
    if part not in allowed:
        bad.append(f'{part} is not in .ci/layers.txt')
        continue
    for d in sorted(own - allowed[part]):
        bad.append(f'{part} links {d}, which it may not use')
    print(f'{part:18} -> {" ".join(sorted(own)) or "-"}')
def reach(node, seen):
    for d in edges.get(node, ()):
        if d not in seen:
            seen.add(d)
            reach(d, seen)
    return seen
for exe, forbidden in sorted(never.items()):
    if exe not in edges:
        bad.append(f'executable {exe} is not in the CMake graph')
        continue
    got = reach(exe, set())
    for d in sorted(forbidden & got):
        bad.append(f'{exe} reaches {d}')
    print(f'{exe:18} reaches {" ".join(sorted(x for x in got if x.startswith("qp_")))}')
for b in bad:
    print('layers:', b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "layers: every dependency is allowed by .ci/layers.txt"
