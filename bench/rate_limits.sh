#!/usr/bin/env bash
# Benchmark: per-credential rate limits (issue 12). Not a test: nothing fails on a slow number,
# and ctest does not run it. Two parts:
#
# 1. What a limit costs an allowed request. One node (serve --workers 1, default audit), the fake
#    Core of run.sh (nginx), two keys on one instance: "off" without a rate, "on" with a rate no
#    client reaches (1000000000/s), so every request goes through the limiter and is allowed.
#    wrk GETs /ledgers with each key in turn, BENCH_REPS times (off, on, off, on, …); prints
#    req/s, p99 and the node's CPU µs per request of each run, and the medians.
#
# 2. How exact a limit is across three nodes. A PostgreSQL store (scripts/pg-test-server.sh), three
#    nodes, HAProxy round-robin in front (keep-alive), one key with --rate BENCH_RATE/s (default
#    600) and --burst BENCH_RATE/10. wrk sends as fast as it can for BENCH_ACCURACY_DURATION through
#    HAProxy (the client's requests spread over the nodes), then straight at one node (all on one
#    node), then at the three nodes at once with a wrk each (a client that picks nodes itself).
#    Prints the requests allowed (200) per second against the configured rate, and the ratio.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

duration=${BENCH_DURATION:-5s}
reps=${BENCH_REPS:-3}
rate=${BENCH_RATE:-600}
acc_duration=${BENCH_ACCURACY_DURATION:-10s}
haproxy_bin=${HAPROXY_BIN:-/usr/sbin/haproxy}
[[ $duration =~ ^[0-9]+s$ ]] || die "BENCH_DURATION must be seconds like 5s, not '$duration'"
[[ $acc_duration =~ ^[0-9]+s$ ]] || die "BENCH_ACCURACY_DURATION must be seconds like 10s, not '$acc_duration'"
[[ $rate =~ ^[0-9]+$ ]] && [ "$rate" -ge 30 ] || die "BENCH_RATE must be a number of requests per second >= 30"

bench_init rate_limits
need_wrk_nginx
[ -x "$haproxy_bin" ] || die "haproxy not found at $haproxy_bin (apt-get install haproxy, or set HAPROXY_BIN)"
start_nginx

# key_with DSN INSTANCE NAME [key create args…] → prints the key
key_with() {
    local db=$1 inst=$2 name=$3 out
    shift 3
    out=$(BLNKPROXY_DB="$db" timeout 60 "$bin" key create --name "$name" --scopes proxy:read \
        --instances "$inst" "$@" --json 2>"$tmp/cli.err") || { cat "$tmp/cli.err" >&2; die "key create failed"; }
    printf '%s' "$out" | sed -n 's/.*"key":"\(blnk_[0-9a-f]*\)".*/\1/p'
}

# wrk_run OUT PORT INSTANCE KEY CONNS DURATION: one wrk run, its output in OUT.
wrk_run() {
    local out=$1 port=$2 inst=$3 key=$4 conns=$5 d=$6
    timeout $((${d%s} + 30)) "$wrk_bin" -t1 -c"$conns" -d"$d" --timeout 5s --latency -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$port/proxy/ledgers?instance_id=$inst" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
}

echo "blnkproxy rate limits: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), $("$bin" version 2>/dev/null | head -n1)"
echo

# ---- 1. the cost on allowed requests ----
db="$tmp/cost.db"
instance_and_key "$db" cost "http://127.0.0.1:$nginx_port"
inst=$instance_id
key_off=$(key_with "$db" "$inst" off)
key_on=$(key_with "$db" "$inst" on --rate 1000000000/s)
start_serve cost "$db"
pid=$serve_pid
port=$serve_port
results="$tmp/cost.tsv"
: >"$results"
note "part 1: $reps runs of each key, $duration each"
for i in $(seq 1 "$reps"); do
    for which in off on; do
        key=$key_off
        [ "$which" = on ] && key=$key_on
        wrk_run "$tmp/warm.txt" "$port" "$inst" "$key" 32 1s
        c0=$(cpu_ticks "$pid")
        wrk_run "$tmp/wrk.txt" "$port" "$inst" "$key" 32 "$duration"
        c1=$(cpu_ticks "$pid")
        [ "${BENCH_KEEP:-0}" = 1 ] || : >"$tmp/cost.log"
        awk -v which="$which" -v i="$i" -v d=$((c1 - c0)) -v hz="$clk_tck" '
            /^ +99% / { p99 = $2 }
            / requests in / { reqs = $1 }
            /^Requests\/sec:/ { rps = $2 }
            /Non-2xx or 3xx responses:/ { non2xx = $NF }
            END { printf "%s\t%d\t%.0f\t%s\t%.1f\t%d\n", which, i, rps, p99, (reqs > 0) ? d * 1e6 / hz / reqs : 0, non2xx + 0 }
        ' "$tmp/wrk.txt" >>"$results"
    done
