/* libFuzzer target for the strict HTTP/1.1 request parser (DESIGN §8).
 *
 * Parses the input as a request head with default limits and, for a chunked request, decodes
 * the rest as a chunked body into a bounded buffer. The same bytes are then fed again split in
 * two at a position chosen by data[0]; the parser promises that a prefix yields either
 * BP_ERR_AGAIN or the whole input's result, and the chunked decoder that any split decodes the
 * same way. Any disagreement, or a returned span outside the input, aborts via BP_BUG_ON. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "lib/buf.h"
#include "lib/bug.h"

#define FUZZ_BODY_MAX 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
span_inside(const char *base, size_t len, const char *p, size_t n)
{
    return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static void
check_head(const char *buf, size_t consumed, const struct bp_http_head *h)
{
    BP_BUG_ON(!span_inside(buf, consumed, h->method, h->method_len));
    BP_BUG_ON(h->method_len == 0);
    BP_BUG_ON(!span_inside(buf, consumed, h->target, h->target_len));
    BP_BUG_ON(h->target_len == 0 || h->target[0] != '/');
    BP_BUG_ON(h->path != h->target || h->path_len > h->target_len);
    BP_BUG_ON(memchr(h->path, '?', h->path_len) != NULL);
    if (h->query != NULL) {
        BP_BUG_ON(h->path_len + 1 + h->query_len != h->target_len);
    } else {
        BP_BUG_ON(h->path_len != h->target_len);
    }
    BP_BUG_ON(h->version_minor != 0 && h->version_minor != 1);
    BP_BUG_ON(h->n_headers > BP_HTTP_DEFAULT_MAX_HEADERS);
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct bp_http_header *f = &h->headers[i];
        BP_BUG_ON(f->name_len == 0);
        BP_BUG_ON(!span_inside(buf, consumed, f->name, f->name_len));
        BP_BUG_ON(!span_inside(buf, consumed, f->value, f->value_len));
        BP_BUG_ON(memchr(f->value, '\r', f->value_len) != NULL);
        BP_BUG_ON(memchr(f->value, '\n', f->value_len) != NULL);
        BP_BUG_ON(memchr(f->value, '\0', f->value_len) != NULL);
    }
    if (h->framing == BP_HTTP_BODY_CHUNKED) {
        size_t n_te = 0;
        size_t n_cl = 0;
        bp_http_head_find(h, "transfer-encoding", &n_te);
        bp_http_head_find(h, "content-length", &n_cl);
        BP_BUG_ON(n_te != 1 || n_cl != 0 || h->version_minor != 1);
    }
    if (h->version_minor == 1) {
        size_t n_host = 0;
        bp_http_head_find(h, "host", &n_host);
        BP_BUG_ON(n_host != 1);
    }
}

static bool
same_head(const struct bp_http_head *a, const struct bp_http_head *b)
{
    if (a->method != b->method || a->method_len != b->method_len || a->target != b->target ||
        a->target_len != b->target_len || a->query != b->query || a->query_len != b->query_len ||
        a->version_minor != b->version_minor || a->n_headers != b->n_headers || a->framing != b->framing ||
        a->content_length != b->content_length || a->keep_alive != b->keep_alive ||
        a->expect_continue != b->expect_continue) {
        return false;
    }
    for (size_t i = 0; i < a->n_headers; i++) {
        if (a->headers[i].name != b->headers[i].name || a->headers[i].name_len != b->headers[i].name_len ||
            a->headers[i].value != b->headers[i].value ||
            a->headers[i].value_len != b->headers[i].value_len) {
            return false;
        }
    }
    return true;
}

struct chunk_run {
    bp_err rc;
    bool done;
    size_t consumed;
};

/* Decodes in[0..len) fed as in[0..split) then the rest. */
static struct chunk_run
run_chunked(const char *in, size_t len, size_t split, struct bp_buf *body)
{
    struct bp_http_chunked st;
    struct chunk_run r = {BP_OK, false, 0};
    size_t used = 0;

    memset(&st, 0, sizeof(st));
    r.rc = bp_http_chunked_feed(&st, in, split, body, &used);
    if (r.rc != BP_OK) {
        return r;
    }
    BP_BUG_ON(used > split);
    BP_BUG_ON(!st.done && used != split);
    r.consumed = used;
    if (!st.done) {
        r.rc = bp_http_chunked_feed(&st, in + split, len - split, body, &used);
        if (r.rc != BP_OK) {
            return r;
        }
        BP_BUG_ON(used > len - split);
        BP_BUG_ON(!st.done && used != len - split);
        r.consumed += used;
    }
    r.done = st.done;
    BP_BUG_ON(body->len > body->max);
    return r;
}

