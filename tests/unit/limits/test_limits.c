#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/rate.h"
#include "limits/limits.h"

#define SEC 1000000 /* µs */

static struct bp_rate
rate(const char *text)
{
    struct bp_rate r;
    assert_true(bp_rate_parse(text, strlen(text), &r));
    return r;
}

static void
test_rate_text(void **state)
{
    struct bp_rate r;
    char out[BP_RATE_TEXT_MAX];
    static const char *const bad[] = {"",     "/s",   "10",    "10/",          "10/x",  "0/s",
                                      "01/s", "-1/s", "10 /s", "1000000001/s", "10/ss", "00"};

    (void)state;
    r = rate("100/s");
    assert_int_equal(r.count, 100);
    assert_int_equal(r.period_s, 1);
    assert_int_equal(rate("6000/m").period_s, 60);
    assert_int_equal(rate("5/h").period_s, 3600);
    assert_int_equal(rate("1/d").period_s, 86400);
    assert_int_equal(rate("0").count, 0);
    bp_rate_format(&(struct bp_rate){6000, 60}, out);
    assert_string_equal(out, "6000/m");
    bp_rate_format(&(struct bp_rate){0, 1}, out);
    assert_string_equal(out, "0");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(bp_rate_parse(bad[i], strlen(bad[i]), &r));
    }
}

/* burst requests at once, then one per interval, with Retry-After saying exactly when. */
static void
test_burst_then_steady(void **state)
{
    struct bp_rate r = rate("10/s");
    struct bp_limits_verdict v;
    int64_t t = 1000 * SEC;

    (void)state;
    bp_limits_set_nodes(1);
    for (uint32_t i = 0; i < 5; i++) {
        bp_limits_take("key_burst", &r, 5, t, &v);
        assert_true(v.allowed);
        assert_int_equal(v.limit, 5);
        assert_int_equal(v.remaining, 4 - i);
    }
    bp_limits_take("key_burst", &r, 5, t, &v);
    assert_false(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after_ms, 100);
    assert_int_equal(v.reset_ms, 500);
    /* Another credential is not affected. */
    bp_limits_take("key_other", &r, 5, t, &v);
    assert_true(v.allowed);
    /* One more every 100 ms. */
    bp_limits_take("key_burst", &r, 5, t + 99 * 1000, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_ms, 1);
    bp_limits_take("key_burst", &r, 5, t + 100 * 1000, &v);
    assert_true(v.allowed);
    bp_limits_take("key_burst", &r, 5, t + 100 * 1000, &v);
    assert_false(v.allowed);
    /* Over 10 s of steady requests every 10 ms: 10/s are allowed, plus nothing (the burst was spent). */
    int allowed = 0;
    for (int64_t at = t + 200 * 1000; at < t + 10200 * 1000; at += 10 * 1000) {
        bp_limits_take("key_burst", &r, 5, at, &v);
        allowed += v.allowed;
    }
    assert_int_equal(allowed, 100);
}

/* A rate of 0 is no limit; burst 0 is the rate's count. */
static void
test_unlimited_and_default_burst(void **state)
{
    struct bp_rate zero = rate("0");
    struct bp_rate r = rate("3/m");
    struct bp_limits_verdict v;

    (void)state;
    bp_limits_set_nodes(1);
    for (int i = 0; i < 1000; i++) {
        bp_limits_take("key_free", &zero, 0, 5 * SEC, &v);
        assert_true(v.allowed);
    }
    for (int i = 0; i < 3; i++) {
        bp_limits_take("key_3m", &r, 0, 5 * SEC, &v);
        assert_true(v.allowed);
    }
    bp_limits_take("key_3m", &r, 0, 5 * SEC, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_ms, 20000);
}

/* A changed limit counts the requests already taken as requests of the new one: raised, the
 * rest of the new burst is there at once (not after the old limit's debt); lowered, no more
 * than the new burst. */
static void
test_limit_changes(void **state)
{
    struct bp_rate slow = rate("1/m");
    struct bp_rate fast = rate("100/s");
    struct bp_limits_verdict v;
    int64_t t = 300 * SEC;

    (void)state;
    bp_limits_set_nodes(1);
    for (int i = 0; i < 5; i++) {
        bp_limits_take("key_change", &slow, 2, t, &v);
    }
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_ms, 60000);
    /* The two requests taken are two of the fast burst: 48 more at once. */
    for (int i = 0; i < 48; i++) {
        bp_limits_take("key_change", &fast, 50, t, &v);
        assert_true(v.allowed);
    }
    bp_limits_take("key_change", &fast, 50, t, &v);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_ms, 10);
    /* Lowered: no more than the new burst, whatever the old limit left. */
    bp_limits_take("key_lower", &fast, 50, t, &v);
    assert_true(v.allowed);
    bp_limits_take("key_lower", &slow, 2, t, &v);
    assert_true(v.allowed);
    bp_limits_take("key_lower", &slow, 2, t, &v);
    assert_false(v.allowed);
}

