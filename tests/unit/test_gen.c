/* Unit tests for hx_gen: the generated network loads as a directory, every generated referral
 * converts and passes intake, the clinical mix (by triage) matches its targets, output is
 * deterministic per seed, and booking the generated referrals into the generated network
 * never double-books and stays inside each therapist's hours. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_gen.h"
#include "hx_intake.h"
#include "hx_refjson.h"
#include "hx_registration.h"
#include "hx_schedule.h"
#include "hx_triage.h"
#include "hx_util.h"
#include "clinical_test.h"

#define PHYSIO HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define MASSAGE HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY
#define PHYSICIAN HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN
#define DAY 1440

/* ---- helpers ------------------------------------------------------------------------- */




static json_t *rules_json;      /* services/triage/rules.json */
static hx_rules_t *rules;

static void setup(void)
{
    char *path = src_path("services/triage/rules.json");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    rules = hx_rules_load(path, &errs);
    cr_assert(rules, "rules: %s", joined(&errs));
    json_error_t jerr;
    rules_json = json_load_file(path, 0, &jerr);
    cr_assert(rules_json);
    free(path);
}

static void teardown(void)
{
    hx_rules_destroy(&rules);
    json_decref(rules_json);
}

TestSuite(gen, .init = setup, .fini = teardown, .timeout = 240);

static hx_gen_t *make_gen(size_t clinics, size_t therapists, uint64_t seed)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_gen_options_t opt = {.clinics = clinics, .therapists = therapists, .seed = seed};
    hx_gen_t *g = hx_gen_new(rules_json, &opt, &errs);
    cr_assert(g, "hx_gen_new: %s", joined(&errs));
    return g;
}

static hx_directory_t *load_directory(const hx_gen_t *g)
{
    json_t *dir = hx_gen_directory(g);
    cr_assert(dir);
    char *text = json_dumps(dir, JSON_INDENT(2));
    json_decref(dir);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_parse(text, &errs);
    free(text);
    cr_assert(d, "generated directory does not load: %s", joined(&errs));
    return d;
}

/* The referral as protobuf; asserts it converts and passes intake. */
static Handoff__Referral *referral(const hx_gen_t *g, uint64_t i, hx_gen_kind_t *kind)
{
    json_t *j = hx_gen_referral(g, i, kind);
    cr_assert(j, "referral %llu", (unsigned long long)i);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_from_json(j, &errs);
    if (!r) {
        char *text = json_dumps(j, JSON_INDENT(2));
        cr_assert_fail("referral %llu does not convert: %s\n%s", (unsigned long long)i, joined(&errs), text);
    }
    int n = hx_intake_validate(r, &errs);
    if (n != 0) {
        char *text = json_dumps(j, JSON_INDENT(2));
        cr_assert_fail("referral %llu fails intake: %s\n%s", (unsigned long long)i, joined(&errs), text);
    }
    json_decref(j);
    return r;
}

static bool rules_know(const char *table, const char *code)
{
    return json_object_get(json_object_get(rules_json, table), code) != NULL;
}

static bool known_finding(const char *code)
{
    if (rules_know("red_flags", code) || rules_know("massage_contraindications", code))
        return true;
    const json_t *f = json_object_get(json_object_get(rules_json, "rmt_needs_diagnosis"), "findings");
    for (size_t i = 0; i < json_array_size(f); i++)
        if (!strcmp(json_string_value(json_array_get(f, i)), code))
            return true;
    return false;
}

enum outcome { O_PHYSIO, O_MASSAGE, O_BOTH, O_PHYSICIAN, O_NONE, N_OUTCOMES };

static enum outcome outcome_of(const Handoff__TriageDecision *d)
{
    if (d->red_flag)
        return d->n_disciplines == 1 && d->disciplines[0] == PHYSICIAN ? O_PHYSICIAN : O_NONE;
    bool pt = false, rmt = false;
    for (size_t i = 0; i < d->n_disciplines; i++) {
        pt |= d->disciplines[i] == PHYSIO;
        rmt |= d->disciplines[i] == MASSAGE;
    }
    return pt && rmt ? O_BOTH : pt ? O_PHYSIO : rmt ? O_MASSAGE : O_NONE;
}

/* Whether "BODY NUMBER" names a body the registration file lists for the discipline in the
 * province, with a number of its length and characters. */
static bool registered_in(const char *reg, const char *province, Handoff__Discipline d)
{
    const char *sp = strchr(reg, ' ');
    if (!sp)
        return false;
    char acronym[32];
    snprintf(acronym, sizeof acronym, "%.*s", (int)(sp - reg), reg);
    const hx_body_t *b = hx_registration_find(hx_registration_builtin(), province, d, acronym);
    size_t n = strlen(sp + 1);
    return b && n >= b->min && n <= b->max && (!b->digits || strspn(sp + 1, "0123456789") == n);
}

/* ---- the network --------------------------------------------------------------------- */

