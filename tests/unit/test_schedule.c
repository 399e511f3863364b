/* Unit tests for hx_schedule: directory validation, minutes, the calendar, the slot finder,
 * and a seeded property test over 10,000 random bookings. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glob.h>

#include "hx_refjson.h"
#include "hx_schedule.h"
#include "hx_triage.h"
#include "hx_util.h"
#include "clinical_test.h"

#define PHYSIO HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define MASSAGE HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY
#define DAY 1440
#define WEEK (7 * DAY)

/* ---- helpers ------------------------------------------------------------------------- */




static hx_minute_t at(const char *s)
{
    hx_minute_t m;
    cr_assert_eq(hx_minute_parse(s, &m), 0, "bad test time %s", s);
    return m;
}

static const char *fmt(hx_minute_t m)
{
    static char buf[4][17];
    static int k;
    k = (k + 1) % 4;
    hx_minute_format(m, buf[k]);
    return buf[k];
}

static hx_directory_t *load_sample_directory(void)
{
    char *path = src_path("deploy/sample/directory.json");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_load(path, &errs);
    cr_assert(d, "%s: %s", path, joined(&errs));
    free(path);
    return d;
}

/* ---- the sample directory ------------------------------------------------------------ */

Test(directory, sample_loads)
{
    hx_directory_t *d = load_sample_directory();
    const hx_clinic_t *clinics;
    const hx_therapist_t *ts;
    size_t nc = hx_directory_clinics(d, &clinics);
    size_t nt = hx_directory_therapists(d, &ts);
    cr_expect_geq(nc, 5);
    cr_expect_geq(nt, 14);
    cr_expect_str_eq(hx_directory_clinic(d, "lakeside")->city, "Mississauga");
    cr_expect_null(hx_directory_clinic(d, "nowhere"));
    const hx_therapist_t *amira = hx_directory_therapist(d, "t-amira");
    cr_assert(amira);
    cr_expect_eq(amira->discipline, PHYSIO);
    cr_expect_str_eq(amira->registration, "CPO 14523");
    cr_expect_str_eq(amira->languages[1], "ar");
    cr_expect(amira->virtual_ok);
    cr_expect_eq(amira->n_hours, 5);
    cr_expect_eq(amira->hours[0].from, 8 * 60);

    /* Both disciplines in several clinics, the languages, evenings and Saturdays. */
    size_t both = 0;
    for (size_t c = 0; c < nc; c++) {
        bool physio = false, massage = false;
        for (size_t i = 0; i < nt; i++)
            if (!strcmp(ts[i].clinic_id, clinics[c].id)) {
                physio |= ts[i].discipline == PHYSIO;
                massage |= ts[i].discipline == MASSAGE;
            }
        both += physio && massage;
    }
    cr_expect_geq(both, 3);
    static const char *const langs[] = {"en", "fr", "pt", "zh", "ar", "es"};
    for (size_t l = 0; l < 6; l++) {
        bool found = false;
        for (size_t i = 0; i < nt; i++)
            for (size_t k = 0; k < ts[i].n_languages; k++)
                found |= !strcmp(ts[i].languages[k], langs[l]);
        cr_expect(found, "nobody speaks %s", langs[l]);
    }
    bool evening = false, saturday = false;
    for (size_t i = 0; i < nt; i++)
        for (size_t k = 0; k < ts[i].n_hours; k++) {
            evening |= ts[i].hours[k].to >= 19 * 60;
            saturday |= ts[i].hours[k].day == 6;
        }
    cr_expect(evening && saturday);
    hx_directory_destroy(&d);
    cr_expect_null(d);
    hx_directory_destroy(&d);
    hx_directory_destroy(NULL);
}

/* ---- directory validation ------------------------------------------------------------ */

#define CLINICS "\"clinics\":[{\"id\":\"alpha\",\"name\":\"Alpha Physio\"},{\"id\":\"beta\",\"name\":\"Beta\"}]"
#define T_BEGIN "{\"id\":\"t-a\",\"name\":\"Ann\",\"discipline\":\"physiotherapy\",\"registration\":\"CPO 11111\","
#define T_LANG "\"languages\":[\"en\"],"
#define T_HOURS "\"hours\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"}]"
#define GOOD_T(id) "{\"id\":\"" id "\",\"name\":\"N\",\"discipline\":\"physiotherapy\",\"registration\":\"CPO 12345\"," \
                   "\"clinic_id\":\"alpha\"," T_LANG T_HOURS "}"

