#!/usr/bin/env python3
"""corral's benchmarks, side by side with Squid and nginx. Run by bench/run.

Everything listens on 127.0.0.1, on free ports. The servers under test run
pinned to CPU 0 (taskset), the load generators and the origin to CPU 1. Each
load is bounded in time; every process started here is stopped at the end.

Environment:
  BENCH_QUICK=1       short loads, 1 round, a 512 MiB download (a smoke run)
  BENCH_ROUNDS=N      rounds (default 3; 1 when quick)
  BENCH_DURATION=S    seconds per wrk load (default 5; 2 when quick)
  BENCH_ONLY=a,b      only these scenarios: hits, misses, herd, idle, big, instr
  BENCH_PROFILE=0     do not profile corrald where a bar is missed
  BENCH_RUN_DIR=DIR   scratch directory (tmpfs); bench/run makes one
  BENCH_OUT=FILE      also write the Markdown report here
"""
import datetime
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "build", "bench")
CORRALD = os.path.join(ROOT, "build", "corrald")
WRK_LUA = os.path.join(HERE, "wrk.lua")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from ports import free_port  # noqa: E402 (the tests' helper, found through the path above)

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (1 if QUICK else 3))
DUR = int(os.environ.get("BENCH_DURATION") or (2 if QUICK else 5))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
PROFILE = os.environ.get("BENCH_PROFILE", "1") != "0"
SERVER_CPU, CLIENT_CPU = "0", "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HIT_CONNS = 50
MISS_CONNS = 10
HERD_CLIENTS = 1000
HERD_BYTES = 4 << 20
IDLE_CONNS = 10000
BIG_BYTES = (512 << 20) if QUICK else (4 << 30)
INSTR_REQUESTS = 2000
SIZES = [("1k", "1 KiB"), ("64k", "64 KiB"), ("1m", "1 MiB")]

RUN = os.environ.get("BENCH_RUN_DIR") or tempfile.mkdtemp(prefix="corral-bench.", dir="/dev/shm")
os.makedirs(RUN, exist_ok=True)
os.chmod(RUN, 0o755)
PGIDS = os.path.join(RUN, "pgids")

children = []  # Popen objects, each the leader of its own process group
load_samples = []  # 1-minute load averages seen before each load


def sample_load():
    with open("/proc/loadavg") as f:
        load_samples.append(float(f.read().split()[0]))


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def want(name):
    return not ONLY or name in ONLY


# ---------------------------------------------------------------- processes

def spawn(argv, cpu=None, name=None, **kw):
    if cpu is not None:
        argv = ["taskset", "-c", cpu] + argv
    out = open(os.path.join(RUN, (name or os.path.basename(argv[0])) + ".out"), "ab")
    p = subprocess.Popen(argv, stdout=kw.pop("stdout", out), stderr=out, start_new_session=True, **kw)
    children.append(p)
    with open(PGIDS, "a") as f:
        f.write("%d\n" % p.pid)
    return p


def stop(p, grace=10.0):
    """SIGTERM the process group, then SIGKILL it after `grace` seconds."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)  # leftovers in the group (workers)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass
    if p in children:
        children.remove(p)


def stop_all():
    for p in list(children):
        stop(p, 5.0)


def on_signal(sig, frame):
    raise SystemExit("bench: stopped by signal %d" % sig)


def wait_port(port, proc=None, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited (%s) before listening on %d" % (proc.args, port))
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d after %ss" % (port, timeout))


def http_get(port, target, host=None, timeout=30.0):
    """A minimal HTTP/1.0 GET; returns (status, headers dict, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    host = host or "127.0.0.1:%d" % port
    s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: corral-bench\r\n\r\n" % (target, host)).encode())
    data = b""
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def descendants(pid):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total


def status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def smaps_top(pid, n=8):
    """The largest mappings by Rss, for a memory bar that was missed."""
    rows, cur = [], None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    parts = line.split()
                    cur = [parts[5] if len(parts) > 5 else "[anon]", 0]
                    rows.append(cur)
                elif line.startswith("Rss:") and cur is not None:
                    cur[1] = int(line.split()[1])
    except OSError:
        return []
    groups = {}
    for name, rss in rows:
        g = groups.setdefault(name, [0, 0])
        g[0] += rss
        g[1] += 1
    return sorted(((v[0], v[1], k) for k, v in groups.items()), reverse=True)[:n]


# ---------------------------------------------------------------- systems

class Origin:
    def __init__(self):
        self.port = free_port()
        self.proc = spawn([os.path.join(BIN, "origin"), "-p", str(self.port)], cpu=CLIENT_CPU, name="origin")
        wait_port(self.port, self.proc)
        self.host = "127.0.0.1:%d" % self.port

    def url(self, path):
        return "http://%s%s" % (self.host, path)

    def total(self):
        _, _, body = http_get(self.port, "/_stats")
        return int(body.split()[1])

    def stats(self, path):
        _, _, body = http_get(self.port, "/_stats?p=" + path)
        w = body.decode().split()
        return {w[i]: int(w[i + 1]) for i in range(0, len(w) - 1, 2)}


class System:
    name = label = ""
    forward = True      # a forward proxy: absolute-form targets
    proc = None

    def __init__(self, origin, tag=""):
        self.origin = origin
        self.port = free_port()
        self.dir = os.path.join(RUN, self.name + tag)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)

    def target(self, path):
        return self.origin.url(path) if self.forward else path

    def pids(self):
        return descendants(self.proc.pid) if self.proc else []

    def main_pid(self):
        """The process that serves (corrald, squid, the nginx worker)."""
        return self.proc.pid

    def rss_kb(self):
        return sum(status_kb(p, "VmRSS") for p in self.pids())

    def wait_ready(self):
        wait_port(self.port, self.proc, timeout=60 if getattr(self, "valgrind", False) else 30)

    def stop(self):
        if self.proc:
            stop(self.proc)
            self.proc = None


