/* hx_fhir_read — FHIR input read back into the network's messages (see hx_fhir.h): a
 * submitted transaction Bundle into a Referral (docs/FHIR.md's mapping, inverse), a Task
 * update into a StatusChange, a JSON Patch applied, a Communication into a ThreadPost, and a
 * client's Subscription.
 *
 * Reading is strict: every element of a resource read must be one this file knows, of the
 * JSON type FHIR gives it, and every code one of its value set; each problem becomes one
 * OperationOutcome issue whose expression is the element's FHIRPath, and reading goes on so
 * that one answer lists them all. On any resource, id, meta, text and language are taken and
 * ignored. Extensions: a url of the network's own (urn:handoff:) that does not belong where it
 * stands is refused (a misspelt one would otherwise vanish silently); any other url is ignored,
 * as FHIR allows for an extension that is not a modifierExtension (modifierExtension, like
 * every other unknown element, is refused). What the network sets itself (the referral id,
 * the registration kind, triage's codes) is refused when a client sends it. */
#include "hx_fhir.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_attach.h"
#include "hx_fhir_internal.h"
#include "hx_refjson.h"
#include "hx_thread_rules.h"
#include "hx_util.h"

typedef char fp_t[192];         /* a FHIRPath */

/* ---- problems ------------------------------------------------------------------------------ */

typedef struct {
    json_t *oo;                 /* the OperationOutcome, made with the first problem */
    size_t n;                   /* problems found */
} rd_t;

static void bad(rd_t *rd, const char *code, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void bad(rd_t *rd, const char *code, const char *expr, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!rd->oo)
        rd->oo = hx_fhir_outcome("error", code, msg, expr);
    else
        hx_fhir_outcome_add(rd->oo, "error", code, msg, expr);
    rd->n++;
}

/* Hands the outcome to the caller (or drops it); -1. */
static int refuse(rd_t *rd, json_t **outcome)
{
    if (!rd->oo)
        rd->oo = hx_fhir_outcome("error", "exception", "out of memory", NULL);
    if (outcome)
        *outcome = rd->oo;
    else
        json_decref(rd->oo);
    rd->oo = NULL;
    return -1;
}

static void fp(fp_t out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fp(fp_t out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, sizeof(fp_t), fmt, ap);
    va_end(ap);
}

/* ---- elements and JSON types ----------------------------------------------------------------- */

/* "a, b or c" of a NULL-terminated list. */
static const char *list_text(const char *const *list, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; list[i] && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i == 0 ? "" : list[i + 1] ? ", " : " or ", list[i]);
    return out;
}

/* Refuses every member of o not in allowed (and, on a resource, not one of the common ones). */
static void check_keys(rd_t *rd, const json_t *o, const char *base, const char *const *allowed, bool resource)
{
    static const char *const common[] = {"resourceType", "id", "meta", "text", "language", "extension", NULL};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)o, key, v) {
        if (hx_fhir_one_of(key, allowed) || (resource && hx_fhir_one_of(key, common)))
            continue;
        fp_t p;
        fp(p, "%s.%s", base, key);
        bad(rd, "structure", p, "unknown element '%.60s'", key);
    }
}

static bool want_object(rd_t *rd, const json_t *v, const char *path)
{
    if (json_is_object(v))
        return true;
    bad(rd, "structure", path, "must be a JSON object");
    return false;
}

/* A string member: NULL when absent; a problem when not a non-empty string without NUL. */
static const char *str_at(rd_t *rd, const json_t *o, const char *key, const char *base)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return NULL;
    fp_t p;
    fp(p, "%s.%s", base, key);
    if (!json_is_string(v)) {
        bad(rd, "structure", p, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        bad(rd, "value", p, "must not contain NUL characters");
        return NULL;
    }
    if (!*s) {
        bad(rd, "value", p, "must not be empty (leave the element out)");
        return NULL;
    }
    return s;
}

/* A repeating element: NULL when absent; a problem when not a non-empty array. */
static const json_t *arr_at(rd_t *rd, const json_t *o, const char *key, const char *base)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return NULL;
    fp_t p;
    fp(p, "%s.%s", base, key);
    if (!json_is_array(v)) {
        bad(rd, "structure", p, "must be an array (the element repeats)");
        return NULL;
    }
    if (json_array_size(v) == 0) {
        bad(rd, "structure", p, "must not be an empty array (leave the element out)");
        return NULL;
    }
    return v;
}

static const json_t *obj_at(rd_t *rd, const json_t *o, const char *key, const char *base)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return NULL;
    fp_t p;
    fp(p, "%s.%s", base, key);
    return want_object(rd, v, p) ? v : NULL;
}

/* Element i of the repeating element key (of the element at base) when it is an object, else
 * NULL (a problem when it is something else); its path in p. */
static const json_t *item_at(rd_t *rd, const json_t *list, size_t i, const char *base, const char *key, fp_t p)
{
    fp(p, "%s.%s[%zu]", base, key, i);
    const json_t *v = json_array_get(list, i);
    return want_object(rd, v, p) ? v : NULL;
}

/* A code member whose value must be one of set; NULL when absent or refused. */
static const char *code_at(rd_t *rd, const json_t *o, const char *key, const char *base, const char *const *set)
{
    const char *s = str_at(rd, o, key, base);
    if (s && !hx_fhir_one_of(s, set)) {
        fp_t p;
        char list[200];
        fp(p, "%s.%s", base, key);
        bad(rd, "value", p, "'%.40s' is not a code of the value set (%s)", s, list_text(set, list, sizeof list));
        return NULL;
    }
    return s;
}

/* ---- datatypes ----------------------------------------------------------------------------- */

static const char *const k_coding[] = {"id", "extension", "system", "version", "code", "display", "userSelected", NULL};
static const char *const k_concept[] = {"id", "extension", "coding", "text", NULL};
static const char *const k_reference[] = {"id", "extension", "reference", "type", "identifier", "display", NULL};
static const char *const k_identifier[] = {"id",    "extension", "use",    "type",    "system",
                                           "value", "period",    "assigner", NULL};
static const char *const k_name[] = {"id",    "extension", "use",    "text",   "family",
                                     "given", "prefix",    "suffix", "period", NULL};
static const char *const k_telecom[] = {"id", "extension", "system", "value", "use", "rank", "period", NULL};
static const char *const k_address[] = {"id", "extension", "use", "type", "text", "line", "city", "district",
                                        "state", "postalCode", "country", "period", NULL};
static const char *const k_annotation[] = {"id", "extension", "authorReference", "authorString", "time", "text", NULL};
static const char *const k_attachment[] = {"id", "extension", "contentType", "language", "data", "url", "size",
                                           "hash", "title", "creation", NULL};
static const char *const telecom_systems[] = {"phone", "fax", "email", "pager", "url", "sms", "other", NULL};

/* Checks a Coding's elements; its system and code (either may be NULL). */
static void read_coding(rd_t *rd, const json_t *c, const char *path, const char **system, const char **code,
                        const char **display)
{
    *system = *code = NULL;
    if (display)
        *display = NULL;
    if (!want_object(rd, c, path))
        return;
    check_keys(rd, c, path, k_coding, false);
    *system = str_at(rd, c, "system", path);
    *code = str_at(rd, c, "code", path);
    const char *d = str_at(rd, c, "display", path);
    if (display)
        *display = d;
    str_at(rd, c, "version", path);
}

/* Checks a CodeableConcept; the code of system sys among its codings (NULL when none), with
 * the coding's index in *at. */
static const char *concept_code(rd_t *rd, const json_t *cc, const char *path, const char *sys, size_t *at)
{
    if (!want_object(rd, cc, path))
        return NULL;
    check_keys(rd, cc, path, k_concept, false);
    str_at(rd, cc, "text", path);
    const json_t *codings = arr_at(rd, cc, "coding", path);
    const char *found = NULL;
    for (size_t i = 0; i < json_array_size(codings); i++) {
        fp_t p;
        fp(p, "%s.coding[%zu]", path, i);
        const char *s, *c;
        read_coding(rd, json_array_get(codings, i), p, &s, &c, NULL);
        if (!found && s && c && strcmp(s, sys) == 0) {
            found = c;
            if (at)
                *at = i;
        }
    }
    return found;
}

/* Checks a Reference; its reference string (NULL when none). */
static const char *read_reference(rd_t *rd, const json_t *r, const char *path)
{
    if (!want_object(rd, r, path))
        return NULL;
    check_keys(rd, r, path, k_reference, false);
    str_at(rd, r, "type", path);
    str_at(rd, r, "display", path);
    return str_at(rd, r, "reference", path);
}

/* "Type/id" with Type t: the id, else NULL. */
static const char *ref_id(const char *ref, const char *type)
{
    size_t n = strlen(type);
    if (!ref || strncmp(ref, type, n) != 0 || ref[n] != '/' || !hx_fhir_id_valid(ref + n + 1))
        return NULL;
    return ref + n + 1;
}

/* ---- protobuf strings ------------------------------------------------------------------------ */

/* Replaces a protobuf string field with a copy of s. */
static void put(rd_t *rd, char **field, const char *s)
{
    char *copy = strdup(s ? s : "");
    if (!copy) {
        bad(rd, "exception", NULL, "out of memory");
        return;
    }
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = copy;
}

/* Appends s to a protobuf string field, after sep when it holds something already. */
static void append(rd_t *rd, char **field, const char *s, const char *sep)
{
    if (!*field || !**field) {
        put(rd, field, s);
        return;
    }
    size_t a = strlen(*field), b = strlen(sep), c = strlen(s);
    char *joined = malloc(a + b + c + 1);
    if (!joined) {
        bad(rd, "exception", NULL, "out of memory");
        return;
    }
    memcpy(joined, *field, a);
    memcpy(joined + a, sep, b);
    memcpy(joined + a + b, s, c + 1);
    free(*field);
    *field = joined;
}

/* Appends a copy of s to a repeated string field. */
static size_t push(rd_t *rd, size_t *n, char ***items, const char *s)
{
    char **grown = realloc(*items, (*n + 1) * sizeof *grown);
    char *copy = strdup(s);
    if (!grown || !copy) {
        free(copy);
        if (grown)
            *items = grown;
        bad(rd, "exception", NULL, "out of memory");
        return *n;
    }
    *items = grown;
    grown[*n] = copy;
    return (*n)++;
}

/* Base64 (standard alphabet, whitespace ignored) into at most max bytes. 0 with *out (malloc'd)
 * and *len; -1 not base64; -2 over max. */
