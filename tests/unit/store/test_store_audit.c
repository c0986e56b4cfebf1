#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "store/sqlite-int.h"
#include "store/store.h"
#include "testdb.h"

/* The audit log on SQLite: insert assigns seq, every query filter, ordering, limit, follow
 * (after_seq ascending), purge, and that each filter is answered through an index. */

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "store_audit");
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? bp_strdup(s) : NULL;
}

/* A request record: time in seconds from a base, the filterable fields, and a status. */
static struct bp_audit_rec
mk(int64_t t_s, const char *category, const char *instance, const char *actor, const char *action, int status)
{
    struct bp_audit_rec r = {
        .time_us = 1700000000000000LL + t_s * 1000000,
        .request_id = bp_strdup("req-1"),
        .actor_type = bp_strdup("api_key"),
        .actor_id = dup_or_null(actor),
        .actor_name = bp_strdup("ci key"),
        .instance_id = dup_or_null(instance),
        .method = bp_strdup("POST"),
        .route = bp_strdup("/ledgers"),
        .path = bp_strdup("/ledgers"),
        .action = dup_or_null(action),
        .category = dup_or_null(category),
        .core_status = status,
        .status = status,
        .latency_us = 1234,
        .client_addr = bp_strdup("127.0.0.1"),
        .resource_id = bp_strdup("ldg_1"),
    };
    return r;
}

/* 12 records at t = 0..11 s over two categories, two instances, three actors, several statuses. */
static void
fill(struct bp_store *s)
{
    struct bp_audit_rec recs[12];
    static const int statuses[12] = {200, 201, 404, 401, 200, 500, 201, 403, 200, 502, 200, 201};

    for (int i = 0; i < 12; i++) {
        recs[i] = mk(i, i % 2 == 0 ? "ledgers" : "transactions", i % 3 == 0 ? "instance_A" : "instance_B",
                     i % 4 == 0 ? "key_1" : (i % 4 == 1 ? "key_2" : "client_3"),
                     i % 2 == 0 ? "Ledger created" : "Transaction created", statuses[i]);
    }
    assert_int_equal(bp_store_audit_insert(s, recs, 12), BP_OK);
    for (int i = 0; i < 12; i++) {
        assert_true(recs[i].seq > 0);
        if (i > 0) {
            assert_true(recs[i].seq > recs[i - 1].seq);
        }
        bp_audit_rec_cleanup(&recs[i]);
    }
}

static void
run(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *n)
{
    assert_int_equal(bp_store_audit_query(s, q, out, n), BP_OK);
}

/* Seconds offsets of the results, in result order. */
static void
expect_times(struct bp_store *s, const struct bp_audit_query *q, const int *want, size_t nwant)
{
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;

    run(s, q, &recs, &n);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal((recs[i].time_us - 1700000000000000LL) / 1000000, want[i]);
    }
    bp_audit_recs_free(recs, n);
}

