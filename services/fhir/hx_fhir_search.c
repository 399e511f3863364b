/* hx_fhir_search — search parameters and _include over a clinic's view (see hx_fhir.h).
 *
 * Each parameter of a type is a kind (token, reference, string, identifier, date) and the
 * elements it reads (docs/FHIR.md's shapes). A value's commas are "or" (an escaped "\," is a
 * comma of the value), a repeated parameter is "and". Nothing is silently ignored: an unknown
 * parameter or modifier, or a value that cannot be read, refuses the whole search with an
 * OperationOutcome whose expression is the parameter's name. _include reads its targets through
 * hx_fhir_view_read, so an included resource is always one the clinic may read. */
#include "hx_fhir.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hx_util.h"

typedef enum { K_TOKEN, K_REFERENCE, K_STRING, K_IDENTIFIER, K_DATE } kind_t;

typedef struct {
    hx_fhir_type_t type;        /* HX_FHIR_TYPE_COUNT: every type */
    const char *name;
    kind_t kind;
    const char *paths;          /* elements, '|'-separated; arrays are walked through */
    hx_fhir_type_t target;      /* reference: the type a bare id names (COUNT: any) */
    bool include_only;          /* only as an _include, not a search parameter */
} param_def_t;

#define ANY HX_FHIR_TYPE_COUNT
static const param_def_t params[] = {
    {ANY, "_id", K_TOKEN, "id", ANY, false},
    {ANY, "_lastUpdated", K_DATE, "meta.lastUpdated", ANY, false},

    {HX_FHIR_TASK, "owner", K_REFERENCE, "owner.reference", ANY, false},
    {HX_FHIR_TASK, "status", K_TOKEN, "status", ANY, false},
    {HX_FHIR_TASK, "part-of", K_REFERENCE, "partOf.reference", HX_FHIR_TASK, false},
    {HX_FHIR_TASK, "based-on", K_REFERENCE, "basedOn.reference", ANY, false},
    {HX_FHIR_TASK, "patient", K_REFERENCE, "for.reference", HX_FHIR_PATIENT, false},
    {HX_FHIR_TASK, "code", K_TOKEN, "code.coding", ANY, false},
    {HX_FHIR_TASK, "business-status", K_TOKEN, "businessStatus.coding", ANY, false},
    {HX_FHIR_TASK, "focus", K_REFERENCE, "focus.reference", ANY, true},

    {HX_FHIR_SERVICE_REQUEST, "requester", K_REFERENCE, "requester.reference", ANY, false},
    {HX_FHIR_SERVICE_REQUEST, "status", K_TOKEN, "status", ANY, false},
    {HX_FHIR_SERVICE_REQUEST, "identifier", K_IDENTIFIER, "identifier", ANY, false},
    {HX_FHIR_SERVICE_REQUEST, "patient", K_REFERENCE, "subject.reference", HX_FHIR_PATIENT, false},
    {HX_FHIR_SERVICE_REQUEST, "subject", K_REFERENCE, "subject.reference", ANY, false},
    {HX_FHIR_SERVICE_REQUEST, "priority", K_TOKEN, "priority", ANY, false},
    {HX_FHIR_SERVICE_REQUEST, "authored", K_DATE, "authoredOn", ANY, false},
    {HX_FHIR_SERVICE_REQUEST, "performer", K_REFERENCE, "performer.reference", ANY, true},

    {HX_FHIR_COMMUNICATION, "based-on", K_REFERENCE, "basedOn.reference", ANY, false},
    {HX_FHIR_COMMUNICATION, "part-of", K_REFERENCE, "partOf.reference", ANY, false},
    {HX_FHIR_COMMUNICATION, "category", K_TOKEN, "category.coding", ANY, false},
    {HX_FHIR_COMMUNICATION, "sender", K_REFERENCE, "sender.reference", ANY, false},

    {HX_FHIR_APPOINTMENT, "based-on", K_REFERENCE, "basedOn.reference", ANY, false},
    {HX_FHIR_APPOINTMENT, "actor", K_REFERENCE, "participant.actor.reference", ANY, false},
    {HX_FHIR_APPOINTMENT, "status", K_TOKEN, "status", ANY, false},
    {HX_FHIR_APPOINTMENT, "date", K_DATE, "start", ANY, false},

    {HX_FHIR_PATIENT, "identifier", K_IDENTIFIER, "identifier", ANY, false},
    {HX_FHIR_PATIENT, "name", K_STRING, "name.text|name.family|name.given", ANY, false},
    {HX_FHIR_PRACTITIONER, "identifier", K_IDENTIFIER, "identifier", ANY, false},
    {HX_FHIR_PRACTITIONER, "name", K_STRING, "name.text|name.family|name.given", ANY, false},
    {HX_FHIR_PRACTITIONER_ROLE, "identifier", K_IDENTIFIER, "identifier", ANY, false},
    {HX_FHIR_PRACTITIONER_ROLE, "name", K_STRING, "name.text|name.family|name.given", ANY, false},
    {HX_FHIR_PRACTITIONER_ROLE, "organization", K_REFERENCE, "organization.reference", HX_FHIR_ORGANIZATION, false},
    {HX_FHIR_PRACTITIONER_ROLE, "specialty", K_TOKEN, "specialty.coding|code.coding", ANY, false},
    {HX_FHIR_PRACTITIONER_ROLE, "practitioner", K_REFERENCE, "practitioner.reference", HX_FHIR_PRACTITIONER, true},
    {HX_FHIR_PRACTITIONER_ROLE, "location", K_REFERENCE, "location.reference", HX_FHIR_LOCATION, true},
    {HX_FHIR_ORGANIZATION, "identifier", K_IDENTIFIER, "identifier", ANY, false},
    {HX_FHIR_ORGANIZATION, "name", K_STRING, "name", ANY, false},
    {HX_FHIR_LOCATION, "identifier", K_IDENTIFIER, "identifier", ANY, false},
    {HX_FHIR_LOCATION, "name", K_STRING, "name", ANY, false},

    {HX_FHIR_DOCUMENT_REFERENCE, "related", K_REFERENCE, "context.related.reference", ANY, false},
    {HX_FHIR_DOCUMENT_REFERENCE, "subject", K_REFERENCE, "subject.reference", ANY, false},
};

