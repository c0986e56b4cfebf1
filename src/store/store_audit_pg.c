/* Audit log on PostgreSQL (schema v3 and v5, table audit_log). The same contract as
 * store_audit_sqlite.c.
 *
 * Inserts: one transaction per call (unless the caller already opened one with bp_store_begin,
 * so a CLI change and its record commit together), and in it one statement for the whole batch:
 * each field travels as one array parameter and unnest() turns them back into rows, so a group
 * commit of a thousand records is one round trip through a statement prepared once per
 * connection. ON CONFLICT (id) DO NOTHING makes a repeated insert of the same records (the spool
 * imported again, a batch whose commit went unanswered and was spooled) store each once;
 * RETURNING says which were stored and their seq. A record is durable once COMMIT returns (the
 * server's synchronous_commit decides what that means; its default, on, waits for the WAL
 * flush). PostgreSQL refuses text that is not valid UTF-8 where SQLite stores any bytes, so such
 * text is stored with the offending bytes replaced by '?' (as the spool file does) rather than
 * losing the record.
 *
 * Queries: the WHERE clause is assembled from constant fragments, every value a typed parameter
 * (a parameter the text leaves out is simply unused). Newest first is ORDER BY time_us DESC,
 * seq DESC, which each audit_*_time index ((filter,) time_us, seq) serves backwards.
 *
 * Following: seq is an identity value, taken when a row is inserted, and the batches of several
 * nodes commit in any order of them, so "seq > the last one seen" would skip a batch that
 * committed after a later one. Each row holds the id of the transaction that inserted it (xid,
 * migration 5), and pg_snapshot_xmin() names the oldest transaction still running: a row not
 * visible yet belongs to a transaction at or above it. So a cursor reads, round after round, the
 * matching rows of transactions at or above its low-water mark, hands out those it has not
 * handed out before, and at the end of each round raises the mark to the xmin taken when the
 * round began. Rows below the mark are never read again; the cursor remembers only the rows at
 * or above it (a transaction left open on the server keeps the mark, and that memory, down).
 *
 * Purge: under a session advisory lock (PURGE) taken with pg_try_advisory_lock, so that one node
 * at a time deletes and the others skip their turn. */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "store/pg-int.h"

/* Rows deleted per purge statement, so that a large backlog never holds locks for long. */
#define PURGE_CHUNK 10000

#define AUDIT_COLS                                                                                  \
    "seq, time_us, request_id, actor_type, actor_id, actor_name, instance_id, method, route,"      \
    " path, action, category, core_status, status, latency_us, client_addr, resource_id, error,"   \
    " id, node, repeat_count, last_time_us, replayed, chain, chain_n, prev_hash, hash"

#define INSERT_SQL                                                                                  \
    "INSERT INTO audit_log (time_us, request_id, actor_type, actor_id, actor_name, instance_id,"  \
    " method, route, path, action, category, core_status, status, latency_us, client_addr,"      \
    " resource_id, error, id, node, repeat_count, last_time_us, replayed, chain, chain_n,"        \
    " prev_hash, hash)"                                                                           \
    " SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]," \
    " $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int4[], $13::int4[],"    \
    " $14::int8[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::int8[],"  \
    " $21::int8[], $22::bool[], $23::text[], $24::int8[], $25::text[], $26::text[])"              \
    " ON CONFLICT (id) DO NOTHING RETURNING id, seq"

#define STR_(x) #x
#define STR(x) STR_(x)
#define PURGE_LOCK STR(BP_PG_LOCK_CLASS) ", " STR(BP_PG_LOCK_PURGE)

#define N_FIELDS 26 /* the columns INSERT_SQL fills, in its order */
#define XID_COL 27  /* a follow page's xid: the column after AUDIT_COLS */

/* One array parameter being built: a PostgreSQL array literal ("{…,…}"). */
struct arr {
    struct bp_buf b;
};

static void
arr_sep(struct arr *a)
{
    bp_buf_append(&a->b, a->b.len == 0 ? "{" : ",", 1);
}

static void
arr_int(struct arr *a, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);

    arr_sep(a);
    bp_buf_append(&a->b, num, (size_t)n);
}

/* A text element, always quoted (so that "NULL" or a comma stays text), or an unquoted NULL. The
 * text is repaired to valid UTF-8 first (bp_store__utf8_fix). */
static void
arr_text(struct arr *a, const char *text)
{
    char *fix = NULL;
    const char *t = bp_store__utf8_fix(text, &fix);

    arr_sep(a);
    if (t == NULL) {
        bp_buf_append(&a->b, "NULL", 4);
        return;
    }
    bp_buf_append(&a->b, "\"", 1);
    for (const char *c = t; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            bp_buf_append(&a->b, "\\", 1);
        }
        bp_buf_append(&a->b, c, 1);
    }
    bp_buf_append(&a->b, "\"", 1);
    bp_free(fix);
}

/* The batch as N_FIELDS array literals, in INSERT_SQL's order. copied: records from another
 * store (db copy) keep their chain fields as they are, none included. */
