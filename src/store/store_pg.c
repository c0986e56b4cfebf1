/* PostgreSQL backend (DESIGN §7, §8): one libpq connection per struct bp_store, used by one thread
 * at a time, like the SQLite one. Several blnkproxy processes, on several hosts, share the
 * database; every rule that must hold across them is enforced by the database, never by a lock
 * in one process.
 *
 * Connection: the DSN is handed to libpq as it is (PQconnectdbParams with expand_dbname), so its
 * own URI parser, every libpq parameter (sslmode, sslrootcert, …) and the PG* environment
 * variables work as libpq documents them. We add only defaults the DSN can override
 * (connect_timeout when PGCONNECT_TIMEOUT is unset, fallback_application_name) and the client
 * encoding. Messages name the store by its DSN with the password masked, and libpq's own messages
 * are scrubbed of it too (store_dsn.c).
 *
 * Isolation: READ COMMITTED everywhere. What must happen once cluster-wide is a conditional
 * UPDATE (code_take, token_mark_used: `… WHERE used_at = 0`, whose row lock makes a concurrent
 * second UPDATE re-check the row and change nothing). What must not interleave is serialised by
 * one transaction-scoped advisory lock, CHANGES: bp_store_begin takes it first thing, as do this
 * backend's own multi-statement transactions and (by trigger, migration 4) every statement that
 * changes what the servers' tables are built from. With it a transaction that reads and then
 * writes (refresh rotation, code exchange, client revocation, operator disable) sees every commit
 * made before it and no other such writer can slip in between: the behaviour SQLite's BEGIN
 * IMMEDIATE gives the same code. Taking it before any row lock keeps lock order fixed (no
 * deadlock), and holding it to commit makes change seqs visible strictly in order, so a reader of
 * the change log never sees seq n+1 while n is still in flight. SERIALIZABLE would buy nothing
 * more here and cost retries of transactions the caller owns, so it is not used; the session is
 * pinned to READ COMMITTED in case the server's default is another level.
 *
 * Writers that hold no CHANGES lock touch rows of their own (audit_log) or one row per statement
 * (token_mark_used outside a transaction), or lock several rows in id order (key_touch), so they
 * cannot close a lock cycle with the writers that do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "store/pg-int.h"

/* Type OIDs of the parameters we send (pg_type.h is a server header; these never change). */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

#define STR_(x) #x
#define STR(x) STR_(x)
#define LOCK_CHANGES_SQL                                                                            \
    "SELECT pg_advisory_xact_lock(" STR(BP_PG_LOCK_CLASS) ", " STR(BP_PG_LOCK_CHANGES) ")"

/* SQLite's busy timeout (store_sqlite.c BUSY_TIMEOUT_MS), for lock waits. */
#define LOCK_TIMEOUT "5s"

/* A CLI against an unreachable host should not hang for the kernel's TCP timeout. */
#define DEFAULT_CONNECT_TIMEOUT_S "10"

struct pg_store *
bp_pg__of(struct bp_store *s)
{
    BP_DEBUG_ASSERT(s->ops == &bp_pg__ops);
    return (struct pg_store *)s;
}

/* ---- parameters ---- */

static void
add_param(struct bp_pg_params *p, const char *value, int len, int format, Oid oid)
{
    BP_BUG_ON(p->n >= BP_PG_MAX_PARAMS);
    p->values[p->n] = value;
    p->lengths[p->n] = len;
    p->formats[p->n] = format;
    p->types[p->n] = oid;
    p->n++;
}

void
bp_pg__p_text(struct bp_pg_params *p, const char *text)
{
    add_param(p, text, 0, 0, OID_TEXT);
}

void
bp_pg__p_int(struct bp_pg_params *p, int64_t v)
{
    BP_BUG_ON(p->n >= BP_PG_MAX_PARAMS);
    snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)v);
    add_param(p, p->num[p->n], 0, 0, OID_INT8);
}

void
bp_pg__p_bool(struct bp_pg_params *p, bool v)
{
    add_param(p, v ? "t" : "f", 0, 0, OID_BOOL);
}

