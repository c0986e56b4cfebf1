/* clang-format off: cmocka needs these four headers first, in this order */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "store/pg-int.h"
#include "store/store.h"
#include "testdb.h"

/* The audit log on PostgreSQL, where several nodes write at once (issue 9 item 5): `audit list`
 * and its filters are answered through indexes (as test_plans_use_indexes shows for SQLite);
 * --follow misses no record when two writers commit out of seq order; the retention purge runs
 * on one connection at a time. PostgreSQL only (unit_store_test_store_audit_cluster_pg, fixture "pg"). */

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "audit_cluster");
}

static struct bp_store *
open_second(struct bp_testdb_store *f)
{
    struct bp_store *s = NULL;
    char err[512];

    if (bp_store_open(f->db.path, 0, &s, err, sizeof(err)) != BP_OK) {
        fail_msg("open: %s", err);
    }
    return s;
}

static const char *const CATEGORIES[] = {"ledgers", "balances", "transactions", "identities", "admin"};

static struct bp_audit_rec
mk(int64_t i)
{
    char buf[32];
    struct bp_audit_rec r = {
        .time_us = 1700000000000000LL + i * 1000,
        .actor_type = bp_strdup("api_key"),
        .category = bp_strdup(CATEGORIES[i % 5]),
        .action = bp_strdup(i % 2 ? "Ledger created" : "Balance created"),
        .status = i % 7 == 0 ? 404 : 201,
    };

    snprintf(buf, sizeof(buf), "key_%lld", (long long)(i % 97));
    r.actor_id = bp_strdup(buf);
    snprintf(buf, sizeof(buf), "instance_%lld", (long long)(i % 101));
    r.instance_id = bp_strdup(buf);
    return r;
}

static void
insert_many(struct bp_store *s, int64_t from, int64_t n)
{
    struct bp_audit_rec *recs = bp_calloc((size_t)n, sizeof(*recs));

    for (int64_t i = 0; i < n; i++) {
        recs[i] = mk(from + i);
    }
    assert_int_equal(bp_store_audit_insert(s, recs, (size_t)n), BP_OK);
    bp_audit_recs_free(recs, (size_t)n);
}

static void
expect_plan(struct bp_store *s, const struct bp_audit_query *q, int64_t follow_xmin, const char *index,
            bool sorted_ok)
{
    char plan[4096];

    assert_int_equal(bp_pg__audit_explain(s, q, follow_xmin, plan, sizeof(plan)), BP_OK);
    if (strstr(plan, index) == NULL || strstr(plan, "Seq Scan") != NULL ||
        (!sorted_ok && strstr(plan, "Sort") != NULL)) {
        fail_msg("expected %s%s, got:\n%s", index, sorted_ok ? "" : " without a sort", plan);
    }
}

/* 20,000 records, analysed: each filter of `audit list` newest first walks its index backwards
 * and stops after the limit, and a --follow page finds the recent transactions' rows through
 * audit_xid. */
static void
test_plans_use_indexes(void **state)
{
    struct bp_testdb_store *f = *state;
    PGconn *admin = bp_testdb_pg_connect(f->db.path);
    struct bp_audit_query q;

    for (int64_t i = 0; i < 20; i++) {
        insert_many(f->s, i * 1000, 1000);
    }
    bp_testdb_pg_exec(admin, "ANALYZE audit_log");
    /* Newest first over many matching rows: walk an index backwards, stop after the limit, no
     * sort. */
    q = (struct bp_audit_query){.limit = 100};
    expect_plan(f->s, &q, -1, "Index Scan Backward using audit_time", false);
    q = (struct bp_audit_query){.since_us = 1700000001000000LL, .until_us = 1700000002000000LL, .limit = 100};
    expect_plan(f->s, &q, -1, "Index Scan Backward using audit_time", false);
    /* A category holds a fifth of the rows here: walking audit_time and filtering is as good. */
    q = (struct bp_audit_query){.category = "ledgers", .since_us = 1, .limit = 100};
    expect_plan(f->s, &q, -1, "Index Scan Backward using audit_", false);
    q = (struct bp_audit_query){.action = "Ledger created", .limit = 100};
    expect_plan(f->s, &q, -1, "Index Scan Backward using audit_", false);
    /* No index holds status: the newest-first walk of audit_time filters it. */
    q = (struct bp_audit_query){.status = 4, .limit = 100};
    expect_plan(f->s, &q, -1, "Index Scan Backward using audit_time", false);
    /* A rare value: its own index finds its few rows (then PostgreSQL may sort those few). */
    q = (struct bp_audit_query){.instance_id = "instance_3", .limit = 100};
    expect_plan(f->s, &q, -1, "audit_instance_time", true);
    q = (struct bp_audit_query){.credential = "key_5", .until_us = 1700000005000000LL, .limit = 100};
    expect_plan(f->s, &q, -1, "audit_actor_time", true);
    q = (struct bp_audit_query){.category = "admin", .since_us = 1700000019000000LL, .limit = 100};
    expect_plan(f->s, &q, -1, "using audit_", true);
    /* A follow page: the rows of transactions at or above the mark. The few it finds are then
     * put in seq order. */
    q = (struct bp_audit_query){.category = "ledgers"};
    expect_plan(f->s, &q, bp_testdb_pg_int(admin, "SELECT max(xid) FROM audit_log"), "audit_xid", true);
    PQfinish(admin);
}

