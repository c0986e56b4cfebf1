/* Origins, keep-alive pools and opening connections.
 *
 * An origin is (scheme, host, port, CA file) on one client (one loop thread): Core instances
 * that share all four share connections. It holds its idle connections (most recently used
 * first, so that a burst leaves the oldest ones to time out), the transfers waiting for a
 * connection when max_connections_per_host is reached, and its last DNS answer.
 *
 * Opening: an IP literal needs no DNS; a name is resolved with libevent's evdns on the loop
 * (IPv4 first; IPv6 only when the name has no IPv4 address), the answer kept for
 * BP_UPSTREAM_DNS_CACHE_MS, one lookup per origin at a time with every connection that needs it
 * waiting on it. Then a non-blocking connect to each address in turn, then, for https, the TLS
 * handshake (tls.c). The connect timeout covers all of it; the transfer's timer enforces it.
 *
 * Why evdns: it runs on the loop that needs the answer, with no thread, queue or wake-up of its
 * own, reads resolv.conf (search domains, ndots, timeouts) and /etc/hosts; libcurl resolved in
 * a thread per lookup. Its weak spot is teardown: a lookup's memory is freed in its callback, so
 * evdns is never asked to cancel (a connection that no longer needs an answer just detaches
 * from it) and a client freed while lookups are in flight leaves the resolver to them (freed
 * from the loop after the last one, or left behind if the loop never runs again).
 *
 * Liveness of idle connections: each keeps its read event, so a close by Core is seen by the
 * loop as it happens and the connection leaves the pool (exchange.c, idle reads). A connection
 * taken from the pool after more than BP_UPSTREAM_IDLE_CHECK_MS idle gets one non-blocking peek
 * first, for a close that arrived while the loop was busy; busier ones need no syscall at all.
 * Whatever slips through fails the request rather than re-sending it (exchange.c). */
#include "upstream/upstream-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"

struct bp_upstream__dns {
    struct event_base *base;
    struct evdns_base *evdns;
    int pending;
    bool orphaned; /* its client is gone; freed once the last lookup has called back */
};

struct bp_upstream__dns_lookup {
    struct bp_upstream__dns *dns;
    struct bp_upstream__origin *o; /* NULL once detached */
    int family;
};

static void connect_next(struct bp_upstream__conn *c);
static void serve_waiters(struct bp_upstream__origin *o);
static void schedule_sweep(struct bp_upstream *u);

/* ---- origins --------------------------------------------------------------------------------- */

static bool
origin_matches(const struct bp_upstream__origin *o, const struct bp_upstream__url *url,
               const char *ca_file)
{
    if (o->tls != url->tls || o->port != url->port || strlen(o->host) != url->host_len ||
        strncasecmp(o->host, url->host, url->host_len) != 0) {
        return false;
    }
    if (o->ca_file == NULL || ca_file == NULL) {
        return o->ca_file == ca_file;
    }
    return strcmp(o->ca_file, ca_file) == 0;
}

static void
origin_set_ip(struct bp_upstream__origin *o)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&o->ip;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->ip;

    memset(&o->ip, 0, sizeof(o->ip));
    if (inet_pton(AF_INET, o->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(o->port);
        o->ip_len = sizeof(*v4);
        o->is_ip = true;
    } else if (inet_pton(AF_INET6, o->host, &v6->sin6_addr) == 1) {
        memset(&o->ip, 0, sizeof(o->ip));
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(o->port);
        o->ip_len = sizeof(*v6);
        o->is_ip = true;
    }
}

