/* Strict HTTP/1.1 request parser (DESIGN §8).
 *
 * Purpose: turn client bytes into a request head and a decoded chunked body, refusing every
 * ambiguity a smuggling attack could use (duplicate or non-numeric Content-Length, CL with TE,
 * TE other than a lone "chunked", obs-fold, whitespace before a colon, control bytes, bare LF,
 * non-origin-form targets, versions other than 1.0 and 1.1).
 *
 * Threads: none of its own; every function is pure over the caller's bytes and state.
 *
 * Invariants: the head parser walks the bytes once, strictly left to right, and every refusal is
 * decided at the byte that makes it certain. A prefix of the input therefore yields either
 * BP_ERR_AGAIN or exactly the result of the whole input, which lets the connection re-parse its
 * growing buffer, and lets limits cut off an endless head before its end arrives. The chunked
 * decoder is a byte-level state machine for the same reason: any split of the input decodes the
 * same way, and it never reads past the final CRLF (pipelining).
 */
#include "http/parser.h"

#include <stddef.h>
#include <string.h>

#include "lib/bug.h"
#include "lib/str.h"

void
bp_http_limits_init(struct bp_http_limits *lim)
{
    lim->max_request_line = BP_HTTP_DEFAULT_MAX_REQUEST_LINE;
    lim->max_header_line = BP_HTTP_DEFAULT_MAX_HEADER_LINE;
    lim->max_headers = BP_HTTP_DEFAULT_MAX_HEADERS;
    lim->max_head_bytes = BP_HTTP_DEFAULT_MAX_HEAD_BYTES;
}

/* RFC 9110 §5.6.2 tchar: DIGIT, ALPHA and !#$%&'*+-.^_`|~, as a table (one load per byte on
 * the hot path). */
