/* handoff-triage — decides who should see the patient (physiotherapy, massage therapy or
 * both) and how urgently, from the rules file; red flags go back to the referrer as
 * "refer to a physician". */
#include "hx_errors.h"
#include "hx_log.h"
#include "hx_opt.h"
#include "hx_refjson.h"
#include "hx_svc.h"
#include "hx_triage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage[] =
    "usage: handoff-triage --rules FILE [options]\n"
    "\n"
    "Serves the 'triage' service: applies the rules file (conditions -> physiotherapy,\n"
    "massage therapy or both; red flags -> refer to a physician; contraindications remove\n"
    "massage) and passes the case to 'scheduling'. Scheduling also asks it whether massage\n"
    "may be added to a referral a physiotherapist treats (red flags, contraindications), and\n"
    "gets the case back with the answer. SIGHUP reloads the rules; a file that\n"
    "fails validation is refused and the last good rules stay in force.\n"
    "\n"
    "options (each also from the environment variable shown, then its default):\n";

static const char usage_tail[] =
    "\n"
    "example:\n"
    "  handoff-triage --rules services/triage/rules.json\n";

static const hx_opt_t options[] = {
    {"rules", HX_OPT_TEXT, "HANDOFF_RULES", NULL, 0, 0, "FILE", "the triage rules (required)"},
};

/* Referrals triaged, by the disciplines decided; "none" when sent back (a red flag, or no
 * rule matched). */
enum { D_PHYSIO, D_MASSAGE, D_BOTH, D_NONE, D_COUNT };
static const char *const discipline_labels[D_COUNT] = {"physio", "massage", "both", "none"};

typedef struct {
    const char *path;
    hx_rules_t *rules;
    hx_metric_t *by_discipline[D_COUNT], *red_flags, *emergencies;
} triage_t;

/* Counts one decision. */
static void count(triage_t *t, const Handoff__TriageDecision *d, bool sent_back)
{
    bool physio = false, massage = false;
    for (size_t i = 0; i < d->n_disciplines; i++) {
        physio |= d->disciplines[i] == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
        massage |= d->disciplines[i] == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
    }
    int k = sent_back ? D_NONE : physio && massage ? D_BOTH : physio ? D_PHYSIO : massage ? D_MASSAGE : D_NONE;
    hx_metric_add(t->by_discipline[k], 1);
    if (d->red_flag)
        hx_metric_add(t->red_flags, 1);
    if (d->emergency)
        hx_metric_add(t->emergencies, 1);
}

/* The triage series in the program's registry; -1 when out of memory. */
static int metrics_init(triage_t *t, hx_metrics_t *m)
{
    static const char help[] = "Referrals triaged, by the disciplines decided: physio, massage, both, or none "
                               "(sent back: a red flag or no rule matched). A redelivered message counts again.";
    int rc = m ? 0 : -1;
    for (int i = 0; i < D_COUNT && rc == 0; i++)
        rc = (t->by_discipline[i] = hx_metrics_counter(m, "handoff_triage_referrals_total", help, "discipline",
                                                       discipline_labels[i])) ? 0 : -1;
    t->red_flags = hx_metrics_counter(m, "handoff_triage_red_flags_total",
                                      "Referrals with a red flag: sent back to see a physician.", NULL, NULL);
    t->emergencies = hx_metrics_counter(m, "handoff_triage_emergencies_total",
                                        "Referrals triaged as an emergency.", NULL, NULL);
    return rc == 0 && t->red_flags && t->emergencies ? 0 : -1;
}

static hx_rules_t *load(const char *path)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_rules_t *r = hx_rules_load(path, &errs);
    if (!r) {
        char why[2048];
        hx_errors_join(&errs, why, sizeof why);
        hx_error("rules file %s refused: %s", path, why);
    }
    return r;
}

static void reload(hx_worker_t *w, void *arg)
{
    (void)w;
    triage_t *t = arg;
    hx_rules_t *r = load(t->path);
    if (r) {
        hx_rules_destroy(&t->rules);
        t->rules = r;
        hx_info("rules reloaded from %s", t->path);
    } else {
        hx_warn("keeping the rules in force");
    }
}