/* The _include names (Type:param) and the parameter each follows. */
static const struct {
    hx_fhir_type_t type;
    const char *param;
} includes[] = {
    {HX_FHIR_TASK, "based-on"},           {HX_FHIR_TASK, "owner"},
    {HX_FHIR_TASK, "part-of"},            {HX_FHIR_TASK, "patient"},
    {HX_FHIR_TASK, "focus"},              {HX_FHIR_SERVICE_REQUEST, "subject"},
    {HX_FHIR_SERVICE_REQUEST, "requester"}, {HX_FHIR_SERVICE_REQUEST, "performer"},
    {HX_FHIR_COMMUNICATION, "based-on"},  {HX_FHIR_COMMUNICATION, "sender"},
    {HX_FHIR_APPOINTMENT, "actor"},       {HX_FHIR_APPOINTMENT, "based-on"},
    {HX_FHIR_PRACTITIONER_ROLE, "practitioner"}, {HX_FHIR_PRACTITIONER_ROLE, "organization"},
    {HX_FHIR_PRACTITIONER_ROLE, "location"}, {HX_FHIR_DOCUMENT_REFERENCE, "subject"},
};

static const param_def_t *find_param(hx_fhir_type_t t, const char *name, bool for_include)
{
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        if ((params[i].type == t || params[i].type == ANY) && strcmp(params[i].name, name) == 0 &&
            (for_include || !params[i].include_only))
            return &params[i];
    return NULL;
}

/* ---- elements ------------------------------------------------------------------------------ */

/* Every value at a dotted path of node (arrays walked through), appended to out (borrowed). */
static void collect(const json_t *node, const char *path, json_t *out)
{
    if (json_is_array(node)) {
        size_t i;
        json_t *x;
        json_array_foreach(node, i, x)
            collect(x, path, out);
        return;
    }
    if (!*path) {
        if (node)
            json_array_append(out, (json_t *)node);
        return;
    }
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    char key[64];
    if (n >= sizeof key || !json_is_object(node))
        return;
    memcpy(key, path, n);
    key[n] = '\0';
    const json_t *v = json_object_get(node, key);
    if (v)
        collect(v, dot ? dot + 1 : "", out);
}

