"""Bad input gets a clear answer and harms nothing: malformed and oversized requests,
refused clients and destinations, and every way an upstream can fail. Each error
response is text that says why, and the daemon goes on serving afterwards."""

import socket
import time

import pytest

import origin as o
from conftest import (SANITIZE, SCALE, RawClient, assert_serves, free_port, raw_request,
                      wait_for)
from conftest import absolute_request as request


def assert_error(r, status, *words):
    """Status, a text body, and (when given) one of `words` in it (any case)."""
    assert r.status == status, r
    ct = (r.header("content-type") or "").lower()
    assert ct.startswith("text/plain") or ct.startswith("text/html"), \
        "error %d with Content-Type %r" % (status, ct)
    assert r.body.strip(), "error %d with an empty body" % status
    if words:
        text = r.text().lower()
        assert any(w.lower() in text for w in words), \
            "error %d body should mention %s: %r" % (status, " or ".join(words), r.body)


# -- malformed requests ---------------------------------------------------------------------


@pytest.mark.parametrize("data, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nthis is not a header\r\n\r\n",
     400),
    (b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nBad Name: x\r\n\r\n", 400),
    # RFC 9112 3.2: Host present in HTTP/1.1, once, and valid
    (b"GET http://127.0.0.1:1/x HTTP/1.1\r\nX: y\r\n\r\n", 400),
    (b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", 400),
    (b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: a b@c\r\n\r\n", 400),
    # RFC 9112 6.1: a transfer coding corral would pass on undecoded
    (b"POST http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"
     b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501),
], ids=["request-line", "header-no-colon", "header-name-space", "no-host", "two-hosts",
        "bad-host", "te-gzip"])
def test_malformed_request_gets_400_and_close(corral, origin, data, status):
    c = corral()
    with c.client() as cl:
        cl.send(data)
        r = cl.read_response()
        assert_error(r, status)
        assert cl.wait_closed() == "eof", "the connection must be closed after a 400"
    assert origin.count() == 0
    assert_serves(c, origin)


def test_origin_form_request_gets_400_mentioning_proxy(corral, origin):
    origin.route("/", o.fixed(body=b"must not be reached"))
    c = corral()
    r = raw_request(c.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % origin.port)
    assert_error(r, 400, "proxy")
    assert origin.count() == 0
    assert_serves(c, origin)


# -- refused clients --------------------------------------------------------------------------


def test_client_not_in_allow_gets_403(corral, origin):
    origin.route("/x", o.fixed(body=b"must not be reached"))
    c = corral("[proxy]\nallow = 10.0.0.0/8\n")
    for _ in range(2):
        r = raw_request(c.port, request(origin, "/x"))
        assert_error(r, 403)
    assert origin.count() == 0
    assert c.alive()


def test_client_in_allow_is_served(corral, origin):
    c = corral("[proxy]\nallow = 10.0.0.0/8, 127.0.0.0/8\n")
    assert_serves(c, origin)


# -- oversized requests -------------------------------------------------------------------------


@pytest.mark.parametrize("ini,under,over", [("", 7000, 9000),
                                             ("[proxy]\nmax_url = 1K\n", 800, 1500)],
                         ids=["default-8K", "1K"])
def test_url_too_long_gets_414(corral, origin, ini, under, over):
    origin.route("/long", o.echo())
    c = corral(ini)
    r = raw_request(c.port, request(origin, "/long?" + "q" * under))
    assert r.status == 200, "a URL of %d bytes is within the limit: %r" % (under, r)
    with c.client() as cl:
        cl.send_background(request(origin, "/long?" + "q" * over))
        assert_error(cl.read_response(), 414)
    assert origin.count("/long") == 1
    assert_serves(c, origin)


def pad_headers(total):
    n = total // 1000 + 1
    return [("X-Pad-%d" % i, "p" * 985) for i in range(n)]


def test_header_section_too_large_gets_431(corral, origin):
    origin.route("/hdr", o.echo())
    c = corral()  # default max_request_header = 64K
    r = raw_request(c.port, request(origin, "/hdr", headers=pad_headers(40_000)))
    assert r.status == 200, "40K of headers is within the default limit: %r" % r
    with c.client() as cl:
        cl.send_background(request(origin, "/hdr", headers=pad_headers(70_000)))
        assert_error(cl.read_response(), 431)
    assert origin.count("/hdr") == 1
    assert_serves(c, origin)


def test_header_limit_configurable(corral, origin):
    origin.route("/hdr", o.echo())
    c = corral("[proxy]\nmax_request_header = 8K\n")
    with c.client() as cl:
        cl.send_background(request(origin, "/hdr", headers=pad_headers(10_000)))
        assert_error(cl.read_response(), 431)
    assert origin.count("/hdr") == 0
    assert_serves(c, origin)


def test_request_body_over_limit_gets_413(corral, origin):
    origin.route("/up", o.echo())
    c = corral("[proxy]\nmax_request_body = 1M\n")
    body = b"b" * 500_000
    r = raw_request(c.port, request(origin, "/up", "POST",
                                    [("Content-Length", str(len(body)))], body))
    assert r.status == 200 and r.json()["body_length"] == len(body), r
    with c.client() as cl:
        # only the head: the declared length alone is enough to refuse it
        cl.send(request(origin, "/up", "POST", [("Content-Length", str(2 << 20))]))
        assert_error(cl.read_response("POST"), 413)
    assert origin.count("/up") == 1
    assert_serves(c, origin)


def test_413_reaches_a_client_still_sending_its_body(corral, origin):
    # corral answers 413 from the declared length; closing with the body
    # unread reset the connection under the client, whose send then failed
    c = corral("[proxy]\nmax_request_body = 1M\n")
    body = b"b" * (3 << 20)
    with c.client() as cl:
        sender = cl.send_background(request(origin, "/up", "POST",
                                            [("Content-Length", str(len(body)))]) + body)
        assert_error(cl.read_response("POST"), 413, "max_request_body")
        sender.join(30 * SCALE)
        assert not sender.is_alive()
        assert cl.wait_closed() == "eof"
    assert origin.count("/up") == 0


def test_connect_timeout_is_504(corral, origin):
    # a listener whose accept queue is full leaves new SYNs unanswered: the
    # connect never completes, and [upstream] connect_timeout ends it
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        while len(fillers) < 16:  # until a connect of ours hangs: the queue is full
            f = socket.socket()
            f.settimeout(0.5)
            try:
                f.connect(("127.0.0.1", port))
            except socket.timeout:
                f.close()
                break
            fillers.append(f)
        assert len(fillers) < 16, "the listener never stopped completing connects"
        c = corral("[upstream]\nconnect_timeout = 1s\n")
        r = raw_request(c.port, "GET http://127.0.0.1:%d/x HTTP/1.1\r\n"
                        "Host: 127.0.0.1:%d\r\n\r\n" % (port, port))
        assert_error(r, 504, "timeout")
        assert c.metrics()["corral_upstream_timeouts_total"] == 1
    finally:
        for f in fillers:
            f.close()
        lst.close()


def test_max_connections(corral, origin):
    # over max_connections a new connection is closed at once, and counted;
    # once one closes, the next is served
    origin.route("/mc", o.fixed(body=b"mc", headers=[("Cache-Control", "no-store")]))
    c = corral("[proxy]\nmax_connections = 2\n")
    # (the fixture's readiness probe was a connection too)
    wait_for(lambda: c.metrics()["corral_connections_active"] == 0, timeout=10,
             what="the readiness probe's connection to be counted out")
    first, second = RawClient(c.port), RawClient(c.port)
    for cl in (first, second):
        assert cl.request(request(origin, "/mc")).status == 200
    with RawClient(c.port) as third:
        assert third.wait_closed() in ("eof", "reset")
    m = c.metrics()
    assert m["corral_connections_rejected_total"] == 1, m
    first.close()
    wait_for(lambda: c.metrics()["corral_connections_active"] == 1, timeout=10,
             what="the closed connection to be counted out")
    with RawClient(c.port) as fourth:
        assert fourth.request(request(origin, "/mc")).status == 200
    second.close()
    assert c.metrics()["corral_connections_rejected_total"] == 1


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def test_chunked_request_body_under_limit_is_forwarded(corral, origin):
    origin.route("/up", o.echo())
    c = corral("[proxy]\nmax_request_body = 4K\n")
    body = b"c" * 3000
    r = raw_request(c.port, request(origin, "/up", "POST", [("Transfer-Encoding", "chunked")],
                                    chunk(body[:1500]) + chunk(body[1500:]) + b"0\r\n\r\n"))
    assert r.status == 200, r
    assert (r.json()["framing"], r.json()["body_length"]) == ("chunked", len(body))


def test_chunked_request_body_over_limit_gets_413(corral, origin):
    """A chunked body has no length up front: the limit is crossed mid-upload, after
    the request went upstream. Before the response head, that is still a 413."""
    origin.route("/up", o.echo())
    c = corral("[proxy]\nmax_request_body = 4K\n")
    with c.client() as cl:
        # the whole body, last chunk included: only corral can keep it from the origin
        cl.send_background(request(origin, "/up", "POST", [("Transfer-Encoding", "chunked")],
                                   b"".join(chunk(b"d" * 1000) for _ in range(10))
                                   + b"0\r\n\r\n"))
        assert_error(cl.read_response("POST"), 413, "max_request_body")
        assert cl.wait_closed() in ("eof", "reset"), "the connection must close after a 413"
    # The origin may have received the head and part of the body (the upload
    # had started), but never the last chunk: no complete request reaches it.
    # (origin._socks: the origin's open connections; it records a request only
    # once its body is complete.)
    assert origin.wait_until(lambda og: og.connections >= 1 and not og._socks,
                             what="the upstream connection to close"), \
        "corral kept the upstream connection of the refused upload open"
    assert origin.count("/up") == 0, "the origin got the whole over-limit body"
    f = c.wait_log_lines(1)[0].split()
    assert f[3] == "TCP_MISS/413", f
    assert c.metrics()["corral_requests_too_large_total"] == 1
    assert_serves(c, origin)


# -- header timeout ---------------------------------------------------------------------------------


def test_partial_head_past_header_timeout_gets_408(corral, origin):
    c = corral("[proxy]\nheader_timeout = 500ms\n")
    with c.client() as cl:
        start = time.monotonic()
        cl.send(b"GET http://x/ HTTP/1.1\r\n")   # and nothing more
        r = cl.read_response()
        waited = time.monotonic() - start
        assert_error(r, 408, "header_timeout")
        assert "close" in (r.header("connection") or "").lower(), r.headers
        assert cl.wait_closed() == "eof", "the connection must be closed after a 408"
    assert waited >= 0.4, "408 after %.2fs, before the 500ms header_timeout" % waited
    f = c.wait_log_lines(1)[0].split()
    assert f[3].endswith("/408"), f
    assert wait_for(lambda: c.metrics()["corral_client_timeouts_total"] == 1,
                    what="client_timeouts_total to count the 408")
    assert wait_for(lambda: "408 the request head did not arrive" in c.stderr_text(),
                    what="the 408 in the error log")
    assert_serves(c, origin)


def test_idle_keep_alive_connection_closes_silently(corral, origin):
    """Only a partial head gets a 408: a kept-alive connection that sends nothing
    more is just closed (after client_timeout), with no answer and no log line."""
    origin.route("/k", o.fixed(body=b"k", headers=[("Cache-Control", "no-store")]))
    c = corral("[proxy]\nheader_timeout = 500ms\nclient_timeout = 1s\n")
    with c.client() as cl:
        assert cl.request(request(origin, "/k")).status == 200
        assert cl.wait_closed() == "eof", "an idle keep-alive connection gets no answer"
    assert len(c.wait_log_lines(1)) == 1, c.access_log_lines()
    assert c.metrics()["corral_client_timeouts_total"] == 1
    assert_serves(c, origin)
    assert len(c.wait_log_lines(2)) == 2, c.access_log_lines()


# -- upstream failures ---------------------------------------------------------------------------


def test_origin_refused_gets_502(corral, origin):
    c = corral()
    port = free_port()  # nothing listens there
    r = raw_request(c.port, "GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                    % (port, port))
    assert_error(r, 502, "refused")
    assert_serves(c, origin)


def test_unknown_host_gets_502(corral, origin):
    c = corral()
    r = raw_request(c.port, "GET http://nonexistent.invalid/ HTTP/1.1\r\n"
                            "Host: nonexistent.invalid\r\n\r\n")
    assert_error(r, 502, "dns", "resolve")
    assert_serves(c, origin)


def test_origin_reset_gets_502(corral, origin):
    origin.route("/reset", o.reset())
    c = corral()
    r = raw_request(c.port, request(origin, "/reset"))
    assert_error(r, 502, "reset")
    assert origin.count("/reset") >= 1
    assert_serves(c, origin)


def test_origin_garbage_gets_502(corral, origin):
    origin.route("/garbage", o.garbage())
    c = corral()
    r = raw_request(c.port, request(origin, "/garbage"))
    assert_error(r, 502, "bad response", "invalid")
    assert_serves(c, origin)


def test_origin_stall_gets_504(corral, origin):
    origin.route("/stall", o.stall())
    c = corral("[upstream]\ntimeout = 1s\n")
    start = time.monotonic()
    r = raw_request(c.port, request(origin, "/stall"))
    elapsed = time.monotonic() - start
    assert_error(r, 504)
    assert elapsed >= 0.9, "504 after %.2fs, before the 1s upstream timeout" % elapsed
    assert elapsed < 8 * SCALE, "504 took %.2fs with a 1s upstream timeout" % elapsed
    origin.wait_arrivals("/stall", 1)
    assert_serves(c, origin)


def _truncating_origin(origin, path, framing, how):
    """The origin sends a head and 100 body bytes of 1000, then either stalls
    (how="stall") or closes the connection (how="close")."""
    hdrs = [("Content-Type", "application/octet-stream"), ("Cache-Control", "no-store")]
    if framing == "content-length":
        hdrs.append(("Content-Length", "1000"))
        partial = b"a" * 100
    else:
        hdrs.append(("Transfer-Encoding", "chunked"))
        partial = b"64\r\n" + b"a" * 100 + b"\r\n"

    def handler(req, w):
        w.send_head(200, "OK", hdrs)
        w.send(partial)
        if how == "close":
            w.close()
        else:
            w.origin.stopping.wait()
    origin.route(path, handler)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("how", ["stall", "close"])
def test_upstream_failure_mid_body_is_visibly_truncated(corral, origin, framing, how):
    """Never a short body that looks complete: the client connection is closed
    before the declared length, or without the last chunk."""
    _truncating_origin(origin, "/half", framing, how)
    c = corral("[upstream]\ntimeout = 1s\n")
    with c.client() as cl:
        cl.send(request(origin, "/half"))
        r = cl.read_response(stream=True)
        assert r.status == 200, r
        start = time.monotonic()
        rest = cl.reader.read_until_eof()  # deadline: the socket timeout
        waited = time.monotonic() - start
    if how == "stall":
        # [upstream] timeout = 1s means 1s without progress, also in the body
        # (a wall-clock timer: not scaled by the sanitizer slowdown beyond slack)
        bound = 3.0 + (1.5 if SANITIZE else 0)
        assert waited < bound, \
            "the stalled body was cut %.2fs after its last byte, timeout = 1s" % waited
    if r.header("content-length") is not None:
        assert r.header("content-length") == "1000"
        assert len(rest) < 1000 and rest == b"a" * len(rest)
    else:
        assert "chunked" in (r.header("transfer-encoding") or "").lower(), r.headers
        assert not rest.endswith(b"0\r\n\r\n"), "a truncated body ended with the last chunk"
        assert rest.count(b"a") <= 100
    assert_serves(c, origin)


@pytest.mark.parametrize("passed", [False, True], ids=["cached", "passed"])
def test_trailers_without_end_are_cut_at_the_upstream_timeout(corral, origin, passed):
    # After the last chunk, trailer lines that keep coming are not progress:
    # the body is in, and the stall timer ends the fetch ([upstream] timeout)
    # as libcurl's own decoding does for a pass. Before, a cache fetch counted
    # them and held the client, and every waiter, for as long as the origin
    # trickled (found by review).
    def handler(req, w):
        w.send_head(200, "OK", [("Cache-Control", "max-age=60"), ("Transfer-Encoding", "chunked")])
        w.send(b"5\r\nhello\r\n0\r\n")
        while not w.origin.stopping.wait(0.05):
            try:
                w.send(b"X-T: " + b"a" * 64 + b"\r\n")
            except OSError:
                return
    origin.route("/trail", handler)
    c = corral("[upstream]\ntimeout = 1s\n")
    headers = [("Cache-Control", "no-store")] if passed else []
    for attempt in (1, 2):
        with c.client() as cl:
            cl.send(request(origin, "/trail", headers=headers))
            r = cl.read_response(stream=True)
            assert r.status == 200, r
            rest = cl.reader.read_until_eof()  # deadline: the socket timeout
        assert b"hello" in rest and not rest.endswith(b"0\r\n\r\n"), rest
        assert origin.count("/trail") == attempt  # nothing was stored
    assert c.alive()


# -- refused destinations -----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "169.254.169.254"])
def test_loopback_and_link_local_destinations_refused(corral, origin, host):
    origin.route("/x", o.fixed(body=b"must not be reached"))
    c = corral("[upstream]\nallow_loopback = off\n")
    host = host.format(port=origin.port)
    r = raw_request(c.port, "GET http://%s/x HTTP/1.1\r\nHost: %s\r\n\r\n" % (host, host))
    assert_error(r, 403, "destination")
    assert origin.connections == 0
    assert c.alive()
    assert " TCP_DENIED/403 " in c.wait_log_lines(1)[0]
    m = c.metrics()
    assert m["corral_requests_destination_denied_total"] == 1, m
    assert m["corral_upstream_errors_total"] == 0, m


@pytest.mark.parametrize("target", ["127.0.0.1:443", "127.0.0.1:{port}"])
def test_connect_to_loopback_refused(corral, origin, target):
    # port 443 passes the connect_ports check whatever its value: the refusal
    # must come from the destination check
    c = corral("[upstream]\nallow_loopback = off\n")
    target = target.format(port=origin.port)
    r = raw_request(c.port, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target),
                    "CONNECT")
    assert_error(r, 403, "destination")
    assert origin.connections == 0
    assert c.alive()


def test_http_ports_limit_where_requests_go(corral, origin):
    # Squid's Safe_ports: by default not port 25 and the like, where a POST
    # body would be read as another protocol's commands (found by review)
    origin.route("/x", o.fixed(body=b"reached"))
    c = corral()
    r = raw_request(c.port, request(origin, "/x"))
    assert r.status == 200 and r.body == b"reached", r  # 1025-65535: allowed
    for port in (25, 22, 1024):
        r = raw_request(c.port, "POST http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n"
                        "Content-Length: 4\r\n\r\nQUIT" % port)
        assert_error(r, 403, "port %d" % port, "http_ports")
    c.stop()
    c = corral("[proxy]\nhttp_ports = 80, 443\n")
    r = raw_request(c.port, request(origin, "/x"))
    assert_error(r, 403, "http_ports")
    assert origin.connections == 1  # the first corral's request only
    assert " TCP_DENIED/403 " in c.wait_log_lines(1)[0]
    assert c.metrics()["corral_requests_destination_denied_total"] == 1


def own_ipv4_address():
    """An IPv4 address of one of this host's interfaces other than loopback
    (SIOCGIFADDR), or None."""
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address
            addr = socket.inet_ntoa(raw[20:24])
            if not addr.startswith("127."):
                return addr
    return None


@pytest.mark.parametrize("how", ["GET", "CONNECT"])
def test_this_hosts_own_addresses_are_refused_too(corral, origin, how):
    # allow_loopback = off protects services on the proxy's own host: also
    # those listening on its other interfaces (found by review: a service on
    # 0.0.0.0 was reached through http://<eth0 address>:port/)
    addr = own_ipv4_address()
    if addr is None:
        pytest.skip("this machine has no IPv4 address but loopback")
    own = o.Origin(host=addr)
    try:
        own.route("/x", o.fixed(body=b"a local-only page"))
        target = "%s:%d" % (addr, own.port)
        if how == "GET":
            req = "GET http://%s/x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
        else:
            req = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
        for allow in ("off", "on"):
            c = corral("[upstream]\nallow_loopback = %s\n[proxy]\nconnect_ports = *\n" % allow)
            r = raw_request(c.port, req % (target, target), how)
            if allow == "off":
                assert_error(r, 403, "destination")
                assert own.connections == 0
            else:  # the address is reachable: the refusal above was the filter's
                assert r.status == 200, r
                if how == "GET":
                    assert r.body == b"a local-only page"
                assert wait_for(lambda: own.connections == 1, what="the connection")
            c.stop()
    finally:
        own.stop()


# -- response heads corral refuses or mends ---------------------------------------------

RAW_HEADS = {
    # RFC 9112 5.1: libcurl reads "Content-Length :" as no length at all, so
    # a client that read it as one would frame the body otherwise
    "space-before-colon-te": (b"Transfer-Encoding : chunked\r\nContent-Length: 2\r\n", b"hi",
                              "not a token"),
    "space-before-colon-cl": (b"Content-Length : 2\r\n", b"hi-and-more", "not a token"),
    "tab-before-colon": (b"Content-Length\t: 2\r\n", b"hi", "not a token"),
    "name-with-space": (b"X Foo: bar\r\nContent-Length: 2\r\n", b"hi", "not a token"),
    # RFC 9112 6.3: an invalid length is an unrecoverable error
    "length-overflows": (b"Content-Length: 99999999999999999999999\r\n", b"hi",
                         "invalid content-length"),
    "length-not-digits": (b"Content-Length: 2x\r\n", b"hi", "invalid content-length"),
    "length-signed": (b"Content-Length: +2\r\n", b"hi", "invalid content-length"),
    "too-many-options": (b"Connection: " + b", ".join(b"x-%d" % i for i in range(40)) +
                         b"\r\nContent-Length: 2\r\n", b"hi", "connection options"),
    # 20,000 fields: over 64 KiB (and each one checked against every other
    # took corral seconds of CPU)
    "head-over-64k": (b"".join(b"a%d: 1\r\n" % i for i in range(20000)) +
                      b"Content-Length: 2\r\n", b"hi", "64 kib"),
}


@pytest.mark.parametrize("passed", [False, True], ids=["cached", "passed"])
@pytest.mark.parametrize("case", sorted(RAW_HEADS))
def test_origin_heads_that_cannot_be_passed_on_get_502(corral, origin, case, passed):
    fields, body, why = RAW_HEADS[case]

    def handler(req, w):
        w.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n" + fields + b"\r\n" + body)
        w.close()
    origin.route("/head", handler)
    c = corral()
    headers = [("Connection", "close")] + ([("Cache-Control", "no-store")] if passed else [])
    for attempt in (1, 2):  # nothing was stored
        r = raw_request(c.port, request(origin, "/head", headers=headers))
        assert_error(r, 502, why)
        assert origin.count("/head") == attempt
    assert_serves(c, origin)


# RFC 9112 4: status-code is 3DIGIT; RFC 9110 15: values outside 100..599
# are invalid. corral reads the status from the line itself, so what libcurl
# lets through must not reach a client as "HTTP/1.1 2000" or "HTTP/1.1 0".
BAD_STATUS_LINES = {
    "four-digits": b"HTTP/1.1 2000 OK",
    "two-digits": b"HTTP/1.1 20 OK",
    "below-100": b"HTTP/1.1 099 Odd",
    "above-599": b"HTTP/1.1 600 Odd",
    "999": b"HTTP/1.1 999 Odd",
    "letters": b"HTTP/1.1 abc OK",
    # libcurl 7.88 reads a lower-case name; RFC 9112 2.3's is "HTTP", case
    # sensitive: the 502 said "upstream failure: No error" (review)
    "lower-case": b"http/1.1 200 OK",
}


@pytest.mark.parametrize("passed", [False, True], ids=["cached", "passed"])
@pytest.mark.parametrize("case", sorted(BAD_STATUS_LINES))
def test_origin_status_lines_without_a_valid_code_get_502(corral, origin, case, passed):
    def handler(req, w):
        w.send(BAD_STATUS_LINES[case] + b"\r\nCache-Control: max-age=60\r\n"
               b"Content-Length: 2\r\n\r\nhi")
        w.close()
    origin.route("/status", handler)
    c = corral()
    headers = [("Connection", "close")] + ([("Cache-Control", "no-store")] if passed else [])
    r = raw_request(c.port, request(origin, "/status", headers=headers))
    assert_error(r, 502, "status")  # libcurl's refusal, or corral's "no valid status code"
    assert "No error" not in r.text(), r.body
    assert origin.count("/status") == 1
    assert_serves(c, origin)


@pytest.mark.parametrize("passed", [False, True], ids=["cached", "passed"])
def test_status_line_inside_a_head_cannot_split_the_response(corral, origin, passed):
    # libcurl reads "HTTP/1.1 200: x" inside a head as a field and frames the
    # body by the chunked coding before it; had corral begun a new head
    # there, it would have relayed "Content-Length: 2", and the rest of the
    # chunk ("HTTP/1.1 200 OK ... evil") would have answered the client's
    # next request on that connection
    def handler(req, w):
        w.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nHTTP/1.1 200: x\r\n"
               b"Content-Length: 2\r\nCache-Control: max-age=60\r\n\r\n"
               b"2c\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil\r\n0\r\n\r\n")
    origin.route("/split", handler)
    c = corral()
    headers = [("Cache-Control", "no-store")] if passed else []
    with RawClient(c.port) as cl:
        cl.send(request(origin, "/split", headers=headers) +
                request(origin, "/next", headers=[("Connection", "close")]))
        raw = cl.reader.read_until_eof()
    assert raw.startswith(b"HTTP/1.1 502 "), raw[:200]
    assert b"evil" not in raw, raw
    assert raw.count(b"HTTP/1.1 ") == 1, raw  # closed after the 502
    assert_serves(c, origin)