static void
test_insert_round_trip(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_rec r = mk(5, "ledgers", "instance_A", "key_1", "Ledger created", 201);
    struct bp_audit_rec admin = {
        .time_us = 1700000000000001LL,
        .actor_type = bp_strdup("cli"),
        .actor_id = bp_strdup("alice"),
        .action = bp_strdup("Key created"),
        .category = bp_strdup("admin"),
        .resource_id = bp_strdup("key_X"),
    };
    struct bp_audit_query q = {.ascending = true};
    struct bp_audit_rec *out = NULL;
    size_t n = 0;

    r.error = bp_strdup("AUTH_INVALID_API_KEY");
    r.core_status = 0;
    assert_int_equal(bp_store_audit_insert(f->s, &r, 1), BP_OK);
    assert_int_equal(bp_store_audit_insert(f->s, &admin, 1), BP_OK);
    assert_true(admin.seq > r.seq);
    run(f->s, &q, &out, &n);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].seq, r.seq);
    assert_int_equal(out[0].time_us, r.time_us);
    assert_string_equal(out[0].request_id, "req-1");
    assert_string_equal(out[0].actor_type, "api_key");
    assert_string_equal(out[0].actor_id, "key_1");
    assert_string_equal(out[0].actor_name, "ci key");
    assert_string_equal(out[0].instance_id, "instance_A");
    assert_string_equal(out[0].method, "POST");
    assert_string_equal(out[0].route, "/ledgers");
    assert_string_equal(out[0].path, "/ledgers");
    assert_string_equal(out[0].action, "Ledger created");
    assert_string_equal(out[0].category, "ledgers");
    assert_int_equal(out[0].core_status, 0);
    assert_int_equal(out[0].status, 201);
    assert_int_equal(out[0].latency_us, 1234);
    assert_string_equal(out[0].client_addr, "127.0.0.1");
    assert_string_equal(out[0].resource_id, "ldg_1");
    assert_string_equal(out[0].error, "AUTH_INVALID_API_KEY");
    /* NULL fields stay NULL. */
    assert_null(out[1].request_id);
    assert_null(out[1].method);
    assert_null(out[1].path);
    assert_null(out[1].instance_id);
    assert_null(out[1].error);
    assert_int_equal(out[1].status, 0);
    assert_string_equal(out[1].actor_id, "alice");
    bp_audit_recs_free(out, n);
    bp_audit_rec_cleanup(&r);
    bp_audit_rec_cleanup(&admin);
}

/* Issue 9: the store gives every record a unique id, keeps it with the node, and skips a record
 * whose id it holds already, so that inserting the same records twice (a spool imported again,
 * a batch whose commit went unanswered and was spooled) stores each once. */
