/* What DESIGN §4 transaction defaults cost a worker's loop per request (issue 11 item 4): the
 * time bp_txdefaults_apply takes on 1 MiB bodies chosen to be expensive, with the default body
 * limit (1 MiB) as the bound. It prints numbers and asserts none (timings move with the
 * machine's load); ctest does not run it.
 *
 *   cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBP_TESTS=ON
 *   cmake --build build --target bench_txdefaults && build/tests/bench_txdefaults
 *
 * For a figure that does not depend on load, count instructions instead:
 *   valgrind --tool=callgrind --toggle-collect=bp_txdefaults_apply build/tests/bench_txdefaults 1
 * (add a second argument, part of a case's name, to count that case alone). Each case runs the
 * given number of times (default 20) and reports the fastest, in thread CPU time. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/buf.h"
#include "rewrite/jscan.h"
#include "rewrite/rewrite.h"

#define MIB (1024u * 1024u)

struct body {
    char *p;
    size_t len;
};

static void
add(struct body *b, const char *s, size_t n)
{
    if (b->len + n > 2 * MIB) {
        abort();
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void
adds(struct body *b, const char *s)
{
    add(b, s, strlen(s));
}

/* head, then unit repeated (separated by sep) while the whole stays within size, then tail. */
static struct body
repeat(const char *head, const char *unit, const char *sep, const char *tail, size_t size)
{
    struct body b = {malloc(2 * MIB), 0};
    size_t un = strlen(unit);
    size_t sn = strlen(sep);
    size_t tn = strlen(tail);
    bool first = true;

    if (b.p == NULL) {
        abort();
    }
    adds(&b, head);
    while (b.len + (first ? 0 : sn) + un + tn <= size) {
        if (!first) {
            add(&b, sep, sn);
        }
        add(&b, unit, un);
        first = false;
    }
    adds(&b, tail);
    return b;
}

/* {"a":[D,D,...]} where D is [[[...]]] nested as deep as Go allows. */
static struct body
deep_body(size_t size)
{
    size_t d = BP_JSCAN_MAX_DEPTH - 2;
    char *unit = malloc(2 * d + 1);
    struct body b;

    if (unit == NULL) {
        abort();
    }
    memset(unit, '[', d);
    memset(unit + d, ']', d);
    unit[2 * d] = '\0';
    b = repeat("{\"a\":[", unit, ",", "]}", size);
    free(unit);
    return b;
}

/* {"a":[...]} of small values of every kind, chosen by a fixed pseudo-random sequence with
 * random whitespace between them, so that the branch predictor cannot learn the input. */
static struct body
mixed_body(size_t size)
{
    static const char *const parts[] = {"0", "\"a\"", "[]", "{}", "true", "-1.5e3", "{\"k\":[1]}", "null",
                                        "\"\\u00e9\"", "[[0]]", "12", "\"xy\""};
    static const char *const ws[] = {"", " ", "\n", "", "\t", ""};
    struct body b = {malloc(2 * MIB), 0};
    uint64_t x = 0x9E3779B97F4A7C15u;
    bool first = true;

    if (b.p == NULL) {
        abort();
    }
    adds(&b, "{\"a\":[");
    while (b.len + 16 + 2 <= size) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (!first) {
            adds(&b, ",");
        }
        adds(&b, ws[x % 6]);
        adds(&b, parts[(x >> 8) % 12]);
        first = false;
    }
    adds(&b, "]}");
    return b;
}

/* {"transactions":[{...}]} with one object of members whose keys and values are chosen
 * pseudo-randomly among near misses of "precision"/"reference" and short values. */
static struct body
mixed_keys_body(size_t size)
{
    static const char *const keys[] = {"\"p\"", "\"r\"", "\"a\"", "\"precisioX\"", "\"\\u0070rec\"",
                                       "\"referencX\"", "\"PRE\"", "\"re\""};
    static const char *const values[] = {"0", "\"\"", "[]", "{}", "1.5", "null"};
    struct body b = {malloc(2 * MIB), 0};
    uint64_t x = 0x2545F4914F6CDD1Du;
    bool first = true;

    if (b.p == NULL) {
        abort();
    }
    adds(&b, "{\"transactions\":[{");
    while (b.len + 24 + 3 <= size) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (!first) {
            adds(&b, x & 1 ? ", " : ",");
        }
        adds(&b, keys[(x >> 4) % 8]);
        adds(&b, ":");
        adds(&b, values[(x >> 12) % 6]);
        first = false;
    }
    adds(&b, "}]}");
    return b;
}

