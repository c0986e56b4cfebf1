/* `blnkproxy serve`: process wiring in dependency order.
 *
 * config → store (open, migrate) → tables (first load, published before any accept; on a
 * PostgreSQL store that is down at start the watcher does both once it answers, and /readyz and
 * /proxy/ answer 503 until then) → audit writer → the handlers and hooks → HTTP workers (bound,
 * which names the node when node_name is not set, then the OAuth threads, which need the bound
 * port, then running) → watcher thread (which reports readiness: the server starts "starting").
 * What the server serves is the table below: the /proxy/ handler, the OAuth endpoints' handler
 * and the operational one as the catch-all; and the finish hooks every request runs, in order:
 * access log, metrics, audit. Signals are blocked in every thread and taken synchronously by the
 * main thread with sigwait, so no handler ever runs inside a worker's critical section. SIGHUP
 * reloads the configuration (reload.c) and the loop goes on waiting. On SIGTERM/SIGINT: stop
 * accepting, let in-flight requests finish (bounded), commit every queued audit record, stop
 * the watcher after a final last-used flush, exit 0. `serve --check` (check.c) validates and
 * exits instead. */
#include "serve/serve.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "core/log.h"
#include "http/http.h"
#include "idem/idem.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/version.h"
#include "lib/sdnotify.h"
#include "metrics/metrics.h"
#include "oauth/oauth.h"
#include "ops/ops.h"
#include "proxy/proxy.h"
#include "router/router.h"
#include "serve/serve-int.h"
#include "serve/watch.h"
#include "store/store.h"
#include "upstream/upstream.h"

/* How long the watcher's store calls may wait for a silent database (a 1M-key load included). */
#define WATCH_TIMEOUT_MS 30000
/* The most an OAuth answer waits for the cluster to have its token (DESIGN §5's 2 s). */
#define SYNC_TIMEOUT_MS 2000

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

/* A hand-over (reuse_port) is lossless only when the kernel moves the old listener's queued
 * connections to the new one as it closes (Linux 5.14+, net.ipv4.tcp_migrate_req); without it,
 * a connection that arrives in the instant the old process closes its listener is reset. */
static void
warn_unless_requests_migrate(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
    int on = 0;

    if (f != NULL) {
        if (fscanf(f, "%d", &on) != 1) {
            on = 0;
        }
        fclose(f);
    }
    if (on != 1) {
        BP_WARN("reuse_port: net.ipv4.tcp_migrate_req is not 1, so a connection arriving just as the old "
                "process closes its listener may be reset; set it for a lossless hand-over");
    }
}

/* Idempotency-Key store calls (DESIGN §4b): only requests with the header make them, one claim
 * and one outcome each; beyond the queue's bound they get 503 at once. Each thread waits for its
 * call: on PostgreSQL for a round trip (and a commit's flush), so more of them keep more calls in
 * flight (bench/idempotency.sh: 1,700 -> 2,600 first requests a second from 2 to 8); SQLite has
 * one writer, and more threads would only queue for its lock. */
#define IDEM_THREADS_PG 8
#define IDEM_THREADS_SQLITE 2
#define IDEM_MAX_QUEUED 4096

/* Expired Idempotency-Key answers are deleted every idempotency.ttl as it is at start (at most
 * hourly, at least every second); a claim never sees one anyway. */
static int64_t
idem_purge_interval_ms(const struct bp_config *cfg)
{
    int64_t ms = cfg->idempotency_ttl_ms;

    if (ms <= 0 || ms > 3600 * 1000) {
        return 3600 * 1000;
    }
    return ms < 1000 ? 1000 : ms;
}

/* The OAuth threads call this after issuing a token; the watcher exists only once the server
 * runs, hence the indirection. */
static _Atomic(struct bp_watch *) the_watch;

