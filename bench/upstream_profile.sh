#!/usr/bin/env bash
# What one request costs the upstream client (src/upstream), measured in ways that stay
# repeatable on a shared, busy machine: instructions (callgrind), syscalls by name (strace -c),
# heap allocations (valgrind's heap summary), all per request as the difference between a run of
# N_SMALL and one of N_BIG requests (so process start-up cancels out), and where the time goes
# (perf record -e cpu-clock -g over N_PERF requests). GET /ledgers and POST /transactions
# (post.lua's body), each with 1 and 32 requests in flight, against `upstream_load serve` (a
# separate process, so only the client is measured). It builds nothing:
#
#   cmake --build build --target upstream_load
#   bench/upstream_profile.sh OUTDIR [build/upstream_load]
#
# OUTDIR gets summary.txt (the table), and the raw callgrind/strace/perf files. Needs valgrind,
# strace and perf. Everything it starts is stopped by PID.
#
# With BLNKPROXY_BIN set, it also puts blnkproxy (one worker, audit off, access log on as at the
# default log level) between the client and the fake Core and measures the whole proxy: its
# instructions and allocations per request (callgrind, memcheck; N_SMALL vs N_BIG requests) and
# its syscalls per request (strace -f -c attached for N_PROXY requests), 32 in flight. The client
# only loads it then: any build of upstream_load will do.
set -euo pipefail

out=${1:?usage: bench/upstream_profile.sh OUTDIR [UPSTREAM_LOAD_BIN]}
bin=${2:-build/upstream_load}
n_small=${N_SMALL:-200}
n_big=${N_BIG:-2200}
n_perf=${N_PERF:-50000}
[ -x "$bin" ] || { echo "upstream_profile: $bin not found (cmake --build build --target upstream_load)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$out"
out=$(cd "$out" && pwd)

srv_pid=""
proxy_pid=""
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1"
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop_pid "$proxy_pid"
    stop_pid "$srv_pid"
}
trap cleanup EXIT

"$bin" serve >"$out/serve.port" &
srv_pid=$!
for _ in $(seq 1 50); do
    grep -q '^port ' "$out/serve.port" 2>/dev/null && break
    sleep 0.1
done
port=$(awk '/^port /{print $2}' "$out/serve.port")
[ -n "$port" ] || { echo "upstream_profile: the fake Core did not start" >&2; exit 1; }

url_for() {
    case "$1" in
        GET) echo "http://127.0.0.1:$port/ledgers" ;;
        POST) echo "http://127.0.0.1:$port/transactions" ;;
    esac
}

delta=$((n_big - n_small))
summary="$out/summary.txt"
: >"$summary"

# callgrind's total instruction count of one run.
instructions() {
    local tag=$1 method=$2 conc=$3 n=$4 f="$out/callgrind.$1.$4.out"
    valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" client "$(url_for "$method")" "$n" "$conc" \
        "$method" >/dev/null 2>"$f.log"
    awk '/^summary:/{print $2}' "$f"
}

# valgrind's "total heap usage: N allocs".
allocs() {
    local method=$1 conc=$2 n=$3
    valgrind "$bin" client "$(url_for "$method")" "$n" "$conc" "$method" 2>&1 >/dev/null |
        awk '/total heap usage:/{gsub(",", "", $5); print $5}'
}

# strace -c table of one run: "name calls" lines.
syscalls() {
    local tag=$1 method=$2 conc=$3 n=$4 f="$out/strace.$1.$4.txt"
    strace -f -c -o "$f" "$bin" client "$(url_for "$method")" "$n" "$conc" "$method" >/dev/null
    awk 'NR > 2 && $1 !~ /^-/ && $NF != "total" { print $NF, $4 }' "$f"
}

# ONLY_PROXY=1 skips the client's own measurements (with BLNKPROXY_BIN set).
[ "${ONLY_PROXY:-0}" = 1 ] || for method in GET POST; do
    for conc in 1 32; do
        tag="$method.c$conc"
        i_small=$(instructions "$tag" "$method" "$conc" "$n_small")
        i_big=$(instructions "$tag" "$method" "$conc" "$n_big")
        a_small=$(allocs "$method" "$conc" "$n_small")
        a_big=$(allocs "$method" "$conc" "$n_big")
        syscalls "$tag" "$method" "$conc" "$n_small" >"$out/sys.$tag.small"
        syscalls "$tag" "$method" "$conc" "$n_big" >"$out/sys.$tag.big"
        {
            printf '%s, %d in flight: %.0f instructions/request, %.2f allocations/request\n' "$method" "$conc" \
                "$(echo "($i_big - $i_small) / $delta" | bc -l)" "$(echo "($a_big - $a_small) / $delta" | bc -l)"
            # Syscalls per request by name, from the difference of the two runs.
            awk -v d="$delta" '
                NR == FNR { small[$1] = $2; next }
                { per = ($2 - small[$1]) / d; total += per; if (per >= 0.005) { printf "    %-16s %.2f\n", $1, per } }
                END { printf "    %-16s %.2f\n", "= syscalls", total }' \
                "$out/sys.$tag.small" "$out/sys.$tag.big"
        } | tee -a "$summary"
    done
done

