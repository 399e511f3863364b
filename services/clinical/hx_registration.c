/* hx_registration — the registration bodies by province and discipline (see hx_registration.h).
 *
 * The file is read whole and checked field by field; each problem is named by its path in the
 * JSON. A loaded table is immutable, so intake may swap it on reload and readers never lock. */
#include "hx_registration.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_refjson.h"
#include "hx_util.h"

#define N_PROV 13
#define N_DISC 3
#define BODIES_MAX 16           /* bodies for one discipline in one province */
#define NAME_MAX_CHARS 200

typedef char path_t[96];

static const char *const CODES[N_PROV] = {"AB", "BC", "MB", "NB", "NL", "NS", "NT",
                                          "NU", "ON", "PE", "QC", "SK", "YT"};
static const Handoff__Discipline DISCS[N_DISC] = {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY,
                                                  HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY,
                                                  HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN};

struct hx_registration {
    char *names[N_PROV];
    hx_body_t *bodies[N_PROV][N_DISC];
    size_t n[N_PROV][N_DISC];
};

extern const unsigned char hx_registration_builtin_json[];  /* generated from registration.json, NUL-terminated */

static int province_index(const char *code)
{
    for (int i = 0; code && i < N_PROV; i++)
        if (strcmp(code, CODES[i]) == 0)
            return i;
    return -1;
}

static int discipline_index(Handoff__Discipline d)
{
    for (int i = 0; i < N_DISC; i++)
        if (DISCS[i] == d)
            return i;
    return -1;
}

const char *hx_registration_codes(void)
{
    return "AB, BC, MB, NB, NL, NS, NT, NU, ON, PE, QC, SK, YT";
}

const char *hx_body_kind_text(hx_body_kind_t k)
{
    return k == HX_BODY_COLLEGE ? "college" : k == HX_BODY_ASSOCIATION ? "association" : "";
}

hx_body_kind_t hx_body_kind_from_text(const char *s)
{
    if (s && strcmp(s, "college") == 0)
        return HX_BODY_COLLEGE;
    if (s && strcmp(s, "association") == 0)
        return HX_BODY_ASSOCIATION;
    return 0;
}

/* A required string of at most max characters, copied; NULL after adding an error. */
static char *take_text(const json_t *o, const char *key, const char *base, size_t max, hx_errors_t *e)
{
    path_t path;
    hx_path_key(path, sizeof path, base, key);
    const json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);
    if (!v)
        hx_errors_add(e, path, "required");
    else if (!s)
        hx_errors_add(e, path, "must be a string");
    else if (hx_is_blank(s))
        hx_errors_add(e, path, "must not be empty");
    else if (!hx_utf8_valid(s) || strlen(s) != json_string_length(v))
        hx_errors_add(e, path, "must be valid UTF-8 text");
    else if (hx_utf8_chars(s) > max)
        hx_errors_add(e, path, "must be at most %zu characters (has %zu)", max, hx_utf8_chars(s));
    else
        return strdup(s);
    return NULL;
}

/* Adds "unknown field" for each key of o not in keys (NULL-terminated). */
static void only_keys(const json_t *o, const char *base, const char *const *keys, hx_errors_t *e)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        size_t k = 0;
        while (keys[k] && strcmp(keys[k], key) != 0)
            k++;
        if (!keys[k]) {
            path_t path;
            hx_path_key(path, sizeof path, base, key);
            hx_errors_add(e, path, "unknown field");
        }
    }
}

/* The optional "number": {"chars": "digits"|"alphanumeric", "min": N, "max": M}. */
static void parse_number(const json_t *v, const char *base, hx_body_t *b, hx_errors_t *e)
{
    b->digits = false;
    b->min = 1;
    b->max = HX_REG_NUMBER_MAX;
    if (!v)
        return;
    if (!json_is_object(v)) {
        hx_errors_add(e, base, "must be an object {\"chars\", \"min\", \"max\"}");
        return;
    }
    static const char *const keys[] = {"chars", "min", "max", NULL};
    only_keys(v, base, keys, e);
    path_t path;
    const char *chars = json_string_value(json_object_get(v, "chars"));
    hx_path_key(path, sizeof path, base, "chars");
    if (!chars || (strcmp(chars, "digits") && strcmp(chars, "alphanumeric")))
        hx_errors_add(e, path, "must be \"digits\" or \"alphanumeric\" (letters, digits and -)");
    else
        b->digits = strcmp(chars, "digits") == 0;
    static const char *const bounds[] = {"min", "max"};
    for (int i = 0; i < 2; i++) {
        const json_t *n = json_object_get(v, bounds[i]);
        hx_path_key(path, sizeof path, base, bounds[i]);
        if (!json_is_integer(n) || json_integer_value(n) < 1 || json_integer_value(n) > HX_REG_NUMBER_MAX)
            hx_errors_add(e, path, "must be a whole number from 1 to %d", HX_REG_NUMBER_MAX);
        else if (i == 0)
            b->min = (unsigned)json_integer_value(n);
        else
            b->max = (unsigned)json_integer_value(n);
    }
    if (b->min > b->max) {
        hx_path_key(path, sizeof path, base, "max");
        hx_errors_add(e, path, "must not be less than min (%u)", b->min);
    }
}

