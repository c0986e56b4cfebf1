#ifndef BP_REWRITE_REWRITE_H
#define BP_REWRITE_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"

/* The JSON bodies that pass through the proxy: DESIGN §4 transaction defaults, applied by
 * inserting bytes into the body as sent, and reading (never changing) the id of what Core created,
 * for the audit log. Nothing here re-serialises a body. */

enum bp_txdefaults_kind { BP_TXDEFAULTS_SINGLE, BP_TXDEFAULTS_BULK };

/* Applies the defaults to body[0..len) as Core's decoder (Go's json.Decoder.Decode) would read
 * it. SINGLE: the top-level object gets them; BULK: each object element of the top-level
 * "transactions" array does (non-object elements are left alone).
 * - BP_OK: when *out_changed, out (which must be empty) holds the rewritten body; otherwise out
 *   is left empty and the caller forwards the original bytes (not an object, not valid JSON, or
 *   nothing to add: Core answers or takes it as sent).
 * - BP_ERR_MALFORMED (refuse with 400): a body Core would accept but that cannot be defaulted
 *   safely: bytes other than whitespace after the first JSON value when that value is an object
 *   (Core reads only the first value), nesting deeper than BP_JSCAN_MAX_DEPTH (Core refuses it
 *   too), or, for BULK, "transactions" more than once (Go would merge the arrays).
 * - BP_ERR_PAYLOAD_TOO_LARGE (refuse with 413): the rewritten body would be longer than
 *   out->max, which the caller sets to the route's body limit.
 * On either refusal *out_reason is fixed text for error_detail.message. Any other error is the
 * CSPRNG's. On every error out is left empty and *out_changed unwritten.
 * Generated references are "ref_" + a UUIDv7. Key detection follows Go encoding/json: escapes
 * decoded, case-insensitive (with the Kelvin sign and long s folding), only top-level keys
 * count, and a key present with any value (including null) counts. Insertions go right after
 * each object's '{'; every byte of the body is kept, in order. Cost: two linear passes, no
 * recursion, memory for the output only. */
bp_err bp_txdefaults_apply(enum bp_txdefaults_kind kind, const char *body, size_t len, struct bp_buf *out,
                           bool *out_changed, const char **out_reason);
/* The same, with the references derived from seed instead of drawn at random (DESIGN §4b: an
 * Idempotency-Key request sent again must carry the same references, so that Core dedupes it):
 * the n-th reference added is "ref_" + a UUIDv8 made of SHA-256(seed, n). seed NULL: random. */
#define BP_TXDEFAULTS_SEED_LEN 32
bp_err bp_txdefaults_apply_seeded(enum bp_txdefaults_kind kind, const char *body, size_t len,
                                  const unsigned char *seed, struct bp_buf *out, bool *out_changed,
                                  const char **out_reason);

/* Finds, in a JSON object doc[0..len), the first top-level member named exactly one of keys[]
 * (tried in order) whose value is a string without escapes or a number, and returns its bytes
 * (without quotes) as doc[*out_off .. *out_off + *out_len). False when doc is not a valid JSON
 * object or no such member exists. Reads only. */
bool bp_json_find_id(const char *doc, size_t len, const char *const *keys, size_t n_keys, size_t *out_off,
                     size_t *out_len);

/* The same for doc[0..len), the first bytes of a longer answer (a streamed one, whose whole the
 * proxy never holds): the top value must start as an object, and a member counts once the scan
 * went past it (the next member's key, or the object's end, is in the prefix) with no syntax
 * error before; what follows the prefix is not looked at. At most BP_JSON_FIND_ID_MAX_KEYS
 * keys. */
#define BP_JSON_FIND_ID_MAX_KEYS 8
bool bp_json_find_id_prefix(const char *doc, size_t len, const char *const *keys, size_t n_keys,
                            size_t *out_off, size_t *out_len);

#endif
