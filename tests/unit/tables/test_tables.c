/* The shared tables: lookups, and publish/acquire/release racing across threads (run under
 * ASan in CI, where a snapshot freed while pinned would be a use-after-free report). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "auth/auth-int.h"
#include "auth/auth.h"
#include "lib/secret.h"
#include "store/store.h"

#define N_KEYS 64
#define N_TOKENS 40

static struct bp_key_rec keys[N_KEYS];
static char key_ids[N_KEYS][32];
static struct bp_live_token tokens[N_TOKENS];
static char token_ids[N_TOKENS][32];
static char client_ids[N_TOKENS][32];
static char client_names[N_TOKENS][32];
static struct bp_instance_rec insts[3];

static void
make_records(void)
{
    static const char *ids[3] = {"instance_01J00000000000000000000002", "instance_01J00000000000000000000000",
                                 "instance_01J00000000000000000000001"};
    memset(keys, 0, sizeof(keys));
    for (int i = 0; i < N_KEYS; i++) {
        snprintf(key_ids[i], sizeof(key_ids[i]), "key_%02d", i);
        keys[i].id = key_ids[i];
        keys[i].name = key_ids[i] + 4;
        keys[i].scopes = "*";
        bp_digest(key_ids[i], strlen(key_ids[i]), keys[i].digest);
    }
    memset(tokens, 0, sizeof(tokens));
    for (int i = 0; i < N_TOKENS; i++) {
        snprintf(token_ids[i], sizeof(token_ids[i]), "token_%02d", i);
        snprintf(client_ids[i], sizeof(client_ids[i]), "client_%02d", i % 5);
        snprintf(client_names[i], sizeof(client_names[i]), "app %d", i % 5);
        tokens[i].id = token_ids[i];
        tokens[i].client_id = client_ids[i];
        tokens[i].client_name = client_names[i];
        tokens[i].scopes = (i % 2) ? "proxy:read" : "proxy:read,proxy:write";
        tokens[i].instances = (i % 3 == 0) ? "instance_01J00000000000000000000000,instance_01J00000000000000000000001"
                              : (i % 3 == 1) ? NULL
                                             : "";
        tokens[i].expires_at = 1800000000 + i;
        bp_digest(token_ids[i], strlen(token_ids[i]), tokens[i].digest);
    }
    memset(insts, 0, sizeof(insts));
    for (int i = 0; i < 3; i++) {
        insts[i].id = (char *)ids[i];
        insts[i].url = "http://127.0.0.1:1";
        insts[i].secret_key = i == 1 ? "core-secret" : NULL;
        insts[i].secret_key_len = i == 1 ? 11 : 0;
        insts[i].enabled = i != 2;
    }
}

static void
test_lookups(void **state)
{
    struct bp_tables *t = NULL;
    unsigned char unknown[32] = {0};
    size_t len = 0;

    (void)state;
    make_records();
    assert_int_equal(bp_tables_build(keys, N_KEYS, NULL, 0, insts, 3, &t), BP_OK);
    assert_int_equal(bp_tables_cred_count(t), N_KEYS);
    for (int i = 0; i < N_KEYS; i++) {
        const struct bp_cred *c = bp_tables_find_cred(t, keys[i].digest);
        assert_non_null(c);
        assert_int_equal(c->kind, BP_CRED_API_KEY);
        assert_string_equal(bp_cred_id(c), key_ids[i]);
        assert_string_equal(bp_cred_actor_id(c), key_ids[i]);
        assert_string_equal(bp_cred_name(c), key_ids[i] + 4);
        assert_null(bp_cred_instances(c));
    }
    assert_null(bp_tables_find_cred(t, unknown));
    for (int i = 0; i < 3; i++) {
        const struct bp_instance *inst = bp_tables_find_instance(t, insts[i].id, strlen(insts[i].id));
        assert_non_null(inst);
        assert_string_equal(inst->id, insts[i].id);
        assert_int_equal(inst->enabled, insts[i].enabled);
    }
    assert_string_equal(bp_secret_bytes(bp_tables_find_instance(t, insts[1].id, strlen(insts[1].id))->secret, &len),
                        "core-secret");
    assert_null(bp_tables_find_instance(t, "instance_01J0000000000000000000000", 34));
    assert_null(bp_tables_find_instance(t, "instance_01J000000000000000000000000", 36));
    bp_tables_release(t);
}

static void
test_tokens_share_the_index_with_keys(void **state)
{
    struct bp_tables *t = NULL;
    unsigned rw = 0;
    unsigned r = 0;

    (void)state;
    make_records();
    assert_int_equal(bp_scopes_parse("proxy:read,proxy:write", &rw), BP_OK);
    assert_int_equal(bp_scopes_parse("proxy:read", &r), BP_OK);
    assert_int_equal(bp_tables_build(keys, N_KEYS, tokens, N_TOKENS, insts, 3, &t), BP_OK);
    assert_int_equal(bp_tables_cred_count(t), N_KEYS + N_TOKENS);
    for (int i = 0; i < N_KEYS; i++) {
        const struct bp_cred *c = bp_tables_find_cred(t, keys[i].digest);
        assert_non_null(c);
        assert_int_equal(c->kind, BP_CRED_API_KEY);
        assert_string_equal(bp_cred_id(c), key_ids[i]);
    }
    for (int i = 0; i < N_TOKENS; i++) {
        const struct bp_cred *c = bp_tables_find_cred(t, tokens[i].digest);
        assert_non_null(c);
        assert_int_equal(c->kind, BP_CRED_ACCESS_TOKEN);
        assert_string_equal(bp_cred_id(c), token_ids[i]);
        assert_string_equal(bp_cred_actor_id(c), client_ids[i]);
        assert_string_equal(bp_cred_name(c), client_names[i]);
        assert_int_equal(c->scopes, (i % 2) ? r : rw);
        assert_int_equal(c->expires_at, 1800000000 + i);
        assert_false(c->revoked);
        assert_int_equal(atomic_load(&c->used_at), 0);
        if (i % 3 == 0) {
            assert_non_null(bp_cred_instances(c));
            assert_int_equal(bp_cred_instances(c)->n, 2);
            assert_string_equal(bp_cred_instances(c)->ids[1], "instance_01J00000000000000000000001");
        } else if (i % 3 == 1) {
            assert_null(bp_cred_instances(c));
        } else {
            /* The client is restricted to no instance: the restriction must not fail open. */
            assert_non_null(bp_cred_instances(c));
            assert_int_equal(bp_cred_instances(c)->n, 0);
        }
    }
    bp_tables_release(t);
}

