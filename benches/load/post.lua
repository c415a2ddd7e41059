-- wrk script: POST a fixed body (BODY_FILE) with a fresh delivery id in ID_HEADER on each
-- request; with STOP_AFTER set, wrk exits after that many answers, printing
-- "stopped <answers> <non-2xx answers>" (wrk.thread:stop() would wait out -d).
local body_file = os.getenv("BODY_FILE")
local id_header = os.getenv("ID_HEADER")
local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
local f = assert(io.open(body_file, "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
for name, value in string.gmatch(os.getenv("EXTRA_HEADERS") or "", "([^:;]+):([^;]*)") do
  wrk.headers[name] = value
end
local n = 0
-- Unique per wrk run (LuaJIT's math.random is unseeded: the same in every run, so
-- later rounds would resend earlier ids and be answered as duplicates).
local prefix = os.getenv("ID_PREFIX") or tostring(os.time())
request = function()
  n = n + 1
  if id_header and id_header ~= "" then
    wrk.headers[id_header] = "d-" .. prefix .. "-" .. n
  end
  return wrk.format(nil, nil)
end
local answered, bad = 0, 0
response = function(status)
  answered = answered + 1
  if status >= 300 then bad = bad + 1 end
  if stop_after > 0 and answered >= stop_after then
    io.write(string.format("stopped %d %d\n", answered, bad))
    io.flush()
    os.exit(0)
  end
end
