/* Fuzzes the credential headers (issue 11 item 10): Authorization and X-Blnk-Key → credential,
 * bp_auth_authenticate, against a model written from the contract rather than from authz.c.
 *
 * The model (DESIGN §2, §5; RFC 6750 §2.1; RFC 9110 §11.1 for the case-insensitive scheme):
 * - with any Authorization header: more than one → invalid; the value must be "Bearer"
 *   (any case), one space, then optional further spaces and the credential;
 * - without one: exactly one X-Blnk-Key whose value has the exact format of a credential is taken
 *   as if it came as Bearer; any other X-Blnk-Key (a Core secret, several of them) means no
 *   credential at all;
 * - a credential is "blnk_" + 64 lowercase hex (API key: unknown or revoked → invalid key,
 *   expired → expired key) or "blnk_at_" + 64 lowercase hex (access token: anything wrong →
 *   invalid bearer token); "blnk_rt_…" (a refresh token) → invalid bearer token; an empty one
 *   → missing; anything else → invalid key.
 * The tables hold fixed credentials (one of each state) so the seeds can name them.
 *
 * Two ways in, chosen by the first byte's top bit:
 * - direct: the first byte's low bits give the number of Authorization (0-3) and X-Blnk-Key
 *   (0-3) headers; the rest is the first Authorization value, '\n', the first X-Blnk-Key value,
 *   as raw bytes (the parser never lets a NUL or CR through, but auth must not depend on it);
 * - through the parser: the rest is header lines of a request head; when bp_http_parse_head
 *   accepts it, the headers it found go to bp_auth_authenticate (as src/http/proxy.c does) and
 *   the outcome must be the model's for the same values.
 * Checked: the outcome code, which credential comes back (only on success, or the refused
 * expired/revoked one), and the failure reason. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "http/parser.h"
#include "lib/bug.h"
#include "lib/str.h"
#include "store/store.h"

#define NOW 1800000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The credentials in the tables; the seeds in corpus/auth use these texts. */
#define HEX64(c)                                                                                             \
    c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c
static const char *const key_active = "blnk_" HEX64("a");
static const char *const key_expired = "blnk_" HEX64("b");
static const char *const key_revoked = "blnk_" HEX64("c");
static const char *const token_active = "blnk_at_" HEX64("d");
static const char *const token_expired = "blnk_at_" HEX64("e");

enum state { ACTIVE, EXPIRED, REVOKED, UNKNOWN };

static struct bp_tables *g_tables;

static void
init_tables(void)
{
    struct bp_key_rec keys[3];
    struct bp_live_token toks[2];
    const char *key_text[3] = {key_active, key_expired, key_revoked};
    const char *tok_text[2] = {token_active, token_expired};
    char *key_ids[3] = {"key_active", "key_expired", "key_revoked"};
    char *tok_ids[2] = {"token_active", "token_expired"};

    memset(keys, 0, sizeof(keys));
    memset(toks, 0, sizeof(toks));
    for (int i = 0; i < 3; i++) {
        keys[i].id = key_ids[i];
        keys[i].name = key_ids[i];
        keys[i].prefix = "blnk_x";
        keys[i].scopes = "*";
        bp_digest(key_text[i], strlen(key_text[i]), keys[i].digest);
    }
    keys[1].expires_at = NOW;
    keys[2].revoked = true;
    for (int i = 0; i < 2; i++) {
        toks[i].id = tok_ids[i];
        toks[i].client_id = "client_fuzz";
        toks[i].client_name = "fuzz";
        toks[i].scopes = "proxy:read";
        toks[i].expires_at = NOW + 3600;
        bp_digest(tok_text[i], strlen(tok_text[i]), toks[i].digest);
    }
    toks[1].expires_at = NOW;
    BP_BUG_ON(bp_tables_build(keys, 3, toks, 2, NULL, 0, &g_tables) != BP_OK);
}

/* ---- the model ---- */

