/* Request-path authentication and authorisation against an in-memory tables snapshot: API keys
 * and OAuth access tokens share one index but never stand in for each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "lib/rand.h"
#include "router/router.h"
#include "store/store.h"

#define NOW 1800000000
#define N_KEYS 5
#define N_TOKENS 5
#define TOKEN_LEN (8 + 64)

enum { TOK_ACTIVE, TOK_EXPIRED, TOK_KEY_DIGEST, TOK_REFRESH, TOK_FOREVER };

struct fixture {
    char keys[N_KEYS][BP_APIKEY_LEN + 1];
    char tokens[N_TOKENS][TOKEN_LEN + 1];
    char confused_key[BP_APIKEY_LEN + 1]; /* an API key text whose digest is in the table as a token */
    struct bp_tables *t;
};

static struct fixture fx;

static void
make_token(const char *prefix, char out[TOKEN_LEN + 1])
{
    memcpy(out, prefix, 8);
    assert_int_equal(bp_rand_hex(out + 8, 32), BP_OK);
}

static int
setup(void **state)
{
    struct bp_key_rec recs[N_KEYS];
    struct bp_live_token toks[N_TOKENS];
    struct bp_instance_rec inst = {.id = "instance_01J00000000000000000000000", .name = "a",
                                   .url = "http://127.0.0.1:1", .enabled = true};
    char *ids[N_KEYS] = {"key_active", "key_revoked", "key_expired", "key_nowhere", "key_token_digest"};
    char *tok_ids[N_TOKENS] = {"token_active", "token_expired", "token_key_digest", "token_refresh", "token_forever"};

    (void)state;
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < N_KEYS; i++) {
        assert_int_equal(bp_apikey_generate(fx.keys[i]), BP_OK);
        recs[i].id = ids[i];
        recs[i].name = ids[i];
        recs[i].prefix = "blnk_x";
        recs[i].scopes = "proxy:read";
        bp_digest(fx.keys[i], BP_APIKEY_LEN, recs[i].digest);
    }
    recs[0].instances = "instance_01J00000000000000000000000,instance_01J00000000000000000000001";
    recs[1].revoked = true;
    recs[2].expires_at = NOW;
    recs[3].instances = ""; /* restricted to no instance at all */

    memset(toks, 0, sizeof(toks));
    for (int i = 0; i < N_TOKENS; i++) {
        make_token(i == TOK_REFRESH ? "blnk_rt_" : "blnk_at_", fx.tokens[i]);
        toks[i].id = tok_ids[i];
        toks[i].client_id = "client_01J00000000000000000000000";
        toks[i].client_name = "Reporting app";
        toks[i].scopes = "proxy:read,proxy:write";
        toks[i].expires_at = NOW + 3600;
        bp_digest(fx.tokens[i], TOKEN_LEN, toks[i].digest);
    }
    toks[TOK_ACTIVE].scopes = "proxy:read";
    toks[TOK_ACTIVE].instances = "instance_01J00000000000000000000001";
    toks[TOK_EXPIRED].expires_at = NOW;
    toks[TOK_FOREVER].expires_at = 0;
    /* Kind confusion, both ways: a token row holding an API key's digest, and a key row holding
     * an access token's digest. Neither may authenticate as the other kind. */
    assert_int_equal(bp_apikey_generate(fx.confused_key), BP_OK);
    bp_digest(fx.confused_key, BP_APIKEY_LEN, toks[TOK_KEY_DIGEST].digest);
    make_token("blnk_at_", fx.tokens[TOK_KEY_DIGEST]);
    bp_digest(fx.tokens[TOK_KEY_DIGEST], TOKEN_LEN, recs[4].digest);
    /* toks[TOK_REFRESH] carries a refresh token's digest as if the store had listed it. */

    assert_int_equal(bp_tables_build(recs, N_KEYS, toks, N_TOKENS, &inst, 1, &fx.t), BP_OK);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    bp_tables_release(fx.t);
    return 0;
}

/* The credential headers of a request with only Authorization (n_headers of them, the first
 * being header). */
static struct bp_auth_headers
authz_only(const char *header, size_t n_headers)
{
    return (struct bp_auth_headers){
        .authorization = header,
        .authorization_len = header ? strlen(header) : 0,
        .n_authorization = n_headers,
    };
}

