#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "lib/alloc.h"
#include "oauth/oauth.h"

/* Operator passwords: Argon2id hashing and verification. */

static const char pw[] = "correct horse battery staple";

static void
test_hash_then_verify(void **state)
{
    char *enc = NULL;

    assert_int_equal(bp_password_hash(pw, strlen(pw), &enc), BP_OK);
    assert_non_null(enc);
    /* The encoded form names the algorithm and the OWASP parameters, and never holds the text. */
    assert_true(strncmp(enc, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_null(strstr(enc, pw));
    assert_int_equal(bp_password_verify(enc, pw, strlen(pw)), BP_OK);
    bp_free(enc);
}

static void
test_wrong_password_refused(void **state)
{
    char *enc = NULL;
    char other[sizeof(pw)];

    assert_int_equal(bp_password_hash(pw, strlen(pw), &enc), BP_OK);
    assert_int_equal(bp_password_verify(enc, "correct horse battery stapla", strlen(pw)), BP_ERR_INVALID);
    /* A prefix of the right password is not the password. */
    assert_int_equal(bp_password_verify(enc, pw, strlen(pw) - 1), BP_ERR_INVALID);
    assert_int_equal(bp_password_verify(enc, "", 0), BP_ERR_INVALID);
    /* Any single flipped bit is refused. */
    memcpy(other, pw, sizeof(pw));
    other[0] ^= 0x01;
    assert_int_equal(bp_password_verify(enc, other, strlen(other)), BP_ERR_INVALID);
    bp_free(enc);
}

static void
test_malformed_encoded_refused(void **state)
{
    char *enc = NULL;
    char *mangled;
    size_t n;
    char longtext[400];

    assert_int_equal(bp_password_verify("", pw, strlen(pw)), BP_ERR_INVALID);
    assert_int_equal(bp_password_verify("not a hash", pw, strlen(pw)), BP_ERR_INVALID);
    assert_int_equal(bp_password_verify("$argon2id$v=19$m=19456,t=2,p=1$", pw, strlen(pw)), BP_ERR_INVALID);
    assert_int_equal(bp_password_verify(NULL, pw, strlen(pw)), BP_ERR_INVALID);
    memset(longtext, 'A', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    memcpy(longtext, "$argon2id$v=19$", 15);
    assert_int_equal(bp_password_verify(longtext, pw, strlen(pw)), BP_ERR_INVALID);

    assert_int_equal(bp_password_hash(pw, strlen(pw), &enc), BP_OK);
    /* Another Argon2 variant with the same tag is not accepted. */
    n = strlen(enc);
    mangled = bp_malloc(n + 1);
    memcpy(mangled, "$argon2i$", 9);
    memcpy(mangled + 9, enc + 10, n - 10 + 1);
    assert_int_equal(bp_password_verify(mangled, pw, strlen(pw)), BP_ERR_INVALID);
    /* A truncated tag is refused. */
    memcpy(mangled, enc, n + 1);
    mangled[n - 3] = '\0';
    assert_int_equal(bp_password_verify(mangled, pw, strlen(pw)), BP_ERR_INVALID);
    /* A changed tag character is refused. */
    memcpy(mangled, enc, n + 1);
    mangled[n - 2] = mangled[n - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(bp_password_verify(mangled, pw, strlen(pw)), BP_ERR_INVALID);
    bp_free(mangled);
    bp_free(enc);
}

static void
test_salt_differs_each_time(void **state)
{
    char *a = NULL;
    char *b = NULL;
    const char *salt_a;
    const char *salt_b;

    assert_int_equal(bp_password_hash(pw, strlen(pw), &a), BP_OK);
    assert_int_equal(bp_password_hash(pw, strlen(pw), &b), BP_OK);
    assert_string_not_equal(a, b);
    /* "$argon2id$v=19$m=…,t=…,p=…$SALT$TAG": the salt part itself differs. */
    salt_a = strchr(a + 31, '$');
    salt_b = strchr(b + 31, '$');
    assert_non_null(salt_a);
    assert_non_null(salt_b);
    assert_int_equal(salt_a - a, 31 + 22); /* 16 bytes in unpadded base64 */
    assert_false(strncmp(a + 31, b + 31, 22) == 0);
    /* Both verify. */
    assert_int_equal(bp_password_verify(a, pw, strlen(pw)), BP_OK);
    assert_int_equal(bp_password_verify(b, pw, strlen(pw)), BP_OK);
    bp_free(a);
    bp_free(b);
}

static void
test_length_bounds(void **state)
{
    char big[1026];
    char *enc = (char *)"untouched";

    memset(big, 'x', sizeof(big));
    assert_int_equal(bp_password_hash("1234567", 7, &enc), BP_ERR_INVALID);
    assert_int_equal(bp_password_hash("", 0, &enc), BP_ERR_INVALID);
    assert_int_equal(bp_password_hash(big, 1025, &enc), BP_ERR_INVALID);
    assert_string_equal(enc, "untouched");
    assert_int_equal(bp_password_hash("12345678", 8, &enc), BP_OK);
    assert_int_equal(bp_password_verify(enc, "12345678", 8), BP_OK);
    bp_free(enc);
    assert_int_equal(bp_password_hash(big, 1024, &enc), BP_OK);
    assert_int_equal(bp_password_verify(enc, big, 1024), BP_OK);
    assert_int_equal(bp_password_verify(enc, big, 1025), BP_ERR_INVALID);
    bp_free(enc);
}

static void
test_embedded_nul_counts(void **state)
{
    /* The length is the password: bytes after a NUL are part of it. */
    static const char a[] = "abcdefgh\0one";
    static const char b[] = "abcdefgh\0two";
    char *enc = NULL;

    assert_int_equal(bp_password_hash(a, sizeof(a) - 1, &enc), BP_OK);
    assert_int_equal(bp_password_verify(enc, a, sizeof(a) - 1), BP_OK);
    assert_int_equal(bp_password_verify(enc, b, sizeof(b) - 1), BP_ERR_INVALID);
    bp_free(enc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_then_verify),
        cmocka_unit_test(test_wrong_password_refused),
        cmocka_unit_test(test_malformed_encoded_refused),
        cmocka_unit_test(test_salt_differs_each_time),
        cmocka_unit_test(test_length_bounds),
        cmocka_unit_test(test_embedded_nul_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
