/* Tests for config/: defaults, source precedence (file < env < flag), each value type's syntax
 * and bounds, strictness about unknown names, and error messages that name their source.
 *
 * Every test runs in a fresh empty working directory (so ./blnkproxy.json is under test control)
 * with every BLNKPROXY_* variable unset before and after. */

/* cmocka needs these headers before it, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/settings-int.h"
#include "core/log.h"

#define MAX_TEMPS 8

static char test_dir[64];
static char old_cwd[4096];
static char *temps[MAX_TEMPS];
static size_t n_temps;

static void
unset_all_env(void)
{
    for (size_t i = 0; i < bp_config__n_settings; i++) {
        unsetenv(bp_config__settings[i].env);
    }
    unsetenv("BLNKPROXY_CONFIG");
}

static int
setup(void **state)
{
    unset_all_env();
    if (getcwd(old_cwd, sizeof(old_cwd)) == NULL) {
        return -1;
    }
    snprintf(test_dir, sizeof(test_dir), "/tmp/bp_config_test_XXXXXX");
    if (mkdtemp(test_dir) == NULL || chdir(test_dir) != 0) {
        return -1;
    }
    n_temps = 0;
    return 0;
}

static int
teardown(void **state)
{
    unset_all_env();
    for (size_t i = 0; i < n_temps; i++) {
        unlink(temps[i]);
        free(temps[i]);
    }
    n_temps = 0;
    unlink("blnkproxy.json");
    if (chdir(old_cwd) != 0) {
        return -1;
    }
    return rmdir(test_dir);
}

/* Writes content to a new file under /tmp; removed by teardown. */
static const char *
temp_file(const char *content)
{
    char path[] = "/tmp/bp_config_XXXXXX";
    int fd = mkstemp(path);
    size_t len = strlen(content);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    assert_true(n_temps < MAX_TEMPS);
    temps[n_temps] = strdup(path);
    return temps[n_temps++];
}

static void
write_cwd_file(const char *name, const char *content)
{
    FILE *f = fopen(name, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    fclose(f);
}

/* Loads with the given NULL-terminated flags. */
static bp_err
load(struct bp_config *c, char *err, size_t err_len, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;

    va_start(ap, err_len);
    for (;;) {
        char *a = va_arg(ap, char *);
        if (a == NULL) {
            break;
        }
        assert_true(argc < 32);
        argv[argc++] = a;
    }
    va_end(ap);
    return bp_config_load(argc, argv, c, err, err_len);
}

/* Expects loading to fail with exactly msg, and the output struct to be left as it was. */
static void
expect_fail_exact(const char *msg, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    struct bp_config c;
    struct bp_config before;
    char err[512] = "";

    va_start(ap, msg);
    for (;;) {
        char *a = va_arg(ap, char *);
        if (a == NULL) {
            break;
        }
        argv[argc++] = a;
    }
    va_end(ap);
    memset(&c, 0x5a, sizeof(c));
    memcpy(&before, &c, sizeof(c));
    assert_int_equal(bp_config_load(argc, argv, &c, err, sizeof(err)), BP_ERR_INVALID);
    assert_string_equal(err, msg);
    assert_memory_equal(&c, &before, sizeof(c));
}

static bp_err
set_key(struct bp_config *c, const char *key, const char *text)
{
    char why[256];
    const struct bp_setting *s = bp_config__find_key(key);
    assert_non_null(s);
    return bp_config__set_text(s, text, c, why, sizeof(why));
}

static void
test_defaults(void **state)
{
    struct bp_config c;
    char err[256];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want_workers = cpus < 1 ? 1 : (cpus > 256 ? 256 : (int)cpus);

    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_string_equal(c.db, "./blnkproxy.db");
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_int_equal(c.workers, want_workers);
    assert_int_equal(c.upstream_connect_timeout_ms, 5000);
    assert_int_equal(c.upstream_timeout_ms, 30000);
    assert_int_equal(c.max_head_bytes, 32 * 1024);
    assert_int_equal(c.max_headers, 100);
    assert_int_equal(c.max_body_bytes, 1024 * 1024);
    assert_int_equal(c.max_upload_bytes, 32 * 1024 * 1024);
    assert_int_equal(c.max_response_bytes, 64 * 1024 * 1024);
    assert_int_equal(c.idle_timeout_ms, 60000);
    assert_int_equal(c.header_timeout_ms, 10000);
    assert_int_equal(c.shutdown_timeout_ms, 10000);
    assert_int_equal(c.reload_interval_ms, 500);
    assert_int_equal(c.log_level, BP_LOG_INFO);
    bp_config_cleanup(&c);
    assert_null(c.db);
    assert_null(c.listen_host);
    bp_config_cleanup(&c); /* idempotent */
    bp_config_cleanup(NULL);
}

/* The table is what docs/CONFIG.md and the flag/env naming rule are checked against. */
static void
test_table_naming_rules(void **state)
{
    static const char *const keys[] = {
        "db",
        "listen",
        "ops_listen",
        "tls_listen",
        "tls_cert",
        "tls_key",
        "workers",
        "upstream_connect_timeout",
        "upstream_timeout",
        "max_header_bytes",
        "max_headers",
        "max_connections",
        "max_connections_per_peer",
        "max_body_bytes",
        "max_buffered_bytes",
        "max_upload_bytes",
        "max_response_bytes",
        "idle_timeout",
        "header_timeout",
        "body_timeout",
        "body_min_rate",
        "shutdown_timeout",
        "reload_interval",
        "log_level",
        "oauth.access_token_ttl",
        "oauth.refresh_token_ttl",
        "oauth.code_ttl",
        "oauth.session_ttl",
        "oauth.issuer",
        "oauth.threads",
        "oauth.password_threads",
        "oauth.max_tokens_per_client",
        "audit.writes",
        "admin.enabled",
        "audit.reads",
        "audit.queue_size",
        "audit.refusal_window",
        "audit.checkpoint_interval",
        "audit.signing_key",
        "audit.retention_days",
        "audit.spool",
        "health.failures",
        "health.cooldown",
        "health.probe_interval",
        "health.probe_instances",
        "trusted_proxies",
        "rate_limit.default",
        "rate_limit.default_burst",
        "rate_limit.auth_failures",
        "rate_limit.auth_failure_burst",
        "idempotency.ttl",
        "idempotency.lease",
        "idempotency.max_answer_bytes",
        "reuse_port",
        "node_name",
    };

    assert_int_equal(bp_config__n_settings, sizeof(keys) / sizeof(keys[0]));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const struct bp_setting *s = bp_config__find_key(keys[i]);
        char flag[64] = "--";
        char env[64] = "BLNKPROXY_";
        size_t k = strlen(keys[i]);

        assert_non_null(s);
        for (size_t j = 0; j < k; j++) {
            char ch = keys[i][j] == '.' ? '_' : keys[i][j];
            flag[2 + j] = ch == '_' ? '-' : ch;
            env[10 + j] = (char)toupper((unsigned char)ch);
        }
        assert_string_equal(s->flag, flag);
        assert_string_equal(s->env, env);
        assert_ptr_equal(bp_config__find_flag(flag, strlen(flag)), s);
        assert_true(s->min <= s->max);
        assert_non_null(s->meaning);
    }
    assert_null(bp_config__find_key("wrokers"));
    assert_null(bp_config__find_flag("--config", 8));
}

