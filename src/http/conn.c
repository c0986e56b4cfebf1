/* One client connection on a loop thread.
 *
 * A connection handles one request at a time: the head is parsed as soon as it is complete, the
 * proxy decides on it before any body byte is read, then the body is read (bounded by the
 * route's limit), the request goes upstream, and the response is written. Bytes of pipelined
 * requests wait in the input buffer (bounded by a read watermark) and are parsed only after the
 * previous response was queued, so responses always leave in request order.
 *
 * Lifecycle: accept → READING_HEAD → (READING_BODY) → WAITING_UPSTREAM → WRITING → READING_HEAD …
 * A connection is freed only from its own bufferevent or timer callbacks, after which nothing
 * touches it; an in-flight upstream transfer is cancelled first, so its callback never runs. */
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/log.h"
#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/str.h"
#include "audit/audit.h"
#include "metrics/metrics.h"
#include "oauth/oauth.h"
#include "tables/tables.h"

static void process_input(struct bp_conn *c);

/* The body is complete: on to whoever handles this kind of request. */
static void
body_done(struct bp_conn *c)
{
    c->state = BP_CONN_WAITING_UPSTREAM;
    if (c->req->kind == BP_REQ_OAUTH) {
        bp_http__oauth_body_done(c);
    } else {
        bp_http__proxy_body_done(c);
    }
}

/* A response waiting for its audit record (audit.writes = sync). The audit writer calls
 * hold_durable on its thread; the release runs on the loop. If the connection closes first, the
 * hold is detached (conn = NULL) and only frees itself when the record is durable. */
struct bp_hold {
    struct bp_http_task task;
    struct bp_worker *worker;
    struct bp_conn *conn;
    struct evbuffer *response;
};

static void
hold_release(struct bp_worker *w, struct bp_http_task *t)
{
    struct bp_hold *h = (struct bp_hold *)((char *)t - offsetof(struct bp_hold, task));
    struct bp_conn *c = h->conn;
    (void)w;

    if (c != NULL) {
        BP_BUG_ON(c->hold != h || c->state != BP_CONN_WAITING_AUDIT);
        c->hold = NULL;
        c->state = BP_CONN_WRITING;
        bufferevent_write_buffer(c->bev, h->response);
    }
    evbuffer_free(h->response);
    bp_free(h);
}

static void
hold_durable(void *arg)
{
    struct bp_hold *h = arg;
    bp_http__post(h->worker, &h->task);
}

void
bp_http__req_free(struct bp_req *r)
{
    if (r == NULL) {
        return;
    }
    if (r->oauth_job != NULL) {
        bp_http__oauth_orphan(r); /* the OAuth thread still reads r: its job frees it */
        return;
    }
    bp_http__proxy_abort(r);
    bp_tables_release(r->tables);
    bp_http__conf_unref(r->conf);
    bp_buf_cleanup(&r->fwd_query);
    bp_buf_cleanup(&r->body);
    bp_free(r->head_bytes);
    bp_free(r);
}

/* Per-connection settings a reload may have changed since the connection was set up. */
static void
apply_conn_settings(struct bp_conn *c, const struct bp_config *cfg)
{
    if (c->idle_timeout_ms != cfg->idle_timeout_ms) {
        struct timeval idle = {cfg->idle_timeout_ms / 1000, (cfg->idle_timeout_ms % 1000) * 1000};
        /* idle_timeout bounds both a silent client and one that stops reading our response. */
        bufferevent_set_timeouts(c->bev, &idle, &idle);
        c->idle_timeout_ms = cfg->idle_timeout_ms;
    }
    if (c->read_watermark != cfg->max_head_bytes + 65536) {
        /* Bounds what a client can queue while its previous request is still being served. */
        c->read_watermark = cfg->max_head_bytes + 65536;
        bufferevent_setwatermark(c->bev, EV_READ, 0, c->read_watermark);
    }
}

