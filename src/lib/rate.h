#ifndef BP_LIB_RATE_H
#define BP_LIB_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A request rate as operators write it: "100/s", "6000/m", "50000/h", "1000000/d", or "0" for
 * no limit. */
struct bp_rate {
    uint32_t count;    /* requests per period; 0 = unlimited */
    uint32_t period_s; /* 1, 60, 3600 or 86400 */
};

#define BP_RATE_TEXT_MAX 24
#define BP_RATE_COUNT_MAX 1000000000u

/* Parses text[0..len); false for anything else (a count of 1..BP_RATE_COUNT_MAX, '/' and one of
 * s, m, h, d; or exactly "0"). */
bool bp_rate_parse(const char *text, size_t len, struct bp_rate *out);
/* The canonical text ("100/s", "0") into out[BP_RATE_TEXT_MAX]. */
void bp_rate_format(const struct bp_rate *r, char *out);

#endif