/* The values of every path of a '|'-separated list (a new array). */
static json_t *values_of(const json_t *res, const char *paths)
{
    json_t *out = json_array();
    char one[128];
    const char *p = paths;
    while (out && *p) {
        size_t n = strcspn(p, "|");
        if (n < sizeof one) {
            memcpy(one, p, n);
            one[n] = '\0';
            collect(res, one, out);
        }
        p += n + (p[n] == '|');
    }
    return out;
}

/* ---- values -------------------------------------------------------------------------------- */

typedef enum { P_EQ, P_NE, P_GT, P_LT, P_GE, P_LE, P_SA, P_EB } prefix_t;

typedef struct {
    char *text;                 /* one value of the or-list, unescaped */
    prefix_t prefix;            /* dates */
    uint64_t lo, hi;            /* dates: the range the value names, [lo, hi) */
} value_t;

typedef struct {
    const param_def_t *def;
    const char *name;           /* as given (with the modifier) */
    bool not_;                  /* token :not */
    int string_mode;            /* 0 prefix, 1 :exact, 2 :contains */
    value_t *v;
    size_t n;
} cond_t;

/* The range [lo, hi) a date, dateTime or instant names, by its precision. */
static int date_range(const char *s, uint64_t *lo, uint64_t *hi)
{
    if (hx_fhir_parse_instant(s, lo) != 0)
        return -1;
    size_t n = strlen(s);
    const char *t = strchr(s, 'T');
    if (!t) {
        int y = atoi(s);
        unsigned m = n >= 7 ? (unsigned)atoi(s + 5) : 1, d = n >= 10 ? (unsigned)atoi(s + 8) : 1;
        int64_t days = hx_days_from_civil(y, m, d);
        int64_t next = n >= 10 ? days + 1
                       : n >= 7 ? hx_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1)
                                : hx_days_from_civil(y + 1, 1, 1);
        *hi = *lo + (uint64_t)(next - days) * 86400000u;
        return 0;
    }
    size_t clock = strspn(t + 1, "0123456789:");     /* HH:MM or HH:MM:SS */
    uint64_t step = clock >= 8 ? 1000 : 60000;
    if (clock >= 8 && t[1 + clock] == '.')
        step = 1;
    *hi = *lo + step;
    return 0;
}

static void free_conds(cond_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < c[i].n; k++)
            free(c[i].v[k].text);
        free(c[i].v);
    }
    free(c);
}

/* Splits s at unescaped commas into c->v. -1 when out of memory. */
static int split_values(cond_t *c, const char *s)
{
    size_t len = strlen(s);
    char *buf = malloc(len + 1);
    if (!buf)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i <= len; i++) {
        if (s[i] == '\\' && (s[i + 1] == ',' || s[i + 1] == '\\' || s[i + 1] == '$' || s[i + 1] == '|')) {
            buf[o++] = s[++i];
            continue;
        }
        if (s[i] != ',' && s[i] != '\0') {
            buf[o++] = s[i];
            continue;
        }
        buf[o] = '\0';
        value_t *grown = realloc(c->v, (c->n + 1) * sizeof *grown);
        char *text = o ? strdup(buf) : NULL;   /* NULL: an empty value, refused by check_value */
        if (!grown || (o && !text)) {
            if (grown)
                c->v = grown;
            free(text);
            free(buf);
            return -1;
        }
        c->v = grown;
        memset(&c->v[c->n], 0, sizeof c->v[0]);
        c->v[c->n++].text = text;
        o = 0;
    }
    free(buf);
    return 0;
}

/* A reference value: "Type/id" (a known type) or "id". */
static bool reference_value_ok(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash)
        return hx_fhir_id_valid(s);
    char type[40];
    size_t n = (size_t)(slash - s);
    if (n == 0 || n >= sizeof type)
        return false;
    memcpy(type, s, n);
    type[n] = '\0';
    return hx_fhir_type_from_name(type) != HX_FHIR_TYPE_COUNT && hx_fhir_id_valid(slash + 1);
}

