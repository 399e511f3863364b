/* hx_triage_decide — the pure decision function (see hx_triage.h), on what hx_triage_read
 * made of the referral's codes and words.
 *
 * Decision, in order (each step is recorded in decision.rules; every code and phrase read is
 * in decision.evidence with what it did):
 *   1. red flags win over everything: a coded flag; a flag's phrase affirmed in the text (not
 *      negated, past, someone else's, too old, or explained; only_with / not_when_only met);
 *      a compound flag whose facts, conditions and age all hold ("new" + back pain + age over
 *      50). Red flag, disciplines [physician], reason "refer to a physician: ..." (emergency:
 *      "refer to a physician now (emergency department): ..."), priority stat for an
 *      emergency, else the highest of the referral's and the flags' (default urgent).
 *                                                                   rules "red_flag:<code>"
 *   2. the conditions placed: coded ones, and those affirmed in the text. A condition read
 *      only in the text adds physiotherapy (an assessment) freely, but massage only when no
 *      condition was coded or the reason / expectations ask for massage: words never book a
 *      massage the referrer did not ask for.                        rules "condition:<code>"
 *   3. needs review, when a code or wording could not be placed or no condition was placed:
 *      no disciplines, needs_review, not_understood says what, suggested what the placed
 *      conditions alone would give; return 0.
 *   4. a massage therapist referring with a "needs diagnosis" finding (coded or in words), or
 *      with a condition whose plan is physiotherapy: physiotherapy.  rules "rmt_needs_diagnosis"
 *   5. massage alone for a condition matching a never-alone fragment: physiotherapy added.
 *                                                                   rules "massage_never_alone:<fragment>"
 *   6. massage contraindications: coded, affirmed in the text, a red flag a physician already
 *      knows of (physician_aware_as), or a recent mention of a recent_of condition (unless a
 *      lifted_by condition is in the plan or a cleared_by fact is affirmed). One at_site with
 *      its site named removes massage only when the massage is for that site (or for a site
 *      not known); whole-body massage stays, with a note to avoid the site. Others remove
 *      massage. Nothing left: the patient sees a physician first (red flag).
 *                                                                   rules "contraindication:<code>"
 *   7. precautions of the placed conditions and facts are noted when massage stays.
 *   Priority: the highest of the referral's (unspecified = routine) and the matched rules'. */
#include "hx_triage.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_refjson.h"
#include "hx_triage_internal.h"
#include "hx_util.h"

#define EVIDENCE_MAX 64

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

