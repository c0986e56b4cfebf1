/* The OAuth endpoints through the public handler (oauth.h) against a temporary SQLite store:
 * every RFC 6749 §5.2 error, token families (rotation, reuse detection, code reuse), revocation,
 * introspection and the authorize pages, without HTTP. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "auth/auth.h"
#include "config/config.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "oauth/oauth-int.h"
#include "oauth/oauth.h"
#include "store/store.h"
#include "testdb.h"

#define REDIRECT "http://127.0.0.1:9999/cb"
#define VERIFIER "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
#define CHALLENGE "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
#define PASSWORD "correct horse battery"

struct fx {
    struct bp_testdb db;
    struct bp_config cfg;
    struct bp_store *s;
    struct bp_oauth *o;
    char secret_a[BP_OAUTH_TOKEN_LEN + 1]; /* client_A: every grant, proxy:read,proxy:write */
    char secret_b[BP_OAUTH_TOKEN_LEN + 1]; /* client_B: client_credentials only, proxy:read */
    char secret_c[BP_OAUTH_TOKEN_LEN + 1]; /* client_C: revoked */
    char operator_id[64];
};

static struct fx *F;
/* The sign-in throttle is process-wide: each test signs in from its own address. */
static char peer[32];
static int n_setups;

static void
add_client(struct fx *f, const char *id, const char *scopes, const char *grants, bool with_redirect, char *secret)
{
    char *uris[] = {(char *)REDIRECT, (char *)"http://127.0.0.1:9999/other?x=1"};
    struct bp_client_rec c = {0};

    assert_int_equal(bp_oauth_token_generate(BP_CLIENT_SECRET_PREFIX, secret), BP_OK);
    c.id = (char *)id;
    c.name = (char *)"Test <App>";
    bp_digest(secret, strlen(secret), c.secret_digest);
    c.scopes = (char *)scopes;
    c.redirect_uris = with_redirect ? uris : NULL;
    c.n_redirect_uris = with_redirect ? 2 : 0;
    c.grant_types = (char *)grants;
    c.created_at = bp_clock_wall_s();
    assert_int_equal(bp_store_client_insert(f->s, &c), BP_OK);
}

static int
setup(void **state)
{
    struct fx *f = bp_calloc(1, sizeof(*f));
    struct bp_operator_rec op = {0};
    char ulid[BP_ULID_LEN + 1];

    bp_testdb_init(&f->db, "oauth_test");
    f->s = bp_testdb_open(&f->db);
    f->cfg.db = f->db.path;
    f->cfg.listen_host = (char *)"127.0.0.1";
    f->cfg.listen_port = 8080;
    f->cfg.oauth_access_token_ttl_ms = 3600 * 1000;
    f->cfg.oauth_refresh_token_ttl_ms = 30LL * 86400 * 1000;
    f->cfg.oauth_code_ttl_ms = 600 * 1000;
    f->cfg.oauth_session_ttl_ms = 1800 * 1000;
    f->cfg.oauth_max_tokens_per_client = 100;

    add_client(f, "client_A", "proxy:read,proxy:write", "client_credentials,authorization_code,refresh_token", true,
               f->secret_a);
    add_client(f, "client_B", "proxy:read", "client_credentials", false, f->secret_b);
    add_client(f, "client_C", "*", "client_credentials", false, f->secret_c);
    assert_int_equal(bp_store_client_revoke(f->s, "client_C", bp_clock_wall_s()), BP_OK);

    assert_int_equal(bp_ulid(ulid), BP_OK);
    snprintf(f->operator_id, sizeof(f->operator_id), "operator_%s", ulid);
    op.id = f->operator_id;
    op.name = (char *)"alice";
    assert_int_equal(bp_password_hash(PASSWORD, strlen(PASSWORD), &op.password_hash), BP_OK);
    op.created_at = op.updated_at = bp_clock_wall_s();
    assert_int_equal(bp_store_operator_insert(f->s, &op), BP_OK);
    bp_free(op.password_hash);

    assert_int_equal(bp_oauth_open(&f->cfg, &f->o), BP_OK);
    snprintf(peer, sizeof(peer), "192.0.2.%d", ++n_setups);
    /* alice's sign-in failures are process-wide too: each test starts with none. */
    bp_oauth__throttle_success("alice", NULL, bp_clock_mono_ms());
    F = f;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    bp_oauth_close(f->o);
    bp_store_close(f->s);
    (void)bp_testdb_cleanup(&f->db);
    bp_free(f);
    return 0;
}

/* ---- request helpers ---- */

struct res {
    struct bp_oauth_response r;
    json_t *json;
};

static void
res_free(struct res *x)
{
    bp_oauth_response_cleanup(&x->r);
    json_decref(x->json);
    x->json = NULL;
}

static char *
basic_for(const char *id, const char *secret)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char raw[256];
    static char out[512];
    size_t n = (size_t)snprintf(raw, sizeof(raw), "%s:%s", id, secret);
    size_t o = (size_t)snprintf(out, sizeof(out), "Basic ");

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
        v |= i + 1 < n ? (uint32_t)(unsigned char)raw[i + 1] << 8 : 0;
        v |= i + 2 < n ? (uint32_t)(unsigned char)raw[i + 2] : 0;
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static struct res
call(const char *method, const char *path, const char *query, const char *ctype, const char *auth,
     const char *cookie, const char *body)
{
    struct bp_oauth_request req = {0};
    struct res x = {0};

    req.method = method;
    req.method_len = strlen(method);
    req.path = path;
    req.path_len = strlen(path);
    req.query = query;
    req.query_len = query != NULL ? strlen(query) : 0;
    req.content_type = ctype;
    req.content_type_len = ctype != NULL ? strlen(ctype) : 0;
    req.authorization = auth;
    req.authorization_len = auth != NULL ? strlen(auth) : 0;
    req.n_authorization = auth != NULL ? 1 : 0;
    req.cookie = cookie;
    req.cookie_len = cookie != NULL ? strlen(cookie) : 0;
    req.body = body;
    req.body_len = body != NULL ? strlen(body) : 0;
    req.peer = peer;
    bp_oauth_handle(F->o, &req, &x.r);
    if (x.r.content_type != NULL && strcmp(x.r.content_type, "application/json") == 0) {
        x.json = json_loadb(x.r.body, x.r.body_len, 0, NULL);
        assert_non_null(x.json);
    }
    return x;
}

