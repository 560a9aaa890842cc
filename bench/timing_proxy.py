"""A loopback proxy in front of DynamoDB-compatible moto that counts requests per operation
and the time each spent upstream (moto's own time, plus loopback), for benches/catalog_sync.rs:
the broker's share of a sync is its wall time minus what it waited for moto.

usage: python timing_proxy.py UPSTREAM_URL
prints `listening on http://127.0.0.1:PORT`; `GET /_counts` answers and resets
{"Operation": [requests, seconds upstream], ...}.
"""

import http.client
import http.server
import json
import sys
import threading
import time


def main() -> None:
    upstream = sys.argv[1].removeprefix("http://").rstrip("/")
    counts = {}
    lock = threading.Lock()
    local = threading.local()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body, headers):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/_counts":
                with lock:
                    body = json.dumps(counts).encode()
                    counts.clear()
                return self.reply(200, body, [("Content-Type", "application/json")])
            self.forward()

        def do_POST(self):
            self.forward()

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            target = (self.headers.get("X-Amz-Target") or self.command).split(".")[-1]
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("connection", "keep-alive")}
            started = time.perf_counter()
            for attempt in range(2):
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection(upstream, timeout=600)
                try:
                    conn.request(self.command, self.path, body, headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    local.conn = None
                    if attempt:
                        return self.reply(502, b"", [])
            took = time.perf_counter() - started
            with lock:
                n, t = counts.get(target, (0, 0.0))
                counts[target] = (n + 1, t + took)
            out = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in ("transfer-encoding", "connection", "content-length",
                                        "keep-alive")]
            self.reply(resp.status, data, out)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
