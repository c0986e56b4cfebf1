#ifndef BP_PROXY_PROXY_INT_H
#define BP_PROXY_PROXY_INT_H

/* Shared between the files of the proxy module; not an interface for anyone else.
 *
 *   proxy.c    the handler: DESIGN §2 phases on the head, body, defaults, forwarding, and Core's
 *              answer relayed (buffered up to BP_PROXY_ANSWER_BUFFER, streamed beyond)
 *   headers.c  the header rules, both directions, as one table
 *   audit.c    every audit step of a proxied request: reserve, hold, record, release
 *   probe.c    the active health probe of every enabled instance (issue 14)
 *   idempotency.c  Idempotency-Key (DESIGN §4b): the claim, the replay, the owner's outcome */

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "auth/auth-t.h"
#include "health/health.h"
#include "http/http.h"
#include "lib/buf.h"
#include "proxy/proxy.h"
#include "router/route-t.h"

struct bp_arena;
struct bp_http_head;
struct bp_upstream;
struct bp_upstream_xfer;
struct bp_config;
struct bp_proxy__probe;
struct bp_proxy__probe_due;
struct bp_proxy__idem_job;
struct bp_idem;

/* Core's answers up to this size are buffered whole and answered with a Content-Length (a
 * failure is then still a clean 502); longer ones stream. */
#define BP_PROXY_ANSWER_BUFFER (64 * 1024)

struct bp_proxy_conf {
    const struct bp_route *routes;
    size_t n_routes;
    struct bp_route *owned_routes;
    struct bp_audit *audit;        /* NULL: not audited */
};

struct bp_proxy {
    struct bp_proxy_tables tables;
    struct bp_http_handler handler;
    struct bp_http_hook audit_hook;
    atomic_bool prober_taken; /* a worker runs the health probe (probe.c) */
    struct bp_idem *idem;     /* Idempotency-Key answers; NULL: the header is not handled */
};

/* Per worker: its upstream client, and the credential tables it keeps pinned (taken anew only
 * when a publish moved the generation). */
struct bp_proxy_worker {
    const struct bp_proxy *proxy;
    struct bp_upstream *upstream;
    struct bp_tables *tables;
    unsigned tables_gen;
    struct bp_health_conf health;       /* from the config, updated on reload */
    bool prober;                        /* this worker runs the health probe */
    int64_t probe_interval_ms;          /* the tick it is set to (0: none) */
    int64_t probe_default_ms;           /* health.probe_interval */
    char *probe_instances;              /* health.probe_instances (owned copy; NULL = none) */
    struct bp_proxy__probe *probes;     /* in flight */
    struct bp_proxy__probe_due *due;    /* when each probed instance was last probed */
    size_t n_due;
};