Test(gen, directory_loads_and_looks_like_a_network)
{
    hx_gen_t *g = make_gen(40, 200, 42);

    /* through a file, as the services load it */
    json_t *dir = hx_gen_directory(g);
    char path[] = "/tmp/hx_gen_dir_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(json_dump_file(dir, path, JSON_INDENT(2)), 0);
    json_decref(dir);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_load(path, &errs);
    unlink(path);
    cr_assert(d, "directory file: %s", joined(&errs));

    const hx_clinic_t *clinics;
    const hx_therapist_t *ts;
    size_t nc = hx_directory_clinics(d, &clinics), nt = hx_directory_therapists(d, &ts);
    cr_assert_eq(nc, 40);
    cr_assert_eq(nt, 200);

    size_t both = 0, multi = 0, evening = 0, saturday = 0, sunday = 0, virt = 0, en_first = 0;
    size_t lang_count[16] = {0};
    const char *lang_names[16] = {0};
    size_t n_lang_names = 0;
    for (size_t c = 0; c < nc; c++) {
        cr_expect(strstr(clinics[c].name, "(generated)"), "%s", clinics[c].name);
        cr_expect(clinics[c].city[0]);
        bool pt = false, rmt = false;
        size_t size = 0;
        for (size_t i = 0; i < nt; i++) {
            if (strcmp(ts[i].clinic_id, clinics[c].id) != 0)
                continue;
            size++;
            pt |= ts[i].discipline == PHYSIO;
            rmt |= ts[i].discipline == MASSAGE;
        }
        cr_expect(size >= 1, "clinic %s has no therapist", clinics[c].id);
        if (size >= 2) {
            multi++;
            both += pt && rmt;
        }
    }
    cr_expect(multi > 0 && both * 100 >= multi * 70, "both disciplines in %zu of %zu clinics", both, multi);

    for (size_t i = 0; i < nt; i++) {
        const hx_therapist_t *t = &ts[i];
        cr_expect(strstr(t->name, "(generated)"), "%s", t->name);
        cr_expect(registered_in(t->registration, t->clinic->province, t->discipline), "%s at %s (%s)",
                  t->registration, t->clinic_id, t->clinic->province);
        for (size_t k = i + 1; k < nt; k++)
            cr_expect(strcmp(t->registration, ts[k].registration) != 0, "registration %s twice",
                      t->registration);
        cr_expect(t->n_hours > 0);
        bool ev = false;
        for (size_t h = 0; h < t->n_hours; h++) {
            ev |= t->hours[h].to >= 20 * 60;
            saturday += t->hours[h].day == 6;
            sunday += t->hours[h].day == 7;
            cr_expect(t->hours[h].from >= 7 * 60 && t->hours[h].to <= 21 * 60, "%s hours", t->id);
        }
        evening += ev;
        virt += t->virtual_ok;
        en_first += !strcmp(t->languages[0], "en");
        for (size_t l = 0; l < t->n_languages; l++) {
            size_t k = 0;
            while (k < n_lang_names && strcmp(lang_names[k], t->languages[l]) != 0)
                k++;
            if (k == n_lang_names && n_lang_names < 16)
                lang_names[n_lang_names++] = t->languages[l];
            if (k < 16)
                lang_count[k]++;
        }
    }
    cr_expect(evening >= nt / 10, "therapists with evening hours: %zu", evening);
    cr_expect(saturday >= nt / 10, "Saturday windows: %zu", saturday);
    cr_expect(sunday > 0, "no Sunday windows");
    cr_expect(virt > nt / 5 && virt < nt * 4 / 5, "virtual: %zu of %zu", virt, nt);
    cr_expect(n_lang_names >= 6, "languages spoken: %zu", n_lang_names);
    size_t en = 0, top_other = 0;
    for (size_t k = 0; k < n_lang_names; k++) {
        if (!strcmp(lang_names[k], "en"))
            en = lang_count[k];
        else if (lang_count[k] > top_other)
            top_other = lang_count[k];
    }
    cr_expect(en > top_other * 3, "en %zu, next %zu", en, top_other);
    cr_expect(en_first > nt / 2);

    hx_directory_destroy(&d);
    hx_gen_destroy(&g);
}

Test(gen, directory_sizes_at_the_limits)
{
    hx_gen_t *g = make_gen(1, 1, 3);
    hx_directory_t *d = load_directory(g);
    cr_expect_eq(hx_directory_clinics(d, NULL), 1);
    cr_expect_eq(hx_directory_therapists(d, NULL), 1);
    for (uint64_t i = 0; i < 50; i++)
        hx_referral_free(referral(g, i, NULL));
    hx_directory_destroy(&d);
    hx_gen_destroy(&g);

    g = make_gen(HX_GEN_MAX_CLINICS, HX_GEN_MAX_THERAPISTS, 4);
    d = load_directory(g);
    cr_expect_eq(hx_directory_clinics(d, NULL), HX_GEN_MAX_CLINICS);
    cr_expect_eq(hx_directory_therapists(d, NULL), HX_GEN_MAX_THERAPISTS);
    hx_directory_destroy(&d);
    hx_gen_destroy(&g);
}

