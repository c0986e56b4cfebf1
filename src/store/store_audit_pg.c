/* Audit log on PostgreSQL (schema v3, table audit_log). The same contract as
 * store_audit_sqlite.c.
 *
 * Inserts: one transaction per call (unless the caller already opened one with bp_store_begin,
 * so a CLI change and its record commit together), through a statement prepared once per
 * connection; seq comes back from RETURNING. A record is durable once COMMIT returns (the
 * server's synchronous_commit decides what that means; its default, on, waits for the WAL flush).
 * PostgreSQL refuses text that is not valid UTF-8 where SQLite stores any bytes, so such text is
 * stored with the offending bytes replaced by '?' (as the spool file does) rather than losing the
 * record.
 *
 * Queries: the WHERE clause is assembled from constant fragments, every value a typed parameter
 * (a parameter the text leaves out is simply unused). Newest first is ORDER BY time_us DESC,
 * seq DESC, which each audit_*_time index ((filter,) time_us, seq) serves backwards. */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "store/pg-int.h"

/* Rows deleted per purge statement, so that a large backlog never holds locks for long. */
#define PURGE_CHUNK 10000

#define AUDIT_COLS                                                                                  \
    "seq, time_us, request_id, actor_type, actor_id, actor_name, instance_id, method, route,"      \
    " path, action, category, core_status, status, latency_us, client_addr, resource_id, error"

#define INSERT_SQL                                                                                  \
    "INSERT INTO audit_log (time_us, request_id, actor_type, actor_id, actor_name, instance_id,"  \
    " method, route, path, action, category, core_status, status, latency_us, client_addr,"      \
    " resource_id, error) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"    \
    " RETURNING seq"

#define N_TEXT 14 /* text fields of one record that may need a UTF-8 repair */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s starts an invalid one. */
static size_t
utf8_seq(const unsigned char *s)
{
    size_t n;
    unsigned cp;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

/* text itself when it is valid UTF-8, else an allocated copy with each bad byte as '?', recorded
 * in *fix for the caller to free. */
static const char *
utf8_ok(const char *text, char **fix)
{
    const unsigned char *p = (const unsigned char *)text;
    char *copy;
    size_t o = 0;

    *fix = NULL;
    if (text == NULL) {
        return NULL;
    }
    while (*p != '\0' && utf8_seq(p) > 0) {
        p += utf8_seq(p);
    }
    if (*p == '\0') {
        return text;
    }
    copy = bp_strdup(text);
    p = (const unsigned char *)text;
    while (*p != '\0') {
        size_t n = utf8_seq(p);
        if (n == 0) {
            copy[o++] = '?';
            p++;
        } else {
            memcpy(copy + o, p, n);
            o += n;
            p += n;
        }
    }
    copy[o] = '\0';
    *fix = copy;
    return copy;
}

static void
bind_rec(struct bp_pg_params *p, const struct bp_audit_rec *r, char *fixes[N_TEXT])
{
    /* actor_type is NOT NULL in the schema; a record without one is a caller bug, but losing the
     * record over it would be worse than naming it. */
    const char *texts[N_TEXT] = {r->request_id, r->actor_type != NULL ? r->actor_type : "anonymous",
                                 r->actor_id,   r->actor_name,
                                 r->instance_id, r->method,
                                 r->route,      r->path,
                                 r->action,     r->category,
                                 NULL,          r->client_addr,
                                 r->resource_id, r->error};

    bp_pg__p_int(p, r->time_us);
    for (size_t i = 0; i < 10; i++) {
        bp_pg__p_text(p, utf8_ok(texts[i], &fixes[i]));
    }
    bp_pg__p_int(p, r->core_status);
    bp_pg__p_int(p, r->status);
    bp_pg__p_int(p, r->latency_us);
    for (size_t i = 11; i < N_TEXT; i++) {
        bp_pg__p_text(p, utf8_ok(texts[i], &fixes[i]));
    }
}

static bp_err
insert_all(struct pg_store *st, struct bp_audit_rec *recs, size_t n)
{
    bp_err err = BP_OK;

    if (!st->audit_prepared) {
        err = bp_pg__prepare(st, "bp_audit_insert", INSERT_SQL);
        st->audit_prepared = err == BP_OK;
    }
    for (size_t i = 0; err == BP_OK && i < n; i++) {
        struct bp_pg_params p = {0};
        char *fixes[N_TEXT] = {0};
        PGresult *res = NULL;

        bind_rec(&p, &recs[i], fixes);
        err = bp_pg__run_prepared(st, "bp_audit_insert", &p, &res);
        if (err == BP_OK) {
            recs[i].seq = bp_pg__col_int(res, 0, 0);
        }
        PQclear(res);
        for (size_t k = 0; k < N_TEXT; k++) {
            bp_free(fixes[k]);
        }
    }
    return err;
}

static bp_err
pg_audit_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n)
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
        err = insert_all(st, recs, n);
        err = bp_pg__tx_end(st, own, err);
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
}

/* The SQL text of q: only constant fragments, each naming its numbered parameter. */
static void
build_query(const struct bp_audit_query *q, char *sql, size_t cap)
{
    size_t off = 0;

#define APPEND(text)                                                                                \
    do {                                                                                            \
        int w_ = snprintf(sql + off, cap - off, "%s", (text));                                      \
        BP_BUG_ON(w_ < 0 || (size_t)w_ >= cap - off);                                               \
        off += (size_t)w_;                                                                          \
    } while (0)

    APPEND("SELECT " AUDIT_COLS " FROM audit_log WHERE TRUE");
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
    APPEND(q->ascending ? " ORDER BY seq ASC" : " ORDER BY time_us DESC, seq DESC");
    APPEND(" LIMIT $9");
#undef APPEND
}

static bp_err
pg_audit_query(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *out_n)
{
    struct bp_pg_params p = {0};
    void *recs = NULL;
    char sql[768];
    bp_err err;

    build_query(q, sql, sizeof(sql));
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
    err = bp_pg__collect(bp_pg__of(s), sql, &p, sizeof(struct bp_audit_rec), read_rec, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
pg_audit_purge(struct bp_store *s, int64_t before_us, int64_t *out_deleted)
{
    struct pg_store *st = bp_pg__of(s);
    int64_t total = 0;
    int64_t changes = PURGE_CHUNK;
    bp_err err = BP_OK;

    /* The oldest rows by time, PURGE_CHUNK at a time, each chunk its own (autocommit)
     * transaction. */
    while (err == BP_OK && changes == PURGE_CHUNK) {
        struct bp_pg_params p = {0};
        PGresult *res = NULL;
        bp_pg__p_int(&p, before_us);
        bp_pg__p_int(&p, PURGE_CHUNK);
        err = bp_pg__run(st,
                         "DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log"
                         " WHERE time_us < $1 ORDER BY time_us LIMIT $2)",
                         &p, &res);
        if (err == BP_OK) {
            changes = bp_pg__changes(res);
            total += changes;
        }
        PQclear(res);
    }
    if (err == BP_OK && out_deleted != NULL) {
        *out_deleted = total;
    }
    return err;
}

const struct bp_store_audit_ops bp_pg__audit_ops = {
    .insert = pg_audit_insert,
    .query = pg_audit_query,
    .purge = pg_audit_purge,
};
