/* Worker threads, listeners, the route table and the live configuration.
 *
 * Each worker owns an event base, a listening socket bound with SO_REUSEPORT to the shared port
 * (the kernel spreads connections across them), its connections, an inbox for completions from
 * other threads, the handlers' per-worker state (the proxy's upstream client), a pool of
 * request arenas and read buffers, and a batched log buffer flushed shortly after its first
 * line. The first socket is bound before the others so that port 0 resolves to one port for
 * all. Because any process of the same user that also sets SO_REUSEPORT could join that group,
 * bp_server_new first checks that nobody listens on the address (issue 8), unless a hand-over
 * was asked for.
 *
 * Live configuration (issue 8): bp_server_reconfigure, on the main thread, swaps the current
 * struct bp_http_conf under conf_lock and bumps conf_gen. A loop compares conf_gen with the one
 * it holds at each request and when woken by its conf_ev, and takes the new snapshot then; so
 * the lock is taken once per worker per reload, not per request.
 *
 * Stop: the main thread activates each worker's stop event (libevent is built with pthread
 * locking, so event_active is safe across threads). The worker accepts what is already queued
 * on its listener, closes it and its idle connections, lets busy ones finish with Connection:
 * close, gives connections that have not sent their first request a moment to send it, and
 * leaves its loop when none are left or when the shutdown deadline passes. */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/thread.h>

#include "core/log.h"
#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "metrics/metrics.h"

/* How long a loop's log lines may wait in its buffer. */
#define LOG_FLUSH_MS 50

/* The address as the operator wrote it, for messages: "127.0.0.1:8080", "[::1]:8080". */
static void
format_address(const char *host, int port, char *out, size_t cap)
{
    snprintf(out, cap, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
}

/* The config accepts only numeric hosts and "localhost"; localhost is 127.0.0.1 here, so that it
 * does not depend on which address /etc/hosts happens to list first. */
static bp_err
resolve_listen(const char *host, int port, struct addrinfo **out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    char portstr[16];

    snprintf(portstr, sizeof(portstr), "%d", port);
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    }
    if (getaddrinfo(host, portstr, &hints, out) != 0 || *out == NULL) {
        return BP_ERR_INVALID;
    }
    return BP_OK;
}

static void
set_port(struct addrinfo *ai, int port)
{
    if (ai->ai_family == AF_INET6) {
        ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)port);
    }
}

/* A stream socket set up as every listener is, with or without SO_REUSEPORT. -1 on failure. */
static int
listen_socket(const struct addrinfo *ai, bool reuse_port)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    int zero = 0;

    if (fd < 0) {
        return -1;
    }
    /* A port left in TIME_WAIT by an earlier run is free to bind. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuse_port) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    /* "[::]" takes IPv4 too, whatever net.ipv6.bindv6only says. */
    if (ai->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    return fd;
}

/* Issue 8: our listeners set SO_REUSEPORT, and Linux lets another socket of the same user that
 * sets it too bind the same address, so a second serve would start silently and take a share of
 * the connections. A socket WITHOUT SO_REUSEPORT cannot bind an address somebody listens on,
 * whatever that socket's options, nor one that overlaps it (0.0.0.0 and 127.0.0.1, [::] and
 * 0.0.0.0): binding one for a moment tells whether the address is free. Port 0 needs no check,
 * the kernel picks a port nobody uses. Two serves started within the same few microseconds could
 * both pass; that is not the mistake this guards against. */
static bp_err
check_address_free(const struct addrinfo *ai, const char *address, char *err, size_t err_len)
{
    int fd = listen_socket(ai, false);
    int e;

    if (fd < 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", address, strerror(errno));
        return BP_ERR_IO;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        close(fd);
        return BP_OK;
    }
    e = errno;
    close(fd);
    if (e == EADDRINUSE) {
        snprintf(err, err_len,
                 "cannot listen on %s: address already in use (another process, perhaps a blnkproxy "
                 "started earlier, serves it). Stop it or choose another --listen; to hand over to "
                 "this process on purpose, start it with --reuse-port, then send SIGTERM to the old one",
                 address);
        return BP_ERR_EXISTS;
    }
    snprintf(err, err_len, "cannot listen on %s: %s", address, strerror(e));
    return BP_ERR_IO;
}

