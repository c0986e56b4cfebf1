/* What a reload (SIGHUP) may change in a running `serve` (issue 8, item 6).
 *
 * The settings table says per row whether a setting applies live (limits, timeouts, log level,
 * audit modes) or only at the next start (listen address, workers, store, OAuth and audit-writer
 * settings: they shaped threads, sockets or connections that exist already). The route table
 * ("routes") applies live. A reloaded configuration gets the running values of the restart-only
 * settings back, so it always describes what actually runs, and the next reload compares
 * against that.
 *
 * Runs on serve's main thread; touches no shared state. */
#include <string.h>

#include "config/settings-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"

static const void *
cfield(const struct bp_config *c, size_t offset)
{
    return (const char *)c + offset;
}

static bool
same_string(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static bool
is_string(const struct bp_setting *s)
{
    return s->type == BP_SETTING_STRING || s->type == BP_SETTING_OPT_STRING || s->type == BP_SETTING_LISTEN ||
           s->type == BP_SETTING_INTERVALS || s->type == BP_SETTING_NETS;
}

static bool
same_value(const struct bp_setting *s, const struct bp_config *a, const struct bp_config *b)
{
    if (is_string(s)) {
        const char *sa = *(char *const *)cfield(a, s->offset);
        const char *sb = *(char *const *)cfield(b, s->offset);
        if (!same_string(sa, sb)) {
            return false;
        }
        /* HOST:PORT keeps its port beside the host. */
        return s->type != BP_SETTING_LISTEN ||
               *(const int *)cfield(a, s->aux_offset) == *(const int *)cfield(b, s->aux_offset);
    }
    return memcmp(cfield(a, s->offset), cfield(b, s->offset), s->width) == 0;
}

/* Puts running's value of s into next. */
static void
keep_running(const struct bp_setting *s, const struct bp_config *running, struct bp_config *next)
{
    char *base = (char *)next;

    if (is_string(s)) {
        char **slot = (char **)(base + s->offset);
        const char *v = *(char *const *)cfield(running, s->offset);
        bp_free(*slot);
        *slot = v != NULL ? bp_strdup(v) : NULL;
        if (s->type == BP_SETTING_LISTEN) {
            *(int *)(base + s->aux_offset) = *(const int *)cfield(running, s->aux_offset);
        }
        return;
    }
    memcpy(base + s->offset, cfield(running, s->offset), s->width);
}

size_t
bp_config_reload_merge(const struct bp_config *running, struct bp_config *next, struct bp_config_change *out)
{
    size_t n = 0;

    BP_BUG_ON(bp_config__n_settings + 1 > BP_CONFIG_MAX_CHANGES);
    for (size_t i = 0; i < bp_config__n_settings; i++) {
        const struct bp_setting *s = &bp_config__settings[i];
        if (same_value(s, running, next)) {
            continue;
        }
        out[n++] = (struct bp_config_change){.key = s->key, .applied = s->live};
        if (!s->live) {
            keep_running(s, running, next);
        }
    }
    if (!bp_config__routes_equal(running, next)) {
        out[n++] = (struct bp_config_change){.key = "routes", .applied = true};
    }
    return n;
}