static const struct {
    const char *text, *path, *why;
} bad_directories[] = {
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"nowhere\"," T_LANG T_HOURS "}]}",
     "therapists[0].clinic_id", "no clinic with id \"nowhere\""},
    {"{" CLINICS ",\"therapists\":[{\"id\":\"t-a\",\"name\":\"Ann\",\"discipline\":\"physician\","
     "\"registration\":\"CPSO 11111\",\"clinic_id\":\"alpha\"," T_LANG T_HOURS "}]}",
     "therapists[0].discipline", "must be \"physiotherapy\" or \"massage_therapy\""},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG
     "\"hours\":[{\"day\":8,\"from\":\"09:00\",\"to\":\"17:00\"}]}]}",
     "therapists[0].hours[0].day", "must be 1 (Monday) to 7 (Sunday)"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG
     "\"hours\":[{\"day\":1,\"from\":\"8:00\",\"to\":\"17:00\"}]}]}",
     "therapists[0].hours[0].from", "must be a time HH:MM"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG
     "\"hours\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"17:60\"}]}]}",
     "therapists[0].hours[0].to", "must be a time HH:MM"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG
     "\"hours\":[{\"day\":1,\"from\":\"17:00\",\"to\":\"09:00\"}]}]}",
     "therapists[0].hours[0].to", "must be after from (17:00)"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG
     "\"hours\":[{\"day\":1,\"from\":\"09:00\"}]}]}",
     "therapists[0].hours[0].to", "required"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG
     "\"hours\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"12:00\"},{\"day\":1,\"from\":\"11:00\",\"to\":\"17:00\"}]}]}",
     "therapists[0].hours[1]", "overlaps another window on day 1 (09:00-12:00)"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG
     "\"hours\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\",\"room\":2}]}]}",
     "therapists[0].hours[0].room", "unknown field"},
    {"{" CLINICS ",\"therapists\":[{\"id\":\"T_Ann\",\"name\":\"Ann\",\"discipline\":\"physiotherapy\","
     "\"registration\":\"CPO 11111\",\"clinic_id\":\"alpha\"," T_LANG T_HOURS "}]}",
     "therapists[0].id", "must be an id"},
    {"{" CLINICS ",\"therapists\":[{\"id\":\"t-0123456789012345678901234567890\",\"name\":\"Ann\","
     "\"discipline\":\"physiotherapy\",\"registration\":\"CPO 11111\",\"clinic_id\":\"alpha\"," T_LANG T_HOURS "}]}",
     "therapists[0].id", "at most 31"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG T_HOURS ",\"colour\":\"blue\"}]}",
     "therapists[0].colour", "unknown field"},
    {"{" CLINICS ",\"therapists\":[{\"id\":\"t-a\",\"discipline\":\"physiotherapy\",\"registration\":\"CPO 11111\","
     "\"clinic_id\":\"alpha\"," T_LANG T_HOURS "}]}",
     "therapists[0].name", "required"},
    {"{" CLINICS ",\"therapists\":[{\"id\":\"t-a\",\"name\":\"Ann\",\"discipline\":\"physiotherapy\","
     "\"registration\":\"11111\",\"clinic_id\":\"alpha\"," T_LANG T_HOURS "}]}",
     "therapists[0].registration", "must be \"CPO\" and 4 to 8 digits"},
    {"{" CLINICS ",\"therapists\":[{\"id\":\"t-a\",\"name\":\"Ann\",\"discipline\":\"massage_therapy\","
     "\"registration\":\"CPO 11111\",\"clinic_id\":\"alpha\"," T_LANG T_HOURS "}]}",
     "therapists[0].registration", "must be \"CMTO\""},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\",\"languages\":[]," T_HOURS "}]}",
     "therapists[0].languages", "1 to 4 languages"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\",\"languages\":[\"en\",\"English\"]," T_HOURS "}]}",
     "therapists[0].languages[1]", "language code"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG "\"virtual\":\"yes\"," T_HOURS "}]}",
     "therapists[0].virtual", "must be true or false"},
    {"{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG "\"hours\":{}}]}",
     "therapists[0].hours", "must be an array"},
    {"{\"clinics\":[{\"id\":\"alpha\",\"name\":\"A\"},{\"id\":\"alpha\",\"name\":\"B\"}],\"therapists\":[]}",
     "clinics[1].id", "duplicate of clinics[0].id (\"alpha\")"},
    {"{\"clinics\":[{\"id\":\"alpha\"}],\"therapists\":[]}", "clinics[0].name", "required"},
    {"{\"clinics\":[{\"id\":\"\",\"name\":\"A\"}],\"therapists\":[]}", "clinics[0].id", "must not be empty"},
    {"{\"clinics\":[{\"id\":\"alpha\",\"name\":\"A\",\"phone\":\"1\"}],\"therapists\":[]}", "clinics[0].phone",
     "unknown field"},
    {"{" CLINICS ",\"therapists\":[" GOOD_T("t-a") "," GOOD_T("t-a") "]}", "therapists[1].id",
     "duplicate of therapists[0].id (\"t-a\")"},
    {"{" CLINICS ",\"therapists\":[],\"staff\":[]}", "staff", "unknown field"},
    {"{" CLINICS ",\"therapists\":{}}", "therapists", "must be an array"},
    {"{" CLINICS "}", "therapists", "required"},
    {"[]", "", "must be a JSON object"},
    /* The path of a deep error, as in the docs: therapists[3].hours[1].from. */
    {"{" CLINICS ",\"therapists\":[" GOOD_T("t-a") "," GOOD_T("t-b") "," GOOD_T("t-c") ","
     "{\"id\":\"t-d\",\"name\":\"D\",\"discipline\":\"physiotherapy\",\"registration\":\"CPO 12345\","
     "\"clinic_id\":\"beta\"," T_LANG "\"hours\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"12:00\"},"
     "{\"day\":2,\"from\":\"9am\",\"to\":\"12:00\"}]}]}",
     "therapists[3].hours[1].from", "must be a time HH:MM"},
};

Test(directory, errors_name_the_path)
{
    for (size_t i = 0; i < sizeof bad_directories / sizeof bad_directories[0]; i++) {
        hx_errors_t errs;
        hx_errors_clear(&errs);
        hx_directory_t *d = hx_directory_parse(bad_directories[i].text, &errs);
        cr_expect_null(d, "case %zu should be rejected", i);
        hx_directory_destroy(&d);
        cr_expect_eq(errs.count, 1, "case %zu: one error expected: %s", i, joined(&errs));
        cr_expect(has_error(&errs, bad_directories[i].path, bad_directories[i].why),
                  "case %zu: expected \"%s: %s\", got: %s", i, bad_directories[i].path, bad_directories[i].why,
                  joined(&errs));
    }
}

Test(directory, at_most_21_windows)
{
    char text[8192];
    int n = snprintf(text, sizeof text, "{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG "\"hours\":[");
    for (int i = 0; i < 22; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"day\":%d,\"from\":\"%02d:00\",\"to\":\"%02d:30\"}",
                      i ? "," : "", i % 7 + 1, 6 + i / 7, 6 + i / 7);
    snprintf(text + n, sizeof text - (size_t)n, "]}]}");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_null(hx_directory_parse(text, &errs));
    cr_expect(has_error(&errs, "therapists[0].hours", "at most 21 windows (has 22)"), "%s", joined(&errs));

    /* 21 is fine. */
    n = snprintf(text, sizeof text, "{" CLINICS ",\"therapists\":[" T_BEGIN "\"clinic_id\":\"alpha\"," T_LANG "\"hours\":[");
    for (int i = 0; i < 21; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%s{\"day\":%d,\"from\":\"%02d:00\",\"to\":\"%02d:30\"}",
                      i ? "," : "", i % 7 + 1, 6 + i / 7, 6 + i / 7);
    snprintf(text + n, sizeof text - (size_t)n, "]}]}");
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_parse(text, &errs);
    cr_expect(d, "%s", joined(&errs));
    hx_directory_destroy(&d);
}

Test(directory, syntax_errors_and_files)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_null(hx_directory_parse("{\"clinics\": [\n  {\"id\": \"a\" \"name\": \"b\"}]}", &errs));
    cr_assert_eq(errs.count, 1);
    cr_expect(!strncmp(errs.items[0].path, "line 2, column ", 15), "%s", joined(&errs));

    hx_errors_clear(&errs);
    cr_expect_null(hx_directory_load("/nonexistent/directory.json", &errs));
    cr_expect_str_eq(errs.items[0].path, "/nonexistent/directory.json");
    cr_expect_null(hx_directory_parse(NULL, NULL));
    cr_expect_null(hx_directory_load(NULL, NULL));
}