static int decode64(const char *b64, size_t max, uint8_t **out, size_t *len)
{
    size_t n = strlen(b64);
    size_t cap = n / 4 * 3 + 3;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return -1;
    const char *end = NULL;
    if (sodium_base642bin(buf, cap, b64, n, " \t\r\n", len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b64 + n) {
        free(buf);
        return -1;
    }
    if (*len > max) {
        free(buf);
        return -2;
    }
    *out = buf;
    return 0;
}

/* An attachment's name: 1..HX_ATTACH_NAME_MAX bytes without / \ or control characters. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HX_ATTACH_NAME_MAX)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f || *c == '/' || *c == '\\')
            return false;
    return true;
}

/* Reads an Attachment (data and title required) into a new Handoff__Attachment, or NULL. */
static Handoff__Attachment *read_attachment(rd_t *rd, const json_t *a, const char *path)
{
    if (!want_object(rd, a, path))
        return NULL;
    check_keys(rd, a, path, k_attachment, false);
    fp_t p;
    if (json_object_get(a, "url")) {
        fp(p, "%s.url", path);
        bad(rd, "not-supported", p, "an attachment is sent inline (data), not by url");
    }
    str_at(rd, a, "contentType", path);
    const char *title = str_at(rd, a, "title", path);
    const char *data = str_at(rd, a, "data", path);
    if (json_object_get(a, "size") && !json_is_integer(json_object_get(a, "size"))) {
        fp(p, "%s.size", path);
        bad(rd, "structure", p, "must be an integer");
    }
    fp(p, "%s.title", path);
    if (!title && !json_object_get(a, "title"))
        bad(rd, "required", p, "required: the file's name");
    else if (title && !name_ok(title))
        bad(rd, "value", p, "must be 1 to %d bytes without '/', '\\' or control characters", HX_ATTACH_NAME_MAX);
    fp(p, "%s.data", path);
    if (!data) {
        if (!json_object_get(a, "data"))
            bad(rd, "required", p, "required: the file's content, base64");
        return NULL;
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = decode64(data, HX_ATTACH_MAX, &bytes, &len);
    if (rc == -2) {
        bad(rd, "too-costly", p, "the file is over %d bytes", HX_ATTACH_MAX);
        return NULL;
    }
    if (rc != 0) {
        bad(rd, "value", p, "must be base64");
        return NULL;
    }
    if (len == 0 || !title || !name_ok(title)) {
        if (len == 0)
            bad(rd, "value", p, "must not be an empty file");
        free(bytes);
        return NULL;
    }
    Handoff__Attachment *at = malloc(sizeof *at);
    char *name = strdup(title);
    if (!at || !name) {
        free(at);
        free(name);
        free(bytes);
        bad(rd, "exception", path, "out of memory");
        return NULL;
    }
    handoff__attachment__init(at);
    at->name = name;
    at->data.data = bytes;
    at->data.len = len;
    return at;
}

/* ---- the submission Bundle ------------------------------------------------------------------ */

#define IF_NONE_EXIST "identifier=" HX_FHIR_SYS_REF "|"

typedef struct {
    hx_fhir_type_t type;
    const json_t *res;
    const char *full_url;
    const char *id;
} entry_t;

typedef struct {
    rd_t rd;
    hx_fhir_submission_t *s;
    const char *clinic;
    entry_t *e;
    size_t n;
    Handoff__Referral *r;
    bool have[4];               /* ServiceRequest, Patient, PractitionerRole, Practitioner */
} sub_t;

/* The entry a reference names (its fullUrl, or Type/id of its resource), or -1. */
static long resolve(const sub_t *c, const char *ref)
{
    if (!ref)
        return -1;
    for (size_t i = 0; i < c->n; i++) {
        const entry_t *e = &c->e[i];
        if (e->full_url && strcmp(e->full_url, ref) == 0)
            return (long)i;
        const char *tn = hx_fhir_type_name(e->type);
        size_t tl = tn ? strlen(tn) : 0;
        if (e->id && tn && strncmp(ref, tn, tl) == 0 && ref[tl] == '/' && strcmp(ref + tl + 1, e->id) == 0)
            return (long)i;
    }
    return -1;
}

/* A reference that must name an entry of type t: its index, or -1 with the problem. */
static long resolve_to(sub_t *c, const json_t *r, const char *path, hx_fhir_type_t t)
{
    const char *ref = read_reference(&c->rd, r, path);
    if (!ref) {
        if (json_is_object(r)) {
            fp_t p;
            fp(p, "%s.reference", path);
            bad(&c->rd, "required", p, "required: the %s entry of this Bundle", hx_fhir_type_name(t));
        }
        return -1;
    }
    long i = resolve(c, ref);
    fp_t p;
    fp(p, "%s.reference", path);
    if (i < 0) {
        bad(&c->rd, "not-found", p, "'%.80s' is not an entry of this Bundle (its fullUrl or %s/id)", ref,
            hx_fhir_type_name(t));
        return -1;
    }
    if (c->e[i].type != t) {
        bad(&c->rd, "invalid", p, "must name a %s (names a %s)", hx_fhir_type_name(t), hx_fhir_type_name(c->e[i].type));
        return -1;
    }
    return i;
}

static void map(sub_t *c, const char *field, const char *path)
{
    json_object_set_new(c->s->paths, field, json_string(path));
}

static void mapf(sub_t *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void mapf(sub_t *c, const char *path, const char *fmt, ...)
{
    char field[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(field, sizeof field, fmt, ap);
    va_end(ap);
    map(c, field, path);
}

/* Where each of intake's fields comes from when the Bundle does not carry it: the element
 * that would have. Reading overwrites these with the exact element. */
static void default_paths(sub_t *c)
{
    static const struct { int res; const char *field, *elem; } d[] = {
        {0, "ref", "identifier"},                  {0, "reason", "reasonCode"},
        {0, "conditions", "reasonCode"},           {0, "findings", "reasonCode"},
        {0, "history", "note"},                    {0, "diagnosis", "note"},
        {0, "current_treatment", "note"},          {0, "expectations", "note"},
        {0, "priority", "priority"},               {0, "consent", "extension"},
        {0, "referral_date", "authoredOn"},        {0, "preferences", "extension"},
        {0, "preferences.clinic_ids", "performer"}, {1, "patient", ""},
        {1, "patient.given_name", "name"},         {1, "patient.family_name", "name"},
        {1, "patient.birth_date", "birthDate"},    {1, "patient.phone", "telecom"},
        {1, "patient.email", "telecom"},           {1, "patient.health_card", "identifier"},
        {1, "patient.language", "communication"},  {1, "patient.postal_code", "address"},
        {2, "referrer", ""},                       {2, "referrer.discipline", "code"},
        {2, "referrer.clinic_id", "organization"}, {2, "referrer.phone", "telecom"},
        {2, "referrer.email", "telecom"},          {2, "referrer.registration_kind", "extension"},
        {3, "referrer.name", "name"},              {3, "referrer.province", "address"},
        {3, "referrer.registration_body", "identifier"}, {3, "referrer.registration_number", "identifier"},
    };
    size_t idx[4] = {c->s->entry_sr, c->s->entry_patient, c->s->entry_role, c->s->entry_practitioner};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        int res = d[i].res;
        fp_t p;
        if (res == 3 && !c->have[3])        /* no Practitioner: the role's reference to one */
            fp(p, "Bundle.entry[%zu].resource.practitioner", idx[2]);
        else if (!c->have[res])
            fp(p, "Bundle.entry");
        else if (*d[i].elem)
            fp(p, "Bundle.entry[%zu].resource.%s", idx[res], d[i].elem);
        else
            fp(p, "Bundle.entry[%zu].resource", idx[res]);
        map(c, d[i].field, p);
    }
}

/* Checks each Identifier; calls on() with each that has a system, with its value (NULL when
 * none), its path and its value's. */
static void each_identifier(sub_t *c, const json_t *res, const char *base,
                            void (*on)(sub_t *, const char *sys, const char *val, const char *path,
                                       const char *vpath))
{
    const json_t *ids = arr_at(&c->rd, res, "identifier", base);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        fp_t p, vp;
        const json_t *id = item_at(&c->rd, ids, i, base, "identifier", p);
        if (!id)
            continue;
        check_keys(&c->rd, id, p, k_identifier, false);
        const char *sys = str_at(&c->rd, id, "system", p);
        const char *val = str_at(&c->rd, id, "value", p);
        fp(vp, "%s.value", p);
        if (sys)
            on(c, sys, val, p, vp);
    }
}

/* A ServiceRequest's identifier: urn:handoff:ref is the ref; the network's own id is the
 * network's to give. */
static void sr_identifier(sub_t *c, const char *sys, const char *val, const char *p, const char *vp)
{
    if (strcmp(sys, HX_FHIR_SYS_REFERRAL_ID) == 0) {
        bad(&c->rd, "invalid", p, "the network assigns the referral id; leave this identifier out");
        return;
    }
    if (strcmp(sys, HX_FHIR_SYS_REF) != 0 || !val)
        return;
    if (*c->s->ref) {
        bad(&c->rd, "duplicate", p, "only one identifier " HX_FHIR_SYS_REF);
        return;
    }
    snprintf(c->s->ref, sizeof c->s->ref, "%s", val);
    put(&c->rd, &c->r->ref, val);
    map(c, "ref", vp);
    if (strlen(val) >= sizeof c->s->ref)
        bad(&c->rd, "value", vp, "must be at most %zu bytes", sizeof c->s->ref - 1);
}

/* Which reason list a coded reasonCode feeds. */
/* *mapped: 0 nothing yet maps "reason", 1 a coded entry's words, 2 an entry of words alone
 * (the reason itself, which wins). */
static void sr_reason(sub_t *c, const json_t *cc, const char *p, size_t i, int *mapped)
{
    rd_t *rd = &c->rd;
    if (!want_object(rd, cc, p))
        return;
    check_keys(rd, cc, p, k_concept, false);
    const char *text = str_at(rd, cc, "text", p);
    const json_t *codings = arr_at(rd, cc, "coding", p);
    bool coded = false;
    const char *display = NULL;
    for (size_t k = 0; k < json_array_size(codings); k++) {
        fp_t cp;
        fp(cp, "%s.coding[%zu]", p, k);
        const char *sys, *code, *disp;
        read_coding(rd, json_array_get(codings, k), cp, &sys, &code, &disp);
        if (!display && disp)
            display = disp;
        if (!sys || !code)
            continue;
        fp_t vp;
        fp(vp, "%s.code", cp);
        if (strcmp(sys, HX_FHIR_SYS_CONDITION) == 0) {
            size_t at = push(rd, &c->r->n_conditions, &c->r->conditions, code);
            mapf(c, vp, "conditions[%zu]", at);
            coded = true;
        } else if (strcmp(sys, HX_FHIR_SYS_FINDING) == 0) {
            size_t at = push(rd, &c->r->n_findings, &c->r->findings, code);
            mapf(c, vp, "findings[%zu]", at);
            coded = true;
        }
    }
    if (coded)
        return;
    fp_t tp;
    if (text) {
        fp(tp, "%s.text", p);
    } else if (display) {                      /* SNOMED CT or another system: its words */
        text = display;
        fp(tp, "%s.coding", p);
    } else {
        bad(rd, "required", p, "reasonCode[%zu] has neither a code of " HX_FHIR_SYS_CONDITION " or " HX_FHIR_SYS_FINDING
            " nor words (text or display)", i);
        return;
    }
    int rank = codings ? 1 : 2;
    if (rank > *mapped) {
        map(c, "reason", tp);
        *mapped = rank;
    }
    append(rd, &c->r->reason, text, "; ");
}

static int section_of(const char *s)
{
    static const char *const sections[] = {"history", "diagnosis", "current-treatment", "expectations", NULL};
    for (int i = 0; sections[i]; i++)
        if (strcmp(s, sections[i]) == 0)
            return i;
    return -1;
}

static void sr_notes(sub_t *c, const json_t *sr, const char *base)
{
    rd_t *rd = &c->rd;
    static const char *const fields[] = {"history", "diagnosis", "current_treatment", "expectations"};
    char **slots[] = {&c->r->history, &c->r->diagnosis, &c->r->current_treatment, &c->r->expectations};
    bool mapped[4] = {false};
    const json_t *notes = arr_at(rd, sr, "note", base);
    for (size_t i = 0; i < json_array_size(notes); i++) {
        fp_t p;
        const json_t *n = item_at(rd, notes, i, base, "note", p);
        if (!n)
            continue;
        check_keys(rd, n, p, k_annotation, false);
        str_at(rd, n, "authorString", p);
        str_at(rd, n, "time", p);
        const char *text = str_at(rd, n, "text", p);
        int section = 0;                        /* unsectioned: history */
        const json_t *ext = arr_at(rd, n, "extension", p);
        for (size_t k = 0; k < json_array_size(ext); k++) {
            fp_t ep;
            const json_t *x = item_at(rd, ext, k, p, "extension", ep);
            if (!x)
                continue;
            const char *url = str_at(rd, x, "url", ep);
            if (!url || strcmp(url, "urn:handoff:ext:section") != 0) {
                if (url && strncmp(url, "urn:handoff:", 12) == 0)
                    bad(rd, "not-supported", ep, "extension '%.60s' does not belong on a note", url);
                continue;
            }
            const char *code = str_at(rd, x, "valueCode", ep);
            int s = code ? section_of(code) : -1;
            fp_t vp;
            fp(vp, "%s.valueCode", ep);
            if (s < 0)
                bad(rd, "value", vp, "must be history, diagnosis, current-treatment or expectations");
            else
                section = s;
        }
        fp_t tp;
        fp(tp, "%s.text", p);
        if (!text) {
            if (!json_object_get(n, "text"))
                bad(rd, "required", tp, "required");
            continue;
        }
        append(rd, slots[section], text, "\n\n");
        if (!mapped[section]) {
            map(c, fields[section], tp);
            mapped[section] = true;
        }
    }
}

static Handoff__Preferences *prefs(sub_t *c)
{
    if (!c->r->preferences) {
        c->r->preferences = malloc(sizeof *c->r->preferences);
        if (!c->r->preferences) {
            bad(&c->rd, "exception", NULL, "out of memory");
            return NULL;
        }
        handoff__preferences__init(c->r->preferences);
    }
    return c->r->preferences;
}

/* valueTime "HH:MM:SS" (or "HH:MM") as intake's "HH:MM". */
static bool hhmm(const char *t, char out[6])
{
    size_t n = t ? strlen(t) : 0;
    if (!(n == 5 || (n == 8 && t[5] == ':' && isdigit((unsigned char)t[6]) && isdigit((unsigned char)t[7]))) ||
        t[2] != ':')
        return false;
    memcpy(out, t, 5);
    out[5] = '\0';
    return true;
}

static void sr_availability(sub_t *c, const json_t *x, const char *ep)
{
    rd_t *rd = &c->rd;
    Handoff__Preferences *pr = prefs(c);
    if (!pr)
        return;
    Handoff__Availability *a = malloc(sizeof *a);
    Handoff__Availability **grown = a ? realloc(pr->availability, (pr->n_availability + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(a);
        bad(rd, "exception", ep, "out of memory");
        return;
    }
    handoff__availability__init(a);
    pr->availability = grown;
    size_t at = pr->n_availability++;
    grown[at] = a;
    fp_t ap;
    fp(ap, "%s", ep);
    mapf(c, ap, "preferences.availability[%zu]", at);
    const json_t *subs = arr_at(rd, x, "extension", ep);
    if (!subs)
        bad(rd, "required", ep, "availability needs sub-extensions day, from and to");
    for (size_t i = 0; i < json_array_size(subs); i++) {
        fp_t p;
        const json_t *s = item_at(rd, subs, i, ep, "extension", p);
        if (!s)
            continue;
        const char *url = str_at(rd, s, "url", p);
        if (!url)
            continue;
        fp_t vp;
        if (strcmp(url, "day") == 0) {
            fp(vp, "%s.valueInteger", p);
            const json_t *d = json_object_get(s, "valueInteger");
            if (!json_is_integer(d))
                bad(rd, "structure", vp, "required: an integer 1 (Monday) to 7");
            else
                a->day = json_integer_value(d) >= 0 && json_integer_value(d) <= 1000 ? (uint32_t)json_integer_value(d)
                                                                                       : 1000;
            mapf(c, vp, "preferences.availability[%zu].day", at);
        } else if (strcmp(url, "from") == 0 || strcmp(url, "to") == 0) {
            fp(vp, "%s.valueTime", p);
            const char *t = str_at(rd, s, "valueTime", p);
            char hm[6];
            if (!t && !json_object_get(s, "valueTime"))
                bad(rd, "required", vp, "required: a time HH:MM:SS");
            else if (t && !hhmm(t, hm))
                bad(rd, "value", vp, "must be a time HH:MM:SS");
            else if (t)
                put(rd, url[0] == 'f' ? &a->from : &a->to, hm);
            mapf(c, vp, "preferences.availability[%zu].%s", at, url);
        } else {
            bad(rd, "not-supported", p, "availability has sub-extensions day, from and to (not '%.40s')", url);
        }
    }
}

/* The ServiceRequest's own extensions. */
static void sr_extensions(sub_t *c, const json_t *sr, const char *base)
{
    rd_t *rd = &c->rd;
    const json_t *ext = arr_at(rd, sr, "extension", base);
    for (size_t i = 0; i < json_array_size(ext); i++) {
        fp_t p, vp;
        const json_t *x = item_at(rd, ext, i, base, "extension", p);
        if (!x)
            continue;
        const char *url = str_at(rd, x, "url", p);
        if (!url || strncmp(url, "urn:handoff:ext:", 16) != 0) {
            if (url && strncmp(url, "urn:handoff:", 12) == 0)
                bad(rd, "not-supported", p, "unknown extension '%.60s'", url);
            continue;
        }
        const char *name = url + 16;
        if (strcmp(name, "consent") == 0) {
            fp(vp, "%s.valueCode", p);
            const char *v = str_at(rd, x, "valueCode", p);
            if (v && strcmp(v, "given") == 0)
                c->r->consent = HANDOFF__CONSENT__CONSENT_GIVEN;
            else if (v && strcmp(v, "withheld") == 0)
                c->r->consent = HANDOFF__CONSENT__CONSENT_WITHHELD;
            else
                bad(rd, "value", vp, "must be given or withheld");
            map(c, "consent", vp);
        } else if (strcmp(name, "session-language") == 0) {
            fp(vp, "%s.valueCode", p);
            const char *v = str_at(rd, x, "valueCode", p);
            Handoff__Preferences *pr = prefs(c);
            if (!v)
                bad(rd, "required", vp, "required: a language code (en, fr)");
            else if (pr)
                put(rd, &pr->language, v);
            map(c, "preferences.language", vp);
        } else if (strcmp(name, "virtual-ok") == 0) {
            fp(vp, "%s.valueBoolean", p);
            const json_t *v = json_object_get(x, "valueBoolean");
            Handoff__Preferences *pr = prefs(c);
            if (!json_is_boolean(v))
                bad(rd, "structure", vp, "required: true or false");
            else if (pr)
                pr->virtual_ok = json_is_true(v);
        } else if (strcmp(name, "massage-minutes") == 0) {
            fp(vp, "%s.valueInteger", p);
            const json_t *v = json_object_get(x, "valueInteger");
            Handoff__Preferences *pr = prefs(c);
            json_int_t m = json_integer_value(v);
            if (!json_is_integer(v))
                bad(rd, "structure", vp, "required: an integer (30, 45, 60 or 90)");
            else if (pr)
                pr->massage_minutes = m > 0 && m < 100000 ? (uint32_t)m : 100000;
            map(c, "preferences.massage_minutes", vp);
        } else if (strcmp(name, "availability") == 0) {
            sr_availability(c, x, p);
        } else {
            bad(rd, "not-supported", p, "unknown extension '%.60s' on a ServiceRequest", url);
        }
    }
}

static void sr_performers(sub_t *c, const json_t *sr, const char *base)
{
    const json_t *perf = arr_at(&c->rd, sr, "performer", base);
    for (size_t i = 0; i < json_array_size(perf); i++) {
        fp_t p;
        fp(p, "%s.performer[%zu]", base, i);
        const char *ref = read_reference(&c->rd, json_array_get(perf, i), p);
        const char *id = ref_id(ref, "Organization");
        fp_t rp;
        fp(rp, "%s.reference", p);
        if (!id) {
            if (json_is_object(json_array_get(perf, i)))
                bad(&c->rd, "invalid", rp, "must be Organization/CLINIC (a preferred clinic)");
            continue;
        }
        Handoff__Preferences *pr = prefs(c);
        if (!pr)
            return;
        size_t at = push(&c->rd, &pr->n_clinic_ids, &pr->clinic_ids, id);
        mapf(c, rp, "preferences.clinic_ids[%zu]", at);
    }
}

/* Entry idx's resource, its path in base, its elements checked against keys. */
static const json_t *entry_resource(sub_t *c, size_t idx, fp_t base, const char *const *keys)
{
    const json_t *res = c->e[idx].res;
    fp(base, "Bundle.entry[%zu].resource", idx);
    check_keys(&c->rd, res, base, keys, true);
    return res;
}

/* active, when present, is true or false. */
static void check_active(rd_t *rd, const json_t *res, const char *base)
{
    const json_t *v = json_object_get(res, "active");
    if (v && !json_is_boolean(v)) {
        fp_t p;
        fp(p, "%s.active", base);
        bad(rd, "structure", p, "must be true or false");
    }
}

/* The reference element key of res (at base) to an entry of type t; when it is absent, the
 * problem required says (NULL: it may be left out). */
static void entry_ref(sub_t *c, const json_t *res, const char *base, const char *key, hx_fhir_type_t t,
                      const char *required)
{
    const json_t *r = obj_at(&c->rd, res, key, base);
    fp_t p;
    fp(p, "%s.%s", base, key);
    if (r)
        resolve_to(c, r, p, t);
    else if (required && !json_object_get(res, key))
        bad(&c->rd, "required", p, "%s", required);
}

static void read_service_request(sub_t *c, size_t idx)
{
    static const char *const keys[] = {"identifier", "status", "intent", "priority", "reasonCode", "subject",
                                       "authoredOn", "requester", "performer", "note", "supportingInfo", NULL};
    static const char *const statuses[] = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                                           "unknown", NULL};
    static const char *const intents[] = {"order", NULL};
    static const char *const priorities[] = {"routine", "urgent", "asap", "stat", NULL};
    rd_t *rd = &c->rd;
    fp_t base, p;
    const json_t *sr = entry_resource(c, idx, base, keys);
    if (json_object_get(sr, "code") || json_object_get(sr, "performerType")) {
        fp(p, "%s.%s", base, json_object_get(sr, "code") ? "code" : "performerType");
        bad(rd, "not-supported", p, "triage decides the disciplines: leave code and performerType out");
    }
    const char *status = code_at(rd, sr, "status", base, statuses);
    if (status && strcmp(status, "active") != 0) {
        fp(p, "%s.status", base);
        bad(rd, "business-rule", p, "a submitted referral is active (not %s)", status);
    }
    code_at(rd, sr, "intent", base, intents);
    const char *prio = code_at(rd, sr, "priority", base, priorities);
    if (prio)
        c->r->priority = hx_priority_from_text(prio);
    fp(p, "%s.priority", base);
    map(c, "priority", p);

    each_identifier(c, sr, base, sr_identifier);

    const json_t *reasons = arr_at(rd, sr, "reasonCode", base);
    int mapped = 0;
    for (size_t i = 0; i < json_array_size(reasons); i++) {
        fp(p, "%s.reasonCode[%zu]", base, i);
        sr_reason(c, json_array_get(reasons, i), p, i, &mapped);
    }
    sr_notes(c, sr, base);

    const char *authored = str_at(rd, sr, "authoredOn", base);
    fp(p, "%s.authoredOn", base);
    uint64_t ms;
    if (authored && (strlen(authored) < 10 || hx_fhir_parse_instant(authored, &ms) != 0))
        bad(rd, "value", p, "must be a date or dateTime");
    else if (authored) {
        char day[11];
        memcpy(day, authored, 10);
        day[10] = '\0';
        put(rd, &c->r->referral_date, day);
    }

    entry_ref(c, sr, base, "subject", HX_FHIR_PATIENT, "required: the Patient entry");
    entry_ref(c, sr, base, "requester", HX_FHIR_PRACTITIONER_ROLE, "required: the referrer's PractitionerRole entry");
    const json_t *info = arr_at(rd, sr, "supportingInfo", base);
    for (size_t i = 0; i < json_array_size(info); i++) {
        fp(p, "%s.supportingInfo[%zu]", base, i);
        resolve_to(c, json_array_get(info, i), p, HX_FHIR_DOCUMENT_REFERENCE);
    }
    sr_performers(c, sr, base);
    sr_extensions(c, sr, base);
}

/* telecom: the first phone and the first email (field: the intake path's base for the map, or
 * NULL to only check them). */
static void read_telecom(sub_t *c, const json_t *res, const char *base, char **phone, char **email,
                         const char *field)
{
    rd_t *rd = &c->rd;
    const json_t *tel = arr_at(rd, res, "telecom", base);
    bool got_phone = false, got_email = false;
    for (size_t i = 0; i < json_array_size(tel); i++) {
        fp_t p, vp;
        const json_t *t = item_at(rd, tel, i, base, "telecom", p);
        fp(vp, "%s.value", p);
        if (!t)
            continue;
        check_keys(rd, t, p, k_telecom, false);
        const char *sys = code_at(rd, t, "system", p, telecom_systems);
        const char *val = str_at(rd, t, "value", p);
        if (!sys || !val)
            continue;
        bool is_phone = strcmp(sys, "phone") == 0, is_email = strcmp(sys, "email") == 0;
        if ((is_phone && got_phone) || (is_email && got_email) || (!is_phone && !is_email))
            continue;                           /* the first of each; fax, pager ... are not kept */
        put(rd, is_phone ? phone : email, val);
        got_phone |= is_phone;
        got_email |= is_email;
        if (field)
            mapf(c, vp, "%s.%s", field, is_phone ? "phone" : "email");
    }
}

static void patient_identifier(sub_t *c, const char *sys, const char *val, const char *p, const char *vp)
{
    (void)p;
    if (!val || strcmp(sys, "urn:handoff:health-card") != 0 || !hx_is_blank(c->r->patient->health_card))
        return;                                 /* a chart number, ...: the network keeps none */
    put(&c->rd, &c->r->patient->health_card, val);
    map(c, "patient.health_card", vp);
}

static void registration_identifier(sub_t *c, const char *sys, const char *val, const char *p, const char *vp)
{
    static const char prefix[] = "urn:handoff:registration:";
    (void)p;
    if (!val || strncmp(sys, prefix, sizeof prefix - 1) != 0 || !hx_is_blank(c->r->referrer->registration_number))
        return;                                 /* the first registration is the referrer's */
    put(&c->rd, &c->r->referrer->registration_body, sys + sizeof prefix - 1);
    put(&c->rd, &c->r->referrer->registration_number, val);
    map(c, "referrer.registration_body", vp);
    map(c, "referrer.registration_number", vp);
}

/* name[0]: given names joined by spaces and family; or its text (Practitioner). */
static void read_name(sub_t *c, const json_t *res, const char *base, char **given, char **family, char **text,
                      const char *gfield, const char *ffield)
{
    rd_t *rd = &c->rd;
    const json_t *names = arr_at(rd, res, "name", base);
    for (size_t i = 0; i < json_array_size(names); i++) {
        fp_t p;
        const json_t *n = item_at(rd, names, i, base, "name", p);
        if (!n)
            continue;
        check_keys(rd, n, p, k_name, false);
        const char *fam = str_at(rd, n, "family", p);
        const char *txt = str_at(rd, n, "text", p);
        str_at(rd, n, "use", p);
        const json_t *g = arr_at(rd, n, "given", p);
        if (i > 0)
            continue;                           /* the first name is the one used */
        fp_t gp, fpth;
        for (size_t k = 0; k < json_array_size(g); k++) {
            fp(gp, "%s.given[%zu]", p, k);
            const json_t *v = json_array_get(g, k);
            if (!json_is_string(v) || !*json_string_value(v)) {
                bad(rd, "structure", gp, "must be a non-empty string");
                continue;
            }
            if (given)
                append(rd, given, json_string_value(v), " ");
            else if (text)
                append(rd, text, json_string_value(v), " ");
        }
        if (g && gfield) {
            fp(gp, "%s.given", p);
            map(c, gfield, gp);
        }
        if (family && fam) {
            put(rd, family, fam);
            fp(fpth, "%s.family", p);
            map(c, ffield, fpth);
        } else if (!family && text && fam) {
            append(rd, text, fam, " ");
        }
        if (text && txt && !given) {            /* the text says the whole name */
            put(rd, text, txt);
            fp(fpth, "%s.text", p);
            map(c, gfield, fpth);
        }
    }
}

/* address: each one checked; the first one's element key into field, mapped as intake's path
 * mapped. */
static void read_address(sub_t *c, const json_t *res, const char *base, const char *key, char **field,
                         const char *mapped)
{
    rd_t *rd = &c->rd;
    const json_t *addr = arr_at(rd, res, "address", base);
    for (size_t i = 0; i < json_array_size(addr); i++) {
        fp_t p;
        const json_t *a = item_at(rd, addr, i, base, "address", p);
        if (!a)
            continue;
        check_keys(rd, a, p, k_address, false);
        const char *v = str_at(rd, a, key, p);
        if (i == 0 && v) {
            put(rd, field, v);
            fp_t vp;
            fp(vp, "%s.%s", p, key);
            map(c, mapped, vp);
        }
    }
}

static void read_patient(sub_t *c, size_t idx)
{
    static const char *const keys[] = {"identifier", "active", "name", "telecom", "gender", "birthDate", "address",
                                       "communication", NULL};
    static const char *const genders[] = {"male", "female", "other", "unknown", NULL};
    rd_t *rd = &c->rd;
    Handoff__Patient *pat = c->r->patient;
    fp_t base, p;
    const json_t *pt = entry_resource(c, idx, base, keys);
    code_at(rd, pt, "gender", base, genders);
    check_active(rd, pt, base);
    read_name(c, pt, base, &pat->given_name, &pat->family_name, NULL, "patient.given_name", "patient.family_name");
    const char *born = str_at(rd, pt, "birthDate", base);
    if (born)
        put(rd, &pat->birth_date, born);        /* intake checks the date */
    read_telecom(c, pt, base, &pat->phone, &pat->email, "patient");
    each_identifier(c, pt, base, patient_identifier);

    read_address(c, pt, base, "postalCode", &pat->postal_code, "patient.postal_code");

    const json_t *comm = arr_at(rd, pt, "communication", base);
    bool preferred_seen = false;
    for (size_t i = 0; i < json_array_size(comm); i++) {
        const json_t *cm = item_at(rd, comm, i, base, "communication", p);
        if (!cm)
            continue;
        static const char *const ck[] = {"id", "extension", "language", "preferred", NULL};
        check_keys(rd, cm, p, ck, false);
        const json_t *pref = json_object_get(cm, "preferred");
        fp_t lp;
        if (pref && !json_is_boolean(pref)) {
            fp(lp, "%s.preferred", p);
            bad(rd, "structure", lp, "must be true or false");
        }
        fp(lp, "%s.language", p);
        const json_t *lang = json_object_get(cm, "language");
        if (!lang) {
            bad(rd, "required", lp, "required");
            continue;
        }
        size_t at = 0;
        const char *code = concept_code(rd, lang, lp, "urn:ietf:bcp:47", &at);
        if (!code) {
            if (json_is_object(lang))
                bad(rd, "required", lp, "needs a coding of urn:ietf:bcp:47 (en, fr, ...)");
            continue;
        }
        bool preferred = json_is_true(pref);
        if ((i == 0 || (preferred && !preferred_seen))) {
            put(rd, &pat->language, code);
            fp_t cp;
            fp(cp, "%s.coding[%zu].code", lp, at);
            map(c, "patient.language", cp);
        }
        preferred_seen |= preferred;
    }
}

static void read_role(sub_t *c, size_t idx)
{
    static const char *const keys[] = {"identifier", "active", "practitioner", "organization", "code", "specialty",
                                       "telecom", NULL};
    rd_t *rd = &c->rd;
    Handoff__Referrer *f = c->r->referrer;
    fp_t base, p;
    const json_t *role = entry_resource(c, idx, base, keys);
    const json_t *ext = arr_at(rd, role, "extension", base);
    for (size_t i = 0; i < json_array_size(ext); i++) {
        const json_t *x = item_at(rd, ext, i, base, "extension", p);
        const char *url = x ? str_at(rd, x, "url", p) : NULL;
        if (url && strcmp(url, "urn:handoff:ext:registration-kind") == 0)
            bad(rd, "invalid", p, "intake sets the registration kind; leave it out");
        else if (url && strncmp(url, "urn:handoff:", 12) == 0)
            bad(rd, "not-supported", p, "unknown extension '%.60s' on a PractitionerRole", url);
    }
    check_active(rd, role, base);
    const json_t *codes = arr_at(rd, role, "code", base);
    for (size_t i = 0; i < json_array_size(codes); i++) {
        fp(p, "%s.code[%zu]", base, i);
        size_t at = 0;
        const char *code = concept_code(rd, json_array_get(codes, i), p, HX_FHIR_SYS_DISCIPLINE, &at);
        if (!code || f->discipline)
            continue;
        fp_t cp;
        fp(cp, "%s.coding[%zu].code", p, at);
        f->discipline = hx_fhir_discipline_from_code(code);
        if (!f->discipline)
            bad(rd, "value", cp, "must be physiotherapy, massage-therapy or physician");
        map(c, "referrer.discipline", cp);
    }
    const json_t *spec = arr_at(rd, role, "specialty", base);
    for (size_t i = 0; i < json_array_size(spec); i++) {
        fp(p, "%s.specialty[%zu]", base, i);
        concept_code(rd, json_array_get(spec, i), p, HX_FHIR_SYS_DISCIPLINE, NULL);
    }
    read_telecom(c, role, base, &f->phone, &f->email, "referrer");
    each_identifier(c, role, base, registration_identifier);
    put(rd, &f->clinic_id, c->clinic);
    const json_t *org = obj_at(rd, role, "organization", base);
    if (org) {
        fp(p, "%s.organization", base);
        const char *ref = read_reference(rd, org, p);
        const char *id = ref_id(ref, "Organization");
        fp_t rp;
        fp(rp, "%s.reference", p);
        if (ref && (!id || strcmp(id, c->clinic) != 0))
            bad(rd, "business-rule", rp, "must be Organization/%.40s: the submitting clinic", c->clinic);
        map(c, "referrer.clinic_id", rp);
    }
    entry_ref(c, role, base, "practitioner", HX_FHIR_PRACTITIONER,
              c->have[3] ? "required: the referrer's Practitioner entry" : NULL);
}

static void read_practitioner(sub_t *c, size_t idx)
{
    static const char *const keys[] = {"identifier", "active", "name", "telecom", "address", "gender",
                                       "communication", "qualification", NULL};
    Handoff__Referrer *f = c->r->referrer;
    fp_t base;
    const json_t *pr = entry_resource(c, idx, base, keys);
    check_active(&c->rd, pr, base);
    read_name(c, pr, base, NULL, NULL, &f->name, "referrer.name", NULL);
    if (hx_is_blank(f->phone) && hx_is_blank(f->email)) {
        read_telecom(c, pr, base, &f->phone, &f->email, "referrer");
    } else {                                    /* the role's contact wins; these are only checked */
        char *phone = (char *)protobuf_c_empty_string, *email = (char *)protobuf_c_empty_string;
        read_telecom(c, pr, base, &phone, &email, NULL);
        if (phone != protobuf_c_empty_string)
            free(phone);
        if (email != protobuf_c_empty_string)
            free(email);
    }
    each_identifier(c, pr, base, registration_identifier);
    read_address(c, pr, base, "state", &f->province, "referrer.province");
}

static void read_document(sub_t *c, size_t idx)
{
    static const char *const keys[] = {"status", "docStatus", "type", "category", "subject", "date", "description",
                                       "content", NULL};
    static const char *const statuses[] = {"current", NULL};
    rd_t *rd = &c->rd;
    fp_t base, p;
    const json_t *doc = entry_resource(c, idx, base, keys);
    code_at(rd, doc, "status", base, statuses);
    str_at(rd, doc, "description", base);
    str_at(rd, doc, "date", base);
    entry_ref(c, doc, base, "subject", HX_FHIR_PATIENT, NULL);
    const json_t *content = arr_at(rd, doc, "content", base);
    fp(p, "%s.content", base);
    if (!content) {
        if (!json_object_get(doc, "content"))
            bad(rd, "required", p, "required: content[0].attachment with the file");
        return;
    }
    if (json_array_size(content) > 1) {
        bad(rd, "not-supported", p, "one content per DocumentReference (has %zu)", json_array_size(content));
        return;
    }
    fp(p, "%s.content[0]", base);
    const json_t *c0 = json_array_get(content, 0);
    if (!want_object(rd, c0, p))
        return;
    static const char *const ck[] = {"id", "extension", "attachment", "format", NULL};
    check_keys(rd, c0, p, ck, false);
    fp_t ap;
    fp(ap, "%s.attachment", p);
    const json_t *att = json_object_get(c0, "attachment");
    if (!att) {
        bad(rd, "required", ap, "required");
        return;
    }
    if (c->s->n_attach >= HX_FHIR_ATTACH_MAX) {
        bad(rd, "too-costly", base, "at most %d attachments", HX_FHIR_ATTACH_MAX);
        return;
    }
    Handoff__Attachment *a = read_attachment(rd, att, ap);
    if (a) {
        snprintf(c->s->attach_path[c->s->n_attach], sizeof c->s->attach_path[0], "Bundle.entry[%zu].resource", idx);
        c->s->attach[c->s->n_attach++] = a;
    }
}

/* The Bundle itself and its entries: each a POST of a resource this file reads. */
static void read_entries(sub_t *c, const json_t *entries, size_t n)
{
    static const char *const ek[] = {"fullUrl", "resource", "request", NULL};
    static const char *const rk[] = {"method", "url", "ifNoneExist", NULL};
    rd_t *rd = &c->rd;
    for (size_t i = 0; i < n; i++) {
        entry_t *e = &c->e[i];
        e->type = HX_FHIR_TYPE_COUNT;
        fp_t base, p;
        const json_t *en = item_at(rd, entries, i, "Bundle", "entry", base);
        if (!en)
            continue;
        check_keys(rd, en, base, ek, false);
        e->full_url = str_at(rd, en, "fullUrl", base);
        const json_t *res = json_object_get(en, "resource");
        const json_t *req = json_object_get(en, "request");
        fp(p, "%s.resource", base);
        if (!res)
            bad(rd, "required", p, "required: every entry carries a resource");
        else if (want_object(rd, res, p)) {
            const char *tn = str_at(rd, res, "resourceType", p);
            hx_fhir_type_t t = tn ? hx_fhir_type_from_name(tn) : HX_FHIR_TYPE_COUNT;
            fp_t tp;
            fp(tp, "%s.resourceType", p);
            if (!tn)
                bad(rd, "required", tp, "required");
            else if (t != HX_FHIR_SERVICE_REQUEST && t != HX_FHIR_PATIENT && t != HX_FHIR_PRACTITIONER_ROLE &&
                     t != HX_FHIR_PRACTITIONER && t != HX_FHIR_DOCUMENT_REFERENCE)
                bad(rd, "not-supported", tp,
                    "'%.40s' is not taken in a referral (ServiceRequest, Patient, PractitionerRole, Practitioner, "
                    "DocumentReference)", tn);
            else {
                e->type = t;
                e->res = res;
            }
            e->id = str_at(rd, res, "id", p);
            fp(tp, "%s.id", p);
            if (e->id && !hx_fhir_id_valid(e->id))
                bad(rd, "value", tp, "must be a FHIR id ([A-Za-z0-9-.], 1 to 64)");
        }
        fp(p, "%s.request", base);
        if (!req) {
            bad(rd, "required", p, "required: a transaction entry says its request (POST)");
            continue;
        }
        if (!want_object(rd, req, p))
            continue;
        check_keys(rd, req, p, rk, false);
        const char *method = str_at(rd, req, "method", p);
        const char *url = str_at(rd, req, "url", p);
        fp_t mp;
        fp(mp, "%s.method", p);
        if (!method && !json_object_get(req, "method"))
            bad(rd, "required", mp, "required: POST");
        else if (method && strcmp(method, "POST") != 0)
            bad(rd, "not-supported", mp, "must be POST (a submission creates its resources)");
        fp(mp, "%s.url", p);
        const char *tn = e->res ? hx_fhir_type_name(e->type) : NULL;
        if (!url && !json_object_get(req, "url"))
            bad(rd, "required", mp, "required: the resource type");
        else if (url && tn && strcmp(url, tn) != 0)
            bad(rd, "invalid", mp, "must be %s (the entry's resource type)", tn);
        const char *ine = str_at(rd, req, "ifNoneExist", p);
        if (ine) {
            fp(mp, "%s.ifNoneExist", p);
            if (e->type != HX_FHIR_SERVICE_REQUEST)
                bad(rd, "not-supported", mp, "only the ServiceRequest's entry may be conditional");
            else if (strncmp(ine, IF_NONE_EXIST, sizeof IF_NONE_EXIST - 1) != 0 || !ine[sizeof IF_NONE_EXIST - 1])
                bad(rd, "not-supported", mp, "must be identifier=" HX_FHIR_SYS_REF "|REF");
            else
                c->s->conditional = true;
        }
        /* one each of the four; any number of DocumentReferences */
        static const hx_fhir_type_t once[] = {HX_FHIR_SERVICE_REQUEST, HX_FHIR_PATIENT, HX_FHIR_PRACTITIONER_ROLE,
                                              HX_FHIR_PRACTITIONER};
        size_t *where[] = {&c->s->entry_sr, &c->s->entry_patient, &c->s->entry_role, &c->s->entry_practitioner};
        for (size_t k = 0; k < 4; k++) {
            if (!e->res || e->type != once[k])
                continue;
            if (c->have[k]) {
                bad(rd, "duplicate", base, "a second %s (the first is Bundle.entry[%zu])", hx_fhir_type_name(once[k]),
                    *where[k]);
                e->res = NULL;
                continue;
            }
            c->have[k] = true;
            *where[k] = i;
            if (e->full_url) {
                c->s->full_url[k] = strdup(e->full_url);
                if (!c->s->full_url[k])
                    bad(rd, "exception", NULL, "out of memory");
            }
        }
    }
    for (size_t i = 0; i < n; i++)            /* each reference must name one entry */
        for (size_t k = 0; k < i; k++)
            if (c->e[i].full_url && c->e[k].full_url && strcmp(c->e[i].full_url, c->e[k].full_url) == 0) {
                fp_t p;
                fp(p, "Bundle.entry[%zu].fullUrl", i);
                bad(rd, "duplicate", p, "the same fullUrl as Bundle.entry[%zu]", k);
                break;
            }
}

void hx_fhir_submission_free(hx_fhir_submission_t *s)
{
    if (!s)
        return;
    if (s->referral)
        handoff__referral__free_unpacked(s->referral, NULL);
    for (size_t i = 0; i < s->n_attach && i < HX_FHIR_ATTACH_MAX; i++)
        if (s->attach[i])
            handoff__attachment__free_unpacked(s->attach[i], NULL);
    for (size_t i = 0; i < 4; i++)
        free(s->full_url[i]);
    json_decref(s->paths);
    memset(s, 0, sizeof *s);
}

/* The Bundle's own shape; false when its entries cannot be read at all. */
static bool read_bundle(rd_t *rd, const json_t *b, size_t max_entries)
{
    static const char *const keys[] = {"type", "entry", "timestamp", "identifier", NULL};
    if (!json_is_object(b)) {
        bad(rd, "structure", "Bundle", "must be a JSON object (a Bundle)");
        return false;
    }
    const char *rt = str_at(rd, b, "resourceType", "Bundle");
    if (!rt || strcmp(rt, "Bundle") != 0) {
        bad(rd, "invalid", "Bundle.resourceType", "must be Bundle (a transaction)");
        return false;
    }
    check_keys(rd, b, "Bundle", keys, true);
    const char *type = str_at(rd, b, "type", "Bundle");
    if (!type || strcmp(type, "transaction") != 0)
        bad(rd, "invalid", "Bundle.type", "must be transaction");
    const json_t *entries = json_object_get(b, "entry");
    size_t n = json_array_size(entries);
    if (!json_is_array(entries) || n == 0)
        bad(rd, "required", "Bundle.entry", "required: the referral's entries");
    else if (n > max_entries)
        bad(rd, "too-costly", "Bundle.entry", "at most %zu entries (has %zu)", max_entries, n);
    return rd->n == 0;
}

static int fail_submission(sub_t *c, json_t **outcome)
{
    c->s->referral = c->r;
    hx_fhir_submission_free(c->s);
    free(c->e);
    return refuse(&c->rd, outcome);
}

int hx_fhir_read_submission(const json_t *bundle, const char *clinic, size_t max_entries, hx_fhir_submission_t *s,
                            json_t **outcome)
{
    if (outcome)
        *outcome = NULL;
    if (!s)
        return -1;
    memset(s, 0, sizeof *s);
    sub_t c = {.s = s, .clinic = clinic ? clinic : ""};
    if (!read_bundle(&c.rd, bundle, max_entries))
        return refuse(&c.rd, outcome);
    const json_t *entries = json_object_get(bundle, "entry");
    c.n = json_array_size(entries);
    c.e = calloc(c.n, sizeof *c.e);
    s->paths = json_object();
    c.r = malloc(sizeof *c.r);
    Handoff__Patient *pat = malloc(sizeof *pat);
    Handoff__Referrer *ref = malloc(sizeof *ref);
    if (!c.e || !s->paths || !c.r || !pat || !ref) {
        free(pat);
        free(ref);
        free(c.r);
        c.r = NULL;
        bad(&c.rd, "exception", NULL, "out of memory");
        return fail_submission(&c, outcome);
    }
    handoff__referral__init(c.r);
    handoff__patient__init(pat);
    handoff__referrer__init(ref);
    c.r->patient = pat;
    c.r->referrer = ref;
    put(&c.rd, &c.r->referring_clinic, c.clinic);

    read_entries(&c, entries, c.n);
    if (!c.have[0])
        bad(&c.rd, "required", "Bundle.entry", "a ServiceRequest entry is required (the referral)");
    if (!c.have[1])
        bad(&c.rd, "required", "Bundle.entry", "a Patient entry is required (the ServiceRequest's subject)");
    if (!c.have[2])
        bad(&c.rd, "required", "Bundle.entry", "a PractitionerRole entry is required (the ServiceRequest's requester)");
    if (c.rd.n)
        return fail_submission(&c, outcome);

    default_paths(&c);
    read_service_request(&c, s->entry_sr);
    read_patient(&c, s->entry_patient);
    read_role(&c, s->entry_role);
    if (c.have[3])
        read_practitioner(&c, s->entry_practitioner);
    for (size_t i = 0; i < c.n; i++)
        if (c.e[i].res && c.e[i].type == HX_FHIR_DOCUMENT_REFERENCE)
            read_document(&c, i);
    if (s->conditional) {
        const char *ine = json_string_value(json_object_get(
            json_object_get(json_array_get(entries, s->entry_sr), "request"), "ifNoneExist"));
        if (ine && strcmp(ine + sizeof IF_NONE_EXIST - 1, s->ref) != 0) {
            fp_t p;
            fp(p, "Bundle.entry[%zu].request.ifNoneExist", s->entry_sr);
            bad(&c.rd, "invalid", p, "must name the ServiceRequest's own ref (%.60s)", s->ref);
        }
    }
    if (c.rd.n)
        return fail_submission(&c, outcome);
    s->referral = c.r;
    if (!c.have[3])
        s->entry_practitioner = SIZE_MAX;      /* no Practitioner entry: an index no entry has */
    free(c.e);
    return 0;
}

json_t *hx_fhir_submission_outcome(const hx_fhir_submission_t *s, const hx_errors_t *errs)
{
    char fallback[64];
    snprintf(fallback, sizeof fallback, "Bundle.entry[%zu].resource", s ? s->entry_sr : 0);
    json_t *oo = NULL;
    size_t n = errs ? (errs->count < HX_ERRORS_MAX ? errs->count : HX_ERRORS_MAX) : 0;
    for (size_t i = 0; i < n; i++) {
        const hx_error_t *e = &errs->items[i];
        /* the field, else the nearest enclosing one the Bundle mapped */
        char field[96];
        snprintf(field, sizeof field, "%s", e->path);
        const char *expr = NULL;
        while (!expr && *field) {
            expr = s ? json_string_value(json_object_get(s->paths, field)) : NULL;
            char *cut = strrchr(field, '.');
            char *br = strrchr(field, '[');
            if (br && (!cut || br > cut))
                cut = br;
            if (cut)
                *cut = '\0';
            else
                field[0] = '\0';
        }
        const char *code = strncmp(e->why, "required", 8) == 0 ? "required" : "invalid";
        char msg[300];
        snprintf(msg, sizeof msg, "%s: %s", e->path, e->why);
        if (!oo)
            oo = hx_fhir_outcome("error", code, msg, expr ? expr : fallback);
        else
            hx_fhir_outcome_add(oo, "error", code, msg, expr ? expr : fallback);
    }
    if (!oo)
        oo = hx_fhir_outcome("error", "invalid", "the referral was refused", fallback);
    return oo;
}

/* ---- JSON Patch (RFC 6902) ------------------------------------------------------------------ */

/* One reference token of a JSON Pointer, unescaped (~1 is /, ~0 is ~); -1 on a bad escape. */
static int pointer_token(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    const char *s = *p;
    for (; *s && *s != '/'; s++) {
        char c = *s;
        if (c == '~') {
            if (s[1] == '0')
                c = '~';
            else if (s[1] == '1')
                c = '/';
            else
                return -1;
            s++;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    *p = s;
    return 0;
}

/* An array index token: digits without a leading zero; -1 otherwise. */
static long array_index(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 9 || strspn(t, "0123456789") != n || (n > 1 && t[0] == '0'))
        return -1;
    return strtol(t, NULL, 10);
}

/* Walks to the container of the pointer's last token: the container (borrowed) and the token,
 * or NULL with why. An empty pointer (the whole document) gives *root true. */
static json_t *pointer_parent(json_t *doc, const char *ptr, char *last, size_t cap, bool *root, const char **why)
{
    *root = false;
    if (*ptr == '\0') {
        *root = true;
        return NULL;
    }
    if (*ptr != '/') {
        *why = "a JSON Pointer starts with /";
        return NULL;
    }
    json_t *cur = doc;
    const char *p = ptr;
    while (*p == '/') {
        p++;
        if (pointer_token(&p, last, cap) != 0) {
            *why = "a JSON Pointer escapes ~ as ~0 and / as ~1";
            return NULL;
        }
        if (*p == '\0')
            return cur;
        if (json_is_object(cur)) {
            cur = json_object_get(cur, last);
        } else if (json_is_array(cur)) {
            long i = array_index(last);
            cur = i >= 0 ? json_array_get(cur, (size_t)i) : NULL;
        } else {
            cur = NULL;
        }
        if (!cur) {
            *why = "the path does not exist";
            return NULL;
        }
    }
    *why = "the path does not exist";
    return NULL;
}

/* The value at ptr (borrowed), or NULL. */
static json_t *pointer_get(json_t *doc, const char *ptr, const char **why)
{
    char last[256];
    bool root;
    json_t *parent = pointer_parent(doc, ptr, last, sizeof last, &root, why);
    if (root)
        return doc;
    json_t *v = NULL;
    if (json_is_object(parent))
        v = json_object_get(parent, last);
    else if (json_is_array(parent)) {
        long i = array_index(last);
        v = i >= 0 ? json_array_get(parent, (size_t)i) : NULL;
    }
    if (!v && parent)
        *why = "the path does not exist";
    return v;
}

/* add (replace: the member or element must exist); takes the reference to value. */
static int pointer_put(json_t **doc, const char *ptr, json_t *value, bool replace, const char **why)
{
    char last[256];
    bool root;
    json_t *parent = pointer_parent(*doc, ptr, last, sizeof last, &root, why);
    if (root) {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    int rc = -1;
    if (json_is_object(parent)) {
        if (replace && !json_object_get(parent, last))
            *why = "the path does not exist";
        else
            rc = json_object_set_new(parent, last, value) == 0 ? 0 : -2;
        if (rc == 0)
            return 0;
    } else if (json_is_array(parent)) {
        size_t size = json_array_size(parent);
        long i = strcmp(last, "-") == 0 && !replace ? (long)size : array_index(last);
        if (i < 0 || (size_t)i > size || (replace && (size_t)i == size))
            *why = "the array index is out of range";
        else if (replace)
            rc = json_array_set_new(parent, (size_t)i, value) == 0 ? 0 : -2;
        else
            rc = json_array_insert_new(parent, (size_t)i, value) == 0 ? 0 : -2;
        if (rc == 0)
            return 0;
    } else if (parent) {
        *why = "the path's parent is neither an object nor an array";
    }
    if (rc == -1)
        json_decref(value);                     /* the set calls consume it even when failing */
    return -1;
}

static int pointer_remove(json_t *doc, const char *ptr, const char **why)
{
    char last[256];
    bool root;
    json_t *parent = pointer_parent(doc, ptr, last, sizeof last, &root, why);
    if (root) {
        *why = "the whole document cannot be removed";
        return -1;
    }
    if (json_is_object(parent)) {
        if (json_object_del(parent, last) == 0)
            return 0;
    } else if (json_is_array(parent)) {
        long i = array_index(last);
        if (i >= 0 && json_array_remove(parent, (size_t)i) == 0)
            return 0;
    } else if (!parent) {
        return -1;
    }
    *why = "the path does not exist";
    return -1;
}

/* One operation; 0, or -1 with why. */
static int patch_op(json_t **doc, const json_t *op, const char **why)
{
    const char *name = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    const char *from = json_string_value(json_object_get(op, "from"));
    json_t *value = json_object_get(op, "value");
    if (!name || !path) {
        *why = "needs op and path (strings)";
        return -1;
    }
    bool needs_value = !strcmp(name, "add") || !strcmp(name, "replace") || !strcmp(name, "test");
    bool needs_from = !strcmp(name, "move") || !strcmp(name, "copy");
    if (needs_value && !value) {
        *why = "needs a value";
        return -1;
    }
    if (needs_from && !from) {
        *why = "needs from (a string)";
        return -1;
    }
    if (!strcmp(name, "add") || !strcmp(name, "replace")) {
        json_t *copy = json_deep_copy(value);
        if (!copy) {
            *why = "out of memory";
            return -1;
        }
        return pointer_put(doc, path, copy, name[0] == 'r', why);
    }
    if (!strcmp(name, "remove"))
        return pointer_remove(*doc, path, why);
    if (!strcmp(name, "test")) {
        json_t *have = pointer_get(*doc, path, why);
        if (!have)
            return -1;
        if (!json_equal(have, value)) {
            *why = "the test failed: the value differs";
            return -1;
        }
        return 0;
    }
    if (needs_from) {
        json_t *src = pointer_get(*doc, from, why);
        if (!src)
            return -1;
        size_t fl = strlen(from);
        if (name[0] == 'm' && strncmp(path, from, fl) == 0 && path[fl] == '/') {
            *why = "cannot move a value into itself";
            return -1;
        }
        json_t *v = name[0] == 'm' ? json_incref(src) : json_deep_copy(src);
        if (!v) {
            *why = "out of memory";
            return -1;
        }
        if (name[0] == 'm' && pointer_remove(*doc, from, why) != 0) {
            json_decref(v);
            return -1;
        }
        return pointer_put(doc, path, v, false, why);
    }
    *why = "unknown op (add, remove, replace, move, copy, test)";
    return -1;
}

json_t *hx_fhir_json_patch(const json_t *doc, const json_t *patch, json_t **outcome)
{
    if (outcome)
        *outcome = NULL;
    rd_t rd = {0};
    if (!doc || !json_is_array(patch)) {
        bad(&rd, "structure", NULL, "a JSON Patch is an array of operations");
        refuse(&rd, outcome);
        return NULL;
    }
    json_t *out = json_deep_copy(doc);
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op) {
        const char *why = "must be an object";
        if (!out || (json_is_object(op) && patch_op(&out, op, &why) == 0))
            continue;
        const char *name = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        bad(&rd, "processing", NULL, "operation %zu (%.10s %.80s): %s", i, name ? name : "?", path ? path : "?", why);
        break;
    }
    if (!out && !rd.n)
        bad(&rd, "exception", NULL, "out of memory");
    if (rd.n) {
        json_decref(out);
        refuse(&rd, outcome);
        return NULL;
    }
    return out;
}

/* ---- a Task update -------------------------------------------------------------------------- */

static const char *reason_text(const json_t *sr)
{
    const char *t = json_string_value(json_object_get(sr, "text"));
    if (t && *t)
        return t;
    const json_t *codings = json_object_get(sr, "coding");
    for (size_t i = 0; i < json_array_size(codings); i++) {
        const char *d = json_string_value(json_object_get(json_array_get(codings, i), "display"));
        if (d && *d)
            return d;
    }
    return NULL;
}

static const char *owner_of(const json_t *task)
{
    return json_string_value(json_object_get(json_object_get(task, "owner"), "reference"));
}

static bool same_string(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The discipline of a child Task: its id's suffix, else its code's text; 0 for the parent. */
static Handoff__Discipline task_discipline(const json_t *task, char *rid, size_t cap)
{
    const char *id = json_string_value(json_object_get(task, "id"));
    size_t n = id ? strlen(id) : 0;
    static const struct { const char *suffix; Handoff__Discipline d; } s[] = {
        {"-physiotherapy", HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY},
        {"-massage-therapy", HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY},
    };
    snprintf(rid, cap, "%s", id ? id : "");
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(s[i].suffix);
        if (n > k && strcmp(id + n - k, s[i].suffix) == 0) {
            if (n - k < cap)
                rid[n - k] = '\0';
            return s[i].d;
        }
    }
    const char *text = json_string_value(json_object_get(json_object_get(task, "code"), "text"));
    return hx_fhir_discipline_from_code(text);
}

/* A string copied into a StatusChange field. */
static int set_change(char **field, const char *s)
{
    char *copy = strdup(s ? s : "");
    if (!copy)
        return -1;
    *field = copy;
    return 0;
}

void hx_fhir_change_free(Handoff__StatusChange *ch)
{
    if (!ch)
        return;
    char **f[] = {&ch->referral_id, &ch->event, &ch->reason, &ch->summary, &ch->to_clinic, &ch->to_therapist};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (*f[i] && *f[i] != protobuf_c_empty_string)
            free(*f[i]);
    handoff__status_change__init(ch);
}

/* Elements other than the changeable ones that differ between old and new. */
static void task_unchangeable(rd_t *rd, const json_t *old_task, const json_t *new_task)
{
    static const char *const changeable[] = {"status", "businessStatus", "statusReason", "output", "owner", "note",
                                             "meta", "lastModified", NULL};
    const json_t *pair[2] = {old_task, new_task};
    for (int side = 0; side < 2; side++) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)pair[side], key, v) {
            if (hx_fhir_one_of(key, changeable) || (side == 1 && json_object_get(old_task, key)))
                continue;                       /* a key of both sides: checked once */
            if (json_equal(json_object_get(old_task, key), json_object_get(new_task, key)))
                continue;
            fp_t p;
            fp(p, "Task.%s", key);
            bad(rd, "business-rule", p,
                "'%.40s' may not be changed (only status, businessStatus, statusReason, output, owner and note)", key);
        }
    }
}

