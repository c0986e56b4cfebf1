/* The upstream client's streaming mode (upstream.h, "Streaming"): the order of the callbacks,
 * the framing reported, pause and resume, cancellation from each callback, failures before and
 * after the head, and a 64 MiB answer streamed without the client ever holding more than a
 * bounded amount of it. A small HTTP/1.1 server runs on the same event_base (127.0.0.1, port 0)
 * and generates large bodies lazily, as its socket drains, so TCP flow control is real. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four above first */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "upstream/upstream.h"

#define BIG (64u * 1024 * 1024)
/* What the client may hold for one transfer: a read buffer (16 KiB; a head may grow it to 64 KiB
 * + 1) and one decoded chunked piece no larger than what one read returned. */
#define HELD_BOUND (2 * (64 * 1024 + 1))

/* ---- the server ------------------------------------------------------------------------------ */

struct srv;

struct srv_conn {
    struct srv *s;
    struct bufferevent *bev;
    struct srv_conn *next;
    uint64_t to_send; /* body bytes still to generate */
    uint64_t sent;    /* body bytes generated so far */
    bool close_after;
    bool held; /* /hold, /later: waits for srv_release */
    const char *release_with; /* what srv_release sends */
};

struct srv {
    struct event_base *base;
    struct evconnlistener *lis;
    int port;
    int n_conns;
    int n_closed; /* connections the client closed (EOF seen by the server) */
    int n_reqs;
    struct srv_conn *conns;
    struct ev_token_bucket_cfg *bucket;
};

static char pattern[65536 + 26];

static void
srv_conn_free(struct srv_conn *c)
{
    struct srv_conn **pp = &c->s->conns;

    while (*pp != c) {
        pp = &(*pp)->next;
    }
    *pp = c->next;
    bufferevent_free(c->bev);
    free(c);
}

/* Generates more of the body while the output is below 256 KiB: the rest waits for the socket. */
static void
srv_fill(struct srv_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    while (c->to_send > 0 && evbuffer_get_length(out) < 256 * 1024) {
        size_t n = c->to_send < 65536 ? (size_t)c->to_send : 65536;
        evbuffer_add(out, pattern + c->sent % 26, n);
        c->sent += n;
        c->to_send -= n;
    }
}

static void
srv_on_write(struct bufferevent *bev, void *arg)
{
    struct srv_conn *c = arg;

    srv_fill(c);
    if (c->to_send == 0 && c->close_after &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        srv_conn_free(c);
    }
}

static void
srv_head(struct srv_conn *c, const char *head)
{
    evbuffer_add(bufferevent_get_output(c->bev), head, strlen(head));
}

