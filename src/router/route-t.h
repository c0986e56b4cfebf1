#ifndef BP_ROUTER_ROUTE_T_H
#define BP_ROUTER_ROUTE_T_H

/* A row of the DESIGN §3 route table, for modules that hold rows without matching them (the
 * proxy's live configuration, the audit record). Types only (STYLE §2). */

#include <stdbool.h>

#include "auth/auth-t.h" /* BP_SCOPE_* bits, what a row needs */

enum bp_rewrite { BP_REWRITE_NONE = 0, BP_REWRITE_TX_SINGLE, BP_REWRITE_TX_BULK };

/* One row of the table. Strings are static, or borrowed from the configuration it was built
 * from. */
struct bp_route {
    const char *method;   /* "GET", "POST", ... ; a GET route also matches HEAD */
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
