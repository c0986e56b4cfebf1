/* The upstream client's metrics: each kind of failed transfer is counted under its kind, and
 * blnkproxy_upstream_connections follows the sockets the client opens and closes (kept-alive ones
 * included) back to 0 when the client is freed. Runs the real client against small servers on
 * the same event_base (127.0.0.1, port 0). */
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

#include "lib/buf.h"
#include "metrics/metrics.h"
#include "upstream/upstream.h"

/* How the server treats a request once its head has arrived. */
enum srv_mode {
    SRV_ANSWER, /* 200 with a 2-byte body, kept alive */
    SRV_BIG,    /* 200 with a 4 KiB body */
    SRV_CLOSE,  /* closes without a byte */
    SRV_SILENT, /* never answers */
    SRV_PLAIN,  /* answers the first bytes of anything (a TLS hello too) in plain HTTP */
};

struct srv_conn {
    struct bufferevent *bev;
    struct srv_conn *next;
};

struct ctx {
    struct event_base *base;
    struct evconnlistener *lis;
    int port;
    enum srv_mode mode;
    int accepted;
    struct srv_conn *conns;
    struct bp_upstream *u;
    int done;
    bp_err last_rc;
    int last_status;
};

static void
conn_close(struct ctx *c, struct bufferevent *bev)
{
    for (struct srv_conn **pp = &c->conns; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->bev == bev) {
            struct srv_conn *dead = *pp;
            *pp = dead->next;
            bufferevent_free(dead->bev);
            free(dead);
            return;
        }
    }
}

static void
srv_on_read(struct bufferevent *bev, void *arg)
{
    struct ctx *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    static char big[4096];

    if (c->mode == SRV_PLAIN) {
        evbuffer_drain(in, evbuffer_get_length(in));
        bufferevent_write(bev, "HTTP/1.1 400 Bad Request\r\n\r\n", 28);
        return;
    }
    if (end.pos < 0) {
        return;
    }
    /* Requests in these tests are bodiless GETs. */
    evbuffer_drain(in, (size_t)end.pos + 4);
    switch (c->mode) {
    case SRV_ANSWER:
        bufferevent_write(bev, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40);
        break;
    case SRV_BIG:
        memset(big, 'x', sizeof(big));
        bufferevent_write(bev, "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n", 41);
        bufferevent_write(bev, big, sizeof(big));
        break;
    case SRV_CLOSE:
        conn_close(c, bev);
        break;
    case SRV_SILENT:
    case SRV_PLAIN:
        break;
    }
}

static void
srv_on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        conn_close(arg, bev);
    }
}

static void
srv_on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct ctx *c = arg;
    struct srv_conn *sc = calloc(1, sizeof(*sc));

    c->accepted++;
    sc->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(sc->bev, srv_on_read, NULL, srv_on_event, c);
    bufferevent_enable(sc->bev, EV_READ | EV_WRITE);
    sc->next = c->conns;
    c->conns = sc;
}

static void
on_done(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct ctx *c = arg;

    c->last_rc = rc;
    c->last_status = resp != NULL ? resp->status : 0;
    c->done++;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* Sends one GET and runs the loop (bounded) until its callback ran. */
static void
get(struct ctx *c, const char *scheme, int port)
{
    char url[128];
    struct bp_upstream_req req = {.method = "GET", .url = url};
    int target = c->done + 1;
    bool expired = false;
    struct event *t = evtimer_new(c->base, on_deadline, &expired);
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};

    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/x", scheme, port);
    assert_int_equal(bp_upstream_send(c->u, &req, on_done, c, NULL), BP_OK);
    evtimer_add(t, &tv);
    while (c->done < target && !expired) {
        event_base_loop(c->base, EVLOOP_ONCE);
    }
    event_free(t);
    assert_int_equal(c->done, target);
}

/* Turns the loop a few times so that closes the peer made are seen. */
static void
spin(struct ctx *c, int ms)
{
    bool expired = false;
    struct event *t = evtimer_new(c->base, on_deadline, &expired);
    struct timeval tv = {.tv_sec = 0, .tv_usec = ms * 1000};

    evtimer_add(t, &tv);
    while (!expired) {
        event_base_loop(c->base, EVLOOP_ONCE);
    }
    event_free(t);
}

static long long
metric(const char *series)
{
    struct bp_buf b;
    size_t n = strlen(series);
    long long v = -1;

    bp_buf_init(&b, 1 << 20);
    bp_metrics_render(&b);
    for (const char *p = b.data; (p = strstr(p, series)) != NULL; p++) {
        if ((p == b.data || p[-1] == '\n') && p[n] == ' ') {
            v = strtoll(p + n + 1, NULL, 10);
            break;
        }
    }
    bp_buf_cleanup(&b);
    return v;
}

static long long
errors(const char *kind)
{
    char series[96];

    snprintf(series, sizeof(series), "blnkproxy_upstream_errors_total{kind=\"%s\"}", kind);
    return metric(series);
}

