#ifndef BP_HTTP_HTTP_INT_H
#define BP_HTTP_HTTP_INT_H

/* Shared between the files of the http module; not an interface for anyone else.
 *
 *   server.c   workers, listeners, the live configuration, stopping
 *   conn.c     a client connection: reading, writing, its deadline, closing
 *   request.c  the request: its state machine, body reading, response framing, finish hooks
 *   client.c   who the client is: the peer, or what a trusted proxy's X-Forwarded-For names
 *   peers.c    open connections per peer, for max_connections_per_peer
 *   tls.c      TLS on the listener: the certificate's context, a connection's session
 *   parser.c   the strict request parser (parser.h) */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config/config.h"
#include "core/log.h"
#include "core/workq.h"
#include "http/http.h"
#include "http/parser.h"
#include "lib/arena.h"
#include "lib/buf.h"
#include "lib/ipnet.h"

/* Request memory comes in chunks of this size from the worker's pool (a head of up to 32 KiB
 * takes its own chunk). Idle connections hold none. */
#define BP_HTTP_ARENA_CHUNK 16384
#define BP_HTTP_ARENA_POOL_MAX 256
/* Read buffers: a connection takes one from its worker's pool when bytes arrive and gives it
 * back once it has consumed them all (between requests, or while a handler has the request).
 * One may grow, up to the read limit (max_header_bytes + 64 KiB), for a large head or pipelined
 * requests; grown ones are freed. */
#define BP_HTTP_INBUF_BYTES 16384
#define BP_HTTP_INBUF_POOL_MAX 256
/* A streamed response tells its producer to pause once this much waits to be written. */
#define BP_HTTP_WRITE_HIGH_MARK (256 * 1024)

/* One live configuration: the settings workers read and the application's part (serve's),
 * immutable once published and reference-counted: the server holds the current one, each
 * worker the one it last took, each request the one it started with, so a request's limits and
 * app part stay valid and consistent until it ends, whatever is published meanwhile. The last
 * release frees it, on any thread. */
struct bp_http_conf {
    atomic_int refs;
    const struct bp_config *cfg;
    struct bp_config *owned_cfg; /* freed with the snapshot; NULL for the start configuration */
    void *app;
    void (*app_free)(void *app);
    struct bp_ipnet *trusted;    /* cfg->trusted_proxies, parsed (client.c) */
    size_t n_trusted;
    struct bp_http_tls *tls;     /* tls_listen's certificate (tls.c); NULL without tls_listen */
};

struct bp_server {
    const struct bp_config *start_cfg;   /* fixed settings; live ones come from the current conf */
    const struct bp_http_route *routes;
    size_t n_routes;
    const struct bp_http_hook *hooks;
    size_t n_hooks;
    const struct bp_http_handler **handlers; /* each distinct handler of the routes once */
    size_t n_handlers;
    void (*app_free)(void *app);
    pthread_mutex_t conf_lock;           /* guards conf; taken only when a loop sees conf_gen change */
    struct bp_http_conf *conf;           /* the current live configuration */
    atomic_uint conf_gen;                /* bumped by each publish */
    struct bp_worker **workers;
    int n_workers;                       /* made */
    int n_running;                       /* threads started */
    int port;
    int ops_port;                        /* 0: no ops listener */
    int tls_port;                        /* 0: no TLS listener */
    pthread_mutex_t ready_lock;  /* guards ready and ready_reason: /readyz and the watcher only */
    enum bp_readiness ready;
    char ready_reason[256];
};

struct bp_conn;

struct bp_worker {
    struct bp_server *server;
    int index;
    struct event_base *base;
    struct evconnlistener *listener;
    struct evconnlistener *ops_listener; /* worker 0 only, when ops_listen is set */
    struct evconnlistener *tls_listener; /* when tls_listen is set */
    struct bp_inbox *inbox;              /* completions from other threads */
    void **hstate;                       /* per handler, in server->handlers order */
    struct event *stop_ev;               /* activated from the main thread to begin draining */
    struct event *conf_ev;               /* activated from the main thread after a reload */
    struct event *drain_deadline;
    struct event *fresh_grace;           /* draining: when connections that never sent a request close */
    struct event *accept_retry;          /* re-enables the listener after an accept error */
    int64_t last_peer_warn_ms;           /* monotonic: the latest per-peer refusal logged */
    struct event *log_flush;             /* writes the batched log lines shortly after the first */
    struct bp_http_conf *conf;           /* the live configuration this loop last took */
    unsigned conf_gen;                   /* server->conf_gen when it was taken */
    pthread_t thread;
    bool thread_started;
    bool draining;
    bool accept_paused;                  /* listener off: at max connections or after an accept error */
    size_t max_conns;                    /* this worker's share of max_connections */
    struct bp_conn *conns;               /* doubly linked list of live connections */
    size_t n_conns;
    size_t n_parked;                     /* closed connections whose response a hook still holds */
    struct bp_arena_pool arenas;         /* request memory */
    char *inbuf_free;                    /* pooled read buffers, linked through their first bytes */
    size_t n_inbuf_free;
    struct bp_http_header head_room[BP_HTTP_MAX_HEADERS_CAP]; /* a head's headers while parsed */
    struct bp_log_buffer log;            /* this loop's log lines, batched */
};

