#!/usr/bin/env bash
# Benchmark: blnkproxy side by side with nginx and HAProxy doing the same job (issue 10), in one
# run, against the same fake Core. Not a test: nothing fails on a slow number, ctest does not run it.
#
# Peers (BENCH_PEERS, in this order inside every repetition):
#   direct             wrk straight at the fake Core (nginx.conf.template): the ceiling
#   nginx              nginx as the proxy (anchors-nginx.conf.template)
#   haproxy            HAProxy as the proxy (anchors-haproxy.cfg.template)
#   blnkproxy          `blnkproxy serve` with its defaults: audit on (reads async, writes sync)
#   blnkproxy-noaudit  the same with --audit-reads off --audit-writes off
# The job: the Bearer key must be the one known key, instance_id must name the one known instance;
# both are stripped, X-Blnk-Key (the Core secret) is added, the request goes over keep-alive to
# the fake Core and the answer is relayed. Before measuring, every proxy is smoke-checked (401,
# 4xx, byte-identical 200/201; for nginx and HAProxy also what reached Core) and the run stops if
# one fails. Each workload (GET /balances/:id/lineage, POST /transactions) x connections x peer
# is a wrk run; BENCH_REPS repetitions; the table shows medians. See bench/README.md.
#
#   bench/anchors.sh
#   BENCH_DURATION=2s BENCH_REPS=1 bench/anchors.sh      # a quick look that it works
#
# Knobs: BENCH_DURATION (10s), BENCH_REPS (3), BENCH_CONNECTIONS ("32 256"), BENCH_WORKLOADS
# ("get post"), BENCH_PEERS (all five), BENCH_WORKERS (2: nginx workers, HAProxy threads,
# blnkproxy --workers), BENCH_WRK_THREADS (2), BENCH_WARMUP (2s per peer and workload, 256
# connections, not recorded), BENCH_KEEP=1, BLNKPROXY_BIN, NGINX_BIN, HAPROXY_BIN, WRK_BIN.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

duration=${BENCH_DURATION:-10s}
reps=${BENCH_REPS:-3}
connections=${BENCH_CONNECTIONS:-"32 256"}
workloads=${BENCH_WORKLOADS:-"get post"}
peers=${BENCH_PEERS:-"direct nginx haproxy blnkproxy blnkproxy-noaudit"}
workers=${BENCH_WORKERS:-2}
wrk_threads=${BENCH_WRK_THREADS:-2}
warmup=${BENCH_WARMUP:-2s}
haproxy_bin=${HAPROXY_BIN:-/usr/sbin/haproxy}

[[ $duration =~ ^[0-9]+s$ ]] || die "BENCH_DURATION must be seconds like 10s, not '$duration'"
[[ $warmup =~ ^[0-9]+s$ ]] || die "BENCH_WARMUP must be seconds like 2s, not '$warmup'"
for v in reps workers wrk_threads; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_${v^^} must be a whole number of at least 1, not '${!v}'"
done
for c in $connections; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be whole numbers, not '$c'"
done
for w in $workloads; do
    case "$w" in get | post) ;; *) die "BENCH_WORKLOADS: '$w' is not get or post" ;; esac
done
for p in $peers; do
    case "$p" in
        direct | nginx | haproxy | blnkproxy | blnkproxy-noaudit) ;;
        *) die "BENCH_PEERS: unknown peer '$p' (direct nginx haproxy blnkproxy blnkproxy-noaudit)" ;;
    esac
done
case " $peers " in *" direct "*) ;; *) peers="direct $peers" ;; esac  # the ratio column needs it
case " $peers " in
    *" haproxy "*) [ -x "$haproxy_bin" ] || die "haproxy not found at $haproxy_bin (apt-get install haproxy, or set HAPROXY_BIN)" ;;
esac

bench_init anchors
need_wrk_nginx
ncpu=$(nproc)

get_path=/balances/bln_0be360ca-86fe-457d-be43-daa3f966d8f0/lineage
post_path=/transactions

# --- the fake Core ------------------------------------------------------------------------------
start_nginx
core_pid=$nginx_pid
core="http://127.0.0.1:$nginx_port"

