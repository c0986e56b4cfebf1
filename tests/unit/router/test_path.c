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
        const char *why = NULL;
        if (bp_path_check(ok[i].path, ok[i].len, &why) != BP_OK || why != NULL) {
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
        if (bp_path_check(bad[i].path, bad[i].len, NULL) != BP_ERR_MALFORMED) {
            fail_msg("accepted trick path #%zu (%.*s)", i, (int)bad[i].len, bad[i].path);
        }
    }
}

static void
test_null_path(void **state)
{
    assert_int_equal(bp_path_check(NULL, 0, NULL), BP_ERR_MALFORMED);
}

static void
test_length_is_respected(void **state)
{
    /* Only the first len bytes are the path: the bad tail is outside it. */
    const char *s = "/ledgers/../x";
    assert_int_equal(bp_path_check(s, strlen("/ledgers"), NULL), BP_OK);
    /* A '%' whose hex digits lie past len is malformed, not read beyond. */
    assert_int_equal(bp_path_check("/a%41", 3, NULL), BP_ERR_MALFORMED);
}

/* Issue 8 item 8: every refusal carries a fixed reason for error_detail.message, naming the
 * rule that was broken and never any byte of the path. */
struct rcase {
    const char *path;
    size_t len;
    const char *reason;
};

#define R(s, why)                                                                                            \
    {                                                                                                        \
        s, sizeof(s) - 1, why                                                                                \
    }

#define NO_PATH "no Core path after /proxy: call /proxy/<core path>, e.g. /proxy/ledgers"
#define TRAILING "trailing slash in path: remove it"
#define EMPTY_SEG "empty segment (//) in path"
#define DOT_SEG "dot segment (. or ..) in path"
#define CONTROL "control character or space in path"
#define NON_ASCII "non-ASCII byte in path: percent-encode it"
#define BACKSLASH "backslash in path"
#define HASH "'#' in path: percent-encode it as %23"
#define QMARK "'?' in path"
#define BAD_ESCAPE "malformed percent-encoding in path: % must be followed by two hex digits"
#define ENC_SLASH "percent-encoded slash or backslash in path"
#define ENC_CONTROL "percent-encoded control character in path"
#define ENC_UNRESERVED "percent-encoded letter, digit or one of - . _ ~ in path: write the character itself"

static void
test_reasons(void **state)
{
    static const struct rcase cases[] = {
        R("", NO_PATH),
        R("/", NO_PATH),
        R("ledgers", NO_PATH),
        R("/ledgers/", TRAILING),
        R("/ledgers/ldg_1/", TRAILING),
        R("//", EMPTY_SEG),
        R("//ledgers", EMPTY_SEG),
        R("/ledgers//x", EMPTY_SEG),
        R("/./ledgers", DOT_SEG),
        R("/ledgers/..", DOT_SEG),
        R("/ledgers/../x", DOT_SEG),
        {"/ledgers\0x", 10, CONTROL},
        R("/ledgers\x01", CONTROL),
        R("/ledgers x", CONTROL),
        R("/ledgers\x7f", CONTROL),
        R("/caf\xc3\xa9", NON_ASCII),
        R("/ledgers\\x", BACKSLASH),
        R("/api-keys#/metadata", HASH),
        R("/ledgers?x=1", QMARK),
        R("/ledgers/%4", BAD_ESCAPE),
        R("/ledgers/%zz", BAD_ESCAPE),
        R("/%", BAD_ESCAPE),
        R("/a%2Fb", ENC_SLASH),
        R("/a%5cb", ENC_SLASH),
        R("/a%00", ENC_CONTROL),
        R("/a%0A", ENC_CONTROL),
        R("/a%7F", ENC_CONTROL),
        R("/search/%72eindex", ENC_UNRESERVED),
        R("/ledgers/%2E%2e", ENC_UNRESERVED),
        R("/a%7e", ENC_UNRESERVED),
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = NULL;
        bp_err rc = bp_path_check(cases[i].path, cases[i].len, &why);
        if (rc != BP_ERR_MALFORMED || why == NULL || strcmp(why, cases[i].reason) != 0) {
            fail_msg("case #%zu: got %s \"%s\", want \"%s\"", i, bp_err_str(rc), why ? why : "(none)",
                     cases[i].reason);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_ordinary_paths),
        cmocka_unit_test(test_refuses_tricks),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_length_is_respected),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
