/* The audit writer: group commit, then the done callbacks, as the batches of a one-thread work
 * queue (core/workq.h, thread bp-audit-0).
 *
 * Each batch is everything queued (at most BP_AUDIT_BATCH_MAX) and goes in in one transaction,
 * so one commit (one fsync) covers as many records as arrived while the previous one ran. A
 * record's done is called only after its batch is durable: committed, or appended to the spool
 * file and fsynced while the store fails. A batch of records nobody waits for (async reads)
 * lingers up to BP_AUDIT_LINGER_MS, or until BP_AUDIT_LINGER_FULL are queued, before it is taken:
 * many per commit rather than the one or two that arrive while a commit runs. A record someone
 * waits for (sync) is urgent: its batch goes at once.
 *
 * Store failure: the batch goes to the spool, the failure is logged (rate-limited) and counted,
 * and from then on batches go straight to the spool (keeping their order) until an import of the
 * spool succeeds; the writer tries one every BP_AUDIT_RETRY_MS. If even the spool cannot be
 * written, the batch is held and both are retried every second: its done callbacks wait, since
 * reporting a record durable that is not would be silent loss. Only at stop, with neither the
 * store nor the spool writable, are records given up — with an error line that counts them. */
#include <time.h>

#include "audit/audit-int.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "metrics/metrics.h"
#include "store/store.h"

#define STORE_WARN_INTERVAL_MS 10000
#define RESERVE_CHECK_MS 10000

static void
warn_store(struct bp_audit *a, const char *msg, size_t records)
{
    uint64_t suppressed = 0;

    if (bp_audit__ratelimit_allow(&a->store_warn, STORE_WARN_INTERVAL_MS, &suppressed)) {
        BP_WARN(msg, BP_LSTR("reason", bp_store_last_error(a->store)), BP_LINT("records", records),
                BP_LINT("suppressed", suppressed));
    }
}

/* Inserts the spool's records a batch at a time, each batch its own transaction: a spool left by
 * a long outage may hold millions, more than one statement (or the writer's time limit) should
 * carry. A failure part way leaves the batches before it stored; the next attempt inserts them
 * again, and the store skips them by id. Records from a spool written before issue 9 have no id
 * (the store would give them a new one at each attempt): those go in one transaction, as
 * before.
 *
 * The committed counters count a record once: a->spool_counted remembers how many of the
 * spool's first records an earlier, failed attempt of this process stored (the spool only grows
 * at its end until it is emptied). It is used for counting only, never to skip an insert: a
 * torn line could shift the records, and re-inserting costs nothing but time. */
static bp_err
import_chunks(struct bp_audit *a, struct bp_audit_rec *recs, size_t n)
{
    size_t chunk = BP_AUDIT_BATCH_MAX;
    bp_err rc = BP_OK;

    for (size_t i = 0; i < n; i++) {
        if (recs[i].id == NULL) {
            chunk = n;
            break;
        }
    }
    for (size_t off = 0; off < n && rc == BP_OK; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        int64_t t0 = bp_clock_mono_us();

        rc = bp_store_audit_insert(a->store, recs + off, k);
        if (rc == BP_OK) {
            size_t from = off > a->spool_counted ? off : a->spool_counted;
            size_t fresh = off + k > from ? off + k - from : 0;

            bp_metrics_audit_commit(fresh, bp_clock_mono_us() - t0);
            atomic_fetch_add(&a->n_committed, fresh);
            atomic_fetch_add(&a->n_batches, 1);
            if (off + k > a->spool_counted) {
                a->spool_counted = off + k;
            }
        }
    }
    return rc;
}

