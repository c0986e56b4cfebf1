/* POST /oauth/token (RFC 6749 §3.2, §4.1.3, §4.4, §6; RFC 7636 §4.6; RFC 9700 §4.14.2).
 *
 * Families: every token descends from one grant (a code or a client_credentials request) and
 * carries that grant's family id. A second use of a code or of a rotated refresh token is taken
 * as theft, and the whole family is revoked. Refresh rotation (read and check the old token, mark
 * it used, insert the new pair) is one store transaction, so two concurrent refreshes with the
 * same token cannot both succeed, and a refresh cannot rotate a token whose family a concurrent
 * reuse has just revoked. */
#include <string.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/log.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

static void
store_failed(struct bp_oauth *o, struct bp_oauth_response *out, const char *what)
{
    BP_ERROR("oauth: store call failed", BP_LSTR("op", what),
             BP_LSTR("error", bp_store_last_error(o->store)));
    bp_oauth__error(out, 503, "temporarily_unavailable", "the store did not answer");
}

/* The scope a request asks for: absent → the default; else it must be known and within limit. */
static bool
requested_scope(const struct bp_oauth_form *form, unsigned limit, unsigned *out_bits,
                struct bp_oauth_response *out)
{
    const char *scope = bp_oauth__form_get(form, "scope");
    unsigned bits;

    if (scope == NULL) {
        *out_bits = limit;
        return true;
    }
    if (bp_oauth__scope_parse(scope, &bits) != BP_OK || !bp_oauth__scope_within(bits, limit)) {
        bp_oauth__error(out, 400, "invalid_scope",
                        "the requested scope is unknown or exceeds what was granted");
        return false;
    }
    *out_bits = bits;
    return true;
}

/* Revokes a family after reuse was detected; out->tables_changed makes the request path drop the
 * family's access tokens before the error answer leaves. */
static void
revoke_family(struct bp_oauth *o, const char *family_id, const char *client_id, const char *why,
              struct bp_oauth_response *out)
{
    size_t n = 0;
    bp_err rc = bp_store_token_revoke_family(o->store, family_id, bp_clock_wall_s(), &n);

    out->tables_changed = true;

    if (rc != BP_OK) {
        BP_ERROR("oauth: could not revoke a token family", BP_LSTR("family_id", family_id),
                 BP_LSTR("error", bp_store_last_error(o->store)));
        return;
    }
    BP_WARN("oauth: token family revoked", BP_LSTR("reason", why), BP_LSTR("family_id", family_id),
            BP_LSTR("client_id", client_id), BP_LINT("tokens_revoked", n));
}

static void
grant_client_credentials(struct bp_oauth *o, const struct bp_client_rec *c, const struct bp_oauth_form *form,
                         struct bp_oauth_response *out)
{
    char family[BP_OAUTH_FAMILY_ID_LEN + 1];
    struct bp_oauth_issued t;
    unsigned limit;
    unsigned bits;
    bp_err rc;

    if (bp_oauth__scope_parse_stored(c->scopes, &limit) != BP_OK) {
        bp_oauth__error(out, 400, "invalid_scope", "the client has no usable scope");
        return;
    }
    if (!requested_scope(form, limit, &bits, out)) {
        return;
    }
    rc = bp_oauth__family_id(family);
    /* A transaction so that the token and the revocation of the client's oldest ones (the
     * per-client cap in bp_oauth__issue) land together. */
    if (rc == BP_OK) {
        rc = bp_store_begin(o->store);
        if (rc == BP_OK) {
            rc = bp_oauth__issue(o, c, family, NULL, bits, false, bp_clock_wall_ms(), &t);
            rc = rc == BP_OK ? bp_store_commit(o->store) : rc;
            if (rc != BP_OK) {
                bp_store_rollback(o->store);
            }
        }
    }
    if (rc != BP_OK) {
        store_failed(o, out, "token_insert");
        return;
    }
    bp_oauth__token_response(out, &t, bits);
    bp_wipe(&t, sizeof(t));
    BP_INFO("oauth: token issued", BP_LSTR("grant_type", "client_credentials"), BP_LSTR("client_id", c->id),
            BP_LSTR("family_id", family));
}

/* Checks a taken (now used) code against the request. NULL when it may be exchanged, else why
 * not (for the error description: says nothing about the code's content). */
static const char *
code_mismatch(const struct bp_code_rec *code, const struct bp_client_rec *c, const char *redirect_uri,
              const char *verifier, int64_t now)
{
    if (strcmp(code->client_id, c->id) != 0) {
        return "the code was issued to another client";
    }
    if (code->expires_at <= now) {
        return "the code has expired";
    }
    if (strcmp(code->redirect_uri, redirect_uri) != 0) {
        return "redirect_uri does not match the authorization request";
    }
    if (!bp_oauth__pkce_verify(verifier, strlen(verifier), code->code_challenge)) {
        return "code_verifier does not match the code_challenge";
    }
    return NULL;
}

