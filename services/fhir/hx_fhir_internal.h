/* hx_fhir_internal — small helpers the library's files share (not part of its interface). */
#ifndef HX_FHIR_INTERNAL_H
#define HX_FHIR_INTERNAL_H
#include "hx_fhir.h"

/* The discipline's code in urn:handoff:discipline ("physiotherapy", "massage-therapy",
 * "physician"), NULL for 0 or an unknown value; and back (0 when s is none of them). */
const char *hx_fhir_discipline_code(Handoff__Discipline d);
Handoff__Discipline hx_fhir_discipline_from_code(const char *s);

/* Task.businessStatus as the inbox words a status and its last event: "declined" (event
 * decline), "redirected" (cancelled, event redirect), "submitted" (status 0), else the FHIR
 * status ("ready", "on-hold", ...). */
const char *hx_fhir_business_status(Handoff__TaskStatus st, const char *event);

/* Task.status for a network status: 0 (submitted, nothing since) reads "requested". */
const char *hx_fhir_task_status(Handoff__TaskStatus st);

/* {"reference": "Type/id"} (a new reference). */
json_t *hx_fhir_ref(const char *type, const char *id);

/* Sets o[key] to the string s when s is neither NULL nor "" (FHIR has no empty strings). */
void hx_fhir_set_str(json_t *o, const char *key, const char *s);

/* Whether s is a full FHIR date "YYYY-MM-DD" (any year from 0001, a real calendar day). */
bool hx_fhir_date_valid(const char *s);

/* Whether s is a FHIR code: non-empty, no leading, trailing or doubled whitespace. */
bool hx_fhir_code_valid(const char *s);

/* Whether s (NULL: no) is one of the NULL-terminated list. */
bool hx_fhir_one_of(const char *s, const char *const *list);

#endif
