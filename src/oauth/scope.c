/* Scope lists in their two spellings: RFC 6749 §3.3 space-separated in requests and responses,
 * the store's canonical comma-separated list (auth/auth.h) everywhere else. */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "oauth/oauth-int.h"

bp_err
bp_oauth__scope_parse(const char *text, unsigned *out_bits)
{
    char tmp[BP_OAUTH_FORM_MAX_VALUE + 1];
    size_t len = strlen(text);
    unsigned bits = 0;

    if (len == 0 || len > BP_OAUTH_FORM_MAX_VALUE) {
        return BP_ERR_INVALID;
    }
    /* RFC 6749 §3.3: scope-tokens separated by single spaces. Reuse the canonical parser, which
     * refuses empty items, by turning the spaces into commas; a literal comma is refused first so
     * "proxy:read,proxy:write" is not accepted as one token list by accident. */
    if (memchr(text, ',', len) != NULL) {
        return BP_ERR_INVALID;
    }
    memcpy(tmp, text, len + 1);
    for (size_t i = 0; i < len; i++) {
        if (tmp[i] == ' ') {
            tmp[i] = ',';
        }
    }
    if (bp_scopes_parse(tmp, &bits) != BP_OK) {
        return BP_ERR_INVALID;
    }
    *out_bits = bits;
    return BP_OK;
}

bp_err
bp_oauth__scope_parse_stored(const char *text, unsigned *out_bits)
{
    if (text == NULL) {
        return BP_ERR_INVALID;
    }
    return bp_scopes_parse(text, out_bits);
}

bool
bp_oauth__scope_within(unsigned want, unsigned have)
{
    return (want & ~have) == 0;
}

void
bp_oauth__scope_stored(unsigned bits, char *out, size_t cap)
{
    bp_scopes_format(bits, out, cap);
}

void
bp_oauth__scope_spaced(unsigned bits, char *out, size_t cap)
{
    bp_scopes_format(bits, out, cap);
    for (char *p = out; *p != '\0'; p++) {
        if (*p == ',') {
            *p = ' ';
        }
    }
}
