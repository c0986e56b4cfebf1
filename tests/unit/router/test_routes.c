#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "router/router.h"

#define R BP_SCOPE_READ
#define W BP_SCOPE_WRITE
#define NONE BP_REWRITE_NONE

/* DESIGN §3 written out independently of routes_builtin.c, with a concrete path per row. */
struct want {
    const char *method;
    const char *pattern;
    const char *path;
    unsigned scope;
    const char *group;
    const char *action;
    const char *category;
    enum bp_rewrite rewrite;
    bool large_body;
};

static const struct want table[] = {
    {"POST", "/ledgers", "/ledgers", W, "write", "Ledger created", "ledgers", NONE, false},
    {"POST", "/balances", "/balances", W, "write", "Balance created", "balances", NONE, false},
    {"POST", "/transactions", "/transactions", W, "write", "Transaction created", "transactions",
     BP_REWRITE_TX_SINGLE, false},
    {"POST", "/transactions/bulk", "/transactions/bulk", W, "write", "Bulk transactions created",
     "transactions", BP_REWRITE_TX_BULK, false},
    {"PUT", "/transactions/inflight/:id", "/transactions/inflight/txn_123", W, "write",
     "Inflight transaction updated", "transactions", NONE, false},
    {"POST", "/refund-transaction/:id", "/refund-transaction/txn_123", W, "write", "Transaction refunded",
     "transactions", NONE, false},
    {"POST", "/identities", "/identities", W, "write", "Identity created", "identities", NONE, false},
    {"PUT", "/identities/:identity_id", "/identities/idt_1", W, "write", "Identity updated", "identities",
     NONE, false},
    {"PUT", "/balances/:id/identity", "/balances/bln_1/identity", W, "write", "Identity linked to balance",
     "balances", NONE, false},
    {"POST", "/:id/metadata", "/ldg_123/metadata", W, "write", "Metadata updated", "metadata", NONE, false},
    {"GET", "/balances/:id/at", "/balances/bln_1/at", R, "read", NULL, "balances", NONE, false},
    {"GET", "/balances/:id/lineage", "/balances/bln_1/lineage", R, "read", NULL, "balances", NONE, false},
    {"GET", "/transactions/:id/lineage", "/transactions/txn_1/lineage", R, "read", NULL, "transactions", NONE,
     false},
    {"GET", "/identities/:identity_id/tokenized-fields", "/identities/idt_1/tokenized-fields", R, "read",
     NULL, "identities", NONE, false},
    {"GET", "/identities/:identity_id/detokenize/:field", "/identities/idt_1/detokenize/email", R, "read",
     "Field detokenized", "identities", NONE, false},
    {"POST", "/identities/:identity_id/tokenize/:field", "/identities/idt_1/tokenize/email", W,
     "tokenization", "Field tokenized", "identities", NONE, false},
    {"POST", "/identities/:identity_id/tokenize", "/identities/idt_1/tokenize", W, "tokenization",
     "Fields tokenized", "identities", NONE, false},
    {"POST", "/identities/:identity_id/detokenize", "/identities/idt_1/detokenize", W, "tokenization",
     "Fields detokenized", "identities", NONE, false},
    {"POST", "/reconciliation/start", "/reconciliation/start", W, "reconciliation", "Reconciliation started",
     "reconciliation", NONE, false},
    {"POST", "/reconciliation/upload", "/reconciliation/upload", W, "reconciliation",
     "Reconciliation data uploaded", "reconciliation", NONE, true},
    {"POST", "/reconciliation/matching-rules", "/reconciliation/matching-rules", W, "reconciliation",
     "Matching rule created", "reconciliation", NONE, false},
    {"PUT", "/reconciliation/matching-rules/:id", "/reconciliation/matching-rules/rule_1", W,
     "reconciliation", "Matching rule updated", "reconciliation", NONE, false},
    {"DELETE", "/reconciliation/matching-rules/:id", "/reconciliation/matching-rules/rule_1", W,
     "reconciliation", "Matching rule deleted", "reconciliation", NONE, false},
    {"GET", "/reconciliation/:reconciliation_id", "/reconciliation/recon_1", R, "reconciliation", NULL,
     "reconciliation", NONE, false},
    {"POST", "/reconciliation/start-instant", "/reconciliation/start-instant", W, "reconciliation",
     "Instant reconciliation started", "reconciliation", NONE, false},
    {"GET", "/ledgers", "/ledgers", R, "core-read", NULL, "ledgers", NONE, false},
    {"GET", "/ledgers/:id", "/ledgers/ldg_1", R, "core-read", NULL, "ledgers", NONE, false},
    {"GET", "/balances", "/balances", R, "core-read", NULL, "balances", NONE, false},
    {"GET", "/balances/:id", "/balances/bln_1", R, "core-read", NULL, "balances", NONE, false},
    {"GET", "/balances/indicator/:indicator/currency/:currency", "/balances/indicator/@World/currency/USD", R,
     "core-read", NULL, "balances", NONE, false},
    {"GET", "/transactions", "/transactions", R, "core-read", NULL, "transactions", NONE, false},
    {"GET", "/transactions/:id", "/transactions/txn_1", R, "core-read", NULL, "transactions", NONE, false},
    {"GET", "/transactions/reference/:reference", "/transactions/reference/ref_1", R, "core-read", NULL,
     "transactions", NONE, false},
    {"GET", "/identities", "/identities", R, "core-read", NULL, "identities", NONE, false},
    {"GET", "/identities/:id", "/identities/idt_1", R, "core-read", NULL, "identities", NONE, false},
    {"GET", "/health", "/health", R, "core-read", NULL, "health", NONE, false},
    {"POST", "/ledgers/filter", "/ledgers/filter", R, "core-read", NULL, "ledgers", NONE, false},
    {"POST", "/balances/filter", "/balances/filter", R, "core-read", NULL, "balances", NONE, false},
    {"POST", "/transactions/filter", "/transactions/filter", R, "core-read", NULL, "transactions", NONE,
     false},
    {"POST", "/identities/filter", "/identities/filter", R, "core-read", NULL, "identities", NONE, false},
    {"POST", "/search/:collection", "/search/transactions", R, "core-read", NULL, "search", NONE, false},
    {"POST", "/multi-search", "/multi-search", R, "core-read", NULL, "search", NONE, false},
};

