/* Process metrics: state and the hot path.
 *
 * Purpose: count what the proxy does (requests by group/method/status class/instance, latency
 * histograms, upstream errors, auth failures, audit outcomes, gauges) cheaply enough to run on
 * every request, and let GET /metrics (render.c) read it all at any time.
 *
 * Threads: each loop thread binds one shard (bp_metrics_bind_thread) and is the only writer of
 * it, so a hot-path update is a relaxed load and store, with no lock and no shared cache line.
 * Any other thread (audit writer, watcher, tests) writes the shared shard under a mutex. The
 * renderer sums all shards while they are being written: values are relaxed atomics, and a new
 * series is fully built before a release store publishes it in its shard's table.
 *
 * Lifecycle: bp_metrics_init allocates every shard's tables once (they never grow, so readers
 * need no lock and nothing is ever moved); a series is allocated the first time its label set
 * is seen and then only counted, so the hot path allocates nothing once its series exists.
 * bp_metrics_shutdown frees everything; a thread's binding is remembered with the generation of
 * the init it was made under, so a stale binding falls back to the shared shard.
 *
 * Invariants: a shard holds at most BP_METRICS_SERIES_CAP request series; new label sets past it
 * are counted under instance="other" (within a reserve), and past the reserve under
 * group="other", instance="other" in a fixed array. Labels never hold credential ids. */
#include "metrics/metrics.h"

#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "metrics/metrics-int.h"

const int64_t bp_metrics__bounds_us[BP_METRICS_N_BOUNDS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
const char *const bp_metrics__bound_text[BP_METRICS_N_BOUNDS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};
const char *const bp_metrics__methods[BP_METRICS_N_METHODS] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
};
const char *const bp_metrics__classes[BP_METRICS_N_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

_Atomic(struct bp_metrics__state *) bp_metrics__g;
_Atomic uint64_t bp_metrics__credentials;
_Atomic uint64_t bp_metrics__instances;
_Atomic uint64_t bp_metrics__reloads;
_Atomic uint64_t bp_metrics__limit_nodes = 1;

static _Atomic unsigned next_gen = 1;

/* This thread's shard, valid only while gen matches the live state's. */
static _Thread_local unsigned tls_gen;
static _Thread_local int tls_shard = -1;

static pthread_mutex_t depth_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t (*depth_fn)(const void *arg);
static const void *depth_arg;

/* ---- single-writer atomics ------------------------------------------------------------------ */

/* Only one thread writes a shard at a time, so a load and a store suffice (no locked
 * read-modify-write); relaxed order is enough for counters the renderer merely sums. */
static inline void
add_u64(_Atomic uint64_t *a, uint64_t n)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline void
add_i64(_Atomic int64_t *a, int64_t n)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n, memory_order_relaxed);
}

static void
hist_observe(struct bp_metrics__hist *h, int64_t us)
{
    size_t i = 0;

    if (us < 0) {
        us = 0;
    }
    /* le semantics: a value equal to a bound belongs to that bound's bucket. */
    while (i < BP_METRICS_N_BOUNDS && us > bp_metrics__bounds_us[i]) {
        i++;
    }
    add_u64(&h->buckets[i], 1);
    add_u64(&h->sum_us, (uint64_t)us);
}

/* ---- shards --------------------------------------------------------------------------------- */

static struct bp_metrics__group *
group_new(const char *name, size_t len, uint64_t hash)
{
    struct bp_metrics__group *g = bp_calloc(1, sizeof(*g) + len + 1);

    memcpy(g->text, name, len);
    g->text[len] = '\0';
    g->name = g->text;
    g->hash = hash;
    return g;
}

static void
shard_init(struct bp_metrics__shard *s)
{
    s->series = bp_calloc(BP_METRICS_SERIES_SLOTS, sizeof(*s->series));
    s->groups = bp_calloc(BP_METRICS_GROUP_SLOTS, sizeof(*s->groups));
    s->group_other = group_new("other", 5, 0);
}

static void
shard_cleanup(struct bp_metrics__shard *s)
{
    if (s->series != NULL) {
        for (size_t i = 0; i < BP_METRICS_SERIES_SLOTS; i++) {
            bp_free(atomic_load_explicit(&s->series[i], memory_order_relaxed));
        }
    }
    if (s->groups != NULL) {
        for (size_t i = 0; i < BP_METRICS_GROUP_SLOTS; i++) {
            bp_free(atomic_load_explicit(&s->groups[i], memory_order_relaxed));
        }
    }
    bp_free(s->series);
    s->series = NULL;
    bp_free(s->groups);
    s->groups = NULL;
    bp_free(s->group_other);
    s->group_other = NULL;
}

