-- wrk script: POST /transactions (the body of post.lua) with an Idempotency-Key, for
-- bench/idempotency.sh. BENCH_IDEM=unique: a new key on every request (each one a first request:
-- a claim and a stored answer); BENCH_IDEM=same: one key for every request (after the first, each
-- one a replay from the store). BENCH_IDEM_PREFIX keeps the keys of one run apart from another's.
wrk.method = "POST"
wrk.body = '{"amount":750,"currency":"USD","source":"@world",' ..
           '"destination":"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3",' ..
           '"description":"bench transfer","allow_overdraft":true,' ..
           '"meta_data":{"order_id":"ord_123456","channel":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
local mode = os.getenv("BENCH_IDEM") or "unique"
local prefix = os.getenv("BENCH_IDEM_PREFIX") or "run"
local n = 0

request = function()
    if mode == "same" then
        wrk.headers["Idempotency-Key"] = prefix .. "-same"
    else
        n = n + 1
        wrk.headers["Idempotency-Key"] = prefix .. "-" .. n
    end
    return wrk.format()
end
