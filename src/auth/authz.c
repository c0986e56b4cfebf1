/* Request-path credential checks. Runs on loop threads against a pinned tables snapshot: the
 * presented key is hashed and looked up in memory; the store is never touched here. */
#include "auth/auth.h"

#include <string.h>

#include "lib/ipnet.h"
#include "lib/str.h"

static bool
has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static bool
token_is_well_formed(const char *tok, size_t len)
{
    return bp_auth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, tok, len);
}

static bp_err
refuse(bp_err rc, enum bp_auth_failure reason, const struct bp_cred *c, const struct bp_cred **out,
       enum bp_auth_failure *why)
{
    *out = c;
    if (why != NULL) {
        *why = reason;
    }
    return rc;
}

/* An OAuth access token: only BP_CRED_ACCESS_TOKEN entries match, and every refusal is the one
 * code RFC 6750 §3.1 calls invalid_token. */
static bp_err
authenticate_token(const struct bp_tables *t, const char *tok, size_t len, int64_t now_s,
                   const struct bp_cred **out, enum bp_auth_failure *why)
{
    unsigned char digest[BP_DIGEST_LEN];
    const struct bp_cred *c;

    if (!token_is_well_formed(tok, len)) {
        return refuse(BP_ERR_AUTH_INVALID_TOKEN, BP_AUTH_FAIL_UNKNOWN, NULL, out, why);
    }
    bp_digest(tok, len, digest);
    c = bp_tables_find_cred(t, digest);
    if (c == NULL || c->kind != BP_CRED_ACCESS_TOKEN) {
        return refuse(BP_ERR_AUTH_INVALID_TOKEN, BP_AUTH_FAIL_UNKNOWN, NULL, out, why);
    }
    if (c->revoked) {
        return refuse(BP_ERR_AUTH_INVALID_TOKEN, BP_AUTH_FAIL_REVOKED, c, out, why);
    }
    /* The table is rebuilt on store changes, not on the clock: expiry is decided here. */
    if (c->expires_at != 0 && now_s >= c->expires_at) {
        return refuse(BP_ERR_AUTH_INVALID_TOKEN, BP_AUTH_FAIL_EXPIRED, c, out, why);
    }
    *out = c;
    return BP_OK;
}

static bp_err
authenticate_key(const struct bp_tables *t, const char *tok, size_t len, int64_t now_s, const struct bp_cred **out,
                 enum bp_auth_failure *why)
{
    unsigned char digest[BP_DIGEST_LEN];
    const struct bp_cred *c;

    if (!bp_apikey_is_well_formed(tok, len)) {
        return refuse(BP_ERR_AUTH_INVALID_KEY, BP_AUTH_FAIL_UNKNOWN, NULL, out, why);
    }
    bp_digest(tok, len, digest);
    c = bp_tables_find_cred(t, digest);
    if (c == NULL || c->kind != BP_CRED_API_KEY) {
        return refuse(BP_ERR_AUTH_INVALID_KEY, BP_AUTH_FAIL_UNKNOWN, NULL, out, why);
    }
    if (c->revoked) {
        return refuse(BP_ERR_AUTH_INVALID_KEY, BP_AUTH_FAIL_REVOKED, c, out, why);
    }
    if (c->expires_at != 0 && now_s >= c->expires_at) {
        return refuse(BP_ERR_AUTH_EXPIRED_KEY, BP_AUTH_FAIL_EXPIRED, c, out, why);
    }
    *out = c;
    return BP_OK;
}

bool
bp_auth_is_credential(const char *text, size_t len)
{
    if (text == NULL) {
        return false;
    }
    if (has_prefix(text, len, BP_ACCESS_TOKEN_PREFIX)) {
        return token_is_well_formed(text, len);
    }
    return bp_apikey_is_well_formed(text, len);
}

/* The credential text itself, wherever it came from. */
static bp_err
authenticate_text(const struct bp_tables *t, const char *tok, size_t tok_len, int64_t now_s,
                  const struct bp_cred **out, enum bp_auth_failure *why)
{
    if (tok_len == 0) {
        return refuse(BP_ERR_AUTH_MISSING, BP_AUTH_FAIL_MISSING, NULL, out, why);
    }
    if (has_prefix(tok, tok_len, BP_REFRESH_TOKEN_PREFIX)) {
        /* A refresh token is for /oauth/token only; it never authorises a request. */
        return refuse(BP_ERR_AUTH_INVALID_TOKEN, BP_AUTH_FAIL_UNKNOWN, NULL, out, why);
    }
    if (has_prefix(tok, tok_len, BP_ACCESS_TOKEN_PREFIX)) {
        return authenticate_token(t, tok, tok_len, now_s, out, why);
    }
    return authenticate_key(t, tok, tok_len, now_s, out, why);
}