static void
build_arrays(const struct bp_audit_rec *recs, size_t n, bool copied, struct arr a[N_FIELDS])
{
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_buf_init(&a[f].b, SIZE_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        const struct bp_audit_rec *r = &recs[i];
        /* actor_type is NOT NULL in the schema; a record without one is a caller bug, but losing
         * the record over it would be worse than naming it. */
        const char *actor_type = r->actor_type != NULL ? r->actor_type : "anonymous";

        arr_int(&a[0], r->time_us);
        arr_text(&a[1], r->request_id);
        arr_text(&a[2], actor_type);
        arr_text(&a[3], r->actor_id);
        arr_text(&a[4], r->actor_name);
        arr_text(&a[5], r->instance_id);
        arr_text(&a[6], r->method);
        arr_text(&a[7], r->route);
        arr_text(&a[8], r->path);
        arr_text(&a[9], r->action);
        arr_text(&a[10], r->category);
        arr_int(&a[11], r->core_status);
        arr_int(&a[12], r->status);
        arr_int(&a[13], r->latency_us);
        arr_text(&a[14], r->client_addr);
        arr_text(&a[15], r->resource_id);
        arr_text(&a[16], r->error);
        arr_text(&a[17], r->id);
        arr_text(&a[18], r->node);
        arr_int(&a[19], r->repeat_count > 0 ? r->repeat_count : 1);
        if (r->last_time_us > 0) {
            arr_int(&a[20], r->last_time_us);
        } else {
            arr_text(&a[20], NULL);
        }
        arr_int(&a[21], r->replayed ? 1 : 0);
        if (copied && r->chain_n == 0) {
            arr_text(&a[22], NULL);
            arr_text(&a[23], NULL);
            arr_text(&a[24], NULL);
            arr_text(&a[25], NULL);
        } else {
            arr_text(&a[22], copied ? r->chain : bp_store_audit_chain_of(r));
            arr_int(&a[23], r->chain_n);
            arr_text(&a[24], r->prev_hash);
            arr_text(&a[25], r->hash);
        }
    }
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_buf_append(&a[f].b, n == 0 ? "{}" : "}", n == 0 ? 2 : 1);
    }
}

/* Gives each stored record its seq: RETURNING names them by id, in practice in the order given
 * (so the search usually moves one step), though nothing promises it. */
static void
assign_seqs(PGresult *res, struct bp_audit_rec *recs, size_t n)
{
    size_t j = 0;

    for (int row = 0; row < bp_pq.PQntuples(res); row++) {
        const char *id = bp_pq.PQgetvalue(res, row, 0);
        size_t tries = 0;

        while (tries < n && strcmp(recs[j].id, id) != 0) {
            j = (j + 1) % n;
            tries++;
        }
        if (tries < n) {
            recs[j].seq = bp_pg__col_int(res, row, 1);
        }
    }
}

/* As INSERT_SQL with the seq first, given rather than generated. */
#define COPY_SQL                                                                                    \
    "INSERT INTO audit_log (seq, time_us, request_id, actor_type, actor_id, actor_name, instance_id," \
    " method, route, path, action, category, core_status, status, latency_us, client_addr,"      \
    " resource_id, error, id, node, repeat_count, last_time_us, replayed, chain, chain_n,"        \
    " prev_hash, hash) OVERRIDING SYSTEM VALUE"                                                   \
    " SELECT * FROM unnest($27::int8[], $1::int8[], $2::text[], $3::text[], $4::text[], $5::text[]," \
    " $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int4[],"     \
    " $13::int4[], $14::int8[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[],"  \
    " $20::int8[], $21::int8[], $22::bool[], $23::text[], $24::int8[], $25::text[], $26::text[])"

bp_err
bp_pg__copy_audit(struct bp_store *s, const struct bp_audit_rec *recs, size_t n)
{
    struct pg_store *st = bp_pg__of(s);
    struct arr a[N_FIELDS];
    struct arr seqs;
    struct bp_pg_params p = {0};
    bp_err err;

    if (n == 0) {
        return BP_OK;
    }
    build_arrays(recs, n, true, a);
    bp_buf_init(&seqs.b, SIZE_MAX);
    for (size_t i = 0; i < n; i++) {
        arr_int(&seqs, recs[i].seq);
    }
    bp_buf_append(&seqs.b, "}", 1);
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_pg__p_text(&p, a[f].b.data);
    }
    bp_pg__p_text(&p, seqs.b.data);
    err = bp_pg__run(st, COPY_SQL, &p, NULL);
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_buf_cleanup(&a[f].b);
    }
    bp_buf_cleanup(&seqs.b);
    return err;
}

/* The new records (store_chain.c decided which, and their places) in one statement. */
static bp_err
pg_trail_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n)
{
    struct pg_store *st = bp_pg__of(s);
    struct arr a[N_FIELDS];
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    bp_err err = BP_OK;

    /* In the transaction already, so a new connection has been made (and the flag reset) by
     * now if one was needed. */
    if (!st->audit_prepared) {
        err = bp_pg__prepare(st, "bp_audit_insert", INSERT_SQL);
        st->audit_prepared = err == BP_OK;
    }
    if (err != BP_OK) {
        return err;
    }
    build_arrays(recs, n, false, a);
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_pg__p_text(&p, a[f].b.data);
    }
    for (size_t i = 0; i < n; i++) {
        recs[i].seq = 0;
    }
    err = bp_pg__run_prepared(st, "bp_audit_insert", &p, &res);
    if (err == BP_OK) {
        assign_seqs(res, recs, n);
    }
    bp_pq.PQclear(res);
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_buf_cleanup(&a[f].b);
    }
    return err;
}

