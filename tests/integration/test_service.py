"""corrald as a service: the command line, config errors at start and on
reload, the signals (SIGHUP reload, SIGTERM/SIGINT graceful stop, SIGUSR1
access log reopen), the systemd notify protocol, the unit file and
`make install`.

Every wait is for a condition with a deadline: a line on corrald's stderr, a
datagram on the notify socket, the listener refusing connections, the process
exiting.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import origin as o
from conftest import (CORRALD, REPO, SCALE, TIMEOUT, absolute_request, can_connect,
                      clean_env, free_port, merge_ini, parse_ini, raw_request,
                      sanitizer_findings, wait_for)

SQUID_LINE = re.compile(r"^\d+\.\d{3} +\d+ \S+ [A-Z_]+/\d{3} \d+ \S+ \S+ \S+ HIER_\S+ \S+$")
COMBINED_LINE = re.compile(r'^\S+ - \S+ \[[^\]]+\] "\S+ \S+ HTTP/\d\.\d" \d{3} ')


def run_corrald(*args, timeout=10):
    """corrald with these arguments, to completion: (rc, stdout, stderr)."""
    p = subprocess.run([CORRALD] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
                       timeout=timeout * SCALE)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def makefile_version():
    m = re.search(r"^VERSION\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert m, "no VERSION in the Makefile"
    return m.group(1)


def valid_ini(port=None):
    """A complete valid config (nothing is bound by -t)."""
    return merge_ini(parse_ini(
        "[proxy]\nlisten = 127.0.0.1:%d\nvia = on\n[log]\naccess =\n[admin]\nlisten =\n"
        % (port or free_port())), [])


def with_bad_line(text, section, line):
    """`text` plus `[section]` and `line` at its end; returns (text, line number
    of `line`)."""
    text = text.rstrip("\n") + "\n[%s]\n%s\n" % (section, line)
    return text, len(text.splitlines())


# Bad configs: (section, line, key named in the message, what the message says)
BAD = [
    pytest.param("proxy", "frobnicate = yes", "frobnicate", "unknown key", id="unknown-key"),
    pytest.param("proxy", "client_timeout = soon", "client_timeout", "soon", id="bad-value"),
    pytest.param("log", "level = loud", "level", "loud", id="bad-enum"),
]


def assert_names_place(err, path, lineno, section, key, what):
    where = "%s:%d:" % (path, lineno)
    assert where in err, "error %r does not name %s" % (err, where)
    assert "[%s] %s" % (section, key) in err, "error %r does not name [%s] %s" % (
        err, section, key)
    assert what in err, "error %r does not say %r" % (err, what)


def stderr_has(c, text):
    return text in c.stderr_text()


def wait_stderr(c, text):
    """Wait (deadline) until corrald's stderr holds `text`."""
    return wait_for(lambda: stderr_has(c, text), timeout=10,
                    what="%r on corrald's stderr" % text)


def wait_exit(c, timeout=20):
    """Wait (deadline) for the process to exit; its exit code."""
    try:
        return c.proc.wait(timeout=timeout * SCALE)
    except subprocess.TimeoutExpired:
        pytest.fail("corrald did not exit within %ss; stderr:\n%s"
                    % (timeout * SCALE, c.stderr_text()[-4000:]))


def rewrite_ini(c, extra):
    """Overwrite c's config file with its start-up config merged with `extra`."""
    c.ini_text = merge_ini(parse_ini(c.ini_text), parse_ini(extra))
    c.ini_path.write_text(c.ini_text)


# -- the command line --------------------------------------------------------------


def test_check_good_file(tmp_path):
    ini = tmp_path / "good.ini"
    ini.write_text(valid_ini())
    rc, out, err = run_corrald("-t", "-c", ini)
    assert rc == 0, (out, err)
    assert err == "", err


def test_check_shipped_config():
    rc, out, err = run_corrald("-t", "-c", REPO / "conf" / "corral.ini")
    assert rc == 0, (out, err)


