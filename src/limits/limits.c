/* Rate limits (limits.h): GCRA over two striped hash tables, one keyed by credential id and one
 * by peer. A bucket is its theoretical arrival time (tat): a request at `now` is allowed when
 * max(tat, now) - now <= tau, tau being (burst - 1) intervals, and then moves tat one interval
 * on. Times are nanoseconds on the monotonic clock, so a 1/d rate and a 10^9/s rate both fit. */
#include "limits/limits.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"

#define STRIPES 64
#define KEY_MAX 128

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t tat_ns;
    int64_t interval_ns; /* of the limit tat was counted in (0: none yet) */
    uint8_t len;
    unsigned char key[];
};

struct stripe {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t n_buckets; /* a power of two, or 0 */
    size_t n;
} __attribute__((aligned(64)));

struct table {
    struct stripe stripes[STRIPES];
    atomic_size_t n;
    size_t max;
};

static struct table creds = {.max = SIZE_MAX};
static struct table peers = {.max = BP_LIMITS_PEERS_MAX};
static atomic_uint nodes = 1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
init_tables(void)
{
    for (size_t i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&creds.stripes[i].mu, NULL);
        pthread_mutex_init(&peers.stripes[i].mu, NULL);
    }
}

void
bp_limits_set_nodes(unsigned n)
{
    atomic_store_explicit(&nodes, n > 0 ? n : 1, memory_order_relaxed);
}

unsigned
bp_limits_nodes(void)
{
    return atomic_load_explicit(&nodes, memory_order_relaxed);
}

