#ifndef BP_SERVE_SERVE_INT_H
#define BP_SERVE_SERVE_INT_H

/* Shared between the files of the serve module (serve.c wiring, reload.c SIGHUP, check.c
 * --check); not an interface for anyone else. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct bp_idem;

#include "config/config.h"
#include "http/http.h"
#include "lib/err.h"

struct bp_audit;
struct bp_oauth_endpoint;
struct bp_proxy;
struct bp_route;
struct bp_store;
struct bp_server;

#define BP_SERVE_ROUTES 11
#define BP_SERVE_HOOKS 3

/* A running serve, as the main thread holds it. */
struct bp_serve {
    int n_flags;                   /* serve's flags without --json/--help/--check, kept for reloads */
    char **flags;                  /* borrowed from argv */
    struct bp_config cfg;          /* the start configuration: fixed settings, lives to the end */
    const struct bp_config *running; /* the live configuration now published (cfg at start) */
    struct bp_server *server;
    struct bp_audit *audit;        /* started at start or by a reload; NULL while auditing never ran */
    struct bp_proxy *proxy;        /* the /proxy/ handler and the audit hook */
    struct bp_oauth_endpoint *oauth; /* the OAuth endpoints' handler */
    struct bp_admin *admin;          /* the admin API, a service of the OAuth endpoint */
    struct bp_idem *idem;            /* Idempotency-Key answers' store calls (idem/idem.h) */
    /* What the server serves: the route table and the finish hooks, in order. */
    struct bp_http_route routes[BP_SERVE_ROUTES];
    struct bp_http_hook hooks[BP_SERVE_HOOKS];
    const char *store_kind;        /* "sqlite" or "postgresql" (static), once the store is open */
    bool loaded_at_start;          /* the first tables were loaded before listening (false: a
                                      PostgreSQL store that was down; the watcher loads them) */
    char node[256];                /* node_name, or "<hostname>:<port>"; "" until known (a listen
                                      port of 0 is known once bound) */
    pthread_mutex_t sync_lock;     /* guards sync_store: the OAuth threads share it */
    struct bp_store *sync_store;   /* reads the servers' reports after a token is issued */
};

/* The built-in route table adjusted by cfg's "routes" (DESIGN §3). The rows borrow cfg's
 * strings. On error writes "config \"routes\": <reason>" to err. Free *out with bp_free. */
bp_err bp_serve__build_routes(const struct bp_config *cfg, struct bp_route **out, size_t *out_n, char *err,
                              size_t err_len);

/* Starts the audit writer (with the start configuration's store, queue size, spool and
 * retention) unless it runs already or cfg audits nothing. Logs its failure. */
bp_err bp_serve__audit_start(struct bp_serve *sv, const struct bp_config *cfg);

/* "sync", "async" or "off". */
const char *bp_serve__mode_name(int mode);

/* SIGHUP (reload.c): reads the configuration again as at start (same file, environment and
 * flags), applies what can change live, logs what changed, what needs a restart, or why the
 * file was refused (then the running configuration stays). Main thread. */
void bp_serve__reload(struct bp_serve *sv);

/* serve --check (check.c): loads and validates the configuration, the routes and the store
 * without starting anything or creating the store. Prints a summary on stdout (JSON with
 * json) and returns 0, or prints the reason on stderr and returns 2. */
int bp_serve__check(int n_flags, char **flags, bool json);

#endif
