/* PostgreSQL backend: the connection of one struct bp_store, its statements and transactions, and
 * what happens when the database goes away (issue 9 item 6).
 *
 * A store is one libpq connection, used by one thread at a time. Every statement goes through
 * execute(): it makes sure there is a connection (ensure_connected), sends the statement, and
 * waits for the answer on the connection's socket for at most the store's timeout, so that a
 * server that stopped answering (SIGSTOP, a partition that drops nothing) costs a bounded wait
 * rather than a thread. When the connection is lost (or the wait gives up, which closes it):
 *
 * - inside a transaction, the server rolls it back (nothing of it was applied): the loss is
 *   remembered (tx_lost) and every further statement of that transaction fails until the caller
 *   commits (which then fails) or rolls back, so that its remaining statements can never run one
 *   by one on a new connection: never half-applied. A loss during COMMIT is reported as such:
 *   the change may or may not have been applied.
 * - outside one, a statement that is safe to repeat (a SELECT, or a BEGIN: nothing had happened
 *   yet) is sent again once on a new connection; any other is reported, since it may or may not
 *   have been applied.
 *
 * Reconnecting: a store that has no working connection tries to make one at its next statement,
 * at once after a loss, then with a backoff (RECONNECT_MIN_MS doubling to RECONNECT_MAX_MS)
 * while attempts fail, each failure answered at once with the last reason. Each new connection
 * gets the session settings again and the schema guard (a newer blnkproxy may have migrated
 * meanwhile), and forgets the statements prepared on the old one. Before a statement on a
 * connection that looks healthy, the socket is polled without waiting: a server that restarted
 * has closed it, and we find out before sending a write that could not be repeated.
 *
 * bp_store_open with BP_STORE_OPEN_LAZY (serve's threads) returns a store even when the first
 * connection fails; it then connects at its first statement. A database that is not a blnkproxy
 * store, or a newer one, is refused even then. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "store/pg-int.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define LOCK_CHANGES_SQL                                                                            \
    "SELECT pg_advisory_xact_lock(" STR(BP_PG_LOCK_CLASS) ", " STR(BP_PG_LOCK_CHANGES) ")"

/* SQLite's busy timeout (store_sqlite.c BUSY_TIMEOUT_MS), for lock waits. */
#define LOCK_TIMEOUT "5s"

/* A CLI against an unreachable host should not hang for the kernel's TCP timeout. */
#define DEFAULT_CONNECT_TIMEOUT_S "10"

/* How long a statement may wait for the server by default (bp_store_set_timeout changes it). */
#define DEFAULT_TIMEOUT_MS 60000

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000

enum send_kind { SEND_PARAMS, SEND_PREPARED, SEND_PREPARE, SEND_SIMPLE };

/* ---- messages ---- */

/* One line, password-free: for bp_store_last_error and log fields. */
static void
one_line(const char *dsn, char *msg, size_t cap)
{
    size_t o;

    for (o = 0; msg[o] != '\0'; o++) {
        if (msg[o] == '\n' || msg[o] == '\t' || msg[o] == '\r') {
            msg[o] = ' ';
        }
    }
    while (o > 0 && msg[o - 1] == ' ') {
        msg[--o] = '\0';
    }
    bp_store__dsn_scrub(dsn, msg, cap);
}

/* Keeps a one-line, password-free copy of msg for bp_store_last_error. */
static void
keep_message(struct pg_store *st, const char *sqlstate, const char *msg)
{
    if (sqlstate != NULL) {
        snprintf(st->errmsg, sizeof(st->errmsg), "%s: %s", sqlstate, msg != NULL ? msg : "");
    } else {
        snprintf(st->errmsg, sizeof(st->errmsg), "%s", msg != NULL ? msg : "");
    }
    one_line(st->dsn, st->errmsg, sizeof(st->errmsg));
}

/* Copies text (our own message) to st->errmsg, cut to fit. */
static void
set_message(struct pg_store *st, const char *text)
{
    size_t n = strlen(text);

    if (n >= sizeof(st->errmsg)) {
        n = sizeof(st->errmsg) - 1;
    }
    memcpy(st->errmsg, text, n);
    st->errmsg[n] = '\0';
}

