/* Interned credential restrictions (auth-int.h).
 *
 * A deployment has a handful of Core instances and a handful of networks, and so a handful of
 * distinct restrictions, but every restricted credential used to carry its own copy of its
 * instance list: at a million keys that was a third of the table's memory. Here each distinct
 * restriction (instance list and allowed networks together, so that a row keeps one pointer for
 * both) exists once, counted by the credentials that hold it, in a chained hash table keyed by
 * the restriction's canonical bytes.
 *
 * Counts change under the table's lock, never outside it: a credential row can be freed on
 * any thread (whichever releases the last snapshot holding it), and a count that reached zero
 * outside the lock could be revived by a lookup and then freed twice. One uncontended lock per
 * credential built or freed is noise next to the row's own malloc. */
#include "auth/auth-int.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/ipnet.h"
#include "lib/rate.h"

/* At most this many networks in one allow-list: the CLI's own bound (cli/cred_args.c). A list
 * the store holds beyond it is refused like any other list that does not parse. */
#define MAX_ALLOW 64

/* The canonical bytes: one byte saying whether there is an instance restriction, then its ids,
 * each ended by a NUL, in the text's order; a 0xff (never in an id) ends them; then whether the
 * networks are restricted and each network as its 16 address bytes and its prefix length (0xff
 * for a list that did not parse, which allows nowhere); then the rate (whether set, count,
 * period, burst: 13 bytes). */
