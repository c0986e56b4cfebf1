/* Retention (audit.retention_days): a thread that deletes records older than the limit, once at
 * start and then hourly.
 *
 * It has its own store connection, so the writer keeps committing while it runs; the store
 * deletes in chunks, each its own short transaction, so a large backlog never holds the write
 * lock for long. Stop wakes it; a purge in progress finishes first. */
#include <time.h>

#include "audit/audit-int.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"

#define PURGE_INTERVAL_S 3600

struct bp_audit_retention {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping;
    pthread_t thread;
    struct bp_store *store;
    int64_t keep_us;
};

static void
purge_once(struct bp_audit_retention *r)
{
    int64_t deleted = 0;
    int64_t before_us = bp_clock_wall_us() - r->keep_us;
    bp_err rc = bp_store_audit_purge(r->store, before_us, &deleted);

    if (rc != BP_OK) {
        /* Hourly at most: no rate limit needed. */
        BP_WARN("audit: retention purge failed", BP_LSTR("reason", bp_store_last_error(r->store)));
    } else if (deleted > 0) {
        BP_INFO("audit: old records purged", BP_LINT("records", deleted));
    }
}

static void *
retention_main(void *arg)
{
    struct bp_audit_retention *r = arg;

    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        struct timespec ts;

        pthread_mutex_unlock(&r->mu);
        purge_once(r);
        pthread_mutex_lock(&r->mu);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += PURGE_INTERVAL_S;
        while (!r->stopping && pthread_cond_timedwait(&r->wake, &r->mu, &ts) == 0) {
            /* Woken without stopping: keep waiting for the rest of the hour. */
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

bp_err
bp_audit__retention_start(const char *dsn, int retention_days, struct bp_audit_retention **out)
{
    struct bp_audit_retention *r;
    char err[256];
    bp_err rc;

    *out = NULL;
    if (retention_days <= 0) {
        return BP_OK;
    }
    r = bp_calloc(1, sizeof(*r));
    rc = bp_store_open(dsn, BP_STORE_OPEN_LAZY, &r->store, err, sizeof(err));
    if (rc != BP_OK) {
        BP_ERROR("audit: retention cannot open the store", BP_LSTR("reason", err));
        bp_free(r);
        return rc;
    }
    r->keep_us = (int64_t)retention_days * 86400 * 1000000;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->wake, NULL);
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
        BP_ERROR("audit: cannot start the retention thread");
        bp_store_close(r->store);
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
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mu);
    bp_free(r);
}
