/* hx_intake — what a referral must carry before the network takes it, and its ids
 * (see hx_intake.h).
 *
 * The referral may come from a JSON file (hx_refjson has then checked types) or straight off
 * the wire as protobuf, so every string is checked again here for UTF-8, length and spelling,
 * and every enum for a known value. Each bad field gets one error naming its path. */
#include "hx_intake.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "hx_util.h"

typedef char path_t[96];

/* Checks UTF-8 and length; when required, also that it is not blank. Returns true when s
 * is acceptable and not blank (so format checks may follow). */
static bool check_text(hx_errors_t *e, const char *path, const char *s, size_t max, bool required)
{
    if (hx_is_blank(s)) {
        if (required)
            hx_errors_add(e, path, "required");
        return false;
    }
    if (!hx_utf8_valid(s)) {
        hx_errors_add(e, path, "must be valid UTF-8");
        return false;
    }
    size_t n = hx_utf8_chars(s);
    if (n > max) {
        hx_errors_add(e, path, "must be at most %zu characters (has %zu)", max, n);
        return false;
    }
    return true;
}

static bool only_chars(const char *s, const char *extra)
{
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c && strchr(extra, c));
        if (!ok)
            return false;
    }
    return true;
}

/* A phone number as people write it: digits, spaces and + - ( ) . with 7 to 15 digits
 * (E.164 allows at most 15), optionally an extension "x123". */
static bool plausible_phone(const char *s)
{
    size_t ndigits = 0;
    bool ext = false;
    for (; *s; s++) {
        char c = *s;
        if (c >= '0' && c <= '9') {
            if (!ext)
                ndigits++;
        } else if (c == 'x' && !ext) {
            ext = true;
        } else if (!strchr(" +-().", c)) {
            return false;
        }
    }
    return ndigits >= 7 && ndigits <= 15;
}

/* local@domain.tld: one '@', no spaces, a dot inside the domain. Not RFC 5322; enough to
 * catch a name typed into the email field. */
static bool plausible_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || strpbrk(s, " \t\r\n<>,;"))
        return false;
    const char *dom = at + 1;
    const char *dot = strrchr(dom, '.');
    return dot && dot > dom && dot[1] != '\0' && dom[0] != '.';
}

/* A BCP 47 language tag of the common shape: "en", "fr", "pt-BR", "zh-Hant". */
static bool plausible_language(const char *s)
{
    size_t n = 0;
    while (s[n] >= 'a' && s[n] <= 'z')
        n++;
    if (n < 2 || n > 3)
        return false;
    s += n;
    while (*s == '-') {
        s++;
        n = 0;
        while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
               (s[n] >= '0' && s[n] <= '9'))
            n++;
        if (n < 2 || n > 8)
            return false;
        s += n;
    }
    return *s == '\0';
}

static void check_phone(hx_errors_t *e, const char *path, const char *s)
{
    if (check_text(e, path, s, HX_CODE_MAX, false) && !plausible_phone(s))
        hx_errors_add(e, path, "must be a phone number (7 to 15 digits; spaces and + - ( ) . allowed)");
}

static void check_email(hx_errors_t *e, const char *path, const char *s)
{
    if (check_text(e, path, s, HX_PERSON_NAME_MAX, false) && !plausible_email(s))
        hx_errors_add(e, path, "must be an email address (name@example.org)");
}

static void check_language(hx_errors_t *e, const char *path, const char *s)
{
    if (check_text(e, path, s, HX_CODE_MAX, false) && !plausible_language(s))
        hx_errors_add(e, path, "must be a language code such as \"en\", \"fr\" or \"pt-BR\"");
}

static void check_clinic_id(hx_errors_t *e, const char *path, const char *s, bool required)
{
    if (check_text(e, path, s, HX_CODE_MAX, required) && !hx_is_id(s))
        hx_errors_add(e, path, "must be a clinic id (a-z, 0-9, -; at most %d characters)", HX_ID_MAX);
}

