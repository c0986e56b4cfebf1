/* The OpenAPI 3.1 document of the Proxy API, built from data the proxy runs on:
 *
 *  - paths: one operation per row of the route table (router/: the built-in rows adjusted by
 *    the configuration's "routes", exactly as serve builds it), under /proxy, with its scope as
 *    the security requirement, its audit action and route category;
 *  - responses: the proxy's own refusals come from the error catalog (errcat/), one response
 *    per status with every code it can carry as an example; whatever Core answers passes
 *    through unchanged, which the document says with a "default" response.
 *
 * Core paths use ":name" captures; OpenAPI uses "{name}". Two rows whose patterns differ only in
 * capture names (PUT /identities/:identity_id and GET /identities/:id) are one OpenAPI path, which
 * keeps the first row's names (OpenAPI forbids two templates of the same shape).
 *
 * Single-threaded, allocation through jansson (whatever allocator the process gave it). */
#include "openapi/openapi.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config/config.h"
#include "errcat/errcat.h"
#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/bug.h"
#include "lib/version.h"
#include "router/router.h"

#define MAX_SEGMENTS 16
#define PATH_MAX_LEN 512

/* jansson's setters that steal a reference; a NULL value (out of memory) aborts like bp_malloc. */
static void
set(json_t *obj, const char *key, json_t *value)
{
    BP_BUG_ON(value == NULL || json_object_set_new(obj, key, value) != 0);
}

static void
push(json_t *arr, json_t *value)
{
    BP_BUG_ON(value == NULL || json_array_append_new(arr, value) != 0);
}

static json_t *
obj(void)
{
    json_t *o = json_object();
    BP_BUG_ON(o == NULL);
    return o;
}

static json_t *
arr(void)
{
    json_t *a = json_array();
    BP_BUG_ON(a == NULL);
    return a;
}

static json_t *
str(const char *s)
{
    return json_string(s);
}

static json_t *
ref(const char *target)
{
    json_t *o = obj();
    set(o, "$ref", str(target));
    return o;
}

/* ---- paths ---- */

/* "/balances/:id/at" → "/proxy/balances/{id}/at" and its shape "/proxy/balances/{}/at"; the
 * capture names go to names[] (static strings are not available: they point into pattern). */
struct path_template {
    char path[PATH_MAX_LEN];
    char shape[PATH_MAX_LEN];
    const char *names[MAX_SEGMENTS];
    size_t name_lens[MAX_SEGMENTS];
    size_t n_names;
};

static void
make_template(const char *pattern, struct path_template *t)
{
    size_t pl = 0;
    size_t sl = 0;

    memset(t, 0, sizeof(*t));
    pl = (size_t)snprintf(t->path, sizeof(t->path), "/proxy");
    sl = (size_t)snprintf(t->shape, sizeof(t->shape), "/proxy");
    for (const char *p = pattern; *p != '\0';) {
        size_t seg = strcspn(p + 1, "/") + 1; /* "/x" including its slash */
        if (p[1] == ':' && t->n_names < MAX_SEGMENTS) {
            t->names[t->n_names] = p + 2;
            t->name_lens[t->n_names] = seg - 2;
            t->n_names++;
            pl += (size_t)snprintf(t->path + pl, sizeof(t->path) - pl, "/{%.*s}", (int)(seg - 2), p + 2);
            sl += (size_t)snprintf(t->shape + sl, sizeof(t->shape) - sl, "/{}");
        } else {
            pl += (size_t)snprintf(t->path + pl, sizeof(t->path) - pl, "%.*s", (int)seg, p);
            sl += (size_t)snprintf(t->shape + sl, sizeof(t->shape) - sl, "%.*s", (int)seg, p);
        }
        BP_BUG_ON(pl >= sizeof(t->path) || sl >= sizeof(t->shape));
        p += seg;
    }
}