/* libpq's last message on the connection, one line, password-free. */
static void
conn_reason(struct pg_store *st, char *out, size_t cap)
{
    snprintf(out, cap, "%s", st->conn != NULL ? bp_pq.PQerrorMessage(st->conn) : "no connection");
    one_line(st->dsn, out, cap);
    if (out[0] == '\0') {
        snprintf(out, cap, "connection closed");
    }
}

static bp_err
map_result(struct pg_store *st, PGresult *res)
{
    ExecStatusType status = res != NULL ? bp_pq.PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state;
    const char *primary;

    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        return BP_OK;
    }
    state = res != NULL ? bp_pq.PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* Only the primary message: DETAIL may quote the failing row, values and all. */
    primary = res != NULL ? bp_pq.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary == NULL) {
        primary = st->conn != NULL ? bp_pq.PQerrorMessage(st->conn) : "no connection";
    }
    keep_message(st, state, primary);
    if (state != NULL && strcmp(state, "23505") == 0) {
        return BP_ERR_EXISTS;
    }
    return BP_ERR_STORE;
}

static bp_err
finish(struct pg_store *st, PGresult *res, PGresult **out)
{
    bp_err err = map_result(st, res);

    if (err != BP_OK || out == NULL) {
        bp_pq.PQclear(res);
        return err;
    }
    *out = res;
    return BP_OK;
}

/* ---- connecting ---- */

/* Server notices ("relation already exists, skipping") are not for the user's terminal. */
static void
ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *
bp_pg__connect(const char *dsn, const char *where, char *err, size_t err_len)
{
    const char *keys[8];
    const char *vals[8];
    int k = 0;
    char why[512];
    PGconn *conn;

    /* Processed in order, later ones winning: our defaults first, then the DSN, then what we
     * need regardless of it. */
    if (getenv("PGCONNECT_TIMEOUT") == NULL) {
        keys[k] = "connect_timeout";
        vals[k++] = DEFAULT_CONNECT_TIMEOUT_S;
    }
    /* A database host that vanished (no FIN, no RST) is found out within about a minute, not
     * the kernel's two hours: this matters to the idle notification connection most. */
    keys[k] = "keepalives_idle";
    vals[k++] = "30";
    keys[k] = "keepalives_interval";
    vals[k++] = "10";
    keys[k] = "dbname";
    vals[k++] = dsn;
    keys[k] = "fallback_application_name";
    vals[k++] = "blnkproxy";
    keys[k] = "client_encoding";
    vals[k++] = "UTF8";
    keys[k] = NULL;
    vals[k] = NULL;
    conn = bp_pq.PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        snprintf(err, err_len, "cannot connect to the store at %s: out of memory", where);
        return NULL;
    }
    if (bp_pq.PQstatus(conn) != CONNECTION_OK && bp_store__dsn_ambiguous(dsn)) {
        /* libpq's message could quote a piece of the password as a host or a port. */
        snprintf(err, err_len,
                 "cannot connect to the store at %s: the DSN does not parse as intended; percent-encode"
                 " '@', ':', '/', '?' and '#' in the user name and password (%%40, %%3A, %%2F, %%3F, %%23)",
                 where);
        bp_pq.PQfinish(conn);
        return NULL;
    }
    if (bp_pq.PQstatus(conn) != CONNECTION_OK) {
        snprintf(why, sizeof(why), "%s", bp_pq.PQerrorMessage(conn));
        one_line(dsn, why, sizeof(why));
        snprintf(err, err_len, "cannot connect to the store at %s: %s", where, why);
        bp_pq.PQfinish(conn);
        return NULL;
    }
    bp_pq.PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

bp_err
bp_pg__current_version(struct pg_store *st, int *out)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, &res);

    if (err == BP_OK) {
        *out = (int)bp_pg__col_int(res, 0, 0);
    }
    bp_pq.PQclear(res);
    return err;
}

void
bp_pg__too_new(char *out, size_t out_len, const char *where, int version)
{
    snprintf(out, out_len,
             "the store at %s has schema version %d; this blnkproxy (%s) knows up to %zu: upgrade blnkproxy",
             where, version, BP_VERSION, bp_store__pg_migrations_len);
}

