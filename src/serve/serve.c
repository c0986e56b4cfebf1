/* `blnkproxy serve`: process wiring in dependency order.
 *
 * config → store (open, migrate) → tables (first load, published before any accept) → HTTP
 * workers → watcher thread. Signals are blocked in every thread and taken synchronously by the
 * main thread with sigwait, so no handler ever runs inside a worker's critical section. On
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded), commit every queued
 * audit record, stop the watcher after a final last-used flush, exit 0. */
#include "serve/serve.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "audit/audit.h"
#include "config/config.h"
#include "core/log.h"
#include "http/http.h"
#include "lib/alloc.h"
#include "metrics/metrics.h"
#include "router/router.h"
#include "serve/watch.h"
#include "store/store.h"
#include "tables/tables.h"
#include "upstream/upstream.h"

static const char usage[] =
    "usage: blnkproxy serve [--db DSN] [--config FILE] [--listen HOST:PORT] [--workers N]\n"
    "                       [--upstream-timeout SECONDS] [--upstream-connect-timeout SECONDS]\n"
    "                       [--log-level debug|info|warn|error] [--<setting> VALUE]... [--json]\n"
    "\n"
    "Every setting of blnkproxy.json can be given as a flag (underscores as dashes) or as a\n"
    "BLNKPROXY_<SETTING> environment variable; flags win over the environment, which wins over\n"
    "the file. See docs/CONFIG.md. Stops gracefully on SIGTERM or SIGINT.\n";

/* Each client connection and each kept-alive Core connection is a descriptor; the soft limit
 * (often 1024) is raised to the hard one so max_connections is what limits, not EMFILE. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The OAuth threads call this after issuing a token; the watcher exists only once the server
 * runs, hence the indirection. */
static _Atomic(struct bp_watch *) the_watch;

static void
sync_tables(void *arg)
{
    struct bp_watch *w = atomic_load(&the_watch);
    (void)arg;
    if (w != NULL) {
        bp_watch_sync(w, 2000);
    }
}

static size_t
audit_depth(const void *arg)
{
    return bp_audit_depth(arg);
}

static const char *
mode_name(int mode)
{
    return mode == BP_AUDIT_SYNC ? "sync" : mode == BP_AUDIT_ASYNC ? "async" : "off";
}

static void
fail(const char *msg)
{
    fprintf(stderr, "blnkproxy: %s\n", msg);
}

/* The built-in route table adjusted by the config's "routes" (DESIGN §3). The rows borrow the
 * config's strings, which live until serve returns. */
static bp_err
build_routes(const struct bp_config *cfg, struct bp_route **out, size_t *out_n, char *err, size_t err_len)
{
    struct bp_route_spec *specs = bp_calloc(cfg->n_routes_add ? cfg->n_routes_add : 1, sizeof(*specs));
    char why[400];
    bp_err rc;

    for (size_t i = 0; i < cfg->n_routes_add; i++) {
        const struct bp_config_route *r = &cfg->routes_add[i];
        specs[i] = (struct bp_route_spec){r->method, r->path, r->scope, r->action, r->category, r->large_body};
    }
    rc = bp_route_table_build((const char *const *)cfg->routes_remove, cfg->n_routes_remove, specs,
                              cfg->n_routes_add, out, out_n, why, sizeof(why));
    if (rc != BP_OK) {
        snprintf(err, err_len, "config \"routes\": %s", why);
    }
    bp_free(specs);
    return rc;
}

