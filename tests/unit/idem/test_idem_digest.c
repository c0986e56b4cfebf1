#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "idem/idem.h"

/* The Idempotency-Key header's syntax (DESIGN §4b: 1-255 printable ASCII) and the digests that
 * name a scope and a request: equal inputs agree, and no two different lists of parts meet. */

static void
test_key_syntax(void **state)
{
    char key[BP_IDEM_KEY_MAX + 2];
    const char *reason = NULL;
    (void)state;

    assert_int_equal(bp_idem_key_check("a", 1, &reason), BP_OK);
    assert_int_equal(bp_idem_key_check("order 42 / payout ~", 19, &reason), BP_OK);
    memset(key, 'k', sizeof(key));
    assert_int_equal(bp_idem_key_check(key, BP_IDEM_KEY_MAX, &reason), BP_OK);
    assert_int_equal(bp_idem_key_check(key, BP_IDEM_KEY_MAX + 1, &reason), BP_ERR_MALFORMED);
    assert_non_null(strstr(reason, "255"));
    assert_int_equal(bp_idem_key_check("", 0, &reason), BP_ERR_MALFORMED);
    assert_non_null(strstr(reason, "empty"));
    for (int c = 0; c < 256; c++) {
        char v[3] = {'a', (char)c, 'b'};
        bp_err want = c >= 0x20 && c <= 0x7E ? BP_OK : BP_ERR_MALFORMED;
        assert_int_equal(bp_idem_key_check(v, 3, &reason), want);
    }
}

static void
test_scope_parts_do_not_run_together(void **state)
{
    unsigned char a[BP_IDEM_DIGEST_LEN];
    unsigned char b[BP_IDEM_DIGEST_LEN];
    (void)state;

    bp_idem_scope("key_1", "instance_1", "POST", 4, "/transactions", "k1", 2, a);
    bp_idem_scope("key_1", "instance_1", "POST", 4, "/transactions", "k1", 2, b);
    assert_memory_equal(a, b, sizeof(a));
    /* Moving a byte from one part to the next is another scope. */
    bp_idem_scope("key_1", "instance_1", "POST", 4, "/transactions", "1", 1, b);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
    bp_idem_scope("key_", "1instance_1", "POST", 4, "/transactions", "k1", 2, b);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
    bp_idem_scope("key_1", "instance_1", "PUT", 3, "/transactions", "k1", 2, b);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
    bp_idem_scope("key_1", "instance_1", "POST", 4, "/ledgers", "k1", 2, b);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
}

static void
test_fingerprint(void **state)
{
    unsigned char a[BP_IDEM_DIGEST_LEN];
    unsigned char b[BP_IDEM_DIGEST_LEN];
    (void)state;

    bp_idem_fingerprint("POST", 4, "/transactions", 13, "", 0, "{}", 2, a);
    bp_idem_fingerprint("POST", 4, "/transactions", 13, NULL, 0, "{}", 2, b);
    assert_memory_equal(a, b, sizeof(a));
    bp_idem_fingerprint("POST", 4, "/transactions", 13, "", 0, "{} ", 3, b);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
    bp_idem_fingerprint("POST", 4, "/transactions", 13, "{}", 2, "", 0, b);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
    /* A scope and a fingerprint never share a digest space. */
    bp_idem_scope("POST", "/transactions", "", 0, "{}", "", 0, b);
    assert_true(memcmp(a, b, sizeof(a)) != 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_syntax),
        cmocka_unit_test(test_scope_parts_do_not_run_together),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