/* A token is the client's the moment /oauth/token answers, and the client may use it on any node
 * of the cluster next (a round-robin load balancer sends it elsewhere): so the answer waits until
 * this node has published the token (bp_watch_sync), then until every running node has
 * (bp_watch_wait_applied, as the CLI waits after a change), at most 2 s in all. The wait reads
 * the servers' reports through a connection of its own, shared by the OAuth threads. */
static void
sync_tables(void *arg)
{
    struct bp_serve *sv = arg;
    struct bp_watch *w = atomic_load(&the_watch);
    int64_t t0 = bp_clock_mono_ms();
    int64_t left;
    size_t behind = 0;

    if (w == NULL) {
        return;
    }
    bp_watch_sync(w, SYNC_TIMEOUT_MS);
    left = SYNC_TIMEOUT_MS - (bp_clock_mono_ms() - t0);
    if (left <= 0) {
        return;
    }
    pthread_mutex_lock(&sv->sync_lock);
    if (sv->sync_store != NULL &&
        bp_watch_wait_applied(sv->sync_store, bp_watch_applied_seq(w), left, &behind) == BP_OK && behind > 0) {
        BP_WARN("an issued token was not applied by every running server within 2 s",
                BP_LINT("servers_behind", behind));
    }
    pthread_mutex_unlock(&sv->sync_lock);
}

static size_t
audit_depth(const void *arg)
{
    return bp_audit_depth(arg);
}

const char *
bp_serve__mode_name(int mode)
{
    return mode == BP_AUDIT_SYNC ? "sync" : mode == BP_AUDIT_ASYNC ? "async" : "off";
}

static void
fail(const char *msg)
{
    fprintf(stderr, "blnkproxy: %s\n", msg);
}

bp_err
bp_serve__build_routes(const struct bp_config *cfg, struct bp_route **out, size_t *out_n, char *err,
                       size_t err_len)
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

bp_err
bp_serve__audit_start(struct bp_serve *sv, const struct bp_config *cfg)
{
    if (sv->audit != NULL || (cfg->audit_writes == BP_AUDIT_OFF && cfg->audit_reads == BP_AUDIT_OFF)) {
        return BP_OK;
    }
    /* The writer's store, queue size, spool and retention are fixed at start: sv->cfg's. */
    if (bp_audit_start(&sv->cfg, &sv->audit) != BP_OK) {
        sv->audit = NULL;
        return BP_ERR_IO;
    }
    /* Every record names its node; until the name is known (port 0), the writer holds them. */
    if (sv->cfg.node_name == NULL && sv->node[0] != '\0') {
        bp_audit_set_node(sv->audit, sv->node);
    } else if (sv->cfg.node_name == NULL) {
        bp_audit_await_node(sv->audit);
    }
    bp_metrics_set_audit_depth_source(audit_depth, sv->audit);
    return BP_OK;
}

/* The route table and the finish hooks (issue 10): which handler answers which paths, and what
 * runs once each request is finished. Rows are tried in order; the operational handler is the
 * catch-all (and answers 404 in Core's error shape for what it does not serve, /admin/… too
 * when admin.enabled is false). Returns the number of routes. */
static size_t
fill_table(struct bp_serve *sv)
{
    const struct bp_http_handler *proxy = bp_proxy_handler(sv->proxy);
    const struct bp_http_handler *oauth = bp_oauth_endpoint_handler(sv->oauth);
    const struct bp_http_route routes[BP_SERVE_ROUTES] = {
        /* Exact, and before "/proxy/": Core has no /openapi.json for it to shadow. */
        {"/proxy/openapi.json", false, bp_ops_openapi_handler(), false},
        {"/proxy", false, proxy, false},
        {"/proxy/", true, proxy, false},
        {"/oauth", false, oauth, false},
        {"/oauth/", true, oauth, false},
        {"/.well-known/oauth-authorization-server", false, oauth, false},
        /* The admin API: answered on the OAuth threads, which sign operators in already. */
        {"/admin/api", false, oauth, false},
        {"/admin/api/", true, oauth, false},
        /* The console's pages (after the API's rows: first match wins). */
        {"/admin", false, bp_admin_console_handler(), false},
        {"/admin/", true, bp_admin_console_handler(), false},
        /* The ops listener (ops_listen) serves this one only: health and metrics. */
        {"/", true, bp_ops_handler(), true},
    };
    const struct bp_http_hook hooks[BP_SERVE_HOOKS] = {
        *bp_ops_access_log_hook(),
        *bp_ops_metrics_hook(),
        *bp_proxy_audit_hook(sv->proxy),
    };

    size_t n = 0;

    for (size_t i = 0; i < BP_SERVE_ROUTES; i++) {
        if (sv->cfg.admin_enabled || strncmp(routes[i].path, "/admin", 6) != 0) {
            sv->routes[n++] = routes[i];
        }
    }
    memcpy(sv->hooks, hooks, sizeof(hooks));
    return n;
}

