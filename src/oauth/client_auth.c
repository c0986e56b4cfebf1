/* Client authentication for /oauth/token, /oauth/revoke and /oauth/introspect (RFC 6749 §2.3.1,
 * §3.2.1): HTTP Basic or client_id + client_secret in the body, never both. Every failure to
 * identify a usable client is the same 401 invalid_client answer, so the response does not tell
 * an unknown client from a wrong secret or a revoked client. The three endpoints also share what
 * comes before it: a form body, parsed once. */
#include <string.h>

#include "auth/auth.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/ipnet.h"
#include "lib/secret.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

static bp_err
refuse(struct bp_oauth_response *resp, const char *description)
{
    bp_oauth__error(resp, 401, "invalid_client", description);
    return BP_ERR_INVALID;
}

static bp_err
bad_request(struct bp_oauth_response *resp, const char *description)
{
    bp_oauth__error(resp, 400, "invalid_request", description);
    return BP_ERR_INVALID;
}

/* After `client rotate-secret --grace`, the secret the client had stays valid until its expiry:
 * looked up only when the current one did not match. */
static bool
previous_secret_ok(struct bp_oauth *o, const char *id, const unsigned char digest[BP_DIGEST_LEN])
{
    unsigned char previous[BP_DIGEST_LEN];
    int64_t until = 0;

    if (bp_store_client_previous_secret(o->store, id, previous, &until) != BP_OK ||
        until <= bp_clock_wall_s()) {
        return false;
    }
    return bp_ct_equal(digest, previous, BP_DIGEST_LEN);
}

/* A client with an allow-list (issue 12) is used only from it: its tokens are refused elsewhere
 * anyway, and a secret that leaked should not mint them elsewhere either. */
static bool
peer_allowed(const struct bp_client_rec *c, const char *peer)
{
    struct bp_ipnet *nets = NULL;
    size_t n = 0;
    struct bp_ip ip;
    bool ok;

    if (c->allow_from == NULL) {
        return true;
    }
    ok = peer != NULL && bp_ip_parse(peer, strlen(peer), &ip) &&
         bp_ipnet_list_parse(c->allow_from, 64, &nets, &n, NULL, 0) == BP_OK &&
         bp_ipnet_list_contains(nets, n, &ip);
    bp_free(nets);
    return ok;
}

/* Looks the client up and checks its secret. The digest is computed before the lookup so that an
 * unknown client id costs the same work as a wrong secret. */
static bp_err
check_client(struct bp_oauth *o, const char *id, const char *secret, const char *peer,
             struct bp_client_rec *out, struct bp_oauth_response *resp)
{
    struct bp_client_rec c = {0};
    unsigned char digest[BP_DIGEST_LEN];
    size_t secret_len = strlen(secret);
    bool well_formed = bp_oauth_token_is_well_formed(BP_CLIENT_SECRET_PREFIX, secret, secret_len);
    bp_err rc;

    bp_digest(secret, secret_len, digest);
    rc = bp_store_client_get(o->store, id, &c);
    if (rc == BP_ERR_NOT_FOUND) {
        return refuse(resp, "client authentication failed");
    }
    if (rc != BP_OK) {
        bp_oauth__error(resp, 503, "temporarily_unavailable", "the store did not answer");
        return BP_ERR_INVALID;
    }
    if (!well_formed || !bp_oauth__client_is_usable(&c, bp_clock_wall_s()) ||
        (!bp_ct_equal(digest, c.secret_digest, BP_DIGEST_LEN) && !previous_secret_ok(o, id, digest))) {
        bp_client_rec_cleanup(&c);
        return refuse(resp, "client authentication failed");
    }
    if (!peer_allowed(&c, peer)) {
        bp_client_rec_cleanup(&c);
        return refuse(resp, "this client may not be used from this address (it has an IP allow-list)");
    }
    *out = c;
    return BP_OK;
}

bp_err
bp_oauth__client_authenticate(struct bp_oauth *o, const struct bp_oauth_request *req,
                              const struct bp_oauth_form *form, struct bp_client_rec *out,
                              struct bp_oauth_response *resp)
{
    const char *form_id = bp_oauth__form_get(form, "client_id");
    const char *form_secret = bp_oauth__form_get(form, "client_secret");
    char *id = NULL;
    char *secret = NULL;
    bp_err rc;

    if (req->n_authorization > 1) {
        return bad_request(resp, "more than one Authorization header");
    }
    if (req->authorization == NULL) {
        if (form_id == NULL || form_secret == NULL) {
            return refuse(resp, "client authentication required");
        }
        return check_client(o, form_id, form_secret, req->peer, out, resp);
    }
    rc = bp_oauth__basic_parse(req->authorization, req->authorization_len, &id, &secret);
    if (rc != BP_OK) {
        return refuse(resp, "client authentication failed");
    }
    if (form_secret != NULL) {
        rc = bad_request(resp, "more than one client authentication method");
    } else if (form_id != NULL && strcmp(form_id, id) != 0) {
        rc = bad_request(resp, "client_id differs from the authenticated client");
    } else {
        rc = check_client(o, id, secret, req->peer, out, resp);
    }
    bp_wipe(secret, strlen(secret));
    bp_free(secret);
    bp_free(id);
    return rc;
}

bp_err
bp_oauth__client_request(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_form *form,
                         struct bp_client_rec *client, struct bp_oauth_response *resp)
{
    bp_err rc;

    if (!bp_oauth__is_form(req)) {
        bp_oauth__error(resp, 400, "invalid_request",
                        "Content-Type must be application/x-www-form-urlencoded");
        return BP_ERR_INVALID;
    }
    rc = bp_oauth__form_parse(req->body, req->body_len, form);
    if (rc != BP_OK) {
        bp_oauth__error(resp, 400, "invalid_request",
                        rc == BP_ERR_EXISTS ? "a parameter is repeated" : "the form body is malformed");
        return BP_ERR_INVALID;
    }
    rc = bp_oauth__client_authenticate(o, req, form, client, resp);
    if (rc != BP_OK) {
        bp_oauth__form_cleanup(form);
    }
    return rc;
}
