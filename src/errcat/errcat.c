/* The DESIGN §2 error catalog as rows (see errcat.h). Messages are fixed text: nothing from the
 * request is ever part of them, so no secret or attacker-chosen byte can reach an error body. */
#include "errcat/errcat.h"

#include "lib/bug.h"

#define INVALID_TOKEN_CHALLENGE "Bearer realm=\"blnkproxy\", error=\"invalid_token\""

static const struct bp_errcat_row rows[] = {
    {BP_ERR_AUTH_MISSING, 401, "AUTH_MISSING_API_KEY", "API key is required", "Bearer realm=\"blnkproxy\"", 0,
     true},
    {BP_ERR_AUTH_INVALID_KEY, 401, "AUTH_INVALID_API_KEY", "Invalid API key", INVALID_TOKEN_CHALLENGE, 0,
     true},
    {BP_ERR_AUTH_EXPIRED_KEY, 401, "AUTH_EXPIRED_API_KEY", "API key has expired", INVALID_TOKEN_CHALLENGE, 0,
     true},
    {BP_ERR_AUTH_INVALID_TOKEN, 401, "AUTH_INVALID_BEARER_TOKEN", "Invalid or expired access token",
     INVALID_TOKEN_CHALLENGE, 0, true},
    {BP_ERR_AUTH_SCOPE, 403, "AUTH_INSUFFICIENT_PERMISSIONS", "Credential lacks the scope this route needs",
     "Bearer error=\"insufficient_scope\", scope=\"<scope>\"", 0, true},
    {BP_ERR_AUTH_INSTANCE, 403, "AUTH_INSUFFICIENT_PERMISSIONS", "Credential may not use this instance", NULL,
     0, true},
    /* Issue 12: the key, or the OAuth client whose token it is, is held to networks the request's
     * client (its real address, when trusted proxies name one) is not in. */
    {BP_ERR_AUTH_IP_NOT_ALLOWED, 403, "AUTH_IP_NOT_ALLOWED",
     "Credential may not be used from this address (it has an IP allow-list)", NULL, 0, true},
    /* Issue 12: the credential's rate (its own, or rate_limit.default), or its peer's failed
     * authentications (rate_limit.auth_failures). Retry-After is the time until the next request
     * is allowed (at least 1 s); this row's 1 is what the OpenAPI document shows. */
    {BP_ERR_RATE_LIMITED, 429, "GEN_RATE_LIMITED", "Too many requests: rate limit exceeded", NULL, 1, true},
    {BP_ERR_MISSING_INSTANCE_ID, 400, "GEN_MISSING_PARAMETER", "instance_id query parameter is required",
     NULL, 0, true},
    {BP_ERR_MALFORMED, 400, "GEN_MALFORMED_REQUEST", "Malformed request", NULL, 0, true},
    {BP_ERR_UNKNOWN_INSTANCE, 404, "PROXY_UNKNOWN_INSTANCE", "Unknown or disabled instance", NULL, 0, true},
    {BP_ERR_ROUTE_NOT_FOUND, 404, "GEN_NOT_FOUND", "Route not found", NULL, 0, true},
    {BP_ERR_PAYLOAD_TOO_LARGE, 413, "GEN_PAYLOAD_TOO_LARGE", "Request body is too large", NULL, 0, true},
    {BP_ERR_UPSTREAM_UNREACHABLE, 502, "PROXY_BAD_GATEWAY", "Core instance is unreachable", NULL, 0, true},
    {BP_ERR_UPSTREAM_TIMEOUT, 504, "PROXY_GATEWAY_TIMEOUT", "Core instance did not answer in time", NULL, 0,
     true},
    {BP_ERR_UPSTREAM_TOO_LARGE, 502, "PROXY_BAD_GATEWAY", "Core response exceeds the configured limit", NULL,
     0, true},
    {BP_ERR_AUDIT_UNAVAILABLE, 503, "PROXY_AUDIT_UNAVAILABLE", "Audit log is saturated; retry shortly", NULL,
     1, true},
    /* serve started while the store was unreachable (PostgreSQL) and has no credentials yet: a 401
     * would tell clients their key is bad. */
    {BP_ERR_NOT_READY, 503, "PROXY_NOT_READY", "Credentials are not loaded yet; retry shortly", NULL, 1, true},
    /* The instance failed health.failures times in a row (or its probe failed): answered at once
     * instead of making every client wait for Core's timeout (issue 14). Retry-After is the
     * default health.cooldown, after which one trial request goes through. */
    {BP_ERR_INSTANCE_UNAVAILABLE, 503, "PROXY_INSTANCE_UNAVAILABLE",
     "Core instance is unavailable (failing its health checks); retry shortly", NULL, 5, true},
    /* Request bodies in memory, over all connections, would pass max_buffered_bytes (issue 11):
     * refused before the body is read, so many large bodies can never exhaust memory. */
    {BP_ERR_OVERLOADED, 503, "PROXY_OVERLOADED", "Too many request bodies are being received; retry shortly",
     NULL, 1, true},
    /* Idempotency-Key (DESIGN §4b, issue 12): a repeat under a key that the first request of its
     * scope does not let be answered. Retry-After on the 409s: the first may finish. */
    {BP_ERR_IDEM_MISMATCH, 422, "PROXY_IDEMPOTENCY_KEY_REUSED",
     "Idempotency-Key was already used for a different request (method, path, query or body)", NULL, 0, true},
    {BP_ERR_IDEM_IN_FLIGHT, 409, "PROXY_IDEMPOTENCY_IN_FLIGHT",
     "A request with this Idempotency-Key is still in progress; retry shortly", NULL, 1, true},
    {BP_ERR_IDEM_UNKNOWN, 409, "PROXY_IDEMPOTENCY_OUTCOME_UNKNOWN",
     "The outcome of the first request with this Idempotency-Key is unknown (Core did not answer); check "
     "in Core whether it took effect before sending it under a new key",
     NULL, 0, true},
    {BP_ERR_IDEM_NOT_KEPT, 409, "PROXY_IDEMPOTENCY_ANSWER_NOT_KEPT",
     "The first request with this Idempotency-Key was answered, but its answer was too large to keep; look "
     "the result up in Core",
     NULL, 0, true},
    {BP_ERR_IDEM_UNAVAILABLE, 503, "PROXY_IDEMPOTENCY_UNAVAILABLE",
     "Idempotency-Key answers cannot be reached now; retry shortly", NULL, 1, true},
    /* Never sent (the client is gone): the status nginx logs for it, for the audit log. */
    {BP_ERR_CLIENT_CLOSED, 499, "PROXY_CLIENT_CLOSED_REQUEST", "Client closed the connection", NULL, 0,
     false},
    /* Last: what every other bp_err answers. */
    {BP_ERR_IO, 500, "GEN_INTERNAL_ERROR", "Internal error", NULL, 0, true},
};

#define N_ROWS BP_ARRAY_LEN(rows)

const struct bp_errcat_row *
bp_errcat_find(bp_err rc)
{
    for (size_t i = 0; i + 1 < N_ROWS; i++) {
        if (rows[i].rc == rc) {
            return &rows[i];
        }
    }
    return &rows[N_ROWS - 1];
}

const struct bp_errcat_row *
bp_errcat_rows(size_t *out_n)
{
    *out_n = N_ROWS;
    return rows;
}