/* As INSERT_SQL, after moving the chain's head from ($27, $28) to ($29, $30) at $31, and only
 * when it was still ($27, $28): otherwise nothing is inserted and no row comes back. The UPDATE
 * takes the head's row lock (a writer sharing the chain waits, then finds the head moved). */
#define APPEND_SQL                                                                                  \
    "WITH h AS (UPDATE audit_chains SET n = $29, head = $30, updated_us = $31"                     \
    " WHERE chain = $32 AND n = $27 AND head = $28 RETURNING 1)"                                   \
    " INSERT INTO audit_log (time_us, request_id, actor_type, actor_id, actor_name, instance_id,"  \
    " method, route, path, action, category, core_status, status, latency_us, client_addr,"      \
    " resource_id, error, id, node, repeat_count, last_time_us, replayed, chain, chain_n,"        \
    " prev_hash, hash)"                                                                           \
    " SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]," \
    " $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int4[], $13::int4[],"    \
    " $14::int8[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::int8[],"  \
    " $21::int8[], $22::bool[], $23::text[], $24::int8[], $25::text[], $26::text[])"              \
    " WHERE EXISTS (SELECT 1 FROM h)"                                                             \
    " ON CONFLICT (id) DO NOTHING RETURNING id, seq"

/* One round trip for the usual group commit: no head lock statement, no head update statement. */
static bp_err
pg_append_fast(struct bp_store *s, const char *chain, struct bp_audit_rec *recs, size_t n, bool *out_done)
{
    struct pg_store *st = bp_pg__of(s);
    struct arr a[N_FIELDS];
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    int64_t at;
    char head[BP_AUDIT_HEX];
    bp_err err = BP_OK;

    *out_done = false;
    if (st->chain_cache == NULL || strcmp(st->chain_cache, chain) != 0) {
        return BP_OK;
    }
    if (!st->audit_fast_prepared) {
        err = bp_pg__prepare(st, "bp_audit_append", APPEND_SQL);
        st->audit_fast_prepared = err == BP_OK;
    }
    if (err != BP_OK) {
        return err;
    }
    at = st->chain_cache_n;
    memcpy(head, st->chain_cache_head, BP_AUDIT_HEX);
    bp_store__chain_link(recs, n, NULL, chain, &at, head);
    build_arrays(recs, n, false, a);
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_pg__p_text(&p, a[f].b.data);
    }
    bp_pg__p_int(&p, st->chain_cache_n);
    bp_pg__p_text(&p, st->chain_cache_head);
    bp_pg__p_int(&p, at);
    bp_pg__p_text(&p, head);
    bp_pg__p_int(&p, bp_clock_wall_us());
    bp_pg__p_text(&p, chain);
    for (size_t i = 0; i < n; i++) {
        recs[i].seq = 0;
    }
    err = bp_pg__run_prepared(st, "bp_audit_append", &p, &res);
    if (err == BP_OK && bp_pq.PQntuples(res) > 0) {
        assign_seqs(res, recs, n);
        /* Every record is new: all of them went in, or the chain would have a gap. */
        err = (size_t)bp_pq.PQntuples(res) == n ? BP_OK : BP_ERR_STORE;
        *out_done = true;
    }
    bp_pq.PQclear(res);
    for (size_t f = 0; f < N_FIELDS; f++) {
        bp_buf_cleanup(&a[f].b);
    }
    return err;
}

/* After a commit: the head this connection left, when the batch was of one chain. */
static void
remember_head(struct pg_store *st, const struct bp_audit_rec *recs, size_t n)
{
    const struct bp_audit_rec *last = NULL;

    for (size_t i = 0; i < n; i++) {
        if (recs[i].seq == 0) {
            continue;
        }
        if (last != NULL && strcmp(bp_store_audit_chain_of(last), bp_store_audit_chain_of(&recs[i])) != 0) {
            last = NULL;
            break;
        }
        if (last == NULL || recs[i].chain_n > last->chain_n) {
            last = &recs[i];
        }
    }
    bp_free(st->chain_cache);
    st->chain_cache = NULL;
    if (last != NULL) {
        st->chain_cache = bp_strdup(bp_store_audit_chain_of(last));
        st->chain_cache_n = last->chain_n;
        memcpy(st->chain_cache_head, last->hash, BP_AUDIT_HEX);
    }
}

static bp_err
pg_audit_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n, const bool *fresh)
{
    struct pg_store *st = bp_pg__of(s);
    bool own = false;
    bp_err err;

    if (n == 0) {
        return BP_OK;
    }
    /* No CHANGES lock: audit rows are nobody else's, so this never waits for a credential change. */
    err = bp_pg__tx_begin(st, false, &own);
    if (err == BP_OK) {
        /* Each chain's head is locked (row lock) from here to the end of the transaction. */
        err = bp_store__chain_insert(s, recs, n, fresh);
        err = bp_pg__tx_end(st, own, err);
    }
    if (err == BP_OK && own) {
        remember_head(st, recs, n);
    } else {
        /* Not committed yet (the caller's transaction), or not at all: the head is not known. */
        bp_free(st->chain_cache);
        st->chain_cache = NULL;
    }
    if (err != BP_OK) {
        /* Nothing was stored: no record keeps a seq it does not have. */
        for (size_t i = 0; i < n; i++) {
            recs[i].seq = 0;
        }
    }
    return err;
}

