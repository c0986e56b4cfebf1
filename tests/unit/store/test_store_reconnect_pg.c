/* clang-format off: cmocka needs these four headers first, in this order */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "store/store.h"
#include "testdb.h"

/* A PostgreSQL store that loses its connection (issue 9 item 6): the server closes it (a restart,
 * pg_terminate_backend), or stops answering. A read is repeated on a new connection; a write is
 * sent on a new connection when the old one is found closed before sending; inside a transaction
 * the loss rolls the transaction back and every further statement of it fails, so nothing of it
 * is half-applied; a silent server costs at most the store's timeout. PostgreSQL only
 * (unit_store_test_store_reconnect_pg, fixture "pg"). */

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "store_reconnect");
}

/* Closes every other connection to the database, as a server restart would, and waits until
 * they are gone. */
static void
terminate_others(PGconn *admin)
{
    bp_testdb_pg_exec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    for (int i = 0; i < 500; i++) {
        if (bp_testdb_pg_int(admin, "SELECT count(*) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()") == 0) {
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    fail_msg("the terminated connections did not go away");
}

static struct bp_key_rec
mk_key(const char *id, unsigned char fill)
{
    struct bp_key_rec k = {
        .id = (char *)id,
        .name = (char *)"k",
        .prefix = (char *)"blnk_00000000",
        .scopes = (char *)"*",
        .created_at = 1,
    };
    memset(k.digest, fill, sizeof(k.digest));
    return k;
}

static size_t
key_count(struct bp_store *s)
{
    struct bp_key_rec *keys = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_key_list(s, &keys, &n), BP_OK);
    bp_key_recs_free(keys, n);
    return n;
}

/* The server closed the connection while the store was idle: the next read and the next write
 * both work, on a new connection, and the caller never sees the loss. */
static void
test_idle_connection_closed_by_server(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec a = mk_key("key_A", 0x11);
    struct bp_key_rec b = mk_key("key_B", 0x12);
    PGconn *admin = bp_testdb_pg_connect(f->db.path);

    assert_int_equal(bp_store_key_insert(f->s, &a), BP_OK);
    terminate_others(admin);
    assert_int_equal(key_count(f->s), 1);
    assert_true(bp_store_connected(f->s));
    terminate_others(admin);
    /* A write cannot be repeated safely, so the closed connection must be found before it is
     * sent: it is, since the server said goodbye on the socket. */
    if (bp_store_key_insert(f->s, &b) != BP_OK) {
        fail_msg("insert after the server closed the connection: %s", bp_store_last_error(f->s));
    }
    assert_int_equal(bp_testdb_pg_int(admin, "SELECT count(*) FROM api_keys"), 2);
    PQfinish(admin);
}

/* Lost inside a transaction: the transaction is gone (the server rolled it back), every further
 * statement of it fails instead of running alone on a new connection, and COMMIT fails. After
 * that the store works again. */
static void
test_loss_inside_a_transaction_is_never_half_applied(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec a = mk_key("key_A", 0x21);
    struct bp_key_rec b = mk_key("key_B", 0x22);
    struct bp_key_rec c = mk_key("key_C", 0x23);
    struct bp_key_rec d = mk_key("key_D", 0x24);
    PGconn *admin = bp_testdb_pg_connect(f->db.path);

    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_key_insert(f->s, &a), BP_OK);
    terminate_others(admin);
    assert_int_equal(bp_store_key_insert(f->s, &b), BP_ERR_STORE_DOWN);
    assert_non_null(strstr(bp_store_last_error(f->s), "the transaction was rolled back"));
    assert_int_equal(bp_store_key_insert(f->s, &c), BP_ERR_STORE_DOWN);
    assert_int_equal(bp_store_commit(f->s), BP_ERR_STORE_DOWN);
    assert_int_equal(bp_testdb_pg_int(admin, "SELECT count(*) FROM api_keys"), 0);

    /* The same with a rollback: then the next transaction runs on a new connection. */
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    terminate_others(admin);
    assert_int_equal(bp_store_key_insert(f->s, &a), BP_ERR_STORE_DOWN);
    bp_store_rollback(f->s);
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_key_insert(f->s, &d), BP_OK);
    assert_int_equal(bp_store_commit(f->s), BP_OK);
    assert_int_equal(bp_testdb_pg_int(admin, "SELECT count(*) FROM api_keys"), 1);
    assert_int_equal(bp_testdb_pg_int(admin, "SELECT count(*) FROM api_keys WHERE id = 'key_D'"), 1);
    PQfinish(admin);
}

/* A server that does not answer (here: the statement waits for a lock someone holds) is given up
 * after the store's timeout, and the connection with it; once the lock is gone the store works
 * on a new connection. */
