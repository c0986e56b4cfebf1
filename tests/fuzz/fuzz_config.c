/* libFuzzer target for the config file path: the input is the content of blnkproxy.json, fed
 * through the same function bp_config_load uses after reading the file. Besides memory safety
 * (ASan/UBSan), it checks that an accepted document leaves every setting within its table
 * bounds and that a refused one always explains itself with the source name. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/settings-int.h"
#include "lib/bug.h"

static int64_t
stored_value(const struct bp_setting *s, const struct bp_config *c)
{
    const char *p = (const char *)c + s->offset;

    switch (s->type) {
    case BP_SETTING_INT:
        if (s->width == sizeof(int)) {
            return *(const int *)p;
        }
        return (int64_t)(*(const size_t *)p);
    case BP_SETTING_SIZE:
        return (int64_t)(*(const size_t *)p);
    case BP_SETTING_DURATION:
        return *(const int64_t *)p;
    case BP_SETTING_LISTEN:
        return *(const int *)((const char *)c + s->aux_offset);
    case BP_SETTING_STRING:
        return (int64_t)strlen(*(char *const *)p);
    case BP_SETTING_OPT_STRING:
    case BP_SETTING_INTERVALS:
    case BP_SETTING_NETS:
        /* absent is a valid value: the module reading it picks its default */
        return *(char *const *)p == NULL ? s->min : (int64_t)strlen(*(char *const *)p);
    case BP_SETTING_BOOL:
        return *(const bool *)p ? 1 : 0;
    case BP_SETTING_LOG_LEVEL:
    case BP_SETTING_AUDIT_MODE:
        return 0;
    case BP_SETTING_RATE: {
        /* The table's bounds are 0..0: a valid rate reads as 0, anything else as out of bounds. */
        const struct bp_rate *r = (const struct bp_rate *)p;
        bool period_ok = r->period_s == 1 || r->period_s == 60 || r->period_s == 3600 || r->period_s == 86400;
        return r->count <= BP_RATE_COUNT_MAX && period_ok ? 0 : -1;
    }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bp_config c;
    char err[512];

    err[0] = '\0';
    bp_config__defaults(&c);
    if (bp_config__load_json_text((const char *)data, size, "fuzz.json", &c, err, sizeof(err)) == BP_OK) {
        for (size_t i = 0; i < bp_config__n_settings; i++) {
            const struct bp_setting *s = &bp_config__settings[i];
            int64_t v = stored_value(s, &c);
            BP_BUG_ON(v < s->min || v > s->max);
        }
        BP_BUG_ON(c.listen_host == NULL || c.listen_host[0] == '\0');
        BP_BUG_ON(c.log_level < 0 || c.log_level > 3);
        BP_BUG_ON(c.audit_reads < BP_AUDIT_OFF || c.audit_reads > BP_AUDIT_SYNC);
        BP_BUG_ON(c.audit_writes < BP_AUDIT_OFF || c.audit_writes > BP_AUDIT_SYNC);
    } else {
        BP_BUG_ON(strncmp(err, "fuzz.json", 9) != 0);
    }
    bp_config_cleanup(&c);
    return 0;
}
