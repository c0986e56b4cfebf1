#!/usr/bin/env bash
# Benchmark: blnkproxy with many API keys in its store (issue 9, "Benchmarks"). Not a test:
# nothing fails on a slow number, and ctest does not run it.
#
# One run: a store with BENCH_KEYS keys (one made by `key create`, the rest bulk-inserted by SQL
# in the same row format) and a store with 10, both on SQLite or both on PostgreSQL
# (BENCH_STORE=pg: a throw-away server, as the tests start it). It prints one table:
#   - node start-up: time from exec to /readyz 200, RSS then (VmRSS/VmHWM)
#   - BENCH_REVOKES revocations through the CLI (`key revoke ID --db DSN`), each while every node
#     is polled with the key being revoked: time from the CLI's start until every node answers
#     401, p50/p99/max; how long the CLI command took; RSS after them
#   - proxy cost: wrk GET /ledgers through a node of each store to a fake Core (nginx, as
#     bench/run.sh), alternating, req/s, p99 and CPU µs per request (/proc/PID/stat)
# See bench/README.md "Many API keys" for the knobs and how to read the output.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

store=${BENCH_STORE:-sqlite}
case "$store" in
    sqlite) default_nodes=1 ;;
    pg) default_nodes=3 ;;
    *) die "BENCH_STORE must be sqlite or pg, not '$store'" ;;
esac
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    q_revokes=10 q_duration=3s q_rounds=1
else
    q_revokes=100 q_duration=5s q_rounds=2
fi
keys=${BENCH_KEYS:-1000000}
revokes=${BENCH_REVOKES:-$q_revokes}
nodes=${BENCH_NODES:-$default_nodes}
duration=${BENCH_DURATION:-$q_duration}
rounds=${BENCH_ROUNDS:-$q_rounds}
conns=${BENCH_CONNECTIONS:-32}
poll_ms=${BENCH_POLL_MS:-2}
revoke_timeout=${BENCH_REVOKE_TIMEOUT:-60}
small_keys=10

for v in keys revokes nodes rounds conns revoke_timeout; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "BENCH_${v^^} must be a whole number, not '${!v}'"
done
[[ $duration =~ ^[0-9]+s$ ]] || die "BENCH_DURATION must be seconds like 5s, not '$duration'"
[ "$keys" -gt "$small_keys" ] || die "BENCH_KEYS must be more than $small_keys (the baseline store has $small_keys)"
[ "$revokes" -lt "$((keys - 1))" ] || die "BENCH_REVOKES ($revokes) must be less than BENCH_KEYS - 1"
[ "$nodes" -ge 1 ] || die "BENCH_NODES must be at least 1"
[ "$rounds" -ge 1 ] || die "BENCH_ROUNDS must be at least 1"
command -v sqlite3 >/dev/null || [ "$store" = pg ] || die "sqlite3 not found (apt-get install sqlite3)"

bench_init keys-scale
need_wrk_nginx
t_run0=$(date +%s)

echo "blnkproxy keys_scale: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -sr), $("$bin" --version 2>/dev/null | head -n1)"
echo "store $store, $keys keys vs $small_keys, $nodes node(s) on the big store, $revokes revocations, wrk -t1 -c$conns -d$duration x $rounds round(s), serve --workers 1"
echo

start_nginx
core_url="http://127.0.0.1:$nginx_port"

if [ "$store" = pg ]; then
    note "starting a throw-away PostgreSQL server"
    start_pg
    db_big=$(pg_create_db bench_keys)
    db_small=$(pg_create_db bench_ten)
else
    db_big="$tmp/keys.db"
    db_small="$tmp/ten.db"
fi

