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

/* ---- results ---- */

int64_t
bp_pg__changes(const PGresult *res)
{
    const char *n = bp_pq.PQcmdTuples((PGresult *)res);
    return n != NULL && n[0] != '\0' ? strtoll(n, NULL, 10) : 0;
}

/* ---- columns ---- */

char *
bp_pg__col_dup(const PGresult *res, int row, int col)
{
    if (bp_pq.PQgetisnull(res, row, col)) {
        return NULL;
    }
    return bp_strndup(bp_pq.PQgetvalue(res, row, col), (size_t)bp_pq.PQgetlength(res, row, col));
}

int64_t
bp_pg__col_int(const PGresult *res, int row, int col)
{
    if (bp_pq.PQgetisnull(res, row, col)) {
        return 0;
    }
    return strtoll(bp_pq.PQgetvalue(res, row, col), NULL, 10);
}

bool
bp_pg__col_bool(const PGresult *res, int row, int col)
{
    return !bp_pq.PQgetisnull(res, row, col) && bp_pq.PQgetvalue(res, row, col)[0] == 't';
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
    if (bp_pq.PQgetisnull(res, row, col)) {
        return;
    }
    text = bp_pq.PQgetvalue(res, row, col);
    tlen = (size_t)bp_pq.PQgetlength(res, row, col);
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
    if (bp_pq.PQgetisnull(res, row, col)) {
        return NULL;
    }
    text = bp_pq.PQgetvalue(res, row, col);
    tlen = (size_t)bp_pq.PQgetlength(res, row, col);
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
    if (bp_pq.PQntuples(res) == 0) {
        err = BP_ERR_NOT_FOUND;
    } else {
        read(res, 0, out);
    }
    bp_pq.PQclear(res);
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
    n = bp_pq.PQntuples(res);
    arr = bp_calloc(n > 0 ? (size_t)n : 1, elem_size);
    for (int i = 0; i < n; i++) {
        read(res, i, arr + (size_t)i * elem_size);
    }
    bp_pq.PQclear(res);
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
    bp_pq.PQclear(res);
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
    if (err == BP_OK && bp_pq.PQntuples(res) == 0) {
        err = BP_ERR_NOT_FOUND;
    }
    bp_pq.PQclear(res);
    return err;
}

/* ---- transactions (store_pg_conn.c) ---- */

static bp_err
pg_begin(struct bp_store *s)
{
    return bp_pg__begin(bp_pg__of(s), true);
}

static bp_err
pg_commit(struct bp_store *s)
{
    return bp_pg__commit(bp_pg__of(s));
}

static void
pg_rollback(struct bp_store *s)
{
    bp_pg__rollback(bp_pg__of(s));
}

/* ---- migrations, ping, change token ---- */

#define LOCK_MIGRATE_SQL                                                                                     \
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
    bp_err err = bp_pg__begin(st, false);

    *out_applied = false;
    if (err != BP_OK) {
        return err;
    }
    err = bp_pg__exec(st, LOCK_MIGRATE_SQL "; CREATE TABLE IF NOT EXISTS schema_migrations ("
                                           "  version    INTEGER PRIMARY KEY NOT NULL,"
                                           "  applied_at BIGINT NOT NULL)");
    if (err == BP_OK) {
        err = bp_pg__current_version(st, &have);
    }
    if (err == BP_OK && have > (int)bp_store__pg_migrations_len) {
        bp_pg__too_new(st->errmsg, sizeof(st->errmsg), st->where, have);
        err = BP_ERR_STORE;
    }
    if (err != BP_OK || version == 0 || have >= version) {
        goto done;
    }
    err = bp_pg__exec(st, bp_store__pg_migrations[version - 1]);
    if (err == BP_OK && version == BP_STORE_TRAIL_VERSION) {
        err = bp_store__seal_legacy(&st->base);
    }
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
    /* A migration on a large table (an index build) may take long: no statement timeout. */
    int64_t timeout_ms = st->timeout_ms;
    bp_err err;

    st->timeout_ms = 0;
    /* The usual case, a store already current, costs one transaction. */
    err = apply_one(st, 0, &have, &did);
    for (int v = have + 1; err == BP_OK && v <= (int)bp_store__pg_migrations_len; v++) {
        err = apply_one(st, v, &version, &did);
        applied += did ? 1 : 0;
    }
    if (err == BP_OK) {
        err = bp_pg__current_version(st, &version);
    }
    st->timeout_ms = timeout_ms;
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
    bp_pq.PQclear(res);
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
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO instances (" INSTANCE_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", &p, NULL);
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
    bp_err err = bp_pg__collect(
        bp_pg__of(s), "SELECT " INSTANCE_COLS " FROM instances ORDER BY created_at, id COLLATE \"C\"", NULL,
        sizeof(struct bp_instance_rec), read_instance, &recs, out_n);

    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

