#!/usr/bin/env bash
# Benchmark: wrk straight at a fast fake Core (nginx answering canned JSON) vs wrk through
# blnkproxy in front of the same nginx, in one run, so the difference is what the proxy costs.
# It builds nothing. See bench/README.md for what it measures and how to read the table.
#
#   BLNKPROXY_BIN=build/blnkproxy bench/run.sh
#
# Knobs (environment): BLNKPROXY_BIN (default build/blnkproxy, relative to the repo root),
# BENCH_DURATION (default 10s), BENCH_CONNECTIONS (default "32 256"), BENCH_WORKERS (proxy
# --workers, default 1), BENCH_LOG_LEVEL (proxy --log-level, default info: access log on, as in
# production), BENCH_KEEP=1 keeps the temp dir for inspection.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

# die, stop_pid, free_port, wait_http, cpu_ticks; bin, nginx_bin, wrk_bin, clk_tck.
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-"32 256"}
workers=${BENCH_WORKERS:-1}
log_level=${BENCH_LOG_LEVEL:-info}

[ -x "$bin" ] || die "blnkproxy binary not found at $bin (build it, or set BLNKPROXY_BIN)"
[ -x "$nginx_bin" ] || die "nginx not found at $nginx_bin (apt-get install nginx-light, or set NGINX_BIN)"
command -v "$wrk_bin" >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/blnkproxy-bench.XXXXXX")
nginx_pid=""
proxy_pid=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$proxy_pid"
    stop_pid "$nginx_pid"
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Many connections on both sides of the proxy; raise the soft fd limit for our children if we can.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true



nginx_accepts() {
    # "Active connections: 1 \n server accepts handled requests\n 12 12 40 ..." → 12
    curl -s --max-time 2 "http://127.0.0.1:$nginx_port/nginx_status" | awk 'NR == 3 { print $1 }'
}


# --- fake Core: nginx ---------------------------------------------------------------------------
mkdir -p "$tmp/nginx"
nginx_port=""
for _ in 1 2 3 4 5; do
    nginx_port=$(free_port)
    sed -e "s#@TMPDIR@#$tmp/nginx#g" -e "s#@PORT@#$nginx_port#g" "$here/nginx.conf.template" \
        >"$tmp/nginx/nginx.conf"
    "$nginx_bin" -p "$tmp/nginx" -e "$tmp/nginx/nginx-error.log" -c "$tmp/nginx/nginx.conf" \
        >"$tmp/nginx/stdout.log" 2>&1 &
    nginx_pid=$!
    if wait_http "http://127.0.0.1:$nginx_port/ledgers" "$nginx_pid"; then
        break
    fi
    stop_pid "$nginx_pid"
    nginx_pid=""
    grep -q 'Address already in use' "$tmp/nginx/stdout.log" "$tmp/nginx/nginx-error.log" 2>/dev/null || break
done
if [ -z "$nginx_pid" ]; then
    cat "$tmp/nginx/nginx-error.log" "$tmp/nginx/stdout.log" >&2 2>/dev/null || true
    die "nginx did not start"
fi

# --- blnkproxy: instance, key, server ------------------------------------------------------------
db="$tmp/bench.db"
BENCH_CORE_SECRET="bench-core-secret-$RANDOM$RANDOM"
export BENCH_CORE_SECRET
inst_json=$("$bin" instance add --db "$db" --name bench-core --url "http://127.0.0.1:$nginx_port" \
    --secret-key-env BENCH_CORE_SECRET --json) || die "instance add failed"