/* node_name, or "<hostname>:<port>" once the port is known (0 = not yet). */
static void
name_node(struct bp_serve *sv, int port)
{
    char host[200];

    if (sv->cfg.node_name != NULL) {
        snprintf(sv->node, sizeof(sv->node), "%s", sv->cfg.node_name);
        return;
    }
    if (port == 0) {
        return;
    }
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(sv->node, sizeof(sv->node), "%s:%d", host, port);
}

/* Migrates the store and loads the first tables. On PostgreSQL an unreachable store is not fatal
 * (issue 9): *out_loaded stays false and the watcher does both once it answers; anything else
 * (a refused migration, a SQLite store that cannot be read) fails the start with err. */
static bp_err
first_load(struct bp_store *store, int *applied, int *version, int64_t *token, bool *out_loaded, char *err,
           size_t err_len)
{
    bool pg = strcmp(bp_store_kind(store), "postgresql") == 0;
    bp_err rc = bp_store_migrate(store, applied, version);

    *out_loaded = false;
    if (rc == BP_OK) {
        rc = bp_watch_load_now(store, token);
        if (rc != BP_OK && !(pg && rc == BP_ERR_STORE_DOWN)) {
            snprintf(err, err_len, "cannot load credentials and instances from the store: %s",
                     bp_store_last_error(store));
            return rc;
        }
    } else if (!(pg && rc == BP_ERR_STORE_DOWN)) {
        snprintf(err, err_len, "cannot migrate the store: %s", bp_store_last_error(store));
        return rc;
    }
    if (rc != BP_OK) {
        BP_WARN("the store does not answer; serving /readyz 503 (and /proxy/ 503) until it does, and "
                "retrying",
                BP_LSTR("error", bp_store_last_error(store)));
        return BP_OK;
    }
    *out_loaded = true;
    return BP_OK;
}

/* Takes --json and --check out of argv; the rest are flags for the configuration. (--help is the
 * CLI's: it prints serve's usage from the settings table before calling here.) */
static void
split_args(int argc, char **argv, struct bp_serve *sv, bool *check, bool *json)
{
    sv->flags = bp_calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0) {
            *check = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            /* Every command takes --json (DESIGN §7); serve's log is JSON lines already. */
            *json = true;
        } else {
            sv->flags[sv->n_flags++] = argv[i];
        }
    }
}

/* READY=1 once listening. A PostgreSQL store that was down at start does not hold it back (the
 * node listens and retries; /readyz tells a load balancer): systemd would otherwise kill a node
 * that waits for its database longer than TimeoutStartSec. STATUS says so, and the watcher
 * updates it after the first load. */
static void
notify_ready(const struct bp_serve *sv, bool at_start)
{
    bp_sdnotifyf("READY=1\nSTATUS=serving on %s:%d with %d workers%s", sv->running->listen_host,
                 bp_server_port(sv->server), sv->running->workers,
                 at_start && !sv->loaded_at_start ? "; waiting for the store (/readyz answers 503)" : "");
}

/* Everything after the configuration, up to the listening line. Returns the exit code for a
 * failure, 0 once serving. */