bp_err
bp_audit__import_spool(struct bp_audit *a)
{
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;
    size_t skipped = 0;
    bp_err rc;

    rc = bp_audit__spool_read(a->spool_path, &recs, &n, &skipped);
    if (rc != BP_OK) {
        BP_ERROR("audit: cannot read the spool", BP_LSTR("path", a->spool_path),
                 BP_LSTR("reason", bp_err_str(rc)));
        goto retry;
    }
    if (skipped > 0) {
        BP_WARN("audit: unreadable spool lines skipped", BP_LSTR("path", a->spool_path),
                BP_LINT("lines", skipped));
    }
    rc = import_chunks(a, recs, n);
    if (rc != BP_OK) {
        bp_metrics_audit_event(BP_METRICS_AUDIT_STORE_ERROR, 1);
        warn_store(a, "audit: store still failing, records stay in the spool", n);
        goto retry;
    }
    /* A crash between the commit above and this truncation imports these records again on the
     * next start; their ids make that harmless (the store skips a record it holds). */
    rc = bp_audit__spool_clear(a->spool_path);
    if (rc != BP_OK) {
        BP_ERROR("audit: cannot empty the spool after importing it", BP_LSTR("path", a->spool_path));
        goto retry;
    }
    if (n > 0) {
        BP_INFO("audit: spooled records imported", BP_LINT("records", n));
    }
    a->spool_pending = false;
    a->spool_counted = 0;
    bp_audit_recs_free(recs, n);
    return BP_OK;

retry:
    bp_audit_recs_free(recs, n);
    a->spool_pending = true;
    a->retry_at_ms = bp_clock_mono_ms() + BP_AUDIT_RETRY_MS;
    return rc == BP_OK ? BP_ERR_STORE : rc;
}

/* After a successful write, now and then: the reserve next to a SQLite store is there, or made
 * again once there is room (store_reserve.c). */
static void
keep_reserve(struct bp_audit *a)
{
    int64_t now = bp_clock_mono_ms();

    if (now - a->reserve_checked_ms < RESERVE_CHECK_MS) {
        return;
    }
    a->reserve_checked_ms = now;
    (void)bp_store_reserve_keep(a->dsn);
}

static bool
try_commit(struct bp_audit *a, struct bp_audit_rec *recs, size_t n)
{
    int64_t t0 = bp_clock_mono_us();

    if (bp_store_audit_insert(a->store, recs, n) != BP_OK) {
        bp_metrics_audit_event(BP_METRICS_AUDIT_STORE_ERROR, 1);
        warn_store(a, "audit: store failed, records go to the spool", n);
        a->spool_pending = true;
        a->retry_at_ms = bp_clock_mono_ms() + BP_AUDIT_RETRY_MS;
        return false;
    }
    /* Counts the records as committed too. */
    bp_metrics_audit_commit(n, bp_clock_mono_us() - t0);
    atomic_fetch_add(&a->n_committed, n);
    atomic_fetch_add(&a->n_batches, 1);
    keep_reserve(a);
    return true;
}

static bool
stopping(struct bp_audit *a)
{
    bool s;

    pthread_mutex_lock(&a->mu);
    s = a->stopping;
    pthread_mutex_unlock(&a->mu);
    return s;
}

