/* cli_config — the clinic CLI's settings from flags, HANDOFF_* environment variables and an
 * INI config file (libinih), with precedence flag > environment > file > default. Every
 * value is checked when it is read, and an error names the setting, where the value came
 * from (--flag, HANDOFF_VAR or file:line) and what is wrong with it. */
#ifndef CLI_CONFIG_H
#define CLI_CONFIG_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CLI_SET_BROKER,
    CLI_SET_CLINIC,
    CLI_SET_ADMIN,
    CLI_SET_HOME,
    CLI_SET_TIMEOUT_MS,
    CLI_SET_SERVER_KEY,
    CLI_SET_KEY,
    CLI_SET_INTERVAL_MS,
    CLI_SET_WINDOW,
    CLI_SET_REVIEWER,
    CLI_SET_REGISTRATION,
    CLI_SET_STORE_KEY,
    CLI_SET_DATA_KEY,
    CLI_SET_COUNT
} cli_set_t;

typedef enum { CLI_FROM_DEFAULT, CLI_FROM_FILE, CLI_FROM_ENV, CLI_FROM_FLAG } cli_from_t;

typedef struct {
    char *value;                /* NULL: not set anywhere and no default */
    cli_from_t from;
    char where[320];            /* "--broker", "HANDOFF_BROKER", "/home/a/.handoff/config:3", "default" */
} cli_value_t;

typedef struct {
    cli_value_t v[CLI_SET_COUNT];
} cli_config_t;

/* Sets every setting to its default (broker tcp://127.0.0.1:5555, admin operator,
 * timeout-ms 3000, interval-ms 1000, window 64; the others unset). */
void cli_config_init(cli_config_t *c);
void cli_config_free(cli_config_t *c);

/* The setting named name ("timeout-ms"), or -1. */
int cli_set_from_name(const char *name);
const char *cli_set_name(cli_set_t s);
/* Its environment variable ("HANDOFF_TIMEOUT_MS"). */
const char *cli_set_env(cli_set_t s);

/* A value given as --NAME on the command line. Returns 0, or -1 with err set. */
int cli_config_flag(cli_config_t *c, cli_set_t s, const char *value, char *err, size_t cap);
/* Every HANDOFF_* variable that get (getenv, or a stand-in for tests) returns non-empty,
 * where no flag set the value. Returns 0, or -1 with err set (the first bad one). */
int cli_config_env(cli_config_t *c, const char *(*get)(const char *name), char *err, size_t cap);
/* The INI file at path: "name = value" lines before any section or under [handoff];
 * '#' and ';' start comments. Sets what neither a flag nor the environment set. Returns 0,
 * or -1 with err set ("path:line: ..."): unknown setting or section, bad value, a line
 * that is not "name = value", a line over 200 characters, a file that cannot be read. */
int cli_config_file(cli_config_t *c, const char *path, char *err, size_t cap);

/* A default found at run time (a key file that exists in the home directory): sets s to value
 * with where saying so, unless a flag, variable or file set it. Returns 0, or -1 when out of
 * memory. */
int cli_config_default(cli_config_t *c, cli_set_t s, const char *value, const char *where);

/* The settings as help lines, from the same table that parses them:
 * "  --broker ENDPOINT     the broker [HANDOFF_BROKER, tcp://127.0.0.1:5555]". */
void cli_config_help(FILE *f);

const char *cli_config_get(const cli_config_t *c, cli_set_t s);
/* A numeric setting (checked when it was set). */
uint32_t cli_config_u32(const cli_config_t *c, cli_set_t s);

#endif
