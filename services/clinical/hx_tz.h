/* hx_tz — a clinic's IANA time zone (tzdata, /usr/share/zoneinfo): its UTC offsets and
 * daylight-saving changes from 2000 to 2100, read once through the C library (TZ, tzset,
 * localtime_r) when the directory is loaded; after that, pure lookups.
 *
 * Times are minutes since 1970-01-01T00:00, either UTC instants ("utc") or the wall clock of
 * the zone ("local"). offset = local - utc. */
#ifndef HX_TZ_H
#define HX_TZ_H
#include <stddef.h>
#include <stdint.h>

typedef struct hx_tz hx_tz_t;

/* Loads the zone called name ("America/Toronto", "UTC"). NULL with why ("'America/Torono' is
 * not a time zone of tzdata (/usr/share/zoneinfo)") when the name is malformed, the zone is not
 * installed, or an offset is not a whole number of quarter hours (slots are on a 15-minute
 * grid). TZDIR, when set, is where the zone files are looked for. */
hx_tz_t *hx_tz_load(const char *name, char *why, size_t cap);
void hx_tz_destroy(hx_tz_t **self_p);
const char *hx_tz_name(const hx_tz_t *z);

/* The offset (minutes, local - utc) in force at the instant utc. */
int hx_tz_offset(const hx_tz_t *z, int64_t utc);
/* The wall-clock minute of the instant utc. */
int64_t hx_tz_to_local(const hx_tz_t *z, int64_t utc);
/* The instant a wall-clock minute names: 0 with *utc, the earlier of two when the clock is
 * set back (a fold); -1 when the clock skips it (the gap when it is set forward). */
int hx_tz_to_utc(const hx_tz_t *z, int64_t local, int64_t *utc);
/* The first offset change strictly after the instant utc, or INT64_MAX when none is known. */
int64_t hx_tz_next_change(const hx_tz_t *z, int64_t utc);

/* "-05:00": the offset as ISO 8601 wants it. */
void hx_tz_offset_text(int offset, char out[7]);

#endif
