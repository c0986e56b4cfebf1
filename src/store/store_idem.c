/* Idempotency-Key store calls, forwarded to the backend (store-int.h), and the record's cleanup. */
#include <string.h>

#include "lib/alloc.h"
#include "store/store-int.h"

bp_err
bp_store_idem_claim(struct bp_store *s, const struct bp_idem_claim *c, struct bp_idem_rec *out,
                    bool *out_owned)
{
    memset(out, 0, sizeof(*out));
    *out_owned = false;
    return s->ops->idem->claim(s, c, out, out_owned);
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
