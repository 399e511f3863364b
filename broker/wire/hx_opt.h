/* hx_opt — every program's options as one table: flag, environment variable, default,
 * bounds and help text. The table is parsed (flag, else environment, else default; numbers
 * checked against their bounds) and `--help` is printed from it, so the two cannot disagree. */
#ifndef HX_OPT_H
#define HX_OPT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    HX_OPT_TEXT,                /* a value, checked by the program */
    HX_OPT_U32,                 /* a decimal integer in [min, max], max at most UINT32_MAX */
    HX_OPT_FLAG,                /* no value: given or not */
    HX_OPT_U64                  /* a decimal integer in [min, max], digits only */
} hx_opt_kind_t;

typedef struct {
    const char *name;           /* the flag without "--", e.g. "heartbeat-ms" */
    hx_opt_kind_t kind;
    const char *env;            /* e.g. "HANDOFF_HEARTBEAT_MS", or NULL */
    const char *def;            /* the default, or NULL for none */
    uint64_t min, max;          /* HX_OPT_U32, HX_OPT_U64 */
    const char *arg;            /* the value's name in the help, e.g. "N", "FILE" */
    const char *help;           /* what it does; "\n" starts a further line */
} hx_opt_t;

typedef struct {
    const char *text;           /* from the flag, the environment or the default; NULL: none */
    uint32_t u32;               /* HX_OPT_U32: the checked number */
    uint64_t u64;               /* HX_OPT_U64: the checked number */
    bool on;                    /* HX_OPT_FLAG: given */
    bool given;                 /* set by the flag or the environment, not by the default */
    bool from_env;              /* set by the environment (no flag) */
} hx_opt_val_t;

/* Parses argv against the n options of `opts` into vals (vals[i] for opts[i]). Returns 0;
 * 1 after printing the help (-h, --help: head, the table, tail) to stdout; 2 after printing
 * "<prog>: --name: <why>" (or an unknown flag, or a stray argument) to stderr. */
int hx_opt_parse(const char *prog, const hx_opt_t *opts, size_t n, int argc, char **argv, const char *head,
                 const char *tail, hx_opt_val_t *vals);
/* The table as help lines: "  --name ARG   help [ENV, default]". */
void hx_opt_help(FILE *f, const hx_opt_t *opts, size_t n);

/* Parses a decimal integer in [min, max] given for setting `name`; on error prints
 * "<prog>: <name>: <why>" to stderr and returns -1. */
int hx_opt_u32(const char *prog, const char *name, const char *value, uint32_t min, uint32_t max, uint32_t *out);
/* The same for a 64-bit integer; digits only (no sign, no blanks), up to UINT64_MAX. */
int hx_opt_u64(const char *prog, const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out);
/* value if not NULL, else getenv(env) if set and non-empty, else def. */
const char *hx_opt_pick(const char *value, const char *env, const char *def);

#endif