/* Three live nodes: each allows a third of the rate and of the burst. */
static void
test_node_share(void **state)
{
    struct bp_rate r = rate("30/s");
    struct bp_limits_verdict v;
    int allowed = 0;

    (void)state;
    bp_limits_set_nodes(3);
    assert_int_equal(bp_limits_nodes(), 3);
    for (int i = 0; i < 30; i++) {
        bp_limits_take("key_share", &r, 30, 50 * SEC, &v);
        allowed += v.allowed;
    }
    assert_int_equal(allowed, 10);
    assert_int_equal(v.retry_after_ms, 100); /* 10/s on this node */
    /* Failed authentications are each node's own: the whole burst here. */
    {
        struct bp_ip peer;
        int64_t retry;
        assert_true(bp_ip_parse("198.51.100.3", 12, &peer));
        for (int i = 0; i < 3; i++) {
            assert_false(bp_limits_peer_blocked(&peer, &r, 3, 50 * SEC, &retry));
            bp_limits_peer_failed(&peer, &r, 3, 50 * SEC);
        }
        assert_true(bp_limits_peer_blocked(&peer, &r, 3, 50 * SEC, &retry));
        bp_limits_sweep(1LL << 50);
    }
    bp_limits_set_nodes(0);
    assert_int_equal(bp_limits_nodes(), 1);
}

static void
test_peer_failures(void **state)
{
    struct bp_rate r = rate("60/m");
    struct bp_ip a;
    struct bp_ip b;
    int64_t retry = 0;
    int64_t t = 100 * SEC;

    (void)state;
    bp_limits_set_nodes(1);
    assert_true(bp_ip_parse("192.0.2.1", 9, &a));
    assert_true(bp_ip_parse("192.0.2.2", 9, &b));
    for (int i = 0; i < 3; i++) {
        assert_false(bp_limits_peer_blocked(&a, &r, 3, t, &retry));
        bp_limits_peer_failed(&a, &r, 3, t);
    }
    assert_true(bp_limits_peer_blocked(&a, &r, 3, t, &retry));
    assert_int_equal(retry, 1000);
    assert_false(bp_limits_peer_blocked(&b, &r, 3, t, &retry));
    assert_false(bp_limits_peer_blocked(&a, &r, 3, t + SEC, &retry));
    assert_true(bp_limits_peers() >= 1);
    /* Swept once the bucket is full again. */
    bp_limits_sweep(t + 10 * SEC);
    assert_int_equal(bp_limits_peers(), 0);
    assert_false(bp_limits_peer_blocked(&a, &r, 3, t + 10 * SEC, &retry));
}

/* Counting in advance: take_failure takes from the allowance until it is spent, then refuses
 * with the wait; a refund gives one back, never more than a full bucket. */
static void
test_peer_take_failure_and_refund(void **state)
{
    struct bp_rate r = rate("60/m");
    struct bp_ip a;
    int64_t retry = 0;
    int64_t t = 300 * SEC;

    (void)state;
    bp_limits_set_nodes(1);
    bp_limits_sweep(1LL << 50);
    assert_true(bp_ip_parse("192.0.2.9", 9, &a));
    for (int i = 0; i < 3; i++) {
        assert_true(bp_limits_peer_take_failure(&a, &r, 3, t, &retry));
    }
    assert_false(bp_limits_peer_take_failure(&a, &r, 3, t, &retry));
    assert_int_equal(retry, 1000);
    assert_true(bp_limits_peer_blocked(&a, &r, 3, t, &retry));
    /* A refused take counted nothing: one refund makes room for exactly one more. */
    bp_limits_peer_refund(&a, &r, 3, t);
    assert_false(bp_limits_peer_blocked(&a, &r, 3, t, &retry));
    assert_true(bp_limits_peer_take_failure(&a, &r, 3, t, &retry));
    assert_false(bp_limits_peer_take_failure(&a, &r, 3, t, &retry));
    /* Refunds beyond what was taken leave a full bucket, not a larger one. */
    for (int i = 0; i < 10; i++) {
        bp_limits_peer_refund(&a, &r, 3, t);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(bp_limits_peer_take_failure(&a, &r, 3, t, &retry));
    }
    assert_false(bp_limits_peer_take_failure(&a, &r, 3, t, &retry));
    /* A rate of 0 counts nothing and refuses nothing. */
    assert_true(bp_limits_peer_take_failure(&a, &(struct bp_rate){0}, 3, t, &retry));
    bp_limits_sweep(1LL << 50);
}

/* The peer table is bounded: past BP_LIMITS_PEERS_MAX peers, new ones are not tracked. */
static void
test_peer_table_bounded(void **state)
{
    struct bp_rate r = rate("1/h");
    struct bp_ip ip;
    int64_t retry;

    (void)state;
    bp_limits_set_nodes(1);
    bp_limits_sweep(1LL << 50);
    memset(&ip, 0, sizeof(ip));
    for (uint32_t i = 0; i < BP_LIMITS_PEERS_MAX + 100; i++) {
        memcpy(ip.b + 8, &i, sizeof(i));
        bp_limits_peer_failed(&ip, &r, 1, 200 * SEC);
    }
    assert_int_equal(bp_limits_peers(), BP_LIMITS_PEERS_MAX);
    memcpy(ip.b + 8, &(uint32_t){BP_LIMITS_PEERS_MAX + 50}, sizeof(uint32_t));
    assert_false(bp_limits_peer_blocked(&ip, &r, 1, 200 * SEC, &retry));
    memcpy(ip.b + 8, &(uint32_t){7}, sizeof(uint32_t));
    assert_true(bp_limits_peer_blocked(&ip, &r, 1, 200 * SEC, &retry));
    bp_limits_sweep(1LL << 50);
    assert_int_equal(bp_limits_peers(), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_text),
        cmocka_unit_test(test_burst_then_steady),
        cmocka_unit_test(test_unlimited_and_default_burst),
        cmocka_unit_test(test_limit_changes),
        cmocka_unit_test(test_node_share),
        cmocka_unit_test(test_peer_failures),
        cmocka_unit_test(test_peer_take_failure_and_refund),
        cmocka_unit_test(test_peer_table_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
