/* cli_help — the clinic CLI's help texts: the overview (`handoff --help`) and one page per
 * command (`handoff help COMMAND`, `handoff COMMAND --help`), each with examples. */
#ifndef CLI_HELP_H
#define CLI_HELP_H

/* The overview. */
const char *cli_usage(void);
/* The page of cmd, or NULL when there is no such command. */
const char *cli_command_help(const char *cmd);
/* The commands, comma-separated (for "unknown command" messages). */
const char *cli_command_list(void);

#endif