/* A request takes the loop's current live configuration and keeps it to the end. */
static struct bp_req *
req_new(struct bp_conn *c)
{
    struct bp_req *r = bp_calloc(1, sizeof(*r));

    r->conf = bp_http__conf_ref(bp_http__worker_conf(c->worker));
    apply_conn_settings(c, r->conf->cfg);
    c->served = true;
    bp_buf_init(&r->fwd_query, r->conf->cfg->max_head_bytes);
    bp_buf_init(&r->body, 0);
    r->start_us = bp_clock_mono_us();
    return r;
}

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

void
bp_http__conn_close(struct bp_conn *c)
{
    struct bp_worker *w = c->worker;

    if (c->closed) {
        return;
    }
    c->closed = true;
    /* A proxy request still in flight (the client left, or the shutdown deadline came) is still
     * a call that may have reached Core: it gets its record. */
    if (c->req != NULL && c->req->kind == BP_REQ_PROXY && !c->req->finished) {
        c->req->status = 499;
        c->req->outcome = BP_ERR_CLIENT_CLOSED;
        bp_http__request_finished(c, c->req, NULL, 0, NULL, NULL);
    }
    bp_http__req_free(c->req);
    c->req = NULL;
    if (c->hold != NULL) {
        c->hold->conn = NULL;
        c->hold = NULL;
    }
    bp_metrics_client_conns_add(-1);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    w->n_conns--;
    event_free(c->head_deadline);
    bufferevent_free(c->bev);
    bp_free(c);
    bp_http__drain_check(w);
}

/* Plain answer to malformed HTTP (DESIGN §2): no JSON, and the connection closes. */
static void
refuse_malformed(struct bp_conn *c, int status)
{
    const char *text = status == 431 ? "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                     : status == 408 ? "HTTP/1.1 408 Request Timeout\r\n"
                                     : "HTTP/1.1 400 Bad Request\r\n";
    struct evbuffer *out = bufferevent_get_output(c->bev);

    evbuffer_add_printf(out, "%sContent-Length: 0\r\nConnection: close\r\n\r\n", text);
    if (c->req != NULL) {
        c->req->status = status;
        c->req->outcome = BP_ERR_MALFORMED;
        bp_http__request_finished(c, c->req, NULL, 0, NULL, NULL);
        bp_http__req_free(c->req);
        c->req = NULL;
    } else {
        BP_INFO("access", BP_LSTR("peer", c->peer), BP_LINT("status", status), BP_LSTR("error", "malformed"));
    }
    c->state = BP_CONN_WRITING;
    c->close_after_write = true;
    c->linger = true;
    bufferevent_disable(c->bev, EV_READ);
}

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

/* True when one of the CRLF-separated lines of block starts with name (case-insensitive). */
static bool
has_header_line(const char *block, const char *name)
{
    size_t n = strlen(name);
    const char *p = block;

    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, n) == 0) {
            return true;
        }
        p = strchr(p, '\n');
        if (p != NULL) {
            p++;
        }
    }
    return false;
}