/* Reads, without writing, whether the database is a store this binary may use: one with a
 * schema_migrations table whose version it knows, or (allow_empty) one with no tables at all in
 * its current schema, to be migrated into. Someone else's database is left alone. A refusal is
 * BP_ERR_INVALID (no retry can fix it); failing to read is BP_ERR_STORE. */
static bp_err
check_store(struct pg_store *st, bool allow_empty, char *err, size_t err_len)
{
    PGresult *res = NULL;
    bool has_migrations;
    int64_t objects;
    int version = 0;
    bp_err rc = bp_pg__run(st,
                           "SELECT to_regclass('schema_migrations') IS NOT NULL,"
                           " (SELECT count(*) FROM pg_catalog.pg_class c"
                           "   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                           "  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'm', 'p', 'f'))",
                           NULL, &res);

    if (rc != BP_OK) {
        snprintf(err, err_len, "cannot read the store at %s: %s", st->where, st->errmsg);
        return rc;
    }
    has_migrations = bp_pg__col_bool(res, 0, 0);
    objects = bp_pg__col_int(res, 0, 1);
    bp_pq.PQclear(res);
    if (!has_migrations) {
        if (objects == 0 && allow_empty) {
            return BP_OK;
        }
        snprintf(err, err_len,
                 "%s is not a blnkproxy store (it has no schema_migrations table): check --db or BLNKPROXY_DB",
                 st->where);
        return BP_ERR_INVALID;
    }
    rc = bp_pg__current_version(st, &version);
    if (rc != BP_OK) {
        snprintf(err, err_len, "cannot read the schema version of the store at %s: %s", st->where, st->errmsg);
        return rc;
    }
    if (version > (int)bp_store__pg_migrations_len) {
        bp_pg__too_new(err, err_len, st->where, version);
        return BP_ERR_INVALID;
    }
    return BP_OK;
}

static void
drop_connection(struct pg_store *st)
{
    bp_pq.PQfinish(st->conn);
    st->conn = NULL;
    st->audit_prepared = false;
    st->audit_fast_prepared = false;
    st->touch_prepared = false;
}

/* Makes a new connection and sets up its session. On failure keeps the reason in st->errmsg and
 * returns BP_ERR_STORE_DOWN (retry later) or BP_ERR_INVALID (not a store this binary may use). */
static bp_err
connect_session(struct pg_store *st)
{
    char err[1024];
    bp_err rc;

    drop_connection(st);
    st->connecting = true;
    st->conn = bp_pg__connect(st->dsn, st->where, err, sizeof(err));
    if (st->conn == NULL) {
        set_message(st, err);
        st->connecting = false;
        return BP_ERR_STORE_DOWN;
    }
    /* The session, whatever the server's or the role's defaults: text results as this backend
     * reads them, and the isolation level store_pg.c relies on. A lock held elsewhere fails a
     * statement after LOCK_TIMEOUT, as SQLite's busy timeout does, so that a stuck store is an
     * error the caller handles (the audit writer spools) rather than a hang; a lock_timeout the
     * DSN or the role set is kept. */
    rc = bp_pg__exec(st, "SET bytea_output = 'hex';"
                         " SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;"
                         " SELECT set_config('lock_timeout', '" LOCK_TIMEOUT "', false)"
                         "  WHERE current_setting('lock_timeout') = '0'");
    if (rc != BP_OK) {
        snprintf(err, sizeof(err), "cannot set up the connection to the store at %s: %s", st->where, st->errmsg);
    } else {
        rc = check_store(st, st->allow_empty, err, sizeof(err));
    }
    st->connecting = false;
    if (rc != BP_OK) {
        set_message(st, err);
        drop_connection(st);
        return rc == BP_ERR_INVALID ? BP_ERR_INVALID : BP_ERR_STORE_DOWN;
    }
    st->connects++;
    return BP_OK;
}

/* Whether the server closed the connection meanwhile (a restart, an idle timeout, an
 * administrator's pg_terminate_backend): a readable socket on an idle connection means the
 * server said something, which outside a statement (we LISTEN on no store connection) is its
 * goodbye: a FATAL message, then the end of the stream. libpq may take the message without yet
 * seeing the end, so any input counts; a needless new connection costs little. */
