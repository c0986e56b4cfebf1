#ifndef BP_HTTP_HTTP_H
#define BP_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* The HTTP/1.1 protocol layer: listeners and worker loops, client connections, the strict
 * request parser (parser.h), the request with its one state machine, response framing, and the
 * hooks that run when a request finishes. It knows nothing of proxying, OAuth, audit, the store
 * or credentials: serve registers handlers for paths and finish hooks for every request (the
 * shape of h2o's handlers and loggers, and of nginx's content and log phases).
 *
 * A request's walk: the connection reads its head and parses it; the route table picks a
 * handler by path; the handler answers at once, or asks for the body and answers when it is
 * read, or hands work elsewhere and answers later; the response is framed here; once its last
 * byte is queued, every finish hook runs once, in order (one of them may hold the response
 * until it lets it go); when the bytes are out, the request ends and the connection reads the
 * next one.
 *
 * Threads: everything here runs on the request's worker loop, except bp_http_hold_release and
 * what says otherwise. A request lives on one worker from accept to reply. */

struct bp_config;
struct bp_server;
struct bp_http_tls;
struct bp_http_req;
struct bp_http_hold;
struct bp_http_head;
struct bp_arena;
struct bp_inbox;
struct event_base;

/* ---- handlers and the route table ---- */

/* Answers the requests routed to it. Every callback runs on the request's loop thread. A
 * handler answers each request exactly once (bp_http_respond, or bp_http_resp_start ... _end),
 * unless the connection goes first (on_abort). */
struct bp_http_handler {
    const char *name;
    /* The head is parsed and checked. Answer now, or call bp_http_req_read_body (on_body runs
     * when the body is in), or start work elsewhere and answer when it completes. */
    void (*on_head)(void *self, struct bp_http_req *req);
    /* The body asked for is complete (rc BP_OK, bp_http_req_body has it), or it is over the
     * limit (rc BP_ERR_PAYLOAD_TOO_LARGE: answer it, in the handler's own error shape; the rest
     * of the body stays unread and the connection closes after the answer). May be NULL if the
     * handler never asks for a body. */
    void (*on_body)(void *self, struct bp_http_req *req, bp_err rc);
    /* The connection goes away (the client left, or the shutdown deadline) before the answer
     * was complete: stop the work started for req; nothing can be sent any more. Return true to
     * have the request finish anyway (its finish hooks run, status 499): a call that may have
     * reached Core is still recorded. May be NULL (nothing to stop, nothing to record). */
    bool (*on_abort)(void *self, struct bp_http_req *req);
    /* A streamed response may go on: the client's buffer drained after bp_http_resp_write
     * returned false. May be NULL for handlers that never stream. */
    void (*on_writable)(void *self, struct bp_http_req *req);
    /* The request ends (after its finish hooks, once its bytes are out or the connection is
     * gone): release what the per-request state holds. May be NULL. */
    void (*on_end)(void *self, struct bp_http_req *req);
    /* Per-worker state (e.g. the proxy's upstream client on that worker's loop): made for each
     * worker before its loop starts, unmade after it stopped; reconf runs on the loop when a
     * new live configuration reached it. Each may be NULL. */
    bp_err (*worker_init)(void *self, struct event_base *base, const struct bp_config *cfg, void **out);
    void (*worker_fini)(void *self, void *wstate);
    void (*worker_reconf)(void *self, void *wstate, const struct bp_config *cfg);
    void *self;
    /* Bytes of per-request state the request keeps for the handler (bp_http_req_state). */
    size_t state_size;
};

/* One row of the route table: requests whose path is `path` (exact) or starts with it (prefix)
 * go to handler. Rows are tried in order; the first that matches wins. */
struct bp_http_route {
    const char *path;
    bool prefix;
    const struct bp_http_handler *handler;
    bool ops; /* also served on the ops listener (ops_listen), where no other route is */
};

/* ---- finish hooks ---- */

/* Runs when a request is finished (the access log, metrics, the audit record). */
struct bp_http_hook {
    const char *name;
    /* At the start of the response, before any byte of it is sent: true holds all of the
     * response's bytes in memory until this hook lets them go (its finish gets the hold). At
     * most one hook may hold a request. A streamed response may be let go before its end
     * (bp_http_req_hold); its finish then gets no hold. May be NULL. */
    bool (*hold)(void *self, struct bp_http_req *req);
    /* Once per request, after its response's last byte was queued (or the request ended
     * without one: the client left, or a malformed request was refused), in the order the hooks
     * were registered. hold is non-NULL when this hook's hold returned true and the hold was
     * not released yet: then bp_http_hold_release(hold) must be called exactly once, now or
     * later, from any thread (by whoever the hook's module arranged it with). */
    void (*finish)(void *self, struct bp_http_req *req, struct bp_http_hold *hold);
    void *self;
};

