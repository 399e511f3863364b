/* hx_triage — the triage rules (a JSON data file) and the pure decision function. */
#ifndef HX_TRIAGE_H
#define HX_TRIAGE_H
#include "referral.pb-c.h"
#include "hx_errors.h"

typedef struct hx_rules hx_rules_t;

/* Loads and validates a rules file (format: services/triage/rules.json). On any problem
 * returns NULL with errors naming the JSON path (and line when jansson reports one). */
hx_rules_t *hx_rules_load(const char *path, hx_errors_t *errs);
/* Same, from a string (for tests). */
hx_rules_t *hx_rules_parse(const char *text, hx_errors_t *errs);
void hx_rules_destroy(hx_rules_t **self_p);

/* Decides who should see the patient. Fills *out (fields owned by out; free with
 * hx_decision_clear). Returns 0, or -1 when no condition is known to the rules (out
 * then says why in reason, with red_flag false and no disciplines).
 * out is initialised first: whatever it held is not freed. A red flag, or a massage-only
 * plan that a contraindication empties, gives red_flag true and disciplines [physician];
 * the order of the rules and the file format are described at the top of hx_triage.c. */
int hx_triage_decide(const hx_rules_t *rules, const Handoff__Referral *r,
                     Handoff__TriageDecision *out);
/* Whether massage therapy may be added to a referral a physiotherapist is treating (a
 * treating clinic asked: StatusChange "add"). The referral is read as hx_triage_decide reads
 * it, with physiotherapy and massage in the plan (words it cannot place do not stop it: a
 * physiotherapist already treats the patient; the massage's site counts as not known, so a
 * contraindication at any site removes it). Fills *out as hx_triage_decide does (rule
 * "massage_added"): disciplines [physiotherapy, massage therapy] and reason "massage therapy
 * may be added to the physiotherapy: ..." when it may; otherwise disciplines without massage
 * and reason "massage therapy: contraindicated by finding known_dvt (...)" (or by a
 * condition, or by words: "\"a fever\" in history (fever)"), or with a red flag
 * "massage therapy: refer to a physician: ...". Returns 0, or -1 (no rules, out of memory). */
int hx_triage_massage(const hx_rules_t *rules, const Handoff__Referral *r, Handoff__TriageDecision *out);
/* Frees what hx_triage_decide put into d and re-initialises it. */
void hx_decision_clear(Handoff__TriageDecision *d);

#endif
