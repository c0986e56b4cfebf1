/* An operator's sign-in: the authorize page's and the admin API's. Attempts are throttled per
 * name and per peer (throttle.c) before the slow verification, and an unknown name is verified
 * against a dummy hash, so neither speed nor answer tells which names exist. */
#include <string.h>

#include "core/log.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "oauth/oauth-int.h"
#include "oauth/oauth.h"
#include "store/store.h"

struct bp_store *
bp_oauth_store(struct bp_oauth *o)
{
    return bp_oauth__ready(o) == BP_OK ? o->store : NULL;
}

/* The thread's dummy hash, made at its first sign-in rather than with the thread: Argon2id
 * costs 19 MiB and tens of milliseconds, and most threads never verify a password. It is made
 * before the name is looked up, so that first sign-in is as slow for a known name as for an
 * unknown one. */
static bp_err
dummy_ready(struct bp_oauth *o)
{
    char dummy[65];
    bp_err rc;

    if (o->dummy_hash != NULL) {
        return BP_OK;
    }
    rc = bp_rand_hex(dummy, 32);
    if (rc == BP_OK) {
        rc = bp_password_hash(dummy, 64, &o->dummy_hash);
    }
    bp_wipe(dummy, sizeof(dummy));
    if (rc != BP_OK) {
        BP_ERROR("oauth: cannot prepare the sign-in check", BP_LSTR("error", bp_err_str(rc)));
    }
    return rc;
}

enum bp_oauth_role
bp_oauth_role_parse(const char *role)
{
    static const struct {
        const char *name;
        enum bp_oauth_role role;
    } roles[] = {
        {"admin", BP_OAUTH_ROLE_ADMIN},
        {"auditor", BP_OAUTH_ROLE_AUDITOR},
        {"approver", BP_OAUTH_ROLE_APPROVER},
    };

    for (size_t i = 0; role != NULL && i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(role, roles[i].name) == 0) {
            return roles[i].role;
        }
    }
    return BP_OAUTH_ROLE_UNKNOWN;
}

bool
bp_oauth_may_approve(const char *role)
{
    enum bp_oauth_role r = bp_oauth_role_parse(role);

    return r == BP_OAUTH_ROLE_ADMIN || r == BP_OAUTH_ROLE_APPROVER;
}

bp_err
bp_oauth_signin(struct bp_oauth *o, const char *name, const char *password, const char *peer,
                struct bp_operator_rec *out)
{
    int64_t now_ms = bp_clock_mono_ms();
    bp_err rc;
    bool found;
    bool ok;

    /* Counted before the verification, in the same locked step as the check: parallel
     * attempts cannot slip past the limit. */
    if (!bp_oauth__throttle_reserve(name, peer, now_ms)) {
        BP_WARN("oauth: sign-in throttled", BP_LSTR("peer", peer));
        return BP_ERR_LIMIT;
    }
    /* As a store that cannot be read, below: nothing verified, nothing counted. */
    if (bp_oauth__ready(o) != BP_OK) {
        bp_oauth__throttle_unreserve(name, peer, now_ms);
        return BP_ERR_STORE_DOWN;
    }
    rc = dummy_ready(o);
    if (rc != BP_OK) {
        bp_oauth__throttle_unreserve(name, peer, now_ms);
        return rc;
    }
    rc = bp_store_operator_get_by_name(o->store, name, out);
    if (rc != BP_OK && rc != BP_ERR_NOT_FOUND) {
        /* Nothing was verified, so nothing counts against the name: an outage must not lock
         * everyone out once it ends. The answer (503) tells nothing about names either. */
        bp_oauth__throttle_unreserve(name, peer, now_ms);
        return rc;
    }
    found = rc == BP_OK;
    ok = bp_password_verify(found ? out->password_hash : o->dummy_hash, password, strlen(password)) == BP_OK;
    if (!found || !ok || out->disabled) {
        if (found) {
            bp_operator_rec_cleanup(out);
        }
        /* The name is not logged: people type passwords into it by mistake. */
        BP_WARN("oauth: sign-in failed", BP_LSTR("peer", peer));
        return BP_ERR_AUTH_INVALID_KEY;
    }
    bp_oauth__throttle_success(name, peer, now_ms);
    return BP_OK;
}
