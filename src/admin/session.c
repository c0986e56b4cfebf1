/* Who is calling the admin API, and the console's sessions.
 *
 * Two credentials name an operator: an admin token (Authorization: Bearer blnk_ad_…, made with
 * `blnkproxy operator token-create`) and a console session (the blnkproxy_admin cookie, made by
 * signing in here). Both are 32 random bytes of which the store keeps only the SHA-256, in
 * admin_tokens. A session's writes also carry X-CSRF-Token: derived from the session id, so only
 * a page that could read the sign-in answer (same origin) knows it; the cookie is HttpOnly and
 * SameSite=Strict besides. A token needs no CSRF token: a browser never sends it by itself.
 *
 * Sign-in is the authorize page's (bp_oauth_signin): the same throttle per name and per peer,
 * the same constant-time answer for unknown names, on the low-priority password threads. */
#include <stdio.h>
#include <string.h>

#include "admin/admin-int.h"
#include "audit/audit.h"
#include "auth/auth.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/rand.h"
#include "lib/secret.h"

static const char CSRF_LABEL[] = "blnkproxy admin csrf:";

/* The session's CSRF token: hex SHA-256 of a label and the session id. */
static void
csrf_for(const char *session_id, char out[65])
{
    char text[sizeof(CSRF_LABEL) + BP_ADMIN_SESSION_HEX];
    unsigned char d[BP_DIGEST_LEN];
    int n = snprintf(text, sizeof(text), "%s%s", CSRF_LABEL, session_id);

    bp_digest(text, (size_t)n, d);
    bp_hex_encode(d, sizeof(d), out);
    bp_wipe(text, sizeof(text));
}

/* What the role may do here: an approver, like an unknown role, nothing. */
static enum bp_admin_role
role_of(const char *role)
{
    switch (bp_oauth_role_parse(role)) {
    case BP_OAUTH_ROLE_ADMIN:
        return ROLE_ADMIN;
    case BP_OAUTH_ROLE_AUDITOR:
        return ROLE_AUDITOR;
    default:
        return ROLE_NONE;
    }
}

static void
unauthenticated(struct bp_admin_call *c, const char *message)
{
    bp_admin__error(c, 401, "AUTH_INVALID_BEARER_TOKEN", message);
    bp_oauth_add_header(c->out, "WWW-Authenticate", "Bearer realm=\"blnkproxy-admin\"");
}

static json_t *
operator_json(const struct bp_operator_rec *op)
{
    return json_pack("{s:s, s:s, s:s}", "id", op->id, "name", op->name, "role", op->role);
}

static bp_err finish_commit(struct bp_admin_call *c, bp_err change);

void
bp_admin__actor(const struct bp_admin_call *c, struct bp_audit_admin_actor *out)
{
    *out = (struct bp_audit_admin_actor){
        .type = "operator",
        .id = c->op.id,
        .name = c->op.name,
        .node = c->a->node,
        .client_addr = c->req->peer,
    };
}

bp_err
bp_admin__record(struct bp_admin_call *c, const char *action, const char *id, const char *operation_id)
{
    struct bp_audit_admin_actor actor;

    bp_admin__actor(c, &actor);
    return bp_audit_admin_by(c->s, &actor, action, id, NULL, operation_id);
}

bp_err
bp_admin__finish(struct bp_admin_call *c, bp_err change, const char *action, const char *id,
                 const char *instance_id)
{
    struct bp_audit_admin_actor actor;

    bp_admin__actor(c, &actor);
    if (change == BP_OK) {
        change = bp_audit_admin_by(c->s, &actor, action, id, instance_id, NULL);
    }
    return finish_commit(c, change);
}

bp_err
bp_admin__finish_op(struct bp_admin_call *c, bp_err change, const char *action, const char *id,
                    const char *operation_id)
{
    if (change == BP_OK) {
        change = bp_admin__record(c, action, id, operation_id);
    }
    return finish_commit(c, change);
}

static bp_err
finish_commit(struct bp_admin_call *c, bp_err change)
{
    if (change == BP_OK) {
        change = bp_store_commit(c->s);
    }
    if (change != BP_OK) {
        bp_store_rollback(c->s);
        return change;
    }
    /* Credentials and instances changed: every node applies it before the answer leaves. */
    c->out->tables_changed = true;
    return BP_OK;
}

static bool
find_credential(struct bp_admin_call *c, const unsigned char digest[BP_DIGEST_LEN], const char *kind)
{
    struct bp_admin_token_rec tok = {0};
    bp_err rc = bp_store_admin_token_find(c->s, digest, c->now, &tok, &c->op);
    bool ok = rc == BP_OK && strcmp(tok.kind, kind) == 0 && !c->op.disabled;

    bp_admin_token_rec_cleanup(&tok);
    if (rc != BP_OK && rc != BP_ERR_NOT_FOUND) {
        bp_admin__store_error(c, rc, "credential");
        return false;
    }
    if (!ok) {
        bp_operator_rec_cleanup(&c->op);
        unauthenticated(c, strcmp(kind, "session") == 0 ? "your session has ended: sign in again"
                                                        : "the admin token is invalid, expired or revoked");
        return false;
    }
    return true;
}

