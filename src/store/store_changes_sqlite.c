/* SQLite backend: the credential change log and the servers' reports on it (store.h "Noticing
 * changes").
 *
 * The `changes` table (migration 4) is filled by triggers, not by our C code, so every writer
 * logs its changes: this binary, an older or newer CLI, or someone's sqlite3 shell. seq is an
 * AUTOINCREMENT key and the purge always keeps the newest row, so MAX(seq) never goes back.
 * The `watchers` table has one row per running server; no trigger watches it. */
#include <string.h>

#include <sqlite3.h>

#include "lib/alloc.h"
#include "store/sqlite-int.h"

bp_err
bp_sq__change_seq(struct bp_store *s, int64_t *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__kept(st, BP_SQ_KEPT_CHANGE_SEQ, "SELECT COALESCE(MAX(seq), 0) FROM changes", &stmt);
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
    bp_sq__put_kept(stmt);
    return err;
}

bp_err
bp_sq__change_purge(struct bp_store *s, int64_t before)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "DELETE FROM changes"
                                " WHERE seq < (SELECT MAX(seq) FROM changes WHERE at < ?1)"
                                "   AND seq < (SELECT MAX(seq) FROM changes)",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, before);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static void
read_change(sqlite3_stmt *stmt, void *out)
{
    struct bp_change_row *row = out;

    row->rec.seq = sqlite3_column_int64(stmt, 0);
    row->rec.kind = bp_sq__col_dup(stmt, 1);
    row->rec.entity_id = bp_sq__col_dup(stmt, 2);
    row->first = sqlite3_column_int64(stmt, 3);
}

static void
free_change_rows_v(void *recs, size_t n)
{
    struct bp_change_row *rows = recs;

    for (size_t i = 0; i < n; i++) {
        bp_free(rows[i].rec.kind);
        bp_free(rows[i].rec.entity_id);
    }
    bp_free(rows);
}

bp_err
bp_sq__changes_since(struct bp_store *s, int64_t after, size_t limit, struct bp_change_rec **out, size_t *out_n,
                     int64_t *out_first)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    size_t n = 0;
    /* When no row is after `after`, nothing can be missing (the purge keeps the newest row), so
     * the first seq is only needed alongside rows: it rides on each of them. */
    bp_err err = bp_sq__prepare(st,
                                "SELECT seq, kind, entity_id, (SELECT MIN(seq) FROM changes)"
                                "  FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, after);
    sqlite3_bind_int64(stmt, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    err = bp_sq__collect(st, stmt, sizeof(struct bp_change_row), read_change, free_change_rows_v, &recs, &n);
    sqlite3_finalize(stmt);
    if (err != BP_OK) {
        return err;
    }
    *out = bp_change_rows_take(recs, n, out_first);
    *out_n = n;
    return BP_OK;
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

#define WATCHER_COLS "id, host, pid, seq, seen_at, node, version, started_at"

bp_err
bp_sq__watcher_put(struct bp_store *s, const struct bp_watcher_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "INSERT OR REPLACE INTO watchers (" WATCHER_COLS ") VALUES (?,?,?,?,?,?,?,?)", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->id);
    bp_sq__bind_text(stmt, 2, rec->host);
    sqlite3_bind_int64(stmt, 3, rec->pid);
    sqlite3_bind_int64(stmt, 4, rec->seq);
    sqlite3_bind_int64(stmt, 5, rec->seen_at);
    bp_sq__bind_text(stmt, 6, rec->node);
    bp_sq__bind_text(stmt, 7, rec->version);
    sqlite3_bind_int64(stmt, 8, rec->started_at);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

bp_err
bp_sq__watcher_delete(struct bp_store *s, const char *id)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "DELETE FROM watchers WHERE id = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, id);
    return bp_sq__finish_change(st, stmt);
}

static void
read_watcher(sqlite3_stmt *stmt, void *out)
{
    struct bp_watcher_rec *rec = out;

    memset(rec, 0, sizeof(*rec));
    rec->id = bp_sq__col_dup(stmt, 0);
    rec->host = bp_sq__col_dup(stmt, 1);
    rec->pid = sqlite3_column_int64(stmt, 2);
    rec->seq = sqlite3_column_int64(stmt, 3);
    rec->seen_at = sqlite3_column_int64(stmt, 4);
    rec->node = bp_sq__col_dup(stmt, 5);
    rec->version = bp_sq__col_dup(stmt, 6);
    rec->started_at = sqlite3_column_int64(stmt, 7);
}

static void
free_watchers_v(void *recs, size_t n)
{
    bp_watcher_recs_free(recs, n);
}

bp_err
bp_sq__watcher_list(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT " WATCHER_COLS " FROM watchers ORDER BY id", &stmt);

    if (err != BP_OK) {
        return err;
    }
    err =
        bp_sq__collect(st, stmt, sizeof(struct bp_watcher_rec), read_watcher, free_watchers_v, &recs, out_n);
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}