/* Makes recs durable one way or the other; see the file comment for the order of attempts. */
static void
persist(struct bp_audit *a, struct bp_audit_rec *recs, size_t n)
{
    for (;;) {
        /* Stalled (a full disk): no attempt until the operator made room; the reserve that the
         * CLI may have freed is not room for this (store_reserve.c). */
        if (atomic_load(&a->stalled) && !bp_store_has_room(a->dsn)) {
            if (stopping(a)) {
                BP_ERROR("audit: records lost: the disk is full and the server is stopping",
                         BP_LSTR("path", a->spool_path), BP_LINT("records", n));
                return;
            }
            nanosleep(&(struct timespec){.tv_sec = BP_AUDIT_RETRY_MS / 1000}, NULL);
            continue;
        }
        if (!a->spool_pending && try_commit(a, recs, n)) {
            if (atomic_exchange(&a->stalled, false)) {
                BP_INFO("audit: the store takes records again; sync requests are served again");
            }
            return;
        }
        /* The ids go into the spool with the records: an import that is repeated (a crash
         * before the spool was emptied) then finds them stored and skips them. A record that
         * came straight here, without an insert, has none yet. An id cannot fail to be made
         * unless the CSPRNG does; the record is spooled without one then, as before issue 9. */
        (void)bp_store_audit_ids(recs, n);
        if (bp_audit__spool_append(a->spool_path, recs, n) == BP_OK) {
            bp_metrics_audit_event(BP_METRICS_AUDIT_SPOOLED, n);
            atomic_fetch_add(&a->n_spooled, n);
            if (atomic_exchange(&a->stalled, false)) {
                BP_INFO("audit: the spool takes records again; sync requests are served again");
            }
            return;
        }
        if (!atomic_exchange(&a->stalled, true)) {
            BP_ERROR("audit: neither the store nor the spool can be written (is the disk full?): writes "
                     "audited sync are answered 503 PROXY_AUDIT_UNAVAILABLE until space returns; queued "
                     "records wait in memory",
                     BP_LSTR("reason", bp_store_last_error(a->store)), BP_LSTR("spool", a->spool_path));
        }
        if (stopping(a)) {
            BP_ERROR("audit: records lost: neither the store nor the spool can be written",
                     BP_LSTR("path", a->spool_path), BP_LINT("records", n));
            return;
        }
        warn_store(a, "audit: cannot write the spool either; holding the batch", n);
        nanosleep(&(struct timespec){.tv_sec = BP_AUDIT_RETRY_MS / 1000}, NULL);
        /* The store may be back: let try_commit run again. Records already in the spool are
         * imported first at the next batch, so order is only relaxed for this held batch. */
        a->spool_pending = false;
    }
}

/* The records of items[0..n) (the log's own items skipped) made durable; each item is freed by
 * its done, which the queue calls after this. */
static void
commit_batch(struct bp_audit *a, struct bp_work **items, size_t n)
{
    struct bp_audit_rec *recs = bp_malloc(n * sizeof(*recs));
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        struct bp_audit_item *it = (struct bp_audit_item *)items[i];

        if (items[i] == &a->retry || items[i] == &a->refusals_wake) {
            continue;
        }
        recs[k] = *it->rec;
        if (recs[k].node == NULL) {
            recs[k].node = a->node; /* borrowed: given back below */
        }
        k++;
    }
    if (k > 0) {
        persist(a, recs, k);
    }
    /* recs[k] shares its strings with its item's record. The store gave every record an id of its
     * own allocation; a packed item's other strings are freed with it, a heap record's here. */
    k = 0;
    for (size_t i = 0; i < n; i++) {
        struct bp_audit_item *it = (struct bp_audit_item *)items[i];

        if (items[i] == &a->retry || items[i] == &a->refusals_wake) {
            continue;
        }
        if (recs[k].node == a->node) {
            recs[k].node = NULL;
        }
        if (it->packed) {
            bp_free(recs[k].id);
        } else {
            bp_audit_rec_cleanup(&recs[k]);
            bp_free(it->rec);
        }
        it->rec = NULL;
        k++;
    }
    bp_free(recs);
    /* Only now: depth counts records accepted but not yet durable, so queue_size also bounds
     * what waits while a commit is stuck (and the http side answers 503). */
    atomic_fetch_sub(&a->depth, k);
}

/* Records carry the node's name, which serve knows once it is listening (its default names the
 * port): the writer waits for it, unless stopping. */
static void
await_node(struct bp_audit *a)
{
    pthread_mutex_lock(&a->mu);
    while (a->node == NULL && a->await_node && !a->stopping) {
        pthread_cond_wait(&a->wake, &a->mu);
    }
    pthread_mutex_unlock(&a->mu);
}

/* Queues the spool's next attempt while it holds records (writer thread, or start before
 * anything else is queued). */
static void
schedule_retry(struct bp_audit *a)
{
    if (!a->spool_pending || a->retry_queued) {
        return;
    }
    /* Set first: the item may run, and its done clear the flag, before submit returns. */
    a->retry_queued = true;
    if (bp_workq_submit_at(a->q, &a->retry, a->retry_at_ms > 0 ? a->retry_at_ms : 1) != BP_OK) {
        a->retry_queued = false; /* stopping: the stop tries the spool once more */
    }
}

