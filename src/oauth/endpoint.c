/* The OAuth endpoints' handler: off the loop threads. Answering /oauth/token may hash a password
 * (Argon2id, tens of milliseconds) or write the store, which a loop thread must never wait for
 * (STYLE §7). So the loop reads the whole request (at most 64 KiB of body), copies what the
 * endpoint needs into a job, and submits it to the OAuth work queue (core/workq.h); one of its
 * threads answers with bp_oauth_handle on its own store connection (each thread's state is its
 * struct bp_oauth), and the job's done runs back on the request's loop, which writes the answer.
 *
 * Sign-ins (the POSTs of the authorize page, the only requests that verify a password) have a
 * work queue of their own (oauth.password_threads, PASSWORD_QUEUE_PER_THREAD waiting each): an
 * Argon2id verification takes tens of milliseconds of CPU and 19 MiB, and a flood of them on the
 * shared queue made /oauth/token answer 503 or seconds late for every client (issue 11). Now
 * token, revoke and introspect never wait behind a hash, and a sign-in that finds its queue full
 * gets 429 at once.
 *
 * A service (the admin API) has a queue of its own too (SERVICE_THREADS): its calls may hold a
 * thread for seconds (a connection check to a Core that does not answer, a walk over the audit
 * trail), and /oauth/token must not wait behind them, nor they behind a flood of token requests.
 * A service call that a thread refuses 401 (a made-up or revoked admin token, a wrong password)
 * counts as a failed authentication of its peer, as on /proxy/ (rate_limit.auth_failures); a
 * peer over that allowance gets 429 before its call takes a place in the queue. Without it, a
 * client sending well-formed made-up tokens could keep the queue full, and every operator got 429.
 * The failure is counted when the call is queued and given back when its answer is not 401: a
 * burst of made-up tokens sent at once is held to the allowance even before any was answered.
 *
 * Ownership: the job owns copies of everything the thread reads, so the request never outlives
 * its connection. If the client goes away first, the handler marks the job orphaned: the thread
 * skips it if it has not begun (nobody would read the answer, so no token is issued for it),
 * and its done only frees it. */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/workq.h"
#include "errors/errors.h"
#include "http/http.h"
#include "http/parser.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "limits/limits.h"
#include "metrics/metrics.h"
#include "oauth/oauth.h"

/* Form posts and page requests are small; a larger body is refused before it is read. */
#define OAUTH_MAX_BODY (64 * 1024)
/* Jobs waiting per OAuth thread before new requests are answered 503: closing a connection
 * frees its place under max_connections, so without a bound a client could queue unlimited
 * work (store writes, Argon2id hashes) by connecting, posting and leaving. */
#define OAUTH_QUEUE_PER_THREAD 64
/* Sign-ins waiting per password thread before further ones get 429: a person signing in retries;
 * a flood should cost little. */
#define PASSWORD_QUEUE_PER_THREAD 8
#define SIGNIN_NICE 19
/* A service's threads and the calls that may wait for one: the admin API serves a few people and
 * their scripts. */
#define SERVICE_THREADS 2
#define SERVICE_QUEUE_PER_THREAD 16
/* A service's answers may run to megabytes (an audit export), and each stays in its connection's
 * output until the client has read it: a client reading slowly on many connections would pin
 * all of them. So the bytes of the large ones held at once have one process-wide bound; beyond
 * it such an answer is refused 503 (retry shortly) instead of kept. */
#define SERVICE_ANSWER_BUDGET ((size_t)64 * 1024 * 1024)
#define SERVICE_ANSWER_SMALL ((size_t)64 * 1024) /* not counted: a JSON object, an error */

static _Atomic size_t service_answer_bytes;

