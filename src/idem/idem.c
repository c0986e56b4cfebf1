/* The Idempotency-Key store calls off the loop threads (idem.h): a work queue whose threads
 * each open their own store connection, at their first call, and a periodic purge of expired
 * entries on it.
 *
 * Ownership: an op belongs to the caller except between a successful submit and its done. The
 * purge item is the bp_idem's own; it is rescheduled from its done until the queue stops. */
#include "idem/idem.h"

#include "core/log.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "metrics/metrics.h"

/* How long one store call may wait for a silent database: a request waits for it. */
#define IDEM_STORE_TIMEOUT_MS 10000

struct bp_idem {
    struct bp_workq *q;
    char *dsn;
    int64_t purge_interval_ms;
    struct bp_work purge;
};

/* One thread's state: its store connection, opened at its first call rather than with the
 * thread. Most servers never see an Idempotency-Key, and each SQLite connection holds ~200 KB
 * (its parsed schema and page cache), each PostgreSQL one a server slot. */
struct idem_thread {
    struct bp_idem *idem;
    struct bp_store *s; /* NULL until thread_store */
    bool open_failed;   /* the last open failed (and was logged) */
};

static bp_err
thread_open(void *arg, int index, void **out)
{
    struct idem_thread *t = bp_calloc(1, sizeof(*t));

    (void)index;
    t->idem = arg;
    *out = t;
    return BP_OK;
}

static void
thread_close(void *arg, void *state)
{
    struct idem_thread *t = state;

    (void)arg;
    bp_store_close(t->s);
    bp_free(t);
}

/* A new connection for t's thread, or NULL (logged once per outage and thread). LAZY: a
 * PostgreSQL server that is down is reconnected to by the store. */
static struct bp_store *
open_store(struct idem_thread *t)
{
    struct bp_store *s = NULL;
    char err[512];

    if (bp_store_open(t->idem->dsn, BP_STORE_OPEN_LAZY, &s, err, sizeof(err)) != BP_OK) {
        if (!t->open_failed) {
            BP_ERROR("cannot open the store for Idempotency-Key answers", BP_LSTR("error", err));
        }
        t->open_failed = true;
        return NULL;
    }
    if (t->open_failed) {
        BP_INFO("the store for Idempotency-Key answers opened again");
    }
    t->open_failed = false;
    bp_store_set_timeout(s, IDEM_STORE_TIMEOUT_MS);
    return s;
}

/* The thread's connection, opened at its first call: NULL when that fails (the next call tries
 * again). */
static struct bp_store *
thread_store(struct idem_thread *t)
{
    if (t->s == NULL) {
        t->s = open_store(t);
    }
    return t->s;
}

static void
op_work(struct bp_work *w, void *state)
{
    struct bp_idem_op *op = (struct bp_idem_op *)w;
    struct bp_store *s = thread_store(state);

    if (s == NULL) {
        op->rc = BP_ERR_STORE_DOWN;
        return;
    }
    switch (op->kind) {
    case BP_IDEM_OP_CLAIM: {
        struct bp_idem_claim c = {
            .scope = op->scope,
            .fingerprint = op->fingerprint,
            .now = bp_clock_wall_s(),
            .lease_until = op->lease_until,
            .expires_at = op->expires_at,
            .take_over = op->take_over,
        };
        op->rc = bp_store_idem_claim(s, &c, &op->rec, &op->owned);
        break;
    }
    case BP_IDEM_OP_FINISH:
        op->rc = bp_store_idem_finish(s, op->scope, &op->rec);
        break;
    case BP_IDEM_OP_RELEASE:
        op->rc = bp_store_idem_release(s, op->scope);
        break;
    }
    if (op->rc != BP_OK && op->rc != BP_ERR_NOT_FOUND) {
        BP_WARN("Idempotency-Key store call failed", BP_LSTR("error", bp_err_str(op->rc)),
                BP_LSTR("cause", bp_store_last_error(s)));
    }
}

/* On a thread that has answered no call yet, the purge borrows a connection for the moment
 * rather than keep one: the hourly purge would otherwise leave every thread of an idle server
 * holding one again. Expired entries are still deleted (they may be another node's, or from
 * before a restart). */
static void
purge_work(struct bp_work *w, void *state)
{
    struct idem_thread *t = state;
    struct bp_store *s = t->s != NULL ? t->s : open_store(t);
    int64_t deleted = 0;
    (void)w;

    if (s == NULL) {
        return;
    }
    if (bp_store_idem_purge(s, bp_clock_wall_s(), &deleted) != BP_OK) {
        BP_WARN("could not purge expired Idempotency-Key answers", BP_LSTR("cause", bp_store_last_error(s)));
    } else {
        bp_metrics_idempotency(BP_METRICS_IDEM_PURGED, (uint64_t)deleted);
    }
    if (s != t->s) {
        bp_store_close(s);
    }
}

static void
purge_done(struct bp_work *w, bp_err status)
{
    struct bp_idem *idem = (struct bp_idem *)((char *)w - offsetof(struct bp_idem, purge));

    if (status == BP_OK) {
        /* Refused only while stopping: then there is nothing left to purge for. */
        (void)bp_workq_submit_at(idem->q, &idem->purge, bp_clock_mono_ms() + idem->purge_interval_ms);
    }
}

bp_err
bp_idem_new(const struct bp_idem_opts *opts, struct bp_idem **out)
{
    struct bp_idem *idem = bp_calloc(1, sizeof(*idem));
    struct bp_workq_opts qo = {
        .name = "bp-idem",
        .threads = opts->threads,
        .max_queued = opts->max_queued,
        .thread_init = thread_open,
        .thread_fini = thread_close,
        .arg = idem,
    };
    bp_err rc;

    idem->dsn = bp_strdup(opts->dsn);
    idem->purge_interval_ms = opts->purge_interval_ms;
    rc = bp_workq_new(&qo, &idem->q);
    if (rc != BP_OK) {
        bp_free(idem->dsn);
        bp_free(idem);
        return rc;
    }
    if (idem->purge_interval_ms > 0) {
        idem->purge = (struct bp_work){.work = purge_work, .done = purge_done};
        (void)bp_workq_submit_at(idem->q, &idem->purge, bp_clock_mono_ms() + idem->purge_interval_ms);
    }
    *out = idem;
    return BP_OK;
}

bp_err
bp_idem_submit(struct bp_idem *idem, struct bp_idem_op *op)
{
    op->work.work = op_work;
    op->rc = BP_OK;
    return bp_workq_submit(idem->q, &op->work);
}

void
bp_idem_stop(struct bp_idem *idem)
{
    if (idem != NULL) {
        bp_workq_stop(idem->q);
    }
}

void
bp_idem_free(struct bp_idem *idem)
{
    if (idem == NULL) {
        return;
    }
    bp_workq_free(idem->q);
    bp_free(idem->dsn);
    bp_free(idem);
}