Test(directory, all_errors_at_once)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_null(hx_directory_parse(
        "{\"clinics\":[{\"id\":\"A\",\"name\":\"\"}],\"therapists\":[{\"id\":\"t\",\"name\":\"x\","
        "\"discipline\":\"yoga\",\"registration\":\"CPO 1234\",\"clinic_id\":\"zzz\",\"languages\":[\"en\"],"
        "\"hours\":[{\"day\":0,\"from\":\"09:00\",\"to\":\"10:00\"}]}]}",
        &errs));
    /* clinics[0].id, clinics[0].name, therapists[0].discipline, .clinic_id, .hours[0].day */
    cr_expect_eq(errs.count, 5, "%s", joined(&errs));
}

/* ---- minutes ------------------------------------------------------------------------- */

Test(minutes, parse_and_format)
{
    hx_minute_t m;
    cr_expect_eq(hx_minute_parse("1970-01-01T00:00", &m), 0);
    cr_expect_eq(m, 0);
    cr_expect_eq(hx_minute_parse("2026-11-23T09:00", &m), 0);
    cr_expect_eq(m, 29923200 + 9 * 60);
    cr_expect_eq(hx_minute_parse("1969-12-31T23:59", &m), 0);
    cr_expect_eq(m, -1);
    cr_expect_eq(hx_minute_parse("2024-02-29T12:00", &m), 0, "leap year");
    cr_expect_eq(hx_minute_parse("2000-02-29T12:00", &m), 0, "400-year leap");
    cr_expect_eq(hx_minute_parse("0001-01-01T00:00", &m), 0);
    cr_expect_eq(m, HX_MINUTE_MIN);
    cr_expect_eq(hx_minute_parse("9999-12-31T23:59", &m), 0);
    cr_expect_eq(m, HX_MINUTE_MAX);

    static const char *const bad[] = {
        "2026-02-29T12:00", "1900-02-29T12:00", "2026-11-31T09:00", "2026-13-01T00:00", "2026-00-10T00:00",
        "2026-11-23T24:00", "2026-11-23T09:60", "2026-11-23 09:00", "2026-11-23T9:00", "2026-11-23T09:00Z",
        "26-11-23T09:00", "2026-11-2aT09:00", "0000-01-01T00:00", "", "2026-11-23T-9:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(hx_minute_parse(bad[i], &m), -1, "%s should not parse", bad[i]);
    cr_expect_eq(hx_minute_parse(NULL, &m), -1);

    cr_expect_str_eq(fmt(0), "1970-01-01T00:00");
    cr_expect_str_eq(fmt(29923200 + 9 * 60 + 15), "2026-11-23T09:15");
    cr_expect_str_eq(fmt(-1), "1969-12-31T23:59");
    cr_expect_str_eq(fmt(HX_MINUTE_MAX + 100), "9999-12-31T23:59", "format clamps");
    cr_expect_str_eq(fmt(HX_MINUTE_MIN - 100), "0001-01-01T00:00");

    /* Round trip over the whole range (seeded). */
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 100000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        hx_minute_t x = HX_MINUTE_MIN + (hx_minute_t)(s % (uint64_t)(HX_MINUTE_MAX - HX_MINUTE_MIN + 1));
        char buf[17];
        hx_minute_format(x, buf);
        cr_assert_eq(hx_minute_parse(buf, &m), 0, "%s", buf);
        cr_assert_eq(m, x, "%s", buf);
    }
}

Test(minutes, weekdays)
{
    cr_expect_eq(hx_weekday(0), 4, "1970-01-01 was a Thursday");
    cr_expect_eq(hx_weekday(at("2026-11-23T00:00") / DAY), 1, "2026-11-23 is a Monday");
    cr_expect_eq(hx_weekday(at("2026-11-29T12:00") / DAY), 7);
    cr_expect_eq(hx_weekday(-1), 3, "1969-12-31 was a Wednesday");
    cr_expect_eq(hx_weekday(hx_days_from_civil(2000, 1, 1)), 6, "2000-01-01 was a Saturday");
}

Test(minutes, session_lengths)
{
    cr_expect_eq(hx_session_minutes(PHYSIO, 0), 60);
    cr_expect_eq(hx_session_minutes(PHYSIO, 90), 60, "massage minutes do not apply to physiotherapy");
    cr_expect_eq(hx_session_minutes(MASSAGE, 0), 60);
    cr_expect_eq(hx_session_minutes(MASSAGE, 30), 30);
    cr_expect_eq(hx_session_minutes(MASSAGE, 45), 45);
    cr_expect_eq(hx_session_minutes(MASSAGE, 90), 90);
    cr_expect_eq(hx_session_minutes(MASSAGE, 50), 60);
}

/* ---- calendar ------------------------------------------------------------------------ */

Test(calendar, book_free_cancel)
{
    hx_calendar_t *c = hx_calendar_new();
    hx_minute_t t = at("2026-11-23T09:00");
    cr_expect(hx_calendar_free(c, "t-a", t, 60));
    cr_expect_eq(hx_calendar_book(c, "t-a", t, 60), 0);
    cr_expect(!hx_calendar_free(c, "t-a", t, 60));
    cr_expect(!hx_calendar_free(c, "t-a", t - 30, 31), "overlaps the start");
    cr_expect(hx_calendar_free(c, "t-a", t - 30, 30), "ends as it starts");
    cr_expect(hx_calendar_free(c, "t-a", t + 60, 30), "starts as it ends");
    cr_expect(!hx_calendar_free(c, "t-a", t + 59, 30));
    cr_expect(!hx_calendar_free(c, "t-a", t + 10, 10), "inside");
    cr_expect(!hx_calendar_free(c, "t-a", t - 60, 180), "around");
    cr_expect(hx_calendar_free(c, "t-b", t, 60), "other therapists are free");
    cr_expect_eq(hx_calendar_book(c, "t-a", t + 30, 60), -1, "overlap refused");
    cr_expect_eq(hx_calendar_book(c, "t-a", t - 60, 60), 0);
    cr_expect_eq(hx_calendar_book(c, "t-a", t + 60, 60), 0);
    cr_expect_eq(hx_calendar_book(c, "t-a", t + 600, 0), -1, "zero minutes");
    cr_expect_eq(hx_calendar_book(c, "", t, 60), -1);
    cr_expect_eq(hx_calendar_book(c, NULL, t, 60), -1);
    cr_expect_eq(hx_calendar_count(c, "t-a"), 3);
    cr_expect_eq(hx_calendar_cancel(c, "t-a", t), 0);
    cr_expect_eq(hx_calendar_cancel(c, "t-a", t), -1, "already gone");
    cr_expect_eq(hx_calendar_cancel(c, "t-z", t), -1);
    cr_expect(hx_calendar_free(c, "t-a", t, 60));
    cr_expect_eq(hx_calendar_count(c, "t-a"), 2);
    cr_expect(hx_calendar_free(NULL, "t-a", t, 60), "no calendar, no bookings");
    hx_calendar_destroy(&c);
    cr_expect_null(c);
    hx_calendar_destroy(&c);
}