static int
start(struct bp_serve *sv, struct bp_store **store, struct bp_watch **watch, struct bp_route **routes)
{
    struct bp_watch_opts wopts;
    size_t n_routes = 0;
    int applied = 0;
    int version = 0;
    int64_t token = 0;
    struct bp_server_spec spec;
    size_t n_routes_builtin;
    bool loaded = false;
    char err[1024] = "";

    if (bp_serve__build_routes(&sv->cfg, routes, &n_routes, err, sizeof(err)) != BP_OK) {
        fail(err);
        return 2;
    }
    /* Before the store is opened (and perhaps created): a second serve changes nothing. */
    if (bp_server_check_address(&sv->cfg, err, sizeof(err)) != BP_OK) {
        fail(err);
        return 1;
    }
    raise_fd_limit();
    if (bp_upstream_global_init() != BP_OK) {
        fail("cannot initialise the HTTP client library");
        return 1;
    }
    if (bp_metrics_init(sv->cfg.workers) != BP_OK) {
        fail("cannot set up metrics");
        return 1;
    }
    /* LAZY: a PostgreSQL server that is down now is waited for (issue 9); SQLite is unaffected. */
    if (bp_store_open(sv->cfg.db, BP_STORE_OPEN_CREATE | BP_STORE_OPEN_LAZY, store, err, sizeof(err)) != BP_OK) {
        fail(err);
        return 1;
    }
    if (bp_store_created_path(*store) != NULL) {
        BP_INFO("created a new store", BP_LSTR("path", bp_store_created_path(*store)));
    }
    /* Room for the CLI on a full disk (store_reserve.c); the audit writer makes it later when the
     * disk has too little free now. */
    if (bp_store_reserve_keep(sv->cfg.db) == BP_ERR_LIMIT) {
        BP_WARN("the disk holding the store has little room: the space kept free for the CLI (a full "
                "disk) is made once it has more",
                BP_LINT("reserve_bytes", BP_STORE_RESERVE_BYTES));
    }
    if (first_load(*store, &applied, &version, &token, &loaded, err, sizeof(err)) != BP_OK) {
        fail(err);
        return 1;
    }
    bp_metrics_store_up(loaded);
    bp_store_set_timeout(*store, WATCH_TIMEOUT_MS);
    name_node(sv, sv->cfg.listen_port);
    if (bp_serve__audit_start(sv, &sv->cfg) != BP_OK) {
        fail("cannot start the audit log writer (see the log line above)");
        return 1;
    }
    /* The OAuth answers' wait for the cluster (sync_tables); lazy, like every serve connection. */
    if (bp_store_open(sv->cfg.db, BP_STORE_OPEN_LAZY, &sv->sync_store, err, sizeof(err)) != BP_OK) {
        fail(err);
        return 1;
    }
    bp_store_set_timeout(sv->sync_store, SYNC_TIMEOUT_MS);
    if (bp_idem_new(&(struct bp_idem_opts){.dsn = sv->cfg.db,
                                          .threads = bp_store_dsn_is_pg(sv->cfg.db) ? IDEM_THREADS_PG
                                                                                    : IDEM_THREADS_SQLITE,
                                          .max_queued = IDEM_MAX_QUEUED,
                                          .purge_interval_ms = idem_purge_interval_ms(&sv->cfg)},
                    &sv->idem) != BP_OK) {
        fail("cannot start the Idempotency-Key threads (see the log line above)");
        return 1;
    }
    bp_proxy_new(&(struct bp_proxy_tables){bp_tables_generation, bp_tables_acquire}, sv->idem, &sv->proxy);
    if (bp_admin_new(&(struct bp_admin_opts){.node = sv->node, .signing_key = sv->cfg.audit_signing_key},
                     &sv->admin) != BP_OK) {
        fail("cannot start the admin API (see the log line above)");
        return 1;
    }
    bp_oauth_endpoint_new(&(struct bp_oauth_endpoint_opts){.cfg = &sv->cfg,
                                                           .tables_sync = sync_tables,
                                                           .tables_sync_arg = sv,
                                                           .service = sv->cfg.admin_enabled
                                                                          ? bp_admin_service(sv->admin)
                                                                          : NULL},
                          &sv->oauth);
    n_routes_builtin = fill_table(sv);
    spec = (struct bp_server_spec){
        .cfg = &sv->cfg,
        .routes = sv->routes,
        .n_routes = n_routes_builtin,
        .hooks = sv->hooks,
        .n_hooks = BP_SERVE_HOOKS,
        .app = bp_proxy_conf_new(*routes, n_routes, NULL, sv->audit),
        .app_free = bp_proxy_conf_free,
    };
    if (bp_server_new(&spec, &sv->server, err, sizeof(err)) != BP_OK) {
        fail(err);
        return 1;
    }
    /* Bound now: a default node name (it holds the port) is known before anything is served. */
    if (sv->node[0] == '\0') {
        name_node(sv, bp_server_port(sv->server));
        bp_audit_set_node(sv->audit, sv->node);
    }
    bp_metrics_set_node(sv->node);
    if (bp_oauth_endpoint_start(sv->oauth, bp_server_port(sv->server), bp_server_tls_port(sv->server)) != BP_OK) {
        fail("cannot start the OAuth threads (see the log line above)");
        return 1;
    }
    /* Accepting from here; /readyz answers "starting" until the watcher says the tables are
     * loaded (bp_watch_start, at once when they were loaded above). */
    if (bp_server_run(sv->server, err, sizeof(err)) != BP_OK) {
        fail(err);
        return 1;
    }
    sv->store_kind = bp_store_kind(*store); /* a static name: outlives the store */
    sv->loaded_at_start = loaded;
    sv->running = &sv->cfg;
    /* READY=1 (notify_ready): with tables, only once the watcher has its watchers row, so that
     * a CLI change made as soon as systemd says "active" waits for this server; without, before
     * the watcher starts, so that the STATUS it sends after the first load comes later. */
    if (!loaded) {
        notify_ready(sv, true);
    }
    wopts = (struct bp_watch_opts){
        .interval_ms = sv->cfg.reload_interval_ms, .token = token, .loaded = loaded, .node = sv->node};
    if (bp_watch_start(*store, sv->server, &wopts, watch) != BP_OK) {
        fail("cannot start the store watcher");
        return 1;
    }
    *store = NULL; /* the watcher owns it now */
    atomic_store(&the_watch, *watch);
    if (loaded) {
        notify_ready(sv, true);
    }
    /* Starting builds things it then frees (the OpenAPI document's JSON tree, ~0.8 MB, the
     * tables' load): malloc keeps those pages, in the middle of its heap, for a server that
     * will not need them again. Measured: idle RSS 11.7 -> 10.9 MB (serve --workers 2). */
    malloc_trim(0);
    BP_INFO("listening", BP_LSTR("node", sv->node), BP_LSTR("host", sv->cfg.listen_host),
            BP_LINT("port", bp_server_port(sv->server)), BP_LSTR("ops_host", sv->cfg.ops_listen_host),
            BP_LINT("ops_port", bp_server_ops_port(sv->server)), BP_LSTR("tls_host", sv->cfg.tls_listen_host),
            BP_LINT("tls_port", bp_server_tls_port(sv->server)),
            BP_LINT("workers", sv->cfg.workers), BP_LSTR("version", bp_version_get()),
            BP_LSTR("revision", bp_version_revision()), BP_LSTR("store", sv->store_kind),
            BP_LINT("schema_version", version), BP_LINT("migrations_applied", applied), BP_LINT("routes", n_routes),
            BP_LINT("max_connections", sv->cfg.max_connections),
            BP_LSTR("audit_writes", bp_serve__mode_name(sv->cfg.audit_writes)),
            BP_LSTR("audit_reads", bp_serve__mode_name(sv->cfg.audit_reads)),
            BP_LINT("oauth_threads", sv->cfg.oauth_threads), BP_LBOOL("reuse_port", sv->cfg.reuse_port),
            BP_LSTR("config_file", sv->cfg.file));
    if (sv->cfg.reuse_port) {
        warn_unless_requests_migrate();
    }
    return 0;
}

