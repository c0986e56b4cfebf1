/* The work-queue primitive: work off the loop, done on the loop; limits, delays, batches, stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/workq.h"
#include "lib/clock.h"

struct item {
    struct bp_work w;
    int id;
    atomic_bool worked;
    bool done;
    bp_err status;
    pthread_t work_thread;
    pthread_t done_thread;
    int64_t worked_at_ms;
    int64_t due_ms;
};

struct loop {
    struct event_base *base;
    struct bp_inbox *inbox;
    int done_count;
    int want;
    int order[64];
};

static struct loop *the_loop;

static void
item_work(struct bp_work *w, void *state)
{
    struct item *it = (struct item *)w;
    (void)state;
    it->work_thread = pthread_self();
    it->worked_at_ms = bp_clock_mono_ms();
    atomic_store(&it->worked, true);
}

static void
item_done(struct bp_work *w, bp_err status)
{
    struct item *it = (struct item *)w;

    it->done = true;
    it->status = status;
    it->done_thread = pthread_self();
    if (the_loop != NULL) {
        the_loop->order[the_loop->done_count++ % 64] = it->id;
        if (the_loop->done_count == the_loop->want) {
            event_base_loopbreak(the_loop->base);
        }
    }
}

static void
loop_init(struct loop *l, int want)
{
    memset(l, 0, sizeof(*l));
    evthread_use_pthreads();
    l->base = event_base_new();
    assert_non_null(l->base);
    assert_int_equal(bp_inbox_new(l->base, &l->inbox), BP_OK);
    l->want = want;
    the_loop = l;
}

/* Runs the loop until `want` dones ran, or 10 s passed (then the test's counts fail). */
static void
loop_run(struct loop *l)
{
    struct timeval limit = {10, 0};
    event_base_loopexit(l->base, &limit);
    event_base_dispatch(l->base);
}

static void
loop_fini(struct loop *l)
{
    bp_inbox_free(l->inbox);
    event_base_free(l->base);
    the_loop = NULL;
}

static void
init_item(struct item *it, int id, struct bp_inbox *inbox)
{
    memset(it, 0, sizeof(*it));
    it->w.work = item_work;
    it->w.done = item_done;
    it->w.inbox = inbox;
    it->id = id;
}

static void
test_work_off_the_loop_done_on_the_loop(void **state)
{
    struct bp_workq_opts o = {.name = "t-work", .threads = 2};
    struct bp_workq *q = NULL;
    struct item items[20];
    struct loop l;

    (void)state;
    loop_init(&l, 20);
    assert_int_equal(bp_workq_new(&o, &q), BP_OK);
    for (int i = 0; i < 20; i++) {
        init_item(&items[i], i, l.inbox);
        assert_int_equal(bp_workq_submit(q, &items[i].w), BP_OK);
    }
    loop_run(&l);
    assert_int_equal(l.done_count, 20);
    for (int i = 0; i < 20; i++) {
        assert_true(atomic_load(&items[i].worked));
        assert_true(items[i].done);
        assert_int_equal(items[i].status, BP_OK);
        assert_false(pthread_equal(items[i].work_thread, pthread_self()));
        assert_true(pthread_equal(items[i].done_thread, pthread_self()));
    }
    bp_workq_free(q);
    loop_fini(&l);
}

