/* /admin/api/audit: the log, filtered as `audit list` filters it, newest first; and the trail's
 * verbs of the CLI (issue 13): verify (with a checkpoint kept elsewhere and a public key, sent in
 * a POST's body), the stored checkpoints and a new one, and the export a SIEM pages through. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin-int.h"
#include "audit/audit.h"
#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "router/router.h"
#include "trail/trail.h"

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000
#define FILTER_MAX 200
/* An export answer is built whole in memory (the OAuth endpoint answers a buffer): at most this
 * many records, and this many bytes, per call; X-Next-After-Seq says where the next call starts. */
#define CHECKPOINTS_PAGE_DEFAULT 100
#define CHECKPOINTS_PAGE_MAX 1000
#define EXPORT_LIMIT_DEFAULT 1000
#define EXPORT_LIMIT_MAX 10000
#define EXPORT_MAX_BYTES (16 * 1024 * 1024)
/* Records read from the store at once while an export answer is built. */
#define EXPORT_PAGE 1000
/* The last second RFC 3339 can write (9999-12-31T23:59:59Z). */
#define UNIX_S_MAX UINT64_C(253402300799)

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
    if (bp_str_parse_u64(v, strlen(v), UNIX_S_MAX, &s) != BP_OK) {
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

/* Verifications run one at a time per node: a walk over millions of records takes seconds of a
 * thread the OAuth endpoint shares with /oauth/token. */
static atomic_bool verifying;

static json_t *
report_json(const struct bp_trail_report *r)
{
    json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:I}", "intact", !r->broken, "chains", (json_int_t)r->chains,
                          "records", (json_int_t)r->records, "legacy", (json_int_t)r->legacy, "purged",
                          (json_int_t)r->purged);

    json_object_set_new(j, "first_break", r->broken ? json_string(r->first_break) : json_null());
    json_object_set_new(j, "checkpoint_chains_matched", json_integer(r->checkpoint_matched));
    json_object_set_new(j, "checkpoint_chains_purged", json_integer(r->checkpoint_purged));
    json_object_set_new(j, "signatures_checked", json_integer(r->signatures_checked));
    json_object_set_new(j, "signatures_unchecked", json_integer(r->signatures_unchecked));
    return j;
}

/* Walks the trail as `audit verify` does and answers the report (200, broken or not). */
static void
run_verify(struct bp_admin_call *c, const struct bp_trail_verify_opts *o)
{
    struct bp_trail_report r = {0};
    bp_err rc;

    if (atomic_exchange(&verifying, true)) {
        bp_admin__error(c, 429, "GEN_RATE_LIMITED",
                        "a verification is running on this node: try again shortly");
        bp_oauth_add_header(c->out, "Retry-After", "5");
        return;
    }
    rc = bp_trail_verify(c->s, o, &r);
    atomic_store(&verifying, false);
    if (rc == BP_ERR_INVALID && o->checkpoint_text != NULL && r.first_break[0] != '\0') {
        /* The checkpoint given does not parse: the caller's mistake, said as the CLI says it. */
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", r.first_break);
        return;
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "record");
        return;
    }
    bp_admin__json(c, 200, report_json(&r));
}

/* GET /audit/verify[?since=S]: without a checkpoint or key (POST sends those). */
static void
audit_verify(struct bp_admin_call *c)
{
    struct bp_trail_verify_opts o = {0};
    bool bad = false;

    if (c->req->query != NULL && !time_param(c->req->query, "since", &o.since_us, &bad)) {
        bad = true;
    }
    if (bad) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "since must be unix seconds");
        return;
    }
    run_verify(c, &o);
}

/* The body of POST /audit/verify into o and *out_key (NULL without public_key; the caller frees
 * it). False after answering 400. The key is never quoted back: a private key sent by mistake
 * must not travel further. */
