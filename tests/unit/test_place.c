/* Unit: time zones (hx_tz), places and closures in the directory, and the slot finder in each
 * clinic's own wall clock: bookings inside opening hours in local time, also across the
 * daylight-saving changes; nothing on a closure; the nearest clinic within the priority's
 * bound; a collaborative pair never farther apart than the limit unless virtual. The property
 * tests draw thousands of queries from a fixed seed and check every booking against the rules
 * with conversions made independently (the C library under TZ). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hx_schedule.h"
#include "hx_tz.h"
#include "hx_util.h"

#define PT HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define RMT HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY

static hx_minute_t utc(const char *s)
{
    hx_minute_t m;
    cr_assert_eq(hx_minute_parse(s, &m), 0, "%s", s);
    return m;
}

/* The wall clock of utc in zone, by the C library (independent of hx_tz's table). */
static struct tm libc_local(const char *zone, hx_minute_t m)
{
    char tz[80];
    snprintf(tz, sizeof tz, ":%s", zone);
    setenv("TZ", tz, 1);
    tzset();
    time_t t = (time_t)m * 60;
    struct tm tm;
    localtime_r(&t, &tm);
    unsetenv("TZ");
    tzset();
    return tm;
}

Test(tz, offsets_and_changes_match_the_c_library)
{
    char why[256];
    hx_tz_t *z = hx_tz_load("America/Toronto", why, sizeof why);
    cr_assert_not_null(z, "%s", why);
    /* 2026: EDT from 2026-03-08 07:00Z, EST from 2026-11-01 06:00Z */
    cr_expect_eq(hx_tz_offset(z, utc("2026-03-08T06:59")), -300);
    cr_expect_eq(hx_tz_offset(z, utc("2026-03-08T07:00")), -240);
    cr_expect_eq(hx_tz_offset(z, utc("2026-11-01T05:59")), -240);
    cr_expect_eq(hx_tz_offset(z, utc("2026-11-01T06:00")), -300);
    cr_expect_eq(hx_tz_next_change(z, utc("2026-06-01T00:00")), utc("2026-11-01T06:00"));
    hx_minute_t u;
    cr_expect_eq(hx_tz_to_utc(z, utc("2026-03-08T02:30"), &u), -1, "02:30 is skipped on 2026-03-08");
    cr_expect_eq(hx_tz_to_utc(z, utc("2026-11-01T01:30"), &u), 0);
    cr_expect_eq(u, utc("2026-11-01T05:30"), "a fold takes the first 01:30 (EDT)");
    cr_expect_eq(hx_tz_to_utc(z, utc("2026-07-01T09:00"), &u), 0);
    cr_expect_eq(u, utc("2026-07-01T13:00"));
    /* every hour of 2026 to 2028 against localtime_r */
    for (hx_minute_t m = utc("2026-01-01T00:00"); m < utc("2029-01-01T00:00"); m += 60) {
        struct tm tm = libc_local("America/Toronto", m);
        if (hx_tz_offset(z, m) != (int)(tm.tm_gmtoff / 60))
            cr_assert_fail("offset at %lld differs", (long long)m);
    }
    char off[7];
    hx_tz_offset_text(-210, off);
    cr_expect_str_eq(off, "-03:30");
    hx_tz_destroy(&z);
    cr_expect_null(hx_tz_load("America/Torono", why, sizeof why));
    cr_expect_not_null(strstr(why, "'America/Torono' is not a time zone"), "%s", why);
    cr_expect_null(hx_tz_load("../../etc/passwd", why, sizeof why));
}

/* Two clinics, Toronto and Vancouver, each with a physiotherapist working 09:00-17:00 local,
 * Monday to Friday, and a massage therapist; Toronto closed on 2026-12-25 and 2026-12-28. */
