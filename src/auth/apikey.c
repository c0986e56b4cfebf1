#include "auth/auth.h"

#include <stdio.h>
#include <string.h>

#include "lib/bug.h"

#include "lib/rand.h"
#include "lib/secret.h"
#include "lib/sha256.h"

bp_err
bp_apikey_generate(char out[BP_APIKEY_LEN + 1])
{
    unsigned char raw[32];
    bp_err rc = bp_rand_bytes(raw, sizeof(raw));

    if (rc != BP_OK) {
        return rc;
    }
    memcpy(out, BP_APIKEY_PREFIX, 5);
    bp_hex_encode(raw, sizeof(raw), out + 5);
    bp_wipe(raw, sizeof(raw));
    return BP_OK;
}

bool
bp_apikey_is_well_formed(const char *text, size_t len)
{
    if (len != BP_APIKEY_LEN || memcmp(text, BP_APIKEY_PREFIX, 5) != 0) {
        return false;
    }
    for (size_t i = 5; i < len; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* SHA-256 runs once per request (the presented key's digest): lib/sha256.c keeps the
 * algorithm and a context per thread. */
void
bp_digest(const void *text, size_t len, unsigned char out[BP_DIGEST_LEN])
{
    bp_sha256(text, len, out);
}

bool
bp_auth_token_is_well_formed(const char *prefix, const char *text, size_t len)
{
    size_t plen = strlen(prefix);

    /* The prefix is public; only the shape of the rest is checked, never its value. */
    if (text == NULL || len != plen + BP_OAUTH_TOKEN_HEX_LEN || memcmp(text, prefix, plen) != 0) {
        return false;
    }
    for (size_t i = plen; i < len; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    return true;
}

const char *
bp_scope_needed_name(unsigned needed)
{
    return (needed & BP_SCOPE_WRITE) ? "proxy:write" : "proxy:read";
}

bp_err
bp_scopes_parse(const char *text, unsigned *out_bits)
{
    unsigned bits = 0;
    const char *p = text;

    if (*p == '\0') {
        return BP_ERR_INVALID;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 1 && p[0] == '*') {
            bits |= BP_SCOPE_ALL;
        } else if (n == 10 && memcmp(p, "proxy:read", 10) == 0) {
            bits |= BP_SCOPE_READ;
        } else if (n == 11 && memcmp(p, "proxy:write", 11) == 0) {
            bits |= BP_SCOPE_WRITE;
        } else {
            return BP_ERR_INVALID;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    *out_bits = bits;
    return BP_OK;
}

void
bp_scopes_format(unsigned bits, char *out, size_t cap)
{
    if ((bits & BP_SCOPE_ALL) == BP_SCOPE_ALL) {
        snprintf(out, cap, "*");
    } else if ((bits & BP_SCOPE_READ) && (bits & BP_SCOPE_WRITE)) {
        snprintf(out, cap, "proxy:read,proxy:write");
    } else if (bits & BP_SCOPE_READ) {
        snprintf(out, cap, "proxy:read");
    } else if (bits & BP_SCOPE_WRITE) {
        snprintf(out, cap, "proxy:write");
    } else {
        snprintf(out, cap, "%s", "");
    }
}