/* Appends the words that drove a decision: each condition or contraindication that fired,
 * as written, and the words that negated a red flag ("not: denies saddle numbness"), so that
 * `handoff status` shows why. At most a few of each; the rest are in decision.evidence. */
static size_t describe_words(const Handoff__TriageDecision *d, char *buf, size_t n, size_t cap)
{
    size_t shown = 0, negated = 0;
    for (size_t i = 0; i < d->n_evidence && n < cap && shown < 4; i++) {
        const Handoff__TriageEvidence *e = d->evidence[i];
        const char *colon = strchr(e->rule, ':');
        const char *rule = colon ? colon + 1 : e->rule;
        if (!e->fired || strncmp(e->rule, "red_flag:", 9) == 0 || strncmp(e->rule, "fact:", 5) == 0)
            continue;
        bool seen = false;                      /* the same words for the same rule once */
        for (size_t k = 0; k < i && !seen; k++)
            seen = d->evidence[k]->fired && !strcmp(d->evidence[k]->rule, e->rule) &&
                   !strcasecmp(d->evidence[k]->words, e->words);
        if (seen)
            continue;
        const char *sep = shown++ ? ", " : "; read: ";
        if (strcmp(e->source, "conditions") == 0 || strcmp(e->source, "findings") == 0)
            n += (size_t)snprintf(buf + n, cap - n, "%scode %s", sep, e->words);
        else
            n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\" (%s)", sep, e->words, rule);
    }
    for (size_t i = 0; i < d->n_evidence && n < cap && negated < 3; i++) {
        const Handoff__TriageEvidence *e = d->evidence[i];
        if (!e->fired && strncmp(e->rule, "red_flag:", 9) == 0 && e->cue[0])
            n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\" (%s: \"%s\")", negated++ ? ", " : "; not red flags: ",
                                  e->words, e->status, e->cue);
    }
    return n;
}

/* The referrer's words for a decision: "triaged: physiotherapy, priority routine; from
 * plantar_heel_pain \"heel pain\"", or for a referral under review what was not understood. */