/* The letters a province's postal codes begin with (those the network uses). */
static const char *postal_letters(const char *province)
{
    static const char *const map[][2] = {{"ON", "KLMNP"}, {"QC", "GHJ"}, {"BC", "V"}, {"AB", "T"},
                                         {"NS", "B"},     {"MB", "R"},   {"SK", "S"}, {"NB", "E"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(map[i][0], province))
            return map[i][1];
    return "";
}

static bool postal_shape(const char *s)
{
    static const char first[] = "ABCEGHJKLMNPRSTVXY";
    return strlen(s) == 7 && strchr(first, s[0]) && s[0] && isdigit((unsigned char)s[1]) &&
           isupper((unsigned char)s[2]) && s[3] == ' ' && isdigit((unsigned char)s[4]) &&
           isupper((unsigned char)s[5]) && isdigit((unsigned char)s[6]);
}

static bool closed_on(const hx_clinic_t *c, const char *date)
{
    int64_t day;
    cr_assert_eq(hx_date_parse(date, &day), 0);
    for (size_t i = 0; i < c->n_closures; i++)
        if (day >= c->closures[i].from_day && day <= c->closures[i].to_day)
            return true;
    return false;
}

/* The network as a file, loaded as scheduling loads it: no errors and nothing missing. */
static hx_directory_t *load_directory_file(const hx_gen_t *g)
{
    json_t *dir = hx_gen_directory(g);
    char path[] = "/tmp/hx_gen_dir_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(json_dump_file(dir, path, JSON_INDENT(2)), 0);
    cr_expect_eq(json_integer_value(json_object_get(dir, "version")), 2);
    json_decref(dir);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_load(path, &errs);
    unlink(path);
    cr_assert(d, "directory file: %s", joined(&errs));
    cr_expect_eq(errs.count, 0, "%s", joined(&errs));
    cr_expect_str_eq(hx_directory_notes(d), "");
    return d;
}

Test(gen, directory_has_places_zones_provinces_and_holidays)
{
    static const size_t sizes[][3] = {{2, 2, 5}, {6, 18, 1}, {40, 200, 42}, {300, 900, 9}};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        hx_gen_t *g = make_gen(sizes[s][0], sizes[s][1], sizes[s][2]);
        hx_directory_t *d = load_directory_file(g);
        cr_expect_str_eq(hx_tz_name(hx_directory_zone(d)), "America/Toronto");
        const hx_clinic_t *cs;
        size_t nc = hx_directory_clinics(d, &cs);
        bool toronto = false, vancouver = false;
        char provinces[64] = "";
        for (size_t i = 0; i < nc; i++) {
            const hx_clinic_t *c = &cs[i];
            cr_expect(c->located && c->zoned && c->province[0], "%s: located, zoned, in a province", c->id);
            toronto |= !strcmp(hx_tz_name(c->tz), "America/Toronto");
            vancouver |= !strcmp(hx_tz_name(c->tz), "America/Vancouver");
            if (!strcmp(c->province, "BC"))
                cr_expect_str_eq(hx_tz_name(c->tz), "America/Vancouver");
            if (!strcmp(c->province, "ON") || !strcmp(c->province, "QC"))
                cr_expect_str_eq(hx_tz_name(c->tz), "America/Toronto");
            if (!strstr(provinces, c->province) && strlen(provinces) + 4 < sizeof provinces)
                strcat(strcat(provinces, c->province), " ");
            cr_expect(postal_shape(c->postal_code), "%s: postal code '%s'", c->id, c->postal_code);
            cr_expect(strchr(postal_letters(c->province), c->postal_code[0]) && c->postal_code[0], "%s: %s in %s",
                      c->id, c->postal_code, c->province);
            double lat, lon;
            cr_expect_eq(hx_directory_locate(d, c->postal_code, &lat, &lon), 0, "%s: %s", c->id, c->postal_code);
            cr_expect_lt(hx_geo_km(lat, lon, c->lat, c->lon), 5.0, "%s: near its area", c->id);
            /* the referral dates run to 2026-11-23: the holidays after them are closures */
            cr_expect(c->n_closures >= 2, "%s: %zu closures", c->id, c->n_closures);
            cr_expect(closed_on(c, "2026-12-25") && closed_on(c, "2027-01-01"), "%s: Christmas, New Year", c->id);
            if (!strcmp(c->province, "ON"))
                cr_expect(closed_on(c, "2026-12-26") && closed_on(c, "2026-12-28") && closed_on(c, "2027-02-15"),
                          "%s: Boxing Day (observed on Monday the 28th), Family Day", c->id);
            if (!strcmp(c->province, "BC"))
                cr_expect(closed_on(c, "2026-11-11") && closed_on(c, "2027-02-15"), "%s: Remembrance, Family Day",
                          c->id);
        }
        cr_expect(toronto && vancouver, "%zu clinics: Eastern and Pacific (%s)", nc, provinces);
        if (nc >= 40)
            cr_expect_geq(strlen(provinces) / 3, 4, "provinces: %s", provinces);
        hx_directory_destroy(&d);
        hx_gen_destroy(&g);
    }
}

/* ---- referrals ----------------------------------------------------------------------- */

