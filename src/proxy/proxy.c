/* The /proxy/ handler. The fixed phase order (DESIGN §2):
 *   peer's failed authentications (429) → credential (401) → its IP allow-list (403) → its rate
 *   (429, issue 12) → path syntax (400) → route table (404) → scope (403) → instance_id (400)
 *   → instance known and enabled (404) → credential allowed on the instance (403)
 * all on the head alone, before any body byte is read; then the instance's health (503 at once
 * while it is down, health/health.h), an Idempotency-Key's syntax (400), a place in the audit
 * queue (503 when it is full), the body (bounded by the route), with an Idempotency-Key the
 * store's say (§4b, idempotency.c: a replay, 422 or 409, or on as the key's owner), transaction
 * defaults (§4), the request to Core, and Core's answer relayed unchanged: buffered whole when it is at most
 * BP_PROXY_ANSWER_BUFFER, streamed with flow control beyond (the transfer paused while the
 * client is behind), so no answer costs its size in memory. Every check is a call into the
 * module that owns it; this file only sequences them.
 *
 * Threads: all on the request's loop. The credential tables are passed in: each worker keeps
 * the current snapshot pinned (taken anew only when a publish moved its generation) and every
 * request pins the one it starts with until it ends.
 *
 * Memory: the per-request state, the forwarded query, the URL, the header lines, Core's head and
 * an answer of known length up to BP_PROXY_ANSWER_BUFFER live in the request's arena; the heap
 * memory a request takes here is a body the transaction defaults rewrote (its exact size,
 * bounded by the route's body limit, made only when they add keys) and the buffer of an answer
 * of unknown or larger length while it is buffered (at most BP_PROXY_ANSWER_BUFFER, or
 * max_response_bytes for an HTTP/1.0 client and an answer of unknown length). */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/log.h"
#include "errors/errors.h"
#include "health/health.h"
#include "http/parser.h"
#include "lib/alloc.h"
#include "lib/arena.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "limits/limits.h"
#include "metrics/metrics.h"
#include "proxy/proxy-int.h"
#include "rewrite/rewrite.h"
#include "router/router.h"
#include "upstream/upstream.h"

#define PROXY_PREFIX_LEN 6 /* "/proxy" */

/* Why a request without a usable credential was refused, when it sent an X-Blnk-Key that was not
 * one: the official SDKs send their key there, so their users most need to know what happened. */
#define X_BLNK_KEY_NOT_CREDENTIAL                                                                            \
    "API key is required: X-Blnk-Key does not hold a blnkproxy API key or access token; send "               \
    "Authorization: Bearer <key>"

/* ---- the live configuration's part ---- */

struct bp_proxy_conf *
bp_proxy_conf_new(const struct bp_route *routes, size_t n_routes, struct bp_route *owned_routes,
                  struct bp_audit *audit)
{
    struct bp_proxy_conf *pc = bp_calloc(1, sizeof(*pc));

    pc->routes = routes;
    pc->n_routes = n_routes;
    pc->owned_routes = owned_routes;
    pc->audit = audit;
    return pc;
}

void
bp_proxy_conf_free(void *conf)
{
    struct bp_proxy_conf *pc = conf;

    if (pc == NULL) {
        return;
    }
    bp_free(pc->owned_routes);
    bp_free(pc);
}

/* ---- the checks on the head ---- */

static void
count_auth_failure(bp_err rc, enum bp_auth_failure why)
{
    switch (rc) {
    case BP_ERR_AUTH_MISSING:
    case BP_ERR_AUTH_INVALID_KEY:
    case BP_ERR_AUTH_EXPIRED_KEY:
    case BP_ERR_AUTH_INVALID_TOKEN:
        bp_metrics_auth_failure(why == BP_AUTH_FAIL_MISSING   ? BP_METRICS_AUTH_MISSING
                                : why == BP_AUTH_FAIL_EXPIRED ? BP_METRICS_AUTH_EXPIRED
                                : why == BP_AUTH_FAIL_REVOKED ? BP_METRICS_AUTH_REVOKED
                                                              : BP_METRICS_AUTH_UNKNOWN);
        break;
    case BP_ERR_AUTH_SCOPE:
        bp_metrics_auth_failure(BP_METRICS_AUTH_SCOPE);
        break;
    case BP_ERR_AUTH_INSTANCE:
        bp_metrics_auth_failure(BP_METRICS_AUTH_INSTANCE);
        break;
    case BP_ERR_AUTH_IP_NOT_ALLOWED:
        bp_metrics_auth_failure(BP_METRICS_AUTH_IP);
        break;
    default:
        break;
    }
}

