/* Interned instance lists (auth-int.h).
 *
 * A deployment has a handful of Core instances and so a handful of distinct restrictions, but
 * every restricted credential used to carry its own copy of its list: at a million keys that
 * was a third of the table's memory. Here each distinct list exists once, counted by the
 * credentials that hold it, in a chained hash table keyed by the list's canonical bytes (the
 * ids, each ended by a NUL, in the text's order).
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

/* An entry is this header, then the public list (its ids point into the bytes), then the
 * canonical bytes. The header's size keeps the list pointer-aligned. */
struct entry {
    struct entry *next;
    size_t refs;
    size_t len; /* of the canonical bytes */
    uint64_t hash;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets;
static size_t n_buckets; /* a power of two, or 0 before the first list */
static size_t n_entries;

static struct bp_instance_list *
list_of(struct entry *e)
{
    return (struct bp_instance_list *)(e + 1);
}

static struct entry *
entry_of(const struct bp_instance_list *l)
{
    return (struct entry *)l - 1;
}

static char *
bytes_of(struct entry *e)
{
    struct bp_instance_list *l = list_of(e);
    return (char *)&l->ids[l->n];
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

/* The canonical bytes of text into out (room for strlen(text) + 1); returns their length and
 * the number of ids. */
static size_t
canonical(const char *text, char *out, uint32_t *out_n)
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

static struct entry *
entry_new(const char *bytes, size_t len, uint32_t n, uint64_t hash)
{
    struct entry *e = bp_malloc(sizeof(*e) + sizeof(struct bp_instance_list) + n * sizeof(char *) + len);
    struct bp_instance_list *l = list_of(e);
    char *p;

    e->refs = 0;
    e->len = len;
    e->hash = hash;
    l->n = n;
    p = memcpy(bytes_of(e), bytes, len);
    for (uint32_t i = 0; i < n; i++) {
        l->ids[i] = p;
        p += strlen(p) + 1;
    }
    return e;
}

const struct bp_instance_list *
bp_instance_list_get(const char *text)
{
    size_t cap = strlen(text) + 1;
    char small[256];
    char *bytes = cap <= sizeof(small) ? small : bp_malloc(cap);
    uint32_t n;
    size_t len = canonical(text, bytes, &n);
    uint64_t hash = hash_bytes(bytes, len);
    struct entry *e;

    pthread_mutex_lock(&lock);
    if (n_entries >= n_buckets) {
        grow();
    }
    for (e = buckets[hash & (n_buckets - 1)]; e != NULL; e = e->next) {
        if (e->hash == hash && e->len == len && memcmp(bytes_of(e), bytes, len) == 0) {
            break;
        }
    }
    if (e == NULL) {
        size_t k = hash & (n_buckets - 1);
        e = entry_new(bytes, len, n, hash);
        e->next = buckets[k];
        buckets[k] = e;
        n_entries++;
    }
    e->refs++;
    pthread_mutex_unlock(&lock);
    if (bytes != small) {
        bp_free(bytes);
    }
    return list_of(e);
}

void
bp_instance_list_unref(const struct bp_instance_list *list)
{
    struct entry *e;
    struct entry **pp;

    if (list == NULL) {
        return;
    }
    e = entry_of(list);
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
    bp_free(e);
}

size_t
bp_instance_lists_alive(void)
{
    size_t n;

    pthread_mutex_lock(&lock);
    n = n_entries;
    pthread_mutex_unlock(&lock);
    return n;
}
