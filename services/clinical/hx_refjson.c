/* hx_refjson — referral JSON files <-> protobuf, and clinic-facing JSON views (see hx_refjson.h).
 *
 * Parsing checks JSON types, enum spellings and size limits only; what a referral must carry
 * is hx_intake's business. Every problem is recorded with its path ("patient.birth_date",
 * "conditions[1]", "preferences.availability[0].day"); parsing goes on after an error so one
 * pass reports all of them. JSON null is accepted as "not given" for any field. */
#include "hx_refjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hx_registration.h"
#include "hx_util.h"

/* ---- enum spellings ------------------------------------------------------------------ */

static const char *const discipline_names[] = {
    [HANDOFF__DISCIPLINE__DISCIPLINE_UNSPECIFIED] = "unspecified",
    [HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY] = "physiotherapy",
    [HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY] = "massage_therapy",
    [HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN] = "physician",
};
static const char *const priority_names[] = {
    [HANDOFF__PRIORITY__PRIORITY_UNSPECIFIED] = "unspecified",
    [HANDOFF__PRIORITY__PRIORITY_ROUTINE] = "routine",
    [HANDOFF__PRIORITY__PRIORITY_URGENT] = "urgent",
    [HANDOFF__PRIORITY__PRIORITY_ASAP] = "asap",
    [HANDOFF__PRIORITY__PRIORITY_STAT] = "stat",
};
static const char *const consent_names[] = {
    [HANDOFF__CONSENT__CONSENT_UNSPECIFIED] = "unspecified",
    [HANDOFF__CONSENT__CONSENT_GIVEN] = "given",
    [HANDOFF__CONSENT__CONSENT_WITHHELD] = "withheld",
};
/* FHIR Task.status codes, spelled as FHIR R4 spells them. */
static const char *const status_names[] = {
    [HANDOFF__TASK_STATUS__TASK_UNSPECIFIED] = "unspecified",
    [HANDOFF__TASK_STATUS__TASK_DRAFT] = "draft",
    [HANDOFF__TASK_STATUS__TASK_REQUESTED] = "requested",
    [HANDOFF__TASK_STATUS__TASK_RECEIVED] = "received",
    [HANDOFF__TASK_STATUS__TASK_ACCEPTED] = "accepted",
    [HANDOFF__TASK_STATUS__TASK_REJECTED] = "rejected",
    [HANDOFF__TASK_STATUS__TASK_READY] = "ready",
    [HANDOFF__TASK_STATUS__TASK_CANCELLED] = "cancelled",
    [HANDOFF__TASK_STATUS__TASK_IN_PROGRESS] = "in-progress",
    [HANDOFF__TASK_STATUS__TASK_ON_HOLD] = "on-hold",
    [HANDOFF__TASK_STATUS__TASK_FAILED] = "failed",
    [HANDOFF__TASK_STATUS__TASK_COMPLETED] = "completed",
    [HANDOFF__TASK_STATUS__TASK_ENTERED_IN_ERROR] = "entered-in-error",
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const char *const *names, size_t n, int v)
{
    return v >= 0 && (size_t)v < n ? names[v] : "unknown";
}

/* 0 for unknown text, for NULL, and for "unspecified" (which is never a value to send). */
static int value_of(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return 0;
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return 0;
}

const char *hx_discipline_text(Handoff__Discipline d)
{
    return name_of(discipline_names, COUNT(discipline_names), (int)d);
}
Handoff__Discipline hx_discipline_from_text(const char *s)
{
    return (Handoff__Discipline)value_of(discipline_names, COUNT(discipline_names), s);
}
const char *hx_priority_text(Handoff__Priority p)
{
    return name_of(priority_names, COUNT(priority_names), (int)p);
}
Handoff__Priority hx_priority_from_text(const char *s)
{
    return (Handoff__Priority)value_of(priority_names, COUNT(priority_names), s);
}
const char *hx_status_text(Handoff__TaskStatus s)
{
    return name_of(status_names, COUNT(status_names), (int)s);
}
Handoff__TaskStatus hx_status_from_text(const char *s)
{
    return (Handoff__TaskStatus)value_of(status_names, COUNT(status_names), s);
}
const char *hx_consent_text(Handoff__Consent c)
{
    return name_of(consent_names, COUNT(consent_names), (int)c);
}
Handoff__Consent hx_consent_from_text(const char *s)
{
    return (Handoff__Consent)value_of(consent_names, COUNT(consent_names), s);
}

