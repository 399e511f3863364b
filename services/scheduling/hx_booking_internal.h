/* What hx_booking.c gives hx_review.c (the review of referrals triage could not place);
 * not for the scheduling program. Every call runs inside hx_booking_handle's transaction. */
#ifndef HX_BOOKING_INTERNAL_H
#define HX_BOOKING_INTERNAL_H
#include "hx_attach.h"
#include "hx_audit.h"
#include "hx_booking.h"
#include "hx_lifecycle.h"

#include "hx_db.h"
#include <stdbool.h>

typedef struct {
    Handoff__TaskStatus status;
    char referring_clinic[80];
    char ref[80];
    Handoff__Case *c;               /* unpacked case_pb */
} bk_row_t;

/* A booking row: a discipline booked with one therapist. */
typedef struct {
    Handoff__Discipline discipline;
    char therapist_id[32];
    char therapist_name[64];
    char clinic_id[32];
    hx_minute_t start;
    uint32_t minutes;
    Handoff__TaskStatus status;
    bool virtual_session;
    bool km_known;                  /* the patient's and the clinic's places are known */
    double km;                      /* great-circle km from the patient */
    char start_text[17];            /* the clinic's wall clock */
    char start_utc[18];             /* YYYY-MM-DDTHH:MMZ */
    char utc_offset[7];
    Handoff__Booking pb;
} bk_booking_t;

/* One handoff (FHIR: a child Task, partOf the referral's): a discipline of the referral's plan,
 * booked with one therapist (its booking row holds its status), or still to be booked (the
 * referral's pending status: received, on-hold, or cancelled by a revoke). */
typedef struct {
    bool booked;
    bk_booking_t k;                 /* k.discipline always; the rest when booked */
    Handoff__TaskStatus status;
    char event[24];
    char reason[256];
    char wait_estimate[11];         /* pb.wait_estimate points here (hx_waitlist_fill) */
    Handoff__HandoffStatus pb;
} bk_handoff_t;

typedef struct {
    bk_handoff_t h[2];
    size_t n;
    Handoff__TaskStatus status;     /* the referral's, derived from them */
} bk_handoffs_t;

/* What one StatusUpdate says besides the handoffs: the referral, its status, what happened. */
typedef struct {
    const char *rid, *ref;
    Handoff__TaskStatus status;     /* the referral's (derived) */
    hx_event_t ev;
    const char *reason;
    Handoff__Booking **bookings;    /* the bookings it is about, as before handoffs existed */
    size_t n_bookings;
    Handoff__TriageDecision *decision;
    const char *event_text;         /* NULL, or the event's name when it is no lifecycle event ("escalate") */
} bk_update_t;

/* Where a slot may be looked for besides the referral's own plan (a redirect): only this
 * clinic or therapist (NULL or "": any), never exclude_therapist. */
typedef struct {
    const char *only_clinic, *only_therapist, *exclude_therapist;
} bk_where_t;

/* A statement for sql, which must be a string literal (it is kept, found again by its
 * address); give it back with bk_done. */
hx_db_stmt_t *bk_prep(hx_booking_t *b, const char *sql);
/* The store (SQLite or PostgreSQL), and which. */
hx_db_t *bk_db(hx_booking_t *b);
bool bk_on_postgres(const hx_booking_t *b);
/* One or more statements without parameters: 0, or -1 (logged). */
int bk_exec(hx_booking_t *b, const char *sql);
/* A write transaction outside hx_booking_handle's (the workers take turns; see hx_booking.c):
 * begin (0, HX_DB_UNAVAILABLE, or -1 with err), commit (0 or -1 with err; rolled back), or
 * roll back. */
int bk_write_begin(hx_booking_t *b, char *err, size_t cap);
int bk_write_commit(hx_booking_t *b, char *err, size_t cap);
void bk_write_rollback(hx_booking_t *b);
void bk_done(hx_booking_t *b, hx_db_stmt_t *st);
/* 1 found, 0 not found, -1 error; free with bk_row_free. */
int bk_row_load(hx_booking_t *b, const char *referral_id, bk_row_t *r);
void bk_row_free(bk_row_t *r);
int bk_set_status(hx_booking_t *b, const char *referral_id, Handoff__TaskStatus s, const char *reason);
/* Books what the referral's decision asks for and tells the clinics (as for a triaged case). */
int bk_book(hx_booking_t *b, const char *referral_id, hx_outbox_t *out);
int bk_emit_status(hx_outbox_t *out, const char *to, const char *referral_id, const char *ref,
                   Handoff__TaskStatus status, hx_event_t ev, bool refused, const char *reason,
                   Handoff__TriageDecision *decision);