/* "post_transactions_bulk", "get_balances_id_at": unique per row (method + pattern is). */
static void
operation_id(const struct bp_route *r, char *out, size_t cap)
{
    size_t n = 0;

    for (const char *m = r->method; *m != '\0' && n + 1 < cap; m++) {
        out[n++] = (char)(*m >= 'A' && *m <= 'Z' ? *m + 32 : *m);
    }
    for (const char *p = r->pattern; *p != '\0' && n + 1 < cap; p++) {
        char c = *p;
        if (c == '/' || c == '-' || c == '.') {
            c = '_';
        }
        if (c == ':') {
            continue;
        }
        out[n++] = c;
    }
    out[n] = '\0';
}

static bool
has_body(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
}

static json_t *
path_parameters(const struct path_template *t)
{
    json_t *params = arr();

    for (size_t i = 0; i < t->n_names; i++) {
        json_t *p = obj();
        json_t *schema = obj();
        char name[128];

        snprintf(name, sizeof(name), "%.*s", (int)t->name_lens[i], t->names[i]);
        set(p, "name", str(name));
        set(p, "in", str("path"));
        set(p, "required", json_true());
        set(p, "description",
            str("One path segment, passed to Core as sent (percent-encoding is not decoded)."));
        set(schema, "type", str("string"));
        set(schema, "minLength", json_integer(1));
        set(p, "schema", schema);
        push(params, p);
    }
    return params;
}

static json_t *
security(unsigned scope)
{
    const char *name = (scope & BP_SCOPE_WRITE) ? "proxy:write" : "proxy:read";
    json_t *list = arr();
    static const char *const schemes[] = {"bearer", "sdkKey"};

    for (size_t i = 0; i < BP_ARRAY_LEN(schemes); i++) {
        json_t *req = obj();
        json_t *scopes = arr();
        push(scopes, str(name));
        set(req, schemes[i], scopes);
        push(list, req);
    }
    return list;
}

static json_t *
request_body(const struct bp_route *r)
{
    json_t *body = obj();
    json_t *content = obj();
    json_t *media = obj();

    set(media, "schema", obj());
    if (r->large_body) {
        set(body, "description",
            str("Forwarded to Core byte for byte; up to max_upload_bytes (blnkproxy.json(5))."));
        set(content, "multipart/form-data", media);
    } else if (r->rewrite != BP_REWRITE_NONE) {
        set(body, "description",
            str("Forwarded to Core byte for byte, except that a JSON object without a top-level precision "
                "gets \"precision\": 100 and one without a reference gets a generated \"reference\" (for "
                "the bulk route: each object of \"transactions\"). Up to max_body_bytes."));
        set(content, "application/json", media);
    } else {
        set(body, "description",
            str("Forwarded to Core byte for byte; up to max_body_bytes (blnkproxy.json(5))."));
        set(content, "application/json", media);
    }
    set(body, "content", content);
    set(body, "required", json_false());
    return body;
}

