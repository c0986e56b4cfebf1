#ifndef BP_CONFIG_SETTINGS_INT_H
#define BP_CONFIG_SETTINGS_INT_H

/* Shared between config.c (sources and precedence), settings.c (the table and value parsers),
 * the unit tests and the fuzz target. Not part of the config module's interface. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "lib/err.h"

enum bp_setting_type {
    BP_SETTING_STRING,    /* non-empty text, stored as char * */
    BP_SETTING_INT,       /* decimal integer, stored as int or size_t (see width) */
    BP_SETTING_SIZE,      /* bytes: "65536", "64k", "64KiB", "1MiB", "1GiB"; stored as size_t */
    BP_SETTING_DURATION,  /* "500ms", "5s", "2m", "1h" or plain seconds ("0.5"); stored as int64 ms */
    BP_SETTING_LOG_LEVEL, /* debug|info|warn|error, stored as int (enum bp_log_level) */
    BP_SETTING_LISTEN,    /* "HOST:PORT": host as char * at offset, port as int at aux_offset */
    BP_SETTING_AUDIT_MODE, /* sync|async|off, stored as int (enum bp_audit_mode) */
    BP_SETTING_OPT_STRING, /* like STRING, but its default is absent (NULL) */
    BP_SETTING_BOOL,       /* true|false, stored as bool; a bare flag (--reuse-port) means true */
    BP_SETTING_INTERVALS,  /* "ID=DURATION,ID=DURATION": a duration per instance id, stored as the
                              checked char * (NULL: none); config.h reads it */
    BP_SETTING_NETS,       /* "CIDR,CIDR": IP networks (lib/ipnet.h; max = how many), stored as the
                              checked char * (NULL: none); the module that uses it parses it */
    BP_SETTING_RATE,       /* "100/s", "6000/m", "5/h", "1/d" or "0" (none): stored as struct bp_rate */
};

/* One configurable value. min/max are in the stored unit (count, bytes, milliseconds). */
struct bp_setting {
    const char *key;  /* JSON key in blnkproxy.json; "section.name" for a key inside an object */
    const char *env;  /* environment variable */
    const char *flag; /* command-line flag, with its leading dashes */
    enum bp_setting_type type;
    int64_t min;
    int64_t max;
    const char *def; /* default, written as a user would write it; NULL = computed at load */
    size_t offset;   /* of the field in struct bp_config */
    size_t width;    /* sizeof that field */
    size_t aux_offset;
    const char *meaning;
    bool live; /* applied by a reload (SIGHUP) while serving; false: takes effect at the next start */
    const char *value_name; /* what --help and the man pages call its value ("DSN"); NULL: the
                             * type's name for it (N, SIZE, DURATION, ...) */
};

extern const struct bp_setting bp_config__settings[];
extern const size_t bp_config__n_settings;

/* Lookups by JSON key and by flag name (with dashes, len bytes, so "--x=v" needs no copy).
 * NULL when no setting has that name. */
const struct bp_setting *bp_config__find_key(const char *key);
const struct bp_setting *bp_config__find_flag(const char *flag, size_t len);

/* Parses text as s's type, checks its bounds and stores it in c (replacing and freeing any
 * previous string). On error c is unchanged and a reason without a source prefix ("must be an
 * integer 1..256") is written to why; the caller adds the source. */
bp_err bp_config__set_text(const struct bp_setting *s, const char *text, struct bp_config *c, char *why,
                           size_t why_len);

/* Writes what s accepts ("must be an integer 1..256") to why: the reason text of every value
 * error for s. */
void bp_config__describe(const struct bp_setting *s, char *why, size_t why_len);

/* Fills c with every default. Strings are allocated; release with bp_config_cleanup. */
void bp_config__defaults(struct bp_config *c);

/* Applies a JSON config document (len bytes, need not be NUL-terminated) on top of c. source
 * names the file in errors. On error c may hold some of the document's values but stays
 * consistent (cleanup frees it) and err holds "<source>:<line>: …" or "<source>: key "k": …". */
bp_err bp_config__load_json_text(const char *text, size_t len, const char *source, struct bp_config *c,
                                 char *err, size_t err_len);

/* Splits "HOST:PORT". On BP_OK *out_host is an allocated copy of the host without IPv6
 * brackets. Exposed for the unit tests. */
bp_err bp_config__parse_listen(const char *text, char **out_host, int *out_port);
/* Parsers behind BP_SETTING_SIZE and BP_SETTING_DURATION, without bounds. */
bp_err bp_config__parse_size(const char *text, uint64_t *out_bytes);
bp_err bp_config__parse_duration(const char *text, int64_t *out_ms);

/* Applies the "routes" object of a config file (routes.c): replaces any routes already in c.
 * On error writes "<source>: key "routes": …" to err and leaves c's routes empty. */
bp_err bp_config__load_routes(void *json_value, const char *source, struct bp_config *c, char *err,
                              size_t err_len);
/* Frees c's route lists. */
void bp_config__routes_cleanup(struct bp_config *c);
/* True when a and b hold the same "routes" (same rows, same order, same fields). */
bool bp_config__routes_equal(const struct bp_config *a, const struct bp_config *b);

#endif
