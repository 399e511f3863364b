/* hx_review — referrals triage could not place, decided by a clinician of the network.
 *
 * Triage never lets a referral it cannot read pass quietly: a code or wording no rule knows,
 * with no red flag, makes a Case whose decision has needs_review set. Scheduling records it
 * (status received, review pending), tells nobody new (triage already told the referrer it is
 * under review) and sends a ReviewRequest to every reviewer's mailbox (--reviewers). A
 * reviewer answers with a ReviewDecision: disciplines (the referral is then booked exactly as
 * a triaged one) or physician (it is rejected: refer to a physician). The referrer is told the
 * outcome, every reviewer is told it was decided (the decider's copy answers its request), and
 * the decision goes into the audit log with the reviewer's name. */
#include "hx_booking_internal.h"
#include "hx_intake.h"
#include "hx_log.h"
#include "hx_refjson.h"
#include "hx_svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 800

/* Calls fn for each reviewer's mailbox named in the configured list. */
static int each_reviewer(const hx_booking_t *b, int (*fn)(void *arg, const char *name), void *arg)
{
    const char *p = bk_reviewers(b);
    while (*p) {
        size_t n = strcspn(p, " ,");
        if (n > 0 && n <= HX_NAME_MAX) {
            char name[HX_NAME_MAX + 1];
            memcpy(name, p, n);
            name[n] = '\0';
            int rc = fn(arg, name);
            if (rc)
                return rc;
        }
        p += n;
        p += strspn(p, " ,");
    }
    return 0;
}

typedef struct {
    hx_outbox_t *out;
    const Handoff__Case *c;
    const char *name;           /* is_reviewer: the name looked for */
    bool found;
    const char *rid, *ref, *reason;
    Handoff__TaskStatus status;
} fanout_t;

static int send_request(void *arg, const char *name)
{
    fanout_t *f = arg;
    Handoff__ReviewRequest rq = HANDOFF__REVIEW_REQUEST__INIT;
    rq.referral_id = (char *)f->c->referral->referral_id;
    rq.case_ = (Handoff__Case *)f->c;
    rq.at_ms = hx_svc_now_ms();
    return hx_svc_emit(f->out, HX_TO_MAILBOX, name, "handoff.ReviewRequest", &rq.base);
}

static int match_reviewer(void *arg, const char *name)
{
    fanout_t *f = arg;
    f->found |= strcmp(name, f->name) == 0;
    return 0;
}

static int tell_reviewer(void *arg, const char *name)
{
    fanout_t *f = arg;
    return hx_svc_status(f->out, name, f->rid, f->ref, f->status, f->reason, "scheduling", NULL, 0, NULL, "review",
                         false);
}

static int review_insert(hx_booking_t *b, const Handoff__Case *c)
{
    hx_db_stmt_t *st = bk_prep(b, "INSERT INTO referrals(referral_id, referring_clinic, ref, status, reason, case_pb, "
                                  "updated_ms, received_ms) VALUES (?, ?, ?, ?, 'under review', ?, ?, ?6)");
    hx_db_stmt_t *rv = bk_prep(b, "INSERT INTO reviews(referral_id, state, requested_ms) VALUES (?, 'pending', ?)");
    int rc = st && rv && bk_bind_case(b, st, 5, c) == 0 ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_text(st, 1, c->referral->referral_id);
        hx_db_bind_text(st, 2, c->referral->referring_clinic);
        hx_db_bind_text(st, 3, c->referral->ref);
        hx_db_bind_int(st, 4, HANDOFF__TASK_STATUS__TASK_RECEIVED);
        hx_db_bind_int(st, 6, (int64_t)bk_now_ms(b));
        hx_db_bind_text(rv, 1, c->referral->referral_id);
        hx_db_bind_int(rv, 2, (int64_t)bk_now_ms(b));
        rc = hx_db_step(st) == HX_DB_DONE && hx_db_step(rv) == HX_DB_DONE ? 0 : -1;
    }
    bk_done(b, st);
    bk_done(b, rv);
    return rc;
}

int hx_review_on_case(hx_booking_t *b, const hx_msg_t *in, const Handoff__Case *c, hx_outbox_t *out)
{
    const Handoff__Referral *r = c->referral;
    if (!r->referral_id[0] || !r->referring_clinic[0] || strlen(r->referral_id) > HX_REFERRAL_ID_LEN) {
        hx_warn("a message from %s ignored: a case for review without a referral id or referring clinic", in->from);
        return 0;
    }
    bk_row_t row;
    int found = bk_row_load(b, r->referral_id, &row);
    bk_row_free(&row);
    if (found != 0) {
        if (found > 0)
            hx_info("referral %s is already known; the repeated case changes nothing", r->referral_id);
        return found < 0 ? -1 : 0;
    }
    if (review_insert(b, c) != 0)
        return -1;
    fanout_t f = {.out = out, .c = c};
    if (each_reviewer(b, send_request, &f) != 0)
        return -1;
    hx_info("referral %s: under review (%zu thing(s) not understood); sent to %s", r->referral_id,
            c->decision->n_not_understood, bk_reviewers(b));
    return 0;
}