struct bp_upstream__origin *
bp_upstream__origin_get(struct bp_upstream *u, const struct bp_upstream__url *url,
                        const char *ca_file)
{
    struct bp_upstream__origin **pp;
    struct bp_upstream__origin *o;
    bool default_port;
    size_t alen;

    /* Plain http has no use for a CA file: keep one pool whatever the instance says. */
    if (!url->tls) {
        ca_file = NULL;
    }
    for (pp = &u->origins; *pp != NULL; pp = &(*pp)->next) {
        if (origin_matches(*pp, url, ca_file)) {
            o = *pp;
            /* Most recently used first: a worker talks to few Cores, mostly the same ones. */
            *pp = o->next;
            o->next = u->origins;
            u->origins = o;
            return o;
        }
    }
    o = bp_calloc(1, sizeof(*o));
    o->tls = url->tls;
    o->port = url->port;
    o->host = bp_strndup(url->host, url->host_len);
    o->ca_file = ca_file != NULL ? bp_strdup(ca_file) : NULL;
    /* Host: as curl wrote it: the port only when it is not the scheme's default. */
    default_port = o->port == (o->tls ? 443 : 80);
    alen = url->host_len + 2 + 6 + 1;
    o->authority = bp_malloc(alen);
    if (memchr(o->host, ':', url->host_len) != NULL) {
        snprintf(o->authority, alen, default_port ? "[%s]" : "[%s]:%u", o->host, (unsigned)o->port);
    } else {
        snprintf(o->authority, alen, default_port ? "%s" : "%s:%u", o->host, (unsigned)o->port);
    }
    origin_set_ip(o);
    o->next = u->origins;
    u->origins = o;
    return o;
}

static void
origin_free(struct bp_upstream__origin *o)
{
    if (o->lookup != NULL) {
        o->lookup->o = NULL; /* the lookup finishes on its own and finds nobody */
    }
    bp_upstream__tls_origin_free(o);
    bp_free(o->host);
    bp_free(o->authority);
    bp_free(o->ca_file);
    bp_free(o->addrs);
    bp_free(o->addr_lens);
    bp_free(o);
}

/* ---- connection lists ------------------------------------------------------------------------ */

static void
idle_unlink(struct bp_upstream__conn *c)
{
    struct bp_upstream__origin *o = c->o;

    if (c->idle_prev != NULL) {
        c->idle_prev->idle_next = c->idle_next;
    } else {
        o->idle_first = c->idle_next;
    }
    if (c->idle_next != NULL) {
        c->idle_next->idle_prev = c->idle_prev;
    } else {
        o->idle_last = c->idle_prev;
    }
    c->idle_prev = NULL;
    c->idle_next = NULL;
    o->n_idle--;
}

static void
idle_push_front(struct bp_upstream__conn *c)
{
    struct bp_upstream__origin *o = c->o;

    c->idle_prev = NULL;
    c->idle_next = o->idle_first;
    if (o->idle_first != NULL) {
        o->idle_first->idle_prev = c;
    } else {
        o->idle_last = c;
    }
    o->idle_first = c;
    o->n_idle++;
}

static void
resolving_unlink(struct bp_upstream__conn *c)
{
    struct bp_upstream__conn **pp = &c->o->resolving;

    while (*pp != NULL && *pp != c) {
        pp = &(*pp)->idle_next;
    }
    if (*pp == c) {
        *pp = c->idle_next;
    }
    c->idle_next = NULL;
}

void
bp_upstream__unwait(struct bp_upstream_xfer *x)
{
    struct bp_upstream__origin *o = x->o;
    struct bp_upstream_xfer *prev = NULL;

    for (struct bp_upstream_xfer *w = o->wait_first; w != NULL; prev = w, w = w->wait_next) {
        if (w != x) {
            continue;
        }
        if (prev != NULL) {
            prev->wait_next = x->wait_next;
        } else {
            o->wait_first = x->wait_next;
        }
        if (o->wait_last == x) {
            o->wait_last = prev;
        }
        x->wait_next = NULL;
        return;
    }
}

/* ---- events ---------------------------------------------------------------------------------- */

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct bp_upstream__conn *c = arg;
    struct bp_upstream *u = c->u;

    bp_upstream__enter(u);
    switch (c->state) {
    case BP_UPSTREAM_CONN_IDLE:
        bp_upstream__idle_on_read(c);
        break;
    case BP_UPSTREAM_CONN_HANDSHAKING:
        bp_upstream__exchange_on_handshake(c);
        break;
    case BP_UPSTREAM_CONN_BUSY:
        bp_upstream__exchange_on_read(c);
        break;
    default:
        break;
    }
    bp_upstream__leave(u);
}

