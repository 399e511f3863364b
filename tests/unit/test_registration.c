/* Unit tests for hx_registration and intake across provinces: the registration file as shipped
 * (every province and territory, every entry well formed, the built-in copy the same), a
 * referrer from each province with the right and the wrong body, an association number where
 * massage therapy is not regulated, accepted and labelled, the missing province read as ON, and
 * malformed files refused naming the path in the JSON and what is wrong. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_intake.h"
#include "hx_refjson.h"
#include "hx_registration.h"
#include "clinical_test.h"

#define FILE_REL "services/intake/registration.json"
#define BASE "deploy/sample/referrals/04-tension-headache.json"

static const Handoff__Discipline DISCS[] = {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY,
                                            HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY,
                                            HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN};

/* Each province's bodies as this test expects them: physiotherapy, massage therapy, physician
 * (acronyms in the file's order), and whether massage therapy is regulated by a college. */
static const struct {
    const char *code, *name, *physio, *massage, *physician;
    bool massage_college, physio_college;
} PROVINCES[] = {
    {"AB", "Alberta", "CPTA", "MTAA, NHPC, RMTA", "CPSA", false, true},
    {"BC", "British Columbia", "CHCPBC", "CCHPBC", "CPSBC", true, true},
    {"MB", "Manitoba", "CPM", "MTAM, NHPC", "CPSM", false, true},
    {"NB", "New Brunswick", "CPTNB", "CMTNB", "CPSNB", true, true},
    {"NL", "Newfoundland and Labrador", "NLCP", "CMTNL", "CPSNL", true, true},
    {"NS", "Nova Scotia", "NSCP", "MTANS, NHPC", "CPSNS", false, true},
    {"NT", "Northwest Territories", "CPA", "NHPC", "GNWT", false, false},
    {"NU", "Nunavut", "CPA", "NHPC", "GN", false, false},
    {"ON", "Ontario", "CPO", "CMTO", "CPSO", true, true},
    {"PE", "Prince Edward Island", "PEICP", "CMTPEI", "CPSPEI", true, true},
    {"QC", "Quebec", "OPPQ", "FQM, NHPC", "CMQ", false, true},
    {"SK", "Saskatchewan", "SCPT", "MTAS, NHPC", "CPSS", false, true},
    {"YT", "Yukon", "PLRA", "NHPC", "YMC", false, true},
};
#define N_PROVINCES (sizeof PROVINCES / sizeof PROVINCES[0])

static const char *expected_list(size_t p, Handoff__Discipline d)
{
    return d == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY     ? PROVINCES[p].physio
           : d == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? PROVINCES[p].massage
                                                                   : PROVINCES[p].physician;
}

static hx_registration_t *load_shipped(void)
{
    char *path = src_path(FILE_REL);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_registration_t *reg = hx_registration_load(path, &errs);
    cr_assert(reg, "%s refused: %s", path, joined(&errs));
    free(path);
    return reg;
}

/* The bodies as "A, B, C". */
static void acronyms(const hx_body_t *b, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", b[i].acronym);
}

/* ---- the file ------------------------------------------------------------------------- */

