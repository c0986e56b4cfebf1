#ifndef BP_UPSTREAM_UPSTREAM_H
#define BP_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "metrics/metrics.h"

/* The upstream client: an HTTP/1.1 client on one loop thread's libevent base, with a keep-alive
 * pool per origin (scheme, host, port, CA file), TLS to Core (OpenSSL, peer and host name
 * verified), non-blocking DNS, and Core's answers read by the strict response parser
 * (http/resp_parser.h). No redirects are followed and nothing is re-sent: once a byte of a
 * request went out, a lost connection is a failure, never a retry.
 *
 * Two ways to receive an answer: bp_upstream_send hands over the whole answer at once
 * (buffered, bounded by max_response_bytes); bp_upstream_stream hands over the head, then the
 * body in pieces as they arrive, with flow control, never holding the whole body.
 *
 * Threads: everything here runs on the owning loop thread (bp_upstream_global_init excepted). */

/* Whether path (resolved by the caller) can serve as an instance's CA file: a regular file of at
 * most 1 MiB holding PEM CA certificates that OpenSSL loads. NULL when it can; else what is wrong
 * (static text that never quotes the file). why[why_len] is scratch. */
const char *bp_upstream_ca_file_check(const char *path, char *why, size_t why_len);

struct event_base;
struct bp_upstream;
struct bp_upstream_xfer;

struct bp_upstream_opts {
    int64_t connect_timeout_ms; /* DNS, TCP connect and TLS handshake of a new connection */
    int64_t total_timeout_ms;   /* from send to the end of the answer (see streaming for pauses) */
    size_t max_response_bytes;  /* buffered mode: body cap, over it BP_ERR_UPSTREAM_TOO_LARGE */
    /* Connections per origin (busy, idle and being opened); requests beyond wait for one, within
     * their total timeout. 0: no limit. */
    size_t max_connections_per_host;
    /* Idle kept-alive connections kept per origin (0: 1024), and how long one may stay idle
     * before it is closed (0: 60 s). */
    size_t max_idle_per_host;
    int64_t idle_timeout_ms;
};

/* One request to Core. The caller owns every pointer. method, url, headers, ca_file,
 * request_id and instance_id are used (copied where needed) by bp_upstream_send/_stream and may
 * be freed when it returns; body is borrowed and must stay alive (and unchanged) until the
 * transfer has ended (its last callback ran) or bp_upstream_cancel has returned. */
struct bp_upstream_req {
    const char *method; /* "GET", "POST", ...: a token, else BP_ERR_INVALID */
    /* Full URL: http:// or https://, host (name, IPv4, or [IPv6]), optional port, then the target
     * sent as is (path and query, no normalisation; a '#' fragment is not sent). A URL the client
     * cannot use is reported through the callback, like an unreachable Core. */
    const char *url;
    /* "Name: value" lines, n_headers of them, written as given and in order, after a Host line
     * (unless one is given) and before the body framing, except: Content-Length,
     * Transfer-Encoding and Expect lines are dropped (the client frames the body from body_len,
     * without 100-continue); a line with CR or LF, or without a token name before ':', is
     * BP_ERR_INVALID. The client adds nothing else: no Accept, User-Agent, Content-Type,
     * Connection. These lines hold X-Blnk-Key and are never logged. */
    const char *const *headers;
    size_t n_headers;
    /* Sent byte-exact (NULs included) with Content-Length, for any method with body_len > 0 and
     * always for POST/PUT/PATCH (Content-Length: 0 when empty). May be NULL when body_len is 0. */
    const char *body;
    size_t body_len;
    const char *ca_file; /* https only: PEM bundle to verify Core with; NULL: system store */
    /* For the failure log line only, so an operator can find the request and the Core it was
     * for (may be NULL). */
    const char *request_id;
    const char *instance_id;
};

/* A response header. name and value are NUL-terminated; value has no leading or trailing
 * whitespace. Never contains CR, LF or NUL (the parser refuses them). */
struct bp_upstream_header {
    char *name;
    char *value;
    size_t name_len;
    size_t value_len;
};

/* ---- Buffered -------------------------------------------------------------------------------- */

/* Core's whole answer. Owned by the transfer; valid only during the callback. Headers are those
 * of the final response (after any 1xx), in order, with hop-by-hop ones (Connection and those it
 * names, Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade, Proxy-*) and Content-Length
 * removed: the body is complete and the caller frames it anew. */
struct bp_upstream_resp {
    int status;
    struct bp_upstream_header *headers;
    size_t n_headers;
    struct bp_buf body;
    int64_t upstream_us; /* time from send to complete response */
};

