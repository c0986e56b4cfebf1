/* `blnkproxy serve --check` (issue 8, item 6), like `nginx -t`: everything serve would read
 * before it binds — the configuration from file, environment and flags, the route table, the
 * store — is loaded and validated, and nothing is started. The listen address is not probed: the
 * usual reason to run --check is a running serve about to get SIGHUP, which holds it.
 *
 * A SQLite store is opened only when its file exists (opening creates it otherwise); a missing one
 * is reported, since serve would create it, and its directory must allow that. A PostgreSQL store
 * is opened with BP_STORE_OPEN_CREATE, which there writes nothing (migrations create the schema),
 * so that an empty database is reported as the place serve would create the store in. A DSN is
 * printed only masked (bp_store_dsn_mask). */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "http/http.h"
#include "lib/alloc.h"
#include "router/router.h"
#include "serve/serve-int.h"
#include "store/store.h"
#include "trail/trail.h"

struct store_report {
    char shown[512];   /* the DSN, password masked */
    bool pg;           /* a PostgreSQL DSN */
    bool exists;       /* a store (SQLite: its file; PostgreSQL: its schema) is there */
    size_t instances;
};

/* The file of a SQLite DSN (a path, "sqlite:PATH" or "sqlite://PATH", as bp_store_open reads
 * it); NULL for other stores. */
static const char *
sqlite_path(const char *dsn)
{
    if (strstr(dsn, "://") != NULL && strncmp(dsn, "sqlite://", 9) != 0) {
        return NULL;
    }
    if (strncmp(dsn, "sqlite:", 7) == 0) {
        dsn += 7;
        if (strncmp(dsn, "//", 2) == 0) {
            dsn += 2;
        }
    }
    return dsn;
}

/* A PostgreSQL store: reachable, a blnkproxy store this binary may use or an empty database. */
static bp_err
check_pg_store(const char *dsn, struct store_report *out, char *err, size_t err_len)
{
    struct bp_store *store = NULL;
    struct bp_instance_rec *insts = NULL;
    char why[512] = "";
    int version = 0;
    bp_err rc = bp_store_open(dsn, BP_STORE_OPEN_CREATE, &store, why, sizeof(why));

    if (rc == BP_OK) {
        rc = bp_store_schema_version(store, &version);
        if (rc == BP_OK && version > 0) {
            out->exists = true;
            rc = bp_store_instance_list(store, &insts, &out->instances);
        }
        if (rc != BP_OK) {
            snprintf(why, sizeof(why), "%s", bp_store_last_error(store));
        }
    }
    if (rc != BP_OK) {
        snprintf(err, err_len, "store %s: %s", out->shown, why);
    }
    bp_instance_recs_free(insts, out->instances);
    bp_store_close(store);
    return rc;
}

static bp_err
check_store(const char *dsn, struct store_report *out, char *err, size_t err_len)
{
    const char *path = sqlite_path(dsn);
    struct bp_store *store = NULL;
    struct bp_instance_rec *insts = NULL;
    struct stat sb;
    char why[512] = "";
    bp_err rc;

    bp_store_dsn_mask(dsn, out->shown, sizeof(out->shown));
    out->pg = bp_store_dsn_is_pg(dsn);
    if (out->pg) {
        return check_pg_store(dsn, out, err, err_len);
    }
    if (path != NULL && path[0] != '\0' && stat(path, &sb) != 0) {
        char *copy = bp_strdup(path);
        const char *dir = dirname(copy);
        int e = errno;
        rc = BP_OK;
        if (e != ENOENT) {
            snprintf(err, err_len, "store %s: %s", out->shown, strerror(e));
            rc = BP_ERR_IO;
        } else if (access(dir, W_OK | X_OK) != 0) {
            snprintf(err, err_len, "no store at %s, and serve could not create it: directory %s: %s", out->shown,
                     dir, strerror(errno));
            rc = BP_ERR_IO;
        }
        bp_free(copy);
        return rc;
    }
    out->exists = true;
    rc = bp_store_open(dsn, 0, &store, why, sizeof(why));
    if (rc == BP_OK) {
        rc = bp_store_ping(store);
        if (rc == BP_OK) {
            rc = bp_store_instance_list(store, &insts, &out->instances);
        }
        if (rc != BP_OK) {
            snprintf(why, sizeof(why), "%s (serve migrates the store when it starts: is this a blnkproxy store?)",
                     bp_store_last_error(store));
        }
    }
    if (rc != BP_OK) {
        snprintf(err, err_len, "store %s: %s", out->shown, why);
    }
    bp_instance_recs_free(insts, out->instances);
    bp_store_close(store);
    return rc;
}

