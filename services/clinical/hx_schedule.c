/* hx_schedule — therapist directory, booking calendar and slot finder (see hx_schedule.h).
 *
 * Directory file (deploy/sample/directory.json):
 *   {"version": 1,                                                      optional
 *    "clinics": [{"id": "northpoint", "name": "...", "city": "..."}],   city optional
 *    "therapists": [{"id": "t-amira", "name": "...", "discipline": "physiotherapy",
 *                    "registration": "CPO 14523", "clinic_id": "northpoint",
 *                    "languages": ["en", "ar"], "virtual": true,       virtual optional
 *                    "hours": [{"day": 1, "from": "08:00", "to": "16:00"}]}]}
 * Ids are [a-z0-9-], 1..31 characters, unique among clinics and among therapists. A
 * therapist's weekly windows (at most 21) may not overlap; "to" may be "24:00".
 *
 * Slot finding walks day by day and, inside a day, from window to window (the therapist's
 * hours intersected with the patient's availability); inside a window it jumps over
 * bookings with a binary search, so nights and booked stretches cost nothing per minute. */
#include "hx_schedule.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

#include "hx_place.h"
#include "hx_refjson.h"
#include "hx_registration.h"
#include "hx_util.h"

#define DAY_MINUTES 1440
#define GRID 15
#define MAX_CLINICS 1000
#define MAX_THERAPISTS 10000
#define MAX_HOURS (sizeof(((hx_therapist_t *)0)->hours) / sizeof(hx_window_t))

typedef char path_t[96];

/* ---- minutes ------------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static hx_minute_t ceil_grid(hx_minute_t m)
{
    return -floor_div(-m, GRID) * GRID;
}

int hx_minute_parse(const char *s, hx_minute_t *out)
{
    char date[11];
    int64_t days;
    unsigned hm;
    if (!s || !out || strlen(s) != 16 || s[10] != 'T')
        return -1;
    memcpy(date, s, 10);
    date[10] = '\0';
    if (hx_date_parse(date, &days) != 0 || hx_hhmm_parse(s + 11, false, &hm) != 0)
        return -1;
    *out = days * DAY_MINUTES + hm;
    return 0;
}

void hx_minute_format(hx_minute_t m, char out[17])
{
    if (m < HX_MINUTE_MIN)
        m = HX_MINUTE_MIN;
    if (m > HX_MINUTE_MAX)
        m = HX_MINUTE_MAX;
    int64_t days = floor_div(m, DAY_MINUTES);
    int mins = (int)(m - days * DAY_MINUTES);
    int64_t y;
    unsigned mo, d;
    hx_civil_from_days(days, &y, &mo, &d);
    const unsigned yy = (unsigned)y, hh = (unsigned)mins / 60, mm = (unsigned)mins % 60;
    const unsigned parts[5] = {yy, mo, d, hh, mm};
    char *o = out;
    for (int k = 0; k < 5; k++) {
        unsigned v = parts[k];
        if (k == 0) {
            *o++ = (char)('0' + v / 1000 % 10);
            *o++ = (char)('0' + v / 100 % 10);
        }
        *o++ = (char)('0' + v / 10 % 10);
        *o++ = (char)('0' + v % 10);
        if (k < 4)
            *o++ = "--T:"[k];
    }
    *o = '\0';
}

uint32_t hx_session_minutes(Handoff__Discipline d, uint32_t massage_minutes)
{
    if (d == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY) {
        switch (massage_minutes) {
        case 30:
        case 45:
        case 60:
        case 90:
            return massage_minutes;
        default:
            return 60;  /* a relaxation session is about an hour */
        }
    }
    return 60;          /* physiotherapy initial assessment: 40-60 min, booked as 60 */
}

uint32_t hx_session_minutes_min(Handoff__Discipline d)
{
    return d == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? hx_session_minutes(d, 30) : hx_session_minutes(d, 0);
}

/* ---- directory ----------------------------------------------------------------------- */

typedef struct id_index {
    const char *id;     /* points into the clinic or therapist record */
    size_t index;
    UT_hash_handle hh;
} id_index_t;

#define ZONES_MAX 64

struct hx_directory {
    hx_clinic_t *clinics;
    size_t n_clinics;
    hx_therapist_t *therapists;
    size_t n_therapists;
    id_index_t *clinic_ids;         /* hash heads */
    id_index_t *therapist_ids;
    id_index_t *pool;               /* one block holding every hash entry */
    hx_tz_t *zones[ZONES_MAX];      /* every zone a clinic uses, once; zones[0] the default */
    size_t n_zones;
    hx_area_t *areas;               /* where patients of a forward sortation area are */
    size_t n_areas;
    uint64_t serial;                /* this directory among all loaded in the process (the calendar's frontiers) */
    char notes[512];
};

void hx_directory_destroy(hx_directory_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_directory_t *self = *self_p;
    HASH_CLEAR(hh, self->clinic_ids);
    HASH_CLEAR(hh, self->therapist_ids);
    for (size_t i = 0; i < self->n_zones; i++)
        hx_tz_destroy(&self->zones[i]);
    free(self->areas);
    free(self->pool);
    free(self->clinics);
    free(self->therapists);
    free(self);
    *self_p = NULL;
}

size_t hx_directory_therapists(const hx_directory_t *d, const hx_therapist_t **out)
{
    if (out)
        *out = d ? d->therapists : NULL;
    return d ? d->n_therapists : 0;
}

size_t hx_directory_clinics(const hx_directory_t *d, const hx_clinic_t **out)
{
    if (out)
        *out = d ? d->clinics : NULL;
    return d ? d->n_clinics : 0;
}

static const id_index_t *lookup(const id_index_t *head, const char *id)
{
    id_index_t *it = NULL;
    if (id)
        HASH_FIND_STR((id_index_t *)head, id, it);
    return it;
}

const hx_clinic_t *hx_directory_clinic(const hx_directory_t *d, const char *id)
{
    const id_index_t *it = d ? lookup(d->clinic_ids, id) : NULL;
    return it ? &d->clinics[it->index] : NULL;
}

const hx_therapist_t *hx_directory_therapist(const hx_directory_t *d, const char *id)
{
    const id_index_t *it = d ? lookup(d->therapist_ids, id) : NULL;
    return it ? &d->therapists[it->index] : NULL;
}

static void path_key(path_t out, const char *base, const char *key)
{
    hx_path_key(out, sizeof(path_t), base, key);
}

