# shellcheck shell=bash disable=SC2034,SC2154
# Shared by bench/keys_scale.sh and bench/audit_pg.sh (sourced, not run). Everything a script
# starts through these functions is stopped by PID when it exits, also on Ctrl-C; the temp dir
# is removed unless BENCH_KEEP=1. Every wait has a timeout. 127.0.0.1 only.
#
# The sourcing script sets `here` (bench/) and `root` (the worktree) first, then calls
# bench_init NAME.

bin=${BLNKPROXY_BIN:-build/blnkproxy}
case "$bin" in
    /*) ;;
    *) bin="$root/$bin" ;;
esac
nginx_bin=${NGINX_BIN:-/usr/sbin/nginx}
wrk_bin=${WRK_BIN:-wrk}
python_bin=${PYTHON_BIN:-/usr/bin/python3}
helper="$here/scale_helper.py"
clk_tck=$(getconf CLK_TCK)

tmp=""
bench_pids=()  # started processes, stopped in reverse order at exit
pg_dir=""      # the pg-test-server.sh state dir, when a PostgreSQL server was started

die() {
    echo "bench: $*" >&2
    exit 1
}

note() {
    echo "bench: $*" >&2
}

stop_pid() {
    # TERM, give it time to drain, then KILL; only ever a PID this script started.
    local pid=$1 _
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

forget_pid() {
    # A PID that has been waited for may be reused by another program: drop it from the list.
    local i
    for i in "${!bench_pids[@]}"; do
        if [ "${bench_pids[i]}" = "$1" ]; then
            unset 'bench_pids[i]'
        fi
    done
}

# run_bg CMD...: runs CMD in the background and waits for it, so that a signal to this script
# is handled at once (bash runs a trap only between foreground commands) and CMD is stopped by
# its PID then. Returns CMD's exit status. `<&0`: without it bash gives a background command
# /dev/null as its standard input, and `run_bg CMD <FILE` would read nothing.
run_bg() {
    local p rc=0
    "$@" <&0 &
    p=$!
    bench_pids+=("$p")
    wait "$p" || rc=$?
    forget_pid "$p"
    return "$rc"
}

bench_cleanup() {
    local rc=$? i idx
    trap - EXIT INT TERM
    idx=("${!bench_pids[@]}")
    for ((i = ${#idx[@]} - 1; i >= 0; i--)); do
        stop_pid "${bench_pids[${idx[i]}]}"
    done
    if [ -n "$pg_dir" ]; then
        "$root/scripts/pg-test-server.sh" stop "$pg_dir" >/dev/null 2>&1 || note "could not stop the PostgreSQL server of $pg_dir"
    fi
    if [ -n "$tmp" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            note "kept $tmp"
        else
            rm -rf "$tmp"
        fi
    fi
    exit "$rc"
}

bench_init() {
    [ -x "$bin" ] || die "blnkproxy binary not found at $bin (build it, or set BLNKPROXY_BIN)"
    [ -x "$python_bin" ] || die "python3 not found at $python_bin (set PYTHON_BIN)"
    command -v curl >/dev/null || die "curl not found"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/blnkproxy-$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # Many connections on both sides of the proxy; raise the soft fd limit for our children.
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

need_wrk_nginx() {
    [ -x "$nginx_bin" ] || die "nginx not found at $nginx_bin (apt-get install nginx-light, or set NGINX_BIN)"
    command -v "$wrk_bin" >/dev/null || die "wrk not found (apt-get install wrk)"
}

free_port() {
    # A port below the kernel's ephemeral range that no socket uses right now (as run.sh).
    local low p _
    low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$low" -gt 11000 ] || low=32768
    for _ in $(seq 1 200); do
        p=$((10000 + RANDOM % (low - 10000)))
        if command -v ss >/dev/null; then
            [ -z "$(ss -tanH "( sport = :$p )" 2>/dev/null)" ] || continue
        fi
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

wait_http() {
    # wait_http URL PID: until URL answers (any status) or PID dies; 10 s at most.
    local url=$1 pid=$2 _
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 1
        if curl -s -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

cpu_ticks() {
    # utime + stime of the whole process (all threads), in clock ticks: fields 14 and 15 of
    # /proc/PID/stat, counted after the ")" that ends the command name.
    local s
    s=$(<"/proc/$1/stat") || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13}))
}

# start_nginx: the fake Core of bench/run.sh (nginx.conf.template). Sets nginx_port, nginx_pid.
start_nginx() {
    local _
    mkdir -p "$tmp/nginx"
    nginx_pid=""
    for _ in 1 2 3 4 5; do
        nginx_port=$(free_port)
        sed -e "s#@TMPDIR@#$tmp/nginx#g" -e "s#@PORT@#$nginx_port#g" "$here/nginx.conf.template" \
            >"$tmp/nginx/nginx.conf"
        "$nginx_bin" -p "$tmp/nginx" -e "$tmp/nginx/nginx-error.log" -c "$tmp/nginx/nginx.conf" \
            >"$tmp/nginx/stdout.log" 2>&1 &
        nginx_pid=$!
        bench_pids+=("$nginx_pid")
        if wait_http "http://127.0.0.1:$nginx_port/ledgers" "$nginx_pid"; then
            return 0
        fi
        stop_pid "$nginx_pid"
        forget_pid "$nginx_pid"
        nginx_pid=""
        grep -q 'Address already in use' "$tmp/nginx/stdout.log" "$tmp/nginx/nginx-error.log" 2>/dev/null || break
    done
    cat "$tmp/nginx/nginx-error.log" "$tmp/nginx/stdout.log" >&2 2>/dev/null || true
    die "nginx did not start"
}

# start_pg: a throw-away PostgreSQL server, as the tests start it (scripts/pg-test-server.sh:
# initdb in a temp dir as an unprivileged user, 127.0.0.1, a free port, fsync off). Sets
# pg_admin_dsn. The DSN holds a random password: never print it (mask_dsn).
start_pg() {
    [ -x /usr/lib/postgresql/15/bin/initdb ] || [ -n "${BP_PG_BIN:-}" ] \
        || die "PostgreSQL 15 not found (apt-get install postgresql postgresql-client, or scripts/deps.sh --test)"
    command -v psql >/dev/null || die "psql not found (apt-get install postgresql-client)"
    pg_dir="$tmp/pg"
    pg_admin_dsn=$(timeout 180 "$root/scripts/pg-test-server.sh" start "$pg_dir" 2>"$tmp/pg-start.err") \
        || { cat "$tmp/pg-start.err" >&2; die "the PostgreSQL server did not start"; }
}

# pg_create_db NAME: a fresh database on that server; prints its DSN.
pg_create_db() {
    timeout 60 psql "$pg_admin_dsn" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $1" >/dev/null \
        || die "CREATE DATABASE $1 failed"
    printf '%s\n' "${pg_admin_dsn%/postgres}/$1"
}

mask_dsn() {
    printf '%s\n' "$1" | sed -E 's#^(postgres(ql)?://[^:@/]*:)[^@/]*@#\1***@#'
}

# store_sql DSN SQL: run SQL on the store (sqlite3 or psql), unaligned output, no header.
store_sql() {
    case "$1" in
        postgres://* | postgresql://*)
            timeout 600 psql "$1" -X -q -A -t -v ON_ERROR_STOP=1 -c "$2" ;;
        *)
            timeout 600 sqlite3 -bail "$1" "$2" ;;
    esac
}

# start_serve NAME DSN [serve args...]: starts `blnkproxy serve` on 127.0.0.1, a free port,
# ${serve_workers:-1} worker(s), its log in $tmp/NAME.log; waits (2 min at most) until /readyz
# answers 200. Sets serve_pid, serve_port and serve_ready_ms (from the exec to the first 200 on /readyz).
start_serve() {
    local name=$1 db=$2 t0 out
    shift 2
    : >"$tmp/$name.log"
    t0=$(date +%s%N)
    # The DSN goes in the environment, not argv: `ps` would show a PostgreSQL password.
    BLNKPROXY_DB="$db" "$bin" serve --listen 127.0.0.1:0 --workers "${serve_workers:-1}" --log-level info \
        --audit-spool "$tmp/$name.audit-spool" --node-name "$name" "$@" \
        2>>"$tmp/$name.log" >/dev/null &
    serve_pid=$!
    bench_pids+=("$serve_pid")
    run_bg "$python_bin" "$helper" wait-ready --log "$tmp/$name.log" --pid "$serve_pid" --t0-ns "$t0" \
        --timeout 120 >"$tmp/ready.out" || die "$name did not become ready"
    out=$(<"$tmp/ready.out")
    serve_port=${out% *}
    serve_ready_ms=${out#* }
}

# rss_kib PID → "VmRSS VmHWM" in KiB
rss_kib() {
    "$python_bin" "$helper" rss --pid "$1"
}

mib() {
    awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'
}

# instance_and_key DSN NAME CORE_URL: an instance (with a Core secret) and one API key through
# the CLI (creating the store when it is a SQLite path). Sets instance_id and cli_key.
instance_and_key() {
    local db=$1 name=$2 url=$3 inst_json key_json
    BENCH_CORE_SECRET="bench-core-secret-$RANDOM$RANDOM"
    export BENCH_CORE_SECRET
    inst_json=$(BLNKPROXY_DB="$db" timeout 60 "$bin" instance add --name "$name" --url "$url" \
        --secret-key-env BENCH_CORE_SECRET --json 2>"$tmp/cli.err") \
        || { cat "$tmp/cli.err" >&2; die "instance add failed"; }
    instance_id=$(printf '%s' "$inst_json" | sed -n 's/^{"id":"\(instance_[^"]*\)".*/\1/p')
    [ -n "$instance_id" ] || die "could not read the instance id from: $inst_json"
    key_json=$(BLNKPROXY_DB="$db" timeout 60 "$bin" key create --name "$name-cli" --scopes proxy:read,proxy:write \
        --expires-in never --instances "$instance_id" --json 2>"$tmp/cli.err") \
        || { cat "$tmp/cli.err" >&2; die "key create failed"; }
    cli_key=$(printf '%s' "$key_json" | sed -n 's/.*"key":"\(blnk_[0-9a-f]*\)".*/\1/p')
    [ -n "$cli_key" ] || die "could not read the API key from key create's output"
}

