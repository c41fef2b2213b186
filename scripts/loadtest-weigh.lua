-- wrk script for scripts/loadtest-weigh.sh: POST one weigh request, as the
-- Nova shim sends it, on every connection; print a one-line summary.
local path = os.getenv("WEIGH_BODY") or "etc/examples/weigh-100-hosts.json"
local f = assert(io.open(path, "rb"), "cannot open WEIGH_BODY " .. path)
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "SUMMARY requests=%d seconds=%.1f rps=%.0f p50_ms=%.3f p90_ms=%.3f " ..
    "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors_connect=%d errors_read=%d " ..
    "errors_write=%d errors_timeout=%d non2xx=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    latency.max / 1000, e.connect, e.read, e.write, e.timeout, e.status))
end