/* Per request (http keeps it in the request's arena, zeroed). */
struct bp_proxy_req {
    struct bp_tables *tables;           /* pinned until the request ends */
    const struct bp_cred *cred;
    const struct bp_instance *instance;
    const struct bp_route *route;
    const char *core_path;              /* into the head */
    size_t core_path_len;
    char *fwd_query;                    /* the query without instance_id (arena) */
    size_t fwd_query_len;
    const char *asked_instance;         /* the well-formed instance id asked for, or implied */
    size_t asked_instance_len;
    enum bp_auth_failure auth_failure;
    /* A 429 (issue 12): which limit, and what its headers say. */
    bool limited_peer;                  /* the peer's failed authentications, not the credential's rate */
    bool outcome_rate_limited;          /* answered 429 for a limit: its record is aggregated */
    int64_t limit_retry_ms;
    int64_t limit_reset_ms;
    uint32_t limit_limit;
    const char *body;                   /* what goes to Core: the client's, or with defaults */
    size_t body_len;
    struct bp_buf rewritten;            /* the body with the defaults, when they added any */
    struct bp_upstream_xfer *xfer;      /* in flight */
    /* Core's answer: its head until the response starts, and its body until it is complete or
     * passes BP_PROXY_ANSWER_BUFFER (then it streams). */
    int up_status;
    char *up_headers;                   /* the lines relayed to the client (arena) */
    size_t up_headers_len;
    int64_t up_length;                  /* the body's length, or BP_HTTP_LENGTH_UNKNOWN / _NONE */
    int64_t up_head_us;                 /* Core's time from the request to the head */
    int64_t up_head_at_us;              /* monotonic: when the head came */
    struct bp_buf answer;               /* the body so far (arena when small and known, else heap) */
    uint64_t answer_bytes;              /* body bytes Core sent so far */
    bool streaming;                     /* the response has started: the rest goes as it comes */
    bool audit_submitted;               /* the record went before the finish (a held stream) */
    bool forwarded;                     /* handed to the upstream client: Core may have acted on it */
    bool audit_reserved;                /* holds a place in the audit queue */
    bool health_trial;                  /* the one trial of a down instance, not yet reported */
    bool health_reported;               /* the exchange's outcome went to the instance's health */
    const char *resource_id;            /* what Core's answer named (arena), for the record */
    size_t resource_id_len;
    /* Idempotency-Key (idempotency.c). */
    const char *idem_key;               /* the header's value (head); NULL: none, or not handled */
    size_t idem_key_len;
    unsigned char idem_scope[32];       /* its scope digest: the entry's key, the references' seed */
    struct bp_proxy__idem_job *idem_job; /* a store call the request waits for */
    bool idem_owner;                    /* the request owns the entry: its outcome is still to write */
    bool idem_unsent;                   /* no byte reached Core: the entry is released, not unknown */
    bool replayed;                      /* answered from the entry: Core saw nothing */
    size_t core_headers_len;            /* up_headers without the Idempotent-Replayed line */
    struct bp_http_resp idem_resp;      /* the answer that waits for its entry to be stored */
};

/* Who the request came from, as X-Forwarded-For and X-Forwarded-Proto tell Core. */
struct bp_proxy_client {
    const char *peer;  /* the connection's peer: always last in X-Forwarded-For */
    const char *chain; /* what trusted proxies vouched for, from the client on; NULL = nothing */
    size_t chain_len;
    bool https;
};

/* headers.c: the DESIGN §2 header rules for the request to Core: the client's end-to-end lines,
 * then X-Request-Id, X-Forwarded-For, X-Forwarded-Proto and, last, the instance's X-Blnk-Key.
 * The lines ("Name: value", NUL-terminated) and their array live in arena memory; *out_secret
 * and *out_secret_len cover the bytes that hold the Core secret (wipe them once the upstream
 * client copied the lines). BP_ERR_LIMIT when they do not fit. */
bp_err bp_proxy__upstream_headers(const struct bp_http_head *h, const char *request_id,
                                  const struct bp_proxy_client *client, const struct bp_instance *instance,
                                  struct bp_arena *arena,
                                  const char ***out_lines, size_t *out_n, char **out_secret,
                                  size_t *out_secret_len);
/* True when a header of Core's answer must not reach the client (hop-by-hop, DESIGN §2). */
bool bp_proxy__drop_from_response(const char *name, size_t len);

/* audit.c */
/* Takes the request's place in the audit queue before it is forwarded ("every call
 * attributable"). False when the queue is full: answer 503 instead. True without reserving
 * when the request is not audited. */
bool bp_proxy__audit_reserve(struct bp_http_req *req, struct bp_proxy_req *st);
/* A held response starts streaming: its record goes to the queue now, with what is known at
 * the head (status, Core's status, the resource id from the first bytes, the time so far), and
 * the hold is released when it is durable; the finish hook then submits nothing. */
