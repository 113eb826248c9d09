#!/usr/bin/env python3
"""Runs real nginx with deploy/nginx/e2e.conf.template in front of stand-in workers (stdlib
only; run by scripts/check-deploy). What it proves about the production proxy settings:

1. The template renders and nginx runs it as a non-root user in a temp dir.
2. A POST whose first upstreams refuse the connection is retried on the next one (nothing
   had been sent), and an SSE answer reaches the client event by event. (nginx happens to
   pass these small events on even with buffering on, so `proxy_buffering off` itself is
   enforced by the static check in check_files.py, not here.)
3. A POST whose bytes reached a worker that then failed is NOT replayed on another worker
   (502 instead), while a GET in the same situation is retried on every worker.

The e2e test with three real workers lives in the Rust suites; this one needs no build.
Usage: nginx_smoke.py <nginx binary> <template>
"""

import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

NGINX, TEMPLATE = sys.argv[1], sys.argv[2]
DEADLINE = 10.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """A stand-in worker on loopback. mode 'sse': answers every request with a two-event
    stream, 0.8 s apart. mode 'drop': reads the request, then closes without answering."""

    def __init__(self, mode):
        self.mode = mode
        self.hits = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            conn.settimeout(5)
            buf = b""
            try:
                while True:  # keep-alive: one request after another
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v.strip())
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    buf = buf[length:]
                    self.hits += 1
                    if self.mode == "drop":
                        return
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n")
                    for i, event in enumerate((b"data: first\n\n", b"data: [DONE]\n\n")):
                        if i:
                            time.sleep(0.8)
                        conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
                    conn.sendall(b"0\r\n\r\n")
            except OSError:
                return

    def close(self):
        self.sock.close()


class Nginx:
    def __init__(self, workers):
        self.dir = tempfile.mkdtemp(prefix="mana-llm-nginx-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        conf = open(TEMPLATE).read()
        conf = conf.replace("__LISTEN__", f"127.0.0.1:{self.port}").replace("__TMPDIR__", self.dir)
        for i, w in enumerate(workers, 1):
            conf = conf.replace(f"__WORKER{i}__", f"127.0.0.1:{w}")
        leftover = [ph for ph in ("__LISTEN__", "__TMPDIR__", "__WORKER") if ph in conf]
        if leftover:
            raise SystemExit(f"template placeholders left after rendering: {leftover}")
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        os.chmod(path, 0o644)
        preexec = None
        if os.geteuid() == 0:  # prove it runs unprivileged
            nobody = pwd.getpwnam("nobody")

            def preexec():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"), "-c", path],
                                     preexec_fn=preexec, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"nginx exited: {self.proc.stderr.read().decode()}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("nginx did not start listening in time")

    def log(self):
        try:
            return open(os.path.join(self.dir, "error.log")).read()
        except OSError:
            return ""

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        headers = {"content-type": "application/json"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        return conn, conn.getresponse()

    def stop(self):
        # SIGTERM: fast shutdown (open client connections do not hold it up). nginx runs in its
        # own process group, so a stuck master and its workers are killed together.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


FAILURES = []


def check(cond, what):
    print(f"  {'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        FAILURES.append(what)


BODY = b'{"model": "mana/fast-text", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'

# 1 + 2: two dead workers (connection refused), one streaming worker.
good = Upstream("sse")
nginx = Nginx([free_port(), free_port(), good.port])
try:
    check(nginx.request("GET", "/nginx-health")[1].status == 200, "nginx runs the rendered template unprivileged")
    for attempt in range(3):
        started = time.monotonic()
        conn, resp = nginx.request("POST", "/v1/chat/completions", BODY)
        first = resp.read1(65536)  # the first chunk, as soon as it arrives
        first_at = time.monotonic() - started
        rest = resp.read()
        conn.close()
        check(resp.status == 200 and first.startswith(b"data: first"),
              f"POST #{attempt + 1} past refused connections reaches the live worker (status {resp.status})")
        check(first_at < 0.6 and b"[DONE]" in rest,
              f"POST #{attempt + 1}: first SSE event after {first_at:.2f}s, before the upstream finished (0.8s)")
    check(good.hits == 3, f"the live worker got each POST exactly once ({good.hits})")
finally:
    nginx.stop()
    good.close()

# 3: every worker fails after receiving the request.
drops = [Upstream("drop") for _ in range(3)]
nginx = Nginx([d.port for d in drops])
try:
    conn, resp = nginx.request("POST", "/v1/chat/completions", BODY)
    resp.read()
    conn.close()
    sent = sum(d.hits for d in drops)
    check(resp.status == 502 and sent == 1, f"a POST that reached a failing worker is not replayed (status {resp.status}, sent {sent}x)")
    nginx.stop()
    for d in drops:
        d.hits = 0
    nginx = Nginx([d.port for d in drops])
    conn, resp = nginx.request("GET", "/v1/models")
    resp.read()
    conn.close()
    sent = sum(d.hits for d in drops)
    check(resp.status == 502 and sent == 3, f"a GET is retried on every worker (status {resp.status}, sent {sent}x)")
finally:
    nginx.stop()
    for d in drops:
        d.close()

sys.exit(1 if FAILURES else 0)