static void
count_cred(struct bp_cred *c, void *arg)
{
    assert_non_null(bp_cred_id(c));
    (*(size_t *)arg)++;
}

static void
test_rows_with_bad_scopes_are_left_out(void **state)
{
    struct bp_tables *t = NULL;
    size_t walked;

    (void)state;
    make_records();
    keys[3].scopes = "proxy:admin";
    tokens[5].scopes = "";
    tokens[6].scopes = NULL;
    assert_int_equal(bp_tables_build(keys, N_KEYS, tokens, N_TOKENS, insts, 3, &t), BP_OK);
    assert_int_equal(bp_tables_cred_count(t), N_KEYS + N_TOKENS - 3);
    assert_null(bp_tables_find_cred(t, keys[3].digest));
    assert_null(bp_tables_find_cred(t, tokens[5].digest));
    assert_null(bp_tables_find_cred(t, tokens[6].digest));
    assert_non_null(bp_tables_find_cred(t, tokens[7].digest));
    walked = 0;
    bp_tables_each_cred(t, count_cred, &walked);
    assert_int_equal(walked, N_KEYS + N_TOKENS - 3);
    bp_tables_release(t);
}

/* A restriction is kept once however many credentials carry it (at a million keys a copy per
 * key was a third of the table), compared by its ids, and freed with the last credential. */
