/* hx_triage — the triage rules (a JSON data file the clinics edit) and the pure decision
 * function (see hx_triage.h).
 *
 * Rules file (services/triage/rules.json):
 *   {
 *     "version": 1,                                   optional; 1 is the only version
 *     "conditions": {                                 required, at least one entry
 *       "<code>": {"plan": "physiotherapy" | "massage_therapy" | "both",
 *                  "label": "<text>", "priority": "<routine..stat>" (optional)}
 *     },
 *     "red_flags": {                                  neither therapist: see a physician
 *       "<finding>": {"reason": "<text>", "emergency": true|false (optional),
 *                     "priority": "<routine..stat>" (optional, default urgent)}
 *     },
 *     "massage_contraindications": {                  massage is removed from the plan
 *       "<finding>": {"reason": "<text>"}
 *     },
 *     "massage_never_alone": {                        massage only alongside physiotherapy
 *       "<fragment of a condition code>": {"reason": "<text>"}
 *     },
 *     "rmt_needs_diagnosis": {                        an RMT does not diagnose
 *       "findings": ["<finding>", ...], "reason": "<text>"
 *     }
 *   }
 *
 * Decision, in order (each step is recorded in decision.rules):
 *   1. any red-flag finding: red_flag, disciplines [physician], reason "refer to a physician: ..."
 *      listing each flag; emergency if any flag is; priority stat for an emergency, else the
 *      highest of the referral's and the flags' priorities.          rules "red_flag:<code>"
 *   2. the union of the plans of the known conditions (unknown codes are noted and ignored;
 *      none known: return -1).                                        rules "condition:<code>"
 *   3. a massage therapist referring with a "needs diagnosis" finding, or with a condition
 *      whose plan is physiotherapy: physiotherapy (the PT assesses).  rules "rmt_needs_diagnosis"
 *   4. massage alone for a condition matching a never-alone fragment: physiotherapy added.
 *                                                                     rules "massage_never_alone:<fragment>"
 *   5. each massage contraindication removes massage, with a note; if nothing is left the
 *      patient is sent to a physician (red_flag) to be cleared first.
 *                                                                     rules "contraindication:<code>"
 *   Priority: the highest of the referral's (unspecified = routine) and the matched rules'. */
#include "hx_triage.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "hx_refjson.h"
#include "hx_util.h"

enum { PLAN_PHYSIO = 1, PLAN_MASSAGE = 2, PLAN_BOTH = 3 };

#define LABEL_MAX 200
#define REASON_MAX 300

typedef struct entry {
    char *code;                 /* hash key */
    char *text;                 /* condition label, or the reason of a flag / contraindication */
    unsigned plan;              /* conditions only */
    bool emergency;             /* red flags only */
    Handoff__Priority priority; /* 0 = none given */
    UT_hash_handle hh;
} entry_t;

typedef struct {
    char *fragment;
    char *reason;
} never_alone_t;

struct hx_rules {
    entry_t *conditions;
    entry_t *red_flags;
    entry_t *contraindications;
    never_alone_t *never_alone;
    size_t n_never_alone;
    char **rmt_findings;
    size_t n_rmt_findings;
    char *rmt_reason;           /* NULL: no rmt_needs_diagnosis rule */
};

/* ---- loading ------------------------------------------------------------------------- */

typedef char path_t[96];

static void path_key(path_t out, const char *base, const char *key)
{
    hx_path_key(out, sizeof(path_t), base, key);
}

static void free_table(entry_t **head)
{
    entry_t *it, *tmp;
    HASH_ITER(hh, *head, it, tmp) {
        HASH_DEL(*head, it);
        free(it->code);
        free(it->text);
        free(it);
    }
}

void hx_rules_destroy(hx_rules_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_rules_t *self = *self_p;
    free_table(&self->conditions);
    free_table(&self->red_flags);
    free_table(&self->contraindications);
    for (size_t i = 0; i < self->n_never_alone; i++) {
        free(self->never_alone[i].fragment);
        free(self->never_alone[i].reason);
    }
    free(self->never_alone);
    for (size_t i = 0; i < self->n_rmt_findings; i++)
        free(self->rmt_findings[i]);
    free(self->rmt_findings);
    free(self->rmt_reason);
    free(self);
    *self_p = NULL;
}

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

enum table_kind { T_CONDITION, T_RED_FLAG, T_CONTRA, T_NEVER_ALONE };

