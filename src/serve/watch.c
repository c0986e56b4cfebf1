/* Change watcher thread (see watch.h).
 *
 * Why polling: SQLite has no cross-process notification; PRAGMA data_version is a cheap read
 * that changes whenever another connection commits. Our own last-used writes also cause one
 * reload; that is deliberate, because treating our own commit as "seen" could hide a CLI
 * revocation committed in the same instant. */
#include "serve/watch.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "core/log.h"
#include "http/http.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"
#include "tables/tables.h"

#define FLUSH_INTERVAL_MS 1000

struct bp_watch {
    struct bp_store *store;
    struct bp_server *server;
    int64_t interval_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    int64_t token;
    int64_t reloads;
};

static bp_err
load_tables(struct bp_store *store)
{
    struct bp_key_rec *keys = NULL;
    struct bp_instance_rec *insts = NULL;
    size_t n_keys = 0;
    size_t n_insts = 0;
    struct bp_tables *t = NULL;
    bp_err rc;

    rc = bp_store_key_list(store, &keys, &n_keys);
    if (rc != BP_OK) {
        goto done;
    }
    rc = bp_store_instance_list(store, &insts, &n_insts);
    if (rc != BP_OK) {
        goto done;
    }
    rc = bp_tables_build(keys, n_keys, NULL, 0, insts, n_insts, &t);
    if (rc != BP_OK) {
        goto done;
    }
    bp_tables_publish(t);
done:
    bp_key_recs_free(keys, n_keys);
    bp_instance_recs_free(insts, n_insts);
    return rc;
}

bp_err
bp_watch_load_now(struct bp_store *store, int64_t *out_token)
{
    int64_t token = 0;
    bp_err rc = bp_store_change_token(store, &token);

    if (rc != BP_OK) {
        return rc;
    }
    rc = load_tables(store);
    if (rc == BP_OK) {
        *out_token = token;
    }
    return rc;
}

/* Writes the last-used stamps that requests recorded in t since the previous flush. */
static void
flush_last_used(struct bp_store *store, struct bp_tables *t, int64_t *flushed, size_t n)
{
    const char **ids = bp_calloc(n ? n : 1, sizeof(*ids));
    int64_t *at = bp_calloc(n ? n : 1, sizeof(*at));
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        struct bp_cred *c = bp_tables_cred_at(t, i);
        int64_t used = atomic_load_explicit(&c->used_at, memory_order_relaxed);
        if (used > flushed[i]) {
            ids[k] = c->id;
            at[k] = used;
            k++;
            flushed[i] = used;
        }
    }
    if (k > 0 && bp_store_key_touch(store, ids, at, k) != BP_OK) {
        BP_WARN("could not record last_used_at", BP_LINT("keys", k));
    }
    bp_free(ids);
    bp_free(at);
}

static void *
watch_main(void *arg)
{
    struct bp_watch *w = arg;
    struct bp_tables *seen = bp_tables_acquire();
    size_t n_seen = seen ? bp_tables_cred_count(seen) : 0;
    int64_t *flushed = bp_calloc(n_seen ? n_seen : 1, sizeof(int64_t));
    int64_t last_flush = bp_clock_mono_ms();

    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec until;
        int64_t token = 0;
        bool ok;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(w->interval_ms % 1000) * 1000000L;
        until.tv_sec += (time_t)(w->interval_ms / 1000) + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->cond, &w->lock, &until);
        if (w->stop) {
            break;
        }
        pthread_mutex_unlock(&w->lock);

        if (seen != NULL && bp_clock_mono_ms() - last_flush >= FLUSH_INTERVAL_MS) {
            flush_last_used(w->store, seen, flushed, n_seen);
            last_flush = bp_clock_mono_ms();
        }
        ok = bp_store_change_token(w->store, &token) == BP_OK;
        if (ok && token != w->token) {
            ok = load_tables(w->store) == BP_OK;
            if (ok) {
                w->token = token;
                w->reloads++;
                BP_DEBUG("tables reloaded", BP_LINT("reloads", w->reloads));
                /* Catch the uses recorded on the old snapshot before letting it go. */
                if (seen != NULL) {
                    flush_last_used(w->store, seen, flushed, n_seen);
                }
                bp_tables_release(seen);
                bp_free(flushed);
                seen = bp_tables_acquire();
                n_seen = seen ? bp_tables_cred_count(seen) : 0;
                flushed = bp_calloc(n_seen ? n_seen : 1, sizeof(int64_t));
            }
        }
        if (!ok) {
            BP_WARN("store check failed; serving with the last loaded credentials");
        }
        if (w->server != NULL) {
            bp_server_set_ready(w->server, ok);
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    if (seen != NULL) {
        flush_last_used(w->store, seen, flushed, n_seen);
    }
    bp_tables_release(seen);
    bp_free(flushed);
    return NULL;
}

bp_err
bp_watch_start(struct bp_store *store, struct bp_server *server, int64_t interval_ms, int64_t token,
               struct bp_watch **out)
{
    struct bp_watch *w = bp_calloc(1, sizeof(*w));

    w->store = store;
    w->server = server;
    w->interval_ms = interval_ms;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->token = token;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        bp_free(w);
        return BP_ERR_IO;
    }
    *out = w;
    return BP_OK;
}

void
bp_watch_stop(struct bp_watch *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    bp_store_close(w->store);
    bp_free(w);
}
