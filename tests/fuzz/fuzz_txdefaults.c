/* Fuzzes DESIGN §4 transaction defaults and the JSON scanner under them, against a model of what
 * Core's decoder makes of the same bytes (issue 11 item 3).
 *
 * The oracle (go_decode below) is written from Go's encoding/json, not from jscan, and calls no
 * Go. Core binds a transaction with gin's ShouldBindJSON, which is
 * json.NewDecoder(body).Decode(&obj) and nothing more (gin binding/json.go decodeJSON). The rules
 * it encodes, from golang/go src/encoding/json:
 * - stream.go Decoder.Decode / readValue: leading whitespace (isSpace: ' ', '\t', '\r', '\n') is
 *   skipped; the first value is read and scanning stops at its last byte (for '}' / ']' it
 *   "invents a space byte" instead of reading on); what follows is never looked at, and gin does
 *   not check for EOF.
 * - scanner.go: the grammar (stateBeginValue … stateE0): numbers -?(0|[1-9][0-9]*)(.[0-9]+)?
 *   ([eE][+-]?[0-9]+)?; literals true/false/null; in strings bytes < 0x20 are errors, escapes are
 *   \" \\ \/ \b \f \n \r \t \uXXXX (four hex digits, any value); bytes >= 0x80 are not checked.
 *   pushParseState: a container that makes len(parseState) > maxNestingDepth (10000) is an
 *   error at that bracket. Errors are found at the first offending byte, in order.
 * - decode.go unquoteBytes: invalid UTF-8 and unpaired surrogates become U+FFFD (no error);
 *   a \uD800-\uDBFF escape followed by a \uDC00-\uDFFF escape is one rune.
 * - decode.go object(): a key selects a struct field by byExactName, else byFoldedName
 *   (fold.go foldName: ASCII a-z upper-cased, other runes to the smallest rune of their
 *   unicode.SimpleFold orbit, so U+017F long s is 'S' and U+212A Kelvin sign is 'K'; no other
 *   non-ASCII rune folds onto an ASCII letter). Blnk's RecordTransaction has one field per name,
 *   so the exact-match preference never changes the field. A present key counts whatever its
 *   value (DESIGN §4; a null leaves the field zero, which the contract leaves alone on purpose).
 *   "\u0000" in a key is a NUL rune and matches nothing.
 * - decode.go array(): decoding into a slice reuses v.Index(i) for i < len, and SetLen(i+1)
 *   inside the capacity re-exposes the element a longer earlier array left there, so a second
 *   "transactions" array merges into the first one's elements; null sets the slice to nil and
 *   an element to a nil pointer; an empty array makes an empty slice.
 * - Decoding a non-object top-level value into a struct is an UnmarshalTypeError (Core answers
 *   400), except null, which leaves the struct untouched: Core then refuses the empty
 *   transaction in its own validation, and DESIGN §4 forwards non-objects as sent.
 *
 * Checked for every input, as SINGLE and as BULK:
 * - jscan's verdict on the first value (valid / syntax error / too deep, and where it ends) is
 *   exactly the model's;
 * - the outcome follows the model: syntax error → forwarded as sent; too deep → 400; a first
 *   value that is not an object → forwarded as sent; an object with non-whitespace after it →
 *   400; BULK with "transactions" twice → 400; otherwise forwarded, and then every transaction
 *   Core would decode (from the forwarded bytes) has a precision and a reference key, or the
 *   rewrite was refused with 413 because it needs more room than it was given;
 * - a changed body is the input with bytes inserted only, the same transactions in the model,
 *   and gets nothing more when the defaults are applied again; one byte less of room is a 413;
 * - jscan's iterator re-finds every member and element, and whatever jansson accepts jscan
 *   accepts too (jansson is only an oracle here; the rewrite module never uses it). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/buf.h"
#include "lib/bug.h"
#include "rewrite/jscan.h"
#include "rewrite/rewrite.h"

/* Room for the body plus a few dozen objects' worth of insertions; more is a legitimate 413. */
#define FUZZ_EXTRA_ROOM 4096

#define GO_MAX_DEPTH 10000 /* scanner.go maxNestingDepth */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the model of Go's decoder ---------------------------------------------------------- */

enum go_verdict { GO_OK, GO_SYNTAX, GO_DEPTH };