static bool
closed_by_server(struct pg_store *st)
{
    struct pollfd pfd = {.fd = bp_pq.PQsocket(st->conn), .events = POLLIN};

    if (pfd.fd < 0) {
        return true;
    }
    if (poll(&pfd, 1, 0) <= 0) {
        return false;
    }
    (void)bp_pq.PQconsumeInput(st->conn); /* for its message, which conn_reason reports */
    return true;
}

/* A working connection, or the reason there is none (BP_ERR_STORE_DOWN, message kept). */
static bp_err
ensure_connected(struct pg_store *st)
{
    int64_t now;
    bp_err rc;

    if (st->tx_lost) {
        /* The message of the loss stays: it says what happened to the transaction. */
        return BP_ERR_STORE_DOWN;
    }
    if (st->conn != NULL && bp_pq.PQstatus(st->conn) == CONNECTION_OK &&
        (st->connecting || bp_pg__in_tx(st) || !closed_by_server(st))) {
        return BP_OK;
    }
    if (st->connecting) {
        return BP_ERR_STORE_DOWN;
    }
    if (st->conn != NULL) {
        char why[256];
        conn_reason(st, why, sizeof(why));
        snprintf(st->errmsg, sizeof(st->errmsg), "the connection to the store at %s was lost: %s", st->where,
                 why);
        drop_connection(st);
    }
    now = bp_clock_mono_ms();
    if (now < st->reconnect_at_ms) {
        return BP_ERR_STORE_DOWN; /* st->errmsg still says why the last attempt failed */
    }
    rc = connect_session(st);
    if (rc != BP_OK) {
        st->reconnect_at_ms = bp_clock_mono_ms() + st->backoff_ms;
        st->backoff_ms = st->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : st->backoff_ms * 2;
        return rc;
    }
    st->backoff_ms = RECONNECT_MIN_MS;
    st->reconnect_at_ms = 0;
    return BP_OK;
}

/* ---- running statements ---- */

static bool
has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int
send_statement(struct pg_store *st, enum send_kind kind, const char *sql, const struct bp_pg_params *p)
{
    int n = p != NULL ? p->n : 0;

    switch (kind) {
    case SEND_PARAMS:
        return bp_pq.PQsendQueryParams(st->conn, sql, n, p != NULL ? p->types : NULL, p != NULL ? p->values : NULL,
                                 p != NULL ? p->lengths : NULL, p != NULL ? p->formats : NULL,
                                 p != NULL && p->binary_result ? 1 : 0);
    case SEND_PREPARED:
        return bp_pq.PQsendQueryPrepared(st->conn, sql, n, p != NULL ? p->values : NULL, p != NULL ? p->lengths : NULL,
                                   p != NULL ? p->formats : NULL, 0);
    case SEND_PREPARE:
        return bp_pq.PQsendPrepare(st->conn, p->name, sql, 0, NULL);
    case SEND_SIMPLE:
        return bp_pq.PQsendQuery(st->conn, sql);
    }
    return 0;
}

/* Waits until libpq has a whole result (or the connection failed). False when the deadline
 * passed first. */
static bool
wait_input(struct pg_store *st, int64_t deadline_ms)
{
    while (bp_pq.PQisBusy(st->conn)) {
        struct pollfd pfd = {.fd = bp_pq.PQsocket(st->conn), .events = POLLIN};
        int timeout = -1;
        int n;

        if (deadline_ms > 0) {
            int64_t left = deadline_ms - bp_clock_mono_ms();
            if (left <= 0) {
                return false;
            }
            timeout = left > 60000 ? 60000 : (int)left;
        }
        n = poll(&pfd, 1, timeout);
        if (n < 0 && errno != EINTR) {
            return true; /* let PQgetResult report the broken socket */
        }
        if (n > 0 && !bp_pq.PQconsumeInput(st->conn)) {
            return true;
        }
    }
    return true;
}

static PGresult *collect(struct pg_store *st, int64_t deadline_ms, bool *out_lost);

