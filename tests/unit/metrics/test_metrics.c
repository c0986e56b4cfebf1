/* The metrics module through its header: what the exposition text says after known events,
 * summed over shards written by several threads, histogram bucket placement, label escaping,
 * the series cap, and the fixed-label series that must be there from the start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four above first */

#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/version.h"
#include "metrics/metrics.h"

#define RENDER_MAX (64 * 1024 * 1024)

/* ---- helpers ---------------------------------------------------------------------------------- */

static char *
render(void)
{
    struct bp_buf b;
    size_t len = 0;
    char *text;

    bp_buf_init(&b, RENDER_MAX);
    bp_metrics_render(&b);
    text = bp_buf_take(&b, &len);
    bp_buf_cleanup(&b);
    assert_non_null(text);
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    return text;
}

static char *
render_format(enum bp_metrics_format format)
{
    struct bp_buf b;
    size_t len = 0;
    char *text;

    bp_buf_init(&b, RENDER_MAX);
    bp_metrics_render_format(format, &b);
    text = bp_buf_take(&b, &len);
    bp_buf_cleanup(&b);
    assert_non_null(text);
    return text;
}

/* The value of the sample line that starts with name and a space. */
static double
sample_value(const char *text, const char *name)
{
    char want[128];
    const char *p;

    snprintf(want, sizeof(want), "\n%s ", name);
    p = strstr(text, want);
    if (p == NULL) {
        print_error("no sample %s\n", name);
        fail();
    }
    return strtod(p + strlen(want), NULL);
}

/* Whether text holds line as a whole line. */
static bool
has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return true;
        }
    }
    return false;
}

static void
assert_line(const char *text, const char *line)
{
    if (!has_line(text, line)) {
        print_error("missing line: %s\n", line);
        fail();
    }
}

static size_t
count_occurrences(const char *text, const char *s)
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, s)) != NULL; p += strlen(s)) {
        n++;
    }
    return n;
}

/* The value of the sample whose name and labels are exactly `series` (e.g. "x_total{a=\"b\"}"),
 * or -1 when there is no such line. */
static long long
sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; (p = strstr(p, series)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            return strtoll(p + n + 1, NULL, 10);
        }
    }
    return -1;
}

static void
request(const char *group, const char *method, int status, const char *instance, int64_t total_us,
        int64_t upstream_us)
{
    struct bp_metrics_request r = {
        .group = group,
        .method = method,
        .status = status,
        .instance = instance,
        .total_us = total_us,
        .upstream_us = upstream_us,
    };
    bp_metrics_request(&r);
}

static int
setup(void **state)
{
    assert_int_equal(bp_metrics_init(4), BP_OK);
    return 0;
}