/* ---- JSON -> protobuf ---------------------------------------------------------------- */

typedef char path_t[96];

static void path_key(path_t out, const char *base, const char *key)
{
    hx_path_key(out, sizeof(path_t), base, key);
}

static void path_index(path_t out, const char *base, size_t i)
{
    hx_path_index(out, sizeof(path_t), base, i);
}

/* A copy of a JSON string within max characters, or NULL with the error recorded. */
static char *take_string(const json_t *v, const char *path, size_t max, hx_errors_t *e)
{
    if (!json_is_string(v)) {
        hx_errors_add(e, path, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        hx_errors_add(e, path, "must not contain NUL characters");
        return NULL;
    }
    if (hx_utf8_chars(s) > max) {
        hx_errors_add(e, path, "must be at most %zu characters", max);
        return NULL;
    }
    char *copy = strdup(s);
    if (!copy)
        hx_errors_add(e, path, "out of memory");
    return copy;
}

/* Stores a string field; the field still holds protobuf_c_empty_string (keys are unique). */
static void set_string(char **field, const json_t *v, const char *path, size_t max, hx_errors_t *e)
{
    if (json_is_null(v))
        return;
    char *s = take_string(v, path, max, e);
    if (s)
        *field = s;
}

/* An enum from its text; records "unknown value" with the list of spellings. */
static int take_enum(const json_t *v, const char *path, const char *const *names, size_t n,
                     hx_errors_t *e)
{
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        hx_errors_add(e, path, "must be a string");
        return 0;
    }
    int value = value_of(names, n, json_string_value(v));
    if (value == 0) {
        char list[96] = "";
        size_t used = 0;
        for (size_t i = 1; i < n && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i > 1 ? ", " : "",
                                     names[i]);
        char shown[40];
        snprintf(shown, sizeof shown, "%s", json_string_value(v));
        hx_errors_add(e, path, "unknown value \"%s\" (%s)", shown, list);
    }
    return value;
}

static void set_string_list(size_t *n_out, char ***out, const json_t *v, const char *path,
                            size_t max_items, size_t max_chars, hx_errors_t *e)
{
    if (json_is_null(v))
        return;
    if (!json_is_array(v)) {
        hx_errors_add(e, path, "must be an array of strings");
        return;
    }
    size_t n = json_array_size(v);
    if (n > max_items) {
        hx_errors_add(e, path, "must have at most %zu entries (has %zu)", max_items, n);
        return;
    }
    if (n == 0)
        return;
    char **items = calloc(n, sizeof *items);
    if (!items) {
        hx_errors_add(e, path, "out of memory");
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        path_t p;
        path_index(p, path, i);
        char *s = take_string(json_array_get(v, i), p, max_chars, e);
        if (s)
            items[kept++] = s;
    }
    *out = items;
    *n_out = kept;
}

static void set_bool(protobuf_c_boolean *field, const json_t *v, const char *path, hx_errors_t *e)
{
    if (json_is_null(v))
        return;
    if (!json_is_boolean(v)) {
        hx_errors_add(e, path, "must be true or false");
        return;
    }
    *field = json_is_true(v);
}

static void set_uint(uint32_t *field, const json_t *v, const char *path, json_int_t lo,
                     json_int_t hi, hx_errors_t *e)
{
    if (json_is_null(v))
        return;
    if (!json_is_integer(v)) {
        hx_errors_add(e, path, "must be an integer");
        return;
    }
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) {
        hx_errors_add(e, path, "must be between %" JSON_INTEGER_FORMAT " and %" JSON_INTEGER_FORMAT,
                      lo, hi);
        return;
    }
    *field = (uint32_t)x;
}