/* Sends one statement (possibly several, for SEND_SIMPLE) and collects its result as PQexec
 * would: the first error, else the last result. *out_lost: the connection broke or the server
 * did not answer in time (the connection is then closed). */
static PGresult *
exec_once(struct pg_store *st, enum send_kind kind, const char *sql, const struct bp_pg_params *p, bool *out_lost)
{
    int64_t deadline_ms = st->timeout_ms > 0 ? bp_clock_mono_ms() + st->timeout_ms : 0;

    *out_lost = false;
    if (!send_statement(st, kind, sql, p)) {
        *out_lost = bp_pq.PQstatus(st->conn) != CONNECTION_OK;
        return NULL;
    }
    return collect(st, deadline_ms, out_lost);
}

/* The rest of exec_once, once the statement is sent. */
static PGresult *
collect(struct pg_store *st, int64_t deadline_ms, bool *out_lost)
{
    PGresult *keep = NULL;
    PGresult *res;

    for (;;) {
        if (!wait_input(st, deadline_ms)) {
            snprintf(st->errmsg, sizeof(st->errmsg), "the store at %s did not answer within %lld ms", st->where,
                     (long long)st->timeout_ms);
            bp_pq.PQclear(keep);
            drop_connection(st);
            *out_lost = true;
            st->timed_out = true;
            return NULL;
        }
        res = bp_pq.PQgetResult(st->conn);
        if (res == NULL) {
            break;
        }
        if (keep != NULL && map_result(st, keep) != BP_OK) {
            bp_pq.PQclear(res); /* an error stays the answer */
        } else {
            bp_pq.PQclear(keep);
            keep = res;
        }
    }
    *out_lost = bp_pq.PQstatus(st->conn) != CONNECTION_OK;
    return keep;
}

/* Whether a statement that was sent outside a transaction and lost with its connection may be
 * sent again: a read, or the start of a transaction (nothing had happened yet). */
static bool
repeatable(enum send_kind kind, const char *sql)
{
    if (kind == SEND_PREPARE) {
        return true;
    }
    return kind != SEND_PREPARED && (has_prefix(sql, "SELECT") || has_prefix(sql, "BEGIN"));
}

/* The connection broke, or the server did not answer in time, inside a transaction: the server
 * rolls it back; every statement fails until the caller ends it. why: conn_reason's, read
 * before the connection was dropped (unused after a timeout). */
static bp_err
lost_in_tx(struct pg_store *st, const char *sql, char *why, size_t why_cap)
{
    st->tx_lost = true;
    if (st->timed_out) {
        snprintf(why, why_cap, "no answer within %lld ms", (long long)st->timeout_ms);
    }
    if (has_prefix(sql, "COMMIT")) {
        snprintf(st->errmsg, sizeof(st->errmsg),
                 "the connection to the store at %s was lost while committing (%s): the change may or"
                 " may not have been applied",
                 st->where, why);
    } else {
        snprintf(st->errmsg, sizeof(st->errmsg),
                 "the connection to the store at %s was lost (%s); the transaction was rolled back", st->where,
                 why);
    }
    return BP_ERR_STORE_DOWN;
}

static bp_err
execute(struct pg_store *st, enum send_kind kind, const char *sql, const struct bp_pg_params *p, PGresult **out)
{
    for (int attempt = 0;; attempt++) {
        bool was_in_tx;
        bool lost = false;
        PGresult *res;
        char why[256];
        bp_err err = ensure_connected(st);

        if (err != BP_OK) {
            return err;
        }
        was_in_tx = bp_pg__in_tx(st);
        st->timed_out = false;
        res = exec_once(st, kind, sql, p, &lost);
        if (!lost) {
            return finish(st, res, out);
        }
        bp_pq.PQclear(res);
        if (!st->timed_out) {
            conn_reason(st, why, sizeof(why));
        }
        drop_connection(st);
        st->reconnect_at_ms = 0; /* the next attempt comes at once; backoff only after it fails */
        if (was_in_tx) {
            return lost_in_tx(st, sql, why, sizeof(why));
        }
        if (attempt == 0 && !st->connecting && repeatable(kind, sql)) {
            continue;
        }
        if (st->timed_out) {
            snprintf(st->errmsg, sizeof(st->errmsg), "the store at %s did not answer within %lld ms%s", st->where,
                     (long long)st->timeout_ms,
                     repeatable(kind, sql) ? "" : ": the statement may or may not have been applied");
        } else {
            snprintf(st->errmsg, sizeof(st->errmsg), "the connection to the store at %s was lost (%s)%s", st->where,
                     why, repeatable(kind, sql) ? "" : ": the statement may or may not have been applied");
        }
        return BP_ERR_STORE_DOWN;
    }
}