/* A JSON string value (with quotes), or null. */
static void
put_json_string(const char *s)
{
    char buf[2048];

    if (s == NULL) {
        fputs("null", stdout);
        return;
    }
    bp_json_escape(buf, sizeof(buf), s, strlen(s));
    printf("\"%s\"", buf);
}

static int
refuse(const char *reason, bool json)
{
    fprintf(stderr, "blnkproxy: %s\n", reason);
    if (json) {
        fputs("{\"ok\":false,\"error\":", stdout);
        put_json_string(reason);
        fputs("}\n", stdout);
    }
    return 2;
}

static void
print_summary(const struct bp_config *cfg, size_t n_routes, const struct store_report *st, bool json)
{
    char listen[300];
    size_t n_builtin = 0;

    bp_routes_builtin(&n_builtin);
    snprintf(listen, sizeof(listen), strchr(cfg->listen_host, ':') != NULL ? "[%s]:%d" : "%s:%d",
             cfg->listen_host, cfg->listen_port);
    if (json) {
        fputs("{\"ok\":true,\"config_file\":", stdout);
        put_json_string(cfg->file);
        fputs(",\"listen\":", stdout);
        put_json_string(listen);
        printf(",\"workers\":%d,\"routes\":%zu,\"audit_writes\":\"%s\",\"audit_reads\":\"%s\",\"store\":", cfg->workers,
               n_routes, bp_serve__mode_name(cfg->audit_writes), bp_serve__mode_name(cfg->audit_reads));
        put_json_string(st->shown);
        printf(",\"store_exists\":%s,\"instances\":%zu}\n", st->exists ? "true" : "false", st->instances);
        return;
    }
    printf("configuration ok\n");
    printf("  config file  %s\n", cfg->file != NULL ? cfg->file : "none (defaults, environment and flags)");
    printf("  listen       %s, %d workers\n", listen, cfg->workers);
    printf("  routes       %zu (%zu built in, %zu removed, %zu added)\n", n_routes, n_builtin, cfg->n_routes_remove,
           cfg->n_routes_add);
    printf("  audit        writes %s, reads %s\n", bp_serve__mode_name(cfg->audit_writes),
           bp_serve__mode_name(cfg->audit_reads));
    if (st->exists) {
        printf("  store        %s, %zu instance%s\n", st->shown, st->instances, st->instances == 1 ? "" : "s");
    } else {
        printf("  store        no store %s %s; serve would create it\n", st->pg ? "in" : "at", st->shown);
    }
}

/* tls_listen's certificate and key load as serve would load them. */
static bp_err
check_tls(const struct bp_config *cfg, char *err, size_t err_len)
{
    struct bp_http_tls *tls = NULL;
    bp_err rc = bp_http_tls_load(cfg, &tls, err, err_len);

    bp_http_tls_free(tls);
    return rc;
}

/* audit.signing_key, as the audit keeper loads it at start (issue 13). */
static bp_err
check_signing_key(const struct bp_config *cfg, char *err, size_t err_len)
{
    struct bp_trail_key *key;
    char why[512];

    if (cfg->audit_signing_key == NULL) {
        return BP_OK;
    }
    key = bp_trail_key_load(cfg->audit_signing_key, true, why, sizeof(why));
    if (key == NULL) {
        snprintf(err, err_len, "audit.signing_key: %s", why);
        return BP_ERR_INVALID;
    }
    bp_trail_key_free(key);
    return BP_OK;
}

int
bp_serve__check(int n_flags, char **flags, bool json)
{
    struct bp_config cfg;
    struct bp_route *routes = NULL;
    size_t n_routes = 0;
    struct store_report st;
    char err[1024] = "";
    int code = 2;

    memset(&cfg, 0, sizeof(cfg));
    memset(&st, 0, sizeof(st));
    if (bp_config_load(n_flags, flags, &cfg, err, sizeof(err)) != BP_OK ||
        bp_serve__build_routes(&cfg, &routes, &n_routes, err, sizeof(err)) != BP_OK ||
        check_tls(&cfg, err, sizeof(err)) != BP_OK || check_signing_key(&cfg, err, sizeof(err)) != BP_OK ||
        check_store(cfg.db, &st, err, sizeof(err)) != BP_OK) {
        code = refuse(err, json);
        goto done;
    }
    print_summary(&cfg, n_routes, &st, json);
    code = fflush(stdout) == 0 ? 0 : 1;
done:
    bp_free(routes);
    bp_config_cleanup(&cfg);
    return code;
}
