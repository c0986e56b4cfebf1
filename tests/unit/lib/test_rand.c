/* lib/rand: the UUIDv7 text (RFC 9562), which transaction references are made of. */
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid7_format_rfc_example),
        cmocka_unit_test(test_uuid7_fresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