bp_err
bp_pg__run(struct pg_store *st, const char *sql, const struct bp_pg_params *p, PGresult **out)
{
    return execute(st, SEND_PARAMS, sql, p, out);
}

/* Split in two, so that the caller works while the server does (pg-int.h). */
static bp_err
lose_sent(struct pg_store *st, const char *sql)
{
    char why[256] = "";

    if (!st->timed_out) {
        conn_reason(st, why, sizeof(why));
    }
    drop_connection(st);
    st->reconnect_at_ms = 0;
    return lost_in_tx(st, sql, why, sizeof(why));
}

bp_err
bp_pg__send(struct pg_store *st, const char *sql, const struct bp_pg_params *p)
{
    BP_BUG_ON(!bp_pg__in_tx(st));
    if (st->tx_lost || st->conn == NULL) {
        return BP_ERR_STORE_DOWN; /* the loss's message is in errmsg already */
    }
    st->timed_out = false;
    st->sent_deadline_ms = st->timeout_ms > 0 ? bp_clock_mono_ms() + st->timeout_ms : 0;
    if (!send_statement(st, SEND_PARAMS, sql, p)) {
        if (bp_pq.PQstatus(st->conn) != CONNECTION_OK) {
            return lose_sent(st, sql);
        }
        snprintf(st->errmsg, sizeof(st->errmsg), "could not send a statement to the store at %s", st->where);
        return BP_ERR_STORE;
    }
    return BP_OK;
}

bp_err
bp_pg__receive(struct pg_store *st, const char *sql, PGresult **out)
{
    bool lost = false;
    PGresult *res = collect(st, st->sent_deadline_ms, &lost);

    if (!lost) {
        return finish(st, res, out);
    }
    bp_pq.PQclear(res);
    return lose_sent(st, sql);
}

bp_err
bp_pg__run_prepared(struct pg_store *st, const char *name, const struct bp_pg_params *p, PGresult **out)
{
    return execute(st, SEND_PREPARED, name, p, out);
}

bp_err
bp_pg__prepare(struct pg_store *st, const char *name, const char *sql)
{
    struct bp_pg_params p = {.name = name};

    return execute(st, SEND_PREPARE, sql, &p, NULL);
}

bp_err
bp_pg__exec(struct pg_store *st, const char *sql)
{
    return execute(st, SEND_SIMPLE, sql, NULL, NULL);
}

bp_err
bp_pg__ensure(struct pg_store *st)
{
    return ensure_connected(st);
}

/* ---- transactions ---- */

bool
bp_pg__in_tx(struct pg_store *st)
{
    PGTransactionStatusType ts;

    if (st->tx_lost) {
        return true;
    }
    if (st->conn == NULL) {
        return false;
    }
    ts = bp_pq.PQtransactionStatus(st->conn);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_ACTIVE;
}

/* ROLLBACK on the connection when it holds a transaction; a lost one is over already. */
static void
end_failed(struct pg_store *st)
{
    st->tx_lost = false;
    if (bp_pg__in_tx(st)) {
        bp_pq.PQclear(bp_pq.PQexec(st->conn, "ROLLBACK"));
    }
}

bp_err
bp_pg__begin(struct pg_store *st, bool lock_changes)
{
    bp_err err = bp_pg__exec(st, lock_changes ? "BEGIN ISOLATION LEVEL READ COMMITTED; " LOCK_CHANGES_SQL
                                              : "BEGIN ISOLATION LEVEL READ COMMITTED");
    if (err != BP_OK) {
        end_failed(st);
    }
    return err;
}

