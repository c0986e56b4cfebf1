/* End-to-end tests of the upstream client against a small HTTP/1.1 server that runs on the same
 * event_base (127.0.0.1, port 0). The server records every request byte-exact (request line,
 * header block, body) and which TCP connection carried it, and answers according to the path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four above first */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "upstream/upstream.h"

#define MAX_REQS 128
#define MAX_HELD 32
#define N_CONCURRENT 20
#define BIG_LEN (5 * 1024 * 1024)
#define SECRET "sk_live_do_not_log_7f3a9c"

/* ---- the fake Core -------------------------------------------------------------------------- */

struct srv;

struct srv_conn {
    struct srv *s;
    struct bufferevent *bev;
    struct srv_conn *next;
    int id;
    int n_reqs;
    bool stalled;
};

struct srv_req {
    int conn_id;
    int nth_on_conn;
    char method[16];
    char target[256];
    char *head; /* header lines after the request line, each with its CRLF; no blank line */
    char *body;
    size_t body_len;
};

struct srv {
    struct event_base *base;
    struct evconnlistener *lis;
    int port;
    int n_conns;
    struct srv_conn *conns;
    struct srv_req reqs[MAX_REQS];
    int n_reqs;
    struct srv_conn *held[MAX_HELD];
    int held_ids[MAX_HELD];
    int n_held;
};

static void
srv_conn_free(struct srv_conn *c)
{
    struct srv_conn **pp = &c->s->conns;

    while (*pp != c) {
        pp = &(*pp)->next;
    }
    *pp = c->next;
    for (int i = 0; i < c->s->n_held; i++) {
        if (c->s->held[i] == c) {
            c->s->held[i] = NULL;
        }
    }
    bufferevent_free(c->bev);
    free(c);
}

static void
srv_respond(struct srv_conn *c, int status, const char *extra_headers, const char *body, size_t body_len)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    evbuffer_add_printf(out, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status, body_len,
                        extra_headers);
    evbuffer_add(out, body, body_len);
}

static void
srv_add_raw(struct srv_conn *c, const char *raw)
{
    evbuffer_add(bufferevent_get_output(c->bev), raw, strlen(raw));
}

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Returns the value of the first header called name in a recorded head, or NULL. */
static const char *
head_find(const char *head, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = head;

    while (*p != '\0') {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL) {
            break;
        }
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            size_t len;
            while (*v == ' ') {
                v++;
            }
            len = (size_t)(eol - v);
            if (len >= cap) {
                len = cap - 1;
            }
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
        p = eol + 2;
    }
    return NULL;
}

static int
head_count(const char *head, const char *name)
{
    size_t n = strlen(name);
    int count = 0;

    for (const char *p = head; *p != '\0';) {
        const char *eol = strstr(p, "\r\n");
        if (eol == NULL) {
            break;
        }
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            count++;
        }
        p = eol + 2;
    }
    return count;
}

static void
srv_release_held(struct srv *s)
{
    /* Reverse order, so completions do not simply follow the order of sending. */
    for (int i = s->n_held - 1; i >= 0; i--) {
        char body[32];
        int n = snprintf(body, sizeof(body), "id:%d", s->held_ids[i]);
        if (s->held[i] != NULL) {
            srv_respond(s->held[i], 200, "", body, (size_t)n);
            s->held[i]->stalled = false;
        }
    }
}

