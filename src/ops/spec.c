/* GET /proxy/openapi.json: the OpenAPI document of the Proxy API (the one `blnkproxy openapi`
 * prints), without a credential, as the Cloud's API reference is public: it describes the
 * routes, scopes and errors, and holds no instance, key or secret.
 *
 * Rendered per worker when the worker starts and again when a reload reaches it (the "routes"
 * of the configuration are live), never per request: an unauthenticated client must not be able
 * to make the proxy render a document of tens of kilobytes for each request it sends. */
#include "ops/ops.h"

#include <stdio.h>

#include "core/log.h"
#include "errors/errors.h"
#include "http/http.h"
#include "http/parser.h"
#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "openapi/openapi.h"

struct spec_worker {
    struct bp_buf doc; /* empty when the last render failed */
};

static void
render(struct spec_worker *w, const struct bp_config *cfg)
{
    char err[256];
    struct bp_buf next;

    bp_buf_init(&next, SIZE_MAX);
    if (bp_openapi_render(cfg, BP_OPENAPI_SERVED, &next, err, sizeof(err)) != BP_OK) {
        /* The routes were checked when the configuration was loaded; keep the last document. */
        BP_WARN("the OpenAPI document could not be rendered; serving the previous one",
                BP_LSTR("reason", err));
        bp_buf_cleanup(&next);
        return;
    }
    bp_buf_cleanup(&w->doc);
    w->doc = next;
}

static bp_err
worker_init(void *self, struct event_base *base, const struct bp_config *cfg, void **out)
{
    struct spec_worker *w = bp_calloc(1, sizeof(*w));
    (void)self;
    (void)base;

    bp_buf_init(&w->doc, SIZE_MAX);
    render(w, cfg);
    *out = w;
    return BP_OK;
}

static void
worker_fini(void *self, void *wstate)
{
    struct spec_worker *w = wstate;
    (void)self;

    if (w != NULL) {
        bp_buf_cleanup(&w->doc);
        bp_free(w);
    }
}

static void
worker_reconf(void *self, void *wstate, const struct bp_config *cfg)
{
    (void)self;
    render(wstate, cfg);
}

static void
on_head(void *self, struct bp_http_req *req)
{
    static const char headers[] = "Cache-Control: public, max-age=60\r\n";
    const struct bp_http_head *h = bp_http_req_head(req);
    struct spec_worker *w = bp_http_req_worker_state(req);
    struct bp_http_resp r = {
        .status = 200,
        .headers = headers,
        .headers_len = sizeof(headers) - 1,
        .content_type = "application/json",
    };
    (void)self;

    bp_http_req_facts(req)->group = "ops";
    if (!bp_str_eq(h->method, h->method_len, "GET") && !bp_str_eq(h->method, h->method_len, "HEAD")) {
        bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL);
        return;
    }
    if (w->doc.len == 0) {
        bp_errors_respond(req, BP_ERR_IO, NULL, "the OpenAPI document could not be rendered");
        return;
    }
    bp_http_respond(req, &r, w->doc.data, w->doc.len);
}

static const struct bp_http_handler spec_handler = {
    .name = "openapi",
    .on_head = on_head,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .worker_reconf = worker_reconf,
};

const struct bp_http_handler *
bp_ops_openapi_handler(void)
{
    return &spec_handler;
}