static void
read_rec(const PGresult *res, int row, void *vout)
{
    struct bp_audit_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->seq = bp_pg__col_int(res, row, 0);
    out->time_us = bp_pg__col_int(res, row, 1);
    out->request_id = bp_pg__col_dup(res, row, 2);
    out->actor_type = bp_pg__col_dup(res, row, 3);
    out->actor_id = bp_pg__col_dup(res, row, 4);
    out->actor_name = bp_pg__col_dup(res, row, 5);
    out->instance_id = bp_pg__col_dup(res, row, 6);
    out->method = bp_pg__col_dup(res, row, 7);
    out->route = bp_pg__col_dup(res, row, 8);
    out->path = bp_pg__col_dup(res, row, 9);
    out->action = bp_pg__col_dup(res, row, 10);
    out->category = bp_pg__col_dup(res, row, 11);
    out->core_status = (int)bp_pg__col_int(res, row, 12);
    out->status = (int)bp_pg__col_int(res, row, 13);
    out->latency_us = bp_pg__col_int(res, row, 14);
    out->client_addr = bp_pg__col_dup(res, row, 15);
    out->resource_id = bp_pg__col_dup(res, row, 16);
    out->error = bp_pg__col_dup(res, row, 17);
    out->id = bp_pg__col_dup(res, row, 18);
    out->node = bp_pg__col_dup(res, row, 19);
    out->repeat_count = bp_pg__col_int(res, row, 20);
    out->last_time_us = bp_pg__col_int(res, row, 21); /* NULL reads as 0 */
    out->replayed = bp_pg__col_bool(res, row, 22);
    out->chain = bp_pg__col_dup(res, row, 23);
    out->chain_n = bp_pg__col_int(res, row, 24);
    bp_store__hex_col(out->prev_hash, bp_pq.PQgetisnull(res, row, 25) ? NULL : bp_pq.PQgetvalue(res, row, 25));
    bp_store__hex_col(out->hash, bp_pq.PQgetisnull(res, row, 26) ? NULL : bp_pq.PQgetvalue(res, row, 26));
}

/* The SQL text of q: only constant fragments, each naming its numbered parameter. cols: what to
 * select. xid_min >= 0: only rows of transactions at or above it (following). */
static void
build_query(const struct bp_audit_query *q, const char *cols, int64_t xid_min, char *sql, size_t cap)
{
    size_t off = 0;

#define APPEND(text)                                                                                \
    do {                                                                                            \
        int w_ = snprintf(sql + off, cap - off, "%s", (text));                                      \
        BP_BUG_ON(w_ < 0 || (size_t)w_ >= cap - off);                                               \
        off += (size_t)w_;                                                                          \
    } while (0)

    APPEND("SELECT ");
    APPEND(cols);
    APPEND(" FROM audit_log WHERE TRUE");
    if (q->since_us != 0) {
        APPEND(" AND time_us >= $1");
    }
    if (q->until_us != 0) {
        APPEND(" AND time_us < $2");
    }
    if (q->category != NULL) {
        APPEND(" AND category = $3");
    }
    if (q->instance_id != NULL) {
        APPEND(" AND instance_id = $4");
    }
    if (q->credential != NULL) {
        APPEND(" AND actor_id = $5");
    }
    if (q->action != NULL) {
        APPEND(" AND action = $6");
    }
    if (q->status >= 1 && q->status <= 5) {
        APPEND(" AND status >= $7 * 100 AND status < $7 * 100 + 100");
    } else if (q->status != 0) {
        APPEND(" AND status = $7");
    }
    if (q->after_seq != 0) {
        APPEND(" AND seq > $8");
    }
    if (xid_min >= 0) {
        APPEND(" AND xid >= $10");
    }
    APPEND(q->ascending ? " ORDER BY seq ASC" : " ORDER BY time_us DESC, seq DESC");
    APPEND(" LIMIT $9");
#undef APPEND
}

/* Runs q with the columns cols (AUDIT_COLS first) and the xid bound (see build_query). */
static bp_err
run_query(struct pg_store *st, const struct bp_audit_query *q, const char *cols, int64_t xid_min, PGresult **out)
{
    struct bp_pg_params p = {0};
    char sql[900];

    /* bp_pg__audit_explain asks for the plan of exactly this statement. */
    build_query(q, cols, xid_min, sql + (st->explain ? 8 : 0), sizeof(sql) - 8);
    if (st->explain) {
        memcpy(sql, "EXPLAIN ", 8);
    }
    bp_pg__p_int(&p, q->since_us);
    bp_pg__p_int(&p, q->until_us);
    bp_pg__p_text(&p, q->category);
    bp_pg__p_text(&p, q->instance_id);
    bp_pg__p_text(&p, q->credential);
    bp_pg__p_text(&p, q->action);
    bp_pg__p_int(&p, q->status);
    bp_pg__p_int(&p, q->after_seq);
    /* LIMIT NULL is no limit. */
    if (q->limit == 0) {
        bp_pg__p_text(&p, NULL);
        p.types[p.n - 1] = 20; /* int8 */
    } else {
        bp_pg__p_int(&p, q->limit > INT64_MAX ? INT64_MAX : (int64_t)q->limit);
    }
    bp_pg__p_int(&p, xid_min);
    return bp_pg__run(st, sql, &p, out);
}

