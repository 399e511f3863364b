/* hx_lifecycle — the one referral lifecycle state machine (FHIR Task status) every service
 * uses: which event may move a referral from which status to which, and who may cause it.
 * Pure: no allocation, no state. The whole machine is one table in hx_lifecycle.c. */
#ifndef HX_LIFECYCLE_H
#define HX_LIFECYCLE_H
#include <stdbool.h>
#include <stddef.h>
#include "referral.pb-c.h"

/* What happens to a referral. 0 is "no event" (what hx_event_from_text gives for unknown
 * text); the values are stable, but store the text (hx_event_text), not the number. */
typedef enum {
    HX_EVENT_NONE = 0,
    HX_EVENT_SUBMIT,    /* the referrer sends a draft: draft -> requested */
    HX_EVENT_RECEIVE,   /* intake took it: requested -> received */
    HX_EVENT_REJECT,    /* invalid, or a red flag: requested|received -> rejected */
    HX_EVENT_BOOK,      /* scheduling booked a therapist: received|on-hold -> ready */
    HX_EVENT_HOLD,      /* no slot for now: received -> on-hold */
    HX_EVENT_ACCEPT,    /* the receiving clinic accepts: ready -> accepted */
    HX_EVENT_DECLINE,   /* the receiving clinic declines: ready|accepted -> received (reassign) */
    HX_EVENT_START,     /* the first session took place: accepted -> in-progress */
    HX_EVENT_COMPLETE,  /* care finished: in-progress -> completed */
    HX_EVENT_REVOKE,    /* the referrer withdraws it: any non-final -> cancelled */
    HX_EVENT_FAIL,      /* it could not be carried out: any non-final -> failed */
    HX_EVENT_ERROR,     /* it should never have existed: any but entered-in-error -> entered-in-error */
    HX_EVENT_REDIRECT,  /* the receiving clinic hands its handoff to another clinic or therapist:
                           ready|accepted -> ready (with the new receiver) */
    HX_EVENT_ADD,       /* the receiving clinic of a handoff asks for a discipline to be added to the
                           referral: accepted|in-progress -> unchanged (its own handoff) */
    HX_EVENT_COUNT
} hx_event_t;

/* Who causes an event. The receiver is the clinic the referral is currently handed to;
 * the caller establishes who the sender is (authenticated clinic id against the referral's
 * referring and receiving clinic) before asking the machine. */
typedef enum {
    HX_ACTOR_NONE = 0,
    HX_ACTOR_REFERRER,  /* the referring clinic */
    HX_ACTOR_RECEIVER,  /* the current receiving clinic */
    HX_ACTOR_SERVICE,   /* a network service: intake, triage, scheduling */
    HX_ACTOR_COUNT
} hx_actor_t;

/* Applies ev, caused by actor, to a referral in status from. Returns 0 with *to set to the
 * next status and why (when not NULL and cap > 0) describing the change, e.g. "declined by
 * the receiving clinic: back to scheduling to be reassigned". Returns -1 with *to untouched
 * and why saying what is wrong, always naming the current status: the event is not allowed
 * from it ("cannot start a referral that is ready: from ready the receiver may accept,
 * decline or fail it; ..."), or this actor may not cause it ("only the current receiving
 * clinic may accept a referral that is ready"). For DECLINE the caller records who declined
 * (the therapist or clinic) so rescheduling does not pick them again. why is always
 * NUL-terminated when cap > 0; to may be NULL. */
int hx_lifecycle_apply(Handoff__TaskStatus from, hx_event_t ev, hx_actor_t actor,
                       Handoff__TaskStatus *to, char *why, size_t cap);

/* True for completed, cancelled, failed, rejected and entered-in-error: only
 * entered-in-error may follow the first four, nothing follows entered-in-error. */
bool hx_lifecycle_final(Handoff__TaskStatus s);

/* The events actor may cause from s, in hx_event_t order. Writes at most cap of them to out
 * (out may be NULL when cap is 0) and returns how many there are. */
size_t hx_lifecycle_allowed(Handoff__TaskStatus s, hx_actor_t actor, hx_event_t *out, size_t cap);

/* The referral's status (FHIR: the parent Task) derived from its handoffs (the child Tasks,
 * partOf it: one per discipline of the plan, with the handoff's own status when it is booked,
 * received or on-hold while it is still to be (re)booked). own is the referral's own status,
 * which says everything while it has no handoff (requested, received, on-hold, rejected,
 * cancelled: before triage placed it, under review, revoked before booking). The table
 * (docs/PROTOCOL.md, "Handoffs"), first rule that holds:
 *   1. no handoff (n == 0)                          -> own
 *   2. any handoff in-progress                      -> in-progress
 *   3. every handoff final (completed, cancelled, failed, rejected, entered-in-error):
 *        any completed -> completed; else any failed -> failed; else, when they are all
 *        the same (all rejected, all entered-in-error, all cancelled), that; else cancelled
 *   4. any completed while another is still open    -> in-progress (the care is under way)
 *   5. else the most advanced open handoff:
 *        accepted > ready > received > on-hold > requested > draft
 * so a final handoff never holds back an open one, and a discipline being (re)booked never
 * pulls back one that is further (physiotherapy accepted, massage declined and on hold: the
 * referral is accepted). Pure. Returns HANDOFF__TASK_STATUS__TASK_UNSPECIFIED when an input
 * is not a status (0 or unknown; own only matters when n == 0), or handoffs is NULL with n > 0. */
Handoff__TaskStatus hx_referral_status(Handoff__TaskStatus own, const Handoff__TaskStatus *handoffs, size_t n);

/* "submit", "receive", "reject", "book", "hold", "accept", "decline", "start", "complete",
 * "revoke", "fail", "error", "redirect", "add"; "unknown" otherwise. from_text is the inverse (exact, lower
 * case) and returns HX_EVENT_NONE for anything else, NULL included. */
const char *hx_event_text(hx_event_t ev);
hx_event_t hx_event_from_text(const char *s);

/* "referrer", "receiver", "service"; "unknown" otherwise. from_text is the inverse. */
const char *hx_actor_text(hx_actor_t a);
hx_actor_t hx_actor_from_text(const char *s);

#endif