struct bp_oauth_endpoint {
    struct bp_http_handler handler;
    struct bp_config cfg; /* the start configuration with the issuer filled in */
    char *issuer;         /* owned when derived from the bound address */
    void (*tables_sync)(void *arg);
    void *tables_sync_arg;
    struct bp_oauth_service service; /* .handle NULL: none */
    struct bp_workq *q;
    struct bp_workq *password_q; /* POST /oauth/authorize: sign-ins and consent */
    struct bp_workq *service_q;  /* the service's calls but its sign-ins; NULL: no service */
    bool tls;                    /* the issuer is https: cookies must be Secure */
};

struct job {
    struct bp_work work;
    struct bp_oauth_endpoint *ep;
    struct bp_http_req *req;      /* loop thread only; NULL once the connection went away */
    atomic_bool orphaned;         /* read by the thread: skip an orphan not yet begun */
    bool service;                 /* the service's path, not OAuth's */
    /* rate_limit.auth_failures when the job was made, and whether a failure of fail_peer is
     * counted for it in advance (given back by job_free unless its answer was 401). */
    struct bp_rate fail_rate;
    uint32_t fail_burst;
    bool failure_counted;
    struct bp_ip fail_peer;
    struct bp_oauth_request oreq; /* views of copy */
    struct bp_oauth_response resp;
    size_t copy_len;
    char copy[]; /* method, path, query, headers, body and peer */
};

/* Per request. */
struct oauth_req {
    struct job *job;
    size_t answer_bytes; /* of SERVICE_ANSWER_BUDGET, given back when the request ends */
};

/* Counts n bytes of a large service answer against SERVICE_ANSWER_BUDGET; false when they do not
 * fit. */
static bool
answer_budget_take(struct oauth_req *st, size_t n)
{
    size_t cur = atomic_load_explicit(&service_answer_bytes, memory_order_relaxed);

    do {
        if (n > SERVICE_ANSWER_BUDGET - cur) {
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&service_answer_bytes, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    st->answer_bytes = n;
    return true;
}

/* ---- on the OAuth threads ---- */

static bp_err
thread_open(void *arg, int index, void **out)
{
    struct bp_oauth_endpoint *ep = arg;
    struct bp_oauth *o = NULL;
    bp_err rc = bp_oauth_open(&ep->cfg, &o);

    (void)index;
    if (rc == BP_OK) {
        *out = o;
    }
    return rc;
}

/* A sign-in thread runs at the lowest priority (nice 19, this thread only): Argon2id is CPU by
 * design, and on a busy machine the scheduler then gives the CPU to the loops and the token
 * threads first, a flood of sign-ins taking what is left. (The systemd unit allows setpriority
 * for this alone.) */
static bp_err
signin_thread_open(void *arg, int index, void **out)
{
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), SIGNIN_NICE) != 0) {
        BP_WARN("cannot lower the sign-in thread's priority", BP_LSTR("error", strerror(errno)));
    }
    return thread_open(arg, index, out);
}

static void
thread_close(void *arg, void *state)
{
    (void)arg;
    bp_oauth_close(state);
}

static bool
owned_by_service(const struct bp_oauth_endpoint *ep, const char *path, size_t len)
{
    return ep->service.handle != NULL && ep->service.owns_path(path, len);
}

static void
job_work(struct bp_work *w, void *state)
{
    struct job *job = (struct job *)w;
    struct bp_oauth_endpoint *ep = job->ep;

    /* Nobody would read the answer of a client that already left: no token is issued for it. */
    if (atomic_load(&job->orphaned)) {
        return;
    }
    if (job->service) {
        ep->service.handle(ep->service.arg, state, &job->oreq, &job->resp);
    } else {
        bp_oauth_handle(state, &job->oreq, &job->resp);
    }
    /* The new token (or the changed credential or instance) is in every node's tables before
     * the client has the answer (bounded wait). */
    if (job->resp.tables_changed && ep->tables_sync != NULL) {
        ep->tables_sync(ep->tables_sync_arg);
    }
}

/* ---- on the loop ---- */

