/* One access-log line per finished request. This is also the seam where the audit log will take
 * its record of each request: everything a record needs is in struct bp_req at this point. The
 * line carries ids and numbers only: no header values, no body, no query (it may hold secrets). */
#include "core/log.h"
#include "http/http-int.h"
#include "lib/clock.h"
#include "tables/tables.h"

void
bp_http__request_finished(struct bp_conn *c, struct bp_req *r)
{
    int64_t total_us = bp_clock_mono_us() - r->start_us;

    BP_INFO("access", BP_LSTR("request_id", r->request_id), BP_LSTRN("method", r->head.method, r->head.method_len),
            BP_LSTR("route", r->route ? r->route->pattern : NULL),
            BP_LSTR("instance", r->instance ? r->instance->id : NULL), BP_LSTR("credential", r->cred ? r->cred->id : NULL),
            BP_LINT("status", r->status), BP_LINT("upstream_status", r->upstream_status),
            BP_LSTR("error", r->outcome != BP_OK ? bp_err_str(r->outcome) : NULL), BP_LSTR("peer", c->peer),
            BP_LINT("bytes_in", r->body.len), BP_LINT("bytes_out", r->bytes_out), BP_LDBL("total_ms", total_us / 1000.0),
            BP_LDBL("upstream_ms", r->upstream_us / 1000.0));
}
