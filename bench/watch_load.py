#!/usr/bin/env python3
"""Opens N idle watch (long-poll) connections spread over one or more instances, measures
each instance's resident memory, then runs a publish command and times until every watcher
has its answer.

  watch_load.py PORTS N PIDS REPO_DIR -- PUBLISH COMMAND...
PORTS and PIDS are comma-separated (instance i listens on PORTS[i], runs as PIDS[i]);
REPO_DIR is a repository directory to read the current timestamp version from."""
import json, selectors, socket, subprocess, sys, time

if len(sys.argv) < 7 or "--" not in sys.argv:
    print(__doc__); sys.exit(0)
ports = [int(p) for p in sys.argv[1].split(",")]
n = int(sys.argv[2])
pids = [int(p) for p in sys.argv[3].split(",")]
repo = sys.argv[4]
publish = sys.argv[sys.argv.index("--") + 1:]


def rss_kb(pid):
    return int([l.split()[1] for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS")][0])


with open(repo + "/metadata/timestamp.json") as f:
    v = json.load(f)["signed"]["version"]
before = [rss_kb(p) for p in pids]
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", ports[i % len(ports)]))
    s.sendall(("GET /v1/watch?timestamp=%d&timeout=600 HTTP/1.1\r\nHost: x\r\n\r\n" % v).encode())
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
time.sleep(2)
after = [rss_kb(p) for p in pids]
per = n / len(ports)
for i, p in enumerate(ports):
    print("%d idle watchers on instance %d of %d: RSS %.1f MB (%.1f MB before, %.2f KB per watcher)"
          % (per, i + 1, len(ports), after[i] / 1024, before[i] / 1024, (after[i] - before[i]) / per))
t_start = time.time()
subprocess.run(publish, check=True, stdout=subprocess.DEVNULL)
t_published = time.time()
answered = 0
while answered < n and time.time() - t_published < 60:
    for key, _ in sel.select(timeout=1):
        data = key.fileobj.recv(4096)
        if data.startswith(b"HTTP/1.1 200"):
            answered += 1
        sel.unregister(key.fileobj)
t_done = time.time()
print("publish to all %d watchers on %d instance(s) answered: %.2f s after the publish command "
      "started (it took %.2f s to sign and store the change; %d answered; goal: 1 s)"
      % (n, len(ports), t_done - t_start, t_published - t_start, answered))
for s in socks:
    s.close()
