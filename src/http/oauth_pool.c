/* The OAuth endpoints off the loop threads. Answering /oauth/token may hash a password
 * (Argon2id, tens of milliseconds) or write the store, which a loop thread must never wait for
 * (STYLE §7). So the loop reads the whole request, hands it to one of a few OAuth threads, and
 * carries on; the thread answers with bp_oauth_handle on its own store connection and posts the
 * answer back to the loop (tasks.c), which writes it.
 *
 * Ownership: the job reads the request (head and body) while the thread works. If the client
 * goes away meanwhile, the connection is freed but the request is not: the job takes it
 * (bp_http__oauth_orphan) and frees it once the thread is done. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/str.h"
#include "oauth/oauth.h"

/* Form posts and page requests are small; a larger body is refused before it is read. */
#define OAUTH_MAX_BODY (64 * 1024)
/* Jobs waiting per OAuth thread before new requests are answered 503: closing a connection
 * frees its place under max_connections, so without a bound a client could queue unlimited
 * work (store writes, Argon2id hashes) by connecting, posting and leaving. */
#define OAUTH_QUEUE_PER_THREAD 64

struct bp_oauth_job {
    struct bp_http_task task;      /* the answer, posted back to the worker */
    struct bp_oauth_job *next;     /* pool queue */
    struct bp_worker *worker;
    struct bp_conn *conn;          /* loop thread only: NULL once the connection went away */
    struct bp_req *req;            /* the request the thread reads */
    atomic_bool orphaned;          /* the job owns req; the thread skips an orphan not yet begun */
    char peer[64];
    struct bp_oauth_request oreq;
    struct bp_oauth_response resp;
};

struct bp_oauth_pool {
    struct bp_server *server;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct bp_oauth_job *head;
    struct bp_oauth_job *tail;
    size_t queued;
    size_t max_queued;
    bool stopping;
    int n_threads;
    pthread_t *threads;
    struct bp_oauth **states;
    int next_state;                /* handed to threads at start, under lock */
};

static struct bp_oauth_job *
take_job(struct bp_oauth_pool *p)
{
    struct bp_oauth_job *job;

    pthread_mutex_lock(&p->lock);
    while (p->head == NULL && !p->stopping) {
        pthread_cond_wait(&p->cond, &p->lock);
    }
    job = p->head;
    if (job != NULL) {
        p->head = job->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        job->next = NULL;
        p->queued--;
    }
    pthread_mutex_unlock(&p->lock);
    return job;
}

static void *
pool_main(void *arg)
{
    struct bp_oauth_pool *p = arg;
    const struct bp_server_deps *deps = p->server->deps;
    struct bp_oauth *o;
    struct bp_oauth_job *job;

    pthread_mutex_lock(&p->lock);
    o = p->states[p->next_state++];
    pthread_mutex_unlock(&p->lock);
    /* Queued jobs are finished even when stopping: their clients are still waiting. */
    while ((job = take_job(p)) != NULL) {
        /* Nobody would read the answer of a client that already left: no token is issued for it. */
        if (!atomic_load(&job->orphaned)) {
            bp_oauth_handle(o, &job->oreq, &job->resp);
            if (job->resp.tokens_issued && deps != NULL && deps->tables_sync != NULL) {
                deps->tables_sync(deps->tables_sync_arg);
            }
        }
        bp_http__post(job->worker, &job->task);
    }
    return NULL;
}

bp_err
bp_http__oauth_pool_start(struct bp_server *s, struct bp_oauth_pool **out)
{
    struct bp_oauth_pool *p = bp_calloc(1, sizeof(*p));
    int n = s->start_cfg->oauth_threads > 0 ? s->start_cfg->oauth_threads : 1;
    bp_err rc = BP_OK;

    p->server = s;
    p->max_queued = (size_t)n * OAUTH_QUEUE_PER_THREAD;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->threads = bp_calloc((size_t)n, sizeof(*p->threads));
    p->states = bp_calloc((size_t)n, sizeof(*p->states));
    for (int i = 0; i < n && rc == BP_OK; i++) {
        rc = bp_oauth_open(&s->oauth_cfg, &p->states[i]);
    }
    for (int i = 0; i < n && rc == BP_OK; i++) {
        if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0) {
            rc = BP_ERR_IO;
            break;
        }
        p->n_threads++;
    }
    if (rc != BP_OK) {
        BP_ERROR("cannot start the OAuth threads", BP_LSTR("error", bp_err_str(rc)));
        bp_http__oauth_pool_stop(p);
        return rc;
    }
    *out = p;
    return BP_OK;
}

