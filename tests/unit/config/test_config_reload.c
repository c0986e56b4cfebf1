/* Tests for bp_config_reload_merge (issue 8, item 6): which settings a SIGHUP applies, which keep
 * their running value until a restart, and that every difference is reported by name. */

/* cmocka needs these headers before it, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/settings-int.h"
#include "core/log.h"
#include "lib/alloc.h"

static void
set(struct bp_config *c, const char *key, const char *text)
{
    char why[256];
    const struct bp_setting *s = bp_config__find_key(key);
    assert_non_null(s);
    assert_int_equal(bp_config__set_text(s, text, c, why, sizeof(why)), BP_OK);
}

static void
load_routes(struct bp_config *c, const char *json)
{
    char err[256];
    char doc[512];
    snprintf(doc, sizeof(doc), "{\"routes\": %s}", json);
    assert_int_equal(bp_config__load_json_text(doc, strlen(doc), "t.json", c, err, sizeof(err)), BP_OK);
}

static const struct bp_config_change *
find(const struct bp_config_change *ch, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ch[i].key, key) == 0) {
            return &ch[i];
        }
    }
    return NULL;
}

static void
test_same_configuration_changes_nothing(void **state)
{
    struct bp_config a;
    struct bp_config b;
    struct bp_config_change ch[BP_CONFIG_MAX_CHANGES];
    (void)state;

    bp_config__defaults(&a);
    bp_config__defaults(&b);
    load_routes(&a, "{\"add\": [{\"method\": \"GET\", \"path\": \"/x/:id\"}]}");
    load_routes(&b, "{\"add\": [{\"method\": \"GET\", \"path\": \"/x/:id\"}]}");
    assert_int_equal(bp_config_reload_merge(&a, &b, ch), 0);
    bp_config_cleanup(&a);
    bp_config_cleanup(&b);
}

static void
test_live_settings_change_restart_settings_stay(void **state)
{
    struct bp_config running;
    struct bp_config next;
    struct bp_config_change ch[BP_CONFIG_MAX_CHANGES];
    const struct bp_config_change *c;
    size_t n;
    (void)state;

    bp_config__defaults(&running);
    set(&running, "workers", "2");
    bp_config__defaults(&next);
    set(&next, "workers", "8");
    set(&next, "listen", "0.0.0.0:9000");
    set(&next, "db", "/tmp/other.db");
    set(&next, "max_body_bytes", "2KiB");
    set(&next, "log_level", "warn");
    set(&next, "audit.reads", "sync");
    set(&next, "header_timeout", "3s");
    set(&next, "max_connections", "50");
    set(&next, "oauth.issuer", "https://proxy.example");
    set(&next, "audit.spool", "/tmp/spool");
    set(&next, "reload_interval", "1s");
    load_routes(&next, "{\"remove\": [\"DELETE /reconciliation/matching-rules/:id\"]}");

    n = bp_config_reload_merge(&running, &next, ch);
    assert_int_equal(n, 12);
    /* Table order, then routes. */
    assert_string_equal(ch[0].key, "db");
    assert_string_equal(ch[1].key, "listen");
    assert_string_equal(ch[2].key, "workers");
    assert_string_equal(ch[n - 1].key, "routes");

    for (size_t i = 0; i < n; i++) {
        const char *restart[] = {"db", "listen", "workers", "reload_interval", "oauth.issuer", "audit.spool"};
        bool want_live = true;
        for (size_t j = 0; j < sizeof(restart) / sizeof(restart[0]); j++) {
            want_live = want_live && strcmp(ch[i].key, restart[j]) != 0;
        }
        assert_int_equal(ch[i].applied, want_live);
    }
    c = find(ch, n, "max_body_bytes");
    assert_non_null(c);
    assert_true(c->applied);
    assert_non_null(find(ch, n, "audit.reads"));
    assert_null(find(ch, n, "audit.writes"));

    /* next now describes what runs: live values from the file, restart ones as running. */
    assert_int_equal(next.workers, 2);
    assert_string_equal(next.listen_host, "127.0.0.1");
    assert_ptr_not_equal(next.listen_host, running.listen_host);
    assert_int_equal(next.listen_port, 8080);
    assert_string_equal(next.db, "./blnkproxy.db");
    assert_null(next.oauth_issuer);
    assert_null(next.audit_spool);
    assert_int_equal(next.reload_interval_ms, 500);
    assert_int_equal(next.max_body_bytes, 2048);
    assert_int_equal(next.log_level, BP_LOG_WARN);
    assert_int_equal(next.audit_reads, BP_AUDIT_SYNC);
    assert_int_equal(next.header_timeout_ms, 3000);
    assert_int_equal(next.max_connections, 50);
    assert_int_equal(next.n_routes_remove, 1);

    /* Merging again against what now runs reports only what the file still asks in vain. */
    {
        struct bp_config again;
        bp_config__defaults(&again);
        set(&again, "workers", "8");
        set(&again, "max_body_bytes", "2KiB");
        set(&again, "log_level", "warn");
        set(&again, "audit.reads", "sync");
        set(&again, "header_timeout", "3s");
        set(&again, "max_connections", "50");
        load_routes(&again, "{\"remove\": [\"DELETE /reconciliation/matching-rules/:id\"]}");
        n = bp_config_reload_merge(&next, &again, ch);
        assert_int_equal(n, 1);
        assert_string_equal(ch[0].key, "workers");
        assert_false(ch[0].applied);
        bp_config_cleanup(&again);
    }
    bp_config_cleanup(&running);
    bp_config_cleanup(&next);
}

