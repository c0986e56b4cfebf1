/* A one-off check of an instance's Core (`instance check`, the console's "check connection"):
 * GET /health at its URL with its secret key, as a proxied request would send it, through the
 * proxy's own upstream client (the same DNS, TLS verification and CA file), blocking the calling
 * thread (never a loop's); the verdict in words an operator can act on. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "health/health.h"
#include "lib/alloc.h"
#include "lib/secret.h"
#include "upstream/upstream.h"

#define CHECK_PATH "/health"
#define KEY_PREFIX "X-Blnk-Key: "
#define CHECK_CONNECT_TIMEOUT_MS 5000

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

bp_err
bp_health_check_once(const struct bp_health_check_target *t, int64_t total_timeout_ms,
                     struct bp_health_check *out)
{
    struct bp_upstream_outcome r;
    struct bp_upstream_opts uo = {
        .connect_timeout_ms =
            CHECK_CONNECT_TIMEOUT_MS < total_timeout_ms ? CHECK_CONNECT_TIMEOUT_MS : total_timeout_ms,
        .total_timeout_ms = total_timeout_ms,
        .max_response_bytes = 64 * 1024,
    };
    size_t url_len = strlen(t->url);
    char *url = bp_malloc(url_len + sizeof(CHECK_PATH));
    char *key_line = NULL;
    size_t key_line_len = 0;
    const char *lines[1];
    bp_err err;

    memset(out, 0, sizeof(*out));
    memcpy(url, t->url, url_len);
    memcpy(url + url_len, CHECK_PATH, sizeof(CHECK_PATH));
    if (t->secret_key != NULL) {
        key_line_len = strlen(KEY_PREFIX) + t->secret_key_len + 1;
        key_line = bp_malloc(key_line_len);
        memcpy(key_line, KEY_PREFIX, strlen(KEY_PREFIX));
        memcpy(key_line + strlen(KEY_PREFIX), t->secret_key, t->secret_key_len);
        key_line[key_line_len - 1] = '\0';
        lines[0] = key_line;
    }
    err = bp_upstream_once(
        &(struct bp_upstream_req){
            .method = "GET",
            .url = url,
            .headers = lines,
            .n_headers = key_line != NULL ? 1 : 0,
            .ca_file = t->ca_file,
            .request_id = "instance-check",
            .instance_id = t->id,
        },
        &uo, &r);
    if (err == BP_OK) {
        out->healthy = verdict(&r, t->id, out->problem, sizeof(out->problem), out->hint, sizeof(out->hint));
        out->answered = r.rc == BP_OK;
        out->status = r.status;
        out->time_ms = r.upstream_us / 1000;
        snprintf(out->url, sizeof(out->url), "%s", url);
    }
    if (key_line != NULL) {
        bp_wipe(key_line, key_line_len);
        bp_free(key_line);
    }
    bp_free(url);
    return err;
}