/* ---- slot finder --------------------------------------------------------------------- */

/* alpha: Ann (physio, en) and Cleo (massage, en, Saturdays); beta: Ben (physio, en+fr),
 * all physios Monday 09:00-17:00; Dora (physio, beta) works Sunday nights 20:00-24:00. */
static const char small_directory[] =
    "{\"clinics\":[{\"id\":\"alpha\",\"name\":\"Alpha\"},{\"id\":\"beta\",\"name\":\"Beta\"}],"
    "\"therapists\":["
    "{\"id\":\"t-ann\",\"name\":\"Ann\",\"discipline\":\"physiotherapy\",\"registration\":\"CPO 11111\","
    " \"clinic_id\":\"alpha\",\"languages\":[\"en\"],\"hours\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"}]},"
    "{\"id\":\"t-ben\",\"name\":\"Ben\",\"discipline\":\"physiotherapy\",\"registration\":\"CPO 22222\","
    " \"clinic_id\":\"beta\",\"languages\":[\"en\",\"fr\"],\"hours\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"}]},"
    "{\"id\":\"t-cleo\",\"name\":\"Cleo\",\"discipline\":\"massage_therapy\",\"registration\":\"CMTO 3333\","
    " \"clinic_id\":\"alpha\",\"languages\":[\"en\"],\"hours\":[{\"day\":6,\"from\":\"10:00\",\"to\":\"14:00\"}]},"
    "{\"id\":\"t-dora\",\"name\":\"Dora\",\"discipline\":\"physiotherapy\",\"registration\":\"CPO 44444\","
    " \"clinic_id\":\"beta\",\"languages\":[\"pt\"],\"hours\":[{\"day\":7,\"from\":\"20:00\",\"to\":\"24:00\"}]}]}";

static hx_directory_t *small(void)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_parse(small_directory, &errs);
    cr_assert(d, "%s", joined(&errs));
    return d;
}

static hx_slot_query_t query(Handoff__Discipline disc, uint32_t minutes, const char *from, int days)
{
    hx_slot_query_t q = {0};
    q.discipline = disc;
    q.minutes = minutes;
    q.not_before = at(from);
    q.horizon = q.not_before + (hx_minute_t)days * DAY;
    return q;
}

static void expect_slot(const hx_directory_t *d, hx_calendar_t *c, const hx_slot_query_t *q,
                        const char *therapist, const char *start, const char *what)
{
    hx_slot_t s;
    int rc = hx_slot_find(d, c, q, &s);
    cr_expect_eq(rc, 0, "%s: no slot found", what);
    if (rc != 0)
        return;
    cr_expect_str_eq(s.therapist->id, therapist, "%s: therapist %s, want %s", what, s.therapist->id, therapist);
    cr_expect_str_eq(fmt(s.start), start, "%s: start %s, want %s", what, fmt(s.start), start);
    cr_expect_eq(s.minutes, q->minutes, "%s: length", what);
}

static void expect_none(const hx_directory_t *d, hx_calendar_t *c, const hx_slot_query_t *q, const char *what)
{
    hx_slot_t s;
    int rc = hx_slot_find(d, c, q, &s);
    cr_expect_eq(rc, -1, "%s: expected no slot, got %s at %s", what, rc == 0 ? s.therapist->id : "",
                 rc == 0 ? fmt(s.start) : "");
}

