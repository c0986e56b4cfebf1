#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "store/store.h"
#include "testdb.h"

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "store_test");
}

static struct bp_instance_rec
mk_instance(const char *id, const char *name, const char *secret)
{
    struct bp_instance_rec r = {
        .id = (char *)id,
        .name = (char *)name,
        .url = (char *)"http://127.0.0.1:5001",
        .secret_key = (char *)secret,
        .secret_key_len = secret ? strlen(secret) : 0,
        .ca_file = NULL,
        .enabled = true,
        .created_at = 1000,
        .updated_at = 1000,
    };
    return r;
}

static struct bp_key_rec
mk_key(const char *id, unsigned char fill, int64_t created_at)
{
    struct bp_key_rec k = {
        .id = (char *)id,
        .name = (char *)"ci",
        .prefix = (char *)"blnk_0123abcd",
        .scopes = (char *)"proxy:read",
        .instances = NULL,
        .created_at = created_at,
    };
    memset(k.digest, fill, sizeof(k.digest));
    return k;
}

static void
test_migrate_is_idempotent(void **state)
{
    struct bp_testdb_store *f = *state;
    int applied = -1;
    int version = -1;

    /* setup already migrated: a second run applies nothing and reports the same version. */
    assert_int_equal(bp_store_migrate(f->s, &applied, &version), BP_OK);
    assert_int_equal(applied, 0);
    assert_true(version >= 1);
}