void
bp_pg__p_bytes(struct bp_pg_params *p, const void *bytes, size_t len)
{
    BP_BUG_ON(len > INT32_MAX);
    /* A zero-length binary value still needs a non-NULL pointer, or libpq sends SQL NULL. */
    add_param(p, bytes != NULL ? bytes : "", (int)len, 1, OID_BYTEA);
}

/* ---- running statements ---- */

/* Keeps a one-line, password-free copy of msg for bp_store_last_error. */
static void
keep_message(struct pg_store *st, const char *sqlstate, const char *msg)
{
    size_t o;

    if (sqlstate != NULL) {
        snprintf(st->errmsg, sizeof(st->errmsg), "%s: %s", sqlstate, msg != NULL ? msg : "");
    } else {
        snprintf(st->errmsg, sizeof(st->errmsg), "%s", msg != NULL ? msg : "");
    }
    /* libpq's messages end in a newline and may span lines: one line for a log field. */
    for (o = 0; st->errmsg[o] != '\0'; o++) {
        if (st->errmsg[o] == '\n' || st->errmsg[o] == '\t' || st->errmsg[o] == '\r') {
            st->errmsg[o] = ' ';
        }
    }
    while (o > 0 && st->errmsg[o - 1] == ' ') {
        st->errmsg[--o] = '\0';
    }
    bp_store__dsn_scrub(st->dsn, st->errmsg, sizeof(st->errmsg));
}

static bp_err
map_result(struct pg_store *st, PGresult *res)
{
    ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    const char *state;
    const char *primary;

    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        return BP_OK;
    }
    state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* Only the primary message: DETAIL may quote the failing row, values and all. */
    primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary == NULL) {
        primary = PQerrorMessage(st->conn);
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
        PQclear(res);
        return err;
    }
    *out = res;
    return BP_OK;
}

bp_err
bp_pg__run(struct pg_store *st, const char *sql, const struct bp_pg_params *p, PGresult **out)
{
    PGresult *res = PQexecParams(st->conn, sql, p != NULL ? p->n : 0, p != NULL ? p->types : NULL,
                                 p != NULL ? p->values : NULL, p != NULL ? p->lengths : NULL,
                                 p != NULL ? p->formats : NULL, 0);
    return finish(st, res, out);
}

bp_err
bp_pg__run_prepared(struct pg_store *st, const char *name, const struct bp_pg_params *p, PGresult **out)
{
    PGresult *res = PQexecPrepared(st->conn, name, p != NULL ? p->n : 0, p != NULL ? p->values : NULL,
                                   p != NULL ? p->lengths : NULL, p != NULL ? p->formats : NULL, 0);
    return finish(st, res, out);
}

bp_err
bp_pg__exec(struct pg_store *st, const char *sql)
{
    return finish(st, PQexec(st->conn, sql), NULL);
}

int64_t
bp_pg__changes(const PGresult *res)
{
    const char *n = PQcmdTuples((PGresult *)res);
    return n != NULL && n[0] != '\0' ? strtoll(n, NULL, 10) : 0;
}

/* ---- columns ---- */

