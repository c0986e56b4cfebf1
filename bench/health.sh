#!/usr/bin/env bash
# Benchmark: the 503 fast path of a down Core instance (issue 14, instance health). Not a test:
# nothing fails on a slow number, and ctest does not run it.
#
# One SQLite store, three instances: "up" in front of the fake Core of run.sh (nginx); "refused",
# whose URL is a closed port on 127.0.0.1 (connection refused at once); "hung", a Core that
# accepts connections and never answers (a small Python server). Two serve nodes (--workers 1,
# default audit settings, log level info, --upstream-timeout 1s): "fast" with --health-failures 1
# and an hour of cool-down, so one failure makes an instance down for the whole run, and "slow"
# with --health-failures 0 (passive health off), so each of its requests tries Core.
# For each connection count, wrk GETs /ledgers on: the up instance (proxied, 200); each failing
# instance on the fast node (503 PROXY_INSTANCE_UNAVAILABLE from the head) and on the slow node
# (a refused connect: 502; a hung Core: 504 after the 1 s timeout). Prints one table: req/s,
# p50/p99, CPU µs per answer of the node (utime+stime from /proc/PID/stat ÷ answers), and how
# many answers were not 2xx.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

duration=${BENCH_DURATION:-5s}
connections=${BENCH_CONNECTIONS:-"32 256"}
[[ $duration =~ ^[0-9]+s$ ]] || die "BENCH_DURATION must be seconds like 5s, not '$duration'"

bench_init health
need_wrk_nginx
start_nginx

db="$tmp/health.db"
instance_and_key "$db" up "http://127.0.0.1:$nginx_port"
up_id=$instance_id
up_key=$cli_key
closed=$(free_port)
instance_and_key "$db" refused "http://127.0.0.1:$closed"
down_id=$instance_id
down_key=$cli_key

# A Core that accepts and never answers: holds every connection until it is stopped.
hung_port=$(free_port)
"$python_bin" -c '
import selectors, socket, sys
sel = selectors.DefaultSelector()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096); sel.register(s, selectors.EVENT_READ)
while True:
    for k, _ in sel.select():
        if k.fileobj is s:
            sel.register(s.accept()[0], selectors.EVENT_READ)
        elif not k.fileobj.recv(65536):
            sel.unregister(k.fileobj); k.fileobj.close()
' "$hung_port" >/dev/null 2>&1 &
bench_pids+=("$!")
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$hung_port") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$hung_port") 2>/dev/null || die "the hung Core did not start"
instance_and_key "$db" hung "http://127.0.0.1:$hung_port"
hung_id=$instance_id
hung_key=$cli_key

start_serve fast "$db" --health-failures 1 --health-cooldown 1h --upstream-timeout 1s
fast_pid=$serve_pid
fast_port=$serve_port
start_serve slow "$db" --health-failures 0 --upstream-timeout 1s
slow_pid=$serve_pid
slow_port=$serve_port

status_of() {
    # status_of PORT INSTANCE KEY → the HTTP status of one GET /ledgers
    curl -s -o "$tmp/check.body" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $3" \
        "http://127.0.0.1:$1/proxy/ledgers?instance_id=$2" || echo 000
}
[ "$(status_of "$fast_port" "$up_id" "$up_key")" = 200 ] || die "the up instance did not answer 200"
# The first request finds the port closed (502) and makes the instance down on the fast node.
[ "$(status_of "$fast_port" "$down_id" "$down_key")" = 502 ] || die "the first request to the closed port did not get 502"
[ "$(status_of "$fast_port" "$down_id" "$down_key")" = 503 ] || die "the down instance did not answer 503"
grep -q PROXY_INSTANCE_UNAVAILABLE "$tmp/check.body" || die "the 503 is not PROXY_INSTANCE_UNAVAILABLE: $(cat "$tmp/check.body")"
[ "$(status_of "$slow_port" "$down_id" "$down_key")" = 502 ] || die "the node without the fast path did not answer 502"
[ "$(status_of "$fast_port" "$hung_id" "$hung_key")" = 504 ] || die "the first request to the hung Core did not get 504"
[ "$(status_of "$fast_port" "$hung_id" "$hung_key")" = 503 ] || die "the hung instance did not answer 503"
[ "$(status_of "$slow_port" "$hung_id" "$hung_key")" = 504 ] || die "the node without the fast path did not answer 504"

results="$tmp/results.tsv"
: >"$results"

run_one() {
    # run_one LABEL CONNS PID PORT INSTANCE KEY
    local label=$1 conns=$2 pid=$3 port=$4 inst=$5 key=$6 out c0 c1 secs
    out="$tmp/wrk-$label-$conns.txt"
    secs=${duration%s}
    timeout 30 "$wrk_bin" -t1 -c"$conns" -d1s -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$port/proxy/ledgers?instance_id=$inst" >/dev/null 2>&1 || true
    c0=$(cpu_ticks "$pid")
    timeout $((secs + 30)) "$wrk_bin" -t1 -c"$conns" -d"$duration" --timeout 5s --latency -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$port/proxy/ledgers?instance_id=$inst" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    c1=$(cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || die "a node died during the run"
    [ "${BENCH_KEEP:-0}" = 1 ] || : >"$tmp/fast.log"
    [ "${BENCH_KEEP:-0}" = 1 ] || : >"$tmp/slow.log"
    awk -v label="$label" -v conns="$conns" -v d=$((c1 - c0)) -v hz="$clk_tck" '
        /^ +50% / { p50 = $2 }
        /^ +99% / { p99 = $2 }
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        END {
            printf "%-34s %6s %10.0f %9s %9s %8.1f %10d\n", label, conns, rps, p50, p99,
                (reqs > 0) ? d * 1e6 / hz / reqs : 0, non2xx + 0
        }' "$out" >>"$results"
}

echo "blnkproxy health: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), $("$bin" version 2>/dev/null | head -n1)"
echo "GET /ledgers, wrk -t1 -d$duration --latency (+1 s warm-up), connections: $connections; serve --workers 1"
echo
for conns in $connections; do
    note "$conns connections"
    run_one "up: proxied to Core (200)" "$conns" "$fast_pid" "$fast_port" "$up_id" "$up_key"
    run_one "refused, down: fast path (503)" "$conns" "$fast_pid" "$fast_port" "$down_id" "$down_key"
    run_one "refused, tried each time (502)" "$conns" "$slow_pid" "$slow_port" "$down_id" "$down_key"
    run_one "hung, down: fast path (503)" "$conns" "$fast_pid" "$fast_port" "$hung_id" "$hung_key"
    run_one "hung, tried each time (504)" "$conns" "$slow_pid" "$slow_port" "$hung_id" "$hung_key"
done
printf "%-34s %6s %10s %9s %9s %8s %10s\n" "case" "conns" "req/s" "p50" "p99" "us/req" "non-2xx"
cat "$results"
echo
echo "us/req: the serving node's CPU (utime+stime, all threads) per answer. non-2xx: answers that"
echo "were not 2xx (all of them, on the down rows). Every answer is audited and access-logged."
