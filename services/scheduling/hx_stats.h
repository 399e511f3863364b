/* hx_stats — the network's figures scheduling answers a StatsRequest with (docs/PROTOCOL.md,
 * "Network statistics"): its pure parts, unit-tested without a store. The request's handling
 * is hx_stats_on_request (hx_booking_internal.h), through hx_booking_handle. */
#ifndef HX_STATS_H
#define HX_STATS_H
#include <stddef.h>
#include <stdint.h>

#define HX_STATS_WEEKS_DEFAULT 12       /* StatsRequest.weeks 0 */
#define HX_STATS_WEEKS_MAX 52
#define HX_STATS_SLOT_MINUTES 60        /* the session NextSlot looks for, both disciplines */

/* Nearest-rank quantiles of v[0..n), which it sorts: the value at rank ceil(q * n) of the sorted
 * values for q = 0.5 (median) and q = 0.9 (p90); both 0 when n is 0. */
void hx_stats_quantiles(uint32_t *v, size_t n, uint32_t *median, uint32_t *p90);

/* The ISO 8601 week (UTC) the instant ms (since 1970) falls in: "2026-W48" into out (year of
 * its Thursday), and its Monday 00:00 UTC in *week_start_ms. */
void hx_stats_iso_week(uint64_t ms, char out[12], uint64_t *week_start_ms);

#endif