/* What is being decided. */
typedef struct {
    const hx_rules_t *rules;
    const Handoff__Referral *r;
    Handoff__TriageDecision *d;
    reading_t rd;
    bool *fired;                /* per rule: counted */
    bool *coded;                /* per rule: placed by a code */
    bool *in_text;              /* per rule: affirmed in the words */
    bool any_coded_condition;
    bool massage_requested;
    bool massage_added;         /* hx_triage_massage: a treating clinic asks for massage */
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

static bool has_rule(const Handoff__TriageDecision *d, const char *text)
{
    for (size_t i = 0; i < d->n_rules; i++)
        if (!strcmp(d->rules[i], text))
            return true;
    return false;
}

static void add_rule(dctx_t *c, const char *kind, const char *code)
{
    char text[128];
    snprintf(text, sizeof text, code ? "%s:%s" : "%s", kind, code ? code : "");
    if (!has_rule(c->d, text))
        push_text(c, &c->d->n_rules, &c->d->rules, "%s", text);
}

static void note(dctx_t *c, const char *fmt, const char *a)
{
    char text[512];
    snprintf(text, sizeof text, fmt, a);
    for (size_t i = 0; i < c->d->n_notes; i++)
        if (!strcmp(c->d->notes[i], text))
            return;
    push_text(c, &c->d->n_notes, &c->d->notes, "%s", text);
}

static Handoff__Discipline *plan_list(unsigned plan, bool physician, size_t *n)
{
    *n = physician ? 1 : ((plan & PLAN_PHYSIO) != 0) + ((plan & PLAN_MASSAGE) != 0);
    Handoff__Discipline *out = *n ? malloc(*n * sizeof *out) : NULL;
    if (!out) {
        *n = 0;
        return NULL;
    }
    size_t k = 0;
    if (physician)
        out[k++] = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN;
    if (!physician && (plan & PLAN_PHYSIO))     /* physiotherapy first when both */
        out[k++] = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    if (!physician && (plan & PLAN_MASSAGE))
        out[k++] = HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
    return out;
}

static void set_disciplines(dctx_t *c, unsigned plan, bool physician)
{
    Handoff__TriageDecision *d = c->d;
    free(d->disciplines);
    d->disciplines = plan_list(plan, physician, &d->n_disciplines);
    if (!d->disciplines && (physician || plan))
        c->oom = true;
}

static void set_reason(dctx_t *c, sbuf_t *sb)
{
    if (sb->oom || !(c->d->reason = sb->buf ? sb->buf : strdup(""))) {
        free(sb->buf);
        c->d->reason = (char *)protobuf_c_empty_string;
        c->oom = true;
    }
    sb->buf = NULL;
}

static Handoff__Priority max_priority(Handoff__Priority a, Handoff__Priority b)
{
    return a > b ? a : b;
}

static const rule_t *rule_of(const dctx_t *c, int index)
{
    return c->rules->all[index];
}

/* ---- evidence ------------------------------------------------------------------------ */

static const char *const kind_prefix[K_KINDS] = {"condition", "red_flag", "contraindication", "fact"};

static void add_evidence(dctx_t *c, const rule_t *r, const mention_t *m, bool fired)
{
    Handoff__TriageDecision *d = c->d;
    if (c->oom || d->n_evidence >= EVIDENCE_MAX)
        return;
    Handoff__TriageEvidence *ev = malloc(sizeof *ev);
    Handoff__TriageEvidence **grown = ev ? realloc(d->evidence, (d->n_evidence + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(ev);
        c->oom = true;
        return;
    }
    d->evidence = grown;
    handoff__triage_evidence__init(ev);
    d->evidence[d->n_evidence++] = ev;
    char rule[128];
    snprintf(rule, sizeof rule, "%s:%s", kind_prefix[r->kind], r->code);
    const char *texts[] = {rule, hx_source_name(m->source), m->words, hx_status_name(m->status), m->cue,
                           r->snomed, r->snomed_display, m->note};
    char **fields[] = {&ev->rule, &ev->source, &ev->words, &ev->status, &ev->cue, &ev->snomed,
                       &ev->snomed_display, &ev->note};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (texts[i] && *texts[i] && !(*fields[i] = strdup(texts[i]))) {
            *fields[i] = (char *)protobuf_c_empty_string;
            c->oom = true;
        }
    ev->fired = fired;
}

/* ---- what was read ------------------------------------------------------------------- */

static bool counts(const mention_t *m)
{
    return m->status == ST_AFFIRMED || m->status == ST_AWARE;
}

/* A flag a physician knows of in one sentence is the same flag elsewhere in the referral:
 * its other text mentions become physician-aware too. */
static void spread_awareness(dctx_t *c)
{
    for (size_t i = 0; i < c->rd.n; i++) {
        if (c->rd.m[i].status != ST_AWARE)
            continue;
        for (size_t k = 0; k < c->rd.n; k++) {
            mention_t *o = &c->rd.m[k];
            if (o->rule == c->rd.m[i].rule && o->status == ST_AFFIRMED && !(o->coded && !o->as_words)) {
                o->status = ST_AWARE;
                memcpy(o->cue, c->rd.m[i].cue, sizeof o->cue);
            }
        }
    }
}

/* Marks the conditions and facts placed, and whether massage was asked for in words. */
static void gather(dctx_t *c)
{
    spread_awareness(c);
    for (size_t i = 0; i < c->rd.n; i++) {
        const mention_t *m = &c->rd.m[i];
        const rule_t *r = rule_of(c, m->rule);
        if (!counts(m))
            continue;
        if (m->coded && !m->as_words) {
            c->coded[m->rule] = true;
            c->any_coded_condition |= r->kind == K_CONDITION;
        } else {
            c->in_text[m->rule] = true;
        }
        if (m->rule == c->rules->massage_request_fact &&
            (m->coded || m->source == SRC_REASON || m->source == SRC_EXPECTATIONS))
            c->massage_requested = true;
    }
}

static bool placed(const dctx_t *c, int rule)
{
    return c->coded[rule] || c->in_text[rule];
}

static bool any_placed(const dctx_t *c, const int *rules, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (placed(c, rules[i]))
            return true;
    return false;
}

/* Every placed condition is one of rules (and one is placed). */
static bool only_these(const dctx_t *c, const int *rules, size_t n)
{
    bool some = false;
    for (size_t i = 0; i < c->rules->n_all; i++) {
        if (rule_of(c, (int)i)->kind != K_CONDITION || !placed(c, (int)i))
            continue;
        bool listed = false;
        for (size_t k = 0; k < n && !listed; k++)
            listed = rules[k] == (int)i;
        if (!listed)
            return false;
        some = true;
    }
    return some;
}

/* ---- 1. red flags -------------------------------------------------------------------- */

static bool when_holds(const dctx_t *c, const when_t *w, char *why, size_t cap)
{
    for (size_t i = 0; i < w->n_facts; i++)
        if (!placed(c, w->facts[i]))
            return false;
    if (w->n_conditions && !any_placed(c, w->conditions, w->n_conditions))
        return false;
    int age = c->rd.age;
    bool aged = w->age_over >= 0 || w->age_under >= 0 || w->age_at_least >= 0;
    if ((w->age_over >= 0 && !(age > w->age_over)) || (w->age_under >= 0 && !(age >= 0 && age < w->age_under)) ||
        (w->age_at_least >= 0 && !(age >= w->age_at_least)))
        return false;
    size_t n = aged ? (size_t)snprintf(why, cap, "age %d", age) : 0;
    for (size_t i = 0; i < w->n_facts && n < cap; i++)
        n += (size_t)snprintf(why + n, cap - n, "%s%s", n ? " + " : "", rule_of(c, w->facts[i])->code);
    for (size_t i = 0; i < w->n_conditions && n < cap; i++)
        if (placed(c, w->conditions[i])) {
            snprintf(why + n, cap - n, "%s%s", n ? " + " : "", rule_of(c, w->conditions[i])->code);
            break;
        }
    return true;
}

/* Whether a text mention of a red flag counts, given the other conditions placed. */
static bool flag_context_ok(const dctx_t *c, const rule_t *r, mention_t *m)
{
    if (m->coded && !m->as_words)
        return true;
    if (r->n_only_with && !any_placed(c, r->only_with, r->n_only_with)) {
        m->status = ST_UNMET;
        snprintf(m->cue, sizeof m->cue, "only with %s", rule_of(c, r->only_with[0])->code);
        return false;
    }
    if (r->n_not_when_only && only_these(c, r->not_when_only, r->n_not_when_only)) {
        m->status = ST_EXPLAINED;
        snprintf(m->cue, sizeof m->cue, "expected with %s", rule_of(c, r->not_when_only[0])->code);
        return false;
    }
    return true;
}

/* The words of the text mentions that fired flag r, quoted, into sb. */
static void quote_words(dctx_t *c, const rule_t *r, sbuf_t *sb)
{
    size_t n = 0;
    for (size_t i = 0; i < c->rd.n; i++) {
        const mention_t *m = &c->rd.m[i];
        if (m->rule == r->index && m->status == ST_AFFIRMED && !(m->coded && !m->as_words))
            sb_add(sb, "%s\"%s\"", n++ ? ", " : " (", m->words);
    }
    if (n)
        sb_add(sb, ")");
}

static void fire_flag(dctx_t *c, const rule_t *r, sbuf_t *flags, size_t *n, bool *emergency, Handoff__Priority *prio)
{
    c->fired[r->index] = true;
    sb_add(flags, "%s%s", (*n)++ ? "; " : "", r->text);
    *emergency |= r->emergency;
    *prio = max_priority(*prio, r->priority ? r->priority : HANDOFF__PRIORITY__PRIORITY_URGENT);
    add_rule(c, "red_flag", r->code);
}

/* Fires the red flags; returns how many. */
static size_t red_flags(dctx_t *c, sbuf_t *flags, bool *emergency, Handoff__Priority *prio)
{
    size_t n = 0;
    for (size_t i = 0; i < c->rd.n; i++) {
        mention_t *m = &c->rd.m[i];
        const rule_t *r = rule_of(c, m->rule);
        if (r->kind != K_RED_FLAG || m->status != ST_AFFIRMED || c->fired[r->index] || !flag_context_ok(c, r, m))
            continue;
        fire_flag(c, r, flags, &n, emergency, prio);
        quote_words(c, r, flags);
    }
    for (size_t i = 0; i < c->rules->n_all; i++) {
        const rule_t *r = rule_of(c, (int)i);
        for (size_t k = 0; r->kind == K_RED_FLAG && !c->fired[i] && k < r->n_when; k++) {
            mention_t m = {.rule = (int)i, .source = SRC_AGE, .days_ago = -1};
            if (!when_holds(c, &r->when[k], m.words, sizeof m.words))
                continue;
            fire_flag(c, r, flags, &n, emergency, prio);
            sb_add(flags, " (%s)", m.words);
            add_evidence(c, r, &m, true);
        }
    }
    return n;
}

/* ---- 2. conditions ------------------------------------------------------------------- */

/* The plan of the placed conditions, with their labels. */
static unsigned conditions(dctx_t *c, sbuf_t *labels, size_t *n_known)
{
    unsigned plan = 0;
    for (size_t i = 0; i < c->rules->n_all; i++) {
        const rule_t *r = rule_of(c, (int)i);
        if (r->kind != K_CONDITION || !placed(c, (int)i))
            continue;
        unsigned p = r->plan;
        if (!c->coded[i] && c->any_coded_condition && !c->massage_requested)
            p &= PLAN_PHYSIO;   /* words add an assessment, not an unasked massage */
        if (!p)
            continue;
        plan |= p;
        c->fired[i] = true;
        if (r->priority)
            c->d->priority = max_priority(c->d->priority, r->priority);
        sb_add(labels, "%s%s", (*n_known)++ ? "; " : "", r->text);
        add_rule(c, "condition", r->code);
    }
    return plan;
}

/* ---- 3. needs review ----------------------------------------------------------------- */

/* A fail-safe for the lexicon: words about the bladder, bowel or saddle area (the fact
 * "cauda_equina_words"), affirmed, that no condition, red flag or contraindication phrase of
 * the same field took in ("stress urinary incontinence" is pelvic floor; "lost control of her
 * bladder" must not pass as low back pain because no phrase was written for it), are not
 * understood: a clinician reads them. */
static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; n && *hay; hay++) {
        size_t k = 0;
        while (k < n && hay[k] && tolower((unsigned char)hay[k]) == tolower((unsigned char)needle[k]))
            k++;
        if (k == n)
            return true;
    }
    return false;
}