/* A refused request of a clinic or reviewer (role "clinic", "reviewer") about a referral: a
 * line "refused: why" in the audit log (action "referral.<what>"), an info log line, and a
 * StatusUpdate to the sender with refused set, event what and the reason. */
int bk_refuse_request(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const char *role, const char *what,
                      const char *rid, const char *why);
/* One line in the audit log (when there is one): principal "<role>:<sender>", action
 * "referral.<what>", the referral id and the outcome (never message text). */
void bk_audit_write(hx_booking_t *b, const char *role, const hx_msg_t *in, const char *what, const char *rid,
                    const char *outcome);
/* Binds a value to store (text or a blob), sealed when the store has a data key. 0 or -1. */
int bk_bind_sealed(hx_booking_t *b, hx_db_stmt_t *st, int idx, const void *data, size_t len, bool text);
/* Binds a Case (packed, sealed when the store has a data key). 0 or -1. */
int bk_bind_case(hx_booking_t *b, hx_db_stmt_t *st, int idx, const Handoff__Case *c);
/* The clear value of column col (malloc'd, NUL-terminated): opened when sealed. 0, or -1
 * (logged: a sealed value without the key, another key, damage). */
int bk_column_open(hx_booking_t *b, hx_db_stmt_t *st, int col, uint8_t **out, size_t *len);
/* Tells an attachment's type by its content (hx_attach.h). */
hx_attach_typer_t *bk_typer(hx_booking_t *b);
/* The reviewers' mailboxes as configured ("review" when none). */
const char *bk_reviewers(const hx_booking_t *b);

/* ---- for hx_coordinate.c: the same steps the lifecycle changes take ---- */
const hx_directory_t *bk_directory(const hx_booking_t *b);
/* The referral's handoffs as stored and its derived status (bk_handoffs_load), or that status
 * derived again and stored after a change (bk_derive). 0 or -1. */
int bk_handoffs_load(hx_booking_t *b, const char *rid, bk_handoffs_t *hs);
int bk_derive(hx_booking_t *b, const char *rid, bk_handoffs_t *hs);
/* A StatusUpdate to `to` with u and the n handoffs in list; to the referrer with every handoff;
 * to a receiving clinic with the handoffs it holds (none: nothing sent). */
int bk_tell(hx_booking_t *b, hx_outbox_t *out, const char *to, const bk_update_t *u, bk_handoff_t *const *list,
            size_t n);
int bk_tell_referrer(hx_booking_t *b, hx_outbox_t *out, const char *referrer, const bk_update_t *u,
                     bk_handoffs_t *hs);
int bk_tell_receiver(hx_booking_t *b, hx_outbox_t *out, const char *clinic, const bk_update_t *u, bk_handoffs_t *hs);
/* The Booking message of k (therapist_name, start_text filled in). */
Handoff__Booking *bk_booking_pb(hx_booking_t *b, const char *rid, bk_booking_t *k);
/* The referral's live bookings (at most 2). 0 or -1. */
int bk_bookings_load(hx_booking_t *b, const char *rid, bk_booking_t *out, size_t *n);
/* Finds the earliest slot for discipline d as booking the referral would (its window, the
 * patient's availability and language, who declined it excluded, massage within the
 * collaborative window after the physiotherapy booking), restricted by w (may be NULL).
 * 1 with *k filled in (nothing recorded), 0 with why (no slot), -1 on an error. */
int bk_slot_find(hx_booking_t *b, const char *rid, Handoff__Discipline d, const bk_where_t *w, bk_booking_t *k,
                 char *why, size_t cap);
/* Records booking k (status ready), with its last event and reason. 0 or -1. */
int bk_booking_add(hx_booking_t *b, const char *rid, const bk_booking_t *k, hx_event_t ev, const char *reason);
/* Ends the booking of discipline d: its slots freed, the row forgotten. 0 or -1. */
int bk_booking_forget(hx_booking_t *b, const char *rid, Handoff__Discipline d);
/* therapist_id is never offered the referral again. 0 or -1. */
int bk_declined_add(hx_booking_t *b, const char *rid, const char *therapist_id);
/* The status of the handoffs still to be booked, with the event and why. 0 or -1. */
int bk_set_pending(hx_booking_t *b, const char *rid, Handoff__TaskStatus s, hx_event_t ev, const char *reason);
/* Replaces the referral's stored Case (sealed as on_case stores it). 0 or -1. */
int bk_case_store(hx_booking_t *b, const char *rid, const Handoff__Case *c);
/* Books referrals on hold again (a slot was freed). 0 or -1. */
int bk_retry_on_hold(hx_booking_t *b, hx_outbox_t *out);
/* A clinic's change refused: the audit line, and a refused StatusUpdate to the sender. */
int bk_refuse(hx_booking_t *b, hx_outbox_t *out, const hx_msg_t *in, const char *rid, const bk_row_t *row,
              hx_event_t ev, const char *why);

