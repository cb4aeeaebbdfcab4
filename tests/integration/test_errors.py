"""Bad input gets a clear answer and harms nothing: malformed and oversized requests,
refused clients and destinations, and every way an upstream can fail. Each error
response is text that says why, and the daemon goes on serving afterwards."""

import time

import pytest

import origin as o
from conftest import SANITIZE, SCALE, assert_serves, free_port, raw_request, wait_for
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


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nthis is not a header\r\n\r\n",
    b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\nBad Name: x\r\n\r\n",
], ids=["request-line", "header-no-colon", "header-name-space"])
def test_malformed_request_gets_400_and_close(corral, origin, data):
    c = corral()
    with c.client() as cl:
        cl.send(data)
        r = cl.read_response()
        assert_error(r, 400)
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