static const char two_zones[] =
    "{\"version\": 2, \"time_zone\": \"America/Toronto\","
    " \"areas\": [{\"fsa\": \"M4C\", \"lat\": 43.686, \"lon\": -79.31}],"
    " \"clinics\": ["
    "  {\"id\": \"to\", \"name\": \"Toronto\", \"province\": \"ON\", \"time_zone\": \"America/Toronto\","
    "   \"location\": {\"lat\": 43.6453, \"lon\": -79.3806, \"postal_code\": \"M5J 2N8\"},"
    "   \"closures\": [{\"from\": \"2026-12-25\", \"reason\": \"Christmas\"}, {\"from\": \"2026-12-28\", \"to\": \"2026-12-28\"}]},"
    "  {\"id\": \"mi\", \"name\": \"Mississauga\", \"province\": \"ON\","
    "   \"location\": {\"lat\": 43.589, \"lon\": -79.644, \"postal_code\": \"L5B 1M2\"}},"
    "  {\"id\": \"va\", \"name\": \"Vancouver\", \"province\": \"BC\", \"time_zone\": \"America/Vancouver\","
    "   \"location\": {\"lat\": 49.2827, \"lon\": -123.1207, \"postal_code\": \"V6B 1A1\"}}],"
    " \"therapists\": ["
    "  {\"id\": \"t-to\", \"name\": \"A\", \"discipline\": \"physiotherapy\", \"registration\": \"CPO 14001\", \"clinic_id\": \"to\","
    "   \"languages\": [\"en\"], \"hours\": [{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":2,\"from\":\"09:00\",\"to\":\"17:00\"},"
    "   {\"day\":3,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":4,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":5,\"from\":\"09:00\",\"to\":\"17:00\"}]},"
    "  {\"id\": \"t-mi\", \"name\": \"B\", \"discipline\": \"physiotherapy\", \"registration\": \"CPO 14002\", \"clinic_id\": \"mi\","
    "   \"languages\": [\"en\"], \"hours\": [{\"day\":1,\"from\":\"07:00\",\"to\":\"09:00\"},{\"day\":3,\"from\":\"07:00\",\"to\":\"09:00\"}]},"
    "  {\"id\": \"t-va\", \"name\": \"C\", \"discipline\": \"physiotherapy\", \"registration\": \"CHCPBC 14003\", \"clinic_id\": \"va\","
    "   \"languages\": [\"en\"], \"hours\": [{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":2,\"from\":\"09:00\",\"to\":\"17:00\"},"
    "   {\"day\":3,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":4,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":5,\"from\":\"09:00\",\"to\":\"17:00\"},"
    "   {\"day\":7,\"from\":\"00:00\",\"to\":\"04:00\"}]},"
    "  {\"id\": \"r-va\", \"name\": \"D\", \"discipline\": \"massage_therapy\", \"registration\": \"CCHPBC 20004\", \"clinic_id\": \"va\","
    "   \"languages\": [\"en\"], \"virtual\": true, \"hours\": [{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"}]},"
    "  {\"id\": \"r-mi\", \"name\": \"E\", \"discipline\": \"massage_therapy\", \"registration\": \"CMTO 20005\", \"clinic_id\": \"mi\","
    "   \"languages\": [\"en\"], \"hours\": [{\"day\":2,\"from\":\"12:00\",\"to\":\"18:00\"}]}]}";

static hx_directory_t *directory(void)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_parse(two_zones, &errs);
    char why[1024];
    hx_errors_join(&errs, why, sizeof why);
    cr_assert_not_null(d, "%s", why);
    return d;
}

static hx_slot_query_t q_pt(const char *from, int days)
{
    hx_minute_t t0 = utc(from);
    return (hx_slot_query_t){.discipline = PT, .minutes = 60, .not_before = t0, .horizon = t0 + days * 1440};
}

Test(place, directory_places_zones_and_notes)
{
    hx_directory_t *d = directory();
    const hx_clinic_t *to = hx_directory_clinic(d, "to"), *mi = hx_directory_clinic(d, "mi");
    cr_expect_str_eq(hx_tz_name(to->tz), "America/Toronto");
    cr_expect_str_eq(hx_tz_name(mi->tz), "America/Toronto", "the directory's zone");
    cr_expect_str_eq(to->province, "ON");
    cr_expect(to->located);
    cr_expect_str_eq(hx_directory_notes(d), "");
    double lat, lon;
    cr_expect_eq(hx_directory_locate(d, "m4c 1a1", &lat, &lon), 0);
    cr_expect_float_eq(lat, 43.686, 1e-9);
    cr_expect_eq(hx_directory_locate(d, "L5B 3C2", &lat, &lon), 0, "a clinic's area");
    cr_expect_float_eq(lat, 43.589, 1e-9);
    cr_expect_eq(hx_directory_locate(d, "K1P 5G3", &lat, &lon), -1);
    cr_expect_eq(hx_directory_locate(d, "12345", &lat, &lon), -1);
    /* Toronto to Vancouver is about 3,350 km; Toronto to Mississauga about 22 */
    double km = hx_geo_km(to->lat, to->lon, 49.2827, -123.1207);
    cr_expect(km > 3300 && km < 3400, "%f", km);
    cr_expect(hx_clinic_closed(to, utc("2026-12-25T15:00")));
    cr_expect(hx_clinic_closed(to, utc("2026-12-26T04:59")), "23:59 EST on the 25th");
    cr_expect_not(hx_clinic_closed(to, utc("2026-12-26T05:00")), "00:00 EST on the 26th");
    hx_directory_destroy(&d);
}

