/* The exposition of the process metrics: the Prometheus text format 0.0.4, or OpenMetrics 1.0.0
 * when the scraper asks for it (bp_metrics_negotiate). The two differ only in the metadata lines:
 * an OpenMetrics counter family is named without its _total suffix (its samples keep it), the
 * build information is an info family, HELP escapes double quotes, and the text ends with
 * "# EOF". Samples are the same bytes in both.
 *
 * Runs on any thread while loop threads keep counting: it sums the shards with relaxed loads,
 * so one scrape may see a request in one counter and not yet in another, which Prometheus
 * tolerates; each histogram's _count is the sum of its own buckets, so the +Inf bucket and
 * _count always agree. Label sets are merged across shards and sorted, so the text is stable.
 * Every family gets one # HELP and one # TYPE line; the fixed-label series (auth reasons,
 * upstream error kinds, audit outcomes) are always written, 0 when nothing happened. */
#include "metrics/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health/health.h"
#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/str.h"
#include "lib/version.h"
#include "metrics/metrics-int.h"

#define P "blnkproxy_"

struct row {
    const char *group;
    const char *instance;
    unsigned method;
    unsigned cls;
    uint64_t count;
};

struct hist_sum {
    uint64_t buckets[BP_METRICS_N_BOUNDS + 1];
    uint64_t sum_us;
};

struct group_row {
    const char *name;
    struct hist_sum req;
    struct hist_sum up;
};

/* ---- text helpers ---------------------------------------------------------------------------- */

/* A full buffer truncates the exposition; bp_buf keeps what fitted, and the caller sized it. */
static void
put(struct bp_buf *b, const char *s)
{
    (void)bp_buf_append_str(b, s);
}

__attribute__((format(printf, 2, 3))) static void
putf(struct bp_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        (void)bp_buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

/* Label value escaping of the text format: backslash, double quote and line feed. */
static void
put_label(struct bp_buf *b, const char *v)
{
    const char *run = v;

    for (const char *p = v; *p != '\0'; p++) {
        const char *esc = NULL;
        if (*p == '\\') {
            esc = "\\\\";
        } else if (*p == '"') {
            esc = "\\\"";
        } else if (*p == '\n') {
            esc = "\\n";
        }
        if (esc != NULL) {
            (void)bp_buf_append(b, run, (size_t)(p - run));
            put(b, esc);
            run = p + 1;
        }
    }
    put(b, run);
}

/* HELP text: the text format escapes backslash and line feed, OpenMetrics double quotes too. */
static void
put_help(struct bp_buf *b, const char *help, bool om)
{
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\') {
            put(b, "\\\\");
        } else if (*p == '\n') {
            put(b, "\\n");
        } else if (*p == '"' && om) {
            put(b, "\\\"");
        } else {
            (void)bp_buf_append(b, p, 1);
        }
    }
}

/* # HELP and # TYPE of one family. name is the sample name; an OpenMetrics counter family is
 * named without its "_total" (OpenMetrics 1.0.0: the suffix belongs to the sample). */
static void
family(struct bp_buf *b, bool om, const char *name, const char *type, const char *help)
{
    size_t len = strlen(name);

    if (om && strcmp(type, "counter") == 0 && len > 6 && strcmp(name + len - 6, "_total") == 0) {
        len -= 6;
    }
    putf(b, "# HELP %.*s ", (int)len, name);
    put_help(b, help, om);
    putf(b, "\n# TYPE %.*s %s\n", (int)len, name, type);
}