static int
teardown(void **state)
{
    bp_metrics_shutdown();
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void
test_fresh_render_has_every_family_once_and_fixed_series(void **state)
{
    static const char *const families[] = {
        "blnkproxy_build_info gauge",
        "process_start_time_seconds gauge",
        "blnkproxy_requests_total counter",
        "blnkproxy_request_duration_seconds histogram",
        "blnkproxy_upstream_duration_seconds histogram",
        "blnkproxy_upstream_errors_total counter",
        "blnkproxy_auth_failures_total counter",
        "blnkproxy_client_connections gauge",
        "blnkproxy_upstream_connections gauge",
        "blnkproxy_audit_commit_duration_seconds histogram",
        "blnkproxy_audit_records_total counter",
        "blnkproxy_audit_store_errors_total counter",
        "blnkproxy_credentials gauge",
        "blnkproxy_instances gauge",
        "blnkproxy_table_reloads_total counter",
    };
    char *t = render();
    char want[128];

    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        const char *name_end = strchr(families[i], ' ');
        char help[128];
        snprintf(want, sizeof(want), "# TYPE %s\n", families[i]);
        assert_int_equal(count_occurrences(t, want), 1);
        snprintf(help, sizeof(help), "# HELP %.*s ", (int)(name_end - families[i]), families[i]);
        assert_int_equal(count_occurrences(t, help), 1);
    }
    /* No source registered: the queue depth is not reported at all. */
    assert_null(strstr(t, "audit_queue_depth"));
    for (const char *const *r =
             (const char *const[]){"missing", "unknown", "expired", "revoked", "scope", "instance", NULL};
         *r != NULL; r++) {
        snprintf(want, sizeof(want), "blnkproxy_auth_failures_total{reason=\"%s\"} 0", *r);
        assert_line(t, want);
    }
    for (const char *const *k = (const char *const[]){"connect", "timeout", "reset", "tls", "other", NULL};
         *k != NULL; k++) {
        snprintf(want, sizeof(want), "blnkproxy_upstream_errors_total{kind=\"%s\"} 0", *k);
        assert_line(t, want);
    }
    assert_line(t, "blnkproxy_audit_records_total{outcome=\"committed\"} 0");
    assert_line(t, "blnkproxy_audit_records_total{outcome=\"spooled\"} 0");
    assert_line(t, "blnkproxy_audit_records_total{outcome=\"shed\"} 0");
    assert_line(t, "blnkproxy_audit_store_errors_total 0");
    assert_line(t, "blnkproxy_audit_commit_duration_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(t, "blnkproxy_audit_commit_duration_seconds_count 0");
    assert_line(t, "blnkproxy_client_connections 0");
    assert_line(t, "blnkproxy_upstream_connections 0");
    assert_line(t, "blnkproxy_table_reloads_total 0");
    /* No request yet: the labelled families have no series. */
    assert_null(strstr(t, "blnkproxy_requests_total{"));
    free(t);
}

/* The build_info sample: the version and the git revision this binary was built from. */
static void
assert_build_info(const char *text)
{
    char want[256];

    snprintf(want, sizeof(want), "blnkproxy_build_info{version=\"%s\",revision=\"%s\"} 1", bp_version_get(),
             bp_version_revision());
    assert_line(text, want);
}

static void
test_build_info_and_start_time(void **state)
{
    char *t = render();
    const char *p;

    assert_build_info(t);
    p = strstr(t, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    /* A plausible Unix time with microseconds: after 2020, before 2200. */
    assert_true(strtod(p + strlen("\nprocess_start_time_seconds "), NULL) > 1.5e9);
    assert_true(strtod(p + strlen("\nprocess_start_time_seconds "), NULL) < 7.3e9);
    free(t);
}

static void
test_request_exact_lines(void **state)
{
    char *t;

    bp_metrics_bind_thread(0);
    request("ledgers", "GET", 200, "instance_A", 1500, 1000);
    request("ledgers", "GET", 204, "instance_A", 1500, 1000);
    request("transactions", "POST", 201, "instance_A", 30000, 20000);
    request("transactions", "BREW", 418, "instance_A", 10, -1);
    request(NULL, "DELETE", 404, NULL, 10, -1);
    request("", "GET", 401, "", 10, -1);
    request("ledgers", "get", 503, "instance_B", 10, -1); /* methods are case-sensitive */
    t = render();

    assert_line(t, "blnkproxy_requests_total{group=\"ledgers\",method=\"GET\",status_class=\"2xx\","
                   "instance=\"instance_A\"} 2");
    assert_line(t, "blnkproxy_requests_total{group=\"transactions\",method=\"POST\",status_class=\"2xx\","
                   "instance=\"instance_A\"} 1");
    assert_line(t, "blnkproxy_requests_total{group=\"transactions\",method=\"OTHER\",status_class=\"4xx\","
                   "instance=\"instance_A\"} 1");
    assert_line(t, "blnkproxy_requests_total{group=\"none\",method=\"DELETE\",status_class=\"4xx\","
                   "instance=\"none\"} 1");
    assert_line(t, "blnkproxy_requests_total{group=\"none\",method=\"GET\",status_class=\"4xx\","
                   "instance=\"none\"} 1");
    assert_line(t, "blnkproxy_requests_total{group=\"ledgers\",method=\"OTHER\",status_class=\"5xx\","
                   "instance=\"instance_B\"} 1");
    assert_int_equal(count_occurrences(t, "\nblnkproxy_requests_total{"), 6);

    assert_line(t, "blnkproxy_request_duration_seconds_bucket{group=\"ledgers\",le=\"0.001\"} 1");
    assert_line(t, "blnkproxy_request_duration_seconds_bucket{group=\"ledgers\",le=\"0.0025\"} 3");
    assert_line(t, "blnkproxy_request_duration_seconds_bucket{group=\"ledgers\",le=\"+Inf\"} 3");
    assert_line(t, "blnkproxy_request_duration_seconds_sum{group=\"ledgers\"} 0.003010");
    assert_line(t, "blnkproxy_request_duration_seconds_count{group=\"ledgers\"} 3");
    assert_line(t, "blnkproxy_upstream_duration_seconds_bucket{group=\"ledgers\",le=\"0.001\"} 2");
    assert_line(t, "blnkproxy_upstream_duration_seconds_sum{group=\"ledgers\"} 0.002000");
    assert_line(t, "blnkproxy_upstream_duration_seconds_count{group=\"ledgers\"} 2");
    assert_line(t, "blnkproxy_request_duration_seconds_bucket{group=\"transactions\",le=\"0.025\"} 1");
    assert_line(t, "blnkproxy_request_duration_seconds_bucket{group=\"transactions\",le=\"0.05\"} 2");
    assert_line(t, "blnkproxy_upstream_duration_seconds_bucket{group=\"transactions\",le=\"0.025\"} 1");
    assert_line(t, "blnkproxy_upstream_duration_seconds_count{group=\"transactions\"} 1");
    /* Refused requests are timed, but have no upstream time. */
    assert_line(t, "blnkproxy_request_duration_seconds_count{group=\"none\"} 2");
    assert_null(strstr(t, "blnkproxy_upstream_duration_seconds_count{group=\"none\"}"));
    free(t);
}

static void
test_histogram_bucket_placement(void **state)
{
    /* A value equal to a bound belongs to it (le); just above goes to the next one. */
    static const int64_t values[] = {-5, 0, 1000, 1001, 2500, 10000000, 10000001, 60000000};
    static const struct {
        const char *le;
        long long cum;
    } want[] = {
        {"0.001", 3}, {"0.0025", 5}, {"0.005", 5}, {"0.01", 5}, {"0.025", 5}, {"0.05", 5}, {"0.1", 5},
        {"0.25", 5},  {"0.5", 5},    {"1", 5},     {"2.5", 5},  {"5", 5},     {"10", 6},   {"+Inf", 8},
    };
    char *t;
    char series[160];

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        /* upstream_us < 0 means "not forwarded", so the upstream side gets 0 instead. */
        request("balances", "GET", 200, "i", values[i], values[i] < 0 ? 0 : values[i]);
    }
    t = render();
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        snprintf(series, sizeof(series),
                 "blnkproxy_request_duration_seconds_bucket{group=\"balances\",le=\"%s\"}", want[i].le);
        assert_int_equal(sample(t, series), want[i].cum);
        snprintf(series, sizeof(series),
                 "blnkproxy_upstream_duration_seconds_bucket{group=\"balances\",le=\"%s\"}", want[i].le);
        assert_int_equal(sample(t, series), want[i].cum);
    }
    /* Negative durations count as 0: 0+0+1000+1001+2500+10000000+10000001+60000000 us. */
    assert_line(t, "blnkproxy_request_duration_seconds_sum{group=\"balances\"} 80.004502");
    assert_line(t, "blnkproxy_request_duration_seconds_count{group=\"balances\"} 8");
    free(t);
}

