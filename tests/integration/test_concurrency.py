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


@pytest.mark.parametrize("linger", ["0", "300ms"])
def test_idle_keepalive_connection_goes_to_the_waiter(corral, origin, linger):
    # An idle keep-alive connection costs no thread: after keepalive_linger the
    # worker hands it to the session waiter (connections_idle), and the next
    # request on it is served again by a worker.
    from conftest import wait_for
    origin.route("/ka", o.fixed(body=b"again", headers=HDRS))
    c = corral("[proxy]\nkeepalive_linger = %s\n" % linger)
    with c.client() as cl:
        assert cl.request(request(origin, "/ka")).body == b"again"
        wait_for(lambda: c.metrics().get("corral_connections_idle") == 1, 10,
                 "the connection parked in the session waiter")
        m = c.metrics()
        assert m["corral_workers_busy"] == 0, m
        assert cl.request(request(origin, "/ka")).body == b"again"
        wait_for(lambda: c.metrics().get("corral_connections_idle") == 1, 10,
                 "the connection parked again")
    assert origin.count("/ka") == 2


def test_lingering_connections_each_get_their_own_answers(corral, origin):
    # Between requests a keep-alive connection sits in the linger set, and the
    # next request is taken up by whichever worker looks first. 40 connections
    # each ask for their own URLs 25 times, half of them cache hits and half
    # passed upstream: every answer must be the one its connection asked for.
    n, rounds = 40, 25
    for i in range(n):
        origin.route("/own/%d" % i, o.fixed(body=b"own %d" % i, headers=HDRS))
        origin.route("/hit/%d" % i, o.fixed(body=b"hit %d" % i,
                                            headers=[("Content-Type", "text/plain"),
                                                     ("Cache-Control", "max-age=600")]))
    c = corral("[proxy]\nkeepalive_linger = 5s\n")
    start = threading.Barrier(n)
    wrong = []

    def run(i):
        with c.client() as cl:
            start.wait(timeout=30)
            for k in range(rounds):
                path = "/own/%d" % i if k % 2 else "/hit/%d" % i
                r = cl.request(request(origin, path))
                want = (b"own %d" if k % 2 else b"hit %d") % i
                if (r.status, r.body) != (200, want):
                    wrong.append((i, k, r.status, r.body[:40]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a client never got all its answers"
    assert wrong == []
    assert origin.count() == n * (rounds // 2) + n  # the passes, and one fetch per /hit
    m = c.metrics()
    assert m["corral_cache_hits_total"] == n * (rounds - rounds // 2 - 1), m


def test_worker_blocked_upstream_does_not_hold_lingering_connections(corral, origin):
    # Two keep-alive connections linger in the set; the worker that takes up
    # A's next request blocks on a held upstream. B's next request must still
    # be answered — by the worker polling the set, or by the watchman that
    # notices nobody takes sessions up — while A is held.
    release = threading.Event()
    origin.route("/slow", o.hold(release, then=o.fixed(body=b"slow", headers=HDRS)))
    origin.route("/warm", o.fixed(body=b"warm", headers=[("Content-Type", "text/plain"),
                                                         ("Cache-Control", "max-age=600")]))
    c = corral("[proxy]\nkeepalive_linger = 10s\n")
    with c.client() as a, c.client() as b:
        assert a.request(request(origin, "/warm")).body == b"warm"
        assert b.request(request(origin, "/warm")).body == b"warm"
        a.send(request(origin, "/slow"))
        origin.wait_arrivals("/slow", 1)
        for _ in range(3):
            r = b.request(request(origin, "/warm"))
            assert (r.status, r.body) == (200, b"warm")
        assert not release.is_set() and origin.inflight == 1
        release.set()
        r = a.read_response()
        assert (r.status, r.body) == (200, b"slow")
        assert a.request(request(origin, "/warm")).body == b"warm"
    assert origin.count("/warm") == 1