class Corral(System):
    name, label = "corral", "corral"

    def __init__(self, origin, tag="", valgrind=None):
        super().__init__(origin, tag)
        self.admin = free_port()
        self.valgrind = valgrind
        self.conf = os.path.join(self.dir, "corral.ini")
        with open(self.conf, "w") as f:
            f.write("""[proxy]
listen = 127.0.0.1:{port}
allow = 127.0.0.0/8
max_connections = 19000
client_timeout = 600s
shutdown_grace = 0
[upstream]
allow_loopback = on
[cache]
memory = 256M
max_object = 64M
[log]
access = {dir}/access.log
format = squid
level = warn
[admin]
listen = 127.0.0.1:{admin}
""".format(port=self.port, dir=self.dir, admin=self.admin))
        argv = [CORRALD, "-c", self.conf]
        if valgrind:
            argv = VALGRIND + ["--callgrind-out-file=%s/callgrind.out.%%p" % self.dir,
                                "--vgdb-prefix=%s/vgdb" % self.dir] + argv
        self.proc = spawn(argv, cpu=SERVER_CPU, name="corrald" + tag)
        self.wait_ready()

    def metrics(self):
        _, _, body = http_get(self.admin, "/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line.startswith("corral_"):
                k, _, v = line.partition(" ")
                out[k[len("corral_"):]] = float(v)
        return out



class Squid(System):
    name, label = "squid", "Squid 5.7"

    def __init__(self, origin, tag="", valgrind=False):
        super().__init__(origin, tag)
        self.valgrind = valgrind
        self.conf = os.path.join(self.dir, "squid.conf")
        with open(self.conf, "w") as f:
            f.write(SQUID_CONF.format(port=self.port, dir=self.dir))
        argv = ["squid", "-N", "-f", self.conf]
        if valgrind:
            # Started as root, Squid switches to cache_effective_user, and then
            # valgrind cannot open its own vgdb FIFOs (callgrind_control hangs):
            # run it as that user from the start.
            argv = (["setpriv", "--reuid=proxy", "--regid=proxy", "--clear-groups"] + VALGRIND +
                    ["--callgrind-out-file=%s/callgrind.out.%%p" % self.dir] + argv)
        self.proc = spawn(argv, cpu=SERVER_CPU, name="squid" + tag)
        self.wait_ready()


SQUID_CONF = """http_port 127.0.0.1:{port}
visible_hostname corral-bench
pid_filename {dir}/squid.pid
cache_effective_user proxy
cache_log {dir}/cache.log
access_log stdio:{dir}/access.log squid
cache_store_log none
logfile_rotate 0
coredump_dir {dir}
pinger_enable off
# memory cache only: no cache_dir
cache_mem 256 MB
maximum_object_size_in_memory 64 MB
maximum_object_size 64 MB
memory_cache_mode always
collapsed_forwarding on
http_access allow all
shutdown_lifetime 0 seconds
max_filedescriptors 19000
client_lifetime 1 hour
"""

VALGRIND = ["valgrind", "--tool=callgrind", "--dump-instr=no"]  # + --vgdb-prefix, --callgrind-out-file


NGINX_COMMON = """user root root;
worker_processes 1;
daemon off;
master_process {master};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 19000;
events {{ worker_connections 19000; }}
http {{
  access_log {dir}/access.log combined;
  default_type application/octet-stream;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 600s;
  keepalive_requests 100000000;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
"""


class NginxCache(System):
    name, label = "nginx", "nginx 1.22 proxy_cache"
    forward = False

    def __init__(self, origin, tag="", valgrind=False):
        super().__init__(origin, tag)
        self.valgrind = valgrind
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_COMMON.format(dir=self.dir, master="off" if valgrind else "on"))
            f.write("""  proxy_cache_path {dir}/cache levels=1:2 keys_zone=bench:32m max_size=1g inactive=1d use_temp_path=off;
  upstream origin {{ server {origin}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 30s;
      proxy_cache_lock_age 30s;
      add_header X-Cache-Status $upstream_cache_status;
    }}
  }}
}}
""".format(dir=self.dir, origin=origin.host, port=self.port))
        argv = ["nginx", "-c", self.conf, "-e", os.path.join(self.dir, "error.log")]
        if valgrind:
            argv = VALGRIND + ["--callgrind-out-file=%s/callgrind.out.%%p" % self.dir,
                                "--vgdb-prefix=%s/vgdb" % self.dir] + argv
        self.proc = spawn(argv, cpu=SERVER_CPU, name="nginx" + tag)
        self.wait_ready()

    def main_pid(self):
        for p in self.pids():
            try:
                with open("/proc/%d/cmdline" % p) as f:
                    if "worker process" in f.read():
                        return p
            except OSError:
                pass
        return self.proc.pid


class NginxStatic(NginxCache):
    name, label = "static", "nginx static (ceiling)"

    def __init__(self, origin, tag="", valgrind=False):
        System.__init__(self, origin, tag)
        self.valgrind = valgrind
        www = os.path.join(RUN, "www")
        if not os.path.isdir(www):
            subprocess.run([os.path.join(BIN, "origin"), "-W", www], check=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_COMMON.format(dir=self.dir, master="off" if valgrind else "on"))
            f.write("""  open_file_cache max=64 inactive=1h;
  open_file_cache_valid 1h;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {www};
    location / {{ add_header Cache-Control "public, max-age=86400"; }}
  }}
}}
""".format(port=self.port, www=www))
        argv = ["nginx", "-c", self.conf, "-e", os.path.join(self.dir, "error.log")]
        if valgrind:
            argv = VALGRIND + ["--callgrind-out-file=%s/callgrind.out.%%p" % self.dir,
                                "--vgdb-prefix=%s/vgdb" % self.dir] + argv
        self.proc = spawn(argv, cpu=SERVER_CPU, name="static" + tag)
        self.wait_ready()


class Direct(System):
    """The origin itself, for the pass-through comparison (not a proxy)."""
    name, label = "direct", "origin direct"
    forward = False

    def __init__(self, origin):
        self.origin = origin
        self.port = origin.port
        self.proc = origin.proc

    def stop(self):
        pass


# ---------------------------------------------------------------- load tools

def wrk(system, path, conns, duration):
    env = dict(os.environ, BENCH_TARGET=system.target(path), BENCH_HOST=system.origin.host)
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
            "--timeout", "10s", "-s", WRK_LUA, "http://127.0.0.1:%d/" % system.port]
    sample_load()
    pids = system.pids()
    o0 = system.origin.total()
    t0 = cpu_ticks(pids)
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    t1 = cpu_ticks(pids)
    o1 = system.origin.total()
    m = re.search(r"^BENCH (.*)$", r.stdout, re.M)
    if not m:
        raise RuntimeError("wrk failed: %s %s" % (r.stdout, r.stderr))
    d = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    reqs = max(d["requests"], 1)
    return {
        "rps": d["requests"] / (d["duration_us"] / 1e6),
        "p50_ms": d["lat_p50_us"] / 1000,
        "p99_ms": d["lat_p99_us"] / 1000,
        "cpu_us": (t1 - t0) * 1e6 / CLK_TCK / reqs,
        "requests": int(d["requests"]),
        "errors": int(d["errors"]),
        "origin_requests": o1 - o0,
    }


def herd_client(port, target, host, n, mode="herd", window=None, expect=None, timeout=60, reqs=None):
    """The argv of a herd.c run (see bench/herd.c for the modes)."""
    argv = ["taskset", "-c", CLIENT_CPU, os.path.join(BIN, "herd"), "-c", "127.0.0.1:%d" % port,
            "-u", target, "-H", host, "-n", str(n), "-m", mode, "-T", str(timeout)]
    if window:
        argv += ["-w", str(window)]
    if expect is not None:
        argv += ["-e", str(expect)]
    if reqs:
        argv += ["-r", str(reqs)]
    return argv


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        w = line.split()
        if len(w) == 2:
            try:
                out[w[0]] = float(w[1])
            except ValueError:
                out[w[0]] = w[1]
    return out


def warm(system, path, times=3):
    for _ in range(times):
        st, hd, body = http_get(system.port, system.target(path), system.origin.host)
        if st != 200:
            raise RuntimeError("%s: warming %s got %d" % (system.name, path, st))