bp_err
bp_pg__audit_explain(struct bp_store *s, const struct bp_audit_query *q, int64_t follow_xmin, char *out, size_t cap)
{
    bool follow = follow_xmin >= 0;
    struct pg_store *st = bp_pg__of(s);
    struct bp_audit_query fq = *q;
    PGresult *res = NULL;
    size_t off = 0;
    bp_err err;

    if (follow) {
        fq.ascending = true;
        fq.limit = 1000;
    }
    /* The statement exactly as the query or a follow page sends it, with the same parameters,
     * behind EXPLAIN. */
    st->explain = true;
    err = run_query(st, &fq, follow ? AUDIT_COLS ", xid" : AUDIT_COLS, follow ? follow_xmin : -1, &res);
    st->explain = false;
    out[0] = '\0';
    for (int i = 0; err == BP_OK && i < bp_pq.PQntuples(res); i++) {
        int w = snprintf(out + off, cap - off, "%s\n", bp_pq.PQgetvalue(res, i, 0));
        off += w > 0 && (size_t)w < cap - off ? (size_t)w : 0;
    }
    bp_pq.PQclear(res);
    return err;
}

static void
collect(PGresult *res, struct bp_audit_rec **out, size_t *out_n)
{
    int n = bp_pq.PQntuples(res);
    struct bp_audit_rec *recs = bp_calloc(n > 0 ? (size_t)n : 1, sizeof(*recs));

    for (int i = 0; i < n; i++) {
        read_rec(res, i, &recs[i]);
    }
    *out = recs;
    *out_n = (size_t)n;
}

static bp_err
pg_audit_query(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *out_n)
{
    PGresult *res = NULL;
    bp_err err = run_query(bp_pg__of(s), q, AUDIT_COLS, -1, &res);

    if (err == BP_OK) {
        collect(res, out, out_n);
    }
    bp_pq.PQclear(res);
    return err;
}

/* ---- following ---- */

#define XMIN_SQL "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"

static bp_err
current_xmin(struct pg_store *st, int64_t *out)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, XMIN_SQL, NULL, &res);

    if (err == BP_OK) {
        *out = bp_pg__col_int(res, 0, 0);
    }
    bp_pq.PQclear(res);
    return err;
}

static int
cmp_seen(const void *a, const void *b)
{
    int64_t x = ((const struct bp_audit_seen *)a)->seq;
    int64_t y = ((const struct bp_audit_seen *)b)->seq;
    return x < y ? -1 : x > y;
}

/* The entries up to n_sorted are sorted (seen_settle); those added since, by this call, are not. */
static bool
seen_has(const struct bp_audit_cursor *c, int64_t seq)
{
    struct bp_audit_seen key = {.seq = seq};

    if (c->n_sorted > 0 && bsearch(&key, c->seen, c->n_sorted, sizeof(*c->seen), cmp_seen) != NULL) {
        return true;
    }
    for (size_t i = c->n_sorted; i < c->n_seen; i++) {
        if (c->seen[i].seq == seq) {
            return true;
        }
    }
    return false;
}

static void
seen_add(struct bp_audit_cursor *c, int64_t seq, int64_t xid)
{
    if (c->n_seen == c->cap_seen) {
        c->cap_seen = c->cap_seen == 0 ? 64 : c->cap_seen * 2;
        c->seen = bp_realloc(c->seen, c->cap_seen * sizeof(*c->seen));
    }
    c->seen[c->n_seen++] = (struct bp_audit_seen){.seq = seq, .xid = xid};
}

/* Sorted again after adding, and without the rows the mark has passed. */
static void
seen_settle(struct bp_audit_cursor *c)
{
    size_t k = 0;

    for (size_t i = 0; i < c->n_seen; i++) {
        if (c->seen[i].xid >= c->xmin) {
            c->seen[k++] = c->seen[i];
        }
    }
    c->n_seen = k;
    /* Not with no entries: seen is still NULL then, which qsort must not be given. */
    if (c->n_seen > 1) {
        qsort(c->seen, c->n_seen, sizeof(*c->seen), cmp_seen);
    }
    c->n_sorted = c->n_seen;
}

/* The listing, the low-water mark and every matching row at or above it, in one snapshot
 * (REPEATABLE READ): those rows are handed out now or deliberately not (older than the listing's
 * newest), and either way never again. */
static bp_err
pg_audit_follow(struct bp_store *s, struct bp_audit_cursor *c, struct bp_audit_rec **out, size_t *out_n)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_audit_query all = c->q;
    PGresult *res = NULL;
    bp_err err = bp_pg__exec(st, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");

    if (err != BP_OK) {
        return err;
    }
    err = current_xmin(st, &c->xmin);
    if (err == BP_OK) {
        err = run_query(st, &c->q, AUDIT_COLS, -1, &res);
    }
    if (err == BP_OK) {
        collect(res, out, out_n);
        bp_pq.PQclear(res);
        res = NULL;
        all.limit = 0;
        err = run_query(st, &all, "seq, xid", c->xmin, &res);
        if (err != BP_OK) {
            bp_audit_recs_free(*out, *out_n);
        }
    }
    if (err == BP_OK) {
        for (int i = 0; i < bp_pq.PQntuples(res); i++) {
            seen_add(c, bp_pg__col_int(res, i, 0), bp_pg__col_int(res, i, 1));
        }
        seen_settle(c);
    }
    bp_pq.PQclear(res);
    bp_pg__rollback(st); /* read only: nothing to commit */
    return err;
}

