#ifndef BP_AUTH_AUTH_H
#define BP_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* Credentials (DESIGN §5): API key format, digests and generation; scope names. The in-memory
 * credential table and authorisation live in auth/credtab.h. */

#define BP_APIKEY_PREFIX "blnk_"
#define BP_APIKEY_HEX_LEN 64
#define BP_APIKEY_LEN (5 + BP_APIKEY_HEX_LEN)
#define BP_APIKEY_LIST_PREFIX_LEN (5 + 8) /* "blnk_" + first 8 hex, shown in listings */
#define BP_DIGEST_LEN 32

/* Writes a fresh key ("blnk_" + 64 lowercase hex from 32 CSPRNG bytes) and NUL into out. */
bp_err bp_apikey_generate(char out[BP_APIKEY_LEN + 1]);
/* True when text is exactly "blnk_" + 64 lowercase hex digits. */
bool bp_apikey_is_well_formed(const char *text, size_t len);
/* SHA-256 of the bytes. */
void bp_digest(const void *text, size_t len, unsigned char out[BP_DIGEST_LEN]);

/* Parses a comma-separated scope list ("proxy:read,proxy:write", "*"), refusing unknown scopes
 * and empty items with BP_ERR_INVALID. *out_bits gets BP_SCOPE_* bits (router.h). */
bp_err bp_scopes_parse(const char *text, unsigned *out_bits);
/* Canonical text of scope bits ("*", "proxy:read", "proxy:read,proxy:write") into out. */
void bp_scopes_format(unsigned bits, char *out, size_t cap);

/* Authentication and authorisation on the request path (DESIGN §2, §5). */
struct bp_tables;
struct bp_cred;

/* Why authentication failed, for metrics and the audit log. */
enum bp_auth_failure {
    BP_AUTH_FAIL_NONE = 0,
    BP_AUTH_FAIL_MISSING,
    BP_AUTH_FAIL_UNKNOWN,   /* not Bearer, malformed, unknown, several headers */
    BP_AUTH_FAIL_EXPIRED,
    BP_AUTH_FAIL_REVOKED,
};

/* Resolves the Authorization header. n_headers is how many Authorization headers the request
 * had (value/len is the first). Returns BP_OK with *out set, or BP_ERR_AUTH_MISSING (none),
 * BP_ERR_AUTH_INVALID_KEY (not Bearer, malformed, unknown, revoked API key, or several headers),
 * BP_ERR_AUTH_EXPIRED_KEY, BP_ERR_AUTH_INVALID_TOKEN (a "blnk_at_" access token that is
 * malformed, unknown, expired or revoked — revoked tokens and tokens of revoked clients are not
 * in the table at all). On failure *out is the credential that was found but refused (expired
 * or revoked; for the audit log's actor) or NULL, and *why (may be NULL) says why.
 * Records the use (last_used_at) on success. No allocation, no I/O. */
bp_err bp_auth_authenticate(const struct bp_tables *t, const char *value, size_t len, size_t n_headers,
                            int64_t now_s, const struct bp_cred **out, enum bp_auth_failure *why);
/* BP_OK when the credential's scopes cover needed (BP_SCOPE_* bits), else BP_ERR_AUTH_SCOPE. */
bp_err bp_auth_check_scope(const struct bp_cred *c, unsigned needed);
/* BP_OK when the credential may use the instance, else BP_ERR_AUTH_INSTANCE. */
bp_err bp_auth_check_instance(const struct bp_cred *c, const char *id, size_t len);

#endif