/* Microseconds as decimal seconds, exactly (no floating point rounding). */
static void
put_seconds(struct bp_buf *b, uint64_t us)
{
    putf(b, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

/* ---- reading shards --------------------------------------------------------------------------- */

static uint64_t
ld(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void
hist_add(struct hist_sum *out, struct bp_metrics__hist *h)
{
    for (size_t i = 0; i <= BP_METRICS_N_BOUNDS; i++) {
        out->buckets[i] += ld(&h->buckets[i]);
    }
    out->sum_us += ld(&h->sum_us);
}

static int
row_cmp(const void *a, const void *b)
{
    const struct row *x = a;
    const struct row *y = b;
    int c = strcmp(x->group, y->group);

    if (c != 0) {
        return c;
    }
    if (x->method != y->method) {
        return x->method < y->method ? -1 : 1;
    }
    if (x->cls != y->cls) {
        return x->cls < y->cls ? -1 : 1;
    }
    return strcmp(x->instance, y->instance);
}

/* Every request series of every shard, merged by label set and sorted. */
static struct row *
collect_rows(struct bp_metrics__state *m, size_t *out_n)
{
    size_t cap = 64;
    size_t n = 0;
    size_t merged = 0;
    struct row *rows = bp_malloc(cap * sizeof(*rows));

    for (int si = 0; m != NULL && si <= m->n_shards; si++) {
        struct bp_metrics__shard *s = &m->shards[si];
        for (size_t i = 0; i < BP_METRICS_SERIES_SLOTS + BP_METRICS_N_METHODS * BP_METRICS_N_CLASSES; i++) {
            struct row r;
            if (i < BP_METRICS_SERIES_SLOTS) {
                struct bp_metrics__series *p = atomic_load_explicit(&s->series[i], memory_order_acquire);
                if (p == NULL) {
                    continue;
                }
                r = (struct row){p->group, p->instance, p->method, p->cls, ld(&p->count)};
            } else {
                size_t k = i - BP_METRICS_SERIES_SLOTS;
                unsigned mi = (unsigned)(k / BP_METRICS_N_CLASSES);
                unsigned ci = (unsigned)(k % BP_METRICS_N_CLASSES);
                uint64_t c = ld(&s->overflow[mi][ci]);
                if (c == 0) {
                    continue;
                }
                r = (struct row){"other", "other", mi, ci, c};
            }
            if (n == cap) {
                cap *= 2;
                rows = bp_realloc(rows, cap * sizeof(*rows));
            }
            rows[n++] = r;
        }
    }
    if (n > 0) {
        qsort(rows, n, sizeof(*rows), row_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        if (merged > 0 && row_cmp(&rows[merged - 1], &rows[i]) == 0) {
            rows[merged - 1].count += rows[i].count;
        } else {
            rows[merged++] = rows[i];
        }
    }
    *out_n = merged;
    return rows;
}

static int
group_cmp(const void *a, const void *b)
{
    return strcmp(((const struct group_row *)a)->name, ((const struct group_row *)b)->name);
}

static struct group_row *
group_row_get(struct group_row **rows, size_t *n, size_t *cap, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*rows)[i].name, name) == 0) {
            return &(*rows)[i];
        }
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *rows = bp_realloc(*rows, *cap * sizeof(**rows));
    }
    memset(&(*rows)[*n], 0, sizeof(**rows));
    (*rows)[*n].name = name;
    return &(*rows)[(*n)++];
}

static void
group_collect_one(struct group_row **rows, size_t *n, size_t *cap, struct bp_metrics__group *g)
{
    struct group_row *r = group_row_get(rows, n, cap, g->name);

    hist_add(&r->req, &g->req);
    hist_add(&r->up, &g->up);
}

/* Histograms by group, merged across shards and sorted by name. Groups are few (route
 * categories), so a linear merge is fine. */
static struct group_row *
collect_groups(struct bp_metrics__state *m, size_t *out_n)
{
    struct group_row *rows = NULL;
    size_t n = 0;
    size_t cap = 0;

    for (int si = 0; m != NULL && si <= m->n_shards; si++) {
        struct bp_metrics__shard *s = &m->shards[si];
        struct bp_metrics__group *other = s->group_other;
        uint64_t used = 0;
        for (size_t i = 0; i < BP_METRICS_GROUP_SLOTS; i++) {
            struct bp_metrics__group *g = atomic_load_explicit(&s->groups[i], memory_order_acquire);
            if (g != NULL) {
                group_collect_one(&rows, &n, &cap, g);
            }
        }
        for (size_t i = 0; i <= BP_METRICS_N_BOUNDS; i++) {
            used += ld(&other->req.buckets[i]);
        }
        if (used > 0) {
            group_collect_one(&rows, &n, &cap, other);
        }
    }
    if (n > 0) {
        qsort(rows, n, sizeof(*rows), group_cmp);
    }
    *out_n = n;
    return rows;
}