static void
test_instance_lists_are_shared(void **state)
{
    static const char *lists[6] = {"instance_a,instance_b", "instance_a,instance_b", ",instance_a,,instance_b,",
                                   "instance_b,instance_a", "", "instance_c"};
    struct bp_tables *t = NULL;
    struct bp_tables *next;
    const struct bp_cred *c[6];

    (void)state;
    make_records();
    assert_int_equal(bp_cred_restrictions_alive(), 0);
    for (int i = 0; i < 6; i++) {
        keys[i].instances = (char *)lists[i];
    }
    assert_int_equal(bp_tables_build(keys, 6, NULL, 0, insts, 3, &t), BP_OK);
    for (int i = 0; i < 6; i++) {
        c[i] = bp_tables_find_cred(t, keys[i].digest);
        assert_non_null(c[i]);
        assert_non_null(bp_cred_instances(c[i]));
    }
    assert_ptr_equal(bp_cred_instances(c[0]), bp_cred_instances(c[1]));
    assert_ptr_equal(bp_cred_instances(c[0]), bp_cred_instances(c[2])); /* empty items are not ids */
    assert_ptr_not_equal(bp_cred_instances(c[0]), bp_cred_instances(c[3])); /* order kept as written */
    assert_int_equal(bp_cred_instances(c[2])->n, 2);
    assert_string_equal(bp_cred_instances(c[2])->ids[0], "instance_a");
    assert_string_equal(bp_cred_instances(c[2])->ids[1], "instance_b");
    assert_int_equal(bp_cred_instances(c[4])->n, 0); /* "" restricts to no instance */
    assert_int_equal(bp_auth_check_instance(c[4], "instance_a", 10), BP_ERR_AUTH_INSTANCE);
    assert_int_equal(bp_auth_check_instance(c[2], "instance_b", 10), BP_OK);
    assert_int_equal(bp_cred_restrictions_alive(), 4);

    /* A delta that drops the last holder of a list frees it; the others stay. */
    next = bp_tables_edit(t);
    assert_true(bp_tables_remove_cred(next, keys[5].digest));
    bp_tables_release(t);
    assert_int_equal(bp_cred_restrictions_alive(), 3);
    bp_tables_release(next);
    assert_int_equal(bp_cred_restrictions_alive(), 0);
}

/* Issue 12: allow-lists share the restriction object with the instance list, and never fail
 * open: an unparseable or empty list allows no address. */
static void
test_allow_lists(void **state)
{
    static const char *allow[6] = {"10.0.0.0/8,2001:db8::/32", "10.0.0.0/8, 2001:db8::/32", NULL, "bogus",
                                   "", "203.0.113.7"};
    static const char *inst[6] = {NULL, NULL, "instance_a", NULL, NULL, "instance_a"};
    struct bp_tables *t = NULL;
    const struct bp_cred *c[6];

    (void)state;
    make_records();
    assert_int_equal(bp_cred_restrictions_alive(), 0);
    for (int i = 0; i < 6; i++) {
        keys[i].instances = (char *)inst[i];
        keys[i].allow_from = (char *)allow[i];
    }
    assert_int_equal(bp_tables_build(keys, 6, NULL, 0, insts, 3, &t), BP_OK);
    for (int i = 0; i < 6; i++) {
        c[i] = bp_tables_find_cred(t, keys[i].digest);
        assert_non_null(c[i]);
    }
    assert_ptr_equal(c[0]->restriction, c[1]->restriction); /* same networks, spaces aside */
    assert_null(bp_cred_instances(c[0]));
    assert_int_equal(bp_auth_check_peer(c[0], "10.1.2.3"), BP_OK);
    assert_int_equal(bp_auth_check_peer(c[0], "2001:db8::5"), BP_OK);
    assert_int_equal(bp_auth_check_peer(c[0], "11.1.2.3"), BP_ERR_AUTH_IP_NOT_ALLOWED);
    assert_int_equal(bp_auth_check_peer(c[0], "2001:db9::5"), BP_ERR_AUTH_IP_NOT_ALLOWED);
    assert_int_equal(bp_auth_check_peer(c[0], NULL), BP_ERR_AUTH_IP_NOT_ALLOWED);
    assert_int_equal(bp_auth_check_peer(c[0], "not an address"), BP_ERR_AUTH_IP_NOT_ALLOWED);
    /* Instances only: any address. */
    assert_int_equal(bp_auth_check_peer(c[2], "198.51.100.1"), BP_OK);
    assert_int_equal(bp_auth_check_instance(c[2], "instance_b", 10), BP_ERR_AUTH_INSTANCE);
    /* A list the CLI would not write, and the empty list: nowhere. */
    assert_int_equal(bp_auth_check_peer(c[3], "10.1.2.3"), BP_ERR_AUTH_IP_NOT_ALLOWED);
    assert_int_equal(bp_auth_check_peer(c[4], "10.1.2.3"), BP_ERR_AUTH_IP_NOT_ALLOWED);
    assert_ptr_not_equal(c[3]->restriction, c[4]->restriction);
    /* Both at once. */
    assert_int_equal(bp_auth_check_peer(c[5], "203.0.113.7"), BP_OK);
    assert_int_equal(bp_auth_check_peer(c[5], "203.0.113.8"), BP_ERR_AUTH_IP_NOT_ALLOWED);
    assert_int_equal(bp_auth_check_instance(c[5], "instance_a", 10), BP_OK);
    assert_ptr_not_equal(c[2]->restriction, c[5]->restriction);
    assert_int_equal(bp_cred_restrictions_alive(), 5);
    bp_tables_release(t);
    assert_int_equal(bp_cred_restrictions_alive(), 0);
    for (int i = 0; i < 6; i++) {
        keys[i].instances = NULL;
        keys[i].allow_from = NULL;
    }
}