Test(gen, referrals_pass_intake_and_belong_to_the_network)
{
    hx_gen_t *g = make_gen(25, 100, 7);
    hx_directory_t *d = load_directory(g);
    const hx_therapist_t *ts;
    size_t nt = hx_directory_therapists(d, &ts);
    char seen_refs[64] = "";
    size_t with_postal = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        Handoff__Referral *r = referral(g, i, NULL);
        cr_expect(hx_directory_clinic(d, r->referrer->clinic_id), "referrer clinic %s",
                  r->referrer->clinic_id);
        if (r->referrer->discipline != PHYSICIAN) {
            bool found = false;
            for (size_t k = 0; k < nt && !found; k++)
                found = !strcmp(ts[k].name, r->referrer->name) &&
                        !strcmp(ts[k].clinic_id, r->referrer->clinic_id) &&
                        !strcmp(ts[k].registration + strlen(r->referrer->registration_body) + 1,
                                r->referrer->registration_number);
            cr_expect(found, "referrer %s is not a therapist of %s", r->referrer->name,
                      r->referrer->clinic_id);
        }
        const hx_clinic_t *rc = hx_directory_clinic(d, r->referrer->clinic_id);
        cr_expect(rc && !strcmp(r->referrer->province, rc->province), "referrer's province %s",
                  r->referrer->province);
        if (r->patient->postal_code[0]) {
            with_postal++;
            double lat, lon;
            cr_expect_eq(hx_directory_locate(d, r->patient->postal_code, &lat, &lon), 0, "%s: %s", r->ref,
                         r->patient->postal_code);
            cr_expect(rc && hx_geo_km(lat, lon, rc->lat, rc->lon) < 60, "%s: %s lives near %s", r->ref,
                      r->patient->postal_code, r->referrer->clinic_id);
            cr_expect(postal_shape(r->patient->postal_code), "%s", r->patient->postal_code);
        }
        cr_expect(!strncmp(r->patient->health_card, "5555-", 5), "%s", r->patient->health_card);
        cr_expect(strstr(r->patient->family_name, "(generated)"), "%s", r->patient->family_name);
        cr_expect(strstr(r->referrer->name, "(generated)"), "%s", r->referrer->name);
        cr_expect(!r->patient->email[0] || strstr(r->patient->email, "@example.org"));
        for (size_t k = 0; k < r->n_conditions; k++)
            cr_expect(rules_know("conditions", r->conditions[k]), "condition %s", r->conditions[k]);
        for (size_t k = 0; k < r->n_findings; k++)
            cr_expect(known_finding(r->findings[k]), "finding %s", r->findings[k]);
        for (size_t k = 0; r->preferences && k < r->preferences->n_clinic_ids; k++)
            cr_expect(hx_directory_clinic(d, r->preferences->clinic_ids[k]), "preferred clinic %s",
                      r->preferences->clinic_ids[k]);
        cr_expect(strcmp(r->ref, seen_refs) != 0);
        snprintf(seen_refs, sizeof seen_refs, "%s", r->ref);
        int64_t ref_day, last_day;
        cr_assert_eq(hx_date_parse(r->referral_date, &ref_day), 0);
        cr_assert_eq(hx_date_parse(HX_GEN_DEFAULT_DATE, &last_day), 0);
        cr_expect(ref_day <= last_day && ref_day > last_day - 28, "%s", r->referral_date);
        hx_referral_free(r);
    }
    cr_expect(with_postal > 2000 * 75 / 100 && with_postal < 2000 * 95 / 100, "%zu of 2000 with a postal code",
              with_postal);
    hx_directory_destroy(&d);
    hx_gen_destroy(&g);
}

