/* The spool: audit records that could not be committed, as JSON lines in a file, until the store
 * takes them back.
 *
 * One object per line with every field of struct bp_audit_rec but seq (the store assigns it on
 * import), the record's id included: importing a spool twice (a crash between the import's commit
 * and the truncation, or records spooled after a commit whose answer was lost) stores each record
 * once. Appends are fsynced before the writer reports the records durable; a crash can leave a
 * torn last line, which the reader skips and counts. The file is created 0600 next to the
 * database (it holds the same records the database would). Text that is not valid UTF-8 (JSON
 * cannot carry it) has its offending bytes replaced by '?'. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/audit-int.h"
#include "lib/alloc.h"
#include "lib/buf.h"
#include "store/store.h"

#define SPOOL_READ_MAX ((size_t)1 << 31)

static json_t *
str_or_null(const char *s)
{
    json_t *j;
    char *copy;

    if (s == NULL) {
        return json_null();
    }
    j = json_string(s);
    if (j != NULL) {
        return j;
    }
    copy = bp_strdup(s);
    for (char *p = copy; *p != '\0'; p++) {
        if ((unsigned char)*p >= 0x80) {
            *p = '?';
        }
    }
    j = json_string(copy);
    bp_free(copy);
    return j != NULL ? j : json_null();
}

static json_t *
rec_to_json(const struct bp_audit_rec *r)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", str_or_null(r->id));
    json_object_set_new(o, "node", str_or_null(r->node));
    json_object_set_new(o, "time_us", json_integer(r->time_us));
    json_object_set_new(o, "request_id", str_or_null(r->request_id));
    json_object_set_new(o, "actor_type", str_or_null(r->actor_type));
    json_object_set_new(o, "actor_id", str_or_null(r->actor_id));
    json_object_set_new(o, "actor_name", str_or_null(r->actor_name));
    json_object_set_new(o, "instance_id", str_or_null(r->instance_id));
    json_object_set_new(o, "method", str_or_null(r->method));
    json_object_set_new(o, "route", str_or_null(r->route));
    json_object_set_new(o, "path", str_or_null(r->path));
    json_object_set_new(o, "action", str_or_null(r->action));
    json_object_set_new(o, "category", str_or_null(r->category));
    json_object_set_new(o, "core_status", json_integer(r->core_status));
    json_object_set_new(o, "status", json_integer(r->status));
    json_object_set_new(o, "latency_us", json_integer(r->latency_us));
    json_object_set_new(o, "client_addr", str_or_null(r->client_addr));
    json_object_set_new(o, "resource_id", str_or_null(r->resource_id));
    json_object_set_new(o, "error", str_or_null(r->error));
    if (r->repeat_count > 1) {
        json_object_set_new(o, "repeat_count", json_integer(r->repeat_count));
        json_object_set_new(o, "last_time_us", json_integer(r->last_time_us));
    }
    if (r->replayed) {
        json_object_set_new(o, "replayed", json_true());
    }
    return o;
}

static bp_err
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return BP_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return BP_OK;
}

/* A new file's directory entry must reach the disk too, or the fsynced file may vanish. */
static void
sync_dir_of(const char *path)
{
    char *copy = bp_strdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    bp_free(copy);
}

static int
append_cb(const char *p, size_t n, void *arg)
{
    return bp_buf_append(arg, p, n) == BP_OK ? 0 : -1;
}

bp_err
bp_audit__spool_append(const char *path, const struct bp_audit_rec *recs, size_t n)
{
    struct bp_buf b;
    struct stat sb;
    bool existed = stat(path, &sb) == 0;
    bp_err rc = BP_OK;
    int fd;

    bp_buf_init(&b, SIZE_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *o = rec_to_json(&recs[i]);
        int drc = json_dump_callback(o, append_cb, &b, JSON_COMPACT);

        json_decref(o);
        if (drc != 0) {
            bp_buf_cleanup(&b);
            return BP_ERR_NOMEM;
        }
        bp_buf_append(&b, "\n", 1);
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        bp_buf_cleanup(&b);
        return BP_ERR_IO;
    }
    rc = write_all(fd, b.data, b.len);
    if (rc == BP_OK && fsync(fd) != 0) {
        rc = BP_ERR_IO;
    }
    close(fd);
    if (rc == BP_OK && !existed) {
        sync_dir_of(path);
    }
    bp_buf_cleanup(&b);
    return rc;
}

