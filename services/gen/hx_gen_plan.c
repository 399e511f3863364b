/* hx_gen_plan — what a generated referral is about: its condition codes and findings, who
 * refers, the reason in the referrer's words, the priority when the situation sets one, and
 * the patient's age. One function per kind of hx_gen.h's mix. */
#include "hx_gen_internal.h"

#include <stdio.h>
#include <string.h>

static bool has_cond(const plan_t *p, const cond_t *c)
{
    for (size_t i = 0; i < p->n_conds; i++)
        if (p->conds[i] == c)
            return true;
    return false;
}

static void add_cond(plan_t *p, const cond_t *c)
{
    if (c && p->n_conds < GEN_MAX_CODES && !has_cond(p, c))
        p->conds[p->n_conds++] = c;
}

static void add_finding(plan_t *p, const char *f)
{
    if (!f || p->n_findings >= GEN_MAX_CODES)
        return;
    for (size_t i = 0; i < p->n_findings; i++)
        if (!strcmp(p->findings[i], f))
            return;
    p->findings[p->n_findings++] = f;
}

/* A companion of primary (see gen_companions) present in the rules with exactly plan `plan`
 * (in pool terms), or NULL. */
static const cond_t *companion_of(const hx_gen_t *g, rng_t *r, const cond_t *primary, unsigned plan)
{
    const companion_t *cp = primary ? gen_companions(primary->code) : NULL;
    if (!cp)
        return NULL;
    const cond_t *found[3];
    size_t n = 0;
    for (size_t k = 0; k < GEN_COUNT(cp->with) && cp->with[k]; k++)
        for (size_t j = 0; j < g->n_pool[plan]; j++) {
            const cond_t *c = &g->conds[g->pool[plan][j]];
            if (!strcmp(c->code, cp->with[k]))
                found[n++] = c;
        }
    return n ? found[below(r, n)] : NULL;
}

static const cond_t *from_pool(const hx_gen_t *g, rng_t *r, unsigned plan)
{
    if (!g->n_pool[plan])
        return NULL;
    return &g->conds[g->pool[plan][below(r, g->n_pool[plan])]];
}

static int pick_referrer(rng_t *r, unsigned pt, unsigned rmt, unsigned md)
{
    const unsigned w[] = {pt, rmt, md};
    static const int d[] = {D_PT, D_RMT, D_MD};
    return d[weighted(r, w, 3)];
}

/* The reason for a condition: the text table's wording, or the rules' label. */
static void condition_reason(const cond_t *c, rng_t *r, const vars_t *v, char *out, size_t cap)
{
    const condition_text_t *t = gen_condition_text(c->code);
    if (t)
        gen_expand(out, cap, t->reason[below(r, 2)], v);
    else
        snprintf(out, cap, "%s: referred for assessment and treatment.", c->label);
}

/* The ages a condition is usual at, when the text table knows it. */
static void condition_ages(plan_t *p)
{
    const condition_text_t *t = gen_condition_text(p->primary->code);
    if (t) {
        p->age_lo = t->age_lo;
        p->age_hi = t->age_hi;
    }
}

static void plan_physio(const hx_gen_t *g, rng_t *r, const vars_t *v, plan_t *p)
{
    char text[600];
    const cond_t *c = from_pool(g, r, PLAN_PHYSIO);
    p->referrer = pick_referrer(r, 55, 10, 35);
    /* An RMT who suspects something that needs a diagnosis refers to a PT, often alongside
     * the tension they were treating (only when triage has that rule: without it the
     * tension would add massage to the plan). */
    if (p->referrer == D_RMT && g->rmt_rule && chance(r, 50)) {
        const cond_t *tension = gen_find_cond(g, "muscle_tension", PLAN_MASSAGE);
        add_cond(p, tension && tension->plan == PLAN_MASSAGE ? tension : from_pool(g, r, PLAN_MASSAGE));
    }
    add_cond(p, c);
    p->primary = c;
    if (chance(r, 25))
        add_cond(p, companion_of(g, r, c, PLAN_PHYSIO));
    condition_reason(c, r, v, text, sizeof text);
    if (p->referrer == D_RMT) {
        add_finding(p, g->rmt_finding);
        snprintf(p->reason, sizeof p->reason,
                 "%s Beyond ordinary muscle tension: needs a physiotherapy assessment and diagnosis.", text);
    } else {
        snprintf(p->reason, sizeof p->reason, "%s", text);
    }
    condition_ages(p);
}

static void plan_massage(const hx_gen_t *g, rng_t *r, const vars_t *v, plan_t *p)
{
    const cond_t *c = from_pool(g, r, PLAN_MASSAGE);
    p->referrer = pick_referrer(r, 30, 30, 40);
    add_cond(p, c);
    p->primary = c;
    if (chance(r, 30))
        add_cond(p, companion_of(g, r, c, PLAN_MASSAGE));
    condition_reason(c, r, v, p->reason, sizeof p->reason);
    p->massage = true;
    condition_ages(p);
}

