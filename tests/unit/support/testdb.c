#include "testdb.h"

/* clang-format off: cmocka needs these four headers first, in this order */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/alloc.h"
#include "lib/err.h"
#include "store/store.h"

void
bp_testdb_init(struct bp_testdb *t, const char *tag)
{
    int n = snprintf(t->dir, sizeof(t->dir), "/tmp/bp_%s_XXXXXX", tag);

    assert_true(n > 0 && (size_t)n < sizeof(t->dir));
    assert_non_null(mkdtemp(t->dir));
    n = snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
    assert_true(n > 0 && (size_t)n < sizeof(t->path));
}

struct bp_store *
bp_testdb_open(const struct bp_testdb *t)
{
    struct bp_store *s = NULL;
    char err[256];

    assert_int_equal(bp_store_open(t->path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_migrate(s, NULL, NULL), BP_OK);
    return s;
}

int
bp_testdb_cleanup(struct bp_testdb *t)
{
    /* The files SQLite (WAL or rollback journal) and the audit writer's default spool
     * ("<db>.audit-spool") may create beside the database. */
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", ".audit-spool"};
    char p[sizeof(t->path) + 16];

    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", t->path, suffixes[i]);
        unlink(p);
    }
    return rmdir(t->dir);
}

int
bp_testdb_store_setup(void **state, const char *tag)
{
    struct bp_testdb_store *f = bp_calloc(1, sizeof(*f));

    bp_testdb_init(&f->db, tag);
    f->s = bp_testdb_open(&f->db);
    *state = f;
    return 0;
}

int
bp_testdb_store_teardown(void **state)
{
    struct bp_testdb_store *f = *state;

    bp_store_close(f->s);
    (void)bp_testdb_cleanup(&f->db);
    bp_free(f);
    return 0;
}