#define NWANT (sizeof(table) / sizeof(table[0]))

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static const struct bp_route *
match(const char *method, const char *path)
{
    size_t n;
    const struct bp_route *t = bp_routes_builtin(&n);
    return bp_route_match(t, n, method, strlen(method), path, strlen(path));
}

static void
assert_opt_str_equal(const char *got, const char *want)
{
    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

static void
test_table_is_design_table(void **state)
{
    size_t n;
    const struct bp_route *t = bp_routes_builtin(&n);
    size_t i;

    assert_int_equal(n, NWANT);
    for (i = 0; i < n; i++) {
        assert_string_equal(t[i].method, table[i].method);
        assert_string_equal(t[i].pattern, table[i].pattern);
        assert_int_equal(t[i].scope, table[i].scope);
        assert_string_equal(t[i].group, table[i].group);
        assert_opt_str_equal(t[i].action, table[i].action);
        assert_string_equal(t[i].category, table[i].category);
        assert_int_equal(t[i].rewrite, table[i].rewrite);
        assert_int_equal(t[i].large_body, table[i].large_body);
    }
}

static void
test_every_route_matches_its_row(void **state)
{
    size_t n;
    const struct bp_route *t = bp_routes_builtin(&n);
    size_t i;

    for (i = 0; i < NWANT; i++) {
        const struct bp_route *r = match(table[i].method, table[i].path);
        if (r != &t[i]) {
            fail_msg("%s %s matched %s %s, want row %zu", table[i].method, table[i].path, r ? r->method : "-",
                     r ? r->pattern : "(none)", i);
        }
        if (strcmp(table[i].method, "GET") == 0) {
            assert_ptr_equal(match("HEAD", table[i].path), &t[i]);
        }
    }
}

/* Another method on a row's path never reaches that row; it may only reach a row of its own
 * method (GET /transactions/bulk is a GET /transactions/:id lookup). */
static void
test_wrong_method_is_null(void **state)
{
    static const char *const wrong[][2] = {
        {"DELETE", "/ledgers"},
        {"PUT", "/ledgers"},
        {"PATCH", "/transactions"},
        {"PUT", "/transactions/bulk"},
        {"GET", "/transactions/inflight/x"},
        {"POST", "/transactions/inflight/x"},
        {"POST", "/ledgers/ldg_1"},
        {"DELETE", "/identities/idt_1"},
        {"GET", "/refund-transaction/x"},
        {"PUT", "/refund-transaction/x"},
        {"GET", "/ldg_1/metadata"},
        {"PUT", "/ldg_1/metadata"},
        {"POST", "/balances/bln_1/at"},
        {"GET", "/balances/bln_1/identity"},
        {"GET", "/identities/idt_1/tokenize"},
        {"POST", "/identities/idt_1/detokenize/email"},
        {"GET", "/identities/idt_1/tokenize/email"},
        {"PUT", "/reconciliation/matching-rules"},
        {"GET", "/reconciliation/matching-rules/rule_1"},
        {"POST", "/reconciliation/recon_1"},
        {"POST", "/health"},
        {"GET", "/multi-search"},
        {"GET", "/search/transactions"},
        {"GET", "/ledgers/filter/x"},
        {"OPTIONS", "/ledgers"},
        {"TRACE", "/health"},
        {"CONNECT", "/health"},
    };
    size_t n;
    const struct bp_route *t = bp_routes_builtin(&n);
    size_t i;
    size_t m;

    for (i = 0; i < NWANT; i++) {
        for (m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            const char *method = methods[m];
            const char *as = strcmp(method, "HEAD") == 0 ? "GET" : method;
            const struct bp_route *r = match(method, table[i].path);

            if (strcmp(as, table[i].method) == 0) {
                continue;
            }
            if (r == &t[i] || (r != NULL && strcmp(r->method, as) != 0)) {
                fail_msg("%s %s matched %s %s", method, table[i].path, r->method, r->pattern);
            }
        }
    }
    for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        const struct bp_route *r = match(wrong[i][0], wrong[i][1]);
        if (r != NULL) {
            fail_msg("%s %s matched %s %s", wrong[i][0], wrong[i][1], r->method, r->pattern);
        }
    }
    /* Method names are case-sensitive and exact. */
    assert_null(match("get", "/ledgers"));
    assert_null(match("post", "/ledgers"));
    assert_null(match("GETX", "/ledgers"));
    assert_null(match("GE", "/ledgers"));
    assert_null(match("", "/ledgers"));
    assert_null(match("head", "/ledgers"));
    /* HEAD reaches GET rows only. */
    assert_null(match("HEAD", "/transactions/bulk/x"));
    assert_null(match("HEAD", "/identities/idt_1/tokenize"));
}

