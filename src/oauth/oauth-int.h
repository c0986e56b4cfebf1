#ifndef BP_OAUTH_OAUTH_INT_H
#define BP_OAUTH_OAUTH_INT_H

/* Shared between the files of src/oauth only (not part of the module's interface). Each group
 * below is implemented by the file named in its heading. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "oauth/oauth.h"

struct bp_client_rec;
struct bp_config;
struct bp_store;
struct bp_token_rec;

/* One thread's endpoint state (handler.c). */
struct bp_oauth {
    const struct bp_config *cfg;
    struct bp_store *store;  /* NULL until bp_oauth__ready */
    bool open_failed;        /* the last bp_oauth__ready failed (and was logged) */
    char *issuer;            /* base URL without a trailing slash */
    char *dummy_hash;        /* Argon2id hash of a random password: verified for unknown names so
                                that a sign-in takes the same time whether or not the name exists;
                                made at the thread's first sign-in (signin.c) */
};

/* Opens o's store connection if it has none yet (handler.c); every entry point that reads
 * o->store calls it first. */
bp_err bp_oauth__ready(struct bp_oauth *o);

/* ---- form.c: application/x-www-form-urlencoded (also used for query strings) ---- */

#define BP_OAUTH_FORM_MAX_FIELDS 64
#define BP_OAUTH_FORM_MAX_NAME 64
#define BP_OAUTH_FORM_MAX_VALUE 8192

struct bp_oauth_field {
    char *name;
    char *value;             /* decoded, NUL-terminated; never contains NUL */
    size_t value_len;
};

struct bp_oauth_form {
    struct bp_oauth_field *fields;
    size_t n;
};

/* Parses "a=1&b=x+y%21". '+' decodes to a space and %XX to its byte; a pair without '=' has an
 * empty value; empty pairs ("a=1&&b=2") are skipped. Returns BP_ERR_INVALID for a bad %-escape, an
 * escaped NUL or control byte, or an empty name; BP_ERR_EXISTS when a name appears twice (RFC 6749
 * §3.1: parameters must not be repeated); BP_ERR_LIMIT past the field, name or value limits.
 * On failure *out is left empty. Free with bp_oauth__form_cleanup. */
bp_err bp_oauth__form_parse(const char *text, size_t len, struct bp_oauth_form *out);
void bp_oauth__form_cleanup(struct bp_oauth_form *f);
/* The decoded value of name, or NULL when absent or empty (RFC 6749 §3.1: a parameter sent
 * without a value is treated as omitted). Borrowed from f. */
const char *bp_oauth__form_get(const struct bp_oauth_form *f, const char *name);
/* Decodes one form-urlencoded component (same rules as above) into a NUL-terminated allocation. */
bp_err bp_oauth__form_decode(const char *text, size_t len, size_t max, char **out, size_t *out_len);
/* Appends s percent-encoded for a query component (unreserved bytes kept, everything else %XX). */
bp_err bp_oauth__url_encode(struct bp_buf *b, const char *s);

/* ---- basic.c: HTTP Basic client credentials (RFC 7617, RFC 6749 §2.3.1) ---- */

/* Parses "Basic <base64(urlencode(id) ':' urlencode(secret))>". On BP_OK *out_id and *out_secret
 * are decoded allocations (free with bp_free; wipe the secret first). BP_ERR_NOT_FOUND when the
 * scheme is not Basic; BP_ERR_INVALID for bad base64, no ':', an empty id, or bad encoding. */
bp_err bp_oauth__basic_parse(const char *value, size_t len, char **out_id, char **out_secret);

/* ---- pkce.c: RFC 7636 S256 ---- */

#define BP_PKCE_CHALLENGE_LEN 43

/* True for 43..128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1). */
bool bp_oauth__pkce_verifier_is_valid(const char *v, size_t len);
/* True for exactly 43 characters of base64url without padding (a SHA-256 digest). */
bool bp_oauth__pkce_challenge_is_valid(const char *c, size_t len);
/* BASE64URL(SHA-256(verifier)) without padding, NUL-terminated. */
void bp_oauth__pkce_s256(const char *verifier, size_t len, char out[BP_PKCE_CHALLENGE_LEN + 1]);
/* True when the verifier is valid and its S256 transform equals challenge (constant time). */
bool bp_oauth__pkce_verify(const char *verifier, size_t len, const char *challenge);

/* ---- scope.c: RFC 6749 §3.3 scope lists ---- */

/* Parses a space-separated scope request ("proxy:read proxy:write") into BP_SCOPE_* bits.
 * BP_ERR_INVALID on an unknown scope or bad separator use. */