/* A string that was set while running and is absent from the new file counts as changed. */
static void
test_string_and_route_differences(void **state)
{
    struct bp_config running;
    struct bp_config next;
    struct bp_config_change ch[BP_CONFIG_MAX_CHANGES];
    size_t n;
    (void)state;

    bp_config__defaults(&running);
    set(&running, "audit.spool", "/tmp/a");
    load_routes(&running, "{\"add\": [{\"method\": \"GET\", \"path\": \"/x/:id\", \"action\": \"A\"}]}");
    bp_config__defaults(&next);
    load_routes(&next, "{\"add\": [{\"method\": \"GET\", \"path\": \"/x/:id\", \"action\": \"B\"}]}");
    n = bp_config_reload_merge(&running, &next, ch);
    assert_int_equal(n, 2);
    assert_string_equal(ch[0].key, "audit.spool");
    assert_false(ch[0].applied);
    assert_string_equal(next.audit_spool, "/tmp/a");
    assert_string_equal(ch[1].key, "routes");
    assert_true(ch[1].applied);
    assert_string_equal(next.routes_add[0].action, "B");
    bp_config_cleanup(&running);
    bp_config_cleanup(&next);

    /* Flags: large_body alone is a difference too. */
    bp_config__defaults(&running);
    bp_config__defaults(&next);
    load_routes(&running, "{\"add\": [{\"method\": \"POST\", \"path\": \"/up\"}]}");
    load_routes(&next, "{\"add\": [{\"method\": \"POST\", \"path\": \"/up\", \"large_body\": true}]}");
    n = bp_config_reload_merge(&running, &next, ch);
    assert_int_equal(n, 1);
    assert_string_equal(ch[0].key, "routes");
    bp_config_cleanup(&running);
    bp_config_cleanup(&next);
}

/* Every row says whether it applies live; the issue names these as live. */
static void
test_live_rows(void **state)
{
    static const char *const live[] = {
        "upstream_connect_timeout", "upstream_timeout", "max_header_bytes", "max_headers",
        "max_connections", "max_body_bytes", "max_upload_bytes", "max_response_bytes",
        "idle_timeout", "header_timeout", "shutdown_timeout", "log_level", "max_connections_per_peer",
        "body_timeout", "body_min_rate", "max_buffered_bytes",
        "audit.writes", "audit.reads", "health.failures", "health.cooldown", "health.probe_interval", "health.probe_instances",
        "trusted_proxies", "tls_cert", "tls_key", "rate_limit.default", "rate_limit.default_burst",
        "rate_limit.auth_failures", "rate_limit.auth_failure_burst", "idempotency.ttl", "idempotency.lease",
        "idempotency.max_answer_bytes",
    };
    (void)state;

    for (size_t i = 0; i < bp_config__n_settings; i++) {
        const struct bp_setting *s = &bp_config__settings[i];
        bool want = false;
        for (size_t j = 0; j < sizeof(live) / sizeof(live[0]); j++) {
            want = want || strcmp(s->key, live[j]) == 0;
        }
        assert_int_equal(s->live, want);
    }
    assert_true(bp_config__n_settings + 1 <= BP_CONFIG_MAX_CHANGES);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_configuration_changes_nothing),
        cmocka_unit_test(test_live_settings_change_restart_settings_stay),
        cmocka_unit_test(test_string_and_route_differences),
        cmocka_unit_test(test_live_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
