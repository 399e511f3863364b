/* hx_triage — the triage rules: a JSON data file the clinics edit (services/triage/rules.json),
 * loaded and checked here. The decision is in hx_triage_decide.c, the reading of a referral's
 * codes and words in hx_triage_read.c, the phrase matcher in hx_lexicon.c; docs/TRIAGE.md
 * describes all of it for the people who edit the file.
 *
 * Rules file:
 *   {
 *     "version": 1,                                  optional; 1 is the only version
 *     "context": {                                   NegEx / ConText trigger phrases
 *       "pre_negation", "post_negation", "pseudo_negation", "terminators", "historical",
 *       "historical_post", "family", "physician_aware": ["<phrase>", ...],
 *       "not_misspellings": ["<word>", ...]          never read as a misspelling
 *     },
 *     "sites": {"<site>": ["<phrase>", ...]},        body sites (at most 30)
 *     "facts": {"<code>": {"label", "terms", "terms_fr", "history", "precaution"}},
 *     "conditions": {                                required, at least one entry
 *       "<code>": {"plan": "physiotherapy" | "massage_therapy" | "both", "label": "<text>",
 *                  "priority", "snomed": {"code", "display"} | null, "terms", "terms_fr",
 *                  "site": "<site>" | "whole_body", "precaution": "<text>", "recent_days"}
 *     },
 *     "red_flags": {                                 neither therapist: see a physician
 *       "<code>": {"reason", "emergency", "priority" (default urgent), "snomed", "terms",
 *                  "terms_fr", "history", "recent_days", "physician_aware_as": "<contra>",
 *                  "explained_by": [...], "only_with": [<condition>...],
 *                  "not_when_only": [<condition>...],
 *                  "when": [{"facts": [...], "conditions": [...], "age_over", "age_under",
 *                            "age_at_least"}]}
 *     },
 *     "massage_contraindications": {                 massage is removed from the plan
 *       "<code>": {"reason", "snomed", "terms", "terms_fr", "at_site", "recent_days",
 *                  "recent_of": [<condition>...], "lifted_by": [<condition>...],
 *                  "cleared_by": "<fact>", "explained_by": [...]}
 *     },
 *     "massage_never_alone": {"<fragment of a condition code>": {"reason": "<text>"}},
 *     "rmt_needs_diagnosis": {"findings": ["<finding>", ...], "reason": "<text>"}
 *   }
 * Codes are unique across conditions, red flags, contraindications and facts. */
#include "hx_triage.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_refjson.h"
#include "hx_triage_internal.h"
#include "hx_util.h"

#define LABEL_MAX 200
#define REASON_MAX 300
#define PHRASE_MAX 120
#define SITES_MAX 30

typedef char path_t[96];

static void path_key(path_t out, const char *base, const char *key)
{
    hx_path_key(out, sizeof(path_t), base, key);
}

static void free_rule(rule_t *r)
{
    free(r->code);
    free(r->text);
    free(r->snomed);
    free(r->snomed_display);
    free(r->precaution);
    free(r->only_with);
    free(r->not_when_only);
    free(r->recent_of);
    free(r->lifted_by);
    for (size_t i = 0; i < r->n_when; i++) {
        free(r->when[i].facts);
        free(r->when[i].conditions);
    }
    free(r->when);
    free(r);
}

static void free_strings(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

void hx_rules_destroy(hx_rules_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_rules_t *self = *self_p;
    HASH_CLEAR(hh, self->by_code);
    HASH_CLEAR(hs, self->by_snomed);
    for (size_t i = 0; i < self->n_all; i++)
        free_rule(self->all[i]);
    free(self->all);
    free_strings(self->never_alone_fragment, self->n_never_alone);
    free_strings(self->never_alone_reason, self->n_never_alone);
    free_strings(self->rmt_findings, self->n_rmt_findings);
    free(self->rmt_reason);
    free_strings(self->sites.names, self->sites.n);
    free_strings(self->not_misspellings, self->n_not_misspellings);
    hx_lex_free(self);
    free(self);
    *self_p = NULL;
}

/* ---- small readers ------------------------------------------------------------------- */

/* A non-empty string member within max characters; NULL (error recorded) otherwise. */
static const char *want_text(const json_t *v, const char *path, size_t max, hx_errors_t *e)
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
    if (hx_is_blank(s)) {
        hx_errors_add(e, path, "must not be empty");
        return NULL;
    }
    if (hx_utf8_chars(s) > max) {
        hx_errors_add(e, path, "must be at most %zu characters", max);
        return NULL;
    }
    return s;
}

