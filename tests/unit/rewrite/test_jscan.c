#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "rewrite/jscan.h"

static bp_err
scan_str(const char *doc, struct bp_jscan_value *out)
{
    return bp_jscan_document(doc, strlen(doc), out);
}

static void
test_accepts_valid_documents(void **state)
{
    static const char *const valid[] = {
        "{}",
        "[]",
        " \t\r\n{ } \n",
        "0",
        "-0",
        "-0.0e+0",
        "123",
        "100.50",
        "1E10",
        "1e-7",
        "1234567890123456789012345678901234567890",
        "\"\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
        "\"\\u0041\\uD83D\\uDE00\"",
        "\"\\ud800 lone high\"",
        "\"\\udc00 lone low\"",
        "\"\xff\xfe invalid utf-8 kept\"",
        "\"\xc3\xa9\"",
        "\" ~\x7f\"",
        "true",
        "false",
        "null",
        "{\"a\":[1,{\"b\":null},\"x\"],\"c\":{}}",
        "[ 1 , 2 ,\n3 ]",
        "{\"a\":1,\"a\":2}",
        "{\"\":0}",
    };
    struct bp_jscan_value v;

    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        if (scan_str(valid[i], &v) != BP_OK) {
            fail_msg("rejected valid JSON: %s", valid[i]);
        }
    }
}

static void
test_rejects_invalid_documents(void **state)
{
    static const char *const invalid[] = {
        "",
        " ",
        "\n\t ",
        "{",
        "}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1,]",
        "[,1]",
        "{,}",
        "{} x",
        "{}{}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{a:1}",
        "{'a':1}",
        "{1:1}",
        "\"unterminated",
        "{\"a\":\"unterminated}",
        "\"bad escape \\x\"",
        "\"short \\u12\"",
        "\"bad hex \\u12G4\"",
        "\"raw\ttab\"",
        "\"raw\nnewline\"",
        "\"unit separator \x1f\"",
        "\"\x01\"",
        "01",
        "-",
        "1.",
        ".5",
        "+1",
        "1e",
        "1e+",
        "0x10",
        "--1",
        "tru",
        "truex",
        "nul",
        "True",
        "NaN",
        "Infinity",
        "\xef\xbb\xbf{}", /* BOM: Go rejects it too */
        "\f{}",           /* form feed is not JSON whitespace */
        "\v{}",
    };
    struct bp_jscan_value v;

    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        if (scan_str(invalid[i], &v) == BP_OK) {
            fail_msg("accepted invalid JSON: %s", invalid[i]);
        }
    }
    /* Embedded NUL inside a string and after a value. */
    assert_int_equal(bp_jscan_document("\"a\0b\"", 5, &v), BP_ERR_INVALID);
    assert_int_equal(bp_jscan_document("{}\0", 3, &v), BP_ERR_INVALID);
    assert_int_equal(bp_jscan_document(NULL, 0, &v), BP_ERR_INVALID);
}

static void
nested(char *buf, size_t depth, char open, char close)
{
    for (size_t i = 0; i < depth; i++) {
        buf[i] = open;
    }
    for (size_t i = 0; i < depth; i++) {
        buf[depth + i] = close;
    }
    buf[2 * depth] = '\0';
}

static void
test_depth_limit(void **state)
{
    char buf[2 * (BP_JSCAN_MAX_DEPTH + 1) + 1];
    char obj[16 * (BP_JSCAN_MAX_DEPTH + 1)];
    size_t n = 0;
    struct bp_jscan_value v;

    nested(buf, BP_JSCAN_MAX_DEPTH, '[', ']');
    assert_int_equal(scan_str(buf, &v), BP_OK);
    nested(buf, BP_JSCAN_MAX_DEPTH + 1, '[', ']');
    assert_int_equal(scan_str(buf, &v), BP_ERR_INVALID);

    /* Objects count the same way: {"a":{"a":...}} */
    for (size_t i = 0; i < BP_JSCAN_MAX_DEPTH + 1; i++) {
        memcpy(obj + n, "{\"a\":", 5);
        n += 5;
    }
    obj[n++] = '1';
    for (size_t i = 0; i < BP_JSCAN_MAX_DEPTH + 1; i++) {
        obj[n++] = '}';
    }
    assert_int_equal(bp_jscan_document(obj, n, &v), BP_ERR_INVALID);
    /* Drop the outermost level: exactly at the limit. */
    assert_int_equal(bp_jscan_document(obj + 5, n - 6, &v), BP_OK);
}

