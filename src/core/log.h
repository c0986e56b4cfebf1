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
    const char *key;
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

/* Writes one line {"time":…,"level":…,"msg":…,<fields>} with a single write(2) so lines from
 * different threads never interleave. NULL string fields are written as null. */
void bp_log_write(enum bp_log_level lvl, const char *msg, const struct bp_log_field *fields, size_t n);

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
