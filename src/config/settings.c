/* The settings table: every configurable value of `serve` is one row naming its JSON key,
 * environment variable, flag, type, bounds, default and field, plus the value parsers those types
 * share. Sources and their precedence live in config.c; docs/CONFIG.md mirrors this table. */

#include "config/settings-int.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/ipnet.h"
#include "lib/rate.h"
#include "lib/str.h"

#define KIB ((int64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC ((int64_t)1000)
#define MINUTE (SEC * 60)
#define HOUR (MINUTE * 60)

/* Whether a reload (SIGHUP) applies the setting while serving. */
#define LIVE true
#define RESTART false

#define FIELD(f) offsetof(struct bp_config, f), sizeof(((struct bp_config *)0)->f)

/* A string setting has no numeric bounds; this caps its length so a stray file cannot become a
 * megabyte-long DSN. */
#define STRING_MAX_LEN 4096

const struct bp_setting bp_config__settings[] = {
    {"db", "BLNKPROXY_DB", "--db", BP_SETTING_STRING, 1, STRING_MAX_LEN, "./blnkproxy.db", FIELD(db), 0,
     "store DSN: a SQLite file path, or a postgres:// or postgresql:// URI", RESTART, "DSN"},
    {"listen", "BLNKPROXY_LISTEN", "--listen", BP_SETTING_LISTEN, 0, 65535, "127.0.0.1:8080",
     FIELD(listen_host), offsetof(struct bp_config, listen_port),
     "address to serve on; port 0 picks a free port (logged at start)", RESTART, NULL},
    {"ops_listen", "BLNKPROXY_OPS_LISTEN", "--ops-listen", BP_SETTING_LISTEN, 0, 65535, NULL,
     FIELD(ops_listen_host), offsetof(struct bp_config, ops_listen_port),
     "a second address for operations: /metrics is then served there only, /healthz and /readyz on "
     "both; unset: everything on listen",
     RESTART, NULL},
    {"tls_listen", "BLNKPROXY_TLS_LISTEN", "--tls-listen", BP_SETTING_LISTEN, 0, 65535, NULL,
     FIELD(tls_listen_host), offsetof(struct bp_config, tls_listen_port),
     "an address served with TLS (HTTPS) by every worker, beside listen; needs tls_cert and tls_key; "
     "unset: no TLS listener",
     RESTART, NULL},
    {"tls_cert", "BLNKPROXY_TLS_CERT", "--tls-cert", BP_SETTING_OPT_STRING, 1, STRING_MAX_LEN, NULL,
     FIELD(tls_cert), 0,
     "PEM file with tls_listen's certificate and then its intermediates; read again at SIGHUP", LIVE, "FILE"},
    {"tls_key", "BLNKPROXY_TLS_KEY", "--tls-key", BP_SETTING_OPT_STRING, 1, STRING_MAX_LEN, NULL,
     FIELD(tls_key), 0, "PEM file with the certificate's private key (unencrypted); read again at SIGHUP",
     LIVE, "FILE"},
    {"workers", "BLNKPROXY_WORKERS", "--workers", BP_SETTING_INT, 1, 256, NULL, FIELD(workers), 0,
     "loop threads; default is the number of online CPUs", RESTART, NULL},
    {"upstream_connect_timeout", "BLNKPROXY_UPSTREAM_CONNECT_TIMEOUT", "--upstream-connect-timeout",
     BP_SETTING_DURATION, 10, 300 * SEC, "5s", FIELD(upstream_connect_timeout_ms), 0,
     "time allowed to connect to Core", LIVE, NULL},
    {"upstream_timeout", "BLNKPROXY_UPSTREAM_TIMEOUT", "--upstream-timeout", BP_SETTING_DURATION, 10, HOUR,
     "30s", FIELD(upstream_timeout_ms), 0,
     "time allowed for a whole Core exchange; beyond it the client gets 504", LIVE, NULL},
    {"max_header_bytes", "BLNKPROXY_MAX_HEADER_BYTES", "--max-header-bytes", BP_SETTING_SIZE, 256, MIB,
     "32KiB", FIELD(max_head_bytes), 0, "largest request head (request line and headers)", LIVE, NULL},
    {"max_headers", "BLNKPROXY_MAX_HEADERS", "--max-headers", BP_SETTING_INT, 1, 128, "100",
     FIELD(max_headers), 0, "most header fields in one request", LIVE, NULL},
    {"max_connections", "BLNKPROXY_MAX_CONNECTIONS", "--max-connections", BP_SETTING_INT, 1, 1000000, "10000",
     FIELD(max_connections), 0, "most open client connections; at the limit new ones wait in the backlog",
     LIVE, NULL},
    {"max_connections_per_peer", "BLNKPROXY_MAX_CONNECTIONS_PER_PEER", "--max-connections-per-peer",
     BP_SETTING_INT, 0, 1000000, "1024", FIELD(max_connections_per_peer), 0,
     "most open connections from one client (an IPv4 address or an IPv6 /64; trusted_proxies are not "
     "limited); more are closed at once; 0: no limit",
     LIVE, NULL},
    {"max_body_bytes", "BLNKPROXY_MAX_BODY_BYTES", "--max-body-bytes", BP_SETTING_SIZE, 1, GIB, "1MiB",
     FIELD(max_body_bytes), 0, "largest request body, also once transaction defaults are added; larger gets 413",
     LIVE, NULL},
    {"max_buffered_bytes", "BLNKPROXY_MAX_BUFFERED_BYTES", "--max-buffered-bytes", BP_SETTING_SIZE, 64 * 1024,
     64 * GIB, "256MiB", FIELD(max_buffered_bytes), 0,
     "memory for request bodies being received, all connections together; a body that does not fit gets "
     "503 PROXY_OVERLOADED before it is read",
     LIVE, NULL},
    {"max_upload_bytes", "BLNKPROXY_MAX_UPLOAD_BYTES", "--max-upload-bytes", BP_SETTING_SIZE, 1, GIB, "32MiB",
     FIELD(max_upload_bytes), 0, "largest body on the multipart upload route", LIVE, NULL},
    {"max_response_bytes", "BLNKPROXY_MAX_RESPONSE_BYTES", "--max-response-bytes", BP_SETTING_SIZE, 1, GIB,
     "64MiB", FIELD(max_response_bytes), 0,
     "largest Core response the proxy relays; larger gets 502 (or a cut connection once streaming)", LIVE, NULL},
    {"idle_timeout", "BLNKPROXY_IDLE_TIMEOUT", "--idle-timeout", BP_SETTING_DURATION, 10, HOUR, "60s",
     FIELD(idle_timeout_ms), 0, "keep-alive connection idle time before it is closed", LIVE, NULL},
    {"header_timeout", "BLNKPROXY_HEADER_TIMEOUT", "--header-timeout", BP_SETTING_DURATION, 10, 10 * MINUTE,
     "10s", FIELD(header_timeout_ms), 0, "time a client has to send a complete request head", LIVE, NULL},
    {"body_timeout", "BLNKPROXY_BODY_TIMEOUT", "--body-timeout", BP_SETTING_DURATION, 10, HOUR, "10s",
     FIELD(body_timeout_ms), 0,
     "time an authenticated client has to send its request body, plus a second for every body_min_rate "
     "bytes it sent; a body read before authentication (OAuth) must arrive within header_timeout of the "
     "request's start; late gets 408",
     LIVE, NULL},
    {"body_min_rate", "BLNKPROXY_BODY_MIN_RATE", "--body-min-rate", BP_SETTING_SIZE, 0, GIB, "1KiB",
     FIELD(body_min_rate), 0,
     "body bytes per second that keep a slow upload going: each such amount received adds a second to "
     "body_timeout; 0: body_timeout is the whole time",
     LIVE, "BYTES"},
    {"shutdown_timeout", "BLNKPROXY_SHUTDOWN_TIMEOUT", "--shutdown-timeout", BP_SETTING_DURATION, 0,
     10 * MINUTE, "10s", FIELD(shutdown_timeout_ms), 0,
     "longest wait for in-flight requests to drain after SIGTERM/SIGINT", LIVE, NULL},
    {"reload_interval", "BLNKPROXY_RELOAD_INTERVAL", "--reload-interval", BP_SETTING_DURATION, 50, 10 * SEC,
     "500ms", FIELD(reload_interval_ms), 0, "fallback poll for store changes where file events do not arrive",
     RESTART, NULL},
    {"log_level", "BLNKPROXY_LOG_LEVEL", "--log-level", BP_SETTING_LOG_LEVEL, 0, 0, "info", FIELD(log_level),
     0, "least severe level written: debug, info, warn or error", LIVE, NULL},
    {"oauth.access_token_ttl", "BLNKPROXY_OAUTH_ACCESS_TOKEN_TTL", "--oauth-access-token-ttl",
     BP_SETTING_DURATION, SEC, 30 * 24 * HOUR, "1h", FIELD(oauth_access_token_ttl_ms), 0,
     "lifetime of an OAuth access token (blnk_at_)", RESTART, NULL},
    {"oauth.refresh_token_ttl", "BLNKPROXY_OAUTH_REFRESH_TOKEN_TTL", "--oauth-refresh-token-ttl",
     BP_SETTING_DURATION, SEC, 365 * 24 * HOUR, "30d", FIELD(oauth_refresh_token_ttl_ms), 0,
     "lifetime of an OAuth refresh token (blnk_rt_); each refresh issues a new one", RESTART, NULL},
    {"oauth.code_ttl", "BLNKPROXY_OAUTH_CODE_TTL", "--oauth-code-ttl", BP_SETTING_DURATION, SEC, 10 * MINUTE,
     "10m", FIELD(oauth_code_ttl_ms), 0, "lifetime of an authorization code (single use)", RESTART, NULL},
    {"oauth.session_ttl", "BLNKPROXY_OAUTH_SESSION_TTL", "--oauth-session-ttl", BP_SETTING_DURATION, MINUTE,
     24 * HOUR, "30m", FIELD(oauth_session_ttl_ms), 0,
     "how long an operator stays signed in on the authorize page", RESTART, NULL},
    {"oauth.issuer", "BLNKPROXY_OAUTH_ISSUER", "--oauth-issuer", BP_SETTING_OPT_STRING, 1, STRING_MAX_LEN, NULL,
     FIELD(oauth_issuer), 0, "public base URL of the proxy (metadata, forms); default https://<tls_listen>, else http://<listen>",
     RESTART, "URL"},
    {"oauth.threads", "BLNKPROXY_OAUTH_THREADS", "--oauth-threads", BP_SETTING_INT, 1, 64, "2",
     FIELD(oauth_threads), 0, "threads that serve /oauth/* (password hashing and store writes)", RESTART, NULL},
    {"oauth.password_threads", "BLNKPROXY_OAUTH_PASSWORD_THREADS", "--oauth-password-threads", BP_SETTING_INT, 1,
     16, "1", FIELD(oauth_password_threads), 0,
     "threads that verify operator passwords (the authorize page's sign-ins, Argon2id), apart from "
     "oauth.threads so that token requests never wait behind them; 8 sign-ins wait per thread, more get 429",
     RESTART, NULL},
    {"oauth.max_tokens_per_client", "BLNKPROXY_OAUTH_MAX_TOKENS_PER_CLIENT", "--oauth-max-tokens-per-client",
     BP_SETTING_INT, 1, 100000, "100", FIELD(oauth_max_tokens_per_client), 0,
     "live access tokens one client may hold; issuing another revokes its oldest", RESTART, NULL},
    {"admin.enabled", "BLNKPROXY_ADMIN_ENABLED", "--admin-enabled", BP_SETTING_BOOL, 0, 1, "true",
     FIELD(admin_enabled), 0,
     "serve the admin API (/admin/api/) and the console (/admin/) on this node's listeners; false: both "
     "answer 404, and no admin threads run",
     RESTART, NULL},
    {"audit.writes", "BLNKPROXY_AUDIT_WRITES", "--audit-writes", BP_SETTING_AUDIT_MODE, 0, 0, "sync",
     FIELD(audit_writes), 0, "audit of write requests: sync (committed before the response), async or off",
     LIVE, NULL},
    {"audit.reads", "BLNKPROXY_AUDIT_READS", "--audit-reads", BP_SETTING_AUDIT_MODE, 0, 0, "async",
     FIELD(audit_reads), 0,
     "audit of read requests (a refused request follows its kind): sync, async or off", LIVE, NULL},
    {"audit.queue_size", "BLNKPROXY_AUDIT_QUEUE_SIZE", "--audit-queue-size", BP_SETTING_INT, 16, 10000000,
     "65536", FIELD(audit_queue_size), 0,
     "audit records waiting for the writer; when full, new requests get 503", RESTART, NULL},
    {"audit.refusal_window", "BLNKPROXY_AUDIT_REFUSAL_WINDOW", "--audit-refusal-window", BP_SETTING_DURATION,
     SEC, HOUR, "60s", FIELD(audit_refusal_window_ms), 0,
     "requests refused before authentication are recorded as one record per peer, error and status this "
     "often, with their count",
     RESTART, NULL},
    {"audit.checkpoint_interval", "BLNKPROXY_AUDIT_CHECKPOINT_INTERVAL", "--audit-checkpoint-interval",
     BP_SETTING_DURATION, 0, 24 * 7 * HOUR, "1h", FIELD(audit_checkpoint_interval_ms), 0,
     "how often the trail's chain heads are written down as a checkpoint (when they moved), for `audit "
     "checkpoints` to export; 0: never",
     RESTART, NULL},
    {"audit.signing_key", "BLNKPROXY_AUDIT_SIGNING_KEY", "--audit-signing-key", BP_SETTING_OPT_STRING, 1,
     STRING_MAX_LEN, NULL, FIELD(audit_signing_key), 0,
     "Ed25519 private key (PEM) that signs checkpoints and the checkpoints purges leave; none: unsigned",
     RESTART, "FILE"},
    {"audit.retention_days", "BLNKPROXY_AUDIT_RETENTION_DAYS", "--audit-retention-days", BP_SETTING_INT, 0,
     36500, "90", FIELD(audit_retention_days), 0, "days audit records are kept; 0 keeps them forever", RESTART, NULL},
    {"audit.spool", "BLNKPROXY_AUDIT_SPOOL", "--audit-spool", BP_SETTING_OPT_STRING, 1, STRING_MAX_LEN, NULL,
     FIELD(audit_spool), 0, "file where audit records wait while the store fails; default <db>.audit-spool",
     RESTART, "FILE"},
    {"health.failures", "BLNKPROXY_HEALTH_FAILURES", "--health-failures", BP_SETTING_INT, 0, 1000, "5",
     FIELD(health_failures), 0,
     "consecutive connect errors, timeouts or 502/503/504 answers after which a Core instance is down: its "
     "requests get 503 PROXY_INSTANCE_UNAVAILABLE at once; 0: never (passive health off)",
     LIVE, NULL},
    {"health.cooldown", "BLNKPROXY_HEALTH_COOLDOWN", "--health-cooldown", BP_SETTING_DURATION, 100, HOUR, "5s",
     FIELD(health_cooldown_ms), 0,
     "time a down instance is refused before one trial request (or probe) may find it up again", LIVE, NULL},
    {"health.probe_interval", "BLNKPROXY_HEALTH_PROBE_INTERVAL", "--health-probe-interval", BP_SETTING_DURATION,
     0, HOUR, "0", FIELD(health_probe_interval_ms), 0,
     "how often GET <instance url>/health probes every enabled instance with its secret; 0: no probe",
     LIVE, NULL},
    {"health.probe_instances", "BLNKPROXY_HEALTH_PROBE_INSTANCES", "--health-probe-instances",
     BP_SETTING_INTERVALS, 0, HOUR, NULL, FIELD(health_probe_instances), 0,
     "instances probed at their own interval instead of health.probe_interval: ID=DURATION pairs "
     "separated by commas (0: never probe that one)",
     LIVE, "ID=DURATION,..."},
    {"trusted_proxies", "BLNKPROXY_TRUSTED_PROXIES", "--trusted-proxies", BP_SETTING_NETS, 0, 256, NULL,
     FIELD(trusted_proxies), 0,
     "addresses of the load balancers in front (CIDRs, comma-separated, e.g. 10.0.0.0/8,::1): only from "
     "these are X-Forwarded-For and X-Forwarded-Proto believed; from anyone else they are dropped and the "
     "connection's own address is the client's",
     LIVE, "CIDR,..."},
    {"rate_limit.default", "BLNKPROXY_RATE_LIMIT_DEFAULT", "--rate-limit-default", BP_SETTING_RATE, 0, 0, "0",
     FIELD(rate_limit_default), 0,
     "request rate of an API key or OAuth client without its own (--rate): like 100/s or 6000/m, shared by "
     "the live nodes; 0: no limit",
     LIVE, NULL},
    {"rate_limit.default_burst", "BLNKPROXY_RATE_LIMIT_DEFAULT_BURST", "--rate-limit-default-burst",
     BP_SETTING_INT, 0, BP_RATE_COUNT_MAX, "0", FIELD(rate_limit_default_burst), 0,
     "requests such a credential may make at once before the rate applies; 0: the rate's count", LIVE, NULL},
    {"rate_limit.auth_failures", "BLNKPROXY_RATE_LIMIT_AUTH_FAILURES", "--rate-limit-auth-failures",
     BP_SETTING_RATE, 0, 0, "120/m", FIELD(rate_limit_auth_failures), 0,
     "failed authentications allowed per peer (an IPv4 address or an IPv6 /64), on each node: beyond them "
     "its requests get 429 before any credential is looked at; 0: no limit",
     LIVE, NULL},
    {"rate_limit.auth_failure_burst", "BLNKPROXY_RATE_LIMIT_AUTH_FAILURE_BURST", "--rate-limit-auth-failure-burst",
     BP_SETTING_INT, 0, BP_RATE_COUNT_MAX, "30", FIELD(rate_limit_auth_failure_burst), 0,
     "failed authentications a peer may make at once before the rate applies; 0: the rate's count", LIVE, NULL},
    {"idempotency.ttl", "BLNKPROXY_IDEMPOTENCY_TTL", "--idempotency-ttl", BP_SETTING_DURATION, 0, 30 * 24 * HOUR,
     "24h", FIELD(idempotency_ttl_ms), 0,
     "how long the answer to a write with an Idempotency-Key is kept and replayed (whole seconds); expired "
     "entries are purged in the background; 0: Idempotency-Key is not handled (forwarded to Core as sent)",
     LIVE, NULL},
    {"idempotency.lease", "BLNKPROXY_IDEMPOTENCY_LEASE", "--idempotency-lease", BP_SETTING_DURATION, SEC, 24 * HOUR,
     "60s", FIELD(idempotency_lease_ms), 0,
     "after a first request's outcome became unknown (Core did not answer after it was sent), how long its "
     "retries get 409 before a transaction is sent again with the same reference",
     LIVE, NULL},
    {"idempotency.max_answer_bytes", "BLNKPROXY_IDEMPOTENCY_MAX_ANSWER_BYTES", "--idempotency-max-answer-bytes",
     BP_SETTING_SIZE, 0, 64 * MIB, "1MiB", FIELD(idempotency_max_answer_bytes), 0,
     "the largest answer body kept for replay; a larger one is relayed but not kept, and repeats get 409 "
     "PROXY_IDEMPOTENCY_ANSWER_NOT_KEPT",
     LIVE, NULL},
    {"reuse_port", "BLNKPROXY_REUSE_PORT", "--reuse-port", BP_SETTING_BOOL, 0, 1, "false", FIELD(reuse_port), 0,
     "start even when the listen address is already served (hand-over: start the new process, then "
     "SIGTERM the old one)", RESTART, NULL},
    {"node_name", "BLNKPROXY_NODE_NAME", "--node-name", BP_SETTING_OPT_STRING, 1, 255, NULL, FIELD(node_name),
     0, "this server's name in logs, metrics, audit records and db status; default <hostname>:<port>",
     RESTART, "NAME"},
};

