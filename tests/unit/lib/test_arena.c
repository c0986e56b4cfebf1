/* The request arena and its chunk pool: reuse without allocating, large allocations, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdalign.h>
#include <string.h>

#include "lib/arena.h"

static void
test_allocations_are_aligned_and_distinct(void **state)
{
    struct bp_arena_pool pool;
    struct bp_arena a;
    char *prev = NULL;

    (void)state;
    bp_arena_pool_init(&pool, 4096, 4);
    bp_arena_init(&a, &pool);
    for (size_t i = 1; i < 200; i++) {
        char *p = bp_arena_alloc(&a, i);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        memset(p, (int)i, i); /* ASan would catch an overlap or overrun */
        assert_true(p != prev);
        prev = p;
    }
    bp_arena_reset(&a);
    bp_arena_pool_cleanup(&pool);
}

static void
test_reset_returns_chunks_for_reuse(void **state)
{
    struct bp_arena_pool pool;
    struct bp_arena a;
    char *first;
    char *again;

    (void)state;
    bp_arena_pool_init(&pool, 4096, 4);
    bp_arena_init(&a, &pool);
    first = bp_arena_alloc(&a, 100);
    bp_arena_reset(&a);
    assert_int_equal(pool.n_free, 1);
    again = bp_arena_alloc(&a, 100);
    /* The same chunk serves the next request: no allocation once warm. */
    assert_ptr_equal(first, again);
    assert_int_equal(pool.n_free, 0);
    bp_arena_reset(&a);
    bp_arena_pool_cleanup(&pool);
    assert_int_equal(pool.n_free, 0);
}

static void
test_large_allocations_get_their_own_chunk(void **state)
{
    struct bp_arena_pool pool;
    struct bp_arena a;
    char *small1;
    char *big;
    char *small2;

    (void)state;
    bp_arena_pool_init(&pool, 4096, 2);
    bp_arena_init(&a, &pool);
    small1 = bp_arena_alloc(&a, 16);
    big = bp_arena_alloc(&a, 100000);
    memset(big, 1, 100000);
    small2 = bp_arena_alloc(&a, 16);
    /* The chunk being filled stays in use after a large allocation. */
    assert_ptr_equal(small2, small1 + 16);
    bp_arena_reset(&a);
    /* Only the pooled chunk is kept; the large one was freed. */
    assert_int_equal(pool.n_free, 1);
    bp_arena_pool_cleanup(&pool);
}

static void
test_pool_keeps_at_most_max_free(void **state)
{
    struct bp_arena_pool pool;
    struct bp_arena a;

    (void)state;
    bp_arena_pool_init(&pool, 4096, 2);
    bp_arena_init(&a, &pool);
    for (int i = 0; i < 10; i++) {
        bp_arena_alloc(&a, 900); /* four per chunk at most */
    }
    bp_arena_reset(&a);
    assert_int_equal(pool.n_free, 2);
    bp_arena_pool_cleanup(&pool);
}

static void
test_memdup_terminates(void **state)
{
    struct bp_arena_pool pool;
    struct bp_arena a;
    char *s;

    (void)state;
    bp_arena_pool_init(&pool, 4096, 1);
    bp_arena_init(&a, &pool);
    s = bp_arena_memdup(&a, "abcdef", 3);
    assert_string_equal(s, "abc");
    s = bp_arena_memdup(&a, NULL, 0);
    assert_string_equal(s, "");
    bp_arena_reset(&a);
    bp_arena_pool_cleanup(&pool);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocations_are_aligned_and_distinct),
        cmocka_unit_test(test_reset_returns_chunks_for_reuse),
        cmocka_unit_test(test_large_allocations_get_their_own_chunk),
        cmocka_unit_test(test_pool_keeps_at_most_max_free),
        cmocka_unit_test(test_memdup_terminates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
