/* The fixed phase order for /proxy/… (DESIGN §2):
 *   credential (401) → path syntax (400) → route table (404) → scope (403) → instance_id (400)
 *   → instance known and enabled (404) → credential allowed on the instance (403)
 * all on the head alone, before any body byte is read; then body → transaction defaults (§4)
 * → request to Core → Core's answer relayed unchanged. Every check is a call into the module
 * that owns it; this file only sequences them. */
#include <string.h>

#include "auth/auth.h"
#include "core/log.h"
#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "rewrite/rewrite.h"
#include "tables/tables.h"
#include "upstream/upstream.h"

#define PROXY_PREFIX_LEN 6 /* "/proxy" */

/* Why a request without a usable credential was refused, when it sent an X-Blnk-Key that was not
 * one: the official SDKs send their key there, so their users most need to know what happened. */
#define X_BLNK_KEY_NOT_CREDENTIAL                                                                            \
    "API key is required: X-Blnk-Key does not hold a blnkproxy API key or access token; send "               \
    "Authorization: Bearer <key>"

static bp_err
authenticate(struct bp_req *r)
{
    const struct bp_http_header *authz;
    const struct bp_http_header *blnk_key;
    struct bp_auth_headers ah = {0};
    bp_err rc;

    authz = bp_http_head_find(&r->head, "Authorization", &ah.n_authorization);
    blnk_key = bp_http_head_find(&r->head, "X-Blnk-Key", &ah.n_blnk_key);
    if (authz != NULL) {
        ah.authorization = authz->value;
        ah.authorization_len = authz->value_len;
    }
    if (blnk_key != NULL) {
        ah.blnk_key = blnk_key->value;
        ah.blnk_key_len = blnk_key->value_len;
    }
    rc = bp_auth_authenticate(r->tables, &ah, bp_clock_wall_s(), &r->cred, &r->auth_failure);
    if (rc == BP_ERR_AUTH_MISSING && ah.n_authorization == 0 && ah.n_blnk_key > 0) {
        r->reason = X_BLNK_KEY_NOT_CREDENTIAL;
    }
    return rc;
}

/* The instance the request is for: its instance_id, or the one its credential implies. */
static bp_err
resolve_instance(struct bp_req *r, const char *id, size_t id_len)
{
    bp_err rc;

    if (id == NULL) {
        rc = bp_auth_implied_instance(r->cred, &id, &r->reason);
        if (rc != BP_OK) {
            return rc;
        }
        id_len = strlen(id);
        r->asked_instance = id;
        r->asked_instance_len = id_len;
    }
    r->instance = bp_tables_find_instance(r->tables, id, id_len);
    if (r->instance == NULL || !r->instance->enabled) {
        r->instance = NULL;
        return BP_ERR_UNKNOWN_INSTANCE;
    }
    return bp_auth_check_instance(r->cred, id, id_len);
}

/* DESIGN §2 order. A refusal that has more to say than its code leaves a fixed reason in
 * r->reason (never request bytes). */
