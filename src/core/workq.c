/* Work queues and loop inboxes (see workq.h): the one way work leaves a loop thread and comes
 * back to it.
 *
 * A queue is a mutex, a condition variable on the monotonic clock, a FIFO of items due now and
 * a list of delayed items sorted by due time. Each thread moves the delayed items that fell due
 * onto the FIFO, takes from its front (one item, or up to batch_max for a batching queue, once
 * the FIFO's lingering is over), runs
 * the work without the lock, and hands each item to its done: posted to the inbox it names, or
 * called right there. When there is nothing due (or what is due lingers) it sleeps until the
 * earliest delayed item is due (or the lingering ends), or until a submit or stop wakes it. Stopping refuses new items, lets the threads drain
 * what is due, and cancels what is still delayed.
 *
 * An inbox is a locked list and an event on the loop's base: a post appends and activates the
 * event when the list was empty; the loop takes the whole list and runs the dones in order.
 * Posting activates the event under the lock, so bp_inbox_free (which frees the event under the
 * same lock) can never race a post into a freed event. */
#include "core/workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"

struct bp_workq {
    struct bp_workq_opts o;
    char name[16];
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* items, or stop; timed on CLOCK_MONOTONIC */
    struct bp_work *head;      /* due now, in submission order */
    struct bp_work *tail;
    struct bp_work *delayed;   /* not yet due, earliest first */
    size_t n_queued;           /* on both lists */
    size_t n_due;              /* on the FIFO */
    size_t n_urgent;           /* urgent ones on the FIFO */
    bool stopping;
    bool stopped;
    pthread_t *threads;
    int n_threads;
    /* Start: each thread reports its thread_init here before it takes work. */
    pthread_cond_t started;
    int n_reported;
    bp_err init_rc;
};

struct thread_arg {
    struct bp_workq *q;
    int index;
};

static void
finish(struct bp_work *w, bp_err status)
{
    w->status = status;
    if (w->inbox != NULL) {
        bp_inbox_post(w->inbox, w); /* w may be gone as soon as this returns */
        return;
    }
    w->done(w, status);
}

/* Under q->mu: w at the FIFO's end. On a lingering queue its due_ms is when it fell due: its
 * submit, or its delay's end. */
static void
fifo_append(struct bp_workq *q, struct bp_work *w)
{
    w->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = w;
    } else {
        q->head = w;
    }
    q->tail = w;
    q->n_due++;
    q->n_urgent += w->urgent ? 1 : 0;
}

/* Under q->mu: moves the delayed items that are due onto the FIFO. Returns the earliest due time
 * still ahead, or -1 when none is delayed. */
static int64_t
promote_due(struct bp_workq *q, int64_t now_ms)
{
    while (q->delayed != NULL && q->delayed->due_ms <= now_ms) {
        struct bp_work *w = q->delayed;
        q->delayed = w->next;
        fifo_append(q, w);
    }
    return q->delayed != NULL ? q->delayed->due_ms : -1;
}

/* Under q->mu: true while the FIFO's items are to be left lingering; *out_until_ms is when that
 * ends at the latest. */
static bool
lingering(const struct bp_workq *q, int64_t now_ms, int64_t *out_until_ms)
{
    if (q->o.linger_ms <= 0 || q->head == NULL || q->stopping || q->n_urgent > 0 ||
        q->n_due >= q->o.linger_full) {
        return false;
    }
    *out_until_ms = q->head->due_ms + q->o.linger_ms;
    return now_ms < *out_until_ms;
}

/* Under q->mu: takes up to max items from the FIFO into items[]. */
static size_t
take(struct bp_workq *q, struct bp_work **items, size_t max)
{
    size_t n = 0;

    while (n < max && q->head != NULL) {
        struct bp_work *w = q->head;
        q->head = w->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        w->next = NULL;
        q->n_urgent -= w->urgent ? 1 : 0;
        items[n++] = w;
    }
    q->n_queued -= n;
    q->n_due -= n;
    return n;
}

static void
wait_until(struct bp_workq *q, int64_t due_ms)
{
    struct timespec ts;

    if (due_ms < 0) {
        pthread_cond_wait(&q->wake, &q->mu);
        return;
    }
    ts.tv_sec = (time_t)(due_ms / 1000);
    ts.tv_nsec = (long)(due_ms % 1000) * 1000000L;
    pthread_cond_timedwait(&q->wake, &q->mu, &ts);
}

static void
run_items(struct bp_workq *q, struct bp_work **items, size_t n, void *state)
{
    if (q->o.work_batch != NULL) {
        q->o.work_batch(items, n, state, q->o.arg);
    } else {
        items[0]->work(items[0], state);
    }
    for (size_t i = 0; i < n; i++) {
        finish(items[i], BP_OK);
    }
}