/* Answers one request according to its path. Returns false if the connection was closed. */
static bool
srv_handle(struct srv_conn *c, struct srv_req *r)
{
    struct srv *s = c->s;
    const char *t = r->target;

    if (strcmp(t, "/echo") == 0) {
        srv_respond(c, 200, "Content-Type: application/octet-stream\r\n", r->body, r->body_len);
    } else if (starts_with(t, "/status/")) {
        srv_respond(c, (int)strtol(t + 8, NULL, 10), "", "s", 1);
    } else if (strcmp(t, "/bin") == 0) {
        srv_respond(c, 200, "", "x\0y\0z", 5);
    } else if (strcmp(t, "/hop") == 0) {
        srv_respond(c, 200,
                    "Connection: keep-alive, X-Hop-Named\r\n"
                    "Keep-Alive: timeout=5\r\n"
                    "X-Hop-Named: 1\r\n"
                    "Content-Type: application/json\r\n"
                    "Trailer: X-T\r\n"
                    "Proxy-Authenticate: Basic\r\n"
                    "X-Keep: yes\r\n"
                    "X-Spaced:   padded  value \t\r\n"
                    "X-Empty:\r\n",
                    "ok", 2);
    } else if (strcmp(t, "/chunked") == 0) {
        srv_add_raw(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                       "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trail: t\r\n\r\n");
    } else if (strcmp(t, "/continue") == 0) {
        srv_add_raw(c, "HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nX-Final: 1\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(t, "/gzip") == 0) {
        srv_respond(c, 200, "Content-Encoding: gzip\r\n", "\x1f\x8b\x08\x00junk", 8);
    } else if (strcmp(t, "/head") == 0) {
        srv_add_raw(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-H: 1\r\n\r\n");
    } else if (starts_with(t, "/big/")) {
        size_t n = (size_t)strtoull(t + 5, NULL, 10);
        char *b = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) {
            b[i] = (char)('a' + i % 26);
        }
        srv_respond(c, 200, "", b, n);
        free(b);
    } else if (strcmp(t, "/stall") == 0) {
        c->stalled = true;
    } else if (starts_with(t, "/hold/")) {
        c->stalled = true;
        if (s->n_held < MAX_HELD) {
            s->held[s->n_held] = c;
            s->held_ids[s->n_held] = (int)strtol(t + 6, NULL, 10);
            s->n_held++;
        }
        if (s->n_held == N_CONCURRENT) {
            srv_release_held(s);
        }
    } else if (strcmp(t, "/close-second") == 0) {
        /* Answer the first request on a connection; drop the connection on the second after
         * reading it completely, like a Core that crashed while handling it. */
        if (r->nth_on_conn >= 2) {
            srv_conn_free(c);
            return false;
        }
        srv_respond(c, 200, "", "first", 5);
    } else {
        srv_respond(c, 404, "", "nf", 2);
    }
    return true;
}

/* Parses as many complete requests as the input holds (Content-Length framing only: the client
 * under test must never send chunked bodies). */
static void
srv_on_read(struct bufferevent *bev, void *arg)
{
    struct srv_conn *c = arg;
    struct srv *s = c->s;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (!c->stalled) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        size_t head_len;
        size_t body_len = 0;
        char *raw;
        char *line_end;
        char cl[32];
        struct srv_req *r;

        if (end.pos < 0) {
            return;
        }
        head_len = (size_t)end.pos + 4;
        raw = malloc(head_len + 1);
        evbuffer_copyout(in, raw, head_len);
        raw[head_len] = '\0';
        line_end = strstr(raw, "\r\n");
        if (head_find(line_end + 2, "Content-Length", cl, sizeof(cl)) != NULL) {
            body_len = (size_t)strtoull(cl, NULL, 10);
        }
        if (evbuffer_get_length(in) < head_len + body_len) {
            free(raw);
            return;
        }
        assert_true(s->n_reqs < MAX_REQS);
        r = &s->reqs[s->n_reqs++];
        memset(r, 0, sizeof(*r));
        r->conn_id = c->id;
        r->nth_on_conn = ++c->n_reqs;
        assert_int_equal(sscanf(raw, "%15s %255s", r->method, r->target), 2);
        raw[head_len - 2] = '\0'; /* drop the blank line */
        r->head = strdup(line_end + 2);
        free(raw);
        evbuffer_drain(in, head_len);
        r->body = malloc(body_len + 1);
        evbuffer_remove(in, r->body, body_len);
        r->body_len = body_len;
        if (!srv_handle(c, r)) {
            return;
        }
    }
}

static void
srv_on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        srv_conn_free(arg);
    }
}

static void
srv_on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct srv *s = arg;
    struct srv_conn *c = calloc(1, sizeof(*c));

    c->s = s;
    c->id = ++s->n_conns;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, srv_on_read, NULL, srv_on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = s->conns;
    s->conns = c;
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
    sin.sin_port = 0;
    s->lis = evconnlistener_new_bind(base, srv_on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
                                     (struct sockaddr *)&sin, sizeof(sin));
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
    for (int i = 0; i < s->n_reqs; i++) {
        free(s->reqs[i].head);
        free(s->reqs[i].body);
    }
}

/* ---- test context and the client side -------------------------------------------------------- */

struct result {
    struct ctx *ctx;
    int calls;
    bp_err rc;
    bool resp_null;
    int status;
    char *body;
    size_t body_len;
    char *names[32];
    char *values[32];
    size_t n_headers;
    int64_t upstream_us;
    /* Actions the callback takes, to exercise re-entrancy. */
    struct bp_upstream_xfer *cancel_in_cb;
    bool free_client_in_cb;
};

struct ctx {
    struct event_base *base;
    struct srv srv;
    struct bp_upstream *u;
    int completed;
    bool in_send;
    char url[256];
};

static void
on_done(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct result *r = arg;

    /* Never from inside bp_upstream_send. */
    assert_false(r->ctx->in_send);
    r->calls++;
    r->rc = rc;
    r->resp_null = resp == NULL;
    if (resp != NULL) {
        r->status = resp->status;
        r->body = bp_memdup(resp->body.data ? resp->body.data : "", resp->body.len);
        r->body_len = resp->body.len;
        r->upstream_us = resp->upstream_us;
        r->n_headers = resp->n_headers < 32 ? resp->n_headers : 32;
        for (size_t i = 0; i < r->n_headers; i++) {
            r->names[i] = bp_strdup(resp->headers[i].name);
            r->values[i] = bp_strdup(resp->headers[i].value);
        }
    }
    if (r->cancel_in_cb != NULL) {
        bp_upstream_cancel(r->cancel_in_cb);
    }
    if (r->free_client_in_cb) {
        bp_upstream_free(r->ctx->u);
        r->ctx->u = NULL;
    }
    r->ctx->completed++;
}

static void
result_cleanup(struct result *r)
{
    bp_free(r->body);
    for (size_t i = 0; i < r->n_headers; i++) {
        bp_free(r->names[i]);
        bp_free(r->values[i]);
    }
    memset(r, 0, sizeof(*r));
}

