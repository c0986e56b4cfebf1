/* Audit records' memory, the same for every backend. */
#include <string.h>

#include "lib/alloc.h"
#include "store/store.h"

void
bp_audit_rec_cleanup(struct bp_audit_rec *rec)
{
    if (rec == NULL) {
        return;
    }
    bp_free(rec->id);
    bp_free(rec->node);
    bp_free(rec->request_id);
    bp_free(rec->actor_type);
    bp_free(rec->actor_id);
    bp_free(rec->actor_name);
    bp_free(rec->instance_id);
    bp_free(rec->method);
    bp_free(rec->route);
    bp_free(rec->path);
    bp_free(rec->action);
    bp_free(rec->category);
    bp_free(rec->client_addr);
    bp_free(rec->resource_id);
    bp_free(rec->error);
    bp_free(rec->chain);
    memset(rec, 0, sizeof(*rec));
}

void
bp_audit_recs_free(struct bp_audit_rec *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bp_audit_rec_cleanup(&recs[i]);
    }
    bp_free(recs);
}
