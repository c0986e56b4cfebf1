/* One request and its answer on one connection.
 *
 * Writing: the request head is built once per transfer (bp_upstream__build_request); head and
 * body go out with one sendmsg (plain) or, for TLS, as one record when the body is small enough
 * to ride in the head's buffer. A short write waits for writability and continues where it
 * stopped: the bytes go out once, in order. x->sent counts them.
 *
 * Never re-sending: a kept-alive connection whose first write fails with nothing sent (Core
 * closed it and the kernel already knows) is closed and the request may go on another
 * connection; that is the only retry, and it re-sends nothing. Once a byte went out, any loss of
 * the connection before a complete answer fails the transfer (BP_ERR_UPSTREAM_UNREACHABLE, kind
 * "reset"): Core may have acted on it (DESIGN §8).
 *
 * Reading: into the connection's read buffer, one read per readiness event unless the read
 * filled the buffer (so a small answer costs one recv). The head is parsed with the strict
 * response parser, re-parsed from the start as bytes arrive (bounded by its 64 KiB limit); 1xx
 * heads are skipped; the final head is filtered (hop-by-hop fields and Content-Length out),
 * NUL-terminated in place, and delivered; then the body by its framing: Content-Length bytes,
 * chunked (decoded with bp_http_chunked_feed into the transfer's piece buffer), or until close.
 *
 * Re-entrancy: every delivery may run caller code that cancels this transfer, frees the client
 * or pauses; after each, the reader checks whether it may go on. Nothing is freed under it: the
 * connection and transfer wait in their graveyards until the dispatch unwinds.
 *
 * Reuse: the connection goes back to the pool only when the answer was complete, the whole
 * request was written, Core did not ask to close (Connection: close, HTTP/1.0 without keep-alive,
 * close-delimited body), and no byte followed the answer. */
#include "upstream/upstream-int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"

enum step {
    STEP_MORE, /* made progress; look again */
    STEP_NEED, /* needs more bytes */
    STEP_STOP, /* the transfer ended, failed or was cancelled: touch nothing more */
};

/* ---- the request ----------------------------------------------------------------------------- */

/* line is "Name:value" (validated by the caller). Length first: few names have these. */
static bool
header_name_is(const char *line, size_t name_len, const char *name, size_t want_len)
{
    return name_len == want_len && strncasecmp(line, name, want_len) == 0;
}

#define LINE_IS(line, name_len, lit) header_name_is((line), (name_len), (lit), sizeof(lit) - 1)

static bool
method_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

