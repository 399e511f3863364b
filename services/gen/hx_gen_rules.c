/* hx_gen_rules — what the generator takes from a triage rules file: the condition codes
 * grouped by plan (physiotherapy, massage_therapy, both), the red flags, the massage
 * contraindications and the RMT-needs-diagnosis rule, and from them the mix of kinds. */
#include "hx_gen_internal.h"

#include <stdlib.h>
#include <string.h>

#include "hx_util.h"

static bool fragment_match(const json_t *never_alone, const char *code)
{
    const char *frag;
    json_t *v;
    json_object_foreach((json_t *)never_alone, frag, v) {
        (void)v;
        if (strstr(code, frag))
            return true;
    }
    return false;
}

static void read_flags(const json_t *table, const char *base, flag_t **out, size_t *n,
                       hx_errors_t *e)
{
    if (!table)
        return;
    if (!json_is_object(table)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    *out = calloc(json_object_size(table) + 1, sizeof **out);
    if (!*out) {
        hx_errors_add(e, base, "out of memory");
        return;
    }
    const char *code;
    json_t *v;
    json_object_foreach((json_t *)table, code, v) {
        char path[96];
        hx_path_key(path, sizeof path, base, code);
        if (!hx_is_code(code)) {
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _)");
            continue;
        }
        const json_t *reason = json_object_get(v, "reason");
        flag_t *f = &(*out)[(*n)++];
        f->code = code;
        f->reason = json_is_string(reason) ? json_string_value(reason) : code;
        f->emergency = json_is_true(json_object_get(v, "emergency"));
    }
}

/* The plan bits of "physiotherapy", "massage_therapy", "both"; 0 for anything else. */
static unsigned plan_bits(const char *plan)
{
    return !plan                             ? 0
           : !strcmp(plan, "physiotherapy")   ? PLAN_PHYSIO
           : !strcmp(plan, "massage_therapy") ? PLAN_MASSAGE
           : !strcmp(plan, "both")            ? PLAN_BOTH
                                              : 0;
}

/* rules.conditions into g->conds and the pools. Returns false when there is nothing to go
 * on (no conditions, out of memory); a bad condition is named and skipped. */
static bool read_conditions(hx_gen_t *g, const json_t *root, hx_errors_t *e)
{
    const json_t *conditions = json_object_get(root, "conditions");
    if (!json_is_object(conditions) || json_object_size(conditions) == 0) {
        hx_errors_add(e, "rules.conditions", "required: an object with at least one condition");
        return false;
    }
    size_t n = json_object_size(conditions);
    g->conds = calloc(n, sizeof *g->conds);
    for (int p = PLAN_PHYSIO; p <= PLAN_BOTH; p++)
        g->pool[p] = calloc(n, sizeof *g->pool[p]);
    if (!g->conds || !g->pool[PLAN_PHYSIO] || !g->pool[PLAN_MASSAGE] || !g->pool[PLAN_BOTH]) {
        hx_errors_add(e, "rules", "out of memory");
        return false;
    }
    const json_t *never_alone = json_object_get(root, "massage_never_alone");
    const char *code;
    json_t *v;
    json_object_foreach((json_t *)conditions, code, v) {
        char path[96], ppath[96];
        hx_path_key(path, sizeof path, "rules.conditions", code);
        hx_path_key(ppath, sizeof ppath, path, "plan");
        if (!hx_is_code(code)) {
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _)");
            continue;
        }
        unsigned bits = plan_bits(json_string_value(json_object_get(v, "plan")));
        if (!bits) {
            hx_errors_add(e, ppath, "must be \"physiotherapy\", \"massage_therapy\" or \"both\"");
            continue;
        }
        const char *label = json_string_value(json_object_get(v, "label"));
        cond_t *c = &g->conds[g->n_conds];
        c->code = code;
        c->label = label && *label ? label : code;
        c->priority = json_string_value(json_object_get(v, "priority"));
        c->plan = bits;
        /* A massage-only code that triage would pair with physiotherapy is not "massage
         * only"; it is left out of that pool (it stays usable for the collaborative mix). */
        if (bits == PLAN_MASSAGE && json_is_object(never_alone) && fragment_match(never_alone, code))
            bits = PLAN_BOTH;
        g->pool[bits][g->n_pool[bits]++] = g->n_conds;
        g->n_conds++;
    }
    return true;
}

/* The mix of hx_gen.h, leaving out a kind the rules give no codes for. */
static void set_kind_weights(hx_gen_t *g)
{
    g->kind_weights[HX_GEN_PHYSIO] = g->n_pool[PLAN_PHYSIO] ? 45 : 0;
    g->kind_weights[HX_GEN_MASSAGE] = g->n_pool[PLAN_MASSAGE] ? 25 : 0;
    g->kind_weights[HX_GEN_BOTH] = g->n_pool[PLAN_BOTH] ? 20 : 0;
    g->kind_weights[HX_GEN_RED_FLAG] = g->n_flags ? 5 : 0;
    g->kind_weights[HX_GEN_CONTRAINDICATED] =
        g->n_contras && (g->n_pool[PLAN_MASSAGE] || g->n_pool[PLAN_BOTH]) ? 5 : 0;
}

void gen_read_rules(hx_gen_t *g, hx_errors_t *e)
{
    const json_t *root = g->rules;
    if (!json_is_object(root)) {
        hx_errors_add(e, "rules", "must be a JSON object (a triage rules file)");
        return;
    }
    if (!read_conditions(g, root, e))
        return;
    read_flags(json_object_get(root, "red_flags"), "rules.red_flags", &g->flags, &g->n_flags, e);
    read_flags(json_object_get(root, "massage_contraindications"), "rules.massage_contraindications",
               &g->contras, &g->n_contras, e);
    const json_t *rmt_section = json_object_get(root, "rmt_needs_diagnosis");
    g->rmt_rule = json_is_string(json_object_get(rmt_section, "reason"));
    const json_t *rmt = g->rmt_rule ? json_object_get(rmt_section, "findings") : NULL;
    if (json_is_array(rmt) && json_array_size(rmt) > 0 && json_is_string(json_array_get(rmt, 0)))
        g->rmt_finding = json_string_value(json_array_get(rmt, 0));
    set_kind_weights(g);
    if (g->n_conds == 0)
        hx_errors_add(e, "rules.conditions", "no usable condition");
}

const cond_t *gen_find_cond(const hx_gen_t *g, const char *code, unsigned need_plan_bits)
{
    if (!code)
        return NULL;
    for (size_t i = 0; i < g->n_conds; i++)
        if (!strcmp(g->conds[i].code, code) && (g->conds[i].plan & need_plan_bits))
            return &g->conds[i];
    return NULL;
}

const flag_t *gen_find_flag(const flag_t *flags, size_t n, const char *code)
{
    for (size_t i = 0; code && i < n; i++)
        if (!strcmp(flags[i].code, code))
            return &flags[i];
    return NULL;
}
