/* Authorize-page sessions. The cookie holds 32 random bytes in hex; the store keeps only their
 * SHA-256. The CSRF token is derived from the session id (HMAC-SHA-256 keyed by it), so any page
 * of the session can render it again while the store keeps just its digest; a cross-site form
 * cannot know it without the HttpOnly, SameSite=Lax cookie. Signing in replaces the session with a
 * new one (new id, new CSRF token) so a session id planted before sign-in is worthless after. */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth.h"
#include "config/config.h"
#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "oauth/oauth-int.h"
#include "store/store.h"

static bool
is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

bool
bp_oauth__cookie_session(const char *cookie, size_t len, char out[BP_OAUTH_SESSION_HEX + 1])
{
    return bp_oauth_cookie_hex64(cookie, len, BP_OAUTH_SESSION_COOKIE, out);
}

bool
bp_oauth_cookie_hex64(const char *cookie, size_t len, const char *cookie_name, char out[65])
{
    char name[64];
    const size_t nlen = (size_t)snprintf(name, sizeof(name), "%s=", cookie_name);
    size_t pos = 0;

    if (cookie == NULL || nlen >= sizeof(name)) {
        return false;
    }
    /* RFC 6265 §4.2.1: "name=value" pairs separated by "; ". The first well-formed pair named
     * ours wins; a malformed one is skipped rather than trusted. */
    while (pos < len) {
        const char *semi = memchr(cookie + pos, ';', len - pos);
        size_t end = semi != NULL ? (size_t)(semi - cookie) : len;
        size_t s = pos;
        while (s < end && (cookie[s] == ' ' || cookie[s] == '\t')) {
            s++;
        }
        size_t e = end;
        while (e > s && (cookie[e - 1] == ' ' || cookie[e - 1] == '\t')) {
            e--;
        }
        if (e - s == nlen + 64 && memcmp(cookie + s, name, nlen) == 0 &&
            is_lower_hex(cookie + s + nlen, 64)) {
            memcpy(out, cookie + s + nlen, 64);
            out[64] = '\0';
            return true;
        }
        pos = end + 1;
    }
    return false;
}

void
bp_oauth__csrf_for(const char *session_id, char out[BP_OAUTH_SESSION_HEX + 1])
{
    static const char label[] = "blnkproxy authorize csrf";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    HMAC(EVP_sha256(), session_id, (int)strlen(session_id), (const unsigned char *)label, sizeof(label) - 1,
         mac, &mac_len);
    bp_hex_encode(mac, 32, out);
    bp_wipe(mac, sizeof(mac));
}

bp_err
bp_oauth__session_create(struct bp_oauth *o, const char *operator_id, char out[BP_OAUTH_SESSION_HEX + 1])
{
    char id[BP_OAUTH_SESSION_HEX + 1];
    char csrf[BP_OAUTH_SESSION_HEX + 1];
    struct bp_session_rec rec = {0};
    int64_t now = bp_clock_wall_s();
    bp_err rc;

    rc = bp_rand_hex(id, 32);
    if (rc != BP_OK) {
        return rc;
    }
    bp_oauth__csrf_for(id, csrf);
    bp_digest(id, BP_OAUTH_SESSION_HEX, rec.digest);
    bp_digest(csrf, BP_OAUTH_SESSION_HEX, rec.csrf_digest);
    rec.operator_id = (char *)operator_id;
    rec.created_at = now;
    rec.expires_at = now + (o->cfg->oauth_session_ttl_ms + 999) / 1000;
    rc = bp_store_session_insert(o->store, &rec);
    if (rc == BP_OK) {
        memcpy(out, id, sizeof(id));
    }
    bp_wipe(id, sizeof(id));
    bp_wipe(csrf, sizeof(csrf));
    return rc;
}

char *
bp_oauth__session_cookie(const char *session_id, bool tls)
{
    char buf[256];

    snprintf(buf, sizeof(buf), "%s=%s; Path=/oauth; HttpOnly; SameSite=Lax%s", BP_OAUTH_SESSION_COOKIE,
             session_id, tls ? "; Secure" : "");
    return bp_strdup(buf);
}