#define FORM "application/x-www-form-urlencoded"

static struct res
post_a(const char *path, const char *body)
{
    return call("POST", path, NULL, FORM, basic_for("client_A", F->secret_a), NULL, body);
}

static const char *
jstr(const struct res *x, const char *key)
{
    json_t *v = json_object_get(x->json, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool
has_header(const struct res *x, const char *line)
{
    return x->r.headers != NULL && strstr(x->r.headers, line) != NULL;
}

static void
assert_error(struct res *x, int status, const char *error)
{
    assert_int_equal(x->r.status, status);
    assert_non_null(x->json);
    assert_string_equal(jstr(x, "error"), error);
    assert_true(has_header(x, "Cache-Control: no-store\r\n"));
    if (status == 401) {
        assert_true(has_header(x, "WWW-Authenticate: Basic realm=\"blnkproxy\"\r\n"));
    }
    res_free(x);
}

static void
assert_token_error(const char *auth, const char *body, int status, const char *error)
{
    struct res x = call("POST", "/oauth/token", NULL, FORM, auth, NULL, body);
    assert_error(&x, status, error);
}

static bool
introspect_active(const char *token)
{
    char body[256];
    struct res x;
    bool active;

    snprintf(body, sizeof(body), "token=%s", token);
    x = post_a("/oauth/introspect", body);
    assert_int_equal(x.r.status, 200);
    active = json_is_true(json_object_get(x.json, "active"));
    res_free(&x);
    return active;
}

/* ---- client_credentials ---- */

static void
test_client_credentials(void **state)
{
    struct res x = post_a("/oauth/token", "grant_type=client_credentials");

    assert_int_equal(x.r.status, 200);
    assert_true(x.r.tables_changed);
    assert_true(has_header(&x, "Cache-Control: no-store\r\n"));
    assert_true(has_header(&x, "Pragma: no-cache\r\n"));
    assert_true(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, jstr(&x, "access_token"), 72));
    assert_string_equal(jstr(&x, "token_type"), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(x.json, "expires_in")), 3600);
    assert_string_equal(jstr(&x, "scope"), "proxy:read proxy:write");
    assert_null(json_object_get(x.json, "refresh_token"));
    assert_true(introspect_active(jstr(&x, "access_token")));
    res_free(&x);

    /* client_secret_post, narrower scope. */
    char body[256];
    snprintf(body, sizeof(body), "grant_type=client_credentials&scope=proxy%%3Aread&client_id=client_B&client_secret=%s",
             F->secret_b);
    x = call("POST", "/oauth/token", NULL, FORM "; charset=UTF-8", NULL, NULL, body);
    assert_int_equal(x.r.status, 200);
    assert_string_equal(jstr(&x, "scope"), "proxy:read");
    res_free(&x);
}

static void
test_token_lifetime_capped_by_client_expiry(void **state)
{
    struct res x;

    assert_int_equal(bp_store_client_set_expiry(F->s, "client_A", bp_clock_wall_s() + 100), BP_OK);
    x = post_a("/oauth/token", "grant_type=client_credentials");
    assert_int_equal(x.r.status, 200);
    assert_in_range(json_integer_value(json_object_get(x.json, "expires_in")), 98, 100);
    res_free(&x);
}

/* ---- RFC 6749 §5.2 errors ---- */

static void
test_errors_invalid_request(void **state)
{
    char auth[512];
    char both[256];
    struct res x;

    snprintf(auth, sizeof(auth), "%s", basic_for("client_A", F->secret_a));
    assert_token_error(auth, "", 400, "invalid_request");                             /* no grant_type */
    assert_token_error(auth, "grant_type=client_credentials&grant_type=client_credentials", 400, "invalid_request");
    assert_token_error(auth, "grant_type=%zz", 400, "invalid_request");
    assert_token_error(auth, "grant_type=authorization_code&redirect_uri=" REDIRECT "&code_verifier=" VERIFIER, 400,
                       "invalid_request");                                               /* no code */
    assert_token_error(auth, "grant_type=authorization_code&code=abc&redirect_uri=x&code_verifier=short", 400,
                       "invalid_request");                                               /* verifier syntax */
    assert_token_error(auth, "grant_type=refresh_token", 400, "invalid_request");
    snprintf(both, sizeof(both), "grant_type=client_credentials&client_id=client_A&client_secret=%s", F->secret_a);
    assert_token_error(auth, both, 400, "invalid_request");                           /* two auth methods */

    x = call("POST", "/oauth/token", NULL, "application/json", auth, NULL, "{}");
    assert_error(&x, 400, "invalid_request");
    x = call("POST", "/oauth/token", NULL, "application/x-www-form-urlencodedx", auth, NULL, "grant_type=x");
    assert_error(&x, 400, "invalid_request");
    x = call("GET", "/oauth/token", NULL, NULL, auth, NULL, NULL);
    assert_int_equal(x.r.status, 405);
    assert_true(has_header(&x, "Allow: POST\r\n"));
    res_free(&x);
}

