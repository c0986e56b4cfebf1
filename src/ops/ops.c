/* Operational endpoints (DESIGN §2): no credential, answered on the loop thread from memory
 * (/metrics sums the per-thread counters; it never waits on another thread). /readyz reports
 * the watcher's last store check instead of querying the store here, because loop threads never
 * block on the store (STYLE §7): ready (200), or starting / degraded (503) with the reason
 * (issue 9). Every other path nothing else serves gets Core's 404.
 *
 * And the finish hooks for what operators read about each request: the access-log line (which
 * the loop's log buffer batches, core/log.h) and the request metrics. Both read only the
 * request's facts, which its handler filled. */
#include "ops/ops.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "errors/errors.h"
#include "http/http.h"
#include "http/parser.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "config/config.h"
#include "lib/clock.h"
#include "metrics/metrics.h"

/* ---- the endpoints ---- */

/* The first field called name (lower case), or NULL. */
static const struct bp_http_header *
first_header(const struct bp_http_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++) {
        if (bp_str_ieq(h->headers[i].name, h->headers[i].name_len, name)) {
            return &h->headers[i];
        }
    }
    return NULL;
}

static void
respond_json(struct bp_http_req *req, int status, const char *body, size_t len)
{
    static const char no_store[] = "Cache-Control: no-store\r\n";
    struct bp_http_resp r = {
        .status = status,
        .headers = no_store,
        .headers_len = sizeof(no_store) - 1,
        .content_type = "application/json",
    };

    bp_http_respond(req, &r, body, len);
}

static void
on_head(void *self, struct bp_http_req *req)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    bool get = bp_str_eq(h->method, h->method_len, "GET") || bp_str_eq(h->method, h->method_len, "HEAD");
    (void)self;

    bp_http_req_facts(req)->group = "ops";
    if (get && bp_str_eq(h->path, h->path_len, "/healthz")) {
        static const char body[] = "{\"status\":\"ok\"}";
        respond_json(req, 200, body, sizeof(body) - 1);
        return;
    }
    if (get && bp_str_eq(h->path, h->path_len, "/readyz")) {
        char why[256];
        char reason[sizeof(why) * 6];
        char body[sizeof(reason) + 64];
        enum bp_readiness state = bp_server_readiness(bp_http_req_server(req), why, sizeof(why));
        int n;

        if (state == BP_READY) {
            n = snprintf(body, sizeof(body), "{\"status\":\"ready\"}");
        } else {
            bp_json_escape(reason, sizeof(reason), why, strlen(why));
            n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"reason\":\"%s\"}",
                         state == BP_STARTING ? "starting" : "degraded", reason);
        }
        respond_json(req, state == BP_READY ? 200 : 503, body, (size_t)n);
        return;
    }
    /* With an ops listener, the metrics (instance ids and traffic) are served there only. */
    if (get && bp_str_eq(h->path, h->path_len, "/metrics") &&
        (bp_http_req_on_ops(req) || bp_http_req_cfg(req)->ops_listen_host == NULL)) {
        static const char extra[] = "Cache-Control: no-store\r\nVary: Accept\r\n";
        const struct bp_http_header *accept = first_header(h, "accept");
        struct bp_http_resp r = {
            .status = 200,
            .headers = extra,
            .headers_len = sizeof(extra) - 1,
        };
        struct bp_buf text;
        bp_buf_init(&text, SIZE_MAX);
        /* Text format or OpenMetrics, as the scraper's Accept asks (metrics/ decides). */
        r.content_type = bp_metrics_render_for(accept ? accept->value : NULL, accept ? accept->value_len : 0, &text);
        bp_http_respond(req, &r, text.data, text.len);
        bp_buf_cleanup(&text);
        return;
    }
    bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL);
}

static const struct bp_http_handler ops_handler = {
    .name = "ops",
    .on_head = on_head,
};

const struct bp_http_handler *
bp_ops_handler(void)
{
    return &ops_handler;
}

/* ---- the access log ---- */

