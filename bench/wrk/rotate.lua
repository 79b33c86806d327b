-- Session-less 2026-07-28 tools/call POSTs, the bearer rotating over a file of McpTokens, for wrk
-- (bench/peers_scaling.py runs it; docs/performance.md "The scaling part"). In the environment:
--   MCP_TOKENS_FILE  one token a line; thread t of T sends tokens t, t+T, t+2T, ... (wrapping), so
--                    every token is used in turn and the threads together go round the whole file
--   MCP_THREADS      T, the number of wrk threads (-t)
--   MCP_TOOL         the tool's name at this target (e.g. s01__echo)
--   MCP_TEXT         the text echo must answer with
-- No initialize and no session: every request carries MCP-Protocol-Version, the routing headers
-- (Mcp-Method, Mcp-Name) and the client's `_meta`, as a 2026-07-28 client sends them. A call counts
-- as good when the status is 200 and the body holds the echoed text; done() prints one
-- "mcpbench {json}" line in the format bench/wrkload.py parses.

local tool = os.getenv("MCP_TOOL") or "echo"
local text = os.getenv("MCP_TEXT") or "wrk"
local path = os.getenv("MCP_TOKENS_FILE") or ""
local thread_count = tonumber(os.getenv("MCP_THREADS") or "1") or 1
local expect = '"text"%s*:%s*"' .. (text:gsub("%p", "%%%0")) .. '"' -- a Lua pattern

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = tool
local body_head = '{"jsonrpc":"2.0","id":'
local body_tail = ',"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"text":"' .. text
  .. '"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
  .. '"io.modelcontextprotocol/clientInfo":{"name":"mcpctl-bench","version":"1"},'
  .. '"io.modelcontextprotocol/clientCapabilities":{}}}}'

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  good, bad_status, bad_body, first_status = 0, 0, 0, 0
  next_id = tid * 1000000000
  tokens = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(tokens, line) end
  end
  step = thread_count
  at = ((tid - 1) % #tokens) + 1 -- 1-based: this thread's first token
  headers = {} -- wrk.format takes its headers whole: wrk.headers and this thread's bearer
  for name, value in pairs(wrk.headers) do headers[name] = value end
end

function request()
  next_id = next_id + 1
  local token = tokens[at]
  at = at + step
  if at > #tokens then at = ((at - 1) % #tokens) + 1 end
  headers["Authorization"] = "Bearer " .. token
  return wrk.format(nil, nil, headers, body_head .. next_id .. body_tail)
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
    if first_status == 0 then first_status = status end
  elseif body == nil or not string.find(body, expect) then
    bad_body = bad_body + 1
  else
    good = good + 1
  end
end

function done(summary, latency, requests)
  local good, bad_status, bad_body, first = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("good")
    bad_status = bad_status + thread:get("bad_status")
    bad_body = bad_body + thread:get("bad_body")
    if first == 0 then first = thread:get("first_status") end
  end
  local e = summary.errors
  io.write(string.format(
    'mcpbench {"requests":%d,"duration_us":%d,"good":%d,"bad_status":%d,"bad_body":%d,"first_status":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, good, bad_status, bad_body, first,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