/* One *RecordTransaction as Go would fill it: nil, or which of the two fields were set. */
struct go_tx {
    bool is_nil;
    bool precision;
    bool reference;
};

/* What the decode target is, for the value being read. */
enum go_target { T_SKIP, T_TX, T_BULK, T_SLICE };

struct go {
    const unsigned char *p;
    size_t n;
    size_t i;
    enum go_verdict verdict;
    /* results */
    struct go_tx single; /* SINGLE: the top-level struct */
    struct go_tx *slice; /* BULK: the transactions slice's backing array */
    size_t slice_len;
    size_t slice_cap;
    size_t slice_room; /* allocated entries of slice */
    size_t n_transactions_keys;
    bool type_error; /* an UnmarshalTypeError on a transaction or the slice: Core answers 400 */
};

static bool
go_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
go_ws(struct go *g)
{
    while (g->i < g->n && go_space(g->p[g->i])) {
        g->i++;
    }
}

static bool
go_fail(struct go *g)
{
    if (g->verdict == GO_OK) {
        g->verdict = GO_SYNTAX;
    }
    return false;
}

static bool
go_digit(const struct go *g)
{
    return g->i < g->n && g->p[g->i] >= '0' && g->p[g->i] <= '9';
}

static bool
go_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* stateInString and its escape states. On success g->i is past the closing quote. */
static bool
go_string(struct go *g)
{
    g->i++;
    while (g->i < g->n) {
        unsigned char c = g->p[g->i++];
        if (c == '"') {
            return true;
        }
        if (c < 0x20) {
            return go_fail(g);
        }
        if (c != '\\') {
            continue;
        }
        if (g->i >= g->n) {
            return go_fail(g);
        }
        c = g->p[g->i++];
        if (c == 'u') {
            for (int k = 0; k < 4; k++) {
                if (g->i >= g->n || !go_hex(g->p[g->i])) {
                    return go_fail(g);
                }
                g->i++;
            }
        } else if (strchr("bfnrt\\/\"", c) == NULL || c == '\0') {
            return go_fail(g);
        }
    }
    return go_fail(g);
}

/* stateNeg, state0, state1, stateDot, stateDot0, stateE, stateESign, stateE0. */
static bool
go_number(struct go *g)
{
    if (g->p[g->i] == '-') {
        g->i++;
    }
    if (g->i < g->n && g->p[g->i] == '0') {
        g->i++;
    } else if (go_digit(g) && g->p[g->i] != '0') {
        while (go_digit(g)) {
            g->i++;
        }
    } else {
        return go_fail(g);
    }
    if (g->i < g->n && g->p[g->i] == '.') {
        g->i++;
        if (!go_digit(g)) {
            return go_fail(g);
        }
        while (go_digit(g)) {
            g->i++;
        }
    }
    if (g->i < g->n && (g->p[g->i] == 'e' || g->p[g->i] == 'E')) {
        g->i++;
        if (g->i < g->n && (g->p[g->i] == '+' || g->p[g->i] == '-')) {
            g->i++;
        }
        if (!go_digit(g)) {
            return go_fail(g);
        }
        while (go_digit(g)) {
            g->i++;
        }
    }
    return true;
}

static bool
go_literal(struct go *g, const char *lit)
{
    for (const char *q = lit; *q != '\0'; q++) {
        if (g->i >= g->n || g->p[g->i] != (unsigned char)*q) {
            return go_fail(g);
        }
        g->i++;
    }
    return true;
}

/* utf8.DecodeRune: U+FFFD and one byte for anything but a shortest-form scalar value. */
static uint32_t
go_utf8(const unsigned char *s, size_t n, size_t *k)
{
    unsigned char c = s[*k];
    uint32_t r;
    size_t need;
    uint32_t min;

    if (c < 0xC0) {
        (*k)++;
        return c < 0x80 ? c : 0xFFFD;
    }
    if (c < 0xE0) {
        need = 1, r = c & 0x1F, min = 0x80;
    } else if (c < 0xF0) {
        need = 2, r = c & 0x0F, min = 0x800;
    } else if (c < 0xF8) {
        need = 3, r = c & 0x07, min = 0x10000;
    } else {
        (*k)++;
        return 0xFFFD;
    }
    if (*k + need >= n) {
        (*k)++;
        return 0xFFFD;
    }
    for (size_t j = 1; j <= need; j++) {
        if ((s[*k + j] & 0xC0) != 0x80) {
            (*k)++;
            return 0xFFFD;
        }
        r = (r << 6) | (s[*k + j] & 0x3F);
    }
    if (r < min || r > 0x10FFFF || (r >= 0xD800 && r < 0xE000)) {
        (*k)++;
        return 0xFFFD;
    }
    *k += need + 1;
    return r;
}

