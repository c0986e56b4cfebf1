/* The audit log's front: loop threads hand records in, the writer (writer.c, a one-thread work
 * queue) takes them out in batches.
 *
 * Threads: bp_audit_submit, bp_audit_full and bp_audit_depth run on any thread; start and stop on
 * the thread that wires the server. depth (records accepted and not yet durable, and reserved
 * places) is an atomic, so /metrics and the 503 check read it without a lock.
 *
 * Lifecycle: start opens the writer's store connection, imports a spool left by an earlier run,
 * starts the trail keeper and the writer. stop commits every queued record (every pending done
 * is called), stops the writer and closes the store. A record submitted once the writer stops is
 * refused like one over the limit: nothing waits forever for a done.
 *
 * Policy when full: submit refuses (BP_ERR_LIMIT), counts the record as shed and logs one
 * rate-limited warning. The http module checks bp_audit_full before forwarding and answers 503,
 * so a refused record is always one of a request that was not forwarded. */
#include <stdio.h>
#include <string.h>

#include "audit/audit-int.h"
#include "config/config.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "metrics/metrics.h"
#include "store/store.h"

#define SHED_WARN_INTERVAL_MS 10000
#define WRITER_TIMEOUT_MS 10000

/* "<db path>.audit-spool" when the config names no spool file. */
static char *
spool_path_of(const struct bp_config *cfg)
{
    const char *db = cfg->db != NULL ? cfg->db : "./blnkproxy.db";
    size_t n;
    char *out;

    if (cfg->audit_spool != NULL) {
        return bp_strdup(cfg->audit_spool);
    }
    if (strncmp(db, "sqlite:", 7) == 0) {
        db += 7;
    } else if (strstr(db, "://") != NULL) {
        /* A server DSN is no file name to put a suffix on. */
        db = "./blnkproxy";
    }
    n = strlen(db) + sizeof(".audit-spool");
    out = bp_malloc(n);
    snprintf(out, n, "%s.audit-spool", db);
    return out;
}

static size_t
depth_source(const void *arg)
{
    return bp_audit_depth(arg);
}

static void
audit_free(struct bp_audit *a)
{
    bp_audit__refusals_cleanup(&a->refusals);
    bp_free(a->node);
    bp_free(a->dsn);
    bp_workq_free(a->q); /* stopped already, unless start failed part way */
    bp_store_close(a->store);
    bp_free(a->spool_path);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    bp_free(a);
}

bp_err
bp_audit_start(const struct bp_config *cfg, struct bp_audit **out)
{
    struct bp_audit *a = bp_calloc(1, sizeof(*a));
    char err[256];
    bp_err rc;

    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL); /* untimed: the writer waiting for the node's name */
    a->queue_size = cfg->audit_queue_size > 0 ? (size_t)cfg->audit_queue_size : 65536;
    bp_audit__refusals_init(&a->refusals, cfg->audit_refusal_window_ms > 0 ? cfg->audit_refusal_window_ms : 60000);
    a->node = cfg->node_name != NULL ? bp_strdup(cfg->node_name) : NULL;
    a->spool_path = spool_path_of(cfg);
    a->dsn = bp_strdup(cfg->db != NULL ? cfg->db : "./blnkproxy.db");
    atomic_init(&a->stalled, false);
    /* LAZY: the writer starts while a PostgreSQL store is down, spooling until it answers. */
    rc = bp_store_open(cfg->db != NULL ? cfg->db : "./blnkproxy.db", BP_STORE_OPEN_LAZY, &a->store, err,
                       sizeof(err));
    if (rc != BP_OK) {
        BP_ERROR("audit: cannot open the store", BP_LSTR("reason", err));
        audit_free(a);
        return rc;
    }
    /* A sync write waits for its record: a database that stops answering costs it at most this
     * long before the batch is spooled instead. */
    bp_store_set_timeout(a->store, WRITER_TIMEOUT_MS);
    /* A spool left by an earlier run goes in first, so records stay in order. A store that
     * fails now is not fatal: the writer keeps retrying, as it would after a failure later. */
    a->spool_pending = true;
    (void)bp_audit__import_spool(a);
    {
        struct bp_audit_keeping k = {
            .dsn = cfg->db != NULL ? cfg->db : "./blnkproxy.db",
            .retention_days = cfg->audit_retention_days,
            .checkpoint_ms = cfg->audit_checkpoint_interval_ms,
            .signing_key = cfg->audit_signing_key,
            .node = cfg->node_name,
        };
        rc = bp_audit__retention_start(&k, &a->retention);
    }
    if (rc != BP_OK) {
        audit_free(a);
        return rc;
    }
    rc = bp_audit__writer_start(a);
    if (rc != BP_OK) {
        BP_ERROR("audit: cannot start the writer thread");
        bp_audit__retention_stop(a->retention);
        audit_free(a);
        return rc;
    }
    bp_metrics_set_audit_depth_source(depth_source, a);
    *out = a;
    return BP_OK;
}

