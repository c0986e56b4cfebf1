#ifndef BP_UPSTREAM_UPSTREAM_INT_H
#define BP_UPSTREAM_UPSTREAM_INT_H

/* Shared between the upstream client's files; not part of its interface (upstream.h is).
 *
 *   client.c    the client and its transfers: public calls, timers, the dispatch guard, failure
 *               reports (log line, metrics), the buffered mode built on the stream callbacks
 *   pool.c      origins, keep-alive pools, opening connections (DNS, connect, TLS handshake)
 *   exchange.c  one request/response on a connection: writing the request, reading, parsing and
 *               delivering the answer, pause/resume, deciding whether the connection is reusable
 *   tls.c       OpenSSL: contexts per CA file, handshake, reads and writes
 *   url.c       splitting a URL into origin and target
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http/parser.h"
#include "http/resp_parser.h"
#include "lib/buf.h"
#include "metrics/metrics.h"
#include "upstream/upstream.h"

struct event;
struct evdns_base;
struct ssl_st;
struct ssl_ctx_st;
struct ssl_session_st;

#define BP_UPSTREAM_READ_BUF 16384
/* A head is read into one buffer; it may grow to this for a large head, then the answer fails. */
#define BP_UPSTREAM_MAX_HEAD_BYTES 65536
#define BP_UPSTREAM_MAX_METHOD 32
#define BP_UPSTREAM_MAX_INTERIM 16 /* 1xx answers before the final one */
#define BP_UPSTREAM_DEFAULT_MAX_IDLE 1024
#define BP_UPSTREAM_DEFAULT_IDLE_TIMEOUT_MS 60000
/* An idle connection older than this is checked (one non-blocking peek) before a request goes
 * out on it, to catch a close by Core that the loop has not yet seen. */
#define BP_UPSTREAM_IDLE_CHECK_MS 1000
#define BP_UPSTREAM_DNS_CACHE_MS 30000
#define BP_UPSTREAM_LOG_ID_MAX 64

struct bp_upstream__conn;
struct bp_upstream__tls_ctx;
struct bp_upstream__dns;
struct bp_upstream__dns_lookup;

/* ---- URL ------------------------------------------------------------------------------------- */

struct bp_upstream__url {
    bool tls;
    const char *host; /* into the caller's URL; IPv6 without brackets */
    size_t host_len;
    uint16_t port;
    bool port_given;
    const char *target; /* path and query; "/" when the URL has neither */
    size_t target_len;
};

/* Splits url. On failure returns BP_ERR_INVALID and sets *out_why to a fixed reason. */
bp_err bp_upstream__url_parse(const char *url, struct bp_upstream__url *out, const char **out_why);

/* ---- origins and connections ----------------------------------------------------------------- */

struct bp_upstream__origin {
    struct bp_upstream__origin *next;
    bool tls;
    char *host;      /* NUL-terminated, IPv6 without brackets */
    char *authority; /* the Host header value: host, [v6] with brackets, ":port" unless default */
    uint16_t port;
    char *ca_file; /* https only; NULL: system store */
    /* An IP literal needs no DNS: its address, port included. */
    bool is_ip;
    struct sockaddr_storage ip;
    socklen_t ip_len;
    /* DNS: the last answer (addresses with the port set) until addrs_expire_ms, and the lookup
     * in flight, with the connections waiting for it (linked by idle_next). */
    struct sockaddr_storage *addrs;
    socklen_t *addr_lens;
    size_t n_addrs;
    int64_t addrs_expire_ms;
    struct bp_upstream__dns_lookup *lookup;
    struct bp_upstream__conn *resolving;
    /* The last TLS session Core gave a connection of this origin: a new connection resumes it. */
    struct ssl_session_st *tls_session;
    unsigned long tls_session_gen; /* of the context it was made with (tls.c) */
    /* Idle connections, most recently used first. */
    struct bp_upstream__conn *idle_first;
    struct bp_upstream__conn *idle_last;
    size_t n_idle;
    size_t n_conns; /* every open connection of this origin */
    size_t n_xfers; /* live transfers that point to it: it is not freed before they end */
    /* Transfers waiting for a connection (max_connections_per_host reached), oldest first. */
    struct bp_upstream_xfer *wait_first;
    struct bp_upstream_xfer *wait_last;
    int64_t last_used_ms;
};