static void sentinel_words(dctx_t *c)
{
    int s = c->rules->sentinel_fact;
    for (size_t i = 0; s >= 0 && i < c->rd.n; i++) {
        const mention_t *m = &c->rd.m[i];
        if (m->rule != s || !counts(m))
            continue;
        bool covered = false;
        for (size_t k = 0; k < c->rd.n && !covered; k++) {
            const mention_t *o = &c->rd.m[k];
            covered = o->source == m->source && rule_of(c, o->rule)->kind != K_FACT && contains_nocase(o->words, m->words);
        }
        if (!covered)
            push_text(c, &c->rd.n_unplaced, &c->rd.unplaced, "'%s' in %s: about the bladder, bowel or saddle area, "
                      "and no rule placed it", m->words, hx_source_name(m->source));
    }
}

static void needs_review(dctx_t *c, unsigned plan)
{
    Handoff__TriageDecision *d = c->d;
    sbuf_t reason = {0};
    if (c->rd.n_unplaced == 0 && plan == 0)
        push_text(c, &d->n_not_understood, &d->not_understood, "%s",
                  c->r->n_conditions || !hx_is_blank(c->r->reason)
                      ? "no condition the rules know, in the codes or the words"
                      : "no condition codes and no words to read");
    for (size_t i = 0; i < c->rd.n_unplaced; i++)
        push_text(c, &d->n_not_understood, &d->not_understood, "%s", c->rd.unplaced[i]);
    sb_add(&reason, "needs review by a clinician: ");
    for (size_t i = 0; i < d->n_not_understood; i++)
        sb_add(&reason, "%s%s", i ? "; " : "", d->not_understood[i]);
    d->needs_review = true;
    d->suggested = plan_list(plan, false, &d->n_suggested);
    if (plan && !d->suggested)
        c->oom = true;
    add_rule(c, "needs_review", NULL);
    note(c, "%s", reason.buf ? reason.buf : "needs review");
    set_reason(c, &reason);
}

