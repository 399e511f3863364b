/* Unit tests for hx_intake: required fields with their paths, consent, and the ids. */
#include <criterion/criterion.h>
#include <glob.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_intake.h"
#include "hx_refjson.h"
#include "clinical_test.h"

/* ---- helpers ------------------------------------------------------------------------- */


static json_t *load_json_rel(const char *rel)
{
    char *path = src_path(rel);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    cr_assert(j, "%s: %s (line %d)", path, err.text, err.line);
    free(path);
    return j;
}



static Handoff__Referral *to_referral(const json_t *j)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_from_json(j, &errs);
    cr_assert(r, "the JSON itself must convert: %s", joined(&errs));
    return r;
}

/* The sample used as a valid base; mutations below break one field each. */
#define BASE "deploy/sample/referrals/04-tension-headache.json"

/* ---- valid referrals ----------------------------------------------------------------- */

Test(intake, every_sample_referral_is_valid)
{
    char *pattern = src_path("deploy/sample/referrals/*.json");
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0);
    free(pattern);
    cr_expect_geq(g.gl_pathc, 12);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        json_error_t err;
        json_t *j = json_load_file(g.gl_pathv[i], 0, &err);
        cr_assert(j, "%s: %s", g.gl_pathv[i], err.text);
        hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *r = hx_referral_from_json(j, &errs);
        cr_assert(r, "%s: %s", g.gl_pathv[i], joined(&errs));
        cr_expect_eq(hx_intake_validate(r, &errs), 0, "%s: %s", g.gl_pathv[i], joined(&errs));
        cr_expect_eq(r->consent, HANDOFF__CONSENT__CONSENT_GIVEN, "%s", g.gl_pathv[i]);
        hx_referral_free(r);
        json_decref(j);
    }
    globfree(&g);
}

Test(intake, unspecified_priority_is_allowed)
{
    json_t *j = load_json_rel(BASE);
    json_object_del(j, "priority");
    Handoff__Referral *r = to_referral(j);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 0, "%s", joined(&errs));
    hx_referral_free(r);
    json_decref(j);
}

Test(intake, email_alone_is_enough_contact)
{
    json_t *j = load_json_rel(BASE);
    json_object_del(json_object_get(j, "patient"), "phone");
    Handoff__Referral *r = to_referral(j);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 0, "%s", joined(&errs));
    hx_referral_free(r);
    json_decref(j);
}

/* ---- one bad field at a time --------------------------------------------------------- */

typedef struct {
    const char *object;     /* NULL = top level, else "patient", "referrer", "preferences" */
    const char *key;
    const char *value;      /* JSON text; NULL = delete the key */
    const char *path, *why; /* the one error expected */
} mutation_t;

