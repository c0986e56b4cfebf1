#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
/* clang-format off: cmocka needs the four headers above first */
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "store/store.h"
#include "testdb.h"

/* The OAuth tables through the public store interface (SQLite backend). */

static int
setup(void **state)
{
    return bp_testdb_store_setup(state, "oauth_store");
}

static struct bp_store *
open_second(struct bp_testdb_store *f)
{
    struct bp_store *other = NULL;
    char err[256];

    assert_int_equal(bp_store_open(f->db.path, 0, &other, err, sizeof(err)), BP_OK);
    return other;
}

static char *uris_two[] = {(char *)"https://app.example/cb", (char *)"http://127.0.0.1:8765/cb?x=1"};

static struct bp_client_rec
mk_client(const char *id, const char *name, unsigned char fill, int64_t expires_at)
{
    struct bp_client_rec c = {
        .id = (char *)id,
        .name = (char *)name,
        .scopes = (char *)"proxy:read,proxy:write",
        .redirect_uris = uris_two,
        .n_redirect_uris = 2,
        .grant_types = (char *)"client_credentials,authorization_code,refresh_token",
        .instances = NULL,
        .created_at = 1000,
        .expires_at = expires_at,
    };
    memset(c.secret_digest, fill, sizeof(c.secret_digest));
    return c;
}

static struct bp_token_rec
mk_token(const char *id, enum bp_token_kind kind, unsigned char fill, const char *client, const char *family,
         int64_t expires_at)
{
    struct bp_token_rec t = {
        .id = (char *)id,
        .kind = kind,
        .client_id = (char *)client,
        .family_id = (char *)family,
        .operator_id = NULL,
        .scopes = (char *)"proxy:read",
        .created_at = 1000,
        .expires_at = expires_at,
    };
    memset(t.digest, fill, sizeof(t.digest));
    return t;
}

static void
insert_client(struct bp_store *s, const char *id, unsigned char fill, int64_t expires_at)
{
    struct bp_client_rec c = mk_client(id, id, fill, expires_at);
    assert_int_equal(bp_store_client_insert(s, &c), BP_OK);
}

static void
insert_token(struct bp_store *s, const char *id, enum bp_token_kind kind, unsigned char fill,
             const char *client, const char *family, int64_t expires_at)
{
    struct bp_token_rec t = mk_token(id, kind, fill, client, family, expires_at);
    assert_int_equal(bp_store_token_insert(s, &t), BP_OK);
}

static bool
token_revoked(struct bp_store *s, unsigned char fill)
{
    unsigned char d[32];
    struct bp_token_rec t = {0};
    bool revoked;

    memset(d, fill, sizeof(d));
    assert_int_equal(bp_store_token_get_by_digest(s, d, &t), BP_OK);
    revoked = t.revoked;
    bp_token_rec_cleanup(&t);
    return revoked;
}

/* ---- clients ---- */

static void
test_client_roundtrip_and_list(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_client_rec c = mk_client("client_A", "App A", 0x11, 5000);
    struct bp_client_rec got = {0};
    struct bp_client_rec *list = NULL;
    size_t n = 0;
    unsigned char want[32];

    c.instances = (char *)"instance_1,instance_2";
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    assert_int_equal(bp_store_client_get(f->s, "client_A", &got), BP_OK);
    assert_string_equal(got.id, "client_A");
    assert_string_equal(got.name, "App A");
    memset(want, 0x11, sizeof(want));
    assert_memory_equal(got.secret_digest, want, 32);
    assert_string_equal(got.scopes, "proxy:read,proxy:write");
    assert_int_equal(got.n_redirect_uris, 2);
    assert_string_equal(got.redirect_uris[0], "https://app.example/cb");
    assert_string_equal(got.redirect_uris[1], "http://127.0.0.1:8765/cb?x=1");
    assert_string_equal(got.grant_types, "client_credentials,authorization_code,refresh_token");
    assert_string_equal(got.instances, "instance_1,instance_2");
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.expires_at, 5000);
    assert_false(got.revoked);
    assert_int_equal(got.revoked_at, 0);
    bp_client_rec_cleanup(&got);
    assert_null(got.id);

    /* No redirect URIs at all (a machine client) comes back as an empty list. */
    struct bp_client_rec m = mk_client("client_B", "Machine", 0x12, 0);
    m.redirect_uris = NULL;
    m.n_redirect_uris = 0;
    m.grant_types = (char *)"client_credentials";
    m.created_at = 900;
    assert_int_equal(bp_store_client_insert(f->s, &m), BP_OK);
    assert_int_equal(bp_store_client_get(f->s, "client_B", &got), BP_OK);
    assert_int_equal(got.n_redirect_uris, 0);
    assert_null(got.redirect_uris);
    assert_null(got.instances);
    bp_client_rec_cleanup(&got);

    assert_int_equal(bp_store_client_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "client_B"); /* ordered by created_at */
    assert_string_equal(list[1].id, "client_A");
    assert_int_equal(list[1].n_redirect_uris, 2);
    bp_client_recs_free(list, n);
    bp_client_recs_free(NULL, 0);
    bp_client_rec_cleanup(NULL);
}

