#ifndef BP_CONFIG_CONFIG_H
#define BP_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/rate.h"

/* The server's configuration: defaults, then blnkproxy.json (or --config FILE), then BLNKPROXY_*
 * environment variables, then command-line flags (DESIGN §7). Runtime code reads only this
 * immutable snapshot, never config text. */

/* One operator-added route ("routes": {"add": [...]}), as text; the router validates it. */
struct bp_config_route {
    char *method;   /* "GET" */
    char *path;     /* "/ledgers/:id/export" */
    char *scope;    /* "proxy:read" or "proxy:write"; NULL = by method */
    char *action;   /* audit action label, NULL for none */
    char *category; /* NULL = "custom" */
    bool large_body;
};

/* How the audit log records a class of requests (issue 4): committed before the response is
 * released (sync), queued and committed soon after (async), or not recorded (off). */
enum bp_audit_mode { BP_AUDIT_OFF = 0, BP_AUDIT_ASYNC, BP_AUDIT_SYNC };

struct bp_config {
    char *db;                     /* DSN; "db" / BLNKPROXY_DB / --db; default "./blnkproxy.db" */
    char *listen_host;            /* "listen" / BLNKPROXY_LISTEN / --listen "HOST:PORT"; default 127.0.0.1:8080 */
    int listen_port;              /* 0 = any free port (the chosen one is logged) */
    char *ops_listen_host;        /* "ops_listen": where /metrics (and health) are served instead of
                                     on listen; NULL = no such listener */
    int ops_listen_port;
    char *tls_listen_host;        /* "tls_listen": an address served with TLS; NULL = none */
    int tls_listen_port;
    char *tls_cert;               /* "tls_cert": PEM certificate chain for tls_listen */
    char *tls_key;                /* "tls_key": PEM private key for tls_listen */
    int workers;                  /* "workers" / BLNKPROXY_WORKERS / --workers; default = online cores; 1..256 */
    int64_t upstream_connect_timeout_ms; /* "upstream_connect_timeout" (duration or seconds number) default 5s */
    int64_t upstream_timeout_ms;  /* "upstream_timeout" / --upstream-timeout SECONDS; default 30s */
    size_t max_head_bytes;        /* "max_header_bytes": whole request head, default 32 KiB */
    size_t max_headers;           /* "max_headers": default 100 */
    int max_connections;          /* "max_connections": open client connections, all workers, default 10000 */
    int max_connections_per_peer; /* "max_connections_per_peer": per IPv4 address or IPv6 /64, trusted
                                     proxies exempt; 0 = no limit, default 1024 */
    size_t max_body_bytes;        /* "max_body_bytes": default 1 MiB per request body */
    size_t max_upload_bytes;      /* "max_upload_bytes": multipart upload route, default 32 MiB */
    size_t max_buffered_bytes;    /* "max_buffered_bytes": request bodies in memory, all connections
                                     together, default 256 MiB */
    size_t max_response_bytes;    /* "max_response_bytes": buffered Core response cap, default 64 MiB */
    int64_t idle_timeout_ms;      /* "idle_timeout": keep-alive idle close, default 60s */
    int64_t header_timeout_ms;    /* "header_timeout": time to send a complete head, default 10s */
    int64_t body_timeout_ms;      /* "body_timeout": time to send a body once its head is in, default 10s */
    size_t body_min_rate;         /* "body_min_rate": bytes per second that each extend body_timeout by
                                     a second; 0 = none, default 1 KiB */
    int64_t shutdown_timeout_ms;  /* "shutdown_timeout": bound on draining at SIGTERM, default 10s */
    int64_t reload_interval_ms;   /* "reload_interval": store change poll, default 500ms */
    int log_level;                /* enum bp_log_level; "log_level" / BLNKPROXY_LOG_LEVEL / --log-level */
    /* "oauth": {...} in the file, BLNKPROXY_OAUTH_KEY, --oauth-key (DESIGN §6). */
    int64_t oauth_access_token_ttl_ms;  /* "oauth.access_token_ttl", default 1h */
    int64_t oauth_refresh_token_ttl_ms; /* "oauth.refresh_token_ttl", default 30d */
    int64_t oauth_code_ttl_ms;          /* "oauth.code_ttl": authorization codes, default 10m */
    int64_t oauth_session_ttl_ms;       /* "oauth.session_ttl": authorize-page sign-in, default 30m */
    char *oauth_issuer;                 /* "oauth.issuer": public base URL; NULL = http://<listen> */
    int oauth_threads;                  /* "oauth.threads": threads serving the OAuth endpoints, default 2 */
    bool admin_enabled;                 /* "admin.enabled": the admin API and console, default true */
    int oauth_password_threads;         /* "oauth.password_threads": threads that verify sign-in
                                           passwords (the authorize page's POSTs), default 1 */
    int oauth_max_tokens_per_client;    /* "oauth.max_tokens_per_client": live access tokens a client may
                                           hold; issuing one more revokes its oldest. Default 100 */
    /* "audit": {...}, BLNKPROXY_AUDIT_KEY, --audit-key (issue 4). */
    int audit_writes;                   /* enum bp_audit_mode, "audit.writes", default sync */
    int audit_reads;                    /* enum bp_audit_mode, "audit.reads", default async */
    int audit_queue_size;               /* "audit.queue_size": records waiting, default 65536 */
    int64_t audit_refusal_window_ms;    /* "audit.refusal_window": refusals before authentication are
                                           aggregated per peer, error and status this long, default 60s */
    int audit_retention_days;           /* "audit.retention_days": 0 = keep forever, default 90 */
    int64_t audit_checkpoint_interval_ms; /* "audit.checkpoint_interval": heads checkpointed this often
                                           (issue 13); 0 = never, default 1h */
    char *audit_signing_key;            /* "audit.signing_key": Ed25519 PEM private key signing
                                           checkpoints; NULL = unsigned */
    char *audit_spool;                  /* "audit.spool": file holding records while the store
                                           fails; NULL = "<db path>.audit-spool" */
    bool reuse_port;                    /* "reuse_port": start even when the listen address is
                                           served already (hand-over to this process), default false */
    char *node_name;                    /* "node_name": this server's name in logs, metrics, audit
                                           records and `db status`; NULL = "<hostname>:<port>" */
    /* "health": {...} (issue 14): when a Core instance counts as down, and its probe. */
    int health_failures;                /* "health.failures": consecutive connect errors, timeouts
                                           or 5xx that make an instance down, default 5 */
    int64_t health_cooldown_ms;         /* "health.cooldown": down time before one trial, default 5s */
    int64_t health_probe_interval_ms;   /* "health.probe_interval": GET <url>/health on every enabled
                                           instance this often; 0 = no probe, default 0 */
    char *health_probe_instances;       /* "health.probe_instances": "ID=DURATION,…", each instance's
                                           own probe interval (0: never), checked at load; NULL = none */
    /* "rate_limit": {...} (issue 12). */
    struct bp_rate rate_limit_default;  /* "rate_limit.default": a credential's rate without its own;
                                           count 0 = none (the default) */
    int rate_limit_default_burst;       /* "rate_limit.default_burst": 0 = the rate's count */
    struct bp_rate rate_limit_auth_failures; /* "rate_limit.auth_failures": per peer, default 120/m */
    int rate_limit_auth_failure_burst;
    /* "idempotency": {...} (issue 12, DESIGN §4b). */
    int64_t idempotency_ttl_ms;         /* "idempotency.ttl": answers kept this long; 0 = off; 24h */
    int64_t idempotency_lease_ms;       /* "idempotency.lease": an unknown outcome's wait; 60s */
    size_t idempotency_max_answer_bytes; /* "idempotency.max_answer_bytes": larger not kept; 1 MiB */  /* "rate_limit.auth_failure_burst", default 30 */
    char *trusted_proxies;              /* "trusted_proxies": "CIDR,…" (lib/ipnet.h), checked at load;
                                           NULL = trust no peer's forwarding headers */
    /* "routes" (config file only, DESIGN §3): built-in rows to drop ("METHOD /pattern") and rows
     * to add. The router checks them when the table is built. */
    char **routes_remove;
    size_t n_routes_remove;
    struct bp_config_route *routes_add;
    size_t n_routes_add;
    /* Not a setting: the config file that was read ("blnkproxy.json", the --config or
     * BLNKPROXY_CONFIG path), NULL when none was. */
    char *file;
};

