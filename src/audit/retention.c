/* The trail keeper (issues 4 and 13): a thread that purges records older than
 * audit.retention_days and writes a checkpoint of the chains' heads every
 * audit.checkpoint_interval (only when they moved), both at start and then on their own periods.
 *
 * It has its own store connection, so the writer keeps committing while it runs; the store
 * deletes in chunks, each its own short transaction, so a large backlog never holds the write
 * lock for long, and leaves a checkpoint of each chain's removed prefix (signed with
 * audit.signing_key when set) before it removes it. Stop wakes it; work in progress finishes
 * first. */
#include <time.h>

#include "audit/audit-int.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"
#include "trail/trail.h"

#define PURGE_INTERVAL_MS (3600 * 1000LL)

struct bp_audit_retention {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping;
    pthread_t thread;
    struct bp_store *store;
    struct bp_trail_key *key;
    char *node;
    int64_t keep_us;           /* 0: no purge */
    int64_t checkpoint_ms;     /* 0: no checkpoints */
};

static void
purge_once(struct bp_audit_retention *r)
{
    int64_t deleted = 0;
    int64_t before_us = bp_clock_wall_us() - r->keep_us;
    bp_err rc = bp_trail_purge(r->store, before_us, r->node, r->key, &deleted);

    if (rc != BP_OK) {
        /* Hourly at most: no rate limit needed. */
        BP_WARN("audit: retention purge failed", BP_LSTR("reason", bp_store_last_error(r->store)));
    } else if (deleted > 0) {
        BP_INFO("audit: old records purged", BP_LINT("records", deleted));
    }
}

static void
checkpoint_once(struct bp_audit_retention *r)
{
    bp_err rc = bp_trail_checkpoint(r->store, "periodic", r->node, r->key, true, NULL);

    if (rc != BP_OK) {
        BP_WARN("audit: checkpoint failed", BP_LSTR("reason", bp_store_last_error(r->store)));
    }
}

static void *
retention_main(void *arg)
{
    struct bp_audit_retention *r = arg;
    int64_t next_purge = r->keep_us > 0 ? bp_clock_mono_ms() : INT64_MAX;
    int64_t next_checkpoint = r->checkpoint_ms > 0 ? bp_clock_mono_ms() : INT64_MAX;

    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        int64_t now = bp_clock_mono_ms();
        int64_t next;
        struct timespec ts;

        pthread_mutex_unlock(&r->mu);
        if (now >= next_purge) {
            purge_once(r);
            next_purge = now + PURGE_INTERVAL_MS;
        }
        if (now >= next_checkpoint) {
            checkpoint_once(r);
            next_checkpoint = now + r->checkpoint_ms;
        }
        pthread_mutex_lock(&r->mu);
        next = next_purge < next_checkpoint ? next_purge : next_checkpoint;
        clock_gettime(CLOCK_REALTIME, &ts);
        {
            int64_t wait_ms = next - bp_clock_mono_ms();
            if (wait_ms < 0) {
                wait_ms = 0;
            }
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
        }
        while (!r->stopping && pthread_cond_timedwait(&r->wake, &r->mu, &ts) == 0) {
            /* Woken without stopping: keep waiting. */
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

bp_err
bp_audit__retention_start(const struct bp_audit_keeping *k, struct bp_audit_retention **out)
{
    struct bp_audit_retention *r;
    char err[256];
    bp_err rc;

    *out = NULL;
    if (k->retention_days <= 0 && k->checkpoint_ms <= 0) {
        return BP_OK;
    }
    r = bp_calloc(1, sizeof(*r));
    if (k->signing_key != NULL) {
        r->key = bp_trail_key_load(k->signing_key, true, err, sizeof(err));
        if (r->key == NULL) {
            BP_ERROR("audit: cannot use audit.signing_key", BP_LSTR("reason", err));
            bp_free(r);
            return BP_ERR_INVALID;
        }
    }
    rc = bp_store_open(k->dsn, BP_STORE_OPEN_LAZY, &r->store, err, sizeof(err));
    if (rc != BP_OK) {
        BP_ERROR("audit: retention cannot open the store", BP_LSTR("reason", err));
        bp_trail_key_free(r->key);
        bp_free(r);
        return rc;
    }
    r->node = k->node != NULL ? bp_strdup(k->node) : NULL;
    r->keep_us = k->retention_days > 0 ? (int64_t)k->retention_days * 86400 * 1000000 : 0;
    r->checkpoint_ms = k->checkpoint_ms;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, NULL);
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
        BP_ERROR("audit: cannot start the retention thread");
        bp_store_close(r->store);
        bp_trail_key_free(r->key);
        bp_free(r->node);
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->mu);
        bp_free(r);
        return BP_ERR_IO;
    }
    *out = r;
    return BP_OK;
}

void
bp_audit__retention_stop(struct bp_audit_retention *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    bp_store_close(r->store);
    bp_trail_key_free(r->key);
    bp_free(r->node);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mu);
    bp_free(r);
}
