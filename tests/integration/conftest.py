"""Harness for corral's integration tests: the real corrald, a real origin, real clients.

Fixtures
  origin   an origin.Origin on 127.0.0.1 (started and stopped per test)
  corral   a factory: corral(extra_ini="...", env={...}) writes an ini into tmp_path,
           starts $CORRALD -c FILE (default build/corrald; `env` is added to its
           environment, e.g. NOTIFY_SOCKET) and waits until it accepts
           connections. At teardown every instance gets SIGTERM and must exit 0
           with no sanitizer report on stderr.

Client helpers (import them: `from conftest import ...`)
  RawClient / raw_request / raw_requests   raw sockets, with a response parser that
           handles Content-Length, chunked and close-delimited bodies, 1xx heads,
           HEAD/204/304 and pipelined responses
  curl(proxy_url, *args) / Corral.curl(*args)   the curl binary through the proxy
  wait_for(predicate, timeout, what)   the only way tests wait: a deadline wait

No test sleeps to synchronise: every wait is for a condition with a deadline.
"""

import http.client
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time

import pytest

import origin as origin_mod
from ports import free_port
from origin import SocketReader, read_head, read_chunked, header_value, header_values

REPO = pathlib.Path(__file__).resolve().parents[2]
CORRALD = os.environ.get("CORRALD") or str(REPO / "build" / "corrald")
SANITIZE = os.environ.get("SANITIZE", "")
# Sanitizer builds are about 3x slower: scale the deadlines (never the assertions
# about what happens, only how long we are prepared to wait for it).
SCALE = 3 if SANITIZE else 1
TIMEOUT = 10 * SCALE

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "LeakSanitizer")

PROXY_ENV_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                  "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def clean_env():
    """os.environ without proxy settings (curl and libcurl would obey them) and
    without NOTIFY_SOCKET (a test runner under systemd must not be told READY
    by every corrald; the notify tests set their own)."""
    env = dict(os.environ)
    for k in PROXY_ENV_VARS + ("NOTIFY_SOCKET",):
        env.pop(k, None)
    return env


# -- waiting ------------------------------------------------------------------


def wait_for(predicate, timeout=10, what="condition"):
    """Deadline wait: poll `predicate` with a short backoff (1 ms doubling up to
    50 ms) until it returns a true value, which is returned. Raises TimeoutError
    naming `what` when `timeout` seconds (scaled for sanitizer builds) pass.
    This polling is a wait for a condition with a deadline, not a sleep used as
    synchronisation."""
    deadline = time.monotonic() + timeout * SCALE
    delay = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout * SCALE, what))
        time.sleep(delay)  # backoff between polls of the predicate, within the deadline
        delay = min(delay * 2, 0.05)

def can_connect(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


# -- responses and raw clients ---------------------------------------------------


class Response:
    def __init__(self, version, status, reason, headers):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers      # [(name, value)] in order, with repeats
        self.body = b""
        self.framing = "none"       # content-length | chunked | close | none
        self.trailers = []
        self.interim = []           # 1xx responses that came before this one

    def header(self, name):
        return header_value(self.headers, name)

    def header_all(self, name):
        return header_values(self.headers, name)

    def names(self):
        return [n.lower() for (n, _) in self.headers]

    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %d %s %r body=%r>" % (self.version, self.status, self.reason,
                                                   self.headers, self.body[:200])


def read_response_head(reader):
    head = read_head(reader)
    if head is None:
        raise ConnectionError("connection closed before a response")
    start, headers = head
    parts = start.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("bad status line %r" % start)
    return Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


def has_no_body(method, status):
    return (method == "HEAD" or status in (204, 304) or 100 <= status < 200
            or (method == "CONNECT" and 200 <= status < 300))


def read_response(reader, method="GET", keep_interim=False, stream=False):
    """Read one final response (1xx heads before it are collected in .interim).
    stream=True returns after the head and leaves the body in `reader`."""
    interim = []
    while True:
        resp = read_response_head(reader)
        if 100 <= resp.status < 200 and resp.status != 101:
            interim.append(resp)
            if keep_interim:
                resp.interim = []
                return resp
            continue
        break
    resp.interim = interim
    if stream or has_no_body(method, resp.status):
        return resp
    te = ",".join(resp.header_all("transfer-encoding")).lower()
    cl = resp.header("content-length")
    if "chunked" in te:
        resp.framing = "chunked"
        resp.body, resp.trailers = read_chunked(reader)
    elif cl is not None:
        resp.framing = "content-length"
        resp.body = reader.read_exact(int(cl))
    else:
        resp.framing = "close"
        resp.body = reader.read_until_eof()
    return resp


