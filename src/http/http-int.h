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
#include "router/router.h"

struct bp_tables;
struct bp_cred;
struct bp_instance;
struct bp_upstream;
struct bp_upstream_xfer;
struct bp_upstream_resp;
struct bp_worker;

struct bp_server {
    const struct bp_config *cfg;
    const struct bp_server_deps *deps;
    const struct bp_route *routes;
    size_t n_routes;
    struct bp_worker **workers;
    int n_workers;
    int port;
    atomic_bool ready;
};

struct bp_worker {
    struct bp_server *server;
    int index;
    struct event_base *base;
    struct evconnlistener *listener;
    int listen_fd;
    struct bp_upstream *upstream;
    struct event *stop_ev;      /* activated from the main thread to begin draining */
    struct event *drain_deadline;
    pthread_t thread;
    bool draining;
    bool accept_paused;         /* listener off: at max connections or after an accept error */
    size_t max_conns;           /* this worker's share of max_connections */
    struct event *accept_retry; /* re-enables the listener after an accept error */
    struct bp_conn *conns;      /* doubly linked list of live connections */
    size_t n_conns;
};

enum bp_conn_state {
    BP_CONN_READING_HEAD,
    BP_CONN_READING_BODY,
    BP_CONN_WAITING_UPSTREAM,
    BP_CONN_WRITING,            /* response queued; close or next request when flushed */
    BP_CONN_LINGERING,          /* answered and half-closed; discarding an unread body */
};

struct bp_req {
    char *head_bytes;           /* owned copy of the request head; head points into it */
    struct bp_http_head head;
    char request_id[BP_UUID_LEN + 1 > 129 ? BP_UUID_LEN + 1 : 129];
    int64_t start_us;
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
};

struct bp_conn {
    struct bp_worker *worker;
    struct bufferevent *bev;
    struct bp_conn *prev;
    struct bp_conn *next;
    enum bp_conn_state state;
    char peer[64];
    struct bp_req *req;
    struct event *head_deadline;
    size_t head_scanned;        /* bytes of the pending head already searched for a line end */
    bool close_after_write;
    bool peer_eof;              /* the client half-closed */
    bool linger;                /* close via LINGERING: the client may still be sending a body */
    bool closed;
};

/* conn.c */
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
/* The status an error maps to (for logging). */
int bp_http__error_status(bp_err rc);

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

/* access.c: one JSON access-log line per finished request; the seam where the audit log will
 * receive each finished request. */
void bp_http__request_finished(struct bp_conn *c, struct bp_req *r);

#endif
