#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "router/router.h"

#define ID "instance_01J9Z3K4M5N6P7Q8R9S0T1V2W3"

/* Runs the split and checks the id and the forwarded query byte for byte. */
static void
expect_ok(const char *q, const char *want_id, const char *want_forward)
{
    struct bp_buf fwd;
    const char *id = NULL;
    size_t id_len = 0;
    bp_err rc;

    bp_buf_init(&fwd, 4096);
    rc = bp_query_take_instance_id(q, strlen(q), &id, &id_len, &fwd, NULL);
    if (rc != BP_OK) {
        fail_msg("query \"%s\": got %s", q, bp_err_str(rc));
    }
    assert_true(id >= q && id + id_len <= q + strlen(q)); /* points into q, not a copy */
    assert_int_equal(id_len, strlen(want_id));
    assert_memory_equal(id, want_id, id_len);
    assert_int_equal(fwd.len, strlen(want_forward));
    if (fwd.len > 0) {
        assert_memory_equal(fwd.data, want_forward, fwd.len);
    }
    bp_buf_cleanup(&fwd);
}

#define EMPTY_REASON "instance_id is empty: give the id of an instance"
#define REPEATED_REASON "instance_id given more than once"

/* A refusal: the code, the fixed reason for the client, and no output written. */
static void
expect_err(const char *q, bp_err want, const char *want_reason)
{
    struct bp_buf fwd;
    const char *id = NULL;
    size_t id_len = 77;
    const char *why = NULL;

    bp_buf_init(&fwd, 4096);
    assert_int_equal(bp_query_take_instance_id(q, q ? strlen(q) : 0, &id, &id_len, &fwd, &why), want);
    /* Outputs are written only on BP_OK. */
    assert_null(id);
    assert_int_equal(id_len, 77);
    assert_int_equal(fwd.len, 0);
    assert_non_null(why);
    assert_string_equal(why, want_reason);
    bp_buf_cleanup(&fwd);
}

/* No instance_id parameter at all (issue 8: the credential may imply one): BP_OK, no id, and
 * the whole query is forwarded as it came. */
static void
expect_absent(const char *q)
{
    struct bp_buf fwd;
    const char *id = (const char *)&fwd;
    size_t id_len = 77;
    const char *why = "untouched";
    size_t len = q ? strlen(q) : 0;

    bp_buf_init(&fwd, 4096);
    assert_int_equal(bp_query_take_instance_id(q, len, &id, &id_len, &fwd, &why), BP_OK);
    assert_null(id);
    assert_int_equal(id_len, 0);
    assert_string_equal(why, "untouched");
    assert_int_equal(fwd.len, len);
    if (len > 0) {
        assert_memory_equal(fwd.data, q, len);
    }
    bp_buf_cleanup(&fwd);
}

static void
test_removal_positions(void **state)
{
    expect_ok("a=1&instance_id=X&b=2", "X", "a=1&b=2");
    expect_ok("instance_id=X&a=1", "X", "a=1");
    expect_ok("a=1&instance_id=X", "X", "a=1");
    expect_ok("instance_id=X", "X", "");
    expect_ok("a=1&&b=2&instance_id=X", "X", "a=1&&b=2");
    expect_ok("a=1&instance_id=X&&b=2", "X", "a=1&&b=2");
    expect_ok("&instance_id=X", "X", "");
    expect_ok("instance_id=X&", "X", "");
    expect_ok("&&instance_id=X&&", "X", "&&&");
    expect_ok("instance_id=" ID "&timestamp=2024-01-01T00:00:00Z", ID, "timestamp=2024-01-01T00:00:00Z");
}

static void
test_other_bytes_untouched(void **state)
{
    /* Nothing is decoded, re-encoded or reordered. */
    expect_ok("q=a%20b+c&instance_id=X&z=%26&y", "X", "q=a%20b+c&z=%26&y");
    expect_ok("b=2&a=1&instance_id=X&b=3", "X", "b=2&a=1&b=3");
    expect_ok("a=1;instance_id=Y&instance_id=X", "X", "a=1;instance_id=Y");
    /* The value is raw and may hold '=' or escapes; the caller validates it. */
    expect_ok("instance_id=a=b%41&c=d", "a=b%41", "c=d");
}

static void
test_similar_names_are_not_it(void **state)
{
    expect_ok("xinstance_id=1&instance_id=X", "X", "xinstance_id=1");
    expect_ok("Instance_id=1&instance_id=X", "X", "Instance_id=1");
    expect_ok("instance_idx=1&instance_id=X", "X", "instance_idx=1");
    expect_ok("instance%5Fid=1&instance_id=X", "X", "instance%5Fid=1");
    expect_absent("xinstance_id=1");
    expect_absent("Instance_id=1");
    expect_absent("INSTANCE_ID=1");
    expect_absent("instance_idx=1");
    expect_absent("instance%5Fid=1");
    expect_absent("a=instance_id");
}

static void
test_absent(void **state)
{
    expect_absent(NULL);
    expect_absent("");
    expect_absent("a=1&b=2");
    expect_absent("from_source=true");
    expect_absent("&&a=%20&");
}