const size_t bp_config__n_settings = BP_ARRAY_LEN(bp_config__settings);

const struct bp_setting *
bp_config__find_key(const char *key)
{
    for (size_t i = 0; i < bp_config__n_settings; i++) {
        if (strcmp(bp_config__settings[i].key, key) == 0) {
            return &bp_config__settings[i];
        }
    }
    return NULL;
}

const struct bp_setting *
bp_config__find_flag(const char *flag, size_t len)
{
    for (size_t i = 0; i < bp_config__n_settings; i++) {
        if (bp_str_eq(flag, len, bp_config__settings[i].flag)) {
            return &bp_config__settings[i];
        }
    }
    return NULL;
}

/* Writes n in the largest unit that divides it exactly, so bounds read as they are written. */
static void
format_size(int64_t n, char *out, size_t cap)
{
    if (n > 0 && n % GIB == 0) {
        snprintf(out, cap, "%" PRId64 "GiB", n / GIB);
    } else if (n > 0 && n % MIB == 0) {
        snprintf(out, cap, "%" PRId64 "MiB", n / MIB);
    } else if (n > 0 && n % KIB == 0) {
        snprintf(out, cap, "%" PRId64 "KiB", n / KIB);
    } else {
        snprintf(out, cap, "%" PRId64, n);
    }
}

