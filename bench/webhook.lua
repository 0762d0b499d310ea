-- wrk script for the intake benchmark: POST a group of 10 alerts, each request a new delivery.
--
--   wrk -t1 -c16 -d15s --latency -s bench/webhook.lua http://127.0.0.1:PORT/webhook/alertmanager -- BODY PHASE
--
-- BODY is a file holding the template written by bench/payloads.py; every "@UID@" in it is replaced by
-- phase (2 hex digits), thread (2) and a per-thread request counter (8), so group key and fingerprints are new
-- on every request and deduplication never makes a request cheaper. The same script drives /noop, so both
-- endpoints receive the same bytes. done() prints one line "BENCH-JSON {...}" with the exact figures.

local counter = 0
local next_thread = 0
local template = nil
local phase = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  template = file:read("*a")
  file:close()
  phase = tonumber(args[2])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local uid = string.format("%02x%02x%08x", phase, thread_index, counter)
  local body = template:gsub("@UID@", uid)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"duration_us":%d,"requests":%d,"bytes":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,' ..
    '"p99":%d,"p999":%d,"max":%d}}\n',
    summary.duration, summary.requests, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