/* ---- API keys ---- */

#define KEY_COLS                                                                                             \
    "id, name, prefix, digest, scopes, instances, created_at, expires_at, last_used_at, revoked,"            \
    " revoked_at, allow_from, rate_limit, rate_burst"

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
    out->allow_from = bp_pg__col_dup(res, row, 11);
    out->rate_limit = bp_pg__col_dup(res, row, 12);
    out->rate_burst = bp_pg__col_int(res, row, 13);
}

/* The key walk reads rows in binary format: no hex digests or decimal numbers to print on the
 * server and parse here, a third of a million-key load's time (issue 9). Binary values are only
 * as good as their types, so each batch's column types are checked first. */
static const Oid key_col_types[] = {OID_TEXT, OID_TEXT, OID_TEXT, OID_BYTEA, OID_TEXT, OID_TEXT, OID_INT8,
                                    OID_INT8, OID_INT8, OID_BOOL, OID_INT8,  OID_TEXT, OID_TEXT, OID_INT8};

static bool
key_batch_is_binary(const PGresult *res)
{
    if (bp_pq.PQnfields(res) != (int)(sizeof(key_col_types) / sizeof(key_col_types[0]))) {
        return false;
    }
    for (int c = 0; c < bp_pq.PQnfields(res); c++) {
        if (bp_pq.PQfformat(res, c) != 1 || bp_pq.PQftype(res, c) != key_col_types[c]) {
            return false;
        }
    }
    return true;
}

static int64_t
bin_int8(const PGresult *res, int row, int col)
{
    const unsigned char *v = (const unsigned char *)bp_pq.PQgetvalue(res, row, col);
    uint64_t x = 0;

    if (bp_pq.PQgetisnull(res, row, col) || bp_pq.PQgetlength(res, row, col) != 8) {
        return 0;
    }
    for (int i = 0; i < 8; i++) {
        x = x << 8 | v[i];
    }
    return (int64_t)x;
}

/* A text column in place (libpq ends binary values with a NUL too), NULL for SQL NULL. */
static char *
bin_text(const PGresult *res, int row, int col)
{
    return bp_pq.PQgetisnull(res, row, col) ? NULL : bp_pq.PQgetvalue(res, row, col);
}

/* The row in place: its strings are res's. False for a row the schema does not allow (a digest
 * that is not 32 bytes): the walk then fails rather than guess. */
static bool
borrow_key(const PGresult *res, int row, struct bp_key_rec *out)
{
    memset(out, 0, sizeof(*out));
    if (bp_pq.PQgetisnull(res, row, 3) || bp_pq.PQgetlength(res, row, 3) != (int)sizeof(out->digest) ||
        bp_pq.PQgetlength(res, row, 9) != 1) {
        return false;
    }
    out->id = bin_text(res, row, 0);
    out->name = bin_text(res, row, 1);
    out->prefix = bin_text(res, row, 2);
    memcpy(out->digest, bp_pq.PQgetvalue(res, row, 3), sizeof(out->digest));
    out->scopes = bin_text(res, row, 4);
    out->instances = bin_text(res, row, 5);
    out->created_at = bin_int8(res, row, 6);
    out->expires_at = bin_int8(res, row, 7);
    out->last_used_at = bin_int8(res, row, 8);
    out->revoked = bp_pq.PQgetvalue(res, row, 9)[0] != 0;
    out->revoked_at = bin_int8(res, row, 10);
    out->allow_from = bin_text(res, row, 11);
    out->rate_limit = bin_text(res, row, 12);
    out->rate_burst = bin_int8(res, row, 13);
    return true;
}