static void
grant_authorization_code(struct bp_oauth *o, const struct bp_client_rec *c, const struct bp_oauth_form *form,
                         struct bp_oauth_response *out)
{
    const char *code_text = bp_oauth__form_get(form, "code");
    const char *redirect_uri = bp_oauth__form_get(form, "redirect_uri");
    const char *verifier = bp_oauth__form_get(form, "code_verifier");
    struct bp_code_rec code = {0};
    unsigned char digest[BP_DIGEST_LEN];
    struct bp_oauth_issued t;
    int64_t now_ms = bp_clock_wall_ms();
    int64_t now = now_ms / 1000;
    const char *why;
    unsigned bits = 0;
    bp_err rc;

    if (code_text == NULL || redirect_uri == NULL || verifier == NULL) {
        bp_oauth__error(out, 400, "invalid_request", "code, redirect_uri and code_verifier are required");
        return;
    }
    if (!bp_oauth__pkce_verifier_is_valid(verifier, strlen(verifier))) {
        bp_oauth__error(out, 400, "invalid_request", "code_verifier must be 43 to 128 unreserved characters");
        return;
    }
    bp_digest(code_text, strlen(code_text), digest);
    /* One transaction from taking the code to storing the tokens: a concurrent second use then
     * sees the tokens it must revoke. A code that fails a check stays used (committed). */
    rc = bp_store_begin(o->store);
    if (rc != BP_OK) {
        store_failed(o, out, "begin");
        return;
    }
    rc = bp_store_code_take(o->store, digest, now, &code);
    if (rc == BP_ERR_EXISTS) {
        /* RFC 6749 §4.1.2: a code used twice has leaked; revoke what was issued with it,
         * whichever client presents it. */
        revoke_family(o, code.family_id, code.client_id, "authorization code reused", out);
        why = "the code is unknown, expired or used";
    } else if (rc == BP_ERR_NOT_FOUND) {
        why = "the code is unknown, expired or used";
    } else if (rc != BP_OK) {
        bp_store_rollback(o->store);
        store_failed(o, out, "code_take");
        return;
    } else {
        why = code_mismatch(&code, c, redirect_uri, verifier, now);
        /* The scopes were checked against the client's when the code was issued. */
        if (why == NULL && bp_oauth__scope_parse_stored(code.scopes, &bits) != BP_OK) {
            why = "the code carries no usable scope";
        }
    }
    /* The operator may have been disabled after approving (disabling deletes unused codes, but
     * an approval racing the disable can still store one). */
    if (why == NULL) {
        struct bp_operator_rec op = {0};
        rc = bp_store_operator_get(o->store, code.operator_id, &op);
        if (rc == BP_ERR_NOT_FOUND || (rc == BP_OK && op.disabled)) {
            why = "the operator who approved the code is disabled";
        } else if (rc != BP_OK) {
            bp_store_rollback(o->store);
            bp_code_rec_cleanup(&code);
            store_failed(o, out, "operator_get");
            return;
        }
        bp_operator_rec_cleanup(&op);
    }
    /* RFC 6749 §6: a refresh token only for a client allowed the refresh_token grant. */
    rc = why == NULL ? bp_oauth__issue(o, c, code.family_id, code.operator_id, bits,
                                       bp_oauth__list_has(c->grant_types, "refresh_token"), now_ms, &t)
                     : BP_OK;
    if (rc == BP_OK) {
        rc = bp_store_commit(o->store);
    }
    if (rc != BP_OK) {
        bp_store_rollback(o->store);
        bp_code_rec_cleanup(&code);
        store_failed(o, out, "token_insert");
        return;
    }
    if (why != NULL) {
        bp_code_rec_cleanup(&code);
        bp_oauth__error(out, 400, "invalid_grant", why);
        return;
    }
    bp_oauth__token_response(out, &t, bits);
    bp_wipe(&t, sizeof(t));
    BP_INFO("oauth: token issued", BP_LSTR("grant_type", "authorization_code"), BP_LSTR("client_id", c->id),
            BP_LSTR("family_id", code.family_id), BP_LSTR("operator_id", code.operator_id));
    bp_code_rec_cleanup(&code);
}

/* Loads the presented refresh token; false (answer set) unless it belongs to c and can be used
 * or counts as reuse (old->used_at set; the caller revokes). Runs inside the caller's
 * transaction, so what it reads cannot change before the rotation. */
static bool
load_refresh(struct bp_oauth *o, const struct bp_client_rec *c, const char *text, int64_t now,
             struct bp_token_rec *old, struct bp_oauth_response *out)
{
    unsigned char digest[BP_DIGEST_LEN];
    bp_err rc;