static void
test_empty(void **state)
{
    expect_err("instance_id", BP_ERR_MISSING_INSTANCE_ID, EMPTY_REASON);
    expect_err("instance_id=", BP_ERR_MISSING_INSTANCE_ID, EMPTY_REASON);
    expect_err("a=1&instance_id=&b=2", BP_ERR_MISSING_INSTANCE_ID, EMPTY_REASON);
    expect_err("a=1&instance_id", BP_ERR_MISSING_INSTANCE_ID, EMPTY_REASON);
}

static void
test_repeated(void **state)
{
    expect_err("instance_id=X&instance_id=Y", BP_ERR_MALFORMED, REPEATED_REASON);
    expect_err("instance_id=X&instance_id=X", BP_ERR_MALFORMED, REPEATED_REASON);
    expect_err("instance_id=X&a=1&instance_id", BP_ERR_MALFORMED, REPEATED_REASON);
    expect_err("instance_id=&instance_id=X", BP_ERR_MALFORMED, REPEATED_REASON);
}

static void
test_length_is_respected(void **state)
{
    struct bp_buf fwd;
    const char *q = "a=1&instance_id=X&instance_id=Y";
    const char *id = NULL;
    size_t id_len = 0;

    /* Only the first 17 bytes are the query, so there is one instance_id. */
    bp_buf_init(&fwd, 64);
    assert_int_equal(bp_query_take_instance_id(q, 17, &id, &id_len, &fwd, NULL), BP_OK);
    assert_int_equal(id_len, 1);
    assert_int_equal(id[0], 'X');
    assert_string_equal(fwd.data, "a=1");
    bp_buf_cleanup(&fwd);
}

static void
test_appends_and_respects_limit(void **state)
{
    struct bp_buf fwd;
    const char *q = "abcdef=1&instance_id=X";
    const char *id = NULL;
    size_t id_len = 0;

    /* Appends after what the buffer already holds. */
    bp_buf_init(&fwd, 64);
    assert_int_equal(bp_buf_append_str(&fwd, "?"), BP_OK);
    assert_int_equal(bp_query_take_instance_id(q, strlen(q), &id, &id_len, &fwd, NULL), BP_OK);
    assert_string_equal(fwd.data, "?abcdef=1");
    bp_buf_cleanup(&fwd);

    /* Over the limit: an error, and the buffer is unchanged. */
    bp_buf_init(&fwd, 4);
    assert_int_equal(bp_buf_append_str(&fwd, "?"), BP_OK);
    id = NULL;
    assert_int_equal(bp_query_take_instance_id(q, strlen(q), &id, &id_len, &fwd, NULL), BP_ERR_LIMIT);
    assert_null(id);
    assert_int_equal(fwd.len, 1);
    assert_string_equal(fwd.data, "?");
    bp_buf_cleanup(&fwd);
}

static void
test_instance_id_validity(void **state)
{
    static const char *const good[] = {
        ID,
        "instance_00000000000000000000000000",
        "instance_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "instance_0123456789ABCDEFGHJKMNPQRS",
        "instance_TVWXYZ0123456789ABCDEFGHJK",
    };
    static const char *const bad[] = {
        "",
        "instance_",
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2W",   /* 25 */
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2W3X", /* 27 */
        "instance_01j9z3k4m5n6p7q8r9s0t1v2w3",  /* lowercase */
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2WI",  /* I */
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2WL",  /* L */
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2WO",  /* O */
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2WU",  /* U */
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2W-",
        "instance_01J9Z3K4M5N6P7Q8R9S0T1V2W%",
        "Instance_01J9Z3K4M5N6P7Q8R9S0T1V2W3",
        "instanceX01J9Z3K4M5N6P7Q8R9S0T1V2W3",
        "inst_01J9Z3K4M5N6P7Q8R9S0T1V2W3abcd",
        "01J9Z3K4M5N6P7Q8R9S0T1V2W3",
    };
    size_t i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!bp_instance_id_is_valid(good[i], strlen(good[i]))) {
            fail_msg("refused %s", good[i]);
        }
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (bp_instance_id_is_valid(bad[i], strlen(bad[i]))) {
            fail_msg("accepted %s", bad[i]);
        }
    }
    assert_false(bp_instance_id_is_valid(NULL, 0));
    /* An embedded NUL is not a base32 character. */
    assert_false(bp_instance_id_is_valid("instance_01J9Z3K4M5N6P7Q8R9S0T1V2W\0", 35));
    /* The length given is what counts, not the C string. */
    assert_false(bp_instance_id_is_valid(ID "Z", strlen(ID) + 1));
    assert_true(bp_instance_id_is_valid(ID "Z", strlen(ID)));
    /* The reason a refusal gives says what the shape is, without the value. */
    assert_string_equal(BP_INSTANCE_ID_SHAPE_REASON,
                        "instance_id must be instance_ followed by 26 Crockford base32 characters");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removal_positions),
        cmocka_unit_test(test_other_bytes_untouched),
        cmocka_unit_test(test_similar_names_are_not_it),
        cmocka_unit_test(test_absent),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_repeated),
        cmocka_unit_test(test_length_is_respected),
        cmocka_unit_test(test_appends_and_respects_limit),
        cmocka_unit_test(test_instance_id_validity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
