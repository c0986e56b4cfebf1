#include "lib/rate.h"

#include <stdio.h>

#include "lib/str.h"

bool
bp_rate_parse(const char *text, size_t len, struct bp_rate *out)
{
    static const struct {
        char unit;
        uint32_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    uint64_t count = 0;

    if (len == 1 && text[0] == '0') {
        *out = (struct bp_rate){0, 1};
        return true;
    }
    if (len < 3 || text[len - 2] != '/' ||
        bp_str_parse_u64(text, len - 2, BP_RATE_COUNT_MAX, &count) != BP_OK || count == 0 || text[0] == '0') {
        return false;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (text[len - 1] == units[i].unit) {
            *out = (struct bp_rate){(uint32_t)count, units[i].seconds};
            return true;
        }
    }
    return false;
}

void
bp_rate_format(const struct bp_rate *r, char *out)
{
    char unit = r->period_s == 86400 ? 'd' : r->period_s == 3600 ? 'h' : r->period_s == 60 ? 'm' : 's';

    if (r->count == 0) {
        snprintf(out, BP_RATE_TEXT_MAX, "0");
        return;
    }
    snprintf(out, BP_RATE_TEXT_MAX, "%u/%c", (unsigned)r->count, unit);
}
