/* Operational endpoints (DESIGN §2): no credential, answered on the loop thread from memory
 * (/metrics sums the per-thread counters; it never waits on another thread).
 * /readyz reports the watcher's last store check instead of querying the store here, because
 * loop threads never block on the store (STYLE §7). */
#include <string.h>

#include "http/http-int.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "metrics/metrics.h"

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
        static const char ready[] = "{\"status\":\"ready\"}";
        static const char unready[] = "{\"status\":\"unavailable\"}";
        if (atomic_load(&c->worker->server->ready)) {
            bp_http__respond(c, 200, "Cache-Control: no-store\r\n", "application/json", ready, sizeof(ready) - 1,
                             false);
        } else {
            bp_http__respond(c, 503, "Cache-Control: no-store\r\n", "application/json", unready,
                             sizeof(unready) - 1, false);
        }
        return true;
    }
    if (bp_str_eq(h->path, h->path_len, "/metrics")) {
        struct bp_buf text;
        bp_buf_init(&text, SIZE_MAX);
        bp_metrics_render(&text);
        bp_http__respond(c, 200, "Cache-Control: no-store\r\n", "text/plain; version=0.0.4; charset=utf-8",
                         text.data, text.len, false);
        bp_buf_cleanup(&text);
        return true;
    }
    return false;
}
