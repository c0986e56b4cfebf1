/* DSNs in messages: a PostgreSQL URI may carry a password (in its user info, or as a password=
 * or sslpassword= query parameter), and nothing blnkproxy prints may contain it.
 *
 * The user info is found the way libpq's URI parser finds it (conninfo_uri_parse_options): after
 * "scheme://", scan to the first '@' or '/'; only an '@' ends a user info, and the password is
 * what follows its first ':'. Query parameter names are percent-decoded before they are compared,
 * as libpq decodes them. Pure text work: no libpq here, so the CLI and the config code can mask a
 * DSN without opening anything. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "store/pg-int.h"
#include "store/store.h"

#define MASK "***"

static bool
has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Length of the "postgres://" or "postgresql://" prefix of dsn, 0 when it has neither. */
static size_t
pg_scheme_len(const char *dsn)
{
    if (has_prefix(dsn, "postgres://")) {
        return strlen("postgres://");
    }
    if (has_prefix(dsn, "postgresql://")) {
        return strlen("postgresql://");
    }
    return 0;
}

bool
bp_store_dsn_is_pg(const char *dsn)
{
    return dsn != NULL && pg_scheme_len(dsn) > 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes [s, s + n) into an allocated string; an invalid escape is kept as it is. */
static char *
decode(const char *s, size_t n)
{
    char *out = bp_malloc(n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* A secret-bearing span of the DSN text: [off, off + len). */
struct span {
    size_t off;
    size_t len;
};

#define MAX_SPANS 8

/* The user info password as libpq reads it: after "scheme://", scan to the first '@' or '/';
 * only an '@' ends a user info, and the password follows its first ':'. False when there is
 * none. *out_end gets where the host part starts. */
static bool
libpq_password(const char *dsn, size_t start, struct span *out, size_t *out_end)
{
    size_t p = start;
    const char *colon;

    while (dsn[p] != '\0' && dsn[p] != '@' && dsn[p] != '/') {
        p++;
    }
    if (dsn[p] != '@') {
        *out_end = start;
        return false;
    }
    *out_end = p + 1;
    colon = memchr(dsn + start, ':', p - start);
    if (colon == NULL) {
        return false;
    }
    out->off = (size_t)(colon + 1 - dsn);
    out->len = p - out->off;
    return true;
}

/* The widest span that anyone could have meant as a password: from the first ':' after the
 * scheme to the last '@' of the DSN. A password holding an unescaped '/' or '@' ends there,
 * where libpq does not look; masking this span too means such a password is hidden anyway. */
static bool
wide_password(const char *dsn, size_t start, struct span *out)
{
    const char *at = strrchr(dsn + start, '@');
    const char *colon = strchr(dsn + start, ':');

    if (at == NULL || colon == NULL || colon > at) {
        return false;
    }
    out->off = (size_t)(colon + 1 - dsn);
    out->len = (size_t)(at - colon - 1);
    return true;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Password values in libpq's key/value form ("host=db password=secret", values perhaps quoted
 * with '\'' and backslash escapes): not a DSN blnkproxy takes, but text someone may paste where
 * one goes, so every keyword holding "password" followed by '=' has its value masked. */
static size_t
keyword_secrets(const char *dsn, struct span *spans)
{
    size_t n = 0;
    const char *p = dsn;

    while (n < MAX_SPANS && (p = strstr(p, "password")) != NULL) {
        const char *v = p + strlen("password");

        while (is_space(*v)) {
            v++;
        }
        p += strlen("password");
        if (*v != '=') {
            continue;
        }
        v++;
        while (is_space(*v)) {
            v++;
        }
        p = v;
        if (*p == '\'') {
            for (p++; *p != '\0' && *p != '\''; p++) {
                if (*p == '\\' && p[1] != '\0') {
                    p++;
                }
            }
            p += *p == '\'' ? 1 : 0;
        } else {
            while (*p != '\0' && !is_space(*p)) {
                p++;
            }
        }
        if (p > v) {
            spans[n].off = (size_t)(v - dsn);
            spans[n].len = (size_t)(p - v);
            n++;
        }
    }
    return n;
}

/* Finds the password spans of a PostgreSQL URI (or of libpq's key/value form, see
 * keyword_secrets); returns how many (at most MAX_SPANS).
 * *out_ambiguous (may be NULL) says whether the widest reading differs from libpq's. */
static size_t
find_secrets(const char *dsn, struct span *spans, bool *out_ambiguous)
{
    size_t start = pg_scheme_len(dsn);
    size_t n = 0;
    size_t host = 0;
    struct span lib;
    struct span wide;
    bool has_lib;
    bool has_wide;
    const char *q;

    if (out_ambiguous != NULL) {
        *out_ambiguous = false;
    }
    if (start == 0) {
        return keyword_secrets(dsn, spans);
    }
    has_lib = libpq_password(dsn, start, &lib, &host);
    has_wide = wide_password(dsn, start, &wide);
    if (has_lib) {
        spans[n++] = lib;
    }
    if (has_wide && (!has_lib || wide.off != lib.off || wide.len != lib.len)) {
        spans[n++] = wide;
        if (out_ambiguous != NULL) {
            *out_ambiguous = true;
        }
    }
    q = strchr(dsn + host, '?');
    while (q != NULL && n < MAX_SPANS) {
        const char *key = q + 1;
        const char *amp = strchr(key, '&');
        const char *end = amp != NULL ? amp : key + strlen(key);
        const char *eq = memchr(key, '=', (size_t)(end - key));
        if (eq != NULL) {
            char *name = decode(key, (size_t)(eq - key));
            /* password, sslpassword, and whatever later libpq versions name so. */
            if (strstr(name, "password") != NULL) {
                spans[n].off = (size_t)(eq + 1 - dsn);
                spans[n].len = (size_t)(end - eq - 1);
                n++;
            }
            bp_free(name);
        }
        q = amp;
    }
    return n;
}

bool
bp_store__dsn_ambiguous(const char *dsn)
{
    struct span spans[MAX_SPANS];
    bool ambiguous = false;

    (void)find_secrets(dsn, spans, &ambiguous);
    return ambiguous;
}

void
bp_store_dsn_mask(const char *dsn, char *out, size_t out_len)
{
    struct span spans[MAX_SPANS];
    size_t len;
    size_t n;
    size_t o = 0;
    bool *hidden;

    if (out_len == 0) {
        return;
    }
    out[0] = '\0';
    if (dsn == NULL) {
        return;
    }
    len = strlen(dsn);
    n = find_secrets(dsn, spans, NULL);
    hidden = bp_calloc(len + 1, sizeof(*hidden));
    for (size_t k = 0; k < n; k++) {
        for (size_t i = spans[k].off; i < spans[k].off + spans[k].len; i++) {
            hidden[i] = true;
        }
    }
    /* Each run of hidden bytes becomes one MASK. Copied piece by piece, so a cut at out_len can
     * shorten the text but never show a secret. */
    for (size_t i = 0; i < len && o + 1 < out_len; i++) {
        if (!hidden[i]) {
            out[o++] = dsn[i];
        } else if (i == 0 || !hidden[i - 1]) {
            for (const char *m = MASK; *m != '\0' && o + 1 < out_len; m++) {
                out[o++] = *m;
            }
        }
    }
    out[o] = '\0';
    bp_free(hidden);
}

/* Replaces every occurrence of secret (len bytes) in msg (a string in cap bytes) with MASK, in
 * place. The search resumes after each inserted MASK, so a secret made of '*' cannot loop; text
 * pushed past cap is cut. */
static void
scrub_one(char *msg, size_t cap, const char *secret, size_t len)
{
    size_t mlen = strlen(MASK);
    size_t from = 0;
    char *hit;

    if (len == 0) {
        return;
    }
    while ((hit = memmem(msg + from, strlen(msg + from), secret, len)) != NULL) {
        size_t head = (size_t)(hit - msg);
        size_t tail = strlen(hit + len);
        if (head + mlen + 1 > cap) {
            *hit = '\0';
            return;
        }
        if (head + mlen + tail + 1 > cap) {
            tail = cap - head - mlen - 1;
        }
        memmove(hit + mlen, hit + len, tail);
        memcpy(hit, MASK, mlen);
        hit[mlen + tail] = '\0';
        from = head + mlen;
    }
}

void
bp_store__dsn_scrub(const char *dsn, char *msg, size_t cap)
{
    struct span spans[MAX_SPANS];
    size_t n;

    if (dsn == NULL || msg == NULL || cap < strlen(MASK) + 1) {
        return;
    }
    n = find_secrets(dsn, spans, NULL);
    for (size_t k = 0; k < n; k++) {
        char *plain = decode(dsn + spans[k].off, spans[k].len);
        /* libpq quotes either form: the decoded value, or the raw token it failed to decode. */
        scrub_one(msg, cap, dsn + spans[k].off, spans[k].len);
        if (strlen(plain) != spans[k].len || memcmp(plain, dsn + spans[k].off, spans[k].len) != 0) {
            scrub_one(msg, cap, plain, strlen(plain));
        }
        bp_free(plain);
    }
}
