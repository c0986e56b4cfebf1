#ifndef BP_AUDIT_AUDIT_T_H
#define BP_AUDIT_AUDIT_T_H

/* The audit record of one proxied request, as its loop thread describes it: numbers and views
 * of text the request already holds (its head, its credential and route rows, its arena), so
 * that describing it costs no allocation and no formatting. bp_audit_submit_req copies the
 * views before it returns. Types only (STYLE §2). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Text the record does not own; p NULL means the field is absent (stored as NULL). */
struct bp_audit_text {
    const char *p;
    size_t len;
};

enum bp_audit_actor {
    BP_AUDIT_ACTOR_ANONYMOUS = 0,
    BP_AUDIT_ACTOR_API_KEY,
    BP_AUDIT_ACTOR_OAUTH_CLIENT,
};

struct bp_audit_req_rec {
    int64_t time_us;               /* wall clock */
    int64_t latency_us;
    int core_status;               /* 0 when the request did not reach Core */
    int status;                    /* the status the proxy answered (499: the client left) */
    enum bp_audit_actor actor;
    bool refused;                  /* action is stored as BP_AUDIT_REFUSED_PREFIX + action */
    bool replayed;                 /* an Idempotency-Key replay: Core saw nothing */
    struct bp_audit_text request_id;
    struct bp_audit_text actor_id;
    struct bp_audit_text actor_name;
    struct bp_audit_text instance_id;
    struct bp_audit_text method;
    struct bp_audit_text route;
    struct bp_audit_text path;
    struct bp_audit_text action;
    struct bp_audit_text category;
    struct bp_audit_text client_addr;
    struct bp_audit_text resource_id;
    struct bp_audit_text error;
};

#endif