static void
test_client_constraints_and_not_found(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_client_rec c = mk_client("client_A", "A", 0x11, 0);
    struct bp_client_rec got = {0};
    char *bad_uris[] = {(char *)"https://a/cb\nhttps://evil/cb"};
    char *empty_uris[] = {(char *)""};

    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_ERR_EXISTS);
    /* Another id with the same secret digest is refused too. */
    c.id = (char *)"client_other";
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_ERR_EXISTS);
    /* A newline would split one URI into two when read back. */
    c = mk_client("client_C", "C", 0x13, 0);
    c.redirect_uris = bad_uris;
    c.n_redirect_uris = 1;
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_ERR_INVALID);
    c.redirect_uris = empty_uris;
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_ERR_INVALID);
    assert_int_equal(bp_store_client_get(f->s, "client_C", &got), BP_ERR_NOT_FOUND);

    assert_int_equal(bp_store_client_get(f->s, "client_nope", &got), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_client_revoke(f->s, "client_nope", 5), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_client_set_expiry(f->s, "client_nope", 5), BP_ERR_NOT_FOUND);

    assert_int_equal(bp_store_client_set_expiry(f->s, "client_A", 7777), BP_OK);
    assert_int_equal(bp_store_client_get(f->s, "client_A", &got), BP_OK);
    assert_int_equal(got.expires_at, 7777);
    bp_client_rec_cleanup(&got);
    assert_int_equal(bp_store_client_set_expiry(f->s, "client_A", 0), BP_OK);
    assert_int_equal(bp_store_client_get(f->s, "client_A", &got), BP_OK);
    assert_int_equal(got.expires_at, 0);
    bp_client_rec_cleanup(&got);
}

static void
test_client_revoke_revokes_its_tokens(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_client_rec got = {0};

    insert_client(f->s, "client_A", 0x01, 0);
    insert_client(f->s, "client_B", 0x02, 0);
    insert_token(f->s, "token_a1", BP_TOKEN_ACCESS, 0xa1, "client_A", "family_1", 0);
    insert_token(f->s, "token_a2", BP_TOKEN_REFRESH, 0xa2, "client_A", "family_1", 0);
    insert_token(f->s, "token_a3", BP_TOKEN_ACCESS, 0xa3, "client_A", "family_2", 99999);
    insert_token(f->s, "token_b1", BP_TOKEN_ACCESS, 0xb1, "client_B", "family_3", 0);

    assert_int_equal(bp_store_client_revoke(f->s, "client_A", 500), BP_OK);
    assert_int_equal(bp_store_client_get(f->s, "client_A", &got), BP_OK);
    assert_true(got.revoked);
    assert_int_equal(got.revoked_at, 500);
    bp_client_rec_cleanup(&got);
    assert_true(token_revoked(f->s, 0xa1));
    assert_true(token_revoked(f->s, 0xa2));
    assert_true(token_revoked(f->s, 0xa3));
    assert_false(token_revoked(f->s, 0xb1));

    /* Revoking again keeps the first time on record, and catches a token that slipped in. */
    insert_token(f->s, "token_a4", BP_TOKEN_ACCESS, 0xa4, "client_A", "family_4", 0);
    assert_int_equal(bp_store_client_revoke(f->s, "client_A", 900), BP_OK);
    assert_int_equal(bp_store_client_get(f->s, "client_A", &got), BP_OK);
    assert_int_equal(got.revoked_at, 500);
    bp_client_rec_cleanup(&got);
    assert_true(token_revoked(f->s, 0xa4));
}

static void
test_client_revoke_joins_callers_transaction(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_client_rec got = {0};

    insert_client(f->s, "client_A", 0x01, 0);
    insert_token(f->s, "token_a1", BP_TOKEN_ACCESS, 0xa1, "client_A", "family_1", 0);

    /* Inside the caller's transaction it neither opens nor commits its own. */
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_client_revoke(f->s, "client_A", 500), BP_OK);
    bp_store_rollback(f->s);
    assert_int_equal(bp_store_client_get(f->s, "client_A", &got), BP_OK);
    assert_false(got.revoked);
    bp_client_rec_cleanup(&got);
    assert_false(token_revoked(f->s, 0xa1));

    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_client_revoke(f->s, "client_A", 500), BP_OK);
    assert_int_equal(bp_store_commit(f->s), BP_OK);
    assert_true(token_revoked(f->s, 0xa1));
}

/* ---- operators ---- */

