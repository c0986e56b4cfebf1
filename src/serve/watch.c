/* Change watcher thread (see watch.h).
 *
 * Why polling: SQLite has no cross-process notification; PRAGMA data_version is a cheap read
 * that changes whenever another connection commits. Our own last-used writes also cause one
 * reload; that is deliberate, because treating our own commit as "seen" could hide a CLI
 * revocation committed in the same instant.
 *
 * Why bp_watch_sync: an access token is handed to its client the moment /oauth/token answers;
 * if the client calls /proxy/ before the next poll, the token would not be in the table yet and
 * the request would get a 401 for a token we just issued. The OAuth thread therefore wakes the
 * watcher and waits for a reload that began after its commit before it releases the response.
 *
 * Expired tokens need no timed reload: expiry is checked on every request against the clock. */
#include "serve/watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "core/log.h"
#include "http/http.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "metrics/metrics.h"
#include "store/store.h"
#include "tables/tables.h"

#define FLUSH_INTERVAL_MS 1000
#define PURGE_INTERVAL_MS (3600 * 1000)
/* Expired OAuth rows are kept a day, so introspection and logs near the expiry still see them. */
#define PURGE_GRACE_S (24 * 3600)

struct bp_watch {
    struct bp_store *store;
    struct bp_server *server;
    int64_t interval_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake_cond;   /* the watcher sleeps on it between polls */
    pthread_cond_t done_cond;   /* bp_watch_sync callers wait on it */
    bool stop;
    bool wake;                  /* a sync asked for a poll now, with a reload */
    int64_t cycles_started;     /* under lock */
    int64_t cycles_done;        /* under lock: the latest cycle whose reload (if any) is published */
    int64_t token;
    int64_t reloads;
    int64_t last_purge_ms;      /* monotonic; 0 = never */
};