int
bp_serve_main(int argc, char **argv)
{
    struct bp_config cfg;
    struct bp_store *store = NULL;
    struct bp_server *server = NULL;
    struct bp_watch *watch = NULL;
    struct bp_server_deps deps = {.tables_sync = sync_tables};
    struct bp_audit *audit = NULL;
    char err[512] = "";
    sigset_t sigs;
    int applied = 0;
    int version = 0;
    int64_t token = 0;
    const char *store_kind = NULL;
    int sig = 0;
    struct bp_route *routes = NULL;
    size_t n_routes = 0;
    char **flags;
    int n_flags = 0;
    bp_err rc;
    int code = 1;

    memset(&cfg, 0, sizeof(cfg));
    /* Every command takes --json (DESIGN §7); serve's output is JSON lines already, so the flag
     * is accepted and changes nothing. */
    flags = bp_calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            bp_free(flags);
            return 0;
        }
        if (strcmp(argv[i], "--json") != 0) {
            flags[n_flags++] = argv[i];
        }
    }
    rc = bp_config_load(n_flags, flags, &cfg, err, sizeof(err));
    bp_free(flags);
    if (rc != BP_OK) {
        fail(err);
        return 2;
    }
    bp_log_set_level((enum bp_log_level)cfg.log_level);

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (build_routes(&cfg, &routes, &n_routes, err, sizeof(err)) != BP_OK) {
        fail(err);
        code = 2;
        goto done;
    }
    raise_fd_limit();
    if (bp_upstream_global_init() != BP_OK) {
        fail("cannot initialise the HTTP client library");
        goto done;
    }
    if (bp_metrics_init(cfg.workers) != BP_OK) {
        fail("cannot set up metrics");
        goto done;
    }
    if (bp_store_open(cfg.db, &store, err, sizeof(err)) != BP_OK) {
        fail(err);
        goto done;
    }
    if (bp_store_migrate(store, &applied, &version) != BP_OK) {
        fail("database migration failed");
        goto done;
    }
    if (bp_watch_load_now(store, &token) != BP_OK) {
        fail("cannot load credentials and instances from the store");
        goto done;
    }
    if (cfg.audit_writes != BP_AUDIT_OFF || cfg.audit_reads != BP_AUDIT_OFF) {
        if (bp_audit_start(&cfg, &audit) != BP_OK) {
            fail("cannot start the audit log writer (see the log line above)");
            goto done;
        }
        deps.audit = audit;
        bp_metrics_set_audit_depth_source(audit_depth, audit);
    }
    if (bp_server_start(&cfg, routes, n_routes, &deps, &server) != BP_OK) {
        fail("cannot start the server (see the log line above)");
        goto done;
    }
    if (bp_watch_start(store, server, cfg.reload_interval_ms, token, &watch) != BP_OK) {
        fail("cannot start the store watcher");
        goto done;
    }
    store_kind = bp_store_kind(store); /* a static name: outlives the store */
    store = NULL;                      /* the watcher owns it now */
    atomic_store(&the_watch, watch);
    BP_INFO("listening", BP_LSTR("host", cfg.listen_host), BP_LINT("port", bp_server_port(server)),
            BP_LINT("workers", cfg.workers), BP_LSTR("version", BP_VERSION),
            BP_LSTR("store", store_kind), BP_LINT("schema_version", version), BP_LINT("migrations_applied", applied),
            BP_LINT("routes", n_routes), BP_LINT("max_connections", cfg.max_connections),
            BP_LSTR("audit_writes", mode_name(cfg.audit_writes)), BP_LSTR("audit_reads", mode_name(cfg.audit_reads)),
            BP_LINT("oauth_threads", cfg.oauth_threads));

    sigwait(&sigs, &sig);
    BP_INFO("shutting down", BP_LSTR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    bp_server_stop(server);
    code = 0;
done:
    /* Order: no request is in flight and no OAuth thread runs once the server stopped; then every
     * queued audit record is committed (its completions wait in the workers' task lists, freed
     * with the server); the watcher stops before the server is freed, because it reports
     * readiness into it. */
    if (server != NULL && code != 0) {
        bp_server_stop(server);
    }
    bp_audit_stop(audit);
    atomic_store(&the_watch, NULL);
    bp_watch_stop(watch);
    bp_server_free(server);
    bp_store_close(store);
    bp_tables_shutdown();
    bp_free(routes);
    bp_metrics_shutdown();
    if (code == 0) {
        BP_INFO("stopped");
    }
    bp_config_cleanup(&cfg);
    return code;
}
