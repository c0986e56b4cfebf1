#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "store/sqlite-int.h"

/* SQLite backend: one connection per struct bp_store, used by one thread at a time (so the
 * connection is opened without SQLite's own mutex). Every value reaches SQL through a bound
 * parameter; the only SQL text executed directly is our own constant migrations and pragmas. */

#define BUSY_TIMEOUT_MS 5000

struct sqlite_store *
bp_sq__of(struct bp_store *s)
{
    BP_DEBUG_ASSERT(s->ops == &bp_sq__ops);
    return (struct sqlite_store *)s;
}

bp_err
bp_sq__map_rc(struct sqlite_store *st, int rc)
{
    int ext;

    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
        return BP_OK;
    }
    ext = sqlite3_extended_errcode(st->db);
    snprintf(st->errmsg, sizeof(st->errmsg), "%s", sqlite3_errmsg(st->db));
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return BP_ERR_EXISTS;
    }
    if (rc == SQLITE_NOMEM) {
        return BP_ERR_NOMEM;
    }
    return BP_ERR_STORE;
}

bp_err
bp_sq__prepare(struct sqlite_store *st, const char *sql, sqlite3_stmt **out)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) {
        *out = NULL;
        return bp_sq__map_rc(st, rc);
    }
    return BP_OK;
}

bp_err
bp_sq__kept(struct sqlite_store *st, enum bp_sq_kept which, const char *sql, sqlite3_stmt **out)
{
    int rc;

    BP_BUG_ON(which >= BP_SQ_KEPT_N);
    if (st->kept[which] != NULL) {
        *out = st->kept[which];
        return BP_OK;
    }
    rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->kept[which], NULL);
    if (rc != SQLITE_OK) {
        st->kept[which] = NULL;
        *out = NULL;
        return bp_sq__map_rc(st, rc);
    }
    *out = st->kept[which];
    return BP_OK;
}

void
bp_sq__put_kept(sqlite3_stmt *stmt)
{
    if (stmt != NULL) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
}

bp_err
bp_sq__run_kept(struct sqlite_store *st, enum bp_sq_kept which, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__kept(st, which, sql, &stmt);

    if (err == BP_OK) {
        err = bp_sq__step_done(st, stmt, NULL);
    }
    bp_sq__put_kept(stmt);
    return err;
}

void
bp_sq__bind_text(sqlite3_stmt *stmt, int i, const char *text)
{
    if (text == NULL) {
        sqlite3_bind_null(stmt, i);
    } else {
        sqlite3_bind_text(stmt, i, text, -1, SQLITE_STATIC);
    }
}

/* Runs a statement that returns no rows; *out_changes (may be NULL) gets the rows it changed. */
bp_err
bp_sq__step_done(struct sqlite_store *st, sqlite3_stmt *stmt, int *out_changes)
{
    int rc = sqlite3_step(stmt);
    bp_err err = rc == SQLITE_DONE ? BP_OK : bp_sq__map_rc(st, rc);

    if (err == BP_OK && out_changes != NULL) {
        *out_changes = sqlite3_changes(st->db);
    }
    return err;
}

char *
bp_sq__col_dup(sqlite3_stmt *stmt, int i)
{
    const unsigned char *text;

    if (sqlite3_column_type(stmt, i) == SQLITE_NULL) {
        return NULL;
    }
    text = sqlite3_column_text(stmt, i);
    if (text == NULL) {
        return NULL;
    }
    return bp_strndup((const char *)text, (size_t)sqlite3_column_bytes(stmt, i));
}

bp_err
bp_sq__exec(struct sqlite_store *st, const char *sql)
{
    return bp_sq__map_rc(st, sqlite3_exec(st->db, sql, NULL, NULL, NULL));
}

/* ---- open / close ---- */

static bp_err
configure(struct sqlite_store *st)
{
    static const char *const pragmas[] = {
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
    };
    bp_err err = bp_sq__map_rc(st, sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS));

    for (size_t i = 0; err == BP_OK && i < BP_ARRAY_LEN(pragmas); i++) {
        err = bp_sq__exec(st, pragmas[i]);
    }
    return err;
}

static bp_err current_version(struct sqlite_store *st, int *out);