/* Copies a string member into a fixed field of cap bytes. Returns true on success. */
static bool copy_string(char *dst, size_t cap, const json_t *v, const char *path, bool allow_empty,
                        hx_errors_t *e)
{
    if (!json_is_string(v)) {
        hx_errors_add(e, path, "must be a string");
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n) {
        hx_errors_add(e, path, "must not contain NUL characters");
        return false;
    }
    if (!allow_empty && hx_is_blank(s)) {
        hx_errors_add(e, path, "must not be empty");
        return false;
    }
    if (n >= cap) {
        hx_errors_add(e, path, "must be at most %zu bytes (UTF-8)", cap - 1);
        return false;
    }
    memcpy(dst, s, n + 1);
    return true;
}

static void copy_id(char *dst, const json_t *v, const char *path, hx_errors_t *e)
{
    if (!copy_string(dst, 32, v, path, false, e))
        return;
    if (!hx_is_id(dst)) {
        hx_errors_add(e, path, "must be an id (a-z, 0-9, -; at most %d characters)", HX_ID_MAX);
        dst[0] = '\0';
    }
}

static void require(const json_t *obj, const char *key, const char *base, hx_errors_t *e)
{
    if (!json_object_get(obj, key)) {
        path_t p;
        path_key(p, base, key);
        hx_errors_add(e, p, "required");
    }
}

/* The zone called name, loaded once per directory; NULL (error added at path) when it is
 * not one. */
static const hx_tz_t *zone(hx_directory_t *d, const char *name, const char *path, hx_errors_t *e)
{
    for (size_t i = 0; i < d->n_zones; i++)
        if (!strcmp(hx_tz_name(d->zones[i]), name))
            return d->zones[i];
    char why[256];
    if (d->n_zones == ZONES_MAX) {
        hx_errors_add(e, path, "more than %d time zones in one directory", ZONES_MAX);
        return NULL;
    }
    hx_tz_t *z = hx_tz_load(name, why, sizeof why);
    if (!z) {
        hx_errors_add(e, path, "%s", why);
        return NULL;
    }
    return d->zones[d->n_zones++] = z;
}

/* A clinic's keys besides id, name and city: where it is, its zone, when it is closed. */
static bool parse_clinic_place(hx_directory_t *d, const char *key, const json_t *v, const char *p, hx_clinic_t *c,
                               hx_errors_t *e)
{
    if (!strcmp(key, "province"))
        hx_place_parse_province(v, p, c, e);
    else if (!strcmp(key, "location"))
        hx_place_parse_location(v, p, c, e);
    else if (!strcmp(key, "closures"))
        hx_place_parse_closures(v, p, c, e);
    else if (!strcmp(key, "time_zone")) {
        const hx_tz_t *z = json_is_string(v) ? zone(d, json_string_value(v), p, e) : NULL;
        if (!json_is_string(v))
            hx_errors_add(e, p, "must be a string: an IANA time zone such as America/Toronto");
        if (z) {
            c->tz = z;
            c->zoned = true;
        }
    } else
        return false;
    return true;
}

static void parse_clinic(hx_directory_t *d, const json_t *j, const char *base, hx_clinic_t *c, hx_errors_t *e)
{
    if (!json_is_object(j)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t p;
        path_key(p, base, key);
        if (!strcmp(key, "id"))
            copy_id(c->id, v, p, e);
        else if (!strcmp(key, "name"))
            copy_string(c->name, sizeof c->name, v, p, false, e);
        else if (!strcmp(key, "city"))
            copy_string(c->city, sizeof c->city, v, p, true, e);
        else if (!parse_clinic_place(d, key, v, p, c, e))
            hx_errors_add(e, p, "unknown field");
    }
    require(j, "id", base, e);
    require(j, "name", base, e);
    if (!c->tz) {                   /* the directory's zone, or UTC */
        c->tz = d->zones[0];
        c->zoned = d->n_zones > 0 && strcmp(hx_tz_name(d->zones[0]), "UTC") != 0;
    }
}

static void parse_hours(const json_t *j, const char *base, hx_therapist_t *t, hx_errors_t *e)
{
    if (!json_is_array(j)) {
        hx_errors_add(e, base, "must be an array of {\"day\", \"from\", \"to\"}");
        return;
    }
    size_t n = json_array_size(j);
    if (n > sizeof t->hours / sizeof t->hours[0]) {
        hx_errors_add(e, base, "must have at most %zu windows (has %zu)",
                      sizeof t->hours / sizeof t->hours[0], n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *w = json_array_get(j, i);
        path_t wp;
        hx_path_index(wp, sizeof wp, base, i);
        if (!json_is_object(w)) {
            hx_errors_add(e, wp, "must be an object");
            continue;
        }
        bool ok = true;
        unsigned day = 0, from = 0, to = 0;
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)w, key, v) {
            path_t p;
            path_key(p, wp, key);
            if (!strcmp(key, "day")) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 7) {
                    hx_errors_add(e, p, "must be 1 (Monday) to 7 (Sunday)");
                    ok = false;
                } else {
                    day = (unsigned)json_integer_value(v);
                }
            } else if (!strcmp(key, "from") || !strcmp(key, "to")) {
                bool is_to = key[0] == 't';
                if (!json_is_string(v) ||
                    hx_hhmm_parse(json_string_value(v), is_to, is_to ? &to : &from) != 0) {
                    hx_errors_add(e, p, "must be a time HH:MM (00:00 to %s)", is_to ? "24:00" : "23:59");
                    ok = false;
                }
            } else {
                hx_errors_add(e, p, "unknown field");
                ok = false;
            }
        }
        static const char *const need[] = {"day", "from", "to"};
        for (size_t k = 0; k < 3; k++)
            if (!json_object_get(w, need[k])) {
                require(w, need[k], wp, e);
                ok = false;
            }
        if (!ok)
            continue;
        if (to <= from) {
            path_t p;
            path_key(p, wp, "to");
            hx_errors_add(e, p, "must be after from (%02u:%02u)", from / 60, from % 60);
            continue;
        }
        bool overlap = false;
        for (size_t k = 0; k < t->n_hours && !overlap; k++) {
            const hx_window_t *o = &t->hours[k];
            if (o->day == day && from < o->to && o->from < to) {
                hx_errors_add(e, wp, "overlaps another window on day %u (%02u:%02u-%02u:%02u)", day,
                              o->from / 60, o->from % 60, o->to / 60, o->to % 60);
                overlap = true;
            }
        }
        if (!overlap)
            t->hours[t->n_hours++] = (hx_window_t){.day = (uint8_t)day, .from = (uint16_t)from,
                                                   .to = (uint16_t)to};
    }
}