void
bp_audit__item_free(struct bp_audit_item *it)
{
    if (!it->packed) {
        bp_audit_rec_free(it->rec);
    }
    bp_free(it);
}

static void
shed(struct bp_audit *a, struct bp_audit_item *it, bool closed)
{
    uint64_t suppressed = 0;

    bp_audit__item_free(it);
    bp_metrics_audit_event(BP_METRICS_AUDIT_SHED, 1);
    if (bp_audit__ratelimit_allow(&a->shed_warn, SHED_WARN_INTERVAL_MS, &suppressed)) {
        BP_WARN(closed ? "audit: record refused after stop" : "audit: queue full, record shed",
                BP_LINT("queue_size", a->queue_size), BP_LINT("suppressed", suppressed));
    }
}

static struct bp_audit_item *
item_of(struct bp_audit_rec *rec, void (*done)(void *arg), void *arg)
{
    struct bp_audit_item *it = bp_malloc(sizeof(*it));

    *it = (struct bp_audit_item){.rec = rec, .done = done, .arg = arg};
    return it;
}

/* Takes a place in depth unless the log is closed or full; false then. */
static bool
take_place(struct bp_audit *a)
{
    size_t cur = atomic_load(&a->depth);

    do {
        if (atomic_load(&a->closed) || cur >= a->queue_size) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&a->depth, &cur, cur + 1));
    return true;
}

bp_err
bp_audit__submit_item(struct bp_audit *a, struct bp_audit_item *it)
{
    if (!take_place(a)) {
        shed(a, it, atomic_load(&a->closed));
        return BP_ERR_LIMIT;
    }
    if (bp_audit__writer_queue(a, it) != BP_OK) {
        /* The writer stopped between the check and the queue. */
        atomic_fetch_sub(&a->depth, 1);
        shed(a, it, true);
        return BP_ERR_LIMIT;
    }
    return BP_OK;
}

static void
submit_item_reserved(struct bp_audit *a, struct bp_audit_item *it)
{
    /* The server stops (and so stops submitting) before the audit log closes. */
    BP_BUG_ON(bp_audit__writer_queue(a, it) != BP_OK);
}

bp_err
bp_audit_submit(struct bp_audit *a, struct bp_audit_rec *rec, void (*done)(void *arg), void *arg)
{
    BP_BUG_ON(a == NULL || rec == NULL);
    return bp_audit__submit_item(a, item_of(rec, done, arg));
}