static void
test_errors_invalid_client(void **state)
{
    char body[256];

    assert_token_error(NULL, "grant_type=client_credentials", 401, "invalid_client");
    assert_token_error(basic_for("client_A", F->secret_b), "grant_type=client_credentials", 401, "invalid_client");
    assert_token_error(basic_for("client_Z", F->secret_a), "grant_type=client_credentials", 401, "invalid_client");
    assert_token_error(basic_for("client_C", F->secret_c), "grant_type=client_credentials", 401, "invalid_client");
    assert_token_error("Bearer abc", "grant_type=client_credentials", 401, "invalid_client");
    assert_token_error("Basic !!!", "grant_type=client_credentials", 401, "invalid_client");
    /* Form method: id without secret, wrong secret, revoked client. */
    assert_token_error(NULL, "grant_type=client_credentials&client_id=client_A", 401, "invalid_client");
    snprintf(body, sizeof(body), "grant_type=client_credentials&client_id=client_A&client_secret=%s", F->secret_b);
    assert_token_error(NULL, body, 401, "invalid_client");
    snprintf(body, sizeof(body), "grant_type=client_credentials&client_id=client_C&client_secret=%s", F->secret_c);
    assert_token_error(NULL, body, 401, "invalid_client");
    /* Expired client. */
    assert_int_equal(bp_store_client_set_expiry(F->s, "client_B", bp_clock_wall_s() - 1), BP_OK);
    assert_token_error(basic_for("client_B", F->secret_b), "grant_type=client_credentials", 401, "invalid_client");
}

static void
test_errors_grant_and_scope(void **state)
{
    char a[512];

    snprintf(a, sizeof(a), "%s", basic_for("client_A", F->secret_a));
    assert_token_error(a, "grant_type=password&username=x&password=y", 400, "unsupported_grant_type");
    assert_token_error(a, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code", 400,
                       "unsupported_grant_type");
    assert_token_error(basic_for("client_B", F->secret_b), "grant_type=refresh_token&refresh_token=x", 400,
                       "unauthorized_client");
    assert_token_error(basic_for("client_B", F->secret_b), "grant_type=authorization_code&code=x", 400,
                       "unauthorized_client");
    assert_token_error(a, "grant_type=client_credentials&scope=*", 400, "invalid_scope");
    assert_token_error(a, "grant_type=client_credentials&scope=proxy%3Aadmin", 400, "invalid_scope");
    assert_token_error(a, "grant_type=client_credentials&scope=proxy%3Aread,proxy%3Awrite", 400, "invalid_scope");
    assert_token_error(basic_for("client_B", F->secret_b), "grant_type=client_credentials&scope=proxy%3Awrite", 400,
                       "invalid_scope");
    assert_token_error(a, "grant_type=authorization_code&code=0000&redirect_uri=" REDIRECT "&code_verifier=" VERIFIER,
                       400, "invalid_grant");
    assert_token_error(a, "grant_type=refresh_token&refresh_token=blnk_rt_00", 400, "invalid_grant");
}

/* ---- authorize pages ---- */

static char *
header_value(const struct res *x, const char *name)
{
    const char *h = x->r.headers;
    size_t n = strlen(name);

    while (h != NULL && *h != '\0') {
        const char *end = strstr(h, "\r\n");
        if (strncmp(h, name, n) == 0 && h[n] == ':') {
            return bp_strndup(h + n + 2, (size_t)(end - h) - n - 2);
        }
        h = end + 2;
    }
    return NULL;
}

/* "blnkproxy_session=<hex>" from Set-Cookie (allocated), checking its flags. */
static char *
session_cookie(const struct res *x)
{
    char *sc = header_value(x, "Set-Cookie");
    char *semi;

    assert_non_null(sc);
    assert_non_null(strstr(sc, "; Path=/oauth"));
    assert_non_null(strstr(sc, "; HttpOnly"));
    assert_non_null(strstr(sc, "; SameSite=Lax"));
    assert_null(strstr(sc, "Secure"));
    semi = strchr(sc, ';');
    *semi = '\0';
    return sc;
}

static void
csrf_of(const struct res *x, char out[65])
{
    const char *p = strstr(x->r.body, "name=\"csrf\" value=\"");

    assert_non_null(p);
    memcpy(out, p + 19, 64);
    out[64] = '\0';
}

#define AUTHZ_Q "response_type=code&client_id=client_A&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb" \
                "&state=st%2Fx&code_challenge=" CHALLENGE "&code_challenge_method=S256"
#define AUTHZ_F "response_type=code&client_id=client_A&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb" \
                "&state=st%2Fx&code_challenge=" CHALLENGE "&code_challenge_method=S256&scope=proxy%3Aread"

/* Signs in through the pages; returns the signed-in cookie (allocated) and its CSRF token. */
static char *
sign_in(char csrf[65])
{
    struct res x = call("GET", "/oauth/authorize", AUTHZ_Q "&scope=proxy%3Aread", NULL, NULL, NULL, NULL);
    char *cookie;
    char *cookie2;
    char body[1024];

    assert_int_equal(x.r.status, 200);
    assert_string_equal(x.r.content_type, "text/html; charset=utf-8");
    assert_true(has_header(&x, "X-Frame-Options: DENY\r\n"));
    assert_true(has_header(&x, "Cache-Control: no-store\r\n"));
    assert_true(has_header(&x, "form-action 'self' http://127.0.0.1:9999;"));
    assert_non_null(strstr(x.r.body, "name=\"password\""));
    cookie = session_cookie(&x);
    csrf_of(&x, csrf);
    res_free(&x);

    snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=alice&password=correct+horse+battery", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 200);
    assert_non_null(strstr(x.r.body, "value=\"approve\""));
    assert_non_null(strstr(x.r.body, "Test &lt;App&gt;"));
    cookie2 = session_cookie(&x);
    assert_string_not_equal(cookie, cookie2); /* rotated at sign-in */
    csrf_of(&x, csrf);
    res_free(&x);
    bp_free(cookie);
    return cookie2;
}

/* Approves and returns the code from the redirect (allocated). */
static char *
approve_code(const char *cookie, const char *csrf)
{
    char body[1024];
    struct res x;
    char *loc;
    char *code;
    const char *p;

    snprintf(body, sizeof(body), "%s&csrf=%s&action=approve", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 302);
    loc = header_value(&x, "Location");
    assert_non_null(loc);
    assert_true(strncmp(loc, REDIRECT "?code=", strlen(REDIRECT "?code=")) == 0);
    p = loc + strlen(REDIRECT "?code=");
    code = bp_strndup(p, 64);
    assert_string_equal(p + 64, "&state=st%2Fx");
    bp_free(loc);
    res_free(&x);
    return code;
}

