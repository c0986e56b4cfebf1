#ifndef BP_TESTDB_H
#define BP_TESTDB_H

/* A throwaway SQLite store for unit tests: a fresh directory under /tmp holding "test.db".
 * Everything the store and the audit spool can leave next to the database is removed with it. */

struct bp_store;

struct bp_testdb {
    char dir[64];   /* "/tmp/bp_<tag>_XXXXXX", created by bp_testdb_init */
    char path[128]; /* "<dir>/test.db", not created until opened */
};

/* Creates the directory; a failure fails the running test. */
void bp_testdb_init(struct bp_testdb *t, const char *tag);

/* Opens t->path and migrates it to the current schema; a failure fails the running test. */
struct bp_store *bp_testdb_open(const struct bp_testdb *t);

/* Removes the database, its -wal, -shm and -journal files, its default audit spool, then the
 * directory. Returns rmdir's result so a test can assert that nothing else was left behind. */
int bp_testdb_cleanup(struct bp_testdb *t);

/* The common cmocka fixture: a fresh, migrated store per test in *state. */
struct bp_testdb_store {
    struct bp_testdb db;
    struct bp_store *s;
};

/* For a cmocka setup function: allocates a struct bp_testdb_store into *state and opens it. */
int bp_testdb_store_setup(void **state, const char *tag);

/* A cmocka teardown function: closes the store, removes its files and frees *state. */
int bp_testdb_store_teardown(void **state);

#endif