/* Lets a held response go: its bytes are sent (when the connection is still there) and the
 * request ends, or, for a streamed response released before its end, goes on streaming. Any
 * thread; exactly once per hold. */
void bp_http_hold_release(struct bp_http_hold *hold);
/* The request's hold while one is in effect (after the response started), else NULL. For the
 * holding hook's module, to release a streamed response before its end: a held stream's writes
 * wait in memory and count toward bp_http_resp_write's bound, so a hold kept until the finish
 * would stop a stream longer than the bound for good. */
struct bp_http_hold *bp_http_req_hold(struct bp_http_req *req);

/* ---- the request ---- */

/* What a finished request says about itself, for the finish hooks. http fills the protocol
 * part; the handler what it knows (through bp_http_req_facts). Strings must live as long as the
 * request (static text, the live configuration, the request's arena or state). */
struct bp_http_facts {
    /* Set by the handler. */
    const char *group;         /* a closed label for metrics ("transactions", "oauth", "ops") */
    const char *route;         /* the route pattern that matched, NULL when none */
    const char *instance;      /* the instance id it was for, NULL when none */
    const char *credential;    /* the id of the credential that was used, NULL when none */
    bp_err outcome;            /* why it failed, BP_OK when it did not */
    const char *reason;        /* fixed text saying more about outcome, or NULL */
    int upstream_status;       /* the status the upstream answered, 0 when there was none */
    int64_t upstream_us;       /* how long the upstream took */
    /* Set by http. */
    const char *handler;       /* the handler's name, NULL when no handler got the request */
    int status;                /* the status sent (499 when the client left first) */
    uint64_t bytes_in;         /* body bytes read */
    uint64_t bytes_out;        /* body bytes sent */
    int64_t total_us;          /* from the first byte of the head to the finish */
};

/* The parsed head (method, target, path, query, headers; see parser.h). Valid until the end. */
const struct bp_http_head *bp_http_req_head(const struct bp_http_req *req);
/* The request id: the client's X-Request-Id when it is one (a single header of at most 128
 * characters from [A-Za-z0-9._:-]), else a generated UUIDv7. Sent back as X-Request-Id. */
const char *bp_http_req_id(const struct bp_http_req *req);
/* The client's address ("127.0.0.1", "::1"): the connection's peer, or when that peer is one of
 * trusted_proxies, the client its X-Forwarded-For names (the rightmost address that is not a
 * trusted proxy). What audit records, logs and per-client throttles use. */
const char *bp_http_req_peer(const struct bp_http_req *req);
/* The connection's own peer address, whoever the client is. */
const char *bp_http_req_socket_peer(const struct bp_http_req *req);
/* The X-Forwarded-For chain believed from trusted proxies, from the client on ("203.0.113.7,
 * 10.0.0.2"), without the socket's peer; NULL (and 0) when none: a client's own X-Forwarded-For
 * is never believed. */
const char *bp_http_req_forwarded_for(const struct bp_http_req *req, size_t *out_len);
/* Whether the client's connection was HTTPS: a trusted proxy's X-Forwarded-Proto said so. */
bool bp_http_req_https(const struct bp_http_req *req);
/* Counts one strike against the request's connection and returns the connection's strikes so
 * far (a handler's own measure of misbehaviour, e.g. failed authentication). */
unsigned bp_http_req_conn_strike(struct bp_http_req *req);
/* The connection closes after this request's response (which says Connection: close). Call
 * before responding. */
void bp_http_req_close_after(struct bp_http_req *req);
/* Whether the request came in on the ops listener (ops_listen). */
bool bp_http_req_on_ops(const struct bp_http_req *req);
/* The live configuration the request started with, and the application's part of it (see
 * bp_server_reconfigure); both stay valid and unchanged until the request ends. */