static bool
is_read(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* Every status the catalog can answer with, as refs into components/responses. */
static json_t *
responses(const struct bp_route *r)
{
    json_t *out = obj();
    json_t *def = obj();
    size_t n = 0;
    const struct bp_errcat_row *rows = bp_errcat_rows(&n);

    set(def, "description",
        str("Core's answer: its status, end-to-end headers and body, relayed unchanged (plus "
            "X-Request-Id)."));
    set(out, "default", def);
    for (size_t i = 0; i < n; i++) {
        char status[8];
        char target[64];
        if (!rows[i].sent || (rows[i].status == 413 && !has_body(r->method))) {
            continue;
        }
        /* Idempotency-Key answers: writes only. */
        if (is_read(r->method) && (rows[i].rc == BP_ERR_IDEM_MISMATCH || rows[i].rc == BP_ERR_IDEM_IN_FLIGHT ||
                                   rows[i].rc == BP_ERR_IDEM_UNKNOWN || rows[i].rc == BP_ERR_IDEM_NOT_KEPT ||
                                   rows[i].rc == BP_ERR_IDEM_UNAVAILABLE)) {
            continue;
        }
        snprintf(status, sizeof(status), "%d", rows[i].status);
        snprintf(target, sizeof(target), "#/components/responses/Proxy%d", rows[i].status);
        if (json_object_get(out, status) == NULL) {
            set(out, status, ref(target));
        }
    }
    return out;
}

static json_t *
operation(const struct bp_route *r)
{
    json_t *op = obj();
    json_t *tags = arr();
    json_t *params = arr();
    char id[PATH_MAX_LEN];
    char text[1024];
    const char *scope = (r->scope & BP_SCOPE_WRITE) ? "proxy:write" : "proxy:read";

    operation_id(r, id, sizeof(id));
    set(op, "operationId", str(id));
    snprintf(text, sizeof(text), "%s %s%s%s", r->method, r->pattern, r->action != NULL ? ": " : "",
             r->action != NULL ? r->action : "");
    set(op, "summary", str(text));
    snprintf(text, sizeof(text),
             "Forwarded to Core as %s %s with the instance's secret key, once the credential, the path, "
             "the scope (%s) and the instance are checked.%s%s%s%s",
             r->method, r->pattern, scope, strcmp(r->method, "GET") == 0 ? " HEAD is answered too." : "",
             r->action != NULL ? " Audit action: " : "", r->action != NULL ? r->action : "",
             r->action != NULL ? "." : "");
    set(op, "description", str(text));
    push(tags, str(r->category));
    set(op, "tags", tags);
    push(params, ref("#/components/parameters/instance_id"));
    if (!is_read(r->method)) {
        push(params, ref("#/components/parameters/Idempotency-Key"));
    }
    set(op, "parameters", params);
    if (has_body(r->method)) {
        set(op, "requestBody", request_body(r));
    }
    set(op, "responses", responses(r));
    set(op, "security", security(r->scope));
    set(op, "x-blnkproxy-scope", str(scope));
    set(op, "x-blnkproxy-route", str(r->pattern));
    set(op, "x-blnkproxy-category", str(r->category));
    if (r->action != NULL) {
        set(op, "x-blnkproxy-audit-action", str(r->action));
    }
    return op;
}

/* The path item for t: the one already made for its shape (another row's names win), or a new
 * one. */
static json_t *
path_item(json_t *paths, json_t *shapes, const struct path_template *t)
{
    json_t *key = json_object_get(shapes, t->shape);
    json_t *item;

    if (key != NULL) {
        return json_object_get(paths, json_string_value(key));
    }
    item = obj();
    if (t->n_names > 0) {
        set(item, "parameters", path_parameters(t));
    }
    set(paths, t->path, item);
    set(shapes, t->shape, str(t->path));
    return item;
}

static json_t *
build_paths(const struct bp_route *routes, size_t n, json_t *tags)
{
    json_t *paths = obj();
    json_t *shapes = obj();
    json_t *seen_tags = obj();

    for (size_t i = 0; i < n; i++) {
        const struct bp_route *r = &routes[i];
        struct path_template t;
        json_t *item;
        char method[16];

        make_template(r->pattern, &t);
        item = path_item(paths, shapes, &t);
        snprintf(method, sizeof(method), "%s", r->method);
        for (char *m = method; *m != '\0'; m++) {
            *m = (char)(*m >= 'A' && *m <= 'Z' ? *m + 32 : *m);
        }
        /* The router refuses duplicate rows, so a method appears once per shape. */
        BP_BUG_ON(json_object_get(item, method) != NULL);
        set(item, method, operation(r));
        if (json_object_get(seen_tags, r->category) == NULL) {
            json_t *tag = obj();
            char text[160];
            snprintf(text, sizeof(text), "Routes whose audit records have the category \"%s\".", r->category);
            set(tag, "name", str(r->category));
            set(tag, "description", str(text));
            push(tags, tag);
            set(seen_tags, r->category, json_true());
        }
    }
    json_decref(shapes);
    json_decref(seen_tags);
    return paths;
}

/* ---- components ---- */

static json_t *
error_schema(void)
{
    json_t *schema = obj();
    json_t *props = obj();
    json_t *detail = obj();
    json_t *dprops = obj();
    json_t *req = arr();
    json_t *dreq = arr();
    json_t *s;
    json_t *codes = arr();
    size_t n = 0;
    const struct bp_errcat_row *rows = bp_errcat_rows(&n);

    set(schema, "type", str("object"));
    set(schema, "description",
        str("Core's error shape, used by the proxy for its own refusals (DESIGN §2)."));
    s = obj();
    set(s, "type", str("string"));
    set(props, "error", s);
    set(detail, "type", str("object"));
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t k = 0; k < i; k++) {
            dup = dup || strcmp(rows[k].code, rows[i].code) == 0;
        }
        if (rows[i].sent && !dup) {
            push(codes, str(rows[i].code));
        }
    }
    s = obj();
    set(s, "type", str("string"));
    set(s, "description",
        str("Core's error-code catalog; the proxy's own refusals use the codes listed in "
            "examples (PROXY_* only a proxy can say)."));
    set(s, "examples", codes);
    set(dprops, "code", s);
    s = obj();
    set(s, "type", str("string"));
    set(s, "description", str("What to fix; never quotes the request."));
    set(dprops, "message", s);
    set(detail, "properties", dprops);
    push(dreq, str("code"));
    push(dreq, str("message"));
    set(detail, "required", dreq);
    set(props, "error_detail", detail);
    set(schema, "properties", props);
    push(req, str("error"));
    push(req, str("error_detail"));
    set(schema, "required", req);
    return schema;
}