/* Parses a YYYY-MM-DD date field; returns true with *days when valid. */
static bool check_date(hx_errors_t *e, const char *path, const char *s, int64_t *days)
{
    if (!check_text(e, path, s, HX_CODE_MAX, true))
        return false;
    if (hx_date_parse(s, days) != 0) {
        hx_errors_add(e, path, "must be a date YYYY-MM-DD (a real calendar date)");
        return false;
    }
    return true;
}

static void check_patient(hx_errors_t *e, const Handoff__Patient *p, bool have_ref_date,
                          int64_t ref_date, const char *ref_date_text)
{
    static const Handoff__Patient empty = HANDOFF__PATIENT__INIT;
    if (!p)
        p = &empty;     /* a missing patient reports each required field */
    check_text(e, "patient.given_name", p->given_name, HX_PERSON_NAME_MAX, true);
    check_text(e, "patient.family_name", p->family_name, HX_PERSON_NAME_MAX, true);

    int64_t born;
    if (check_date(e, "patient.birth_date", p->birth_date, &born)) {
        if (born < hx_days_from_civil(1900, 1, 1))
            hx_errors_add(e, "patient.birth_date", "must not be before 1900-01-01");
        else if (have_ref_date && born > ref_date)
            hx_errors_add(e, "patient.birth_date", "must not be after the referral date (%s)",
                          ref_date_text);
    }

    if (hx_is_blank(p->phone) && hx_is_blank(p->email))
        hx_errors_add(e, "patient.phone", "a phone number or an email address is required");
    check_phone(e, "patient.phone", p->phone);
    check_email(e, "patient.email", p->email);

    /* Ontario: 10 digits and a 2-letter version code; other provinces differ, so only the
     * characters are checked. */
    if (check_text(e, "patient.health_card", p->health_card, HX_CODE_MAX, false) &&
        !only_chars(p->health_card, " -"))
        hx_errors_add(e, "patient.health_card", "must use only letters, digits, spaces and -");
    check_language(e, "patient.language", p->language);
}

/* The regulatory college each referring discipline registers with, in Ontario, and the
 * plausible length of its registration numbers (digits only). The colleges' public
 * registers use numeric ids: CPO (physiotherapists) and CPSO (physicians) numbers run to
 * 5-6 digits today, CMTO (massage therapists) numbers to 4-5; the ranges leave room for
 * growth without accepting a phone number: CPO 4-8, CPSO 4-8, CMTO 4-6 digits. */
static const struct college {
    Handoff__Discipline discipline;
    const char *body;
    size_t min_digits, max_digits;
} colleges[] = {
    {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY, "CPO", 4, 8},
    {HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY, "CMTO", 4, 6},
    {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN, "CPSO", 4, 8},
};

static void check_referrer(hx_errors_t *e, const Handoff__Referrer *r)
{
    static const Handoff__Referrer empty = HANDOFF__REFERRER__INIT;
    if (!r)
        r = &empty;
    check_text(e, "referrer.name", r->name, HX_PERSON_NAME_MAX, true);

    const struct college *college = NULL;
    for (size_t i = 0; i < sizeof colleges / sizeof colleges[0]; i++)
        if (colleges[i].discipline == r->discipline)
            college = &colleges[i];
    if (r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_UNSPECIFIED)
        hx_errors_add(e, "referrer.discipline", "required (physiotherapy, massage_therapy or physician)");
    else if (!college)
        hx_errors_add(e, "referrer.discipline", "unknown value %d (physiotherapy, massage_therapy or physician)",
                      (int)r->discipline);

    if (check_text(e, "referrer.registration_body", r->registration_body, HX_CODE_MAX, true) &&
        college && strcmp(r->registration_body, college->body) != 0) {
        char got[24];
        snprintf(got, sizeof got, "%s", r->registration_body);
        hx_errors_add(e, "referrer.registration_body", "must be %s for a %s referrer (got \"%s\")",
                      college->body,
                      r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY     ? "physiotherapist"
                      : r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? "massage therapist"
                                                                                          : "physician",
                      got);
    }

    if (check_text(e, "referrer.registration_number", r->registration_number, HX_CODE_MAX, true)) {
        const char *s = r->registration_number;
        size_t n = strlen(s);
        bool all_digits = strspn(s, "0123456789") == n;
        if (!all_digits)
            hx_errors_add(e, "referrer.registration_number", "must be digits only");
        else if (college && (n < college->min_digits || n > college->max_digits))
            hx_errors_add(e, "referrer.registration_number", "must be %zu to %zu digits for %s (has %zu)",
                          college->min_digits, college->max_digits, college->body, n);
    }
    check_clinic_id(e, "referrer.clinic_id", r->clinic_id, false);
    check_phone(e, "referrer.phone", r->phone);
    check_email(e, "referrer.email", r->email);
}