/* The shard the calling thread writes. The shared one comes back locked; shard_leave unlocks. */
static struct bp_metrics__shard *
shard_enter(struct bp_metrics__state *m)
{
    if (tls_gen == m->gen && tls_shard >= 0 && tls_shard < m->n_shards) {
        return &m->shards[tls_shard];
    }
    pthread_mutex_lock(&m->shared_lock);
    return &m->shards[m->n_shards];
}

static void
shard_leave(struct bp_metrics__state *m, struct bp_metrics__shard *s)
{
    if (s == &m->shards[m->n_shards]) {
        pthread_mutex_unlock(&m->shared_lock);
    }
}

/* ---- label sets ----------------------------------------------------------------------------- */

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#define FNV_OFFSET 14695981039346656037ULL

static uint64_t
series_hash(const char *group, size_t glen, const char *inst, size_t ilen, unsigned method, unsigned cls)
{
    unsigned char tail[3] = {0xff, (unsigned char)method, (unsigned char)cls};
    uint64_t h = fnv1a(FNV_OFFSET, group, glen);

    h = fnv1a(h, tail, 1); /* separator: ("ab","c") and ("a","bc") must differ */
    h = fnv1a(h, inst, ilen);
    return fnv1a(h, tail + 1, 2);
}

/* Finds the series of a label set, or the empty slot where it would go (*out_slot). */
static struct bp_metrics__series *
series_find(struct bp_metrics__shard *s, uint64_t h, const char *group, const char *inst, unsigned method,
            unsigned cls, size_t *out_slot)
{
    size_t i = (size_t)h & (BP_METRICS_SERIES_SLOTS - 1);

    for (;;) {
        struct bp_metrics__series *p = atomic_load_explicit(&s->series[i], memory_order_relaxed);
        if (p == NULL) {
            *out_slot = i;
            return NULL;
        }
        if (p->hash == h && p->method == method && p->cls == cls && strcmp(p->group, group) == 0 &&
            strcmp(p->instance, inst) == 0) {
            return p;
        }
        i = (i + 1) & (BP_METRICS_SERIES_SLOTS - 1);
    }
}

static struct bp_metrics__series *
series_insert(struct bp_metrics__shard *s, size_t slot, uint64_t h, const char *group, size_t glen,
              const char *inst, size_t ilen, unsigned method, unsigned cls)
{
    struct bp_metrics__series *p = bp_malloc(sizeof(*p) + glen + 1 + ilen + 1);

    p->hash = h;
    p->method = (uint8_t)method;
    p->cls = (uint8_t)cls;
    memcpy(p->text, group, glen);
    p->text[glen] = '\0';
    memcpy(p->text + glen + 1, inst, ilen);
    p->text[glen + 1 + ilen] = '\0';
    p->group = p->text;
    p->instance = p->text + glen + 1;
    atomic_init(&p->count, 0);
    /* Release: the renderer that sees the pointer sees the finished series. */
    atomic_store_explicit(&s->series[slot], p, memory_order_release);
    s->n_series++;
    return p;
}

static void
count_request(struct bp_metrics__shard *s, const char *group, const char *inst, unsigned method, unsigned cls)
{
    size_t glen = strlen(group);
    size_t ilen = strlen(inst);
    uint64_t h = series_hash(group, glen, inst, ilen, method, cls);
    size_t slot = 0;
    struct bp_metrics__series *p = series_find(s, h, group, inst, method, cls, &slot);

    if (p == NULL && s->n_series >= BP_METRICS_SERIES_CAP) {
        inst = "other";
        ilen = 5;
        h = series_hash(group, glen, inst, ilen, method, cls);
        p = series_find(s, h, group, inst, method, cls, &slot);
        if (p == NULL && s->n_series >= BP_METRICS_SERIES_CAP + BP_METRICS_SERIES_RESERVE) {
            add_u64(&s->overflow[method][cls], 1);
            return;
        }
    }
    if (p == NULL) {
        p = series_insert(s, slot, h, group, glen, inst, ilen, method, cls);
    }
    add_u64(&p->count, 1);
}