/* Authorization (may be NULL: none) and X-Blnk-Key (may be NULL: none), n_blnk_key of them. */
static struct bp_auth_headers
both(const char *authorization, const char *blnk_key, size_t n_blnk_key)
{
    return (struct bp_auth_headers){
        .authorization = authorization,
        .authorization_len = authorization ? strlen(authorization) : 0,
        .n_authorization = authorization ? 1 : 0,
        .blnk_key = blnk_key,
        .blnk_key_len = blnk_key ? strlen(blnk_key) : 0,
        .n_blnk_key = n_blnk_key,
    };
}

static bp_err
authn_at(const char *header, size_t n_headers, int64_t now_s, const struct bp_cred **out,
         enum bp_auth_failure *why)
{
    struct bp_auth_headers h = authz_only(header, n_headers);
    return bp_auth_authenticate(fx.t, &h, now_s, out, why);
}

static bp_err
authn_why(const char *header, size_t n_headers, const struct bp_cred **out, enum bp_auth_failure *why)
{
    *out = (const struct bp_cred *)&fx; /* must be overwritten on every outcome */
    *why = (enum bp_auth_failure)99;
    return authn_at(header, n_headers, NOW, out, why);
}

static bp_err
authn(const char *header, size_t n_headers, const struct bp_cred **out)
{
    return authn_at(header, n_headers, NOW, out, NULL);
}

static bp_err
authn_headers(struct bp_auth_headers h, const struct bp_cred **out, enum bp_auth_failure *why)
{
    *out = (const struct bp_cred *)&fx;
    *why = (enum bp_auth_failure)99;
    return bp_auth_authenticate(fx.t, &h, NOW, out, why);
}

static void
test_outcomes_of_the_authorization_header(void **state)
{
    const struct bp_cred *c = NULL;
    enum bp_auth_failure why;
    char h[200];

    (void)state;
    assert_int_equal(authn_why(NULL, 0, &c, &why), BP_ERR_AUTH_MISSING);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_MISSING);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_OK);
    assert_string_equal(bp_cred_id(c), "key_active");
    assert_int_equal(why, BP_AUTH_FAIL_NONE);
    assert_int_equal(atomic_load(&c->used_at), NOW);
    snprintf(h, sizeof(h), "bearer   %s", fx.keys[0]);
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_int_equal(authn_why(h, 2, &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    snprintf(h, sizeof(h), "Basic %s", fx.keys[0]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    assert_int_equal(authn_why("Bearer ", 1, &c, &why), BP_ERR_AUTH_MISSING);
    assert_int_equal(why, BP_AUTH_FAIL_MISSING);
    assert_int_equal(authn("Bearer blnk_123", 1, &c), BP_ERR_AUTH_INVALID_KEY);
    /* Well formed but unknown. */
    snprintf(h, sizeof(h), "Bearer blnk_%064d", 0);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    /* Upper-case hex is not the format. */
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]);
    for (char *p = h + 12; *p; p++) {
        *p = (*p >= 'a' && *p <= 'f') ? (char)(*p - 32) : *p;
    }
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_KEY);
    /* A revoked key: refused as invalid, but the caller learns which key it was. */
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[1]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_non_null(c);
    assert_string_equal(bp_cred_id(c), "key_revoked");
    assert_int_equal(why, BP_AUTH_FAIL_REVOKED);
    assert_int_equal(atomic_load(&c->used_at), 0);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[2]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_EXPIRED_KEY);
    assert_non_null(c);
    assert_string_equal(bp_cred_id(c), "key_expired");
    assert_int_equal(why, BP_AUTH_FAIL_EXPIRED);
    assert_int_equal(authn_at(h, 1, NOW - 1, &c, NULL), BP_OK);
}