/* ---- 4.-5. who assesses -------------------------------------------------------------- */

static bool is_rmt_code(const hx_rules_t *rules, const char *code)
{
    for (size_t i = 0; code && i < rules->n_rmt_findings; i++)
        if (!strcmp(rules->rmt_findings[i], code))
            return true;
    return false;
}

static unsigned rmt_rule(dctx_t *c, unsigned plan)
{
    const Handoff__Referral *r = c->r;
    if (!c->rules->rmt_reason || !r->referrer ||
        r->referrer->discipline != HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY)
        return plan;
    bool needs = c->rules->rmt_fact >= 0 && placed(c, c->rules->rmt_fact);
    for (size_t i = 0; i < r->n_findings && !needs; i++)
        needs = is_rmt_code(c->rules, r->findings[i]);
    for (size_t i = 0; i < c->rules->n_all && !needs; i++)
        needs = rule_of(c, (int)i)->kind == K_CONDITION && c->fired[i] && rule_of(c, (int)i)->plan == PLAN_PHYSIO;
    if (!needs)
        return plan;
    add_rule(c, "rmt_needs_diagnosis", NULL);
    note(c, "%s", c->rules->rmt_reason);
    return PLAN_PHYSIO;
}

static unsigned never_alone(dctx_t *c, unsigned plan)
{
    for (size_t k = 0; k < c->rules->n_never_alone && plan == PLAN_MASSAGE; k++) {
        for (size_t i = 0; i < c->rules->n_all; i++) {
            const rule_t *r = rule_of(c, (int)i);
            if (r->kind == K_CONDITION && c->fired[i] && strstr(r->code, c->rules->never_alone_fragment[k])) {
                plan |= PLAN_PHYSIO;
                add_rule(c, "massage_never_alone", c->rules->never_alone_fragment[k]);
                note(c, "physiotherapy added: %s", c->rules->never_alone_reason[k]);
                break;
            }
        }
    }
    return plan;
}

