#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/str.h"

static const char *const flags[] = {"--name", "--scopes", "--expires-in", "--instances", "--json", "--db"};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

static void
test_nearest_finds_typos(void **state)
{
    (void)state;
    assert_string_equal(bp_str_nearest("--scope", flags, N_FLAGS), "--scopes");
    assert_string_equal(bp_str_nearest("--expires", flags, N_FLAGS), "--expires-in");
    assert_string_equal(bp_str_nearest("--instance", flags, N_FLAGS), "--instances");
    assert_string_equal(bp_str_nearest("--nmae", flags, N_FLAGS), "--name");
    assert_string_equal(bp_str_nearest("--jsno", flags, N_FLAGS), "--json");
}

static void
test_nearest_gives_up_when_far(void **state)
{
    (void)state;
    assert_null(bp_str_nearest("--completely-different", flags, N_FLAGS));
    assert_null(bp_str_nearest("--xyz", flags, 0));
    assert_null(bp_str_nearest("--secret-key", flags, N_FLAGS));
}

static void
test_nearest_ignores_long_words(void **state)
{
    char word[200];
    const char *const cands[] = {word};

    (void)state;
    memset(word, 'a', sizeof(word) - 1);
    word[sizeof(word) - 1] = '\0';
    assert_null(bp_str_nearest(word, cands, 1));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nearest_finds_typos),
        cmocka_unit_test(test_nearest_gives_up_when_far),
        cmocka_unit_test(test_nearest_ignores_long_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