static char *dup_text(const json_t *v, const char *path, size_t max, hx_errors_t *e)
{
    const char *s = want_text(v, path, max, e);
    char *copy = s ? strdup(s) : NULL;
    if (s && !copy)
        hx_errors_add(e, path, "out of memory");
    return copy;
}

static Handoff__Priority want_priority(const json_t *v, const char *path, hx_errors_t *e)
{
    if (!json_is_string(v)) {
        hx_errors_add(e, path, "must be a string");
        return 0;
    }
    Handoff__Priority p = hx_priority_from_text(json_string_value(v));
    if (!p) {
        char shown[40];
        snprintf(shown, sizeof shown, "%s", json_string_value(v));
        hx_errors_add(e, path, "unknown value \"%s\" (routine, urgent, asap, stat)", shown);
    }
    return p;
}

static bool want_bool(const json_t *v, const char *path, hx_errors_t *e)
{
    if (!json_is_boolean(v))
        hx_errors_add(e, path, "must be true or false");
    return json_is_true(v);
}

static int want_days(const json_t *v, const char *path, hx_errors_t *e)
{
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 36500) {
        hx_errors_add(e, path, "must be a number of days (1 to 36500)");
        return 0;
    }
    return (int)json_integer_value(v);
}

static int want_age(const json_t *v, const char *path, hx_errors_t *e)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 130) {
        hx_errors_add(e, path, "must be an age in years (0 to 130)");
        return -1;
    }
    return (int)json_integer_value(v);
}

static rule_t *find_rule(const hx_rules_t *rules, const char *code)
{
    rule_t *it = NULL;
    if (code)
        HASH_FIND(hh, rules->by_code, code, strlen(code), it);
    return it;
}

/* A list of codes of one kind, as rule indices. */
static int *want_codes(const hx_rules_t *rules, const json_t *v, rule_kind_t kind, const char *path, size_t *n,
                       hx_errors_t *e)
{
    static const char *const kind_name[] = {"condition", "red flag", "contraindication", "fact"};
    *n = 0;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        hx_errors_add(e, path, "must be a non-empty array of %s codes", kind_name[kind]);
        return NULL;
    }
    int *out = calloc(json_array_size(v), sizeof *out);
    if (!out) {
        hx_errors_add(e, path, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        path_t ip;
        hx_path_index(ip, sizeof ip, path, i);
        const rule_t *r = find_rule(rules, json_string_value(json_array_get(v, i)));
        if (!r || r->kind != kind)
            hx_errors_add(e, ip, "must be a %s code of this file", kind_name[kind]);
        else
            out[(*n)++] = r->index;
    }
    return out;
}

static int want_code(const hx_rules_t *rules, const json_t *v, rule_kind_t kind, const char *path, hx_errors_t *e)
{
    static const char *const kind_name[] = {"condition", "red flag", "contraindication", "fact"};
    const rule_t *r = find_rule(rules, json_string_value(v));
    if (!r || r->kind != kind) {
        hx_errors_add(e, path, "must be a %s code of this file", kind_name[kind]);
        return -1;
    }
    return r->index;
}

/* Adds each phrase of an array to the lexicon. */
static void want_phrases(hx_rules_t *rules, const json_t *v, const char *path, group_t group, int target,
                         hx_errors_t *e)
{
    if (!json_is_array(v)) {
        hx_errors_add(e, path, "must be an array of phrases");
        return;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        path_t ip;
        hx_path_index(ip, sizeof ip, path, i);
        const char *s = want_text(json_array_get(v, i), ip, PHRASE_MAX, e);
        if (!s)
            continue;
        int rc = hx_lex_add(rules, s, group, target);
        if (rc == -2)
            hx_errors_add(e, ip, "has no word to match");
        else if (rc)
            hx_errors_add(e, ip, "out of memory");
    }
}

