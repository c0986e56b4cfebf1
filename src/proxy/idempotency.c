/* Idempotency-Key on /proxy/ writes (DESIGN §4b, issue 12): what an entry in the store means
 * for a request, and the request's part in the entry it owns.
 *
 * A write with the header is claimed in the store once its body is in (the fingerprint needs
 * it): the first request of its scope owns the entry and is forwarded — a transaction with
 * references derived from the scope, so that a later re-send carries the same ones and Core
 * dedupes it —; Core's answer is stored before it is relayed. Every other request of the scope
 * is answered from the entry: the stored answer (a replay: Core sees nothing), or 422, or 409.
 * An owner that ends without an answer leaves the entry for its retries: released when Core
 * certainly never saw the request (so a retry starts afresh), of unknown outcome otherwise
 * (409 until the lease passes; then a transaction is taken over and sent again).
 *
 * Threads: the request's loop; the store calls run on the idem queue (idem/idem.h) and their
 * dones come back to the loop through its inbox. Memory: a job is heap memory of its own, so
 * it outlives a request that ends while it is in the store (the job is then orphaned: its done
 * settles what it must and frees it). A stored answer is copied into its job (at most
 * idempotency.max_answer_bytes of body). */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/log.h"
#include "errors/errors.h"
#include "http/parser.h"
#include "idem/idem.h"
#include "lib/alloc.h"
#include "lib/arena.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/str.h"
#include "metrics/metrics.h"
#include "proxy/proxy-int.h"
#include "router/router.h"
#include "upstream/upstream.h"

#define REPLAYED_FALSE "Idempotent-Replayed: false\r\n"
#define REPLAYED_TRUE "Idempotent-Replayed: true\r\n"

struct bp_proxy__idem_job {
    struct bp_idem_op op;    /* first */
    struct bp_idem *idem;    /* the queue it goes to */
    struct bp_http_req *req; /* NULL once the request ended (loop thread only) */
    bp_err refusal;          /* settle_done: the refusal answered once the entry is settled, */
    const char *reason;      /* and its reason (a constant string, or the request's) */
};

static int64_t
ceil_s(int64_t ms)
{
    return (ms + 999) / 1000;
}

static bool
is_write(const struct bp_http_head *h)
{
    return !bp_str_eq(h->method, h->method_len, "GET") && !bp_str_eq(h->method, h->method_len, "HEAD");
}

bp_err
bp_proxy__idem_head(struct bp_http_req *req, struct bp_proxy_req *st, const char **reason)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_proxy_worker *pw = bp_http_req_worker_state(req);
    const struct bp_http_header *key;
    size_t n = 0;
    bp_err rc;

    if (pw->proxy->idem == NULL || bp_http_req_cfg(req)->idempotency_ttl_ms == 0 || !is_write(h)) {
        return BP_OK;
    }
    key = bp_http_head_find(h, "Idempotency-Key", &n);
    if (key == NULL) {
        return BP_OK;
    }
    if (n > 1) {
        *reason = "Idempotency-Key appears more than once: send one";
        return BP_ERR_MALFORMED;
    }
    rc = bp_idem_key_check(key->value, key->value_len, reason);
    if (rc != BP_OK) {
        return rc;
    }
    st->idem_key = key->value;
    st->idem_key_len = key->value_len;
    return BP_OK;
}

static void
job_free(struct bp_proxy__idem_job *job)
{
    bp_idem_rec_cleanup(&job->op.rec);
    bp_free(job);
}

static void
free_done(struct bp_work *w, bp_err status)
{
    (void)status;
    job_free((struct bp_proxy__idem_job *)w);
}

static struct bp_idem *
idem_of(struct bp_http_req *req)
{
    const struct bp_proxy_worker *pw = bp_http_req_worker_state(req);

    return pw->proxy->idem;
}

static struct bp_proxy__idem_job *
job_new(struct bp_http_req *req, struct bp_proxy_req *st, enum bp_idem_op_kind kind, bp_work_done_cb done)
{
    struct bp_proxy__idem_job *job = bp_calloc(1, sizeof(*job));

    job->idem = idem_of(req);
    job->op.kind = kind;
    job->op.work.done = done;
    job->op.work.inbox = bp_http_req_inbox(req);
    memcpy(job->op.scope, st->idem_scope, sizeof(job->op.scope));
    return job;
}

/* Submits a job nobody waits for (the outcome of an owner that has answered, or is gone);
 * its done runs on the queue's thread and frees it. A full queue loses the write: the entry
 * then stays in flight until its lease passes, when it counts as of unknown outcome. */
