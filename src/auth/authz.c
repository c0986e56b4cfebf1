/* Request-path credential checks. Runs on loop threads against a pinned tables snapshot: the
 * presented key is hashed and looked up in memory; the store is never touched here. */
#include "auth/auth.h"

#include <string.h>

#include "lib/str.h"
#include "router/router.h"
#include "tables/tables.h"

#define OAUTH_ACCESS_PREFIX "blnk_at_"
#define OAUTH_REFRESH_PREFIX "blnk_rt_"

static bool
has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

bp_err
bp_auth_authenticate(const struct bp_tables *t, const char *value, size_t len, size_t n_headers,
                     int64_t now_s, const struct bp_cred **out, enum bp_auth_failure *why)
{
    const struct bp_cred *c;
    unsigned char digest[BP_DIGEST_LEN];
    const char *tok;
    size_t tok_len;
    size_t i = 0;

    if (n_headers == 0) {
        return BP_ERR_AUTH_MISSING;
    }
    if (n_headers > 1) {
        return BP_ERR_AUTH_INVALID_KEY;
    }
    /* RFC 6750 §2.1: "Bearer" (case-insensitive scheme), one or more spaces, the token. */
    if (len < 7 || !bp_str_ieq(value, 6, "bearer") || value[6] != ' ') {
        return BP_ERR_AUTH_INVALID_KEY;
    }
    i = 7;
    while (i < len && value[i] == ' ') {
        i++;
    }
    tok = value + i;
    tok_len = len - i;
    if (tok_len == 0) {
        return BP_ERR_AUTH_MISSING;
    }
    if (has_prefix(tok, tok_len, OAUTH_ACCESS_PREFIX) || has_prefix(tok, tok_len, OAUTH_REFRESH_PREFIX)) {
        /* OAuth tokens are issued by a later module; until then none is valid. */
        return BP_ERR_AUTH_INVALID_TOKEN;
    }
    if (!bp_apikey_is_well_formed(tok, tok_len)) {
        return BP_ERR_AUTH_INVALID_KEY;
    }
    bp_digest(tok, tok_len, digest);
    c = bp_tables_find_cred(t, digest);
    if (c == NULL || c->revoked) {
        return BP_ERR_AUTH_INVALID_KEY;
    }
    if (c->expires_at != 0 && now_s >= c->expires_at) {
        return BP_ERR_AUTH_EXPIRED_KEY;
    }
    /* The tables are shared read-only; used_at is the one field meant to be written, relaxed,
     * and flushed to the store in batches by the watcher. */
    atomic_store_explicit(&((struct bp_cred *)c)->used_at, now_s, memory_order_relaxed);
    *out = c;
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

bp_err
bp_auth_check_instance(const struct bp_cred *c, const char *id, size_t len)
{
    if (c->instances == NULL) {
        return BP_OK;
    }
    for (size_t k = 0; k < c->n_instances; k++) {
        if (bp_str_eq(id, len, c->instances[k])) {
            return BP_OK;
        }
    }
    return BP_ERR_AUTH_INSTANCE;
}
