/* Unit tests for hx_refjson: referral JSON <-> protobuf, enum spellings, clinic-facing views. */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_refjson.h"
#include "clinical_test.h"

/* ---- helpers ------------------------------------------------------------------------- */


static json_t *load_json(const char *path)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    cr_assert(j, "%s: %s (line %d)", path, err.text, err.line);
    return j;
}

static json_t *parse_json(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &err);   /* so the NUL check is reached */
    cr_assert(j, "test JSON does not parse: %s (line %d, column %d)", err.text, err.line, err.column);
    return j;
}



/* Every sample referral file; the caller frees with globfree. */
static void sample_files(glob_t *g)
{
    char *pattern = src_path("deploy/sample/referrals/*.json");
    int rc = glob(pattern, 0, NULL, g);
    free(pattern);
    cr_assert_eq(rc, 0, "no sample referrals found");
}

/* True when v is a default the writer may omit: "", [], false, 0. */
static bool is_default(const json_t *v)
{
    return (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0) || json_is_false(v) ||
           (json_is_integer(v) && json_integer_value(v) == 0) || json_is_null(v);
}

/* Every non-default member of want is in got with an equal value (objects recursively). */
static void expect_subset(const json_t *want, const json_t *got, const char *where)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)want, key, v) {
        if (is_default(v))
            continue;
        json_t *g = json_object_get(got, key);
        cr_expect(g, "%s: %s missing after the round trip", where, key);
        if (!g)
            continue;
        if (json_is_object(v))
            expect_subset(v, g, where);
        else
            cr_expect(json_equal(v, g), "%s: %s differs after the round trip", where, key);
    }
}

static Handoff__Referral *referral_from_text(const char *text, hx_errors_t *errs)
{
    json_t *j = parse_json(text);
    hx_errors_clear(errs);
    Handoff__Referral *r = hx_referral_from_json(j, errs);
    json_decref(j);
    return r;
}

/* ---- round trips --------------------------------------------------------------------- */

Test(refjson, samples_round_trip)
{
    glob_t g;
    sample_files(&g);
    cr_expect_geq(g.gl_pathc, 12, "at least 12 sample referrals");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *file = g.gl_pathv[i];
        json_t *j0 = load_json(file);
        hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *r = hx_referral_from_json(j0, &errs);
        cr_assert(r, "%s: %s", file, joined(&errs));
        cr_expect_eq(errs.count, 0);

        /* JSON -> protobuf -> JSON keeps every value the file gave. */
        json_t *j1 = hx_referral_to_json(r);
        cr_assert(j1);
        expect_subset(j0, j1, file);

        /* ... and wire bytes survive: pack, unpack, back to JSON. */
        size_t len = handoff__referral__get_packed_size(r);
        uint8_t *buf = malloc(len + 1);
        handoff__referral__pack(r, buf);
        Handoff__Referral *u = handoff__referral__unpack(NULL, len, buf);
        cr_assert(u, "%s: unpack failed", file);
        json_t *j2 = hx_referral_to_json(u);
        cr_expect(json_equal(j1, j2), "%s: JSON differs after pack/unpack", file);

        /* ... and from_json(to_json(r)) packs to the same bytes. */
        Handoff__Referral *r2 = hx_referral_from_json(j1, &errs);
        cr_assert(r2, "%s: %s", file, joined(&errs));
        size_t len2 = handoff__referral__get_packed_size(r2);
        uint8_t *buf2 = malloc(len2 + 1);
        handoff__referral__pack(r2, buf2);
        cr_expect_eq(len, len2, "%s: packed sizes differ", file);
        cr_expect(len == len2 && memcmp(buf, buf2, len) == 0, "%s: packed bytes differ", file);

        free(buf);
        free(buf2);
        hx_referral_free(r2);
        hx_referral_free(u);
        hx_referral_free(r);
        json_decref(j0);
        json_decref(j1);
        json_decref(j2);
    }
    globfree(&g);
}