@pytest.mark.parametrize("section,line,key,what", BAD)
def test_check_bad_file(tmp_path, section, line, key, what):
    text, lineno = with_bad_line(valid_ini(), section, line)
    ini = tmp_path / "bad.ini"
    ini.write_text(text)
    rc, out, err = run_corrald("-t", "-c", ini)
    assert rc == 1, (rc, out, err)
    assert_names_place(err, ini, lineno, section, key, what)


def test_check_missing_file(tmp_path):
    rc, out, err = run_corrald("-t", "-c", tmp_path / "nope.ini")
    assert rc == 1, (rc, out, err)
    assert str(tmp_path / "nope.ini") in err, err


def test_version():
    rc, out, err = run_corrald("-V")
    assert rc == 0, err
    assert out.strip() == "corrald %s" % makefile_version(), out


def test_help():
    rc, out, err = run_corrald("-h")
    assert rc == 0, err
    assert out.startswith("usage: corrald"), out
    for flag in ("-c FILE", "-t", "-V", "-h"):
        assert flag in out, (flag, out)


@pytest.mark.parametrize("args", [["-Z"], ["--no-such-option"], ["-c"], ["extra-arg"]],
                         ids=["unknown-flag", "unknown-long", "missing-arg", "operand"])
def test_bad_command_line(args):
    rc, out, err = run_corrald(*args)
    assert rc != 0, (out, err)
    assert "usage:" in err, err
    assert out == "", out


@pytest.mark.parametrize("section,line,key,what", BAD)
def test_start_with_bad_config(tmp_path, section, line, key, what):
    port = free_port()
    text, lineno = with_bad_line(valid_ini(port), section, line)
    ini = tmp_path / "bad.ini"
    ini.write_text(text)
    rc, out, err = run_corrald("-c", ini)
    assert rc != 0, (rc, out, err)
    assert_names_place(err, ini, lineno, section, key, what)
    assert not can_connect(port), "the port was bound by a daemon that refused its config"
    assert not sanitizer_findings(err), err


# -- SIGHUP ---------------------------------------------------------------------


def test_reload_applies_and_keeps_connections(corral, origin):
    url_path = "/echo"
    origin.route(url_path, o.echo())
    c = corral("[proxy]\nvia = on\n[log]\nformat = squid\n")
    with c.client() as cl:
        r1 = cl.request(absolute_request(origin, url_path))
        assert r1.status == 200, r1
        assert r1.header("via") == "1.1 corral", r1
        assert origin.last(url_path).header("via") == "1.1 corral"
        assert (r1.header("connection") or "").lower() != "close", r1
        c.wait_log_lines(1)

        rewrite_ini(c, "[proxy]\nvia = off\n[log]\nformat = combined\n")
        c.signal(signal.SIGHUP)
        wait_stderr(c, "configuration reloaded")

        # the same connection, kept across the reload, under the new config
        for i in (2, 3):
            r = cl.request(absolute_request(origin, url_path))
            assert r.status == 200, r
            assert r.header("via") is None, r
            req = origin.last(url_path)
            assert req.header("via") is None, req.headers
            assert (r.header("connection") or "").lower() != "close", r
        assert len(origin.requests_for(url_path)) == 3
    lines = c.wait_log_lines(3)
    assert SQUID_LINE.match(lines[0]), lines[0]
    assert COMBINED_LINE.match(lines[1]), lines[1]
    assert COMBINED_LINE.match(lines[2]), lines[2]
    assert c.alive()


def test_signal_right_after_the_port_accepts(tmp_path):
    """Regression: the signal handlers were installed after the listeners, so a
    SIGHUP that came as soon as the port accepted killed the daemon (the
    default action). Forced by polling connect() without a pause and
    signalling at once, several times (the fixture's backoff is too slow to
    land in the window)."""
    for i in range(10):
        port = free_port()
        ini = tmp_path / ("early%d.ini" % i)
        ini.write_text(valid_ini(port))
        errpath = tmp_path / ("early%d.stderr" % i)
        with open(errpath, "wb") as err:
            p = subprocess.Popen([CORRALD, "-c", str(ini)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, env=clean_env())
        try:
            deadline = time.monotonic() + 10 * SCALE
            while not can_connect(port):
                assert p.poll() is None, errpath.read_text()
                assert time.monotonic() < deadline, "corrald never accepted"
            p.send_signal(signal.SIGHUP)
            wait_for(lambda: p.poll() is not None
                     or "configuration reloaded" in errpath.read_text(),
                     timeout=10, what="the reload (or the death) of corrald #%d" % i)
            assert p.poll() is None, "SIGHUP at start-up: exit %s; stderr:\n%s" % (
                p.returncode, errpath.read_text())
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=20 * SCALE) == 0, errpath.read_text()
            assert not sanitizer_findings(errpath.read_text()), errpath.read_text()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("section,line,key,what", BAD)