def perf_profile(pid, seconds, out, run_load):
    """perf record (cpu-clock, with call graphs) and perf stat (context switches)
    on pid while run_load() runs. Returns (flat profile lines, time per syscall
    lines, {"context-switches": n, "cpu-migrations": n, "task-clock": ms}, the load's result)."""
    data = os.path.join(RUN, out + ".perf.data")
    stat = os.path.join(RUN, out + ".perf.stat")
    rec = subprocess.Popen(["perf", "record", "-q", "-g", "-e", "cpu-clock", "-F", "999", "-p", str(pid),
                            "-o", data, "--", "sleep", str(seconds)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    children.append(rec)
    st = subprocess.Popen(["perf", "stat", "-x", ",", "-o", stat, "-e",
                           "context-switches,cpu-migrations,task-clock", "-p", str(pid), "--",
                           "sleep", str(seconds)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    children.append(st)
    time.sleep(0.3)
    result = None
    try:
        result = run_load()
    finally:
        for p in (rec, st):
            try:
                p.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                pass
            stop(p)
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                        "--sort", "dso,sym", "--percent-limit", "1"],
                       capture_output=True, text=True, timeout=300)
    flat = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")][:20]
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "-g", "none",
                        "--sort", "sym", "--percent-limit", "0.5"],
                       capture_output=True, text=True, timeout=300)
    per_call = {}
    for l in r.stdout.splitlines():
        m = re.match(r"^\s*([\d.]+)%\s+([\d.]+)%\s+\[k\]\s+(?:__x64_sys_|__do_sys_|__sys_|ksys_)(\w+)$", l)
        if m:
            per_call[m.group(3)] = max(per_call.get(m.group(3), 0.0), float(m.group(1)))
    sys_lines = ["%6.2f%% of samples under %s()" % (v, k)
                 for k, v in sorted(per_call.items(), key=lambda kv: -kv[1])]
    # how the top symbol is reached (the first chain down to it)
    chain = []
    top_sym = None
    for l in flat:
        m = re.match(r"^\s*[\d.]+%\s+\S+\s+\[[k.]\]\s+(\S+)", l)
        if m:
            top_sym = m.group(1)
            break
    if top_sym:
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-S", top_sym,
                            "-g", "caller,5,callee,function,percent", "--percent-limit", "1"],
                           capture_output=True, text=True, timeout=300)
        chain = [l.rstrip() for l in r.stdout.splitlines()
                 if l.strip() and not l.startswith("#") and l.strip() != "|"][:45]
    counts = {}
    try:
        with open(stat) as f:
            for line in f:
                w = line.strip().split(",")
                if len(w) > 2 and w[0] and w[0][0].isdigit():
                    counts[w[2]] = float(w[0])
    except OSError:
        pass
    return flat, sys_lines[:12] + ([""] + ["the top entry and its callers (chains ≥ 5%):"] + chain
                                   if chain else []), counts, result


# ---------------------------------------------------------------- scenarios

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def seq_latency(system, path, conns, rps):
    """Latency of the same load measured by herd.c (-m seq): from the client's
    send to the kernel's receive timestamp of the response's last segment, so
    the load generator's own delays in getting to a socket are left out (see
    bench/README.md, Caveats). About DUR seconds at the rate wrk reached."""
    reqs = max(20, int(rps * DUR / conns))
    r = subprocess.run(herd_client(system.port, system.target(path), system.origin.host, conns,
                                   mode="seq", reqs=reqs, timeout=DUR * 10 + 30),
                       capture_output=True, text=True, timeout=DUR * 10 + 60)
    h = parse_kv(r.stdout)
    if h.get("failed", 1) != 0 or "lat_p99_ms" not in h:
        raise RuntimeError("herd -m seq against %s failed: %s %s" % (system.name, r.stdout, r.stderr))
    return {"k_p50_ms": h["lat_p50_ms"], "k_p99_ms": h["lat_p99_ms"], "k_rps": h["req_per_s"]}


def scenario_hits(systems, results):
    for s in systems:
        for size, _ in SIZES:
            warm(s, "/obj/" + size)
        # steady state: a 1 s load first, not measured (a server's first
        # connections start its threads, buffers and caches)
        wrk(s, "/obj/1k", HIT_CONNS, 1)
    runs = {}
    for rnd in range(ROUNDS):
        order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
        for size, _ in SIZES:
            for s in order:
                m0 = s.metrics() if isinstance(s, Corral) else None
                r = wrk(s, "/obj/" + size, HIT_CONNS, DUR)
                if m0 is not None:
                    m1 = s.metrics()
                    r["corral_hits"] = m1["cache_hits_total"] - m0["cache_hits_total"]
                r.update(seq_latency(s, "/obj/" + size, HIT_CONNS, r["rps"]))
                runs.setdefault((size, s.name), []).append(r)
                log("hits %s %s round %d: %.0f req/s p50 %.2f ms p99 %.2f ms cpu %.1f us/req, "
                    "origin requests %d, errors %d; kernel timestamps: p50 %.2f ms p99 %.2f ms" % (
                        size, s.name, rnd + 1, r["rps"], r["p50_ms"], r["p99_ms"], r["cpu_us"],
                        r["origin_requests"], r["errors"], r["k_p50_ms"], r["k_p99_ms"]))
    results["hits"] = {"%s/%s" % k: v for k, v in runs.items()}


def scenario_misses(systems, results):
    for s in systems:
        warm(s, "/nostore/1k", 2)
    runs = {}
    for rnd in range(ROUNDS):
        order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
        for conns in (MISS_CONNS, 1):
            for s in order:
                r = wrk(s, "/nostore/1k", conns, DUR)
                runs.setdefault((conns, s.name), []).append(r)
                log("misses c=%d %s round %d: %.0f req/s p50 %.3f ms p99 %.3f ms cpu %.1f us/req, "
                    "origin requests %d, errors %d" % (conns, s.name, rnd + 1, r["rps"], r["p50_ms"],
                                                       r["p99_ms"], r["cpu_us"], r["origin_requests"],
                                                       r["errors"]))
    results["misses"] = {"%d/%s" % k: v for k, v in runs.items()}


_ksoftirqd = []


def ksoftirqd():
    """[pid] of ksoftirqd/SERVER_CPU, the kernel thread that takes over the
    server CPU's softirqs (loopback's receive work) when they run too long
    in the sender's context. Its time is not the server's CPU but it competes
    for the same CPU: a change that lowers the server's CPU by raising this
    saved nothing (an io_uring pump did exactly that: bench/README.md)."""
    if not _ksoftirqd:
        r = subprocess.run(["pgrep", "-x", "ksoftirqd/%s" % SERVER_CPU], capture_output=True, text=True)
        _ksoftirqd.extend(int(p) for p in r.stdout.split()[:1])
    return _ksoftirqd