/* ---- writing families ------------------------------------------------------------------------- */

/* One histogram's series; label is "" or `name="escaped",` text to put before le. */
static void
put_hist(struct bp_buf *b, const char *name, const char *label_name, const char *label_value,
         const struct hist_sum *h)
{
    uint64_t cum = 0;

    for (size_t i = 0; i <= BP_METRICS_N_BOUNDS; i++) {
        cum += h->buckets[i];
        putf(b, "%s_bucket{", name);
        if (label_name != NULL) {
            putf(b, "%s=\"", label_name);
            put_label(b, label_value);
            put(b, "\",");
        }
        putf(b, "le=\"%s\"} %" PRIu64 "\n", i < BP_METRICS_N_BOUNDS ? bp_metrics__bound_text[i] : "+Inf",
             cum);
    }
    putf(b, "%s_sum", name);
    if (label_name != NULL) {
        putf(b, "{%s=\"", label_name);
        put_label(b, label_value);
        put(b, "\"}");
    }
    put(b, " ");
    put_seconds(b, h->sum_us);
    putf(b, "\n%s_count", name);
    if (label_name != NULL) {
        putf(b, "{%s=\"", label_name);
        put_label(b, label_value);
        put(b, "\"}");
    }
    putf(b, " %" PRIu64 "\n", cum);
}

static void
render_requests(struct bp_buf *b, bool om, struct bp_metrics__state *m)
{
    size_t n = 0;
    struct row *rows = collect_rows(m, &n);
    size_t ng = 0;
    struct group_row *groups = collect_groups(m, &ng);

    family(b, om, P "requests_total", "counter",
           "Finished requests by route group (the route category of a /proxy/ request, \"none\" when no "
           "route matched), method, status class and instance.");
    for (size_t i = 0; i < n; i++) {
        put(b, P "requests_total{group=\"");
        put_label(b, rows[i].group);
        putf(b, "\",method=\"%s\",status_class=\"%s\",instance=\"", bp_metrics__methods[rows[i].method],
             bp_metrics__classes[rows[i].cls]);
        put_label(b, rows[i].instance);
        putf(b, "\"} %" PRIu64 "\n", rows[i].count);
    }
    family(b, om, P "request_duration_seconds", "histogram",
           "Time from a request's arrival to its response, by route group.");
    for (size_t i = 0; i < ng; i++) {
        put_hist(b, P "request_duration_seconds", "group", groups[i].name, &groups[i].req);
    }
    family(b, om, P "upstream_duration_seconds", "histogram",
           "Time Core took to answer forwarded requests, by route group.");
    for (size_t i = 0; i < ng; i++) {
        uint64_t c = 0;
        for (size_t k = 0; k <= BP_METRICS_N_BOUNDS; k++) {
            c += groups[i].up.buckets[k];
        }
        /* A group that was never forwarded (every request refused) has no upstream series. */
        if (c > 0) {
            put_hist(b, P "upstream_duration_seconds", "group", groups[i].name, &groups[i].up);
        }
    }
    bp_free(rows);
    bp_free(groups);
}

struct fixed_sums {
    uint64_t auth[BP_METRICS_AUTH__COUNT];
    uint64_t upstream_err[BP_METRICS_UPSTREAM__COUNT];
    uint64_t limited[BP_METRICS_LIMITED__COUNT];
    uint64_t idem[BP_METRICS_IDEM__COUNT];
    uint64_t audit[BP_METRICS_AUDIT__COUNT];
    struct hist_sum audit_commit;
    int64_t client_conns;
    int64_t upstream_conns;
    uint64_t client_conns_refused;
    uint64_t tls_handshakes;
    uint64_t tls_handshake_failures;
};

