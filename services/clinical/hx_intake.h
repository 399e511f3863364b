/* hx_intake — what a referral must carry before the network takes it, and its network-wide id. */
#ifndef HX_INTAKE_H
#define HX_INTAKE_H
#include <stdint.h>
#include <stddef.h>
#include "referral.pb-c.h"
#include "hx_errors.h"
#include "hx_registration.h"

#define HX_REFERRAL_ID_LEN 18   /* "R-" + 16 characters, see hx_referral_id */

/* Checks every required field of r (patient name, birth date, a contact; referrer name,
 * discipline, registration body and number; reason; consent given; referral date).
 * Condition and finding codes are optional (the clinical content may be words only) but
 * each must be a code, without duplicates. The referrer's registration body must be one reg
 * lists for the referrer's province (ON when it names none) and discipline, its number fit
 * that body's pattern; a body that does not fit is refused naming those that would.
 * Adds one error per bad field, with its path. Returns the number of errors added (0 = valid). */
int hx_intake_check(const Handoff__Referral *r, const hx_registration_t *reg, hx_errors_t *errs);
/* hx_intake_check with the built-in registration file (hx_registration_builtin). */
int hx_intake_validate(const Handoff__Referral *r, hx_errors_t *errs);
/* "college" or "association": what the referrer's registration body is for its province and
 * discipline (what intake records in Referrer.registration_kind), or NULL when reg does not
 * list it. */
const char *hx_intake_registration_kind(const Handoff__Referral *r, const hx_registration_t *reg);

/* The 16-byte message id of a referral submission: BLAKE2b (libsodium crypto_generichash)
 * of "referral\0" clinic "\0" ref, so resubmitting the same referral is the same message. */
void hx_submission_id(const char *clinic, const char *ref, uint8_t id[16]);

/* The network-wide referral id for a submission id: "R-" followed by the first 10 bytes of
 * id in Crockford base32 (16 characters). out must hold HX_REFERRAL_ID_LEN + 1 bytes. */
void hx_referral_id(const uint8_t id[16], char *out);

#endif
