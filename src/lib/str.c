#include "lib/str.h"

#include <string.h>

bp_err
bp_str_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20) {
        return BP_ERR_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9') {
            return BP_ERR_INVALID;
        }
        d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10) {
            return BP_ERR_INVALID;
        }
        v = v * 10 + d;
    }
    *out = v;
    return BP_OK;
}

bp_err
bp_str_parse_duration(const char *s, int64_t *out_seconds)
{
    size_t len = strlen(s);
    uint64_t n;
    uint64_t mult;

    if (strcmp(s, "never") == 0) {
        *out_seconds = -1;
        return BP_OK;
    }
    if (len < 2) {
        return BP_ERR_INVALID;
    }
    switch (s[len - 1]) {
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    default:
        return BP_ERR_INVALID;
    }
    /* At most about a century, so that adding it to "now" can never overflow. */
    if (bp_str_parse_u64(s, len - 1, 36500ULL * 86400 / mult, &n) != BP_OK || n == 0) {
        return BP_ERR_INVALID;
    }
    *out_seconds = (int64_t)(n * mult);
    return BP_OK;
}

int
bp_hex_digit_value(unsigned char c)
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

#define NEAREST_MAX_LEN 64

/* Levenshtein distance with one rolling row; both words are at most NEAREST_MAX_LEN bytes. */
static size_t
edit_distance(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t row[NEAREST_MAX_LEN + 1];

    for (size_t j = 0; j <= blen; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= alen; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= blen; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            diag = up;
            row[j] = best;
        }
    }
    return row[blen];
}

const char *
bp_str_nearest(const char *word, const char *const *candidates, size_t n)
{
    size_t wlen = strlen(word);
    size_t limit = wlen / 3 > 2 ? wlen / 3 : 2;
    const char *best = NULL;
    size_t best_d = limit + 1;

    if (wlen > NEAREST_MAX_LEN) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t clen = strlen(candidates[i]);
        size_t d;
        if (clen > NEAREST_MAX_LEN) {
            continue;
        }
        d = edit_distance(word, wlen, candidates[i], clen);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}