char *
bp_pg__col_dup(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return NULL;
    }
    return bp_strndup(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

int64_t
bp_pg__col_int(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        return 0;
    }
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool
bp_pg__col_bool(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes bytea's hex output ("\x" + 2 hex digits per byte; the session sets bytea_output=hex)
 * into out (at least (len - 2) / 2 + 1 bytes). Returns the byte count, or -1 if malformed. */
static ptrdiff_t
unhex(const char *text, size_t len, unsigned char *out)
{
    size_t n = 0;

    if (len < 2 || text[0] != '\\' || text[1] != 'x' || (len - 2) % 2 != 0) {
        return -1;
    }
    for (size_t i = 2; i < len; i += 2) {
        int hi = hexval(text[i]);
        int lo = hexval(text[i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[n++] = (unsigned char)(hi * 16 + lo);
    }
    return (ptrdiff_t)n;
}

void
bp_pg__col_digest(const PGresult *res, int row, int col, unsigned char *out, size_t len)
{
    const char *text;
    size_t tlen;
    unsigned char buf[64];

    /* The schema's CHECK keeps digests at 32 bytes; anything else leaves zeros, never a match. */
    memset(out, 0, len);
    if (PQgetisnull(res, row, col)) {
        return;
    }
    text = PQgetvalue(res, row, col);
    tlen = (size_t)PQgetlength(res, row, col);
    if (len > sizeof(buf) || tlen != 2 + 2 * len) {
        return;
    }
    if (unhex(text, tlen, buf) == (ptrdiff_t)len) {
        memcpy(out, buf, len);
    }
}

char *
bp_pg__col_bytes(const PGresult *res, int row, int col, size_t *out_len)
{
    const char *text;
    size_t tlen;
    unsigned char *out;
    ptrdiff_t n;

    *out_len = 0;
    if (PQgetisnull(res, row, col)) {
        return NULL;
    }
    text = PQgetvalue(res, row, col);
    tlen = (size_t)PQgetlength(res, row, col);
    out = bp_malloc(tlen / 2 + 1);
    n = unhex(text, tlen, out);
    if (n < 0) {
        n = 0;
    }
    out[n] = '\0';
    *out_len = (size_t)n;
    return (char *)out;
}

/* ---- row helpers ---- */

bp_err
bp_pg__get_one(struct pg_store *st, const char *sql, const struct bp_pg_params *p,
               void (*read)(const PGresult *, int, void *), void *out)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, sql, p, &res);

    if (err != BP_OK) {
        return err;
    }
    if (PQntuples(res) == 0) {
        err = BP_ERR_NOT_FOUND;
    } else {
        read(res, 0, out);
    }
    PQclear(res);
    return err;
}

bp_err
bp_pg__collect(struct pg_store *st, const char *sql, const struct bp_pg_params *p, size_t elem_size,
               void (*read)(const PGresult *, int, void *), void **out, size_t *out_n)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, sql, p, &res);
    char *arr;
    int n;

    if (err != BP_OK) {
        return err;
    }
    n = PQntuples(res);
    arr = bp_calloc(n > 0 ? (size_t)n : 1, elem_size);
    for (int i = 0; i < n; i++) {
        read(res, i, arr + (size_t)i * elem_size);
    }
    PQclear(res);
    *out = arr;
    *out_n = (size_t)n;
    return BP_OK;
}

bp_err
bp_pg__change_one(struct pg_store *st, const char *sql, const struct bp_pg_params *p)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, sql, p, &res);

    if (err != BP_OK) {
        return err;
    }
    if (bp_pg__changes(res) == 0) {
        err = BP_ERR_NOT_FOUND;
    }
    PQclear(res);
    return err;
}

bp_err
bp_pg__row_exists(struct pg_store *st, const char *sql, const char *id)
{
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    bp_err err;

    bp_pg__p_text(&p, id);
    err = bp_pg__run(st, sql, &p, &res);
    if (err == BP_OK && PQntuples(res) == 0) {
        err = BP_ERR_NOT_FOUND;
    }
    PQclear(res);
    return err;
}

/* ---- transactions ---- */

bool
bp_pg__in_tx(struct pg_store *st)
{
    PGTransactionStatusType ts = PQtransactionStatus(st->conn);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_ACTIVE;
}

static bp_err
begin_locked(struct pg_store *st, bool lock_changes)
{
    bp_err err = bp_pg__exec(st, lock_changes ? "BEGIN ISOLATION LEVEL READ COMMITTED; " LOCK_CHANGES_SQL
                                              : "BEGIN ISOLATION LEVEL READ COMMITTED");
    if (err != BP_OK && bp_pg__in_tx(st)) {
        PQclear(PQexec(st->conn, "ROLLBACK"));
    }
    return err;
}

/* COMMIT of a transaction that had failed answers "ROLLBACK" and no error: that is a failure. */
static bp_err
commit(struct pg_store *st)
{
    PGresult *res = NULL;
    bp_err err;

    if (PQtransactionStatus(st->conn) == PQTRANS_INERROR) {
        PQclear(PQexec(st->conn, "ROLLBACK"));
        snprintf(st->errmsg, sizeof(st->errmsg), "the transaction failed and was rolled back");
        return BP_ERR_STORE;
    }
    err = bp_pg__run(st, "COMMIT", NULL, &res);
    if (err == BP_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        snprintf(st->errmsg, sizeof(st->errmsg), "the transaction failed and was rolled back");
        err = BP_ERR_STORE;
    }
    PQclear(res);
    return err;
}

