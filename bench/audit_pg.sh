#!/usr/bin/env bash
# Benchmark: audit throughput with audit.writes=sync on SQLite and on PostgreSQL, in one run
# (issue 9, "Benchmarks"). Not a test: nothing fails on a slow number, and ctest does not run it.
#
# One serve node per store (--workers 1, --audit-writes sync, --audit-reads off), both in front
# of the same fake Core (nginx, as bench/run.sh). For each connection count, wrk POSTs
# /transactions (bench/post.lua) through the SQLite node, then through the PostgreSQL node. Every
# answered write has its audit record committed first, so the records committed per second are
# the audited write throughput. Prints one table. See bench/README.md "Audit throughput".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    q_duration=3s
else
    q_duration=10s
fi
duration=${BENCH_DURATION:-$q_duration}
connections=${BENCH_CONNECTIONS:-"32 256"}
pg_fsync=${BENCH_PG_FSYNC:-on}
[[ $duration =~ ^[0-9]+s$ ]] || die "BENCH_DURATION must be seconds like 10s, not '$duration'"
for c in $connections; do
    if ! [[ $c =~ ^[0-9]+$ ]] || [ "$c" -lt 1 ]; then
        die "BENCH_CONNECTIONS must be whole numbers, not '$connections'"
    fi
done
case "$pg_fsync" in on | off) ;; *) die "BENCH_PG_FSYNC must be on or off, not '$pg_fsync'" ;; esac
command -v sqlite3 >/dev/null || die "sqlite3 not found (apt-get install sqlite3)"
secs=${duration%s}

bench_init audit-pg
need_wrk_nginx
t_run0=$(date +%s)

echo "blnkproxy audit_pg: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), $("$bin" --version 2>/dev/null | head -n1)"
echo "POST /transactions (bench/post.lua), wrk -t1 -d$duration --latency (+1 s warm-up), connections: $connections"
echo "serve --workers 1 --audit-writes sync --audit-reads off, one node per store"

start_nginx
core_url="http://127.0.0.1:$nginx_port"

note "starting a throw-away PostgreSQL server"
start_pg
if [ "$pg_fsync" = on ]; then
    pg_make_durable
fi
db_pg=$(pg_create_db bench_audit)
db_sq="$tmp/audit.db"
pg_settings=$(store_sql "$db_pg" "SELECT 'fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') || ', full_page_writes=' || current_setting('full_page_writes') || ', ' || split_part(version(), ' ', 1) || ' ' || split_part(version(), ' ', 2)")
echo "SQLite $(sqlite3 --version | cut -d' ' -f1) (WAL; audit commits with synchronous=FULL); $pg_settings"
echo

declare -A port=() pid=() inst=() key=() db=()
for s in sqlite pg; do
    if [ "$s" = pg ]; then db[$s]=$db_pg; else db[$s]=$db_sq; fi
    BLNKPROXY_DB="${db[$s]}" timeout 60 "$bin" db migrate >/dev/null 2>"$tmp/cli.err" \
        || { cat "$tmp/cli.err" >&2; die "db migrate failed ($s)"; }
    instance_and_key "${db[$s]}" "bench-core" "$core_url"
    inst[$s]=$instance_id
    key[$s]=$cli_key
    note "starting the $s node"
    start_serve "$s" "${db[$s]}" --audit-writes sync --audit-reads off
    pid[$s]=$serve_pid
    port[$s]=$serve_port
done
unset cli_key

audit_rows() {
    store_sql "${db[$1]}" "SELECT count(*) FROM audit_log"
}

# Before measuring: a write through each node answers 201, and its record is in the store by the
# time the answer arrives (what sync promises).
post_body='{"amount":750,"currency":"USD","source":"@world","destination":"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3","description":"bench transfer"}'
for s in sqlite pg; do
    n0=$(audit_rows "$s")
    got=$(curl -s -o "$tmp/check.body" -w '%{http_code}' --max-time 5 -H "Authorization: Bearer ${key[$s]}" \
        -H 'Content-Type: application/json' --data "$post_body" \
        "http://127.0.0.1:${port[$s]}/proxy/transactions?instance_id=${inst[$s]}") || got=000
    [ "$got" = 201 ] || die "$s node: POST /transactions answered $got, not 201: $(head -c 300 "$tmp/check.body")"
    n1=$(audit_rows "$s")
    [ "$n1" -gt "$n0" ] || die "$s node: the answered write has no audit record in the store ($n0 → $n1 rows)"
done