static json_t *
exchange(const char *code, const char *verifier, int want_status, const char *want_error)
{
    char body[512];
    struct res x;
    json_t *j;

    snprintf(body, sizeof(body),
             "grant_type=authorization_code&code=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A9999%%2Fcb"
             "&code_verifier=%s",
             code, verifier);
    x = post_a("/oauth/token", body);
    assert_int_equal(x.r.status, want_status);
    if (want_error != NULL) {
        assert_string_equal(jstr(&x, "error"), want_error);
    }
    j = json_incref(x.json);
    res_free(&x);
    return j;
}

static const char *
js(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

static void
test_authorization_code_flow_and_code_reuse(void **state)
{
    char csrf[65];
    char *cookie = sign_in(csrf);
    char *code = approve_code(cookie, csrf);
    json_t *t = exchange(code, VERIFIER, 200, NULL);
    json_t *again;

    assert_true(bp_oauth_token_is_well_formed(BP_ACCESS_TOKEN_PREFIX, js(t, "access_token"), 72));
    assert_true(bp_oauth_token_is_well_formed(BP_REFRESH_TOKEN_PREFIX, js(t, "refresh_token"), 72));
    assert_string_equal(js(t, "scope"), "proxy:read");
    assert_true(introspect_active(js(t, "access_token")));

    /* Introspection reports the operator as subject. */
    char body[256];
    snprintf(body, sizeof(body), "token=%s", js(t, "access_token"));
    struct res x = post_a("/oauth/introspect", body);
    assert_string_equal(jstr(&x, "sub"), F->operator_id);
    assert_string_equal(jstr(&x, "client_id"), "client_A");
    assert_string_equal(jstr(&x, "token_type"), "Bearer");
    assert_string_equal(jstr(&x, "scope"), "proxy:read");
    res_free(&x);

    /* Second use: refused, and everything issued with the code is revoked. */
    again = exchange(code, VERIFIER, 400, "invalid_grant");
    json_decref(again);
    assert_false(introspect_active(js(t, "access_token")));
    assert_false(introspect_active(js(t, "refresh_token")));

    /* Signed-in session: GET goes straight to consent. */
    x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, cookie, NULL);
    assert_int_equal(x.r.status, 200);
    assert_non_null(strstr(x.r.body, "value=\"approve\""));
    res_free(&x);

    json_decref(t);
    bp_free(code);
    bp_free(cookie);
}

static void
test_code_checks(void **state)
{
    char csrf[65];
    char *cookie = sign_in(csrf);
    char *code = approve_code(cookie, csrf);
    char body[512];
    json_t *j;
    struct res x;

    /* Wrong verifier: invalid_grant, and the code is burnt. */
    j = exchange(code, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 400, "invalid_grant");
    json_decref(j);
    j = exchange(code, VERIFIER, 400, "invalid_grant");
    json_decref(j);
    bp_free(code);

    /* Redirect URI mismatch. */
    code = approve_code(cookie, csrf);
    snprintf(body, sizeof(body),
             "grant_type=authorization_code&code=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A9999%%2Fother%%3Fx%%3D1"
             "&code_verifier=" VERIFIER,
             code);
    x = post_a("/oauth/token", body);
    assert_error(&x, 400, "invalid_grant");
    bp_free(code);

    /* Another client's code. */
    code = approve_code(cookie, csrf);
    assert_int_equal(bp_store_client_set_expiry(F->s, "client_B", 0), BP_OK);
    snprintf(body, sizeof(body),
             "grant_type=authorization_code&code=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A9999%%2Fcb"
             "&code_verifier=" VERIFIER "&client_id=client_A&client_secret=%s",
             code, F->secret_a);
    /* (client_A via the form method works; the point is the Basic client below) */
    x = call("POST", "/oauth/token", NULL, FORM, basic_for("client_B", F->secret_b), NULL,
             "grant_type=authorization_code&code=x&redirect_uri=y&code_verifier=" VERIFIER);
    assert_error(&x, 400, "unauthorized_client");
    x = call("POST", "/oauth/token", NULL, FORM, NULL, NULL, body);
    assert_int_equal(x.r.status, 200);
    res_free(&x);
    bp_free(code);
    bp_free(cookie);
}

static void
test_refresh_rotation_and_reuse(void **state)
{
    char csrf[65];
    char *cookie = sign_in(csrf);
    char *code = approve_code(cookie, csrf);
    json_t *t1 = exchange(code, VERIFIER, 200, NULL);
    char body[256];
    struct res r2;
    struct res x;

    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", js(t1, "refresh_token"));
    r2 = post_a("/oauth/token", body);
    assert_int_equal(r2.r.status, 200);
    assert_true(r2.r.tables_changed);
    assert_string_not_equal(jstr(&r2, "refresh_token"), js(t1, "refresh_token"));
    assert_string_not_equal(jstr(&r2, "access_token"), js(t1, "access_token"));
    assert_false(introspect_active(js(t1, "refresh_token"))); /* used */
    assert_true(introspect_active(jstr(&r2, "refresh_token")));
    assert_true(introspect_active(jstr(&r2, "access_token")));

    /* Narrowing scope on refresh is fine; widening is invalid_scope. */
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s&scope=proxy%%3Awrite",
             jstr(&r2, "refresh_token"));
    x = post_a("/oauth/token", body);
    assert_error(&x, 400, "invalid_scope");

    /* Another client presenting it: invalid_grant, family untouched. */
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", jstr(&r2, "refresh_token"));
    assert_token_error(basic_for("client_B", F->secret_b), body, 400, "unauthorized_client");

    /* Reuse of the rotated token: invalid_grant and the whole family is revoked. */
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", js(t1, "refresh_token"));
    x = post_a("/oauth/token", body);
    assert_error(&x, 400, "invalid_grant");
    assert_false(introspect_active(jstr(&r2, "access_token")));
    assert_false(introspect_active(jstr(&r2, "refresh_token")));
    /* And the newest refresh token no longer works. */
    snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", jstr(&r2, "refresh_token"));
    x = post_a("/oauth/token", body);
    assert_error(&x, 400, "invalid_grant");

    res_free(&r2);
    json_decref(t1);
    bp_free(code);
    bp_free(cookie);
}

