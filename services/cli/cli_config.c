/* cli_config — settings from flags, environment and an INI file (see cli_config.h). */
#include "cli_config.h"
#include "hx_wire.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_ENDPOINT, KIND_NAME, KIND_PATH, KIND_U32 } kind_t;

/* The settings: flag and INI name, environment variable, default, kind and bounds, and the
 * help line `handoff --help` prints (cli_config_help). */
static const struct {
    const char *name, *env, *def;
    kind_t kind;
    uint32_t min, max;
    const char *what;           /* KIND_U32: the unit, in errors */
    const char *arg, *help;
    const char *shown_def;      /* the default as the help shows it, when not def */
} SETTINGS[CLI_SET_COUNT] = {
    [CLI_SET_BROKER] = {"broker", "HANDOFF_BROKER", "tcp://127.0.0.1:5555", KIND_ENDPOINT, 0, 0, NULL, "ENDPOINT",
                        "the broker, or ENDPOINT[,ENDPOINT...] (the nodes of a replicated broker)", NULL},
    [CLI_SET_CLINIC] = {"clinic", "HANDOFF_CLINIC", NULL, KIND_NAME, 0, 0, NULL, "ID", "this clinic's id", NULL},
    [CLI_SET_ADMIN] = {"admin", "HANDOFF_ADMIN", "operator", KIND_NAME, 0, 0, NULL, "NAME",
                       "the operator's name for top, dlq, health", NULL},
    [CLI_SET_HOME] = {"home", "HANDOFF_HOME", NULL, KIND_PATH, 0, 0, NULL, "DIR",
                      "where this clinic's received messages are kept", "~/.handoff"},
    [CLI_SET_TIMEOUT_MS] = {"timeout-ms", "HANDOFF_TIMEOUT_MS", "3000", KIND_U32, 100, 600000, "milliseconds", "N",
                            "wait per attempt for the broker (100-600000)", NULL},
    [CLI_SET_SERVER_KEY] = {"server-key", "HANDOFF_SERVER_KEY", NULL, KIND_PATH, 0, 0, NULL, "FILE",
                            "CURVE: the broker's public key", "~/.handoff/broker.pub if it exists"},
    [CLI_SET_KEY] = {"key", "HANDOFF_KEY", NULL, KIND_PATH, 0, 0, NULL, "FILE",
                     "CURVE: this clinic's (reviewer's, operator's) secret key, mode 0600",
                     "~/.handoff/ID.key if it exists"},
    [CLI_SET_INTERVAL_MS] = {"interval-ms", "HANDOFF_INTERVAL_MS", "1000", KIND_U32, 100, 3600000, "milliseconds", "N",
                             "how often watch and top look again (100-3600000)", NULL},
    [CLI_SET_WINDOW] = {"window", "HANDOFF_WINDOW", "64", KIND_U32, 1, 1000, "requests in flight", "N",
                        "import: submissions in flight at once (1-1000)", NULL},
    [CLI_SET_REVIEWER] = {"reviewer", "HANDOFF_REVIEWER", NULL, KIND_NAME, 0, 0, NULL, "NAME",
                          "review: this reviewer's name (a key of role reviewer)", NULL},
    [CLI_SET_REGISTRATION] = {"registration", "HANDOFF_REGISTRATION", NULL, KIND_PATH, 0, 0, NULL, "FILE",
                              "submit, import: the registration bodies referrers are checked against", "built in"},
    [CLI_SET_STORE_KEY] = {"store-key", "HANDOFF_STORE_KEY", NULL, KIND_PATH, 0, 0, NULL, "FILE",
                           "the key the clinic's store is sealed with (64 hex characters)",
                           "~/.handoff/ID.store.key, made when missing"},
    [CLI_SET_DATA_KEY] = {"data-key", "HANDOFF_DATA_KEY", NULL, KIND_PATH, 0, 0, NULL, "FILE",
                          "without --store-key: the store key derived from the portal's --data-key", NULL},
};

void cli_config_init(cli_config_t *c)
{
    memset(c, 0, sizeof *c);
    for (int s = 0; s < CLI_SET_COUNT; s++) {
        c->v[s].from = CLI_FROM_DEFAULT;
        snprintf(c->v[s].where, sizeof c->v[s].where, "default");
        c->v[s].value = SETTINGS[s].def ? strdup(SETTINGS[s].def) : NULL;
    }
}