static int
setup_opts(void **state, size_t max_response_bytes, int64_t total_timeout_ms)
{
    struct ctx *c = calloc(1, sizeof(*c));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    struct bp_upstream_opts o = {
        .connect_timeout_ms = 2000,
        .total_timeout_ms = total_timeout_ms,
        .max_response_bytes = max_response_bytes,
    };

    assert_int_equal(bp_metrics_init(1), BP_OK);
    bp_metrics_bind_thread(0);
    c->base = event_base_new();
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->lis = evconnlistener_new_bind(c->base, srv_on_accept, c, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(c->lis);
    assert_int_equal(getsockname(evconnlistener_get_fd(c->lis), (struct sockaddr *)&sin, &len), 0);
    c->port = ntohs(sin.sin_port);
    assert_int_equal(bp_upstream_new(c->base, &o, &c->u), BP_OK);
    *state = c;
    return 0;
}

static int
setup(void **state)
{
    return setup_opts(state, 1 << 20, 5000);
}

static int
setup_small(void **state)
{
    return setup_opts(state, 1024, 300);
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    bp_upstream_free(c->u);
    /* Every socket the client opened has been closed (and counted down). */
    assert_int_equal(metric("blnkproxy_upstream_connections"), 0);
    while (c->conns != NULL) {
        conn_close(c, c->conns->bev);
    }
    evconnlistener_free(c->lis);
    event_base_free(c->base);
    free(c);
    bp_metrics_shutdown();
    return 0;
}

static int
closed_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    close(fd); /* bound, never listened: connecting is refused */
    return port;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void
test_kept_alive_connection_is_counted_once(void **state)
{
    struct ctx *c = *state;

    c->mode = SRV_ANSWER;
    get(c, "http", c->port);
    assert_int_equal(c->last_rc, BP_OK);
    assert_int_equal(c->last_status, 200);
    assert_int_equal(metric("blnkproxy_upstream_connections"), 1);
    get(c, "http", c->port);
    get(c, "http", c->port);
    assert_int_equal(c->accepted, 1);
    assert_int_equal(metric("blnkproxy_upstream_connections"), 1);
    for (const char *const *k = (const char *const[]){"connect", "timeout", "reset", "tls", "other", NULL};
         *k != NULL; k++) {
        assert_int_equal(errors(*k), 0);
    }
}

static void
test_refused_connect_is_connect(void **state)
{
    struct ctx *c = *state;

    get(c, "http", closed_port());
    assert_int_equal(c->last_rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(errors("connect"), 1);
    assert_int_equal(errors("reset"), 0);
    /* The failed socket is closed, not leaked in the gauge. */
    assert_int_equal(metric("blnkproxy_upstream_connections"), 0);
}

static void
test_close_without_answer_is_reset(void **state)
{
    struct ctx *c = *state;

    c->mode = SRV_CLOSE;
    get(c, "http", c->port);
    assert_int_equal(c->last_rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(errors("reset"), 1);
    assert_int_equal(errors("connect"), 0);
    assert_int_equal(metric("blnkproxy_upstream_connections"), 0);
}

static void
test_tls_to_plain_server_is_tls(void **state)
{
    struct ctx *c = *state;

    c->mode = SRV_PLAIN; /* the TLS hello is answered with plain text */
    get(c, "https", c->port);
    assert_int_equal(c->last_rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(errors("tls"), 1);
    assert_int_equal(errors("reset"), 0);
}

static void
test_too_large_is_other(void **state)
{
    struct ctx *c = *state;

    c->mode = SRV_BIG;
    get(c, "http", c->port);
    assert_int_equal(c->last_rc, BP_ERR_UPSTREAM_TOO_LARGE);
    assert_int_equal(errors("other"), 1);
    assert_int_equal(errors("reset"), 0);
}

static void
test_silent_server_is_timeout(void **state)
{
    struct ctx *c = *state;

    c->mode = SRV_SILENT;
    get(c, "http", c->port);
    assert_int_equal(c->last_rc, BP_ERR_UPSTREAM_TIMEOUT);
    assert_int_equal(errors("timeout"), 1);
    assert_int_equal(errors("other"), 0);
    spin(c, 20);
}

static void
test_cancelled_transfer_is_not_an_error(void **state)
{
    struct ctx *c = *state;
    struct bp_upstream_req req = {.method = "GET", .url = NULL};
    struct bp_upstream_xfer *x = NULL;
    char url[96];

    c->mode = SRV_SILENT;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", c->port);
    req.url = url;
    assert_int_equal(bp_upstream_send(c->u, &req, on_done, c, &x), BP_OK);
    spin(c, 50);
    bp_upstream_cancel(x);
    spin(c, 20);
    assert_int_equal(c->done, 0);
    for (const char *const *k = (const char *const[]){"connect", "timeout", "reset", "tls", "other", NULL};
         *k != NULL; k++) {
        assert_int_equal(errors(*k), 0);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kept_alive_connection_is_counted_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_connect_is_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_without_answer_is_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_to_plain_server_is_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_is_other, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_is_timeout, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_transfer_is_not_an_error, setup, teardown),
    };
    if (bp_upstream_global_init() != BP_OK) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