void
bp_sq__too_new(char *out, size_t out_len, const char *where, int version)
{
    snprintf(out, out_len,
             "the store at %s has schema version %d; this blnkproxy (%s) knows up to %zu: "
             "upgrade blnkproxy",
             where, version, BP_VERSION, bp_store__sqlite_migrations_len);
}

void
bp_sq__abs_path(const char *path, char *out, size_t out_len)
{
    char cwd[PATH_MAX];

    while (path[0] == '.' && path[1] == '/') {
        path += 2;
    }
    if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL) {
        snprintf(out, out_len, "%s", path);
        return;
    }
    snprintf(out, out_len, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
}

/* Reads, without writing anything, whether the open file is a store this binary may use: an
 * SQLite database with a schema_migrations table whose version it knows. allow_empty also
 * accepts a database with no schema at all (one being created). where names the file in err. */
static bp_err
check_store(struct sqlite_store *st, const char *where, bool allow_empty, char *err, size_t err_len)
{
    sqlite3_stmt *stmt = NULL;
    int64_t objects = 0;
    int64_t has_migrations = 0;
    int version = 0;
    int rc =
        sqlite3_prepare_v2(st->db,
                           "SELECT count(*), count(CASE WHEN type = 'table' AND name = 'schema_migrations' "
                           "THEN 1 END) FROM sqlite_master",
                           -1, &stmt, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
    }
    if (rc == SQLITE_ROW) {
        objects = sqlite3_column_int64(stmt, 0);
        has_migrations = sqlite3_column_int64(stmt, 1);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    if (rc == SQLITE_NOTADB) {
        snprintf(err, err_len,
                 "%s is not a blnkproxy store (not an SQLite database): check --db or BLNKPROXY_DB", where);
        return BP_ERR_STORE;
    }
    if (rc != SQLITE_OK) {
        snprintf(err, err_len, "cannot read the store at %s: %s", where, sqlite3_errmsg(st->db));
        return BP_ERR_STORE;
    }
    if (has_migrations == 0) {
        if (objects == 0 && allow_empty) {
            return BP_OK;
        }
        /* Someone else's database, or an empty file: migrating it would hide the mistake. */
        snprintf(
            err, err_len,
            "%s is not a blnkproxy store (it has no schema_migrations table): check --db or BLNKPROXY_DB",
            where);
        return BP_ERR_STORE;
    }
    if (current_version(st, &version) != BP_OK) {
        snprintf(err, err_len, "cannot read the schema version of the store at %s: %s", where, st->errmsg);
        return BP_ERR_STORE;
    }
    if (version > (int)bp_store__sqlite_migrations_len) {
        bp_sq__too_new(err, err_len, where, version);
        return BP_ERR_STORE;
    }
    return BP_OK;
}

/* Opens path into st, checks that it is a store this binary may use, then configures the
 * connection. On failure err says why, naming the file by where. */
static bp_err
open_checked(struct sqlite_store *st, const char *path, bool create, bool existed, const char *where,
             char *err, size_t err_len)
{
    int src = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX, NULL);
    bp_err rc;

    if (src != SQLITE_OK) {
        int sys = st->db != NULL ? sqlite3_system_errno(st->db) : 0;
        snprintf(err, err_len, "cannot %s the store at %s: %s", create && !existed ? "create" : "open", where,
                 sys != 0         ? strerror(sys)
                 : st->db != NULL ? sqlite3_errmsg(st->db)
                                  : sqlite3_errstr(src));
        return BP_ERR_STORE;
    }
    rc = bp_sq__map_rc(st, sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS));
    if (rc == BP_OK) {
        /* Before configure(): switching a file to WAL is already a write. */
        rc = check_store(st, where, create, err, err_len);
        if (rc != BP_OK) {
            return rc;
        }
        rc = configure(st);
    }
    if (rc != BP_OK) {
        snprintf(err, err_len, "cannot open the store at %s: %s", where, st->errmsg);
    }
    return rc;
}

