/* The upstream client: a purpose-built HTTP/1.1 client on one loop thread's libevent base
 * (DESIGN §8), replacing the libcurl multi handle: issue 10's profile put a fresh easy handle
 * with ~30 options, its header lists, and curl's own poll() calls and socket/timer callbacks on
 * every request. Here a request on a kept-alive connection costs one sendmsg and one recv,
 * touches no allocator, and reuses the connection's events as they are.
 *
 * Threads: a struct bp_upstream, its connections and transfers belong to the loop thread that
 * created it; nothing here takes a lock. bp_upstream_global_init runs once before any thread.
 *
 * Lifecycle of a transfer: bp_upstream_send/_stream validates the request, takes a transfer
 * struct (from the client's spares: the request-head and answer buffers keep their capacity),
 * builds the request head, arms the timer, and asks the pool for a connection (pool.c): an idle
 * one (the request is written right away, inside the call), a new one (DNS, connect, TLS, then
 * the request), or a place in the origin's waiting list. exchange.c reads the answer and
 * delivers it: stream callbacks, or the buffered assembly below, which is nothing but another
 * consumer of the same head/body/end deliveries. The end: the connection goes back to the pool
 * (or is closed), the final callback runs once, and the transfer is retired.
 *
 * Failures: bp_upstream__fail records the first failure, closes the connection, and activates
 * the transfer's timer event, so the report (log line, metric, final callback) always runs from
 * the loop, never inside bp_upstream_send or a caller's call. Timeouts come from the same timer:
 * the connect deadline while connecting, the total deadline otherwise (stopped while paused).
 *
 * Invariants:
 * - Nothing is freed while it may be on the stack. Every entry point and every libevent callback
 *   of the client runs between bp_upstream__enter and __leave; while that depth is above zero,
 *   retired transfers and closed connections wait in graveyards, and bp_upstream_free only
 *   marks the client closing. The outermost __leave releases them (and the client).
 * - Caller code runs only in deliveries (exchange.c) and failure reports (on_timer), and after
 *   each, whoever called it re-checks the transfer's state before touching it again.
 * - The request headers carry Core's secret (X-Blnk-Key): they are never logged. A failure's log
 *   line names only the request id and instance the caller gave, the method, the host and a
 *   cause written here (never request or answer bytes).
 * - Metrics: every failed transfer that reaches its report is counted once by kind; cancelled
 *   ones are not. blnkproxy_upstream_connections follows sockets as they are opened and closed
 *   (pool.c), kept-alive ones included. */
#include "upstream/upstream.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "upstream/upstream-int.h"

/* Spare transfer structs and read buffers kept for reuse; beyond these they are freed. */
#define MAX_XFER_SPARES 256
#define MAX_RBUF_SPARES 256
/* A spare keeps buffers up to this capacity; larger ones (a big body) are freed when retired. */
#define SPARE_BUF_KEEP 65536
#define DEFAULT_CONNECT_TIMEOUT_MS 300000

static void destroy(struct bp_upstream *u);

bp_err
bp_upstream_global_init(void)
{
    if (bp_upstream__tls_global_init() != BP_OK) {
        BP_ERROR("OpenSSL initialisation failed");
        return BP_ERR_IO;
    }
    return BP_OK;
}

/* ---- dispatch guard -------------------------------------------------------------------------- */

static void
xfer_free(struct bp_upstream_xfer *x)
{
    if (x->tev != NULL) {
        event_free(x->tev);
    }
    bp_buf_cleanup(&x->req_head);
    bp_buf_cleanup(&x->piece);
    bp_buf_cleanup(&x->resp.body);
    bp_buf_cleanup(&x->resp_strings);
    bp_free(x->resp.headers);
    bp_free(x);
}

static void
trim_buf(struct bp_buf *b)
{
    if (b->cap > SPARE_BUF_KEEP) {
        bp_buf_cleanup(b);
    }
    bp_buf_reset(b);
}

/* A retired transfer becomes a spare, or is freed. */
static void
xfer_recycle(struct bp_upstream *u, struct bp_upstream_xfer *x)
{
    if (u->closing || u->n_xfer_spares >= MAX_XFER_SPARES) {
        xfer_free(x);
        return;
    }
    trim_buf(&x->req_head);
    trim_buf(&x->piece);
    trim_buf(&x->resp.body);
    trim_buf(&x->resp_strings);
    x->next = u->xfer_spares;
    u->xfer_spares = x;
    u->n_xfer_spares++;
}

