-- wrk script: POSTs BODY_FILE, a JSON template whose "@ID@" becomes a fresh delivery id
-- on each request, also sent in ID_HEADER (when set). With SIGNED_FILE (lines "id
-- signature", made by run.sh for one run), the ids come from it with their signatures in
-- SIG_HEADER: each request is signed and unique, so dedupe forwards it (a signature that
-- does not cover the id also claims the signed body: a new id alone would be a replay).
-- With STOP_AFTER, wrk exits after that many answers, printing
-- "stopped <answers> <non-2xx answers>" (wrk.thread:stop() would wait out -d).
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
local head, tail = f:read("*a"):match("^(.-)@ID@(.*)$")
f:close()
local id_header = os.getenv("ID_HEADER") or ""
local sig_header = os.getenv("SIG_HEADER") or ""
local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
-- Unique per wrk run (LuaJIT's math.random is unseeded: the same in every run).
local prefix = os.getenv("ID_PREFIX") or tostring(os.time())
-- The signed file is kept as one string, its lines of equal length ("<id> <signature>\n"):
-- a table of a million small strings made LuaJIT's collector stall wrk for milliseconds.
local signed, line_len, id_len, signed_count = nil, 0, 0, 0
local signed_file = os.getenv("SIGNED_FILE") or ""
if signed_file ~= "" then
  local f = assert(io.open(signed_file, "rb"))
  signed = f:read("*a")
  f:close()
  line_len = signed:find("\n", 1, true)
  id_len = signed:find(" ", 1, true) - 1
  signed_count = #signed / line_len
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local id
  if signed then
    -- Past the end, ids repeat and are answered as duplicates: run.sh sizes the file.
    local at = ((n - 1) % signed_count) * line_len
    id = signed:sub(at + 1, at + id_len)
    wrk.headers[sig_header] = signed:sub(at + id_len + 2, at + line_len - 1)
  else
    id = prefix .. "-" .. n
  end
  if id_header ~= "" then
    wrk.headers[id_header] = id
  end
  return wrk.format(nil, nil, nil, head .. id .. tail)
end
-- With DELAY_MS, each connection waits that long after each answer: every row is then
-- offered the same load, and its latency is compared at that load, not at saturation.
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
if delay_ms > 0 then
  delay = function() return delay_ms end
end
-- Only when needed: a response hook makes wrk parse every answer in Lua.
if stop_after > 0 then
  local answered, bad = 0, 0
  response = function(status)
    answered = answered + 1
    if status >= 300 then bad = bad + 1 end
    if answered >= stop_after then
      io.write(string.format("stopped %d %d\n", answered, bad))
      io.flush()
      os.exit(0)
    end
  end
end
-- wrk's own summary stops at p99.
done = function(summary, latency, requests)
  io.write(string.format("percentiles_us %d %d %d\n", latency:percentile(50),
    latency:percentile(99), latency:percentile(99.9)))
end