static json_t *
header(const char *description, json_t *example)
{
    json_t *h = obj();
    json_t *s = obj();

    set(h, "description", str(description));
    set(s, "type", str(json_is_integer(example) ? "integer" : "string"));
    set(h, "schema", s);
    set(h, "example", example);
    return h;
}

/* The response object of one status, made on first use: its description and an empty list of
 * examples. */
static json_t *
status_response(json_t *out, int status)
{
    char key[32];
    char text[128];
    json_t *resp;
    json_t *content;
    json_t *media;

    snprintf(key, sizeof(key), "Proxy%d", status);
    resp = json_object_get(out, key);
    if (resp != NULL) {
        return resp;
    }
    content = obj();
    media = obj();
    resp = obj();
    snprintf(text, sizeof(text), "Refused by the proxy with %d (or Core's own %d, passed through).", status,
             status);
    set(resp, "description", str(text));
    set(media, "schema", ref("#/components/schemas/Error"));
    set(media, "examples", obj());
    set(content, "application/json", media);
    set(resp, "content", content);
    set(out, key, resp);
    return resp;
}

/* The headers a row's refusal carries, added to its status's response once. */
static void
row_headers(json_t *resp, const struct bp_errcat_row *row)
{
    json_t *headers;

    if (row->www_authenticate == NULL && row->retry_after_s <= 0) {
        return;
    }
    headers = json_object_get(resp, "headers");
    if (headers == NULL) {
        headers = obj();
        set(resp, "headers", headers);
    }
    if (row->www_authenticate != NULL && json_object_get(headers, "WWW-Authenticate") == NULL) {
        set(headers, "WWW-Authenticate",
            header("The Bearer challenge of RFC 6750; insufficient_scope names the scope needed.",
                   str(row->www_authenticate)));
    }
    if (row->retry_after_s > 0 && json_object_get(headers, "Retry-After") == NULL) {
        set(headers, "Retry-After",
            header("Seconds to wait before retrying.", json_integer(row->retry_after_s)));
    }
}