# fill DSN TOTAL REVOKE_COUNT KEYS_FILE: the schema, one instance and one key through the CLI,
# then TOTAL-1 more keys by SQL in that key's row format. Sets fill_s, instance_id, cli_key.
fill() {
    local db=$1 total=$2 nrev=$3 kfile=$4 row scopes instances expires created seed t0 t1 n
    BLNKPROXY_DB="$db" timeout 60 "$bin" db migrate >/dev/null 2>"$tmp/cli.err" || { cat "$tmp/cli.err" >&2; die "db migrate failed"; }
    instance_and_key "$db" "bench-core" "$core_url"
    # The CLI's row, read back: the bulk rows copy its scopes, instances and expiry.
    row=$(store_sql "$db" "SELECT scopes, coalesce(instances, ''), expires_at, created_at FROM api_keys")
    [ "$(printf '%s\n' "$row" | wc -l)" = 1 ] || die "expected one key in the new store, got: $row"
    IFS='|' read -r scopes instances expires created <<<"$row"
    seed=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    t0=$(date +%s%N)
    # The generator writes into a FIFO that the store's client reads: two PIDs this script knows.
    rm -f "$tmp/fill.fifo"
    mkfifo "$tmp/fill.fifo"
    "$python_bin" "$helper" gen --kind "$store" --count $((total - 1)) --seed "$seed" --scopes "$scopes" \
        --instances "$instances" --created-at "$created" --expires-at "$expires" \
        --revoke-count "$nrev" --keys-out "$kfile" >"$tmp/fill.fifo" &
    gen_pid=$!
    bench_pids+=("$gen_pid")
    if [ "$store" = pg ]; then
        # COPY fires the change-log triggers per row, as `key create` does: the store ends up
        # with the same changes rows as if every key had been created by the CLI.
        run_bg timeout 3600 psql "$db" -X -q -v ON_ERROR_STOP=1 -c "COPY api_keys (id, name, prefix, digest, scopes, instances, created_at, expires_at, last_used_at, revoked, revoked_at) FROM STDIN" \
            <"$tmp/fill.fifo" || die "bulk insert failed"
    else
        # The generated SQL is one transaction: a generator that fails leaves nothing behind.
        run_bg timeout 3600 sqlite3 -bail "$db" <"$tmp/fill.fifo" >/dev/null || die "bulk insert failed"
    fi
    wait "$gen_pid" || die "the key generator failed"
    forget_pid "$gen_pid"
    rm -f "$tmp/fill.fifo"
    [ "$store" = sqlite ] || store_sql "$db" "ANALYZE" >/dev/null
    t1=$(date +%s%N)
    fill_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    n=$(store_sql "$db" "SELECT count(*) FROM api_keys")
    [ "$n" = "$total" ] || die "the store holds $n keys, not $total"
}

store_size() {
    if [ "$store" = pg ]; then
        store_sql "$1" "SELECT pg_database_size(current_database())"
    else
        du -cb "$1"* | tail -n1 | cut -f1
    fi
}

note "filling the big store with $keys keys"
fill "$db_big" "$keys" "$revokes" "$tmp/keys-big.tsv"
big_fill_s=$fill_s
big_instance=$instance_id
big_size=$(store_size "$db_big")
note "filling the baseline store with $small_keys keys"
fill "$db_small" "$small_keys" 0 "$tmp/keys-small.tsv"
small_instance=$instance_id
big_load_key=$(awk -F'\t' '$1 == "load" { print $3 }' "$tmp/keys-big.tsv")
small_load_key=$(awk -F'\t' '$1 == "load" { print $3 }' "$tmp/keys-small.tsv")
unset cli_key

check() {
    # check WHAT WANT curl-args...
    local what=$1 want=$2 got
    shift 2
    got=$(curl -s -o "$tmp/check.body" -w '%{http_code}' --max-time 5 "$@") || got=000
    [ "$got" = "$want" ] || die "$what: expected HTTP $want, got $got: $(head -c 300 "$tmp/check.body")"
}

# --- nodes ---------------------------------------------------------------------------------------
big_pids=() big_ports=() big_logs=() big_ready=() big_rss=()
for i in $(seq 1 "$nodes"); do
    note "starting node$i on the big store"
    start_serve "node$i" "$db_big"
    big_pids+=("$serve_pid")
    big_ports+=("$serve_port")
    big_logs+=("$tmp/node$i.log")
    big_ready+=("$serve_ready_ms")
    big_rss+=("$(rss_kib "$serve_pid")")
    check "node$i with a bulk key" 200 -H "Authorization: Bearer $big_load_key" \
        "http://127.0.0.1:$serve_port/proxy/ledgers?instance_id=$big_instance"
    check "node$i without a credential" 401 "http://127.0.0.1:$serve_port/proxy/ledgers?instance_id=$big_instance"