static void
test_precedence_file_env_flag(void **state)
{
    struct bp_config c;
    char err[256];
    const char *path = temp_file("{\"workers\": 3, \"listen\": \"127.0.0.1:7001\",\n"
                                 " \"upstream_timeout\": \"7s\", \"log_level\": \"warn\",\n"
                                 " \"max_body_bytes\": \"2MiB\", \"db\": \"/tmp/file.db\"}\n");

    /* File only. */
    assert_int_equal(load(&c, err, sizeof(err), "--config", path, NULL), BP_OK);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.listen_port, 7001);
    assert_int_equal(c.upstream_timeout_ms, 7000);
    assert_int_equal(c.log_level, BP_LOG_WARN);
    assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024);
    assert_string_equal(c.db, "/tmp/file.db");
    bp_config_cleanup(&c);

    /* Env over file. */
    setenv("BLNKPROXY_WORKERS", "5", 1);
    setenv("BLNKPROXY_LISTEN", "127.0.0.1:7002", 1);
    setenv("BLNKPROXY_UPSTREAM_TIMEOUT", "8", 1);
    setenv("BLNKPROXY_DB", "/tmp/env.db", 1);
    assert_int_equal(load(&c, err, sizeof(err), "--config", path, NULL), BP_OK);
    assert_int_equal(c.workers, 5);
    assert_int_equal(c.listen_port, 7002);
    assert_int_equal(c.upstream_timeout_ms, 8000);
    assert_string_equal(c.db, "/tmp/env.db");
    assert_int_equal(c.log_level, BP_LOG_WARN);          /* still from the file */
    assert_int_equal(c.max_body_bytes, 2 * 1024 * 1024); /* still from the file */
    bp_config_cleanup(&c);

    /* Flags over env. */
    assert_int_equal(load(&c, err, sizeof(err), "--config", path, "--workers", "7", "--listen",
                          "127.0.0.1:7003", "--upstream-timeout=9", "--log-level", "debug",
                          "--db=/tmp/flag.db", NULL),
                     BP_OK);
    assert_int_equal(c.workers, 7);
    assert_int_equal(c.listen_port, 7003);
    assert_int_equal(c.upstream_timeout_ms, 9000);
    assert_int_equal(c.log_level, BP_LOG_DEBUG);
    assert_string_equal(c.db, "/tmp/flag.db");
    bp_config_cleanup(&c);

    unsetenv("BLNKPROXY_WORKERS");
    unsetenv("BLNKPROXY_LISTEN");
    unsetenv("BLNKPROXY_UPSTREAM_TIMEOUT");
    unsetenv("BLNKPROXY_DB");
}

