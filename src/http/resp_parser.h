#ifndef BP_HTTP_RESP_PARSER_H
#define BP_HTTP_RESP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/parser.h"
#include "lib/err.h"

/* Strict HTTP/1.1 response-head parser: the answers of Core, read by the upstream client, held
 * to the request parser's rules (DESIGN §8: "the response parser must be as strict as the request
 * parser"). A pure function of bytes: no I/O, no allocation; everything it returns points into
 * the caller's input. Bodies are the caller's: bp_http_chunked_feed (parser.h) decodes chunked
 * ones, and bp_http_resp_body says which framing applies. */

/* Response headers beyond these are a malformed answer, not something to relay. */
#define BP_HTTP_RESP_MAX_HEADERS_CAP 256
#define BP_HTTP_RESP_DEFAULT_MAX_HEADERS 256
#define BP_HTTP_RESP_DEFAULT_MAX_HEAD_BYTES 65536

struct bp_http_resp_limits {
    size_t max_headers;    /* header count, <= BP_HTTP_RESP_MAX_HEADERS_CAP */
    size_t max_head_bytes; /* status line, headers and the blank line; also bounds each line */
};

struct bp_http_resp_head {
    int version_minor;  /* 0 or 1 */
    int status;         /* 100..599 */
    const char *reason; /* may be empty */
    size_t reason_len;
    struct bp_http_header headers[BP_HTTP_RESP_MAX_HEADERS_CAP];
    size_t n_headers;
    /* From the headers alone: BP_HTTP_BODY_NONE means neither Content-Length nor
     * Transfer-Encoding was sent (for a response, a body delimited by the connection's close
     * unless the status or the request says there is none: see bp_http_resp_body). */
    enum bp_http_framing framing;
    uint64_t content_length;
    bool keep_alive; /* HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive */
};

/* Parses one response head at the start of buf[0..len). lim may be NULL for the defaults.
 * Returns BP_OK with *out filled and *out_consumed = bytes of the head through its blank line
 * (out and out_consumed are written only on BP_OK); BP_ERR_AGAIN when the head is incomplete and
 * nothing is wrong yet; BP_ERR_LIMIT when it passes a limit (also while still incomplete);
 * BP_ERR_MALFORMED for: a status line other than "HTTP/1.0" or "HTTP/1.1", SP, three digits
 * (100..599), SP, a reason of HTAB/SP/VCHAR/obs-text, CRLF; a header line that is not a token,
 * ':', and HTAB/SP/VCHAR/obs-text (so NUL, a bare CR and other control bytes are refused);
 * whitespace before a colon; obsolete line folding; a bare LF; a duplicate Content-Length (even
 * with the same value) or one that is not 1 to 19 decimal digits; Content-Length together with
 * Transfer-Encoding; any Transfer-Encoding but one lone "chunked"; Transfer-Encoding in
 * HTTP/1.0. Interim (1xx) responses are parsed like any other: the caller skips them.
 * Bytes are checked strictly left to right, so a prefix of the input yields either BP_ERR_AGAIN
 * or the result of the whole input: callers may re-parse as bytes arrive. */
bp_err bp_http_parse_resp_head(const char *buf, size_t len, const struct bp_http_resp_limits *lim,
                               struct bp_http_resp_head *out, size_t *out_consumed);

/* How the body of a final response is delimited (RFC 9112 §6.3). */
enum bp_http_resp_body {
    BP_HTTP_RESP_BODY_NONE,   /* 1xx, 204, 304, or the answer to HEAD: no body, whatever the headers
                                 say */
    BP_HTTP_RESP_BODY_LENGTH, /* content_length bytes (possibly 0) */
    BP_HTTP_RESP_BODY_CHUNKED, /* chunked: decode with bp_http_chunked_feed */
    BP_HTTP_RESP_BODY_CLOSE,   /* everything until the connection closes */
};

enum bp_http_resp_body bp_http_resp_body(const struct bp_http_resp_head *h, bool request_was_head);

#endif
