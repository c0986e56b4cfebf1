#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "lib/bug.h"
#include "store/sqlite-int.h"

/* bp_store_backup for SQLite: a consistent copy of a live store (issue 8).
 *
 * Why not `cp`: in WAL mode a commit first lands in the -wal file and reaches the main file only
 * at a checkpoint, so a copy of the main file alone misses recent transactions (a copy taken
 * under load lost 169 of 291 audit rows), and copying the main file and the -wal one after the
 * other can pair pages from two different moments.
 *
 * How: the online backup API copies every page from the source connection to a fresh file in one
 * step, which runs inside one read transaction: the copy is the store as of that transaction's
 * start. In WAL mode a reader does not block writers, so the proxy keeps committing meanwhile
 * (its commits wait in the WAL until the copy is done). One step rather than several: between
 * steps, a commit by another process makes SQLite restart the copy from the first page, which
 * under steady writes may never finish.
 *
 * The copy is written to "<FILE>.partial-XXXXXX" beside FILE (mkstemp: created 0600, never an
 * existing file), switched to a single-file (rollback journal) database, checked, synced, then
 * renamed (with --force) or hard-linked (never replacing) onto FILE; so FILE is either absent,
 * the old file, or a complete, checked copy. */

#define BACKUP_BUSY_RETRIES 250
#define BACKUP_BUSY_SLEEP_MS 20

static const char *const companions[] = {"", "-wal", "-shm", "-journal"};

/* The canonical name of path, which need not exist: its directory resolved (symbolic links,
 * "." and "..") plus its last component. false (errno set) when the directory cannot be resolved
 * or path names no file. */
static bool
canonical(const char *path, char *out, size_t out_len)
{
    char dir[PATH_MAX];
    char real[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    int n;

    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        errno = EISDIR;
        return false;
    }
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    if (realpath(dir, real) == NULL) {
        return false;
    }
    n = snprintf(out, out_len, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", base);
    if (n < 0 || (size_t)n >= out_len) {
        errno = ENAMETOOLONG;
        return false;
    }
    return true;
}

/* Whether dest (canonical) is the store's own file or one of its companions, by name or (for a
 * link to one) by identity. Replacing one of them would destroy the store being copied. */
static bool
is_store_file(struct sqlite_store *st, const char *dest)
{
    const char *db = sqlite3_db_filename(st->db, "main");
    char store[PATH_MAX + 64];
    char name[PATH_MAX + 80];
    struct stat a;
    struct stat b;

    if (db == NULL || db[0] == '\0' || !canonical(db, store, sizeof(store))) {
        return false;
    }
    for (size_t i = 0; i < BP_ARRAY_LEN(companions); i++) {
        snprintf(name, sizeof(name), "%s%s", store, companions[i]);
        if (strcmp(name, dest) == 0) {
            return true;
        }
        if (stat(name, &a) == 0 && stat(dest, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            return true;
        }
    }
    return false;
}

/* Copies every page of the source into dst, as of one read transaction. */
static bp_err
copy_pages(struct sqlite_store *st, sqlite3 *dst)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", st->db, "main");
    int rc;

    if (b == NULL) {
        snprintf(st->errmsg, sizeof(st->errmsg), "cannot start the copy: %s", sqlite3_errmsg(dst));
        return BP_ERR_STORE;
    }
    for (int tries = 0;; tries++) {
        rc = sqlite3_backup_step(b, -1);
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= BACKUP_BUSY_RETRIES) {
            break;
        }
        sqlite3_sleep(BACKUP_BUSY_SLEEP_MS);
    }
    /* finish reports I/O and memory errors of the steps, not BUSY/LOCKED: keep the step's code. */
    if (sqlite3_backup_finish(b) != SQLITE_OK && rc == SQLITE_DONE) {
        rc = sqlite3_errcode(dst);
    }
    if (rc != SQLITE_DONE) {
        snprintf(st->errmsg, sizeof(st->errmsg), "copy failed: %s", sqlite3_errstr(rc));
        return rc == SQLITE_NOMEM ? BP_ERR_NOMEM : BP_ERR_STORE;
    }
    return BP_OK;
}

/* Runs a one-row query on the copy: its first column as text (truncated to text_len) and as an
 * integer (either output may be NULL). */
