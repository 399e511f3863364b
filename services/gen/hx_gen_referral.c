/* hx_gen_referral — one generated referral as Referral JSON: the plan (hx_gen_plan.c), then
 * the patient, the referrer at a clinic of the network, the clinical text and the patient's
 * preferences. Referral i draws from its own stream (seed, i + 1), in a fixed order: every
 * draw below is made in the same order for the same referral, so keep that order when
 * changing this file (or the seed's referrals change). */
#include "hx_gen_internal.h"

#include <stdio.h>
#include <string.h>

#include "hx_util.h"

static const char *const sides[] = {"left", "right"};

static void format_date(int64_t days, char out[11])
{
    int64_t y;
    unsigned m, d;
    hx_civil_from_days(days, &y, &m, &d);
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, m % 100u, d % 100u);
}

/* The patient: a name of a culture of the network, birth date, contact (a phone, an e-mail
 * or both, at the referring clinic's area code), health card and language. */
static json_t *patient_json(rng_t *r, const g_clinic_t *rc, const char *birth_date, const char **language,
                            bool *oom)
{
    int cu = gen_culture(r, false);
    const char *given, *family;
    gen_name(r, cu, &given, &family);
    const char *native = gen_culture_language(cu);
    *language = native && chance(r, 65) ? native : "en";
    char family_name[64], gslug[16], fslug[24], phone[24], email[64], card[24];
    snprintf(family_name, sizeof family_name, "%s (generated)", family);
    gen_ascii_slug(gslug, sizeof gslug, given);
    gen_ascii_slug(fslug, sizeof fslug, family);
    snprintf(phone, sizeof phone, "%s-555-01%02u", rc->area, between(r, 0, 99));
    snprintf(email, sizeof email, "%s.%s@example.org", gslug[0] ? gslug : "patient", fslug[0] ? fslug : "generated");
    /* The card's second group is drawn before its first: the order every data set so far
     * was made with (the two draws were once arguments of one call, in GCC's order). */
    unsigned card_b = between(r, 0, 999), card_a = between(r, 0, 999);
    snprintf(card, sizeof card, "5555-%03u-%03u-%c%c", card_a, card_b, gen_initial(gslug), gen_initial(fslug));
    bool with_phone = chance(r, 85), with_email = chance(r, 65);
    if (!with_phone && !with_email)
        with_phone = true;

    json_t *o = json_object();
    if (!o)
        return NULL;
    gen_put(o, "given_name", json_string(given), oom);
    gen_put(o, "family_name", json_string(family_name), oom);
    gen_put(o, "birth_date", json_string(birth_date), oom);
    if (with_phone)
        gen_put(o, "phone", json_string(phone), oom);
    if (with_email)
        gen_put(o, "email", json_string(email), oom);
    gen_put(o, "health_card", json_string(card), oom);
    gen_put(o, "language", json_string(*language), oom);
    return o;
}

/* Where the patient lives: most have a postal code in an area of the referring clinic's
 * city (listed in the directory's "areas"), some none. From a stream of its own (the
 * referral's other draws stay as they were). */
static void put_postal_code(const hx_gen_t *g, uint64_t index, const g_clinic_t *rc, json_t *patient, bool *oom)
{
    rng_t q = rng_stream(g->seed, GEN_STREAM_PLACES | (index + 1));
    if (!patient || !chance(&q, 85))
        return;
    const place_t *all;
    gen_places(&all);
    char postal[8];
    gen_postal_code(&q, all[gen_place_in_city(&q, rc->city)].fsa, postal);
    gen_put(patient, "postal_code", json_string(postal), oom);
}

/* The referrer: therapist rt of the network, or (rt NULL) a physician at clinic rc,
 * registered in rc's province. */