static void
format_ms(int64_t ms, char *out, size_t cap)
{
    if (ms > 0 && ms % HOUR == 0) {
        snprintf(out, cap, "%" PRId64 "h", ms / HOUR);
    } else if (ms > 0 && ms % MINUTE == 0) {
        snprintf(out, cap, "%" PRId64 "m", ms / MINUTE);
    } else if (ms % SEC == 0) {
        snprintf(out, cap, "%" PRId64 "s", ms / SEC);
    } else {
        snprintf(out, cap, "%" PRId64 "ms", ms);
    }
}

/* health.probe_instances: at most this many pairs, so a stray value cannot make every probe
 * tick scan a megabyte. */
#define INTERVALS_MAX 1000
#define INTERVAL_ID_MAX 64

/* Walks "ID=DURATION,…", checking every pair (ids of [A-Za-z0-9_], durations 0..max ms) and
 * calling fn (when not NULL) with each; fn returning true stops the walk. BP_ERR_INVALID on the
 * first bad pair. */
static bp_err
intervals_each(const char *text, int64_t max, bool (*fn)(const char *id, size_t id_len, int64_t ms, void *arg),
               void *arg)
{
    const char *p = text;
    int n = 0;

    if (text[0] == '\0') {
        return BP_OK;
    }
    for (;;) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, ',');
        char dur[32];
        int64_t ms;
        size_t id_len;

        if (end == NULL) {
            end = p + strlen(p);
        }
        if (eq == NULL || eq > end || ++n > INTERVALS_MAX) {
            return BP_ERR_INVALID;
        }
        id_len = (size_t)(eq - p);
        if (id_len == 0 || id_len > INTERVAL_ID_MAX || (size_t)(end - eq - 1) >= sizeof(dur) || end == eq + 1) {
            return BP_ERR_INVALID;
        }
        for (size_t i = 0; i < id_len; i++) {
            char ch = p[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_')) {
                return BP_ERR_INVALID;
            }
        }
        memcpy(dur, eq + 1, (size_t)(end - eq - 1));
        dur[end - eq - 1] = '\0';
        if (bp_config__parse_duration(dur, &ms) != BP_OK || ms < 0 || ms > max) {
            return BP_ERR_INVALID;
        }
        if (fn != NULL && fn(p, id_len, ms, arg)) {
            return BP_OK;
        }
        if (*end == '\0') {
            return BP_OK;
        }
        p = end + 1;
    }
}

