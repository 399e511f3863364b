/* hx_schedule — the therapist directory (a JSON data file), a calendar of bookings, and
 * the pure slot finder. Times (hx_minute_t) are minutes since 1970-01-01T00:00 UTC: instants.
 * Each clinic has an IANA time zone (hx_tz.h); its therapists' hours, its closures and the
 * patient's availability are its wall-clock times. A directory without zones is read as UTC
 * throughout, which is the network-local time of directories older than zones. */
#ifndef HX_SCHEDULE_H
#define HX_SCHEDULE_H
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "referral.pb-c.h"
#include "hx_errors.h"
#include "hx_tz.h"

typedef int64_t hx_minute_t;

typedef struct {
    uint8_t day;            /* 1 = Monday .. 7 = Sunday */
    uint16_t from, to;      /* minutes after midnight, from < to */
} hx_window_t;

#define HX_CLOSURES_MAX 64

/* Days a clinic is closed (holidays, closures): its own calendar days, inclusive. */
typedef struct {
    int64_t from_day, to_day;       /* days since 1970-01-01 */
} hx_closure_t;

typedef struct {
    char id[32];
    char name[64];
    char city[48];
    char province[3];               /* "ON", "BC", ...; "" when the directory does not say */
    char postal_code[8];            /* "M5V 2T6"; "" when not given */
    bool located;                   /* lat and lon are known */
    double lat, lon;                /* degrees (WGS 84) */
    const hx_tz_t *tz;              /* never NULL: its own, the directory's, or UTC */
    bool zoned;                     /* its zone was given (its own or the directory's) */
    hx_closure_t closures[HX_CLOSURES_MAX];
    size_t n_closures;
} hx_clinic_t;

typedef struct {
    char id[32];
    char name[64];
    Handoff__Discipline discipline;
    char registration[32];
    char clinic_id[32];
    char languages[4][8];
    size_t n_languages;
    bool virtual_ok;
    hx_window_t hours[21];
    size_t n_hours;
    const hx_clinic_t *clinic;      /* its clinic in the same directory */
} hx_therapist_t;

typedef struct hx_directory hx_directory_t;

/* Loads and validates a directory file (format: deploy/sample/directory.json). */
hx_directory_t *hx_directory_load(const char *path, hx_errors_t *errs);
hx_directory_t *hx_directory_parse(const char *text, hx_errors_t *errs);
void hx_directory_destroy(hx_directory_t **self_p);
size_t hx_directory_therapists(const hx_directory_t *d, const hx_therapist_t **out);
size_t hx_directory_clinics(const hx_directory_t *d, const hx_clinic_t **out);
const hx_clinic_t *hx_directory_clinic(const hx_directory_t *d, const char *id);
/* The therapist with this id, or NULL. */
const hx_therapist_t *hx_directory_therapist(const hx_directory_t *d, const char *id);
/* The directory's own time zone ("time_zone"; UTC without one): its --start and its notes. */
const hx_tz_t *hx_directory_zone(const hx_directory_t *d);
/* What the directory lacks but works without, in words ("" when nothing): clinics without a
 * location or a time zone, e.g. "2 clinic(s) without a location (riverdale, laurier): no
 * distances for them". For the log, at load. */
const char *hx_directory_notes(const hx_directory_t *d);
/* Where a postal code is: its forward sortation area (the first three characters, "M5V") in
 * the directory's "areas", else a clinic's with the same area. 0 with lat, lon; -1 unknown. */
int hx_directory_locate(const hx_directory_t *d, const char *postal_code, double *lat, double *lon);
/* Whether the clinic is closed on the instant's day (in its own zone). */
bool hx_clinic_closed(const hx_clinic_t *c, hx_minute_t utc);

/* Great-circle distance in km (haversine on a sphere of the Earth's mean radius). */
double hx_geo_km(double lat1, double lon1, double lat2, double lon2);

typedef struct hx_calendar hx_calendar_t;   /* bookings, per therapist */
hx_calendar_t *hx_calendar_new(void);
void hx_calendar_destroy(hx_calendar_t **self_p);
/* True when therapist is free for [start, start+minutes). */
bool hx_calendar_free(const hx_calendar_t *c, const char *therapist_id, hx_minute_t start, uint32_t minutes);
/* Records a booking; returns -1 (and records nothing) when it overlaps one. */
int hx_calendar_book(hx_calendar_t *c, const char *therapist_id, hx_minute_t start, uint32_t minutes);
/* Removes the booking of therapist that starts at start (a cancelled or declined
 * referral); returns 0, or -1 when there is none. */
