/* SIGHUP: re-read the configuration while serving (issue 8, item 6).
 *
 * systemctl reload and logrotate send SIGHUP; it used to kill the process. Now the main thread
 * (the only one that takes signals, see serve.c) loads the configuration again exactly as at
 * start (the same file, then the environment and flags given at start, which keep overriding
 * it), and:
 *  - a file that does not load, a bad value or a bad route is refused: one error line with the
 *    reason, and the running configuration stays; so is the disappearance of the default
 *    ./blnkproxy.json that was in use;
 *  - settings that apply live (limits, timeouts, log level, audit modes, routes) are published
 *    to the workers as a new immutable snapshot (bp_server_reconfigure); requests in flight
 *    finish with the one they started with;
 *  - settings that shaped threads, sockets or connections (listen, workers, db, oauth.*,
 *    audit.queue_size, ...) keep their running values, and one warning names them;
 *  - tls_listen's certificate and key are read again (a renewal replaces the files and sends
 *    SIGHUP): new TLS connections use them, open ones keep theirs; files that do not load
 *    refuse the reload as a bad value does;
 *  - one info line names what changed (names only, never values: a DSN may hold a password).
 * Turning auditing on when it was off for both kinds starts the audit writer here. */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "config/config.h"
#include "core/log.h"
#include "http/http.h"
#include "lib/alloc.h"
#include "proxy/proxy.h"
#include "router/router.h"
#include "serve/serve-int.h"

/* "a,b,c" of the changes whose applied flag is want; "" when none. */
static void
join_keys(const struct bp_config_change *ch, size_t n, bool want, char *out, size_t cap)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(ch[i].key);
        if (ch[i].applied != want || used + len + 2 > cap) {
            continue;
        }
        if (used > 0) {
            out[used++] = ',';
        }
        memcpy(out + used, ch[i].key, len + 1);
        used += len;
    }
}

static void
refuse(const char *reason)
{
    BP_ERROR("configuration reload refused; the running configuration stays", BP_LSTR("reason", reason));
}

void
bp_serve__reload(struct bp_serve *sv)
{
    struct bp_config *next = bp_calloc(1, sizeof(*next));
    struct bp_config_change ch[BP_CONFIG_MAX_CHANGES];
    struct bp_route *routes = NULL;
    size_t n_routes = 0;
    size_t n_changes;
    struct bp_http_tls *tls = NULL;
    char err[1024] = "";
    char applied[1024];
    char not_applied[1024];

    BP_INFO("SIGHUP: reloading the configuration");
    if (bp_config_load(sv->n_flags, sv->flags, next, err, sizeof(err)) != BP_OK) {
        refuse(err);
        goto done;
    }
    /* Without --config, ./blnkproxy.json is optional; but one that served until now and is gone
     * is more likely a mistake (a deploy half done) than a wish for every default back. */
    if (sv->running->file != NULL && next->file == NULL) {
        snprintf(err, sizeof(err),
                 "%s: the configuration file in use is gone; restore it, or restart to run without one",
                 sv->running->file);
        refuse(err);
        goto done;
    }
    n_changes = bp_config_reload_merge(sv->running, next, ch);
    if (bp_serve__build_routes(next, &routes, &n_routes, err, sizeof(err)) != BP_OK) {
        refuse(err);
        goto done;
    }
    /* The certificate and key are read again even when their paths did not change: a renewal
     * replaces the files and sends SIGHUP. */
    if (bp_http_tls_load(next, &tls, err, sizeof(err)) != BP_OK) {
        refuse(err);
        goto done;
    }
    if (bp_serve__audit_start(sv, next) != BP_OK) {
        refuse("cannot start the audit log writer (see the log line above)");
        bp_http_tls_free(tls);
        goto done;
    }
    /* The proxy's part of the snapshot owns the new route table; the server owns both. */
    bp_server_reconfigure(sv->server, next, bp_proxy_conf_new(routes, n_routes, routes, sv->audit), tls);
    sv->running = next; /* the server owns it now, and keeps it until the next reload */

    /* Before the lines below, so that whoever reads them sees the new level in effect (an
     * info line is not written under warn, like any other). */
    bp_log_set_level((enum bp_log_level)next->log_level);
    join_keys(ch, n_changes, true, applied, sizeof(applied));
    join_keys(ch, n_changes, false, not_applied, sizeof(not_applied));
    if (not_applied[0] != '\0') {
        BP_WARN("configuration reload: these settings take effect only at the next start; their running "
                "values stay",
                BP_LSTR("not_applied", not_applied));
    }
    BP_INFO("configuration reloaded", BP_LSTR("file", next->file), BP_LSTR("changed", applied),
            BP_LINT("routes", n_routes), BP_LBOOL("tls_certificate_reloaded", tls != NULL),
            BP_LSTR("audit_writes", bp_serve__mode_name(next->audit_writes)),
            BP_LSTR("audit_reads", bp_serve__mode_name(next->audit_reads)));
    next = NULL;
    routes = NULL;
done:
    if (next != NULL) {
        bp_config_cleanup(next);
        bp_free(next);
    }
    bp_free(routes);
}
