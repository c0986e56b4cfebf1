#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "oauth/oauth-int.h"

static bp_err
parse(const char *text, struct bp_oauth_form *f)
{
    return bp_oauth__form_parse(text, strlen(text), f);
}

static void
test_basic_pairs_and_decoding(void **state)
{
    struct bp_oauth_form f = {0};

    assert_int_equal(parse("grant_type=client_credentials&scope=proxy%3Aread+proxy%3awrite&x=%E2%82%AC", &f), BP_OK);
    assert_int_equal(f.n, 3);
    assert_string_equal(bp_oauth__form_get(&f, "grant_type"), "client_credentials");
    assert_string_equal(bp_oauth__form_get(&f, "scope"), "proxy:read proxy:write");
    assert_string_equal(bp_oauth__form_get(&f, "x"), "\xE2\x82\xAC");
    assert_null(bp_oauth__form_get(&f, "missing"));
    bp_oauth__form_cleanup(&f);
    assert_int_equal(f.n, 0);
    assert_null(f.fields);
}

static void
test_encoded_names_and_empty_pieces(void **state)
{
    struct bp_oauth_form f = {0};

    assert_int_equal(parse("&&client%5Fid=abc&&flag&empty=&", &f), BP_OK);
    assert_int_equal(f.n, 3);
    assert_string_equal(bp_oauth__form_get(&f, "client_id"), "abc");
    /* RFC 6749 §3.1: a parameter without a value counts as omitted. */
    assert_null(bp_oauth__form_get(&f, "flag"));
    assert_null(bp_oauth__form_get(&f, "empty"));
    bp_oauth__form_cleanup(&f);

    assert_int_equal(parse("", &f), BP_OK);
    assert_int_equal(f.n, 0);
    bp_oauth__form_cleanup(&f);
}

static void
test_value_keeps_equals_signs(void **state)
{
    struct bp_oauth_form f = {0};

    assert_int_equal(parse("state=a=b==&plus=%2B", &f), BP_OK);
    assert_string_equal(bp_oauth__form_get(&f, "state"), "a=b==");
    assert_string_equal(bp_oauth__form_get(&f, "plus"), "+");
    bp_oauth__form_cleanup(&f);
}

static void
test_duplicates_refused(void **state)
{
    struct bp_oauth_form f = {0};

    assert_int_equal(parse("code=a&code=b", &f), BP_ERR_EXISTS);
    assert_int_equal(f.n, 0);
    /* The same name spelled with an escape is still the same parameter. */
    assert_int_equal(parse("code=a&c%6Fde=b", &f), BP_ERR_EXISTS);
    /* Even when one of them is empty. */
    assert_int_equal(parse("scope=&scope=proxy:read", &f), BP_ERR_EXISTS);
}

static void
test_bad_escapes_refused(void **state)
{
    struct bp_oauth_form f = {0};

    assert_int_equal(parse("a=%", &f), BP_ERR_INVALID);
    assert_int_equal(parse("a=%4", &f), BP_ERR_INVALID);
    assert_int_equal(parse("a=%zz", &f), BP_ERR_INVALID);
    assert_int_equal(parse("a=%00", &f), BP_ERR_INVALID);
    assert_int_equal(parse("a=%0A", &f), BP_ERR_INVALID);
    assert_int_equal(parse("a=%7f", &f), BP_ERR_INVALID);
    assert_int_equal(parse("=value", &f), BP_ERR_INVALID);
    assert_int_equal(parse("a=x\ny", &f), BP_ERR_INVALID);
    /* An embedded NUL byte in the raw text is refused too. */
    assert_int_equal(bp_oauth__form_parse("a=x\0y", 5, &f), BP_ERR_INVALID);
    assert_int_equal(f.n, 0);
}

static void
test_limits(void **state)
{
    struct bp_oauth_form f = {0};
    char *big = bp_malloc(3 * BP_OAUTH_FORM_MAX_VALUE);
    size_t n = 0;

    /* Too many fields. */
    for (int i = 0; i <= BP_OAUTH_FORM_MAX_FIELDS; i++) {
        n += (size_t)snprintf(big + n, 3 * BP_OAUTH_FORM_MAX_VALUE - n, "f%d=1&", i);
    }
    assert_int_equal(bp_oauth__form_parse(big, n, &f), BP_ERR_LIMIT);
    /* Exactly the maximum number of fields is fine. */
    n = 0;
    for (int i = 0; i < BP_OAUTH_FORM_MAX_FIELDS; i++) {
        n += (size_t)snprintf(big + n, 3 * BP_OAUTH_FORM_MAX_VALUE - n, "f%d=1&", i);
    }
    assert_int_equal(bp_oauth__form_parse(big, n, &f), BP_OK);
    assert_int_equal(f.n, BP_OAUTH_FORM_MAX_FIELDS);
    bp_oauth__form_cleanup(&f);

    /* A value one byte over its limit. */
    memcpy(big, "v=", 2);
    memset(big + 2, 'x', BP_OAUTH_FORM_MAX_VALUE + 1);
    assert_int_equal(bp_oauth__form_parse(big, 2 + BP_OAUTH_FORM_MAX_VALUE + 1, &f), BP_ERR_LIMIT);
    assert_int_equal(bp_oauth__form_parse(big, 2 + BP_OAUTH_FORM_MAX_VALUE, &f), BP_OK);
    assert_int_equal(f.fields[0].value_len, BP_OAUTH_FORM_MAX_VALUE);
    bp_oauth__form_cleanup(&f);

    /* A name over its limit. */
    memset(big, 'n', BP_OAUTH_FORM_MAX_NAME + 1);
    big[BP_OAUTH_FORM_MAX_NAME + 1] = '=';
    assert_int_equal(bp_oauth__form_parse(big, BP_OAUTH_FORM_MAX_NAME + 2, &f), BP_ERR_LIMIT);
    bp_free(big);
}

static void
test_url_encode_round_trip(void **state)
{
    struct bp_buf b;
    struct bp_oauth_form f = {0};
    char *text;

    bp_buf_init(&b, 1024);
    bp_buf_append_str(&b, "state=");
    assert_int_equal(bp_oauth__url_encode(&b, "a b&c=d/é~-._"), BP_OK);
    assert_string_equal(b.data, "state=a%20b%26c%3Dd%2F%C3%A9~-._");
    assert_int_equal(parse(b.data, &f), BP_OK);
    assert_string_equal(bp_oauth__form_get(&f, "state"), "a b&c=d/é~-._");
    bp_oauth__form_cleanup(&f);
    bp_buf_cleanup(&b);

    assert_int_equal(bp_oauth__form_decode("a+b%21", 6, 16, &text, NULL), BP_OK);
    assert_string_equal(text, "a b!");
    bp_free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_pairs_and_decoding),
        cmocka_unit_test(test_encoded_names_and_empty_pieces),
        cmocka_unit_test(test_value_keeps_equals_signs),
        cmocka_unit_test(test_duplicates_refused),
        cmocka_unit_test(test_bad_escapes_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_url_encode_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
