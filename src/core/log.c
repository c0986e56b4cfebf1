/* JSON-lines logger. Threads: any; each line is built in a stack buffer. A thread without a
 * buffer writes it with one write(2); a thread with one (bp_log_buffer_bind, the loop threads)
 * appends it to its buffer, which leaves in batches.
 *
 * Whole lines, always: a write(2) to a pipe of at most PIPE_BUF bytes is atomic, a larger one
 * may be split around another writer's data. So when stderr is a pipe or a socket, a batch goes
 * out in writes of at most PIPE_BUF bytes cut at line ends; to a regular file (a shared offset,
 * updated atomically per write) the whole batch goes in one write. */
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static atomic_int current_level = BP_LOG_INFO;
static _Thread_local struct bp_log_buffer *tls_buffer;
/* Largest write(2) a batch may use; decided once, from what stderr is. */
static size_t batch_write_max;
static pthread_once_t batch_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
bp_log_set_level(enum bp_log_level lvl)
{
    atomic_store(&current_level, (int)lvl);
}

bool
bp_log_enabled(enum bp_log_level lvl)
{
    return (int)lvl >= atomic_load_explicit(&current_level, memory_order_relaxed);
}

bool
bp_log_level_parse(const char *text, enum bp_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (enum bp_log_level)i;
            return true;
        }
    }
    return false;
}

size_t
bp_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (cap == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'u';
            esc[n++] = '0';
            esc[n++] = '0';
            esc[n++] = hex[c >> 4];
            esc[n++] = hex[c & 15];
        } else {
            esc[n++] = (char)c;
        }
        if (o + n >= cap) {
            break;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

_Static_assert(LINE_MAX_BYTES <= PIPE_BUF, "a log line must fit one atomic pipe write");

static void buffer_line(struct bp_log_buffer *b, enum bp_log_level lvl, const char *line, size_t len);

struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
};

static void
put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep space for "}\n" */
    if (n > room) {
        n = room;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void
put_str(struct line *l, const char *s, size_t n)
{
    char tmp[LINE_MAX_BYTES];
    size_t w;

    if (s == NULL) {
        put(l, "null", 4);
        return;
    }
    w = bp_json_escape(tmp, sizeof(tmp), s, n);
    put(l, "\"", 1);
    put(l, tmp, w);
    put(l, "\"", 1);
}

static void
put_key(struct line *l, const char *k)
{
    put(l, ",", 1);
    put_str(l, k, strlen(k));
    put(l, ":", 1);
}

void
bp_log_write(enum bp_log_level lvl, const char *msg, const struct bp_log_field *fields, size_t n)
{
    struct line l = {.len = 0};
    char num[64];
    struct timespec ts;
    struct tm tm;
    int w;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    w = snprintf(num, sizeof(num), "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000);
    put(&l, num, (size_t)w);
    put_key(&l, "level");
    put_str(&l, level_names[lvl], strlen(level_names[lvl]));
    put_key(&l, "msg");
    put_str(&l, msg, strlen(msg));
    for (size_t i = 0; i < n; i++) {
        const struct bp_log_field *f = &fields[i];
        put_key(&l, f->key);
        switch (f->type) {
        case BP_LOGF_STR:
            put_str(&l, f->s, f->s ? strlen(f->s) : 0);
            break;
        case BP_LOGF_STRN:
            put_str(&l, f->s, f->n);
            break;
        case BP_LOGF_INT:
            w = snprintf(num, sizeof(num), "%" PRId64, f->i);
            put(&l, num, (size_t)w);
            break;
        case BP_LOGF_BOOL:
            put(&l, f->i ? "true" : "false", f->i ? 4 : 5);
            break;
        case BP_LOGF_DBL:
            w = snprintf(num, sizeof(num), "%.3f", f->d);
            put(&l, num, (size_t)w);
            break;
        }
    }
    l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    if (tls_buffer != NULL) {
        buffer_line(tls_buffer, lvl, l.buf, l.len);
        return;
    }
    /* One write: partial writes to stderr are not retried, a log line is not worth blocking for. */
    ssize_t ignored = write(STDERR_FILENO, l.buf, l.len);
    (void)ignored;
}

static void
decide_batch_write_max(void)
{
    struct stat st;

    batch_write_max = PIPE_BUF;
    if (fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
        batch_write_max = BP_LOG_BUFFER_BYTES;
    }
}

/* Writes data[0..len) (whole lines) in writes of at most batch_write_max bytes, each ending at a
 * line end. A batch is worth finishing: a write interrupted by a signal, or a short one, goes on
 * with the rest; an error drops the rest, as an unbuffered line would be dropped. */
static void
write_lines(const char *data, size_t len)
{
    pthread_once(&batch_once, decide_batch_write_max);
    while (len > 0) {
        size_t n = len;
        ssize_t w;
        if (n > batch_write_max) {
            const char *nl = memrchr(data, '\n', batch_write_max);
            /* A line is at most LINE_MAX_BYTES <= PIPE_BUF, so a line end is always found. */
            n = nl != NULL ? (size_t)(nl - data) + 1 : batch_write_max;
        }
        w = write(STDERR_FILENO, data, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        data += w;
        len -= (size_t)w;
    }
}

static void
flush_buffer(struct bp_log_buffer *b)
{
    if (b->len > 0) {
        write_lines(b->data, b->len);
        b->len = 0;
    }
}

static void
buffer_line(struct bp_log_buffer *b, enum bp_log_level lvl, const char *line, size_t len)
{
    bool was_empty;

    if (b->len + len > sizeof(b->data)) {
        flush_buffer(b);
    }
    was_empty = b->len == 0;
    memcpy(b->data + b->len, line, len);
    b->len += len;
    if (lvl >= BP_LOG_WARN) {
        flush_buffer(b);
        return;
    }
    if (was_empty && b->on_first != NULL) {
        b->on_first(b->arg);
    }
}

void
bp_log_buffer_bind(struct bp_log_buffer *b)
{
    if (tls_buffer != NULL) {
        flush_buffer(tls_buffer);
    }
    tls_buffer = b;
}

void
bp_log_flush(void)
{
    if (tls_buffer != NULL) {
        flush_buffer(tls_buffer);
    }
}
