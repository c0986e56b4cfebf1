#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit-int.h"
#include "audit/audit.h"
#include "config/config.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/sqlite-int.h"
#include "store/store.h"
#include "testdb.h"

/* The audit queue and writer against a real SQLite file: done after commit and exactly once,
 * group commit, the queue limit, drain on stop, the spool while the store fails (a trigger that
 * aborts every insert stands in for a broken store) and its import, and retention. A second
 * connection (chk) checks the table and plays the failures. */

struct fixture {
    struct bp_testdb db;
    char spool[300];
    struct bp_config cfg;
    struct bp_store *chk;
};

static int
setup(void **state)
{
    struct fixture *f = bp_calloc(1, sizeof(*f));

    bp_testdb_init(&f->db, "audit_test");
    /* The writer's default spool: cfg.audit_spool stays NULL. */
    snprintf(f->spool, sizeof(f->spool), "%s.audit-spool", f->db.path);
    f->chk = bp_testdb_open(&f->db);
    f->cfg.db = f->db.path;
    f->cfg.audit_queue_size = 65536;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    bp_store_close(f->chk);
    (void)bp_testdb_cleanup(&f->db);
    bp_free(f);
    return 0;
}

static struct bp_audit_rec *
mk(int i)
{
    struct bp_audit_rec *r = bp_calloc(1, sizeof(*r));
    char id[32];

    snprintf(id, sizeof(id), "req-%d", i);
    r->time_us = bp_clock_wall_us();
    r->request_id = bp_strdup(id);
    r->actor_type = bp_strdup("api_key");
    r->actor_id = bp_strdup("key_1");
    r->method = bp_strdup("POST");
    r->path = bp_strdup("/ledgers");
    r->action = bp_strdup("Ledger created");
    r->category = bp_strdup("ledgers");
    r->status = 201;
    r->latency_us = i;
    return r;
}

static size_t
rows(struct bp_store *s)
{
    struct bp_audit_query q = {0};
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_audit_query(s, &q, &recs, &n), BP_OK);
    bp_audit_recs_free(recs, n);
    return n;
}

static void
sleep_ms(int ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* Polls cond(arg) every 10 ms for up to timeout_ms. */
static bool
wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (cond(arg)) {
            return true;
        }
        sleep_ms(10);
    }
    return cond(arg);
}

static bool
queue_empty(void *a)
{
    return bp_audit__waiting(a) == 0;
}

static size_t
spool_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    int c;

    if (fp == NULL) {
        return 0;
    }
    while ((c = fgetc(fp)) != EOF) {
        n += c == '\n' ? 1 : 0;
    }
    fclose(fp);
    return n;
}

/* ---- done ---- */

struct done_ctx {
    struct bp_store *chk;
    _Atomic int calls[200];
    _Atomic int total;
    size_t rows_seen[200];
};

struct done_arg {
    struct done_ctx *ctx;
    int i;
};

static struct done_arg done_args[200];

static void
on_done(void *arg)
{
    struct done_arg *d = arg;

    /* The writer calls done only after the commit: the record must already be visible to
     * another connection. chk is used only here while the test thread waits. */
    if (d->ctx->chk != NULL) {
        d->ctx->rows_seen[d->i] = rows(d->ctx->chk);
    }
    atomic_fetch_add(&d->ctx->calls[d->i], 1);
    atomic_fetch_add(&d->ctx->total, 1);
}

static bool
all_done(void *arg)
{
    struct done_ctx *c = arg;
    return atomic_load(&c->total) >= 100;
}

static void
test_done_once_after_commit(void **state)
{
    struct fixture *f = *state;
    static struct done_ctx ctx;
    struct bp_audit *a = NULL;

    memset(&ctx, 0, sizeof(ctx));
    ctx.chk = f->chk;
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    for (int i = 0; i < 100; i++) {
        done_args[i] = (struct done_arg){.ctx = &ctx, .i = i};
        assert_int_equal(bp_audit_submit(a, mk(i), on_done, &done_args[i]), BP_OK);
    }
    assert_true(wait_until(all_done, &ctx, 10000));
    bp_audit_stop(a);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(atomic_load(&ctx.calls[i]), 1);
        /* FIFO: record i is in a batch with, or after, records 0..i-1. */
        assert_true(ctx.rows_seen[i] >= (size_t)i + 1);
    }
    assert_int_equal(rows(f->chk), 100);
}