static void
test_operators(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_operator_rec op = {
        .id = (char *)"operator_1",
        .name = (char *)"alice",
        .password_hash = (char *)"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        .created_at = 100,
        .updated_at = 100,
    };
    struct bp_operator_rec got = {0};
    struct bp_operator_rec *list = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_operator_insert(f->s, &op), BP_OK);
    op.id = (char *)"operator_2";
    assert_int_equal(bp_store_operator_insert(f->s, &op), BP_ERR_EXISTS); /* same name */
    op.name = (char *)"bob";
    op.created_at = 50;
    op.disabled = true;
    assert_int_equal(bp_store_operator_insert(f->s, &op), BP_OK);

    assert_int_equal(bp_store_operator_get(f->s, "operator_1", &got), BP_OK);
    assert_string_equal(got.name, "alice");
    assert_string_equal(got.password_hash, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
    assert_false(got.disabled);
    assert_int_equal(got.created_at, 100);
    bp_operator_rec_cleanup(&got);
    assert_int_equal(bp_store_operator_get_by_name(f->s, "bob", &got), BP_OK);
    assert_string_equal(got.id, "operator_2");
    assert_true(got.disabled);
    bp_operator_rec_cleanup(&got);
    assert_int_equal(bp_store_operator_get_by_name(f->s, "carol", &got), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_operator_get(f->s, "operator_9", &got), BP_ERR_NOT_FOUND);

    assert_int_equal(bp_store_operator_list(f->s, &list, &n), BP_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "bob");
    assert_string_equal(list[1].name, "alice");
    bp_operator_recs_free(list, n);

    assert_int_equal(bp_store_operator_set_disabled(f->s, "operator_1", true, 200), BP_OK);
    assert_int_equal(bp_store_operator_set_password(f->s, "operator_1", "$argon2id$new", 300), BP_OK);
    assert_int_equal(bp_store_operator_get(f->s, "operator_1", &got), BP_OK);
    assert_true(got.disabled);
    assert_string_equal(got.password_hash, "$argon2id$new");
    assert_int_equal(got.updated_at, 300);
    assert_int_equal(got.created_at, 100);
    bp_operator_rec_cleanup(&got);
    assert_int_equal(bp_store_operator_set_disabled(f->s, "operator_1", false, 400), BP_OK);
    assert_int_equal(bp_store_operator_get(f->s, "operator_1", &got), BP_OK);
    assert_false(got.disabled);
    assert_int_equal(got.updated_at, 400);
    bp_operator_rec_cleanup(&got);

    assert_int_equal(bp_store_operator_set_disabled(f->s, "operator_9", true, 1), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_operator_set_password(f->s, "operator_9", "$x", 1), BP_ERR_NOT_FOUND);
}

/* ---- tokens ---- */

static void
test_token_roundtrip(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_token_rec t = mk_token("token_1", BP_TOKEN_REFRESH, 0x31, "client_A", "family_1", 4000);
    struct bp_token_rec got = {0};
    unsigned char d[32];

    insert_client(f->s, "client_A", 0x01, 0);
    t.operator_id = (char *)"operator_1";
    assert_int_equal(bp_store_token_insert(f->s, &t), BP_OK);
    assert_int_equal(bp_store_token_insert(f->s, &t), BP_ERR_EXISTS);
    /* Tokens belong to a known client (foreign key). */
    t = mk_token("token_2", BP_TOKEN_ACCESS, 0x32, "client_ghost", "family_2", 0);
    assert_int_not_equal(bp_store_token_insert(f->s, &t), BP_OK);
    t = mk_token("token_3", (enum bp_token_kind)3, 0x33, "client_A", "family_3", 0);
    assert_int_equal(bp_store_token_insert(f->s, &t), BP_ERR_INVALID);

    memset(d, 0x31, sizeof(d));
    assert_int_equal(bp_store_token_get_by_digest(f->s, d, &got), BP_OK);
    assert_string_equal(got.id, "token_1");
    assert_int_equal(got.kind, BP_TOKEN_REFRESH);
    assert_memory_equal(got.digest, d, 32);
    assert_string_equal(got.client_id, "client_A");
    assert_string_equal(got.family_id, "family_1");
    assert_string_equal(got.operator_id, "operator_1");
    assert_string_equal(got.scopes, "proxy:read");
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.expires_at, 4000);
    assert_int_equal(got.used_at, 0);
    assert_false(got.revoked);
    bp_token_rec_cleanup(&got);

    memset(d, 0x99, sizeof(d));
    assert_int_equal(bp_store_token_get_by_digest(f->s, d, &got), BP_ERR_NOT_FOUND);
}