static void
test_silent_server_costs_at_most_the_timeout(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec *keys = NULL;
    size_t n = 0;
    PGconn *admin = bp_testdb_pg_connect(f->db.path);

    bp_store_set_timeout(f->s, 300);
    bp_testdb_pg_exec(admin, "BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(bp_store_key_list(f->s, &keys, &n), BP_ERR_STORE_DOWN);
    assert_non_null(strstr(bp_store_last_error(f->s), "did not answer within 300 ms"));
    assert_false(bp_store_connected(f->s));
    bp_testdb_pg_exec(admin, "COMMIT");
    assert_int_equal(key_count(f->s), 0);
    assert_true(bp_store_connected(f->s));
    PQfinish(admin);
}

/* Opened lazily on a server that is not there (serve's threads do that, issue 9), a store exists
 * and each call fails with BP_ERR_STORE_DOWN and the reason, the DSN masked; a call within the
 * backoff is answered at once with the same reason. */
static void
test_unreachable_after_open_reports(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *s = NULL;
    char err[512];
    char dsn[300];
    int64_t seq = 0;

    /* The test's database name, on a port where nothing listens. */
    snprintf(dsn, sizeof(dsn), "postgresql://blnk:pw-lazy-XYZ@127.0.0.1:1/%s", f->db.pg_name);
    assert_int_equal(bp_store_open(dsn, BP_STORE_OPEN_LAZY, &s, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_change_seq(s, &seq), BP_ERR_STORE_DOWN);
    assert_null(strstr(bp_store_last_error(s), "pw-lazy-XYZ"));
    /* The next call within the backoff answers at once with the same reason. */
    assert_int_equal(bp_store_change_seq(s, &seq), BP_ERR_STORE_DOWN);
    assert_non_null(strstr(bp_store_last_error(s), "127.0.0.1:1"));
    bp_store_close(s);
}

/* Polls the listener until it reports `want` (or 5 s pass): waits on its socket while it is up,
 * for its retry while it is down. Returns what it reported last. */
static enum bp_store_listener_event
listener_until(struct bp_store_listener *l, enum bp_store_listener_event want)
{
    enum bp_store_listener_event ev = BP_LISTENER_NOTHING;

    for (int i = 0; i < 500 && ev != want; i++) {
        struct pollfd pfd = {.fd = bp_store_listener_fd(l), .events = POLLIN};
        if (pfd.fd >= 0) {
            (void)poll(&pfd, 1, 10);
        } else {
            nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
        }
        ev = bp_store_listener_poll(l);
    }
    return ev;
}

/* The listener wakes on another connection's committed change; when the server closes its
 * connection it says so, reconnects by itself and says that too (the caller then checks the seq,
 * since notifications sent meanwhile are lost). */
static void
test_listener_notified_lost_and_back(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store_listener *l = NULL;
    struct bp_store *cli = NULL;
    struct bp_key_rec a = mk_key("key_A", 0x31);
    struct bp_key_rec b = mk_key("key_B", 0x32);
    const char *ids[] = {"key_A"};
    const int64_t at[] = {50};
    PGconn *admin = bp_testdb_pg_connect(f->db.path);
    char err[512];

    assert_int_equal(bp_store_open(f->db.path, 0, &cli, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_listener_open(f->s, &l), BP_OK);
    assert_int_equal(bp_store_listener_fd(l), -1);
    assert_int_equal(bp_store_listener_poll(l), BP_LISTENER_CONNECTED);
    assert_true(bp_store_listener_fd(l) >= 0);
    assert_int_equal(bp_store_key_insert(cli, &a), BP_OK);
    assert_int_equal(listener_until(l, BP_LISTENER_NOTIFIED), BP_LISTENER_NOTIFIED);
    /* Not a change: no notification. */
    assert_int_equal(bp_store_key_touch(cli, ids, at, 1), BP_OK);
    {
        struct pollfd pfd = {.fd = bp_store_listener_fd(l), .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 200), 0);
    }

    terminate_others(admin);
    assert_int_equal(listener_until(l, BP_LISTENER_LOST), BP_LISTENER_LOST);
    assert_int_equal(bp_store_listener_fd(l), -1);
    assert_int_equal(bp_store_listener_retry_in_ms(l), 0);
    assert_int_equal(listener_until(l, BP_LISTENER_CONNECTED), BP_LISTENER_CONNECTED);
    assert_int_equal(bp_store_key_insert(cli, &b), BP_OK);
    assert_int_equal(listener_until(l, BP_LISTENER_NOTIFIED), BP_LISTENER_NOTIFIED);
    bp_store_listener_close(l);
    bp_store_close(cli);
    PQfinish(admin);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_connection_closed_by_server, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_loss_inside_a_transaction_is_never_half_applied, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_costs_at_most_the_timeout, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_after_open_reports, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_listener_notified_lost_and_back, setup, bp_testdb_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
