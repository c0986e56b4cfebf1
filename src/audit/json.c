/* An audit record as JSON: the form `audit list --json`, `audit export` and the admin API share
 * (docs/AUDIT.md lists its fields). */
#include <stdio.h>

#include <jansson.h>

#include "audit/audit.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "store/store.h"

#define US_PER_S 1000000LL

/* "2026-11-24T10:00:00.123456Z" into out[28]. */
void
bp_audit_format_time_us(int64_t t_us, char out[28])
{
    int64_t s = t_us >= 0 ? t_us / US_PER_S : (t_us - (US_PER_S - 1)) / US_PER_S;
    char base[21];

    bp_clock_format_rfc3339(s, base);
    snprintf(out, 28, "%.19s.%06dZ", base, (int)(t_us - s * US_PER_S));
}

static json_t *
jstr(const char *s)
{
    json_t *j = s != NULL ? json_string(s) : json_null();
    /* Invalid UTF-8 cannot be a JSON string; the store never holds such text from us, but an
     * unreadable field must not take the whole line with it. */
    return j != NULL ? j : json_string("?");
}

struct json_t *
bp_audit_rec_json(const struct bp_audit_rec *r)
{
    json_t *o = json_object();
    char t[28];

    BP_BUG_ON(o == NULL);
    bp_audit_format_time_us(r->time_us, t);
    json_object_set_new(o, "seq", json_integer(r->seq));
    json_object_set_new(o, "id", jstr(r->id));
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "request_id", jstr(r->request_id));
    json_object_set_new(o, "actor_type", jstr(r->actor_type));
    json_object_set_new(o, "actor_id", jstr(r->actor_id));
    json_object_set_new(o, "actor_name", jstr(r->actor_name));
    json_object_set_new(o, "instance_id", jstr(r->instance_id));
    json_object_set_new(o, "method", jstr(r->method));
    json_object_set_new(o, "route", jstr(r->route));
    json_object_set_new(o, "path", jstr(r->path));
    json_object_set_new(o, "action", jstr(r->action));
    json_object_set_new(o, "category", jstr(r->category));
    json_object_set_new(o, "core_status", json_integer(r->core_status));
    json_object_set_new(o, "status", json_integer(r->status));
    json_object_set_new(o, "latency_us", json_integer(r->latency_us));
    json_object_set_new(o, "client_addr", jstr(r->client_addr));
    json_object_set_new(o, "resource_id", jstr(r->resource_id));
    json_object_set_new(o, "error", jstr(r->error));
    json_object_set_new(o, "node", jstr(r->node));
    /* How many requests the record stands for: more than 1 only for the aggregate of one peer's
     * refusals before authentication, from time to last_time. */
    json_object_set_new(o, "count", json_integer(r->repeat_count > 0 ? r->repeat_count : 1));
    if (r->repeat_count > 1 && r->last_time_us > 0) {
        bp_audit_format_time_us(r->last_time_us, t);
        json_object_set_new(o, "last_time", json_string(t));
    } else {
        json_object_set_new(o, "last_time", json_null());
    }
    /* An Idempotency-Key replay: the stored answer was returned, Core saw nothing. */
    json_object_set_new(o, "replayed", json_boolean(r->replayed));
    /* Its place in the tamper-evident trail (issue 13); null for a record from before it. */
    json_object_set_new(o, "chain", jstr(r->chain));
    json_object_set_new(o, "chain_n", r->chain_n > 0 ? json_integer(r->chain_n) : json_null());
    json_object_set_new(o, "prev_hash", r->prev_hash[0] != '\0' ? json_string(r->prev_hash) : json_null());
    json_object_set_new(o, "hash", r->hash[0] != '\0' ? json_string(r->hash) : json_null());
    return o;
}