static double
cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Only the cases whose name contains this (argv[2]), for counting one case's instructions. */
static const char *g_only;

static void
run(const char *name, enum bp_txdefaults_kind kind, struct body b, int rounds)
{
    double best = 1e18;
    size_t out_len = 0;
    const char *outcome = "?";

    if (g_only != NULL && strstr(name, g_only) == NULL) {
        free(b.p);
        return;
    }
    for (int i = 0; i < rounds; i++) {
        struct bp_buf out;
        bool changed = false;
        const char *reason = NULL;
        double t0;
        double t;
        bp_err rc;

        bp_buf_init(&out, MIB);
        t0 = cpu_ms();
        rc = bp_txdefaults_apply(kind, b.p, b.len, &out, &changed, &reason);
        t = cpu_ms() - t0;
        best = t < best ? t : best;
        out_len = out.len;
        outcome = rc == BP_ERR_PAYLOAD_TOO_LARGE ? "413"
                  : rc == BP_ERR_MALFORMED       ? "400"
                  : rc != BP_OK                  ? "error"
                  : changed                      ? "rewritten"
                                                 : "as sent";
        bp_buf_cleanup(&out);
    }
    printf("%-44s %9zu B in  %-9s %9zu B out  %7.3f ms  %6.2f ms/MiB\n", name, b.len, outcome, out_len, best,
           best / ((double)b.len / MIB));
    free(b.p);
}

int
main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    enum bp_txdefaults_kind single = BP_TXDEFAULTS_SINGLE;
    enum bp_txdefaults_kind bulk = BP_TXDEFAULTS_BULK;
    /* "precision":100,"reference":"ref_<uuid>" is 70 bytes more per empty object. */
    size_t under = (MIB - 19) / 73 * 3 + 18;
    size_t single_max = MIB - 128; /* room for one insertion: the body is rewritten, not refused */

    if (rounds < 1) {
        rounds = 1;
    }
    g_only = argc > 2 ? argv[2] : NULL;
    printf("bp_txdefaults_apply, limit 1 MiB, best of %d (thread CPU time)\n", rounds);
    run("bulk: 1 MiB of {} (the 24x amplification)", bulk,
        repeat("{\"transactions\":[", "{}", ",", "]}", MIB), rounds);
    run("bulk: {} up to the bound (largest rewrite)", bulk,
        repeat("{\"transactions\":[", "{}", ",", "]}", under), rounds);
    run("bulk: typical objects up to the bound", bulk,
        repeat("{\"transactions\":[",
               "{\"amount\":100.5,\"currency\":\"USD\",\"source\":\"@a\",\"destination\":\"@b\"}", ",", "]}",
               MIB * 45 / 100),
        rounds);
    run("bulk: one object, 1-byte keys", bulk,
        repeat("{\"transactions\":[{", "\"a\":0", ",", "}]}", single_max), rounds);
    run("bulk: one object, near-miss keys", bulk,
        repeat("{\"transactions\":[{", "\"precisioX\":0", ",", "}]}", single_max), rounds);
    run("bulk: one object, escaped near-miss keys", bulk,
        repeat("{\"transactions\":[{",
               "\"\\u0070\\u0072\\u0065\\u0063\\u0069\\u0073\\u0069\\u006f\\u0058\":0", ",", "}]}",
               single_max),
        rounds);
    run("bulk: one object, random near-miss keys", bulk, mixed_keys_body(single_max), rounds);
    run("bulk: transactions [0,0,...]", bulk, repeat("{\"transactions\":[", "0", ",", "]}", MIB), rounds);
    run("single: [0,0,...]", single, repeat("{\"a\":[", "0", ",", "]}", single_max), rounds);
    run("single: 1-byte keys", single, repeat("{", "\"a\":0", ",", "}", single_max), rounds);
    run("single: near-miss keys (\"precisioX\")", single,
        repeat("{", "\"precisioX\":0", ",", "}", single_max), rounds);
    run("single: random mix of small values", single, mixed_body(single_max), rounds);
    run("single: nested 9998 deep, repeated", single, deep_body(single_max), rounds);
    run("single: one long string", single, repeat("{\"a\":\"", "x", "", "\"}", single_max), rounds);
    run("single: \\u escapes in a string", single, repeat("{\"a\":\"", "\\u0041", "", "\"}", single_max),
        rounds);
    run("single: invalid UTF-8 in a string", single, repeat("{\"a\":\"", "\xff", "", "\"}", single_max),
        rounds);
    run("single: 1 MiB, trailing byte (refused)", single, repeat("{\"a\":\"", "x", "", "\"}\x01", MIB),
        rounds);
    return 0;
}