static void want_snomed(rule_t *r, const json_t *v, const char *path, hx_errors_t *e)
{
    if (json_is_null(v))
        return;     /* no single concept: said so in the file */
    path_t cp, dp;
    path_key(cp, path, "code");
    path_key(dp, path, "display");
    const char *code = json_string_value(json_object_get(v, "code"));
    if (!json_is_object(v) || json_object_size(v) != 2) {
        hx_errors_add(e, path, "must be {\"code\": \"<SNOMED CT id>\", \"display\": \"<term>\"} or null");
        return;
    }
    size_t n = code ? strlen(code) : 0;
    if (!code || n < 6 || n > 18 || strspn(code, "0123456789") != n) {
        hx_errors_add(e, cp, "must be a SNOMED CT concept id (6 to 18 digits)");
        return;
    }
    r->snomed_display = dup_text(json_object_get(v, "display"), dp, LABEL_MAX, e);
    if (r->snomed_display && !(r->snomed = strdup(code)))
        hx_errors_add(e, cp, "out of memory");
}

static int want_site(const hx_rules_t *rules, const json_t *v, const char *path, hx_errors_t *e)
{
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "whole_body"))
        return SITE_WHOLE_BODY;
    for (size_t i = 0; s && i < rules->sites.n; i++)
        if (!strcmp(rules->sites.names[i], s))
            return (int)i;
    hx_errors_add(e, path, "must be a site of \"sites\" or \"whole_body\"");
    return -1;
}

/* ---- entries ------------------------------------------------------------------------- */

static void parse_when(hx_rules_t *rules, rule_t *r, const json_t *v, const char *path, hx_errors_t *e)
{
    if (!json_is_array(v) || json_array_size(v) == 0) {
        hx_errors_add(e, path, "must be a non-empty array of {\"facts\", \"conditions\", \"age_*\"}");
        return;
    }
    r->when = calloc(json_array_size(v), sizeof *r->when);
    if (!r->when) {
        hx_errors_add(e, path, "out of memory");
        return;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        path_t ip;
        hx_path_index(ip, sizeof ip, path, i);
        when_t *w = &r->when[r->n_when++];
        w->age_over = w->age_under = w->age_at_least = -1;
        const char *key;
        json_t *x;
        json_object_foreach(json_array_get(v, i), key, x) {
            path_t kp;
            path_key(kp, ip, key);
            if (!strcmp(key, "facts"))
                w->facts = want_codes(rules, x, K_FACT, kp, &w->n_facts, e);
            else if (!strcmp(key, "conditions"))
                w->conditions = want_codes(rules, x, K_CONDITION, kp, &w->n_conditions, e);
            else if (!strcmp(key, "age_over"))
                w->age_over = want_age(x, kp, e);
            else if (!strcmp(key, "age_under"))
                w->age_under = want_age(x, kp, e);
            else if (!strcmp(key, "age_at_least"))
                w->age_at_least = want_age(x, kp, e);
            else
                hx_errors_add(e, kp, "unknown field");
        }
        if (!json_is_object(json_array_get(v, i)) || (!w->n_facts && !w->n_conditions))
            hx_errors_add(e, ip, "must be an object with \"facts\" or \"conditions\"");
    }
}

static bool parse_plan(rule_t *r, const json_t *v, const char *path, hx_errors_t *e)
{
    if (!json_is_string(v)) {
        hx_errors_add(e, path, "must be a string");
        return false;
    }
    const char *s = json_string_value(v);
    r->plan = !strcmp(s, "physiotherapy") ? PLAN_PHYSIO : !strcmp(s, "massage_therapy") ? PLAN_MASSAGE
              : !strcmp(s, "both") ? PLAN_BOTH : 0;
    if (!r->plan) {
        char shown[40];
        snprintf(shown, sizeof shown, "%s", s);
        hx_errors_add(e, path, "unknown value \"%s\" (physiotherapy, massage_therapy, both)", shown);
    }
    return true;
}