void cli_config_free(cli_config_t *c)
{
    for (int s = 0; s < CLI_SET_COUNT; s++) {
        free(c->v[s].value);
        c->v[s].value = NULL;
    }
}

int cli_set_from_name(const char *name)
{
    for (int s = 0; name && s < CLI_SET_COUNT; s++)
        if (strcmp(SETTINGS[s].name, name) == 0)
            return s;
    return -1;
}

const char *cli_set_name(cli_set_t s)
{
    return (unsigned)s < CLI_SET_COUNT ? SETTINGS[s].name : "?";
}

const char *cli_set_env(cli_set_t s)
{
    return (unsigned)s < CLI_SET_COUNT ? SETTINGS[s].env : "?";
}

/* Why value is not an endpoint a client can connect to (tcp://HOST:PORT, tcp://[IPv6]:PORT,
 * tcp://SOURCE;HOST:PORT or ipc://PATH), or a comma-separated list of them (the nodes of a
 * replicated broker), or NULL when it is. */
static const char *endpoint_problem(const char *value, char *why, size_t cap)
{
    return hx_endpoints_split(value, NULL, why, cap) < 0 ? why : NULL;
}

/* Why value is not good for s, or NULL when it is. */
static const char *check(cli_set_t s, const char *value, char *why, size_t cap)
{
    size_t len = strlen(value);
    switch (SETTINGS[s].kind) {
    case KIND_ENDPOINT:
        return endpoint_problem(value, why, cap);
    case KIND_NAME:
        if (!hx_name_valid(value)) {
            snprintf(why, cap, "must be 1 to %d characters of [A-Za-z0-9._-], got '%.200s'", HX_NAME_MAX, value);
            return why;
        }
        return NULL;
    case KIND_PATH:
        if (len == 0 || len > 4000) {
            snprintf(why, cap, "must be a path of 1 to 4000 characters%s", len ? "" : ", got an empty value");
            return why;
        }
        return NULL;
    case KIND_U32: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (!len || *end || errno || value[0] == '-' || value[0] == '+' || v < SETTINGS[s].min ||
            v > SETTINGS[s].max) {
            snprintf(why, cap, "must be a whole number of %s from %u to %u, got '%.200s'", SETTINGS[s].what,
                     SETTINGS[s].min, SETTINGS[s].max, value);
            return why;
        }
        return NULL;
    }
    }
    return NULL;
}

/* Sets s from a source of precedence `from` (described by where) unless a source of higher
 * precedence already did. */
static int set(cli_config_t *c, cli_set_t s, const char *value, cli_from_t from, const char *where, char *err,
               size_t cap)
{
    char why[400];
    if (check(s, value, why, sizeof why)) {
        if (from == CLI_FROM_FLAG)
            snprintf(err, cap, "%s: %s", where, why);
        else
            snprintf(err, cap, "%s: %s: %s", where, SETTINGS[s].name, why);
        return -1;
    }
    cli_value_t *v = &c->v[s];
    if (from < v->from)
        return 0;
    char *copy = strdup(value);
    if (!copy) {
        snprintf(err, cap, "%s: out of memory", where);
        return -1;
    }
    free(v->value);
    v->value = copy;
    v->from = from;
    snprintf(v->where, sizeof v->where, "%s", where);
    return 0;
}

int cli_config_flag(cli_config_t *c, cli_set_t s, const char *value, char *err, size_t cap)
{
    char where[64];
    snprintf(where, sizeof where, "--%s", SETTINGS[s].name);
    return set(c, s, value ? value : "", CLI_FROM_FLAG, where, err, cap);
}

int cli_config_env(cli_config_t *c, const char *(*get)(const char *name), char *err, size_t cap)
{
    for (int s = 0; s < CLI_SET_COUNT; s++) {
        const char *value = get(SETTINGS[s].env);
        if (value && *value && set(c, (cli_set_t)s, value, CLI_FROM_ENV, SETTINGS[s].env, err, cap) != 0)
            return -1;
    }
    return 0;
}

