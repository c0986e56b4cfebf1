#ifndef BP_CLI_OUT_H
#define BP_CLI_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Command output: one object built field by field, printed either as one JSON object on stdout
 * (--json) or for people (key/value lines, or an aligned table for lists). Commands never
 * printf their results themselves, so both forms always carry the same fields. */

struct bp_out_obj;


struct bp_out_obj *bp_out_obj_new(void);
void bp_out_obj_free(struct bp_out_obj *o);

/* Fields keep the order they are set in. A NULL string or a zero time is JSON null ("-" for
 * people). bp_out_csv turns "a,b" into ["a","b"]. */
void bp_out_str(struct bp_out_obj *o, const char *key, const char *val);
void bp_out_bool(struct bp_out_obj *o, const char *key, bool val);
void bp_out_int(struct bp_out_obj *o, const char *key, int64_t val);
void bp_out_time(struct bp_out_obj *o, const char *key, int64_t wall_s);
void bp_out_csv(struct bp_out_obj *o, const char *key, const char *csv);
/* A list of records as one field: a JSON array of objects; for people, a table after the other
 * fields, its columns the first record's keys (an empty list shows as "-"). */
void bp_out_rows(struct bp_out_obj *o, const char *key, struct bp_out_obj *const *rows, size_t n);

/* Print and return an exit code: 0, or 1 when stdout could not be written. */
int bp_out_print_obj(const struct bp_out_obj *o, bool json);
/* JSON: {"<list_key>":[rows…]}. People: a table of the given columns (field keys). */
int bp_out_print_list(const char *list_key, struct bp_out_obj *const *rows, size_t n,
                      const char *const *columns, size_t ncolumns, bool json);

/* A line for people only (stdout); nothing in JSON mode. */
void bp_out_note(bool json, const char *text);
/* The one-time display of a freshly created secret, for people only. */
void bp_out_secret(bool json, const char *label, const char *secret);

#endif
