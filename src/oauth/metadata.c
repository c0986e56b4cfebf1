/* GET /.well-known/oauth-authorization-server (RFC 8414): what a client library needs to find the
 * endpoints and the supported methods. */
#include <stdio.h>

#include <jansson.h>

#include "oauth/oauth-int.h"

static json_t *
endpoint(const struct bp_oauth *o, const char *path)
{
    char url[1024];

    snprintf(url, sizeof(url), "%s%s", o->issuer, path);
    return json_string(url);
}

static json_t *
strings(const char *const *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

void
bp_oauth__metadata(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    static const char *const response_types[] = {"code"};
    static const char *const grants[] = {"authorization_code", "refresh_token", "client_credentials"};
    static const char *const pkce[] = {"S256"};
    static const char *const auth_methods[] = {"client_secret_basic", "client_secret_post"};
    static const char *const scopes[] = {"*", "proxy:read", "proxy:write"};
    json_t *j = json_object();

    json_object_set_new(j, "issuer", json_string(o->issuer));
    json_object_set_new(j, "authorization_endpoint", endpoint(o, "/oauth/authorize"));
    json_object_set_new(j, "token_endpoint", endpoint(o, "/oauth/token"));
    json_object_set_new(j, "revocation_endpoint", endpoint(o, "/oauth/revoke"));
    json_object_set_new(j, "introspection_endpoint", endpoint(o, "/oauth/introspect"));
    json_object_set_new(j, "response_types_supported", strings(response_types, 1));
    json_object_set_new(j, "grant_types_supported", strings(grants, 3));
    json_object_set_new(j, "code_challenge_methods_supported", strings(pkce, 1));
    json_object_set_new(j, "token_endpoint_auth_methods_supported", strings(auth_methods, 2));
    json_object_set_new(j, "revocation_endpoint_auth_methods_supported", strings(auth_methods, 2));
    json_object_set_new(j, "introspection_endpoint_auth_methods_supported", strings(auth_methods, 2));
    json_object_set_new(j, "scopes_supported", strings(scopes, 3));
    bp_oauth__json(out, 200, j);
}