static json_t *referrer_json(rng_t *r, int discipline, const g_therapist_t *rt, const g_clinic_t *rc, bool *oom)
{
    char name[64], number[16], email[96], phone[24];
    const char *body;
    if (rt) {
        snprintf(name, sizeof name, "%s", rt->name);
        snprintf(number, sizeof number, "%s", rt->number);
        body = rt->body;
        snprintf(email, sizeof email, "%s@%s.example.org", rt->email_local, rc->id);
    } else {
        const char *pg, *pf;
        gen_physician_name(r, &pg, &pf);
        char pslug[24], digits[8];
        gen_ascii_slug(pslug, sizeof pslug, pf);
        snprintf(name, sizeof name, "Dr. %s %s (generated)", pg, pf);
        snprintf(digits, sizeof digits, "%u", between(r, 10000, 99999));
        body = gen_registration(rc->province, D_MD, 0, digits, number, sizeof number);
        snprintf(email, sizeof email, "%c%s@%s.example.org", (char)(pg[0] - 'A' + 'a'), pslug, rc->id);
    }
    snprintf(phone, sizeof phone, "%s-555-01%02u", rc->area, between(r, 0, 99));
    json_t *o = json_object();
    if (!o)
        return NULL;
    gen_put(o, "name", json_string(name), oom);
    gen_put(o, "discipline", json_string(discipline == D_PT    ? "physiotherapy"
                                         : discipline == D_RMT ? "massage_therapy"
                                                               : "physician"), oom);
    gen_put(o, "registration_body", json_string(body), oom);
    gen_put(o, "registration_number", json_string(number), oom);
    gen_put(o, "province", json_string(rc->province), oom);
    gen_put(o, "clinic_id", json_string(rc->id), oom);
    gen_put(o, "phone", json_string(phone), oom);
    gen_put(o, "email", json_string(email), oom);
    return o;
}

static json_t *codes_json(const char *const *codes, size_t n, bool *oom)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        gen_push(a, json_string(codes[i]), oom);
    return a;
}

/* The clinical part: reason, codes and findings; then history, diagnosis (never from an
 * RMT, never for an undiagnosed red flag), treatment and expectations from the main
 * condition's wording; priority, consent and the referral date. */
static void put_clinical(json_t *root, rng_t *r, hx_gen_kind_t kind, const plan_t *p, const vars_t *v,
                         const char *ref_date, bool *oom)
{
    const char *codes[GEN_MAX_CODES];
    for (size_t i = 0; i < p->n_conds; i++)
        codes[i] = p->conds[i]->code;
    gen_put(root, "reason", json_string(p->reason), oom);
    gen_put(root, "conditions", codes_json(codes, p->n_conds, oom), oom);
    gen_put(root, "findings", codes_json(p->findings, p->n_findings, oom), oom);

    const condition_text_t *ct = gen_condition_text(p->primary->code);
    const bool red_flag = kind == HX_GEN_RED_FLAG;
    char text[600];
    if (chance(r, 80)) {
        if (ct && !red_flag)
            gen_expand(text, sizeof text, ct->history, v);
        else
            snprintf(text, sizeof text, "%s", red_flag ? "Screened at the first visit." : "No relevant history.");
        gen_put(root, "history", json_string(text), oom);
    }
    if (ct && p->referrer != D_RMT && !red_flag && chance(r, 70)) {
        gen_expand(text, sizeof text, ct->diagnosis, v);
        gen_put(root, "diagnosis", json_string(text), oom);
    }
    if (ct && chance(r, 65)) {
        gen_expand(text, sizeof text, ct->treatment, v);
        gen_put(root, "current_treatment", json_string(text), oom);
    }

    const char *priority = p->priority;
    if (!priority) {
        static const unsigned pw[] = {84, 11, 4, 1};
        static const char *const names[] = {"routine", "urgent", "asap", "stat"};
        priority = p->primary->priority ? p->primary->priority : names[weighted(r, pw, 4)];
    }
    gen_put(root, "priority", json_string(priority), oom);
    gen_put(root, "consent", json_string("given"), oom);
    gen_put(root, "referral_date", json_string(ref_date), oom);
    if (red_flag) {
        gen_put(root, "expectations", json_string("Medical assessment before any therapy."), oom);
    } else if (ct && chance(r, 75)) {
        gen_expand(text, sizeof text, ct->expectations, v);
        gen_put(root, "expectations", json_string(text), oom);
    }
}

