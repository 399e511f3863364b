/* hx_coordinate — coordination between the clinics of a referral (docs/PROTOCOL.md,
 * "Coordination"): a receiving clinic redirects its handoff, and a treating physiotherapy
 * clinic asks for a massage therapy handoff to be added.
 *
 * Redirect (StatusChange "redirect", to_clinic, to_therapist, reason): only the clinic holding
 * the handoff, from ready or accepted (hx_lifecycle). The target goes through the same booking
 * search as any booking (bk_slot_find: the priority's window, the patient's availability and
 * language, massage within the collaborative window), restricted to that clinic or therapist;
 * when nothing fits the redirect is refused and the handoff stays where it was. Otherwise the
 * old booking ends (its slots freed, its therapist never offered the referral again), the new
 * one is ready, the new clinic gets a Handoff, the referrer and the old clinic are told, and
 * referrals on hold may take the freed slot.
 *
 * Add (StatusChange "add", reason): only the clinic holding the physiotherapy handoff in
 * accepted or in-progress, for a referral without a massage therapy handoff. Triage owns
 * clinical judgement, so scheduling records the request (additions) and sends the Case with
 * `add` to service triage, which answers with the Case and a decision that includes massage
 * therapy or says why not (hx_triage_massage: red flags, contraindications). On a yes,
 * scheduling checks again that nothing changed meanwhile and that a massage slot fits within
 * the collaborative window after the physiotherapy booking, stores massage in the referral's
 * plan and books it as any discipline of the plan (the massage clinic gets a Handoff); the
 * referrer and the asking clinic are told. A refusal (triage's, or no slot) goes to the asking
 * clinic. Every output is stored with its effects (hx_booking_handle), so a redelivered
 * message changes nothing twice. The audit log has ids and outcomes, never a reason's text. */
#include "hx_booking_internal.h"
#include "hx_intake.h"
#include "hx_log.h"
#include "hx_refjson.h"
#include "hx_svc.h"
#include "hx_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHY_MAX 400
#define REASON_MAX 800
#define MASSAGE HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY
#define PHYSIO HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY

static void audit(hx_booking_t *b, const char *role, const hx_msg_t *in, hx_event_t ev, const char *rid,
                  const char *outcome)
{
    bk_audit_write(b, role, in, hx_event_text(ev), rid, outcome);
}

/* "reason: ..." when the reason is missing or too long; 0 when it is fine. */
static int reason_check(const char *reason, hx_event_t ev, char *why, size_t cap)
{
    size_t n = strlen(reason);
    if (n == 0)
        snprintf(why, cap, "reason: a%s %s needs a reason", ev == HX_EVENT_ADD ? "n" : "", hx_event_text(ev));
    else if (n > REASON_MAX)
        snprintf(why, cap, "reason: %zu bytes, at most %d", n, REASON_MAX);
    return n == 0 || n > REASON_MAX ? -1 : 0;
}

/* The live booking clinic holds of discipline d (0: the only one it holds): 1 with *k, 0 with
 * why, -1 on an error. */
