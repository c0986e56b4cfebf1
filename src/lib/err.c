#include "lib/err.h"

#include <stddef.h>

static const char *const names[BP_ERR__COUNT] = {
    [BP_OK] = "ok",
    [BP_ERR_NOMEM] = "nomem",
    [BP_ERR_INVALID] = "invalid",
    [BP_ERR_LIMIT] = "limit",
    [BP_ERR_NOT_FOUND] = "not_found",
    [BP_ERR_EXISTS] = "exists",
    [BP_ERR_IO] = "io",
    [BP_ERR_STORE] = "store",
    [BP_ERR_STORE_DOWN] = "store_down",
    [BP_ERR_AGAIN] = "again",
    [BP_ERR_CANCELLED] = "cancelled",
    [BP_ERR_AUTH_MISSING] = "auth_missing",
    [BP_ERR_AUTH_INVALID_KEY] = "auth_invalid_key",
    [BP_ERR_AUTH_EXPIRED_KEY] = "auth_expired_key",
    [BP_ERR_AUTH_INVALID_TOKEN] = "auth_invalid_token",
    [BP_ERR_AUTH_SCOPE] = "auth_scope",
    [BP_ERR_AUTH_INSTANCE] = "auth_instance",
    [BP_ERR_AUTH_IP_NOT_ALLOWED] = "auth_ip_not_allowed",
    [BP_ERR_RATE_LIMITED] = "rate_limited",
    [BP_ERR_MISSING_INSTANCE_ID] = "missing_instance_id",
    [BP_ERR_MALFORMED] = "malformed",
    [BP_ERR_UNKNOWN_INSTANCE] = "unknown_instance",
    [BP_ERR_ROUTE_NOT_FOUND] = "route_not_found",
    [BP_ERR_PAYLOAD_TOO_LARGE] = "payload_too_large",
    [BP_ERR_UPSTREAM_UNREACHABLE] = "upstream_unreachable",
    [BP_ERR_UPSTREAM_TIMEOUT] = "upstream_timeout",
    [BP_ERR_UPSTREAM_TOO_LARGE] = "upstream_too_large",
    [BP_ERR_AUDIT_UNAVAILABLE] = "audit_unavailable",
    [BP_ERR_NOT_READY] = "not_ready",
    [BP_ERR_INSTANCE_UNAVAILABLE] = "instance_unavailable",
    [BP_ERR_OVERLOADED] = "overloaded",
    [BP_ERR_CLIENT_CLOSED] = "client_closed",
    [BP_ERR_IDEM_MISMATCH] = "idempotency_mismatch",
    [BP_ERR_IDEM_IN_FLIGHT] = "idempotency_in_flight",
    [BP_ERR_IDEM_UNKNOWN] = "idempotency_outcome_unknown",
    [BP_ERR_IDEM_NOT_KEPT] = "idempotency_answer_not_kept",
    [BP_ERR_IDEM_UNAVAILABLE] = "idempotency_unavailable",
};

const char *
bp_err_str(bp_err rc)
{
    if ((unsigned)rc >= BP_ERR__COUNT || names[rc] == NULL) {
        return "unknown";
    }
    return names[rc];
}
