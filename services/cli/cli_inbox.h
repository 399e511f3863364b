/* cli_inbox — `handoff inbox` as the CLI shows it: the clinic library's grouped inbox
 * (hx_inbox.h, where the groups, the folders and their mapping are) printed as tables, or as
 * the CLI's JSON. */
#ifndef CLI_INBOX_H
#define CLI_INBOX_H
#include "hx_inbox.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* Each group: a "TITLE (n)" line and its table, a blank line between groups. Relative
 * times against now_ms. */
void cli_inbox_print(const hx_inbox_t *in, FILE *out, uint64_t now_ms);
/* `handoff inbox --json`: hx_inbox_json without the portal's row keys (folder, needs_reply,
 * born), so the fields docs/OPERATIONS.md lists stay the whole document (a new reference). */
json_t *cli_inbox_json(const hx_inbox_t *in);

#endif