/* The request's one state machine (request.c alone moves it). */
enum bp_http_req_state {
    BP_REQ_NONE = 0,    /* no request: the connection waits for the next one */
    BP_REQ_HEAD,        /* bytes of a head arrived; waiting for the rest */
    BP_REQ_BODY,        /* the handler asked for the body; reading it */
    BP_REQ_HANDLER,     /* the handler has it: deciding, or waiting for Core or another thread */
    BP_REQ_STREAMING,   /* the response has started and is not complete */
    BP_REQ_HELD,        /* the response is complete and held by a finish hook */
    BP_REQ_FLUSHING,    /* the response is complete; its bytes are going out */
};

/* A hold lives in its connection; a connection whose response is held is never freed before
 * the release (a closed one waits, parked). The release may come from any thread: it is posted
 * to the worker's inbox and runs on the loop. */
struct bp_http_hold {
    struct bp_work work;
    struct bp_conn *conn;
};

struct bp_http_req {
    enum bp_http_req_state state;
    struct bp_conn *conn;
    struct bp_http_conf *conf;           /* pinned from the first byte to the end */
    struct bp_arena arena;
    struct bp_http_head *head;           /* in the arena; its strings too */
    char id[129];
    /* Who the client is (client.c): the socket's peer, or, from a trusted proxy, the address its
     * X-Forwarded-For names; the chain forwarded to Core from there; the scheme. */
    char client[BP_IP_TEXT_MAX];
    const char *forwarded_for;           /* "client, proxy, …" (arena), NULL when none */
    size_t forwarded_for_len;
    bool https;
    int64_t start_us;
    const struct bp_http_handler *handler;
    size_t slot;                         /* the handler's index in server->handlers */
    void *hstate;                        /* the handler's per-request state (arena) */
    struct bp_http_facts facts;
    /* The body. */
    bool body_asked;                     /* the handler called bp_http_req_read_body */
    bool body_complete;                  /* all of it was read */
    size_t body_limit;
    bool body_anonymous;                 /* read before authentication: header_timeout bounds it */
    int64_t body_start_ms;               /* monotonic: when reading it began */
    uint64_t body_bytes_in;              /* bytes of it received, framing included */
    size_t body_budget;                  /* bytes of max_buffered_bytes it holds */
    uint64_t body_remaining;             /* Content-Length bytes still to read */
    struct bp_http_chunked chunked;
    char *body;                          /* arena (Content-Length) or body_buf's (chunked) */
    size_t body_len;
    struct bp_buf body_buf;
    /* The response. */
    bool responded;                      /* the response has started */
    bool out_chunked;                    /* its body goes out chunked */
    bool out_no_body;                    /* HEAD: no body bytes go out */
    bool held;                           /* a hook holds the response's bytes */
    size_t holder;                       /* which hook (index in server->hooks) */
    bool behind;                         /* a streamed write returned false: on_writable owed */
    bool finished;                       /* the finish hooks ran */
};

/* A read buffer: bytes [start, end) are read and not yet consumed. */
struct bp_http_inbuf {
    char *data;
    size_t start;
    size_t end;
    size_t cap;
};