/* rc is BP_OK with resp set (any status, including 4xx/5xx), or BP_ERR_UPSTREAM_UNREACHABLE
 * (connect refused/failed, DNS, reset, TLS failure, malformed response, a URL the client cannot
 * use) or BP_ERR_UPSTREAM_TIMEOUT (connect or total timeout) or BP_ERR_UPSTREAM_TOO_LARGE (body
 * over max_response_bytes), with resp NULL. Failures are logged here (warn: request_id,
 * instance, error, method, host, cause) and counted by kind (bp_metrics_upstream_error). Runs
 * exactly once per successful send, never from inside bp_upstream_send. It may call
 * bp_upstream_send/_stream, bp_upstream_cancel on other transfers, and bp_upstream_free. */
typedef void (*bp_upstream_cb)(void *arg, bp_err rc, const struct bp_upstream_resp *resp);

/* ---- Streaming -------------------------------------------------------------------------------
 *
 * bp_upstream_stream starts a transfer whose answer is handed over as it arrives:
 *   on_head  at most once: the final response's head (1xx are skipped);
 *   on_body  zero or more times after on_head: the body bytes in order, each piece once;
 *   on_end   exactly once, last: BP_OK when the whole answer arrived as its framing says, else
 *            the failure (the codes of bp_upstream_cb). Failures are logged and counted as there.
 * on_end without on_head means nothing of the answer was accepted (the caller may still answer
 * 502/504). on_end with a failure after on_head means the answer was cut short or broke its own
 * framing: the caller must not let what it relayed look complete (close its client connection).
 *
 * Ownership: the head, its headers and each body piece belong to the client and are valid only
 * during the callback that receives them; copy what must outlive it.
 *
 * Memory: the body is never held whole. Per transfer the client keeps at most one read buffer
 * (16 KiB, more only while a head up to 64 KiB is being read) and, for a chunked body, one
 * decoded piece. max_response_bytes does not apply to a stream (nothing accumulates): a caller
 * that wants a cap counts the bytes in on_body and cancels.
 *
 * Flow control: bp_upstream_pause(x) stops delivery (of the head too, if it has not come yet)
 * and reading from Core until bp_upstream_resume(x); Core is then held back by TCP flow control.
 * The request still goes out. Either may be called at any time before on_end has run (calling
 * them again is a no-op), from inside the transfer's own callbacks too. Bytes already read wait
 * in the read buffer and are delivered, from the loop, after resume. The total timeout counts the time the transfer waits for Core, not the
 * time it is paused: pausing stops its clock and resuming restarts it with what was left.
 *
 * Re-entrancy: no callback runs inside bp_upstream_stream, bp_upstream_send, pause, resume or
 * cancel. Inside any of the three callbacks the caller may pause, resume or cancel this transfer,
 * start, pause, resume or cancel others, and call bp_upstream_free.
 *
 * Cancellation: bp_upstream_cancel(x) may be called at any point before on_end has run,
 * including inside on_head and on_body: no callback of x runs after it returns, the rest of the
 * answer is dropped and its connection closed (a connection is reused only after a complete
 * answer). The request may already have reached Core. Inside on_end, and after it, x is gone:
 * cancel is a no-op from inside on_end and must not be called after on_end returned. */

enum bp_upstream_framing {
    BP_UPSTREAM_BODY_NONE,    /* no body: HEAD, 1xx, 204, 304 */
    BP_UPSTREAM_BODY_LENGTH,  /* Content-Length: exactly content_length bytes follow */
    BP_UPSTREAM_BODY_CHUNKED, /* Core sent it chunked: length known only at the end */
    BP_UPSTREAM_BODY_CLOSE,   /* until Core closes: length known only at the end */
};

/* The final response's head. Headers as in struct bp_upstream_resp (hop-by-hop ones and
 * Content-Length removed); framing says how Core delimited the body. */
struct bp_upstream_head {
    int status;
    const struct bp_upstream_header *headers;
    size_t n_headers;
    enum bp_upstream_framing framing;
    uint64_t content_length; /* BP_UPSTREAM_BODY_LENGTH only */
    int64_t upstream_us;     /* time from send to this head */
};

typedef void (*bp_upstream_head_cb)(void *arg, const struct bp_upstream_head *head);
typedef void (*bp_upstream_body_cb)(void *arg, const char *data, size_t len);
typedef void (*bp_upstream_end_cb)(void *arg, bp_err rc);

