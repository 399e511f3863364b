/* hx_intake — what a referral must carry before the network takes it, and its ids
 * (see hx_intake.h).
 *
 * The referral may come from a JSON file (hx_refjson has then checked types) or straight off
 * the wire as protobuf, so every string is checked again here for UTF-8, length and spelling,
 * and every enum for a known value. Each bad field gets one error naming its path. */
#include "hx_intake.h"
#include "hx_place.h"

#include <sodium.h>
#include <stdbool.h>
#include <ctype.h>
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

/* Optional: a Canadian postal code ("M4C 1A1", "M4C1A1") or its forward sortation area ("M4C"). */
static void check_postal(hx_errors_t *e, const char *path, const char *s)
{
    char fsa[4];
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return;
    bool ok = hx_place_fsa(s, fsa) == 0 && (n == 3 || n == 6 || n == 7);
    if (ok && n > 3) {
        const char *l = s + (n == 7 ? 4 : 3);
        ok = (n == 6 || s[3] == ' ') && isdigit((unsigned char)l[0]) && isalpha((unsigned char)l[1]) &&
             isdigit((unsigned char)l[2]);
    }
    if (!ok)
        hx_errors_add(e, path, "must be a Canadian postal code (\"M4C 1A1\") or its first three characters (\"M4C\")");
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
    check_postal(e, "patient.postal_code", p->postal_code);
}

/* ---- the referrer's registration ------------------------------------------------------- *
 * The bodies come from the registration file (hx_registration): for the referrer's province
 * (ON when it says none) and discipline, the colleges, or the associations where the profession
 * is not regulated there. A body that does not fit is refused naming the ones that would. */

static const char *registers(Handoff__Discipline d)
{
    return d == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY     ? "physiotherapy"
           : d == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? "massage therapy"
                                                                   : "physicians";
}

/* The province whose bodies apply: the referrer's, or HX_PROVINCE_DEFAULT; NULL after an error. */
static const char *check_province(hx_errors_t *e, const hx_registration_t *reg, const Handoff__Referrer *r)
{
    if (hx_is_blank(r->province))
        return HX_PROVINCE_DEFAULT;
    if (!check_text(e, "referrer.province", r->province, HX_CODE_MAX, true))
        return NULL;
    if (reg && !hx_registration_province(reg, r->province)) {
        hx_errors_add(e, "referrer.province", "'%.12s' is not a Canadian province or territory (%s)", r->province,
                      hx_registration_codes());
        return NULL;
    }
    return r->province;
}

/* "expected CPO (college)", "expected one of MTAA, NHPC, RMTA (associations: massage therapy
 * is not regulated by a college in AB)". */
static void expected_text(const hx_body_t *b, size_t n, Handoff__Discipline d, const char *prov, char *out,
                          size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "expected %s", n > 1 ? "one of " : "");
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "", b[i].acronym);
    if (len >= cap)
        return;
    if (n && b[0].kind == HX_BODY_ASSOCIATION)
        snprintf(out + len, cap - len, " (association%s: %s is not regulated by a college in %s)", n > 1 ? "s" : "",
                 d == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN ? "medicine" : registers(d), prov);
    else
        snprintf(out + len, cap - len, " (college%s)", n > 1 ? "s" : "");
}

static const hx_body_t *check_body(hx_errors_t *e, const hx_registration_t *reg, const char *prov,
                                   const Handoff__Referrer *r, bool known_discipline)
{
    if (!check_text(e, "referrer.registration_body", r->registration_body, HX_CODE_MAX, true) || !prov ||
        !known_discipline)
        return NULL;
    if (!reg) {
        hx_errors_add(e, "referrer.registration_body", "cannot be checked: no registration bodies are loaded");
        return NULL;
    }
    const hx_body_t *found = hx_registration_find(reg, prov, r->discipline, r->registration_body);
    if (!found) {
        size_t n;
        const hx_body_t *b = hx_registration_bodies(reg, prov, r->discipline, &n);
        char expected[160];
        expected_text(b, n, r->discipline, prov, expected, sizeof expected);
        hx_errors_add(e, "referrer.registration_body", "'%.12s' does not register %s in %s; %s",
                      r->registration_body, registers(r->discipline), prov, expected);
    }
    return found;
}

static bool number_chars(const char *s, bool digits)
{
    return strspn(s, digits ? "0123456789"
                            : "0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == strlen(s);
}

/* The number against its body's pattern; when the body did not fit, only what every body
 * expected there would need (digits in Ontario), else letters, digits and hyphens. */
static void check_number(hx_errors_t *e, const hx_registration_t *reg, const char *prov, const Handoff__Referrer *r,
                         const hx_body_t *body)
{
    static const char path[] = "referrer.registration_number";
    if (!check_text(e, path, r->registration_number, HX_CODE_MAX, true))
        return;
    const char *s = r->registration_number;
    size_t len = strlen(s);
    bool digits = body && body->digits;
    if (!body) {
        size_t n = 0;
        const hx_body_t *b = prov ? hx_registration_bodies(reg, prov, r->discipline, &n) : NULL;
        digits = n > 0;
        for (size_t i = 0; i < n; i++)
            digits &= b[i].digits;
    }
    if (!number_chars(s, digits))
        hx_errors_add(e, path, digits ? "must be digits only" : "must use only letters, digits and -");
    else if (body && (len < body->min || len > body->max))
        hx_errors_add(e, path, "must be %u to %u %s for %s (has %zu)", body->min, body->max,
                      digits ? "digits" : "characters", body->acronym, len);
    else if (!body && len > HX_REG_NUMBER_MAX)
        hx_errors_add(e, path, "must be at most %d characters (has %zu)", HX_REG_NUMBER_MAX, len);
}

static void check_referrer(hx_errors_t *e, const Handoff__Referrer *r, const hx_registration_t *reg)
{
    static const Handoff__Referrer empty = HANDOFF__REFERRER__INIT;
    if (!r)
        r = &empty;
    check_text(e, "referrer.name", r->name, HX_PERSON_NAME_MAX, true);

    bool known = r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY ||
                 r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ||
                 r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN;
    if (r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_UNSPECIFIED)
        hx_errors_add(e, "referrer.discipline", "required (physiotherapy, massage_therapy or physician)");
    else if (!known)
        hx_errors_add(e, "referrer.discipline", "unknown value %d (physiotherapy, massage_therapy or physician)",
                      (int)r->discipline);

    const char *prov = check_province(e, reg, r);
    const hx_body_t *body = check_body(e, reg, prov, r, known);
    check_number(e, reg, known ? prov : NULL, r, body);
    if (!hx_is_blank(r->registration_kind) && !hx_body_kind_from_text(r->registration_kind))
        hx_errors_add(e, "referrer.registration_kind", "must be college or association (intake sets it)");
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
    return hx_intake_check(r, hx_registration_builtin(), errs);
}

const char *hx_intake_registration_kind(const Handoff__Referral *r, const hx_registration_t *reg)
{
    const Handoff__Referrer *f = r ? r->referrer : NULL;
    if (!f)
        return NULL;
    const char *prov = hx_is_blank(f->province) ? HX_PROVINCE_DEFAULT : f->province;
    const hx_body_t *b = hx_registration_find(reg, prov, f->discipline, f->registration_body);
    return b ? hx_body_kind_text(b->kind) : NULL;
}

int hx_intake_check(const Handoff__Referral *r, const hx_registration_t *reg, hx_errors_t *errs)
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
    check_referrer(errs, r->referrer, reg);
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
