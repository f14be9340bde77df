#!/usr/bin/env python3
"""Renders nginx.conf (the template) like the image and the local stack do, checks it with
`nginx -t`, then runs it against a stand-in gateway and checks what the template promises:
SPA fallback, caching and security headers, /api prefix stripping, unbuffered Server-Sent
Events, the upload size limit, and JSON errors when the gateway is down.

Usage: python3 scripts/nginx_check.py [STATIC_ROOT]   (default: dist/ when built, else a stand-in)
"""
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "nginx.conf")
VARIABLES = "${LISTEN_PORT} ${STATIC_ROOT} ${GATEWAY_UPSTREAM} ${MAX_UPLOAD_SIZE}"
failures = []


passed = []


def check(condition, what):
    if condition:
        passed.append(what)
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


release_events = threading.Event()
gateway_down = threading.Event()


class FakeGateway(http.server.BaseHTTPRequestHandler):
    """Echoes what reached it; /events sends one event, waits to be released, then a second."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def hang_up(self):
        """Once "down", drop kept-alive connections from nginx without an answer."""
        if gateway_down.is_set():
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        return False

    def do_GET(self):
        if self.hang_up():
            return
        if self.path.startswith("/release"):
            release_events.set()
            self.reply(200, {"released": True})
        elif self.path.startswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b'data: {"status":"processing","state":"processing","progress":50}\n\n')
            self.wfile.flush()
            release_events.wait(timeout=30)
            self.wfile.write(b'data: {"status":"completed","mp3_fid":"ab"}\n\n')
            self.wfile.flush()
            self.close_connection = True
        else:
            self.reply(200, {"path": self.path, "x_request_id": self.headers.get("X-Request-Id")})

    def do_POST(self):
        if self.hang_up():
            return
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            received = 0
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                received += len(self.rfile.read(size))
                self.rfile.readline()
        else:
            received = len(self.rfile.read(length))
        if self.path == "/login":
            self.reply(401, {"error": "wrong credentials"}, [("WWW-Authenticate", 'Basic realm="auth"')])
        else:
            self.reply(200, {"path": self.path, "received": received})


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def main():
    work = tempfile.mkdtemp(prefix="nginx-check-")
    static = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "dist")
    if not os.path.isfile(os.path.join(static, "index.html")):
        static = os.path.join(work, "html")
        os.makedirs(os.path.join(static, "assets"))
        with open(os.path.join(static, "index.html"), "w") as f:
            f.write('<!doctype html><div id="root"></div>')
        with open(os.path.join(static, "assets", "index-abc123.js"), "w") as f:
            f.write("console.log(1)")
    static = os.path.abspath(static)
    asset = next(name for name in os.listdir(os.path.join(static, "assets")) if name.endswith(".js"))

    gateway_port, nginx_port = free_port(), free_port()
    gateway = http.server.ThreadingHTTPServer(("127.0.0.1", gateway_port), FakeGateway)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()

    env = dict(
        os.environ,
        LISTEN_PORT=str(nginx_port),
        STATIC_ROOT=static,
        GATEWAY_UPSTREAM=f"127.0.0.1:{gateway_port}",
        MAX_UPLOAD_SIZE="1m",
    )
    with open(TEMPLATE) as f:
        site = subprocess.run(["envsubst", VARIABLES], input=f.read(), env=env, capture_output=True, text=True, check=True).stdout
    with open(os.path.join(work, "site.conf"), "w") as f:
        f.write(site)
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(f"""
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    include {work}/site.conf;
}}
""")
    nginx = ["nginx", "-p", work, "-c", os.path.join(work, "nginx.conf")]
    test = subprocess.run(nginx + ["-t"], capture_output=True, text=True)
    check(test.returncode == 0, "nginx -t accepts the rendered template")
    if test.returncode != 0:
        print(test.stderr)
        return 1
    subprocess.run(nginx, check=True)
    try:
        run_checks(nginx_port, asset)
        gateway_down.set()
        gateway.shutdown()
        gateway.server_close()
        response, body = request(nginx_port, "GET", "/api/jobs")
        check(response.status == 503 and "unavailable" in json.loads(body)["error"], "gateway down -> 503 with a JSON error")
    finally:
        subprocess.run(nginx + ["-s", "stop"], check=False, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    print(f"nginx template: {len(passed)} passed, {len(failures)} failed")
    return 1 if failures else 0


def run_checks(port, asset):
    response, body = request(port, "GET", "/")
    check(response.status == 200 and b'id="root"' in body, "/ serves index.html")
    check(response.getheader("Cache-Control") == "no-cache", "index.html is revalidated (Cache-Control: no-cache)")
    check("frame-ancestors 'none'" in (response.getheader("Content-Security-Policy") or ""), "Content-Security-Policy set")
    check(response.getheader("X-Content-Type-Options") == "nosniff", "X-Content-Type-Options set")
    check(response.getheader("Server") == "nginx", "server_tokens off (no version in Server)")

    response, body = request(port, "GET", "/history")
    check(response.status == 200 and b'id="root"' in body, "SPA fallback: /history serves index.html")

    response, _ = request(port, "GET", f"/assets/{asset}")
    check(response.status == 200 and "immutable" in (response.getheader("Cache-Control") or ""), "hashed assets cached as immutable")
    check(response.getheader("X-Frame-Options") == "DENY", "security headers kept on assets")
    response, _ = request(port, "GET", "/assets/missing.js")
    check(response.status == 404, "a missing asset is 404, not index.html")

    response, body = request(port, "GET", "/healthz")
    check(response.status == 200 and body == b"ok\n", "/healthz answers ok")

    response, body = request(port, "GET", "/api/status?fid=abc")
    echoed = json.loads(body)
    check(echoed["path"] == "/status?fid=abc", "/api prefix stripped, query kept")
    check(bool(echoed["x_request_id"]), "X-Request-Id forwarded")
    check(response.getheader("Cache-Control") == "no-store", "API answers are not cached")

    for path in ("/api/metrics", "/api/readyz", "/api/healthz", "/api/openapi.json"):
        response, body = request(port, "GET", path)
        check(response.status == 404 and json.loads(body) == {"error": "not found"},
              f"{path} is not proxied to the gateway (404 JSON)")

    response, body = request(port, "POST", "/api/login", body=b"")
    check(response.status == 401 and response.getheader("WWW-Authenticate") is None, "401 passes through without WWW-Authenticate")

    small = b"x" * 200_000
    response, body = request(port, "POST", "/api/upload", body=small, headers={"Content-Type": "application/octet-stream"})
    check(response.status == 200 and json.loads(body) == {"path": "/upload", "received": len(small)}, "upload under the limit reaches the gateway whole")

    response, body = request(port, "POST", "/api/upload", body=b"x" * 1_200_000, headers={"Content-Type": "application/octet-stream"})
    ok = response.status == 413 and "upload limit" in json.loads(body)["error"]
    check(ok, "upload over MAX_UPLOAD_SIZE -> 413 with a JSON error")

    response, body = request(port, "POST", "/api/jobs", body=b"x" * 1_200_000)
    check(response.status == 413, "other API paths keep the small body limit")

    # Unbuffered events: the gateway holds the stream open after the first event until released;
    # a buffering proxy would deliver nothing before the stream ends, and this read would time out.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/api/events?fid=abc", headers={"Accept": "text/event-stream"})
    response = conn.getresponse()
    first = b""
    try:
        while not first.endswith(b"\n\n"):
            first += response.read1(1024)
        streamed = b'"progress":50' in first
    except (TimeoutError, socket.timeout):
        streamed = False
    request(port, "GET", "/api/release")
    rest = response.read()
    conn.close()
    check(streamed, "events are streamed unbuffered")
    check(b'"completed"' in rest, "the event stream delivers its last event and closes")


if __name__ == "__main__":
    sys.exit(main())
