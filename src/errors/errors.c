/* The only mapping from bp_err to DESIGN §2: status, error_detail.code, message and the
 * WWW-Authenticate header (see errors.h). Messages are fixed text: nothing from the request is echoed, so no
 * secret or attacker-chosen byte can reach an error body. A check that can say more than its
 * code (which rule a path broke, why no instance is implied) passes a reason, also fixed text
 * chosen by that check, which replaces the row's message (issue 8). */
#include "errors/errors.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "http/http.h"
#include "lib/bug.h"

#define INVALID_TOKEN_CHALLENGE "Bearer realm=\"blnkproxy\", error=\"invalid_token\""

static const struct bp_errors_row rows[] = {
    {BP_ERR_AUTH_MISSING, 401, "AUTH_MISSING_API_KEY", "API key is required", "Bearer realm=\"blnkproxy\""},
    {BP_ERR_AUTH_INVALID_KEY, 401, "AUTH_INVALID_API_KEY", "Invalid API key", INVALID_TOKEN_CHALLENGE},
    {BP_ERR_AUTH_EXPIRED_KEY, 401, "AUTH_EXPIRED_API_KEY", "API key has expired", INVALID_TOKEN_CHALLENGE},
    {BP_ERR_AUTH_INVALID_TOKEN, 401, "AUTH_INVALID_BEARER_TOKEN", "Invalid or expired access token",
     INVALID_TOKEN_CHALLENGE},
    {BP_ERR_AUTH_SCOPE, 403, "AUTH_INSUFFICIENT_PERMISSIONS", "Credential lacks the scope this route needs",
     NULL},
    {BP_ERR_AUTH_INSTANCE, 403, "AUTH_INSUFFICIENT_PERMISSIONS", "Credential may not use this instance", NULL},
    {BP_ERR_MISSING_INSTANCE_ID, 400, "GEN_MISSING_PARAMETER", "instance_id query parameter is required",
     NULL},
    {BP_ERR_MALFORMED, 400, "GEN_MALFORMED_REQUEST", "Malformed request", NULL},
    {BP_ERR_UNKNOWN_INSTANCE, 404, "PROXY_UNKNOWN_INSTANCE", "Unknown or disabled instance", NULL},
    {BP_ERR_ROUTE_NOT_FOUND, 404, "GEN_NOT_FOUND", "Route not found", NULL},
    {BP_ERR_PAYLOAD_TOO_LARGE, 413, "GEN_PAYLOAD_TOO_LARGE", "Request body is too large", NULL},
    {BP_ERR_UPSTREAM_UNREACHABLE, 502, "PROXY_BAD_GATEWAY", "Core instance is unreachable", NULL},
    {BP_ERR_UPSTREAM_TIMEOUT, 504, "PROXY_GATEWAY_TIMEOUT", "Core instance did not answer in time", NULL},
    {BP_ERR_UPSTREAM_TOO_LARGE, 502, "PROXY_BAD_GATEWAY", "Core response exceeds the configured limit", NULL},
    {BP_ERR_AUDIT_UNAVAILABLE, 503, "PROXY_AUDIT_UNAVAILABLE", "Audit log is saturated; retry shortly", NULL},
    /* Never sent (the client is gone): the status nginx logs for it, for the audit log. */
    {BP_ERR_CLIENT_CLOSED, 499, "PROXY_CLIENT_CLOSED_REQUEST", "Client closed the connection", NULL},
};

static const struct bp_errors_row internal_row = {BP_ERR_IO, 500, "GEN_INTERNAL_ERROR", "Internal error", NULL};

const struct bp_errors_row *
bp_errors_row(bp_err rc)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(rows); i++) {
        if (rows[i].rc == rc) {
            return &rows[i];
        }
    }
    return &internal_row;
}

const struct bp_errors_row *
bp_errors_catalog(size_t *out_n)
{
    *out_n = BP_ARRAY_LEN(rows);
    return rows;
}

const char *
bp_errors_code(bp_err rc)
{
    return bp_errors_row(rc)->code;
}

void
bp_errors_respond(struct bp_http_req *req, bp_err rc, const char *needed_scope, const char *reason)
{
    const struct bp_errors_row *row = bp_errors_row(rc);
    const char *text = reason != NULL ? reason : row->message;
    struct bp_http_facts *facts = bp_http_req_facts(req);
    struct bp_http_resp resp = {.status = row->status, .content_type = "application/json"};
    char headers[256];
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
    } else if (rc == BP_ERR_AUDIT_UNAVAILABLE) {
        hn = snprintf(headers, sizeof(headers), "Retry-After: 1\r\n");
    }
    BP_BUG_ON(hn < 0 || (size_t)hn >= sizeof(headers));
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
