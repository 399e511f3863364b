/* Fuzz target: bytes as a Referral payload from the network, decoded and checked by intake,
 * then shown as a clinic would see it. */
#include <jansson.h>
#include <stdint.h>

#include "hx_intake.h"
#include "hx_refjson.h"
#include "referral.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Handoff__Referral *r = handoff__referral__unpack(NULL, size, data);
    if (r) {
        hx_errors_t errs;
        hx_errors_clear(&errs);
        hx_intake_validate(r, &errs);
        handoff__referral__free_unpacked(r, NULL);
    }
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, size, data);
    if (s) {
        json_decref(hx_status_to_json(s));
        handoff__status_update__free_unpacked(s, NULL);
    }
    Handoff__Handoff *h = handoff__handoff__unpack(NULL, size, data);
    if (h) {
        json_decref(hx_handoff_to_json(h));
        handoff__handoff__free_unpacked(h, NULL);
    }
    return 0;
}
