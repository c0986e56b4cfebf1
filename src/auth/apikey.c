#include "auth/auth.h"

#include <stdio.h>
#include <string.h>

#include <pthread.h>

#include <openssl/evp.h>

#include "lib/bug.h"

#include "lib/rand.h"
#include "lib/secret.h"

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

/* SHA-256 runs once per request (the presented key's digest). OpenSSL 3's one-shot SHA256()
 * looks the algorithm up in its provider store on every call and makes a context for it; so
 * the algorithm is fetched once per process and each thread keeps its own context, freed when
 * the thread ends. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;

static void
ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void
sha256_init(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    BP_BUG_ON(sha256_md == NULL || pthread_key_create(&ctx_key, ctx_free) != 0);
}

void
bp_digest(const void *text, size_t len, unsigned char out[BP_DIGEST_LEN])
{
    EVP_MD_CTX *ctx;
    unsigned int n = 0;

    pthread_once(&sha256_once, sha256_init);
    ctx = pthread_getspecific(ctx_key);
    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
        BP_BUG_ON(ctx == NULL || pthread_setspecific(ctx_key, ctx) != 0);
    }
    /* A digest that cannot be computed would let a wrong key through or lock every key out. */
    BP_BUG_ON(EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1 || EVP_DigestUpdate(ctx, text, len) != 1 ||
              EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != BP_DIGEST_LEN);
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
