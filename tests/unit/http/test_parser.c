#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/parser.h"
#include "lib/alloc.h"
#include "lib/bug.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static struct bp_http_head g_head;
static struct bp_http_header g_room[BP_HTTP_MAX_HEADERS_CAP];

static bp_err
parse_n(const char *s, size_t len, size_t *consumed)
{
    size_t dummy = 0;
    return bp_http_parse_head(s, len, NULL, g_room, &g_head, consumed != NULL ? consumed : &dummy);
}

static bp_err
parse(const char *s)
{
    return parse_n(s, strlen(s), NULL);
}

static bp_err
parse_lim(const char *s, const struct bp_http_limits *lim)
{
    size_t consumed;
    return bp_http_parse_head(s, strlen(s), lim, g_room, &g_head, &consumed);
}

static void
assert_span(const char *p, size_t len, const char *want)
{
    assert_non_null(p);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
}

#define MALFORMED(name, text)                                                                                \
    static void name(void **state)                                                                           \
    {                                                                                                        \
        (void)state;                                                                                         \
        assert_int_equal(parse(text), BP_ERR_MALFORMED);                                                     \
    }

#define H11 "Host: x\r\n"

/* ---- refusals ---------------------------------------------------------------------------- */

MALFORMED(test_dup_content_length, "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n")
MALFORMED(test_dup_content_length_case,
          "POST / HTTP/1.1\r\n" H11 "content-length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n")
