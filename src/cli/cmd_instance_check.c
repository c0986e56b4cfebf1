/* `instance check ID`: calls Core's GET /health at the instance's URL with the instance's secret
 * key, as a proxied request would send it, through the proxy's own upstream client (the same
 * DNS, TLS verification and CA file), and says what is wrong in words an operator can act on:
 * the name does not resolve, the connection is refused, TLS verification failed, Core refused
 * the secret key, Core answered an error, or nothing came back in time. The secret is never
 * printed. Exit 0 when Core answered 2xx, 1 otherwise (3 for an unknown instance). */
#include <stdio.h>
#include <string.h>

#include "cli/cli-int.h"
#include "cli/out.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "store/store.h"
#include "upstream/upstream.h"

#define CHECK_PATH "/health"
#define KEY_PREFIX "X-Blnk-Key: "
#define CHECK_CONNECT_TIMEOUT_MS 5000
#define CHECK_TOTAL_TIMEOUT_S 10
#define CHECK_TIMEOUT_MAX_S 300

/* What to tell the operator, and whether Core is healthy. */
static bool
verdict(const struct bp_upstream_outcome *r, const char *id, char *problem, size_t problem_len, char *hint,
        size_t hint_len)
{
    hint[0] = '\0';
    if (r->rc == BP_OK && r->status >= 200 && r->status < 300) {
        snprintf(problem, problem_len, "none: Core answered %d in %.1f ms", r->status,
                 r->upstream_us / 1000.0);
        return true;
    }
    if (r->rc == BP_OK && (r->status == 401 || r->status == 403)) {
        snprintf(problem, problem_len, "Core refused the instance's secret key (HTTP %d)", r->status);
        snprintf(hint, hint_len,
                 "set Core's secret key on the instance: blnkproxy instance update %s --secret-key-file FILE",
                 id);
        return false;
    }
    if (r->rc == BP_OK) {
        snprintf(problem, problem_len, "Core answered HTTP %d to GET %s", r->status, CHECK_PATH);
        snprintf(hint, hint_len, "%s",
                 r->status >= 500 ? "Core is failing: look at Core's own logs"
                                  : "is the URL Core's base URL (no path of another service)?");
        return false;
    }
    if (r->rc == BP_ERR_UPSTREAM_TIMEOUT) {
        snprintf(problem, problem_len, "no answer in time: %s", r->cause[0] ? r->cause : "timeout");
        snprintf(hint, hint_len, "is Core running and reachable from this host (firewall, port)?");
        return false;
    }
    if (strncmp(r->cause, "DNS lookup", 10) == 0) {
        snprintf(problem, problem_len, "the host name does not resolve: %s", r->cause);
        snprintf(hint, hint_len, "check the instance's URL (blnkproxy instance show %s) and this host's DNS",
                 id);
    } else if (r->kind == BP_METRICS_UPSTREAM_TLS || strstr(r->cause, "TLS") != NULL ||
               strstr(r->cause, "certificate") != NULL || strstr(r->cause, "CA file") != NULL) {
        snprintf(problem, problem_len, "TLS failed: %s", r->cause);
        snprintf(
            hint, hint_len,
            "the certificate must be valid for the URL's host name; for a private CA set --ca-file on the "
            "instance");
    } else if (strstr(r->cause, "refused") != NULL) {
        snprintf(problem, problem_len, "the connection was refused: %s", r->cause);
        snprintf(hint, hint_len, "nothing listens at the instance's URL: is Core running, on that port?");
    } else {
        snprintf(problem, problem_len, "Core could not be reached: %s",
                 r->cause[0] ? r->cause : bp_err_str(r->rc));
    }
    return false;
}

int
bp_cli__instance_check(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_store *s = NULL;
    struct bp_instance_rec inst = {0};
    struct bp_upstream_outcome r;
    struct bp_upstream_opts uo = {
        .connect_timeout_ms = CHECK_CONNECT_TIMEOUT_MS,
        .total_timeout_ms = CHECK_TOTAL_TIMEOUT_S * 1000,
        .max_response_bytes = 64 * 1024,
    };
    struct bp_cli_flag flags[1];
    int64_t timeout_s;
    char *url = NULL;
    char *key_line = NULL;
    size_t key_line_len = 0;
    const char *lines[1];
    char problem[400];
    char hint[256];
    struct bp_out_obj *o = NULL;
    bool healthy;
    int rc;
    bp_err err;
    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (flags[0].seen) {
        if (bp_str_parse_duration(flags[0].value, &timeout_s) != BP_OK || timeout_s <= 0 ||
            timeout_s > CHECK_TIMEOUT_MAX_S) {
            bp_cli__error("--timeout must be a duration like 10s or 1m, at most 5m");
            return BP_CLI_EXIT_USAGE;
        }
        uo.total_timeout_ms = timeout_s * 1000;
        if (uo.connect_timeout_ms > uo.total_timeout_ms) {
            uo.connect_timeout_ms = uo.total_timeout_ms;
        }
    }
    rc = bp_cli__open_store(ctx, false, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_instance_get(s, ctx->pos[0], &inst);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "instance", ctx->pos[0]);
        bp_store_close(s);
        return rc;
    }
    bp_store_close(s);

    url = bp_malloc(strlen(inst.url) + sizeof(CHECK_PATH));
    memcpy(url, inst.url, strlen(inst.url));
    memcpy(url + strlen(inst.url), CHECK_PATH, sizeof(CHECK_PATH));
    if (inst.secret_key != NULL) {
        key_line_len = strlen(KEY_PREFIX) + inst.secret_key_len + 1;
        key_line = bp_malloc(key_line_len);
        memcpy(key_line, KEY_PREFIX, strlen(KEY_PREFIX));
        memcpy(key_line + strlen(KEY_PREFIX), inst.secret_key, inst.secret_key_len);
        key_line[key_line_len - 1] = '\0';
        lines[0] = key_line;
    }
    /* The client logs a failure as a warning line; here the verdict below says it instead. */
    bp_log_set_level(BP_LOG_ERROR);
    err = bp_upstream_once(
        &(struct bp_upstream_req){
            .method = "GET",
            .url = url,
            .headers = lines,
            .n_headers = key_line != NULL ? 1 : 0,
            .ca_file = inst.ca_file,
            .request_id = "instance-check",
            .instance_id = inst.id,
        },
        &uo, &r);
    if (err != BP_OK) {
        fprintf(stderr, "blnkproxy: instance check: the request could not be made (%s)\n", bp_err_str(err));
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    healthy = verdict(&r, inst.id, problem, sizeof(problem), hint, sizeof(hint));
    o = bp_out_obj_new();
    bp_out_str(o, "id", inst.id);
    bp_out_str(o, "name", inst.name);
    bp_out_str(o, "url", url);
    bp_out_bool(o, "healthy", healthy);
    if (r.rc == BP_OK) {
        bp_out_int(o, "status", r.status);
        bp_out_int(o, "time_ms", r.upstream_us / 1000);
    }
    bp_out_str(o, "problem", healthy ? NULL : problem);
    bp_out_str(o, "hint", hint[0] != '\0' ? hint : NULL);
    bp_out_bool(o, "enabled", inst.enabled);
    rc = bp_out_print_obj(o, ctx->json);
    if (rc == BP_CLI_EXIT_OK && !healthy) {
        rc = BP_CLI_EXIT_FAIL;
    }
done:
    bp_out_obj_free(o);
    if (key_line != NULL) {
        bp_wipe(key_line, key_line_len);
        bp_free(key_line);
    }
    bp_free(url);
    bp_instance_rec_cleanup(&inst);
    return rc;
}
