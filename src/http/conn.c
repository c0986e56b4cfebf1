/* One client connection on a loop thread: the transport under the request (request.c).
 *
 * Reading: the socket's read event stays armed for the connection's life (re-arming it per
 * request would cost an epoll_ctl each time); each readiness costs one read(2) into the
 * connection's read buffer, with no FIONREAD probe. The buffer comes from the worker's pool
 * when bytes arrive and goes back once the connection has consumed them all, between requests
 * or while a handler has the request, so neither an idle keep-alive connection nor a request
 * waiting for Core holds one. Buffered input is bounded (read_limit): at the
 * bound, reading pauses until the request consumes some.
 *
 * Writing: a response is written at once with one writev(2); only what the socket does not
 * take is copied into the connection's output buffer, and only then is the write event armed
 * until it drains. A finish hook may hold a response: its bytes wait in the output buffer, not
 * written, until the hook lets them go.
 *
 * Deadlines: one timer per connection, for whichever deadline applies now (conn_deadline): the
 * idle timeout between requests and while reading a body, the header timeout while a head is
 * incomplete, the idle timeout again when the client stops reading our output, the linger
 * bounds, and "now" once a write found the client gone (the close then runs from the loop).
 * Activity only moves a deadline later, which the timer learns when it fires early and re-arms
 * itself; it is re-armed at once only when a deadline moves earlier.
 *
 * TLS (tls_listen): a connection from the TLS listener does its handshake first (bounded by
 * header_timeout, driven by whichever event OpenSSL waits for), then reads and writes through
 * its session (tls.c) instead of read(2) and writev(2), and the same buffers and events work
 * unchanged, with two differences. OpenSSL may hold decrypted input that the socket will not
 * signal again, so after a read that leaves some, the read event is made active by hand. And a
 * write that must wait is retried from the output buffer with at least the bytes it offered,
 * as OpenSSL requires; small iovecs are joined first, so a response is one record, not three.
 *
 * Lifecycle: accept → (requests, request.c) → close. A connection is freed only from its own
 * event callbacks or from the server's stop, after which nothing touches it; the request is
 * aborted first, so no handler callback can reach a freed connection. A connection whose
 * response a finish hook still holds stays parked after its socket is closed, until the hook
 * releases it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "metrics/metrics.h"

#define LINGER_TOTAL_MS 5000
#define LINGER_IDLE_MS 2000
/* Compact the read buffer before a read when less than this is free at its end. */
#define INBUF_MIN_ROOM 2048
/* TLS: what one write offers at most (one record's worth), and the joined iovecs' limit. */
#define TLS_WRITE_MAX 16384

static void conn_free(struct bp_conn *c);

/* ---- read buffers ---- */

static void
inbuf_take(struct bp_conn *c)
{
    struct bp_worker *w = c->worker;

    if (c->in.data != NULL) {
        return;
    }
    if (w->inbuf_free != NULL) {
        c->in.data = w->inbuf_free;
        memcpy(&w->inbuf_free, c->in.data, sizeof(char *));
        w->n_inbuf_free--;
    } else {
        c->in.data = bp_malloc(BP_HTTP_INBUF_BYTES);
    }
    c->in.cap = BP_HTTP_INBUF_BYTES;
    c->in.start = 0;
    c->in.end = 0;
}

static void
inbuf_give_back(struct bp_conn *c)
{
    struct bp_worker *w = c->worker;

    if (c->in.data == NULL) {
        return;
    }
    if (c->in.cap == BP_HTTP_INBUF_BYTES && w->n_inbuf_free < BP_HTTP_INBUF_POOL_MAX) {
        memcpy(c->in.data, &w->inbuf_free, sizeof(char *));
        w->inbuf_free = c->in.data;
        w->n_inbuf_free++;
    } else {
        bp_free(c->in.data);
    }
    memset(&c->in, 0, sizeof(c->in));
}

void
bp_http__conn_consume(struct bp_conn *c, size_t n)
{
    BP_BUG_ON(n > c->in.end - c->in.start);
    c->in.start += n;
    if (c->in.start == c->in.end) {
        c->in.start = 0;
        c->in.end = 0;
    }
    if (!c->reading && !c->peer_eof && !c->closed && !c->lingering) {
        bp_http__conn_read_on(c); /* room again after a pause at the read limit */
    }
}