enum bp_upstream__conn_state {
    BP_UPSTREAM_CONN_RESOLVING,
    BP_UPSTREAM_CONN_CONNECTING,
    BP_UPSTREAM_CONN_HANDSHAKING,
    BP_UPSTREAM_CONN_BUSY, /* carrying a transfer's request and answer */
    BP_UPSTREAM_CONN_IDLE, /* in its origin's pool */
    BP_UPSTREAM_CONN_CLOSED,
};

struct bp_upstream__conn {
    struct bp_upstream *u;
    struct bp_upstream__origin *o;
    struct bp_upstream__conn *all_prev; /* every connection of the client, or the graveyard */
    struct bp_upstream__conn *all_next;
    struct bp_upstream__conn *idle_prev; /* origin's idle list; or its resolving list */
    struct bp_upstream__conn *idle_next;
    enum bp_upstream__conn_state state;
    int fd;
    struct event *rev; /* EV_READ|EV_PERSIST: added from connect to close, except while paused */
    struct event *wev; /* EV_WRITE: added only while a write (or connect) waits */
    bool rev_added;
    bool wev_added;
    struct ssl_st *ssl;
    bool tls_read_wants_write;  /* SSL_read asked for writability */
    unsigned long tls_gen;      /* generation of its TLS context */
    struct bp_upstream_xfer *x; /* the transfer it carries or is being opened for */
    /* Read buffer, taken from the client's spares when bytes arrive and given back when all are
     * read (NULL between): bytes [rstart, rend) are unread. */
    char *rbuf;
    size_t rcap;
    size_t rstart;
    size_t rend;
    bool answer_complete; /* its last answer was read whole: a close now is a clean one */
    int64_t idle_since_ms;
    unsigned long n_requests; /* started on it; > 1 means the current one reuses it */
    size_t next_addr;         /* connect attempts: index into the origin's addresses */
    int last_errno;
};

/* ---- transfers ------------------------------------------------------------------------------- */

enum bp_upstream__xfer_state {
    BP_UPSTREAM_XFER_WAITING,    /* for a connection (max_connections_per_host) */
    BP_UPSTREAM_XFER_CONNECTING, /* its connection is being opened */
    BP_UPSTREAM_XFER_EXCHANGING, /* request going out / answer coming in */
    BP_UPSTREAM_XFER_FAILING,    /* failed; the report waits for the loop */
    BP_UPSTREAM_XFER_ENDING,     /* its last callback is running */
    BP_UPSTREAM_XFER_DEAD,       /* retired: in the graveyard or the spares */
};

enum bp_upstream__read_state {
    BP_UPSTREAM_READ_HEAD,
    BP_UPSTREAM_READ_LENGTH,
    BP_UPSTREAM_READ_CHUNKED,
    BP_UPSTREAM_READ_CLOSE,
    BP_UPSTREAM_READ_DONE,
};

struct bp_upstream_xfer {
    struct bp_upstream *u;
    struct bp_upstream_xfer *prev; /* live list; next also links the graveyard and spares */
    struct bp_upstream_xfer *next;
    struct bp_upstream_xfer *wait_next; /* origin's waiting list */
    enum bp_upstream__xfer_state state;
    struct bp_upstream__origin *o;
    struct bp_upstream__conn *c;
    struct event *tev; /* timeouts, and the deferred failure report */

    /* The caller. */
    bool buffered;
    bp_upstream_cb cb;
    struct bp_upstream_stream_cbs scbs;
    void *arg;
    bool paused;

    /* The request: its head is built here (capacity kept when the struct is reused); the body is
     * the caller's. sent counts bytes of head + body written. */
    struct bp_buf req_head;
    const char *body;
    size_t body_len;
    size_t body_in_head; /* bytes of the body copied after the head (TLS: one record) */
    size_t sent;
    bool is_head_method;

    /* The answer. */
    enum bp_upstream__read_state rstate;
    bool got_final_head;
    bool keep_alive;
    int n_interim;
    uint64_t body_left;
    struct bp_http_chunked chunked;
    struct bp_buf piece; /* a decoded chunked piece */

    /* Time: opts as they were at send; deadlines on the monotonic clock. */
    int64_t connect_timeout_ms;
    int64_t total_timeout_ms;
    size_t max_response_bytes;
    int64_t start_us;
    int64_t deadline_ms;    /* total; 0 while paused */
    int64_t paused_left_ms; /* what was left of the total when paused */
    int64_t connect_deadline_ms;