static void
srv_handle(struct srv_conn *c, const char *target)
{
    char head[256];

    if (strncmp(target, "/len/", 5) == 0) {
        c->to_send = strtoull(target + 5, NULL, 10);
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\nX-Kind: len\r\n\r\n",
                 (unsigned long long)c->to_send);
        srv_head(c, head);
        srv_fill(c);
    } else if (strncmp(target, "/close/", 7) == 0) {
        c->to_send = strtoull(target + 7, NULL, 10);
        srv_head(c, "HTTP/1.1 200 OK\r\nX-Kind: close\r\n\r\n");
        c->close_after = true;
        srv_fill(c);
    } else if (strcmp(target, "/chunked") == 0) {
        srv_head(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n"
                    "5\r\nhello\r\n1;ext=x\r\n \r\n5\r\nworld\r\n0\r\nX-T: t\r\n\r\n");
    } else if (strcmp(target, "/204") == 0) {
        srv_head(c, "HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n");
    } else if (strcmp(target, "/cut") == 0) {
        srv_head(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        c->close_after = true;
    } else if (strcmp(target, "/badcr") == 0) {
        srv_head(c, "HTTP/1.1 200 OK\r\nX-Bad: a\rb\r\nContent-Length: 2\r\n\r\nok");
    } else if (strncmp(target, "/bighead/", 9) == 0) {
        /* One header field of N bytes: the head outgrows a read buffer. */
        size_t n = strtoul(target + 9, NULL, 10);
        char *v = malloc(n + 1);
        memset(v, 'v', n);
        v[n] = '\0';
        srv_head(c, "HTTP/1.1 200 OK\r\nX-Big: ");
        srv_head(c, v);
        srv_head(c, "\r\nX-Kind: bighead\r\nContent-Length: 2\r\n\r\nok");
        free(v);
    } else if (strcmp(target, "/trickle") == 0) {
        /* A few bytes per millisecond: the head and every chunk line arrive in pieces. */
        struct timeval tick = {.tv_sec = 0, .tv_usec = 1000};
        c->s->bucket = ev_token_bucket_cfg_new(7, 7, 7, 7, &tick);
        bufferevent_set_rate_limit(c->bev, c->s->bucket);
        srv_head(c, "HTTP/1.1 200 OK\r\nX-Kind: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n1;ext=x\r\n \r\n5\r\nworld\r\n0\r\nX-T: t\r\n\r\n");
    } else if (strcmp(target, "/hold") == 0) {
        /* Head and half the body now, the rest when the test says. */
        srv_head(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n0123456789");
        c->held = true;
        c->release_with = "abcdefghij";
    } else if (strcmp(target, "/later") == 0) {
        /* Nothing until the test says. */
        c->held = true;
        c->release_with = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    } else {
        srv_head(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
}

static void
srv_release(struct srv *s)
{
    for (struct srv_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->held) {
            c->held = false;
            srv_head(c, c->release_with);
        }
    }
}

/* Bodiless requests only: the request ends at its blank line. */
static void
srv_on_read(struct bufferevent *bev, void *arg)
{
    struct srv_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        char line[512];
        char method[16];
        char target[256];
        size_t n;

        if (end.pos < 0) {
            return;
        }
        n = (size_t)end.pos + 4 < sizeof(line) - 1 ? (size_t)end.pos + 4 : sizeof(line) - 1;
        evbuffer_copyout(in, line, n);
        line[n] = '\0';
        evbuffer_drain(in, (size_t)end.pos + 4);
        assert_int_equal(sscanf(line, "%15s %255s", method, target), 2);
        c->s->n_reqs++;
        /* A close_after answer closes once its output drained (srv_on_write). */
        srv_handle(c, target);
    }
}

static void
srv_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct srv_conn *c = arg;

    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        c->s->n_closed++;
        srv_conn_free(c);
    }
}

static void
srv_on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *arg)
{
    struct srv *s = arg;
    struct srv_conn *c = calloc(1, sizeof(*c));

    c->s = s;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, srv_on_read, srv_on_write, srv_on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, 128 * 1024, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = s->conns;
    s->conns = c;
    s->n_conns++;
}

static void
srv_start(struct srv *s, struct event_base *base)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(s, 0, sizeof(*s));
    s->base = base;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lis =
        evconnlistener_new_bind(base, srv_on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                16, (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(s->lis);
    assert_int_equal(getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&sin, &len), 0);
    s->port = ntohs(sin.sin_port);
}

static void
srv_stop(struct srv *s)
{
    while (s->conns != NULL) {
        srv_conn_free(s->conns);
    }
    evconnlistener_free(s->lis);
    if (s->bucket != NULL) {
        ev_token_bucket_cfg_free(s->bucket);
    }
}

/* ---- the client side ------------------------------------------------------------------------- */

struct ctx;

struct rec {
    struct ctx *ctx;
    struct bp_upstream_xfer *x;
    int heads;
    int ends;
    int status;
    enum bp_upstream_framing framing;
    uint64_t content_length;
    char kind[32]; /* X-Kind */
    bool saw_length_header;
    uint64_t body_len;
    bool body_ok;   /* every byte matched the server's pattern */
    char small[64]; /* the first bytes, for short bodies */
    bp_err rc;
    bool order_ok; /* no body before the head, nothing after the end */
    size_t max_held;
    size_t max_piece;
    /* What the callbacks do. */
    bool pause_in_head;
    uint64_t pause_every; /* pause after each this many body bytes, resume from a timer */
    uint64_t next_pause;
    int pauses;
    bool body_while_paused;
    bool paused;
    bool cancel_in_head;
    bool cancel_in_body;
    bool cancel_in_end;
    bool free_in_body;
};

struct ctx {
    struct event_base *base;
    struct srv srv;
    struct bp_upstream *u;
    int ended;
    struct event *resume_ev;
    struct rec *resume_rec;
};