/* The row's body as an example, named by its code ("_2" and so on when a code repeats). */
static void
row_example(json_t *resp, const struct bp_errcat_row *row)
{
    json_t *examples =
        json_object_get(json_object_get(json_object_get(resp, "content"), "application/json"), "examples");
    json_t *ex = obj();
    json_t *value = obj();
    json_t *detail = obj();
    char name[64];

    snprintf(name, sizeof(name), "%s", row->code);
    for (int k = 2; json_object_get(examples, name) != NULL; k++) {
        snprintf(name, sizeof(name), "%s_%d", row->code, k);
    }
    set(ex, "summary", str(row->message));
    set(value, "error", str(row->message));
    set(detail, "code", str(row->code));
    set(detail, "message", str(row->message));
    set(value, "error_detail", detail);
    set(ex, "value", value);
    set(examples, name, ex);
}

/* One response per status the catalog answers with, every code of that status an example. */
static json_t *
error_responses(void)
{
    json_t *out = obj();
    size_t n = 0;
    const struct bp_errcat_row *rows = bp_errcat_rows(&n);

    for (size_t i = 0; i < n; i++) {
        json_t *resp;
        if (!rows[i].sent) {
            continue;
        }
        resp = status_response(out, rows[i].status);
        row_headers(resp, &rows[i]);
        row_example(resp, &rows[i]);
    }
    return out;
}

/* DESIGN §4b: the header that makes a write safe to retry. */
static json_t *
idempotency_key_param(void)
{
    json_t *p = obj();
    json_t *schema = obj();

    set(p, "name", str("Idempotency-Key"));
    set(p, "in", str("header"));
    set(p, "required", json_false());
    set(p, "description",
        str("Makes the write safe to retry: the first request under the key (per credential, instance, "
            "method and route) is forwarded once and its answer stored; a repeat with the same method, "
            "path, query and body gets that answer with Idempotent-Replayed: true and Core sees nothing. "
            "Another request under the key: 422; while the first is in flight or its outcome is unknown: "
            "409."));
    set(schema, "type", str("string"));
    set(schema, "minLength", json_integer(1));
    set(schema, "maxLength", json_integer(255));
    set(schema, "pattern", str("^[\\x20-\\x7E]+$"));
    set(p, "schema", schema);
    return p;
}

static json_t *
components(void)
{
    json_t *c = obj();
    json_t *schemes = obj();
    json_t *bearer = obj();
    json_t *sdk = obj();
    json_t *params = obj();
    json_t *inst = obj();
    json_t *schema = obj();
    json_t *schemas = obj();

    set(bearer, "type", str("http"));
    set(bearer, "scheme", str("bearer"));
    set(bearer, "description",
        str("An API key (blnk_ followed by 64 hex digits) or an OAuth 2.0 access token (blnk_at_...). "
            "Its scopes (*, proxy:read, proxy:write) must cover the route's."));
    set(schemes, "bearer", bearer);
    set(sdk, "type", str("apiKey"));
    set(sdk, "in", str("header"));
    set(sdk, "name", str("X-Blnk-Key"));
    set(sdk, "description",
        str("For the official Blnk SDKs: a blnkproxy credential in X-Blnk-Key counts when there is no "
            "Authorization header. It is never forwarded; Core gets the instance's own secret."));
    set(schemes, "sdkKey", sdk);
    set(c, "securitySchemes", schemes);

    set(inst, "name", str("instance_id"));
    set(inst, "in", str("query"));
    set(inst, "required", json_false());
    set(inst, "description",
        str("The Core instance to forward to. May be left out when the credential is restricted to exactly "
            "one instance. Removed from the query Core receives; every other byte of the query is kept."));
    set(schema, "type", str("string"));
    set(schema, "pattern", str("^instance_[0-9A-HJKMNP-TV-Z]{26}$"));
    set(inst, "schema", schema);
    set(params, "instance_id", inst);
    set(params, "Idempotency-Key", idempotency_key_param());
    set(c, "parameters", params);

    set(schemas, "Error", error_schema());
    set(c, "schemas", schemas);
    set(c, "responses", error_responses());
    return c;
}