static const char *
result_header(const struct result *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->names[i], name) == 0) {
            return r->values[i];
        }
    }
    return NULL;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Runs the loop until *counter reaches target or timeout_ms passes. Every wait is bounded. */
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

static const char *
url_for(struct ctx *c, const char *path)
{
    snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d%s", c->srv.port, path);
    return c->url;
}

static struct bp_upstream_xfer *
send_req(struct ctx *c, const char *method, const char *path, const char *const *headers, size_t n_headers,
         const char *body, size_t body_len, struct result *r)
{
    struct bp_upstream_req req = {
        .method = method,
        .url = url_for(c, path),
        .headers = headers,
        .n_headers = n_headers,
        .body = body,
        .body_len = body_len,
    };
    struct bp_upstream_xfer *x = NULL;

    r->ctx = c;
    c->in_send = true;
    assert_int_equal(bp_upstream_send(c->u, &req, on_done, r, &x), BP_OK);
    c->in_send = false;
    assert_non_null(x);
    assert_int_equal(r->calls, 0);
    return x;
}

/* Sends one request and waits (bounded) for its callback. */
static void
roundtrip(struct ctx *c, const char *method, const char *path, const char *const *headers, size_t n_headers,
          const char *body, size_t body_len, struct result *r)
{
    int target = c->completed + 1;

    send_req(c, method, path, headers, n_headers, body, body_len, r);
    assert_true(wait_for(c, &c->completed, target, 10000));
    assert_int_equal(r->calls, 1);
}

static const struct bp_upstream_opts default_opts = {
    .connect_timeout_ms = 2000,
    .total_timeout_ms = 10000,
    .max_response_bytes = 16 * 1024 * 1024,
    .max_connections_per_host = 0,
};

static int
setup_with(void **state, const struct bp_upstream_opts *opts)
{
    struct ctx *c = calloc(1, sizeof(*c));

    c->base = event_base_new();
    assert_non_null(c->base);
    srv_start(&c->srv, c->base);
    assert_int_equal(bp_upstream_new(c->base, opts, &c->u), BP_OK);
    *state = c;
    return 0;
}

static int
setup(void **state)
{
    return setup_with(state, &default_opts);
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    bp_upstream_free(c->u);
    srv_stop(&c->srv);
    event_base_free(c->base);
    free(c);
    return 0;
}