/* The weekly windows a patient can attend (NULL: any time). */
static json_t *availability_json(rng_t *r, bool *oom)
{
    static const unsigned w[] = {35, 12, 8, 15, 5, 7, 12, 6};
    win_t win[8];
    size_t n = 0;
    switch (weighted(r, w, GEN_COUNT(w))) {
    case 0:
        return NULL;
    case 1: {   /* weekday mornings */
        unsigned from = chance(r, 50) ? DAY_MIN(7, 30) : DAY_MIN(8, 0);
        for (unsigned d = 1; d <= 5; d++)
            n = gen_add_win(win, n, d, from, DAY_MIN(12, 0));
        break;
    }
    case 2:     /* weekday afternoons */
        for (unsigned d = 1; d <= 5; d++)
            n = gen_add_win(win, n, d, DAY_MIN(12, 0), DAY_MIN(17, 0));
        break;
    case 3: {   /* evenings and Saturday */
        unsigned from = chance(r, 50) ? DAY_MIN(16, 0) : DAY_MIN(17, 0);
        for (unsigned d = 1; d <= 5; d++)
            n = gen_add_win(win, n, d, from, DAY_MIN(21, 0));
        n = gen_add_win(win, n, 6, DAY_MIN(8, 0), DAY_MIN(15, 0));
        break;
    }
    case 4:     /* lunch hours */
        for (unsigned d = 1; d <= 5; d++)
            n = gen_add_win(win, n, d, DAY_MIN(11, 30), DAY_MIN(14, 0));
        break;
    case 5:     /* weekends only */
        n = gen_add_win(win, n, 6, DAY_MIN(9, 0), DAY_MIN(17, 0));
        n = gen_add_win(win, n, 7, DAY_MIN(10, 0), DAY_MIN(16, 0));
        break;
    case 6: {   /* two or three particular days */
        unsigned days = 0;
        size_t want = between(r, 2, 3);
        while (n < want) {
            unsigned d = between(r, 1, 6);
            if (days & (1u << d))
                continue;
            days |= 1u << d;
            n++;
        }
        n = 0;
        for (unsigned d = 1; d <= 6; d++)
            if (days & (1u << d))
                n = gen_add_win(win, n, d, DAY_MIN(9, 0), DAY_MIN(18, 0));
        break;
    }
    default:    /* Tuesday and Thursday after work */
        n = gen_add_win(win, n, 2, DAY_MIN(15, 0), DAY_MIN(20, 0));
        n = gen_add_win(win, n, 4, DAY_MIN(15, 0), DAY_MIN(20, 0));
        break;
    }
    return gen_hours_json(win, n, oom);
}

/* A clinic offering discipline d (any clinic when none does), other than `not`. */
static size_t clinic_with(const hx_gen_t *g, rng_t *r, int d, size_t not)
{
    for (int tries = 0; tries < 32; tries++) {
        size_t c = below(r, g->n_clinics);
        if (c != not && (g->clinics[c].disciplines & (1u << d)))
            return c;
    }
    return below(r, g->n_clinics);
}

/* Up to two clinics offering discipline need, often the referring one (NULL: none named). */
static json_t *clinic_ids_json(const hx_gen_t *g, rng_t *r, int need, size_t clinic, bool *oom)
{
    static const unsigned n_pref_w[] = {40, 45, 15};
    size_t n_pref = weighted(r, n_pref_w, 3);
    if (!n_pref)
        return NULL;
    json_t *ids = json_array();
    size_t first = (g->clinics[clinic].disciplines & (1u << need)) && chance(r, 50)
                       ? clinic
                       : clinic_with(g, r, need, g->n_clinics);
    gen_push(ids, json_string(g->clinics[first].id), oom);
    if (n_pref == 2 && g->n_clinics > 1)
        gen_push(ids, json_string(g->clinics[clinic_with(g, r, need, first)].id), oom);
    if (ids && json_array_size(ids) == 2 &&
        !strcmp(json_string_value(json_array_get(ids, 0)), json_string_value(json_array_get(ids, 1))))
        json_array_remove(ids, 1);
    if (!ids)
        *oom = true;
    return ids;
}