void
bp_http__respond(struct bp_conn *c, int status, const char *extra_headers, const char *content_type,
                 const char *body, size_t body_len, bool no_length)
{
    struct bp_req *r = c->req;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    struct bp_hold *h = NULL;
    bool body_unread;
    bool close;
    bool hold;
    bool held;

    BP_BUG_ON(r == NULL);
    /* A request answered before its body was read leaves that body on the wire: the connection
     * cannot be reused, so it closes after this response (DESIGN §2: refused bodies are not read). */
    body_unread = r->head.framing != BP_HTTP_BODY_NONE && c->state == BP_CONN_READING_HEAD;
    body_unread = body_unread || c->state == BP_CONN_READING_BODY;
    close = c->close_after_write || !r->head.keep_alive || c->worker->draining || body_unread;
    hold = bp_http__audit_sync(c, r);
    if (hold) {
        out = evbuffer_new();
        BP_BUG_ON(out == NULL);
    }

    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (content_type != NULL) {
        evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
    }
    if (!no_length) {
        evbuffer_add_printf(out, "Content-Length: %zu\r\n", body_len);
    }
    if (extra_headers != NULL) {
        evbuffer_add(out, extra_headers, strlen(extra_headers));
    }
    if (r->request_id[0] != '\0' && !has_header_line(extra_headers, "X-Request-Id:")) {
        evbuffer_add_printf(out, "X-Request-Id: %s\r\n", r->request_id);
    }
    if (close) {
        evbuffer_add(out, "Connection: close\r\n", 19);
    } else if (r->head.version_minor == 0) {
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    }
    evbuffer_add(out, "\r\n", 2);
    if (body_len > 0 && !bp_str_eq(r->head.method, r->head.method_len, "HEAD")) {
        evbuffer_add(out, body, body_len);
    }
    r->status = status;
    r->bytes_out = body_len;
    if (hold) {
        h = bp_calloc(1, sizeof(*h));
        h->task.run = hold_release;
        h->worker = c->worker;
        h->response = out;
    }
    /* The writer may report the record durable before this returns; it only posts the hold to
     * this loop, which runs it after we are done here. */
    held = bp_http__request_finished(c, r, body, body_len, hold ? hold_durable : NULL, h);
    bp_http__req_free(r);
    c->req = NULL;
    c->state = BP_CONN_WRITING;
    c->close_after_write = close;
    c->linger = c->linger || body_unread;
    if (close) {
        bufferevent_disable(c->bev, EV_READ);
    }
    if (held) {
        h->conn = c;
        c->hold = h;
        c->state = BP_CONN_WAITING_AUDIT;
    } else if (hold) {
        bufferevent_write_buffer(c->bev, out);
        evbuffer_free(out);
        bp_free(h);
    }
}

