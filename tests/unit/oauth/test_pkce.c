#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "oauth/oauth-int.h"

/* RFC 7636 Appendix B. */
static const char rfc_verifier[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char rfc_challenge[] = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

static void
test_rfc7636_appendix_b(void **state)
{
    char out[BP_PKCE_CHALLENGE_LEN + 1];

    bp_oauth__pkce_s256(rfc_verifier, strlen(rfc_verifier), out);
    assert_string_equal(out, rfc_challenge);
    assert_true(bp_oauth__pkce_verify(rfc_verifier, strlen(rfc_verifier), rfc_challenge));
    assert_true(bp_oauth__pkce_challenge_is_valid(rfc_challenge, strlen(rfc_challenge)));
}

static void
test_mismatch(void **state)
{
    char other[] = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    char challenge[] = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    other[0] = 'e';
    assert_false(bp_oauth__pkce_verify(other, strlen(other), rfc_challenge));
    challenge[10] = 'x';
    assert_false(bp_oauth__pkce_verify(rfc_verifier, strlen(rfc_verifier), challenge));
    /* "plain" would compare the verifier itself: never accepted. */
    assert_false(bp_oauth__pkce_verify(rfc_verifier, strlen(rfc_verifier), rfc_verifier));
    assert_false(bp_oauth__pkce_verify(rfc_verifier, strlen(rfc_verifier), NULL));
    assert_false(bp_oauth__pkce_verify(rfc_verifier, strlen(rfc_verifier), "short"));
}

static void
test_verifier_syntax(void **state)
{
    char v[130];

    memset(v, 'a', sizeof(v));
    assert_false(bp_oauth__pkce_verifier_is_valid(v, 42));
    assert_true(bp_oauth__pkce_verifier_is_valid(v, 43));
    assert_true(bp_oauth__pkce_verifier_is_valid(v, 128));
    assert_false(bp_oauth__pkce_verifier_is_valid(v, 129));
    memcpy(v, "AZaz09-._~", 10);
    assert_true(bp_oauth__pkce_verifier_is_valid(v, 43));
    v[5] = '+';
    assert_false(bp_oauth__pkce_verifier_is_valid(v, 43));
    v[5] = '/';
    assert_false(bp_oauth__pkce_verifier_is_valid(v, 43));
    v[5] = '=';
    assert_false(bp_oauth__pkce_verifier_is_valid(v, 43));
    v[5] = ' ';
    assert_false(bp_oauth__pkce_verifier_is_valid(v, 43));
    /* A too-short verifier fails verification even when its transform would match. */
    char out[BP_PKCE_CHALLENGE_LEN + 1];
    bp_oauth__pkce_s256("short", 5, out);
    assert_false(bp_oauth__pkce_verify("short", 5, out));
}

static void
test_challenge_syntax(void **state)
{
    char c[] = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    assert_false(bp_oauth__pkce_challenge_is_valid(c, 42));
    c[3] = '+';
    assert_false(bp_oauth__pkce_challenge_is_valid(c, 43));
    c[3] = 'l';
    /* The last character of a 32-byte value carries 2 padding bits, which must be zero. */
    c[42] = 'N';
    assert_false(bp_oauth__pkce_challenge_is_valid(c, 43));
    c[42] = 'M';
    assert_true(bp_oauth__pkce_challenge_is_valid(c, 43));
    assert_false(bp_oauth__pkce_challenge_is_valid("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=", 44));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7636_appendix_b),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_verifier_syntax),
        cmocka_unit_test(test_challenge_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
