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

#include <libpq-fe.h>
#include <sqlite3.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"
#include "testdb.h"

/* The credential change log (issue 8 item 5): bp_store_change_seq moves for every change the
 * server's in-memory tables depend on, from any connection, and for nothing else: not a
 * last-used stamp, not an audit record, not the OAuth bookkeeping the tables never hold. And the
 * rows in which running servers report how far they have applied it. */

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "store_changes");
}

static struct bp_store *
open_second(struct bp_testdb_store *f)
{
    struct bp_store *other = NULL;
    char err[256];

    assert_int_equal(bp_store_open(f->db.path, 0, &other, err, sizeof(err)), BP_OK);
    return other;
}

static int64_t
seq_of(struct bp_store *s)
{
    int64_t seq = -1;

    assert_int_equal(bp_store_change_seq(s, &seq), BP_OK);
    assert_true(seq >= 0);
    return seq;
}

/* Asserts that seq moved forward since *last (moved = true) or stayed (false), then remembers it. */
#define EXPECT_SEQ(s, last, moved)                                                                           \
    do {                                                                                                     \
        int64_t now_ = seq_of(s);                                                                            \
        if (moved) {                                                                                         \
            assert_true(now_ > *(last));                                                                     \
        } else {                                                                                             \
            assert_int_equal(now_, *(last));                                                                 \
        }                                                                                                    \
        *(last) = now_;                                                                                      \
    } while (0)

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

static struct bp_instance_rec
mk_instance(const char *id, const char *name)
{
    struct bp_instance_rec r = {
        .id = (char *)id,
        .name = (char *)name,
        .url = (char *)"http://127.0.0.1:5001",
        .enabled = true,
        .created_at = 1000,
        .updated_at = 1000,
    };
    return r;
}

static struct bp_client_rec
mk_client(const char *id, unsigned char fill)
{
    struct bp_client_rec c = {
        .id = (char *)id,
        .name = (char *)id,
        .scopes = (char *)"proxy:read",
        .grant_types = (char *)"client_credentials",
        .created_at = 1000,
    };
    memset(c.secret_digest, fill, sizeof(c.secret_digest));
    return c;
}

static struct bp_token_rec
mk_token(const char *id, enum bp_token_kind kind, unsigned char fill, int64_t expires_at)
{
    struct bp_token_rec t = {
        .id = (char *)id,
        .kind = kind,
        .client_id = (char *)"client_A",
        .family_id = (char *)"family_1",
        .scopes = (char *)"proxy:read",
        .created_at = 1000,
        .expires_at = expires_at,
    };
    memset(t.digest, fill, sizeof(t.digest));
    return t;
}

static struct bp_audit_rec
mk_audit(void)
{
    struct bp_audit_rec r = {
        .time_us = 1700000000000000LL,
        .actor_type = (char *)"api_key",
        .actor_id = (char *)"key_A",
        .action = (char *)"Ledger created",
        .category = (char *)"ledgers",
        .status = 201,
    };
    return r;
}