/* Checks one value for its parameter's kind; fills a date's prefix and range. */
static const char *check_value(const cond_t *c, value_t *v)
{
    static const char *const prefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"};
    const char *s = v->text;
    if (!s)
        return "an empty value (between commas, or none at all)";
    switch (c->def->kind) {
    case K_REFERENCE:
        return reference_value_ok(s) ? NULL : "must be Type/id or id (a FHIR id)";
    case K_DATE:
        v->prefix = P_EQ;
        for (size_t i = 0; i < 8; i++)
            if (isalpha((unsigned char)s[0]) && strncmp(s, prefixes[i], 2) == 0) {
                v->prefix = (prefix_t)i;
                s += 2;
                break;
            }
        return date_range(s, &v->lo, &v->hi) == 0
                   ? NULL
                   : "must be a date, dateTime or instant (2026-11-28, 2026-11-28T17:03:09Z), with an optional "
                     "prefix eq ne gt lt ge le sa eb";
    case K_TOKEN:
    case K_IDENTIFIER:
        return strcmp(s, "|") == 0 ? "must name a code (SYSTEM|CODE or CODE)" : NULL;
    case K_STRING:
        return NULL;
    }
    return NULL;
}

/* ---- matching ------------------------------------------------------------------------------ */

/* "SYSTEM|CODE", "|CODE", "CODE", "SYSTEM|" against a system and a code (system NULL: a code
 * without one, such as status). */
static bool token_match(const char *want, const char *system, const char *code)
{
    const char *bar = strchr(want, '|');
    if (!bar)
        return code && strcmp(want, code) == 0;
    size_t sl = (size_t)(bar - want);
    if (sl > 0 && system && (strlen(system) != sl || strncmp(want, system, sl) != 0))
        return false;
    if (sl > 0 && !system)
        return false;
    if (sl == 0 && system && *system)
        return false;
    return !bar[1] || (code && strcmp(bar + 1, code) == 0);
}

static bool token_element(const json_t *e, const char *want)
{
    if (json_is_string(e))
        return token_match(want, NULL, json_string_value(e));
    return token_match(want, json_string_value(json_object_get(e, "system")),
                       json_string_value(json_object_get(e, "code")));
}

static bool identifier_element(const json_t *e, const char *want)
{
    return token_match(want, json_string_value(json_object_get(e, "system")),
                       json_string_value(json_object_get(e, "value")));
}

/* "Type/id" against a value "Type/id" or "id" (of the parameter's target type, when it has one). */
static bool reference_element(const json_t *e, const char *want, hx_fhir_type_t target)
{
    const char *ref = json_string_value(e);
    if (!ref)
        return false;
    if (strchr(want, '/'))
        return strcmp(ref, want) == 0;
    const char *slash = strrchr(ref, '/');
    if (!slash || strcmp(slash + 1, want) != 0)
        return false;
    if (target == HX_FHIR_TYPE_COUNT)
        return true;
    const char *tn = hx_fhir_type_name(target);
    return tn && strlen(tn) == (size_t)(slash - ref) && strncmp(ref, tn, strlen(tn)) == 0;
}

/* Case-insensitive (ASCII) prefix, equality or containment. */
static bool string_element(const json_t *e, const char *want, int mode)
{
    const char *s = json_string_value(e);
    if (!s)
        return false;
    size_t n = strlen(want);
    if (mode == 1)
        return strcmp(s, want) == 0;
    if (mode == 0)
        return strncasecmp(s, want, n) == 0;
    for (; *s; s++)
        if (strncasecmp(s, want, n) == 0)
            return true;
    return false;
}

static bool date_element(const json_t *e, const value_t *v)
{
    uint64_t lo, hi;
    if (!json_is_string(e) || date_range(json_string_value(e), &lo, &hi) != 0)
        return false;
    bool eq = lo >= v->lo && hi <= v->hi;
    switch (v->prefix) {
    case P_EQ: return eq;
    case P_NE: return !eq;
    case P_GT: return hi > v->hi;
    case P_LT: return lo < v->lo;
    case P_GE: return hi > v->hi || eq;
    case P_LE: return lo < v->lo || eq;
    case P_SA: return lo >= v->hi;
    case P_EB: return hi <= v->lo;
    }
    return false;
}

/* ServiceRequest requester=Organization/ID: the referring clinic (the ref's assigner). */
static bool referring_clinic(const json_t *res, const char *want)
{
    if (strncmp(want, "Organization/", 13) != 0)
        return false;
    const json_t *ids = json_object_get(res, "identifier");
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
        const char *sys = json_string_value(json_object_get(id, "system"));
        const char *as = json_string_value(json_object_get(json_object_get(id, "assigner"), "reference"));
        if (sys && as && strcmp(sys, HX_FHIR_SYS_REF) == 0 && strcmp(as, want) == 0)
            return true;
    }
    return false;
}