void
bp_audit_set_node(struct bp_audit *a, const char *node)
{
    if (a == NULL) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    BP_BUG_ON(a->node != NULL);
    a->node = bp_strdup(node);
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

void
bp_audit_await_node(struct bp_audit *a)
{
    if (a == NULL) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->await_node = a->node == NULL;
    pthread_mutex_unlock(&a->mu);
}

bool
bp_audit_reserve(struct bp_audit *a)
{
    return take_place(a);
}

void
bp_audit_submit_reserved(struct bp_audit *a, struct bp_audit_rec *rec, void (*done)(void *arg), void *arg)
{
    BP_BUG_ON(a == NULL || rec == NULL);
    submit_item_reserved(a, item_of(rec, done, arg));
}

static const char *
actor_type(enum bp_audit_actor actor)
{
    switch (actor) {
    case BP_AUDIT_ACTOR_API_KEY:
        return "api_key";
    case BP_AUDIT_ACTOR_OAUTH_CLIENT:
        return "oauth_client";
    default:
        return "anonymous";
    }
}

/* Bytes a text needs in a packed item (with its NUL); 0 when absent. */
static size_t
text_size(struct bp_audit_text t)
{
    return t.p != NULL ? t.len + 1 : 0;
}

/* Copies t to *cursor and moves it on; NULL for an absent text. */
static char *
text_put(char **cursor, struct bp_audit_text t)
{
    char *out = *cursor;

    if (t.p == NULL) {
        return NULL;
    }
    memcpy(out, t.p, t.len);
    out[t.len] = '\0';
    *cursor += t.len + 1;
    return out;
}

/* The store's row for a request record, packed with its queue item into one allocation: the
 * loop thread pays one malloc and one copy of the texts, the writer one free. The actor type
 * is a constant string, shared. */
static struct bp_audit_item *
item_of_req(const struct bp_audit_req_rec *r, void (*done)(void *arg), void *arg)
{
    static const size_t plen = sizeof(BP_AUDIT_REFUSED_PREFIX) - 1;
    struct bp_audit_text action = r->action;
    size_t size = sizeof(struct bp_audit_item) + sizeof(struct bp_audit_rec);
    struct bp_audit_item *it;
    struct bp_audit_rec *rec;
    char *cursor;

    size += text_size(r->request_id) + text_size(r->actor_id) + text_size(r->actor_name) +
            text_size(r->instance_id) + text_size(r->method) + text_size(r->route) + text_size(r->path) +
            text_size(r->category) + text_size(r->client_addr) + text_size(r->resource_id) +
            text_size(r->error) + text_size(action) + (action.p != NULL && r->refused ? plen : 0);
    it = bp_malloc(size);
    rec = (struct bp_audit_rec *)(it + 1);
    cursor = (char *)(rec + 1);
    *it = (struct bp_audit_item){.rec = rec, .done = done, .arg = arg, .packed = true};
    *rec = (struct bp_audit_rec){
        .time_us = r->time_us,
        .actor_type = (char *)actor_type(r->actor),
        .core_status = r->core_status,
        .status = r->status,
        .latency_us = r->latency_us,
        .replayed = r->replayed,
    };
    rec->request_id = text_put(&cursor, r->request_id);
    rec->actor_id = text_put(&cursor, r->actor_id);
    rec->actor_name = text_put(&cursor, r->actor_name);
    rec->instance_id = text_put(&cursor, r->instance_id);
    rec->method = text_put(&cursor, r->method);
    rec->route = text_put(&cursor, r->route);
    rec->path = text_put(&cursor, r->path);
    rec->category = text_put(&cursor, r->category);
    rec->client_addr = text_put(&cursor, r->client_addr);
    rec->resource_id = text_put(&cursor, r->resource_id);
    rec->error = text_put(&cursor, r->error);
    if (action.p != NULL && r->refused) {
        rec->action = cursor;
        memcpy(cursor, BP_AUDIT_REFUSED_PREFIX, plen);
        cursor += plen;
        memcpy(cursor, action.p, action.len);
        cursor[action.len] = '\0';
    } else {
        rec->action = text_put(&cursor, action);
    }
    return it;
}

bp_err
bp_audit_submit_req(struct bp_audit *a, const struct bp_audit_req_rec *r, bool reserved, void (*done)(void *arg),
                    void *arg)
{
    struct bp_audit_item *it = item_of_req(r, done, arg);

    if (reserved) {
        submit_item_reserved(a, it);
        return BP_OK;
    }
    return bp_audit__submit_item(a, it);
}

static struct bp_audit_item *
make_refusal(const void *arg)
{
    return item_of_req(arg, NULL, NULL);
}

void
bp_audit_note_refusal(struct bp_audit *a, const struct bp_audit_req_rec *r, const char *peer_key)
{
    char key[BP_AUDIT_REFUSAL_KEY_MAX];
    const char *actor = r->actor_id.p != NULL ? r->actor_id.p : "";
    const char *error = r->error.p != NULL ? r->error.p : "";
    int n = snprintf(key, sizeof(key), "%.*s|%s|%.*s|%d", (int)r->actor_id.len, actor, peer_key, (int)r->error.len,
                     error, r->status);

    bp_audit__refusal_note(a, make_refusal, r, key, n > 0 ? (size_t)n : 0, r->time_us);
}

bool
bp_audit_stalled(const struct bp_audit *a)
{
    return atomic_load(&((struct bp_audit *)a)->stalled);
}

bool
bp_audit_full(const struct bp_audit *a)
{
    return atomic_load(&((struct bp_audit *)a)->depth) >= a->queue_size;
}

size_t
bp_audit_depth(const struct bp_audit *a)
{
    return atomic_load(&((struct bp_audit *)a)->depth);
}

void
bp_audit_stop(struct bp_audit *a)
{
    if (a == NULL) {
        return;
    }
    bp_metrics_set_audit_depth_source(NULL, NULL);
    /* The server has stopped: no refusal comes any more, and the open window's records go with
     * the rest. */
    bp_audit__refusals_flush(a, true);
    bp_audit__writer_stop(a);
    bp_audit__retention_stop(a->retention);
    BP_BUG_ON(atomic_load(&a->waiting) != 0);
    audit_free(a);
}

size_t
bp_audit__waiting(const struct bp_audit *a)
{
    return atomic_load(&((struct bp_audit *)a)->waiting);
}

void
bp_audit__stats(const struct bp_audit *a, uint64_t *out_batches, uint64_t *out_committed, uint64_t *out_spooled)
{
    struct bp_audit *m = (struct bp_audit *)a;

    *out_batches = atomic_load(&m->n_batches);
    *out_committed = atomic_load(&m->n_committed);
    *out_spooled = atomic_load(&m->n_spooled);
}
