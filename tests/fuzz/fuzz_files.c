/* Fuzz target: bytes as each data file an operator edits — the triage rules, the therapist
 * directory, the broker's allow-list and its revoked record. Each is refused with a reason or
 * accepted, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hx_curve.h"
#include "hx_schedule.h"
#include "hx_triage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_rules_t *rules = hx_rules_parse(text, &errs);
    hx_rules_destroy(&rules);
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_parse(text, &errs);
    hx_directory_destroy(&d);
    char err[256];
    hx_allow_t *a = hx_allow_parse(text, err, sizeof err);
    hx_allow_destroy(&a);
    a = hx_revoked_parse(text, err, sizeof err);
    hx_allow_destroy(&a);
    free(text);
    return 0;
}
