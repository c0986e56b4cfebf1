/* JSON byte scanner for DESIGN §4 (transaction defaults by byte insertion).
 *
 * Purpose: decide whether a forwarded body is what Core's decoder accepts and say where its
 * top-level members and array elements are, as offsets into the caller's bytes. There is
 * deliberately no tree and no copy: the body Core receives must be the client's bytes plus our
 * insertions, and no JSON library keeps every number's text (a 40-digit amount must survive).
 *
 * Validity follows Core's decoder, Go encoding/json as gin's ShouldBindJSON calls it
 * (json.NewDecoder(body).Decode): the first JSON value is read and what follows is not
 * (stream.go readValue stops at the value's last byte); RFC 8259 grammar, JSON whitespace only,
 * control bytes rejected inside strings, but invalid UTF-8 and lone \u surrogates accepted (Go
 * replaces them with U+FFFD); nesting up to scanner.go's maxNestingDepth, 10000.
 *
 * The scan is iterative: an explicit stack of one bit per open container (object or array), so
 * neither the depth limit nor stack use depends on recursion. Every byte is looked at once.
 *
 * Threads: pure functions over caller-owned bytes; safe anywhere.
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

/* At a scalar's first byte: scans it. */
static bool
scan_scalar(struct scan *s, enum bp_jscan_type *out_type)
{
    switch (s->p[s->pos]) {
    case '"':
        *out_type = BP_JSCAN_STRING;
        return scan_string(s);
    case 't':
        *out_type = BP_JSCAN_TRUE;
        return scan_literal(s, "true");
    case 'f':
        *out_type = BP_JSCAN_FALSE;
        return scan_literal(s, "false");
    case 'n':
        *out_type = BP_JSCAN_NULL;
        return scan_literal(s, "null");
    default:
        *out_type = BP_JSCAN_NUMBER;
        return scan_number(s);
    }
}

/* The type a value starting with c has, if it is valid. */
static enum bp_jscan_type
type_of(unsigned char c)
{
    switch (c) {
    case '{':
        return BP_JSCAN_OBJECT;
    case '[':
        return BP_JSCAN_ARRAY;
    case '"':
        return BP_JSCAN_STRING;
    case 't':
        return BP_JSCAN_TRUE;
    case 'f':
        return BP_JSCAN_FALSE;
    case 'n':
        return BP_JSCAN_NULL;
    default:
        return BP_JSCAN_NUMBER;
    }
}

#define STACK_WORDS ((BP_JSCAN_MAX_DEPTH + 63) / 64)

/* What is open: bit d of is_object says whether the container at depth d is an object. */
struct walk {
    struct scan s;
    const struct bp_jscan_visitor *vis;
    unsigned depth; /* containers open */
    uint64_t is_object[STACK_WORDS];
};

static bool
top_is_object(const struct walk *w)
{
    unsigned d = w->depth - 1;
    return (w->is_object[d / 64] >> (d % 64)) & 1u;
}

static void
emit_begin(struct walk *w, enum bp_jscan_type type, size_t off)
{
    if (w->vis != NULL && w->vis->begin != NULL && w->depth <= w->vis->max_depth) {
        w->vis->begin(w->vis->arg, w->depth, type, off);
    }
}

/* The container at w->depth - 1 closes at the current byte. */
static void
close_container(struct walk *w)
{
    w->depth--;
    if (w->vis != NULL && w->vis->end != NULL && w->depth <= w->vis->max_depth) {
        w->vis->end(w->vis->arg, w->depth, w->s.pos);
    }
    w->s.pos++;
}

/* At a member's opening quote: the key, the colon and the whitespace before the value. */
static bool
scan_member_key(struct walk *w)
{
    struct scan *s = &w->s;
    struct bp_jscan_span key;

    if (!at(s, '"')) {
        return false;
    }
    key.off = s->pos + 1;
    if (!scan_string(s)) {
        return false;
    }
    key.len = s->pos - 1 - key.off;
    if (w->vis != NULL && w->vis->key != NULL && w->depth <= w->vis->max_depth) {
        w->vis->key(w->vis->arg, w->depth, key);
    }
    skip_ws(s);
    if (!at(s, ':')) {
        return false;
    }
    s->pos++;
    skip_ws(s);
    return true;
}

/* At the start of a value (whitespace skipped). Opens a container, or scans a scalar. Sets
 * *out_done when the value is complete (a scalar or an empty container); otherwise the scan is
 * positioned at the container's first member or element. */
