/* Last-used notes (auth.h): one note per API key per wall second, none for access tokens, and a
 * full log says so instead of growing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/alloc.h"
#include "store/store.h"

#define T0 1800000000

/* "key_<i>" padded with 'x' to len characters. */
static void
make_id(char *out, size_t i, size_t len)
{
    int n = snprintf(out, len + 1, "key_%zu", i);

    memset(out + n, 'x', len - (size_t)n);
    out[len] = '\0';
}

static struct bp_tables *
tables_of(size_t n_keys, size_t id_len)
{
    struct bp_key_rec *keys = bp_calloc(n_keys, sizeof(*keys));
    struct bp_live_token tok = {
        .id = (char *)"token_1", .client_id = (char *)"client_1", .scopes = (char *)"*"};
    struct bp_tables *t = NULL;

    for (size_t i = 0; i < n_keys; i++) {
        char *id = bp_malloc(id_len + 1);
        make_id(id, i, id_len);
        keys[i].id = id;
        keys[i].scopes = (char *)"*";
        bp_digest(id, strlen(id), keys[i].digest);
    }
    bp_digest("token_1", 7, tok.digest);
    assert_int_equal(bp_tables_build(keys, n_keys, &tok, 1, NULL, 0, &t), BP_OK);
    for (size_t i = 0; i < n_keys; i++) {
        bp_free(keys[i].id);
    }
    bp_free(keys);
    return t;
}

static size_t
notes_in(const struct bp_used_log *log)
{
    size_t pos = 0;
    size_t n = 0;
    const char *id;
    int64_t at;

    while (bp_used_log_next(log, &pos, &id, &at)) {
        n++;
    }
    return n;
}

static void
test_one_note_per_key_per_second(void **state)
{
    struct bp_tables *t = tables_of(2, 8);
    struct bp_used_log log;
    unsigned char d[32];
    const struct bp_cred *k0;
    const struct bp_cred *tok;
    const char *id;
    int64_t at;
    size_t pos = 0;

    (void)state;
    bp_auth_take_used(&log, T0); /* start from an empty log */
    bp_used_log_cleanup(&log);
    bp_digest("key_0xxx", 8, d);
    k0 = bp_tables_find_cred(t, d);
    bp_digest("token_1", 7, d);
    tok = bp_tables_find_cred(t, d);
    assert_non_null(k0);
    assert_non_null(tok);

    for (int i = 0; i < 100; i++) {
        bp_auth_note_use(k0, T0 + 1);
        bp_auth_note_use(tok, T0 + 1);
    }
    bp_auth_note_use(k0, T0 + 2);
    assert_int_equal(atomic_load(&tok->used_at), T0 + 1); /* the row's stamp, for tokens too */
    bp_auth_take_used(&log, T0 + 3);
    assert_int_equal(log.since, T0);
    assert_false(log.overflowed);
    assert_true(bp_used_log_next(&log, &pos, &id, &at));
    assert_string_equal(id, "key_0xxx");
    assert_int_equal(at, T0 + 1);
    assert_true(bp_used_log_next(&log, &pos, &id, &at));
    assert_int_equal(at, T0 + 2);
    assert_false(bp_used_log_next(&log, &pos, &id, &at));
    bp_used_log_cleanup(&log);

    /* The next log begins where the last one was taken. */
    bp_auth_take_used(&log, T0 + 4);
    assert_int_equal(log.since, T0 + 3);
    assert_int_equal(notes_in(&log), 0);
    bp_used_log_cleanup(&log);
    bp_tables_release(t);
}

/* More uses than the log holds: it stops growing and says it overflowed. */
static void
test_full_log_overflows(void **state)
{
    enum { N = 12000, ID_LEN = 1000 }; /* 12 MB of notes, over the 8 MiB bound */
    struct bp_tables *t = tables_of(N, ID_LEN);
    struct bp_used_log log;
    size_t n;

    (void)state;
    bp_auth_take_used(&log, T0);
    bp_used_log_cleanup(&log);
    for (size_t i = 0; i < N; i++) {
        char id[ID_LEN + 1];
        unsigned char d[32];
        make_id(id, i, ID_LEN);
        bp_digest(id, ID_LEN, d);
        assert_non_null(bp_tables_find_cred(t, d));
        bp_auth_note_use(bp_tables_find_cred(t, d), T0 + 1);
    }
    bp_auth_take_used(&log, T0 + 2);
    assert_true(log.overflowed);
    assert_int_equal(log.since, T0);
    n = notes_in(&log);
    assert_true(n > 0 && n < N);
    assert_true(log.notes.len <= 8u << 20);
    bp_used_log_cleanup(&log);
    bp_tables_release(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_note_per_key_per_second),
        cmocka_unit_test(test_full_log_overflows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