bp_err
bp_server_check_address(const struct bp_config *cfg, char *err, size_t err_len)
{
    struct addrinfo *ai = NULL;
    char address[300];
    bp_err rc;

    format_address(cfg->listen_host, cfg->listen_port, address, sizeof(address));
    if (cfg->ops_listen_host != NULL && cfg->ops_listen_port == cfg->listen_port && cfg->listen_port != 0 &&
        strcmp(cfg->ops_listen_host, cfg->listen_host) == 0) {
        snprintf(err, err_len,
                 "ops_listen is the same address as listen (%s): give the ops listener its own port, or "
                 "leave ops_listen unset to serve /metrics on listen",
                 address);
        return BP_ERR_INVALID;
    }
    if (cfg->tls_listen_host != NULL && cfg->tls_listen_port != 0 &&
        ((cfg->tls_listen_port == cfg->listen_port && strcmp(cfg->tls_listen_host, cfg->listen_host) == 0) ||
         (cfg->ops_listen_host != NULL && cfg->tls_listen_port == cfg->ops_listen_port &&
          strcmp(cfg->tls_listen_host, cfg->ops_listen_host) == 0))) {
        format_address(cfg->tls_listen_host, cfg->tls_listen_port, address, sizeof(address));
        snprintf(err, err_len,
                 "tls_listen (%s) is also listen or ops_listen: one address speaks either TLS or plain HTTP; "
                 "give tls_listen its own port",
                 address);
        return BP_ERR_INVALID;
    }
    if (cfg->reuse_port || cfg->listen_port == 0) {
        return BP_OK;
    }
    if (resolve_listen(cfg->listen_host, cfg->listen_port, &ai) != BP_OK) {
        snprintf(err, err_len, "cannot listen on %s: not a numeric address", address);
        return BP_ERR_INVALID;
    }
    rc = check_address_free(ai, address, err, err_len);
    freeaddrinfo(ai);
    return rc;
}

static bp_err
open_listener(const struct addrinfo *ai, const char *address, int *out_fd, int *out_port, char *err,
              size_t err_len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd = listen_socket(ai, true);

    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", address, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return BP_ERR_IO;
    }
    *out_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    return BP_OK;
}

#define ACCEPT_RETRY_MS 100

static void
pause_accepting(struct bp_worker *w)
{
    if (!w->accept_paused && w->listener != NULL) {
        evconnlistener_disable(w->listener);
        if (w->tls_listener != NULL) {
            evconnlistener_disable(w->tls_listener);
        }
        w->accept_paused = true;
    }
}

static void
resume_accepting(struct bp_worker *w)
{
    if (w->accept_paused && w->listener != NULL && !w->draining && w->n_conns < w->max_conns &&
        !evtimer_pending(w->accept_retry, NULL)) {
        evconnlistener_enable(w->listener);
        if (w->tls_listener != NULL) {
            evconnlistener_enable(w->tls_listener);
        }
        w->accept_paused = false;
    }
}

static void
accept_on(struct bp_worker *w, evutil_socket_t fd, struct sockaddr *sa, int salen, enum bp_http__listener kind)
{
    if (w->draining) {
        close(fd);
        return;
    }
    bp_http__conn_accept(w, fd, sa, salen, kind);
    /* At the limit, further clients wait in the kernel's backlog instead of costing memory here. */
    if (w->n_conns >= w->max_conns) {
        pause_accepting(w);
    }
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    accept_on(arg, fd, sa, salen, BP_LISTENER_MAIN);
}

static void
tls_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    accept_on(arg, fd, sa, salen, BP_LISTENER_TLS);
}

