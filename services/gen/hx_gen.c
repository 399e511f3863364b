/* hx_gen — synthetic network and referrals (see hx_gen.h).
 *
 * Randomness: splitmix64 streams. The network uses stream 0 of the seed; referral i uses
 * its own stream (seed, i + 1), so referral i does not depend on how many were made before
 * it. No floating point in any decision that shapes output, so every platform gives the
 * same bytes for the same seed.
 *
 * The clinical content: condition codes come from the rules file and are grouped by plan
 * (physiotherapy, massage_therapy, both); red flags and massage contraindications likewise
 * (hx_gen_rules.c). The text tables (hx_gen_text.c) give realistic wording, ages and
 * histories for the codes the default rules know; a code added to the rules later is still
 * used, with wording built from its label, so the generator never goes out of step with
 * triage. hx_gen_internal.h lists the files. */
#include "hx_gen_internal.h"

#include <stdlib.h>

#include "hx_util.h"

hx_gen_t *hx_gen_new(const json_t *rules, const hx_gen_options_t *opt, hx_errors_t *errs)
{
    hx_errors_t local;
    if (!errs) {
        hx_errors_clear(&local);
        errs = &local;
    }
    const size_t before = errs->count + errs->dropped;
    if (!opt) {
        hx_errors_add(errs, "options", "required");
        return NULL;
    }
    if (opt->clinics < 1 || opt->clinics > HX_GEN_MAX_CLINICS)
        hx_errors_add(errs, "clinics", "must be 1 to %d (got %zu)", HX_GEN_MAX_CLINICS, opt->clinics);
    if (opt->therapists > HX_GEN_MAX_THERAPISTS || opt->therapists < opt->clinics || opt->therapists < 1)
        hx_errors_add(errs, "therapists", "must be from the number of clinics (%zu: each clinic has at least one) to %d (got %zu)",
                      opt->clinics, HX_GEN_MAX_THERAPISTS, opt->therapists);
    int64_t last_day = 0;
    const char *date = opt->last_date ? opt->last_date : HX_GEN_DEFAULT_DATE;
    if (hx_date_parse(date, &last_day) != 0 || last_day < hx_days_from_civil(2000, 1, 1))
        hx_errors_add(errs, "last_date", "must be a date YYYY-MM-DD from 2000-01-01 to 9999-12-31");
    if (!rules)
        hx_errors_add(errs, "rules", "required");
    if (errs->count + errs->dropped > before)
        return NULL;

    hx_gen_t *g = calloc(1, sizeof *g);
    if (!g || !(g->rules = json_deep_copy(rules))) {
        free(g);
        hx_errors_add(errs, "", "out of memory");
        return NULL;
    }
    g->seed = opt->seed;
    g->last_day = last_day;
    gen_read_rules(g, errs);
    if (errs->count + errs->dropped > before) {
        hx_gen_destroy(&g);
        return NULL;
    }
    if (gen_build_network(g, opt->clinics, opt->therapists) != 0) {
        hx_gen_destroy(&g);
        hx_errors_add(errs, "", "out of memory");
        return NULL;
    }
    return g;
}

json_t *hx_gen_directory(const hx_gen_t *g)
{
    return g ? json_deep_copy(g->directory) : NULL;
}

const char *hx_gen_kind_text(hx_gen_kind_t k)
{
    switch (k) {
    case HX_GEN_PHYSIO: return "physiotherapy";
    case HX_GEN_MASSAGE: return "massage_therapy";
    case HX_GEN_BOTH: return "both";
    case HX_GEN_RED_FLAG: return "red_flag";
    case HX_GEN_CONTRAINDICATED: return "contraindicated";
    default: return "unknown";
    }
}

void hx_gen_destroy(hx_gen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_gen_t *g = *self_p;
    json_decref(g->rules);
    json_decref(g->directory);
    free(g->conds);
    for (size_t i = 0; i < GEN_COUNT(g->pool); i++)
        free(g->pool[i]);
    free(g->flags);
    free(g->contras);
    free(g->clinics);
    free(g->therapists);
    for (size_t i = 0; i < GEN_COUNT(g->by_discipline); i++)
        free(g->by_discipline[i]);
    free(g);
    *self_p = NULL;
}
