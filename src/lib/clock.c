#include "lib/clock.h"

#include <stdatomic.h>
#include <time.h>

static atomic_llong wall_offset_ms;

int64_t
bp_clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
bp_clock_mono_ms(void)
{
    return bp_clock_mono_us() / 1000;
}

int64_t
bp_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&wall_offset_ms);
}

int64_t
bp_clock_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + atomic_load(&wall_offset_ms) * 1000;
}

int64_t
bp_clock_wall_s(void)
{
    return bp_clock_wall_ms() / 1000;
}

void
bp_clock_set_wall_offset_ms(int64_t offset_ms)
{
    atomic_store(&wall_offset_ms, offset_ms);
}

void
bp_clock_format_rfc3339(int64_t wall_s, char out[21])
{
    time_t t = (time_t)wall_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