struct expect {
    bp_err rc;
    const char *id; /* the credential that comes back, or NULL */
    enum bp_auth_failure why;
};

static bool
is_lower_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool
starts(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(p, prefix, k) == 0;
}

static bool
model_is_credential(const char *p, size_t n)
{
    if (starts(p, n, "blnk_at_")) {
        return n == 8 + 64 && is_lower_hex(p + 8, 64);
    }
    return n == 5 + 64 && starts(p, n, "blnk_") && is_lower_hex(p + 5, 64);
}

static enum state
lookup(const char *p, size_t n, const char *const *texts, size_t n_texts, const enum state *states,
       const char *const *ids, const char **out_id)
{
    for (size_t i = 0; i < n_texts; i++) {
        if (strlen(texts[i]) == n && memcmp(texts[i], p, n) == 0) {
            *out_id = ids[i];
            return states[i];
        }
    }
    *out_id = NULL;
    return UNKNOWN;
}

static struct expect
model_text(const char *p, size_t n)
{
    static const char *const tok_texts[2] = {"blnk_at_" HEX64("d"), "blnk_at_" HEX64("e")};
    static const enum state tok_states[2] = {ACTIVE, EXPIRED};
    static const char *const tok_ids[2] = {"token_active", "token_expired"};
    static const char *const key_texts[3] = {"blnk_" HEX64("a"), "blnk_" HEX64("b"), "blnk_" HEX64("c")};
    static const enum state key_states[3] = {ACTIVE, EXPIRED, REVOKED};
    static const char *const key_ids[3] = {"key_active", "key_expired", "key_revoked"};
    const char *id = NULL;
    enum state st;

    if (n == 0) {
        return (struct expect){BP_ERR_AUTH_MISSING, NULL, BP_AUTH_FAIL_MISSING};
    }
    if (starts(p, n, "blnk_rt_")) {
        return (struct expect){BP_ERR_AUTH_INVALID_TOKEN, NULL, BP_AUTH_FAIL_UNKNOWN};
    }
    if (starts(p, n, "blnk_at_")) {
        st = model_is_credential(p, n) ? lookup(p, n, tok_texts, 2, tok_states, tok_ids, &id) : UNKNOWN;
        if (st == ACTIVE) {
            return (struct expect){BP_OK, id, BP_AUTH_FAIL_NONE};
        }
        if (st == EXPIRED) {
            return (struct expect){BP_ERR_AUTH_INVALID_TOKEN, id, BP_AUTH_FAIL_EXPIRED};
        }
        return (struct expect){BP_ERR_AUTH_INVALID_TOKEN, NULL, BP_AUTH_FAIL_UNKNOWN};
    }
    st = model_is_credential(p, n) ? lookup(p, n, key_texts, 3, key_states, key_ids, &id) : UNKNOWN;
    switch (st) {
    case ACTIVE:
        return (struct expect){BP_OK, id, BP_AUTH_FAIL_NONE};
    case EXPIRED:
        return (struct expect){BP_ERR_AUTH_EXPIRED_KEY, id, BP_AUTH_FAIL_EXPIRED};
    case REVOKED:
        return (struct expect){BP_ERR_AUTH_INVALID_KEY, id, BP_AUTH_FAIL_REVOKED};
    default:
        return (struct expect){BP_ERR_AUTH_INVALID_KEY, NULL, BP_AUTH_FAIL_UNKNOWN};
    }
}

static bool
scheme_is_bearer(const char *p)
{
    static const char bearer[] = "bearer";

    for (size_t i = 0; i < 6; i++) {
        char c = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] + 32) : p[i];
        if (c != bearer[i]) {
            return false;
        }
    }
    return true;
}