static void
test_admin_routes_never_match(void **state)
{
    static const char *const admin[][2] = {
        {"GET", "/api-keys"},
        {"POST", "/api-keys"},
        {"DELETE", "/api-keys/x"},
        {"GET", "/api-keys/x"},
        {"POST", "/api-keys/metadata"},
        {"POST", "/API-KEYS/metadata"},
        {"POST", "/api-keys2/metadata"},
        {"GET", "/backup"},
        {"POST", "/backup"},
        {"GET", "/backup/drive"},
        {"GET", "/backup-s3"},
        {"POST", "/backup/metadata"},
        {"POST", "/backup-s3/metadata"},
        {"POST", "/hooks"},
        {"GET", "/hooks"},
        {"GET", "/hooks/x"},
        {"PUT", "/hooks/x"},
        {"DELETE", "/hooks/x"},
        {"POST", "/hooks/metadata"},
        {"POST", "/search/reindex"},
        {"POST", "/SEARCH/reindex"},
        {"POST", "/search/REINDEX"},
        {"POST", "/transactions/recover"},
        {"GET", "/transactions/recover"},
        {"GET", "/balances-snapshots"},
        {"POST", "/balances-snapshots"},
        {"POST", "/balances-snapshots/metadata"},
        {"POST", "/mocked-account"},
        {"POST", "/mocked-account/metadata"},
        {"POST", "/accounts"},
        {"GET", "/accounts"},
        {"GET", "/accounts/x"},
        {"POST", "/accounts/metadata"},
        {"POST", "/balance-monitors"},
        {"GET", "/balance-monitors"},
        {"GET", "/balance-monitors/x"},
        {"PUT", "/balance-monitors/x"},
        {"POST", "/balance-monitors/metadata"},
    };
    /* Other first-level resource names are not entity ids for "POST /:id/metadata" either. */
    static const char *const resource_metadata[] = {
        "/ledgers/metadata",    "/balances/metadata",       "/transactions/metadata",
        "/identities/metadata", "/reconciliation/metadata", "/multi-search/metadata",
        "/health/metadata",     "/Ledgers/metadata",
    };
    size_t i;
    size_t m;

    for (i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
        const struct bp_route *r = match(admin[i][0], admin[i][1]);
        if (r != NULL) {
            fail_msg("%s %s matched %s %s", admin[i][0], admin[i][1], r->method, r->pattern);
        }
        /* Admin paths match under no method at all. */
        for (m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            r = match(methods[m], admin[i][1]);
            if (r != NULL) {
                fail_msg("%s %s matched %s %s", methods[m], admin[i][1], r->method, r->pattern);
            }
        }
    }
    for (i = 0; i < sizeof(resource_metadata) / sizeof(resource_metadata[0]); i++) {
        const struct bp_route *r = match("POST", resource_metadata[i]);
        if (r != NULL) {
            fail_msg("POST %s matched %s", resource_metadata[i], r->pattern);
        }
    }
    /* "/search/metadata" is a search of the "metadata" collection, as Core routes it. */
    assert_non_null(match("POST", "/search/metadata"));
    assert_string_equal(match("POST", "/search/metadata")->pattern, "/search/:collection");
}