struct interval_find {
    const char *id;
    int64_t ms;
    bool found;
};

static bool
interval_match(const char *id, size_t id_len, int64_t ms, void *arg)
{
    struct interval_find *f = arg;

    if (strlen(f->id) == id_len && memcmp(f->id, id, id_len) == 0) {
        f->ms = ms;
        f->found = true;
        return true;
    }
    return false;
}

int64_t
bp_config_probe_interval_ms(const char *pairs, int64_t fallback_ms, const char *instance_id)
{
    struct interval_find f = {.id = instance_id};

    if (pairs != NULL) {
        (void)intervals_each(pairs, HOUR, interval_match, &f);
    }
    return f.found ? f.ms : fallback_ms;
}

static bool
interval_min(const char *id, size_t id_len, int64_t ms, void *arg)
{
    int64_t *min = arg;

    (void)id;
    (void)id_len;
    if (ms > 0 && (*min == 0 || ms < *min)) {
        *min = ms;
    }
    return false;
}

int64_t
bp_config_probe_tick_ms(const char *pairs, int64_t fallback_ms)
{
    int64_t min = fallback_ms;

    if (pairs != NULL) {
        (void)intervals_each(pairs, HOUR, interval_min, &min);
    }
    return min;
}

void
bp_config__describe(const struct bp_setting *s, char *why, size_t why_len)
{
    char lo[32];
    char hi[32];

    switch (s->type) {
    case BP_SETTING_STRING:
    case BP_SETTING_OPT_STRING:
        snprintf(why, why_len, "must be a non-empty string of at most %" PRId64 " bytes", s->max);
        break;
    case BP_SETTING_NETS:
        snprintf(why, why_len,
                 "must be IP addresses or networks separated by commas (like 10.0.0.0/8,192.0.2.7,::1; the "
                 "host bits of a network zero; at most %" PRId64 ")",
                 s->max);
        break;
    case BP_SETTING_INTERVALS:
        snprintf(why, why_len,
                 "must be ID=DURATION pairs separated by commas (instance ids of letters, digits and _, "
                 "durations 0..1h like 30s; at most %d pairs), e.g. instance_01ABC=30s,instance_01DEF=0",
                 INTERVALS_MAX);
        break;
    case BP_SETTING_INT:
        snprintf(why, why_len, "must be an integer %" PRId64 "..%" PRId64, s->min, s->max);
        break;
    case BP_SETTING_SIZE:
        format_size(s->min, lo, sizeof(lo));
        format_size(s->max, hi, sizeof(hi));
        snprintf(why, why_len,
                 "must be a size %s..%s (a number of bytes, or with a k, KiB, MiB or GiB suffix)", lo, hi);
        break;
    case BP_SETTING_DURATION:
        format_ms(s->min, lo, sizeof(lo));
        format_ms(s->max, hi, sizeof(hi));
        snprintf(why, why_len, "must be a duration %s..%s (like 500ms, 5s, 2m, 1h, or a number of seconds)",
                 lo, hi);
        break;
    case BP_SETTING_LOG_LEVEL:
        snprintf(why, why_len, "must be one of debug, info, warn, error");
        break;
    case BP_SETTING_AUDIT_MODE:
        snprintf(why, why_len, "must be one of sync, async, off");
        break;
    case BP_SETTING_LISTEN:
        snprintf(why, why_len,
                 "expected HOST:PORT with HOST an IPv4 address, [IPv6 address] or localhost "
                 "and PORT 0..65535; for every interface write :PORT (IPv4) or [::]:PORT (IPv4 and IPv6)");
        break;
    case BP_SETTING_BOOL:
        snprintf(why, why_len, "must be true or false");
        break;
    case BP_SETTING_RATE:
        snprintf(why, why_len, "must be a rate like 100/s, 6000/m, 500/h or 10000/d (at most %u per period), "
                               "or 0 for none",
                 BP_RATE_COUNT_MAX);
        break;
    }
}

