/* The Idempotency-Key header's syntax, and the scope and fingerprint digests (idem.h). */
#include <string.h>

#include "idem/idem.h"
#include "lib/sha256.h"

bp_err
bp_idem_key_check(const char *v, size_t len, const char **reason)
{
    if (len == 0) {
        *reason = "Idempotency-Key is empty: send 1 to 255 printable ASCII characters, like a UUID";
        return BP_ERR_MALFORMED;
    }
    if (len > BP_IDEM_KEY_MAX) {
        *reason = "Idempotency-Key is longer than 255 characters";
        return BP_ERR_MALFORMED;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7E) {
            *reason = "Idempotency-Key holds a character that is not printable ASCII";
            return BP_ERR_MALFORMED;
        }
    }
    return BP_OK;
}

/* Hashes each part as its length (8 bytes, big-endian) and its bytes. */
#define MAX_PARTS 6

static void
digest_parts(const char *const *parts, const size_t *lens, size_t n, unsigned char out[BP_IDEM_DIGEST_LEN])
{
    unsigned char len_be[MAX_PARTS][8];
    const void *all[2 * MAX_PARTS];
    size_t all_lens[2 * MAX_PARTS];

    for (size_t i = 0; i < n && i < MAX_PARTS; i++) {
        uint64_t len = lens[i];
        for (int b = 7; b >= 0; b--) {
            len_be[i][b] = (unsigned char)(len & 0xFF);
            len >>= 8;
        }
        all[2 * i] = len_be[i];
        all_lens[2 * i] = 8;
        all[2 * i + 1] = parts[i];
        all_lens[2 * i + 1] = lens[i];
    }
    bp_sha256_parts(all, all_lens, 2 * (n < MAX_PARTS ? n : MAX_PARTS), out);
}

void
bp_idem_scope(const char *actor, const char *instance, const char *method, size_t method_len,
              const char *route, const char *key, size_t key_len, unsigned char out[BP_IDEM_DIGEST_LEN])
{
    const char *parts[] = {"scope", actor, instance, method, route, key};
    size_t lens[] = {5, strlen(actor), strlen(instance), method_len, strlen(route), key_len};

    digest_parts(parts, lens, 6, out);
}

void
bp_idem_fingerprint(const char *method, size_t method_len, const char *path, size_t path_len,
                    const char *query, size_t query_len, const char *body, size_t body_len,
                    unsigned char out[BP_IDEM_DIGEST_LEN])
{
    const char *parts[] = {"fingerprint", method, path, query, body};
    size_t lens[] = {11, method_len, path_len, query_len, body_len};

    digest_parts(parts, lens, 5, out);
}
