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

/* Clinic-facing JSON views (new references; the caller decrefs). */
json_t *hx_booking_to_json(const Handoff__Booking *b);
json_t *hx_handoff_to_json(const Handoff__Handoff *h);
json_t *hx_status_to_json(const Handoff__StatusUpdate *s);

#endif