static void
job_free(struct job *job)
{
    if (job->failure_counted) {
        bp_limits_peer_refund(&job->fail_peer, &job->fail_rate, job->fail_burst, bp_clock_mono_us());
    }
    bp_oauth_response_cleanup(&job->resp);
    /* The copy holds passwords, client secrets and credentials (a sign-in's body, a Basic or
     * Bearer header, a session cookie): not left in freed memory. */
    bp_wipe(job->copy, job->copy_len);
    bp_free(job);
}

/* Writes the job's answer (a large one only within SERVICE_ANSWER_BUDGET) and frees the job. */
static void
job_respond(struct bp_http_req *req, struct job *job, bp_err status)
{
    struct oauth_req *st = bp_http_req_state(req);

    st->job = NULL;
    if (status != BP_OK) {
        bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL);
    } else if (job->resp.body_len > SERVICE_ANSWER_SMALL && !answer_budget_take(st, job->resp.body_len)) {
        bp_errors_respond_retry(req, BP_ERR_OVERLOADED, "too many large answers are being sent: retry shortly", 1,
                                NULL);
    } else {
        struct bp_http_resp r = {
            .status = job->resp.status,
            .headers = job->resp.headers,
            .headers_len = job->resp.headers != NULL ? strlen(job->resp.headers) : 0,
            .content_type = job->resp.content_type,
        };
        bp_http_respond(req, &r, job->resp.body, job->resp.body_len);
    }
    job_free(job);
}

static void
job_done(struct bp_work *w, bp_err status)
{
    struct job *job = (struct job *)w;

    if (status == BP_OK && job->resp.status == 401) {
        job->failure_counted = false; /* it was one: the count stands */
    }
    if (atomic_load(&job->orphaned) || job->req == NULL) {
        job_free(job);
        return;
    }
    job_respond(job->req, job, status);
}

/* Copies text into the job's tail and returns the view. */
static const char *
put(char **at, const char *p, size_t n)
{
    char *start = *at;

    if (p == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(start, p, n);
    }
    start[n] = '\0';
    *at += n + 1;
    return start;
}

static struct job *
job_new(struct bp_oauth_endpoint *ep, struct bp_http_req *req)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_http_header *authz;
    const struct bp_http_header *ctype;
    const struct bp_http_header *cookie;
    const struct bp_http_header *csrf;
    size_t n_authz = 0;
    const char *peer = bp_http_req_peer(req);
    size_t body_len = 0;
    const char *body = bp_http_req_body(req, &body_len);
    size_t need;
    struct job *job;
    char *at;

    authz = bp_http_head_find(h, "Authorization", &n_authz);
    ctype = bp_http_head_find(h, "Content-Type", NULL);
    cookie = bp_http_head_find(h, "Cookie", NULL);
    csrf = bp_http_head_find(h, "X-CSRF-Token", NULL);
    /* Each of the nine strings put() may copy (method, path, query, body, peer and four headers)
     * gets its terminator. */
    need = h->method_len + h->path_len + h->query_len + body_len + strlen(peer) + 9 +
           (csrf != NULL ? csrf->value_len : 0) + (authz != NULL ? authz->value_len : 0) +
           (ctype != NULL ? ctype->value_len : 0) + (cookie != NULL ? cookie->value_len : 0);
    job = bp_calloc(1, sizeof(*job) + need);
    job->copy_len = need;
    at = job->copy;
    job->ep = ep;
    job->req = req;
    job->work.work = job_work;
    job->work.done = job_done;
    job->work.inbox = bp_http_req_inbox(req);
    job->oreq = (struct bp_oauth_request){
        .method = put(&at, h->method, h->method_len),
        .method_len = h->method_len,
        .path = put(&at, h->path, h->path_len),
        .path_len = h->path_len,
        .query = h->query_len > 0 ? put(&at, h->query, h->query_len) : NULL,
        .query_len = h->query_len,
        .body = put(&at, body != NULL ? body : "", body_len),
        .body_len = body_len,
        .peer = put(&at, peer, strlen(peer)),
        .tls = ep->tls,
    };
    job->service = owned_by_service(ep, h->path, h->path_len);
    job->fail_rate = bp_http_req_cfg(req)->rate_limit_auth_failures;
    job->fail_burst = (uint32_t)bp_http_req_cfg(req)->rate_limit_auth_failure_burst;
    if (authz != NULL) {
        job->oreq.authorization = put(&at, authz->value, authz->value_len);
        job->oreq.authorization_len = authz->value_len;
        job->oreq.n_authorization = n_authz;
    }
    if (ctype != NULL) {
        job->oreq.content_type = put(&at, ctype->value, ctype->value_len);
        job->oreq.content_type_len = ctype->value_len;
    }
    if (cookie != NULL) {
        job->oreq.cookie = put(&at, cookie->value, cookie->value_len);
        job->oreq.cookie_len = cookie->value_len;
    }
    if (csrf != NULL) {
        job->oreq.csrf_token = put(&at, csrf->value, csrf->value_len);
        job->oreq.csrf_token_len = csrf->value_len;
    }
    return job;
}

