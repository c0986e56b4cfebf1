/* The protocol layer through its interface: a server with a test handler and test hooks, and a
 * client on a real socket. Responses (complete and streamed, with flow control), finish hooks
 * and their order, a hold released from another thread, a held stream that waits paused until
 * its early release, a stream that cannot complete, a client gone mid-stream, an abort that
 * still finishes, body reading and its limit, pipelining, malformed heads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config/config.h"
#include "http/http-int.h"
#include "http/http.h"
#include "http/parser.h"
#include "lib/clock.h"

/* ---- what the handler does, set per test ---- */

enum mode {
    ANSWER,        /* 200 with the path as the body */
    STREAM,        /* chunks "ab", "cde" */
    STREAM_BIG,    /* BIG_TOTAL bytes in BIG_PIECE pieces, pausing when the client is behind */
    READ_BODY,     /* reads the body (limit BODY_LIMIT) and echoes it */
    WAIT,          /* never answers: the client leaves */
    WAIT_COUNT,    /* as WAIT, and then counts, on the loop, the connections holding a read buffer */
    READ_BODY_LATER, /* asks for the body (limit BODY_LIMIT) after on_head returned, and echoes it */
    STREAM_ABORT,  /* "ab", then the stream cannot complete */
    TRICKLE,       /* TRICKLE_PIECE bytes every 2 ms, up to TRICKLE_MAX pieces */
};

#define TRICKLE_PIECE 512
#define TRICKLE_MAX 2000

#define BIG_PIECE (64 * 1024)
#define BIG_TOTAL (16 * 1024 * 1024)
#define BODY_LIMIT 100

static enum mode mode;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* What the hooks and the handler saw (under mu). */
static int finishes;
static int waiting;
static char hook_order[16];
static int last_status;
static const char *last_handler;
static uint64_t last_bytes_out;
static bp_err last_outcome;
static bool aborted;
static atomic_bool hold_next;
static struct bp_http_hold *held;
static size_t big_sent;
static size_t max_pending;
static int writable_calls;
static atomic_bool paused_once;
static struct bp_http_hold *early_hold; /* the stream's hold, taken when it started */
static struct event_base *worker_base;
static struct event *trickle_ev;
static struct bp_http_req *trickle_req;
static int trickled;
static char seen_body[BODY_LIMIT + 1];
static bp_err seen_body_rc;
static int counted;               /* WAIT_COUNT: counts made */
static int asked_later;           /* READ_BODY_LATER: bodies asked for */
static size_t conns_with_inbuf;   /* at the last count: of those, holding a read buffer */
static size_t conns_counted;      /* at the last count: connections whose handler has the request */
static char clients_seen[8];      /* at the last count: each waiting request's X-Client, in turn */

static struct bp_server *server;

static void
signal_all(void)
{
    pthread_cond_broadcast(&cond);
}

static void
stream_big(struct bp_http_req *req)
{
    static char piece[BIG_PIECE];

    while (big_sent < BIG_TOTAL) {
        bool more = bp_http_resp_write(req, piece, sizeof(piece));
        size_t pending;
        big_sent += sizeof(piece);
        pending = bp_http__conn_pending(req->conn);
        if (pending > max_pending) {
            max_pending = pending;
        }
        if (!more) {
            atomic_store(&paused_once, true);
            return; /* on_writable goes on */
        }
    }
    bp_http_resp_end(req);
}

/* READ_BODY_LATER, on the worker's loop once on_head has returned. */
static void
read_body_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bp_http_req_read_body(arg, BODY_LIMIT);
    pthread_mutex_lock(&mu);
    asked_later++;
    signal_all();
    pthread_mutex_unlock(&mu);
}

