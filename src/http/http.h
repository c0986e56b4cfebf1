#ifndef BP_HTTP_HTTP_H
#define BP_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

/* The HTTP front: N worker threads, each with its own event loop, listener (SO_REUSEPORT),
 * client connections and upstream client. A request lives on one thread from accept to reply.
 * This header is the whole interface `serve` uses. */

struct bp_audit;
struct bp_config;
struct bp_route;
struct bp_server;

/* What serve wires into the server besides its configuration. */
struct bp_server_deps {
    /* Called on an OAuth thread after it issued an access token and before the response leaves:
     * returns once the credential tables include the token (bounded), so the client can use it
     * on /proxy/ at once. NULL: no wait. */
    void (*tables_sync)(void *arg);
    void *tables_sync_arg;
    /* The audit log; NULL when auditing is off. */
    struct bp_audit *audit;
};

/* Binds the listeners (port 0 picks one free port shared by every worker) and starts the worker
 * threads and the OAuth threads. cfg, deps and the route table (routes[0..n_routes), see
 * bp_route_table_build) must outlive the server; they are also its first live configuration.
 * Unless cfg->reuse_port, refuses (BP_ERR_EXISTS) an address that a socket already listens on:
 * a second serve would otherwise share it through SO_REUSEPORT and split the traffic. On failure
 * writes the reason, naming the address, to err. */
bp_err bp_server_start(const struct bp_config *cfg, const struct bp_route *routes, size_t n_routes,
                       const struct bp_server_deps *deps, struct bp_server **out, char *err, size_t err_len);
/* The check bp_server_start makes before it binds (unless cfg->reuse_port): BP_OK when no socket
 * listens on cfg's address, else BP_ERR_EXISTS and "cannot listen on ADDRESS: address already in
 * use ..." in err. serve calls it before opening the store, to fail before touching anything. */
bp_err bp_server_check_address(const struct bp_config *cfg, char *err, size_t err_len);
/* Publishes a new live configuration (a reload): its limits, timeouts, audit modes and route
 * table apply to every request that starts from now on, its connection limit and upstream
 * timeouts to each worker as soon as its loop wakes; requests in flight finish with the
 * configuration they started with. Settings fixed at start (listen, workers, oauth.*, ...) are
 * read from the start configuration only, whatever cfg says. Takes ownership of cfg (freed with
 * bp_config_cleanup and bp_free) and of routes (bp_free; its rows may borrow cfg's strings).
 * audit receives the audit records of requests under this configuration (NULL: none); it must
 * outlive the server. Call from the thread that started the server, before bp_server_stop. */
void bp_server_reconfigure(struct bp_server *s, struct bp_config *cfg, struct bp_route *routes, size_t n_routes,
                           struct bp_audit *audit);
/* The bound port. */
int bp_server_port(const struct bp_server *s);
/* Readiness as /readyz reports it (issue 9): set by the watcher after each store check. */
enum bp_readiness {
    BP_READY = 0,   /* 200 {"status":"ready"} */
    BP_STARTING,    /* 503 {"status":"starting","reason":…}: no tables loaded yet, so /proxy/ is
                       answered 503 PROXY_NOT_READY too */
    BP_DEGRADED,    /* 503 {"status":"degraded","reason":…}: the store does not answer; /proxy/
                       is served from the last tables, OAuth answers 503 */
};
/* reason: why not ready (copied; password-free text), NULL for BP_READY. Any thread. */
void bp_server_set_readiness(struct bp_server *s, enum bp_readiness state, const char *reason);
/* Graceful stop: stop accepting, close idle connections, let in-flight requests finish within
 * cfg->shutdown_timeout_ms, then join the workers. Call from the thread that started it. */
void bp_server_stop(struct bp_server *s);
void bp_server_free(struct bp_server *s);

#endif