static void
rollback(struct pg_store *st)
{
    if (bp_pg__in_tx(st)) {
        PQclear(PQexec(st->conn, "ROLLBACK"));
    }
}

bp_err
bp_pg__tx_begin(struct pg_store *st, bool lock_changes, bool *out_own)
{
    if (bp_pg__in_tx(st)) {
        *out_own = false;
        return BP_OK;
    }
    *out_own = true;
    return begin_locked(st, lock_changes);
}

bp_err
bp_pg__tx_end(struct pg_store *st, bool own, bp_err err)
{
    if (!own) {
        return err;
    }
    if (err == BP_OK) {
        return commit(st);
    }
    rollback(st);
    return err;
}

static bp_err
pg_begin(struct bp_store *s)
{
    return begin_locked(bp_pg__of(s), true);
}

static bp_err
pg_commit(struct bp_store *s)
{
    return commit(bp_pg__of(s));
}

static void
pg_rollback(struct bp_store *s)
{
    rollback(bp_pg__of(s));
}

/* ---- open / close ---- */

/* Server notices ("relation already exists, skipping") are not for the user's terminal. */
static void
ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static bp_err
current_version(struct pg_store *st, int *out)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, &res);

    if (err == BP_OK) {
        *out = (int)bp_pg__col_int(res, 0, 0);
    }
    PQclear(res);
    return err;
}

static void
too_new(char *out, size_t out_len, const char *where, int version)
{
    snprintf(out, out_len,
             "the store at %s has schema version %d; this blnkproxy (%s) knows up to %zu: upgrade blnkproxy",
             where, version, BP_VERSION, bp_store__pg_migrations_len);
}

/* Reads, without writing, whether the database is a store this binary may use: one with a
 * schema_migrations table whose version it knows, or (allow_empty) one with no tables at all in
 * its current schema, to be migrated into. Someone else's database is left alone. */
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
        return BP_ERR_STORE;
    }
    has_migrations = bp_pg__col_bool(res, 0, 0);
    objects = bp_pg__col_int(res, 0, 1);
    PQclear(res);
    if (!has_migrations) {
        if (objects == 0 && allow_empty) {
            return BP_OK;
        }
        snprintf(err, err_len,
                 "%s is not a blnkproxy store (it has no schema_migrations table): check --db or BLNKPROXY_DB",
                 st->where);
        return BP_ERR_STORE;
    }
    if (current_version(st, &version) != BP_OK) {
        snprintf(err, err_len, "cannot read the schema version of the store at %s: %s", st->where, st->errmsg);
        return BP_ERR_STORE;
    }
    if (version > (int)bp_store__pg_migrations_len) {
        too_new(err, err_len, st->where, version);
        return BP_ERR_STORE;
    }
    return BP_OK;
}

static bp_err
connect_db(struct pg_store *st, const char *dsn, char *err, size_t err_len)
{
    const char *keys[5];
    const char *vals[5];
    int k = 0;
    char why[512];

    /* Processed in order, later ones winning: our defaults first, then the DSN, then what we
     * need regardless of it. */
    if (getenv("PGCONNECT_TIMEOUT") == NULL) {
        keys[k] = "connect_timeout";
        vals[k++] = DEFAULT_CONNECT_TIMEOUT_S;
    }
    keys[k] = "dbname";
    vals[k++] = dsn;
    keys[k] = "fallback_application_name";
    vals[k++] = "blnkproxy";
    keys[k] = "client_encoding";
    vals[k++] = "UTF8";
    keys[k] = NULL;
    vals[k] = NULL;
    st->conn = PQconnectdbParams(keys, vals, 1);
    if (st->conn == NULL) {
        snprintf(err, err_len, "cannot connect to the store at %s: out of memory", st->where);
        return BP_ERR_NOMEM;
    }
    if (PQstatus(st->conn) != CONNECTION_OK && bp_store__dsn_ambiguous(dsn)) {
        /* libpq's message could quote a piece of the password as a host or a port. */
        snprintf(err, err_len,
                 "cannot connect to the store at %s: the DSN does not parse as intended; percent-encode"
                 " '@', ':', '/', '?' and '#' in the user name and password (%%40, %%3A, %%2F, %%3F, %%23)",
                 st->where);
        return BP_ERR_STORE;
    }
    if (PQstatus(st->conn) != CONNECTION_OK) {
        snprintf(why, sizeof(why), "%s", PQerrorMessage(st->conn));
        for (char *c = why; *c != '\0'; c++) {
            *c = (*c == '\n' || *c == '\t' || *c == '\r') ? ' ' : *c;
        }
        for (size_t n = strlen(why); n > 0 && why[n - 1] == ' '; n--) {
            why[n - 1] = '\0';
        }
        bp_store__dsn_scrub(dsn, why, sizeof(why));
        snprintf(err, err_len, "cannot connect to the store at %s: %s", st->where, why);
        return BP_ERR_STORE;
    }
    PQsetNoticeProcessor(st->conn, ignore_notice, NULL);
    return BP_OK;
}