def herd_once(s, variant, tag, rnd):
    path = "/herd/%s/r%d-%s-%s" % (variant, rnd, s.name, tag)
    sample_load()
    pids = s.pids()
    t0, k0 = cpu_ticks(pids), cpu_ticks(ksoftirqd())
    argv = herd_client(s.port, s.target(path), s.origin.host, HERD_CLIENTS, expect=HERD_BYTES, timeout=60)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    t1, k1 = cpu_ticks(pids), cpu_ticks(ksoftirqd())
    h = parse_kv(r.stdout)
    o = s.origin.stats(path)
    out = {
        "fetches": o.get("count", 0),
        "ok": int(h.get("ok", 0)),
        "failed": int(h.get("failed", HERD_CLIENTS)),
        "fail_detail": {k[5:]: int(v) for k, v in h.items() if k.startswith("fail_")},
        "cpu_ms": (t1 - t0) * 1000 / CLK_TCK,
        "softirqd_ms": (k1 - k0) * 1000 / CLK_TCK,
    }
    if "ttfb_p50_ms" in h:
        out.update({k: h[k] for k in ("ttfb_p50_ms", "ttfb_p99_ms", "ttlb_p50_ms", "ttlb_p99_ms")})
        if o.get("head_ns"):
            out["first_lag_p99_ms"] = (h["first_abs_p99_ns"] - o["head_ns"]) / 1e6
        if o.get("end_ns"):
            out["last_lag_p99_ms"] = (h["last_abs_p99_ns"] - o["end_ns"]) / 1e6
    return out


def scenario_herd(systems, origin, results):
    direct = Direct(origin)
    runs = {}
    tag = "%x" % int(time.time())
    for rnd in range(ROUNDS):
        order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
        for variant in ("cl", "chunked"):
            for s in order + [direct]:
                r = herd_once(s, variant, tag, rnd)
                runs.setdefault((variant, s.name), []).append(r)
                log("herd %s %s round %d: fetches %d ok %d failed %d %s ttfb p50/p99 %s/%s ms "
                    "ttlb p50/p99 %s/%s ms, lag first/last p99 %s/%s ms" % (
                        variant, s.name, rnd + 1, r["fetches"], r["ok"], r["failed"],
                        r["fail_detail"] or "", fmt(r.get("ttfb_p50_ms")), fmt(r.get("ttfb_p99_ms")),
                        fmt(r.get("ttlb_p50_ms")), fmt(r.get("ttlb_p99_ms")),
                        fmt(r.get("first_lag_p99_ms")), fmt(r.get("last_lag_p99_ms"))))
                time.sleep(1)
        for mode in ("one", "threads", "http"):
            r = fanout_http_once() if mode == "http" else fanout_once(mode)
            runs.setdefault(("fanout", mode), []).append(r)
            log("herd floor model %s round %d: cpu %s ms, first byte lag p99 %s ms, "
                "last byte lag p50/p99 %s/%s ms" % (
                    mode, rnd + 1, fmt(r.get("cpu_ms")), fmt(r.get("first_lag_p99_ms")),
                    fmt(r.get("last_lag_p50_ms")), fmt(r.get("last_lag_p99_ms"))))
    results["herd"] = {"%s/%s" % k: v for k, v in runs.items()}