static void parse_languages(const json_t *j, const char *base, hx_therapist_t *t, hx_errors_t *e)
{
    const size_t max = sizeof t->languages / sizeof t->languages[0];
    if (!json_is_array(j)) {
        hx_errors_add(e, base, "must be an array of language codes");
        return;
    }
    size_t n = json_array_size(j);
    if (n == 0 || n > max) {
        hx_errors_add(e, base, "must list 1 to %zu languages (has %zu)", max, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        path_t p;
        hx_path_index(p, sizeof p, base, i);
        const json_t *v = json_array_get(j, i);
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        size_t len = s ? strlen(s) : 0;
        if (!s || len < 2 || len > 3 || strspn(s, "abcdefghijklmnopqrstuvwxyz") != len) {
            hx_errors_add(e, p, "must be a lowercase ISO 639 language code such as \"en\"");
            continue;
        }
        memcpy(t->languages[t->n_languages++], s, len + 1);
    }
}

static void parse_therapist(const json_t *j, const char *base, hx_therapist_t *t, hx_errors_t *e)
{
    if (!json_is_object(j)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t p;
        path_key(p, base, key);
        if (!strcmp(key, "id")) {
            copy_id(t->id, v, p, e);
        } else if (!strcmp(key, "name")) {
            copy_string(t->name, sizeof t->name, v, p, false, e);
        } else if (!strcmp(key, "discipline")) {
            Handoff__Discipline d = json_is_string(v) ? hx_discipline_from_text(json_string_value(v)) : 0;
            if (d != HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY &&
                d != HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY)
                hx_errors_add(e, p, "must be \"physiotherapy\" or \"massage_therapy\"");
            else
                t->discipline = d;
        } else if (!strcmp(key, "registration")) {
            copy_string(t->registration, sizeof t->registration, v, p, false, e);
        } else if (!strcmp(key, "clinic_id")) {
            copy_id(t->clinic_id, v, p, e);
        } else if (!strcmp(key, "languages")) {
            parse_languages(v, p, t, e);
        } else if (!strcmp(key, "virtual")) {
            if (!json_is_boolean(v))
                hx_errors_add(e, p, "must be true or false");
            else
                t->virtual_ok = json_is_true(v);
        } else if (!strcmp(key, "hours")) {
            parse_hours(v, p, t, e);
        } else {
            hx_errors_add(e, p, "unknown field");
        }
    }
    static const char *const need[] = {"id", "name", "discipline", "registration", "clinic_id",
                                       "languages", "hours"};
    for (size_t k = 0; k < sizeof need / sizeof need[0]; k++)
        require(j, need[k], base, e);
}

/* A therapist's registration as shown on receipts, "BODY NUMBER" ("CPO 14523", "CCHPBC 20417"):
 * a body registering its discipline in its clinic's province (the registration file's; ON when
 * the clinic names none), the number as that body writes it. */
static void check_registration(const hx_therapist_t *t, const char *base, hx_errors_t *e)
{
    const char *prov = t->clinic && t->clinic->province[0] ? t->clinic->province : HX_PROVINCE_DEFAULT;
    const hx_registration_t *reg = hx_registration_builtin();
    size_t n_bodies = 0;
    const hx_body_t *bodies = reg ? hx_registration_bodies(reg, prov, t->discipline, &n_bodies) : NULL;
    if (!t->registration[0] || !t->discipline || n_bodies == 0)
        return;
    const char *sp = strchr(t->registration, ' ');
    char acronym[HX_REG_ACRONYM_MAX + 1] = "";
    if (sp && (size_t)(sp - t->registration) <= HX_REG_ACRONYM_MAX)
        snprintf(acronym, sizeof acronym, "%.*s", (int)(sp - t->registration), t->registration);
    const hx_body_t *b = hx_registration_find(reg, prov, t->discipline, acronym);
    const char *num = sp ? sp + 1 : "";
    size_t n = strlen(num);
    bool ok = b && n >= b->min && n <= b->max &&
              strspn(num, b->digits ? "0123456789" : "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-") == n;
    if (ok)
        return;
    const hx_body_t *x = b ? b : &bodies[0];
    char names[128] = "";
    size_t len = 0;
    for (size_t i = 0; i < n_bodies && len < sizeof names; i++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s\"%s\"", i ? (i + 1 == n_bodies ? " or " : ", ") : "",
                                bodies[i].acronym);
    path_t p;
    path_key(p, base, "registration");
    bool physio = t->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    hx_errors_add(e, p, "must be %s and %u to %u %s for a %s in %s (e.g. \"%s %s\")", names, x->min, x->max,
                  x->digits ? "digits" : "letters, digits or hyphens", physio ? "physiotherapist" : "massage therapist",
                  prov, x->acronym, x->digits ? "14523" : "A-1452");
}

/* The top level's fields: version 1, clinics and therapists arrays of bounded length, nothing
 * else. */
static void directory_check_top(const json_t *root, const json_t *clinics, const json_t *therapists,
                                hx_errors_t *e)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        if (!strcmp(key, "version")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2)
                hx_errors_add(e, key, "must be 1 or 2");
        } else if (strcmp(key, "clinics") != 0 && strcmp(key, "therapists") != 0 && strcmp(key, "time_zone") != 0 &&
                   strcmp(key, "areas") != 0) {
            hx_errors_add(e, key, "unknown field");
        }
    }
    if (!clinics)
        hx_errors_add(e, "clinics", "required");
    else if (!json_is_array(clinics))
        hx_errors_add(e, "clinics", "must be an array");
    else if (json_array_size(clinics) > MAX_CLINICS)
        hx_errors_add(e, "clinics", "must have at most %d entries", MAX_CLINICS);
    if (!therapists)
        hx_errors_add(e, "therapists", "required");
    else if (!json_is_array(therapists))
        hx_errors_add(e, "therapists", "must be an array");
    else if (json_array_size(therapists) > MAX_THERAPISTS)
        hx_errors_add(e, "therapists", "must have at most %d entries", MAX_THERAPISTS);
}

/* An empty directory with room for nc clinics, nt therapists and their index entries. */
static hx_directory_t *directory_alloc(size_t nc, size_t nt, hx_errors_t *e)
{
    hx_directory_t *d = calloc(1, sizeof *d);
    if (!d || !(d->clinics = calloc(nc + 1, sizeof *d->clinics)) ||
        !(d->therapists = calloc(nt + 1, sizeof *d->therapists)) ||
        !(d->pool = calloc(nc + nt + 1, sizeof *d->pool))) {
        hx_directory_destroy(&d);
        hx_errors_add(e, "", "out of memory");
        return NULL;
    }
    static _Atomic uint64_t serials;
    d->serial = ++serials;
    return d;
}