static void
finish_connect(struct bp_upstream__conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        c->last_errno = err;
        bp_upstream__conn_close_fd(c);
        c->next_addr++;
        connect_next(c);
        return;
    }
    bp_upstream__conn_want_write(c, false);
    bp_upstream__conn_connected(c);
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct bp_upstream__conn *c = arg;
    struct bp_upstream *u = c->u;

    bp_upstream__enter(u);
    c->wev_added = false; /* not persistent */
    switch (c->state) {
    case BP_UPSTREAM_CONN_CONNECTING:
        finish_connect(c);
        break;
    case BP_UPSTREAM_CONN_HANDSHAKING:
        bp_upstream__exchange_on_handshake(c);
        break;
    case BP_UPSTREAM_CONN_BUSY:
        bp_upstream__exchange_on_write(c);
        break;
    default:
        break;
    }
    bp_upstream__leave(u);
}

void
bp_upstream__conn_want_read(struct bp_upstream__conn *c, bool on)
{
    if (c->rev == NULL || c->rev_added == on) {
        return;
    }
    if (on) {
        event_add(c->rev, NULL);
    } else {
        event_del(c->rev);
    }
    c->rev_added = on;
}

void
bp_upstream__conn_want_write(struct bp_upstream__conn *c, bool on)
{
    if (c->wev == NULL || c->wev_added == on) {
        return;
    }
    if (on) {
        event_add(c->wev, NULL);
    } else {
        event_del(c->wev);
    }
    c->wev_added = on;
}

/* ---- opening a connection -------------------------------------------------------------------- */

/* Closes the socket of the current connect attempt (or of the connection), not the connection. */
void
bp_upstream__conn_close_fd(struct bp_upstream__conn *c)
{
    if (c->rev != NULL) {
        event_free(c->rev);
        c->rev = NULL;
    }
    if (c->wev != NULL) {
        event_free(c->wev);
        c->wev = NULL;
    }
    c->rev_added = false;
    c->wev_added = false;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        bp_metrics_upstream_conns_add(-1);
    }
}

/* Fails the transfer a connection was opened for, and closes the connection. */
static void
conn_fail(struct bp_upstream__conn *c, bp_err rc, enum bp_metrics_upstream_error kind,
          const char *cause)
{
    struct bp_upstream_xfer *x = c->x;

    bp_upstream__conn_close(c);
    if (x != NULL) {
        bp_upstream__fail(x, rc, kind, cause);
    }
}

static const struct sockaddr *
conn_addr(const struct bp_upstream__conn *c, size_t i, socklen_t *len)
{
    const struct bp_upstream__origin *o = c->o;

    if (o->is_ip) {
        *len = o->ip_len;
        return i == 0 ? (const struct sockaddr *)&o->ip : NULL;
    }
    if (i >= o->n_addrs) {
        return NULL;
    }
    *len = o->addr_lens[i];
    return (const struct sockaddr *)&o->addrs[i];
}

static void
connect_next(struct bp_upstream__conn *c)
{
    struct bp_upstream *u = c->u;
    const struct sockaddr *sa;
    socklen_t len = 0;
    char cause[160];

    for (; (sa = conn_addr(c, c->next_addr, &len)) != NULL; c->next_addr++) {
        int one = 1;
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            c->last_errno = errno;
            continue;
        }
        c->fd = fd;
        bp_metrics_upstream_conns_add(1);
        /* Requests go out in one write; nothing is gained by Nagle's wait. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->rev = event_new(u->base, fd, EV_READ | EV_PERSIST, on_readable, c);
        c->wev = event_new(u->base, fd, EV_WRITE, on_writable, c);
        if (c->rev == NULL || c->wev == NULL) {
            c->last_errno = ENOMEM;
            bp_upstream__conn_close_fd(c);
            continue;
        }
        if (connect(fd, sa, len) == 0) {
            bp_upstream__conn_connected(c);
            return;
        }
        if (errno == EINPROGRESS) {
            c->state = BP_UPSTREAM_CONN_CONNECTING;
            bp_upstream__conn_want_write(c, true);
            return;
        }
        c->last_errno = errno;
        bp_upstream__conn_close_fd(c);
    }
    snprintf(cause, sizeof(cause), "connect failed: %s",
             c->last_errno != 0 ? strerror(c->last_errno) : "no address");
    conn_fail(c, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_CONNECT, cause);
}

static void
connect_start(struct bp_upstream__conn *c)
{
    c->next_addr = 0;
    c->last_errno = 0;
    connect_next(c);
}

/* ---- DNS ------------------------------------------------------------------------------------- */

static void
dns_free(struct bp_upstream__dns *dns)
{
    if (dns->evdns != NULL) {
        evdns_base_free(dns->evdns, 0);
    }
    bp_free(dns);
}

static void
dns_free_later(evutil_socket_t fd, short what, void *arg)
{
    dns_free(arg);
}

static void dns_lookup(struct bp_upstream__origin *o, struct bp_upstream__dns *dns, int family);

static void
add_addrs(struct bp_upstream__origin *o, const struct evutil_addrinfo *res)
{
    size_t n = 0;

    for (const struct evutil_addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        n++;
    }
    bp_free(o->addrs);
    bp_free(o->addr_lens);
    o->addrs = bp_calloc(n ? n : 1, sizeof(*o->addrs));
    o->addr_lens = bp_calloc(n ? n : 1, sizeof(*o->addr_lens));
    o->n_addrs = 0;
    for (const struct evutil_addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(o->addrs[0]) ||
            (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)) {
            continue;
        }
        memcpy(&o->addrs[o->n_addrs], ai->ai_addr, ai->ai_addrlen);
        o->addr_lens[o->n_addrs] = (socklen_t)ai->ai_addrlen;
        o->n_addrs++;
    }
}