void
bp_http__conn_idle(struct bp_conn *c)
{
    if (c->in.data != NULL && c->in.start == c->in.end) {
        inbuf_give_back(c);
    }
}

/* Makes room for a read: compacts, or grows up to the read limit. False at the limit. */
static bool
inbuf_room(struct bp_conn *c)
{
    struct bp_http_inbuf *in = &c->in;
    size_t used = in->end - in->start;

    if (in->cap - in->end >= INBUF_MIN_ROOM) {
        return true;
    }
    if (in->start > 0) {
        memmove(in->data, in->data + in->start, used);
        in->start = 0;
        in->end = used;
        if (in->cap - in->end >= INBUF_MIN_ROOM) {
            return true;
        }
    }
    if (in->cap >= c->read_limit) {
        return in->end < in->cap;
    }
    in->cap = in->cap * 2 < c->read_limit ? in->cap * 2 : c->read_limit;
    if (in->data != NULL) {
        in->data = bp_realloc(in->data, in->cap);
    }
    return true;
}

/* ---- reading and writing on/off ---- */

void
bp_http__conn_read_off(struct bp_conn *c)
{
    if (c->reading) {
        event_del(c->rev);
        c->reading = false;
    }
}

void
bp_http__conn_read_on(struct bp_conn *c)
{
    if (!c->reading && !c->closed) {
        event_add(c->rev, NULL);
        c->reading = true;
        if (bp_http__tls_pending(c)) {
            event_active(c->rev, EV_READ, 1); /* input OpenSSL held while reading paused */
        }
    }
}

static void
write_on(struct bp_conn *c)
{
    if (!c->writing) {
        event_add(c->wev, NULL);
        c->writing = true;
        c->last_write_ms = bp_clock_mono_ms();
    }
}

static void
write_off(struct bp_conn *c)
{
    if (c->writing) {
        event_del(c->wev);
        c->writing = false;
    }
}

size_t
bp_http__conn_pending(const struct bp_conn *c)
{
    return c->out != NULL ? evbuffer_get_length(c->out) : 0;
}

/* ---- the transport: the socket, or TLS over it ---- */

static ssize_t
conn_recv(struct bp_conn *c, char *buf, size_t len)
{
    return c->ssl != NULL ? bp_http__tls_read(c, buf, len) : read(c->fd, buf, len);
}

/* TLS: writes len bytes record by record while the session takes them. Returns the bytes
 * written; -1 (errno) only when none were and the write must wait (EAGAIN) or failed. */
static ssize_t
tls_send(struct bp_conn *c, const char *p, size_t len)
{
    size_t done = 0;

    while (done < len) {
        size_t chunk = len - done < TLS_WRITE_MAX ? len - done : TLS_WRITE_MAX;
        ssize_t w = bp_http__tls_write(c, p + done, chunk);
        if (w <= 0) {
            return done > 0 ? (ssize_t)done : -1;
        }
        done += (size_t)w;
    }
    return (ssize_t)done;
}

/* As writev(2). */
static ssize_t
conn_sendv(struct bp_conn *c, const struct iovec *iov, int n, size_t total)
{
    ssize_t w;
    size_t done = 0;

    if (c->ssl == NULL) {
        do {
            w = writev(c->fd, iov, n);
        } while (w < 0 && errno == EINTR);
        return w;
    }
    if (total <= TLS_WRITE_MAX) {
        char joined[TLS_WRITE_MAX];
        for (int i = 0; i < n; i++) {
            memcpy(joined + done, iov[i].iov_base, iov[i].iov_len);
            done += iov[i].iov_len;
        }
        return tls_send(c, joined, total);
    }
    for (int i = 0; i < n; i++) {
        w = tls_send(c, iov[i].iov_base, iov[i].iov_len);
        if (w < 0) {
            return done > 0 ? (ssize_t)done : -1;
        }
        done += (size_t)w;
        if ((size_t)w < iov[i].iov_len) {
            break;
        }
    }
    return (ssize_t)done;
}

