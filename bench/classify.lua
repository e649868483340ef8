-- wrk script for bench/load.sh: POSTs the JSON bodies of $VOC_BENCH_BODIES (one a line)
-- in turn to /classify, counts 2xx answers and writes the transcript ids they carry to
-- $VOC_BENCH_IDS.<thread>, so the script can check each one against Postgres.
-- With $VOC_BENCH_DELAY_MS set, each connection waits that long before each request, which
-- caps the rate. With $VOC_BENCH_DELAY_FILE set too, the wait is read again from that file
-- every 50 requests (bench/pace.py rewrites it to hold bench/trust.sh's soak at a share of
-- the peak).
local bodies = {}
local delay_ms = tonumber(os.getenv("VOC_BENCH_DELAY_MS") or "")
local delay_file = os.getenv("VOC_BENCH_DELAY_FILE")
local since_read = 0
if delay_ms then
  function delay()
    if delay_file then
      since_read = since_read + 1
      if since_read >= 50 then
        since_read = 0
        local f = io.open(delay_file, "r")
        if f then
          delay_ms = tonumber(f:read("*l") or "") or delay_ms
          f:close()
        end
      end
    end
    return delay_ms
  end
end
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  for line in io.lines(os.getenv("VOC_BENCH_BODIES")) do
    table.insert(bodies, line)
  end
  ok = 0
  idx = math.random(#bodies)
  ids = io.open(os.getenv("VOC_BENCH_IDS") .. "." .. tid, "w")
  ids:setvbuf("line")
end

function request()
  idx = idx % #bodies + 1
  return wrk.format("POST", "/classify", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. (os.getenv("VOC_BENCH_KEY") or "")}, bodies[idx])
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    local found = {}
    for id in string.gmatch(body, '"transcript_id":"([%x%-]+)"') do
      table.insert(found, id)
    end
    ids:write(table.concat(found, "\n"), "\n")
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("ok")
  end
  io.write(string.format("2xx_responses %d\n", total))
  io.write(string.format("latency_ms p50 %.2f p90 %.2f p99 %.2f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("requests_per_s %.1f\n", summary.requests / (summary.duration / 1e6)))
end
