#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "router/router.h"

/* Paths are given with explicit lengths so that embedded NULs are tested too. */
struct pcase {
    const char *path;
    size_t len;
};

#define P(s)                                                                                                 \
    {                                                                                                        \
        s, sizeof(s) - 1                                                                                     \
    }

static void
test_accepts_ordinary_paths(void **state)
{
    static const struct pcase ok[] = {
        P("/ledgers"),
        P("/transactions/bulk"),
        P("/transactions/inflight/txn_0b9b7a6c-1f6e-4c1e-9a7e-3d4b5c6d7e8f"),
        P("/identities/idt_1/detokenize/first_name"),
        P("/balances/indicator/@World/currency/USD"),
        P("/transactions/reference/ref%20with%20space"), /* encoded space: not unreserved */
        P("/transactions/reference/a%3Ab%3ac"),          /* encoded ':' either hex case */
        P("/transactions/reference/%25"),                /* an encoded '%' itself */
        P("/transactions/reference/%C3%A9"),             /* encoded UTF-8 */
        P("/ledgers/..."),                               /* three dots is a name, not a dot segment */
        P("/ledgers/.hidden"),
        P("/ledgers/a.b"),
        P("/ledgers/~x_y-z:@!$&'()*+,;="),
        P("/a"),
    };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (bp_path_check(ok[i].path, ok[i].len) != BP_OK) {
            fail_msg("refused ordinary path %s", ok[i].path);
        }
    }
}

static void
test_refuses_tricks(void **state)
{
    static const struct pcase bad[] = {
        /* Structure. */
        P(""),
        P("/"),
        P("ledgers"),
        P("//"),
        P("//ledgers"),
        P("/ledgers//x"),
        P("/ledgers/"),
        P("/transactions/"),
        /* Dot segments anywhere. */
        P("/."),
        P("/.."),
        P("/./ledgers"),
        P("/../ledgers"),
        P("/ledgers/."),
        P("/ledgers/.."),
        P("/ledgers/../api-keys"),
        P("/ledgers/./x"),
        /* Encoded separators, dots and NUL, both hex cases. */
        P("/ledgers%2Fx"),
        P("/ledgers%2fx"),
        P("/ledgers%5Cx"),
        P("/ledgers%5cx"),
        P("/%2E%2E/api-keys"),
        P("/%2e%2e/api-keys"),
        P("/ledgers/%2E"),
        P("/ledgers/%2e"),
        P("/ledgers/x%00"),
        /* Encoded control characters are refused like raw ones. */
        P("/ledgers/a%01"),
        P("/ledgers/a%0a"),
        P("/ledgers/a%0D%0Ab"),
        P("/ledgers/a%1F"),
        P("/ledgers/a%7f"),
        /* Encoded unreserved characters are aliases Core's router would decode. */
        P("/search/%72eindex"),
        P("/search/%52EINDEX"),
        P("/%61pi-keys/metadata"),
        P("/api%2Dkeys/metadata"),
        P("/api%2dkeys/metadata"),
        P("/x%5Fy"),
        P("/x%7Ey"),
        P("/x%7ey"),
        P("/x%30"),
        /* Malformed percent-encoding. */
        P("/ledgers/%"),
        P("/ledgers/%4"),
        P("/ledgers/%zz"),
        P("/ledgers/%4g"),
        P("/ledgers/%g4"),
        P("/%"),
        P("/x%%41"),
        /* Raw bytes: controls, space, DEL, backslash, non-ASCII, query and fragment marks. */
        {"/ledgers\0x", 10},
        P("/ledgers\x01"),
        P("/ledgers\t"),
        P("/ledgers\r\n"),
        P("/ledgers x"),
        P("/ledgers\x7f"),
        P("/ledgers\\x"),
        P("/ledgers\\..\\api-keys"),
        P("/ledgers\x80"),
        P("/caf\xc3\xa9"),
        P("/ledgers\xff"),
        P("/api-keys#/metadata"),
        P("/ledgers?x=1"),
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bp_path_check(bad[i].path, bad[i].len) != BP_ERR_MALFORMED) {
            fail_msg("accepted trick path #%zu (%.*s)", i, (int)bad[i].len, bad[i].path);
        }
    }
}

static void
test_null_path(void **state)
{
    assert_int_equal(bp_path_check(NULL, 0), BP_ERR_MALFORMED);
}

static void
test_length_is_respected(void **state)
{
    /* Only the first len bytes are the path: the bad tail is outside it. */
    const char *s = "/ledgers/../x";
    assert_int_equal(bp_path_check(s, strlen("/ledgers")), BP_OK);
    /* A '%' whose hex digits lie past len is malformed, not read beyond. */
    assert_int_equal(bp_path_check("/a%41", 3), BP_ERR_MALFORMED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_ordinary_paths),
        cmocka_unit_test(test_refuses_tricks),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_length_is_respected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