void
bp_upstream__build_request(struct bp_upstream_xfer *x, const struct bp_upstream_req *req,
                           const struct bp_upstream__url *url)
{
    struct bp_buf *h = &x->req_head;
    bool has_host = false;
    bool has_body = req->body_len > 0 || method_is(req->method, "POST") ||
                    method_is(req->method, "PUT") || method_is(req->method, "PATCH");

    bp_buf_reset(h);
    bp_buf_append_str(h, req->method);
    bp_buf_append(h, " ", 1);
    bp_buf_append(h, url->target, url->target_len);
    bp_buf_append(h, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < req->n_headers && !has_host; i++) {
        has_host = LINE_IS(req->headers[i], strcspn(req->headers[i], ":"), "Host");
    }
    if (!has_host) {
        bp_buf_append(h, "Host: ", 6);
        bp_buf_append_str(h, x->o->authority);
        bp_buf_append(h, "\r\n", 2);
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *line = req->headers[i];
        size_t name_len = strcspn(line, ":");
        /* Framing is ours: the body is body_len bytes (a rewritten body may differ from what the
         * client declared), and nothing waits for 100-continue. */
        if (LINE_IS(line, name_len, "Content-Length") ||
            LINE_IS(line, name_len, "Transfer-Encoding") || LINE_IS(line, name_len, "Expect")) {
            continue;
        }
        bp_buf_append_str(h, line);
        bp_buf_append(h, "\r\n", 2);
    }
    if (has_body) {
        /* Digits written backwards by hand: printf is a measurable share of a request here. */
        char digits[24];
        size_t n = 0;
        size_t v = req->body_len;
        do {
            digits[sizeof(digits) - 1 - n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        bp_buf_append(h, "Content-Length: ", 16);
        bp_buf_append(h, digits + sizeof(digits) - n, n);
        bp_buf_append(h, "\r\n", 2);
    }
    bp_buf_append(h, "\r\n", 2);
    x->body = req->body_len > 0 ? req->body : NULL;
    x->body_len = req->body_len;
    x->body_in_head = 0;
    /* TLS writes records, not iovecs: a small body copied behind the head goes out as one record
     * and one send, as the plain path's sendmsg does. */
    if (x->o->tls && x->body_len > 0 && h->len + x->body_len <= BP_UPSTREAM_READ_BUF) {
        bp_buf_append(h, x->body, x->body_len);
        x->body_in_head = x->body_len;
    }
    x->is_head_method = method_is(req->method, "HEAD");
}

static size_t
request_total(const struct bp_upstream_xfer *x)
{
    return x->req_head.len + (x->body_len - x->body_in_head);
}

enum write_result {
    WRITE_DONE,
    WRITE_AGAIN,
    WRITE_ERROR,
};

/* Writes what is left of the request. On WRITE_ERROR cause is filled. */
static enum write_result
write_some(struct bp_upstream_xfer *x, char *cause, size_t cause_len)
{
    struct bp_upstream__conn *c = x->c;
    size_t total = request_total(x);

    while (x->sent < total) {
        size_t head_left = x->sent < x->req_head.len ? x->req_head.len - x->sent : 0;
        size_t body_off = x->sent - (x->req_head.len - head_left);
        size_t body_left = x->body_len - x->body_in_head - body_off;
        const char *body_at = body_left > 0 ? x->body + x->body_in_head + body_off : NULL;

        if (c->ssl != NULL) {
            size_t n = 0;
            enum bp_upstream__io io;
            if (head_left > 0) {
                io = bp_upstream__tls_write(c, x->req_head.data + x->sent, head_left, &n, cause,
                                            cause_len);
            } else {
                io = bp_upstream__tls_write(c, body_at, body_left, &n, cause, cause_len);
            }
            if (io == BP_UPSTREAM_IO_WANT_WRITE) {
                bp_upstream__conn_want_write(c, true);
                return WRITE_AGAIN;
            }
            if (io == BP_UPSTREAM_IO_WANT_READ) {
                /* The read event retries the write (exchange_on_read). */
                return WRITE_AGAIN;
            }
            if (io != BP_UPSTREAM_IO_OK) {
                return WRITE_ERROR;
            }
            x->sent += n;
        } else {
            struct iovec iov[2];
            struct msghdr msg;
            int n_iov = 0;
            ssize_t n;

            if (head_left > 0) {
                iov[n_iov].iov_base = x->req_head.data + x->sent;
                iov[n_iov].iov_len = head_left;
                n_iov++;
            }
            if (body_left > 0) {
                iov[n_iov].iov_base = (void *)body_at;
                iov[n_iov].iov_len = body_left;
                n_iov++;
            }
            memset(&msg, 0, sizeof(msg));
            msg.msg_iov = iov;
            msg.msg_iovlen = (size_t)n_iov;
            /* sendmsg, not writev: MSG_NOSIGNAL, so a closed peer is an EPIPE, never a SIGPIPE. */
            n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    bp_upstream__conn_want_write(c, true);
                    return WRITE_AGAIN;
                }
                snprintf(cause, cause_len, "sending the request failed: %s", strerror(errno));
                return WRITE_ERROR;
            }
            x->sent += (size_t)n;
        }
    }
    bp_upstream__conn_want_write(c, false);
    return WRITE_DONE;
}

static void
reset_answer(struct bp_upstream_xfer *x)
{
    x->rstate = BP_UPSTREAM_READ_HEAD;
    x->got_final_head = false;
    x->keep_alive = false;
    x->n_interim = 0;
    x->body_left = 0;
    memset(&x->chunked, 0, sizeof(x->chunked));
    bp_buf_reset(&x->piece);
}

