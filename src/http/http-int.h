#ifndef BP_HTTP_HTTP_INT_H
#define BP_HTTP_HTTP_INT_H

/* Shared between the files of the http module; not an interface for anyone else. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config/config.h"
#include "http/http.h"
#include "http/parser.h"
#include "lib/buf.h"
#include "lib/rand.h"
#include "auth/auth.h"
#include "router/router.h"

struct bp_tables;
struct bp_cred;
struct bp_instance;
struct bp_upstream;
struct bp_upstream_xfer;
struct bp_upstream_resp;
struct bp_worker;

/* Work handed back to a loop thread by another thread (an OAuth thread, the audit writer). The
 * poster owns the storage (embedded in its object) until run is called on the loop thread;
 * run then owns it. */
struct bp_http_task {
    void (*run)(struct bp_worker *w, struct bp_http_task *t);
    struct bp_http_task *next;
};

struct bp_oauth_pool;

/* One live configuration (issue 8): the settings workers read, the route table built from them
 * and the audit log their requests go to. Immutable once published, and reference-counted: the
 * server holds the current one, each worker the one it last took, each request the one it
 * started with, so a request's route row, limits and audit mode stay valid and consistent until
 * it is freed, whatever is published meanwhile. The last release frees it, on any thread.
 *
 * Reading settings: r->conf->cfg inside a request, bp_http__worker_conf(w)->cfg on a loop outside
 * one. server->start_cfg only for what is fixed at start (listen, workers, oauth.*). */
struct bp_http_conf {
    atomic_int refs;
    const struct bp_config *cfg;
    const struct bp_route *routes;
    size_t n_routes;
    struct bp_audit *audit;         /* NULL: not audited */
    struct bp_config *owned_cfg;    /* freed with the snapshot; NULL for the start configuration */
    struct bp_route *owned_routes;
};

struct bp_server {
    const struct bp_config *start_cfg; /* fixed settings; live ones come from the current conf */
    const struct bp_server_deps *deps;
    pthread_mutex_t conf_lock;   /* guards conf; taken only when a loop sees conf_gen change */
    struct bp_http_conf *conf;   /* the current live configuration */
    atomic_uint conf_gen;        /* bumped by each publish */
    struct bp_config oauth_cfg;  /* start_cfg with oauth_issuer filled in once the port is known */
    char *oauth_issuer;          /* owned when the server derived it */
    struct bp_oauth_pool *oauth_pool;
    struct bp_worker **workers;
    int n_workers;
    int port;
    pthread_mutex_t ready_lock;  /* guards ready and ready_reason: /readyz and the watcher only */
    enum bp_readiness ready;
    char ready_reason[256];
};

struct bp_worker {
    struct bp_server *server;
    int index;
    struct event_base *base;
    struct evconnlistener *listener;
    int listen_fd;
    struct bp_upstream *upstream;
    struct event *stop_ev;      /* activated from the main thread to begin draining */
    struct event *conf_ev;      /* activated from the main thread after a reload */
    struct bp_http_conf *conf;  /* the live configuration this loop last took */
    unsigned conf_gen;          /* server->conf_gen when it was taken */
    struct event *drain_deadline;
    struct event *fresh_grace;  /* draining: when connections that never sent a request close */
    pthread_t thread;
    bool thread_started;
    bool draining;
    bool accept_paused;         /* listener off: at max connections or after an accept error */
    size_t max_conns;           /* this worker's share of max_connections */
    struct event *accept_retry; /* re-enables the listener after an accept error */
    struct bp_conn *conns;      /* doubly linked list of live connections */
    size_t n_conns;
    /* Tasks posted from other threads (bp_http__post): a locked list and an event to wake the
     * loop. */
    pthread_mutex_t tasks_lock;
    struct bp_http_task *tasks_head;
    struct bp_http_task *tasks_tail;
    struct event *tasks_ev;
};