struct bp_conn {
    struct bp_worker *worker;
    int fd;
    struct event *rev;                   /* readable; added while reading is wanted */
    struct event *wev;                   /* writable; added only while output waits */
    struct event *timer;                 /* the one deadline (see conn.c) */
    struct bp_conn *prev;
    struct bp_conn *next;
    char peer[BP_IP_TEXT_MAX];           /* the socket's peer address */
    struct bp_ip peer_ip;
    bool peer_known;                     /* peer_ip holds it (an AF_INET or AF_INET6 socket) */
    bool peer_counted;                   /* holds a place in peers.c's count */
    bool ops;                            /* came in on the ops listener */
    struct ssl_st *ssl;                  /* came in on the TLS listener: its session (tls.c) */
    bool tls_ready;                      /* the handshake completed */
    bool tls_failed;                     /* the handshake failed (counted once) */
    bool tls_dead;                       /* a fatal TLS error: no close_notify may follow */
    bool tls_read_wants_write;           /* a read must wait until the socket takes output */
    int64_t tls_deadline_ms;             /* monotonic: when the handshake must be done */
    unsigned strikes;                    /* bp_http_req_conn_strike */
    struct bp_http_inbuf in;
    struct evbuffer *out;                /* bytes a short write left, and held bytes; lazily made */
    struct bp_http_req req;              /* the request in progress (req.state != NONE) */
    struct bp_http_hold hold;
    int64_t last_read_ms;                /* monotonic: the last time bytes arrived */
    int64_t last_write_ms;               /* monotonic: the last write progress while output waited */
    int64_t linger_until_ms;             /* LINGERING: when it closes at the latest */
    size_t read_limit;                   /* at most this much buffered input (a reload may change it) */
    size_t head_scanned;                 /* bytes of the pending head already searched for a line end */
    bool dispatching;                    /* request.c is inside a handler call for it */
    bool holding;                        /* out ends with held bytes (a hook holds the response) */
    size_t unheld;                       /* holding: bytes at the front of out that may still go */
    bool reading;                        /* rev is added */
    bool writing;                        /* wev is added */
    bool timer_armed;
    int64_t timer_at_ms;
    bool served;                         /* has started a request: no longer a fresh connection */
    bool close_after_write;
    bool peer_eof;                       /* the client half-closed */
    bool linger;                         /* close via lingering: the client may still be sending a body */
    bool lingering;
    bool broken;                         /* a write failed: closes from the loop at once */
    bool closed;                         /* socket gone; parked until a held response is released */
    bool held_parked;
};

/* ---- peers.c ---- */
/* Counts a connection of the peer at ip (its IPv4 address or IPv6 /64); false, counting
 * nothing, when the peer has max already (0: no limit). Any thread. */
bool bp_http__peer_take(const struct bp_ip *ip, size_t max);
void bp_http__peer_release(const struct bp_ip *ip);

/* ---- client.c ---- */
/* Parses cfg's trusted_proxies into conf (checked at load: cannot fail). */
void bp_http__conf_trust(struct bp_http_conf *conf, const struct bp_config *cfg);
/* Sets the request's client, forwarded chain and scheme from its head and connection. */
void bp_http__req_client(struct bp_http_req *r);

/* ---- tls.c ---- */
/* One more user of t (bp_http_tls_free releases one). */
struct bp_http_tls *bp_http__tls_ref(struct bp_http_tls *t);
/* Gives c (accepted on the TLS listener) its session. False when out of memory. */
bool bp_http__tls_start(struct bp_conn *c, const struct bp_http_tls *t);
enum bp_http__tls_step {
    BP_TLS_DONE,
    BP_TLS_WANT_READ,
    BP_TLS_WANT_WRITE,
    BP_TLS_FAILED,
    BP_TLS_PLAIN_HTTP, /* failed: the client spoke plain HTTP to the TLS listener */
};
/* Advances the handshake (counted in metrics when it ends either way). */
enum bp_http__tls_step bp_http__tls_handshake(struct bp_conn *c);
/* As read(2): bytes, 0 at the client's end, -1 with errno (EAGAIN: wait; then
 * c->tls_read_wants_write says for the socket to take output rather than for input). */
ssize_t bp_http__tls_read(struct bp_conn *c, void *buf, size_t len);
/* As write(2): bytes taken, or -1 with errno (EAGAIN: retry with at least the same bytes). */
ssize_t bp_http__tls_write(struct bp_conn *c, const void *buf, size_t len);
/* OpenSSL holds decrypted input that the socket will not signal again. */
bool bp_http__tls_pending(const struct bp_conn *c);
/* Sends close_notify (once, without waiting), as a close or a half-close begins. */
void bp_http__tls_shutdown(struct bp_conn *c);
/* A handshake that never completed counts as failed. */
void bp_http__tls_abandoned(struct bp_conn *c);
/* Frees the session (the socket is the caller's). */
void bp_http__tls_end(struct bp_conn *c);

/* ---- server.c ---- */
struct bp_http_conf *bp_http__conf_ref(struct bp_http_conf *conf);
/* NULL is a no-op. */
void bp_http__conf_unref(struct bp_http_conf *conf);
/* The loop's current live configuration, taken anew when a reload published one since the loop
 * last looked (then the worker-wide settings are applied too). Borrowed. Loop thread only. */
