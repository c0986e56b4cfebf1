/* Audit log on SQLite (schema v3, table audit_log).
 *
 * Inserts: one transaction per call (unless the caller already opened one with bp_store_begin,
 * so a CLI change and its record commit together); seq is the rowid SQLite assigns. Before a
 * transaction of our own the connection is switched to synchronous=FULL: a record is reported
 * durable once its commit returns, and under WAL with synchronous=NORMAL a power loss could
 * still take the last commits away. Group commit makes the extra fsync per batch cheap.
 *
 * Queries: the WHERE clause is assembled from constant fragments, every value bound. Newest
 * first means ORDER BY time_us DESC, seq DESC: each audit_*_time index ends in time_us and,
 * implicitly, the rowid (seq), so an equality filter plus that order walks one index backwards
 * and stops after `limit` rows without sorting. --follow asks for seq > after_seq ascending,
 * which is a rowid range. */
#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "store/sqlite-int.h"

/* Rows deleted per purge transaction, so the writer's commits get the lock between chunks. */
#define PURGE_CHUNK 10000

#define AUDIT_COLS                                                                                 \
    "seq, time_us, request_id, actor_type, actor_id, actor_name, instance_id, method, route,"     \
    " path, action, category, core_status, status, latency_us, client_addr, resource_id, error,"  \
    " id, node, repeat_count, last_time_us, replayed, chain, chain_n, prev_hash, hash"

#define INSERT_COLS 26

/* Binds r as the row whose first parameter is number base + 1. */
static void
bind_rec(sqlite3_stmt *stmt, int base, const struct bp_audit_rec *r)
{
    sqlite3_bind_int64(stmt, base + 1, r->time_us);
    bp_sq__bind_text(stmt, base + 2, r->request_id);
    /* actor_type is NOT NULL in the schema; a record without one is a caller bug, but losing the
     * record over it would be worse than naming it. */
    bp_sq__bind_text(stmt, base + 3, r->actor_type != NULL ? r->actor_type : "anonymous");
    bp_sq__bind_text(stmt, base + 4, r->actor_id);
    bp_sq__bind_text(stmt, base + 5, r->actor_name);
    bp_sq__bind_text(stmt, base + 6, r->instance_id);
    bp_sq__bind_text(stmt, base + 7, r->method);
    bp_sq__bind_text(stmt, base + 8, r->route);
    bp_sq__bind_text(stmt, base + 9, r->path);
    bp_sq__bind_text(stmt, base + 10, r->action);
    bp_sq__bind_text(stmt, base + 11, r->category);
    sqlite3_bind_int(stmt, base + 12, r->core_status);
    sqlite3_bind_int(stmt, base + 13, r->status);
    sqlite3_bind_int64(stmt, base + 14, r->latency_us);
    bp_sq__bind_text(stmt, base + 15, r->client_addr);
    bp_sq__bind_text(stmt, base + 16, r->resource_id);
    bp_sq__bind_text(stmt, base + 17, r->error);
    bp_sq__bind_text(stmt, base + 18, r->id);
    bp_sq__bind_text(stmt, base + 19, r->node);
    sqlite3_bind_int64(stmt, base + 20, r->repeat_count > 0 ? r->repeat_count : 1);
    if (r->last_time_us > 0) {
        sqlite3_bind_int64(stmt, base + 21, r->last_time_us);
    } else {
        sqlite3_bind_null(stmt, base + 21);
    }
    sqlite3_bind_int(stmt, base + 22, r->replayed ? 1 : 0);
    bp_sq__bind_text(stmt, base + 23, bp_store_audit_chain_of(r));
    sqlite3_bind_int64(stmt, base + 24, r->chain_n);
    bp_sq__bind_text(stmt, base + 25, r->prev_hash);
    bp_sq__bind_text(stmt, base + 26, r->hash);
}

/* Rows per INSERT statement, largest first: a batch is inserted as few statements as these
 * sizes make (100 = 64 + 16 + 4 * 5), each statement kept once per connection (slots
 * BP_SQ_KEPT_AUDIT_INSERT + which). One
 * statement per row cost the writer, per record, the statement's start and halt (its cursors on
 * the table and seven indexes, its statement journal) and an update of sqlite_sequence. 64 rows
 * are 1,664 parameters, under SQLite's default limit of 32,766. */
static const int insert_rows[] = {64, 16, 4, 1};