static bp_err
authenticate(const struct bp_http_head *h, struct bp_proxy_req *st, const char **reason)
{
    const struct bp_http_header *authz;
    const struct bp_http_header *blnk_key;
    struct bp_auth_headers ah = {0};
    bp_err rc;

    authz = bp_http_head_find(h, "Authorization", &ah.n_authorization);
    blnk_key = bp_http_head_find(h, "X-Blnk-Key", &ah.n_blnk_key);
    if (authz != NULL) {
        ah.authorization = authz->value;
        ah.authorization_len = authz->value_len;
    }
    if (blnk_key != NULL) {
        ah.blnk_key = blnk_key->value;
        ah.blnk_key_len = blnk_key->value_len;
    }
    rc = bp_auth_authenticate(st->tables, &ah, bp_clock_wall_s(), &st->cred, &st->auth_failure);
    if (rc == BP_ERR_AUTH_MISSING && ah.n_authorization == 0 && ah.n_blnk_key > 0) {
        *reason = X_BLNK_KEY_NOT_CREDENTIAL;
    }
    return rc;
}

/* ---- rate limits (issue 12, limits/limits.h) ---- */

/* The peer's key for its limits (an IPv4 address, or an IPv6 /64); false when the peer is not an
 * address. */
static bool
peer_key(struct bp_http_req *req, struct bp_ip *out)
{
    return bp_limits_peer_key(bp_http_req_peer(req), out);
}

/* A peer that failed authentication more than rate_limit.auth_failures allows is refused before
 * any credential is looked at: guessing keys then goes at that rate, whatever the client sends. */
static bp_err
check_peer_failures(struct bp_http_req *req, struct bp_proxy_req *st, const struct bp_config *cfg)
{
    struct bp_ip peer;

    if (bp_limits_peers() == 0 || !peer_key(req, &peer)) {
        return BP_OK;
    }
    if (bp_limits_peer_blocked(&peer, &cfg->rate_limit_auth_failures, (uint32_t)cfg->rate_limit_auth_failure_burst,
                               bp_clock_mono_us(), &st->limit_retry_ms)) {
        st->limited_peer = true;
        return BP_ERR_RATE_LIMITED;
    }
    return BP_OK;
}

static void
note_peer_failure(struct bp_http_req *req, const struct bp_config *cfg)
{
    struct bp_ip peer;

    if (peer_key(req, &peer)) {
        bp_limits_peer_failed(&peer, &cfg->rate_limit_auth_failures, (uint32_t)cfg->rate_limit_auth_failure_burst,
                              bp_clock_mono_us());
    }
}

/* The credential's own rate, else rate_limit.default; an API key's requests count against the
 * key, a token's against its OAuth client (every token of the client together). */
static bp_err
check_rate(struct bp_proxy_req *st, const struct bp_config *cfg)
{
    const struct bp_cred_restriction *r = st->cred->restriction;
    struct bp_rate rate = cfg->rate_limit_default;
    uint32_t burst = (uint32_t)cfg->rate_limit_default_burst;
    struct bp_limits_verdict v;

    if (r != NULL && r->rate_set) {
        rate = (struct bp_rate){r->rate_count, r->rate_period_s};
        burst = r->rate_burst;
    }
    if (rate.count == 0) {
        return BP_OK;
    }
    bp_limits_take(bp_cred_actor_id(st->cred), &rate, burst, bp_clock_mono_us(), &v);
    if (v.allowed) {
        return BP_OK;
    }
    st->limit_retry_ms = v.retry_after_ms;
    st->limit_reset_ms = v.reset_ms;
    st->limit_limit = v.limit;
    return BP_ERR_RATE_LIMITED;
}

/* The instance the request is for: its instance_id, or the one its credential implies. */
static bp_err
resolve_instance(struct bp_proxy_req *st, const char *id, size_t id_len, const char **reason)
{
    bp_err rc;

    if (id == NULL) {
        rc = bp_auth_implied_instance(st->cred, &id, reason);
        if (rc != BP_OK) {
            return rc;
        }
        id_len = strlen(id);
        st->asked_instance = id;
        st->asked_instance_len = id_len;
    }
    st->instance = bp_tables_find_instance(st->tables, id, id_len);
    if (st->instance == NULL || !st->instance->enabled) {
        st->instance = NULL;
        return BP_ERR_UNKNOWN_INSTANCE;
    }
    return bp_auth_check_instance(st->cred, id, id_len);
}

/* DESIGN §2 order. A refusal that has more to say than its code leaves a fixed reason in
 * *reason (never request bytes). */
