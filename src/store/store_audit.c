/* Audit store calls, forwarded to the backend (store-int.h), and what every backend shares: the
 * record ids and the follow cursor's memory. */
#include <string.h>

#include "lib/alloc.h"
#include "lib/rand.h"
#include "store/store-int.h"

#define ID_PREFIX "audit_"

bp_err
bp_store__audit_ids(struct bp_audit_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (recs[i].id == NULL) {
            char ulid[BP_ULID_LEN + 1];
            /* An identifier, not a secret: from the per-thread id buffer, no OpenSSL call. */
            bp_err rc = bp_ulid_id(ulid);
            if (rc != BP_OK) {
                return rc;
            }
            recs[i].id = bp_malloc(sizeof(ID_PREFIX) + BP_ULID_LEN);
            memcpy(recs[i].id, ID_PREFIX, sizeof(ID_PREFIX) - 1);
            memcpy(recs[i].id + sizeof(ID_PREFIX) - 1, ulid, BP_ULID_LEN + 1);
        }
    }
    return BP_OK;
}

bp_err
bp_store_audit_ids(struct bp_audit_rec *recs, size_t n)
{
    return bp_store__audit_ids(recs, n);
}

bp_err
bp_store_audit_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n)
{
    /* The id is what makes a repeated insert harmless (store.h): every record carries one. A
     * record that gets its id here was never offered to a store before. */
    bool small[64];
    bool *fresh = n <= 64 ? small : bp_malloc(n * sizeof(*fresh));
    bp_err rc;

    for (size_t i = 0; i < n; i++) {
        fresh[i] = recs[i].id == NULL;
    }
    rc = bp_store__audit_ids(recs, n);
    if (rc == BP_OK) {
        rc = s->ops->audit->insert(s, recs, n, fresh);
    }
    if (fresh != small) {
        bp_free(fresh);
    }
    return rc;
}

bp_err
bp_store_audit_query(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *out_n)
{
    return s->ops->audit->query(s, q, out, out_n);
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? bp_strdup(s) : NULL;
}

void
bp_audit_cursor_free(struct bp_audit_cursor *c)
{
    if (c == NULL) {
        return;
    }
    bp_free((char *)c->q.category);
    bp_free((char *)c->q.instance_id);
    bp_free((char *)c->q.credential);
    bp_free((char *)c->q.action);
    bp_free(c->seen);
    bp_free(c);
}

bp_err
bp_store_audit_follow(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *out_n,
                      struct bp_audit_cursor **out_cursor)
{
    struct bp_audit_cursor *c = bp_calloc(1, sizeof(*c));
    bp_err rc;

    c->q = *q;
    c->q.category = dup_or_null(q->category);
    c->q.instance_id = dup_or_null(q->instance_id);
    c->q.credential = dup_or_null(q->credential);
    c->q.action = dup_or_null(q->action);
    c->q.after_seq = 0;
    c->q.ascending = false;
    rc = s->ops->audit->follow(s, c, out, out_n);
    if (rc != BP_OK) {
        bp_audit_cursor_free(c);
        return rc;
    }
    *out_cursor = c;
    return BP_OK;
}

bp_err
bp_store_audit_follow_next(struct bp_store *s, struct bp_audit_cursor *c, size_t max, struct bp_audit_rec **out,
                           size_t *out_n, bool *out_more)
{
    return s->ops->audit->follow_next(s, c, max > 0 ? max : 1, out, out_n, out_more);
}