static bool value_matches(const cond_t *c, const json_t *res, const json_t *elems, const value_t *v)
{
    if (c->def->type == HX_FHIR_SERVICE_REQUEST && strcmp(c->def->name, "requester") == 0 &&
        referring_clinic(res, v->text))
        return true;
    size_t i;
    json_t *e;
    json_array_foreach(elems, i, e) {
        bool hit = false;
        switch (c->def->kind) {
        case K_TOKEN: hit = token_element(e, v->text); break;
        case K_IDENTIFIER: hit = identifier_element(e, v->text); break;
        case K_REFERENCE: hit = reference_element(e, v->text, c->def->target); break;
        case K_STRING: hit = string_element(e, v->text, c->string_mode); break;
        case K_DATE: hit = date_element(e, v); break;
        }
        if (hit)
            return true;
    }
    return false;
}

static bool matches(const cond_t *c, size_t n, const json_t *res)
{
    for (size_t i = 0; i < n; i++) {
        json_t *elems = values_of(res, c[i].def->paths);
        bool any = false;
        for (size_t k = 0; k < c[i].n && !any; k++)
            any = value_matches(&c[i], res, elems, &c[i].v[k]);
        json_decref(elems);
        if (any == c[i].not_)
            return false;
    }
    return true;
}

/* ---- parameters ---------------------------------------------------------------------------- */

typedef struct {
    const param_def_t *inc[32];
    size_t n_inc;
    bool ascending;
} plan_t;

static json_t *refuse(const char *code, const char *name, const char *fmt, const char *what)
{
    char msg[300];
    snprintf(msg, sizeof msg, fmt, what);
    return hx_fhir_outcome("error", code, msg, name);
}

/* One _include value; NULL or the refusal. */
static json_t *plan_include(hx_fhir_type_t t, const char *value, plan_t *plan)
{
    const char *colon = strchr(value, ':');
    char type[40];
    size_t n = colon ? (size_t)(colon - value) : 0;
    if (!colon || n >= sizeof type)
        return refuse("invalid", "_include", "'%.80s' is not Type:parameter", value);
    memcpy(type, value, n);
    type[n] = '\0';
    const char *param = colon + 1;
    hx_fhir_type_t it = hx_fhir_type_from_name(type);
    if (it != t)
        return refuse("invalid", "_include", "'%.80s' does not start with the type searched", value);
    for (size_t i = 0; i < sizeof includes / sizeof includes[0]; i++)
        if (includes[i].type == t && strcmp(includes[i].param, param) == 0) {
            if (plan->n_inc < sizeof plan->inc / sizeof plan->inc[0])
                plan->inc[plan->n_inc++] = find_param(t, param, true);
            return NULL;
        }
    return refuse("not-supported", "_include", "_include=%.80s is not supported", value);
}

/* One parameter into a condition (or the plan); NULL or the refusal. */
static json_t *plan_param(hx_fhir_type_t t, const hx_fhir_param_t *p, cond_t *c, size_t *nc, plan_t *plan)
{
    const char *name = p->name ? p->name : "";
    const char *value = p->value ? p->value : "";
    if (!strcmp(name, "_count") || !strcmp(name, "_offset") || !strcmp(name, "_format") || !strcmp(name, "_pretty"))
        return NULL;
    if (!strcmp(name, "_sort")) {
        if (!strcmp(value, "-_lastUpdated"))
            return NULL;
        if (!strcmp(value, "_lastUpdated")) {
            plan->ascending = true;
            return NULL;
        }
        return refuse("not-supported", name, "_sort=%.80s is not supported (-_lastUpdated, _lastUpdated)", value);
    }
    if (!strcmp(name, "_include")) {
        if (!*value)
            return refuse("invalid", name, "%s needs Type:parameter", name);
        return plan_include(t, value, plan);
    }
    char base[64];
    const char *colon = strchr(name, ':');
    size_t bn = colon ? (size_t)(colon - name) : strlen(name);
    if (bn >= sizeof base)
        return refuse("not-supported", name, "unknown search parameter '%.60s'", name);
    memcpy(base, name, bn);
    base[bn] = '\0';
    const param_def_t *def = find_param(t, base, false);
    if (!def) {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown search parameter '%.60s' for %s", base, hx_fhir_type_name(t));
        return hx_fhir_outcome("error", "not-supported", msg, name);
    }
    cond_t *cd = &c[*nc];
    memset(cd, 0, sizeof *cd);
    cd->def = def;
    cd->name = name;
    if (colon) {
        const char *mod = colon + 1;
        if (!strcmp(mod, "not") && def->kind == K_TOKEN)
            cd->not_ = true;
        else if (!strcmp(mod, "exact") && def->kind == K_STRING)
            cd->string_mode = 1;
        else if (!strcmp(mod, "contains") && def->kind == K_STRING)
            cd->string_mode = 2;
        else
            return refuse("not-supported", name, "the modifier :%.40s is not supported here", mod);
    }
    (*nc)++;                                    /* counted now so that its values are freed */
    if (split_values(cd, value) != 0)
        return hx_fhir_outcome("error", "exception", "out of memory", name);
    for (size_t i = 0; i < cd->n; i++) {
        const char *why = check_value(cd, &cd->v[i]);
        if (why) {
            char msg[300];
            snprintf(msg, sizeof msg, "'%.60s': %s", cd->v[i].text ? cd->v[i].text : "", why);
            return hx_fhir_outcome("error", "invalid", msg, name);
        }
    }
    return NULL;
}