static int
go_hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static uint32_t
go_u4(const unsigned char *s)
{
    return (uint32_t)((go_hexval(s[0]) << 12) | (go_hexval(s[1]) << 8) | (go_hexval(s[2]) << 4) |
                      go_hexval(s[3]));
}

/* unquoteBytes then foldName, compared with an upper-case ASCII field name. s[0..n) is a key's
 * raw bytes between its quotes, already validated by go_string. */
static bool
go_key_is(const unsigned char *s, size_t n, const char *upper)
{
    size_t k = 0;
    size_t m = 0;
    size_t name_len = strlen(upper);
    uint32_t r;

    while (k < n) {
        if (s[k] == '\\') {
            unsigned char e = s[k + 1];
            if (e != 'u') {
                static const char from[] = "bfnrt";
                static const char to[] = "\b\f\n\r\t";
                const char *f = strchr(from, e);
                r = f != NULL ? (uint32_t)(unsigned char)to[f - from] : e;
                k += 2;
            } else {
                r = go_u4(s + k + 2);
                k += 6;
                if (r >= 0xD800 && r < 0xE000) {
                    uint32_t r2 = 0;
                    if (r < 0xDC00 && k + 6 <= n && s[k] == '\\' && s[k + 1] == 'u') {
                        r2 = go_u4(s + k + 2);
                    }
                    if (r2 >= 0xDC00 && r2 < 0xE000) {
                        r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00);
                        k += 6;
                    } else {
                        r = 0xFFFD;
                    }
                }
            }
        } else {
            r = go_utf8(s, n, &k);
        }
        /* foldName */
        if (r >= 'a' && r <= 'z') {
            r -= 'a' - 'A';
        } else if (r == 0x017F) {
            r = 'S';
        } else if (r == 0x212A) {
            r = 'K';
        }
        if (m >= name_len || r != (uint32_t)(unsigned char)upper[m]) {
            return false;
        }
        m++;
    }
    return m == name_len;
}

static struct go_tx *
go_slice_at(struct go *g, size_t idx)
{
    BP_BUG_ON(idx >= g->slice_room);
    return &g->slice[idx];
}

static bool go_value(struct go *g, unsigned depth, enum go_target target, struct go_tx *tx);

/* At '{', with depth containers already open around it. */
static bool
go_object(struct go *g, unsigned depth, enum go_target target, struct go_tx *tx)
{
    g->i++;
    go_ws(g);
    if (g->i < g->n && g->p[g->i] == '}') {
        g->i++;
        return true;
    }
    for (;;) {
        size_t key_start;
        size_t key_len;
        enum go_target sub = T_SKIP;

        if (g->i >= g->n || g->p[g->i] != '"') {
            return go_fail(g);
        }
        key_start = g->i + 1;
        if (!go_string(g)) {
            return false;
        }
        key_len = g->i - 1 - key_start;
        if (target == T_TX) {
            if (go_key_is(g->p + key_start, key_len, "PRECISION")) {
                tx->precision = true;
            } else if (go_key_is(g->p + key_start, key_len, "REFERENCE")) {
                tx->reference = true;
            }
        } else if (target == T_BULK && go_key_is(g->p + key_start, key_len, "TRANSACTIONS")) {
            g->n_transactions_keys++;
            sub = T_SLICE;
        }
        go_ws(g);
        if (g->i >= g->n || g->p[g->i] != ':') {
            return go_fail(g);
        }
        g->i++;
        go_ws(g);
        if (!go_value(g, depth + 1, sub, NULL)) {
            return false;
        }
        go_ws(g);
        if (g->i < g->n && g->p[g->i] == ',') {
            g->i++;
            go_ws(g);
            continue;
        }
        if (g->i < g->n && g->p[g->i] == '}') {
            g->i++;
            return true;
        }
        return go_fail(g);
    }
}