static bp_err
insert_stmt(struct sqlite_store *st, size_t which, sqlite3_stmt **out)
{
    static const char head[] = "INSERT INTO audit_log (time_us, request_id, actor_type, actor_id,"
                               " actor_name, instance_id, method, route, path, action, category,"
                               " core_status, status, latency_us, client_addr, resource_id, error, id, node,"
                               " repeat_count, last_time_us, replayed, chain, chain_n, prev_hash, hash)"
                               " VALUES ";
    static const char row[] = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    static const char tail[] = " ON CONFLICT (id) DO NOTHING";
    enum bp_sq_kept slot = (enum bp_sq_kept)(BP_SQ_KEPT_AUDIT_INSERT + which);
    char sql[sizeof(head) + 64 * sizeof(row) + sizeof(tail)];
    size_t off = 0;

    BP_BUG_ON(which >= sizeof(insert_rows) / sizeof(insert_rows[0]) || insert_rows[which] > 64 ||
              slot >= BP_SQ_KEPT_N);
    if (st->kept[slot] != NULL) {
        /* Prepared already: the text is not read. */
        return bp_sq__kept(st, slot, "", out);
    }
    memcpy(sql, head, sizeof(head) - 1);
    off = sizeof(head) - 1;
    for (int i = 0; i < insert_rows[which]; i++) {
        if (i > 0) {
            sql[off++] = ',';
        }
        memcpy(sql + off, row, sizeof(row) - 1);
        off += sizeof(row) - 1;
    }
    memcpy(sql + off, tail, sizeof(tail));
    return bp_sq__kept(st, slot, sql, out);
}

/* After a statement that inserted `changes` of its k rows: each record's seq. Within the write
 * transaction nobody else inserts, and with AUTOINCREMENT every new row's seq is above all
 * existing ones. When none were skipped, the rows got consecutive seqs in their order, ending
 * at last_insert_rowid. Otherwise (a record stored before: a spool imported again) a skipped
 * row may still have used up a seq, so the inserted rows are read back instead: they are the
 * `changes` newest, matched to the records by id; the others keep no seq. */
static bp_err
assign_seqs(struct sqlite_store *st, struct bp_audit_rec *recs, size_t k, int changes)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err;
    int rc;

    if ((size_t)changes == k) {
        int64_t last = sqlite3_last_insert_rowid(st->db);
        for (size_t i = 0; i < k; i++) {
            recs[i].seq = last - (int64_t)(k - 1 - i);
        }
        return BP_OK;
    }
    for (size_t i = 0; i < k; i++) {
        recs[i].seq = 0;
    }
    if (changes == 0) {
        return BP_OK;
    }
    err = bp_sq__prepare(st, "SELECT id, seq FROM audit_log ORDER BY seq DESC LIMIT ?1", &stmt);
    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int(stmt, 1, changes);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(stmt, 0);
        for (size_t i = 0; id != NULL && i < k; i++) {
            if (recs[i].id != NULL && strcmp(recs[i].id, id) == 0) {
                recs[i].seq = sqlite3_column_int64(stmt, 1);
                break;
            }
        }
    }
    err = rc == SQLITE_DONE ? BP_OK : bp_sq__map_rc(st, rc);
    sqlite3_finalize(stmt);
    return err;
}

/* The new records (store_chain.c decided which, and their places) in as few statements as
 * insert_rows allows, inside the caller's transaction. */
static bp_err
sq_trail_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n)
{
    struct sqlite_store *st = bp_sq__of(s);
    bp_err err = BP_OK;

    for (size_t off = 0, which = 0; err == BP_OK && off < n;) {
        size_t k = (size_t)insert_rows[which];
        sqlite3_stmt *stmt = NULL;
        int changes = 0;

        if (n - off < k) {
            which++;
            continue;
        }
        err = insert_stmt(st, which, &stmt);
        for (size_t i = 0; err == BP_OK && i < k; i++) {
            bind_rec(stmt, (int)i * INSERT_COLS, &recs[off + i]);
        }
        if (err == BP_OK) {
            err = bp_sq__step_done(st, stmt, &changes);
        }
        /* The bindings point into recs, which the caller frees: put_kept drops them. */
        bp_sq__put_kept(stmt);
        if (err == BP_OK) {
            err = assign_seqs(st, recs + off, k, changes);
        }
        off += k;
    }
    return err;
}