MALFORMED(test_cl_non_numeric, "POST / HTTP/1.1\r\n" H11 "Content-Length: abc\r\n\r\n")
MALFORMED(test_cl_hex, "POST / HTTP/1.1\r\n" H11 "Content-Length: 0x5\r\n\r\n")
MALFORMED(test_cl_plus, "POST / HTTP/1.1\r\n" H11 "Content-Length: +5\r\n\r\n")
MALFORMED(test_cl_minus, "POST / HTTP/1.1\r\n" H11 "Content-Length: -5\r\n\r\n")
MALFORMED(test_cl_list, "POST / HTTP/1.1\r\n" H11 "Content-Length: 5,5\r\n\r\n")
MALFORMED(test_cl_inner_space, "POST / HTTP/1.1\r\n" H11 "Content-Length: 5 5\r\n\r\n")
MALFORMED(test_cl_empty, "POST / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n")
MALFORMED(test_cl_20_digits, "POST / HTTP/1.1\r\n" H11 "Content-Length: 00000000000000000001\r\n\r\n")
MALFORMED(test_cl_then_te,
          "POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
MALFORMED(test_te_then_cl,
          "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n")
MALFORMED(test_te_gzip, "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n")
MALFORMED(test_te_list, "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n")
MALFORMED(test_te_chunked_twice_list, "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n")
MALFORMED(test_te_two_headers,
          "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")
MALFORMED(test_te_http10, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
MALFORMED(test_te_identity, "POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: identity\r\n\r\n")
MALFORMED(test_obs_fold_sp, "GET / HTTP/1.1\r\n" H11 "X-A: 1\r\n  continued\r\n\r\n")
MALFORMED(test_obs_fold_tab, "GET / HTTP/1.1\r\n" H11 "X-A: 1\r\n\tcontinued\r\n\r\n")
MALFORMED(test_space_before_colon, "GET / HTTP/1.1\r\n" H11 "Content-Length : 0\r\n\r\n")
MALFORMED(test_tab_before_colon, "GET / HTTP/1.1\r\n" H11 "Content-Length\t: 0\r\n\r\n")
MALFORMED(test_empty_header_name, "GET / HTTP/1.1\r\n" H11 ": v\r\n\r\n")
MALFORMED(test_control_in_value, "GET / HTTP/1.1\r\n" H11 "X-A: a\001b\r\n\r\n")
MALFORMED(test_del_in_value, "GET / HTTP/1.1\r\n" H11 "X-A: a\177b\r\n\r\n")
MALFORMED(test_esc_in_value, "GET / HTTP/1.1\r\n" H11 "X-A: \x1b[31m\r\n\r\n")
MALFORMED(test_control_in_name, "GET / HTTP/1.1\r\n" H11 "X\001A: b\r\n\r\n")
MALFORMED(test_control_in_target, "GET /a\x01 HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_space_in_target, "GET /a b HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_high_byte_in_target, "GET /caf\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_bare_lf_request_line, "GET / HTTP/1.1\n" H11 "\r\n")
MALFORMED(test_bare_lf_header, "GET / HTTP/1.1\r\n" H11 "X-A: 1\n\r\n")
MALFORMED(test_bare_lf_end, "GET / HTTP/1.1\r\n" H11 "\n")
MALFORMED(test_bare_lf_leading, "\nGET / HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_lone_cr_request_line, "GET / HTTP/1.1\rX" H11 "\r\n")
MALFORMED(test_lone_cr_header, "GET / HTTP/1.1\r\n" H11 "X-A: 1\r2\r\n\r\n")
MALFORMED(test_lone_cr_end, "GET / HTTP/1.1\r\n" H11 "\rX")
MALFORMED(test_absolute_form, "GET http://example.com/ HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_authority_form, "CONNECT example.com:443 HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_asterisk_form, "OPTIONS * HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_http2, "GET / HTTP/2.0\r\n" H11 "\r\n")
MALFORMED(test_http12, "GET / HTTP/1.2\r\n" H11 "\r\n")
MALFORMED(test_http09_style, "GET /\r\n\r\n")
MALFORMED(test_lowercase_http, "GET / http/1.1\r\n" H11 "\r\n")
MALFORMED(test_version_trailing, "GET / HTTP/1.10\r\n" H11 "\r\n")
MALFORMED(test_double_space_method, "GET  / HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_double_space_version, "GET /  HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_trailing_space_rl, "GET / HTTP/1.1 \r\n" H11 "\r\n")
MALFORMED(test_tab_separator, "GET\t/ HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_empty_method, " / HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_method_not_token, "G(T / HTTP/1.1\r\n" H11 "\r\n")
MALFORMED(test_missing_host, "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n")
MALFORMED(test_two_hosts, "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n")

static void
test_nul_in_target(void **state)
{
    static const char req[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
    (void)state;
    assert_int_equal(parse_n(req, sizeof(req) - 1, NULL), BP_ERR_MALFORMED);
}

static void
test_nul_in_header_value(void **state)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
    (void)state;
    assert_int_equal(parse_n(req, sizeof(req) - 1, NULL), BP_ERR_MALFORMED);
}

static void
test_nul_in_method(void **state)
{
    static const char req[] = "G\0T / HTTP/1.1\r\nHost: x\r\n\r\n";
    (void)state;
    assert_int_equal(parse_n(req, sizeof(req) - 1, NULL), BP_ERR_MALFORMED);
}

/* A refusal is decided at the offending byte, even before the head is complete. */
static void
test_malformed_before_complete(void **state)
{
    (void)state;
    assert_int_equal(parse("GET http"), BP_ERR_MALFORMED);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nBad Name"), BP_ERR_MALFORMED);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                           "Content-Length: 1\r\n"),
                     BP_ERR_MALFORMED);
}

/* ---- limits ------------------------------------------------------------------------------ */

static void
fill(char *dst, char c, size_t n)
{
    memset(dst, c, n);
    dst[n] = '\0';
}

static void
test_request_line_limit(void **state)
{
    struct bp_http_limits lim;
    char req[256];
    char target[128];
    (void)state;

    bp_http_limits_init(&lim);
    lim.max_request_line = 30;
    /* "GET /" + 16 + " HTTP/1.1" = 30 bytes exactly: allowed. */
    fill(target, 'a', 16);
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    assert_int_equal(parse_lim(req, &lim), BP_OK);
    fill(target, 'a', 17);
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    assert_int_equal(parse_lim(req, &lim), BP_ERR_LIMIT);
    /* Incomplete and already over: refused instead of waiting. */
    fill(target, 'a', 40);
    snprintf(req, sizeof(req), "GET /%s", target);
    assert_int_equal(parse_lim(req, &lim), BP_ERR_LIMIT);
}

static void
test_request_line_limit_default(void **state)
{
    size_t n = BP_HTTP_DEFAULT_MAX_REQUEST_LINE + 100;
    char *req = bp_malloc(n + 1);
    (void)state;

    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', n - 5);
    req[n] = '\0';
    assert_int_equal(parse(req), BP_ERR_LIMIT);
    bp_free(req);
}

static void
test_header_line_limit(void **state)
{
    struct bp_http_limits lim;
    char req[256];
    char v[128];
    (void)state;

    bp_http_limits_init(&lim);
    lim.max_header_line = 10;
    /* "X-A: " + 5 = 10 bytes: allowed. */
    fill(v, 'v', 5);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\nX-A: %s\r\n\r\n", v);
    assert_int_equal(parse_lim(req, &lim), BP_OK);
    fill(v, 'v', 6);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\nX-A: %s\r\n\r\n", v);
    assert_int_equal(parse_lim(req, &lim), BP_ERR_LIMIT);
    fill(v, 'v', 60);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\nX-A: %s", v);
    assert_int_equal(parse_lim(req, &lim), BP_ERR_LIMIT);
}

static void
test_too_many_headers(void **state)
{
    struct bp_http_limits lim;
    char req[1024];
    size_t off;
    (void)state;

    bp_http_limits_init(&lim);
    lim.max_headers = 4;
    off = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 3; i++) {
        off += (size_t)snprintf(req + off, sizeof(req) - off, "X-%d: v\r\n", i);
    }
    snprintf(req + off, sizeof(req) - off, "\r\n");
    assert_int_equal(parse_lim(req, &lim), BP_OK);
    assert_int_equal(g_head.n_headers, 4);
    snprintf(req + off, sizeof(req) - off, "X-9: v\r\n\r\n");
    assert_int_equal(parse_lim(req, &lim), BP_ERR_LIMIT);
    /* Limited as soon as the fifth header starts. */
    snprintf(req + off, sizeof(req) - off, "X");
    assert_int_equal(parse_lim(req, &lim), BP_ERR_LIMIT);
}

static void
test_max_headers_clamped_to_cap(void **state)
{
    struct bp_http_limits lim;
    size_t cap = 64 * (BP_HTTP_MAX_HEADERS_CAP + 2);
    char *req = bp_malloc(cap);
    size_t off;
    (void)state;

    bp_http_limits_init(&lim);
    lim.max_headers = 100000;
    lim.max_head_bytes = cap;
    off = (size_t)snprintf(req, cap, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < BP_HTTP_MAX_HEADERS_CAP - 1; i++) {
        off += (size_t)snprintf(req + off, cap - off, "X-%d: v\r\n", i);
    }
    snprintf(req + off, cap - off, "\r\n");
    assert_int_equal(parse_lim(req, &lim), BP_OK);
    assert_int_equal(g_head.n_headers, BP_HTTP_MAX_HEADERS_CAP);
    snprintf(req + off, cap - off, "X-last: v\r\n\r\n");
    assert_int_equal(parse_lim(req, &lim), BP_ERR_LIMIT);
    bp_free(req);
}

static void
test_head_too_big_incomplete(void **state)
{
    struct bp_http_limits lim;
    char req[512];
    size_t off;
    size_t consumed = 0;
    (void)state;

    bp_http_limits_init(&lim);
    lim.max_head_bytes = 100;
    /* A slowloris of short valid header lines: every line is fine, the head never ends. */
    off = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: x\r\n");
    while (off < 120) {
        off += (size_t)snprintf(req + off, sizeof(req) - off, "A: b\r\n");
    }
    assert_int_equal(bp_http_parse_head(req, 100, &lim, g_room, &g_head, &consumed), BP_ERR_AGAIN);
    assert_int_equal(bp_http_parse_head(req, 101, &lim, g_room, &g_head, &consumed), BP_ERR_LIMIT);
    assert_int_equal(bp_http_parse_head(req, off, &lim, g_room, &g_head, &consumed), BP_ERR_LIMIT);
}

static void
test_head_exactly_at_limit(void **state)
{
    struct bp_http_limits lim;
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t consumed = 0;
    (void)state;

    bp_http_limits_init(&lim);
    lim.max_head_bytes = strlen(req);
    assert_int_equal(bp_http_parse_head(req, strlen(req), &lim, g_room, &g_head, &consumed), BP_OK);
    assert_int_equal(consumed, strlen(req));
    lim.max_head_bytes = strlen(req) - 1;
    assert_int_equal(bp_http_parse_head(req, strlen(req), &lim, g_room, &g_head, &consumed), BP_ERR_LIMIT);
}

static void
test_default_head_limit_slowloris(void **state)
{
    size_t n = BP_HTTP_DEFAULT_MAX_HEAD_BYTES + 64;
    char *req = bp_malloc(n);
    size_t off;
    (void)state;

    off = (size_t)snprintf(req, n, "GET / HTTP/1.1\r\nHost: x\r\n");
    while (off + 8 < n) {
        memcpy(req + off, "A: bc\r\n", 7);
        off += 7;
    }
    assert_int_equal(parse_n(req, off, NULL), BP_ERR_LIMIT);
    bp_free(req);
}

/* ---- valid requests ---------------------------------------------------------------------- */

static void
test_get_with_query(void **state)
{
    const char *req = "GET /proxy/ledgers?instance_id=abc&x=1 HTTP/1.1\r\n"
                      "Host: proxy.example\r\n"
                      "X-Empty:\r\n"
                      "X-Pad: \t  padded value \t\r\n"
                      "\r\n";
    size_t consumed = 0;
    (void)state;

    assert_int_equal(parse_n(req, strlen(req), &consumed), BP_OK);
    assert_int_equal(consumed, strlen(req));
    assert_span(g_head.method, g_head.method_len, "GET");
    assert_span(g_head.target, g_head.target_len, "/proxy/ledgers?instance_id=abc&x=1");
    assert_span(g_head.path, g_head.path_len, "/proxy/ledgers");
    assert_span(g_head.query, g_head.query_len, "instance_id=abc&x=1");
    assert_int_equal(g_head.version_minor, 1);
    assert_int_equal(g_head.n_headers, 3);
    assert_span(g_head.headers[0].name, g_head.headers[0].name_len, "Host");
    assert_span(g_head.headers[0].value, g_head.headers[0].value_len, "proxy.example");
    assert_int_equal(g_head.headers[1].value_len, 0);
    assert_span(g_head.headers[2].value, g_head.headers[2].value_len, "padded value");
    assert_int_equal(g_head.framing, BP_HTTP_BODY_NONE);
    assert_true(g_head.keep_alive);
    assert_false(g_head.expect_continue);
}

static void
test_no_query_and_empty_query(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /a/b HTTP/1.1\r\nHost: x\r\n\r\n"), BP_OK);
    assert_span(g_head.path, g_head.path_len, "/a/b");
    assert_null(g_head.query);
    assert_int_equal(parse("GET /a? HTTP/1.1\r\nHost: x\r\n\r\n"), BP_OK);
    assert_span(g_head.path, g_head.path_len, "/a");
    assert_non_null(g_head.query);
    assert_int_equal(g_head.query_len, 0);
    assert_int_equal(parse("GET /a?b?c HTTP/1.1\r\nHost: x\r\n\r\n"), BP_OK);
    assert_span(g_head.query, g_head.query_len, "b?c");
}

static void
test_obs_text_in_value(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\xff\r\n\r\n"), BP_OK);
    assert_span(g_head.headers[1].value, g_head.headers[1].value_len, "caf\xc3\xa9\xff");
}

static void
test_post_content_length(void **state)
{
    const char *req = "POST /proxy/transactions HTTP/1.1\r\nHost: x\r\ncontent-length: 42\r\n\r\n{";
    size_t consumed = 0;
    (void)state;

    assert_int_equal(parse_n(req, strlen(req), &consumed), BP_OK);
    assert_int_equal(consumed, strlen(req) - 1); /* the body byte is not part of the head */
    assert_int_equal(g_head.framing, BP_HTTP_BODY_LENGTH);
    assert_int_equal(g_head.content_length, 42);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.framing, BP_HTTP_BODY_LENGTH);
    assert_int_equal(g_head.content_length, 0);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  7 \r\n\r\n"), BP_OK);
    assert_int_equal(g_head.content_length, 7);
    /* 19 digits is the maximum and fits in 64 bits. */
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999999999999999\r\n\r\n"),
                     BP_OK);
    assert_true(g_head.content_length == UINT64_C(9999999999999999999));
}

static void
test_post_chunked_head(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.framing, BP_HTTP_BODY_CHUNKED);
}

