/* The request: one state machine, in this file alone.
 *
 *   NONE ──first byte──▶ HEAD ──head parsed──▶ HANDLER ◀──body read── BODY
 *                          │                     │  ▲ (handler asked: bp_http_req_read_body)
 *                          │ malformed/408       │  └───────────────────┘
 *                          ▼                     ▼ response complete        (or started:
 *                       FLUSHING ◀── not held ── ● ── held ──▶ HELD          STREAMING ─end─▶ ●,
 *                          │                                   │ release       or abort: no end,
 *                          └──── bytes out ──▶ end ◀───────────┘               and a close)
 *
 * A request begins with the first byte of its head: it pins the worker's live configuration
 * and takes an arena from the worker's pool. Its head is parsed in place in the read buffer,
 * then copied into the arena (pointers moved along), so the read buffer can move on. The route
 * table picks the handler; the handler's per-request state lives in the arena. The handler
 * answers (now, after the body, or later); the response head is framed here and written with
 * its body in one writev. Once the last byte is queued the finish hooks run, in order; one may
 * hold the response, which then waits in memory for its release (a streamed one may be released
 * before its end; until then its writer is paused at the write bound like any other). When the
 * bytes are out the request ends: the arena goes back to the pool, the configuration is
 * unpinned, and the connection parses the next request (pipelined bytes wait in the read buffer
 * until then, so responses leave in request order).
 *
 * Re-entrancy: while this file dispatches to a handler (c->dispatching) a response that
 * completes does not end the request from inside the handler's call; the dispatch loop ends it
 * once the handler returned. A response completed from elsewhere (Core's answer, an OAuth
 * thread's, a release) ends the request before bp_http_respond returns: the caller must not
 * touch the request afterwards. */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/str.h"

static void dispatch(struct bp_conn *c);

/* ---- accessors ---- */

const struct bp_http_head *
bp_http_req_head(const struct bp_http_req *req)
{
    return req->head;
}

const char *
bp_http_req_id(const struct bp_http_req *req)
{
    return req->id;
}

const char *
bp_http_req_peer(const struct bp_http_req *req)
{
    /* Empty until the head is parsed: a request refused before that is the peer's. */
    return req->client[0] != '\0' ? req->client : req->conn->peer;
}

const char *
bp_http_req_socket_peer(const struct bp_http_req *req)
{
    return req->conn->peer;
}

const char *
bp_http_req_forwarded_for(const struct bp_http_req *req, size_t *out_len)
{
    *out_len = req->forwarded_for_len;
    return req->forwarded_for;
}

bool
bp_http_req_https(const struct bp_http_req *req)
{
    return req->https;
}

unsigned
bp_http_req_conn_strike(struct bp_http_req *req)
{
    return ++req->conn->strikes;
}

void
bp_http_req_close_after(struct bp_http_req *req)
{
    BP_BUG_ON(req->responded);
    req->conn->close_after_write = true;
}

bool
bp_http_req_on_ops(const struct bp_http_req *req)
{
    return req->conn->ops;
}

const struct bp_config *
bp_http_req_cfg(const struct bp_http_req *req)
{
    return req->conf->cfg;
}

void *
bp_http_req_app(const struct bp_http_req *req)
{
    return req->conf->app;
}

void *
bp_http_req_state(struct bp_http_req *req)
{
    return req->hstate;
}

void *
bp_http_req_state_for(struct bp_http_req *req, const struct bp_http_handler *h)
{
    return req->handler == h ? req->hstate : NULL;
}

void *
bp_http_req_worker_state(struct bp_http_req *req)
{
    return req->conn->worker->hstate[req->slot];
}

struct bp_arena *
bp_http_req_arena(struct bp_http_req *req)
{
    return &req->arena;
}

struct bp_inbox *
bp_http_req_inbox(struct bp_http_req *req)
{
    return req->conn->worker->inbox;
}

struct bp_server *
bp_http_req_server(struct bp_http_req *req)
{
    return req->conn->worker->server;
}

