/* The "routes" key of blnkproxy.json: shape checks in config; meaning is the router's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config/settings-int.h"

static bp_err
load(const char *json, struct bp_config *c, char *err, size_t err_len)
{
    bp_config__defaults(c);
    return bp_config__load_json_text(json, strlen(json), "test.json", c, err, err_len);
}

static void
test_routes_are_read(void **state)
{
    struct bp_config c;
    char err[256] = "";

    (void)state;
    assert_int_equal(load("{\"routes\":{\"remove\":[\"DELETE /reconciliation/matching-rules/:id\"],"
                          "\"add\":[{\"method\":\"GET\",\"path\":\"/ledgers/:id/export\",\"scope\":\"proxy:read\","
                          "\"action\":\"Ledger exported\",\"category\":\"ledgers\",\"large_body\":true},"
                          "{\"method\":\"POST\",\"path\":\"/reports\"}]},\"workers\":3}",
                          &c, err, sizeof(err)),
                     BP_OK);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.n_routes_remove, 1);
    assert_string_equal(c.routes_remove[0], "DELETE /reconciliation/matching-rules/:id");
    assert_int_equal(c.n_routes_add, 2);
    assert_string_equal(c.routes_add[0].method, "GET");
    assert_string_equal(c.routes_add[0].path, "/ledgers/:id/export");
    assert_string_equal(c.routes_add[0].scope, "proxy:read");
    assert_string_equal(c.routes_add[0].action, "Ledger exported");
    assert_string_equal(c.routes_add[0].category, "ledgers");
    assert_true(c.routes_add[0].large_body);
    assert_null(c.routes_add[1].scope);
    assert_null(c.routes_add[1].action);
    assert_false(c.routes_add[1].large_body);
    bp_config_cleanup(&c);
}

static void
test_bad_routes_shapes_are_refused_with_their_place(void **state)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"routes\":[]}", "key \"routes\": must be an object"},
        {"{\"routes\":{\"delete\":[]}}", "unknown key"},
        {"{\"routes\":{\"remove\":\"GET /ledgers\"}}", "must be arrays"},
        {"{\"routes\":{\"remove\":[1]}}", "remove[0]"},
        {"{\"routes\":{\"add\":[{\"path\":\"/x\"}]}}", "add[0]: \"method\" is required"},
        {"{\"routes\":{\"add\":[{\"method\":\"GET\"}]}}", "add[0]: \"path\" is required"},
        {"{\"routes\":{\"add\":[{\"method\":\"GET\",\"path\":\"/x\",\"large_body\":\"yes\"}]}}", "large_body"},
        {"{\"routes\":{\"add\":[{\"method\":\"GET\",\"path\":\"/x\",\"scopes\":\"proxy:read\"}]}}", "unknown key"},
        {"{\"routes\":{\"add\":[{\"method\":\"GET\",\"path\":\"/x\"}, 5]}}", "add[1]: must be an object"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bp_config c;
        char err[256] = "";
        assert_int_equal(load(cases[i].json, &c, err, sizeof(err)), BP_ERR_INVALID);
        assert_non_null(strstr(err, "test.json"));
        if (strstr(err, cases[i].msg) == NULL) {
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].msg);
        }
        assert_int_equal(c.n_routes_add, 0);
        assert_int_equal(c.n_routes_remove, 0);
        bp_config_cleanup(&c);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_are_read),
        cmocka_unit_test(test_bad_routes_shapes_are_refused_with_their_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
