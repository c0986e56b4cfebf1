/* Operator passwords: Argon2id (RFC 9106) through Debian's libargon2, with the OWASP parameters
 * (t=2, m=19 MiB, p=1), a 16-byte CSPRNG salt and a 32-byte tag, kept in the standard encoded
 * form so the parameters travel with each hash and can be raised later without a migration.
 *
 * Threads: hashing takes ~20 MiB and tens of milliseconds; callers run it off the loop threads
 * (the CLI, the OAuth threads). Nothing here logs; the password bytes are never copied. */
#include "oauth/oauth.h"

#include <stdint.h>
#include <string.h>

#include <argon2.h>

#include "lib/alloc.h"
#include "lib/rand.h"
#include "lib/secret.h"

#define T_COST 2
#define M_COST_KIB 19456
#define PARALLELISM 1
#define SALT_LEN 16
#define TAG_LEN 32
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
/* Longer than any encoding of our parameters; anything longer is not ours. */
#define ENCODED_MAX 256
#define ENCODED_PREFIX "$argon2id$v=19$"

bp_err
bp_password_hash(const char *password, size_t len, char **out_encoded)
{
    unsigned char salt[SALT_LEN];
    size_t enc_len = argon2_encodedlen(T_COST, M_COST_KIB, PARALLELISM, SALT_LEN, TAG_LEN, Argon2_id);
    char *encoded;
    bp_err rc;
    int arc;

    if (password == NULL || len < PASSWORD_MIN || len > PASSWORD_MAX) {
        return BP_ERR_INVALID;
    }
    rc = bp_rand_bytes(salt, sizeof(salt));
    if (rc != BP_OK) {
        return rc;
    }
    encoded = bp_malloc(enc_len);
    arc = argon2id_hash_encoded(T_COST, M_COST_KIB, PARALLELISM, password, len, salt, sizeof(salt), TAG_LEN,
                                encoded, enc_len);
    if (arc != ARGON2_OK) {
        bp_wipe(encoded, enc_len);
        bp_free(encoded);
        /* The only failure left once the arguments are right is memory for the 19 MiB matrix. */
        return arc == ARGON2_MEMORY_ALLOCATION_ERROR ? BP_ERR_NOMEM : BP_ERR_INVALID;
    }
    *out_encoded = encoded;
    return BP_OK;
}

bp_err
bp_password_verify(const char *encoded, const char *password, size_t len)
{
    size_t enc_len;

    if (encoded == NULL || password == NULL) {
        return BP_ERR_INVALID;
    }
    enc_len = strnlen(encoded, ENCODED_MAX + 1);
    /* Only our own algorithm and version: a stored "$argon2i$" or a hash with absurd costs is
     * refused rather than run. The length bounds are public, so rejecting early leaks nothing. */
    if (enc_len > ENCODED_MAX || strncmp(encoded, ENCODED_PREFIX, strlen(ENCODED_PREFIX)) != 0 ||
        len > PASSWORD_MAX) {
        return BP_ERR_INVALID;
    }
    /* libargon2 compares the tags in constant time. */
    return argon2id_verify(encoded, password, len) == ARGON2_OK ? BP_OK : BP_ERR_INVALID;
}
