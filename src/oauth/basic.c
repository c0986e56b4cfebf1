/* HTTP Basic client credentials (RFC 7617; RFC 6749 §2.3.1). RFC 6749 requires the client id and
 * secret to be form-urlencoded before they are joined with ':' and base64-encoded, so a ':' in a
 * client id arrives as %3A and is decoded after the split. */
#include <string.h>

#include "lib/alloc.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "oauth/oauth-int.h"

/* Upper bound on the decoded "id:secret": far above our own ids and secrets. */
#define BASIC_MAX_DECODED 1024

static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Strict base64 (RFC 4648 §4): padding optional but, when present, only at the end and only as
 * much as the length needs; no whitespace. Writes at most cap bytes. */
static bp_err
b64_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *out_len)
{
    size_t pad = 0;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;

    while (pad < 2 && len > 0 && in[len - 1] == '=') {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0)) {
        return BP_ERR_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) {
            return BP_ERR_INVALID;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) {
                return BP_ERR_LIMIT;
            }
            out[n++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* Leftover bits must be zero, or two encodings would decode alike. */
    if ((acc & ((1u << bits) - 1)) != 0) {
        return BP_ERR_INVALID;
    }
    *out_len = n;
    return BP_OK;
}

bp_err
bp_oauth__basic_parse(const char *value, size_t len, char **out_id, char **out_secret)
{
    unsigned char raw[BASIC_MAX_DECODED];
    size_t raw_len = 0;
    size_t i = 0;
    const unsigned char *colon;
    char *id = NULL;
    char *secret = NULL;
    size_t secret_len = 0;
    bp_err rc;

    if (len < 6 || !bp_str_ieq(value, 5, "basic") || value[5] != ' ') {
        return BP_ERR_NOT_FOUND;
    }
    i = 5;
    while (i < len && value[i] == ' ') {
        i++;
    }
    while (len > i && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
        len--;
    }
    rc = b64_decode(value + i, len - i, raw, sizeof(raw), &raw_len);
    if (rc != BP_OK) {
        rc = BP_ERR_INVALID;
        goto done;
    }
    colon = memchr(raw, ':', raw_len);
    if (colon == NULL || colon == raw) {
        rc = BP_ERR_INVALID;
        goto done;
    }
    rc = bp_oauth__form_decode((const char *)raw, (size_t)(colon - raw), BP_OAUTH_FORM_MAX_VALUE, &id, NULL);
    if (rc != BP_OK) {
        rc = BP_ERR_INVALID;
        goto done;
    }
    rc = bp_oauth__form_decode((const char *)colon + 1, raw_len - (size_t)(colon - raw) - 1,
                               BP_OAUTH_FORM_MAX_VALUE, &secret, &secret_len);
    if (rc != BP_OK || id[0] == '\0') {
        rc = BP_ERR_INVALID;
        goto done;
    }
    *out_id = id;
    *out_secret = secret;
    id = NULL;
    secret = NULL;
done:
    bp_wipe(raw, sizeof(raw));
    bp_free(id);
    if (secret != NULL) {
        bp_wipe(secret, secret_len);
        bp_free(secret);
    }
    return rc;
}