static bp_err
load_tables(struct bp_store *store)
{
    struct bp_key_rec *keys = NULL;
    struct bp_live_token *tokens = NULL;
    struct bp_instance_rec *insts = NULL;
    size_t n_keys = 0;
    size_t n_tokens = 0;
    size_t n_insts = 0;
    struct bp_tables *t = NULL;
    size_t n_creds;
    bp_err rc;

    rc = bp_store_key_list(store, &keys, &n_keys);
    if (rc != BP_OK) {
        goto done;
    }
    rc = bp_store_token_list_live(store, bp_clock_wall_s(), &tokens, &n_tokens);
    if (rc != BP_OK) {
        goto done;
    }
    rc = bp_store_instance_list(store, &insts, &n_insts);
    if (rc != BP_OK) {
        goto done;
    }
    rc = bp_tables_build(keys, n_keys, tokens, n_tokens, insts, n_insts, &t);
    if (rc != BP_OK) {
        goto done;
    }
    n_creds = bp_tables_cred_count(t);
    bp_tables_publish(t);
    bp_metrics_tables_published(n_creds, n_insts);
done:
    bp_key_recs_free(keys, n_keys);
    bp_live_tokens_free(tokens, n_tokens);
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

/* Writes the last-used stamps that requests recorded in t since the previous flush. Only API
 * keys keep a last-used time in the store; access tokens are short-lived and have none. */
static void
flush_last_used(struct bp_store *store, struct bp_tables *t, int64_t *flushed, size_t n)
{
    const char **ids = bp_calloc(n ? n : 1, sizeof(*ids));
    int64_t *at = bp_calloc(n ? n : 1, sizeof(*at));
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        struct bp_cred *c = bp_tables_cred_at(t, i);
        int64_t used = atomic_load_explicit(&c->used_at, memory_order_relaxed);
        if (c->kind == BP_CRED_API_KEY && used > flushed[i]) {
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

static void
maybe_purge(struct bp_watch *w)
{
    int64_t now_ms = bp_clock_mono_ms();

    if (w->last_purge_ms != 0 && now_ms - w->last_purge_ms < PURGE_INTERVAL_MS) {
        return;
    }
    w->last_purge_ms = now_ms;
    if (bp_store_oauth_purge(w->store, bp_clock_wall_s() - PURGE_GRACE_S) != BP_OK) {
        BP_WARN("could not purge expired OAuth tokens, codes and sessions");
    }
}

static void
deadline_after(int64_t ms, struct timespec *out)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    out->tv_sec += (time_t)(ms / 1000) + out->tv_nsec / 1000000000L;
    out->tv_nsec %= 1000000000L;
}

/* What the watcher keeps about the snapshot it last saw, to flush its last-used stamps. */
struct seen {
    struct bp_tables *t;
    size_t n;
    int64_t *flushed;
};

static void
seen_take_current(struct seen *s)
{
    s->t = bp_tables_acquire();
    s->n = s->t ? bp_tables_cred_count(s->t) : 0;
    s->flushed = bp_calloc(s->n ? s->n : 1, sizeof(int64_t));
}

static void
seen_drop(struct bp_store *store, struct seen *s)
{
    if (s->t != NULL) {
        flush_last_used(store, s->t, s->flushed, s->n);
    }
    bp_tables_release(s->t);
    bp_free(s->flushed);
    s->t = NULL;
    s->flushed = NULL;
    s->n = 0;
}

/* One poll: flush, purge, check for changes and reload. force reloads even when the change token
 * did not move (a sync asked for it). Returns whether the store answered. */
static bool
poll_once(struct bp_watch *w, struct seen *seen, int64_t *last_flush, bool force)
{
    int64_t token = 0;
    bool ok;

    if (seen->t != NULL && bp_clock_mono_ms() - *last_flush >= FLUSH_INTERVAL_MS) {
        flush_last_used(w->store, seen->t, seen->flushed, seen->n);
        *last_flush = bp_clock_mono_ms();
    }
    maybe_purge(w);
    ok = bp_store_change_token(w->store, &token) == BP_OK;
    if (ok && (force || token != w->token)) {
        ok = load_tables(w->store) == BP_OK;
        if (ok) {
            w->token = token;
            w->reloads++;
            BP_DEBUG("tables reloaded", BP_LINT("reloads", w->reloads));
            /* Catch the uses recorded on the old snapshot before letting it go. */
            seen_drop(w->store, seen);
            seen_take_current(seen);
        }
    }
    return ok;
}

static void *
watch_main(void *arg)
{
    struct bp_watch *w = arg;
    struct seen seen;
    int64_t last_flush = bp_clock_mono_ms();

    seen_take_current(&seen);
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec until;
        int64_t cycle;
        bool force;
        bool ok;

        if (!w->wake) {
            deadline_after(w->interval_ms, &until);
            pthread_cond_timedwait(&w->wake_cond, &w->lock, &until);
        }
        if (w->stop) {
            break;
        }
        force = w->wake;
        w->wake = false;
        cycle = ++w->cycles_started;
        pthread_mutex_unlock(&w->lock);

        ok = poll_once(w, &seen, &last_flush, force);
        if (!ok) {
            BP_WARN("store check failed; serving with the last loaded credentials");
        }
        if (w->server != NULL) {
            bp_server_set_ready(w->server, ok);
        }

        pthread_mutex_lock(&w->lock);
        w->cycles_done = cycle;
        pthread_cond_broadcast(&w->done_cond);
    }
    pthread_mutex_unlock(&w->lock);
    seen_drop(w->store, &seen);
    return NULL;
}

static void
cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

bp_err
bp_watch_start(struct bp_store *store, struct bp_server *server, int64_t interval_ms, int64_t token,
               struct bp_watch **out)
{
    struct bp_watch *w = bp_calloc(1, sizeof(*w));

    w->store = store;
    w->server = server;
    w->interval_ms = interval_ms > 0 ? interval_ms : 1;
    pthread_mutex_init(&w->lock, NULL);
    cond_init_monotonic(&w->wake_cond);
    cond_init_monotonic(&w->done_cond);
    w->token = token;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake_cond);
        pthread_cond_destroy(&w->done_cond);
        bp_free(w);
        return BP_ERR_IO;
    }
    *out = w;
    return BP_OK;
}

void
bp_watch_sync(struct bp_watch *w, int64_t timeout_ms)
{
    struct timespec until;
    int64_t target;

    if (w == NULL) {
        return;
    }
    deadline_after(timeout_ms > 0 ? timeout_ms : 0, &until);
    pthread_mutex_lock(&w->lock);
    /* The cycle running now may have read the store before the caller's commit: wait for the
     * next one to start and finish. */
    target = w->cycles_started + 1;
    w->wake = true;
    pthread_cond_signal(&w->wake_cond);
    while (w->cycles_done < target && !w->stop) {
        if (pthread_cond_timedwait(&w->done_cond, &w->lock, &until) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

void
bp_watch_stop(struct bp_watch *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake_cond);
    pthread_cond_broadcast(&w->done_cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake_cond);
    pthread_cond_destroy(&w->done_cond);
    bp_store_close(w->store);
    bp_free(w);
}