Test(place, an_old_directory_loads_with_notes_and_utc)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_parse(
        "{\"clinics\": [{\"id\": \"a\", \"name\": \"A\"}], \"therapists\": []}", &errs);
    cr_assert_not_null(d);
    cr_expect_str_eq(hx_tz_name(hx_directory_clinic(d, "a")->tz), "UTC");
    cr_expect_not_null(strstr(hx_directory_notes(d), "1 clinic(s) without a location (a)"), "%s", hx_directory_notes(d));
    cr_expect_not_null(strstr(hx_directory_notes(d), "without a time zone (a)"), "%s", hx_directory_notes(d));
    hx_directory_destroy(&d);
}

Test(place, bad_places_are_named)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_null(hx_directory_parse(
        "{\"time_zone\": \"Mars/Olympus\", \"clinics\": [], \"therapists\": []}", &errs));
    char why[2048];
    hx_errors_join(&errs, why, sizeof why);
    cr_expect_not_null(strstr(why, "time_zone: 'Mars/Olympus' is not a time zone"), "%s", why);
    hx_errors_clear(&errs);
    cr_expect_null(hx_directory_parse(
        "{\"clinics\": [{\"id\": \"a\", \"name\": \"A\", \"province\": \"ZZ\", \"location\": {\"lat\": 91, \"lon\": 0,"
        " \"postal_code\": \"12345\"}, \"closures\": [{\"from\": \"2026-12-26\", \"to\": \"2026-12-25\"}],"
        " \"time_zone\": \"America/Nowhere\"}], \"therapists\": []}", &errs));
    hx_errors_join(&errs, why, sizeof why);
    const char *want[] = {"clinics[0].province: must be a province", "clinics[0].location.lat: required: a latitude",
                          "clinics[0].location.postal_code: must be a Canadian postal code",
                          "clinics[0].closures[0].to: must be a date YYYY-MM-DD, not before",
                          "clinics[0].time_zone: 'America/Nowhere' is not a time zone"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect_not_null(strstr(why, want[i]), "missing '%s' in: %s", want[i], why);
}

Test(place, a_therapist_is_registered_by_a_body_of_its_clinics_province)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    char text[sizeof two_zones + 16];
    snprintf(text, sizeof text, "%s", two_zones);
    char *reg = strstr(text, "CHCPBC 14003");
    cr_assert_not_null(reg);
    memcpy(reg, "CPO    14003", 12);        /* an Ontario body for a Vancouver physiotherapist */
    cr_expect_null(hx_directory_parse(text, &errs));
    char why[1024];
    hx_errors_join(&errs, why, sizeof why);
    cr_expect_not_null(strstr(why, "therapists[2].registration: must be \"CHCPBC\""), "%s", why);
    cr_expect_not_null(strstr(why, "for a physiotherapist in BC"), "%s", why);
}