bp_err
bp_store__sqlite_open(const char *path, unsigned flags, struct bp_store **out, char *err, size_t err_len)
{
    bool create = (flags & BP_STORE_OPEN_CREATE) != 0;
    struct sqlite_store *st = NULL;
    char where[PATH_MAX + 64];
    char resolved[PATH_MAX];
    struct stat sb;
    bool existed;
    mode_t old_mask;
    bp_err rc;

    bp_sq__abs_path(path, where, sizeof(where));
    existed = stat(path, &sb) == 0;
    if (!existed && !create && errno == ENOENT) {
        snprintf(err, err_len, "no blnkproxy store at %s (use --db or BLNKPROXY_DB)", where);
        return BP_ERR_NOT_FOUND;
    }
    st = bp_calloc(1, sizeof(*st));
    st->base.ops = &bp_sq__ops;
    /* The file holds Core secret keys: create it, and its -wal/-shm companions, private. */
    old_mask = umask(077);
    rc = open_checked(st, path, create, existed, where, err, err_len);
    umask(old_mask);
    if (rc != BP_OK) {
        goto fail;
    }
    if (!existed) {
        if (chmod(path, 0600) != 0) {
            snprintf(err, err_len, "cannot restrict permissions of %s: %s", where, strerror(errno));
            rc = BP_ERR_IO;
            goto fail;
        }
        st->base.created_path = bp_strdup(realpath(path, resolved) != NULL ? resolved : where);
    }
    *out = &st->base;
    return BP_OK;

fail:
    sqlite3_close_v2(st->db);
    bp_free(st);
    return rc;
}

static void
sq_close(struct bp_store *s)
{
    struct sqlite_store *st = bp_sq__of(s);
    for (size_t i = 0; i < BP_SQ_KEPT_N; i++) {
        sqlite3_finalize(st->kept[i]);
    }
    sqlite3_close_v2(st->db);
    bp_free(st);
}

static const char *
sq_last_error(struct bp_store *s)
{
    return bp_sq__of(s)->errmsg;
}

/* ---- migrations, ping, change token ---- */

static bp_err
current_version(struct sqlite_store *st, int *out)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &stmt);
    int rc;

    if (err != BP_OK) {
        return err;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(stmt, 0);
    } else {
        err = bp_sq__map_rc(st, rc);
    }
    sqlite3_finalize(stmt);
    return err;
}

/* Applies migration number version (1-based) unless another process got there first; the
 * IMMEDIATE transaction serialises concurrent migrators. */
static bp_err
apply_one(struct sqlite_store *st, int version, bool *out_applied)
{
    sqlite3_stmt *stmt = NULL;
    int have = 0;
    bp_err err = bp_sq__exec(st, "BEGIN IMMEDIATE");

    if (err != BP_OK) {
        return err;
    }
    *out_applied = false;
    err = current_version(st, &have);
    if (err != BP_OK || have >= version) {
        goto done;
    }
    err = bp_sq__exec(st, bp_store__sqlite_migrations[version - 1]);
    if (err == BP_OK && version == BP_STORE_TRAIL_VERSION) {
        err = bp_store__seal_legacy(&st->base);
    }
    if (err != BP_OK) {
        goto done;
    }
    err = bp_sq__prepare(st, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", &stmt);
    if (err != BP_OK) {
        goto done;
    }
    sqlite3_bind_int(stmt, 1, version);
    sqlite3_bind_int64(stmt, 2, bp_clock_wall_s());
    err = bp_sq__step_done(st, stmt, NULL);
    if (err == BP_OK) {
        *out_applied = true;
    }

done:
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        err = bp_sq__exec(st, "COMMIT");
    }
    if (err != BP_OK) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return err;
}

static bp_err
sq_migrate(struct bp_store *s, int *out_applied, int *out_version)
{
    struct sqlite_store *st = bp_sq__of(s);
    int applied = 0;
    int version = 0;
    bp_err err = bp_sq__exec(st, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                 "  version    INTEGER PRIMARY KEY NOT NULL,"
                                 "  applied_at INTEGER NOT NULL)");

    /* bp_store_open refused a newer schema, but a newer binary may have migrated the store since. */
    if (err == BP_OK) {
        err = current_version(st, &version);
    }
    if (err == BP_OK && version > (int)bp_store__sqlite_migrations_len) {
        bp_sq__too_new(st->errmsg, sizeof(st->errmsg), sqlite3_db_filename(st->db, "main"), version);
        return BP_ERR_STORE;
    }
    /* Only pending versions take the write lock: an up-to-date store (every CLI command migrates
     * on open) must not queue behind a busy writer for nothing. apply_one checks again under the
     * lock, since another process may migrate meanwhile. */
    for (size_t v = (size_t)version + 1; err == BP_OK && v <= bp_store__sqlite_migrations_len; v++) {
        bool did = false;
        err = apply_one(st, (int)v, &did);
        applied += did ? 1 : 0;
    }
    if (err == BP_OK) {
        err = current_version(st, &version);
    }
    if (err != BP_OK) {
        return err;
    }
    if (out_applied != NULL) {
        *out_applied = applied;
    }
    if (out_version != NULL) {
        *out_version = version;
    }
    return BP_OK;
}

