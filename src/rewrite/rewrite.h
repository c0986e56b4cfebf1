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

/* Applies the defaults to body[0..len). When the body is a valid JSON object (SINGLE) or a valid
 * JSON object whose top-level "transactions" member is an array (BULK, each object element gets
 * the defaults; non-object elements are left alone), writes the rewritten body to out (which
 * must be empty; bounded by out->max) and sets *out_changed = true if anything was inserted.
 * Otherwise (not an object, invalid JSON, nothing to add) sets *out_changed = false and leaves out
 * empty: the caller forwards the original bytes. Returns BP_ERR_LIMIT if out->max is too small
 * (or the CSPRNG's error if a reference cannot be generated), leaving out empty and *out_changed
 * unwritten; BP_OK otherwise. Generated references are "ref_" + a UUIDv7.
 * Key detection follows Go encoding/json: escapes decoded, case-insensitive (with the Kelvin sign
 * and long s folding), only top-level keys count, and a key present with any value (including
 * null) counts. Insertions go right after each object's '{'; every byte of the body is kept, in
 * order. */
bp_err bp_txdefaults_apply(enum bp_txdefaults_kind kind, const char *body, size_t len,
                           struct bp_buf *out, bool *out_changed);

/* Finds, in a JSON object doc[0..len), the first top-level member named exactly one of keys[]
 * (tried in order) whose value is a string without escapes or a number, and returns its bytes
 * (without quotes) as doc[*out_off .. *out_off + *out_len). False when doc is not a valid JSON
 * object or no such member exists. Reads only. */
bool bp_json_find_id(const char *doc, size_t len, const char *const *keys, size_t n_keys, size_t *out_off,
                     size_t *out_len);

#endif