int
bp_serve_main(int argc, char **argv)
{
    struct bp_serve sv;
    struct bp_store *store = NULL;
    struct bp_watch *watch = NULL;
    struct bp_route *routes = NULL;
    char err[1024] = "";
    bool check = false;
    bool json = false;
    sigset_t sigs;
    int sig = 0;
    int code;

    memset(&sv, 0, sizeof(sv));
    pthread_mutex_init(&sv.sync_lock, NULL);
    /* First of all: SIGHUP's default action kills the process, and systemctl reload or logrotate
     * may send it at any moment. Blocked here, it waits for the sigwait loop; every thread
     * started later inherits the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* Blocks of 1 MiB and more come from mmap and go back to the system when freed. glibc's
     * default threshold moves up to the largest block freed so far, after which such blocks come
     * from a thread's arena and stay resident: the 19 MiB of each Argon2id hash (the sign-in
     * check prepared at start, every operator sign-in) then cost ~20 MiB of RSS for good (issue 10:
     * idle RSS 34 MiB, 14 without it). Fixing the threshold keeps it at 1 MiB. */
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);

    split_args(argc, argv, &sv, &check, &json);
    if (check) {
        code = bp_serve__check(sv.n_flags, sv.flags, json);
        bp_free(sv.flags);
        return code;
    }
    if (bp_config_load(sv.n_flags, sv.flags, &sv.cfg, err, sizeof(err)) != BP_OK) {
        fail(err);
        bp_free(sv.flags);
        return 2;
    }
    bp_log_set_level((enum bp_log_level)sv.cfg.log_level);

    /* systemd (Type=notify): start() says READY=1 once the store is open, the tables loaded (see
     * notify_ready for a PostgreSQL store that is down) and the listeners accepting; a reload and
     * the stop are announced the same way (no-ops without systemd). */
    code = start(&sv, &store, &watch, &routes);
    while (code == 0) {
        sigwait(&sigs, &sig);
        if (sig != SIGHUP) {
            break;
        }
        bp_sdnotifyf("RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=reloading the configuration",
                     (long long)bp_clock_mono_us());
        bp_serve__reload(&sv);
        notify_ready(&sv, false);
    }
    if (code == 0) {
        bp_sdnotify("STOPPING=1\nSTATUS=stopping: finishing in-flight requests");
        BP_INFO("shutting down", BP_LSTR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
    }
    /* Order: no request is in flight once the server stopped; then the OAuth threads finish
     * their queue and every queued audit record is committed (completions for stopped loops
     * wait in the workers' inboxes and run when the server is freed); the watcher stops before
     * the server is freed, because it reports readiness into it; the handlers go last. */
    if (sv.server != NULL) {
        bp_server_stop(sv.server);
    }
    bp_oauth_endpoint_stop(sv.oauth);
    bp_idem_stop(sv.idem);
    bp_audit_stop(sv.audit);
    atomic_store(&the_watch, NULL);
    bp_watch_stop(watch);
    bp_server_free(sv.server);
    bp_oauth_endpoint_free(sv.oauth);
    bp_admin_free(sv.admin);
    bp_proxy_free(sv.proxy);
    bp_idem_free(sv.idem);
    bp_store_close(store);
    bp_store_close(sv.sync_store);
    pthread_mutex_destroy(&sv.sync_lock);
    bp_tables_shutdown();
    bp_free(routes);
    bp_metrics_shutdown();
    if (code == 0) {
        BP_INFO("stopped");
    }
    bp_config_cleanup(&sv.cfg);
    bp_free(sv.flags);
    return code;
}