static bp_err
sq_schema_version(struct bp_store *s, int *out)
{
    return current_version(bp_sq__of(s), out);
}

static bp_err
sq_ping(struct bp_store *s)
{
    return bp_sq__exec(bp_sq__of(s), "SELECT 1");
}

static bp_err
sq_change_token(struct bp_store *s, int64_t *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int64_t dv;
    int64_t tc;
    bp_err err = bp_sq__kept(st, BP_SQ_KEPT_DATA_VERSION, "PRAGMA data_version", &stmt);
    int rc;

    if (err != BP_OK) {
        return err;
    }
    rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        err = bp_sq__map_rc(st, rc);
        bp_sq__put_kept(stmt);
        return err;
    }
    dv = sqlite3_column_int64(stmt, 0);
    bp_sq__put_kept(stmt);
    tc = sqlite3_total_changes64(st->db);
    /* data_version is only promised to differ, not to grow, so fold both into our own counter. */
    if (dv != st->seen_data_version || tc != st->seen_total_changes) {
        st->seen_data_version = dv;
        st->seen_total_changes = tc;
        st->token++;
    }
    *out = st->token;
    return BP_OK;
}

/* ---- instances ---- */

#define INSTANCE_COLS "id, name, url, secret_key, ca_file, enabled, created_at, updated_at"

static void
read_instance(sqlite3_stmt *stmt, struct bp_instance_rec *out)
{
    memset(out, 0, sizeof(*out));
    out->id = bp_sq__col_dup(stmt, 0);
    out->name = bp_sq__col_dup(stmt, 1);
    out->url = bp_sq__col_dup(stmt, 2);
    if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) {
        const void *blob = sqlite3_column_blob(stmt, 3);
        size_t n = (size_t)sqlite3_column_bytes(stmt, 3);
        out->secret_key = bp_malloc(n + 1);
        if (n > 0) {
            memcpy(out->secret_key, blob, n);
        }
        out->secret_key[n] = '\0';
        out->secret_key_len = n;
    }
    out->ca_file = bp_sq__col_dup(stmt, 4);
    out->enabled = sqlite3_column_int(stmt, 5) != 0;
    out->created_at = sqlite3_column_int64(stmt, 6);
    out->updated_at = sqlite3_column_int64(stmt, 7);
}

static void
bind_secret(sqlite3_stmt *stmt, int i, const struct bp_instance_rec *rec)
{
    if (rec->secret_key == NULL) {
        sqlite3_bind_null(stmt, i);
    } else {
        sqlite3_bind_blob(stmt, i, rec->secret_key, (int)rec->secret_key_len, SQLITE_STATIC);
    }
}

/* Runs a one-row UPDATE or DELETE and finalizes it: BP_ERR_NOT_FOUND when no row matched. */
bp_err
bp_sq__finish_change(struct sqlite_store *st, sqlite3_stmt *stmt)
{
    int changes = 0;
    bp_err err = bp_sq__step_done(st, stmt, &changes);

    sqlite3_finalize(stmt);
    if (err == BP_OK && changes == 0) {
        err = BP_ERR_NOT_FOUND;
    }
    return err;
}