/* A work function that holds its thread until released, so that the queue fills up. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static bool gate_entered;

static void
gated_work(struct bp_work *w, void *state)
{
    item_work(w, state);
    pthread_mutex_lock(&gate_mu);
    gate_entered = true;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open) {
        pthread_cond_wait(&gate_cond, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
}

static void
gate_reset(void)
{
    gate_open = false;
    gate_entered = false;
}

static void
gate_wait_entered(void)
{
    pthread_mutex_lock(&gate_mu);
    while (!gate_entered) {
        pthread_cond_wait(&gate_cond, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
}

static void
gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_mu);
}

static void
test_full_queue_refuses_and_never_calls_done(void **state)
{
    struct bp_workq_opts o = {.name = "t-full", .threads = 1, .max_queued = 2};
    struct bp_workq *q = NULL;
    struct item busy;
    struct item a;
    struct item b;
    struct item refused;

    (void)state;
    gate_reset();
    assert_int_equal(bp_workq_new(&o, &q), BP_OK);
    init_item(&busy, 0, NULL);
    busy.w.work = gated_work;
    assert_int_equal(bp_workq_submit(q, &busy.w), BP_OK);
    gate_wait_entered(); /* taken: no longer queued */
    init_item(&a, 1, NULL);
    init_item(&b, 2, NULL);
    init_item(&refused, 3, NULL);
    assert_int_equal(bp_workq_submit(q, &a.w), BP_OK);
    assert_int_equal(bp_workq_submit(q, &b.w), BP_OK);
    assert_int_equal(bp_workq_depth(q), 2);
    assert_int_equal(bp_workq_submit(q, &refused.w), BP_ERR_LIMIT);
    gate_release();
    bp_workq_free(q);
    assert_true(busy.done && a.done && b.done);
    assert_false(refused.done);
    assert_false(atomic_load(&refused.worked));
}

static void
test_delayed_item_runs_when_due(void **state)
{
    struct bp_workq_opts o = {.name = "t-delay", .threads = 1};
    struct bp_workq *q = NULL;
    struct item late;
    struct item early;
    struct item now;
    struct loop l;
    int64_t t0 = bp_clock_mono_ms();

    (void)state;
    loop_init(&l, 3);
    assert_int_equal(bp_workq_new(&o, &q), BP_OK);
    init_item(&late, 1, l.inbox);
    init_item(&early, 2, l.inbox);
    init_item(&now, 3, l.inbox);
    late.due_ms = t0 + 200;
    early.due_ms = t0 + 50;
    assert_int_equal(bp_workq_submit_at(q, &late.w, late.due_ms), BP_OK);
    assert_int_equal(bp_workq_submit_at(q, &early.w, early.due_ms), BP_OK);
    assert_int_equal(bp_workq_submit(q, &now.w), BP_OK);
    loop_run(&l);
    assert_int_equal(l.done_count, 3);
    /* Order by due time, whatever the order of submission; never before the due time. */
    assert_int_equal(l.order[0], 3);
    assert_int_equal(l.order[1], 2);
    assert_int_equal(l.order[2], 1);
    assert_true(early.worked_at_ms >= early.due_ms);
    assert_true(late.worked_at_ms >= late.due_ms);
    bp_workq_free(q);
    loop_fini(&l);
}

static void
test_stop_drains_due_items_and_cancels_delayed_ones(void **state)
{
    struct bp_workq_opts o = {.name = "t-stop", .threads = 1};
    struct bp_workq *q = NULL;
    struct item busy;
    struct item queued[5];
    struct item delayed;
    struct item after;

    (void)state;
    gate_reset();
    assert_int_equal(bp_workq_new(&o, &q), BP_OK);
    init_item(&busy, 0, NULL);
    busy.w.work = gated_work;
    assert_int_equal(bp_workq_submit(q, &busy.w), BP_OK);
    gate_wait_entered();
    for (int i = 0; i < 5; i++) {
        init_item(&queued[i], i + 1, NULL);
        assert_int_equal(bp_workq_submit(q, &queued[i].w), BP_OK);
    }
    init_item(&delayed, 9, NULL);
    assert_int_equal(bp_workq_submit_at(q, &delayed.w, bp_clock_mono_ms() + 3600 * 1000), BP_OK);
    gate_release();
    bp_workq_stop(q);
    for (int i = 0; i < 5; i++) {
        assert_true(atomic_load(&queued[i].worked));
        assert_true(queued[i].done);
        assert_int_equal(queued[i].status, BP_OK);
    }
    assert_false(atomic_load(&delayed.worked));
    assert_true(delayed.done);
    assert_int_equal(delayed.status, BP_ERR_CANCELLED);
    init_item(&after, 10, NULL);
    assert_int_equal(bp_workq_submit(q, &after.w), BP_ERR_CANCELLED);
    assert_false(after.done);
    bp_workq_free(q);
}

/* Batching: a single consumer gets what queued up while it was busy, at most batch_max at a
 * time and in submission order. */