# --- peers: every one gets a base URL (prefix before the Core path), a key, an instance id -------
declare -A base key inst pid idle_rss idle_pss max_rss max_pss
base[direct]=$core
# nginx and HAProxy: one key and one Core secret made up for this run, in their config files only.
proxy_key=blnk_$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
proxy_secret=core-secret-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')
inst[direct]=instance_bench
key[direct]=$proxy_key  # Core ignores it; the request is the same size as the proxies'
pid[direct]=""

render() {
    # render TEMPLATE OUT PORT DIR: the @...@ fields of an anchors-*.template; DIR under $tmp.
    sed -e "s#@TMPDIR@#$tmp/$4#g" -e "s#@PORT@#$3#g" -e "s#@CORE_PORT@#$nginx_port#g" \
        -e "s#@WORKERS@#$workers#g" -e "s#@KEY@#$proxy_key#g" -e "s#@SECRET@#$proxy_secret#g" \
        -e "s#@INSTANCE@#instance_bench#g" "$here/$1" >"$2"
    chmod 600 "$2"
}

start_peer() {
    # start_peer NAME PORT CMD...: runs CMD in the background, its output in $tmp/NAME.log; waits
    # (10 s at most) until the port answers HTTP.
    local name=$1 port=$2
    shift 2
    "$@" >"$tmp/$name.log" 2>&1 &
    pid[$name]=$!
    bench_pids+=("${pid[$name]}")
    wait_http "http://127.0.0.1:$port/" "${pid[$name]}" \
        || { tail -n 5 "$tmp/$name.log" "$tmp/$name-proxy/error.log" >&2 2>/dev/null || true; die "$name did not start"; }
    base[$name]="http://127.0.0.1:$port"
    key[$name]=$proxy_key
    inst[$name]=instance_bench
}

for p in $peers; do
    case "$p" in
        nginx)
            port=$(free_port)
            mkdir -p "$tmp/nginx-proxy"  # $tmp/nginx is the fake Core's
            render anchors-nginx.conf.template "$tmp/nginx-proxy/nginx.conf" "$port" nginx-proxy
            start_peer nginx "$port" "$nginx_bin" -p "$tmp/nginx-proxy" -e "$tmp/nginx-proxy/error.log" \
                -c "$tmp/nginx-proxy/nginx.conf"
            ;;
        haproxy)
            port=$(free_port)
            mkdir -p "$tmp/haproxy"
            render anchors-haproxy.cfg.template "$tmp/haproxy/haproxy.cfg" "$port" haproxy
            start_peer haproxy "$port" "$haproxy_bin" -db -f "$tmp/haproxy/haproxy.cfg"
            ;;
        blnkproxy | blnkproxy-noaudit)
            # Its own SQLite store (the two audit writers never share one): one instance, one key
            # restricted to it (proxy:read,proxy:write). Flags spell out the audit defaults too,
            # so a stray BLNKPROXY_AUDIT_* variable cannot change the job.
            instance_and_key "$tmp/$p.db" "$p" "$core"
            audit="--audit-reads async --audit-writes sync"
            [ "$p" = blnkproxy ] || audit="--audit-reads off --audit-writes off"
            # shellcheck disable=SC2086
            serve_workers=$workers start_serve "$p" "$tmp/$p.db" $audit
            pid[$p]=$serve_pid
            base[$p]="http://127.0.0.1:$serve_port/proxy"
            key[$p]=$cli_key
            inst[$p]=$instance_id
            ;;
    esac
done
unset cli_key

tree_pids() {
    # A process and its descendants (nginx: the master and its workers).
    local c
    echo "$1"
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree_pids "$c"; done
}
tree_ticks() {
    local p s=0
    for p in $(tree_pids "$1"); do s=$((s + $(cpu_ticks "$p"))); done
    echo "$s"
}
tree_mem() {
    # "RSS PSS" in KiB, summed over the process tree (PSS splits shared pages between processes).
    local p r=0 s=0 v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true); r=$((r + ${v:-0}))
        v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || true); s=$((s + ${v:-0}))
    done
    echo "$r $s"
}
busy_ticks() {
    # user+nice+system of all CPUs (/proc/stat), for the "foreign CPU" column.
    awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat
}
self_ticks() {
    # This script and every child it has waited for (wrk, curl, ...): utime+stime+cutime+cstime.
    local s
    s=$(<"/proc/$$/stat")
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13} + ${14} + ${15}))
}

