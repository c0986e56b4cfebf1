#ifndef BP_METRICS_METRICS_H
#define BP_METRICS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* Process metrics for GET /metrics in the Prometheus text exposition format (version 0.0.4), or
 * in OpenMetrics 1.0.0 when the scraper's Accept header asks for it (Prometheus does).
 *
 * Hot-path calls are cheap and lock-free for the calling thread: every loop thread binds its
 * own shard (bp_metrics_bind_thread) and only that thread writes it; rendering sums the shards.
 * Labels: route group (the route's category), method, status class, instance id. Credential
 * ids are never labels (unbounded cardinality; and ids of credentials are not for scrapers). */

struct bp_buf;

enum bp_metrics_auth_reason {
    BP_METRICS_AUTH_MISSING = 0,
    BP_METRICS_AUTH_UNKNOWN,   /* malformed or unknown credential */
    BP_METRICS_AUTH_EXPIRED,
    BP_METRICS_AUTH_REVOKED,
    BP_METRICS_AUTH_SCOPE,
    BP_METRICS_AUTH_INSTANCE,
    BP_METRICS_AUTH_IP,        /* used from outside its allow-list */
    BP_METRICS_AUTH__COUNT
};

/* Requests refused 429 (issue 12): a credential over its rate, or a peer over its failed
 * authentications. */
enum bp_metrics_limited {
    BP_METRICS_LIMITED_CREDENTIAL = 0,
    BP_METRICS_LIMITED_AUTH_FAILURES,
    BP_METRICS_LIMITED__COUNT
};

/* Requests with an Idempotency-Key (issue 12, DESIGN §4b), by what became of them: the first
 * one forwarded and its answer stored; a repeat answered from the store; a repeat refused 422
 * (another request under the key), 409 (the first still in flight), 409 because the first's
 * outcome is unknown, or 409 because its answer was too large to keep; an unknown outcome found (a timeout or reset after sending); a transaction
 * re-forwarded with its reference after the lease; expired entries purged. */
enum bp_metrics_idem {
    BP_METRICS_IDEM_STORED = 0,
    BP_METRICS_IDEM_REPLAYED,
    BP_METRICS_IDEM_MISMATCH,
    BP_METRICS_IDEM_IN_FLIGHT,
    BP_METRICS_IDEM_OUTCOME_UNKNOWN,
    BP_METRICS_IDEM_NOT_KEPT,
    BP_METRICS_IDEM_UNKNOWN_FOUND,
    BP_METRICS_IDEM_RETRIED,
    BP_METRICS_IDEM_PURGED,
    BP_METRICS_IDEM__COUNT
};

enum bp_metrics_upstream_error {
    BP_METRICS_UPSTREAM_CONNECT = 0, /* refused, unreachable, DNS */
    BP_METRICS_UPSTREAM_TIMEOUT,
    BP_METRICS_UPSTREAM_RESET,       /* connection reset or closed before a full answer */
    BP_METRICS_UPSTREAM_TLS,
    BP_METRICS_UPSTREAM_OTHER,       /* e.g. answer over max_response_bytes */
    BP_METRICS_UPSTREAM__COUNT
};

enum bp_metrics_audit_event {
    BP_METRICS_AUDIT_COMMITTED = 0, /* records committed to the store */
    BP_METRICS_AUDIT_SPOOLED,       /* records written to the spool because the store failed */
    BP_METRICS_AUDIT_STORE_ERROR,   /* failed commit attempts */
    BP_METRICS_AUDIT_SHED,          /* records refused because the queue was full */
    BP_METRICS_AUDIT__COUNT
};

/* One finished /proxy/ request. */
struct bp_metrics_request {
    const char *group;         /* route category ("transactions"), NULL when no route matched */
    const char *method;        /* NUL-terminated; unknown methods are counted as "OTHER" */
    int status;                /* the status sent to the client */
    const char *instance;      /* instance id, NULL when none was resolved */
    int64_t total_us;
    int64_t upstream_us;       /* < 0 when the request was not sent to Core */
};

/* Sets up n_shards shards (one per loop thread) before any thread binds. */
bp_err bp_metrics_init(int n_shards);
/* Frees everything; no metrics call may run after it. */
void bp_metrics_shutdown(void);
/* Binds the calling thread to shard i (a loop thread, at start). Unbound threads write a shared
 * shard under a lock. */
void bp_metrics_bind_thread(int shard);

void bp_metrics_request(const struct bp_metrics_request *m);
void bp_metrics_auth_failure(enum bp_metrics_auth_reason reason);
void bp_metrics_upstream_error(enum bp_metrics_upstream_error kind);
void bp_metrics_rate_limited(enum bp_metrics_limited kind);
void bp_metrics_idempotency(enum bp_metrics_idem what, uint64_t n);
/* How many live nodes share each rate limit (set by the watcher). */
void bp_metrics_rate_limit_nodes(unsigned n);
/* Gauges moved by deltas: open client connections; open connections to Core. */
void bp_metrics_client_conns_add(int delta);
/* A client connection closed at accept: its peer had max_connections_per_peer open. */
void bp_metrics_client_conn_refused(void);
/* A TLS handshake on the listener ended: completed (ok) or not. */
void bp_metrics_tls_handshake(bool ok);
void bp_metrics_upstream_conns_add(int delta);
/* The credential table just published: its size, and one more reload. */
void bp_metrics_tables_published(size_t credentials, size_t instances);
/* Audit: a committed batch (its size and commit latency), and counted events. */
void bp_metrics_audit_commit(size_t records, int64_t commit_us);
void bp_metrics_audit_event(enum bp_metrics_audit_event ev, size_t n);
/* The audit queue depth is read when rendering, through this callback (NULL: not reported). */
void bp_metrics_set_audit_depth_source(size_t (*depth)(const void *arg), const void *arg);

/* Issue 9. This server's node name, shown as blnkproxy_node_info{node="…"} 1 (the only series
 * with a node label: a scraper joins on it). Set once at start; copied. */
void bp_metrics_set_node(const char *node);
/* The watcher's latest store check: blnkproxy_store_up is 1 or 0, and
 * blnkproxy_store_outages_total counts the changes from up to down. */
void bp_metrics_store_up(bool up);

enum bp_metrics_format {
    BP_METRICS_TEXT = 0,    /* text/plain; version=0.0.4 */
    BP_METRICS_OPENMETRICS, /* application/openmetrics-text; version=1.0.0 */
};

/* The format an Accept field value (len bytes; NULL when the request has none) asks for:
 * OpenMetrics when application/openmetrics-text (version 1.0.0, 0.0.1 or none) is acceptable
 * (q > 0) and preferred at least as much as the text format (text/plain or a wildcard); the
 * text format otherwise. Unparsable ranges are ignored. */
enum bp_metrics_format bp_metrics_negotiate(const char *accept, size_t len);
/* The Content-Type (with version and charset) of a format. Static text. */
const char *bp_metrics_content_type(enum bp_metrics_format format);

/* Appends the whole exposition in format to out. Any thread. */
void bp_metrics_render_format(enum bp_metrics_format format, struct bp_buf *out);
/* The same in the text format. */
void bp_metrics_render(struct bp_buf *out);
/* GET /metrics: negotiates by the Accept value (as bp_metrics_negotiate), appends the exposition
 * to out and returns its Content-Type. */
const char *bp_metrics_render_for(const char *accept, size_t accept_len, struct bp_buf *out);

/* ---- traffic per instance, per minute, over the last hour (traffic.c) ---- */

#define BP_METRICS_TRAFFIC_MINUTES 60
#define BP_METRICS_TRAFFIC_INSTANCES 32

struct bp_metrics_traffic_count {
    char instance[48];          /* an instance id (longer ones are not kept) */
    uint64_t requests;
    uint64_t client_errors;     /* 4xx */
    uint64_t server_errors;     /* 5xx */
};

struct bp_metrics_traffic {
    int64_t first_minute;       /* unix minute of requests[0]; the last one is the minute in progress */
    size_t n_instances;
    struct {
        char id[48];
        uint32_t requests[BP_METRICS_TRAFFIC_MINUTES];
        uint32_t errors[BP_METRICS_TRAFFIC_MINUTES]; /* 4xx and 5xx answers */
    } instances[BP_METRICS_TRAFFIC_INSTANCES];
};

/* This node's request counters per instance since it started (at most cap). */
size_t bp_metrics_traffic_totals(struct bp_metrics_traffic_count *out, size_t cap);
/* Takes this minute's snapshot of the counters if it has none yet (the watcher calls it every
 * few seconds). */
void bp_metrics_traffic_tick(int64_t now_s);
/* Requests and errors per instance per minute over the last BP_METRICS_TRAFFIC_MINUTES minutes
 * (a minute without snapshots counts 0). out is large: allocate it. */
void bp_metrics_traffic_read(int64_t now_s, struct bp_metrics_traffic *out);
/* Forgets the snapshots (bp_metrics_shutdown). */
void bp_metrics_traffic_reset(void);

#endif
