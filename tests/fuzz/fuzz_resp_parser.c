/* libFuzzer target for the strict response-head parser (the upstream client's reader of Core's
 * answers, DESIGN §8).
 *
 * Parses the input as a sequence of response heads the way the upstream client does (interim
 * 1xx heads skipped, up to a bound), checks every span and invariant of an accepted head, and
 * decodes what follows a chunked final head with bp_http_chunked_feed. The bytes are also parsed
 * split in two at a position chosen by data[0]: a prefix must yield BP_ERR_AGAIN or the whole
 * input's result. Any disagreement, or a span outside the input, aborts via BP_BUG_ON. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/resp_parser.h"
#include "lib/buf.h"
#include "lib/bug.h"

#define FUZZ_BODY_MAX 65536
#define FUZZ_MAX_INTERIM 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
span_inside(const char *base, size_t len, const char *p, size_t n)
{
    return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static bool
is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void
check_head(const char *buf, size_t consumed, const struct bp_http_resp_head *h)
{
    BP_BUG_ON(h->version_minor != 0 && h->version_minor != 1);
    BP_BUG_ON(h->status < 100 || h->status > 599);
    BP_BUG_ON(!span_inside(buf, consumed, h->reason, h->reason_len));
    BP_BUG_ON(h->n_headers > BP_HTTP_RESP_DEFAULT_MAX_HEADERS);
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct bp_http_header *f = &h->headers[i];
        BP_BUG_ON(f->name_len == 0);
        BP_BUG_ON(!span_inside(buf, consumed, f->name, f->name_len));
        BP_BUG_ON(!span_inside(buf, consumed, f->value, f->value_len));
        for (size_t k = 0; k < f->name_len; k++) {
            BP_BUG_ON(!is_tchar((unsigned char)f->name[k]));
        }
        for (size_t k = 0; k < f->value_len; k++) {
            unsigned char c = (unsigned char)f->value[k];
            BP_BUG_ON(c != '\t' && (c < 0x20 || c == 0x7f));
        }
        BP_BUG_ON(f->value_len > 0 && (f->value[0] == ' ' || f->value[f->value_len - 1] == ' '));
    }
    if (h->framing == BP_HTTP_BODY_CHUNKED) {
        BP_BUG_ON(h->version_minor != 1);
    }
}

static void
check_chunked(const char *in, size_t len, size_t split)
{
    struct bp_http_chunked whole_st;
    struct bp_http_chunked part_st;
    struct bp_buf whole;
    struct bp_buf parts;
    size_t used = 0;
    size_t used2 = 0;
    bp_err rc_whole;
    bp_err rc_parts;

    memset(&whole_st, 0, sizeof(whole_st));
    memset(&part_st, 0, sizeof(part_st));
    bp_buf_init(&whole, FUZZ_BODY_MAX);
    bp_buf_init(&parts, FUZZ_BODY_MAX);
    rc_whole = bp_http_chunked_feed(&whole_st, in, len, &whole, &used);
    rc_parts = bp_http_chunked_feed(&part_st, in, split, &parts, &used2);
    if (rc_parts == BP_OK && !part_st.done) {
        size_t more = 0;
        rc_parts = bp_http_chunked_feed(&part_st, in + split, len - split, &parts, &more);
        used2 += more;
    }
    BP_BUG_ON(rc_whole != rc_parts);
    if (rc_whole == BP_OK) {
        BP_BUG_ON(whole_st.done != part_st.done || used != used2);
        BP_BUG_ON(whole.len != parts.len ||
                  (whole.len > 0 && memcmp(whole.data, parts.data, whole.len) != 0));
    }
    bp_buf_cleanup(&whole);
    bp_buf_cleanup(&parts);
}

/* Skips interim heads like the client; returns the final head's result. */
static bp_err
parse_final(const char *buf, size_t len, struct bp_http_resp_head *h, size_t *out_off)
{
    size_t off = 0;

    for (int n = 0; n <= FUZZ_MAX_INTERIM; n++) {
        size_t consumed = 0;
        bp_err rc = bp_http_parse_resp_head(buf + off, len - off, NULL, h, &consumed);
        if (rc != BP_OK) {
            return rc;
        }
        BP_BUG_ON(consumed == 0 || consumed > len - off);
        check_head(buf + off, consumed, h);
        off += consumed;
        if (h->status >= 200 || h->status == 101) {
            *out_off = off;
            return BP_OK;
        }
    }
    return BP_ERR_MALFORMED;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct bp_http_resp_head whole;
    static struct bp_http_resp_head prefix;
    const char *buf = (const char *)data;
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    size_t consumed = 0;
    size_t prefix_consumed = 0;
    size_t body_off = 0;
    bp_err rc;
    bp_err prefix_rc;

    rc = bp_http_parse_resp_head(buf, size, NULL, &whole, &consumed);
    BP_BUG_ON(rc != BP_OK && rc != BP_ERR_AGAIN && rc != BP_ERR_LIMIT && rc != BP_ERR_MALFORMED);
    if (rc == BP_OK) {
        BP_BUG_ON(consumed == 0 || consumed > size ||
                  consumed > BP_HTTP_RESP_DEFAULT_MAX_HEAD_BYTES);
        check_head(buf, consumed, &whole);
    } else if (rc == BP_ERR_AGAIN) {
        BP_BUG_ON(size > BP_HTTP_RESP_DEFAULT_MAX_HEAD_BYTES);
    }

    prefix_rc = bp_http_parse_resp_head(buf, split, NULL, &prefix, &prefix_consumed);
    if (prefix_rc != BP_ERR_AGAIN) {
        BP_BUG_ON(prefix_rc != rc);
        if (rc == BP_OK) {
            BP_BUG_ON(prefix_consumed != consumed || prefix.status != whole.status ||
                      prefix.n_headers != whole.n_headers || prefix.framing != whole.framing ||
                      prefix.content_length != whole.content_length ||
                      prefix.keep_alive != whole.keep_alive);
        }
    } else if (rc == BP_OK) {
        BP_BUG_ON(split >= consumed);
    }

    if (parse_final(buf, size, &whole, &body_off) == BP_OK &&
        bp_http_resp_body(&whole, false) == BP_HTTP_RESP_BODY_CHUNKED) {
        size_t body_len = size - body_off;
        check_chunked(buf + body_off, body_len, body_len > 0 ? split % (body_len + 1) : 0);
    }
    return 0;
}