static void
pg_free(struct pg_store *st)
{
    PQfinish(st->conn);
    bp_wipe(st->dsn, strlen(st->dsn));
    bp_free(st->dsn);
    bp_free(st->where);
    bp_free(st);
}

bp_err
bp_store__pg_open(const char *dsn, bool create, struct bp_store **out, char *err, size_t err_len)
{
    struct pg_store *st = bp_calloc(1, sizeof(*st));
    /* Room for "***" in place of passwords shorter than it. */
    size_t wlen = strlen(dsn) + 64;
    bp_err rc;

    st->base.ops = &bp_pg__ops;
    st->dsn = bp_strdup(dsn);
    st->where = bp_malloc(wlen);
    bp_store_dsn_mask(dsn, st->where, wlen);
    rc = connect_db(st, dsn, err, err_len);
    if (rc != BP_OK) {
        goto fail;
    }
    /* The session, whatever the server's or the role's defaults: text results as this file
     * reads them, and the isolation level the design above relies on. A lock held elsewhere
     * fails a statement after LOCK_TIMEOUT, as SQLite's busy timeout does, so that a stuck
     * store is an error the caller handles (the audit writer spools) rather than a hang; a
     * lock_timeout the DSN or the role set is kept. */
    rc = bp_pg__exec(st, "SET bytea_output = 'hex';"
                         " SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;"
                         " SELECT set_config('lock_timeout', '" LOCK_TIMEOUT "', false)"
                         "  WHERE current_setting('lock_timeout') = '0'");
    if (rc != BP_OK) {
        snprintf(err, err_len, "cannot set up the connection to the store at %s: %s", st->where, st->errmsg);
        goto fail;
    }
    rc = check_store(st, create, err, err_len);
    if (rc != BP_OK) {
        goto fail;
    }
    *out = &st->base;
    return BP_OK;

fail:
    pg_free(st);
    return rc;
}

static void
pg_close(struct bp_store *s)
{
    pg_free(bp_pg__of(s));
}

static const char *
pg_last_error(struct bp_store *s)
{
    return bp_pg__of(s)->errmsg;
}

/* ---- migrations, ping, change token ---- */

#define LOCK_MIGRATE_SQL                                                                            \
    "SELECT pg_advisory_xact_lock(" STR(BP_PG_LOCK_CLASS) ", " STR(BP_PG_LOCK_MIGRATE) ")"

/* In one transaction under the MIGRATE lock: applies migration `version` (1-based) unless the
 * store already has it. version 0 applies nothing: it only creates schema_migrations and reads
 * the version. *out_have gets the store's version before. Several processes may run this at
 * once; the lock makes each migration happen once and the others see it done. */