/* At '['. For T_SLICE, decode.go array() into []*RecordTransaction. */
static bool
go_array(struct go *g, unsigned depth, enum go_target target)
{
    size_t idx = 0;

    g->i++;
    go_ws(g);
    if (g->i < g->n && g->p[g->i] == ']') {
        g->i++;
        if (target == T_SLICE) {
            g->slice_len = 0; /* MakeSlice(t, 0, 0) */
            g->slice_cap = 0;
        }
        return true;
    }
    for (;;) {
        struct go_tx *elem = NULL;

        if (target == T_SLICE) {
            if (idx >= g->slice_cap) {
                /* Grow: a new backing array holding the first len elements, the rest nil. */
                for (size_t k = g->slice_len; k < g->slice_room; k++) {
                    *go_slice_at(g, k) = (struct go_tx){.is_nil = true};
                }
                g->slice_cap = g->slice_room;
            }
            if (idx >= g->slice_len) {
                g->slice_len = idx + 1; /* SetLen: may re-expose an older element */
            }
            elem = go_slice_at(g, idx);
        }
        if (!go_value(g, depth + 1, target == T_SLICE ? T_TX : T_SKIP, elem)) {
            return false;
        }
        idx++;
        go_ws(g);
        if (g->i < g->n && g->p[g->i] == ',') {
            g->i++;
            go_ws(g);
            continue;
        }
        if (g->i < g->n && g->p[g->i] == ']') {
            g->i++;
            if (target == T_SLICE) {
                g->slice_len = idx;
            }
            return true;
        }
        return go_fail(g);
    }
}

/* A value at depth (the number of containers around it), decoded into target. For T_TX, tx is
 * the element (NULL for the top-level SINGLE struct, which is g->single). */
static bool
go_value(struct go *g, unsigned depth, enum go_target target, struct go_tx *tx)
{
    unsigned char c;

    if (g->i >= g->n) {
        return go_fail(g);
    }
    c = g->p[g->i];
    if (c == '{' || c == '[') {
        /* pushParseState: len(parseState) becomes depth + 1. */
        if (depth + 1 > GO_MAX_DEPTH) {
            if (g->verdict == GO_OK) {
                g->verdict = GO_DEPTH;
            }
            return false;
        }
        if (c == '{') {
            if (target == T_TX && tx != NULL && tx->is_nil) {
                *tx = (struct go_tx){0}; /* indirect allocates a nil pointer, keeps a live one */
            }
            g->type_error |= target == T_SLICE;
            return go_object(g, depth, target == T_SLICE ? T_SKIP : target, tx != NULL ? tx : &g->single);
        }
        g->type_error |= target == T_TX || target == T_BULK;
        return go_array(g, depth, target);
    }
    if (c != 'n') {
        g->type_error |= target != T_SKIP;
    }
    if (c == '"') {
        return go_string(g);
    }
    if (c == 't') {
        return go_literal(g, "true");
    }
    if (c == 'f') {
        return go_literal(g, "false");
    }
    if (c == 'n') {
        if (target == T_TX && tx != NULL) {
            tx->is_nil = true;
        } else if (target == T_SLICE) {
            g->slice_len = 0; /* a nil slice */
            g->slice_cap = 0;
        }
        return go_literal(g, "null");
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        return go_number(g);
    }
    return go_fail(g);
}

/* Decoder.Decode of body into the bulk struct (bulk) or a RecordTransaction. Afterwards g->i is
 * just past the first value when g->verdict is GO_OK. g->slice must be freed. */
static void
go_decode(struct go *g, const char *body, size_t len, bool bulk)
{
    *g = (struct go){.p = (const unsigned char *)body, .n = len, .verdict = GO_OK};
    g->slice_room = len / 2 + 2;
    g->slice = calloc(g->slice_room, sizeof(*g->slice));
    BP_BUG_ON(g->slice == NULL);
    go_ws(g);
    (void)go_value(g, 0, bulk ? T_BULK : T_TX, NULL);
}

/* Every transaction Go would hand Core has both keys. (The slice's capacity is modelled as
 * unbounded, so after duplicate "transactions" arrays a re-exposed element may differ from Go's;
 * such bodies are refused before this matters.) */