/* Writes up to atmost bytes of c->out, as evbuffer_write_atmost (which it is without TLS). */
static int
out_write(struct bp_conn *c, size_t atmost)
{
    size_t done = 0;

    if (c->ssl == NULL) {
        return evbuffer_write_atmost(c->out, c->fd, atmost == SIZE_MAX ? -1 : (ev_ssize_t)atmost);
    }
    while (done < atmost) {
        size_t pending = evbuffer_get_length(c->out);
        size_t len = pending < TLS_WRITE_MAX ? pending : TLS_WRITE_MAX;
        ssize_t w;
        if (len > atmost - done) {
            len = atmost - done;
        }
        if (len == 0) {
            break;
        }
        /* At least what the previous attempt offered (it was at the front, at most a record). */
        w = bp_http__tls_write(c, evbuffer_pullup(c->out, (ev_ssize_t)len), len);
        if (w <= 0) {
            return done > 0 ? (int)done : -1;
        }
        evbuffer_drain(c->out, (size_t)w);
        done += (size_t)w;
    }
    return (int)done;
}

/* ---- the deadline ---- */

int64_t
bp_http__idle_timeout_ms(struct bp_conn *c)
{
    return bp_http__worker_conf(c->worker)->cfg->idle_timeout_ms;
}

static int64_t
idle_timeout_ms(struct bp_conn *c)
{
    return bp_http__idle_timeout_ms(c);
}

static int64_t
min_ms(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The deadline that applies in the connection's current state; -1 when none does. The
 * transport's own (a client that stopped reading, lingering) come first; otherwise the
 * request's (request.c: idle between requests, the head's deadline, none while Core works). */
static int64_t
conn_deadline(struct bp_conn *c)
{
    if (c->closed) {
        return -1;
    }
    if (c->broken) {
        return 0; /* now: see bp_http__conn_write */
    }
    if (c->lingering) {
        return min_ms(c->linger_until_ms, c->last_read_ms + LINGER_IDLE_MS);
    }
    if (c->ssl != NULL && !c->tls_ready) {
        return c->tls_deadline_ms; /* the handshake: as long as a head may take */
    }
    if (c->writing) {
        /* The client stopped reading: it does not get to pin a buffered response forever. */
        return c->last_write_ms + idle_timeout_ms(c);
    }
    return bp_http__req_deadline(c);
}

static void
arm_timer(struct bp_conn *c, int64_t at_ms, int64_t now_ms)
{
    int64_t in_ms = at_ms > now_ms ? at_ms - now_ms : 0;
    struct timeval tv = {in_ms / 1000, (in_ms % 1000) * 1000};

    evtimer_add(c->timer, &tv);
    c->timer_armed = true;
    c->timer_at_ms = at_ms;
}

void
bp_http__conn_update_timer(struct bp_conn *c)
{
    int64_t at = conn_deadline(c);

    if (at < 0) {
        return; /* a timer that fires meanwhile finds nothing due and stays off */
    }
    if (!c->timer_armed || at < c->timer_at_ms) {
        arm_timer(c, at, bp_clock_mono_ms());
    }
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_conn *c = arg;
    int64_t now = bp_clock_mono_ms();
    int64_t at = conn_deadline(c);
    (void)fd;
    (void)what;

    c->timer_armed = false;
    if (c->broken) {
        bp_http__conn_close(c);
        return;
    }
    if (at < 0) {
        return;
    }
    if (now < at) {
        arm_timer(c, at, now);
        return;
    }
    if (c->ssl != NULL && !c->tls_ready && !c->lingering) {
        bp_http__conn_close(c); /* no handshake in time: counted as failed */
        return;
    }
    if (c->writing) {
        BP_INFO("client stopped reading; closing", BP_LSTR("peer", c->peer));
        bp_http__conn_close(c);
        return;
    }
    if (c->lingering) {
        bp_http__conn_close(c);
        return;
    }
    bp_http__req_timed_out(c); /* may close c */
}

/* ---- events ---- */

/* Closing a socket with unread input makes the kernel send a reset, which can destroy the
 * response before the client reads it (a client still streaming a refused body would see
 * ECONNRESET instead of its 413). So after such an answer we half-close, then read and discard
 * (never buffer) what the client still sends, for a bounded time, before closing. */
static void
start_linger(struct bp_conn *c)
{
    int64_t now = bp_clock_mono_ms();

    bp_http__tls_shutdown(c);
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->in.start = 0;
    c->in.end = 0;
    inbuf_give_back(c);
    c->linger_until_ms = now + LINGER_TOTAL_MS;
    c->last_read_ms = now;
    bp_http__conn_read_on(c);
    bp_http__conn_update_timer(c);
}