instance_id=$(printf '%s' "$inst_json" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
[ -n "$instance_id" ] || instance_id=$(printf '%s' "$inst_json" | sed -n 's/.*"id":"\(instance_[^"]*\)".*/\1/p')
[ -n "$instance_id" ] || die "could not read the instance id from: $inst_json"
key_json=$("$bin" key create --db "$db" --name bench --scopes proxy:read,proxy:write \
    --expires-in never --instances "$instance_id" --json) || die "key create failed"
api_key=$(printf '%s' "$key_json" | sed -n 's/.*"key":"\(blnk_[0-9a-f]*\)".*/\1/p')
[ -n "$api_key" ] || die "could not read the API key from key create's output"
unset key_json

proxy_log="$tmp/proxy.log"
: >"$proxy_log"
"$bin" serve --db "$db" --listen 127.0.0.1:0 --workers "$workers" --log-level "$log_level" \
    2>>"$proxy_log" >/dev/null &
proxy_pid=$!
proxy_port=""
for _ in $(seq 1 100); do
    proxy_port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9][0-9]*\).*/\1/p' "$proxy_log" | head -n1)
    [ -n "$proxy_port" ] && break
    kill -0 "$proxy_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$proxy_port" ]; then
    if [ "$log_level" != info ] && [ "$log_level" != debug ]; then
        echo "bench: note: the listening line is logged at info; BENCH_LOG_LEVEL=$log_level hides it" >&2
    fi
    tail -n 20 "$proxy_log" >&2 || true
    die "blnkproxy serve did not report a listening port"
fi

direct_base="http://127.0.0.1:$nginx_port"
proxy_base="http://127.0.0.1:$proxy_port/proxy"
proxy_query="?instance_id=$instance_id"
auth="Bearer $api_key"

# --- smoke check: refuse to benchmark a proxy that answers errors fast --------------------------
check() {
    # check NAME EXPECTED_STATUS curl-args...
    local name=$1 want=$2 got
    shift 2
    got=$(curl -s -o "$tmp/check.body" -w '%{http_code}' --max-time 5 "$@") || got="000"
    if [ "$got" != "$want" ]; then
        echo "bench: $name: expected HTTP $want, got $got; body:" >&2
        head -c 600 "$tmp/check.body" >&2 || true
        echo >&2
        tail -n 5 "$proxy_log" >&2 || true
        exit 1
    fi
}
post_body='{"amount":750,"currency":"USD","source":"@world","destination":"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3","description":"bench transfer"}'
check "direct GET /ledgers" 200 "$direct_base/ledgers"
check "proxy GET /ledgers" 200 -H "Authorization: $auth" "$proxy_base/ledgers$proxy_query"
cmp -s "$tmp/check.body" <(curl -s "$direct_base/ledgers") \
    || die "proxy GET /ledgers body differs from nginx's"
check "direct POST /transactions" 201 -H 'Content-Type: application/json' --data "$post_body" \
    "$direct_base/transactions"
check "proxy POST /transactions" 201 -H "Authorization: $auth" -H 'Content-Type: application/json' \
    --data "$post_body" "$proxy_base/transactions$proxy_query"
check "proxy without credential" 401 "$proxy_base/ledgers$proxy_query"

# --- runs ----------------------------------------------------------------------------------------
results="$tmp/results.tsv"
: >"$results"
run_no=0

run_one() {
    # run_one SCENARIO CONNS TARGET URL [wrk args...]
    local scenario=$1 conns=$2 target=$3 url=$4
    shift 4
    local out p0 p1 n0 n1 a0 a1 secs
    run_no=$((run_no + 1))
    out="$tmp/wrk-$run_no-$target-$conns.txt"
    secs=${duration%s}
    # 1 s warm-up: connections opened, upstream pool filled, caches warm.
    timeout 30 "$wrk_bin" -t1 -c"$conns" -d1s "$@" "$url" >/dev/null 2>&1 || true
    a0=$(nginx_accepts)
    p0=$(cpu_ticks "$proxy_pid")
    n0=$(cpu_ticks "$nginx_pid")
    timeout $((secs + 30)) "$wrk_bin" -t1 -c"$conns" -d"$duration" --latency "$@" "$url" >"$out" 2>&1 \
        || die "wrk failed: $(cat "$out")"
    p1=$(cpu_ticks "$proxy_pid")
    n1=$(cpu_ticks "$nginx_pid")
    a1=$(nginx_accepts)
    kill -0 "$proxy_pid" 2>/dev/null || die "blnkproxy died during the run; log tail: $(tail -n 5 "$proxy_log")"
    # The access log grows by ~300 B per request; keep the disk footprint small between runs.
    : >"$proxy_log"
    awk -v scen="$scenario" -v conns="$conns" -v target="$target" \
        -v pd=$((p1 - p0)) -v nd=$((n1 - n0)) -v hz="$clk_tck" -v secs="$secs" \
        -v conns_opened=$((a1 - a0 - 1)) '
        /^ +50% / { p50 = $2 }
        /^ +99% / { p99 = $2 }
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ {
            gsub(/,/, "")
            errs = $4 + $6 + $8 + $10
        }
        END {
            if (reqs == "") { reqs = 0 }
            pcpu = (reqs > 0) ? pd * 1e6 / hz / reqs : 0
            ncpu = (reqs > 0) ? nd * 1e6 / hz / reqs : 0
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.0f\t%d\n", scen, conns, target, rps,
                p50, p99, reqs, non2xx + 0, errs + 0, pcpu, ncpu, pd * 100 / hz / secs, conns_opened
        }' "$out" >>"$results"
}