Test(refjson, fields_land_where_expected)
{
    hx_errors_t errs;
    Handoff__Referral *r = referral_from_text(
        "{\"ref\":\"NP-2026-0001\",\"referring_clinic\":\"northpoint\","
        "\"patient\":{\"given_name\":\"Ada\",\"family_name\":\"Example\",\"birth_date\":\"1980-04-02\","
        "\"phone\":\"416-555-0100\",\"email\":\"ada@example.org\",\"health_card\":\"5555-123-456-XY\",\"language\":\"en\"},"
        "\"referrer\":{\"name\":\"Dr. B\",\"discipline\":\"massage_therapy\",\"registration_body\":\"CMTO\","
        "\"registration_number\":\"12345\",\"clinic_id\":\"lakeside\"},"
        "\"reason\":\"why\",\"conditions\":[\"post_surgical_knee\",\"muscle_tension\"],\"findings\":[\"fever\"],"
        "\"priority\":\"asap\",\"consent\":\"given\",\"referral_date\":\"2026-11-20\","
        "\"preferences\":{\"clinic_ids\":[\"lakeside\",\"harbour\"],\"language\":\"fr\",\"virtual_ok\":true,"
        "\"availability\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"}],\"massage_minutes\":90}}",
        &errs);
    cr_assert(r, "%s", joined(&errs));
    cr_expect_str_eq(r->ref, "NP-2026-0001");
    cr_expect_str_eq(r->referring_clinic, "northpoint");
    cr_expect_str_eq(r->patient->birth_date, "1980-04-02");
    cr_expect_str_eq(r->patient->health_card, "5555-123-456-XY");
    cr_expect_eq(r->referrer->discipline, HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY);
    cr_expect_eq(r->n_conditions, 2);
    cr_expect_str_eq(r->conditions[1], "muscle_tension");
    cr_expect_eq(r->n_findings, 1);
    cr_expect_eq(r->priority, HANDOFF__PRIORITY__PRIORITY_ASAP);
    cr_expect_eq(r->consent, HANDOFF__CONSENT__CONSENT_GIVEN);
    cr_expect_eq(r->preferences->n_clinic_ids, 2);
    cr_expect(r->preferences->virtual_ok);
    cr_expect_eq(r->preferences->n_availability, 1);
    cr_expect_eq(r->preferences->availability[0]->day, 1);
    cr_expect_str_eq(r->preferences->availability[0]->to, "17:00");
    cr_expect_eq(r->preferences->massage_minutes, 90);
    cr_expect_str_eq(r->diagnosis, "", "absent text stays empty");
    hx_referral_free(r);
}

Test(refjson, null_means_not_given)
{
    hx_errors_t errs;
    Handoff__Referral *r = referral_from_text(
        "{\"ref\":\"X-1\",\"diagnosis\":null,\"patient\":null,\"conditions\":null,\"priority\":null}", &errs);
    cr_assert(r, "%s", joined(&errs));
    cr_expect_null(r->patient);
    cr_expect_eq(r->n_conditions, 0);
    cr_expect_eq(r->priority, 0);
    hx_referral_free(r);
}

/* ---- errors -------------------------------------------------------------------------- */