/* The summary: every output's valueString, joined. */
static int task_summary(rd_t *rd, const json_t *task, char **out)
{
    const json_t *outs = json_object_get(task, "output");
    if (outs && !json_is_array(outs)) {
        bad(rd, "structure", "Task.output", "must be an array");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(outs); i++) {
        const json_t *o = json_array_get(outs, i);
        const json_t *v = json_object_get(o, "valueString");
        fp_t p;
        fp(p, "Task.output[%zu].valueString", i);
        if (v && !json_is_string(v)) {
            bad(rd, "structure", p, "must be a string");
            return -1;
        }
        if (v && *json_string_value(v))
            append(rd, out, json_string_value(v), "\n\n");
    }
    return 0;
}

/* What the new Task asks of the lifecycle: the event, and its discipline. */
static const char *task_event(rd_t *rd, const char *os, const char *ns, bool owner_moved, Handoff__Discipline d)
{
    static const char *const statuses[] = {"draft", "requested", "received", "accepted", "rejected", "ready",
                                           "cancelled", "in-progress", "on-hold", "failed", "completed",
                                           "entered-in-error", NULL};
    static const struct { const char *status, *event; } moves[] = {
        {"accepted", "accept"}, {"rejected", "decline"}, {"in-progress", "start"},
        {"completed", "complete"}, {"failed", "fail"}, {"cancelled", "revoke"},
    };
    bool moved = !same_string(os, ns);
    if (moved && !ns) {
        bad(rd, "required", "Task.status", "required");
        return NULL;
    }
    if (moved && !hx_fhir_one_of(ns, statuses)) {
        char list[300];
        bad(rd, "value", "Task.status", "'%.40s' is not a Task status (%s)", ns,
            list_text(statuses, list, sizeof list));
        return NULL;
    }
    if (owner_moved) {
        if (moved)
            bad(rd, "business-rule", "Task.status", "a redirect changes the owner only; change the status separately");
        else if (!d)
            bad(rd, "business-rule", "Task.owner", "only a handoff's Task (a child Task) is redirected");
        return moved || !d ? NULL : "redirect";
    }
    if (!moved) {
        bad(rd, "business-rule", "Task.status", "nothing to do: neither status nor owner changed");
        return NULL;
    }
    for (size_t i = 0; i < sizeof moves / sizeof moves[0]; i++) {
        if (strcmp(ns, moves[i].status) != 0)
            continue;
        if (i == 5 && d) {
            bad(rd, "business-rule", "Task.status",
                "a handoff is not cancelled on its own: decline it (rejected), or cancel the referral's parent Task");
            return NULL;
        }
        if (i < 5 && !d) {
            bad(rd, "business-rule", "Task.status",
                "the parent Task is only cancelled (revoke); a handoff moves on its child Task");
            return NULL;
        }
        return moves[i].event;
    }
    bad(rd, "business-rule", "Task.status",
        "no change moves a Task to %.40s (accepted, rejected, in-progress, completed, failed; cancelled on the parent)",
        ns);
    return NULL;
}

