"""A real origin HTTP/1.1 server for corral's integration tests.

It listens on a raw socket bound to 127.0.0.1 (port 0), serves each TCP connection
on its own daemon thread with keep-alive (several requests per connection), and
records everything it receives exactly as it arrived: request line, headers as an
ordered list of (name, value) with repeats and original spelling, body bytes and
whether the body came chunked or with a Content-Length.

Tests route paths to handlers: `origin.route("/path", handler)`. A handler is
`handler(req, w)` where `req` is a `Request` and `w` a `Writer` that gives raw access
to the socket, so that a handler can send anything: partial bodies, garbage, a reset
(SO_LINGER 0 + close), close-delimited or chunked bodies, repeated headers. Ready-made
handlers are the module functions below (`fixed`, `echo`, `hold`, `big`, `reset`,
`garbage`, `stall`; for forcing interleavings `staged`, `sequence`, `when`).
Unrouted paths get a 404.

Counters, all under `origin.lock` (a Condition that is notified on every change):
requests per path, TCP connections accepted, requests in flight now and at peak.
`origin.wait_arrivals(path, n)` waits (with a deadline) until n requests for `path`
have arrived, which lets a test force an interleaving instead of hoping for it.
"""

import hashlib
import json
import socket
import struct
import threading
import time
import urllib.parse


class ProtocolError(Exception):
    pass


class SocketReader:
    """Buffered reads on a socket: lines, exact lengths, until EOF."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        data = self.sock.recv(1 << 20)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_line(self, limit=1 << 20):
        """One line including its terminator (b"" at EOF before any byte)."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            start = len(self.buf)
            if len(self.buf) > limit:
                raise ProtocolError("line too long")
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError("EOF after %d of %d bytes" % (len(self.buf), n))
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_some(self, maxlen=1 << 20):
        """Whatever is buffered or the next recv (b"" at EOF)."""
        if not self.buf:
            self._fill()
        data = bytes(self.buf[:maxlen])
        del self.buf[:maxlen]
        return data

    def read_until_eof(self):
        while self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data


def read_head(reader):
    """Start line and ordered header list; None at a clean EOF before a request."""
    line = reader.read_line()
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between messages
        line = reader.read_line()
    if not line:
        return None
    start = line.rstrip(b"\r\n").decode("latin-1")
    headers = []
    while True:
        line = reader.read_line()
        if not line:
            raise ProtocolError("EOF in header section")
        if line in (b"\r\n", b"\n"):
            break
        text = line.rstrip(b"\r\n").decode("latin-1")
        name, sep, value = text.partition(":")
        if not sep:
            raise ProtocolError("bad header line %r" % text)
        headers.append((name, value.strip(" \t")))
    return start, headers


def read_chunked(reader):
    """Decode a chunked body; returns (body, trailers)."""
    body = bytearray()
    while True:
        line = reader.read_line()
        if not line:
            raise ProtocolError("EOF in chunk size")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        body += reader.read_exact(size)
        if reader.read_exact(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
    trailers = []
    while True:
        line = reader.read_line()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.rstrip(b"\r\n").decode("latin-1").partition(":")
        trailers.append((name, value.strip()))
    return bytes(body), trailers


def header_values(headers, name):
    name = name.lower()
    return [v for (n, v) in headers if n.lower() == name]


def header_value(headers, name):
    vals = header_values(headers, name)
    return vals[0] if vals else None


class Request:
    """One request as the origin received it."""

    def __init__(self, method, target, version, headers, conn_id, index_on_conn):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers          # [(name, value)] exactly as received
        self.body = b""
        self.framing = "none"           # "content-length" | "chunked" | "none"
        self.trailers = []
        self.conn_id = conn_id          # which TCP connection (0, 1, ...)
        self.index_on_conn = index_on_conn
        self.arrived = time.monotonic()
        parsed = urllib.parse.urlsplit(target)
        self.path = parsed.path if target.startswith("/") or parsed.scheme else target

    def header(self, name):
        return header_value(self.headers, name)

    def header_all(self, name):
        return header_values(self.headers, name)

    def wants_close(self):
        conn = ",".join(self.header_all("connection")).lower()
        tokens = [t.strip() for t in conn.split(",")]
        if "close" in tokens:
            return True
        return self.version == "HTTP/1.0" and "keep-alive" not in tokens

    def to_json(self):
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[n, v] for (n, v) in self.headers],
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "body_length": len(self.body),
            "framing": self.framing,
            "conn_id": self.conn_id,
        }