Test(refjson, type_errors_name_the_path)
{
    static const struct {
        const char *json, *path, *why;
    } cases[] = {
        {"{\"patient\":{\"birth_date\":19800402}}", "patient.birth_date", "must be a string"},
        {"{\"conditions\":[\"ankle_sprain\",5]}", "conditions[1]", "must be a string"},
        {"{\"conditions\":\"ankle_sprain\"}", "conditions", "must be an array of strings"},
        {"{\"findings\":[\"fever\",\"night_pain\",{}]}", "findings[2]", "must be a string"},
        {"{\"priority\":\"soon\"}", "priority", "unknown value \"soon\" (routine, urgent, asap, stat)"},
        {"{\"priority\":3}", "priority", "must be a string"},
        {"{\"consent\":\"yes\"}", "consent", "unknown value \"yes\" (given, withheld)"},
        {"{\"referrer\":{\"discipline\":\"chiropractic\"}}", "referrer.discipline",
         "unknown value \"chiropractic\" (physiotherapy, massage_therapy, physician)"},
        {"{\"patient\":\"Ada Example\"}", "patient", "must be an object"},
        {"{\"referrer\":[]}", "referrer", "must be an object"},
        {"{\"preferences\":{\"virtual_ok\":\"yes\"}}", "preferences.virtual_ok", "must be true or false"},
        {"{\"preferences\":{\"massage_minutes\":\"60\"}}", "preferences.massage_minutes", "must be an integer"},
        {"{\"preferences\":{\"massage_minutes\":-30}}", "preferences.massage_minutes", "must be between"},
        {"{\"preferences\":{\"clinic_ids\":[\"lakeside\",7]}}", "preferences.clinic_ids[1]", "must be a string"},
        {"{\"preferences\":{\"availability\":{}}}", "preferences.availability", "must be an array"},
        {"{\"preferences\":{\"availability\":[{\"day\":1},5]}}", "preferences.availability[1]", "must be an object"},
        {"{\"preferences\":{\"availability\":[{\"day\":\"Monday\"}]}}", "preferences.availability[0].day",
         "must be an integer"},
        {"{\"preferences\":{\"availability\":[{\"day\":8}]}}", "preferences.availability[0].day",
         "must be between 1 and 7"},
        {"{\"preferences\":{\"availability\":[{\"day\":2,\"from\":900}]}}", "preferences.availability[0].from",
         "must be a string"},
        {"{\"reason\":[\"pain\"]}", "reason", "must be a string"},
        {"{\"ref\":\"a\\u0000b\"}", "ref", "must not contain NUL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hx_errors_t errs;
        Handoff__Referral *r = referral_from_text(cases[i].json, &errs);
        cr_expect_null(r, "%s should be rejected", cases[i].json);
        hx_referral_free(r);
        cr_expect_eq(errs.count, 1, "%s: one error expected, got: %s", cases[i].json, joined(&errs));
        cr_expect(has_error(&errs, cases[i].path, cases[i].why), "%s: expected \"%s: %s\", got: %s",
                  cases[i].json, cases[i].path, cases[i].why, joined(&errs));
    }
}

Test(refjson, exact_message_for_an_unknown_priority)
{
    hx_errors_t errs;
    Handoff__Referral *r = referral_from_text("{\"priority\":\"soon\"}", &errs);
    cr_assert_null(r);
    cr_expect_str_eq(joined(&errs), "priority: unknown value \"soon\" (routine, urgent, asap, stat)");
}

Test(refjson, unknown_keys_are_errors)
{
    hx_errors_t errs;
    Handoff__Referral *r = referral_from_text(
        "{\"colour\":\"blue\",\"patient\":{\"middle_name\":\"Q\"},\"referrer\":{\"fax\":\"1\"},"
        "\"preferences\":{\"parking\":true,\"availability\":[{\"day\":1,\"until\":\"17:00\"}]}}",
        &errs);
    cr_assert_null(r);
    cr_expect_eq(errs.count, 5, "%s", joined(&errs));
    cr_expect(has_error(&errs, "colour", "unknown field"), "%s", joined(&errs));
    cr_expect(has_error(&errs, "patient.middle_name", "unknown field"));
    cr_expect(has_error(&errs, "referrer.fax", "unknown field"));
    cr_expect(has_error(&errs, "preferences.parking", "unknown field"));
    cr_expect(has_error(&errs, "preferences.availability[0].until", "unknown field"));
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

Test(refjson, length_limits)
{
    hx_errors_t errs;
    char text[12000];

    char *name = repeat('a', 200);
    snprintf(text, sizeof text, "{\"patient\":{\"given_name\":\"%s\"}}", name);
    Handoff__Referral *r = referral_from_text(text, &errs);
    cr_expect(r, "200 characters is the limit, not over it: %s", joined(&errs));
    hx_referral_free(r);
    free(name);

    name = repeat('a', 201);
    snprintf(text, sizeof text, "{\"patient\":{\"given_name\":\"%s\"}}", name);
    r = referral_from_text(text, &errs);
    cr_expect_null(r);
    cr_expect(has_error(&errs, "patient.given_name", "at most 200 characters"), "%s", joined(&errs));
    free(name);

    /* Limits count characters, not bytes: 200 x "é" (400 bytes) is fine. */
    char accents[401 + 1] = "";
    for (int i = 0; i < 200; i++)
        strcat(accents, "\xc3\xa9");
    snprintf(text, sizeof text, "{\"patient\":{\"family_name\":\"%s\"}}", accents);
    r = referral_from_text(text, &errs);
    cr_expect(r, "%s", joined(&errs));
    hx_referral_free(r);

    char *reason = repeat('x', 4001);
    snprintf(text, sizeof text, "{\"reason\":\"%s\"}", reason);
    r = referral_from_text(text, &errs);
    cr_expect_null(r);
    cr_expect(has_error(&errs, "reason", "at most 4000 characters"), "%s", joined(&errs));
    free(reason);

    char *code = repeat('c', 65);
    snprintf(text, sizeof text, "{\"conditions\":[\"ok\",\"%s\"]}", code);
    r = referral_from_text(text, &errs);
    cr_expect_null(r);
    cr_expect(has_error(&errs, "conditions[1]", "at most 64 characters"), "%s", joined(&errs));
    free(code);

    strcpy(text, "{\"conditions\":[");
    for (int i = 0; i < 33; i++)
        strcat(text, i ? ",\"a\"" : "\"a\"");
    strcat(text, "]}");
    r = referral_from_text(text, &errs);
    cr_expect_null(r);
    cr_expect(has_error(&errs, "conditions", "at most 32 entries"), "%s", joined(&errs));
}

Test(refjson, every_error_at_once)
{
    hx_errors_t errs;
    Handoff__Referral *r = referral_from_text(
        "{\"patient\":{\"birth_date\":1980,\"phone\":null,\"email\":false},\"conditions\":[1,2],"
        "\"priority\":\"soon\",\"consent\":\"maybe\",\"extra\":1}",
        &errs);
    cr_assert_null(r);
    cr_expect_eq(errs.count, 7, "%s", joined(&errs));
}

Test(refjson, not_an_object)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    json_t *j = json_array();
    cr_expect_null(hx_referral_from_json(j, &errs));
    cr_expect_eq(errs.count, 1);
    json_decref(j);
    cr_expect_null(hx_referral_from_json(NULL, &errs));
    cr_expect_null(hx_referral_from_json(NULL, NULL), "a NULL error list is allowed");
}

Test(refjson, errors_join_and_bound)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    for (int i = 0; i < HX_ERRORS_MAX + 3; i++)
        hx_errors_add(&errs, "conditions", "bad %d", i);
    cr_expect_eq(errs.count, HX_ERRORS_MAX);
    cr_expect_eq(errs.dropped, 3);
    char small[32];
    hx_errors_join(&errs, small, sizeof small);
    cr_expect_eq(strlen(small), sizeof small - 1, "truncated, NUL-terminated");
    cr_expect(!strncmp(small, "conditions: bad 0; conditions", 29));
    static char big[16384];
    hx_errors_join(&errs, big, sizeof big);
    cr_expect(strstr(big, "(3 more)"), "%s", big);
}

