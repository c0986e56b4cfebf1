/* lib/rand: the UUIDv7 text (RFC 9562), which transaction references and request ids are made
 * of, and identifiers from the per-thread CSPRNG buffer: well-formed, never repeated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "lib/rand.h"

/* RFC 9562 Appendix A.6: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F. */
static void
test_uuid7_format_rfc_example(void **state)
{
    /* The version nibble and variant bits are forced, so the bytes under them do not matter. */
    const unsigned char rnd[BP_UUID7_RANDOM_BYTES] = {0xFC, 0xC3, 0x58, 0xC4, 0xDC, 0x0C, 0x0C, 0x07, 0x39, 0x8F};
    char out[BP_UUID_LEN + 1];

    (void)state;
    memset(out, 'x', sizeof(out));
    bp_uuid7_format(0x017F22E279B0u, rnd, out);
    assert_int_equal(out[BP_UUID_LEN], 'x'); /* writes no NUL */
    out[BP_UUID_LEN] = '\0';
    assert_string_equal(out, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
}

static void
test_uuid7_fresh(void **state)
{
    char a[BP_UUID_LEN + 1];
    char b[BP_UUID_LEN + 1];

    (void)state;
    assert_int_equal(bp_uuid7(a), BP_OK);
    assert_int_equal(bp_uuid7(b), BP_OK);
    assert_int_equal(strlen(a), BP_UUID_LEN);
    assert_int_equal(a[14], '7');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
}

static void
test_uuid7_shape(void **state)
{
    char id[BP_UUID_LEN + 1];

    (void)state;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(bp_uuid7(id), BP_OK);
        assert_int_equal(strlen(id), 36);
        for (int k = 0; k < 36; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23) {
                assert_int_equal(id[k], '-');
            } else {
                assert_non_null(strchr("0123456789abcdef", id[k]));
            }
        }
        assert_int_equal(id[14], '7');                    /* version 7 */
        assert_non_null(strchr("89ab", id[19]));          /* RFC 9562 variant */
    }
}

static void
test_ids_do_not_repeat_across_refills(void **state)
{
    enum { N = 2000 }; /* several refills of the per-thread buffer */
    static unsigned char seen[N][16];

    (void)state;
    for (int i = 0; i < N; i++) {
        assert_int_equal(bp_rand_id_bytes(seen[i], 16), BP_OK);
        for (int k = 0; k < i; k++) {
            assert_memory_not_equal(seen[i], seen[k], 16);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid7_format_rfc_example),
        cmocka_unit_test(test_uuid7_fresh),
        cmocka_unit_test(test_uuid7_shape),
        cmocka_unit_test(test_ids_do_not_repeat_across_refills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