struct stats_wait {
    struct bp_audit *a;
    uint64_t committed;
    uint64_t spooled;
};

static bool
stats_reached(void *arg)
{
    struct stats_wait *w = arg;
    uint64_t b;
    uint64_t c;
    uint64_t s;

    bp_audit__stats(w->a, &b, &c, &s);
    return c >= w->committed && s >= w->spooled;
}

/* While the store's write lock is held elsewhere, records pile up; they commit in one batch. */
static void
test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    struct stats_wait w;
    uint64_t batches;
    uint64_t committed;
    uint64_t spooled;

    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    assert_int_equal(bp_store_begin(f->chk), BP_OK);
    assert_int_equal(bp_audit_submit(a, mk(0), NULL, NULL), BP_OK);
    assert_true(wait_until(queue_empty, a, 2000)); /* the writer holds it, waiting for the lock */
    for (int i = 1; i < 1000; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), NULL, NULL), BP_OK);
    }
    /* depth counts the record the writer holds too */
    assert_int_equal(bp_audit_depth(a), 1000);
    assert_int_equal(bp_audit__waiting(a), 999);
    sleep_ms(100);
    bp_store_rollback(f->chk);
    w = (struct stats_wait){.a = a, .committed = 1000};
    assert_true(wait_until(stats_reached, &w, 10000));
    bp_audit__stats(a, &batches, &committed, &spooled);
    assert_int_equal(committed, 1000);
    assert_int_equal(batches, 2);
    assert_int_equal(spooled, 0);
    bp_audit_stop(a);
    assert_int_equal(rows(f->chk), 1000);
}

static void
count_done(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

/* At the limit, submit refuses with BP_ERR_LIMIT and never calls done; nothing else is lost. */
static void
test_queue_limit(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    static _Atomic int dones;

    atomic_store(&dones, 0);
    f->cfg.audit_queue_size = 4;
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    assert_int_equal(bp_store_begin(f->chk), BP_OK);
    assert_int_equal(bp_audit_submit(a, mk(0), count_done, &dones), BP_OK);
    assert_true(wait_until(queue_empty, a, 2000));
    /* The record the writer holds (not yet durable) counts against the limit. */
    for (int i = 1; i <= 3; i++) {
        assert_false(bp_audit_full(a));
        assert_int_equal(bp_audit_submit(a, mk(i), count_done, &dones), BP_OK);
    }
    assert_true(bp_audit_full(a));
    assert_int_equal(bp_audit_depth(a), 4);
    assert_int_equal(bp_audit_submit(a, mk(4), count_done, &dones), BP_ERR_LIMIT);
    assert_int_equal(bp_audit_submit(a, mk(5), NULL, NULL), BP_ERR_LIMIT);
    assert_int_equal(bp_audit_depth(a), 4);
    bp_store_rollback(f->chk);
    bp_audit_stop(a);
    assert_int_equal(atomic_load(&dones), 4);
    assert_int_equal(rows(f->chk), 4);
}

/* Stop commits everything still queued and calls every pending done. */
static void
test_stop_drains(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    static _Atomic int dones;

    atomic_store(&dones, 0);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), i % 50 == 0 ? count_done : NULL, &dones), BP_OK);
    }
    bp_audit_stop(a);
    assert_int_equal(atomic_load(&dones), 100);
    assert_int_equal(rows(f->chk), 5000);
}

/* Runs SQL on the checking connection: how the tests break and mend the store. */
static int
exec_sql(struct fixture *f, const char *sql)
{
    return bp_sq__exec(bp_sq__of(f->chk), sql) == BP_OK ? 0 : 1;
}

static bool
all_ints_10(void *arg)
{
    return atomic_load((_Atomic int *)arg) >= 10;
}

static bool
spool_empty(void *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_size == 0;
}

static bool
rows_at_least_10(void *arg)
{
    return rows(arg) >= 10;
}

/* The store fails: records are spooled (fsynced) and reported done; when it answers again the
 * spool is imported in order and emptied, and new records go to the store again. */