struct bp_http_facts *
bp_http_req_facts(struct bp_http_req *req)
{
    return &req->facts;
}

int64_t
bp_http_req_age_us(const struct bp_http_req *req)
{
    return bp_clock_mono_us() - req->start_us;
}

struct bp_http_hold *
bp_http_req_hold(struct bp_http_req *req)
{
    return req->held ? &req->conn->hold : NULL;
}

const char *
bp_http_req_body(const struct bp_http_req *req, size_t *out_len)
{
    *out_len = req->body_len;
    return req->body;
}

/* ---- beginning and end ---- */

/* An empty head (no method, no path, no headers) until the parser fills it: a request refused
 * before its head parsed still has one to log. The header array is left as it is: n_headers is
 * what counts. */
static void
req_begin(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;

    r->conf = bp_http__conf_ref(bp_http__worker_conf(c->worker));
    r->start_us = bp_clock_mono_us();
    r->head = bp_arena_alloc(&r->arena, sizeof(*r->head));
    memset(r->head, 0, sizeof(*r->head));
    r->state = BP_REQ_HEAD;
    c->read_limit = r->conf->cfg->max_head_bytes + 65536;
    c->head_scanned = 0;
    c->served = true;
    bp_http__conn_update_timer(c);
}

/* ---- the body memory budget (max_buffered_bytes) ----
 *
 * Every request body is held whole until its handler has it (the proxy rewrites transaction
 * bodies; OAuth parses forms), so many large bodies at once could exhaust memory: a body takes
 * its size from one process-wide budget before a byte of it is read (a chunked one as its buffer
 * grows) and gives it back when the request ends. One atomic add per body; never a lock. */
static _Atomic size_t buffered_bytes;