/* Clinic i (j) into d, indexed by its id through the next pool entry (*slot) unless the id
 * is missing or a duplicate. */
static void directory_add_clinic(hx_directory_t *d, const json_t *j, size_t i, id_index_t **slot, hx_errors_t *e)
{
    path_t p;
    snprintf(p, sizeof p, "clinics[%zu]", i);
    hx_clinic_t *c = &d->clinics[d->n_clinics++];
    parse_clinic(d, j, p, c, e);
    if (!c->id[0])
        return;
    const id_index_t *dup = lookup(d->clinic_ids, c->id);
    if (dup) {
        path_t ip;
        path_key(ip, p, "id");
        hx_errors_add(e, ip, "duplicate of clinics[%zu].id (\"%s\")", dup->index, c->id);
        return;
    }
    id_index_t *s = (*slot)++;
    s->id = c->id;
    s->index = i;
    HASH_ADD_KEYPTR(hh, d->clinic_ids, s->id, strlen(s->id), s);
}

/* Therapist i (j) into d, its clinic checked, indexed by its id through the next pool entry
 * (*slot) unless the id is missing or a duplicate. */
static void directory_add_therapist(hx_directory_t *d, const json_t *j, size_t i, id_index_t **slot,
                                    hx_errors_t *e)
{
    path_t p;
    snprintf(p, sizeof p, "therapists[%zu]", i);
    hx_therapist_t *t = &d->therapists[d->n_therapists++];
    parse_therapist(j, p, t, e);
    const id_index_t *ci = t->clinic_id[0] ? lookup(d->clinic_ids, t->clinic_id) : NULL;
    if (t->clinic_id[0] && !ci) {
        path_t cp;
        path_key(cp, p, "clinic_id");
        hx_errors_add(e, cp, "no clinic with id \"%s\"", t->clinic_id);
    }
    t->clinic = ci ? &d->clinics[ci->index] : NULL;
    check_registration(t, p, e);
    if (!t->id[0])
        return;
    const id_index_t *dup = lookup(d->therapist_ids, t->id);
    if (dup) {
        path_t ip;
        path_key(ip, p, "id");
        hx_errors_add(e, ip, "duplicate of therapists[%zu].id (\"%s\")", dup->index, t->id);
        return;
    }
    id_index_t *s = (*slot)++;
    s->id = t->id;
    s->index = i;
    HASH_ADD_KEYPTR(hh, d->therapist_ids, s->id, strlen(s->id), s);
}

/* Lists up to four ids of clinics that fail pred into out ("a, b, c, ..."); returns how many fail. */
static size_t clinics_without(const hx_directory_t *d, bool (*has)(const hx_clinic_t *), char *out, size_t cap)
{
    size_t n = 0, len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->n_clinics; i++) {
        if (has(&d->clinics[i]))
            continue;
        if (n < 4 && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", n ? ", " : "", d->clinics[i].id);
        else if (n == 4 && len < cap)
            len += (size_t)snprintf(out + len, cap - len, ", ...");
        n++;
    }
    return n;
}

static bool has_location(const hx_clinic_t *c)
{
    return c->located;
}

static bool has_zone(const hx_clinic_t *c)
{
    return c->zoned;
}

static void directory_notes(hx_directory_t *d)
{
    char ids[160];
    size_t len = 0, n = clinics_without(d, has_location, ids, sizeof ids);
    if (n)
        len += (size_t)snprintf(d->notes, sizeof d->notes, "%zu clinic(s) without a location (%s): no distances "
                                "for them, never near a collaborative pair; ", n, ids);
    n = clinics_without(d, has_zone, ids, sizeof ids);
    if (n && len < sizeof d->notes)
        snprintf(d->notes + len, sizeof d->notes - len, "%zu clinic(s) without a time zone (%s): their hours are "
                 "read as UTC, the network time of a directory without zones", n, ids);
}

const hx_tz_t *hx_directory_zone(const hx_directory_t *d)
{
    return d->zones[0];
}

const char *hx_directory_notes(const hx_directory_t *d)
{
    return d->notes;
}

int hx_directory_locate(const hx_directory_t *d, const char *postal_code, double *lat, double *lon)
{
    char fsa[4], other[4];
    if (!d || hx_place_fsa(postal_code, fsa) != 0)
        return -1;
    for (size_t i = 0; i < d->n_areas; i++)
        if (!strcmp(d->areas[i].fsa, fsa)) {
            *lat = d->areas[i].lat;
            *lon = d->areas[i].lon;
            return 0;
        }
    for (size_t i = 0; i < d->n_clinics; i++)
        if (d->clinics[i].located && hx_place_fsa(d->clinics[i].postal_code, other) == 0 && !strcmp(fsa, other)) {
            *lat = d->clinics[i].lat;
            *lon = d->clinics[i].lon;
            return 0;
        }
    return -1;
}

static bool closed_day(const hx_clinic_t *c, int64_t day)
{
    for (size_t i = 0; c && i < c->n_closures; i++)
        if (day >= c->closures[i].from_day && day <= c->closures[i].to_day)
            return true;
    return false;
}

bool hx_clinic_closed(const hx_clinic_t *c, hx_minute_t utc)
{
    return closed_day(c, floor_div(hx_tz_to_local(c->tz, utc), DAY_MINUTES));
}

static hx_directory_t *directory_from_json(const json_t *root, hx_errors_t *e)
{
    const size_t before = e->count + e->dropped;
    if (!json_is_object(root)) {
        hx_errors_add(e, "", "the directory must be a JSON object");
        return NULL;
    }
    const json_t *clinics = json_object_get(root, "clinics");
    const json_t *therapists = json_object_get(root, "therapists");
    directory_check_top(root, clinics, therapists, e);
    if (e->count + e->dropped > before)
        return NULL;

    size_t nc = json_array_size(clinics), nt = json_array_size(therapists);
    hx_directory_t *d = directory_alloc(nc, nt, e);
    if (!d)
        return NULL;
    const json_t *tz = json_object_get(root, "time_zone"), *areas = json_object_get(root, "areas");
    if (tz && !json_is_string(tz))
        hx_errors_add(e, "time_zone", "must be a string: an IANA time zone such as America/Toronto");
    if (!zone(d, tz && json_is_string(tz) ? json_string_value(tz) : "UTC", "time_zone", e)) {
        hx_directory_destroy(&d);
        return NULL;
    }
    if (areas)
        d->areas = hx_place_parse_areas(areas, "areas", &d->n_areas, e);
    id_index_t *slot = d->pool;
    for (size_t i = 0; i < nc; i++)
        directory_add_clinic(d, json_array_get(clinics, i), i, &slot, e);
    for (size_t i = 0; i < nt; i++)
        directory_add_therapist(d, json_array_get(therapists, i), i, &slot, e);
    if (e->count + e->dropped > before)
        hx_directory_destroy(&d);
    if (d)
        directory_notes(d);
    return d;
}