Test(registration, shipped_file_lists_every_province_and_discipline)
{
    hx_registration_t *reg = load_shipped();
    const hx_registration_t *builtin = hx_registration_builtin();
    cr_assert(builtin, "the built-in copy loads");
    for (size_t p = 0; p < N_PROVINCES; p++) {
        const char *code = PROVINCES[p].code;
        cr_expect_str_eq(hx_registration_province(reg, code), PROVINCES[p].name);
        cr_expect_str_eq(hx_registration_province(builtin, code), PROVINCES[p].name);
        for (size_t d = 0; d < 3; d++) {
            size_t n, nb;
            const hx_body_t *b = hx_registration_bodies(reg, code, DISCS[d], &n);
            const hx_body_t *bb = hx_registration_bodies(builtin, code, DISCS[d], &nb);
            char got[256], got_builtin[256];
            acronyms(b, n, got, sizeof got);
            acronyms(bb, nb, got_builtin, sizeof got_builtin);
            cr_expect_str_eq(got, expected_list(p, DISCS[d]), "%s %s", code, hx_discipline_text(DISCS[d]));
            cr_expect_str_eq(got_builtin, got, "%s %s: the built-in copy is the file", code,
                             hx_discipline_text(DISCS[d]));
            for (size_t i = 0; i < n; i++) {
                cr_expect(strlen(b[i].acronym) >= 2 && strlen(b[i].name) > strlen(b[i].acronym), "%s %s",
                          code, b[i].acronym);
                cr_expect(b[i].min >= 1 && b[i].min <= b[i].max && b[i].max <= HX_REG_NUMBER_MAX, "%s %s",
                          code, b[i].acronym);
                bool college = DISCS[d] == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? PROVINCES[p].massage_college
                               : DISCS[d] == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY ? PROVINCES[p].physio_college
                                                                                            : true;
                cr_expect_eq(b[i].kind, college ? HX_BODY_COLLEGE : HX_BODY_ASSOCIATION, "%s %s is a%s", code,
                             b[i].acronym, college ? " college" : "n association");
            }
        }
    }
    cr_expect_null(hx_registration_province(reg, "XX"));
    cr_expect_null(hx_registration_province(reg, "on"), "codes are capitals");
    hx_registration_destroy(&reg);
    cr_expect_null(reg);
    hx_registration_destroy(&reg);     /* twice is harmless */
}

Test(registration, ontario_keeps_its_number_rules)
{
    const hx_registration_t *reg = hx_registration_builtin();
    static const struct {
        const char *acronym;
        Handoff__Discipline d;
        unsigned min, max;
    } want[] = {{"CPO", HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY, 4, 8},
                {"CMTO", HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY, 4, 6},
                {"CPSO", HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN, 4, 8}};
    for (size_t i = 0; i < 3; i++) {
        const hx_body_t *b = hx_registration_find(reg, "ON", want[i].d, want[i].acronym);
        cr_assert(b, "%s", want[i].acronym);
        cr_expect(b->digits);
        cr_expect_eq(b->min, want[i].min);
        cr_expect_eq(b->max, want[i].max);
    }
    const hx_body_t *mtaa = hx_registration_find(reg, "AB", HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY, "MTAA");
    cr_assert(mtaa);
    cr_expect(!mtaa->digits, "elsewhere the number is permissive");
    cr_expect_eq(mtaa->min, 1);
    cr_expect_eq(mtaa->max, 12);
    cr_expect_null(hx_registration_find(reg, "AB", HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY, "mtaa"));
    cr_expect_null(hx_registration_find(reg, "ON", HANDOFF__DISCIPLINE__DISCIPLINE_UNSPECIFIED, "CPO"));
}

/* ---- malformed files ------------------------------------------------------------------ */

static json_t *shipped_json(void)
{
    char *path = src_path(FILE_REL);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    cr_assert(j, "%s: %s", path, err.text);
    free(path);
    return j;
}

static json_t *at(json_t *root, const char *prov, const char *disc, size_t i)
{
    json_t *p = json_object_get(json_object_get(root, "provinces"), prov);
    return disc ? json_array_get(json_object_get(p, disc), i) : p;
}

/* Refuses root (as text) with an error at path whose reason has why. */
static void expect_refused(json_t *root, const char *path, const char *why, const char *what)
{
    char *text = json_dumps(root, 0);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_registration_t *reg = hx_registration_parse(text, &errs);
    cr_expect_null(reg, "%s: accepted", what);
    cr_expect(has_error(&errs, path, why), "%s: want %s: ...%s...; got: %s", what, path, why, joined(&errs));
    hx_registration_destroy(&reg);
    free(text);
    json_decref(root);
}