/* ---- enums --------------------------------------------------------------------------- */

Test(refjson, enum_spellings)
{
    cr_expect_str_eq(hx_discipline_text(HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY), "massage_therapy");
    cr_expect_eq(hx_discipline_from_text("physician"), HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN);
    cr_expect_eq(hx_discipline_from_text("Physiotherapy"), 0, "spellings are exact");
    cr_expect_eq(hx_discipline_from_text(NULL), 0);
    cr_expect_eq(hx_priority_from_text("stat"), HANDOFF__PRIORITY__PRIORITY_STAT);
    cr_expect_eq(hx_priority_from_text("unspecified"), 0);
    cr_expect_str_eq(hx_priority_text(HANDOFF__PRIORITY__PRIORITY_URGENT), "urgent");
    cr_expect_str_eq(hx_consent_text(HANDOFF__CONSENT__CONSENT_WITHHELD), "withheld");

    static const char *const fhir[] = {"draft", "requested", "received", "accepted", "rejected",
                                       "ready", "cancelled", "in-progress", "on-hold", "failed",
                                       "completed", "entered-in-error"};
    for (int s = 1; s <= 12; s++) {
        cr_expect_str_eq(hx_status_text((Handoff__TaskStatus)s), fhir[s - 1]);
        cr_expect_eq(hx_status_from_text(fhir[s - 1]), s);
    }
    cr_expect_eq(hx_status_from_text("in_progress"), 0, "FHIR spells it with a hyphen");
    cr_expect_str_eq(hx_status_text((Handoff__TaskStatus)99), "unknown");
}