static bp_err
sq_audit_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n, const bool *fresh)
{
    struct sqlite_store *st = bp_sq__of(s);
    bool own_tx = sqlite3_get_autocommit(st->db) != 0;
    bp_err err = BP_OK;

    if (n == 0) {
        return BP_OK;
    }
    /* Once per connection: it stays FULL (nothing switches it back), and re-running the pragma
     * per batch cost the writer a parse and an exec each time.
     * temp_store=MEMORY keeps each multi-row INSERT's statement journal (the pages it changes,
     * kept to undo it should a row fail) in memory. SQLite spills that journal to a temporary
     * file past 64 KiB, which a 64-row insert into the table and its seven indexes passes: the
     * writer then made as many pwrite calls to that file as to the WAL (strace, POST: 2.5 per
     * record). Its size is bounded by one statement's pages, and it is freed at the statement's
     * end.
     * cache_size=-1024 (KiB), half SQLite's default. The writer needs the pages where it
     * inserts: the right edge of the table and of the time and chain indexes, and in each of the
     * category, instance, credential and action indexes one leaf per value in use, some hundred
     * pages for traffic over a few dozen credentials and actions, plus a batch's new pages (up to
     * BP_AUDIT_BATCH_MAX records). With the default 2 MiB the cache filled with pages written once
     * and never read again, and they stayed resident: RSS after 400k records (one credential)
     * 23.3 MB, 22.2 MB with 1 MiB (21.1 MB with 256 KiB, too small for many credentials). */
    if (own_tx && !st->audit_sync_full) {
        err = bp_sq__exec(st, "PRAGMA synchronous=FULL");
        if (err == BP_OK) {
            err = bp_sq__exec(st, "PRAGMA temp_store=MEMORY");
        }
        if (err == BP_OK) {
            err = bp_sq__exec(st, "PRAGMA cache_size=-1024");
        }
        if (err != BP_OK) {
            return err;
        }
        st->audit_sync_full = true;
    }
    if (own_tx) {
        err = bp_sq__run_kept(st, BP_SQ_KEPT_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE");
        if (err != BP_OK) {
            return err;
        }
    }
    /* The write lock is held from here to COMMIT: nobody else appends to any chain meanwhile. */
    err = bp_store__chain_insert(s, recs, n, fresh);
    if (own_tx && err == BP_OK) {
        err = bp_sq__run_kept(st, BP_SQ_KEPT_COMMIT, "COMMIT");
    }
    if (err != BP_OK) {
        if (own_tx) {
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        }
        /* Nothing was stored: no record keeps a seq it does not have. */
        for (size_t i = 0; i < n; i++) {
            recs[i].seq = 0;
        }
    }
    return err;
}

static void
read_rec(sqlite3_stmt *stmt, void *out_v)
{
    struct bp_audit_rec *out = out_v;

    memset(out, 0, sizeof(*out));
    out->seq = sqlite3_column_int64(stmt, 0);
    out->time_us = sqlite3_column_int64(stmt, 1);
    out->request_id = bp_sq__col_dup(stmt, 2);
    out->actor_type = bp_sq__col_dup(stmt, 3);
    out->actor_id = bp_sq__col_dup(stmt, 4);
    out->actor_name = bp_sq__col_dup(stmt, 5);
    out->instance_id = bp_sq__col_dup(stmt, 6);
    out->method = bp_sq__col_dup(stmt, 7);
    out->route = bp_sq__col_dup(stmt, 8);
    out->path = bp_sq__col_dup(stmt, 9);
    out->action = bp_sq__col_dup(stmt, 10);
    out->category = bp_sq__col_dup(stmt, 11);
    out->core_status = sqlite3_column_int(stmt, 12);
    out->status = sqlite3_column_int(stmt, 13);
    out->latency_us = sqlite3_column_int64(stmt, 14);
    out->client_addr = bp_sq__col_dup(stmt, 15);
    out->resource_id = bp_sq__col_dup(stmt, 16);
    out->error = bp_sq__col_dup(stmt, 17);
    out->id = bp_sq__col_dup(stmt, 18);
    out->node = bp_sq__col_dup(stmt, 19);
    out->repeat_count = sqlite3_column_int64(stmt, 20);
    out->last_time_us = sqlite3_column_int64(stmt, 21); /* NULL reads as 0 */
    out->replayed = sqlite3_column_int(stmt, 22) != 0;
    out->chain = bp_sq__col_dup(stmt, 23);
    out->chain_n = sqlite3_column_int64(stmt, 24);
    bp_store__hex_col(out->prev_hash, (const char *)sqlite3_column_text(stmt, 25));
    bp_store__hex_col(out->hash, (const char *)sqlite3_column_text(stmt, 26));
}

static void
free_recs_v(void *recs, size_t n)
{
    bp_audit_recs_free(recs, n);
}

/* The SQL text of q: only constant fragments, each followed by its numbered parameter. */
static void
build_query(const struct bp_audit_query *q, char *sql, size_t cap)
{
    size_t off = 0;

#define APPEND(text)                                                                               \
    do {                                                                                           \
        int w_ = snprintf(sql + off, cap - off, "%s", (text));                                     \
        BP_BUG_ON(w_ < 0 || (size_t)w_ >= cap - off);                                              \
        off += (size_t)w_;                                                                         \
    } while (0)

    APPEND("SELECT " AUDIT_COLS " FROM audit_log WHERE 1");
    if (q->since_us != 0) {
        APPEND(" AND time_us >= ?1");
    }
    if (q->until_us != 0) {
        APPEND(" AND time_us < ?2");
    }
    if (q->category != NULL) {
        APPEND(" AND category = ?3");
    }
    if (q->instance_id != NULL) {
        APPEND(" AND instance_id = ?4");
    }
    if (q->credential != NULL) {
        APPEND(" AND actor_id = ?5");
    }
    if (q->action != NULL) {
        APPEND(" AND action = ?6");
    }
    if (q->status >= 1 && q->status <= 5) {
        APPEND(" AND status >= ?7 * 100 AND status < ?7 * 100 + 100");
    } else if (q->status != 0) {
        APPEND(" AND status = ?7");
    }
    if (q->after_seq != 0) {
        APPEND(" AND seq > ?8");
    }
    APPEND(q->ascending ? " ORDER BY seq ASC" : " ORDER BY time_us DESC, seq DESC");
    APPEND(" LIMIT ?9");
#undef APPEND
}

static bp_err
sq_audit_query(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    char sql[768];
    bp_err err;

    build_query(q, sql, sizeof(sql));
    err = bp_sq__prepare(st, sql, &stmt);
    if (err != BP_OK) {
        return err;
    }
    /* Parameters absent from the text are simply never read. */
    sqlite3_bind_int64(stmt, 1, q->since_us);
    sqlite3_bind_int64(stmt, 2, q->until_us);
    bp_sq__bind_text(stmt, 3, q->category);
    bp_sq__bind_text(stmt, 4, q->instance_id);
    bp_sq__bind_text(stmt, 5, q->credential);
    bp_sq__bind_text(stmt, 6, q->action);
    sqlite3_bind_int(stmt, 7, q->status);
    sqlite3_bind_int64(stmt, 8, q->after_seq);
    sqlite3_bind_int64(stmt, 9, q->limit == 0 ? -1 : (sqlite3_int64)q->limit);
    err = bp_sq__collect(st, stmt, sizeof(struct bp_audit_rec), read_rec, free_recs_v, &recs, out_n);
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

/* Commits are serialised and a record's seq (rowid) is taken inside its write transaction, so a
 * record with a higher seq never becomes visible before one with a lower seq: following by seq
 * misses nothing. The listing and the position come from one read transaction. */
static bp_err
sq_audit_follow(struct bp_store *s, struct bp_audit_cursor *c, struct bp_audit_rec **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__exec(st, "BEGIN");

    if (err != BP_OK) {
        return err;
    }
    err = bp_sq__prepare(st, "SELECT COALESCE(MAX(seq), 0) FROM audit_log", &stmt);
    if (err == BP_OK && sqlite3_step(stmt) == SQLITE_ROW) {
        c->after_seq = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        err = sq_audit_query(s, &c->q, out, out_n);
    }
    if (bp_sq__exec(st, "COMMIT") != BP_OK && err == BP_OK) {
        bp_audit_recs_free(*out, *out_n);
        err = BP_ERR_STORE;
    }
    return err;
}

static bp_err
sq_audit_follow_next(struct bp_store *s, struct bp_audit_cursor *c, size_t max, struct bp_audit_rec **out,
                     size_t *out_n, bool *out_more)
{
    struct bp_audit_query q = c->q;
    bp_err err;

    q.after_seq = c->after_seq;
    q.ascending = true;
    q.limit = max;
    err = sq_audit_query(s, &q, out, out_n);
    if (err == BP_OK) {
        if (*out_n > 0) {
            c->after_seq = (*out)[*out_n - 1].seq;
        }
        *out_more = *out_n == max;
    }
    return err;
}

/* ---- the trail (store_chain.c) ---- */

/* One int64 from a bound single-value SELECT (NULL reads as 0), finalizing it. */
static bp_err
one_int(struct sqlite_store *st, sqlite3_stmt *stmt, int64_t *out)
{
    int rc = sqlite3_step(stmt);

    *out = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? BP_OK : bp_sq__map_rc(st, rc);
}

/* The write lock taken by BEGIN IMMEDIATE (or the caller's transaction) is the head's lock. */
static bp_err
sq_lock_head(struct bp_store *s, const char *chain, int64_t *out_n, char head[BP_AUDIT_HEX])
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__kept(st, BP_SQ_KEPT_LOCK_HEAD, "SELECT n, head FROM audit_chains WHERE chain = ?1", &stmt);
    int rc;

    *out_n = 0;
    head[0] = '\0';
    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, chain);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *out_n = sqlite3_column_int64(stmt, 0);
        bp_store__hex_col(head, (const char *)sqlite3_column_text(stmt, 1));
    }
    err = rc == SQLITE_ROW || rc == SQLITE_DONE ? BP_OK : bp_sq__map_rc(st, rc);
    bp_sq__put_kept(stmt);
    return err;
}