echo "blnkproxy bench: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), $(uname -sr)"
echo "nginx $("$nginx_bin" -v 2>&1 | sed 's#.*/##'), wrk $("$wrk_bin" -v 2>&1 | head -n1 | awk '{print $2}'), blnkproxy --workers $workers --log-level $log_level"
echo "wrk -t1 -d$duration --latency (+1 s warm-up), connections: $connections"
echo

for conns in $connections; do
    run_one "GET /ledgers" "$conns" direct "$direct_base/ledgers" -H "Authorization: $auth"
    run_one "GET /ledgers" "$conns" proxy "$proxy_base/ledgers$proxy_query" -H "Authorization: $auth"
done
export BENCH_AUTH="$auth"
for conns in $connections; do
    run_one "POST /transactions" "$conns" direct "$direct_base/transactions" -s "$here/post.lua"
    run_one "POST /transactions" "$conns" proxy "$proxy_base/transactions$proxy_query" -s "$here/post.lua"
done
unset BENCH_AUTH

# --- table ---------------------------------------------------------------------------------------
awk -F'\t' '
    function ms(v,   n) {
        n = v + 0
        if (v ~ /us$/) { n = n / 1000 } else if (v ~ /ms$/) { n = n } else if (v ~ /s$/) { n = n * 1000 }
        return n
    }
    BEGIN {
        printf "%-18s %5s %-6s %8s %8s %8s %6s %6s %9s %6s %9s %9s\n", "scenario", "conns", "target", "req/s",
            "p50 ms", "p99 ms", "errors", "ratio", "proxy", "proxy", "nginx", "nginx"
        printf "%-18s %5s %-6s %8s %8s %8s %6s %6s %9s %6s %9s %9s\n", "", "", "", "",
            "", "", "", "", "us/req", "cpu%", "us/req", "new conns"
    }
    {
        key = $1 SUBSEP $2
        err = $8 + $9
        if ($3 == "direct") {
            direct[key] = $4
            printf "%-18s %5s %-6s %8.0f %8.3f %8.3f %6d %6s %9s %6s %9.1f %9d\n", $1, $2, $3, $4, ms($5), ms($6),
                err, "-", "-", "-", $11, $13
        } else {
            ratio = (direct[key] > 0) ? sprintf("%.2f", $4 / direct[key]) : "-"
            printf "%-18s %5s %-6s %8.0f %8.3f %8.3f %6d %6s %9.1f %6d %9.1f %9d\n", $1, $2, $3, $4, ms($5), ms($6),
                err, ratio, $10, $12, $11, $13
        }
    }' "$results"
echo
echo "ratio = proxy req/s / direct req/s.  errors = non-2xx responses + socket errors."
echo "us/req = utime+stime (all threads, /proc/PID/stat) during the measured run / requests completed."
echo "proxy cpu% = share of one core the proxy used.  new conns = TCP connections nginx accepted during"
echo "the measured run (direct: wrk's own; proxy: what the proxy opened to its upstream)."