struct entry {
    struct entry *next;
    size_t refs;
    size_t len; /* of bytes */
    uint64_t hash;
    struct bp_cred_restriction r;
    struct bp_instance_list *instances; /* r.instances, owned */
    struct bp_ipnet *allow;             /* r.allow, owned */
    char bytes[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets;
static size_t n_buckets; /* a power of two, or 0 before the first restriction */
static size_t n_entries;

static struct entry *
entry_of(const struct bp_cred_restriction *r)
{
    return (struct entry *)((char *)r - offsetof(struct entry, r));
}

static uint64_t
hash_bytes(const char *p, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    }
    return h;
}

/* The ids of text (commas between them; empty items are not ids) into out as NUL-ended
 * strings; returns their length and the number of ids. out has room for strlen(text) + 1. */
static size_t
canonical_ids(const char *text, char *out, uint32_t *out_n)
{
    size_t len = 0;
    uint32_t n = 0;

    while (*text != '\0') {
        const char *end = strchr(text, ',');
        size_t item = end ? (size_t)(end - text) : strlen(text);
        if (item > 0) {
            memcpy(out + len, text, item);
            len += item;
            out[len++] = '\0';
            n++;
        }
        text += item + (end != NULL);
    }
    *out_n = n;
    return len;
}

static void
grow(void)
{
    size_t n = n_buckets ? 2 * n_buckets : 16;
    struct entry **b = bp_calloc(n, sizeof(*b));

    for (size_t i = 0; i < n_buckets; i++) {
        struct entry *e = buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            size_t k = e->hash & (n - 1);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    bp_free(buckets);
    buckets = b;
    n_buckets = n;
}

/* The restriction's parts, from the canonical bytes. */
static void
entry_fill(struct entry *e, const char *ids, size_t ids_len, uint32_t n_ids, bool has_instances,
           const struct bp_ipnet *nets, size_t n_nets, bool has_allow)
{
    if (has_instances) {
        struct bp_instance_list *l = bp_malloc(sizeof(*l) + n_ids * sizeof(char *) + ids_len);
        char *p = memcpy((char *)&l->ids[n_ids], ids, ids_len);
        l->n = n_ids;
        for (uint32_t i = 0; i < n_ids; i++) {
            l->ids[i] = p;
            p += strlen(p) + 1;
        }
        e->instances = l;
    }
    if (has_allow && n_nets > 0) {
        e->allow = bp_calloc(n_nets, sizeof(*e->allow));
        memcpy(e->allow, nets, n_nets * sizeof(*nets));
    }
    e->r.instances = e->instances;
    e->r.allow = e->allow;
    e->r.n_allow = (uint32_t)n_nets;
    e->r.allow_restricted = has_allow;
}

const struct bp_cred_restriction *
bp_cred_restriction_get(const char *instances, const char *allow_from, const char *rate_limit,
                        int64_t rate_burst)
{
    struct bp_rate rate = {0, 1};
    uint32_t burst = 0;
    size_t ids_cap = instances != NULL ? strlen(instances) + 1 : 1;
    struct bp_ipnet *nets = NULL;
    size_t n_nets = 0;
    bool parsed = true;
    char *ids;
    char *bytes;
    size_t ids_len = 0;
    size_t len = 0;
    uint32_t n_ids = 0;
    uint64_t hash;
    struct entry *e;

    if (instances == NULL && allow_from == NULL && rate_limit == NULL) {
        return NULL;
    }
    if (rate_limit != NULL) {
        if (!bp_rate_parse(rate_limit, strlen(rate_limit), &rate)) {
            rate = (struct bp_rate){1, 86400};
            rate_burst = 1;
        }
        burst = rate_burst > 0 && rate_burst <= BP_RATE_COUNT_MAX ? (uint32_t)rate_burst : 0;
    }
    if (allow_from != NULL && bp_ipnet_list_parse(allow_from, MAX_ALLOW, &nets, &n_nets, NULL, 0) != BP_OK) {
        parsed = false; /* a list the CLI would not write: it allows nowhere, never everywhere */
        n_nets = 0;
    }
    ids = bp_malloc(ids_cap);
    if (instances != NULL) {
        ids_len = canonical_ids(instances, ids, &n_ids);
    }
    bytes = bp_malloc(1 + ids_len + 1 + 1 + n_nets * 17 + 1 + 13);
    bytes[len++] = instances != NULL ? 1 : 0;
    memcpy(bytes + len, ids, ids_len);
    len += ids_len;
    bytes[len++] = (char)0xff;
    bytes[len++] = allow_from != NULL ? 1 : 0;
    for (size_t i = 0; i < n_nets; i++) {
        memcpy(bytes + len, nets[i].addr.b, 16);
        len += 16;
        bytes[len++] = (char)nets[i].bits;
    }
    if (!parsed) {
        bytes[len++] = (char)0xff;
    }
    bytes[len++] = rate_limit != NULL ? 1 : 0;
    memcpy(bytes + len, &rate.count, 4);
    memcpy(bytes + len + 4, &rate.period_s, 4);
    memcpy(bytes + len + 8, &burst, 4);
    len += 12;
    hash = hash_bytes(bytes, len);

    pthread_mutex_lock(&lock);
    if (n_entries >= n_buckets) {
        grow();
    }
    for (e = buckets[hash & (n_buckets - 1)]; e != NULL; e = e->next) {
        if (e->hash == hash && e->len == len && memcmp(e->bytes, bytes, len) == 0) {
            break;
        }
    }
    if (e == NULL) {
        size_t k = hash & (n_buckets - 1);
        e = bp_calloc(1, sizeof(*e) + len);
        e->len = len;
        e->hash = hash;
        memcpy(e->bytes, bytes, len);
        entry_fill(e, ids, ids_len, n_ids, instances != NULL, nets, n_nets, allow_from != NULL);
        e->r.rate_set = rate_limit != NULL;
        e->r.rate_count = rate.count;
        e->r.rate_period_s = rate.period_s;
        e->r.rate_burst = burst;
        e->next = buckets[k];
        buckets[k] = e;
        n_entries++;
    }
    e->refs++;
    pthread_mutex_unlock(&lock);
    bp_free(bytes);
    bp_free(ids);
    bp_free(nets);
    return &e->r;
}

void
bp_cred_restriction_unref(const struct bp_cred_restriction *r)
{
    struct entry *e;
    struct entry **pp;

    if (r == NULL) {
        return;
    }
    e = entry_of(r);
    pthread_mutex_lock(&lock);
    BP_BUG_ON(e->refs == 0);
    if (--e->refs > 0) {
        pthread_mutex_unlock(&lock);
        return;
    }
    for (pp = &buckets[e->hash & (n_buckets - 1)]; *pp != e; pp = &(*pp)->next) {
        BP_BUG_ON(*pp == NULL);
    }
    *pp = e->next;
    n_entries--;
    pthread_mutex_unlock(&lock);
    bp_free(e->instances);
    bp_free(e->allow);
    bp_free(e);
}

size_t
bp_cred_restrictions_alive(void)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = n_entries;
    pthread_mutex_unlock(&lock);
    return n;
}