/* Preferences: clinics offering the first discipline asked for, language, virtual, the
 * weekly windows, and a massage length when massage is part of the plan. */
static json_t *preferences_json(const hx_gen_t *g, rng_t *r, hx_gen_kind_t kind, const plan_t *p, size_t clinic,
                                const char *language, bool *oom)
{
    json_t *prefs = json_object();
    if (!prefs)
        return NULL;
    json_t *ids = clinic_ids_json(g, r, kind == HX_GEN_MASSAGE ? D_RMT : D_PT, clinic, oom);
    if (ids)
        gen_put(prefs, "clinic_ids", ids, oom);
    if (strcmp(language, "en") != 0 ? chance(r, 60) : chance(r, 50))
        gen_put(prefs, "language", json_string(language), oom);
    gen_put(prefs, "virtual_ok", json_boolean(chance(r, 25)), oom);
    json_t *avail = availability_json(r, oom);
    if (avail)
        gen_put(prefs, "availability", avail, oom);
    if (p->massage) {
        static const unsigned mw[] = {10, 10, 15, 50, 15};
        static const int minutes[] = {0, 30, 45, 60, 90};
        int m = minutes[weighted(r, mw, 5)];
        if (m)
            gen_put(prefs, "massage_minutes", json_integer(m), oom);
    }
    return prefs;
}

json_t *hx_gen_referral(const hx_gen_t *g, uint64_t index, hx_gen_kind_t *kind_out)
{
    if (!g)
        return NULL;
    rng_t r = rng_stream(g->seed, index + 1);
    hx_gen_kind_t kind = (hx_gen_kind_t)weighted(&r, g->kind_weights, HX_GEN_KIND_COUNT);
    vars_t v = {0};
    v.side = PICK(&r, sides);
    v.weeks = between(&r, 2, 10);
    v.months = between(&r, 3, 24);
    plan_t p = {0};
    gen_plan(g, &r, kind, &v, &p);

    /* The referrer, at a clinic of the network. */
    if (p.referrer != D_MD && g->n_by_discipline[p.referrer] == 0)
        p.referrer = D_MD;
    const g_therapist_t *rt = NULL;
    size_t clinic;
    if (p.referrer == D_MD) {
        clinic = below(&r, g->n_clinics);
    } else {
        rt = &g->therapists[g->by_discipline[p.referrer][below(&r, g->n_by_discipline[p.referrer])]];
        clinic = rt->clinic;
    }
    const g_clinic_t *rc = &g->clinics[clinic];

    int64_t ref_day = g->last_day - (int64_t)below(&r, 28);
    int64_t birth = ref_day - (int64_t)v.age * 365 - v.age / 4 - (int64_t)below(&r, 365);
    char ref_date[11], birth_date[11], ref[32];
    format_date(ref_day, ref_date);
    format_date(birth, birth_date);
    snprintf(ref, sizeof ref, "GEN-%06llu", (unsigned long long)(index + 1));

    json_t *root = json_object();
    if (!root)
        return NULL;
    bool oom = false;
    const char *language;
    gen_put(root, "ref", json_string(ref), &oom);
    json_t *patient = patient_json(&r, rc, birth_date, &language, &oom);
    put_postal_code(g, index, rc, patient, &oom);
    gen_put(root, "patient", patient, &oom);
    gen_put(root, "referrer", referrer_json(&r, p.referrer, rt, rc, &oom), &oom);
    put_clinical(root, &r, kind, &p, &v, ref_date, &oom);
    gen_put(root, "preferences", preferences_json(g, &r, kind, &p, clinic, language, &oom), &oom);
    if (oom) {
        json_decref(root);
        return NULL;
    }
    if (kind_out)
        *kind_out = kind;
    return root;
}