static bp_err
check_head(struct bp_http_req *req, struct bp_proxy_req *st, const char **reason)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_proxy_conf *pc = bp_http_req_app(req);
    const struct bp_config *cfg = bp_http_req_cfg(req);
    const char *id = NULL;
    const char *query_why = NULL;
    size_t id_len = 0;
    struct bp_buf fwd;
    bp_err query_rc;
    bp_err rc;

    /* The query is read first so that every refusal's audit record can name the instance it
     * asked for (issue 8); its verdict only counts at its place in the order below. The
     * forwarded query is never longer than the query. */
    st->fwd_query = bp_arena_alloc(bp_http_req_arena(req), h->query_len + 1);
    bp_buf_init_fixed(&fwd, st->fwd_query, h->query_len + 1);
    query_rc = bp_query_take_instance_id(h->query, h->query_len, &id, &id_len, &fwd, &query_why);
    st->fwd_query_len = fwd.len;
    if (query_rc == BP_OK && id != NULL && bp_instance_id_is_valid(id, id_len)) {
        st->asked_instance = id;
        st->asked_instance_len = id_len;
    }
    rc = check_peer_failures(req, st, cfg);
    if (rc != BP_OK) {
        return rc;
    }
    rc = authenticate(h, st, reason);
    if (rc == BP_ERR_AUTH_INVALID_KEY || rc == BP_ERR_AUTH_EXPIRED_KEY || rc == BP_ERR_AUTH_INVALID_TOKEN) {
        note_peer_failure(req, cfg); /* a credential that did not work: what guessing looks like */
    }
    if (rc != BP_OK) {
        return rc;
    }
    /* Where it may be used from comes with who it is: a key used from outside its allow-list
     * learns nothing of routes or instances. */
    rc = bp_auth_check_peer(st->cred, bp_http_req_peer(req));
    if (rc == BP_OK) {
        rc = check_rate(st, cfg);
    }
    if (rc != BP_OK) {
        return rc;
    }
    st->core_path = h->path + PROXY_PREFIX_LEN;
    st->core_path_len = h->path_len - PROXY_PREFIX_LEN;
    /* A '#' starts a fragment: an origin drops it, silently cutting the URL we send to Core. */
    if (memchr(h->target, '#', h->target_len) != NULL) {
        *reason = "'#' in the request target: percent-encode it as %23";
        return BP_ERR_MALFORMED;
    }
    rc = bp_path_check(st->core_path, st->core_path_len, reason);
    if (rc != BP_OK) {
        return rc;
    }
    st->route = bp_route_match(pc->routes, pc->n_routes, h->method, h->method_len, st->core_path,
                               st->core_path_len);
    if (st->route == NULL) {
        return BP_ERR_ROUTE_NOT_FOUND;
    }
    rc = bp_auth_check_scope(st->cred, st->route->scope);
    if (rc != BP_OK) {
        return rc;
    }
    if (query_rc != BP_OK) {
        *reason = query_why;
        return query_rc;
    }
    if (id != NULL && !bp_instance_id_is_valid(id, id_len)) {
        *reason = BP_INSTANCE_ID_SHAPE_REASON;
        return BP_ERR_MALFORMED;
    }
    return resolve_instance(st, id, id_len, reason);
}

/* What the finish hooks say about the request (the access log, metrics). */
static void
note_facts(struct bp_http_req *req, const struct bp_proxy_req *st)
{
    struct bp_http_facts *f = bp_http_req_facts(req);

    f->group = st->route != NULL ? st->route->category : NULL;
    f->route = st->route != NULL ? st->route->pattern : NULL;
    f->instance = st->instance != NULL ? st->instance->id : NULL;
    f->credential = st->cred != NULL ? bp_cred_id(st->cred) : NULL;
}

/* A connection whose requests failed authentication this many times is closed after the last
 * refusal (issue 11): guessing keys, or a flood of anonymous requests, then costs a new TCP
 * connection every few tries instead of going on over one kept-alive connection. */
#define AUTH_FAILURES_PER_CONNECTION 3

/* 429 with Retry-After (whole seconds, at least 1) and, for a credential's rate, the RateLimit
 * headers of draft-ietf-httpapi-ratelimit-headers (the Limit/Remaining/Reset form): this node's
 * burst, none left, and the seconds until the bucket is full again. */
static void
refuse_limited(struct bp_http_req *req, struct bp_proxy_req *st)
{
    int retry_s = (int)((st->limit_retry_ms + 999) / 1000);
    char headers[160];

    if (retry_s < 1) {
        retry_s = 1;
    }
    st->outcome_rate_limited = true;
    if (st->limited_peer) {
        bp_metrics_rate_limited(BP_METRICS_LIMITED_AUTH_FAILURES);
        bp_http_req_close_after(req);
        bp_errors_respond_retry(req, BP_ERR_RATE_LIMITED,
                                "Too many failed authentication attempts from this address; retry later", retry_s,
                                NULL);
        return;
    }
    bp_metrics_rate_limited(BP_METRICS_LIMITED_CREDENTIAL);
    snprintf(headers, sizeof(headers), "RateLimit-Limit: %u\r\nRateLimit-Remaining: 0\r\nRateLimit-Reset: %lld\r\n",
             (unsigned)st->limit_limit, (long long)((st->limit_reset_ms + 999) / 1000));
    bp_errors_respond_retry(req, BP_ERR_RATE_LIMITED, "Too many requests: this credential's rate limit is exceeded",
                            retry_s, headers);
}

