/* SHA-256 with a fetched algorithm and a context per thread (sha256.h). */
#include "lib/sha256.h"

#include <pthread.h>

#include <openssl/evp.h>

#include "lib/bug.h"

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
bp_sha256_parts(const void *const *parts, const size_t *lens, size_t n, unsigned char out[BP_SHA256_LEN])
{
    EVP_MD_CTX *ctx;
    unsigned int got = 0;

    pthread_once(&sha256_once, sha256_init);
    ctx = pthread_getspecific(ctx_key);
    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
        BP_BUG_ON(ctx == NULL || pthread_setspecific(ctx_key, ctx) != 0);
    }
    /* A digest that cannot be computed would let a wrong key through or lock every key out. */
    BP_BUG_ON(EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1);
    for (size_t i = 0; i < n; i++) {
        BP_BUG_ON(lens[i] > 0 && EVP_DigestUpdate(ctx, parts[i], lens[i]) != 1);
    }
    BP_BUG_ON(EVP_DigestFinal_ex(ctx, out, &got) != 1 || got != BP_SHA256_LEN);
}

void
bp_sha256(const void *data, size_t len, unsigned char out[BP_SHA256_LEN])
{
    bp_sha256_parts(&data, &len, 1, out);
}
