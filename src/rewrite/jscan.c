/* JSON byte scanner for DESIGN §4 (transaction defaults by byte insertion).
 *
 * Purpose: decide whether a forwarded body is one valid JSON text and say where its top-level
 * members and array elements are, as offsets into the caller's bytes. There is deliberately no
 * tree and no copy: the body Core receives must be the client's bytes plus our insertions, and
 * no JSON library keeps every number's text (a 40-digit amount must survive untouched).
 *
 * Validity follows what Core's decoder (Go encoding/json) accepts, because a body we think is
 * valid gets defaults inserted and a body we think is invalid is forwarded for Core to answer:
 * RFC 8259 grammar, JSON whitespace only, control bytes rejected inside strings, but invalid
 * UTF-8 and lone \u surrogates accepted (Go replaces them with U+FFFD). The one deliberate
 * difference is the nesting limit, BP_JSCAN_MAX_DEPTH, far below Go's.
 *
 * Threads: pure functions over caller-owned bytes; safe anywhere. Recursion depth is bounded by
 * BP_JSCAN_MAX_DEPTH, so stack use is bounded whatever the input.
 *
 * Invariant: every read is bounds-checked against the scan end, so even the iterator, which
 * trusts its container to be validated, cannot read past it. */
#include "rewrite/jscan.h"

#include <stdint.h>
#include <string.h>

#include "lib/bug.h"
#include "lib/str.h"

#define RUNE_ERROR 0xFFFDu

struct scan {
    const unsigned char *p;
    size_t end;
    size_t pos;
};

static bool scan_value(struct scan *s, unsigned depth, struct bp_jscan_value *out);