static void
test_literals_beat_captures(void **state)
{
    const struct bp_route *r;

    r = match("POST", "/transactions/bulk");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/transactions/bulk");
    assert_int_equal(r->rewrite, BP_REWRITE_TX_BULK);

    r = match("PUT", "/transactions/inflight/x");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/transactions/inflight/:id");

    /* "reference" is literal in one row and a capture value in another. */
    r = match("GET", "/transactions/reference/lineage");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/transactions/reference/:reference");
    r = match("GET", "/transactions/txn_1/lineage");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/transactions/:id/lineage");

    /* Capture-only rows still take names that are not reserved. */
    r = match("GET", "/transactions/bulk");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/transactions/:id");
    r = match("GET", "/balances/indicator");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/balances/:id");
    r = match("POST", "/search/ledgers");
    assert_non_null(r);
    assert_string_equal(r->pattern, "/search/:collection");
    assert_int_equal(r->scope, BP_SCOPE_READ);

    /* Literal beats capture regardless of table order. */
    {
        static const struct bp_route rows[] = {
            {"GET", "/a/:x/c", BP_SCOPE_READ, "t", NULL, "t", BP_REWRITE_NONE, false},
            {"GET", "/a/b/:y", BP_SCOPE_READ, "t", NULL, "t", BP_REWRITE_NONE, false},
            {"GET", "/a/b/c", BP_SCOPE_READ, "t", NULL, "t", BP_REWRITE_NONE, false},
            {"GET", "/a/b/c", BP_SCOPE_WRITE, "t", NULL, "t", BP_REWRITE_NONE, false},
        };
        assert_ptr_equal(bp_route_match(rows, 4, "GET", 3, "/a/b/c", 6), &rows[2]);
        assert_ptr_equal(bp_route_match(rows, 2, "GET", 3, "/a/b/c", 6), &rows[1]);
        assert_ptr_equal(bp_route_match(rows, 1, "GET", 3, "/a/b/c", 6), &rows[0]);
        assert_ptr_equal(bp_route_match(rows, 4, "GET", 3, "/a/z/c", 6), &rows[0]);
        assert_ptr_equal(bp_route_match(rows, 4, "HEAD", 4, "/a/b/q", 6), &rows[1]);
    }
}

static void
test_metadata_takes_entity_ids(void **state)
{
    static const char *const ids[] = {"ldg_1", "bln_1", "txn_1", "idt_1",
                                      "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"};
    size_t i;

    for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char path[128];
        const struct bp_route *r;

        assert_true(strlen(ids[i]) + 10 < sizeof(path));
        memcpy(path, "/", 1);
        memcpy(path + 1, ids[i], strlen(ids[i]));
        memcpy(path + 1 + strlen(ids[i]), "/metadata", sizeof("/metadata"));
        r = match("POST", path);
        assert_non_null(r);
        assert_string_equal(r->pattern, "/:id/metadata");
        assert_string_equal(r->category, "metadata");
    }
}

static void
test_shapes_that_do_not_match(void **state)
{
    assert_null(match("GET", "/"));
    assert_null(match("GET", "/nothing"));
    assert_null(match("GET", "/ledgers/ldg_1/extra"));
    assert_null(match("GET", "/balances/indicator/x/currency"));
    assert_null(match("PUT", "/transactions/inflight"));
    assert_null(match("POST", "/metadata"));
    assert_null(match("POST", "/ldg_1/metadata/x"));
    assert_null(match("POST", "/ldg_1/Metadata"));
    assert_null(match("GET", "/Ledgers"));
    assert_null(match("GET", "/ledgersx"));
    assert_null(match("GET", "/ledger"));
    /* Unchecked input never matches an empty capture or a missing leading slash. */
    assert_null(match("GET", "/ledgers/"));
    assert_null(match("POST", "//metadata"));
    assert_null(match("GET", "ledgers"));
    assert_null(match("GET", ""));
    assert_null(bp_route_match(NULL, 0, "GET", 3, "/ledgers", 8));
    /* Only path_len bytes are the path. */
    {
        size_t n;
        const struct bp_route *t = bp_routes_builtin(&n);
        assert_non_null(bp_route_match(t, n, "GET", 3, "/ledgers/x", 8));
        assert_string_equal(bp_route_match(t, n, "GET", 3, "/ledgers/x", 8)->pattern, "/ledgers");
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_design_table),    cmocka_unit_test(test_every_route_matches_its_row),
        cmocka_unit_test(test_wrong_method_is_null),     cmocka_unit_test(test_admin_routes_never_match),
        cmocka_unit_test(test_literals_beat_captures),   cmocka_unit_test(test_metadata_takes_entity_ids),
        cmocka_unit_test(test_shapes_that_do_not_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
