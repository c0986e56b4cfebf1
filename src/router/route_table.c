/* The runtime route table: the built-in rows (routes_builtin.c) adjusted by the operator's
 * "routes" config (DESIGN §3). Built once at start; immutable afterwards and shared by every loop
 * thread. Validation is strict because a typo here silently changes what reaches Core. */
#include "router/router.h"

#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"

static bool
is_token_upper(const char *s)
{
    if (*s == '\0' || strlen(s) > BP_ROUTE_METHOD_MAX) {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!(*s >= 'A' && *s <= 'Z')) {
            return false;
        }
    }
    return true;
}

/* A pattern is a path that passes the strict path check, whose ":name" segments have a name. */
static const char *
pattern_problem(const char *p)
{
    size_t len = strlen(p);

    if (len == 0 || p[0] != '/') {
        return "must start with '/'";
    }
    if (bp_path_check(p, len, NULL) != BP_OK) {
        return "not a valid path (empty or dot segments, encoded or control characters)";
    }
    for (const char *seg = p; seg != NULL; seg = strchr(seg + 1, '/')) {
        if (seg[1] == ':' && (seg[2] == '\0' || seg[2] == '/')) {
            return "a ':' capture needs a name";
        }
    }
    return NULL;
}

static bool
same_row(const struct bp_route *r, const char *method, size_t mlen, const char *pattern)
{
    return strlen(r->method) == mlen && memcmp(r->method, method, mlen) == 0 && strcmp(r->pattern, pattern) == 0;
}

static bp_err
parse_scope(const char *text, const char *method, unsigned *out)
{
    if (text == NULL) {
        *out = (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) ? BP_SCOPE_READ : BP_SCOPE_WRITE;
        return BP_OK;
    }
    if (strcmp(text, "proxy:read") == 0) {
        *out = BP_SCOPE_READ;
        return BP_OK;
    }
    if (strcmp(text, "proxy:write") == 0) {
        *out = BP_SCOPE_WRITE;
        return BP_OK;
    }
    return BP_ERR_INVALID;
}

bp_err
bp_route_table_build(const char *const *remove, size_t n_remove, const struct bp_route_spec *add, size_t n_add,
                     struct bp_route **out, size_t *out_n, char *err, size_t err_len)
{
    size_t n_builtin = 0;
    const struct bp_route *builtin = bp_routes_builtin(&n_builtin);
    struct bp_route *rows = bp_calloc(n_builtin + n_add, sizeof(*rows));
    bool *removed = bp_calloc(n_builtin, sizeof(bool));
    size_t n = 0;
    bp_err rc = BP_ERR_INVALID;

    for (size_t i = 0; i < n_remove; i++) {
        const char *sp = strchr(remove[i], ' ');
        bool found = false;
        for (size_t k = 0; sp != NULL && k < n_builtin; k++) {
            if (same_row(&builtin[k], remove[i], (size_t)(sp - remove[i]), sp + 1)) {
                removed[k] = true;
                found = true;
            }
        }
        if (!found) {
            snprintf(err, err_len, "routes.remove[%zu]: no built-in route is \"METHOD /pattern\" like that", i);
            goto done;
        }
    }
    for (size_t k = 0; k < n_builtin; k++) {
        if (!removed[k]) {
            rows[n++] = builtin[k];
        }
    }
    for (size_t i = 0; i < n_add; i++) {
        const struct bp_route_spec *s = &add[i];
        struct bp_route *r = &rows[n];
        const char *problem;

        if (s->method == NULL || !is_token_upper(s->method)) {
            snprintf(err, err_len, "routes.add[%zu]: method must be 1 to %d upper-case letters (A-Z), like POST",
                     i, BP_ROUTE_METHOD_MAX);
            goto done;
        }
        problem = s->pattern != NULL ? pattern_problem(s->pattern) : "is required";
        if (problem != NULL) {
            snprintf(err, err_len, "routes.add[%zu]: path %s", i, problem);
            goto done;
        }
        if (parse_scope(s->scope, s->method, &r->scope) != BP_OK) {
            snprintf(err, err_len, "routes.add[%zu]: scope must be proxy:read or proxy:write", i);
            goto done;
        }
        for (size_t k = 0; k < n; k++) {
            if (same_row(&rows[k], s->method, strlen(s->method), s->pattern)) {
                snprintf(err, err_len, "routes.add[%zu]: %s %s is already in the table", i, s->method, s->pattern);
                goto done;
            }
        }
        r->method = s->method;
        r->pattern = s->pattern;
        r->group = "config";
        r->action = s->action;
        r->category = s->category != NULL ? s->category : BP_ROUTE_CATEGORY_CUSTOM;
        r->rewrite = BP_REWRITE_NONE;
        r->large_body = s->large_body;
        n++;
    }
    *out = rows;
    *out_n = n;
    rows = NULL;
    rc = BP_OK;
done:
    bp_free(rows);
    bp_free(removed);
    return rc;
}