/* Checks the changeable elements' JSON types on the new Task. */
static void task_types(rd_t *rd, const json_t *t)
{
    static const struct { const char *key; int type; } k[] = {
        {"status", JSON_STRING}, {"statusReason", JSON_OBJECT}, {"businessStatus", JSON_OBJECT},
        {"owner", JSON_OBJECT},  {"note", JSON_ARRAY},          {"output", JSON_ARRAY},
        {"meta", JSON_OBJECT},   {"lastModified", JSON_STRING},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const json_t *v = json_object_get(t, k[i].key);
        if (v && json_typeof(v) != (json_type)k[i].type) {
            fp_t p;
            fp(p, "Task.%s", k[i].key);
            bad(rd, "structure", p, "must be %s", k[i].type == JSON_STRING   ? "a string"
                                                 : k[i].type == JSON_OBJECT ? "an object"
                                                                            : "an array");
        }
    }
    const json_t *sr = json_object_get(t, "statusReason");
    if (json_is_object(sr) && json_object_get(sr, "text") && !json_is_string(json_object_get(sr, "text")))
        bad(rd, "structure", "Task.statusReason.text", "must be a string");
    const json_t *ow = json_object_get(t, "owner");
    if (json_is_object(ow) && !json_is_string(json_object_get(ow, "reference")))
        bad(rd, "structure", "Task.owner.reference", "required: Organization/CLINIC or PractitionerRole/THERAPIST");
}

