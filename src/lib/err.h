#ifndef BP_LIB_ERR_H
#define BP_LIB_ERR_H

/* The one error type of blnkproxy. BP_OK is 0; every other value names a failure that the
 * code deciding its meaning maps to an outcome (http/errors.c maps the request ones to DESIGN §2). */
typedef enum {
    BP_OK = 0,
    BP_ERR_NOMEM,
    BP_ERR_INVALID,          /* bad argument or input for a non-HTTP caller (CLI, config) */
    BP_ERR_LIMIT,            /* a declared maximum would be exceeded */
    BP_ERR_NOT_FOUND,
    BP_ERR_EXISTS,
    BP_ERR_IO,
    BP_ERR_STORE,
    BP_ERR_STORE_DOWN,       /* the store cannot be reached (now): a later attempt may succeed */
    BP_ERR_AGAIN,            /* incomplete input: feed more bytes */
    BP_ERR_CANCELLED,        /* queued work dropped unrun (its queue stopped first) */

    /* Request outcomes, DESIGN §2 error table. */
    BP_ERR_AUTH_MISSING,
    BP_ERR_AUTH_INVALID_KEY,
    BP_ERR_AUTH_EXPIRED_KEY,
    BP_ERR_AUTH_INVALID_TOKEN,
    BP_ERR_AUTH_SCOPE,
    BP_ERR_AUTH_INSTANCE,
    BP_ERR_AUTH_IP_NOT_ALLOWED, /* the credential's allow-list does not hold the client's address */
    BP_ERR_RATE_LIMITED,        /* over the credential's rate, or the peer's failed authentications */
    BP_ERR_MISSING_INSTANCE_ID,
    BP_ERR_MALFORMED,
    BP_ERR_UNKNOWN_INSTANCE,
    BP_ERR_ROUTE_NOT_FOUND,
    BP_ERR_PAYLOAD_TOO_LARGE,
    BP_ERR_UPSTREAM_UNREACHABLE,
    BP_ERR_UPSTREAM_TIMEOUT,
    BP_ERR_UPSTREAM_TOO_LARGE,
    BP_ERR_AUDIT_UNAVAILABLE,  /* the audit queue is full: refuse rather than forward unrecorded */
    BP_ERR_NOT_READY,          /* no credentials loaded yet (the store was down at start) */
    BP_ERR_INSTANCE_UNAVAILABLE, /* the Core instance is marked down by its health (issue 14) */
    BP_ERR_OVERLOADED,         /* max_buffered_bytes: no memory left for this request's body */
    BP_ERR_CLIENT_CLOSED,      /* the client went away before its answer (audit and log only) */
    /* Idempotency-Key (DESIGN §4b, issue 12). */
    BP_ERR_IDEM_MISMATCH,      /* the key was used for a different request */
    BP_ERR_IDEM_IN_FLIGHT,     /* the first request under the key has no answer yet */
    BP_ERR_IDEM_UNKNOWN,       /* the first request's outcome is unknown (sent, no answer) */
    BP_ERR_IDEM_NOT_KEPT,      /* the first request's answer was too large to keep */
    BP_ERR_IDEM_UNAVAILABLE,   /* the store holding the answers cannot be reached */
    BP_ERR__COUNT
} bp_err;

/* A short stable name for logs ("not_found"). Never NULL. */
const char *bp_err_str(bp_err rc);

#endif