static void
skip_ws(struct scan *s)
{
    while (s->pos < s->end) {
        unsigned char c = s->p[s->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        s->pos++;
    }
}

static bool
at(const struct scan *s, unsigned char c)
{
    return s->pos < s->end && s->p[s->pos] == c;
}

static bool
at_digit(const struct scan *s)
{
    return s->pos < s->end && s->p[s->pos] >= '0' && s->p[s->pos] <= '9';
}

/* Parses exactly four hex digits at p[0..n); -1 if they are not there. */
static int32_t
hex4(const unsigned char *p, size_t n)
{
    int32_t v = 0;

    if (n < 4) {
        return -1;
    }
    for (size_t i = 0; i < 4; i++) {
        int h = bp_hex_digit_value(p[i]);
        if (h < 0) {
            return -1;
        }
        v = (v << 4) | h;
    }
    return v;
}

/* At the opening quote; on success pos is just past the closing quote. */
static bool
scan_string(struct scan *s)
{
    s->pos++;
    while (s->pos < s->end) {
        unsigned char c = s->p[s->pos];
        if (c == '"') {
            s->pos++;
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c != '\\') {
            /* Bytes >= 0x80 pass unchecked: Go decodes invalid UTF-8 as U+FFFD. */
            s->pos++;
            continue;
        }
        s->pos++;
        if (s->pos >= s->end) {
            return false;
        }
        switch (s->p[s->pos]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            s->pos++;
            break;
        case 'u':
            /* Any four hex digits: a lone surrogate is decoded as U+FFFD, not rejected. */
            if (hex4(s->p + s->pos + 1, s->end - s->pos - 1) < 0) {
                return false;
            }
            s->pos += 5;
            break;
        default:
            return false;
        }
    }
    return false;
}

static void
skip_digits(struct scan *s)
{
    while (at_digit(s)) {
        s->pos++;
    }
}

/* RFC 8259: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static bool
scan_number(struct scan *s)
{
    if (at(s, '-')) {
        s->pos++;
    }
    if (at(s, '0')) {
        s->pos++;
    } else if (at_digit(s)) {
        skip_digits(s);
    } else {
        return false;
    }
    if (at(s, '.')) {
        s->pos++;
        if (!at_digit(s)) {
            return false;
        }
        skip_digits(s);
    }
    if (at(s, 'e') || at(s, 'E')) {
        s->pos++;
        if (at(s, '+') || at(s, '-')) {
            s->pos++;
        }
        if (!at_digit(s)) {
            return false;
        }
        skip_digits(s);
    }
    return true;
}

static bool
scan_literal(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);

    if (s->end - s->pos < n || memcmp(s->p + s->pos, lit, n) != 0) {
        return false;
    }
    s->pos += n;
    return true;
}

/* At '{'; depth counts the containers around this one. */
static bool
scan_object(struct scan *s, unsigned depth)
{
    struct bp_jscan_value v;

    s->pos++;
    skip_ws(s);
    if (at(s, '}')) {
        s->pos++;
        return true;
    }
    for (;;) {
        if (!at(s, '"') || !scan_string(s)) {
            return false;
        }
        skip_ws(s);
        if (!at(s, ':')) {
            return false;
        }
        s->pos++;
        skip_ws(s);
        if (!scan_value(s, depth + 1, &v)) {
            return false;
        }
        skip_ws(s);
        if (at(s, '}')) {
            s->pos++;
            return true;
        }
        if (!at(s, ',')) {
            return false;
        }
        s->pos++;
        skip_ws(s);
    }
}

static bool
scan_array(struct scan *s, unsigned depth)
{
    struct bp_jscan_value v;

    s->pos++;
    skip_ws(s);
    if (at(s, ']')) {
        s->pos++;
        return true;
    }
    for (;;) {
        if (!scan_value(s, depth + 1, &v)) {
            return false;
        }
        skip_ws(s);
        if (at(s, ']')) {
            s->pos++;
            return true;
        }
        if (!at(s, ',')) {
            return false;
        }
        s->pos++;
        skip_ws(s);
    }
}

/* At the value's first byte (whitespace already skipped). */
static bool
scan_value(struct scan *s, unsigned depth, struct bp_jscan_value *out)
{
    size_t start = s->pos;
    enum bp_jscan_type type;
    bool ok;

    if (s->pos >= s->end) {
        return false;
    }
    switch (s->p[s->pos]) {
    case '{':
    case '[':
        if (depth >= BP_JSCAN_MAX_DEPTH) {
            return false;
        }
        type = s->p[s->pos] == '{' ? BP_JSCAN_OBJECT : BP_JSCAN_ARRAY;
        ok = type == BP_JSCAN_OBJECT ? scan_object(s, depth) : scan_array(s, depth);
        break;
    case '"':
        type = BP_JSCAN_STRING;
        ok = scan_string(s);
        break;
    case 't':
        type = BP_JSCAN_TRUE;
        ok = scan_literal(s, "true");
        break;
    case 'f':
        type = BP_JSCAN_FALSE;
        ok = scan_literal(s, "false");
        break;
    case 'n':
        type = BP_JSCAN_NULL;
        ok = scan_literal(s, "null");
        break;
    default:
        type = BP_JSCAN_NUMBER;
        ok = scan_number(s);
        break;
    }
    if (!ok) {
        return false;
    }
    out->type = type;
    out->span.off = start;
    out->span.len = s->pos - start;
    return true;
}

bp_err
bp_jscan_document(const char *doc, size_t len, struct bp_jscan_value *out)
{
    struct scan s = {(const unsigned char *)doc, len, 0};
    struct bp_jscan_value v;

    if (len == 0) {
        return BP_ERR_INVALID;
    }
    skip_ws(&s);
    if (!scan_value(&s, 0, &v)) {
        return BP_ERR_INVALID;
    }
    skip_ws(&s);
    if (s.pos != len) {
        return BP_ERR_INVALID;
    }
    *out = v;
    return BP_OK;
}

size_t
bp_jscan_inner_begin(const struct bp_jscan_value *container)
{
    BP_BUG_ON(container->type != BP_JSCAN_OBJECT && container->type != BP_JSCAN_ARRAY);
    return container->span.off + 1;
}

size_t
bp_jscan_close_off(const struct bp_jscan_value *container)
{
    BP_BUG_ON(container->type != BP_JSCAN_OBJECT && container->type != BP_JSCAN_ARRAY);
    BP_BUG_ON(container->span.len < 2);
    return container->span.off + container->span.len - 1;
}

void
bp_jscan_iter_init(struct bp_jscan_iter *it, const char *doc, const struct bp_jscan_value *container)
{
    it->doc = doc;
    it->type = container->type;
    it->pos = bp_jscan_inner_begin(container);
    it->close = bp_jscan_close_off(container);
}

bool
bp_jscan_iter_next(struct bp_jscan_iter *it, struct bp_jscan_span *out_key, struct bp_jscan_value *out_value)
{
    /* The scan stops at the closing bracket, so a wrongly trusted container cannot make us
     * read past it; the BUG_ONs catch a caller that skipped validation. */
    struct scan s = {(const unsigned char *)it->doc, it->close, it->pos};
    struct bp_jscan_span key = {0, 0};
    struct bp_jscan_value v;

    skip_ws(&s);
    if (s.pos >= s.end) {
        it->pos = s.pos;
        return false;
    }
    if (at(&s, ',')) {
        s.pos++;
        skip_ws(&s);
    }
    if (it->type == BP_JSCAN_OBJECT) {
        BP_BUG_ON(!at(&s, '"'));
        key.off = s.pos + 1;
        BP_BUG_ON(!scan_string(&s));
        key.len = s.pos - 1 - key.off;
        skip_ws(&s);
        BP_BUG_ON(!at(&s, ':'));
        s.pos++;
        skip_ws(&s);
    }
    /* Depth 1 is never stricter than the depth this value was validated at. */
    BP_BUG_ON(!scan_value(&s, 1, &v));
    it->pos = s.pos;
    if (out_key != NULL) {
        *out_key = key;
    }
    *out_value = v;
    return true;
}

/* utf8.DecodeRune semantics: the shortest-form encodings of U+0000..U+10FFFF minus surrogates;
 * anything else is RUNE_ERROR consuming one byte. */
static uint32_t
decode_utf8(const unsigned char *p, size_t n, size_t *i)
{
    unsigned char c = p[*i];
    size_t need;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    uint32_t r;

    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        r = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        r = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        r = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        (*i)++;
        return RUNE_ERROR;
    }
    if (n - *i <= need) {
        (*i)++;
        return RUNE_ERROR;
    }
    for (size_t k = 1; k <= need; k++) {
        unsigned char cc = p[*i + k];
        if (cc < lo || cc > hi) {
            (*i)++;
            return RUNE_ERROR;
        }
        lo = 0x80;
        hi = 0xBF;
        r = (r << 6) | (cc & 0x3F);
    }
    *i += need + 1;
    return r;
}

