/* Open connections per peer, for max_connections_per_peer (issue 11: one client held 2,500
 * sockets and every other client timed out). A peer is an IPv4 address or an IPv6 /64
 * (bp_ip_peer_key). Process-wide, since the kernel spreads one client's connections over every
 * worker: one table under one lock, taken at accept and at close only, never per request. An
 * entry lives while its peer has a connection, so the table holds at most max_connections
 * entries. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"

struct peer {
    struct peer *next;
    struct bp_ip key;
    size_t conns;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer **buckets;
static size_t n_buckets; /* a power of two, or 0 before the first connection */
static size_t n_peers;

static size_t
bucket_of(const struct bp_ip *key)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */

    for (size_t i = 0; i < sizeof(key->b); i++) {
        h = (h ^ key->b[i]) * 1099511628211ull;
    }
    return (size_t)(h & (n_buckets - 1));
}

static void
grow(void)
{
    struct peer **old = buckets;
    size_t old_n = n_buckets;

    n_buckets = n_buckets ? 2 * n_buckets : 64;
    buckets = bp_calloc(n_buckets, sizeof(*buckets));
    for (size_t i = 0; i < old_n; i++) {
        struct peer *p = old[i];
        while (p != NULL) {
            struct peer *next = p->next;
            size_t k = bucket_of(&p->key);
            p->next = buckets[k];
            buckets[k] = p;
            p = next;
        }
    }
    bp_free(old);
}

bool
bp_http__peer_take(const struct bp_ip *ip, size_t max)
{
    struct bp_ip key;
    struct peer *p;
    bool taken = true;

    bp_ip_peer_key(ip, &key);
    pthread_mutex_lock(&lock);
    if (n_peers >= n_buckets) {
        grow();
    }
    for (p = buckets[bucket_of(&key)]; p != NULL; p = p->next) {
        if (memcmp(&p->key, &key, sizeof(key)) == 0) {
            break;
        }
    }
    if (p == NULL) {
        size_t k = bucket_of(&key);
        p = bp_calloc(1, sizeof(*p));
        p->key = key;
        p->next = buckets[k];
        buckets[k] = p;
        n_peers++;
    }
    if (max > 0 && p->conns >= max) {
        taken = false;
    } else {
        p->conns++;
    }
    pthread_mutex_unlock(&lock);
    return taken;
}

void
bp_http__peer_release(const struct bp_ip *ip)
{
    struct bp_ip key;
    struct peer **pp;

    bp_ip_peer_key(ip, &key);
    pthread_mutex_lock(&lock);
    BP_BUG_ON(n_buckets == 0);
    for (pp = &buckets[bucket_of(&key)]; *pp != NULL; pp = &(*pp)->next) {
        if (memcmp(&(*pp)->key, &key, sizeof(key)) == 0) {
            break;
        }
    }
    BP_BUG_ON(*pp == NULL || (*pp)->conns == 0);
    if (--(*pp)->conns == 0) {
        struct peer *gone = *pp;
        *pp = gone->next;
        n_peers--;
        bp_free(gone);
    }
    pthread_mutex_unlock(&lock);
}
