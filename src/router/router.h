#ifndef BP_ROUTER_ROUTER_H
#define BP_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "router/route-t.h"

/* The DESIGN §3 route table as data, the strict path check, and instance_id extraction. The
 * row type is in route-t.h, for modules that only hold rows. */

/* The built-in table, in DESIGN §3 order. */
const struct bp_route *bp_routes_builtin(size_t *out_count);

/* The category of an operator-added row that names none. */
#define BP_ROUTE_CATEGORY_CUSTOM "custom"

/* The audit categories the route table gives requests, each once: those of the built-in rows in
 * table order, then BP_ROUTE_CATEGORY_CUSTOM. An operator may name others in the config file.
 * Writes up to cap of them (static strings) to out; returns how many there are. */
size_t bp_route_categories(const char **out, size_t cap);

/* An operator's change to the table (DESIGN §3), as text from the config file. */
struct bp_route_spec {
    const char *method;   /* 1..BP_ROUTE_METHOD_MAX letters A-Z: GET, POST, PUT, PATCH, ... */
    const char *pattern;  /* "/a/:x/b": literal or ":name" segments, each non-empty */
    const char *scope;    /* "proxy:read", "proxy:write", or NULL for the method's default */
    const char *action;   /* may be NULL */
    const char *category; /* may be NULL: "custom" */
    bool large_body;
};

/* Builds the table the server uses: the built-in rows minus those named in remove (each
 * "METHOD /pattern", exactly as in the built-in table), then the added rows in order. Added rows
 * borrow the spec strings, which must outlive the table. An added row may not duplicate a row
 * still in the table; GET rows also serve HEAD; their group is "config". On error writes a
 * reason naming the entry ("routes.add[1]: pattern: empty segment") to err and returns
 * BP_ERR_INVALID. Free *out with bp_free. */
bp_err bp_route_table_build(const char *const *remove, size_t n_remove, const struct bp_route_spec *add,
                            size_t n_add, struct bp_route **out, size_t *out_n, char *err, size_t err_len);

/* Strict check of a Core path (the part after "/proxy", starting with '/'): refuses with
 * BP_ERR_MALFORMED the empty path and the bare "/", "." or ".." segments, empty segments ("//",
 * a trailing "/"), a percent-encoded '/', '\\', '.' or NUL (any case of hex digits), a
 * percent-encoded unreserved character (A-Z a-z 0-9 - _ ~: "%72eindex" is "reindex" to Core's
 * router), malformed percent-encoding ("%", "%4", "%zz"), and any raw byte < 0x21 (controls,
 * space), 0x7f, >= 0x80, '\\', '?' or '#'. Other percent-encoding is allowed and never decoded.
 * On refusal, when why is not NULL, *why is a fixed reason for the client naming the rule
 * ("trailing slash in path: remove it"); it never quotes the path. */
bp_err bp_path_check(const char *path, size_t len, const char **why);

/* Finds the route for method + path (already checked). The method is compared exactly
 * (case-sensitive); HEAD also matches GET routes. Literal segments win over ":x" captures when
 * both could match ("/transactions/bulk" is not "/transactions/:id"). A capture never binds a
 * Core resource name in the first segment ("/api-keys/metadata" is not "/:id/metadata") nor
 * completes a Core admin path ("/search/reindex"); see route_match.c. Returns NULL when no
 * route matches. No allocation. */
const struct bp_route *bp_route_match(const struct bp_route *table, size_t n, const char *method,
                                      size_t method_len, const char *path, size_t path_len);

/* Splits a raw query string (without '?', may be NULL/empty). Finds the parameter whose raw name
 * is exactly "instance_id" and appends every other byte of the query, in order, to out_forward
 * (removing the instance_id parameter and one adjoining '&'). Returns BP_OK with *out_id pointing
 * into q; BP_OK with *out_id NULL (and *out_id_len 0) when there is no such parameter, the whole
 * query then appended to out_forward; BP_ERR_MISSING_INSTANCE_ID when it is there but empty
 * ("instance_id", "instance_id="); BP_ERR_MALFORMED when it is repeated; BP_ERR_LIMIT when
 * out_forward cannot take the rest (out_forward is then unchanged). The value is not decoded.
 * On a refusal, when why is not NULL, *why is a fixed reason for the client. */
bp_err bp_query_take_instance_id(const char *q, size_t len, const char **out_id, size_t *out_id_len,
                                 struct bp_buf *out_forward, const char **why);

/* True when id is "instance_" followed by 26 Crockford base32 characters (0-9, A-Z without
 * I L O U), as the CLI generates them. */
bool bp_instance_id_is_valid(const char *id, size_t len);
/* The reason for the client when an instance_id is not valid (it never quotes the value). */
#define BP_INSTANCE_ID_SHAPE_REASON "instance_id must be instance_ followed by 26 Crockford base32 characters"

#endif