done
note "starting the baseline node"
start_serve "base" "$db_small"
small_pid=$serve_pid small_port=$serve_port small_ready=$serve_ready_ms
small_rss=$(rss_kib "$small_pid")
check "baseline node with a bulk key" 200 -H "Authorization: Bearer $small_load_key" \
    "http://127.0.0.1:$small_port/proxy/ledgers?instance_id=$small_instance"
check "baseline node without a credential" 401 "http://127.0.0.1:$small_port/proxy/ledgers?instance_id=$small_instance"

# --- revocations ---------------------------------------------------------------------------------
declare -A rv=()
if [ "$revokes" -gt 0 ]; then
    note "$revokes revocations through the CLI, each polled on $nodes node(s)"
    IFS=,
    BLNKPROXY_DB="$db_big" run_bg "$python_bin" "$helper" revoke --bin "$bin" --ports "${big_ports[*]}" \
        --pids "${big_pids[*]}" --logs "${big_logs[*]}" --instance "$big_instance" \
        --keys "$tmp/keys-big.tsv" --count "$revokes" --timeout "$revoke_timeout" --poll-ms "$poll_ms" \
        --out "$tmp/revocations.tsv" >"$tmp/revoke.out" || die "the revocations failed"
    unset IFS
    while IFS='=' read -r k v; do
        rv[$k]=$v
    done <"$tmp/revoke.out"
fi

# --- proxy cost: N keys vs 10 keys ---------------------------------------------------------------
secs=${duration%s}
wrk_one() {
    # wrk_one LABEL PID PORT INSTANCE KEY LOG: appends "LABEL<TAB>req/s p99_ms us_per_req errors"
    # to $tmp/wrk.tsv (not printed: a $(...) subshell would hold off the signal traps).
    local label=$1 pid=$2 port=$3 inst=$4 key=$5 log=$6 out c0 c1
    out="$tmp/wrk.out"
    run_bg timeout 30 "$wrk_bin" -t1 -c"$conns" -d1s -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$port/proxy/ledgers?instance_id=$inst" >/dev/null 2>&1 || true
    c0=$(cpu_ticks "$pid")
    run_bg timeout $((secs + 30)) "$wrk_bin" -t1 -c"$conns" -d"$duration" --latency -H "Authorization: Bearer $key" \
        "http://127.0.0.1:$port/proxy/ledgers?instance_id=$inst" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    c1=$(cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || die "a node died during the load run; log tail: $(tail -n 5 "$log")"
    : >"$log"  # one access-log line per request: keep the disk footprint small
    awk -v label="$label" -v cd=$((c1 - c0)) -v hz="$clk_tck" '
        function ms(v,   n) {
            n = v + 0
            if (v ~ /us$/) { n = n / 1000 } else if (v ~ /ms$/) { n = n } else if (v ~ /s$/) { n = n * 1000 }
            return n
        }
        /^ +99% / { p99 = ms($2) }
        / requests in / { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
        END {
            printf "%s\t%.0f %.3f %.1f %d\n", label, rps, p99, (reqs > 0) ? cd * 1e6 / hz / reqs : 0, non2xx + errs
        }' "$out" >>"$tmp/wrk.tsv"
}

note "proxy cost: wrk GET /ledgers, $rounds round(s) of $small_keys keys then $keys keys"
: >"$tmp/wrk.tsv"
for r in $(seq 1 "$rounds"); do
    wrk_one small "$small_pid" "$small_port" "$small_instance" "$small_load_key" "$tmp/base.log"
    wrk_one big "${big_pids[0]}" "${big_ports[0]}" "$big_instance" "$big_load_key" "$tmp/node1.log"
done
# Medians over the rounds of each column.
wrk_med() {
    # wrk_med big|small COLUMN(1..4)
    awk -F'\t' -v w="$1" '$1 == w { print $2 }' "$tmp/wrk.tsv" | awk -v c="$2" '{ print $c }' | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-" } else if (NR % 2) { print v[(NR + 1) / 2] } else { print (v[NR / 2] + v[NR / 2 + 1]) / 2 } }'
}
fmt() { awk -v f="$1" -v v="$2" 'BEGIN { printf f, v }'; }
big_rps=$(fmt %.0f "$(wrk_med big 1)") small_rps=$(fmt %.0f "$(wrk_med small 1)")
big_p99=$(fmt %.2f "$(wrk_med big 2)") small_p99=$(fmt %.2f "$(wrk_med small 2)")
big_us=$(fmt %.1f "$(wrk_med big 3)") small_us=$(fmt %.1f "$(wrk_med small 3)")
big_err=$(awk -F'\t' '$1 == "big" { split($2, a, " "); s += a[4] } END { print s + 0 }' "$tmp/wrk.tsv")
small_err=$(awk -F'\t' '$1 == "small" { split($2, a, " "); s += a[4] } END { print s + 0 }' "$tmp/wrk.tsv")

# --- table ---------------------------------------------------------------------------------------
row() { printf '%-40s %-6s %20s %20s\n' "$1" "$2" "$3" "$4"; }
rss_pair() { local r h; read -r r h <<<"$1"; printf '%s / %s' "$(mib "$r")" "$(mib "$h")"; }
secs_of() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }
pct_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) { printf "%+.1f%%", (a - b) * 100 / b } else { print "-" } }'; }
first_only() { if [ "$1" = 1 ]; then printf '%s' "$2"; else printf '%s' "-"; fi; }
# the label on a node's first row only
lbl() { if [ "$1" = 1 ]; then printf '%s' "$2"; fi; }