static void
test_label_values_are_escaped(void **state)
{
    char *t;

    request("gr\"oup", "GET", 200, "in\"st\\ance\nx", 10, -1);
    t = render();
    assert_line(t, "blnkproxy_requests_total{group=\"gr\\\"oup\",method=\"GET\",status_class=\"2xx\","
                   "instance=\"in\\\"st\\\\ance\\nx\"} 1");
    assert_line(t, "blnkproxy_request_duration_seconds_count{group=\"gr\\\"oup\"} 1");
    /* No raw newline broke a sample line apart. */
    assert_null(strstr(t, "\nx\"}"));
    free(t);
}

static void
test_oversized_label_value_is_other(void **state)
{
    char big[300];
    char *t;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    request("ledgers", "GET", 200, big, 10, -1);
    t = render();
    assert_line(t, "blnkproxy_requests_total{group=\"ledgers\",method=\"GET\",status_class=\"2xx\","
                   "instance=\"other\"} 1");
    assert_null(strstr(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    free(t);
}

static void
test_series_cap_counts_overflow_as_other(void **state)
{
    char inst[32];
    char *t;

    bp_metrics_bind_thread(1);
    /* 10000 distinct instances fill the shard; 7 more requests for 5 new ones are "other". */
    for (int i = 0; i < 10000; i++) {
        snprintf(inst, sizeof(inst), "instance_%05d", i);
        request("ledgers", "GET", 200, inst, 10, -1);
    }
    for (int i = 10000; i < 10005; i++) {
        snprintf(inst, sizeof(inst), "instance_%05d", i);
        request("ledgers", "GET", 200, inst, 10, -1);
    }
    request("ledgers", "GET", 200, "instance_10000", 10, -1);
    request("ledgers", "GET", 200, "instance_10003", 10, -1);
    /* Existing series keep counting after the cap. */
    request("ledgers", "GET", 200, "instance_00042", 10, -1);
    t = render();
    assert_line(t, "blnkproxy_requests_total{group=\"ledgers\",method=\"GET\",status_class=\"2xx\","
                   "instance=\"other\"} 7");
    assert_line(t, "blnkproxy_requests_total{group=\"ledgers\",method=\"GET\",status_class=\"2xx\","
                   "instance=\"instance_00042\"} 2");
    assert_line(t, "blnkproxy_requests_total{group=\"ledgers\",method=\"GET\",status_class=\"2xx\","
                   "instance=\"instance_09999\"} 1");
    assert_null(strstr(t, "instance_10000"));
    assert_null(strstr(t, "instance_10004"));
    assert_int_equal(count_occurrences(t, "\nblnkproxy_requests_total{"), 10001);
    assert_line(t, "blnkproxy_request_duration_seconds_count{group=\"ledgers\"} 10008");
    free(t);
}

/* ---- several threads -------------------------------------------------------------------------- */

#define PER_THREAD 20000

struct worker {
    int shard; /* -1: unbound, writes the shared shard */
    pthread_barrier_t *go;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    if (w->shard >= 0) {
        bp_metrics_bind_thread(w->shard);
    }
    pthread_barrier_wait(w->go);
    for (int i = 0; i < PER_THREAD; i++) {
        request("transactions", "POST", 201, "instance_T", 3000, 2000);
        if (i % 4 == 0) {
            bp_metrics_auth_failure(BP_METRICS_AUTH_SCOPE);
        }
        bp_metrics_client_conns_add(1);
        bp_metrics_client_conns_add(-1);
    }
    bp_metrics_upstream_error(BP_METRICS_UPSTREAM_TIMEOUT);
    bp_metrics_client_conns_add(1); /* each thread leaves one connection open */
    return NULL;
}

static void
test_counts_sum_over_shards_and_threads(void **state)
{
    enum { N = 6 };
    pthread_t th[N];
    struct worker w[N];
    pthread_barrier_t go;
    char *t;

    pthread_barrier_init(&go, NULL, N + 1);
    for (int i = 0; i < N; i++) {
        /* Four bound threads (shards 0..3) and two that share the locked shard. */
        w[i] = (struct worker){.shard = i < 4 ? i : -1, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    pthread_barrier_wait(&go);
    /* Render while they count: it must not crash, and what it reads never exceeds the total. */
    for (int k = 0; k < 20; k++) {
        long long v;
        t = render();
        v = sample(t, "blnkproxy_requests_total{group=\"transactions\",method=\"POST\",status_class=\"2xx\","
                      "instance=\"instance_T\"}");
        assert_true(v <= (long long)N * PER_THREAD);
        free(t);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&go);
    t = render();
    assert_int_equal(
        sample(t, "blnkproxy_requests_total{group=\"transactions\",method=\"POST\",status_class=\"2xx\","
                  "instance=\"instance_T\"}"),
        (long long)N * PER_THREAD);
    assert_int_equal(sample(t, "blnkproxy_request_duration_seconds_count{group=\"transactions\"}"),
                     (long long)N * PER_THREAD);
    assert_int_equal(
        sample(t, "blnkproxy_request_duration_seconds_bucket{group=\"transactions\",le=\"0.005\"}"),
        (long long)N * PER_THREAD);
    assert_int_equal(
        sample(t, "blnkproxy_request_duration_seconds_bucket{group=\"transactions\",le=\"0.0025\"}"), 0);
    assert_line(t, "blnkproxy_request_duration_seconds_sum{group=\"transactions\"} 360.000000");
    assert_line(t, "blnkproxy_upstream_duration_seconds_sum{group=\"transactions\"} 240.000000");
    assert_int_equal(sample(t, "blnkproxy_auth_failures_total{reason=\"scope\"}"),
                     (long long)N * PER_THREAD / 4);
    assert_int_equal(sample(t, "blnkproxy_upstream_errors_total{kind=\"timeout\"}"), N);
    assert_int_equal(sample(t, "blnkproxy_client_connections"), N);
    /* One label set, one line, however many shards counted it. */
    assert_int_equal(count_occurrences(t, "instance=\"instance_T\"}"), 1);
    free(t);
}

/* ---- the rest of the interface ---------------------------------------------------------------- */

static size_t
fake_depth(const void *arg)
{
    return *(const size_t *)arg;
}

static void
test_audit_tables_and_gauges(void **state)
{
    static size_t depth = 17;
    char *t;

    bp_metrics_tables_published(12, 3);
    bp_metrics_tables_published(13, 4);
    bp_metrics_audit_commit(10, 2000);
    bp_metrics_audit_commit(5, 40000);
    bp_metrics_audit_event(BP_METRICS_AUDIT_SPOOLED, 4);
    bp_metrics_audit_event(BP_METRICS_AUDIT_SHED, 1);
    bp_metrics_audit_event(BP_METRICS_AUDIT_STORE_ERROR, 2);
    bp_metrics_upstream_conns_add(3);
    bp_metrics_upstream_conns_add(-1);
    bp_metrics_auth_failure(BP_METRICS_AUTH_MISSING);
    bp_metrics_auth_failure(BP_METRICS_AUTH_MISSING);
    bp_metrics_auth_failure(BP_METRICS_AUTH_REVOKED);
    bp_metrics_upstream_error(BP_METRICS_UPSTREAM_CONNECT);
    bp_metrics_upstream_error(BP_METRICS_UPSTREAM_TLS);
    bp_metrics_set_audit_depth_source(fake_depth, &depth);
    t = render();
    assert_line(t, "blnkproxy_credentials 13");
    assert_line(t, "blnkproxy_instances 4");
    assert_line(t, "blnkproxy_table_reloads_total 2");
    assert_line(t, "blnkproxy_audit_records_total{outcome=\"committed\"} 15");
    assert_line(t, "blnkproxy_audit_records_total{outcome=\"spooled\"} 4");
    assert_line(t, "blnkproxy_audit_records_total{outcome=\"shed\"} 1");
    assert_line(t, "blnkproxy_audit_store_errors_total 2");
    assert_line(t, "blnkproxy_audit_commit_duration_seconds_bucket{le=\"0.0025\"} 1");
    assert_line(t, "blnkproxy_audit_commit_duration_seconds_bucket{le=\"0.05\"} 2");
    assert_line(t, "blnkproxy_audit_commit_duration_seconds_sum 0.042000");
    assert_line(t, "blnkproxy_audit_commit_duration_seconds_count 2");
    assert_line(t, "# TYPE blnkproxy_audit_queue_depth gauge");
    assert_line(t, "blnkproxy_audit_queue_depth 17");
    assert_line(t, "blnkproxy_upstream_connections 2");
    assert_line(t, "blnkproxy_auth_failures_total{reason=\"missing\"} 2");
    assert_line(t, "blnkproxy_auth_failures_total{reason=\"revoked\"} 1");
    assert_line(t, "blnkproxy_auth_failures_total{reason=\"unknown\"} 0");
    assert_line(t, "blnkproxy_upstream_errors_total{kind=\"connect\"} 1");
    assert_line(t, "blnkproxy_upstream_errors_total{kind=\"tls\"} 1");
    free(t);
    depth = 0;
    t = render();
    assert_line(t, "blnkproxy_audit_queue_depth 0");
    free(t);
    bp_metrics_set_audit_depth_source(NULL, NULL);
    t = render();
    assert_null(strstr(t, "audit_queue_depth"));
    free(t);
}

static void
test_calls_without_init_are_harmless_and_reinit_starts_clean(void **state)
{
    char *t;

    bp_metrics_bind_thread(3);
    request("ledgers", "GET", 200, "instance_A", 10, 5);
    bp_metrics_shutdown();
    /* After shutdown: nothing is counted, nothing crashes, and render still answers. */
    request("ledgers", "GET", 200, "instance_A", 10, 5);
    bp_metrics_auth_failure(BP_METRICS_AUTH_MISSING);
    bp_metrics_upstream_conns_add(1);
    bp_metrics_bind_thread(0);
    t = render();
    assert_build_info(t);
    assert_line(t, "blnkproxy_auth_failures_total{reason=\"missing\"} 0");
    free(t);
    /* A second init is refused while one is live; one shard is fine; the old binding (shard 3)
     * is stale and must not index past the new state's single shard. */
    assert_int_equal(bp_metrics_init(1), BP_OK);
    assert_int_equal(bp_metrics_init(1), BP_ERR_INVALID);
    request("ledgers", "GET", 200, "instance_A", 10, 5);
    t = render();
    assert_line(t, "blnkproxy_requests_total{group=\"ledgers\",method=\"GET\",status_class=\"2xx\","
                   "instance=\"instance_A\"} 1");
    assert_line(t, "blnkproxy_upstream_connections 0");
    free(t);
    assert_int_equal(bp_metrics_init(0), BP_ERR_INVALID);
}

static void
test_small_buffer_truncates_without_overflow(void **state)
{
    struct bp_buf b;

    bp_buf_init(&b, 100);
    bp_metrics_render(&b);
    assert_true(b.len <= 100);
    bp_buf_cleanup(&b);
}

/* Issue 14: the process metrics of the Prometheus clients, from /proc/self. */
static void
test_process_metrics(void **state)
{
    char *t = render();
    struct rlimit rl;
    double now = (double)bp_clock_wall_s();

    assert_non_null(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(t, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_non_null(strstr(t, "# TYPE process_virtual_memory_bytes gauge\n"));
    assert_non_null(strstr(t, "# TYPE process_open_fds gauge\n"));
    assert_non_null(strstr(t, "# TYPE process_max_fds gauge\n"));
    assert_true(sample_value(t, "process_cpu_seconds_total") >= 0);
    assert_true(sample_value(t, "process_resident_memory_bytes") > 1024 * 1024);
    assert_true(sample_value(t, "process_virtual_memory_bytes") >= sample_value(t, "process_resident_memory_bytes"));
    /* stdin, stdout and stderr at least. */
    assert_true(sample_value(t, "process_open_fds") >= 3);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(sample_value(t, "process_max_fds") == (double)rl.rlim_cur);
    /* This test process started moments ago (/proc/self/stat, to the clock tick). */
    assert_true(sample_value(t, "process_start_time_seconds") > now - 600);
    assert_true(sample_value(t, "process_start_time_seconds") <= now + 1);
    free(t);
}

static void
test_negotiate(void **state)
{
    static const struct {
        const char *accept;
        enum bp_metrics_format want;
    } cases[] = {
        {"text/plain", BP_METRICS_TEXT},
        {"", BP_METRICS_TEXT},
        {"*/*", BP_METRICS_TEXT},
        /* What Prometheus 2.42 sends. */
        {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
         "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
         BP_METRICS_OPENMETRICS},
        {"application/openmetrics-text", BP_METRICS_OPENMETRICS},
        {"Application/OpenMetrics-Text ; Version=1.0.0", BP_METRICS_OPENMETRICS},
        {"application/openmetrics-text; version=0.0.1", BP_METRICS_OPENMETRICS},
        {"application/openmetrics-text;version=2.0.0", BP_METRICS_TEXT},
        {"application/openmetrics-text;q=0", BP_METRICS_TEXT},
        {"application/openmetrics-text;q=0.2, text/plain;version=0.0.4", BP_METRICS_TEXT},
        {"text/plain;q=0.5, application/openmetrics-text;q=0.5", BP_METRICS_OPENMETRICS},
        {"text/*;q=0.9, application/openmetrics-text;q=0.8", BP_METRICS_TEXT},
        {"application/openmetrics-text;q=abc", BP_METRICS_TEXT},
        {"application/openmetrics-text;q=1.5", BP_METRICS_TEXT},
        {",,, ;;, application/openmetrics-text ,", BP_METRICS_OPENMETRICS},
        {"application/json", BP_METRICS_TEXT},
    };

    assert_int_equal(bp_metrics_negotiate(NULL, 0), BP_METRICS_TEXT);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (bp_metrics_negotiate(cases[i].accept, strlen(cases[i].accept)) != cases[i].want) {
            print_error("Accept: %s\n", cases[i].accept);
            fail();
        }
    }
    assert_string_equal(bp_metrics_content_type(BP_METRICS_TEXT), "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(bp_metrics_content_type(BP_METRICS_OPENMETRICS),
                        "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

/* The sample lines (neither comments nor blank), in order, joined. */
static char *
samples_of(const char *text)
{
    size_t len = strlen(text);
    char *out = calloc(1, len + 1);
    size_t n = 0;

    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) + 1 : strlen(p);
        if (p[0] != '#') {
            memcpy(out + n, p, l);
            n += l;
        }
        p += l;
    }
    return out;
}

/* OpenMetrics 1.0.0: counter families named without _total (the samples keep it), build_info an
 * info family, HELP with escaped quotes, "# EOF" last; the samples are those of the text format. */
static void
test_openmetrics_render(void **state)
{
    char *text;
    char *om;
    char *s_text;
    char *s_om;

    bp_metrics_bind_thread(0);
    request("ledgers", "GET", 200, "instance_A", 1500, 1000);
    bp_metrics_auth_failure(BP_METRICS_AUTH_SCOPE);
    text = render_format(BP_METRICS_TEXT);
    om = render_format(BP_METRICS_OPENMETRICS);

    assert_non_null(strstr(om, "\n# TYPE blnkproxy_requests counter\n"));
    assert_null(strstr(om, "# TYPE blnkproxy_requests_total"));
    assert_non_null(strstr(text, "\n# TYPE blnkproxy_requests_total counter\n"));
    assert_non_null(strstr(om, "\n# HELP blnkproxy_auth_failures Requests refused"));
    assert_non_null(strstr(om, "\n# TYPE process_cpu_seconds counter\n"));
    assert_non_null(strstr(om, "\n# TYPE blnkproxy_table_reloads counter\n"));
    assert_non_null(strstr(om, "# TYPE blnkproxy_build info\n"));
    assert_non_null(strstr(text, "# TYPE blnkproxy_build_info gauge\n"));
    assert_line(om, "blnkproxy_requests_total{group=\"ledgers\",method=\"GET\",status_class=\"2xx\","
                    "instance=\"instance_A\"} 1");
    /* Histograms keep their name in both. */
    assert_non_null(strstr(om, "\n# TYPE blnkproxy_request_duration_seconds histogram\n"));
    /* A double quote in HELP: escaped in OpenMetrics, as is in the text format. */
    assert_non_null(strstr(om, "\\\"none\\\" when no route matched"));
    assert_non_null(strstr(text, " \"none\" when no route matched"));
    assert_true(strlen(om) > 6 && strcmp(om + strlen(om) - 6, "# EOF\n") == 0);
    assert_int_equal(count_occurrences(om, "# EOF"), 1);
    assert_null(strstr(text, "# EOF"));
    /* The same samples, except the process's own, which move between two reads. */
    s_text = samples_of(strstr(text, "# HELP blnkproxy_requests"));
    s_om = samples_of(strstr(om, "# HELP blnkproxy_requests"));
    assert_string_equal(s_text, s_om);
    free(s_text);
    free(s_om);
    free(text);
    free(om);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_render_has_every_family_once_and_fixed_series, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_build_info_and_start_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_exact_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_bucket_placement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_values_are_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_label_value_is_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_cap_counts_overflow_as_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_sum_over_shards_and_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_tables_and_gauges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_calls_without_init_are_harmless_and_reinit_starts_clean, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_small_buffer_truncates_without_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_process_metrics, setup, teardown),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test_setup_teardown(test_openmetrics_render, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
