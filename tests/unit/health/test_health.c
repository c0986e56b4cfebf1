/* The per-instance health state machine (health/health.h): up → down after N consecutive
 * failures, refused while cooling down, one trial after it, back up on success. Times are passed
 * in, so nothing here waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "health/health.h"

static const struct bp_health_conf conf = {.failures = 3, .cooldown_ms = 1000};

static struct bp_health *
slot(const char *id)
{
    const char *ids[1] = {id};
    const char *names[1] = {"Name"};
    struct bp_health *h = NULL;

    bp_health_track(ids, names, 1, &h);
    return h;
}

static int
teardown(void **state)
{
    (void)state;
    bp_health_reset();
    return 0;
}

static bool
admit(struct bp_health *h, int64_t now, bool *trial)
{
    return bp_health_admit(h, now, trial);
}

static void
test_new_instance_is_up_and_admits_without_trial(void **state)
{
    struct bp_health *h = slot("instance_a");
    bool trial = true;
    (void)state;

    assert_true(bp_health_is_up(h));
    assert_true(admit(h, 0, &trial));
    assert_false(trial);
}

static void
test_goes_down_only_after_consecutive_failures(void **state)
{
    struct bp_health *h = slot("instance_a");
    bool trial;
    (void)state;

    bp_health_report(h, &conf, false, false, 100);
    bp_health_report(h, &conf, false, false, 100);
    /* A success between resets the count: failures must be consecutive. */
    bp_health_report(h, &conf, true, false, 0);
    bp_health_report(h, &conf, false, false, 100);
    bp_health_report(h, &conf, false, false, 100);
    assert_true(bp_health_is_up(h));
    bp_health_report(h, &conf, false, false, 100);
    assert_false(bp_health_is_up(h));
    /* Cooling down: refused, no trial. */
    assert_false(admit(h, 100, &trial));
    assert_false(trial);
    assert_false(admit(h, 1099, &trial));
    assert_false(trial);
}

/* health.failures = 0: passive health off, no number of failures makes an instance down. */
static void
test_zero_failures_never_goes_down(void **state)
{
    static const struct bp_health_conf off = {.failures = 0, .cooldown_ms = 1000};
    struct bp_health *h = slot("instance_a");
    bool trial = true;
    (void)state;

    for (int i = 0; i < 5000; i++) {
        bp_health_report(h, &off, false, false, 100);
    }
    assert_true(bp_health_is_up(h));
    assert_true(admit(h, 200, &trial));
    assert_false(trial);
}

static void
test_one_trial_after_cooldown_success_brings_it_up(void **state)
{
    struct bp_health *h = slot("instance_a");
    bool trial = false;
    bool other = true;
    (void)state;

    for (int i = 0; i < 3; i++) {
        bp_health_report(h, &conf, false, false, 0);
    }
    assert_true(admit(h, 1000, &trial));
    assert_true(trial);
    /* Only one trial at a time. */
    assert_false(admit(h, 1001, &other));
    assert_false(other);
    bp_health_report(h, &conf, true, true, 0);
    assert_true(bp_health_is_up(h));
    assert_true(admit(h, 1002, &other));
    assert_false(other);
}

static void
test_failed_trial_starts_a_new_cooldown(void **state)
{
    struct bp_health *h = slot("instance_a");
    bool trial = false;
    (void)state;

    for (int i = 0; i < 3; i++) {
        bp_health_report(h, &conf, false, false, 0);
    }
    assert_true(admit(h, 1000, &trial));
    assert_true(trial);
    bp_health_report(h, &conf, false, true, 1500);
    assert_false(bp_health_is_up(h));
    assert_false(admit(h, 2499, &trial));
    assert_false(trial);
    assert_true(admit(h, 2500, &trial));
    assert_true(trial);
}

static void
test_released_trial_lets_the_next_request_try(void **state)
{
    struct bp_health *h = slot("instance_a");
    bool trial = false;
    (void)state;

    for (int i = 0; i < 3; i++) {
        bp_health_report(h, &conf, false, false, 0);
    }
    assert_true(admit(h, 1000, &trial));
    assert_true(trial);
    bp_health_release(h);
    assert_false(bp_health_is_up(h));
    assert_true(admit(h, 1000, &trial));
    assert_true(trial);
}

static void
test_probe_success_brings_a_down_instance_up_before_the_cooldown(void **state)
{
    struct bp_health *h = slot("instance_a");
    bool trial = true;
    (void)state;

    for (int i = 0; i < 3; i++) {
        bp_health_report(h, &conf, false, false, 0);
    }
    assert_false(bp_health_is_up(h));
    bp_health_report(h, &conf, true, false, 0); /* a probe */
    assert_true(bp_health_is_up(h));
    assert_true(admit(h, 1, &trial));
    assert_false(trial);
}

struct seen {
    char ids[4][32];
    char names[4][32];
    bool up[4];
    size_t n;
};

static void
collect(void *arg, const char *id, const char *name, bool up)
{
    struct seen *s = arg;

    strncpy(s->ids[s->n], id, sizeof(s->ids[0]) - 1);
    strncpy(s->names[s->n], name, sizeof(s->names[0]) - 1);
    s->up[s->n++] = up;
}

static void
test_state_survives_a_new_table_and_only_published_ones_show(void **state)
{
    const char *ids[2] = {"instance_a", "instance_b"};
    const char *names[2] = {"A", NULL};
    struct bp_health *slots[2];
    struct bp_health *a = slot("instance_a");
    struct seen s = {0};
    (void)state;

    for (int i = 0; i < 3; i++) {
        bp_health_report(a, &conf, false, false, 0);
    }
    bp_health_track(ids, names, 2, slots);
    assert_ptr_equal(slots[0], a);
    assert_false(bp_health_is_up(slots[0]));
    assert_true(bp_health_is_up(slots[1]));
    bp_health_each(collect, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "instance_a");
    assert_string_equal(s.names[0], "A");
    assert_false(s.up[0]);
    assert_string_equal(s.ids[1], "instance_b");
    assert_string_equal(s.names[1], "");
    assert_true(s.up[1]);
    /* instance_a removed: not shown, but its slot (and state) stays for when it comes back. */
    bp_health_track(&ids[1], &names[1], 1, slots);
    memset(&s, 0, sizeof(s));
    bp_health_each(collect, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "instance_b");
    bp_health_track(ids, names, 2, slots);
    assert_ptr_equal(slots[0], a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_new_instance_is_up_and_admits_without_trial, teardown),
        cmocka_unit_test_teardown(test_goes_down_only_after_consecutive_failures, teardown),
        cmocka_unit_test_teardown(test_zero_failures_never_goes_down, teardown),
        cmocka_unit_test_teardown(test_one_trial_after_cooldown_success_brings_it_up, teardown),
        cmocka_unit_test_teardown(test_failed_trial_starts_a_new_cooldown, teardown),
        cmocka_unit_test_teardown(test_released_trial_lets_the_next_request_try, teardown),
        cmocka_unit_test_teardown(test_probe_success_brings_a_down_instance_up_before_the_cooldown, teardown),
        cmocka_unit_test_teardown(test_state_survives_a_new_table_and_only_published_ones_show, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
