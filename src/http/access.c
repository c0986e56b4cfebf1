/* A finished request: one JSON access-log line, its metrics, and — for /proxy/ requests — its
 * audit record. The log line and the record carry ids and numbers only: no header values, no
 * body, no query string (it may hold secrets). The record's resource id is read from Core's
 * response for creations, without altering the response. */
#include <string.h>

#include "audit/audit.h"
#include "core/log.h"
#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/str.h"
#include "metrics/metrics.h"
#include "rewrite/rewrite.h"
#include "store/store.h"
#include "tables/tables.h"

#define PROXY_PREFIX_LEN 6 /* "/proxy" */

static bool
is_read_method(const struct bp_req *r)
{
    return bp_str_eq(r->head.method, r->head.method_len, "GET") || bp_str_eq(r->head.method, r->head.method_len, "HEAD");
}

/* A write is what needs proxy:write: the matched route says; without a route, the method does. */
static bool
is_write(const struct bp_req *r)
{
    if (r->route != NULL) {
        return (r->route->scope & BP_SCOPE_WRITE) != 0;
    }
    return !is_read_method(r);
}

static int
audit_mode(const struct bp_conn *c, const struct bp_req *r)
{
    if (r->conf->audit == NULL || r->kind != BP_REQ_PROXY) {
        return BP_AUDIT_OFF;
    }
    return is_write(r) ? r->conf->cfg->audit_writes : r->conf->cfg->audit_reads;
}

bool
bp_http__audit_sync(const struct bp_conn *c, const struct bp_req *r)
{
    return audit_mode(c, r) == BP_AUDIT_SYNC;
}

bool
bp_http__audit_reserve(struct bp_conn *c, struct bp_req *r)
{
    if (audit_mode(c, r) == BP_AUDIT_OFF) {
        return true;
    }
    r->audit_reserved = bp_audit_reserve(r->conf->audit);
    return r->audit_reserved;
}

/* Which member of Core's answer names what a creation made, by the route's category. */
static const char *const *
id_keys(const char *category, size_t *n)
{
    static const char *const transactions[] = {"transaction_id", "batch_id"};
    static const char *const ledgers[] = {"ledger_id"};
    static const char *const balances[] = {"balance_id", "monitor_id"};
    static const char *const identities[] = {"identity_id"};
    static const char *const reconciliation[] = {"reconciliation_id", "upload_id", "rule_id", "id"};
    static const char *const other[] = {"id"};
    struct {
        const char *category;
        const char *const *keys;
        size_t n;
    } map[] = {
        {"transactions", transactions, 2}, {"ledgers", ledgers, 1}, {"balances", balances, 2},
        {"identities", identities, 1},     {"reconciliation", reconciliation, 4},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].category, category) == 0) {
            *n = map[i].n;
            return map[i].keys;
        }
    }
    *n = 1;
    return other;
}

static char *
resource_id(const struct bp_req *r, const char *resp, size_t resp_len)
{
    const char *const *keys;
    size_t n_keys;
    size_t off;
    size_t len;

    /* Only creations (a labelled write that Core accepted) name a new resource. */
    if (r->route == NULL || r->route->action == NULL || r->route->category == NULL ||
        !bp_str_eq(r->head.method, r->head.method_len, "POST") || r->upstream_status < 200 ||
        r->upstream_status > 299) {
        return NULL;
    }
    keys = id_keys(r->route->category, &n_keys);
    if (!bp_json_find_id(resp, resp_len, keys, n_keys, &off, &len) || len > 200) {
        return NULL;
    }
    return bp_strndup(resp + off, len);
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? bp_strdup(s) : NULL;
}

/* The route's action label when the request was forwarded (Core may have acted on it); what it
 * attempted, marked "refused: …", when the proxy refused it; nothing for a read, or when the
 * client left before it was forwarded (issue 8: a refusal never reads like a success). */
static char *
action_of(const struct bp_req *r)
{
    const char *label = r->route->action;
    size_t plen = strlen(BP_AUDIT_REFUSED_PREFIX);
    size_t llen;
    char *out;

    if (label == NULL) {
        return NULL;
    }
    if (r->forwarded) {
        return bp_strdup(label);
    }
    if (r->outcome == BP_OK || r->outcome == BP_ERR_CLIENT_CLOSED) {
        return NULL;
    }
    llen = strlen(label);
    out = bp_malloc(plen + llen + 1);
    memcpy(out, BP_AUDIT_REFUSED_PREFIX, plen);
    memcpy(out + plen, label, llen + 1);
    return out;
}

/* The instance the request was for, or asked for when it was refused before one was found:
 * only an id of the right shape is kept (DESIGN §2's check), so a record never holds arbitrary
 * query bytes. */
static char *
instance_of(const struct bp_req *r)
{
    if (r->instance != NULL) {
        return bp_strdup(r->instance->id);
    }
    if (r->asked_instance != NULL) {
        return bp_strndup(r->asked_instance, r->asked_instance_len);
    }
    return NULL;
}

