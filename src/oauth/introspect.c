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
    char scope[BP_OAUTH_SCOPE_TEXT_MAX];
    unsigned bits = 0;
    json_t *j;
    bp_err rc;

    if (bp_oauth__client_request(o, req, &form, &c, out) != BP_OK) {
        return;
    }
    rc = bp_oauth__form_token(o, &form, &t, out);
    if (rc == BP_ERR_INVALID) {
        goto done;
    }
    j = json_object();
    if (rc != BP_OK || !is_active(&t, &c, bp_clock_wall_s()) ||
        bp_oauth__scope_parse_stored(t.scopes, &bits) != BP_OK) {
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