static bool is_acronym(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    return n > 0 && n <= HX_REG_ACRONYM_MAX && s[n] == '\0';
}

static void parse_body(const json_t *v, const char *base, hx_body_t *b, hx_errors_t *e)
{
    if (!json_is_object(v)) {
        hx_errors_add(e, base, "must be an object {\"acronym\", \"name\", \"kind\", \"number\"}");
        return;
    }
    static const char *const keys[] = {"acronym", "name", "kind", "number", NULL};
    only_keys(v, base, keys, e);
    path_t path;
    char *acronym = take_text(v, "acronym", base, HX_REG_ACRONYM_MAX, e);
    if (acronym && !is_acronym(acronym)) {
        hx_path_key(path, sizeof path, base, "acronym");
        hx_errors_add(e, path, "'%s' must be capital letters and digits (A-Z, 0-9)", acronym);
    }
    b->acronym = acronym;
    b->name = take_text(v, "name", base, NAME_MAX_CHARS, e);
    const json_t *kind = json_object_get(v, "kind");
    b->kind = hx_body_kind_from_text(json_string_value(kind));
    if (!b->kind) {
        hx_path_key(path, sizeof path, base, "kind");
        hx_errors_add(e, path, kind ? "must be \"college\" or \"association\"" : "required (college or association)");
    }
    hx_path_key(path, sizeof path, base, "number");
    parse_number(json_object_get(v, "number"), path, b, e);
}

/* One discipline's list in one province: non-empty, one kind, no acronym twice. */
static void parse_list(hx_registration_t *reg, int p, int d, const json_t *v, const char *base, hx_errors_t *e)
{
    if (!v) {
        hx_errors_add(e, base, "required (the colleges, or the associations where it is not regulated)");
        return;
    }
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > BODIES_MAX) {
        hx_errors_add(e, base, "must be a list of 1 to %d bodies", BODIES_MAX);
        return;
    }
    hx_body_t *bodies = calloc(n, sizeof *bodies);
    if (!bodies) {
        hx_errors_add(e, base, "out of memory");
        return;
    }
    reg->bodies[p][d] = bodies;
    reg->n[p][d] = n;
    for (size_t i = 0; i < n; i++) {
        path_t path;
        hx_path_index(path, sizeof path, base, i);
        parse_body(json_array_get(v, i), path, &bodies[i], e);
        if (i > 0 && bodies[i].kind && bodies[0].kind && bodies[i].kind != bodies[0].kind) {
            char kind[sizeof path + 8];
            snprintf(kind, sizeof kind, "%s.kind", path);
            hx_errors_add(e, kind, "must be %s like %s[0]: a discipline lists colleges or associations, not both",
                          hx_body_kind_text(bodies[0].kind), base);
        }
        for (size_t k = 0; k < i && bodies[i].acronym; k++)
            if (bodies[k].acronym && strcmp(bodies[k].acronym, bodies[i].acronym) == 0)
                hx_errors_add(e, path, "'%s' is also %s[%zu]", bodies[i].acronym, base, k);
    }
}

static void parse_province(hx_registration_t *reg, int p, const json_t *v, const char *base, hx_errors_t *e)
{
    if (!json_is_object(v)) {
        hx_errors_add(e, base, "must be an object {\"name\", \"physiotherapy\", \"massage_therapy\", \"physician\"}");
        return;
    }
    static const char *const keys[] = {"name", "physiotherapy", "massage_therapy", "physician", NULL};
    only_keys(v, base, keys, e);
    reg->names[p] = take_text(v, "name", base, NAME_MAX_CHARS, e);
    for (int d = 0; d < N_DISC; d++) {
        path_t path;
        const char *key = hx_discipline_text(DISCS[d]);
        hx_path_key(path, sizeof path, base, key);
        parse_list(reg, p, d, json_object_get(v, key), path, e);
    }
}

static void parse_provinces(hx_registration_t *reg, const json_t *v, hx_errors_t *e)
{
    if (!json_is_object(v)) {
        hx_errors_add(e, "provinces", v ? "must be an object keyed by province code" : "required");
        return;
    }
    const char *key;
    const json_t *item;
    json_object_foreach((json_t *)v, key, item) {
        path_t path;
        hx_path_key(path, sizeof path, "provinces", key);
        int p = province_index(key);
        if (p < 0)
            hx_errors_add(e, path, "'%.16s' is not a Canadian province or territory (%s)", key, hx_registration_codes());
        else
            parse_province(reg, p, item, path, e);
    }
    for (int p = 0; p < N_PROV; p++)
        if (!json_object_get(v, CODES[p])) {
            path_t path;
            hx_path_key(path, sizeof path, "provinces", CODES[p]);
            hx_errors_add(e, path, "required: every province and territory is listed");
        }
}