done
stop_pid "$pid"
forget_pid "$pid"
echo "1. Allowed requests with and without a limit: GET /ledgers, wrk -t1 -c32 -d$duration, serve --workers 1"
printf "%-6s %4s %10s %9s %8s %8s\n" "limit" "run" "req/s" "p99" "us/req" "non-2xx"
awk -F'\t' '{ printf "%-6s %4s %10s %9s %8s %8s\n", $1, $2, $3, $4, $5, $6 }' "$results"
for which in off on; do
    med_rps=$(awk -F'\t' -v w="$which" '$1 == w { print $3 }' "$results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    med_us=$(awk -F'\t' -v w="$which" '$1 == w { print $5 }' "$results" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    echo "median, limit $which: $med_rps req/s, $med_us us/req"
done
echo

# ---- 2. accuracy across three nodes ----
note "part 2: a PostgreSQL store and three nodes"
start_pg
dsn=$(pg_create_db rate_limits)
instance_and_key "$dsn" acc "http://127.0.0.1:$nginx_port"
inst=$instance_id
burst=$((rate / 10))
key=$(key_with "$dsn" "$inst" limited --rate "$rate/s" --burst "$burst")
ports=()
pids=()
for n in 1 2 3; do
    start_serve "node$n" "$dsn"
    ports+=("$serve_port")
    pids+=("$serve_pid")
done
# Each node counts the live nodes every few seconds: wait until all three say 3.
for _ in $(seq 1 60); do
    all=1
    for p in "${ports[@]}"; do
        [ "$(metric "http://127.0.0.1:$p/metrics" blnkproxy_rate_limit_nodes)" = 3 ] || all=0
    done
    [ "$all" = 1 ] && break
    sleep 0.5
done
[ "$all" = 1 ] || die "the nodes did not all count 3 live nodes"

hport=$(free_port)
cat >"$tmp/haproxy.cfg" <<EOF
global
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$hport
    default_backend nodes
backend nodes
    balance roundrobin
    server n1 127.0.0.1:${ports[0]}
    server n2 127.0.0.1:${ports[1]}
    server n3 127.0.0.1:${ports[2]}
EOF
"$haproxy_bin" -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
hpid=$!
bench_pids+=("$hpid")
wait_http "http://127.0.0.1:$hport/healthz" "$hpid" || die "haproxy did not start"

secs=${acc_duration%s}
acc="$tmp/acc.txt"
: >"$acc"
allowed_of() {
    # allowed_of WRK_OUTPUT… → the 200s of all of them (requests minus non-2xx)
    awk '/ requests in / { r += $1 } /Non-2xx or 3xx responses:/ { n += $NF } END { print r - n }' "$@"
}
report() {
    # report LABEL ALLOWED
    awk -v l="$1" -v a="$2" -v s="$secs" -v r="$rate" -v b="$burst" '
        BEGIN { printf "%-44s %8d %10.1f %8.3f %8.3f\n", l, a, a / s, a / s / r, a / (r * s + b) }' >>"$acc"
}
# Each case waits for the buckets to fill again first (burst / rate seconds, and a margin).
sleep 1
wrk_run "$tmp/rr.txt" "$hport" "$inst" "$key" 64 "$acc_duration"
report "round robin over 3 nodes (haproxy, 64 conns)" "$(allowed_of "$tmp/rr.txt")"
sleep 1
wrk_run "$tmp/one.txt" "${ports[0]}" "$inst" "$key" 64 "$acc_duration"
report "all on one node (64 conns)" "$(allowed_of "$tmp/one.txt")"
sleep 1
wrk_pids=()
for n in 0 1 2; do
    wrk_run "$tmp/par$n.txt" "${ports[$n]}" "$inst" "$key" 32 "$acc_duration" &
    wrk_pids+=("$!")
    bench_pids+=("$!")
done
for p in "${wrk_pids[@]}"; do
    wait "$p" || die "a wrk run failed"
    forget_pid "$p"
done
report "each node at once (a wrk per node, 32 conns)" "$(allowed_of "$tmp/par0.txt" "$tmp/par1.txt" "$tmp/par2.txt")"

echo "2. Accuracy: --rate $rate/s --burst $burst on one key, 3 nodes on one PostgreSQL store, $acc_duration per case"
printf "%-44s %8s %10s %8s %8s\n" "case" "allowed" "allowed/s" "x rate" "x bound"
cat "$acc"
echo
echo "x rate: allowed per second / the configured rate. x bound: allowed / (rate x seconds + burst),"
echo "the most a limit exact to the request could allow: above 1.000 means the client got more than"
echo "configured."