static void
refuse(struct bp_http_req *req, struct bp_proxy_req *st, bp_err rc, const char *reason)
{
    /* An Idempotency-Key owner refused after its claim (Core unreachable or silent, the instance
     * down, …): its entry is settled first, then this refusal answered (settle_done), so that a
     * retry right after the answer finds it released or of unknown outcome. */
    if (bp_proxy__idem_settle_then_refuse(req, st, rc, reason)) {
        return;
    }
    note_facts(req, st);
    count_auth_failure(rc, st->auth_failure);
    if (rc == BP_ERR_AUTH_MISSING || rc == BP_ERR_AUTH_INVALID_KEY ||
        rc == BP_ERR_AUTH_EXPIRED_KEY || rc == BP_ERR_AUTH_INVALID_TOKEN) {
        if (bp_http_req_conn_strike(req) >= AUTH_FAILURES_PER_CONNECTION) {
            bp_http_req_close_after(req);
        }
    }
    if (rc == BP_ERR_RATE_LIMITED) {
        refuse_limited(req, st);
        return;
    }
    bp_errors_respond(req, rc, st->route != NULL ? bp_scope_needed_name(st->route->scope) : NULL, reason);
}

void
bp_proxy__refuse(struct bp_http_req *req, struct bp_proxy_req *st, bp_err rc, const char *reason)
{
    refuse(req, st, rc, reason);
}

struct bp_tables *
bp_proxy__worker_tables(struct bp_proxy_worker *pw)
{
    const struct bp_proxy *p = pw->proxy;
    unsigned gen = p->tables.generation();

    if (pw->tables == NULL || gen != pw->tables_gen) {
        struct bp_tables *t = p->tables.acquire();
        if (t != NULL) {
            bp_tables_release(pw->tables);
            pw->tables = t;
            pw->tables_gen = gen;
        }
    }
    return pw->tables;
}

/* ---- the instance's health (health/health.h) ---- */

static bool
health_admit(struct bp_proxy_req *st)
{
    struct bp_health *h = st->instance->health;

    if (h == NULL || bp_health_is_up(h)) {
        return true; /* no clock read while up */
    }
    return bp_health_admit(h, bp_clock_mono_ms(), &st->health_trial);
}

/* The exchange told whether Core can serve: once per request, the first time it is known. */
static void
health_report(struct bp_http_req *req, struct bp_proxy_req *st, bool ok)
{
    struct bp_proxy_worker *pw = bp_http_req_worker_state(req);

    if (st->health_reported || st->instance->health == NULL) {
        return;
    }
    st->health_reported = true;
    bp_health_report(st->instance->health, &pw->health, ok, st->health_trial, ok ? 0 : bp_clock_mono_ms());
    st->health_trial = false;
}

static void
on_head(void *self, struct bp_http_req *req)
{
    struct bp_proxy_req *st = bp_http_req_state(req);
    const struct bp_config *cfg = bp_http_req_cfg(req);
    struct bp_tables *t = bp_proxy__worker_tables(bp_http_req_worker_state(req));
    const char *reason = NULL;
    bp_err rc;
    (void)self;

    /* None yet only while a PostgreSQL store has been unreachable since start (issue 9): nothing
     * can be authenticated, and a 401 would wrongly tell the client its credential is bad. */
    if (t == NULL) {
        refuse(req, st, BP_ERR_NOT_READY, NULL);
        return;
    }
    st->tables = bp_tables_ref(t);
    rc = check_head(req, st, &reason);
    if (rc != BP_OK) {
        refuse(req, st, rc, reason);
        return;
    }
    BP_BUG_ON(st->cred == NULL || st->instance == NULL);
    note_facts(req, st);
    rc = bp_proxy__idem_head(req, st, &reason);
    if (rc != BP_OK) {
        refuse(req, st, rc, reason);
        return;
    }
    /* A down instance is refused before anything else is spent on the request: no audit place,
     * no body read, no connect (issue 14). Healthy, this is one load. */
    if (!health_admit(st)) {
        refuse(req, st, BP_ERR_INSTANCE_UNAVAILABLE, NULL);
        return;
    }
    /* Forwarding a request whose record cannot be kept would break "every call attributable". */
    if (!bp_proxy__audit_reserve(req, st)) {
        refuse(req, st, BP_ERR_AUDIT_UNAVAILABLE, NULL);
        return;
    }
    bp_http_req_read_body(req, st->route->large_body ? cfg->max_upload_bytes : cfg->max_body_bytes);
}

/* ---- Core's answer ---- */

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

/* Only creations (a labelled write that Core accepted) name a new resource; its id goes into
 * the audit record, read from the answer without altering it: from the whole answer, or from
 * the first bytes of a streamed one (prefix). */