static void
test_access_tokens(void **state)
{
    const struct bp_cred *c = NULL;
    enum bp_auth_failure why;
    char h[200];

    (void)state;
    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_ACTIVE]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_OK);
    assert_int_equal(why, BP_AUTH_FAIL_NONE);
    assert_int_equal(c->kind, BP_CRED_ACCESS_TOKEN);
    assert_string_equal(bp_cred_id(c), "token_active");
    assert_string_equal(bp_cred_actor_id(c), "client_01J00000000000000000000000");
    assert_string_equal(bp_cred_name(c), "Reporting app");
    assert_int_equal(atomic_load(&c->used_at), NOW);
    assert_int_equal(bp_auth_check_scope(c, BP_SCOPE_READ), BP_OK);
    assert_int_equal(bp_auth_check_scope(c, BP_SCOPE_WRITE), BP_ERR_AUTH_SCOPE);
    /* The client's instance restriction binds the token. */
    assert_int_equal(bp_auth_check_instance(c, "instance_01J00000000000000000000001", 35), BP_OK);
    assert_int_equal(bp_auth_check_instance(c, "instance_01J00000000000000000000000", 35), BP_ERR_AUTH_INSTANCE);
    /* Up to the last second before expiry, then refused as an invalid token (not an expired key). */
    assert_int_equal(authn_at(h, 1, NOW + 3599, &c, NULL), BP_OK);
    assert_int_equal(authn_at(h, 1, NOW + 3600, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_string_equal(bp_cred_id(c), "token_active");
    assert_int_equal(why, BP_AUTH_FAIL_EXPIRED);

    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_EXPIRED]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_non_null(c);
    assert_string_equal(bp_cred_id(c), "token_expired");
    assert_int_equal(why, BP_AUTH_FAIL_EXPIRED);
    assert_int_equal(atomic_load(&c->used_at), 0);

    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_FOREVER]);
    assert_int_equal(authn_at(h, 1, INT64_MAX, &c, &why), BP_OK);
    assert_string_equal(bp_cred_id(c), "token_forever");
    assert_null(bp_cred_instances(c));
}

static void
test_unknown_and_malformed_tokens(void **state)
{
    const struct bp_cred *c = NULL;
    enum bp_auth_failure why;
    char h[200];
    char tok[TOKEN_LEN + 1];

    (void)state;
    make_token("blnk_at_", tok);
    snprintf(h, sizeof(h), "Bearer %s", tok);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    assert_int_equal(authn_why("Bearer blnk_at_abcdef", 1, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    assert_int_equal(authn("Bearer blnk_at_", 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
    /* One hex digit too many, upper-case hex, a non-hex byte: all malformed. */
    snprintf(h, sizeof(h), "Bearer %sa", fx.tokens[TOK_ACTIVE]);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_ACTIVE]);
    h[strlen(h) - 1] = 'A';
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
    h[strlen(h) - 1] = 'g';
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
    /* A prefix of a valid token is not that token. */
    snprintf(h, sizeof(h), "Bearer %.*s", TOKEN_LEN - 1, fx.tokens[TOK_ACTIVE]);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
}

static void
test_refresh_tokens_never_authorise(void **state)
{
    const struct bp_cred *c = NULL;
    enum bp_auth_failure why;
    char h[200];

    (void)state;
    /* Even with its digest in the table, a refresh token is refused. */
    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_REFRESH]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    assert_int_equal(authn("Bearer blnk_rt_00", 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
}

static void
test_keys_and_tokens_never_stand_in_for_each_other(void **state)
{
    const struct bp_cred *c = NULL;
    enum bp_auth_failure why;
    char h[200];

    (void)state;
    /* An API key whose digest sits in the table as an access token. */
    snprintf(h, sizeof(h), "Bearer %s", fx.confused_key);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    /* An access token whose digest sits in the table as an API key. */
    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_KEY_DIGEST]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    /* An API key's hex behind the access-token prefix is just an unknown token. */
    snprintf(h, sizeof(h), "Bearer blnk_at_%.64s", fx.keys[0] + 5);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
    /* And a token's hex behind the key prefix is an unknown key. */
    snprintf(h, sizeof(h), "Bearer blnk_%.64s", fx.tokens[TOK_ACTIVE] + 8);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_KEY);
}

static void
test_scope_and_instance_checks(void **state)
{
    const struct bp_cred *c = NULL;
    char h[200];

    (void)state;
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]);
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_int_equal(c->kind, BP_CRED_API_KEY);
    assert_string_equal(bp_cred_actor_id(c), "key_active");
    assert_string_equal(bp_cred_name(c), "key_active");
    assert_int_equal(bp_auth_check_scope(c, BP_SCOPE_READ), BP_OK);
    assert_int_equal(bp_auth_check_scope(c, BP_SCOPE_WRITE), BP_ERR_AUTH_SCOPE);
    assert_int_equal(bp_auth_check_instance(c, "instance_01J00000000000000000000001", 35), BP_OK);
    assert_int_equal(bp_auth_check_instance(c, "instance_01J00000000000000000000002", 35), BP_ERR_AUTH_INSTANCE);
    /* A prefix of an allowed id is not that id. */
    assert_int_equal(bp_auth_check_instance(c, "instance_01J0000000000000000000000", 34), BP_ERR_AUTH_INSTANCE);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[3]);
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_int_equal(bp_auth_check_instance(c, "instance_01J00000000000000000000000", 35), BP_ERR_AUTH_INSTANCE);
}