def test_reload_bad_config_keeps_running_one(corral, origin, section, line, key, what):
    origin.route("/echo", o.echo())
    c = corral("[proxy]\nvia = on\n")
    with c.client() as cl:
        r = cl.request(absolute_request(origin, "/echo"))
        assert r.status == 200 and r.header("via") == "1.1 corral", r

        # via = off would be visible; the bad line makes the whole file refused
        text, lineno = with_bad_line(merge_ini(parse_ini(c.ini_text),
                                               parse_ini("[proxy]\nvia = off\n")),
                                     section, line)
        c.ini_path.write_text(text)
        c.signal(signal.SIGHUP)
        wait_stderr(c, "reload failed")
        err = [l for l in c.stderr_text().splitlines() if "reload failed" in l]
        assert len(err) == 1, err
        assert " error: " in err[0], err[0]
        assert_names_place(err[0], c.ini_path, lineno, section, key, what)

        # the old config is in force, on the kept connection and on a new one
        r = cl.request(absolute_request(origin, "/echo"))
        assert r.status == 200 and r.header("via") == "1.1 corral", r
        assert origin.last("/echo").header("via") == "1.1 corral"
    r = raw_request(c.port, absolute_request(origin, "/echo"))
    assert r.status == 200 and r.header("via") == "1.1 corral", r
    assert c.alive()
    assert c.stop() == 0, c.stderr_text()[-4000:]


def test_reload_unopenable_access_log_keeps_running_one(corral, origin, tmp_path):
    """A config that parses but whose access log cannot be opened is refused as
    a whole, as it is at start-up: not half applied (format, level, via)."""
    origin.route("/echo", o.echo())
    c = corral("[proxy]\nvia = on\n[log]\nformat = squid\nlevel = info\n")
    assert raw_request(c.port, absolute_request(origin, "/echo")).status == 200
    c.wait_log_lines(1)
    rewrite_ini(c, "[proxy]\nvia = off\n[log]\nformat = combined\nlevel = error\n"
                   "access = %s\n" % (tmp_path / "no-such-dir" / "access.log"))
    c.signal(signal.SIGHUP)
    wait_stderr(c, "reload failed")
    assert "no-such-dir" in c.stderr_text(), c.stderr_text()
    r = raw_request(c.port, absolute_request(origin, "/echo"))
    assert r.status == 200 and r.header("via") == "1.1 corral", r
    lines = c.wait_log_lines(2)
    assert SQUID_LINE.match(lines[1]), lines
    # level is still info: a SIGUSR1 reopen is logged at info
    c.signal(signal.SIGUSR1)
    wait_stderr(c, "reopened access log")


# -- SIGTERM / SIGINT --------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_lets_request_in_flight_finish(corral, origin, sig):
    release = threading.Event()
    body = b"finished after the stop signal " * 100
    url = origin.route("/slow", o.hold(release, then=o.fixed(body=body)))
    c = corral("[proxy]\nshutdown_grace = 60s\n")
    with c.client() as cl:
        cl.send(absolute_request(origin, "/slow"))
        origin.wait_arrivals("/slow", 1, timeout=TIMEOUT)

        c.signal(sig)
        # the listener goes away: new connections are refused
        wait_for(lambda: not can_connect(c.port), timeout=10,
                 what="the listener to close after the stop signal")
        assert c.alive(), "corrald exited with a request in flight; stderr:\n%s" % (
            c.stderr_text()[-4000:])

        release.set()
        r = cl.read_response()
        assert r.status == 200, r
        assert r.body == body, r
        assert (r.header("connection") or "").lower() == "close", r
        assert cl.wait_closed() == "eof"
    assert wait_exit(c) == 0, c.stderr_text()[-4000:]
    lines = c.access_log_lines()
    assert len(lines) == 1 and url in lines[0] and "/200 " in lines[0], lines


