#ifndef BP_TESTDB_H
#define BP_TESTDB_H

/* A throwaway store for unit tests.
 *
 * SQLite (the default): a fresh directory under /tmp holding "test.db". Everything the store and
 * the audit spool can leave next to the database is removed with it.
 *
 * PostgreSQL, when BLNKPROXY_TEST_STORE=pg: a fresh database with a random name on the test
 * server that the ctest fixture pg_server_start started (scripts/pg-test-server.sh; its admin DSN
 * is read from $BP_TEST_PG_DIR/admin.dsn), dropped again by the cleanup. The directory is made
 * too, for files a test keeps beside its store. Each test gets its own database, so tests run in
 * parallel without seeing each other. */

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"

struct bp_store;
struct pg_conn; /* libpq's PGconn */

struct bp_testdb {
    char dir[64];   /* "/tmp/bp_<tag>_XXXXXX", created by bp_testdb_init */
    char path[256]; /* the DSN: "<dir>/test.db" (not created until opened), or a postgresql:// URI */
    char pg_name[64]; /* the PostgreSQL database's name; "" on SQLite */
};

/* True when the tests run against PostgreSQL (BLNKPROXY_TEST_STORE=pg). */
bool bp_testdb_is_pg(void);

/* Creates the directory (and on PostgreSQL the database); a failure fails the running test. */
void bp_testdb_init(struct bp_testdb *t, const char *tag);

/* Opens t->path and migrates it to the current schema; a failure fails the running test. */
struct bp_store *bp_testdb_open(const struct bp_testdb *t);

/* Removes the database (SQLite: its -wal, -shm and -journal files and its default audit spool;
 * PostgreSQL: DROP DATABASE, closing connections left open), then the directory. Returns rmdir's
 * result so a test can assert that nothing else was left behind. */
int bp_testdb_cleanup(struct bp_testdb *t);

/* The admin DSN of the PostgreSQL test server (a connection to its "postgres" database), for
 * tests that need a database of their own making; fails the running test when there is none. */
const char *bp_testdb_pg_admin_dsn(void);

/* A raw libpq connection (PGconn) to dsn, for what the store interface does not do: the tests
 * that edit rows behind the store's back or cut its connections. A failure fails the running test. */
struct pg_conn *bp_testdb_pg_connect(const char *dsn);
/* Runs sql on c; anything but success fails the running test. */
void bp_testdb_pg_exec(struct pg_conn *c, const char *sql);
/* The first column of the only row sql returns, as an integer; fails the test otherwise. */
int64_t bp_testdb_pg_int(struct pg_conn *c, const char *sql);

/* Runs sql on t's database behind the store's back (a raw connection of its own, closed
 * after): for tests that edit rows as someone with database access would. A failure fails the
 * running test. */
void bp_testdb_exec(const struct bp_testdb *t, const char *sql);

/* For bp_store_audit_purge in tests below the trail module: an unsigned checkpoint whose body
 * names the cut ("chain upto head records"), kind "purge". */
struct bp_audit_cut;
struct bp_audit_checkpoint;
bp_err bp_testdb_cut(void *ctx, const struct bp_audit_cut *cut, struct bp_audit_checkpoint *out);

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