static hx_directory_t *hx_directory_read(const char *path, const char *text, hx_errors_t *errs)
{
    hx_errors_t local;
    if (!errs) {
        hx_errors_clear(&local);
        errs = &local;
    }
    json_t *root = hx_json_read(path, text, "directory file", errs);
    if (!root)
        return NULL;
    hx_directory_t *out = directory_from_json(root, errs);
    json_decref(root);
    return out;
}

hx_directory_t *hx_directory_parse(const char *text, hx_errors_t *errs)
{
    return hx_directory_read(NULL, text, errs);
}

hx_directory_t *hx_directory_load(const char *path, hx_errors_t *errs)
{
    return hx_directory_read(path, NULL, errs);
}

/* ---- calendar ------------------------------------------------------------------------ */

typedef struct {
    hx_minute_t start, end;     /* [start, end) */
} span_t;

/* What the slot finder learned about one therapist for sessions of `minutes` in the directory
 * numbered `serial`: no start fits the therapist's hours and the bookings anywhere in
 * [from, to). A new booking only takes starts away, so it stays true; a cancellation cuts it
 * back to before the freed span. The finder starts each search of this therapist at `to`
 * (when its own start lies in [from, to]) and moves `to` on past what has filled since, so a
 * filling calendar costs a search the days that filled since the last one, not every booked
 * day up to the first free one. The patient's windows only ever take starts away, so a
 * frontier learned without them holds for every query. */
typedef struct {
    uint64_t serial;            /* 0: unused */
    uint64_t used;              /* the finder's clock when last used (the least recent is replaced) */
    uint32_t minutes;
    hx_minute_t from, to;
} frontier_t;

#define FRONTIERS 6

typedef struct cal_entry {
    char *therapist_id;
    span_t *spans;              /* sorted by start, never overlapping (so ends are sorted too) */
    size_t n, cap;
    frontier_t frontiers[FRONTIERS];
    UT_hash_handle hh;
} cal_entry_t;

struct hx_calendar {
    cal_entry_t *by_therapist;
    uint64_t searches;          /* the frontiers' clock */
};

hx_calendar_t *hx_calendar_new(void)
{
    return calloc(1, sizeof(hx_calendar_t));
}

void hx_calendar_destroy(hx_calendar_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_calendar_t *self = *self_p;
    cal_entry_t *it, *tmp;
    HASH_ITER(hh, self->by_therapist, it, tmp) {
        HASH_DEL(self->by_therapist, it);
        free(it->therapist_id);
        free(it->spans);
        free(it);
    }
    free(self);
    *self_p = NULL;
}

static const cal_entry_t *cal_find(const hx_calendar_t *c, const char *id)
{
    cal_entry_t *it = NULL;
    if (c && id)
        HASH_FIND_STR(c->by_therapist, id, it);
    return it;
}

/* Index of the first booking ending after t (n when none). */
static size_t first_ending_after(const cal_entry_t *b, hx_minute_t t)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->spans[mid].end <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool span_ok(hx_minute_t start, uint32_t minutes)
{
    return minutes > 0 && start >= HX_MINUTE_MIN && start <= HX_MINUTE_MAX;
}

bool hx_calendar_free(const hx_calendar_t *c, const char *therapist_id, hx_minute_t start, uint32_t minutes)
{
    if (minutes == 0)
        return true;
    if (!span_ok(start, minutes))
        return false;
    const cal_entry_t *b = cal_find(c, therapist_id);
    if (!b)
        return true;
    size_t i = first_ending_after(b, start);
    return i == b->n || b->spans[i].start >= start + (hx_minute_t)minutes;
}

int hx_calendar_book(hx_calendar_t *c, const char *therapist_id, hx_minute_t start, uint32_t minutes)
{
    if (!c || !therapist_id || !*therapist_id || !span_ok(start, minutes))
        return -1;
    if (!hx_calendar_free(c, therapist_id, start, minutes))
        return -1;
    cal_entry_t *b = (cal_entry_t *)cal_find(c, therapist_id);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || !(b->therapist_id = strdup(therapist_id))) {
            free(b);
            return -1;
        }
        HASH_ADD_KEYPTR(hh, c->by_therapist, b->therapist_id, strlen(b->therapist_id), b);
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        span_t *grown = realloc(b->spans, cap * sizeof *grown);
        if (!grown)
            return -1;
        b->spans = grown;
        b->cap = cap;
    }
    size_t i = first_ending_after(b, start);
    memmove(&b->spans[i + 1], &b->spans[i], (b->n - i) * sizeof *b->spans);
    b->spans[i] = (span_t){start, start + (hx_minute_t)minutes};
    b->n++;
    return 0;
}

int hx_calendar_cancel(hx_calendar_t *c, const char *therapist_id, hx_minute_t start)
{
    cal_entry_t *b = (cal_entry_t *)cal_find(c, therapist_id);
    if (!b)
        return -1;
    size_t i = first_ending_after(b, start);
    if (i == b->n || b->spans[i].start != start)
        return -1;
    /* starts from (start - minutes, end) may fit now: every frontier stops before them */
    for (size_t k = 0; k < FRONTIERS; k++) {
        frontier_t *f = &b->frontiers[k];
        hx_minute_t freed = start - (hx_minute_t)f->minutes;
        if (f->serial && b->spans[i].end > f->from && freed < f->to)
            f->to = freed > f->from ? freed : f->from;
    }
    memmove(&b->spans[i], &b->spans[i + 1], (b->n - i - 1) * sizeof *b->spans);
    b->n--;
    return 0;
}

void hx_calendar_forget(hx_calendar_t *c)
{
    cal_entry_t *it, *tmp;
    if (c)
        HASH_ITER(hh, c->by_therapist, it, tmp)
            memset(it->frontiers, 0, sizeof it->frontiers);
}

size_t hx_calendar_count(const hx_calendar_t *c, const char *therapist_id)
{
    const cal_entry_t *b = cal_find(c, therapist_id);
    return b ? b->n : 0;
}