Test(gen, clinical_mix_matches_the_targets)
{
    enum { N = 2000 };
    hx_gen_t *g = make_gen(20, 80, 2026);
    size_t kinds[HX_GEN_KIND_COUNT] = {0}, outcomes[N_OUTCOMES] = {0};
    size_t emergencies = 0, routine = 0, no_availability = 0, saturday = 0, rmt_referrers = 0;
    size_t langs_seen = 0;
    char langs[16][8];
    size_t en = 0;
    for (uint64_t i = 0; i < N; i++) {
        hx_gen_kind_t kind = HX_GEN_KIND_NONE;
        Handoff__Referral *r = referral(g, i, &kind);
        cr_assert(kind > HX_GEN_KIND_NONE && kind < HX_GEN_KIND_COUNT);
        kinds[kind]++;
        Handoff__TriageDecision dec;
        cr_assert_eq(hx_triage_decide(rules, r, &dec), 0, "triage: %s", dec.reason);
        enum outcome o = outcome_of(&dec);
        outcomes[o]++;
        switch (kind) {
        case HX_GEN_PHYSIO:
            cr_expect_eq(o, O_PHYSIO, "%s: %s", r->ref, dec.reason);
            break;
        case HX_GEN_MASSAGE:
            cr_expect_eq(o, O_MASSAGE, "%s: %s", r->ref, dec.reason);
            break;
        case HX_GEN_BOTH:
            cr_expect_eq(o, O_BOTH, "%s: %s", r->ref, dec.reason);
            break;
        case HX_GEN_RED_FLAG:
            cr_expect_eq(o, O_PHYSICIAN, "%s: %s", r->ref, dec.reason);
            emergencies += dec.emergency;
            break;
        case HX_GEN_CONTRAINDICATED:
            cr_expect(o == O_PHYSIO || o == O_PHYSICIAN, "%s: %s", r->ref, dec.reason);
            cr_expect(dec.n_notes > 0, "a contraindication leaves a note");
            break;
        default:
            break;
        }
        routine += r->priority == HANDOFF__PRIORITY__PRIORITY_ROUTINE;
        rmt_referrers += r->referrer->discipline == MASSAGE;
        const Handoff__Preferences *p = r->preferences;
        if (!p || p->n_availability == 0)
            no_availability++;
        for (size_t k = 0; p && k < p->n_availability; k++)
            if (p->availability[k]->day == 6) {
                saturday++;
                break;
            }
        const char *lang = r->patient->language;
        en += !strcmp(lang, "en");
        size_t k = 0;
        while (k < langs_seen && strcmp(langs[k], lang) != 0)
            k++;
        if (k == langs_seen && langs_seen < 16)
            snprintf(langs[langs_seen++], sizeof langs[0], "%s", lang);
        hx_decision_clear(&dec);
        hx_referral_free(r);
    }

    /* The generator's own mix: 45 / 25 / 20 / 5 / 5. */
    static const struct {
        hx_gen_kind_t kind;
        double target;
    } kind_targets[] = {
        {HX_GEN_PHYSIO, 45}, {HX_GEN_MASSAGE, 25}, {HX_GEN_BOTH, 20},
        {HX_GEN_RED_FLAG, 5}, {HX_GEN_CONTRAINDICATED, 5},
    };
    for (size_t k = 0; k < sizeof kind_targets / sizeof kind_targets[0]; k++) {
        double pct = 100.0 * (double)kinds[kind_targets[k].kind] / N;
        cr_expect(pct >= kind_targets[k].target - 5 && pct <= kind_targets[k].target + 5,
                  "%s: %.1f%% (target %.0f%%)", hx_gen_kind_text(kind_targets[k].kind), pct,
                  kind_targets[k].target);
    }
    cr_expect(kinds[HX_GEN_RED_FLAG] > 0 && kinds[HX_GEN_CONTRAINDICATED] > 0);

    /* What triage makes of it: physiotherapy gets the contraindicated collaborative cases
     * (about half of the 5%), the physician the red flags and contraindicated massage. */
    static const struct {
        enum outcome o;
        const char *name;
        double target;
    } outcome_targets[] = {
        {O_PHYSIO, "physiotherapy only", 47.5}, {O_MASSAGE, "massage therapy only", 25},
        {O_BOTH, "both", 20}, {O_PHYSICIAN, "physician", 7.5},
    };
    for (size_t k = 0; k < sizeof outcome_targets / sizeof outcome_targets[0]; k++) {
        double pct = 100.0 * (double)outcomes[outcome_targets[k].o] / N;
        cr_expect(pct >= outcome_targets[k].target - 5 && pct <= outcome_targets[k].target + 5,
                  "triage %s: %.1f%% (target %.1f%%)", outcome_targets[k].name, pct,
                  outcome_targets[k].target);
    }
    cr_expect_eq(outcomes[O_NONE], 0);

    /* cauda equina (emergency) is some but not all of the red flags */
    cr_expect(emergencies > 0 && emergencies < kinds[HX_GEN_RED_FLAG], "emergencies %zu of %zu",
              emergencies, kinds[HX_GEN_RED_FLAG]);
    cr_expect(routine * 100 >= N * 60, "routine: %zu of %d", routine, N);
    cr_expect(rmt_referrers > N / 20, "RMT referrers: %zu", rmt_referrers);
    cr_expect(no_availability > N / 5 && no_availability < N * 3 / 5, "no windows: %zu", no_availability);
    cr_expect(saturday > N / 20, "Saturday windows: %zu", saturday);
    cr_expect(langs_seen >= 8, "patient languages: %zu", langs_seen);
    cr_expect(en * 100 > N * 60 && en * 100 < N * 95, "en: %zu", en);
    hx_gen_destroy(&g);
}

/* ---- determinism --------------------------------------------------------------------- */

