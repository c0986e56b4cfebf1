#ifndef BP_HTTP_PARSER_H
#define BP_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* Strict HTTP/1.1 request parser (DESIGN §8). A pure function of bytes: no I/O, no allocation.
 * Every string it returns points into the caller's input, and the head's headers into the room
 * the caller gives: both must stay put while the head is used. */

#define BP_HTTP_MAX_HEADERS_CAP 128

struct bp_http_limits {
    size_t max_request_line; /* bytes of the request line without CRLF (default 8192) */
    size_t max_header_line;  /* bytes of one header line without CRLF (default 8192) */
    size_t max_headers;      /* header count, <= BP_HTTP_MAX_HEADERS_CAP (default 100) */
    size_t max_head_bytes;   /* the whole head including the final CRLF CRLF (default 32768) */
};

#define BP_HTTP_DEFAULT_MAX_REQUEST_LINE 8192
#define BP_HTTP_DEFAULT_MAX_HEADER_LINE 8192
#define BP_HTTP_DEFAULT_MAX_HEADERS 100
#define BP_HTTP_DEFAULT_MAX_HEAD_BYTES 32768

/* Fills *lim with the defaults above. */
void bp_http_limits_init(struct bp_http_limits *lim);

struct bp_http_header {
    const char *name;
    size_t name_len;
    const char *value; /* leading and trailing SP/HTAB removed */
    size_t value_len;
};

enum bp_http_framing {
    BP_HTTP_BODY_NONE,    /* no Content-Length, no Transfer-Encoding: empty body */
    BP_HTTP_BODY_LENGTH,  /* Content-Length: content_length bytes follow */
    BP_HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
};

struct bp_http_head {
    const char *method;
    size_t method_len;
    const char *target; /* origin-form: starts with '/' */
    size_t target_len;
    const char *path; /* target up to '?' */
    size_t path_len;
    const char *query; /* after '?', NULL when the target has no '?' */
    size_t query_len;
    int version_minor; /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
    /* n_headers of them: in the room the parse was given, until the owner copies them (a
     * request keeps only the ones its head has, not room for the most a head may have). */
    const struct bp_http_header *headers;
    size_t n_headers;
    enum bp_http_framing framing;
    uint64_t content_length;
    bool keep_alive;      /* HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with keep-alive */
    bool expect_continue; /* "Expect: 100-continue" */
};

/* Parses one request head at the start of buf[0..len). lim may be NULL for the defaults;
 * max_headers above BP_HTTP_MAX_HEADERS_CAP counts as the cap. The headers are written to room
 * (scratch: written on any outcome) and out->headers points there.
 * Returns BP_OK with *out filled and *out_consumed = bytes of the head (through the blank line,
 * including any skipped leading empty lines); out and out_consumed are written only on BP_OK;
 * BP_ERR_AGAIN when the head is incomplete but nothing is wrong yet (feed more bytes);
 * BP_ERR_LIMIT when a limit is exceeded (answer 431 or 400 and close), also while the head is
 * still incomplete, so endless header bytes are cut off as soon as they pass a limit;
 * BP_ERR_MALFORMED for every refusal of DESIGN §8: duplicate or non-numeric Content-Length,
 * Content-Length with Transfer-Encoding, any Transfer-Encoding other than a lone "chunked",
 * obsolete line folding, whitespace before a colon, NUL or control characters in the request
 * line or headers, bare LF, a target that is not origin-form, versions other than 1.0 and 1.1.
 * Also refused: HTTP/1.1 without exactly one Host (RFC 9112 §3.2), Transfer-Encoding in HTTP/1.0,
 * Content-Length that is not 1 to 19 decimal digits.
 * Leading empty lines (CRLF) before a request line are skipped, as RFC 9112 §2.2 allows.
 * Bytes are checked strictly left to right, so the result for a prefix of the input is either
 * BP_ERR_AGAIN or the same as for the whole input: callers may re-parse as bytes arrive. */
bp_err bp_http_parse_head(const char *buf, size_t len, const struct bp_http_limits *lim,
                          struct bp_http_header room[BP_HTTP_MAX_HEADERS_CAP],
                          struct bp_http_head *out, size_t *out_consumed);

/* Finds a header by case-insensitive name. Returns the first match or NULL; *out_count (may be
 * NULL) receives how many headers have that name. */
const struct bp_http_header *bp_http_head_find(const struct bp_http_head *h, const char *name,
                                               size_t *out_count);

/* Chunk size lines (with extensions) and trailer lines longer than this are malformed. */
#define BP_HTTP_CHUNK_LINE_MAX 4096
/* The whole trailer section (without the final CRLF) is bounded too. */
#define BP_HTTP_CHUNK_TRAILERS_MAX 8192

/* Incremental chunked body decoder. Zero-initialise, then feed bytes as they arrive. */
struct bp_http_chunked {
    int state;
    uint64_t remaining;   /* bytes left in the current chunk; the size while reading it */
    size_t line_len;      /* bytes of the current size/trailer line seen so far */
    size_t trailer_bytes; /* bytes of the trailer section seen so far */
    bool done;            /* the last chunk and trailers have been consumed */
};

/* Decodes from in[0..len): appends chunk data to body (bounded by body->max) and sets
 * *out_consumed to the bytes used. Returns BP_OK (check st->done; when not done, every byte was
 * consumed and more are needed), BP_ERR_LIMIT when the body would exceed body->max (refused as
 * soon as a chunk size line announces more than fits), or BP_ERR_MALFORMED (bad size, more than
 * 15 hex digits, missing CRLF, bare LF; chunk extensions are allowed but their line is bounded by
 * BP_HTTP_CHUNK_LINE_MAX; trailers are checked like header fields and discarded). Errors are
 * sticky: later calls return the same error. Bytes after the end of the message are not
 * consumed; once done, further calls consume nothing. */
bp_err bp_http_chunked_feed(struct bp_http_chunked *st, const char *in, size_t len, struct bp_buf *body,
                            size_t *out_consumed);

#endif
