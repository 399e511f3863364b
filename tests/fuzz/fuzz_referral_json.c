/* Fuzz target: bytes as a referral JSON file through the CLI's parser and intake's checks. */
#include <jansson.h>
#include <stdint.h>

#include "hx_intake.h"
#include "hx_refjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return 0;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_from_json(j, &errs);
    if (r) {
        hx_intake_validate(r, &errs);
        hx_referral_free(r);
    }
    json_decref(j);
    return 0;
}
