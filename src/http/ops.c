/* Operational endpoints (DESIGN §2): no credential, answered on the loop thread from memory
 * (/metrics sums the per-thread counters; it never waits on another thread).
 * /readyz reports the watcher's last store check instead of querying the store here, because
 * loop threads never block on the store (STYLE §7): ready (200), or starting / degraded (503)
 * with the reason (issue 9). */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "http/http-int.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "metrics/metrics.h"

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

bool
bp_http__ops_route(struct bp_conn *c)
{
    const struct bp_http_head *h = &c->req->head;
    bool get = bp_str_eq(h->method, h->method_len, "GET") || bp_str_eq(h->method, h->method_len, "HEAD");

    if (!get) {
        return false;
    }
    if (bp_str_eq(h->path, h->path_len, "/healthz")) {
        static const char body[] = "{\"status\":\"ok\"}";
        bp_http__respond(c, 200, "Cache-Control: no-store\r\n", "application/json", body, sizeof(body) - 1, false);
        return true;
    }
    if (bp_str_eq(h->path, h->path_len, "/readyz")) {
        struct bp_server *s = c->worker->server;
        enum bp_readiness state;
        char reason[sizeof(s->ready_reason) * 6];
        char body[sizeof(reason) + 64];
        int n;

        /* A short lock, taken only by /readyz and the watcher: no request waits on it. */
        pthread_mutex_lock(&s->ready_lock);
        state = s->ready;
        bp_json_escape(reason, sizeof(reason), s->ready_reason, strlen(s->ready_reason));
        pthread_mutex_unlock(&s->ready_lock);
        if (state == BP_READY) {
            n = snprintf(body, sizeof(body), "{\"status\":\"ready\"}");
        } else {
            n = snprintf(body, sizeof(body), "{\"status\":\"%s\",\"reason\":\"%s\"}",
                         state == BP_STARTING ? "starting" : "degraded", reason);
        }
        bp_http__respond(c, state == BP_READY ? 200 : 503, "Cache-Control: no-store\r\n", "application/json", body,
                         (size_t)n, false);
        return true;
    }
    if (bp_str_eq(h->path, h->path_len, "/metrics")) {
        const struct bp_http_header *accept = first_header(h, "accept");
        struct bp_buf text;
        const char *type;
        bp_buf_init(&text, SIZE_MAX);
        /* Text format or OpenMetrics, as the scraper's Accept asks (metrics/ decides). */
        type = bp_metrics_render_for(accept ? accept->value : NULL, accept ? accept->value_len : 0, &text);
        bp_http__respond(c, 200, "Cache-Control: no-store\r\nVary: Accept\r\n", type, text.data, text.len, false);
        bp_buf_cleanup(&text);
        return true;
    }
    return false;
}