results="$tmp/results.tsv"
: >"$results"
run_one() {
    # run_one STORE CONNS: one measured wrk run; appends a row to $results.
    local s=$1 conns=$2 out="$tmp/wrk-$1-$2.txt" m r0 r1 c0 c1 b0 b1 t0 t1 sh0 sh1 sp0 sp1 p0 p1 base
    base="http://127.0.0.1:${port[$s]}"
    m="$base/metrics"
    export BENCH_AUTH="Bearer ${key[$s]}"
    run_bg timeout 30 "$wrk_bin" -t1 -c"$conns" -d1s -s "$here/post.lua" \
        "$base/proxy/transactions?instance_id=${inst[$s]}" >/dev/null 2>&1 || true
    sleep 0.5  # let the warm-up's last records commit before the first count
    r0=$(audit_rows "$s")
    c0=$(metric "$m" 'blnkproxy_audit_records_total{outcome="committed"}')
    sh0=$(metric "$m" 'blnkproxy_audit_records_total{outcome="shed"}')
    sp0=$(metric "$m" 'blnkproxy_audit_records_total{outcome="spooled"}')
    b0=$(metric "$m" 'blnkproxy_audit_commit_duration_seconds_count')
    t0=$(metric "$m" 'blnkproxy_audit_commit_duration_seconds_sum')
    p0=$(cpu_ticks "${pid[$s]}")
    run_bg timeout $((secs + 30)) "$wrk_bin" -t1 -c"$conns" -d"$duration" --latency -s "$here/post.lua" \
        "$base/proxy/transactions?instance_id=${inst[$s]}" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    p1=$(cpu_ticks "${pid[$s]}")
    r1=$(audit_rows "$s")
    c1=$(metric "$m" 'blnkproxy_audit_records_total{outcome="committed"}')
    sh1=$(metric "$m" 'blnkproxy_audit_records_total{outcome="shed"}')
    sp1=$(metric "$m" 'blnkproxy_audit_records_total{outcome="spooled"}')
    b1=$(metric "$m" 'blnkproxy_audit_commit_duration_seconds_count')
    t1=$(metric "$m" 'blnkproxy_audit_commit_duration_seconds_sum')
    unset BENCH_AUTH
    kill -0 "${pid[$s]}" 2>/dev/null || die "the $s node died during the run; log tail: $(tail -n 5 "$tmp/$s.log")"
    : >"$tmp/$s.log"  # one access-log line per request: keep the disk footprint small
    awk -v store="$s" -v conns="$conns" -v secs="$secs" -v rows=$((r1 - r0)) \
        -v comm="$(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }')" \
        -v batches="$(awk -v a="$b0" -v b="$b1" 'BEGIN { print b - a }')" \
        -v commit_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
        -v lost="$(awk -v a="$sh0" -v b="$sh1" -v c="$sp0" -v d="$sp1" 'BEGIN { print (b - a) + (d - c) }')" \
        -v pd=$((p1 - p0)) -v hz="$clk_tck" '
        function ms(v,   n) {
            n = v + 0
            if (v ~ /us$/) { n = n / 1000 } else if (v ~ /ms$/) { n = n } else if (v ~ /s$/) { n = n * 1000 }
            return n
        }
        /^ +50% / { p50 = ms($2) }
        /^ +99% / { p99 = ms($2) }
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
        END {
            printf "%s\t%s\t%.0f\t%.0f\t%d\t%d\t%.3f\t%.3f\t%d\t%.1f\t%.2f\t%.1f\t%d\n", store, conns, rps,
                rows / secs, rows, reqs, p50, p99, non2xx + errs,
                (batches > 0) ? comm / batches : 0, (batches > 0) ? commit_s * 1000 / batches : 0,
                (reqs > 0) ? pd * 1e6 / hz / reqs : 0, lost
        }' "$out" >>"$results"
}

for conns in $connections; do
    for s in sqlite pg; do
        note "$s, $conns connections"
        run_one "$s" "$conns"
    done
done

echo
awk -F'\t' '
    BEGIN {
        printf "%-7s %5s %9s %10s %9s %9s %8s %8s %6s %9s %9s %8s %7s\n", "store", "conns", "writes/s",
            "records/s", "records", "answers", "p50 ms", "p99 ms", "errors", "rec/batch", "commit ms",
            "us/req", "shed+sp"
    }
    {
        printf "%-7s %5s %9s %10s %9s %9s %8.2f %8.2f %6s %9s %9s %8s %7s\n", $1, $2, $3, $4, $5, $6, $7, $8,
            $9, $10, $11, $12, $13
    }' "$results"
echo
echo "writes/s: answers per second (wrk).  records/s: audit rows committed during the run ÷ its length"
echo "(count(*) of audit_log before and after).  records vs answers: every answered write has a"
echo "committed record (sync), so records >= answers; a few more are writes still in flight at the end."
echo "p50/p99: latency of the answers (wrk).  errors: non-2xx answers + socket errors."
echo "rec/batch, commit ms: records per group commit and time per commit, from /metrics"
echo "(blnkproxy_audit_records_total{outcome=\"committed\"}, blnkproxy_audit_commit_duration_seconds)."
echo "us/req: the node's CPU (utime+stime, all threads) per answer.  shed+sp: records shed or spooled"
echo "(should be 0)."
echo "Run took $(($(date +%s) - t_run0)) s."