static void
note_resource_id(struct bp_http_req *req, struct bp_proxy_req *st, const char *body, size_t len, bool prefix)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const char *const *keys;
    size_t n_keys;
    size_t off;
    size_t id_len;
    bool found;

    if (st->route->action == NULL || st->route->category == NULL || !bp_str_eq(h->method, h->method_len, "POST") ||
        st->up_status < 200 || st->up_status > 299) {
        return;
    }
    keys = id_keys(st->route->category, &n_keys);
    found = prefix ? bp_json_find_id_prefix(body, len, keys, n_keys, &off, &id_len)
                   : bp_json_find_id(body, len, keys, n_keys, &off, &id_len);
    if (!found || id_len > 200) {
        return;
    }
    st->resource_id = bp_arena_memdup(bp_http_req_arena(req), body + off, id_len);
    st->resource_id_len = id_len;
}

void
bp_proxy__note_resource_id(struct bp_http_req *req, struct bp_proxy_req *st, const char *body, size_t len,
                           bool prefix)
{
    note_resource_id(req, st, body, len, prefix);
}

/* The answer is accepted (relayed): Core's status, and its time so far, for the finish hooks. A
 * failure before this leaves them unset, as for a Core that never answered. For a streamed
 * answer the time runs to its last byte, so it includes what the transfer spent paused for a
 * slow client. */
static void
answer_facts(struct bp_http_req *req, const struct bp_proxy_req *st)
{
    struct bp_http_facts *f = bp_http_req_facts(req);

    f->upstream_status = st->up_status;
    f->upstream_us = st->up_head_us + (bp_clock_mono_us() - st->up_head_at_us);
}

/* Core's status and end-to-end headers as the client gets them. */
static struct bp_http_resp
answer_head(struct bp_http_req *req, const struct bp_proxy_req *st)
{
    answer_facts(req, st);
    return (struct bp_http_resp){
        .status = st->up_status,
        .headers = st->up_headers,
        .headers_len = st->up_headers_len,
        .length = st->up_length,
    };
}

/* Over max_response_bytes: the transfer is dropped (its connection closed) and the client gets
 * a 502, or, when the answer already streams, a connection closed before the end. Logged and
 * counted as the upstream client does its own failures. */
static void
answer_too_large(struct bp_http_req *req, struct bp_proxy_req *st)
{
    const struct bp_http_head *h = bp_http_req_head(req);

    BP_WARN("upstream request failed", BP_LSTR("request_id", bp_http_req_id(req)),
            BP_LSTR("instance", st->instance->id), BP_LSTR("error", bp_err_str(BP_ERR_UPSTREAM_TOO_LARGE)),
            BP_LSTRN("method", h->method, h->method_len),
            BP_LSTR("cause", "Core's answer is larger than max_response_bytes"));
    bp_metrics_upstream_error(BP_METRICS_UPSTREAM_OTHER);
    bp_upstream_cancel(st->xfer);
    st->xfer = NULL;
    if (st->streaming) {
        bp_http_resp_abort(req, BP_ERR_UPSTREAM_TOO_LARGE);
    } else {
        refuse(req, st, BP_ERR_UPSTREAM_TOO_LARGE, NULL);
    }
}

static void
up_head(void *arg, const struct bp_upstream_head *head)
{
    struct bp_http_req *req = arg;
    struct bp_proxy_req *st = bp_http_req_state(req);
    const struct bp_config *cfg = bp_http_req_cfg(req);
    const struct bp_http_head *h = bp_http_req_head(req);
    const char *replayed = bp_proxy__idem_replayed_false(st);
    size_t hold = bp_proxy__idem_hold_bytes(req, st);
    size_t cap = strlen(replayed);
    size_t len = 0;
    char *hdrs;

    st->up_status = head->status;
    /* 502/503/504 say Core cannot serve; any other answer (a 500 included) is Core serving. */
    health_report(req, st, !bp_health_status_fails(head->status));
    st->up_head_us = head->upstream_us;
    st->up_head_at_us = bp_clock_mono_us();
    st->up_length =
        head->framing == BP_UPSTREAM_BODY_LENGTH ? (int64_t)head->content_length : BP_HTTP_LENGTH_UNKNOWN;
    /* No body and no length for answers that cannot have one (RFC 9110 §6.4.1). For HEAD, a
     * Content-Length of 0 would misstate the size of the GET answer, so none is sent. */
    if (head->framing == BP_UPSTREAM_BODY_NONE || head->status == 204 || head->status == 304 ||
        (head->status >= 100 && head->status < 200) || bp_str_eq(h->method, h->method_len, "HEAD")) {
        st->up_length = BP_HTTP_LENGTH_NONE;
    }
    /* The head lives only during this call: the lines the client gets are copied now. */
    for (size_t i = 0; i < head->n_headers; i++) {
        cap += head->headers[i].name_len + head->headers[i].value_len + 4;
    }
    hdrs = bp_arena_alloc(bp_http_req_arena(req), cap + 1);
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct bp_upstream_header *hd = &head->headers[i];
        if (bp_proxy__drop_from_response(hd->name, hd->name_len)) {
            continue;
        }
        memcpy(hdrs + len, hd->name, hd->name_len);
        len += hd->name_len;
        memcpy(hdrs + len, ": ", 2);
        len += 2;
        memcpy(hdrs + len, hd->value, hd->value_len);
        len += hd->value_len;
        memcpy(hdrs + len, "\r\n", 2);
        len += 2;
    }
    st->core_headers_len = len;
    memcpy(hdrs + len, replayed, strlen(replayed));
    len += strlen(replayed);
    st->up_headers = hdrs;
    st->up_headers_len = len;
    if (st->up_length > (int64_t)cfg->max_response_bytes) {
        answer_too_large(req, st); /* the request may be gone */
        return;
    }
    /* Where the body waits until it is complete or passes the buffer: the answer's exact size in
     * the arena when it is known and small, otherwise a buffer that grows up to the bound (or, for
     * a client that could not tell a cut stream from a whole one, up to max_response_bytes). The
     * bound is larger for an answer kept for Idempotency-Key replays. */
    if (st->up_length >= 0 && (uint64_t)st->up_length <= hold) {
        bp_buf_init_fixed(&st->answer, bp_arena_alloc(bp_http_req_arena(req), (size_t)st->up_length + 1),
                          (size_t)st->up_length + 1);
    } else if (st->up_length != BP_HTTP_LENGTH_NONE) {
        bool streamable = st->up_length >= 0 || h->version_minor == 1;
        bp_buf_init(&st->answer, streamable ? hold : cfg->max_response_bytes);
    }
}

