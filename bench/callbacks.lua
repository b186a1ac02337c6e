-- wrk script for bench/callbacks.py: Daraja C2B confirmations, each with a fresh TransID.
--
--   wrk -t1 -c64 -d12s -s bench/callbacks.lua URL -- SECONDS PREFIX
--
-- Sends for SECONDS (timed with clock_gettime through LuaJIT's ffi), then only waits:
-- every confirmation sent gets its answer before the thread stops, so the count of
-- acknowledgements is exact and can be held against the ledger (requests cut in flight
-- at wrk's deadline would be neither acknowledged nor known to be lost). While the last
-- answers come in, connections that would otherwise send again ask GET /healthz. Prints
-- one line "PESABRIDGE-BENCH {json}" with the counts and wrk's latency percentiles.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } pb_timespec;
int clock_gettime(int clock, pb_timespec *ts);
]]
local ts = ffi.new("pb_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  seconds = tonumber(args[1] or "10")
  prefix = string.format("%s%02d", args[2] or "WRK", tid)
  sent, answered, acked, refused, other = 0, 0, 0, 0, 0
  started, finished, primed = nil, nil, false
  headers = { ["Content-Type"] = "application/json" }
  health = wrk.format("GET", "/healthz")
end

function request()
  if not primed then
    -- wrk asks each thread for one request before its connections start and never
    -- sends it: counting it would leave one confirmation forever "unanswered"
    primed = true
    return health
  end
  local t = now()
  if started == nil then
    started = t
  end
  if t - started >= seconds then
    return health
  end
  sent = sent + 1
  local body = string.format(
    '{"TransactionType":"Pay Bill","TransID":"%s%08d","TransTime":"20240115093012",' ..
    '"TransAmount":"%d.00","BusinessShortCode":"600977","BillRefNumber":"INV-%d",' ..
    '"InvoiceNumber":"","OrgAccountBalance":"","ThirdPartyTransID":"",' ..
    '"MSISDN":"2547 ***** 126","FirstName":"WRK"}',
    prefix, sent, 100 + sent % 900, sent)
  return wrk.format("POST", nil, headers, body)
end

function response(status, hdrs, body)
  if string.find(body, "ResultCode", 1, true) then
    answered = answered + 1
    if status == 200 then
      acked = acked + 1
    else
      refused = refused + 1
    end
  elseif status ~= 200 then
    other = other + 1
  end
  if started ~= nil and answered == sent and now() - started >= seconds then
    finished = now()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local out = { sent = 0, answered = 0, acked = 0, refused = 0, other = 0, seconds = 0 }
  for _, thread in ipairs(threads) do
    for _, key in ipairs({ "sent", "answered", "acked", "refused", "other" }) do
      out[key] = out[key] + (thread:get(key) or 0)
    end
    local s, f = thread:get("started"), thread:get("finished")
    if s ~= nil and f ~= nil and f - s > out.seconds then
      out.seconds = f - s
    end
  end
  io.write(string.format(
    'PESABRIDGE-BENCH {"sent":%d,"answered":%d,"acked":%d,"refused":%d,"other":%d,' ..
    '"seconds":%.6f,"p50_ms":%.3f,"p99_ms":%.3f,"socket_errors":%d}\n',
    out.sent, out.answered, out.acked, out.refused, out.other, out.seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
