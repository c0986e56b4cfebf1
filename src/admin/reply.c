/* The admin API's answers: JSON with headers that keep them out of caches, frames and content
 * sniffing; errors in Core's error shape (DESIGN §2), so one client handles both. */
#include <string.h>

#include "admin/admin-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"

static void
secure_headers(struct bp_oauth_response *out)
{
    bp_oauth_add_header(out, "Cache-Control", "no-store");
    bp_oauth_add_header(out, "X-Content-Type-Options", "nosniff");
    bp_oauth_add_header(out, "X-Frame-Options", "DENY");
    bp_oauth_add_header(out, "Referrer-Policy", "no-referrer");
    bp_oauth_add_header(out, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
}

void
bp_admin__json(struct bp_admin_call *c, int status, json_t *j)
{
    json_malloc_t jmalloc;
    json_free_t jfree;
    char *text;
    size_t len;

    BP_BUG_ON(j == NULL);
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    BP_BUG_ON(text == NULL);
    len = strlen(text);
    bp_free(c->out->body);
    c->out->status = status;
    c->out->content_type = "application/json";
    c->out->body = bp_memdup(text, len + 1);
    c->out->body_len = len;
    /* Bodies carry a secret once (a new key); jansson's copy goes the same way as ours. */
    bp_wipe(text, len);
    json_get_alloc_funcs(&jmalloc, &jfree);
    jfree(text);
    secure_headers(c->out);
}

void
bp_admin__text(struct bp_admin_call *c, int status, const char *content_type, char *body, size_t len)
{
    BP_BUG_ON(body == NULL);
    bp_free(c->out->body);
    c->out->status = status;
    c->out->content_type = content_type;
    c->out->body = body;
    c->out->body_len = len;
    secure_headers(c->out);
}

void
bp_admin__error(struct bp_admin_call *c, int status, const char *code, const char *message)
{
    json_t *detail = json_pack("{s:s, s:s}", "code", code, "message", message);
    json_t *j = json_pack("{s:s, s:o}", "error", message, "error_detail", detail);

    bp_admin__json(c, status, j);
}

void
bp_admin__no_content(struct bp_admin_call *c)
{
    bp_free(c->out->body);
    c->out->body = NULL;
    c->out->body_len = 0;
    c->out->content_type = NULL;
    c->out->status = 204;
    secure_headers(c->out);
}

void
bp_admin__store_error(struct bp_admin_call *c, bp_err rc, const char *what)
{
    char msg[160];

    if (rc == BP_ERR_NOT_FOUND) {
        snprintf(msg, sizeof(msg), "no such %s", what);
        bp_admin__error(c, 404, "GEN_NOT_FOUND", msg);
    } else if (rc == BP_ERR_STORE_DOWN) {
        bp_admin__error(c, 503, "GEN_UNAVAILABLE", "the store cannot be reached: try again");
        bp_oauth_add_header(c->out, "Retry-After", "1");
    } else {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the store failed (see the server log)");
    }
}

json_t *
bp_admin__jstr(const char *s)
{
    json_t *j = s != NULL ? json_string(s) : json_null();

    return j != NULL ? j : json_string("?");
}

json_t *
bp_admin__jtime(int64_t t)
{
    char buf[32];

    if (t == 0) {
        return json_null();
    }
    bp_clock_format_rfc3339(t, buf);
    return json_string(buf);
}

json_t *
bp_admin__jcsv(const char *csv)
{
    json_t *a;
    const char *p = csv;

    if (csv == NULL) {
        return json_null();
    }
    a = json_array();
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        json_array_append_new(a, json_stringn(p, n));
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    return a;
}

bool
bp_admin__refuse_bad_field(struct bp_admin_call *c)
{
    char msg[128];

    if (c->bad_field == NULL) {
        return false;
    }
    snprintf(msg, sizeof(msg), "%.64s must be a JSON string (with no NUL character)", c->bad_field);
    bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", msg);
    return true;
}

const char *
bp_admin__body_str(struct bp_admin_call *c, const char *name, bool *bad)
{
    json_t *v = c->body != NULL ? json_object_get(c->body, name) : NULL;

    if (v == NULL || json_is_null(v)) {
        return NULL;
    }
    /* A NUL inside ("\u0000") would cut the text short where C reads it: refused. */
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        *bad = true;
        if (c->bad_field == NULL) {
            c->bad_field = name;
        }
        return NULL;
    }
    return json_string_value(v);
}