/* The answer is longer than the buffer: its head goes out with what was buffered, the rest
 * follows as it comes. A held response (audit.*=sync) is released as soon as its record is
 * durable, which is submitted now, instead of when the answer ends: until then the stream waits
 * paused at the write bound. Returns false when the client is already behind. */
static bool
stream_start(struct bp_http_req *req, struct bp_proxy_req *st)
{
    struct bp_http_resp out = answer_head(req, st);
    struct bp_http_hold *hold;
    bool more;

    note_resource_id(req, st, st->answer.data, st->answer.len, true);
    bp_proxy__idem_streamed(req, st);
    bp_http_resp_start(req, &out);
    st->streaming = true;
    hold = bp_http_req_hold(req);
    if (hold != NULL) {
        bp_proxy__audit_record_now(req, st, hold);
    }
    more = bp_http_resp_write(req, st->answer.data, st->answer.len);
    bp_buf_cleanup(&st->answer); /* copied or sent */
    return more;
}

static void
up_body(void *arg, const char *data, size_t len)
{
    struct bp_http_req *req = arg;
    struct bp_proxy_req *st = bp_http_req_state(req);
    bool more = true;

    st->answer_bytes += len;
    if (st->answer_bytes > bp_http_req_cfg(req)->max_response_bytes) {
        answer_too_large(req, st); /* the request may be gone */
        return;
    }
    if (!st->streaming) {
        if (len <= st->answer.max - st->answer.len) {
            BP_BUG_ON(bp_buf_append(&st->answer, data, len) != BP_OK);
            return;
        }
        more = stream_start(req, st);
    }
    if (!bp_http_resp_write(req, data, len) || !more) {
        bp_upstream_pause(st->xfer); /* on_writable resumes it */
    }
}

static void
up_end(void *arg, bp_err rc)
{
    struct bp_http_req *req = arg;
    struct bp_proxy_req *st = bp_http_req_state(req);
    struct bp_http_resp out;

    if (rc != BP_OK) {
        bp_proxy__idem_note_sent(st);
    }
    st->xfer = NULL;
    /* No head came: only not reaching Core or its silence count against it. */
    if (rc == BP_ERR_UPSTREAM_UNREACHABLE || rc == BP_ERR_UPSTREAM_TIMEOUT) {
        health_report(req, st, false);
    }
    if (st->streaming) {
        /* A failure after the head went out: the client must not take the cut answer for
         * complete (the upstream client logged and counted the failure). */
        if (rc == BP_OK) {
            answer_facts(req, st); /* Core's time to the end */
            bp_http_resp_end(req);
        } else {
            bp_http_resp_abort(req, rc);
        }
        return; /* the request may be gone */
    }
    if (rc != BP_OK) {
        refuse(req, st, rc, NULL);
        return;
    }
    out = answer_head(req, st);
    note_resource_id(req, st, st->answer.data, st->answer.len, false);
    /* An Idempotency-Key owner's answer is stored before the client has it. */
    if (bp_proxy__idem_store_answer(req, st, &out)) {
        return;
    }
    bp_http_respond(req, &out, st->answer.data, st->answer.len); /* the request may be gone */
}

static const struct bp_upstream_stream_cbs answer_cbs = {
    .on_head = up_head,
    .on_body = up_body,
    .on_end = up_end,
};

/* The client drained what waited: Core's answer may come on. */
static void
on_writable(void *self, struct bp_http_req *req)
{
    struct bp_proxy_req *st = bp_http_req_state(req);
    (void)self;

    if (st->xfer != NULL) {
        bp_upstream_resume(st->xfer);
    }
}

