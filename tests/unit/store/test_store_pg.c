/* clang-format off: cmocka needs these four headers first, in this order */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "store/pg-int.h"
#include "store/store.h"
#include "testdb.h"

/* What only PostgreSQL has to prove (issue 9): several connections, as several nodes would hold,
 * on one database. Migrations run once when three migrators start together; a code is exchanged
 * and a refresh token rotated exactly once across connections; a newer schema or someone else's
 * database is refused; the change log's triggers and NOTIFY. Runs only with
 * BLNKPROXY_TEST_STORE=pg (ctest: unit_store_test_store_pg, fixture "pg"). cmocka's asserts are
 * not thread-safe: threads only record what they saw, and the main thread asserts. */

#define ROUNDS 40

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "store_pg");
}

static struct bp_store *
open_dsn(const char *dsn)
{
    struct bp_store *s = NULL;
    char err[512];

    if (bp_store_open(dsn, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)) != BP_OK) {
        fail_msg("bp_store_open: %s", err);
    }
    return s;
}

/* ---- migrations ---- */

struct migrator {
    const char *dsn;
    pthread_barrier_t *go;
    bp_err rc;
    int applied;
    int version;
};

static void *
migrate_main(void *arg)
{
    struct migrator *m = arg;
    struct bp_store *s = NULL;
    char err[512];

    m->rc = bp_store_open(m->dsn, BP_STORE_OPEN_CREATE, &s, err, sizeof(err));
    pthread_barrier_wait(m->go);
    if (m->rc == BP_OK) {
        m->rc = bp_store_migrate(s, &m->applied, &m->version);
    }
    bp_store_close(s);
    return NULL;
}

/* Three nodes started together on an empty database: all succeed, each migration runs once. */
static void
test_three_migrators_at_once(void **state)
{
    struct bp_testdb db;
    struct migrator m[3];
    pthread_t th[3];
    pthread_barrier_t go;
    int applied = 0;
    PGconn *c;

    bp_testdb_init(&db, "store_pg_mig");
    pthread_barrier_init(&go, NULL, 3);
    for (int i = 0; i < 3; i++) {
        m[i] = (struct migrator){.dsn = db.path, .go = &go, .rc = BP_ERR_STORE};
        assert_int_equal(pthread_create(&th[i], NULL, migrate_main, &m[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&go);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(m[i].rc, BP_OK);
        assert_int_equal(m[i].version, (int)bp_store__pg_migrations_len);
        applied += m[i].applied;
    }
    assert_int_equal(applied, (int)bp_store__pg_migrations_len);
    c = bp_testdb_pg_connect(db.path);
    assert_int_equal(bp_testdb_pg_int(c, "SELECT count(*) FROM schema_migrations"), (int64_t)bp_store__pg_migrations_len);
    PQfinish(c);
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

/* An older binary meets a newer schema: refused at open and at migrate, saying what to do, and
 * naming the store without its password. */
static void
test_newer_schema_refused(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *s = NULL;
    char err[512] = "";
    char want[128];
    char sql[128];
    const char *pw;
    PGconn *c = bp_testdb_pg_connect(f->db.path);

    snprintf(sql, sizeof(sql), "INSERT INTO schema_migrations VALUES (%zu, 0)", bp_store__pg_migrations_len + 1);
    bp_testdb_pg_exec(c, sql);
    PQfinish(c);

    assert_int_equal(bp_store_open(f->db.path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)), BP_ERR_STORE);
    assert_null(s);
    snprintf(want, sizeof(want), "has schema version %zu; this blnkproxy", bp_store__pg_migrations_len + 1);
    assert_non_null(strstr(err, want));
    snprintf(want, sizeof(want), "knows up to %zu: upgrade blnkproxy", bp_store__pg_migrations_len);
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, ":***@"));
    pw = strchr(strstr(f->db.path, "://") + 3, ':') + 1;
    snprintf(want, sizeof(want), "%.*s", (int)(strchr(pw, '@') - pw), pw);
    assert_true(strlen(want) > 8);
    assert_null(strstr(err, want));

    /* A store opened before the newer binary migrated it: migrate refuses too. */
    assert_int_equal(bp_store_migrate(f->s, NULL, NULL), BP_ERR_STORE);
    assert_non_null(strstr(bp_store_last_error(f->s), "upgrade blnkproxy"));
}