bp_err
bp_config__parse_size(const char *text, uint64_t *out_bytes)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},           {"B", 1},          {"k", 1024},         {"K", 1024},
        {"KiB", 1024},     {"m", 1 << 20},    {"M", 1 << 20},      {"MiB", 1 << 20},
        {"g", 1ULL << 30}, {"G", 1ULL << 30}, {"GiB", 1ULL << 30},
    };
    size_t digits = strspn(text, "0123456789");
    const char *suffix = text + digits;
    uint64_t n;

    for (size_t i = 0; i < BP_ARRAY_LEN(units); i++) {
        if (strcmp(suffix, units[i].suffix) != 0) {
            continue;
        }
        if (bp_str_parse_u64(text, digits, UINT64_MAX / units[i].mult, &n) != BP_OK) {
            return BP_ERR_INVALID;
        }
        *out_bytes = n * units[i].mult;
        return BP_OK;
    }
    return BP_ERR_INVALID;
}

bp_err
bp_config__parse_duration(const char *text, int64_t *out_ms)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    size_t int_len = strspn(text, "0123456789");
    const char *frac = NULL;
    size_t frac_len = 0;
    const char *suffix = text + int_len;
    uint64_t whole;
    uint64_t part = 0;
    uint64_t scale = 1;

    if (*suffix == '.') {
        frac = suffix + 1;
        frac_len = strspn(frac, "0123456789");
        /* "5." and more than nanosecond precision are refused rather than guessed at. */
        if (frac_len == 0 || frac_len > 9) {
            return BP_ERR_INVALID;
        }
        suffix = frac + frac_len;
    }
    for (size_t i = 0; i < BP_ARRAY_LEN(units); i++) {
        uint64_t mult = units[i].ms;
        if (strcmp(suffix, units[i].suffix) != 0) {
            continue;
        }
        if (bp_str_parse_u64(text, int_len, (uint64_t)INT64_MAX / mult - 1, &whole) != BP_OK) {
            return BP_ERR_INVALID;
        }
        if (frac != NULL) {
            if (bp_str_parse_u64(frac, frac_len, UINT64_MAX, &part) != BP_OK) {
                return BP_ERR_INVALID;
            }
            for (size_t d = 0; d < frac_len; d++) {
                scale *= 10;
            }
        }
        /* part < 10^9 and mult < 10^8, so part * mult fits; round to the nearest ms. */
        *out_ms = (int64_t)(whole * mult + (part * mult + scale / 2) / scale);
        return BP_OK;
    }
    return BP_ERR_INVALID;
}