/* A field every kind of entry may have; false when key is not one. */
static bool common_field(hx_rules_t *rules, rule_t *r, const char *key, const json_t *v, const char *path,
                         hx_errors_t *e)
{
    group_t g = r->kind == K_FACT ? G_FACT : G_CONCEPT;
    if (!strcmp(key, "terms") || !strcmp(key, "terms_fr"))
        want_phrases(rules, v, path, g, r->index, e);
    else if (!strcmp(key, "history"))
        r->history_fires = want_bool(v, path, e);
    else if (!strcmp(key, "recent_days"))
        r->recent_days = want_days(v, path, e);
    else if (!strcmp(key, "snomed") && r->kind != K_FACT)
        want_snomed(r, v, path, e);
    else if (!strcmp(key, "explained_by") && r->kind != K_CONDITION)
        want_phrases(rules, v, path, G_EXPLAIN, r->index, e);
    else
        return false;
    return true;
}

static bool condition_field(hx_rules_t *rules, rule_t *r, const char *key, const json_t *v, const char *path,
                            hx_errors_t *e)
{
    if (!strcmp(key, "plan"))
        parse_plan(r, v, path, e);
    else if (!strcmp(key, "label"))
        r->text = dup_text(v, path, LABEL_MAX, e);
    else if (!strcmp(key, "priority"))
        r->priority = want_priority(v, path, e);
    else if (!strcmp(key, "site"))
        r->site = want_site(rules, v, path, e);
    else if (!strcmp(key, "precaution"))
        r->precaution = dup_text(v, path, REASON_MAX, e);
    else
        return false;
    return true;
}

static bool flag_field(hx_rules_t *rules, rule_t *r, const char *key, const json_t *v, const char *path,
                       hx_errors_t *e)
{
    if (!strcmp(key, "reason"))
        r->text = dup_text(v, path, REASON_MAX, e);
    else if (!strcmp(key, "emergency"))
        r->emergency = want_bool(v, path, e);
    else if (!strcmp(key, "priority"))
        r->priority = want_priority(v, path, e);
    else if (!strcmp(key, "physician_aware_as"))
        r->aware_as = want_code(rules, v, K_CONTRA, path, e);
    else if (!strcmp(key, "only_with"))
        r->only_with = want_codes(rules, v, K_CONDITION, path, &r->n_only_with, e);
    else if (!strcmp(key, "not_when_only"))
        r->not_when_only = want_codes(rules, v, K_CONDITION, path, &r->n_not_when_only, e);
    else if (!strcmp(key, "when"))
        parse_when(rules, r, v, path, e);
    else
        return false;
    return true;
}

static bool contra_field(hx_rules_t *rules, rule_t *r, const char *key, const json_t *v, const char *path,
                         hx_errors_t *e)
{
    if (!strcmp(key, "reason"))
        r->text = dup_text(v, path, REASON_MAX, e);
    else if (!strcmp(key, "at_site"))
        r->at_site = want_bool(v, path, e);
    else if (!strcmp(key, "recent_of"))
        r->recent_of = want_codes(rules, v, K_CONDITION, path, &r->n_recent_of, e);
    else if (!strcmp(key, "lifted_by"))
        r->lifted_by = want_codes(rules, v, K_CONDITION, path, &r->n_lifted_by, e);
    else if (!strcmp(key, "cleared_by"))
        r->cleared_by = want_code(rules, v, K_FACT, path, e);
    else
        return false;
    return true;
}