static const mutation_t mutations[] = {
    {NULL, "ref", "\"\"", "ref", "required"},
    {NULL, "ref", "\"NP 2026 #2\"", "ref", "letters, digits"},
    {"patient", "given_name", "\"\"", "patient.given_name", "required"},
    {"patient", "given_name", NULL, "patient.given_name", "required"},
    {"patient", "family_name", "\"   \"", "patient.family_name", "required"},
    {"patient", "birth_date", NULL, "patient.birth_date", "required"},
    {"patient", "birth_date", "\"1986-02-30\"", "patient.birth_date", "must be a date YYYY-MM-DD"},
    {"patient", "birth_date", "\"11/05/1986\"", "patient.birth_date", "must be a date YYYY-MM-DD"},
    {"patient", "birth_date", "\"2027-01-01\"", "patient.birth_date", "must not be after the referral date (2026-11-18)"},
    {"patient", "birth_date", "\"1889-06-01\"", "patient.birth_date", "before 1900"},
    {"patient", "phone", "\"call me\"", "patient.phone", "must be a phone number"},
    {"patient", "phone", "\"555-01\"", "patient.phone", "must be a phone number"},
    {"patient", "email", "\"hannah at example.org\"", "patient.email", "must be an email address"},
    {"patient", "health_card", "\"5555/002/004\"", "patient.health_card", "letters, digits"},
    {"patient", "language", "\"English\"", "patient.language", "language code"},
    {"referrer", "name", "\"\"", "referrer.name", "required"},
    {"referrer", "discipline", NULL, "referrer.discipline", "required"},
    {"referrer", "registration_body", "\"CPO\"", "referrer.registration_body", "'CPO' does not register physicians in ON; expected CPSO (college)"},
    {"referrer", "registration_body", NULL, "referrer.registration_body", "required"},
    {"referrer", "registration_number", "\"66-218\"", "referrer.registration_number", "digits only"},
    {"referrer", "registration_number", "\"123\"", "referrer.registration_number", "4 to 8 digits for CPSO"},
    {"referrer", "registration_number", "\"123456789\"", "referrer.registration_number", "4 to 8 digits for CPSO"},
    {"referrer", "registration_number", NULL, "referrer.registration_number", "required"},
    {"referrer", "clinic_id", "\"North Point\"", "referrer.clinic_id", "clinic id"},
    {"referrer", "email", "\"sprice@\"", "referrer.email", "email address"},
    {NULL, "reason", "\"\"", "reason", "required"},
    {NULL, "reason", NULL, "reason", "required"},
    {NULL, "conditions", "[\"tension_headache\",\"Muscle Tension\"]", "conditions[1]", "must be a code"},
    {NULL, "conditions", "[\"tension_headache\",\"\"]", "conditions[1]", "required"},
    {NULL, "conditions", "[\"tension_headache\",\"tension_headache\"]", "conditions[1]", "duplicate of conditions[0]"},
    {NULL, "findings", "[\"night pain\"]", "findings[0]", "must be a code"},
    {NULL, "consent", "\"withheld\"", "consent", "consent withheld: the referral must not be shared"},
    {NULL, "consent", NULL, "consent", "required"},
    {NULL, "referral_date", "\"2026-11-31\"", "referral_date", "must be a date YYYY-MM-DD"},
    {NULL, "referral_date", NULL, "referral_date", "required"},
    {"preferences", "language", "\"french\"", "preferences.language", "language code"},
    {"preferences", "clinic_ids", "[\"northpoint\",\"Lake Side\"]", "preferences.clinic_ids[1]", "clinic id"},
    {"preferences", "massage_minutes", "50", "preferences.massage_minutes", "must be 30, 45, 60 or 90 (got 50)"},
    {"preferences", "availability", "[{\"day\":2,\"from\":\"25:00\",\"to\":\"18:00\"}]",
     "preferences.availability[0].from", "must be a time HH:MM"},
    {"preferences", "availability", "[{\"day\":2,\"from\":\"12:00\",\"to\":\"11:00\"}]",
     "preferences.availability[0].to", "must be after from (12:00)"},
    {"preferences", "availability", "[{\"day\":2,\"from\":\"12:00\"}]", "preferences.availability[0].to", "required"},
    {"preferences", "availability", "[{\"from\":\"12:00\",\"to\":\"13:00\"}]", "preferences.availability[0].day",
     "must be 1 (Monday) to 7 (Sunday)"},
};

Test(intake, each_bad_field_is_reported_with_its_path)
{
    for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++) {
        const mutation_t *m = &mutations[i];
        json_t *j = load_json_rel(BASE);
        json_t *target = m->object ? json_object_get(j, m->object) : j;
        cr_assert(target, "%s missing in the base sample", m->object);
        if (m->value) {
            json_error_t err;
            json_t *v = json_loads(m->value, JSON_DECODE_ANY, &err);
            cr_assert(v, "case %zu: %s", i, err.text);
            json_object_set_new(target, m->key, v);
        } else {
            json_object_del(target, m->key);
        }
        Handoff__Referral *r = to_referral(j);
        hx_errors_t errs;
        hx_errors_clear(&errs);
        int n = hx_intake_validate(r, &errs);
        cr_expect_eq(n, 1, "case %zu (%s.%s): one error expected, got %d: %s", i,
                     m->object ? m->object : "", m->key, n, joined(&errs));
        cr_expect(has_error(&errs, m->path, m->why), "case %zu: expected \"%s: ...%s...\", got: %s", i,
                  m->path, m->why, joined(&errs));
        hx_referral_free(r);
        json_decref(j);
    }
}

Test(intake, no_contact_at_all)
{
    json_t *j = load_json_rel(BASE);
    json_t *p = json_object_get(j, "patient");
    json_object_del(p, "phone");
    json_object_del(p, "email");
    Handoff__Referral *r = to_referral(j);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 1, "%s", joined(&errs));
    cr_expect(has_error(&errs, "patient.phone", "a phone number or an email address is required"), "%s",
              joined(&errs));
    hx_referral_free(r);
    json_decref(j);
}