/* Refusals of clients that showed no valid credential (a 4xx without one) get at most this many
 * access lines a second per worker (issue 11: a flood of anonymous requests wrote tens of MB a
 * second into the log); the rest are counted, and the count is logged once the second is over
 * (with the worker's next access line). Each loop thread keeps its own count: no sharing. */
#define REFUSAL_LINES_PER_SECOND 20

static _Thread_local int64_t refusal_second;
static _Thread_local unsigned refusal_lines;
static _Thread_local uint64_t refusals_suppressed;

/* True when this access line may be written. */
static bool
access_line_allowed(const struct bp_http_facts *f)
{
    int64_t now = bp_clock_wall_s();

    if (now != refusal_second) {
        if (refusals_suppressed > 0) {
            BP_WARN("access lines of refused requests suppressed", BP_LINT("count", (int64_t)refusals_suppressed),
                    BP_LINT("per_second_max", REFUSAL_LINES_PER_SECOND));
            refusals_suppressed = 0;
        }
        refusal_second = now;
        refusal_lines = 0;
    }
    if (f->credential != NULL || f->status < 400 || f->status >= 500) {
        return true;
    }
    if (refusal_lines < REFUSAL_LINES_PER_SECOND) {
        refusal_lines++;
        return true;
    }
    refusals_suppressed++;
    return false;
}

static void
access_log_finish(void *self, struct bp_http_req *req, struct bp_http_hold *hold)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_http_facts *f = bp_http_req_facts(req);
    const char *peer = bp_http_req_peer(req);
    const char *socket_peer = bp_http_req_socket_peer(req);
    (void)self;
    (void)hold;

    if (!access_line_allowed(f)) {
        return;
    }
    BP_INFO("access", BP_LSTR("request_id", bp_http_req_id(req)), BP_LSTRN("method", h->method, h->method_len),
            BP_LSTR("route", f->route), BP_LSTR("instance", f->instance), BP_LSTR("credential", f->credential),
            BP_LINT("status", f->status), BP_LINT("upstream_status", f->upstream_status),
            BP_LSTR("error", f->outcome != BP_OK ? bp_err_str(f->outcome) : NULL), BP_LSTR("reason", f->reason),
            BP_LSTR("peer", peer), BP_LSTR("via", strcmp(peer, socket_peer) != 0 ? socket_peer : NULL),
            BP_LINT("bytes_in", f->bytes_in),
            BP_LINT("bytes_out", f->bytes_out), BP_LDBL("total_ms", f->total_us / 1000.0),
            BP_LDBL("upstream_ms", f->upstream_us / 1000.0));
}

static const struct bp_http_hook access_log_hook = {
    .name = "access_log",
    .finish = access_log_finish,
};

const struct bp_http_hook *
bp_ops_access_log_hook(void)
{
    return &access_log_hook;
}

/* ---- metrics ---- */

static void
metrics_finish(void *self, struct bp_http_req *req, struct bp_http_hold *hold)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_http_facts *f = bp_http_req_facts(req);
    char method[16];
    size_t mlen = h->method_len < sizeof(method) - 1 ? h->method_len : sizeof(method) - 1;
    (void)self;
    (void)hold;

    /* A request refused as malformed HTTP may have no parsed method at all. */
    if (mlen > 0) {
        memcpy(method, h->method, mlen);
    }
    method[mlen] = '\0';
    bp_metrics_request(&(struct bp_metrics_request){
        /* A request no handler got (malformed HTTP) counts with the operational ones. */
        .group = f->handler != NULL ? f->group : "ops",
        .method = method,
        .status = f->status,
        .instance = f->instance,
        .total_us = f->total_us,
        .upstream_us = f->upstream_status != 0 ? f->upstream_us : -1,
    });
}

static const struct bp_http_hook metrics_hook = {
    .name = "metrics",
    .finish = metrics_finish,
};

const struct bp_http_hook *
bp_ops_metrics_hook(void)
{
    return &metrics_hook;
}