static bp_err
sq_set_head(struct bp_store *s, const char *chain, int64_t n, const char head[BP_AUDIT_HEX], int64_t now_us)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__kept(st, BP_SQ_KEPT_SET_HEAD,
                             "INSERT INTO audit_chains (chain, n, head, updated_us) VALUES (?1, ?2, ?3, ?4)"
                             " ON CONFLICT (chain) DO UPDATE SET n = excluded.n, head = excluded.head,"
                             " updated_us = excluded.updated_us",
                             &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, chain);
    sqlite3_bind_int64(stmt, 2, n);
    bp_sq__bind_text(stmt, 3, head);
    sqlite3_bind_int64(stmt, 4, now_us);
    err = bp_sq__step_done(st, stmt, NULL);
    bp_sq__put_kept(stmt);
    return err;
}

static bp_err
sq_known(struct bp_store *s, const struct bp_audit_rec *recs, size_t n, bool *known)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT 1 FROM audit_log WHERE id = ?1", &stmt);

    for (size_t i = 0; err == BP_OK && i < n; i++) {
        int rc;
        sqlite3_reset(stmt);
        bp_sq__bind_text(stmt, 1, recs[i].id);
        rc = sqlite3_step(stmt);
        known[i] = rc == SQLITE_ROW;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            err = bp_sq__map_rc(st, rc);
        }
    }
    sqlite3_finalize(stmt);
    return err;
}

