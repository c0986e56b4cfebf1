/* Worker threads and listeners.
 *
 * Each worker owns an event base, a listening socket bound with SO_REUSEPORT to the shared port
 * (the kernel spreads connections across them), its connections and its upstream client. The
 * first socket is bound before the others so that port 0 resolves to one port for all.
 *
 * Stop: the main thread activates each worker's stop event (libevent is built with pthread
 * locking, so event_active is safe across threads). The worker closes its listener and idle
 * connections, lets busy ones finish with Connection: close, and leaves its loop when none are
 * left or when the shutdown deadline passes. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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
#include "upstream/upstream.h"

static bp_err
open_listener(const char *host, int port, int *out_fd, int *out_port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char portstr[16];
    int fd = -1;
    int one = 1;
    bp_err rc = BP_ERR_IO;

    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL) {
        BP_ERROR("cannot resolve listen address", BP_LSTR("host", host));
        return BP_ERR_INVALID;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        goto done;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        BP_ERROR("cannot listen", BP_LSTR("host", host), BP_LINT("port", port), BP_LSTR("reason", strerror(errno)));
        goto done;
    }
    {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *out_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    *out_fd = fd;
    fd = -1;
    rc = BP_OK;
done:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

#define ACCEPT_RETRY_MS 100

static void
pause_accepting(struct bp_worker *w)
{
    if (!w->accept_paused && w->listener != NULL) {
        evconnlistener_disable(w->listener);
        w->accept_paused = true;
    }
}

static void
resume_accepting(struct bp_worker *w)
{
    if (w->accept_paused && w->listener != NULL && !w->draining && w->n_conns < w->max_conns &&
        !evtimer_pending(w->accept_retry, NULL)) {
        evconnlistener_enable(w->listener);
        w->accept_paused = false;
    }
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct bp_worker *w = arg;
    (void)l;
    if (w->draining) {
        close(fd);
        return;
    }
    bp_http__conn_accept(w, fd, sa, salen);
    /* At the limit, further clients wait in the kernel's backlog instead of costing memory here. */
    if (w->n_conns >= w->max_conns) {
        pause_accepting(w);
    }
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

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_worker *w = arg;
    const struct bp_config *cfg = w->server->cfg;
    struct timeval tv = {cfg->shutdown_timeout_ms / 1000, (cfg->shutdown_timeout_ms % 1000) * 1000};
    struct bp_conn *c = w->conns;
    (void)fd;
    (void)what;

    w->draining = true;
    if (w->listener != NULL) {
        evconnlistener_free(w->listener);
        w->listener = NULL;
    }
    while (c != NULL) {
        struct bp_conn *next = c->next;
        bool idle = c->state == BP_CONN_READING_HEAD && c->req == NULL &&
                    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0;
        if (idle) {
            bp_http__conn_close(c);
        } else {
            c->close_after_write = true;
        }
        c = next;
    }
    w->drain_deadline = evtimer_new(w->base, deadline_cb, w);
    evtimer_add(w->drain_deadline, &tv);
    bp_http__drain_check(w);
}

static void *
worker_main(void *arg)
{
    struct bp_worker *w = arg;
    bp_metrics_bind_thread(w->index);
    event_base_dispatch(w->base);
    return NULL;
}

static void
worker_free(struct bp_worker *w)
{
    if (w == NULL) {
        return;
    }
    /* A loop exits only without connections (or after closing them at the drain deadline), so
     * none is left to submit an audit record after bp_audit_stop. */
    BP_BUG_ON(w->thread_started && w->conns != NULL);
    while (w->conns != NULL) {
        bp_http__conn_close(w->conns);
    }
    bp_http__tasks_fini(w);
    if (w->listener != NULL) {
        evconnlistener_free(w->listener);
    }
    bp_upstream_free(w->upstream);
    if (w->stop_ev != NULL) {
        event_free(w->stop_ev);
    }
    if (w->drain_deadline != NULL) {
        event_free(w->drain_deadline);
    }
    if (w->accept_retry != NULL) {
        event_free(w->accept_retry);
    }
    if (w->base != NULL) {
        event_base_free(w->base);
    }
    bp_free(w);
}