static void
test_keep_alive_rules(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), BP_OK);
    assert_true(g_head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), BP_OK);
    assert_false(g_head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade , CLOSE\r\n\r\n"), BP_OK);
    assert_false(g_head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                           "Connection: close\r\n\r\n"),
                     BP_OK);
    assert_false(g_head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n"), BP_OK);
    assert_true(g_head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.version_minor, 0);
    assert_false(g_head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), BP_OK);
    assert_true(g_head.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), BP_OK);
    assert_false(g_head.keep_alive);
}

static void
test_http10_without_host(void **state)
{
    (void)state;
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.n_headers, 0);
}

static void
test_expect_continue(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n"
                           "Content-Length: 3\r\n\r\n"),
                     BP_OK);
    assert_true(g_head.expect_continue);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n"), BP_OK);
    assert_false(g_head.expect_continue);
    assert_int_equal(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), BP_OK);
    assert_false(g_head.expect_continue);
}

static void
test_leading_empty_lines(void **state)
{
    const char *req = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t consumed = 0;
    (void)state;

    assert_int_equal(parse_n(req, strlen(req), &consumed), BP_OK);
    assert_int_equal(consumed, strlen(req));
    assert_span(g_head.method, g_head.method_len, "GET");
    assert_int_equal(parse("\r\n"), BP_ERR_AGAIN);
    assert_int_equal(parse("\r"), BP_ERR_AGAIN);
    assert_int_equal(parse(""), BP_ERR_AGAIN);
}