bp_err
bp_config__parse_listen(const char *text, char **out_host, int *out_port)
{
    const char *colon = strrchr(text, ':');
    const char *host;
    size_t host_len;
    char host_buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    uint64_t port;
    bool v6;

    if (colon == NULL || bp_str_parse_u64(colon + 1, strlen(colon + 1), 65535, &port) != BP_OK) {
        return BP_ERR_INVALID;
    }
    host = text;
    host_len = (size_t)(colon - text);
    /* Issue 8: ":8081" (Go) and "*:8081" (nginx) mean every interface; we say so as 0.0.0.0, the
     * IPv4 wildcard, so the listening line shows what was bound. IPv6 as well is "[::]:8081". */
    if (host_len == 0 || (host_len == 1 && host[0] == '*')) {
        *out_host = bp_strdup("0.0.0.0");
        *out_port = (int)port;
        return BP_OK;
    }
    v6 = host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']';
    if (v6) {
        host++;
        host_len -= 2;
    }
    if (host_len == 0 || host_len >= sizeof(host_buf)) {
        return BP_ERR_INVALID;
    }
    memcpy(host_buf, host, host_len);
    host_buf[host_len] = '\0';
    if (v6) {
        if (inet_pton(AF_INET6, host_buf, addr) != 1) {
            return BP_ERR_INVALID;
        }
    } else if (strcmp(host_buf, "localhost") != 0 && inet_pton(AF_INET, host_buf, addr) != 1) {
        /* Also refuses a bare IPv6 address: "::1:80" is ambiguous without brackets. */
        return BP_ERR_INVALID;
    }
    *out_host = bp_strndup(host_buf, host_len);
    *out_port = (int)port;
    return BP_OK;
}