/* ---- a reviewer's decision ------------------------------------------------------------------- */

/* Checks d; the refusal (which field, what is wrong) in why. */
static bool decision_valid(const Handoff__ReviewDecision *d, char *why, size_t cap)
{
    if (!hx_name_valid(d->referral_id) || strlen(d->referral_id) != HX_REFERRAL_ID_LEN)
        snprintf(why, cap, "referral_id: must be a referral id such as R-0A1B2C3D4E5F6G7H");
    else if (d->physician && d->n_disciplines)
        snprintf(why, cap, "disciplines: must be empty when physician is set (refer to a physician instead)");
    else if (!d->physician && (d->n_disciplines < 1 || d->n_disciplines > 2))
        snprintf(why, cap, "disciplines: one or two of physiotherapy and massage_therapy, or physician");
    else if (d->n_disciplines == 2 && d->disciplines[0] == d->disciplines[1])
        snprintf(why, cap, "disciplines: the same discipline twice");
    else if (!d->reason[0] || strlen(d->reason) > REASON_MAX)
        snprintf(why, cap, "reason: required, at most %d characters", REASON_MAX);
    else {
        for (size_t i = 0; i < d->n_disciplines; i++)
            if (d->disciplines[i] != HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY &&
                d->disciplines[i] != HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY) {
                snprintf(why, cap, "disciplines[%zu]: must be physiotherapy or massage_therapy", i);
                return false;
            }
        return true;
    }
    return false;
}

static void audit_review(hx_booking_t *b, const hx_msg_t *in, const char *rid, const char *outcome)
{
    bk_audit_write(b, "reviewer", in, "review", rid, outcome);
}

/* A refused decision: the reviewer is told why (correlated to its message), and the audit log. */
static int refuse(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const char *rid, const char *why)
{
    return bk_refuse_request(b, in, out, "reviewer", "review", rid, why);
}

/* The review's state ("pending", "decided") and who decided; 1 found, 0 not, -1 error. */
static int review_state(hx_booking_t *b, const char *rid, char *state, size_t cap, char *by, size_t bycap)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT state, reviewer FROM reviews WHERE referral_id = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    int rc = hx_db_step(st);
    int found = rc == HX_DB_ROW ? 1 : rc == HX_DB_DONE ? 0 : -1;
    if (found == 1) {
        snprintf(state, cap, "%s", hx_db_col_text(st, 0));
        snprintf(by, bycap, "%s", hx_db_col_text(st, 1));
    }
    bk_done(b, st);
    return found;
}

static int review_record(hx_booking_t *b, const char *rid, const char *reviewer, const char *decision,
                         const char *reason)
{
    hx_db_stmt_t *st = bk_prep(b, "UPDATE reviews SET state = 'decided', reviewer = ?, decision = ?, reason = ?, "
                                  "decided_ms = ? WHERE referral_id = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, reviewer);
    hx_db_bind_text(st, 2, decision);
    hx_db_bind_text(st, 3, reason);
    hx_db_bind_int(st, 4, (int64_t)bk_now_ms(b));
    hx_db_bind_text(st, 5, rid);
    int rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    bk_done(b, st);
    return rc;
}

/* The case's decision as the reviewer set it: these disciplines, no longer under review,
 * and a note saying who decided and why. Stored back into referrals.case_pb. */
static int case_decide(hx_booking_t *b, const char *rid, Handoff__Case *c, const Handoff__ReviewDecision *d,
                       const char *reviewer)
{
    Handoff__TriageDecision *t = c->decision;
    Handoff__Discipline *disc = malloc(d->n_disciplines * sizeof *disc);
    char **notes = realloc(t->notes, (t->n_notes + 1) * sizeof *notes);
    char note[REASON_MAX + 128];
    snprintf(note, sizeof note, "reviewed by %s: %s", reviewer, d->reason);
    if (notes)
        t->notes = notes;
    if (!disc || !notes || !(notes[t->n_notes] = strdup(note))) {
        free(disc);
        return -1;
    }
    t->n_notes++;
    /* physiotherapy first when both, as triage orders them */
    for (size_t i = 0; i < d->n_disciplines; i++)
        disc[i] = d->disciplines[i];
    if (d->n_disciplines == 2 && disc[0] == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY) {
        disc[0] = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
        disc[1] = HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
    }
    free(t->disciplines);
    t->disciplines = disc;
    t->n_disciplines = d->n_disciplines;
    t->needs_review = false;
    if (!t->priority)
        t->priority = HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    hx_db_stmt_t *st = bk_prep(b, "UPDATE referrals SET case_pb = ? WHERE referral_id = ?");
    int rc = st && bk_bind_case(b, st, 1, c) == 0 ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_text(st, 2, rid);
        rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    }
    bk_done(b, st);
    return rc;
}