sleep 1
for p in $peers; do
    [ -n "${pid[$p]}" ] || continue
    read -r r s < <(tree_mem "${pid[$p]}")
    idle_rss[$p]=$r
    idle_pss[$p]=$s
    max_rss[$p]=0
    max_pss[$p]=0
done

# --- smoke check: the same job for every proxy, or no numbers --------------------------------
fail() {
    echo "bench: smoke check of $1 failed: $2" >&2
    tail -n 5 "$tmp/$1.log" >&2 2>/dev/null || true
    exit 1
}
status() {
    # status URL [curl args...] → the HTTP status; the body in $tmp/smoke.body
    local url=$1
    shift
    curl -s -o "$tmp/smoke.body" -w '%{http_code}' --max-time 5 "$@" "$url" || echo 000
}
post_args=(-H 'Content-Type: application/json' --data-binary '{"amount":750,"precision":100,"reference":"ref_smoke","currency":"USD","source":"@world","destination":"@bank"}')
want_get=$(curl -s --max-time 5 "$core$get_path")
want_post=$(curl -s --max-time 5 "${post_args[@]}" "$core$post_path")
if [ -z "$want_get" ] || [ -z "$want_post" ]; then
    die "the fake Core does not answer"
fi

answered() {
    # answered GOT WANT_STATUS WANT_BODY: the status and Core's body byte for byte
    [ "$1" = "$2" ] && [ "$(<"$tmp/smoke.body")" = "$3" ]
}
smoke() {
    local p=$1 b=${base[$1]} q="?instance_id=${inst[$1]}" auth="Authorization: Bearer ${key[$1]}" got
    got=$(status "$b$get_path$q")
    [ "$got" = 401 ] || fail "$p" "no credential: HTTP $got, want 401"
    got=$(status "$b$get_path$q" -H "Authorization: Bearer blnk_00000000000000000000000000000000")
    [ "$got" = 401 ] || fail "$p" "an unknown key: HTTP $got, want 401"
    got=$(status "$b$get_path?instance_id=instance_nope" -H "$auth")
    [[ $got == 4?? ]] || fail "$p" "an unknown instance_id: HTTP $got, want 4xx"
    got=$(status "$b$get_path$q" -H "$auth")
    answered "$got" 200 "$want_get" || fail "$p" "GET: HTTP $got or a body other than Core's"
    got=$(status "$b$post_path$q" -H "$auth" "${post_args[@]}")
    answered "$got" 201 "$want_post" || fail "$p" "POST: HTTP $got or a body other than Core's"
    got=$(status "$b$get_path" -H "$auth")
    case "$p" in
        blnkproxy*)
            # DESIGN §2: the key may use exactly one instance, so that instance is implied.
            answered "$got" 200 "$want_get" \
                || fail "$p" "no instance_id with a one-instance key: HTTP $got, want 200 and Core's body"
            # /__echo is not a route of blnkproxy's table: its own tests check what reaches Core.
            return
            ;;
    esac
    [ "$got" = 400 ] || fail "$p" "no instance_id: HTTP $got, want 400"
    got=$(status "$b/__echo?a=1&instance_id=${inst[$p]}&b=2" -H "$auth")
    grep -q '"uri":"/__echo?a=1&b=2"' "$tmp/smoke.body" || fail "$p" "instance_id not stripped: $(<"$tmp/smoke.body")"
    grep -q '"authorization":""' "$tmp/smoke.body" || fail "$p" "Authorization reached Core"
    grep -q "\"x_blnk_key\":\"$proxy_secret\"" "$tmp/smoke.body" || fail "$p" "X-Blnk-Key missing or wrong"
    got=$(status "$b/__echo?instance_id=${inst[$p]}" -H "$auth")
    grep -q '"uri":"/__echo"' "$tmp/smoke.body" || fail "$p" "an empty query left a '?': $(<"$tmp/smoke.body")"
}
for p in $peers; do
    [ "$p" = direct ] || smoke "$p"
