"""The access log: one line per request, Squid's native format by default or
Apache's combined format with corral's fields appended; errors are logged too."""

import datetime
import re
import time

import origin as o
from conftest import free_port, raw_request
from conftest import absolute_request as request

# %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
SQUID_RE = re.compile(
    r"^(?P<sec>\d+)\.(?P<ms>\d{3}) (?P<elapsed> *\d+) (?P<client>\S+) "
    r"(?P<result>[A-Z_]+)/(?P<status>\d{3}) (?P<bytes>\d+) (?P<method>\S+) (?P<url>\S+) "
    r"(?P<user>\S+) (?P<hier>HIER_[A-Z_]+/\S+) (?P<mime>\S+)$")

COMBINED_RE = re.compile(
    r'^(?P<client>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>\S+) (?P<url>\S+) (?P<version>HTTP/\d\.\d)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+|-) "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)" '
    r'(?P<elapsed>\d+) '
    r'(?P<result>[A-Z_]+) (?P<hier>HIER_[A-Z_]+/\S+)$')


def squid_fields(line):
    m = SQUID_RE.match(line)
    assert m, "not a Squid native log line: %r" % line
    return m.groupdict()


def test_squid_format_line(corral, origin):
    body = b"x" * 1234
    url = origin.route("/x", o.fixed(body=body, headers=[("Content-Type", "text/plain")]))
    c = corral()
    before = time.time()
    rc, out, err = c.curl("-o", "/dev/null", url)
    after = time.time()
    assert rc == 0, err
    lines = c.wait_log_lines(1)
    assert len(lines) == 1, lines
    f = squid_fields(lines[0])
    stamp = int(f["sec"]) + int(f["ms"]) / 1000
    assert before - 1 <= stamp <= after + 1, "timestamp %s not in [%s, %s]" % (stamp, before,
                                                                              after)
    assert len(f["elapsed"]) >= 6, "elapsed is right-aligned in 6 columns: %r" % lines[0]
    assert 0 <= int(f["elapsed"]) <= (after - before) * 1000 + 1000
    assert f["client"] == "127.0.0.1"
    assert (f["result"], f["status"]) == ("TCP_MISS", "200")
    assert int(f["bytes"]) >= len(body)
    assert f["method"] == "GET"
    assert f["url"] == url
    assert f["user"] == "-"
    assert f["hier"] == "HIER_DIRECT/127.0.0.1"
    assert f["mime"] == "text/plain"


def test_combined_format_escapes_quotes(corral, origin):
    # a User-Agent or Referer with quotes must not close its field and forge
    # the ones after it (Apache escapes '"' and '\\' with a backslash)
    url = origin.route("/q", o.fixed(body=b"q", headers=[("Content-Type", "text/plain")]))
    c = corral("[log]\nformat = combined\n")
    rc, out, err = c.curl("-o", "/dev/null", "-A", 'ua" 200 1 "-" "forged\\', "-e", 'ref"x', url)
    assert rc == 0, err
    line = c.wait_log_lines(1)[0]
    m = COMBINED_RE.match(line)
    assert m, "not a combined log line: %r" % line
    f = m.groupdict()
    assert f["agent"] == 'ua\\" 200 1 \\"-\\" \\"forged\\\\', line
    assert f["referer"] == 'ref\\"x', line
    assert f["status"] == "200" and f["result"] == "TCP_MISS", line


def test_combined_format_line(corral, origin):
    url = origin.route("/c", o.fixed(body=b"y" * 99, headers=[("Content-Type", "text/plain")]))
    c = corral("[log]\nformat = combined\n")
    before = time.time()
    rc, out, err = c.curl("-o", "/dev/null", "-A", "corral-test/1.0", url)
    after = time.time()
    assert rc == 0, err
    lines = c.wait_log_lines(1)
    assert len(lines) == 1, lines
    m = COMBINED_RE.match(lines[0])
    assert m, "not a combined log line: %r" % lines[0]
    f = m.groupdict()
    stamp = datetime.datetime.strptime(f["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
    assert before - 2 <= stamp <= after + 2, "time %r" % f["time"]
    assert f["client"] == "127.0.0.1"
    assert (f["method"], f["url"], f["version"]) == ("GET", url, "HTTP/1.1")
    assert f["status"] == "200"
    assert f["bytes"] != "-" and int(f["bytes"]) >= 99
    assert f["referer"] == "-"
    assert f["agent"] == "corral-test/1.0"
    assert f["result"] == "TCP_MISS"
    assert f["hier"] == "HIER_DIRECT/127.0.0.1"


def test_mime_with_parameters_keeps_fields_whitespace_separated(corral, origin):
    # Squid logs the media type without its parameters (it cuts at ';' or a
    # space): the line must still be ten whitespace-separated fields
    url = origin.route("/m", o.fixed(body=b"<p>hi</p>",
                                     headers=[("Content-Type", "text/html; charset=utf-8")]))
    c = corral()
    rc, out, err = c.curl("-o", "/dev/null", url)
    assert rc == 0, err
    line = c.wait_log_lines(1)[0]
    assert len(line.split()) == 10, "fields: %r" % line.split()
    f = squid_fields(line)
    assert f["mime"].startswith("text/html"), f["mime"]


def test_upstream_error_logged(corral, origin):
    c = corral()
    port = free_port()
    url = "http://127.0.0.1:%d/nothing-here" % port
    r = raw_request(c.port, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (url, port))
    assert r.status == 502
    f = squid_fields(c.wait_log_lines(1)[0])
    assert (f["result"], f["status"]) == ("TCP_MISS", "502")
    assert (f["method"], f["url"]) == ("GET", url)
    assert f["hier"] == "HIER_NONE/-"
    assert f["mime"].startswith("text/")


def test_denied_client_logged(corral, origin):
    c = corral("[proxy]\nallow = 10.0.0.0/8\n")
    r = raw_request(c.port, request(origin, "/x"))
    assert r.status == 403
    f = squid_fields(c.wait_log_lines(1)[0])
    assert (f["result"], f["status"]) == ("TCP_DENIED", "403")
    assert f["client"] == "127.0.0.1"
    assert f["hier"] == "HIER_NONE/-"


def test_one_line_per_request(corral, origin):
    origin.route("/n", o.fixed(body=b"n", headers=[("Content-Type", "text/plain"),
                                                   ("Cache-Control", "no-store")]))
    c = corral()
    with c.client() as cl:
        for _ in range(3):
            assert cl.request(request(origin, "/n")).status == 200
    lines = c.wait_log_lines(3)
    assert len(lines) == 3, lines
    assert all(squid_fields(l)["url"] == origin.url + "/n" for l in lines)