static bool
verify_body(struct bp_admin_call *c, struct bp_trail_verify_opts *o, struct bp_trail_key **out_key)
{
    const char *member;
    const char *pem;
    json_t *v;
    bool bad = false;
    char err[256];
    char msg[300];

    json_object_foreach(c->body, member, v)
    {
        if (strcmp(member, "since") != 0 && strcmp(member, "checkpoint") != 0 &&
            strcmp(member, "public_key") != 0) {
            bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                            "the body holds since, checkpoint and public_key only (a misspelt one would "
                            "check less than asked)");
            return false;
        }
    }
    v = json_object_get(c->body, "since");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > UNIX_S_MAX) {
            bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "since must be unix seconds");
            return false;
        }
        o->since_us = (int64_t)json_integer_value(v) * 1000000;
    }
    o->checkpoint_text = bp_admin__body_str(c, "checkpoint", &bad);
    pem = bp_admin__body_str(c, "public_key", &bad);
    if (bad) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "checkpoint (the text of a checkpoint) and public_key (PEM) are strings");
        return false;
    }
    if (pem == NULL) {
        return true;
    }
    *out_key = bp_trail_key_from_pem(pem, strlen(pem), false, err, sizeof(err));
    if (*out_key == NULL) {
        snprintf(msg, sizeof(msg), "public_key: %s", err);
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", msg);
        return false;
    }
    if (bp_trail_key_has_private(*out_key)) {
        bp_trail_key_free(*out_key);
        *out_key = NULL;
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "public_key holds a private key: send only its public half (openssl pkey -in KEY "
                        "-pubout), and replace the key if it was sent where others can read it");
        return false;
    }
    return true;
}

/* POST /audit/verify {"since"?, "checkpoint"?, "public_key"?}: as `audit verify --checkpoint FILE
 * --public-key FILE`. A read: an auditor may make it (admin.c). */
static void
audit_verify_post(struct bp_admin_call *c)
{
    struct bp_trail_verify_opts o = {0};
    struct bp_trail_key *key = NULL;

    if (verify_body(c, &o, &key)) {
        o.key = key;
        run_verify(c, &o);
    }
    bp_trail_key_free(key);
}

/* A stored checkpoint as `audit checkpoints` prints it, as an object; one whose text no longer
 * parses (changed in the database: verify says so) as {"id", "kind", "unreadable": its text}. */
static json_t *
checkpoint_json(const struct bp_audit_checkpoint *cp)
{
    char *text = bp_trail_checkpoint_text(cp->body, cp->signature);
    json_t *j = json_loads(text, 0, NULL);

    if (!json_is_object(j)) {
        json_decref(j);
        j = json_pack("{s:o, s:o, s:o}", "id", bp_admin__jstr(cp->id), "kind", bp_admin__jstr(cp->kind),
                      "unreadable", bp_admin__jstr(text));
    }
    bp_free(text);
    return j;
}

static bool
kind_ok(const char *k)
{
    return strcmp(k, "periodic") == 0 || strcmp(k, "manual") == 0 || strcmp(k, "purge") == 0;
}

/* GET /audit/checkpoints[?since=S&kind=K]: oldest first, as `audit checkpoints`. */
static void
checkpoints_list(struct bp_admin_call *c)
{
    const char *q = c->req->query;
    struct bp_audit_checkpoint *cps = NULL;
    int64_t since_us = 0;
    char kind[16];
    char num[24];
    bool has_kind = false;
    bool bad = false;
    uint64_t limit = CHECKPOINTS_PAGE_DEFAULT;
    uint64_t v = 0;
    size_t n = 0;
    json_t *a;
    json_t *j;
    bp_err rc;

    if (q != NULL) {
        if (!time_param(q, "since", &since_us, &bad)) {
            bad = true;
        }
        if (query_get(q, "since_us", num, sizeof(num), &bad)) {
            bad = bad || bp_str_parse_u64(num, strlen(num), UNIX_S_MAX * 1000000, &v) != BP_OK;
            since_us = (int64_t)v;
        }
        has_kind = query_get(q, "kind", kind, sizeof(kind), &bad);
        bad = bad || (has_kind && !kind_ok(kind));
        if (query_get(q, "limit", num, sizeof(num), &bad)) {
            bad = bad || bp_str_parse_u64(num, strlen(num), CHECKPOINTS_PAGE_MAX, &limit) != BP_OK ||
                  limit == 0;
        }
    }
    if (bad) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "since must be unix seconds (since_us microseconds), kind periodic, manual or purge, "
                        "limit 1..1000");
        return;
    }
    /* One more than asked: whether more remain. Checkpoints pile up (one an hour per node). */
    rc = bp_store_audit_checkpoint_list(c->s, since_us, has_kind ? kind : NULL, (size_t)limit + 1, &cps, &n);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "checkpoint");
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n && i < limit; i++) {
        json_array_append_new(a, checkpoint_json(&cps[i]));
    }
    j = json_pack("{s:o}", "checkpoints", a);
    /* The next page starts at the last one here (inclusive: its id repeats, skip it). */
    json_object_set_new(j, "next_since_us", n > limit ? json_integer(cps[limit - 1].time_us) : json_null());
    bp_audit_checkpoints_free(cps, n);
    bp_admin__json(c, 200, j);
}