static void
on_resume_timer(evutil_socket_t fd, short what, void *arg)
{
    struct ctx *c = arg;
    struct rec *r = c->resume_rec;

    r->paused = false;
    bp_upstream_resume(r->x);
}

static void
pause_for_a_while(struct rec *r, int ms)
{
    struct ctx *c = r->ctx;
    struct timeval tv = {.tv_sec = 0, .tv_usec = ms * 1000};

    r->paused = true;
    r->pauses++;
    bp_upstream_pause(r->x);
    c->resume_rec = r;
    evtimer_add(c->resume_ev, &tv);
}

static void
on_head(void *arg, const struct bp_upstream_head *h)
{
    struct rec *r = arg;

    if (r->heads != 0 || r->ends != 0) {
        r->order_ok = false;
    }
    r->heads++;
    r->status = h->status;
    r->framing = h->framing;
    r->content_length = h->content_length;
    for (size_t i = 0; i < h->n_headers; i++) {
        assert_int_equal(strlen(h->headers[i].name), h->headers[i].name_len);
        assert_int_equal(strlen(h->headers[i].value), h->headers[i].value_len);
        if (strcasecmp(h->headers[i].name, "X-Kind") == 0) {
            snprintf(r->kind, sizeof(r->kind), "%s", h->headers[i].value);
        }
        if (strcasecmp(h->headers[i].name, "Content-Length") == 0 ||
            strcasecmp(h->headers[i].name, "Transfer-Encoding") == 0) {
            r->saw_length_header = true;
        }
    }
    if (r->cancel_in_head) {
        bp_upstream_cancel(r->x);
        r->ctx->ended++; /* nothing more will come: count it as the end of this one */
        return;
    }
    if (r->pause_in_head) {
        pause_for_a_while(r, 400);
    }
}

static void
on_body(void *arg, const char *data, size_t len)
{
    struct rec *r = arg;
    size_t held = bp_upstream_buffered_bytes(r->ctx->u);

    if (r->heads != 1 || r->ends != 0) {
        r->order_ok = false;
    }
    if (r->paused) {
        r->body_while_paused = true;
    }
    if (held > r->max_held) {
        r->max_held = held;
    }
    if (len > r->max_piece) {
        r->max_piece = len;
    }
    assert_true(len > 0);
    if (r->body_len < sizeof(r->small)) {
        size_t n =
            len < sizeof(r->small) - 1 - r->body_len ? len : sizeof(r->small) - 1 - r->body_len;
        memcpy(r->small + r->body_len, data, n);
    }
    if (r->kind[0] == 'l' || r->kind[0] == 'c') {
        if (strcmp(r->kind, "chunked") != 0 && memcmp(data, pattern + r->body_len % 26, len) != 0) {
            r->body_ok = false;
        }
    }
    r->body_len += len;
    if (r->cancel_in_body) {
        bp_upstream_cancel(r->x);
        r->ctx->ended++;
        return;
    }
    if (r->free_in_body) {
        bp_upstream_free(r->ctx->u);
        r->ctx->u = NULL;
        r->ctx->ended++;
        return;
    }
    if (r->pause_every > 0 && r->body_len >= r->next_pause) {
        r->next_pause += r->pause_every;
        pause_for_a_while(r, 5);
    }
}

static void
on_end(void *arg, bp_err rc)
{
    struct rec *r = arg;

    if (r->ends != 0) {
        r->order_ok = false;
    }
    r->ends++;
    r->rc = rc;
    if (r->cancel_in_end) {
        bp_upstream_cancel(r->x); /* a no-op from inside on_end */
    }
    r->ctx->ended++;
}

static const struct bp_upstream_stream_cbs cbs = {on_head, on_body, on_end};

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

static bool
wait_for(struct ctx *c, const int *counter, int target, int timeout_ms)
{
    bool expired = false;
    struct event *t = evtimer_new(c->base, on_deadline, &expired);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

    evtimer_add(t, &tv);
    while (*counter < target && !expired) {
        event_base_loop(c->base, EVLOOP_ONCE);
    }
    event_free(t);
    return *counter >= target;
}

static void
start(struct ctx *c, const char *path, struct rec *r)
{
    char url[128];
    struct bp_upstream_req req = {.method = "GET", .url = url};

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->srv.port, path);
    r->ctx = c;
    r->body_ok = true;
    r->order_ok = true;
    r->next_pause = r->pause_every;
    assert_int_equal(bp_upstream_stream(c->u, &req, &cbs, r, &r->x), BP_OK);
    /* Nothing runs inside the call. */
    assert_int_equal(r->heads + r->ends, 0);
}

