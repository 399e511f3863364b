/* What hx_booking.c gives hx_review.c (the review of referrals triage could not place);
 * not for the scheduling program. Every call runs inside hx_booking_handle's transaction. */
#ifndef HX_BOOKING_INTERNAL_H
#define HX_BOOKING_INTERNAL_H
#include "hx_audit.h"
#include "hx_booking.h"
#include "hx_lifecycle.h"

#include <sqlite3.h>
#include <stdbool.h>

typedef struct {
    Handoff__TaskStatus status;
    char referring_clinic[80];
    char ref[80];
    Handoff__Case *c;               /* unpacked case_pb */
} bk_row_t;

sqlite3_stmt *bk_prep(hx_booking_t *b, const char *sql);
/* 1 found, 0 not found, -1 error; free with bk_row_free. */
int bk_row_load(hx_booking_t *b, const char *referral_id, bk_row_t *r);
void bk_row_free(bk_row_t *r);
int bk_set_status(hx_booking_t *b, const char *referral_id, Handoff__TaskStatus s, const char *reason);
/* Books what the referral's decision asks for and tells the clinics (as for a triaged case). */
int bk_book(hx_booking_t *b, const char *referral_id, hx_outbox_t *out);
int bk_emit_status(hx_outbox_t *out, const char *to, const char *referral_id, const char *ref,
                   Handoff__TaskStatus status, hx_event_t ev, bool refused, const char *reason,
                   Handoff__TriageDecision *decision);
/* One line in the audit log (when there is one): principal "<role>:<sender>", action
 * "referral.<what>", the referral id and the outcome (never message text). */
void bk_audit_write(hx_booking_t *b, const char *role, const hx_msg_t *in, const char *what, const char *rid,
                    const char *outcome);
/* The reviewers' mailboxes as configured ("review" when none). */
const char *bk_reviewers(const hx_booking_t *b);

/* hx_review.c: a Case whose decision needs review (recorded, sent to every reviewer), and a
 * reviewer's decision. 0, or -1 when the database failed. */
int hx_review_on_case(hx_booking_t *b, const hx_msg_t *in, const Handoff__Case *c, hx_outbox_t *out);
int hx_review_on_decision(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out);
/* hx_thread.c: a post to a referral's care thread from a clinic. 0, or -1 when the database
 * failed. */
int hx_thread_on_post(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out);

#endif