/* The ops listener (worker 0's): a scrape or a health check now and then, never paused by
 * max_connections, so that a flood on the main listener cannot hide the metrics that show it
 * (max_connections_per_peer still applies). */
static void
ops_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct bp_worker *w = arg;
    (void)l;
    if (w->draining) {
        close(fd);
        return;
    }
    bp_http__conn_accept(w, fd, sa, salen, BP_LISTENER_OPS);
}

/* accept(2) failed, typically EMFILE: the listener would stay readable and spin, so it pauses
 * for a moment; connections closing meanwhile free descriptors. */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct bp_worker *w = arg;
    struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};
    int err = EVUTIL_SOCKET_ERROR();
    (void)l;

    BP_WARN("accept failed; pausing the listener", BP_LINT("worker", w->index),
            BP_LSTR("reason", evutil_socket_error_to_string(err)), BP_LINT("connections", w->n_conns));
    pause_accepting(w);
    evtimer_add(w->accept_retry, &tv);
}

static void
accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resume_accepting(arg);
}

/* ---- live configuration ---- */

static struct bp_http_conf *
conf_new(const struct bp_config *cfg, void *app, void (*app_free)(void *app), struct bp_http_tls *tls)
{
    struct bp_http_conf *conf = bp_calloc(1, sizeof(*conf));

    atomic_init(&conf->refs, 1);
    conf->cfg = cfg;
    conf->app = app;
    conf->app_free = app_free;
    conf->tls = tls;
    bp_http__conf_trust(conf, cfg);
    return conf;
}

struct bp_http_conf *
bp_http__conf_ref(struct bp_http_conf *conf)
{
    atomic_fetch_add_explicit(&conf->refs, 1, memory_order_relaxed);
    return conf;
}

void
bp_http__conf_unref(struct bp_http_conf *conf)
{
    if (conf == NULL || atomic_fetch_sub_explicit(&conf->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    if (conf->app != NULL && conf->app_free != NULL) {
        conf->app_free(conf->app);
    }
    if (conf->owned_cfg != NULL) {
        bp_config_cleanup(conf->owned_cfg);
        bp_free(conf->owned_cfg);
    }
    bp_free(conf->trusted);
    bp_http_tls_free(conf->tls);
    bp_free(conf);
}

/* What a worker holds for all its connections rather than per request: its share of
 * max_connections, and the handlers' worker-wide settings (the upstream client's timeouts). */
static void
apply_worker_settings(struct bp_worker *w)
{
    const struct bp_config *cfg = w->conf->cfg;
    const struct bp_server *s = w->server;
    int workers = s->start_cfg->workers;

    for (size_t i = 0; i < s->n_handlers; i++) {
        if (s->handlers[i]->worker_reconf != NULL && w->hstate != NULL) {
            s->handlers[i]->worker_reconf(s->handlers[i]->self, w->hstate[i], cfg);
        }
    }
    w->max_conns = (size_t)((cfg->max_connections + workers - 1) / workers);
    if (w->n_conns >= w->max_conns) {
        pause_accepting(w);
    } else {
        resume_accepting(w);
    }
}

struct bp_http_conf *
bp_http__worker_conf(struct bp_worker *w)
{
    struct bp_server *s = w->server;
    struct bp_http_conf *old = w->conf;

    if (old != NULL && atomic_load(&s->conf_gen) == w->conf_gen) {
        return old;
    }
    pthread_mutex_lock(&s->conf_lock);
    w->conf = bp_http__conf_ref(s->conf);
    w->conf_gen = atomic_load(&s->conf_gen);
    pthread_mutex_unlock(&s->conf_lock);
    bp_http__conf_unref(old);
    apply_worker_settings(w);
    return w->conf;
}

static void
conf_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bp_http__worker_conf(arg);
}

void
bp_server_reconfigure(struct bp_server *s, struct bp_config *cfg, void *app, struct bp_http_tls *tls)
{
    struct bp_http_conf *conf = conf_new(cfg, app, s->app_free, tls);
    struct bp_http_conf *old;

    conf->owned_cfg = cfg;
    pthread_mutex_lock(&s->conf_lock);
    old = s->conf;
    if (conf->tls == NULL && old->tls != NULL) {
        conf->tls = bp_http__tls_ref(old->tls);
    }
    s->conf = conf;
    atomic_fetch_add(&s->conf_gen, 1);
    pthread_mutex_unlock(&s->conf_lock);
    bp_http__conf_unref(old);
    /* Idle workers apply the worker-wide settings now rather than at their next request. */
    for (int i = 0; i < s->n_workers; i++) {
        event_active(s->workers[i]->conf_ev, 0, 0);
    }
}

/* ---- the route table ---- */

const struct bp_http_route *
bp_http__route(const struct bp_server *s, const char *path, size_t len, bool ops)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct bp_http_route *r = &s->routes[i];
        size_t n = strlen(r->path);
        if (ops && !r->ops) {
            continue;
        }
        if (r->prefix ? len >= n && memcmp(path, r->path, n) == 0 : len == n && memcmp(path, r->path, n) == 0) {
            return r;
        }
    }
    return NULL;
}