static bool want_object(const json_t *v, const char *path, hx_errors_t *e)
{
    if (json_is_object(v))
        return true;
    hx_errors_add(e, path, "must be an object");
    return false;
}

static Handoff__Patient *patient_from_json(const json_t *j, const char *base, hx_errors_t *e)
{
    Handoff__Patient *p = malloc(sizeof *p);
    if (!p) {
        hx_errors_add(e, base, "out of memory");
        return NULL;
    }
    handoff__patient__init(p);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (!strcmp(key, "given_name"))
            set_string(&p->given_name, v, path, HX_PERSON_NAME_MAX, e);
        else if (!strcmp(key, "family_name"))
            set_string(&p->family_name, v, path, HX_PERSON_NAME_MAX, e);
        else if (!strcmp(key, "birth_date"))
            set_string(&p->birth_date, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "phone"))
            set_string(&p->phone, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "email"))
            set_string(&p->email, v, path, HX_PERSON_NAME_MAX, e);
        else if (!strcmp(key, "health_card"))
            set_string(&p->health_card, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "language"))
            set_string(&p->language, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "postal_code"))
            set_string(&p->postal_code, v, path, HX_CODE_MAX, e);
        else
            hx_errors_add(e, path, "unknown field");
    }
    return p;
}

static Handoff__Referrer *referrer_from_json(const json_t *j, const char *base, hx_errors_t *e)
{
    Handoff__Referrer *r = malloc(sizeof *r);
    if (!r) {
        hx_errors_add(e, base, "out of memory");
        return NULL;
    }
    handoff__referrer__init(r);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (!strcmp(key, "name"))
            set_string(&r->name, v, path, HX_PERSON_NAME_MAX, e);
        else if (!strcmp(key, "discipline"))
            r->discipline = (Handoff__Discipline)take_enum(v, path, discipline_names,
                                                           COUNT(discipline_names), e);
        else if (!strcmp(key, "registration_body"))
            set_string(&r->registration_body, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "registration_number"))
            set_string(&r->registration_number, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "clinic_id"))
            set_string(&r->clinic_id, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "phone"))
            set_string(&r->phone, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "email"))
            set_string(&r->email, v, path, HX_PERSON_NAME_MAX, e);
        else if (!strcmp(key, "province"))
            set_string(&r->province, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "registration_kind"))
            set_string(&r->registration_kind, v, path, HX_CODE_MAX, e);
        else
            hx_errors_add(e, path, "unknown field");
    }
    return r;
}

static Handoff__Availability *availability_from_json(const json_t *j, const char *base,
                                                     hx_errors_t *e)
{
    Handoff__Availability *a = malloc(sizeof *a);
    if (!a) {
        hx_errors_add(e, base, "out of memory");
        return NULL;
    }
    handoff__availability__init(a);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (!strcmp(key, "day"))
            set_uint(&a->day, v, path, 1, 7, e);
        else if (!strcmp(key, "from"))
            set_string(&a->from, v, path, HX_CODE_MAX, e);
        else if (!strcmp(key, "to"))
            set_string(&a->to, v, path, HX_CODE_MAX, e);
        else
            hx_errors_add(e, path, "unknown field");
    }
    return a;
}