static void
submit_detached(struct bp_proxy__idem_job *job)
{
    job->req = NULL;
    job->op.work.done = free_done;
    job->op.work.inbox = NULL;
    if (bp_idem_submit(job->idem, &job->op) != BP_OK) {
        BP_WARN("Idempotency-Key outcome not stored: the queue is full or stopping",
                BP_LSTR("kind", job->op.kind == BP_IDEM_OP_RELEASE ? "release" : "finish"));
        job_free(job);
    }
}

/* ---- the claim ---- */

static void
replay(struct bp_http_req *req, struct bp_proxy_req *st, const struct bp_idem_rec *rec)
{
    size_t extra = sizeof(REPLAYED_TRUE) - 1;
    char *headers = bp_arena_alloc(bp_http_req_arena(req), rec->headers_len + extra + 1);
    char *body = NULL;
    struct bp_http_resp out;

    memcpy(headers, rec->headers != NULL ? rec->headers : "", rec->headers_len);
    memcpy(headers + rec->headers_len, REPLAYED_TRUE, extra + 1);
    if (rec->body_len > 0) {
        body = bp_arena_memdup(bp_http_req_arena(req), rec->body, rec->body_len);
    }
    out = (struct bp_http_resp){
        .status = rec->status,
        .headers = headers,
        .headers_len = rec->headers_len + extra,
        .length = (rec->status >= 100 && rec->status < 200) || rec->status == 204 || rec->status == 304
                      ? BP_HTTP_LENGTH_NONE
                      : (int64_t)rec->body_len,
    };
    st->replayed = true;
    st->up_status = rec->status;
    bp_metrics_idempotency(BP_METRICS_IDEM_REPLAYED, 1);
    bp_proxy__note_resource_id(req, st, body, rec->body_len, false);
    bp_http_respond(req, &out, body, rec->body_len); /* the request may be gone */
}

/* Another request owns, or owned, the scope: answer from its entry. */
static void
answer_from_entry(struct bp_http_req *req, struct bp_proxy_req *st, const struct bp_idem_op *op)
{
    const struct bp_idem_rec *rec = &op->rec;
    int64_t now = bp_clock_wall_s();

    if (memcmp(rec->fingerprint, op->fingerprint, BP_IDEM_DIGEST_LEN) != 0) {
        bp_metrics_idempotency(BP_METRICS_IDEM_MISMATCH, 1);
        bp_proxy__refuse(req, st, BP_ERR_IDEM_MISMATCH, NULL);
        return;
    }
    if (rec->state == BP_IDEM_DONE && rec->kept) {
        replay(req, st, rec);
        return;
    }
    if (rec->state == BP_IDEM_DONE) {
        bp_metrics_idempotency(BP_METRICS_IDEM_NOT_KEPT, 1);
        bp_proxy__refuse(req, st, BP_ERR_IDEM_NOT_KEPT, NULL);
        return;
    }
    if (rec->state == BP_IDEM_IN_FLIGHT && rec->lease_until > now) {
        bp_metrics_idempotency(BP_METRICS_IDEM_IN_FLIGHT, 1);
        bp_proxy__refuse(req, st, BP_ERR_IDEM_IN_FLIGHT, NULL);
        return;
    }
    /* Unknown (or in flight past its lease: its node went away). A transaction is sent again
     * once the lease passes (op->take_over): until then, say when. */
    bp_metrics_idempotency(BP_METRICS_IDEM_OUTCOME_UNKNOWN, 1);
    if (op->take_over && rec->lease_until > now) {
        bp_errors_respond_retry(
            req, BP_ERR_IDEM_UNKNOWN,
            "The outcome of the first request with this Idempotency-Key is unknown (Core did "
            "not answer); retry after Retry-After: it is then sent again with the same reference",
            (int)(rec->lease_until - now), NULL);
        return;
    }
    bp_proxy__refuse(req, st, BP_ERR_IDEM_UNKNOWN, NULL);
}