static bp_err
apply_one(struct pg_store *st, int version, int *out_have, bool *out_applied)
{
    struct bp_pg_params p = {0};
    int have = 0;
    bp_err err = begin_locked(st, false);

    *out_applied = false;
    if (err != BP_OK) {
        return err;
    }
    err = bp_pg__exec(st, LOCK_MIGRATE_SQL "; CREATE TABLE IF NOT EXISTS schema_migrations ("
                                           "  version    INTEGER PRIMARY KEY NOT NULL,"
                                           "  applied_at BIGINT NOT NULL)");
    if (err == BP_OK) {
        err = current_version(st, &have);
    }
    if (err == BP_OK && have > (int)bp_store__pg_migrations_len) {
        too_new(st->errmsg, sizeof(st->errmsg), st->where, have);
        err = BP_ERR_STORE;
    }
    if (err != BP_OK || version == 0 || have >= version) {
        goto done;
    }
    err = bp_pg__exec(st, bp_store__pg_migrations[version - 1]);
    if (err != BP_OK) {
        goto done;
    }
    bp_pg__p_int(&p, version);
    bp_pg__p_int(&p, bp_clock_wall_s());
    err = bp_pg__run(st, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", &p, NULL);
    *out_applied = err == BP_OK;

done:
    *out_have = have;
    err = bp_pg__tx_end(st, true, err);
    if (err != BP_OK) {
        *out_applied = false;
    }
    return err;
}

static bp_err
pg_migrate(struct bp_store *s, int *out_applied, int *out_version)
{
    struct pg_store *st = bp_pg__of(s);
    int applied = 0;
    int have = 0;
    int version = 0;
    bool did = false;
    /* The usual case, a store already current, costs one transaction. */
    bp_err err = apply_one(st, 0, &have, &did);

    for (int v = have + 1; err == BP_OK && v <= (int)bp_store__pg_migrations_len; v++) {
        err = apply_one(st, v, &version, &did);
        applied += did ? 1 : 0;
    }
    if (err == BP_OK) {
        err = current_version(st, &version);
    }
    if (err != BP_OK) {
        return err;
    }
    if (out_applied != NULL) {
        *out_applied = applied;
    }
    if (out_version != NULL) {
        *out_version = version;
    }
    return BP_OK;
}

static bp_err
pg_ping(struct bp_store *s)
{
    return bp_pg__exec(bp_pg__of(s), "SELECT 1");
}

/* The latest seq of the change log (migration 4). Its triggers log every change to what the
 * servers' tables hold, from any process, and take the CHANGES lock until commit, so the seq
 * moves exactly when such a change commits and never shows a later change before an earlier
 * one. Last-used stamps and audit records are not changes: they do not move it. */
static bp_err
pg_change_token(struct bp_store *s, int64_t *out)
{
    struct pg_store *st = bp_pg__of(s);
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, "SELECT COALESCE(MAX(seq), 0) FROM changes", NULL, &res);

    if (err == BP_OK) {
        *out = bp_pg__col_int(res, 0, 0);
    }
    PQclear(res);
    return err;
}

/* ---- instances ---- */

#define INSTANCE_COLS "id, name, url, secret_key, ca_file, enabled, created_at, updated_at"

static void
read_instance(const PGresult *res, int row, void *vout)
{
    struct bp_instance_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_pg__col_dup(res, row, 0);
    out->name = bp_pg__col_dup(res, row, 1);
    out->url = bp_pg__col_dup(res, row, 2);
    out->secret_key = bp_pg__col_bytes(res, row, 3, &out->secret_key_len);
    out->ca_file = bp_pg__col_dup(res, row, 4);
    out->enabled = bp_pg__col_bool(res, row, 5);
    out->created_at = bp_pg__col_int(res, row, 6);
    out->updated_at = bp_pg__col_int(res, row, 7);
}

static void
bind_instance(struct bp_pg_params *p, const struct bp_instance_rec *rec)
{
    bp_pg__p_text(p, rec->id);
    bp_pg__p_text(p, rec->name);
    bp_pg__p_text(p, rec->url);
    if (rec->secret_key == NULL) {
        bp_pg__p_text(p, NULL);
        p->types[p->n - 1] = OID_BYTEA;
    } else {
        bp_pg__p_bytes(p, rec->secret_key, rec->secret_key_len);
    }
    bp_pg__p_text(p, rec->ca_file);
    bp_pg__p_bool(p, rec->enabled);
    bp_pg__p_int(p, rec->created_at);
    bp_pg__p_int(p, rec->updated_at);
}

static bp_err
pg_instance_insert(struct bp_store *s, const struct bp_instance_rec *rec)
{
    struct bp_pg_params p = {0};

    bind_instance(&p, rec);
    return bp_pg__run(bp_pg__of(s), "INSERT INTO instances (" INSTANCE_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                      &p, NULL);
}