/* ---- the body and the request to Core ---- */

/* DESIGN §4: the body Core gets, with the transaction defaults when the route asks for them.
 * The rewritten body is bounded by the limit the body was read under (issue 11); it is made
 * only when the defaults add something, and lives until the request ends. An Idempotency-Key
 * owner's references are derived from its scope (DESIGN §4b): sent again, it carries the same. */
static bp_err
apply_defaults(struct bp_proxy_req *st, size_t limit, const char **out_reason)
{
    bool changed = false;
    bp_err rc;

    if (st->route->rewrite == BP_REWRITE_NONE || st->body_len == 0) {
        return BP_OK;
    }
    bp_buf_init(&st->rewritten, limit);
    rc = bp_txdefaults_apply_seeded(
        st->route->rewrite == BP_REWRITE_TX_BULK ? BP_TXDEFAULTS_BULK : BP_TXDEFAULTS_SINGLE, st->body, st->body_len,
        st->idem_owner ? st->idem_scope : NULL, &st->rewritten, &changed, out_reason);
    if (rc == BP_OK && changed) {
        st->body = st->rewritten.data;
        st->body_len = st->rewritten.len;
    }
    return rc;
}

/* The URL: the instance's base URL, the Core path, and the query without instance_id. */
static char *
upstream_url(struct bp_http_req *req, const struct bp_proxy_req *st)
{
    size_t base = strlen(st->instance->url);
    char *url = bp_arena_alloc(bp_http_req_arena(req), base + st->core_path_len + 1 + st->fwd_query_len + 1);
    size_t n = 0;

    memcpy(url, st->instance->url, base);
    n += base;
    memcpy(url + n, st->core_path, st->core_path_len);
    n += st->core_path_len;
    if (st->fwd_query_len > 0) {
        url[n++] = '?';
        memcpy(url + n, st->fwd_query, st->fwd_query_len);
        n += st->fwd_query_len;
    }
    url[n] = '\0';
    return url;
}

static void
forward(struct bp_http_req *req, struct bp_proxy_req *st)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    struct bp_proxy_worker *pw = bp_http_req_worker_state(req);
    const char **lines = NULL;
    size_t n_lines = 0;
    char *secret = NULL;
    size_t secret_len = 0;
    char method[BP_ROUTE_METHOD_MAX + 1];
    struct bp_upstream_req up;
    struct bp_proxy_client client;
    bp_err rc;

    client.peer = bp_http_req_socket_peer(req);
    client.chain = bp_http_req_forwarded_for(req, &client.chain_len);
    client.https = bp_http_req_https(req);
    rc = bp_proxy__upstream_headers(h, bp_http_req_id(req), &client, st->instance, bp_http_req_arena(req), &lines,
                                    &n_lines, &secret, &secret_len);
    if (rc == BP_OK) {
        /* A matched route's method (or HEAD for GET) always fits: never cut what Core gets. */
        BP_BUG_ON(h->method_len >= sizeof(method));
        memcpy(method, h->method, h->method_len);
        method[h->method_len] = '\0';
        up = (struct bp_upstream_req){
            .method = method,
            .url = upstream_url(req, st),
            .headers = lines,
            .n_headers = n_lines,
            .body = st->body,
            .body_len = st->body_len,
            .ca_file = st->instance->ca_file,
            .request_id = bp_http_req_id(req),
            .instance_id = st->instance->id,
        };
        /* The upstream client copies the method, URL and header lines before it returns. */
        rc = bp_upstream_stream(pw->upstream, &up, &answer_cbs, req, &st->xfer);
        /* From here Core may act on it: the audit record names the action (issue 8). */
        st->forwarded = rc == BP_OK;
    }
    if (secret != NULL) {
        bp_wipe(secret, secret_len); /* the arena's copy of the instance's Core secret */
    }
    if (rc != BP_OK) {
        refuse(req, st, BP_ERR_UPSTREAM_UNREACHABLE, NULL);
    }
}

void
bp_proxy__send_body(struct bp_http_req *req, struct bp_proxy_req *st)
{
    const struct bp_config *cfg = bp_http_req_cfg(req);
    const char *why = NULL;
    bp_err rc;

    st->body = bp_http_req_body(req, &st->body_len);
    rc = apply_defaults(st, st->route->large_body ? cfg->max_upload_bytes : cfg->max_body_bytes, &why);
    if (rc == BP_ERR_MALFORMED || rc == BP_ERR_PAYLOAD_TOO_LARGE) {
        refuse(req, st, rc, why);
        return;
    }
    if (rc != BP_OK) {
        /* Refusals are answered above, so this is the CSPRNG failing. */
        BP_ERROR("transaction defaults failed", BP_LSTR("request_id", bp_http_req_id(req)),
                 BP_LSTR("error", bp_err_str(rc)));
        refuse(req, st, BP_ERR_IO, NULL);
        return;
    }
    forward(req, st);
}