def fanout_once(mode):
    """bench/fanout.c: the herd's body (4 MiB in 64 pieces over 500 ms) written
    to HERD_CLIENTS loopback connections with no proxy, on the server's CPU,
    by one thread (`one`) or by a thread per connection woken per piece
    (`threads`): the floor under the herd's last byte on this machine."""
    sample_load()
    argv = ["taskset", "-c", SERVER_CPU, os.path.join(BIN, "fanout"), "-m", mode,
            "-n", str(HERD_CLIENTS), "-s", str(HERD_BYTES)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("fanout failed: %s %s" % (r.stdout, r.stderr))
    return parse_kv(r.stdout)


def fanout_http_once():
    """bench/fanout.c -l: the floor writer of mode `one` answering the herd
    client itself over HTTP (a head, then the paced body), so that the floor
    is measured by the client that measures corral: its kernel-stamped last
    bytes against the moment the last piece was written."""
    sample_load()
    port = free_port()
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU, os.path.join(BIN, "fanout"), "-m", "one",
                          "-n", str(HERD_CLIENTS), "-s", str(HERD_BYTES), "-l", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        if p.stdout.readline().strip() != "listening":  # EOF if it died
            raise RuntimeError("fanout -l did not start: %s" % p.stderr.read())
        r = subprocess.run(herd_client(port, "/floor", "127.0.0.1:%d" % port, HERD_CLIENTS,
                                       expect=HERD_BYTES, timeout=60),
                           capture_output=True, text=True, timeout=120)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise RuntimeError("fanout -l still running 60 s after the herd client ended "
                               "(not every connection came?): %s %s" % (r.stdout, r.stderr))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    h, f = parse_kv(r.stdout), parse_kv(out)
    if p.returncode != 0 or h.get("failed", 1) != 0 or "heads_ns" not in f:
        raise RuntimeError("fanout -l with the herd client failed: %s %s %s %s" % (
            out, err, r.stdout, r.stderr))
    return {"cpu_ms": f["cpu_ms"],
            "first_lag_p50_ms": (h["first_abs_p50_ns"] - f["heads_ns"]) / 1e6,
            "first_lag_p99_ms": (h["first_abs_p99_ns"] - f["heads_ns"]) / 1e6,
            "writer_late_ms": f["writer_late_ms"],
            "last_lag_p50_ms": (h["last_abs_p50_ns"] - f["last_piece_ns"]) / 1e6,
            "last_lag_p99_ms": (h["last_abs_p99_ns"] - f["last_piece_ns"]) / 1e6}


def scenario_idle(origin, results):
    out = {}
    for cls in (Corral, Squid, NginxCache):
        s = cls(origin, tag="-idle")
        try:
            warm(s, "/obj/1k", 2)
            time.sleep(1)
            before = s.rss_kb()
            p = subprocess.Popen(herd_client(s.port, s.target("/obj/1k"), origin.host, IDLE_CONNS,
                                             mode="idle", window=100, expect=1024, timeout=120),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 start_new_session=True)
            children.append(p)
            lines = []
            while True:
                line = p.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("ready"):
                    break
            time.sleep(2)
            during = s.rss_kb()
            threads = status_kb(s.main_pid(), "Threads")
            top = smaps_top(s.main_pid()) if isinstance(s, Corral) else []
            p.stdin.close()
            rest = p.stdout.read()
            p.wait(30)
            children.remove(p)
            h = parse_kv("".join(lines) + rest)
            out[s.name] = {"before_kb": before, "with_kb": during, "ok": int(h.get("ok", 0)),
                           "failed": int(h.get("failed", IDLE_CONNS)), "still_open": int(h.get("still_open", 0)),
                           "threads": threads, "smaps_top": top}
            log("idle %s: RSS %d -> %d KiB with %d connections (%d still open at the end, %d failed), "
                "%d threads" % (s.name, before, during, out[s.name]["ok"], out[s.name]["still_open"],
                                out[s.name]["failed"], threads))
        finally:
            s.stop()
    results["idle"] = out


def scenario_big(origin, results):
    out = {}
    size = "%dm" % (BIG_BYTES >> 20)
    cases = [("corral", Corral, "nostore"), ("corral", Corral, "cache"),
             ("squid", Squid, "nostore"), ("nginx", NginxCache, "nostore")]
    for name, cls, kind in cases:
        s = cls(origin, tag="-big-" + kind)
        try:
            time.sleep(1)
            pid = s.main_pid()
            idle = status_kb(pid, "VmRSS")
            with open("/proc/%d/clear_refs" % pid, "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            path = "/stream/%s/%s/%s" % (kind, size, name)
            argv = ["taskset", "-c", CLIENT_CPU, "curl", "-sS", "-o", "/dev/null", "--max-time", "180",
                    "-w", "%{http_code} %{size_download} %{time_total}"]
            if s.forward:
                argv += ["-x", "http://127.0.0.1:%d" % s.port, origin.url(path)]
            else:
                argv += ["http://127.0.0.1:%d%s" % (s.port, path)]
            t0 = cpu_ticks(s.pids())
            r = subprocess.run(argv, capture_output=True, text=True, timeout=240)
            t1 = cpu_ticks(s.pids())
            w = r.stdout.split()
            code, got, secs = (int(w[0]), int(w[1]), float(w[2])) if len(w) == 3 else (0, 0, 0.0)
            peak = status_kb(pid, "VmHWM")
            key = "%s/%s" % (name, kind)
            out[key] = {"status": code, "bytes": got, "seconds": secs,
                        "mib_s": got / (1 << 20) / secs if secs else 0, "idle_kb": idle, "peak_kb": peak,
                        "cpu_s": (t1 - t0) / CLK_TCK, "complete": got == BIG_BYTES and code == 200,
                        "smaps_top": smaps_top(pid) if name == "corral" else []}
            log("big %s: %d %d bytes in %.2f s (%.0f MiB/s), RSS idle %d KiB, peak %d KiB" % (
                key, code, got, secs, out[key]["mib_s"], idle, peak))
        finally:
            s.stop()
    results["big"] = out


def annotate(dump, inclusive):
    a = subprocess.run(["callgrind_annotate", "--threshold=99", "--inclusive=" + ("yes" if inclusive else "no"),
                        dump], capture_output=True, text=True, timeout=120)
    out = []
    for line in a.stdout.splitlines():
        if re.match(r"^\s*[\d,]+ \(\s*[\d.]+%\)\s+\S", line) and "PROGRAM TOTALS" not in line:
            out.append(re.sub(r"\s+", " ", line.strip()))
    return out


def final_total(s):
    """The total of the dump callgrind wrote when the stopped server exited."""
    for f in os.listdir(s.dir):
        if re.match(r"^callgrind\.out\.\d+$", f):
            return callgrind_total(os.path.join(s.dir, f))
    return None


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    return None


def vgdb(s, command):
    """Send a callgrind monitor command ("zero", "dump") to the server under
    valgrind. vgdb's forced invocation (ptrace) left Squid stopped in this VM,
    so it is off (--max-invoke-ms=0): valgrind reads the command when the
    server next runs, and a small request wakes it. Returns the number of
    wake-up requests sent (each may or may not be counted: the error bound)."""
    p = subprocess.Popen(["vgdb", "--vgdb-prefix=%s/vgdb" % s.dir, "--pid=%d" % s.proc.pid,
                          "--max-invoke-ms=0", command], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(s.dir, "vgdb.err"), "ab"), start_new_session=True)
    children.append(p)
    wakes, end = 0, time.time() + 60
    try:
        p.wait(0.5)
    except subprocess.TimeoutExpired:
        pass
    while p.poll() is None and time.time() < end:
        http_get(s.port, s.target("/obj/1k"), s.origin.host)
        wakes += 1
        try:
            p.wait(0.5)
        except subprocess.TimeoutExpired:
            pass
    stop(p)
    return wakes


def scenario_instr(origin, results):
    out = {}
    for cls in (Corral, Squid, NginxCache, NginxStatic):
        try:
            s = cls(origin, tag="-instr", valgrind=True)
        except RuntimeError as e:
            log("instr %s: %s" % (cls.name, e))
            continue
        try:
            warm(s, "/obj/1k", 20)
            wakes = vgdb(s, "zero")
            n, per = 10, INSTR_REQUESTS // 10
            r = subprocess.run(herd_client(s.port, s.target("/obj/1k"), origin.host, n, mode="seq",
                                           expect=1024, reqs=per, timeout=240),
                               capture_output=True, text=True, timeout=300)
            h = parse_kv(r.stdout)
            before = set(os.listdir(s.dir))
            wakes += vgdb(s, "dump")
            dump = None
            for _ in range(100):
                new = [f for f in os.listdir(s.dir) if f.startswith("callgrind.out") and f not in before]
                if new:
                    dump = os.path.join(s.dir, sorted(new)[-1])
                    time.sleep(0.5)
                    break
                time.sleep(0.2)
            total = callgrind_total(dump) if dump else None
            reqs = int(h.get("requests", 0))
            method = "zero/dump"
            if total is None:
                # vgdb could not reach it (Squid here): the difference between this whole
                # run and a run with the same start, warm-up and stop but no load
                s.stop()
                t1 = final_total(s)
                s2 = cls(origin, tag="-instr0", valgrind=True)
                try:
                    warm(s2, "/obj/1k", 20 + wakes)
                finally:
                    s2.stop()
                t0 = final_total(s2)
                if t1 is not None and t0 is not None:
                    total, method = t1 - t0, "difference of two runs"
            top, incl = [], []
            if dump and s.name == "corral":
                top = annotate(dump, False)[:15]
                incl = [l for l in annotate(dump, True) if l.endswith("corrald]")][:15]
            out[s.name] = {"instructions": total, "requests": reqs, "wakeups": wakes, "method": method,
                           "per_request": total / reqs if total and reqs else None, "top": top,
                           "inclusive": incl}
            log("instr %s: %s instructions for %d requests (+%d wake-ups) = %s/request" % (
                s.name, total, reqs, wakes, fmt(out[s.name]["per_request"], 0)))
        finally:
            s.stop()
    results["instr"] = out


# ---------------------------------------------------------------- report

def fmt(x, nd=None):
    if x is None:
        return "–"
    if nd is None:
        a = abs(x)
        nd = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return "%.*f" % (nd, x)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return "%.2f" % (a / b)


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def ver(argv, pat):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            m = re.search(pat, r.stdout + r.stderr)
            return m.group(1) if m else "?"
        except OSError:
            return "?"
    return {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip(),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": os.uname().release,
        "corral": ver([CORRALD, "-V"], r"(\d+\.\d+\.\d+)"),
        "squid": ver(["squid", "-v"], r"Version (\S+)"),
        "nginx": ver(["nginx", "-v"], r"nginx/(\S+)"),
        "wrk": ver(["wrk", "-v"], r"wrk (\S+)"),
    }


def report(results, info):
    L = []
    w = L.append
    w("## Results: %s" % info["date"])
    w("")
    w("Machine: %d CPUs, %s, Linux %s. corral %s, Squid %s, nginx %s, wrk %s." % (
        info["nproc"], info["cpu"], info["kernel"], info["corral"], info["squid"], info["nginx"], info["wrk"]))
    w("Servers pinned to CPU 0, clients and the origin to CPU 1. %d round(s), %d s per wrk load%s. "
      "Load average before: %s; after: %s. File descriptors: %s." % (
          ROUNDS, DUR, " (BENCH_QUICK)" if QUICK else "", info["load_before"], info.get("load_after", "?"),
          info["nofile"]))
    if load_samples:
        w("1-minute load average seen before the loads: median %.2f, max %.2f (2 would mean both CPUs "
          "busy; this bench itself keeps about 1–2 busy, so more than that is other work on the "
          "machine)." % (statistics.median(load_samples), max(load_samples)))
    w("Values are medians over the rounds. Ratios are corral ÷ the other (for req/s higher is better "
      "for corral; for latency and CPU lower is better).")
    w("")
    bars = []

    if "hits" in results:
        h = results["hits"]
        w("### 1. Hits (%d connections, keep-alive)" % HIT_CONNS)
        w("")
        w("| object | metric | corral | Squid | nginx cache | nginx static | corral/Squid | corral/nginx | corral/static |")
        w("|---|---|--:|--:|--:|--:|--:|--:|--:|")
        for size, label in SIZES:
            for key, name in (("rps", "req/s"), ("p50_ms", "p50 ms (wrk)"), ("p99_ms", "p99 ms (wrk)"),
                              ("k_p50_ms", "p50 ms (kernel timestamps)"),
                              ("k_p99_ms", "p99 ms (kernel timestamps)"), ("cpu_us", "CPU µs/req")):
                v = {s: med([r.get(key) for r in h.get("%s/%s" % (size, s), [])]) for s in
                     ("corral", "squid", "nginx", "static")}
                w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    label, name, fmt(v["corral"]), fmt(v["squid"]), fmt(v["nginx"]), fmt(v["static"]),
                    ratio(v["corral"], v["squid"]), ratio(v["corral"], v["nginx"]),
                    ratio(v["corral"], v["static"])))
        odd = ["%s %s round %d: %d origin requests, %d errors" % (k.split("/")[1], k.split("/")[0], i + 1,
                                                                   r["origin_requests"], r["errors"])
               for k, rs in h.items() for i, r in enumerate(rs) if r["origin_requests"] or r["errors"]]
        w("")
        w("Origin requests during the hit loads: %s." % ("none" if not odd else "; ".join(odd)))
        hit_ratio = [r.get("corral_hits", 0) / max(r["requests"], 1) for k, rs in h.items()
                     if k.endswith("/corral") for r in rs]
        if hit_ratio:
            w("corral's `cache_hits_total` grew by %.3f–%.3f × wrk's completed requests." % (
                min(hit_ratio), max(hit_ratio)))
        w("")
        limits = {"1k": 10, "64k": 20, "1m": 200}
        for size, label in SIZES:
            cpu = med([r["cpu_us"] for r in h.get("%s/corral" % size, [])])
            if cpu is not None:
                bars.append(("%s hits ≤ %d µs CPU/request" % (label, limits[size]), cpu <= limits[size],
                             "%s µs" % fmt(cpu), "hits-" + size))
        for key, how in (("k_p99_ms", "kernel timestamps"), ("p99_ms", "wrk")):
            p99 = {s: med([r.get(key) for r in h.get("1k/%s" % s, [])]) for s in ("corral", "squid", "nginx")}
            if p99["corral"] is not None and p99["squid"] is not None and p99["nginx"] is not None:
                bars.append(("1 KiB hits p99 below every peer's (%s)" % how,
                             p99["corral"] < min(p99["squid"], p99["nginx"]),
                             "corral %s ms, Squid %s ms, nginx %s ms" % (
                                 fmt(p99["corral"]), fmt(p99["squid"]), fmt(p99["nginx"])), "hits-1k"))

    if "misses" in results:
        m = results["misses"]
        w("### 2. Misses passed through (1 KiB, `Cache-Control: no-store`)")
        w("")
        w("| connections | metric | corral | Squid | nginx cache | origin direct | corral/Squid | corral/nginx |")
        w("|---|---|--:|--:|--:|--:|--:|--:|")
        for conns in (MISS_CONNS, 1):
            v = {}
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us"):
                v[key] = {s: med([r[key] for r in m.get("%d/%s" % (conns, s), [])]) for s in
                          ("corral", "squid", "nginx", "direct")}
            rows = [("req/s", "rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"), ("CPU µs/req", "cpu_us")]
            for name, key in rows:
                x = v[key]
                w("| %d | %s | %s | %s | %s | %s | %s | %s |" % (
                    conns, name, fmt(x["corral"]), fmt(x["squid"]), fmt(x["nginx"]),
                    fmt(x["direct"]) if key != "cpu_us" else "(origin %s)" % fmt(x["direct"]),
                    ratio(x["corral"], x["squid"]), ratio(x["corral"], x["nginx"])))
            for name, key in (("added p50 ms", "p50_ms"), ("added p99 ms", "p99_ms")):
                x = v[key]
                d = {s: (x[s] - x["direct"]) if x[s] is not None and x["direct"] is not None else None
                     for s in ("corral", "squid", "nginx")}
                w("| %d | %s | %s | %s | %s | 0 | %s | %s |" % (
                    conns, name, fmt(d["corral"]), fmt(d["squid"]), fmt(d["nginx"]),
                    ratio(d["corral"], d["squid"]), ratio(d["corral"], d["nginx"])))
        w("")
        w("CPU µs/req in the origin column is the origin's own CPU per request, for scale.")
        w("")

    if "herd" in results:
        hd = results["herd"]
        w("### 3. Herd: %d clients at once on one cold URL (headers after 500 ms, then 4 MiB over 500 ms)"
          % HERD_CLIENTS)
        w("")
        w("| body | system | upstream fetches (per round) | failures (per round) | TTFB p50 / p99 ms | "
          "TTLB p50 / p99 ms | first byte − origin's first, p99 ms | last byte − origin's last, p99 ms | "
          "proxy CPU ms | ksoftirqd/%s ms |" % SERVER_CPU)
        w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
        for variant, vlabel in (("cl", "Content-Length"), ("chunked", "chunked")):
            for s, slabel in (("corral", "corral"), ("squid", "Squid"), ("nginx", "nginx cache"),
                              ("direct", "origin direct (1 fetch per client, reference)")):
                rs = hd.get("%s/%s" % (variant, s), [])
                if not rs:
                    continue
                g = lambda k: med([r.get(k) for r in rs])  # noqa: E731
                w("| %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s | %s |" % (
                    vlabel, slabel, ", ".join(str(r["fetches"]) for r in rs),
                    ", ".join(str(r["failed"]) for r in rs), fmt(g("ttfb_p50_ms")), fmt(g("ttfb_p99_ms")),
                    fmt(g("ttlb_p50_ms")), fmt(g("ttlb_p99_ms")),
                    fmt(g("first_lag_p99_ms")) if s != "direct" else "–",
                    fmt(g("last_lag_p99_ms")) if s != "direct" else "–", fmt(g("cpu_ms"), 0),
                    fmt(g("softirqd_ms"), 0)))
            rs = hd.get("%s/corral" % variant, [])
            if rs:
                fetches = [r["fetches"] for r in rs]
                fails = [r["failed"] for r in rs]
                fl = med([r.get("first_lag_p99_ms") for r in rs])
                ll = med([r.get("last_lag_p99_ms") for r in rs])
                bars.append(("herd (%s): 1 upstream fetch" % vlabel, all(f == 1 for f in fetches),
                             "fetches per round %s" % fetches, "herd"))
                bars.append(("herd (%s): 0 failures" % vlabel, all(f == 0 for f in fails),
                             "failures per round %s" % fails, "herd"))
                floor = hd.get("fanout/http", [])
                ffl = med([r.get("first_lag_p99_ms") for r in floor])
                fll = med([r.get("last_lag_p99_ms") for r in floor])
                bars.append(("herd (%s): first byte p99 ≤ origin's first byte + 10 ms" % vlabel,
                             fl is not None and fl <= 10,
                             "+%s ms (the floor: +%s)" % (fmt(fl), fmt(ffl)), "herd"))
                bars.append(("herd (%s): last byte p99 ≤ origin's last byte + 30 ms" % vlabel,
                             ll is not None and ll <= 30,
                             "+%s ms (the floor: +%s)" % (fmt(ll), fmt(fll)), "herd"))
        w("")
        w("TTFB/TTLB count from each client's request; the two lag columns compare the clients' "
          "p99 first (last) byte with the moment the origin handed its response head (last body byte) "
          "to the kernel. Each client must receive exactly 4 MiB with status 200, or it counts as a failure. "
          "ksoftirqd/%s: the CPU time of the kernel thread that takes over the server CPU's network "
          "softirqs when they run long; not in the proxy's CPU, but it competes for the same CPU." % SERVER_CPU)
        w("")
        if hd.get("fanout/one"):
            w("The floor under the last byte, measured in the same rounds (`bench/fanout.c`: the same "
              "4 MiB in 64 pieces over 500 ms written to %d loopback connections on CPU 0 and read on "
              "CPU 1, by a forked reader that reads like the herd client, or by the herd client itself "
              "over HTTP; no proxy, no origin):" % HERD_CLIENTS)
            w("")
            w("| writer | CPU ms (per round) | first byte − heads, p50 / p99 ms | writer late at the last piece, ms | last byte − last piece, p50 / p99 ms |")
            w("|---|--:|--:|--:|--:|")
            for mode, label in (("one", "one thread, MSG_DONTWAIT (corral's parked readers)"),
                                ("http", "the same, read by the herd client (HTTP): corral's floor"),
                                ("threads", "a thread per connection, woken per piece (corral before)")):
                rs = hd.get("fanout/" + mode, [])
                if rs:
                    first = "%s / %s (%s)" % (
                        fmt(med([r.get("first_lag_p50_ms") for r in rs])),
                        fmt(med([r.get("first_lag_p99_ms") for r in rs])),
                        ", ".join(fmt(r.get("first_lag_p99_ms")) for r in rs)) \
                        if mode == "http" else "–"
                    w("| %s | %s (%s) | %s | %s | %s / %s |" % (
                        label, fmt(med([r.get("cpu_ms") for r in rs]), 0),
                        ", ".join(fmt(r.get("cpu_ms"), 0) for r in rs), first,
                        fmt(med([r.get("writer_late_ms") for r in rs])),
                        fmt(med([r.get("last_lag_p50_ms") for r in rs])),
                        fmt(med([r.get("last_lag_p99_ms") for r in rs]))))
            w("")
            w("*last byte − last piece* counts from the moment the last piece was due (the "
              "pacing, as the herd's lag counts from the origin's last byte); *writer late*: how "
              "long after that the writer got to it. When writing 4 GiB takes this VM more CPU "
              "than the 500 ms window, the writer falls behind and no proxy can do better than "
              "this floor.")
            w("")
            w("*first byte − heads*: the HTTP floor reads every request, sleeps until a byte from "
              "a process on CPU %s arrives 500 ms later (as a fetch sleeps until the origin's head; "
              "waking an idle CPU after that long is part of the cost), then writes the 1,000 "
              "response heads in one loop, one `send` each, as corral's fetch writes a herd's heads "
              "at publish; the herd client's p99 first byte minus the moment that byte was sent. "
              "It is what the first-byte bar leaves corral for everything but the wake-up and the "
              "writes." % CLIENT_CPU)
            w("")

    if "idle" in results:
        it = results["idle"]
        w("### 4. %d idle keep-alive client connections" % IDLE_CONNS)
        w("")
        w("| system | RSS before | RSS with the connections | per connection | connections held | still open at the end | threads |")
        w("|---|--:|--:|--:|--:|--:|--:|")
        for s, label in (("corral", "corral"), ("squid", "Squid"), ("nginx", "nginx (all processes)")):
            r = it.get(s)
            if not r:
                continue
            per = (r["with_kb"] - r["before_kb"]) * 1024 / max(r["ok"], 1)
            w("| %s | %s MiB | %s MiB | %s B | %d | %d | %d |" % (
                label, fmt(r["before_kb"] / 1024), fmt(r["with_kb"] / 1024), fmt(per, 0), r["ok"],
                r["still_open"], r["threads"]))
        w("")
        r = it.get("corral")
        if r:
            bars.append(("%d idle connections < 100 MiB RSS" % IDLE_CONNS,
                         r["with_kb"] < 100 * 1024 and r["ok"] >= IDLE_CONNS,
                         "%s MiB with %d connections" % (fmt(r["with_kb"] / 1024), r["ok"]), "idle"))

    if "big" in results:
        b = results["big"]
        w("### 5. One %s download through the proxy" % ("4 GiB" if BIG_BYTES == 4 << 30 else
                                                           "%d MiB" % (BIG_BYTES >> 20)))
        w("")
        w("| system | object | complete | throughput MiB/s | RSS before | peak RSS (VmHWM) | peak − before | proxy CPU s |")
        w("|---|---|---|--:|--:|--:|--:|--:|")
        for key, label, obj in (("corral/nostore", "corral", "no-store"),
                                ("corral/cache", "corral", "cacheable, larger than max_object"),
                                ("squid/nostore", "Squid", "no-store"),
                                ("nginx/nostore", "nginx cache (worker)", "no-store")):
            r = b.get(key)
            if not r:
                continue
            w("| %s | %s | %s | %s | %s MiB | %s MiB | %s MiB | %s |" % (
                label, obj, "yes" if r["complete"] else "NO (%d, %d bytes)" % (r["status"], r["bytes"]),
                fmt(r["mib_s"], 0), fmt(r["idle_kb"] / 1024), fmt(r["peak_kb"] / 1024),
                fmt((r["peak_kb"] - r["idle_kb"]) / 1024), fmt(r["cpu_s"])))
            if key.startswith("corral"):
                growth = (r["peak_kb"] - r["idle_kb"]) / 1024
                bars.append(("big download (%s): peak RSS < 64 MiB above idle" % obj,
                             growth < 64 and r["complete"], "+%s MiB, %s" % (
                                 fmt(growth), "complete" if r["complete"] else "INCOMPLETE"), "big"))
        w("")

    if "instr" in results:
        ins = results["instr"]
        w("### 6. Instructions per 1 KiB hit (callgrind: Ir over %d requests on 10 keep-alive connections)"
          % INSTR_REQUESTS)
        w("")
        w("| system | instructions/request | corral/system | how |")
        w("|---|--:|--:|---|")
        c = (ins.get("corral") or {}).get("per_request")
        for s, label in (("corral", "corral"), ("squid", "Squid"), ("nginx", "nginx cache"),
                         ("static", "nginx static (ceiling)")):
            r = ins.get(s)
            if r:
                w("| %s | %s | %s | %s |" % (label, fmt(r["per_request"], 0), ratio(c, r["per_request"]),
                                             r.get("method", "")))
        w("")
        w("`perf stat -e instructions` is not supported in this VM (no PMU), so this is valgrind's "
          "count of instructions executed in user space (all threads); kernel work (the socket reads "
          "and writes) is not in it. zero/dump: the counters are zeroed before the load and dumped after "
          "it through vgdb (a wake-up request or two may be included: ≤ 0.2%). Difference of two runs: "
          "whole run minus a run with the same start, warm-up and stop but no load (vgdb could not "
          "reach Squid under valgrind here).")
        w("")

    if bars:
        w("### Bars")
        w("")
        w("| bar | met | measured |")
        w("|---|---|---|")
        for name, ok, val, _ in bars:
            w("| %s | %s | %s |" % (name, "yes" if ok else "**no**", val))
        w("")
    return "\n".join(L), bars