static void
sum_fixed(struct bp_metrics__state *m, struct fixed_sums *f)
{
    memset(f, 0, sizeof(*f));
    for (int si = 0; m != NULL && si <= m->n_shards; si++) {
        struct bp_metrics__shard *s = &m->shards[si];
        for (size_t i = 0; i < BP_METRICS_AUTH__COUNT; i++) {
            f->auth[i] += ld(&s->auth[i]);
        }
        for (size_t i = 0; i < BP_METRICS_UPSTREAM__COUNT; i++) {
            f->upstream_err[i] += ld(&s->upstream_err[i]);
        }
        for (size_t i = 0; i < BP_METRICS_LIMITED__COUNT; i++) {
            f->limited[i] += ld(&s->limited[i]);
        }
        for (size_t i = 0; i < BP_METRICS_AUDIT__COUNT; i++) {
            f->audit[i] += ld(&s->audit[i]);
        }
        for (size_t i = 0; i < BP_METRICS_IDEM__COUNT; i++) {
            f->idem[i] += ld(&s->idem[i]);
        }
        hist_add(&f->audit_commit, &s->audit_commit);
        f->client_conns += atomic_load_explicit(&s->client_conns, memory_order_relaxed);
        f->client_conns_refused += ld(&s->client_conns_refused);
        f->tls_handshakes += ld(&s->tls_handshakes);
        f->tls_handshake_failures += ld(&s->tls_handshake_failures);
        f->upstream_conns += atomic_load_explicit(&s->upstream_conns, memory_order_relaxed);
    }
    /* Shards count deltas, so a read between an open on one thread and the matching close on
     * another could dip below zero for an instant; a gauge of connections never does. */
    if (f->client_conns < 0) {
        f->client_conns = 0;
    }
    if (f->upstream_conns < 0) {
        f->upstream_conns = 0;
    }
}

static void
render_fixed(struct bp_buf *b, bool om, const struct fixed_sums *f)
{
    static const char *const auth[BP_METRICS_AUTH__COUNT] = {"missing", "unknown", "expired",
                                                             "revoked", "scope",   "instance", "ip_not_allowed"};
    static const char *const up[BP_METRICS_UPSTREAM__COUNT] = {"connect", "timeout", "reset", "tls", "other"};

    family(b, om, P "upstream_errors_total", "counter",
           "Requests to Core that failed without an answer, by kind.");
    for (size_t i = 0; i < BP_METRICS_UPSTREAM__COUNT; i++) {
        putf(b, P "upstream_errors_total{kind=\"%s\"} %" PRIu64 "\n", up[i], f->upstream_err[i]);
    }
    family(b, om, P "auth_failures_total", "counter",
           "Requests refused by authentication or authorisation, by reason.");
    for (size_t i = 0; i < BP_METRICS_AUTH__COUNT; i++) {
        putf(b, P "auth_failures_total{reason=\"%s\"} %" PRIu64 "\n", auth[i], f->auth[i]);
    }
    family(b, om, P "rate_limited_total", "counter",
           "Requests refused 429: a credential over its rate (credential), or a peer over its failed "
           "authentications (auth_failures).");
    putf(b, P "rate_limited_total{kind=\"credential\"} %" PRIu64 "\n", f->limited[BP_METRICS_LIMITED_CREDENTIAL]);
    putf(b, P "rate_limited_total{kind=\"auth_failures\"} %" PRIu64 "\n",
         f->limited[BP_METRICS_LIMITED_AUTH_FAILURES]);
    family(b, om, P "idempotency_total", "counter",
           "Idempotency-Key requests and entries, by outcome: stored (first answer kept), replayed, "
           "mismatch (422), in_flight (409), outcome_unknown (409), not_kept (409), unknown_found (no answer after "
           "sending), retried (a transaction re-forwarded with its reference), purged (expired entries).");
    for (size_t i = 0; i < BP_METRICS_IDEM__COUNT; i++) {
        static const char *const idem[BP_METRICS_IDEM__COUNT] = {
            "stored",  "replayed",      "mismatch", "in_flight", "outcome_unknown",
            "not_kept", "unknown_found", "retried",  "purged"};
        putf(b, P "idempotency_total{outcome=\"%s\"} %" PRIu64 "\n", idem[i], f->idem[i]);
    }
    family(b, om, P "rate_limit_nodes", "gauge",
           "Live nodes sharing each rate limit: this node allows its share (the rate divided by this).");
    putf(b, P "rate_limit_nodes %" PRIu64 "\n", atomic_load(&bp_metrics__limit_nodes));
    family(b, om, P "client_connections", "gauge", "Open client connections.");
    putf(b, P "client_connections %" PRId64 "\n", f->client_conns);
    family(b, om, P "client_connections_refused_total", "counter",
           "Client connections closed at once because their peer (an IPv4 address or an IPv6 /64) had "
           "max_connections_per_peer open.");
    putf(b, P "client_connections_refused_total %" PRIu64 "\n", f->client_conns_refused);
    family(b, om, P "tls_handshakes_total", "counter",
           "TLS handshakes on tls_listen, by result: ok, or failed (a bad or unsupported hello, a "
           "client that left or timed out during the handshake).");
    putf(b, P "tls_handshakes_total{result=\"ok\"} %" PRIu64 "\n", f->tls_handshakes);
    putf(b, P "tls_handshakes_total{result=\"failed\"} %" PRIu64 "\n", f->tls_handshake_failures);
    family(b, om, P "upstream_connections", "gauge", "Open connections to Blnk Core instances.");
    putf(b, P "upstream_connections %" PRId64 "\n", f->upstream_conns);
}