static bp_err
pg_audit_follow_next(struct bp_store *s, struct bp_audit_cursor *c, size_t max, struct bp_audit_rec **out,
                     size_t *out_n, bool *out_more)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_audit_query q = c->q;
    struct bp_audit_rec *recs = NULL;
    PGresult *res = NULL;
    size_t n = 0;
    int rows;
    bp_err err = BP_OK;

    /* The mark a round ends with is taken before its first page: any row the round's pages do
     * not see belongs to a transaction running then, at or above it. */
    if (!c->in_round) {
        err = current_xmin(st, &c->round_xmin);
        if (err != BP_OK) {
            return err;
        }
        c->in_round = true;
        c->after_seq = 0;
    }
    q.after_seq = c->after_seq;
    q.ascending = true;
    q.limit = max;
    err = run_query(st, &q, AUDIT_COLS ", xid", c->xmin, &res);
    if (err != BP_OK) {
        return err;
    }
    rows = bp_pq.PQntuples(res);
    recs = bp_calloc(rows > 0 ? (size_t)rows : 1, sizeof(*recs));
    for (int i = 0; i < rows; i++) {
        int64_t seq = bp_pg__col_int(res, i, 0);
        c->after_seq = seq;
        if (!seen_has(c, seq)) {
            read_rec(res, i, &recs[n++]);
            seen_add(c, seq, bp_pg__col_int(res, i, XID_COL));
        }
    }
    bp_pq.PQclear(res);
    *out_more = (size_t)rows == max;
    if (!*out_more) {
        /* Round over: every row of the transactions below round_xmin has been seen. */
        c->xmin = c->round_xmin;
        c->in_round = false;
        c->after_seq = 0;
    }
    seen_settle(c);
    *out = recs;
    *out_n = n;
    return BP_OK;
}

/* ---- the trail (store_chain.c) ---- */

/* Creates the head when missing and, in the same statement, takes its row lock (an upsert that
 * updates locks the row as FOR UPDATE would), held to the end of the transaction: another node
 * appending to the same chain waits here. */
static bp_err
pg_lock_head(struct bp_store *s, const char *chain, int64_t *out_n, char head[BP_AUDIT_HEX])
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    bp_err err;

    bp_pg__p_text(&p, chain);
    err = bp_pg__run(st,
                     "INSERT INTO audit_chains (chain, n, head, updated_us) VALUES ($1, 0, '', 0)"
                     " ON CONFLICT (chain) DO UPDATE SET chain = EXCLUDED.chain RETURNING n, head",
                     &p, &res);
    if (err == BP_OK) {
        *out_n = bp_pg__col_int(res, 0, 0);
        bp_store__hex_col(head, bp_pq.PQgetvalue(res, 0, 1));
    }
    bp_pq.PQclear(res);
    return err;
}

static bp_err
pg_set_head(struct bp_store *s, const char *chain, int64_t n, const char head[BP_AUDIT_HEX], int64_t now_us)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, chain);
    bp_pg__p_int(&p, n);
    bp_pg__p_text(&p, head);
    bp_pg__p_int(&p, now_us);
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO audit_chains (chain, n, head, updated_us) VALUES ($1, $2, $3, $4)"
                      " ON CONFLICT (chain) DO UPDATE SET n = EXCLUDED.n, head = EXCLUDED.head,"
                      " updated_us = EXCLUDED.updated_us",
                      &p, NULL);
}

static bp_err
pg_known(struct bp_store *s, const struct bp_audit_rec *recs, size_t n, bool *known)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    struct arr ids;
    PGresult *res = NULL;
    bp_err err;

    bp_buf_init(&ids.b, SIZE_MAX);
    for (size_t i = 0; i < n; i++) {
        arr_text(&ids, recs[i].id);
        known[i] = false;
    }
    bp_buf_append(&ids.b, "}", 1);
    bp_pg__p_text(&p, ids.b.data);
    err = bp_pg__run(st, "SELECT id FROM audit_log WHERE id = ANY($1::text[])", &p, &res);
    for (int row = 0; err == BP_OK && row < bp_pq.PQntuples(res); row++) {
        const char *id = bp_pq.PQgetvalue(res, row, 0);
        for (size_t i = 0; i < n; i++) {
            if (recs[i].id != NULL && strcmp(recs[i].id, id) == 0) {
                known[i] = true;
            }
        }
    }
    bp_pq.PQclear(res);
    bp_buf_cleanup(&ids.b);
    return err;
}

static void
read_head(const PGresult *res, int row, void *out_v)
{
    struct bp_audit_head *h = out_v;

    h->chain = bp_pg__col_dup(res, row, 0);
    h->n = bp_pg__col_int(res, row, 1);
    bp_store__hex_col(h->head, bp_pq.PQgetvalue(res, row, 2));
    h->updated_us = bp_pg__col_int(res, row, 3);
}

static bp_err
pg_heads(struct bp_store *s, struct bp_audit_head **out, size_t *out_n)
{
    void *heads = NULL;
    bp_err err = bp_pg__collect(bp_pg__of(s), "SELECT chain, n, head, updated_us FROM audit_chains ORDER BY chain",
                                NULL, sizeof(struct bp_audit_head), read_head, &heads, out_n);

    if (err == BP_OK) {
        *out = heads;
    }
    return err;
}