static bool
go_all_defaulted(const struct go *g, bool bulk)
{
    if (!bulk) {
        return g->single.precision && g->single.reference;
    }
    for (size_t k = 0; k < g->slice_len; k++) {
        if (!g->slice[k].is_nil && !(g->slice[k].precision && g->slice[k].reference)) {
            return false;
        }
    }
    return true;
}

/* ---- checks ----------------------------------------------------------------------------- */

static bool
is_subsequence(const char *small, size_t small_len, const char *big, size_t big_len)
{
    size_t i = 0;

    for (size_t j = 0; j < big_len && i < small_len; j++) {
        if (big[j] == small[i]) {
            i++;
        }
    }
    return i == small_len;
}

static bool
only_ws_after(const char *p, size_t n, size_t off)
{
    for (size_t k = off; k < n; k++) {
        if (!go_space((unsigned char)p[k])) {
            return false;
        }
    }
    return true;
}

/* jscan's verdict on the first value is exactly the model's. */
static void
check_scan_parity(const char *body, size_t size)
{
    struct go g;
    struct bp_jscan_value v;
    bp_err rc = bp_jscan_first(body, size, &v);

    go_decode(&g, body, size, false);
    switch (g.verdict) {
    case GO_OK:
        BP_BUG_ON(rc != BP_OK);
        BP_BUG_ON(v.span.off + v.span.len != g.i);
        break;
    case GO_SYNTAX:
        BP_BUG_ON(rc != BP_ERR_INVALID);
        break;
    case GO_DEPTH:
        BP_BUG_ON(rc != BP_ERR_LIMIT);
        break;
    }
    free(g.slice);
}

static void
check_changed(enum bp_txdefaults_kind kind, const char *body, size_t size, const struct go *before,
              const struct bp_buf *out)
{
    bool bulk = kind == BP_TXDEFAULTS_BULK;
    struct go after;
    struct bp_buf again;
    const char *reason = NULL;
    bool changed = true;
    bp_err rc;

    BP_BUG_ON(out->len <= size || out->len > out->max);
    BP_BUG_ON(!is_subsequence(body, size, out->data, out->len));
    go_decode(&after, out->data, out->len, bulk);
    BP_BUG_ON(after.verdict != GO_OK || after.type_error != before->type_error);
    BP_BUG_ON(!only_ws_after(out->data, out->len, after.i));
    BP_BUG_ON(!go_all_defaulted(&after, bulk));
    if (bulk) {
        BP_BUG_ON(after.slice_len != before->slice_len);
        for (size_t k = 0; k < after.slice_len; k++) {
            BP_BUG_ON(after.slice[k].is_nil != before->slice[k].is_nil);
        }
    }
    free(after.slice);

    bp_buf_init(&again, out->len + FUZZ_EXTRA_ROOM);
    rc = bp_txdefaults_apply(kind, out->data, out->len, &again, &changed, &reason);
    BP_BUG_ON(rc != BP_OK || changed || again.len != 0);
    bp_buf_cleanup(&again);

    /* Generated text has a fixed length, so one byte less must not fit. */
    bp_buf_init(&again, out->len - 1);
    rc = bp_txdefaults_apply(kind, body, size, &again, &changed, &reason);
    BP_BUG_ON(rc != BP_ERR_PAYLOAD_TOO_LARGE || again.len != 0 || reason == NULL);
    bp_buf_cleanup(&again);
}