static void
test_head_find(void **state)
{
    const struct bp_http_header *f;
    size_t count = 99;
    (void)state;

    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\nX-Tag: one\r\nx-tag: two\r\n"
                           "Other: z\r\n\r\n"),
                     BP_OK);
    f = bp_http_head_find(&g_head, "X-TAG", &count);
    assert_non_null(f);
    assert_int_equal(count, 2);
    assert_span(f->value, f->value_len, "one");
    f = bp_http_head_find(&g_head, "other", NULL);
    assert_non_null(f);
    assert_span(f->value, f->value_len, "z");
    assert_null(bp_http_head_find(&g_head, "missing", &count));
    assert_int_equal(count, 0);
    assert_null(bp_http_head_find(&g_head, "X-Ta", &count));
}

static void
test_pipelined(void **state)
{
    const char *buf = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                      "GET /b?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      "GET /c";
    size_t len = strlen(buf);
    size_t off = 0;
    size_t consumed = 0;
    (void)state;

    assert_int_equal(parse_n(buf, len, &consumed), BP_OK);
    assert_span(g_head.path, g_head.path_len, "/a");
    assert_int_equal(g_head.content_length, 3);
    off = consumed + 3;
    assert_int_equal(parse_n(buf + off, len - off, &consumed), BP_OK);
    assert_span(g_head.path, g_head.path_len, "/b");
    assert_span(g_head.query, g_head.query_len, "q");
    assert_false(g_head.keep_alive);
    off += consumed;
    assert_int_equal(parse_n(buf + off, len - off, &consumed), BP_ERR_AGAIN);
    assert_string_equal(buf + off, "GET /c");
}