static bp_err
check_head(struct bp_req *r)
{
    const struct bp_http_head *h = &r->head;
    const char *id = NULL;
    const char *query_why = NULL;
    size_t id_len = 0;
    bp_err query_rc;
    bp_err rc;

    /* The query is read first so that every refusal's audit record can name the instance it
     * asked for (issue 8); its verdict only counts at its place in the order below. */
    query_rc = bp_query_take_instance_id(h->query, h->query_len, &id, &id_len, &r->fwd_query, &query_why);
    if (query_rc == BP_OK && id != NULL && bp_instance_id_is_valid(id, id_len)) {
        r->asked_instance = id;
        r->asked_instance_len = id_len;
    }
    rc = authenticate(r);
    if (rc != BP_OK) {
        return rc;
    }
    r->core_path = h->path + PROXY_PREFIX_LEN;
    r->core_path_len = h->path_len - PROXY_PREFIX_LEN;
    /* A '#' starts a fragment: an origin drops it, silently cutting the URL we send to Core. */
    if (memchr(h->target, '#', h->target_len) != NULL) {
        r->reason = "'#' in the request target: percent-encode it as %23";
        return BP_ERR_MALFORMED;
    }
    rc = bp_path_check(r->core_path, r->core_path_len, &r->reason);
    if (rc != BP_OK) {
        return rc;
    }
    r->route = bp_route_match(r->conf->routes, r->conf->n_routes, h->method, h->method_len, r->core_path, r->core_path_len);
    if (r->route == NULL) {
        return BP_ERR_ROUTE_NOT_FOUND;
    }
    rc = bp_auth_check_scope(r->cred, r->route->scope);
    if (rc != BP_OK) {
        return rc;
    }
    if (query_rc != BP_OK) {
        r->reason = query_why;
        return query_rc;
    }
    if (id != NULL && !bp_instance_id_is_valid(id, id_len)) {
        r->reason = BP_INSTANCE_ID_SHAPE_REASON;
        return BP_ERR_MALFORMED;
    }
    return resolve_instance(r, id, id_len);
}

void
bp_http__proxy_head(struct bp_conn *c)
{
    struct bp_req *r = c->req;
    const struct bp_config *cfg = r->conf->cfg;
    bp_err rc;

    r->tables = bp_tables_acquire();
    /* None yet only while a PostgreSQL store has been unreachable since start (issue 9): nothing
     * can be authenticated, and a 401 would wrongly tell the client its credential is bad. */
    if (r->tables == NULL) {
        bp_http__respond_error(c, BP_ERR_NOT_READY, 0);
        return;
    }
    rc = check_head(r);
    if (rc != BP_OK) {
        bp_http__respond_refusal(c, rc, r->route ? r->route->scope : 0, r->reason);
        return;
    }
    BP_BUG_ON(r->cred == NULL || r->instance == NULL);
    /* Forwarding a request whose record cannot be kept would break "every call attributable". */
    if (!bp_http__audit_reserve(c, r)) {
        bp_http__respond_error(c, BP_ERR_AUDIT_UNAVAILABLE, 0);
        return;
    }
    bp_http__conn_read_body(c, r->route->large_body ? cfg->max_upload_bytes : cfg->max_body_bytes);
}

static void
relay_response(struct bp_conn *c, const struct bp_upstream_resp *resp)
{
    struct bp_req *r = c->req;
    struct bp_buf hdrs;
    bool no_length;

    bp_buf_init(&hdrs, SIZE_MAX);
    for (size_t i = 0; i < resp->n_headers; i++) {
        bp_buf_append_str(&hdrs, resp->headers[i].name);
        bp_buf_append(&hdrs, ": ", 2);
        bp_buf_append_str(&hdrs, resp->headers[i].value);
        bp_buf_append(&hdrs, "\r\n", 2);
    }
    r->upstream_status = resp->status;
    r->upstream_us = resp->upstream_us;
    /* No body and no length for answers that cannot have one (RFC 9110 §6.4.1). For HEAD, a
     * Content-Length of 0 would misstate the size of the GET answer, so none is sent. */
    no_length = resp->status == 204 || resp->status == 304 || (resp->status >= 100 && resp->status < 200) ||
                bp_str_eq(r->head.method, r->head.method_len, "HEAD");
    bp_http__respond(c, resp->status, hdrs.data ? hdrs.data : "", NULL, resp->body.data, resp->body.len,
                     no_length);
    bp_buf_cleanup(&hdrs);
}

static void
upstream_done(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct bp_conn *c = arg;

    BP_BUG_ON(c->closed || c->req == NULL || c->state != BP_CONN_WAITING_UPSTREAM);
    c->req->xfer = NULL;
    if (rc != BP_OK) {
        bp_http__respond_error(c, rc, 0);
        return;
    }
    relay_response(c, resp);
}

