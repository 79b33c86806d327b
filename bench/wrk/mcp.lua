-- tools/call on one MCP Streamable HTTP session, for wrk (bench/peers.py runs it; docs/performance.md).
-- The harness does the initialize handshake and passes, in the environment:
--   MCP_SESSION  the Mcp-Session-Id to call on (empty: the server is stateless)
--   MCP_TOKEN    a bearer token (empty: no auth)
--   MCP_TOOL     the tool's name at this target (echo, fx__echo)
--   MCP_TEXT     the text echo must answer with
-- A call counts as good when the status is 200 and the body holds the echoed text; anything else is
-- an error. done() prints one line "mcpbench {json}" that bench/wrkout.py parses.

local session = os.getenv("MCP_SESSION") or ""
local token = os.getenv("MCP_TOKEN") or ""
local tool = os.getenv("MCP_TOOL") or "echo"
local text = os.getenv("MCP_TEXT") or "wrk"
local expect = '"text"%s*:%s*"' .. (text:gsub("%p", "%%%0")) .. '"' -- a Lua pattern

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
if session ~= "" then wrk.headers["Mcp-Session-Id"] = session end
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
-- Request ids must differ: a session routes each answer to its POST by the JSON-RPC id.
local body_head = '{"jsonrpc":"2.0","id":'
local body_tail = ',"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"text":"' .. text .. '"}}}'

local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  good, bad_status, bad_body, first_status = 0, 0, 0, 0
  next_id = tid * 1000000000
end

function request()
  next_id = next_id + 1
  return wrk.format(nil, nil, nil, body_head .. next_id .. body_tail)
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
