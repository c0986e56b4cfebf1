/* The audit writer thread: group commit, then the done callbacks.
 *
 * Each turn takes everything queued (at most BP_AUDIT_BATCH_MAX) and inserts it in one
 * transaction, so one commit (one fsync) covers as many records as arrived while the previous
 * one ran. A record's done is called only after its batch is durable: committed, or appended to
 * the spool file and fsynced while the store fails. A batch of records nobody waits for (async
 * reads) lingers up to BP_AUDIT_LINGER_US, or until BP_AUDIT_LINGER_FULL are queued, before it is
 * taken: many per commit rather than the one or two that arrive while a commit runs.
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
         * imported first by the main loop, so order is only relaxed for this held batch. */
        a->spool_pending = false;
    }
}

static void
commit_batch(struct bp_audit *a, struct bp_audit_item *items, size_t n)
{
    struct bp_audit_rec *recs = bp_malloc(n * sizeof(*recs));
    struct bp_audit_item *it = items;

    for (size_t i = 0; i < n; i++, it = it->next) {
        recs[i] = *it->rec;
        if (recs[i].node == NULL) {
            recs[i].node = a->node; /* borrowed: given back below */
        }
    }
    persist(a, recs, n);
    /* recs[i] shares its strings with items' records. The store gave every record an id of its
     * own allocation; a packed item's other strings are freed with it, a heap record's here. */
    it = items;
    for (size_t i = 0; i < n; i++, it = it->next) {
        if (recs[i].node == a->node) {
            recs[i].node = NULL;
        }
        if (it->packed) {
            bp_free(recs[i].id);
        } else {
            bp_audit_rec_cleanup(&recs[i]);
        }
    }
    bp_free(recs);
    while (items != NULL) {
        struct bp_audit_item *next = items->next;
        if (items->done != NULL) {
            items->done(items->arg);
        }
        if (!items->packed) {
            bp_free(items->rec);
        }
        bp_free(items);
        items = next;
    }
}

/* Waits on a->wake under a->mu until the monotonic time deadline_us (the condition variable
 * runs on the monotonic clock, audit.c), or a signal. */
static void
wait_until_us(struct bp_audit *a, int64_t deadline_us)
{
    struct timespec ts = {.tv_sec = deadline_us / 1000000, .tv_nsec = (deadline_us % 1000000) * 1000};

    pthread_cond_timedwait(&a->wake, &a->mu, &ts);
}

/* Waits for work under a->mu; returns with it held. Also returns when the open window of
 * refusals is due (refusals.c), so that the loop queues its records. */
static void
wait_for_work(struct bp_audit *a)
{
    while (a->head == NULL && !a->stopping) {
        int64_t due = bp_audit__refusals_due(a);
        if (due != 0) {
            if (a->spool_pending && a->retry_at_ms * 1000 < due) {
                due = a->retry_at_ms * 1000;
            }
            if (bp_clock_mono_us() < due) {
                wait_until_us(a, due);
            }
            return;
        }
        if (a->spool_pending) {
            int64_t wait_ms = a->retry_at_ms - bp_clock_mono_ms();

            if (wait_ms <= 0) {
                return;
            }
            wait_until_us(a, bp_clock_mono_us() + wait_ms * 1000);
            return;
        }
        pthread_cond_wait(&a->wake, &a->mu);
    }
}

/* Lets a batch nobody waits for grow, under a->mu, until a record someone waits for comes, the
 * batch is full, its oldest record has waited BP_AUDIT_LINGER_US, or the log stops. */
static void
linger(struct bp_audit *a)
{
    while (a->head != NULL && !a->urgent && !a->stopping && a->waiting < BP_AUDIT_LINGER_FULL) {
        int64_t deadline = a->first_at_us + BP_AUDIT_LINGER_US;

        if (bp_clock_mono_us() >= deadline) {
            return;
        }
        wait_until_us(a, deadline);
    }
}

void *
bp_audit__writer_main(void *arg)
{
    struct bp_audit *a = arg;

    for (;;) {
        struct bp_audit_item *batch;
        struct bp_audit_item *last;
        size_t n = 0;
        bool done;

        bp_audit__refusals_flush(a, false);
        pthread_mutex_lock(&a->mu);
        wait_for_work(a);
        linger(a);
        /* Records carry the node's name, which serve knows once it is listening (its default
         * names the port): wait for it, briefly, unless stopping. */
        while (a->node == NULL && a->await_node && a->head != NULL && !a->stopping) {
            pthread_cond_wait(&a->wake, &a->mu);
        }
        batch = a->head;
        last = NULL;
        for (struct bp_audit_item *it = batch; it != NULL && n < BP_AUDIT_BATCH_MAX; it = it->next) {
            last = it;
            n++;
        }
        if (last != NULL) {
            a->head = last->next;
            last->next = NULL;
            a->waiting -= n;
            if (a->head == NULL) {
                a->tail = NULL;
                a->urgent = false;
            }
            /* Otherwise what is left keeps the old first_at_us and urgent: at worst it goes out
             * a little early. */
        }
        /* Decided under the lock: once closed, submit refuses, so nothing can be left behind. */
        done = a->stopping && a->head == NULL;
        if (done) {
            a->closed = true;
        }
        pthread_mutex_unlock(&a->mu);

        if (a->spool_pending && bp_clock_mono_ms() >= a->retry_at_ms) {
            bp_audit__import_spool(a);
        }
        if (n > 0) {
            commit_batch(a, batch, n);
            /* Only now: depth counts records accepted but not yet durable, so queue_size also
             * bounds what waits while a commit is stuck (and the http side answers 503). */
            atomic_fetch_sub(&a->depth, n);
        }
        if (done) {
            break;
        }
    }
    if (a->spool_pending) {
        /* One last chance for the store to take the spool before the process exits; if it
         * fails, the next start imports it. */
        bp_audit__import_spool(a);
    }
    return NULL;
}