Test(registration, a_malformed_file_is_refused_naming_the_path)
{
    json_t *j;
    j = shipped_json();
    json_object_del(json_object_get(j, "provinces"), "YT");
    expect_refused(j, "provinces.YT", "required: every province and territory", "a province missing");

    j = shipped_json();
    json_object_set(json_object_get(j, "provinces"), "XX", at(j, "ON", NULL, 0));
    expect_refused(j, "provinces.XX", "'XX' is not a Canadian province or territory (AB, BC,", "an unknown code");

    j = shipped_json();
    json_object_set_new(at(j, "AB", "massage_therapy", 1), "kind", json_string("guild"));
    expect_refused(j, "provinces.AB.massage_therapy[1].kind", "must be \"college\" or \"association\"", "a kind");

    j = shipped_json();
    json_object_del(at(j, "AB", "massage_therapy", 2), "kind");
    expect_refused(j, "provinces.AB.massage_therapy[2].kind", "required", "no kind");

    j = shipped_json();
    json_object_set_new(at(j, "AB", "massage_therapy", 0), "kind", json_string("college"));
    expect_refused(j, "provinces.AB.massage_therapy[1].kind", "must be college like provinces.AB.massage_therapy[0]",
                   "colleges and associations mixed");

    j = shipped_json();
    json_object_set_new(at(j, "ON", NULL, 0), "physician", json_array());
    expect_refused(j, "provinces.ON.physician", "must be a list of 1 to 16 bodies", "an empty list");

    j = shipped_json();
    json_object_del(at(j, "QC", NULL, 0), "massage_therapy");
    expect_refused(j, "provinces.QC.massage_therapy", "required", "a discipline missing");

    j = shipped_json();
    json_object_set_new(at(j, "ON", "physiotherapy", 0), "acronym", json_string("cpo"));
    expect_refused(j, "provinces.ON.physiotherapy[0].acronym", "capital letters and digits", "a lower-case acronym");

    j = shipped_json();
    json_object_set_new(at(j, "ON", "physiotherapy", 0), "name", json_string(" "));
    expect_refused(j, "provinces.ON.physiotherapy[0].name", "must not be empty", "a blank name");

    j = shipped_json();
    json_object_set_new(json_object_get(at(j, "ON", "physiotherapy", 0), "number"), "max", json_integer(13));
    expect_refused(j, "provinces.ON.physiotherapy[0].number.max", "from 1 to 12", "a number too long");

    j = shipped_json();
    json_object_set_new(json_object_get(at(j, "ON", "massage_therapy", 0), "number"), "min", json_integer(7));
    expect_refused(j, "provinces.ON.massage_therapy[0].number.max", "must not be less than min (7)", "min > max");

    j = shipped_json();
    json_object_set_new(json_object_get(at(j, "ON", "physician", 0), "number"), "chars", json_string("hex"));
    expect_refused(j, "provinces.ON.physician[0].number.chars", "\"digits\" or \"alphanumeric\"", "chars");

    j = shipped_json();
    json_array_append(json_object_get(at(j, "AB", NULL, 0), "massage_therapy"), at(j, "AB", "massage_therapy", 0));
    expect_refused(j, "provinces.AB.massage_therapy[3]", "'MTAA' is also provinces.AB.massage_therapy[0]",
                   "an acronym twice");

    j = shipped_json();
    json_object_set_new(at(j, "QC", NULL, 0), "colour", json_string("blue"));
    expect_refused(j, "provinces.QC.colour", "unknown field", "an unknown field");

    j = shipped_json();
    json_object_set_new(j, "version", json_integer(2));
    expect_refused(j, "version", "must be 1", "the version");

    j = shipped_json();
    json_object_set_new(j, "provinces", json_array());
    expect_refused(j, "provinces", "must be an object keyed by province code", "provinces a list");
}