done

# --- runs -----------------------------------------------------------------------------------------
wrk_run() {
    # wrk_run PEER WORKLOAD CONNS DURATION OUT
    local p=$1 path=$get_path secs=${4%s}
    [ "$2" = post ] && path=$post_path
    BENCH_WORKLOAD=$2 BENCH_AUTH=${key[$p]:+Bearer ${key[$p]}} run_bg timeout $((secs + 30)) \
        "$wrk_bin" -t"$wrk_threads" -c"$3" -d"$4" --timeout 5s --latency -s "$here/anchors.lua" \
        "${base[$p]}$path?instance_id=${inst[$p]}" >"$5" 2>&1 || true
}

raw="$tmp/raw.tsv"
: >"$raw"
measure() {
    # measure REP PEER WORKLOAD CONNS → one line of $raw
    local rep=$1 p=$2 wl=$3 c=$4 out="$tmp/wrk-$2-$3-$4-$1.txt" pp=${pid[$2]}
    local p0=0 p1=0 c0 c1 b0 b1 s0 s1 t0 t1 line mem="- -" foreign
    b0=$(busy_ticks); s0=$(self_ticks); t0=$(date +%s%N)
    [ -z "$pp" ] || p0=$(tree_ticks "$pp")
    c0=$(cpu_ticks "$core_pid")
    wrk_run "$p" "$wl" "$c" "$duration" "$out"
    c1=$(cpu_ticks "$core_pid")
    [ -z "$pp" ] || p1=$(tree_ticks "$pp")
    s1=$(self_ticks); b1=$(busy_ticks); t1=$(date +%s%N)
    if [ -n "$pp" ]; then
        kill -0 "$pp" 2>/dev/null || die "$p died during the run; log tail: $(tail -n 5 "$tmp/$p.log")"
        mem=$(tree_mem "$pp")
    fi
    # The access log grows by ~300 B per request; keep the disk footprint small between runs.
    case "$p" in blnkproxy*) : >"$tmp/$p.log" ;; esac
    # CPU anything else on the machine used meanwhile (other users, builds), % of all CPUs.
    foreign=$(awk -v f=$(((b1 - b0) - (p1 - p0) - (c1 - c0) - (s1 - s0))) -v ns=$((t1 - t0)) \
        -v n="$ncpu" -v hz="$clk_tck" 'BEGIN { if (f < 0) f = 0; printf "%.1f", 100 * f / (ns / 1e9 * n * hz) }')
    line=$(grep '^BENCH_RESULT ' "$out" || true)
    [ -n "$line" ] || die "no result from wrk for $p $wl c=$c: $(tail -n 3 "$out")"
    # rep peer workload conns requests rps p50_us p99_us non2xx errors peer_ticks core_ticks foreign rss pss
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$p" "$wl" "$c" "$(echo "${line#BENCH_RESULT }" | tr ' ' '\t')" \
        $((p1 - p0)) $((c1 - c0)) "$foreign" "$(echo "$mem" | tr ' ' '\t')" >>"$raw"
    if [ "$c" = "$(echo "$connections" | tr ' ' '\n' | sort -n | tail -n 1)" ] && [ -n "$pp" ]; then
        read -r r s <<<"$mem"
        [ "$r" -le "${max_rss[$p]}" ] || max_rss[$p]=$r
        [ "$s" -le "${max_pss[$p]}" ] || max_pss[$p]=$s
    fi
    note "rep $rep $p $wl c=$c: $(awk '{ printf "%.0f req/s", $2 }' <<<"${line#BENCH_RESULT }"), foreign CPU $foreign%"
}

echo "blnkproxy anchors: $(date -u +%Y-%m-%dT%H:%M:%SZ), $ncpu cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)), $(uname -sr)"
echo "$("$nginx_bin" -v 2>&1 | sed 's#.*: ##'), $("$haproxy_bin" -v 2>/dev/null | head -n1 | awk '{ print "HAProxy " $3 }'), wrk $("$wrk_bin" -v 2>&1 | head -n1 | awk '{ print $2 }'), $("$bin" --version 2>/dev/null | head -n1)"
echo "peers: $peers; $workers workers each; wrk -t$wrk_threads -d$duration --latency, connections: $connections; $reps repetition(s); warm-up $warmup"
echo