static void
render_audit(struct bp_buf *b, bool om, const struct fixed_sums *f)
{
    size_t depth = 0;

    if (bp_metrics__audit_depth(&depth)) {
        family(b, om, P "audit_queue_depth", "gauge", "Audit records waiting to be committed.");
        putf(b, P "audit_queue_depth %zu\n", depth);
    }
    family(b, om, P "audit_commit_duration_seconds", "histogram", "Time to commit one batch of audit records.");
    put_hist(b, P "audit_commit_duration_seconds", NULL, NULL, &f->audit_commit);
    family(b, om, P "audit_records_total", "counter",
           "Audit records by outcome: committed to the store, spooled to disk while the store failed, "
           "or shed because the queue was full.");
    putf(b, P "audit_records_total{outcome=\"committed\"} %" PRIu64 "\n",
         f->audit[BP_METRICS_AUDIT_COMMITTED]);
    putf(b, P "audit_records_total{outcome=\"spooled\"} %" PRIu64 "\n", f->audit[BP_METRICS_AUDIT_SPOOLED]);
    putf(b, P "audit_records_total{outcome=\"shed\"} %" PRIu64 "\n", f->audit[BP_METRICS_AUDIT_SHED]);
    family(b, om, P "audit_store_errors_total", "counter",
           "Failed attempts to commit audit records to the store.");
    putf(b, P "audit_store_errors_total %" PRIu64 "\n", f->audit[BP_METRICS_AUDIT_STORE_ERROR]);
}

/* build_info (an info family in OpenMetrics, a gauge of 1 in the text format, as the Prometheus
 * clients write it) and the standard process metrics (process.c). */