const struct bp_config *bp_http_req_cfg(const struct bp_http_req *req);
void *bp_http_req_app(const struct bp_http_req *req);
/* The handler's per-request state: state_size bytes, zeroed when the handler got the request. */
void *bp_http_req_state(struct bp_http_req *req);
/* The same, but only when req went to handler h; NULL otherwise (for hooks of one handler). */
void *bp_http_req_state_for(struct bp_http_req *req, const struct bp_http_handler *h);
/* The handler's per-worker state (worker_init's). */
void *bp_http_req_worker_state(struct bp_http_req *req);
/* Memory that lives until the request ends. */
struct bp_arena *bp_http_req_arena(struct bp_http_req *req);
/* The worker loop's inbox: work handed to other threads comes back to the request's loop. */
struct bp_inbox *bp_http_req_inbox(struct bp_http_req *req);
/* The server the request came to. */
struct bp_server *bp_http_req_server(struct bp_http_req *req);
/* The facts the finish hooks read; the handler writes its part. */
struct bp_http_facts *bp_http_req_facts(struct bp_http_req *req);
/* Microseconds since the request's first byte (monotonic clock). */
int64_t bp_http_req_age_us(const struct bp_http_req *req);

/* Reads the body (Content-Length or chunked), at most limit bytes, then calls the handler's
 * on_body (also for a request without a body). A body over the limit goes to on_body as
 * BP_ERR_PAYLOAD_TOO_LARGE; a malformed chunked body is refused here with a plain 400 (the
 * request finishes without the handler). Answers "100 Continue" when the client asked for it
 * and has sent nothing yet. At most once per request. */
void bp_http_req_read_body(struct bp_http_req *req, size_t limit);
/* The same for a body read before the client is authenticated (OAuth's forms): it must arrive,
 * with its head, within header_timeout of the request's first byte, instead of body_timeout
 * plus body_min_rate. */
void bp_http_req_read_body_anonymous(struct bp_http_req *req, size_t limit);
/* Request body bytes held now, over all connections (what max_buffered_bytes bounds: a body that
 * would pass it goes to on_body as BP_ERR_OVERLOADED, unread). */
size_t bp_http_buffered_bytes(void);
/* The body read (after on_body); NULL and 0 when there was none. */
const char *bp_http_req_body(const struct bp_http_req *req, size_t *out_len);

/* ---- responses ---- */

#define BP_HTTP_LENGTH_NONE (-1)    /* no body and no Content-Length: answers to HEAD, 1xx, 204, 304 */
#define BP_HTTP_LENGTH_UNKNOWN (-2) /* a streamed body of unknown length: chunked on HTTP/1.1,
                                     * delimited by closing the connection on HTTP/1.0 */

struct bp_http_resp {
    int status;
    const char *headers;       /* extra header lines, each "Name: value\r\n"; may be NULL */
    size_t headers_len;
    const char *content_type;  /* NULL: no Content-Type line */
    int64_t length;            /* body bytes that will follow, or BP_HTTP_LENGTH_* */
};

/* A complete response in one call: r->length is ignored and taken from body_len (unless
 * BP_HTTP_LENGTH_NONE). Adds Content-Length, X-Request-Id (unless r->headers has one) and
 * Connection: close when the connection will close (the client asked, shutdown, or the
 * request's body is still unread on the wire). No body bytes go out for HEAD. body is copied
 * or sent before this returns. The request then finishes (finish hooks run). */
void bp_http_respond(struct bp_http_req *req, const struct bp_http_resp *r, const char *body, size_t body_len);

/* A streamed response: the head now, the body in pieces, then the end. */
void bp_http_resp_start(struct bp_http_req *req, const struct bp_http_resp *r);
/* Queues p[0..n) (copied or sent before it returns). Returns false when the client is behind
 * (more than a bounded amount waits to be written, held bytes included): the caller should stop
 * producing until the handler's on_writable runs. Returning false loses nothing: the piece was
 * queued. Never ends the request: a client found gone is closed from the loop afterwards (the
 * handler's on_abort). */
bool bp_http_resp_write(struct bp_http_req *req, const char *p, size_t n);
/* The body is complete (chunked: the last chunk is sent). The request then finishes. */
void bp_http_resp_end(struct bp_http_req *req);
/* The streamed body cannot be completed (its source failed): what was queued still goes out,
 * the end does not (no last chunk; fewer bytes than a Content-Length said), and the connection
 * closes, so the client cannot take the body for complete. rc becomes the request's outcome;
 * the request then finishes. */
void bp_http_resp_abort(struct bp_http_req *req, bp_err rc);

/* ---- the server ---- */

struct bp_server_spec {
    const struct bp_config *cfg;           /* the start configuration; outlives the server */
    const struct bp_http_route *routes;    /* the route table; outlives the server */
    size_t n_routes;
    const struct bp_http_hook *hooks;      /* finish hooks, run in this order; outlive it */
    size_t n_hooks;
    /* The application's part of the first live configuration (bp_http_req_app), owned by the
     * server from now on and freed with app_free when no request uses it any more. */
    void *app;
    void (*app_free)(void *app);
};

