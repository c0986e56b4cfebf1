#!/usr/bin/env bash
# bench/profile/run.sh — what one proxied request costs, counted rather than timed.
#
# Wall-clock numbers are meaningless on a shared machine; counts are not. For GET and POST
# through `blnkproxy serve --workers 1` in front of a minimal fake Core (fake_core.c), this
# measures per request, over a known number of keep-alive requests (load.c) after a warm-up:
#   - instructions (valgrind callgrind, every thread of the proxy: loop, audit writer, watcher);
#   - syscalls by name (strace -f -c attached to the running proxy);
#   - heap allocations (alloc_count.so preloaded: malloc, calloc, realloc, free of every thread);
#   - where the time goes (perf record -e cpu-clock -g; the top of perf report).
# Everything it starts is stopped by PID; results go to $OUT (printed at the end).
#
#   bench/profile/run.sh                      # build/blnkproxy, GET and POST, audit on
#   AUDIT=off bench/profile/run.sh            # BLNKPROXY_AUDIT_READS/WRITES=off
#   N=5000 CONNS=32 TOOLS="strace alloc" WORKLOADS=get bench/profile/run.sh
#   DOWN=1 WORKLOADS=get bench/profile/run.sh  # the instance is down: each request is the 503
#                                              # PROXY_INSTANCE_UNAVAILABLE refusal (issue 14)
#
# Knobs: BLNKPROXY_BIN (default build/blnkproxy), N (measured requests, default 2000), WARM (500),
# CONNS (client connections, default 32), PERF_N (requests under perf, default 20000),
# WORKLOADS ("get post"), TOOLS ("callgrind strace alloc perf"), AUDIT (on|off), OUT (directory).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${BLNKPROXY_BIN:-$root/build/blnkproxy}
N=${N:-2000}
WARM=${WARM:-500}
CONNS=${CONNS:-32}
PERF_N=${PERF_N:-20000}
WORKLOADS=${WORKLOADS:-"get post"}
TOOLS=${TOOLS:-"callgrind strace alloc perf"}
AUDIT=${AUDIT:-on}
DOWN=${DOWN:-0}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bp-profile-XXXXXX")}
mkdir -p "$OUT"

die() {
    echo "profile: $*" >&2
    exit 1
}
[ -x "$bin" ] || die "no blnkproxy binary at $bin (build first, or set BLNKPROXY_BIN)"

pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

cc -O2 -o "$OUT/fake_core" "$here/fake_core.c"
cc -O2 -o "$OUT/load" "$here/load.c"
cc -O2 -shared -fPIC -o "$OUT/alloc_count.so" "$here/alloc_count.c"

"$OUT/fake_core" >"$OUT/core.port" &
pids+=($!)
for _ in $(seq 1 50); do
    [ -s "$OUT/core.port" ] && break
    sleep 0.1
done
core_port=$(cat "$OUT/core.port")
[ -n "$core_port" ] || die "fake Core did not start"

db="$OUT/profile.db"
export PROFILE_CORE_SECRET="profile-core-secret-0123456789"
core_url="http://127.0.0.1:$core_port"
want_status=2
if [ "$DOWN" = 1 ]; then
    # Port 1 refuses: the first request (a 502) makes the instance down for an hour, and every
    # request after it is refused before Core (503).
    core_url="http://127.0.0.1:1"
    want_status=5
fi
inst_json=$("$bin" instance add --db "$db" --name core --url "$core_url" \
    --secret-key-env PROFILE_CORE_SECRET --json 2>/dev/null) || die "instance add failed"
instance_id=$(printf '%s' "$inst_json" | sed -n 's/.*"id":"\(instance_[^"]*\)".*/\1/p')
key_json=$("$bin" key create --db "$db" --name profile --scopes proxy:read,proxy:write \
    --expires-in never --instances "$instance_id" --json) || die "key create failed"
auth="Bearer $(printf '%s' "$key_json" | sed -n 's/.*"key":"\(blnk_[0-9a-f]*\)".*/\1/p')"

env_audit=()
if [ "$AUDIT" = off ]; then
    env_audit=(BLNKPROXY_AUDIT_READS=off BLNKPROXY_AUDIT_WRITES=off)
fi
if [ "$DOWN" = 1 ]; then
    env_audit+=(BLNKPROXY_HEALTH_FAILURES=1 BLNKPROXY_HEALTH_COOLDOWN=1h)
fi

# start_proxy LOG [PREFIX...]: starts serve (under PREFIX), sets proxy_pid and proxy_port.
start_proxy() {
    local log=$1
    shift
    : >"$log"
    env "${env_audit[@]}" "$@" "$bin" serve --db "$db" --listen 127.0.0.1:0 --workers 1 \
        2>>"$log" >/dev/null &
    proxy_pid=$!
    pids+=("$proxy_pid")
    proxy_port=""
    for _ in $(seq 1 600); do
        proxy_port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
        [ -n "$proxy_port" ] && return 0
        kill -0 "$proxy_pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 5 "$log" >&2
    die "serve did not start"
}

