/* POST /oauth/revoke (RFC 7009). The answer is 200 whether or not the token existed, so the
 * endpoint cannot be used to test tokens; only the calling client's own tokens are revoked.
 * A refresh token takes its whole family with it (access tokens included), since the access
 * tokens descend from the grant the client is giving up. */
#include <string.h>

#include "auth/auth.h"
#include "core/log.h"
#include "lib/clock.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

void
bp_oauth__revoke(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    struct bp_oauth_form form = {0};
    struct bp_client_rec c = {0};
    struct bp_token_rec t = {0};
    bp_err rc;

    if (bp_oauth__client_request(o, req, &form, &c, out) != BP_OK) {
        return;
    }
    rc = bp_oauth__form_token(o, &form, &t, out);
    if (rc == BP_ERR_INVALID) {
        goto done;
    }
    if (rc == BP_OK && strcmp(t.client_id, c.id) == 0 && !t.revoked) {
        int64_t now = bp_clock_wall_s();
        if (t.kind == BP_TOKEN_REFRESH) {
            rc = bp_store_token_revoke_family(o->store, t.family_id, now, NULL);
        } else {
            rc = bp_store_token_revoke(o->store, t.id, now);
        }
        if (rc != BP_OK) {
            BP_ERROR("oauth: revocation failed", BP_LSTR("error", bp_store_last_error(o->store)));
            bp_oauth__error(out, 503, "temporarily_unavailable", "the store did not answer");
            goto done;
        }
        BP_INFO("oauth: token revoked", BP_LSTR("client_id", c.id), BP_LSTR("token_id", t.id),
                BP_LSTR("kind", t.kind == BP_TOKEN_REFRESH ? "refresh" : "access"));
        /* The request path drops a revoked token at its next reload; wait for it like an issue. */
        out->tables_changed = true;
    }
    out->status = 200;
    bp_oauth_add_header(out, "Cache-Control", "no-store");
    bp_oauth_add_header(out, "Pragma", "no-cache");
done:
    bp_token_rec_cleanup(&t);
    bp_client_rec_cleanup(&c);
    bp_oauth__form_cleanup(&form);
}