/* Binds the listeners (port 0 picks one free port shared by every worker) and prepares the
 * workers (the handlers' per-worker state included); nothing is served until bp_server_run.
 * Unless cfg->reuse_port, refuses (BP_ERR_EXISTS) an address that a socket already listens on:
 * a second serve would otherwise share it through SO_REUSEPORT and split the traffic. On
 * failure writes the reason, naming the address, to err; spec->app is freed. */
bp_err bp_server_new(const struct bp_server_spec *spec, struct bp_server **out, char *err, size_t err_len);
/* Starts the worker threads. */
bp_err bp_server_run(struct bp_server *s, char *err, size_t err_len);
/* The check bp_server_new makes before it binds (unless cfg->reuse_port): BP_OK when no socket
 * listens on cfg's address, else BP_ERR_EXISTS and "cannot listen on ADDRESS: address already in
 * use ..." in err; BP_ERR_INVALID when ops_listen is the listen address itself. serve calls it before opening the store, to fail before touching anything. */
bp_err bp_server_check_address(const struct bp_config *cfg, char *err, size_t err_len);
/* Publishes a new live configuration (a reload): its limits, timeouts and app part apply to
 * every request that starts from now on, its worker-wide settings (connection limit, the
 * handlers' worker_reconf) to each worker as soon as its loop wakes; requests in flight finish
 * with the configuration they started with. Settings fixed at start (listen, workers, ...) are
 * read from the start configuration only. Takes ownership of cfg (freed with
 * bp_config_cleanup and bp_free) and of app (freed with the spec's app_free). Call from the
 * thread that started the server, before bp_server_stop. tls (bp_http_tls_load of cfg) is taken
 * too: NULL keeps the certificate in use. */
void bp_server_reconfigure(struct bp_server *s, struct bp_config *cfg, void *app, struct bp_http_tls *tls);
/* TLS on the listener (tls_listen): cfg's certificate chain and key (cfg->tls_cert, tls_key), read
 * now into what new TLS connections will use. *out is NULL when cfg has no tls_listen. On failure
 * err says which file and why, in words for the operator (never the key's bytes). Main thread:
 * bp_server_new reads them itself; a reload reads them again and hands them to
 * bp_server_reconfigure, so that a certificate renewed on disk applies without a restart. */
bp_err bp_http_tls_load(const struct bp_config *cfg, struct bp_http_tls **out, char *err, size_t err_len);
/* NULL is a no-op. */
void bp_http_tls_free(struct bp_http_tls *t);
/* The bound port. */
int bp_server_port(const struct bp_server *s);
/* The ops listener's port (ops_listen), 0 when there is none. */
int bp_server_ops_port(const struct bp_server *s);
/* The TLS listener's port (tls_listen), 0 when there is none. */
int bp_server_tls_port(const struct bp_server *s);
/* Readiness as /readyz reports it (issue 9). A server starts BP_STARTING: nothing has said the
 * credential tables are loaded until the watcher does (a PostgreSQL store down at start would
 * otherwise be reported ready until the watcher's first check). */
enum bp_readiness {
    BP_READY = 0,   /* 200 {"status":"ready"} */
    BP_STARTING,    /* 503 {"status":"starting","reason":…}: no tables loaded yet, so /proxy/ is
                       answered 503 PROXY_NOT_READY too */
    BP_DEGRADED,    /* 503 {"status":"degraded","reason":…}: the store does not answer; /proxy/
                       is served from the last tables, OAuth answers 503 */
};
/* reason: why not ready (copied; password-free text), NULL for BP_READY. Any thread. */
void bp_server_set_readiness(struct bp_server *s, enum bp_readiness state, const char *reason);
/* The state now, and its reason copied into reason (NUL-terminated, "" when ready). Any thread;
 * a short lock shared only with bp_server_set_readiness, so no request waits on it. */
enum bp_readiness bp_server_readiness(struct bp_server *s, char *reason, size_t reason_len);
/* Graceful stop: stop accepting, close idle connections, let in-flight requests finish within
 * cfg->shutdown_timeout_ms, then join the workers. Call from the thread that started it. */
void bp_server_stop(struct bp_server *s);
/* Frees the server; completions that came back after the loops stopped run first (held
 * responses are released, handed-off work is freed). NULL is a no-op. */
void bp_server_free(struct bp_server *s);

#endif