static void
test_scope_star_covers_everything(void **state)
{
    unsigned bits = 0;
    struct bp_cred c = {.scopes = 0};

    (void)state;
    assert_int_equal(bp_scopes_parse("*", &bits), BP_OK);
    c.scopes = bits;
    assert_int_equal(bp_auth_check_scope(&c, BP_SCOPE_READ), BP_OK);
    assert_int_equal(bp_auth_check_scope(&c, BP_SCOPE_WRITE), BP_OK);
    assert_int_equal(bp_scopes_parse("proxy:read,proxy:admin", &bits), BP_ERR_INVALID);
    assert_int_equal(bp_scopes_parse("proxy:read,", &bits), BP_ERR_INVALID);
    assert_int_equal(bp_scopes_parse("", &bits), BP_ERR_INVALID);
}

/* Issue 8 item 2 (DESIGN §2): the official SDKs send their key in X-Blnk-Key. */
static void
test_credential_format(void **state)
{
    char t[TOKEN_LEN + 2];

    (void)state;
    assert_true(bp_auth_is_credential(fx.keys[0], BP_APIKEY_LEN));
    assert_true(bp_auth_is_credential(fx.tokens[TOK_ACTIVE], TOKEN_LEN));
    /* Not credentials: a refresh token, a client secret, a Core secret, near misses. */
    assert_false(bp_auth_is_credential(fx.tokens[TOK_REFRESH], TOKEN_LEN));
    snprintf(t, sizeof(t), "blnk_cs_%.64s", fx.tokens[TOK_ACTIVE] + 8);
    assert_false(bp_auth_is_credential(t, TOKEN_LEN));
    assert_false(bp_auth_is_credential("my-core-master-key", 18));
    assert_false(bp_auth_is_credential(fx.keys[0], BP_APIKEY_LEN - 1));
    assert_false(bp_auth_is_credential(fx.tokens[TOK_ACTIVE], TOKEN_LEN - 1));
    snprintf(t, sizeof(t), "%.72sa", fx.tokens[TOK_ACTIVE]);
    assert_false(bp_auth_is_credential(t, TOKEN_LEN + 1));
    memcpy(t, fx.keys[0], BP_APIKEY_LEN + 1);
    t[BP_APIKEY_LEN - 1] = 'A';
    assert_false(bp_auth_is_credential(t, BP_APIKEY_LEN));
    snprintf(t, sizeof(t), "Bearer %.60s", fx.keys[0]);
    assert_false(bp_auth_is_credential(t, strlen(t)));
    assert_false(bp_auth_is_credential("", 0));
    assert_false(bp_auth_is_credential(NULL, 0));
}