static struct bp_metrics__group *
group_get(struct bp_metrics__shard *s, const char *name)
{
    size_t len = strlen(name);
    uint64_t h = fnv1a(FNV_OFFSET, name, len);
    size_t i = (size_t)h & (BP_METRICS_GROUP_SLOTS - 1);
    struct bp_metrics__group *g;

    for (;;) {
        g = atomic_load_explicit(&s->groups[i], memory_order_relaxed);
        if (g == NULL) {
            break;
        }
        if (g->hash == h && strcmp(g->name, name) == 0) {
            return g;
        }
        i = (i + 1) & (BP_METRICS_GROUP_SLOTS - 1);
    }
    if (s->n_groups >= BP_METRICS_GROUP_CAP) {
        return s->group_other;
    }
    g = group_new(name, len, h);
    atomic_store_explicit(&s->groups[i], g, memory_order_release);
    s->n_groups++;
    return g;
}

static unsigned
method_index(const char *method)
{
    if (method != NULL) {
        for (unsigned i = 0; i + 1 < BP_METRICS_N_METHODS; i++) {
            if (strcmp(method, bp_metrics__methods[i]) == 0) {
                return i;
            }
        }
    }
    return BP_METRICS_N_METHODS - 1;
}

static unsigned
class_index(int status)
{
    if (status < 100) {
        return 4; /* nothing valid was sent: count it with the server errors */
    }
    if (status >= 600) {
        return 4;
    }
    return (unsigned)(status / 100 - 1);
}

/* NULL and "" become "none"; an oversized value (not an id we issued) becomes "other". */
static const char *
label_value(const char *v)
{
    if (v == NULL || v[0] == '\0') {
        return "none";
    }
    if (strnlen(v, BP_METRICS_MAX_LABEL + 1) > BP_METRICS_MAX_LABEL) {
        return "other";
    }
    return v;
}

/* ---- interface ------------------------------------------------------------------------------ */

bp_err
bp_metrics_init(int n_shards)
{
    struct bp_metrics__state *m;

    if (n_shards < 1 || n_shards > 4096 || atomic_load(&bp_metrics__g) != NULL) {
        return BP_ERR_INVALID;
    }
    m = bp_calloc(1, sizeof(*m));
    m->n_shards = n_shards;
    m->shards = bp_calloc((size_t)n_shards + 1, sizeof(*m->shards));
    for (int i = 0; i <= n_shards; i++) {
        shard_init(&m->shards[i]);
    }
    pthread_mutex_init(&m->shared_lock, NULL);
    m->gen = atomic_fetch_add(&next_gen, 1);
    /* The process's own start (as the Prometheus clients report it), not this call's; the
     * clock when procfs cannot say. */
    m->start_wall_us = bp_metrics__process_start_us();
    if (m->start_wall_us <= 0) {
        m->start_wall_us = bp_clock_wall_us();
    }
    atomic_store_explicit(&bp_metrics__g, m, memory_order_release);
    return BP_OK;
}

void
bp_metrics_shutdown(void)
{
    struct bp_metrics__state *m = atomic_exchange(&bp_metrics__g, NULL);

    if (m == NULL) {
        return;
    }
    for (int i = 0; i <= m->n_shards; i++) {
        shard_cleanup(&m->shards[i]);
    }
    pthread_mutex_destroy(&m->shared_lock);
    bp_free(m->shards);
    bp_free(m);
    bp_metrics_traffic_reset();
    atomic_store(&bp_metrics__credentials, 0);
    atomic_store(&bp_metrics__instances, 0);
    atomic_store(&bp_metrics__reloads, 0);
    bp_metrics_set_audit_depth_source(NULL, NULL);
}

void
bp_metrics_bind_thread(int shard)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);

    if (m == NULL) {
        return;
    }
    /* Two writers on one shard would lose counts silently; a wrong index is a wiring bug. */
    BP_BUG_ON(shard < 0 || shard >= m->n_shards);
    tls_gen = m->gen;
    tls_shard = shard;
}

void
bp_metrics_request(const struct bp_metrics_request *r)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;
    struct bp_metrics__group *g;
    const char *group;
    const char *inst;
    unsigned method;
    unsigned cls;

    if (m == NULL || r == NULL) {
        return;
    }
    group = label_value(r->group);
    inst = label_value(r->instance);
    method = method_index(r->method);
    cls = class_index(r->status);
    s = shard_enter(m);
    count_request(s, group, inst, method, cls);
    g = group_get(s, group);
    hist_observe(&g->req, r->total_us);
    if (r->upstream_us >= 0) {
        hist_observe(&g->up, r->upstream_us);
    }
    shard_leave(m, s);
}

void
bp_metrics_rate_limited(enum bp_metrics_limited kind)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL || (unsigned)kind >= BP_METRICS_LIMITED__COUNT) {
        return;
    }
    s = shard_enter(m);
    add_u64(&s->limited[kind], 1);
    shard_leave(m, s);
}

