/* What a credential is held to besides its scopes and instances (issue 12): where it may be used
 * from and how fast, parsed into the store's canonical forms. The CLI's flags and the admin API's
 * JSON fields both come here, so a restriction typed either way is stored the same way. */
#include <string.h>

#include "auth/auth.h"
#include "lib/alloc.h"
#include "lib/ipnet.h"
#include "lib/rate.h"
#include "store/store.h"

void
bp_cred_limits_cleanup(struct bp_cred_limits *l)
{
    bp_free(l->allow_from);
    bp_free(l->rate_limit);
    memset(l, 0, sizeof(*l));
}

bool
bp_cred_limits_allow(struct bp_cred_limits *l, const char *text, char *bad, size_t bad_cap)
{
    char *canonical = NULL;

    if (bad != NULL && bad_cap > 0) {
        bad[0] = '\0';
    }
    if (strcmp(text, "any") != 0) {
        canonical = bp_ipnet_list_canonical(text, BP_ALLOW_FROM_MAX, bad, bad_cap);
        if (canonical == NULL) {
            return false;
        }
    }
    bp_free(l->allow_from);
    l->allow_from = canonical;
    l->allow_set = true;
    return true;
}

bool
bp_cred_limits_rate(struct bp_cred_limits *l, const char *text)
{
    struct bp_rate r;
    char canonical[BP_RATE_TEXT_MAX];

    if (strcmp(text, "default") == 0) {
        bp_free(l->rate_limit);
        l->rate_limit = NULL;
    } else if (bp_rate_parse(text, strlen(text), &r)) {
        bp_rate_format(&r, canonical);
        bp_free(l->rate_limit);
        l->rate_limit = bp_strdup(canonical);
    } else {
        return false;
    }
    l->rate_set = true;
    return true;
}

bool
bp_cred_limits_burst(struct bp_cred_limits *l, uint64_t burst)
{
    if (burst == 0 || burst > BP_RATE_COUNT_MAX || l->rate_limit == NULL || strcmp(l->rate_limit, "0") == 0) {
        return false;
    }
    l->burst = (int64_t)burst;
    return true;
}
