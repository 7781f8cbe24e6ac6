-- keys.lua - wrk script of bench/run.sh: GETs over a list of keys, timed by
-- the script itself (CLOCK_MONOTONIC through LuaJIT's ffi), so that a run
-- can end after a number of answers instead of after wrk's -d.
--
--   wrk -t1 -c16 -d30s -s bench/keys.lua URL -- KEYFILE MODE SECONDS OUTFILE
--
-- KEYFILE  one URL path per line
-- MODE     once: each key exactly once (the cold GET: N distinct keys, each
--                fetched once).  After the last key is handed out, the
--                connections that become free ask for /bench-noop (410 by
--                bench/common.conf, not counted) until every key is answered
--          loop: cycle over the keys for wrk's -d (SECONDS and OUTFILE are
--                ignored; wrk prints its usual summary).  No response()
--                callback then, so the client costs what plain wrk costs.
-- OUTFILE  (once) gets "requests N" (200s), "bad N" (other answers about keys),
--          "seconds S", "rate R" (200s per second), one "status CODE=N" line
--          per status seen; then the process exits (no wrk summary).
--          Needs -t1.  If wrk's -d ends first, no OUTFILE is written.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now()
   ffi.C.clock_gettime(1, ts)           -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local reqs, noop = {}, nil
local mode, secs, out
local issued, ok, bad = 0, 0, 0
local statuses = {}
local t0

function init(args)
   mode, secs, out = args[2], tonumber(args[3]), args[4]
   for line in io.lines(args[1]) do
      if #line > 0 then reqs[#reqs + 1] = wrk.format("GET", line) end
   end
   noop = wrk.format("GET", "/bench-noop")
   if mode == "loop" then
      response = nil
   end
end

-- wrk calls request() once right after init() to check the script
-- (script_verify_request); that call sends nothing, so it must not use up
-- a key or start the clock.
local verified = false

function request()
   if not verified then
      verified = true
      return reqs[1]
   end
   if not t0 then t0 = now() end
   issued = issued + 1
   if mode == "once" then
      if issued > #reqs then return noop end
      return reqs[issued]
   end
   return reqs[(issued - 1) % #reqs + 1]
end

local function finish()
   local dt = now() - t0
   local f = assert(io.open(out, "w"))
   f:write(string.format("requests %d\nbad %d\nseconds %.6f\nrate %.1f\n",
                         ok, bad, dt, ok / dt))
   for code, n in pairs(statuses) do
      f:write(string.format("status %d=%d\n", code, n))
   end
   f:close()
   os.exit(0)
end

function response(status, headers, body)
   if mode == "once" and status == 410 then return end
   statuses[status] = (statuses[status] or 0) + 1
   if status == 200 then ok = ok + 1 else bad = bad + 1 end
   if ok + bad >= #reqs then finish() end
end