/* ---- 6. contraindications ------------------------------------------------------------ */

typedef struct {
    unsigned sites;             /* sites the massage is for */
    bool unknown;               /* a massage condition whose site is not known */
    bool whole_body;
} massage_sites_t;

static massage_sites_t massage_sites(const dctx_t *c)
{
    massage_sites_t ms = {.unknown = c->massage_added};    /* added massage: for a site not known */
    for (size_t i = 0; i < c->rules->n_all; i++) {
        const rule_t *r = rule_of(c, (int)i);
        if (r->kind != K_CONDITION || !c->fired[i] || !(r->plan & PLAN_MASSAGE))
            continue;
        unsigned named = 0;
        for (size_t k = 0; k < c->rd.n; k++)
            if (c->rd.m[k].rule == (int)i && counts(&c->rd.m[k]))
                named |= c->rd.m[k].sites;
        if (named)
            ms.sites |= named;
        else if (r->site >= 0)
            ms.sites |= 1u << r->site;
        else if (r->site == SITE_WHOLE_BODY)
            ms.whole_body = true;
        else
            ms.unknown = true;
    }
    return ms;
}

static void site_names(const dctx_t *c, unsigned sites, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->rules->sites.n && n < cap; i++)
        if (sites & (1u << i))
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", c->rules->sites.names[i]);
}