static void
test_spool_and_replay(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    struct bp_audit_query q = {.ascending = true};
    struct bp_audit_rec *recs = NULL;
    struct stats_wait w;
    struct stat sb;
    static _Atomic int dones;
    size_t n = 0;

    atomic_store(&dones, 0);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    assert_int_equal(exec_sql(f, "CREATE TRIGGER t_fail BEFORE INSERT ON audit_log BEGIN SELECT "
                                       "RAISE(ABORT, 'disk on fire'); END"),
                     0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), count_done, &dones), BP_OK);
    }
    w = (struct stats_wait){.a = a, .spooled = 10};
    assert_true(wait_until(stats_reached, &w, 5000));
    /* Spooled is durable: every done was called, and the lines are in the file. */
    assert_true(wait_until(all_ints_10, &dones, 2000));
    assert_int_equal(spool_lines(f->spool), 10);
    assert_int_equal(rows(f->chk), 0);

    assert_int_equal(exec_sql(f, "DROP TRIGGER t_fail"), 0);
    assert_true(wait_until(rows_at_least_10, f->chk, 5000));
    /* The writer empties the spool after the import's commit, so the rows may be visible a
     * moment before the file is truncated. */
    assert_true(wait_until(spool_empty, f->spool, 5000));
    assert_int_equal(stat(f->spool, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    for (int i = 10; i < 15; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), count_done, &dones), BP_OK);
    }
    bp_audit_stop(a);
    assert_int_equal(atomic_load(&dones), 15);
    assert_int_equal(bp_store_audit_query(f->chk, &q, &recs, &n), BP_OK);
    assert_int_equal(n, 15);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "req-%zu", i);
        assert_string_equal(recs[i].request_id, id);
        assert_string_equal(recs[i].action, "Ledger created");
        assert_int_equal(recs[i].status, 201);
        assert_int_equal(recs[i].latency_us, (int64_t)i);
    }
    bp_audit_recs_free(recs, n);
}

/* A record that goes straight to the spool (the store failed an earlier batch) carries an id
 * too: without one, each import of the spool gave it a new id, and a spool imported twice stored
 * it twice. */
static void
test_records_spooled_directly_have_ids(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    struct bp_audit_rec *recs = NULL;
    struct stats_wait w;
    static _Atomic int dones;
    size_t n = 0;
    size_t skipped = 0;

    atomic_store(&dones, 0);
    assert_int_equal(exec_sql(f, "CREATE TRIGGER t_fail BEFORE INSERT ON audit_log BEGIN SELECT "
                                       "RAISE(ABORT, 'down'); END"),
                     0);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    assert_int_equal(bp_audit_submit(a, mk(0), count_done, &dones), BP_OK);
    w = (struct stats_wait){.a = a, .spooled = 1};
    assert_true(wait_until(stats_reached, &w, 5000));
    /* The store failed: these go to the spool without an insert. */
    for (int i = 1; i < 4; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), count_done, &dones), BP_OK);
    }
    w = (struct stats_wait){.a = a, .spooled = 4};
    assert_true(wait_until(stats_reached, &w, 5000));
    assert_int_equal(bp_audit__spool_read(f->spool, &recs, &n, &skipped), BP_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(recs[i].id);
    }
    bp_audit_recs_free(recs, n);
    assert_int_equal(exec_sql(f, "DROP TRIGGER t_fail"), 0);
    bp_audit_stop(a);
    assert_int_equal(atomic_load(&dones), 4);
}

/* A spool left by an earlier run (including a torn last line) is imported by start itself. */
static void
test_spool_imported_at_start(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    static _Atomic int dones;
    FILE *fp;

    atomic_store(&dones, 0);
    assert_int_equal(exec_sql(f, "CREATE TRIGGER t_fail BEFORE INSERT ON audit_log BEGIN SELECT "
                                       "RAISE(ABORT, 'down'); END"),
                     0);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), count_done, &dones), BP_OK);
    }
    bp_audit_stop(a); /* the store still fails: the records stay in the spool */
    assert_int_equal(atomic_load(&dones), 7);
    assert_int_equal(spool_lines(f->spool), 7);
    fp = fopen(f->spool, "a");
    assert_non_null(fp);
    fputs("{\"time_us\":17000000000", fp); /* a crash in the middle of a line */
    fclose(fp);
    assert_int_equal(exec_sql(f, "DROP TRIGGER t_fail"), 0);

    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    assert_int_equal(rows(f->chk), 7); /* before the first submit */
    assert_int_equal(spool_lines(f->spool), 0);
    bp_audit_stop(a);
}

