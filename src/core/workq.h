#ifndef BP_CORE_WORKQ_H
#define BP_CORE_WORKQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* Work off the loop, done on the loop (libuv's uv__work_submit shape): the one primitive for the
 * threads that do what a loop thread must never wait for (DESIGN §8, STYLE §7).
 *
 * A work queue is a few threads taking items from one FIFO. An item's work runs on one of them;
 * its done then runs on the loop thread whose inbox the item names (the loop that asked), or,
 * without an inbox, on the queue's thread right after work. Items that must wait (a periodic
 * job) are submitted with a due time on the monotonic clock. A queue with work_batch hands a
 * thread up to batch_max due items at once (a single consumer that commits in groups), and may
 * let due items linger so that one group covers many of them.
 *
 * Threads: submit, depth and post run on any thread; new, stop and free on the thread that owns
 * the queue. An item belongs to the queue from a successful submit until its done has returned;
 * work and done never run concurrently for one item. Its done may submit it again (a periodic
 * job): the queue touches an item no more once it has called its done. */

struct event_base;
struct bp_inbox;
struct bp_workq;
struct bp_work;

/* Runs on a queue thread. thread_state is what the queue's thread_init made for that thread. */
typedef void (*bp_work_cb)(struct bp_work *w, void *thread_state);
/* Runs exactly once per submitted item: status is BP_OK after work ran, or BP_ERR_CANCELLED
 * when the queue stopped before the item was due (work did not run). */
typedef void (*bp_work_done_cb)(struct bp_work *w, bp_err status);

/* Embedded in the caller's object, which stays alive until done has run. */
struct bp_work {
    bp_work_cb work;          /* NULL only on a batching queue, or for bp_inbox_post alone */
    bp_work_done_cb done;
    struct bp_inbox *inbox;   /* where done runs; NULL: on the queue's thread */
    bool urgent;              /* on a lingering queue: take the due items now, this one with them */
    /* The queue's own. */
    struct bp_work *next;
    int64_t due_ms;
    bp_err status;
};

struct bp_workq_opts {
    const char *name;         /* thread name prefix, at most 11 characters ("bp-oauth") */
    int threads;              /* at least 1 */
    size_t max_queued;        /* submit refuses with BP_ERR_LIMIT beyond this; 0: no bound */
    /* Per-thread state (e.g. its own store connection), made on each thread before it takes
     * work and unmade when it leaves. A failing init makes bp_workq_new fail. Both may be NULL. */
    bp_err (*thread_init)(void *arg, int index, void **out_state);
    void (*thread_fini)(void *arg, void *state);
    void *arg;
    /* Batching: when set, a thread takes up to batch_max due items at a time and passes them to
     * work_batch (in submission order) instead of calling each item's work; each item's done
     * runs after it as usual. */
    void (*work_batch)(struct bp_work **items, size_t n, void *thread_state, void *arg);
    size_t batch_max;
    /* Lingering (batching queues only; 0: none): due items are left for up to linger_ms after the
     * oldest of them fell due, so that one batch covers those that come meanwhile, and taken at
     * once when linger_full of them are due, when an urgent one is due, or when the queue stops.
     * A submit wakes the thread only when it can change that decision. */
    int64_t linger_ms;
    size_t linger_full;
};

/* Starts the threads (after running thread_init on each). On failure nothing is left running. */
bp_err bp_workq_new(const struct bp_workq_opts *opts, struct bp_workq **out);
/* Queues w to run as soon as a thread is free. BP_ERR_LIMIT (the queue holds max_queued items)
 * or BP_ERR_CANCELLED (stopping): w was not taken and done will not run. */
bp_err bp_workq_submit(struct bp_workq *q, struct bp_work *w);
/* The same, not before due_mono_ms (bp_clock_mono_ms). A delayed item counts against
 * max_queued too. */
bp_err bp_workq_submit_at(struct bp_workq *q, struct bp_work *w, int64_t due_mono_ms);
/* Items submitted and not yet taken by a thread. */
size_t bp_workq_depth(const struct bp_workq *q);
/* Refuses new items, lets the threads finish every item already due (their clients still wait),
 * cancels the delayed ones not yet due (done with BP_ERR_CANCELLED), runs thread_fini and joins.
 * Dones bound for an inbox are posted there as usual. NULL is a no-op; so is a second call. */
void bp_workq_stop(struct bp_workq *q);
/* Stops (if not done yet) and frees. NULL is a no-op. */
void bp_workq_free(struct bp_workq *q);

/* A loop thread's inbox: items posted from any thread have their done run on the loop, in the
 * order they were posted. The base must have been made after evthread_use_pthreads(). */
bp_err bp_inbox_new(struct event_base *base, struct bp_inbox **out);
/* Any thread. w->done(w, w->status) runs on the inbox's loop; until then w must stay alive. */
void bp_inbox_post(struct bp_inbox *ib, struct bp_work *w);
/* After the loop stopped for good: runs the dones still queued (on the calling thread) and
 * frees the inbox. Nothing may be posted afterwards. NULL is a no-op. */
void bp_inbox_free(struct bp_inbox *ib);

#endif
