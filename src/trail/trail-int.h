#ifndef BP_TRAIL_TRAIL_INT_H
#define BP_TRAIL_TRAIL_INT_H

/* Inside the trail module: key.c's signing, shared by checkpoint.c and verify.c. */
#include <stdbool.h>

#include "trail/trail.h"

#define BP_TRAIL_SIG_HEX 129 /* an Ed25519 signature in hex and its NUL */

const char *bp_trail__key_id(const struct bp_trail_key *k);
/* Signs text (the canonical checkpoint text) into out; false when k holds no private key. */
bool bp_trail__sign(const struct bp_trail_key *k, const char *text, char out[BP_TRAIL_SIG_HEX]);
/* True when sig_hex is k's signature of text. */
bool bp_trail__check(const struct bp_trail_key *k, const char *text, const char *sig_hex);

#endif