/* ---- slot finder --------------------------------------------------------------------- */

typedef struct {
    uint8_t day;
    uint16_t from, to;
} iv_t;

static int iv_cmp(const void *a, const void *b)
{
    const iv_t *x = a, *y = b;
    if (x->day != y->day)
        return x->day < y->day ? -1 : 1;
    return x->from < y->from ? -1 : x->from > y->from;
}

/* The intervals of a week in which this therapist works and the patient can attend, at
 * least minutes long, bucketed by weekday: day k's are ivs[off[k] .. off[k+1]). */
static bool fits(unsigned from, unsigned to, uint32_t minutes)
{
    unsigned first = (from + GRID - 1) / GRID * GRID;   /* midnight is on the grid */
    return first + minutes <= to;
}

static size_t build_intervals(const hx_therapist_t *t, const iv_t *patient, size_t n_patient,
                              uint32_t minutes, iv_t *ivs, size_t off[9])
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_hours && i < MAX_HOURS; i++) {
        const hx_window_t *w = &t->hours[i];
        if (w->day < 1 || w->day > 7)
            continue;
        if (n_patient == 0) {
            if (fits(w->from, w->to, minutes))
                ivs[n++] = (iv_t){w->day, w->from, w->to};
            continue;
        }
        for (size_t k = 0; k < n_patient; k++) {
            const iv_t *p = &patient[k];
            if (p->day != w->day)
                continue;
            uint16_t a = w->from > p->from ? w->from : p->from;
            uint16_t b = w->to < p->to ? w->to : p->to;
            if (b > a && fits(a, b, minutes))
                ivs[n++] = (iv_t){w->day, a, b};
        }
    }
    qsort(ivs, n, sizeof *ivs, iv_cmp);
    size_t k = 0;
    for (unsigned day = 0; day <= 8; day++) {
        while (k < n && ivs[k].day < day)
            k++;
        off[day] = k;
    }
    return n;
}

static bool span_free(const cal_entry_t *bk, hx_minute_t s, uint32_t minutes)
{
    if (!bk)
        return true;
    size_t i = first_ending_after(bk, s);
    return i == bk->n || bk->spans[i].start >= s + (hx_minute_t)minutes;
}

/* The earliest grid start (UTC) in [t0, limit] inside [lo, hi) (UTC) free in bk. */
static bool interval_earliest(const cal_entry_t *bk, hx_minute_t lo, hx_minute_t hi, hx_minute_t t0,
                              hx_minute_t limit, uint32_t minutes, hx_minute_t *out)
{
    hx_minute_t s = ceil_grid(lo < t0 ? t0 : lo);
    size_t i = bk ? first_ending_after(bk, s) : 0;
    while (s + (hx_minute_t)minutes <= hi && s <= limit) {
        while (bk && i < bk->n && bk->spans[i].end <= s)
            i++;
        if (!bk || i == bk->n || bk->spans[i].start >= s + (hx_minute_t)minutes) {
            *out = s;
            return true;
        }
        s = ceil_grid(bk->spans[i].end);   /* jump past the booking in the way */
    }
    return false;
}

/* A day around which the clock changes: each grid start of each interval converted on its
 * own (a start the clock skips is no start; a session must end inside the interval by the
 * wall clock). */
static bool day_changing(const cal_entry_t *bk, const iv_t *ivs, size_t from, size_t to, const hx_tz_t *z,
                         hx_minute_t midnight, hx_minute_t t0, hx_minute_t limit, uint32_t minutes, hx_minute_t *out)
{
    bool found = false;
    for (size_t k = from; k < to; k++) {
        for (hx_minute_t l = ceil_grid(midnight + ivs[k].from); l + (hx_minute_t)minutes <= midnight + ivs[k].to;
             l += GRID) {
            hx_minute_t u;
            if (hx_tz_to_utc(z, l, &u) != 0 || u < t0 || u > limit || (found && u >= *out))
                continue;
            if (hx_tz_to_local(z, u + minutes) > midnight + ivs[k].to || !span_free(bk, u, minutes))
                continue;
            *out = u;
            found = true;
        }
    }
    return found;
}

/* Earliest grid start (UTC) in [t0, limit] for one therapist of clinic c, whose weekly
 * intervals (c's wall clock) are ivs; never on a day c is closed. */
static bool earliest(const cal_entry_t *bk, const iv_t *ivs, const size_t off[9], const hx_clinic_t *c,
                     hx_minute_t t0, hx_minute_t limit, uint32_t minutes, hx_minute_t *out)
{
    const hx_tz_t *z = c->tz;
    const int64_t last_day = floor_div(hx_tz_to_local(z, limit), DAY_MINUTES);
    for (int64_t day = floor_div(hx_tz_to_local(z, t0), DAY_MINUTES); day <= last_day; day++) {
        const unsigned wd = hx_weekday(day);
        if (off[wd] == off[wd + 1] || closed_day(c, day))
            continue;
        const hx_minute_t midnight = day * DAY_MINUTES;
        const int o = hx_tz_offset(z, midnight - hx_tz_offset(z, midnight));
        const hx_minute_t utc0 = midnight - o;
        if (hx_tz_next_change(z, utc0 - DAY_MINUTES) <= utc0 + 2 * DAY_MINUTES) {
            if (day_changing(bk, ivs, off[wd], off[wd + 1], z, midnight, t0, limit, minutes, out))
                return true;
            continue;
        }
        bool found = false;         /* the same offset all day: the intervals as UTC spans */
        hx_minute_t best = 0, s;
        for (size_t k = off[wd]; k < off[wd + 1]; k++)
            if (interval_earliest(bk, utc0 + ivs[k].from, utc0 + ivs[k].to, t0, found ? best - 1 : limit, minutes,
                                  &s) && (!found || s < best)) {
                found = true;
                best = s;
            }
        if (found) {
            *out = best;
            return true;
        }
    }
    return false;
}

static bool speaks(const hx_therapist_t *t, const char *lang)
{
    for (size_t i = 0; i < t->n_languages; i++)
        if (!strcasecmp(t->languages[i], lang))
            return true;
    return false;
}

/* The primary language subtag asked for ("fr" of "fr-CA") into lang; empty = any. -1 when it
 * is longer than any therapist's language code. */
static int query_language(const hx_slot_query_t *q, char lang[9])
{
    lang[0] = '\0';
    if (q->language) {
        size_t n = strcspn(q->language, "-_");
        if (n >= 9)
            return -1;      /* no therapist's language code is that long */
        memcpy(lang, q->language, n);
        lang[n] = '\0';
    }
    return 0;
}