/* Decodes one \u escape group at p[*i] == '\\', p[*i+1] == 'u', following Go's unquote: a
 * surrogate pair makes one rune; any other surrogate is U+FFFD and consumes one escape. */
static uint32_t
decode_u_escape(const unsigned char *p, size_t n, size_t *i)
{
    int32_t r = hex4(p + *i + 2, n - *i - 2);
    int32_t r2;

    if (r < 0) {
        *i = n;
        return RUNE_ERROR;
    }
    *i += 6;
    if (r < 0xD800 || r >= 0xE000) {
        return (uint32_t)r;
    }
    if (r < 0xDC00 && n - *i >= 6 && p[*i] == '\\' && p[*i + 1] == 'u') {
        r2 = hex4(p + *i + 2, n - *i - 2);
        if (r2 >= 0xDC00 && r2 < 0xE000) {
            *i += 6;
            return 0x10000u + (((uint32_t)r - 0xD800u) << 10) + ((uint32_t)r2 - 0xDC00u);
        }
    }
    return RUNE_ERROR;
}

/* Next decoded rune of the raw string bytes p[0..n), starting at *i < n. */
static uint32_t
next_rune(const unsigned char *p, size_t n, size_t *i)
{
    unsigned char c = p[*i];

    if (c >= 0x80) {
        return decode_utf8(p, n, i);
    }
    if (c != '\\') {
        (*i)++;
        return c;
    }
    if (n - *i < 2) {
        *i = n;
        return RUNE_ERROR;
    }
    c = p[*i + 1];
    if (c == 'u') {
        return decode_u_escape(p, n, i);
    }
    *i += 2;
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return c; /* '"', '\\', '/' stand for themselves */
    }
}

/* The ASCII representative of a rune under Go's case folding, as far as ASCII names go: the only
 * non-ASCII runes in an ASCII letter's fold orbit are U+017F (s) and U+212A (k). */
static uint32_t
fold(uint32_t r)
{
    if (r >= 'A' && r <= 'Z') {
        return r + ('a' - 'A');
    }
    if (r == 0x017F) {
        return 's';
    }
    if (r == 0x212A) {
        return 'k';
    }
    return r;
}

bool
bp_jscan_key_equal_fold(const char *doc, struct bp_jscan_span key, const char *name)
{
    const unsigned char *p = (const unsigned char *)doc + key.off;
    size_t i = 0;

    for (const unsigned char *q = (const unsigned char *)name; *q != '\0'; q++) {
        if (i >= key.len) {
            return false;
        }
        if (fold(next_rune(p, key.len, &i)) != fold(*q)) {
            return false;
        }
    }
    return i == key.len;
}