    /* The failure, once known. */
    bp_err fail_rc;
    enum bp_metrics_upstream_error fail_kind;
    char cause[192];

    /* Copies for the failure log (the caller's strings may be gone; truncated if longer). */
    char method[BP_UPSTREAM_MAX_METHOD + 1];
    char request_id[BP_UPSTREAM_LOG_ID_MAX];
    char instance_id[BP_UPSTREAM_LOG_ID_MAX];
    bool has_request_id;
    bool has_instance_id;

    /* Buffered mode: the answer assembled (capacities kept when the struct is reused). */
    struct bp_upstream_resp resp;
    size_t resp_headers_cap;
    struct bp_buf resp_strings;
};

/* ---- the client ------------------------------------------------------------------------------ */

struct bp_upstream {
    struct event_base *base;
    struct bp_upstream_opts opts;
    struct bp_upstream_xfer *live;
    size_t inflight;
    struct bp_upstream_xfer *xfer_graveyard; /* retired during a dispatch, freed when it unwinds */
    struct bp_upstream_xfer *xfer_spares;
    size_t n_xfer_spares;
    struct bp_upstream__conn *conns; /* every open connection */
    struct bp_upstream__conn *conn_graveyard;
    char *rbuf_spares; /* chained through each buffer's first bytes */
    size_t n_rbuf_spares;
    struct bp_upstream__origin *origins;
    struct event *sweep_ev;
    bool sweep_pending;
    struct bp_upstream__dns *dns;
    struct bp_upstream__tls_ctx *tls_ctxs;
    unsigned long tls_ctx_gen; /* bumped for every context made */
    int dispatch_depth;
    bool closing;
    /* bp_upstream_set_tick: a periodic call on this client's loop (the instance health probe). */
    struct event *tick_ev;
    void (*tick_fn)(void *arg);
    void *tick_arg;
    /* The transfer whose failure is being reported (bp_upstream__failure), NULL otherwise. */
    const struct bp_upstream_xfer *failing;
    /* Scratch for the head being delivered (parsed into, then filtered). */
    struct bp_http_resp_head *head_scratch;
    struct bp_upstream_header *hdr_scratch;
};

/* client.c */
void bp_upstream__enter(struct bp_upstream *u);
void bp_upstream__leave(struct bp_upstream *u);
/* Records a failure and schedules its report from the loop; closes the transfer's connection. */
void bp_upstream__fail(struct bp_upstream_xfer *x, bp_err rc, enum bp_metrics_upstream_error kind,
                       const char *cause);
/* The transfer has a connection that is ready for its request. */
void bp_upstream__xfer_connected(struct bp_upstream_xfer *x);
/* Re-arms the transfer's timer for its current state. */
void bp_upstream__arm_timer(struct bp_upstream_xfer *x);
/* Delivery to the caller (stream callbacks, or the buffered assembly). Each returns false when
 * the transfer must not be touched any more (cancelled, failed, or the client is closing). */
bool bp_upstream__deliver_head(struct bp_upstream_xfer *x, const struct bp_upstream_head *head);
bool bp_upstream__deliver_body(struct bp_upstream_xfer *x, const char *data, size_t len);
/* The answer is complete and its connection released: the final callback, then retirement. */
void bp_upstream__deliver_end(struct bp_upstream_xfer *x);
char *bp_upstream__rbuf_take(struct bp_upstream *u);
void bp_upstream__rbuf_give(struct bp_upstream *u, char *buf, size_t cap);
/* Gives c's read buffer back to the spares if nothing in it is unread: a connection holds one
 * only while Core's bytes are being read (256 requests waiting on Core hold none). */
void bp_upstream__conn_rbuf_release(struct bp_upstream__conn *c);

/* pool.c */
struct bp_upstream__origin *bp_upstream__origin_get(struct bp_upstream *u,
                                                    const struct bp_upstream__url *url,
                                                    const char *ca_file);
/* Finds the transfer a connection: an idle one (and writes the request), a new one, or a place
 * in the origin's waiting list. */
void bp_upstream__acquire(struct bp_upstream_xfer *x);
/* The transfer is done with its connection: back to the pool (or to a waiting transfer) when
 * reusable, else closed. */