/* The patient's windows (*patient, NULL when none were given); malformed ones are ignored
 * (intake rejects them). -1 when windows were given but none is usable (no slot rather than
 * any slot), or out of memory. */
static int patient_windows(const hx_slot_query_t *q, iv_t **patient, size_t *n_patient)
{
    *patient = NULL;
    *n_patient = 0;
    if (!q->n_availability)
        return 0;
    iv_t *w = calloc(q->n_availability, sizeof *w);
    if (!w)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < q->n_availability; i++) {
        const Handoff__Availability *a = q->availability ? q->availability[i] : NULL;
        unsigned f, t;
        if (!a || a->day < 1 || a->day > 7 || hx_hhmm_parse(a->from, false, &f) != 0 ||
            hx_hhmm_parse(a->to, true, &t) != 0 || t <= f)
            continue;
        w[n++] = (iv_t){(uint8_t)a->day, (uint16_t)f, (uint16_t)t};
    }
    if (n == 0) {
        free(w);
        return -1;
    }
    *patient = w;
    *n_patient = n;
    return 0;
}

/* Whether therapist t may be offered: the discipline asked for, the clinic or therapist the
 * query is restricted to (if any), not excluded, speaking lang (when one is asked for). */
static bool therapist_eligible(const hx_therapist_t *t, const hx_slot_query_t *q, const char *lang)
{
    if (t->discipline != q->discipline)
        return false;
    if ((q->only_clinic && q->only_clinic[0] && strcmp(q->only_clinic, t->clinic_id) != 0) ||
        (q->only_therapist && q->only_therapist[0] && strcmp(q->only_therapist, t->id) != 0))
        return false;
    bool excluded = false;
    for (size_t x = 0; x < q->n_exclude && !excluded; x++)
        excluded = q->exclude[x] && !strcmp(q->exclude[x], t->id);
    if (excluded)
        return false;
    if (q->exclude_therapist && !strcmp(q->exclude_therapist, t->id))
        return false;
    if (lang[0] && !speaks(t, lang))
        return false;
    return true;
}

/* The place of t's clinic among the preferred clinics (0 best); n_clinic_ids when not one. */
static size_t clinic_rank(const hx_therapist_t *t, const hx_slot_query_t *q)
{
    size_t rank = q->n_clinic_ids;
    for (size_t k = 0; k < q->n_clinic_ids; k++)
        if (q->clinic_ids && q->clinic_ids[k] && !strcmp(q->clinic_ids[k], t->clinic_id)) {
            rank = k;
            break;
        }
    return rank;
}

/* Why therapist t cannot be offered for q (ignoring the clinic restriction and the time): 0 or -1 with why. */
static int therapist_why_not(const hx_therapist_t *t, const hx_slot_query_t *q, const char *lang, char *why,
                             size_t cap)
{
    bool excluded = q->exclude_therapist && !strcmp(q->exclude_therapist, t->id);
    for (size_t x = 0; x < q->n_exclude && !excluded; x++)
        excluded = q->exclude[x] && !strcmp(q->exclude[x], t->id);
    if (t->discipline != q->discipline)
        snprintf(why, cap, "%s (%s) practises %s, not %s", t->id, t->name, hx_discipline_text(t->discipline),
                 hx_discipline_text(q->discipline));
    else if (lang[0] && !speaks(t, lang))
        snprintf(why, cap, "%s (%s) does not speak %s, the patient's language", t->id, t->name, lang);
    else if (excluded)
        snprintf(why, cap, "%s (%s) may not be offered this referral (it holds or handed back this handoff)", t->id,
                 t->name);
    else
        return 0;
    return -1;
}

int hx_slot_restriction_check(const hx_directory_t *d, const hx_slot_query_t *q, char *why, size_t cap)
{
    char lang[9];
    const char *clinic = q->only_clinic && q->only_clinic[0] ? q->only_clinic : NULL;
    const char *tid = q->only_therapist && q->only_therapist[0] ? q->only_therapist : NULL;
    if (query_language(q, lang) != 0)
        lang[0] = '\0';
    if (clinic && !hx_directory_clinic(d, clinic)) {
        snprintf(why, cap, "no clinic '%s' in the directory", clinic);
        return HX_SLOT_BAD_CLINIC;
    }
    if (tid) {
        const hx_therapist_t *t = hx_directory_therapist(d, tid);
        if (!t) {
            snprintf(why, cap, "no therapist '%s' in the directory", tid);
            return HX_SLOT_BAD_THERAPIST;
        }
        if (clinic && strcmp(t->clinic_id, clinic) != 0) {
            snprintf(why, cap, "%s (%s) works at clinic %s, not %s", t->id, t->name, t->clinic_id, clinic);
            return HX_SLOT_BAD_THERAPIST;
        }
        return therapist_why_not(t, q, lang, why, cap) == 0 ? 0 : HX_SLOT_BAD_THERAPIST;
    }
    if (!clinic)
        return 0;
    size_t of_discipline = 0;
    for (size_t i = 0; i < d->n_therapists; i++) {
        const hx_therapist_t *t = &d->therapists[i];
        if (strcmp(t->clinic_id, clinic) != 0 || t->discipline != q->discipline)
            continue;
        of_discipline++;
        if (therapist_why_not(t, q, lang, why, cap) == 0)
            return 0;
    }
    if (of_discipline == 0)
        snprintf(why, cap, "clinic %s has no %s therapist", clinic, hx_discipline_text(q->discipline));
    else
        snprintf(why, cap, "no %s therapist at clinic %s may be offered: %s", hx_discipline_text(q->discipline), clinic,
                 lang[0] ? "none of the others speaks the patient's language" : "none besides the one excluded");
    return HX_SLOT_BAD_CLINIC;
}

/* The distance from the query's origin to t's clinic; -1 when either is unknown. */
static double origin_km(const hx_therapist_t *t, const hx_slot_query_t *q)
{
    const hx_clinic_t *c = t->clinic;
    return q->has_origin && c->located ? hx_geo_km(q->origin_lat, q->origin_lon, c->lat, c->lon) : -1;
}

/* A collaborative pair's bound: t's clinic within anchor_km of the anchor, or t's session virtual. */
static bool near_anchor(const hx_therapist_t *t, const hx_slot_query_t *q)
{
    const hx_clinic_t *c = t->clinic;
    if (!q->has_anchor || (q->anchor_virtual_ok && t->virtual_ok))
        return true;
    return c->located && hx_geo_km(q->anchor_lat, q->anchor_lon, c->lat, c->lon) <= q->anchor_km;
}

