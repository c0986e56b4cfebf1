/* The authorize page's rate limits (throttle.c) through their module-internal interface: the
 * sign-in attempt reservation (atomic check-and-count, also across threads), a table full of
 * blocking entries (refuse, never forget a block), and the anonymous-session limit. The tables
 * are process-wide, so every test uses its own names and addresses, and a time base of its own
 * far from the others. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "oauth/oauth-int.h"

#define SLOTS 4096 /* THROTTLE_SLOTS in throttle.c */
#define HOUR_MS (3600LL * 1000)

static void
test_reserve_counts_before_verifying(void **state)
{
    int64_t t = 1000 * HOUR_MS;

    for (int i = 0; i < BP_OAUTH_THROTTLE_MAX_FAILURES; i++) {
        assert_false(bp_oauth__throttle_blocked("r-name", NULL, t));
        assert_true(bp_oauth__throttle_reserve("r-name", "203.0.113.1", t));
    }
    assert_true(bp_oauth__throttle_blocked("r-name", NULL, t));
    assert_true(bp_oauth__throttle_blocked(NULL, "203.0.113.1", t));
    assert_false(bp_oauth__throttle_reserve("r-name", "203.0.113.2", t));
    assert_false(bp_oauth__throttle_reserve("r-other", "203.0.113.1", t));
    /* A refused attempt counted nothing for the other key. */
    assert_false(bp_oauth__throttle_blocked(NULL, "203.0.113.2", t));
    assert_false(bp_oauth__throttle_blocked("r-other", NULL, t));
    /* The window ends. */
    assert_true(bp_oauth__throttle_reserve("r-name", "203.0.113.1", t + BP_OAUTH_THROTTLE_WINDOW_MS));

    /* Success forgets the name and gives the peer its reservation back. */
    t += 10 * HOUR_MS;
    for (int i = 0; i < BP_OAUTH_THROTTLE_MAX_FAILURES; i++) {
        assert_true(bp_oauth__throttle_reserve("s-name", "203.0.113.3", t));
    }
    bp_oauth__throttle_success("s-name", "203.0.113.3", t);
    assert_false(bp_oauth__throttle_blocked("s-name", NULL, t));
    assert_false(bp_oauth__throttle_blocked(NULL, "203.0.113.3", t));
    assert_true(bp_oauth__throttle_reserve("s-name2", "203.0.113.3", t));
    assert_false(bp_oauth__throttle_reserve("s-name3", "203.0.113.3", t));
}

struct racer {
    int64_t t;
    int granted;
};

static void *
race(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < 20; i++) {
        if (bp_oauth__throttle_reserve("race-victim", NULL, r->t)) {
            r->granted++;
        }
    }
    return NULL;
}

/* Parallel attempts cannot exceed the limit: exactly BP_OAUTH_THROTTLE_MAX_FAILURES are let
 * through, however the threads interleave. */
static void
test_parallel_attempts_bounded(void **state)
{
    struct racer r[8];
    pthread_t th[8];
    int total = 0;

    for (int i = 0; i < 8; i++) {
        r[i].t = 2000 * HOUR_MS;
        r[i].granted = 0;
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        total += r[i].granted;
    }
    assert_int_equal(total, BP_OAUTH_THROTTLE_MAX_FAILURES);
}

/* With every slot blocking, a new name or address is refused rather than an existing block
 * evicted; when a slot is merely counting, it is the one given up. */
static void
test_full_table_never_forgets_a_block(void **state)
{
    int64_t t = 3000 * HOUR_MS;
    char name[32];

    for (int i = 0; i < SLOTS; i++) {
        snprintf(name, sizeof(name), "fill-%d", i);
        for (int k = 0; k < BP_OAUTH_THROTTLE_MAX_FAILURES; k++) {
            assert_true(bp_oauth__throttle_reserve(name, NULL, t + i));
        }
    }
    /* Later than all of them, so a policy of "evict the oldest" would pick fill-0. */
    assert_false(bp_oauth__throttle_reserve("newcomer", NULL, t + SLOTS));
    assert_false(bp_oauth__throttle_reserve(NULL, "198.51.100.9", t + SLOTS));
    assert_true(bp_oauth__throttle_blocked("fill-0", NULL, t + SLOTS));
    assert_true(bp_oauth__throttle_blocked("fill-4095", NULL, t + SLOTS));

    /* When fill-0's window ends, its slot is free again. */
    assert_true(bp_oauth__throttle_reserve("newcomer", NULL, t + BP_OAUTH_THROTTLE_WINDOW_MS));
    assert_false(bp_oauth__throttle_blocked("fill-0", NULL, t + BP_OAUTH_THROTTLE_WINDOW_MS));
    assert_true(bp_oauth__throttle_blocked("fill-1", NULL, t + BP_OAUTH_THROTTLE_WINDOW_MS));

    /* Much later every window has ended: the table works normally. */
    t += 10 * HOUR_MS;
    assert_true(bp_oauth__throttle_reserve("after", "198.51.100.9", t));
}

/* A name and a peer are both needed: when the peer cannot get a slot, the name's fresh slot is
 * given back rather than left counting an attempt that was refused. */
