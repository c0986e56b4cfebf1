/* The admin API's entry: which requests are ours, who may do what, and the dispatch to the
 * resources. Runs on an OAuth thread (admin.h). */
#include <string.h>

#include "admin/admin-int.h"
#include "admin/admin.h"
#include "core/log.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/str.h"
#include "trail/trail.h"

static bool
owns_path(const char *path, size_t len)
{
    static const char prefix[] = BP_ADMIN_PREFIX;
    const size_t n = sizeof(prefix) - 1;

    return len >= n && memcmp(path, prefix, n) == 0 && (len == n || path[n] == '/');
}

/* The requests that run Argon2id go to the sign-in threads: the sign-in, and an operator's new
 * password (POST /operators, POST /operators/{id}/password). */
static bool
is_signin(const char *method, size_t method_len, const char *path, size_t path_len)
{
    static const char ops[] = BP_ADMIN_PREFIX "/operators";
    static const char pw[] = "/password";
    const size_t olen = sizeof(ops) - 1;
    const size_t plen = sizeof(pw) - 1;

    if (!bp_str_eq(method, method_len, "POST")) {
        return false;
    }
    return bp_str_eq(path, path_len, BP_ADMIN_PREFIX "/session") || bp_str_eq(path, path_len, ops) ||
           (path_len > olen + plen && memcmp(path, ops, olen) == 0 && path[olen] == '/' &&
            memcmp(path + path_len - plen, pw, plen) == 0);
}

/* HEAD is answered as GET: the HTTP layer sends the head without the body. */
bool
bp_admin__method(const struct bp_admin_call *c, const char *m)
{
    return strcmp(c->req->method, m) == 0 || (strcmp(m, "GET") == 0 && strcmp(c->req->method, "HEAD") == 0);
}

void
bp_admin__not_allowed(struct bp_admin_call *c, const char *allow)
{
    bp_admin__error(c, 405, "GEN_METHOD_NOT_ALLOWED", "this method is not allowed here");
    bp_oauth_add_header(c->out, "Allow", allow);
}

/* "/admin/api/keys/key_01/revoke" → {"keys", "key_01", "revoke"}. False for a path with too
 * many or empty segments. */
static bool
split_path(struct bp_admin_call *c)
{
    const char *rest = c->req->path + sizeof(BP_ADMIN_PREFIX) - 1;
    size_t len = strlen(rest);
    char *p;

    if (len >= sizeof(c->path_copy)) {
        return false;
    }
    memcpy(c->path_copy, rest, len + 1);
    p = c->path_copy;
    if (*p == '/') {
        p++;
    }
    while (*p != '\0') {
        char *slash = strchr(p, '/');
        if (c->nseg == BP_ADMIN_MAX_SEGS) {
            return false;
        }
        if (slash != NULL) {
            *slash = '\0';
        }
        if (*p == '\0') {
            return false;
        }
        c->segs[c->nseg++] = p;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
        if (*p == '\0') {
            return false; /* a trailing '/' */
        }
    }
    return true;
}

static bool
is_read(const struct bp_admin_call *c)
{
    return bp_admin__method(c, "GET");
}

/* POST /audit/verify reads only, but its checkpoint and key come in a body: an auditor may make
 * it, yet it is parsed and CSRF-checked like a write (to a browser it is a POST like any other). */
static bool
is_read_post(const struct bp_admin_call *c)
{
    return bp_admin__method(c, "POST") && c->nseg == 2 && strcmp(c->segs[0], "audit") == 0 &&
           strcmp(c->segs[1], "verify") == 0;
}

/* A write's body: a JSON object (an empty body is {}), sent as application/json. A form post
 * from another site cannot send that type without a preflight; the CSRF token is the defence,
 * this is the second one. */
bool
bp_admin__parse_body(struct bp_admin_call *c)
{
    const struct bp_oauth_request *r = c->req;
    json_error_t jerr;

    if (r->body_len == 0) {
        c->body = json_object();
        return true;
    }
    if (r->content_type == NULL || strncasecmp(r->content_type, "application/json", 16) != 0 ||
        (r->content_type[16] != '\0' && r->content_type[16] != ';')) {
        bp_admin__error(c, 415, "GEN_MALFORMED_REQUEST", "send the body as Content-Type: application/json");
        return false;
    }
    c->body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (c->body == NULL || !json_is_object(c->body)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "the body must be one JSON object");
        return false;
    }
    return true;
}