static bp_err
step_value(struct walk *w, bool *out_done)
{
    struct scan *s = &w->s;
    size_t start = s->pos;
    enum bp_jscan_type type;
    unsigned char c;

    if (s->pos >= s->end) {
        return BP_ERR_INVALID;
    }
    c = s->p[s->pos];
    if (c != '{' && c != '[') {
        if (!scan_scalar(s, &type)) {
            return BP_ERR_INVALID;
        }
        emit_begin(w, type, start);
        *out_done = true;
        return BP_OK;
    }
    /* Go's pushParseState fails on the bracket that would make depth 10001. */
    if (w->depth >= BP_JSCAN_MAX_DEPTH) {
        return BP_ERR_LIMIT;
    }
    emit_begin(w, c == '{' ? BP_JSCAN_OBJECT : BP_JSCAN_ARRAY, start);
    if (c == '{') {
        w->is_object[w->depth / 64] |= (uint64_t)1 << (w->depth % 64);
    } else {
        w->is_object[w->depth / 64] &= ~((uint64_t)1 << (w->depth % 64));
    }
    w->depth++;
    s->pos++;
    skip_ws(s);
    if (at(s, c == '{' ? '}' : ']')) {
        close_container(w);
        *out_done = true;
        return BP_OK;
    }
    *out_done = false;
    return c == '{' ? (scan_member_key(w) ? BP_OK : BP_ERR_INVALID) : BP_OK;
}

/* After a complete value: closes every container that ends here and moves to the next member
 * or element. Sets *out_finished when the top-level value is complete. */
static bp_err
step_after_value(struct walk *w, bool *out_finished)
{
    struct scan *s = &w->s;
    bool object;

    while (w->depth > 0) {
        object = top_is_object(w);
        skip_ws(s);
        if (at(s, ',')) {
            s->pos++;
            skip_ws(s);
            *out_finished = false;
            return object && !scan_member_key(w) ? BP_ERR_INVALID : BP_OK;
        }
        if (!at(s, object ? '}' : ']')) {
            return BP_ERR_INVALID;
        }
        close_container(w);
    }
    *out_finished = true;
    return BP_OK;
}

bp_err
bp_jscan_walk(const char *doc, size_t len, const struct bp_jscan_visitor *vis, struct bp_jscan_value *out)
{
    struct walk w;
    struct bp_jscan_value v;
    bool done = false;
    bool finished = false;
    bp_err rc;

    w.s = (struct scan){(const unsigned char *)doc, len, 0};
    w.vis = vis;
    w.depth = 0;
    skip_ws(&w.s);
    v.span.off = w.s.pos;
    if (w.s.pos >= len) {
        return BP_ERR_INVALID;
    }
    v.type = type_of(w.s.p[w.s.pos]);
    while (!finished) {
        rc = step_value(&w, &done);
        if (rc != BP_OK) {
            return rc;
        }
        if (!done) {
            continue;
        }
        rc = step_after_value(&w, &finished);
        if (rc != BP_OK) {
            return rc;
        }
    }
    v.span.len = w.s.pos - v.span.off;
    *out = v;
    return BP_OK;
}

bp_err
bp_jscan_first(const char *doc, size_t len, struct bp_jscan_value *out)
{
    return bp_jscan_walk(doc, len, NULL, out);
}

bool
bp_jscan_only_ws(const char *doc, size_t len, size_t off)
{
    struct scan s = {(const unsigned char *)doc, len, off};

    skip_ws(&s);
    return s.pos >= len;
}

bp_err
bp_jscan_document(const char *doc, size_t len, struct bp_jscan_value *out)
{
    struct bp_jscan_value v;
    bp_err rc = bp_jscan_first(doc, len, &v);

    if (rc != BP_OK) {
        return rc;
    }
    if (!bp_jscan_only_ws(doc, len, v.span.off + v.span.len)) {
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

/* Skips one value of an already validated document: for a container only brackets outside
 * strings are counted, so this needs no stack whatever the depth. */
static bool
skip_value(struct scan *s, struct bp_jscan_value *out)
{
    size_t start = s->pos;
    size_t open = 0;
    unsigned char c;

    if (s->pos >= s->end) {
        return false;
    }
    out->type = type_of(s->p[s->pos]);
    if (out->type != BP_JSCAN_OBJECT && out->type != BP_JSCAN_ARRAY) {
        if (!scan_scalar(s, &out->type)) {
            return false;
        }
        out->span.off = start;
        out->span.len = s->pos - start;
        return true;
    }
    while (s->pos < s->end) {
        c = s->p[s->pos];
        if (c == '"') {
            if (!scan_string(s)) {
                return false;
            }
            continue;
        }
        s->pos++;
        if (c == '{' || c == '[') {
            open++;
        } else if (c == '}' || c == ']') {
            open--;
            if (open == 0) {
                out->span.off = start;
                out->span.len = s->pos - start;
                return true;
            }
        }
    }
    return false;
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
    BP_BUG_ON(!skip_value(&s, &v));
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
