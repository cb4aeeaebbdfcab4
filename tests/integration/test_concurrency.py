"""Requests do not wait for one another: a slow upstream holds only its own
client, and independent requests run upstream at the same time (the worker pool
grows). Marked "concurrency": `make tsan-check` runs these under ThreadSanitizer."""

import threading

import pytest

import origin as o
from conftest import RawClient, raw_request
from conftest import absolute_request as request

pytestmark = pytest.mark.concurrency

HDRS = [("Content-Type", "text/plain"), ("Cache-Control", "no-store")]


def test_slow_request_does_not_block_another(corral, origin):
    release = threading.Event()
    origin.route("/slow", o.hold(release, then=o.fixed(body=b"slow", headers=HDRS)))
    origin.route("/fast", o.fixed(body=b"fast", headers=HDRS))
    c = corral()
    with c.client() as slow:
        slow.send(request(origin, "/slow"))
        origin.wait_arrivals("/slow", 1)
        r = raw_request(c.port, request(origin, "/fast"))
        assert (r.status, r.body) == (200, b"fast")
        assert not release.is_set()
        release.set()
        r = slow.read_response()
        assert (r.status, r.body) == (200, b"slow")


def test_independent_requests_go_upstream_in_parallel(corral, origin):
    n = 24
    release = threading.Event()
    for i in range(n):
        origin.route("/par/%d" % i, o.hold(release, then=o.fixed(body=b"p%d" % i,
                                                                 headers=HDRS)))
    c = corral()
    clients = [RawClient(c.port) for _ in range(n)]
    try:
        for i, cl in enumerate(clients):
            cl.send(request(origin, "/par/%d" % i))
        for i in range(n):
            origin.wait_arrivals("/par/%d" % i, 1)
        assert origin.inflight == n
        release.set()
        bodies = [cl.read_response().body for cl in clients]
    finally:
        for cl in clients:
            cl.close()
    assert bodies == [b"p%d" % i for i in range(n)]
    assert origin.peak_inflight == n