Test(slots, earliest_on_the_grid_within_hours)
{
    hx_directory_t *d = small();
    hx_calendar_t *c = hx_calendar_new();
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T07:10", 14);
    expect_slot(d, c, &q, "t-ann", "2026-11-23T09:00", "before opening");
    q.not_before = at("2026-11-23T09:07");
    expect_slot(d, c, &q, "t-ann", "2026-11-23T09:15", "rounded up to the grid");
    q.not_before = at("2026-11-23T16:00");
    expect_slot(d, c, &q, "t-ann", "2026-11-23T16:00", "ends at closing");
    q.not_before = at("2026-11-23T16:01");
    expect_slot(d, c, &q, "t-dora", "2026-11-29T20:00", "too late on Monday: Sunday night is next");
    q.not_before = at("2026-11-29T23:00");
    expect_slot(d, c, &q, "t-dora", "2026-11-29T23:00", "a window ending at 24:00");
    q.not_before = at("2026-11-29T23:01");
    expect_slot(d, c, &q, "t-ann", "2026-11-30T09:00", "next Monday");
    q.minutes = 90;
    q.not_before = at("2026-11-23T15:45");
    expect_slot(d, c, &q, "t-dora", "2026-11-29T20:00", "90 minutes do not fit before 17:00");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(slots, respects_bookings)
{
    hx_directory_t *d = small();
    hx_calendar_t *c = hx_calendar_new();
    hx_minute_t nine = at("2026-11-23T09:00");
    cr_assert_eq(hx_calendar_book(c, "t-ann", nine, 90), 0);
    cr_assert_eq(hx_calendar_book(c, "t-ben", nine, 105), 0);
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T08:00", 14);
    expect_slot(d, c, &q, "t-ann", "2026-11-23T10:30", "after Ann's booking");

    cr_assert_eq(hx_calendar_book(c, "t-ann", at("2026-11-23T10:30"), 50), 0);
    expect_slot(d, c, &q, "t-ben", "2026-11-23T10:45", "Ben is free earlier than Ann now");
    cr_assert_eq(hx_calendar_book(c, "t-ben", at("2026-11-23T10:45"), 60), 0);
    expect_slot(d, c, &q, "t-ann", "2026-11-23T11:30", "11:20 rounded up to the grid");

    /* A gap too short is skipped. */
    cr_assert_eq(hx_calendar_book(c, "t-ann", at("2026-11-23T12:00"), 60), 0);
    cr_assert_eq(hx_calendar_book(c, "t-ben", at("2026-11-23T11:45"), 60), 0);
    expect_slot(d, c, &q, "t-ben", "2026-11-23T12:45", "Ann's 30-minute gap is too short");

    hx_slot_t s;
    cr_assert_eq(hx_slot_find(d, c, &q, &s), 0);
    cr_expect(hx_calendar_free(c, s.therapist->id, s.start, s.minutes));
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(slots, patient_availability)
{
    hx_directory_t *d = small();
    Handoff__Availability mon = HANDOFF__AVAILABILITY__INIT, tue = HANDOFF__AVAILABILITY__INIT;
    mon.day = 1, mon.from = "13:00", mon.to = "15:00";
    tue.day = 2, tue.from = "09:00", tue.to = "17:00";
    const Handoff__Availability *only_mon[] = {&mon};
    const Handoff__Availability *only_tue[] = {&tue};
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T08:00", 14);
    q.availability = only_mon;
    q.n_availability = 1;
    expect_slot(d, NULL, &q, "t-ann", "2026-11-23T13:00", "inside the patient's window");

    hx_calendar_t *c = hx_calendar_new();
    cr_assert_eq(hx_calendar_book(c, "t-ann", at("2026-11-23T13:00"), 90), 0);
    cr_assert_eq(hx_calendar_book(c, "t-ben", at("2026-11-23T13:30"), 60), 0);
    expect_slot(d, c, &q, "t-ann", "2026-11-30T13:00", "no hour left in the window this Monday");
    q.horizon = at("2026-11-29T23:59");
    expect_none(d, c, &q, "nothing before the horizon");

    q.availability = only_tue;
    q.horizon = q.not_before + 28 * DAY;
    expect_none(d, c, &q, "nobody works on Tuesdays");

    /* A window given but unusable (bad time): no slot rather than any slot. */
    Handoff__Availability bad = HANDOFF__AVAILABILITY__INIT;
    bad.day = 1, bad.from = "9am", bad.to = "17:00";
    const Handoff__Availability *only_bad[] = {&bad};
    q.availability = only_bad;
    expect_none(d, c, &q, "unusable windows");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

Test(slots, language_clinic_and_exclusion)
{
    hx_directory_t *d = small();
    hx_calendar_t *c = hx_calendar_new();
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T08:00", 14);
    expect_slot(d, c, &q, "t-ann", "2026-11-23T09:00", "directory order breaks a tie");

    q.language = "fr";
    expect_slot(d, c, &q, "t-ben", "2026-11-23T09:00", "only Ben speaks French");
    q.language = "fr-CA";
    expect_slot(d, c, &q, "t-ben", "2026-11-23T09:00", "the primary subtag counts");
    q.language = "FR";
    expect_slot(d, c, &q, "t-ben", "2026-11-23T09:00", "case does not matter");
    q.language = "de";
    expect_none(d, c, &q, "nobody speaks German");
    q.language = "";
    expect_slot(d, c, &q, "t-ann", "2026-11-23T09:00", "empty language = any");
    q.language = NULL;

    const char *prefer_beta[] = {"beta"};
    const char *prefer_both[] = {"gamma", "beta", "alpha"};
    q.clinic_ids = prefer_beta;
    q.n_clinic_ids = 1;
    expect_slot(d, c, &q, "t-ben", "2026-11-23T09:00", "a preferred clinic wins a tie");
    q.clinic_ids = prefer_both;
    q.n_clinic_ids = 3;
    expect_slot(d, c, &q, "t-ben", "2026-11-23T09:00", "earlier in the list wins");

    cr_assert_eq(hx_calendar_book(c, "t-ben", at("2026-11-23T09:00"), 60), 0);
    q.clinic_ids = prefer_beta;
    q.n_clinic_ids = 1;
    expect_slot(d, c, &q, "t-ann", "2026-11-23T09:00", "the earliest slot wins over a preference");

    q.exclude_therapist = "t-ann";
    expect_slot(d, c, &q, "t-ben", "2026-11-23T10:00", "Ann excluded");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

/* A redirect searches one clinic, or one therapist: the earliest slot there, never elsewhere. */
Test(slots, restricted_to_a_clinic_or_a_therapist)
{
    hx_directory_t *d = small();
    hx_calendar_t *c = hx_calendar_new();
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T08:00", 14);
    q.only_clinic = "beta";
    expect_slot(d, c, &q, "t-ben", "2026-11-23T09:00", "only beta's therapists");
    cr_assert_eq(hx_calendar_book(c, "t-ben", at("2026-11-23T09:00"), 480), 0);
    expect_slot(d, c, &q, "t-dora", "2026-11-29T20:00", "Ben is full: Dora, also at beta, though Ann is free");
    q.only_therapist = "t-ben";
    expect_slot(d, c, &q, "t-ben", "2026-11-30T09:00", "only Ben, the next Monday");
    q.only_clinic = "alpha";
    expect_none(d, c, &q, "Ben is not at alpha");
    q.only_clinic = "";
    q.only_therapist = "t-dora";
    q.language = "en";
    expect_none(d, c, &q, "Dora does not speak English");
    q.language = NULL;
    q.only_therapist = "t-cleo";
    expect_none(d, c, &q, "Cleo is a massage therapist");
    q.only_therapist = "t-nobody";
    expect_none(d, c, &q, "no such therapist");
    q.only_therapist = NULL;
    expect_slot(d, c, &q, "t-ann", "2026-11-23T09:00", "no restriction: anyone");
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

/* Why a restricted search cannot match, before any calendar: which part is wrong, and what. */
Test(slots, restriction_check_names_what_is_wrong)
{
    hx_directory_t *d = small();
    char why[200];
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T08:00", 14);
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), 0, "no restriction");
    q.only_clinic = "beta";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), 0);
    q.only_clinic = "omega";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_CLINIC);
    cr_expect_str_eq(why, "no clinic 'omega' in the directory");
    q.only_clinic = "alpha";
    q.discipline = HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
    q.exclude_therapist = "t-cleo";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_CLINIC);
    cr_expect_str_eq(why, "no massage_therapy therapist at clinic alpha may be offered: none besides the one excluded");
    q.only_clinic = "beta";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_CLINIC);
    cr_expect_str_eq(why, "clinic beta has no massage_therapy therapist");
    q.exclude_therapist = NULL;
    q.discipline = PHYSIO;
    q.only_therapist = "t-cleo";
    q.only_clinic = "alpha";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_THERAPIST);
    cr_expect_str_eq(why, "t-cleo (Cleo) practises massage_therapy, not physiotherapy");
    q.only_therapist = "t-ben";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_THERAPIST);
    cr_expect_str_eq(why, "t-ben (Ben) works at clinic beta, not alpha");
    q.only_therapist = "t-who";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_THERAPIST);
    cr_expect_str_eq(why, "no therapist 't-who' in the directory");
    q.only_clinic = "beta";
    q.only_therapist = "t-dora";
    q.language = "fr-CA";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_THERAPIST);
    cr_expect_str_eq(why, "t-dora (Dora) does not speak fr, the patient's language");
    q.only_therapist = "t-ben";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), 0);
    q.exclude_therapist = "t-ben";
    cr_expect_eq(hx_slot_restriction_check(d, &q, why, sizeof why), HX_SLOT_BAD_THERAPIST);
    cr_expect(strstr(why, "t-ben (Ben) may not be offered this referral"), "%s", why);
    hx_directory_destroy(&d);
}