size_t
bp_http__handler_slot(const struct bp_server *s, const struct bp_http_handler *h)
{
    for (size_t i = 0; i < s->n_handlers; i++) {
        if (s->handlers[i] == h) {
            return i;
        }
    }
    BP_UNREACHABLE();
    return 0;
}

/* Each handler of the route table once, in the order of first appearance. */
static void
collect_handlers(struct bp_server *s)
{
    s->handlers = bp_calloc(s->n_routes ? s->n_routes : 1, sizeof(*s->handlers));
    for (size_t i = 0; i < s->n_routes; i++) {
        bool seen = false;
        for (size_t k = 0; k < s->n_handlers && !seen; k++) {
            seen = s->handlers[k] == s->routes[i].handler;
        }
        if (!seen) {
            s->handlers[s->n_handlers++] = s->routes[i].handler;
        }
    }
}

/* ---- stopping ---- */

void
bp_http__drain_check(struct bp_worker *w)
{
    if (w->draining && w->n_conns == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    resume_accepting(w);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_worker *w = arg;
    (void)fd;
    (void)what;
    BP_WARN("shutdown deadline reached, closing connections", BP_LINT("worker", w->index),
            BP_LINT("connections", w->n_conns));
    while (w->conns != NULL) {
        bp_http__conn_close(w->conns);
    }
    event_base_loopexit(w->base, NULL);
}

/* A connection that has not begun a request: idle between keep-alive requests (served), or
 * accepted and not yet heard from (fresh). */
static bool
is_idle(const struct bp_conn *c)
{
    return !bp_http__req_answer_owed(c) && !bp_http__req_begun(c) && c->in.start == c->in.end && !c->lingering;
}

/* Draining: connections that still have not sent their first request are closed now. */
static void
fresh_grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_worker *w = arg;
    struct bp_conn *c = w->conns;
    (void)fd;
    (void)what;

    while (c != NULL) {
        struct bp_conn *next = c->next;
        if (is_idle(c)) {
            bp_http__conn_close(c);
        }
        c = next;
    }
}

/* Accepts what the kernel already queued on the listener. Closing a listener resets the
 * connections in its queue; in a hand-over (issue 8) those are clients that already connected
 * and would see their request fail although the new process serves the address. A connection
 * queued between the last accept4 and the close is still reset (unless the kernel migrates it,
 * net.ipv4.tcp_migrate_req), so the listener is taken off the loop first: the caller's close
 * then follows the last accept4 with no other system call in between. */
static void
accept_queued(struct bp_worker *w, struct evconnlistener *l, enum bp_http__listener kind)
{
    int lfd = evconnlistener_get_fd(l);

    evconnlistener_disable(l);

    for (int i = 0; i < 4096; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        bp_http__conn_accept(w, fd, (struct sockaddr *)&ss, (int)sl, kind);
    }
}