static void
on_head(void *self, struct bp_http_req *req)
{
    struct bp_oauth_endpoint *ep = self;
    const struct bp_http_head *h = bp_http_req_head(req);

    bp_http_req_facts(req)->group = owned_by_service(ep, h->path, h->path_len) ? ep->service.group : "oauth";
    bp_http_req_read_body_anonymous(req, OAUTH_MAX_BODY);
}

/* Counts the call's failure now (see the top of this file), unless the peer is over its
 * allowance of failed authentications (rate_limit.auth_failures): then it is answered 429 and
 * its connection closed, as /proxy/ answers it, before the call waits for a thread (true). */
static bool
count_failure_or_refuse(struct bp_http_req *req, struct job *job)
{
    int64_t retry_ms = 0;
    int retry_s;

    if (job->fail_rate.count == 0 || !bp_limits_peer_key(job->oreq.peer, &job->fail_peer)) {
        return false;
    }
    if (bp_limits_peer_take_failure(&job->fail_peer, &job->fail_rate, job->fail_burst, bp_clock_mono_us(),
                                    &retry_ms)) {
        job->failure_counted = true;
        return false;
    }
    retry_s = (int)((retry_ms + 999) / 1000);
    bp_metrics_rate_limited(BP_METRICS_LIMITED_AUTH_FAILURES);
    bp_http_req_close_after(req);
    bp_errors_respond_retry(req, BP_ERR_RATE_LIMITED,
                            "Too many failed authentication attempts from this address; retry later",
                            retry_s < 1 ? 1 : retry_s, NULL);
    return true;
}

/* A POST to the authorize page: the only request that may verify a password. All of them (the
 * consent POST too) go to the password queue, so that no form field decides where a hash runs. */
static bool
is_signin(const struct bp_oauth_endpoint *ep, const struct job *job)
{
    const struct bp_oauth_request *r = &job->oreq;

    if (job->service) {
        return ep->service.is_signin(r->method, r->method_len, r->path, r->path_len);
    }
    return bp_str_eq(r->method, r->method_len, "POST") && bp_str_eq(r->path, r->path_len, "/oauth/authorize");
}

static void
respond_signin_busy(struct bp_http_req *req, bp_err rc)
{
    static const char busy[] =
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Try again</title></head><body>"
        "<p>Too many sign-ins are in progress. Try again in a moment.</p></body></html>";
    static const char headers[] = "Cache-Control: no-store\r\nRetry-After: 1\r\n";
    struct bp_http_resp r = {
        .status = 429,
        .headers = headers,
        .headers_len = sizeof(headers) - 1,
        .content_type = "text/html; charset=utf-8",
    };

    if (rc == BP_ERR_LIMIT) {
        bp_http_respond(req, &r, busy, sizeof(busy) - 1);
    } else {
        bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL); /* stopping */
    }
}