/* Output parameters are left alone unless BP_OK. */
static void
test_outputs_untouched_on_error(void **state)
{
    struct bp_http_head h;
    struct bp_http_header room[BP_HTTP_MAX_HEADERS_CAP];
    size_t consumed = 12345;
    (void)state;

    memset(&h, 0xab, sizeof(h));
    assert_int_equal(bp_http_parse_head("GET / HTTP/2.0\r\n", 16, NULL, room, &h, &consumed), BP_ERR_MALFORMED);
    assert_int_equal(consumed, 12345);
    assert_int_equal(h.n_headers, (size_t)0xabababababababab);
}

/* ---- incremental feeding ----------------------------------------------------------------- */

static const char *const incremental_cases[] = {
    "GET /proxy/ledgers?instance_id=abc HTTP/1.1\r\nHost: x\r\nX-A:  b \r\n\r\nTRAILING",
    "\r\nPOST / HTTP/1.0\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    "GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    "GET / HTTP/1.1\nHost: x\r\n\r\n",
    "GET * HTTP/1.1\r\n\r\n",
};

/* Feeding a growing buffer byte by byte, as the connection does, stops at the same byte with the
 * same result and the same head as parsing the whole input at once. */
static void
test_incremental_identical(void **state)
{
    (void)state;
    for (size_t c = 0; c < BP_ARRAY_LEN(incremental_cases); c++) {
        const char *req = incremental_cases[c];
        size_t len = strlen(req);
        static struct bp_http_header full_room[BP_HTTP_MAX_HEADERS_CAP];
        static struct bp_http_header part_room[BP_HTTP_MAX_HEADERS_CAP];
        struct bp_http_head full;
        struct bp_http_head part;
        size_t full_consumed = 0;
        size_t part_consumed = 0;
        bp_err full_rc = bp_http_parse_head(req, len, NULL, full_room, &full, &full_consumed);
        bp_err part_rc = BP_ERR_AGAIN;
        size_t k = 0;

        assert_int_not_equal(full_rc, BP_ERR_AGAIN);
        while (k < len) {
            k++;
            part_rc = bp_http_parse_head(req, k, NULL, part_room, &part, &part_consumed);
            if (part_rc != BP_ERR_AGAIN) {
                break;
            }
        }
        assert_int_equal(part_rc, full_rc);
        if (full_rc != BP_OK) {
            continue;
        }
        /* It completed exactly when the last byte of the head arrived. */
        assert_int_equal(k, full_consumed);
        assert_int_equal(part_consumed, full_consumed);
        assert_ptr_equal(part.target, full.target);
        assert_int_equal(part.target_len, full.target_len);
        assert_ptr_equal(part.method, full.method);
        assert_int_equal(part.n_headers, full.n_headers);
        for (size_t i = 0; i < full.n_headers; i++) {
            assert_ptr_equal(part.headers[i].value, full.headers[i].value);
            assert_int_equal(part.headers[i].value_len, full.headers[i].value_len);
        }
        assert_int_equal(part.framing, full.framing);
        assert_int_equal(part.content_length, full.content_length);
        assert_int_equal(part.keep_alive, full.keep_alive);
        assert_int_equal(part.expect_continue, full.expect_continue);
    }
}

/* ---- chunked ----------------------------------------------------------------------------- */

struct chunk_result {
    bp_err rc;
    bool done;
    size_t consumed;
};

static struct chunk_result
feed_split(const char *in, size_t len, size_t split, struct bp_buf *body)
{
    struct bp_http_chunked st;
    struct chunk_result r = {BP_OK, false, 0};
    size_t used = 0;

    memset(&st, 0, sizeof(st));
    r.rc = bp_http_chunked_feed(&st, in, split, body, &used);
    if (r.rc != BP_OK) {
        return r;
    }
    r.consumed = used;
    if (!st.done) {
        assert_int_equal(used, split);
        r.rc = bp_http_chunked_feed(&st, in + split, len - split, body, &used);
        if (r.rc != BP_OK) {
            return r;
        }
        r.consumed += used;
    }
    r.done = st.done;
    return r;
}

static struct chunk_result
feed_bytewise(const char *in, size_t len, struct bp_buf *body)
{
    struct bp_http_chunked st;
    struct chunk_result r = {BP_OK, false, 0};

    memset(&st, 0, sizeof(st));
    for (size_t i = 0; i < len && !st.done; i++) {
        size_t used = 0;
        r.rc = bp_http_chunked_feed(&st, in + i, 1, body, &used);
        if (r.rc != BP_OK) {
            return r;
        }
        r.consumed += used;
    }
    r.done = st.done;
    return r;
}

