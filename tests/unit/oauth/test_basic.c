#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lib/alloc.h"
#include "oauth/oauth-int.h"

static bp_err
parse(const char *header, char **id, char **secret)
{
    return bp_oauth__basic_parse(header, strlen(header), id, secret);
}

static void
test_plain_credentials(void **state)
{
    char *id = NULL;
    char *secret = NULL;

    /* base64("client_01:blnk_cs_abc") */
    assert_int_equal(parse("Basic Y2xpZW50XzAxOmJsbmtfY3NfYWJj", &id, &secret), BP_OK);
    assert_string_equal(id, "client_01");
    assert_string_equal(secret, "blnk_cs_abc");
    bp_free(id);
    bp_free(secret);

    /* Scheme is case-insensitive (RFC 7235 §2.1); extra spaces before the token are tolerated. */
    assert_int_equal(parse("bAsIc   Y2xpZW50XzAxOmJsbmtfY3NfYWJj", &id, &secret), BP_OK);
    assert_string_equal(id, "client_01");
    bp_free(id);
    bp_free(secret);
}

static void
test_rfc6749_form_encoding(void **state)
{
    char *id = NULL;
    char *secret = NULL;

    /* RFC 6749 §2.3.1: id and secret are form-urlencoded before base64, so ':' arrives as %3A
     * and a space as '+'. base64("my%3Aapp:s+e%25cret:x") */
    assert_int_equal(parse("Basic bXklM0FhcHA6cytlJTI1Y3JldDp4", &id, &secret), BP_OK);
    assert_string_equal(id, "my:app");
    assert_string_equal(secret, "s e%cret:x");
    bp_free(id);
    bp_free(secret);
}

static void
test_padding_variants(void **state)
{
    char *id = NULL;
    char *secret = NULL;

    /* base64("a:bc") = "YTpiYw==" ; unpadded accepted, wrong padding refused */
    assert_int_equal(parse("Basic YTpiYw==", &id, &secret), BP_OK);
    assert_string_equal(id, "a");
    assert_string_equal(secret, "bc");
    bp_free(id);
    bp_free(secret);
    assert_int_equal(parse("Basic YTpiYw", &id, &secret), BP_OK);
    bp_free(id);
    bp_free(secret);
    assert_int_equal(parse("Basic YTpiYw=", &id, &secret), BP_ERR_INVALID);
    assert_int_equal(parse("Basic YTpiYw===", &id, &secret), BP_ERR_INVALID);
    /* Non-zero leftover bits: a second spelling of the same bytes. */
    assert_int_equal(parse("Basic YTpiYx==", &id, &secret), BP_ERR_INVALID);
}

static void
test_refusals(void **state)
{
    char *id = NULL;
    char *secret = NULL;

    assert_int_equal(parse("Bearer abc", &id, &secret), BP_ERR_NOT_FOUND);
    assert_int_equal(parse("Basic", &id, &secret), BP_ERR_NOT_FOUND);
    assert_int_equal(parse("Basicx YTpiYw==", &id, &secret), BP_ERR_NOT_FOUND);
    assert_int_equal(parse("Basic ", &id, &secret), BP_ERR_INVALID);
    assert_int_equal(parse("Basic !!!!", &id, &secret), BP_ERR_INVALID);
    assert_int_equal(parse("Basic YWJj", &id, &secret), BP_ERR_INVALID);           /* "abc": no colon */
    assert_int_equal(parse("Basic OnNlY3JldA==", &id, &secret), BP_ERR_INVALID);   /* ":secret": empty id */
    assert_int_equal(parse("Basic YSUyOmI=", &id, &secret), BP_ERR_INVALID);       /* "a%2:b": bad escape */
    assert_int_equal(parse("Basic YTpi JTAw", &id, &secret), BP_ERR_INVALID);      /* space inside */
    assert_int_equal(parse("Basic YTolMDA=", &id, &secret), BP_ERR_INVALID);       /* "a:%00" */
    assert_null(id);
    assert_null(secret);
}

static void
test_empty_secret_is_allowed_by_the_parser(void **state)
{
    char *id = NULL;
    char *secret = NULL;

    /* "a:" — the parser hands it on; client authentication refuses it. */
    assert_int_equal(parse("Basic YTo=", &id, &secret), BP_OK);
    assert_string_equal(id, "a");
    assert_string_equal(secret, "");
    bp_free(id);
    bp_free(secret);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_credentials),
        cmocka_unit_test(test_rfc6749_form_encoding),
        cmocka_unit_test(test_padding_variants),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_empty_secret_is_allowed_by_the_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