static void
on_body(void *self, struct bp_http_req *req, bp_err rc)
{
    struct bp_oauth_endpoint *ep = self;
    struct oauth_req *st = bp_http_req_state(req);
    struct job *job;

    if (rc != BP_OK) {
        bp_errors_respond(req, rc, NULL, NULL);
        return;
    }
    if (ep->q == NULL || ep->password_q == NULL) {
        bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL);
        return;
    }
    job = job_new(ep, req);
    if (job->service && ep->service.answer_at_once != NULL &&
        ep->service.answer_at_once(ep->service.arg, &job->oreq, &job->resp)) {
        job_respond(req, job, BP_OK);
        return;
    }
    if (job->service && count_failure_or_refuse(req, job)) {
        job_free(job);
        return;
    }
    if (is_signin(ep, job)) {
        rc = bp_workq_submit(ep->password_q, &job->work);
        if (rc != BP_OK && job->service) {
            /* A service answers in Core's error shape, as its own errors. */
            job_free(job);
            bp_errors_respond_retry(req, rc == BP_ERR_LIMIT ? BP_ERR_RATE_LIMITED : BP_ERR_ROUTE_NOT_FOUND,
                                    "too many sign-ins are in progress: try again in a moment", 1, NULL);
            return;
        }
        if (rc != BP_OK) {
            job_free(job);
            respond_signin_busy(req, rc);
            return;
        }
        st->job = job;
        return;
    }
    rc = bp_workq_submit(job->service && ep->service_q != NULL ? ep->service_q : ep->q, &job->work);
    if (rc != BP_OK) {
        static const char busy[] = "{\"error\":\"temporarily_unavailable\",\"error_description\":\"too many "
                                   "OAuth requests in progress\"}";
        static const char headers[] = "Cache-Control: no-store\r\nRetry-After: 1\r\n";
        struct bp_http_resp r = {
            .status = 503,
            .headers = headers,
            .headers_len = sizeof(headers) - 1,
            .content_type = "application/json",
        };
        bool service = job->service;
        job_free(job);
        if (rc == BP_ERR_LIMIT && service) {
            bp_errors_respond_retry(req, BP_ERR_RATE_LIMITED,
                                    "too many admin requests are in progress: try again", 1, NULL);
        } else if (rc == BP_ERR_LIMIT) {
            bp_http_respond(req, &r, busy, sizeof(busy) - 1);
        } else {
            bp_errors_respond(req, BP_ERR_ROUTE_NOT_FOUND, NULL, NULL);
        }
        return;
    }
    st->job = job;
}

/* The connection is going away with a job in flight: it frees itself when done. */
static bool
on_abort(void *self, struct bp_http_req *req)
{
    struct oauth_req *st = bp_http_req_state(req);
    (void)self;

    if (st->job != NULL) {
        st->job->req = NULL;
        atomic_store(&st->job->orphaned, true);
        st->job = NULL;
    }
    return false;
}

/* Its answer is out (or the connection gone): the bytes it held are free. */
static void
on_end(void *self, struct bp_http_req *req)
{
    struct oauth_req *st = bp_http_req_state(req);
    (void)self;

    if (st->answer_bytes > 0) {
        atomic_fetch_sub_explicit(&service_answer_bytes, st->answer_bytes, memory_order_relaxed);
        st->answer_bytes = 0;
    }
}

/* ---- lifecycle ---- */

bp_err
bp_oauth_endpoint_new(const struct bp_oauth_endpoint_opts *o, struct bp_oauth_endpoint **out)
{
    struct bp_oauth_endpoint *ep = bp_calloc(1, sizeof(*ep));

    ep->cfg = *o->cfg;
    ep->tables_sync = o->tables_sync;
    ep->tables_sync_arg = o->tables_sync_arg;
    if (o->service != NULL) {
        ep->service = *o->service;
    }
    ep->handler = (struct bp_http_handler){
        .name = "oauth",
        .on_head = on_head,
        .on_body = on_body,
        .on_abort = on_abort,
        .on_end = on_end,
        .self = ep,
        .state_size = sizeof(struct oauth_req),
    };
    *out = ep;
    return BP_OK;
}

