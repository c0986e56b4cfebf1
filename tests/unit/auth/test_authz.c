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
#include "tables/tables.h"

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

static bp_err
authn_why(const char *header, size_t n_headers, const struct bp_cred **out, enum bp_auth_failure *why)
{
    *out = (const struct bp_cred *)&fx; /* must be overwritten on every outcome */
    *why = (enum bp_auth_failure)99;
    return bp_auth_authenticate(fx.t, header, header ? strlen(header) : 0, n_headers, NOW, out, why);
}

static bp_err
authn(const char *header, size_t n_headers, const struct bp_cred **out)
{
    return bp_auth_authenticate(fx.t, header, header ? strlen(header) : 0, n_headers, NOW, out, NULL);
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
    assert_string_equal(c->id, "key_active");
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
    assert_string_equal(c->id, "key_revoked");
    assert_int_equal(why, BP_AUTH_FAIL_REVOKED);
    assert_int_equal(atomic_load(&c->used_at), 0);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[2]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_EXPIRED_KEY);
    assert_non_null(c);
    assert_string_equal(c->id, "key_expired");
    assert_int_equal(why, BP_AUTH_FAIL_EXPIRED);
    assert_int_equal(bp_auth_authenticate(fx.t, h, strlen(h), 1, NOW - 1, &c, NULL), BP_OK);
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
    assert_string_equal(c->id, "token_active");
    assert_string_equal(c->actor_id, "client_01J00000000000000000000000");
    assert_string_equal(c->name, "Reporting app");
    assert_int_equal(atomic_load(&c->used_at), NOW);
    assert_int_equal(bp_auth_check_scope(c, BP_SCOPE_READ), BP_OK);
    assert_int_equal(bp_auth_check_scope(c, BP_SCOPE_WRITE), BP_ERR_AUTH_SCOPE);
    /* The client's instance restriction binds the token. */
    assert_int_equal(bp_auth_check_instance(c, "instance_01J00000000000000000000001", 35), BP_OK);
    assert_int_equal(bp_auth_check_instance(c, "instance_01J00000000000000000000000", 35), BP_ERR_AUTH_INSTANCE);
    /* Up to the last second before expiry, then refused as an invalid token (not an expired key). */
    assert_int_equal(bp_auth_authenticate(fx.t, h, strlen(h), 1, NOW + 3599, &c, NULL), BP_OK);
    assert_int_equal(bp_auth_authenticate(fx.t, h, strlen(h), 1, NOW + 3600, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_string_equal(c->id, "token_active");
    assert_int_equal(why, BP_AUTH_FAIL_EXPIRED);

    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_EXPIRED]);
    assert_int_equal(authn_why(h, 1, &c, &why), BP_ERR_AUTH_INVALID_TOKEN);
    assert_non_null(c);
    assert_string_equal(c->id, "token_expired");
    assert_int_equal(why, BP_AUTH_FAIL_EXPIRED);
    assert_int_equal(atomic_load(&c->used_at), 0);

    snprintf(h, sizeof(h), "Bearer %s", fx.tokens[TOK_FOREVER]);
    assert_int_equal(bp_auth_authenticate(fx.t, h, strlen(h), 1, INT64_MAX, &c, &why), BP_OK);
    assert_string_equal(c->id, "token_forever");
    assert_null(c->instances);
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
    assert_string_equal(c->actor_id, "key_active");
    assert_string_equal(c->name, "key_active");
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