static int batch_sizes[16];
static int n_batches;
static int batch_order[32];
static int n_batch_order;

static void
batch_work(struct bp_work **items, size_t n, void *state, void *arg)
{
    (void)state;
    (void)arg;
    if (((struct item *)items[0])->id == 0) {
        gated_work(items[0], state);
    }
    batch_sizes[n_batches++] = (int)n;
    for (size_t i = 0; i < n; i++) {
        batch_order[n_batch_order++] = ((struct item *)items[i])->id;
        atomic_store(&((struct item *)items[i])->worked, true);
    }
}

static void
test_batching_consumer_takes_groups_in_order(void **state)
{
    struct bp_workq_opts o = {.name = "t-batch", .threads = 1, .work_batch = batch_work, .batch_max = 4};
    struct bp_workq *q = NULL;
    struct item items[11];

    (void)state;
    gate_reset();
    n_batches = 0;
    n_batch_order = 0;
    assert_int_equal(bp_workq_new(&o, &q), BP_OK);
    for (int i = 0; i < 11; i++) {
        init_item(&items[i], i, NULL);
        items[i].w.work = NULL;
    }
    assert_int_equal(bp_workq_submit(q, &items[0].w), BP_OK);
    gate_wait_entered();
    for (int i = 1; i < 11; i++) {
        assert_int_equal(bp_workq_submit(q, &items[i].w), BP_OK);
    }
    gate_release();
    bp_workq_free(q);
    assert_int_equal(n_batches, 4);
    assert_int_equal(batch_sizes[0], 1);
    assert_int_equal(batch_sizes[1], 4);
    assert_int_equal(batch_sizes[2], 4);
    assert_int_equal(batch_sizes[3], 2);
    for (int i = 0; i < 11; i++) {
        assert_int_equal(batch_order[i], i);
        assert_true(items[i].done);
    }
}

/* Lingering: items nobody hurries are left until linger_ms after the oldest fell due, and then go
 * as one batch; an urgent item takes the waiting ones along at once, and so do linger_full of
 * them and a stop. Ids start at 1 (batch_work gates item 0). */
static bool
worked_within(struct item *it, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && !atomic_load(&it->worked); waited += 5) {
        nanosleep(&(struct timespec){.tv_nsec = 5 * 1000000L}, NULL);
    }
    return atomic_load(&it->worked);
}

static void
test_lingering_items_go_as_one_batch(void **state)
{
    struct bp_workq_opts o = {.name = "t-linger",
                              .threads = 1,
                              .work_batch = batch_work,
                              .batch_max = 16,
                              .linger_ms = 3600 * 1000,
                              .linger_full = 5};
    struct bp_workq *q = NULL;
    struct item items[16];

    (void)state;
    n_batches = 0;
    n_batch_order = 0;
    for (int i = 0; i < 16; i++) {
        init_item(&items[i], i + 1, NULL);
        items[i].w.work = NULL;
    }
    assert_int_equal(bp_workq_new(&o, &q), BP_OK);
    /* Three that linger (for an hour), then an urgent one: one batch of four, in order. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bp_workq_submit(q, &items[i].w), BP_OK);
    }
    assert_false(worked_within(&items[0], 50));
    items[3].w.urgent = true;
    assert_int_equal(bp_workq_submit(q, &items[3].w), BP_OK);
    assert_true(worked_within(&items[3], 5000));
    assert_int_equal(n_batches, 1);
    assert_int_equal(batch_sizes[0], 4);
    /* linger_full of them: taken at once. */
    for (int i = 4; i < 9; i++) {
        assert_int_equal(bp_workq_submit(q, &items[i].w), BP_OK);
    }
    assert_true(worked_within(&items[8], 5000));
    assert_int_equal(n_batches, 2);
    assert_int_equal(batch_sizes[1], 5);
    /* A stop takes what lingers. */
    for (int i = 9; i < 11; i++) {
        assert_int_equal(bp_workq_submit(q, &items[i].w), BP_OK);
    }
    bp_workq_stop(q);
    assert_int_equal(n_batches, 3);
    assert_int_equal(batch_sizes[2], 2);
    for (int i = 0; i < 11; i++) {
        assert_int_equal(batch_order[i], i + 1);
        assert_true(items[i].done);
        assert_int_equal(items[i].status, BP_OK);
    }
    bp_workq_free(q);

    /* And by time alone: two that linger a second go together. */
    o.linger_ms = 1000;
    n_batches = 0;
    assert_int_equal(bp_workq_new(&o, &q), BP_OK);
    assert_int_equal(bp_workq_submit(q, &items[11].w), BP_OK);
    assert_int_equal(bp_workq_submit(q, &items[12].w), BP_OK);
    assert_true(worked_within(&items[12], 5000));
    assert_int_equal(n_batches, 1);
    assert_int_equal(batch_sizes[0], 2);
    bp_workq_free(q);
}