/* Whether a contraindication read at sites (0: not known) removes this massage. */
static bool removes_massage(dctx_t *c, const rule_t *ci, unsigned sites, const massage_sites_t *ms)
{
    if (!ci->at_site || !sites || ms->unknown || (ms->sites & sites))
        return true;
    char where[128];
    site_names(c, sites, where, sizeof where);
    char text[256];
    snprintf(text, sizeof text, "massage stays away from the %s: %s", where, ci->text);
    note(c, "%s", text);
    return false;
}

/* The contraindication a mention gives (rule index), or -1. */
static int contra_of(const dctx_t *c, const mention_t *m)
{
    const rule_t *r = rule_of(c, m->rule);
    if (r->kind == K_CONTRA && m->status == ST_AFFIRMED)
        return m->rule;
    if (r->kind == K_RED_FLAG && m->status == ST_AWARE)
        return r->aware_as;
    if (r->kind != K_CONDITION || !counts(m))
        return -1;
    for (size_t i = 0; i < c->rules->n_all; i++) {
        const rule_t *ci = rule_of(c, (int)i);
        if (ci->kind != K_CONTRA || m->coded || (ci->recent_days && m->days_ago > ci->recent_days))
            continue;
        for (size_t k = 0; k < ci->n_recent_of; k++)
            if (ci->recent_of[k] == m->rule && !any_placed(c, ci->lifted_by, ci->n_lifted_by) &&
                !(ci->cleared_by >= 0 && placed(c, ci->cleared_by)))
                return (int)i;
    }
    return -1;
}

/* Removes massage for each contraindication that applies; returns the plan left. */
static unsigned contraindications(dctx_t *c, unsigned plan, sbuf_t *contra, size_t *n_contra)
{
    if (!(plan & PLAN_MASSAGE))
        return plan;
    massage_sites_t ms = massage_sites(c);
    bool removed = false;
    for (size_t i = 0; i < c->rd.n; i++) {
        const mention_t *m = &c->rd.m[i];
        int ci_index = contra_of(c, m);
        if (ci_index < 0)
            continue;
        const rule_t *ci = rule_of(c, ci_index);
        bool text_only = !m->coded || m->as_words;
        if (ci->cleared_by >= 0 && placed(c, ci->cleared_by) && text_only && ci_index != m->rule)
            continue;
        if (!removes_massage(c, ci, text_only ? m->sites : 0, &ms))
            continue;
        if (!c->fired[ci_index]) {
            c->fired[ci_index] = true;
            add_rule(c, "contraindication", ci->code);
            note(c, "massage removed: %s", ci->text);
            sb_add(contra, "%s%s", (*n_contra)++ ? "; " : "", ci->text);
            if (ci_index != m->rule)
                add_evidence(c, ci, m, true);
        }
        removed = true;
    }
    return removed ? plan & ~(unsigned)PLAN_MASSAGE : plan;
}

/* ---- 7. precautions, and the evidence list ------------------------------------------- */

static void precautions(dctx_t *c, unsigned plan)
{
    if (!(plan & PLAN_MASSAGE))
        return;
    for (size_t i = 0; i < c->rules->n_all; i++) {
        const rule_t *r = rule_of(c, (int)i);
        if (r->precaution && placed(c, (int)i) && (r->kind == K_FACT || c->fired[i]))
            note(c, "massage precaution: %s", r->precaution);
    }
}

static void list_evidence(dctx_t *c)
{
    for (size_t i = 0; i < c->rd.n; i++) {
        const mention_t *m = &c->rd.m[i];
        const rule_t *r = rule_of(c, m->rule);
        bool fired = counts(m) && (c->fired[m->rule] || r->kind == K_FACT);
        add_evidence(c, r, m, fired);
    }
}

/* ---- the decision -------------------------------------------------------------------- */