#define FRESH_GRACE_MS 1000

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_worker *w = arg;
    const struct bp_config *cfg = bp_http__worker_conf(w)->cfg;
    struct timeval tv = {cfg->shutdown_timeout_ms / 1000, (cfg->shutdown_timeout_ms % 1000) * 1000};
    struct timeval grace = {FRESH_GRACE_MS / 1000, (FRESH_GRACE_MS % 1000) * 1000};
    struct bp_conn *c;
    (void)fd;
    (void)what;

    if (w->listener != NULL) {
        accept_queued(w, w->listener, BP_LISTENER_MAIN);
        evconnlistener_free(w->listener);
        w->listener = NULL;
    }
    if (w->ops_listener != NULL) {
        evconnlistener_free(w->ops_listener);
        w->ops_listener = NULL;
    }
    if (w->tls_listener != NULL) {
        accept_queued(w, w->tls_listener, BP_LISTENER_TLS);
        evconnlistener_free(w->tls_listener);
        w->tls_listener = NULL;
    }
    w->draining = true;
    c = w->conns;
    while (c != NULL) {
        struct bp_conn *next = c->next;
        if (!is_idle(c)) {
            c->close_after_write = true;
        } else if (c->served) {
            /* Between keep-alive requests: a client must expect this close (RFC 9112 §9.5). */
            bp_http__conn_close(c);
        }
        /* A fresh connection may have its request on the way: fresh_grace_cb decides. */
        c = next;
    }
    w->drain_deadline = evtimer_new(w->base, deadline_cb, w);
    evtimer_add(w->drain_deadline, &tv);
    w->fresh_grace = evtimer_new(w->base, fresh_grace_cb, w);
    evtimer_add(w->fresh_grace, &grace);
    bp_http__drain_check(w);
}

static void *
worker_main(void *arg)
{
    struct bp_worker *w = arg;

    bp_metrics_bind_thread(w->index);
    bp_log_buffer_bind(&w->log);
    event_base_dispatch(w->base);
    /* Nothing this loop logged is lost at a stop: unbinding writes what is buffered. */
    bp_log_buffer_bind(NULL);
    return NULL;
}

static void
log_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    bp_log_flush();
}

/* A line entered the loop's empty log buffer: it goes out within LOG_FLUSH_MS. */
static void
log_first_line(void *arg)
{
    struct bp_worker *w = arg;
    struct timeval tv = {0, LOG_FLUSH_MS * 1000};

    evtimer_add(w->log_flush, &tv);
}

static void
free_event(struct event **ev)
{
    if (*ev != NULL) {
        event_free(*ev);
        *ev = NULL;
    }
}