def test_stop_closes_idle_keepalive_connections(corral, origin):
    origin.route("/a", o.fixed(body=b"a"))
    c = corral()
    with c.client() as cl:
        r = cl.request(absolute_request(origin, "/a"))
        assert r.status == 200 and r.body == b"a", r
        c.signal(signal.SIGTERM)
        assert cl.wait_closed() == "eof"
    assert wait_exit(c) == 0, c.stderr_text()[-4000:]


def test_stop_gives_up_after_shutdown_grace(corral, origin):
    origin.route("/never", o.stall())
    c = corral("[proxy]\nshutdown_grace = 300ms\n")
    with c.client() as cl:
        cl.send(absolute_request(origin, "/never"))
        origin.wait_arrivals("/never", 1, timeout=TIMEOUT)
        c.signal(signal.SIGTERM)
        # generous deadline: exit is what is asserted, not how fast
        assert wait_exit(c, timeout=15) == 0, c.stderr_text()[-4000:]
    assert "still in flight after the grace period" in c.stderr_text(), c.stderr_text()


# -- systemd notify ------------------------------------------------------------------


class Notify:
    """An AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def next(self, what, timeout=10):
        """Wait (deadline) for the next datagram; return it as {key: value}."""
        self.sock.settimeout(timeout * SCALE)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            pytest.fail("no notify message within %ss while waiting for %s; got so far: %r"
                        % (timeout * SCALE, what, self.messages))
        text = data.decode("utf-8", "replace")
        self.messages.append(text)
        return dict(l.split("=", 1) for l in text.splitlines() if "=" in l)

    def close(self):
        self.sock.close()


def test_notify_protocol(corral, origin, tmp_path):
    n = Notify(tmp_path / "notify.sock")
    try:
        c = corral(env={"NOTIFY_SOCKET": n.path})
        m = n.next("READY=1 at start-up")
        assert m.get("READY") == "1", n.messages
        assert m.get("MAINPID") == str(c.pid), n.messages
        assert can_connect(c.port), "READY=1 sent before the port accepts"

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        c.signal(signal.SIGHUP)
        m = n.next("RELOADING=1 after SIGHUP")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert m.get("RELOADING") == "1", n.messages
        assert "MONOTONIC_USEC" in m, n.messages
        assert before <= int(m["MONOTONIC_USEC"]) <= after, (before, m, after)
        m = n.next("READY=1 after the reload")
        assert m.get("READY") == "1", n.messages

        c.signal(signal.SIGTERM)
        m = n.next("STOPPING=1 after SIGTERM")
        assert m.get("STOPPING") == "1", n.messages
        assert wait_exit(c) == 0, c.stderr_text()[-4000:]
    finally:
        n.close()


def test_notify_failed_reload_still_ready(corral, origin, tmp_path):
    n = Notify(tmp_path / "notify.sock")
    try:
        c = corral(env={"NOTIFY_SOCKET": n.path})
        assert n.next("READY=1 at start-up").get("READY") == "1", n.messages
        c.ini_path.write_text(c.ini_text + "\n[proxy]\nfrobnicate = 1\n")
        c.signal(signal.SIGHUP)
        assert n.next("RELOADING=1").get("RELOADING") == "1", n.messages
        # the reload failed, but the daemon runs (on the old config): READY again
        assert n.next("READY=1 after a failed reload").get("READY") == "1", n.messages
        assert c.alive()
    finally:
        n.close()


# -- SIGUSR1 ---------------------------------------------------------------------


def test_sigusr1_reopens_access_log(corral, origin):
    for p in ("/one", "/between", "/two"):
        origin.route(p, o.fixed(body=p.encode()))
    c = corral()
    assert raw_request(c.port, absolute_request(origin, "/one")).status == 200
    c.wait_log_lines(1)

    rotated = c.access_log_path.with_name(c.access_log_path.name + ".1")
    os.rename(c.access_log_path, rotated)
    # before the signal, the old descriptor (now the rotated file) is written
    assert raw_request(c.port, absolute_request(origin, "/between")).status == 200
    wait_for(lambda: len(rotated.read_text().splitlines()) >= 2, timeout=10,
             what="the /between line in the rotated file")
    assert not c.access_log_path.exists()

    c.signal(signal.SIGUSR1)
    wait_stderr(c, "reopened access log")
    assert c.access_log_path.exists(), "SIGUSR1 did not create the log at its path"
    assert raw_request(c.port, absolute_request(origin, "/two")).status == 200
    lines = c.wait_log_lines(1)
    assert len(lines) == 1 and (origin.url + "/two") in lines[0], lines
    old = rotated.read_text().splitlines()
    assert len(old) == 2, old
    assert (origin.url + "/one") in old[0] and (origin.url + "/between") in old[1], old


# -- the unit file and make install ------------------------------------------------------


def unit_keys(text):
    """{key: [values]} of the [Service] section of a unit file."""
    keys = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


UNIT = REPO / "systemd" / "corral.service"


def test_unit_file_has_the_service_settings():
    keys = unit_keys(UNIT.read_text())

    def one(k):
        assert k in keys, "%s missing from %s" % (k, UNIT)
        return keys[k][-1]
    assert one("Type") == "notify"
    assert "-HUP" in one("ExecReload") and "$MAINPID" in one("ExecReload")
    assert one("ExecStart").startswith("@SBINDIR@/corrald "), one("ExecStart")
    assert keys.get("DynamicUser") == ["yes"] or "User" in keys, keys
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectSystem") == "strict"
    assert one("ProtectHome") == "yes"
    assert one("PrivateTmp") == "yes"
    assert one("PrivateDevices") == "yes"
    assert set(one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert keys.get("CapabilityBoundingSet") == [""], keys.get("CapabilityBoundingSet")
    assert "@system-service" in keys.get("SystemCallFilter", []), keys.get("SystemCallFilter")
    assert one("CacheDirectory") == "corral"
    assert one("LogsDirectory") == "corral"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_file_verifies(tmp_path):
    sbindir = tmp_path / "sbin"
    sbindir.mkdir()
    exe = sbindir / "corrald"
    shutil.copy("/usr/bin/true", exe)
    exe.chmod(0o755)
    unit = tmp_path / "corral.service"
    unit.write_text(UNIT.read_text().replace("@SBINDIR@", str(sbindir)))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=clean_env(), timeout=60)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode == 0, out
    # unknown keys and bad values are only warnings: there must be none
    mine = [l for l in out.splitlines() if "corral.service" in l]
    assert not mine, "\n".join(mine)


def test_make_install(tmp_path):
    dest = tmp_path / "dest"
    # the build the tests run against (build/ or build-asan/, by SANITIZE)
    env = dict(clean_env(), SANITIZE=os.environ.get("SANITIZE", ""))
    p = subprocess.run(["make", "-s", "-C", str(REPO), "install", "DESTDIR=%s" % dest,
                        "PREFIX=/usr"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr.decode("utf-8", "replace")

    exe = dest / "usr" / "sbin" / "corrald"
    assert exe.is_file() and os.access(exe, os.X_OK), sorted(str(x) for x in dest.rglob("*"))
    assert subprocess.run([str(exe), "-V"], stdout=subprocess.PIPE, env=clean_env(),
                          timeout=30 * SCALE).stdout.decode().strip() == (
        "corrald %s" % makefile_version())

    ini = dest / "etc" / "corral" / "corral.ini"
    assert ini.read_text() == (REPO / "conf" / "corral.ini").read_text()

    unit = dest / "lib" / "systemd" / "system" / "corral.service"
    text = unit.read_text()
    assert "@SBINDIR@" not in text
    assert unit_keys(text)["ExecStart"] == ["/usr/sbin/corrald -c /etc/corral/corral.ini"]
    assert text == UNIT.read_text().replace("@SBINDIR@", "/usr/sbin")