/* Two writers, as two nodes: A inserts first (smaller seq) but commits last. A follower that
 * paged by seq would skip A's record; the cursor hands out both, each once. */
static void
test_follow_misses_nothing_when_commits_are_out_of_seq_order(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *a = open_second(f);
    struct bp_store *b = open_second(f);
    struct bp_audit_query q = {.limit = 10};
    struct bp_audit_cursor *c = NULL;
    struct bp_audit_rec *out = NULL;
    struct bp_audit_rec ra = mk(1);
    struct bp_audit_rec rb = mk(2);
    struct bp_audit_rec rc = mk(3);
    size_t n = 0;
    bool more = false;

    /* Two nodes append to two chains (store_chain.c): neither waits for the other's head. */
    ra.node = bp_strdup("node-a");
    rb.node = bp_strdup("node-b");
    rc.node = bp_strdup("node-b");
    insert_many(f->s, 100, 3);
    assert_int_equal(bp_store_audit_follow(f->s, &q, &out, &n, &c), BP_OK);
    assert_int_equal(n, 3);
    bp_audit_recs_free(out, n);

    assert_int_equal(bp_store_begin(a), BP_OK);
    assert_int_equal(bp_store_audit_insert(a, &ra, 1), BP_OK);
    assert_int_equal(bp_store_audit_insert(b, &rb, 1), BP_OK);
    assert_true(rb.seq > ra.seq);
    assert_int_equal(bp_store_audit_follow_next(f->s, c, 100, &out, &n, &more), BP_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].id, rb.id);
    bp_audit_recs_free(out, n);

    assert_int_equal(bp_store_commit(a), BP_OK);
    assert_int_equal(bp_store_audit_insert(b, &rc, 1), BP_OK);
    assert_int_equal(bp_store_audit_follow_next(f->s, c, 100, &out, &n, &more), BP_OK);
    assert_int_equal(n, 2);
    /* Within one call in seq order: A's (the smaller seq) first. */
    assert_string_equal(out[0].id, ra.id);
    assert_string_equal(out[1].id, rc.id);
    bp_audit_recs_free(out, n);
    /* And nothing twice. */
    assert_int_equal(bp_store_audit_follow_next(f->s, c, 100, &out, &n, &more), BP_OK);
    assert_int_equal(n, 0);
    bp_audit_recs_free(out, n);

    bp_audit_cursor_free(c);
    bp_audit_rec_cleanup(&ra);
    bp_audit_rec_cleanup(&rb);
    bp_audit_rec_cleanup(&rc);
    bp_store_close(a);
    bp_store_close(b);
}

/* The listing's snapshot decides: a record committed by another writer while the follow started
 * is either in the listing's range and counted as seen, or handed out later; never both, never
 * neither. Here: many small commits interleaved with follow calls, then every record once. */
static void
test_follow_interleaved_with_commits(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *w = open_second(f);
    struct bp_audit_query q = {.limit = 5};
    struct bp_audit_cursor *c = NULL;
    struct bp_audit_rec *out = NULL;
    int64_t *got = bp_calloc(400, sizeof(*got));
    size_t n_got = 0;
    size_t n = 0;
    bool more = false;

    insert_many(w, 0, 5);
    assert_int_equal(bp_store_audit_follow(f->s, &q, &out, &n, &c), BP_OK);
    assert_int_equal(n, 5);
    bp_audit_recs_free(out, n);
    for (int round = 0; round < 40; round++) {
        insert_many(w, 1000 + round * 5, 5);
        do {
            assert_int_equal(bp_store_audit_follow_next(f->s, c, 3, &out, &n, &more), BP_OK);
            for (size_t i = 0; i < n; i++) {
                got[n_got++] = out[i].seq;
            }
            bp_audit_recs_free(out, n);
        } while (more);
    }
    assert_int_equal(n_got, 200);
    for (size_t i = 0; i < n_got; i++) {
        for (size_t k = i + 1; k < n_got; k++) {
            assert_true(got[i] != got[k]);
        }
    }
    bp_free(got);
    bp_audit_cursor_free(c);
    bp_store_close(w);
}

/* Retention on several nodes: while one connection purges (holds the PURGE lock), another's
 * purge does nothing and says so by deleting nothing; then it purges. */
static void
test_purge_runs_on_one_node_at_a_time(void **state)
{
    struct bp_testdb_store *f = *state;
    PGconn *other = bp_testdb_pg_connect(f->db.path);
    int64_t deleted = -1;
    char sql[128];

    insert_many(f->s, 0, 50);
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%d, %d)", BP_PG_LOCK_CLASS, BP_PG_LOCK_PURGE);
    bp_testdb_pg_exec(other, sql);
    assert_int_equal(bp_store_audit_purge(f->s, 1800000000000000LL, bp_testdb_cut, NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 0);
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%d, %d)", BP_PG_LOCK_CLASS, BP_PG_LOCK_PURGE);
    bp_testdb_pg_exec(other, sql);
    assert_int_equal(bp_store_audit_purge(f->s, 1800000000000000LL, bp_testdb_cut, NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 50);
    /* The purge gave the lock back. */
    snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%d, %d)", BP_PG_LOCK_CLASS, BP_PG_LOCK_PURGE);
    bp_testdb_pg_exec(other, sql);
    PQfinish(other);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plans_use_indexes, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_follow_misses_nothing_when_commits_are_out_of_seq_order, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_follow_interleaved_with_commits, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge_runs_on_one_node_at_a_time, setup, bp_testdb_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