const struct bp_http_handler *
bp_oauth_endpoint_handler(const struct bp_oauth_endpoint *ep)
{
    return &ep->handler;
}

bp_err
bp_oauth_endpoint_start(struct bp_oauth_endpoint *ep, int port, int tls_port)
{
    int n = ep->cfg.oauth_threads > 0 ? ep->cfg.oauth_threads : 1;
    int np = ep->cfg.oauth_password_threads > 0 ? ep->cfg.oauth_password_threads : 1;
    struct bp_workq_opts qo = {
        .name = "bp-oauth",
        .threads = n,
        .max_queued = (size_t)n * OAUTH_QUEUE_PER_THREAD,
        .thread_init = thread_open,
        .thread_fini = thread_close,
        .arg = ep,
    };
    struct bp_workq_opts pqo = {
        .name = "bp-signin",
        .threads = np,
        .max_queued = (size_t)np * PASSWORD_QUEUE_PER_THREAD,
        .thread_init = signin_thread_open,
        .thread_fini = thread_close,
        .arg = ep,
    };
    struct bp_workq_opts sqo = {
        .name = "bp-service",
        .threads = SERVICE_THREADS,
        .max_queued = (size_t)SERVICE_THREADS * SERVICE_QUEUE_PER_THREAD,
        .thread_init = thread_open,
        .thread_fini = thread_close,
        .arg = ep,
    };
    bp_err rc;

    /* The issuer is by default the address we actually listen on, known only once bound: the
     * TLS listener's when there is one (browsers and apps should use that one). */
    ep->cfg.listen_port = port;
    if (ep->cfg.oauth_issuer == NULL) {
        char buf[300];
        bool tls = tls_port > 0 && ep->cfg.tls_listen_host != NULL;
        const char *host = tls ? ep->cfg.tls_listen_host : ep->cfg.listen_host;
        bool v6 = strchr(host, ':') != NULL;
        snprintf(buf, sizeof(buf), v6 ? "%s://[%s]:%d" : "%s://%s:%d", tls ? "https" : "http", host,
                 tls ? tls_port : port);
        ep->issuer = bp_strdup(buf);
        ep->cfg.oauth_issuer = ep->issuer;
    }
    /* An https issuer: the browser talks TLS (to our TLS listener, or to a terminator in front),
     * so cookies must be Secure. */
    ep->tls = strncmp(ep->cfg.oauth_issuer, "https://", 8) == 0;
    rc = bp_workq_new(&qo, &ep->q);
    if (rc != BP_OK) {
        BP_ERROR("cannot start the OAuth threads", BP_LSTR("error", bp_err_str(rc)));
        ep->q = NULL;
        return rc;
    }
    rc = bp_workq_new(&pqo, &ep->password_q);
    if (rc != BP_OK) {
        BP_ERROR("cannot start the OAuth password threads", BP_LSTR("error", bp_err_str(rc)));
        ep->password_q = NULL;
        return rc;
    }
    if (ep->service.handle != NULL) {
        rc = bp_workq_new(&sqo, &ep->service_q);
        if (rc != BP_OK) {
            BP_ERROR("cannot start the service threads", BP_LSTR("group", ep->service.group),
                     BP_LSTR("error", bp_err_str(rc)));
            ep->service_q = NULL;
        }
    }
    return rc;
}

void
bp_oauth_endpoint_stop(struct bp_oauth_endpoint *ep)
{
    if (ep != NULL) {
        bp_workq_stop(ep->q);
        bp_workq_stop(ep->password_q);
        bp_workq_stop(ep->service_q);
    }
}

void
bp_oauth_endpoint_free(struct bp_oauth_endpoint *ep)
{
    if (ep == NULL) {
        return;
    }
    bp_workq_free(ep->q);
    bp_workq_free(ep->password_q);
    bp_workq_free(ep->service_q);
    bp_free(ep->issuer);
    bp_free(ep);
}