static bp_err
pg_page(struct bp_store *s, const char *chain, int64_t after_n, size_t limit, struct bp_audit_rec **out,
        size_t *out_n)
{
    struct bp_pg_params p = {0};
    void *recs = NULL;
    bp_err err;

    bp_pg__p_text(&p, chain);
    bp_pg__p_int(&p, after_n);
    bp_pg__p_int(&p, (int64_t)limit);
    err = bp_pg__collect(bp_pg__of(s),
                         "SELECT " AUDIT_COLS " FROM audit_log WHERE chain = $1 AND chain_n > $2"
                         " ORDER BY chain_n LIMIT $3",
                         &p, sizeof(struct bp_audit_rec), read_rec, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

/* One bigint from a one-row SELECT (NULL reads as 0). */
static bp_err
one_int(struct pg_store *st, const char *sql, const struct bp_pg_params *p, int64_t *out)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, sql, p, &res);

    *out = err == BP_OK && bp_pq.PQntuples(res) > 0 ? bp_pg__col_int(res, 0, 0) : 0;
    bp_pq.PQclear(res);
    return err;
}

static bp_err
pg_start(struct bp_store *s, const char *chain, int64_t since_us, int64_t *out_n)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, chain);
    bp_pg__p_int(&p, since_us);
    return one_int(bp_pg__of(s), "SELECT min(chain_n) FROM audit_log WHERE chain = $1 AND time_us >= $2", &p, out_n);
}

static bp_err
pg_hash_at(struct bp_store *s, const char *chain, int64_t n, char hash[BP_AUDIT_HEX], bool *found)
{
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    bp_err err;

    bp_pg__p_text(&p, chain);
    bp_pg__p_int(&p, n);
    err = bp_pg__run(bp_pg__of(s), "SELECT hash FROM audit_log WHERE chain = $1 AND chain_n = $2", &p, &res);
    *found = err == BP_OK && bp_pq.PQntuples(res) > 0;
    if (*found) {
        bp_store__hex_col(hash, bp_pq.PQgetisnull(res, 0, 0) ? NULL : bp_pq.PQgetvalue(res, 0, 0));
    }
    bp_pq.PQclear(res);
    return err;
}

static bp_err
pg_count_upto(struct bp_store *s, const char *chain, int64_t upto_n, int64_t *out)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, chain);
    bp_pg__p_int(&p, upto_n);
    return one_int(bp_pg__of(s), "SELECT count(*) FROM audit_log WHERE chain = $1 AND chain_n <= $2", &p, out);
}

static bp_err
pg_strays(struct bp_store *s, struct bp_audit_strays *out)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, "SELECT max_seq, n FROM audit_unchained", NULL, &res);

    if (err == BP_OK && bp_pq.PQntuples(res) > 0) {
        out->legacy_max_seq = bp_pg__col_int(res, 0, 0);
        out->legacy_n = bp_pg__col_int(res, 0, 1);
    }
    bp_pq.PQclear(res);
    res = NULL;
    if (err != BP_OK) {
        return err;
    }
    bp_pg__p_int(&p, out->legacy_max_seq);
    err = bp_pg__run(st, "SELECT count(*), coalesce(min(seq), 0) FROM audit_log WHERE chain IS NULL AND seq > $1",
                     &p, &res);
    if (err == BP_OK) {
        out->unchained = bp_pg__col_int(res, 0, 0);
        out->first_unchained_seq = bp_pg__col_int(res, 0, 1);
    }
    bp_pq.PQclear(res);
    res = NULL;
    if (err != BP_OK) {
        return err;
    }
    err = bp_pg__run(st,
                     "SELECT chain FROM audit_log WHERE chain IS NOT NULL"
                     " AND chain NOT IN (SELECT chain FROM audit_chains) LIMIT 1",
                     NULL, &res);
    if (err == BP_OK && bp_pq.PQntuples(res) > 0) {
        out->headless_chain = bp_pg__col_dup(res, 0, 0);
    }
    bp_pq.PQclear(res);
    return err;
}

/* Runs a chunked DELETE (whose LIMIT is its last parameter, PURGE_CHUNK) until a chunk comes back
 * short, each chunk its own (autocommit) transaction. */
static bp_err
delete_chunks(struct pg_store *st, const char *sql, const struct bp_pg_params *p, int64_t *out_deleted)
{
    int64_t changes = PURGE_CHUNK;
    bp_err err = BP_OK;

    *out_deleted = 0;
    while (err == BP_OK && changes == PURGE_CHUNK) {
        PGresult *res = NULL;
        err = bp_pg__run(st, sql, p, &res);
        if (err == BP_OK) {
            changes = bp_pg__changes(res);
            *out_deleted += changes;
        }
        bp_pq.PQclear(res);
    }
    return err;
}

static bp_err
pg_delete_upto(struct bp_store *s, const char *chain, int64_t upto_n, int64_t *out_deleted)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, chain);
    bp_pg__p_int(&p, upto_n);
    bp_pg__p_int(&p, PURGE_CHUNK);
    return delete_chunks(bp_pg__of(s),
                         "DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log"
                         " WHERE chain = $1 AND chain_n <= $2 ORDER BY chain_n LIMIT $3)",
                         &p, out_deleted);
}

static bp_err
pg_delete_legacy(struct bp_store *s, int64_t before_us, int64_t *out_deleted)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, before_us);
    bp_pg__p_int(&p, PURGE_CHUNK);
    return delete_chunks(bp_pg__of(s),
                         "DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log"
                         " WHERE chain IS NULL AND time_us < $1 ORDER BY time_us LIMIT $2)",
                         &p, out_deleted);
}

