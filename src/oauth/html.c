/* The authorize pages: small server-rendered HTML, no script. Every dynamic value goes through
 * bp_oauth__html_escape; pages are never cached or framed (clickjacking would let another site
 * make an operator click Approve). */
#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "oauth/oauth-int.h"

#define PAGE_MAX (256 * 1024)

bp_err
bp_oauth__html_escape(struct bp_buf *b, const char *s)
{
    bp_err rc = BP_OK;

    for (const char *p = s; *p != '\0' && rc == BP_OK; p++) {
        switch (*p) {
        case '&':
            rc = bp_buf_append_str(b, "&amp;");
            break;
        case '<':
            rc = bp_buf_append_str(b, "&lt;");
            break;
        case '>':
            rc = bp_buf_append_str(b, "&gt;");
            break;
        case '"':
            rc = bp_buf_append_str(b, "&quot;");
            break;
        case '\'':
            rc = bp_buf_append_str(b, "&#39;");
            break;
        default:
            rc = bp_buf_append(b, p, 1);
            break;
        }
    }
    return rc;
}

static const char head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>blnkproxy: %TITLE%</title><style>"
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;padding:3em 1em;color:#1d2330}"
    "main{max-width:26em;margin:auto;background:#fff;padding:2em;border-radius:8px;"
    "box-shadow:0 1px 4px rgba(0,0,0,.12)}"
    "h1{font-size:1.3em;margin-top:0}label{display:block;margin:1em 0 .3em}"
    "input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5em;font-size:1em}"
    "button{margin-top:1.2em;margin-right:.5em;padding:.55em 1.2em;font-size:1em;cursor:pointer}"
    ".msg{color:#b00020}ul{padding-left:1.2em}code{background:#eef;padding:0 .2em}"
    "</style></head><body><main>\n";

static void
begin(struct bp_buf *b, const char *title)
{
    const char *mark = strstr(head, "%TITLE%");

    BP_BUG_ON(mark == NULL);
    bp_buf_init(b, PAGE_MAX);
    bp_buf_append(b, head, (size_t)(mark - head));
    bp_oauth__html_escape(b, title);
    bp_buf_append_str(b, mark + 7);
}

/* Appends "<input type=hidden name=… value=…>" when value is set. */
static void
hidden(struct bp_buf *b, const char *name, const char *value)
{
    if (value == NULL) {
        return;
    }
    bp_buf_append_str(b, "<input type=\"hidden\" name=\"");
    bp_buf_append_str(b, name);
    bp_buf_append_str(b, "\" value=\"");
    bp_oauth__html_escape(b, value);
    bp_buf_append_str(b, "\">\n");
}

static void
carry(struct bp_buf *b, const struct bp_oauth_authz_params *p, const char *csrf)
{
    hidden(b, "response_type", p->response_type);
    hidden(b, "client_id", p->client_id);
    hidden(b, "redirect_uri", p->redirect_uri);
    hidden(b, "state", p->state);
    hidden(b, "scope", p->scope);
    hidden(b, "code_challenge", p->code_challenge);
    hidden(b, "code_challenge_method", p->code_challenge_method);
    hidden(b, "csrf", csrf);
}

static void
finish(struct bp_oauth_response *out, int status, struct bp_buf *b, const char *form_origin)
{
    char csp[512];

    bp_buf_append_str(b, "</main></body></html>\n");
    bp_free(out->body);
    out->status = status;
    out->content_type = "text/html; charset=utf-8";
    out->body = bp_buf_take(b, &out->body_len);
    /* The form posts to ourselves, and its answer may redirect to the client's origin: Chromium
     * applies form-action to that redirect too, so the origin is allowed explicitly. */
    snprintf(csp, sizeof(csp),
             "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'%s%s; "
             "frame-ancestors 'none'; base-uri 'none'",
             form_origin != NULL ? " " : "", form_origin != NULL ? form_origin : "");
    bp_oauth_add_header(out, "Cache-Control", "no-store");
    bp_oauth_add_header(out, "Pragma", "no-cache");
    bp_oauth_add_header(out, "X-Frame-Options", "DENY");
    bp_oauth_add_header(out, "X-Content-Type-Options", "nosniff");
    bp_oauth_add_header(out, "Referrer-Policy", "no-referrer");
    bp_oauth_add_header(out, "Content-Security-Policy", csp);
}