static int held_booking(hx_booking_t *b, const char *rid, const char *clinic, Handoff__Discipline d, hx_event_t ev,
                        bk_booking_t *k, char *why, size_t cap)
{
    bk_booking_t have[2];
    size_t n = 0, mine = 0;
    if (bk_bookings_load(b, rid, have, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(have[i].clinic_id, clinic) && (!d || have[i].discipline == d)) {
            *k = have[i];
            mine++;
        }
    if (mine == 0)
        snprintf(why, cap, "only the current receiving clinic may %s %s of referral %s: clinic %s does not hold it",
                 hx_event_text(ev), d ? hx_discipline_text(d) : "a handoff", rid, clinic);
    else if (mine > 1)
        snprintf(why, cap, "discipline: clinic %s holds both bookings of %s; say which", clinic, rid);
    return mine == 1 ? 1 : 0;
}

/* ---- redirect ------------------------------------------------------------------------------- */

/* Whether the target of a redirect of k can be offered at all, naming the field: 0, or -1 with why. */
static int target_check(hx_booking_t *b, const bk_row_t *row, const Handoff__StatusChange *ch, const bk_booking_t *k,
                        char *why, size_t cap)
{
    if (!ch->to_clinic[0] || !hx_name_valid(ch->to_clinic)) {
        snprintf(why, cap, "to_clinic: %s", ch->to_clinic[0] ? "not a clinic id" : "required: the clinic the "
                                                                                    "handoff goes to");
        return -1;
    }
    if (ch->to_therapist[0] && !hx_name_valid(ch->to_therapist)) {
        snprintf(why, cap, "to_therapist: not a therapist id");
        return -1;
    }
    const Handoff__Preferences *p = row->c->referral ? row->c->referral->preferences : NULL;
    hx_slot_query_t q = {.discipline = k->discipline, .language = p ? p->language : NULL,
                         .only_clinic = ch->to_clinic, .only_therapist = ch->to_therapist,
                         .exclude_therapist = k->therapist_id};
    char what[300];
    int bad = hx_slot_restriction_check(bk_directory(b), &q, what, sizeof what);
    if (bad)
        snprintf(why, cap, "%s: %s", bad == HX_SLOT_BAD_CLINIC ? "to_clinic" : "to_therapist", what);
    return bad ? -1 : 0;
}

/* The redirect is allowed and nk found: the old booking k ends, nk is recorded, the new clinic
 * gets the handoff, the referrer and the old clinic are told. */
static int redirect_apply(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                          const char *rid, const bk_row_t *row, const bk_booking_t *k, bk_booking_t *nk)
{
    char text[WHY_MAX];
    snprintf(text, sizeof text, "%s redirected by %s (%s) to %s (%s): %.200s", hx_discipline_text(k->discipline),
             in->from, k->therapist_id, nk->clinic_id, nk->therapist_id, ch->reason);
    bk_handoff_t gone = {.booked = true, .k = *k, .status = HANDOFF__TASK_STATUS__TASK_CANCELLED};
    snprintf(gone.event, sizeof gone.event, "%s", hx_event_text(HX_EVENT_REDIRECT));
    snprintf(gone.reason, sizeof gone.reason, "%.255s", text);
    bk_handoffs_t hs;
    int rc = bk_declined_add(b, rid, k->therapist_id);
    if (rc == 0)
        rc = bk_booking_forget(b, rid, k->discipline);
    if (rc == 0)
        rc = bk_booking_add(b, rid, nk, HX_EVENT_REDIRECT, text);
    if (rc == 0)
        rc = bk_derive(b, rid, &hs);
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = (char *)rid;
    h.referral = row->c->referral;
    h.decision = row->c->decision;
    h.booking = bk_booking_pb(b, rid, nk);
    if (rc == 0)
        rc = hx_svc_emit(out, HX_TO_MAILBOX, nk->clinic_id, "handoff.Handoff", &h.base);
    bk_update_t u = {.rid = rid, .ref = row->ref, .status = hs.status, .ev = HX_EVENT_REDIRECT, .reason = text,
                     .bookings = &h.booking, .n_bookings = 1};
    if (rc == 0)
        rc = bk_tell_referrer(b, out, row->referring_clinic, &u, &hs);
    /* the old clinic: its handoff as it ends (cancelled, event redirect), then what it still holds */
    bk_handoff_t *list[3] = {&gone};
    size_t n = 1;
    for (size_t i = 0; i < hs.n; i++)
        if (hs.h[i].booked && !strcmp(hs.h[i].k.clinic_id, in->from))
            list[n++] = &hs.h[i];
    if (rc == 0 && strcmp(in->from, row->referring_clinic) != 0)
        rc = bk_tell(b, out, in->from, &u, list, n);
    if (rc == 0)
        rc = bk_retry_on_hold(b, out);
    char outcome[160];
    snprintf(outcome, sizeof outcome, "done: redirected %s to %s/%s", hx_discipline_text(k->discipline), nk->clinic_id,
             nk->therapist_id);
    audit(b, "clinic", in, HX_EVENT_REDIRECT, rid, outcome);
    hx_info("referral %s: %s redirected by %s to %s/%s", rid, hx_discipline_text(k->discipline), in->from,
            nk->clinic_id, nk->therapist_id);
    return rc;
}

int hx_coord_redirect(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                      const char *rid)
{
    hx_event_t ev = HX_EVENT_REDIRECT;
    bk_row_t row = {0};
    bk_booking_t k, nk;
    char why[WHY_MAX];
    Handoff__TaskStatus to;
    int rc = bk_row_load(b, rid, &row), held = 0, found = 0;
    if (rc == 1)
        held = held_booking(b, rid, in->from, ch->discipline, ev, &k, why, sizeof why);
    if (rc != 1 || held < 0)
        rc = -1;
    else if (held == 0)
        rc = bk_refuse(b, out, in, rid, &row, ev, why);
    else if (hx_lifecycle_apply(k.status, ev, HX_ACTOR_RECEIVER, &to, why, sizeof why) != 0 ||
             reason_check(ch->reason, ev, why, sizeof why) != 0 || target_check(b, &row, ch, &k, why, sizeof why) != 0)
        rc = bk_refuse(b, out, in, rid, &row, ev, why);
    else {
        bk_where_t w = {.only_clinic = ch->to_clinic, .only_therapist = ch->to_therapist,
                        .exclude_therapist = k.therapist_id};
        found = bk_slot_find(b, rid, k.discipline, &w, &nk, why, sizeof why);
        rc = found < 0 ? -1
             : found  ? redirect_apply(b, in, out, ch, rid, &row, &k, &nk)
                      : bk_refuse(b, out, in, rid, &row, ev, why);
    }
    bk_row_free(&row);
    return rc;
}

/* ---- add ------------------------------------------------------------------------------------ */

/* The state of the last add of discipline d to rid ("asked", "added", "refused"; "" none) and
 * the id of the request it answers. 0 or -1. */
static int addition_load(hx_booking_t *b, const char *rid, Handoff__Discipline d, char state[16],
                         uint8_t request_id[HX_ID_LEN])
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT state, request_id FROM additions WHERE referral_id = ? AND discipline = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    hx_db_bind_int(st, 2, (int)d);
    int step = hx_db_step(st);
    state[0] = '\0';
    if (step == HX_DB_ROW) {
        snprintf(state, 16, "%s", hx_db_col_text(st, 0));
        memset(request_id, 0, HX_ID_LEN);
        if (hx_db_col_bytes(st, 1) == HX_ID_LEN)
            memcpy(request_id, hx_db_col_blob(st, 1), HX_ID_LEN);
    }
    bk_done(b, st);
    return step == HX_DB_ROW || step == HX_DB_DONE ? 0 : -1;
}