static void
test_refused_reservation_counts_nothing(void **state)
{
    int64_t t = 4000 * HOUR_MS;
    char name[32];

    for (int i = 0; i < SLOTS - 1; i++) {
        snprintf(name, sizeof(name), "fill2-%d", i);
        for (int k = 0; k < BP_OAUTH_THROTTLE_MAX_FAILURES; k++) {
            assert_true(bp_oauth__throttle_reserve(name, NULL, t));
        }
    }
    /* One slot left: the name takes it, the peer finds none, so nothing is counted. */
    assert_false(bp_oauth__throttle_reserve("pair-name", "198.51.100.10", t));
    assert_true(bp_oauth__throttle_reserve("pair-name", NULL, t));
    for (int k = 1; k < BP_OAUTH_THROTTLE_MAX_FAILURES; k++) {
        assert_true(bp_oauth__throttle_reserve("pair-name", NULL, t));
    }
    assert_true(bp_oauth__throttle_blocked("pair-name", NULL, t));
    t += 10 * HOUR_MS;
    assert_true(bp_oauth__throttle_reserve("after2", NULL, t));
}

static void
test_session_rate(void **state)
{
    int64_t t = 5000 * HOUR_MS;
    int64_t retry = -1;

    for (int i = 0; i < BP_OAUTH_SESSION_MAX_PER_PEER; i++) {
        assert_true(bp_oauth__session_rate_take("203.0.113.50", t + i * 1000, &retry));
        assert_int_equal(retry, 0);
    }
    assert_false(bp_oauth__session_rate_take("203.0.113.50", t + 60 * 1000, &retry));
    assert_int_equal(retry, BP_OAUTH_SESSION_WINDOW_MS / 1000 - 60);
    assert_true(bp_oauth__session_rate_take("203.0.113.51", t + 60 * 1000, &retry));
    assert_true(bp_oauth__session_rate_take("203.0.113.50", t + BP_OAUTH_SESSION_WINDOW_MS, &retry));
    /* Separate from sign-in: a peer blocked for sessions can still sign in. */
    assert_false(bp_oauth__throttle_blocked(NULL, "203.0.113.50", t + 60 * 1000));
    /* No peer known: nothing to count by. */
    assert_true(bp_oauth__session_rate_take(NULL, t, &retry));
}

/* An IPv6 /64 is one peer: addresses of one subscriber's allocation share its counts. */
static void
test_ipv6_peer_is_its_64(void **state)
{
    int64_t t = 6000 * HOUR_MS;
    int64_t retry = -1;
    char addr[64];

    (void)state;
    for (int i = 0; i < BP_OAUTH_THROTTLE_MAX_FAILURES; i++) {
        snprintf(addr, sizeof(addr), "2001:db8:6:1::%x", i + 1);
        assert_true(bp_oauth__throttle_reserve(NULL, addr, t));
    }
    assert_true(bp_oauth__throttle_blocked(NULL, "2001:db8:6:1:ffff::9", t));
    assert_false(bp_oauth__throttle_reserve(NULL, "2001:db8:6:1::abcd", t));
    assert_false(bp_oauth__throttle_blocked(NULL, "2001:db8:6:2::1", t)); /* the next /64 */
    /* IPv4 stays per address. */
    for (int i = 0; i < BP_OAUTH_THROTTLE_MAX_FAILURES; i++) {
        assert_true(bp_oauth__throttle_reserve(NULL, "198.51.100.61", t));
    }
    assert_true(bp_oauth__throttle_blocked(NULL, "198.51.100.61", t));
    assert_false(bp_oauth__throttle_blocked(NULL, "198.51.100.62", t));
    for (int i = 0; i < BP_OAUTH_SESSION_MAX_PER_PEER; i++) {
        snprintf(addr, sizeof(addr), "2001:db8:6:3::%x", i + 1);
        assert_true(bp_oauth__session_rate_take(addr, t, &retry));
    }
    assert_false(bp_oauth__session_rate_take("2001:db8:6:3::beef", t, &retry));
}

/* However many addresses create them, anonymous sessions are bounded per window overall. */
static void
test_sessions_bounded_overall(void **state)
{
    int64_t t = 7000 * HOUR_MS;
    int64_t retry = -1;
    int made = 0;
    char addr[64];

    (void)state;
    for (int peer = 0; made < BP_OAUTH_SESSION_MAX_GLOBAL; peer++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.7", peer / 250, peer % 250);
        for (int i = 0; i < BP_OAUTH_SESSION_MAX_PER_PEER && made < BP_OAUTH_SESSION_MAX_GLOBAL; i++) {
            assert_true(bp_oauth__session_rate_take(addr, t + 1000, &retry));
            made++;
        }
    }
    assert_false(bp_oauth__session_rate_take("192.0.2.77", t + 61 * 1000, &retry));
    assert_int_equal(retry, BP_OAUTH_SESSION_WINDOW_MS / 1000 - 60); /* the window began at t + 1 s */
    assert_true(bp_oauth__session_rate_take("192.0.2.77", t + 1000 + BP_OAUTH_SESSION_WINDOW_MS, &retry));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_counts_before_verifying),
        cmocka_unit_test(test_parallel_attempts_bounded),
        cmocka_unit_test(test_full_table_never_forgets_a_block),
        cmocka_unit_test(test_refused_reservation_counts_nothing),
        cmocka_unit_test(test_session_rate),
        cmocka_unit_test(test_ipv6_peer_is_its_64),
        cmocka_unit_test(test_sessions_bounded_overall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