static void *
field(struct bp_config *c, size_t offset)
{
    return (char *)c + offset;
}

static void
store_count(const struct bp_setting *s, struct bp_config *c, int64_t v)
{
    if (s->width == sizeof(int)) {
        *(int *)field(c, s->offset) = (int)v;
    } else {
        BP_BUG_ON(s->width != sizeof(size_t));
        *(size_t *)field(c, s->offset) = (size_t)v;
    }
}

static void
replace_string(struct bp_config *c, size_t offset, char *v)
{
    char **slot = field(c, offset);
    bp_free(*slot);
    *slot = v;
}

static bool
in_bounds(const struct bp_setting *s, uint64_t v)
{
    return v >= (uint64_t)s->min && v <= (uint64_t)s->max;
}

bp_err
bp_config__set_text(const struct bp_setting *s, const char *text, struct bp_config *c, char *why,
                    size_t why_len)
{
    uint64_t u;
    int64_t ms;
    enum bp_log_level lvl;
    char *host;
    int port;
    bool ok = false;

    switch (s->type) {
    case BP_SETTING_STRING:
    case BP_SETTING_OPT_STRING:
        ok = text[0] != '\0' && strlen(text) <= (size_t)s->max;
        if (ok) {
            replace_string(c, s->offset, bp_strdup(text));
        }
        break;
    case BP_SETTING_INT:
        ok = bp_str_parse_u64(text, strlen(text), (uint64_t)s->max, &u) == BP_OK && in_bounds(s, u);
        if (ok) {
            store_count(s, c, (int64_t)u);
        }
        break;
    case BP_SETTING_SIZE:
        BP_BUG_ON(s->width != sizeof(size_t));
        ok = bp_config__parse_size(text, &u) == BP_OK && in_bounds(s, u);
        if (ok) {
            *(size_t *)field(c, s->offset) = (size_t)u;
        }
        break;
    case BP_SETTING_DURATION:
        BP_BUG_ON(s->width != sizeof(int64_t));
        ok = bp_config__parse_duration(text, &ms) == BP_OK && in_bounds(s, (uint64_t)ms);
        if (ok) {
            *(int64_t *)field(c, s->offset) = ms;
        }
        break;
    case BP_SETTING_LOG_LEVEL:
        BP_BUG_ON(s->width != sizeof(int));
        ok = bp_log_level_parse(text, &lvl);
        if (ok) {
            *(int *)field(c, s->offset) = (int)lvl;
        }
        break;
    case BP_SETTING_AUDIT_MODE:
        BP_BUG_ON(s->width != sizeof(int));
        ok = true;
        if (strcmp(text, "sync") == 0) {
            *(int *)field(c, s->offset) = BP_AUDIT_SYNC;
        } else if (strcmp(text, "async") == 0) {
            *(int *)field(c, s->offset) = BP_AUDIT_ASYNC;
        } else if (strcmp(text, "off") == 0) {
            *(int *)field(c, s->offset) = BP_AUDIT_OFF;
        } else {
            ok = false;
        }
        break;
    case BP_SETTING_BOOL:
        BP_BUG_ON(s->width != sizeof(bool));
        ok = strcmp(text, "true") == 0 || strcmp(text, "false") == 0;
        if (ok) {
            *(bool *)field(c, s->offset) = text[0] == 't';
        }
        break;
    case BP_SETTING_INTERVALS:
        ok = text[0] != '\0' && strlen(text) <= STRING_MAX_LEN * 16 && intervals_each(text, s->max, NULL, NULL) == BP_OK;
        if (ok) {
            replace_string(c, s->offset, bp_strdup(text));
        }
        break;
    case BP_SETTING_NETS: {
        struct bp_ipnet *nets = NULL;
        size_t n = 0;
        ok = text[0] != '\0' && strlen(text) <= STRING_MAX_LEN &&
             bp_ipnet_list_parse(text, (size_t)s->max, &nets, &n, NULL, 0) == BP_OK;
        bp_free(nets);
        if (ok) {
            replace_string(c, s->offset, bp_strdup(text));
        }
        break;
    }
    case BP_SETTING_RATE:
        BP_BUG_ON(s->width != sizeof(struct bp_rate));
        ok = bp_rate_parse(text, strlen(text), (struct bp_rate *)field(c, s->offset));
        break;
    case BP_SETTING_LISTEN:
        ok = bp_config__parse_listen(text, &host, &port) == BP_OK;
        if (ok) {
            replace_string(c, s->offset, host);
            *(int *)field(c, s->aux_offset) = port;
        }
        break;
    }
    if (!ok) {
        bp_config__describe(s, why, why_len);
        return BP_ERR_INVALID;
    }
    return BP_OK;
}

