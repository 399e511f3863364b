/* hx_refjson — referral JSON files <-> protobuf, and clinic-facing JSON for handoffs and statuses. */
#ifndef HX_REFJSON_H
#define HX_REFJSON_H
#include <jansson.h>
#include "referral.pb-c.h"
#include "hx_errors.h"

/* Converts a referral JSON object (format: docs/PROTOCOL.md, "Referral JSON") into a newly
 * allocated Referral (free with hx_referral_free). Checks types and enum spellings only;
 * every problem is added to errs with its path. Returns NULL when errs gained any error. */
Handoff__Referral *hx_referral_from_json(const json_t *j, hx_errors_t *errs);
/* Frees a Referral made by hx_referral_from_json or by handoff__referral__unpack. */
void hx_referral_free(Handoff__Referral *r);

/* Enum <-> text ("physiotherapy", "massage_therapy", "physician"; "routine".."stat";
 * "requested", "in-progress", ... as FHIR spells them). from_text returns 0 when unknown. */
const char *hx_discipline_text(Handoff__Discipline d);
Handoff__Discipline hx_discipline_from_text(const char *s);
const char *hx_priority_text(Handoff__Priority p);
Handoff__Priority hx_priority_from_text(const char *s);
const char *hx_status_text(Handoff__TaskStatus s);
/* The inverse of hx_status_text (0 when unknown), and consent ("given", "withheld"). */
Handoff__TaskStatus hx_status_from_text(const char *s);
const char *hx_consent_text(Handoff__Consent c);
Handoff__Consent hx_consent_from_text(const char *s);

/* Clinic-facing JSON views (new references; the caller decrefs). */
json_t *hx_booking_to_json(const Handoff__Booking *b);
json_t *hx_handoff_to_json(const Handoff__Handoff *h);
/* A status update; "status" is the referral's, "handoffs" each handoff's own (empty in
 * updates older than StatusUpdate.handoffs). */
json_t *hx_status_to_json(const Handoff__StatusUpdate *s);
/* {"discipline","status","clinic_id","therapist_id","therapist_name","event","reason"}. */
json_t *hx_handoff_status_to_json(const Handoff__HandoffStatus *h);
/* A triage decision as {"disciplines":[..],"priority":..,"red_flag":..,"emergency":..,
 * "reason":..,"rules":[..],"notes":[..],"needs_review":..} and, when not empty,
 * "not_understood":[..], "suggested":[..] and "evidence":[{"rule","source","words","fired",
 * "status","cue","snomed","snomed_display","note"}] (docs/TRIAGE.md). */
json_t *hx_decision_to_json(const Handoff__TriageDecision *d);
/* A Referral in the Referral JSON format accepted by hx_referral_from_json (fields
 * left at their defaults are omitted), so from_json(to_json(r)) gives r back. */
json_t *hx_referral_to_json(const Handoff__Referral *r);

#endif