static json_t *
info(void)
{
    json_t *i = obj();

    set(i, "title", str("blnkproxy Proxy API"));
    set(i, "version", str(bp_version_get()));
    set(i, "summary", str("Blnk Cloud's Proxy API, self-hosted in front of Blnk Core instances."));
    set(i, "description",
        str("Every operation is a Blnk Core route under /proxy: the proxy authenticates the credential, "
            "checks the route's scope and the instance, forwards the request to that Core instance with the "
            "instance's secret key, records it in the audit log and returns Core's answer unchanged. Only "
            "these routes are forwarded; anything else is answered 404 GEN_NOT_FOUND by the proxy. "
            "Generated by `blnkproxy openapi` from the route table and the error catalog."));
    return i;
}

static json_t *
servers(const struct bp_config *cfg, unsigned flags)
{
    json_t *list = arr();
    json_t *s = obj();
    char url[512];

    if (cfg->oauth_issuer != NULL) {
        snprintf(url, sizeof(url), "%s", cfg->oauth_issuer);
    } else if ((flags & BP_OPENAPI_SERVED) != 0) {
        set(s, "url", str("/"));
        set(s, "description", str("The proxy that served this document (oauth.issuer is not set)."));
        push(list, s);
        return list;
    } else if (strchr(cfg->listen_host, ':') != NULL) {
        snprintf(url, sizeof(url), "http://[%s]:%d", cfg->listen_host, cfg->listen_port);
    } else {
        snprintf(url, sizeof(url), "http://%s:%d", cfg->listen_host, cfg->listen_port);
    }
    set(s, "url", str(url));
    set(s, "description", str("This proxy as configured (oauth.issuer, else the listen address)."));
    push(list, s);
    return list;
}

static int
dump_cb(const char *buffer, size_t size, void *data)
{
    return bp_buf_append(data, buffer, size) == BP_OK ? 0 : -1;
}

bp_err
bp_openapi_render(const struct bp_config *cfg, unsigned flags, struct bp_buf *out, char *err, size_t err_len)
{
    struct bp_route_spec *specs = bp_calloc(cfg->n_routes_add + 1, sizeof(*specs));
    struct bp_route *routes = NULL;
    size_t n = 0;
    struct bp_buf text;
    json_t *doc = NULL;
    json_t *tags = NULL;
    bp_err rc;

    bp_buf_init(&text, SIZE_MAX);
    /* The table exactly as serve builds it from the same configuration. */
    for (size_t i = 0; i < cfg->n_routes_add; i++) {
        const struct bp_config_route *r = &cfg->routes_add[i];
        specs[i] =
            (struct bp_route_spec){r->method, r->path, r->scope, r->action, r->category, r->large_body};
    }
    rc = bp_route_table_build((const char *const *)cfg->routes_remove, cfg->n_routes_remove, specs,
                              cfg->n_routes_add, &routes, &n, err, err_len);
    if (rc != BP_OK) {
        goto done;
    }
    doc = obj();
    tags = arr();
    set(doc, "openapi", str("3.1.0"));
    set(doc, "info", info());
    set(doc, "servers", servers(cfg, flags));
    set(doc, "paths", build_paths(routes, n, tags));
    set(doc, "components", components());
    set(doc, "tags", tags);
    if (json_dump_callback(doc, dump_cb, &text, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
        bp_buf_append_str(&text, "\n") != BP_OK || bp_buf_append(out, text.data, text.len) != BP_OK) {
        snprintf(err, err_len, "the document does not fit in the output buffer");
        rc = BP_ERR_LIMIT;
    }
done:
    json_decref(doc);
    bp_buf_cleanup(&text);
    bp_free(routes);
    bp_free(specs);
    return rc;
}