static char *dump(json_t *j)
{
    cr_assert(j);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

Test(gen, same_seed_same_output_different_seed_different)
{
    hx_gen_t *a = make_gen(12, 50, 99), *b = make_gen(12, 50, 99), *c = make_gen(12, 50, 100);
    char *da = dump(hx_gen_directory(a)), *db = dump(hx_gen_directory(b)), *dc = dump(hx_gen_directory(c));
    cr_expect_str_eq(da, db);
    cr_expect_str_neq(da, dc);
    free(da);
    free(db);
    free(dc);

    size_t same_as_other_seed = 0;
    for (uint64_t i = 0; i < 300; i++) {
        char *ra = dump(hx_gen_referral(a, i, NULL)), *rb = dump(hx_gen_referral(b, i, NULL));
        char *rc = dump(hx_gen_referral(c, i, NULL));
        cr_expect_str_eq(ra, rb, "referral %llu differs for the same seed", (unsigned long long)i);
        same_as_other_seed += !strcmp(ra, rc);
        free(ra);
        free(rb);
        free(rc);
    }
    cr_expect_eq(same_as_other_seed, 0);

    /* Referral i does not depend on what was generated before it. */
    for (uint64_t k = 0; k < 50; k++) {
        uint64_t i = 299 - k * 6;
        char *ra = dump(hx_gen_referral(a, i, NULL)), *rb = dump(hx_gen_referral(b, i, NULL));
        cr_expect_str_eq(ra, rb);
        free(ra);
        free(rb);
    }
    /* Different indexes give different referrals. */
    char *r0 = dump(hx_gen_referral(a, 0, NULL)), *r1 = dump(hx_gen_referral(a, 1, NULL));
    cr_expect_str_neq(r0, r1);
    free(r0);
    free(r1);
    hx_gen_destroy(&a);
    hx_gen_destroy(&b);
    hx_gen_destroy(&c);
}

/* ---- scheduling over the generated network ------------------------------------------ */

typedef struct {
    const hx_therapist_t *t;
    hx_minute_t start;
    uint32_t minutes;
} booking_t;

static int by_therapist_then_start(const void *x, const void *y)
{
    const booking_t *a = x, *b = y;
    int c = strcmp(a->t->id, b->t->id);
    if (c)
        return c;
    return a->start < b->start ? -1 : a->start > b->start;
}

static bool inside_hours(const hx_therapist_t *t, hx_minute_t utc, uint32_t minutes)
{
    hx_minute_t start = hx_tz_to_local(t->clinic->tz, utc);     /* the clinic's wall clock */
    int64_t day = start >= 0 ? start / DAY : -((-start + DAY - 1) / DAY);
    unsigned wd = hx_weekday(day);
    hx_minute_t from = start - day * DAY, to = from + minutes;
    for (size_t h = 0; h < t->n_hours; h++)
        if (t->hours[h].day == wd && t->hours[h].from <= from && to <= t->hours[h].to)
            return true;
    return false;
}

static bool inside_availability(const Handoff__Preferences *p, const hx_therapist_t *th, hx_minute_t utc,
                                uint32_t minutes)
{
    if (!p || p->n_availability == 0)
        return true;
    hx_minute_t start = hx_tz_to_local(th->clinic->tz, utc);
    int64_t day = start / DAY;
    unsigned wd = hx_weekday(day);
    unsigned from = (unsigned)(start - day * DAY), to = from + minutes;
    for (size_t k = 0; k < p->n_availability; k++) {
        unsigned f, t;
        if (p->availability[k]->day == wd && hx_hhmm_parse(p->availability[k]->from, false, &f) == 0 &&
            hx_hhmm_parse(p->availability[k]->to, true, &t) == 0 && f <= from && to <= t)
            return true;
    }
    return false;
}

static bool speaks(const hx_therapist_t *t, const char *lang)
{
    if (!lang || !*lang)
        return true;
    for (size_t i = 0; i < t->n_languages; i++)
        if (!strcmp(t->languages[i], lang))
            return true;
    return false;
}

Test(gen, booking_generated_referrals_never_double_books)
{
    enum { N = 2000 };
    hx_gen_t *g = make_gen(15, 70, 11);
    hx_directory_t *d = load_directory(g);
    hx_calendar_t *cal = hx_calendar_new();
    booking_t *bookings = calloc(2 * N, sizeof *bookings);
    size_t n_bookings = 0, asked = 0;

    for (uint64_t i = 0; i < N; i++) {
        Handoff__Referral *r = referral(g, i, NULL);
        Handoff__TriageDecision dec;
        cr_assert_eq(hx_triage_decide(rules, r, &dec), 0);
        int64_t ref_day;
        cr_assert_eq(hx_date_parse(r->referral_date, &ref_day), 0);
        const Handoff__Preferences *p = r->preferences;
        for (size_t k = 0; k < dec.n_disciplines; k++) {
            Handoff__Discipline disc = dec.disciplines[k];
            if (disc != PHYSIO && disc != MASSAGE)
                continue;
            asked++;
            hx_slot_query_t q = {
                .discipline = disc,
                .minutes = hx_session_minutes(disc, p ? p->massage_minutes : 0),
                .not_before = (ref_day + 1) * DAY,
                .horizon = (ref_day + 1 + 56) * DAY,
                .clinic_ids = p ? (const char *const *)p->clinic_ids : NULL,
                .n_clinic_ids = p ? p->n_clinic_ids : 0,
                .language = p ? p->language : NULL,
                .availability = p ? (const Handoff__Availability *const *)p->availability : NULL,
                .n_availability = p ? p->n_availability : 0,
            };
            hx_slot_t slot;
            if (hx_slot_find(d, cal, &q, &slot) != 0)
                continue;
            cr_assert_eq(slot.therapist->discipline, disc);
            cr_assert(speaks(slot.therapist, q.language), "%s does not speak %s", slot.therapist->id, q.language);
            cr_assert(inside_availability(p, slot.therapist, slot.start, slot.minutes),
                      "%s: outside the patient's windows", r->ref);
            cr_assert(!hx_clinic_closed(slot.therapist->clinic, slot.start), "%s: booked on a closed day at %s",
                      r->ref, slot.therapist->clinic_id);
            cr_assert(slot.start >= q.not_before && slot.start <= q.horizon);
            cr_assert_eq(hx_calendar_book(cal, slot.therapist->id, slot.start, slot.minutes), 0,
                         "slot finder offered a booked slot (%s)", slot.therapist->id);
            bookings[n_bookings++] = (booking_t){slot.therapist, slot.start, slot.minutes};
        }
        hx_decision_clear(&dec);
        hx_referral_free(r);
    }
    cr_expect(n_bookings * 100 >= asked * 70, "booked %zu of %zu sessions", n_bookings, asked);

    /* Independently of the calendar: no overlaps per therapist, all inside working hours. */
    qsort(bookings, n_bookings, sizeof *bookings, by_therapist_then_start);
    for (size_t i = 0; i < n_bookings; i++) {
        const booking_t *b = &bookings[i];
        cr_expect(inside_hours(b->t, b->start, b->minutes), "%s booked outside hours", b->t->id);
        if (i > 0 && bookings[i - 1].t == b->t)
            cr_expect(bookings[i - 1].start + (hx_minute_t)bookings[i - 1].minutes <= b->start,
                      "%s double-booked", b->t->id);
    }
    size_t held = 0;
    const hx_therapist_t *ts;
    size_t nt = hx_directory_therapists(d, &ts);
    for (size_t i = 0; i < nt; i++)
        held += hx_calendar_count(cal, ts[i].id);
    cr_expect_eq(held, n_bookings);

    free(bookings);
    hx_calendar_destroy(&cal);
    hx_directory_destroy(&d);
    hx_gen_destroy(&g);
}

/* ---- other rules, bad options -------------------------------------------------------- */

Test(gen, follows_edited_rules)
{
    const char *text =
        "{\"version\": 1, \"conditions\": {"
        "  \"knee_pain\": {\"plan\": \"physiotherapy\", \"label\": \"Knee pain\"},"
        "  \"dry_needling_request\": {\"plan\": \"physiotherapy\", \"label\": \"Dry needling requested\"},"
        "  \"posture\": {\"plan\": \"massage_therapy\", \"label\": \"Posture\"},"
        "  \"back_spasm\": {\"plan\": \"massage_therapy\", \"label\": \"Back spasm\"}},"
        " \"massage_never_alone\": {\"back\": {\"reason\": \"massage only alongside exercise\"}}}";
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_rules_t *custom = hx_rules_parse(text, &errs);
    cr_assert(custom, "%s", joined(&errs));
    json_t *j = json_loads(text, 0, NULL);
    hx_gen_options_t opt = {.clinics = 3, .therapists = 9, .seed = 5, .last_date = "2030-02-28"};
    hx_gen_t *g = hx_gen_new(j, &opt, &errs);
    json_decref(j);
    cr_assert(g, "%s", joined(&errs));

    size_t kinds[HX_GEN_KIND_COUNT] = {0}, label_used = 0;
    for (uint64_t i = 0; i < 400; i++) {
        hx_gen_kind_t kind;
        json_t *rj = hx_gen_referral(g, i, &kind);
        cr_assert(rj);
        Handoff__Referral *r = hx_referral_from_json(rj, &errs);
        cr_assert(r, "%s", joined(&errs));
        cr_assert_eq(hx_intake_validate(r, &errs), 0, "%s", joined(&errs));
        kinds[kind]++;
        Handoff__TriageDecision dec;
        cr_assert_eq(hx_triage_decide(custom, r, &dec), 0);
        enum outcome o = outcome_of(&dec);
        /* back_spasm is massage "never alone": it counts as collaborative */
        cr_expect(kind == HX_GEN_PHYSIO ? o == O_PHYSIO : kind == HX_GEN_MASSAGE ? o == O_MASSAGE : o == O_BOTH,
                  "%s -> %s", hx_gen_kind_text(kind), dec.reason);
        label_used += strstr(r->reason, "Dry needling requested") != NULL;
        cr_expect(!strncmp(r->referral_date, "2030-02", 7) || !strncmp(r->referral_date, "2030-01", 7),
                  "%s", r->referral_date);
        hx_decision_clear(&dec);
        hx_referral_free(r);
        json_decref(rj);
    }
    cr_expect_eq(kinds[HX_GEN_RED_FLAG] + kinds[HX_GEN_CONTRAINDICATED], 0);
    cr_expect(kinds[HX_GEN_PHYSIO] > 0 && kinds[HX_GEN_MASSAGE] > 0 && kinds[HX_GEN_BOTH] > 0);
    cr_expect(label_used > 0, "an unknown code is worded from its label");
    hx_gen_destroy(&g);
    hx_rules_destroy(&custom);
}

Test(gen, bad_options_and_rules_are_named)
{
    hx_errors_t errs;
    hx_gen_options_t opt = {.clinics = 0, .therapists = 5, .seed = 1};
    hx_errors_clear(&errs);
    cr_expect_null(hx_gen_new(rules_json, &opt, &errs));
    cr_expect(has_error(&errs, "clinics", "must be 1 to 1000"), "%s", joined(&errs));

    opt = (hx_gen_options_t){.clinics = 1001, .therapists = 2000};
    hx_errors_clear(&errs);
    cr_expect_null(hx_gen_new(rules_json, &opt, &errs));
    cr_expect(has_error(&errs, "clinics", "got 1001"), "%s", joined(&errs));

    opt = (hx_gen_options_t){.clinics = 10, .therapists = 9};
    hx_errors_clear(&errs);
    cr_expect_null(hx_gen_new(rules_json, &opt, &errs));
    cr_expect(has_error(&errs, "therapists", "got 9"), "%s", joined(&errs));

    opt = (hx_gen_options_t){.clinics = 10, .therapists = 10001};
    hx_errors_clear(&errs);
    cr_expect_null(hx_gen_new(rules_json, &opt, &errs));
    cr_expect(has_error(&errs, "therapists", "10000"), "%s", joined(&errs));

    static const char *const bad_dates[] = {"2026-02-30", "26-11-23", "1999-12-31", "", "2026-11-23T00:00"};
    for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++) {
        opt = (hx_gen_options_t){.clinics = 2, .therapists = 2, .last_date = bad_dates[i]};
        hx_errors_clear(&errs);
        cr_expect_null(hx_gen_new(rules_json, &opt, &errs), "%s", bad_dates[i]);
        cr_expect(has_error(&errs, "last_date", "YYYY-MM-DD"), "%s: %s", bad_dates[i], joined(&errs));
    }

    opt = (hx_gen_options_t){.clinics = 2, .therapists = 2};
    hx_errors_clear(&errs);
    cr_expect_null(hx_gen_new(NULL, &opt, &errs));
    cr_expect(has_error(&errs, "rules", "required"));
    hx_errors_clear(&errs);
    cr_expect_null(hx_gen_new(rules_json, NULL, &errs));

    static const struct {
        const char *text, *path, *why;
    } bad_rules[] = {
        {"[]", "rules", "JSON object"},
        {"{}", "rules.conditions", "at least one"},
        {"{\"conditions\": {}}", "rules.conditions", "at least one"},
        {"{\"conditions\": {\"knee_pain\": {\"plan\": \"surgery\"}}}", "rules.conditions.knee_pain.plan", "physiotherapy"},
        {"{\"conditions\": {\"Knee Pain\": {\"plan\": \"both\"}}}", "rules.conditions.Knee Pain", "code"},
        {"{\"conditions\": {\"k\": {\"plan\": \"both\"}}, \"red_flags\": []}", "rules.red_flags", "object"},
    };
    for (size_t i = 0; i < sizeof bad_rules / sizeof bad_rules[0]; i++) {
        json_t *j = json_loads(bad_rules[i].text, 0, NULL);
        cr_assert(j, "%s", bad_rules[i].text);
        hx_errors_clear(&errs);
        cr_expect_null(hx_gen_new(j, &opt, &errs), "%s", bad_rules[i].text);
        cr_expect(has_error(&errs, bad_rules[i].path, bad_rules[i].why), "%s: %s", bad_rules[i].text,
                  joined(&errs));
        json_decref(j);
    }

    hx_gen_t *none = NULL;
    hx_gen_destroy(&none);
    hx_gen_destroy(NULL);
    cr_expect_null(hx_gen_directory(NULL));
    cr_expect_null(hx_gen_referral(NULL, 0, NULL));
}