static void
run(struct ctx *c, const char *path, struct rec *r)
{
    int target = c->ended + 1;

    start(c, path, r);
    assert_true(wait_for(c, &c->ended, target, 20000));
}

static int
setup_opts(void **state, int64_t total_timeout_ms)
{
    struct ctx *c = calloc(1, sizeof(*c));
    struct bp_upstream_opts o = {
        .connect_timeout_ms = 2000,
        .total_timeout_ms = total_timeout_ms,
        /* Small on purpose: a stream is not bound by it (nothing accumulates). */
        .max_response_bytes = 1024,
    };

    for (size_t i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (char)('a' + i % 26);
    }
    c->base = event_base_new();
    srv_start(&c->srv, c->base);
    c->resume_ev = evtimer_new(c->base, on_resume_timer, c);
    assert_int_equal(bp_upstream_new(c->base, &o, &c->u), BP_OK);
    *state = c;
    return 0;
}

static int
setup(void **state)
{
    return setup_opts(state, 30000);
}

static int
setup_short_timeout(void **state)
{
    return setup_opts(state, 300);
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    bp_upstream_free(c->u);
    event_free(c->resume_ev);
    srv_stop(&c->srv);
    event_base_free(c->base);
    free(c);
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void
test_head_body_end_in_order(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    run(c, "/len/5000", &r);
    assert_true(r.order_ok);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.framing, BP_UPSTREAM_BODY_LENGTH);
    assert_int_equal(r.content_length, 5000);
    assert_false(r.saw_length_header);
    assert_string_equal(r.kind, "len");
    /* Over max_response_bytes (1024): that cap is the buffered mode's. */
    assert_int_equal(r.body_len, 5000);
    assert_true(r.body_ok);
}

static void
test_framings_reported(void **state)
{
    struct ctx *c = *state;
    struct rec chunked = {0};
    struct rec closed = {0};
    struct rec none = {0};

    run(c, "/chunked", &chunked);
    assert_int_equal(chunked.rc, BP_OK);
    assert_int_equal(chunked.framing, BP_UPSTREAM_BODY_CHUNKED);
    assert_false(chunked.saw_length_header);
    assert_int_equal(chunked.body_len, 11);
    assert_string_equal(chunked.small, "hello world");

    run(c, "/204", &none);
    assert_int_equal(none.rc, BP_OK);
    assert_int_equal(none.status, 204);
    assert_int_equal(none.framing, BP_UPSTREAM_BODY_NONE);
    assert_int_equal(none.body_len, 0);

    run(c, "/close/3000", &closed);
    assert_int_equal(closed.rc, BP_OK);
    assert_int_equal(closed.framing, BP_UPSTREAM_BODY_CLOSE);
    assert_int_equal(closed.body_len, 3000);
    assert_true(closed.body_ok);
    assert_true(chunked.order_ok && none.order_ok && closed.order_ok);
}

/* A complete stream gives its connection back: the next one reuses it. */
static void
test_complete_stream_reuses_connection(void **state)
{
    struct ctx *c = *state;
    struct rec a = {0};
    struct rec b = {0};

    run(c, "/len/100", &a);
    run(c, "/chunked", &b);
    assert_int_equal(a.rc, BP_OK);
    assert_int_equal(b.rc, BP_OK);
    assert_int_equal(c->srv.n_conns, 1);
}

/* 64 MiB through the stream, pausing every 4 MiB: the client never holds more than a read buffer
 * and a piece, delivers nothing while paused, and every byte arrives in order. */
static void
test_64_mib_never_held_whole(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};
    char path[32];

    r.pause_every = 4u * 1024 * 1024;
    snprintf(path, sizeof(path), "/len/%u", BIG);
    run(c, path, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_true(r.order_ok);
    assert_int_equal(r.body_len, BIG);
    assert_true(r.body_ok);
    assert_true(r.pauses >= 15);
    assert_false(r.body_while_paused);
    assert_true(r.max_held > 0);
    assert_true(r.max_held <= HELD_BOUND);
    assert_true(r.max_piece <= 64 * 1024 + 1);
    assert_int_equal(bp_upstream_buffered_bytes(c->u), 0);
}