static int decide_flags(dctx_t *c, Handoff__Priority base)
{
    sbuf_t flags = {0}, reason = {0};
    bool emergency = false;
    Handoff__Priority prio = HANDOFF__PRIORITY__PRIORITY_URGENT;
    size_t n = red_flags(c, &flags, &emergency, &prio);
    if (!n) {
        free(flags.buf);
        return 0;
    }
    sb_add(&reason, "%s: %s", emergency ? "refer to a physician now (emergency department)" : "refer to a physician",
           flags.buf ? flags.buf : "");
    c->oom |= flags.oom;
    free(flags.buf);
    c->d->red_flag = true;
    c->d->emergency = emergency;
    c->d->priority = emergency ? HANDOFF__PRIORITY__PRIORITY_STAT : max_priority(base, prio);
    set_disciplines(c, 0, true);
    set_reason(c, &reason);
    return 1;
}

static void decide_plan(dctx_t *c, unsigned plan, sbuf_t *labels)
{
    sbuf_t reason = {0}, contra = {0};
    size_t n_contra = 0;
    plan = rmt_rule(c, plan);
    plan = never_alone(c, plan);
    plan = contraindications(c, plan, &contra, &n_contra);
    precautions(c, plan);
    if (n_contra && plan == 0) {
        sb_add(&reason, "massage contraindicated: %s; refer to a physician to be cleared first (%s)",
               contra.buf ? contra.buf : "", labels->buf ? labels->buf : "");
        c->d->red_flag = true;
        set_disciplines(c, 0, true);
    } else {
        sb_add(&reason, "%s: %s",
               plan == PLAN_BOTH ? "physiotherapy and massage therapy" : plan == PLAN_PHYSIO ? "physiotherapy"
                                                                                             : "massage therapy",
               labels->buf ? labels->buf : "");
        set_disciplines(c, plan, false);
    }
    c->oom |= contra.oom || labels->oom;
    free(contra.buf);
    set_reason(c, &reason);
}

static void decide(dctx_t *c)
{
    const Handoff__Referral *r = c->r;
    Handoff__Priority base = r->priority >= HANDOFF__PRIORITY__PRIORITY_ROUTINE &&
                                     r->priority <= HANDOFF__PRIORITY__PRIORITY_STAT
                                 ? r->priority
                                 : HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    c->d->priority = base;
    gather(c);
    if (!decide_flags(c, base)) {
        sbuf_t labels = {0};
        size_t n_known = 0;
        unsigned plan = conditions(c, &labels, &n_known);
        sentinel_words(c);
        if (c->rd.n_unplaced || plan == 0)
            needs_review(c, plan);
        else
            decide_plan(c, plan, &labels);
        free(labels.buf);
    }
    list_evidence(c);
}

/* ---- massage asked for by a treating clinic (hx_triage_massage) ---------------------- */

static void free_string(char **s);

/* "contraindicated by finding known_dvt (known deep vein ...)" for each contraindication
 * that fired, from the evidence: how it was found (a finding or condition code, or words). */
static void contra_words(dctx_t *c, sbuf_t *sb)
{
    size_t n = 0;
    for (size_t i = 0; i < c->d->n_evidence; i++) {
        const Handoff__TriageEvidence *e = c->d->evidence[i];
        if (!e->fired || strncmp(e->rule, "contraindication:", 17) != 0)
            continue;
        const char *code = e->rule + 17;
        const char *why = "";
        for (size_t k = 0; k < c->rules->n_all; k++)
            if (rule_of(c, (int)k)->kind == K_CONTRA && !strcmp(rule_of(c, (int)k)->code, code))
                why = rule_of(c, (int)k)->text;
        if (!strcmp(e->source, "findings") || !strcmp(e->source, "conditions"))
            sb_add(sb, "%s%s %s (%s)", n++ ? "; " : "contraindicated by ",
                   e->source[0] == 'f' ? "finding" : "condition", e->words, why);
        else
            sb_add(sb, "%s\"%s\" in %s (%s)", n++ ? "; " : "contraindicated by ", e->words, e->source, why);
    }
    if (!n)
        sb_add(sb, "contraindicated");
}

/* The plan with massage added to the physiotherapy under way, through the same steps as a
 * referral's (red flags first, then the contraindications); what cannot be placed does not
 * stop it (a physiotherapist already treats the patient), a red flag or a contraindication
 * does. */
