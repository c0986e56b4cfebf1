/* GET/POST /oauth/authorize (RFC 6749 §4.1.1-§4.1.2, RFC 7636 §4.3; DESIGN §6).
 *
 * Flow: GET validates the request and shows the sign-in form (or, for a signed-in session, the
 * consent page); POST action=login checks the operator's password and shows the consent page;
 * POST action=approve|deny redirects back to the client with a code or access_denied. Each POST
 * carries the original request in hidden fields and is validated again from scratch, so nothing
 * about the request is trusted from an earlier page.
 *
 * Safety rules: until the client and its exact redirect_uri are known, errors are shown as a
 * page, never redirected (RFC 6749 §4.1.2.1: no open redirector). Every POST needs the session
 * cookie and the CSRF token derived from it. Sign-in failures are throttled per name and per peer,
 * and an unknown name is verified against a dummy hash so timing does not reveal which names
 * exist. */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

#define STATE_MAX 1024
#define REDIRECT_MAX (16 * 1024)

struct authz {
    struct bp_oauth_form form;
    struct bp_oauth_authz_params p;
    struct bp_client_rec client;
    unsigned scope_bits;
    char scope_text[BP_OAUTH_SCOPE_TEXT_MAX]; /* spaced, for the consent page */
    char origin[512];                         /* the redirect URI's origin, "" when unusable */
};

static const char *
origin_or_null(const struct authz *a)
{
    return a->origin[0] != '\0' ? a->origin : NULL;
}

