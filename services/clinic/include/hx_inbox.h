/* hx_inbox — every referral a clinic takes part in, grouped the way clinic staff think of
 * them, from the messages in its local store: the model the `handoff inbox` command and the
 * web portal share, so that they can never group a referral differently. Pure apart from
 * hx_inbox_load: fed unpacked messages in the order they happened, it answers counts and
 * JSON; nothing here prints (the CLI's tables are cli_inbox.h's).
 *
 * A clinic sees a referral from one or both sides: as the RECEIVER of a handoff (one row
 * per handoff booking: referral and discipline) and as the REFERRER that sent it (one row
 * per referral). The groups (docs/OPERATIONS.md, "The clinic CLI", Inbox groups):
 *
 *   side      latest status / event                           group
 *   received  ready (the handoff, nothing since)              NEW
 *   received  accepted, in-progress, completed                BOOKED
 *   received  declined by this clinic (event decline),
 *             redirected by it (cancelled, event redirect),
 *             cancelled, rejected, failed, entered-in-error   DECLINED
 *   sent      submitted (no answer yet), draft, requested,
 *             received (also after a receiver declined: it is
 *             being booked again), on-hold                    PENDING BOOKING
 *   sent      ready, accepted, in-progress, completed         BOOKED
 *   sent      cancelled (revoked), rejected, failed,
 *             entered-in-error                                DECLINED
 *
 * A received row follows its own handoff's status (StatusUpdate.handoffs, the entry this
 * clinic holds), never the referral's: a physiotherapy clinic whose patient is in care stays
 * BOOKED, in-progress, when the massage handoff of the same referral is declined. Updates
 * older than that field carry the booking's status in `status`, and are read so. A sent row
 * follows the referral's status (derived from its handoffs), and keeps each handoff's.
 *
 * The folders refine the groups with the care thread, for the portal; each row is in one,
 * the first that holds in this order:
 *
 *   row                                                       folder
 *   group DECLINED                                            Declined
 *   status completed                                          Completed
 *   needs reply: the latest post of the referral's care
 *   thread (by time, then as added) awaits a reply and was
 *   not asked by this clinic                                  Needs reply
 *   group NEW                                                 New
 *   group PENDING BOOKING                                     Pending booking
 *   status in-progress                                        In care
 *   otherwise (group BOOKED)                                  Booked
 *
 * Posts may be added before or after the rows of their referral: they are kept by referral
 * and read when a row's folder is asked for. A post added twice (its post_id) counts once. */
#ifndef HX_INBOX_H
#define HX_INBOX_H
#include "hx_clinic.h"
#include "referral.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { HX_GROUP_NEW, HX_GROUP_PENDING, HX_GROUP_BOOKED, HX_GROUP_DECLINED, HX_GROUP_COUNT } hx_group_t;

typedef enum {
    HX_FOLDER_NEW,
    HX_FOLDER_NEEDS_REPLY,
    HX_FOLDER_PENDING,
    HX_FOLDER_BOOKED,
    HX_FOLDER_IN_CARE,
    HX_FOLDER_DECLINED,
    HX_FOLDER_COMPLETED,
    HX_FOLDER_COUNT
} hx_folder_t;

/* The group of a referral seen from one side with this latest status and event (status 0
 * with received: a handoff and nothing since; with !received: submitted, no answer yet). */
hx_group_t hx_inbox_group(bool received, Handoff__TaskStatus status, const char *event);
/* "NEW", "PENDING BOOKING", "BOOKED", "DECLINED" and the JSON keys "new",
 * "pending_booking", "booked", "declined" ("?" for another value). */
const char *hx_group_title(hx_group_t g);
const char *hx_group_key(hx_group_t g);
/* "new", "needs_reply", "pending_booking", "booked", "in_care", "declined", "completed" and
 * "New", "Needs reply", "Pending booking", "Booked", "In care", "Declined", "Completed" ("?"
 * for another value). */
const char *hx_folder_key(hx_folder_t f);
const char *hx_folder_title(hx_folder_t f);
/* The folder whose key is key, or HX_FOLDER_COUNT (unknown, or NULL). */
hx_folder_t hx_folder_from_key(const char *key);
/* How a status reads to staff: "declined" for the event decline, "redirected" for a handoff
 * this clinic redirected (cancelled, event redirect), "submitted" for none, otherwise the
 * FHIR status ("ready", "on-hold", ...). */
const char *hx_inbox_status_text(Handoff__TaskStatus status, const char *event);

/* The handoff of s that clinic holds (of discipline d, unless d is 0), or NULL (none, or an
 * update older than StatusUpdate.handoffs). */
const Handoff__HandoffStatus *hx_own_handoff(const Handoff__StatusUpdate *s, const char *clinic,
                                             Handoff__Discipline d);
/* Each handoff of s as staff read it: "physiotherapy in-progress at lakeside; massage_therapy
 * on-hold" ("" for an update without handoffs); truncated to cap. */
void hx_handoffs_text(const Handoff__StatusUpdate *s, char *out, size_t cap);

typedef struct hx_inbox hx_inbox_t;

/* An empty inbox for clinic (copied), or NULL (out of memory). */
hx_inbox_t *hx_inbox_new(const char *clinic);
void hx_inbox_destroy(hx_inbox_t **self_p);
/* A referral this clinic submitted (from its `sent` table); patient may be "". 0 or
 * HX_ENOMEM, as for each add below. */
int hx_inbox_add_sent(hx_inbox_t *in, const char *referral_id, const char *ref, const char *patient,
                      uint64_t at_ms);
/* A handoff received at at_ms, and a status update received (both in time order). */
int hx_inbox_add_handoff(hx_inbox_t *in, const Handoff__Handoff *h, uint64_t at_ms);
int hx_inbox_add_status(hx_inbox_t *in, const Handoff__StatusUpdate *s, uint64_t at_ms);
/* A post of a referral's care thread received at at_ms (in any order with the rest). */
int hx_inbox_add_post(hx_inbox_t *in, const Handoff__ThreadPost *p, uint64_t at_ms);

/* The inbox of clinic c (hx_clinic_name) from its store: the referrals it sent, the handoffs
 * and status updates it received, in the order they happened, and its care threads' posts.
 * 0 with *out set (the caller destroys it), or an HX_E* code with *out NULL and why in
 * hx_clinic_error(c). */
int hx_inbox_load(hx_clinic_t *c, hx_inbox_t **out);

/* {"new":[...],"pending_booking":[...],"booked":[...],"declined":[...]}, each group's rows
 * oldest update first (a new reference). A row: referral_id, ref, side ("received"|"sent"),
 * status (hx_inbox_status_text; a received handoff with nothing since is "ready"), event,
 * patient (null when unknown), born ("" when unknown), other_clinic, bookings, since_ms,
 * updated_ms, reason, folder (hx_folder_key), needs_reply; a received row also the whole
 * handoff, a sent row each handoff's latest status (handoffs). */
json_t *hx_inbox_json(const hx_inbox_t *in);
/* Every row as above in one array, most recently updated first (a new reference). */
json_t *hx_inbox_rows_json(const hx_inbox_t *in);
/* Rows in group g; rows in folder f. */
size_t hx_inbox_count(const hx_inbox_t *in, hx_group_t g);
size_t hx_inbox_folder_count(const hx_inbox_t *in, hx_folder_t f);

#endif