static const char bearer[] = "Bearer ";
#define BEARER_LEN (sizeof(bearer) - 1)

static bool
admin_token_well_formed(const struct bp_oauth_request *r)
{
    return r->n_authorization == 1 && r->authorization_len > BEARER_LEN &&
           strncasecmp(r->authorization, bearer, BEARER_LEN) == 0 &&
           bp_auth_token_is_well_formed(BP_ADMIN_TOKEN_PREFIX, r->authorization + BEARER_LEN,
                                        r->authorization_len - BEARER_LEN);
}

bool
bp_admin__refuse_without_credential(struct bp_admin_call *c)
{
    const struct bp_oauth_request *r = c->req;
    char sid[BP_ADMIN_SESSION_HEX + 1];
    bool has_session;

    if (r->authorization != NULL) {
        if (!admin_token_well_formed(r)) {
            unauthenticated(c, "send one admin token: Authorization: Bearer blnk_ad_…");
            return true;
        }
        return false;
    }
    has_session = bp_oauth_cookie_hex64(r->cookie, r->cookie_len, BP_ADMIN_SESSION_COOKIE, sid);
    bp_wipe(sid, sizeof(sid));
    if (!has_session) {
        unauthenticated(c, "sign in, or send an admin token: Authorization: Bearer blnk_ad_…");
        return true;
    }
    return false;
}

bool
bp_admin__authenticate(struct bp_admin_call *c, bool write)
{
    const struct bp_oauth_request *r = c->req;
    unsigned char digest[BP_DIGEST_LEN];
    char sid[BP_ADMIN_SESSION_HEX + 1];

    if (bp_admin__refuse_without_credential(c)) {
        return false;
    }
    if (r->authorization != NULL) {
        const char *tok = r->authorization + BEARER_LEN;
        size_t tlen = r->authorization_len - BEARER_LEN;
        bp_digest(tok, tlen, digest);
        if (!find_credential(c, digest, "token")) {
            return false;
        }
    } else {
        (void)bp_oauth_cookie_hex64(r->cookie, r->cookie_len, BP_ADMIN_SESSION_COOKIE, sid); /* checked above */
        bp_digest(sid, BP_ADMIN_SESSION_HEX, c->session_digest);
        if (!find_credential(c, c->session_digest, "session")) {
            bp_wipe(sid, sizeof(sid));
            return false;
        }
        c->via_session = true;
        if (write) {
            char want[65];
            bool ok;
            csrf_for(sid, want);
            ok = r->csrf_token != NULL && r->csrf_token_len == 64 && bp_ct_equal(r->csrf_token, want, 64);
            bp_wipe(want, sizeof(want));
            if (!ok) {
                bp_wipe(sid, sizeof(sid));
                bp_admin__error(c, 403, "AUTH_CSRF_FAILED",
                                "a change from the console needs the session's X-CSRF-Token header");
                return false;
            }
        }
        bp_wipe(sid, sizeof(sid));
    }
    c->role = role_of(c->op.role);
    if (c->role == ROLE_NONE) {
        bp_admin__error(c, 403, "AUTH_INSUFFICIENT_PERMISSIONS",
                        "this operator may only approve apps on the authorize page (role approver)");
        return false;
    }
    return true;
}

/* ---- POST, GET, DELETE /admin/api/session ---- */

static void
set_cookie(struct bp_admin_call *c, const char *value, int max_age)
{
    char buf[256];

    snprintf(buf, sizeof(buf), "%s=%s; Path=/admin; Max-Age=%d; HttpOnly; SameSite=Strict%s",
             BP_ADMIN_SESSION_COOKIE, value, max_age, c->req->tls ? "; Secure" : "");
    bp_oauth_add_header(c->out, "Set-Cookie", buf);
    bp_wipe(buf, sizeof(buf));
}

static bp_err
new_session(struct bp_admin_call *c, char sid[BP_ADMIN_SESSION_HEX + 1])
{
    char ulid[BP_ULID_LEN + 1];
    char id[8 + BP_ULID_LEN];
    struct bp_admin_token_rec rec = {0};
    bp_err rc = bp_rand_hex(sid, 32);

    if (rc == BP_OK) {
        rc = bp_ulid(ulid);
    }
    if (rc != BP_OK) {
        return rc;
    }
    snprintf(id, sizeof(id), "admtok_%s", ulid);
    rec.id = id;
    rec.operator_id = c->op.id;
    rec.kind = "session";
    bp_digest(sid, BP_ADMIN_SESSION_HEX, rec.digest);
    rec.prefix = "session";
    rec.created_at = c->now;
    rec.expires_at = c->now + BP_ADMIN_SESSION_TTL_S;
    /* Sessions that ended by time go first, then all but the operator's newest few: the table
     * holds at most BP_ADMIN_SESSIONS_PER_OPERATOR per operator. */
    rc = bp_store_admin_sessions_delete(c->s, NULL, c->now);
    if (rc == BP_OK) {
        rc = bp_store_admin_token_insert(c->s, &rec);
    }
    /* An operator signing in again and again keeps their newest sessions only. */
    if (rc == BP_OK) {
        rc = bp_store_admin_sessions_trim(c->s, c->op.id, BP_ADMIN_SESSIONS_PER_OPERATOR);
    }
    return rc;
}