static bp_err
worker_new(struct bp_server *s, int index, int fd, struct bp_worker **out)
{
    const struct bp_config *cfg = s->cfg;
    struct bp_worker *w = bp_calloc(1, sizeof(*w));
    struct bp_upstream_opts uo = {
        .connect_timeout_ms = cfg->upstream_connect_timeout_ms,
        .total_timeout_ms = cfg->upstream_timeout_ms,
        .max_response_bytes = cfg->max_response_bytes,
    };
    bp_err rc;

    w->server = s;
    w->index = index;
    w->base = event_base_new();
    if (w->base == NULL) {
        worker_free(w);
        close(fd);
        return BP_ERR_IO;
    }
    w->listener = evconnlistener_new(w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (w->listener == NULL) {
        close(fd);
        worker_free(w);
        return BP_ERR_IO;
    }
    rc = bp_upstream_new(w->base, &uo, &w->upstream);
    if (rc == BP_OK) {
        rc = bp_http__tasks_init(w);
    }
    if (rc != BP_OK) {
        worker_free(w);
        return rc;
    }
    evconnlistener_set_error_cb(w->listener, accept_error_cb);
    w->accept_retry = evtimer_new(w->base, accept_retry_cb, w);
    w->max_conns = (size_t)((cfg->max_connections + cfg->workers - 1) / cfg->workers);
    w->stop_ev = event_new(w->base, -1, 0, stop_cb, w);
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

/* The OAuth threads get the configuration with the issuer filled in: by default the address we
 * actually listen on, which is only known once the port is bound. */
static void
set_oauth_issuer(struct bp_server *s)
{
    char buf[300];
    bool v6 = strchr(s->cfg->listen_host, ':') != NULL;

    s->oauth_cfg = *s->cfg;
    s->oauth_cfg.listen_port = s->port;
    if (s->cfg->oauth_issuer == NULL) {
        snprintf(buf, sizeof(buf), v6 ? "http://[%s]:%d" : "http://%s:%d", s->cfg->listen_host, s->port);
        s->oauth_issuer = bp_strdup(buf);
        s->oauth_cfg.oauth_issuer = s->oauth_issuer;
    }
}

bp_err
bp_server_start(const struct bp_config *cfg, const struct bp_route *routes, size_t n_routes,
                const struct bp_server_deps *deps, struct bp_server **out)
{
    struct bp_server *s = bp_calloc(1, sizeof(*s));
    bp_err rc = BP_OK;
    int started = 0;

    evthread_use_pthreads();
    event_set_log_callback(libevent_log_cb);
    s->cfg = cfg;
    s->deps = deps;
    s->routes = routes;
    s->n_routes = n_routes;
    s->n_workers = cfg->workers;
    s->workers = bp_calloc((size_t)cfg->workers, sizeof(*s->workers));
    atomic_init(&s->ready, true);
    for (int i = 0; i < cfg->workers; i++) {
        int fd = -1;
        int port = 0;
        rc = open_listener(cfg->listen_host, i == 0 ? cfg->listen_port : s->port, &fd, &port);
        if (rc != BP_OK) {
            goto fail;
        }
        if (i == 0) {
            s->port = port;
        }
        rc = worker_new(s, i, fd, &s->workers[i]);
        if (rc != BP_OK) {
            goto fail;
        }
    }
    set_oauth_issuer(s);
    rc = bp_http__oauth_pool_start(s, &s->oauth_pool);
    if (rc != BP_OK) {
        goto fail;
    }
    for (int i = 0; i < cfg->workers; i++) {
        if (pthread_create(&s->workers[i]->thread, NULL, worker_main, s->workers[i]) != 0) {
            rc = BP_ERR_IO;
            goto fail;
        }
        s->workers[i]->thread_started = true;
        started++;
    }
    *out = s;
    return BP_OK;
fail:
    s->n_workers = started;
    bp_server_stop(s);
    for (int i = 0; i < cfg->workers; i++) {
        worker_free(s->workers[i]);
    }
    bp_free(s->workers);
    bp_free(s->oauth_issuer);
    bp_free(s);
    return rc;
}

int
bp_server_port(const struct bp_server *s)
{
    return s->port;
}

void
bp_server_set_ready(struct bp_server *s, bool ready)
{
    atomic_store(&s->ready, ready);
}

void
bp_server_stop(struct bp_server *s)
{
    for (int i = 0; i < s->n_workers; i++) {
        event_active(s->workers[i]->stop_ev, 0, 0);
    }
    for (int i = 0; i < s->n_workers; i++) {
        pthread_join(s->workers[i]->thread, NULL);
    }
    s->n_workers = 0;
    /* After the loops: a client still waiting for an OAuth answer keeps its loop draining, and
     * answers that arrive after a loop stopped wait in its task list for bp_server_free. */
    bp_http__oauth_pool_stop(s->oauth_pool);
    s->oauth_pool = NULL;
}

void
bp_server_free(struct bp_server *s)
{
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < s->cfg->workers; i++) {
        worker_free(s->workers[i]);
    }
    bp_free(s->workers);
    bp_free(s->oauth_issuer);
    bp_free(s);
}