/* POST /audit/checkpoints: a manual checkpoint, as `audit checkpoint` makes one, this node as its
 * host, signed with audit.signing_key when set. Like the CLI's, it writes no audit record: the
 * checkpoint is itself the trail's record of the moment. */
static void
checkpoint_make(struct bp_admin_call *c)
{
    const char *node = c->a->node != NULL && c->a->node[0] != '\0' ? c->a->node : NULL;
    char *text = NULL;
    json_t *j;
    bp_err rc = bp_trail_checkpoint(c->s, "manual", node, c->a->signing_key, false, &text);

    if (rc == BP_ERR_INVALID) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the checkpoint could not be signed");
        return;
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "checkpoint");
        return;
    }
    j = json_loads(text, 0, NULL);
    bp_free(text);
    if (!json_is_object(j)) {
        json_decref(j);
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the checkpoint was stored but cannot be shown");
        return;
    }
    bp_admin__json(c, 201, json_pack("{s:o}", "checkpoint", j));
}

/* The export's query: since/until, format, after_seq, limit. False after answering 400. */
static bool
export_params(struct bp_admin_call *c, struct bp_audit_query *aq, bool *out_csv, size_t *out_limit)
{
    const char *q = c->req->query;
    char format[8];
    char num[24];
    bool bad = false;
    uint64_t v = 0;

    if (q != NULL) {
        if (!time_param(q, "since", &aq->since_us, &bad) || !time_param(q, "until", &aq->until_us, &bad)) {
            bad = true;
        }
        if (query_get(q, "format", format, sizeof(format), &bad)) {
            *out_csv = strcmp(format, "csv") == 0;
            bad = bad || (!*out_csv && strcmp(format, "jsonl") != 0);
        }
        if (query_get(q, "after_seq", num, sizeof(num), &bad)) {
            bad = bad || bp_str_parse_u64(num, strlen(num), INT64_MAX, &v) != BP_OK;
            aq->after_seq = (int64_t)v;
        }
        if (query_get(q, "limit", num, sizeof(num), &bad)) {
            bad = bad || bp_str_parse_u64(num, strlen(num), EXPORT_LIMIT_MAX, &v) != BP_OK || v == 0;
            *out_limit = (size_t)v;
        }
    }
    if (bad) {
        bp_admin__error(
            c, 400, "GEN_MALFORMED_REQUEST",
            "bad parameter: since/until are unix seconds, format jsonl or csv, after_seq a record's "
            "seq, limit 1..10000");
    }
    return !bad;
}

/* Appends the export's lines for the records aq finds, in seq order, at most limit of them and
 * as many as b's maximum holds. *out_more: records remain after *out_last (the last seq
 * written). BP_ERR_LIMIT when not even one record fits. */
