/* Idempotency-Key answers in PostgreSQL (store.h; migration 9). A claim is one transaction: the
 * INSERT … ON CONFLICT DO NOTHING of a second claimant waits for the first one's commit and then
 * does nothing, and the SELECT … FOR UPDATE that follows holds the row until the take-over is
 * decided, so exactly one claimant on any node becomes the owner. */
#include <string.h>

#include "store/pg-int.h"

#define IDEM_COLS "fingerprint, state, lease_until, expires_at, status, kept, headers, body"

static void
read_idem(const PGresult *res, int row, void *vout)
{
    struct bp_idem_rec *out = vout;

    memset(out, 0, sizeof(*out));
    bp_pg__col_digest(res, row, 0, out->fingerprint, 32);
    out->state = (int)bp_pg__col_int(res, row, 1);
    out->lease_until = bp_pg__col_int(res, row, 2);
    out->expires_at = bp_pg__col_int(res, row, 3);
    out->status = (int)bp_pg__col_int(res, row, 4);
    out->kept = bp_pg__col_bool(res, row, 5);
    out->headers = bp_pg__col_bytes(res, row, 6, &out->headers_len);
    out->body = bp_pg__col_bytes(res, row, 7, &out->body_len);
}

/* INSERT of a new in-flight entry unless the scope has one; *out_inserted says which. */
static bp_err
insert_new(struct pg_store *st, const struct bp_idem_claim *c, bool *out_inserted)
{
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    bp_err err;

    *out_inserted = false;
    bp_pg__p_bytes(&p, c->scope, 32);
    bp_pg__p_bytes(&p, c->fingerprint, 32);
    bp_pg__p_int(&p, c->lease_until);
    bp_pg__p_int(&p, c->now);
    bp_pg__p_int(&p, c->expires_at);
    err =
        bp_pg__run(st,
                   "INSERT INTO idempotency (scope, fingerprint, state, lease_until, created_at, expires_at)"
                   " VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (scope) DO NOTHING",
                   &p, &res);
    if (err == BP_OK) {
        *out_inserted = bp_pg__changes(res) == 1;
        bp_pq.PQclear(res);
    }
    return err;
}

static bp_err
pg_idem_get(struct bp_store *s, const unsigned char scope[32], struct bp_idem_rec *out)
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, scope, 32);
    return bp_pg__get_one(bp_pg__of(s), "SELECT " IDEM_COLS " FROM idempotency WHERE scope = $1", &p,
                          read_idem, out);
}

static bp_err
pg_idem_insert(struct bp_store *s, const struct bp_idem_claim *c, bool *out_inserted)
{
    return insert_new(bp_pg__of(s), c, out_inserted);
}

static bp_err
claim_in_tx(struct pg_store *st, const struct bp_idem_claim *c, struct bp_idem_rec *out, bool *out_owned)
{
    struct bp_pg_params p = {0};
    bool inserted = false;
    bp_err err;

    bp_pg__p_bytes(&p, c->scope, 32);
    bp_pg__p_int(&p, c->now);
    err = bp_pg__run(st, "DELETE FROM idempotency WHERE scope = $1 AND expires_at <= $2", &p, NULL);
    if (err != BP_OK) {
        return err;
    }
    err = insert_new(st, c, &inserted);
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
    p = (struct bp_pg_params){0};
    bp_pg__p_bytes(&p, c->scope, 32);
    err = bp_pg__get_one(st, "SELECT " IDEM_COLS " FROM idempotency WHERE scope = $1 FOR UPDATE", &p,
                         read_idem, out);
    if (err != BP_OK) {
        return err;
    }
    if (bp_store__idem_can_take_over(c, out)) {
        p = (struct bp_pg_params){0};
        bp_pg__p_bytes(&p, c->scope, 32);
        bp_pg__p_int(&p, c->lease_until);
        err =
            bp_pg__change_one(st, "UPDATE idempotency SET state = 1, lease_until = $2 WHERE scope = $1", &p);
        *out_owned = err == BP_OK;
    }
    return err;
}

static bp_err
pg_idem_claim(struct bp_store *s, const struct bp_idem_claim *c, struct bp_idem_rec *out, bool *out_owned)
{
    struct pg_store *st = bp_pg__of(s);
    bool own = false;
    bp_err err = bp_pg__tx_begin(st, false, &own);

    if (err != BP_OK) {
        return err;
    }
    err = bp_pg__tx_end(st, own, claim_in_tx(st, c, out, out_owned));
    if (err != BP_OK) {
        bp_idem_rec_cleanup(out);
        *out_owned = false;
    }
    return err;
}

static bp_err
pg_idem_finish(struct bp_store *s, const unsigned char scope[32], const struct bp_idem_rec *rec)
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, scope, 32);
    bp_pg__p_int(&p, rec->state);
    bp_pg__p_int(&p, rec->lease_until);
    bp_pg__p_int(&p, rec->status);
    bp_pg__p_bool(&p, rec->kept);
    if (rec->kept) {
        bp_pg__p_bytes(&p, rec->headers != NULL ? rec->headers : "", rec->headers_len);
        bp_pg__p_bytes(&p, rec->body != NULL ? rec->body : "", rec->body_len);
    } else {
        bp_pg__p_bytes(&p, NULL, 0);
        bp_pg__p_bytes(&p, NULL, 0);
    }
    return bp_pg__change_one(bp_pg__of(s),
                             "UPDATE idempotency SET state = $2, lease_until = $3, status = $4, kept = $5,"
                             " headers = $6, body = $7 WHERE scope = $1",
                             &p);
}

static bp_err
pg_idem_release(struct bp_store *s, const unsigned char scope[32])
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, scope, 32);
    return bp_pg__run(bp_pg__of(s), "DELETE FROM idempotency WHERE scope = $1", &p, NULL);
}

static bp_err
pg_idem_purge(struct bp_store *s, int64_t now, int64_t *out_deleted)
{
    struct bp_pg_params p = {0};
    PGresult *res = NULL;
    bp_err err;

    bp_pg__p_int(&p, now);
    err = bp_pg__run(bp_pg__of(s), "DELETE FROM idempotency WHERE expires_at <= $1", &p, &res);
    if (err == BP_OK) {
        *out_deleted = bp_pg__changes(res);
        bp_pq.PQclear(res);
    }
    return err;
}

const struct bp_store_idem_ops bp_pg__idem_ops = {
    .get = pg_idem_get,
    .insert = pg_idem_insert,
    .claim = pg_idem_claim,
    .finish = pg_idem_finish,
    .release = pg_idem_release,
    .purge = pg_idem_purge,
};
