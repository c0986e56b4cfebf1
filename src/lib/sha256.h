#ifndef BP_LIB_SHA256_H
#define BP_LIB_SHA256_H

#include <stddef.h>

/* SHA-256 (OpenSSL), for digests that run per request: the algorithm is fetched once per process
 * and each thread keeps its own context (OpenSSL 3's one-shot SHA256() looks the algorithm up
 * and makes a context on every call). Any thread. */

#define BP_SHA256_LEN 32

/* The digest of the concatenation of parts[i][0..lens[i]) (a part may be NULL when its length
 * is 0). */
void bp_sha256_parts(const void *const *parts, const size_t *lens, size_t n,
                     unsigned char out[BP_SHA256_LEN]);
void bp_sha256(const void *data, size_t len, unsigned char out[BP_SHA256_LEN]);

#endif
