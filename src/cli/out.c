#include "cli/out.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"

/* The object is a jansson object (insertion-ordered); the human form is rendered from it, so the
 * two outputs cannot drift apart. */
struct bp_out_obj {
    json_t *json;
};

struct bp_out_obj *
bp_out_obj_new(void)
{
    struct bp_out_obj *o = bp_malloc(sizeof(*o));
    o->json = json_object();
    BP_BUG_ON(o->json == NULL);
    return o;
}

void
bp_out_obj_free(struct bp_out_obj *o)
{
    if (o == NULL) {
        return;
    }
    json_decref(o->json);
    bp_free(o);
}

static void
set(struct bp_out_obj *o, const char *key, json_t *val)
{
    /* Values are validated text (printable ASCII) or our own; a NULL here is a bug. */
    BP_BUG_ON(val == NULL);
    BP_BUG_ON(json_object_set_new(o->json, key, val) != 0);
}

void
bp_out_str(struct bp_out_obj *o, const char *key, const char *val)
{
    set(o, key, val != NULL ? json_string(val) : json_null());
}

void
bp_out_bool(struct bp_out_obj *o, const char *key, bool val)
{
    set(o, key, json_boolean(val));
}

void
bp_out_int(struct bp_out_obj *o, const char *key, int64_t val)
{
    set(o, key, json_integer((json_int_t)val));
}

void
bp_out_time(struct bp_out_obj *o, const char *key, int64_t wall_s)
{
    char text[21];

    if (wall_s == 0) {
        set(o, key, json_null());
        return;
    }
    bp_clock_format_rfc3339(wall_s, text);
    set(o, key, json_string(text));
}

void
bp_out_csv(struct bp_out_obj *o, const char *key, const char *csv)
{
    json_t *arr;
    const char *p = csv;

    if (csv == NULL) {
        set(o, key, json_null());
        return;
    }
    arr = json_array();
    BP_BUG_ON(arr == NULL);
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > 0) {
            BP_BUG_ON(json_array_append_new(arr, json_stringn(p, n)) != 0);
        }
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    set(o, key, arr);
}

void
bp_out_rows(struct bp_out_obj *o, const char *key, struct bp_out_obj *const *rows, size_t n)
{
    json_t *arr = json_array();

    BP_BUG_ON(arr == NULL);
    for (size_t i = 0; i < n; i++) {
        BP_BUG_ON(json_array_append(arr, rows[i]->json) != 0);
    }
    set(o, key, arr);
}

/* ---- printing ---- */

static int
dump_cb(const char *buffer, size_t size, void *data)
{
    return fwrite(buffer, 1, size, data) == size ? 0 : -1;
}

static int
finish(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "blnkproxy: cannot write output\n");
        return 1;
    }
    return 0;
}

static int
print_json(json_t *j)
{
    if (json_dump_callback(j, dump_cb, stdout, JSON_COMPACT) != 0) {
        fprintf(stderr, "blnkproxy: cannot write output\n");
        return 1;
    }
    fputc('\n', stdout);
    return finish();
}

/* The human text of one value; returns a bp_malloc'd string. */
static char *
render(const json_t *v)
{
    char num[32];
    size_t i;
    json_t *item;
    size_t len = 0;
    char *out;

    if (v == NULL || json_is_null(v)) {
        return bp_strdup("-");
    }
    if (json_is_string(v)) {
        return bp_strndup(json_string_value(v), json_string_length(v));
    }
    if (json_is_boolean(v)) {
        return bp_strdup(json_is_true(v) ? "yes" : "no");
    }
    if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%" PRId64, (int64_t)json_integer_value(v));
        return bp_strdup(num);
    }
    BP_BUG_ON(!json_is_array(v));
    if (json_array_size(v) == 0) {
        return bp_strdup("-");
    }
    json_array_foreach(v, i, item) {
        len += json_string_length(item) + 1;
    }
    out = bp_malloc(len + 1);
    len = 0;
    json_array_foreach(v, i, item) {
        if (i > 0) {
            out[len++] = ',';
        }
        memcpy(out + len, json_string_value(item), json_string_length(item));
        len += json_string_length(item);
    }
    out[len] = '\0';
    return out;
}

