/* hx_errors — a bounded list of input errors with field paths (see hx_errors.h). */
#include "hx_errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void hx_errors_clear(hx_errors_t *e)
{
    if (!e)
        return;
    e->count = 0;
    e->dropped = 0;
}

void hx_errors_add(hx_errors_t *e, const char *path, const char *fmt, ...)
{
    if (!e)
        return;
    if (e->count >= HX_ERRORS_MAX) {
        e->dropped++;
        return;
    }
    hx_error_t *it = &e->items[e->count++];
    snprintf(it->path, sizeof it->path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->why, sizeof it->why, fmt, ap);
    va_end(ap);
}

const char *hx_errors_join(const hx_errors_t *e, char *buf, size_t cap)
{
    size_t used = 0;
    if (!buf || cap == 0)
        return buf;
    buf[0] = '\0';
    if (!e)
        return buf;
    for (size_t i = 0; i < e->count && used < cap; i++) {
        const hx_error_t *it = &e->items[i];
        int n = snprintf(buf + used, cap - used, "%s%s%s%s", i ? "; " : "", it->path,
                         it->path[0] ? ": " : "", it->why);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (e->dropped && used < cap)
        snprintf(buf + used, cap - used, "%s(%zu more)", e->count ? "; " : "", e->dropped);
    return buf;
}