Test(registration, unreadable_or_broken_files_name_the_file_or_the_line)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_null(hx_registration_load("/nonexistent/registration.json", &errs));
    cr_expect_eq(errs.count, 1);
    cr_expect_str_eq(errs.items[0].path, "/nonexistent/registration.json");

    char path[] = "/tmp/hx-registration-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char broken[] = "{\"version\": 1,\n \"provinces\": {\"ON\": }\n}\n";
    cr_assert_eq(write(fd, broken, sizeof broken - 1), (ssize_t)(sizeof broken - 1));
    close(fd);
    hx_errors_clear(&errs);
    cr_expect_null(hx_registration_load(path, &errs));
    unlink(path);
    cr_expect(errs.count == 1 && strncmp(errs.items[0].path, "line 2, column", 14) == 0, "%s", joined(&errs));

    hx_errors_clear(&errs);
    cr_expect_null(hx_registration_parse("[]", &errs));
    cr_expect(has_error(&errs, "", "must be a JSON object"), "%s", joined(&errs));
    cr_expect_null(hx_registration_parse(NULL, NULL), "no text, no error list: still refused");
}

/* ---- intake, province by province ------------------------------------------------------ */

static Handoff__Referral *referrer_as(const char *province, const char *discipline, const char *body,
                                      const char *number)
{
    char *path = src_path(BASE);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    cr_assert(j, "%s: %s", path, err.text);
    free(path);
    json_t *ref = json_object_get(j, "referrer");
    if (province)
        json_object_set_new(ref, "province", json_string(province));
    json_object_set_new(ref, "discipline", json_string(discipline));
    json_object_set_new(ref, "registration_body", json_string(body));
    json_object_set_new(ref, "registration_number", json_string(number));
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_from_json(j, &errs);
    cr_assert(r, "%s", joined(&errs));
    json_decref(j);
    return r;
}

/* Sets Referrer.registration_kind as intake does (free_unpacked frees it). */
static void set_kind(Handoff__Referral *r, const char *kind)
{
    if (r->referrer->registration_kind != protobuf_c_empty_string)
        free(r->referrer->registration_kind);
    r->referrer->registration_kind = strdup(kind);
}

/* A body that registers nobody in province p: Ontario's, or Alberta's for Ontario. */
static const char *wrong_body(size_t p, Handoff__Discipline d)
{
    const char *on = d == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY     ? "CPO"
                     : d == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? "CMTO"
                                                                             : "CPSO";
    const char *ab = d == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY     ? "CPTA"
                     : d == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? "MTAA"
                                                                             : "CPSA";
    return strcmp(PROVINCES[p].code, "ON") == 0 ? ab : on;
}

Test(registration, every_province_takes_its_bodies_and_names_them_for_a_wrong_one)
{
    const hx_registration_t *reg = hx_registration_builtin();
    for (size_t p = 0; p < N_PROVINCES; p++) {
        const char *code = PROVINCES[p].code;
        for (size_t d = 0; d < 3; d++) {
            const char *disc = hx_discipline_text(DISCS[d]);
            size_t n;
            const hx_body_t *b = hx_registration_bodies(reg, code, DISCS[d], &n);
            for (size_t i = 0; i < n; i++) {        /* each right body, a number that fits */
                Handoff__Referral *r = referrer_as(code, disc, b[i].acronym, "12345");
                hx_errors_t errs;
                hx_errors_clear(&errs);
                cr_expect_eq(hx_intake_check(r, reg, &errs), 0, "%s %s %s: %s", code, disc, b[i].acronym,
                             joined(&errs));
                cr_expect_str_eq(hx_intake_registration_kind(r, reg), hx_body_kind_text(b[i].kind), "%s %s", code,
                                 b[i].acronym);
                hx_referral_free(r);
            }
            const char *wrong = wrong_body(p, DISCS[d]);
            Handoff__Referral *r = referrer_as(code, disc, wrong, "12345");
            hx_errors_t errs;
            hx_errors_clear(&errs);
            cr_expect_eq(hx_intake_check(r, reg, &errs), 1, "%s %s %s: %s", code, disc, wrong, joined(&errs));
            char want[200];
            snprintf(want, sizeof want, "'%s' does not register", wrong);
            cr_expect(has_error(&errs, "referrer.registration_body", want), "%s: %s", code, joined(&errs));
            snprintf(want, sizeof want, " in %s; expected %s%s (", code, n > 1 ? "one of " : "",
                     expected_list(p, DISCS[d]));
            cr_expect(has_error(&errs, "referrer.registration_body", want), "%s: want %s; %s", code, want,
                      joined(&errs));
            cr_expect_null(hx_intake_registration_kind(r, reg));
            hx_referral_free(r);
        }
    }
}