Test(intake, registration_rules_per_college)
{
    static const struct {
        const char *discipline, *body, *number;
        int errors;
        const char *path, *why;
    } cases[] = {
        {"physiotherapy", "CPO", "1234", 0, NULL, NULL},
        {"physiotherapy", "CPO", "12345678", 0, NULL, NULL},
        {"physiotherapy", "CMTO", "12345", 1, "referrer.registration_body", "'CMTO' does not register physiotherapy in ON; expected CPO"},
        {"massage_therapy", "CMTO", "123456", 0, NULL, NULL},
        {"massage_therapy", "CMTO", "1234567", 1, "referrer.registration_number", "4 to 6 digits for CMTO"},
        {"massage_therapy", "CPSO", "12345", 1, "referrer.registration_body", "expected CMTO (college)"},
        {"physician", "CPSO", "12345678", 0, NULL, NULL},
        {"physician", "cpso", "12345", 1, "referrer.registration_body", "'cpso' does not register physicians in ON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = load_json_rel(BASE);
        json_t *ref = json_object_get(j, "referrer");
        json_object_set_new(ref, "discipline", json_string(cases[i].discipline));
        json_object_set_new(ref, "registration_body", json_string(cases[i].body));
        json_object_set_new(ref, "registration_number", json_string(cases[i].number));
        Handoff__Referral *r = to_referral(j);
        hx_errors_t errs;
        hx_errors_clear(&errs);
        cr_expect_eq(hx_intake_validate(r, &errs), cases[i].errors, "case %zu: %s", i, joined(&errs));
        if (cases[i].path)
            cr_expect(has_error(&errs, cases[i].path, cases[i].why), "case %zu: %s", i, joined(&errs));
        hx_referral_free(r);
        json_decref(j);
    }
}

/* ---- everything at once -------------------------------------------------------------- */

Test(intake, invalid_sample_reports_every_field_at_once)
{
    json_t *j = load_json_rel("deploy/sample/invalid/missing-fields.json");
    Handoff__Referral *r = to_referral(j);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    int n = hx_intake_validate(r, &errs);
    static const struct {
        const char *path, *why;
    } want[] = {
        {"patient.given_name", "required"},
        {"patient.family_name", "required"},
        {"patient.birth_date", "must be a date"},
        {"patient.phone", "a phone number or an email address is required"},
        {"referrer.registration_body", "expected CPSO (college)"},
        {"referrer.registration_number", "digits only"},
        {"reason", "required"},
        {"referral_date", "must be a date"},
    };
    cr_expect_eq(n, (int)(sizeof want / sizeof want[0]), "%s", joined(&errs));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(has_error(&errs, want[i].path, want[i].why), "missing %s: %s; got: %s", want[i].path,
                  want[i].why, joined(&errs));
    hx_referral_free(r);
    json_decref(j);
}

Test(intake, empty_referral_names_every_required_field)
{
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    int n = hx_intake_validate(&r, &errs);
    static const char *const paths[] = {
        "ref", "patient.given_name", "patient.family_name", "patient.birth_date", "patient.phone",
        "referrer.name", "referrer.discipline", "referrer.registration_body",
        "referrer.registration_number", "reason", "consent", "referral_date",
    };
    cr_expect_eq(n, (int)(sizeof paths / sizeof paths[0]), "%s", joined(&errs));
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        cr_expect(has_error(&errs, paths[i], ""), "missing %s in: %s", paths[i], joined(&errs));
    cr_expect_eq(hx_intake_validate(NULL, &errs), 1, "a NULL referral is one error");
    cr_expect_eq(hx_intake_validate(&r, NULL), n, "errors may be counted without a list");
}

/* Issue 15: the clinical content may be words only; triage reads them. */
Test(intake, free_text_only_referral_is_accepted)
{
    static const char *const lists[] = {"[]", NULL};
    for (size_t i = 0; i < 2; i++) {
        json_t *j = load_json_rel(BASE);
        if (lists[i])
            json_object_set_new(j, "conditions", json_loads(lists[i], 0, NULL));
        else
            json_object_del(j, "conditions");
        json_object_del(j, "findings");
        json_object_set_new(j, "reason", json_string("45F, LBP 3/52 after lifting, no leg symptoms, B&B normal."));
        Handoff__Referral *r = to_referral(j);
        hx_errors_t errs;
        hx_errors_clear(&errs);
        cr_expect_eq(hx_intake_validate(r, &errs), 0, "words only (%zu): %s", i, joined(&errs));
        hx_referral_free(r);
        json_decref(j);
    }
}

Test(intake, consent_withheld_sample)
{
    json_t *j = load_json_rel("deploy/sample/invalid/consent-withheld.json");
    Handoff__Referral *r = to_referral(j);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 1, "%s", joined(&errs));
    cr_expect_str_eq(joined(&errs), "consent: consent withheld: the referral must not be shared");
    hx_referral_free(r);
    json_decref(j);
}

/* ---- protobuf input that never went through JSON ------------------------------------- */