static void
test_repeated_flag_last_wins(void **state)
{
    struct bp_config c;
    char err[256];

    assert_int_equal(load(&c, err, sizeof(err), "--workers", "2", "--workers=3", NULL), BP_OK);
    assert_int_equal(c.workers, 3);
    bp_config_cleanup(&c);
}

static void
test_flag_equals_form_for_every_setting(void **state)
{
    struct bp_config c;
    char err[256];

    assert_int_equal(load(&c, err, sizeof(err), "--db=x.db", "--listen=[::1]:0", "--workers=2",
                          "--upstream-connect-timeout=250ms", "--upstream-timeout=0.5",
                          "--max-header-bytes=16KiB", "--max-headers=50", "--max-body-bytes=64k",
                          "--max-upload-bytes=2MiB", "--max-response-bytes=1GiB", "--idle-timeout=2m",
                          "--header-timeout=3s", "--shutdown-timeout=0", "--reload-interval=200ms",
                          "--log-level=error", NULL),
                     BP_OK);
    assert_string_equal(c.db, "x.db");
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.upstream_connect_timeout_ms, 250);
    assert_int_equal(c.upstream_timeout_ms, 500);
    assert_int_equal(c.max_head_bytes, 16384);
    assert_int_equal(c.max_headers, 50);
    assert_int_equal(c.max_body_bytes, 65536);
    assert_int_equal(c.max_upload_bytes, 2 * 1024 * 1024);
    assert_int_equal(c.max_response_bytes, 1024 * 1024 * 1024);
    assert_int_equal(c.idle_timeout_ms, 120000);
    assert_int_equal(c.header_timeout_ms, 3000);
    assert_int_equal(c.shutdown_timeout_ms, 0);
    assert_int_equal(c.reload_interval_ms, 200);
    assert_int_equal(c.log_level, BP_LOG_ERROR);
    bp_config_cleanup(&c);
}

static void
test_every_env_var(void **state)
{
    struct bp_config c;
    char err[256];

    setenv("BLNKPROXY_MAX_HEADERS", "7", 1);
    setenv("BLNKPROXY_IDLE_TIMEOUT", "1500ms", 1);
    setenv("BLNKPROXY_MAX_RESPONSE_BYTES", "1k", 1);
    setenv("BLNKPROXY_LOG_LEVEL", "error", 1);
    setenv("BLNKPROXY_RELOAD_INTERVAL", "", 1); /* empty means unset */
    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_int_equal(c.max_headers, 7);
    assert_int_equal(c.idle_timeout_ms, 1500);
    assert_int_equal(c.max_response_bytes, 1024);
    assert_int_equal(c.log_level, BP_LOG_ERROR);
    assert_int_equal(c.reload_interval_ms, 500);
    bp_config_cleanup(&c);
    unset_all_env();
}

