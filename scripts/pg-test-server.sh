#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests: never one the machine happens to run.
#
#   scripts/pg-test-server.sh start DIR   initdb a fresh cluster, start it on 127.0.0.1 and a free
#                                         port, wait until it accepts connections, print the
#                                         admin DSN (also written to DIR/admin.dsn)
#   scripts/pg-test-server.sh stop DIR    stop it by PID (fast shutdown, then SIGKILL) and remove
#                                         its data
#   scripts/pg-test-server.sh down DIR    stop it (fast shutdown) and keep its data: a database
#                                         outage, for the tests of what blnkproxy does then
#   scripts/pg-test-server.sh up DIR      start it again after down, on the same port
#
# DIR (e.g. build/pg-test) holds only what the tests read: admin.dsn, and state for stop. The
# cluster itself lives in a private directory under ${TMPDIR:-/tmp}, owned by the server's user:
# PostgreSQL refuses to run as root, so as root it runs as the system user blnkproxy-test
# (scripts/deps.sh --test creates it), or as nobody when that user does not exist. Unix sockets
# stay inside that directory; fsync is off (the data is thrown away). The admin role has a random
# password, so that the tests also prove no DSN password reaches any output.
set -euo pipefail

PG_BIN=${BP_PG_BIN:-/usr/lib/postgresql/15/bin}
START_TIMEOUT_S=60

die() {
    echo "pg-test-server: $*" >&2
    exit 1
}

usage() {
    echo "usage: scripts/pg-test-server.sh start|stop|down|up DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# Runs a command as the server's user.
as_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$pg_user" -- "$@"
    else
        "$@"
    fi
}

pick_user() {
    if [ "$(id -u)" -ne 0 ]; then
        pg_user=$(id -un)
    elif id -u blnkproxy-test >/dev/null 2>&1; then
        pg_user=blnkproxy-test
    else
        pg_user=nobody
    fi
}

# A port nothing listens on now, from the dynamic range. A race with another process is caught
# by the server failing to bind, and the start is retried with another port.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

start() {
    local data port pw attempt pid
    [ -x "$PG_BIN/initdb" ] || die "$PG_BIN/initdb not found: install PostgreSQL 15 (scripts/deps.sh --test)"
    if [ -f "$dir/state" ]; then
        # A server left by an interrupted run: stop it before starting a fresh one.
        stop || true
    fi
    mkdir -p "$dir"
    pick_user
    data=$(mktemp -d "${TMPDIR:-/tmp}/bp-pg.XXXXXXXX")
    chmod 700 "$data"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$pg_user" "$data"
    fi
    pw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s\n' "$pw" >"$data/pwfile"
    [ "$(id -u)" -ne 0 ] || chown "$pg_user" "$data/pwfile"
    printf 'data=%q\nuser=%q\n' "$data" "$pg_user" >"$dir/state"
    if ! as_user "$PG_BIN/initdb" -D "$data/cluster" -U bp_admin --pwfile="$data/pwfile" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$data/initdb.log" 2>&1; then
        cat "$data/initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$data/pwfile"
    for attempt in 1 2 3 4 5; do
        port=$(free_port) || die "no free port found"
        if as_user "$PG_BIN/pg_ctl" -D "$data/cluster" -l "$data/server.log" -w -t "$START_TIMEOUT_S" \
            -o "$(server_opts "$port" "$data")" start >/dev/null 2>&1; then
            break
        fi
        port=""
        if ! grep -q "could not bind\|Address already in use" "$data/server.log" 2>/dev/null; then
            tail -n 20 "$data/server.log" >&2 || true
            die "the server did not start (attempt $attempt)"
        fi
    done
    [ -n "$port" ] || die "the server could not bind a port"
    pid=$(head -n 1 "$data/cluster/postmaster.pid")
    printf 'pid=%q\nport=%q\n' "$pid" "$port" >>"$dir/state"
    # pg_ctl -w already waited; pg_isready confirms TCP on the port the tests will use.
    for _ in $(seq 1 "$START_TIMEOUT_S"); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1; then
            printf 'postgresql://bp_admin:%s@127.0.0.1:%s/postgres\n' "$pw" "$port" >"$dir/admin.dsn"
            chmod 600 "$dir/admin.dsn"
            cat "$dir/admin.dsn"
            return 0
        fi
        sleep 1
    done
    die "the server on port $port did not become ready within ${START_TIMEOUT_S}s"
}

stop() {
    local data="" pid="" user=""
    [ -f "$dir/state" ] || return 0
    # shellcheck disable=SC1091
    . "$dir/state"
    pg_user=${user:-nobody}
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        if ! as_user "$PG_BIN/pg_ctl" -D "$data/cluster" -m fast -w -t 30 stop >/dev/null 2>&1; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    case "$data" in
    "${TMPDIR:-/tmp}"/bp-pg.*) rm -rf "$data" ;;
    esac
    rm -f "$dir/state" "$dir/admin.dsn"
}

# The options the server runs with: start and up must agree.
server_opts() {
    echo "-c listen_addresses=127.0.0.1 -p $1 -c unix_socket_directories=$2 -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
        -c shared_buffers=64MB -c log_min_messages=warning"
}

down() {
    local data="" pid="" user="" port=""
    [ -f "$dir/state" ] || die "no server in $dir"
    # shellcheck disable=SC1091
    . "$dir/state"
    pg_user=${user:-nobody}
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        as_user "$PG_BIN/pg_ctl" -D "$data/cluster" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            die "the server did not stop"
    fi
}

up() {
    local data="" pid="" user="" port=""
    [ -f "$dir/state" ] || die "no server in $dir"
    # shellcheck disable=SC1091
    . "$dir/state"
    pg_user=${user:-nobody}
    as_user "$PG_BIN/pg_ctl" -D "$data/cluster" -l "$data/server.log" -w -t "$START_TIMEOUT_S" \
        -o "$(server_opts "$port" "$data")" start >/dev/null 2>&1 || die "the server did not start again"
    pid=$(head -n 1 "$data/cluster/postmaster.pid")
    printf 'data=%q\nuser=%q\npid=%q\nport=%q\n' "$data" "$pg_user" "$pid" "$port" >"$dir/state"
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t "$START_TIMEOUT_S" || die "the server is not ready"
}

case "$cmd" in
start) start ;;
stop) stop ;;
down) down ;;
up) up ;;
*) usage ;;
esac
