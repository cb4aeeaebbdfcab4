"""Proxy authentication: [proxy] auth_file (an htpasswd file), HTTP Basic.

A request without credentials that match the file gets 407 with a
Proxy-Authenticate challenge and is logged TCP_DENIED/407; one with them is
served as usual, logged with its user, and the origin never sees the
credentials. CONNECT is held to the same rule. A reload reads the file again.
A file corrald cannot use stops it at start with the file, line and why.
"""
import base64
import signal
import subprocess
import threading
import warnings

import pytest

import origin as o
from conftest import CORRALD, SCALE, RawClient, clean_env, raw_request, wait_for
from conftest import absolute_request as request


def sha512_crypt(password):
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                         stdout=subprocess.PIPE, check=True)
    return out.stdout.decode().strip()


def bcrypt(password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # libxcrypt's, as corrald's; removed from Python 3.13
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5))


def basic(user, password):
    return ("Proxy-Authorization",
            "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode())


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users.htpasswd"
    path.write_text("# corral users\nalice:%s\nbob:%s\n" % (bcrypt("wonder land"),
                                                           sha512_crypt("b0b:pw")))
    return path


def test_requests_need_credentials(corral, origin, users):
    origin.route("/a", o.fixed(body=b"ok", headers=[("Cache-Control", "max-age=60")]))
    c = corral("[proxy]\nauth_file = %s\nauth_realm = Office proxy\n" % users)
    r = raw_request(c.port, request(origin, "/a"))
    assert r.status == 407, r
    assert r.header("proxy-authenticate") == 'Basic realm="Office proxy", charset="UTF-8"'
    assert origin.count("/a") == 0
    for creds in (basic("alice", "wonderland"), basic("carol", "wonder land"),
                  ("Proxy-Authorization", "Bearer abc"), basic("alice", "")):
        r = raw_request(c.port, request(origin, "/a", headers=[creds]))
        assert r.status == 407, (creds, r)
    assert origin.count("/a") == 0
    # right: a miss, then a hit (the cache answers authenticated requests only)
    for user, password in (("alice", "wonder land"), ("bob", "b0b:pw")):
        r = raw_request(c.port, request(origin, "/a", headers=[basic(user, password)]))
        assert (r.status, r.body) == (200, b"ok"), r
    assert origin.count("/a") == 1
    assert origin.last("/a").header("proxy-authorization") is None
    r = raw_request(c.port, request(origin, "/a"))
    assert r.status == 407, "a hit needs credentials too"
    # (found by content: a miss is logged after its client has the answer,
    # so the next request's line may come first)
    lines = c.wait_log_lines(8)
    denied = [l for l in lines if " TCP_DENIED/407 " in l]
    assert len(denied) == 6 and all(l.split()[7] == "-" for l in denied), lines
    assert sorted(l.split()[7] for l in lines if l not in denied) == ["alice", "bob"], lines
    m = c.metrics()
    assert m["corral_requests_unauthenticated_total"] == 6, m


def test_curl_with_proxy_user(corral, origin, users):
    origin.route("/c", o.fixed(body=b"curl ok"))
    c = corral("[proxy]\nauth_file = %s\n" % users)
    rc, out, err = c.curl("--proxy-user", "bob:b0b:pw", "http://127.0.0.1:%d/c" % origin.port)
    assert rc == 0 and out == b"curl ok", err
    rc, out, err = c.curl("-w", "%{http_code}", "-o", "/dev/null",
                          "http://127.0.0.1:%d/c" % origin.port)
    assert out == b"407", (rc, out, err)


def test_connect_needs_credentials(corral, origin, users):
    origin.route("/t", o.fixed(body=b"tunnelled"))
    c = corral("[proxy]\nauth_file = %s\n" % users)
    target = "127.0.0.1:%d" % origin.port
    r = raw_request(c.port, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target),
                    "CONNECT")
    assert r.status == 407 and r.header("proxy-authenticate"), r
    assert origin.connections == 0
    name, value = basic("alice", "wonder land")
    with c.client() as cl:
        cl.send("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\n\r\n" % (target, target, name,
                                                                      value))
        assert cl.read_response("CONNECT").status == 200
        cl.send("GET /t HTTP/1.1\r\nHost: %s\r\n\r\n" % target)
        r = cl.read_response()
        assert (r.status, r.body) == (200, b"tunnelled"), r
    assert origin.last("/t").header("proxy-authorization") is None
    tunnel = [l for l in c.wait_log_lines(2) if "TCP_TUNNEL" in l]
    assert tunnel and tunnel[0].split()[7] == "alice", tunnel