static void parse_notes(const json_t *v, hx_errors_t *e)
{
    size_t i;
    const json_t *item;
    if (!json_is_array(v)) {
        hx_errors_add(e, "notes", "must be a list of strings");
        return;
    }
    json_array_foreach(v, i, item) {
        if (!json_is_string(item)) {
            path_t path;
            hx_path_index(path, sizeof path, "notes", i);
            hx_errors_add(e, path, "must be a string");
        }
    }
}

static hx_registration_t *from_json(const json_t *root, hx_errors_t *e)
{
    const size_t before = e->count + e->dropped;
    if (!json_is_object(root)) {
        hx_errors_add(e, "", "must be a JSON object {\"version\": 1, \"provinces\": {...}}");
        return NULL;
    }
    hx_registration_t *reg = calloc(1, sizeof *reg);
    if (!reg) {
        hx_errors_add(e, "", "out of memory");
        return NULL;
    }
    static const char *const keys[] = {"version", "notes", "provinces", NULL};
    only_keys(root, "", keys, e);
    const json_t *version = json_object_get(root, "version");
    if (!json_is_integer(version) || json_integer_value(version) != 1)
        hx_errors_add(e, "version", version ? "must be 1" : "required (1)");
    if (json_object_get(root, "notes"))
        parse_notes(json_object_get(root, "notes"), e);
    parse_provinces(reg, json_object_get(root, "provinces"), e);
    if (e->count + e->dropped > before)
        hx_registration_destroy(&reg);
    return reg;
}

static hx_registration_t *read_file(const char *path, const char *text, hx_errors_t *errs)
{
    hx_errors_t local;
    if (!errs) {
        hx_errors_clear(&local);
        errs = &local;
    }
    json_t *root = hx_json_read(path, text, "registration file", errs);
    if (!root)
        return NULL;
    hx_registration_t *reg = from_json(root, errs);
    json_decref(root);
    return reg;
}

hx_registration_t *hx_registration_load(const char *path, hx_errors_t *errs)
{
    return read_file(path, NULL, errs);
}

hx_registration_t *hx_registration_parse(const char *text, hx_errors_t *errs)
{
    return read_file(NULL, text, errs);
}

void hx_registration_destroy(hx_registration_t **reg)
{
    if (!reg || !*reg)
        return;
    hx_registration_t *r = *reg;
    for (int p = 0; p < N_PROV; p++) {
        free(r->names[p]);
        for (int d = 0; d < N_DISC; d++) {
            for (size_t i = 0; i < r->n[p][d]; i++) {
                free((char *)r->bodies[p][d][i].acronym);
                free((char *)r->bodies[p][d][i].name);
            }
            free(r->bodies[p][d]);
        }
    }
    free(r);
    *reg = NULL;
}

static hx_registration_t *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void builtin_load(void)
{
    builtin = hx_registration_parse((const char *)hx_registration_builtin_json, NULL);
}

const hx_registration_t *hx_registration_builtin(void)
{
    pthread_once(&builtin_once, builtin_load);
    return builtin;
}

const char *hx_registration_province(const hx_registration_t *reg, const char *code)
{
    int p = province_index(code);
    return reg && p >= 0 ? reg->names[p] : NULL;
}

const hx_body_t *hx_registration_bodies(const hx_registration_t *reg, const char *province,
                                        Handoff__Discipline d, size_t *n)
{
    int p = province_index(province), k = discipline_index(d);
    *n = reg && p >= 0 && k >= 0 ? reg->n[p][k] : 0;
    return *n ? reg->bodies[p][k] : NULL;
}

const hx_body_t *hx_registration_find(const hx_registration_t *reg, const char *province,
                                      Handoff__Discipline d, const char *acronym)
{
    size_t n;
    const hx_body_t *b = hx_registration_bodies(reg, province, d, &n);
    for (size_t i = 0; acronym && i < n; i++)
        if (strcmp(b[i].acronym, acronym) == 0)
            return &b[i];
    return NULL;
}

const char *hx_registration_text(const Handoff__Referrer *r, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    buf[0] = '\0';
    if (!r || (hx_is_blank(r->registration_body) && hx_is_blank(r->registration_number)))
        return buf;
    const char *province = hx_is_blank(r->province) ? HX_PROVINCE_DEFAULT : r->province;
    const char *what = r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? "massage therapy"
                       : r->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN  ? "medicine"
                                                                                     : "physiotherapy";
    switch (hx_body_kind_from_text(r->registration_kind)) {
    case HX_BODY_COLLEGE:
        snprintf(buf, cap, "%s %s (college)", r->registration_body, r->registration_number);
        break;
    case HX_BODY_ASSOCIATION:
        snprintf(buf, cap, "%s %s (association: %s is not regulated by a college in %s)", r->registration_body,
                 r->registration_number, what, province);
        break;
    default:
        snprintf(buf, cap, "%s %s", r->registration_body, r->registration_number);
        break;
    }
    return buf;
}
