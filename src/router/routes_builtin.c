#include "router/router.h"

#include <string.h>

#include "lib/bug.h"

/*
 * The DESIGN §3 route table as data, in the order DESIGN lists it: the documented Cloud routes,
 * then the Core reads, then the read-only POST queries. Only what is here reaches Core; Core's
 * administration routes (/api-keys*, /backup*, /hooks*, /search/reindex, /transactions/recover,
 * /balances-snapshots, /mocked-account, /accounts*, /balance-monitors*) are absent on purpose,
 * and route_match.c keeps captures from standing in for them.
 *
 * Audit action labels are the exact strings of the DESIGN §3 table; a NULL action is a read
 * marked "—" there. Scope follows the method (DESIGN §2) except for the POST queries, which
 * only read and so need proxy:read.
 */

#define R BP_SCOPE_READ
#define W BP_SCOPE_WRITE
#define NONE BP_REWRITE_NONE

static const struct bp_route builtin[] = {
    /* Documented Cloud routes: write. */
    {"POST", "/ledgers", W, "write", "Ledger created", "ledgers", NONE, false},
    {"POST", "/balances", W, "write", "Balance created", "balances", NONE, false},
    {"POST", "/transactions", W, "write", "Transaction created", "transactions", BP_REWRITE_TX_SINGLE, false},
    {"POST", "/transactions/bulk", W, "write", "Bulk transactions created", "transactions",
     BP_REWRITE_TX_BULK, false},
    {"PUT", "/transactions/inflight/:id", W, "write", "Inflight transaction updated", "transactions", NONE,
     false},
    {"POST", "/refund-transaction/:id", W, "write", "Transaction refunded", "transactions", NONE, false},
    {"POST", "/identities", W, "write", "Identity created", "identities", NONE, false},
    {"PUT", "/identities/:identity_id", W, "write", "Identity updated", "identities", NONE, false},
    {"PUT", "/balances/:id/identity", W, "write", "Identity linked to balance", "balances", NONE, false},
    {"POST", "/:id/metadata", W, "write", "Metadata updated", "metadata", NONE, false},

    /* Documented Cloud routes: read. */
    {"GET", "/balances/:id/at", R, "read", NULL, "balances", NONE, false},
    {"GET", "/balances/:id/lineage", R, "read", NULL, "balances", NONE, false},
    {"GET", "/transactions/:id/lineage", R, "read", NULL, "transactions", NONE, false},
    {"GET", "/identities/:identity_id/tokenized-fields", R, "read", NULL, "identities", NONE, false},
    {"GET", "/identities/:identity_id/detokenize/:field", R, "read", "Field detokenized", "identities", NONE,
     false},

    /* Documented Cloud routes: tokenization. */
    {"POST", "/identities/:identity_id/tokenize/:field", W, "tokenization", "Field tokenized", "identities",
     NONE, false},
    {"POST", "/identities/:identity_id/tokenize", W, "tokenization", "Fields tokenized", "identities", NONE,
     false},
    {"POST", "/identities/:identity_id/detokenize", W, "tokenization", "Fields detokenized", "identities",
     NONE, false},

    /* Documented Cloud routes: reconciliation. */
    {"POST", "/reconciliation/start", W, "reconciliation", "Reconciliation started", "reconciliation", NONE,
     false},
    /* multipart/form-data upload: the only route with the larger body limit. */
    {"POST", "/reconciliation/upload", W, "reconciliation", "Reconciliation data uploaded", "reconciliation",
     NONE, true},
    {"POST", "/reconciliation/matching-rules", W, "reconciliation", "Matching rule created", "reconciliation",
     NONE, false},
    {"PUT", "/reconciliation/matching-rules/:id", W, "reconciliation", "Matching rule updated",
     "reconciliation", NONE, false},
    {"DELETE", "/reconciliation/matching-rules/:id", W, "reconciliation", "Matching rule deleted",
     "reconciliation", NONE, false},
    {"GET", "/reconciliation/:reconciliation_id", R, "reconciliation", NULL, "reconciliation", NONE, false},
    {"POST", "/reconciliation/start-instant", W, "reconciliation", "Instant reconciliation started",
     "reconciliation", NONE, false},

    /* Core reads users of a self-hosted proxy expect. */
    {"GET", "/ledgers", R, "core-read", NULL, "ledgers", NONE, false},
    {"GET", "/ledgers/:id", R, "core-read", NULL, "ledgers", NONE, false},
    {"GET", "/balances", R, "core-read", NULL, "balances", NONE, false},
    {"GET", "/balances/:id", R, "core-read", NULL, "balances", NONE, false},
    {"GET", "/balances/indicator/:indicator/currency/:currency", R, "core-read", NULL, "balances", NONE,
     false},
    {"GET", "/transactions", R, "core-read", NULL, "transactions", NONE, false},
    {"GET", "/transactions/:id", R, "core-read", NULL, "transactions", NONE, false},
    {"GET", "/transactions/reference/:reference", R, "core-read", NULL, "transactions", NONE, false},
    {"GET", "/identities", R, "core-read", NULL, "identities", NONE, false},
    {"GET", "/identities/:id", R, "core-read", NULL, "identities", NONE, false},
    {"GET", "/health", R, "core-read", NULL, "health", NONE, false},

    /* Read-only POST queries: scope proxy:read although they are POSTs. */
    {"POST", "/ledgers/filter", R, "core-read", NULL, "ledgers", NONE, false},
    {"POST", "/balances/filter", R, "core-read", NULL, "balances", NONE, false},
    {"POST", "/transactions/filter", R, "core-read", NULL, "transactions", NONE, false},
    {"POST", "/identities/filter", R, "core-read", NULL, "identities", NONE, false},
    {"POST", "/search/:collection", R, "core-read", NULL, "search", NONE, false},
    {"POST", "/multi-search", R, "core-read", NULL, "search", NONE, false},
};

const struct bp_route *
bp_routes_builtin(size_t *out_count)
{
    *out_count = BP_ARRAY_LEN(builtin);
    return builtin;
}

static bool
seen_before(size_t row)
{
    for (size_t k = 0; k < row; k++) {
        if (strcmp(builtin[k].category, builtin[row].category) == 0) {
            return true;
        }
    }
    return false;
}

size_t
bp_route_categories(const char **out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < BP_ARRAY_LEN(builtin); i++) {
        if (seen_before(i)) {
            continue;
        }
        if (n < cap) {
            out[n] = builtin[i].category;
        }
        n++;
    }
    if (n < cap) {
        out[n] = BP_ROUTE_CATEGORY_CUSTOM;
    }
    return n + 1;
}