class RawClient:
    """A raw TCP client connection to the proxy."""

    def __init__(self, port, host="127.0.0.1", timeout=None):
        self.sock = socket.create_connection((host, port), timeout=timeout or TIMEOUT)
        self.sock.settimeout(timeout or TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = SocketReader(self.sock)
        self._senders = []

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def send_background(self, data):
        """Send in a thread: the proxy may answer (and close) before it has read
        everything, and the test must still be able to read that answer."""
        if isinstance(data, str):
            data = data.encode("latin-1")

        def run():
            try:
                self.sock.sendall(data)
            except OSError:
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self._senders.append(t)
        return t

    def read_response(self, method="GET", **kw):
        return read_response(self.reader, method, **kw)

    def read_responses(self, methods):
        return [self.read_response(m) for m in methods]

    def request(self, data, method=None, **kw):
        if method is None:
            method = (data.split(b" ", 1)[0] if isinstance(data, bytes)
                      else data.split(" ", 1)[0])
            if isinstance(method, bytes):
                method = method.decode("latin-1")
        self.send(data)
        return self.read_response(method, **kw)

    def wait_closed(self, timeout=10):
        """How the connection ended, waiting up to `timeout` (deadline): "eof" when
        recv returned b"", "reset" on ECONNRESET. Data still arriving is
        returned as ("data", bytes) so that a test can show what it got."""
        self.sock.settimeout(timeout * SCALE)
        try:
            if self.reader.buf:
                return ("data", bytes(self.reader.buf))
            data = self.sock.recv(65536)
        except socket.timeout:
            return "open"
        except ConnectionResetError:
            return "reset"
        finally:
            self.sock.settimeout(TIMEOUT)
        return "eof" if data == b"" else ("data", data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        for t in self._senders:
            t.join(timeout=TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def absolute_request(origin, path, method="GET", headers=(), body=b"", version="HTTP/1.1",
            host=True):
    """An absolute-form request for `path` on the origin, as bytes."""
    lines = ["%s %s%s %s" % (method, origin.url, path, version)]
    if host:
        lines.append("Host: 127.0.0.1:%d" % origin.port)
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def raw_request(port, data, method=None, **kw):
    """One request on a fresh connection; returns the parsed final response."""
    with RawClient(port) as c:
        return c.request(data, method, **kw)


def raw_requests(port, data, methods):
    """Send `data` (several pipelined requests) in one write and read
    len(methods) responses, in order."""
    with RawClient(port) as c:
        c.send(data)
        return c.read_responses(methods)


def curl(proxy_url, *args, timeout=30):
    """Run the curl binary through the proxy. Returns (rc, stdout bytes, stderr str)."""
    cmd = ["curl", "-sS", "-x", proxy_url, "--max-time", str(timeout * SCALE)]
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=clean_env(), timeout=timeout * SCALE + 10)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


# -- the daemon -------------------------------------------------------------------


def parse_ini(text):
    """[(section, [(key, value)])] from ini text (comments '#' and ';')."""
    sections = []
    cur = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = line[1:-1].strip()
            sections.append((cur, []))
            continue
        key, sep, value = line.partition("=")
        if not sep or cur is None:
            raise ValueError("bad ini line in test config: %r" % raw)
        sections[-1][1].append((key.strip(), value.strip()))
    return sections


def merge_ini(base, extra, drop=()):
    """base and extra as parse_ini gives them; extra overrides same section/key;
    `drop` lists "section.key" to leave out (so that the daemon's default applies)."""
    merged = {}
    order = []
    for section, items in list(base) + list(extra):
        if section not in merged:
            merged[section] = {}
            order.append(section)
        for k, v in items:
            merged[section][k] = v
    for d in drop:
        section, _, key = d.partition(".")
        merged.get(section, {}).pop(key, None)
    out = []
    for section in order:
        out.append("[%s]" % section)
        out += ["%s = %s" % kv for kv in merged[section].items()]
        out.append("")
    return "\n".join(out)


class Corral:
    def __init__(self, tmp_path, extra_ini="", drop=(), name="corral", env=None):
        self.port = free_port()
        self.admin_port = free_port()
        self.proxy_url = "http://127.0.0.1:%d" % self.port
        self.dir = tmp_path
        self.access_log_path = tmp_path / ("%s-access.log" % name)
        self.ini_path = tmp_path / ("%s.ini" % name)
        self.stderr_path = tmp_path / ("%s.stderr" % name)
        self.stdout_path = tmp_path / ("%s.stdout" % name)
        base = [
            ("proxy", [("listen", "127.0.0.1:%d" % self.port), ("connect_ports", "*")]),
            ("upstream", [("allow_loopback", "on")]),
            ("log", [("access", str(self.access_log_path))]),
            ("admin", [("listen", "127.0.0.1:%d" % self.admin_port)]),
        ]
        # "{port}" in extra_ini is the proxy port (e.g. to listen on it otherwise)
        extra_ini = extra_ini.replace("{port}", str(self.port))
        self.ini_text = merge_ini(base, parse_ini(extra_ini), drop)
        self.ini_path.write_text(self.ini_text)
        self.exit_code = None
        if not os.path.exists(CORRALD):
            pytest.fail("corrald binary not found at %s (run make, or set CORRALD)" % CORRALD)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([CORRALD, "-c", str(self.ini_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=dict(clean_env(), **(env or {})))
        self.pid = self.proc.pid
        try:
            wait_for(lambda: self.proc.poll() is not None or can_connect(self.port),
                     timeout=10, what="corrald to accept on port %d" % self.port)
        except TimeoutError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            pytest.fail("corrald exited with %s at start-up; config:\n%s\nstderr:\n%s"
                        % (self.exit_code, self.ini_text, self.stderr_text()))

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access_log_lines(self):
        try:
            text = self.access_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [l for l in text.splitlines() if l.strip()]

    def wait_log_lines(self, n, timeout=10):
        """Wait (deadline) until the access log has at least n lines; return them."""
        return wait_for(lambda: len(self.access_log_lines()) >= n and self.access_log_lines(),
                        timeout=timeout, what="%d access log line(s) in %s"
                        % (n, self.access_log_path))

    def admin(self, method, path, headers=None, body=None):
        """One request to the admin listener: (status, body text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def metrics(self):
        """GET /metrics on the admin listener: {"name": float}; '#' lines ignored."""
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=TIMEOUT)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            assert resp.status == 200, "admin /metrics answered %d: %s" % (resp.status, body)
        finally:
            conn.close()
        out = {}
        for line in body.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            try:
                out[name.strip()] = float(value)
            except ValueError:
                continue
        return out

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for pid %d" % self.pid)

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        """SIGTERM, wait for the exit (deadline), return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.exit_code = "did not exit within %ss of SIGTERM" % (timeout * SCALE)
                return self.exit_code
        if self.exit_code is None:
            self.exit_code = self.proc.returncode
        self._out.close()
        self._err.close()
        return self.exit_code

    def curl(self, *args, **kw):
        return curl(self.proxy_url, *args, **kw)

    def client(self, **kw):
        return RawClient(self.port, **kw)


def sanitizer_findings(text):
    return [m for m in SANITIZER_MARKERS if m in text]


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def origin():
    o = origin_mod.Origin()
    yield o
    o.stop()


@pytest.fixture
def corral(tmp_path, origin):
    started = []

    def start(extra_ini="", drop=(), env=None):
        c = Corral(tmp_path, extra_ini, drop, name="corral%d" % len(started), env=env)
        started.append(c)
        return c

    yield start

    # Release whatever the origin still holds first, so that the daemon's shutdown
    # is not waiting for a response the test left hanging.
    origin.stop()
    problems = []
    for c in started:
        rc = c.stop()
        err = c.stderr_text()
        mine = []
        if rc != 0:
            mine.append("corrald (pid %d) exit code %r after SIGTERM" % (c.pid, rc))
        found = sanitizer_findings(err)
        if found:
            mine.append("corrald (pid %d) stderr has %s" % (c.pid, ", ".join(found)))
        if mine:
            mine.append("stderr of pid %d (last 6000 chars):\n%s" % (c.pid, err[-6000:]))
        problems += mine
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# -- shared assertions -----------------------------------------------------------------


def assert_serves(c, origin, path="/still-alive"):
    """The daemon is alive and still relays a normal request."""
    assert c.alive(), "corrald died; stderr:\n%s" % c.stderr_text()[-4000:]
    origin.route(path, origin_mod.fixed(body=b"alive", headers=[("Content-Type", "text/plain"),
                                                                  ("Cache-Control", "no-store")]))
    r = raw_request(c.port, "GET %s%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                    % (origin.url, path, origin.port))
    assert r.status == 200 and r.body == b"alive", r