int cli_config_default(cli_config_t *c, cli_set_t s, const char *value, const char *where)
{
    cli_value_t *v = &c->v[s];
    if (v->from != CLI_FROM_DEFAULT || v->value)
        return 0;
    if (!(v->value = strdup(value)))
        return -1;
    snprintf(v->where, sizeof v->where, "%s", where);
    return 0;
}

/* ---- the INI file ------------------------------------------------------------------------- */

typedef struct {
    cli_config_t *c;
    FILE *f;
    const char *path;
    int line;
    char err[1024];
} ini_ctx_t;

/* fgets that counts lines (inih does not report them to the handler) and flags over-long
 * lines instead of letting inih split them. */
static char *config_reader(char *str, int num, void *stream)
{
    ini_ctx_t *x = stream;
    if (!fgets(str, num, x->f))
        return NULL;
    x->line++;
    size_t len = strlen(str);
    if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(x->f)) {
        int ch;
        while ((ch = fgetc(x->f)) != EOF && ch != '\n')
            ;
        if (!x->err[0])
            snprintf(x->err, sizeof x->err, "%s:%d: a line longer than %d characters", x->path, x->line, num - 2);
        str[0] = '\0';
    }
    return str;
}

/* Levenshtein distance of two short strings (for "did you mean"). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static int config_line(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *x = user;
    if (x->err[0])
        return 1;                               /* keep the first error */
    if (section[0] && strcmp(section, "handoff") != 0) {
        snprintf(x->err, sizeof x->err,
                 "%s:%d: unknown section [%.100s]: settings go before any section or under [handoff]", x->path,
                 x->line, section);
        return 0;
    }
    int s = cli_set_from_name(name);
    if (s < 0) {
        const char *near = NULL;
        size_t best = 3;
        for (int k = 0; k < CLI_SET_COUNT; k++) {
            size_t dist = distance(name, SETTINGS[k].name);
            if (dist < best)
                best = dist, near = SETTINGS[k].name;
        }
        char hint[64] = "";
        if (near)
            snprintf(hint, sizeof hint, "did you mean '%s'? ", near);
        snprintf(x->err, sizeof x->err,
                 "%s:%d: unknown setting '%.100s' (%sthe file may set broker, clinic, admin, home, timeout-ms, "
                 "server-key, key, interval-ms, window)", x->path, x->line, name, hint);
        return 0;
    }
    char where[400], v[4096];
    snprintf(where, sizeof where, "%s:%d", x->path, x->line);
    size_t len = strlen(value);
    if (len >= 2 && ((value[0] == '"' && value[len - 1] == '"') || (value[0] == '\'' && value[len - 1] == '\'')))
        snprintf(v, sizeof v, "%.*s", (int)(len - 2), value + 1);
    else
        snprintf(v, sizeof v, "%s", value);
    if (set(x->c, (cli_set_t)s, v, CLI_FROM_FILE, where, x->err, sizeof x->err) != 0)
        return 0;
    return 1;
}

int cli_config_file(cli_config_t *c, const char *path, char *err, size_t cap)
{
    ini_ctx_t x = {.c = c, .path = path};
    x.f = fopen(path, "r");
    if (!x.f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(config_reader, &x, config_line, &x);
    fclose(x.f);
    if (x.err[0]) {
        snprintf(err, cap, "%s", x.err);
        return -1;
    }
    if (rc > 0) {
        snprintf(err, cap, "%s:%d: not a 'name = value' line or a [section]", path, rc);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, cap, "%s: cannot be read%s", path, rc == -2 ? " (out of memory)" : "");
        return -1;
    }
    return 0;
}

const char *cli_config_get(const cli_config_t *c, cli_set_t s)
{
    return c->v[s].value;
}

uint32_t cli_config_u32(const cli_config_t *c, cli_set_t s)
{
    const char *v = c->v[s].value;
    return v ? (uint32_t)strtoul(v, NULL, 10) : 0;
}

void cli_config_help(FILE *f)
{
    for (int k = 0; k < CLI_SET_COUNT; k++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", SETTINGS[k].name, SETTINGS[k].arg);
        const char *def = SETTINGS[k].shown_def ? SETTINGS[k].shown_def : SETTINGS[k].def;
        fprintf(f, "  %-20s  %s [%s%s%s]\n", flag, SETTINGS[k].help, SETTINGS[k].env, def ? ", " : "",
                def ? def : "");
    }
}