/* Parses one entry of a code-keyed table; returns false when it had errors. */
static bool parse_entry(enum table_kind kind, const json_t *j, const char *base, entry_t *out,
                        hx_errors_t *e)
{
    const size_t before = e->count + e->dropped;
    const char *text = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (kind == T_CONDITION && !strcmp(key, "plan")) {
            if (!json_is_string(v)) {
                hx_errors_add(e, path, "must be a string");
                continue;
            }
            const char *s = json_string_value(v);
            if (!strcmp(s, "physiotherapy"))
                out->plan = PLAN_PHYSIO;
            else if (!strcmp(s, "massage_therapy"))
                out->plan = PLAN_MASSAGE;
            else if (!strcmp(s, "both"))
                out->plan = PLAN_BOTH;
            else {
                char shown[40];
                snprintf(shown, sizeof shown, "%s", s);
                hx_errors_add(e, path, "unknown value \"%s\" (physiotherapy, massage_therapy, both)", shown);
            }
        } else if (kind == T_CONDITION && !strcmp(key, "label")) {
            text = want_text(v, path, LABEL_MAX, e);
        } else if (kind != T_CONDITION && !strcmp(key, "reason")) {
            text = want_text(v, path, REASON_MAX, e);
        } else if (kind == T_RED_FLAG && !strcmp(key, "emergency")) {
            if (!json_is_boolean(v))
                hx_errors_add(e, path, "must be true or false");
            else
                out->emergency = json_is_true(v);
        } else if ((kind == T_CONDITION || kind == T_RED_FLAG) && !strcmp(key, "priority")) {
            out->priority = want_priority(v, path, e);
        } else {
            hx_errors_add(e, path, "unknown field");
        }
    }
    path_t path;
    if (kind == T_CONDITION && !json_object_get(j, "plan")) {
        path_key(path, base, "plan");
        hx_errors_add(e, path, "required (physiotherapy, massage_therapy or both)");
    }
    if (!text && !json_object_get(j, kind == T_CONDITION ? "label" : "reason")) {
        path_key(path, base, kind == T_CONDITION ? "label" : "reason");
        hx_errors_add(e, path, "required");
    }
    if (e->count + e->dropped > before)
        return false;
    out->text = strdup(text);
    if (!out->text) {
        hx_errors_add(e, base, "out of memory");
        return false;
    }
    return true;
}