    bp_digest(text, strlen(text), digest);
    rc = bp_store_token_get_by_digest(o->store, digest, old);
    if (rc == BP_ERR_NOT_FOUND) {
        bp_oauth__error(out, 400, "invalid_grant", "the refresh token is invalid");
        return false;
    }
    if (rc != BP_OK) {
        store_failed(o, out, "token_get");
        return false;
    }
    if (old->kind != BP_TOKEN_REFRESH || strcmp(old->client_id, c->id) != 0 || old->revoked ||
        (old->used_at == 0 && old->expires_at != 0 && old->expires_at <= now)) {
        bp_token_rec_cleanup(old);
        bp_oauth__error(out, 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
        return false;
    }
    return true;
}

/* A rotated (or, racing, a just-revoked) refresh token was presented: revoke the family inside
 * the open transaction, commit, and refuse. */
static void
refresh_reused(struct bp_oauth *o, const struct bp_token_rec *old, const struct bp_client_rec *c,
               struct bp_oauth_response *out)
{
    revoke_family(o, old->family_id, c->id, "refresh token reused", out);
    if (bp_store_commit(o->store) != BP_OK) {
        bp_store_rollback(o->store);
        BP_ERROR("oauth: could not commit a family revocation", BP_LSTR("family_id", old->family_id),
                 BP_LSTR("error", bp_store_last_error(o->store)));
    }
    bp_oauth__error(out, 400, "invalid_grant", "the refresh token is invalid, expired or revoked");
}

static void
grant_refresh_token(struct bp_oauth *o, const struct bp_client_rec *c, const struct bp_oauth_form *form,
                    struct bp_oauth_response *out)
{
    const char *text = bp_oauth__form_get(form, "refresh_token");
    struct bp_token_rec old = {0};
    struct bp_oauth_issued t;
    int64_t now_ms = bp_clock_wall_ms();
    int64_t now = now_ms / 1000;
    unsigned granted;
    unsigned client_bits;
    unsigned bits;
    bp_err rc;

    if (text == NULL) {
        bp_oauth__error(out, 400, "invalid_request", "refresh_token is required");
        return;
    }
    if (!bp_oauth_token_is_well_formed(BP_REFRESH_TOKEN_PREFIX, text, strlen(text))) {
        bp_oauth__error(out, 400, "invalid_grant", "the refresh token is invalid");
        return;
    }
    /* Read, check and rotate in one BEGIN IMMEDIATE transaction: a concurrent reuse that
     * revokes the family is ordered wholly before (we then read it revoked) or wholly after (it
     * then revokes what we issue), never between our read and our rotation. */
    rc = bp_store_begin(o->store);
    if (rc != BP_OK) {
        store_failed(o, out, "begin");
        return;
    }
    if (!load_refresh(o, c, text, now, &old, out)) {
        bp_store_rollback(o->store);
        return;
    }
    if (old.used_at != 0) {
        refresh_reused(o, &old, c, out);
        goto done;
    }
    if (bp_oauth__scope_parse_stored(old.scopes, &granted) != BP_OK ||
        bp_oauth__scope_parse_stored(c->scopes, &client_bits) != BP_OK) {
        bp_store_rollback(o->store);
        bp_oauth__error(out, 400, "invalid_grant", "the refresh token carries no usable scope");
        goto done;
    }
    if (!requested_scope(form, granted & client_bits, &bits, out)) {
        bp_store_rollback(o->store);
        goto done;
    }
    /* The compare-and-set also refuses a revoked token; with the read in this transaction that
     * cannot happen, but a changed row count is the only proof that we own the rotation. */
    rc = bp_store_token_mark_used(o->store, old.id, now);
    if (rc == BP_ERR_EXISTS || rc == BP_ERR_NOT_FOUND) {
        refresh_reused(o, &old, c, out);
        goto done;
    }
    if (rc == BP_OK) {
        rc = bp_oauth__issue(o, c, old.family_id, old.operator_id, bits, true, now_ms, &t);
    }
    if (rc == BP_OK) {
        rc = bp_store_commit(o->store);
    }
    if (rc != BP_OK) {
        bp_store_rollback(o->store);
        store_failed(o, out, "refresh rotation");
        goto done;
    }
    bp_oauth__token_response(out, &t, bits);
    bp_wipe(&t, sizeof(t));
    BP_INFO("oauth: token issued", BP_LSTR("grant_type", "refresh_token"), BP_LSTR("client_id", c->id),
            BP_LSTR("family_id", old.family_id));
done:
    bp_token_rec_cleanup(&old);
}

void
bp_oauth__token(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    struct bp_oauth_form form = {0};
    struct bp_client_rec c = {0};
    const char *grant;

    if (bp_oauth__client_request(o, req, &form, &c, out) != BP_OK) {
        return;
    }
    grant = bp_oauth__form_get(&form, "grant_type");
    if (grant == NULL) {
        bp_oauth__error(out, 400, "invalid_request", "grant_type is required");
    } else if (strcmp(grant, "client_credentials") != 0 && strcmp(grant, "authorization_code") != 0 &&
               strcmp(grant, "refresh_token") != 0) {
        bp_oauth__error(out, 400, "unsupported_grant_type", "grant_type is not supported");
    } else if (!bp_oauth__list_has(c.grant_types, grant)) {
        bp_oauth__error(out, 400, "unauthorized_client", "the client may not use this grant_type");
    } else if (strcmp(grant, "client_credentials") == 0) {
        grant_client_credentials(o, &c, &form, out);
    } else if (strcmp(grant, "authorization_code") == 0) {
        grant_authorization_code(o, &c, &form, out);
    } else {
        grant_refresh_token(o, &c, &form, out);
    }
    bp_client_rec_cleanup(&c);
    bp_oauth__form_cleanup(&form);
}
