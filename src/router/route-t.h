#ifndef BP_ROUTER_ROUTE_T_H
#define BP_ROUTER_ROUTE_T_H

/* A row of the DESIGN §3 route table, for modules that hold rows without matching them (the
 * proxy's live configuration, the audit record). Types only (STYLE §2). */

#include <stdbool.h>

#include "auth/auth-t.h" /* BP_SCOPE_* bits, what a row needs */

/* The longest method a route may have, in letters (A-Z): the config refuses longer ones and
 * everything that copies a request's method (the request to Core, the access log) has room for
 * this many, so a method is never cut on the way (issue 11). IANA's longest all-letter method,
 * UPDATEREDIRECTREF, has 17. */
#define BP_ROUTE_METHOD_MAX 20

enum bp_rewrite { BP_REWRITE_NONE = 0, BP_REWRITE_TX_SINGLE, BP_REWRITE_TX_BULK };

/* One row of the table. Strings are static, or borrowed from the configuration it was built
 * from. */
struct bp_route {
    const char *method;   /* 1..BP_ROUTE_METHOD_MAX letters A-Z: GET, POST, PUT, PATCH, ...; a GET
                           * route also matches HEAD */
    const char *pattern;  /* "/transactions/inflight/:id"; ":x" matches one non-empty segment */
    unsigned scope;       /* BP_SCOPE_READ or BP_SCOPE_WRITE: what the caller needs */
    const char *group;    /* "write", "read", "tokenization", "reconciliation", "core-read" */
    const char *action;   /* audit action label, NULL for plain reads */
    const char *category; /* audit category: "ledgers", "balances", "transactions", "identities",
                           * "reconciliation", "metadata", "search", "health" */
    enum bp_rewrite rewrite;
    bool large_body;      /* uses the upload body limit instead of the default (multipart upload) */
};

#endif