/* WAIT_COUNT, on the worker's loop: how many live connections hold a read buffer. */
static void
count_inbufs(evutil_socket_t fd, short what, void *arg)
{
    size_t with = 0;
    size_t all = 0;
    (void)fd;
    (void)what;
    (void)arg;

    char seen[sizeof(clients_seen)] = "";

    for (const struct bp_conn *c = server->workers[0]->conns; c != NULL; c = c->next) {
        const struct bp_http_header *h;
        if (c->req.state != BP_REQ_HANDLER) {
            continue; /* a connection of an earlier test, still closing */
        }
        all++;
        with += c->in.data != NULL;
        h = bp_http_head_find(c->req.head, "X-Client", NULL);
        if (h != NULL && h->value_len == 1 && strlen(seen) < sizeof(seen) - 1) {
            strncat(seen, h->value, 1);
        }
    }
    pthread_mutex_lock(&mu);
    memcpy(clients_seen, seen, sizeof(seen));
    conns_with_inbuf = with;
    conns_counted = all;
    counted++;
    signal_all();
    pthread_mutex_unlock(&mu);
}

static void
on_head(void *self, struct bp_http_req *req)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    (void)self;

    switch (mode) {
    case ANSWER: {
        struct bp_http_resp r = {.status = 200, .content_type = "text/plain"};
        bp_http_respond(req, &r, h->path, h->path_len);
        break;
    }
    case STREAM: {
        struct bp_http_resp r = {.status = 200, .length = BP_HTTP_LENGTH_UNKNOWN};
        bp_http_resp_start(req, &r);
        assert_true(bp_http_resp_write(req, "ab", 2));
        assert_true(bp_http_resp_write(req, "cde", 3));
        bp_http_resp_end(req);
        break;
    }
    case STREAM_BIG: {
        struct bp_http_resp r = {.status = 200, .length = BP_HTTP_LENGTH_UNKNOWN};
        big_sent = 0;
        bp_http_resp_start(req, &r);
        pthread_mutex_lock(&mu);
        early_hold = bp_http_req_hold(req);
        pthread_mutex_unlock(&mu);
        stream_big(req);
        break;
    }
    case STREAM_ABORT: {
        struct bp_http_resp r = {.status = 200, .length = BP_HTTP_LENGTH_UNKNOWN};
        bp_http_resp_start(req, &r);
        assert_true(bp_http_resp_write(req, "ab", 2));
        bp_http_resp_abort(req, BP_ERR_UPSTREAM_UNREACHABLE);
        break;
    }
    case TRICKLE: {
        struct bp_http_resp r = {.status = 200, .length = BP_HTTP_LENGTH_UNKNOWN};
        struct timeval tv = {0, 2000};
        bp_http_resp_start(req, &r);
        trickle_req = req;
        trickled = 0;
        evtimer_add(trickle_ev, &tv);
        break;
    }
    case READ_BODY:
        bp_http_req_read_body(req, BODY_LIMIT);
        break;
    case WAIT:
        pthread_mutex_lock(&mu);
        waiting++;
        signal_all();
        pthread_mutex_unlock(&mu);
        break;
    case READ_BODY_LATER: {
        struct timeval now = {0, 0};
        assert_int_equal(event_base_once(worker_base, -1, EV_TIMEOUT, read_body_later, req, &now), 0);
        break;
    }
    case WAIT_COUNT: {
        /* Counted after this dispatch returns, as a connection stands while its handler waits. */
        struct timeval now = {0, 0};
        assert_int_equal(event_base_once(worker_base, -1, EV_TIMEOUT, count_inbufs, NULL, &now), 0);
        break;
    }
    }
}

static void
on_body(void *self, struct bp_http_req *req, bp_err rc)
{
    struct bp_http_resp r = {.status = rc == BP_OK ? 200 : 413};
    size_t len = 0;
    const char *body = bp_http_req_body(req, &len);
    (void)self;

    pthread_mutex_lock(&mu);
    seen_body_rc = rc;
    memset(seen_body, 0, sizeof(seen_body));
    if (rc == BP_OK && len > 0) {
        memcpy(seen_body, body, len < BODY_LIMIT ? len : BODY_LIMIT);
    }
    pthread_mutex_unlock(&mu);
    bp_http_respond(req, &r, rc == BP_OK ? body : "too large", rc == BP_OK ? len : 9);
}

