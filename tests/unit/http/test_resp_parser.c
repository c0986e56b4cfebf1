/* The response-head parser the upstream client reads Core's answers with: what it accepts, every
 * refusal the request parser also makes, its limits, and that a prefix of a head is never
 * mistaken for a whole one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/resp_parser.h"

static struct bp_http_resp_head g_head;

static bp_err
parse_n(const char *s, size_t len, size_t *consumed)
{
    size_t dummy = 0;
    return bp_http_parse_resp_head(s, len, NULL, &g_head, consumed != NULL ? consumed : &dummy);
}

static bp_err
parse(const char *s)
{
    return parse_n(s, strlen(s), NULL);
}

static void
assert_span(const char *p, size_t len, const char *want)
{
    assert_non_null(p);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(p, want, len);
}

#define MALFORMED(name, text)                                                                      \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        assert_int_equal(parse(text), BP_ERR_MALFORMED);                                           \
    }

#define OK200 "HTTP/1.1 200 OK\r\n"

/* ---- refusals -------------------------------------------------------------------------------- */

MALFORMED(test_dup_content_length_same_value,
          OK200 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n")
MALFORMED(test_dup_content_length_case, OK200 "content-length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n")
MALFORMED(test_cl_list, OK200 "Content-Length: 5, 5\r\n\r\n")
MALFORMED(test_cl_non_numeric, OK200 "Content-Length: abc\r\n\r\n")
MALFORMED(test_cl_signed, OK200 "Content-Length: +5\r\n\r\n")
MALFORMED(test_cl_empty, OK200 "Content-Length:\r\n\r\n")
MALFORMED(test_cl_twenty_digits, OK200 "Content-Length: 00000000000000000001\r\n\r\n")
MALFORMED(test_cl_then_te, OK200 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
MALFORMED(test_te_then_cl, OK200 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n")
MALFORMED(test_te_gzip, OK200 "Transfer-Encoding: gzip\r\n\r\n")
MALFORMED(test_te_gzip_chunked, OK200 "Transfer-Encoding: gzip, chunked\r\n\r\n")
MALFORMED(test_te_twice, OK200 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")
MALFORMED(test_te_in_http10, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
MALFORMED(test_obs_fold, OK200 "X-A: 1\r\n  folded\r\n\r\n")
MALFORMED(test_obs_fold_tab, OK200 "X-A: 1\r\n\tfolded\r\n\r\n")
MALFORMED(test_space_before_colon, OK200 "X-A : 1\r\n\r\n")
MALFORMED(test_empty_name, OK200 ": 1\r\n\r\n")
MALFORMED(test_no_colon, OK200 "X-A\r\n\r\n")
/* Issue 11 item 6: a bare CR inside a Core header value is a malformed answer (502). */
MALFORMED(test_bare_cr_in_value, OK200 "X-A: a\rb\r\n\r\n")
MALFORMED(test_bare_cr_at_value_end, OK200 "X-A: a\r\rX-B: b\r\n\r\n")
static void
test_nul_in_value(void **state)
{
    static const char text[] = OK200 "X-A: a\0b\r\n\r\n";

    (void)state;
    assert_int_equal(parse_n(text, sizeof(text) - 1, NULL), BP_ERR_MALFORMED);
}

MALFORMED(test_ctl_in_value, OK200 "X-A: a\x01"
                                   "b\r\n\r\n")
MALFORMED(test_del_in_value, OK200 "X-A: a\x7f\r\n\r\n")
MALFORMED(test_bare_lf_status_line, "HTTP/1.1 200 OK\nX-A: 1\r\n\r\n")
MALFORMED(test_bare_lf_header, OK200 "X-A: 1\nX-B: 2\r\n\r\n")
MALFORMED(test_bare_lf_end, OK200 "X-A: 1\r\n\n")
MALFORMED(test_bare_cr_end, OK200 "X-A: 1\r\n\rX")
MALFORMED(test_version_2, "HTTP/2.0 200 OK\r\n\r\n")
MALFORMED(test_version_1_2, "HTTP/1.2 200 OK\r\n\r\n")
MALFORMED(test_version_lowercase, "http/1.1 200 OK\r\n\r\n")
MALFORMED(test_status_600, "HTTP/1.1 600 X\r\n\r\n")
MALFORMED(test_status_099, "HTTP/1.1 099 X\r\n\r\n")
MALFORMED(test_status_two_digits, "HTTP/1.1 20 OK\r\n\r\n")
MALFORMED(test_status_four_digits, "HTTP/1.1 2000 OK\r\n\r\n")
MALFORMED(test_status_without_sp, "HTTP/1.1 200\r\n\r\n")
MALFORMED(test_two_spaces_before_code, "HTTP/1.1  200 OK\r\n\r\n")
MALFORMED(test_ctl_in_reason, "HTTP/1.1 200 O\x01K\r\n\r\n")
MALFORMED(test_leading_empty_line, "\r\nHTTP/1.1 200 OK\r\n\r\n")
MALFORMED(test_not_http, "SSH-2.0-OpenSSH\r\n\r\n")

/* ---- what is accepted ------------------------------------------------------------------------ */

static void
test_simple_answer(void **state)
{
    static const char text[] =
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
        "Content-Length: 12\r\nX-Spaced: \t padded  value \t\r\nX-Empty:\r\n\r\n"
        "{\"ok\":true}\n";
    size_t consumed = 0;

    (void)state;
    assert_int_equal(parse_n(text, sizeof(text) - 1, &consumed), BP_OK);
    assert_int_equal(consumed, sizeof(text) - 1 - 12);
    assert_int_equal(g_head.version_minor, 1);
    assert_int_equal(g_head.status, 201);
    assert_span(g_head.reason, g_head.reason_len, "Created");
    assert_int_equal(g_head.n_headers, 4);
    assert_span(g_head.headers[0].name, g_head.headers[0].name_len, "Content-Type");
    assert_span(g_head.headers[0].value, g_head.headers[0].value_len, "application/json");
    assert_span(g_head.headers[2].value, g_head.headers[2].value_len, "padded  value");
    assert_span(g_head.headers[3].name, g_head.headers[3].name_len, "X-Empty");
    assert_int_equal(g_head.headers[3].value_len, 0);
    assert_int_equal(g_head.framing, BP_HTTP_BODY_LENGTH);
    assert_int_equal(g_head.content_length, 12);
    assert_true(g_head.keep_alive);
    assert_int_equal(bp_http_resp_body(&g_head, false), BP_HTTP_RESP_BODY_LENGTH);
}

static void
test_empty_reason_and_obs_text(void **state)
{
    (void)state;
    assert_int_equal(parse("HTTP/1.1 599 \r\nX-A: caf\xc3\xa9\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.status, 599);
    assert_int_equal(g_head.reason_len, 0);
    assert_span(g_head.headers[0].value, g_head.headers[0].value_len, "caf\xc3\xa9");
}

static void
test_chunked_and_close_delimited(void **state)
{
    (void)state;
    assert_int_equal(parse(OK200 "Transfer-Encoding: Chunked\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.framing, BP_HTTP_BODY_CHUNKED);
    assert_int_equal(bp_http_resp_body(&g_head, false), BP_HTTP_RESP_BODY_CHUNKED);

    assert_int_equal(parse(OK200 "Content-Type: text/plain\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.framing, BP_HTTP_BODY_NONE);
    assert_int_equal(bp_http_resp_body(&g_head, false), BP_HTTP_RESP_BODY_CLOSE);
}

static void
test_bodyless_statuses_and_head(void **state)
{
    (void)state;
    assert_int_equal(parse("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"), BP_OK);
    assert_int_equal(bp_http_resp_body(&g_head, false), BP_HTTP_RESP_BODY_NONE);
    assert_int_equal(parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"), BP_OK);
    assert_int_equal(bp_http_resp_body(&g_head, false), BP_HTTP_RESP_BODY_NONE);
    assert_int_equal(parse("HTTP/1.1 100 Continue\r\n\r\n"), BP_OK);
    assert_int_equal(bp_http_resp_body(&g_head, false), BP_HTTP_RESP_BODY_NONE);
    assert_int_equal(parse(OK200 "Content-Length: 100\r\n\r\n"), BP_OK);
    assert_int_equal(bp_http_resp_body(&g_head, true), BP_HTTP_RESP_BODY_NONE);
    assert_int_equal(parse(OK200 "\r\n"), BP_OK);
    assert_int_equal(bp_http_resp_body(&g_head, true), BP_HTTP_RESP_BODY_NONE);
}

static void
test_keep_alive_rules(void **state)
{
    (void)state;
    assert_int_equal(parse(OK200 "Connection: keep-alive, Close\r\n\r\n"), BP_OK);
    assert_false(g_head.keep_alive);
    assert_int_equal(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), BP_OK);
    assert_int_equal(g_head.version_minor, 0);
    assert_false(g_head.keep_alive);
    assert_int_equal(
        parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"), BP_OK);
    assert_true(g_head.keep_alive);
    assert_int_equal(parse(OK200 "Connection: X-Named\r\n\r\n"), BP_OK);
    assert_true(g_head.keep_alive);
}

/* Two answers back to back (an interim 100, then the final one): each parse takes exactly one. */
static void
test_consumes_one_head(void **state)
{
    static const char text[] =
        "HTTP/1.1 100 Continue\r\nX-I: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t consumed = 0;
    size_t second = 0;

    (void)state;
    assert_int_equal(parse_n(text, sizeof(text) - 1, &consumed), BP_OK);
    assert_int_equal(g_head.status, 100);
    assert_int_equal(parse_n(text + consumed, sizeof(text) - 1 - consumed, &second), BP_OK);
    assert_int_equal(g_head.status, 200);
    assert_int_equal(consumed + second + 2, sizeof(text) - 1);
}

/* ---- limits and prefixes --------------------------------------------------------------------- */

static void
test_header_count_limit(void **state)
{
    char text[4096];
    size_t n = 0;
    struct bp_http_resp_limits lim = {.max_headers = 3, .max_head_bytes = 4096};
    size_t consumed;

    (void)state;
    n += (size_t)snprintf(text + n, sizeof(text) - n, OK200);
    for (int i = 0; i < 3; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "X-%d: v\r\n", i);
    }
    memcpy(text + n, "\r\n", 3);
    assert_int_equal(bp_http_parse_resp_head(text, n + 2, &lim, &g_head, &consumed), BP_OK);
    n += (size_t)snprintf(text + n, sizeof(text) - n, "X-3: v\r\n\r\n");
    assert_int_equal(bp_http_parse_resp_head(text, n, &lim, &g_head, &consumed), BP_ERR_LIMIT);
}

static void
test_head_bytes_limit_cuts_off_incomplete_head(void **state)
{
    char text[200];
    struct bp_http_resp_limits lim = {.max_headers = 10, .max_head_bytes = 64};
    size_t consumed;

    (void)state;
    memset(text, 'a', sizeof(text));
    memcpy(text, OK200 "X-Long: ", strlen(OK200 "X-Long: "));
    /* Up to the limit it is only incomplete; one byte past it, refused without its end. */
    assert_int_equal(bp_http_parse_resp_head(text, 64, &lim, &g_head, &consumed), BP_ERR_AGAIN);
    assert_int_equal(bp_http_parse_resp_head(text, 65, &lim, &g_head, &consumed), BP_ERR_LIMIT);
    assert_int_equal(bp_http_parse_resp_head(text, sizeof(text), &lim, &g_head, &consumed),
                     BP_ERR_LIMIT);
}

static void
test_every_prefix_is_incomplete(void **state)
{
    static const char text[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
                               "X-Empty:\r\n\r\n";
    size_t consumed = 0;

    (void)state;
    for (size_t n = 0; n < sizeof(text) - 1; n++) {
        assert_int_equal(parse_n(text, n, &consumed), BP_ERR_AGAIN);
    }
    assert_int_equal(parse_n(text, sizeof(text) - 1, &consumed), BP_OK);
    assert_int_equal(consumed, sizeof(text) - 1);
}

/* The refusal comes at the offending byte: the prefix up to it is still incomplete. */
static void
test_refusal_is_decided_at_its_byte(void **state)
{
    static const char text[] = "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n";
    const char *cr = strchr(text + 17, '\r');

    (void)state;
    assert_int_equal(parse_n(text, (size_t)(cr - text) + 1, NULL), BP_ERR_AGAIN);
    assert_int_equal(parse_n(text, (size_t)(cr - text) + 2, NULL), BP_ERR_MALFORMED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dup_content_length_same_value),
        cmocka_unit_test(test_dup_content_length_case),
        cmocka_unit_test(test_cl_list),
        cmocka_unit_test(test_cl_non_numeric),
        cmocka_unit_test(test_cl_signed),
        cmocka_unit_test(test_cl_empty),
        cmocka_unit_test(test_cl_twenty_digits),
        cmocka_unit_test(test_cl_then_te),
        cmocka_unit_test(test_te_then_cl),
        cmocka_unit_test(test_te_gzip),
        cmocka_unit_test(test_te_gzip_chunked),
        cmocka_unit_test(test_te_twice),
        cmocka_unit_test(test_te_in_http10),
        cmocka_unit_test(test_obs_fold),
        cmocka_unit_test(test_obs_fold_tab),
        cmocka_unit_test(test_space_before_colon),
        cmocka_unit_test(test_empty_name),
        cmocka_unit_test(test_no_colon),
        cmocka_unit_test(test_bare_cr_in_value),
        cmocka_unit_test(test_bare_cr_at_value_end),
        cmocka_unit_test(test_nul_in_value),
        cmocka_unit_test(test_ctl_in_value),
        cmocka_unit_test(test_del_in_value),
        cmocka_unit_test(test_bare_lf_status_line),
        cmocka_unit_test(test_bare_lf_header),
        cmocka_unit_test(test_bare_lf_end),
        cmocka_unit_test(test_bare_cr_end),
        cmocka_unit_test(test_version_2),
        cmocka_unit_test(test_version_1_2),
        cmocka_unit_test(test_version_lowercase),
        cmocka_unit_test(test_status_600),
        cmocka_unit_test(test_status_099),
        cmocka_unit_test(test_status_two_digits),
        cmocka_unit_test(test_status_four_digits),
        cmocka_unit_test(test_status_without_sp),
        cmocka_unit_test(test_two_spaces_before_code),
        cmocka_unit_test(test_ctl_in_reason),
        cmocka_unit_test(test_leading_empty_line),
        cmocka_unit_test(test_not_http),
        cmocka_unit_test(test_simple_answer),
        cmocka_unit_test(test_empty_reason_and_obs_text),
        cmocka_unit_test(test_chunked_and_close_delimited),
        cmocka_unit_test(test_bodyless_statuses_and_head),
        cmocka_unit_test(test_keep_alive_rules),
        cmocka_unit_test(test_consumes_one_head),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_head_bytes_limit_cuts_off_incomplete_head),
        cmocka_unit_test(test_every_prefix_is_incomplete),
        cmocka_unit_test(test_refusal_is_decided_at_its_byte),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
