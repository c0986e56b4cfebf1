#ifndef BP_ADMIN_ADMIN_INT_H
#define BP_ADMIN_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/err.h"
#include "oauth/oauth.h"
#include "store/store.h"

#define BP_ADMIN_PREFIX "/admin/api"
#define BP_ADMIN_SESSION_COOKIE "blnkproxy_admin"
#define BP_ADMIN_SESSION_HEX 64
/* A console session lasts this long from sign-in (no sliding renewal: sign in again). */
#define BP_ADMIN_SESSION_TTL_S (8 * 3600)
#define BP_ADMIN_MAX_SEGS 5
/* Console sessions an operator may hold at once (browsers, devices); signing in again ends the
 * oldest. */
#define BP_ADMIN_SESSIONS_PER_OPERATOR 10

struct bp_trail_key;

struct bp_admin {
    struct bp_oauth_service service;
    const char *node;
    struct bp_trail_key *signing_key; /* NULL: checkpoints are unsigned */
};

enum bp_admin_role { ROLE_NONE = 0, ROLE_AUDITOR, ROLE_ADMIN };

/* One request, on an OAuth thread. */
struct bp_admin_call {
    struct bp_admin *a;
    struct bp_oauth *o;
    struct bp_store *s;
    const struct bp_oauth_request *req;
    struct bp_oauth_response *out;
    const char *segs[BP_ADMIN_MAX_SEGS]; /* path segments after /admin/api/, NUL-terminated */
    size_t nseg;
    char path_copy[256];
    struct bp_operator_rec op; /* who: filled by authentication */
    enum bp_admin_role role;
    bool via_session;
    unsigned char session_digest[32];
    json_t *body; /* a write's JSON object, NULL when none */
    const char *bad_field; /* the first body member bp_admin__body_str found not a string */
    int64_t now;  /* wall seconds */
};

/* ---- reply.c ---- */
/* Answers with a JSON value (stolen) and the admin API's headers. */
void bp_admin__json(struct bp_admin_call *c, int status, json_t *j);
/* Answers in Core's error shape: {"error": msg, "error_detail": {"code", "message"}}. */
void bp_admin__error(struct bp_admin_call *c, int status, const char *code, const char *message);
/* Answers with body[0..len) (allocated with bp_malloc; taken) as content_type (a static string)
 * and the admin API's headers: for what is not JSON (an export). */
void bp_admin__text(struct bp_admin_call *c, int status, const char *content_type, char *body, size_t len);
/* 204 with the admin API's headers. */
void bp_admin__no_content(struct bp_admin_call *c);
/* The store failed: 404 for NOT_FOUND (what names the object), 503 when down, else 500. */
void bp_admin__store_error(struct bp_admin_call *c, bp_err rc, const char *what);
/* A JSON string, or null for NULL. */
json_t *bp_admin__jstr(const char *s);
/* RFC 3339 of unix seconds, or null for 0. */
json_t *bp_admin__jtime(int64_t t);
/* A comma-separated list as an array (null for NULL). */
json_t *bp_admin__jcsv(const char *csv);
/* The body's string member name: NULL when absent; *bad set when present but not a string. */
const char *bp_admin__body_str(struct bp_admin_call *c, const char *name, bool *bad);
/* When a member read with bp_admin__body_str was not a string: answers 400 naming it (true). */
bool bp_admin__refuse_bad_field(struct bp_admin_call *c);

/* ---- session.c: who is calling ---- */
/* Sign-in, who-am-I and sign-out (POST/GET/DELETE /admin/api/session). */
void bp_admin__session(struct bp_admin_call *c);
/* Finds the caller's credential (Bearer admin token, or the session cookie with its CSRF token
 * on writes) and operator. False after answering 401/403. */
bool bp_admin__authenticate(struct bp_admin_call *c, bool write);
/* The part of authentication that needs no store: a call with no credential, or a malformed
 * one, is answered 401 (true). Safe on a loop thread. */
bool bp_admin__refuse_without_credential(struct bp_admin_call *c);
/* The operator as the actor of an audit record. */
struct bp_audit_admin_actor;
void bp_admin__actor(const struct bp_admin_call *c, struct bp_audit_admin_actor *out);
/* Commits the change with its audit record (operator as actor), or rolls back. */
bp_err bp_admin__finish(struct bp_admin_call *c, bp_err change, const char *action, const char *id,
                        const char *instance_id);
/* One more record of a change made of several (a rotation): all carry operation_id. */
bp_err bp_admin__record(struct bp_admin_call *c, const char *action, const char *id, const char *operation_id);
/* As bp_admin__finish, the last record carrying operation_id. */
bp_err bp_admin__finish_op(struct bp_admin_call *c, bp_err change, const char *action, const char *id,
                           const char *operation_id);

/* ---- resources ---- */
void bp_admin__instances(struct bp_admin_call *c);
void bp_admin__keys(struct bp_admin_call *c);
void bp_admin__clients(struct bp_admin_call *c);
void bp_admin__operators(struct bp_admin_call *c);
void bp_admin__audit(struct bp_admin_call *c);
void bp_admin__traffic(struct bp_admin_call *c);

/* Parses a write's body into c->body (a JSON object; empty: {}). False after answering 4xx. */
bool bp_admin__parse_body(struct bp_admin_call *c);
/* A record's name: 1 to 100 characters, no control characters. */
bool bp_admin__name_ok(const char *name);
/* The request's method is m. */
bool bp_admin__method(const struct bp_admin_call *c, const char *m);
/* 405 with Allow. */
void bp_admin__not_allowed(struct bp_admin_call *c, const char *allow);

#endif