static void
handle(void *arg, struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    struct bp_admin_call c = {
        .a = arg,
        .o = o,
        .s = bp_oauth_store(o),
        .req = req,
        .out = out,
        .now = bp_clock_wall_s(),
    };
    const char *res;

    if (c.s == NULL) {
        /* The thread's store connection could not be opened (logged); the next call retries. */
        bp_admin__store_error(&c, BP_ERR_STORE_DOWN, "store");
        return;
    }
    if (!split_path(&c) || c.nseg == 0) {
        bp_admin__error(&c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
        return;
    }
    res = c.segs[0];
    if (strcmp(res, "session") == 0 && c.nseg == 1) {
        bp_admin__session(&c);
        goto done;
    }
    if (!bp_admin__authenticate(&c, !is_read(&c))) {
        goto done;
    }
    if (!is_read(&c) && !is_read_post(&c) && c.role != ROLE_ADMIN) {
        bp_admin__error(&c, 403, "AUTH_INSUFFICIENT_PERMISSIONS",
                        "your role (auditor) reads only: ask an admin to make this change");
        goto done;
    }
    if (!is_read(&c) && !bp_admin__parse_body(&c)) {
        goto done;
    }
    if (strcmp(res, "instances") == 0) {
        bp_admin__instances(&c);
    } else if (strcmp(res, "keys") == 0) {
        bp_admin__keys(&c);
    } else if (strcmp(res, "clients") == 0) {
        bp_admin__clients(&c);
    } else if (strcmp(res, "operators") == 0) {
        if (c.role != ROLE_ADMIN) {
            bp_admin__error(&c, 403, "AUTH_INSUFFICIENT_PERMISSIONS", "only an admin may see the operators");
        } else {
            bp_admin__operators(&c);
        }
    } else if (strcmp(res, "audit") == 0) {
        bp_admin__audit(&c);
    } else if (strcmp(res, "traffic") == 0 && c.nseg == 1 && bp_admin__method(&c, "GET")) {
        bp_admin__traffic(&c);
    } else {
        bp_admin__error(&c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
done:
    json_decref(c.body);
    bp_operator_rec_cleanup(&c.op);
}

/* On a loop thread: a call that carries no credential is refused there, before it could take a
 * place in the admin threads' queue. Anonymous clients could otherwise fill that queue and keep
 * every operator out. The answers are the ones handle() would give. */
static bool
answer_at_once(void *arg, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    struct bp_admin_call c = {
        .a = arg,
        .req = req,
        .out = out,
        .now = bp_clock_wall_s(),
    };

    if (!split_path(&c) || c.nseg == 0) {
        bp_admin__error(&c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
        return true;
    }
    if (strcmp(c.segs[0], "session") == 0 && c.nseg == 1 && !bp_admin__method(&c, "GET") &&
        !bp_admin__method(&c, "DELETE")) {
        return false; /* signing in (or a method session.c refuses) */
    }
    return bp_admin__refuse_without_credential(&c);
}

bp_err
bp_admin_new(const struct bp_admin_opts *opts, struct bp_admin **out)
{
    struct bp_admin *a = bp_calloc(1, sizeof(*a));
    char err[512];

    if (opts->signing_key != NULL) {
        a->signing_key = bp_trail_key_load(opts->signing_key, true, err, sizeof(err));
        if (a->signing_key == NULL) {
            BP_ERROR("admin: cannot use audit.signing_key", BP_LSTR("reason", err));
            bp_free(a);
            return BP_ERR_INVALID;
        }
    }
    a->node = opts->node;
    a->service = (struct bp_oauth_service){
        .group = "admin",
        .owns_path = owns_path,
        .is_signin = is_signin,
        .answer_at_once = answer_at_once,
        .handle = handle,
        .arg = a,
    };
    *out = a;
    return BP_OK;
}

const struct bp_oauth_service *
bp_admin_service(const struct bp_admin *a)
{
    return &a->service;
}

void
bp_admin_free(struct bp_admin *a)
{
    if (a == NULL) {
        return;
    }
    bp_trail_key_free(a->signing_key);
    a->signing_key = NULL;
    bp_free(a);
}