static void
test_revoke_and_introspect(void **state)
{
    struct res t = post_a("/oauth/token", "grant_type=client_credentials");
    char body[256];
    struct res x;

    assert_int_equal(t.r.status, 200);
    snprintf(body, sizeof(body), "token=%s", jstr(&t, "access_token"));
    /* Another client can neither see nor revoke it. */
    x = call("POST", "/oauth/introspect", NULL, FORM, basic_for("client_B", F->secret_b), NULL, body);
    assert_int_equal(x.r.status, 200);
    assert_false(json_is_true(json_object_get(x.json, "active")));
    assert_int_equal(json_object_size(x.json), 1);
    res_free(&x);
    x = call("POST", "/oauth/revoke", NULL, FORM, basic_for("client_B", F->secret_b), NULL, body);
    assert_int_equal(x.r.status, 200);
    res_free(&x);
    assert_true(introspect_active(jstr(&t, "access_token")));

    x = post_a("/oauth/introspect", body);
    assert_string_equal(jstr(&x, "sub"), "client_A");
    assert_true(json_integer_value(json_object_get(x.json, "exp")) > bp_clock_wall_s());
    assert_true(json_integer_value(json_object_get(x.json, "iat")) <= bp_clock_wall_s());
    res_free(&x);

    x = post_a("/oauth/revoke", body);
    assert_int_equal(x.r.status, 200);
    assert_int_equal(x.r.body_len, 0);
    res_free(&x);
    assert_false(introspect_active(jstr(&t, "access_token")));
    /* Unknown tokens: still 200. Missing token: invalid_request. No auth: invalid_client. */
    x = post_a("/oauth/revoke", "token=blnk_at_nope");
    assert_int_equal(x.r.status, 200);
    res_free(&x);
    x = post_a("/oauth/revoke", "token_type_hint=access_token");
    assert_error(&x, 400, "invalid_request");
    x = post_a("/oauth/introspect", "");
    assert_error(&x, 400, "invalid_request");
    x = call("POST", "/oauth/introspect", NULL, FORM, NULL, NULL, body);
    assert_error(&x, 401, "invalid_client");
    x = call("POST", "/oauth/revoke", NULL, FORM, basic_for("client_A", F->secret_b), NULL, body);
    assert_error(&x, 401, "invalid_client");
    res_free(&t);
}

static void
test_authorize_errors(void **state)
{
    struct res x;
    char *loc;

    /* Unknown client, unregistered redirect: a page, never a redirect. */
    x = call("GET", "/oauth/authorize", "response_type=code&client_id=client_Z&redirect_uri=" REDIRECT, NULL, NULL,
             NULL, NULL);
    assert_int_equal(x.r.status, 400);
    assert_null(header_value(&x, "Location"));
    res_free(&x);
    x = call("GET", "/oauth/authorize",
             "response_type=code&client_id=client_A&redirect_uri=http%3A%2F%2Fevil.example%2Fcb", NULL, NULL, NULL,
             NULL);
    assert_int_equal(x.r.status, 400);
    assert_null(header_value(&x, "Location"));
    res_free(&x);
    x = call("GET", "/oauth/authorize", "response_type=code&client_id=client_C&redirect_uri=" REDIRECT, NULL, NULL,
             NULL, NULL);
    assert_int_equal(x.r.status, 400);
    res_free(&x);

    /* Known client + registered redirect: errors go back to the app. */
    x = call("GET", "/oauth/authorize",
             "response_type=token&client_id=client_A&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb&state=s1", NULL,
             NULL, NULL, NULL);
    assert_int_equal(x.r.status, 302);
    loc = header_value(&x, "Location");
    assert_true(strncmp(loc, REDIRECT "?error=unsupported_response_type&", strlen(REDIRECT) + 32) == 0);
    assert_non_null(strstr(loc, "&state=s1"));
    bp_free(loc);
    res_free(&x);
    x = call("GET", "/oauth/authorize",
             "response_type=code&client_id=client_A&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fother%3Fx%3D1"
             "&code_challenge=" CHALLENGE "&code_challenge_method=plain",
             NULL, NULL, NULL, NULL);
    loc = header_value(&x, "Location");
    assert_true(strncmp(loc, "http://127.0.0.1:9999/other?x=1&error=invalid_request&", 53) == 0);
    bp_free(loc);
    res_free(&x);
    x = call("GET", "/oauth/authorize", AUTHZ_Q "&scope=%2A", NULL, NULL, NULL, NULL);
    loc = header_value(&x, "Location");
    assert_non_null(strstr(loc, "?error=invalid_scope&"));
    bp_free(loc);
    res_free(&x);
}

static void
test_csrf_and_wrong_password(void **state)
{
    struct res x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, NULL, NULL);
    char *cookie = session_cookie(&x);
    char csrf[65];
    char body[1024];

    csrf_of(&x, csrf);
    res_free(&x);
    /* No CSRF token, a wrong one, and no cookie: all refused. */
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, AUTHZ_F "&action=login&name=alice&password=" PASSWORD);
    assert_int_equal(x.r.status, 403);
    res_free(&x);
    snprintf(body, sizeof(body), "%s&csrf=%064d&action=login&name=alice&password=x", AUTHZ_F, 0);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 403);
    res_free(&x);
    snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=alice&password=correct+horse+battery", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, NULL, body);
    assert_int_equal(x.r.status, 403);
    res_free(&x);
    /* Approve before signing in. */
    snprintf(body, sizeof(body), "%s&csrf=%s&action=approve", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 403);
    res_free(&x);
    /* Wrong password: the login form again with 401. Unknown name: the same. */
    snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=alice&password=wrong-password", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 401);
    assert_non_null(strstr(x.r.body, "Invalid name or password"));
    assert_null(header_value(&x, "Set-Cookie"));
    res_free(&x);
    snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=mallory&password=wrong-password", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 401);
    res_free(&x);
    bp_free(cookie);
}

