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

#endif
