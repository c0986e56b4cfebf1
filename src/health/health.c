/* The per-instance health state machine and its registry (see health.h). */
#include "health/health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core/log.h"
#include "lib/alloc.h"

struct bp_health {
    /* Written by whichever thread saw the exchange end. retry_at_ms is 0 while up, else the
     * monotonic time from which one trial may go; trial is set while that trial is in flight. */
    _Atomic int64_t retry_at_ms;
    _Atomic uint32_t fails; /* consecutive failures */
    atomic_bool trial;
    char *id;   /* fixed for the slot's life */
    char *name; /* under the registry lock */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bp_health **slots; /* every slot ever made */
static size_t n_slots;
static struct bp_health **published; /* the last tracked set, in its order */
static size_t n_published;

static struct bp_health *
find_or_make(const char *id)
{
    struct bp_health *h;

    for (size_t i = 0; i < n_slots; i++) {
        if (strcmp(slots[i]->id, id) == 0) {
            return slots[i];
        }
    }
    h = bp_calloc(1, sizeof(*h));
    atomic_init(&h->retry_at_ms, 0);
    atomic_init(&h->fails, 0);
    atomic_init(&h->trial, false);
    h->id = bp_strdup(id);
    slots = bp_realloc(slots, (n_slots + 1) * sizeof(*slots));
    slots[n_slots++] = h;
    return h;
}

void
bp_health_track(const char *const *ids, const char *const *names, size_t n, struct bp_health **out)
{
    pthread_mutex_lock(&reg_lock);
    published = bp_realloc(published, (n ? n : 1) * sizeof(*published));
    for (size_t i = 0; i < n; i++) {
        struct bp_health *h = find_or_make(ids[i]);
        const char *name = names != NULL && names[i] != NULL ? names[i] : "";
        if (h->name == NULL || strcmp(h->name, name) != 0) {
            bp_free(h->name);
            h->name = bp_strdup(name);
        }
        published[i] = h;
        out[i] = h;
    }
    n_published = n;
    pthread_mutex_unlock(&reg_lock);
}

bool
bp_health_admit(struct bp_health *h, int64_t now_ms, bool *out_trial)
{
    int64_t at = atomic_load_explicit(&h->retry_at_ms, memory_order_relaxed);
    bool idle = false;

    *out_trial = false;
    if (at == 0) {
        return true; /* up: the whole cost on the hot path */
    }
    if (now_ms < at) {
        return false;
    }
    /* Cooled down: exactly one request finds out whether Core is back; the others are refused
     * until it has. */
    if (!atomic_compare_exchange_strong(&h->trial, &idle, true)) {
        return false;
    }
    *out_trial = true;
    return true;
}

void
bp_health_report(struct bp_health *h, const struct bp_health_conf *c, bool ok, bool trial, int64_t now_ms)
{
    uint32_t n;

    if (ok) {
        /* Loads first: a healthy instance's slot is only read, never written. */
        if (atomic_load_explicit(&h->fails, memory_order_relaxed) != 0) {
            atomic_store_explicit(&h->fails, 0, memory_order_relaxed);
        }
        if (atomic_load_explicit(&h->retry_at_ms, memory_order_relaxed) != 0 &&
            atomic_exchange(&h->retry_at_ms, 0) != 0) {
            BP_INFO("Core instance is up again", BP_LSTR("instance", h->id));
        }
        if (trial) {
            atomic_store(&h->trial, false);
        }
        return;
    }
    n = atomic_fetch_add(&h->fails, 1) + 1;
    if (trial) {
        /* The trial failed: another cool-down. */
        atomic_store(&h->retry_at_ms, now_ms + c->cooldown_ms);
        atomic_store(&h->trial, false);
        return;
    }
    /* failures = 0: passive health is off, nothing counts an instance down. */
    if (c->failures > 0 && n >= (uint32_t)c->failures) {
        int64_t up = 0;
        if (atomic_compare_exchange_strong(&h->retry_at_ms, &up, now_ms + c->cooldown_ms)) {
            BP_WARN("Core instance is down: its requests get 503 until it answers again",
                    BP_LSTR("instance", h->id), BP_LINT("consecutive_failures", n),
                    BP_LINT("cooldown_ms", c->cooldown_ms));
        }
    }
}

void
bp_health_release(struct bp_health *h)
{
    atomic_store(&h->trial, false);
}

bool
bp_health_status_fails(int status)
{
    return status == 502 || status == 503 || status == 504;
}

bool
bp_health_is_up(const struct bp_health *h)
{
    return atomic_load_explicit(&((struct bp_health *)h)->retry_at_ms, memory_order_relaxed) == 0;
}

void
bp_health_each(void (*fn)(void *arg, const char *id, const char *name, bool up), void *arg)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < n_published; i++) {
        fn(arg, published[i]->id, published[i]->name, bp_health_is_up(published[i]));
    }
    pthread_mutex_unlock(&reg_lock);
}

void
bp_health_reset(void)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < n_slots; i++) {
        bp_free(slots[i]->id);
        bp_free(slots[i]->name);
        bp_free(slots[i]);
    }
    bp_free(slots);
    bp_free(published);
    slots = NULL;
    published = NULL;
    n_slots = 0;
    n_published = 0;
    pthread_mutex_unlock(&reg_lock);
}
