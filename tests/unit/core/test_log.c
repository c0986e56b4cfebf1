/* The per-thread log buffer: lines leave in batches, in order, whole, and never later than a
 * flush; warnings and errors leave at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static int pipe_rd = -1;
static int saved_stderr = -1;
static int first_calls;

static int
setup(void **state)
{
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    pipe_rd = fds[0];
    bp_log_set_level(BP_LOG_DEBUG);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(pipe_rd);
    return 0;
}

/* Everything written to stderr so far. */
static size_t
drain(char *out, size_t cap)
{
    size_t len = 0;

    for (;;) {
        ssize_t n = read(pipe_rd, out + len, cap - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    out[len] = '\0';
    return len;
}

static void
on_first(void *arg)
{
    (void)arg;
    first_calls++;
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

static void
test_info_lines_wait_for_flush_in_order(void **state)
{
    static struct bp_log_buffer buf = {.on_first = on_first};
    static char out[1 << 16];

    (void)state;
    first_calls = 0;
    bp_log_buffer_bind(&buf);
    BP_INFO("access", BP_LINT("n", 1));
    BP_INFO("access", BP_LINT("n", 2));
    assert_int_equal(first_calls, 1);
    assert_int_equal(drain(out, sizeof(out)), 0);
    bp_log_flush();
    drain(out, sizeof(out));
    assert_int_equal(count_lines(out), 2);
    assert_true(strstr(out, "\"n\":1") < strstr(out, "\"n\":2"));
    /* Empty again: the next line arms the owner's timer again. */
    BP_INFO("access", BP_LINT("n", 3));
    assert_int_equal(first_calls, 2);
    bp_log_buffer_bind(NULL); /* unbinding writes what is left */
    drain(out, sizeof(out));
    assert_non_null(strstr(out, "\"n\":3"));
}

static void
test_warning_leaves_at_once_after_what_was_buffered(void **state)
{
    static struct bp_log_buffer buf;
    static char out[1 << 16];

    (void)state;
    bp_log_buffer_bind(&buf);
    BP_INFO("access", BP_LINT("n", 1));
    BP_WARN("trouble");
    drain(out, sizeof(out));
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "\"n\":1"));
    assert_true(strstr(out, "\"n\":1") < strstr(out, "trouble"));
    bp_log_buffer_bind(NULL);
}

static void
test_full_buffer_writes_whole_lines(void **state)
{
    static struct bp_log_buffer buf;
    static char out[1 << 20];
    char pad[300];
    size_t len;
    const char *p;

    (void)state;
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    bp_log_buffer_bind(&buf);
    /* More than the buffer holds: it is written when the next line would not fit. */
    for (int i = 0; i < 200; i++) {
        BP_INFO("access", BP_LINT("n", i), BP_LSTR("pad", pad));
    }
    len = drain(out, sizeof(out));
    assert_true(len > 0);
    assert_int_equal(out[len - 1], '\n');
    /* The last lines are still buffered until the flush. */
    assert_true(count_lines(out) < 200);
    bp_log_flush();
    len += drain(out + len, sizeof(out) - len);
    assert_int_equal(count_lines(out), 200);
    /* Every line is a whole JSON object, and they come in order. */
    p = out;
    for (int i = 0; i < 200; i++) {
        char want[32];
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_int_equal(p[0], '{');
        assert_int_equal(nl[-1], '}');
        snprintf(want, sizeof(want), "\"n\":%d,", i);
        assert_non_null(memmem(p, (size_t)(nl - p), want, strlen(want)));
        p = nl + 1;
    }
    bp_log_buffer_bind(NULL);
}

static void
test_fields_are_formatted_as_json(void **state)
{
    static char out[1 << 16];
    size_t len;

    (void)state;
    BP_INFO("fmt", BP_LSTR("s", "a\"b\\c\x01" "d\x7f"), BP_LSTRN("n", "xyz", 2), BP_LSTR("null", NULL),
            BP_LINT("i", -42), BP_LINT("big", INT64_MIN), BP_LBOOL("b", true), BP_LDBL("ms", 1.5),
            BP_LDBL("round", 0.0996), BP_LDBL("neg", -2.25));
    len = drain(out, sizeof(out));
    assert_true(len > 0);
    assert_non_null(strstr(out, "\"s\":\"a\\\"b\\\\c\\u0001d\\u007f\""));
    assert_non_null(strstr(out, "\"n\":\"xy\""));
    assert_non_null(strstr(out, "\"null\":null"));
    assert_non_null(strstr(out, "\"i\":-42,"));
    assert_non_null(strstr(out, "\"big\":-9223372036854775808,"));
    assert_non_null(strstr(out, "\"b\":true"));
    assert_non_null(strstr(out, "\"ms\":1.500,"));
    assert_non_null(strstr(out, "\"round\":0.100,"));
    assert_non_null(strstr(out, "\"neg\":-2.250}"));
    /* {"time":"YYYY-MM-DDTHH:MM:SS.mmmZ","level":"info","msg":"fmt",... */
    assert_int_equal(strncmp(out, "{\"time\":\"", 9), 0);
    assert_int_equal(out[13], '-');
    assert_int_equal(out[19], 'T');
    assert_int_equal(out[28], '.');
    assert_int_equal(out[32], 'Z');
    assert_int_equal(strncmp(out + 33, "\",\"level\":\"info\",\"msg\":\"fmt\"", 27), 0);
}

static void
test_long_line_is_cut_but_stays_one_line(void **state)
{
    static char big[10000];
    static char out[1 << 16];
    size_t len;

    (void)state;
    memset(big, 'q', sizeof(big) - 1);
    BP_INFO("long", BP_LSTR("s", big));
    len = drain(out, sizeof(out));
    assert_true(len <= 4096);
    assert_int_equal(out[len - 1], '\n');
    assert_int_equal(out[len - 2], '}');
    assert_int_equal(count_lines(out), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_lines_wait_for_flush_in_order),
        cmocka_unit_test(test_warning_leaves_at_once_after_what_was_buffered),
        cmocka_unit_test(test_full_buffer_writes_whole_lines),
        cmocka_unit_test(test_fields_are_formatted_as_json),
        cmocka_unit_test(test_long_line_is_cut_but_stays_one_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