/* A database that holds someone else's tables is not migrated into, nor touched. */
static void
test_foreign_database_refused(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    char err[512] = "";
    PGconn *c;

    bp_testdb_init(&db, "store_pg_foreign");
    c = bp_testdb_pg_connect(db.path);
    bp_testdb_pg_exec(c, "CREATE TABLE invoices (id INTEGER)");
    assert_int_equal(bp_store_open(db.path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)), BP_ERR_STORE);
    assert_non_null(strstr(err, "is not a blnkproxy store"));
    assert_int_equal(bp_testdb_pg_int(c, "SELECT count(*) FROM pg_class WHERE relname = 'schema_migrations'"), 0);
    PQfinish(c);
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

/* ---- exactly once across connections ---- */

static struct bp_client_rec
mk_client(const char *id)
{
    static char *uris[] = {(char *)"https://app.example/cb"};
    struct bp_client_rec c = {
        .id = (char *)id,
        .name = (char *)id,
        .scopes = (char *)"proxy:read",
        .redirect_uris = uris,
        .n_redirect_uris = 1,
        .grant_types = (char *)"authorization_code,refresh_token",
        .created_at = 1000,
    };
    memset(c.secret_digest, 0x11, sizeof(c.secret_digest));
    return c;
}

enum race_op { RACE_CODE_TAKE, RACE_MARK_USED };

struct racer {
    struct bp_store *s;
    pthread_barrier_t *go;
    enum race_op op;
    bp_err rc[ROUNDS];
};

static void *
race_main(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < ROUNDS; i++) {
        unsigned char digest[32];
        char id[32];
        struct bp_code_rec code = {0};

        memset(digest, 0x40 + i, sizeof(digest));
        snprintf(id, sizeof(id), "token_%02d", i);
        pthread_barrier_wait(r->go);
        if (r->op == RACE_CODE_TAKE) {
            r->rc[i] = bp_store_code_take(r->s, digest, 2000, &code);
            bp_code_rec_cleanup(&code);
        } else {
            r->rc[i] = bp_store_token_mark_used(r->s, id, 2000);
        }
    }
    return NULL;
}

/* Two connections (two nodes) present each code, or rotate each refresh token, at the same
 * moment: every time, exactly one wins and the other is told it was already used. */
