/* The trail keeper (issues 4 and 13): a one-thread work queue that purges records older than
 * audit.retention_days and writes a checkpoint of the chains' heads every
 * audit.checkpoint_interval (only when they moved), both at start and then on their own periods.
 *
 * It has its own store connection, so the writer keeps committing while it runs; the store
 * deletes in chunks, each its own short transaction, so a large backlog never holds the write
 * lock for long, and leaves a checkpoint of each chain's removed prefix (signed with
 * audit.signing_key when set) before it removes it. Stop wakes it; work in progress finishes
 * first. */
#include <stddef.h>

#include "audit/audit-int.h"
#include "core/log.h"
#include "core/workq.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "store/store.h"
#include "trail/trail.h"

#define PURGE_INTERVAL_MS (3600 * 1000LL)

/* A one-thread work queue runs the two tasks; each is an item of the keeper's own that its done
 * puts back on the queue, due one period later on the monotonic clock, until the queue stops
 * (which cancels the one waiting). A wall-clock step never moves them. */
struct bp_audit_retention {
    struct bp_workq *q;
    struct bp_work purge;
    struct bp_work checkpoint;
    struct bp_store *store; /* used on the queue's thread only */
    struct bp_trail_key *key;
    char *node;
    int64_t keep_us;       /* 0: no purge */
    int64_t checkpoint_ms; /* 0: no checkpoints */
};

static void
purge_work(struct bp_work *w, void *thread_state)
{
    struct bp_audit_retention *r =
        (struct bp_audit_retention *)((char *)w - offsetof(struct bp_audit_retention, purge));
    int64_t deleted = 0;
    int64_t before_us = bp_clock_wall_us() - r->keep_us;
    bp_err rc = bp_trail_purge(r->store, before_us, r->node, r->key, &deleted);

    (void)thread_state;
    if (rc != BP_OK) {
        /* Hourly at most: no rate limit needed. */
        BP_WARN("audit: retention purge failed", BP_LSTR("reason", bp_store_last_error(r->store)));
    } else if (deleted > 0) {
        BP_INFO("audit: old records purged", BP_LINT("records", deleted));
    }
}

static void
purge_done(struct bp_work *w, bp_err status)
{
    struct bp_audit_retention *r =
        (struct bp_audit_retention *)((char *)w - offsetof(struct bp_audit_retention, purge));

    if (status == BP_OK) {
        /* Refused only while stopping. */
        (void)bp_workq_submit_at(r->q, w, bp_clock_mono_ms() + PURGE_INTERVAL_MS);
    }
}

static void
checkpoint_work(struct bp_work *w, void *thread_state)
{
    struct bp_audit_retention *r =
        (struct bp_audit_retention *)((char *)w - offsetof(struct bp_audit_retention, checkpoint));
    bp_err rc = bp_trail_checkpoint(r->store, "periodic", r->node, r->key, true, NULL);

    (void)thread_state;
    if (rc != BP_OK) {
        BP_WARN("audit: checkpoint failed", BP_LSTR("reason", bp_store_last_error(r->store)));
    }
}

static void
checkpoint_done(struct bp_work *w, bp_err status)
{
    struct bp_audit_retention *r =
        (struct bp_audit_retention *)((char *)w - offsetof(struct bp_audit_retention, checkpoint));

    if (status == BP_OK) {
        (void)bp_workq_submit_at(r->q, w, bp_clock_mono_ms() + r->checkpoint_ms);
    }
}

static void
retention_free(struct bp_audit_retention *r)
{
    bp_workq_free(r->q);
    bp_store_close(r->store);
    bp_trail_key_free(r->key);
    bp_free(r->node);
    bp_free(r);
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
    rc = bp_workq_new(&(struct bp_workq_opts){.name = "bp-keeper", .threads = 1}, &r->q);
    if (rc != BP_OK) {
        BP_ERROR("audit: cannot start the retention thread");
        retention_free(r);
        return rc;
    }
    /* Both due at once: a purge and a checkpoint at start, as before the first period. */
    if (r->keep_us > 0) {
        r->purge = (struct bp_work){.work = purge_work, .done = purge_done};
        (void)bp_workq_submit(r->q, &r->purge);
    }
    if (r->checkpoint_ms > 0) {
        r->checkpoint = (struct bp_work){.work = checkpoint_work, .done = checkpoint_done};
        (void)bp_workq_submit(r->q, &r->checkpoint);
    }
    *out = r;
    return BP_OK;
}

void
bp_audit__retention_stop(struct bp_audit_retention *r)
{
    if (r != NULL) {
        /* Finishes the task in progress, cancels the one waiting for its period. */
        bp_workq_stop(r->q);
        retention_free(r);
    }
}
