/* How a store is opened (created only when asked; a foreign or newer database refused) and copied
 * (bp_store_backup), issue 8 items 4 and 10. */

/* clang-format off: cmocka needs these four headers first, in this order */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "testdb.h"

/* Runs SQL on the file with a plain SQLite connection (not the store's), as another tool would. */
static void
raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int
raw_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int v;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    v = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return v;
}

static void
test_missing_store_not_created_without_the_flag(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    char err[512] = "";
    char want[512];
    struct stat sb;

    bp_testdb_init(&db, "open_missing");
    assert_int_equal(bp_store_open(db.path, 0, &s, err, sizeof(err)), BP_ERR_NOT_FOUND);
    assert_null(s);
    snprintf(want, sizeof(want), "no blnkproxy store at %s (use --db or BLNKPROXY_DB)", db.path);
    assert_string_equal(err, want);
    assert_int_equal(stat(db.path, &sb), -1);
    assert_int_equal(bp_testdb_cleanup(&db), 0); /* nothing else was left in the directory */
}

static void
test_create_reports_the_path_once(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    char err[512] = "";
    char real[PATH_MAX];

    bp_testdb_init(&db, "open_create");
    assert_int_equal(bp_store_open(db.path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)), BP_OK);
    assert_non_null(realpath(db.path, real));
    assert_non_null(bp_store_created_path(s));
    assert_string_equal(bp_store_created_path(s), real);
    assert_int_equal(bp_store_migrate(s, NULL, NULL), BP_OK);
    bp_store_close(s);

    /* It exists now: opened, not created, with or without the flag. */
    assert_int_equal(bp_store_open(db.path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)), BP_OK);
    assert_null(bp_store_created_path(s));
    bp_store_close(s);
    assert_int_equal(bp_store_open(db.path, 0, &s, err, sizeof(err)), BP_OK);
    assert_null(bp_store_created_path(s));
    bp_store_close(s);
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