/* Decodes msg whole, split at every position and byte by byte; all must agree. */
static struct chunk_result
decode_all_ways(const char *msg, size_t len, size_t body_max, struct bp_buf *out_body)
{
    struct chunk_result whole;

    bp_buf_init(out_body, body_max);
    whole = feed_split(msg, len, len, out_body);
    for (size_t split = 0; split <= len; split++) {
        struct bp_buf b;
        struct chunk_result r;
        bp_buf_init(&b, body_max);
        r = feed_split(msg, len, split, &b);
        assert_int_equal(r.rc, whole.rc);
        if (r.rc == BP_OK) {
            assert_int_equal(r.done, whole.done);
            assert_int_equal(r.consumed, whole.consumed);
            assert_int_equal(b.len, out_body->len);
            if (b.len > 0) {
                assert_memory_equal(b.data, out_body->data, b.len);
            }
        }
        bp_buf_cleanup(&b);
    }
    {
        struct bp_buf b;
        struct chunk_result r;
        bp_buf_init(&b, body_max);
        r = feed_bytewise(msg, len, &b);
        assert_int_equal(r.rc, whole.rc);
        if (r.rc == BP_OK) {
            assert_int_equal(r.done, whole.done);
            assert_int_equal(r.consumed, whole.consumed);
            assert_int_equal(b.len, out_body->len);
        }
        bp_buf_cleanup(&b);
    }
    return whole;
}

static void
expect_chunked_ok(const char *msg, const char *want_body, size_t want_consumed)
{
    struct bp_buf body;
    struct chunk_result r = decode_all_ways(msg, strlen(msg), 1 << 20, &body);

    assert_int_equal(r.rc, BP_OK);
    assert_true(r.done);
    assert_int_equal(r.consumed, want_consumed);
    assert_int_equal(body.len, strlen(want_body));
    if (body.len > 0) {
        assert_memory_equal(body.data, want_body, body.len);
    }
    bp_buf_cleanup(&body);
}

static void
expect_chunked_err(const char *msg, size_t len, bp_err want)
{
    struct bp_buf body;
    struct chunk_result r = decode_all_ways(msg, len, 1 << 20, &body);

    assert_int_equal(r.rc, want);
    bp_buf_cleanup(&body);
}

#define CHUNKED_BAD(s) expect_chunked_err(s, strlen(s), BP_ERR_MALFORMED)

static void
test_chunked_basic(void **state)
{
    const char *m = "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    (void)state;

    expect_chunked_ok(m, "hello, world", strlen(m));
    expect_chunked_ok("0\r\n\r\n", "", 5);
    m = "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n";
    expect_chunked_ok(m, "0123456789abcdefghij", strlen(m));
    m = "000000000000003\r\nabc\r\n000\r\n\r\n";
    expect_chunked_ok(m, "abc", strlen(m));
}

static void
test_chunked_stops_at_end(void **state)
{
    const char *m = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    (void)state;
    /* The next pipelined request is not consumed. */
    expect_chunked_ok(m, "abc", 13);
}

static void
test_chunked_done_consumes_nothing(void **state)
{
    struct bp_http_chunked st;
    struct bp_buf body;
    size_t used = 99;
    (void)state;

    memset(&st, 0, sizeof(st));
    bp_buf_init(&body, 100);
    assert_int_equal(bp_http_chunked_feed(&st, "0\r\n\r\n", 5, &body, &used), BP_OK);
    assert_true(st.done);
    assert_int_equal(bp_http_chunked_feed(&st, "1\r\nx\r\n", 6, &body, &used), BP_OK);
    assert_int_equal(used, 0);
    assert_int_equal(body.len, 0);
    bp_buf_cleanup(&body);
}

static void
test_chunked_incomplete(void **state)
{
    struct bp_http_chunked st;
    struct bp_buf body;
    size_t used = 0;
    (void)state;

    memset(&st, 0, sizeof(st));
    bp_buf_init(&body, 100);
    assert_int_equal(bp_http_chunked_feed(&st, "5\r\nhel", 6, &body, &used), BP_OK);
    assert_false(st.done);
    assert_int_equal(used, 6);
    assert_int_equal(body.len, 3);
    assert_int_equal(bp_http_chunked_feed(&st, "lo\r\n0\r\n", 7, &body, &used), BP_OK);
    assert_false(st.done);
    assert_int_equal(used, 7);
    assert_int_equal(bp_http_chunked_feed(&st, "\r\n", 2, &body, &used), BP_OK);
    assert_true(st.done);
    assert_string_equal(body.data, "hello");
    bp_buf_cleanup(&body);
}