static void
discard_input(struct bp_conn *c)
{
    char sink[4096];
    ssize_t n = read(c->fd, sink, sizeof(sink));

    if (n > 0) {
        c->last_read_ms = bp_clock_mono_ms();
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    bp_http__conn_close(c);
}

/* The client half-closed. */
static void
on_eof(struct bp_conn *c)
{
    bp_http__conn_read_off(c);
    c->peer_eof = true;
    /* A client may half-close after sending its request: answer what was asked, then close. */
    if (bp_http__req_answer_owed(c)) {
        c->close_after_write = true;
        return;
    }
    bp_http__conn_close(c);
}

/* A plain HTTP request on the TLS listener (a wrong URL scheme, most likely) gets a plain answer
 * that says so, as nginx's does, in one send: a client that does not take it loses nothing. */
static void
tls_refuse_plain(struct bp_conn *c)
{
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 55\r\n"
                                 "Connection: close\r\n"
                                 "\r\n"
                                 "This address speaks HTTPS: use an https:// URL for it.\n";

    if (send(c->fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        bp_http__conn_close(c);
        return;
    }
    start_linger(c); /* the rest of the request must not turn the close into a reset */
}

/* TLS: the handshake goes on when the socket is ready for what OpenSSL waits for. */
static void
tls_handshake_step(struct bp_conn *c)
{
    switch (bp_http__tls_handshake(c)) {
    case BP_TLS_DONE:
        if (bp_http__conn_pending(c) == 0) {
            write_off(c);
        }
        c->last_read_ms = bp_clock_mono_ms();
        event_active(c->rev, EV_READ, 1); /* a request may have come with the handshake's end */
        bp_http__conn_update_timer(c);
        return;
    case BP_TLS_WANT_READ:
        if (bp_http__conn_pending(c) == 0) {
            write_off(c);
        }
        return;
    case BP_TLS_WANT_WRITE:
        write_on(c);
        return;
    case BP_TLS_FAILED:
        bp_http__conn_close(c);
        return;
    case BP_TLS_PLAIN_HTTP:
        tls_refuse_plain(c);
        return;
    }
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_conn *c = arg;
    ssize_t n;
    (void)fd;
    (void)what;

    if (c->lingering) {
        discard_input(c);
        return;
    }
    if (c->ssl != NULL && !c->tls_ready) {
        tls_handshake_step(c);
        return;
    }
    if (c->tls_read_wants_write) {
        return; /* write_cb retries the read */
    }
    inbuf_take(c);
    if (!inbuf_room(c)) {
        /* At the read limit (pipelined requests waiting behind a slow one): pause. */
        bp_http__conn_read_off(c);
        return;
    }
    /* One read per readiness: if more is waiting, the (level-triggered) event fires again;
     * what OpenSSL holds does not make the socket readable, so then the event is made active. */
    n = conn_recv(c, c->in.data + c->in.end, c->in.cap - c->in.end);
    if (n > 0) {
        c->in.end += (size_t)n;
        c->last_read_ms = bp_clock_mono_ms();
        if (bp_http__tls_pending(c)) {
            event_active(c->rev, EV_READ, 1); /* dropped by a read_off or a close meanwhile */
        }
        bp_http__req_input(c); /* may close c */
        return;
    }
    if (n == 0) {
        on_eof(c);
        return;
    }
    if (errno == EAGAIN || errno == EINTR) {
        if (c->tls_read_wants_write) {
            write_on(c);
        }
        return;
    }
    bp_http__conn_close(c);
}

/* Writes what waits in c->out. Returns false when the connection broke (it is closed then). */
static bool
flush_out(struct bp_conn *c)
{
    int n = out_write(c, SIZE_MAX);

    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        bp_http__conn_close(c);
        return false;
    }
    if (n > 0) {
        c->last_write_ms = bp_clock_mono_ms();
    }
    return true;
}

static void
after_flush(struct bp_conn *c)
{
    if (bp_http__conn_pending(c) > 0) {
        write_on(c);
        bp_http__conn_update_timer(c);
        if (bp_http__conn_pending(c) < BP_HTTP_WRITE_HIGH_MARK / 2) {
            bp_http__req_flushed(c); /* a streamed response that was behind may go on */
        }
        return;
    }
    write_off(c);
    bp_http__req_flushed(c); /* may close c */
}

/* Holding: only what was queued before the held bytes may go (a 100 Continue a short write left
 * behind); then the write event waits for the release. */
static void
write_unheld(struct bp_conn *c)
{
    int n = c->unheld > 0 ? out_write(c, c->unheld) : 0;

    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        bp_http__conn_close(c);
        return;
    }
    if (n > 0) {
        c->unheld -= (size_t)n;
        c->last_write_ms = bp_clock_mono_ms();
    }
    if (c->unheld == 0) {
        write_off(c);
    }
}

