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
local ids, sigs = {}, {}
local signed_file = os.getenv("SIGNED_FILE") or ""
if signed_file ~= "" then
  for line in io.lines(signed_file) do
    local id, sig = line:match("^(%S+) (%S+)$")
    ids[#ids + 1], sigs[#sigs + 1] = id, sig
  end
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local id
  if #ids > 0 then
    -- Past the end, ids repeat and are answered as duplicates: run.sh sizes the file.
    local i = (n - 1) % #ids + 1
    id = ids[i]
    wrk.headers[sig_header] = sigs[i]
  else
    id = prefix .. "-" .. n
  end
  if id_header ~= "" then
    wrk.headers[id_header] = id
  end
  return wrk.format(nil, nil, nil, head .. id .. tail)
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