static Handoff__Preferences *preferences_from_json(const json_t *j, const char *base,
                                                   hx_errors_t *e)
{
    Handoff__Preferences *p = malloc(sizeof *p);
    if (!p) {
        hx_errors_add(e, base, "out of memory");
        return NULL;
    }
    handoff__preferences__init(p);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (!strcmp(key, "clinic_ids")) {
            set_string_list(&p->n_clinic_ids, &p->clinic_ids, v, path, HX_LIST_MAX, HX_CODE_MAX, e);
        } else if (!strcmp(key, "language")) {
            set_string(&p->language, v, path, HX_CODE_MAX, e);
        } else if (!strcmp(key, "virtual_ok")) {
            set_bool(&p->virtual_ok, v, path, e);
        } else if (!strcmp(key, "massage_minutes")) {
            set_uint(&p->massage_minutes, v, path, 0, UINT32_MAX, e);
        } else if (!strcmp(key, "availability")) {
            if (json_is_null(v))
                continue;
            if (!json_is_array(v)) {
                hx_errors_add(e, path, "must be an array of objects");
                continue;
            }
            size_t n = json_array_size(v);
            if (n > HX_LIST_MAX) {
                hx_errors_add(e, path, "must have at most %d entries (has %zu)", HX_LIST_MAX, n);
                continue;
            }
            if (n == 0)
                continue;
            p->availability = calloc(n, sizeof *p->availability);
            if (!p->availability) {
                hx_errors_add(e, path, "out of memory");
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                path_t ip;
                path_index(ip, path, i);
                const json_t *item = json_array_get(v, i);
                if (!want_object(item, ip, e))
                    continue;
                Handoff__Availability *a = availability_from_json(item, ip, e);
                if (a)
                    p->availability[p->n_availability++] = a;
            }
        } else {
            hx_errors_add(e, path, "unknown field");
        }
    }
    return p;
}

Handoff__Referral *hx_referral_from_json(const json_t *j, hx_errors_t *errs)
{
    hx_errors_t local;
    if (!errs) {
        hx_errors_clear(&local);
        errs = &local;
    }
    const size_t before = errs->count + errs->dropped;
    if (!json_is_object(j)) {
        hx_errors_add(errs, "", "a referral must be a JSON object");
        return NULL;
    }
    Handoff__Referral *r = malloc(sizeof *r);
    if (!r) {
        hx_errors_add(errs, "", "out of memory");
        return NULL;
    }
    handoff__referral__init(r);

    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, "", key);
        if (!strcmp(key, "ref")) {
            set_string(&r->ref, v, path, HX_CODE_MAX, errs);
        } else if (!strcmp(key, "referral_id")) {
            set_string(&r->referral_id, v, path, HX_CODE_MAX, errs);
        } else if (!strcmp(key, "referring_clinic")) {
            set_string(&r->referring_clinic, v, path, HX_CODE_MAX, errs);
        } else if (!strcmp(key, "patient")) {
            if (!json_is_null(v) && want_object(v, path, errs))
                r->patient = patient_from_json(v, path, errs);
        } else if (!strcmp(key, "referrer")) {
            if (!json_is_null(v) && want_object(v, path, errs))
                r->referrer = referrer_from_json(v, path, errs);
        } else if (!strcmp(key, "preferences")) {
            if (!json_is_null(v) && want_object(v, path, errs))
                r->preferences = preferences_from_json(v, path, errs);
        } else if (!strcmp(key, "reason")) {
            set_string(&r->reason, v, path, HX_TEXT_MAX, errs);
        } else if (!strcmp(key, "conditions")) {
            set_string_list(&r->n_conditions, &r->conditions, v, path, HX_LIST_MAX, HX_CODE_MAX, errs);
        } else if (!strcmp(key, "findings")) {
            set_string_list(&r->n_findings, &r->findings, v, path, HX_LIST_MAX, HX_CODE_MAX, errs);
        } else if (!strcmp(key, "history")) {
            set_string(&r->history, v, path, HX_TEXT_MAX, errs);
        } else if (!strcmp(key, "diagnosis")) {
            set_string(&r->diagnosis, v, path, HX_TEXT_MAX, errs);
        } else if (!strcmp(key, "current_treatment")) {
            set_string(&r->current_treatment, v, path, HX_TEXT_MAX, errs);
        } else if (!strcmp(key, "expectations")) {
            set_string(&r->expectations, v, path, HX_TEXT_MAX, errs);
        } else if (!strcmp(key, "priority")) {
            r->priority = (Handoff__Priority)take_enum(v, path, priority_names,
                                                       COUNT(priority_names), errs);
        } else if (!strcmp(key, "consent")) {
            r->consent = (Handoff__Consent)take_enum(v, path, consent_names,
                                                     COUNT(consent_names), errs);
        } else if (!strcmp(key, "referral_date")) {
            set_string(&r->referral_date, v, path, HX_CODE_MAX, errs);
        } else {
            hx_errors_add(errs, path, "unknown field");
        }
    }
    if (errs->count + errs->dropped > before) {
        hx_referral_free(r);
        return NULL;
    }
    return r;
}

