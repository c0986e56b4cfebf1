/* Audit store calls, forwarded to the backend (store-int.h). */
#include "store/store-int.h"

bp_err
bp_store_audit_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n)
{
    return s->ops->audit->insert(s, recs, n);
}

bp_err
bp_store_audit_query(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *out_n)
{
    return s->ops->audit->query(s, q, out, out_n);
}

bp_err
bp_store_audit_purge(struct bp_store *s, int64_t before_us, int64_t *out_deleted)
{
    return s->ops->audit->purge(s, before_us, out_deleted);
}