static void
test_token_mark_used_is_compare_and_set(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *other = open_second(f);
    struct bp_token_rec got = {0};
    unsigned char d[32];

    insert_client(f->s, "client_A", 0x01, 0);
    insert_token(f->s, "token_r1", BP_TOKEN_REFRESH, 0x41, "client_A", "family_1", 0);
    insert_token(f->s, "token_r2", BP_TOKEN_REFRESH, 0x42, "client_A", "family_1", 0);

    assert_int_equal(bp_store_token_mark_used(f->s, "token_r1", 1234), BP_OK);
    /* The second exchange, on this or any other connection, loses. */
    assert_int_equal(bp_store_token_mark_used(f->s, "token_r1", 1300), BP_ERR_EXISTS);
    assert_int_equal(bp_store_token_mark_used(other, "token_r1", 1300), BP_ERR_EXISTS);
    memset(d, 0x41, sizeof(d));
    assert_int_equal(bp_store_token_get_by_digest(f->s, d, &got), BP_OK);
    assert_int_equal(got.used_at, 1234);
    bp_token_rec_cleanup(&got);

    /* Whichever connection gets there first wins; the other sees the win. */
    assert_int_equal(bp_store_token_mark_used(other, "token_r2", 2000), BP_OK);
    assert_int_equal(bp_store_token_mark_used(f->s, "token_r2", 2001), BP_ERR_EXISTS);

    assert_int_equal(bp_store_token_mark_used(f->s, "token_nope", 1), BP_ERR_NOT_FOUND);
    bp_store_close(other);
}

/* A revoked token cannot be rotated: a refresh that read it before its family was revoked must
 * lose the compare-and-set, like a second use. */
static void
test_token_mark_used_refuses_revoked(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *other = open_second(f);
    struct bp_token_rec got = {0};
    unsigned char d[32];

    insert_client(f->s, "client_A", 0x01, 0);
    insert_token(f->s, "token_r1", BP_TOKEN_REFRESH, 0x43, "client_A", "family_1", 0);
    insert_token(f->s, "token_r2", BP_TOKEN_REFRESH, 0x44, "client_A", "family_2", 0);

    assert_int_equal(bp_store_token_revoke_family(other, "family_1", 500, NULL), BP_OK);
    assert_int_equal(bp_store_token_mark_used(f->s, "token_r1", 600), BP_ERR_EXISTS);
    memset(d, 0x43, sizeof(d));
    assert_int_equal(bp_store_token_get_by_digest(f->s, d, &got), BP_OK);
    assert_int_equal(got.used_at, 0);
    assert_true(got.revoked);
    bp_token_rec_cleanup(&got);

    assert_int_equal(bp_store_token_revoke(f->s, "token_r2", 500), BP_OK);
    assert_int_equal(bp_store_token_mark_used(f->s, "token_r2", 600), BP_ERR_EXISTS);
    bp_store_close(other);
}

/* Keeps the newest `keep` live access tokens of one client; refresh tokens, expired and revoked
 * tokens and other clients' tokens are neither counted nor touched. */
