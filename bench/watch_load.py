#!/usr/bin/env python3
"""Opens N idle watch (long-poll) connections, measures the server's resident memory, then
publishes a rollout change and times until every watcher has its answer.

  watch_load.py PORT N SERVER_PID RSS_BEFORE_KB QUIETPATCH_REPO REPO KEYS"""
import json, selectors, socket, subprocess, sys, time

port, n, pid, rss0 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
repo_cmd, repo, keys = sys.argv[5], sys.argv[6], sys.argv[7]

def timestamp_version():
    with open(repo + "/metadata/timestamp.json") as f:
        return json.load(f)["signed"]["version"]

v = timestamp_version()
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET /v1/watch?timestamp=%d&timeout=600 HTTP/1.1\r\nHost: x\r\n\r\n" % v).encode())
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
time.sleep(2)
rss = int([l.split()[1] for l in open("/proc/%d/status" % pid) if l.startswith("VmRSS")][0])
print("%d idle watchers: server RSS %.1f MB (%.1f MB before, %.2f KB per watcher)"
      % (n, rss / 1024, rss0 / 1024, (rss - rss0) / n))
t0 = time.time()
subprocess.run([repo_cmd, "--repo", repo, "--keys", keys, "rollout", "comp/1.0/a", "50"], check=True)
t_published = time.time()
answered = 0
while answered < n and time.time() - t_published < 60:
    for key, _ in sel.select(timeout=1):
        data = key.fileobj.recv(4096)
        if data.startswith(b"HTTP/1.1 200"):
            answered += 1
        sel.unregister(key.fileobj)
t_done = time.time()
print("publish to all %d watchers answered: %.2f s after the new timestamp was written (%d answered)"
      % (n, t_done - t_published, answered))
for s in socks:
    s.close()
