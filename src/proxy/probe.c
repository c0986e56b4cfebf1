/* The active health probe (issue 14): GET <instance url>/health on every enabled instance each
 * health.probe_interval, with the instance's secret as a proxied request sends it, its outcome
 * reported into the instance's health (health/health.h) like a proxied request's.
 *
 * Where it runs: on one worker's loop (the first that started), through that worker's upstream
 * client and its tick (bp_upstream_set_tick). A probe is one small non-blocking exchange, which
 * is what the upstream client and its loop are for: it reuses the worker's kept-alive
 * connections, DNS cache and TLS contexts, and needs no thread. The work queue (core/workq) runs
 * blocking work on threads of its own, which would need a second HTTP client there. One worker
 * is enough: the state it reports into is shared by all of them.
 *
 * Each instance is probed at its own interval (health.probe_instances, else health.probe_interval);
 * the tick runs at the shortest of them. An instance whose previous probe has not ended yet is
 * skipped, so a hung Core never has more than one probe open. */
#include <string.h>

#include "auth/auth.h"
#include "config/config.h"
#include "health/health.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "proxy/proxy-int.h"
#include "upstream/upstream.h"

#define PROBE_PATH "/health"
#define KEY_PREFIX "X-Blnk-Key: "

/* An instance's last probe (monotonic ms), found by its health slot, which outlives snapshots. */
struct bp_proxy__probe_due {
    const struct bp_health *health;
    int64_t last_ms;
};

struct bp_proxy__probe {
    struct bp_proxy__probe *next;
    struct bp_proxy_worker *pw;
    struct bp_health *health;
    struct bp_upstream_xfer *xfer;
};

static void
unlink_probe(struct bp_proxy_worker *pw, struct bp_proxy__probe *pr)
{
    for (struct bp_proxy__probe **at = &pw->probes; *at != NULL; at = &(*at)->next) {
        if (*at == pr) {
            *at = pr->next;
            return;
        }
    }
}

static void
probe_done(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct bp_proxy__probe *pr = arg;
    struct bp_proxy_worker *pw = pr->pw;
    bool ok = rc == BP_OK && resp != NULL && resp->status < 500;

    /* Only a Core that answered below 500 is up; what it said (a 401 for a wrong secret) is for
     * `instance check`, not for routing. */
    bp_health_report(pr->health, &pw->health, ok, false, ok ? 0 : bp_clock_mono_ms());
    unlink_probe(pw, pr);
    bp_free(pr);
}

static bool
probing(const struct bp_proxy_worker *pw, const struct bp_health *h)
{
    for (const struct bp_proxy__probe *pr = pw->probes; pr != NULL; pr = pr->next) {
        if (pr->health == h) {
            return true;
        }
    }
    return false;
}

static void
probe_one(struct bp_proxy_worker *pw, const struct bp_instance *inst)
{
    size_t url_len = strlen(inst->url) + sizeof(PROBE_PATH);
    char *url = bp_malloc(url_len);
    char *key_line = NULL;
    size_t key_line_len = 0;
    const char *lines[1];
    size_t n_lines = 0;
    struct bp_proxy__probe *pr;
    struct bp_upstream_req up;
    bp_err rc;

    memcpy(url, inst->url, strlen(inst->url));
    memcpy(url + strlen(inst->url), PROBE_PATH, sizeof(PROBE_PATH));
    if (inst->secret != NULL) {
        size_t key_len;
        const char *key = bp_secret_bytes(inst->secret, &key_len);
        key_line_len = strlen(KEY_PREFIX) + key_len + 1;
        key_line = bp_malloc(key_line_len);
        memcpy(key_line, KEY_PREFIX, strlen(KEY_PREFIX));
        memcpy(key_line + strlen(KEY_PREFIX), key, key_len);
        key_line[key_line_len - 1] = '\0';
        lines[n_lines++] = key_line;
    }
    pr = bp_calloc(1, sizeof(*pr));
    pr->pw = pw;
    pr->health = inst->health;
    up = (struct bp_upstream_req){
        .method = "GET",
        .url = url,
        .headers = lines,
        .n_headers = n_lines,
        .ca_file = inst->ca_file,
        .request_id = "health-probe",
        .instance_id = inst->id,
    };
    /* The client copies the URL and the lines before it returns; it reports a failure (an
     * unusable URL included) through probe_done. */
    rc = bp_upstream_send(pw->upstream, &up, probe_done, pr, &pr->xfer);
    if (rc == BP_OK) {
        pr->next = pw->probes;
        pw->probes = pr;
    } else {
        bp_free(pr);
    }
    if (key_line != NULL) {
        bp_wipe(key_line, key_line_len);
        bp_free(key_line);
    }
    bp_free(url);
}