/* One setting whose value differs between the running configuration and a reloaded one. */
struct bp_config_change {
    const char *key; /* its JSON key ("max_body_bytes", "audit.reads"), or "routes"; static */
    bool applied;    /* false: the setting takes effect only at the next start */
};

/* Room for every setting and "routes". */
#define BP_CONFIG_MAX_CHANGES 64

/* Builds the configuration for `serve`. argv holds only the serve flags (after "serve", without
 * the --check, --json and --help that serve handles itself).
 * Flags: --config FILE, --db DSN, --listen HOST:PORT, --workers N, --upstream-timeout SECONDS,
 * --upstream-connect-timeout SECONDS, --log-level LEVEL, and --NAME VALUE for every JSON key
 * (underscores as dashes); a boolean's flag alone means true (--reuse-port). Environment:
 * BLNKPROXY_<KEY uppercased>. A config file named by --config or BLNKPROXY_CONFIG must exist;
 * ./blnkproxy.json is read when present. Calling it again with the same argv re-reads the file
 * with the same precedence (a reload).
 * On error writes a message naming the source ("blnkproxy.json: workers: must be 1..256",
 * "BLNKPROXY_WORKERS: ...", "--listen: ...", "unknown option --wrokers (did you mean
 * --workers?)") into err, leaves out untouched and returns BP_ERR_INVALID. */