static void
writer_batch(struct bp_work **items, size_t n, void *thread_state, void *arg)
{
    struct bp_audit *a = arg;
    size_t records = 0;

    (void)thread_state;
    for (size_t i = 0; i < n; i++) {
        records += items[i] != &a->retry && items[i] != &a->refusals_wake ? 1 : 0;
    }
    atomic_fetch_sub(&a->waiting, records);
    /* A window of refusals past its end goes to the queue (the next batch), whatever woke us. */
    bp_audit__refusals_flush(a, false);
    if (a->spool_pending && bp_clock_mono_ms() >= a->retry_at_ms) {
        bp_audit__import_spool(a);
    }
    if (records > 0) {
        await_node(a);
        commit_batch(a, items, n);
    }
    schedule_retry(a);
}

static void
record_done(struct bp_work *w, bp_err status)
{
    struct bp_audit_item *it = (struct bp_audit_item *)w;

    /* Records are never delayed, so never cancelled: the stop commits every one. */
    BP_BUG_ON(status != BP_OK);
    if (it->done != NULL) {
        it->done(it->arg);
    }
    bp_free(it);
}

static void
retry_done(struct bp_work *w, bp_err status)
{
    struct bp_audit *a = (struct bp_audit *)((char *)w - offsetof(struct bp_audit, retry));

    a->retry_queued = false;
    if (status == BP_OK) {
        schedule_retry(a);
    }
}

static void
refusals_wake_done(struct bp_work *w, bp_err status)
{
    struct bp_audit *a = (struct bp_audit *)((char *)w - offsetof(struct bp_audit, refusals_wake));

    atomic_store(&a->refusals_queued, false);
    if (status == BP_OK) {
        /* A window that opened while this one was queued gets its own wake-up. */
        bp_audit__writer_arm_refusals(a);
    }
}

void
bp_audit__writer_arm_refusals(struct bp_audit *a)
{
    int64_t due_us = bp_audit__refusals_due(a);
    bool expected = false;

    if (due_us == 0 || !atomic_compare_exchange_strong(&a->refusals_queued, &expected, true)) {
        return;
    }
    if (bp_workq_submit_at(a->q, &a->refusals_wake, (due_us + 999) / 1000) != BP_OK) {
        atomic_store(&a->refusals_queued, false); /* stopping: the stop flushes every window */
    }
}

bp_err
bp_audit__writer_queue(struct bp_audit *a, struct bp_audit_item *it)
{
    bp_err rc;

    it->work = (struct bp_work){.done = record_done, .urgent = it->done != NULL};
    atomic_fetch_add(&a->waiting, 1);
    rc = bp_workq_submit(a->q, &it->work);
    if (rc != BP_OK) {
        atomic_fetch_sub(&a->waiting, 1);
    }
    return rc;
}

bp_err
bp_audit__writer_start(struct bp_audit *a)
{
    struct bp_workq_opts o = {
        .name = "bp-audit",
        .threads = 1,
        .work_batch = writer_batch,
        .batch_max = BP_AUDIT_BATCH_MAX,
        .linger_ms = BP_AUDIT_LINGER_MS,
        .linger_full = BP_AUDIT_LINGER_FULL,
        .arg = a,
    };
    bp_err rc;

    a->retry = (struct bp_work){.done = retry_done};
    a->refusals_wake = (struct bp_work){.done = refusals_wake_done};
    rc = bp_workq_new(&o, &a->q);
    if (rc == BP_OK) {
        schedule_retry(a);
    }
    return rc;
}

void
bp_audit__writer_stop(struct bp_audit *a)
{
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    atomic_store(&a->closed, true);
    /* Every record queued is due: the writer commits them all (their dones run), and the
     * wake-ups still waiting are cancelled. */
    bp_workq_stop(a->q);
    if (a->spool_pending) {
        /* One last chance for the store to take the spool before the process exits; if it
         * fails, the next start imports it. The writer's thread is gone: its store is ours. */
        bp_audit__import_spool(a);
    }
}