/* The outcome the model predicts, and the one we got. */
static void
check_outcome(enum bp_txdefaults_kind kind, const char *body, size_t size)
{
    bool bulk = kind == BP_TXDEFAULTS_BULK;
    struct go g;
    struct bp_buf out;
    const char *reason = NULL;
    bool changed = false;
    size_t first;
    bp_err rc;

    go_decode(&g, body, size, bulk);
    bp_buf_init(&out, size + FUZZ_EXTRA_ROOM);
    rc = bp_txdefaults_apply(kind, body, size, &out, &changed, &reason);
    BP_BUG_ON(rc != BP_OK && out.len != 0);
    first = 0;
    while (first < size && go_space((unsigned char)body[first])) {
        first++;
    }
    if (g.verdict == GO_DEPTH) {
        BP_BUG_ON(rc != BP_ERR_MALFORMED || strstr(reason, "deeper than 10000") == NULL);
    } else if (g.verdict == GO_SYNTAX || body[first] != '{') {
        /* Core refuses it (syntax error, a non-object) or binds nothing (null): as sent. */
        BP_BUG_ON(rc != BP_OK || changed);
    } else if (!only_ws_after(body, size, g.i)) {
        BP_BUG_ON(rc != BP_ERR_MALFORMED || strstr(reason, "after its JSON object") == NULL);
    } else if (bulk && g.n_transactions_keys > 1) {
        BP_BUG_ON(rc != BP_ERR_MALFORMED || strstr(reason, "more than once") == NULL);
    } else if (rc == BP_ERR_PAYLOAD_TOO_LARGE) {
        /* Only when the rewrite really needs more room than it had. */
        struct bp_buf big;
        bp_buf_init(&big, SIZE_MAX);
        BP_BUG_ON(bp_txdefaults_apply(kind, body, size, &big, &changed, &reason) != BP_OK);
        BP_BUG_ON(!changed || big.len <= out.max);
        bp_buf_cleanup(&big);
    } else {
        /* Forwarded: the bytes Core gets never lack a default. */
        BP_BUG_ON(rc != BP_OK);
        if (changed) {
            check_changed(kind, body, size, &g, &out);
        } else {
            BP_BUG_ON(out.len != 0);
            BP_BUG_ON(!g.type_error && !go_all_defaulted(&g, bulk));
        }
    }
    free(g.slice);
    bp_buf_cleanup(&out);
}

/* Every reported part must stand on its own as what the scanner said it was. */
static void
walk(const char *doc, const struct bp_jscan_value *v)
{
    struct bp_jscan_iter it;
    struct bp_jscan_span key;
    struct bp_jscan_value member;
    struct bp_jscan_value alone;

    BP_BUG_ON(bp_jscan_document(doc + v->span.off, v->span.len, &alone) != BP_OK);
    BP_BUG_ON(alone.type != v->type || alone.span.off != 0 || alone.span.len != v->span.len);
    if (v->type != BP_JSCAN_OBJECT && v->type != BP_JSCAN_ARRAY) {
        return;
    }
    bp_jscan_iter_init(&it, doc, v);
    while (bp_jscan_iter_next(&it, &key, &member)) {
        BP_BUG_ON(member.span.off < bp_jscan_inner_begin(v));
        BP_BUG_ON(member.span.off + member.span.len > bp_jscan_close_off(v));
        if (v->type == BP_JSCAN_OBJECT) {
            BP_BUG_ON(key.off < 1 || doc[key.off - 1] != '"' || doc[key.off + key.len] != '"');
            BP_BUG_ON(bp_jscan_document(doc + key.off - 1, key.len + 2, &alone) != BP_OK);
            BP_BUG_ON(alone.type != BP_JSCAN_STRING);
            /* Go's field match and ours agree on every key. */
            BP_BUG_ON(bp_jscan_key_equal_fold(doc, key, "reference") !=
                      go_key_is((const unsigned char *)doc + key.off, key.len, "REFERENCE"));
            BP_BUG_ON(bp_jscan_key_equal_fold(doc, key, "precision") !=
                      go_key_is((const unsigned char *)doc + key.off, key.len, "PRECISION"));
        }
        walk(doc, &member);
    }
}

static void
check_scan(const char *doc, size_t size)
{
    struct bp_jscan_value top;
    bool ok = bp_jscan_document(doc, size, &top) == BP_OK;
    json_error_t err;
    json_t *j;

    if (ok) {
        walk(doc, &top);
    }
    /* jansson is stricter about UTF-8, surrogates and number range, never laxer on grammar,
     * and its own depth limit is far below ours; its reader stops at a raw NUL byte as if the
     * input ended there. */
    if (memchr(doc, '\0', size) != NULL) {
        return;
    }
    j = json_loadb(doc, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j != NULL) {
        BP_BUG_ON(!ok);
        BP_BUG_ON(json_is_object(j) != (top.type == BP_JSCAN_OBJECT));
        json_decref(j);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;

    check_scan_parity(body, size);
    check_scan(body, size);
    check_outcome(BP_TXDEFAULTS_SINGLE, body, size);
    check_outcome(BP_TXDEFAULTS_BULK, body, size);
    return 0;
}
