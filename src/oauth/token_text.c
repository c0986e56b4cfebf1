/* Text of OAuth secrets: access and refresh tokens, client secrets and authorization codes.
 * Each is a short public prefix (which tells a reader, and the request path, what it is) and
 * 64 lowercase hex digits of 32 CSPRNG bytes. */
#include "oauth/oauth.h"

#include "auth/auth.h"

#include <string.h>

#include "lib/rand.h"
#include "lib/secret.h"

/* The longest prefix the output buffer has room for ("blnk_at_" and its siblings). */
#define PREFIX_MAX (BP_OAUTH_TOKEN_LEN - BP_OAUTH_TOKEN_HEX_LEN)

bp_err
bp_oauth_token_generate(const char *prefix, char out[BP_OAUTH_TOKEN_LEN + 1])
{
    unsigned char raw[BP_OAUTH_TOKEN_HEX_LEN / 2];
    size_t plen = strlen(prefix);
    bp_err rc;

    if (plen > PREFIX_MAX) {
        return BP_ERR_INVALID;
    }
    rc = bp_rand_bytes(raw, sizeof(raw));
    if (rc != BP_OK) {
        return rc;
    }
    memcpy(out, prefix, plen);
    bp_hex_encode(raw, sizeof(raw), out + plen);
    bp_wipe(raw, sizeof(raw));
    return BP_OK;
}

bool
bp_oauth_token_is_well_formed(const char *prefix, const char *text, size_t len)
{
    return bp_auth_token_is_well_formed(prefix, text, len); /* the format is auth's (DESIGN §5) */
}