@pytest.mark.parametrize("line, status, reason", [
    (b"HTTP/1.1 200", 200, "OK"),             # no reason, no space: RFC 9112 4 allows it
    (b"HTTP/1.1 299 Custom", 299, "Custom"),  # unknown codes pass as they are
    (b"HTTP/1.0 404 ", 404, "Not Found"),
    (b"HTTP/1.1 200OK", 200, "OK"),           # no SP after the code: libcurl reads 200 too
    (b"HTTP/1.1  201 Made", 201, "Made"),     # two SPs before it: so does libcurl
])
def test_origin_status_lines_that_pass(corral, origin, line, status, reason):
    def handler(req, w):
        w.send(line + b"\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nhi")
        w.close()
    origin.route("/ok-status", handler)
    c = corral()
    r = raw_request(c.port, request(origin, "/ok-status", headers=[("Connection", "close")]))
    assert (r.status, r.reason) == (status, reason), r
    assert r.body == b"hi"


@pytest.mark.parametrize("passed", [False, True], ids=["cached", "passed"])
def test_control_characters_in_origin_fields_become_spaces(corral, origin, passed):
    # RFC 9112 2.2: a bare CR is invalid or a space; a client that ends lines
    # at CR would otherwise see an injected field
    def handler(req, w):
        w.send(b"HTTP/1.1 200 O\x01K\rX-Inj: 1\r\nCache-Control: max-age=60\r\n"
               b"X-A: one\rX-Injected: yes\r\nX-B: a\x0bb\x1bc\td\r\nContent-Length: 2\r\n\r\nhi")
    origin.route("/ctl", handler)
    c = corral()
    headers = [("Connection", "close")] + ([("Cache-Control", "no-store")] if passed else [])
    data = request(origin, "/ctl", headers=headers)
    with RawClient(c.port) as cl:
        cl.send(data)
        raw = cl.reader.read_until_eof()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r" not in head.replace(b"\r\n", b""), head
    assert not any(ch in head for ch in (b"\x01", b"\x0b", b"\x1b")), head
    assert b"X-A: one X-Injected: yes\r\n" in head, head
    assert b"X-B: a b c\td\r\n" in head, head
    assert not any(l.lower().startswith(b"x-injected") or l.lower().startswith(b"x-inj:")
                   for l in head.split(b"\r\n")), head
    assert raw.endswith(b"hi"), raw[-20:]