echo
echo "fill: $((keys - 1)) keys by SQL in ${big_fill_s} s (plus 1 by the CLI); store $(mib $((big_size / 1024))) MiB"
echo
row "" "" "$keys keys" "$small_keys keys"
for i in $(seq 1 "$nodes"); do
    row "$(lbl "$i" "ready after (exec to /readyz 200), s")" "node$i" "$(secs_of "${big_ready[i - 1]}")" \
        "$(first_only "$i" "$(secs_of "$small_ready")")"
done
for i in $(seq 1 "$nodes"); do
    row "$(lbl "$i" "RSS at ready, VmRSS / VmHWM MiB")" "node$i" "$(rss_pair "${big_rss[i - 1]}")" \
        "$(first_only "$i" "$(rss_pair "$small_rss")")"
done
if [ "$revokes" -gt 0 ]; then
    row "revoke to 401 on all $nodes node(s), ms" "p50" "${rv[all_p50]}" "-"
    row "  (${rv[revokes]} revocations)" "p99" "${rv[all_p99]}" "-"
    row "" "max" "${rv[all_max]}" "-"
    row "  not refused within ${revoke_timeout} s" "" "${rv[timeouts]}" "-"
    row "\`key revoke\` command took, ms" "p50" "${rv[cli_p50]}" "-"
    row "" "p99" "${rv[cli_p99]}" "-"
    row "  CLI warned: not applied within 2 s" "" "${rv[cli_warned]}" "-"
    for i in $(seq 1 "$nodes"); do
        b=${rv[node${i}_rss_before]} a=${rv[node${i}_rss_after]}
        row "$(lbl "$i" "RSS after the revocations, MiB")" "node$i" \
            "$(mib "$a") ($(awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.0f", (a - b) / 1024 }'))" "-"
    done
    for i in $(seq 1 "$nodes"); do
        IFS=, read -r r1 rh rl <<<"${rv[node${i}_rss_first_half_last]}"
        row "$(lbl "$i" "  VmRSS after 1st / half / last, MiB")" "node$i" "$(mib "$r1") / $(mib "$rh") / $(mib "$rl")" "-"
    done
    row "  polls answered neither 200 nor 401" "" "${rv[other]}" "-"
fi
row "GET /ledgers via node1, $conns conns" "req/s" "$big_rps ($(pct_of "$big_rps" "$small_rps"))" "$small_rps"
row "" "p99 ms" "$big_p99" "$small_p99"
row "  CPU us per request (all threads)" "" "$big_us ($(pct_of "$big_us" "$small_us"))" "$small_us"
row "  errors (non-2xx + socket)" "" "$big_err" "$small_err"
echo
echo "ready: from the exec of serve to the first 200 on /readyz.  RSS: /proc/PID/status right then."
echo "revoke → 401: from the start of \`blnkproxy key revoke\` until every node answered 401 to the key"
echo "(each node polled every ${poll_ms} ms over a kept-alive connection); p99 is nearest-rank."
echo "RSS after the revocations: (+n) is the change since the first revocation started."
echo "wrk rows: medians of $rounds round(s), the baseline first in each; (±%) is vs $small_keys keys."
echo "Run took $(($(date +%s) - t_run0)) s."