static void decide_massage(dctx_t *c)
{
    c->d->priority = c->r->priority >= HANDOFF__PRIORITY__PRIORITY_ROUTINE &&
                             c->r->priority <= HANDOFF__PRIORITY__PRIORITY_STAT
                         ? c->r->priority
                         : HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    gather(c);
    if (decide_flags(c, c->d->priority)) {
        sbuf_t reason = {0};
        sb_add(&reason, "massage therapy: %s", c->d->reason);
        free_string(&c->d->reason);
        set_reason(c, &reason);
        list_evidence(c);
        return;
    }
    sbuf_t labels = {0}, reason = {0}, contra = {0};
    size_t n_known = 0, n_contra = 0;
    unsigned plan = conditions(c, &labels, &n_known) | PLAN_PHYSIO | PLAN_MASSAGE;
    add_rule(c, "massage_added", NULL);
    plan = contraindications(c, plan, &contra, &n_contra);
    precautions(c, plan);
    list_evidence(c);
    if (plan & PLAN_MASSAGE)
        sb_add(&reason, "massage therapy may be added to the physiotherapy%s%s", labels.buf ? ": " : "",
               labels.buf ? labels.buf : "");
    else {
        sb_add(&reason, "massage therapy: ");
        contra_words(c, &reason);
    }
    set_disciplines(c, plan, false);
    c->oom |= contra.oom || labels.oom;
    free(contra.buf);
    free(labels.buf);
    set_reason(c, &reason);
}

/* Runs decide (or decide_massage) on r into out. */
static int decide_into(const hx_rules_t *rules, const Handoff__Referral *r, Handoff__TriageDecision *out,
                       bool massage_added)
{
    if (!out)
        return -1;
    handoff__triage_decision__init(out);
    const char *why = !rules ? "no triage rules loaded" : !r ? "no referral" : NULL;
    if (why) {
        if (!(out->reason = strdup(why)))
            out->reason = (char *)protobuf_c_empty_string;
        return -1;
    }
    dctx_t c = {.rules = rules, .r = r, .d = out, .massage_added = massage_added};
    if (r->referral_id && *r->referral_id && !(out->referral_id = strdup(r->referral_id))) {
        out->referral_id = (char *)protobuf_c_empty_string;
        c.oom = true;
    }
    c.fired = calloc(rules->n_all + 1, sizeof *c.fired);
    c.coded = calloc(rules->n_all + 1, sizeof *c.coded);
    c.in_text = calloc(rules->n_all + 1, sizeof *c.in_text);
    if (!c.fired || !c.coded || !c.in_text || hx_triage_read(rules, r, &c.rd) != 0)
        c.oom = true;
    if (!c.oom && massage_added)
        decide_massage(&c);
    else if (!c.oom)
        decide(&c);
    hx_reading_free(&c.rd);
    free(c.fired);
    free(c.coded);
    free(c.in_text);
    if (c.oom) {
        hx_decision_clear(out);
        if (!(out->reason = strdup("out of memory")))
            out->reason = (char *)protobuf_c_empty_string;
        return -1;
    }
    return 0;
}

int hx_triage_decide(const hx_rules_t *rules, const Handoff__Referral *r, Handoff__TriageDecision *out)
{
    return decide_into(rules, r, out, false);
}

int hx_triage_massage(const hx_rules_t *rules, const Handoff__Referral *r, Handoff__TriageDecision *out)
{
    return decide_into(rules, r, out, true);
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
    free(d->suggested);
    for (size_t i = 0; i < d->n_rules; i++)
        free(d->rules[i]);
    free(d->rules);
    for (size_t i = 0; i < d->n_notes; i++)
        free(d->notes[i]);
    free(d->notes);
    for (size_t i = 0; i < d->n_not_understood; i++)
        free(d->not_understood[i]);
    free(d->not_understood);
    for (size_t i = 0; i < d->n_evidence; i++) {
        Handoff__TriageEvidence *ev = d->evidence[i];
        char **fields[] = {&ev->rule, &ev->source, &ev->words, &ev->status, &ev->cue, &ev->snomed,
                           &ev->snomed_display, &ev->note};
        for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
            free_string(fields[k]);
        free(ev);
    }
    free(d->evidence);
    handoff__triage_decision__init(d);
}