static void
test_x_blnk_key_carries_a_credential(void **state)
{
    const struct bp_cred *c = NULL;
    enum bp_auth_failure why;
    char h[200];
    char other[BP_APIKEY_LEN + 1];

    (void)state;
    /* An API key or an access token alone in X-Blnk-Key: exactly like Bearer. */
    assert_int_equal(authn_headers(both(NULL, fx.keys[0], 1), &c, &why), BP_OK);
    assert_string_equal(bp_cred_id(c), "key_active");
    assert_int_equal(why, BP_AUTH_FAIL_NONE);
    assert_int_equal(atomic_load(&c->used_at), NOW);
    assert_int_equal(authn_headers(both(NULL, fx.tokens[TOK_ACTIVE], 1), &c, &why), BP_OK);
    assert_string_equal(bp_cred_id(c), "token_active");
    /* Refusals are those of the same credential as a Bearer token. */
    assert_int_equal(authn_headers(both(NULL, fx.keys[1], 1), &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_string_equal(bp_cred_id(c), "key_revoked");
    assert_int_equal(why, BP_AUTH_FAIL_REVOKED);
    assert_int_equal(authn_headers(both(NULL, fx.keys[2], 1), &c, &why), BP_ERR_AUTH_EXPIRED_KEY);
    assert_int_equal(authn_headers(both(NULL, fx.tokens[TOK_EXPIRED], 1), &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_int_equal(why, BP_AUTH_FAIL_EXPIRED);
    assert_int_equal(bp_apikey_generate(other), BP_OK);
    assert_int_equal(authn_headers(both(NULL, other, 1), &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_UNKNOWN);
    /* Anything else there is not a credential: the request has none. */
    assert_int_equal(authn_headers(both(NULL, "core-master-secret", 1), &c, &why), BP_ERR_AUTH_MISSING);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_MISSING);
    assert_int_equal(authn_headers(both(NULL, fx.tokens[TOK_REFRESH], 1), &c, &why), BP_ERR_AUTH_MISSING);
    assert_null(c);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]);
    assert_int_equal(authn_headers(both(NULL, h, 1), &c, &why), BP_ERR_AUTH_MISSING);
    assert_int_equal(authn_headers(both(NULL, "", 1), &c, &why), BP_ERR_AUTH_MISSING);
    /* Several X-Blnk-Key headers are never a credential, whatever the first holds. */
    assert_int_equal(authn_headers(both(NULL, fx.keys[0], 2), &c, &why), BP_ERR_AUTH_MISSING);
    assert_null(c);
    assert_int_equal(why, BP_AUTH_FAIL_MISSING);
}

static void
test_authorization_wins_over_x_blnk_key(void **state)
{
    const struct bp_cred *c = NULL;
    enum bp_auth_failure why;
    char h[200];

    (void)state;
    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_FOREVER]);
    assert_int_equal(authn_headers(both(h, fx.keys[0], 1), &c, &why), BP_OK);
    assert_string_equal(bp_cred_id(c), "token_forever");
    /* An Authorization that fails is the answer, even with a valid key in X-Blnk-Key. */
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[1]);
    assert_int_equal(authn_headers(both(h, fx.keys[0], 1), &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_string_equal(bp_cred_id(c), "key_revoked");
    assert_int_equal(authn_headers(both("Bearer ", fx.keys[0], 1), &c, &why), BP_ERR_AUTH_MISSING);
    assert_null(c);
    assert_int_equal(authn_headers(both("Basic eDp5", fx.keys[0], 1), &c, &why), BP_ERR_AUTH_INVALID_KEY);
    assert_null(c);
}

/* DESIGN §2: without instance_id, a credential restricted to exactly one instance means it. */
static void
test_implied_instance(void **state)
{
    const struct bp_cred *c = NULL;
    const char *id = "untouched";
    const char *why = NULL;
    char h[200];

    (void)state;
    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_ACTIVE]);
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_int_equal(bp_auth_implied_instance(c, &id, &why), BP_OK);
    assert_string_equal(id, "instance_01J00000000000000000000001");
    assert_null(why);

    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]); /* two instances */
    assert_int_equal(authn(h, 1, &c), BP_OK);
    id = "untouched";
    assert_int_equal(bp_auth_implied_instance(c, &id, &why), BP_ERR_MISSING_INSTANCE_ID);
    assert_string_equal(id, "untouched");
    assert_string_equal(why, "instance_id query parameter is required: this credential may use more than one instance");

    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_FOREVER]); /* unrestricted */
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_int_equal(bp_auth_implied_instance(c, &id, &why), BP_ERR_MISSING_INSTANCE_ID);
    assert_string_equal(why, "instance_id query parameter is required: this credential may use every instance");

    snprintf(h, sizeof(h), "Bearer %s", fx.keys[3]); /* restricted to none */
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_int_equal(bp_auth_implied_instance(c, &id, &why), BP_ERR_MISSING_INSTANCE_ID);
    assert_string_equal(why, "instance_id query parameter is required: this credential may use no instance");
    assert_string_equal(id, "untouched");
    assert_int_equal(bp_auth_implied_instance(c, &id, NULL), BP_ERR_MISSING_INSTANCE_ID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcomes_of_the_authorization_header),
        cmocka_unit_test(test_access_tokens),
        cmocka_unit_test(test_unknown_and_malformed_tokens),
        cmocka_unit_test(test_refresh_tokens_never_authorise),
        cmocka_unit_test(test_keys_and_tokens_never_stand_in_for_each_other),
        cmocka_unit_test(test_scope_and_instance_checks),
        cmocka_unit_test(test_scope_star_covers_everything),
        cmocka_unit_test(test_credential_format),
        cmocka_unit_test(test_x_blnk_key_carries_a_credential),
        cmocka_unit_test(test_authorization_wins_over_x_blnk_key),
        cmocka_unit_test(test_implied_instance),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
