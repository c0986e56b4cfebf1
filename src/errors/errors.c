/* The only place that answers a bp_err as DESIGN §2 says: status, error_detail.code, message and
 * the WWW-Authenticate and Retry-After headers, from the rows of the error catalog (errcat/,
 * which the OpenAPI document describes as well). Messages are fixed text: nothing from the
 * request is echoed, so no secret or attacker-chosen byte can reach an error body. A check that
 * can say more than its code (which rule a path broke, why no instance is implied) passes a
 * reason, also fixed text chosen by that check, which replaces the row's message (issue 8). */
#include "errors/errors.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "errcat/errcat.h"
#include "http/http.h"
#include "lib/bug.h"

const char *
bp_errors_code(bp_err rc)
{
    return bp_errcat_find(rc)->code;
}

static void
respond(struct bp_http_req *req, bp_err rc, const char *needed_scope, const char *reason, int retry_after_s,
        const char *extra_headers)
{
    const struct bp_errcat_row *row = bp_errcat_find(rc);
    const char *text = reason != NULL ? reason : row->message;
    struct bp_http_facts *facts = bp_http_req_facts(req);
    struct bp_http_resp resp = {.status = row->status, .content_type = "application/json"};
    char headers[512];
    char message[512];
    char body[1280];
    int hn = 0;
    int n;

    if (rc == BP_ERR_AUTH_SCOPE) {
        hn = snprintf(headers, sizeof(headers),
                      "WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"%s\"\r\n",
                      needed_scope != NULL ? needed_scope : "proxy:read");
    } else if (row->www_authenticate != NULL) {
        hn = snprintf(headers, sizeof(headers), "WWW-Authenticate: %s\r\n", row->www_authenticate);
    } else if (retry_after_s > 0 || row->retry_after_s > 0) {
        hn = snprintf(headers, sizeof(headers), "Retry-After: %d\r\n",
                      retry_after_s > 0 ? retry_after_s : row->retry_after_s);
    }
    BP_BUG_ON(hn < 0 || (size_t)hn >= sizeof(headers));
    if (extra_headers != NULL) {
        int more = snprintf(headers + hn, sizeof(headers) - (size_t)hn, "%s", extra_headers);
        BP_BUG_ON(more < 0 || (size_t)(hn + more) >= sizeof(headers));
        hn += more;
    }
    /* Our own text, but it may hold a quote or a backslash: it goes out as a JSON string. */
    bp_json_escape(message, sizeof(message), text, strlen(text));
    n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"error_detail\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                 message, row->code, message);
    BP_BUG_ON(n < 0 || (size_t)n >= sizeof(body));
    facts->outcome = rc;
    facts->reason = reason;
    resp.headers = hn > 0 ? headers : NULL;
    resp.headers_len = (size_t)hn;
    bp_http_respond(req, &resp, body, (size_t)n);
}

void
bp_errors_respond(struct bp_http_req *req, bp_err rc, const char *needed_scope, const char *reason)
{
    respond(req, rc, needed_scope, reason, 0, NULL);
}

void
bp_errors_respond_retry(struct bp_http_req *req, bp_err rc, const char *reason, int retry_after_s,
                        const char *extra_headers)
{
    respond(req, rc, NULL, reason, retry_after_s, extra_headers);
}