static void
test_token_revoke_oldest_access(void **state)
{
    struct bp_testdb_store *f = *state;
    size_t n = 99;

    insert_client(f->s, "client_A", 0x01, 0);
    insert_client(f->s, "client_B", 0x02, 0);
    insert_token(f->s, "token_a1", BP_TOKEN_ACCESS, 0xa1, "client_A", "family_1", 0);
    insert_token(f->s, "token_expired", BP_TOKEN_ACCESS, 0xa2, "client_A", "family_2", 500);
    insert_token(f->s, "token_a3", BP_TOKEN_ACCESS, 0xa3, "client_A", "family_3", 5000);
    insert_token(f->s, "token_rt", BP_TOKEN_REFRESH, 0xa4, "client_A", "family_3", 0);
    insert_token(f->s, "token_b1", BP_TOKEN_ACCESS, 0xb1, "client_B", "family_4", 0);
    /* Ids in reverse order on purpose: insertion order, not id order, decides "oldest". */
    insert_token(f->s, "token_0a4", BP_TOKEN_ACCESS, 0xa5, "client_A", "family_5", 0);
    insert_token(f->s, "token_0a5", BP_TOKEN_ACCESS, 0xa6, "client_A", "family_6", 0);
    assert_int_equal(bp_store_token_revoke(f->s, "token_a3", 900), BP_OK);

    /* Live for client_A at 1000: a1, 0a4, 0a5 (a3 revoked, token_expired expired). */
    assert_int_equal(bp_store_token_revoke_oldest_access(f->s, "client_A", 3, 1000, &n), BP_OK);
    assert_int_equal(n, 0);
    assert_int_equal(bp_store_token_revoke_oldest_access(f->s, "client_A", 2, 1000, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_true(token_revoked(f->s, 0xa1));
    assert_false(token_revoked(f->s, 0xa2));
    assert_false(token_revoked(f->s, 0xa4));
    assert_false(token_revoked(f->s, 0xa5));
    assert_false(token_revoked(f->s, 0xa6));
    assert_false(token_revoked(f->s, 0xb1));

    /* Inside the caller's transaction: a rollback undoes it. */
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_token_revoke_oldest_access(f->s, "client_A", 1, 1000, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_true(token_revoked(f->s, 0xa5));
    bp_store_rollback(f->s);
    assert_false(token_revoked(f->s, 0xa5));

    assert_int_equal(bp_store_token_revoke_oldest_access(f->s, "client_A", 1, 1000, NULL), BP_OK);
    assert_true(token_revoked(f->s, 0xa5));
    assert_false(token_revoked(f->s, 0xa6));
    assert_false(token_revoked(f->s, 0xb1));
}

static void
test_token_revoke_and_family(void **state)
{
    struct bp_testdb_store *f = *state;
    size_t n = 99;

    insert_client(f->s, "client_A", 0x01, 0);
    insert_token(f->s, "token_1", BP_TOKEN_ACCESS, 0x51, "client_A", "family_F", 0);
    insert_token(f->s, "token_2", BP_TOKEN_REFRESH, 0x52, "client_A", "family_F", 0);
    insert_token(f->s, "token_3", BP_TOKEN_ACCESS, 0x53, "client_A", "family_F", 0);
    insert_token(f->s, "token_4", BP_TOKEN_ACCESS, 0x54, "client_A", "family_G", 0);

    assert_int_equal(bp_store_token_revoke(f->s, "token_3", 10), BP_OK);
    assert_true(token_revoked(f->s, 0x53));
    assert_int_equal(bp_store_token_revoke(f->s, "token_3", 11), BP_OK); /* idempotent */
    assert_int_equal(bp_store_token_revoke(f->s, "token_nope", 11), BP_ERR_NOT_FOUND);

    assert_int_equal(bp_store_token_revoke_family(f->s, "family_F", 20, &n), BP_OK);
    assert_int_equal(n, 2); /* token_3 was already revoked */
    assert_true(token_revoked(f->s, 0x51));
    assert_true(token_revoked(f->s, 0x52));
    assert_false(token_revoked(f->s, 0x54));
    assert_int_equal(bp_store_token_revoke_family(f->s, "family_F", 30, &n), BP_OK);
    assert_int_equal(n, 0);
    assert_int_equal(bp_store_token_revoke_family(f->s, "family_none", 30, NULL), BP_OK);
}

static const struct bp_live_token *
find_live(const struct bp_live_token *l, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].id, id) == 0) {
            return &l[i];
        }
    }
    return NULL;
}

static void
test_token_list_live(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_live_token *live = NULL;
    size_t n = 0;
    const int64_t now = 2000;
    const struct bp_live_token *t;
    unsigned char d[32];
    struct bp_client_rec c = mk_client("client_ok", "Good app", 0x01, 0);

    c.instances = (char *)"instance_1";
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    /* Revoked at the client only (its token row stays unrevoked): the join must exclude it. */
    c = mk_client("client_revoked", "Gone", 0x02, 0);
    c.revoked = true;
    c.revoked_at = 5;
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
    insert_client(f->s, "client_expired", 0x03, now); /* expires_at == now counts as expired */
    insert_client(f->s, "client_later", 0x04, 5000);

    insert_token(f->s, "t_forever", BP_TOKEN_ACCESS, 0x61, "client_ok", "f1", 0);
    insert_token(f->s, "t_expired", BP_TOKEN_ACCESS, 0x62, "client_ok", "f1", 1999);
    insert_token(f->s, "t_at_now", BP_TOKEN_ACCESS, 0x63, "client_ok", "f1", now);
    insert_token(f->s, "t_revoked", BP_TOKEN_ACCESS, 0x64, "client_ok", "f1", 0);
    insert_token(f->s, "t_refresh", BP_TOKEN_REFRESH, 0x65, "client_ok", "f1", 0);
    insert_token(f->s, "t_of_revoked", BP_TOKEN_ACCESS, 0x66, "client_revoked", "f2", 0);
    insert_token(f->s, "t_of_expired", BP_TOKEN_ACCESS, 0x67, "client_expired", "f3", 0);
    insert_token(f->s, "t_capped", BP_TOKEN_ACCESS, 0x68, "client_later", "f4", 9000);
    insert_token(f->s, "t_short", BP_TOKEN_ACCESS, 0x69, "client_later", "f4", 3000);
    insert_token(f->s, "t_never_capped", BP_TOKEN_ACCESS, 0x6a, "client_later", "f4", 0);
    assert_int_equal(bp_store_token_revoke(f->s, "t_revoked", 10), BP_OK);
    assert_false(token_revoked(f->s, 0x66));

    assert_int_equal(bp_store_token_list_live(f->s, now, &live, &n), BP_OK);
    assert_int_equal(n, 4);
    assert_null(find_live(live, n, "t_expired"));
    assert_null(find_live(live, n, "t_at_now"));
    assert_null(find_live(live, n, "t_revoked"));
    assert_null(find_live(live, n, "t_refresh"));
    assert_null(find_live(live, n, "t_of_revoked"));
    assert_null(find_live(live, n, "t_of_expired"));

    t = find_live(live, n, "t_forever");
    assert_non_null(t);
    memset(d, 0x61, sizeof(d));
    assert_memory_equal(t->digest, d, 32);
    assert_string_equal(t->client_id, "client_ok");
    assert_string_equal(t->client_name, "Good app");
    assert_string_equal(t->scopes, "proxy:read");
    assert_string_equal(t->instances, "instance_1");
    assert_int_equal(t->expires_at, 0);
    t = find_live(live, n, "t_capped");
    assert_non_null(t);
    assert_null(t->instances);
    assert_int_equal(t->expires_at, 5000); /* min(token 9000, client 5000) */
    t = find_live(live, n, "t_short");
    assert_non_null(t);
    assert_int_equal(t->expires_at, 3000);
    t = find_live(live, n, "t_never_capped");
    assert_non_null(t);
    assert_int_equal(t->expires_at, 5000);
    bp_live_tokens_free(live, n);

    /* Expiring a client takes all its tokens out of the live set. */
    assert_int_equal(bp_store_client_set_expiry(f->s, "client_later", 1500), BP_OK);
    assert_int_equal(bp_store_token_list_live(f->s, now, &live, &n), BP_OK);
    assert_int_equal(n, 1);
    assert_string_equal(live[0].id, "t_forever");
    bp_live_tokens_free(live, n);
    bp_live_tokens_free(NULL, 0);
}