void hx_referral_free(Handoff__Referral *r)
{
    if (r)
        handoff__referral__free_unpacked(r, NULL);
}

/* ---- protobuf -> JSON ---------------------------------------------------------------- */

/* Each helper skips defaults (NULL/empty strings, zero enums) so views stay short. A string
 * that is not valid UTF-8 (possible only from a protobuf that skipped intake) is skipped too:
 * jansson refuses it. */
static void put_string(json_t *o, const char *key, const char *s)
{
    if (s && *s)
        json_object_set_new(o, key, json_string(s));
}

static void put_strings(json_t *o, const char *key, char *const *items, size_t n, bool always)
{
    if (n == 0 && !always)
        return;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        if (items[i])
            json_array_append_new(a, json_string(items[i]));
    json_object_set_new(o, key, a);
}

static void put_nonempty(json_t *o, const char *key, json_t *v)
{
    if (v && json_object_size(v) > 0)
        json_object_set_new(o, key, v);
    else
        json_decref(v);
}

static json_t *patient_to_json(const Handoff__Patient *p)
{
    json_t *o = json_object();
    if (!p)
        return o;
    put_string(o, "given_name", p->given_name);
    put_string(o, "family_name", p->family_name);
    put_string(o, "birth_date", p->birth_date);
    put_string(o, "phone", p->phone);
    put_string(o, "email", p->email);
    put_string(o, "health_card", p->health_card);
    put_string(o, "language", p->language);
    put_string(o, "postal_code", p->postal_code);
    return o;
}

static json_t *referrer_to_json(const Handoff__Referrer *r)
{
    json_t *o = json_object();
    if (!r)
        return o;
    put_string(o, "name", r->name);
    if (r->discipline)
        put_string(o, "discipline", hx_discipline_text(r->discipline));
    put_string(o, "registration_body", r->registration_body);
    put_string(o, "registration_number", r->registration_number);
    put_string(o, "clinic_id", r->clinic_id);
    put_string(o, "phone", r->phone);
    put_string(o, "email", r->email);
    put_string(o, "province", r->province);
    put_string(o, "registration_kind", r->registration_kind);
    return o;
}

/* The referrer as a receiving clinic reads it: also "registration", its body, number and
 * which kind of body it is ("MTAA 12345 (association: massage therapy is not regulated by a
 * college in AB)"). */
static json_t *referrer_view_json(const Handoff__Referrer *r)
{
    json_t *o = referrer_to_json(r);
    char text[224];
    put_string(o, "registration", hx_registration_text(r, text, sizeof text));
    return o;
}

static json_t *preferences_to_json(const Handoff__Preferences *p)
{
    json_t *o = json_object();
    put_strings(o, "clinic_ids", p->clinic_ids, p->n_clinic_ids, false);
    put_string(o, "language", p->language);
    json_object_set_new(o, "virtual_ok", json_boolean(p->virtual_ok));
    if (p->n_availability) {
        json_t *a = json_array();
        for (size_t i = 0; i < p->n_availability; i++) {
            const Handoff__Availability *w = p->availability[i];
            if (!w)
                continue;
            json_t *x = json_object();
            json_object_set_new(x, "day", json_integer(w->day));
            put_string(x, "from", w->from);
            put_string(x, "to", w->to);
            json_array_append_new(a, x);
        }
        json_object_set_new(o, "availability", a);
    }
    if (p->massage_minutes)
        json_object_set_new(o, "massage_minutes", json_integer(p->massage_minutes));
    return o;
}

