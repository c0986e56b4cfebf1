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

/* Bytes a JSON string cannot hold as they are: controls, quote, backslash, DEL (a table: one
 * load per byte of every logged string). */
static const unsigned char escape_table[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1, [0x7f] = 1,
};

static bool
needs_escape(unsigned char c)
{
    return escape_table[c] != 0;
}

/* Escapes s[0..len) into out[0..cap) without a NUL; stops before an escape that would not fit
 * whole. Runs of plain bytes are copied at once: a log line is mostly plain text. */
static size_t
escape_into(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i = 0;

    while (i < len) {
        size_t run = i;
        while (run < len && !needs_escape((unsigned char)s[run])) {
            run++;
        }
        if (run > i) {
            size_t n = run - i;
            if (n > cap - o) {
                n = cap - o;
            }
            memcpy(out + o, s + i, n);
            o += n;
            if (n < run - i) {
                return o;
            }
            i = run;
            continue;
        }
        {
            unsigned char c = (unsigned char)s[i];
            char esc[6];
            size_t n = 0;
            esc[n++] = '\\';
            if (c == '"' || c == '\\') {
                esc[n++] = (char)c;
            } else {
                esc[n++] = 'u';
                esc[n++] = '0';
                esc[n++] = '0';
                esc[n++] = hex[c >> 4];
                esc[n++] = hex[c & 15];
            }
            if (n > cap - o) {
                return o;
            }
            memcpy(out + o, esc, n);
            o += n;
            i++;
        }
    }
    return o;
}

size_t
bp_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    size_t o;

    if (cap == 0) {
        return 0;
    }
    o = escape_into(out, cap - 1, s, len);
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

static size_t
room_of(const struct line *l)
{
    return sizeof(l->buf) - 2 - l->len; /* keep space for "}\n" */
}

static void
put_str(struct line *l, const char *s, size_t n)
{
    if (s == NULL) {
        put(l, "null", 4);
        return;
    }
    put(l, "\"", 1);
    /* Escaped straight into the line, leaving room for the closing quote. */
    l->len += escape_into(l->buf + l->len, room_of(l) > 0 ? room_of(l) - 1 : 0, s, n);
    put(l, "\"", 1);
}

/* Decimal digits of v into out (at least 20 bytes); returns how many. */
static size_t
fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

static size_t
fmt_i64(char *out, int64_t v)
{
    if (v < 0) {
        out[0] = '-';
        return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    return fmt_u64(out, (uint64_t)v);
}

/* "%.3f" for the usual case (durations in ms: finite, not negative, not huge) without printf. */
static size_t
fmt_ms(char *out, size_t cap, double d)
{
    uint64_t milli;
    size_t n;

    if (!(d >= 0 && d < 1e12)) {
        int w = snprintf(out, cap, "%.3f", d);
        return w > 0 ? (size_t)w : 0;
    }
    milli = (uint64_t)(d * 1000.0 + 0.5);
    n = fmt_u64(out, milli / 1000);
    out[n++] = '.';
    out[n++] = (char)('0' + milli / 100 % 10);
    out[n++] = (char)('0' + milli / 10 % 10);
    out[n++] = (char)('0' + milli % 10);
    return n;
}

/* "{\"time\":\"2026-11-23T10:00:00.123Z\"": the part up to the seconds is formatted once per
 * second per thread. */
static size_t
fmt_time(char *out, size_t cap)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[40];
    static _Thread_local size_t cached_len;
    struct timespec ts;
    long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        int w;
        gmtime_r(&ts.tv_sec, &tm);
        w = snprintf(cached, sizeof(cached), "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_len = w > 0 && (size_t)w < sizeof(cached) ? (size_t)w : 0;
        cached_sec = ts.tv_sec;
    }
    if (cached_len + 6 > cap) {
        return 0;
    }
    memcpy(out, cached, cached_len);
    ms = ts.tv_nsec / 1000000;
    out[cached_len] = (char)('0' + ms / 100);
    out[cached_len + 1] = (char)('0' + ms / 10 % 10);
    out[cached_len + 2] = (char)('0' + ms % 10);
    out[cached_len + 3] = 'Z';
    out[cached_len + 4] = '"';
    return cached_len + 5;
}

/* Keys are literals of the code (log.h), never request bytes: copied as they are, quoted, without
 * the escaping scan that values need. */
static void
put_key(struct line *l, const char *k)
{
    size_t n = strlen(k);

    if (n + 4 <= room_of(l)) {
        char *o = l->buf + l->len;
        o[0] = ',';
        o[1] = '"';
        memcpy(o + 2, k, n);
        o[n + 2] = '"';
        o[n + 3] = ':';
        l->len += n + 4;
        return;
    }
    put(l, ",", 1);
    put_str(l, k, n);
    put(l, ":", 1);
}

void
bp_log_write(enum bp_log_level lvl, const char *msg, const struct bp_log_field *fields, size_t n)
{
    struct line l = {.len = 0};
    char num[64];
    size_t w;

    w = fmt_time(num, sizeof(num));
    put(&l, num, w);
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
            w = fmt_i64(num, f->i);
            put(&l, num, w);
            break;
        case BP_LOGF_BOOL:
            put(&l, f->i ? "true" : "false", f->i ? 4 : 5);
            break;
        case BP_LOGF_DBL:
            w = fmt_ms(num, sizeof(num), f->d);
            put(&l, num, w);
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