/* Whether inst's own interval has passed since its last probe; notes now as its last when so.
 * The tick runs at the shortest interval of all, so an instance with a longer one is skipped
 * until its turn. */
static bool
due(struct bp_proxy_worker *pw, const struct bp_instance *inst, int64_t now_ms)
{
    int64_t every = bp_config_probe_interval_ms(pw->probe_instances, pw->probe_default_ms, inst->id);
    struct bp_proxy__probe_due *d = NULL;

    if (every <= 0) {
        return false;
    }
    for (size_t i = 0; i < pw->n_due; i++) {
        if (pw->due[i].health == inst->health) {
            d = &pw->due[i];
            break;
        }
    }
    if (d == NULL) {
        /* Bounded by the instances ever configured, as the health slots are. */
        pw->due = bp_realloc(pw->due, (pw->n_due + 1) * sizeof(*pw->due));
        d = &pw->due[pw->n_due++];
        *d = (struct bp_proxy__probe_due){.health = inst->health, .last_ms = INT64_MIN / 2};
    }
    /* Half a tick of slack: a tick that fires a little early still probes at its interval. */
    if (now_ms - d->last_ms < every - pw->probe_interval_ms / 2) {
        return false;
    }
    d->last_ms = now_ms;
    return true;
}

static void
on_tick(void *arg)
{
    struct bp_proxy_worker *pw = arg;
    struct bp_tables *t = bp_proxy__worker_tables(pw);
    int64_t now_ms = bp_clock_mono_ms();

    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < bp_tables_instance_count(t); i++) {
        const struct bp_instance *inst = bp_tables_instance_at(t, i);
        if (inst->enabled && inst->health != NULL && !probing(pw, inst->health) && due(pw, inst, now_ms)) {
            probe_one(pw, inst);
        }
    }
}

void
bp_proxy__probe_conf(struct bp_proxy_worker *pw, const struct bp_config *cfg)
{
    int64_t tick;

    pw->health = (struct bp_health_conf){
        .failures = cfg->health_failures,
        .cooldown_ms = cfg->health_cooldown_ms,
    };
    if (!pw->prober) {
        return;
    }
    pw->probe_default_ms = cfg->health_probe_interval_ms;
    bp_free(pw->probe_instances);
    pw->probe_instances = cfg->health_probe_instances != NULL ? bp_strdup(cfg->health_probe_instances) : NULL;
    tick = bp_config_probe_tick_ms(pw->probe_instances, pw->probe_default_ms);
    if (tick == pw->probe_interval_ms) {
        return;
    }
    pw->probe_interval_ms = tick;
    (void)bp_upstream_set_tick(pw->upstream, pw->probe_interval_ms, on_tick, pw);
}

void
bp_proxy__probe_stop(struct bp_proxy_worker *pw)
{
    (void)bp_upstream_set_tick(pw->upstream, 0, NULL, NULL);
    while (pw->probes != NULL) {
        struct bp_proxy__probe *pr = pw->probes;
        pw->probes = pr->next;
        bp_upstream_cancel(pr->xfer);
        bp_free(pr);
    }
    bp_free(pw->due);
    pw->due = NULL;
    pw->n_due = 0;
    bp_free(pw->probe_instances);
    pw->probe_instances = NULL;
}