/* "physiotherapy and massage_therapy" or "physician". */
static void decision_text(const Handoff__ReviewDecision *d, char *out, size_t cap)
{
    if (d->physician) {
        snprintf(out, cap, "physician");
        return;
    }
    snprintf(out, cap, "%s%s%s", hx_discipline_text(d->disciplines[0]), d->n_disciplines > 1 ? " and " : "",
             d->n_disciplines > 1 ? hx_discipline_text(d->disciplines[1]) : "");
}

/* Carries out a valid decision on a referral under review: books it, or rejects it to a
 * physician; the referrer and every reviewer are told. */
static int decide(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__ReviewDecision *d,
                  bk_row_t *row)
{
    char what[96], reason[REASON_MAX + 200];
    decision_text(d, what, sizeof what);
    int rc;
    if (d->physician) {
        snprintf(reason, sizeof reason, "reviewed by %s: refer to a physician: %s", in->from, d->reason);
        rc = bk_set_status(b, d->referral_id, HANDOFF__TASK_STATUS__TASK_REJECTED, reason);
        if (rc == 0)
            rc = bk_emit_status(out, row->referring_clinic, d->referral_id, row->ref,
                                HANDOFF__TASK_STATUS__TASK_REJECTED, HX_EVENT_REJECT, false, reason, row->c->decision);
    } else {
        snprintf(reason, sizeof reason, "reviewed by %s: %s: %s", in->from, what, d->reason);
        rc = case_decide(b, d->referral_id, row->c, d, in->from);
        if (rc == 0)
            rc = bk_book(b, d->referral_id, out);
    }
    if (rc == 0)
        rc = review_record(b, d->referral_id, in->from, what, d->reason);
    if (rc != 0)
        return -1;
    bk_row_t now;
    if (bk_row_load(b, d->referral_id, &now) != 1)
        return -1;
    fanout_t f = {.out = out, .rid = d->referral_id, .ref = now.ref, .reason = reason, .status = now.status};
    rc = each_reviewer(b, tell_reviewer, &f);
    f.name = in->from;
    each_reviewer(b, match_reviewer, &f);
    if (rc == 0 && !f.found)                    /* the decider is told even when not (any longer) listed */
        rc = tell_reviewer(&f, in->from);
    bk_row_free(&now);
    audit_review(b, in, d->referral_id, reason);
    hx_info("referral %s %s", d->referral_id, reason);
    return rc;
}

int hx_review_on_decision(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out)
{
    Handoff__ReviewDecision *d = handoff__review_decision__unpack(NULL, in->payload_len, in->payload);
    char why[REASON_MAX + 200];
    if (!d)
        return refuse(b, in, out, "", "the payload is not a handoff.ReviewDecision");
    int rc = 0;
    fanout_t f = {.name = in->from};
    each_reviewer(b, match_reviewer, &f);
    bk_row_t row = {0};
    char state[16] = "", by[HX_NAME_MAX + 1] = "";
    int found;
    if (!f.found) {
        snprintf(why, sizeof why, "%s is not one of this network's reviewers (%s)", in->from, bk_reviewers(b));
        rc = refuse(b, in, out, d->referral_id, why);
    } else if (!decision_valid(d, why, sizeof why)) {
        rc = refuse(b, in, out, d->referral_id, why);
    } else if ((found = review_state(b, d->referral_id, state, sizeof state, by, sizeof by)) < 0) {
        rc = -1;
    } else if (found == 0) {
        rc = refuse(b, in, out, d->referral_id, "no referral under review has this id");
    } else if (strcmp(state, "pending") != 0) {
        snprintf(why, sizeof why, "already decided by %s", by);
        rc = refuse(b, in, out, d->referral_id, why);
    } else if (bk_row_load(b, d->referral_id, &row) != 1) {
        rc = -1;
    } else {
        rc = decide(b, in, out, d, &row);
    }
    bk_row_free(&row);
    handoff__review_decision__free_unpacked(d, NULL);
    return rc;
}