/* The lookup of o ended: connect every connection that waited, or fail their transfers. */
static void
dns_done(struct bp_upstream__origin *o, int err)
{
    char cause[160];

    if (o->n_addrs > 0) {
        o->addrs_expire_ms = bp_clock_mono_ms() + BP_UPSTREAM_DNS_CACHE_MS;
    }
    snprintf(cause, sizeof(cause), "DNS lookup of the instance's host failed: %s",
             err != 0 ? evutil_gai_strerror(err) : "no address");
    while (o->resolving != NULL) {
        struct bp_upstream__conn *c = o->resolving;
        o->resolving = c->idle_next;
        c->idle_next = NULL;
        if (o->n_addrs > 0) {
            c->state = BP_UPSTREAM_CONN_CONNECTING;
            connect_start(c);
        } else {
            conn_fail(c, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_CONNECT, cause);
        }
    }
}

/* May run inside evdns_getaddrinfo (hosts file, numeric answers) or later from the loop. */
static void
on_dns(int err, struct evutil_addrinfo *res, void *arg)
{
    struct bp_upstream__dns_lookup *l = arg;
    struct bp_upstream__dns *dns = l->dns;
    struct bp_upstream__origin *o = l->o;
    int family = l->family;

    bp_free(l);
    dns->pending--;
    /* A detached lookup (its origin is gone) only has its memory to give back. */
    if (o != NULL) {
        o->lookup = NULL;
        if (err == 0 && res != NULL) {
            add_addrs(o, res);
        }
        if (o->n_addrs == 0 && family == AF_INET) {
            /* No IPv4 address: maybe an IPv6-only host. */
            if (res != NULL) {
                evutil_freeaddrinfo(res);
            }
            dns_lookup(o, dns, AF_INET6);
            return;
        }
        dns_done(o, err);
    }
    if (res != NULL) {
        evutil_freeaddrinfo(res);
    }
    if (dns->orphaned && dns->pending == 0) {
        /* Not from inside evdns's own callback: from the loop, once this has unwound. */
        if (event_base_once(dns->base, -1, EV_TIMEOUT, dns_free_later, dns, NULL) != 0) {
            BP_WARN("cannot schedule the release of the DNS resolver; leaving it");
        }
    }
}

static void
dns_lookup(struct bp_upstream__origin *o, struct bp_upstream__dns *dns, int family)
{
    struct bp_upstream__dns_lookup *l = bp_calloc(1, sizeof(*l));
    struct evutil_addrinfo hints;
    char port[8];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    l->dns = dns;
    l->o = o;
    l->family = family;
    o->lookup = l;
    dns->pending++;
    o->n_addrs = 0;
    snprintf(port, sizeof(port), "%u", (unsigned)o->port);
    /* The returned request is not kept: lookups are never cancelled (see the design block). */
    (void)evdns_getaddrinfo(dns->evdns, o->host, port, &hints, on_dns, l);
}