struct bp_http_conf *bp_http__worker_conf(struct bp_worker *w);
/* A connection closed: the worker may exit its loop (draining) or accept again. */
void bp_http__drain_check(struct bp_worker *w);
/* The route for a path, NULL when none matches. */
const struct bp_http_route *bp_http__route(const struct bp_server *s, const char *path, size_t len, bool ops);
/* The index of h in server->handlers. */
size_t bp_http__handler_slot(const struct bp_server *s, const struct bp_http_handler *h);

/* ---- conn.c: transport ---- */
/* The kind of listener a connection came in on. */
enum bp_http__listener { BP_LISTENER_MAIN, BP_LISTENER_OPS, BP_LISTENER_TLS };
void bp_http__conn_accept(struct bp_worker *w, int fd, const struct sockaddr *sa, int salen,
                          enum bp_http__listener kind);
/* Closes the connection now: the request in progress is aborted (its handler told). A
 * connection whose response is held stays parked until the release. */
void bp_http__conn_close(struct bp_conn *c);
/* Writes iov[0..n) after whatever waits, or holds it (hold: appended without writing). Copies
 * what it cannot send now. */
void bp_http__conn_write(struct bp_conn *c, const struct iovec *iov, int n, bool hold);
/* Sends what a hold kept. */
void bp_http__conn_unhold(struct bp_conn *c);
/* Frees a parked connection (its held response was released). */
void bp_http__conn_unpark(struct bp_conn *c);
/* After a request ended with nothing left to write: closes (or lingers) when the connection
 * must not be reused, else re-arms its deadline. True when the next request may be read. */
bool bp_http__conn_after_request(struct bp_conn *c);
/* Bytes queued and not yet written. */
size_t bp_http__conn_pending(const struct bp_conn *c);
/* Consumes n bytes of input. */
void bp_http__conn_consume(struct bp_conn *c, size_t n);
/* Gives the read buffer back to the pool if nothing is left in it (between requests, or while a
 * handler has the request: its head and body are copies). */
void bp_http__conn_idle(struct bp_conn *c);
/* The live idle timeout. */
int64_t bp_http__idle_timeout_ms(struct bp_conn *c);
/* Re-computes the connection's deadline after a state change. */
void bp_http__conn_update_timer(struct bp_conn *c);
/* Stops reading until bp_http__conn_read_on (the peer half-closed, or input is at its limit). */
void bp_http__conn_read_off(struct bp_conn *c);
void bp_http__conn_read_on(struct bp_conn *c);
/* The connection sends a plain error (malformed HTTP: no JSON, DESIGN §2) and closes after it. */
void bp_http__conn_refuse(struct bp_conn *c, int status);

/* ---- request.c: the HTTP exchange ---- */
/* New bytes are in c->in (or the previous response is out): advance the request. */
void bp_http__req_input(struct bp_conn *c);
/* Everything queued was written, or a streamed response's backlog fell below half the mark. */
void bp_http__req_flushed(struct bp_conn *c);
/* The connection is closing: tell the handler, finish the request if it wants a record, and
 * end it. */
void bp_http__req_abort(struct bp_conn *c);
/* When the exchange times out (monotonic ms): idle between requests and while a body is read,
 * the head's deadline while a head is incomplete; -1 while the handler has the request (Core
 * or another thread bounds that wait) or the response is held or going out. */
int64_t bp_http__req_deadline(struct bp_conn *c);
/* That deadline passed: an incomplete head gets a plain 408, otherwise the connection closes. */
void bp_http__req_timed_out(struct bp_conn *c);
/* True when the client waits for an answer the handler owes it (it may half-close meanwhile). */
bool bp_http__req_answer_owed(const struct bp_conn *c);
/* True when a request has begun (bytes of a head arrived) and not ended. */
bool bp_http__req_begun(const struct bp_conn *c);
/* True when the request's response still waits for its hold or its bytes. */
bool bp_http__req_busy(const struct bp_conn *c);
/* Releases what the request held (arena, configuration). The connection reads the next. */
void bp_http__req_end(struct bp_conn *c);

/* Formats a response head into out (cap bytes, at least BP_HTTP_HEAD_FIXED_MAX + headers_len
 * + the request id): status line, Content-Type, framing, extra headers, X-Request-Id,
 * Connection. Returns its length. Pure; request.c and the unit tests use it. */
#define BP_HTTP_HEAD_FIXED_MAX 512
struct bp_http__head_fmt {
    int status;
    const char *content_type;
    const char *headers;
    size_t headers_len;
    int64_t length;          /* >= 0, or BP_HTTP_LENGTH_* */
    const char *request_id;  /* "" or NULL: none */
    int version_minor;
    bool close;
};
size_t bp_http__format_head(const struct bp_http__head_fmt *f, char *out, size_t cap, bool *out_chunked,
                            bool *out_close);

#endif