static void
sign_in(struct bp_admin_call *c)
{
    const char *name;
    const char *password;
    char sid[BP_ADMIN_SESSION_HEX + 1];
    char csrf[65];
    json_t *j;
    bool bad = false;
    bp_err rc;

    if (!bp_admin__parse_body(c)) {
        return;
    }
    name = bp_admin__body_str(c, "name", &bad);
    password = bp_admin__body_str(c, "password", &bad);
    if (bad || name == NULL || password == NULL || name[0] == '\0' || password[0] == '\0') {
        bp_admin__error(c, 400, "GEN_MISSING_PARAMETER", "send {\"name\": …, \"password\": …}");
        return;
    }
    rc = bp_oauth_signin(c->o, name, password, c->req->peer, &c->op);
    if (rc == BP_ERR_LIMIT) {
        bp_admin__error(c, 429, "GEN_RATE_LIMITED",
                        "too many sign-in attempts: wait a few minutes and try again");
        bp_oauth_add_header(c->out, "Retry-After", "900");
        return;
    }
    if (rc != BP_OK && rc != BP_ERR_AUTH_INVALID_KEY) {
        bp_admin__store_error(c, rc, "operator");
        return;
    }
    if (rc != BP_OK) {
        bp_admin__error(c, 401, "AUTH_INVALID_CREDENTIALS", "invalid name or password");
        return;
    }
    if (role_of(c->op.role) == ROLE_NONE) {
        bp_admin__error(c, 403, "AUTH_INSUFFICIENT_PERMISSIONS",
                        "this operator may only approve apps on the authorize page (role approver)");
        return;
    }
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = new_session(c, sid);
        rc = bp_admin__finish(c, rc, "Operator signed in", c->op.id, NULL);
        c->out->tables_changed = false; /* nothing the request path reads changed */
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "session");
        return;
    }
    BP_INFO("admin: operator signed in", BP_LSTR("operator_id", c->op.id), BP_LSTR("peer", c->req->peer));
    csrf_for(sid, csrf);
    j = json_pack("{s:o, s:s, s:o}", "operator", operator_json(&c->op), "csrf_token", csrf, "expires_at",
                  bp_admin__jtime(c->now + BP_ADMIN_SESSION_TTL_S));
    bp_admin__json(c, 200, j);
    set_cookie(c, sid, BP_ADMIN_SESSION_TTL_S);
    bp_wipe(sid, sizeof(sid));
    bp_wipe(csrf, sizeof(csrf));
}

static void
who_am_i(struct bp_admin_call *c)
{
    char sid[BP_ADMIN_SESSION_HEX + 1];
    char csrf[65];
    json_t *j;

    if (!bp_admin__authenticate(c, false)) {
        return;
    }
    j = json_pack("{s:o, s:s}", "operator", operator_json(&c->op), "via",
                  c->via_session ? "session" : "token");
    /* The console reloaded: it gets its CSRF token again from the cookie's session. */
    if (c->via_session &&
        bp_oauth_cookie_hex64(c->req->cookie, c->req->cookie_len, BP_ADMIN_SESSION_COOKIE, sid)) {
        csrf_for(sid, csrf);
        json_object_set_new(j, "csrf_token", json_string(csrf));
        bp_wipe(sid, sizeof(sid));
        bp_wipe(csrf, sizeof(csrf));
    }
    bp_admin__json(c, 200, j);
}

static void
sign_out(struct bp_admin_call *c)
{
    bp_err rc;

    if (!bp_admin__authenticate(c, true)) {
        return;
    }
    if (!c->via_session) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "an admin token is revoked with the CLI, not signed out");
        return;
    }
    rc = bp_store_admin_session_end(c->s, c->session_digest);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "session");
        return;
    }
    bp_admin__no_content(c);
    set_cookie(c, "", 0);
}

void
bp_admin__session(struct bp_admin_call *c)
{
    if (bp_admin__method(c, "POST")) {
        sign_in(c);
    } else if (bp_admin__method(c, "GET")) {
        who_am_i(c);
    } else if (bp_admin__method(c, "DELETE")) {
        sign_out(c);
    } else {
        bp_admin__not_allowed(c, "GET, POST, DELETE");
    }
}