/* hx_coordinate.c: a receiving clinic's redirect of its handoff, and a request to add a
 * massage therapy handoff (StatusChange "redirect", "add"); triage's answer to an add (a Case
 * from triage with add set). 0, or -1 when the database failed. */
int hx_coord_redirect(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                      const char *rid);
int hx_coord_add(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                 const char *rid);
int hx_coord_on_added(hx_booking_t *b, const hx_msg_t *in, const Handoff__Case *c, hx_outbox_t *out);

/* What "now" is for the store: the configured clock, else the real one (ms since 1970 UTC). */
uint64_t bk_now_ms(const hx_booking_t *b);
/* The store's configuration as opened (data_key NULL). */
const hx_booking_config_t *bk_config(const hx_booking_t *b);

/* One line of handoff_log (what the network's figures need and the bookings table forgets):
 * event "decline" (clinic: who declined) or "hold" (clinic ""), now. 0 or -1. */
int bk_log_event(hx_booking_t *b, const char *rid, Handoff__Discipline d, const char *clinic, const char *event);
/* Every live booking, as the slot finder reads it (kept between messages; the store's). NULL on
 * a database error. */
hx_calendar_t *bk_calendar(hx_booking_t *b);

/* hx_stats.c: a clinic's or reviewer's StatsRequest, answered with the network's figures
 * (NetworkStats) or a refused StatusUpdate (event "stats"). Reads only; runs inside the
 * caller's read transaction. 0, or -1 when the database failed. */
int hx_stats_on_request(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out);

/* hx_waitlist.c: the wait list of referrals on hold (its table; created by hx_waitlist_init at
 * open). hx_waitlist_held, after a referral went (or stayed) on hold: its held handoffs are on
 * the wait list (arrival kept), the referrer is told when it first went on hold or when its
 * position or estimate changed (first: always), and an overdue one is escalated once. c is
 * the stored Case, hs its handoffs as derived. 0 or -1. */
int hx_waitlist_init(hx_booking_t *b);     /* 1: held referrals from before the list, not on it */
int hx_waitlist_held(hx_booking_t *b, const char *rid, const char *referrer, const char *ref, const Handoff__Case *c,
                     const char *why, bool first, bk_handoffs_t *hs, hx_outbox_t *out);
/* The referral left the wait list (booked). 0 or -1. */
int hx_waitlist_leave(hx_booking_t *b, const char *rid);
/* An on-hold handoff's wait-list fields as last reported (nothing when it is not on the list). */
void hx_waitlist_fill(hx_booking_t *b, const char *rid, bk_handoff_t *h);
/* Referrals on the wait list in its order (priority, stat first; then arrival), only those
 * waiting for a discipline in mask (bit 1 << discipline), each once, at most cap. It reads
 * about cap rows of the list's index, whatever the list's length. */
size_t hx_waitlist_order(hx_booking_t *b, unsigned mask, char (*ids)[32], size_t cap);
/* Referrals due to be escalated (on the list longer than their priority's bound, not yet
 * escalated), longest waiting first within each priority, stat first; at most cap. */
size_t hx_waitlist_due(hx_booking_t *b, char (*ids)[32], size_t cap);

/* hx_review.c: a Case whose decision needs review (recorded, sent to every reviewer), and a
 * reviewer's decision. 0, or -1 when the database failed. */
int hx_review_on_case(hx_booking_t *b, const hx_msg_t *in, const Handoff__Case *c, hx_outbox_t *out);
int hx_review_on_decision(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out);
/* hx_thread.c: a post to a referral's care thread from a clinic. 0, or -1 when the database
 * failed. */
int hx_thread_on_post(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out);
/* hx_thread.c: the summary a receiving clinic (in->from) wrote on completing its handoff,
 * posted to the referral's care thread as a "summary" and delivered to every participant.
 * text is checked by the caller. 0, or -1 when the database failed. */
int hx_thread_summary(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const char *rid, const char *referrer,
                      const char *text);

#endif
