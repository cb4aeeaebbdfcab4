-- wrk script for corral's benchmarks.
--
-- BENCH_TARGET: the request target. An absolute URL ("http://127.0.0.1:PORT/obj/1k")
--   makes wrk send absolute-form request lines, as a client of a forward proxy
--   does; a plain path ("/obj/1k") is for the reverse proxy and the origin.
-- BENCH_HOST: the Host header (the origin's host:port).
-- At the end one line is printed for bench/bench.py to parse:
--   BENCH requests=N duration_us=N errors=N lat_p50_us=N lat_p99_us=N ...

local target = os.getenv("BENCH_TARGET")
local host = os.getenv("BENCH_HOST")
if target and target ~= "" then
   wrk.path = target
end
if host and host ~= "" then
   wrk.headers["Host"] = host
end
wrk.headers["User-Agent"] = "corral-bench-wrk"

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d errors=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
      "lat_p50_us=%d lat_p90_us=%d lat_p99_us=%d lat_max_us=%d lat_mean_us=%.1f\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect + e.read + e.write + e.status + e.timeout,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