static void
test_throttle(void **state)
{
    struct res x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, NULL, NULL);
    char *cookie = session_cookie(&x);
    char csrf[65];
    char body[1024];

    csrf_of(&x, csrf);
    res_free(&x);
    /* The throttle directly: a fresh name is blocked after the maximum, until its window ends. */
    for (int i = 0; i < BP_OAUTH_THROTTLE_MAX_FAILURES; i++) {
        assert_true(bp_oauth__throttle_reserve("throttle-victim", NULL, bp_clock_mono_ms()));
    }
    assert_false(bp_oauth__throttle_reserve("throttle-victim", NULL, bp_clock_mono_ms()));
    assert_true(bp_oauth__throttle_blocked("throttle-victim", NULL, bp_clock_mono_ms()));
    assert_false(bp_oauth__throttle_blocked("throttle-victim", NULL, bp_clock_mono_ms() + BP_OAUTH_THROTTLE_WINDOW_MS));
    assert_false(bp_oauth__throttle_blocked("someone-else", "198.51.100.7", bp_clock_mono_ms()));

    /* Through the page: alice fails until blocked, then the right password gets 429. */
    bp_oauth__throttle_success("alice", NULL, bp_clock_mono_ms());
    int statuses_401 = 0;
    for (int i = 0; i < BP_OAUTH_THROTTLE_MAX_FAILURES; i++) {
        snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=alice&password=wrong-password", AUTHZ_F, csrf);
        x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
        statuses_401 += x.r.status == 401;
        res_free(&x);
    }
    assert_int_equal(statuses_401, BP_OAUTH_THROTTLE_MAX_FAILURES);
    snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=alice&password=correct+horse+battery", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 429);
    assert_non_null(strstr(x.r.body, "Too many sign-in attempts"));
    res_free(&x);
    bp_free(cookie);
}

/* ---- security review fixes ---- */

static struct res
client_credentials_a(void)
{
    struct res x = post_a("/oauth/token", "grant_type=client_credentials");

    assert_int_equal(x.r.status, 200);
    return x;
}

/* oauth.max_tokens_per_client: issuing the (cap+1)-th live access token revokes the oldest. */
static void
test_max_tokens_per_client(void **state)
{
    struct res t[4];
    struct res other;
    json_t *code_tokens;
    char csrf[65];
    char *cookie;
    char *code;

    F->cfg.oauth_max_tokens_per_client = 3;
    other = call("POST", "/oauth/token", NULL, FORM, basic_for("client_B", F->secret_b), NULL,
                 "grant_type=client_credentials");
    assert_int_equal(other.r.status, 200);
    for (int i = 0; i < 4; i++) {
        t[i] = client_credentials_a();
    }
    assert_false(introspect_active(jstr(&t[0], "access_token")));
    assert_true(introspect_active(jstr(&t[1], "access_token")));
    assert_true(introspect_active(jstr(&t[2], "access_token")));
    assert_true(introspect_active(jstr(&t[3], "access_token")));

    /* Any grant counts: an authorization_code exchange pushes out the next oldest, and the
     * refresh token it came with is not an access token (not counted, not revoked). */
    cookie = sign_in(csrf);
    code = approve_code(cookie, csrf);
    code_tokens = exchange(code, VERIFIER, 200, NULL);
    assert_false(introspect_active(jstr(&t[1], "access_token")));
    assert_true(introspect_active(jstr(&t[2], "access_token")));
    assert_true(introspect_active(js(code_tokens, "access_token")));
    assert_true(introspect_active(js(code_tokens, "refresh_token")));

    /* Another client's tokens are its own business. */
    char body[256];
    snprintf(body, sizeof(body), "token=%s", jstr(&other, "access_token"));
    struct res x = call("POST", "/oauth/introspect", NULL, FORM, basic_for("client_B", F->secret_b), NULL, body);
    assert_true(json_is_true(json_object_get(x.json, "active")));
    res_free(&x);

    json_decref(code_tokens);
    bp_free(code);
    bp_free(cookie);
    for (int i = 0; i < 4; i++) {
        res_free(&t[i]);
    }
    res_free(&other);
}

static char *
family_of(const char *token)
{
    unsigned char d[BP_DIGEST_LEN];
    struct bp_token_rec rec = {0};
    char *family;

    bp_digest(token, strlen(token), d);
    assert_int_equal(bp_store_token_get_by_digest(F->s, d, &rec), BP_OK);
    family = bp_strdup(rec.family_id);
    bp_token_rec_cleanup(&rec);
    return family;
}

static size_t
live_token_count(void)
{
    struct bp_live_token *live = NULL;
    size_t n = 0;

    assert_int_equal(bp_store_token_list_live(F->s, bp_clock_wall_s(), &live, &n), BP_OK);
    bp_live_tokens_free(live, n);
    return n;
}

struct refresh_job {
    char body[256];
    struct bp_oauth_response r;
};

static void *
refresh_thread(void *arg)
{
    struct refresh_job *job = arg;
    struct bp_oauth_request req = {0};

    req.method = "POST";
    req.method_len = 4;
    req.path = "/oauth/token";
    req.path_len = strlen(req.path);
    req.content_type = FORM;
    req.content_type_len = strlen(FORM);
    req.authorization = basic_for("client_A", F->secret_a);
    req.authorization_len = strlen(req.authorization);
    req.n_authorization = 1;
    req.body = job->body;
    req.body_len = strlen(job->body);
    req.peer = peer;
    bp_oauth_handle(F->o, &req, &job->r);
    return NULL;
}