void
bp_http__oauth_pool_stop(struct bp_oauth_pool *p)
{
    int n;

    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    n = p->server->start_cfg->oauth_threads > 0 ? p->server->start_cfg->oauth_threads : 1;
    for (int i = 0; i < n; i++) {
        bp_oauth_close(p->states[i]);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    bp_free(p->states);
    bp_free(p->threads);
    bp_free(p);
}

void
bp_http__oauth_head(struct bp_conn *c)
{
    c->req->kind = BP_REQ_OAUTH;
    bp_http__conn_read_body(c, OAUTH_MAX_BODY);
}

static void
job_free(struct bp_oauth_job *job)
{
    bp_oauth_response_cleanup(&job->resp);
    bp_free(job);
}

/* On the loop thread, after the OAuth thread answered. */
static void
job_done(struct bp_worker *w, struct bp_http_task *t)
{
    struct bp_oauth_job *job = (struct bp_oauth_job *)((char *)t - offsetof(struct bp_oauth_job, task));
    struct bp_conn *c = job->conn;
    (void)w;

    job->req->oauth_job = NULL;
    if (atomic_load(&job->orphaned)) {
        bp_http__req_free(job->req);
    } else {
        BP_BUG_ON(c == NULL || c->req != job->req || c->state != BP_CONN_WAITING_UPSTREAM);
        bp_http__respond(c, job->resp.status, job->resp.headers, job->resp.content_type, job->resp.body,
                         job->resp.body_len, false);
    }
    job_free(job);
}

void
bp_http__oauth_body_done(struct bp_conn *c)
{
    struct bp_oauth_pool *p = c->worker->server->oauth_pool;
    struct bp_req *r = c->req;
    const struct bp_http_head *h = &r->head;
    struct bp_oauth_job *job;
    const struct bp_http_header *hdr;
    size_t count = 0;
    const char *issuer = c->worker->server->oauth_cfg.oauth_issuer;
    bool full;

    if (p == NULL) {
        bp_http__respond_error(c, BP_ERR_ROUTE_NOT_FOUND, 0);
        return;
    }
    pthread_mutex_lock(&p->lock);
    full = p->queued >= p->max_queued;
    pthread_mutex_unlock(&p->lock);
    if (full) {
        static const char busy[] =
            "{\"error\":\"temporarily_unavailable\",\"error_description\":\"too many OAuth requests in progress\"}";
        bp_http__respond(c, 503, "Cache-Control: no-store\r\nRetry-After: 1\r\n", "application/json", busy,
                         sizeof(busy) - 1, false);
        return;
    }
    job = bp_calloc(1, sizeof(*job));
    job->task.run = job_done;
    job->worker = c->worker;
    job->conn = c;
    job->req = r;
    snprintf(job->peer, sizeof(job->peer), "%s", c->peer);
    job->oreq = (struct bp_oauth_request){
        .method = h->method,
        .method_len = h->method_len,
        .path = h->path,
        .path_len = h->path_len,
        .query = h->query_len > 0 ? h->query : NULL,
        .query_len = h->query_len,
        .body = r->body.data,
        .body_len = r->body.len,
        .peer = job->peer,
        /* The proxy itself speaks plain HTTP; an https issuer means a TLS terminator in front,
         * so the browser talks TLS and cookies must be Secure. */
        .tls = issuer != NULL && strncmp(issuer, "https://", 8) == 0,
    };
    hdr = bp_http_head_find(h, "Authorization", &count);
    if (hdr != NULL) {
        job->oreq.authorization = hdr->value;
        job->oreq.authorization_len = hdr->value_len;
        job->oreq.n_authorization = count;
    }
    hdr = bp_http_head_find(h, "Content-Type", &count);
    if (hdr != NULL) {
        job->oreq.content_type = hdr->value;
        job->oreq.content_type_len = hdr->value_len;
    }
    hdr = bp_http_head_find(h, "Cookie", &count);
    if (hdr != NULL) {
        job->oreq.cookie = hdr->value;
        job->oreq.cookie_len = hdr->value_len;
    }
    r->oauth_job = job;
    c->state = BP_CONN_WAITING_UPSTREAM;
    pthread_mutex_lock(&p->lock);
    if (p->tail != NULL) {
        p->tail->next = job;
    } else {
        p->head = job;
    }
    p->tail = job;
    p->queued++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void
bp_http__oauth_orphan(struct bp_req *r)
{
    struct bp_oauth_job *job = r->oauth_job;

    job->conn = NULL;
    atomic_store(&job->orphaned, true);
}
