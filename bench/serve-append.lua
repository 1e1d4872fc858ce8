-- wrk script: single-event appends to `backorder serve` (bench/RESULTS.md, "serve").
-- Each request registers a new customer with a unique id, so every one is appended (no
-- duplicates, no conflicts). Usage:
--   wrk -t2 -c64 -d10s -s bench/serve-append.lua http://127.0.0.1:8080
local counter = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  -- `thread_id` is set by setup(); `run` tells this run's customers from earlier runs'.
  math.randomseed(os.time() * 100 + thread_id)
  run = math.random(0, 2^30)
end

function request()
  counter = counter + 1
  local n = string.format("%d-%d-%d", run, thread_id, counter)
  local body = string.format('{"type":"CustomerRegistered","actor":"bench","data":{"customerId":"C-%s","number":"%s","name":"Bench %s"}}\n', n, n, n)
  return wrk.format("POST", "/v1/tenants/bench/events", {["Content-Type"] = "application/x-ndjson"}, body)
end

function response(status, headers, body)
  if status ~= 201 then
    print("status " .. status .. ": " .. body)
  end
end
