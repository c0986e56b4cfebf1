/* The upstream client's keep-alive pool: reuse only after an answer that allows it, the per-host
 * connection limit (requests wait for a connection), the idle bound and timeout, host names
 * resolved on the loop, and the one permitted retry: a kept-alive connection Core had already
 * closed, found dead before a byte of the request went out. A small HTTP/1.1 server runs on the
 * same event_base (127.0.0.1, port 0). */
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

#define MAX_HELD 8

struct srv;

struct srv_conn {
    struct srv *s;
    struct bufferevent *bev;
    struct srv_conn *next;
    int id;
};

struct srv {
    struct event_base *base;
    struct evconnlistener *lis;
    int port;
    int n_conns;
    int n_closed; /* closes the client made, seen as EOF */
    int n_reqs;
    int last_conn_id;
    struct srv_conn *conns;
    struct srv_conn *held[MAX_HELD];
    int n_held;
    int hold_until; /* /hold answers once this many are waiting */
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
put(struct srv_conn *c, const char *text)
{
    evbuffer_add(bufferevent_get_output(c->bev), text, strlen(text));
}

static void
srv_handle(struct srv_conn *c, const char *target)
{
    struct srv *s = c->s;

    if (strcmp(target, "/ok") == 0) {
        put(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(target, "/conn-close") == 0) {
        put(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(target, "/http10") == 0) {
        put(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(target, "/trailing-junk") == 0) {
        put(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK");
    } else if (strcmp(target, "/hold") == 0) {
        s->held[s->n_held++] = c;
        if (s->n_held == s->hold_until) {
            for (int i = 0; i < s->n_held; i++) {
                if (s->held[i] != NULL) {
                    put(s->held[i], "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld");
                }
            }
            s->n_held = 0;
        }
    } else {
        put(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
}

static void
srv_on_read(struct bufferevent *bev, void *arg)
{
    struct srv_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    for (;;) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        char line[512];
        char target[256];
        size_t n;

        if (end.pos < 0) {
            return;
        }
        n = (size_t)end.pos + 4 < sizeof(line) - 1 ? (size_t)end.pos + 4 : sizeof(line) - 1;
        evbuffer_copyout(in, line, n);
        line[n] = '\0';
        evbuffer_drain(in, (size_t)end.pos + 4);
        assert_int_equal(sscanf(line, "%*s %255s", target), 1);
        c->s->n_reqs++;
        c->s->last_conn_id = c->id;
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
    c->id = ++s->n_conns;
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, srv_on_read, NULL, srv_on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->next = s->conns;
    s->conns = c;
}

/* Closes every server connection now, not when the loop next runs (bufferevent_free defers the
 * close). With rst, as a crashed Core would (RST, not FIN). */
static void
srv_close_all(struct srv *s, bool rst)
{
    while (s->conns != NULL) {
        int fd = bufferevent_getfd(s->conns->bev);
        if (rst) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        bufferevent_setfd(s->conns->bev, -1);
        close(fd);
        srv_conn_free(s->conns);
    }
}

/* ---- client side ----------------------------------------------------------------------------- */

struct ctx {
    struct event_base *base;
    struct srv srv;
    struct bp_upstream *u;
    int done;
    int ok;
    bp_err last_rc;
};

static void
on_done(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct ctx *c = arg;

    c->last_rc = rc;
    if (rc == BP_OK && resp->status == 200) {
        c->ok++;
    }
    c->done++;
}

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
send_to(struct ctx *c, const char *host, const char *path)
{
    char url[128];
    struct bp_upstream_req req = {.method = "GET", .url = url};

    snprintf(url, sizeof(url), "http://%s:%d%s", host, c->srv.port, path);
    assert_int_equal(bp_upstream_send(c->u, &req, on_done, c, NULL), BP_OK);
}

static void
get(struct ctx *c, const char *path)
{
    int target = c->done + 1;

    send_to(c, "127.0.0.1", path);
    assert_true(wait_for(c, &c->done, target, 10000));
}

static int
setup_with(void **state, const struct bp_upstream_opts *o)
{
    struct ctx *c = calloc(1, sizeof(*c));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    c->base = event_base_new();
    c->srv.base = c->base;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->srv.lis = evconnlistener_new_bind(c->base, srv_on_accept, &c->srv,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                         (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(c->srv.lis);
    assert_int_equal(getsockname(evconnlistener_get_fd(c->srv.lis), (struct sockaddr *)&sin, &len),
                     0);
    c->srv.port = ntohs(sin.sin_port);
    assert_int_equal(bp_upstream_new(c->base, o, &c->u), BP_OK);
    *state = c;
    return 0;
}

static const struct bp_upstream_opts base_opts = {
    .connect_timeout_ms = 2000,
    .total_timeout_ms = 10000,
    .max_response_bytes = 1 << 20,
};

static int
setup(void **state)
{
    return setup_with(state, &base_opts);
}

static int
setup_one_per_host(void **state)
{
    struct bp_upstream_opts o = base_opts;
    o.max_connections_per_host = 1;
    return setup_with(state, &o);
}

static int
setup_two_idle(void **state)
{
    struct bp_upstream_opts o = base_opts;
    o.max_idle_per_host = 2;
    return setup_with(state, &o);
}

static int
setup_short_idle(void **state)
{
    struct bp_upstream_opts o = base_opts;
    o.idle_timeout_ms = 100;
    return setup_with(state, &o);
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    bp_upstream_free(c->u);
    srv_close_all(&c->srv, false);
    evconnlistener_free(c->srv.lis);
    event_base_free(c->base);
    free(c);
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* An answer that says the connection ends (Connection: close, HTTP/1.0 without keep-alive) or
 * that is followed by bytes nobody asked for leaves no connection to reuse. */
static void
test_reused_only_after_a_clean_answer(void **state)
{
    struct ctx *c = *state;
    static const char *const paths[] = {"/conn-close", "/http10", "/trailing-junk"};

    for (size_t i = 0; i < 3; i++) {
        int used;
        get(c, paths[i]);
        assert_int_equal(c->last_rc, BP_OK);
        used = c->srv.last_conn_id;
        get(c, "/ok");
        assert_int_equal(c->last_rc, BP_OK);
        /* The next request needed a connection of its own. */
        assert_true(c->srv.last_conn_id != used);
        assert_int_equal(c->srv.last_conn_id, c->srv.n_conns);
    }
    /* After a clean answer the connection is reused. */
    {
        int used = c->srv.last_conn_id;
        get(c, "/ok");
        assert_int_equal(c->srv.last_conn_id, used);
    }
}

static void
test_per_host_limit_makes_requests_wait(void **state)
{
    struct ctx *c = *state;

    for (int i = 0; i < 3; i++) {
        send_to(c, "127.0.0.1", "/ok");
    }
    assert_int_equal(bp_upstream_inflight(c->u), 3);
    assert_true(wait_for(c, &c->done, 3, 10000));
    assert_int_equal(c->ok, 3);
    assert_int_equal(c->srv.n_conns, 1);
    assert_int_equal(c->srv.n_reqs, 3);
}

static void
test_idle_connections_are_bounded(void **state)
{
    struct ctx *c = *state;

    c->srv.hold_until = 5;
    for (int i = 0; i < 5; i++) {
        send_to(c, "127.0.0.1", "/hold");
    }
    assert_true(wait_for(c, &c->done, 5, 10000));
    assert_int_equal(c->ok, 5);
    assert_int_equal(c->srv.n_conns, 5);
    /* Only two stay in the pool; the other three are closed. */
    assert_true(wait_for(c, &c->srv.n_closed, 3, 5000));
    assert_false(wait_for(c, &c->srv.n_closed, 4, 200));
}

static void
test_idle_timeout_closes(void **state)
{
    struct ctx *c = *state;

    get(c, "/ok");
    assert_int_equal(c->last_rc, BP_OK);
    assert_true(wait_for(c, &c->srv.n_closed, 1, 5000));
    get(c, "/ok");
    assert_int_equal(c->last_rc, BP_OK);
    assert_int_equal(c->srv.n_conns, 2);
}

/* Core reset the kept-alive connection and the loop has not looked yet: the first write fails
 * with nothing sent, and the request goes on a new connection, reaching Core once. */
static void
test_connection_found_dead_before_writing_is_replaced(void **state)
{
    struct ctx *c = *state;

    get(c, "/ok");
    assert_int_equal(c->srv.n_conns, 1);
    srv_close_all(&c->srv, true);
    get(c, "/ok");
    assert_int_equal(c->last_rc, BP_OK);
    assert_int_equal(c->srv.n_conns, 2);
    assert_int_equal(c->srv.n_reqs, 2);
    assert_int_equal(c->srv.last_conn_id, 2);
}

/* Core closed (FIN) a connection that sat idle over a second, and the loop has not looked: the
 * check made when it leaves the pool sees the close, and a new connection carries the request. */
static void
test_long_idle_connection_is_checked_before_use(void **state)
{
    struct ctx *c = *state;

    get(c, "/ok");
    srv_close_all(&c->srv, false);
    /* Without running the loop: the client cannot have seen the close yet. */
    usleep(1100 * 1000);
    get(c, "/ok");
    assert_int_equal(c->last_rc, BP_OK);
    assert_int_equal(c->srv.n_conns, 2);
    assert_int_equal(c->srv.n_reqs, 2);
}

/* A host name is resolved on the loop (here from /etc/hosts) and its connections pooled. */
static void
test_host_name_is_resolved_and_pooled(void **state)
{
    struct ctx *c = *state;

    send_to(c, "localhost", "/ok");
    assert_true(wait_for(c, &c->done, 1, 10000));
    assert_int_equal(c->last_rc, BP_OK);
    send_to(c, "localhost", "/ok");
    assert_true(wait_for(c, &c->done, 2, 10000));
    assert_int_equal(c->ok, 2);
    assert_int_equal(c->srv.n_conns, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reused_only_after_a_clean_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_host_limit_makes_requests_wait, setup_one_per_host,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_connections_are_bounded, setup_two_idle,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout_closes, setup_short_idle, teardown),
        cmocka_unit_test_setup_teardown(test_connection_found_dead_before_writing_is_replaced,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_idle_connection_is_checked_before_use, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_host_name_is_resolved_and_pooled, setup, teardown),
    };

    if (bp_upstream_global_init() != BP_OK) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
