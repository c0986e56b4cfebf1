/* Last-used stamps (auth.h): the row's stamp, and the log of uses the watcher writes out.
 *
 * The watcher used to find the uses by walking every credential once a second: at a million
 * keys that was 40-60 ms of CPU a second on an idle node, growing with the table. A use is now
 * noted where it happens, once per key per second (the row's stamp says whether this second is
 * noted already), so the cost follows the traffic, not the number of keys. The stamp is written
 * only when it moves: a store on every request would bounce the row's cache line between the
 * loop threads.
 *
 * One lock for all loop threads: it is taken only when a key's stamp moves to a new second, a few
 * thousand times a second at most under any real load, and held for one append. */
#include "auth/auth.h"

#include <pthread.h>
#include <string.h>

#include "lib/buf.h"

/* Past this many bytes of notes (about 170,000 uses at 48 bytes each) further uses are left out
 * of the log and the flush walks the tables instead: the log is bounded, no use is lost. */
#define USED_LOG_MAX (8u << 20)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* The first log covers every use since start: its `since` is the epoch's first second. */
static struct bp_used_log log_now = {.notes = {.max = USED_LOG_MAX}, .since = 1};

void
bp_auth_note_use(const struct bp_cred *c, int64_t now_s)
{
    unsigned stamp = (unsigned)now_s;
    const char *id;
    size_t id_len;
    char *p;

    if (atomic_load_explicit(&c->used_at, memory_order_relaxed) == stamp) {
        return; /* noted this second already */
    }
    atomic_store_explicit(&((struct bp_cred *)c)->used_at, stamp, memory_order_relaxed);
    if (c->kind != BP_CRED_API_KEY) {
        return; /* access tokens keep no last-used time in the store */
    }
    id = bp_cred_id(c);
    id_len = strlen(id) + 1;
    pthread_mutex_lock(&lock);
    if (bp_buf_reserve(&log_now.notes, sizeof(now_s) + id_len, &p) == BP_OK) {
        memcpy(p, &now_s, sizeof(now_s));
        memcpy(p + sizeof(now_s), id, id_len);
        bp_buf_commit(&log_now.notes, sizeof(now_s) + id_len);
    } else {
        log_now.overflowed = true;
    }
    pthread_mutex_unlock(&lock);
}

void
bp_auth_take_used(struct bp_used_log *out, int64_t now_s)
{
    pthread_mutex_lock(&lock);
    *out = log_now;
    memset(&log_now, 0, sizeof(log_now));
    bp_buf_init(&log_now.notes, USED_LOG_MAX);
    log_now.since = now_s;
    pthread_mutex_unlock(&lock);
}

bool
bp_used_log_next(const struct bp_used_log *log, size_t *pos, const char **out_id, int64_t *out_at)
{
    const char *p;

    if (*pos >= log->notes.len) {
        return false;
    }
    p = log->notes.data + *pos;
    memcpy(out_at, p, sizeof(*out_at));
    *out_id = p + sizeof(*out_at);
    *pos += sizeof(*out_at) + strlen(*out_id) + 1;
    return true;
}

void
bp_used_log_cleanup(struct bp_used_log *log)
{
    bp_buf_cleanup(&log->notes);
    memset(log, 0, sizeof(*log));
}
