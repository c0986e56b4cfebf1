#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/auth.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "serve/watch.h"
#include "store/store.h"
#include "testdb.h"

/* The change watcher (issue 8 item 5): a change committed on another connection is published
 * and reported by the watcher, and bp_watch_wait_applied (what the CLI calls after its commit)
 * returns once every running server has published it, and only waits for servers that run. */

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "watch");
}

static int
teardown(void **state)
{
    bp_tables_shutdown();
    return bp_testdb_store_teardown(state);
}

static struct bp_store *
open_second(struct bp_testdb_store *f)
{
    struct bp_store *other = NULL;
    char err[256];

    assert_int_equal(bp_store_open(f->db.path, 0, &other, err, sizeof(err)), BP_OK);
    return other;
}

static struct bp_key_rec
mk_key(const char *id, unsigned char fill)
{
    struct bp_key_rec k = {
        .id = (char *)id,
        .name = (char *)"ci",
        .prefix = (char *)"blnk_0123abcd",
        .scopes = (char *)"proxy:read",
        .created_at = 1000,
    };
    memset(k.digest, fill, sizeof(k.digest));
    return k;
}

static bool
published(const unsigned char digest[32])
{
    struct bp_tables *t = bp_tables_acquire();
    bool found = t != NULL && bp_tables_find_cred(t, digest) != NULL;

    bp_tables_release(t);
    return found;
}

static bool
revoked(const unsigned char digest[32])
{
    struct bp_tables *t = bp_tables_acquire();
    const struct bp_cred *c = t != NULL ? bp_tables_find_cred(t, digest) : NULL;
    bool r = c != NULL && c->revoked;

    bp_tables_release(t);
    return r;
}

static size_t
rows(struct bp_store *s)
{
    struct bp_watcher_rec *list = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_watcher_list(s, &list, &n), BP_OK);
    bp_watcher_recs_free(list, n);
    return n;
}

static int64_t
seq_of(struct bp_store *s)
{
    int64_t seq = -1;

    assert_int_equal(bp_store_change_seq(s, &seq), BP_OK);
    return seq;
}

/* A watcher on f's store (the fixture hands its store over), polling so rarely that only file
 * events and bp_watch_sync can explain a prompt reload. */
static struct bp_watch *
start_watcher(struct bp_testdb_store *f)
{
    struct bp_watch *w = NULL;
    struct bp_watch_opts opts = {.interval_ms = 10000, .loaded = true, .node = "test-node"};

    assert_int_equal(bp_watch_load_now(f->s, &opts.token), BP_OK);
    assert_int_equal(bp_watch_start(f->s, NULL, &opts, &w), BP_OK);
    f->s = NULL; /* the watcher owns and closes it */
    return w;
}

static void
test_cli_change_is_published_before_the_wait_returns(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_watch *w = start_watcher(f);
    struct bp_store *cli = open_second(f);
    size_t behind = 99;

    /* The server registered itself before bp_watch_start returned. */
    assert_int_equal(rows(cli), 1);
    for (unsigned char i = 1; i <= 5; i++) {
        char id[16];
        struct bp_key_rec k;

        snprintf(id, sizeof(id), "key_%u", i);
        k = mk_key(id, i);
        assert_int_equal(bp_store_key_insert(cli, &k), BP_OK);
        assert_int_equal(bp_watch_wait_applied(cli, seq_of(cli), 5000, &behind), BP_OK);
        assert_int_equal(behind, 0);
        /* Returned because the watcher reported it: the key must be in the tables now. */
        assert_true(published(k.digest));
    }
    bp_watch_stop(w);
    /* A stopped server is not waited for: its row is gone. */
    assert_int_equal(rows(cli), 0);
    bp_store_close(cli);
}

/* Changes are applied as deltas; when the log no longer holds every row after the watcher's
 * position (purged past it), the watcher reloads everything instead of guessing. */
static void
test_purged_log_makes_a_full_reload(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_watch *w = start_watcher(f);
    struct bp_store *cli = open_second(f);
    struct bp_key_rec a = mk_key("key_A", 0x41);
    struct bp_key_rec b = mk_key("key_B", 0x42);
    struct bp_key_rec c = mk_key("key_C", 0x43);
    size_t behind = 99;

    assert_int_equal(bp_store_key_insert(cli, &a), BP_OK);
    assert_int_equal(bp_watch_wait_applied(cli, seq_of(cli), 5000, &behind), BP_OK);
    assert_int_equal(behind, 0);
    assert_true(published(a.digest));
    assert_int_equal(bp_watch_full_reloads(w), 0); /* applied as a delta */
    assert_int_equal(bp_store_key_revoke(cli, "key_A", 5000), BP_OK);
    assert_int_equal(bp_watch_wait_applied(cli, seq_of(cli), 5000, &behind), BP_OK);
    assert_true(revoked(a.digest));
    assert_int_equal(bp_watch_full_reloads(w), 0);

    /* Two keys in one transaction with a purge that keeps only the newest row: the row of
     * key_B is gone before the watcher could read it. */
    assert_int_equal(bp_store_begin(cli), BP_OK);
    assert_int_equal(bp_store_key_insert(cli, &b), BP_OK);
    assert_int_equal(bp_store_key_insert(cli, &c), BP_OK);
    assert_int_equal(bp_store_change_purge(cli, bp_clock_wall_s() + 3600), BP_OK);
    assert_int_equal(bp_store_commit(cli), BP_OK);
    assert_int_equal(bp_watch_wait_applied(cli, seq_of(cli), 5000, &behind), BP_OK);
    assert_int_equal(behind, 0);
    assert_true(published(b.digest));
    assert_true(published(c.digest));
    assert_true(revoked(a.digest));
    assert_int_equal(bp_watch_full_reloads(w), 1);
    bp_watch_stop(w);
    bp_store_close(cli);
}