static void
read_head(sqlite3_stmt *stmt, void *out_v)
{
    struct bp_audit_head *h = out_v;

    h->chain = bp_sq__col_dup(stmt, 0);
    h->n = sqlite3_column_int64(stmt, 1);
    bp_store__hex_col(h->head, (const char *)sqlite3_column_text(stmt, 2));
    h->updated_us = sqlite3_column_int64(stmt, 3);
}

static void
free_heads_v(void *h, size_t n)
{
    bp_audit_heads_free(h, n);
}

static bp_err
sq_heads(struct bp_store *s, struct bp_audit_head **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *heads = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT chain, n, head, updated_us FROM audit_chains ORDER BY chain", &stmt);

    if (err != BP_OK) {
        return err;
    }
    err = bp_sq__collect(st, stmt, sizeof(struct bp_audit_head), read_head, free_heads_v, &heads, out_n);
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        *out = heads;
    }
    return err;
}

static bp_err
sq_page(struct bp_store *s, const char *chain, int64_t after_n, size_t limit, struct bp_audit_rec **out,
        size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    bp_err err = bp_sq__prepare(st,
                                "SELECT " AUDIT_COLS " FROM audit_log WHERE chain = ?1 AND chain_n > ?2"
                                " ORDER BY chain_n LIMIT ?3",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, chain);
    sqlite3_bind_int64(stmt, 2, after_n);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)limit);
    err = bp_sq__collect(st, stmt, sizeof(struct bp_audit_rec), read_rec, free_recs_v, &recs, out_n);
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
sq_start(struct bp_store *s, const char *chain, int64_t since_us, int64_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT min(chain_n) FROM audit_log WHERE chain = ?1 AND time_us >= ?2", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, chain);
    sqlite3_bind_int64(stmt, 2, since_us);
    return one_int(st, stmt, out_n);
}

