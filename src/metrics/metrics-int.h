#ifndef BP_METRICS_METRICS_INT_H
#define BP_METRICS_METRICS_INT_H

/* Shared between metrics.c (the state and the hot path) and render.c (the exposition text).
 * Not part of the module's interface. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"

/* Histogram upper bounds in microseconds (the contract's .001 .. 10 seconds), plus +Inf. */
#define BP_METRICS_N_BOUNDS 13
/* Labelled request series a shard keeps before new label sets are counted as instance="other".
 * A series costs one allocation and is never freed before shutdown, so this bounds the memory a
 * stream of distinct instance ids could make us hold. */
#define BP_METRICS_SERIES_CAP 10000
/* Room above the cap for the instance="other" series themselves (one per group, method, class). */
#define BP_METRICS_SERIES_RESERVE 1024
/* Open-addressing table size: a power of two well above cap + reserve, so probes stay short and
 * the table never fills (it never grows: readers walk it without a lock). */
#define BP_METRICS_SERIES_SLOTS 16384
#define BP_METRICS_GROUP_CAP 256
#define BP_METRICS_GROUP_SLOTS 512
/* A label value longer than this is not kept (counted as "other"): ids are far shorter. */
#define BP_METRICS_MAX_LABEL 128
#define BP_METRICS_N_METHODS 8 /* GET HEAD POST PUT PATCH DELETE OPTIONS OTHER */
#define BP_METRICS_N_CLASSES 5 /* 1xx .. 5xx */

extern const int64_t bp_metrics__bounds_us[BP_METRICS_N_BOUNDS];
extern const char *const bp_metrics__bound_text[BP_METRICS_N_BOUNDS];
extern const char *const bp_metrics__methods[BP_METRICS_N_METHODS];
extern const char *const bp_metrics__classes[BP_METRICS_N_CLASSES];

/* Counts per bucket, not cumulative (render accumulates); the last one is +Inf. _count is the sum
 * of the buckets, so a reader never sees a count that disagrees with the +Inf bucket. */
struct bp_metrics__hist {
    _Atomic uint64_t buckets[BP_METRICS_N_BOUNDS + 1];
    _Atomic uint64_t sum_us;
};

/* One label set of blnkproxy_requests_total. Everything but count is immutable once the series
 * is published in its shard's table. */
struct bp_metrics__series {
    uint64_t hash;
    const char *group;
    const char *instance;
    uint8_t method;
    uint8_t cls;
    _Atomic uint64_t count;
    char text[]; /* group NUL instance NUL */
};

/* The histograms of one route group. */
struct bp_metrics__group {
    uint64_t hash;
    const char *name;
    struct bp_metrics__hist req;
    struct bp_metrics__hist up;
    char text[];
};

/* Written by one thread at a time (its bound loop thread, or whoever holds the shared lock);
 * read by the renderer at any time. Values are relaxed atomics; table slots are published with
 * release stores and read with acquire loads. */
struct bp_metrics__shard {
    _Atomic(struct bp_metrics__series *) *series;
    size_t n_series; /* writer only */
    _Atomic(struct bp_metrics__group *) *groups;
    size_t n_groups; /* writer only */
    /* When even the reserve is used up: group="other", instance="other". */
    _Atomic uint64_t overflow[BP_METRICS_N_METHODS][BP_METRICS_N_CLASSES];
    struct bp_metrics__group *group_other; /* preallocated "other" group for histograms */
    _Atomic uint64_t auth[BP_METRICS_AUTH__COUNT];
    _Atomic uint64_t upstream_err[BP_METRICS_UPSTREAM__COUNT];
    _Atomic uint64_t limited[BP_METRICS_LIMITED__COUNT];
    _Atomic uint64_t idem[BP_METRICS_IDEM__COUNT];
    _Atomic uint64_t audit[BP_METRICS_AUDIT__COUNT];
    struct bp_metrics__hist audit_commit;
    _Atomic int64_t client_conns;
    _Atomic int64_t upstream_conns;
    _Atomic uint64_t client_conns_refused; /* max_connections_per_peer */
    _Atomic uint64_t tls_handshakes;         /* completed on the TLS listener */
    _Atomic uint64_t tls_handshake_failures; /* failed or abandoned there */
};

struct bp_metrics__state {
    int n_shards; /* bound shards; shards[n_shards] is the shared one */
    struct bp_metrics__shard *shards;
    pthread_mutex_t shared_lock;
    unsigned gen; /* tells a thread's binding from an earlier init's */
    int64_t start_wall_us;
};

/* The live state, NULL before bp_metrics_init and after bp_metrics_shutdown. */
extern _Atomic(struct bp_metrics__state *) bp_metrics__g;

/* Process-wide values that do not need shards (set rarely, by one thread). They survive init,
 * because the watcher may publish the first tables before metrics are set up. */
extern _Atomic uint64_t bp_metrics__credentials;
extern _Atomic uint64_t bp_metrics__instances;
extern _Atomic uint64_t bp_metrics__reloads;
extern _Atomic uint64_t bp_metrics__limit_nodes;
/* Issue 9: the node's name (NUL-terminated, empty until set; written once before it is read by
 * a scrape, under its lock) and the store's state. */
bool bp_metrics__node(char *out, size_t cap);
extern _Atomic int bp_metrics__store_up;
extern _Atomic uint64_t bp_metrics__store_outages;

/* The process as /proc/self describes it (process.c); each has_ says whether the values after it
 * could be read. */
struct bp_metrics__process {
    bool has_stat;
    uint64_t cpu_us;      /* user + system CPU time */
    uint64_t rss_bytes;
    uint64_t vsize_bytes;
    bool has_fds;
    uint64_t open_fds;
    bool has_max_fds;
    uint64_t max_fds;     /* the soft RLIMIT_NOFILE */
};

void bp_metrics__process_read(struct bp_metrics__process *out);
/* When the process started, in Unix microseconds (/proc/self/stat and the boot time in
 * /proc/stat); 0 when procfs cannot say. */
int64_t bp_metrics__process_start_us(void);

/* Reads the audit queue depth through the registered source; false when none is set. */
bool bp_metrics__audit_depth(size_t *out);

#endif