bp_err bp_oauth__scope_parse(const char *text, unsigned *out_bits);
/* Parses a stored canonical comma-separated list; BP_ERR_INVALID when it is not one. */
bp_err bp_oauth__scope_parse_stored(const char *text, unsigned *out_bits);
/* True when every bit of want is in have. */
bool bp_oauth__scope_within(unsigned want, unsigned have);
/* Canonical stored text (commas) and response text (spaces) of bits, into out[cap]. */
void bp_oauth__scope_stored(unsigned bits, char *out, size_t cap);
void bp_oauth__scope_spaced(unsigned bits, char *out, size_t cap);
#define BP_OAUTH_SCOPE_TEXT_MAX 64

/* ---- handler.c: response helpers ---- */

/* Sets out to an RFC 6749 §5.2 error: {"error","error_description"} with Cache-Control: no-store.
 * invalid_client also gets WWW-Authenticate: Basic realm="blnkproxy". */
void bp_oauth__error(struct bp_oauth_response *out, int status, const char *error, const char *description);
/* Sets out to a JSON body (json_t *, stolen) with Cache-Control: no-store and Pragma: no-cache. */
void bp_oauth__json(struct bp_oauth_response *out, int status, void *json);
/* True when the Content-Type is application/x-www-form-urlencoded (parameters may follow ';'). */
bool bp_oauth__is_form(const struct bp_oauth_request *req);
/* A client is usable when neither revoked nor expired at now. */
bool bp_oauth__client_is_usable(const struct bp_client_rec *c, int64_t now);
/* True when the comma-separated list has item. */
bool bp_oauth__list_has(const char *list, const char *item);

/* ---- client_auth.c: client authentication at the token, revoke and introspect endpoints ---- */

/* Authenticates the client by HTTP Basic or by client_id/client_secret form fields (RFC 6749
 * §2.3.1). On BP_OK *out holds the client (clean it up). Otherwise out->status etc. of resp are set
 * to the error answer (invalid_request for both methods at once or several Authorization headers;
 * 401 invalid_client for everything else) and the function returns BP_ERR_INVALID. */
bp_err bp_oauth__client_authenticate(struct bp_oauth *o, const struct bp_oauth_request *req,
                                     const struct bp_oauth_form *form, struct bp_client_rec *out,
                                     struct bp_oauth_response *resp);
/* What the three endpoints do first: checks the Content-Type, parses the body into *form and
 * authenticates the client into *client. On BP_OK clean both up after use. Otherwise resp holds the
 * error answer (400 invalid_request for a body that is not a well-formed form, then as above),
 * form and client are left empty, and the function returns BP_ERR_INVALID. */
bp_err bp_oauth__client_request(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_form *form,
                                struct bp_client_rec *client, struct bp_oauth_response *resp);

/* ---- token_param.c: the "token" parameter of revoke and introspect (RFC 7009 §2.1, RFC 7662 §2.1) ---- */

/* Looks up the token whose text the form's "token" parameter carries. BP_OK: *out holds it (clean
 * it up). BP_ERR_NOT_FOUND: no token has that text. Otherwise resp holds the error answer (400
 * invalid_request without the parameter, 503 when the store fails) and the return is
 * BP_ERR_INVALID. */
bp_err bp_oauth__form_token(struct bp_oauth *o, const struct bp_oauth_form *form, struct bp_token_rec *out,
                            struct bp_oauth_response *resp);

/* ---- the endpoints (token.c, revoke.c, introspect.c, authorize.c, metadata.c) ---- */

void bp_oauth__token(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out);
void bp_oauth__revoke(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out);
void bp_oauth__introspect(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out);
void bp_oauth__authorize(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out);
void bp_oauth__metadata(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out);

/* ---- html.c: the authorize pages ---- */

/* Appends s with & < > " ' escaped. */
bp_err bp_oauth__html_escape(struct bp_buf *b, const char *s);

/* What a page carries from the original authorize request (all may be NULL). */
struct bp_oauth_authz_params {
    const char *response_type;
    const char *client_id;
    const char *redirect_uri;
    const char *state;
    const char *scope;
    const char *code_challenge;
    const char *code_challenge_method;
};

/* Sets out to an HTML page (status, security headers, no-store). form_origin (may be NULL) is
 * the redirect URI's origin, which the form may be redirected to. */
void bp_oauth__page_login(struct bp_oauth_response *out, int status, const struct bp_oauth_authz_params *p,
                          const char *csrf, const char *message, const char *form_origin);
void bp_oauth__page_consent(struct bp_oauth_response *out, const struct bp_oauth_authz_params *p,
                            const char *csrf, const char *client_name, const char *operator_name,
                            const char *scope_text, const char *form_origin);
