/*
 * libFuzzer target for the router's parsers: bp_path_check, bp_route_match (every method) and
 * bp_query_take_instance_id.
 *
 * Input layout: the first byte's value is the path length (clamped to what is there); the next
 * bytes are the path and the rest is the raw query.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/bug.h"
#include "router/router.h"

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

/* DESIGN §3 admin routes. A "/name*" family owns every path starting with its name; the others
 * own their path and anything below it. */
static const char *const admin_family[] = {
    "/api-keys", "/backup", "/hooks", "/accounts", "/balance-monitors",
};
static const char *const admin_exact[] = {
    "/balances-snapshots",
    "/mocked-account",
    "/search/reindex",
    "/transactions/recover",
};

static bool
has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static bool
is_admin_path(const char *path, size_t len)
{
    size_t i;

    for (i = 0; i < BP_ARRAY_LEN(admin_family); i++) {
        if (has_prefix(path, len, admin_family[i])) {
            return true;
        }
    }
    for (i = 0; i < BP_ARRAY_LEN(admin_exact); i++) {
        size_t n = strlen(admin_exact[i]);
        if (has_prefix(path, len, admin_exact[i]) && (len == n || path[n] == '/')) {
            return true;
        }
    }
    return false;
}

static void
fuzz_path(const char *path, size_t len)
{
    size_t n;
    const struct bp_route *table = bp_routes_builtin(&n);
    const char *why = NULL;
    bool checked = bp_path_check(path, len, &why) == BP_OK;
    size_t m;

    /* A refusal always says why; an acceptance never does. */
    BP_BUG_ON(checked != (why == NULL));

    for (m = 0; m < BP_ARRAY_LEN(methods); m++) {
        const struct bp_route *r = bp_route_match(table, n, methods[m], strlen(methods[m]), path, len);
        if (r == NULL) {
            continue;
        }
        BP_BUG_ON(r < table || r >= table + n);
        /* HEAD reaches GET rows, every other method only its own rows. */
        if (strcmp(methods[m], "HEAD") == 0) {
            BP_BUG_ON(strcmp(r->method, "GET") != 0);
        } else {
            BP_BUG_ON(strcmp(r->method, methods[m]) != 0);
        }
        /* The path syntax check and the route table together never let Core administration
         * through: a checked path with an admin prefix matches nothing. */
        BP_BUG_ON(checked && is_admin_path(path, len));
    }
}

static void
fuzz_query(const char *q, size_t len)
{
    struct bp_buf fwd;
    const char *id = NULL;
    size_t id_len = 0;
    const char *why = NULL;
    size_t removed;
    bp_err rc;

    bp_buf_init(&fwd, len + 1);
    rc = bp_query_take_instance_id(q, len, &id, &id_len, &fwd, &why);
    if (rc != BP_OK) {
        BP_BUG_ON(fwd.len != 0);
        BP_BUG_ON(rc != BP_ERR_MISSING_INSTANCE_ID && rc != BP_ERR_MALFORMED);
        BP_BUG_ON(why == NULL);
        bp_buf_cleanup(&fwd);
        return;
    }
    BP_BUG_ON(why != NULL);
    if (id == NULL) {
        /* No instance_id parameter: the whole query is forwarded as it came. */
        BP_BUG_ON(id_len != 0 || fwd.len != len || (len > 0 && memcmp(fwd.data, q, len) != 0));
        bp_buf_cleanup(&fwd);
        return;
    }
    /* The id is the raw value of an "instance_id=" parameter inside q. */
    BP_BUG_ON(id_len == 0);
    BP_BUG_ON(id < q + 12 || id + id_len > q + len);
    BP_BUG_ON(memcmp(id - 12, "instance_id=", 12) != 0);
    BP_BUG_ON(memchr(id, '&', id_len) != NULL);
    /* What was removed is the parameter plus one '&' whenever anything else is left. */
    removed = 12 + id_len;
    if (removed < len) {
        removed++;
    }
    BP_BUG_ON(fwd.len + removed != len);
    bp_buf_cleanup(&fwd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t path_len;

    if (size == 0) {
        return 0;
    }
    path_len = data[0];
    if (path_len > size - 1) {
        path_len = size - 1;
    }
    fuzz_path(in + 1, path_len);
    /* An empty query is passed as NULL, as the HTTP layer does when there is no '?'. */
    fuzz_query(size - 1 - path_len > 0 ? in + 1 + path_len : NULL, size - 1 - path_len);
    return 0;
}