# pg_make_durable: restart the server of start_pg with fsync=on, synchronous_commit=on and
# full_page_writes=on, on the same data and port. pg-test-server.sh runs it with fsync off (the
# tests throw the data away), which would make a synchronous commit on PostgreSQL cost no disk
# flush at all while SQLite's costs one: no comparison. This is pg-test-server.sh's `up` with
# other settings; it rewrites the state file as `up` does, so that `stop` stops this server.
pg_make_durable() {
    local data="" user="" pid="" port="" pg_bin=${BP_PG_BIN:-/usr/lib/postgresql/15/bin}
    "$root/scripts/pg-test-server.sh" down "$pg_dir" >/dev/null 2>&1 || die "could not stop PostgreSQL to restart it durable"
    # shellcheck disable=SC1091
    . "$pg_dir/state"
    if [ -z "$data" ] || [ -z "$user" ] || [ -z "$port" ]; then
        die "unexpected $pg_dir/state (scripts/pg-test-server.sh changed?)"
    fi
    local opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$data -c fsync=on \
        -c synchronous_commit=on -c full_page_writes=on -c max_connections=300 -c shared_buffers=64MB \
        -c log_min_messages=warning"
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$user" -- "$pg_bin/pg_ctl" -D "$data/cluster" -l "$data/server.log" -w -t 60 -o "$opts" start \
            >/dev/null 2>&1 || die "PostgreSQL did not start again with fsync=on"
    else
        "$pg_bin/pg_ctl" -D "$data/cluster" -l "$data/server.log" -w -t 60 -o "$opts" start \
            >/dev/null 2>&1 || die "PostgreSQL did not start again with fsync=on"
    fi
    pid=$(head -n 1 "$data/cluster/postmaster.pid")
    printf 'data=%q\nuser=%q\npid=%q\nport=%q\n' "$data" "$user" "$pid" "$port" >"$pg_dir/state"
    "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 60 || die "PostgreSQL is not ready after the restart"
}

# metric URL NAME_WITH_LABELS: one sample's value from /metrics (0 when absent).
metric() {
    curl -s --max-time 5 "$1" | awk -v n="$2" 'index($0, n " ") == 1 { v = $2 } END { print v + 0 }'
}