static bp_err
sq_instance_insert(struct bp_store *s, const struct bp_instance_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "INSERT INTO instances (" INSTANCE_COLS ") VALUES (?,?,?,?,?,?,?,?)", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->id);
    bp_sq__bind_text(stmt, 2, rec->name);
    bp_sq__bind_text(stmt, 3, rec->url);
    bind_secret(stmt, 4, rec);
    bp_sq__bind_text(stmt, 5, rec->ca_file);
    sqlite3_bind_int(stmt, 6, rec->enabled ? 1 : 0);
    sqlite3_bind_int64(stmt, 7, rec->created_at);
    sqlite3_bind_int64(stmt, 8, rec->updated_at);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_instance_update(struct bp_store *s, const struct bp_instance_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "UPDATE instances SET name = ?, url = ?, secret_key = ?, ca_file = ?,"
                                " enabled = ?, created_at = ?, updated_at = ? WHERE id = ?",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->name);
    bp_sq__bind_text(stmt, 2, rec->url);
    bind_secret(stmt, 3, rec);
    bp_sq__bind_text(stmt, 4, rec->ca_file);
    sqlite3_bind_int(stmt, 5, rec->enabled ? 1 : 0);
    sqlite3_bind_int64(stmt, 6, rec->created_at);
    sqlite3_bind_int64(stmt, 7, rec->updated_at);
    bp_sq__bind_text(stmt, 8, rec->id);
    return bp_sq__finish_change(st, stmt);
}

bp_err
bp_sq__row_exists(struct sqlite_store *st, const char *sql, const char *id)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, sql, &stmt);
    int rc;

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, id);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
        err = BP_ERR_NOT_FOUND;
    } else if (rc != SQLITE_ROW) {
        err = bp_sq__map_rc(st, rc);
    }
    sqlite3_finalize(stmt);
    return err;
}

bp_err
bp_sq__get_one(struct sqlite_store *st, sqlite3_stmt *stmt, void (*read)(sqlite3_stmt *, void *), void *out)
{
    int rc = sqlite3_step(stmt);
    bp_err err = BP_OK;

    if (rc == SQLITE_ROW) {
        read(stmt, out);
    } else if (rc == SQLITE_DONE) {
        err = BP_ERR_NOT_FOUND;
    } else {
        err = bp_sq__map_rc(st, rc);
    }
    sqlite3_finalize(stmt);
    return err;
}

bp_err
bp_sq__get_by_id(struct sqlite_store *st, const char *sql, const char *id,
                 void (*read)(sqlite3_stmt *, void *), void *out)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, sql, &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, id);
    return bp_sq__get_one(st, stmt, read, out);
}

static void
read_instance_v(sqlite3_stmt *stmt, void *out)
{
    read_instance(stmt, out);
}

static bp_err
sq_instance_get(struct bp_store *s, const char *id, struct bp_instance_rec *out)
{
    return bp_sq__get_by_id(bp_sq__of(s), "SELECT " INSTANCE_COLS " FROM instances WHERE id = ?", id,
                            read_instance_v, out);
}

static bp_err
sq_instance_delete(struct bp_store *s, const char *id)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "DELETE FROM instances WHERE id = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, id);
    return bp_sq__finish_change(st, stmt);
}

/* Collects every row of stmt into a growing array of elem_size records filled by read. */
bp_err
bp_sq__collect(struct sqlite_store *st, sqlite3_stmt *stmt, size_t elem_size,
               void (*read)(sqlite3_stmt *, void *), void (*free_all)(void *, size_t), void **out,
               size_t *out_n)
{
    char *arr = NULL;
    size_t n = 0;
    size_t cap = 0;
    int rc;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap == 0 ? 8 : cap * 2;
            arr = bp_realloc(arr, cap * elem_size);
        }
        read(stmt, arr + n * elem_size);
        n++;
    }
    if (rc != SQLITE_DONE) {
        free_all(arr, n);
        return bp_sq__map_rc(st, rc);
    }
    *out = arr;
    *out_n = n;
    return BP_OK;
}

static void
free_instances_v(void *recs, size_t n)
{
    bp_instance_recs_free(recs, n);
}

