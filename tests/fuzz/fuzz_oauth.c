/*
 * libFuzzer target for the OAuth parsers that read attacker-controlled bytes before any
 * credential is checked: the form-urlencoded body/query parser, HTTP Basic client credentials,
 * the session cookie finder, PKCE verifier/challenge syntax and the scope list.
 *
 * Input layout: the first byte picks nothing; the whole input is fed to every parser, so one
 * corpus exercises all of them. Properties checked besides "no crash, no leak": a parsed form's
 * fields are NUL-terminated and within the input's length; a found cookie value is 64 hex.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "oauth/oauth-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct bp_oauth_form form;
    char *id = NULL;
    char *secret = NULL;
    char session[BP_OAUTH_SESSION_HEX + 1];
    char challenge[BP_PKCE_CHALLENGE_LEN + 1];
    unsigned bits = 0;
    char *copy;

    memset(&form, 0, sizeof(form));
    if (bp_oauth__form_parse(text, size, &form) == BP_OK) {
        for (size_t i = 0; i < form.n; i++) {
            BP_BUG_ON(strlen(form.fields[i].name) > size || strlen(form.fields[i].value) > size);
        }
        (void)bp_oauth__form_get(&form, "grant_type");
    }
    bp_oauth__form_cleanup(&form);

    if (bp_oauth__basic_parse(text, size, &id, &secret) == BP_OK) {
        BP_BUG_ON(id == NULL || secret == NULL);
    }
    bp_free(id);
    bp_free(secret);

    if (bp_oauth__cookie_session(text, size, session)) {
        BP_BUG_ON(strlen(session) != BP_OAUTH_SESSION_HEX);
        BP_BUG_ON(strspn(session, "0123456789abcdef") != BP_OAUTH_SESSION_HEX);
    }

    (void)bp_oauth__pkce_challenge_is_valid(text, size);
    if (bp_oauth__pkce_verifier_is_valid(text, size)) {
        bp_oauth__pkce_s256(text, size, challenge);
        BP_BUG_ON(!bp_oauth__pkce_challenge_is_valid(challenge, strlen(challenge)));
        BP_BUG_ON(!bp_oauth__pkce_verify(text, size, challenge));
    }

    copy = bp_strndup(text, size);
    (void)bp_oauth__scope_parse(copy, &bits);
    bp_free(copy);
    return 0;
}