static void
render_process(struct bp_buf *b, bool om, struct bp_metrics__state *m)
{
    struct bp_metrics__process p;
    static const char build_help[] = "Build information: the release version and the git revision; the value is "
                                     "always 1.";

    if (om) {
        family(b, om, P "build", "info", build_help);
    } else {
        family(b, om, P "build_info", "gauge", build_help);
    }
    put(b, P "build_info{version=\"");
    put_label(b, bp_version_get());
    put(b, "\",revision=\"");
    put_label(b, bp_version_revision());
    put(b, "\"} 1\n");
    if (m != NULL) {
        family(b, om, "process_start_time_seconds", "gauge",
               "Start time of the process since the Unix epoch in seconds.");
        put(b, "process_start_time_seconds ");
        put_seconds(b, m->start_wall_us > 0 ? (uint64_t)m->start_wall_us : 0);
        put(b, "\n");
    }
    bp_metrics__process_read(&p);
    if (p.has_stat) {
        family(b, om, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        put(b, "process_cpu_seconds_total ");
        put_seconds(b, p.cpu_us);
        put(b, "\n");
        family(b, om, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        putf(b, "process_resident_memory_bytes %" PRIu64 "\n", p.rss_bytes);
        family(b, om, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        putf(b, "process_virtual_memory_bytes %" PRIu64 "\n", p.vsize_bytes);
    }
    if (p.has_fds) {
        family(b, om, "process_open_fds", "gauge", "Number of open file descriptors.");
        putf(b, "process_open_fds %" PRIu64 "\n", p.open_fds);
    }
    if (p.has_max_fds) {
        family(b, om, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        putf(b, "process_max_fds %" PRIu64 "\n", p.max_fds);
    }
}

static void
render_tables(struct bp_buf *b, bool om)
{
    family(b, om, P "credentials", "gauge", "Credentials (API keys and OAuth clients) in the published table.");
    putf(b, P "credentials %" PRIu64 "\n", atomic_load(&bp_metrics__credentials));
    family(b, om, P "instances", "gauge", "Blnk Core instances in the published table.");
    putf(b, P "instances %" PRIu64 "\n", atomic_load(&bp_metrics__instances));
    family(b, om, P "table_reloads_total", "counter", "Credential and instance tables published since start.");
    putf(b, P "table_reloads_total %" PRIu64 "\n", atomic_load(&bp_metrics__reloads));
}

/* Issue 14: each published instance's health, and its name. Bounded by the instances configured
 * (labels are the instance id and the operator's name for it, never a secret). */
struct inst_rows {
    struct bp_buf *b;
    bool info;
};

static void
put_instance(void *arg, const char *id, const char *name, bool up)
{
    struct inst_rows *r = arg;

    if (r->info) {
        put(r->b, P "instance_info{instance=\"");
        put_label(r->b, id);
        put(r->b, "\",name=\"");
        put_label(r->b, name);
        put(r->b, "\"} 1\n");
    } else {
        put(r->b, P "instance_up{instance=\"");
        put_label(r->b, id);
        putf(r->b, "\"} %d\n", up ? 1 : 0);
    }
}

static void
render_instances(struct bp_buf *b, bool om)
{
    static const char info_help[] = "Each enabled Blnk Core instance and its name; the value is always 1.";
    struct inst_rows r = {.b = b, .info = false};

    family(b, om, P "instance_up", "gauge",
           "1 while the Core instance is served, 0 while it is down (failing its health; its requests get 503).");
    bp_health_each(put_instance, &r);
    if (om) {
        family(b, om, P "instance", "info", info_help);
    } else {
        family(b, om, P "instance_info", "gauge", info_help);
    }
    r.info = true;
    bp_health_each(put_instance, &r);
}

/* Issue 9: which node this is, and whether its store answers. node_info is an info family in
 * OpenMetrics, as build_info is. */
static void
render_cluster(struct bp_buf *b, bool om)
{
    static const char node_help[] = "This server's node name (node_name); the value is always 1.";
    char node[256];

    if (bp_metrics__node(node, sizeof(node))) {
        if (om) {
            family(b, om, P "node", "info", node_help);
        } else {
            family(b, om, P "node_info", "gauge", node_help);
        }
        put(b, P "node_info{node=\"");
        put_label(b, node);
        put(b, "\"} 1\n");
    }
    family(b, om, P "store_up", "gauge", "1 while the store answers the watcher's checks, else 0.");
    putf(b, P "store_up %d\n", atomic_load(&bp_metrics__store_up));
    family(b, om, P "store_outages_total", "counter", "Times the store stopped answering the watcher's checks.");
    putf(b, P "store_outages_total %" PRIu64 "\n", atomic_load(&bp_metrics__store_outages));
}

void
bp_metrics_render_format(enum bp_metrics_format format, struct bp_buf *out)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    bool om = format == BP_METRICS_OPENMETRICS;
    struct fixed_sums f;

    sum_fixed(m, &f);
    render_process(out, om, m);
    render_requests(out, om, m);
    render_fixed(out, om, &f);
    render_audit(out, om, &f);
    render_tables(out, om);
    render_instances(out, om);
    render_cluster(out, om);
    if (om) {
        put(out, "# EOF\n");
    }
}

void
bp_metrics_render(struct bp_buf *out)
{
    bp_metrics_render_format(BP_METRICS_TEXT, out);
}

const char *
bp_metrics_content_type(enum bp_metrics_format format)
{
    return format == BP_METRICS_OPENMETRICS ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                            : "text/plain; version=0.0.4; charset=utf-8";
}

const char *
bp_metrics_render_for(const char *accept, size_t accept_len, struct bp_buf *out)
{
    enum bp_metrics_format format = bp_metrics_negotiate(accept, accept_len);

    bp_metrics_render_format(format, out);
    return bp_metrics_content_type(format);
}

/* ---- content negotiation ----------------------------------------------------------------------- */

/* One media range of an Accept value: "type/subtype;param=value;q=0.5". */
struct range {
    const char *type;
    size_t type_len;
    const char *version; /* the version parameter, NULL when absent */
    size_t version_len;
    int q_milli;         /* q times 1000: 0..1000 */
};

static bool
ieq(const char *a, size_t alen, const char *b)
{
    return bp_str_ieq(a, alen, b);
}

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    return p;
}

static size_t
trim_len(const char *p, size_t len)
{
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
        len--;
    }
    return len;
}

/* "0.5" -> 500, "1" -> 1000; anything else (out of 0..1, not a number) is -1. */
static int
parse_q(const char *p, size_t len)
{
    int v = 0;
    int scale = 1000;

    if (len == 0 || (p[0] != '0' && p[0] != '1')) {
        return -1;
    }
    v = (p[0] - '0') * 1000;
    if (len > 1 && p[1] != '.') {
        return -1;
    }
    for (size_t i = 2; i < len && i < 5; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        scale /= 10;
        v += (p[i] - '0') * scale;
    }
    return v > 1000 ? -1 : v;
}

/* Parses one media range (len bytes, between commas). False for an unparsable one, which is
 * then ignored. */
static bool
parse_range(const char *p, size_t len, struct range *out)
{
    const char *end = p + len;
    const char *semi = memchr(p, ';', len);

    memset(out, 0, sizeof(*out));
    out->q_milli = 1000;
    p = skip_ws(p, end);
    out->type = p;
    out->type_len = trim_len(p, (size_t)((semi != NULL ? semi : end) - p));
    if (out->type_len == 0) {
        return false;
    }
    while (semi != NULL) {
        const char *param = skip_ws(semi + 1, end);
        const char *next = memchr(param, ';', (size_t)(end - param));
        const char *pend = next != NULL ? next : end;
        const char *eq = memchr(param, '=', (size_t)(pend - param));
        if (eq != NULL) {
            size_t name_len = trim_len(param, (size_t)(eq - param));
            const char *val = skip_ws(eq + 1, pend);
            size_t val_len = trim_len(val, (size_t)(pend - val));
            if (ieq(param, name_len, "q")) {
                out->q_milli = parse_q(val, val_len);
                if (out->q_milli < 0) {
                    return false;
                }
            } else if (ieq(param, name_len, "version")) {
                out->version = val;
                out->version_len = val_len;
            }
        }
        semi = next;
    }
    return true;
}

enum bp_metrics_format
bp_metrics_negotiate(const char *accept, size_t len)
{
    int om_q = 0;
    int text_q = -1;
    const char *p = accept;
    const char *end = accept != NULL ? accept + len : NULL;

    if (accept == NULL) {
        return BP_METRICS_TEXT;
    }
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t n = (size_t)((comma != NULL ? comma : end) - p);
        struct range r;

        if (parse_range(p, n, &r)) {
            bool om_version = r.version == NULL || bp_str_eq(r.version, r.version_len, "1.0.0") ||
                              bp_str_eq(r.version, r.version_len, "0.0.1");
            if (ieq(r.type, r.type_len, "application/openmetrics-text") && om_version) {
                om_q = r.q_milli > om_q ? r.q_milli : om_q;
            } else if (ieq(r.type, r.type_len, "text/plain") || ieq(r.type, r.type_len, "text/*") ||
                       ieq(r.type, r.type_len, "*/*")) {
                text_q = r.q_milli > text_q ? r.q_milli : text_q;
            }
        }
        p = comma != NULL ? comma + 1 : end;
    }
    /* OpenMetrics only when asked for by name, and preferred at least as much as the text
     * format; a client that names neither (or only other types) gets the text format, which
     * every Prometheus-compatible scraper reads. */
    return om_q > 0 && om_q >= text_q ? BP_METRICS_OPENMETRICS : BP_METRICS_TEXT;
}