static void *
thread_main(void *argp)
{
    struct thread_arg *ta = argp;
    struct bp_workq *q = ta->q;
    size_t max = q->o.work_batch != NULL ? q->o.batch_max : 1;
    struct bp_work *one[1];
    struct bp_work **items = max > 1 ? bp_calloc(max, sizeof(*items)) : one;
    void *state = NULL;
    bp_err rc = BP_OK;

    if (q->o.thread_init != NULL) {
        rc = q->o.thread_init(q->o.arg, ta->index, &state);
    }
    pthread_mutex_lock(&q->mu);
    if (rc != BP_OK && q->init_rc == BP_OK) {
        q->init_rc = rc;
    }
    q->n_reported++;
    pthread_cond_broadcast(&q->started);
    /* A failed start stops every thread before any takes work. */
    while (rc == BP_OK) {
        int64_t now = bp_clock_mono_ms();
        int64_t next_due = promote_due(q, now);
        int64_t until;
        size_t n;

        if (lingering(q, now, &until)) {
            wait_until(q, next_due >= 0 && next_due < until ? next_due : until);
            continue;
        }
        n = take(q, items, max);
        if (n > 0) {
            pthread_mutex_unlock(&q->mu);
            run_items(q, items, n, state);
            pthread_mutex_lock(&q->mu);
            continue;
        }
        if (q->stopping) {
            break;
        }
        wait_until(q, next_due);
    }
    pthread_mutex_unlock(&q->mu);
    if (rc == BP_OK && q->o.thread_fini != NULL) {
        q->o.thread_fini(q->o.arg, state);
    }
    if (items != one) {
        bp_free(items);
    }
    bp_free(ta);
    return NULL;
}

static void
join_all(struct bp_workq *q)
{
    for (int i = 0; i < q->n_threads; i++) {
        pthread_join(q->threads[i], NULL);
    }
    q->n_threads = 0;
}

static void
workq_destroy(struct bp_workq *q)
{
    pthread_cond_destroy(&q->started);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->mu);
    bp_free(q->threads);
    bp_free(q);
}

bp_err
bp_workq_new(const struct bp_workq_opts *opts, struct bp_workq **out)
{
    struct bp_workq *q;
    pthread_condattr_t attr;
    bp_err rc = BP_OK;

    BP_BUG_ON(opts->threads < 1 || (opts->work_batch != NULL && opts->batch_max < 1) ||
              (opts->linger_ms > 0 && (opts->work_batch == NULL || opts->linger_full < 1)));
    q = bp_calloc(1, sizeof(*q));
    q->o = *opts;
    snprintf(q->name, sizeof(q->name), "%.11s", opts->name != NULL ? opts->name : "bp-work");
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&q->started, NULL);
    q->threads = bp_calloc((size_t)opts->threads, sizeof(*q->threads));
    for (int i = 0; i < opts->threads; i++) {
        struct thread_arg *ta = bp_malloc(sizeof(*ta));
        char tname[24];
        ta->q = q;
        ta->index = i;
        if (pthread_create(&q->threads[i], NULL, thread_main, ta) != 0) {
            bp_free(ta);
            rc = BP_ERR_IO;
            break;
        }
        /* Linux keeps 15 characters of a thread name. */
        snprintf(tname, sizeof(tname), "%s-%d", q->name, i % 1000);
        tname[15] = '\0';
        pthread_setname_np(q->threads[i], tname);
        q->n_threads++;
    }
    pthread_mutex_lock(&q->mu);
    while (q->n_reported < q->n_threads) {
        pthread_cond_wait(&q->started, &q->mu);
    }
    if (rc == BP_OK) {
        rc = q->init_rc;
    }
    if (rc != BP_OK) {
        q->stopping = true;
        pthread_cond_broadcast(&q->wake);
    }
    pthread_mutex_unlock(&q->mu);
    if (rc != BP_OK) {
        join_all(q);
        workq_destroy(q);
        return rc;
    }
    *out = q;
    return BP_OK;
}