void
bp_oauth__page_login(struct bp_oauth_response *out, int status, const struct bp_oauth_authz_params *p,
                     const char *csrf, const char *message, const char *form_origin)
{
    struct bp_buf b;

    begin(&b, "sign in");
    bp_buf_append_str(&b, "<h1>Sign in to approve an app</h1>\n");
    if (message != NULL) {
        bp_buf_append_str(&b, "<p class=\"msg\" role=\"alert\">");
        bp_oauth__html_escape(&b, message);
        bp_buf_append_str(&b, "</p>\n");
    }
    bp_buf_append_str(&b, "<form method=\"post\" action=\"/oauth/authorize\">\n");
    carry(&b, p, csrf);
    bp_buf_append_str(
        &b, "<label for=\"name\">Operator name</label>"
            "<input type=\"text\" id=\"name\" name=\"name\" autocomplete=\"username\" required autofocus>\n"
            "<label for=\"password\">Password</label>"
            "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" "
            "required>\n"
            "<button type=\"submit\" name=\"action\" value=\"login\">Sign in</button>\n</form>\n");
    finish(out, status, &b, form_origin);
}

void
bp_oauth__page_consent(struct bp_oauth_response *out, const struct bp_oauth_authz_params *p, const char *csrf,
                       const char *client_name, const char *operator_name, const char *scope_text,
                       const char *form_origin)
{
    struct bp_buf b;

    begin(&b, "approve app");
    bp_buf_append_str(&b, "<h1>Approve <span id=\"client-name\">");
    bp_oauth__html_escape(&b, client_name);
    bp_buf_append_str(&b, "</span>?</h1>\n<p>Signed in as <strong id=\"operator-name\">");
    bp_oauth__html_escape(&b, operator_name);
    bp_buf_append_str(
        &b, "</strong>.</p>\n<p>The app asks for these scopes on the proxy:</p>\n<ul id=\"scopes\">");
    for (const char *s = scope_text; *s != '\0';) {
        const char *sp = strchr(s, ' ');
        size_t n = sp != NULL ? (size_t)(sp - s) : strlen(s);
        char *one = bp_strndup(s, n);
        bp_buf_append_str(&b, "<li><code>");
        bp_oauth__html_escape(&b, one);
        bp_buf_append_str(&b, "</code></li>");
        bp_free(one);
        s += n;
        while (*s == ' ') {
            s++;
        }
    }
    bp_buf_append_str(&b, "</ul>\n<p>It will be sent back to <code>");
    bp_oauth__html_escape(&b, p->redirect_uri != NULL ? p->redirect_uri : "");
    bp_buf_append_str(&b, "</code>.</p>\n<form method=\"post\" action=\"/oauth/authorize\">\n");
    carry(&b, p, csrf);
    bp_buf_append_str(&b, "<button type=\"submit\" name=\"action\" value=\"approve\">Approve</button>"
                          "<button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\n</form>\n");
    finish(out, 200, &b, form_origin);
}

void
bp_oauth__page_error(struct bp_oauth_response *out, int status, const char *title, const char *message)
{
    struct bp_buf b;

    begin(&b, title);
    bp_buf_append_str(&b, "<h1>");
    bp_oauth__html_escape(&b, title);
    bp_buf_append_str(&b, "</h1>\n<p class=\"msg\" id=\"error\">");
    bp_oauth__html_escape(&b, message);
    bp_buf_append_str(&b, "</p>\n");
    finish(out, status, &b, NULL);
}