/* DESIGN §4. The rewritten body is bounded by the limit the body was read under (issue 11). */
static bp_err
apply_defaults(struct bp_req *r, size_t limit, const char **out_reason)
{
    struct bp_buf out;
    bool changed = false;
    bp_err rc;

    if (r->route->rewrite == BP_REWRITE_NONE || r->body.len == 0) {
        return BP_OK;
    }
    bp_buf_init(&out, limit);
    rc = bp_txdefaults_apply(r->route->rewrite == BP_REWRITE_TX_BULK ? BP_TXDEFAULTS_BULK : BP_TXDEFAULTS_SINGLE,
                             r->body.data, r->body.len, &out, &changed, out_reason);
    if (rc == BP_OK && changed) {
        bp_buf_cleanup(&r->body);
        r->body = out;
        return BP_OK;
    }
    bp_buf_cleanup(&out);
    return rc;
}

void
bp_http__proxy_body_done(struct bp_conn *c)
{
    struct bp_req *r = c->req;
    struct bp_buf url;
    struct bp_buf hdr_store;
    const char **lines = NULL;
    size_t n_lines = 0;
    struct bp_upstream_req up;
    const char *why = NULL;
    bp_err rc;

    rc = apply_defaults(r, r->route->large_body ? r->conf->cfg->max_upload_bytes : r->conf->cfg->max_body_bytes,
                        &why);
    if (rc == BP_ERR_MALFORMED || rc == BP_ERR_PAYLOAD_TOO_LARGE) {
        bp_http__respond_refusal(c, rc, 0, why);
        return;
    }
    if (rc != BP_OK) {
        /* Refusals are answered above, so this is the CSPRNG failing. */
        BP_ERROR("transaction defaults failed", BP_LSTR("request_id", r->request_id), BP_LSTR("error", bp_err_str(rc)));
        bp_http__respond_error(c, BP_ERR_IO, 0);
        return;
    }
    bp_buf_init(&url, SIZE_MAX);
    bp_buf_append_str(&url, r->instance->url);
    bp_buf_append(&url, r->core_path, r->core_path_len);
    if (r->fwd_query.len > 0) {
        bp_buf_append(&url, "?", 1);
        bp_buf_append(&url, r->fwd_query.data, r->fwd_query.len);
    }
    bp_buf_init(&hdr_store, SIZE_MAX);
    rc = bp_http__upstream_headers(r, c->peer, &hdr_store, &lines, &n_lines);
    if (rc == BP_OK) {
        /* A matched route's method (or HEAD for GET) always fits: never cut what Core gets. */
        char method[BP_ROUTE_METHOD_MAX + 1];
        BP_BUG_ON(r->head.method_len >= sizeof(method));
        memcpy(method, r->head.method, r->head.method_len);
        method[r->head.method_len] = '\0';
        up = (struct bp_upstream_req){
            .method = method,
            .url = url.data,
            .headers = lines,
            .n_headers = n_lines,
            .body = r->body.data,
            .body_len = r->body.len,
            .ca_file = r->instance->ca_file,
            .request_id = r->request_id,
            .instance_id = r->instance->id,
        };
        /* The upstream client copies the method, URL and header lines into its request head. */
        rc = bp_upstream_send(c->worker->upstream, &up, upstream_done, c, &r->xfer);
        /* From here Core may act on it: the audit record names the action (issue 8). */
        r->forwarded = rc == BP_OK;
    }
    bp_free(lines);
    bp_wipe(hdr_store.data, hdr_store.len); /* it held the instance's Core secret */
    bp_buf_cleanup(&hdr_store);
    bp_buf_cleanup(&url);
    if (rc != BP_OK) {
        bp_http__respond_error(c, BP_ERR_UPSTREAM_UNREACHABLE, 0);
    }
}

void
bp_http__proxy_abort(struct bp_req *r)
{
    if (r->xfer != NULL) {
        bp_upstream_cancel(r->xfer);
        r->xfer = NULL;
    }
}