static void
test_config_file_selection(void **state)
{
    struct bp_config c;
    char err[256];
    const char *env_file = temp_file("{\"workers\": 2}");
    const char *flag_file = temp_file("{\"workers\": 3}");

    /* ./blnkproxy.json is read when present. */
    write_cwd_file("blnkproxy.json", "{\"workers\": 1}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_int_equal(c.workers, 1);
    bp_config_cleanup(&c);

    /* BLNKPROXY_CONFIG replaces it (not layered on it). */
    write_cwd_file("blnkproxy.json", "{\"workers\": 1, \"max_headers\": 9}");
    setenv("BLNKPROXY_CONFIG", env_file, 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_int_equal(c.workers, 2);
    assert_int_equal(c.max_headers, 100);
    bp_config_cleanup(&c);

    /* --config replaces both. */
    assert_int_equal(load(&c, err, sizeof(err), "--config", flag_file, NULL), BP_OK);
    assert_int_equal(c.workers, 3);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--config=", NULL), BP_ERR_INVALID);
    unsetenv("BLNKPROXY_CONFIG");

    /* Errors in the default file name it as blnkproxy.json. */
    write_cwd_file("blnkproxy.json", "{\"workers\": 0}");
    expect_fail_exact("blnkproxy.json: key \"workers\": must be an integer 1..256", NULL);
}

static void
test_missing_config_file(void **state)
{
    expect_fail_exact("--config: cannot read /tmp/bp_no_such_dir/x.json: No such file or directory",
                      "--config", "/tmp/bp_no_such_dir/x.json", NULL);
    setenv("BLNKPROXY_CONFIG", "/tmp/bp_no_such_dir/y.json", 1);
    expect_fail_exact("BLNKPROXY_CONFIG: cannot read /tmp/bp_no_such_dir/y.json: No such file or directory",
                      NULL);
    unsetenv("BLNKPROXY_CONFIG");
    expect_fail_exact("--config: missing value", "--config", NULL);
    expect_fail_exact("--config: cannot read /tmp: Is a directory", "--config", "/tmp", NULL);
}

static void
test_error_messages_name_source(void **state)
{
    char msg[512];
    const char *path = temp_file("{\"workers\": 257}");

    snprintf(msg, sizeof(msg), "%s: key \"workers\": must be an integer 1..256", path);
    expect_fail_exact(msg, "--config", path, NULL);

    setenv("BLNKPROXY_WORKERS", "0", 1);
    expect_fail_exact("BLNKPROXY_WORKERS: must be an integer 1..256", NULL);
    unsetenv("BLNKPROXY_WORKERS");

    expect_fail_exact("--workers: must be an integer 1..256", "--workers", "x", NULL);
    expect_fail_exact("--listen: expected HOST:PORT with HOST an IPv4 address, [IPv6 address] or "
                      "localhost and PORT 0..65535; for every interface write :PORT (IPv4) or "
                      "[::]:PORT (IPv4 and IPv6)",
                      "--listen", "nohost", NULL);
    expect_fail_exact("--reload-interval: must be a duration 50ms..10s (like 500ms, 5s, 2m, 1h, "
                      "or a number of seconds)",
                      "--reload-interval", "49ms", NULL);
    expect_fail_exact("--max-header-bytes: must be a size 256..1MiB (a number of bytes, or with a "
                      "k, KiB, MiB or GiB suffix)",
                      "--max-header-bytes", "2MiB", NULL);
    expect_fail_exact("--log-level: must be one of debug, info, warn, error", "--log-level", "verbose", NULL);
}

static void
test_unknown_flags_and_arguments(void **state)
{
    /* Issue 8: a misspelt flag gets the nearest real one as a hint. */
    expect_fail_exact("unknown option --wrokers (did you mean --workers?)", "--wrokers", "4", NULL);
    expect_fail_exact("unknown option --workres (did you mean --workers?)", "--workres", "4", NULL);
    expect_fail_exact("unknown option --upstream_timeout (did you mean --upstream-timeout?)", "--upstream_timeout",
                      "5", NULL);
    expect_fail_exact("unknown option --max-body-byte (did you mean --max-body-bytes?)", "--max-body-byte=1k",
                      NULL);
    /* Flags serve handles itself are candidates too. */
    expect_fail_exact("unknown option --chek (did you mean --check?)", "--chek", NULL);
    expect_fail_exact("unknown option --confg (did you mean --config?)", "--confg", "x.json", NULL);
    /* The value after '=' is never echoed; nothing near gets no hint. */
    expect_fail_exact("unknown option --secret", "--secret=hunter2", NULL);
    expect_fail_exact("unknown option -w", "-w", "4", NULL);
    expect_fail_exact("unknown option --zzzzzzzzzzzz", "--zzzzzzzzzzzz", "4", NULL);
    expect_fail_exact("unexpected argument \"serve\"", "serve", NULL);
    expect_fail_exact("--workers: missing value", "--workers", NULL);
    /* An unknown flag is reported before a bad value is even looked at. */
    expect_fail_exact("unknown option --nope", "--workers", "0", "--nope", "1", NULL);
}

static void
test_unknown_json_key(void **state)
{
    char msg[512];
    const char *path = temp_file("{\"workers\": 2, \"wrokers\": 4}");
    const char *path2 = temp_file("{\"upstream-timeout\": 4}");

    snprintf(msg, sizeof(msg), "%s: unknown key \"wrokers\"", path);
    expect_fail_exact(msg, "--config", path, NULL);
    snprintf(msg, sizeof(msg), "%s: unknown key \"upstream-timeout\"", path2);
    expect_fail_exact(msg, "--config", path2, NULL);
}

static void
test_duplicate_json_key(void **state)
{
    struct bp_config c;
    char err[512];
    char want[300];
    const char *path = temp_file("{\n\"workers\": 2,\n\"workers\": 3\n}");

    assert_int_equal(load(&c, err, sizeof(err), "--config", path, NULL), BP_ERR_INVALID);
    snprintf(want, sizeof(want), "%s:3: ", path);
    assert_memory_equal(err, want, strlen(want));
    assert_non_null(strstr(err, "duplicate"));
}

static void
test_syntax_error_line(void **state)
{
    struct bp_config c;
    char err[512];
    char want[300];
    const char *path = temp_file("{\n  \"workers\": 4,\n  \"listen\" \"127.0.0.1:1\"\n}\n");
    const char *arr = temp_file("[1, 2]");

    assert_int_equal(load(&c, err, sizeof(err), "--config", path, NULL), BP_ERR_INVALID);
    snprintf(want, sizeof(want), "%s:3: ", path);
    assert_memory_equal(err, want, strlen(want));

    snprintf(want, sizeof(want), "%s: expected a JSON object at the top level", arr);
    expect_fail_exact(want, "--config", arr, NULL);
}

static void
test_json_value_types(void **state)
{
    struct bp_config c;
    char err[512];
    const char *ok = temp_file("{\"workers\": \"4\", \"max_headers\": 12,"
                               " \"upstream_timeout\": 0.25, \"idle_timeout\": 5,"
                               " \"header_timeout\": \"1.5s\", \"max_body_bytes\": 1048576,"
                               " \"max_upload_bytes\": \"3MiB\", \"shutdown_timeout\": 0}");
    static const char *const bad[] = {
        "{\"workers\": 4.0}",
        "{\"workers\": true}",
        "{\"workers\": null}",
        "{\"workers\": -1}",
        "{\"workers\": [4]}",
        "{\"max_body_bytes\": 1.5}",
        "{\"db\": 5}",
        "{\"db\": \"\"}",
        "{\"listen\": 8080}",
        "{\"log_level\": 1}",
        "{\"upstream_timeout\": -1}",
        "{\"upstream_timeout\": 1e300}",
        "{\"reload_interval\": 0.01}",
        "{\"max_headers\": 129}",
    };

    assert_int_equal(load(&c, err, sizeof(err), "--config", ok, NULL), BP_OK);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.max_headers, 12);
    assert_int_equal(c.upstream_timeout_ms, 250);
    assert_int_equal(c.idle_timeout_ms, 5000);
    assert_int_equal(c.header_timeout_ms, 1500);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.max_upload_bytes, 3 * 1024 * 1024);
    assert_int_equal(c.shutdown_timeout_ms, 0);
    bp_config_cleanup(&c);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct bp_config d;
        bp_config__defaults(&d);
        err[0] = '\0';
        assert_int_equal(bp_config__load_json_text(bad[i], strlen(bad[i]), "t.json", &d, err, sizeof(err)),
                         BP_ERR_INVALID);
        assert_memory_equal(err, "t.json: key \"", 13);
        bp_config_cleanup(&d);
    }
}

