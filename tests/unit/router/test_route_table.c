/* The runtime route table: built-in rows adjusted by the operator's "routes" config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/alloc.h"
#include "router/router.h"

static const struct bp_route *
match(const struct bp_route *rows, size_t n, const char *method, const char *path)
{
    return bp_route_match(rows, n, method, strlen(method), path, strlen(path));
}

static void
test_no_changes_is_the_builtin_table(void **state)
{
    size_t n_builtin = 0;
    const struct bp_route *builtin = bp_routes_builtin(&n_builtin);
    struct bp_route *rows = NULL;
    size_t n = 0;
    char err[256] = "";

    (void)state;
    assert_int_equal(bp_route_table_build(NULL, 0, NULL, 0, &rows, &n, err, sizeof(err)), BP_OK);
    assert_int_equal(n, n_builtin);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].method, builtin[i].method);
        assert_string_equal(rows[i].pattern, builtin[i].pattern);
        assert_int_equal(rows[i].scope, builtin[i].scope);
    }
    bp_free(rows);
}

static void
test_remove_drops_exactly_that_row(void **state)
{
    const char *remove[] = {"DELETE /reconciliation/matching-rules/:id"};
    size_t n_builtin = 0;
    struct bp_route *rows = NULL;
    size_t n = 0;
    char err[256] = "";

    (void)state;
    bp_routes_builtin(&n_builtin);
    assert_int_equal(bp_route_table_build(remove, 1, NULL, 0, &rows, &n, err, sizeof(err)), BP_OK);
    assert_int_equal(n, n_builtin - 1);
    assert_null(match(rows, n, "DELETE", "/reconciliation/matching-rules/rule_1"));
    assert_non_null(match(rows, n, "PUT", "/reconciliation/matching-rules/rule_1"));
    bp_free(rows);
}

static void
test_remove_of_an_unknown_row_is_an_error(void **state)
{
    const char *cases[] = {"DELETE /nope", "delete /reconciliation/matching-rules/:id", "/ledgers", "GET"};
    struct bp_route *rows = NULL;
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        assert_int_equal(bp_route_table_build(&cases[i], 1, NULL, 0, &rows, &n, err, sizeof(err)), BP_ERR_INVALID);
        assert_non_null(strstr(err, "routes.remove[0]"));
    }
}

static void
test_added_rows_match_with_their_scope(void **state)
{
    struct bp_route_spec add[] = {
        {"GET", "/ledgers/:id/export", NULL, NULL, "ledgers", false},
        {"POST", "/reports/run", "proxy:read", "Report run", NULL, false},
        {"POST", "/imports/:kind", NULL, "Import uploaded", "imports", true},
    };
    struct bp_route *rows = NULL;
    size_t n = 0;
    char err[256] = "";
    const struct bp_route *r;

    (void)state;
    assert_int_equal(bp_route_table_build(NULL, 0, add, 3, &rows, &n, err, sizeof(err)), BP_OK);
    r = match(rows, n, "GET", "/ledgers/ldg_1/export");
    assert_non_null(r);
    assert_int_equal(r->scope, BP_SCOPE_READ);
    assert_string_equal(r->group, "config");
    assert_ptr_equal(match(rows, n, "HEAD", "/ledgers/ldg_1/export"), r);
    r = match(rows, n, "POST", "/reports/run");
    assert_non_null(r);
    assert_int_equal(r->scope, BP_SCOPE_READ);
    assert_string_equal(r->action, "Report run");
    assert_string_equal(r->category, "custom");
    r = match(rows, n, "POST", "/imports/csv");
    assert_non_null(r);
    assert_int_equal(r->scope, BP_SCOPE_WRITE);
    assert_true(r->large_body);
    /* The built-in rows are all still there. */
    assert_non_null(match(rows, n, "GET", "/ledgers/ldg_1"));
    bp_free(rows);
}

static void
test_bad_added_rows_are_errors(void **state)
{
    struct bp_route_spec bad[] = {
        {"get", "/x", NULL, NULL, NULL, false},
        {"", "/x", NULL, NULL, NULL, false},
        {"GET", "x", NULL, NULL, NULL, false},
        {"GET", "/a//b", NULL, NULL, NULL, false},
        {"GET", "/a/../b", NULL, NULL, NULL, false},
        {"GET", "/a/:", NULL, NULL, NULL, false},
        {"GET", "/a/%2F", NULL, NULL, NULL, false},
        {"GET", "/x", "proxy:admin", NULL, NULL, false},
        {"GET", "/ledgers", NULL, NULL, NULL, false}, /* already built in */
    };
    struct bp_route *rows = NULL;
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        assert_int_equal(bp_route_table_build(NULL, 0, &bad[i], 1, &rows, &n, err, sizeof(err)), BP_ERR_INVALID);
        assert_non_null(strstr(err, "routes.add[0]"));
    }
}

static void
test_a_removed_row_may_be_added_back_differently(void **state)
{
    const char *remove[] = {"GET /ledgers"};
    struct bp_route_spec add[] = {{"GET", "/ledgers", "proxy:write", NULL, NULL, false}};
    struct bp_route *rows = NULL;
    size_t n = 0;
    char err[256] = "";
    const struct bp_route *r;

    (void)state;
    assert_int_equal(bp_route_table_build(remove, 1, add, 1, &rows, &n, err, sizeof(err)), BP_OK);
    r = match(rows, n, "GET", "/ledgers");
    assert_non_null(r);
    assert_int_equal(r->scope, BP_SCOPE_WRITE);
    bp_free(rows);
}

/* Issue 11: one method limit, BP_ROUTE_METHOD_MAX letters, from the config to the request. */
static void
test_method_length_limit(void **state)
{
    char longest[BP_ROUTE_METHOD_MAX + 1];
    char too_long[BP_ROUTE_METHOD_MAX + 2];
    struct bp_route_spec add[1] = {{longest, "/custom", NULL, NULL, NULL, false}};
    struct bp_route *rows = NULL;
    size_t n = 0;
    char err[256] = "";

    (void)state;
    memset(longest, 'X', BP_ROUTE_METHOD_MAX);
    longest[BP_ROUTE_METHOD_MAX] = '\0';
    assert_int_equal(bp_route_table_build(NULL, 0, add, 1, &rows, &n, err, sizeof(err)), BP_OK);
    assert_non_null(match(rows, n, longest, "/custom"));
    bp_free(rows);
    rows = NULL;

    memset(too_long, 'X', BP_ROUTE_METHOD_MAX + 1);
    too_long[BP_ROUTE_METHOD_MAX + 1] = '\0';
    add[0].method = too_long;
    assert_int_equal(bp_route_table_build(NULL, 0, add, 1, &rows, &n, err, sizeof(err)), BP_ERR_INVALID);
    assert_string_equal(err, "routes.add[0]: method must be 1 to 20 upper-case letters (A-Z), like POST");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_changes_is_the_builtin_table),
        cmocka_unit_test(test_remove_drops_exactly_that_row),
        cmocka_unit_test(test_remove_of_an_unknown_row_is_an_error),
        cmocka_unit_test(test_added_rows_match_with_their_scope),
        cmocka_unit_test(test_bad_added_rows_are_errors),
        cmocka_unit_test(test_a_removed_row_may_be_added_back_differently),
        cmocka_unit_test(test_method_length_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