/* COMMIT of a transaction that had failed answers "ROLLBACK" and no error: that is a failure. */
bp_err
bp_pg__commit(struct pg_store *st)
{
    PGresult *res = NULL;
    bp_err err;

    if (st->tx_lost) {
        st->tx_lost = false;
        return BP_ERR_STORE_DOWN; /* the message of the loss says the transaction was rolled back */
    }
    if (st->conn != NULL && bp_pq.PQtransactionStatus(st->conn) == PQTRANS_INERROR) {
        bp_pq.PQclear(bp_pq.PQexec(st->conn, "ROLLBACK"));
        snprintf(st->errmsg, sizeof(st->errmsg), "the transaction failed and was rolled back");
        return BP_ERR_STORE;
    }
    err = bp_pg__run(st, "COMMIT", NULL, &res);
    /* Committed, rolled back or lost: the transaction is over either way. */
    st->tx_lost = false;
    if (err == BP_OK && strcmp(bp_pq.PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(st->errmsg, sizeof(st->errmsg), "the transaction failed and was rolled back");
        err = BP_ERR_STORE;
    }
    bp_pq.PQclear(res);
    return err;
}

void
bp_pg__rollback(struct pg_store *st)
{
    end_failed(st);
}

bp_err
bp_pg__tx_begin(struct pg_store *st, bool lock_changes, bool *out_own)
{
    if (bp_pg__in_tx(st)) {
        *out_own = false;
        return BP_OK;
    }
    *out_own = true;
    return bp_pg__begin(st, lock_changes);
}

bp_err
bp_pg__tx_end(struct pg_store *st, bool own, bp_err err)
{
    if (!own) {
        return err;
    }
    if (err == BP_OK) {
        return bp_pg__commit(st);
    }
    bp_pg__rollback(st);
    return err;
}

/* ---- open / close ---- */

static void
pg_free(struct pg_store *st)
{
    drop_connection(st);
    bp_wipe(st->dsn, strlen(st->dsn));
    bp_free(st->dsn);
    bp_free(st->where);
    bp_free(st->chain_cache);
    bp_free(st);
}

bp_err
bp_store__pg_open(const char *dsn, unsigned flags, struct bp_store **out, char *err, size_t err_len)
{
    struct pg_store *st;
    /* Room for "***" in place of passwords shorter than it. */
    size_t wlen = strlen(dsn) + 64;
    bp_err rc = bp_pg__load_libpq(err, err_len);

    if (rc != BP_OK) {
        return rc;
    }
    st = bp_calloc(1, sizeof(*st));
    st->base.ops = &bp_pg__ops;
    st->dsn = bp_strdup(dsn);
    st->where = bp_malloc(wlen);
    bp_store_dsn_mask(dsn, st->where, wlen);
    st->allow_empty = (flags & BP_STORE_OPEN_CREATE) != 0;
    st->timeout_ms = DEFAULT_TIMEOUT_MS;
    st->backoff_ms = RECONNECT_MIN_MS;
    rc = connect_session(st);
    if (rc == BP_ERR_STORE_DOWN && (flags & BP_STORE_OPEN_LAZY)) {
        /* The first statement tries again. */
        st->reconnect_at_ms = bp_clock_mono_ms() + st->backoff_ms;
        rc = BP_OK;
    }
    if (rc != BP_OK) {
        snprintf(err, err_len, "%s", st->errmsg);
        pg_free(st);
        return rc == BP_ERR_INVALID ? BP_ERR_STORE : rc;
    }
    *out = &st->base;
    return BP_OK;
}

void
bp_pg__close(struct bp_store *s)
{
    pg_free(bp_pg__of(s));
}

const char *
bp_pg__last_error(struct bp_store *s)
{
    return bp_pg__of(s)->errmsg;
}

void
bp_pg__set_timeout(struct bp_store *s, int64_t timeout_ms)
{
    bp_pg__of(s)->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

bool
bp_pg__connected(struct bp_store *s)
{
    struct pg_store *st = bp_pg__of(s);

    return st->conn != NULL && bp_pq.PQstatus(st->conn) == CONNECTION_OK;
}
