/* SQLite backend: the credential change log (store.h "Noticing changes").
 *
 * The `changes` table (migration 4) is filled by triggers, not by our C code, so every writer
 * logs its changes: this binary, an older or newer CLI, or someone's sqlite3 shell. seq is an
 * AUTOINCREMENT key and the purge always keeps the newest row, so MAX(seq) never goes back. */
#include <string.h>

#include <sqlite3.h>

#include "store/sqlite-int.h"

bp_err
bp_sq__change_seq(struct bp_store *s, int64_t *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT COALESCE(MAX(seq), 0) FROM changes", &stmt);
    int rc;

    if (err != BP_OK) {
        return err;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(stmt, 0);
    } else {
        err = bp_sq__map_rc(st, rc);
    }
    sqlite3_finalize(stmt);
    return err;
}

bp_err
bp_sq__change_purge(struct bp_store *s, int64_t before)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "DELETE FROM changes WHERE at < ?1"
                                " AND seq < (SELECT MAX(seq) FROM changes)",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, before);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

size_t
bp_sq__commit_files(struct bp_store *s, const char **out, size_t max)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_filename db = sqlite3_db_filename(st->db, "main");
    size_t n = 0;

    /* A temporary or in-memory database has no file name ("" or NULL): nothing to watch. */
    if (db == NULL || db[0] == '\0') {
        return 0;
    }
    if (n < max) {
        out[n++] = db;
    }
    if (n < max) {
        out[n++] = sqlite3_filename_wal(db);
    }
    return n;
}