static void
set_request_id(struct bp_req *r)
{
    size_t count = 0;
    const struct bp_http_header *h = bp_http_head_find(&r->head, "X-Request-Id", &count);
    bool ok = h != NULL && count == 1 && h->value_len > 0 && h->value_len < sizeof(r->request_id);

    /* Echoed into logs and headers, so a client's id is taken only in a conservative alphabet. */
    for (size_t i = 0; ok && i < h->value_len; i++) {
        char ch = h->value[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
             ch == '_' || ch == '.' || ch == ':';
    }
    if (ok) {
        memcpy(r->request_id, h->value, h->value_len);
        r->request_id[h->value_len] = '\0';
    } else if (bp_uuid7(r->request_id) != BP_OK) {
        r->request_id[0] = '\0';
    }
}

/* "/proxy" itself and everything under "/proxy/" go through the proxy's check order, so even a
 * bare "/proxy/" without a credential is a 401 first (DESIGN §2). */
static bool
is_proxy_path(const struct bp_http_head *h)
{
    return bp_str_eq(h->path, h->path_len, "/proxy") || (h->path_len >= 7 && memcmp(h->path, "/proxy/", 7) == 0);
}

/* The head is complete at the front of the input buffer. */
static void
start_request(struct bp_conn *c, const char *data, size_t consumed)
{
    struct bp_req *r = c->req;
    struct bp_http_limits lim = limits_of(r->conf->cfg);
    size_t again = 0;
    bp_err rc;

    /* The head is copied so the input buffer can move on; parsing the copy again is cheaper than
     * relocating every pointer and checks the parser is deterministic. */
    r->head_bytes = bp_memdup(data, consumed);
    rc = bp_http_parse_head(r->head_bytes, consumed, &lim, &r->head, &again);
    BP_BUG_ON(rc != BP_OK || again != consumed);
    evbuffer_drain(bufferevent_get_input(c->bev), consumed);
    c->head_scanned = 0;
    evtimer_del(c->head_deadline);
    set_request_id(r);

    if (is_proxy_path(&r->head)) {
        r->kind = BP_REQ_PROXY;
        bp_http__proxy_head(c);
        return;
    }
    if (bp_oauth_owns_path(r->head.path, r->head.path_len)) {
        bp_http__oauth_head(c);
        return;
    }
    if (bp_http__ops_route(c)) {
        return;
    }
    bp_http__respond_error(c, BP_ERR_ROUTE_NOT_FOUND, 0);
}

void
bp_http__conn_read_body(struct bp_conn *c, size_t limit)
{
    struct bp_req *r = c->req;

    if (r->head.framing == BP_HTTP_BODY_NONE) {
        body_done(c);
        return;
    }
    if (r->head.framing == BP_HTTP_BODY_LENGTH && r->head.content_length > limit) {
        bp_http__respond_error(c, BP_ERR_PAYLOAD_TOO_LARGE, 0);
        return;
    }
    r->body.max = limit;
    r->body_remaining = r->head.content_length;
    c->state = BP_CONN_READING_BODY;
    if (r->head.expect_continue && r->head.version_minor == 1 &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    if (r->head.framing == BP_HTTP_BODY_LENGTH && r->body_remaining == 0) {
        body_done(c);
    }
}

/* Returns true when the body is complete (the request moved on) or the request was answered. */
static bool
read_body(struct bp_conn *c)
{
    struct bp_req *r = c->req;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);

    if (avail == 0) {
        return false;
    }
    if (r->head.framing == BP_HTTP_BODY_LENGTH) {
        size_t take = avail < r->body_remaining ? avail : (size_t)r->body_remaining;
        char *dst;
        if (bp_buf_reserve(&r->body, take, &dst) != BP_OK) {
            bp_http__respond_error(c, BP_ERR_PAYLOAD_TOO_LARGE, 0);
            return true;
        }
        evbuffer_remove(in, dst, take);
        bp_buf_commit(&r->body, take);
        r->body_remaining -= take;
    } else {
        size_t used = 0;
        const char *data = (const char *)evbuffer_pullup(in, -1);
        bp_err rc = bp_http_chunked_feed(&r->chunked, data, avail, &r->body, &used);
        evbuffer_drain(in, used);
        if (rc == BP_ERR_LIMIT) {
            bp_http__respond_error(c, BP_ERR_PAYLOAD_TOO_LARGE, 0);
            return true;
        }
        if (rc != BP_OK) {
            refuse_malformed(c, 400);
            return true;
        }
        if (!r->chunked.done) {
            return false;
        }
        r->body_remaining = 0;
    }
    if (r->body_remaining > 0) {
        return false;
    }
    body_done(c);
    return true;
}

/* True when in[from..to) holds an LF. */
static bool
has_new_line(struct evbuffer *in, size_t from, size_t to)
{
    struct evbuffer_ptr start;
    struct evbuffer_ptr found;

    if (from >= to) {
        return false;
    }
    if (evbuffer_ptr_set(in, &start, from, EVBUFFER_PTR_SET) != 0) {
        return false;
    }
    found = evbuffer_search_range(in, "\n", 1, &start, NULL);
    return found.pos >= 0 && (size_t)found.pos < to;
}

static void
process_input(struct bp_conn *c)
{
    for (;;) {
        if (c->state == BP_CONN_READING_HEAD) {
            struct evbuffer *in = bufferevent_get_input(c->bev);
            size_t avail = evbuffer_get_length(in);
            const struct bp_config *cfg;
            struct bp_http_limits lim;
            size_t consumed = 0;
            size_t n;
            const char *data;
            bp_err rc;

            if (avail == 0) {
                return;
            }
            if (c->req == NULL) {
                c->req = req_new(c);
                int64_t ms = c->req->conf->cfg->header_timeout_ms;
                struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
                evtimer_add(c->head_deadline, &tv);
            }
            cfg = c->req->conf->cfg;
            lim = limits_of(cfg);
            n = avail < cfg->max_head_bytes ? avail : cfg->max_head_bytes;
            /* A head can only complete, or first break a rule, at a line end: parse again only
             * when the bytes that arrived since the last look hold an LF, so a head trickled in
             * byte by byte costs linear, not quadratic, work. */
            if (!has_new_line(in, c->head_scanned, n)) {
                c->head_scanned = n;
                if (n >= cfg->max_head_bytes) {
                    refuse_malformed(c, 431);
                }
                return;
            }
            c->head_scanned = n;
            data = (const char *)evbuffer_pullup(in, (ssize_t)n);
            rc = bp_http_parse_head(data, n, &lim, &c->req->head, &consumed);
            if (rc == BP_ERR_AGAIN) {
                if (n >= cfg->max_head_bytes) {
                    refuse_malformed(c, 431);
                }
                return;
            }
            if (rc == BP_ERR_LIMIT) {
                refuse_malformed(c, 431);
                return;
            }
            if (rc != BP_OK) {
                refuse_malformed(c, 400);
                return;
            }
            start_request(c, data, consumed);
            continue;
        }
        if (c->state == BP_CONN_READING_BODY) {
            if (!read_body(c)) {
                return;
            }
            continue;
        }
        return; /* waiting for Core or for the response to flush */
    }
}

#define LINGER_TOTAL_MS 5000
#define LINGER_IDLE_MS 2000

/* Closing a socket with unread input makes the kernel send a reset, which can destroy the
 * response before the client reads it (a client still streaming a refused body would see
 * ECONNRESET instead of its 413). So after such an answer we half-close, then read and discard
 * — never buffer — what the client still sends, for a bounded time, before closing. */
static void
start_linger(struct bp_conn *c)
{
    struct timeval total = {LINGER_TOTAL_MS / 1000, (LINGER_TOTAL_MS % 1000) * 1000};
    struct timeval idle = {LINGER_IDLE_MS / 1000, (LINGER_IDLE_MS % 1000) * 1000};
    struct evbuffer *in = bufferevent_get_input(c->bev);

    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    c->state = BP_CONN_LINGERING;
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    evtimer_add(c->head_deadline, &total);
    bufferevent_enable(c->bev, EV_READ);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    struct bp_conn *c = arg;

    if (c->state == BP_CONN_LINGERING) {
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    process_input(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    struct bp_conn *c = arg;
    (void)bev;

    if (c->state != BP_CONN_WRITING) {
        return; /* e.g. a 100 Continue went out */
    }
    if (c->close_after_write) {
        if (c->linger && !c->peer_eof) {
            start_linger(c);
            return;
        }
        bp_http__conn_close(c);
        return;
    }
    c->state = BP_CONN_READING_HEAD;
    if (c->worker->draining && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        bp_http__conn_close(c);
        return;
    }
    process_input(c);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct bp_conn *c = arg;

    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_WRITING)) {
        /* The client stopped reading: it does not get to pin a buffered response forever. */
        BP_INFO("client stopped reading; closing", BP_LSTR("peer", c->peer));
        bp_http__conn_close(c);
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) {
        if (c->state == BP_CONN_WAITING_UPSTREAM || c->state == BP_CONN_WAITING_AUDIT ||
            c->state == BP_CONN_WRITING) {
            /* Idle reads while Core works are expected; the upstream timeout bounds this wait. */
            bufferevent_enable(bev, EV_READ);
            return;
        }
        bp_http__conn_close(c);
        return;
    }
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
        /* A client may half-close after sending its request: answer what was asked, then close. */
        if (c->state == BP_CONN_WAITING_UPSTREAM || c->state == BP_CONN_WAITING_AUDIT ||
            c->state == BP_CONN_WRITING) {
            c->close_after_write = true;
            c->peer_eof = true;
            return;
        }
    }
    bp_http__conn_close(c);
}

static void
head_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == BP_CONN_READING_HEAD) {
        refuse_malformed(c, 408);
    } else if (c->state == BP_CONN_LINGERING) {
        bp_http__conn_close(c);
    }
}

void
bp_http__conn_accept(struct bp_worker *w, int fd, const struct sockaddr *sa, int salen)
{
    const struct bp_config *cfg = bp_http__worker_conf(w)->cfg;
    struct bp_conn *c = bp_calloc(1, sizeof(*c));
    int one = 1;

    (void)salen;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof(c->peer));
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof(c->peer));
    } else {
        snprintf(c->peer, sizeof(c->peer), "unknown");
    }
    c->worker = w;
    c->state = BP_CONN_READING_HEAD;
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->head_deadline = evtimer_new(w->base, head_deadline_cb, c);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    c->idle_timeout_ms = -1;
    apply_conn_settings(c, cfg);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->n_conns++;
    bp_metrics_client_conns_add(1);
}