enum bp_conn_state {
    BP_CONN_READING_HEAD,
    BP_CONN_READING_BODY,
    BP_CONN_WAITING_UPSTREAM,   /* also: waiting for an OAuth thread */
    BP_CONN_WAITING_AUDIT,      /* response built, held until its audit record is durable */
    BP_CONN_WRITING,            /* response queued; close or next request when flushed */
    BP_CONN_LINGERING,          /* answered and half-closed; discarding an unread body */
};

enum bp_req_kind { BP_REQ_OTHER = 0, BP_REQ_PROXY, BP_REQ_OAUTH };

struct bp_oauth_job;

struct bp_req {
    enum bp_req_kind kind;
    char *head_bytes;           /* owned copy of the request head; head points into it */
    struct bp_http_head head;
    char request_id[BP_UUID_LEN + 1 > 129 ? BP_UUID_LEN + 1 : 129];
    int64_t start_us;
    struct bp_http_conf *conf;  /* the live configuration, pinned for the request's life */
    struct bp_tables *tables;   /* pinned for the request's life */
    const struct bp_cred *cred;
    const struct bp_instance *instance;
    const struct bp_route *route;
    const char *core_path;      /* into head_bytes */
    size_t core_path_len;
    struct bp_buf fwd_query;
    struct bp_buf body;
    struct bp_http_chunked chunked;
    uint64_t body_remaining;    /* Content-Length bytes still to read */
    struct bp_upstream_xfer *xfer;
    int status;
    int upstream_status;
    int64_t upstream_us;
    uint64_t bytes_out;
    bp_err outcome;
    const char *reason;         /* static text saying why outcome, for the client and the log; or NULL */
    const char *asked_instance; /* the well-formed instance id asked for, or implied (for the audit log) */
    size_t asked_instance_len;
    bool forwarded;             /* handed to the upstream client: Core may have acted on it */
    enum bp_auth_failure auth_failure;
    struct bp_oauth_job *oauth_job; /* in flight on an OAuth thread; it reads this request */
    bool audit_reserved;        /* holds a place in the audit queue (bp_http__audit_reserve) */
    bool finished;              /* logged, counted and audited */
};

struct bp_hold;

struct bp_conn {
    struct bp_worker *worker;
    struct bufferevent *bev;
    struct bp_conn *prev;
    struct bp_conn *next;
    enum bp_conn_state state;
    char peer[64];
    struct bp_req *req;
    struct bp_hold *hold;       /* WAITING_AUDIT: the response waiting for its record */
    struct event *head_deadline;
    size_t head_scanned;        /* bytes of the pending head already searched for a line end */
    int64_t idle_timeout_ms;    /* as set on bev; updated when a reload changed it */
    size_t read_watermark;      /* as set on bev */
    bool served;                /* has started a request: no longer a fresh connection */
    bool close_after_write;
    bool peer_eof;              /* the client half-closed */
    bool linger;                /* close via LINGERING: the client may still be sending a body */
    bool closed;
};

/* server.c: live configuration. */
struct bp_http_conf *bp_http__conf_ref(struct bp_http_conf *conf);
/* NULL is a no-op. */
void bp_http__conf_unref(struct bp_http_conf *conf);
/* The loop's current live configuration, taken anew when a reload published one since the loop
 * last looked (then the worker-wide settings are applied too: connection limit, upstream
 * timeouts). Borrowed; pin with bp_http__conf_ref to keep it. Loop thread only. */
struct bp_http_conf *bp_http__worker_conf(struct bp_worker *w);

/* conn.c */
/* Frees a request (or hands it to its in-flight OAuth job, which frees it later). */
void bp_http__req_free(struct bp_req *r);
void bp_http__conn_accept(struct bp_worker *w, int fd, const struct sockaddr *sa, int salen);
void bp_http__conn_close(struct bp_conn *c);
/* Queues a complete response. status line, extra header lines ("Name: value\r\n" each, may be
 * NULL), body. Adds Content-Length (unless no_length), X-Request-Id, Connection: close when the
 * connection will close. Moves the connection to WRITING and finishes the request. */
