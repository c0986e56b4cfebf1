#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <string.h>

#include "store/store.h"
#include "testdb.h"

/* Idempotency-Key entries through the public store interface (DESIGN §4b): claim, take-over,
 * finish, release, expiry and purge; and exactly one owner among concurrent claimants on
 * separate connections. Runs on SQLite, and on PostgreSQL in the _pg run. */

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "idem_store");
}

static unsigned char scope_a[32];
static unsigned char fp_a[32];
static unsigned char fp_b[32];

static struct bp_idem_claim
claim_at(int64_t now, const unsigned char *fp, bool take_over)
{
    return (struct bp_idem_claim){
        .scope = scope_a,
        .fingerprint = fp,
        .now = now,
        .lease_until = now + 60,
        .expires_at = now + 3600,
        .take_over = take_over,
    };
}

static void
fill(void)
{
    memset(scope_a, 0xA1, sizeof(scope_a));
    memset(fp_a, 0xF1, sizeof(fp_a));
    memset(fp_b, 0xF2, sizeof(fp_b));
}

static void
test_claim_finish_replay(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_idem_claim c;
    struct bp_idem_rec rec;
    bool owned = false;
    /* An answer with bytes text columns would mangle: NUL, high bytes, CR LF. */
    static const char body[] = "{\"a\":1}\0\xff\xfe\r\n";
    static const char headers[] = "Content-Type: application/json\r\nX-Fake: 1\r\n";
    struct bp_idem_rec done = {
        .state = BP_IDEM_DONE,
        .lease_until = 0,
        .status = 201,
        .kept = true,
        .headers = (char *)headers,
        .headers_len = sizeof(headers) - 1,
        .body = (char *)body,
        .body_len = sizeof(body) - 1,
    };

    fill();
    c = claim_at(1000, fp_a, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_true(owned);
    assert_int_equal(rec.state, 0);
    bp_idem_rec_cleanup(&rec);

    /* A second claimant finds it in flight, with its lease, and does not own it. */
    c = claim_at(1001, fp_a, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_false(owned);
    assert_int_equal(rec.state, BP_IDEM_IN_FLIGHT);
    assert_int_equal(rec.lease_until, 1060);
    assert_memory_equal(rec.fingerprint, fp_a, 32);
    bp_idem_rec_cleanup(&rec);

    assert_int_equal(bp_store_idem_finish(f->s, scope_a, &done), BP_OK);
    c = claim_at(1002, fp_b, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_false(owned);
    assert_int_equal(rec.state, BP_IDEM_DONE);
    assert_true(rec.kept);
    assert_int_equal(rec.status, 201);
    assert_memory_equal(rec.fingerprint, fp_a, 32); /* the caller sees the mismatch */
    assert_int_equal(rec.headers_len, sizeof(headers) - 1);
    assert_memory_equal(rec.headers, headers, sizeof(headers) - 1);
    assert_int_equal(rec.body_len, sizeof(body) - 1);
    assert_memory_equal(rec.body, body, sizeof(body) - 1);
    bp_idem_rec_cleanup(&rec);

    /* Expired: gone for a claim, which starts afresh. */
    c = claim_at(1000 + 3600, fp_b, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_true(owned);
    assert_int_equal(rec.state, 0);
    bp_idem_rec_cleanup(&rec);
}

static void
test_take_over_rules(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_idem_claim c;
    struct bp_idem_rec rec;
    bool owned = false;
    struct bp_idem_rec unknown = {.state = BP_IDEM_UNKNOWN, .lease_until = 2030};

    fill();
    c = claim_at(2000, fp_a, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    bp_idem_rec_cleanup(&rec);
    assert_int_equal(bp_store_idem_finish(f->s, scope_a, &unknown), BP_OK);

    /* Within the lease: nobody takes it over. */
    c = claim_at(2029, fp_a, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_false(owned);
    assert_int_equal(rec.state, BP_IDEM_UNKNOWN);
    bp_idem_rec_cleanup(&rec);
    /* After it: not for another request, not without take_over. */
    c = claim_at(2030, fp_b, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_false(owned);
    bp_idem_rec_cleanup(&rec);
    c = claim_at(2030, fp_a, false);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_false(owned);
    bp_idem_rec_cleanup(&rec);
    /* The same request with take_over owns it, told what it was; then it is in flight again. */
    c = claim_at(2030, fp_a, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_true(owned);
    assert_int_equal(rec.state, BP_IDEM_UNKNOWN);
    bp_idem_rec_cleanup(&rec);
    c = claim_at(2031, fp_a, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_false(owned);
    assert_int_equal(rec.state, BP_IDEM_IN_FLIGHT);
    assert_int_equal(rec.lease_until, 2090);
    bp_idem_rec_cleanup(&rec);

    /* An answered entry is never taken over; a released one is claimed afresh. */
    assert_int_equal(bp_store_idem_finish(f->s, scope_a, &(struct bp_idem_rec){.state = BP_IDEM_DONE, .status = 500}),
                     BP_OK);
    c = claim_at(2050, fp_a, true);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_false(owned);
    assert_int_equal(rec.state, BP_IDEM_DONE);
    assert_false(rec.kept);
    assert_int_equal(rec.status, 500);
    bp_idem_rec_cleanup(&rec);
    assert_int_equal(bp_store_idem_release(f->s, scope_a), BP_OK);
    c = claim_at(2040, fp_b, false);
    assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
    assert_true(owned);
    bp_idem_rec_cleanup(&rec);
    memset(scope_a, 0x00, sizeof(scope_a));
    assert_int_equal(bp_store_idem_finish(f->s, scope_a, &unknown), BP_ERR_NOT_FOUND);
}

static void
test_purge(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_idem_rec rec;
    bool owned = false;
    int64_t deleted = -1;

    for (int i = 0; i < 5; i++) {
        struct bp_idem_claim c;
        memset(scope_a, i + 1, sizeof(scope_a));
        memset(fp_a, 0xF1, sizeof(fp_a));
        c = claim_at(100, fp_a, false);
        c.expires_at = 200 + i * 100; /* 200, 300, 400, 500, 600 */
        assert_int_equal(bp_store_idem_claim(f->s, &c, &rec, &owned), BP_OK);
        assert_true(owned);
        bp_idem_rec_cleanup(&rec);
    }
    assert_int_equal(bp_store_idem_purge(f->s, 199, &deleted), BP_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(bp_store_idem_purge(f->s, 400, &deleted), BP_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(bp_store_idem_purge(f->s, 1000, &deleted), BP_OK);
    assert_int_equal(deleted, 2);
}

#define CLAIMANTS 8

struct claimant {
    const char *dsn;
    pthread_barrier_t *start;
    bool owned;
    bp_err rc;
};

static void *
claim_thread(void *arg)
{
    struct claimant *c = arg;
    struct bp_store *s = NULL;
    struct bp_idem_rec rec;
    struct bp_idem_claim cl;
    char err[256];

    c->rc = bp_store_open(c->dsn, 0, &s, err, sizeof(err));
    pthread_barrier_wait(c->start);
    if (c->rc != BP_OK) {
        return NULL;
    }
    cl = claim_at(5000, fp_a, true);
    c->rc = bp_store_idem_claim(s, &cl, &rec, &c->owned);
    bp_idem_rec_cleanup(&rec);
    bp_store_close(s);
    return NULL;
}

/* Claimants on their own connections (as on several nodes), released at once: one owner. */
static void
test_one_owner_among_concurrent_claims(void **state)
{
    struct bp_testdb_store *f = *state;
    pthread_t threads[CLAIMANTS];
    struct claimant cs[CLAIMANTS];
    pthread_barrier_t start;
    int owners = 0;

    fill();
    pthread_barrier_init(&start, NULL, CLAIMANTS);
    for (int i = 0; i < CLAIMANTS; i++) {
        cs[i] = (struct claimant){.dsn = f->db.path, .start = &start};
        assert_int_equal(pthread_create(&threads[i], NULL, claim_thread, &cs[i]), 0);
    }
    for (int i = 0; i < CLAIMANTS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(cs[i].rc, BP_OK);
        owners += cs[i].owned ? 1 : 0;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(owners, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_finish_replay, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_take_over_rules, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_one_owner_among_concurrent_claims, setup, bp_testdb_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