# Where the time goes: by library, then the top functions.
[ "${ONLY_PROXY:-0}" = 1 ] || for method in GET POST; do
    perf record -q -e cpu-clock -g -o "$out/perf.$method.data" \
        "$bin" client "$(url_for "$method")" "$n_perf" 32 "$method" >/dev/null 2>&1
    {
        echo "perf, $method, 32 in flight, $n_perf requests: share of samples by library"
        perf report -i "$out/perf.$method.data" --no-children --sort dso --stdio 2>/dev/null |
            awk '/%/ && $1 + 0 >= 0.5 { print "    " $0 }'
        echo "  top functions"
        perf report -i "$out/perf.$method.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
            awk '/%/ && $1 + 0 >= 1.0 { print "    " $0 }' | head -25
    } | tee -a "$summary"
done

[ -n "${BLNKPROXY_BIN:-}" ] || exit 0
n_proxy=${N_PROXY:-20000}
db="$out/proxy.db"
rm -f "$db"*
export UPSTREAM_PROFILE_SECRET=sk_bench_core_secret_0123456789abcdef
instance_id=$("$BLNKPROXY_BIN" instance add --db "$db" --name bench --url "http://127.0.0.1:$port" \
    --secret-key-env UPSTREAM_PROFILE_SECRET --json | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
api_key=$("$BLNKPROXY_BIN" key create --db "$db" --name bench --scopes proxy:read,proxy:write \
    --expires-in never --instances "$instance_id" --json | sed -n 's/.*"key":"\(blnk_[0-9a-f]*\)".*/\1/p')
# start_proxy [TOOL...]: blnkproxy serve (under TOOL when given) on a port of its choosing.
start_proxy() {
    : >"$out/proxy.log"
    "$@" "$BLNKPROXY_BIN" serve --db "$db" --listen 127.0.0.1:0 --workers 1 --audit-writes off \
        --audit-reads off --log-level info 2>"$out/proxy.log" >/dev/null &
    proxy_pid=$!
    proxy_port=""
    for _ in $(seq 1 300); do
        proxy_port=$(sed -n 's/.*"msg":"listening".*"port":\([0-9][0-9]*\).*/\1/p' "$out/proxy.log" | head -n1)
        [ -n "$proxy_port" ] && break
        sleep 0.1
    done
    [ -n "$proxy_port" ] || { echo "upstream_profile: blnkproxy did not start" >&2; exit 1; }
}

proxy_url() {
    case "$1" in
        GET) echo "http://127.0.0.1:$proxy_port/proxy/ledgers?instance_id=$instance_id" ;;
        POST) echo "http://127.0.0.1:$proxy_port/proxy/transactions?instance_id=$instance_id" ;;
    esac
}

# The whole proxy under callgrind and under memcheck: instructions and allocations per request
# (all threads), from the difference of N_SMALL and N_BIG requests, 32 in flight.
proxy_tool_run() {
    local tool=$1 method=$2 n=$3
    local f="$out/proxy.$tool.$method.$n"
    if [ "$tool" = callgrind ]; then
        start_proxy valgrind --tool=callgrind --callgrind-out-file="$f.out"
    else
        start_proxy valgrind --log-file="$f.out"
    fi
    "$bin" client "$(proxy_url "$method")" "$n" 32 "$method" "Authorization: Bearer $api_key" >/dev/null
    kill -TERM "$proxy_pid"
    wait "$proxy_pid" 2>/dev/null || true
    proxy_pid=""
    if [ "$tool" = callgrind ]; then
        awk '/^summary:/{print $2}' "$f.out"
    else
        awk '/total heap usage:/{gsub(",", "", $5); print $5}' "$f.out"
    fi
}

for method in GET POST; do
    i_small=$(proxy_tool_run callgrind "$method" "$n_small")
    i_big=$(proxy_tool_run callgrind "$method" "$n_big")
    a_small=$(proxy_tool_run memcheck "$method" "$n_small")
    a_big=$(proxy_tool_run memcheck "$method" "$n_big")
    printf 'blnkproxy (1 worker, audit off), %s, 32 in flight: %.0f instructions/request, %.2f allocations/request\n' \
        "$method" "$(echo "($i_big - $i_small) / $delta" | bc -l)" "$(echo "($a_big - $a_small) / $delta" | bc -l)" |
        tee -a "$summary"
done

start_proxy
for method in GET POST; do
    purl=$(proxy_url "$method")
    # Warm up: the proxy's connections to Core exist before counting starts.
    "$bin" client "$purl" 200 32 "$method" "Authorization: Bearer $api_key" >/dev/null
    strace -f -c -o "$out/strace.proxy.$method.txt" -p "$proxy_pid" &
    strace_pid=$!
    sleep 1
    "$bin" client "$purl" "$n_proxy" 32 "$method" "Authorization: Bearer $api_key" >/dev/null
    kill -INT "$strace_pid"
    wait "$strace_pid" 2>/dev/null || true
    {
        echo "blnkproxy (1 worker, audit off), $method, 32 in flight: syscalls/request"
        awk -v n="$n_proxy" 'NR > 2 && $1 !~ /^-/ && $NF != "total" { per = $4 / n; total += per;
            if (per >= 0.005) { printf "    %-16s %.2f\n", $NF, per } }
            END { printf "    %-16s %.2f\n", "= syscalls", total }' "$out/strace.proxy.$method.txt"
    } | tee -a "$summary"
done
