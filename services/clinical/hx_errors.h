/* hx_errors — a list of input errors, each naming the field (its path) and what was wrong. */
#ifndef HX_ERRORS_H
#define HX_ERRORS_H
#include <stddef.h>

#define HX_ERRORS_MAX 64

typedef struct {
    char path[96];      /* e.g. "patient.birth_date", "conditions[2]", "line 14" */
    char why[160];      /* e.g. "must be a date YYYY-MM-DD" */
} hx_error_t;

typedef struct {
    size_t count;       /* errors recorded (at most HX_ERRORS_MAX kept) */
    size_t dropped;     /* errors beyond HX_ERRORS_MAX, counted only */
    hx_error_t items[HX_ERRORS_MAX];
} hx_errors_t;

/* Empties the list. */
void hx_errors_clear(hx_errors_t *e);
/* Records one error; printf-style reason. */
void hx_errors_add(hx_errors_t *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes "path: why; path: why" into buf (always NUL-terminated); returns buf. */
const char *hx_errors_join(const hx_errors_t *e, char *buf, size_t cap);

#endif