/* A redirect's destination: Organization/ID is the clinic; PractitionerRole/ID names a
 * therapist and leaves to_clinic empty (the Task update does not say the therapist's clinic;
 * scheduling finds it in its directory, or refuses). */
static int task_redirect(rd_t *rd, const char *owner, Handoff__StatusChange *ch)
{
    const char *org = ref_id(owner, "Organization");
    const char *role = ref_id(owner, "PractitionerRole");
    if (!org && !role) {
        bad(rd, "value", "Task.owner.reference", "must be Organization/CLINIC or PractitionerRole/THERAPIST");
        return -1;
    }
    return set_change(org ? &ch->to_clinic : &ch->to_therapist, org ? org : role);
}

int hx_fhir_task_change(const json_t *old_task, const json_t *new_task, Handoff__StatusChange *ch, json_t **outcome)
{
    if (outcome)
        *outcome = NULL;
    rd_t rd = {0};
    if (!ch)
        return -1;
    handoff__status_change__init(ch);
    if (!json_is_object(old_task) || !json_is_object(new_task)) {
        bad(&rd, "structure", "Task", "must be a JSON object (a Task)");
        return refuse(&rd, outcome);
    }
    task_unchangeable(&rd, old_task, new_task);
    task_types(&rd, new_task);
    if (rd.n)
        return refuse(&rd, outcome);

    char rid[72];
    Handoff__Discipline d = task_discipline(old_task, rid, sizeof rid);
    const char *based = json_string_value(json_object_get(json_array_get(json_object_get(old_task, "basedOn"), 0),
                                                          "reference"));
    if (ref_id(based, "ServiceRequest"))
        snprintf(rid, sizeof rid, "%s", ref_id(based, "ServiceRequest"));
    const char *os = json_string_value(json_object_get(old_task, "status"));
    const char *ns = json_string_value(json_object_get(new_task, "status"));
    const char *oo = owner_of(old_task), *no = owner_of(new_task);
    bool owner_moved = !same_string(oo, no);
    if (owner_moved && !no) {
        bad(&rd, "required", "Task.owner", "the owner is not removed; redirect names the new one");
        return refuse(&rd, outcome);
    }
    const char *event = task_event(&rd, os, ns, owner_moved, d);
    if (!event)
        return refuse(&rd, outcome);

    const char *reason = reason_text(json_object_get(new_task, "statusReason"));
    const char *old_reason = reason_text(json_object_get(old_task, "statusReason"));
    if (same_string(reason, old_reason))
        reason = NULL;                          /* the reason of the change before: not this one's */
    bool needs_reason = !strcmp(event, "decline") || !strcmp(event, "fail") || !strcmp(event, "redirect");
    if (needs_reason && !reason)
        bad(&rd, "required", "Task.statusReason", "required for this change: statusReason.text says why");
    char *summary = (char *)protobuf_c_empty_string;
    if (!strcmp(event, "complete")) {
        if (task_summary(&rd, new_task, &summary) == 0 && !*summary)
            bad(&rd, "required", "Task.output", "required: the completion summary (output[].valueString)");
    }
    if (rd.n == 0 && (set_change(&ch->referral_id, rid) || set_change(&ch->event, event) ||
                      (reason && set_change(&ch->reason, reason))))
        bad(&rd, "exception", NULL, "out of memory");
    if (rd.n == 0 && !strcmp(event, "redirect"))
        task_redirect(&rd, no, ch);
    if (rd.n) {
        if (summary != protobuf_c_empty_string)
            free(summary);
        hx_fhir_change_free(ch);
        return refuse(&rd, outcome);
    }
    ch->summary = summary;
    ch->discipline = d;
    return 0;
}

