/* application/x-www-form-urlencoded (HTML §"application/x-www-form-urlencoded parsing"), the body
 * format of every OAuth endpoint and the query format of /oauth/authorize. Strict where leniency
 * could let two readers disagree: a malformed %-escape, an escaped NUL or control byte, and a
 * repeated name are errors rather than guesses (RFC 6749 §3.1, §3.2). */
#include <string.h>

#include "lib/alloc.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "oauth/oauth-int.h"

bp_err
bp_oauth__form_decode(const char *text, size_t len, size_t max, char **out, size_t *out_len)
{
    char *dst;
    size_t n = 0;

    if (len > 3 * max) {
        return BP_ERR_LIMIT;
    }
    dst = bp_malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? bp_hex_digit_value((unsigned char)text[i + 1]) : -1;
            int lo = i + 2 < len ? bp_hex_digit_value((unsigned char)text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                goto invalid;
            }
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
            /* Decoded control bytes would reach HTML, headers or the store; nothing legitimate in
             * OAuth parameters needs them. */
            if (c < 0x20 || c == 0x7f) {
                goto invalid;
            }
        } else if (c < 0x20 || c == 0x7f) {
            goto invalid;
        }
        dst[n++] = (char)c;
    }
    if (n > max) {
        bp_wipe(dst, n);
        bp_free(dst);
        return BP_ERR_LIMIT;
    }
    dst[n] = '\0';
    *out = dst;
    if (out_len != NULL) {
        *out_len = n;
    }
    return BP_OK;
invalid:
    bp_wipe(dst, n);
    bp_free(dst);
    return BP_ERR_INVALID;
}

void
bp_oauth__form_cleanup(struct bp_oauth_form *f)
{
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        bp_free(f->fields[i].name);
        /* Values include passwords, client secrets, codes and tokens. */
        bp_wipe(f->fields[i].value, f->fields[i].value_len);
        bp_free(f->fields[i].value);
    }
    bp_free(f->fields);
    f->fields = NULL;
    f->n = 0;
}

static bool
has_name(const struct bp_oauth_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->fields[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static bp_err
parse_pair(const char *p, size_t n, struct bp_oauth_form *f)
{
    const char *eq = memchr(p, '=', n);
    size_t name_len = eq != NULL ? (size_t)(eq - p) : n;
    const char *val = eq != NULL ? eq + 1 : p + n;
    size_t val_len = eq != NULL ? n - name_len - 1 : 0;
    struct bp_oauth_field fld = {0};
    bp_err rc;

    if (name_len == 0) {
        return BP_ERR_INVALID;
    }
    if (f->n == BP_OAUTH_FORM_MAX_FIELDS) {
        return BP_ERR_LIMIT;
    }
    rc = bp_oauth__form_decode(p, name_len, BP_OAUTH_FORM_MAX_NAME, &fld.name, NULL);
    if (rc != BP_OK) {
        return rc;
    }
    if (fld.name[0] == '\0') {
        bp_free(fld.name);
        return BP_ERR_INVALID;
    }
    if (has_name(f, fld.name)) {
        bp_free(fld.name);
        return BP_ERR_EXISTS;
    }
    rc = bp_oauth__form_decode(val, val_len, BP_OAUTH_FORM_MAX_VALUE, &fld.value, &fld.value_len);
    if (rc != BP_OK) {
        bp_free(fld.name);
        return rc;
    }
    f->fields[f->n++] = fld;
    return BP_OK;
}

bp_err
bp_oauth__form_parse(const char *text, size_t len, struct bp_oauth_form *out)
{
    struct bp_oauth_form f = {0};
    size_t pos = 0;
    bp_err rc = BP_OK;

    f.fields = bp_calloc(BP_OAUTH_FORM_MAX_FIELDS, sizeof(*f.fields));
    while (pos < len) {
        const char *amp = memchr(text + pos, '&', len - pos);
        size_t n = amp != NULL ? (size_t)(amp - (text + pos)) : len - pos;
        if (n > 0) {
            rc = parse_pair(text + pos, n, &f);
            if (rc != BP_OK) {
                bp_oauth__form_cleanup(&f);
                out->fields = NULL;
                out->n = 0;
                return rc;
            }
        }
        pos += n + 1;
    }
    *out = f;
    return BP_OK;
}

const char *
bp_oauth__form_get(const struct bp_oauth_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->fields[i].name, name) == 0) {
            return f->fields[i].value_len > 0 ? f->fields[i].value : NULL;
        }
    }
    return NULL;
}

bp_err
bp_oauth__url_encode(struct bp_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned char c = *p;
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~';
        bp_err rc;
        if (keep) {
            rc = bp_buf_append(b, p, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = bp_buf_append(b, esc, 3);
        }
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}