static bp_err
pg_instance_update(struct bp_store *s, const struct bp_instance_rec *rec)
{
    struct bp_pg_params p = {0};

    bind_instance(&p, rec);
    return bp_pg__change_one(bp_pg__of(s),
                             "UPDATE instances SET name = $2, url = $3, secret_key = $4, ca_file = $5,"
                             " enabled = $6, created_at = $7, updated_at = $8 WHERE id = $1",
                             &p);
}

static bp_err
pg_instance_get(struct bp_store *s, const char *id, struct bp_instance_rec *out)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    return bp_pg__get_one(bp_pg__of(s), "SELECT " INSTANCE_COLS " FROM instances WHERE id = $1", &p,
                          read_instance, out);
}

static bp_err
pg_instance_delete(struct bp_store *s, const char *id)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "DELETE FROM instances WHERE id = $1", &p);
}

static bp_err
pg_instance_list(struct bp_store *s, struct bp_instance_rec **out, size_t *out_n)
{
    void *recs = NULL;
    /* COLLATE "C": ids compare bytewise, as on SQLite, whatever the database's collation. */
    bp_err err = bp_pg__collect(bp_pg__of(s), "SELECT " INSTANCE_COLS " FROM instances ORDER BY created_at, id COLLATE \"C\"",
                                NULL, sizeof(struct bp_instance_rec), read_instance, &recs, out_n);

    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

/* ---- API keys ---- */

#define KEY_COLS                                                                                    \
    "id, name, prefix, digest, scopes, instances, created_at, expires_at, last_used_at, revoked,"   \
    " revoked_at"

static void
read_key(const PGresult *res, int row, void *vout)
{
    struct bp_key_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_pg__col_dup(res, row, 0);
    out->name = bp_pg__col_dup(res, row, 1);
    out->prefix = bp_pg__col_dup(res, row, 2);
    bp_pg__col_digest(res, row, 3, out->digest, sizeof(out->digest));
    out->scopes = bp_pg__col_dup(res, row, 4);
    out->instances = bp_pg__col_dup(res, row, 5);
    out->created_at = bp_pg__col_int(res, row, 6);
    out->expires_at = bp_pg__col_int(res, row, 7);
    out->last_used_at = bp_pg__col_int(res, row, 8);
    out->revoked = bp_pg__col_bool(res, row, 9);
    out->revoked_at = bp_pg__col_int(res, row, 10);
}

static bp_err
pg_key_insert(struct bp_store *s, const struct bp_key_rec *rec)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, rec->id);
    bp_pg__p_text(&p, rec->name);
    bp_pg__p_text(&p, rec->prefix);
    bp_pg__p_bytes(&p, rec->digest, sizeof(rec->digest));
    bp_pg__p_text(&p, rec->scopes);
    bp_pg__p_text(&p, rec->instances);
    bp_pg__p_int(&p, rec->created_at);
    bp_pg__p_int(&p, rec->expires_at);
    bp_pg__p_int(&p, rec->last_used_at);
    bp_pg__p_bool(&p, rec->revoked);
    bp_pg__p_int(&p, rec->revoked_at);
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO api_keys (" KEY_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)", &p, NULL);
}

static bp_err
pg_key_get(struct bp_store *s, const char *id, struct bp_key_rec *out)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    return bp_pg__get_one(bp_pg__of(s), "SELECT " KEY_COLS " FROM api_keys WHERE id = $1", &p, read_key, out);
}

static bp_err
pg_key_list(struct bp_store *s, struct bp_key_rec **out, size_t *out_n)
{
    void *recs = NULL;
    bp_err err = bp_pg__collect(bp_pg__of(s), "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id COLLATE \"C\"",
                                NULL, sizeof(struct bp_key_rec), read_key, &recs, out_n);

    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
pg_key_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    bp_err err;

    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, id);
    /* The first revocation time is the one on record. */
    err = bp_pg__change_one(st, "UPDATE api_keys SET revoked = TRUE, revoked_at = $1 WHERE id = $2 AND NOT revoked",
                            &p);
    if (err == BP_ERR_NOT_FOUND) {
        err = bp_pg__row_exists(st, "SELECT 1 FROM api_keys WHERE id = $1", id);
    }
    return err;
}