/* What every therapist's search shares. */
typedef struct {
    hx_calendar_t *cal;
    uint64_t serial;                /* the directory's */
    const hx_slot_query_t *q;
    const iv_t *patient;
    size_t n_patient;
    iv_t *ivs;                      /* scratch: MAX_HOURS * max(n_patient, 1) */
    char lang[9];
} search_t;

/* The first start in [t0, lim] that fits t's hours and bookings, whatever the patient's
 * windows; lim + 1 when there is none. Begins at the frontier bk keeps for these minutes when
 * t0 lies in it, and moves the frontier on to what it finds (frontier_t). */
static hx_minute_t therapist_frontier(search_t *x, cal_entry_t *bk, const hx_therapist_t *t, hx_minute_t t0,
                                      hx_minute_t lim)
{
    const uint32_t minutes = x->q->minutes;
    frontier_t *f = NULL, *oldest = &bk->frontiers[0];
    for (size_t k = 0; k < FRONTIERS && !f; k++) {
        frontier_t *g = &bk->frontiers[k];
        if (g->serial == x->serial && g->minutes == minutes && g->from <= t0 && t0 <= g->to)
            f = g;
        else if (g->used < oldest->used)
            oldest = g;
    }
    hx_minute_t from = f && f->to > t0 ? f->to : t0, s;
    if (from > lim)
        return from;
    iv_t all[MAX_HOURS];
    size_t off[9];
    const bool found = build_intervals(t, NULL, 0, minutes, all, off) > 0 &&
                       earliest(bk, all, off, t->clinic, from, lim, minutes, &s);
    if (!f) {
        f = oldest;
        *f = (frontier_t){.serial = x->serial, .minutes = minutes, .from = t0};
    }
    f->to = found ? s : lim + 1;
    f->used = ++x->cal->searches;
    return f->to;
}

static bool therapist_earliest(search_t *x, const hx_therapist_t *t, hx_minute_t t0, hx_minute_t lim,
                               hx_minute_t *s)
{
    size_t off[9];
    if (t0 > lim)
        return false;
    cal_entry_t *bk = (cal_entry_t *)cal_find(x->cal, t->id);
    if (bk) {
        hx_minute_t first = therapist_frontier(x, bk, t, t0, lim);
        if (first > lim)
            return false;
        if (x->n_patient == 0) {
            *s = first;
            return true;
        }
        t0 = first;
    }
    if (build_intervals(t, x->patient, x->n_patient, x->q->minutes, x->ivs, off) == 0)
        return false;
    return earliest(bk, x->ivs, off, t->clinic, t0, lim, x->q->minutes, s);
}

/* Near the patient: the nearest clinic with a slot in [t0, until], earliest there; then a
 * preferred clinic, then directory order. Clinics without a location come after every
 * located one. */
static bool find_nearest(const hx_directory_t *d, search_t *x, hx_minute_t t0, hx_minute_t until,
                         hx_slot_t *best)
{
    bool have = false;
    size_t best_rank = 0;
    double best_km = 0;
    for (size_t i = 0; i < d->n_therapists; i++) {
        const hx_therapist_t *t = &d->therapists[i];
        if (!t->clinic || !therapist_eligible(t, x->q, x->lang) || !near_anchor(t, x->q))
            continue;
        double km = origin_km(t, x->q), key = km < 0 ? 1e9 : km;
        size_t rank = clinic_rank(t, x->q);
        if (have && key > best_km + 0.05)
            continue;               /* farther than a slot already found */
        bool same_km = have && key >= best_km - 0.05;
        hx_minute_t lim = !same_km ? until : rank < best_rank ? best->start : best->start - 1, s;
        if (therapist_earliest(x, t, t0, lim, &s)) {
            have = true;
            best_km = key;
            best_rank = rank;
            *best = (hx_slot_t){.therapist = t, .start = s, .minutes = x->q->minutes, .km = km};
        }
    }
    return have;
}

/* The earliest slot in [t0, limit]; a preferred clinic, then the nearer, then directory order
 * break ties. */
static bool find_earliest(const hx_directory_t *d, search_t *x, hx_minute_t t0, hx_minute_t limit,
                          hx_slot_t *best)
{
    bool have = false;
    size_t best_rank = 0;
    for (size_t i = 0; i < d->n_therapists; i++) {
        const hx_therapist_t *t = &d->therapists[i];
        if (!t->clinic || !therapist_eligible(t, x->q, x->lang) || !near_anchor(t, x->q))
            continue;
        size_t rank = clinic_rank(t, x->q);
        /* Only a strictly earlier start, or an equal one at a better-ranked clinic, wins;
         * directory order breaks the remaining ties (earlier therapists were seen first). */
        hx_minute_t lim = !have ? limit : rank < best_rank ? best->start : best->start - 1, s;
        if (therapist_earliest(x, t, t0, lim, &s)) {
            have = true;
            best_rank = rank;
            *best = (hx_slot_t){.therapist = t, .start = s, .minutes = x->q->minutes, .km = origin_km(t, x->q)};
        }
    }
    return have;
}

int hx_slot_find(const hx_directory_t *d, hx_calendar_t *c, const hx_slot_query_t *q, hx_slot_t *out)
{
    if (!d || !q || !out || q->minutes == 0 || q->minutes > DAY_MINUTES)
        return -1;
    hx_minute_t t0 = q->not_before < HX_MINUTE_MIN ? HX_MINUTE_MIN : q->not_before;
    hx_minute_t limit = q->horizon > HX_MINUTE_MAX ? HX_MINUTE_MAX : q->horizon;
    if (t0 > HX_MINUTE_MAX)
        return -1;
    t0 = ceil_grid(t0);
    if (t0 > limit)
        return -1;
    search_t x = {.cal = c, .serial = d->serial, .q = q};
    iv_t *patient;
    if (query_language(q, x.lang) != 0 || patient_windows(q, &patient, &x.n_patient) != 0)
        return -1;
    x.patient = patient;
    if (!(x.ivs = malloc(MAX_HOURS * (x.n_patient ? x.n_patient : 1) * sizeof *x.ivs))) {
        free(patient);
        return -1;
    }
    hx_slot_t best = {0};
    hx_minute_t until = q->near_until < limit ? q->near_until : limit;
    bool have = (q->has_origin && until >= t0 && find_nearest(d, &x, t0, until, &best)) ||
                find_earliest(d, &x, t0, limit, &best);
    free(x.ivs);
    free(patient);
    if (!have)
        return -1;
    *out = best;
    return 0;
}