static int
group_setup(void **state)
{
    return bp_upstream_global_init() == BP_OK ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void
test_get_sends_exact_headers_and_nothing_else(void **state)
{
    struct ctx *c = *state;
    const char *hdrs[] = {("X-Blnk-Key: " SECRET), "X-Request-Id: req-1", "X-Empty:", "X-Spaced: a  b"};
    struct result r = {0};
    char want[512];

    roundtrip(c, "GET", "/bin", hdrs, 4, NULL, 0, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 5);
    assert_memory_equal(r.body, "x\0y\0z", 5);
    assert_true(r.upstream_us > 0);

    assert_int_equal(c->srv.n_reqs, 1);
    assert_string_equal(c->srv.reqs[0].method, "GET");
    assert_string_equal(c->srv.reqs[0].target, "/bin");
    /* No Accept, User-Agent, Expect, Content-Length or Transfer-Encoding of the client's own. */
    snprintf(want, sizeof(want),
             "Host: 127.0.0.1:%d\r\nX-Blnk-Key: " SECRET
             "\r\nX-Request-Id: req-1\r\nX-Empty:\r\nX-Spaced: a  b\r\n",
             c->srv.port);
    assert_string_equal(c->srv.reqs[0].head, want);
    assert_int_equal(c->srv.reqs[0].body_len, 0);
    result_cleanup(&r);
}

static void
test_caller_accept_and_user_agent_pass_once(void **state)
{
    struct ctx *c = *state;
    const char *hdrs[] = {"Accept: application/json", "User-Agent: blnk-sdk/1.0"};
    struct result r = {0};
    char v[64];

    roundtrip(c, "GET", "/bin", hdrs, 2, NULL, 0, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(head_count(c->srv.reqs[0].head, "Accept"), 1);
    assert_string_equal(head_find(c->srv.reqs[0].head, "Accept", v, sizeof(v)), "application/json");
    assert_int_equal(head_count(c->srv.reqs[0].head, "User-Agent"), 1);
    assert_string_equal(head_find(c->srv.reqs[0].head, "User-Agent", v, sizeof(v)), "blnk-sdk/1.0");
    result_cleanup(&r);
}

static void
test_post_body_with_nul_is_exact(void **state)
{
    struct ctx *c = *state;
    static const char body[] = "{\"amount\":100.50}\0after-nul";
    size_t len = sizeof(body) - 1;
    /* A stale Content-Length from the client must not reach Core: the body may be rewritten. */
    const char *hdrs[] = {"Content-Type: application/json", "Content-Length: 3"};
    struct result r = {0};
    const struct srv_req *sr;
    char v[64];

    roundtrip(c, "POST", "/echo", hdrs, 2, body, len, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, body, len);

    sr = &c->srv.reqs[0];
    assert_string_equal(sr->method, "POST");
    assert_int_equal(sr->body_len, len);
    assert_memory_equal(sr->body, body, len);
    assert_int_equal(head_count(sr->head, "Content-Length"), 1);
    snprintf(v, sizeof(v), "%zu", len);
    char got[64];
    assert_string_equal(head_find(sr->head, "Content-Length", got, sizeof(got)), v);
    assert_int_equal(head_count(sr->head, "Content-Type"), 1);
    assert_int_equal(head_count(sr->head, "Expect"), 0);
    assert_int_equal(head_count(sr->head, "Accept"), 0);
    assert_int_equal(head_count(sr->head, "Transfer-Encoding"), 0);
    result_cleanup(&r);
}

static void
test_post_without_content_type_gets_none(void **state)
{
    struct ctx *c = *state;
    struct result r = {0};

    roundtrip(c, "POST", "/echo", NULL, 0, "a=b", 3, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(head_count(c->srv.reqs[0].head, "Content-Type"), 0);
    assert_memory_equal(c->srv.reqs[0].body, "a=b", 3);
    result_cleanup(&r);
}

static void
test_methods_put_patch_delete(void **state)
{
    struct ctx *c = *state;
    struct result r1 = {0};
    struct result r2 = {0};
    struct result r3 = {0};
    struct result r4 = {0};

    roundtrip(c, "PUT", "/echo", NULL, 0, "put", 3, &r1);
    roundtrip(c, "PATCH", "/echo", NULL, 0, "patch", 5, &r2);
    roundtrip(c, "DELETE", "/echo", NULL, 0, NULL, 0, &r3);
    roundtrip(c, "POST", "/echo", NULL, 0, NULL, 0, &r4);
    assert_string_equal(c->srv.reqs[0].method, "PUT");
    assert_memory_equal(c->srv.reqs[0].body, "put", 3);
    assert_string_equal(c->srv.reqs[1].method, "PATCH");
    assert_memory_equal(c->srv.reqs[1].body, "patch", 5);
    assert_string_equal(c->srv.reqs[2].method, "DELETE");
    /* A bodiless DELETE is not framed as if it had a body. */
    assert_int_equal(head_count(c->srv.reqs[2].head, "Content-Length"), 0);
    assert_int_equal(head_count(c->srv.reqs[2].head, "Transfer-Encoding"), 0);
    /* An empty POST says so. */
    assert_string_equal(c->srv.reqs[3].method, "POST");
    assert_int_equal(head_count(c->srv.reqs[3].head, "Content-Length"), 1);
    assert_int_equal(c->srv.reqs[3].body_len, 0);
    assert_int_equal(r4.rc, BP_OK);
    assert_int_equal(r4.body_len, 0);
    result_cleanup(&r1);
    result_cleanup(&r2);
    result_cleanup(&r3);
    result_cleanup(&r4);
}

static void
test_five_mib_each_way(void **state)
{
    struct ctx *c = *state;
    char *body = malloc(BIG_LEN);
    uint32_t x = 2463534242u;
    struct result r = {0};

    for (size_t i = 0; i < BIG_LEN; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body[i] = (char)(i % 4096 == 0 ? 0 : x);
    }
    roundtrip(c, "POST", "/echo", NULL, 0, body, BIG_LEN, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(c->srv.reqs[0].body_len, BIG_LEN);
    assert_memory_equal(c->srv.reqs[0].body, body, BIG_LEN);
    assert_int_equal(head_count(c->srv.reqs[0].head, "Expect"), 0);
    assert_int_equal(r.body_len, BIG_LEN);
    assert_memory_equal(r.body, body, BIG_LEN);
    result_cleanup(&r);
    free(body);
}

static void
test_status_passthrough(void **state)
{
    struct ctx *c = *state;
    const int codes[] = {201, 404, 500};

    for (size_t i = 0; i < 3; i++) {
        struct result r = {0};
        char path[32];
        snprintf(path, sizeof(path), "/status/%d", codes[i]);
        roundtrip(c, "GET", path, NULL, 0, NULL, 0, &r);
        assert_int_equal(r.rc, BP_OK);
        assert_int_equal(r.status, codes[i]);
        assert_int_equal(r.body_len, 1);
        result_cleanup(&r);
    }
}

static void
test_response_headers_drop_hop_by_hop(void **state)
{
    struct ctx *c = *state;
    struct result r = {0};

    roundtrip(c, "GET", "/hop", NULL, 0, NULL, 0, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.n_headers, 4);
    assert_string_equal(r.names[0], "Content-Type");
    assert_string_equal(r.values[0], "application/json");
    assert_string_equal(r.names[1], "X-Keep");
    assert_string_equal(r.values[1], "yes");
    assert_string_equal(r.names[2], "X-Spaced");
    assert_string_equal(r.values[2], "padded  value");
    assert_string_equal(r.names[3], "X-Empty");
    assert_string_equal(r.values[3], "");
    assert_memory_equal(r.body, "ok", 2);
    result_cleanup(&r);
}

static void
test_chunked_response_and_trailers(void **state)
{
    struct ctx *c = *state;
    struct result r = {0};

    roundtrip(c, "GET", "/chunked", NULL, 0, NULL, 0, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.body_len, 11);
    assert_memory_equal(r.body, "hello world", 11);
    assert_int_equal(r.n_headers, 1);
    assert_string_equal(r.names[0], "X-A");
    assert_null(result_header(&r, "X-Trail"));
    result_cleanup(&r);
}

static void
test_interim_1xx_dropped(void **state)
{
    struct ctx *c = *state;
    struct result r = {0};

    roundtrip(c, "GET", "/continue", NULL, 0, NULL, 0, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.n_headers, 1);
    assert_string_equal(r.names[0], "X-Final");
    assert_memory_equal(r.body, "ok", 2);
    result_cleanup(&r);
}

static void
test_content_encoding_passes_through(void **state)
{
    struct ctx *c = *state;
    const char *hdrs[] = {"Accept-Encoding: gzip"};
    struct result r = {0};

    roundtrip(c, "GET", "/gzip", hdrs, 1, NULL, 0, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.body_len, 8);
    assert_memory_equal(r.body, "\x1f\x8b\x08\x00junk", 8);
    assert_string_equal(result_header(&r, "Content-Encoding"), "gzip");
    result_cleanup(&r);
}

static void
test_keepalive_reuses_one_connection(void **state)
{
    struct ctx *c = *state;

    for (int i = 0; i < 5; i++) {
        struct result r = {0};
        roundtrip(c, "GET", "/bin", NULL, 0, NULL, 0, &r);
        assert_int_equal(r.rc, BP_OK);
        result_cleanup(&r);
    }
    assert_int_equal(c->srv.n_reqs, 5);
    assert_int_equal(c->srv.n_conns, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c->srv.reqs[i].conn_id, 1);
    }
}

static void
test_head_request(void **state)
{
    struct ctx *c = *state;
    struct result r = {0};
    struct result r2 = {0};

    roundtrip(c, "HEAD", "/head", NULL, 0, NULL, 0, &r);
    assert_int_equal(r.rc, BP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(result_header(&r, "X-H"), "1");
    assert_null(result_header(&r, "Content-Length"));
    assert_string_equal(c->srv.reqs[0].method, "HEAD");
    assert_int_equal(head_count(c->srv.reqs[0].head, "Content-Length"), 0);
    /* The connection stays usable: the client did not wait for 100 body bytes. */
    roundtrip(c, "GET", "/bin", NULL, 0, NULL, 0, &r2);
    assert_int_equal(r2.rc, BP_OK);
    assert_int_equal(c->srv.n_conns, 1);
    result_cleanup(&r);
    result_cleanup(&r2);
}

static bool
method_has_test_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0;
}

/* Whatever one request set (method, body, a HEAD's bodiless answer, headers) must not reach the
 * next on the same client and connection: each GET after another kind of request must look
 * exactly like the first GET of a fresh client. (Guards the client's reuse of transfer structs,
 * their buffers and the connection.) */
static void
test_reused_handle_behaves_like_fresh(void **state)
{
    struct ctx *c = *state;
    const char *secret_hdrs[] = {("X-Blnk-Key: " SECRET), "Content-Type: application/json", "Accept: text/x"};
    const char *const kinds[][2] = {{"POST", "/echo"}, {"HEAD", "/head"}, {"DELETE", "/echo"}, {"PUT", "/echo"}};
    char want_head[256];
    int n_kinds = (int)(sizeof(kinds) / sizeof(kinds[0]));

    snprintf(want_head, sizeof(want_head), "Host: 127.0.0.1:%d\r\n", c->srv.port);
    for (int i = 0; i < n_kinds; i++) {
        struct result first = {0};
        struct result get = {0};
        const struct srv_req *sr;
        const char *body = method_has_test_body(kinds[i][0]) ? "{\"n\":1}" : NULL;

        roundtrip(c, kinds[i][0], kinds[i][1], secret_hdrs, 3, body, body ? 7 : 0, &first);
        assert_int_equal(first.rc, BP_OK);
        roundtrip(c, "GET", "/bin", NULL, 0, NULL, 0, &get);
        assert_int_equal(get.rc, BP_OK);
        assert_int_equal(get.status, 200);
        /* Not NOBODY from the HEAD: the body arrives. */
        assert_int_equal(get.body_len, 5);
        assert_memory_equal(get.body, "x\0y\0z", 5);
        sr = &c->srv.reqs[c->srv.n_reqs - 1];
        /* Not POST/PUT/DELETE, no body, no Content-Length, none of the previous headers. */
        assert_string_equal(sr->method, "GET");
        assert_string_equal(sr->target, "/bin");
        assert_string_equal(sr->head, want_head);
        assert_int_equal(sr->body_len, 0);
        result_cleanup(&first);
        result_cleanup(&get);
    }
    /* A GET with headers after all that sends exactly its own. */
    {
        const char *hdrs[] = {"X-Request-Id: req-9"};
        struct result r = {0};
        char want[256];

        roundtrip(c, "GET", "/bin", hdrs, 1, NULL, 0, &r);
        snprintf(want, sizeof(want), "Host: 127.0.0.1:%d\r\nX-Request-Id: req-9\r\n", c->srv.port);
        assert_string_equal(c->srv.reqs[c->srv.n_reqs - 1].head, want);
        result_cleanup(&r);
    }
    /* All on the one kept-alive connection. */
    assert_int_equal(c->srv.n_conns, 1);
}

/* A request that failed (here: over the response cap) leaves nothing behind either. */
static void
test_reused_handle_after_failure(void **state)
{
    struct ctx *c = *state;
    struct bp_upstream_opts o = default_opts;
    struct bp_upstream *saved = c->u;
    struct result big = {0};
    struct result post = {0};
    struct result get = {0};

    o.max_response_bytes = 64;
    assert_int_equal(bp_upstream_new(c->base, &o, &c->u), BP_OK);
    roundtrip(c, "GET", "/big/100", NULL, 0, NULL, 0, &big);
    assert_int_equal(big.rc, BP_ERR_UPSTREAM_TOO_LARGE);
    roundtrip(c, "POST", "/echo", NULL, 0, "abc", 3, &post);
    assert_int_equal(post.rc, BP_OK);
    assert_int_equal(post.body_len, 3);
    assert_memory_equal(post.body, "abc", 3);
    roundtrip(c, "GET", "/big/40", NULL, 0, NULL, 0, &get);
    assert_int_equal(get.rc, BP_OK);
    assert_int_equal(get.body_len, 40);
    assert_string_equal(c->srv.reqs[c->srv.n_reqs - 1].method, "GET");
    assert_int_equal(head_count(c->srv.reqs[c->srv.n_reqs - 1].head, "Content-Length"), 0);
    assert_int_equal(c->srv.reqs[c->srv.n_reqs - 1].body_len, 0);
    bp_upstream_free(c->u);
    c->u = saved;
    result_cleanup(&post);
    result_cleanup(&get);
}

static int
free_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

static void
test_refused_is_unreachable_and_secret_not_logged(void **state)
{
    struct ctx *c = *state;
    const char *hdrs[] = {"X-Blnk-Key: " SECRET, "Authorization: Bearer " SECRET};
    char url[64];
    struct bp_upstream_req req = {
        .method = "POST", .url = url, .headers = hdrs, .n_headers = 2, .body = "{}", .body_len = 2};
    struct result r = {.ctx = c};
    char logpath[] = "/tmp/bp_upstream_logXXXXXX";
    int logfd = mkstemp(logpath);
    int saved = dup(STDERR_FILENO);
    char logtext[4096];
    ssize_t n;

    assert_true(logfd >= 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", free_port());
    fflush(stderr);
    dup2(logfd, STDERR_FILENO);
    assert_int_equal(bp_upstream_send(c->u, &req, on_done, &r, NULL), BP_OK);
    assert_int_equal(r.calls, 0);
    /* The client copied what it needs: the failure log must not read the caller's buffer. */
    memset(url, 'Z', strlen(url));
    assert_true(wait_for(c, &c->completed, 1, 10000));
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);

    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_true(r.resp_null);

    n = pread(logfd, logtext, sizeof(logtext) - 1, 0);
    close(logfd);
    unlink(logpath);
    assert_true(n > 0);
    logtext[n] = '\0';
    assert_non_null(strstr(logtext, "upstream request failed"));
    assert_non_null(strstr(logtext, "127.0.0.1"));
    assert_null(strstr(logtext, SECRET));
    assert_null(strstr(logtext, "/echo"));
}

static void
test_request_strings_may_die_after_send(void **state)
{
    struct ctx *c = *state;
    char *method = strdup("PUT");
    char *url = strdup(url_for(c, "/echo"));
    char *h0 = strdup("X-Blnk-Key: " SECRET);
    char *h1 = strdup("Content-Type: text/plain");
    const char *hdrs[2] = {h0, h1};
    char *ca = strdup("/nonexistent/ca.pem"); /* unused for http:// */
    struct bp_upstream_req req = {.method = method,
                                  .url = url,
                                  .headers = hdrs,
                                  .n_headers = 2,
                                  .body = "kept",
                                  .body_len = 4,
                                  .ca_file = ca};
    struct result r = {.ctx = c};

    assert_int_equal(bp_upstream_send(c->u, &req, on_done, &r, NULL), BP_OK);
    free(method);
    free(url);
    free(h0);
    free(h1);
    free(ca);
    assert_true(wait_for(c, &c->completed, 1, 10000));
    assert_int_equal(r.rc, BP_OK);
    assert_string_equal(c->srv.reqs[0].method, "PUT");
    assert_string_equal(c->srv.reqs[0].target, "/echo");
    assert_int_equal(head_count(c->srv.reqs[0].head, "X-Blnk-Key"), 1);
    assert_int_equal(head_count(c->srv.reqs[0].head, "Content-Type"), 1);
    assert_memory_equal(r.body, "kept", 4);
    result_cleanup(&r);
}

static void
test_stalled_server_times_out(void **state)
{
    struct ctx *c = *state;
    struct bp_upstream_opts o = default_opts;
    struct bp_upstream *fast;
    struct bp_upstream *saved = c->u;
    struct result r = {0};
    int64_t t0;
    int64_t elapsed;

    o.total_timeout_ms = 300;
    assert_int_equal(bp_upstream_new(c->base, &o, &fast), BP_OK);
    c->u = fast;
    t0 = bp_clock_mono_ms();
    roundtrip(c, "GET", "/stall", NULL, 0, NULL, 0, &r);
    elapsed = bp_clock_mono_ms() - t0;
    assert_int_equal(r.rc, BP_ERR_UPSTREAM_TIMEOUT);
    assert_true(r.resp_null);
    assert_true(elapsed >= 250);
    assert_true(elapsed < 3000);
    assert_int_equal(c->srv.n_reqs, 1); /* it was sent, and not retried */
    assert_int_equal(bp_upstream_inflight(fast), 0);
    bp_upstream_free(fast);
    c->u = saved;
}

static void
test_response_over_cap_is_too_large(void **state)
{
    struct ctx *c = *state;
    struct bp_upstream_opts o = default_opts;
    struct bp_upstream *small;
    struct bp_upstream *saved = c->u;
    struct result at = {0};
    struct result over = {0};

    o.max_response_bytes = 1000;
    assert_int_equal(bp_upstream_new(c->base, &o, &small), BP_OK);
    c->u = small;
    roundtrip(c, "GET", "/big/1000", NULL, 0, NULL, 0, &at);
    assert_int_equal(at.rc, BP_OK);
    assert_int_equal(at.body_len, 1000);
    roundtrip(c, "GET", "/big/5000", NULL, 0, NULL, 0, &over);
    assert_int_equal(over.rc, BP_ERR_UPSTREAM_TOO_LARGE);
    assert_true(over.resp_null);
    bp_upstream_free(small);
    c->u = saved;
    result_cleanup(&at);
    result_cleanup(&over);
}

static void
test_cancel_prevents_callback(void **state)
{
    struct ctx *c = *state;
    struct result r1 = {0};
    struct result r2 = {0};
    struct bp_upstream_xfer *x1;
    struct bp_upstream_xfer *x2;

    /* Cancelled before anything happened on the wire. */
    x1 = send_req(c, "GET", "/stall", NULL, 0, NULL, 0, &r1);
    assert_int_equal(bp_upstream_inflight(c->u), 1);
    bp_upstream_cancel(x1);
    assert_int_equal(bp_upstream_inflight(c->u), 0);

    /* Cancelled while Core is working on it. */
    x2 = send_req(c, "POST", "/stall", NULL, 0, "abc", 3, &r2);
    assert_true(wait_for(c, &c->srv.n_reqs, 1, 5000));
    bp_upstream_cancel(x2);
    assert_int_equal(bp_upstream_inflight(c->u), 0);

    assert_false(wait_for(c, &c->completed, 1, 300));
    assert_int_equal(r1.calls, 0);
    assert_int_equal(r2.calls, 0);
}

static void
test_cancel_other_from_callback(void **state)
{
    struct ctx *c = *state;
    struct result fast = {0};
    struct result slow = {0};

    fast.cancel_in_cb = send_req(c, "GET", "/stall", NULL, 0, NULL, 0, &slow);
    send_req(c, "GET", "/bin", NULL, 0, NULL, 0, &fast);
    assert_true(wait_for(c, &c->completed, 1, 5000));
    assert_int_equal(fast.calls, 1);
    assert_int_equal(fast.rc, BP_OK);
    assert_int_equal(bp_upstream_inflight(c->u), 0);
    assert_false(wait_for(c, &c->completed, 2, 300));
    assert_int_equal(slow.calls, 0);
    result_cleanup(&fast);
}

static void
test_free_client_from_callback(void **state)
{
    struct ctx *c = *state;
    struct result fast = {0};
    struct result slow = {0};

    send_req(c, "GET", "/stall", NULL, 0, NULL, 0, &slow);
    fast.free_client_in_cb = true;
    send_req(c, "GET", "/bin", NULL, 0, NULL, 0, &fast);
    assert_true(wait_for(c, &c->completed, 1, 5000));
    assert_null(c->u);
    assert_false(wait_for(c, &c->completed, 2, 300));
    assert_int_equal(slow.calls, 0);
    result_cleanup(&fast);
}

static void
test_free_with_transfers_in_flight(void **state)
{
    struct ctx *c = *state;
    struct result r = {0};

    send_req(c, "POST", "/stall", NULL, 0, "x", 1, &r);
    assert_true(wait_for(c, &c->srv.n_reqs, 1, 5000));
    bp_upstream_free(c->u);
    c->u = NULL;
    assert_false(wait_for(c, &c->completed, 1, 200));
    assert_int_equal(r.calls, 0);
}

static void
test_twenty_concurrent(void **state)
{
    struct ctx *c = *state;
    struct result *rs = calloc(N_CONCURRENT, sizeof(*rs));

    for (int i = 0; i < N_CONCURRENT; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/hold/%d", i);
        send_req(c, "GET", path, NULL, 0, NULL, 0, &rs[i]);
    }
    assert_int_equal(bp_upstream_inflight(c->u), N_CONCURRENT);
    assert_true(wait_for(c, &c->completed, N_CONCURRENT, 10000));
    /* The server answers only once all 20 are waiting, so all were in flight at once. */
    assert_int_equal(c->srv.n_conns, N_CONCURRENT);
    for (int i = 0; i < N_CONCURRENT; i++) {
        char want[32];
        int n = snprintf(want, sizeof(want), "id:%d", i);
        assert_int_equal(rs[i].calls, 1);
        assert_int_equal(rs[i].rc, BP_OK);
        assert_int_equal(rs[i].body_len, (size_t)n);
        assert_memory_equal(rs[i].body, want, (size_t)n);
        result_cleanup(&rs[i]);
    }
    assert_int_equal(bp_upstream_inflight(c->u), 0);
    free(rs);
}

static void
test_sent_body_is_never_resent(void **state)
{
    struct ctx *c = *state;
    struct result first = {0};
    struct result second = {0};

    roundtrip(c, "POST", "/close-second", NULL, 0, "{\"n\":1}", 7, &first);
    assert_int_equal(first.rc, BP_OK);
    assert_memory_equal(first.body, "first", 5);
    /* Core reads the whole second request on the kept-alive connection, then drops it. The
     * outcome is unknown, so the client must fail rather than send the body again. */
    roundtrip(c, "POST", "/close-second", NULL, 0, "{\"n\":2}", 7, &second);
    assert_int_equal(second.rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_false(wait_for(c, &c->srv.n_reqs, 3, 200));
    assert_int_equal(c->srv.n_reqs, 2);
    result_cleanup(&first);
}

/* Review H1: a write without a body (POST /refund-transaction/:id, DELETE a matching rule) must
 * not be sent a second time on a fresh connection when the kept-alive one drops after the request
 * went out: Core may have acted on it. */
static void
test_bodyless_write_is_never_resent(void **state)
{
    static const char *const methods[] = {"POST", "DELETE", "PUT", "PATCH"};
    struct ctx *c = *state;

    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        struct result first = {0};
        struct result second = {0};
        int before = c->srv.n_reqs;

        roundtrip(c, methods[i], "/close-second", NULL, 0, NULL, 0, &first);
        assert_int_equal(first.rc, BP_OK);
        roundtrip(c, methods[i], "/close-second", NULL, 0, NULL, 0, &second);
        assert_int_equal(second.rc, BP_ERR_UPSTREAM_UNREACHABLE);
        assert_false(wait_for(c, &c->srv.n_reqs, before + 3, 200));
        assert_int_equal(c->srv.n_reqs, before + 2);
        result_cleanup(&first);
    }
}

/* A URL the client cannot use (malformed, or not http/https) is not refused inside send: it is
 * reported through the callback, from the loop, like an unreachable Core. */
static void
test_unusable_urls_are_reported_later(void **state)
{
    struct ctx *c = *state;
    struct bp_upstream_req bad_url = {.method = "GET", .url = "http://[::1"};
    struct bp_upstream_req bad_scheme = {.method = "GET", .url = "ftp://127.0.0.1/x"};
    struct result r1 = {.ctx = c};
    struct result r2 = {.ctx = c};

    c->in_send = true;
    assert_int_equal(bp_upstream_send(c->u, &bad_url, on_done, &r1, NULL), BP_OK);
    assert_int_equal(bp_upstream_send(c->u, &bad_scheme, on_done, &r2, NULL), BP_OK);
    c->in_send = false;
    assert_int_equal(r1.calls + r2.calls, 0);
    assert_true(wait_for(c, &c->completed, 2, 5000));
    assert_int_equal(r1.calls, 1);
    assert_int_equal(r1.rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.rc, BP_ERR_UPSTREAM_UNREACHABLE);
}

static void
test_invalid_requests_refused_synchronously(void **state)
{
    struct ctx *c = *state;
    const char *smuggle[] = {"X-A: 1\r\nX-Blnk-Key: other"};
    const char *noname[] = {": v"};
    struct bp_upstream_req bad_method = {.method = "GET /x", .url = url_for(c, "/bin")};
    struct bp_upstream_req bad_header = {.method = "GET", .url = c->url, .headers = smuggle, .n_headers = 1};
    struct bp_upstream_req empty_name = {.method = "GET", .url = c->url, .headers = noname, .n_headers = 1};
    struct bp_upstream_req no_url = {.method = "GET"};
    struct result r = {.ctx = c};
    struct bp_upstream_xfer *x = NULL;

    assert_int_equal(bp_upstream_send(c->u, &bad_method, on_done, &r, &x), BP_ERR_INVALID);
    assert_int_equal(bp_upstream_send(c->u, &bad_header, on_done, &r, &x), BP_ERR_INVALID);
    assert_int_equal(bp_upstream_send(c->u, &empty_name, on_done, &r, &x), BP_ERR_INVALID);
    assert_int_equal(bp_upstream_send(c->u, &no_url, on_done, &r, &x), BP_ERR_INVALID);
    assert_null(x);
    assert_int_equal(bp_upstream_inflight(c->u), 0);
    assert_false(wait_for(c, &c->completed, 1, 100));
    assert_int_equal(r.calls, 0);
    assert_int_equal(c->srv.n_reqs, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_sends_exact_headers_and_nothing_else, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caller_accept_and_user_agent_pass_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body_with_nul_is_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_without_content_type_gets_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods_put_patch_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_five_mib_each_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_headers_drop_hop_by_hop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_response_and_trailers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interim_1xx_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_encoding_passes_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuses_one_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_handle_behaves_like_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_handle_after_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_is_unreachable_and_secret_not_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_strings_may_die_after_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_server_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_over_cap_is_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_prevents_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_other_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_client_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_transfers_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twenty_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sent_body_is_never_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodyless_write_is_never_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_urls_are_reported_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests_refused_synchronously, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, NULL);
}
