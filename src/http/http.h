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
 * bp_route_table_build) must outlive the server. */
bp_err bp_server_start(const struct bp_config *cfg, const struct bp_route *routes, size_t n_routes,
                       const struct bp_server_deps *deps, struct bp_server **out);
/* The bound port. */
int bp_server_port(const struct bp_server *s);
/* Readiness as /readyz reports it: set by the watcher after each store poll. */
void bp_server_set_ready(struct bp_server *s, bool ready);
/* Graceful stop: stop accepting, close idle connections, let in-flight requests finish within
 * cfg->shutdown_timeout_ms, then join the workers. Call from the thread that started it. */
void bp_server_stop(struct bp_server *s);
void bp_server_free(struct bp_server *s);

#endif
