#ifndef BP_AUDIT_AUDIT_INT_H
#define BP_AUDIT_AUDIT_INT_H

/* Shared between the audit/ files only: the log's front (audit.c), the writer (writer.c: the
 * batches of a one-thread work queue, core/workq.h), the spool file (spool.c), the trail keeper
 * (retention.c) and the warning rate limiter (ratelimit.c). */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/workq.h"

struct bp_store;
struct bp_audit_rec;

/* Records the writer takes per transaction at most. */
#define BP_AUDIT_BATCH_MAX 1024
/* A batch of records nobody waits for (async reads) is committed once its oldest record has
 * waited this long, or once this many are queued: one commit and one fsync then cover many
 * requests instead of one or two. A record with a done (sync) is committed at once and takes
 * the waiting ones along (the work queue's lingering, its urgent items). */
#define BP_AUDIT_LINGER_MS 10
#define BP_AUDIT_LINGER_FULL 256
/* How often the writer tries a failed store again. */
#define BP_AUDIT_RETRY_MS 1000

/* At most one warning per interval; the others are counted and reported with the next one. */
struct bp_audit_ratelimit {
    _Atomic int64_t next_ms;
    _Atomic uint64_t suppressed;
};

/* True when a warning may be logged now (any thread); *out_suppressed gets how many were held
 * back since the last one. */
bool bp_audit__ratelimit_allow(struct bp_audit_ratelimit *rl, int64_t interval_ms, uint64_t *out_suppressed);

/* One queued record and whom to tell when it is durable. A packed item (a request's record,
 * bp_audit_submit_req) is one allocation: the item, its record and the record's strings; the
 * writer frees it with one bp_free. Otherwise rec and its strings are separate allocations. */
struct bp_audit_item {
    struct bp_work work;            /* the writer's queue's; its done (writer.c) calls done and
                                       frees the item once the record is durable */
    struct bp_audit_rec *rec;
    void (*done)(void *arg);
    void *arg;
    struct bp_audit_item *next;     /* refusals.c's list of a closed window's records */
    bool packed;
};

struct bp_audit_retention;

/* Refusals before authentication, aggregated (refusals.c). */
#define BP_AUDIT_REFUSAL_SLOTS 1024
#define BP_AUDIT_REFUSAL_KEY_MAX 192 /* credential id, peer key, error code and status */
struct bp_audit_refusal;
struct bp_audit_refusals {
    pthread_mutex_t flush_mu;         /* one flush at a time: stop's waits for the writer's to
                                         have queued its records before the log closes */
    pthread_mutex_t mu;
    struct bp_audit_refusal *slots;   /* BP_AUDIT_REFUSAL_SLOTS, under mu */
    size_t used;                      /* under mu */
    _Atomic int64_t due_us;           /* monotonic: when the open window closes; 0 = none open */
    int64_t window_us;
};

struct bp_audit {
    /* The writer: a one-thread work queue whose batches are group commits (writer.c). Records
     * are its items; two items of the log's own wake it when the spool is to be tried again and
     * when the open window of refusals closes. */
    struct bp_workq *q;
    struct bp_work retry;           /* due at retry_at_ms while the spool holds records */
    bool retry_queued;              /* the writer's thread; start before it runs and stop after it
                                       joined (the cancelled item's done) */
    struct bp_work refusals_wake;    /* due when the open refusals window closes */
    _Atomic bool refusals_queued;

    _Atomic size_t waiting;         /* records submitted and not yet taken by the writer */
    _Atomic size_t depth;           /* records accepted and not yet durable, and reserved places */
    size_t queue_size;
    _Atomic bool closed;            /* stopping: submit and reserve refuse */

    pthread_mutex_t mu;
    pthread_cond_t wake;            /* the writer waiting for the node's name, or stop */
    bool stopping;                  /* under mu */

    char *node;                     /* under mu until set (bp_audit_set_node), then fixed:
                                       stamped on every record the writer commits */
    bool await_node;                /* under mu: commit nothing until node is set */

    _Atomic bool stalled;           /* neither the store nor the spool takes records (a full disk):
                                       sync records are refused (bp_audit_stalled) until one does */
    char *dsn;                      /* the store's, for the room checks (store_reserve.c) */

    /* Writer thread only. */
    int64_t reserve_checked_ms;     /* monotonic: the last time the reserve was checked */
    struct bp_store *store;
    char *spool_path;
    bool spool_pending;             /* the spool holds records not yet in the store */
    int64_t retry_at_ms;            /* monotonic: next attempt to import the spool */
    size_t spool_counted;           /* the spool's first records already counted as committed
                                       by an import that failed later on (writer.c) */