static void describe(const Handoff__TriageDecision *d, char *buf, size_t cap)
{
    if (d->needs_review) {
        size_t n = (size_t)snprintf(buf, cap, "under review: a clinician of the network decides; not understood:");
        for (size_t i = 0; i < d->n_not_understood && n < cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s '%s'", i ? "," : "", d->not_understood[i]);
        return;
    }
    size_t n = (size_t)snprintf(buf, cap, "triaged:");
    for (size_t i = 0; i < d->n_disciplines && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s %s", i ? " and" : "", hx_discipline_text(d->disciplines[i]));
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n, ", priority %s", hx_priority_text(d->priority));
    if (n < cap)
        describe_words(d, buf, n, cap);
}

/* Scheduling asks whether massage therapy may be added to a referral a physiotherapist is
 * treating (a clinic's StatusChange "add"): the answer is the Case back to scheduling, add as
 * it came, the decision including massage or saying why not (hx_triage_massage). Nobody else
 * is told here: scheduling answers the clinics. */
static int handle_add(triage_t *t, Handoff__Case *c, hx_outbox_t *out, char *err, size_t errcap)
{
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    Handoff__Referral *r = c->referral;
    int rc = c->add->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY ? 0 : -1;
    if (rc != 0) {
        hx_warn("referral %s: an add of discipline %d ignored: triage checks massage therapy only", r->referral_id,
                (int)c->add->discipline);
        return 0;
    }
    if (hx_triage_massage(t->rules, r, &d) != 0 || hx_pb_set_string(&d.referral_id, r->referral_id)) {
        hx_decision_clear(&d);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    Handoff__Case next = HANDOFF__CASE__INIT;
    next.referral = r;
    next.decision = &d;
    next.add = c->add;
    rc = hx_svc_emit(out, HX_TO_SERVICE, "scheduling", "handoff.Case", &next.base);
    hx_info("referral %s: massage therapy asked for by %s: %s", r->referral_id, c->add->requested_by,
            d.n_disciplines == 2 ? "may be added" : "refused");     /* ids only: the reason has the referral's words */
    hx_decision_clear(&d);
    if (rc)
        snprintf(err, errcap, "could not build the outputs");
    return rc ? -1 : 0;
}

static int handle(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    triage_t *t = arg;
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(in->id, hex);
    bool from_intake = in->from_kind == HX_TO_SERVICE && strcmp(in->from, "intake") == 0;
    bool from_scheduling = in->from_kind == HX_TO_SERVICE && strcmp(in->from, "scheduling") == 0;
    if ((!from_intake && !from_scheduling) || strcmp(in->type, "handoff.Case") != 0) {
        hx_warn("message %s from %s ignored: triage takes handoff.Case from intake (and from scheduling: an add)",
                hex, in->from);
        return 0;
    }
    Handoff__Case *c = handoff__case__unpack(NULL, in->payload_len, in->payload);
    if (!c || !c->referral || !c->referral->referral_id[0] || !c->referral->referring_clinic[0]) {
        hx_warn("message %s from %s ignored: not a Case with a referral id and referring clinic", hex, in->from);
        if (c)
            handoff__case__free_unpacked(c, NULL);
        return 0;
    }
    if (from_scheduling != (c->add != NULL)) {
        hx_warn("message %s from %s ignored: %s", hex, in->from,
                from_scheduling ? "a Case from scheduling must carry an add" : "a Case from intake carries no add");
        handoff__case__free_unpacked(c, NULL);
        return 0;
    }
    if (c->add) {
        int rc = handle_add(t, c, out, err, errcap);
        handoff__case__free_unpacked(c, NULL);
        return rc;
    }
    Handoff__Referral *r = c->referral;
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    int decided = hx_triage_decide(t->rules, r, &d);
    if (hx_pb_set_string(&d.referral_id, r->referral_id)) {
        hx_decision_clear(&d);
        handoff__case__free_unpacked(c, NULL);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    int rc;
    /* Fail safe: what the rules cannot place goes to a clinician of the network, never
     * quietly anywhere; a red flag wins over everything. */
    if (!d.red_flag && (decided != 0 || d.n_disciplines == 0))
        d.needs_review = true;
    bool sent_back = d.red_flag;
    if (d.needs_review && !d.red_flag && d.n_not_understood == 0 &&
        hx_pb_add_string(&d.not_understood, &d.n_not_understood, "nothing the rules recognise as a condition")) {
        rc = -1;
    } else if (sent_back) {
        hx_info("referral %s: %sred flag, refer to a physician", r->referral_id, d.emergency ? "EMERGENCY, " : "");
        rc = hx_svc_status(out, r->referring_clinic, r->referral_id, r->ref, HANDOFF__TASK_STATUS__TASK_REJECTED,
                           d.reason, "triage", NULL, 0, &d, "reject", false);
    } else {
        char why[1024];
        describe(&d, why, sizeof why);
        Handoff__Case next = HANDOFF__CASE__INIT;
        next.referral = r;
        next.decision = &d;
        rc = hx_svc_emit(out, HX_TO_SERVICE, "scheduling", "handoff.Case", &next.base);
        if (rc == 0)
            rc = hx_svc_status(out, r->referring_clinic, r->referral_id, r->ref, HANDOFF__TASK_STATUS__TASK_RECEIVED,
                               why, "triage", NULL, 0, &d, d.needs_review ? "review" : "receive", false);
        hx_info("referral %s %s", r->referral_id, why);
    }
    if (rc == 0)
        count(t, &d, sent_back);
    hx_decision_clear(&d);
    handoff__case__free_unpacked(c, NULL);
    if (rc)
        snprintf(err, errcap, "could not build the outputs");
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    triage_t t = {0};
    hx_svc_opts_t o;
    hx_opt_val_t v[1];
    int rc = hx_svc_parse(argc, argv, "handoff-triage", usage, usage_tail, options, 1, v, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    t.path = v[0].text;
    if (!t.path) {
        fprintf(stderr, "handoff-triage: --rules FILE is required (or HANDOFF_RULES)\n");
        return 2;
    }
    if (!(t.rules = load(t.path)))
        return 1;
    o.metrics = hx_metrics_new();
    if (metrics_init(&t, o.metrics) != 0) {
        fprintf(stderr, "handoff-triage: out of memory\n");
        rc = 1;
    } else {
        rc = hx_svc_run(&o, "handoff-triage", "triage", handle, &t, reload, &t);
    }
    hx_metrics_destroy(&o.metrics);
    hx_rules_destroy(&t.rules);
    return rc;
}
