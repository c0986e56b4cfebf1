/* Strict HTTP/1.1 response-head parser (DESIGN §8).
 *
 * Purpose: turn Core's bytes into a status and header fields, refusing what the request parser
 * (parser.c) refuses in a request: any ambiguity about where the message ends (duplicate or
 * non-numeric Content-Length, Content-Length with Transfer-Encoding, a coding other than a lone
 * "chunked"), obs-fold, whitespace before a colon, NUL, bare CR and other control bytes, bare LF.
 * A response we cannot frame with certainty could desynchronise a kept-alive connection to Core,
 * and a header value with a CR could split the header we relay to the client.
 *
 * Threads: none of its own; a pure function over the caller's bytes.
 *
 * Invariants: like parser.c, the bytes are walked once, strictly left to right, and a refusal is
 * decided at the byte that makes it certain, so a prefix of the input yields BP_ERR_AGAIN or the
 * whole input's result, and the head limit cuts off an endless head before its end arrives. The
 * character classes are the request parser's (RFC 9110 §5.6.2 tchar, §5.5 field-value bytes),
 * restated here because parser.c keeps them private.
 */
#include "http/resp_parser.h"

#include <string.h>
#include <strings.h>

#include "lib/bug.h"
#include "lib/str.h"

/* RFC 9110 §5.6.2 tchar, as a table: this runs over every byte of every answer. */
static const unsigned char tchar_table[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool
is_tchar(unsigned char c)
{
    return tchar_table[c] != 0;
}

/* HTAB, SP, VCHAR or obs-text (RFC 9110 §5.5): what a field value and a reason phrase may hold. */
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

enum state {
    ST_VERSION, /* "HTTP/1." */
    ST_MINOR,
    ST_SP1,
    ST_CODE,
    ST_REASON, /* after the SP that follows the code */
    ST_SL_LF,
    ST_LINE_START,
    ST_NAME,
    ST_VALUE,
    ST_HDR_LF,
    ST_END_LF,
    ST_DONE,
};

struct ctx {
    const char *buf;
    struct bp_http_resp_head *h;
    size_t max_headers;
    enum state state;
    size_t line_start;
    size_t mark; /* the colon of the current header, or the start of the reason */
    int code_digits;
    bool seen_cl;
    bool seen_te;
    bool conn_close;
    bool conn_keep_alive;
};

static const char version_prefix[] = "HTTP/1.";

/* Connection is a comma-separated token list; only "close" and "keep-alive" matter here. */
static void
scan_connection(struct ctx *x, const char *v, size_t len)
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

/* Length first: most names differ in length from the few that matter, and this runs for every
 * field of every answer. */
#define NAME_IS(f, lit)                                                                            \
    ((f)->name_len == sizeof(lit) - 1 && strncasecmp((f)->name, (lit), sizeof(lit) - 1) == 0)

/* The framing rules one header line decides (DESIGN §8, as for requests). */
static bp_err
apply_header(struct ctx *x, const struct bp_http_header *f)
{
    struct bp_http_resp_head *h = x->h;

    if (NAME_IS(f, "content-length")) {
        if (x->seen_cl || x->seen_te || f->value_len > 19) {
            return BP_ERR_MALFORMED;
        }
        if (bp_str_parse_u64(f->value, f->value_len, UINT64_MAX, &h->content_length) != BP_OK) {
            return BP_ERR_MALFORMED;
        }
        x->seen_cl = true;
        h->framing = BP_HTTP_BODY_LENGTH;
    } else if (NAME_IS(f, "transfer-encoding")) {
        if (x->seen_te || x->seen_cl || h->version_minor == 0) {
            return BP_ERR_MALFORMED;
        }
        if (!bp_str_ieq(f->value, f->value_len, "chunked")) {
            return BP_ERR_MALFORMED;
        }
        x->seen_te = true;
        h->framing = BP_HTTP_BODY_CHUNKED;
    } else if (NAME_IS(f, "connection")) {
        scan_connection(x, f->value, f->value_len);
    }
    return BP_OK;
}

/* At the LF that ends a header line whose CR is at cr. */
static bp_err
finish_header(struct ctx *x, size_t cr)
{
    struct bp_http_header *f = &x->h->headers[x->h->n_headers];
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
step_status_line(struct ctx *x, size_t i, unsigned char c)
{
    struct bp_http_resp_head *h = x->h;

    switch (x->state) {
    case ST_VERSION:
        if (c != (unsigned char)version_prefix[i]) {
            return BP_ERR_MALFORMED;
        }
        if (i == sizeof(version_prefix) - 2) {
            x->state = ST_MINOR;
        }
        return BP_OK;
    case ST_MINOR:
        if (c != '0' && c != '1') {
            return BP_ERR_MALFORMED;
        }
        h->version_minor = c - '0';
        x->state = ST_SP1;
        return BP_OK;
    case ST_SP1:
        if (c != ' ') {
            return BP_ERR_MALFORMED;
        }
        x->state = ST_CODE;
        return BP_OK;
    case ST_CODE:
        if (x->code_digits == 3) {
            if (c != ' ') {
                return BP_ERR_MALFORMED;
            }
            x->mark = i + 1;
            x->state = ST_REASON;
            return BP_OK;
        }
        if (c < '0' || c > '9' || (x->code_digits == 0 && (c < '1' || c > '5'))) {
            return BP_ERR_MALFORMED;
        }
        h->status = h->status * 10 + (c - '0');
        x->code_digits++;
        return BP_OK;
    case ST_REASON:
        if (c == '\r') {
            h->reason = x->buf + x->mark;
            h->reason_len = i - x->mark;
            x->state = ST_SL_LF;
            return BP_OK;
        }
        return is_value_char(c) ? BP_OK : BP_ERR_MALFORMED;
    case ST_SL_LF:
        if (c != '\n') {
            return BP_ERR_MALFORMED;
        }
        x->line_start = i + 1;
        x->state = ST_LINE_START;
        return BP_OK;
    default:
        BP_UNREACHABLE();
        return BP_ERR_MALFORMED;
    }
}

static bp_err
step_header(struct ctx *x, size_t i, unsigned char c)
{
    switch (x->state) {
    case ST_LINE_START:
        if (c == '\r') {
            x->state = ST_END_LF;
            return BP_OK;
        }
        /* A leading SP/HTAB is obs-fold, a leading ':' an empty name: both refused. */
        if (!is_tchar(c)) {
            return BP_ERR_MALFORMED;
        }
        if (x->h->n_headers >= x->max_headers) {
            return BP_ERR_LIMIT;
        }
        x->state = ST_NAME;
        return BP_OK;
    case ST_NAME:
        if (c == ':') {
            x->mark = i;
            x->state = ST_VALUE;
            return BP_OK;
        }
        /* Whitespace before the colon lands here too (RFC 9112 §5.1). */
        return is_tchar(c) ? BP_OK : BP_ERR_MALFORMED;
    case ST_VALUE:
        if (c == '\r') {
            x->state = ST_HDR_LF;
            return BP_OK;
        }
        return is_value_char(c) ? BP_OK : BP_ERR_MALFORMED;
    case ST_HDR_LF: {
        bp_err rc;
        /* A CR not followed by LF is a bare CR: refused, never read as a line end. */
        if (c != '\n') {
            return BP_ERR_MALFORMED;
        }
        rc = finish_header(x, i - 1);
        x->line_start = i + 1;
        x->state = ST_LINE_START;
        return rc;
    }
    case ST_END_LF:
        if (c != '\n') {
            return BP_ERR_MALFORMED;
        }
        x->state = ST_DONE;
        return BP_OK;
    default:
        BP_UNREACHABLE();
        return BP_ERR_MALFORMED;
    }
}

bp_err
bp_http_parse_resp_head(const char *buf, size_t len, const struct bp_http_resp_limits *lim,
                        struct bp_http_resp_head *out, size_t *out_consumed)
{
    /* Static-size scratch on the stack: only the headers actually seen are copied out. */
    struct bp_http_resp_head h;
    struct ctx x;
    size_t max_head = lim != NULL ? lim->max_head_bytes : BP_HTTP_RESP_DEFAULT_MAX_HEAD_BYTES;
    size_t scan = len < max_head ? len : max_head;

    memset(&x, 0, sizeof(x));
    x.buf = buf;
    x.h = &h;
    x.state = ST_VERSION;
    x.max_headers = lim != NULL ? lim->max_headers : BP_HTTP_RESP_DEFAULT_MAX_HEADERS;
    if (x.max_headers > BP_HTTP_RESP_MAX_HEADERS_CAP) {
        x.max_headers = BP_HTTP_RESP_MAX_HEADERS_CAP;
    }
    h.version_minor = 0;
    h.status = 0;
    h.reason = NULL;
    h.reason_len = 0;
    h.n_headers = 0;
    h.framing = BP_HTTP_BODY_NONE;
    h.content_length = 0;
    h.keep_alive = false;

    for (size_t i = 0; i < scan; i++) {
        unsigned char c = (unsigned char)buf[i];
        bp_err rc;

        /* The hot states first: most bytes of a head are field names and values. */
        if (x.state == ST_VALUE && c != '\r') {
            if (!is_value_char(c)) {
                return BP_ERR_MALFORMED;
            }
            continue;
        }
        if (x.state == ST_NAME && c != ':') {
            if (!is_tchar(c)) {
                return BP_ERR_MALFORMED;
            }
            continue;
        }
        if (x.state <= ST_SL_LF) {
            rc = step_status_line(&x, i, c);
        } else {
            rc = step_header(&x, i, c);
        }
        if (rc != BP_OK) {
            return rc;
        }
        if (x.state == ST_DONE) {
            h.keep_alive =
                h.version_minor == 1 ? !x.conn_close : x.conn_keep_alive && !x.conn_close;
            out->version_minor = h.version_minor;
            out->status = h.status;
            out->reason = h.reason;
            out->reason_len = h.reason_len;
            memcpy(out->headers, h.headers, h.n_headers * sizeof(h.headers[0]));
            out->n_headers = h.n_headers;
            out->framing = h.framing;
            out->content_length = h.content_length;
            out->keep_alive = h.keep_alive;
            *out_consumed = i + 1;
            return BP_OK;
        }
    }
    /* Counted like the request parser: a head whose end is not within the limit is refused as
     * soon as a byte past the limit arrives. */
    return len > max_head ? BP_ERR_LIMIT : BP_ERR_AGAIN;
}

enum bp_http_resp_body
bp_http_resp_body(const struct bp_http_resp_head *h, bool request_was_head)
{
    /* RFC 9112 §6.3 rules 1 and 2: these never have content, whatever the framing headers say. */
    if (request_was_head || (h->status >= 100 && h->status < 200) || h->status == 204 ||
        h->status == 304) {
        return BP_HTTP_RESP_BODY_NONE;
    }
    switch (h->framing) {
    case BP_HTTP_BODY_LENGTH:
        return BP_HTTP_RESP_BODY_LENGTH;
    case BP_HTTP_BODY_CHUNKED:
        return BP_HTTP_RESP_BODY_CHUNKED;
    case BP_HTTP_BODY_NONE:
        break;
    }
    /* Rule 8: no framing header means the body runs until the server closes. */
    return BP_HTTP_RESP_BODY_CLOSE;
}