Test(place, hours_are_the_clinics_own_wall_clock)
{
    hx_directory_t *d = directory();
    hx_calendar_t *c = hx_calendar_new();
    hx_slot_query_t q = q_pt("2026-11-30T00:00", 14);   /* a Monday, UTC */
    q.only_clinic = "va";
    hx_slot_t s;
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_eq(s.start, utc("2026-11-30T17:00"), "09:00 in Vancouver (PST, -08:00) is 17:00Z");
    q.only_clinic = "to";
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_eq(s.start, utc("2026-11-30T14:00"), "09:00 in Toronto (EST) is 14:00Z");
    /* in summer the same wall clock is an hour earlier in UTC */
    q = q_pt("2026-07-06T00:00", 14);
    q.only_clinic = "to";
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_eq(s.start, utc("2026-07-06T13:00"));
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(place, nothing_on_a_closure)
{
    hx_directory_t *d = directory();
    hx_calendar_t *c = hx_calendar_new();
    hx_slot_query_t q = q_pt("2026-12-25T00:00", 14);   /* Friday 25th closed, Monday 28th closed */
    q.only_clinic = "to";
    hx_slot_t s;
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_eq(s.start, utc("2026-12-29T14:00"), "Tuesday the 29th, 09:00 EST");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(place, a_daylight_saving_change_is_booked_by_the_wall_clock)
{
    hx_directory_t *d = directory();
    hx_calendar_t *c = hx_calendar_new();
    /* Vancouver's therapist also works Sunday 00:00-04:00; on 2026-03-08 02:00-03:00 does not exist */
    hx_slot_query_t q = q_pt("2026-03-08T08:00", 1);    /* 00:00 PST */
    q.only_therapist = "t-va";
    hx_slot_t s;
    hx_minute_t starts[8];
    size_t n = 0;
    while (n < 8 && hx_slot_find(d, c, &q, &s) == 0) {
        starts[n++] = s.start;
        cr_assert_eq(hx_calendar_book(c, "t-va", s.start, 60), 0);
    }
    /* 00:00-01:00 PST (08:00Z), 01:00 PST (09:00Z); 02:00 is skipped; 03:00 PDT (10:00Z) would end at 04:00 */
    cr_expect_eq(n, 3, "three sessions fit the wall-clock window, got %zu", n);
    cr_expect_eq(starts[0], utc("2026-03-08T08:00"));
    cr_expect_eq(starts[1], utc("2026-03-08T09:00"));
    cr_expect_eq(starts[2], utc("2026-03-08T10:00"), "03:00 PDT");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(place, the_nearest_clinic_within_the_bound_then_the_earliest)
{
    hx_directory_t *d = directory();
    hx_calendar_t *c = hx_calendar_new();
    hx_slot_query_t q = q_pt("2026-11-30T00:00", 30);
    hx_slot_t s;
    /* no origin: the earliest, Mississauga's 07:00 EST */
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_str_eq(s.therapist->id, "t-mi");
    cr_expect_float_eq(s.km, -1, 1e-9);
    /* a patient in M4C (east Toronto), bound one week: Toronto is nearer than Mississauga */
    q.has_origin = true;
    cr_assert_eq(hx_directory_locate(d, "M4C", &q.origin_lat, &q.origin_lon), 0);
    q.near_until = q.not_before + 7 * 1440;
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_str_eq(s.therapist->id, "t-to");
    cr_expect(s.km > 5 && s.km < 8, "M4C to Toronto's clinic: %f km", s.km);
    /* Toronto fully booked for the week: the next nearest within the bound */
    for (hx_minute_t m = utc("2026-11-30T14:00"); m < utc("2026-12-07T00:00"); m += 60)
        hx_calendar_book(c, "t-to", m, 60);
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_str_eq(s.therapist->id, "t-mi");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(place, a_collaborative_pair_stays_within_the_limit_unless_virtual)
{
    hx_directory_t *d = directory();
    hx_calendar_t *c = hx_calendar_new();
    const hx_clinic_t *to = hx_directory_clinic(d, "to");
    hx_slot_query_t q = {.discipline = RMT, .minutes = 60, .not_before = utc("2026-11-30T00:00"),
                         .horizon = utc("2026-12-30T00:00"), .has_anchor = true, .anchor_lat = to->lat,
                         .anchor_lon = to->lon, .anchor_km = 50};
    hx_slot_t s;
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_str_eq(s.therapist->id, "r-mi", "Vancouver's massage (Monday, earlier) is 3,000 km away");
    q.anchor_virtual_ok = true;
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect_str_eq(s.therapist->id, "r-va", "a virtual session is exempt");
    q.anchor_virtual_ok = false;
    q.anchor_km = 5;
    cr_expect_neq(hx_slot_find(d, c, &q, &s), 0, "nothing within 5 km");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

/* ---- properties ---------------------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Is [start, start+minutes) inside one of t's windows by its clinic's wall clock (the C
 * library's conversion), and not on a closure day? */
static bool inside_hours(const hx_therapist_t *t, hx_minute_t start, uint32_t minutes)
{
    const char *zone = hx_tz_name(t->clinic->tz);
    struct tm a = libc_local(zone, start), b = libc_local(zone, start + minutes);
    unsigned wd = a.tm_wday == 0 ? 7 : (unsigned)a.tm_wday;
    unsigned from = (unsigned)(a.tm_hour * 60 + a.tm_min), to = (unsigned)(b.tm_hour * 60 + b.tm_min);
    if (b.tm_mday != a.tm_mday)
        to = to == 0 ? 1440 : 99999;
    int64_t day = hx_days_from_civil(a.tm_year + 1900, (unsigned)a.tm_mon + 1, (unsigned)a.tm_mday);
    for (size_t i = 0; i < t->clinic->n_closures; i++)
        if (day >= t->clinic->closures[i].from_day && day <= t->clinic->closures[i].to_day)
            return false;
    for (size_t i = 0; i < t->n_hours; i++)
        if (t->hours[i].day == wd && from >= t->hours[i].from && to <= t->hours[i].to)
            return true;
    return false;
}

Test(place_properties, every_booking_inside_local_hours_across_dst_and_closures)
{
    hx_directory_t *d = directory();
    hx_calendar_t *c = hx_calendar_new();
    /* starts spread over the weeks around both 2026 changes and the closures */
    const char *around[] = {"2026-03-01T00:00", "2026-10-25T00:00", "2026-12-20T00:00"};
    size_t booked = 0;
    for (int i = 0; i < 3000; i++) {
        hx_minute_t t0 = utc(around[i % 3]) + (hx_minute_t)(next() % (14 * 1440));
        uint32_t len[] = {30, 45, 60, 90};
        hx_slot_query_t q = {.discipline = next() % 2 ? PT : RMT, .minutes = len[next() % 4], .not_before = t0,
                             .horizon = t0 + 21 * 1440};
        hx_slot_t s;
        if (hx_slot_find(d, c, &q, &s) != 0)
            continue;
        cr_assert(s.start >= t0 && s.start <= q.horizon);
        cr_assert(inside_hours(s.therapist, s.start, s.minutes), "query %d: %s at %lld (%u min) outside its hours",
                  i, s.therapist->id, (long long)s.start, s.minutes);
        cr_assert_eq(hx_calendar_book(c, s.therapist->id, s.start, s.minutes), 0, "free when found");
        booked++;
    }
    cr_expect_gt(booked, 500, "enough bookings to mean something: %zu", booked);
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(place_properties, a_collaborative_pair_is_never_farther_apart_than_the_limit)
{
    hx_directory_t *d = directory();
    hx_calendar_t *c = hx_calendar_new();
    size_t pairs = 0;
    for (int i = 0; i < 2000; i++) {
        hx_minute_t t0 = utc("2026-11-30T00:00") + (hx_minute_t)(next() % (30 * 1440));
        hx_slot_query_t q = {.discipline = PT, .minutes = 60, .not_before = t0, .horizon = t0 + 30 * 1440};
        hx_slot_t pt, rmt;
        if (hx_slot_find(d, c, &q, &pt) != 0)
            continue;
        hx_calendar_book(c, pt.therapist->id, pt.start, 60);
        double limit = 10 + next() % 100;
        hx_slot_query_t m = {.discipline = RMT, .minutes = 60, .not_before = pt.start + 60, .horizon = t0 + 44 * 1440,
                             .has_anchor = true, .anchor_lat = pt.therapist->clinic->lat,
                             .anchor_lon = pt.therapist->clinic->lon, .anchor_km = limit,
                             .anchor_virtual_ok = next() % 2};
        if (hx_slot_find(d, c, &m, &rmt) != 0)
            continue;
        hx_calendar_book(c, rmt.therapist->id, rmt.start, 60);
        const hx_clinic_t *a = pt.therapist->clinic, *b = rmt.therapist->clinic;
        bool virt = m.anchor_virtual_ok && rmt.therapist->virtual_ok;
        cr_assert(virt || hx_geo_km(a->lat, a->lon, b->lat, b->lon) <= limit, "pair %d: %s and %s over %.0f km", i,
                  a->id, b->id, limit);
        pairs++;
    }
    cr_expect_gt(pairs, 100, "%zu pairs", pairs);
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}