static void
test_ids_make_a_repeated_insert_harmless(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_rec recs[3] = {mk(1, "ledgers", "instance_A", "key_1", "Ledger created", 201),
                                   mk(2, "ledgers", "instance_A", "key_1", "Ledger created", 201),
                                   mk(3, "ledgers", "instance_A", "key_1", "Ledger created", 201)};
    struct bp_audit_rec more[2];
    struct bp_audit_rec mixed[5];
    struct bp_audit_query q = {.ascending = true};
    struct bp_audit_rec *out = NULL;
    size_t n = 0;

    recs[1].node = bp_strdup("node-a:8080");
    assert_int_equal(bp_store_audit_insert(f->s, recs, 3), BP_OK);
    for (size_t i = 0; i < 3; i++) {
        assert_non_null(recs[i].id);
        assert_int_equal(strlen(recs[i].id), strlen("audit_") + 26);
        assert_memory_equal(recs[i].id, "audit_", 6);
        assert_true(recs[i].seq > 0);
    }
    assert_string_not_equal(recs[0].id, recs[1].id);
    /* The same three again: nothing is stored, and no record claims a seq. */
    assert_int_equal(bp_store_audit_insert(f->s, recs, 3), BP_OK);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(recs[i].seq, 0);
    }
    /* One old, one new: only the new one. */
    more[0] = mk(4, "ledgers", "instance_A", "key_1", "Ledger created", 201);
    more[0].id = bp_strdup(recs[2].id);
    more[1] = mk(5, "ledgers", "instance_A", "key_1", "Ledger created", 201);
    more[1].id = bp_strdup("audit_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_int_equal(bp_store_audit_insert(f->s, more, 2), BP_OK);
    assert_int_equal(more[0].seq, 0);
    assert_true(more[1].seq > 0);

    run(f->s, &q, &out, &n);
    assert_int_equal(n, 4);
    assert_string_equal(out[0].id, recs[0].id);
    assert_null(out[0].node);
    assert_string_equal(out[1].node, "node-a:8080");
    assert_string_equal(out[3].id, "audit_01ARZ3NDEKTSV4RRFFQ69G5FAV");
    /* The old record kept its own time: the repeat did not overwrite it. */
    assert_int_equal(out[2].time_us, recs[2].time_us);
    bp_audit_recs_free(out, n);
    out = NULL;

    /* Old and new mixed in one batch of five (a four-row statement, then a single row): the
     * new ones get ascending seqs, the old ones none, and only the new ones are stored. */
    for (size_t i = 0; i < 5; i++) {
        mixed[i] = mk(10 + (int64_t)i, "ledgers", "instance_A", "key_1", "Ledger created", 201);
    }
    mixed[1].id = bp_strdup(recs[0].id);
    mixed[3].id = bp_strdup(more[1].id);
    assert_int_equal(bp_store_audit_insert(f->s, mixed, 5), BP_OK);
    assert_int_equal(mixed[1].seq, 0);
    assert_int_equal(mixed[3].seq, 0);
    assert_true(mixed[0].seq > more[1].seq);
    assert_true(mixed[2].seq > mixed[0].seq);
    assert_true(mixed[4].seq > mixed[2].seq);
    run(f->s, &q, &out, &n);
    assert_int_equal(n, 7);
    assert_int_equal(out[4].seq, mixed[0].seq);
    assert_string_equal(out[4].id, mixed[0].id);
    assert_int_equal(out[5].seq, mixed[2].seq);
    assert_string_equal(out[5].id, mixed[2].id);
    assert_int_equal(out[6].seq, mixed[4].seq);
    assert_string_equal(out[6].id, mixed[4].id);
    bp_audit_recs_free(out, n);
    for (size_t i = 0; i < 5; i++) {
        bp_audit_rec_cleanup(&mixed[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        bp_audit_rec_cleanup(&recs[i]);
    }
    bp_audit_rec_cleanup(&more[0]);
    bp_audit_rec_cleanup(&more[1]);
}

/* audit list --follow: the listing and then every record committed after it, each once. */
static void
test_follow_cursor(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_query q = {.category = "ledgers", .limit = 2};
    struct bp_audit_cursor *c = NULL;
    struct bp_audit_rec *out = NULL;
    struct bp_audit_rec recs[3];
    size_t n = 0;
    bool more = true;

    fill(f->s); /* ledgers at t = 0, 2, 4, 6, 8, 10 */
    assert_int_equal(bp_store_audit_follow(f->s, &q, &out, &n, &c), BP_OK);
    assert_int_equal(n, 2);
    assert_int_equal((out[0].time_us - 1700000000000000LL) / 1000000, 10);
    bp_audit_recs_free(out, n);
    /* Nothing new yet; then two records of the category and one of another. */
    assert_int_equal(bp_store_audit_follow_next(f->s, c, 100, &out, &n, &more), BP_OK);
    assert_int_equal(n, 0);
    assert_false(more);
    bp_audit_recs_free(out, n);
    recs[0] = mk(20, "ledgers", NULL, "key_1", "Ledger created", 201);
    recs[1] = mk(21, "balances", NULL, "key_1", "Balance created", 201);
    recs[2] = mk(22, "ledgers", NULL, "key_1", "Ledger created", 201);
    assert_int_equal(bp_store_audit_insert(f->s, recs, 3), BP_OK);
    /* Pages of one: the first is full, so the caller is told to come again at once; calling
     * while told so hands out the two new ledger records, in order, each once. A page may hold
     * none of them: on PostgreSQL, a transaction running elsewhere on the shared test server
     * holds the low-water mark back, and records handed out already take room in a page. */
    assert_int_equal(bp_store_audit_follow_next(f->s, c, 1, &out, &n, &more), BP_OK);
    assert_true(more);
    {
        char *got[3] = {NULL, NULL, NULL};
        size_t n_got = 0;
        int calls = 1;

        for (;;) {
            assert_true(n <= 1);
            for (size_t i = 0; i < n; i++) {
                assert_true(n_got < 2);
                got[n_got++] = out[i].id;
                out[i].id = NULL; /* kept: compared below */
            }
            bp_audit_recs_free(out, n);
            if (!more) {
                break;
            }
            assert_true(++calls < 1000); /* the rows before the mark are few */
            assert_int_equal(bp_store_audit_follow_next(f->s, c, 1, &out, &n, &more), BP_OK);
        }
        assert_int_equal(n_got, 2);
        assert_string_equal(got[0], recs[0].id);
        assert_string_equal(got[1], recs[2].id);
        bp_free(got[0]);
        bp_free(got[1]);
    }
    assert_int_equal(bp_store_audit_follow_next(f->s, c, 100, &out, &n, &more), BP_OK);
    assert_int_equal(n, 0);
    assert_false(more);
    bp_audit_recs_free(out, n);
    bp_audit_cursor_free(c);
    for (size_t i = 0; i < 3; i++) {
        bp_audit_rec_cleanup(&recs[i]);
    }
}

static void
test_order_and_limit(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_query q = {0};
    const int newest[12] = {11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    const int top3[3] = {11, 10, 9};
    const int oldest[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

    fill(f->s);
    expect_times(f->s, &q, newest, 12);
    q.limit = 3;
    expect_times(f->s, &q, top3, 3);
    q.limit = 0;
    q.ascending = true;
    expect_times(f->s, &q, oldest, 12);
}

static void
test_filters(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_query q = {0};

    fill(f->s);
    {
        const int want[] = {7, 6, 5, 4, 3};
        q = (struct bp_audit_query){.since_us = 1700000000000000LL + 3000000,
                                    .until_us = 1700000000000000LL + 8000000};
        expect_times(f->s, &q, want, 5);
    }
    {
        const int want[] = {11, 9, 7, 5, 3, 1};
        q = (struct bp_audit_query){.category = "transactions"};
        expect_times(f->s, &q, want, 6);
    }
    {
        const int want[] = {9, 6, 3, 0};
        q = (struct bp_audit_query){.instance_id = "instance_A"};
        expect_times(f->s, &q, want, 4);
    }
    {
        const int want[] = {9, 5, 1};
        q = (struct bp_audit_query){.credential = "key_2"};
        expect_times(f->s, &q, want, 3);
    }
    {
        const int want[] = {10, 8, 6, 4, 2, 0};
        q = (struct bp_audit_query){.action = "Ledger created"};
        expect_times(f->s, &q, want, 6);
    }
    {
        const int want[] = {11, 6, 1};
        q = (struct bp_audit_query){.status = 201};
        expect_times(f->s, &q, want, 3);
    }
    {
        const int want[] = {7, 3, 2};
        q = (struct bp_audit_query){.status = 4};
        expect_times(f->s, &q, want, 3);
    }
    {
        const int want[] = {9, 5};
        q = (struct bp_audit_query){.status = 5};
        expect_times(f->s, &q, want, 2);
    }
    {
        /* Everything at once: transactions on instance_B by client_3 since t=2, 2xx. */
        const int want[] = {11, 7};
        q = (struct bp_audit_query){.category = "transactions", .instance_id = "instance_B",
                                    .credential = "client_3", .action = "Transaction created",
                                    .since_us = 1700000000000000LL + 2000000};
        expect_times(f->s, &q, want, 2);
        q.status = 2;
        {
            const int want2[] = {11};
            expect_times(f->s, &q, want2, 1);
        }
    }
    {
        q = (struct bp_audit_query){.category = "identities"};
        expect_times(f->s, &q, NULL, 0);
    }
}

static void
test_after_seq(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_query q = {.ascending = true, .limit = 1};
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;
    int64_t first;

    fill(f->s);
    run(f->s, &q, &recs, &n);
    assert_int_equal(n, 1);
    first = recs[0].seq;
    bp_audit_recs_free(recs, n);
    {
        const int want[] = {1, 3, 5};
        q = (struct bp_audit_query){.ascending = true, .after_seq = first, .category = "transactions",
                                    .limit = 3};
        expect_times(f->s, &q, want, 3);
    }
}

static void
test_purge(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_query q = {0};
    const int want[] = {11, 10, 9, 8, 7, 6, 5};
    int64_t deleted = -1;

    fill(f->s);
    assert_int_equal(bp_store_audit_purge(f->s, 1700000000000000LL + 5000000, bp_testdb_cut, NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 5);
    expect_times(f->s, &q, want, 7);
    assert_int_equal(bp_store_audit_purge(f->s, 1700000000000000LL, bp_testdb_cut, NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 0);
}

/* More rows than one purge chunk: every old one goes, every new one stays. */
static void
test_purge_chunks(void **state)
{
    struct bp_testdb_store *f = *state;
    size_t total = 25000;
    struct bp_audit_rec *recs = bp_calloc(total, sizeof(*recs));
    struct bp_audit_query q = {0};
    struct bp_audit_rec *out = NULL;
    size_t n = 0;
    int64_t deleted = 0;

    for (size_t i = 0; i < total; i++) {
        recs[i].time_us = (int64_t)i;
        recs[i].actor_type = bp_strdup("anonymous");
    }
    assert_int_equal(bp_store_audit_insert(f->s, recs, total), BP_OK);
    bp_audit_recs_free(recs, total);
    assert_int_equal(bp_store_audit_purge(f->s, 24000, bp_testdb_cut, NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 24000);
    run(f->s, &q, &out, &n);
    assert_int_equal(n, 1000);
    assert_int_equal(out[n - 1].time_us, 24000);
    bp_audit_recs_free(out, n);
}

/* A caller's transaction (a CLI change and its record) commits or rolls back both. */
static void
test_insert_inside_caller_tx(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_rec r = mk(1, "admin", NULL, "alice", "Key created", 0);
    struct bp_audit_query q = {0};
    struct bp_audit_rec *out = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_audit_insert(f->s, &r, 1), BP_OK);
    bp_store_rollback(f->s);
    run(f->s, &q, &out, &n);
    assert_int_equal(n, 0);
    bp_audit_recs_free(out, n);
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_audit_insert(f->s, &r, 1), BP_OK);
    assert_int_equal(bp_store_commit(f->s), BP_OK);
    run(f->s, &q, &out, &n);
    assert_int_equal(n, 1);
    bp_audit_recs_free(out, n);
    bp_audit_rec_cleanup(&r);
}

/* A failed insert stores nothing and leaves no seq behind. */
static void
test_insert_failure_is_atomic(void **state)
{
    struct bp_testdb_store *f = *state;
    struct sqlite_store *st = bp_sq__of(f->s);
    struct bp_audit_rec recs[3] = {mk(1, "ledgers", NULL, "k", "a", 200), mk(2, "ledgers", NULL, "k", "a", 200),
                                   mk(3, "ledgers", NULL, "k", "a", 200)};
    struct bp_audit_query q = {0};
    struct bp_audit_rec *out = NULL;
    size_t n = 0;

    if (bp_sq__exec(st, "CREATE TRIGGER t_fail BEFORE INSERT ON audit_log WHEN NEW.time_us = "
                        "1700000003000000 BEGIN SELECT RAISE(ABORT, 'no'); END") != BP_OK) {
        fail_msg("create trigger: %s", bp_store_last_error(f->s));
    }
    assert_int_equal(bp_store_audit_insert(f->s, recs, 3), BP_ERR_STORE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(recs[i].seq, 0);
        bp_audit_rec_cleanup(&recs[i]);
    }
    run(f->s, &q, &out, &n);
    assert_int_equal(n, 0);
    bp_audit_recs_free(out, n);
}

/* ---- query plans ---- */

static char captured_sql[1024];

static int
trace_cb(unsigned type, void *ctx, void *p, void *x)
{
    const char *sql = sqlite3_sql(p);

    if (type == SQLITE_TRACE_STMT && sql != NULL && strncmp(sql, "SELECT", 6) == 0) {
        snprintf(captured_sql, sizeof(captured_sql), "%s", sql);
    }
    return 0;
}

/* The plan of the statement the store ran for q, all detail lines joined. */
static void
plan_of(struct bp_testdb_store *f, const struct bp_audit_query *q, char *out, size_t cap)
{
    struct sqlite_store *st = bp_sq__of(f->s);
    struct bp_audit_rec *recs = NULL;
    sqlite3_stmt *stmt = NULL;
    char eqp[1200];
    size_t n = 0;
    size_t off = 0;

    captured_sql[0] = '\0';
    sqlite3_trace_v2(st->db, SQLITE_TRACE_STMT, trace_cb, NULL);
    run(f->s, q, &recs, &n);
    sqlite3_trace_v2(st->db, 0, NULL, NULL);
    bp_audit_recs_free(recs, n);
    assert_true(captured_sql[0] != '\0');
    snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", captured_sql);
    assert_int_equal(sqlite3_prepare_v2(st->db, eqp, -1, &stmt, NULL), SQLITE_OK);
    out[0] = '\0';
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        int w = snprintf(out + off, cap - off, "%s; ", (const char *)sqlite3_column_text(stmt, 3));
        off += (size_t)w < cap - off ? (size_t)w : 0;
    }
    sqlite3_finalize(stmt);
}

static void
expect_index(struct bp_testdb_store *f, const struct bp_audit_query *q, const char *index)
{
    char plan[1024];

    plan_of(f, q, plan, sizeof(plan));
    if (strstr(plan, index) == NULL || strstr(plan, "TEMP B-TREE") != NULL) {
        fail_msg("expected a walk of %s without a sort, got: %s", index, plan);
    }
}

static void
test_plans_use_indexes(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_query q;
    char plan[1024];

    fill(f->s);
    q = (struct bp_audit_query){.limit = 100};
    expect_index(f, &q, "audit_time");
    q = (struct bp_audit_query){.since_us = 1, .until_us = 2, .limit = 100};
    expect_index(f, &q, "audit_time");
    q = (struct bp_audit_query){.category = "ledgers", .since_us = 1, .limit = 100};
    expect_index(f, &q, "audit_category_time");
    q = (struct bp_audit_query){.instance_id = "i", .limit = 100};
    expect_index(f, &q, "audit_instance_time");
    q = (struct bp_audit_query){.credential = "k", .until_us = 5, .limit = 100};
    expect_index(f, &q, "audit_actor_time");
    q = (struct bp_audit_query){.action = "Ledger created", .limit = 100};
    expect_index(f, &q, "audit_action_time");
    /* No index holds status: the newest-first walk of audit_time filters it. */
    q = (struct bp_audit_query){.status = 4, .limit = 100};
    expect_index(f, &q, "audit_time");
    /* Follow: a rowid range. */
    q = (struct bp_audit_query){.after_seq = 5, .ascending = true};
    plan_of(f, &q, plan, sizeof(plan));
    if (strstr(plan, "rowid>?") == NULL || strstr(plan, "TEMP B-TREE") != NULL) {
        fail_msg("follow should be a rowid range: %s", plan);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_round_trip, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_ids_make_a_repeated_insert_harmless, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_follow_cursor, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_order_and_limit, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_after_seq, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge_chunks, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_insert_inside_caller_tx, setup, bp_testdb_store_teardown),
    };
    /* These reach into the SQLite connection (a trigger made through it, EXPLAIN QUERY PLAN):
     * SQLite only. test_store_pg.c has PostgreSQL's own failed-insert test. */
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_failure_is_atomic, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_plans_use_indexes, setup, bp_testdb_store_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    if (!bp_testdb_is_pg()) {
        failed += cmocka_run_group_tests(sqlite_tests, NULL, NULL);
    }
    return failed;
}