/* A list of codes: optional (a referral may be words only), each a code, no duplicates. */
static void check_codes(hx_errors_t *e, const char *base, char *const *items, size_t n)
{
    if (n == 0)
        return;
    if (n > HX_LIST_MAX) {
        hx_errors_add(e, base, "must have at most %d entries (has %zu)", HX_LIST_MAX, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        path_t path;
        hx_path_index(path, sizeof path, base, i);
        if (!check_text(e, path, items[i], HX_CODE_MAX, true))
            continue;
        if (!hx_is_code(items[i])) {
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _)");
            continue;
        }
        for (size_t k = 0; k < i; k++)
            if (items[k] && strcmp(items[k], items[i]) == 0) {
                hx_errors_add(e, path, "duplicate of %s[%zu]", base, k);
                break;
            }
    }
}

static void check_preferences(hx_errors_t *e, const Handoff__Preferences *p)
{
    if (!p)
        return;
    if (p->n_clinic_ids > HX_LIST_MAX) {
        hx_errors_add(e, "preferences.clinic_ids", "must have at most %d entries (has %zu)",
                      HX_LIST_MAX, p->n_clinic_ids);
    } else {
        for (size_t i = 0; i < p->n_clinic_ids; i++) {
            path_t path;
            snprintf(path, sizeof path, "preferences.clinic_ids[%zu]", i);
            check_clinic_id(e, path, p->clinic_ids[i], true);
        }
    }
    check_language(e, "preferences.language", p->language);
    if (p->n_availability > HX_LIST_MAX) {
        hx_errors_add(e, "preferences.availability", "must have at most %d entries (has %zu)",
                      HX_LIST_MAX, p->n_availability);
    } else {
        for (size_t i = 0; i < p->n_availability; i++) {
            const Handoff__Availability *a = p->availability[i];
            path_t path;
            snprintf(path, sizeof path, "preferences.availability[%zu]", i);
            if (!a) {
                hx_errors_add(e, path, "required");
                continue;
            }
            path_t day, from, to;
            snprintf(day, sizeof day, "preferences.availability[%zu].day", i);
            snprintf(from, sizeof from, "preferences.availability[%zu].from", i);
            snprintf(to, sizeof to, "preferences.availability[%zu].to", i);
            if (a->day < 1 || a->day > 7)
                hx_errors_add(e, day, "must be 1 (Monday) to 7 (Sunday)");
            unsigned f = 0, t = 0;
            bool fok = false, tok = false;
            if (check_text(e, from, a->from, HX_CODE_MAX, true)) {
                fok = hx_hhmm_parse(a->from, false, &f) == 0;
                if (!fok)
                    hx_errors_add(e, from, "must be a time HH:MM (00:00 to 23:59)");
            }
            if (check_text(e, to, a->to, HX_CODE_MAX, true)) {
                tok = hx_hhmm_parse(a->to, true, &t) == 0;
                if (!tok)
                    hx_errors_add(e, to, "must be a time HH:MM (00:00 to 24:00)");
            }
            if (fok && tok && t <= f)
                hx_errors_add(e, to, "must be after from (%s)", a->from);
        }
    }
    uint32_t mm = p->massage_minutes;
    if (mm != 0 && mm != 30 && mm != 45 && mm != 60 && mm != 90)
        hx_errors_add(e, "preferences.massage_minutes", "must be 30, 45, 60 or 90 (got %u)", (unsigned)mm);
}