static char *
get_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? bp_strdup(s) : NULL;
}

static bool
json_to_rec(json_t *o, struct bp_audit_rec *r)
{
    memset(r, 0, sizeof(*r));
    if (!json_is_object(o) || !json_is_integer(json_object_get(o, "time_us"))) {
        return false;
    }
    r->time_us = json_integer_value(json_object_get(o, "time_us"));
    /* Spools written before issue 9 have neither: the import gives such a record a new id. */
    r->id = get_str(o, "id");
    r->node = get_str(o, "node");
    r->request_id = get_str(o, "request_id");
    r->actor_type = get_str(o, "actor_type");
    r->actor_id = get_str(o, "actor_id");
    r->actor_name = get_str(o, "actor_name");
    r->instance_id = get_str(o, "instance_id");
    r->method = get_str(o, "method");
    r->route = get_str(o, "route");
    r->path = get_str(o, "path");
    r->action = get_str(o, "action");
    r->category = get_str(o, "category");
    r->core_status = (int)json_integer_value(json_object_get(o, "core_status"));
    r->status = (int)json_integer_value(json_object_get(o, "status"));
    r->latency_us = json_integer_value(json_object_get(o, "latency_us"));
    r->client_addr = get_str(o, "client_addr");
    r->resource_id = get_str(o, "resource_id");
    r->error = get_str(o, "error");
    /* Absent in one request's record, and in spools written before aggregation. */
    r->repeat_count = json_integer_value(json_object_get(o, "repeat_count"));
    r->last_time_us = json_integer_value(json_object_get(o, "last_time_us"));
    r->replayed = json_is_true(json_object_get(o, "replayed"));
    return true;
}

static bp_err
read_file(const char *path, struct bp_buf *b, bool *out_missing)
{
    char chunk[65536];
    ssize_t r;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *out_missing = false;
    if (fd < 0) {
        *out_missing = errno == ENOENT;
        return *out_missing ? BP_OK : BP_ERR_IO;
    }
    while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 || bp_buf_append(b, chunk, (size_t)r) != BP_OK) {
            close(fd);
            return r < 0 ? BP_ERR_IO : BP_ERR_LIMIT;
        }
    }
    close(fd);
    return BP_OK;
}

bp_err
bp_audit__spool_read(const char *path, struct bp_audit_rec **out, size_t *out_n, size_t *out_skipped)
{
    struct bp_buf b;
    struct bp_audit_rec *recs = NULL;
    size_t n = 0;
    size_t cap = 0;
    size_t skipped = 0;
    bool missing;
    bp_err rc;

    bp_buf_init(&b, SPOOL_READ_MAX);
    rc = read_file(path, &b, &missing);
    if (rc != BP_OK) {
        bp_buf_cleanup(&b);
        return rc;
    }
    for (size_t off = 0; off < b.len;) {
        char *nl = memchr(b.data + off, '\n', b.len - off);
        size_t len = nl != NULL ? (size_t)(nl - (b.data + off)) : b.len - off;
        json_t *o = json_loadb(b.data + off, len, 0, NULL);

        if (n == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            recs = bp_realloc(recs, cap * sizeof(*recs));
        }
        if (o != NULL && json_to_rec(o, &recs[n])) {
            n++;
        } else if (len > 0) {
            skipped++;
        }
        json_decref(o);
        off += len + 1;
    }
    bp_buf_cleanup(&b);
    *out = recs;
    *out_n = n;
    *out_skipped = skipped;
    return BP_OK;
}

bp_err
bp_audit__spool_clear(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    bp_err rc = BP_OK;

    if (fd < 0) {
        return errno == ENOENT ? BP_OK : BP_ERR_IO;
    }
    if (ftruncate(fd, 0) != 0 || fsync(fd) != 0) {
        rc = BP_ERR_IO;
    }
    close(fd);
    return rc;
}