static void
test_json_text_not_nul_terminated(void **state)
{
    struct bp_config c;
    char err[256];
    char text[] = {'{', '"', 'w', 'o', 'r', 'k', 'e', 'r', 's', '"', ':', '9', '}', '9'};

    bp_config__defaults(&c);
    assert_int_equal(bp_config__load_json_text(text, 13, "t", &c, err, sizeof(err)), BP_OK);
    assert_int_equal(c.workers, 9);
    assert_int_equal(bp_config__load_json_text("", 0, "t", &c, err, sizeof(err)), BP_ERR_INVALID);
    assert_memory_equal(err, "t:", 2);
    bp_config_cleanup(&c);
}

/* "oauth" and "audit" are objects whose members are the dotted settings. */
static void
test_sections(void **state)
{
    struct bp_config c;
    char err[256];
    static const char good[] =
        "{\"audit\":{\"reads\":\"off\",\"retention_days\":7},\"oauth\":{\"access_token_ttl\":\"2s\"},"
        "\"health\":{\"failures\":3,\"probe_interval\":\"10s\"}}";
    static const char *const bad[] = {
        "{\"audit\":{\"nope\":1}}",
        "{\"audit\":3}",
        "{\"audit.reads\":\"off\"}",
        "{\"audit\":{\"reads\":\"sometimes\"}}",
        "{\"oauth\":{\"audit\":{}}}",
    };
    static const char *const why[] = {
        "unknown key \"audit.nope\"",
        "must be an object",
        "unknown key \"audit.reads\"",
        "must be one of sync, async, off",
        "unknown key \"oauth.audit\"",
    };

    bp_config__defaults(&c);
    assert_int_equal(c.audit_reads, BP_AUDIT_ASYNC);
    assert_int_equal(c.audit_writes, BP_AUDIT_SYNC);
    assert_int_equal(c.oauth_access_token_ttl_ms, 3600 * 1000);
    assert_null(c.oauth_issuer);
    assert_int_equal(bp_config__load_json_text(good, strlen(good), "t", &c, err, sizeof(err)), BP_OK);
    assert_int_equal(c.audit_reads, BP_AUDIT_OFF);
    assert_int_equal(c.audit_retention_days, 7);
    assert_int_equal(c.oauth_access_token_ttl_ms, 2000);
    assert_int_equal(c.health_failures, 3);
    assert_int_equal(c.health_probe_interval_ms, 10000);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bp_config__load_json_text(bad[i], strlen(bad[i]), "t", &c, err, sizeof(err)),
                         BP_ERR_INVALID);
        assert_non_null(strstr(err, why[i]));
    }
    bp_config_cleanup(&c);
}

