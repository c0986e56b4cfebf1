#ifndef BP_LIB_RAND_H
#define BP_LIB_RAND_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* Bytes from the OS CSPRNG (OpenSSL RAND_bytes). Fails only if the CSPRNG does. */
bp_err bp_rand_bytes(void *out, size_t n);
/* Writes 2*nbytes lowercase hex digits of fresh random bytes and a NUL into out[2*nbytes+1]. */
bp_err bp_rand_hex(char *out, size_t nbytes);
/* A time-ordered 26-character ULID (Crockford base32, 48-bit ms time + 80 random bits). */
#define BP_ULID_LEN 26
bp_err bp_ulid(char out[BP_ULID_LEN + 1]);
/* Random bytes for identifiers (request ids, references), never for secrets: the same CSPRNG,
 * drawn in batches into a per-thread buffer, so that an id costs no call into OpenSSL (whose
 * every call checks for a fork with getpid(2)). A forked child starts with a fresh buffer. */
bp_err bp_rand_id_bytes(void *out, size_t n);
/* A UUIDv7 in its 36-character text form, from bp_rand_id_bytes: an identifier, not a secret. */
#define BP_UUID_LEN 36
bp_err bp_uuid7(char out[BP_UUID_LEN + 1]);
/* A ULID like bp_ulid from bp_rand_id_bytes: for identifiers made many at a time (audit record
 * ids), never for anything secret. */
bp_err bp_ulid_id(char out[BP_ULID_LEN + 1]);
/* The UUIDv7 text for a Unix time in milliseconds and 10 random bytes (of which 74 bits are
 * used): for callers that need many and draw the random bytes in one go. Writes BP_UUID_LEN
 * characters and no NUL. */
#define BP_UUID7_RANDOM_BYTES 10
void bp_uuid7_format(uint64_t unix_ms, const unsigned char rnd[BP_UUID7_RANDOM_BYTES], char *out);
/* Lowercase hex encoding of n bytes into out[2n+1]. */
void bp_hex_encode(const void *in, size_t n, char *out);

#endif
