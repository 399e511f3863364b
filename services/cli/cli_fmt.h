/* cli_fmt — how the clinic CLI writes times, durations, sizes and rates for people. Pure
 * except cli_now_ms, which reads the clock (or HANDOFF_TEST_NOW_MS, a fixed clock for tests). */
#ifndef CLI_FMT_H
#define CLI_FMT_H
#include <stddef.h>
#include <stdint.h>

#define CLI_FMT_LEN 32      /* enough for every string written here */

/* Wall-clock milliseconds since the epoch; HANDOFF_TEST_NOW_MS (decimal) overrides it. */
uint64_t cli_now_ms(void);
/* "2026-11-25 14:05" in local time (TZ); "-" for 0. */
const char *cli_time_abs(uint64_t ms, char out[CLI_FMT_LEN]);
/* Relative to now: "just now", "42s ago", "3m ago", "5h ago", "2d ago"; a week or more ago,
 * or in the future by more than a minute, the absolute time. "-" for 0. */
const char *cli_time_ago(uint64_t now_ms, uint64_t ms, char out[CLI_FMT_LEN]);
/* A duration: "850ms", "12s", "3m05s", "2h10m", "3d04h". */
const char *cli_duration(uint64_t ms, char out[CLI_FMT_LEN]);
/* Bytes: "512 B", "3.4 KiB", "12.0 MiB", "1.1 GiB". */
const char *cli_bytes(uint64_t n, char out[CLI_FMT_LEN]);
/* A rate per second: "0", "0.4", "12", "3.2k", "1.5M". */
const char *cli_rate(double per_s, char out[CLI_FMT_LEN]);
/* "2026-11-24T09:00" (a booking's start, the receiving clinic's wall clock) as "2026-11-24
 * 09:00", with its UTC offset when the booking has one ("2026-11-24 09:00 -05:00"); other text
 * unchanged. offset may be NULL or "". */
const char *cli_slot_text(const char *start, const char *offset, char out[CLI_FMT_LEN]);

#endif