bool
bp_upstream__exchange_start(struct bp_upstream_xfer *x)
{
    struct bp_upstream__conn *c = x->c;
    char cause[160];

    x->sent = 0;
    reset_answer(x);
    c->rstart = 0;
    c->rend = 0;
    if (write_some(x, cause, sizeof(cause)) != WRITE_ERROR) {
        return true;
    }
    if (x->sent == 0 && c->n_requests > 1) {
        /* A kept-alive connection Core had closed, and nothing of this request on it. */
        bp_upstream__conn_close(c);
        return false;
    }
    bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_RESET, cause);
    return true;
}

/* ---- the answer ------------------------------------------------------------------------------ */

#define NAME_IS(f, lit)                                                                            \
    ((f)->name_len == sizeof(lit) - 1 && strncasecmp((f)->name, (lit), sizeof(lit) - 1) == 0)

/* Whether name is one of the comma-separated tokens of a Connection header value. */
static bool
named_by(const struct bp_http_header *conn, const char *name, size_t name_len)
{
    size_t i = 0;
    const char *v = conn->value;

    while (i < conn->value_len) {
        size_t start;
        size_t end;
        while (i < conn->value_len && (v[i] == ',' || v[i] == ' ' || v[i] == '\t')) {
            i++;
        }
        start = i;
        while (i < conn->value_len && v[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t')) {
            end--;
        }
        if (end - start == name_len && name_len > 0 &&
            strncasecmp(v + start, name, name_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Hop-by-hop fields (RFC 9110 §7.6.1), Proxy-*, and Content-Length: the caller frames the body
 * itself (the stream says how Core framed it). */
static bool
is_hop_by_hop(const struct bp_http_header *f)
{
    return NAME_IS(f, "Connection") || NAME_IS(f, "Keep-Alive") ||
           NAME_IS(f, "Transfer-Encoding") || NAME_IS(f, "TE") || NAME_IS(f, "Trailer") ||
           NAME_IS(f, "Upgrade") || NAME_IS(f, "Content-Length") ||
           (f->name_len >= 6 && strncasecmp(f->name, "Proxy-", 6) == 0);
}

static bool
is_dropped(const struct bp_http_resp_head *h, const struct bp_http_header *f, bool has_connection)
{
    if (is_hop_by_hop(f)) {
        return true;
    }
    /* Connection may come after the fields it names: every one is consulted. */
    for (size_t i = 0; has_connection && i < h->n_headers; i++) {
        if (NAME_IS(&h->headers[i], "Connection") &&
            named_by(&h->headers[i], f->name, f->name_len)) {
            return true;
        }
    }
    return false;
}

/* Fills the client's header scratch with the end-to-end fields of h, NUL-terminated in place
 * (the byte after a name is its ':', after a value OWS or the CR: both already parsed). */
static size_t
filter_headers(struct bp_upstream *u, const struct bp_http_resp_head *h)
{
    size_t n = 0;
    bool *drop = NULL;
    bool drop_small[64];
    bool has_connection = false;

    /* Decide first, terminate after: terminating overwrites the ':' that later checks read
     * past, and a Connection value may name a field before it. */
    drop = h->n_headers <= BP_ARRAY_LEN(drop_small) ? drop_small
                                                    : bp_calloc(h->n_headers, sizeof(*drop));
    for (size_t i = 0; i < h->n_headers && !has_connection; i++) {
        has_connection = NAME_IS(&h->headers[i], "Connection");
    }
    for (size_t i = 0; i < h->n_headers; i++) {
        drop[i] = is_dropped(h, &h->headers[i], has_connection);
    }
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct bp_http_header *f = &h->headers[i];
        struct bp_upstream_header *out;
        char *name = (char *)f->name;
        char *value = (char *)f->value;

        if (drop[i]) {
            continue;
        }
        out = &u->hdr_scratch[n++];
        name[f->name_len] = '\0';
        value[f->value_len] = '\0';
        out->name = name;
        out->value = value;
        out->name_len = f->name_len;
        out->value_len = f->value_len;
    }
    if (drop != drop_small) {
        bp_free(drop);
    }
    return n;
}

/* The whole answer is in: give the connection back (or close it), then the final callback. */
static enum step
complete(struct bp_upstream_xfer *x)
{
    struct bp_upstream__conn *c = x->c;
    bool reusable =
        x->keep_alive && x->rstate != BP_UPSTREAM_READ_CLOSE && x->sent == request_total(x);

    x->rstate = BP_UPSTREAM_READ_DONE;
    bp_upstream__release(c, reusable);
    bp_upstream__deliver_end(x);
    return STEP_STOP;
}

static enum step
fail_answer(struct bp_upstream_xfer *x, const char *cause)
{
    bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_OTHER, cause);
    return STEP_STOP;
}

static enum step
step_head(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;
    struct bp_upstream__conn *c = x->c;
    struct bp_http_resp_head *h = u->head_scratch;
    struct bp_http_resp_limits lim = {
        .max_headers = BP_HTTP_RESP_DEFAULT_MAX_HEADERS,
        .max_head_bytes = BP_UPSTREAM_MAX_HEAD_BYTES,
    };
    struct bp_upstream_head head;
    size_t consumed = 0;
    enum bp_http_resp_body body;
    bp_err rc;

    rc = bp_http_parse_resp_head(c->rbuf + c->rstart, c->rend - c->rstart, &lim, h, &consumed);
    if (rc == BP_ERR_AGAIN) {
        return STEP_NEED;
    }
    if (rc == BP_ERR_LIMIT) {
        return fail_answer(x, "the answer's head is over 64 KiB or 256 fields");
    }
    if (rc != BP_OK) {
        return fail_answer(x, "malformed answer from Core (status line, header field or framing)");
    }
    if (h->status == 101) {
        return fail_answer(x, "Core switched protocols, which was never asked for");
    }
    if (h->status < 200) {
        /* Interim: dropped, the final answer follows. Bounded, or a Core could stream 1xx forever.
         */
        c->rstart += consumed;
        if (++x->n_interim > BP_UPSTREAM_MAX_INTERIM) {
            return fail_answer(x, "too many interim (1xx) answers");
        }
        return STEP_MORE;
    }
    body = bp_http_resp_body(h, x->is_head_method);
    x->keep_alive = h->keep_alive;
    x->got_final_head = true;
    memset(&head, 0, sizeof(head));
    head.status = h->status;
    head.n_headers = filter_headers(u, h);
    head.headers = u->hdr_scratch;
    head.upstream_us = bp_clock_mono_us() - x->start_us;
    switch (body) {
    case BP_HTTP_RESP_BODY_NONE:
        head.framing = BP_UPSTREAM_BODY_NONE;
        x->rstate = BP_UPSTREAM_READ_DONE;
        break;
    case BP_HTTP_RESP_BODY_LENGTH:
        head.framing = BP_UPSTREAM_BODY_LENGTH;
        head.content_length = h->content_length;
        x->rstate = BP_UPSTREAM_READ_LENGTH;
        x->body_left = h->content_length;
        break;
    case BP_HTTP_RESP_BODY_CHUNKED:
        head.framing = BP_UPSTREAM_BODY_CHUNKED;
        x->rstate = BP_UPSTREAM_READ_CHUNKED;
        break;
    case BP_HTTP_RESP_BODY_CLOSE:
        head.framing = BP_UPSTREAM_BODY_CLOSE;
        x->rstate = BP_UPSTREAM_READ_CLOSE;
        break;
    }
    /* Consumed before delivery: the callback may pause, and the bytes after the head are body. */
    c->rstart += consumed;
    if (!bp_upstream__deliver_head(x, &head)) {
        return STEP_STOP;
    }
    if (x->rstate == BP_UPSTREAM_READ_DONE ||
        (x->rstate == BP_UPSTREAM_READ_LENGTH && x->body_left == 0)) {
        return complete(x);
    }
    return STEP_MORE;
}

static enum step
step_body(struct bp_upstream_xfer *x)
{
    struct bp_upstream__conn *c = x->c;
    const char *in = c->rbuf + c->rstart;
    size_t avail = c->rend - c->rstart;

    switch (x->rstate) {
    case BP_UPSTREAM_READ_LENGTH: {
        size_t n = (uint64_t)avail < x->body_left ? avail : (size_t)x->body_left;
        c->rstart += n;
        x->body_left -= n;
        if (!bp_upstream__deliver_body(x, in, n)) {
            return STEP_STOP;
        }
        return x->body_left == 0 ? complete(x) : STEP_MORE;
    }
    case BP_UPSTREAM_READ_CHUNKED: {
        size_t used = 0;
        bp_err rc;

        bp_buf_reset(&x->piece);
        rc = bp_http_chunked_feed(&x->chunked, in, avail, &x->piece, &used);
        if (rc != BP_OK) {
            return fail_answer(x, "malformed chunked body from Core");
        }
        c->rstart += used;
        if (x->piece.len > 0 && !bp_upstream__deliver_body(x, x->piece.data, x->piece.len)) {
            return STEP_STOP;
        }
        return x->chunked.done ? complete(x) : STEP_MORE;
    }
    case BP_UPSTREAM_READ_CLOSE:
        c->rstart = c->rend;
        if (!bp_upstream__deliver_body(x, in, avail)) {
            return STEP_STOP;
        }
        return STEP_MORE;
    default:
        BP_UNREACHABLE();
        return STEP_STOP;
    }
}

/* Makes room at the end of the read buffer; false when a head would not fit even in the largest
 * buffer allowed (the parser refuses it at its limit first). */
static bool
make_room(struct bp_upstream__conn *c, struct bp_upstream_xfer *x)
{
    if (c->rstart == c->rend) {
        c->rstart = 0;
        c->rend = 0;
    }
    if (c->rend < c->rcap) {
        return true;
    }
    if (c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
        return true;
    }
    if (x->rstate != BP_UPSTREAM_READ_HEAD || c->rcap >= BP_UPSTREAM_MAX_HEAD_BYTES + 1) {
        return false;
    }
    /* Only a head needs its bytes in one piece. */
    c->rcap =
        c->rcap * 2 > BP_UPSTREAM_MAX_HEAD_BYTES + 1 ? BP_UPSTREAM_MAX_HEAD_BYTES + 1 : c->rcap * 2;
    c->rbuf = bp_realloc(c->rbuf, c->rcap);
    return true;
}

static enum step
on_eof(struct bp_upstream_xfer *x)
{
    if (x->rstate == BP_UPSTREAM_READ_CLOSE) {
        return complete(x);
    }
    bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_RESET,
                      x->got_final_head
                          ? "Core closed the connection before the answer was complete"
                      : x->sent == request_total(x)
                          ? "Core closed the connection without answering; not retried"
                          : "Core closed the connection while the request was being sent");
    return STEP_STOP;
}

/* Reads and delivers until the answer needs bytes the socket does not have yet, the transfer is
 * paused, or it ended. may_read: the socket was reported readable (or the caller just wrote). */
static void
read_loop(struct bp_upstream_xfer *x, bool may_read)
{
    for (;;) {
        struct bp_upstream__conn *c = x->c;
        enum bp_upstream__io io;
        char cause[192];
        size_t room;
        size_t n = 0;
        enum step st = STEP_NEED;

        if (x->paused) {
            bp_upstream__conn_want_read(c, false);
            bp_upstream__conn_rbuf_release(c);
            return;
        }
        if (c->rstart < c->rend) {
            st = x->rstate == BP_UPSTREAM_READ_HEAD ? step_head(x) : step_body(x);
            if (st == STEP_STOP) {
                return;
            }
            if (st == STEP_MORE) {
                continue;
            }
        }
        if (!may_read && !bp_upstream__tls_has_pending(c)) {
            bp_upstream__conn_rbuf_release(c);
            return;
        }
        if (c->rbuf == NULL) {
            c->rbuf = bp_upstream__rbuf_take(x->u);
            c->rcap = BP_UPSTREAM_READ_BUF;
        }
        if (!make_room(c, x)) {
            fail_answer(x, "the answer's head is over 64 KiB");
            return;
        }
        room = c->rcap - c->rend;
        if (c->ssl != NULL) {
            io = bp_upstream__tls_read(c, c->rbuf + c->rend, room, &n, cause, sizeof(cause));
        } else {
            ssize_t got = recv(c->fd, c->rbuf + c->rend, room, 0);
            if (got > 0) {
                n = (size_t)got;
                io = BP_UPSTREAM_IO_OK;
            } else if (got == 0) {
                io = BP_UPSTREAM_IO_EOF;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                io = BP_UPSTREAM_IO_WANT_READ;
            } else {
                snprintf(cause, sizeof(cause), "reading the answer failed: %s", strerror(errno));
                io = BP_UPSTREAM_IO_ERROR;
            }
        }
        switch (io) {
        case BP_UPSTREAM_IO_OK:
            c->rend += n;
            /* A short read drained the socket: the next bytes come with the next event. */
            may_read = n == room;
            break;
        case BP_UPSTREAM_IO_WANT_READ:
            bp_upstream__conn_rbuf_release(c);
            return;
        case BP_UPSTREAM_IO_WANT_WRITE:
            c->tls_read_wants_write = true;
            bp_upstream__conn_want_write(c, true);
            return;
        case BP_UPSTREAM_IO_EOF:
            on_eof(x);
            return;
        case BP_UPSTREAM_IO_ERROR:
            bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_RESET, cause);
            return;
        }
    }
}

void
bp_upstream__exchange_on_read(struct bp_upstream__conn *c)
{
    struct bp_upstream_xfer *x = c->x;
    char cause[192];

    if (x == NULL || x->state != BP_UPSTREAM_XFER_EXCHANGING) {
        return;
    }
    if (c->ssl != NULL && x->sent < request_total(x) && !c->wev_added) {
        /* A TLS write that waited for readability. */
        if (write_some(x, cause, sizeof(cause)) == WRITE_ERROR) {
            bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_RESET, cause);
            return;
        }
    }
    read_loop(x, true);
}