/* scheme://authority of an http(s) URI, when it is plain enough to put in a CSP header. */
static void
compute_origin(const char *uri, char *out, size_t cap)
{
    size_t skip = strncmp(uri, "https://", 8) == 0 ? 8 : strncmp(uri, "http://", 7) == 0 ? 7 : 0;
    size_t n = skip;

    out[0] = '\0';
    if (skip == 0) {
        return;
    }
    while (uri[n] != '\0' && uri[n] != '/' && uri[n] != '?' && uri[n] != '#') {
        char c = uri[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '-' || c == ':' || c == '[' || c == ']';
        if (!ok) {
            return;
        }
        n++;
    }
    if (n == skip || n >= cap) {
        return;
    }
    memcpy(out, uri, n);
    out[n] = '\0';
}

/* The redirect back to the client: redirect_uri plus params (name/value pairs, value NULL =
 * skipped), then state. Allocated into *out; BP_ERR_LIMIT when it would exceed REDIRECT_MAX —
 * never a truncated URI, which could drop the state or split an escape. */
static bp_err
build_location(const struct authz *a, const char *const *params, size_t n, char **out)
{
    struct bp_buf b;
    bool first = strchr(a->p.redirect_uri, '?') == NULL;
    bp_err rc;

    *out = NULL;
    bp_buf_init(&b, REDIRECT_MAX);
    rc = bp_buf_append_str(&b, a->p.redirect_uri);
    for (size_t i = 0; rc == BP_OK && i + 1 < n; i += 2) {
        if (params[i + 1] == NULL) {
            continue;
        }
        rc = bp_buf_append_str(&b, first ? "?" : "&");
        first = false;
        rc = rc == BP_OK ? bp_buf_append_str(&b, params[i]) : rc;
        rc = rc == BP_OK ? bp_buf_append_str(&b, "=") : rc;
        rc = rc == BP_OK ? bp_oauth__url_encode(&b, params[i + 1]) : rc;
    }
    if (rc == BP_OK && a->p.state != NULL) {
        rc = bp_buf_append_str(&b, first ? "?state=" : "&state=");
        rc = rc == BP_OK ? bp_oauth__url_encode(&b, a->p.state) : rc;
    }
    if (rc != BP_OK) {
        bp_wipe(b.data, b.len); /* it may hold a code */
        bp_buf_cleanup(&b);
        return rc;
    }
    *out = bp_buf_take(&b, NULL);
    return BP_OK;
}

static void
page_redirect_too_long(struct bp_oauth_response *out)
{
    bp_oauth__page_error(out, 400, "Invalid request",
                         "The answer to the app would be too long. Start again from the app.");
}

/* 302 to a location built by build_location (consumed: wiped and freed). */
static void
send_location(struct bp_oauth_response *out, char *location)
{
    out->status = 302;
    bp_oauth_add_header(out, "Location", location);
    bp_oauth_add_header(out, "Cache-Control", "no-store");
    bp_oauth_add_header(out, "Referrer-Policy", "no-referrer");
    bp_wipe(location, strlen(location));
    bp_free(location);
}

static void
redirect(struct bp_oauth_response *out, const struct authz *a, const char *const *params, size_t n)
{
    char *location = NULL;

    if (build_location(a, params, n, &location) != BP_OK) {
        page_redirect_too_long(out);
        return;
    }
    send_location(out, location);
}

static void
redirect_error(struct bp_oauth_response *out, const struct authz *a, const char *error,
               const char *description)
{
    const char *params[] = {"error", error, "error_description", description};

    redirect(out, a, params, 4);
}

static bool
redirect_uri_registered(const struct bp_client_rec *c, const char *uri)
{
    for (size_t i = 0; i < c->n_redirect_uris; i++) {
        if (strcmp(c->redirect_uris[i], uri) == 0) {
            return true;
        }
    }
    return false;
}

static void
read_params(struct authz *a)
{
    const struct bp_oauth_form *f = &a->form;

    a->p.response_type = bp_oauth__form_get(f, "response_type");
    a->p.client_id = bp_oauth__form_get(f, "client_id");
    a->p.redirect_uri = bp_oauth__form_get(f, "redirect_uri");
    a->p.state = bp_oauth__form_get(f, "state");
    a->p.scope = bp_oauth__form_get(f, "scope");
    a->p.code_challenge = bp_oauth__form_get(f, "code_challenge");
    a->p.code_challenge_method = bp_oauth__form_get(f, "code_challenge_method");
}

/* Identifies the client and its redirect URI; on failure out is an error page. */
static bool
check_client(struct bp_oauth *o, struct authz *a, struct bp_oauth_response *out)
{
    bp_err rc;

    if (a->p.client_id == NULL) {
        bp_oauth__page_error(out, 400, "Invalid request", "The request has no client_id.");
        return false;
    }
    rc = bp_store_client_get(o->store, a->p.client_id, &a->client);
    if (rc != BP_OK && rc != BP_ERR_NOT_FOUND) {
        bp_oauth__page_error(out, 503, "Try again", "The service is temporarily unavailable.");
        return false;
    }
    if (rc == BP_ERR_NOT_FOUND || !bp_oauth__client_is_usable(&a->client, bp_clock_wall_s())) {
        bp_oauth__page_error(out, 400, "Unknown app", "No active app has this client_id.");
        return false;
    }
    if (a->p.redirect_uri == NULL || !redirect_uri_registered(&a->client, a->p.redirect_uri)) {
        bp_oauth__page_error(out, 400, "Invalid redirect",
                             "The redirect_uri is missing or is not registered for this app.");
        return false;
    }
    compute_origin(a->p.redirect_uri, a->origin, sizeof(a->origin));
    return true;
}

/* Validates the whole authorization request; on failure out is an error page or redirect. */
static bool
check_request(struct bp_oauth *o, struct authz *a, struct bp_oauth_response *out)
{
    unsigned limit;

    if (!check_client(o, a, out)) {
        return false;
    }
    /* A page, not a redirect: every redirect echoes state, and this one cannot be echoed. */
    if (a->p.state != NULL && strlen(a->p.state) > STATE_MAX) {
        bp_oauth__page_error(out, 400, "Invalid request", "The request's state is too long.");
        return false;
    }
    if (a->p.response_type == NULL) {
        redirect_error(out, a, "invalid_request", "response_type is required");
        return false;
    }
    if (strcmp(a->p.response_type, "code") != 0) {
        redirect_error(out, a, "unsupported_response_type", "only response_type=code is supported");
        return false;
    }
    if (!bp_oauth__list_has(a->client.grant_types, "authorization_code")) {
        redirect_error(out, a, "unauthorized_client", "the app may not use the authorization_code grant");
        return false;
    }
    if (a->p.code_challenge == NULL ||
        !bp_oauth__pkce_challenge_is_valid(a->p.code_challenge, strlen(a->p.code_challenge))) {
        redirect_error(out, a, "invalid_request", "a PKCE S256 code_challenge is required");
        return false;
    }
    if (a->p.code_challenge_method == NULL || strcmp(a->p.code_challenge_method, "S256") != 0) {
        redirect_error(out, a, "invalid_request", "code_challenge_method must be S256");
        return false;
    }
    if (bp_oauth__scope_parse_stored(a->client.scopes, &limit) != BP_OK) {
        redirect_error(out, a, "invalid_scope", "the app has no usable scope");
        return false;
    }
    a->scope_bits = limit;
    if (a->p.scope != NULL && (bp_oauth__scope_parse(a->p.scope, &a->scope_bits) != BP_OK ||
                               !bp_oauth__scope_within(a->scope_bits, limit))) {
        redirect_error(out, a, "invalid_scope", "the requested scope is unknown or exceeds the app's scopes");
        return false;
    }
    bp_oauth__scope_spaced(a->scope_bits, a->scope_text, sizeof(a->scope_text));
    return true;
}

static void
set_cookie(struct bp_oauth_response *out, const char *sid, bool tls)
{
    char *cookie = bp_oauth__session_cookie(sid, tls);

    bp_oauth_add_header(out, "Set-Cookie", cookie);
    bp_wipe(cookie, strlen(cookie));
    bp_free(cookie);
}

/* The session named by the request's cookie, if it exists and has not expired. */
static bool
load_session(struct bp_oauth *o, const struct bp_oauth_request *req, char sid[BP_OAUTH_SESSION_HEX + 1],
             struct bp_session_rec *out)
{
    unsigned char digest[BP_DIGEST_LEN];

    if (!bp_oauth__cookie_session(req->cookie, req->cookie_len, sid)) {
        return false;
    }
    bp_digest(sid, BP_OAUTH_SESSION_HEX, digest);
    if (bp_store_session_get(o->store, digest, out) != BP_OK) {
        return false;
    }
    if (out->expires_at <= bp_clock_wall_s()) {
        bp_session_rec_cleanup(out);
        return false;
    }
    return true;
}

/* The signed-in, enabled operator of a session, or false. */
static bool
session_operator(struct bp_oauth *o, const struct bp_session_rec *s, struct bp_operator_rec *out)
{
    if (s->operator_id == NULL || bp_store_operator_get(o->store, s->operator_id, out) != BP_OK) {
        return false;
    }
    /* Re-read at every step: an operator disabled, or given a role that may not approve, since
     * signing in is refused from then on. */
    if (out->disabled || !bp_oauth_may_approve(out->role)) {
        bp_operator_rec_cleanup(out);
        return false;
    }
    return true;
}

static void
show_consent(struct authz *a, const char *sid, const struct bp_operator_rec *op,
             struct bp_oauth_response *out)
{
    char csrf[BP_OAUTH_SESSION_HEX + 1];

    bp_oauth__csrf_for(sid, csrf);
    bp_oauth__page_consent(out, &a->p, csrf, a->client.name, op->name, a->scope_text, origin_or_null(a));
    bp_wipe(csrf, sizeof(csrf));
}

static void
show_login(struct authz *a, const char *sid, int status, const char *message, struct bp_oauth_response *out)
{
    char csrf[BP_OAUTH_SESSION_HEX + 1];

    bp_oauth__csrf_for(sid, csrf);
    bp_oauth__page_login(out, status, &a->p, csrf, message, origin_or_null(a));
    bp_wipe(csrf, sizeof(csrf));
}

static void
handle_get(struct bp_oauth *o, const struct bp_oauth_request *req, struct authz *a,
           struct bp_oauth_response *out)
{
    struct bp_session_rec s = {0};
    struct bp_operator_rec op = {0};
    char sid[BP_OAUTH_SESSION_HEX + 1];
    int64_t retry_after = 0;

    if (load_session(o, req, sid, &s)) {
        if (session_operator(o, &s, &op)) {
            show_consent(a, sid, &op, out);
            bp_operator_rec_cleanup(&op);
        } else {
            show_login(a, sid, 200, NULL, out);
        }
        bp_session_rec_cleanup(&s);
        bp_wipe(sid, sizeof(sid));
        return;
    }
    /* Every new session is a stored row until it expires: bound how fast one peer makes them
     * (a browser that kept its cookie reuses its session above and is not counted). */
    if (!bp_oauth__session_rate_take(req->peer, bp_clock_mono_ms(), &retry_after)) {
        char value[24];
        BP_WARN("oauth: authorize page throttled: too many new sessions", BP_LSTR("peer", req->peer));
        bp_oauth__page_error(out, 429, "Too many requests",
                             "Too many sign-in pages were opened from your address. Wait a few minutes and "
                             "try again.");
        snprintf(value, sizeof(value), "%lld", (long long)retry_after);
        bp_oauth_add_header(out, "Retry-After", value);
        return;
    }
    if (bp_oauth__session_create(o, NULL, sid) != BP_OK) {
        bp_oauth__page_error(out, 503, "Try again", "The service is temporarily unavailable.");
        return;
    }
    show_login(a, sid, 200, NULL, out);
    set_cookie(out, sid, req->tls);
    bp_wipe(sid, sizeof(sid));
}

static void
handle_login(struct bp_oauth *o, const struct bp_oauth_request *req, struct authz *a, const char *sid,
             struct bp_oauth_response *out)
{
    const char *name = bp_oauth__form_get(&a->form, "name");
    const char *password = bp_oauth__form_get(&a->form, "password");
    struct bp_operator_rec op = {0};
    unsigned char digest[BP_DIGEST_LEN];
    char new_sid[BP_OAUTH_SESSION_HEX + 1];
    bp_err rc;

    if (name == NULL || password == NULL) {
        show_login(a, sid, 400, "Enter your name and password.", out);
        return;
    }
    rc = bp_oauth_signin(o, name, password, req->peer, &op);
    if (rc == BP_ERR_LIMIT) {
        bp_oauth__page_error(out, 429, "Too many sign-in attempts",
                             "Too many sign-in attempts. Wait a few minutes and try again.");
        bp_oauth_add_header(out, "Retry-After", "900");
        return;
    }
    if (rc != BP_OK && rc != BP_ERR_AUTH_INVALID_KEY) {
        bp_oauth__page_error(out, 503, "Try again", "The service is temporarily unavailable.");
        return;
    }
    /* An auditor reads; approving an app grants access, which is a change. */
    if (rc == BP_OK && !bp_oauth_may_approve(op.role)) {
        bp_operator_rec_cleanup(&op);
        rc = BP_ERR_AUTH_INVALID_KEY;
    }
    if (rc != BP_OK) {
        show_login(a, sid, 401, "Invalid name or password.", out);
        return;
    }
    /* Rotate the session id at sign-in (session fixation). */
    bp_digest(sid, BP_OAUTH_SESSION_HEX, digest);
    bp_store_session_delete(o->store, digest);
    if (bp_oauth__session_create(o, op.id, new_sid) != BP_OK) {
        bp_operator_rec_cleanup(&op);
        bp_oauth__page_error(out, 503, "Try again", "The service is temporarily unavailable.");
        return;
    }
    BP_INFO("oauth: operator signed in", BP_LSTR("operator_id", op.id), BP_LSTR("peer", req->peer));
    show_consent(a, new_sid, &op, out);
    set_cookie(out, new_sid, req->tls);
    bp_wipe(new_sid, sizeof(new_sid));
    bp_operator_rec_cleanup(&op);
}

static void
approve(struct bp_oauth *o, struct authz *a, const struct bp_operator_rec *op, struct bp_oauth_response *out)
{
    char code[2 * 32 + 1];
    char family[BP_OAUTH_FAMILY_ID_LEN + 1];
    char scopes[BP_OAUTH_SCOPE_TEXT_MAX];
    struct bp_code_rec rec = {0};
    int64_t now = bp_clock_wall_s();
    char *location = NULL;
    bp_err rc;

    rc = bp_rand_hex(code, 32);
    if (rc == BP_OK) {
        rc = bp_oauth__family_id(family);
    }
    if (rc == BP_OK) {
        bp_oauth__scope_stored(a->scope_bits, scopes, sizeof(scopes));
        bp_digest(code, strlen(code), rec.digest);
        rec.client_id = a->client.id;
        rec.operator_id = op->id;
        rec.redirect_uri = (char *)a->p.redirect_uri;
        rec.scopes = scopes;
        rec.code_challenge = (char *)a->p.code_challenge;
        rec.family_id = family;
        rec.created_at = now;
        rec.expires_at = now + (o->cfg->oauth_code_ttl_ms + 999) / 1000;
        /* The location first: a code is stored only when it can be delivered. */
        const char *params[] = {"code", code};
        if (build_location(a, params, 2, &location) != BP_OK) {
            bp_wipe(code, sizeof(code));
            page_redirect_too_long(out);
            return;
        }
        rc = bp_store_code_insert(o->store, &rec);
    }
    bp_wipe(code, sizeof(code));
    if (rc != BP_OK) {
        BP_ERROR("oauth: could not store an authorization code",
                 BP_LSTR("error", bp_store_last_error(o->store)));
        bp_oauth__page_error(out, 503, "Try again", "The service is temporarily unavailable.");
        if (location != NULL) {
            bp_wipe(location, strlen(location));
            bp_free(location);
        }
        return;
    }
    send_location(out, location);
    BP_INFO("oauth: authorization code issued", BP_LSTR("client_id", a->client.id),
            BP_LSTR("operator_id", op->id), BP_LSTR("family_id", family));
}

static void
handle_decision(struct bp_oauth *o, struct authz *a, const struct bp_session_rec *s, bool approved,
                struct bp_oauth_response *out)
{
    struct bp_operator_rec op = {0};

    if (!session_operator(o, s, &op)) {
        bp_oauth__page_error(out, 403, "Sign in first", "Sign in before approving or denying an app.");
        return;
    }
    if (approved) {
        approve(o, a, &op, out);
    } else {
        BP_INFO("oauth: authorization denied", BP_LSTR("client_id", a->client.id),
                BP_LSTR("operator_id", op.id));
        redirect_error(out, a, "access_denied", "the operator denied the request");
    }
    bp_operator_rec_cleanup(&op);
}

static void
handle_post(struct bp_oauth *o, const struct bp_oauth_request *req, struct authz *a,
            struct bp_oauth_response *out)
{
    struct bp_session_rec s = {0};
    char sid[BP_OAUTH_SESSION_HEX + 1];
    unsigned char csrf_digest[BP_DIGEST_LEN];
    const char *csrf = bp_oauth__form_get(&a->form, "csrf");
    const char *action = bp_oauth__form_get(&a->form, "action");

    if (!load_session(o, req, sid, &s)) {
        bp_oauth__page_error(out, 403, "Session expired",
                             "Your sign-in session is missing or has expired. Start again from the app.");
        return;
    }
    if (csrf == NULL) {
        memset(csrf_digest, 0, sizeof(csrf_digest));
    } else {
        bp_digest(csrf, strlen(csrf), csrf_digest);
    }
    if (csrf == NULL || !bp_ct_equal(csrf_digest, s.csrf_digest, BP_DIGEST_LEN)) {
        BP_WARN("oauth: authorize form refused: bad CSRF token", BP_LSTR("peer", req->peer));
        bp_oauth__page_error(out, 403, "Request refused",
                             "The form could not be verified. Start again from the app.");
        goto done;
    }
    if (action != NULL && strcmp(action, "login") == 0) {
        handle_login(o, req, a, sid, out);
    } else if (action != NULL && (strcmp(action, "approve") == 0 || strcmp(action, "deny") == 0)) {
        handle_decision(o, a, &s, strcmp(action, "approve") == 0, out);
    } else {
        bp_oauth__page_error(out, 400, "Invalid request", "Unknown action.");
    }
done:
    bp_wipe(sid, sizeof(sid));
    bp_session_rec_cleanup(&s);
}

void
bp_oauth__authorize(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    struct authz a = {0};
    bool post = bp_str_eq(req->method, req->method_len, "POST");
    const char *text = post ? req->body : req->query;
    size_t len = post ? req->body_len : req->query_len;
    bp_err rc;

    if (post && !bp_oauth__is_form(req)) {
        bp_oauth__page_error(out, 400, "Invalid request", "The form was not sent as a form.");
        return;
    }
    rc = bp_oauth__form_parse(text != NULL ? text : "", text != NULL ? len : 0, &a.form);
    if (rc != BP_OK) {
        bp_oauth__page_error(out, 400, "Invalid request",
                             rc == BP_ERR_EXISTS ? "A parameter is repeated." : "The request is malformed.");
        return;
    }
    read_params(&a);
    if (check_request(o, &a, out)) {
        if (post) {
            handle_post(o, req, &a, out);
        } else {
            handle_get(o, req, &a, out);
        }
    }
    bp_client_rec_cleanup(&a.client);
    bp_oauth__form_cleanup(&a.form);
}