/* Parses {"<code>": {...}, ...} into a hash table (or, for never-alone, into an array). */
static void parse_table(hx_rules_t *rules, enum table_kind kind, const json_t *j, const char *base,
                        hx_errors_t *e)
{
    if (!json_is_object(j)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    if (kind == T_CONDITION && json_object_size(j) == 0) {
        hx_errors_add(e, base, "must have at least one condition");
        return;
    }
    if (kind == T_NEVER_ALONE) {
        rules->never_alone = calloc(json_object_size(j) + 1, sizeof *rules->never_alone);
        if (!rules->never_alone) {
            hx_errors_add(e, base, "out of memory");
            return;
        }
    }
    const char *code;
    json_t *v;
    json_object_foreach((json_t *)j, code, v) {
        path_t path;
        path_key(path, base, code);
        if (!hx_is_code(code)) {
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _; at most %d characters)", HX_CODE_MAX);
            continue;
        }
        if (!json_is_object(v)) {
            hx_errors_add(e, path, "must be an object");
            continue;
        }
        entry_t tmp = {0};
        if (!parse_entry(kind, v, path, &tmp, e))
            continue;
        if (kind == T_NEVER_ALONE) {
            never_alone_t *na = &rules->never_alone[rules->n_never_alone];
            na->fragment = strdup(code);
            na->reason = tmp.text;
            rules->n_never_alone++;
            if (!na->fragment)
                hx_errors_add(e, path, "out of memory");
            continue;
        }
        entry_t *it = malloc(sizeof *it);
        if (!it || !(tmp.code = strdup(code))) {
            free(it);
            free(tmp.text);
            hx_errors_add(e, path, "out of memory");
            continue;
        }
        *it = tmp;
        entry_t **head = kind == T_CONDITION ? &rules->conditions
                         : kind == T_RED_FLAG ? &rules->red_flags
                                              : &rules->contraindications;
        HASH_ADD_KEYPTR(hh, *head, it->code, strlen(it->code), it);
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
    const char *reason = NULL;
    json_object_foreach((json_t *)j, key, v) {
        path_t path;
        path_key(path, base, key);
        if (!strcmp(key, "reason")) {
            reason = want_text(v, path, REASON_MAX, e);
        } else if (!strcmp(key, "findings")) {
            if (!json_is_array(v)) {
                hx_errors_add(e, path, "must be an array of finding codes");
                continue;
            }
            size_t n = json_array_size(v);
            rules->rmt_findings = calloc(n + 1, sizeof *rules->rmt_findings);
            if (!rules->rmt_findings) {
                hx_errors_add(e, path, "out of memory");
                continue;
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
        } else {
            hx_errors_add(e, path, "unknown field");
        }
    }
    if (!json_object_get(j, "reason")) {
        path_t path;
        path_key(path, base, "reason");
        hx_errors_add(e, path, "required");
    }
    if (reason && !(rules->rmt_reason = strdup(reason)))
        hx_errors_add(e, base, "out of memory");
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
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        if (!strcmp(key, "version")) {
            if (!json_is_integer(v) || json_integer_value(v) != 1)
                hx_errors_add(e, key, "must be 1");
        } else if (!strcmp(key, "conditions")) {
            parse_table(rules, T_CONDITION, v, key, e);
        } else if (!strcmp(key, "red_flags")) {
            parse_table(rules, T_RED_FLAG, v, key, e);
        } else if (!strcmp(key, "massage_contraindications")) {
            parse_table(rules, T_CONTRA, v, key, e);
        } else if (!strcmp(key, "massage_never_alone")) {
            parse_table(rules, T_NEVER_ALONE, v, key, e);
        } else if (!strcmp(key, "rmt_needs_diagnosis")) {
            parse_rmt(rules, v, key, e);
        } else {
            hx_errors_add(e, key, "unknown field");
        }
    }
    if (!json_object_get(root, "conditions"))
        hx_errors_add(e, "conditions", "required");
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

/* ---- deciding ------------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf_t;

static void sb_add(sbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf_t *sb, const char *fmt, ...)
{
    if (sb->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        sb->oom = true;
        return;
    }
    if (sb->len + (size_t)n + 1 > sb->cap) {
        size_t cap = (sb->len + (size_t)n + 1) * 2;
        char *nb = realloc(sb->buf, cap);
        if (!nb) {
            sb->oom = true;
            return;
        }
        sb->buf = nb;
        sb->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

/* Takes sb's text (NULL on oom, after freeing). */
static char *sb_take(sbuf_t *sb)
{
    if (sb->oom || !sb->buf) {
        free(sb->buf);
        sb->buf = NULL;
        return sb->oom ? NULL : strdup("");
    }
    char *s = sb->buf;
    sb->buf = NULL;
    return s;
}

typedef struct {
    Handoff__TriageDecision *d;
    bool oom;
} dctx_t;

static void push_text(dctx_t *c, size_t *n, char ***items, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void push_text(dctx_t *c, size_t *n, char ***items, const char *fmt, ...)
{
    if (c->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = len >= 0 ? malloc((size_t)len + 1) : NULL;
    char **grown = s ? realloc(*items, (*n + 1) * sizeof **items) : NULL;
    if (!s || !grown) {
        free(s);
        c->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    *items = grown;
    (*items)[(*n)++] = s;
}

static void add_rule(dctx_t *c, const char *kind, const char *code)
{
    if (code)
        push_text(c, &c->d->n_rules, &c->d->rules, "%s:%s", kind, code);
    else
        push_text(c, &c->d->n_rules, &c->d->rules, "%s", kind);
}

static void set_disciplines(dctx_t *c, unsigned plan, bool physician)
{
    Handoff__TriageDecision *d = c->d;
    free(d->disciplines);
    d->disciplines = NULL;
    d->n_disciplines = 0;
    size_t n = physician ? 1 : ((plan & PLAN_PHYSIO) != 0) + ((plan & PLAN_MASSAGE) != 0);
    if (n == 0)
        return;
    d->disciplines = malloc(n * sizeof *d->disciplines);
    if (!d->disciplines) {
        c->oom = true;
        return;
    }
    if (physician) {
        d->disciplines[d->n_disciplines++] = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN;
        return;
    }
    if (plan & PLAN_PHYSIO)     /* physiotherapy first when both */
        d->disciplines[d->n_disciplines++] = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    if (plan & PLAN_MASSAGE)
        d->disciplines[d->n_disciplines++] = HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
}

static void set_reason(dctx_t *c, sbuf_t *sb)
{
    char *s = sb_take(sb);
    if (!s) {
        c->oom = true;
        return;
    }
    c->d->reason = s;
}

static const entry_t *find(const entry_t *head, const char *code)
{
    entry_t *it = NULL;
    if (code)
        HASH_FIND_STR((entry_t *)head, code, it);
    return it;
}

static Handoff__Priority max_priority(Handoff__Priority a, Handoff__Priority b)
{
    return a > b ? a : b;
}

static bool is_rmt_finding(const hx_rules_t *rules, const char *code)
{
    for (size_t i = 0; i < rules->n_rmt_findings; i++)
        if (!strcmp(rules->rmt_findings[i], code))
            return true;
    return false;
}

/* Returns 0/-1 as hx_triage_decide; c->oom when an allocation failed. */
static int decide(const hx_rules_t *rules, const Handoff__Referral *r, dctx_t *c)
{
    Handoff__TriageDecision *d = c->d;
    sbuf_t reason = {0};
    Handoff__Priority base = r->priority >= HANDOFF__PRIORITY__PRIORITY_ROUTINE &&
                                     r->priority <= HANDOFF__PRIORITY__PRIORITY_STAT
                                 ? r->priority
                                 : HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    d->priority = base;

    /* Findings the rules do not know are noted: a typo must not hide a red flag silently. */
    for (size_t i = 0; i < r->n_findings; i++) {
        const char *f = r->findings[i];
        if (f && !find(rules->red_flags, f) && !find(rules->contraindications, f) &&
            !is_rmt_finding(rules, f))
            push_text(c, &d->n_notes, &d->notes, "unknown finding code %s", f);
    }

    /* 1. red flags */
    sbuf_t flags = {0};
    size_t n_flags = 0;
    bool emergency = false;
    Handoff__Priority flag_priority = HANDOFF__PRIORITY__PRIORITY_URGENT;
    for (size_t i = 0; i < r->n_findings; i++) {
        const entry_t *flag = find(rules->red_flags, r->findings[i]);
        if (!flag)
            continue;
        sb_add(&flags, "%s%s", n_flags ? "; " : "", flag->text);
        n_flags++;
        emergency |= flag->emergency;
        if (flag->priority)
            flag_priority = max_priority(flag_priority, flag->priority);
        add_rule(c, "red_flag", flag->code);
    }
    if (n_flags) {
        sb_add(&reason, "%s: %s",
               emergency ? "refer to a physician now (emergency department)" : "refer to a physician",
               flags.buf ? flags.buf : "");
        c->oom |= flags.oom;
        free(flags.buf);
        d->red_flag = true;
        d->emergency = emergency;
        d->priority = emergency ? HANDOFF__PRIORITY__PRIORITY_STAT : max_priority(base, flag_priority);
        set_disciplines(c, 0, true);
        set_reason(c, &reason);
        return 0;
    }

    /* 2. conditions */
    unsigned plan = 0;
    size_t n_known = 0;
    sbuf_t labels = {0};
    for (size_t i = 0; i < r->n_conditions; i++) {
        const char *code = r->conditions[i];
        const entry_t *cond = find(rules->conditions, code);
        if (!cond) {
            push_text(c, &d->n_notes, &d->notes, "unknown condition code %s", code ? code : "");
            continue;
        }
        plan |= cond->plan;
        if (cond->priority)
            d->priority = max_priority(d->priority, cond->priority);
        sb_add(&labels, "%s%s", n_known ? "; " : "", cond->text);
        n_known++;
        add_rule(c, "condition", cond->code);
    }
    if (n_known == 0) {
        free(labels.buf);
        if (r->n_conditions == 0) {
            sb_add(&reason, "no condition codes: triage needs at least one");
        } else {
            sb_add(&reason, "no known condition code (");
            for (size_t i = 0; i < r->n_conditions; i++)
                sb_add(&reason, "%s%s", i ? ", " : "", r->conditions[i] ? r->conditions[i] : "");
            sb_add(&reason, "); see the triage rules for the codes");
        }
        set_reason(c, &reason);
        return -1;
    }

    /* 3. a massage therapist asking for a diagnosis */
    if (rules->rmt_reason && r->referrer &&
        r->referrer->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY) {
        bool needs = false;
        for (size_t i = 0; i < r->n_findings && !needs; i++)
            needs = r->findings[i] && is_rmt_finding(rules, r->findings[i]);
        for (size_t i = 0; i < r->n_conditions && !needs; i++) {
            const entry_t *cond = find(rules->conditions, r->conditions[i]);
            needs = cond && cond->plan == PLAN_PHYSIO;
        }
        if (needs) {
            plan = PLAN_PHYSIO;
            add_rule(c, "rmt_needs_diagnosis", NULL);
            push_text(c, &d->n_notes, &d->notes, "%s", rules->rmt_reason);
        }
    }

    /* 4. massage never alone */
    if (plan == PLAN_MASSAGE) {
        for (size_t k = 0; k < rules->n_never_alone && plan == PLAN_MASSAGE; k++) {
            for (size_t i = 0; i < r->n_conditions; i++) {
                if (r->conditions[i] && strstr(r->conditions[i], rules->never_alone[k].fragment)) {
                    plan |= PLAN_PHYSIO;
                    add_rule(c, "massage_never_alone", rules->never_alone[k].fragment);
                    push_text(c, &d->n_notes, &d->notes, "physiotherapy added: %s",
                              rules->never_alone[k].reason);
                    break;
                }
            }
        }
    }

    /* 5. massage contraindications */
    sbuf_t contra = {0};
    size_t n_contra = 0;
    if (plan & PLAN_MASSAGE) {
        for (size_t i = 0; i < r->n_findings; i++) {
            const entry_t *ci = find(rules->contraindications, r->findings[i]);
            if (!ci)
                continue;
            add_rule(c, "contraindication", ci->code);
            push_text(c, &d->n_notes, &d->notes, "massage removed: %s", ci->text);
            sb_add(&contra, "%s%s", n_contra ? "; " : "", ci->text);
            n_contra++;
        }
        if (n_contra)
            plan &= ~(unsigned)PLAN_MASSAGE;
    }
    if (n_contra && plan == 0) {
        sb_add(&reason, "massage contraindicated: %s; refer to a physician to be cleared first (%s)",
               contra.buf ? contra.buf : "", labels.buf ? labels.buf : "");
        c->oom |= contra.oom || labels.oom;
        free(contra.buf);
        free(labels.buf);
        d->red_flag = true;
        set_disciplines(c, 0, true);
        set_reason(c, &reason);
        return 0;
    }
    free(contra.buf);

    sb_add(&reason, "%s: %s",
           plan == PLAN_BOTH     ? "physiotherapy and massage therapy"
           : plan == PLAN_PHYSIO ? "physiotherapy"
                                 : "massage therapy",
           labels.buf ? labels.buf : "");
    if (labels.oom)
        c->oom = true;
    free(labels.buf);
    set_disciplines(c, plan, false);
    set_reason(c, &reason);
    return 0;
}

int hx_triage_decide(const hx_rules_t *rules, const Handoff__Referral *r,
                     Handoff__TriageDecision *out)
{
    if (!out)
        return -1;
    handoff__triage_decision__init(out);
    dctx_t c = {.d = out};
    const char *why = NULL;
    if (!rules)
        why = "no triage rules loaded";
    else if (!r)
        why = "no referral";
    if (why) {
        out->reason = strdup(why);
        if (!out->reason)
            out->reason = (char *)protobuf_c_empty_string;
        return -1;
    }
    if (r->referral_id && *r->referral_id) {
        out->referral_id = strdup(r->referral_id);
        if (!out->referral_id) {
            out->referral_id = (char *)protobuf_c_empty_string;
            c.oom = true;
        }
    }
    int rc = decide(rules, r, &c);
    if (c.oom) {
        hx_decision_clear(out);
        out->reason = strdup("out of memory");
        if (!out->reason)
            out->reason = (char *)protobuf_c_empty_string;
        return -1;
    }
    return rc;
}

static void free_string(char **s)
{
    if (*s && *s != protobuf_c_empty_string)
        free(*s);
    *s = (char *)protobuf_c_empty_string;
}

void hx_decision_clear(Handoff__TriageDecision *d)
{
    if (!d)
        return;
    free_string(&d->referral_id);
    free_string(&d->reason);
    free(d->disciplines);
    for (size_t i = 0; i < d->n_rules; i++)
        free(d->rules[i]);
    free(d->rules);
    for (size_t i = 0; i < d->n_notes; i++)
        free(d->notes[i]);
    free(d->notes);
    handoff__triage_decision__init(d);
}