static int
online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) {
        return 1;
    }
    return n > 256 ? 256 : (int)n;
}

void
bp_config__defaults(struct bp_config *c)
{
    char why[256];

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < bp_config__n_settings; i++) {
        const struct bp_setting *s = &bp_config__settings[i];
        if (s->def == NULL &&
            (s->type == BP_SETTING_OPT_STRING || s->type == BP_SETTING_INTERVALS || s->type == BP_SETTING_NETS ||
             s->type == BP_SETTING_LISTEN)) {
            continue; /* absent: the module that reads it picks its default */
        }
        if (s->def == NULL) {
            /* Only workers is computed; its row bounds match the clamp in online_cpus. */
            BP_BUG_ON(s->offset != offsetof(struct bp_config, workers));
            c->workers = online_cpus();
            continue;
        }
        /* Defaults go through the same parser as user input, so a bad table row fails loudly. */
        BP_BUG_ON(bp_config__set_text(s, s->def, c, why, sizeof(why)) != BP_OK);
    }
}

/* ---- documentation: serve --help, the man pages and the completions read the table here ---- */

size_t
bp_config_setting_count(void)
{
    return bp_config__n_settings;
}

void
bp_config_setting_doc(size_t i, struct bp_config_setting_doc *out)
{
    static const struct {
        const char *type;
        const char *value_name;
        const char *values;
    } types[] = {
        [BP_SETTING_STRING] = {"string", "TEXT", NULL},
        [BP_SETTING_INT] = {"integer", "N", NULL},
        [BP_SETTING_SIZE] = {"size", "SIZE", NULL},
        [BP_SETTING_DURATION] = {"duration", "DURATION", NULL},
        [BP_SETTING_LOG_LEVEL] = {"log level", "LEVEL", "debug info warn error"},
        [BP_SETTING_LISTEN] = {"HOST:PORT", "HOST:PORT", NULL},
        [BP_SETTING_AUDIT_MODE] = {"audit mode", "MODE", "sync async off"},
        [BP_SETTING_OPT_STRING] = {"string", "TEXT", NULL},
        [BP_SETTING_BOOL] = {"boolean", NULL, "true false"},
        [BP_SETTING_INTERVALS] = {"ID=DURATION list", "ID=DURATION,...", NULL},
        [BP_SETTING_NETS] = {"CIDR list", "CIDR,...", NULL},
        [BP_SETTING_RATE] = {"rate", "RATE", NULL},
    };
    const struct bp_setting *s;

    BP_BUG_ON(i >= bp_config__n_settings);
    s = &bp_config__settings[i];
    memset(out, 0, sizeof(*out));
    out->key = s->key;
    out->env = s->env;
    out->flag = s->flag;
    out->type = types[s->type].type;
    out->value_name = s->value_name != NULL ? s->value_name : types[s->type].value_name;
    out->values = types[s->type].values;
    out->def = s->def;
    if (s->def == NULL) {
        /* Only workers is computed (bp_config__defaults); an absent optional string names its
         * default in its meaning. */
        out->def_note = s->type == BP_SETTING_INT ? "the number of online CPUs" : NULL;
    }
    out->meaning = s->meaning;
    out->live = s->live;
    bp_config__describe(s, out->accepts, sizeof(out->accepts));
}
