#!/usr/bin/env bash
# Benchmark: what an Idempotency-Key costs (issue 12, DESIGN §4b). Not a test: nothing fails on a
# slow number, and ctest does not run it.
#
# One node (serve --workers 1, default audit: writes durable before their answer), the fake Core
# of run.sh (nginx), one key. wrk POSTs /transactions (bench/idem.lua) at 32 connections in three
# ways, BENCH_REPS times each (none, unique, same, none, …):
#   none    no Idempotency-Key: the request path as before the feature (one header lookup more);
#   unique  a new key on every request: each is a first request — a claim in the store, Core, the
#           answer stored, then relayed (two store transactions per request, off the loop);
#   same    one key for all: after the first, each request is a replay from the store (one store
#           transaction, Core not called).
# On a SQLite store, then (BENCH_PG=1, the default) on a PostgreSQL one (scripts/pg-test-server.sh,
# restarted with fsync on). Prints req/s, p99, the node's CPU µs per request (the PostgreSQL
# server's CPU not included) and non-2xx per run, and the medians.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

duration=${BENCH_DURATION:-5s}
reps=${BENCH_REPS:-3}
[[ $duration =~ ^[0-9]+s$ ]] || die "BENCH_DURATION must be seconds like 5s, not '$duration'"

bench_init idempotency
need_wrk_nginx
start_nginx

# wrk_run OUT PORT INSTANCE MODE DURATION PREFIX: one wrk run, its output in OUT.
wrk_run() {
    local out=$1 port=$2 inst=$3 mode=$4 d=$5 prefix=$6 script=$here/idem.lua
    [ "$mode" = none ] && script=$here/post.lua
    BENCH_AUTH="Bearer $cli_key" BENCH_IDEM="$mode" BENCH_IDEM_PREFIX="$prefix" \
        timeout $((${d%s} + 30)) "$wrk_bin" -t1 -c32 -d"$d" --timeout 5s --latency -s "$script" \
        "http://127.0.0.1:$port/proxy/transactions?instance_id=$inst" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
}

# run_store LABEL DSN: the three ways on one store.
run_store() {
    local label=$1 db=$2 results="$tmp/$1.tsv" pid port c0 c1 run=0
    instance_and_key "$db" "$label" "http://127.0.0.1:$nginx_port"
    start_serve "$label" "$db"
    pid=$serve_pid
    port=$serve_port
    : >"$results"
    note "$label: $reps runs of each way, $duration each"
    for i in $(seq 1 "$reps"); do
        for mode in none unique same; do
            run=$((run + 1))
            wrk_run "$tmp/warm.txt" "$port" "$instance_id" "$mode" 1s "w$RANDOM$run"
            c0=$(cpu_ticks "$pid")
            wrk_run "$tmp/wrk.txt" "$port" "$instance_id" "$mode" "$duration" "r$RANDOM$run"
            c1=$(cpu_ticks "$pid")
            awk -v mode="$mode" -v i="$i" -v d=$((c1 - c0)) -v hz="$clk_tck" '
                /^ +99% / { p99 = $2 }
                / requests in / { reqs = $1 }
                /^Requests\/sec:/ { rps = $2 }
                /Non-2xx or 3xx responses:/ { non2xx = $NF }
                END { printf "%s\t%d\t%.0f\t%s\t%.1f\t%d\n", mode, i, rps, p99, (reqs > 0) ? d * 1e6 / hz / reqs : 0, non2xx + 0 }
            ' "$tmp/wrk.txt" >>"$results"
        done
    done
    stop_pid "$pid"
    forget_pid "$pid"
    echo "$label: POST /transactions, wrk -t1 -c32 -d$duration, serve --workers 1"
    printf "%-7s %4s %10s %9s %8s %8s\n" "key" "run" "req/s" "p99" "us/req" "non-2xx"
    awk -F'\t' '{ printf "%-7s %4s %10s %9s %8s %8s\n", $1, $2, $3, $4, $5, $6 }' "$results"
    for mode in none unique same; do
        med_rps=$(awk -F'\t' -v w="$mode" '$1 == w { print $3 }' "$results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        med_us=$(awk -F'\t' -v w="$mode" '$1 == w { print $5 }' "$results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        echo "median, $mode: $med_rps req/s, $med_us us/req"
    done
    echo
}

echo "blnkproxy Idempotency-Key: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), $("$bin" version 2>/dev/null | head -n1)"
echo
run_store sqlite "$tmp/idem.db"
if [ "${BENCH_PG:-1}" = 1 ]; then
    start_pg
    pg_make_durable
    run_store postgresql "$(pg_create_db idempotency)"
fi
