/* The "routes" key of blnkproxy.json (DESIGN §3: an operator can add or remove routes in the
 * config file; the built-in table is the default):
 *
 *   "routes": {
 *     "remove": ["DELETE /reconciliation/matching-rules/:id"],
 *     "add": [{"method": "GET", "path": "/ledgers/:id/export", "scope": "proxy:read",
 *              "action": "Ledger exported", "category": "ledgers", "large_body": false}]
 *   }
 *
 * Only the shape is checked here; what a row means (a known built-in row to remove, a valid
 * pattern, a known scope) is the router's to judge when it builds the table. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config/settings-int.h"
#include "lib/alloc.h"

static const char *const add_keys[] = {"method", "path", "scope", "action", "category", "large_body"};

static void
failf(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
failf(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

void
bp_config__routes_cleanup(struct bp_config *c)
{
    for (size_t i = 0; i < c->n_routes_remove; i++) {
        bp_free(c->routes_remove[i]);
    }
    bp_free(c->routes_remove);
    c->routes_remove = NULL;
    c->n_routes_remove = 0;
    for (size_t i = 0; i < c->n_routes_add; i++) {
        struct bp_config_route *r = &c->routes_add[i];
        bp_free(r->method);
        bp_free(r->path);
        bp_free(r->scope);
        bp_free(r->action);
        bp_free(r->category);
    }
    bp_free(c->routes_add);
    c->routes_add = NULL;
    c->n_routes_add = 0;
}

/* A member that must be a non-empty string when present; NULL when absent. */
static bp_err
opt_string(json_t *obj, const char *key, bool required, char **out, const char *where, char *err, size_t err_len)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL || (json_is_null(v) && !required)) {
        if (required) {
            failf(err, err_len, "%s: \"%s\" is required", where, key);
            return BP_ERR_INVALID;
        }
        *out = NULL;
        return BP_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024) {
        failf(err, err_len, "%s: \"%s\" must be a non-empty string", where, key);
        return BP_ERR_INVALID;
    }
    *out = bp_strdup(json_string_value(v));
    return BP_OK;
}

static bp_err
load_add(json_t *row, size_t index, struct bp_config_route *out, const char *source, char *err, size_t err_len)
{
    char where[128];
    json_t *large;
    bp_err rc;

    snprintf(where, sizeof(where), "%s: key \"routes\": add[%zu]", source, index);
    if (!json_is_object(row)) {
        failf(err, err_len, "%s: must be an object", where);
        return BP_ERR_INVALID;
    }
    for (void *it = json_object_iter(row); it != NULL; it = json_object_iter_next(row, it)) {
        const char *k = json_object_iter_key(it);
        bool known = false;
        for (size_t i = 0; i < sizeof(add_keys) / sizeof(add_keys[0]); i++) {
            known = known || strcmp(k, add_keys[i]) == 0;
        }
        if (!known) {
            failf(err, err_len, "%s: unknown key (allowed: method, path, scope, action, category, large_body)",
                  where);
            return BP_ERR_INVALID;
        }
    }
    rc = opt_string(row, "method", true, &out->method, where, err, err_len);
    if (rc == BP_OK) {
        rc = opt_string(row, "path", true, &out->path, where, err, err_len);
    }
    if (rc == BP_OK) {
        rc = opt_string(row, "scope", false, &out->scope, where, err, err_len);
    }
    if (rc == BP_OK) {
        rc = opt_string(row, "action", false, &out->action, where, err, err_len);
    }
    if (rc == BP_OK) {
        rc = opt_string(row, "category", false, &out->category, where, err, err_len);
    }
    if (rc != BP_OK) {
        return rc;
    }
    large = json_object_get(row, "large_body");
    if (large != NULL && !json_is_boolean(large)) {
        failf(err, err_len, "%s: \"large_body\" must be true or false", where);
        return BP_ERR_INVALID;
    }
    out->large_body = large != NULL && json_is_true(large);
    return BP_OK;
}

bp_err
bp_config__load_routes(void *json_value, const char *source, struct bp_config *c, char *err, size_t err_len)
{
    json_t *v = json_value;
    json_t *remove;
    json_t *add;
    bp_err rc = BP_OK;

    bp_config__routes_cleanup(c);
    if (!json_is_object(v)) {
        failf(err, err_len, "%s: key \"routes\": must be an object with \"remove\" and/or \"add\"", source);
        return BP_ERR_INVALID;
    }
    for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it)) {
        const char *k = json_object_iter_key(it);
        if (strcmp(k, "remove") != 0 && strcmp(k, "add") != 0) {
            failf(err, err_len, "%s: key \"routes\": unknown key (allowed: remove, add)", source);
            return BP_ERR_INVALID;
        }
    }
    remove = json_object_get(v, "remove");
    add = json_object_get(v, "add");
    if ((remove != NULL && !json_is_array(remove)) || (add != NULL && !json_is_array(add))) {
        failf(err, err_len, "%s: key \"routes\": \"remove\" and \"add\" must be arrays", source);
        return BP_ERR_INVALID;
    }
    if (remove != NULL && json_array_size(remove) > 0) {
        c->routes_remove = bp_calloc(json_array_size(remove), sizeof(char *));
        for (size_t i = 0; i < json_array_size(remove); i++) {
            json_t *item = json_array_get(remove, i);
            if (!json_is_string(item) || json_string_length(item) == 0 || json_string_length(item) > 1024) {
                failf(err, err_len, "%s: key \"routes\": remove[%zu]: must be a string \"METHOD /path\"", source,
                      i);
                rc = BP_ERR_INVALID;
                goto done;
            }
            c->routes_remove[c->n_routes_remove++] = bp_strdup(json_string_value(item));
        }
    }
    if (add != NULL && json_array_size(add) > 0) {
        c->routes_add = bp_calloc(json_array_size(add), sizeof(*c->routes_add));
        for (size_t i = 0; i < json_array_size(add); i++) {
            /* Counted before loading, so cleanup frees a half-filled row too. */
            c->n_routes_add++;
            rc = load_add(json_array_get(add, i), i, &c->routes_add[i], source, err, err_len);
            if (rc != BP_OK) {
                goto done;
            }
        }
    }
done:
    if (rc != BP_OK) {
        bp_config__routes_cleanup(c);
    }
    return rc;
}

static bool
same_text(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

bool
bp_config__routes_equal(const struct bp_config *a, const struct bp_config *b)
{
    if (a->n_routes_remove != b->n_routes_remove || a->n_routes_add != b->n_routes_add) {
        return false;
    }
    for (size_t i = 0; i < a->n_routes_remove; i++) {
        if (strcmp(a->routes_remove[i], b->routes_remove[i]) != 0) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_routes_add; i++) {
        const struct bp_config_route *x = &a->routes_add[i];
        const struct bp_config_route *y = &b->routes_add[i];
        if (!same_text(x->method, y->method) || !same_text(x->path, y->path) || !same_text(x->scope, y->scope) ||
            !same_text(x->action, y->action) || !same_text(x->category, y->category) ||
            x->large_body != y->large_body) {
            return false;
        }
    }
    return true;
}