/* ---- a Communication -------------------------------------------------------------------------- */

void hx_fhir_post_free(Handoff__ThreadPost **post)
{
    if (post && *post) {
        handoff__thread_post__free_unpacked(*post, NULL);
        *post = NULL;
    }
}

static void comm_kind(rd_t *rd, const json_t *c, Handoff__ThreadPost *p)
{
    const json_t *cats = arr_at(rd, c, "category", "Communication");
    const char *kind = NULL;
    for (size_t i = 0; i < json_array_size(cats); i++) {
        fp_t cp;
        fp(cp, "Communication.category[%zu]", i);
        size_t at = 0;
        const char *k = concept_code(rd, json_array_get(cats, i), cp, HX_FHIR_SYS_POST_KIND, &at);
        if (!k)
            continue;
        fp(cp, "Communication.category[%zu].coding[%zu].code", i, at);
        if (kind)
            bad(rd, "duplicate", cp, "one post kind only");
        else if (!strcmp(k, "summary"))
            bad(rd, "business-rule", cp, "a summary is posted by completing the handoff (Task output), not here");
        else if (strcmp(k, "note") && strcmp(k, "question") && strcmp(k, "reply"))
            bad(rd, "value", cp, "must be note, question or reply");
        else
            kind = k;
    }
    put(rd, &p->kind, kind ? kind : "note");
}