void bp_oauth__page_error(struct bp_oauth_response *out, int status, const char *title, const char *message);

/* ---- session.c: authorize-page sessions and CSRF tokens ---- */

#define BP_OAUTH_SESSION_COOKIE "blnkproxy_session"
#define BP_OAUTH_SESSION_HEX 64

/* Finds the session cookie's value in a Cookie header; true and a NUL-terminated copy in out
 * when present and well-formed (64 lowercase hex). */
bool bp_oauth__cookie_session(const char *cookie, size_t len, char out[BP_OAUTH_SESSION_HEX + 1]);
/* The CSRF token of a session: hex HMAC-SHA-256 keyed by the session id. Only the holder of the
 * (HttpOnly, SameSite=Lax) cookie can know it; its digest is also stored with the session. */
void bp_oauth__csrf_for(const char *session_id, char out[BP_OAUTH_SESSION_HEX + 1]);
/* Creates a session row (operator_id may be NULL) and writes its fresh id into out. */
bp_err bp_oauth__session_create(struct bp_oauth *o, const char *operator_id, char out[BP_OAUTH_SESSION_HEX + 1]);
/* The Set-Cookie value for a session id (allocated). */
char *bp_oauth__session_cookie(const char *session_id, bool tls);

/* ---- throttle.c: authorize-page rate limits, shared by every OAuth thread ---- */

#define BP_OAUTH_THROTTLE_MAX_FAILURES 5
#define BP_OAUTH_THROTTLE_WINDOW_MS (15 * 60 * 1000)
#define BP_OAUTH_SESSION_MAX_PER_PEER 30
#define BP_OAUTH_SESSION_WINDOW_MS (10 * 60 * 1000)
/* All peers together per window: with a 30-minute session TTL, at most 3 windows' worth of
 * anonymous session rows (30,000) exist at once. */
#define BP_OAUTH_SESSION_MAX_GLOBAL 10000

/* True when name or peer has used up its BP_OAUTH_THROTTLE_MAX_FAILURES attempts in the window. */
bool bp_oauth__throttle_blocked(const char *name, const char *peer, int64_t now_ms);
/* Checks and counts one sign-in attempt for name and for peer (either may be NULL), atomically,
 * before the password is verified. False when either is blocked, or when no slot can be had
 * because the table is full of blocking entries: refuse the sign-in then. */
bool bp_oauth__throttle_reserve(const char *name, const char *peer, int64_t now_ms);
/* An attempt that verified nothing (the store did not answer): both reservations given back. */
void bp_oauth__throttle_unreserve(const char *name, const char *peer, int64_t now_ms);
/* After a successful sign-in: forgets the failures of name and gives peer's reservation back. */
void bp_oauth__throttle_success(const char *name, const char *peer, int64_t now_ms);
/* Counts the creation of one anonymous authorize-page session for peer. False (and the seconds
 * to wait in *out_retry_after_s) when peer has created BP_OAUTH_SESSION_MAX_PER_PEER in the
 * window, or the table is full of such peers. */
bool bp_oauth__session_rate_take(const char *peer, int64_t now_ms, int64_t *out_retry_after_s);

/* ---- issue.c: issuing access and refresh tokens ---- */

struct bp_oauth_issued {
    char access[BP_OAUTH_TOKEN_LEN + 1];
    char refresh[BP_OAUTH_TOKEN_LEN + 1];
    int64_t access_expires_in;
    bool has_refresh;
};

/* Used when the configuration leaves oauth.max_tokens_per_client at 0 (a hand-built config). */
#define BP_OAUTH_DEFAULT_MAX_TOKENS_PER_CLIENT 100

/* Generates and stores an access token (and a refresh token when with_refresh) of family_id for
 * client c, with scope bits and operator_id (NULL for client_credentials). Expiry: the configured
 * lifetimes, never beyond the client's own expiry. Also revokes the client's oldest live access
 * tokens beyond cfg->oauth_max_tokens_per_client. The caller runs it inside a transaction (the
 * insert and the cap must land together). */
bp_err bp_oauth__issue(struct bp_oauth *o, const struct bp_client_rec *c, const char *family_id,
                       const char *operator_id, unsigned scope_bits, bool with_refresh, int64_t now_ms,
                       struct bp_oauth_issued *out);
/* The token response (RFC 6749 §5.1) for what was issued. */
void bp_oauth__token_response(struct bp_oauth_response *out, const struct bp_oauth_issued *t, unsigned scope_bits);
/* Writes "family_" + ULID. */
#define BP_OAUTH_FAMILY_ID_LEN (7 + 26)
bp_err bp_oauth__family_id(char out[BP_OAUTH_FAMILY_ID_LEN + 1]);

#endif