#define KEY_WALK_FETCH "FETCH FORWARD 10000 FROM bp_key_walk" /* a batch: a few MiB at most */

/* Puts one batch's rows through fn. */
static bp_err
walk_batch(struct pg_store *st, const PGresult *res, bp_err (*fn)(const struct bp_key_rec *k, void *arg),
           void *arg)
{
    struct bp_key_rec rec;
    bp_err err = BP_OK;

    if (!key_batch_is_binary(res)) {
        snprintf(st->errmsg, sizeof(st->errmsg), "api_keys does not have the columns this version expects");
        return BP_ERR_STORE;
    }
    for (int i = 0; i < bp_pq.PQntuples(res) && err == BP_OK; i++) {
        if (!borrow_key(res, i, &rec)) {
            snprintf(st->errmsg, sizeof(st->errmsg), "api_keys holds a row whose digest is not 32 bytes");
            return BP_ERR_STORE;
        }
        err = fn(&rec, arg);
    }
    return err;
}

/* Through a cursor, a batch at a time: one result of a million rows would hold them all in
 * libpq's memory at once (issue 9 measured a 703 MiB peak at start-up that way). The next batch
 * is asked for before this one goes through fn, so that the server reads and sends while we
 * build: the two costs overlap instead of adding up. */
static bp_err
pg_key_each(struct bp_store *s, bp_err (*fn)(const struct bp_key_rec *k, void *arg), void *arg)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params binary = {.binary_result = true};
    bool own = false;
    bool sent = false;
    bp_err err = bp_pg__tx_begin(st, false, &own);

    if (err != BP_OK) {
        return err;
    }
    err = bp_pg__exec(st, "DECLARE bp_key_walk NO SCROLL CURSOR FOR SELECT " KEY_COLS " FROM api_keys");
    if (err == BP_OK) {
        err = bp_pg__send(st, KEY_WALK_FETCH, &binary);
        sent = err == BP_OK;
    }
    while (sent) {
        PGresult *res = NULL;
        bp_err walked;

        sent = false;
        err = bp_pg__receive(st, KEY_WALK_FETCH, &res);
        if (err != BP_OK || bp_pq.PQntuples(res) == 0) {
            bp_pq.PQclear(res);
            break;
        }
        err = bp_pg__send(st, KEY_WALK_FETCH, &binary);
        sent = err == BP_OK;
        walked = sent ? walk_batch(st, res, fn, arg) : BP_OK;
        bp_pq.PQclear(res);
        if (walked != BP_OK) {
            PGresult *next = NULL;
            (void)bp_pg__receive(st, KEY_WALK_FETCH, &next); /* the connection is free again */
            bp_pq.PQclear(next);
            err = walked;
            break;
        }
    }
    if (!own) {
        /* In the caller's transaction the cursor would outlive the walk. */
        bp_err closed = bp_pg__exec(st, "CLOSE bp_key_walk");
        err = err != BP_OK ? err : closed;
    }
    return bp_pg__tx_end(st, own, err);
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
    bp_pg__p_text(&p, rec->allow_from);
    bp_pg__p_text(&p, rec->rate_limit);
    bp_pg__p_int(&p, rec->rate_burst);
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO api_keys (" KEY_COLS
                      ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
                      &p, NULL);
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
    bp_err err = bp_pg__collect(bp_pg__of(s),
                                "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id COLLATE \"C\"",
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
    err = bp_pg__change_one(
        st, "UPDATE api_keys SET revoked = TRUE, revoked_at = $1 WHERE id = $2 AND NOT revoked", &p);
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

static bp_err
pg_key_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, rate_limit);
    bp_pg__p_int(&p, burst);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s),
                             "UPDATE api_keys SET rate_limit = $1, rate_burst = $2 WHERE id = $3", &p);
}