static void
on_body(void *self, struct bp_http_req *req, bp_err rc)
{
    struct bp_proxy_req *st = bp_http_req_state(req);
    (void)self;

    if (rc != BP_OK) {
        refuse(req, st, rc, NULL);
        return;
    }
    /* With an Idempotency-Key the store decides first (its done sends the body, or answers). */
    if (st->idem_key != NULL) {
        bp_proxy__idem_claim(req, st);
        return;
    }
    bp_proxy__send_body(req, st);
}

/* The client left (or the shutdown deadline came) before the answer: cancel the transfer. A
 * request that may have reached Core still gets its record. */
static bool
on_abort(void *self, struct bp_http_req *req)
{
    struct bp_proxy_req *st = bp_http_req_state(req);
    (void)self;

    if (st->xfer != NULL) {
        bp_proxy__idem_note_sent(st);
        bp_upstream_cancel(st->xfer);
        st->xfer = NULL;
    }
    bp_http_req_facts(req)->outcome = BP_ERR_CLIENT_CLOSED;
    note_facts(req, st);
    return true;
}

static void
on_end(void *self, struct bp_http_req *req)
{
    struct bp_proxy_req *st = bp_http_req_state(req);
    (void)self;

    BP_BUG_ON(st->xfer != NULL);
    bp_proxy__idem_end(req, st);
    /* A trial that never reached an outcome (refused, the client left): let the next one try. */
    if (st->health_trial) {
        bp_health_release(st->instance->health);
        st->health_trial = false;
    }
    bp_buf_cleanup(&st->rewritten);
    bp_buf_cleanup(&st->answer);
    bp_tables_release(st->tables);
    st->tables = NULL;
}

/* ---- per worker ---- */

static struct bp_upstream_opts
upstream_opts(const struct bp_config *cfg)
{
    return (struct bp_upstream_opts){
        .connect_timeout_ms = cfg->upstream_connect_timeout_ms,
        .total_timeout_ms = cfg->upstream_timeout_ms,
        .max_response_bytes = cfg->max_response_bytes,
    };
}

static bp_err
worker_init(void *self, struct event_base *base, const struct bp_config *cfg, void **out)
{
    struct bp_proxy_worker *pw = bp_calloc(1, sizeof(*pw));
    struct bp_upstream_opts uo = upstream_opts(cfg);
    struct bp_proxy *p = self;
    bp_err rc;

    rc = bp_upstream_new(base, &uo, &pw->upstream);
    if (rc != BP_OK) {
        bp_free(pw);
        return rc;
    }
    pw->proxy = p;
    pw->prober = !atomic_exchange(&p->prober_taken, true);
    bp_proxy__probe_conf(pw, cfg);
    *out = pw;
    return BP_OK;
}

static void
worker_fini(void *self, void *wstate)
{
    struct bp_proxy_worker *pw = wstate;

    if (pw == NULL) {
        return;
    }
    bp_proxy__probe_stop(pw);
    bp_upstream_free(pw->upstream);
    bp_tables_release(pw->tables);
    if (pw->prober) {
        atomic_store(&((struct bp_proxy *)self)->prober_taken, false);
    }
    bp_free(pw);
}

/* A reload: transfers started from now on use the new timeouts and response cap; the health
 * settings apply to the next outcome, the probe interval from now. */
static void
worker_reconf(void *self, void *wstate, const struct bp_config *cfg)
{
    struct bp_proxy_worker *pw = wstate;
    struct bp_upstream_opts uo = upstream_opts(cfg);
    (void)self;

    bp_upstream_set_opts(pw->upstream, &uo);
    bp_proxy__probe_conf(pw, cfg);
}

/* ---- the handler object ---- */

bp_err
bp_proxy_new(const struct bp_proxy_tables *tables, struct bp_idem *idem, struct bp_proxy **out)
{
    struct bp_proxy *p = bp_calloc(1, sizeof(*p));

    p->tables = *tables;
    p->idem = idem;
    atomic_init(&p->prober_taken, false);
    p->handler = (struct bp_http_handler){
        .name = "proxy",
        .on_head = on_head,
        .on_body = on_body,
        .on_abort = on_abort,
        .on_writable = on_writable,
        .on_end = on_end,
        .worker_init = worker_init,
        .worker_fini = worker_fini,
        .worker_reconf = worker_reconf,
        .self = p,
        .state_size = sizeof(struct bp_proxy_req),
    };
    p->audit_hook = (struct bp_http_hook){
        .name = "audit",
        .hold = bp_proxy__audit_hold,
        .finish = bp_proxy__audit_finish,
        .self = p,
    };
    *out = p;
    return BP_OK;
}

const struct bp_http_handler *
bp_proxy_handler(const struct bp_proxy *p)
{
    return &p->handler;
}

const struct bp_http_hook *
bp_proxy_audit_hook(const struct bp_proxy *p)
{
    return &p->audit_hook;
}

void
bp_proxy_free(struct bp_proxy *p)
{
    bp_free(p);
}