static bool
budget_take(struct bp_http_req *r, size_t n)
{
    size_t max = r->conf->cfg->max_buffered_bytes;
    size_t cur = atomic_load_explicit(&buffered_bytes, memory_order_relaxed);

    do {
        if (n > max || cur > max - n) {
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&buffered_bytes, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    r->body_budget += n;
    return true;
}

static void
budget_give_back(struct bp_http_req *r)
{
    atomic_fetch_sub_explicit(&buffered_bytes, r->body_budget, memory_order_relaxed);
    r->body_budget = 0;
}

size_t
bp_http_buffered_bytes(void)
{
    return atomic_load_explicit(&buffered_bytes, memory_order_relaxed);
}

void
bp_http__req_end(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;
    struct bp_arena arena = r->arena;

    if (r->state == BP_REQ_NONE) {
        return;
    }
    budget_give_back(r);
    BP_BUG_ON(r->held);
    if (r->handler != NULL && r->handler->on_end != NULL) {
        r->handler->on_end(r->handler->self, r);
    }
    bp_arena_reset(&arena);
    bp_buf_cleanup(&r->body_buf);
    bp_http__conf_unref(r->conf);
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->arena = arena;
    c->head_scanned = 0;
    bp_http__conn_idle(c);
}

bool
bp_http__req_busy(const struct bp_conn *c)
{
    return c->req.held;
}

/* ---- finish hooks ---- */

static void
run_finish_hooks(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;
    const struct bp_server *s = c->worker->server;

    BP_BUG_ON(r->finished);
    r->finished = true;
    r->facts.total_us = bp_clock_mono_us() - r->start_us;
    for (size_t i = 0; i < s->n_hooks; i++) {
        const struct bp_http_hook *h = &s->hooks[i];
        h->finish(h->self, r, r->held && r->holder == i ? &c->hold : NULL);
    }
}

/* The response is complete and queued (or held): the hooks run, then the request waits for its
 * release or its bytes, or ends now. */
static void
response_complete(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;

    r->state = r->held ? BP_REQ_HELD : BP_REQ_FLUSHING;
    run_finish_hooks(c);
    if (r->state == BP_REQ_FLUSHING && bp_http__conn_pending(c) == 0) {
        bp_http__req_flushed(c);
    }
}

/* Ends the request and goes on with the next one, unless the connection closes. */
static void
end_and_continue(struct bp_conn *c)
{
    bp_http__req_end(c);
    if (!bp_http__conn_after_request(c)) {
        return; /* closed, or lingering */
    }
    bp_http__req_input(c);
}

void
bp_http__req_flushed(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;

    if (r->state == BP_REQ_STREAMING) {
        if (r->behind) {
            r->behind = false;
            if (r->handler->on_writable != NULL) {
                r->handler->on_writable(r->handler->self, r);
            }
        }
        return;
    }
    if (r->state != BP_REQ_FLUSHING || bp_http__conn_pending(c) > 0 || c->dispatching) {
        return; /* e.g. a 100 Continue went out; or the dispatch loop ends it */
    }
    end_and_continue(c);
}

void
bp_http__req_abort(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;
    bool record = false;

    if (r->state == BP_REQ_NONE) {
        return;
    }
    if (r->handler != NULL && !r->finished) {
        if (r->handler->on_abort != NULL) {
            record = r->handler->on_abort(r->handler->self, r);
        }
        if (record) {
            if (!r->responded) {
                r->facts.status = 499; /* never sent: the status nginx logs for it */
            }
            run_finish_hooks(c);
        }
    }
    if (r->held) {
        return; /* the connection parks until the hook lets go */
    }
    bp_http__req_end(c);
}

/* ---- holds ---- */

/* On the loop: a hook let a held response go. */
static void
hold_done(struct bp_work *work, bp_err status)
{
    struct bp_http_hold *h = (struct bp_http_hold *)work;
    struct bp_conn *c = h->conn;
    struct bp_http_req *r = &c->req;
    (void)status;

    BP_BUG_ON(!r->held || r->state == BP_REQ_NONE);
    r->held = false;
    if (c->closed) {
        /* Nobody is left to read it: the request just ends, and its connection with it. */
        bp_http__req_end(c);
        bp_http__conn_unpark(c);
        return;
    }
    if (r->state == BP_REQ_STREAMING) {
        /* Released before its end: what was held goes, and the stream goes on; a writer that
         * paused hears on_writable once that has drained (bp_http__req_flushed). */
        bp_http__conn_unhold(c); /* may close c (the client is gone: the handler hears it) */
        return;
    }
    r->state = BP_REQ_FLUSHING;
    bp_http__conn_unhold(c); /* may end the request and close c */
}

void
bp_http_hold_release(struct bp_http_hold *hold)
{
    struct bp_conn *c = hold->conn;

    hold->work.work = NULL;
    hold->work.done = hold_done;
    hold->work.inbox = NULL;
    bp_inbox_post(c->worker->inbox, &hold->work);
}

/* ---- response framing ---- */

static const char *
reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

/* True when one of the CRLF-separated lines of block[0..len) starts with name (any case). */
static bool
has_header_line(const char *block, size_t len, const char *name)
{
    size_t n = strlen(name);
    size_t p = 0;

    while (block != NULL && p < len) {
        const char *nl;
        if (len - p >= n && strncasecmp(block + p, name, n) == 0) {
            return true;
        }
        nl = memchr(block + p, '\n', len - p);
        if (nl == NULL) {
            break;
        }
        p = (size_t)(nl - block) + 1;
    }
    return false;
}

struct out {
    char *p;
    size_t len;
    size_t cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
    BP_BUG_ON(n > o->cap - o->len);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void
put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void
put_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    put(o, tmp + sizeof(tmp) - n, n);
}

size_t
bp_http__format_head(const struct bp_http__head_fmt *f, char *buf, size_t cap, bool *out_chunked, bool *out_close)
{
    struct out o = {buf, 0, cap};
    bool chunked = f->length == BP_HTTP_LENGTH_UNKNOWN && f->version_minor == 1;
    /* HTTP/1.0 has no chunked coding: a body of unknown length ends when the connection does. */
    bool close = f->close || (f->length == BP_HTTP_LENGTH_UNKNOWN && !chunked);

    put_str(&o, "HTTP/1.1 ");
    put_u64(&o, (uint64_t)(f->status > 0 && f->status < 1000 ? f->status : 500));
    put(&o, " ", 1);
    put_str(&o, reason_phrase(f->status));
    put(&o, "\r\n", 2);
    if (f->content_type != NULL) {
        put_str(&o, "Content-Type: ");
        put_str(&o, f->content_type);
        put(&o, "\r\n", 2);
    }
    if (f->length >= 0) {
        put_str(&o, "Content-Length: ");
        put_u64(&o, (uint64_t)f->length);
        put(&o, "\r\n", 2);
    } else if (chunked) {
        put_str(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (f->headers_len > 0) {
        put(&o, f->headers, f->headers_len);
    }
    if (f->request_id != NULL && f->request_id[0] != '\0' &&
        !has_header_line(f->headers, f->headers_len, "X-Request-Id:")) {
        put_str(&o, "X-Request-Id: ");
        put_str(&o, f->request_id);
        put(&o, "\r\n", 2);
    }
    if (close) {
        put_str(&o, "Connection: close\r\n");
    } else if (f->version_minor == 0) {
        put_str(&o, "Connection: keep-alive\r\n");
    }
    put(&o, "\r\n", 2);
    *out_chunked = chunked;
    *out_close = close;
    return o.len;
}

/* Frames and queues the response head (and, for a complete response, its body) in one write. */
static void
start_response(struct bp_conn *c, const struct bp_http_resp *resp, const char *body, size_t body_len)
{
    struct bp_http_req *r = &c->req;
    const struct bp_server *s = c->worker->server;
    const struct bp_http_head *h = r->head;
    /* A request answered before its body was read leaves that body on the wire: the connection
     * cannot be reused, so it closes after this response (DESIGN §2: refused bodies are not
     * read), lingering so the client still reads the answer. */
    bool body_unread = h->framing != BP_HTTP_BODY_NONE && !r->body_complete;
    struct bp_http__head_fmt f = {
        .status = resp->status,
        .content_type = resp->content_type,
        .headers = resp->headers,
        .headers_len = resp->headers != NULL ? resp->headers_len : 0,
        .length = resp->length,
        .request_id = r->id,
        .version_minor = h->version_minor,
        .close = c->close_after_write || !h->keep_alive || c->worker->draining || body_unread,
    };
    size_t cap = BP_HTTP_HEAD_FIXED_MAX + f.headers_len + strlen(r->id);
    char *head = bp_arena_alloc(&r->arena, cap);
    struct iovec iov[2];
    int n = 1;
    bool close = false;

    BP_BUG_ON(r->responded || r->finished);
    r->responded = true;
    r->out_no_body = bp_str_eq(h->method, h->method_len, "HEAD");
    iov[0].iov_base = head;
    iov[0].iov_len = bp_http__format_head(&f, head, cap, &r->out_chunked, &close);
    c->close_after_write = close;
    c->linger = c->linger || body_unread;
    if (close) {
        /* Nothing more will be read for this connection's requests; pipelined bytes are moot. */
        bp_http__conn_read_off(c);
    }
    r->facts.status = resp->status;
    for (size_t i = 0; i < s->n_hooks && !r->held; i++) {
        if (s->hooks[i].hold != NULL && s->hooks[i].hold(s->hooks[i].self, r)) {
            r->held = true;
            r->holder = i;
        }
    }
    if (body_len > 0 && !r->out_no_body) {
        iov[1].iov_base = (void *)body;
        iov[1].iov_len = body_len;
        n = 2;
        r->facts.bytes_out = body_len;
    }
    bp_http__conn_write(c, iov, n, r->held);
}

void
bp_http_respond(struct bp_http_req *req, const struct bp_http_resp *resp, const char *body, size_t body_len)
{
    struct bp_http_resp r = *resp;

    BP_BUG_ON(req->state != BP_REQ_HANDLER && req->state != BP_REQ_BODY);
    if (r.length != BP_HTTP_LENGTH_NONE) {
        r.length = (int64_t)body_len;
    }
    start_response(req->conn, &r, body, body_len);
    response_complete(req->conn);
}

void
bp_http_resp_start(struct bp_http_req *req, const struct bp_http_resp *resp)
{
    BP_BUG_ON(req->state != BP_REQ_HANDLER);
    start_response(req->conn, resp, NULL, 0);
    req->state = BP_REQ_STREAMING;
}

bool
bp_http_resp_write(struct bp_http_req *req, const char *p, size_t n)
{
    struct bp_conn *c = req->conn;
    char size_line[24];
    struct iovec iov[3];
    size_t len = 0;

    BP_BUG_ON(req->state != BP_REQ_STREAMING);
    if (n == 0 || req->out_no_body) {
        return true;
    }
    req->facts.bytes_out += n;
    if (req->out_chunked) {
        static const char hex[] = "0123456789abcdef";
        char tmp[20];
        size_t k = 0;
        size_t v = n;
        do {
            tmp[k++] = hex[v & 15];
            v >>= 4;
        } while (v > 0);
        while (k > 0) {
            size_line[len++] = tmp[--k];
        }
        size_line[len++] = '\r';
        size_line[len++] = '\n';
        iov[0] = (struct iovec){size_line, len};
        iov[1] = (struct iovec){(void *)p, n};
        iov[2] = (struct iovec){"\r\n", 2};
        bp_http__conn_write(c, iov, 3, req->held);
    } else {
        iov[0] = (struct iovec){(void *)p, n};
        bp_http__conn_write(c, iov, 1, req->held);
    }
    /* Held bytes count too: a hold released before the end lets the writer go on (below). */
    if (bp_http__conn_pending(c) > BP_HTTP_WRITE_HIGH_MARK) {
        req->behind = true;
        return false;
    }
    return true;
}

void
bp_http_resp_end(struct bp_http_req *req)
{
    struct bp_conn *c = req->conn;

    BP_BUG_ON(req->state != BP_REQ_STREAMING);
    if (req->out_chunked && !req->out_no_body) {
        struct iovec last = {"0\r\n\r\n", 5};
        bp_http__conn_write(c, &last, 1, req->held);
    }
    req->behind = false;
    response_complete(c);
}

void
bp_http_resp_abort(struct bp_http_req *req, bp_err rc)
{
    struct bp_conn *c = req->conn;

    BP_BUG_ON(req->state != BP_REQ_STREAMING);
    req->facts.outcome = rc;
    req->behind = false;
    /* No end is written: once the queued bytes are out (or the hold let them go), the
     * connection closes, and nothing more is read from it. */
    c->close_after_write = true;
    bp_http__conn_read_off(c);
    response_complete(c);
}

/* ---- plain refusals of malformed HTTP ---- */

static void
refuse(struct bp_conn *c, int status)
{
    struct bp_http_req *r = &c->req;

    r->facts.status = status;
    r->facts.outcome = BP_ERR_MALFORMED;
    r->responded = true;
    bp_http__conn_refuse(c, status);
    r->state = BP_REQ_FLUSHING;
    run_finish_hooks(c);
    bp_http__req_flushed(c);
}

/* When the body must be in (mod_reqtimeout's body timeout and MinRate, nginx's
 * client_body_timeout): otherwise each byte would reset the idle timeout, and one byte every few
 * seconds would hold a connection for days. A body read before authentication gets no more time
 * than a head: the whole request within header_timeout of its first byte. */
static int64_t
body_deadline(const struct bp_http_req *r)
{
    const struct bp_config *cfg = r->conf->cfg;
    int64_t at;

    if (r->body_anonymous) {
        return r->start_us / 1000 + cfg->header_timeout_ms;
    }
    at = r->body_start_ms + cfg->body_timeout_ms;
    if (cfg->body_min_rate > 0) {
        at += (int64_t)(r->body_bytes_in * 1000 / cfg->body_min_rate);
    }
    return at;
}

int64_t
bp_http__req_deadline(struct bp_conn *c)
{
    const struct bp_http_req *r = &c->req;
    int64_t idle = c->last_read_ms + bp_http__idle_timeout_ms(c);
    int64_t head;
    int64_t body;

    switch (r->state) {
    case BP_REQ_NONE:
        return idle;
    case BP_REQ_BODY:
        body = body_deadline(r);
        return body < idle ? body : idle;
    case BP_REQ_HEAD:
        head = r->start_us / 1000 + r->conf->cfg->header_timeout_ms;
        return head < idle ? head : idle;
    default:
        return -1;
    }
}

void
bp_http__req_timed_out(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;

    if (r->state == BP_REQ_HEAD &&
        bp_clock_mono_ms() >= r->start_us / 1000 + r->conf->cfg->header_timeout_ms) {
        refuse(c, 408);
        return;
    }
    if (r->state == BP_REQ_BODY && bp_clock_mono_ms() >= body_deadline(r)) {
        r->facts.reason = "request body too slow";
        refuse(c, 408);
        return;
    }
    bp_http__conn_close(c);
}

bool
bp_http__req_begun(const struct bp_conn *c)
{
    return c->req.state != BP_REQ_NONE;
}

bool
bp_http__req_answer_owed(const struct bp_conn *c)
{
    return c->req.state >= BP_REQ_HANDLER;
}

/* ---- the head ---- */

static struct bp_http_limits
limits_of(const struct bp_config *cfg)
{
    struct bp_http_limits lim = {
        .max_request_line = 8192,
        .max_header_line = 8192,
        .max_headers = cfg->max_headers,
        .max_head_bytes = cfg->max_head_bytes,
    };
    if (lim.max_request_line > cfg->max_head_bytes) {
        lim.max_request_line = cfg->max_head_bytes;
    }
    if (lim.max_header_line > cfg->max_head_bytes) {
        lim.max_header_line = cfg->max_head_bytes;
    }
    return lim;
}

/* Moves the head into the arena: its bytes (from the read buffer, so that it can move on) and its
 * headers (from the worker's room, so that a request holds only the headers its head has, not
 * room for the most a head may have: 4 KiB per request in flight). */
static void
head_keep(struct bp_http_req *r, const char *from, size_t len)
{
    struct bp_http_head *h = r->head;
    char *to = bp_arena_memdup(&r->arena, from, len);
    struct bp_http_header *headers =
        h->n_headers > 0 ? bp_arena_alloc(&r->arena, h->n_headers * sizeof(*headers)) : NULL;

#define MOVE(p) ((p) = (p) != NULL ? to + ((p) - from) : NULL)
    MOVE(h->method);
    MOVE(h->target);
    MOVE(h->path);
    MOVE(h->query);
    for (size_t i = 0; i < h->n_headers; i++) {
        headers[i] = h->headers[i];
        MOVE(headers[i].name);
        MOVE(headers[i].value);
    }
#undef MOVE
    h->headers = headers;
}

static void
set_request_id(struct bp_http_req *r)
{
    size_t count = 0;
    const struct bp_http_header *h = bp_http_head_find(r->head, "X-Request-Id", &count);
    bool ok = h != NULL && count == 1 && h->value_len > 0 && h->value_len < sizeof(r->id);

    /* Echoed into logs and headers, so a client's id is taken only in a conservative alphabet. */
    for (size_t i = 0; ok && i < h->value_len; i++) {
        char ch = h->value[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
             ch == '_' || ch == '.' || ch == ':';
    }
    if (ok) {
        memcpy(r->id, h->value, h->value_len);
        r->id[h->value_len] = '\0';
    } else if (bp_uuid7(r->id) != BP_OK) {
        r->id[0] = '\0';
    }
}

/* True when in[from..to) holds an LF. */
static bool
has_new_line(const struct bp_http_inbuf *in, size_t from, size_t to)
{
    return from < to && memchr(in->data + in->start + from, '\n', to - from) != NULL;
}

/* Tries to parse the head at the front of the read buffer. Returns true when the request moved
 * on (dispatched, or refused). */
static bool
parse_head(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;
    const struct bp_config *cfg = r->conf->cfg;
    struct bp_http_limits lim = limits_of(cfg);
    size_t avail = c->in.end - c->in.start;
    size_t n = avail < cfg->max_head_bytes ? avail : cfg->max_head_bytes;
    const char *data = c->in.data + c->in.start;
    size_t consumed = 0;
    bp_err rc;

    /* A head can only complete, or first break a rule, at a line end: parse again only when the
     * bytes that arrived since the last look hold an LF, so a head trickled in byte by byte costs
     * linear, not quadratic, work. */
    if (!has_new_line(&c->in, c->head_scanned, n)) {
        c->head_scanned = n;
        if (n >= cfg->max_head_bytes) {
            refuse(c, 431);
            return true;
        }
        return false;
    }
    c->head_scanned = n;
    rc = bp_http_parse_head(data, n, &lim, c->worker->head_room, r->head, &consumed);
    if (rc == BP_ERR_AGAIN) {
        if (n >= cfg->max_head_bytes) {
            refuse(c, 431);
            return true;
        }
        return false;
    }
    if (rc != BP_OK) {
        refuse(c, rc == BP_ERR_LIMIT ? 431 : 400);
        return true;
    }
    head_keep(r, data, consumed);
    bp_http__conn_consume(c, consumed);
    c->head_scanned = 0;
    set_request_id(r);
    bp_http__req_client(r);
    dispatch(c);
    return true;
}

static void
dispatch(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;
    const struct bp_server *s = c->worker->server;
    const struct bp_http_route *route = bp_http__route(s, r->head->path, r->head->path_len, c->ops);

    r->state = BP_REQ_HANDLER;
    bp_http__conn_update_timer(c);
    if (route == NULL) {
        /* serve always registers a catch-all; without one, a plain answer. */
        static const struct bp_http_resp not_found = {.status = 404};
        bp_http_respond(r, &not_found, NULL, 0);
        return;
    }
    r->handler = route->handler;
    r->slot = bp_http__handler_slot(s, route->handler);
    r->facts.handler = route->handler->name;
    if (route->handler->state_size > 0) {
        r->hstate = bp_arena_alloc(&r->arena, route->handler->state_size);
        memset(r->hstate, 0, route->handler->state_size);
    }
    route->handler->on_head(route->handler->self, r);
}

/* ---- the body ---- */

void
bp_http_req_read_body_anonymous(struct bp_http_req *r, size_t limit)
{
    r->body_anonymous = true;
    bp_http_req_read_body(r, limit);
}

void
bp_http_req_read_body(struct bp_http_req *r, size_t limit)
{
    struct bp_conn *c = r->conn;
    const struct bp_http_head *h = r->head;

    BP_BUG_ON(r->state != BP_REQ_HANDLER || r->body_asked);
    r->body_asked = true;
    r->body_start_ms = bp_clock_mono_ms();
    if (h->framing == BP_HTTP_BODY_LENGTH && h->content_length > limit) {
        r->handler->on_body(r->handler->self, r, BP_ERR_PAYLOAD_TOO_LARGE);
        return;
    }
    if (h->framing == BP_HTTP_BODY_LENGTH && !budget_take(r, (size_t)h->content_length + 1)) {
        r->facts.reason = "max_buffered_bytes reached";
        r->handler->on_body(r->handler->self, r, BP_ERR_OVERLOADED);
        return;
    }
    r->body_limit = limit;
    r->state = BP_REQ_BODY;
    if (h->framing == BP_HTTP_BODY_LENGTH) {
        r->body_remaining = h->content_length;
        r->body = bp_arena_alloc(&r->arena, (size_t)h->content_length + 1);
    } else if (h->framing == BP_HTTP_BODY_CHUNKED) {
        bp_buf_init(&r->body_buf, limit);
    }
    if (h->expect_continue && h->version_minor == 1 && c->in.start == c->in.end) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {(void *)cont, sizeof(cont) - 1};
        bp_http__conn_write(c, &iov, 1, false);
    }
    bp_http__conn_update_timer(c);
    if (!c->dispatching) {
        bp_http__req_input(c);
    }
}

/* Reads what the buffer holds of the body. Returns true when the request moved on (the body is
 * complete and the handler has it, or it was refused). */
static bool
read_body(struct bp_conn *c)
{
    struct bp_http_req *r = &c->req;
    size_t avail = c->in.end - c->in.start;
    /* No read buffer when a handler asks for the body after its on_head returned: the empty
     * one went back to the pool (bp_http__req_input). */
    const char *data = avail > 0 ? c->in.data + c->in.start : NULL;

    if (r->head->framing == BP_HTTP_BODY_LENGTH) {
        size_t take = avail < r->body_remaining ? avail : (size_t)r->body_remaining;
        if (take > 0) {
            memcpy(r->body + r->body_len, data, take);
        }
        r->body_len += take;
        r->body_bytes_in += take;
        r->body_remaining -= take;
        bp_http__conn_consume(c, take);
        if (r->body_remaining > 0) {
            return false;
        }
        r->body[r->body_len] = '\0';
    } else if (r->head->framing == BP_HTTP_BODY_CHUNKED) {
        size_t used = 0;
        bp_err rc;

        if (avail == 0) {
            return false;
        }
        rc = bp_http_chunked_feed(&r->chunked, data, avail, &r->body_buf, &used);
        bp_http__conn_consume(c, used);
        r->body_bytes_in += used;
        if (r->body_buf.cap > r->body_budget && !budget_take(r, r->body_buf.cap - r->body_budget)) {
            r->state = BP_REQ_HANDLER;
            r->facts.reason = "max_buffered_bytes reached";
            r->handler->on_body(r->handler->self, r, BP_ERR_OVERLOADED);
            return true;
        }
        if (rc == BP_ERR_LIMIT) {
            r->state = BP_REQ_HANDLER;
            r->handler->on_body(r->handler->self, r, BP_ERR_PAYLOAD_TOO_LARGE);
            return true;
        }
        if (rc != BP_OK) {
            refuse(c, 400);
            return true;
        }
        if (!r->chunked.done) {
            return false;
        }
        r->body = r->body_buf.data;
        r->body_len = r->body_buf.len;
    }
    r->body_complete = true;
    r->facts.bytes_in = r->body_len;
    r->state = BP_REQ_HANDLER;
    bp_http__conn_update_timer(c);
    r->handler->on_body(r->handler->self, r, BP_OK);
    return true;
}

/* ---- the loop over input ---- */

void
bp_http__req_input(struct bp_conn *c)
{
    c->dispatching = true;
    for (;;) {
        struct bp_http_req *r = &c->req;
        bool moved;

        switch (r->state) {
        case BP_REQ_NONE:
            if (c->in.start == c->in.end) {
                c->dispatching = false;
                bp_http__conn_idle(c);
                return;
            }
            req_begin(c);
            continue;
        case BP_REQ_HEAD:
            moved = parse_head(c);
            break;
        case BP_REQ_BODY:
            moved = read_body(c);
            break;
        case BP_REQ_FLUSHING:
            if (bp_http__conn_pending(c) > 0) {
                c->dispatching = false;
                return;
            }
            c->dispatching = false;
            end_and_continue(c); /* may close c; goes on with the next request itself */
            return;
        default:
            /* The handler has it, or the response is held or streaming. Its head and body are
             * copies in the arena, so a read buffer with nothing left in it goes back to the
             * pool now: a request waiting for Core holds none. */
            c->dispatching = false;
            bp_http__conn_idle(c);
            return;
        }
        if (!moved) {
            c->dispatching = false;
            return;
        }
    }
}