static bp_err
sq_instance_list(struct bp_store *s, struct bp_instance_rec **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT " INSTANCE_COLS " FROM instances ORDER BY created_at, id", &stmt);

    if (err != BP_OK) {
        return err;
    }
    err = bp_sq__collect(st, stmt, sizeof(struct bp_instance_rec), read_instance_v, free_instances_v, &recs,
                         out_n);
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

/* ---- API keys ---- */

#define KEY_COLS                                                                                             \
    "id, name, prefix, digest, scopes, instances, created_at, expires_at, last_used_at, revoked,"            \
    " revoked_at, allow_from, rate_limit, rate_burst"

static void
read_key(sqlite3_stmt *stmt, struct bp_key_rec *out)
{
    const void *digest = sqlite3_column_blob(stmt, 3);

    memset(out, 0, sizeof(*out));
    out->id = bp_sq__col_dup(stmt, 0);
    out->name = bp_sq__col_dup(stmt, 1);
    out->prefix = bp_sq__col_dup(stmt, 2);
    /* The schema's CHECK keeps this at 32 bytes; a short read leaves zeros, never a match. */
    if (digest != NULL && sqlite3_column_bytes(stmt, 3) == (int)sizeof(out->digest)) {
        memcpy(out->digest, digest, sizeof(out->digest));
    }
    out->scopes = bp_sq__col_dup(stmt, 4);
    out->instances = bp_sq__col_dup(stmt, 5);
    out->created_at = sqlite3_column_int64(stmt, 6);
    out->expires_at = sqlite3_column_int64(stmt, 7);
    out->last_used_at = sqlite3_column_int64(stmt, 8);
    out->revoked = sqlite3_column_int(stmt, 9) != 0;
    out->revoked_at = sqlite3_column_int64(stmt, 10);
    out->allow_from = bp_sq__col_dup(stmt, 11);
    out->rate_limit = bp_sq__col_dup(stmt, 12);
    out->rate_burst = sqlite3_column_int64(stmt, 13);
}

static bp_err
sq_key_insert(struct bp_store *s, const struct bp_key_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "INSERT INTO api_keys (" KEY_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->id);
    bp_sq__bind_text(stmt, 2, rec->name);
    bp_sq__bind_text(stmt, 3, rec->prefix);
    sqlite3_bind_blob(stmt, 4, rec->digest, (int)sizeof(rec->digest), SQLITE_STATIC);
    bp_sq__bind_text(stmt, 5, rec->scopes);
    bp_sq__bind_text(stmt, 6, rec->instances);
    sqlite3_bind_int64(stmt, 7, rec->created_at);
    sqlite3_bind_int64(stmt, 8, rec->expires_at);
    sqlite3_bind_int64(stmt, 9, rec->last_used_at);
    sqlite3_bind_int(stmt, 10, rec->revoked ? 1 : 0);
    sqlite3_bind_int64(stmt, 11, rec->revoked_at);
    bp_sq__bind_text(stmt, 12, rec->allow_from);
    bp_sq__bind_text(stmt, 13, rec->rate_limit);
    sqlite3_bind_int64(stmt, 14, rec->rate_burst);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static void
read_key_v(sqlite3_stmt *stmt, void *out)
{
    read_key(stmt, out);
}

static bp_err
sq_key_get(struct bp_store *s, const char *id, struct bp_key_rec *out)
{
    return bp_sq__get_by_id(bp_sq__of(s), "SELECT " KEY_COLS " FROM api_keys WHERE id = ?", id, read_key_v,
                            out);
}

static void
free_keys_v(void *recs, size_t n)
{
    bp_key_recs_free(recs, n);
}

/* The row in place: its strings are the statement's until the next step. */
static void
borrow_key(sqlite3_stmt *stmt, struct bp_key_rec *out)
{
    const void *digest = sqlite3_column_blob(stmt, 3);

    memset(out, 0, sizeof(*out));
    out->id = (char *)sqlite3_column_text(stmt, 0);
    out->name = (char *)sqlite3_column_text(stmt, 1);
    out->prefix = (char *)sqlite3_column_text(stmt, 2);
    if (digest != NULL && sqlite3_column_bytes(stmt, 3) == (int)sizeof(out->digest)) {
        memcpy(out->digest, digest, sizeof(out->digest));
    }
    out->scopes = (char *)sqlite3_column_text(stmt, 4);
    out->instances = (char *)sqlite3_column_text(stmt, 5);
    out->created_at = sqlite3_column_int64(stmt, 6);
    out->expires_at = sqlite3_column_int64(stmt, 7);
    out->last_used_at = sqlite3_column_int64(stmt, 8);
    out->revoked = sqlite3_column_int(stmt, 9) != 0;
    out->revoked_at = sqlite3_column_int64(stmt, 10);
    out->allow_from = (char *)sqlite3_column_text(stmt, 11);
    out->rate_limit = (char *)sqlite3_column_text(stmt, 12);
    out->rate_burst = sqlite3_column_int64(stmt, 13);
}

static bp_err
sq_key_each(struct bp_store *s, bp_err (*fn)(const struct bp_key_rec *k, void *arg), void *arg)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    struct bp_key_rec rec;
    bp_err err = bp_sq__prepare(st, "SELECT " KEY_COLS " FROM api_keys", &stmt);
    int rc;

    if (err != BP_OK) {
        return err;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        borrow_key(stmt, &rec);
        err = fn(&rec, arg);
        if (err != BP_OK) {
            break;
        }
    }
    if (err == BP_OK && rc != SQLITE_DONE) {
        err = bp_sq__map_rc(st, rc);
    }
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_key_list(struct bp_store *s, struct bp_key_rec **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    bp_err err = bp_sq__prepare(st, "SELECT " KEY_COLS " FROM api_keys ORDER BY created_at, id", &stmt);

    if (err != BP_OK) {
        return err;
    }
    err = bp_sq__collect(st, stmt, sizeof(struct bp_key_rec), read_key_v, free_keys_v, &recs, out_n);
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
sq_key_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    /* The first revocation time is the one on record. */
    bp_err err = bp_sq__prepare(
        st, "UPDATE api_keys SET revoked = 1, revoked_at = ? WHERE id = ? AND revoked = 0", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, now);
    bp_sq__bind_text(stmt, 2, id);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    if (err == BP_OK && changes == 0) {
        err = bp_sq__row_exists(st, "SELECT 1 FROM api_keys WHERE id = ?", id);
    }
    return err;
}

static bp_err
sq_key_set_expiry(struct bp_store *s, const char *id, int64_t expires_at)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "UPDATE api_keys SET expires_at = ? WHERE id = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, expires_at);
    bp_sq__bind_text(stmt, 2, id);
    return bp_sq__finish_change(st, stmt);
}

