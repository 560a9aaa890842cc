"""Loopback servers for the benchmark (bench/run): a Lambda runtime API endpoint and a
counting reverse proxy. Standard library only.

RuntimeApi serves `GET /2018-06-01/runtime/invocation/next`, `POST .../{id}/response`,
`POST .../{id}/error` and `POST .../init/error` for one function process at a time and
timestamps each call (time.perf_counter()).

CountingProxy forwards HTTP/1.1 requests (keep-alive) to one upstream and counts them by a
label: DynamoDB's `X-Amz-Target` operation, else `METHOD /path` with IDs elided.
"""

import http.client
import http.server
import json
import queue
import re
import threading
import time
import uuid


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a function process killed mid-connection


class Invocation:
    """One function process's view of the runtime API."""

    def __init__(self):
        self.events = queue.Queue()
        self.next_calls = []  # perf_counter of each GET /next arrival
        self.delivered = {}  # request id -> perf_counter when the event was sent
        self.done = queue.Queue()  # (request id, kind, perf_counter, body)
        self.init_error = None


class RuntimeApi:
    def __init__(self):
        self.current = Invocation()
        api = self

        class Handler(_Quiet):
            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    return self.reply(404)
                inv = api.current
                inv.next_calls.append(time.perf_counter())
                try:
                    event = inv.events.get(timeout=120)
                except queue.Empty:
                    return self.reply(500)
                if event is None:
                    return self.reply(500)
                rid = str(uuid.uuid4())
                body = json.dumps(event).encode()
                deadline = int((time.time() + 60) * 1000)
                inv.delivered[rid] = time.perf_counter()
                self.reply(200, body, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": rid,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        "arn:aws:lambda:us-east-1:123456789012:function:bench",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):
                body = self.body()
                now = time.perf_counter()
                inv = api.current
                m = re.search(r"/runtime/invocation/([^/]+)/(response|error)$", self.path)
                if m:
                    inv.done.put((m.group(1), m.group(2), now, body))
                    return self.reply(202, b"{}", {"Content-Type": "application/json"})
                if self.path.endswith("/runtime/init/error"):
                    inv.init_error = body
                    inv.done.put((None, "init-error", now, body))
                    return self.reply(202, b"{}", {"Content-Type": "application/json"})
                self.reply(404)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fresh(self):
        old = self.current
        self.current = Invocation()
        old.events.put(None)
        return self.current


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|bench|osb-|lam|^\d+$", re.I)


def _label(method, path, headers):
    target = headers.get("X-Amz-Target")
    if target:
        return target.split(".")[-1]
    path = path.split("?")[0]
    parts = [p for p in path.split("/") if p]
    shown = []
    for p in parts:
        shown.append("{id}" if _ID.search(p) else p)
    return f"{method} /" + "/".join(shown)


class CountingProxy:
    def __init__(self, upstream):
        self.upstream = upstream.removeprefix("http://").rstrip("/")
        self.counts = {}
        self.lock = threading.Lock()
        proxy = self
        local = threading.local()

        class Handler(_Quiet):
            def forward(self):
                body = self.body()
                label = _label(self.command, self.path, self.headers)
                with proxy.lock:
                    proxy.counts[label] = proxy.counts.get(label, 0) + 1
                conn = getattr(local, "conn", None)
                for attempt in range(2):
                    if conn is None:
                        conn = http.client.HTTPConnection(proxy.upstream, timeout=120)
                        local.conn = conn
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "keep-alive")}
                    try:
                        conn.request(self.command, self.path, body or None, headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        conn = None
                        local.conn = None
                        if attempt:
                            return self.reply(502)
                out = {k: v for k, v in resp.getheaders()
                       if k.lower() not in ("transfer-encoding", "connection", "content-length",
                                            "keep-alive")}
                self.reply(resp.status, data, out)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = forward

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        """The counts since the last call, and reset."""
        with self.lock:
            counts, self.counts = self.counts, {}
        return counts