static struct expect
model(const struct bp_auth_headers *h)
{
    const char *v = h->authorization;
    size_t n = h->authorization_len;
    size_t i = 7;

    if (h->n_authorization > 0) {
        if (h->n_authorization > 1 || n < 7 || !scheme_is_bearer(v) || v[6] != ' ') {
            return (struct expect){BP_ERR_AUTH_INVALID_KEY, NULL, BP_AUTH_FAIL_UNKNOWN};
        }
        while (i < n && v[i] == ' ') {
            i++;
        }
        return model_text(v + i, n - i);
    }
    if (h->n_blnk_key == 1 && model_is_credential(h->blnk_key, h->blnk_key_len)) {
        return model_text(h->blnk_key, h->blnk_key_len);
    }
    return (struct expect){BP_ERR_AUTH_MISSING, NULL, BP_AUTH_FAIL_MISSING};
}

/* ---- checks ---- */

static void
check(const struct bp_auth_headers *h)
{
    struct expect want = model(h);
    const struct bp_cred *cred = (const struct bp_cred *)h; /* anything: must be overwritten */
    enum bp_auth_failure why = BP_AUTH_FAIL_NONE;
    bp_err rc = bp_auth_authenticate(g_tables, h, NOW, &cred, &why);

    BP_BUG_ON(rc != want.rc);
    BP_BUG_ON(why != want.why);
    BP_BUG_ON(bp_auth_is_credential(h->blnk_key, h->blnk_key_len) !=
              (h->blnk_key != NULL && model_is_credential(h->blnk_key, h->blnk_key_len)));
    if (want.id == NULL) {
        BP_BUG_ON(cred != NULL);
    } else {
        BP_BUG_ON(cred == NULL || strcmp(bp_cred_id(cred), want.id) != 0);
    }
}

static void
check_direct(const char *p, size_t n, unsigned counts)
{
    const char *nl = memchr(p, '\n', n);
    struct bp_auth_headers h = {0};
    size_t auth_len = nl != NULL ? (size_t)(nl - p) : n;

    h.n_authorization = counts & 3u;
    h.n_blnk_key = (counts >> 2) & 3u;
    if (h.n_authorization > 0) {
        h.authorization = p;
        h.authorization_len = auth_len;
    }
    if (h.n_blnk_key > 0) {
        h.blnk_key = nl != NULL ? nl + 1 : p + n;
        h.blnk_key_len = nl != NULL ? n - auth_len - 1 : 0;
    }
    check(&h);
}

static void
check_parsed(const char *p, size_t n)
{
    static const char start[] = "GET /proxy/ledgers HTTP/1.1\r\nHost: fuzz\r\n";
    char *head = malloc(sizeof(start) - 1 + n + 2);
    static struct bp_http_header room[BP_HTTP_MAX_HEADERS_CAP];
    struct bp_http_head *parsed = malloc(sizeof(*parsed));
    const struct bp_http_header *f;
    struct bp_auth_headers h = {0};
    size_t consumed = 0;
    size_t len = 0;

    BP_BUG_ON(head == NULL || parsed == NULL);
    memcpy(head, start, sizeof(start) - 1);
    len = sizeof(start) - 1;
    memcpy(head + len, p, n);
    len += n;
    memcpy(head + len, "\r\n", 2);
    len += 2;
    if (bp_http_parse_head(head, len, NULL, room, parsed, &consumed) == BP_OK) {
        f = bp_http_head_find(parsed, "Authorization", &h.n_authorization);
        if (f != NULL) {
            h.authorization = f->value;
            h.authorization_len = f->value_len;
        }
        f = bp_http_head_find(parsed, "X-Blnk-Key", &h.n_blnk_key);
        if (f != NULL) {
            h.blnk_key = f->value;
            h.blnk_key_len = f->value_len;
        }
        check(&h);
    }
    free(parsed);
    free(head);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_tables == NULL) {
        init_tables();
    }
    if (size == 0) {
        return 0;
    }
    if (data[0] & 0x80) {
        check_parsed((const char *)data + 1, size - 1);
    } else {
        check_direct((const char *)data + 1, size - 1, data[0]);
    }
    return 0;
}