static void
test_chunked_extensions(void **state)
{
    const char *m = "3;name=value\r\nabc\r\n0;last\r\n\r\n";
    expect_chunked_ok(m, "abc", strlen(m));
    m = "3 ;a=\"quoted value\";b\r\nabc\r\n0\r\n\r\n";
    expect_chunked_ok(m, "abc", strlen(m));
    (void)state;
    CHUNKED_BAD("3;a\x01\r\nabc\r\n0\r\n\r\n");
    CHUNKED_BAD("3;a\nabc\r\n0\r\n\r\n");
}

static void
test_chunked_extension_too_long(void **state)
{
    size_t n = BP_HTTP_CHUNK_LINE_MAX + 64;
    char *m = bp_malloc(n + 32);
    struct bp_http_chunked st;
    struct bp_buf body;
    size_t used = 0;
    (void)state;

    m[0] = '1';
    m[1] = ';';
    memset(m + 2, 'x', n - 2);
    memset(&st, 0, sizeof(st));
    bp_buf_init(&body, 100);
    /* Refused while the line is still incomplete. */
    assert_int_equal(bp_http_chunked_feed(&st, m, n, &body, &used), BP_ERR_MALFORMED);
    /* Errors are sticky. */
    assert_int_equal(bp_http_chunked_feed(&st, "\r\n", 2, &body, &used), BP_ERR_MALFORMED);
    bp_buf_cleanup(&body);
    bp_free(m);
}

static void
test_chunked_trailers(void **state)
{
    const char *m = "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other:\t v \r\n\r\nNEXT";
    (void)state;
    expect_chunked_ok(m, "hi", strlen(m) - 4);
    CHUNKED_BAD("0\r\nX-A : b\r\n\r\n");
    CHUNKED_BAD("0\r\nX-A: b\r\n folded\r\n\r\n");
    CHUNKED_BAD("0\r\nX-A: b\nc\r\n\r\n");
    CHUNKED_BAD("0\r\nX-A: b\x01\r\n\r\n");
    CHUNKED_BAD("0\r\n: b\r\n\r\n");
    CHUNKED_BAD("0\r\nX-A: b\r\n\n");
    CHUNKED_BAD("0\r\n\rX");
}

static void
test_chunked_trailers_bounded(void **state)
{
    size_t n = 2 * BP_HTTP_CHUNK_TRAILERS_MAX;
    char *m = bp_malloc(n);
    size_t off = 3;
    (void)state;

    memcpy(m, "0\r\n", 3);
    while (off + 7 <= n) {
        memcpy(m + off, "A: bc\r\n", 7);
        off += 7;
    }
    expect_chunked_err(m, off, BP_ERR_MALFORMED);
    bp_free(m);
}

static void
test_chunked_bad_sizes(void **state)
{
    (void)state;
    CHUNKED_BAD("g\r\n");
    CHUNKED_BAD("\r\n");
    CHUNKED_BAD("-1\r\n");
    CHUNKED_BAD("+1\r\nx\r\n0\r\n\r\n");
    CHUNKED_BAD("0x1\r\nx\r\n0\r\n\r\n");
    CHUNKED_BAD(" 1\r\nx\r\n0\r\n\r\n");
    CHUNKED_BAD("1 \r\nx\r\n0\r\n\r\n");
    CHUNKED_BAD("1 1\r\nx\r\n0\r\n\r\n");
    CHUNKED_BAD("1\nx\r\n0\r\n\r\n");    /* bare LF after size */
    CHUNKED_BAD("1\rx\r\n0\r\n\r\n");    /* lone CR */
    CHUNKED_BAD("1\r\nxy\r\n0\r\n\r\n"); /* data longer than the size */
    CHUNKED_BAD("1\r\nx\n0\r\n\r\n");    /* bare LF after data */
    CHUNKED_BAD("1\r\nx0\r\n\r\n");      /* missing CRLF after data */
    CHUNKED_BAD("0\r\n\n");              /* bare LF at the end */
    CHUNKED_BAD("1\r\nx\r\n0\n\r\n");
}

static void
test_chunked_overflow(void **state)
{
    (void)state;
    /* 16 hex digits would overflow the 60 bits that 15 digits can hold: refused. */
    CHUNKED_BAD("10000000000000000\r\n");
    CHUNKED_BAD("FFFFFFFFFFFFFFFF\r\n");
    CHUNKED_BAD("0000000000000000\r\n\r\n");
    /* 15 digits parse, then the size is over the body maximum: limit, announced up front. */
    expect_chunked_err("FFFFFFFFFFFFFFF\r\n", 17, BP_ERR_LIMIT);
}

static void
test_chunked_body_limit(void **state)
{
    struct bp_buf body;
    struct chunk_result r;
    const char *fits = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    const char *over = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    (void)state;

    r = decode_all_ways(fits, strlen(fits), 5, &body);
    assert_int_equal(r.rc, BP_OK);
    assert_true(r.done);
    bp_buf_cleanup(&body);
    r = decode_all_ways(over, strlen(over), 5, &body);
    assert_int_equal(r.rc, BP_ERR_LIMIT);
    bp_buf_cleanup(&body);
}