/* ---- codes ---- */

static struct bp_code_rec
mk_code(unsigned char fill, const char *client)
{
    struct bp_code_rec c = {
        .client_id = (char *)client,
        .operator_id = (char *)"operator_1",
        .redirect_uri = (char *)"https://app.example/cb",
        .scopes = (char *)"proxy:read",
        .code_challenge = (char *)"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        .family_id = (char *)"family_C",
        .created_at = 1000,
        .expires_at = 1600,
    };
    memset(c.digest, fill, sizeof(c.digest));
    return c;
}

static void
test_code_take_once(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_store *other = open_second(f);
    struct bp_code_rec c = mk_code(0x71, "client_A");
    struct bp_code_rec got = {0};
    unsigned char d[32];

    insert_client(f->s, "client_A", 0x01, 0);
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_OK);
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_ERR_EXISTS);

    memset(d, 0x71, sizeof(d));
    assert_int_equal(bp_store_code_take(f->s, d, 1100, &got), BP_OK);
    assert_memory_equal(got.digest, d, 32);
    assert_string_equal(got.client_id, "client_A");
    assert_string_equal(got.operator_id, "operator_1");
    assert_string_equal(got.redirect_uri, "https://app.example/cb");
    assert_string_equal(got.scopes, "proxy:read");
    assert_string_equal(got.code_challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    assert_string_equal(got.family_id, "family_C");
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.expires_at, 1600);
    assert_int_equal(got.used_at, 1100);
    bp_code_rec_cleanup(&got);

    /* A second take is reuse: EXISTS, with the record so the family can be revoked. */
    assert_int_equal(bp_store_code_take(f->s, d, 1200, &got), BP_ERR_EXISTS);
    assert_string_equal(got.family_id, "family_C");
    assert_int_equal(got.used_at, 1100);
    bp_code_rec_cleanup(&got);
    assert_int_equal(bp_store_code_take(other, d, 1200, &got), BP_ERR_EXISTS);
    assert_string_equal(got.client_id, "client_A");
    bp_code_rec_cleanup(&got);

    memset(d, 0x7f, sizeof(d));
    assert_int_equal(bp_store_code_take(f->s, d, 1200, &got), BP_ERR_NOT_FOUND);
    assert_null(got.client_id);

    /* Inside the caller's transaction, a rollback undoes the take. */
    c = mk_code(0x72, "client_A");
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_OK);
    memset(d, 0x72, sizeof(d));
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_code_take(f->s, d, 1100, &got), BP_OK);
    bp_code_rec_cleanup(&got);
    bp_store_rollback(f->s);
    assert_int_equal(bp_store_code_take(other, d, 1150, &got), BP_OK);
    assert_int_equal(got.used_at, 1150);
    bp_code_rec_cleanup(&got);
    bp_store_close(other);
}

/* ---- sessions ---- */