/* The three callbacks of a stream; all required. Copied by bp_upstream_stream. */
struct bp_upstream_stream_cbs {
    bp_upstream_head_cb on_head;
    bp_upstream_body_cb on_body;
    bp_upstream_end_cb on_end;
};

/* ---- The client ------------------------------------------------------------------------------ */

bp_err bp_upstream_new(struct event_base *base, const struct bp_upstream_opts *opts,
                       struct bp_upstream **out);
/* Replaces the timeouts and the response cap for transfers started from now on (a configuration
 * reload); transfers in flight keep theirs. The connection limits and the idle timeout are fixed
 * by bp_upstream_new. Loop thread only. */
void bp_upstream_set_opts(struct bp_upstream *u, const struct bp_upstream_opts *opts);
/* Cancels every live transfer without running callbacks and closes every connection. Accepts
 * NULL. Safe inside a callback (the memory is released when the dispatch on the stack unwinds).
 * DNS lookups still in flight keep their resolver alive until they finish, if the loop runs
 * again; if it never does, their bookkeeping is left behind (libevent frees it in callbacks). */
void bp_upstream_free(struct bp_upstream *u);
/* Starts a buffered transfer. On BP_OK *out_xfer (may be NULL) is a handle valid until the
 * callback runs. BP_ERR_INVALID (and no callback) for a malformed request (bad method or header
 * line, no URL, body_len without body, no callback) or a client being freed. */
bp_err bp_upstream_send(struct bp_upstream *u, const struct bp_upstream_req *req, bp_upstream_cb cb,
                        void *arg, struct bp_upstream_xfer **out_xfer);
/* Starts a streaming transfer (contract above). On BP_OK *out_xfer (may be NULL) is a handle
 * valid until on_end runs. BP_ERR_INVALID as for bp_upstream_send, or a missing callback. */
bp_err bp_upstream_stream(struct bp_upstream *u, const struct bp_upstream_req *req,
                          const struct bp_upstream_stream_cbs *cbs, void *arg,
                          struct bp_upstream_xfer **out_xfer);
void bp_upstream_pause(struct bp_upstream_xfer *x);
void bp_upstream_resume(struct bp_upstream_xfer *x);
/* Abandons a transfer (the client went away): no callback of it runs afterwards. Accepts NULL;
 * a no-op from inside the transfer's final callback. Safe inside another transfer's callback. */
void bp_upstream_cancel(struct bp_upstream_xfer *x);
/* Calls fn(arg) on the client's loop every interval_ms, from now on, until replaced (0 or NULL
 * fn: never again) or the client is freed: work that belongs with this client's connections,
 * such as the instance health probe, without a thread or loop of its own. */
bp_err bp_upstream_set_tick(struct bp_upstream *u, int64_t interval_ms, void (*fn)(void *arg), void *arg);
/* Whether any byte of the request was written to a connection: false only when Core certainly
 * never saw it (every connection failed before that). For a transfer that may be ending: valid
 * from its start until its on_end returns. */
bool bp_upstream_sent_any(const struct bp_upstream_xfer *x);
/* Number of transfers in flight on this client. */
size_t bp_upstream_inflight(const struct bp_upstream *u);
/* Bytes of answer the client holds for its transfers right now: read buffers (used part) and
 * decoded chunk pieces, excluding buffered-mode bodies being assembled. For tests and metrics. */
size_t bp_upstream_buffered_bytes(const struct bp_upstream *u);

/* ---- One blocking exchange ------------------------------------------------------------------- */

/* What one exchange came to: rc BP_OK with Core's status, or the failure (the codes of
 * bp_upstream_cb) with its kind and cause as logged ("connect failed: Connection refused", the
 * DNS or TLS verification message; never request or answer bytes). */
struct bp_upstream_outcome {
    bp_err rc;
    int status;
    int64_t upstream_us;
    enum bp_metrics_upstream_error kind;
    char cause[256];
};

/* Sends req on a private loop and waits until the answer (buffered, bounded by opts) or the
 * failure, for a command-line tool that must tell a person what is wrong (`instance check`).
 * BP_OK with *out filled when the exchange was attempted; BP_ERR_NOMEM / BP_ERR_INVALID when the
 * client could not be made or req is malformed. Not for a loop thread: it blocks. */
bp_err bp_upstream_once(const struct bp_upstream_req *req, const struct bp_upstream_opts *opts,
                        struct bp_upstream_outcome *out);

/* Call once per process before any thread starts (OpenSSL's initialisation). Idempotent;
 * bp_upstream_new also calls it. */
bp_err bp_upstream_global_init(void);

#endif
