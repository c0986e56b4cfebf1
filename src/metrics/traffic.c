/* Requests and errors per Core instance over the last hour, per minute (the console's traffic
 * view): the request counters this node keeps anyway, read once a minute into a ring of
 * snapshots. The watcher thread ticks it; any thread reads it. A snapshot holds at most
 * BP_METRICS_TRAFFIC_INSTANCES instances (the busiest are not chosen: the first found), so the
 * ring's memory is bounded whatever the table holds. */
#include <pthread.h>
#include <string.h>

#include "lib/alloc.h"
#include "metrics/metrics-int.h"

struct snapshot {
    int64_t minute; /* unix minute it was taken in; 0: empty */
    size_t n;
    struct bp_metrics_traffic_count counts[BP_METRICS_TRAFFIC_INSTANCES];
};

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *ring; /* BP_METRICS_TRAFFIC_MINUTES + 1 slots, by minute */

static struct bp_metrics_traffic_count *
find_or_add(struct bp_metrics_traffic_count *counts, size_t *n, const char *id)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(counts[i].instance, id) == 0) {
            return &counts[i];
        }
    }
    if (*n == BP_METRICS_TRAFFIC_INSTANCES || strlen(id) >= sizeof(counts[0].instance)) {
        return NULL;
    }
    memset(&counts[*n], 0, sizeof(counts[*n]));
    memcpy(counts[*n].instance, id, strlen(id) + 1);
    return &counts[(*n)++];
}

size_t
bp_metrics_traffic_totals(struct bp_metrics_traffic_count *out, size_t cap)
{
    struct bp_metrics__state *m = atomic_load_explicit(&bp_metrics__g, memory_order_acquire);
    size_t n = 0;

    (void)cap;
    for (int si = 0; m != NULL && si <= m->n_shards; si++) {
        struct bp_metrics__shard *s = &m->shards[si];
        for (size_t i = 0; i < BP_METRICS_SERIES_SLOTS; i++) {
            struct bp_metrics__series *p = atomic_load_explicit(&s->series[i], memory_order_acquire);
            struct bp_metrics_traffic_count *c;
            uint64_t count;
            /* "none": no instance was resolved (OAuth, ops, refusals before the instance);
             * "other": past the series cap. Neither is an instance to show. */
            if (p == NULL || p->instance == NULL || strcmp(p->instance, "none") == 0 ||
                strcmp(p->instance, "other") == 0) {
                continue;
            }
            c = find_or_add(out, &n, p->instance);
            if (c == NULL) {
                continue;
            }
            count = atomic_load_explicit(&p->count, memory_order_relaxed);
            c->requests += count;
            c->client_errors += p->cls == 3 ? count : 0;
            c->server_errors += p->cls == 4 ? count : 0;
        }
    }
    return n;
}

void
bp_metrics_traffic_tick(int64_t now_s)
{
    int64_t minute = now_s / 60;
    struct snapshot *slot;

    pthread_mutex_lock(&ring_lock);
    if (ring == NULL) {
        ring = bp_calloc(BP_METRICS_TRAFFIC_MINUTES + 1, sizeof(*ring));
    }
    slot = &ring[minute % (BP_METRICS_TRAFFIC_MINUTES + 1)];
    if (slot->minute != minute) {
        slot->minute = minute;
        slot->n = bp_metrics_traffic_totals(slot->counts, BP_METRICS_TRAFFIC_INSTANCES);
    }
    pthread_mutex_unlock(&ring_lock);
}

static const struct bp_metrics_traffic_count *
count_in(const struct snapshot *s, const char *id)
{
    for (size_t i = 0; s != NULL && i < s->n; i++) {
        if (strcmp(s->counts[i].instance, id) == 0) {
            return &s->counts[i];
        }
    }
    return NULL;
}

void
bp_metrics_traffic_read(int64_t now_s, struct bp_metrics_traffic *out)
{
    static struct bp_metrics_traffic_count now_counts[BP_METRICS_TRAFFIC_INSTANCES];
    int64_t minute = now_s / 60;
    size_t n_now;

    /* The minute in progress gets its starting snapshot now if the watcher has not taken it yet
     * (what came before it is then counted in the minute before). */
    bp_metrics_traffic_tick(now_s);
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&ring_lock);
    n_now = bp_metrics_traffic_totals(now_counts, BP_METRICS_TRAFFIC_INSTANCES);
    out->first_minute = minute - (BP_METRICS_TRAFFIC_MINUTES - 1);
    for (size_t i = 0; i < n_now; i++) {
        memcpy(out->instances[i].id, now_counts[i].instance, sizeof(out->instances[i].id));
    }
    out->n_instances = n_now;
    /* Minute k's traffic is what the counters gained between the snapshot taken at its start and
     * the one at the next minute's start (or now, for the minute in progress). A minute without
     * a snapshot on either side (the node was not running, or the watcher stalled) counts 0. */
    for (int k = 0; k < BP_METRICS_TRAFFIC_MINUTES; k++) {
        int64_t m = out->first_minute + k;
        const struct snapshot *start = ring != NULL && ring[m % (BP_METRICS_TRAFFIC_MINUTES + 1)].minute == m
                                           ? &ring[m % (BP_METRICS_TRAFFIC_MINUTES + 1)]
                                           : NULL;
        const struct snapshot *end = NULL;
        bool end_is_now = m == minute;
        if (!end_is_now && ring != NULL && ring[(m + 1) % (BP_METRICS_TRAFFIC_MINUTES + 1)].minute == m + 1) {
            end = &ring[(m + 1) % (BP_METRICS_TRAFFIC_MINUTES + 1)];
        }
        if (start == NULL || (end == NULL && !end_is_now)) {
            continue;
        }
        for (size_t i = 0; i < n_now; i++) {
            const char *id = now_counts[i].instance;
            const struct bp_metrics_traffic_count *a = count_in(start, id);
            const struct bp_metrics_traffic_count *b = end_is_now ? &now_counts[i] : count_in(end, id);
            uint64_t a_req = a != NULL ? a->requests : 0;
            uint64_t a_err = a != NULL ? a->client_errors + a->server_errors : 0;
            if (b == NULL || b->requests < a_req) {
                continue;
            }
            out->instances[i].requests[k] = (uint32_t)(b->requests - a_req);
            out->instances[i].errors[k] = (uint32_t)(b->client_errors + b->server_errors - a_err);
        }
    }
    pthread_mutex_unlock(&ring_lock);
}

void
bp_metrics_traffic_reset(void)
{
    pthread_mutex_lock(&ring_lock);
    bp_free(ring);
    ring = NULL;
    pthread_mutex_unlock(&ring_lock);
}