static struct bp_audit_rec *
build_record(const struct bp_conn *c, const struct bp_req *r, const char *resp, size_t resp_len, int64_t total_us)
{
    struct bp_audit_rec *rec = bp_calloc(1, sizeof(*rec));
    const struct bp_http_head *h = &r->head;

    rec->time_us = bp_clock_wall_us();
    rec->request_id = r->request_id[0] != '\0' ? bp_strdup(r->request_id) : NULL;
    if (r->cred != NULL) {
        rec->actor_type = bp_strdup(r->cred->kind == BP_CRED_ACCESS_TOKEN ? "oauth_client" : "api_key");
        rec->actor_id = dup_or_null(r->cred->actor_id);
        rec->actor_name = dup_or_null(r->cred->name);
    } else {
        rec->actor_type = bp_strdup("anonymous");
    }
    rec->instance_id = instance_of(r);
    rec->method = bp_strndup(h->method, h->method_len);
    if (r->route != NULL) {
        rec->route = bp_strdup(r->route->pattern);
        rec->action = action_of(r);
        rec->category = dup_or_null(r->route->category);
    }
    /* The Core path as asked (query excluded); for a request refused before its path was
     * checked, the raw path after "/proxy". */
    if (r->core_path != NULL) {
        rec->path = bp_strndup(r->core_path, r->core_path_len);
    } else if (h->path_len > PROXY_PREFIX_LEN) {
        rec->path = bp_strndup(h->path + PROXY_PREFIX_LEN, h->path_len - PROXY_PREFIX_LEN < 2048
                                                               ? h->path_len - PROXY_PREFIX_LEN
                                                               : 2048);
    }
    rec->core_status = r->upstream_status;
    rec->status = r->status;
    rec->latency_us = total_us;
    rec->client_addr = bp_strdup(c->peer);
    rec->resource_id = resource_id(r, resp, resp_len);
    rec->error = r->outcome != BP_OK ? bp_strdup(bp_http__error_code(r->outcome)) : NULL;
    return rec;
}

static enum bp_metrics_auth_reason
auth_reason(const struct bp_req *r)
{
    switch (r->auth_failure) {
    case BP_AUTH_FAIL_MISSING:
        return BP_METRICS_AUTH_MISSING;
    case BP_AUTH_FAIL_EXPIRED:
        return BP_METRICS_AUTH_EXPIRED;
    case BP_AUTH_FAIL_REVOKED:
        return BP_METRICS_AUTH_REVOKED;
    default:
        return BP_METRICS_AUTH_UNKNOWN;
    }
}

static void
count(const struct bp_req *r, int64_t total_us)
{
    char method[16];
    size_t mlen = r->head.method_len < sizeof(method) - 1 ? r->head.method_len : sizeof(method) - 1;
    const char *group;

    /* A request refused as malformed HTTP may have no parsed method at all. */
    if (mlen > 0) {
        memcpy(method, r->head.method, mlen);
    }
    method[mlen] = '\0';
    switch (r->kind) {
    case BP_REQ_PROXY:
        group = r->route != NULL ? r->route->category : NULL;
        break;
    case BP_REQ_OAUTH:
        group = "oauth";
        break;
    default:
        group = "ops";
        break;
    }
    bp_metrics_request(&(struct bp_metrics_request){
        .group = group,
        .method = method,
        .status = r->status,
        .instance = r->instance != NULL ? r->instance->id : NULL,
        .total_us = total_us,
        .upstream_us = r->upstream_status != 0 ? r->upstream_us : -1,
    });
    if (r->outcome == BP_ERR_AUTH_MISSING || r->outcome == BP_ERR_AUTH_INVALID_KEY ||
        r->outcome == BP_ERR_AUTH_EXPIRED_KEY || r->outcome == BP_ERR_AUTH_INVALID_TOKEN) {
        bp_metrics_auth_failure(auth_reason(r));
    } else if (r->outcome == BP_ERR_AUTH_SCOPE) {
        bp_metrics_auth_failure(BP_METRICS_AUTH_SCOPE);
    } else if (r->outcome == BP_ERR_AUTH_INSTANCE) {
        bp_metrics_auth_failure(BP_METRICS_AUTH_INSTANCE);
    }
}

bool
bp_http__request_finished(struct bp_conn *c, struct bp_req *r, const char *resp, size_t resp_len,
                          void (*done)(void *arg), void *arg)
{
    int64_t total_us = bp_clock_mono_us() - r->start_us;
    struct bp_audit *audit = r->conf->audit;
    struct bp_audit_rec *rec;

    BP_BUG_ON(r->finished);
    r->finished = true;
    BP_INFO("access", BP_LSTR("request_id", r->request_id), BP_LSTRN("method", r->head.method, r->head.method_len),
            BP_LSTR("route", r->route ? r->route->pattern : NULL),
            BP_LSTR("instance", r->instance ? r->instance->id : NULL), BP_LSTR("credential", r->cred ? r->cred->id : NULL),
            BP_LINT("status", r->status), BP_LINT("upstream_status", r->upstream_status),
            BP_LSTR("error", r->outcome != BP_OK ? bp_err_str(r->outcome) : NULL), BP_LSTR("reason", r->reason),
            BP_LSTR("peer", c->peer),
            BP_LINT("bytes_in", r->body.len), BP_LINT("bytes_out", r->bytes_out), BP_LDBL("total_ms", total_us / 1000.0),
            BP_LDBL("upstream_ms", r->upstream_us / 1000.0));
    count(r, total_us);
    if (audit_mode(c, r) == BP_AUDIT_OFF) {
        return false;
    }
    rec = build_record(c, r, resp, resp_len, total_us);
    if (r->audit_reserved) {
        r->audit_reserved = false;
        bp_audit_submit_reserved(audit, rec, done, arg);
        return done != NULL;
    }
    /* Only a request refused before it was forwarded gets here without a place: when the queue
     * is full its record is shed (counted and logged by the audit module). */
    return bp_audit_submit(audit, rec, done, arg) == BP_OK && done != NULL;
}
