/* Reading the created resource's id from Core's answer, for the audit log: from the whole
 * answer, or from the first bytes of one too long to keep (a streamed answer). */
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

static const char *
find_prefix(const char *doc, size_t n_bytes, const char *const *keys, size_t n, char *out, size_t cap)
{
    size_t off = 0;
    size_t len = 0;

    if (!bp_json_find_id_prefix(doc, n_bytes, keys, n, &off, &len)) {
        return NULL;
    }
    assert_true(off + len <= n_bytes);
    assert_true(len < cap);
    memcpy(out, doc + off, len);
    out[len] = '\0';
    return out;
}

static void
test_prefix_reads_members_complete_in_it(void **state)
{
    static const char *const keys[] = {"transaction_id", "batch_id"};
    static const char doc[] = "{\"batch_id\":\"b_2\",\"transaction_id\":\"txn_3\",\"meta\":\"a long tail...\"}";
    char buf[64];
    size_t cut_in_txn = strlen("{\"batch_id\":\"b_2\",\"transaction_id\":\"txn_");
    size_t after_txn = strlen("{\"batch_id\":\"b_2\",\"transaction_id\":\"txn_3\",");
    size_t after_next_key = strlen("{\"batch_id\":\"b_2\",\"transaction_id\":\"txn_3\",\"meta\":");

    (void)state;
    /* The whole answer: keys in order, as bp_json_find_id reads it. */
    assert_string_equal(find_prefix(doc, strlen(doc), keys, 2, buf, sizeof(buf)), "txn_3");
    /* Cut once the scan went past the member (the next key is in the prefix): it counts. */
    assert_string_equal(find_prefix(doc, after_next_key, keys, 2, buf, sizeof(buf)), "txn_3");
    assert_string_equal(find_prefix(doc, after_next_key + 3, keys, 2, buf, sizeof(buf)), "txn_3");
    /* Cut before that: not yet, and the member before it, which the scan went past, is taken. */
    assert_string_equal(find_prefix(doc, after_txn, keys, 2, buf, sizeof(buf)), "b_2");
    /* Cut inside its value: it does not, and the next key in order is taken instead. */
    assert_string_equal(find_prefix(doc, cut_in_txn, keys, 2, buf, sizeof(buf)), "b_2");
    /* A number as well: "12" may go on as "123". */
    assert_null(find_prefix("{\"batch_id\":12", strlen("{\"batch_id\":12"), keys, 2, buf, sizeof(buf)));
    assert_null(find_prefix("{\"batch_id\":12,\"x", strlen("{\"batch_id\":12,\"x"), keys, 2, buf, sizeof(buf)));
    assert_string_equal(find_prefix("{\"batch_id\":12,\"x\":", strlen("{\"batch_id\":12,\"x\":"), keys, 2, buf,
                                    sizeof(buf)),
                        "12");
    assert_string_equal(find_prefix("{\"batch_id\":12}", strlen("{\"batch_id\":12}"), keys, 2, buf, sizeof(buf)),
                        "12");
}

static void
test_prefix_ignores_what_is_not_an_id(void **state)
{
    static const char *const keys[] = {"ledger_id"};
    static const char *const docs[] = {
        "{\"meta\":{\"ledger_id\":\"ldg_x\"},\"more\":1",
        "{\"Ledger_id\":\"ldg_x\",",
        "{\"ledger_id\":{},",
        "{\"ledger_id\":null,",
        "{\"ledger_id\":\"\",",
        "{\"ledger_id\":\"a\\\"b\",",
        "[{\"ledger_id\":\"ldg_1\"},",
        "{\"ledger_id\":\"ldg\x01\",", /* a control character: not a JSON string */
        "{\"ledger_id\":\"ldg_1\"",          /* counts once the scan went past it */
        "ledger_id",
    };
    char buf[64];

    (void)state;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_null(find_prefix(docs[i], strlen(docs[i]), keys, 1, buf, sizeof(buf)));
    }
    assert_false(bp_json_find_id_prefix(NULL, 0, keys, 1, &(size_t){0}, &(size_t){0}));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_top_level_string),
        cmocka_unit_test(test_ignores_what_is_not_an_id),
        cmocka_unit_test(test_prefix_reads_members_complete_in_it),
        cmocka_unit_test(test_prefix_ignores_what_is_not_an_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