static void comm_payload(rd_t *rd, const json_t *c, Handoff__ThreadPost *p)
{
    const json_t *pay = arr_at(rd, c, "payload", "Communication");
    if (!pay) {
        if (!json_object_get(c, "payload"))
            bad(rd, "required", "Communication.payload", "required: contentString with the text");
        return;
    }
    bool text = false;
    for (size_t i = 0; i < json_array_size(pay); i++) {
        fp_t pp, vp;
        const json_t *x = item_at(rd, pay, i, "Communication", "payload", pp);
        if (!x)
            continue;
        static const char *const pk[] = {"id", "extension", "contentString", "contentAttachment", NULL};
        check_keys(rd, x, pp, pk, false);
        const json_t *s = json_object_get(x, "contentString");
        const json_t *a = json_object_get(x, "contentAttachment");
        if (s) {
            fp(vp, "%s.contentString", pp);
            char why[200];
            if (text) {
                bad(rd, "duplicate", vp, "one text per post");
            } else if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
                bad(rd, "structure", vp, "must be a string without NUL");
            } else if (hx_thread_text_check("text", json_string_value(s), why, sizeof why) != 0) {
                bad(rd, "value", vp, "%s", why);
            } else {
                put(rd, &p->text, json_string_value(s));
                text = true;
            }
        } else if (a) {
            fp(vp, "%s.contentAttachment", pp);
            if (p->attachment)
                bad(rd, "not-supported", vp, "one attachment per post");
            else
                p->attachment = read_attachment(rd, a, vp);
        } else {
            bad(rd, "required", pp, "needs contentString or contentAttachment");
        }
    }
    if (!text)
        bad(rd, "required", "Communication.payload", "required: a payload with contentString (the text)");
}

