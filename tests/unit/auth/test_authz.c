/* Request-path authentication and authorisation against an in-memory tables snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "router/router.h"
#include "tables/tables.h"

#define NOW 1800000000

struct fixture {
    char keys[4][BP_APIKEY_LEN + 1];
    struct bp_tables *t;
};

static struct fixture fx;

static int
setup(void **state)
{
    struct bp_key_rec recs[4];
    struct bp_instance_rec inst = {.id = "instance_01J00000000000000000000000", .name = "a",
                                   .url = "http://127.0.0.1:1", .enabled = true};
    char *ids[4] = {"key_active", "key_revoked", "key_expired", "key_nowhere"};

    (void)state;
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < 4; i++) {
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
    assert_int_equal(bp_tables_build(recs, 4, NULL, 0, &inst, 1, &fx.t), BP_OK);
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
authn(const char *header, size_t n_headers, const struct bp_cred **out)
{
    return bp_auth_authenticate(fx.t, header, header ? strlen(header) : 0, n_headers, NOW, out, NULL);
}

static void
test_outcomes_of_the_authorization_header(void **state)
{
    const struct bp_cred *c = NULL;
    char h[200];

    (void)state;
    assert_int_equal(authn(NULL, 0, &c), BP_ERR_AUTH_MISSING);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]);
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_string_equal(c->id, "key_active");
    assert_int_equal(atomic_load(&c->used_at), NOW);
    snprintf(h, sizeof(h), "bearer   %s", fx.keys[0]);
    assert_int_equal(authn(h, 1, &c), BP_OK);
    assert_int_equal(authn(h, 2, &c), BP_ERR_AUTH_INVALID_KEY);
    snprintf(h, sizeof(h), "Basic %s", fx.keys[0]);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_KEY);
    assert_int_equal(authn("Bearer ", 1, &c), BP_ERR_AUTH_MISSING);
    assert_int_equal(authn("Bearer blnk_123", 1, &c), BP_ERR_AUTH_INVALID_KEY);
    assert_int_equal(authn("Bearer blnk_at_abcdef", 1, &c), BP_ERR_AUTH_INVALID_TOKEN);
    /* Well formed but unknown. */
    snprintf(h, sizeof(h), "Bearer blnk_%064d", 0);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_KEY);
    /* Upper-case hex is not the format. */
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]);
    for (char *p = h + 12; *p; p++) {
        *p = (*p >= 'a' && *p <= 'f') ? (char)(*p - 32) : *p;
    }
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_KEY);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[1]);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_INVALID_KEY);
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[2]);
    assert_int_equal(authn(h, 1, &c), BP_ERR_AUTH_EXPIRED_KEY);
    assert_int_equal(bp_auth_authenticate(fx.t, h, strlen(h), 1, NOW - 1, &c, NULL), BP_OK);
}

static void
test_scope_and_instance_checks(void **state)
{
    const struct bp_cred *c = NULL;
    char h[200];

    (void)state;
    snprintf(h, sizeof(h), "Bearer %s", fx.keys[0]);
    assert_int_equal(authn(h, 1, &c), BP_OK);
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
        cmocka_unit_test(test_scope_and_instance_checks),
        cmocka_unit_test(test_scope_star_covers_everything),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
