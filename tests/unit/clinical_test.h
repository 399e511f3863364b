/* clinical_test — helpers the clinical unit suites share: data files from the source tree,
 * and questions about an hx_errors_t. */
#ifndef HX_CLINICAL_TEST_H
#define HX_CLINICAL_TEST_H
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_errors.h"

/* The project file rel, under HX_SOURCE_DIR (CTest sets it); the caller frees. */
static inline char *src_path(const char *rel)
{
    const char *root = getenv("HX_SOURCE_DIR");
    cr_assert(root, "HX_SOURCE_DIR must name the project root (CTest sets it)");
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

/* All errors as one line, for assertion messages. */
static inline const char *joined(const hx_errors_t *e)
{
    static char buf[8192];
    return hx_errors_join(e, buf, sizeof buf);
}

/* True when e has an error at exactly path whose reason contains why_part. */
static inline bool has_error(const hx_errors_t *e, const char *path, const char *why_part)
{
    for (size_t i = 0; i < e->count; i++)
        if (!strcmp(e->items[i].path, path) && strstr(e->items[i].why, why_part))
            return true;
    return false;
}

#endif