/* health.probe_instances: each instance's own probe interval, checked whole at load. */
static void
test_probe_instances(void **state)
{
    struct bp_config c;
    static const char *const bad[] = {
        "",                     /* empty: leave the setting out instead */
        "a",                    /* no = */
        "=5s",                  /* no id */
        "a=",                   /* no duration */
        "a=5s,",                /* a trailing comma */
        "a=5s,,b=1s",           /* an empty pair */
        "a-b=5s",               /* not an instance id */
        "a=2h",                 /* beyond 1h */
        "a=-1s",
        "a=5x",
        "a=5s b=1s",
    };

    (void)state;
    bp_config__defaults(&c);
    assert_null(c.health_probe_instances);
    assert_int_equal(bp_config_probe_interval_ms(c.health_probe_instances, 0, "instance_A"), 0);
    assert_int_equal(bp_config_probe_tick_ms(c.health_probe_instances, 0), 0);
    assert_int_equal(set_key(&c, "health.probe_instances", "instance_A=30s,instance_B=0,instance_C=500ms"), BP_OK);
    assert_int_equal(bp_config_probe_interval_ms(c.health_probe_instances, 10000, "instance_A"), 30000);
    assert_int_equal(bp_config_probe_interval_ms(c.health_probe_instances, 10000, "instance_B"), 0);
    assert_int_equal(bp_config_probe_interval_ms(c.health_probe_instances, 10000, "instance_C"), 500);
    /* Not listed, or only a prefix of a listed id: the global interval. */
    assert_int_equal(bp_config_probe_interval_ms(c.health_probe_instances, 10000, "instance_D"), 10000);
    assert_int_equal(bp_config_probe_interval_ms(c.health_probe_instances, 10000, "instance_"), 10000);
    assert_int_equal(bp_config_probe_tick_ms(c.health_probe_instances, 10000), 500);
    assert_int_equal(bp_config_probe_tick_ms(c.health_probe_instances, 0), 500);
    assert_int_equal(bp_config_probe_tick_ms("instance_B=0", 0), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(set_key(&c, "health.probe_instances", bad[i]), BP_ERR_INVALID);
    }
    /* A refused value leaves the last good one. */
    assert_int_equal(bp_config_probe_interval_ms(c.health_probe_instances, 10000, "instance_A"), 30000);
    bp_config_cleanup(&c);
}

static void
test_int_parsing(void **state)
{
    struct bp_config c;
    static const char *const bad[] = {
        "0", "257", "-1", "+4", "4x", "", " 4", "4 ", "0x10", "1.0", "99999999999999999999999"};

    bp_config__defaults(&c);
    assert_int_equal(set_key(&c, "workers", "1"), BP_OK);
    assert_int_equal(c.workers, 1);
    assert_int_equal(set_key(&c, "workers", "256"), BP_OK);
    assert_int_equal(c.workers, 256);
    assert_int_equal(set_key(&c, "workers", "007"), BP_OK);
    assert_int_equal(c.workers, 7);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(set_key(&c, "workers", bad[i]), BP_ERR_INVALID);
        assert_int_equal(c.workers, 7); /* unchanged on error */
    }
    assert_int_equal(set_key(&c, "max_headers", "128"), BP_OK);
    assert_int_equal(c.max_headers, 128);
    assert_int_equal(set_key(&c, "max_headers", "129"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "max_headers", "0"), BP_ERR_INVALID);
    assert_int_equal(c.max_headers, 128);
    bp_config_cleanup(&c);
}

