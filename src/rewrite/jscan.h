#ifndef BP_REWRITE_JSCAN_H
#define BP_REWRITE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

/* Internal to the rewrite module (and its tests): a validating RFC 8259 JSON byte scanner that
 * builds no tree and copies nothing. It answers "is this one valid JSON text, and where are its
 * parts", as offsets into the caller's bytes, so that DESIGN §4 edits can be byte insertions. */

/* Containers nested deeper than this make the document invalid. Go's decoder allows more; a body
 * beyond our limit is simply forwarded without defaults, which DESIGN §4 allows for invalid JSON. */
#define BP_JSCAN_MAX_DEPTH 64

enum bp_jscan_type {
    BP_JSCAN_OBJECT,
    BP_JSCAN_ARRAY,
    BP_JSCAN_STRING,
    BP_JSCAN_NUMBER,
    BP_JSCAN_TRUE,
    BP_JSCAN_FALSE,
    BP_JSCAN_NULL
};

/* doc[off .. off + len). */
struct bp_jscan_span {
    size_t off;
    size_t len;
};

/* A value's bytes: for a string the span includes its quotes, for an object or array its
 * brackets, so doc[span.off] is '{' or '[' and doc[span.off + span.len - 1] is '}' or ']'. */
struct bp_jscan_value {
    enum bp_jscan_type type;
    struct bp_jscan_span span;
};

/* Validates doc[0..len) as exactly one JSON value with optional JSON whitespace (space, tab, LF,
 * CR) around it. Strings may hold any bytes >= 0x20 including invalid UTF-8 (Go's decoder
 * accepts and replaces them); escapes must be well formed, but lone \u surrogates are accepted
 * for the same reason. On BP_OK *out describes the top-level value; otherwise BP_ERR_INVALID
 * (also for nesting deeper than BP_JSCAN_MAX_DEPTH) and *out is untouched. doc may be NULL when
 * len is 0. */
bp_err bp_jscan_document(const char *doc, size_t len, struct bp_jscan_value *out);

/* Offset just after the opening bracket of an object or array value. */
size_t bp_jscan_inner_begin(const struct bp_jscan_value *container);
/* Offset of the closing bracket of an object or array value. */
size_t bp_jscan_close_off(const struct bp_jscan_value *container);

/* Walks the direct members of an object or the elements of an array. Plain data on the caller's
 * stack; nothing to free. */
struct bp_jscan_iter {
    const char *doc;
    enum bp_jscan_type type;
    size_t pos;   /* next byte to look at */
    size_t close; /* offset of the container's closing bracket */
};

/* container must be an object or array value obtained from bp_jscan_document or
 * bp_jscan_iter_next on the same doc (that is, already validated). */
void bp_jscan_iter_init(struct bp_jscan_iter *it, const char *doc, const struct bp_jscan_value *container);
/* Returns false when there are no more members. Otherwise fills *out_value and, for an object,
 * *out_key with the key's raw bytes between its quotes (escapes not decoded). out_key may be
 * NULL; for arrays it is set to {0, 0}. */
bool bp_jscan_iter_next(struct bp_jscan_iter *it, struct bp_jscan_span *out_key,
                        struct bp_jscan_value *out_value);

/* Whether a raw key span (as from bp_jscan_iter_next) names the ASCII field name the way Go's
 * encoding/json matches object keys to struct fields: escapes decoded (\uXXXX with surrogate
 * pairs, lone surrogates and invalid UTF-8 becoming U+FFFD), then compared case-insensitively,
 * with U+017F (long s) equal to 's' and U+212A (Kelvin sign) equal to 'k'. name is NUL-terminated
 * ASCII. */
bool bp_jscan_key_equal_fold(const char *doc, struct bp_jscan_span key, const char *name);

#endif
