/* The admin console's files (src/admin/console/, embedded by the build), answered on the loop
 * from memory: they are the same for everyone and hold no data; the page signs in and reads
 * everything through the admin API. The policy lets the page load only its own script and style
 * and talk only to its own origin, and no other site may frame it. */
#include <string.h>

#include "admin/admin.h"
#include "admin/console-assets.h"
#include "errors/errors.h"
#include "http/http.h"
#include "http/parser.h"
#include "lib/str.h"

static const char HEADERS[] =
    "Cache-Control: no-cache\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n";

static const struct bp_console_asset *
find(const char *path, size_t len)
{
    if (bp_str_eq(path, len, "/admin") || bp_str_eq(path, len, "/admin/")) {
        path = "/admin/index.html";
        len = strlen(path);
    }
    for (size_t i = 0; i < bp_console_assets_n; i++) {
        if (bp_str_eq(path, len, bp_console_assets[i].path)) {
            return &bp_console_assets[i];
        }
    }
    return NULL;
}

static void
on_head(void *self, struct bp_http_req *req)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_console_asset *a;
    (void)self;

    bp_http_req_facts(req)->group = "admin";
    if (!bp_str_eq(h->method, h->method_len, "GET") && !bp_str_eq(h->method, h->method_len, "HEAD")) {
        bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL);
        return;
    }
    a = find(h->path, h->path_len);
    if (a == NULL) {
        bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL);
        return;
    }
    bp_http_respond(req,
                    &(struct bp_http_resp){
                        .status = 200,
                        .headers = HEADERS,
                        .headers_len = sizeof(HEADERS) - 1,
                        .content_type = a->content_type,
                    },
                    (const char *)a->data, a->len);
}

static const struct bp_http_handler console_handler = {
    .name = "console",
    .on_head = on_head,
};

const struct bp_http_handler *
bp_admin_console_handler(void)
{
    return &console_handler;
}
