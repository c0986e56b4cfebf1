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
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "lib/alloc.h"
#include "lib/err.h"
#include "lib/rand.h"
#include "store/store.h"

bool
bp_testdb_is_pg(void)
{
    const char *kind = getenv("BLNKPROXY_TEST_STORE");
    return kind != NULL && strcmp(kind, "pg") == 0;
}

const char *
bp_testdb_pg_admin_dsn(void)
{
    static char dsn[512];
    const char *dir = getenv("BP_TEST_PG_DIR");
    char path[400];
    FILE *f;

    if (dsn[0] != '\0') {
        return dsn;
    }
    if (dir == NULL) {
        fail_msg("BLNKPROXY_TEST_STORE=pg needs BP_TEST_PG_DIR (the pg_server_start fixture's directory)");
    }
    snprintf(path, sizeof(path), "%s/admin.dsn", dir);
    f = fopen(path, "r");
    if (f == NULL) {
        fail_msg("no %s: is the PostgreSQL test server running (ctest fixture pg_server_start)?", path);
    }
    if (fgets(dsn, sizeof(dsn), f) == NULL) {
        dsn[0] = '\0';
    }
    fclose(f);
    dsn[strcspn(dsn, "\r\n")] = '\0';
    assert_true(dsn[0] != '\0');
    return dsn;
}

/* Runs one statement on the admin connection; names are ours ([a-z0-9_]), never input. */
static void
admin_exec(const char *sql)
{
    PGconn *c = PQconnectdb(bp_testdb_pg_admin_dsn());
    PGresult *r;

    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot connect to the PostgreSQL test server: %s", PQerrorMessage(c));
    }
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(c);
}

/* The admin DSN with its database replaced by name. */
static void
dsn_for(const char *name, char *out, size_t out_len)
{
    const char *admin = bp_testdb_pg_admin_dsn();
    const char *slash = strrchr(admin, '/');
    int n;

    assert_non_null(slash);
    n = snprintf(out, out_len, "%.*s/%s", (int)(slash - admin), admin, name);
    assert_true(n > 0 && (size_t)n < out_len);
}

static void
pg_create(struct bp_testdb *t, const char *tag)
{
    unsigned char rnd[8];
    char sql[160];
    size_t o;
    int n;

    n = snprintf(t->pg_name, sizeof(t->pg_name), "bp_t_");
    o = (size_t)n;
    for (const char *p = tag; *p != '\0' && o < 32; p++) {
        char c = *p;
        t->pg_name[o++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
    }
    assert_int_equal(bp_rand_bytes(rnd, sizeof(rnd)), BP_OK);
    for (size_t i = 0; i < sizeof(rnd); i++) {
        o += (size_t)snprintf(t->pg_name + o, sizeof(t->pg_name) - o, "%02x", rnd[i]);
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->pg_name);
    admin_exec(sql);
    dsn_for(t->pg_name, t->path, sizeof(t->path));
}

void
bp_testdb_init(struct bp_testdb *t, const char *tag)
{
    int n = snprintf(t->dir, sizeof(t->dir), "/tmp/bp_%s_XXXXXX", tag);

    assert_true(n > 0 && (size_t)n < sizeof(t->dir));
    assert_non_null(mkdtemp(t->dir));
    t->pg_name[0] = '\0';
    if (bp_testdb_is_pg()) {
        pg_create(t, tag);
        return;
    }
    n = snprintf(t->path, sizeof(t->path), "%s/test.db", t->dir);
    assert_true(n > 0 && (size_t)n < sizeof(t->path));
}

struct bp_store *
bp_testdb_open(const struct bp_testdb *t)
{
    struct bp_store *s = NULL;
    char err[512];
    bp_err rc = bp_store_open(t->path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err));

    if (rc != BP_OK) {
        fail_msg("bp_store_open: %s", err);
    }
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

    if (t->pg_name[0] != '\0') {
        char sql[160];
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", t->pg_name);
        admin_exec(sql);
        t->pg_name[0] = '\0';
        return rmdir(t->dir);
    }
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

PGconn *
bp_testdb_pg_connect(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);

    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("connect: %s", PQerrorMessage(c));
    }
    return c;
}

void
bp_testdb_pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
}

int64_t
bp_testdb_pg_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int64_t v;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    }
    v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

bp_err
bp_testdb_cut(void *ctx, const struct bp_audit_cut *cut, struct bp_audit_checkpoint *out)
{
    static int64_t n;
    char id[64];
    char body[256];

    (void)ctx;
    snprintf(id, sizeof(id), "ckpt_test_%lld_%lld", (long long)getpid(), (long long)++n);
    snprintf(body, sizeof(body), "%s %lld %s %lld", cut->chain, (long long)cut->upto_n, cut->head,
             (long long)cut->records);
    memset(out, 0, sizeof(*out));
    out->id = bp_strdup(id);
    out->kind = bp_strdup("purge");
    out->body = bp_strdup(body);
    out->time_us = n;
    return BP_OK;
}

void
bp_testdb_exec(const struct bp_testdb *t, const char *sql)
{
    if (t->pg_name[0] != '\0') {
        PGconn *c = bp_testdb_pg_connect(t->path);
        bp_testdb_pg_exec(c, sql);
        PQfinish(c);
    } else {
        sqlite3 *db = NULL;
        char *msg = NULL;
        if (sqlite3_open(t->path, &db) != SQLITE_OK) {
            fail_msg("sqlite3_open %s", t->path);
        }
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            fail_msg("%s: %s", sql, msg != NULL ? msg : "?");
        }
        sqlite3_close(db);
    }
}
