/* Identifiers from the per-thread CSPRNG buffer: well-formed UUIDv7, never repeated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/rand.h"

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
        cmocka_unit_test(test_uuid7_shape),
        cmocka_unit_test(test_ids_do_not_repeat_across_refills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