Test(slots, disciplines_and_bad_queries)
{
    hx_directory_t *d = small();
    hx_slot_query_t q = query(MASSAGE, 90, "2026-11-23T08:00", 14);
    expect_slot(d, NULL, &q, "t-cleo", "2026-11-28T10:00", "the RMT, on Saturday");
    q.minutes = 300;
    expect_none(d, NULL, &q, "longer than any window");
    q = query(PHYSIO, 0, "2026-11-23T08:00", 14);
    expect_none(d, NULL, &q, "zero minutes");
    q = query(PHYSIO, 60, "2026-11-23T08:00", 14);
    q.horizon = q.not_before - 1;
    expect_none(d, NULL, &q, "horizon before not_before");
    q.horizon = at("2026-11-23T09:00");
    expect_slot(d, NULL, &q, "t-ann", "2026-11-23T09:00", "the horizon is the latest start, inclusive");
    q.horizon = at("2026-11-23T08:59");
    expect_none(d, NULL, &q, "just before");
    q = query(HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN, 60, "2026-11-23T08:00", 14);
    expect_none(d, NULL, &q, "no physicians in the directory");
    hx_slot_t s;
    cr_expect_eq(hx_slot_find(NULL, NULL, &q, &s), -1);
    cr_expect_eq(hx_slot_find(d, NULL, NULL, &s), -1);
    hx_directory_destroy(&d);
}

Test(slots, hopeless_window_returns_promptly)
{
    /* 08:10-09:10 holds 60 minutes but never on the 15-minute grid: no slot, ever. */
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_parse(
        "{\"clinics\":[{\"id\":\"a\",\"name\":\"A\"}],\"therapists\":[{\"id\":\"t\",\"name\":\"T\","
        "\"discipline\":\"physiotherapy\",\"registration\":\"CPO 1234\",\"clinic_id\":\"a\",\"languages\":[\"en\"],"
        "\"hours\":[{\"day\":3,\"from\":\"08:10\",\"to\":\"09:10\"}]}]}",
        &errs);
    cr_assert(d, "%s", joined(&errs));
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T08:00", 0);
    q.horizon = HX_MINUTE_MAX;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_none(d, NULL, &q, "off-grid window");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_expect_lt(secs, 0.1, "took %.3f s", secs);
    q.minutes = 45;
    expect_slot(d, NULL, &q, "t", "2026-11-25T08:15", "45 minutes do fit");
    hx_directory_destroy(&d);
}