static char *
slurp(const char *path, size_t *out_len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = bp_malloc(1 << 20);

    assert_non_null(fp);
    *out_len = fread(buf, 1, 1 << 20, fp);
    fclose(fp);
    return buf;
}

/* Issue 9: a spool imported a second time (the process died between the import's commit and the
 * truncation) stores each record once: the records keep the ids given when they were spooled,
 * and the store skips ids it holds. They also keep the node that wrote them. */
static void
test_spool_imported_twice_stores_each_record_once(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    struct bp_audit_query q = {.ascending = true};
    struct bp_audit_rec *recs = NULL;
    static _Atomic int dones;
    size_t len = 0;
    size_t n = 0;
    char *copy;
    FILE *fp;

    atomic_store(&dones, 0);
    assert_int_equal(exec_sql(f, "CREATE TRIGGER t_fail BEFORE INSERT ON audit_log BEGIN SELECT "
                                       "RAISE(ABORT, 'down'); END"),
                     0);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    bp_audit_set_node(a, "node-a:8080");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), count_done, &dones), BP_OK);
    }
    bp_audit_stop(a);
    assert_int_equal(atomic_load(&dones), 5);
    assert_int_equal(spool_lines(f->spool), 5);
    copy = slurp(f->spool, &len);
    assert_int_equal(exec_sql(f, "DROP TRIGGER t_fail"), 0);

    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    bp_audit_stop(a);
    assert_int_equal(rows(f->chk), 5);
    assert_int_equal(spool_lines(f->spool), 0);
    /* As if the truncation had not happened. */
    fp = fopen(f->spool, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(copy, 1, len, fp), len);
    fclose(fp);
    bp_free(copy);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    bp_audit_stop(a);
    assert_int_equal(spool_lines(f->spool), 0);

    assert_int_equal(bp_store_audit_query(f->chk, &q, &recs, &n), BP_OK);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(recs[i].id);
        assert_string_equal(recs[i].node, "node-a:8080");
        assert_int_equal(recs[i].latency_us, (int64_t)i);
    }
    bp_audit_recs_free(recs, n);
}

/* A long outage leaves a large spool: it is imported a batch per transaction. An import that
 * fails part way (here: the store refuses rows past 1024) keeps the spool, stored batches
 * included; the writer's next attempt stores the rest, the batch stored before is not stored
 * twice, and each record is counted as committed once. A later start re-importing the same
 * spool (a crash before its truncation) stores nothing twice either. */
static void
test_large_spool_imported_in_batches_once(void **state)
{
    struct fixture *f = *state;
    struct bp_audit_rec *recs = bp_calloc(2500, sizeof(*recs));
    struct bp_audit *a = NULL;
    struct bp_audit_query q = {0};
    struct bp_audit_rec *out = NULL;
    uint64_t batches;
    uint64_t committed;
    uint64_t spooled;
    size_t len = 0;
    size_t n = 0;
    char *copy;
    FILE *fp;

    for (int i = 0; i < 2500; i++) {
        struct bp_audit_rec *r = mk(i);
        char id[40];
        recs[i] = *r;
        bp_free(r);
        snprintf(id, sizeof(id), "audit_SPOOL%021d", i);
        recs[i].id = bp_strdup(id);
    }
    assert_int_equal(bp_audit__spool_append(f->spool, recs, 2500), BP_OK);
    bp_audit_recs_free(recs, 2500);
    copy = slurp(f->spool, &len);
    assert_int_equal(exec_sql(f, "CREATE TRIGGER t_full BEFORE INSERT ON audit_log"
                                 " WHEN (SELECT count(*) FROM audit_log) >= 1024 BEGIN SELECT RAISE(ABORT, 'full'); END"),
                     0);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    assert_int_equal(rows(f->chk), 1024); /* the first batch */
    assert_int_equal(spool_lines(f->spool), 2500);
    bp_audit__stats(a, &batches, &committed, &spooled);
    assert_int_equal(committed, 1024);

    assert_int_equal(exec_sql(f, "DROP TRIGGER t_full"), 0);
    assert_true(wait_until(spool_empty, f->spool, 10000));
    /* Counted before the spool is emptied. */
    bp_audit__stats(a, &batches, &committed, &spooled);
    assert_int_equal(committed, 2500);
    assert_int_equal(spooled, 0);
    bp_audit_stop(a);
    assert_int_equal(rows(f->chk), 2500);

    /* As if the truncation had not happened. */
    fp = fopen(f->spool, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(copy, 1, len, fp), len);
    fclose(fp);
    bp_free(copy);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    bp_audit_stop(a);
    assert_int_equal(spool_lines(f->spool), 0);
    q.limit = 0;
    assert_int_equal(bp_store_audit_query(f->chk, &q, &out, &n), BP_OK);
    assert_int_equal(n, 2500);
    bp_audit_recs_free(out, n);
}

