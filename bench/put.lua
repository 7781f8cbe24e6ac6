-- put.lua - wrk script of bench/run.sh: PUTs of one body to distinct paths.
--
--   wrk -t1 -c16 -d5s -s bench/put.lua URL -- BODYFILE PREFIX
--
-- Request n goes to PREFIX..n..".bin" (PREFIX like /files/put/r1-native/);
-- every path is new, so every answer is 201.  Needs -t1 (one counter).
local body, prefix, n
local headers = { ["Content-Type"] = "application/octet-stream" }

function init(args)
   local f = assert(io.open(args[1], "rb"))
   body = f:read("*a")
   f:close()
   prefix, n = args[2], 0
end

function request()
   n = n + 1
   return wrk.format("PUT", prefix .. n .. ".bin", headers, body)
end
