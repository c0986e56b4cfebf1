/* Idempotency-Key answers in SQLite (store.h; migration 9). A claim is one BEGIN IMMEDIATE
 * transaction: SQLite's single writer is what makes exactly one claimant the owner. */
#include <string.h>

#include "lib/alloc.h"
#include "store/sqlite-int.h"

#define IDEM_COLS "fingerprint, state, lease_until, expires_at, status, kept, headers, body"

static char *
col_blob(sqlite3_stmt *stmt, int i, size_t *out_len)
{
    const void *blob = sqlite3_column_blob(stmt, i);
    size_t n = (size_t)sqlite3_column_bytes(stmt, i);
    char *copy;

    *out_len = 0;
    if (blob == NULL) {
        return NULL;
    }
    copy = bp_malloc(n + 1);
    memcpy(copy, blob, n);
    copy[n] = '\0';
    *out_len = n;
    return copy;
}

static void
read_idem(sqlite3_stmt *stmt, void *vout)
{
    struct bp_idem_rec *out = vout;
    const void *fp = sqlite3_column_blob(stmt, 0);

    memset(out, 0, sizeof(*out));
    if (fp != NULL && sqlite3_column_bytes(stmt, 0) == 32) {
        memcpy(out->fingerprint, fp, 32);
    }
    out->state = sqlite3_column_int(stmt, 1);
    out->lease_until = sqlite3_column_int64(stmt, 2);
    out->expires_at = sqlite3_column_int64(stmt, 3);
    out->status = sqlite3_column_int(stmt, 4);
    out->kept = sqlite3_column_int(stmt, 5) != 0;
    out->headers = col_blob(stmt, 6, &out->headers_len);
    out->body = col_blob(stmt, 7, &out->body_len);
}

/* Prepares sql, binds scope as ?1, a as ?2 and b as ?3 (those sql does not use are left out:
 * SQLite refuses them harmlessly), and runs it; *out_changes (may be NULL) gets the rows changed. */
static bp_err
run_scoped(struct sqlite_store *st, const char *sql, const unsigned char scope[32], int64_t a, int64_t b,
           int *out_changes)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, sql, &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_blob(stmt, 1, scope, 32, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, a);
    sqlite3_bind_int64(stmt, 3, b);
    err = bp_sq__step_done(st, stmt, out_changes);
    sqlite3_finalize(stmt);
    return err;
}

/* INSERT of a new in-flight entry unless the scope has one; *out_inserted says which. */
static bp_err
insert_new(struct sqlite_store *st, const struct bp_idem_claim *c, bool *out_inserted)
{
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    bp_err err = bp_sq__prepare(st,
                                "INSERT INTO idempotency (scope, fingerprint, state, lease_until, created_at,"
                                " expires_at) VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (scope) DO NOTHING",
                                &stmt);

    *out_inserted = false;
    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_blob(stmt, 1, c->scope, 32, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 2, c->fingerprint, 32, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, c->lease_until);
    sqlite3_bind_int64(stmt, 4, c->now);
    sqlite3_bind_int64(stmt, 5, c->expires_at);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    *out_inserted = err == BP_OK && changes == 1;
    return err;
}

static bp_err
get_entry(struct sqlite_store *st, const unsigned char scope[32], struct bp_idem_rec *out)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT " IDEM_COLS " FROM idempotency WHERE scope = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_blob(stmt, 1, scope, 32, SQLITE_STATIC);
    return bp_sq__get_one(st, stmt, read_idem, out);
}

static bp_err
sq_idem_get(struct bp_store *s, const unsigned char scope[32], struct bp_idem_rec *out)
{
    return get_entry(bp_sq__of(s), scope, out);
}

static bp_err
sq_idem_insert(struct bp_store *s, const struct bp_idem_claim *c, bool *out_inserted)
{
    return insert_new(bp_sq__of(s), c, out_inserted);
}

static bp_err
claim_in_tx(struct sqlite_store *st, const struct bp_idem_claim *c, struct bp_idem_rec *out, bool *out_owned)
{
    bool inserted = false;
    bp_err err;

    err = run_scoped(st, "DELETE FROM idempotency WHERE scope = ?1 AND expires_at <= ?2", c->scope, c->now, 0,
                     NULL);
    if (err == BP_OK) {
        err = insert_new(st, c, &inserted);
    }
    if (err != BP_OK) {
        return err;
    }
    if (inserted) {
        memcpy(out->fingerprint, c->fingerprint, 32);
        out->lease_until = c->lease_until;
        out->expires_at = c->expires_at;
        *out_owned = true;
        return BP_OK;
    }
    err = get_entry(st, c->scope, out);
    if (err != BP_OK) {
        return err;
    }
    if (bp_store__idem_can_take_over(c, out)) {
        err = run_scoped(st, "UPDATE idempotency SET state = 1, lease_until = ?2 WHERE scope = ?1", c->scope,
                         c->lease_until, 0, NULL);
        *out_owned = err == BP_OK;
    }
    return err;
}

static bp_err
sq_idem_claim(struct bp_store *s, const struct bp_idem_claim *c, struct bp_idem_rec *out, bool *out_owned)
{
    struct sqlite_store *st = bp_sq__of(s);
    bp_err err = bp_sq__exec(st, "BEGIN IMMEDIATE");

    if (err != BP_OK) {
        return err;
    }
    err = claim_in_tx(st, c, out, out_owned);
    if (err == BP_OK) {
        err = bp_sq__exec(st, "COMMIT");
    }
    if (err != BP_OK) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        bp_idem_rec_cleanup(out);
        *out_owned = false;
    }
    return err;
}

static bp_err
sq_idem_finish(struct bp_store *s, const unsigned char scope[32], const struct bp_idem_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "UPDATE idempotency SET state = ?, lease_until = ?, status = ?, kept = ?,"
                                " headers = ?, body = ? WHERE scope = ?",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int(stmt, 1, rec->state);
    sqlite3_bind_int64(stmt, 2, rec->lease_until);
    sqlite3_bind_int(stmt, 3, rec->status);
    sqlite3_bind_int(stmt, 4, rec->kept ? 1 : 0);
    if (rec->kept) {
        sqlite3_bind_blob64(stmt, 5, rec->headers != NULL ? rec->headers : "", rec->headers_len,
                            SQLITE_STATIC);
        sqlite3_bind_blob64(stmt, 6, rec->body != NULL ? rec->body : "", rec->body_len, SQLITE_STATIC);
    }
    sqlite3_bind_blob(stmt, 7, scope, 32, SQLITE_STATIC);
    return bp_sq__finish_change(st, stmt);
}

static bp_err
sq_idem_release(struct bp_store *s, const unsigned char scope[32])
{
    return run_scoped(bp_sq__of(s), "DELETE FROM idempotency WHERE scope = ?1", scope, 0, 0, NULL);
}

static bp_err
sq_idem_purge(struct bp_store *s, int64_t now, int64_t *out_deleted)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    bp_err err = bp_sq__prepare(st, "DELETE FROM idempotency WHERE expires_at <= ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, now);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    *out_deleted = changes;
    return err;
}

const struct bp_store_idem_ops bp_sq__idem_ops = {
    .get = sq_idem_get,
    .insert = sq_idem_insert,
    .claim = sq_idem_claim,
    .finish = sq_idem_finish,
    .release = sq_idem_release,
    .purge = sq_idem_purge,
};
