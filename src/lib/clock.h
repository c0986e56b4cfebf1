#ifndef BP_LIB_CLOCK_H
#define BP_LIB_CLOCK_H

#include <stdint.h>

/* The only place that reads clocks. Monotonic time is for durations and timeouts; wall time
 * (Unix epoch) is for stored timestamps and expiry. Tests may shift wall time. */
int64_t bp_clock_mono_us(void);
int64_t bp_clock_mono_ms(void);
int64_t bp_clock_wall_ms(void);
int64_t bp_clock_wall_us(void);
int64_t bp_clock_wall_s(void);
void bp_clock_set_wall_offset_ms(int64_t offset_ms);
/* Formats a wall time in seconds as RFC 3339 UTC ("2026-11-23T10:00:00Z") into out[21]. */
void bp_clock_format_rfc3339(int64_t wall_s, char out[21]);

#endif