json_t *hx_referral_to_json(const Handoff__Referral *r)
{
    if (!r)
        return NULL;
    json_t *o = json_object();
    put_string(o, "referral_id", r->referral_id);
    put_string(o, "ref", r->ref);
    put_string(o, "referring_clinic", r->referring_clinic);
    if (r->patient)
        json_object_set_new(o, "patient", patient_to_json(r->patient));
    if (r->referrer)
        json_object_set_new(o, "referrer", referrer_to_json(r->referrer));
    put_string(o, "reason", r->reason);
    put_strings(o, "conditions", r->conditions, r->n_conditions, false);
    put_strings(o, "findings", r->findings, r->n_findings, false);
    put_string(o, "history", r->history);
    put_string(o, "diagnosis", r->diagnosis);
    put_string(o, "current_treatment", r->current_treatment);
    if (r->priority)
        put_string(o, "priority", hx_priority_text(r->priority));
    if (r->consent)
        put_string(o, "consent", hx_consent_text(r->consent));
    put_string(o, "referral_date", r->referral_date);
    put_string(o, "expectations", r->expectations);
    if (r->preferences)
        json_object_set_new(o, "preferences", preferences_to_json(r->preferences));
    return o;
}

json_t *hx_booking_to_json(const Handoff__Booking *b)
{
    if (!b)
        return NULL;
    json_t *o = json_object();
    put_string(o, "referral_id", b->referral_id);
    json_object_set_new(o, "discipline", json_string(hx_discipline_text(b->discipline)));
    put_string(o, "therapist_id", b->therapist_id);
    put_string(o, "therapist_name", b->therapist_name);
    put_string(o, "clinic_id", b->clinic_id);
    put_string(o, "start", b->start);
    put_string(o, "start_utc", b->start_utc);
    put_string(o, "time_zone", b->time_zone);
    put_string(o, "utc_offset", b->utc_offset);
    json_object_set_new(o, "minutes", json_integer(b->minutes));
    json_object_set_new(o, "virtual", json_boolean(b->virtual_));
    if (b->distance_known)
        json_object_set_new(o, "distance_km", json_real(round(b->distance_km * 10) / 10));
    return o;
}

json_t *hx_handoff_status_to_json(const Handoff__HandoffStatus *h)
{
    if (!h)
        return NULL;
    json_t *o = json_object();
    json_object_set_new(o, "discipline", json_string(hx_discipline_text(h->discipline)));
    json_object_set_new(o, "status", json_string(hx_status_text(h->status)));
    put_string(o, "clinic_id", h->clinic_id);
    put_string(o, "therapist_id", h->therapist_id);
    put_string(o, "therapist_name", h->therapist_name);
    put_string(o, "event", h->event);
    put_string(o, "reason", h->reason);
    if (h->wait_position) {                     /* on the wait list (docs/PROTOCOL.md "Wait list") */
        json_object_set_new(o, "wait_position", json_integer(h->wait_position));
        json_object_set_new(o, "wait_length", json_integer(h->wait_length));
        put_string(o, "wait_estimate", h->wait_estimate);
        json_object_set_new(o, "wait_since_ms", json_integer((json_int_t)h->wait_since_ms));
    }
    if (h->escalated)
        json_object_set_new(o, "escalated", json_true());
    return o;
}

/* One evidence line: the rule, where and how it was read, and whether it counted. */
static json_t *evidence_to_json(const Handoff__TriageEvidence *e)
{
    json_t *o = json_object();
    put_string(o, "rule", e->rule);
    put_string(o, "source", e->source);
    put_string(o, "words", e->words);
    json_object_set_new(o, "fired", json_boolean(e->fired));
    put_string(o, "status", e->status);
    put_string(o, "cue", e->cue);
    put_string(o, "snomed", e->snomed);
    put_string(o, "snomed_display", e->snomed_display);
    put_string(o, "note", e->note);
    return o;
}