static int addition_asked(hx_booking_t *b, const char *rid, const hx_msg_t *in)
{
    hx_db_stmt_t *st = bk_prep(b, "INSERT INTO additions(referral_id, discipline, state, requested_by, request_id, asked_ms) "
                                  "VALUES (?, ?, 'asked', ?, ?, ?) ON CONFLICT (referral_id, discipline) DO UPDATE "
                                  "SET state = excluded.state, requested_by = excluded.requested_by, "
                                  "request_id = excluded.request_id, asked_ms = excluded.asked_ms, answer = ''");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    hx_db_bind_int(st, 2, MASSAGE);
    hx_db_bind_text(st, 3, in->from);
    hx_db_bind_blob(st, 4, in->id, HX_ID_LEN);
    hx_db_bind_int(st, 5, (int64_t)bk_now_ms(b));
    int rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    bk_done(b, st);
    return rc;
}

static int addition_answered(hx_booking_t *b, const char *rid, const char *state, const char *answer)
{
    hx_db_stmt_t *st = bk_prep(b, "UPDATE additions SET state = ?, answer = ? WHERE referral_id = ? AND discipline = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, state);
    hx_db_bind_text(st, 2, answer);
    hx_db_bind_text(st, 3, rid);
    hx_db_bind_int(st, 4, MASSAGE);
    int rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    bk_done(b, st);
    return rc;
}

/* Whether clinic may ask now for massage to be added to rid (row, hs: as stored): it holds the
 * physiotherapy handoff in accepted or in-progress and the referral has no massage therapy
 * handoff. 1 yes, 0 with why, -1 on an error. */
static int add_allowed(hx_booking_t *b, const char *rid, const char *clinic, const bk_handoffs_t *hs, char *why,
                       size_t cap)
{
    bk_booking_t pt;
    Handoff__TaskStatus to;
    int held = held_booking(b, rid, clinic, PHYSIO, HX_EVENT_ADD, &pt, why, cap);
    if (held <= 0) {
        if (held == 0)
            snprintf(why, cap, "only the clinic holding the physiotherapy handoff of %s may ask for massage therapy "
                     "to be added: clinic %s does not hold it", rid, clinic);
        return held;
    }
    if (hx_lifecycle_apply(pt.status, HX_EVENT_ADD, HX_ACTOR_RECEIVER, &to, why, cap) != 0)
        return 0;
    for (size_t i = 0; i < hs->n; i++)
        if (hs->h[i].k.discipline == MASSAGE) {
            snprintf(why, cap, "discipline: referral %s already has a massage_therapy handoff (%s)", rid,
                     hx_status_text(hs->h[i].status));
            return 0;
        }
    return 1;
}

/* Sends the Case with the request to triage and answers the clinic: asked. */
static int add_ask(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                   const char *rid, const bk_row_t *row, bk_handoffs_t *hs)
{
    Handoff__AddRequest add = HANDOFF__ADD_REQUEST__INIT;
    add.discipline = MASSAGE;
    add.requested_by = (char *)in->from;
    add.reason = ch->reason;
    add.request_id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)in->id};
    add.at_ms = bk_now_ms(b);
    Handoff__Case c = HANDOFF__CASE__INIT;
    c.referral = row->c->referral;
    c.decision = row->c->decision;
    c.add = &add;
    int rc = addition_asked(b, rid, in);
    if (rc == 0)
        rc = hx_svc_emit(out, HX_TO_SERVICE, "triage", "handoff.Case", &c.base);
    bk_update_t u = {.rid = rid, .ref = row->ref, .status = hs->status, .ev = HX_EVENT_ADD,
                     .reason = "massage_therapy asked for: triage checks it against the referral; its answer follows"};
    if (rc == 0)
        rc = bk_tell_receiver(b, out, in->from, &u, hs);
    audit(b, "clinic", in, HX_EVENT_ADD, rid, "done: massage_therapy asked of triage");
    hx_info("referral %s: massage therapy asked for by %s; asking triage", rid, in->from);
    return rc;
}

