-- wrk script: POST /transactions with a JSON body (no precision/reference, so the proxy's
-- transaction defaults (DESIGN §4) run on every request) and the proxy credential.
-- BENCH_AUTH holds the full Authorization header value ("Bearer blnk_…"); run.sh sets it.
wrk.method = "POST"
wrk.body = '{"amount":750,"currency":"USD","source":"@world",' ..
           '"destination":"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3",' ..
           '"description":"bench transfer","allow_overdraft":true,' ..
           '"meta_data":{"order_id":"ord_123456","channel":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
    wrk.headers["Authorization"] = auth
end
