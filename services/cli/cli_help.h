/* cli_help — the clinic CLI's help texts: the overview (`handoff --help`) and one page per
 * command (`handoff help COMMAND`, `handoff COMMAND --help`), each with examples. */
#ifndef CLI_HELP_H
#define CLI_HELP_H

#include <stdio.h>

/* The options that are not settings (cli_config.h has those), as one table: main parses
 * them from it and the overview prints them from it. */
typedef enum {
    CLI_OPT_CONFIG,
    CLI_OPT_JSON,
    CLI_OPT_NO_VALIDATE,
    CLI_OPT_REASON,
    CLI_OPT_DISCIPLINE,
    CLI_OPT_DIR,
    CLI_OPT_FORMAT,
    CLI_OPT_DRY_RUN,
    CLI_OPT_ONCE,
    CLI_OPT_WAIT,
    CLI_OPT_AS,
    CLI_OPT_ASK,
    CLI_OPT_SUMMARY,
    CLI_OPT_ATTACH,
    CLI_OPT_OUT,
    CLI_OPT_TO,
    CLI_OPT_NEW_KEY,
    CLI_OPT_NEW_DATA_KEY,
    CLI_OPT_HELP,
    CLI_OPT_COUNT
} cli_opt_t;

typedef struct {
    const char *name;           /* without "--" */
    const char *arg;            /* the value's name; NULL: takes none */
    const char *help;           /* "\n" starts a further line */
} cli_flag_t;

extern const cli_flag_t CLI_FLAGS[CLI_OPT_COUNT];

/* The overview: commands, then the settings and options from their tables, exit codes,
 * examples. */
void cli_usage(FILE *f);
/* The page of cmd, or NULL when there is no such command. */
const char *cli_command_help(const char *cmd);
/* The commands, comma-separated (for "unknown command" messages). */
const char *cli_command_list(void);

#endif