static void
check_chunked(const char *in, size_t len, size_t split)
{
    struct bp_buf whole_body;
    struct bp_buf split_body;
    struct chunk_run whole;
    struct chunk_run parts;

    bp_buf_init(&whole_body, FUZZ_BODY_MAX);
    bp_buf_init(&split_body, FUZZ_BODY_MAX);
    whole = run_chunked(in, len, len, &whole_body);
    parts = run_chunked(in, len, split, &split_body);
    BP_BUG_ON(whole.rc != parts.rc);
    if (whole.rc == BP_OK) {
        BP_BUG_ON(whole.done != parts.done);
        BP_BUG_ON(whole.consumed != parts.consumed);
        BP_BUG_ON(whole_body.len != split_body.len);
        BP_BUG_ON(whole_body.len > 0 && memcmp(whole_body.data, split_body.data, whole_body.len) != 0);
    }
    bp_buf_cleanup(&whole_body);
    bp_buf_cleanup(&split_body);
}

/* Moves h's headers out of the room into a block of exactly their number, so that ASan catches a
 * read past the last one. Returns the block, for free(). */
static struct bp_http_header *
exact_headers(struct bp_http_head *h)
{
    struct bp_http_header *copy = malloc((h->n_headers > 0 ? h->n_headers : 1) * sizeof(*copy));

    BP_BUG_ON(copy == NULL);
    if (h->n_headers > 0) {
        memcpy(copy, h->headers, h->n_headers * sizeof(*copy));
    }
    h->headers = copy;
    return copy;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct bp_http_header whole_room[BP_HTTP_MAX_HEADERS_CAP];
    static struct bp_http_header prefix_room[BP_HTTP_MAX_HEADERS_CAP];
    static struct bp_http_head whole;
    static struct bp_http_head prefix;
    const char *buf = (const char *)data;
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    size_t consumed = 0;
    size_t prefix_consumed = 0;
    struct bp_http_header *whole_exact = NULL;
    struct bp_http_header *prefix_exact = NULL;
    bp_err rc;
    bp_err prefix_rc;

    rc = bp_http_parse_head(buf, size, NULL, whole_room, &whole, &consumed);
    BP_BUG_ON(rc != BP_OK && rc != BP_ERR_AGAIN && rc != BP_ERR_LIMIT && rc != BP_ERR_MALFORMED);
    if (rc == BP_OK) {
        BP_BUG_ON(consumed == 0 || consumed > size);
        BP_BUG_ON(consumed > BP_HTTP_DEFAULT_MAX_HEAD_BYTES);
        whole_exact = exact_headers(&whole);
        check_head(buf, consumed, &whole);
    }
    if (rc == BP_ERR_AGAIN) {
        BP_BUG_ON(size >= BP_HTTP_DEFAULT_MAX_HEAD_BYTES + 1);
    }

    /* A prefix is either incomplete or already decides the whole input's result. */
    prefix_rc = bp_http_parse_head(buf, split, NULL, prefix_room, &prefix, &prefix_consumed);
    if (prefix_rc != BP_ERR_AGAIN) {
        BP_BUG_ON(prefix_rc != rc);
        if (rc == BP_OK) {
            prefix_exact = exact_headers(&prefix);
            BP_BUG_ON(prefix_consumed != consumed);
            BP_BUG_ON(!same_head(&prefix, &whole));
        }
    } else if (rc == BP_OK) {
        BP_BUG_ON(split >= consumed);
    }

    if (rc == BP_OK && whole.framing == BP_HTTP_BODY_CHUNKED) {
        const char *body = buf + consumed;
        size_t body_len = size - consumed;
        check_chunked(body, body_len, body_len > 0 ? split % (body_len + 1) : 0);
    }
    free(whole_exact);
    free(prefix_exact);
    return 0;
}