static bp_err
pg_purge_lock(struct bp_store *s, bool *out_got)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(bp_pg__of(s), "SELECT pg_try_advisory_lock(" PURGE_LOCK ")", NULL, &res);

    *out_got = err == BP_OK && bp_pg__col_bool(res, 0, 0);
    bp_pq.PQclear(res);
    return err;
}

static void
pg_purge_unlock(struct bp_store *s)
{
    /* A lost connection took the lock with it; otherwise give it back. */
    if (bp_pg__connected(s)) {
        (void)bp_pg__run(bp_pg__of(s), "SELECT pg_advisory_unlock(" PURGE_LOCK ")", NULL, NULL);
    }
}

static bp_err
pg_checkpoint_put(struct bp_store *s, const struct bp_audit_checkpoint *c)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, c->id);
    bp_pg__p_int(&p, c->time_us);
    bp_pg__p_text(&p, c->kind);
    bp_pg__p_text(&p, c->body);
    bp_pg__p_text(&p, c->signature);
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO audit_checkpoints (id, time_us, kind, body, signature) VALUES ($1, $2, $3, $4, $5)",
                      &p, NULL);
}

static void
read_checkpoint(const PGresult *res, int row, void *out_v)
{
    struct bp_audit_checkpoint *c = out_v;

    c->id = bp_pg__col_dup(res, row, 0);
    c->time_us = bp_pg__col_int(res, row, 1);
    c->kind = bp_pg__col_dup(res, row, 2);
    c->body = bp_pg__col_dup(res, row, 3);
    c->signature = bp_pg__col_dup(res, row, 4);
}

static bp_err
pg_checkpoint_list(struct bp_store *s, int64_t since_us, const char *kind, size_t limit,
                   struct bp_audit_checkpoint **out, size_t *out_n)
{
    struct bp_pg_params p = {0};
    void *rows = NULL;
    bp_err err;

    bp_pg__p_int(&p, since_us);
    bp_pg__p_text(&p, kind);
    bp_pg__p_int(&p, limit > 0 ? (int64_t)limit : INT64_MAX);
    err = bp_pg__collect(bp_pg__of(s),
                         "SELECT id, time_us, kind, body, signature FROM audit_checkpoints"
                         " WHERE time_us >= $1 AND ($2::text IS NULL OR kind = $2) ORDER BY time_us, id LIMIT $3",
                         &p, sizeof(struct bp_audit_checkpoint), read_checkpoint, &rows, out_n);
    if (err == BP_OK) {
        *out = rows;
    }
    return err;
}

static bp_err
pg_checkpoint_delete(struct bp_store *s, const char *id)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "DELETE FROM audit_checkpoints WHERE id = $1", &p);
}

static bp_err
pg_set_places(struct bp_store *s, const struct bp_audit_rec *recs, size_t n)
{
    struct arr a[5];
    struct bp_pg_params p = {0};
    bp_err err;

    for (size_t f = 0; f < 5; f++) {
        bp_buf_init(&a[f].b, SIZE_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        arr_int(&a[0], recs[i].seq);
        arr_text(&a[1], bp_store_audit_chain_of(&recs[i]));
        arr_int(&a[2], recs[i].chain_n);
        arr_text(&a[3], recs[i].prev_hash);
        arr_text(&a[4], recs[i].hash);
    }
    for (size_t f = 0; f < 5; f++) {
        bp_buf_append(&a[f].b, n == 0 ? "{}" : "}", n == 0 ? 2 : 1);
        bp_pg__p_text(&p, a[f].b.data);
    }
    err = bp_pg__run(bp_pg__of(s),
                     "UPDATE audit_log SET chain = u.chain, chain_n = u.chain_n, prev_hash = u.prev_hash,"
                     " hash = u.hash FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::text[])"
                     " AS u(seq, chain, chain_n, prev_hash, hash) WHERE audit_log.seq = u.seq",
                     &p, NULL);
    for (size_t f = 0; f < 5; f++) {
        bp_buf_cleanup(&a[f].b);
    }
    return err;
}

static bp_err
pg_set_unchained(struct bp_store *s, int64_t max_seq, int64_t n)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, max_seq);
    bp_pg__p_int(&p, n);
    return bp_pg__run(bp_pg__of(s), "UPDATE audit_unchained SET max_seq = $1, n = $2", &p, NULL);
}

const struct bp_store_trail_ops bp_pg__trail_ops = {
    .lock_head = pg_lock_head,
    .set_head = pg_set_head,
    .known = pg_known,
    .insert = pg_trail_insert,
    .heads = pg_heads,
    .page = pg_page,
    .start = pg_start,
    .hash_at = pg_hash_at,
    .count_upto = pg_count_upto,
    .strays = pg_strays,
    .delete_upto = pg_delete_upto,
    .delete_legacy = pg_delete_legacy,
    .purge_lock = pg_purge_lock,
    .purge_unlock = pg_purge_unlock,
    .checkpoint_put = pg_checkpoint_put,
    .checkpoint_list = pg_checkpoint_list,
    .checkpoint_delete = pg_checkpoint_delete,
    .append_fast = pg_append_fast,
    .set_places = pg_set_places,
    .set_unchained = pg_set_unchained,
};

const struct bp_store_audit_ops bp_pg__audit_ops = {
    .insert = pg_audit_insert,
    .query = pg_audit_query,
    .follow = pg_audit_follow,
    .follow_next = pg_audit_follow_next,
};