static void
test_sessions(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_session_rec sess = {.operator_id = NULL, .created_at = 10, .expires_at = 20};
    struct bp_session_rec got = {0};
    unsigned char csrf[32];

    memset(sess.digest, 0x81, sizeof(sess.digest));
    memset(sess.csrf_digest, 0x82, sizeof(sess.csrf_digest));
    memcpy(csrf, sess.csrf_digest, sizeof(csrf));
    assert_int_equal(bp_store_session_insert(f->s, &sess), BP_OK);
    assert_int_equal(bp_store_session_insert(f->s, &sess), BP_ERR_EXISTS);
    assert_int_equal(bp_store_session_get(f->s, sess.digest, &got), BP_OK);
    assert_memory_equal(got.digest, sess.digest, 32);
    assert_memory_equal(got.csrf_digest, csrf, 32);
    assert_null(got.operator_id);
    assert_int_equal(got.created_at, 10);
    assert_int_equal(got.expires_at, 20);
    bp_session_rec_cleanup(&got);

    memset(sess.digest, 0x83, sizeof(sess.digest));
    sess.operator_id = (char *)"operator_1";
    assert_int_equal(bp_store_session_insert(f->s, &sess), BP_OK);
    assert_int_equal(bp_store_session_get(f->s, sess.digest, &got), BP_OK);
    assert_string_equal(got.operator_id, "operator_1");
    bp_session_rec_cleanup(&got);

    assert_int_equal(bp_store_session_delete(f->s, sess.digest), BP_OK);
    assert_int_equal(bp_store_session_delete(f->s, sess.digest), BP_ERR_NOT_FOUND);
    assert_int_equal(bp_store_session_get(f->s, sess.digest, &got), BP_ERR_NOT_FOUND);
}

static bool
session_exists(struct bp_store *s, unsigned char fill)
{
    unsigned char d[32];
    struct bp_session_rec got = {0};
    bp_err rc;

    memset(d, fill, sizeof(d));
    rc = bp_store_session_get(s, d, &got);
    bp_session_rec_cleanup(&got);
    assert_true(rc == BP_OK || rc == BP_ERR_NOT_FOUND);
    return rc == BP_OK;
}

static void
insert_session(struct bp_store *s, unsigned char fill, const char *operator_id)
{
    struct bp_session_rec sess = {.operator_id = (char *)operator_id, .created_at = 10, .expires_at = 5000};

    memset(sess.digest, fill, sizeof(sess.digest));
    memset(sess.csrf_digest, fill, sizeof(sess.csrf_digest));
    assert_int_equal(bp_store_session_insert(s, &sess), BP_OK);
}

static void
insert_op_token(struct bp_store *s, const char *id, enum bp_token_kind kind, unsigned char fill, const char *family,
                const char *operator_id)
{
    struct bp_token_rec t = mk_token(id, kind, fill, "client_A", family, 0);

    t.operator_id = (char *)operator_id;
    assert_int_equal(bp_store_token_insert(s, &t), BP_OK);
}

static void
test_operator_revoke_grants(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_code_rec c;
    struct bp_code_rec got = {0};
    unsigned char d[32];

    insert_client(f->s, "client_A", 0x01, 0);
    insert_op_token(f->s, "t1", BP_TOKEN_ACCESS, 0xc1, "family_X", "operator_1");
    insert_op_token(f->s, "t2", BP_TOKEN_REFRESH, 0xc2, "family_X", "operator_1");
    insert_op_token(f->s, "t3", BP_TOKEN_ACCESS, 0xc3, "family_Y", "operator_2");
    insert_op_token(f->s, "t4", BP_TOKEN_ACCESS, 0xc4, "family_Z", NULL);
    c = mk_code(0xc5, "client_A"); /* operator_1, unused */
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_OK);
    c = mk_code(0xc6, "client_A"); /* operator_1, used */
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_OK);
    memset(d, 0xc6, sizeof(d));
    assert_int_equal(bp_store_code_take(f->s, d, 1100, &got), BP_OK);
    bp_code_rec_cleanup(&got);
    c = mk_code(0xc7, "client_A");
    c.operator_id = (char *)"operator_2";
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_OK);
    insert_session(f->s, 0xd1, "operator_1");
    insert_session(f->s, 0xd2, "operator_2");
    insert_session(f->s, 0xd3, NULL);

    /* Inside the caller's transaction (the CLI disables in the same one): rollback undoes it. */
    assert_int_equal(bp_store_begin(f->s), BP_OK);
    assert_int_equal(bp_store_operator_revoke_grants(f->s, "operator_1", 2000), BP_OK);
    assert_true(token_revoked(f->s, 0xc1));
    bp_store_rollback(f->s);
    assert_false(token_revoked(f->s, 0xc1));
    assert_true(session_exists(f->s, 0xd1));

    assert_int_equal(bp_store_operator_revoke_grants(f->s, "operator_1", 2000), BP_OK);
    assert_true(token_revoked(f->s, 0xc1));
    assert_true(token_revoked(f->s, 0xc2));
    assert_false(token_revoked(f->s, 0xc3));
    assert_false(token_revoked(f->s, 0xc4));
    memset(d, 0xc5, sizeof(d));
    assert_int_equal(bp_store_code_take(f->s, d, 2100, &got), BP_ERR_NOT_FOUND); /* deleted */
    memset(d, 0xc6, sizeof(d));
    assert_int_equal(bp_store_code_take(f->s, d, 2100, &got), BP_ERR_EXISTS); /* kept: reuse stays visible */
    bp_code_rec_cleanup(&got);
    memset(d, 0xc7, sizeof(d));
    assert_int_equal(bp_store_code_take(f->s, d, 2100, &got), BP_OK);
    bp_code_rec_cleanup(&got);
    assert_false(session_exists(f->s, 0xd1));
    assert_true(session_exists(f->s, 0xd2));
    assert_true(session_exists(f->s, 0xd3));
    assert_int_equal(bp_store_operator_revoke_grants(f->s, "operator_none", 2000), BP_OK);
}