static void parse_rule(hx_rules_t *rules, rule_t *r, const json_t *j, const char *base, hx_errors_t *e)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        bool known = common_field(rules, r, key, v, path, e);
        if (!known && r->kind == K_CONDITION)
            known = condition_field(rules, r, key, v, path, e);
        else if (!known && r->kind == K_RED_FLAG)
            known = flag_field(rules, r, key, v, path, e);
        else if (!known && r->kind == K_CONTRA)
            known = contra_field(rules, r, key, v, path, e);
        else if (!known && r->kind == K_FACT && !strcmp(key, "label")) {
            r->text = dup_text(v, path, LABEL_MAX, e);
            known = true;
        } else if (!known && r->kind == K_FACT && !strcmp(key, "precaution")) {
            r->precaution = dup_text(v, path, REASON_MAX, e);
            known = true;
        }
        if (!known)
            hx_errors_add(e, path, "unknown field");
    }
    path_t path;
    if (r->kind == K_CONDITION && !json_object_get(j, "plan")) {
        path_key(path, base, "plan");
        hx_errors_add(e, path, "required (physiotherapy, massage_therapy or both)");
    }
    const char *need = r->kind == K_CONDITION || r->kind == K_FACT ? "label" : "reason";
    if (!json_object_get(j, need)) {
        path_key(path, base, need);
        hx_errors_add(e, path, "required");
    }
}

/* ---- tables -------------------------------------------------------------------------- */

static rule_t *new_rule(hx_rules_t *rules, const char *code, rule_kind_t kind)
{
    if (rules->n_all == rules->cap_all) {
        size_t cap = rules->cap_all ? rules->cap_all * 2 : 64;
        rule_t **grown = realloc(rules->all, cap * sizeof *grown);
        if (!grown)
            return NULL;
        rules->all = grown;
        rules->cap_all = cap;
    }
    rule_t *r = calloc(1, sizeof *r);
    if (!r || !(r->code = strdup(code))) {
        free(r);
        return NULL;
    }
    r->kind = kind;
    r->index = (int)rules->n_all;
    r->site = -1;
    r->aware_as = r->cleared_by = -1;
    rules->all[rules->n_all++] = r;
    HASH_ADD_KEYPTR(hh, rules->by_code, r->code, strlen(r->code), r);
    return r;
}

static const char *const table_names[K_KINDS] = {"conditions", "red_flags", "massage_contraindications", "facts"};

/* First pass: every code of a table becomes a rule, so entries may name each other. */
static void declare_table(hx_rules_t *rules, rule_kind_t kind, const json_t *j, hx_errors_t *e)
{
    const char *base = table_names[kind];
    if (!json_is_object(j)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    if (kind == K_CONDITION && json_object_size(j) == 0)
        hx_errors_add(e, base, "must have at least one condition");
    const char *code;
    json_t *v;
    json_object_foreach((json_t *)j, code, v) {
        path_t path;
        path_key(path, base, code);
        const rule_t *dup = find_rule(rules, code);
        if (!hx_is_code(code))
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _; at most %d characters)", HX_CODE_MAX);
        else if (!json_is_object(v))
            hx_errors_add(e, path, "must be an object");
        else if (dup)
            hx_errors_add(e, path, "duplicate of %s.%s", table_names[dup->kind], code);
        else if (!new_rule(rules, code, kind))
            hx_errors_add(e, path, "out of memory");
    }
}

static void parse_table(hx_rules_t *rules, rule_kind_t kind, const json_t *j, hx_errors_t *e)
{
    const char *code;
    json_t *v;
    if (!json_is_object(j))
        return;
    json_object_foreach((json_t *)j, code, v) {
        rule_t *r = find_rule(rules, code);
        if (!r || r->kind != kind || !json_is_object(v))
            continue;
        path_t path;
        path_key(path, table_names[kind], code);
        parse_rule(rules, r, v, path, e);
        if (r->snomed) {
            rule_t *other = NULL;
            HASH_FIND(hs, rules->by_snomed, r->snomed, strlen(r->snomed), other);
            if (!other)
                HASH_ADD_KEYPTR(hs, rules->by_snomed, r->snomed, strlen(r->snomed), r);
        }
    }
}