Test(intake, wire_only_problems)
{
    json_t *j = load_json_rel(BASE);
    Handoff__Referral *r = to_referral(j);
    char bad_utf8[] = "Hann\xff";
    char *saved = r->patient->given_name;
    r->patient->given_name = bad_utf8;
    r->priority = (Handoff__Priority)9;
    r->referrer->discipline = (Handoff__Discipline)7;
    r->preferences->availability[0]->day = 9;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_intake_validate(r, &errs);
    cr_expect(has_error(&errs, "patient.given_name", "valid UTF-8"), "%s", joined(&errs));
    cr_expect(has_error(&errs, "priority", "unknown value 9"), "%s", joined(&errs));
    cr_expect(has_error(&errs, "referrer.discipline", "unknown value 7"), "%s", joined(&errs));
    cr_expect(has_error(&errs, "preferences.availability[0].day", "1 (Monday) to 7 (Sunday)"), "%s",
              joined(&errs));
    r->patient->given_name = saved;
    hx_referral_free(r);
    json_decref(j);
}

/* ---- ids ----------------------------------------------------------------------------- */

Test(intake, submission_id_is_blake2b_of_the_tagged_pair)
{
    uint8_t id[16], again[16], want[16];
    hx_submission_id("northpoint", "NP-2026-0001", id);
    hx_submission_id("northpoint", "NP-2026-0001", again);
    cr_expect_eq(memcmp(id, again, 16), 0, "deterministic");

    static const char msg[] = "referral\0northpoint\0NP-2026-0001";
    cr_assert_geq(sodium_init(), 0);
    crypto_generichash(want, 16, (const unsigned char *)msg, sizeof msg - 1, NULL, 0);
    cr_expect_eq(memcmp(id, want, 16), 0, "BLAKE2b-128 of \"referral\\0\" clinic \"\\0\" ref");

    /* Python: hashlib.blake2b(b'referral\0northpoint\0NP-2026-0001', digest_size=16) */
    static const uint8_t vector[16] = {0xb6, 0x32, 0xb9, 0xa6, 0x1d, 0xdb, 0x2e, 0x30,
                                       0x01, 0x0d, 0x65, 0x7e, 0xf1, 0xe5, 0xba, 0x72};
    cr_expect_eq(memcmp(id, vector, 16), 0, "known vector");

    /* The NUL separator keeps ("ab","c") and ("a","bc") apart. */
    uint8_t x[16], y[16];
    hx_submission_id("ab", "c", x);
    hx_submission_id("a", "bc", y);
    cr_expect_neq(memcmp(x, y, 16), 0);
    hx_submission_id("lakeside", "NP-2026-0001", y);
    cr_expect_neq(memcmp(id, y, 16), 0, "same ref at another clinic is another referral");
}

Test(intake, referral_id_is_crockford_base32)
{
    char out[HX_REFERRAL_ID_LEN + 1];
    uint8_t id[16];

    memset(id, 0, sizeof id);
    hx_referral_id(id, out);
    cr_expect_str_eq(out, "R-0000000000000000");

    memset(id, 0xff, sizeof id);
    hx_referral_id(id, out);
    cr_expect_str_eq(out, "R-ZZZZZZZZZZZZZZZZ");

    /* The 5-bit groups 0..15, then 16..31: every letter of the alphabet in order. */
    static const uint8_t low[16] = {0x00, 0x44, 0x32, 0x14, 0xc7, 0x42, 0x54, 0xb6, 0x35, 0xcf};
    hx_referral_id(low, out);
    cr_expect_str_eq(out, "R-0123456789ABCDEF");
    static const uint8_t high[16] = {0x84, 0x65, 0x3a, 0x56, 0xd7, 0xc6, 0x75, 0xbe, 0x77, 0xdf};
    hx_referral_id(high, out);
    cr_expect_str_eq(out, "R-GHJKMNPQRSTVWXYZ");

    hx_submission_id("northpoint", "NP-2026-0001", id);
    hx_referral_id(id, out);
    cr_expect_str_eq(out, "R-PRSBK9GXVCQ3008D");
    cr_expect_eq(strlen(out), HX_REFERRAL_ID_LEN);
    for (size_t i = 2; i < HX_REFERRAL_ID_LEN; i++)
        cr_expect(strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", out[i]), "%c is not Crockford", out[i]);

    /* Only the first 10 bytes count. */
    uint8_t other[16];
    memcpy(other, id, 16);
    other[15] ^= 1;
    char out2[HX_REFERRAL_ID_LEN + 1];
    hx_referral_id(other, out2);
    cr_expect_str_eq(out, out2);
}
