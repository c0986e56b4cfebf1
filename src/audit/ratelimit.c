/* At most one warning line per interval for conditions that can repeat per request (queue
 * full, store down): the log stays readable and the count of the others is not lost. */
#include "audit/audit-int.h"
#include "lib/clock.h"

bool
bp_audit__ratelimit_allow(struct bp_audit_ratelimit *rl, int64_t interval_ms, uint64_t *out_suppressed)
{
    int64_t now = bp_clock_mono_ms();
    int64_t next = atomic_load(&rl->next_ms);

    if (now >= next && atomic_compare_exchange_strong(&rl->next_ms, &next, now + interval_ms)) {
        *out_suppressed = atomic_exchange(&rl->suppressed, 0);
        return true;
    }
    atomic_fetch_add(&rl->suppressed, 1);
    return false;
}