void
bp_metrics_idempotency(enum bp_metrics_idem what, uint64_t n)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL || (unsigned)what >= BP_METRICS_IDEM__COUNT) {
        return;
    }
    s = shard_enter(m);
    add_u64(&s->idem[what], n);
    shard_leave(m, s);
}

void
bp_metrics_rate_limit_nodes(unsigned n)
{
    atomic_store_explicit(&bp_metrics__limit_nodes, n, memory_order_relaxed);
}

void
bp_metrics_auth_failure(enum bp_metrics_auth_reason reason)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL || (unsigned)reason >= BP_METRICS_AUTH__COUNT) {
        return;
    }
    s = shard_enter(m);
    add_u64(&s->auth[reason], 1);
    shard_leave(m, s);
}

void
bp_metrics_upstream_error(enum bp_metrics_upstream_error kind)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL || (unsigned)kind >= BP_METRICS_UPSTREAM__COUNT) {
        return;
    }
    s = shard_enter(m);
    add_u64(&s->upstream_err[kind], 1);
    shard_leave(m, s);
}

void
bp_metrics_client_conns_add(int delta)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL) {
        return;
    }
    s = shard_enter(m);
    add_i64(&s->client_conns, delta);
    shard_leave(m, s);
}

void
bp_metrics_client_conn_refused(void)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL) {
        return;
    }
    s = shard_enter(m);
    add_u64(&s->client_conns_refused, 1);
    shard_leave(m, s);
}

void
bp_metrics_tls_handshake(bool ok)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL) {
        return;
    }
    s = shard_enter(m);
    add_u64(ok ? &s->tls_handshakes : &s->tls_handshake_failures, 1);
    shard_leave(m, s);
}

void
bp_metrics_upstream_conns_add(int delta)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL) {
        return;
    }
    s = shard_enter(m);
    add_i64(&s->upstream_conns, delta);
    shard_leave(m, s);
}

void
bp_metrics_tables_published(size_t credentials, size_t instances)
{
    atomic_store_explicit(&bp_metrics__credentials, (uint64_t)credentials, memory_order_relaxed);
    atomic_store_explicit(&bp_metrics__instances, (uint64_t)instances, memory_order_relaxed);
    atomic_fetch_add_explicit(&bp_metrics__reloads, 1, memory_order_relaxed);
}

void
bp_metrics_audit_commit(size_t records, int64_t commit_us)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL) {
        return;
    }
    s = shard_enter(m);
    hist_observe(&s->audit_commit, commit_us);
    add_u64(&s->audit[BP_METRICS_AUDIT_COMMITTED], records);
    shard_leave(m, s);
}

void
bp_metrics_audit_event(enum bp_metrics_audit_event ev, size_t n)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    struct bp_metrics__shard *s;

    if (m == NULL || (unsigned)ev >= BP_METRICS_AUDIT__COUNT) {
        return;
    }
    s = shard_enter(m);
    add_u64(&s->audit[ev], n);
    shard_leave(m, s);
}

static pthread_mutex_t node_lock = PTHREAD_MUTEX_INITIALIZER;
static char node_name[256];
_Atomic int bp_metrics__store_up = 1;
_Atomic uint64_t bp_metrics__store_outages;

void
bp_metrics_set_node(const char *node)
{
    pthread_mutex_lock(&node_lock);
    snprintf(node_name, sizeof(node_name), "%s", node != NULL ? node : "");
    pthread_mutex_unlock(&node_lock);
}

bool
bp_metrics__node(char *out, size_t cap)
{
    pthread_mutex_lock(&node_lock);
    snprintf(out, cap, "%s", node_name);
    pthread_mutex_unlock(&node_lock);
    return out[0] != '\0';
}

void
bp_metrics_store_up(bool up)
{
    int was = atomic_exchange(&bp_metrics__store_up, up ? 1 : 0);

    if (was == 1 && !up) {
        atomic_fetch_add(&bp_metrics__store_outages, 1);
    }
}

void
bp_metrics_set_audit_depth_source(size_t (*depth)(const void *arg), const void *arg)
{
    pthread_mutex_lock(&depth_lock);
    depth_fn = depth;
    depth_arg = arg;
    pthread_mutex_unlock(&depth_lock);
}

bool
bp_metrics__audit_depth(size_t *out)
{
    bool have = false;

    /* Held across the call so that clearing the source (shutdown) waits for a render using it. */
    pthread_mutex_lock(&depth_lock);
    if (depth_fn != NULL) {
        *out = depth_fn(depth_arg);
        have = true;
    }
    pthread_mutex_unlock(&depth_lock);
    return have;
}
