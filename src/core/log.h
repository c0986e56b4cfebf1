#ifndef BP_CORE_LOG_H
#define BP_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* JSON-lines logger on stderr. Fields are typed key/value pairs, never printf text, so request
 * data cannot smuggle formatting, and struct bp_secret has no field type: secrets cannot be logged. */

enum bp_log_level { BP_LOG_DEBUG = 0, BP_LOG_INFO, BP_LOG_WARN, BP_LOG_ERROR };

enum bp_log_type { BP_LOGF_STR, BP_LOGF_STRN, BP_LOGF_INT, BP_LOGF_BOOL, BP_LOGF_DBL };

struct bp_log_field {
    const char *key; /* a literal of plain characters (no '"', '\\' or controls): written unescaped */
    enum bp_log_type type;
    const char *s;
    size_t n;
    int64_t i;
    double d;
};

#define BP_LSTR(k, v) ((struct bp_log_field){.key = (k), .type = BP_LOGF_STR, .s = (v)})
#define BP_LSTRN(k, v, len) ((struct bp_log_field){.key = (k), .type = BP_LOGF_STRN, .s = (v), .n = (len)})
#define BP_LINT(k, v) ((struct bp_log_field){.key = (k), .type = BP_LOGF_INT, .i = (int64_t)(v)})
#define BP_LBOOL(k, v) ((struct bp_log_field){.key = (k), .type = BP_LOGF_BOOL, .i = (v) ? 1 : 0})
#define BP_LDBL(k, v) ((struct bp_log_field){.key = (k), .type = BP_LOGF_DBL, .d = (double)(v)})

void bp_log_set_level(enum bp_log_level lvl);
bool bp_log_enabled(enum bp_log_level lvl);
/* Parses "debug", "info", "warn", "error". Returns false on anything else. */
bool bp_log_level_parse(const char *text, enum bp_log_level *out);

/* Writes one line {"time":…,"level":…,"msg":…,<fields>}. NULL string fields are written as
 * null. A thread without a buffer (below) writes each line with its own write(2); a thread with
 * one appends it there. Either way a line reaches stderr whole: no write(2) carries part of a
 * line, so lines from different threads never interleave. */
void bp_log_write(enum bp_log_level lvl, const char *msg, const struct bp_log_field *fields, size_t n);

/* Batched lines for a busy thread (a loop thread writes an access line per request): its lines
 * collect in a bounded buffer and leave in few write(2) calls, in the order they were logged.
 * The buffer is written when the next line would not fit, when the thread calls bp_log_flush,
 * and at once after a warn or error line (so that trouble is never held back). on_first (may be
 * NULL) is called on the thread when a line enters an empty buffer, so that its owner can arm a
 * short timer that calls bp_log_flush: a quiet thread's lines wait no longer than that timer. */
#define BP_LOG_BUFFER_BYTES 32768
struct bp_log_buffer {
    char data[BP_LOG_BUFFER_BYTES];
    size_t len;
    void (*on_first)(void *arg);
    void *arg;
};
/* Makes b (zero-initialised apart from on_first/arg) the calling thread's buffer; NULL writes
 * what is buffered and goes back to a write(2) per line. b must stay alive while bound. */
void bp_log_buffer_bind(struct bp_log_buffer *b);
/* Writes the calling thread's buffered lines now. A no-op without a buffer. */
void bp_log_flush(void);

#define BP_LOG(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if (bp_log_enabled(lvl)) {                                                                 \
            const struct bp_log_field bp_log_f_[] = {BP_LSTR(NULL, NULL), ##__VA_ARGS__};          \
            bp_log_write((lvl), (msg), bp_log_f_ + 1, sizeof(bp_log_f_) / sizeof(bp_log_f_[0]) - 1); \
        }                                                                                          \
    } while (0)

#define BP_DEBUG(msg, ...) BP_LOG(BP_LOG_DEBUG, msg, ##__VA_ARGS__)
#define BP_INFO(msg, ...) BP_LOG(BP_LOG_INFO, msg, ##__VA_ARGS__)
#define BP_WARN(msg, ...) BP_LOG(BP_LOG_WARN, msg, ##__VA_ARGS__)
#define BP_ERROR(msg, ...) BP_LOG(BP_LOG_ERROR, msg, ##__VA_ARGS__)

/* Appends s (len bytes) to out as the inside of a JSON string (escapes quotes, backslashes and
 * control bytes; bytes >= 0x80 are passed through). Returns the bytes written, at most cap-1,
 * always NUL-terminated; truncates rather than overflowing. Shared with other JSON writers. */
size_t bp_json_escape(char *out, size_t cap, const char *s, size_t len);

#endif