static void parse_never_alone(hx_rules_t *rules, const json_t *j, const char *base, hx_errors_t *e)
{
    if (!json_is_object(j)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    size_t n = json_object_size(j) + 1;
    rules->never_alone_fragment = calloc(n, sizeof *rules->never_alone_fragment);
    rules->never_alone_reason = calloc(n, sizeof *rules->never_alone_reason);
    if (!rules->never_alone_fragment || !rules->never_alone_reason) {
        hx_errors_add(e, base, "out of memory");
        return;
    }
    const char *code;
    json_t *v;
    json_object_foreach((json_t *)j, code, v) {
        path_t path, rp;
        path_key(path, base, code);
        path_key(rp, path, "reason");
        if (!hx_is_code(code)) {
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _; at most %d characters)", HX_CODE_MAX);
            continue;
        }
        if (!json_is_object(v)) {
            hx_errors_add(e, path, "must be an object");
            continue;
        }
        const char *key;
        json_t *x;
        json_object_foreach(v, key, x) {
            if (strcmp(key, "reason")) {
                path_t kp;
                path_key(kp, path, key);
                hx_errors_add(e, kp, "unknown field");
            }
        }
        if (!json_object_get(v, "reason")) {
            hx_errors_add(e, rp, "required");
            continue;
        }
        char *reason = dup_text(json_object_get(v, "reason"), rp, REASON_MAX, e);
        char *frag = reason ? strdup(code) : NULL;
        if (!frag) {
            free(reason);
            continue;
        }
        rules->never_alone_fragment[rules->n_never_alone] = frag;
        rules->never_alone_reason[rules->n_never_alone++] = reason;
    }
}

static void parse_rmt_findings(hx_rules_t *rules, const json_t *v, const char *path, hx_errors_t *e)
{
    if (!json_is_array(v)) {
        hx_errors_add(e, path, "must be an array of finding codes");
        return;
    }
    size_t n = json_array_size(v);
    rules->rmt_findings = calloc(n + 1, sizeof *rules->rmt_findings);
    if (!rules->rmt_findings) {
        hx_errors_add(e, path, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        path_t ip;
        hx_path_index(ip, sizeof ip, path, i);
        const json_t *item = json_array_get(v, i);
        if (!json_is_string(item)) {
            hx_errors_add(e, ip, "must be a string");
        } else if (!hx_is_code(json_string_value(item))) {
            hx_errors_add(e, ip, "must be a code (a-z, 0-9, _)");
        } else {
            char *s = strdup(json_string_value(item));
            if (s)
                rules->rmt_findings[rules->n_rmt_findings++] = s;
            else
                hx_errors_add(e, ip, "out of memory");
        }
    }
}

static void parse_rmt(hx_rules_t *rules, const json_t *j, const char *base, hx_errors_t *e)
{
    if (!json_is_object(j)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (!strcmp(key, "reason"))
            rules->rmt_reason = dup_text(v, path, REASON_MAX, e);
        else if (!strcmp(key, "findings"))
            parse_rmt_findings(rules, v, path, e);
        else
            hx_errors_add(e, path, "unknown field");
    }
    if (!json_object_get(j, "reason")) {
        path_t path;
        path_key(path, base, "reason");
        hx_errors_add(e, path, "required");
    }
}

static void parse_context(hx_rules_t *rules, const json_t *j, const char *base, hx_errors_t *e)
{
    static const char *const names[TR_KINDS] = {
        [TR_PRE_NEG] = "pre_negation", [TR_POST_NEG] = "post_negation", [TR_PSEUDO] = "pseudo_negation",
        [TR_TERM] = "terminators", [TR_HIST] = "historical", [TR_HIST_POST] = "historical_post",
        [TR_FAMILY] = "family", [TR_AWARE] = "physician_aware"};
    if (!json_is_object(j)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        int t = 0;
        while (t < TR_KINDS && strcmp(names[t], key))
            t++;
        if (t < TR_KINDS) {
            want_phrases(rules, v, path, G_TRIGGER, t, e);
        } else if (!strcmp(key, "not_misspellings") && json_is_array(v)) {
            rules->not_misspellings = calloc(json_array_size(v) + 1, sizeof *rules->not_misspellings);
            for (size_t i = 0; rules->not_misspellings && i < json_array_size(v); i++) {
                const char *w = json_string_value(json_array_get(v, i));
                if (w && (rules->not_misspellings[rules->n_not_misspellings] = strdup(w)))
                    rules->n_not_misspellings++;
            }
        } else {
            hx_errors_add(e, path, "unknown field");
        }
    }
}

static void parse_sites(hx_rules_t *rules, const json_t *j, const char *base, hx_errors_t *e)
{
    if (!json_is_object(j) || json_object_size(j) > SITES_MAX) {
        hx_errors_add(e, base, "must be an object of at most %d sites", SITES_MAX);
        return;
    }
    rules->sites.names = calloc(json_object_size(j) + 1, sizeof *rules->sites.names);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (!rules->sites.names || !(rules->sites.names[rules->sites.n] = strdup(key))) {
            hx_errors_add(e, path, "out of memory");
            return;
        }
        want_phrases(rules, v, path, G_SITE, (int)rules->sites.n++, e);
    }
}

