#ifndef BP_REWRITE_JSCAN_H
#define BP_REWRITE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

/* Internal to the rewrite module (and its tests): a validating RFC 8259 JSON byte scanner that
 * builds no tree and copies nothing. It answers "is this one valid JSON text, and where are its
 * parts", as offsets into the caller's bytes, so that DESIGN §4 edits can be byte insertions. */

/* The deepest nesting Core's decoder accepts: Go encoding/json scanner.go, maxNestingDepth = 10000
 * (a 10001st open bracket is a syntax error there). The scanner keeps its own stack, so this is a
 * Go-parity limit, not a recursion limit: scanning at the maximum depth uses a fixed 1.3 KiB. */
#define BP_JSCAN_MAX_DEPTH 10000

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

/* Scans the first JSON value of doc[0..len), as Go's json.Decoder.Decode reads it (stream.go
 * readValue): JSON whitespace (space, tab, LF, CR) before it is skipped, and nothing after the
 * value is looked at. Strings may hold any bytes >= 0x20, including invalid UTF-8 (Go's decoder
 * accepts and replaces them); escapes must be well formed, but lone \u surrogates are accepted for
 * the same reason. Returns BP_OK with *out describing the value, BP_ERR_INVALID at the first
 * syntax error (or when there is no value), BP_ERR_LIMIT when a container would open deeper than
 * BP_JSCAN_MAX_DEPTH before any syntax error (Go fails at the same byte); *out is written only on
 * BP_OK. doc may be NULL when len is 0. */
bp_err bp_jscan_first(const char *doc, size_t len, struct bp_jscan_value *out);

/* Like bp_jscan_first, but doc must be exactly one JSON value with optional whitespace around it:
 * anything else after the value is BP_ERR_INVALID. */
bp_err bp_jscan_document(const char *doc, size_t len, struct bp_jscan_value *out);

/* Whether doc[off..len) is only JSON whitespace. */
bool bp_jscan_only_ws(const char *doc, size_t len, size_t off);

/* Events of one scan, for a caller that needs to know more than the top value's span in the same
 * pass (the transaction defaults). A value's depth is the number of containers around it: the
 * top value is at depth 0, the members of a top-level object at depth 1. Only values at depth
 * <= max_depth are reported; every callback may be NULL. Callbacks must not fail: a visitor that
 * wants to stop records that in its own state. */
struct bp_jscan_visitor {
    unsigned max_depth;
    void *arg;
    /* A value starts at doc[off] (its first byte: '{', '[', '"', a digit, '-', 't', 'f', 'n'). */
    void (*begin)(void *arg, unsigned depth, enum bp_jscan_type type, size_t off);
    /* The key of the object member whose value (at depth) follows; raw bytes between quotes. */
    void (*key)(void *arg, unsigned depth, struct bp_jscan_span key);
    /* The object or array at depth closed with its bracket at doc[off]. */
    void (*end)(void *arg, unsigned depth, size_t off);
};

/* bp_jscan_first with events. Events arrive in document order; after an error some may have
 * been reported for the part before it. vis may be NULL. */
bp_err bp_jscan_walk(const char *doc, size_t len, const struct bp_jscan_visitor *vis,
                     struct bp_jscan_value *out);

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