def test_interim_heads_keep_their_fields_and_204_has_no_length(corral, origin):
    # RFC 9110 15.2: a proxy forwards 1xx (a 103 without its Link is
    # useless); RFC 9110 8.6: no Content-Length in a 204
    def early(req, w):
        w.send(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok")

    def empty(req, w):
        w.send(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
    origin.route("/103", early)
    origin.route("/204", empty)
    c = corral()
    nostore = [("Cache-Control", "no-store"), ("Connection", "close")]
    with RawClient(c.port) as cl:
        cl.send(request(origin, "/103", headers=nostore))
        raw = cl.reader.read_until_eof()
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\n"), raw[:80]
    interim = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nLink: </s.css>; rel=preload" in interim, interim
    assert raw.endswith(b"ok")
    r = raw_request(c.port, request(origin, "/204", headers=nostore))
    assert r.status == 204 and r.header("content-length") is None, r


def test_long_request_fields_are_forwarded_whole(corral, origin):
    # max_request_header is 64 KiB by default: a 60,000-byte cookie under it
    # reaches the origin whole (a line buffer cut it to 8 KiB)
    origin.route("/long", o.fixed(headers=[("Cache-Control", "no-store")], body=b"ok"))
    c = corral()
    cookie = "k=" + "v" * 60000
    r = raw_request(c.port, request(origin, "/long", headers=[("Cookie", cookie),
                                                              ("X-After", "yes")]))
    assert r.status == 200, r
    got = origin.last("/long")
    assert got.header("cookie") == cookie, len(got.header("cookie") or "")
    assert got.header("x-after") == "yes"


def test_http10_with_transfer_encoding_is_served_then_closed(corral, origin):
    # RFC 9112 6.1: HTTP/1.0 with Transfer-Encoding: faulty framing; serve it
    # and close, so that nothing after it is read as a request (smuggling);
    # and no 100 Continue to an HTTP/1.0 client (RFC 9110 10.1.1)
    origin.route("/te10", o.echo())
    c = corral()
    with c.client() as cl:
        cl.send(b"POST %s/te10 HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                b"GET %s/smuggled HTTP/1.0\r\n\r\n" % (origin.url.encode(), origin.url.encode()))
        r = cl.read_response()
        assert r.status == 200, r
        assert cl.wait_closed() == "eof"
    assert origin.count("/smuggled") == 0


def test_many_request_fields_are_filtered_by_connection(corral, origin):
    # 6,000 fields within max_request_header, and a Connection line naming
    # one: it is dropped, all the others go on. (Each field used to be
    # checked against every other: 0.6 s of CPU for 13,000; tests assert no
    # times, bench/README.md has the measurement.)
    origin.route("/many", o.fixed(headers=[("Cache-Control", "no-store")], body=b"ok"))
    c = corral()
    fields = [("a%d" % i, "") for i in range(6000)] + [("Connection", "a5"), ("X-Last", "1")]
    r = raw_request(c.port, request(origin, "/many", headers=fields))
    assert r.status == 200, r
    got = origin.last("/many")
    names = {n.lower() for n, v in got.headers}
    assert "a5" not in names and "a5999" in names and "x-last" in names, len(names)


@pytest.mark.parametrize("passed", [False, True], ids=["cached", "passed"])
def test_origin_switching_protocols_is_a_502_that_says_so(corral, origin, passed):
    # corral drops Upgrade from requests and relays no upgrade; libcurl then
    # waited for a final head and said "closed without a response"
    def handler(req, w):
        w.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\n\r\n")
        w.close()
    origin.route("/up", handler)
    c = corral()
    headers = [("Connection", "close")] + ([("Cache-Control", "no-store")] if passed else [])
    r = raw_request(c.port, request(origin, "/up", headers=headers))
    assert_error(r, 502, "switched protocols (101)")
    assert_serves(c, origin)