bp_err bp_config_load(int argc, char **argv, struct bp_config *out, char *err, size_t err_len);
void bp_config_cleanup(struct bp_config *c);

/* Prepares next, freshly loaded while running serves, to replace it (a reload): settings that
 * apply live keep next's values; every other one (listen, workers, db, oauth.*, ...) gets
 * running's value back, so that next describes what will actually run. Each setting whose value
 * differed is written to out (room for BP_CONFIG_MAX_CHANGES), in the settings table's order
 * and "routes" (live) last; returns how many. Only names are reported, never values. */
size_t bp_config_reload_merge(const struct bp_config *running, struct bp_config *next,
                              struct bp_config_change *out);

/* One setting as documentation shows it: `serve --help`, the man pages and the shell completions
 * are generated from these, so they cannot drift from what bp_config_load accepts. Strings are
 * static. */
struct bp_config_setting_doc {
    const char *key;        /* JSON key: "max_body_bytes", "audit.reads" ("section.name") */
    const char *env;        /* BLNKPROXY_MAX_BODY_BYTES */
    const char *flag;       /* --max-body-bytes */
    const char *type;       /* "integer", "size", "duration", "string", "HOST:PORT", "log level",
                             * "audit mode", "boolean" */
    const char *value_name; /* "N", "SIZE", "DURATION", "DSN", ...; NULL for a boolean, whose flag
                             * alone means true */
    const char *values;     /* the words an enumerated type accepts ("debug info warn error"),
                             * NULL for the others */
    const char *def;        /* the default as a user writes it; NULL when computed at start */
    const char *def_note;   /* what a NULL default means ("the number of online CPUs"), or NULL */
    const char *meaning;    /* one line */
    bool live;              /* a reload (SIGHUP) applies it; else it waits for the next start */
    char accepts[256];      /* what a value must be, as errors say it ("must be an integer 1..256") */
};

/* How many settings there are; bp_config_setting_doc(i, out) describes the i-th (i < count), in
 * the table's order. */
size_t bp_config_setting_count(void);
void bp_config_setting_doc(size_t i, struct bp_config_setting_doc *out);

/* The config file: --config FILE, else the file this variable names, else ./blnkproxy.json when
 * present (bp_config_load). */
#define BP_CONFIG_FILE_ENV "BLNKPROXY_CONFIG"
#define BP_CONFIG_FILE_DEFAULT "blnkproxy.json"

/* health.probe_instances (pairs, as checked at load; NULL = none): the interval of instance_id when
 * it has an entry, else fallback_ms (health.probe_interval). 0: not probed. */
int64_t bp_config_probe_interval_ms(const char *pairs, int64_t fallback_ms, const char *instance_id);
/* The shortest non-zero interval among fallback_ms and the pairs: how often a prober must look;
 * 0 when nothing is probed. */
int64_t bp_config_probe_tick_ms(const char *pairs, int64_t fallback_ms);

#endif
