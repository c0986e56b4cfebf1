#ifndef BP_AUTH_AUTH_H
#define BP_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* Credentials (DESIGN §5): API key format, digests and generation; scope names; and, below, the
 * request path's authentication (which header carries the credential, and what it is) and
 * authorisation against the in-memory tables (tables/tables.h). */

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

/* True when text has the exact format of a blnkproxy credential that authorises requests: an
 * API key ("blnk_" + 64 lowercase hex) or an OAuth access token ("blnk_at_" + 64 lowercase hex).
 * A refresh token, a client secret, a Core secret or anything else is not one. */
bool bp_auth_is_credential(const char *text, size_t len);

/* The headers of a request that may carry its credential (DESIGN §2): for each name, the value
 * of the first such header (NULL when there is none) and how many there were. */
struct bp_auth_headers {
    const char *authorization;
    size_t authorization_len;
    size_t n_authorization;
    const char *blnk_key; /* X-Blnk-Key, as the official Blnk SDKs send their key */
    size_t blnk_key_len;
    size_t n_blnk_key;
};

/* Resolves the request's credential (DESIGN §2). Authorization wins when present: "Bearer" and
 * the credential, exactly one such header. Without Authorization, a single X-Blnk-Key whose value
 * is a credential (bp_auth_is_credential) is taken as one, exactly as if it came as Bearer; any
 * other X-Blnk-Key is not a credential (the request has none). Either way the caller never
 * forwards X-Blnk-Key. Returns BP_OK with *out set, or BP_ERR_AUTH_MISSING (none),
 * BP_ERR_AUTH_INVALID_KEY (not Bearer, malformed, unknown, revoked API key, or several
 * Authorization headers), BP_ERR_AUTH_EXPIRED_KEY, BP_ERR_AUTH_INVALID_TOKEN (a "blnk_at_"
 * access token that is malformed, unknown, expired or revoked — revoked tokens and tokens of
 * revoked clients are not in the table at all — or a refresh token as Bearer). On failure *out
 * is the credential that was found but refused (expired or revoked; for the audit log's actor)
 * or NULL, and *why (may be NULL) says why. Records the use (last_used_at) on success. No
 * allocation, no I/O. */
bp_err bp_auth_authenticate(const struct bp_tables *t, const struct bp_auth_headers *h, int64_t now_s,
                            const struct bp_cred **out, enum bp_auth_failure *why);
/* BP_OK when the credential's scopes cover needed (BP_SCOPE_* bits), else BP_ERR_AUTH_SCOPE. */
bp_err bp_auth_check_scope(const struct bp_cred *c, unsigned needed);
/* BP_OK when the credential may use the instance, else BP_ERR_AUTH_INSTANCE. */
bp_err bp_auth_check_instance(const struct bp_cred *c, const char *id, size_t len);
/* DESIGN §2: the instance of a request without instance_id. BP_OK with *out_id (the credential's,
 * NUL-terminated, valid as long as the credential) when the credential is restricted to exactly
 * one instance; else BP_ERR_MISSING_INSTANCE_ID and, when why is not NULL, *why is a fixed
 * reason for the client saying why none is implied. */
bp_err bp_auth_implied_instance(const struct bp_cred *c, const char **out_id, const char **why);

#endif