Test(gen, kind_text)
{
    cr_expect_str_eq(hx_gen_kind_text(HX_GEN_PHYSIO), "physiotherapy");
    cr_expect_str_eq(hx_gen_kind_text(HX_GEN_MASSAGE), "massage_therapy");
    cr_expect_str_eq(hx_gen_kind_text(HX_GEN_BOTH), "both");
    cr_expect_str_eq(hx_gen_kind_text(HX_GEN_RED_FLAG), "red_flag");
    cr_expect_str_eq(hx_gen_kind_text(HX_GEN_CONTRAINDICATED), "contraindicated");
    cr_expect_str_eq(hx_gen_kind_text(HX_GEN_KIND_NONE), "unknown");
    cr_expect_str_eq(hx_gen_kind_text((hx_gen_kind_t)42), "unknown");
}

/* ---- stories of collaborative referrals (handoff play) ----------------------------------- */

#include "cli_story.h"

Test(gen, a_story_for_each_collaborative_referral_valid_and_the_same_per_seed)
{
    hx_gen_options_t o = {.clinics = 6, .therapists = 18, .seed = 5};
    hx_gen_t *g = hx_gen_new(rules_json, &o, NULL), *same = hx_gen_new(rules_json, &o, NULL);
    cr_assert(g && same);
    size_t stories = 0, declines = 0;
    for (uint64_t i = 0; i < 300; i++) {
        hx_gen_kind_t kind;
        json_t *ref = hx_gen_referral(g, i, &kind), *s = NULL, *again = NULL;
        cr_assert_eq(hx_gen_story(g, i, &s), 0);
        cr_assert_eq(hx_gen_story(same, i, &again), 0);
        cr_expect_eq(s != NULL, kind == HX_GEN_BOTH, "referral %llu (%s): a story only for collaborative care",
                     (unsigned long long)i, hx_gen_kind_text(kind));
        if (s) {
            hx_errors_t e;
            hx_errors_clear(&e);
            story_t st;
            cr_expect_eq(cli_story_parse(s, &st, &e), 0, "story %llu: %s", (unsigned long long)i, joined(&e));
            cr_expect_str_eq(st.ref, json_string_value(json_object_get(ref, "ref")));
            cr_expect_str_eq(st.clinic,
                             json_string_value(json_object_get(json_object_get(ref, "referrer"), "clinic_id")));
            cr_expect(strstr(st.about, "fictional"), "marked fictional: %s", st.about);
            for (size_t k = 0; k < st.n; k++)
                declines += st.steps[k].action == STORY_DECLINE;
            cr_expect_eq(st.steps[st.n - 1].action, STORY_COMPLETE, "every story ends with a completion");
            cr_expect(json_equal(s, again), "the same seed gives the same story");
            stories++;
            cli_story_free(&st);
        }
        json_decref(s);
        json_decref(again);
        json_decref(ref);
    }
    cr_expect_gt(stories, 30, "%zu stories", stories);
    cr_expect(declines > stories / 5 && declines < stories * 3 / 5, "%zu of %zu stories decline massage first",
              declines, stories);
    hx_gen_destroy(&g);
    hx_gen_destroy(&same);
}