class Writer:
    """Raw access to the connection for a handler."""

    def __init__(self, sock, origin):
        self.sock = sock
        self.origin = origin
        self.closed = False         # the handler closed or reset the connection
        self.close_after = False    # close after this response (close-delimited body)

    def send(self, data):
        self.sock.sendall(data)

    def send_head(self, status=200, reason="OK", headers=(), version="HTTP/1.1"):
        lines = ["%s %d %s" % (version, status, reason)]
        lines += ["%s: %s" % (n, v) for (n, v) in headers]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_chunk(self, data):
        if data:
            self.send(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_chunks(self, trailers=()):
        self.send(b"0\r\n" + b"".join(("%s: %s\r\n" % t).encode() for t in trailers) + b"\r\n")

    def send_response(self, status=200, reason="OK", headers=(), body=b"",
                      framing="content-length", head_request=False):
        """framing: "content-length" (added unless present), "chunked",
        "close" (no length; the connection is closed after the body), "none"
        (no length header, no body, e.g. 204/304)."""
        headers = list(headers)
        names = {n.lower() for (n, _) in headers}
        if framing == "content-length" and "content-length" not in names:
            headers.append(("Content-Length", str(len(body))))
        elif framing == "chunked" and "transfer-encoding" not in names:
            headers.append(("Transfer-Encoding", "chunked"))
        elif framing == "close":
            self.close_after = True
        self.send_head(status, reason, headers)
        if head_request or framing == "none":
            return
        if framing == "chunked":
            # several chunks, so that a proxy must really decode and re-frame
            step = max(1, len(body) // 3)
            for i in range(0, len(body), step):
                self.send_chunk(body[i:i + step])
            self.end_chunks()
        else:
            self.send(body)

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.sock.close()

    def reset(self):
        """Abortive close: SO_LINGER 0 then close sends a TCP RST."""
        if not self.closed:
            self.closed = True
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


class Origin:
    def __init__(self, port=0, tls=None, host="127.0.0.1"):
        """Listen on `host`:`port` (0: any free port; OSError if taken).
        `tls`: an ssl.SSLContext to serve https instead of http."""
        self.tls = tls
        self.lock = threading.Condition()
        self.routes = {}
        self.requests = []              # every Request, in arrival order
        self.counts = {}                # path -> number of requests arrived
        self.connections = 0            # TCP connections accepted
        self.inflight = 0
        self.peak_inflight = 0
        self.handler_errors = []
        self.stopping = threading.Event()
        self._socks = set()
        self._threads = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.lsock.bind((host, port))
        except OSError:
            self.lsock.close()
            raise
        self.lsock.listen(1024)
        self.port = self.lsock.getsockname()[1]
        self.url = "%s://%s:%d" % ("https" if tls else "http", host, self.port)
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="origin-accept")
        self._acceptor.start()

    # -- configuration -----------------------------------------------------

    def route(self, path, handler):
        with self.lock:
            self.routes[path] = handler
        return self.url + path

    # -- observations --------------------------------------------------------

    def count(self, path=None):
        with self.lock:
            if path is None:
                return len(self.requests)
            return self.counts.get(path, 0)

    def requests_for(self, path):
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def last(self, path):
        reqs = self.requests_for(path)
        assert reqs, "origin received no request for %s" % path
        return reqs[-1]

    def wait_until(self, predicate, timeout=10, what="condition"):
        """Wait (deadline) until predicate(origin) is true, re-checking on every
        change of the counters. Returns False on timeout or when the origin
        stops, so that a handler can use it and still answer; `what` names the
        condition for the caller's own message (tests assert on the result)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0 or self.stopping.is_set():
                    return False
                self.lock.wait(min(left, 0.05))
        return True

    def wait_arrivals(self, path, n, timeout=10):
        """Wait until n requests for `path` have arrived (deadline wait)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.counts.get(path, 0) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("origin: %d of %d requests for %s arrived in %ss"
                                       % (self.counts.get(path, 0), n, path, timeout))
                self.lock.wait(left)

    # -- server ------------------------------------------------------------------

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn_id = self.connections
                self.connections += 1
                self._socks.add(sock)
                self.lock.notify_all()
            t = threading.Thread(target=self._serve, args=(sock, conn_id), daemon=True,
                                 name="origin-conn-%d" % conn_id)
            self._threads.append(t)
            t.start()

    def _serve(self, sock, conn_id):
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except OSError:
                sock.close()        # a client that refused our certificate
                return
            with self.lock:
                self._socks.add(sock)
        reader = SocketReader(sock)
        w = Writer(sock, self)
        index = 0
        try:
            while not self.stopping.is_set() and not w.closed:
                head = read_head(reader)
                if head is None:
                    break
                start, headers = head
                parts = start.split(" ")
                if len(parts) != 3:
                    raise ProtocolError("bad request line %r" % start)
                req = Request(parts[0], parts[1], parts[2], headers, conn_id, index)
                index += 1
                self._read_body(req, reader, w)
                with self.lock:
                    self.requests.append(req)
                    self.counts[req.path] = self.counts.get(req.path, 0) + 1
                    self.inflight += 1
                    self.peak_inflight = max(self.peak_inflight, self.inflight)
                    handler = self.routes.get(req.path, not_found)
                    self.lock.notify_all()
                try:
                    handler(req, w)
                finally:
                    with self.lock:
                        self.inflight -= 1
                        self.lock.notify_all()
                if w.close_after or req.wants_close():
                    break
        except (OSError, ProtocolError, ValueError) as e:
            if not self.stopping.is_set() and not w.closed:
                with self.lock:
                    self.handler_errors.append(repr(e))
        finally:
            w.close()
            with self.lock:
                self._socks.discard(sock)

    def _read_body(self, req, reader, w):
        te = ",".join(req.header_all("transfer-encoding")).lower()
        cl = req.header("content-length")
        expect = (req.header("expect") or "").lower()
        has_body = "chunked" in te or (cl is not None and int(cl) > 0)
        if expect == "100-continue" and has_body:
            w.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in te:
            req.framing = "chunked"
            req.body, req.trailers = read_chunked(reader)
        elif cl is not None:
            req.framing = "content-length"
            req.body = reader.read_exact(int(cl))

    def stop(self):
        """Release every held handler, close every connection, stop accepting."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)


# -- ready-made handlers ------------------------------------------------------


def not_found(req, w):
    w.send_response(404, "Not Found", [("Content-Type", "text/plain")],
                    b"no route for " + req.path.encode(), head_request=req.method == "HEAD")


def fixed(status=200, reason="OK", headers=None, body=b"", chunked=False, framing=None):
    """A fixed response. framing: content-length (default), chunked, close, none."""
    if headers is None:
        headers = [("Content-Type", "text/plain")]
    if framing is None:
        framing = "chunked" if chunked else "content-length"

    def handler(req, w):
        w.send_response(status, reason, headers, body, framing,
                        head_request=req.method == "HEAD")
    return handler


def echo(status=200, extra_headers=()):
    """Answers with a JSON description of the request as received."""
    def handler(req, w):
        body = json.dumps(req.to_json()).encode()
        w.send_response(status, "OK",
                        [("Content-Type", "application/json"),
                         ("Cache-Control", "no-store")] + list(extra_headers),
                        body, head_request=req.method == "HEAD")
    return handler


def _wait_released(event, origin):
    # Deadline-free wait that still ends when the origin is stopped: wait on the
    # test's event in short slices and look at the stop flag between slices.
    while not event.wait(0.05):
        if origin.stopping.is_set():
            return False
    return True


def hold(event, then=None, head=None, partial=b""):
    """Hold the response until the test sets `event` (the origin's stop also
    releases it). Before waiting, send nothing, or, when `head` is given as
    (status, reason, headers), that head followed by `partial` body bytes.
    After the release, `then(req, w)` sends the rest; without `then` and without
    `head` the answer is a 200 with body "released"."""
    if then is None and head is None:
        then = fixed(body=b"released")

    def handler(req, w):
        if head is not None:
            w.send_head(*head)
            if partial:
                w.send(partial)
        if not _wait_released(event, w.origin):
            return
        if then is not None:
            then(req, w)
    return handler


def stall():
    """Read the request, then send nothing until the origin is stopped."""
    def handler(req, w):
        w.origin.stopping.wait()
    return handler


def reset():
    """Close with a TCP RST before sending any response byte."""
    def handler(req, w):
        w.reset()
    return handler


def garbage(data=b"THIS IS NOT HTTP AT ALL\r\n\r\nreally not\r\n"):
    """Send bytes that are not an HTTP response, then close."""
    def handler(req, w):
        w.send(data)
        w.close()
    return handler


def make_pattern(length=65521):
    """A deterministic byte pattern; its prime length keeps repeats unaligned
    with the buffer sizes of the code under test."""
    out = bytearray()
    i = 0
    while len(out) < length:
        out += hashlib.sha256(b"corral-%d" % i).digest()
        i += 1
    return bytes(out[:length])


def pattern_blocks(size, pattern, reps=16):
    """Yields the body of `big(size, pattern)` in blocks of about reps*len(pattern)."""
    block = pattern * reps
    sent = 0
    while sent < size:
        n = min(len(block), size - sent)
        yield memoryview(block)[:n]
        sent += n


def pattern_sha256(size, pattern):
    h = hashlib.sha256()
    for b in pattern_blocks(size, pattern):
        h.update(b)
    return h.hexdigest()


def big(size, pattern=None, headers=None):
    """A huge body with Content-Length: `size` bytes of `pattern` repeated."""
    if pattern is None:
        pattern = make_pattern()
    if headers is None:
        headers = [("Content-Type", "application/octet-stream"),
                   ("Cache-Control", "no-store")]

    def handler(req, w):
        w.send_head(200, "OK", list(headers) + [("Content-Length", str(size))])
        if req.method == "HEAD":
            return
        for b in pattern_blocks(size, pattern):
            w.send(b)
    return handler


# -- handlers that force an interleaving (cache and coalescing tests) ---------------


def wait_released(event, origin):
    """Wait for a test's Event; False when the origin stopped first."""
    return _wait_released(event, origin)


def staged(body, headers=(), framing="content-length", before_head=None, split=0,
           after_part=None, before_rest=None, end="finish", chunk_size=16384):
    """A response sent in stages, so that a test decides when each stage happens:
      1. wait for the Event `before_head` (None: no wait);
      2. send the head (Content-Length or Transfer-Encoding: chunked is added
         for `framing` "content-length" / "chunked") and the first `split` body
         bytes (one chunk when chunked);
      3. set the Event `after_part` (the first part has been written);
      4. wait for the Event `before_rest`;
      5. `end`: "finish" sends the rest (chunks of `chunk_size` bytes and the
         last chunk when chunked), "close" closes the connection, "reset"
         resets it (RST).
    A HEAD request gets the head only. Stopping the origin releases every wait."""
    headers = list(headers)
    names = {n.lower() for (n, _) in headers}
    if framing == "content-length" and "content-length" not in names:
        headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked" and "transfer-encoding" not in names:
        headers.append(("Transfer-Encoding", "chunked"))

    def send_body(w, data):
        if framing == "chunked":
            for i in range(0, len(data), chunk_size):
                w.send_chunk(data[i:i + chunk_size])
        else:
            w.send(data)

    def handler(req, w):
        if before_head is not None and not _wait_released(before_head, w.origin):
            return
        w.send_head(200, "OK", headers)
        if req.method == "HEAD":
            return
        if split:
            if framing == "chunked":
                w.send_chunk(body[:split])
            else:
                w.send(body[:split])
        if after_part is not None:
            after_part.set()
        if before_rest is not None and not _wait_released(before_rest, w.origin):
            return
        if end == "close":
            w.close()
        elif end == "reset":
            w.reset()
        else:
            send_body(w, body[split:])
            if framing == "chunked":
                w.end_chunks()
            elif framing == "close":
                w.close()
    return handler


def sequence(*handlers):
    """The i-th request on the route is answered by handlers[i]; requests after
    the last handler by the last one."""
    lock = threading.Lock()
    seen = [0]

    def handler(req, w):
        with lock:
            i = seen[0]
            seen[0] += 1
        handlers[min(i, len(handlers) - 1)](req, w)
    return handler


def when(predicate, then, timeout=10):
    """Hold the answer until predicate(origin) is true (e.g. enough requests
    have arrived to prove they are in flight together), at most `timeout`
    seconds; then answer with `then` whatever happened, so that the test sees
    the outcome and can assert on the origin's counters."""
    def handler(req, w):
        w.origin.wait_until(predicate, timeout)
        then(req, w)
    return handler
