/* The OAuth endpoints' front (DESIGN §6): per-thread state, dispatch by path and method, and the
 * RFC 6749 §5.2 response shapes the endpoint files share.
 *
 * Threads: each of the http module's OAuth threads opens its own struct bp_oauth (one store
 * connection each, opened at the thread's first call) and calls bp_oauth_handle for one request
 * at a time. Handling is synchronous:
 * it hashes passwords and writes the store, which is why it never runs on a loop thread. The
 * only state shared between threads is the sign-in throttle (throttle.c, behind a mutex).
 *
 * Invariants: no secret, code, token or password is ever logged or echoed back, except a freshly
 * issued token or code in the one response that issues it. Every response to a token, revoke or
 * introspect request carries Cache-Control: no-store. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config/config.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

#define PATH_METADATA "/.well-known/oauth-authorization-server"

bool
bp_oauth_owns_path(const char *path, size_t len)
{
    if (len >= 7 && memcmp(path, "/oauth/", 7) == 0) {
        return true;
    }
    return bp_str_eq(path, len, "/oauth") || bp_str_eq(path, len, PATH_METADATA);
}

static char *
default_issuer(const struct bp_config *cfg)
{
    const char *host = cfg->listen_host != NULL ? cfg->listen_host : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL && host[0] != '[';
    char buf[512];

    snprintf(buf, sizeof(buf), "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", cfg->listen_port);
    return bp_strdup(buf);
}

bp_err
bp_oauth_open(const struct bp_config *cfg, struct bp_oauth **out)
{
    struct bp_oauth *o = bp_calloc(1, sizeof(*o));
    size_t n;

    o->cfg = cfg;
    o->issuer = cfg->oauth_issuer != NULL ? bp_strdup(cfg->oauth_issuer) : default_issuer(cfg);
    n = strlen(o->issuer);
    while (n > 0 && o->issuer[n - 1] == '/') {
        o->issuer[--n] = '\0';
    }
    *out = o;
    return BP_OK;
}

/* The store connection is opened at the thread's first call, not with the thread: an idle
 * server has seven of these threads (OAuth, sign-in, admin), and each SQLite connection holds
 * ~200 KB (its parsed schema and page cache), each PostgreSQL one a server slot. LAZY: while a
 * PostgreSQL store is down the endpoints answer 503 temporarily_unavailable and reconnect by
 * themselves (issue 9). A SQLite file that cannot be opened is tried again at the next call. */
bp_err
bp_oauth__ready(struct bp_oauth *o)
{
    char err[256];
    bp_err rc;

    if (o->store != NULL) {
        return BP_OK;
    }
    rc = bp_store_open(o->cfg->db, BP_STORE_OPEN_LAZY, &o->store, err, sizeof(err));
    if (rc != BP_OK) {
        o->store = NULL;
        /* Once per outage and thread, not once per request. */
        if (!o->open_failed) {
            BP_ERROR("oauth: cannot open the store", BP_LSTR("error", err));
        }
        o->open_failed = true;
        return rc;
    }
    if (o->open_failed) {
        BP_INFO("oauth: store opened again");
    }
    o->open_failed = false;
    bp_store_set_timeout(o->store, 10000);
    return BP_OK;
}

void
bp_oauth_close(struct bp_oauth *o)
{
    if (o == NULL) {
        return;
    }
    bp_store_close(o->store);
    bp_free(o->issuer);
    bp_free(o->dummy_hash);
    bp_free(o);
}

void
bp_oauth_response_cleanup(struct bp_oauth_response *r)
{
    if (r == NULL) {
        return;
    }
    bp_free(r->headers);
    r->headers = NULL;
    if (r->body != NULL) {
        /* A token response holds fresh tokens. */
        bp_wipe(r->body, r->body_len);
        bp_free(r->body);
        r->body = NULL;
    }
    r->body_len = 0;
}

void
bp_oauth_add_header(struct bp_oauth_response *out, const char *name, const char *value)
{
    size_t old = out->headers != NULL ? strlen(out->headers) : 0;
    size_t add = strlen(name) + 2 + strlen(value) + 2;
    char *h = bp_realloc(out->headers, old + add + 1);

    snprintf(h + old, add + 1, "%s: %s\r\n", name, value);
    out->headers = h;
}

static void
set_body(struct bp_oauth_response *out, int status, const char *content_type, char *body, size_t len)
{
    bp_free(out->body);
    out->status = status;
    out->content_type = content_type;
    out->body = body;
    out->body_len = len;
}