/* TRICKLE: one piece per tick, so that nothing waits in the proxy when a write fails. */
static void
trickle_tick(evutil_socket_t fd, short what, void *arg)
{
    static const char piece[TRICKLE_PIECE];
    struct timeval tv = {0, 2000};
    (void)fd;
    (void)what;
    (void)arg;

    if (++trickled >= TRICKLE_MAX) {
        bp_http_resp_end(trickle_req);
        trickle_req = NULL;
        return;
    }
    bp_http_resp_write(trickle_req, piece, sizeof(piece));
    evtimer_add(trickle_ev, &tv);
}

static bp_err
worker_init(void *self, struct event_base *base, const struct bp_config *c, void **out)
{
    (void)self;
    (void)c;
    worker_base = base;
    trickle_ev = evtimer_new(base, trickle_tick, NULL);
    *out = NULL;
    return BP_OK;
}

static void
worker_fini(void *self, void *wstate)
{
    (void)self;
    (void)wstate;
    event_free(trickle_ev);
    trickle_ev = NULL;
}

static bool
on_abort(void *self, struct bp_http_req *req)
{
    (void)self;
    if (req == trickle_req) {
        event_del(trickle_ev);
        trickle_req = NULL;
    }
    bp_http_req_facts(req)->outcome = BP_ERR_CLIENT_CLOSED;
    pthread_mutex_lock(&mu);
    aborted = true;
    pthread_mutex_unlock(&mu);
    return true;
}

static void
on_writable(void *self, struct bp_http_req *req)
{
    (void)self;
    writable_calls++;
    stream_big(req);
}

static const struct bp_http_handler handler = {
    .name = "test",
    .on_head = on_head,
    .on_body = on_body,
    .on_abort = on_abort,
    .on_writable = on_writable,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
};

static void
hook_a_finish(void *self, struct bp_http_req *req, struct bp_http_hold *hold)
{
    (void)self;
    (void)req;
    assert_null(hold);
    pthread_mutex_lock(&mu);
    strncat(hook_order, "a", sizeof(hook_order) - strlen(hook_order) - 1);
    pthread_mutex_unlock(&mu);
}

static bool
hook_b_hold(void *self, struct bp_http_req *req)
{
    (void)self;
    (void)req;
    return atomic_load(&hold_next);
}

static void
hook_b_finish(void *self, struct bp_http_req *req, struct bp_http_hold *hold)
{
    const struct bp_http_facts *f = bp_http_req_facts(req);
    (void)self;

    pthread_mutex_lock(&mu);
    strncat(hook_order, "b", sizeof(hook_order) - strlen(hook_order) - 1);
    last_status = f->status;
    last_handler = f->handler;
    last_bytes_out = f->bytes_out;
    last_outcome = f->outcome;
    held = hold;
    finishes++;
    signal_all();
    pthread_mutex_unlock(&mu);
}

static const struct bp_http_route routes[] = {{"/", true, &handler, false}};
static const struct bp_http_hook hooks[] = {
    {.name = "a", .finish = hook_a_finish},
    {.name = "b", .hold = hook_b_hold, .finish = hook_b_finish},
};

/* ---- the server and a client ---- */

static struct bp_config cfg;

