/* upstream_load: measures what the upstream client (src/upstream) costs per request, without the
 * rest of the proxy. Not a test and not built by default:
 *   cmake --build build --target upstream_load
 *
 *   upstream_load serve
 *       A fake Core on 127.0.0.1 (port printed on stdout as "port N"): keep-alive, answers
 *       GET /ledgers 200 and POST /transactions 201 with the canned JSON of
 * bench/nginx.conf.template, with nginx's header set. Runs until SIGTERM or SIGINT. upstream_load
 * client URL N CONC METHOD [HEADER...] Sends N requests (METHOD GET or POST; POST carries
 * post.lua's body) with CONC in flight at a time through one bp_upstream on one event_base, with
 * the header lines the proxy sends Core (plus any HEADER given). Prints "ok N failed M" and exits 0
 * only if all succeeded.
 *
 * bench/upstream_profile.sh runs it under callgrind, strace and valgrind to get instructions,
 * syscalls and allocations per request (the difference between two runs of different N, so
 * start-up costs cancel out). The client can also be pointed at blnkproxy (URL with /proxy/…,
 * HEADER "Authorization: Bearer …") to load the whole proxy. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
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

#include "upstream/upstream.h"

#define MAX_EXTRA_HEADERS 16

static const char ledgers_body[] =
    "[{\"ledger_id\":\"ldg_0b1b8f3e-5c0a-4c1e-9d6f-2f3c1a9e7b10\",\"name\":\"General Ledger\","
    "\"created_at\":\"2024-01-01T00:00:00Z\",\"meta_data\":{}},{\"ledger_id\":"
    "\"ldg_7d2c4a61-8e3b-4f05-a1c9-6b5d0e2f4c38\",\"name\":\"Customer Wallets\",\"created_at\":"
    "\"2024-01-02T00:00:00Z\",\"meta_data\":{\"region\":\"eu\"}}]";
static const char tx_body[] =
    "{\"transaction_id\":\"txn_5f0c2d9a-3b7e-4e8f-9a1d-0c6b2e4f8a17\",\"status\":\"QUEUED\","
    "\"amount\":750,\"precision\":100,\"currency\":\"USD\",\"source\":\"@world\",\"destination\":"
    "\"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3\",\"reference\":\"ref_bench\",\"description\":"
    "\"bench\",\"meta_data\":{},\"created_at\":\"2024-01-01T00:00:00Z\"}";
static const char post_body[] =
    "{\"amount\":750,\"currency\":\"USD\",\"source\":\"@world\","
    "\"destination\":\"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3\","
    "\"description\":\"bench transfer\",\"allow_overdraft\":true,"
    "\"meta_data\":{\"order_id\":\"ord_123456\",\"channel\":\"bench\"}}";

/* ---- serve ----------------------------------------------------------------------------------- */

static void
srv_answer(struct evbuffer *out, int status, const char *reason, const char *body, size_t len)
{
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nServer: nginx\r\nDate: Fri, 04 Dec 2026 20:00:00 GMT\r\n"
                        "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                        "Connection: keep-alive\r\n\r\n",
                        status, reason, len);
    evbuffer_add(out, body, len);
}

static void
srv_on_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);

    for (;;) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        char head[4096];
        size_t head_len;
        size_t body_len = 0;
        const char *cl;

        if (end.pos < 0) {
            return;
        }
        head_len = (size_t)end.pos + 4;
        if (head_len >= sizeof(head)) {
            bufferevent_free(bev);
            return;
        }
        evbuffer_copyout(in, head, head_len);
        head[head_len] = '\0';
        cl = strcasestr(head, "\r\nContent-Length:");
        if (cl != NULL) {
            body_len = strtoul(cl + 17, NULL, 10);
        }
        if (evbuffer_get_length(in) < head_len + body_len) {
            return;
        }
        evbuffer_drain(in, head_len + body_len);
        if (strncmp(head, "GET /ledgers ", 13) == 0) {
            srv_answer(out, 200, "OK", ledgers_body, sizeof(ledgers_body) - 1);
        } else if (strncmp(head, "POST /transactions ", 19) == 0) {
            srv_answer(out, 201, "Created", tx_body, sizeof(tx_body) - 1);
        } else {
            srv_answer(out, 404, "Not Found", "{\"error\":\"not found\"}", 21);
        }
    }
}

static void
srv_on_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(bev);
    }
}