static void
test_tokens_only(void **state)
{
    struct bp_tables *t = NULL;

    (void)state;
    make_records();
    assert_int_equal(bp_tables_build(NULL, 0, tokens, N_TOKENS, NULL, 0, &t), BP_OK);
    assert_int_equal(bp_tables_cred_count(t), N_TOKENS);
    assert_null(bp_tables_find_cred(t, keys[0].digest));
    assert_non_null(bp_tables_find_cred(t, tokens[N_TOKENS - 1].digest));
    assert_null(bp_tables_find_instance(t, insts[0].id, strlen(insts[0].id)));
    bp_tables_release(t);
}

static atomic_bool stop_readers;

static void *
reader(void *arg)
{
    size_t *lookups = arg;
    while (!atomic_load(&stop_readers)) {
        struct bp_tables *t = bp_tables_acquire();
        if (t == NULL) {
            continue;
        }
        for (int i = 0; i < N_KEYS; i += 7) {
            const struct bp_cred *c = bp_tables_find_cred(t, keys[i].digest);
            if (c == NULL || strcmp(bp_cred_id(c), key_ids[i]) != 0) {
                fprintf(stderr, "lookup of %s failed\n", key_ids[i]);
                abort();
            }
            atomic_store_explicit(&((struct bp_cred *)c)->used_at, 1, memory_order_relaxed);
            (*lookups)++;
        }
        for (int i = 0; i < N_TOKENS; i += 5) {
            const struct bp_cred *c = bp_tables_find_cred(t, tokens[i].digest);
            if (c == NULL || strcmp(bp_cred_actor_id(c), client_ids[i]) != 0) {
                fprintf(stderr, "lookup of %s failed\n", token_ids[i]);
                abort();
            }
            (*lookups)++;
        }
        bp_tables_release(t);
    }
    return NULL;
}

static void
test_publish_races_with_readers(void **state)
{
    pthread_t threads[2];
    size_t lookups[2] = {0, 0};

    (void)state;
    make_records();
    atomic_store(&stop_readers, false);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, reader, &lookups[i]), 0);
    }
    for (int round = 0; round < 2000; round++) {
        struct bp_tables *t = NULL;
        assert_int_equal(bp_tables_build(keys, N_KEYS, tokens, N_TOKENS, insts, 3, &t), BP_OK);
        bp_tables_publish(t);
    }
    atomic_store(&stop_readers, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
    }
    bp_tables_shutdown();
    assert_null(bp_tables_acquire());
    assert_true(lookups[0] + lookups[1] > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_tokens_share_the_index_with_keys),
        cmocka_unit_test(test_rows_with_bad_scopes_are_left_out),
        cmocka_unit_test(test_instance_lists_are_shared),
        cmocka_unit_test(test_allow_lists),
        cmocka_unit_test(test_tokens_only),
        cmocka_unit_test(test_publish_races_with_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