static int
setup(void **state)
{
    char *argv[] = {"--listen", "127.0.0.1:0", "--workers", "1"};
    struct bp_server_spec spec = {
        .cfg = &cfg,
        .routes = routes,
        .n_routes = 1,
        .hooks = hooks,
        .n_hooks = 2,
    };
    char err[512];

    (void)state;
    /* As serve does: a write to a client that is gone is an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(bp_config_load(4, argv, &cfg, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_server_new(&spec, &server, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_server_run(server, err, sizeof(err)), BP_OK);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    bp_server_stop(server);
    bp_server_free(server);
    bp_config_cleanup(&cfg);
    return 0;
}

static void
reset(enum mode m)
{
    pthread_mutex_lock(&mu);
    mode = m;
    finishes = 0;
    waiting = 0;
    counted = 0;
    asked_later = 0;
    conns_with_inbuf = 0;
    conns_counted = 0;
    hook_order[0] = '\0';
    last_status = 0;
    last_handler = NULL;
    last_bytes_out = 0;
    last_outcome = BP_OK;
    aborted = false;
    atomic_store(&hold_next, false);
    held = NULL;
    early_hold = NULL;
    max_pending = 0;
    writable_calls = 0;
    atomic_store(&paused_once, false);
    pthread_mutex_unlock(&mu);
}

/* Waits (at most 10 s) until *counter reaches n. */
static void
wait_count(const int *counter, int n)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (*counter < n) {
        if (pthread_cond_timedwait(&cond, &mu, &until) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&mu);
}

static void
wait_finishes(int n)
{
    wait_count(&finishes, n);
}

/* A connected client; rcvbuf > 0 shrinks its receive buffer first. */
static int
client_with(int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)bp_server_port(server))};
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static int
client(void)
{
    return client_with(0);
}

static void
send_all(int fd, const char *s)
{
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* Reads until `until` appears in what was read, or the peer closes, or 10 s pass. */
static size_t
read_until(int fd, char *buf, size_t cap, const char *until)
{
    size_t len = 0;

    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (until != NULL && strstr(buf, until) != NULL) {
            break;
        }
    }
    buf[len] = '\0';
    return len;
}

/* ---- the tests ---- */

static void
test_response_then_hooks_in_order(void **state)
{
    char buf[4096];
    int fd;

    (void)state;
    reset(ANSWER);
    fd = client();
    send_all(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: rid-1\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "/hello");
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Content-Type: text/plain\r\nContent-Length: 6\r\n"));
    assert_non_null(strstr(buf, "X-Request-Id: rid-1\r\n"));
    assert_null(strstr(buf, "Connection:"));
    wait_finishes(1);
    assert_string_equal(hook_order, "ab");
    assert_int_equal(last_status, 200);
    assert_string_equal(last_handler, "test");
    assert_int_equal(last_bytes_out, 6);
    close(fd);
}

static void
test_pipelined_requests_are_answered_in_order(void **state)
{
    char buf[4096];
    char *p1;
    char *p2;
    char *p3;
    int fd;

    (void)state;
    reset(ANSWER);
    fd = client();
    send_all(fd, "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    read_until(fd, buf, sizeof(buf), NULL); /* the last answer closes the connection */
    p1 = strstr(buf, "/one");
    p2 = strstr(buf, "/two");
    p3 = strstr(buf, "/three");
    assert_non_null(p1);
    assert_non_null(p2);
    assert_non_null(p3);
    assert_true(p1 < p2 && p2 < p3);
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    wait_finishes(3);
    close(fd);
}

static void
test_stream_of_unknown_length_is_chunked(void **state)
{
    char buf[4096];
    int fd;

    (void)state;
    reset(STREAM);
    fd = client();
    send_all(fd, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "\r\n0\r\n\r\n"); /* not a request id ending in 0 */
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    assert_null(strstr(buf, "Content-Length"));
    assert_non_null(strstr(buf, "\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"));
    wait_finishes(1);
    assert_int_equal(last_bytes_out, 5);
    close(fd);

    /* HTTP/1.0 has no chunked coding: the body ends with the connection. */
    reset(STREAM);
    fd = client();
    send_all(fd, "GET /s HTTP/1.0\r\n\r\n");
    read_until(fd, buf, sizeof(buf), NULL);
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_null(strstr(buf, "Transfer-Encoding"));
    assert_non_null(strstr(buf, "\r\n\r\nabcde"));
    close(fd);
}

static void
test_streamed_writer_pauses_while_client_is_behind(void **state)
{
    static char buf[1 << 20];
    size_t total = 0;
    int fd;

    (void)state;
    reset(STREAM_BIG);
    fd = client_with(4096);
    send_all(fd, "GET /big HTTP/1.0\r\n\r\n");
    /* The client reads only once the writer had to pause (at most 10 s). */
    for (int i = 0; i < 1000 && !atomic_load(&paused_once); i++) {
        usleep(10000);
    }
    assert_true(atomic_load(&paused_once));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        total += (size_t)n;
    }
    wait_finishes(1);
    assert_true(total > BIG_TOTAL); /* the head, then every body byte */
    assert_int_equal(last_bytes_out, BIG_TOTAL);
    assert_true(writable_calls >= 1);
    /* What waited in the proxy never grew past the mark plus one piece. */
    assert_true(max_pending <= BP_HTTP_WRITE_HIGH_MARK + BIG_PIECE);
    close(fd);
}