void
bp_upstream__exchange_on_write(struct bp_upstream__conn *c)
{
    struct bp_upstream_xfer *x = c->x;
    char cause[192];

    if (x == NULL || x->state != BP_UPSTREAM_XFER_EXCHANGING) {
        return;
    }
    if (c->tls_read_wants_write) {
        c->tls_read_wants_write = false;
        read_loop(x, true);
        if (x->state != BP_UPSTREAM_XFER_EXCHANGING || x->c != c) {
            return;
        }
    }
    if (x->sent < request_total(x) && write_some(x, cause, sizeof(cause)) == WRITE_ERROR) {
        bp_upstream__fail(x, BP_ERR_UPSTREAM_UNREACHABLE, BP_METRICS_UPSTREAM_RESET, cause);
    }
}

void
bp_upstream__exchange_on_handshake(struct bp_upstream__conn *c)
{
    char cause[192];

    switch (bp_upstream__tls_handshake(c, cause, sizeof(cause))) {
    case BP_UPSTREAM_IO_OK:
        bp_upstream__conn_want_write(c, false);
        c->state = BP_UPSTREAM_CONN_BUSY;
        bp_upstream__xfer_connected(c->x);
        return;
    case BP_UPSTREAM_IO_WANT_READ:
        bp_upstream__conn_want_write(c, false);
        return;
    case BP_UPSTREAM_IO_WANT_WRITE:
        bp_upstream__conn_want_write(c, true);
        return;
    case BP_UPSTREAM_IO_EOF:
        bp_upstream__conn_handshake_failed(c, "TLS handshake failed: Core closed the connection");
        return;
    case BP_UPSTREAM_IO_ERROR:
        bp_upstream__conn_handshake_failed(c, cause);
        return;
    }
}

void
bp_upstream__idle_on_read(struct bp_upstream__conn *c)
{
    char scratch[512];
    enum bp_upstream__io io;
    size_t n = 0;
    char cause[160];

    if (c->ssl != NULL) {
        io = bp_upstream__tls_read(c, scratch, sizeof(scratch), &n, cause, sizeof(cause));
    } else {
        ssize_t got = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
        if (got > 0) {
            io = BP_UPSTREAM_IO_OK;
        } else if (got == 0) {
            io = BP_UPSTREAM_IO_EOF;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            io = BP_UPSTREAM_IO_WANT_READ;
        } else {
            io = BP_UPSTREAM_IO_ERROR;
        }
    }
    if (io == BP_UPSTREAM_IO_WANT_READ || io == BP_UPSTREAM_IO_WANT_WRITE) {
        /* Nothing for us (a TLS 1.3 session ticket is consumed this way). */
        return;
    }
    /* A close, an error, or bytes nobody asked for (which would poison the next answer). */
    bp_upstream__conn_close(c);
}