/* A credential's limits (issue 12): sql updates one of them by id (?3). */
static bp_err
set_limit(struct sqlite_store *st, const char *sql, const char *id, const char *text, const int64_t *burst)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, sql, &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, text);
    if (burst != NULL) {
        sqlite3_bind_int64(stmt, 2, *burst);
    }
    bp_sq__bind_text(stmt, 3, id);
    return bp_sq__finish_change(st, stmt);
}

bp_err
bp_sq__set_allow_from(struct sqlite_store *st, bool client, const char *id, const char *allow_from)
{
    return set_limit(st,
                     client ? "UPDATE oauth_clients SET allow_from = ?1 WHERE id = ?3"
                            : "UPDATE api_keys SET allow_from = ?1 WHERE id = ?3",
                     id, allow_from, NULL);
}

bp_err
bp_sq__set_rate(struct sqlite_store *st, bool client, const char *id, const char *rate_limit, int64_t burst)
{
    return set_limit(st,
                     client ? "UPDATE oauth_clients SET rate_limit = ?1, rate_burst = ?2 WHERE id = ?3"
                            : "UPDATE api_keys SET rate_limit = ?1, rate_burst = ?2 WHERE id = ?3",
                     id, rate_limit, &burst);
}

static bp_err
sq_key_set_allow_from(struct bp_store *s, const char *id, const char *allow_from)
{
    return bp_sq__set_allow_from(bp_sq__of(s), false, id, allow_from);
}

static bp_err
sq_key_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst)
{
    return bp_sq__set_rate(bp_sq__of(s), false, id, rate_limit, burst);
}

static bp_err
sq_key_link(struct bp_store *s, const char *old_id, const char *new_id)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "UPDATE api_keys SET replaced_by = ? WHERE id = ? AND replaced_by IS NULL AND revoked = 0", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, new_id);
    bp_sq__bind_text(stmt, 2, old_id);
    err = bp_sq__finish_change(st, stmt);
    if (err != BP_OK) {
        return err;
    }
    err = bp_sq__prepare(st, "UPDATE api_keys SET replaces = ? WHERE id = ?", &stmt);
    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, old_id);
    bp_sq__bind_text(stmt, 2, new_id);
    return bp_sq__finish_change(st, stmt);
}

struct key_links {
    char *replaces;
    char *replaced_by;
};

static void
read_links(sqlite3_stmt *stmt, void *out_v)
{
    struct key_links *out = out_v;

    out->replaces = bp_sq__col_dup(stmt, 0);
    out->replaced_by = bp_sq__col_dup(stmt, 1);
}