static void
test_fresh_migrate_applies_all_and_file_is_private(void **state)
{
    struct bp_testdb db;
    char dsn[300];
    char err[256];
    struct bp_store *s = NULL;
    struct stat sb;
    int applied = -1;
    int version = -1;

    bp_testdb_init(&db, "store_fresh");
    snprintf(dsn, sizeof(dsn), "sqlite:%s", db.path);
    assert_int_equal(bp_store_open(dsn, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_migrate(s, &applied, &version), BP_OK);
    assert_true(applied >= 1);
    assert_int_equal(applied, version);
    assert_int_equal(bp_store_ping(s), BP_OK);
    bp_store_close(s);

    assert_int_equal(stat(db.path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    assert_int_equal(bp_store_open(dsn, 0, &s, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_migrate(s, &applied, &version), BP_OK);
    assert_int_equal(applied, 0);
    bp_store_close(s);

    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

/* A PostgreSQL DSN selects that backend; when it cannot connect, the message names the store
 * with its password masked. Port 1 on 127.0.0.1: nothing listens there. */
static void
test_postgres_dsn_password_never_echoed(void **state)
{
    struct bp_store *s = NULL;
    char err[512] = "";

    int64_t seq = 0;

    /* Unreachable is BP_ERR_STORE_DOWN: a later attempt may succeed (issue 9). */
    assert_int_equal(
        bp_store_open("postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=5", BP_STORE_OPEN_CREATE, &s, err, sizeof(err)),
        BP_ERR_STORE_DOWN);
    assert_null(s);
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "postgres://u:***@127.0.0.1:1/x"));
    /* libpq quotes a token it cannot decode, here the password itself. */
    assert_int_equal(bp_store_open("postgresql://u:hun%zzter2@127.0.0.1:1/x", 0, &s, err, sizeof(err)),
                     BP_ERR_STORE_DOWN);
    assert_null(strstr(err, "hun%zzter2"));
    assert_null(strstr(err, "zzter2"));
    assert_true(strlen(err) > 0);

    /* Opened lazily (serve's threads), the store exists and each call says why it cannot run. */
    assert_int_equal(bp_store_open("postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=5", BP_STORE_OPEN_LAZY, &s,
                                   err, sizeof(err)),
                     BP_OK);
    assert_non_null(s);
    assert_false(bp_store_connected(s));
    assert_int_equal(bp_store_change_seq(s, &seq), BP_ERR_STORE_DOWN);
    assert_null(strstr(bp_store_last_error(s), "hunter2"));
    assert_non_null(strstr(bp_store_last_error(s), "postgres://u:***@127.0.0.1:1/x"));
    bp_store_close(s);
}

static void
test_instance_crud(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_instance_rec a = mk_instance("instance_A", "prod", "sk\0x");
    struct bp_instance_rec got = {0};
    struct bp_instance_rec *list = NULL;
    size_t n = 0;

    a.secret_key_len = 4; /* an embedded NUL must survive: the secret is a blob */
    assert_int_equal(bp_store_instance_insert(f->s, &a), BP_OK);
    assert_int_equal(bp_store_instance_get(f->s, "instance_A", &got), BP_OK);
    assert_string_equal(got.id, "instance_A");
    assert_string_equal(got.name, "prod");
    assert_string_equal(got.url, "http://127.0.0.1:5001");
    assert_int_equal(got.secret_key_len, 4);
    assert_memory_equal(got.secret_key, "sk\0x", 4);
    assert_null(got.ca_file);
    assert_true(got.enabled);
    assert_int_equal(got.created_at, 1000);

    /* Update writes every field, including clearing the secret. */
    bp_free(got.url);
    got.url = bp_strdup("https://core.example/api");
    bp_free(got.secret_key);
    got.secret_key = NULL;
    got.secret_key_len = 0;
    got.ca_file = bp_strdup("/etc/ssl/ca.pem");
    got.enabled = false;
    got.updated_at = 2000;
    assert_int_equal(bp_store_instance_update(f->s, &got), BP_OK);
    bp_instance_rec_cleanup(&got);
    assert_null(got.id);

    assert_int_equal(bp_store_instance_get(f->s, "instance_A", &got), BP_OK);
    assert_string_equal(got.url, "https://core.example/api");
    assert_null(got.secret_key);
    assert_string_equal(got.ca_file, "/etc/ssl/ca.pem");
    assert_false(got.enabled);
    assert_int_equal(got.updated_at, 2000);
    bp_instance_rec_cleanup(&got);

    struct bp_instance_rec b = mk_instance("instance_B", "staging", NULL);
    b.created_at = 500; /* earlier: listed first */
    assert_int_equal(bp_store_instance_insert(f->s, &b), BP_OK);
    assert_int_equal(bp_store_instance_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "instance_B");
    assert_string_equal(list[1].id, "instance_A");
    bp_instance_recs_free(list, n);

    assert_int_equal(bp_store_instance_delete(f->s, "instance_A"), BP_OK);
    assert_int_equal(bp_store_instance_get(f->s, "instance_A", &got), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_instance_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 1);
    bp_instance_recs_free(list, n);
}

static void
test_instance_constraints_and_not_found(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_instance_rec a = mk_instance("instance_A", "prod", NULL);
    struct bp_instance_rec same_name = mk_instance("instance_B", "prod", NULL);
    struct bp_instance_rec same_id = mk_instance("instance_A", "other", NULL);
    struct bp_instance_rec c = mk_instance("instance_C", "c", NULL);
    struct bp_instance_rec ghost = mk_instance("instance_Z", "z", NULL);
    struct bp_instance_rec got = {0};
    struct bp_instance_rec *list = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_instance_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 0);
    bp_instance_recs_free(list, n);

    assert_int_equal(bp_store_instance_insert(f->s, &a), BP_OK);
    assert_int_equal(bp_store_instance_insert(f->s, &same_name), BP_ERR_EXISTS);
    assert_int_equal(bp_store_instance_insert(f->s, &same_id), BP_ERR_EXISTS);
    assert_string_not_equal(bp_store_last_error(f->s), "");

    /* Renaming onto an existing name is refused too. */
    assert_int_equal(bp_store_instance_insert(f->s, &c), BP_OK);
    c.name = (char *)"prod";
    assert_int_equal(bp_store_instance_update(f->s, &c), BP_ERR_EXISTS);

    assert_int_equal(bp_store_instance_get(f->s, "instance_Z", &got), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_instance_update(f->s, &ghost), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_instance_delete(f->s, "instance_Z"), BP_ERR_NOT_FOUND);
}

static void
test_key_crud(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec k = mk_key("key_A", 0xaa, 100);
    struct bp_key_rec k2 = mk_key("key_B", 0xbb, 50);
    struct bp_key_rec got = {0};
    struct bp_key_rec *list = NULL;
    size_t n = 0;
    unsigned char want[32];

    k.instances = (char *)"instance_A,instance_B";
    k.expires_at = 5000;
    assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    assert_int_equal(bp_store_key_insert(f->s, &k2), BP_OK);

    assert_int_equal(bp_store_key_get(f->s, "key_A", &got), BP_OK);
    memset(want, 0xaa, sizeof(want));
    assert_memory_equal(got.digest, want, 32);
    assert_string_equal(got.name, "ci");
    assert_string_equal(got.prefix, "blnk_0123abcd");
    assert_string_equal(got.scopes, "proxy:read");
    assert_string_equal(got.instances, "instance_A,instance_B");
    assert_int_equal(got.created_at, 100);
    assert_int_equal(got.expires_at, 5000);
    assert_int_equal(got.last_used_at, 0);
    assert_false(got.revoked);
    assert_int_equal(got.revoked_at, 0);
    bp_key_rec_cleanup(&got);

    assert_int_equal(bp_store_key_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "key_B");
    assert_null(list[0].instances);
    assert_string_equal(list[1].id, "key_A");
    bp_key_recs_free(list, n);

    assert_int_equal(bp_store_key_set_expiry(f->s, "key_A", 0), BP_OK);
    assert_int_equal(bp_store_key_revoke(f->s, "key_A", 777), BP_OK);
    /* Idempotent: a second revoke keeps the first time. */
    assert_int_equal(bp_store_key_revoke(f->s, "key_A", 999), BP_OK);
    assert_int_equal(bp_store_key_get(f->s, "key_A", &got), BP_OK);
    assert_int_equal(got.expires_at, 0);
    assert_true(got.revoked);
    assert_int_equal(got.revoked_at, 777);
    bp_key_rec_cleanup(&got);
}

#define WALK_KEYS 20001 /* more than two of PostgreSQL's cursor batches */

struct walk {
    unsigned char *seen; /* by key number */
    size_t calls;
    size_t stop_at;      /* fn fails on this call, 0 = never */
    bool checked_special;
    bool key_8_revoked;
};

static bp_err
walk_key(const struct bp_key_rec *k, void *arg)
{
    struct walk *w = arg;
    unsigned long i;

    w->calls++;
    if (w->stop_at != 0 && w->calls == w->stop_at) {
        return BP_ERR_INVALID;
    }
    assert_non_null(k->id);
    assert_int_equal(strncmp(k->id, "key_", 4), 0);
    i = strtoul(k->id + 4, NULL, 10);
    assert_true(i < WALK_KEYS);
    assert_int_equal(w->seen[i], 0);
    w->seen[i] = 1;
    assert_int_equal(k->digest[0], (unsigned char)i);
    assert_int_equal(k->digest[1], (unsigned char)(i >> 8));
    assert_string_equal(k->scopes, "proxy:read");
    if (i == 7) {
        assert_string_equal(k->instances, "instance_A,instance_B");
        assert_int_equal(k->expires_at, 5000);
        assert_true(k->revoked);
        w->checked_special = true;
    } else {
        assert_null(k->instances);
        assert_int_equal(k->revoked, i == 8 && w->key_8_revoked);
    }
    return BP_OK;
}

/* serve's full load reads every key through bp_store_key_each, never a list of them: each key
 * once, with its fields; an error from the callback stops the walk and leaves the store usable. */
static void
test_key_each(void **state)
{
    struct bp_testdb_store *f = *state;
    struct walk w = {.seen = bp_calloc(WALK_KEYS, 1)};

    assert_int_equal(bp_store_begin(f->s), BP_OK);
    for (unsigned i = 0; i < WALK_KEYS; i++) {
        char id[32];
        struct bp_key_rec k = mk_key(id, 0, i);
        snprintf(id, sizeof(id), "key_%u", i);
        k.digest[0] = (unsigned char)i;
        k.digest[1] = (unsigned char)(i >> 8);
        k.digest[2] = (unsigned char)(i >> 16);
        if (i == 7) {
            k.instances = (char *)"instance_A,instance_B";
            k.expires_at = 5000;
            k.revoked = true;
            k.revoked_at = 10;
        }
        assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    }
    assert_int_equal(bp_store_commit(f->s), BP_OK);

    assert_int_equal(bp_store_key_each(f->s, walk_key, &w), BP_OK);
    assert_int_equal(w.calls, WALK_KEYS);
    assert_true(w.checked_special);
    for (unsigned i = 0; i < WALK_KEYS; i++) {
        assert_int_equal(w.seen[i], 1);
    }

    /* Stopped in the second batch: the callback's error comes back, and the store still works,
     * a walk included. */
    memset(w.seen, 0, WALK_KEYS);
    w.calls = 0;
    w.stop_at = 12345;
    assert_int_equal(bp_store_key_each(f->s, walk_key, &w), BP_ERR_INVALID);
    assert_int_equal(w.calls, 12345);
    assert_int_equal(bp_store_key_revoke(f->s, "key_8", 1), BP_OK);
    w.key_8_revoked = true;
    memset(w.seen, 0, WALK_KEYS);
    w.calls = 0;
    w.stop_at = 0;
    assert_int_equal(bp_store_key_each(f->s, walk_key, &w), BP_OK);
    assert_int_equal(w.calls, WALK_KEYS);
    bp_free(w.seen);
}

static void
test_key_constraints_and_not_found(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec k = mk_key("key_A", 0x11, 1);
    struct bp_key_rec same_digest = mk_key("key_B", 0x11, 1);
    struct bp_key_rec same_id = mk_key("key_A", 0x22, 1);
    struct bp_key_rec got = {0};

    assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    assert_int_equal(bp_store_key_insert(f->s, &same_digest), BP_ERR_EXISTS);
    assert_int_equal(bp_store_key_insert(f->s, &same_id), BP_ERR_EXISTS);
    assert_int_equal(bp_store_key_get(f->s, "key_nope", &got), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_key_revoke(f->s, "key_nope", 1), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_key_set_expiry(f->s, "key_nope", 1), BP_ERR_NOT_FOUND);
}

/* A rotation in its transaction, of old as the caller read it (bp_key_rec_inherit). */
static bp_err
rotate(struct bp_store *s, const char *new_id, unsigned char fill, const struct bp_key_rec *old)
{
    struct bp_key_rec fresh = mk_key(new_id, fill, 2);
    bp_err err;

    fresh.name = NULL;
    fresh.scopes = NULL;
    bp_key_rec_inherit(&fresh, old);
    assert_int_equal(bp_store_begin(s), BP_OK);
    err = bp_store_key_rotate(s, &fresh, old->id, 100);
    if (err == BP_OK) {
        assert_int_equal(bp_store_commit(s), BP_OK);
    } else {
        bp_store_rollback(s);
    }
    bp_free(fresh.name);
    bp_free(fresh.scopes);
    bp_free(fresh.instances);
    bp_free(fresh.allow_from);
    bp_free(fresh.rate_limit);
    return err;
}

/* A rotation refuses an old key that was rotated, revoked or changed after the caller read it
 * (two operators at once): never two successors, never a successor of a revoked key, never one
 * with limits the old key no longer has. */
static void
test_key_rotate_conflicts(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec k = mk_key("key_A", 0x31, 1);
    struct bp_key_rec read = {0};
    struct bp_key_rec got = {0};

    assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    assert_int_equal(bp_store_key_get(f->s, "key_A", &read), BP_OK);
    assert_int_equal(rotate(f->s, "key_B", 0x32, &read), BP_OK);
    assert_int_equal(rotate(f->s, "key_C", 0x33, &read), BP_ERR_EXISTS);
    assert_int_equal(bp_store_key_get(f->s, "key_C", &got), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_key_get(f->s, "key_A", &got), BP_OK);
    assert_int_equal(bp_store_key_links(f->s, "key_A", &got.replaces, &got.replaced_by), BP_OK);
    assert_non_null(got.replaced_by);
    assert_string_equal(got.replaced_by, "key_B");
    assert_int_equal(got.expires_at, 100);
    bp_key_rec_cleanup(&got);
    bp_key_rec_cleanup(&read);

    /* Read, then changed by someone else, then rotated: refused. */
    k = mk_key("key_D", 0x34, 1);
    assert_int_equal(bp_store_key_insert(f->s, &k), BP_OK);
    assert_int_equal(bp_store_key_get(f->s, "key_D", &read), BP_OK);
    assert_int_equal(bp_store_key_set_allow_from(f->s, "key_D", "10.0.0.0/8"), BP_OK);
    assert_int_equal(rotate(f->s, "key_E", 0x35, &read), BP_ERR_EXISTS);
    bp_key_rec_cleanup(&read);
    assert_int_equal(bp_store_key_get(f->s, "key_D", &read), BP_OK);
    assert_int_equal(bp_store_key_revoke(f->s, "key_D", 5), BP_OK);
    assert_int_equal(rotate(f->s, "key_E", 0x35, &read), BP_ERR_EXISTS);
    assert_int_equal(bp_store_key_get(f->s, "key_E", &got), BP_ERR_NOT_FOUND);
    bp_key_rec_cleanup(&read);
}

static void
test_key_touch(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_key_rec a = mk_key("key_A", 0x01, 1);
    struct bp_key_rec b = mk_key("key_B", 0x02, 1);
    struct bp_key_rec got = {0};
    const char *ids[] = {"key_A", "key_B", "key_unknown"};
    int64_t at[] = {500, 300, 900};
    int64_t older[] = {100, 400};

    assert_int_equal(bp_store_key_insert(f->s, &a), BP_OK);
    assert_int_equal(bp_store_key_insert(f->s, &b), BP_OK);
    assert_int_equal(bp_store_key_touch(f->s, ids, at, 3), BP_OK);
    assert_int_equal(bp_store_key_touch(f->s, ids, at, 0), BP_OK);
    /* max(): an older touch never moves last_used_at back. */
    assert_int_equal(bp_store_key_touch(f->s, ids, older, 2), BP_OK);

    assert_int_equal(bp_store_key_get(f->s, "key_A", &got), BP_OK);
    assert_int_equal(got.last_used_at, 500);
    bp_key_rec_cleanup(&got);
    assert_int_equal(bp_store_key_get(f->s, "key_B", &got), BP_OK);
    assert_int_equal(got.last_used_at, 400);
    bp_key_rec_cleanup(&got);
}

static void
test_change_token(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *other = NULL;
    char err[256];
    int64_t t0;
    int64_t t1;
    int64_t t2;
    int64_t t3;
    struct bp_key_rec k = mk_key("key_A", 0x33, 1);

    assert_int_equal(bp_store_change_token(f->s, &t0), BP_OK);
    assert_int_equal(bp_store_change_token(f->s, &t1), BP_OK);
    assert_true(t0 == t1); /* nothing happened */

    /* A commit from another connection. */
    assert_int_equal(bp_store_open(f->db.path, 0, &other, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_key_insert(other, &k), BP_OK);
    assert_int_equal(bp_store_change_token(f->s, &t2), BP_OK);
    assert_true(t2 != t1);

    /* A commit on this connection. */
    assert_int_equal(bp_store_key_revoke(f->s, "key_A", 5), BP_OK);
    assert_int_equal(bp_store_change_token(f->s, &t3), BP_OK);
    assert_true(t3 != t2);

    /* The other connection sees this one's commit. */
    int64_t o1;
    int64_t o2;
    assert_int_equal(bp_store_change_token(other, &o1), BP_OK);
    assert_int_equal(bp_store_key_set_expiry(f->s, "key_A", 42), BP_OK);
    assert_int_equal(bp_store_change_token(other, &o2), BP_OK);
    assert_true(o1 != o2);
    bp_store_close(other);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_is_idempotent, setup, bp_testdb_store_teardown),
        cmocka_unit_test(test_postgres_dsn_password_never_echoed),
        cmocka_unit_test_setup_teardown(test_instance_crud, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_instance_constraints_and_not_found, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_key_crud, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_key_each, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_key_constraints_and_not_found, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_key_touch, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_key_rotate_conflicts, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_change_token, setup, bp_testdb_store_teardown),
    };
    /* A file's permissions and the sqlite: prefix: SQLite only (test_store_pg.c covers a fresh
     * PostgreSQL database). */
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test(test_fresh_migrate_applies_all_and_file_is_private),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    if (!bp_testdb_is_pg()) {
        failed += cmocka_run_group_tests(sqlite_tests, NULL, NULL);
    }
    return failed;
}