static bp_err
sq_hash_at(struct bp_store *s, const char *chain, int64_t n, char hash[BP_AUDIT_HEX], bool *found)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT hash FROM audit_log WHERE chain = ?1 AND chain_n = ?2", &stmt);
    int rc;

    *found = false;
    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, chain);
    sqlite3_bind_int64(stmt, 2, n);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *found = true;
        bp_store__hex_col(hash, (const char *)sqlite3_column_text(stmt, 0));
    }
    err = rc == SQLITE_ROW || rc == SQLITE_DONE ? BP_OK : bp_sq__map_rc(st, rc);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_count_upto(struct bp_store *s, const char *chain, int64_t upto_n, int64_t *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT count(*) FROM audit_log WHERE chain = ?1 AND chain_n <= ?2", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, chain);
    sqlite3_bind_int64(stmt, 2, upto_n);
    return one_int(st, stmt, out);
}

static bp_err
sq_strays(struct bp_store *s, struct bp_audit_strays *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT max_seq, n FROM audit_unchained", &stmt);
    int rc;

    if (err != BP_OK) {
        return err;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        out->legacy_max_seq = sqlite3_column_int64(stmt, 0);
        out->legacy_n = sqlite3_column_int64(stmt, 1);
    }
    sqlite3_finalize(stmt);
    err = bp_sq__prepare(st, "SELECT count(*), coalesce(min(seq), 0) FROM audit_log WHERE chain IS NULL AND seq > ?1",
                         &stmt);
    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, out->legacy_max_seq);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        out->unchained = sqlite3_column_int64(stmt, 0);
        out->first_unchained_seq = sqlite3_column_int64(stmt, 1);
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW) {
        return bp_sq__map_rc(st, rc);
    }
    err = bp_sq__prepare(st,
                         "SELECT DISTINCT chain FROM audit_log WHERE chain IS NOT NULL"
                         " AND chain NOT IN (SELECT chain FROM audit_chains) LIMIT 1",
                         &stmt);
    if (err != BP_OK) {
        return err;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        out->headless_chain = bp_sq__col_dup(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? BP_OK : bp_sq__map_rc(st, rc);
}

/* Runs a prepared chunked DELETE (its LIMIT is its last parameter, number last) until a chunk
 * comes back short; each chunk its own (autocommit) transaction, so a large backlog never holds
 * the write lock for long. */
static bp_err
delete_chunks(struct sqlite_store *st, sqlite3_stmt *stmt, int last, int64_t *out_deleted)
{
    int changes = PURGE_CHUNK;
    bp_err err = BP_OK;

    *out_deleted = 0;
    while (err == BP_OK && changes == PURGE_CHUNK) {
        sqlite3_reset(stmt);
        sqlite3_bind_int(stmt, last, PURGE_CHUNK);
        err = bp_sq__step_done(st, stmt, &changes);
        if (err == BP_OK) {
            *out_deleted += changes;
        }
    }
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_delete_upto(struct bp_store *s, const char *chain, int64_t upto_n, int64_t *out_deleted)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log"
                                " WHERE chain = ?1 AND chain_n <= ?2 ORDER BY chain_n LIMIT ?3)",
                                &stmt);

    *out_deleted = 0;
    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, chain);
    sqlite3_bind_int64(stmt, 2, upto_n);
    return delete_chunks(st, stmt, 3, out_deleted);
}

static bp_err
sq_delete_legacy(struct bp_store *s, int64_t before_us, int64_t *out_deleted)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "DELETE FROM audit_log WHERE seq IN (SELECT seq FROM audit_log"
                                " WHERE chain IS NULL AND time_us < ?1 ORDER BY time_us LIMIT ?2)",
                                &stmt);

    *out_deleted = 0;
    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, before_us);
    return delete_chunks(st, stmt, 2, out_deleted);
}