static void
test_session_delete_operator(void **state)
{
    struct bp_testdb_store *f = *state;

    insert_session(f->s, 0xe1, "operator_1");
    insert_session(f->s, 0xe2, "operator_1");
    insert_session(f->s, 0xe3, "operator_2");
    insert_session(f->s, 0xe4, NULL);
    assert_int_equal(bp_store_session_delete_operator(f->s, "operator_1"), BP_OK);
    assert_false(session_exists(f->s, 0xe1));
    assert_false(session_exists(f->s, 0xe2));
    assert_true(session_exists(f->s, 0xe3));
    assert_true(session_exists(f->s, 0xe4));
    assert_int_equal(bp_store_session_delete_operator(f->s, "operator_none"), BP_OK);
}

/* ---- purge ---- */

static void
test_purge(void **state)
{
    struct bp_testdb_store *f = *state;
    struct bp_code_rec c;
    struct bp_code_rec got = {0};
    struct bp_session_rec sess = {.created_at = 1, .expires_at = 100};
    struct bp_session_rec sgot = {0};
    struct bp_token_rec tgot = {0};
    unsigned char d[32];

    insert_client(f->s, "client_A", 0x01, 0);
    insert_token(f->s, "t_old", BP_TOKEN_ACCESS, 0x91, "client_A", "f", 100);
    insert_token(f->s, "t_new", BP_TOKEN_ACCESS, 0x92, "client_A", "f", 300);
    insert_token(f->s, "t_never", BP_TOKEN_REFRESH, 0x93, "client_A", "f", 0);
    c = mk_code(0x94, "client_A");
    c.expires_at = 100;
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_OK);
    c = mk_code(0x95, "client_A");
    c.expires_at = 300;
    assert_int_equal(bp_store_code_insert(f->s, &c), BP_OK);
    memset(sess.digest, 0x96, 32);
    assert_int_equal(bp_store_session_insert(f->s, &sess), BP_OK);
    memset(sess.digest, 0x97, 32);
    sess.expires_at = 300;
    assert_int_equal(bp_store_session_insert(f->s, &sess), BP_OK);

    assert_int_equal(bp_store_oauth_purge(f->s, 200), BP_OK);

    memset(d, 0x91, 32);
    assert_int_equal(bp_store_token_get_by_digest(f->s, d, &tgot), BP_ERR_NOT_FOUND);
    memset(d, 0x92, 32);
    assert_int_equal(bp_store_token_get_by_digest(f->s, d, &tgot), BP_OK);
    bp_token_rec_cleanup(&tgot);
    memset(d, 0x93, 32);
    assert_int_equal(bp_store_token_get_by_digest(f->s, d, &tgot), BP_OK);
    bp_token_rec_cleanup(&tgot);
    memset(d, 0x94, 32);
    assert_int_equal(bp_store_code_take(f->s, d, 1, &got), BP_ERR_NOT_FOUND);
    memset(d, 0x95, 32);
    assert_int_equal(bp_store_code_take(f->s, d, 1, &got), BP_OK);
    bp_code_rec_cleanup(&got);
    memset(d, 0x96, 32);
    assert_int_equal(bp_store_session_get(f->s, d, &sgot), BP_ERR_NOT_FOUND);
    memset(d, 0x97, 32);
    assert_int_equal(bp_store_session_get(f->s, d, &sgot), BP_OK);
    bp_session_rec_cleanup(&sgot);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_roundtrip_and_list, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_client_constraints_and_not_found, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_client_revoke_revokes_its_tokens, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_client_revoke_joins_callers_transaction, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_operators, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_token_roundtrip, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_token_mark_used_is_compare_and_set, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_token_mark_used_refuses_revoked, setup,
                                        bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_token_revoke_oldest_access, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_token_revoke_and_family, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_token_list_live, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_code_take_once, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_operator_revoke_grants, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_session_delete_operator, setup, bp_testdb_store_teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, bp_testdb_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