static bp_err
export_fill(struct bp_store *s, struct bp_audit_query *aq, bool csv, size_t limit, struct bp_buf *b,
            int64_t *out_last, bool *out_more)
{
    size_t left = limit;
    bp_err rc = BP_OK;

    *out_more = false;
    while (rc == BP_OK) {
        struct bp_audit_rec *recs = NULL;
        size_t n = 0;
        size_t i;

        /* One more than wanted, when this page could be the last: it says whether records remain. */
        aq->limit = left < EXPORT_PAGE ? left + 1 : EXPORT_PAGE;
        rc = bp_store_audit_query(s, aq, &recs, &n);
        if (rc != BP_OK) {
            break;
        }
        for (i = 0; i < n && left > 0; i++) {
            if ((csv ? bp_audit_csv_row(b, &recs[i]) : bp_audit_jsonl_row(b, &recs[i])) != BP_OK) {
                break;
            }
            *out_last = recs[i].seq;
            left--;
        }
        bp_audit_recs_free(recs, n);
        if (i < n) {
            *out_more = true;
            rc = left == limit ? BP_ERR_LIMIT : BP_OK;
            break;
        }
        if (n < aq->limit) {
            break;
        }
        aq->after_seq = *out_last;
    }
    return rc;
}

/* GET /audit/export[?since&until&format&after_seq&limit]: records oldest first with their hashes,
 * the very lines `audit export` writes. The CSV header starts every answer, so that each page
 * is a file of its own. */
static void
audit_export(struct bp_admin_call *c)
{
    struct bp_audit_query aq = {.ascending = true};
    size_t limit = EXPORT_LIMIT_DEFAULT;
    bool csv = false;
    bool more = false;
    int64_t last = 0;
    struct bp_buf b;
    char *body;
    size_t len;
    char seq[24];
    bp_err rc;

    if (!export_params(c, &aq, &csv, &limit)) {
        return;
    }
    bp_buf_init(&b, EXPORT_MAX_BYTES);
    rc = csv ? bp_audit_csv_header(&b) : BP_OK;
    if (rc == BP_OK) {
        rc = export_fill(c->s, &aq, csv, limit, &b, &last, &more);
    }
    if (rc != BP_OK) {
        bp_buf_cleanup(&b);
        if (rc == BP_ERR_LIMIT) {
            bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "a record is larger than an export answer may be");
        } else {
            bp_admin__store_error(c, rc, "record");
        }
        return;
    }
    body = bp_buf_take(&b, &len);
    bp_admin__text(c, 200, csv ? "text/csv; charset=utf-8" : "application/x-ndjson", body, len);
    bp_oauth_add_header(c->out, "Content-Disposition",
                        csv ? "attachment; filename=\"blnkproxy-audit.csv\""
                            : "attachment; filename=\"blnkproxy-audit.jsonl\"");
    if (more) {
        snprintf(seq, sizeof(seq), "%lld", (long long)last);
        bp_oauth_add_header(c->out, "X-Next-After-Seq", seq);
    }
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

struct audit_route {
    const char *sub; /* the segment after /audit, NULL for /audit itself */
    const char *method;
    void (*fn)(struct bp_admin_call *c);
};

static const struct audit_route routes[] = {
    {NULL, "GET", audit_list},
    {"categories", "GET", audit_categories},
    {"verify", "GET", audit_verify},
    {"verify", "POST", audit_verify_post},
    {"checkpoints", "GET", checkpoints_list},
    {"checkpoints", "POST", checkpoint_make},
    {"export", "GET", audit_export},
};

void
bp_admin__audit(struct bp_admin_call *c)
{
    const char *sub = c->nseg == 2 ? c->segs[1] : NULL;
    char allow[32] = "";
    bool found = false;

    if (c->nseg > 2) {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
        return;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const struct audit_route *r = &routes[i];
        if (sub == NULL ? r->sub != NULL : (r->sub == NULL || strcmp(sub, r->sub) != 0)) {
            continue;
        }
        if (bp_admin__method(c, r->method)) {
            r->fn(c);
            return;
        }
        snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s", found ? ", " : "", r->method);
        found = true;
    }
    if (found) {
        bp_admin__not_allowed(c, allow);
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}
