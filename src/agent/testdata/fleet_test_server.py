#!/usr/bin/env python3
"""A stand-in fleet server for the agent's end-to-end tests (until quietpatch-server is
used): serves a repository directory with Range requests under /repo/, stores device
reports (POST /v1/reports, idempotent on install id + seq) in a JSON-lines file, and
answers the watch long-poll (GET /v1/watch?timestamp=N&timeout=S).

  fleet_test_server.py REPO_DIR REPORTS_FILE [--watch] [--cut-after BYTES] [--port N]

--cut-after: the first download of a .qpatch stops after BYTES bytes and the server exits
(a server going away mid-download).
"""
import argparse, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

args = None
lock = threading.Lock()
seen = set()


def timestamp_version():
    try:
        with open(os.path.join(args.repo, "metadata", "timestamp.json")) as f:
            return json.load(f)["signed"]["version"]
    except Exception:
        return 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stderr.write("%s\n" % (fmt % a))
        sys.stderr.flush()

    def send_json(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/v1/watch":
            if not args.watch:
                return self.send_json(404, {"error": "no watch"})
            q = parse_qs(url.query)
            known = int(q.get("timestamp", ["0"])[0])
            deadline = time.time() + min(int(q.get("timeout", ["30"])[0]), 60)
            while time.time() < deadline:
                v = timestamp_version()
                if v > known:
                    return self.send_json(200, {"timestamp": v})
                time.sleep(0.05)
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not url.path.startswith("/repo/"):
            return self.send_json(404, {"error": "not found"})
        rel = url.path[len("/repo/"):]
        path = os.path.realpath(os.path.join(args.repo, rel))
        if not path.startswith(os.path.realpath(args.repo) + os.sep) or not os.path.isfile(path):
            return self.send_json(404, {"error": "not found"})
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            sys.stderr.write("range %s %s\n" % (rng, rel))
            sys.stderr.flush()
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if args.cut_after and path.endswith(".qpatch") and start == 0:
            self.wfile.write(body[: args.cut_after])
            self.wfile.flush()
            sys.stderr.write("cut after %d bytes; going away\n" % args.cut_after)
            sys.stderr.flush()
            os._exit(0)
        self.wfile.write(body)

    def do_POST(self):
        path = urlparse(self.path).path
        if path not in ("/v1/reports", "/v1/enroll"):
            return self.send_json(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length", "0"))
        if length > 1 << 20:
            return self.send_json(413, {"error": "too large"})
        body = json.loads(self.rfile.read(length))
        # The device signs both (quietpatch-server verifies the signatures; server_test
        # covers that): this stand-in checks that they are signed and by whom.
        device = self.headers.get("QP-Device", "")
        if not device or not self.headers.get("QP-Signature"):
            return self.send_json(401, {"error": "unsigned"})
        if path == "/v1/enroll":
            if body.get("token") != "qpe_e2e_token":
                return self.send_json(403, {"error": "unknown enrollment token"})
            return self.send_json(200, {"status": "accepted", "install_id": device})
        report = body
        if report["install_id"] != device:
            return self.send_json(403, {"error": "a device reports for itself only"})
        stored = 0
        with lock, open(args.reports, "a") as out:
            for e in report["events"]:
                key = (report["install_id"], e["seq"])
                if key in seen:
                    continue
                seen.add(key)
                e["install_id"] = report["install_id"]
                out.write(json.dumps(e) + "\n")
                stored += 1
        self.send_json(200, {"stored": stored})


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("repo")
    p.add_argument("reports")
    p.add_argument("--watch", action="store_true")
    p.add_argument("--cut-after", type=int, default=0)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("port %d" % server.server_address[1], flush=True)
    server.serve_forever()


main()