static void
claim_done(struct bp_work *w, bp_err status)
{
    struct bp_proxy__idem_job *job = (struct bp_proxy__idem_job *)w;
    struct bp_http_req *req = job->req;
    struct bp_proxy_req *st;
    bool ok = status == BP_OK && job->op.rc == BP_OK;

    if (req == NULL) {
        /* The client left while the claim was in the store: an entry it took is given back. */
        if (ok && job->op.owned) {
            job->op.kind = BP_IDEM_OP_RELEASE;
            submit_detached(job);
            return;
        }
        job_free(job);
        return;
    }
    st = bp_http_req_state(req);
    st->idem_job = NULL;
    if (!ok) {
        job_free(job);
        bp_proxy__refuse(req, st, BP_ERR_IDEM_UNAVAILABLE, NULL);
        return;
    }
    if (job->op.owned) {
        if (job->op.rec.state != 0) {
            bp_metrics_idempotency(BP_METRICS_IDEM_RETRIED, 1);
        }
        st->idem_owner = true;
        job_free(job);
        bp_proxy__send_body(req, st);
        return;
    }
    answer_from_entry(req, st, &job->op);
    job_free(job);
}

bool
bp_proxy__idem_claim(struct bp_http_req *req, struct bp_proxy_req *st)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_config *cfg = bp_http_req_cfg(req);
    size_t body_len = 0;
    const char *body = bp_http_req_body(req, &body_len);
    struct bp_proxy__idem_job *job;
    int64_t now = bp_clock_wall_s();

    bp_idem_scope(bp_cred_actor_id(st->cred), st->instance->id, h->method, h->method_len, st->route->pattern,
                  st->idem_key, st->idem_key_len, st->idem_scope);
    job = job_new(req, st, BP_IDEM_OP_CLAIM, claim_done);
    bp_idem_fingerprint(h->method, h->method_len, st->core_path, st->core_path_len, st->fwd_query,
                        st->fwd_query_len, body, body_len, job->op.fingerprint);
    /* In flight, the lease covers Core's whole time and then the wait of an unknown outcome: a
     * node that dies with the request in flight leaves an entry that counts as unknown after. */
    job->op.lease_until = now + ceil_s(cfg->upstream_timeout_ms) + ceil_s(cfg->idempotency_lease_ms);
    job->op.expires_at = now + ceil_s(cfg->idempotency_ttl_ms);
    job->op.take_over = st->route->rewrite != BP_REWRITE_NONE;
    job->req = req;
    if (bp_idem_submit(job->idem, &job->op) != BP_OK) {
        job_free(job);
        bp_proxy__refuse(req, st, BP_ERR_IDEM_UNAVAILABLE, NULL);
        return false;
    }
    st->idem_job = job;
    return true;
}

/* ---- the owner's outcome ---- */

size_t
bp_proxy__idem_hold_bytes(struct bp_http_req *req, const struct bp_proxy_req *st)
{
    size_t keep = bp_http_req_cfg(req)->idempotency_max_answer_bytes;

    return st->idem_owner && keep > BP_PROXY_ANSWER_BUFFER ? keep : BP_PROXY_ANSWER_BUFFER;
}

const char *
bp_proxy__idem_replayed_false(const struct bp_proxy_req *st)
{
    return st->idem_owner ? REPLAYED_FALSE : "";
}

static void
finish_done(struct bp_work *w, bp_err status)
{
    struct bp_proxy__idem_job *job = (struct bp_proxy__idem_job *)w;
    struct bp_http_req *req = job->req;
    struct bp_proxy_req *st;

    if (status != BP_OK || job->op.rc != BP_OK) {
        BP_WARN("Idempotency-Key answer not stored: retries get 409 until its lease passes",
                BP_LSTR("request_id", req != NULL ? bp_http_req_id(req) : NULL));
    }
    if (req == NULL) {
        job_free(job);
        return;
    }
    st = bp_http_req_state(req);
    st->idem_job = NULL;
    job_free(job);
    bp_http_respond(req, &st->idem_resp, st->answer.data, st->answer.len); /* the request may be gone */
}

bool
bp_proxy__idem_store_answer(struct bp_http_req *req, struct bp_proxy_req *st, const struct bp_http_resp *out)
{
    size_t keep = bp_http_req_cfg(req)->idempotency_max_answer_bytes;
    struct bp_proxy__idem_job *job;
    struct bp_idem_rec *rec;

    if (!st->idem_owner) {
        return false;
    }
    st->idem_owner = false;
    job = job_new(req, st, BP_IDEM_OP_FINISH, finish_done);
    rec = &job->op.rec;
    rec->state = BP_IDEM_DONE;
    rec->status = st->up_status;
    rec->kept = st->answer.len <= keep;
    if (rec->kept) {
        rec->headers = bp_memdup(st->up_headers, st->core_headers_len);
        rec->headers_len = st->core_headers_len;
        rec->body = st->answer.len > 0 ? bp_memdup(st->answer.data, st->answer.len) : NULL;
        rec->body_len = st->answer.len;
    }
    bp_metrics_idempotency(BP_METRICS_IDEM_STORED, 1);
    st->idem_resp = *out;
    job->req = req;
    if (bp_idem_submit(job->idem, &job->op) != BP_OK) {
        BP_WARN("Idempotency-Key answer not stored: the queue is full",
                BP_LSTR("request_id", bp_http_req_id(req)));
        job_free(job);
        return false; /* answered all the same: Core acted */
    }
    st->idem_job = job;
    return true;
}

