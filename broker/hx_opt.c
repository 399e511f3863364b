/* hx_opt — checked command-line and environment values. */
#include "hx_opt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int hx_opt_u32(const char *prog, const char *name, const char *value, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = value && *value ? strtoull(value, &end, 10) : 0;
    if (!value || !*value || *end || errno || value[0] == '-' || v < min || v > max) {
        fprintf(stderr, "%s: %s: must be an integer from %u to %u, got '%s'\n", prog, name, min, max,
                value ? value : "");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

const char *hx_opt_pick(const char *value, const char *env, const char *def)
{
    if (value)
        return value;
    const char *e = env ? getenv(env) : NULL;
    return e && *e ? e : def;
}
