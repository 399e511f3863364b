/* cli_top — `handoff top`: one screen of the broker's queues, mailboxes, dead letters,
 * totals and peers from a stats sample (hx_client_stats), with rates from the sample before
 * it. Pure: a function of two samples and the time between them. */
#ifndef CLI_TOP_H
#define CLI_TOP_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Checks that a sample has the documented shape (docs/PROTOCOL.md, "stats"): 0, or -1 with
 * err naming the first field that is missing or of the wrong type. */
int cli_top_check(const json_t *sample, char *err, size_t cap);
/* Writes the screen for cur (taken at cur_ms, wall clock) to out. prev (taken dt_ms before)
 * gives the rates; NULL or dt_ms 0 shows "-" for them. broker names the endpoint. Both
 * samples must have passed cli_top_check. */
void cli_top_render(FILE *out, const char *broker, const json_t *cur, uint64_t cur_ms, const json_t *prev,
                    uint64_t dt_ms);

#endif