void
bp_upstream__enter(struct bp_upstream *u)
{
    u->dispatch_depth++;
}

void
bp_upstream__leave(struct bp_upstream *u)
{
    BP_BUG_ON(u->dispatch_depth <= 0);
    if (--u->dispatch_depth > 0) {
        return;
    }
    while (u->xfer_graveyard != NULL) {
        struct bp_upstream_xfer *x = u->xfer_graveyard;
        u->xfer_graveyard = x->next;
        xfer_recycle(u, x);
    }
    bp_upstream__conn_graveyard_free(u);
    if (u->closing) {
        destroy(u);
    }
}

/* ---- spares ---------------------------------------------------------------------------------- */

/* Spare read buffers are chained through their first bytes. */
static char *
spare_next(const char *b)
{
    char *next;
    memcpy(&next, b, sizeof(next));
    return next;
}

char *
bp_upstream__rbuf_take(struct bp_upstream *u)
{
    char *b = u->rbuf_spares;

    if (b == NULL) {
        return bp_malloc(BP_UPSTREAM_READ_BUF);
    }
    u->rbuf_spares = spare_next(b);
    u->n_rbuf_spares--;
    return b;
}

void
bp_upstream__rbuf_give(struct bp_upstream *u, char *buf, size_t cap)
{
    if (cap != BP_UPSTREAM_READ_BUF || u->closing || u->n_rbuf_spares >= MAX_RBUF_SPARES) {
        bp_free(buf);
        return;
    }
    memcpy(buf, &u->rbuf_spares, sizeof(u->rbuf_spares));
    u->rbuf_spares = buf;
    u->n_rbuf_spares++;
}

