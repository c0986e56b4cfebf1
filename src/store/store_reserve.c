/* Room kept free next to a SQLite store, for when its disk fills (issue 11, item 1).
 *
 * On a full disk every write fails, a revocation included: the one change an operator must be
 * able to make then. So serve keeps BP_STORE_RESERVE_BYTES allocated in "<db>.reserve", and the
 * CLI, finding the disk (almost) full, deletes that file before it writes, so its change fits.
 * The audit writer, whose records filled the disk, does not take that room: while it cannot
 * write it retries only once twice the reserve is free (bp_store_has_room), which the operator's
 * clean-up brings, not the reserve. serve makes the reserve again once there is room for it.
 * A PostgreSQL store's disk is the database server's: none of this applies there. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store/store-int.h"

/* Free bytes on the filesystem of the SQLite file path; -1 when unknown. */
static int64_t
free_bytes(const char *path)
{
    char dir[PATH_MAX];
    struct statvfs v;

    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
        return -1;
    }
    if (statvfs(dirname(dir), &v) != 0) {
        return -1;
    }
    return (int64_t)v.f_bavail * (int64_t)v.f_frsize;
}

/* "<db>.reserve" of a SQLite file DSN (not ":memory:"); false otherwise. */
static bool
reserve_path(const char *dsn, char *out, size_t cap)
{
    const char *path = bp_store__sqlite_path(dsn);

    if (path == NULL || path[0] == '\0' || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0) {
        return false;
    }
    return snprintf(out, cap, "%s.reserve", path) < (int)cap;
}

bp_err
bp_store_reserve_keep(const char *dsn)
{
    char path[PATH_MAX];
    struct stat st;
    int fd;
    int rc;

    if (!reserve_path(dsn, path, sizeof(path))) {
        return BP_OK;
    }
    if (stat(path, &st) == 0 && st.st_size >= BP_STORE_RESERVE_BYTES) {
        return BP_OK;
    }
    if (free_bytes(path) < 2 * (int64_t)BP_STORE_RESERVE_BYTES) {
        return BP_ERR_LIMIT; /* not now: the room is needed more than the reserve */
    }
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return BP_ERR_IO;
    }
    /* Allocated, not a sparse hole: deleting it must free real blocks. */
    rc = posix_fallocate(fd, 0, BP_STORE_RESERVE_BYTES);
    if (rc == 0) {
        rc = fsync(fd) == 0 ? 0 : errno;
    }
    close(fd);
    if (rc != 0) {
        unlink(path);
        return BP_ERR_IO;
    }
    return BP_OK;
}

int64_t
bp_store_reserve_release(const char *dsn)
{
    char path[PATH_MAX];
    struct stat st;
    int64_t room;

    if (!reserve_path(dsn, path, sizeof(path)) || stat(path, &st) != 0) {
        return 0;
    }
    room = free_bytes(path);
    if (room < 0 || room >= BP_STORE_RESERVE_LOW) {
        return 0;
    }
    if (unlink(path) != 0) {
        return 0;
    }
    return (int64_t)st.st_size;
}

bool
bp_store_has_room(const char *dsn)
{
    const char *path = bp_store__sqlite_path(dsn);
    int64_t room;

    if (path == NULL || path[0] == '\0' || strcmp(path, ":memory:") == 0) {
        return true;
    }
    room = free_bytes(path);
    return room < 0 || room >= 2 * (int64_t)BP_STORE_RESERVE_BYTES;
}
