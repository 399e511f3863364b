/* cli_table — aligned text tables (see cli_table.h). */
#include "cli_table.h"

#include <stdlib.h>
#include <string.h>

struct cli_table {
    size_t ncols, nrows, cap_rows;
    char **cells;                   /* nrows * ncols, row-major; row 0 is the header */
    size_t width[CLI_TABLE_MAX_COLS], max[CLI_TABLE_MAX_COLS];
    char align[CLI_TABLE_MAX_COLS];
};

size_t cli_text_width(const char *s)
{
    size_t n = 0;
    for (; s && *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Bytes of s that hold its first cols characters. */
static size_t prefix_bytes(const char *s, size_t cols)
{
    const char *p = s;
    while (*p && cols) {
        p++;
        while (((unsigned char)*p & 0xC0) == 0x80)
            p++;
        cols--;
    }
    return (size_t)(p - s);
}

/* A copy of s with control characters as spaces, cut to max characters ("…" at the end). */
static char *clean_copy(const char *s, size_t max)
{
    s = s ? s : "";
    size_t len = strlen(s);
    int cut = max && cli_text_width(s) > max;
    if (cut)
        len = prefix_bytes(s, max - 1);
    char *out = malloc(len + 4);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    if (cut)
        memcpy(out + len, "\xe2\x80\xa6", 3), len += 3;
    out[len] = '\0';
    return out;
}

static int push_row(cli_table_t *t, const char *const *cells)
{
    if (t->nrows == t->cap_rows) {
        size_t cap = t->cap_rows ? 2 * t->cap_rows : 16;
        char **more = realloc(t->cells, cap * t->ncols * sizeof *more);
        if (!more)
            return -1;
        t->cells = more;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t k = 0; k < t->ncols; k++) {
        if (!(row[k] = clean_copy(cells[k], t->nrows ? t->max[k] : 0))) {
            while (k-- > 0)
                free(row[k]);
            return -1;
        }
    }
    for (size_t k = 0; k < t->ncols; k++) {
        size_t w = cli_text_width(row[k]);
        if (w > t->width[k])
            t->width[k] = w;
    }
    t->nrows++;
    return 0;
}

cli_table_t *cli_table_new(size_t ncols, const char *const *headers, const char *align)
{
    if (ncols == 0 || ncols > CLI_TABLE_MAX_COLS)
        return NULL;
    cli_table_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    for (size_t k = 0; k < ncols; k++)
        t->align[k] = align && align[k] == 'r' ? 'r' : 'l';
    if (push_row(t, headers) != 0) {
        free(t->cells);
        free(t);
        return NULL;
    }
    return t;
}

void cli_table_cap(cli_table_t *t, size_t col, size_t max)
{
    if (col < t->ncols)
        t->max[col] = max;
}

int cli_table_add(cli_table_t *t, const char *const *cells)
{
    return push_row(t, cells);
}

size_t cli_table_rows(const cli_table_t *t)
{
    return t->nrows - 1;
}

void cli_table_print(const cli_table_t *t, FILE *out)
{
    for (size_t r = 0; r < t->nrows; r++) {
        char **row = t->cells + r * t->ncols;
        size_t last = t->ncols - 1;
        while (last > 0 && !row[last][0])
            last--;                             /* no trailing blanks */
        for (size_t k = 0; k <= last; k++) {
            size_t pad = t->width[k] - cli_text_width(row[k]);
            if (t->align[k] == 'r')
                fprintf(out, "%*s", (int)pad, "");
            fputs(row[k], out);
            if (k < last) {
                if (t->align[k] != 'r')
                    fprintf(out, "%*s", (int)pad, "");
                fputs("  ", out);
            }
        }
        fputc('\n', out);
    }
}

void cli_table_destroy(cli_table_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_table_t *t = *self_p;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
    *self_p = NULL;
}
