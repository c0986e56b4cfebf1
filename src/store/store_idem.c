/* Idempotency-Key store calls, forwarded to the backend (store-int.h), and the record's cleanup. */
#include <string.h>

#include "lib/alloc.h"
#include "store/store-int.h"

bool
bp_store__idem_can_take_over(const struct bp_idem_claim *c, const struct bp_idem_rec *rec)
{
    return c->take_over && rec->state != BP_IDEM_DONE && rec->lease_until <= c->now &&
           memcmp(rec->fingerprint, c->fingerprint, 32) == 0;
}

/* The common cases take one statement and no lock: a repeat finds its entry (an answer, or one in
 * flight) and reads it, which is what the locking claim would return too, as of that read; a new
 * key is one INSERT that either makes the entry or finds it made. The rest — an entry that
 * expired, one to take over, an INSERT that lost a race — goes through the whole claim in one
 * transaction, which decides them under the row's lock. */
bp_err
bp_store_idem_claim(struct bp_store *s, const struct bp_idem_claim *c, struct bp_idem_rec *out,
                    bool *out_owned)
{
    const struct bp_store_idem_ops *ops = s->ops->idem;
    bool inserted = false;
    bp_err rc;

    memset(out, 0, sizeof(*out));
    *out_owned = false;
    rc = ops->get(s, c->scope, out);
    if (rc == BP_OK && out->expires_at > c->now && !bp_store__idem_can_take_over(c, out)) {
        return BP_OK;
    }
    bp_idem_rec_cleanup(out);
    if (rc == BP_ERR_NOT_FOUND) {
        rc = ops->insert(s, c, &inserted);
        if (rc == BP_OK && inserted) {
            memcpy(out->fingerprint, c->fingerprint, 32);
            out->lease_until = c->lease_until;
            out->expires_at = c->expires_at;
            *out_owned = true;
            return BP_OK;
        }
    }
    if (rc != BP_OK && rc != BP_ERR_NOT_FOUND) {
        return rc;
    }
    return ops->claim(s, c, out, out_owned);
}

bp_err
bp_store_idem_finish(struct bp_store *s, const unsigned char scope[32], const struct bp_idem_rec *rec)
{
    return s->ops->idem->finish(s, scope, rec);
}

bp_err
bp_store_idem_release(struct bp_store *s, const unsigned char scope[32])
{
    return s->ops->idem->release(s, scope);
}

bp_err
bp_store_idem_purge(struct bp_store *s, int64_t now, int64_t *out_deleted)
{
    int64_t deleted = 0;
    bp_err rc = s->ops->idem->purge(s, now, &deleted);

    if (out_deleted != NULL) {
        *out_deleted = deleted;
    }
    return rc;
}

void
bp_idem_rec_cleanup(struct bp_idem_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->headers);
    bp_free(rec->body);
    memset(rec, 0, sizeof(*rec));
}
