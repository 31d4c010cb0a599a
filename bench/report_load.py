#!/usr/bin/env python3
"""Posts device reports concurrently and counts what the database stored.

  report_load.py URL DEVICES EVENTS_PER_DEVICE LABEL DATABASE_URL
Each device sends its events in batches of 10, retrying after 429/5xx, so every event is
eventually stored; prints events/s and sent vs stored."""
import json, sys, threading, time, urllib.request, urllib.error, subprocess

if len(sys.argv) < 6:
    print(__doc__); sys.exit(0)
url, devices, per, label, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
sent = 0
lock = threading.Lock()

def device(i):
    global sent
    iid = "%032x" % (i + 1)
    for start in range(0, per, 10):
        events = [{"seq": s + 1, "time": 1800000000 + s, "component": "comp", "platform": "linux-x86_64",
                   "base": "1.0", "improvement": "a", "state": "downloading" if s < per - 1 else "protected",
                   "error": "", "restart_needed": []} for s in range(start, min(per, start + 10))]
        body = json.dumps({"install_id": iid, "agent_version": "bench", "events": events}).encode()
        while True:
            req = urllib.request.Request(url + "/v1/reports", data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    json.load(r)
                    break
            except urllib.error.HTTPError as e:
                time.sleep(float(e.headers.get("Retry-After", "0.2")) if e.code == 429 else 0.2)
        with lock:
            sent += len(events)

t0 = time.time()
threads = [threading.Thread(target=device, args=(i,)) for i in range(devices)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.time() - t0
if db.startswith("sqlite:"):
    stored = int(subprocess.run(["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])", db[7:]], capture_output=True, text=True).stdout)
else:
    stored = int(subprocess.run(["psql", db, "-Atc", "select count(*) from events"], capture_output=True, text=True).stdout)
print("reports on %s: %d events from %d devices in %.1f s = %.0f events/s stored; sent %d, stored %d, %s"
      % (label, sent, devices, elapsed, sent / elapsed, sent, stored, "no loss" if sent == stored else "LOSS"))