static void
test_sync_publishes_a_commit_made_just_before(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_watch *w = start_watcher(f);
    struct bp_store *oauth = open_second(f);
    struct bp_key_rec k = mk_key("key_sync", 0x55);

    assert_int_equal(bp_store_key_insert(oauth, &k), BP_OK);
    bp_watch_sync(w, 5000);
    assert_true(published(k.digest));
    bp_watch_stop(w);
    bp_store_close(oauth);
}

static void
test_waits_only_for_running_servers(void **state)
{
    struct bp_testdb_store *f = *state;
    char host[256] = "";
    struct bp_watcher_rec r = {.id = (char *)"watcher_X", .host = host, .seq = 1};
    size_t behind = 99;
    pid_t child;
    int status = 0;

    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    /* Nobody registered: nothing to wait for. */
    assert_int_equal(bp_watch_wait_applied(f->s, 5, 2000, &behind), BP_OK);
    assert_int_equal(behind, 0);

    /* A live server on this host (this very process) that has not reached seq 5: waited for,
     * and still behind when the timeout ends the wait. */
    r.pid = getpid();
    r.seen_at = bp_clock_wall_s();
    assert_int_equal(bp_store_watcher_put(f->s, &r), BP_OK);
    assert_int_equal(bp_watch_wait_applied(f->s, 5, 30, &behind), BP_OK);
    assert_int_equal(behind, 1);
    /* Already there: not behind. */
    assert_int_equal(bp_watch_wait_applied(f->s, 1, 2000, &behind), BP_OK);
    assert_int_equal(behind, 0);

    /* A server on this host whose process is gone (killed without removing its row). */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        _exit(0);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    r.pid = child;
    assert_int_equal(bp_store_watcher_put(f->s, &r), BP_OK);
    assert_int_equal(bp_watch_wait_applied(f->s, 5, 2000, &behind), BP_OK);
    assert_int_equal(behind, 0);

    /* A server on another host: live while it reports, presumed dead once its reports stop. */
    r.host = (char *)"another-host.invalid";
    r.pid = 1;
    assert_int_equal(bp_store_watcher_put(f->s, &r), BP_OK);
    assert_int_equal(bp_watch_wait_applied(f->s, 5, 30, &behind), BP_OK);
    assert_int_equal(behind, 1);
    r.seen_at = bp_clock_wall_s() - 3600;
    assert_int_equal(bp_store_watcher_put(f->s, &r), BP_OK);
    assert_int_equal(bp_watch_wait_applied(f->s, 5, 2000, &behind), BP_OK);
    assert_int_equal(behind, 0);
}

static void
test_start_forgets_servers_that_died(void **state)
{
    struct bp_testdb_store *f = *state;
    char host[256] = "";
    struct bp_watcher_rec dead = {.id = (char *)"watcher_dead", .host = host, .seq = 0};
    struct bp_watcher_rec other = {.id = (char *)"watcher_other",
                                   .host = (char *)"another-host.invalid",
                                   .pid = 1,
                                   .seq = 0,
                                   .seen_at = bp_clock_wall_s()};
    struct bp_store *cli = open_second(f);
    struct bp_watch *w;
    pid_t child;
    int status = 0;

    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        _exit(0);
    }
    assert_int_equal(waitpid(child, &status, 0), child);
    dead.pid = child;
    dead.seen_at = bp_clock_wall_s();
    assert_int_equal(bp_store_watcher_put(cli, &dead), BP_OK);
    assert_int_equal(bp_store_watcher_put(cli, &other), BP_OK);
    w = start_watcher(f);
    /* The dead local row is gone; the other host's live row and the new server's stay. */
    assert_int_equal(rows(cli), 2);
    bp_watch_stop(w);
    assert_int_equal(rows(cli), 1);
    bp_store_close(cli);
}