static void
srv_on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(arg, fd, BEV_OPT_CLOSE_ON_FREE);

    bufferevent_setcb(bev, srv_on_read, NULL, srv_on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

static int
serve(void)
{
    struct event_base *base = event_base_new();
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    struct evconnlistener *lis;
    struct event *term_ev;
    struct event *int_ev;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lis = evconnlistener_new_bind(base, srv_on_accept, base,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                  (struct sockaddr *)&sin, sizeof(sin));
    if (lis == NULL ||
        getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&sin, &len) != 0) {
        fprintf(stderr, "upstream_load: cannot listen on 127.0.0.1\n");
        return 1;
    }
    printf("port %d\n", ntohs(sin.sin_port));
    fflush(stdout);
    term_ev = evsignal_new(base, SIGTERM, on_stop, base);
    int_ev = evsignal_new(base, SIGINT, on_stop, base);
    event_add(term_ev, NULL);
    event_add(int_ev, NULL);
    event_base_dispatch(base);
    event_free(term_ev);
    event_free(int_ev);
    evconnlistener_free(lis);
    event_base_free(base);
    return 0;
}

/* ---- client ---------------------------------------------------------------------------------- */

struct load {
    struct event_base *base;
    struct bp_upstream *u;
    struct bp_upstream_req req;
    long to_start;
    long ok;
    long failed;
    long inflight;
};

static void start_one(struct load *l);

static void
on_done(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct load *l = arg;

    l->inflight--;
    if (rc == BP_OK && resp->status < 400) {
        l->ok++;
    } else {
        l->failed++;
    }
    if (l->to_start > 0) {
        start_one(l);
    } else if (l->inflight == 0) {
        event_base_loopbreak(l->base);
    }
}

static void
start_one(struct load *l)
{
    l->to_start--;
    l->inflight++;
    if (bp_upstream_send(l->u, &l->req, on_done, l, NULL) != BP_OK) {
        l->inflight--;
        l->failed++;
    }
}

static int
client(int argc, char **argv)
{
    struct load l = {0};
    struct bp_upstream_opts opts = {
        .connect_timeout_ms = 5000,
        .total_timeout_ms = 30000,
        .max_response_bytes = 64 * 1024 * 1024,
    };
    const char *headers[8 + MAX_EXTRA_HEADERS];
    size_t n_headers = 0;
    long conc;
    bool post;

    if (argc < 6) {
        fprintf(stderr, "usage: upstream_load client URL N CONC GET|POST [HEADER...]\n");
        return 2;
    }
    post = strcmp(argv[5], "POST") == 0;
    /* What http/headers.c sends Core for wrk's request (bench/post.lua), the secret included. */
    headers[n_headers++] = "Accept: application/json";
    if (post) {
        headers[n_headers++] = "Content-Type: application/json";
    }
    headers[n_headers++] = "X-Request-Id: 01JD4V8Q6ZP3W0B5Y7C2M9T1KX";
    headers[n_headers++] = "X-Forwarded-For: 127.0.0.1";
    headers[n_headers++] = "X-Forwarded-Proto: http";
    for (int i = 6; i < argc && i - 6 < MAX_EXTRA_HEADERS; i++) {
        headers[n_headers++] = argv[i];
    }
    headers[n_headers++] = "X-Blnk-Key: sk_bench_core_secret_0123456789abcdef";
    l.req = (struct bp_upstream_req){
        .method = post ? "POST" : "GET",
        .url = argv[2],
        .headers = headers,
        .n_headers = n_headers,
        .body = post ? post_body : NULL,
        .body_len = post ? sizeof(post_body) - 1 : 0,
        .request_id = "bench",
        .instance_id = "bench",
    };
    l.to_start = strtol(argv[3], NULL, 10);
    conc = strtol(argv[4], NULL, 10);
    if (bp_upstream_global_init() != BP_OK) {
        return 1;
    }
    l.base = event_base_new();
    if (bp_upstream_new(l.base, &opts, &l.u) != BP_OK) {
        return 1;
    }
    for (long i = 0; i < conc && l.to_start > 0; i++) {
        start_one(&l);
    }
    if (l.inflight > 0) {
        event_base_dispatch(l.base);
    }
    bp_upstream_free(l.u);
    event_base_free(l.base);
    printf("ok %ld failed %ld\n", l.ok, l.failed);
    return l.failed == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
        return serve();
    }
    if (argc >= 2 && strcmp(argv[1], "client") == 0) {
        return client(argc, argv);
    }
    fprintf(stderr,
            "usage: upstream_load serve | upstream_load client URL N CONC GET|POST [HEADER...]\n");
    return 2;
}
