#ifndef BP_LIB_STR_H
#define BP_LIB_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/err.h"

/* Locale-free helpers for length-carrying text. */

/* ASCII case-insensitive equality of a (alen bytes) and the C string b. Inline: the request
 * path compares header names with constants many times per request, and inlined, the
 * constant's length is known at compile time. */
static inline bool
bp_str_ieq(const char *a, size_t alen, const char *b)
{
    if (alen != strlen(b)) {
        return false;
    }
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i];
        unsigned char y = (unsigned char)b[i];
        x = (x >= 'A' && x <= 'Z') ? (unsigned char)(x + 32) : x;
        y = (y >= 'A' && y <= 'Z') ? (unsigned char)(y + 32) : y;
        if (x != y) {
            return false;
        }
    }
    return true;
}

/* Byte equality of a (alen bytes) and the C string b. */
static inline bool
bp_str_eq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && memcmp(a, b, alen) == 0;
}
/* Parses a non-empty string of decimal digits into *out; BP_ERR_INVALID on anything else or on
 * overflow past max. */
bp_err bp_str_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out);
/* Parses a DESIGN §7 duration: "<n>s", "<n>m", "<n>h", "<n>d" or "never". On BP_OK *out_seconds
 * holds the seconds, or -1 for "never". n must be positive. */
bp_err bp_str_parse_duration(const char *s, int64_t *out_seconds);

/* The candidate closest to word by edit distance (insertions, deletions, substitutions), for
 * "did you mean" hints; NULL when none is within a third of the word's length (at least 2 edits)
 * or there are no candidates. Case-sensitive. Words longer than 64 bytes get no hint. */
const char *bp_str_nearest(const char *word, const char *const *candidates, size_t n);

/* The value of one hex digit (either case), or -1 for any other byte. */
int bp_hex_digit_value(unsigned char c);

#endif