stop_proxy() {
    kill -TERM "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
}

path_of() {
    if [ "$1" = post ]; then
        echo "/proxy/transactions?instance_id=$instance_id"
    else
        echo "/proxy/ledgers/ldg_0be360ca?instance_id=$instance_id"
    fi
}

load() {
    # load WORKLOAD COUNT
    "$OUT/load" "$proxy_port" "$CONNS" "$2" "$1" "$(path_of "$1")" "$auth" "$want_status" >/dev/null ||
        die "load failed ($1)"
}

summary="$OUT/summary.txt"
: >"$summary"
note() {
    echo "$*" | tee -a "$summary"
}
note "blnkproxy: $bin ($("$bin" --version 2>/dev/null | head -n1))"
note "requests measured: $N after $WARM warm-up, $CONNS connections, --workers 1, audit $AUDIT, instance down: $DOWN"

for w in $WORKLOADS; do
    for t in $TOOLS; do
        case $t in
        strace)
            start_proxy "$OUT/$w-strace.log"
            load "$w" "$WARM"
            strace -f -c -p "$proxy_pid" -o "$OUT/$w-strace.txt" 2>/dev/null &
            spid=$!
            sleep 1
            load "$w" "$N"
            kill -INT "$spid"
            wait "$spid" || true
            stop_proxy
            note ""
            note "== $w: syscalls per request (strace -f -c, $N requests)"
            awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
                    name = $NF; calls = (NF == 6 ? $4 : $4);
                    if (name != "total") { printf "  %-18s %8.2f\n", name, calls / n; sum += calls } }
                END { printf "  %-18s %8.2f\n", "TOTAL", sum / n }' "$OUT/$w-strace.txt" |
                sort -k2 -nr | tee -a "$summary"
            ;;
        alloc)
            rm -f "$OUT/$w-alloc.txt"
            start_proxy "$OUT/$w-alloc.log" env LD_PRELOAD="$OUT/alloc_count.so" \
                ALLOC_COUNT_FILE="$OUT/$w-alloc.txt"
            load "$w" "$WARM"
            sleep 0.5
            kill -USR2 "$proxy_pid"
            sleep 0.2
            load "$w" "$N"
            sleep 0.5
            kill -USR2 "$proxy_pid"
            sleep 0.2
            stop_proxy
            note ""
            note "== $w: heap calls per request ($N requests, every thread)"
            awk -v n="$N" 'NR == 1 { for (i = 1; i <= 4; i++) a[i] = $i }
                NR == 2 { printf "  malloc %.2f  calloc %.2f  realloc %.2f  free %.2f  (allocations %.2f)\n",
                    ($1 - a[1]) / n, ($2 - a[2]) / n, ($3 - a[3]) / n, ($4 - a[4]) / n,
                    ($1 - a[1] + $2 - a[2]) / n }' "$OUT/$w-alloc.txt" | tee -a "$summary"
            ;;
        callgrind)
            start_proxy "$OUT/$w-callgrind.log" valgrind --tool=callgrind \
                --callgrind-out-file="$OUT/$w-callgrind.%p"
            load "$w" "$WARM"
            callgrind_control -z "$proxy_pid" >/dev/null
            load "$w" "$N"
            callgrind_control -d "$proxy_pid" >/dev/null
            stop_proxy
            note ""
            note "== $w: instructions per request (callgrind, $N requests)"
            "$here/callgrind_top.sh" "$OUT/$w-callgrind.$proxy_pid.1" "$N" | tee -a "$summary"
            ;;
        perf)
            start_proxy "$OUT/$w-perf.log"
            load "$w" "$WARM"
            perf record -q -e cpu-clock -g -p "$proxy_pid" -o "$OUT/$w-perf.data" 2>/dev/null &
            ppid=$!
            sleep 1
            load "$w" "$PERF_N"
            kill -INT "$ppid"
            wait "$ppid" || true
            stop_proxy
            note ""
            note "== $w: where the time goes (perf, $PERF_N requests): by shared object"
            # (|| true: head closing the pipe early is no failure)
            perf report -i "$OUT/$w-perf.data" --no-children --sort dso --stdio 2>/dev/null |
                grep -E '^ +[0-9]' | head -n 12 | tee -a "$summary" || true
            note "   top symbols"
            perf report -i "$OUT/$w-perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
                grep -E '^ +[0-9]' | head -n 30 | tee -a "$summary" || true
            ;;
        *)
            die "unknown tool $t"
            ;;
        esac
    done
done
echo "profile: results in $OUT (summary.txt)"