static bp_err
pg_key_set_expiry(struct bp_store *s, const char *id, int64_t expires_at)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, expires_at);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE api_keys SET expires_at = $1 WHERE id = $2", &p);
}

/* Appends s to a PostgreSQL array literal element, quoted and escaped. */
static void
array_elem(char *out, size_t *off, const char *s)
{
    out[(*off)++] = '"';
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            out[(*off)++] = '\\';
        }
        out[(*off)++] = *s;
    }
    out[(*off)++] = '"';
}

/* One statement for the whole batch: the ids and times travel as two array parameters. The rows
 * are locked in id order first (SELECT … ORDER BY … FOR NO KEY UPDATE), so two servers flushing
 * overlapping batches wait for each other instead of deadlocking. Only last_used_at is set: the
 * change triggers ignore it, so a flush is never a change. */
#define TOUCH_SQL                                                                                     \
    "WITH v AS (SELECT id, MAX(at) AS at FROM unnest($1::text[], $2::int8[]) AS u(id, at) GROUP BY id),"  \
    " l AS (SELECT k.id FROM api_keys k JOIN v ON v.id = k.id WHERE k.last_used_at < v.at"                \
    "       ORDER BY k.id COLLATE \"C\" FOR NO KEY UPDATE OF k)"                                           \
    " UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, v.at) FROM v, l"                      \
    " WHERE k.id = l.id AND v.id = l.id"

static bp_err
pg_key_touch(struct bp_store *s, const char *const *ids, const int64_t *at, size_t n)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    size_t id_cap = 3;
    size_t at_cap = 3 + n * 21;
    size_t io = 0;
    size_t ao = 0;
    char *id_arr;
    char *at_arr;
    bp_err err = BP_OK;

    for (size_t i = 0; i < n; i++) {
        id_cap += 2 * strlen(ids[i]) + 3;
    }
    id_arr = bp_malloc(id_cap);
    at_arr = bp_malloc(at_cap);
    id_arr[io++] = '{';
    at_arr[ao++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            id_arr[io++] = ',';
            at_arr[ao++] = ',';
        }
        array_elem(id_arr, &io, ids[i]);
        ao += (size_t)snprintf(at_arr + ao, at_cap - ao, "%lld", (long long)at[i]);
    }
    id_arr[io++] = '}';
    id_arr[io] = '\0';
    at_arr[ao++] = '}';
    at_arr[ao] = '\0';
    if (!st->touch_prepared) {
        PGresult *res = PQprepare(st->conn, "bp_key_touch", TOUCH_SQL, 0, NULL);
        err = finish(st, res, NULL);
        st->touch_prepared = err == BP_OK;
    }
    if (err == BP_OK) {
        bp_pg__p_text(&p, id_arr);
        bp_pg__p_text(&p, at_arr);
        err = bp_pg__run_prepared(st, "bp_key_touch", &p, NULL);
    }
    bp_free(id_arr);
    bp_free(at_arr);
    return err;
}

const struct bp_store_ops bp_pg__ops = {
    .name = "postgresql",
    .close = pg_close,
    .last_error = pg_last_error,
    .migrate = pg_migrate,
    .schema_version = bp_pg__schema_version,
    .backup = bp_pg__backup,
    .ping = pg_ping,
    .change_token = pg_change_token,
    .instance_insert = pg_instance_insert,
    .instance_update = pg_instance_update,
    .instance_get = pg_instance_get,
    .instance_delete = pg_instance_delete,
    .instance_list = pg_instance_list,
    .key_insert = pg_key_insert,
    .key_get = pg_key_get,
    .key_list = pg_key_list,
    .key_revoke = pg_key_revoke,
    .key_set_expiry = pg_key_set_expiry,
    .key_touch = pg_key_touch,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .oauth = &bp_pg__oauth_ops,
    .audit = &bp_pg__audit_ops,
    .change_seq = bp_pg__change_seq,
    .change_purge = bp_pg__change_purge,
    .commit_files = bp_pg__commit_files,
    .watcher_put = bp_pg__watcher_put,
    .watcher_delete = bp_pg__watcher_delete,
    .watcher_list = bp_pg__watcher_list,
};