bp_err
bp_workq_submit_at(struct bp_workq *q, struct bp_work *w, int64_t due_mono_ms)
{
    BP_BUG_ON(w->done == NULL || (w->work == NULL && q->o.work_batch == NULL));
    w->next = NULL;
    /* A lingering queue's clock starts at submit for an item due now. */
    w->due_ms = due_mono_ms <= 0 && q->o.linger_ms > 0 ? bp_clock_mono_ms() : due_mono_ms;
    w->status = BP_OK;
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        return BP_ERR_CANCELLED;
    }
    if (q->o.max_queued > 0 && q->n_queued >= q->o.max_queued) {
        pthread_mutex_unlock(&q->mu);
        return BP_ERR_LIMIT;
    }
    q->n_queued++;
    if (due_mono_ms <= 0) {
        bool was_empty = q->head == NULL;
        bool first_urgent = w->urgent && q->n_urgent == 0;

        fifo_append(q, w);
        /* A lingering thread that already waits for this FIFO needs no wake-up for an item that
         * does not end its lingering: one futex call less per item. */
        if (q->o.linger_ms <= 0 || was_empty || first_urgent || q->n_due == q->o.linger_full) {
            pthread_cond_signal(&q->wake);
        }
    } else {
        struct bp_work **pp = &q->delayed;
        while (*pp != NULL && (*pp)->due_ms <= due_mono_ms) {
            pp = &(*pp)->next;
        }
        w->next = *pp;
        *pp = w;
        /* A sleeping thread may be waiting for a later due time than this one. */
        if (q->delayed == w) {
            pthread_cond_broadcast(&q->wake);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return BP_OK;
}

bp_err
bp_workq_submit(struct bp_workq *q, struct bp_work *w)
{
    return bp_workq_submit_at(q, w, 0);
}

size_t
bp_workq_depth(const struct bp_workq *q)
{
    struct bp_workq *m = (struct bp_workq *)q;
    size_t n;

    pthread_mutex_lock(&m->mu);
    n = m->n_queued;
    pthread_mutex_unlock(&m->mu);
    return n;
}

void
bp_workq_stop(struct bp_workq *q)
{
    struct bp_work *cancelled;

    if (q == NULL || q->stopped) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->mu);
    join_all(q);
    /* The threads drained everything due; what is left was delayed past the stop. */
    cancelled = q->delayed;
    q->delayed = NULL;
    while (cancelled != NULL) {
        struct bp_work *next = cancelled->next;
        q->n_queued--;
        cancelled->next = NULL;
        finish(cancelled, BP_ERR_CANCELLED);
        cancelled = next;
    }
    BP_BUG_ON(q->head != NULL || q->n_queued != 0);
    q->stopped = true;
}

void
bp_workq_free(struct bp_workq *q)
{
    if (q == NULL) {
        return;
    }
    bp_workq_stop(q);
    workq_destroy(q);
}

/* ---- inboxes ---- */

struct bp_inbox {
    pthread_mutex_t mu;
    struct bp_work *head;
    struct bp_work *tail;
    struct event *ev;
};

static void
run_list(struct bp_work *w)
{
    while (w != NULL) {
        struct bp_work *next = w->next;
        w->next = NULL;
        w->done(w, w->status); /* may free w */
        w = next;
    }
}

static struct bp_work *
take_all(struct bp_inbox *ib)
{
    struct bp_work *w;

    pthread_mutex_lock(&ib->mu);
    w = ib->head;
    ib->head = NULL;
    ib->tail = NULL;
    pthread_mutex_unlock(&ib->mu);
    return w;
}

static void
inbox_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    run_list(take_all(arg));
}

bp_err
bp_inbox_new(struct event_base *base, struct bp_inbox **out)
{
    struct bp_inbox *ib = bp_calloc(1, sizeof(*ib));

    pthread_mutex_init(&ib->mu, NULL);
    ib->ev = event_new(base, -1, 0, inbox_cb, ib);
    if (ib->ev == NULL) {
        pthread_mutex_destroy(&ib->mu);
        bp_free(ib);
        return BP_ERR_IO;
    }
    *out = ib;
    return BP_OK;
}

void
bp_inbox_post(struct bp_inbox *ib, struct bp_work *w)
{
    bool was_empty;

    BP_BUG_ON(w->done == NULL);
    w->next = NULL;
    pthread_mutex_lock(&ib->mu);
    was_empty = ib->head == NULL;
    if (was_empty) {
        ib->head = w;
    } else {
        ib->tail->next = w;
    }
    ib->tail = w;
    if (was_empty && ib->ev != NULL) {
        event_active(ib->ev, 0, 0);
    }
    pthread_mutex_unlock(&ib->mu);
}

void
bp_inbox_free(struct bp_inbox *ib)
{
    if (ib == NULL) {
        return;
    }
    pthread_mutex_lock(&ib->mu);
    event_free(ib->ev);
    ib->ev = NULL;
    pthread_mutex_unlock(&ib->mu);
    run_list(take_all(ib));
    pthread_mutex_destroy(&ib->mu);
    bp_free(ib);
}