/* Rows in the change log, read with a connection of the test's own. */
static int64_t
change_rows(struct bp_testdb_store *f)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int64_t n = -1;

    if (bp_testdb_is_pg()) {
        PGconn *c = PQconnectdb(f->db.path);
        PGresult *r;

        assert_int_equal(PQstatus(c), CONNECTION_OK);
        r = PQexec(c, "SELECT count(*) FROM changes");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
        return n;
    }
    assert_int_equal(sqlite3_open_v2(f->db.path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM changes", -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

static void
test_key_changes_move_seq_and_last_used_does_not(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *cli = open_second(f); /* the CLI: another connection */
    struct bp_key_rec k = mk_key("key_A", 0x11);
    const char *ids[] = {"key_A"};
    const int64_t at[] = {5000};
    int64_t last = seq_of(f->s);

    assert_int_equal(last, 0); /* a fresh store has logged nothing */
    assert_int_equal(bp_store_key_insert(cli, &k), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    /* The server's own last-used flush must not look like a credential change. */
    assert_int_equal(bp_store_key_touch(f->s, ids, at, 1), BP_OK);
    EXPECT_SEQ(f->s, &last, false);
    assert_int_equal(bp_store_key_set_expiry(cli, "key_A", 99999), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    assert_int_equal(bp_store_key_revoke(cli, "key_A", 6000), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    /* Every connection reads the same position, including the one that wrote. */
    assert_int_equal(seq_of(cli), last);
    bp_store_close(cli);
}

static void
test_audit_records_do_not_move_seq(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *writer = open_second(f); /* the audit writer's own connection */
    struct bp_audit_rec recs[3] = {mk_audit(), mk_audit(), mk_audit()};
    int64_t deleted = 0;
    int64_t last = seq_of(f->s);

    assert_int_equal(bp_store_audit_insert(writer, recs, 3), BP_OK);
    for (int i = 0; i < 3; i++) {
        bp_free(recs[i].id); /* given by the store; the rest is static */
    }
    EXPECT_SEQ(f->s, &last, false);
    assert_int_equal(bp_store_audit_purge(writer, 1800000000000000LL, bp_testdb_cut, NULL, &deleted), BP_OK);
    assert_int_equal(deleted, 3);
    EXPECT_SEQ(f->s, &last, false);
    bp_store_close(writer);
}

static void
test_instance_changes_move_seq(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_instance_rec in = mk_instance("instance_A", "core-a");
    int64_t last = seq_of(f->s);

    assert_int_equal(bp_store_instance_insert(f->s, &in), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    in.enabled = false;
    assert_int_equal(bp_store_instance_update(f->s, &in), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    assert_int_equal(bp_store_instance_delete(f->s, "instance_A"), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
}

static void
test_oauth_changes_move_seq_only_for_what_the_tables_hold(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_client_rec c = mk_client("client_A", 0x21);
    struct bp_token_rec access = mk_token("token_A", BP_TOKEN_ACCESS, 0x31, 0);
    struct bp_token_rec refresh = mk_token("token_R", BP_TOKEN_REFRESH, 0x32, 0);
    struct bp_operator_rec op = {
        .id = (char *)"operator_A",
        .name = (char *)"alice",
        .password_hash = (char *)"$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        .created_at = 1000,
        .updated_at = 1000,
    };
    int64_t last = seq_of(f->s);

    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    assert_int_equal(bp_store_token_insert(f->s, &access), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    /* Refresh tokens and their rotation stamps never reach the request path's tables. */
    assert_int_equal(bp_store_token_insert(f->s, &refresh), BP_OK);
    EXPECT_SEQ(f->s, &last, false);
    assert_int_equal(bp_store_token_mark_used(f->s, "token_R", 2000), BP_OK);
    EXPECT_SEQ(f->s, &last, false);
    /* Neither do operators. */
    assert_int_equal(bp_store_operator_insert(f->s, &op), BP_OK);
    EXPECT_SEQ(f->s, &last, false);
    assert_int_equal(bp_store_token_revoke(f->s, "token_A", 3000), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    assert_int_equal(bp_store_client_set_expiry(f->s, "client_A", 99999), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
    assert_int_equal(bp_store_client_revoke(f->s, "client_A", 4000), BP_OK);
    EXPECT_SEQ(f->s, &last, true);
}

static void
test_purging_expired_tokens_is_not_a_change(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_client_rec c = mk_client("client_A", 0x21);
    struct bp_token_rec old = mk_token("token_old", BP_TOKEN_ACCESS, 0x41, 1500);
    int64_t last;

    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &old), BP_OK);
    last = seq_of(f->s);
    /* The token expired long ago, so no table holds it: deleting it changes nothing there. */
    assert_int_equal(bp_store_oauth_purge(f->s, 2000), BP_OK);
    EXPECT_SEQ(f->s, &last, false);
}

static void
test_purge_keeps_the_position(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec a = mk_key("key_A", 0x11);
    struct bp_key_rec b = mk_key("key_B", 0x12);
    int64_t last;
    int64_t after;

    assert_int_equal(bp_store_key_insert(f->s, &a), BP_OK);
    assert_int_equal(bp_store_key_insert(f->s, &b), BP_OK);
    last = seq_of(f->s);
    assert_int_equal(change_rows(f), 2);
    /* A cut-off in the past deletes nothing. */
    assert_int_equal(bp_store_change_purge(f->s, bp_clock_wall_s() - 3600), BP_OK);
    assert_int_equal(change_rows(f), 2);
    /* Everything is older than a cut-off in the future, but the newest row stays, so the
     * position never goes back. */
    assert_int_equal(bp_store_change_purge(f->s, bp_clock_wall_s() + 3600), BP_OK);
    assert_int_equal(change_rows(f), 1);
    EXPECT_SEQ(f->s, &last, false);
    assert_int_equal(bp_store_key_revoke(f->s, "key_A", 7000), BP_OK);
    after = seq_of(f->s);
    assert_true(after > last);
}

static void
test_commit_files_name_the_database_and_its_wal_or_none(void **state)
{
    struct bp_testdb_store *f = *state;
    const char *files[4] = {NULL, NULL, NULL, NULL};
    size_t n = bp_store_commit_files(f->s, files, 4);
    char wal[sizeof(f->db.path) + 8];

    struct bp_store_listener *l = NULL;

    if (bp_testdb_is_pg()) {
        /* A PostgreSQL store keeps no file here: its servers LISTEN for the change log's
         * notifications instead. */
        assert_int_equal(n, 0);
        assert_null(files[0]);
        assert_int_equal(bp_store_listener_open(f->s, &l), BP_OK);
        bp_store_listener_close(l);
        return;
    }
    /* And SQLite has no notifications. */
    assert_int_equal(bp_store_listener_open(f->s, &l), BP_ERR_INVALID);
    snprintf(wal, sizeof(wal), "%s-wal", f->db.path);
    assert_int_equal(n, 2);
    assert_string_equal(files[0], f->db.path);
    assert_string_equal(files[1], wal);
    /* A short array gets what fits. */
    files[0] = NULL;
    assert_int_equal(bp_store_commit_files(f->s, files, 1), 1);
    assert_string_equal(files[0], f->db.path);
}

static void
test_watcher_rows(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_watcher_rec a = {
        .id = (char *)"watcher_A", .host = (char *)"h1", .pid = 10, .seq = 3, .seen_at = 100};
    struct bp_watcher_rec b = {
        .id = (char *)"watcher_B", .host = (char *)"h2", .pid = 20, .seq = 0, .seen_at = 200};
    struct bp_watcher_rec *list = NULL;
    size_t n = 99;
    int64_t last = seq_of(f->s);

    assert_int_equal(bp_store_watcher_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 0);
    bp_watcher_recs_free(list, n);

    assert_int_equal(bp_store_watcher_put(f->s, &a), BP_OK);
    assert_int_equal(bp_store_watcher_put(f->s, &b), BP_OK);
    /* put replaces: this is how a server reports its progress and its heartbeat. */
    a.seq = 7;
    a.seen_at = 150;
    assert_int_equal(bp_store_watcher_put(f->s, &a), BP_OK);
    assert_int_equal(bp_store_watcher_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "watcher_A");
    assert_string_equal(list[0].host, "h1");
    assert_int_equal(list[0].pid, 10);
    assert_int_equal(list[0].seq, 7);
    assert_int_equal(list[0].seen_at, 150);
    assert_string_equal(list[1].id, "watcher_B");
    bp_watcher_recs_free(list, n);

    assert_int_equal(bp_store_watcher_delete(f->s, "watcher_A"), BP_OK);
    assert_int_equal(bp_store_watcher_delete(f->s, "watcher_A"), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_watcher_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "watcher_B");
    bp_watcher_recs_free(list, n);
    /* A server's reports are not credential changes. */
    EXPECT_SEQ(f->s, &last, false);
}

/* The rows a watcher applies as deltas: in seq order, from a position, in batches; and the
 * first seq the log holds, which tells a reader whether a purge went past its position. */
static void
test_changes_since_reads_the_rows_in_order(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec a = mk_key("key_A", 0x11);
    struct bp_key_rec b = mk_key("key_B", 0x12);
    struct bp_client_rec c = mk_client("client_A", 0x21);
    struct bp_token_rec ta = mk_token("token_A", BP_TOKEN_ACCESS, 0x31, 0);
    struct bp_token_rec tb = mk_token("token_B", BP_TOKEN_ACCESS, 0x33, 0);
    static const char *const want[][2] = {{"api_key", "key_A"},         {"api_key", "key_B"},
                                          {"oauth_client", "client_A"}, {"access_token", "token_A"},
                                          {"access_token", "token_B"},  {"access_token", "token_A"}};
    struct bp_change_rec *rows = NULL;
    struct bp_change_rec *more = NULL;
    size_t n = 0;
    size_t n_more = 0;
    int64_t first = -1;
    int64_t base = seq_of(f->s);

    assert_int_equal(bp_store_key_insert(f->s, &a), BP_OK);
    assert_int_equal(bp_store_key_insert(f->s, &b), BP_OK);
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &ta), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &tb), BP_OK);
    assert_int_equal(bp_store_token_revoke(f->s, "token_A", 3000), BP_OK);

    assert_int_equal(bp_store_changes_since(f->s, base, 100, &rows, &n, &first), BP_OK);
    assert_int_equal(n, 6);
    assert_true(first <= rows[0].seq);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(rows[i].kind, want[i][0]);
        assert_string_equal(rows[i].entity_id, want[i][1]);
        assert_true(i == 0 || rows[i].seq > rows[i - 1].seq);
    }
    assert_int_equal(rows[5].seq, seq_of(f->s));
    /* In batches: the next two after the second row. */
    assert_int_equal(bp_store_changes_since(f->s, rows[1].seq, 2, &more, &n_more, &first), BP_OK);
    assert_int_equal(n_more, 2);
    assert_int_equal(more[0].seq, rows[2].seq);
    assert_int_equal(more[1].seq, rows[3].seq);
    bp_change_recs_free(more, n_more);
    /* Nothing after the newest. */
    assert_int_equal(bp_store_changes_since(f->s, rows[5].seq, 100, &more, &n_more, &first), BP_OK);
    assert_int_equal(n_more, 0);
    assert_null(more);
    /* A purge past a reader's position shows: the first row it holds is beyond position + 1. */
    assert_int_equal(bp_store_change_purge(f->s, bp_clock_wall_s() + 3600), BP_OK);
    assert_int_equal(bp_store_changes_since(f->s, rows[0].seq, 100, &more, &n_more, &first), BP_OK);
    assert_int_equal(n_more, 1);
    assert_int_equal(more[0].seq, rows[5].seq);
    assert_int_equal(first, rows[5].seq);
    assert_true(first > rows[0].seq + 1);
    bp_change_recs_free(more, n_more);
    bp_change_recs_free(rows, n);
}

/* The token rows one change needs: a token by id whatever its state, a client's tokens that
 * could still be live, each with its digest and whether it is live now. */
static void
test_token_rows_for_a_change(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_client_rec c = mk_client("client_A", 0x21);
    struct bp_token_rec ta = mk_token("token_A", BP_TOKEN_ACCESS, 0x31, 0);
    struct bp_token_rec tb = mk_token("token_B", BP_TOKEN_ACCESS, 0x33, 0);
    struct bp_token_rec tr = mk_token("token_R", BP_TOKEN_REFRESH, 0x32, 0);
    struct bp_live_token *toks = NULL;
    size_t n = 0;
    unsigned char d31[32];
    unsigned char d33[32];

    memset(d31, 0x31, sizeof(d31));
    memset(d33, 0x33, sizeof(d33));
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &ta), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &tb), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &tr), BP_OK);
    assert_int_equal(bp_store_token_revoke(f->s, "token_A", 3000), BP_OK);

    assert_int_equal(bp_store_token_list_changed(f->s, 4000, "token_A", NULL, &toks, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_false(toks[0].live);
    assert_memory_equal(toks[0].digest, d31, 32);
    bp_live_tokens_free(toks, n);
    assert_int_equal(bp_store_token_list_changed(f->s, 4000, "token_B", NULL, &toks, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_true(toks[0].live);
    assert_string_equal(toks[0].client_id, "client_A");
    bp_live_tokens_free(toks, n);
    /* Only access tokens; an unknown id has no row. */
    assert_int_equal(bp_store_token_list_changed(f->s, 4000, "token_R", NULL, &toks, &n), BP_OK);
    assert_int_equal(n, 0);
    bp_live_tokens_free(toks, n);
    assert_int_equal(bp_store_token_list_changed(f->s, 4000, "token_X", NULL, &toks, &n), BP_OK);
    assert_int_equal(n, 0);
    bp_live_tokens_free(toks, n);
    /* The client's tokens that are not revoked: token_B, live until the client expires. */
    assert_int_equal(bp_store_token_list_changed(f->s, 4000, NULL, "client_A", &toks, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(toks[0].digest, d33, 32);
    assert_true(toks[0].live);
    bp_live_tokens_free(toks, n);
    assert_int_equal(bp_store_client_set_expiry(f->s, "client_A", 3500), BP_OK);
    assert_int_equal(bp_store_token_list_changed(f->s, 4000, NULL, "client_A", &toks, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_false(toks[0].live);
    bp_live_tokens_free(toks, n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_changes_move_seq_and_last_used_does_not, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_audit_records_do_not_move_seq, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_instance_changes_move_seq, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_oauth_changes_move_seq_only_for_what_the_tables_hold, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purging_expired_tokens_is_not_a_change, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge_keeps_the_position, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_commit_files_name_the_database_and_its_wal_or_none, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_watcher_rows, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_changes_since_reads_the_rows_in_order, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_token_rows_for_a_change, setup, bp_testdb_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