static void plan_both(const hx_gen_t *g, rng_t *r, const vars_t *v, plan_t *p)
{
    const cond_t *c = from_pool(g, r, PLAN_BOTH);
    p->referrer = pick_referrer(r, 50, 0, 50);
    add_cond(p, c);
    p->primary = c;
    if (chance(r, 20))
        add_cond(p, companion_of(g, r, c, PLAN_MASSAGE));
    condition_reason(c, r, v, p->reason, sizeof p->reason);
    p->massage = true;
    condition_ages(p);
}

/* A red flag: about 40% cauda equina (the emergency flags), the rest tumour, infection or
 * fracture signs. */
static const flag_t *pick_red_flag(const hx_gen_t *g, rng_t *r)
{
    size_t n_em = 0;
    for (size_t i = 0; i < g->n_flags; i++)
        n_em += g->flags[i].emergency;
    bool emergency = n_em == g->n_flags ? true : n_em == 0 ? false : chance(r, 40);
    size_t k = below(r, emergency ? n_em : g->n_flags - n_em);
    for (size_t i = 0; i < g->n_flags; i++)
        if (g->flags[i].emergency == emergency && k-- == 0)
            return &g->flags[i];
    return NULL;
}

static void plan_red_flag(const hx_gen_t *g, rng_t *r, const vars_t *v, plan_t *p)
{
    const flag_t *f = pick_red_flag(g, r);
    p->referrer = pick_referrer(r, 65, 15, 20);
    const red_flag_text_t *t = gen_red_flag_text(f->code);
    const cond_t *c = NULL;
    for (size_t i = 0; t && !c && i < GEN_COUNT(t->conditions); i++)
        c = gen_find_cond(g, t->conditions[i], PLAN_BOTH);
    if (!c)
        c = g->n_pool[PLAN_PHYSIO] ? from_pool(g, r, PLAN_PHYSIO) : &g->conds[below(r, g->n_conds)];
    add_cond(p, c);
    p->primary = c;
    add_finding(p, f->code);
    if (t && t->companion && gen_find_flag(g->flags, g->n_flags, t->companion) && chance(r, 50))
        add_finding(p, t->companion);
    if (t) {
        p->age_lo = t->age_lo;
        p->age_hi = t->age_hi;
        gen_expand(p->reason, sizeof p->reason, t->reason, v);
    } else {
        snprintf(p->reason, sizeof p->reason, "%s; at screening: %s.", c->label, f->reason);
    }
    static const unsigned em_pri[] = {0, 0, 0, 60, 40}, pri[] = {0, 25, 60, 15, 0};
    static const char *const names[] = {"", "routine", "urgent", "asap", "stat"};
    p->priority = names[weighted(r, f->emergency ? em_pri : pri, 5)];
}

static void plan_contraindicated(const hx_gen_t *g, rng_t *r, const vars_t *v, plan_t *p)
{
    char text[600];
    const flag_t *f = &g->contras[below(r, g->n_contras)];
    const contra_text_t *t = gen_contra_text(f->code);
    const cond_t *cands[2];
    size_t n = 0;
    for (size_t i = 0; t && i < GEN_COUNT(t->conditions); i++) {
        const cond_t *c = gen_find_cond(g, t->conditions[i], PLAN_MASSAGE);
        if (c)
            cands[n++] = c;
    }
    const cond_t *c = n ? cands[below(r, n)] : NULL;
    if (!c) {
        size_t nm = g->n_pool[PLAN_MASSAGE], nb = g->n_pool[PLAN_BOTH];
        size_t x = below(r, nm + nb);
        c = x < nm ? &g->conds[g->pool[PLAN_MASSAGE][x]] : &g->conds[g->pool[PLAN_BOTH][x - nm]];
    }
    p->referrer = pick_referrer(r, 45, 0, 55);
    add_cond(p, c);
    p->primary = c;
    add_finding(p, f->code);
    if (t) {
        p->age_lo = t->age_lo;
        p->age_hi = t->age_hi;
        gen_expand(text, sizeof text, t->reason, v);
    } else {
        snprintf(text, sizeof text, "Massage may be contraindicated: %s.", f->reason);
    }
    snprintf(p->reason, sizeof p->reason, "%s Referral: %s.", text, c->label);
    p->massage = true;
}

void gen_plan(const hx_gen_t *g, rng_t *r, hx_gen_kind_t kind, vars_t *v, plan_t *p)
{
    p->age_lo = 25;
    p->age_hi = 70;
    switch (kind) {
    case HX_GEN_PHYSIO: plan_physio(g, r, v, p); break;
    case HX_GEN_MASSAGE: plan_massage(g, r, v, p); break;
    case HX_GEN_BOTH: plan_both(g, r, v, p); break;
    case HX_GEN_RED_FLAG: plan_red_flag(g, r, v, p); break;
    case HX_GEN_CONTRAINDICATED: plan_contraindicated(g, r, v, p); break;
    default: break;
    }
    v->age = between(r, p->age_lo, p->age_hi);
    /* Red-flag wording may mention the age: expand it again now that it is known. */
    if (kind == HX_GEN_RED_FLAG) {
        const red_flag_text_t *t = gen_red_flag_text(p->findings[0]);
        if (t)
            gen_expand(p->reason, sizeof p->reason, t->reason, v);
    }
}