/* A refresh token whose family was revoked issues nothing, also when the revocation (a reuse of
 * an older token, on another connection) commits while the refresh is in flight. */
static void
test_refresh_with_revoked_family(void **state)
{
    char csrf[65];
    char *cookie = sign_in(csrf);
    char *code = approve_code(cookie, csrf);
    json_t *t1 = exchange(code, VERIFIER, 200, NULL);
    char *family = family_of(js(t1, "refresh_token"));
    struct refresh_job job = {0};
    struct bp_store *other = NULL;
    pthread_t th;
    char err[256];
    size_t live;
    json_t *j;

    /* Plain case: revoked before the request. */
    assert_int_equal(bp_store_token_revoke_family(F->s, family, bp_clock_wall_s(), NULL), BP_OK);
    live = live_token_count();
    snprintf(job.body, sizeof(job.body), "grant_type=refresh_token&refresh_token=%s", js(t1, "refresh_token"));
    struct res x = post_a("/oauth/token", job.body);
    assert_error(&x, 400, "invalid_grant");
    assert_int_equal(live_token_count(), live);
    json_decref(t1);
    bp_free(family);
    bp_free(code);

    /* In flight: another connection holds the write lock while the refresh starts, revokes the
     * family, then commits. The refresh must see the revocation, not rotate past it. */
    code = approve_code(cookie, csrf);
    t1 = exchange(code, VERIFIER, 200, NULL);
    family = family_of(js(t1, "refresh_token"));
    snprintf(job.body, sizeof(job.body), "grant_type=refresh_token&refresh_token=%s", js(t1, "refresh_token"));
    assert_int_equal(bp_store_open(F->db.path, 0, &other, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_store_begin(other), BP_OK);
    assert_int_equal(pthread_create(&th, NULL, refresh_thread, &job), 0);
    usleep(300 * 1000); /* the refresh reaches its transaction and waits for the lock */
    assert_int_equal(bp_store_token_revoke_family(other, family, bp_clock_wall_s(), NULL), BP_OK);
    assert_int_equal(bp_store_commit(other), BP_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(job.r.status, 400);
    j = json_loadb(job.r.body, job.r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid_grant");
    json_decref(j);
    bp_oauth_response_cleanup(&job.r);
    assert_false(introspect_active(js(t1, "access_token")));
    assert_false(introspect_active(js(t1, "refresh_token")));
    /* Nothing of the family is live. */
    struct bp_live_token *l = NULL;
    size_t n = 0;
    assert_int_equal(bp_store_token_list_live(F->s, bp_clock_wall_s(), &l, &n), BP_OK);
    for (size_t i = 0; i < n; i++) {
        char *fam_i;
        unsigned char d[BP_DIGEST_LEN];
        struct bp_token_rec rec = {0};
        memcpy(d, l[i].digest, sizeof(d));
        assert_int_equal(bp_store_token_get_by_digest(F->s, d, &rec), BP_OK);
        fam_i = rec.family_id;
        assert_string_not_equal(fam_i, family);
        bp_token_rec_cleanup(&rec);
    }
    bp_live_tokens_free(l, n);

    bp_store_close(other);
    json_decref(t1);
    bp_free(family);
    bp_free(code);
    bp_free(cookie);
}

/* A client allowed authorization_code but not refresh_token gets no refresh token. */
static void
test_code_without_refresh_grant(void **state)
{
    char secret[BP_OAUTH_TOKEN_LEN + 1];
    struct bp_code_rec rec = {0};
    char code[65];
    char body[512];
    struct res x;

    add_client(F, "client_D", "proxy:read", "authorization_code", true, secret);
    assert_int_equal(bp_rand_hex(code, 32), BP_OK);
    bp_digest(code, strlen(code), rec.digest);
    rec.client_id = (char *)"client_D";
    rec.operator_id = F->operator_id;
    rec.redirect_uri = (char *)REDIRECT;
    rec.scopes = (char *)"proxy:read";
    rec.code_challenge = (char *)CHALLENGE;
    rec.family_id = (char *)"family_D";
    rec.created_at = bp_clock_wall_s();
    rec.expires_at = rec.created_at + 600;
    assert_int_equal(bp_store_code_insert(F->s, &rec), BP_OK);
    snprintf(body, sizeof(body),
             "grant_type=authorization_code&code=%s&redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A9999%%2Fcb"
             "&code_verifier=" VERIFIER,
             code);
    x = call("POST", "/oauth/token", NULL, FORM, basic_for("client_D", secret), NULL, body);
    assert_int_equal(x.r.status, 200);
    assert_non_null(jstr(&x, "access_token"));
    assert_null(json_object_get(x.json, "refresh_token"));
    res_free(&x);
}

/* A code approved by an operator who has since been disabled is not exchanged. */
static void
test_code_of_disabled_operator(void **state)
{
    char csrf[65];
    char *cookie = sign_in(csrf);
    char *code = approve_code(cookie, csrf);
    json_t *j;

    assert_int_equal(bp_store_operator_set_disabled(F->s, F->operator_id, true, bp_clock_wall_s()), BP_OK);
    j = exchange(code, VERIFIER, 400, "invalid_grant");
    json_decref(j);
    bp_free(code);
    bp_free(cookie);
}

/* state over 1024 bytes: an error page, never a redirect carrying it. */
static void
test_state_too_long(void **state)
{
    char q[2048];
    char long_state[1100];
    struct res x;
    char *loc;

    memset(long_state, 'a', 1025);
    long_state[1025] = '\0';
    snprintf(q, sizeof(q), "%s&state=%s", "response_type=code&client_id=client_A&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb"
             "&code_challenge=" CHALLENGE "&code_challenge_method=S256", long_state);
    x = call("GET", "/oauth/authorize", q, NULL, NULL, NULL, NULL);
    assert_int_equal(x.r.status, 400);
    assert_null(header_value(&x, "Location"));
    assert_null(header_value(&x, "Set-Cookie"));
    assert_string_equal(x.r.content_type, "text/html; charset=utf-8");
    res_free(&x);
    /* Also when another error would have been redirected (it would echo the state). */
    snprintf(q, sizeof(q), "%s&state=%s", "response_type=token&client_id=client_A&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb",
             long_state);
    x = call("GET", "/oauth/authorize", q, NULL, NULL, NULL, NULL);
    assert_int_equal(x.r.status, 400);
    assert_null(header_value(&x, "Location"));
    res_free(&x);

    /* 1024 bytes of state is fine and comes back whole. */
    long_state[1024] = '\0';
    snprintf(q, sizeof(q), "%s&state=%s", "response_type=token&client_id=client_A&redirect_uri=http%3A%2F%2F127.0.0.1%3A9999%2Fcb",
             long_state);
    x = call("GET", "/oauth/authorize", q, NULL, NULL, NULL, NULL);
    assert_int_equal(x.r.status, 302);
    loc = header_value(&x, "Location");
    assert_non_null(strstr(loc, long_state));
    bp_free(loc);
    res_free(&x);
}

/* Anonymous sessions are created at most BP_OAUTH_SESSION_MAX_PER_PEER times per window per
 * peer; a browser that sends its valid cookie reuses its session and is not counted. */
static void
test_anonymous_sessions_throttled(void **state)
{
    struct res x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, NULL, NULL);
    char *cookie = session_cookie(&x);
    char *retry;
    char *again;

    res_free(&x);
    for (int i = 1; i < BP_OAUTH_SESSION_MAX_PER_PEER; i++) {
        x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, NULL, NULL);
        assert_int_equal(x.r.status, 200);
        res_free(&x);
    }
    x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, NULL, NULL);
    assert_int_equal(x.r.status, 429);
    assert_null(header_value(&x, "Set-Cookie"));
    retry = header_value(&x, "Retry-After");
    assert_non_null(retry);
    assert_in_range(strtol(retry, NULL, 10), 1, BP_OAUTH_SESSION_WINDOW_MS / 1000);
    bp_free(retry);
    res_free(&x);

    /* The browser with its cookie still gets its page, in its own session. */
    for (int i = 0; i < 3; i++) {
        x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, cookie, NULL);
        assert_int_equal(x.r.status, 200);
        assert_non_null(strstr(x.r.body, "name=\"password\""));
        again = header_value(&x, "Set-Cookie");
        assert_null(again);
        res_free(&x);
    }
    /* Another address is not affected. */
    snprintf(peer, sizeof(peer), "192.0.2.%d", 200 + n_setups);
    x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, NULL, NULL);
    assert_int_equal(x.r.status, 200);
    res_free(&x);
    bp_free(cookie);
}

