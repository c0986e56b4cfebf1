/* clang-format off: cmocka needs these four headers first, in this order */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "store/pg-int.h"
#include "store/store.h"

/* DSN masking (store_dsn.c): no password of a PostgreSQL DSN may reach any output. */

static void
expect_mask(const char *dsn, const char *want)
{
    char out[512];

    bp_store_dsn_mask(dsn, out, sizeof(out));
    assert_string_equal(out, want);
}

static void
test_mask_userinfo(void **state)
{
    expect_mask("postgres://u:hunter2@db.example:5432/bp", "postgres://u:***@db.example:5432/bp");
    expect_mask("postgresql://u:hunter2@db/bp?sslmode=verify-full&sslrootcert=/etc/ca.pem",
                "postgresql://u:***@db/bp?sslmode=verify-full&sslrootcert=/etc/ca.pem");
    /* Percent-encoded or not, the whole password goes. */
    expect_mask("postgres://u:p%40ss%3Aw0rd@db/bp", "postgres://u:***@db/bp");
    /* libpq ends the user info at the first '@' before a '/', so a '?' belongs to the password. */
    expect_mask("postgres://u:pa?ss@db/bp", "postgres://u:***@db/bp");
    /* Nothing to hide. */
    expect_mask("postgres://u@db/bp", "postgres://u@db/bp");
    expect_mask("postgres://db:5432/bp", "postgres://db:5432/bp");
    expect_mask("postgres:///bp?host=/run/postgresql", "postgres:///bp?host=/run/postgresql");
    expect_mask("postgres://u:@db/bp", "postgres://u:@db/bp");
    /* A SQLite path is not a URI and holds no password. */
    expect_mask("./blnkproxy.db", "./blnkproxy.db");
    expect_mask("sqlite:/var/lib/x:y@z.db", "sqlite:/var/lib/x:y@z.db");
}

static void
test_mask_query_parameters(void **state)
{
    expect_mask("postgres://db/bp?password=hunter2", "postgres://db/bp?password=***");
    expect_mask("postgres://db/bp?user=u&password=hun%20ter&sslmode=require",
                "postgres://db/bp?user=u&password=***&sslmode=require");
    /* libpq decodes parameter names too. */
    expect_mask("postgres://db/bp?pass%77ord=hunter2", "postgres://db/bp?pass%77ord=***");
    expect_mask("postgres://db/bp?sslpassword=keypw&sslkey=/k.pem", "postgres://db/bp?sslpassword=***&sslkey=/k.pem");
    expect_mask("postgres://u:a@db/bp?password=b", "postgres://u:***@db/bp?password=***");
}

/* libpq's key/value form is no DSN blnkproxy takes (it would be read as a SQLite path), but someone
 * pasting one must not see its password echoed in the "no store at …" message: serve --check used
 * to mask it, and every message now goes through bp_store_dsn_mask. */
static void
test_mask_keyword_value_form(void **state)
{
    expect_mask("host=db.example password=hunter2-kv user=blnk", "host=db.example password=*** user=blnk");
    expect_mask("host=db password = 'hun ter\\'s' user=u", "host=db password = *** user=u");
    expect_mask("sslpassword=k3y dbname=bp", "sslpassword=*** dbname=bp");
    expect_mask("password=", "password=");
    /* A path that merely contains the word is left alone: no '=' follows it. */
    expect_mask("/var/lib/password/blnkproxy.db", "/var/lib/password/blnkproxy.db");
}

/* A password with an unescaped '/' or '@' is not where libpq looks for it: the wide reading masks
 * it anyway, and the DSN counts as ambiguous (libpq's message would quote pieces of it). */
static void
test_mask_unescaped_password(void **state)
{
    expect_mask("postgres://u:pa/ss@db/bp", "postgres://u:***@db/bp");
    expect_mask("postgres://u:p@ss@db/bp", "postgres://u:***@db/bp");
    assert_true(bp_store__dsn_ambiguous("postgres://u:pa/ss@db/bp"));
    assert_true(bp_store__dsn_ambiguous("postgres://u:p@ss@db/bp"));
    assert_false(bp_store__dsn_ambiguous("postgres://u:p%40ss@db/bp"));
    assert_false(bp_store__dsn_ambiguous("postgres://db/bp"));
}

/* A cut output never holds part of a password. */
static void
test_mask_truncation(void **state)
{
    const char *dsn = "postgres://u:hunter2@db/bp";
    char out[64];

    for (size_t cap = 1; cap < sizeof(out); cap++) {
        bp_store_dsn_mask(dsn, out, cap);
        assert_true(strlen(out) < cap);
        assert_null(strstr(out, "hu"));
        assert_null(strstr(out, "r2"));
    }
}

static void
test_scrub_messages(void **state)
{
    char msg[256];

    strcpy(msg, "invalid percent-encoded token: \"hun%zzter2\"");
    bp_store__dsn_scrub("postgres://u:hun%zzter2@db/bp", msg, sizeof(msg));
    assert_string_equal(msg, "invalid percent-encoded token: \"***\"");
    /* The decoded form too. */
    strcpy(msg, "password \"p@ss\" rejected; p@ss again");
    bp_store__dsn_scrub("postgres://u:p%40ss@db/bp", msg, sizeof(msg));
    assert_string_equal(msg, "password \"***\" rejected; *** again");
    /* A password of stars cannot loop; a message in a small buffer is cut, never overflowed. */
    strcpy(msg, "a * b");
    bp_store__dsn_scrub("postgres://u:*@db/bp", msg, sizeof(msg));
    assert_string_equal(msg, "a *** b");
    strcpy(msg, "xxxxxxxx");
    bp_store__dsn_scrub("postgres://u:x@db/bp", msg, 10);
    assert_true(strlen(msg) < 10);
    assert_null(strchr(msg, 'x'));
}

static void
test_is_pg(void **state)
{
    assert_true(bp_store_dsn_is_pg("postgres://db/bp"));
    assert_true(bp_store_dsn_is_pg("postgresql://db/bp"));
    assert_false(bp_store_dsn_is_pg("postgres:db"));
    assert_false(bp_store_dsn_is_pg("./postgres://x"));
    assert_false(bp_store_dsn_is_pg("sqlite:x.db"));
    assert_false(bp_store_dsn_is_pg(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_userinfo),
        cmocka_unit_test(test_mask_query_parameters),
        cmocka_unit_test(test_mask_keyword_value_form),
        cmocka_unit_test(test_mask_unescaped_password),
        cmocka_unit_test(test_mask_truncation),
        cmocka_unit_test(test_scrub_messages),
        cmocka_unit_test(test_is_pg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