void bp_upstream__release(struct bp_upstream__conn *c, bool reusable);
/* Closes a connection (and detaches its transfer, if any); its memory waits for the dispatch to
 * unwind. */
void bp_upstream__conn_close(struct bp_upstream__conn *c);
/* The TCP connection is up: the TLS handshake next, or the request. */
void bp_upstream__conn_connected(struct bp_upstream__conn *c);
void bp_upstream__conn_handshake_failed(struct bp_upstream__conn *c, const char *cause);
/* Closes only the socket (and its events) of a connect attempt. */
void bp_upstream__conn_close_fd(struct bp_upstream__conn *c);
/* A transfer leaves its origin's waiting list (cancel, timeout). */
void bp_upstream__unwait(struct bp_upstream_xfer *x);
void bp_upstream__pool_free_all(struct bp_upstream *u);
void bp_upstream__conn_graveyard_free(struct bp_upstream *u);
/* Adds or removes the connection's read or write interest. */
void bp_upstream__conn_want_read(struct bp_upstream__conn *c, bool on);
void bp_upstream__conn_want_write(struct bp_upstream__conn *c, bool on);
/* The client is going away: the resolver is freed, or left to its lookups in flight. */
void bp_upstream__dns_release(struct bp_upstream *u);

/* exchange.c */
/* Starts writing the request on x->c (inside send or from the loop). Returns false only when
 * x->c was a kept-alive connection found dead before a byte was written: it is closed, and the
 * request may go on another one. Other failures are reported through bp_upstream__fail. */
bool bp_upstream__exchange_start(struct bp_upstream_xfer *x);
void bp_upstream__exchange_on_read(struct bp_upstream__conn *c);
void bp_upstream__exchange_on_write(struct bp_upstream__conn *c);
/* One step of a connection's TLS handshake; when done, the transfer's request goes out. */
void bp_upstream__exchange_on_handshake(struct bp_upstream__conn *c);
/* Reads what an idle connection has to say; closes it on EOF, error or unexpected bytes. */
void bp_upstream__idle_on_read(struct bp_upstream__conn *c);
/* Builds the request head into x->req_head (x->o set). */
void bp_upstream__build_request(struct bp_upstream_xfer *x, const struct bp_upstream_req *req,
                                const struct bp_upstream__url *url);

/* tls.c */
enum bp_upstream__io {
    BP_UPSTREAM_IO_OK,         /* *n bytes moved (> 0) */
    BP_UPSTREAM_IO_EOF,        /* the peer closed (reads only) */
    BP_UPSTREAM_IO_WANT_READ,  /* wait for readability */
    BP_UPSTREAM_IO_WANT_WRITE, /* wait for writability */
    BP_UPSTREAM_IO_ERROR,      /* cause filled */
};

bp_err bp_upstream__tls_global_init(void);
/* Sets up c->ssl for its origin (context for the CA file, SNI, host name check). On failure
 * fills cause and returns BP_ERR_IO. */
bp_err bp_upstream__tls_start(struct bp_upstream__conn *c, char *cause, size_t cause_len);
/* One step of the handshake: OK (done), WANT_READ, WANT_WRITE, or ERROR (cause filled). */
enum bp_upstream__io bp_upstream__tls_handshake(struct bp_upstream__conn *c, char *cause,
                                                size_t cause_len);
enum bp_upstream__io bp_upstream__tls_read(struct bp_upstream__conn *c, char *buf, size_t len,
                                           size_t *n, char *cause, size_t cause_len);
enum bp_upstream__io bp_upstream__tls_write(struct bp_upstream__conn *c, const char *buf,
                                            size_t len, size_t *n, char *cause, size_t cause_len);
bool bp_upstream__tls_has_pending(const struct bp_upstream__conn *c);
/* Frees c->ssl; when the connection ended cleanly (between answers, or after a complete one),
 * first sends close_notify if it can without waiting. */
void bp_upstream__tls_close(struct bp_upstream__conn *c, bool clean);
void bp_upstream__tls_free_all(struct bp_upstream *u);
/* Releases what TLS keeps per origin (its session). */
void bp_upstream__tls_origin_free(struct bp_upstream__origin *o);

/* Inside a failing callback: why it failed (the cause that was logged) and its kind; NULL
 * outside one (client.c). */
const char *bp_upstream__failure(const struct bp_upstream *u, enum bp_metrics_upstream_error *out_kind);

#endif