def emit_profile(w, L, title, flat, sysl, cnt, n, unit):
    w(title + ":")
    w("")
    if n and cnt:
        w("- perf stat: %.2f context switches and %.3f CPU migrations per %s; %.1f µs task-clock per %s "
          "(inflated by the sampling itself)" % (
            cnt.get("context-switches", 0) / n, cnt.get("cpu-migrations", 0) / n, unit,
            cnt.get("task-clock", 0) * 1000 / n, unit))
    w("- self time, entries ≥ 1%:")
    w("")
    w("```")
    L.extend(flat)
    w("```")
    if sysl:
        w("")
        w("- time under each system call (inclusive):")
        w("")
        w("```")
        L.extend(sysl)
        w("```")
    w("")


def profiles_section(results, bars, origin):
    """perf record / callgrind on corrald for each scenario whose bar was missed."""
    missed = sorted({b[3] for b in bars if not b[1]})
    if not missed or not PROFILE:
        return ""
    L = ["### Profiles of corrald where a bar was missed", ""]
    w = L.append
    hit_sizes = [m[5:] for m in missed if m.startswith("hits-")]
    if hit_sizes or "herd" in missed:
        s = Corral(origin, tag="-profile")
        try:
            for size in hit_sizes:
                warm(s, "/obj/" + size)
                flat, sysl, cnt, res = perf_profile(s.main_pid(), DUR + 1, "hits-" + size,
                                                    lambda: wrk(s, "/obj/" + size, HIT_CONNS, DUR))
                emit_profile(w, L, "%s hits: `perf record -g -e cpu-clock` on corrald during a %d s wrk load "
                             "(%d connections)" % (dict(SIZES)[size], DUR, HIT_CONNS), flat, sysl, cnt,
                             res["requests"] if res else 0, "request")
            if "herd" in missed:
                # the framing whose bar was missed (Content-Length if both)
                cl_missed = any(not b[1] and "(Content-Length)" in b[0] for b in bars)
                variant, vlabel = ("cl", "Content-Length") if cl_missed else ("chunked", "chunked")
                path_tag = "%x" % int(time.time())
                flat, sysl, cnt, res = perf_profile(s.main_pid(), 8, "herd",
                                                    lambda: herd_once(s, variant, "profile-" + path_tag, 9))
                emit_profile(w, L, "Herd (%s): `perf record -g -e cpu-clock` on corrald during "
                             "one herd of %d clients" % (vlabel, HERD_CLIENTS), flat, sysl, cnt,
                             HERD_CLIENTS, "client")
        finally:
            s.stop()
    ins = results.get("instr", {}).get("corral", {})
    if "hits-1k" in missed and ins.get("top"):
        w("1 KiB hits, callgrind over %d requests: instructions by function, self (top 15):" % ins["requests"])
        w("")
        w("```")
        L.extend(ins["top"])
        w("```")
        w("")
        if ins.get("inclusive"):
            w("and inclusive, corrald's own functions (top 15):")
            w("")
            w("```")
            L.extend(ins["inclusive"])
            w("```")
            w("")
    for key, title in (("idle", "idle connections"), ("big", "big download")):
        if key not in missed:
            continue
        if key == "idle":
            tops = [("idle", results.get("idle", {}).get("corral", {}).get("smaps_top", []))]
        else:
            tops = [(k, v.get("smaps_top", [])) for k, v in results.get("big", {}).items()
                    if k.startswith("corral")]
        for name, top in tops:
            if not top:
                continue
            w("%s (%s): corrald's largest mappings by RSS (/proc/PID/smaps):" % (title, name))
            w("")
            w("```")
            for rss, count, mname in top:
                w("%10d KiB  %5d mapping(s)  %s" % (rss, count, mname))
            w("```")
            w("")
    return "\n".join(L)


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    info = machine_info()
    info["load_before"] = open("/proc/loadavg").read().split()[:3]
    info["load_before"] = " ".join(info["load_before"])
    import resource
    info["nofile"] = "%d (soft), %d (hard)" % resource.getrlimit(resource.RLIMIT_NOFILE)
    log("run directory %s; %d round(s), %d s loads%s" % (RUN, ROUNDS, DUR, ", quick" if QUICK else ""))
    results = {}
    t_start = time.time()
    origin = None
    try:
        origin = Origin()
        if want("hits") or want("misses") or want("herd"):
            systems = []
            try:
                systems = [Corral(origin), Squid(origin), NginxCache(origin)]
                if want("hits"):
                    scenario_hits(systems + [NginxStatic(origin)], results)
                if want("misses"):
                    scenario_misses(systems + [Direct(origin)], results)
                if want("herd"):
                    scenario_herd(systems, origin, results)
            finally:
                for s in systems:
                    s.stop()
                stop_all_but(origin)
        if want("idle"):
            scenario_idle(origin, results)
        if want("big"):
            scenario_big(origin, results)
        if want("instr"):
            scenario_instr(origin, results)
        info["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
        text, bars = report(results, info)
        prof = profiles_section(results, bars, origin)
        if prof:
            text += "\n" + prof
        text += "\nTotal time: %.0f s.\n" % (time.time() - t_start)
        print(text)
        out = os.environ.get("BENCH_OUT")
        if out:
            with open(out, "w") as f:
                f.write(text)
            with open(os.path.splitext(out)[0] + ".json", "w") as f:
                json.dump({"info": info, "results": results}, f, indent=1, default=str)
            log("report written to %s" % out)
    finally:
        stop_all()


def stop_all_but(keep):
    for p in list(children):
        if p is not keep.proc:
            stop(p, 5.0)


if __name__ == "__main__":
    main()