static struct bp_upstream__dns *
dns_get(struct bp_upstream *u)
{
    struct bp_upstream__dns *dns = u->dns;

    if (dns != NULL) {
        return dns;
    }
    dns = bp_calloc(1, sizeof(*dns));
    dns->base = u->base;
    /* Made on the first name lookup: a client that only talks to addresses never reads
     * resolv.conf. Inactive, it holds no event that would keep a loop running. */
    dns->evdns = evdns_base_new(u->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (dns->evdns == NULL) {
        bp_free(dns);
        return NULL;
    }
    /* 0x20 case randomisation trips some resolvers; nothing here needs it. */
    (void)evdns_base_set_option(dns->evdns, "randomize-case:", "0");
    u->dns = dns;
    return dns;
}

void
bp_upstream__dns_release(struct bp_upstream *u)
{
    struct bp_upstream__dns *dns = u->dns;

    if (dns == NULL) {
        return;
    }
    u->dns = NULL;
    if (dns->pending > 0) {
        dns->orphaned = true;
        return;
    }
    dns_free(dns);
}

static void
resolve(struct bp_upstream__conn *c)
{
    struct bp_upstream__origin *o = c->o;
    struct bp_upstream__dns *dns;

    c->state = BP_UPSTREAM_CONN_RESOLVING;
    c->idle_next = o->resolving;
    o->resolving = c;
    if (o->lookup != NULL) {
        return; /* one lookup per origin; this connection waits for its answer */
    }
    dns = dns_get(c->u);
    if (dns == NULL) {
        dns_done(o, EVUTIL_EAI_FAIL);
        return;
    }
    dns_lookup(o, dns, AF_INET);
}

/* ---- connections ----------------------------------------------------------------------------- */

static void
conn_open(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;
    struct bp_upstream__origin *o = x->o;
    struct bp_upstream__conn *c = bp_calloc(1, sizeof(*c));

    c->u = u;
    c->o = o;
    c->fd = -1;
    c->all_next = u->conns;
    if (u->conns != NULL) {
        u->conns->all_prev = c;
    }
    u->conns = c;
    o->n_conns++;
    c->x = x;
    c->n_requests = 1;
    x->c = c;
    x->state = BP_UPSTREAM_XFER_CONNECTING;
    x->connect_deadline_ms = bp_clock_mono_ms() + x->connect_timeout_ms;
    bp_upstream__arm_timer(x);
    if (o->is_ip || (o->n_addrs > 0 && bp_clock_mono_ms() < o->addrs_expire_ms)) {
        c->state = BP_UPSTREAM_CONN_CONNECTING;
        connect_start(c);
        return;
    }
    resolve(c);
}

/* The TCP connection is up: TLS next, or the request. */
void
bp_upstream__conn_connected(struct bp_upstream__conn *c)
{
    char cause[192];

    bp_upstream__conn_want_read(c, true);
    if (!c->o->tls) {
        c->state = BP_UPSTREAM_CONN_BUSY;
        bp_upstream__xfer_connected(c->x);
        return;
    }
    c->state = BP_UPSTREAM_CONN_HANDSHAKING;
    if (bp_upstream__tls_start(c, cause, sizeof(cause)) != BP_OK) {
        conn_fail(c, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_TLS, cause);
        return;
    }
    bp_upstream__exchange_on_handshake(c);
}

void
bp_upstream__conn_handshake_failed(struct bp_upstream__conn *c, const char *cause)
{
    conn_fail(c, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_TLS, cause);
}

static void
conn_free(struct bp_upstream__conn *c)
{
    if (c->rbuf != NULL) {
        bp_upstream__rbuf_give(c->u, c->rbuf, c->rcap);
    }
    bp_free(c);
}

void
bp_upstream__conn_close(struct bp_upstream__conn *c)
{
    struct bp_upstream *u = c->u;
    struct bp_upstream__origin *o = c->o;

    if (c->state == BP_UPSTREAM_CONN_CLOSED) {
        return;
    }
    if (c->state == BP_UPSTREAM_CONN_IDLE) {
        idle_unlink(c);
    } else if (c->state == BP_UPSTREAM_CONN_RESOLVING) {
        resolving_unlink(c);
    }
    /* close_notify only for a connection between answers: mid-answer there is nothing polite. */
    bp_upstream__tls_close(c, c->state == BP_UPSTREAM_CONN_IDLE || c->answer_complete);
    bp_upstream__conn_close_fd(c);
    c->state = BP_UPSTREAM_CONN_CLOSED;
    if (c->x != NULL) {
        c->x->c = NULL;
        c->x = NULL;
    }
    if (c->all_prev != NULL) {
        c->all_prev->all_next = c->all_next;
    } else {
        u->conns = c->all_next;
    }
    if (c->all_next != NULL) {
        c->all_next->all_prev = c->all_prev;
    }
    c->all_prev = NULL;
    o->n_conns--;
    /* A read or write callback of this connection may be on the stack: free it when the
     * dispatch unwinds (its events are gone already, so nothing else will call it). */
    if (u->dispatch_depth > 0) {
        c->all_next = u->conn_graveyard;
        u->conn_graveyard = c;
    } else {
        conn_free(c);
    }
    if (!u->closing) {
        serve_waiters(o);
    }
}

void
bp_upstream__conn_graveyard_free(struct bp_upstream *u)
{
    while (u->conn_graveyard != NULL) {
        struct bp_upstream__conn *c = u->conn_graveyard;
        u->conn_graveyard = c->all_next;
        conn_free(c);
    }
}

/* ---- taking and giving back ------------------------------------------------------------------ */

/* Whether an idle connection is still open, as far as can be told without waiting. */
static bool
idle_is_alive(struct bp_upstream__conn *c, int64_t now_ms)
{
    char byte;
    ssize_t n;

    if (now_ms - c->idle_since_ms < BP_UPSTREAM_IDLE_CHECK_MS && !bp_upstream__tls_has_pending(c)) {
        return true;
    }
    n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return !bp_upstream__tls_has_pending(c);
    }
    if (n > 0 && c->ssl != NULL) {
        /* TLS bytes on an idle connection may be a session ticket or close_notify: read them as
         * the idle read event would have. */
        bp_upstream__idle_on_read(c);
        return c->state == BP_UPSTREAM_CONN_IDLE && !bp_upstream__tls_has_pending(c);
    }
    return false;
}

