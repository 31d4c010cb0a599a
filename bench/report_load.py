#!/usr/bin/env python3
"""Posts device reports concurrently and counts what the database stored.

  report_load.py URL DEVICES EVENTS_PER_DEVICE LABEL DATABASE_URL ADMIN_TOKEN_FILE
Each device has its own ed25519 key, enrolls with a token made through the admin API and
signs every request as quietpatchd does (contract/device_auth.h); it sends its events in
batches of 10, retrying after 429/5xx, so every event is eventually stored. Prints events/s
(signing and verification included) and sent vs stored."""
import hashlib, json, os, sys, threading, time, urllib.request, urllib.error, subprocess
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

if len(sys.argv) < 7:
    print(__doc__); sys.exit(0)
url, devices, per, label, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
admin = open(sys.argv[6]).read().strip()
sent = 0
lock = threading.Lock()


def post(path, body, headers):
    req = urllib.request.Request(url + path, data=body, headers=dict(headers, **{"Content-Type": "application/json"}))
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.load(r)


made = urllib.request.Request(url + "/v1/admin/enrollments", data=json.dumps({"uses": devices, "days": 1}).encode(),
                              headers={"Authorization": "Bearer " + admin})
with urllib.request.urlopen(made, timeout=30) as r:
    token = json.load(r)["token"]


class Device:
    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = raw.hex()
        self.id = hashlib.sha256(self.public.encode()).hexdigest()[:32]

    def sign(self, target, body):
        t, nonce = str(int(time.time())), os.urandom(16).hex()
        message = "\n".join(["quietpatch-device-request-v1", "POST", target, t, nonce, hashlib.sha256(body).hexdigest()])
        return {"QP-Device": self.id, "QP-Time": t, "QP-Nonce": nonce,
                "QP-Signature": self.key.sign(message.encode()).hex()}


def device(i):
    global sent
    d = Device()
    body = json.dumps({"token": token, "public_key": d.public}).encode()
    post("/v1/enroll", body, d.sign("/v1/enroll", body))
    iid = d.id
    for start in range(0, per, 10):
        events = [{"seq": s + 1, "time": 1800000000 + s, "component": "comp", "platform": "linux-x86_64",
                   "base": "1.0", "improvement": "a", "state": "downloading" if s < per - 1 else "protected",
                   "error": "", "restart_needed": []} for s in range(start, min(per, start + 10))]
        body = json.dumps({"install_id": iid, "agent_version": "bench", "events": events}).encode()
        while True:
            try:
                post("/v1/reports", body, d.sign("/v1/reports", body))
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
