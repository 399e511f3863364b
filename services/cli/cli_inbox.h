/* cli_inbox — `handoff inbox`: every referral this clinic takes part in, grouped the way
 * clinic staff think of them, from the messages in its local store. Pure: fed unpacked
 * messages in the order they happened, it prints tables or builds JSON.
 *
 * A clinic sees a referral from one or both sides: as the RECEIVER of a handoff (one row
 * per handoff booking: referral and discipline) and as the REFERRER that sent it (one row
 * per referral). The groups (docs/OPERATIONS.md, "The clinic CLI"):
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
 * follows the referral's status (derived from its handoffs), and keeps each handoff's. */
#ifndef CLI_INBOX_H
#define CLI_INBOX_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "referral.pb-c.h"

typedef enum { CLI_GROUP_NEW, CLI_GROUP_PENDING, CLI_GROUP_BOOKED, CLI_GROUP_DECLINED, CLI_GROUP_COUNT } cli_group_t;

/* The group of a referral seen from one side with this latest status and event (status 0
 * with received: a handoff and nothing since; with !received: submitted, no answer yet). */
cli_group_t cli_inbox_group(bool received, Handoff__TaskStatus status, const char *event);
/* "NEW", "PENDING BOOKING", "BOOKED", "DECLINED" and the JSON keys "new",
 * "pending_booking", "booked", "declined". */
const char *cli_group_title(cli_group_t g);
const char *cli_group_key(cli_group_t g);
/* How a status reads to staff: "declined" for the event decline, "redirected" for a handoff
 * this clinic redirected (cancelled, event redirect), "submitted" for none, otherwise the
 * FHIR status ("ready", "on-hold", ...). */
const char *cli_inbox_status_text(Handoff__TaskStatus status, const char *event);

/* The handoff of s that clinic holds (of discipline d, unless d is 0), or NULL (none, or an
 * update older than StatusUpdate.handoffs). */
const Handoff__HandoffStatus *cli_own_handoff(const Handoff__StatusUpdate *s, const char *clinic,
                                              Handoff__Discipline d);
/* Each handoff of s as staff read it: "physiotherapy in-progress at lakeside; massage_therapy
 * on-hold" ("" for an update without handoffs); truncated to cap. */
void cli_handoffs_text(const Handoff__StatusUpdate *s, char *out, size_t cap);

typedef struct cli_inbox cli_inbox_t;

/* An empty inbox for clinic (borrowed; must outlive it). */
cli_inbox_t *cli_inbox_new(const char *clinic);
void cli_inbox_destroy(cli_inbox_t **self_p);
/* A referral this clinic submitted (from its `sent` table); patient may be "". */
int cli_inbox_add_sent(cli_inbox_t *in, const char *referral_id, const char *ref, const char *patient,
                       uint64_t at_ms);
/* A handoff received at at_ms, and a status update received (both in time order). */
int cli_inbox_add_handoff(cli_inbox_t *in, const Handoff__Handoff *h, uint64_t at_ms);
int cli_inbox_add_status(cli_inbox_t *in, const Handoff__StatusUpdate *s, uint64_t at_ms);

/* Each group: a "TITLE (n)" line and its table, a blank line between groups. Relative
 * times against now_ms. */
void cli_inbox_print(const cli_inbox_t *in, FILE *out, uint64_t now_ms);
/* {"new":[...],"pending_booking":[...],"booked":[...],"declined":[...]} (a new reference). */
json_t *cli_inbox_json(const cli_inbox_t *in);
/* Rows in group g. */
size_t cli_inbox_count(const cli_inbox_t *in, cli_group_t g);

#endif