static void
attach(struct bp_upstream_xfer *x, struct bp_upstream__conn *c)
{
    c->x = x;
    c->n_requests++;
    c->answer_complete = false;
    c->state = BP_UPSTREAM_CONN_BUSY;
    x->c = c;
    x->state = BP_UPSTREAM_XFER_EXCHANGING;
}

void
bp_upstream__acquire(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;
    struct bp_upstream__origin *o = x->o;
    int64_t now = 0;

    while (o->idle_first != NULL) {
        struct bp_upstream__conn *c = o->idle_first;

        if (now == 0) {
            now = bp_clock_mono_ms();
        }
        /* Checked while still in the pool: the check may read from it, and close it. */
        if (!idle_is_alive(c, now)) {
            bp_upstream__conn_close(c);
            continue;
        }
        idle_unlink(c);
        attach(x, c);
        if (bp_upstream__exchange_start(x)) {
            return;
        }
        /* Dead before a byte of the request went out: another connection may carry it. */
    }
    if (u->opts.max_connections_per_host > 0 && o->n_conns >= u->opts.max_connections_per_host) {
        x->state = BP_UPSTREAM_XFER_WAITING;
        x->wait_next = NULL;
        if (o->wait_last != NULL) {
            o->wait_last->wait_next = x;
        } else {
            o->wait_first = x;
        }
        o->wait_last = x;
        return;
    }
    conn_open(x);
}

/* A connection was freed up or closed: the oldest waiting transfer gets it, or a new one. */
static void
serve_waiters(struct bp_upstream__origin *o)
{
    struct bp_upstream_xfer *x = o->wait_first;
    struct bp_upstream *u;

    if (x == NULL) {
        return;
    }
    u = x->u;
    if (o->idle_first == NULL && u->opts.max_connections_per_host > 0 &&
        o->n_conns >= u->opts.max_connections_per_host) {
        return;
    }
    o->wait_first = x->wait_next;
    if (o->wait_first == NULL) {
        o->wait_last = NULL;
    }
    x->wait_next = NULL;
    bp_upstream__acquire(x);
}