    struct bp_audit_retention *retention;

    /* Counters the tests read (bp_audit__stats); written by the writer only. */
    _Atomic uint64_t n_batches;
    _Atomic uint64_t n_committed;
    _Atomic uint64_t n_spooled;

    struct bp_audit_ratelimit shed_warn;
    struct bp_audit_ratelimit store_warn;

    struct bp_audit_refusals refusals;
};

/* Queues an item (audit.c): BP_ERR_LIMIT when the queue is full or closed (it is freed and
 * counted as shed). */
bp_err bp_audit__submit_item(struct bp_audit *a, struct bp_audit_item *it);
/* Frees an item that was never queued. */
void bp_audit__item_free(struct bp_audit_item *it);

/* ---- refusals.c ---- */
void bp_audit__refusals_init(struct bp_audit_refusals *r, int64_t window_ms);
/* Frees what is left (after the last flush: nothing, unless the writer never ran). */
void bp_audit__refusals_cleanup(struct bp_audit_refusals *r);
/* Counts one refusal of the kind key (at wall time wall_us); the first of its kind in a window
 * is recorded by make(arg), a packed item. Any thread; never waits on the store. */
void bp_audit__refusal_note(struct bp_audit *a, struct bp_audit_item *(*make)(const void *arg), const void *arg,
                            const char *key, size_t key_len, int64_t wall_us);
/* When the open window closes (monotonic µs), 0 when none is open: the writer's wake-up. */
int64_t bp_audit__refusals_due(struct bp_audit *a);
/* Queues the open window's records when it is due, or whatever its age (all). */
void bp_audit__refusals_flush(struct bp_audit *a, bool all);

/* Starts the writer's queue (writer.c), with a retry of the spool queued when it holds records. */
bp_err bp_audit__writer_start(struct bp_audit *a);
/* Queues a record's item for the writer; BP_ERR_CANCELLED once the writer stops (the item is not
 * taken). */
bp_err bp_audit__writer_queue(struct bp_audit *a, struct bp_audit_item *it);
/* Lets the writer wake when the open refusals window closes (refusals.c opened one). Any thread. */
void bp_audit__writer_arm_refusals(struct bp_audit *a);
/* Commits every queued record (its dones called) and stops the writer; then tries the spool once
 * more on the calling thread. */
void bp_audit__writer_stop(struct bp_audit *a);
/* Imports the spool into the store if it holds records (writer.c; also used at start). Returns
 * BP_OK when the spool is empty afterwards. */
bp_err bp_audit__import_spool(struct bp_audit *a);

/* Appends recs as JSON lines to the file at path (created 0600) and fsyncs it. */
bp_err bp_audit__spool_append(const char *path, const struct bp_audit_rec *recs, size_t n);
/* Reads every complete record of the spool at path into *out (free with bp_audit_recs_free).
 * A missing file is an empty spool. Lines that do not parse (a torn last line after a crash)
 * are skipped and counted in *out_skipped. */
bp_err bp_audit__spool_read(const char *path, struct bp_audit_rec **out, size_t *out_n, size_t *out_skipped);
/* Empties the spool at path (durably). */
bp_err bp_audit__spool_clear(const char *path);

/* What the trail keeper (retention.c) is to do. */
struct bp_audit_keeping {
    const char *dsn;
    int retention_days;        /* purge records older than this, hourly; 0: never */
    int64_t checkpoint_ms;     /* checkpoint the heads this often; 0: never */
    const char *signing_key;   /* PEM file, or NULL: unsigned checkpoints */
    const char *node;          /* named in its checkpoints; may be NULL */
};
/* Starts the keeper thread (its own store connection) when it has anything to do: at once, then
 * on each task's period. *out stays NULL otherwise. BP_ERR_INVALID: the signing key is unusable
 * (logged). */
bp_err bp_audit__retention_start(const struct bp_audit_keeping *k, struct bp_audit_retention **out);
/* Stops and joins the purge thread (it finishes the chunk in progress). NULL is a no-op. */
void bp_audit__retention_stop(struct bp_audit_retention *r);

/* Records waiting in the FIFO, not yet taken by the writer (the tests' "writer is busy" signal;
 * bp_audit_depth also counts the batch being made durable). */
size_t bp_audit__waiting(const struct bp_audit *a);
/* Test counters: batches committed, records committed, records spooled. */
void bp_audit__stats(const struct bp_audit *a, uint64_t *out_batches, uint64_t *out_committed,
                     uint64_t *out_spooled);

#endif