struct release_arg {
    struct bp_http_hold *hold;
};

static void *
release_thread(void *arg)
{
    bp_http_hold_release(((struct release_arg *)arg)->hold);
    return NULL;
}

static void
test_held_response_waits_for_release_from_another_thread(void **state)
{
    char buf[4096];
    struct release_arg ra;
    pthread_t t;
    ssize_t n;
    int fd;

    (void)state;
    reset(ANSWER);
    atomic_store(&hold_next, true);
    fd = client();
    send_all(fd, "GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_finishes(1);
    assert_non_null(held);
    /* The hooks ran and the response is complete, but not one byte of it left: had it been
     * written, loopback would have delivered it already. */
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    assert_int_equal(n, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    ra.hold = held;
    pthread_create(&t, NULL, release_thread, &ra);
    pthread_join(t, NULL);
    read_until(fd, buf, sizeof(buf), "/held");
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    /* The connection goes on to the next request. */
    atomic_store(&hold_next, false);
    send_all(fd, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "/next");
    assert_non_null(strstr(buf, "/next"));
    /* Its bytes can reach the client before its finish hooks ran on the worker: wait for them,
     * or they would count in the next test's finishes. */
    wait_finishes(2);
    close(fd);
}

/* A held stream: its writer pauses at the mark (nothing leaves while held), and once the hold is
 * released, before the stream's end, the bytes go and the writer goes on; the finish then has
 * no hold left to release. */
static void
test_held_stream_waits_paused_until_released(void **state)
{
    static char buf[1 << 20];
    struct release_arg ra;
    struct bp_http_hold *h;
    size_t total = 0;
    pthread_t t;
    ssize_t n;
    int fd;

    (void)state;
    reset(STREAM_BIG);
    atomic_store(&hold_next, true);
    fd = client_with(4096);
    send_all(fd, "GET /big HTTP/1.0\r\n\r\n");
    for (int i = 0; i < 1000 && !atomic_load(&paused_once); i++) {
        usleep(10000);
    }
    assert_true(atomic_load(&paused_once));
    pthread_mutex_lock(&mu);
    h = early_hold;
    assert_true(max_pending <= BP_HTTP_WRITE_HIGH_MARK + BIG_PIECE);
    assert_int_equal(finishes, 0);
    pthread_mutex_unlock(&mu);
    assert_non_null(h);
    n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    assert_int_equal(n, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    ra.hold = h;
    pthread_create(&t, NULL, release_thread, &ra);
    pthread_join(t, NULL);
    for (;;) {
        n = read(fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        total += (size_t)n;
    }
    wait_finishes(1);
    assert_true(total > BIG_TOTAL);
    assert_int_equal(last_bytes_out, BIG_TOTAL);
    assert_null(held);
    assert_true(max_pending <= BP_HTTP_WRITE_HIGH_MARK + BIG_PIECE);
    close(fd);
}

/* A stream that cannot complete: what was queued goes out, the end does not, the connection
 * closes, and the hooks see the outcome. */
static void
test_stream_abort_closes_without_the_end(void **state)
{
    char buf[4096];
    const char *body;
    int fd;

    (void)state;
    reset(STREAM_ABORT);
    fd = client();
    send_all(fd, "GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
    read_until(fd, buf, sizeof(buf), NULL); /* until the connection closes */
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "2\r\nab\r\n"); /* no last chunk */
    wait_finishes(1);
    assert_int_equal(last_status, 200);
    assert_int_equal(last_outcome, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_false(aborted);
    close(fd);
}

/* The client half-closed after its request (so it is still owed the answer) and then went away:
 * the first write that fails stops the stream at once (the handler hears it), even when nothing
 * was waiting to be written, instead of writing the rest into a dead socket. */
static void
test_client_gone_mid_stream_stops_it(void **state)
{
    struct linger reset_on_close = {1, 0};
    char buf[4096];
    int fd;

    (void)state;
    reset(TRICKLE);
    fd = client();
    send_all(fd, "GET /t HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(fd, SHUT_WR);
    read_until(fd, buf, sizeof(buf), "\r\n\r\n");
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close));
    close(fd);
    wait_finishes(1);
    assert_int_equal(finishes, 1);
    assert_true(aborted);
    assert_true(trickled < TRICKLE_MAX);
}

static void
test_client_leaving_aborts_and_still_finishes(void **state)
{
    struct linger reset_on_close = {1, 0};
    int fd;

    (void)state;
    reset(WAIT);
    fd = client();
    send_all(fd, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    /* Wait until the handler has it, then leave with a reset: a half-close (FIN) would still be
     * owed its answer. */
    wait_count(&waiting, 1);
    assert_int_equal(waiting, 1);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close));
    close(fd);
    wait_finishes(1);
    assert_true(aborted);
    assert_int_equal(last_status, 499);
    assert_int_equal(last_outcome, BP_ERR_CLIENT_CLOSED);
}

/* A request whose handler waits (for Core, for another thread) holds no read buffer once its
 * bytes are consumed: 256 connections waiting on Core must not hold 256 of them. And it keeps
 * its own headers while other requests' heads are parsed (a worker parses into one room). */
static void
test_waiting_request_holds_no_read_buffer(void **state)
{
    struct linger reset_on_close = {1, 0};
    int fds[3];
    char req[128];
    char seen[sizeof(clients_seen)];

    (void)state;
    reset(WAIT_COUNT);
    for (int i = 0; i < 3; i++) {
        fds[i] = client();
        snprintf(req, sizeof(req), "GET /wait HTTP/1.1\r\nHost: x\r\nX-Client: %d\r\n\r\n", i);
        send_all(fds[i], req);
        wait_count(&counted, i + 1);
        assert_int_equal(counted, i + 1);
        assert_int_equal(conns_counted, (size_t)i + 1);
        assert_int_equal(conns_with_inbuf, 0);
    }
    /* Newest first in the worker's list. */
    pthread_mutex_lock(&mu);
    memcpy(seen, clients_seen, sizeof(seen));
    pthread_mutex_unlock(&mu);
    assert_string_equal(seen, "210");
    for (int i = 0; i < 3; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof(reset_on_close));
        close(fds[i]);
    }
    wait_finishes(3);
    assert_int_equal(finishes, 3);
}

/* A handler may ask for the body after on_head returned (work started elsewhere): the request's
 * empty read buffer went back to the pool meanwhile, and the body is read into a new one. */
static void
test_body_asked_for_after_on_head(void **state)
{
    static const char *const heads[] = {
        "POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
        "POST /later HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    static const char *const bodies[] = {"hello", "5\r\nhello\r\n0\r\n\r\n"};
    char buf[4096];

    (void)state;
    for (int i = 0; i < 2; i++) {
        int fd;

        reset(READ_BODY_LATER);
        fd = client();
        send_all(fd, heads[i]);
        wait_count(&asked_later, 1);
        assert_int_equal(asked_later, 1);
        send_all(fd, bodies[i]);
        read_until(fd, buf, sizeof(buf), "hello");
        assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
        assert_non_null(strstr(buf, "\r\n\r\nhello"));
        wait_finishes(1);
        close(fd);
    }
}

static void
test_body_is_read_within_its_limit(void **state)
{
    char buf[4096];
    int fd;

    (void)state;
    reset(READ_BODY);
    fd = client();
    send_all(fd, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    read_until(fd, buf, sizeof(buf), "0123456789");
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_string_equal(seen_body, "0123456789");
    /* Chunked, on the same connection. */
    send_all(fd, "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "abcde");
    assert_non_null(strstr(buf, "abcde"));
    close(fd);

    /* Over the limit: the handler hears it before any body byte is read, and the connection
     * closes after its answer (the body is still on the wire). */
    reset(READ_BODY);
    fd = client();
    send_all(fd, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "too large");
    assert_non_null(strstr(buf, "HTTP/1.1 413 Content Too Large\r\n"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_int_equal(seen_body_rc, BP_ERR_PAYLOAD_TOO_LARGE);
    close(fd);
}

static void
test_malformed_head_gets_a_plain_400_and_finishes(void **state)
{
    char buf[4096];
    int fd;

    (void)state;
    reset(ANSWER);
    fd = client();
    send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    read_until(fd, buf, sizeof(buf), NULL);
    assert_string_equal(buf, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    wait_finishes(1);
    assert_int_equal(last_status, 400);
    assert_null(last_handler);
    assert_int_equal(last_outcome, BP_ERR_MALFORMED);
    close(fd);
}

/* ---- framing alone ---- */

static void
check_head(const struct bp_http__head_fmt *f, const char *want, bool want_chunked, bool want_close)
{
    char out[1024];
    bool chunked = !want_chunked;
    bool close = !want_close;
    size_t n = bp_http__format_head(f, out, sizeof(out), &chunked, &close);

    out[n] = '\0';
    assert_string_equal(out, want);
    assert_int_equal(chunked, want_chunked);
    assert_int_equal(close, want_close);
}

static void
test_head_framing(void **state)
{
    struct bp_http__head_fmt f = {.status = 201, .content_type = "application/json", .length = 12,
                                  .request_id = "abc", .version_minor = 1};

    (void)state;
    check_head(&f, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
                   "X-Request-Id: abc\r\n\r\n", false, false);
    f.version_minor = 0;
    check_head(&f, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n"
                   "X-Request-Id: abc\r\nConnection: keep-alive\r\n\r\n", false, false);
    f.close = true;
    f.headers = "Retry-After: 1\r\nx-request-id: theirs\r\n";
    f.headers_len = strlen(f.headers);
    f.content_type = NULL;
    f.length = BP_HTTP_LENGTH_NONE;
    check_head(&f, "HTTP/1.1 201 Created\r\nRetry-After: 1\r\nx-request-id: theirs\r\nConnection: close\r\n\r\n",
               false, true);
    f = (struct bp_http__head_fmt){.status = 200, .length = BP_HTTP_LENGTH_UNKNOWN, .version_minor = 1};
    check_head(&f, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, false);
    f.version_minor = 0;
    check_head(&f, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false, true);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_framing),
        cmocka_unit_test(test_response_then_hooks_in_order),
        cmocka_unit_test(test_pipelined_requests_are_answered_in_order),
        cmocka_unit_test(test_stream_of_unknown_length_is_chunked),
        cmocka_unit_test(test_streamed_writer_pauses_while_client_is_behind),
        cmocka_unit_test(test_held_response_waits_for_release_from_another_thread),
        cmocka_unit_test(test_held_stream_waits_paused_until_released),
        cmocka_unit_test(test_stream_abort_closes_without_the_end),
        cmocka_unit_test(test_client_gone_mid_stream_stops_it),
        cmocka_unit_test(test_client_leaving_aborts_and_still_finishes),
        cmocka_unit_test(test_waiting_request_holds_no_read_buffer),
        cmocka_unit_test(test_body_asked_for_after_on_head),
        cmocka_unit_test(test_body_is_read_within_its_limit),
        cmocka_unit_test(test_malformed_head_gets_a_plain_400_and_finishes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