json_t *hx_decision_to_json(const Handoff__TriageDecision *d)
{
    if (!d)
        return NULL;
    json_t *o = json_object();
    json_t *disc = json_array();
    for (size_t i = 0; i < d->n_disciplines; i++)
        json_array_append_new(disc, json_string(hx_discipline_text(d->disciplines[i])));
    json_object_set_new(o, "disciplines", disc);
    if (d->priority)
        put_string(o, "priority", hx_priority_text(d->priority));
    json_object_set_new(o, "red_flag", json_boolean(d->red_flag));
    json_object_set_new(o, "emergency", json_boolean(d->emergency));
    put_string(o, "reason", d->reason);
    put_strings(o, "rules", d->rules, d->n_rules, true);
    put_strings(o, "notes", d->notes, d->n_notes, true);
    json_object_set_new(o, "needs_review", json_boolean(d->needs_review));
    put_strings(o, "not_understood", d->not_understood, d->n_not_understood, false);
    if (d->n_suggested) {
        json_t *sug = json_array();
        for (size_t i = 0; i < d->n_suggested; i++)
            json_array_append_new(sug, json_string(hx_discipline_text(d->suggested[i])));
        json_object_set_new(o, "suggested", sug);
    }
    if (d->n_evidence) {
        json_t *ev = json_array();
        for (size_t i = 0; i < d->n_evidence; i++)
            if (d->evidence[i])
                json_array_append_new(ev, evidence_to_json(d->evidence[i]));
        json_object_set_new(o, "evidence", ev);
    }
    return o;
}

json_t *hx_handoff_to_json(const Handoff__Handoff *h)
{
    if (!h)
        return NULL;
    const Handoff__Referral *r = h->referral;
    json_t *o = json_object();
    put_string(o, "referral_id", h->referral_id);
    if (r) {
        put_string(o, "ref", r->ref);
        put_string(o, "referring_clinic", r->referring_clinic);
    }
    Handoff__Priority prio = h->decision && h->decision->priority ? h->decision->priority
                             : r && r->priority                    ? r->priority
                                                                   : HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    put_string(o, "priority", hx_priority_text(prio));
    if (r) {
        /* What the receiving therapist needs to see the patient; never the preferences. */
        put_nonempty(o, "patient", patient_to_json(r->patient));
        put_nonempty(o, "referrer", referrer_view_json(r->referrer));
        put_string(o, "reason", r->reason);
        put_strings(o, "conditions", r->conditions, r->n_conditions, true);
        put_strings(o, "findings", r->findings, r->n_findings, false);
        put_string(o, "history", r->history);
        put_string(o, "diagnosis", r->diagnosis);
        put_string(o, "current_treatment", r->current_treatment);
        put_string(o, "expectations", r->expectations);
        put_string(o, "referral_date", r->referral_date);
    }
    if (h->booking)
        json_object_set_new(o, "booking", hx_booking_to_json(h->booking));
    if (h->decision)
        json_object_set_new(o, "decision", hx_decision_to_json(h->decision));
    return o;
}

json_t *hx_status_to_json(const Handoff__StatusUpdate *s)
{
    if (!s)
        return NULL;
    json_t *o = json_object();
    put_string(o, "referral_id", s->referral_id);
    put_string(o, "ref", s->ref);
    json_object_set_new(o, "status", json_string(hx_status_text(s->status)));
    put_string(o, "reason", s->reason);
    json_t *b = json_array();
    for (size_t i = 0; i < s->n_bookings; i++)
        if (s->bookings[i])
            json_array_append_new(b, hx_booking_to_json(s->bookings[i]));
    json_object_set_new(o, "bookings", b);
    put_string(o, "by", s->by);
    if (s->at_ms) {
        json_object_set_new(o, "at_ms", json_integer((json_int_t)(s->at_ms > INT64_MAX ? INT64_MAX : s->at_ms)));
        time_t secs = (time_t)(s->at_ms / 1000);
        struct tm tm;
        char at[32];
        if (gmtime_r(&secs, &tm) && strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm))
            json_object_set_new(o, "at", json_string(at));
    }
    if (s->decision)
        json_object_set_new(o, "decision", hx_decision_to_json(s->decision));
    put_string(o, "event", s->event);
    json_object_set_new(o, "refused", json_boolean(s->refused));
    json_t *h = json_array();
    for (size_t i = 0; i < s->n_handoffs; i++)
        if (s->handoffs[i])
            json_array_append_new(h, hx_handoff_status_to_json(s->handoffs[i]));
    json_object_set_new(o, "handoffs", h);
    return o;
}