Test(registration, the_wrong_body_message_names_the_associations_where_unregulated)
{
    Handoff__Referral *r = referrer_as("AB", "massage_therapy", "CMTO", "27755");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 1, "%s", joined(&errs));
    cr_expect_str_eq(errs.items[0].path, "referrer.registration_body");
    cr_expect_str_eq(errs.items[0].why, "'CMTO' does not register massage therapy in AB; expected one of MTAA, NHPC, "
                                        "RMTA (associations: massage therapy is not regulated by a college in AB)");
    hx_referral_free(r);

    r = referrer_as("BC", "physiotherapy", "CPTBC", "12345");
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 1, "%s", joined(&errs));
    cr_expect_str_eq(errs.items[0].why, "'CPTBC' does not register physiotherapy in BC; expected CHCPBC (college)",
                     "the college before the 2024 amalgamation");
    hx_referral_free(r);
}

Test(registration, an_alberta_massage_association_number_is_accepted_and_labelled)
{
    const hx_registration_t *reg = hx_registration_builtin();
    Handoff__Referral *r = referrer_as("AB", "massage_therapy", "MTAA", "12345");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_assert_eq(hx_intake_check(r, reg, &errs), 0, "%s", joined(&errs));
    const char *kind = hx_intake_registration_kind(r, reg);
    cr_assert_str_eq(kind, "association");
    /* as intake sends it on: the kind recorded in the referral */
    set_kind(r, kind);
    char text[224];
    cr_expect_str_eq(hx_registration_text(r->referrer, text, sizeof text),
                     "MTAA 12345 (association: massage therapy is not regulated by a college in AB)");

    /* what a receiving clinic reads (handoff --json): the kind, and the label */
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = "R-0000000000000A01";
    h.referral = r;
    json_t *view = hx_handoff_to_json(&h);
    json_t *ref = json_object_get(view, "referrer");
    cr_expect_str_eq(json_string_value(json_object_get(ref, "province")), "AB");
    cr_expect_str_eq(json_string_value(json_object_get(ref, "registration_kind")), "association");
    cr_expect_str_eq(json_string_value(json_object_get(ref, "registration")),
                     "MTAA 12345 (association: massage therapy is not regulated by a college in AB)");
    json_decref(view);

    /* the referral JSON keeps province and kind through a round trip, without the label */
    json_t *j = hx_referral_to_json(r);
    cr_expect_null(json_object_get(json_object_get(j, "referrer"), "registration"));
    hx_errors_clear(&errs);
    Handoff__Referral *back = hx_referral_from_json(j, &errs);
    cr_assert(back, "%s", joined(&errs));
    cr_expect_str_eq(back->referrer->province, "AB");
    cr_expect_str_eq(back->referrer->registration_kind, "association");
    hx_referral_free(back);
    json_decref(j);
    hx_referral_free(r);

    /* an association's number: letters, digits and hyphens, at most 12 */
    static const struct {
        const char *number, *why;
    } numbers[] = {{"AB-1234", NULL}, {"M7", NULL}, {"12 34", "must use only letters, digits and -"},
                   {"1234567890123", "must be 1 to 12 characters for MTAA (has 13)"}};
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        r = referrer_as("AB", "massage_therapy", "MTAA", numbers[i].number);
        hx_errors_clear(&errs);
        cr_expect_eq(hx_intake_check(r, reg, &errs), numbers[i].why ? 1 : 0, "%s: %s", numbers[i].number,
                     joined(&errs));
        if (numbers[i].why)
            cr_expect(has_error(&errs, "referrer.registration_number", numbers[i].why), "%s", joined(&errs));
        hx_referral_free(r);
    }
}

