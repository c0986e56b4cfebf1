#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "oauth/oauth.h"

/* Token, client secret and code text: generation and shape checks. */

static void
test_generate_shapes(void **state)
{
    static const char *const prefixes[] = {BP_ACCESS_TOKEN_PREFIX, BP_REFRESH_TOKEN_PREFIX,
                                           BP_CLIENT_SECRET_PREFIX};
    char out[BP_OAUTH_TOKEN_LEN + 1];

    for (size_t i = 0; i < 3; i++) {
        memset(out, 'Z', sizeof(out));
        assert_int_equal(bp_oauth_token_generate(prefixes[i], out), BP_OK);
        assert_int_equal(strlen(out), BP_OAUTH_TOKEN_LEN);
        assert_true(strncmp(out, prefixes[i], 8) == 0);
        for (size_t k = 8; k < BP_OAUTH_TOKEN_LEN; k++) {
            assert_true((out[k] >= '0' && out[k] <= '9') || (out[k] >= 'a' && out[k] <= 'f'));
        }
        assert_true(bp_oauth_token_is_well_formed(prefixes[i], out, strlen(out)));
    }
}

static void
test_generate_without_prefix(void **state)
{
    char out[BP_OAUTH_TOKEN_LEN + 1];

    assert_int_equal(bp_oauth_token_generate("", out), BP_OK);
    assert_int_equal(strlen(out), BP_OAUTH_TOKEN_HEX_LEN);
    assert_true(bp_oauth_token_is_well_formed("", out, strlen(out)));
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, out, strlen(out)));
    /* A prefix the buffer has no room for is refused. */
    assert_int_equal(bp_oauth_token_generate("blnk_too_long_", out), BP_ERR_INVALID);
}

static void
test_generate_is_random(void **state)
{
    char a[BP_OAUTH_TOKEN_LEN + 1];
    char b[BP_OAUTH_TOKEN_LEN + 1];

    assert_int_equal(bp_oauth_token_generate(BP_ACCESS_TOKEN_PREFIX, a), BP_OK);
    assert_int_equal(bp_oauth_token_generate(BP_ACCESS_TOKEN_PREFIX, b), BP_OK);
    assert_string_not_equal(a, b);
}

static void
test_well_formed_refuses(void **state)
{
    char t[BP_OAUTH_TOKEN_LEN + 2];
    const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    memcpy(t, "blnk_at_", 8);
    memcpy(t + 8, hex, 64);
    t[72] = '\0';
    assert_true(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 72));
    /* Another kind's prefix. */
    assert_false(bp_oauth_token_is_well_formed(BP_REFRESH_TOKEN_PREFIX, t, 72));
    assert_false(bp_oauth_token_is_well_formed(BP_CLIENT_SECRET_PREFIX, t, 72));
    /* Wrong lengths. */
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 71));
    t[72] = 'a';
    t[73] = '\0';
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 73));
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 8));
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 0));
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, NULL, 0));
    /* Uppercase hex, non-hex letters, and a NUL inside. */
    t[72] = '\0';
    t[40] = 'A';
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 72));
    t[40] = 'g';
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 72));
    t[40] = '\0';
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 72));
    t[40] = '0';
    assert_true(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 72));
    /* A prefix in another case is another prefix. */
    t[0] = 'B';
    assert_false(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, t, 72));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_shapes),
        cmocka_unit_test(test_generate_without_prefix),
        cmocka_unit_test(test_generate_is_random),
        cmocka_unit_test(test_well_formed_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