int hx_calendar_cancel(hx_calendar_t *c, const char *therapist_id, hx_minute_t start);
/* Forgets what slot searches learned (hx_slot_find): the next search of each therapist starts
 * from scratch. Never needed for correctness (a directory reloaded is a new directory, whose
 * searches never use what was learned with another); the slot finder's tests compare with it. */
void hx_calendar_forget(hx_calendar_t *c);
/* Number of bookings held for therapist. */
size_t hx_calendar_count(const hx_calendar_t *c, const char *therapist_id);

typedef struct {
    Handoff__Discipline discipline;
    uint32_t minutes;
    hx_minute_t not_before;             /* earliest start */
    hx_minute_t horizon;                /* latest start */
    const char *const *clinic_ids;      /* preferred clinics, best first; may be empty */
    size_t n_clinic_ids;
    const char *language;               /* NULL or "" = any */
    const Handoff__Availability *const *availability; /* patient's windows; empty = any */
    size_t n_availability;
    const char *exclude_therapist;      /* NULL or a therapist never to pick */
    const char *const *exclude;         /* more therapists never to pick (e.g. who declined) */
    size_t n_exclude;
    const char *only_clinic;            /* NULL or "": any clinic; else only its therapists (a redirect) */
    const char *only_therapist;         /* NULL or "": any therapist; else only this one */
    /* Near the patient: with has_origin, slots starting before near_until (the priority's
     * bound) are chosen nearest clinic first, then earliest; after it, earliest first. */
    bool has_origin;
    double origin_lat, origin_lon;
    hx_minute_t near_until;
    /* A collaborative pair: only clinics within anchor_km of the anchor (the other handoff's
     * clinic); a therapist who offers virtual sessions is exempt when anchor_virtual_ok (the
     * session will be virtual). A clinic without a location is never within. */
    bool has_anchor;
    double anchor_lat, anchor_lon, anchor_km;
    bool anchor_virtual_ok;
} hx_slot_query_t;

typedef struct {
    const hx_therapist_t *therapist;
    hx_minute_t start;                  /* UTC */
    uint32_t minutes;
    double km;                          /* from the origin; -1 when either place is unknown */
} hx_slot_t;

/* Finds a start (on a 15-minute grid) at which a therapist of the discipline is working for
 * the whole session (its clinic's wall clock; never on a closure day, never in a skipped
 * hour), free in the calendar, inside the patient's windows (the same wall clock) and speaks
 * the language. Near the patient (has_origin): the nearest clinic with a slot before
 * near_until, earliest there; otherwise the earliest slot. Among equals, a preferred clinic
 * wins (earlier in the list first), then the directory order. Returns 0 with *out, or -1.
 * c keeps what the search learned (each therapist's first free start, so that a filling
 * calendar does not make every search walk the booked days again): one thread at a time. */
int hx_slot_find(const hx_directory_t *d, hx_calendar_t *c, const hx_slot_query_t *q, hx_slot_t *out);

/* Whether the clinic or therapist a query is restricted to (only_clinic, only_therapist) can
 * be offered at all, whatever the calendar: the clinic is in the directory and has a
 * therapist of the discipline (speaking the language, when one is asked for, and not
 * excluded); the therapist is in the directory, of the discipline, at that clinic, speaks
 * the language and is not excluded. 0 when it can; HX_SLOT_BAD_CLINIC or
 * HX_SLOT_BAD_THERAPIST (which one is wrong) with why saying what, e.g. "t-cleo (Cleo)
 * practises massage_therapy, not physiotherapy". Pure. */
enum { HX_SLOT_BAD_CLINIC = 1, HX_SLOT_BAD_THERAPIST = 2 };
int hx_slot_restriction_check(const hx_directory_t *d, const hx_slot_query_t *q, char *why, size_t cap);

/* Session length for a discipline: physiotherapy initial assessment 60 min; massage as
 * asked (30, 45, 60, 90; anything else -> 60). */
uint32_t hx_session_minutes(Handoff__Discipline d, uint32_t massage_minutes);
/* The shortest session of discipline d any referral can ask for (massage: 30 minutes). */
uint32_t hx_session_minutes_min(Handoff__Discipline d);

/* "YYYY-MM-DDTHH:MM" <-> minutes. parse returns -1 on a bad string (years 0001..9999, real
 * calendar dates, 00:00..23:59); format clamps to that range. */
#define HX_MINUTE_MIN ((hx_minute_t)INT64_C(-1035593280))   /* 0001-01-01T00:00 */
#define HX_MINUTE_MAX ((hx_minute_t)INT64_C(4223371679))    /* 9999-12-31T23:59 */
int hx_minute_parse(const char *s, hx_minute_t *out);
void hx_minute_format(hx_minute_t m, char out[17]);

#endif