/* Each resource the matches' included elements name, once, none of the matches. */
static json_t *follow_includes(const hx_fhir_view_t *v, const plan_t *plan, const json_t *found)
{
    json_t *out = json_array();
    json_t *seen = json_object();
    size_t i;
    json_t *res;
    json_array_foreach(found, i, res) {
        char key[160];
        snprintf(key, sizeof key, "%s/%s", json_string_value(json_object_get(res, "resourceType")),
                 json_string_value(json_object_get(res, "id")));
        json_object_set_new(seen, key, json_true());
    }
    json_array_foreach(found, i, res) {
        for (size_t k = 0; k < plan->n_inc; k++) {
            if (!plan->inc[k])
                continue;
            json_t *refs = values_of(res, plan->inc[k]->paths);
            size_t r;
            json_t *ref;
            json_array_foreach(refs, r, ref) {
                const char *s = json_string_value(ref);
                const char *slash = s ? strchr(s, '/') : NULL;
                char type[40];
                if (!slash || (size_t)(slash - s) >= sizeof type || json_object_get(seen, s))
                    continue;
                memcpy(type, s, (size_t)(slash - s));
                type[slash - s] = '\0';
                hx_fhir_type_t tt = hx_fhir_type_from_name(type);
                json_t *target = tt == HX_FHIR_TYPE_COUNT ? NULL : hx_fhir_view_read(v, tt, slash + 1);
                json_object_set_new(seen, s, json_true());
                if (target)
                    json_array_append_new(out, target);
            }
            json_decref(refs);
        }
    }
    json_decref(seen);
    return out;
}

int hx_fhir_search(const hx_fhir_view_t *v, hx_fhir_type_t t, const hx_fhir_param_t *p, size_t n,
                   json_t **matches_out, json_t **included, json_t **outcome)
{
    *matches_out = NULL;
    *included = NULL;
    *outcome = NULL;
    if (!v || (int)t < 0 || t >= HX_FHIR_TYPE_COUNT || (n && !p)) {
        *outcome = hx_fhir_outcome("error", "not-supported", "no such resource type", NULL);
        return -1;
    }
    cond_t *c = calloc(n ? n : 1, sizeof *c);
    if (!c) {
        *outcome = hx_fhir_outcome("error", "exception", "out of memory", NULL);
        return -1;
    }
    size_t nc = 0;
    plan_t plan = {.n_inc = 0};
    for (size_t i = 0; i < n && !*outcome; i++)
        *outcome = plan_param(t, &p[i], c, &nc, &plan);
    if (*outcome) {
        free_conds(c, nc);
        return -1;
    }
    json_t *all = hx_fhir_view_all(v, t);
    json_t *found = json_array();
    size_t i;
    json_t *res;
    json_array_foreach(all, i, res)
        if (matches(c, nc, res))
            json_array_append(found, res);
    json_decref(all);
    free_conds(c, nc);
    if (plan.ascending) {
        size_t m = json_array_size(found);
        json_t *rev = json_array();
        for (size_t k = m; k-- > 0;)
            json_array_append(rev, json_array_get(found, k));
        json_decref(found);
        found = rev;
    }
    *matches_out = found;
    *included = follow_includes(v, &plan, found);
    return 0;
}