void
bp_proxy__idem_streamed(struct bp_http_req *req, struct bp_proxy_req *st)
{
    struct bp_proxy__idem_job *job;

    if (!st->idem_owner) {
        return;
    }
    st->idem_owner = false;
    job = job_new(req, st, BP_IDEM_OP_FINISH, free_done);
    job->op.rec.state = BP_IDEM_DONE;
    job->op.rec.status = st->up_status;
    job->op.rec.kept = false;
    bp_metrics_idempotency(BP_METRICS_IDEM_STORED, 1);
    submit_detached(job);
}

void
bp_proxy__idem_note_sent(struct bp_proxy_req *st)
{
    if (st->idem_owner && st->xfer != NULL && !bp_upstream_sent_any(st->xfer)) {
        st->idem_unsent = true;
    }
}

/* The store call that settles an owner without an answer: released when Core never saw a byte
 * of it (a retry starts afresh), else of unknown outcome (retries wait for the lease, then a
 * transaction goes again). */
static struct bp_proxy__idem_job *
settle_job(struct bp_http_req *req, struct bp_proxy_req *st, bp_work_done_cb done)
{
    struct bp_proxy__idem_job *job = job_new(req, st, BP_IDEM_OP_RELEASE, done);

    if (st->forwarded && !st->idem_unsent) {
        job->op.kind = BP_IDEM_OP_FINISH;
        job->op.rec.state = BP_IDEM_UNKNOWN;
        job->op.rec.lease_until = bp_clock_wall_s() + ceil_s(bp_http_req_cfg(req)->idempotency_lease_ms);
    }
    return job;
}

static void
settle_done(struct bp_work *w, bp_err status)
{
    struct bp_proxy__idem_job *job = (struct bp_proxy__idem_job *)w;
    struct bp_http_req *req = job->req;
    bp_err refusal = job->refusal;
    const char *reason = job->reason;
    struct bp_proxy_req *st;

    if (status != BP_OK || job->op.rc != BP_OK) {
        BP_WARN("Idempotency-Key outcome not stored: retries get 409 until its lease passes",
                BP_LSTR("request_id", req != NULL ? bp_http_req_id(req) : NULL));
    }
    job_free(job);
    if (req == NULL) {
        return;
    }
    st = bp_http_req_state(req);
    st->idem_job = NULL;
    bp_proxy__refuse(req, st, refusal, reason); /* the request may be gone */
}

bool
bp_proxy__idem_settle_then_refuse(struct bp_http_req *req, struct bp_proxy_req *st, bp_err rc, const char *reason)
{
    struct bp_proxy__idem_job *job;

    if (!st->idem_owner) {
        return false;
    }
    job = settle_job(req, st, settle_done);
    job->req = req;
    job->refusal = rc;
    job->reason = reason;
    if (bp_idem_submit(job->idem, &job->op) != BP_OK) {
        /* A full queue: answer now; the request's end tries once more. */
        job_free(job);
        return false;
    }
    if (job->op.kind == BP_IDEM_OP_FINISH) {
        bp_metrics_idempotency(BP_METRICS_IDEM_UNKNOWN_FOUND, 1);
    }
    st->idem_owner = false;
    st->idem_job = job;
    return true;
}

void
bp_proxy__idem_end(struct bp_http_req *req, struct bp_proxy_req *st)
{
    struct bp_proxy__idem_job *job;

    if (st->idem_job != NULL) {
        st->idem_job->req = NULL; /* its done settles and frees it */
        st->idem_job = NULL;
    }
    if (!st->idem_owner) {
        return;
    }
    st->idem_owner = false;
    job = settle_job(req, st, free_done);
    if (job->op.kind == BP_IDEM_OP_FINISH) {
        bp_metrics_idempotency(BP_METRICS_IDEM_UNKNOWN_FOUND, 1);
    }
    submit_detached(job);
}
