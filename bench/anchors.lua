-- wrk script of bench/anchors.sh: the same request for every peer. BENCH_WORKLOAD is get or post;
-- BENCH_AUTH is the whole Authorization value ("Bearer ..."). Only static fields, no request() or
-- response() hooks, so wrk sends its pre-built request; done() prints one line anchors.sh reads.
-- The POST body has precision and reference, so no peer rewrites it (post.lua, used by run.sh,
-- leaves them out to measure blnkproxy's transaction defaults instead).
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
    wrk.headers["Authorization"] = auth
end
wrk.headers["Accept"] = "application/json"

if os.getenv("BENCH_WORKLOAD") == "post" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = '{"amount":750,"precision":100,"reference":"ref_001adcfgf","description":"For fees",' ..
               '"currency":"USD","source":"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3",' ..
               '"destination":"bln_ebcd230f-6265-4d4a-a4ca-45974c47f746","allow_overdraft":false,' ..
               '"meta_data":{"merchant_name":"Example","customer_id":"cust_0192837465"}}'
end

done = function(summary, latency, _)
    local e = summary.errors
    io.write(string.format("BENCH_RESULT %d %.1f %d %d %d %d\n", summary.requests,
        summary.requests / (summary.duration / 1e6), latency:percentile(50),
        latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