static void
test_foreign_database_refused_and_untouched(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    char err[512] = "";
    char want[512];
    struct stat before;
    struct stat after;

    bp_testdb_init(&db, "open_foreign");
    raw_exec(db.path, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x')");
    assert_int_equal(stat(db.path, &before), 0);
    snprintf(want, sizeof(want),
             "%s is not a blnkproxy store (it has no schema_migrations table): check --db or BLNKPROXY_DB",
             db.path);
    for (unsigned flags = 0; flags <= BP_STORE_OPEN_CREATE; flags++) {
        err[0] = '\0';
        assert_int_equal(bp_store_open(db.path, flags, &s, err, sizeof(err)), BP_ERR_STORE);
        assert_string_equal(err, want);
    }
    assert_int_equal(stat(db.path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(after.st_mtime, before.st_mtime);
    assert_int_equal(raw_int(db.path, "SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'"),
                     0);
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

static void
test_empty_file_only_for_creators(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    char err[512] = "";
    FILE *f;

    bp_testdb_init(&db, "open_empty");
    f = fopen(db.path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(bp_store_open(db.path, 0, &s, err, sizeof(err)), BP_ERR_STORE);
    assert_non_null(strstr(err, "is not a blnkproxy store"));
    /* A creator may make a store of it; it did not create the file, so it says nothing. */
    assert_int_equal(bp_store_open(db.path, BP_STORE_OPEN_CREATE, &s, err, sizeof(err)), BP_OK);
    assert_null(bp_store_created_path(s));
    assert_int_equal(bp_store_migrate(s, NULL, NULL), BP_OK);
    bp_store_close(s);
    assert_int_equal(bp_store_open(db.path, 0, &s, err, sizeof(err)), BP_OK);
    bp_store_close(s);
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

static void
test_not_sqlite_refused(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    char err[512] = "";
    FILE *f;

    bp_testdb_init(&db, "open_text");
    f = fopen(db.path, "w");
    assert_non_null(f);
    for (int i = 0; i < 100; i++) {
        fputs("this is a text file, not a database\n", f);
    }
    fclose(f);
    for (unsigned flags = 0; flags <= BP_STORE_OPEN_CREATE; flags++) {
        assert_int_equal(bp_store_open(db.path, flags, &s, err, sizeof(err)), BP_ERR_STORE);
        assert_non_null(strstr(err, "is not a blnkproxy store (not an SQLite database)"));
    }
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

static void
test_newer_schema_refused_by_open_and_migrate(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    struct bp_store *early = NULL;
    char err[512] = "";
    int version = 0;

    bp_testdb_init(&db, "open_newer");
    s = bp_testdb_open(&db);
    assert_int_equal(bp_store_schema_version(s, &version), BP_OK);
    assert_true(version >= 3);
    bp_store_close(s);
    /* A connection opened before a newer binary migrated the store. */
    assert_int_equal(bp_store_open(db.path, 0, &early, err, sizeof(err)), BP_OK);
    raw_exec(db.path, "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)");

    for (unsigned flags = 0; flags <= BP_STORE_OPEN_CREATE; flags++) {
        char want[512];
        err[0] = '\0';
        assert_int_equal(bp_store_open(db.path, flags, &s, err, sizeof(err)), BP_ERR_STORE);
        snprintf(
            want, sizeof(want),
            "the store at %s has schema version 99; this blnkproxy (%s) knows up to %d: upgrade blnkproxy",
            db.path, BP_VERSION, version);
        assert_string_equal(err, want);
    }
    assert_int_equal(bp_store_migrate(early, NULL, NULL), BP_ERR_STORE);
    assert_non_null(strstr(bp_store_last_error(early), "has schema version 99"));
    bp_store_close(early);
    assert_int_equal(raw_int(db.path, "SELECT max(version) FROM schema_migrations"), 99);
    assert_int_equal(bp_testdb_cleanup(&db), 0);
}

static void
test_backup(void **state)
{
    struct bp_testdb db;
    struct bp_store *s = NULL;
    struct bp_store *copy = NULL;
    struct bp_store_backup_info info = {0};
    struct bp_instance_rec rec = {
        .id = (char *)"instance_A",
        .name = (char *)"prod",
        .url = (char *)"http://127.0.0.1:5001",
        .enabled = true,
        .created_at = 1,
        .updated_at = 1,
    };
    struct bp_instance_rec got = {0};
    char dest[sizeof(db.path) + 32];
    char other[sizeof(db.path) + 32];
    char wal[sizeof(db.path) + 32];
    char err[512];
    struct stat sb;
    int version = 0;

    bp_testdb_init(&db, "backup");
    s = bp_testdb_open(&db);
    assert_int_equal(bp_store_schema_version(s, &version), BP_OK);
    assert_int_equal(bp_store_instance_insert(s, &rec), BP_OK);
    snprintf(dest, sizeof(dest), "%s/copy.db", db.dir);

    assert_int_equal(bp_store_backup(s, dest, 0, &info), BP_OK);
    assert_int_equal(stat(dest, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(info.bytes, sb.st_size);
    assert_int_equal(info.schema_version, version);
    assert_int_equal(raw_int(dest, "SELECT count(*) FROM instances"), 1);

    /* The copy opens as a store. */
    assert_int_equal(bp_store_open(dest, 0, &copy, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_instance_get(copy, "instance_A", &got), BP_OK);
    assert_string_equal(got.name, "prod");
    bp_instance_rec_cleanup(&got);
    bp_store_close(copy);

    /* Kept unless replacing. */
    rec.id = (char *)"instance_B";
    rec.name = (char *)"staging";
    assert_int_equal(bp_store_instance_insert(s, &rec), BP_OK);
    assert_int_equal(bp_store_backup(s, dest, 0, &info), BP_ERR_EXISTS);
    assert_non_null(strstr(bp_store_last_error(s), "already exists"));
    assert_int_equal(raw_int(dest, "SELECT count(*) FROM instances"), 1);
    assert_int_equal(bp_store_backup(s, dest, BP_STORE_BACKUP_REPLACE, &info), BP_OK);
    assert_int_equal(raw_int(dest, "SELECT count(*) FROM instances"), 2);

    /* Never onto the store or its companions, even when replacing. */
    snprintf(wal, sizeof(wal), "%s-wal", db.path);
    assert_int_equal(bp_store_backup(s, db.path, BP_STORE_BACKUP_REPLACE, &info), BP_ERR_INVALID);
    assert_int_equal(bp_store_backup(s, wal, BP_STORE_BACKUP_REPLACE, &info), BP_ERR_INVALID);
    assert_non_null(strstr(bp_store_last_error(s), "is the store itself or one of its files"));
    assert_int_equal(bp_store_ping(s), BP_OK);

    snprintf(other, sizeof(other), "%s/missing/copy.db", db.dir);
    assert_int_equal(bp_store_backup(s, other, 0, &info), BP_ERR_IO);

    bp_store_close(s);
    assert_int_equal(unlink(dest), 0);
    assert_int_equal(bp_testdb_cleanup(&db), 0); /* no partial file was left behind */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_store_not_created_without_the_flag),
        cmocka_unit_test(test_create_reports_the_path_once),
        cmocka_unit_test(test_foreign_database_refused_and_untouched),
        cmocka_unit_test(test_empty_file_only_for_creators),
        cmocka_unit_test(test_not_sqlite_refused),
        cmocka_unit_test(test_newer_schema_refused_by_open_and_migrate),
        cmocka_unit_test(test_backup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
