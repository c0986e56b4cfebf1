/* PKCE (RFC 7636) with the S256 method only: "plain" would hand the verifier to anyone who sees
 * the authorization request, so it is refused at /oauth/authorize (RFC 9700 §2.1.1). */
#include <string.h>

#include <openssl/sha.h>

#include "lib/secret.h"
#include "oauth/oauth-int.h"

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

bool
bp_oauth__pkce_verifier_is_valid(const char *v, size_t len)
{
    if (len < 43 || len > 128) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_unreserved((unsigned char)v[i])) {
            return false;
        }
    }
    return true;
}

static bool
is_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool
bp_oauth__pkce_challenge_is_valid(const char *c, size_t len)
{
    static const char last[] = "AEIMQUYcgkosw048"; /* 43rd char of a 32-byte value: low 2 bits zero */

    if (len != BP_PKCE_CHALLENGE_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_b64url((unsigned char)c[i])) {
            return false;
        }
    }
    return memchr(last, c[len - 1], sizeof(last) - 1) != NULL;
}

void
bp_oauth__pkce_s256(const char *verifier, size_t len, char out[BP_PKCE_CHALLENGE_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char d[SHA256_DIGEST_LENGTH];
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    SHA256((const unsigned char *)verifier, len, d);
    for (size_t i = 0; i < sizeof(d); i++) {
        acc = (acc << 8) | d[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    }
    out[o] = '\0';
}

bool
bp_oauth__pkce_verify(const char *verifier, size_t len, const char *challenge)
{
    char computed[BP_PKCE_CHALLENGE_LEN + 1];

    if (!bp_oauth__pkce_verifier_is_valid(verifier, len) || challenge == NULL ||
        strlen(challenge) != BP_PKCE_CHALLENGE_LEN) {
        return false;
    }
    bp_oauth__pkce_s256(verifier, len, computed);
    return bp_ct_equal(computed, challenge, BP_PKCE_CHALLENGE_LEN);
}