static void
print_header(const char *key, size_t width, bool last)
{
    size_t n = strlen(key);

    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        putchar(c == '_' ? ' ' : (c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    if (!last) {
        printf("%*s", (int)(width - n + 2), "");
    }
}

/* An aligned table of the objects in arr, one column per key of columns. */
static void
print_table(const json_t *arr, const char *const *columns, size_t ncolumns)
{
    size_t n = json_array_size(arr);
    char **cells = bp_calloc(n * ncolumns + 1, sizeof(*cells));
    size_t *widths = bp_calloc(ncolumns, sizeof(*widths));

    for (size_t c = 0; c < ncolumns; c++) {
        widths[c] = strlen(columns[c]);
    }
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < ncolumns; c++) {
            char *text = render(json_object_get(json_array_get(arr, r), columns[c]));
            size_t w = strlen(text);
            widths[c] = w > widths[c] ? w : widths[c];
            cells[r * ncolumns + c] = text;
        }
    }
    for (size_t c = 0; c < ncolumns; c++) {
        print_header(columns[c], widths[c], c + 1 == ncolumns);
    }
    putchar('\n');
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < ncolumns; c++) {
            const char *text = cells[r * ncolumns + c];
            if (c + 1 == ncolumns) {
                printf("%s\n", text);
            } else {
                printf("%-*s  ", (int)widths[c], text);
            }
        }
    }
    for (size_t i = 0; i < n * ncolumns; i++) {
        bp_free(cells[i]);
    }
    bp_free(cells);
    bp_free(widths);
}

static bool
is_rows(const json_t *v)
{
    return json_is_array(v) && json_array_size(v) > 0 && json_is_object(json_array_get(v, 0));
}

int
bp_out_print_obj(const struct bp_out_obj *o, bool json)
{
    const char *key;
    json_t *val;
    size_t width = 0;

    if (json) {
        return print_json(o->json);
    }
    json_object_foreach(o->json, key, val) {
        size_t n = strlen(key);
        width = n > width ? n : width;
    }
    json_object_foreach(o->json, key, val) {
        char *text;
        if (is_rows(val)) {
            continue; /* a table of its own, below */
        }
        text = render(val);
        printf("%s:%*s %s\n", key, (int)(width - strlen(key)), "", text);
        bp_free(text);
    }
    /* Each list of records (bp_out_rows) as a table, its columns the first record's keys. */
    json_object_foreach(o->json, key, val) {
        const char *columns[32];
        size_t ncolumns = 0;
        const char *ckey;
        json_t *cval;

        if (!is_rows(val)) {
            continue;
        }
        json_object_foreach(json_array_get(val, 0), ckey, cval) {
            if (ncolumns < BP_ARRAY_LEN(columns)) {
                columns[ncolumns++] = ckey;
            }
        }
        printf("\n");
        print_table(val, columns, ncolumns);
    }
    return finish();
}

int
bp_out_print_list(const char *list_key, struct bp_out_obj *const *rows, size_t n,
                  const char *const *columns, size_t ncolumns, bool json)
{
    json_t *arr = json_array();
    int rc;

    BP_BUG_ON(arr == NULL);
    for (size_t i = 0; i < n; i++) {
        BP_BUG_ON(json_array_append(arr, rows[i]->json) != 0);
    }
    if (json) {
        json_t *wrap = json_object();
        BP_BUG_ON(wrap == NULL);
        BP_BUG_ON(json_object_set_new(wrap, list_key, arr) != 0);
        rc = print_json(wrap);
        json_decref(wrap);
        return rc;
    }
    print_table(arr, columns, ncolumns);
    json_decref(arr);
    return finish();
}

void
bp_out_note(bool json, const char *text)
{
    if (!json) {
        printf("%s\n", text);
    }
}

void
bp_out_secret(bool json, const char *label, const char *secret)
{
    if (json) {
        return;
    }
    printf("\n%s: %s\n", label, secret);
    printf("Store it now: it is shown only once and cannot be recovered.\n");
    fflush(stdout);
}