static void
race(struct bp_testdb_store *f, enum race_op op)
{
    struct bp_client_rec c = mk_client("client_A");
    struct racer r[2];
    pthread_t th[2];
    pthread_barrier_t go;

    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    for (int i = 0; i < ROUNDS; i++) {
        char id[32];
        snprintf(id, sizeof(id), "token_%02d", i);
        if (op == RACE_CODE_TAKE) {
            struct bp_code_rec code = {
                .client_id = (char *)"client_A",
                .operator_id = (char *)"operator_A",
                .redirect_uri = (char *)"https://app.example/cb",
                .scopes = (char *)"proxy:read",
                .code_challenge = (char *)"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                .family_id = (char *)"family_A",
                .created_at = 1000,
                .expires_at = 5000,
            };
            memset(code.digest, 0x40 + i, sizeof(code.digest));
            assert_int_equal(bp_store_code_insert(f->s, &code), BP_OK);
        } else {
            struct bp_token_rec t = {
                .id = id,
                .kind = BP_TOKEN_REFRESH,
                .client_id = (char *)"client_A",
                .family_id = (char *)"family_A",
                .scopes = (char *)"proxy:read",
                .created_at = 1000,
            };
            memset(t.digest, 0x40 + i, sizeof(t.digest));
            assert_int_equal(bp_store_token_insert(f->s, &t), BP_OK);
        }
    }
    pthread_barrier_init(&go, NULL, 2);
    for (int k = 0; k < 2; k++) {
        r[k] = (struct racer){.s = open_dsn(f->db.path), .go = &go, .op = op};
        assert_int_equal(pthread_create(&th[k], NULL, race_main, &r[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        bp_store_close(r[k].s);
    }
    pthread_barrier_destroy(&go);
    for (int i = 0; i < ROUNDS; i++) {
        int ok = (r[0].rc[i] == BP_OK) + (r[1].rc[i] == BP_OK);
        int reuse = (r[0].rc[i] == BP_ERR_EXISTS) + (r[1].rc[i] == BP_ERR_EXISTS);
        if (ok != 1 || reuse != 1) {
            fail_msg("round %d: %s and %s, want one ok and one exists", i, bp_err_str(r[0].rc[i]),
                     bp_err_str(r[1].rc[i]));
        }
    }
}

static void
test_code_taken_once_across_connections(void **state)
{
    race(*state, RACE_CODE_TAKE);
}

static void
test_refresh_rotated_once_across_connections(void **state)
{
    race(*state, RACE_MARK_USED);
}

struct waiter {
    struct bp_store *s;
    bp_err rc;
};

static void *
mark_used_main(void *arg)
{
    struct waiter *w = arg;

    w->rc = bp_store_token_mark_used(w->s, "token_R", 3000);
    return NULL;
}

/* Polls (bounded, not timed) until some backend of this database waits for a lock. */
static void
wait_for_lock_waiter(PGconn *c)
{
    for (int i = 0; i < 1000; i++) {
        if (bp_testdb_pg_int(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND wait_event_type = 'Lock'") > 0) {
            return;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    fail_msg("no connection ever waited for the row lock");
}

/* A rotation in flight on node A holds the token's row: node B's attempt waits for it, then
 * re-reads the row. A committed → B is a reuse; A rolled back → B rotates. */
static void
rotation_against_open_transaction(struct bp_testdb_store *f, bool commit, bp_err want)
{
    struct bp_client_rec c = mk_client("client_A");
    struct bp_token_rec t = {
        .id = (char *)"token_R",
        .kind = BP_TOKEN_REFRESH,
        .client_id = (char *)"client_A",
        .family_id = (char *)"family_R",
        .scopes = (char *)"proxy:read",
        .created_at = 1000,
    };
    struct waiter w = {.s = open_dsn(f->db.path), .rc = BP_ERR_STORE};
    PGconn *watch = bp_testdb_pg_connect(f->db.path);
    pthread_t th;

    memset(t.digest, 0x77, sizeof(t.digest));
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &t), BP_OK);
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_token_mark_used(f->s, "token_R", 2000), BP_OK);
    assert_int_equal(pthread_create(&th, NULL, mark_used_main, &w), 0);
    wait_for_lock_waiter(watch);
    if (commit) {
        assert_int_equal(bp_store_commit(f->s), BP_OK);
    } else {
        bp_store_rollback(f->s);
    }
    pthread_join(th, NULL);
    assert_int_equal(w.rc, want);
    bp_store_close(w.s);
    PQfinish(watch);
}

static void
test_rotation_waits_then_sees_reuse(void **state)
{
    rotation_against_open_transaction(*state, true, BP_ERR_EXISTS);
}

static void
test_rotation_waits_then_wins_after_rollback(void **state)
{
    rotation_against_open_transaction(*state, false, BP_OK);
}

/* ---- audit ---- */

/* A failed insert stores nothing and leaves no seq behind (a trigger plays the failure). */
static void
test_audit_insert_failure_is_atomic(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_rec recs[3];
    struct bp_audit_query q = {0};
    struct bp_audit_rec *out = NULL;
    size_t n = 0;
    PGconn *c = bp_testdb_pg_connect(f->db.path);

    bp_testdb_pg_exec(c, "CREATE FUNCTION t_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.time_us = 1700000003000000 THEN RAISE EXCEPTION 'no'; END IF; RETURN NEW; END $$;"
                "CREATE TRIGGER t_fail BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION t_fail()");
    PQfinish(c);
    for (int i = 0; i < 3; i++) {
        recs[i] = (struct bp_audit_rec){.time_us = 1700000001000000 + i * 1000000, .actor_type = (char *)"cli"};
    }
    assert_int_equal(bp_store_audit_insert(f->s, recs, 3), BP_ERR_STORE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(recs[i].seq, 0);
    }
    assert_int_equal(bp_store_audit_query(f->s, &q, &out, &n), BP_OK);
    assert_int_equal(n, 0);
    bp_audit_recs_free(out, n);
    /* The connection is usable afterwards. */
    recs[2].time_us = 1700000009000000;
    assert_int_equal(bp_store_audit_insert(f->s, recs, 3), BP_OK);
    assert_true(recs[0].seq > 0 && recs[1].seq > recs[0].seq && recs[2].seq > recs[1].seq);
    for (int i = 0; i < 3; i++) {
        bp_free(recs[i].id); /* given by the store; the rest is static */
    }
}

/* Text PostgreSQL refuses (not UTF-8) is stored with '?' for its bad bytes, not lost. */
static void
test_audit_keeps_records_with_bad_utf8(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_audit_rec r = {.time_us = 1, .actor_type = (char *)"api_key", .path = (char *)"/ledgers/\xff\xfe-x"};
    struct bp_audit_query q = {0};
    struct bp_audit_rec *out = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_audit_insert(f->s, &r, 1), BP_OK);
    assert_int_equal(bp_store_audit_query(f->s, &q, &out, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].path, "/ledgers/?" "?-x");
    bp_audit_recs_free(out, n);
    bp_free(r.id); /* given by the store */
}

/* ---- the change log ---- */

static int64_t
token_of(struct bp_store *s)
{
    int64_t t = -1;

    assert_int_equal(bp_store_change_token(s, &t), BP_OK);
    return t;
}

/* Logged: what the tables are built from. Not logged: last-used stamps, refresh tokens, codes.
 * Each logged change notifies blnkproxy_changes with its seq. */
static void
test_change_log_and_notify(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec k = {.id = (char *)"key_A",
                           .name = (char *)"k",
                           .prefix = (char *)"blnk_00000000",
                           .scopes = (char *)"*",
                           .created_at = 1};
    struct bp_client_rec c = mk_client("client_A");
    struct bp_token_rec rt = {.id = (char *)"token_RT",
                              .kind = BP_TOKEN_REFRESH,
                              .client_id = (char *)"client_A",
                              .family_id = (char *)"family_A",
                              .scopes = (char *)"proxy:read",
                              .created_at = 1};
    const char *ids[] = {"key_A"};
    const int64_t at[] = {50};
    PGconn *listener = bp_testdb_pg_connect(f->db.path);
    PGnotify *note;
    int64_t t0 = token_of(f->s);
    int64_t t1;

    bp_testdb_pg_exec(listener, "LISTEN blnkproxy_changes");
    memset(k.digest, 0x21, sizeof(k.digest));
    assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    t1 = token_of(f->s);
    assert_true(t1 > t0);
    /* The notification carries the seq. */
    for (int i = 0; i < 500; i++) {
        assert_int_equal(PQconsumeInput(listener), 1);
        note = PQnotifies(listener);
        if (note != NULL) {
            break;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    assert_non_null(note);
    assert_string_equal(note->relname, "blnkproxy_changes");
    assert_int_equal(strtoll(note->extra, NULL, 10), t1);
    PQfreemem(note);

    assert_int_equal(bp_store_key_touch(f->s, ids, at, 1), BP_OK);
    assert_int_equal(token_of(f->s), t1);
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    t1 = token_of(f->s);
    memset(rt.digest, 0x22, sizeof(rt.digest));
    assert_int_equal(bp_store_token_insert(f->s, &rt), BP_OK);
    assert_int_equal(bp_store_token_mark_used(f->s, "token_RT", 5), BP_OK);
    assert_int_equal(token_of(f->s), t1);
    assert_int_equal(bp_store_key_revoke(f->s, "key_A", 9), BP_OK);
    assert_true(token_of(f->s) > t1);
    PQfinish(listener);
}

/* A statement that logs a change waits for a transaction holding the CHANGES lock (so seqs
 * become visible in order), while last-used stamps and audit records do not. */
static void
test_changes_wait_for_open_change(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *other = open_dsn(f->db.path);
    struct bp_key_rec k = {.id = (char *)"key_B",
                           .name = (char *)"k",
                           .prefix = (char *)"blnk_00000000",
                           .scopes = (char *)"*",
                           .created_at = 1};
    struct bp_audit_rec r = {.time_us = 7, .actor_type = (char *)"cli"};
    const char *ids[] = {"key_B"};
    const int64_t at[] = {60};
    PGconn *c = bp_testdb_pg_connect(f->db.path);

    memset(k.digest, 0x31, sizeof(k.digest));
    assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    assert_int_equal(bp_store_begin(other), BP_OK);
    /* While `other` holds the lock: these go through at once. */
    assert_int_equal(bp_store_key_touch(f->s, ids, at, 1), BP_OK);
    assert_int_equal(bp_store_audit_insert(f->s, &r, 1), BP_OK);
    bp_free(r.id); /* given by the store */
    /* A change would wait: lock_timeout makes the wait an error we can see. */
    bp_testdb_pg_exec(c, "SET lock_timeout = '100ms'");
    {
        PGresult *res = PQexec(c, "UPDATE api_keys SET revoked = TRUE WHERE id = 'key_B'");
        assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
        assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "55P03"); /* lock_not_available */
        PQclear(res);
    }
    bp_store_rollback(other);
    bp_testdb_pg_exec(c, "UPDATE api_keys SET revoked = TRUE WHERE id = 'key_B'");
    PQfinish(c);
    bp_store_close(other);
}

/* The change-log reader and purge and the schema version (store_changes_pg.c). */
static void
test_change_seq_purge_and_schema_version(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_instance_rec a = {.id = (char *)"instance_A", .name = (char *)"a", .url = (char *)"http://a", .enabled = true};
    struct bp_instance_rec b = {.id = (char *)"instance_B", .name = (char *)"b", .url = (char *)"http://b", .enabled = true};
    PGconn *c = bp_testdb_pg_connect(f->db.path);
    int64_t seq = -1;
    int64_t seq2 = -1;
    int version = -1;

    assert_int_equal(bp_pg__schema_version(f->s, &version), BP_OK);
    assert_int_equal(version, (int)bp_store__pg_migrations_len);
    assert_int_equal(bp_pg__change_seq(f->s, &seq), BP_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(bp_store_instance_insert(f->s, &a), BP_OK);
    assert_int_equal(bp_store_instance_insert(f->s, &b), BP_OK);
    assert_int_equal(bp_pg__change_seq(f->s, &seq), BP_OK);
    assert_true(seq >= 2);
    assert_int_equal(token_of(f->s), seq);
    /* Everything is older than the far future, but the newest row stays: the seq never goes back. */
    assert_int_equal(bp_pg__change_purge(f->s, INT64_MAX / 2), BP_OK);
    assert_int_equal(bp_testdb_pg_int(c, "SELECT count(*) FROM changes"), 1);
    assert_int_equal(bp_pg__change_seq(f->s, &seq2), BP_OK);
    assert_int_equal(seq2, seq);
    PQfinish(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_migrators_at_once),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, bp_testdb_store_teardown),
        cmocka_unit_test(test_foreign_database_refused),
        cmocka_unit_test_setup_teardown(test_code_taken_once_across_connections, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotated_once_across_connections, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_rotation_waits_then_sees_reuse, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_rotation_waits_then_wins_after_rollback, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_audit_insert_failure_is_atomic, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_audit_keeps_records_with_bad_utf8, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_change_log_and_notify, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_changes_wait_for_open_change, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_change_seq_purge_and_schema_version, setup, bp_testdb_store_teardown),
    };

    if (!bp_testdb_is_pg()) {
        fprintf(stderr, "test_store_pg: needs BLNKPROXY_TEST_STORE=pg (run it through ctest)\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