/* ---- views --------------------------------------------------------------------------- */

Test(refjson, status_view)
{
    Handoff__Booking b = HANDOFF__BOOKING__INIT;
    b.discipline = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    b.therapist_id = "t-amira";
    b.therapist_name = "Amira Haddad";
    b.clinic_id = "northpoint";
    b.start = "2026-11-23T09:00";
    b.minutes = 60;
    Handoff__Booking *bookings[] = {&b};
    Handoff__StatusUpdate s = HANDOFF__STATUS_UPDATE__INIT;
    s.referral_id = "R-PRSBK9GXVCQ3008D";
    s.ref = "NP-2026-0001";
    s.status = HANDOFF__TASK_STATUS__TASK_IN_PROGRESS;
    s.reason = "booked";
    s.n_bookings = 1;
    s.bookings = bookings;
    s.by = "scheduling";
    s.at_ms = 1795000000000ull;

    json_t *j = hx_status_to_json(&s);
    cr_assert(j);
    cr_expect_str_eq(json_string_value(json_object_get(j, "status")), "in-progress");
    cr_expect_str_eq(json_string_value(json_object_get(j, "referral_id")), "R-PRSBK9GXVCQ3008D");
    json_t *jb = json_array_get(json_object_get(j, "bookings"), 0);
    cr_assert(jb);
    cr_expect_str_eq(json_string_value(json_object_get(jb, "discipline")), "physiotherapy");
    cr_expect_str_eq(json_string_value(json_object_get(jb, "start")), "2026-11-23T09:00");
    cr_expect_eq(json_integer_value(json_object_get(jb, "minutes")), 60);
    cr_expect(json_is_false(json_object_get(jb, "virtual")));
    cr_expect_str_eq(json_string_value(json_object_get(j, "at")), "2026-11-18T11:06:40Z");
    json_decref(j);
}

Test(refjson, handoff_view)
{
    hx_errors_t errs;
    char *file = src_path("deploy/sample/referrals/07-post-surgical-knee.json");
    json_t *j0 = load_json(file);
    free(file);
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_from_json(j0, &errs);
    cr_assert(r, "%s", joined(&errs));

    Handoff__Discipline disciplines[] = {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY,
                                         HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY};
    char *rules[] = {"condition:post_surgical_knee"};
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    d.n_disciplines = 2;
    d.disciplines = disciplines;
    d.priority = HANDOFF__PRIORITY__PRIORITY_URGENT;
    d.reason = "physiotherapy and massage therapy: Post-surgical knee rehabilitation";
    d.n_rules = 1;
    d.rules = rules;
    Handoff__Booking b = HANDOFF__BOOKING__INIT;
    b.discipline = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    b.therapist_id = "t-amira";
    b.start = "2026-11-23T09:00";
    b.minutes = 60;
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = "R-0000000000000000";
    h.referral = r;
    h.decision = &d;
    h.booking = &b;

    json_t *j = hx_handoff_to_json(&h);
    cr_assert(j);
    json_t *p = json_object_get(j, "patient");
    cr_expect_str_eq(json_string_value(json_object_get(p, "given_name")), "Dorothy");
    cr_expect_str_eq(json_string_value(json_object_get(p, "family_name")), "Abernathy-Fictional");
    cr_expect_str_eq(json_string_value(json_object_get(p, "birth_date")), "1958-09-22");
    cr_expect_str_eq(json_string_value(json_object_get(p, "phone")), "416-555-0107");
    cr_expect_str_eq(json_string_value(json_object_get(j, "priority")), "urgent");
    cr_expect(strstr(json_string_value(json_object_get(j, "reason")), "arthroplasty"));
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "conditions"), 0)), "post_surgical_knee");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "booking"), "therapist_id")), "t-amira");
    json_t *jd = json_object_get(j, "decision");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(jd, "disciplines"), 1)), "massage_therapy");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(jd, "rules"), 0)), "condition:post_surgical_knee");
    cr_expect(json_is_array(json_object_get(jd, "notes")));
    cr_expect_null(json_object_get(j, "preferences"), "the receiving clinic does not need them");
    json_decref(j);
    hx_referral_free(r);
    json_decref(j0);
}