void
bp_upstream__release(struct bp_upstream__conn *c, bool reusable)
{
    struct bp_upstream *u = c->u;
    struct bp_upstream__origin *o = c->o;
    size_t max_idle =
        u->opts.max_idle_per_host ? u->opts.max_idle_per_host : BP_UPSTREAM_DEFAULT_MAX_IDLE;

    if (c->x != NULL) {
        c->x->c = NULL;
        c->x = NULL;
    }
    c->answer_complete = true;
    if (!reusable || u->closing || c->rstart != c->rend || bp_upstream__tls_has_pending(c)) {
        bp_upstream__conn_close(c);
        return;
    }
    bp_upstream__conn_rbuf_release(c);
    c->state = BP_UPSTREAM_CONN_IDLE;
    c->idle_since_ms = bp_clock_mono_ms();
    /* Reading stays on (a close by Core is noticed as it happens), unless a pause left it off. */
    bp_upstream__conn_want_read(c, true);
    bp_upstream__conn_want_write(c, false);
    idle_push_front(c);
    while (o->n_idle > max_idle) {
        bp_upstream__conn_close(o->idle_last);
    }
    if (o->wait_first != NULL) {
        serve_waiters(o);
    }
    schedule_sweep(u);
}

/* ---- idle timeout ---------------------------------------------------------------------------- */

static int64_t
idle_timeout_ms(const struct bp_upstream *u)
{
    return u->opts.idle_timeout_ms > 0 ? u->opts.idle_timeout_ms
                                       : BP_UPSTREAM_DEFAULT_IDLE_TIMEOUT_MS;
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct bp_upstream *u = arg;
    int64_t now = bp_clock_mono_ms();
    int64_t limit = idle_timeout_ms(u);
    struct bp_upstream__origin **pp = &u->origins;

    bp_upstream__enter(u);
    u->sweep_pending = false;
    while (*pp != NULL) {
        struct bp_upstream__origin *o = *pp;
        /* Oldest last: close from the tail while they are too old. */
        while (o->idle_last != NULL && now - o->idle_last->idle_since_ms >= limit) {
            bp_upstream__conn_close(o->idle_last);
        }
        if (o->n_conns == 0 && o->n_xfers == 0 && o->wait_first == NULL && o->lookup == NULL &&
            now - o->last_used_ms >= limit) {
            *pp = o->next;
            origin_free(o);
            continue;
        }
        pp = &o->next;
    }
    schedule_sweep(u);
    bp_upstream__leave(u);
}

static void
schedule_sweep(struct bp_upstream *u)
{
    int64_t every = idle_timeout_ms(u) / 4;
    struct timeval tv;
    bool any = false;

    if (u->sweep_pending || u->closing) {
        return;
    }
    for (struct bp_upstream__origin *o = u->origins; o != NULL && !any; o = o->next) {
        any = o->n_idle > 0;
    }
    if (!any) {
        return;
    }
    if (u->sweep_ev == NULL) {
        u->sweep_ev = evtimer_new(u->base, on_sweep, u);
        if (u->sweep_ev == NULL) {
            return;
        }
    }
    if (every < 10) {
        every = 10;
    } else if (every > 15000) {
        every = 15000;
    }
    tv.tv_sec = every / 1000;
    tv.tv_usec = (every % 1000) * 1000;
    if (evtimer_add(u->sweep_ev, &tv) == 0) {
        u->sweep_pending = true;
    }
}

void
bp_upstream__pool_free_all(struct bp_upstream *u)
{
    while (u->conns != NULL) {
        bp_upstream__conn_close(u->conns);
    }
    bp_upstream__conn_graveyard_free(u);
    while (u->origins != NULL) {
        struct bp_upstream__origin *o = u->origins;
        u->origins = o->next;
        origin_free(o);
    }
    if (u->sweep_ev != NULL) {
        event_free(u->sweep_ev);
        u->sweep_ev = NULL;
    }
    bp_upstream__dns_release(u);
}