Test(slots, ten_thousand_bookings_are_quick)
{
    hx_directory_t *d = small();
    hx_calendar_t *c = hx_calendar_new();
    /* Fill Ann's Mondays (8 one-hour sessions each) for 1250 weeks = 10,000 bookings, in a
     * scrambled order so inserts land in the middle too. */
    hx_minute_t first = at("2026-11-23T09:00");
    for (uint32_t i = 0; i < 10000; i++) {
        uint32_t k = (i * 7919u) % 10000u;     /* a permutation of 0..9999 */
        hx_minute_t start = first + (hx_minute_t)(k / 8) * WEEK + (hx_minute_t)(k % 8) * 60;
        cr_assert_eq(hx_calendar_book(c, "t-ann", start, 60), 0, "booking %u", k);
    }
    cr_expect_eq(hx_calendar_count(c, "t-ann"), 10000);
    hx_slot_query_t q = query(PHYSIO, 60, "2026-11-23T00:00", 0);
    q.horizon = HX_MINUTE_MAX;
    q.exclude_therapist = "t-ben";
    const char *pt[] = {"alpha"};
    q.clinic_ids = pt;
    q.n_clinic_ids = 1;
    q.language = "en";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    hx_slot_t s;
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++)
        rc = hx_slot_find(d, c, &q, &s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(rc, 0);
    cr_expect_str_eq(s.therapist->id, "t-ann");
    cr_expect_eq(s.start, first + 1250 * WEEK, "the first Monday after the 1250 booked ones: %s", fmt(s.start));
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_expect_lt(secs, 1.0, "10 searches over 10,000 bookings took %.3f s", secs);
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

/* ---- property test ------------------------------------------------------------------- */

static uint64_t rng;
static uint64_t next(void)
{
    /* xorshift64* — seeded, so a failure replays. */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static bool in_windows_of(const hx_therapist_t *t, hx_minute_t start, uint32_t minutes)
{
    int64_t day = start >= 0 ? start / DAY : -((-start + DAY - 1) / DAY);
    unsigned wd = hx_weekday(day);
    hx_minute_t m0 = start - day * DAY, m1 = m0 + minutes;
    for (size_t k = 0; k < t->n_hours; k++)
        if (t->hours[k].day == wd && t->hours[k].from <= m0 && m1 <= t->hours[k].to)
            return true;
    return false;
}

static bool in_patient_windows(const hx_slot_query_t *q, hx_minute_t start, uint32_t minutes)
{
    if (q->n_availability == 0)
        return true;
    int64_t day = start / DAY;
    unsigned wd = hx_weekday(day);
    hx_minute_t m0 = start - day * DAY, m1 = m0 + minutes;
    for (size_t k = 0; k < q->n_availability; k++) {
        unsigned f, t;
        const Handoff__Availability *a = q->availability[k];
        if (a->day == wd && hx_hhmm_parse(a->from, false, &f) == 0 && hx_hhmm_parse(a->to, true, &t) == 0 &&
            f <= m0 && m1 <= t)
            return true;
    }
    return false;
}

static bool eligible(const hx_therapist_t *t, const hx_slot_query_t *q)
{
    if (t->discipline != q->discipline)
        return false;
    if (q->exclude_therapist && !strcmp(q->exclude_therapist, t->id))
        return false;
    if (!q->language || !*q->language)
        return true;
    for (size_t k = 0; k < t->n_languages; k++)
        if (!strcmp(t->languages[k], q->language))
            return true;
    return false;
}

static size_t rank_of(const hx_therapist_t *t, const hx_slot_query_t *q)
{
    for (size_t k = 0; k < q->n_clinic_ids; k++)
        if (!strcmp(q->clinic_ids[k], t->clinic_id))
            return k;
    return q->n_clinic_ids;
}

/* The slow, obvious definition of a valid slot. */
/* s is an instant; hours, the patient's windows and closures are the clinic's wall clock
 * (the sample's clinics are in America/Toronto; no session of the sample's hours crosses a
 * change of the clock, which happens at 02:00). */
static bool valid_slot(const hx_therapist_t *t, const hx_calendar_t *c, const hx_slot_query_t *q, hx_minute_t s)
{
    hx_minute_t local = hx_tz_to_local(t->clinic->tz, s);
    return s % 15 == 0 && eligible(t, q) && in_windows_of(t, local, q->minutes) &&
           in_patient_windows(q, local, q->minutes) && !hx_clinic_closed(t->clinic, s) &&
           hx_calendar_free(c, t->id, s, q->minutes);
}

/* A patient's random window: a day, from 08:00-16:45 on the quarter hour, min_hours to
 * min_hours + spread - 1 hours long (ending by 23:00). */
static void random_window(Handoff__Availability *a, char from[6], char to[6], unsigned min_hours, unsigned spread)
{
    unsigned h = 8 + (unsigned)(next() % 9), len = min_hours + (unsigned)(next() % spread);
    snprintf(from, 6, "%02u:%02u", h, (unsigned)(next() % 4) * 15);
    snprintf(to, 6, "%02u:00", h + len > 23 ? 23 : h + len);
    a->day = 1 + (uint32_t)(next() % 7);
    a->from = from;
    a->to = to;
}

typedef struct {
    size_t therapist;
    hx_minute_t start, end;
} booked_t;

static int booked_cmp(const void *a, const void *b)
{
    const booked_t *x = a, *y = b;
    if (x->therapist != y->therapist)
        return x->therapist < y->therapist ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

Test(slots, property_random_bookings_never_overlap)
{
    hx_directory_t *d = load_sample_directory();
    const hx_therapist_t *ts;
    const hx_clinic_t *cs;
    size_t nt = hx_directory_therapists(d, &ts);
    size_t nc = hx_directory_clinics(d, &cs);
    hx_calendar_t *c = hx_calendar_new();
    static const char *const langs[] = {"en", "fr", "pt", "zh", "ar", "es"};
    static const uint32_t massage_lengths[] = {30, 45, 60, 90};
    const hx_minute_t base = at("2026-11-23T00:00");

    rng = 20261123;
    enum { N = 10000 };
    booked_t *booked = calloc(N, sizeof *booked);
    size_t n_booked = 0, misses = 0, checked_earliest = 0, checked_misses = 0;

    for (int iter = 0; iter < N; iter++) {
        hx_slot_query_t q = {0};
        q.discipline = next() % 2 ? PHYSIO : MASSAGE;
        q.minutes = q.discipline == PHYSIO ? 60 : massage_lengths[next() % 4];
        q.not_before = base + (hx_minute_t)(next() % (12 * WEEK));
        q.horizon = q.not_before + 21 * DAY;
        if (next() % 3 == 0)
            q.language = langs[next() % 6];
        const char *pref[1];
        if (next() % 2) {
            pref[0] = cs[next() % nc].id;
            q.clinic_ids = pref;
            q.n_clinic_ids = 1;
        }
        Handoff__Availability a = HANDOFF__AVAILABILITY__INIT;
        const Handoff__Availability *avail[1] = {&a};
        char from[6], to[6];
        if (next() % 4 == 0) {
            random_window(&a, from, to, 2, 5);
            q.availability = avail;
            q.n_availability = 1;
        }
        if (next() % 10 == 0)
            q.exclude_therapist = ts[next() % nt].id;

        hx_slot_t s;
        if (hx_slot_find(d, c, &q, &s) != 0) {
            misses++;
            if (misses % 10 == 0) {     /* brute force: really nothing in [not_before, horizon]? */
                checked_misses++;
                hx_minute_t g0 = (q.not_before + 14) / 15 * 15;
                for (size_t i = 0; i < nt; i++) {
                    if (!eligible(&ts[i], &q))
                        continue;
                    for (hx_minute_t g = g0; g <= q.horizon; g += 15)
                        cr_assert(!valid_slot(&ts[i], c, &q, g), "iteration %d: missed %s at %s", iter, ts[i].id,
                                  fmt(g));
                }
            }
            continue;
        }
        /* What was found is valid... */
        cr_assert_eq(s.minutes, q.minutes);
        cr_assert_geq(s.start, q.not_before, "iteration %d", iter);
        cr_assert_leq(s.start, q.horizon, "iteration %d", iter);
        cr_assert(valid_slot(s.therapist, c, &q, s.start), "iteration %d: %s at %s is not valid", iter,
                  s.therapist->id, fmt(s.start));
        /* ... and, every so often, provably the earliest, with the tie-break respected. */
        if (iter % 50 == 0) {
            checked_earliest++;
            hx_minute_t g0 = (q.not_before + 14) / 15 * 15;
            for (size_t i = 0; i < nt; i++) {
                if (!eligible(&ts[i], &q))
                    continue;
                for (hx_minute_t g = g0; g < s.start; g += 15)
                    cr_assert(!valid_slot(&ts[i], c, &q, g), "iteration %d: %s at %s is earlier than %s", iter,
                              ts[i].id, fmt(g), fmt(s.start));
                if (valid_slot(&ts[i], c, &q, s.start)) {
                    size_t r = rank_of(&ts[i], &q), chosen = rank_of(s.therapist, &q);
                    cr_assert(chosen < r || (chosen == r && s.therapist <= &ts[i]),
                              "iteration %d: tie-break chose %s over %s", iter, s.therapist->id, ts[i].id);
                }
            }
        }
        cr_assert_eq(hx_calendar_book(c, s.therapist->id, s.start, s.minutes), 0, "iteration %d", iter);
        booked[n_booked++] = (booked_t){(size_t)(s.therapist - ts), s.start, s.start + s.minutes};
    }

    cr_log_info("property: %zu booked, %zu misses (%zu brute-forced), %zu checked for earliest", n_booked,
                misses, checked_misses, checked_earliest);
    cr_expect_gt(n_booked, N / 2, "most queries should find a slot (%zu of %d)", n_booked, N);
    cr_expect_gt(checked_earliest, 50);
    cr_expect_gt(checked_misses, 0);

    /* No two bookings of one therapist overlap; every booking is inside the therapist's hours. */
    qsort(booked, n_booked, sizeof *booked, booked_cmp);
    for (size_t i = 0; i < n_booked; i++) {
        const hx_therapist_t *t = &ts[booked[i].therapist];
        cr_assert(in_windows_of(t, hx_tz_to_local(t->clinic->tz, booked[i].start),
                                (uint32_t)(booked[i].end - booked[i].start)),
                  "%s at %s is outside the hours", t->id, fmt(booked[i].start));
        if (i && booked[i - 1].therapist == booked[i].therapist)
            cr_assert_leq(booked[i - 1].end, booked[i].start, "%s: %s overlaps %s", t->id,
                          fmt(booked[i - 1].start), fmt(booked[i].start));
    }
    size_t total = 0;
    for (size_t i = 0; i < nt; i++)
        total += hx_calendar_count(c, ts[i].id);
    cr_expect_eq(total, n_booked);

    free(booked);
    hx_calendar_destroy(&c);
    hx_directory_destroy(&d);
}

/* The calendar keeps, per therapist, the first free start each search found (so that a filling
 * calendar does not make every search walk the booked days again). What it keeps must never
 * change what a search finds: the same random queries, bookings and cancellations on two
 * calendars, one searched as the service does (its frontiers kept from search to search), the
 * other made to forget them before every search, so it searches from scratch. Most queries start at a "now" that moves slowly on, as
 * the service's do; some later, as a collaborative pair's second session does; a quarter give
 * the patient's windows; one in six steps cancels a booking (a cancellation frees starts a
 * frontier had passed). */
Test(slots, what_the_calendar_learns_never_changes_what_is_found)
{
    hx_directory_t *d = load_sample_directory();
    const hx_therapist_t *ts;
    size_t nt = hx_directory_therapists(d, &ts);
    hx_calendar_t *kept = hx_calendar_new(), *fresh = hx_calendar_new();
    static const uint32_t massage_lengths[] = {30, 45, 60, 90};
    hx_minute_t now = at("2026-11-23T06:00");

    rng = 20261129;
    enum { N = 6000 };
    booked_t *booked = calloc(N, sizeof *booked);
    size_t n_booked = 0, found = 0, cancelled = 0;
    for (int iter = 0; iter < N; iter++) {
        if (iter % 40 == 0)
            now += 15;
        if (n_booked && next() % 6 == 0) {
            size_t k = (size_t)(next() % n_booked);
            const char *id = ts[booked[k].therapist].id;
            cr_assert_eq(hx_calendar_cancel(kept, id, booked[k].start), 0);
            cr_assert_eq(hx_calendar_cancel(fresh, id, booked[k].start), 0);
            booked[k] = booked[--n_booked];
            cancelled++;
            continue;
        }
        hx_slot_query_t q = {0};
        q.discipline = next() % 2 ? PHYSIO : MASSAGE;
        q.minutes = q.discipline == PHYSIO ? 60 : massage_lengths[next() % 4];
        q.not_before = next() % 5 ? now : now + (hx_minute_t)(next() % (3 * WEEK));
        q.horizon = q.not_before + 28 * DAY;
        Handoff__Availability a = HANDOFF__AVAILABILITY__INIT;
        const Handoff__Availability *avail[1] = {&a};
        char from[6], to[6];
        if (next() % 4 == 0) {
            random_window(&a, from, to, 1, 4);
            q.availability = avail;
            q.n_availability = 1;
        }
        hx_slot_t s, r;
        hx_calendar_forget(fresh);
        int rc = hx_slot_find(d, kept, &q, &s), rrc = hx_slot_find(d, fresh, &q, &r);
        cr_assert_eq(rc, rrc, "iteration %d: %s with what the calendar learned, %s without", iter,
                     rc ? "nothing" : "a slot", rrc ? "nothing" : "a slot");
        if (rc == 0) {
            cr_assert_str_eq(s.therapist->id, r.therapist->id, "iteration %d", iter);
            cr_assert_eq(s.start, r.start, "iteration %d: %s with what the calendar learned, %s without", iter,
                         fmt(s.start), fmt(r.start));
            found++;
            if (n_booked < N && next() % 8) {       /* most are booked; some only looked at */
                cr_assert_eq(hx_calendar_book(kept, s.therapist->id, s.start, s.minutes), 0);
                cr_assert_eq(hx_calendar_book(fresh, s.therapist->id, s.start, s.minutes), 0);
                booked[n_booked++] = (booked_t){(size_t)(s.therapist - ts), s.start, s.start + s.minutes};
            }
        }
    }
    cr_log_info("frontiers: %zu found, %zu booked at the end, %zu cancelled", found, n_booked, cancelled);
    cr_expect_gt(cancelled, N / 10);
    cr_expect_gt(found, N / 2);
    (void)nt;
    free(booked);
    hx_calendar_destroy(&kept);
    hx_calendar_destroy(&fresh);
    hx_directory_destroy(&d);
}

/* ---- the samples together ------------------------------------------------------------ */

/* Every sample referral that triage accepts can be booked from the sample directory, for
 * each discipline decided, within four weeks of 2026-11-23 08:00, honouring the patient's
 * language, preferred clinics and availability — one calendar for all of them. */
Test(slots, every_accepted_sample_can_be_booked)
{
    hx_directory_t *d = load_sample_directory();
    char *rules_path = src_path("services/triage/rules.json");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_rules_t *rules = hx_rules_load(rules_path, &errs);
    cr_assert(rules, "%s", joined(&errs));
    free(rules_path);
    hx_calendar_t *c = hx_calendar_new();

    char *pattern = src_path("deploy/sample/referrals/*.json");
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0);
    free(pattern);
    size_t booked = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        json_error_t jerr;
        json_t *j = json_load_file(g.gl_pathv[i], 0, &jerr);
        cr_assert(j, "%s: %s", g.gl_pathv[i], jerr.text);
        Handoff__Referral *r = hx_referral_from_json(j, &errs);
        cr_assert(r, "%s: %s", g.gl_pathv[i], joined(&errs));
        Handoff__TriageDecision dec;
        if (hx_triage_decide(rules, r, &dec) == 0 && !dec.red_flag) {
            const Handoff__Preferences *p = r->preferences;
            for (size_t k = 0; k < dec.n_disciplines; k++) {
                hx_slot_query_t q = {0};
                q.discipline = dec.disciplines[k];
                q.minutes = hx_session_minutes(q.discipline, p ? p->massage_minutes : 0);
                q.not_before = at("2026-11-23T08:00");
                q.horizon = q.not_before + 28 * DAY;
                q.language = p && p->language[0] ? p->language : r->patient->language;
                if (p) {
                    q.clinic_ids = (const char *const *)p->clinic_ids;
                    q.n_clinic_ids = p->n_clinic_ids;
                    q.availability = (const Handoff__Availability *const *)p->availability;
                    q.n_availability = p->n_availability;
                }
                hx_slot_t s;
                cr_expect_eq(hx_slot_find(d, c, &q, &s), 0, "%s: no %s slot", g.gl_pathv[i],
                             hx_discipline_text(q.discipline));
                if (hx_slot_find(d, c, &q, &s) == 0) {
                    cr_expect_eq(hx_calendar_book(c, s.therapist->id, s.start, s.minutes), 0);
                    booked++;
                }
            }
        }
        hx_decision_clear(&dec);
        hx_referral_free(r);
        json_decref(j);
    }
    globfree(&g);
    cr_expect_geq(booked, 12);
    hx_calendar_destroy(&c);
    hx_rules_destroy(&rules);
    hx_directory_destroy(&d);
}