Test(registration, a_college_is_labelled_college_and_an_unlabelled_body_plainly)
{
    Handoff__Referrer f = HANDOFF__REFERRER__INIT;
    f.discipline = HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
    f.registration_body = "CMTO";
    f.registration_number = "27755";
    char text[224];
    cr_expect_str_eq(hx_registration_text(&f, text, sizeof text), "CMTO 27755", "older referrals: no kind");
    f.registration_kind = "college";
    cr_expect_str_eq(hx_registration_text(&f, text, sizeof text), "CMTO 27755 (college)");
    f.registration_kind = "association";       /* no province: Ontario's rules apply */
    cr_expect_str_eq(hx_registration_text(&f, text, sizeof text),
                     "CMTO 27755 (association: massage therapy is not regulated by a college in ON)");
    cr_expect_str_eq(hx_registration_text(NULL, text, sizeof text), "");
    cr_expect_str_eq(hx_registration_text(&f, text, 6), "CMTO ", "truncated, terminated");
}

Test(registration, a_referral_without_a_province_is_read_as_ontario)
{
    const hx_registration_t *reg = hx_registration_builtin();
    static const char *const provinces[] = {NULL, "", "ON"};
    for (size_t i = 0; i < 3; i++) {
        Handoff__Referral *r = referrer_as(provinces[i], "physiotherapy", "CPO", "14523");
        hx_errors_t errs;
        hx_errors_clear(&errs);
        cr_expect_eq(hx_intake_check(r, reg, &errs), 0, "province '%s': %s", provinces[i] ? provinces[i] : "(none)",
                     joined(&errs));
        cr_expect_str_eq(hx_intake_registration_kind(r, reg), "college");
        hx_referral_free(r);
    }
    Handoff__Referral *r = referrer_as(NULL, "physiotherapy", "CPTA", "14523");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_check(r, reg, &errs), 1, "%s", joined(&errs));
    cr_expect(has_error(&errs, "referrer.registration_body", "'CPTA' does not register physiotherapy in ON; expected CPO"),
              "%s", joined(&errs));
    hx_referral_free(r);
}

Test(registration, an_unknown_province_is_named_with_the_codes)
{
    static const char *const bad[] = {"XX", "ab", "Ontario", "U.S."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Handoff__Referral *r = referrer_as(bad[i], "physiotherapy", "CPO", "14523");
        hx_errors_t errs;
        hx_errors_clear(&errs);
        cr_expect_eq(hx_intake_validate(r, &errs), 1, "%s: %s", bad[i], joined(&errs));
        char want[160];
        snprintf(want, sizeof want,
                 "'%s' is not a Canadian province or territory (AB, BC, MB, NB, NL, NS, NT, NU, ON, PE, QC, SK, YT)",
                 bad[i]);
        cr_expect(has_error(&errs, "referrer.province", want), "%s", joined(&errs));
        hx_referral_free(r);
    }
}

Test(registration, a_referral_claiming_a_kind_intake_does_not_know_is_refused)
{
    Handoff__Referral *r = referrer_as("ON", "physiotherapy", "CPO", "14523");
    set_kind(r, "union");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 1, "%s", joined(&errs));
    cr_expect(has_error(&errs, "referrer.registration_kind", "college or association"), "%s", joined(&errs));
    hx_referral_free(r);
}

Test(registration, without_a_table_the_body_cannot_be_checked)
{
    Handoff__Referral *r = referrer_as("ON", "physiotherapy", "CPO", "14523");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_check(r, NULL, &errs), 1, "%s", joined(&errs));
    cr_expect(has_error(&errs, "referrer.registration_body", "cannot be checked: no registration bodies are loaded"),
              "%s", joined(&errs));
    hx_referral_free(r);
}