static const unsigned char tchar_table[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static bool
is_tchar(unsigned char c)
{
    return tchar_table[c] != 0;
}

/* A byte allowed inside a field value: HTAB, SP, VCHAR or obs-text (RFC 9110 §5.5). */
static bool
is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool
is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* ---- request head ---------------------------------------------------------------------- */

enum head_state {
    HS_START,    /* before the request line; empty lines may come first */
    HS_START_LF, /* after a CR of a leading empty line */
    HS_METHOD,
    HS_TARGET_START, /* the byte after the first SP */
    HS_TARGET,
    HS_VERSION,
    HS_RL_LF,      /* after the request line's CR */
    HS_LINE_START, /* start of a header line or of the blank line */
    HS_NAME,
    HS_VALUE,
    HS_HDR_LF, /* after a header line's CR */
    HS_END_LF, /* after the blank line's CR */
    HS_DONE,
};

struct head_ctx {
    const char *buf;
    struct bp_http_limits lim;
    enum head_state state;
    size_t line_start; /* index of the current line's first byte */
    size_t mark;       /* start of the current element: target, version or the colon */
    struct bp_http_head *h;
    struct bp_http_header *room; /* where h's headers are written */
    bool seen_cl;
    bool seen_te;
    size_t n_host;
    bool conn_close;
    bool conn_keep_alive;
};

static const char version_prefix[] = "HTTP/1.";

static bp_err
step_request_line(struct head_ctx *x, size_t i, unsigned char c)
{
    struct bp_http_head *h = x->h;

    if (c != '\r' && x->state != HS_RL_LF && i - x->line_start >= x->lim.max_request_line) {
        return BP_ERR_LIMIT;
    }
    switch (x->state) {
    case HS_METHOD:
        if (c == ' ' && i > x->line_start) {
            h->method = x->buf + x->line_start;
            h->method_len = i - x->line_start;
            x->state = HS_TARGET_START;
            return BP_OK;
        }
        return is_tchar(c) ? BP_OK : BP_ERR_MALFORMED;
    case HS_TARGET_START:
        /* Only origin-form: absolute-form, authority-form and "*" are refused (DESIGN §8). */
        if (c != '/') {
            return BP_ERR_MALFORMED;
        }
        x->mark = i;
        x->state = HS_TARGET;
        return BP_OK;
    case HS_TARGET:
        if (c == ' ') {
            h->target = x->buf + x->mark;
            h->target_len = i - x->mark;
            x->mark = i + 1;
            x->state = HS_VERSION;
            return BP_OK;
        }
        return (c >= 0x21 && c <= 0x7e) ? BP_OK : BP_ERR_MALFORMED;
    case HS_VERSION: {
        size_t k = i - x->mark;
        if (k < sizeof(version_prefix) - 1) {
            return c == (unsigned char)version_prefix[k] ? BP_OK : BP_ERR_MALFORMED;
        }
        if (k == sizeof(version_prefix) - 1) {
            if (c != '0' && c != '1') {
                return BP_ERR_MALFORMED;
            }
            h->version_minor = c - '0';
            return BP_OK;
        }
        if (c != '\r') {
            return BP_ERR_MALFORMED;
        }
        x->state = HS_RL_LF;
        return BP_OK;
    }
    case HS_RL_LF:
        if (c != '\n') {
            return BP_ERR_MALFORMED;
        }
        x->line_start = i + 1;
        x->state = HS_LINE_START;
        return BP_OK;
    default:
        BP_UNREACHABLE();
        return BP_ERR_MALFORMED;
    }
}

/* Connection is a comma-separated token list; only "close" and "keep-alive" matter here. */
static void
scan_connection(struct head_ctx *x, const char *v, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t start;
        size_t end;
        while (i < len && (is_ows((unsigned char)v[i]) || v[i] == ',')) {
            i++;
        }
        start = i;
        while (i < len && v[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && is_ows((unsigned char)v[end - 1])) {
            end--;
        }
        if (bp_str_ieq(v + start, end - start, "close")) {
            x->conn_close = true;
        } else if (bp_str_ieq(v + start, end - start, "keep-alive")) {
            x->conn_keep_alive = true;
        }
    }
}

/* Framing and connection rules that a single header line decides (DESIGN §8). */
static bp_err
apply_header(struct head_ctx *x, const struct bp_http_header *f)
{
    struct bp_http_head *h = x->h;

    if (bp_str_ieq(f->name, f->name_len, "content-length")) {
        if (x->seen_cl || x->seen_te || f->value_len > 19) {
            return BP_ERR_MALFORMED;
        }
        if (bp_str_parse_u64(f->value, f->value_len, UINT64_MAX, &h->content_length) != BP_OK) {
            return BP_ERR_MALFORMED;
        }
        x->seen_cl = true;
        h->framing = BP_HTTP_BODY_LENGTH;
    } else if (bp_str_ieq(f->name, f->name_len, "transfer-encoding")) {
        if (x->seen_te || x->seen_cl || h->version_minor == 0) {
            return BP_ERR_MALFORMED;
        }
        if (!bp_str_ieq(f->value, f->value_len, "chunked")) {
            return BP_ERR_MALFORMED;
        }
        x->seen_te = true;
        h->framing = BP_HTTP_BODY_CHUNKED;
    } else if (bp_str_ieq(f->name, f->name_len, "host")) {
        x->n_host++;
        if (x->n_host > 1) {
            return BP_ERR_MALFORMED;
        }
    } else if (bp_str_ieq(f->name, f->name_len, "connection")) {
        scan_connection(x, f->value, f->value_len);
    } else if (bp_str_ieq(f->name, f->name_len, "expect")) {
        /* RFC 9110 §10.1.1: a 1.0 server must ignore 100-continue. */
        if (h->version_minor == 1 && bp_str_ieq(f->value, f->value_len, "100-continue")) {
            h->expect_continue = true;
        }
    }
    return BP_OK;
}

/* Called at the LF ending a header line whose CR is at cr. */
static bp_err
finish_header(struct head_ctx *x, size_t cr)
{
    struct bp_http_header *f = &x->room[x->h->n_headers];
    size_t vs = x->mark + 1;
    size_t ve = cr;

    while (vs < ve && is_ows((unsigned char)x->buf[vs])) {
        vs++;
    }
    while (ve > vs && is_ows((unsigned char)x->buf[ve - 1])) {
        ve--;
    }
    f->name = x->buf + x->line_start;
    f->name_len = x->mark - x->line_start;
    f->value = x->buf + vs;
    f->value_len = ve - vs;
    x->h->n_headers++;
    return apply_header(x, f);
}

static bp_err
step_header(struct head_ctx *x, size_t i, unsigned char c)
{
    size_t max_headers = x->lim.max_headers;

    if (max_headers > BP_HTTP_MAX_HEADERS_CAP) {
        max_headers = BP_HTTP_MAX_HEADERS_CAP;
    }
    if (c != '\r' && x->state != HS_HDR_LF && x->state != HS_END_LF &&
        i - x->line_start >= x->lim.max_header_line) {
        return BP_ERR_LIMIT;
    }
    switch (x->state) {
    case HS_LINE_START:
        if (c == '\r') {
            x->state = HS_END_LF;
            return BP_OK;
        }
        /* A leading SP/HTAB is obs-fold, a leading ':' an empty name: both refused. */
        if (!is_tchar(c)) {
            return BP_ERR_MALFORMED;
        }
        if (x->h->n_headers >= max_headers) {
            return BP_ERR_LIMIT;
        }
        x->state = HS_NAME;
        return BP_OK;
    case HS_NAME:
        if (c == ':') {
            x->mark = i;
            x->state = HS_VALUE;
            return BP_OK;
        }
        /* Whitespace before the colon lands here too (RFC 9112 §5.1). */
        return is_tchar(c) ? BP_OK : BP_ERR_MALFORMED;
    case HS_VALUE:
        if (c == '\r') {
            x->state = HS_HDR_LF;
            return BP_OK;
        }
        return is_value_char(c) ? BP_OK : BP_ERR_MALFORMED;
    case HS_HDR_LF:
        if (c != '\n') {
            return BP_ERR_MALFORMED;
        }
        x->state = HS_LINE_START;
        {
            bp_err rc = finish_header(x, i - 1);
            x->line_start = i + 1;
            return rc;
        }
    case HS_END_LF:
        if (c != '\n') {
            return BP_ERR_MALFORMED;
        }
        /* RFC 9112 §3.2: a 1.1 request has exactly one Host (a second one was refused above). */
        if (x->h->version_minor == 1 && x->n_host != 1) {
            return BP_ERR_MALFORMED;
        }
        x->state = HS_DONE;
        return BP_OK;
    default:
        BP_UNREACHABLE();
        return BP_ERR_MALFORMED;
    }
}

static bp_err
step_head(struct head_ctx *x, size_t i, unsigned char c)
{
    switch (x->state) {
    case HS_START:
        if (c == '\r') {
            x->state = HS_START_LF;
            return BP_OK;
        }
        x->line_start = i;
        x->state = HS_METHOD;
        return step_request_line(x, i, c);
    case HS_START_LF:
        if (c != '\n') {
            return BP_ERR_MALFORMED;
        }
        x->state = HS_START;
        return BP_OK;
    case HS_METHOD:
    case HS_TARGET_START:
    case HS_TARGET:
    case HS_VERSION:
    case HS_RL_LF:
        return step_request_line(x, i, c);
    default:
        return step_header(x, i, c);
    }
}

/* The end of the run of bytes from i on that the current state takes without a change: a
 * target's VCHARs, a name's tchars, a value's bytes up to its CR. Stepping them one by one
 * through step_head would do the same (accept each, change nothing), at several times the cost
 * per byte; end keeps every limit where the byte-by-byte checks put it, so the byte at end (the
 * one that would pass a limit) still goes through them. */
static size_t
skip_run(const struct head_ctx *x, const unsigned char *b, size_t i, size_t len)
{
    size_t line_max;
    size_t end = len < x->lim.max_head_bytes ? len : x->lim.max_head_bytes;

    switch (x->state) {
    case HS_TARGET:
        line_max = x->lim.max_request_line;
        break;
    case HS_NAME:
    case HS_VALUE:
        line_max = x->lim.max_header_line;
        break;
    default:
        return i;
    }
    if (x->line_start + line_max < end) {
        end = x->line_start + line_max;
    }
    switch (x->state) {
    case HS_TARGET:
        while (i < end && b[i] >= 0x21 && b[i] <= 0x7e) {
            i++;
        }
        break;
    case HS_NAME:
        while (i < end && tchar_table[b[i]] != 0) {
            i++;
        }
        break;
    default: /* HS_VALUE: CR ends it, and is no value char */
        while (i < end && is_value_char(b[i])) {
            i++;
        }
        break;
    }
    return i;
}

static void
split_target(struct bp_http_head *h)
{
    const char *q = memchr(h->target, '?', h->target_len);

    h->path = h->target;
    if (q == NULL) {
        h->path_len = h->target_len;
        h->query = NULL;
        h->query_len = 0;
        return;
    }
    h->path_len = (size_t)(q - h->target);
    h->query = q + 1;
    h->query_len = h->target_len - h->path_len - 1;
}

bp_err
bp_http_parse_head(const char *buf, size_t len, const struct bp_http_limits *lim,
                   struct bp_http_header room[BP_HTTP_MAX_HEADERS_CAP], struct bp_http_head *out,
                   size_t *out_consumed)
{
    struct bp_http_head h;
    struct head_ctx x;

    memset(&h, 0, sizeof(h));
    memset(&x, 0, sizeof(x));
    x.buf = buf;
    x.h = &h;
    x.room = room;
    h.headers = room;
    x.state = HS_START;
    if (lim != NULL) {
        x.lim = *lim;
    } else {
        bp_http_limits_init(&x.lim);
    }
    h.framing = BP_HTTP_BODY_NONE;

    for (size_t i = 0; i < len; i++) {
        bp_err rc;
        i = skip_run(&x, (const unsigned char *)buf, i, len);
        if (i >= len) {
            break;
        }
        /* Counted per byte so that an incomplete head is cut off once it passes the limit. */
        if (i >= x.lim.max_head_bytes) {
            return BP_ERR_LIMIT;
        }
        rc = step_head(&x, i, (unsigned char)buf[i]);
        if (rc != BP_OK) {
            return rc;
        }
        if (x.state == HS_DONE) {
            split_target(&h);
            if (h.version_minor == 1) {
                h.keep_alive = !x.conn_close;
            } else {
                h.keep_alive = x.conn_keep_alive && !x.conn_close;
            }
            *out = h;
            *out_consumed = i + 1;
            return BP_OK;
        }
    }
    return BP_ERR_AGAIN;
}

const struct bp_http_header *
bp_http_head_find(const struct bp_http_head *h, const char *name, size_t *out_count)
{
    const struct bp_http_header *first = NULL;
    size_t count = 0;

    for (size_t i = 0; i < h->n_headers; i++) {
        if (bp_str_ieq(h->headers[i].name, h->headers[i].name_len, name)) {
            if (first == NULL) {
                first = &h->headers[i];
            }
            count++;
        }
    }
    if (out_count != NULL) {
        *out_count = count;
    }
    return first;
}

/* ---- chunked body (RFC 9112 §7.1) ------------------------------------------------------- */

enum chunk_state {
    CS_SIZE_START = 0, /* zero-initialised state: expecting the first hex digit */
    CS_SIZE,
    CS_SIZE_BWS, /* whitespace after the size, only allowed before ';' */
    CS_EXT,      /* chunk extensions, up to CR; discarded */
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START, /* start of a trailer line or of the final blank line */
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_FINAL_LF,
    CS_DONE,
    CS_ERR_MALFORMED,
    CS_ERR_LIMIT,
};

/* At most 15 hex digits, so the size never overflows 64 bits. */
#define CHUNK_SIZE_MAX_DIGITS 15

/* The size line: 1*HEXDIG [BWS ";" ext] CRLF. Returns the next state. */
static enum chunk_state
step_size_line(struct bp_http_chunked *st, unsigned char c, const struct bp_buf *body)
{
    int d = bp_hex_digit_value(c);

    if (st->state != CS_SIZE_LF) {
        st->line_len++;
        if (st->line_len > BP_HTTP_CHUNK_LINE_MAX) {
            return CS_ERR_MALFORMED;
        }
    }
    switch (st->state) {
    case CS_SIZE_START:
        if (d < 0) {
            return CS_ERR_MALFORMED;
        }
        st->remaining = (uint64_t)d;
        return CS_SIZE;
    case CS_SIZE:
        if (d >= 0) {
            if (st->line_len > CHUNK_SIZE_MAX_DIGITS) {
                return CS_ERR_MALFORMED;
            }
            st->remaining = (st->remaining << 4) | (uint64_t)d;
            return CS_SIZE;
        }
        if (c == '\r') {
            return CS_SIZE_LF;
        }
        if (c == ';') {
            return CS_EXT;
        }
        return is_ows(c) ? CS_SIZE_BWS : CS_ERR_MALFORMED;
    case CS_SIZE_BWS:
        if (c == ';') {
            return CS_EXT;
        }
        return is_ows(c) ? CS_SIZE_BWS : CS_ERR_MALFORMED;
    case CS_EXT:
        if (c == '\r') {
            return CS_SIZE_LF;
        }
        return is_value_char(c) ? CS_EXT : CS_ERR_MALFORMED;
    case CS_SIZE_LF:
        if (c != '\n') {
            return CS_ERR_MALFORMED;
        }
        st->line_len = 0;
        if (st->remaining == 0) {
            return CS_TRAILER_START;
        }
        /* Refuse an oversized chunk when it is announced, not after its bytes arrived. */
        if (st->remaining > (uint64_t)(body->max - body->len)) {
            return CS_ERR_LIMIT;
        }
        return CS_DATA;
    default:
        BP_UNREACHABLE();
        return CS_ERR_MALFORMED;
    }
}

/* Trailer fields are checked like header fields (no obs-fold, no whitespace before the colon,
 * no control bytes) and then discarded. Returns the next state. */
static enum chunk_state
step_trailer(struct bp_http_chunked *st, unsigned char c)
{
    if (st->state != CS_TRAILER_LF && st->state != CS_FINAL_LF) {
        st->line_len++;
        st->trailer_bytes++;
        if (st->line_len > BP_HTTP_CHUNK_LINE_MAX || st->trailer_bytes > BP_HTTP_CHUNK_TRAILERS_MAX) {
            return CS_ERR_MALFORMED;
        }
    }
    switch (st->state) {
    case CS_TRAILER_START:
        if (c == '\r') {
            return CS_FINAL_LF;
        }
        return is_tchar(c) ? CS_TRAILER_NAME : CS_ERR_MALFORMED;
    case CS_TRAILER_NAME:
        if (c == ':') {
            return CS_TRAILER_VALUE;
        }
        return is_tchar(c) ? CS_TRAILER_NAME : CS_ERR_MALFORMED;
    case CS_TRAILER_VALUE:
        if (c == '\r') {
            return CS_TRAILER_LF;
        }
        return is_value_char(c) ? CS_TRAILER_VALUE : CS_ERR_MALFORMED;
    case CS_TRAILER_LF:
        if (c != '\n') {
            return CS_ERR_MALFORMED;
        }
        st->line_len = 0;
        return CS_TRAILER_START;
    case CS_FINAL_LF:
        return c == '\n' ? CS_DONE : CS_ERR_MALFORMED;
    default:
        BP_UNREACHABLE();
        return CS_ERR_MALFORMED;
    }
}

bp_err
bp_http_chunked_feed(struct bp_http_chunked *st, const char *in, size_t len, struct bp_buf *body,
                     size_t *out_consumed)
{
    size_t i = 0;

    while (i < len && st->state < CS_DONE) {
        unsigned char c = (unsigned char)in[i];
        switch (st->state) {
        case CS_DATA: {
            size_t n = len - i;
            bp_err rc;
            if ((uint64_t)n > st->remaining) {
                n = (size_t)st->remaining;
            }
            rc = bp_buf_append(body, in + i, n);
            if (rc != BP_OK) {
                st->state = rc == BP_ERR_LIMIT ? CS_ERR_LIMIT : CS_ERR_MALFORMED;
                return rc;
            }
            st->remaining -= n;
            i += n;
            if (st->remaining == 0) {
                st->state = CS_DATA_CR;
            }
            continue;
        }
        case CS_DATA_CR:
            st->state = c == '\r' ? CS_DATA_LF : CS_ERR_MALFORMED;
            break;
        case CS_DATA_LF:
            st->state = c == '\n' ? CS_SIZE_START : CS_ERR_MALFORMED;
            break;
        case CS_SIZE_START:
        case CS_SIZE:
        case CS_SIZE_BWS:
        case CS_EXT:
        case CS_SIZE_LF:
            st->state = step_size_line(st, c, body);
            break;
        default:
            st->state = step_trailer(st, c);
            break;
        }
        i++;
    }
    if (st->state == CS_ERR_MALFORMED) {
        return BP_ERR_MALFORMED;
    }
    if (st->state == CS_ERR_LIMIT) {
        return BP_ERR_LIMIT;
    }
    st->done = st->state == CS_DONE;
    *out_consumed = i;
    return BP_OK;
}
