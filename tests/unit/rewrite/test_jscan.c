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

/* Issue 11: the limit is Go's (scanner.go maxNestingDepth = 10000), not a recursion limit; past it
 * the answer is LIMIT, told apart from a syntax error. */
static void
test_depth_limit(void **state)
{
    static char buf[2 * (BP_JSCAN_MAX_DEPTH + 1) + 8];
    static char obj[16 * (BP_JSCAN_MAX_DEPTH + 1)];
    size_t n = 0;
    struct bp_jscan_value v;

    assert_int_equal(BP_JSCAN_MAX_DEPTH, 10000);
    nested(buf, BP_JSCAN_MAX_DEPTH, '[', ']');
    assert_int_equal(scan_str(buf, &v), BP_OK);
    assert_int_equal(v.span.len, 2 * BP_JSCAN_MAX_DEPTH);
    nested(buf, BP_JSCAN_MAX_DEPTH + 1, '[', ']');
    assert_int_equal(scan_str(buf, &v), BP_ERR_LIMIT);
    /* Go fails at the first bad byte: a syntax error before the 10001st bracket is a syntax
     * error, one after it is never reached. */
    nested(buf, BP_JSCAN_MAX_DEPTH + 1, '[', ']');
    buf[BP_JSCAN_MAX_DEPTH - 1] = 'x';
    assert_int_equal(scan_str(buf, &v), BP_ERR_INVALID);
    nested(buf, BP_JSCAN_MAX_DEPTH + 1, '[', ']');
    buf[BP_JSCAN_MAX_DEPTH + 1] = 'x';
    assert_int_equal(scan_str(buf, &v), BP_ERR_LIMIT);

    /* Objects count the same way: {"a":{"a":...}} */
    for (size_t i = 0; i < BP_JSCAN_MAX_DEPTH + 1; i++) {
        memcpy(obj + n, "{\"a\":", 5);
        n += 5;
    }
    obj[n++] = '1';
    for (size_t i = 0; i < BP_JSCAN_MAX_DEPTH + 1; i++) {
        obj[n++] = '}';
    }
    assert_int_equal(bp_jscan_document(obj, n, &v), BP_ERR_LIMIT);
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

/* Go's Decoder.Decode reads the first value and stops at its last byte (stream.go readValue). */
static void
test_first_value_only(void **state)
{
    struct bp_jscan_value v;

    assert_int_equal(bp_jscan_first("  {\"a\":1} x", 12, &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_OBJECT);
    assert_int_equal(v.span.off, 2);
    assert_int_equal(v.span.len, 7);
    assert_false(bp_jscan_only_ws("  {\"a\":1} x", 12, 9));
    assert_true(bp_jscan_only_ws("{} \r\n\t", 6, 2));
    assert_true(bp_jscan_only_ws("{}", 2, 2));
    assert_int_equal(bp_jscan_first("{}\0", 3, &v), BP_OK);
    assert_int_equal(v.span.len, 2);
    assert_int_equal(bp_jscan_first("{}{}", 4, &v), BP_OK);
    assert_int_equal(v.span.len, 2);
    assert_int_equal(bp_jscan_first("{}}", 3, &v), BP_OK);
    /* A top-level number ends at the first byte that cannot continue it. */
    assert_int_equal(bp_jscan_first("123abc", 6, &v), BP_OK);
    assert_int_equal(v.type, BP_JSCAN_NUMBER);
    assert_int_equal(v.span.len, 3);
    assert_int_equal(bp_jscan_first("truex", 5, &v), BP_OK);
    assert_int_equal(v.span.len, 4);
    /* Errors inside the first value still count. */
    assert_int_equal(bp_jscan_first("{\"a\":} {}", 10, &v), BP_ERR_INVALID);
    assert_int_equal(bp_jscan_first("  ", 2, &v), BP_ERR_INVALID);
    assert_int_equal(bp_jscan_first("1.", 2, &v), BP_ERR_INVALID);
    assert_int_equal(bp_jscan_first(NULL, 0, &v), BP_ERR_INVALID);
}

/* The iterator skips members of any depth without recursion. */
static void
test_iter_skips_deep_values(void **state)
{
    static char doc[2 * BP_JSCAN_MAX_DEPTH + 64];
    struct bp_jscan_value top;
    struct bp_jscan_value v;
    struct bp_jscan_span key;
    struct bp_jscan_iter it;
    size_t n = 0;

    memcpy(doc, "{\"deep\":", 8);
    n = 8;
    nested(doc + n, BP_JSCAN_MAX_DEPTH - 1, '[', ']');
    n += 2 * (BP_JSCAN_MAX_DEPTH - 1);
    memcpy(doc + n, ",\"s\":\"]}\\\"\",\"id\":7}", 19);
    n += 19;
    assert_int_equal(bp_jscan_document(doc, n, &top), BP_OK);
    bp_jscan_iter_init(&it, doc, &top);
    assert_true(bp_jscan_iter_next(&it, &key, &v));
    assert_int_equal(v.type, BP_JSCAN_ARRAY);
    assert_int_equal(v.span.len, 2 * (BP_JSCAN_MAX_DEPTH - 1));
    assert_true(bp_jscan_iter_next(&it, &key, &v));
    expect_span(doc, key, "s");
    assert_int_equal(v.type, BP_JSCAN_STRING);
    assert_true(bp_jscan_iter_next(&it, &key, &v));
    expect_span(doc, key, "id");
    expect_span(doc, v.span, "7");
    assert_false(bp_jscan_iter_next(&it, &key, &v));
}

struct events {
    char log[512];
    size_t n;
};

static void
log_event(struct events *e, const char *text)
{
    size_t k = strlen(text);

    assert_true(e->n + k < sizeof(e->log));
    memcpy(e->log + e->n, text, k + 1);
    e->n += k;
}

static void
ev_begin(void *arg, unsigned depth, enum bp_jscan_type type, size_t off)
{
    char t[32];

    snprintf(t, sizeof(t), "b%u:%d@%zu ", depth, (int)type, off);
    log_event(arg, t);
}

static void
ev_key(void *arg, unsigned depth, struct bp_jscan_span key)
{
    char t[32];

    snprintf(t, sizeof(t), "k%u:%zu+%zu ", depth, key.off, key.len);
    log_event(arg, t);
}

static void
ev_end(void *arg, unsigned depth, size_t off)
{
    char t[32];

    snprintf(t, sizeof(t), "e%u@%zu ", depth, off);
    log_event(arg, t);
}

/* Events come in document order, only up to max_depth. */
static void
test_visitor_events(void **state)
{
    const char *doc = "{\"a\":[1,{\"b\":[2]}],\"c\":{}}";
    struct events e = {{0}, 0};
    struct bp_jscan_visitor vis = {2, &e, ev_begin, ev_key, ev_end};
    struct bp_jscan_value v;

    assert_int_equal(bp_jscan_walk(doc, strlen(doc), &vis, &v), BP_OK);
    /* O=0 A=1 S=2 N=3: a's array (depth 1) holds 1 and an object (depth 2) whose key "b" and
     * array (depth 3) are too deep to report. */
    assert_string_equal(e.log, "b0:0@0 k1:2+1 b1:1@5 b2:3@6 b2:0@8 e2@16 e1@17 k1:20+1 b1:0@23 e1@24 e0@25 ");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_valid_documents),
        cmocka_unit_test(test_rejects_invalid_documents),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_first_value_only),
        cmocka_unit_test(test_iter_skips_deep_values),
        cmocka_unit_test(test_visitor_events),
        cmocka_unit_test(test_value_spans),
        cmocka_unit_test(test_object_members),
        cmocka_unit_test(test_array_elements),
        cmocka_unit_test(test_key_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