int hx_fhir_read_communication(const json_t *c, Handoff__ThreadPost **post, json_t **outcome)
{
    static const char *const keys[] = {"status", "category", "basedOn", "partOf", "subject", "sent", "sender",
                                       "recipient", "payload", "inResponseTo", NULL};
    static const char *const statuses[] = {"completed", NULL};
    if (outcome)
        *outcome = NULL;
    if (post)
        *post = NULL;
    rd_t rd = {0};
    if (!json_is_object(c) || !json_is_string(json_object_get(c, "resourceType")) ||
        strcmp(json_string_value(json_object_get(c, "resourceType")), "Communication") != 0) {
        bad(&rd, "invalid", "Communication", "must be a Communication resource");
        return refuse(&rd, outcome);
    }
    Handoff__ThreadPost *p = malloc(sizeof *p);
    if (!p) {
        bad(&rd, "exception", NULL, "out of memory");
        return refuse(&rd, outcome);
    }
    handoff__thread_post__init(p);
    /* partOf, subject, sent, sender and recipient are the server's to set: taken and ignored,
     * so that a client may send back a Communication it read. */
    check_keys(&rd, c, "Communication", keys, true);
    code_at(&rd, c, "status", "Communication", statuses);

    const json_t *based = arr_at(&rd, c, "basedOn", "Communication");
    if (!based && !json_object_get(c, "basedOn"))
        bad(&rd, "required", "Communication.basedOn", "required: ServiceRequest/R-... (the referral)");
    else if (json_array_size(based) > 1)
        bad(&rd, "not-supported", "Communication.basedOn", "one referral per post");
    else if (based) {
        const char *ref = read_reference(&rd, json_array_get(based, 0), "Communication.basedOn[0]");
        const char *id = ref_id(ref, "ServiceRequest");
        if (!id || strncmp(id, "R-", 2) != 0)
            bad(&rd, "value", "Communication.basedOn[0].reference", "must be ServiceRequest/R-... (the referral)");
        else
            put(&rd, &p->referral_id, id);
    }
    comm_kind(&rd, c, p);
    comm_payload(&rd, c, p);

    const json_t *irt = arr_at(&rd, c, "inResponseTo", "Communication");
    if (json_array_size(irt) > 1)
        bad(&rd, "not-supported", "Communication.inResponseTo", "a reply answers one question");
    else if (irt) {
        const char *ref = read_reference(&rd, json_array_get(irt, 0), "Communication.inResponseTo[0]");
        const char *id = ref_id(ref, "Communication");
        if (!id || !hx_thread_post_id_valid(id))
            bad(&rd, "value", "Communication.inResponseTo[0].reference", "must be Communication/P-... (a question)");
        else if (strcmp(p->kind, "reply") != 0)
            bad(&rd, "business-rule", "Communication.inResponseTo", "only a reply answers a question");
        else
            put(&rd, &p->in_reply_to, id);
    }
    if (rd.n) {
        hx_fhir_post_free(&p);
        return refuse(&rd, outcome);
    }
    if (post)
        *post = p;
    else
        hx_fhir_post_free(&p);
    return 0;
}

/* ---- a Subscription ------------------------------------------------------------------------- */

#define PAYLOAD_CONTENT_URL "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"

static bool printable(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    return true;
}

/* "Name: value": a header token, a colon, a value without CR or LF. */
static bool header_ok(const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h)
        return false;
    for (const char *c = h; c < colon; c++)
        if (!isalnum((unsigned char)*c) && !strchr("!#$%&'*+-.^_`|~", *c))
            return false;
    return printable(h);
}

static void sub_payload(rd_t *rd, const json_t *ch, hx_fhir_sub_t *out)
{
    const char *pl = str_at(rd, ch, "payload", "Subscription.channel");
    if (pl && strcmp(pl, "application/fhir+json") != 0)
        bad(rd, "not-supported", "Subscription.channel.payload", "must be application/fhir+json");
    const json_t *ext = json_object_get(ch, "_payload");
    if (!ext)
        return;
    if (!want_object(rd, ext, "Subscription.channel._payload"))
        return;
    static const char *const xk[] = {"id", "extension", NULL};
    check_keys(rd, ext, "Subscription.channel._payload", xk, false);
    const json_t *list = arr_at(rd, ext, "extension", "Subscription.channel._payload");
    for (size_t i = 0; i < json_array_size(list); i++) {
        fp_t p, vp;
        const json_t *x = item_at(rd, list, i, "Subscription.channel._payload", "extension", p);
        const char *url = x ? str_at(rd, x, "url", p) : NULL;
        if (!url || strcmp(url, PAYLOAD_CONTENT_URL) != 0)
            continue;
        fp(vp, "%s.valueCode", p);
        const char *v = str_at(rd, x, "valueCode", p);
        if (v && !strcmp(v, "id-only"))
            out->payload = HX_FHIR_PAYLOAD_ID_ONLY;
        else if (v && !strcmp(v, "full-resource"))
            out->payload = HX_FHIR_PAYLOAD_FULL;
        else if (v && !strcmp(v, "empty"))
            out->payload = HX_FHIR_PAYLOAD_EMPTY;
        else
            bad(rd, "value", vp, "must be id-only, full-resource or empty");
    }
}

static void sub_channel(rd_t *rd, const json_t *in, bool allow_http, hx_fhir_sub_t *out)
{
    const json_t *ch = json_object_get(in, "channel");
    if (!ch) {
        bad(rd, "required", "Subscription.channel", "required: a rest-hook channel");
        return;
    }
    if (!want_object(rd, ch, "Subscription.channel"))
        return;
    static const char *const keys[] = {"id", "extension", "type", "endpoint", "payload", "_payload", "header", NULL};
    check_keys(rd, ch, "Subscription.channel", keys, false);
    const char *type = str_at(rd, ch, "type", "Subscription.channel");
    if (!type || strcmp(type, "rest-hook") != 0)
        bad(rd, "not-supported", "Subscription.channel.type", "must be rest-hook");
    const char *ep = str_at(rd, ch, "endpoint", "Subscription.channel");
    bool https = ep && strncmp(ep, "https://", 8) == 0 && ep[8];
    bool http = ep && strncmp(ep, "http://", 7) == 0 && ep[7];
    if (!ep)
        bad(rd, "required", "Subscription.channel.endpoint", "required: the https:// URL notifications go to");
    else if (!https && !(http && allow_http))
        bad(rd, "value", "Subscription.channel.endpoint", "must be an https:// URL");
    else if (strlen(ep) >= sizeof out->endpoint || strpbrk(ep, " \"<>\\^`{|}") || !printable(ep))
        bad(rd, "value", "Subscription.channel.endpoint", "must be a URL of at most %zu characters without spaces",
            sizeof out->endpoint - 1);
    else
        snprintf(out->endpoint, sizeof out->endpoint, "%s", ep);
    const json_t *hdr = arr_at(rd, ch, "header", "Subscription.channel");
    if (json_array_size(hdr) > 1)
        bad(rd, "not-supported", "Subscription.channel.header", "at most one header");
    else if (hdr) {
        const json_t *h = json_array_get(hdr, 0);
        const char *s = json_string_value(h);
        if (!s || !*s || strlen(s) >= sizeof out->header || !header_ok(s))
            bad(rd, "value", "Subscription.channel.header[0]",
                "must be \"Name: value\" (at most %zu characters, no line breaks)", sizeof out->header - 1);
        else
            snprintf(out->header, sizeof out->header, "%s", s);
    }
    sub_payload(rd, ch, out);
}

int hx_fhir_read_subscription(const json_t *in, bool allow_http, hx_fhir_sub_t *out, json_t **outcome)
{
    static const char *const keys[] = {"status", "reason", "criteria", "channel", "end", "contact", "error", NULL};
    static const char *const statuses[] = {"requested", "active", "off", NULL};
    if (outcome)
        *outcome = NULL;
    if (!out)
        return -1;
    memset(out, 0, sizeof *out);
    rd_t rd = {0};
    if (!json_is_object(in) || !json_is_string(json_object_get(in, "resourceType")) ||
        strcmp(json_string_value(json_object_get(in, "resourceType")), "Subscription") != 0) {
        bad(&rd, "invalid", "Subscription", "must be a Subscription resource");
        return refuse(&rd, outcome);
    }
    /* error is the server's to say: taken and ignored, so that a client may PUT back what it
     * read. */
    check_keys(&rd, in, "Subscription", keys, true);
    const char *id = str_at(&rd, in, "id", "Subscription");
    if (id && (!hx_fhir_id_valid(id) || strlen(id) >= sizeof out->id))
        bad(&rd, "value", "Subscription.id", "must be a FHIR id");
    else if (id)
        snprintf(out->id, sizeof out->id, "%s", id);
    const char *crit = str_at(&rd, in, "criteria", "Subscription");
    if (!crit || (strcmp(crit, HX_FHIR_TOPIC_TASK) != 0 && strcmp(crit, HX_FHIR_TOPIC_SERVICE_REQUEST) != 0))
        bad(&rd, crit ? "not-supported" : "required", "Subscription.criteria",
            "must be one of the topics " HX_FHIR_TOPIC_TASK " or " HX_FHIR_TOPIC_SERVICE_REQUEST);
    else
        snprintf(out->topic, sizeof out->topic, "%s", crit);
    const char *status = code_at(&rd, in, "status", "Subscription", statuses);
    snprintf(out->status, sizeof out->status, "%s", status && !strcmp(status, "off") ? "off" : "requested");
    const char *reason = str_at(&rd, in, "reason", "Subscription");
    if (reason && (strlen(reason) >= sizeof out->reason || !printable(reason)))
        bad(&rd, "value", "Subscription.reason", "must be at most %zu characters on one line", sizeof out->reason - 1);
    else if (reason)
        snprintf(out->reason, sizeof out->reason, "%s", reason);
    const char *end = str_at(&rd, in, "end", "Subscription");
    if (end && hx_fhir_parse_instant(end, &out->end_ms) != 0)
        bad(&rd, "value", "Subscription.end", "must be an instant (2026-12-31T23:59:59Z)");
    out->payload = HX_FHIR_PAYLOAD_ID_ONLY;
    sub_channel(&rd, in, allow_http, out);
    if (rd.n) {
        memset(out, 0, sizeof *out);
        return refuse(&rd, outcome);
    }
    return 0;
}