/* What a request does when it authenticates with the key: stamp the row of the current tables. */
static void
use_key(const unsigned char digest[32], int64_t now_s)
{
    struct bp_tables *t = bp_tables_acquire();
    const struct bp_cred *c = bp_tables_find_cred(t, digest);

    assert_non_null(c);
    bp_auth_note_use(c, now_s);
    bp_tables_release(t);
}

static int64_t
stored_last_used(struct bp_store *s, const char *id)
{
    struct bp_key_rec k;
    int64_t at;

    assert_int_equal(bp_store_key_get(s, id, &k), BP_OK);
    at = k.last_used_at;
    bp_key_rec_cleanup(&k);
    return at;
}

/* Stamps the key in a new wall second and returns it. */
static int64_t
use_key_in_a_new_second(const unsigned char digest[32], int64_t after)
{
    int64_t now;

    while ((now = bp_clock_wall_s()) <= after) {
        usleep(20 * 1000);
    }
    use_key(digest, now);
    return now;
}

static void
wait_stored_last_used(struct bp_watch *w, struct bp_store *s, const char *id, int64_t want)
{
    int64_t deadline = bp_clock_mono_ms() + 5000;

    while (stored_last_used(s, id) != want && bp_clock_mono_ms() < deadline) {
        bp_watch_sync(w, 1000); /* a check, then the housekeeping that flushes once a second */
        usleep(50 * 1000);
    }
    assert_int_equal(stored_last_used(s, id), want);
}

/* Last-used stamps reach the store: each periodic flush sends the uses since the one before; a
 * use just before a change that replaces the key's row is not lost with the old row; a use of
 * the new row is sent by a later flush. */
static void
test_last_used_reaches_the_store(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec k = mk_key("key_used", 0x66);
    struct bp_store *cli;
    struct bp_watch *w;
    size_t behind = 99;
    int64_t at;

    assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    w = start_watcher(f);
    cli = open_second(f);
    at = use_key_in_a_new_second(k.digest, 0);
    wait_stored_last_used(w, cli, "key_used", at);

    at = use_key_in_a_new_second(k.digest, at);
    assert_int_equal(bp_store_key_set_expiry(cli, "key_used", at + 3600), BP_OK);
    assert_int_equal(bp_watch_wait_applied(cli, seq_of(cli), 5000, &behind), BP_OK);
    assert_int_equal(behind, 0);
    wait_stored_last_used(w, cli, "key_used", at);

    at = use_key_in_a_new_second(k.digest, at); /* the new row's */
    wait_stored_last_used(w, cli, "key_used", at);
    bp_watch_stop(w);
    bp_store_close(cli);
}

/* More uses in a second than the log holds (auth.h): the flush finds the rest by walking the
 * tables' stamps, and every use reaches the store. */
static void
test_overflowed_log_is_covered_by_the_tables(void **state)
{
    enum { N = 12000, ID_LEN = 1000 }; /* 12 MB of notes, over the log's 8 MiB */
    struct bp_testdb_store *f = *state;
    static char ids[N][ID_LEN + 1];
    struct bp_store *cli;
    struct bp_watch *w;
    struct bp_tables *t;
    int64_t at;
    int64_t deadline;
    size_t stamped = 0;

    assert_int_equal(bp_store_begin(f->s), BP_OK);
    for (size_t i = 0; i < N; i++) {
        struct bp_key_rec k = mk_key(ids[i], 0);
        int n = snprintf(ids[i], sizeof(ids[i]), "key_%zu_", i);
        memset(ids[i] + n, 'x', ID_LEN - (size_t)n);
        ids[i][ID_LEN] = '\0';
        bp_digest(ids[i], ID_LEN, k.digest);
        assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    }
    assert_int_equal(bp_store_commit(f->s), BP_OK);
    w = start_watcher(f);
    cli = open_second(f);
    at = bp_clock_wall_s();
    t = bp_tables_acquire();
    for (size_t i = 0; i < N; i++) {
        unsigned char d[32];
        bp_digest(ids[i], ID_LEN, d);
        bp_auth_note_use(bp_tables_find_cred(t, d), at);
    }
    bp_tables_release(t);
    deadline = bp_clock_mono_ms() + 10000;
    while (bp_clock_mono_ms() < deadline) {
        struct bp_key_rec *keys = NULL;
        size_t n = 0;
        bp_watch_sync(w, 1000);
        assert_int_equal(bp_store_key_list(cli, &keys, &n), BP_OK);
        stamped = 0;
        for (size_t i = 0; i < n; i++) {
            stamped += keys[i].last_used_at == at;
        }
        bp_key_recs_free(keys, n);
        if (stamped == N) {
            break;
        }
        usleep(100 * 1000);
    }
    assert_int_equal(stamped, N);
    bp_watch_stop(w);
    bp_store_close(cli);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli_change_is_published_before_the_wait_returns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_publishes_a_commit_made_just_before, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purged_log_makes_a_full_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_only_for_running_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_forgets_servers_that_died, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_used_reaches_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflowed_log_is_covered_by_the_tables, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