static bp_err
pg_key_set_allow_from(struct bp_store *s, const char *id, const char *allow_from)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, allow_from);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE api_keys SET allow_from = $1 WHERE id = $2", &p);
}

static bp_err
pg_key_link(struct bp_store *s, const char *old_id, const char *new_id)
{
    struct bp_pg_params p = {0};
    bp_err err;

    bp_pg__p_text(&p, new_id);
    bp_pg__p_text(&p, old_id);
    err = bp_pg__change_one(bp_pg__of(s),
                            "UPDATE api_keys SET replaced_by = $1 WHERE id = $2 AND replaced_by IS NULL AND NOT revoked", &p);
    if (err != BP_OK) {
        return err;
    }
    p = (struct bp_pg_params){0};
    bp_pg__p_text(&p, old_id);
    bp_pg__p_text(&p, new_id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE api_keys SET replaces = $1 WHERE id = $2", &p);
}

struct key_links {
    char *replaces;
    char *replaced_by;
};

static void
read_links(const PGresult *res, int row, void *out_v)
{
    struct key_links *out = out_v;

    out->replaces = bp_pg__col_dup(res, row, 0);
    out->replaced_by = bp_pg__col_dup(res, row, 1);
}

static bp_err
pg_key_links(struct bp_store *s, const char *id, char **out_replaces, char **out_replaced_by)
{
    struct bp_pg_params p = {0};
    struct key_links l = {0};
    bp_err err;

    bp_pg__p_text(&p, id);
    err = bp_pg__get_one(bp_pg__of(s), "SELECT replaces, replaced_by FROM api_keys WHERE id = $1", &p,
                         read_links, &l);
    *out_replaces = l.replaces;
    *out_replaced_by = l.replaced_by;
    return err;
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
#define TOUCH_SQL                                                                                            \
    "WITH v AS (SELECT id, MAX(at) AS at FROM unnest($1::text[], $2::int8[]) AS u(id, at) GROUP BY id),"     \
    " l AS (SELECT k.id FROM api_keys k JOIN v ON v.id = k.id WHERE k.last_used_at < v.at"                   \
    "       ORDER BY k.id COLLATE \"C\" FOR NO KEY UPDATE OF k)"                                             \
    " UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, v.at) FROM v, l"                         \
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
    /* A new connection has none of the old one's prepared statements. */
    err = bp_pg__ensure(st);
    if (err == BP_OK && !st->touch_prepared) {
        err = bp_pg__prepare(st, "bp_key_touch", TOUCH_SQL);
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
    .close = bp_pg__close,
    .last_error = bp_pg__last_error,
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
    .key_each = pg_key_each,
    .key_revoke = pg_key_revoke,
    .key_set_expiry = pg_key_set_expiry,
    .key_set_allow_from = pg_key_set_allow_from,
    .key_set_rate = pg_key_set_rate,
    .key_link = pg_key_link,
    .key_links = pg_key_links,
    .key_touch = pg_key_touch,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .oauth = &bp_pg__oauth_ops,
    .audit = &bp_pg__audit_ops,
    .change_seq = bp_pg__change_seq,
    .change_purge = bp_pg__change_purge,
    .changes_since = bp_pg__changes_since,
    .commit_files = bp_pg__commit_files,
    .watcher_put = bp_pg__watcher_put,
    .watcher_delete = bp_pg__watcher_delete,
    .watcher_list = bp_pg__watcher_list,
    .set_timeout = bp_pg__set_timeout,
    .connected = bp_pg__connected,
    .listener_open = bp_pg__listener_open,
    .count_rows = bp_pg__count_rows,
    .snapshot_begin = bp_pg__snapshot_begin,
    .snapshot_end = bp_pg__snapshot_end,
    .copy_clear = bp_pg__copy_clear,
    .copy_audit = bp_pg__copy_audit,
    .copy_done = bp_pg__copy_done,
    .idem = &bp_pg__idem_ops,
    .trail = &bp_pg__trail_ops,
};
