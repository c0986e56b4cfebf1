/* The "token" parameter of /oauth/revoke (RFC 7009 §2.1) and /oauth/introspect (RFC 7662 §2.1):
 * the token text is never stored, only its digest, so the lookup goes by digest. */
#include <string.h>

#include "auth/auth.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

bp_err
bp_oauth__form_token(struct bp_oauth *o, const struct bp_oauth_form *form, struct bp_token_rec *out,
                     struct bp_oauth_response *resp)
{
    const char *text = bp_oauth__form_get(form, "token");
    unsigned char digest[BP_DIGEST_LEN];
    bp_err rc;

    if (text == NULL) {
        bp_oauth__error(resp, 400, "invalid_request", "token is required");
        return BP_ERR_INVALID;
    }
    bp_digest(text, strlen(text), digest);
    rc = bp_store_token_get_by_digest(o->store, digest, out);
    if (rc != BP_OK && rc != BP_ERR_NOT_FOUND) {
        bp_oauth__error(resp, 503, "temporarily_unavailable", "the store did not answer");
        return BP_ERR_INVALID;
    }
    return rc;
}