void bp_proxy__audit_record_now(struct bp_http_req *req, struct bp_proxy_req *st, struct bp_http_hold *hold);
/* The audit hook's callbacks (registered by bp_proxy_new). */
bool bp_proxy__audit_hold(void *self, struct bp_http_req *req);
void bp_proxy__audit_finish(void *self, struct bp_http_req *req, struct bp_http_hold *hold);

/* idempotency.c */
/* The Idempotency-Key header of a write (when idempotency.ttl is not 0): BP_ERR_MALFORMED with a
 * reason when there are several or its value is not 1..255 printable ASCII; sets st->idem_key. */
bp_err bp_proxy__idem_head(struct bp_http_req *req, struct bp_proxy_req *st, const char **reason);
/* The body is in: claims the scope in the store. Its done forwards the request (the owner,
 * through bp_proxy__send_body) or answers it from the entry. False when it was answered now
 * (503: the queue is full). */
bool bp_proxy__idem_claim(struct bp_http_req *req, struct bp_proxy_req *st);
/* How much of Core's answer is buffered before it streams: an owner's answer is kept whole up
 * to idempotency.max_answer_bytes. */
size_t bp_proxy__idem_hold_bytes(struct bp_http_req *req, const struct bp_proxy_req *st);
/* The header line an owner's answer carries ("" for others). */
const char *bp_proxy__idem_replayed_false(const struct bp_proxy_req *st);
/* Core's whole answer is in: an owner stores it, and out (with st->answer) is answered when it
 * is stored. False when nothing was submitted: answer now. */
bool bp_proxy__idem_store_answer(struct bp_http_req *req, struct bp_proxy_req *st, const struct bp_http_resp *out);
/* The answer streams (too large to keep): the entry records its status only. */
void bp_proxy__idem_streamed(struct bp_http_req *req, struct bp_proxy_req *st);
/* Before the transfer is given up: notes whether Core can have seen any byte of it. */
void bp_proxy__idem_note_sent(struct bp_proxy_req *st);
/* An owner refused after its claim (Core unreachable or silent, the instance down, …): its entry
 * is settled (released, or of unknown outcome) first, and the refusal rc with reason (which must
 * live as long as the request) answered once it is, so that a retry right after the answer finds
 * it settled. False when the request owns no entry or nothing was submitted: refuse now. */
bool bp_proxy__idem_settle_then_refuse(struct bp_http_req *req, struct bp_proxy_req *st, bp_err rc,
                                       const char *reason);
/* The request ends: a store call in progress is orphaned, and an owner without a stored answer
 * leaves its entry released (Core never saw it) or of unknown outcome. */
void bp_proxy__idem_end(struct bp_http_req *req, struct bp_proxy_req *st);

/* proxy.c: a refusal in Core's error shape, counted and closing as the head's refusals do. */
void bp_proxy__refuse(struct bp_http_req *req, struct bp_proxy_req *st, bp_err rc, const char *reason);
/* proxy.c: the transaction defaults (derived references for an Idempotency-Key owner), then the
 * request to Core. */
void bp_proxy__send_body(struct bp_http_req *req, struct bp_proxy_req *st);
/* proxy.c: the id of what a creation made, from Core's answer (or its first bytes). */
void bp_proxy__note_resource_id(struct bp_http_req *req, struct bp_proxy_req *st, const char *body, size_t len,
                                bool prefix);

/* proxy.c: the worker's pinned snapshot, taken anew when a publish moved the generation (NULL
 * while none was ever published). */
struct bp_tables *bp_proxy__worker_tables(struct bp_proxy_worker *pw);

/* probe.c */
/* Takes the health settings of cfg; on the probing worker, (re)starts the probe at
 * health.probe_interval (0 stops it). Call at worker start and on every reload. */
void bp_proxy__probe_conf(struct bp_proxy_worker *pw, const struct bp_config *cfg);
/* Stops the probe and cancels the probes in flight (before the upstream client is freed). */
void bp_proxy__probe_stop(struct bp_proxy_worker *pw);

#endif