static bp_err
sq_key_links(struct bp_store *s, const char *id, char **out_replaces, char **out_replaced_by)
{
    struct key_links l = {0};
    bp_err err = bp_sq__get_by_id(bp_sq__of(s), "SELECT replaces, replaced_by FROM api_keys WHERE id = ?", id,
                                  read_links, &l);

    *out_replaces = l.replaces;
    *out_replaced_by = l.replaced_by;
    return err;
}

static bp_err
sq_key_touch(struct bp_store *s, const char *const *ids, const int64_t *at, size_t n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__exec(st, "BEGIN IMMEDIATE");

    if (err != BP_OK) {
        return err;
    }
    err = bp_sq__prepare(st, "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2 AND last_used_at < ?1",
                         &stmt);
    for (size_t i = 0; err == BP_OK && i < n; i++) {
        sqlite3_reset(stmt);
        sqlite3_bind_int64(stmt, 1, at[i]);
        bp_sq__bind_text(stmt, 2, ids[i]);
        err = bp_sq__step_done(st, stmt, NULL);
    }
    sqlite3_finalize(stmt);
    if (err == BP_OK) {
        err = bp_sq__exec(st, "COMMIT");
    }
    if (err != BP_OK) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return err;
}

static bp_err
sq_begin(struct bp_store *s)
{
    return bp_sq__exec(bp_sq__of(s), "BEGIN IMMEDIATE");
}

static bp_err
sq_commit(struct bp_store *s)
{
    return bp_sq__exec(bp_sq__of(s), "COMMIT");
}

static void
sq_rollback(struct bp_store *s)
{
    sqlite3_exec(bp_sq__of(s)->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- db copy's source (issue 9) ---- */

static bp_err
sq_count_rows(struct bp_store *s, const char *table, int64_t *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    char sql[96];
    bp_err err;

    /* table is one of store_copy.c's constant names, never input. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    err = bp_sq__prepare(st, sql, &stmt);
    if (err != BP_OK) {
        return err;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        *out = sqlite3_column_int64(stmt, 0);
    } else {
        err = bp_sq__map_rc(st, sqlite3_errcode(st->db));
    }
    sqlite3_finalize(stmt);
    return err;
}

/* A read transaction: in WAL mode every statement until the end sees the same commit, while
 * writers (a running serve) go on. */
static bp_err
sq_snapshot_begin(struct bp_store *s)
{
    return bp_sq__exec(bp_sq__of(s), "BEGIN DEFERRED");
}

static void
sq_snapshot_end(struct bp_store *s)
{
    (void)bp_sq__exec(bp_sq__of(s), "COMMIT");
}

const struct bp_store_ops bp_sq__ops = {
    .name = "sqlite",
    .close = sq_close,
    .last_error = sq_last_error,
    .migrate = sq_migrate,
    .schema_version = sq_schema_version,
    .backup = bp_sq__backup,
    .ping = sq_ping,
    .change_token = sq_change_token,
    .instance_insert = sq_instance_insert,
    .instance_update = sq_instance_update,
    .instance_get = sq_instance_get,
    .instance_delete = sq_instance_delete,
    .instance_list = sq_instance_list,
    .key_insert = sq_key_insert,
    .key_get = sq_key_get,
    .key_list = sq_key_list,
    .key_each = sq_key_each,
    .key_revoke = sq_key_revoke,
    .key_set_expiry = sq_key_set_expiry,
    .key_set_allow_from = sq_key_set_allow_from,
    .key_set_rate = sq_key_set_rate,
    .key_link = sq_key_link,
    .key_links = sq_key_links,
    .key_touch = sq_key_touch,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .oauth = &bp_sq__oauth_ops,
    .audit = &bp_sq__audit_ops,
    .change_seq = bp_sq__change_seq,
    .change_purge = bp_sq__change_purge,
    .changes_since = bp_sq__changes_since,
    .commit_files = bp_sq__commit_files,
    .watcher_put = bp_sq__watcher_put,
    .watcher_delete = bp_sq__watcher_delete,
    .watcher_list = bp_sq__watcher_list,
    .count_rows = sq_count_rows,
    .snapshot_begin = sq_snapshot_begin,
    .snapshot_end = sq_snapshot_end,
    .idem = &bp_sq__idem_ops,
    .trail = &bp_sq__trail_ops,
};
