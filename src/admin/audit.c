/* /admin/api/audit: the log, filtered as `audit list` filters it, newest first. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin-int.h"
#include "audit/audit.h"
#include "lib/alloc.h"
#include "lib/str.h"
#include "router/router.h"
#include "trail/trail.h"

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000
#define FILTER_MAX 200

/* One query parameter's decoded value into out (cap bytes); false when absent. Values are
 * %-decoded; '+' is a space. A value too long or badly escaped is absent plus *bad. */
static bool
query_get(const char *query, const char *name, char *out, size_t cap, bool *bad)
{
    size_t nlen = strlen(name);
    const char *p = query;

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t o = 0;
            for (size_t i = nlen + 1; i < len; i++) {
                char ch = p[i];
                if (ch == '%') {
                    char hex[3];
                    char *end;
                    long v;
                    if (i + 2 >= len) {
                        *bad = true;
                        return false;
                    }
                    hex[0] = p[i + 1];
                    hex[1] = p[i + 2];
                    hex[2] = '\0';
                    v = strtol(hex, &end, 16);
                    if (end != hex + 2 || v < 0x20 || v == 0x7f) {
                        *bad = true;
                        return false;
                    }
                    ch = (char)v;
                    i += 2;
                } else if (ch == '+') {
                    ch = ' ';
                }
                if (o + 1 >= cap) {
                    *bad = true;
                    return false;
                }
                out[o++] = ch;
            }
            out[o] = '\0';
            return o > 0;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return false;
}

/* since/until: unix seconds (the console converts what the operator picks). */
static bool
time_param(const char *query, const char *name, int64_t *out_us, bool *bad)
{
    char v[32];
    uint64_t s;

    if (!query_get(query, name, v, sizeof(v), bad)) {
        return true;
    }
    if (bp_str_parse_u64(v, strlen(v), UINT64_C(253402300799), &s) != BP_OK) {
        return false;
    }
    *out_us = (int64_t)s * 1000000;
    return true;
}

static void
audit_list(struct bp_admin_call *c)
{
    const char *q = c->req->query;
    char category[FILTER_MAX], instance[FILTER_MAX], credential[FILTER_MAX], action[FILTER_MAX];
    char num[24];
    struct bp_audit_query aq = {.limit = AUDIT_PAGE_DEFAULT};
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;
    bool bad = false;
    uint64_t v = 0;
    json_t *a;
    bp_err rc;

    if (q != NULL) {
        if (!time_param(q, "since", &aq.since_us, &bad) || !time_param(q, "until", &aq.until_us, &bad)) {
            bad = true;
        }
        aq.category = query_get(q, "category", category, sizeof(category), &bad) ? category : NULL;
        aq.instance_id = query_get(q, "instance", instance, sizeof(instance), &bad) ? instance : NULL;
        aq.credential = query_get(q, "credential", credential, sizeof(credential), &bad) ? credential : NULL;
        aq.action = query_get(q, "action", action, sizeof(action), &bad) ? action : NULL;
        if (query_get(q, "status", num, sizeof(num), &bad)) {
            bad = bad || bp_str_parse_u64(num, strlen(num), 599, &v) != BP_OK || (v > 5 && v < 100);
            aq.status = (int)v;
        }
        if (query_get(q, "limit", num, sizeof(num), &bad)) {
            bad = bad || bp_str_parse_u64(num, strlen(num), AUDIT_PAGE_MAX, &v) != BP_OK || v == 0;
            aq.limit = (size_t)v;
        }
        if (query_get(q, "after_seq", num, sizeof(num), &bad)) {
            /* Live updates: only records newer than the newest the console has. */
            bad = bad || bp_str_parse_u64(num, strlen(num), INT64_MAX, &v) != BP_OK;
            aq.after_seq = (int64_t)v;
        }
    }
    if (bad) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "bad filter: since/until are unix seconds, status a code or a class 1..5, limit "
                        "1..1000");
        return;
    }
    rc = bp_store_audit_query(c->s, &aq, &recs, &n);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "record");
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, bp_audit_rec_json(&recs[i]));
    }
    bp_audit_recs_free(recs, n);
    bp_admin__json(c, 200, json_pack("{s:o}", "records", a));
}

/* GET /audit/verify[?since=S]: the trail checked as `audit verify` checks it (without a
 * checkpoint file or key: those stay with the CLI, which holds them). One at a time per node: a
 * walk over millions of records takes seconds of a thread. */
static atomic_bool verifying;

static void
audit_verify(struct bp_admin_call *c)
{
    struct bp_trail_verify_opts o = {0};
    struct bp_trail_report r = {0};
    bool bad = false;
    json_t *j;
    bp_err rc;

    if (c->req->query != NULL && !time_param(c->req->query, "since", &o.since_us, &bad)) {
        bad = true;
    }
    if (bad) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "since must be unix seconds");
        return;
    }
    if (atomic_exchange(&verifying, true)) {
        bp_admin__error(c, 429, "GEN_RATE_LIMITED",
                        "a verification is running on this node: try again shortly");
        bp_oauth_add_header(c->out, "Retry-After", "5");
        return;
    }
    rc = bp_trail_verify(c->s, &o, &r);
    atomic_store(&verifying, false);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "record");
        return;
    }
    j = json_pack("{s:b, s:I, s:I, s:I, s:I}", "intact", !r.broken, "chains", (json_int_t)r.chains, "records",
                  (json_int_t)r.records, "legacy", (json_int_t)r.legacy, "purged", (json_int_t)r.purged);
    json_object_set_new(j, "first_break", r.broken ? json_string(r.first_break) : json_null());
    bp_admin__json(c, 200, j);
}

/* The categories records have: the route table's (DESIGN §3), then the administrative one. */
static void
audit_categories(struct bp_admin_call *c)
{
    const char *names[64];
    size_t n = bp_route_categories(names, sizeof(names) / sizeof(names[0]));
    json_t *a = json_array();

    for (size_t i = 0; i < n && i < sizeof(names) / sizeof(names[0]); i++) {
        json_array_append_new(a, json_string(names[i]));
    }
    json_array_append_new(a, json_string(BP_AUDIT_CATEGORY_ADMIN));
    bp_admin__json(c, 200, json_pack("{s:o}", "categories", a));
}

void
bp_admin__audit(struct bp_admin_call *c)
{
    if (c->nseg == 2 && strcmp(c->segs[1], "categories") == 0 && bp_admin__method(c, "GET")) {
        audit_categories(c);
    } else if (c->nseg == 2 && strcmp(c->segs[1], "verify") == 0 && bp_admin__method(c, "GET")) {
        audit_verify(c);
    } else if (c->nseg == 1 && bp_admin__method(c, "GET")) {
        audit_list(c);
    } else if (c->nseg == 1) {
        bp_admin__not_allowed(c, "GET");
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}
