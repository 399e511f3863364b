/* hx_opt — checked command-line and environment values for every program. */
#ifndef HX_OPT_H
#define HX_OPT_H
#include <stdint.h>

/* Parses a decimal integer in [min, max] given for setting `name`; on error prints
 * "<prog>: <name>: <why>" to stderr and returns -1. */
int hx_opt_u32(const char *prog, const char *name, const char *value, uint32_t min, uint32_t max, uint32_t *out);
/* value if not NULL, else getenv(env) if set and non-empty, else def. */
const char *hx_opt_pick(const char *value, const char *env, const char *def);

#endif
