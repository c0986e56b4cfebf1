/* Issuing tokens: generate the text, store only its digest, and build the RFC 6749 §5.1 answer.
 * Lifetimes come from the configuration and never outlast the client (DESIGN §5). */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "auth/auth.h"
#include "config/config.h"
#include "core/log.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

bp_err
bp_oauth__family_id(char out[BP_OAUTH_FAMILY_ID_LEN + 1])
{
    char ulid[BP_ULID_LEN + 1];
    bp_err rc = bp_ulid(ulid);

    if (rc != BP_OK) {
        return rc;
    }
    snprintf(out, BP_OAUTH_FAMILY_ID_LEN + 1, "family_%s", ulid);
    return BP_OK;
}

/* Expiry is stored in whole seconds and checked as "now >= expires_at", so it is rounded up from
 * the issuing millisecond: a token promised for ttl lives at least that long, at most 1 s more.
 * Rounding the issuing second down instead cut up to 1 s off every lifetime. */
static int64_t
expiry(int64_t now_ms, int64_t ttl_ms, const struct bp_client_rec *c)
{
    int64_t at = (now_ms + (ttl_ms > 0 ? ttl_ms : 1000) + 999) / 1000;

    if (c->expires_at != 0 && c->expires_at < at) {
        at = c->expires_at;
    }
    return at;
}

static bp_err
store_one(struct bp_oauth *o, enum bp_token_kind kind, const char *text, const struct bp_client_rec *c,
          const char *family_id, const char *operator_id, const char *scopes, int64_t now, int64_t expires_at)
{
    char ulid[BP_ULID_LEN + 1];
    char id[6 + BP_ULID_LEN + 1];
    struct bp_token_rec rec = {0};
    bp_err rc = bp_ulid(ulid);

    if (rc != BP_OK) {
        return rc;
    }
    snprintf(id, sizeof(id), "token_%s", ulid);
    rec.id = id;
    rec.kind = kind;
    bp_digest(text, strlen(text), rec.digest);
    rec.client_id = c->id;
    rec.family_id = (char *)family_id;
    rec.operator_id = (char *)operator_id;
    rec.scopes = (char *)scopes;
    rec.created_at = now;
    rec.expires_at = expires_at;
    return bp_store_token_insert(o->store, &rec);
}

/* Every issued token makes the request path reload its credential table, so the number of live
 * access tokens is bounded per client: the newest cfg->oauth_max_tokens_per_client stay, older
 * ones are revoked (in the caller's transaction, with the insert). */
static bp_err
cap_live_tokens(struct bp_oauth *o, const struct bp_client_rec *c, int64_t now)
{
    int cap = o->cfg->oauth_max_tokens_per_client > 0 ? o->cfg->oauth_max_tokens_per_client
                                                      : BP_OAUTH_DEFAULT_MAX_TOKENS_PER_CLIENT;
    size_t n = 0;
    bp_err rc = bp_store_token_revoke_oldest_access(o->store, c->id, (size_t)cap, now, &n);

    if (rc == BP_OK && n > 0) {
        BP_INFO("oauth: oldest access tokens revoked (per-client limit)", BP_LSTR("client_id", c->id),
                BP_LINT("tokens_revoked", n), BP_LINT("limit", cap));
    }
    return rc;
}

bp_err
bp_oauth__issue(struct bp_oauth *o, const struct bp_client_rec *c, const char *family_id,
                const char *operator_id, unsigned scope_bits, bool with_refresh, int64_t now_ms,
                struct bp_oauth_issued *out)
{
    char scopes[BP_OAUTH_SCOPE_TEXT_MAX];
    int64_t now = now_ms / 1000;
    int64_t at_exp = expiry(now_ms, o->cfg->oauth_access_token_ttl_ms, c);
    bp_err rc;

    memset(out, 0, sizeof(*out));
    bp_oauth__scope_stored(scope_bits, scopes, sizeof(scopes));
    rc = bp_oauth_token_generate(BP_ACCESS_TOKEN_PREFIX, out->access);
    if (rc == BP_OK) {
        rc = store_one(o, BP_TOKEN_ACCESS, out->access, c, family_id, operator_id, scopes, now, at_exp);
    }
    if (rc == BP_OK) {
        rc = cap_live_tokens(o, c, now);
    }
    if (rc == BP_OK && with_refresh) {
        rc = bp_oauth_token_generate(BP_REFRESH_TOKEN_PREFIX, out->refresh);
        if (rc == BP_OK) {
            rc = store_one(o, BP_TOKEN_REFRESH, out->refresh, c, family_id, operator_id, scopes, now,
                           expiry(now_ms, o->cfg->oauth_refresh_token_ttl_ms, c));
        }
        out->has_refresh = true;
    }
    if (rc != BP_OK) {
        bp_wipe(out, sizeof(*out));
        return rc;
    }
    /* Whole seconds left, rounded down: never more than the token really has, except that it is
     * at least 1. Only a client that itself expires within the second gets a shorter token, and
     * 0 would read as "no expiry" to some client libraries. */
    out->access_expires_in = (at_exp * 1000 - now_ms) / 1000;
    if (out->access_expires_in < 1) {
        out->access_expires_in = 1;
    }
    return BP_OK;
}

void
bp_oauth__token_response(struct bp_oauth_response *out, const struct bp_oauth_issued *t, unsigned scope_bits)
{
    char scope[BP_OAUTH_SCOPE_TEXT_MAX];
    json_t *j = json_object();

    bp_oauth__scope_spaced(scope_bits, scope, sizeof(scope));
    json_object_set_new(j, "access_token", json_string(t->access));
    json_object_set_new(j, "token_type", json_string("Bearer"));
    json_object_set_new(j, "expires_in", json_integer(t->access_expires_in));
    if (t->has_refresh) {
        json_object_set_new(j, "refresh_token", json_string(t->refresh));
    }
    json_object_set_new(j, "scope", json_string(scope));
    bp_oauth__json(out, 200, j);
    out->tables_changed = true;
}
