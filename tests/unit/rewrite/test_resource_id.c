/* Reading the created resource's id from Core's answer, for the audit log. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "rewrite/rewrite.h"

static const char *
find(const char *doc, const char *const *keys, size_t n, char *out, size_t cap)
{
    size_t off = 0;
    size_t len = 0;

    if (!bp_json_find_id(doc, strlen(doc), keys, n, &off, &len)) {
        return NULL;
    }
    assert_true(len < cap);
    memcpy(out, doc + off, len);
    out[len] = '\0';
    return out;
}

static void
test_finds_top_level_string(void **state)
{
    static const char *const keys[] = {"transaction_id", "batch_id"};
    char buf[64];

    assert_string_equal(find("{\"amount\":10,\"transaction_id\":\"txn_1\",\"ledger_id\":\"ldg_9\"}", keys, 2, buf,
                             sizeof(buf)),
                        "txn_1");
    /* keys are tried in order, whatever the member order */
    assert_string_equal(find("{\"batch_id\":\"b_2\",\"transaction_id\":\"txn_3\"}", keys, 2, buf, sizeof(buf)), "txn_3");
    assert_string_equal(find("{\"batch_id\":\"b_2\"}", keys, 2, buf, sizeof(buf)), "b_2");
    assert_string_equal(find(" {\"transaction_id\" : 42 } ", keys, 1, buf, sizeof(buf)), "42");
}

static void
test_ignores_what_is_not_an_id(void **state)
{
    static const char *const keys[] = {"ledger_id"};
    char buf[64];

    /* nested members are not the created resource */
    assert_null(find("{\"meta\":{\"ledger_id\":\"ldg_x\"}}", keys, 1, buf, sizeof(buf)));
    /* names match exactly */
    assert_null(find("{\"Ledger_id\":\"ldg_x\"}", keys, 1, buf, sizeof(buf)));
    /* objects, arrays, null, booleans, empty strings and escaped strings are skipped */
    assert_null(find("{\"ledger_id\":{}}", keys, 1, buf, sizeof(buf)));
    assert_null(find("{\"ledger_id\":null}", keys, 1, buf, sizeof(buf)));
    assert_null(find("{\"ledger_id\":\"\"}", keys, 1, buf, sizeof(buf)));
    assert_null(find("{\"ledger_id\":\"a\\\"b\"}", keys, 1, buf, sizeof(buf)));
    /* not JSON, not an object, truncated */
    assert_null(find("ledger_id", keys, 1, buf, sizeof(buf)));
    assert_null(find("[{\"ledger_id\":\"ldg_1\"}]", keys, 1, buf, sizeof(buf)));
    assert_null(find("{\"ledger_id\":\"ldg_1\"", keys, 1, buf, sizeof(buf)));
    assert_false(bp_json_find_id(NULL, 0, keys, 1, &(size_t){0}, &(size_t){0}));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_top_level_string),
        cmocka_unit_test(test_ignores_what_is_not_an_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