static void
test_chunked_error_sticky(void **state)
{
    struct bp_http_chunked st;
    struct bp_buf body;
    size_t used = 0;
    (void)state;

    memset(&st, 0, sizeof(st));
    bp_buf_init(&body, 100);
    assert_int_equal(bp_http_chunked_feed(&st, "z", 1, &body, &used), BP_ERR_MALFORMED);
    assert_int_equal(bp_http_chunked_feed(&st, "0\r\n\r\n", 5, &body, &used), BP_ERR_MALFORMED);
    assert_false(st.done);
    bp_buf_cleanup(&body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dup_content_length),
        cmocka_unit_test(test_dup_content_length_case),
        cmocka_unit_test(test_cl_non_numeric),
        cmocka_unit_test(test_cl_hex),
        cmocka_unit_test(test_cl_plus),
        cmocka_unit_test(test_cl_minus),
        cmocka_unit_test(test_cl_list),
        cmocka_unit_test(test_cl_inner_space),
        cmocka_unit_test(test_cl_empty),
        cmocka_unit_test(test_cl_20_digits),
        cmocka_unit_test(test_cl_then_te),
        cmocka_unit_test(test_te_then_cl),
        cmocka_unit_test(test_te_gzip),
        cmocka_unit_test(test_te_list),
        cmocka_unit_test(test_te_chunked_twice_list),
        cmocka_unit_test(test_te_two_headers),
        cmocka_unit_test(test_te_http10),
        cmocka_unit_test(test_te_identity),
        cmocka_unit_test(test_obs_fold_sp),
        cmocka_unit_test(test_obs_fold_tab),
        cmocka_unit_test(test_space_before_colon),
        cmocka_unit_test(test_tab_before_colon),
        cmocka_unit_test(test_empty_header_name),
        cmocka_unit_test(test_control_in_value),
        cmocka_unit_test(test_del_in_value),
        cmocka_unit_test(test_esc_in_value),
        cmocka_unit_test(test_control_in_name),
        cmocka_unit_test(test_control_in_target),
        cmocka_unit_test(test_space_in_target),
        cmocka_unit_test(test_high_byte_in_target),
        cmocka_unit_test(test_bare_lf_request_line),
        cmocka_unit_test(test_bare_lf_header),
        cmocka_unit_test(test_bare_lf_end),
        cmocka_unit_test(test_bare_lf_leading),
        cmocka_unit_test(test_lone_cr_request_line),
        cmocka_unit_test(test_lone_cr_header),
        cmocka_unit_test(test_lone_cr_end),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_authority_form),
        cmocka_unit_test(test_asterisk_form),
        cmocka_unit_test(test_http2),
        cmocka_unit_test(test_http12),
        cmocka_unit_test(test_http09_style),
        cmocka_unit_test(test_lowercase_http),
        cmocka_unit_test(test_version_trailing),
        cmocka_unit_test(test_double_space_method),
        cmocka_unit_test(test_double_space_version),
        cmocka_unit_test(test_trailing_space_rl),
        cmocka_unit_test(test_tab_separator),
        cmocka_unit_test(test_empty_method),
        cmocka_unit_test(test_method_not_token),
        cmocka_unit_test(test_missing_host),
        cmocka_unit_test(test_two_hosts),
        cmocka_unit_test(test_nul_in_target),
        cmocka_unit_test(test_nul_in_header_value),
        cmocka_unit_test(test_nul_in_method),
        cmocka_unit_test(test_malformed_before_complete),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_request_line_limit_default),
        cmocka_unit_test(test_header_line_limit),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_max_headers_clamped_to_cap),
        cmocka_unit_test(test_head_too_big_incomplete),
        cmocka_unit_test(test_head_exactly_at_limit),
        cmocka_unit_test(test_default_head_limit_slowloris),
        cmocka_unit_test(test_get_with_query),
        cmocka_unit_test(test_no_query_and_empty_query),
        cmocka_unit_test(test_obs_text_in_value),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_post_chunked_head),
        cmocka_unit_test(test_keep_alive_rules),
        cmocka_unit_test(test_http10_without_host),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_leading_empty_lines),
        cmocka_unit_test(test_head_find),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_outputs_untouched_on_error),
        cmocka_unit_test(test_incremental_identical),
        cmocka_unit_test(test_chunked_basic),
        cmocka_unit_test(test_chunked_stops_at_end),
        cmocka_unit_test(test_chunked_done_consumes_nothing),
        cmocka_unit_test(test_chunked_incomplete),
        cmocka_unit_test(test_chunked_extensions),
        cmocka_unit_test(test_chunked_extension_too_long),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunked_trailers_bounded),
        cmocka_unit_test(test_chunked_bad_sizes),
        cmocka_unit_test(test_chunked_overflow),
        cmocka_unit_test(test_chunked_body_limit),
        cmocka_unit_test(test_chunked_error_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