int hx_coord_add(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                 const char *rid)
{
    hx_event_t ev = HX_EVENT_ADD;
    bk_row_t row = {0};
    bk_handoffs_t hs;
    char why[WHY_MAX], state[16];
    uint8_t asked[HX_ID_LEN];
    int rc = bk_row_load(b, rid, &row) == 1 && bk_handoffs_load(b, rid, &hs) == 0 ? 0 : -1;
    int ok = rc == 0 ? add_allowed(b, rid, in->from, &hs, why, sizeof why) : -1;
    if (rc == 0 && ok >= 0 && addition_load(b, rid, MASSAGE, state, asked) != 0)
        ok = -1;
    if (ok < 0)
        rc = -1;
    else if (ch->discipline && ch->discipline != MASSAGE)
        rc = bk_refuse(b, out, in, rid, &row, ev,
                       "discipline: only massage therapy (2) can be asked for, or 0 for massage therapy");
    else if (ok == 0)
        rc = bk_refuse(b, out, in, rid, &row, ev, why);
    else if (reason_check(ch->reason, ev, why, sizeof why) != 0)
        rc = bk_refuse(b, out, in, rid, &row, ev, why);
    else if (!strcmp(state, "asked"))
        rc = bk_refuse(b, out, in, rid, &row, ev, "massage_therapy was asked for already: triage's answer is awaited");
    else
        rc = add_ask(b, in, out, ch, rid, &row, &hs);
    bk_row_free(&row);
    return rc;
}

/* ---- triage's answer ------------------------------------------------------------------------ */

static bool has_massage(const Handoff__TriageDecision *d)
{
    for (size_t i = 0; d && i < d->n_disciplines; i++)
        if (d->disciplines[i] == MASSAGE)
            return true;
    return false;
}

/* Massage therapy into the referral's stored plan, with why and triage's notes on it. */
static int plan_add_massage(hx_booking_t *b, const char *rid, Handoff__Case *stored, const Handoff__Case *answer,
                            const char *note)
{
    Handoff__TriageDecision *d = stored->decision;
    Handoff__Discipline *more = realloc(d->disciplines, (d->n_disciplines + 1) * sizeof *more);
    if (!more)
        return -1;
    d->disciplines = more;
    d->disciplines[d->n_disciplines++] = MASSAGE;
    int rc = hx_pb_add_string(&d->notes, &d->n_notes, note);
    for (size_t i = 0; rc == 0 && i < answer->decision->n_notes; i++)
        if (!strncmp(answer->decision->notes[i], "massage ", 8))
            rc = hx_pb_add_string(&d->notes, &d->n_notes, answer->decision->notes[i]);
    return rc == 0 ? bk_case_store(b, rid, stored) : -1;
}

/* Triage said yes and a slot fits: massage joins the plan and is booked (the massage clinic
 * gets its Handoff, the referrer the booking), then the referrer and the asking clinic are
 * told of the add with every handoff. */