static uint64_t
hash_bytes(const void *p, size_t len)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static void
grow(struct stripe *s)
{
    size_t n = s->n_buckets ? 2 * s->n_buckets : 8;
    struct entry **b = bp_calloc(n, sizeof(*b));

    for (size_t i = 0; i < s->n_buckets; i++) {
        struct entry *e = s->buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            size_t k = (e->hash >> 6) & (n - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    bp_free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

/* Frees the stripe's entries whose bucket is full at now_ns. Under the stripe's lock. */
static void
sweep_stripe(struct table *t, struct stripe *s, int64_t now_ns)
{
    for (size_t i = 0; i < s->n_buckets; i++) {
        struct entry **pp = &s->buckets[i];
        while (*pp != NULL) {
            struct entry *e = *pp;
            if (e->tat_ns <= now_ns) {
                *pp = e->next;
                bp_free(e);
                s->n--;
                atomic_fetch_sub_explicit(&t->n, 1, memory_order_relaxed);
            } else {
                pp = &e->next;
            }
        }
    }
}

/* The entry of key in its stripe (locked by the caller); a new one when create and the table
 * has room, else NULL. A new entry's bucket is full (tat = now). */
static struct entry *
find(struct table *t, struct stripe *s, const void *key, size_t len, uint64_t hash, bool create,
     int64_t now_ns)
{
    struct entry *e;
    size_t k;

    if (s->n_buckets > 0) {
        for (e = s->buckets[(hash >> 6) & (s->n_buckets - 1)]; e != NULL; e = e->next) {
            if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) {
                return e;
            }
        }
    }
    if (!create) {
        return NULL;
    }
    if (atomic_load_explicit(&t->n, memory_order_relaxed) >= t->max) {
        sweep_stripe(t, s, now_ns);
        if (atomic_load_explicit(&t->n, memory_order_relaxed) >= t->max) {
            return NULL;
        }
    }
    if (s->n >= s->n_buckets) {
        grow(s);
    }
    e = bp_malloc(sizeof(*e) + len);
    e->hash = hash;
    e->tat_ns = now_ns;
    e->interval_ns = 0;
    e->len = (uint8_t)len;
    memcpy(e->key, key, len);
    k = (hash >> 6) & (s->n_buckets - 1);
    e->next = s->buckets[k];
    s->buckets[k] = e;
    s->n++;
    atomic_fetch_add_explicit(&t->n, 1, memory_order_relaxed);
    return e;
}

/* A limit as the buckets count it: the interval between requests, tau (how far ahead of now a
 * bucket's tat may be and still allow one), and the burst. */
struct limit {
    int64_t interval;
    int64_t tau;
    uint32_t burst;
};

/* This node's share of a limit that n nodes share. */
static struct limit
share(const struct bp_rate *rate, uint32_t burst, unsigned n)
{
    struct limit l;
    uint32_t b = burst > 0 ? burst : rate->count;

    l.interval = (int64_t)((unsigned __int128)rate->period_s * 1000000000u * n / rate->count);
    if (l.interval < 1) {
        l.interval = 1;
    }
    b /= n;
    l.burst = b > 0 ? b : 1;
    l.tau = l.interval * (int64_t)(l.burst - 1);
    return l;
}

/* When the limit changed (the credential's rate, or the number of nodes sharing it), the
 * requests the bucket holds stay the same number of requests: tat's lead over now is converted
 * into the new interval. And a bucket is never emptier than empty: the lead stays within one
 * interval past tau (a smaller burst). */
static void
rescale(struct entry *e, int64_t now_ns, const struct limit *l)
{
    if (e->interval_ns != 0 && e->interval_ns != l->interval && e->tat_ns > now_ns) {
        e->tat_ns = now_ns + (int64_t)((__int128)(e->tat_ns - now_ns) * l->interval / e->interval_ns);
    }
    e->interval_ns = l->interval;
    if (e->tat_ns - now_ns > l->tau + l->interval) {
        e->tat_ns = now_ns + l->tau + l->interval;
    }
}

/* Locks key's stripe of t (*out_s, for the caller to unlock) and returns its entry, rescaled to
 * l: NULL when there is none and create is false, or no room for a new one. */
static struct entry *
lock_entry(struct table *t, const void *key, size_t len, bool create, int64_t now_ns, const struct limit *l,
           struct stripe **out_s)
{
    uint64_t hash = hash_bytes(key, len);
    struct stripe *s = &t->stripes[hash % STRIPES];
    struct entry *e;

    pthread_once(&once, init_tables);
    pthread_mutex_lock(&s->mu);
    e = find(t, s, key, len, hash, create, now_ns);
    if (e != NULL) {
        rescale(e, now_ns, l);
    }
    *out_s = s;
    return e;
}

static int64_t
ceil_ms(int64_t ns)
{
    return ns <= 0 ? 0 : (ns + 999999) / 1000000;
}

void
bp_limits_take(const char *id, const struct bp_rate *rate, uint32_t burst, int64_t now_us,
               struct bp_limits_verdict *out)
{
    size_t len = strlen(id);
    int64_t now_ns = now_us * 1000;
    struct stripe *s;
    struct entry *e;
    struct limit l;
    int64_t tat;

    memset(out, 0, sizeof(*out));
    out->allowed = true;
    if (rate->count == 0 || len > KEY_MAX) {
        return;
    }
    l = share(rate, burst, bp_limits_nodes());
    e = lock_entry(&creds, id, len, true, now_ns, &l, &s);
    BP_BUG_ON(e == NULL); /* the credential table has no bound of its own: the store is its bound */
    tat = e->tat_ns > now_ns ? e->tat_ns : now_ns;
    out->limit = l.burst;
    if (tat - now_ns > l.tau) {
        out->allowed = false;
        out->retry_after_ms = ceil_ms(tat - l.tau - now_ns);
        out->reset_ms = ceil_ms(tat - now_ns);
    } else {
        e->tat_ns = tat + l.interval;
        out->remaining = (uint32_t)((l.tau + l.interval - (e->tat_ns - now_ns)) / l.interval);
        out->reset_ms = ceil_ms(e->tat_ns - now_ns);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Failed authentications are each node's own (limits.h): the whole limit, whatever the nodes. */
bool
bp_limits_peer_blocked(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst, int64_t now_us,
                       int64_t *retry_after_ms)
{
    int64_t now_ns = now_us * 1000;
    struct stripe *s;
    struct entry *e;
    struct limit l;
    bool blocked = false;

    if (rate->count == 0 || atomic_load_explicit(&peers.n, memory_order_relaxed) == 0) {
        return false;
    }
    l = share(rate, burst, 1);
    e = lock_entry(&peers, peer->b, sizeof(peer->b), false, now_ns, &l, &s);
    if (e != NULL && e->tat_ns - now_ns > l.tau) {
        blocked = true;
        *retry_after_ms = ceil_ms(e->tat_ns - l.tau - now_ns);
    }
    pthread_mutex_unlock(&s->mu);
    return blocked;
}

bool
bp_limits_peer_key(const char *addr, struct bp_ip *out)
{
    struct bp_ip ip;

    if (addr == NULL || !bp_ip_parse(addr, strlen(addr), &ip)) {
        return false;
    }
    bp_ip_peer_key(&ip, out);
    return true;
}

/* Counts one failure on e: its theoretical arrival time moves one interval past now at least. */
static void
count_failure(struct entry *e, int64_t now_ns, const struct limit *l)
{
    e->tat_ns = (e->tat_ns > now_ns ? e->tat_ns : now_ns) + l->interval;
}

/* Moves peer's theoretical arrival time by one interval: forward to count a failure (creating
 * the entry), back to give one back (never below now: a bucket that has refilled meanwhile is
 * simply full). */
static void
peer_move(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst, int64_t now_us, bool forward)
{
    int64_t now_ns = now_us * 1000;
    struct stripe *s;
    struct entry *e;
    struct limit l;

    if (rate->count == 0) {
        return;
    }
    l = share(rate, burst, 1);
    e = lock_entry(&peers, peer->b, sizeof(peer->b), forward, now_ns, &l, &s);
    if (e != NULL && forward) {
        count_failure(e, now_ns, &l);
    } else if (e != NULL) {
        e->tat_ns = e->tat_ns - l.interval > now_ns ? e->tat_ns - l.interval : now_ns;
    }
    pthread_mutex_unlock(&s->mu);
}

void
bp_limits_peer_failed(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst, int64_t now_us)
{
    peer_move(peer, rate, burst, now_us, true);
}

void
bp_limits_peer_refund(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst, int64_t now_us)
{
    peer_move(peer, rate, burst, now_us, false);
}

bool
bp_limits_peer_take_failure(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst, int64_t now_us,
                            int64_t *retry_after_ms)
{
    int64_t now_ns = now_us * 1000;
    struct stripe *s;
    struct entry *e;
    struct limit l;
    bool taken = true;

    if (rate->count == 0) {
        return true;
    }
    l = share(rate, burst, 1);
    e = lock_entry(&peers, peer->b, sizeof(peer->b), true, now_ns, &l, &s);
    if (e != NULL && e->tat_ns - now_ns > l.tau) {
        taken = false;
        *retry_after_ms = ceil_ms(e->tat_ns - l.tau - now_ns);
    } else if (e != NULL) {
        count_failure(e, now_ns, &l);
    }
    pthread_mutex_unlock(&s->mu);
    return taken;
}

void
bp_limits_sweep(int64_t now_us)
{
    struct table *tables[] = {&creds, &peers};

    pthread_once(&once, init_tables);
    for (size_t t = 0; t < 2; t++) {
        for (size_t i = 0; i < STRIPES; i++) {
            struct stripe *s = &tables[t]->stripes[i];
            pthread_mutex_lock(&s->mu);
            sweep_stripe(tables[t], s, now_us * 1000);
            pthread_mutex_unlock(&s->mu);
        }
    }
}

size_t
bp_limits_credentials(void)
{
    return atomic_load_explicit(&creds.n, memory_order_relaxed);
}

size_t
bp_limits_peers(void)
{
    return atomic_load_explicit(&peers.n, memory_order_relaxed);
}