def test_a_reload_keeps_what_it_remembers_of_unchanged_users(corral, origin, users):
    # behind a flood of wrong passwords, a reload that forgot every
    # credential made users wait seconds for their hash check (review)
    origin.route("/r", o.fixed(body=b"r", headers=[("Cache-Control", "no-store")]))
    c = corral("[proxy]\nauth_file = %s\n" % users)
    alice = basic("alice", "wonder land")
    for attempt in (1, 2):
        assert raw_request(c.port, request(origin, "/r", headers=[alice])).status == 200
    assert c.metrics()["corral_auth_hash_checks_total"] == 1  # then remembered
    users.write_text(users.read_text() + "zed:%s\n" % sha512_crypt("zzz"))
    c.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in c.stderr_text(), timeout=10 * SCALE,
             what="the reload")
    assert raw_request(c.port, request(origin, "/r", headers=[alice])).status == 200
    assert c.metrics()["corral_auth_hash_checks_total"] == 1  # no check again
    zed = basic("zed", "zzz")
    assert raw_request(c.port, request(origin, "/r", headers=[zed])).status == 200
    assert c.metrics()["corral_auth_hash_checks_total"] == 2


def test_reload_reads_the_file_again(corral, origin, users, tmp_path):
    origin.route("/r", o.fixed(body=b"r", headers=[("Cache-Control", "no-store")]))
    c = corral("[proxy]\nauth_file = %s\n" % users)
    alice = basic("alice", "wonder land")
    assert raw_request(c.port, request(origin, "/r", headers=[alice])).status == 200
    users.write_text("alice:%s\n" % sha512_crypt("new password"))
    c.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in c.stderr_text(), timeout=10 * SCALE,
             what="the reload")
    # the password remembered from before the reload is forgotten with it
    # (alice's hash changed)
    assert raw_request(c.port, request(origin, "/r", headers=[alice])).status == 407
    new = basic("alice", "new password")
    assert raw_request(c.port, request(origin, "/r", headers=[new])).status == 200
    # a file that cannot be used keeps the running config (and its users)
    users.write_text("alice:$apr1$x$y\n")
    c.signal(signal.SIGHUP)
    wait_for(lambda: "htpasswd -B" in c.stderr_text(), timeout=10 * SCALE,
             what="the refused reload")
    assert raw_request(c.port, request(origin, "/r", headers=[new])).status == 200
    assert c.alive()


@pytest.mark.parametrize("content, why", [
    ("alice:$apr1$x$y\n", "users.htpasswd:1: an Apache MD5 or SHA-1 hash"),
    ("# nobody\n", "users.htpasswd: no users"),
    (None, "users.htpasswd: cannot open"),
])
def test_unusable_auth_file_stops_the_start(tmp_path, content, why):
    users = tmp_path / "users.htpasswd"
    if content is not None:
        users.write_text(content)
    ini = tmp_path / "corral.ini"
    ini.write_text("[proxy]\nlisten = 127.0.0.1:1\nauth_file = %s\n" % users)
    p = subprocess.run([CORRALD, "-c", str(ini)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
                       timeout=10 * SCALE)
    err = p.stderr.decode()
    assert p.returncode != 0, err
    assert "corral.ini:3: [proxy] auth_file: " in err and why in err, err


def test_407_to_an_upload_is_read_whole(corral, origin, users):
    # corral answers before reading the body; closing with the body unread
    # would reset the connection under the client still sending it, which
    # then fails its send (curl reports an error, not the 407)
    c = corral("[proxy]\nauth_file = %s\n" % users)
    body = b"x" * (4 << 20)
    for attempt in range(2):
        with RawClient(c.port) as cl:
            failed = []

            def send():
                try:
                    cl.sock.sendall(request(origin, "/up", "POST",
                                            [("Content-Length", str(len(body)))]) + body)
                except OSError as e:
                    failed.append(e)
            t = threading.Thread(target=send, daemon=True)
            t.start()
            r = cl.read_response("POST")
            assert r.status == 407, r
            t.join(30 * SCALE)
            assert not t.is_alive() and not failed, failed
            assert cl.wait_closed() == "eof"
    assert origin.count("/up") == 0