static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bp_conn *c = arg;
    (void)what;

    if (c->ssl != NULL && !c->tls_ready) {
        tls_handshake_step(c);
        return;
    }
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        if (bp_http__conn_pending(c) == 0) {
            write_off(c);
        }
        read_cb(fd, EV_READ, c); /* may close c */
        return;
    }
    if (c->holding) {
        write_unheld(c);
        return;
    }
    if (!flush_out(c)) {
        return;
    }
    after_flush(c);
}

void
bp_http__conn_write(struct bp_conn *c, const struct iovec *iov, int n, bool hold)
{
    ssize_t w = 0;
    size_t total = 0;

    if (c->closed) {
        return; /* nobody to send it to */
    }
    for (int i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    if (!hold && bp_http__conn_pending(c) == 0) {
        w = conn_sendv(c, iov, n, total);
        if (w < 0) {
            if (errno != EAGAIN) {
                /* The client is gone. What was not sent is dropped. The connection closes from
                 * the loop at once (its timer, armed for now), never inside the caller's call:
                 * a request that completes meanwhile ends first as usual, and a streamed one
                 * does not go on writing into a dead socket (its handler hears on_abort). */
                c->close_after_write = true;
                c->peer_eof = true;
                c->broken = true;
                bp_http__conn_update_timer(c);
                return;
            }
            w = 0;
        }
        if ((size_t)w == total) {
            return;
        }
    }
    if (c->out == NULL) {
        c->out = evbuffer_new();
        BP_BUG_ON(c->out == NULL);
    }
    if (hold && !c->holding) {
        c->holding = true;
        c->unheld = evbuffer_get_length(c->out);
    }
    for (int i = 0; i < n; i++) {
        if ((size_t)w >= iov[i].iov_len) {
            w -= (ssize_t)iov[i].iov_len;
            continue;
        }
        evbuffer_add(c->out, (const char *)iov[i].iov_base + w, iov[i].iov_len - (size_t)w);
        w = 0;
    }
    if (!hold) {
        write_on(c);
        bp_http__conn_update_timer(c);
    }
}

void
bp_http__conn_unhold(struct bp_conn *c)
{
    c->holding = false;
    c->unheld = 0;
    if (c->closed) {
        return;
    }
    if (bp_http__conn_pending(c) > 0 && !flush_out(c)) {
        return;
    }
    after_flush(c);
}

/* ---- accept and close ---- */

/* max_connections_per_peer: a peer at its limit is closed at once, before it costs anything
 * here. Trusted proxies carry every client behind them and are not limited. */
static bool
peer_admitted(struct bp_worker *w, const struct bp_ip *ip)
{
    const struct bp_http_conf *conf = bp_http__worker_conf(w);
    size_t max = (size_t)conf->cfg->max_connections_per_peer;
    int64_t now;

    if (max > 0 && bp_ipnet_list_contains(conf->trusted, conf->n_trusted, ip)) {
        max = 0;
    }
    if (bp_http__peer_take(ip, max)) {
        return true;
    }
    bp_metrics_client_conn_refused();
    /* One line a second per worker at most: the refusals of a flood are counted, not logged. */
    now = bp_clock_mono_ms();
    if (now - w->last_peer_warn_ms >= 1000) {
        char text[BP_IP_TEXT_MAX];
        w->last_peer_warn_ms = now;
        bp_ip_format(ip, text);
        BP_WARN("connection refused: the peer has max_connections_per_peer open already",
                BP_LSTR("peer", text), BP_LINT("max_connections_per_peer", (int64_t)max));
    }
    return false;
}

void
bp_http__conn_accept(struct bp_worker *w, int fd, const struct sockaddr *sa, int salen,
                     enum bp_http__listener kind)
{
    const struct bp_http_conf *conf = bp_http__worker_conf(w);
    const struct bp_config *cfg = conf->cfg;
    struct bp_conn *c;
    struct bp_ip ip;
    bool known = bp_ip_from_sockaddr(sa, &ip);
    int one = 1;

    (void)salen;
    if (known && !peer_admitted(w, &ip)) {
        close(fd);
        return;
    }
    c = bp_calloc(1, sizeof(*c));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->peer_known = known;
    c->peer_counted = known;
    c->ops = kind == BP_LISTENER_OPS;
    c->peer_ip = ip;
    if (c->peer_known) {
        bp_ip_format(&c->peer_ip, c->peer);
    } else {
        snprintf(c->peer, sizeof(c->peer), "unknown");
    }
    c->worker = w;
    c->fd = fd;
    if (kind == BP_LISTENER_TLS && (conf->tls == NULL || !bp_http__tls_start(c, conf->tls))) {
        if (c->peer_counted) {
            bp_http__peer_release(&c->peer_ip);
        }
        close(fd);
        bp_free(c);
        return;
    }
    c->tls_deadline_ms = bp_clock_mono_ms() + cfg->header_timeout_ms;
    c->req.conn = c;
    bp_arena_init(&c->req.arena, &w->arenas);
    c->hold.conn = c;
    c->read_limit = cfg->max_head_bytes + 65536;
    c->rev = event_new(w->base, fd, EV_READ | EV_PERSIST, read_cb, c);
    c->wev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, write_cb, c);
    c->timer = evtimer_new(w->base, timer_cb, c);
    BP_BUG_ON(c->rev == NULL || c->wev == NULL || c->timer == NULL);
    c->last_read_ms = bp_clock_mono_ms();
    c->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = c;
    }
    w->conns = c;
    w->n_conns++;
    bp_metrics_client_conns_add(1);
    bp_http__conn_read_on(c);
    bp_http__conn_update_timer(c);
}