static void
worker_free(struct bp_worker *w)
{
    const struct bp_server *s;

    if (w == NULL) {
        return;
    }
    s = w->server;
    /* A loop exits only without connections (or after closing them at the drain deadline), so
     * none is left to submit an audit record after the audit log stopped. */
    BP_BUG_ON(w->thread_started && w->conns != NULL);
    while (w->conns != NULL) {
        bp_http__conn_close(w->conns);
    }
    /* Completions that came back after the loop stopped: held responses of closed connections
     * are released (they end their requests), handed-off work frees itself. */
    bp_inbox_free(w->inbox);
    w->inbox = NULL;
    if (w->n_parked > 0) {
        BP_WARN("connections still held at shutdown", BP_LINT("worker", w->index), BP_LINT("held", w->n_parked));
    }
    if (w->listener != NULL) {
        evconnlistener_free(w->listener);
    }
    if (w->ops_listener != NULL) {
        evconnlistener_free(w->ops_listener);
    }
    if (w->tls_listener != NULL) {
        evconnlistener_free(w->tls_listener);
    }
    for (size_t i = 0; w->hstate != NULL && i < s->n_handlers; i++) {
        if (s->handlers[i]->worker_fini != NULL) {
            s->handlers[i]->worker_fini(s->handlers[i]->self, w->hstate[i]);
        }
    }
    bp_free(w->hstate);
    free_event(&w->stop_ev);
    free_event(&w->drain_deadline);
    free_event(&w->fresh_grace);
    free_event(&w->conf_ev);
    free_event(&w->accept_retry);
    free_event(&w->log_flush);
    bp_http__conf_unref(w->conf);
    bp_arena_pool_cleanup(&w->arenas);
    while (w->inbuf_free != NULL) {
        char *b = w->inbuf_free;
        memcpy(&w->inbuf_free, b, sizeof(char *));
        bp_free(b);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    bp_free(w);
}

static bp_err
worker_new(struct bp_server *s, int index, int fd, struct bp_worker **out)
{
    struct bp_worker *w = bp_calloc(1, sizeof(*w));
    bp_err rc = BP_OK;

    w->server = s;
    w->index = index;
    bp_arena_pool_init(&w->arenas, BP_HTTP_ARENA_CHUNK, BP_HTTP_ARENA_POOL_MAX);
    w->base = event_base_new();
    if (w->base == NULL) {
        close(fd);
        worker_free(w);
        return BP_ERR_IO;
    }
    w->listener = evconnlistener_new(w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (w->listener == NULL) {
        close(fd);
        worker_free(w);
        return BP_ERR_IO;
    }
    rc = bp_inbox_new(w->base, &w->inbox);
    w->hstate = bp_calloc(s->n_handlers ? s->n_handlers : 1, sizeof(*w->hstate));
    for (size_t i = 0; i < s->n_handlers && rc == BP_OK; i++) {
        if (s->handlers[i]->worker_init != NULL) {
            rc = s->handlers[i]->worker_init(s->handlers[i]->self, w->base, s->start_cfg, &w->hstate[i]);
        }
    }
    if (rc != BP_OK) {
        worker_free(w);
        return rc;
    }
    evconnlistener_set_error_cb(w->listener, accept_error_cb);
    w->accept_retry = evtimer_new(w->base, accept_retry_cb, w);
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
    w->conf_ev = event_new(w->base, -1, 0, conf_cb, w);
    w->log_flush = evtimer_new(w->base, log_flush_cb, w);
    w->log.on_first = log_first_line;
    w->log.arg = w;
    /* Before the thread starts: sets the connection share and the handlers' worker settings. */
    bp_http__worker_conf(w);
    *out = w;
    return BP_OK;
}

/* libevent's own diagnostics become JSON log lines like everything else on stderr. */
static void
libevent_log_cb(int severity, const char *msg)
{
    if (severity >= EVENT_LOG_ERR) {
        BP_ERROR("libevent", BP_LSTR("detail", msg));
    } else if (severity == EVENT_LOG_WARN) {
        BP_WARN("libevent", BP_LSTR("detail", msg));
    } else {
        BP_DEBUG("libevent", BP_LSTR("detail", msg));
    }
}

static void
server_free(struct bp_server *s)
{
    for (int i = 0; i < s->n_workers; i++) {
        worker_free(s->workers[i]);
    }
    bp_free(s->workers);
    bp_free(s->handlers);
    bp_http__conf_unref(s->conf);
    pthread_mutex_destroy(&s->conf_lock);
    pthread_mutex_destroy(&s->ready_lock);
    bp_free(s);
}

/* The address of a listener besides listen (setting names it in messages): resolved, and free
 * unless a hand-over was asked for or the port is 0. On failure *ai is freed (NULL). */
static bp_err
resolve_other(const struct bp_config *cfg, const char *setting, const char *host, int port, struct addrinfo **ai,
              char *address, size_t address_len, char *err, size_t err_len)
{
    bp_err rc;

    format_address(host, port, address, address_len);
    rc = resolve_listen(host, port, ai);
    if (rc != BP_OK) {
        snprintf(err, err_len, "cannot listen on %s (%s): not a numeric address", address, setting);
        return rc;
    }
    if (!cfg->reuse_port && port != 0) {
        rc = check_address_free(*ai, address, err, err_len);
    }
    if (rc != BP_OK) {
        freeaddrinfo(*ai);
        *ai = NULL;
    }
    return rc;
}

/* ops_listen: one socket, on worker 0's loop. */
static bp_err
open_ops_listener(struct bp_server *s, const struct bp_config *cfg, char *err, size_t err_len)
{
    struct addrinfo *ai = NULL;
    char address[300];
    int fd = -1;
    bp_err rc = resolve_other(cfg, "ops_listen", cfg->ops_listen_host, cfg->ops_listen_port, &ai, address,
                              sizeof(address), err, err_len);

    if (rc == BP_OK) {
        rc = open_listener(ai, address, &fd, &s->ops_port, err, err_len);
    }
    freeaddrinfo(ai);
    if (rc != BP_OK) {
        return rc;
    }
    s->workers[0]->ops_listener =
        evconnlistener_new(s->workers[0]->base, ops_accept_cb, s->workers[0], LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                           -1, fd);
    if (s->workers[0]->ops_listener == NULL) {
        close(fd);
        snprintf(err, err_len, "cannot listen on %s (ops_listen)", address);
        return BP_ERR_IO;
    }
    return BP_OK;
}

/* tls_listen: one socket per worker, as listen. */
static bp_err
open_tls_listeners(struct bp_server *s, const struct bp_config *cfg, char *err, size_t err_len)
{
    struct addrinfo *ai = NULL;
    char address[300];
    bp_err rc = resolve_other(cfg, "tls_listen", cfg->tls_listen_host, cfg->tls_listen_port, &ai, address,
                              sizeof(address), err, err_len);

    for (int i = 0; i < s->n_workers && rc == BP_OK; i++) {
        struct bp_worker *w = s->workers[i];
        int fd = -1;
        int port = 0;
        if (i == 1) {
            set_port(ai, s->tls_port);
        }
        rc = open_listener(ai, address, &fd, &port, err, err_len);
        if (rc != BP_OK) {
            break;
        }
        if (i == 0) {
            s->tls_port = port;
        }
        w->tls_listener = evconnlistener_new(w->base, tls_accept_cb, w, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                             -1, fd);
        if (w->tls_listener == NULL) {
            close(fd);
            snprintf(err, err_len, "cannot listen on %s (tls_listen)", address);
            rc = BP_ERR_IO;
            break;
        }
        evconnlistener_set_error_cb(w->tls_listener, accept_error_cb);
    }
    freeaddrinfo(ai);
    return rc;
}

bp_err
bp_server_new(const struct bp_server_spec *spec, struct bp_server **out, char *err, size_t err_len)
{
    const struct bp_config *cfg = spec->cfg;
    struct bp_server *s = bp_calloc(1, sizeof(*s));
    struct addrinfo *ai = NULL;
    struct bp_http_tls *tls = NULL;
    char address[300];
    bp_err rc = BP_OK;

    evthread_use_pthreads();
    event_set_log_callback(libevent_log_cb);
    s->start_cfg = cfg;
    s->routes = spec->routes;
    s->n_routes = spec->n_routes;
    s->hooks = spec->hooks;
    s->n_hooks = spec->n_hooks;
    s->app_free = spec->app_free;
    collect_handlers(s);
    pthread_mutex_init(&s->conf_lock, NULL);
    rc = bp_http_tls_load(cfg, &tls, err, err_len);
    s->conf = conf_new(cfg, spec->app, spec->app_free, tls);
    s->workers = bp_calloc((size_t)cfg->workers, sizeof(*s->workers));
    pthread_mutex_init(&s->ready_lock, NULL);
    /* Not ready until the watcher says the tables are loaded: a PostgreSQL store that is down at
     * start must not be reported ready for the moment between the first accept and the
     * watcher's start. */
    s->ready = BP_STARTING;
    snprintf(s->ready_reason, sizeof(s->ready_reason), "credentials not loaded yet");
    atomic_init(&s->conf_gen, 0);
    if (rc != BP_OK) {
        goto fail; /* the certificate (after conf_new, which now owns spec->app) */
    }
    format_address(cfg->listen_host, cfg->listen_port, address, sizeof(address));
    rc = resolve_listen(cfg->listen_host, cfg->listen_port, &ai);
    if (rc != BP_OK) {
        snprintf(err, err_len, "cannot listen on %s: not a numeric address", address);
        goto fail;
    }
    if (!cfg->reuse_port && cfg->listen_port != 0) {
        /* Again, right before binding: the window for a concurrent start stays tiny. */
        rc = check_address_free(ai, address, err, err_len);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    for (int i = 0; i < cfg->workers; i++) {
        int fd = -1;
        int port = 0;
        if (i == 1) {
            set_port(ai, s->port); /* the others join the port the first one got (port 0) */
        }
        rc = open_listener(ai, address, &fd, &port, err, err_len);
        if (rc != BP_OK) {
            goto fail;
        }
        if (i == 0) {
            s->port = port;
        }
        rc = worker_new(s, i, fd, &s->workers[i]);
        if (rc != BP_OK) {
            snprintf(err, err_len, "cannot set up worker %d", i);
            goto fail;
        }
        s->n_workers++;
    }
    freeaddrinfo(ai);
    ai = NULL;
    if (cfg->ops_listen_host != NULL) {
        rc = open_ops_listener(s, cfg, err, err_len);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    if (cfg->tls_listen_host != NULL) {
        rc = open_tls_listeners(s, cfg, err, err_len);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    *out = s;
    return BP_OK;
fail:
    freeaddrinfo(ai);
    server_free(s);
    return rc;
}

bp_err
bp_server_run(struct bp_server *s, char *err, size_t err_len)
{
    for (int i = 0; i < s->n_workers; i++) {
        if (pthread_create(&s->workers[i]->thread, NULL, worker_main, s->workers[i]) != 0) {
            snprintf(err, err_len, "cannot start worker thread %d: %s", i, strerror(errno));
            bp_server_stop(s);
            return BP_ERR_IO;
        }
        s->workers[i]->thread_started = true;
        s->n_running++;
    }
    return BP_OK;
}

int
bp_server_port(const struct bp_server *s)
{
    return s->port;
}

int
bp_server_ops_port(const struct bp_server *s)
{
    return s->ops_port;
}

int
bp_server_tls_port(const struct bp_server *s)
{
    return s->tls_port;
}

void
bp_server_set_readiness(struct bp_server *s, enum bp_readiness state, const char *reason)
{
    pthread_mutex_lock(&s->ready_lock);
    s->ready = state;
    snprintf(s->ready_reason, sizeof(s->ready_reason), "%s", reason != NULL ? reason : "");
    pthread_mutex_unlock(&s->ready_lock);
}

enum bp_readiness
bp_server_readiness(struct bp_server *s, char *reason, size_t reason_len)
{
    enum bp_readiness state;

    pthread_mutex_lock(&s->ready_lock);
    state = s->ready;
    snprintf(reason, reason_len, "%s", s->ready_reason);
    pthread_mutex_unlock(&s->ready_lock);
    return state;
}

void
bp_server_stop(struct bp_server *s)
{
    for (int i = 0; i < s->n_running; i++) {
        event_active(s->workers[i]->stop_ev, 0, 0);
    }
    for (int i = 0; i < s->n_running; i++) {
        pthread_join(s->workers[i]->thread, NULL);
    }
    s->n_running = 0;
}

void
bp_server_free(struct bp_server *s)
{
    if (s == NULL) {
        return;
    }
    server_free(s);
}