/* A sign-in in flight is counted before its password is checked: the right password on the
 * last allowed attempt still works, and gives its reservation back. */
static void
test_throttle_reserves_attempts(void **state)
{
    struct res x = call("GET", "/oauth/authorize", AUTHZ_Q, NULL, NULL, NULL, NULL);
    char *cookie = session_cookie(&x);
    char csrf[65];
    char body[1024];

    csrf_of(&x, csrf);
    res_free(&x);
    bp_oauth__throttle_success("alice", NULL, bp_clock_mono_ms());
    for (int i = 0; i < BP_OAUTH_THROTTLE_MAX_FAILURES - 1; i++) {
        snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=alice&password=wrong-password", AUTHZ_F, csrf);
        x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
        assert_int_equal(x.r.status, 401);
        res_free(&x);
    }
    snprintf(body, sizeof(body), "%s&csrf=%s&action=login&name=alice&password=correct+horse+battery", AUTHZ_F, csrf);
    x = call("POST", "/oauth/authorize", NULL, FORM, NULL, cookie, body);
    assert_int_equal(x.r.status, 200);
    res_free(&x);
    /* alice's failures are forgotten; the peer's count is back to its failures (4 of 5). */
    assert_false(bp_oauth__throttle_blocked("alice", NULL, bp_clock_mono_ms()));
    assert_false(bp_oauth__throttle_blocked(NULL, peer, bp_clock_mono_ms()));
    assert_true(bp_oauth__throttle_reserve("nobody", peer, bp_clock_mono_ms()));
    assert_true(bp_oauth__throttle_blocked(NULL, peer, bp_clock_mono_ms()));
    bp_free(cookie);
}

static void
test_metadata_and_paths(void **state)
{
    struct res x = call("GET", "/.well-known/oauth-authorization-server", NULL, NULL, NULL, NULL, NULL);

    assert_int_equal(x.r.status, 200);
    assert_string_equal(jstr(&x, "issuer"), "http://127.0.0.1:8080");
    assert_string_equal(jstr(&x, "token_endpoint"), "http://127.0.0.1:8080/oauth/token");
    assert_string_equal(jstr(&x, "authorization_endpoint"), "http://127.0.0.1:8080/oauth/authorize");
    assert_string_equal(json_string_value(json_array_get(json_object_get(x.json, "code_challenge_methods_supported"), 0)),
                        "S256");
    res_free(&x);
    assert_true(bp_oauth_owns_path("/oauth/token", 12));
    assert_true(bp_oauth_owns_path("/oauth/whatever", 15));
    assert_true(bp_oauth_owns_path("/.well-known/oauth-authorization-server", 39));
    assert_false(bp_oauth_owns_path("/oauthx", 7));
    assert_false(bp_oauth_owns_path("/proxy/oauth/token", 18));
    x = call("GET", "/oauth/nothing", NULL, NULL, NULL, NULL, NULL);
    assert_int_equal(x.r.status, 404);
    res_free(&x);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_lifetime_capped_by_client_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_invalid_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_invalid_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_grant_and_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorization_code_flow_and_code_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_rotation_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_and_introspect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorize_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csrf_and_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_tokens_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_with_revoked_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_without_refresh_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_of_disabled_operator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_sessions_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_reserves_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_and_paths, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