void
bp_upstream__conn_rbuf_release(struct bp_upstream__conn *c)
{
    if (c->rbuf != NULL && c->rstart == c->rend) {
        bp_upstream__rbuf_give(c->u, c->rbuf, c->rcap);
        c->rbuf = NULL;
        c->rcap = 0;
        c->rstart = 0;
        c->rend = 0;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

static struct bp_upstream_xfer *
xfer_take(struct bp_upstream *u)
{
    struct bp_upstream_xfer *x = u->xfer_spares;

    if (x != NULL) {
        u->xfer_spares = x->next;
        u->n_xfer_spares--;
        x->next = NULL;
        return x;
    }
    x = bp_calloc(1, sizeof(*x));
    x->u = u;
    x->tev = evtimer_new(u->base, on_timer, x);
    BP_BUG_ON(x->tev == NULL); /* libevent allocates with our allocator's policy: abort on OOM */
    bp_buf_init(&x->req_head, SIZE_MAX);
    bp_buf_init(&x->piece, SIZE_MAX);
    bp_buf_init(&x->resp.body, 0);
    bp_buf_init(&x->resp_strings, SIZE_MAX);
    return x;
}

/* ---- live list and retirement ---------------------------------------------------------------- */

static void
live_link(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;

    x->prev = NULL;
    x->next = u->live;
    if (u->live != NULL) {
        u->live->prev = x;
    }
    u->live = x;
    u->inflight++;
}

static void
live_unlink(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;

    if (x->prev != NULL) {
        x->prev->next = x->next;
    } else {
        u->live = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    }
    x->prev = NULL;
    x->next = NULL;
    BP_BUG_ON(u->inflight == 0);
    u->inflight--;
}

/* Takes a live transfer out of everything, without a callback (cancel, client freed); its memory
 * goes to the graveyard (this always runs inside a dispatch). */
static void
retire(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;

    BP_BUG_ON(u->dispatch_depth <= 0);
    if (x->c != NULL) {
        bp_upstream__conn_close(x->c);
    }
    if (x->state == BP_UPSTREAM_XFER_WAITING) {
        bp_upstream__unwait(x);
    }
    event_del(x->tev);
    live_unlink(x);
    if (x->o != NULL) {
        x->o->n_xfers--;
        x->o = NULL;
    }
    x->state = BP_UPSTREAM_XFER_DEAD;
    x->next = u->xfer_graveyard;
    u->xfer_graveyard = x;
}

/* ---- timer ----------------------------------------------------------------------------------- */

void
bp_upstream__arm_timer(struct bp_upstream_xfer *x)
{
    int64_t due;
    int64_t delay;
    struct timeval tv;

    switch (x->state) {
    case BP_UPSTREAM_XFER_CONNECTING:
        due = x->connect_deadline_ms;
        if (x->deadline_ms > 0 && x->deadline_ms < due) {
            due = x->deadline_ms;
        }
        break;
    case BP_UPSTREAM_XFER_WAITING:
    case BP_UPSTREAM_XFER_EXCHANGING:
        if (x->deadline_ms == 0) {
            event_del(x->tev); /* paused, or no total timeout */
            return;
        }
        due = x->deadline_ms;
        break;
    default:
        return;
    }
    delay = due - bp_clock_mono_ms();
    if (delay < 0) {
        delay = 0;
    }
    tv.tv_sec = delay / 1000;
    tv.tv_usec = (delay % 1000) * 1000;
    evtimer_add(x->tev, &tv);
}

/* ---- failures -------------------------------------------------------------------------------- */

void
bp_upstream__fail(struct bp_upstream_xfer *x, bp_err rc, enum bp_metrics_upstream_error kind,
                  const char *cause)
{
    if (x->state != BP_UPSTREAM_XFER_WAITING && x->state != BP_UPSTREAM_XFER_CONNECTING &&
        x->state != BP_UPSTREAM_XFER_EXCHANGING) {
        return; /* the first failure stands */
    }
    if (x->state == BP_UPSTREAM_XFER_WAITING) {
        bp_upstream__unwait(x);
    }
    if (x->c != NULL) {
        bp_upstream__conn_close(x->c);
    }
    x->state = BP_UPSTREAM_XFER_FAILING;
    x->fail_rc = rc;
    x->fail_kind = kind;
    snprintf(x->cause, sizeof(x->cause), "%s", cause);
    event_del(x->tev);
    event_active(x->tev, EV_TIMEOUT, 0);
}

static void
log_failure(const struct bp_upstream_xfer *x, const char *host)
{
    BP_WARN("upstream request failed",
            BP_LSTR("request_id", x->has_request_id ? x->request_id : NULL),
            BP_LSTR("instance", x->has_instance_id ? x->instance_id : NULL),
            BP_LSTR("error", bp_err_str(x->fail_rc)), BP_LSTR("method", x->method),
            BP_LSTR("host", host), BP_LSTR("cause", x->cause));
}

bool
bp_upstream_sent_any(const struct bp_upstream_xfer *x)
{
    return x->sent > 0;
}

/* The final callback, then retirement. */
static void
end(struct bp_upstream_xfer *x, bp_err rc)
{
    struct bp_upstream__origin *o = x->o;

    live_unlink(x);
    event_del(x->tev);
    x->state = BP_UPSTREAM_XFER_ENDING;
    if (x->buffered) {
        x->cb(x->arg, rc, rc == BP_OK ? &x->resp : NULL);
    } else {
        x->scbs.on_end(x->arg, rc);
    }
    /* The callback may have freed the client: that only defers while we are in a dispatch. */
    if (o != NULL) {
        o->n_xfers--;
        x->o = NULL;
    }
    x->state = BP_UPSTREAM_XFER_DEAD;
    x->next = x->u->xfer_graveyard;
    x->u->xfer_graveyard = x;
}

static void
report_failure(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;

    log_failure(x, x->o != NULL ? x->o->host : NULL);
    bp_metrics_upstream_error(x->fail_kind);
    u->failing = x;
    end(x, x->fail_rc);
    u->failing = NULL;
}

const char *
bp_upstream__failure(const struct bp_upstream *u, enum bp_metrics_upstream_error *out_kind)
{
    if (u->failing == NULL) {
        return NULL;
    }
    if (out_kind != NULL) {
        *out_kind = u->failing->fail_kind;
    }
    return u->failing->cause;
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct bp_upstream_xfer *x = arg;
    struct bp_upstream *u = x->u;

    bp_upstream__enter(u);
    switch (x->state) {
    case BP_UPSTREAM_XFER_FAILING:
        report_failure(x);
        break;
    case BP_UPSTREAM_XFER_CONNECTING:
    case BP_UPSTREAM_XFER_WAITING:
    case BP_UPSTREAM_XFER_EXCHANGING:
        if (x->state == BP_UPSTREAM_XFER_CONNECTING &&
            (x->deadline_ms == 0 || x->connect_deadline_ms <= x->deadline_ms)) {
            bp_upstream__fail(x, BP_ERR_UPSTREAM_TIMEOUT, BP_METRICS_UPSTREAM_TIMEOUT,
                              "connecting to Core timed out (upstream_connect_timeout)");
        } else {
            bp_upstream__fail(x, BP_ERR_UPSTREAM_TIMEOUT, BP_METRICS_UPSTREAM_TIMEOUT,
                              "no complete answer from Core in time (upstream_timeout)");
        }
        break;
    default:
        break;
    }
    bp_upstream__leave(u);
}

/* ---- deliveries ------------------------------------------------------------------------------ */

void
bp_upstream__xfer_connected(struct bp_upstream_xfer *x)
{
    x->state = BP_UPSTREAM_XFER_EXCHANGING;
    bp_upstream__arm_timer(x);
    if (!bp_upstream__exchange_start(x)) {
        /* Only a reused connection can turn out dead before the first byte; this one is new. */
        bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_RESET,
                          "the new connection to Core closed before the request was sent");
    }
}

static bool
still_exchanging(const struct bp_upstream_xfer *x)
{
    return x->state == BP_UPSTREAM_XFER_EXCHANGING && !x->u->closing && x->c != NULL;
}

/* Buffered mode: the head's status and fields copied into the transfer's own storage (the
 * read buffer they point into is reused for the body). */
static bool
buffered_head(struct bp_upstream_xfer *x, const struct bp_upstream_head *head)
{
    size_t need = 0;
    char *room;

    if (head->framing == BP_UPSTREAM_BODY_LENGTH && head->content_length > x->max_response_bytes) {
        bp_upstream__fail(x, BP_ERR_UPSTREAM_TOO_LARGE, BP_METRICS_UPSTREAM_OTHER,
                          "Core's answer is larger than max_response_bytes");
        return false;
    }
    for (size_t i = 0; i < head->n_headers; i++) {
        need += head->headers[i].name_len + head->headers[i].value_len + 2;
    }
    if (head->n_headers > x->resp_headers_cap) {
        x->resp_headers_cap = head->n_headers;
        x->resp.headers =
            bp_realloc(x->resp.headers, x->resp_headers_cap * sizeof(*x->resp.headers));
    }
    /* One reservation, so the appends below never move the storage the pointers go into. */
    bp_buf_reset(&x->resp_strings);
    BP_BUG_ON(bp_buf_reserve(&x->resp_strings, need, &room) != BP_OK);
    for (size_t i = 0; i < head->n_headers; i++) {
        const struct bp_upstream_header *h = &head->headers[i];
        struct bp_upstream_header *out = &x->resp.headers[i];
        out->name = x->resp_strings.data + x->resp_strings.len;
        out->name_len = h->name_len;
        bp_buf_append(&x->resp_strings, h->name, h->name_len + 1);
        out->value = x->resp_strings.data + x->resp_strings.len;
        out->value_len = h->value_len;
        bp_buf_append(&x->resp_strings, h->value, h->value_len + 1);
    }
    x->resp.n_headers = head->n_headers;
    x->resp.status = head->status;
    bp_buf_reset(&x->resp.body);
    x->resp.body.max = x->max_response_bytes;
    if (head->framing == BP_UPSTREAM_BODY_LENGTH && head->content_length > 0) {
        /* The size is known and within the cap: one allocation instead of doublings. */
        BP_BUG_ON(bp_buf_reserve(&x->resp.body, (size_t)head->content_length, &room) != BP_OK);
    }
    return true;
}

bool
bp_upstream__deliver_head(struct bp_upstream_xfer *x, const struct bp_upstream_head *head)
{
    if (x->buffered) {
        return buffered_head(x, head);
    }
    x->scbs.on_head(x->arg, head);
    return still_exchanging(x);
}

bool
bp_upstream__deliver_body(struct bp_upstream_xfer *x, const char *data, size_t len)
{
    if (x->buffered) {
        if (bp_buf_append(&x->resp.body, data, len) != BP_OK) {
            bp_upstream__fail(x, BP_ERR_UPSTREAM_TOO_LARGE, BP_METRICS_UPSTREAM_OTHER,
                              "Core's answer is larger than max_response_bytes");
            return false;
        }
        return true;
    }
    x->scbs.on_body(x->arg, data, len);
    return still_exchanging(x);
}

void
bp_upstream__deliver_end(struct bp_upstream_xfer *x)
{
    x->resp.upstream_us = bp_clock_mono_us() - x->start_us;
    end(x, BP_OK);
}

/* ---- client lifecycle ------------------------------------------------------------------------ */

void
bp_upstream_set_opts(struct bp_upstream *u, const struct bp_upstream_opts *opts)
{
    /* Read when a transfer starts (start()), so a change reaches new transfers only. */
    u->opts.connect_timeout_ms = opts->connect_timeout_ms;
    u->opts.total_timeout_ms = opts->total_timeout_ms;
    u->opts.max_response_bytes = opts->max_response_bytes;
}

bp_err
bp_upstream_new(struct event_base *base, const struct bp_upstream_opts *opts,
                struct bp_upstream **out)
{
    struct bp_upstream *u;

    if (base == NULL || opts == NULL || out == NULL || opts->connect_timeout_ms < 0 ||
        opts->total_timeout_ms < 0 || opts->idle_timeout_ms < 0) {
        return BP_ERR_INVALID;
    }
    if (bp_upstream_global_init() != BP_OK) {
        return BP_ERR_IO;
    }
    u = bp_calloc(1, sizeof(*u));
    u->base = base;
    u->opts = *opts;
    u->head_scratch = bp_malloc(sizeof(*u->head_scratch));
    u->hdr_scratch = bp_calloc(BP_HTTP_RESP_MAX_HEADERS_CAP, sizeof(*u->hdr_scratch));
    *out = u;
    return BP_OK;
}

static void
destroy(struct bp_upstream *u)
{
    BP_BUG_ON(u->dispatch_depth != 0);
    u->closing = true;
    u->dispatch_depth++;
    while (u->live != NULL) {
        retire(u->live);
    }
    bp_upstream__pool_free_all(u);
    u->dispatch_depth--;
    while (u->xfer_graveyard != NULL) {
        struct bp_upstream_xfer *x = u->xfer_graveyard;
        u->xfer_graveyard = x->next;
        xfer_free(x);
    }
    bp_upstream__conn_graveyard_free(u);
    while (u->xfer_spares != NULL) {
        struct bp_upstream_xfer *x = u->xfer_spares;
        u->xfer_spares = x->next;
        xfer_free(x);
    }
    while (u->rbuf_spares != NULL) {
        char *b = u->rbuf_spares;
        u->rbuf_spares = spare_next(b);
        bp_free(b);
    }
    bp_upstream__tls_free_all(u);
    if (u->tick_ev != NULL) {
        event_free(u->tick_ev);
    }
    bp_free(u->head_scratch);
    bp_free(u->hdr_scratch);
    bp_free(u);
}

void
bp_upstream_free(struct bp_upstream *u)
{
    if (u == NULL || u->closing) {
        return;
    }
    if (u->dispatch_depth > 0) {
        /* Called from a callback: cancel everything now (no more callbacks) and close every
         * connection; the dispatch on the stack releases the memory when it unwinds. */
        u->closing = true;
        while (u->live != NULL) {
            retire(u->live);
        }
        while (u->conns != NULL) {
            bp_upstream__conn_close(u->conns);
        }
        return;
    }
    destroy(u);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bp_upstream *u = arg;
    (void)fd;
    (void)what;

    if (!u->closing && u->tick_fn != NULL) {
        u->tick_fn(u->tick_arg);
    }
}

bp_err
bp_upstream_set_tick(struct bp_upstream *u, int64_t interval_ms, void (*fn)(void *arg), void *arg)
{
    struct timeval tv;

    if (u->tick_ev != NULL) {
        event_free(u->tick_ev);
        u->tick_ev = NULL;
    }
    u->tick_fn = NULL;
    if (interval_ms <= 0 || fn == NULL) {
        return BP_OK;
    }
    u->tick_ev = event_new(u->base, -1, EV_PERSIST, on_tick, u);
    if (u->tick_ev == NULL) {
        return BP_ERR_NOMEM;
    }
    u->tick_fn = fn;
    u->tick_arg = arg;
    tv.tv_sec = (time_t)(interval_ms / 1000);
    tv.tv_usec = (suseconds_t)(interval_ms % 1000) * 1000;
    if (event_add(u->tick_ev, &tv) != 0) {
        event_free(u->tick_ev);
        u->tick_ev = NULL;
        u->tick_fn = NULL;
        return BP_ERR_IO;
    }
    return BP_OK;
}

size_t
bp_upstream_inflight(const struct bp_upstream *u)
{
    return u == NULL ? 0 : u->inflight;
}

size_t
bp_upstream_buffered_bytes(const struct bp_upstream *u)
{
    size_t n = 0;

    if (u == NULL) {
        return 0;
    }
    for (const struct bp_upstream_xfer *x = u->live; x != NULL; x = x->next) {
        if (x->c != NULL && x->c->rbuf != NULL) {
            n += x->c->rcap;
        }
        n += x->piece.cap;
    }
    return n;
}

void
bp_upstream_cancel(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u;

    if (x == NULL) {
        return;
    }
    /* From inside its own final callback, or twice, it changes nothing. */
    if (x->state == BP_UPSTREAM_XFER_ENDING || x->state == BP_UPSTREAM_XFER_DEAD) {
        return;
    }
    u = x->u;
    bp_upstream__enter(u);
    retire(x);
    bp_upstream__leave(u);
}

void
bp_upstream_pause(struct bp_upstream_xfer *x)
{
    if (x == NULL || x->paused || x->state == BP_UPSTREAM_XFER_ENDING ||
        x->state == BP_UPSTREAM_XFER_DEAD) {
        return;
    }
    x->paused = true;
    if (x->deadline_ms > 0) {
        x->paused_left_ms = x->deadline_ms - bp_clock_mono_ms();
        if (x->paused_left_ms < 0) {
            x->paused_left_ms = 0;
        }
        x->deadline_ms = 0;
        bp_upstream__arm_timer(x);
    }
    if (x->c != NULL && x->c->state == BP_UPSTREAM_CONN_BUSY) {
        bp_upstream__conn_want_read(x->c, false);
    }
}

void
bp_upstream_resume(struct bp_upstream_xfer *x)
{
    struct bp_upstream__conn *c;

    if (x == NULL || !x->paused || x->state == BP_UPSTREAM_XFER_ENDING ||
        x->state == BP_UPSTREAM_XFER_DEAD) {
        return;
    }
    x->paused = false;
    if (x->total_timeout_ms > 0) {
        x->deadline_ms = bp_clock_mono_ms() + x->paused_left_ms;
        bp_upstream__arm_timer(x);
    }
    c = x->c;
    if (c != NULL && c->state == BP_UPSTREAM_CONN_BUSY && x->state == BP_UPSTREAM_XFER_EXCHANGING) {
        bp_upstream__conn_want_read(c, true);
        /* What was read before the pause is delivered from the loop, not from inside resume. */
        if (c->rstart < c->rend || bp_upstream__tls_has_pending(c)) {
            event_active(c->rev, EV_READ, 0);
        }
    }
}

/* ---- starting a transfer --------------------------------------------------------------------- */

/* RFC 9110 §5.6.2 tchar (every method and header name of every request passes here). */
static bool
is_tchar(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+.^_`|~", c) != NULL;
}

static bool
method_is_valid(const char *m)
{
    size_t n = 0;

    for (; m[n] != '\0'; n++) {
        if (n == BP_UPSTREAM_MAX_METHOD || !is_tchar((unsigned char)m[n])) {
            return false;
        }
    }
    return n > 0;
}

/* A line must be "Name:value" with a token name and no CR or LF anywhere: lines are written as
 * given, so a stray CRLF would let a value inject headers. */
static bool
header_is_valid(const char *line)
{
    const char *colon = strchr(line, ':');

    if (colon == NULL || colon == line) {
        return false;
    }
    for (const char *p = line; p < colon; p++) {
        if (!is_tchar((unsigned char)*p)) {
            return false;
        }
    }
    return strpbrk(colon, "\r\n") == NULL;
}

static bp_err
validate_req(const struct bp_upstream_req *req)
{
    if (req->method == NULL || req->url == NULL || !method_is_valid(req->method)) {
        return BP_ERR_INVALID;
    }
    if (req->body == NULL && req->body_len > 0) {
        return BP_ERR_INVALID;
    }
    if (req->n_headers > 0 && req->headers == NULL) {
        return BP_ERR_INVALID;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        if (req->headers[i] == NULL || !header_is_valid(req->headers[i])) {
            return BP_ERR_INVALID;
        }
    }
    return BP_OK;
}

/* A bounded copy (truncated to cap - 1 bytes) without printf's cost. */
static void
copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void
copy_id(char *dst, size_t cap, bool *has, const char *src)
{
    *has = src != NULL;
    dst[0] = '\0';
    if (src != NULL) {
        copy_str(dst, cap, src);
    }
}

static bp_err
start(struct bp_upstream *u, const struct bp_upstream_req *req, bp_upstream_cb cb,
      const struct bp_upstream_stream_cbs *scbs, void *arg, struct bp_upstream_xfer **out_xfer)
{
    struct bp_upstream_xfer *x;
    struct bp_upstream__url url;
    const char *why = NULL;
    int64_t now_us;
    int64_t now_ms;

    if (u == NULL || req == NULL || u->closing || validate_req(req) != BP_OK) {
        return BP_ERR_INVALID;
    }
    bp_upstream__enter(u);
    x = xfer_take(u);
    x->state = BP_UPSTREAM_XFER_CONNECTING; /* until the pool says otherwise */
    x->o = NULL;
    x->c = NULL;
    x->wait_next = NULL;
    x->buffered = cb != NULL;
    x->cb = cb;
    if (scbs != NULL) {
        x->scbs = *scbs;
    }
    x->arg = arg;
    x->paused = false;
    x->fail_rc = BP_OK;
    x->cause[0] = '\0';
    copy_str(x->method, sizeof(x->method), req->method);
    copy_id(x->request_id, sizeof(x->request_id), &x->has_request_id, req->request_id);
    copy_id(x->instance_id, sizeof(x->instance_id), &x->has_instance_id, req->instance_id);
    x->connect_timeout_ms =
        u->opts.connect_timeout_ms > 0 ? u->opts.connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    x->total_timeout_ms = u->opts.total_timeout_ms;
    x->max_response_bytes = u->opts.max_response_bytes;
    now_us = bp_clock_mono_us();
    now_ms = now_us / 1000;
    x->start_us = now_us;
    x->deadline_ms = x->total_timeout_ms > 0 ? now_ms + x->total_timeout_ms : 0;
    x->paused_left_ms = x->total_timeout_ms;
    x->resp.n_headers = 0;
    x->resp.status = 0;
    live_link(x);
    if (out_xfer != NULL) {
        *out_xfer = x;
    }
    if (bp_upstream__url_parse(req->url, &url, &why) != BP_OK) {
        char cause[128];
        snprintf(cause, sizeof(cause), "unusable URL: %s", why);
        bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_OTHER, cause);
    } else {
        x->o = bp_upstream__origin_get(u, &url, req->ca_file);
        x->o->n_xfers++;
        x->o->last_used_ms = now_ms;
        bp_upstream__build_request(x, req, &url);
        x->state = BP_UPSTREAM_XFER_WAITING; /* for the timer: the total deadline */
        bp_upstream__arm_timer(x);
        bp_upstream__acquire(x);
    }
    bp_upstream__leave(u);
    return BP_OK;
}

bp_err
bp_upstream_send(struct bp_upstream *u, const struct bp_upstream_req *req, bp_upstream_cb cb,
                 void *arg, struct bp_upstream_xfer **out_xfer)
{
    if (cb == NULL) {
        return BP_ERR_INVALID;
    }
    return start(u, req, cb, NULL, arg, out_xfer);
}

bp_err
bp_upstream_stream(struct bp_upstream *u, const struct bp_upstream_req *req,
                   const struct bp_upstream_stream_cbs *cbs, void *arg,
                   struct bp_upstream_xfer **out_xfer)
{
    if (cbs == NULL || cbs->on_head == NULL || cbs->on_body == NULL || cbs->on_end == NULL) {
        return BP_ERR_INVALID;
    }
    return start(u, req, NULL, cbs, arg, out_xfer);
}