static int add_book(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__Case *c, bk_row_t *row)
{
    const char *rid = c->referral->referral_id, *by = c->add->requested_by;
    char text[WHY_MAX];
    snprintf(text, sizeof text, "massage_therapy added at the request of %s: %.200s", by, c->add->reason);
    bk_handoffs_t hs;
    int rc = plan_add_massage(b, rid, row->c, c, text);
    if (rc == 0)
        rc = bk_set_pending(b, rid, HANDOFF__TASK_STATUS__TASK_RECEIVED, HX_EVENT_ADD, text);
    if (rc == 0)
        rc = bk_book(b, rid, out);
    if (rc == 0)
        rc = addition_answered(b, rid, "added", "");
    if (rc == 0)
        rc = bk_handoffs_load(b, rid, &hs);
    bk_update_t u = {.rid = rid, .ref = row->ref, .status = hs.status, .ev = HX_EVENT_ADD, .reason = text,
                     .decision = row->c->decision};
    if (rc == 0)
        rc = bk_tell_referrer(b, out, row->referring_clinic, &u, &hs);
    bk_handoff_t *all[2] = {&hs.h[0], &hs.h[1]};
    if (rc == 0 && strcmp(by, row->referring_clinic) != 0)
        rc = bk_tell(b, out, by, &u, all, hs.n);
    char outcome[120];
    snprintf(outcome, sizeof outcome, "done: massage_therapy added for %s", by);
    audit(b, "service", in, HX_EVENT_ADD, rid, outcome);
    hx_info("referral %s: massage therapy added for %s", rid, by);
    return rc;
}

/* The add is refused (why): the asking clinic is told, the request closed. */
static int add_refused(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__Case *c,
                       const bk_row_t *row, const char *why, const char *outcome)
{
    const char *rid = c->referral->referral_id;
    bk_handoffs_t hs;
    int rc = addition_answered(b, rid, "refused", outcome);
    if (rc == 0)
        rc = bk_handoffs_load(b, rid, &hs);
    if (rc == 0)
        rc = bk_emit_status(out, c->add->requested_by, rid, row->ref, hs.status, HX_EVENT_ADD, true, why, NULL);
    char line[200];
    snprintf(line, sizeof line, "refused for %s: %s", c->add->requested_by, outcome);
    audit(b, "service", in, HX_EVENT_ADD, rid, line);
    hx_info("referral %s: massage therapy for %s refused (%s)", rid, c->add->requested_by, outcome);
    return rc;
}

int hx_coord_on_added(hx_booking_t *b, const hx_msg_t *in, const Handoff__Case *c, hx_outbox_t *out)
{
    const Handoff__AddRequest *a = c->add;
    if (!c->referral || !c->decision || !hx_name_valid(a->requested_by) || a->discipline != MASSAGE ||
        a->request_id.len != HX_ID_LEN || strlen(c->referral->referral_id) != HX_REFERRAL_ID_LEN) {
        hx_warn("an add answer from %s ignored: not a Case with a referral, a decision and a massage add", in->from);
        return 0;
    }
    const char *rid = c->referral->referral_id;
    char state[16], why[WHY_MAX];
    uint8_t asked[HX_ID_LEN];
    bk_row_t row = {0};
    bk_handoffs_t hs;
    bk_booking_t k;
    if (addition_load(b, rid, MASSAGE, state, asked) != 0)
        return -1;
    if (strcmp(state, "asked") != 0 || memcmp(asked, a->request_id.data, HX_ID_LEN) != 0) {
        hx_info("referral %s: an answer to an add that is not awaited changes nothing", rid);
        return 0;
    }
    int rc = bk_row_load(b, rid, &row) == 1 && bk_handoffs_load(b, rid, &hs) == 0 ? 0 : -1;
    int ok = rc == 0 ? add_allowed(b, rid, a->requested_by, &hs, why, sizeof why) : -1;
    int slot = ok == 1 && has_massage(c->decision) ? bk_slot_find(b, rid, MASSAGE, NULL, &k, why, sizeof why) : 0;
    if (ok < 0 || slot < 0)
        rc = -1;
    else if (!has_massage(c->decision))
        rc = add_refused(b, in, out, c, &row, c->decision->reason, "by triage");
    else if (ok == 0)
        rc = add_refused(b, in, out, c, &row, why, "changed meanwhile");
    else if (slot == 0)
        rc = add_refused(b, in, out, c, &row, why, "no slot");
    else
        rc = add_book(b, in, out, c, &row);
    bk_row_free(&row);
    return rc;
}
