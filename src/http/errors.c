/* The only place that answers a bp_err as DESIGN §2 says: status, error_detail.code, message and
 * the WWW-Authenticate and Retry-After headers, from the rows of the error catalog (errcat/,
 * which the OpenAPI document describes as well). Messages are fixed text: nothing from the request is echoed, so no
 * secret or attacker-chosen byte can reach an error body. A check that can say more than its
 * code (which rule a path broke, why no instance is implied) passes a reason, also fixed text
 * chosen by that check, which replaces the row's message (issue 8). */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "errcat/errcat.h"
#include "http/http-int.h"
#include "lib/bug.h"

/* The rows live in errcat/ (the catalog as data, which the OpenAPI document describes too). */
static const struct bp_errcat_row *
find_row(bp_err rc)
{
    return bp_errcat_find(rc);
}

int
bp_http__error_status(bp_err rc)
{
    return find_row(rc)->status;
}

const char *
bp_http__error_code(bp_err rc)
{
    return find_row(rc)->code;
}

void
bp_http__respond_refusal(struct bp_conn *c, bp_err rc, unsigned needed_scope, const char *reason)
{
    const struct bp_errcat_row *row = find_row(rc);
    const char *text = reason != NULL ? reason : row->message;
    char headers[256];
    char message[512];
    char body[1280];
    int n;

    headers[0] = '\0';
    if (rc == BP_ERR_AUTH_SCOPE) {
        snprintf(headers, sizeof(headers),
                 "WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=\"%s\"\r\n",
                 (needed_scope & BP_SCOPE_WRITE) ? "proxy:write" : "proxy:read");
    } else if (row->www_authenticate != NULL) {
        snprintf(headers, sizeof(headers), "WWW-Authenticate: %s\r\n", row->www_authenticate);
    } else if (row->retry_after_s > 0) {
        snprintf(headers, sizeof(headers), "Retry-After: %d\r\n", row->retry_after_s);
    }
    /* Our own text, but it may hold a quote or a backslash: it goes out as a JSON string. */
    bp_json_escape(message, sizeof(message), text, strlen(text));
    n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"error_detail\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                 message, row->code, message);
    BP_BUG_ON(n < 0 || (size_t)n >= sizeof(body));
    if (c->req != NULL) {
        c->req->outcome = rc;
        c->req->reason = reason;
    }
    bp_http__respond(c, row->status, headers, "application/json", body, (size_t)n, false);
}

void
bp_http__respond_error(struct bp_conn *c, bp_err rc, unsigned needed_scope)
{
    bp_http__respond_refusal(c, rc, needed_scope, NULL);
}