/* Until serve names the node (its default name holds the port it listens on), the writer holds
 * its records: none is committed without the node. */
static void
test_records_wait_for_the_node_name(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    struct bp_audit_query q = {0};
    struct bp_audit_rec *recs = NULL;
    static _Atomic int dones;
    size_t n = 0;

    atomic_store(&dones, 0);
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    bp_audit_await_node(a);
    assert_int_equal(bp_audit_submit(a, mk(1), count_done, &dones), BP_OK);
    sleep_ms(100);
    assert_int_equal(atomic_load(&dones), 0);
    assert_int_equal(rows(f->chk), 0);
    bp_audit_set_node(a, "host-b:9090");
    bp_audit_stop(a);
    assert_int_equal(atomic_load(&dones), 1);
    assert_int_equal(bp_store_audit_query(f->chk, &q, &recs, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_string_equal(recs[0].node, "host-b:9090");
    bp_audit_recs_free(recs, n);
}

static bool
rows_exactly_3(void *arg)
{
    return rows(arg) == 3;
}

/* audit.retention_days: records older than the limit go at start; newer ones stay. */
static void
test_retention_at_start(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    struct bp_audit_rec recs[8];
    int64_t now = bp_clock_wall_us();

    for (int i = 0; i < 8; i++) {
        struct bp_audit_rec *r = mk(i);
        recs[i] = *r;
        bp_free(r);
        /* 5 records 3..7 days old, 3 from the last day. */
        recs[i].time_us = i < 5 ? now - (int64_t)(i + 3) * 86400 * 1000000 : now - (int64_t)i * 1000000;
    }
    assert_int_equal(bp_store_audit_insert(f->chk, recs, 8), BP_OK);
    for (int i = 0; i < 8; i++) {
        bp_audit_rec_cleanup(&recs[i]);
    }
    f->cfg.audit_retention_days = 2;
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    assert_true(wait_until(rows_exactly_3, f->chk, 5000));
    bp_audit_stop(a);
    assert_int_equal(rows(f->chk), 3);
}

static size_t
periodic_checkpoints(struct bp_store *s)
{
    struct bp_audit_checkpoint *c = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_audit_checkpoint_list(s, 0, "periodic", 0, &c, &n), BP_OK);
    bp_audit_checkpoints_free(c, n);
    return n;
}

struct checkpoints_ctx {
    struct bp_store *chk;
    size_t want;
};

static bool
checkpoints_reach(void *arg)
{
    struct checkpoints_ctx *c = arg;

    return periodic_checkpoints(c->chk) >= c->want;
}

/* audit.checkpoint_interval: the keeper checkpoints the heads again on each period in which they
 * moved (it puts its task back on its queue after each run), and stop cancels the one waiting. */
static void
test_checkpoints_on_their_period(void **state)
{
    struct fixture *f = *state;
    struct bp_audit *a = NULL;
    _Atomic int dones = 0;
    struct checkpoints_ctx c = {.chk = f->chk};

    f->cfg.audit_checkpoint_interval_ms = 50;
    assert_int_equal(bp_audit_start(&f->cfg, &a), BP_OK);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(bp_audit_submit(a, mk(i), count_done, &dones), BP_OK);
        c.want = (size_t)i;
        assert_true(wait_until(checkpoints_reach, &c, 5000));
    }
    bp_audit_stop(a);
    assert_int_equal(atomic_load(&dones), 3);
    /* Nothing moved after the third: no fourth, before or at stop. */
    assert_int_equal(periodic_checkpoints(f->chk), 3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_done_once_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_imported_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_imported_twice_stores_each_record_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_spooled_directly_have_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_wait_for_the_node_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_spool_imported_in_batches_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_on_their_period, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