void
bp_oauth__json(struct bp_oauth_response *out, int status, void *json)
{
    json_t *j = json;
    char *text = json_dumps(j, JSON_COMPACT);
    json_malloc_t jmalloc;
    json_free_t jfree;
    size_t len;

    json_decref(j);
    BP_BUG_ON(text == NULL);
    len = strlen(text);
    set_body(out, status, "application/json", bp_memdup(text, len + 1), len);
    bp_wipe(text, len);
    json_get_alloc_funcs(&jmalloc, &jfree); /* the text is jansson's allocation */
    jfree(text);
    bp_oauth_add_header(out, "Cache-Control", "no-store");
    bp_oauth_add_header(out, "Pragma", "no-cache");
}

void
bp_oauth__error(struct bp_oauth_response *out, int status, const char *error, const char *description)
{
    json_t *j = json_object();

    json_object_set_new(j, "error", json_string(error));
    if (description != NULL) {
        json_object_set_new(j, "error_description", json_string(description));
    }
    bp_oauth__json(out, status, j);
    if (status == 401) {
        bp_oauth_add_header(out, "WWW-Authenticate", "Basic realm=\"blnkproxy\"");
    }
}

bool
bp_oauth__is_form(const struct bp_oauth_request *req)
{
    static const char want[] = "application/x-www-form-urlencoded";
    const size_t wlen = sizeof(want) - 1;
    const char *ct = req->content_type;
    size_t len = req->content_type_len;

    if (ct == NULL || len < wlen || !bp_str_ieq(ct, wlen, want)) {
        return false;
    }
    for (size_t i = wlen; i < len; i++) {
        if (ct[i] == ';') {
            return true;
        }
        if (ct[i] != ' ' && ct[i] != '\t') {
            return false;
        }
    }
    return true;
}

bool
bp_oauth__client_is_usable(const struct bp_client_rec *c, int64_t now)
{
    return !c->revoked && (c->expires_at == 0 || c->expires_at > now);
}

bool
bp_oauth__list_has(const char *list, const char *item)
{
    size_t n = strlen(item);

    if (list == NULL) {
        return false;
    }
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && memcmp(p, item, n) == 0) {
            return true;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return false;
}

static bool
method_is(const struct bp_oauth_request *req, const char *m)
{
    return bp_str_eq(req->method, req->method_len, m);
}

static void
not_allowed(struct bp_oauth_response *out, const char *allow)
{
    bp_oauth__error(out, 405, "invalid_request", "method not allowed");
    bp_oauth_add_header(out, "Allow", allow);
}

/* For the JSON endpoints: false, with their 503, when the thread has no store connection. */
static bool
store_ready(struct bp_oauth *o, struct bp_oauth_response *out)
{
    if (bp_oauth__ready(o) != BP_OK) {
        bp_oauth__error(out, 503, "temporarily_unavailable", "the store did not answer");
        return false;
    }
    return true;
}

void
bp_oauth_handle(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    const char *p = req->path;
    size_t n = req->path_len;
    bool post = method_is(req, "POST");

    memset(out, 0, sizeof(*out));
    if (bp_str_eq(p, n, "/oauth/token")) {
        if (!post) {
            not_allowed(out, "POST");
            return;
        }
        if (store_ready(o, out)) {
            bp_oauth__token(o, req, out);
        }
    } else if (bp_str_eq(p, n, "/oauth/revoke")) {
        if (!post) {
            not_allowed(out, "POST");
            return;
        }
        if (store_ready(o, out)) {
            bp_oauth__revoke(o, req, out);
        }
    } else if (bp_str_eq(p, n, "/oauth/introspect")) {
        if (!post) {
            not_allowed(out, "POST");
            return;
        }
        if (store_ready(o, out)) {
            bp_oauth__introspect(o, req, out);
        }
    } else if (bp_str_eq(p, n, "/oauth/authorize")) {
        if (!post && !method_is(req, "GET")) {
            not_allowed(out, "GET, POST");
            return;
        }
        /* A page, so its outage is a page too (as the sign-in's is). */
        if (bp_oauth__ready(o) != BP_OK) {
            bp_oauth__page_error(out, 503, "Try again", "The service is temporarily unavailable.");
            return;
        }
        bp_oauth__authorize(o, req, out);
    } else if (bp_str_eq(p, n, PATH_METADATA)) {
        if (!method_is(req, "GET")) {
            not_allowed(out, "GET");
            return;
        }
        bp_oauth__metadata(o, req, out);
    } else {
        bp_oauth__error(out, 404, "not_found", "no such OAuth endpoint");
    }
}