static void
test_value_spans(void **state)
{
    const char *doc = "  {\"a\" : 1 }\n";
    struct bp_jscan_value v;

    assert_int_equal(scan_str(doc, &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_OBJECT);
    assert_int_equal(v.span.off, 2);
    assert_int_equal(v.span.len, 10);
    assert_int_equal(bp_jscan_inner_begin(&v), 3);
    assert_int_equal(bp_jscan_close_off(&v), 11);
    assert_int_equal(doc[bp_jscan_close_off(&v)], '}');

    assert_int_equal(scan_str(" -12.5e3 ", &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_NUMBER);
    assert_int_equal(v.span.off, 1);
    assert_int_equal(v.span.len, 7);

    assert_int_equal(scan_str("\"x\"", &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_STRING);
    assert_int_equal(v.span.len, 3);
    assert_int_equal(scan_str("null", &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_NULL);
    assert_int_equal(scan_str("true", &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_TRUE);
    assert_int_equal(scan_str("false", &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_FALSE);
    assert_int_equal(scan_str("[]", &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_ARRAY);
}

static void
expect_span(const char *doc, struct bp_jscan_span sp, const char *text)
{
    assert_int_equal(sp.len, strlen(text));
    assert_memory_equal(doc + sp.off, text, sp.len);
}

static void
test_object_members(void **state)
{
    const char *doc = "{ \"a\\\"b\" :\t{\"x\":[1,2]} ,\n\"n\":100.50,\"s\":\"}],\\\"\" , \"e\":{}}";
    struct bp_jscan_value top;
    struct bp_jscan_value v;
    struct bp_jscan_span key;
    struct bp_jscan_iter it;

    assert_int_equal(scan_str(doc, &top), BP_OK);
    bp_jscan_iter_init(&it, doc, &top);

    assert_true(bp_jscan_iter_next(&it, &key, &v));
    expect_span(doc, key, "a\\\"b");
    assert_int_equal(v.type, BP_JSCAN_OBJECT);
    expect_span(doc, v.span, "{\"x\":[1,2]}");

    assert_true(bp_jscan_iter_next(&it, &key, &v));
    expect_span(doc, key, "n");
    assert_int_equal(v.type, BP_JSCAN_NUMBER);
    expect_span(doc, v.span, "100.50");

    assert_true(bp_jscan_iter_next(&it, &key, &v));
    expect_span(doc, key, "s");
    assert_int_equal(v.type, BP_JSCAN_STRING);
    expect_span(doc, v.span, "\"}],\\\"\"");

    assert_true(bp_jscan_iter_next(&it, &key, &v));
    expect_span(doc, key, "e");
    expect_span(doc, v.span, "{}");

    assert_false(bp_jscan_iter_next(&it, &key, &v));
    assert_false(bp_jscan_iter_next(&it, &key, &v));
}

static void
test_array_elements(void **state)
{
    const char *doc = "[ {\"a\":1}, \"s\" ,null,[[]] ,-1 ]";
    struct bp_jscan_value top;
    struct bp_jscan_value v;
    struct bp_jscan_span key = {99, 99};
    struct bp_jscan_iter it;

    assert_int_equal(scan_str(doc, &top), BP_OK);
    bp_jscan_iter_init(&it, doc, &top);
    assert_true(bp_jscan_iter_next(&it, &key, &v));
    assert_int_equal(key.off, 0);
    assert_int_equal(key.len, 0);
    expect_span(doc, v.span, "{\"a\":1}");
    assert_true(bp_jscan_iter_next(&it, NULL, &v));
    expect_span(doc, v.span, "\"s\"");
    assert_true(bp_jscan_iter_next(&it, NULL, &v));
    assert_int_equal(v.type, BP_JSCAN_NULL);
    assert_true(bp_jscan_iter_next(&it, NULL, &v));
    expect_span(doc, v.span, "[[]]");
    assert_true(bp_jscan_iter_next(&it, NULL, &v));
    expect_span(doc, v.span, "-1");
    assert_false(bp_jscan_iter_next(&it, NULL, &v));

    /* Empty containers with whitespace inside have no members. */
    assert_int_equal(scan_str("[ \n ]", &top), BP_OK);
    bp_jscan_iter_init(&it, "[ \n ]", &top);
    assert_false(bp_jscan_iter_next(&it, NULL, &v));
}

/* Wraps a raw key (as it would appear between quotes) in an object and matches it. */
static bool
key_matches(const char *raw_key, const char *name)
{
    char doc[128];
    struct bp_jscan_value top;
    struct bp_jscan_value v;
    struct bp_jscan_span key;
    struct bp_jscan_iter it;
    int n = snprintf(doc, sizeof(doc), "{\"%s\":0}", raw_key);

    assert_true(n > 0 && (size_t)n < sizeof(doc));
    assert_int_equal(bp_jscan_document(doc, (size_t)n, &top), BP_OK);
    bp_jscan_iter_init(&it, doc, &top);
    assert_true(bp_jscan_iter_next(&it, &key, &v));
    return bp_jscan_key_equal_fold(doc, key, name);
}

static void
test_key_matching(void **state)
{
    assert_true(key_matches("reference", "reference"));
    assert_true(key_matches("Reference", "reference"));
    assert_true(key_matches("REFERENCE", "reference"));
    assert_true(key_matches("\\u0072eference", "reference"));
    assert_true(key_matches("\\u0052EFERENC\\u0045", "reference"));
    assert_true(key_matches("precision", "PRECISION"));
    /* U+017F long s, raw UTF-8 and escaped, folds to 's'. */
    assert_true(key_matches("preci\xc5\xbfion", "precision"));
    assert_true(key_matches("PRECI\\u017fION", "precision"));
    assert_true(key_matches("tran\xc5\xbf"
                            "actions",
                            "transactions"));
    /* U+212A Kelvin sign folds to 'k'. */
    assert_true(key_matches("\xe2\x84\xaaind", "kind"));
    assert_true(key_matches("\\u212Aind", "KIND"));
    assert_false(key_matches("\xe2\x84\xaaind", "hind"));

    assert_false(key_matches("reference ", "reference"));
    assert_false(key_matches(" reference", "reference"));
    assert_false(key_matches("referenc", "reference"));
    assert_false(key_matches("references", "reference"));
    assert_false(key_matches("", "reference"));
    assert_true(key_matches("", ""));
    /* Not the same as ſ: other non-ASCII letters, overlong encodings, invalid bytes. */
    assert_false(key_matches("preci\xc5\xbeion", "precision"));
    assert_false(key_matches("preci\xc0\xf3ion", "precision"));
    assert_false(key_matches("preci\xffion", "precision"));
    /* Turkish dotless/dotted i do not fold to i in Go's simple folding. */
    assert_false(key_matches("prec\xc4\xb1sion", "precision"));
    assert_false(key_matches("prec\xc4\xb0sion", "precision"));
    /* Surrogates never become ASCII; a pair is one rune, a lone one U+FFFD. */
    assert_false(key_matches("\\ud800\\udc00reference", "reference"));
    assert_false(key_matches("\\ud800reference", "xreference"));
    /* Escapes that decode to ASCII punctuation compare as that character. */
    assert_true(key_matches("a\\/b\\\"c\\\\", "a/b\"c\\"));
    assert_true(key_matches("\\t\\n", "\t\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_valid_documents),
        cmocka_unit_test(test_rejects_invalid_documents),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_value_spans),
        cmocka_unit_test(test_object_members),
        cmocka_unit_test(test_array_elements),
        cmocka_unit_test(test_key_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