static bool
query_one(sqlite3 *db, const char *sql, char *text, size_t text_len, int *out_int)
{
    sqlite3_stmt *stmt = NULL;
    bool ok = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW;

    if (ok && text != NULL) {
        const unsigned char *v = sqlite3_column_text(stmt, 0);
        snprintf(text, text_len, "%s", v != NULL ? (const char *)v : "");
    }
    if (ok && out_int != NULL) {
        *out_int = sqlite3_column_int(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return ok;
}

/* Makes the copy one self-contained file and checks it: a quick_check that answers "ok" and a
 * schema version, into *out_version. */
static bp_err
finish_copy(struct sqlite_store *st, sqlite3 *dst, int *out_version)
{
    char text[256] = "";

    /* The pages came from a WAL database, whose header says WAL: a backup file is easier to
     * handle (copy, inspect, restore) without -wal and -shm files appearing beside it. */
    if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(st->errmsg, sizeof(st->errmsg), "cannot finish the copy: %s", sqlite3_errmsg(dst));
        return BP_ERR_STORE;
    }
    if (!query_one(dst, "PRAGMA quick_check", text, sizeof(text), NULL) || strcmp(text, "ok") != 0) {
        snprintf(st->errmsg, sizeof(st->errmsg), "the copy failed its check: %s",
                 text[0] != '\0' ? text : sqlite3_errmsg(dst));
        return BP_ERR_STORE;
    }
    if (!query_one(dst, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, 0, out_version)) {
        snprintf(st->errmsg, sizeof(st->errmsg), "cannot read the copy's schema version: %s",
                 sqlite3_errmsg(dst));
        return BP_ERR_STORE;
    }
    return BP_OK;
}

static bp_err
io_fail(struct sqlite_store *st, const char *what, const char *path)
{
    snprintf(st->errmsg, sizeof(st->errmsg), "cannot %s %s: %s", what, path, strerror(errno));
    return BP_ERR_IO;
}

/* fsync of a file or directory by name. */
static bool
sync_path(const char *path, bool dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    bool ok;

    if (fd < 0) {
        return false;
    }
    ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* Moves the finished copy tmp onto dest: rename when replacing, else a link that fails on an
 * existing dest (no window in which a file created meanwhile is overwritten). */
static bp_err
publish(struct sqlite_store *st, const char *tmp, const char *dest, bool replace)
{
    char dir[PATH_MAX + 64];
    char *slash;

    if (replace) {
        if (rename(tmp, dest) != 0) {
            return io_fail(st, "write", dest);
        }
    } else {
        if (link(tmp, dest) != 0) {
            if (errno == EEXIST) {
                snprintf(st->errmsg, sizeof(st->errmsg), "%s already exists", dest);
                return BP_ERR_EXISTS;
            }
            return io_fail(st, "write", dest);
        }
        unlink(tmp);
    }
    snprintf(dir, sizeof(dir), "%s", dest);
    slash = strrchr(dir, '/');
    if (slash != NULL) {
        slash[slash == dir ? 1 : 0] = '\0';
        if (!sync_path(dir, true)) {
            return io_fail(st, "sync the directory of", dest);
        }
    }
    return BP_OK;
}

static void
remove_partial(const char *tmp)
{
    char journal[PATH_MAX + 96];

    unlink(tmp);
    snprintf(journal, sizeof(journal), "%s-journal", tmp);
    unlink(journal);
}

bp_err
bp_sq__backup(struct bp_store *s, const char *path, unsigned flags, struct bp_store_backup_info *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    bool replace = (flags & BP_STORE_BACKUP_REPLACE) != 0;
    char dest[PATH_MAX + 64];
    char tmp[PATH_MAX + 80];
    sqlite3 *dst = NULL;
    bool have_tmp = false;
    struct stat sb;
    int version = 0;
    int fd;
    bp_err rc;

    if (!canonical(path, dest, sizeof(dest))) {
        return io_fail(st, "write", path);
    }
    if (is_store_file(st, dest)) {
        snprintf(st->errmsg, sizeof(st->errmsg), "%s is the store itself or one of its files", dest);
        return BP_ERR_INVALID;
    }
    if (!replace && lstat(dest, &sb) == 0) {
        snprintf(st->errmsg, sizeof(st->errmsg), "%s already exists", dest);
        return BP_ERR_EXISTS;
    }
    snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", dest);
    fd = mkstemp(tmp);
    if (fd < 0) {
        return io_fail(st, "write", dest);
    }
    close(fd);
    have_tmp = true;
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(st->errmsg, sizeof(st->errmsg), "cannot write %s: %s", dest,
                 dst != NULL ? sqlite3_errmsg(dst) : "out of memory");
        rc = BP_ERR_IO;
        goto done;
    }
    rc = copy_pages(st, dst);
    if (rc == BP_OK) {
        rc = finish_copy(st, dst, &version);
    }
    /* Every statement is finalized and the copy's last commit synced: closing cannot fail. */
    sqlite3_close_v2(dst);
    dst = NULL;
    if (rc != BP_OK) {
        goto done;
    }
    if (!sync_path(tmp, false) || stat(tmp, &sb) != 0) {
        rc = io_fail(st, "write", dest);
        goto done;
    }
    rc = publish(st, tmp, dest, replace);
    if (rc == BP_OK) {
        have_tmp = false;
        out->bytes = (int64_t)sb.st_size;
        out->schema_version = version;
    }

done:
    sqlite3_close_v2(dst);
    if (have_tmp) {
        remove_partial(tmp);
    }
    return rc;
}
