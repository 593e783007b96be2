-- wrk script shared by every HTTP workload of the bench.
-- The request is built once per thread from environment variables (no
-- per-request Lua callback, so wrk keeps its fast path):
--   BENCH_METHOD     GET or POST
--   BENCH_BODY_FILE  file whose content is the request body (optional)
--   BENCH_HEADERS    "Name: value" lines separated by "\n" (optional)
-- done() prints one line "BENCH_JSON {...}" that bench/wrk.py parses: exact
-- percentiles and every error counter, instead of scraping wrk's text report.

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
   local f = assert(io.open(body_file, "rb"))
   wrk.body = f:read("*a")
   f:close()
end

local headers = os.getenv("BENCH_HEADERS") or ""
for line in headers:gmatch("[^\n]+") do
   local name, value = line:match("^([^:]+):%s*(.*)$")
   if name then
      wrk.headers[name] = value
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
