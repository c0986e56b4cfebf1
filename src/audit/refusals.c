/* Requests refused before authentication, recorded in aggregate (issue 11, item 1).
 *
 * Anyone can send requests without a valid credential, as fast as the network allows; one
 * record each let two connections write 75 MB/s into the store. So such a refusal costs a
 * record only when it is the first of its kind in a window: one record per peer (an IPv4
 * address or an IPv6 /64, as the caller keys it), error and status, which stands for all of
 * them (repeat_count, last_time_us) and keeps the first request's details (its id, method,
 * path of at most 256 bytes, client address). Storage is then bounded by the number of peers
 * per window, not by their request rate.
 *
 * The table is fixed (REFUSAL_SLOTS entries, open addressing): the first refusal of a kind
 * takes one allocation (its packed record, made by audit.c), the next ones only count. A
 * window closes refusal_window after its first entry came, or at once when the table is full
 * (a flood from many peers: their records go sooner, never unbounded memory), or at stop;
 * then every entry's record goes to the writer's queue as any record (shed and counted there
 * when the queue is full). The writer thread closes windows that no new refusal closes. */
#include <string.h>

#include "audit/audit-int.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"

struct bp_audit_refusal {
    uint64_t hash; /* 0: the slot is free */
    char key[BP_AUDIT_REFUSAL_KEY_MAX];
    struct bp_audit_item *item; /* the first refusal's record, owned until the window closes */
    int64_t count;
    int64_t last_us; /* wall clock */
};

static uint64_t
hash_of(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    }
    return h != 0 ? h : 1;
}

/* The slot of the kind key (under r->mu): the one holding it, or the free one where it goes. The
 * table never fills (it is closed at three quarters), so the probe ends. */
static size_t
find_slot(const struct bp_audit_refusals *r, uint64_t h, const char *key, size_t key_len)
{
    size_t i = h % BP_AUDIT_REFUSAL_SLOTS;

    while (r->slots[i].hash != 0 && (r->slots[i].hash != h || strncmp(r->slots[i].key, key, key_len) != 0 ||
                                     r->slots[i].key[key_len] != '\0')) {
        i = (i + 1) % BP_AUDIT_REFUSAL_SLOTS;
    }
    return i;
}

void
bp_audit__refusals_init(struct bp_audit_refusals *r, int64_t window_ms)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->flush_mu, NULL);
    pthread_mutex_init(&r->mu, NULL);
    r->window_us = window_ms * 1000;
    r->slots = bp_calloc(BP_AUDIT_REFUSAL_SLOTS, sizeof(*r->slots));
}

/* Takes every entry out (under r->mu): their records, counts stamped, linked into a list. */
static struct bp_audit_item *
take_all(struct bp_audit_refusals *r)
{
    struct bp_audit_item *list = NULL;

    for (size_t i = 0; i < BP_AUDIT_REFUSAL_SLOTS && r->used > 0; i++) {
        struct bp_audit_refusal *e = &r->slots[i];
        if (e->hash == 0) {
            continue;
        }
        if (e->count > 1) {
            e->item->rec->repeat_count = e->count;
            e->item->rec->last_time_us = e->last_us;
        }
        e->item->next = list;
        list = e->item;
        memset(e, 0, sizeof(*e));
        r->used--;
    }
    atomic_store(&r->due_us, 0);
    return list;
}

/* Hands the records to the writer's queue. */
static void
submit_list(struct bp_audit *a, struct bp_audit_item *list)
{
    while (list != NULL) {
        struct bp_audit_item *next = list->next;
        list->next = NULL;
        (void)bp_audit__submit_item(a, list);
        list = next;
    }
}

void
bp_audit__refusal_note(struct bp_audit *a, struct bp_audit_item *(*make)(const void *arg), const void *arg,
                       const char *key, size_t key_len, int64_t wall_us)
{
    struct bp_audit_refusals *r = &a->refusals;
    struct bp_audit_item *closed = NULL;
    struct bp_audit_item *first = NULL;
    bool opened = false;
    uint64_t h;
    size_t i;
    int64_t now = bp_clock_mono_us();

    if (key_len >= BP_AUDIT_REFUSAL_KEY_MAX) {
        key_len = BP_AUDIT_REFUSAL_KEY_MAX - 1;
    }
    h = hash_of(key, key_len);
    pthread_mutex_lock(&r->mu);
    /* A window past its end, or a full table, closes before this one is counted. */
    if ((r->used > 0 && now >= atomic_load(&r->due_us)) || r->used * 4 >= BP_AUDIT_REFUSAL_SLOTS * 3) {
        closed = take_all(r);
    }
    i = find_slot(r, h, key, key_len);
    if (r->slots[i].hash != 0) {
        r->slots[i].count++;
        r->slots[i].last_us = wall_us;
        pthread_mutex_unlock(&r->mu);
        submit_list(a, closed);
        return;
    }
    pthread_mutex_unlock(&r->mu);

    /* The first of its kind: its record is made outside the lock, then entered (or, when another
     * thread entered the same kind meanwhile, counted there and this one dropped). */
    first = make(arg);
    pthread_mutex_lock(&r->mu);
    i = find_slot(r, h, key, key_len);
    if (r->slots[i].hash != 0) {
        r->slots[i].count++;
        r->slots[i].last_us = wall_us;
    } else {
        struct bp_audit_refusal *e = &r->slots[i];
        e->hash = h;
        memcpy(e->key, key, key_len);
        e->key[key_len] = '\0';
        e->item = first;
        e->count = 1;
        e->last_us = wall_us;
        first = NULL;
        if (r->used++ == 0) {
            atomic_store(&r->due_us, now + r->window_us);
            opened = true;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (first != NULL) {
        bp_audit__item_free(first);
    }
    submit_list(a, closed);
    if (opened) {
        /* The writer wakes when this window closes, should no later refusal close it. */
        bp_audit__writer_arm_refusals(a);
    }
}

int64_t
bp_audit__refusals_due(struct bp_audit *a)
{
    return atomic_load(&a->refusals.due_us);
}

void
bp_audit__refusals_flush(struct bp_audit *a, bool all)
{
    struct bp_audit_refusals *r = &a->refusals;
    struct bp_audit_item *list = NULL;
    int64_t due;

    /* Held while the records are queued: otherwise stop's flush could find the window already
     * taken by the writer's and close the log before the writer queued its records. */
    pthread_mutex_lock(&r->flush_mu);
    due = atomic_load(&r->due_us);
    if (due != 0 && (all || bp_clock_mono_us() >= due)) {
        pthread_mutex_lock(&r->mu);
        list = take_all(r);
        pthread_mutex_unlock(&r->mu);
        submit_list(a, list);
    }
    pthread_mutex_unlock(&r->flush_mu);
}

void
bp_audit__refusals_cleanup(struct bp_audit_refusals *r)
{
    if (r->slots == NULL) {
        return;
    }
    for (size_t i = 0; i < BP_AUDIT_REFUSAL_SLOTS; i++) {
        if (r->slots[i].hash != 0) {
            bp_audit__item_free(r->slots[i].item);
        }
    }
    bp_free(r->slots);
    r->slots = NULL;
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->flush_mu);
}