void bp_http__respond(struct bp_conn *c, int status, const char *extra_headers, const char *content_type,
                      const char *body, size_t body_len, bool no_length);
/* Starts reading the request body (state READING_BODY) after the proxy accepted the head. */
void bp_http__conn_read_body(struct bp_conn *c, size_t limit);
void bp_http__drain_check(struct bp_worker *w);

/* errors.c: DESIGN §2 error responses. needed_scope is used for 403 scope errors. */
void bp_http__respond_error(struct bp_conn *c, bp_err rc, unsigned needed_scope);
/* The same, with a fixed reason (static text that never quotes the request, may be NULL for the
 * code's usual message) as error_detail.message; it is also kept in c->req->reason for the
 * access log. */
void bp_http__respond_refusal(struct bp_conn *c, bp_err rc, unsigned needed_scope, const char *reason);
/* The status an error maps to (for logging). */
int bp_http__error_status(bp_err rc);
/* The error_detail.code an error maps to (for the audit log). */
const char *bp_http__error_code(bp_err rc);

/* tasks.c: cross-thread hand-off to a worker's loop. Any thread; t->run runs on w's loop. */
void bp_http__post(struct bp_worker *w, struct bp_http_task *t);
bp_err bp_http__tasks_init(struct bp_worker *w);
/* After the loop stopped: runs what is still queued (objects whose connection is gone only
 * free themselves) and frees the event. */
void bp_http__tasks_fini(struct bp_worker *w);

/* oauth_pool.c: the OAuth threads. */
bp_err bp_http__oauth_pool_start(struct bp_server *s, struct bp_oauth_pool **out);
/* Finishes queued jobs, joins the threads. NULL is a no-op. */
void bp_http__oauth_pool_stop(struct bp_oauth_pool *p);
/* The head of c->req is an OAuth path: read its body and hand it to an OAuth thread. */
void bp_http__oauth_head(struct bp_conn *c);
void bp_http__oauth_body_done(struct bp_conn *c);
/* The connection is going away with a job in flight: the job takes r and frees it when done. */
void bp_http__oauth_orphan(struct bp_req *r);

/* proxy.c */
void bp_http__proxy_head(struct bp_conn *c);     /* head parsed, target under /proxy/ */
void bp_http__proxy_body_done(struct bp_conn *c);
void bp_http__proxy_abort(struct bp_req *r);     /* connection going away: cancel upstream */

/* ops.c */
bool bp_http__ops_route(struct bp_conn *c);      /* true when the request was an ops endpoint */

/* headers.c: the DESIGN §2 header rules for the request to Core. Appends "Name: value" lines
 * (NUL-separated, in a bp_buf) and returns them as an array in out_lines (bp_free the array). */
bp_err bp_http__upstream_headers(const struct bp_req *r, const char *peer, struct bp_buf *storage,
                                 const char ***out_lines, size_t *out_n);

/* access.c: a finished request: one JSON access-log line, its metrics and — for /proxy/ requests —
 * its audit record (built from r and the response body resp/resp_len, which it only reads).
 * done/arg (may be NULL): called on the audit writer's thread once the record is durable.
 * Returns true when done will be called (the caller holds the response until then); false when
 * the record was queued without it, not audited, or shed. */
bool bp_http__request_finished(struct bp_conn *c, struct bp_req *r, const char *resp, size_t resp_len,
                               void (*done)(void *arg), void *arg);
/* True when r's response must wait until its audit record is durable (audit.writes / .reads). */
bool bp_http__audit_sync(const struct bp_conn *c, const struct bp_req *r);
/* Takes r's place in the audit queue before it is forwarded. False when the queue is full:
 * answer 503 instead. True without reserving when r is not audited. */
bool bp_http__audit_reserve(struct bp_conn *c, struct bp_req *r);

#endif