static hx_rules_t *rules_from_json(const json_t *root, hx_errors_t *e)
{
    const size_t before = e->count + e->dropped;
    if (!json_is_object(root)) {
        hx_errors_add(e, "", "the rules file must be a JSON object");
        return NULL;
    }
    hx_rules_t *rules = calloc(1, sizeof *rules);
    if (!rules) {
        hx_errors_add(e, "", "out of memory");
        return NULL;
    }
    rules->rmt_fact = rules->massage_request_fact = rules->sentinel_fact = -1;
    if (json_object_get(root, "sites"))
        parse_sites(rules, json_object_get(root, "sites"), "sites", e);
    for (rule_kind_t k = 0; k < K_KINDS; k++)
        if (json_object_get(root, table_names[k]))
            declare_table(rules, k, json_object_get(root, table_names[k]), e);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        rule_kind_t k = 0;
        while (k < K_KINDS && strcmp(table_names[k], key))
            k++;
        if (k < K_KINDS)
            parse_table(rules, k, v, e);
        else if (!strcmp(key, "version") && (!json_is_integer(v) || json_integer_value(v) != 1))
            hx_errors_add(e, key, "must be 1");
        else if (!strcmp(key, "massage_never_alone"))
            parse_never_alone(rules, v, key, e);
        else if (!strcmp(key, "rmt_needs_diagnosis"))
            parse_rmt(rules, v, key, e);
        else if (!strcmp(key, "context"))
            parse_context(rules, v, key, e);
        else if (strcmp(key, "version") && strcmp(key, "sites"))
            hx_errors_add(e, key, "unknown field");
    }
    if (!json_object_get(root, "conditions"))
        hx_errors_add(e, "conditions", "required");
    const rule_t *f = find_rule(rules, "needs_diagnosis");
    rules->rmt_fact = f && f->kind == K_FACT ? f->index : -1;
    f = find_rule(rules, "massage_request");
    rules->massage_request_fact = f && f->kind == K_FACT ? f->index : -1;
    f = find_rule(rules, "cauda_equina_words");
    rules->sentinel_fact = f && f->kind == K_FACT ? f->index : -1;
    if (e->count + e->dropped == before && hx_lex_finish(rules) != 0)
        hx_errors_add(e, "", "out of memory");
    if (e->count + e->dropped > before)
        hx_rules_destroy(&rules);
    return rules;
}

static hx_rules_t *hx_rules_read(const char *path, const char *text, hx_errors_t *errs)
{
    hx_errors_t local;
    if (!errs) {
        hx_errors_clear(&local);
        errs = &local;
    }
    json_t *root = hx_json_read(path, text, "rules file", errs);
    if (!root)
        return NULL;
    hx_rules_t *out = rules_from_json(root, errs);
    json_decref(root);
    return out;
}

hx_rules_t *hx_rules_parse(const char *text, hx_errors_t *errs)
{
    return hx_rules_read(NULL, text, errs);
}

hx_rules_t *hx_rules_load(const char *path, hx_errors_t *errs)
{
    return hx_rules_read(path, NULL, errs);
}
