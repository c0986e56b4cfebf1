#include "lib/secret.h"

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lib/alloc.h"

struct bp_secret {
    size_t len;
    char bytes[]; /* NUL-terminated for libraries that want a C string header value */
};

struct bp_secret *
bp_secret_new(const void *bytes, size_t len)
{
    struct bp_secret *s = bp_malloc(sizeof(*s) + len + 1);
    s->len = len;
    memcpy(s->bytes, bytes, len);
    s->bytes[len] = '\0';
    return s;
}

void
bp_secret_free(struct bp_secret *s)
{
    if (s == NULL) {
        return;
    }
    OPENSSL_cleanse(s->bytes, s->len);
    bp_free(s);
}

const char *
bp_secret_bytes(const struct bp_secret *s, size_t *out_len)
{
    if (out_len != NULL) {
        *out_len = s->len;
    }
    return s->bytes;
}

bool
bp_secret_equal(const struct bp_secret *s, const void *bytes, size_t len)
{
    if (s->len != len) {
        return false;
    }
    return CRYPTO_memcmp(s->bytes, bytes, len) == 0;
}

bool
bp_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void
bp_wipe(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}

/* The size sits in a header before the block, aligned as malloc aligns. */
union wiped_hdr {
    size_t n;
    max_align_t align;
};

void *
bp_malloc_wiped(size_t n)
{
    union wiped_hdr *h;

    if (n > SIZE_MAX - sizeof(*h)) {
        return NULL; /* jansson reports it */
    }
    h = bp_malloc(sizeof(*h) + n);
    h->n = n;
    return h + 1;
}

void
bp_free_wiped(void *p)
{
    union wiped_hdr *h;

    if (p == NULL) {
        return;
    }
    h = (union wiped_hdr *)p - 1;
    bp_wipe(p, h->n);
    bp_free(h);
}