/* The same for a body delimited by the close, where no length bounds anything. */
static void
test_close_delimited_streams_bounded(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    r.pause_every = 1024 * 1024;
    run(c, "/close/8388608", &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.body_len, 8u * 1024 * 1024);
    assert_true(r.body_ok);
    assert_false(r.body_while_paused);
    assert_true(r.max_held <= HELD_BOUND);
}

/* Paused in on_head for longer than the total timeout: the clock stops while paused. */
static void
test_pause_in_head_then_resume(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    r.pause_in_head = true;
    run(c, "/len/100000", &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.pauses, 1);
    assert_false(r.body_while_paused);
    assert_int_equal(r.body_len, 100000);
    assert_true(r.body_ok);
}

static void
test_cancel_in_head(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};
    struct rec next = {0};

    r.cancel_in_head = true;
    run(c, "/len/1000000", &r);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.ends, 0);
    assert_int_equal(bp_upstream_inflight(c->u), 0);
    /* The rest of the answer is dropped with its connection... */
    assert_true(wait_for(c, &c->srv.n_closed, 1, 5000));
    /* ...and nothing else arrives for the cancelled transfer. */
    assert_false(wait_for(c, &r.ends, 1, 100));
    assert_int_equal(r.body_len, 0);
    /* The client goes on: a new connection. */
    run(c, "/len/10", &next);
    assert_int_equal(next.rc, BP_OK);
    assert_int_equal(c->srv.n_conns, 2);
}

static void
test_cancel_in_body(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    r.cancel_in_body = true;
    run(c, "/len/1000000", &r);
    assert_int_equal(r.heads, 1);
    assert_true(r.body_len > 0);
    assert_true(r.body_len < 1000000);
    assert_true(wait_for(c, &c->srv.n_closed, 1, 5000));
    assert_false(wait_for(c, &r.ends, 1, 100));
    assert_int_equal(bp_upstream_inflight(c->u), 0);
}

static void
test_cancel_in_end_is_a_no_op(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};
    struct rec next = {0};

    r.cancel_in_end = true;
    run(c, "/len/10", &r);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.rc, BP_OK);
    /* The connection went back to the pool before on_end, and stays there. */
    run(c, "/len/10", &next);
    assert_int_equal(next.rc, BP_OK);
    assert_int_equal(c->srv.n_conns, 1);
}

static void
test_cancel_while_paused(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    start(c, "/hold", &r);
    bp_upstream_pause(r.x);
    assert_false(wait_for(c, &r.heads, 1, 200));
    bp_upstream_cancel(r.x);
    srv_release(&c->srv);
    assert_false(wait_for(c, &r.ends, 1, 200));
    assert_int_equal(r.heads, 0);
    assert_int_equal(bp_upstream_inflight(c->u), 0);
}

/* Paused before anything arrived, then resumed from outside any callback: resume delivers
 * nothing itself; the loop does. */
static void
test_resume_outside_callbacks(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};
    int target = c->ended + 1;

    start(c, "/hold", &r);
    bp_upstream_pause(r.x);
    bp_upstream_pause(r.x); /* twice is once */
    assert_false(wait_for(c, &r.heads, 1, 200));
    bp_upstream_resume(r.x);
    assert_int_equal(r.heads, 0);
    assert_true(wait_for(c, &r.heads, 1, 5000));
    srv_release(&c->srv);
    assert_true(wait_for(c, &c->ended, target, 5000));
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.body_len, 20);
    assert_string_equal(r.small, "0123456789abcdefghij");
}

/* Transfers waiting for Core hold no read buffer, before the answer and while the rest of a body
 * of known length is owed: one is taken when bytes arrive and given back once they are read, so
 * 256 requests waiting on Core do not hold 256 of them. */