int hx_intake_validate(const Handoff__Referral *r, hx_errors_t *errs)
{
    hx_errors_t local;
    if (!errs) {
        hx_errors_clear(&local);
        errs = &local;
    }
    const size_t before = errs->count + errs->dropped;
    if (!r) {
        hx_errors_add(errs, "", "no referral");
        return 1;
    }

    if (check_text(errs, "ref", r->ref, HX_CODE_MAX, true) && !only_chars(r->ref, "._-/:"))
        hx_errors_add(errs, "ref", "must use only letters, digits and . _ - / :");

    int64_t ref_date = 0;
    bool have_ref_date = false;
    if (r->referral_date && !hx_is_blank(r->referral_date))
        have_ref_date = hx_date_parse(r->referral_date, &ref_date) == 0;

    check_patient(errs, r->patient, have_ref_date, ref_date, r->referral_date);
    check_referrer(errs, r->referrer);
    check_text(errs, "reason", r->reason, HX_TEXT_MAX, true);
    /* The clinical content may be words only: triage reads the reason and the other texts,
     * and what it cannot place goes to a clinician (docs/TRIAGE.md). */
    check_codes(errs, "conditions", r->conditions, r->n_conditions);
    check_codes(errs, "findings", r->findings, r->n_findings);
    check_text(errs, "history", r->history, HX_TEXT_MAX, false);
    check_text(errs, "diagnosis", r->diagnosis, HX_TEXT_MAX, false);
    check_text(errs, "current_treatment", r->current_treatment, HX_TEXT_MAX, false);
    check_text(errs, "expectations", r->expectations, HX_TEXT_MAX, false);

    /* Unspecified priority is allowed: triage treats it as routine. */
    if ((int)r->priority < 0 || r->priority > HANDOFF__PRIORITY__PRIORITY_STAT)
        hx_errors_add(errs, "priority", "unknown value %d (routine, urgent, asap, stat)", (int)r->priority);

    switch (r->consent) {
    case HANDOFF__CONSENT__CONSENT_GIVEN:
        break;
    case HANDOFF__CONSENT__CONSENT_WITHHELD:
        hx_errors_add(errs, "consent", "consent withheld: the referral must not be shared");
        break;
    case HANDOFF__CONSENT__CONSENT_UNSPECIFIED:
        hx_errors_add(errs, "consent", "required: the patient's consent to share must be given");
        break;
    default:
        hx_errors_add(errs, "consent", "unknown value %d (given, withheld)", (int)r->consent);
        break;
    }

    int64_t ignored;
    check_date(errs, "referral_date", r->referral_date, &ignored);
    check_preferences(errs, r->preferences);

    return (int)(errs->count + errs->dropped - before);
}

void hx_submission_id(const char *clinic, const char *ref, uint8_t id[16])
{
    static const char tag[] = "referral";   /* hashed with its NUL */
    if (!clinic)
        clinic = "";
    if (!ref)
        ref = "";
    /* sodium_init is idempotent and thread-safe; BLAKE2b needs nothing it sets up, but the
     * library asks to be initialised before use. Failure (-1) cannot affect the hash. */
    int rc = sodium_init();
    (void)rc;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, (const unsigned char *)tag, sizeof tag);
    crypto_generichash_update(&st, (const unsigned char *)clinic, strlen(clinic) + 1);
    crypto_generichash_update(&st, (const unsigned char *)ref, strlen(ref));
    crypto_generichash_final(&st, id, 16);
}

void hx_referral_id(const uint8_t id[16], char *out)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";   /* Crockford */
    out[0] = 'R';
    out[1] = '-';
    /* 10 bytes = 80 bits = 16 groups of 5 bits, most significant first. */
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 2;
    for (size_t i = 0; i < 10; i++) {
        acc = (acc << 8) | id[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[o++] = alphabet[(acc >> bits) & 31];
        }
        acc &= (1u << bits) - 1;
    }
    out[o] = '\0';
}