static void
test_size_parsing(void **state)
{
    static const struct {
        const char *text;
        uint64_t want;
    } good[] = {
        {"0", 0},
        {"100", 100},
        {"100B", 100},
        {"64k", 65536},
        {"64K", 65536},
        {"64KiB", 65536},
        {"1MiB", 1048576},
        {"2m", 2097152},
        {"32MiB", 33554432},
        {"1GiB", 1073741824},
        {"3G", 3221225472ULL},
        {"18446744073709551615", UINT64_MAX},
    };
    static const char *const bad[] = {"",
                                      "k",
                                      "MiB",
                                      "1.5MiB",
                                      "1KB",
                                      "1kb",
                                      "1 MiB",
                                      " 1",
                                      "-1",
                                      "1MiBx",
                                      "1Mi",
                                      "1TiB",
                                      "18446744073709551616",
                                      "17179869184GiB"};
    struct bp_config c;
    uint64_t v;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(bp_config__parse_size(good[i].text, &v), BP_OK);
        assert_true(v == good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bp_config__parse_size(bad[i], &v), BP_ERR_INVALID);
    }

    /* Bounds are checked in bytes, whatever the unit. */
    bp_config__defaults(&c);
    assert_int_equal(set_key(&c, "max_header_bytes", "256"), BP_OK);
    assert_int_equal(c.max_head_bytes, 256);
    assert_int_equal(set_key(&c, "max_header_bytes", "255"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "max_header_bytes", "1MiB"), BP_OK);
    assert_int_equal(c.max_head_bytes, 1048576);
    assert_int_equal(set_key(&c, "max_header_bytes", "1025KiB"), BP_ERR_INVALID);
    assert_int_equal(c.max_head_bytes, 1048576);
    assert_int_equal(set_key(&c, "max_body_bytes", "0"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "max_body_bytes", "2GiB"), BP_ERR_INVALID);
    bp_config_cleanup(&c);
}

static void
test_duration_parsing(void **state)
{
    static const struct {
        const char *text;
        int64_t want_ms;
    } good[] = {
        {"500ms", 500},   {"5s", 5000},   {"2m", 120000},   {"1h", 3600000},
        {"5", 5000},      {"0", 0},       {"0.5", 500},     {"1.5s", 1500},
        {"0.25m", 15000}, {"0.0004", 0},  {"0.0005", 1},    {"1.999999999", 2000},
        {"30", 30000},    {"007s", 7000}, {"1d", 86400000}, {"1.5ms", 2},
    };
    static const char *const bad[] = {"",
                                      "s",
                                      "ms",
                                      "5x",
                                      "-1",
                                      "-1s",
                                      "1.",
                                      ".5",
                                      "1e3",
                                      "5 s",
                                      " 5",
                                      "0.0000000001",
                                      "5S",
                                      "1w",
                                      "never",
                                      "99999999999999999999",
                                      "9223372036854775807s",
                                      "1..5"};
    struct bp_config c;
    int64_t ms;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(bp_config__parse_duration(good[i].text, &ms), BP_OK);
        assert_int_equal(ms, good[i].want_ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bp_config__parse_duration(bad[i], &ms), BP_ERR_INVALID);
    }

    bp_config__defaults(&c);
    assert_int_equal(set_key(&c, "reload_interval", "50ms"), BP_OK);
    assert_int_equal(c.reload_interval_ms, 50);
    assert_int_equal(set_key(&c, "reload_interval", "10s"), BP_OK);
    assert_int_equal(c.reload_interval_ms, 10000);
    assert_int_equal(set_key(&c, "reload_interval", "49ms"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "reload_interval", "10001ms"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "reload_interval", "0.05"), BP_OK);
    assert_int_equal(c.reload_interval_ms, 50);
    assert_int_equal(set_key(&c, "upstream_timeout", "0"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "shutdown_timeout", "0"), BP_OK);
    assert_int_equal(c.shutdown_timeout_ms, 0);
    bp_config_cleanup(&c);
}

static void
test_log_level_parsing(void **state)
{
    struct bp_config c;

    bp_config__defaults(&c);
    assert_int_equal(set_key(&c, "log_level", "debug"), BP_OK);
    assert_int_equal(c.log_level, BP_LOG_DEBUG);
    assert_int_equal(set_key(&c, "log_level", "warn"), BP_OK);
    assert_int_equal(c.log_level, BP_LOG_WARN);
    assert_int_equal(set_key(&c, "log_level", "INFO"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "log_level", "warning"), BP_ERR_INVALID);
    assert_int_equal(set_key(&c, "log_level", ""), BP_ERR_INVALID);
    assert_int_equal(c.log_level, BP_LOG_WARN);
    bp_config_cleanup(&c);
}

