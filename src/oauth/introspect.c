/* POST /oauth/introspect (RFC 7662). Tokens of other clients are reported inactive, exactly like
 * unknown ones, so a client learns nothing about tokens it does not hold. */
#include <string.h>

#include <jansson.h>

#include "auth/auth.h"
#include "lib/clock.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

static bool
is_active(const struct bp_token_rec *t, const struct bp_client_rec *c, int64_t now)
{
    if (strcmp(t->client_id, c->id) != 0 || t->revoked) {
        return false;
    }
    if (t->expires_at != 0 && t->expires_at <= now) {
        return false;
    }
    return t->kind == BP_TOKEN_ACCESS || t->used_at == 0;
}

void
bp_oauth__introspect(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out)
{
    struct bp_oauth_form form = {0};
    struct bp_client_rec c = {0};
    struct bp_token_rec t = {0};
    unsigned char digest[BP_DIGEST_LEN];
    char scope[BP_OAUTH_SCOPE_TEXT_MAX];
    unsigned bits = 0;
    const char *text;
    json_t *j;
    bp_err rc;

    if (!bp_oauth__is_form(req)) {
        bp_oauth__error(out, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
        return;
    }
    rc = bp_oauth__form_parse(req->body, req->body_len, &form);
    if (rc != BP_OK) {
        bp_oauth__error(out, 400, "invalid_request",
                        rc == BP_ERR_EXISTS ? "a parameter is repeated" : "the form body is malformed");
        return;
    }
    if (bp_oauth__client_authenticate(o, req, &form, &c, out) != BP_OK) {
        goto done;
    }
    text = bp_oauth__form_get(&form, "token");
    if (text == NULL) {
        bp_oauth__error(out, 400, "invalid_request", "token is required");
        goto done;
    }
    bp_digest(text, strlen(text), digest);
    rc = bp_store_token_get_by_digest(o->store, digest, &t);
    if (rc != BP_OK && rc != BP_ERR_NOT_FOUND) {
        bp_oauth__error(out, 503, "temporarily_unavailable", "the store did not answer");
        goto done;
    }
    j = json_object();
    if (rc != BP_OK || !is_active(&t, &c, bp_clock_wall_s()) || bp_oauth__scope_parse_stored(t.scopes, &bits) != BP_OK) {
        json_object_set_new(j, "active", json_false());
        bp_oauth__json(out, 200, j);
        goto done;
    }
    bp_oauth__scope_spaced(bits, scope, sizeof(scope));
    json_object_set_new(j, "active", json_true());
    json_object_set_new(j, "scope", json_string(scope));
    json_object_set_new(j, "client_id", json_string(c.id));
    if (t.kind == BP_TOKEN_ACCESS) {
        json_object_set_new(j, "token_type", json_string("Bearer"));
    }
    if (t.expires_at != 0) {
        json_object_set_new(j, "exp", json_integer(t.expires_at));
    }
    json_object_set_new(j, "iat", json_integer(t.created_at));
    json_object_set_new(j, "sub", json_string(t.operator_id != NULL ? t.operator_id : c.id));
    bp_oauth__json(out, 200, j);
done:
    bp_token_rec_cleanup(&t);
    bp_client_rec_cleanup(&c);
    bp_oauth__form_cleanup(&form);
}