/* One process at a time writes to a SQLite file; a second purge only finds less to delete. */
static bp_err
sq_purge_lock(struct bp_store *s, bool *out_got)
{
    (void)s;
    *out_got = true;
    return BP_OK;
}

static void
sq_purge_unlock(struct bp_store *s)
{
    (void)s;
}

static bp_err
sq_checkpoint_put(struct bp_store *s, const struct bp_audit_checkpoint *c)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "INSERT INTO audit_checkpoints (id, time_us, kind, body, signature)"
                                " VALUES (?1, ?2, ?3, ?4, ?5)",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, c->id);
    sqlite3_bind_int64(stmt, 2, c->time_us);
    bp_sq__bind_text(stmt, 3, c->kind);
    bp_sq__bind_text(stmt, 4, c->body);
    bp_sq__bind_text(stmt, 5, c->signature);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static void
read_checkpoint(sqlite3_stmt *stmt, void *out_v)
{
    struct bp_audit_checkpoint *c = out_v;

    c->id = bp_sq__col_dup(stmt, 0);
    c->time_us = sqlite3_column_int64(stmt, 1);
    c->kind = bp_sq__col_dup(stmt, 2);
    c->body = bp_sq__col_dup(stmt, 3);
    c->signature = bp_sq__col_dup(stmt, 4);
}

static void
free_checkpoints_v(void *c, size_t n)
{
    bp_audit_checkpoints_free(c, n);
}

static bp_err
sq_checkpoint_list(struct bp_store *s, int64_t since_us, const char *kind, size_t limit,
                   struct bp_audit_checkpoint **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *rows = NULL;
    bp_err err = bp_sq__prepare(st,
                                "SELECT id, time_us, kind, body, signature FROM audit_checkpoints"
                                " WHERE time_us >= ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY time_us, id"
                                " LIMIT ?3",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, since_us);
    bp_sq__bind_text(stmt, 2, kind);
    sqlite3_bind_int64(stmt, 3, limit > 0 ? (sqlite3_int64)limit : -1); /* -1: no limit */
    err = bp_sq__collect(st, stmt, sizeof(struct bp_audit_checkpoint), read_checkpoint, free_checkpoints_v, &rows,
                         out_n);
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        *out = rows;
    }
    return err;
}

static bp_err
sq_set_places(struct bp_store *s, const struct bp_audit_rec *recs, size_t n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "UPDATE audit_log SET chain = ?1, chain_n = ?2, prev_hash = ?3, hash = ?4"
                                " WHERE seq = ?5",
                                &stmt);

    for (size_t i = 0; err == BP_OK && i < n; i++) {
        sqlite3_reset(stmt);
        bp_sq__bind_text(stmt, 1, bp_store_audit_chain_of(&recs[i]));
        sqlite3_bind_int64(stmt, 2, recs[i].chain_n);
        bp_sq__bind_text(stmt, 3, recs[i].prev_hash);
        bp_sq__bind_text(stmt, 4, recs[i].hash);
        sqlite3_bind_int64(stmt, 5, recs[i].seq);
        err = bp_sq__step_done(st, stmt, NULL);
    }
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_checkpoint_delete(struct bp_store *s, const char *id)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    bp_err err = bp_sq__prepare(st, "DELETE FROM audit_checkpoints WHERE id = ?1", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, id);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    return err == BP_OK && changes == 0 ? BP_ERR_NOT_FOUND : err;
}

const struct bp_store_trail_ops bp_sq__trail_ops = {
    .lock_head = sq_lock_head,
    .set_head = sq_set_head,
    .known = sq_known,
    .insert = sq_trail_insert,
    .heads = sq_heads,
    .page = sq_page,
    .start = sq_start,
    .hash_at = sq_hash_at,
    .count_upto = sq_count_upto,
    .strays = sq_strays,
    .delete_upto = sq_delete_upto,
    .delete_legacy = sq_delete_legacy,
    .purge_lock = sq_purge_lock,
    .purge_unlock = sq_purge_unlock,
    .checkpoint_put = sq_checkpoint_put,
    .checkpoint_list = sq_checkpoint_list,
    .checkpoint_delete = sq_checkpoint_delete,
    .set_places = sq_set_places,
};

const struct bp_store_audit_ops bp_sq__audit_ops = {
    .insert = sq_audit_insert,
    .query = sq_audit_query,
    .follow = sq_audit_follow,
    .follow_next = sq_audit_follow_next,
};