static void
test_listen_parsing(void **state)
{
    static const struct {
        const char *text;
        const char *host;
        int port;
    } good[] = {
        {"127.0.0.1:0", "127.0.0.1", 0},
        {"0.0.0.0:65535", "0.0.0.0", 65535},
        {"10.1.2.3:8080", "10.1.2.3", 8080},
        {"[::1]:8080", "::1", 8080},
        {"[::]:1", "::", 1},
        {"[2001:db8::1]:443", "2001:db8::1", 443},
        {"localhost:9000", "localhost", 9000},
        /* Issue 8: ":8081" is every interface, as Go, nginx and Envoy users write it. */
        {":8081", "0.0.0.0", 8081},
        {"*:8081", "0.0.0.0", 8081},
        {":0", "0.0.0.0", 0},
    };
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        ":",
        "*:",
        "8081",
        "**:80",
        "example.com:80",
        "::1:80",
        "[::1]80",
        "[::1]:",
        "[]:80",
        "1.2.3:80",
        "256.1.1.1:80",
        "[127.0.0.1]:80",
        "localhost:80x",
        "127.0.0.1: 80",
        " 127.0.0.1:80",
        "LOCALHOST:80",
        "[::1:80",
        "::1]:80",
    };
    char *host;
    int port;
    struct bp_config c;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        host = NULL;
        assert_int_equal(bp_config__parse_listen(good[i].text, &host, &port), BP_OK);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
        free(host);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        host = NULL;
        assert_int_equal(bp_config__parse_listen(bad[i], &host, &port), BP_ERR_INVALID);
        assert_null(host);
    }

    /* Through the table: replacing frees the old host, an error keeps it. */
    bp_config__defaults(&c);
    assert_int_equal(set_key(&c, "listen", "[::1]:0"), BP_OK);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    assert_int_equal(set_key(&c, "listen", "nope"), BP_ERR_INVALID);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 0);
    bp_config_cleanup(&c);
}

/* reuse_port: a boolean. The bare flag means true; a following true/false is its value. */
static void
test_bool_setting(void **state)
{
    struct bp_config c;
    char err[256];
    const char *yes = temp_file("{\"reuse_port\": true}");
    const char *no = temp_file("{\"reuse_port\": false}");
    const char *num = temp_file("{\"reuse_port\": 1}");
    char msg[512];

    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_false(c.reuse_port);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--reuse-port", NULL), BP_OK);
    assert_true(c.reuse_port);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--reuse-port", "--workers", "2", NULL), BP_OK);
    assert_true(c.reuse_port);
    assert_int_equal(c.workers, 2);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--config", yes, "--reuse-port", "false", NULL), BP_OK);
    assert_false(c.reuse_port);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--config", yes, "--reuse-port=false", NULL), BP_OK);
    assert_false(c.reuse_port);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--config", no, NULL), BP_OK);
    assert_false(c.reuse_port);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--config", yes, NULL), BP_OK);
    assert_true(c.reuse_port);
    bp_config_cleanup(&c);
    setenv("BLNKPROXY_REUSE_PORT", "true", 1);
    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_true(c.reuse_port);
    bp_config_cleanup(&c);
    setenv("BLNKPROXY_REUSE_PORT", "yes", 1);
    expect_fail_exact("BLNKPROXY_REUSE_PORT: must be true or false", NULL);
    unsetenv("BLNKPROXY_REUSE_PORT");
    expect_fail_exact("--reuse-port: must be true or false", "--reuse-port=1", NULL);
    snprintf(msg, sizeof(msg), "%s: key \"reuse_port\": must be true or false", num);
    expect_fail_exact(msg, "--config", num, NULL);
    /* "--reuse-port x" leaves x as an argument, which serve has none of. */
    expect_fail_exact("unexpected argument \"x\"", "--reuse-port", "x", NULL);
}

/* Issue 8: the file actually read is reported (serve --check, reload log lines). */
static void
test_config_file_named(void **state)
{
    struct bp_config c;
    char err[256];
    const char *path = temp_file("{\"workers\": 2}");

    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_null(c.file);
    bp_config_cleanup(&c);
    assert_int_equal(load(&c, err, sizeof(err), "--config", path, NULL), BP_OK);
    assert_string_equal(c.file, path);
    bp_config_cleanup(&c);
    assert_null(c.file);
    write_cwd_file("blnkproxy.json", "{}");
    assert_int_equal(load(&c, err, sizeof(err), NULL), BP_OK);
    assert_string_equal(c.file, "blnkproxy.json");
    bp_config_cleanup(&c);
}

static void
test_failure_after_strings_set_does_not_leak(void **state)
{
    /* The file sets both strings, then a flag fails: ASan's leak check covers the cleanup. */
    const char *path = temp_file("{\"db\": \"/tmp/a.db\", \"listen\": \"127.0.0.1:1\"}");
    expect_fail_exact("--workers: must be an integer 1..256", "--config", path, "--db", "b.db", "--workers",
                      "1000", NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_naming_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_file_env_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_flag_last_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_equals_form_for_every_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_env_var, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_config_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_messages_name_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_flags_and_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_json_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_json_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_value_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_text_not_nul_terminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duration_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_after_strings_set_does_not_leak, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