/* Per-thread state: made on each thread, unmade there; a failure fails the start. */
static atomic_int inits;
static atomic_int finis;

static bp_err
init_ok(void *arg, int index, void **out)
{
    (void)arg;
    atomic_fetch_add(&inits, 1);
    *out = (void *)(intptr_t)(index + 100);
    return BP_OK;
}

static bp_err
init_fails_second(void *arg, int index, void **out)
{
    (void)arg;
    if (index == 1) {
        return BP_ERR_STORE;
    }
    atomic_fetch_add(&inits, 1);
    *out = NULL;
    return BP_OK;
}

static void
fini_count(void *arg, void *st)
{
    (void)arg;
    (void)st;
    atomic_fetch_add(&finis, 1);
}

static void
state_work(struct bp_work *w, void *st)
{
    struct item *it = (struct item *)w;
    it->id = (int)(intptr_t)st;
    atomic_store(&it->worked, true);
}

static void
test_thread_state_is_made_per_thread(void **state)
{
    struct bp_workq_opts ok = {.name = "t-state", .threads = 3, .thread_init = init_ok, .thread_fini = fini_count};
    struct bp_workq_opts bad = {.name = "t-bad", .threads = 3, .thread_init = init_fails_second,
                                .thread_fini = fini_count};
    struct bp_workq *q = NULL;
    struct item it;

    (void)state;
    atomic_store(&inits, 0);
    atomic_store(&finis, 0);
    assert_int_equal(bp_workq_new(&ok, &q), BP_OK);
    assert_int_equal(atomic_load(&inits), 3);
    init_item(&it, -1, NULL);
    it.w.work = state_work;
    assert_int_equal(bp_workq_submit(q, &it.w), BP_OK);
    bp_workq_free(q);
    assert_true(it.id >= 100 && it.id <= 102);
    assert_int_equal(atomic_load(&finis), 3);

    atomic_store(&inits, 0);
    atomic_store(&finis, 0);
    q = NULL;
    assert_int_equal(bp_workq_new(&bad, &q), BP_ERR_STORE);
    assert_null(q);
    /* Every thread whose init succeeded unmade its state. */
    assert_int_equal(atomic_load(&finis), atomic_load(&inits));
}

static void
test_inbox_free_runs_what_was_posted_late(void **state)
{
    struct loop l;
    struct item it;

    (void)state;
    loop_init(&l, 1);
    init_item(&it, 7, NULL);
    /* The loop never ran: the post waits until the inbox is freed, and runs then. */
    bp_inbox_post(l.inbox, &it.w);
    assert_false(it.done);
    bp_inbox_free(l.inbox);
    l.inbox = NULL;
    assert_true(it.done);
    assert_int_equal(it.status, BP_OK);
    event_base_free(l.base);
    the_loop = NULL;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_work_off_the_loop_done_on_the_loop),
        cmocka_unit_test(test_full_queue_refuses_and_never_calls_done),
        cmocka_unit_test(test_delayed_item_runs_when_due),
        cmocka_unit_test(test_stop_drains_due_items_and_cancels_delayed_ones),
        cmocka_unit_test(test_batching_consumer_takes_groups_in_order),
        cmocka_unit_test(test_lingering_items_go_as_one_batch),
        cmocka_unit_test(test_thread_state_is_made_per_thread),
        cmocka_unit_test(test_inbox_free_runs_what_was_posted_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