/* RFC 6750 §2.1: "Bearer" (case-insensitive scheme), one or more spaces, the token. */
static bp_err
authenticate_bearer(const struct bp_tables *t, const char *value, size_t len, size_t n_headers, int64_t now_s,
                    const struct bp_cred **out, enum bp_auth_failure *why)
{
    size_t i;

    if (n_headers > 1) {
        return refuse(BP_ERR_AUTH_INVALID_KEY, BP_AUTH_FAIL_UNKNOWN, NULL, out, why);
    }
    if (len < 7 || !bp_str_ieq(value, 6, "bearer") || value[6] != ' ') {
        return refuse(BP_ERR_AUTH_INVALID_KEY, BP_AUTH_FAIL_UNKNOWN, NULL, out, why);
    }
    i = 7;
    while (i < len && value[i] == ' ') {
        i++;
    }
    return authenticate_text(t, value + i, len - i, now_s, out, why);
}

bp_err
bp_auth_authenticate(const struct bp_tables *t, const struct bp_auth_headers *h, int64_t now_s,
                     const struct bp_cred **out, enum bp_auth_failure *why)
{
    const struct bp_cred *c = NULL;
    bp_err rc;

    if (h->n_authorization > 0) {
        rc = authenticate_bearer(t, h->authorization, h->authorization_len, h->n_authorization, now_s, &c,
                                 why);
    } else if (h->n_blnk_key == 1 && bp_auth_is_credential(h->blnk_key, h->blnk_key_len)) {
        /* DESIGN §2: the official Blnk SDKs send their key in X-Blnk-Key. Only the exact format of
         * our own credentials counts, so a Core secret sent there is never looked up, and with
         * several such headers none is chosen. */
        rc = authenticate_text(t, h->blnk_key, h->blnk_key_len, now_s, &c, why);
    } else {
        rc = refuse(BP_ERR_AUTH_MISSING, BP_AUTH_FAIL_MISSING, NULL, &c, why);
    }
    if (rc != BP_OK) {
        *out = c;
        return rc;
    }
    bp_auth_note_use(c, now_s);
    *out = c;
    if (why != NULL) {
        *why = BP_AUTH_FAIL_NONE;
    }
    return BP_OK;
}

bp_err
bp_auth_check_scope(const struct bp_cred *c, unsigned needed)
{
    if ((c->scopes & needed) == needed) {
        return BP_OK;
    }
    return BP_ERR_AUTH_SCOPE;
}

const struct bp_instance_list *
bp_cred_instances(const struct bp_cred *c)
{
    return c->restriction != NULL ? c->restriction->instances : NULL;
}

bp_err
bp_auth_check_peer(const struct bp_cred *c, const char *addr)
{
    const struct bp_cred_restriction *r = c->restriction;
    struct bp_ip ip;

    if (r == NULL || !r->allow_restricted) {
        return BP_OK;
    }
    if (addr != NULL && bp_ip_parse(addr, strlen(addr), &ip) && bp_ipnet_list_contains(r->allow, r->n_allow, &ip)) {
        return BP_OK;
    }
    return BP_ERR_AUTH_IP_NOT_ALLOWED;
}

bp_err
bp_auth_check_instance(const struct bp_cred *c, const char *id, size_t len)
{
    const struct bp_instance_list *instances = bp_cred_instances(c);

    if (instances == NULL) {
        return BP_OK;
    }
    for (uint32_t k = 0; k < instances->n; k++) {
        if (bp_str_eq(id, len, instances->ids[k])) {
            return BP_OK;
        }
    }
    return BP_ERR_AUTH_INSTANCE;
}

bp_err
bp_auth_implied_instance(const struct bp_cred *c, const char **out_id, const char **why)
{
    const struct bp_instance_list *instances = bp_cred_instances(c);
    const char *reason;

    if (instances != NULL && instances->n == 1) {
        *out_id = instances->ids[0];
        return BP_OK;
    }
    if (instances == NULL) {
        reason = "instance_id query parameter is required: this credential may use every instance";
    } else if (instances->n == 0) {
        reason = "instance_id query parameter is required: this credential may use no instance";
    } else {
        reason = "instance_id query parameter is required: this credential may use more than one instance";
    }
    if (why != NULL) {
        *why = reason;
    }
    return BP_ERR_MISSING_INSTANCE_ID;
}