void
bp_http__conn_close(struct bp_conn *c)
{
    struct bp_worker *w = c->worker;

    if (c->closed) {
        return;
    }
    c->closed = true;
    /* The handler hears of it first, while everything it may look at still exists. */
    bp_http__req_abort(c);
    event_free(c->rev);
    event_free(c->wev);
    event_free(c->timer);
    c->rev = NULL;
    c->wev = NULL;
    c->timer = NULL;
    c->reading = false;
    c->writing = false;
    if (c->ssl != NULL) {
        bp_http__tls_shutdown(c);
        bp_http__tls_end(c);
    }
    close(c->fd);
    c->fd = -1;
    inbuf_give_back(c);
    if (c->out != NULL) {
        evbuffer_free(c->out);
        c->out = NULL;
    }
    bp_metrics_client_conns_add(-1);
    if (c->peer_counted) {
        bp_http__peer_release(&c->peer_ip);
        c->peer_counted = false;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = NULL;
    c->next = NULL;
    w->n_conns--;
    if (bp_http__req_busy(c)) {
        /* A hook holds the response: the connection waits, parked, for its release. */
        c->held_parked = true;
        w->n_parked++;
    } else {
        conn_free(c);
    }
    bp_http__drain_check(w);
}

static void
conn_free(struct bp_conn *c)
{
    bp_free(c);
}

void
bp_http__conn_unpark(struct bp_conn *c)
{
    struct bp_worker *w = c->worker;

    BP_BUG_ON(!c->closed || !c->held_parked);
    c->held_parked = false;
    w->n_parked--;
    conn_free(c);
    bp_http__drain_check(w);
}

/* ---- plain refusals (DESIGN §2: malformed HTTP gets a plain answer and a closed connection) ---- */

void
bp_http__conn_refuse(struct bp_conn *c, int status)
{
    const char *text = status == 431 ? "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                     : status == 408 ? "HTTP/1.1 408 Request Timeout\r\n"
                                     : "HTTP/1.1 400 Bad Request\r\n";
    static const char tail[] = "Content-Length: 0\r\nConnection: close\r\n\r\n";
    struct iovec iov[2] = {{(void *)text, strlen(text)}, {(void *)tail, sizeof(tail) - 1}};

    c->close_after_write = true;
    c->linger = true;
    /* Nothing more is read until the answer is out; then lingering reads and discards. */
    bp_http__conn_read_off(c);
    bp_http__conn_write(c, iov, 2, false);
}

bool
bp_http__conn_after_request(struct bp_conn *c)
{
    if (c->close_after_write) {
        if (c->linger && !c->peer_eof) {
            start_linger(c);
            return false;
        }
        bp_http__conn_close(c);
        return false;
    }
    if (c->worker->draining && c->in.start == c->in.end) {
        bp_http__conn_close(c);
        return false;
    }
    bp_http__conn_update_timer(c);
    return true;
}