if [ "${warmup%s}" -gt 0 ]; then
    for p in $peers; do
        for wl in $workloads; do
            wrk_run "$p" "$wl" 256 "$warmup" "$tmp/warmup.txt"
        done
    done
fi
for rep in $(seq 1 "$reps"); do
    for wl in $workloads; do
        for c in $connections; do
            for p in $peers; do  # peers alternate inside a repetition: slow drifts hit them all
                measure "$rep" "$p" "$wl" "$c"
                sleep 1
            done
        done
    done
done

mem="$tmp/mem.tsv"
: >"$mem"
for p in $peers; do
    [ -n "${pid[$p]}" ] || continue
    printf '%s\t%s\t%s\t%s\t%s\n' "$p" "${idle_rss[$p]}" "${max_rss[$p]}" "${idle_pss[$p]}" "${max_pss[$p]}" >>"$mem"
done

# --- tables ---------------------------------------------------------------------------------------
"$python_bin" - "$raw" "$mem" "$clk_tck" "$(echo "$connections" | tr ' ' '\n' | sort -n | tail -n 1)" <<'EOF'
import statistics, sys

raw, mem, hz, cmax = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = {}
order = []
for line in open(raw):
    (rep, peer, wl, c, reqs, rps, p50, p99, non2xx, errs, pt, ct, foreign, _rss, _pss) = line.split("\t")
    k = (wl, c, peer)
    if k not in runs:
        runs[k] = []
        order.append(k)
    reqs = int(reqs)
    runs[k].append({"rep": rep, "rps": float(rps), "p50": int(p50) / 1000, "p99": int(p99) / 1000,
                    "bad": int(non2xx) + int(errs), "peer": int(pt) * 1e6 / hz / reqs if reqs else 0,
                    "core": int(ct) * 1e6 / hz / reqs if reqs else 0, "foreign": float(foreign)})

def med(rs, f):
    return statistics.median(r[f] for r in rs)

print("| workload | conns | peer | req/s | x direct (min-max) | p50 ms | p99 ms | peer CPU µs/req "
      "| Core CPU µs/req | req/s spread | non-2xx + errors | foreign CPU max |")
print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for k in order:
    wl, c, peer = k
    rs = runs[k]
    rps = med(rs, "rps")
    if peer == "direct":
        ratio, cpu = "1.00", "-"
    else:
        d = {r["rep"]: r["rps"] for r in runs.get((wl, c, "direct"), [])}
        xs = [r["rps"] / d[r["rep"]] for r in rs if d.get(r["rep"])]
        ratio = f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})" if xs else "-"
        cpu = f"{med(rs, 'peer'):.1f}"
    spread = (max(r["rps"] for r in rs) - min(r["rps"] for r in rs)) / rps * 100 if rps else 0
    print(f"| {wl} | {c} | {peer} | {rps:,.0f} | {ratio} | {med(rs, 'p50'):.2f} | {med(rs, 'p99'):.2f} "
          f"| {cpu} | {med(rs, 'core'):.1f} | {spread:.1f}% | {sum(r['bad'] for r in rs)} "
          f"| {max(r['foreign'] for r in rs):.1f}% |")
print()
print(f"| peer | idle RSS | RSS after c={cmax} (max) | idle PSS | PSS after c={cmax} (max) |")
print("|---|---:|---:|---:|---:|")
for line in open(mem):
    peer, *kib = line.split()
    print(f"| {peer} | " + " | ".join(f"{int(v) / 1024:.1f}" for v in kib) + " |")
EOF
echo
echo "Medians over the repetitions. x direct = median of (peer req/s / direct req/s of the same repetition)."
echo "CPU µs/req = utime+stime (/proc/PID/stat; nginx: master and workers) during the run / requests;"
echo "softirq time is charged to no process, so it undercounts kernel network work. Memory in MiB,"
echo "the process tree, idle = 1 s after start. foreign CPU = what other processes used during a run,"
echo "% of all CPUs: above a few % the run shared the machine and its numbers are not comparable."
