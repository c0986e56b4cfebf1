#ifndef BP_UPSTREAM_UPSTREAM_H
#define BP_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* The upstream client: one per loop thread, a libcurl multi handle driven by that thread's
 * libevent base (socket and timer callbacks), keeping keep-alive connections to each Core.
 * No redirects are followed, nothing is retried, TLS peers are verified.
 *
 * Threads: everything here runs on the owning loop thread. */

struct event_base;
struct bp_upstream;
struct bp_upstream_xfer;

struct bp_upstream_opts {
    int64_t connect_timeout_ms;
    int64_t total_timeout_ms;
    size_t max_response_bytes; /* body cap; over it the transfer fails with BP_ERR_UPSTREAM_TOO_LARGE */
    size_t max_connections_per_host; /* 0 = libcurl default */
};

/* One request to Core. The caller owns every pointer. method, url, headers and ca_file are
 * copied by bp_upstream_send and may be freed when it returns; body is borrowed and must stay
 * alive (and unchanged) until the callback has run or bp_upstream_cancel has returned. */
struct bp_upstream_req {
    const char *method;            /* "GET", "POST", ...: a token, else BP_ERR_INVALID */
    const char *url;               /* full URL: base + path + ("?" + query); http or https only */
    /* "Name: value" lines, n_headers of them, sent as given and in order, except:
     * Content-Length, Transfer-Encoding and Expect lines are dropped (the client frames the body
     * from body_len itself, without 100-continue); a line with CR or LF, or without a token name
     * before ':', is BP_ERR_INVALID. curl adds only Host (unless given) and body framing: no
     * Accept, User-Agent, Content-Type or Expect of its own. These lines hold X-Blnk-Key and are
     * never logged. */
    const char *const *headers;
    size_t n_headers;
    /* Sent byte-exact (NULs included) with Content-Length, for any method with body_len > 0 and
     * always for POST/PUT/PATCH (Content-Length: 0 when empty). May be NULL when body_len is 0.
     * A body that reached the wire is never sent again (no retry on a dead kept-alive connection:
     * that fails with BP_ERR_UPSTREAM_UNREACHABLE instead). */
    const char *body;
    size_t body_len;
    const char *ca_file;           /* NULL: system CA store */
    /* For the failure log line only, so an operator can find the request and the Core it was
     * for (may be NULL; copied). */
    const char *request_id;
    const char *instance_id;
};

struct bp_upstream_header {
    char *name;
    char *value;
};

/* Core's answer. Owned by the transfer; valid only during the callback. Headers are those of
 * the final response (after any 1xx), in order, with hop-by-hop ones (Connection and those it
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
 * (connect refused/failed, DNS, reset, TLS failure, malformed response, URL curl refused) or
 * BP_ERR_UPSTREAM_TIMEOUT (connect or total timeout) or BP_ERR_UPSTREAM_TOO_LARGE, with resp
 * NULL. Failures are logged here (warn: request_id, instance, method, host, curl code and
 * message). Runs exactly once per successful send, never from inside bp_upstream_send. It may
 * call bp_upstream_send, bp_upstream_cancel on other transfers, and bp_upstream_free. */
typedef void (*bp_upstream_cb)(void *arg, bp_err rc, const struct bp_upstream_resp *resp);

bp_err bp_upstream_new(struct event_base *base, const struct bp_upstream_opts *opts,
                       struct bp_upstream **out);
/* Replaces the timeouts and the response cap for transfers started from now on (a configuration
 * reload); transfers in flight keep theirs. max_connections_per_host is fixed by bp_upstream_new
 * and not changed here. Loop thread only. */
void bp_upstream_set_opts(struct bp_upstream *u, const struct bp_upstream_opts *opts);
/* Cancels every live transfer without running callbacks. Accepts NULL. Safe inside a callback
 * (the memory is released when the dispatch on the stack unwinds). */
void bp_upstream_free(struct bp_upstream *u);
/* Starts a transfer. On BP_OK *out_xfer (may be NULL) is a handle valid until the callback runs.
 * BP_ERR_INVALID (no callback) for a malformed request; curl's own refusals are reported through
 * the callback. */
bp_err bp_upstream_send(struct bp_upstream *u, const struct bp_upstream_req *req, bp_upstream_cb cb,
                        void *arg, struct bp_upstream_xfer **out_xfer);
/* Abandons a transfer (the client went away): the callback will not run. Accepts NULL; a no-op
 * from inside the transfer's own callback. Safe inside another transfer's callback. */
void bp_upstream_cancel(struct bp_upstream_xfer *x);
/* Number of transfers in flight on this client. */
size_t bp_upstream_inflight(const struct bp_upstream *u);

/* Call once per process before any thread starts (curl_global_init, pointed at bp_malloc and
 * friends). Idempotent; bp_upstream_new also calls it. */
bp_err bp_upstream_global_init(void);

#endif