static void
test_waiting_transfers_hold_no_read_buffer(void **state)
{
    struct ctx *c = *state;
    struct rec r[3] = {{0}};
    struct rec half = {0};
    int never = 0;
    int target = c->ended + 3;

    for (int i = 0; i < 3; i++) {
        start(c, "/later", &r[i]);
    }
    assert_true(wait_for(c, &c->srv.n_reqs, 3, 5000));
    assert_false(wait_for(c, &never, 1, 50)); /* the loop settles */
    assert_int_equal(bp_upstream_inflight(c->u), 3);
    assert_int_equal(bp_upstream_buffered_bytes(c->u), 0);
    srv_release(&c->srv);
    assert_true(wait_for(c, &c->ended, target, 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].rc, BP_OK);
        assert_string_equal(r[i].small, "ok");
    }
    assert_int_equal(bp_upstream_buffered_bytes(c->u), 0);

    /* The head and half the body read; the rest waits on Core. */
    target = c->ended + 1;
    start(c, "/hold", &half);
    assert_true(wait_for(c, &half.heads, 1, 5000));
    assert_false(wait_for(c, &never, 1, 50));
    assert_int_equal(half.body_len, 10);
    assert_int_equal(bp_upstream_buffered_bytes(c->u), 0);
    srv_release(&c->srv);
    assert_true(wait_for(c, &c->ended, target, 5000));
    assert_int_equal(half.rc, BP_OK);
    assert_string_equal(half.small, "0123456789abcdefghij");
}

static void
test_free_client_in_body(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    r.free_in_body = true;
    run(c, "/len/1000000", &r);
    assert_null(c->u);
    assert_true(r.body_len > 0);
    assert_false(wait_for(c, &r.ends, 1, 100));
}

/* Cut short after the head: on_end reports the failure, so the caller knows its relay is short. */
static void
test_cut_after_head_fails_in_end(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    run(c, "/cut", &r);
    assert_true(r.order_ok);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.body_len, 10);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.rc, BP_ERR_UPSTREAM_UNREACHABLE);
}

/* Issue 11 item 6: a bare CR in a header value is a malformed answer: on_end without on_head. */
static void
test_malformed_head_fails_before_head(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    run(c, "/badcr", &r);
    assert_int_equal(r.heads, 0);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.rc, BP_ERR_UPSTREAM_UNREACHABLE);
}

/* The total timeout still holds while not paused. */
static void
test_timeout_while_waiting_for_core(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    run(c, "/hold", &r);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.body_len, 10);
    assert_int_equal(r.rc, BP_ERR_UPSTREAM_TIMEOUT);
}

/* A head larger than a read buffer (up to the 64 KiB limit) is read whole; over it, refused. */
static void
test_large_head_and_head_over_limit(void **state)
{
    struct ctx *c = *state;
    struct rec big = {0};
    struct rec over = {0};

    run(c, "/bighead/40000", &big);
    assert_int_equal(big.rc, BP_OK);
    assert_string_equal(big.kind, "bighead");
    assert_int_equal(big.body_len, 2);
    assert_string_equal(big.small, "ok");
    run(c, "/bighead/70000", &over);
    assert_int_equal(over.heads, 0);
    assert_int_equal(over.rc, BP_ERR_UPSTREAM_UNREACHABLE);
}

/* An answer that arrives a few bytes at a time decodes as if it came at once. */
static void
test_trickled_answer(void **state)
{
    struct ctx *c = *state;
    struct rec r = {0};

    run(c, "/trickle", &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.framing, BP_UPSTREAM_BODY_CHUNKED);
    assert_string_equal(r.small, "hello world");
    assert_true(r.order_ok);
}

static void
test_missing_callback_is_invalid(void **state)
{
    struct ctx *c = *state;
    struct bp_upstream_req req = {.method = "GET", .url = "http://127.0.0.1:1/"};
    struct bp_upstream_stream_cbs partial = {on_head, NULL, on_end};
    struct bp_upstream_xfer *x = NULL;

    assert_int_equal(bp_upstream_stream(c->u, &req, &partial, NULL, &x), BP_ERR_INVALID);
    assert_int_equal(bp_upstream_stream(c->u, &req, NULL, NULL, &x), BP_ERR_INVALID);
    assert_null(x);
    assert_int_equal(bp_upstream_inflight(c->u), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_head_body_end_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_framings_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_stream_reuses_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_64_mib_never_held_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_delimited_streams_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_in_head_then_resume, setup_short_timeout,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_end_is_a_no_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_outside_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_transfers_hold_no_read_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_client_in_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_after_head_fails_in_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_head_fails_before_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_while_waiting_for_core, setup_short_timeout,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_large_head_and_head_over_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trickled_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_callback_is_invalid, setup, teardown),
    };

    if (bp_upstream_global_init() != BP_OK) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
