#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/rand.h"
#include "rewrite/jscan.h"
#include "rewrite/rewrite.h"

#define MAX_REFS 16

/* References seen by the last expect_* call, so tests can check they differ. */
static char g_refs[MAX_REFS][BP_UUID_LEN + 1];
static size_t g_nrefs;
/* The reason of the last refusal. */
static const char *g_reason;

static bool
is_uuid7(const char *p)
{
    for (size_t i = 0; i < BP_UUID_LEN; i++) {
        char c = p[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return false;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return p[14] == '7' && strchr("89ab", p[19]) != NULL;
}

/* expected is the exact output with each '@' standing for a generated UUIDv7 text. */
static void
expect_rewrite_n(enum bp_txdefaults_kind kind, const char *body, size_t len, const char *expected)
{
    struct bp_buf out;
    bool changed = false;
    size_t o = 0;

    bp_buf_init(&out, 1 << 20);
    assert_int_equal(bp_txdefaults_apply(kind, body, len, &out, &changed, &g_reason), BP_OK);
    assert_true(changed);
    g_nrefs = 0;
    for (const char *e = expected; *e != '\0'; e++) {
        if (*e == '@') {
            assert_true(o + BP_UUID_LEN <= out.len);
            if (!is_uuid7(out.data + o)) {
                fail_msg("no UUIDv7 at %zu in %s", o, out.data);
            }
            assert_true(g_nrefs < MAX_REFS);
            memcpy(g_refs[g_nrefs], out.data + o, BP_UUID_LEN);
            g_refs[g_nrefs++][BP_UUID_LEN] = '\0';
            o += BP_UUID_LEN;
            continue;
        }
        if (o >= out.len || out.data[o] != *e) {
            fail_msg("output differs at %zu:\n got: %s\nwant: %s", o, out.data, expected);
        }
        o++;
    }
    if (o != out.len) {
        fail_msg("output too long:\n got: %s\nwant: %s", out.data, expected);
    }
    bp_buf_cleanup(&out);
}

static void
expect_rewrite(enum bp_txdefaults_kind kind, const char *body, const char *expected)
{
    expect_rewrite_n(kind, body, strlen(body), expected);
}

static void
expect_unchanged_n(enum bp_txdefaults_kind kind, const char *body, size_t len)
{
    struct bp_buf out;
    bool changed = true;

    bp_buf_init(&out, 1 << 20);
    assert_int_equal(bp_txdefaults_apply(kind, body, len, &out, &changed, &g_reason), BP_OK);
    if (changed) {
        fail_msg("changed %s into %s", body, out.data);
    }
    assert_int_equal(out.len, 0);
    bp_buf_cleanup(&out);
}

static void
expect_unchanged(enum bp_txdefaults_kind kind, const char *body)
{
    expect_unchanged_n(kind, body, strlen(body));
}

#define SINGLE BP_TXDEFAULTS_SINGLE
#define BULK BP_TXDEFAULTS_BULK

static void
test_adds_both_after_brace(void **state)
{
    expect_rewrite(SINGLE, "{\"amount\":1}", "{\"precision\":100,\"reference\":\"ref_@\",\"amount\":1}");
    expect_rewrite(SINGLE, "{}", "{\"precision\":100,\"reference\":\"ref_@\"}");
    expect_rewrite(SINGLE, "{ \n }", "{\"precision\":100,\"reference\":\"ref_@\" \n }");
}

static void
test_whitespace_everywhere_kept(void **state)
{
    expect_rewrite(SINGLE, " \r\n\t{ \n\t\"amount\" :\r\n 1 ,\n \"currency\"\t:\"USD\"\n}\n\n ",
                   " \r\n\t{\"precision\":100,\"reference\":\"ref_@\", \n\t\"amount\" :\r\n 1 ,\n "
                   "\"currency\"\t:\"USD\"\n}\n\n ");
}

static void
test_numbers_keep_their_text(void **state)
{
    expect_rewrite(SINGLE,
                   "{\"amount\": 100.50, \"precise_amount\": 1234567890123456789012345678901234567890}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"amount\": 100.50, \"precise_amount\": "
                   "1234567890123456789012345678901234567890}");
    expect_rewrite(SINGLE, "{\"amount\":1e2,\"x\":-0.000}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"amount\":1e2,\"x\":-0.000}");
}

static void
test_nested_keys_do_not_count(void **state)
{
    expect_rewrite(SINGLE,
                   "{\"meta_data\":{\"precision\":2,\"reference\":\"inner\"},\"list\":[{\"reference\":1}]}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"meta_data\":{\"precision\":2,"
                   "\"reference\":\"inner\"},\"list\":[{\"reference\":1}]}");
}

static void
test_string_contents_do_not_count(void **state)
{
    expect_rewrite(SINGLE, "{\"description\":\"say \\\"reference\\\": 1, \\\"precision\\\":2\"}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"description\":\"say \\\"reference\\\": 1, "
                   "\\\"precision\\\":2\"}");
    /* A key-looking value is a value, not a key. */
    expect_rewrite(SINGLE, "{\"a\":\"reference\",\"b\":\"precision\"}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"a\":\"reference\",\"b\":\"precision\"}");
}

static void
test_present_keys_left_alone(void **state)
{
    expect_unchanged(SINGLE, "{\"precision\":0,\"reference\":null}");
    expect_unchanged(SINGLE, "{\"reference\":\"\",\"precision\":null}");
    expect_unchanged(SINGLE, "{\"Reference\":\"r1\",\"PRECISION\":1}");
    expect_unchanged(SINGLE, "{\"\\u0072eference\":{},\"pre\\u0063ision\":[]}");
    /* Duplicates: presence of any one counts. */
    expect_unchanged(SINGLE, "{\"precision\":1,\"precision\":2,\"reference\":\"a\",\"reference\":\"b\"}");
}

static void
test_only_missing_key_added(void **state)
{
    expect_rewrite(SINGLE, "{\"precision\":100,\"amount\":5}",
                   "{\"reference\":\"ref_@\",\"precision\":100,\"amount\":5}");
    expect_rewrite(SINGLE, "{\"reference\":\"r1\"}", "{\"precision\":100,\"reference\":\"r1\"}");
    expect_rewrite(SINGLE, "{\"Reference\":\"r1\"}", "{\"precision\":100,\"Reference\":\"r1\"}");
    expect_rewrite(SINGLE, "{\"\\u0072eference\":\"r1\"}", "{\"precision\":100,\"\\u0072eference\":\"r1\"}");
    expect_rewrite(SINGLE, "{\"precision\":0}", "{\"reference\":\"ref_@\",\"precision\":0}");
    /* Near misses are other keys. */
    expect_rewrite(SINGLE, "{\"reference \":\"r1\",\"precisions\":1}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"reference \":\"r1\",\"precisions\":1}");
}

static void
test_go_folding(void **state)
{
    /* U+017F long s counts as 's', raw or escaped. */
    expect_rewrite(SINGLE, "{\"PRECI\xc5\xbfION\":2}", "{\"reference\":\"ref_@\",\"PRECI\xc5\xbfION\":2}");
    expect_rewrite(SINGLE, "{\"preci\\u017Fion\":2}", "{\"reference\":\"ref_@\",\"preci\\u017Fion\":2}");
    /* The Kelvin sign folds to 'k', which neither key contains, so it makes no match. */
    expect_rewrite(SINGLE, "{\"\xe2\x84\xaa\":1}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"\xe2\x84\xaa\":1}");
    /* Other look-alikes don't count: dotless i, Latin small capital, fullwidth r. */
    expect_rewrite(SINGLE,
                   "{\"prec\xc4\xb1sion\":1,\"\xef\xbd\x92"
                   "eference\":1}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"prec\xc4\xb1sion\":1,\"\xef\xbd\x92"
                   "eference\":1}");
}

static void
test_not_an_object_unchanged(void **state)
{
    static const char *const bodies[] = {
        "[]", "[{}]", "\"str\"", "123", "null", "true", " [ ] ",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        expect_unchanged(SINGLE, bodies[i]);
        expect_unchanged(BULK, bodies[i]);
    }
}

static void
test_invalid_json_unchanged(void **state)
{
    static const char *const bodies[] = {
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\":\"unterminated}",
        "{\"a\":1",
        "{\"a\" 1}",
        "{\"a\":01}",
        "{\"a\":tru}",
        "\xef\xbb\xbf{}",
        "{\"a\":\"\\q\"}",
        "{\"a\":\"x\ty\"}",
        " ",
        "\n\t\r ",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        expect_unchanged(SINGLE, bodies[i]);
        expect_unchanged(BULK, bodies[i]);
    }
    expect_unchanged_n(SINGLE, "", 0);
    expect_unchanged_n(SINGLE, NULL, 0);
    expect_unchanged_n(BULK, "", 0);
    expect_unchanged_n(SINGLE, "{\"a\":\"\0\"}", 8);
}

static void
test_invalid_utf8_in_strings_is_valid(void **state)
{
    /* Go's decoder replaces invalid UTF-8 rather than failing, so Core accepts this body. */
    expect_rewrite(SINGLE, "{\"d\":\"\xff\xc0\"}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"d\":\"\xff\xc0\"}");
}

/* {"a":[[...]]} with arrays levels of arrays: arrays + 1 containers deep in total. */
static size_t
deep_body(char *body, size_t arrays)
{
    size_t n = 0;

    memcpy(body, "{\"a\":", 5);
    n = 5;
    for (size_t i = 0; i < arrays; i++) {
        body[n++] = '[';
    }
    for (size_t i = 0; i < arrays; i++) {
        body[n++] = ']';
    }
    body[n++] = '}';
    return n;
}

/* Issue 11 item 3: Go accepts 10000 levels, so the defaults go in that deep; past it Core refuses
 * the body and so do we, with a reason, rather than forward it undefaulted. */
static void
test_depth_up_to_go_limit(void **state)
{
    static char body[2 * BP_JSCAN_MAX_DEPTH + 8];
    size_t n;
    struct bp_buf out;
    bool changed = false;

    n = deep_body(body, BP_JSCAN_MAX_DEPTH);
    bp_buf_init(&out, 1 << 20);
    g_reason = NULL;
    assert_int_equal(bp_txdefaults_apply(SINGLE, body, n, &out, &changed, &g_reason), BP_ERR_MALFORMED);
    assert_non_null(strstr(g_reason, "deeper than 10000"));
    assert_int_equal(out.len, 0);
    assert_int_equal(bp_txdefaults_apply(BULK, body, n, &out, &changed, &g_reason), BP_ERR_MALFORMED);

    /* One level less is at the limit and gets the defaults; so does depth 65 (the old limit). */
    for (size_t arrays = BP_JSCAN_MAX_DEPTH - 1; arrays >= 64; arrays = arrays == 64 ? 0 : 64) {
        n = deep_body(body, arrays);
        assert_int_equal(bp_txdefaults_apply(SINGLE, body, n, &out, &changed, &g_reason), BP_OK);
        assert_true(changed);
        assert_int_equal(out.len, n + strlen("\"precision\":100,\"reference\":\"ref_\",") + BP_UUID_LEN);
        bp_buf_reset(&out);
    }
    bp_buf_cleanup(&out);
}

static void
expect_refused(enum bp_txdefaults_kind kind, const char *body, size_t len, bp_err want, const char *reason_part)
{
    struct bp_buf out;
    bool changed = false;
    bp_err rc;

    bp_buf_init(&out, 1 << 20);
    g_reason = NULL;
    rc = bp_txdefaults_apply(kind, body, len, &out, &changed, &g_reason);
    if (rc != want) {
        fail_msg("%s: got %d, want %d", body, rc, want);
    }
    assert_non_null(g_reason);
    if (strstr(g_reason, reason_part) == NULL) {
        fail_msg("%s: reason \"%s\" lacks \"%s\"", body, g_reason, reason_part);
    }
    assert_int_equal(out.len, 0);
    bp_buf_cleanup(&out);
}

/* Issue 11 item 3: Core reads only the first JSON value (Go's Decoder.Decode), so an object
 * with anything but whitespace after it is accepted by Core whatever follows. Refused. */
static void
test_trailing_data_refused(void **state)
{
    static const char *const bodies[] = {
        "{} x", "{}}", "{\"amount\":1}{}", "{\"amount\":1} {\"precision\":1}", "{}\n\n#", "{}\f",
        "{\"precision\":1,\"reference\":\"r\"} x", /* even with nothing to add: it means two things */
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        expect_refused(SINGLE, bodies[i], strlen(bodies[i]), BP_ERR_MALFORMED, "after its JSON object");
        expect_refused(BULK, bodies[i], strlen(bodies[i]), BP_ERR_MALFORMED, "after its JSON object");
    }
    expect_refused(SINGLE, "{\"amount\":1}\0", 13, BP_ERR_MALFORMED, "after its JSON object");
    /* Whitespace after the object is fine; a first value that is not an object is Core's. */
    expect_rewrite(SINGLE, "{} \r\n\t", "{\"precision\":100,\"reference\":\"ref_@\"} \r\n\t");
    expect_unchanged(SINGLE, "[{}] x");
    expect_unchanged(SINGLE, "\"s\"\0");
    expect_unchanged(SINGLE, "{\"a\":} {}");
}

/* Issue 11 item 3: Go decodes a second "transactions" array into the elements of the first
 * (decode.go array() reuses v.Index(i)), so which element lacks a precision depends on both. */
static void
test_bulk_duplicate_transactions_refused(void **state)
{
    static const char *const bodies[] = {
        "{\"transactions\":[{\"precision\":5,\"reference\":\"a\"}],\"transactions\":[{}]}",
        "{\"transactions\":[],\"TRANSACTIONS\":null}",
        "{\"transactions\":[{}],\"atomic\":true,\"\\u0074ransactions\":[{}]}",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        expect_refused(BULK, bodies[i], strlen(bodies[i]), BP_ERR_MALFORMED, "more than once");
    }
    /* A single transaction has no such rule. */
    expect_rewrite(SINGLE, "{\"transactions\":1,\"transactions\":2}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"transactions\":1,\"transactions\":2}");
}

static void
test_bulk_three_transactions(void **state)
{
    expect_rewrite(BULK,
                   "{\"atomic\":true,\"transactions\":[\n"
                   "  {\"amount\":1},\n"
                   "  {\"amount\":2,\"reference\":\"mine\"},\n"
                   "  {\"amount\":3,\"precision\":1,\"reference\":\"r3\"}\n"
                   "],\"run_async\":false}",
                   "{\"atomic\":true,\"transactions\":[\n"
                   "  {\"precision\":100,\"reference\":\"ref_@\",\"amount\":1},\n"
                   "  {\"precision\":100,\"amount\":2,\"reference\":\"mine\"},\n"
                   "  {\"amount\":3,\"precision\":1,\"reference\":\"r3\"}\n"
                   "],\"run_async\":false}");
    /* The bulk envelope itself never gets defaults. */
    expect_unchanged(BULK, "{\"amount\":1}");
    expect_unchanged(BULK, "{\"transactions\":[]}");
    expect_unchanged(BULK, "{\"transactions\":[{\"precision\":1,\"reference\":\"x\"}]}");
}

static void
test_bulk_non_array_and_non_objects(void **state)
{
    expect_unchanged(BULK, "{\"transactions\":{\"amount\":1}}");
    expect_unchanged(BULK, "{\"transactions\":null}");
    expect_unchanged(BULK, "{\"transactions\":\"[{}]\"}");
    expect_unchanged(BULK, "{\"meta\":{\"transactions\":[{}]}}");
    expect_unchanged(BULK, "{\"transactions\":[1,\"x\",null,[{}]]}");
    expect_rewrite(BULK, "{\"transactions\":[1, {} ,[{}], null]}",
                   "{\"transactions\":[1, {\"precision\":100,\"reference\":\"ref_@\"} ,[{}], null]}");
    expect_unchanged(BULK, "{\"transactions\":[{},]}");
}

static void
test_bulk_key_matching(void **state)
{
    expect_rewrite(BULK, "{\"Transactions\":[{\"a\":1}]}",
                   "{\"Transactions\":[{\"precision\":100,\"reference\":\"ref_@\",\"a\":1}]}");
    expect_rewrite(BULK, "{\"\\u0074ransaction\xc5\xbf\":[{}]}",
                   "{\"\\u0074ransaction\xc5\xbf\":[{\"precision\":100,\"reference\":\"ref_@\"}]}");
    expect_unchanged(BULK, "{\"transaction\":[{}]}");
    expect_unchanged(BULK, "{\"transactions \":[{}]}");
}

static void
test_single_ignores_transactions(void **state)
{
    /* A single transaction body is defaulted at the top level only. */
    expect_rewrite(SINGLE, "{\"transactions\":[{}]}",
                   "{\"precision\":100,\"reference\":\"ref_@\",\"transactions\":[{}]}");
}

static void
test_references_differ(void **state)
{
    char first[BP_UUID_LEN + 1];

    expect_rewrite(BULK, "{\"transactions\":[{},{}]}",
                   "{\"transactions\":[{\"precision\":100,\"reference\":\"ref_@\"},"
                   "{\"precision\":100,\"reference\":\"ref_@\"}]}");
    assert_int_equal(g_nrefs, 2);
    assert_string_not_equal(g_refs[0], g_refs[1]);

    expect_rewrite(SINGLE, "{}", "{\"precision\":100,\"reference\":\"ref_@\"}");
    memcpy(first, g_refs[0], sizeof(first));
    expect_rewrite(SINGLE, "{}", "{\"precision\":100,\"reference\":\"ref_@\"}");
    assert_string_not_equal(first, g_refs[0]);
}

/* Issue 11 item 4: the rewritten body must fit the route's limit (out->max) or it is a 413. */
static void
test_output_limit(void **state)
{
    const char *body = "{\"amount\":1}";
    size_t need = strlen("{\"precision\":100,\"reference\":\"ref_\",\"amount\":1}") + BP_UUID_LEN;
    struct bp_buf out;
    bool changed = false;

    bp_buf_init(&out, need - 1);
    g_reason = NULL;
    assert_int_equal(bp_txdefaults_apply(SINGLE, body, strlen(body), &out, &changed, &g_reason),
                     BP_ERR_PAYLOAD_TOO_LARGE);
    assert_non_null(strstr(g_reason, "max_body_bytes"));
    assert_int_equal(out.len, 0);
    assert_null(out.data); /* refused before anything was allocated */
    bp_buf_cleanup(&out);

    /* Exactly enough. */
    bp_buf_init(&out, need);
    assert_int_equal(bp_txdefaults_apply(SINGLE, body, strlen(body), &out, &changed, &g_reason), BP_OK);
    assert_true(changed);
    assert_int_equal(out.len, need);
    bp_buf_cleanup(&out);

    /* Bulk: the second element's insertion is what does not fit. */
    body = "{\"transactions\":[{},{}]}";
    bp_buf_init(&out, strlen(body) + 100);
    assert_int_equal(bp_txdefaults_apply(BULK, body, strlen(body), &out, &changed, &g_reason),
                     BP_ERR_PAYLOAD_TOO_LARGE);
    assert_int_equal(out.len, 0);
    bp_buf_cleanup(&out);

    /* Nothing to insert never needs room. */
    body = "{\"precision\":1,\"reference\":\"r\"}";
    bp_buf_init(&out, 0);
    changed = true;
    assert_int_equal(bp_txdefaults_apply(SINGLE, body, strlen(body), &out, &changed, &g_reason), BP_OK);
    assert_false(changed);
    bp_buf_cleanup(&out);
}

/* Issue 11 item 4: 1 MiB of {"transactions":[{},{},...]} used to reach Core as 25 MB. Under a
 * 1 MiB limit it is refused; an exact count of the growth says where the bound lies. */
static void
test_bulk_amplification_bounded(void **state)
{
    const size_t limit = 1 << 20;
    size_t n_objects = (limit - 19) / 3;
    size_t len = 0;
    size_t per_object = strlen("\"precision\":100,\"reference\":\"ref_\"") + BP_UUID_LEN;
    char *body = malloc(limit);
    struct bp_buf out;
    bool changed = false;

    assert_non_null(body);
    memcpy(body, "{\"transactions\":[", 17);
    len = 17;
    for (size_t i = 0; i < n_objects; i++) {
        memcpy(body + len, i == 0 ? "{}" : ",{}", i == 0 ? 2 : 3);
        len += i == 0 ? 2 : 3;
    }
    memcpy(body + len, "]}", 2);
    len += 2;
    assert_true(len <= limit);
    bp_buf_init(&out, limit);
    assert_int_equal(bp_txdefaults_apply(BULK, body, len, &out, &changed, &g_reason), BP_ERR_PAYLOAD_TOO_LARGE);
    assert_null(out.data);
    bp_buf_cleanup(&out);

    /* The bound is exact: room for every insertion is enough, one byte less is not. */
    bp_buf_init(&out, len + n_objects * per_object);
    assert_int_equal(bp_txdefaults_apply(BULK, body, len, &out, &changed, &g_reason), BP_OK);
    assert_true(changed);
    assert_int_equal(out.len, len + n_objects * per_object);
    bp_buf_cleanup(&out);
    bp_buf_init(&out, len + n_objects * per_object - 1);
    assert_int_equal(bp_txdefaults_apply(BULK, body, len, &out, &changed, &g_reason), BP_ERR_PAYLOAD_TOO_LARGE);
    bp_buf_cleanup(&out);
    free(body);
}

static void
test_rewrite_is_idempotent(void **state)
{
    const char *body = "{\"transactions\":[{\"amount\":1},{}]}";
    struct bp_buf out;
    struct bp_buf again;
    bool changed = false;

    bp_buf_init(&out, 1 << 16);
    bp_buf_init(&again, 1 << 16);
    assert_int_equal(bp_txdefaults_apply(BULK, body, strlen(body), &out, &changed, &g_reason), BP_OK);
    assert_true(changed);
    assert_int_equal(bp_txdefaults_apply(BULK, out.data, out.len, &again, &changed, &g_reason), BP_OK);
    assert_false(changed);
    assert_int_equal(again.len, 0);
    bp_buf_cleanup(&out);
    bp_buf_cleanup(&again);
}

/* DESIGN §4b: an Idempotency-Key owner's references come from its scope: the same seed gives the
 * same body on every attempt, one reference per object (UUIDv8 text), and a client's own
 * reference is kept; another seed, or none, gives others. */
static void
test_seeded_references(void **state)
{
    static const char body[] = "{\"transactions\":[{\"amount\":1},{\"amount\":2},{\"reference\":\"mine\"}]}";
    unsigned char seed[BP_TXDEFAULTS_SEED_LEN];
    unsigned char other[BP_TXDEFAULTS_SEED_LEN];
    struct bp_buf a;
    struct bp_buf b;
    struct bp_buf c;
    struct bp_buf r;
    bool changed = false;
    const char *first;
    const char *second;
    (void)state;

    memset(seed, 0x42, sizeof(seed));
    memset(other, 0x43, sizeof(other));
    bp_buf_init(&a, 4096);
    bp_buf_init(&b, 4096);
    bp_buf_init(&c, 4096);
    bp_buf_init(&r, 4096);
    assert_int_equal(bp_txdefaults_apply_seeded(BULK, body, strlen(body), seed, &a, &changed, &g_reason), BP_OK);
    assert_true(changed);
    assert_int_equal(bp_txdefaults_apply_seeded(BULK, body, strlen(body), seed, &b, &changed, &g_reason), BP_OK);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    assert_int_equal(bp_txdefaults_apply_seeded(BULK, body, strlen(body), other, &c, &changed, &g_reason), BP_OK);
    assert_int_equal(c.len, a.len);
    assert_true(memcmp(c.data, a.data, a.len) != 0);
    assert_int_equal(bp_txdefaults_apply(BULK, body, strlen(body), &r, &changed, &g_reason), BP_OK);
    assert_int_equal(r.len, a.len); /* the same length: the body limit's arithmetic holds */

    first = strstr(a.data, "\"reference\":\"ref_");
    assert_non_null(first);
    second = strstr(first + 1, "\"reference\":\"ref_");
    assert_non_null(second);
    first += strlen("\"reference\":\"ref_");
    second += strlen("\"reference\":\"ref_");
    assert_int_equal(first[14], '8'); /* version 8 */
    assert_non_null(strchr("89ab", first[19]));
    assert_int_equal(first[BP_UUID_LEN], '"');
    assert_true(memcmp(first, second, BP_UUID_LEN) != 0);
    assert_null(strstr(second + 1, "\"reference\":\"ref_"));
    assert_non_null(strstr(a.data, "{\"precision\":100,\"reference\":\"mine\"}"));
    bp_buf_cleanup(&a);
    bp_buf_cleanup(&b);
    bp_buf_cleanup(&c);
    bp_buf_cleanup(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adds_both_after_brace),
        cmocka_unit_test(test_whitespace_everywhere_kept),
        cmocka_unit_test(test_numbers_keep_their_text),
        cmocka_unit_test(test_nested_keys_do_not_count),
        cmocka_unit_test(test_string_contents_do_not_count),
        cmocka_unit_test(test_present_keys_left_alone),
        cmocka_unit_test(test_only_missing_key_added),
        cmocka_unit_test(test_go_folding),
        cmocka_unit_test(test_not_an_object_unchanged),
        cmocka_unit_test(test_invalid_json_unchanged),
        cmocka_unit_test(test_invalid_utf8_in_strings_is_valid),
        cmocka_unit_test(test_depth_up_to_go_limit),
        cmocka_unit_test(test_trailing_data_refused),
        cmocka_unit_test(test_bulk_duplicate_transactions_refused),
        cmocka_unit_test(test_bulk_three_transactions),
        cmocka_unit_test(test_bulk_non_array_and_non_objects),
        cmocka_unit_test(test_bulk_key_matching),
        cmocka_unit_test(test_single_ignores_transactions),
        cmocka_unit_test(test_references_differ),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_bulk_amplification_bounded),
        cmocka_unit_test(test_rewrite_is_idempotent),
        cmocka_unit_test(test_seeded_references),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
