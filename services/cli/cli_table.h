/* cli_table — aligned text tables for the clinic CLI: columns as wide as their widest cell
 * (counted in UTF-8 characters), two spaces apart, the last column unpadded; numbers may be
 * right-aligned. Pure: builds a table in memory and prints it to a FILE. */
#ifndef CLI_TABLE_H
#define CLI_TABLE_H
#include <stddef.h>
#include <stdio.h>

#define CLI_TABLE_MAX_COLS 16

typedef struct cli_table cli_table_t;

/* A table with ncols (1..CLI_TABLE_MAX_COLS) columns named by headers; align holds one
 * character per column, 'l' or 'r' (NULL: all left). NULL when out of memory. */
cli_table_t *cli_table_new(size_t ncols, const char *const *headers, const char *align);
/* Caps a column at max characters (0: no cap); longer cells end in "…". */
void cli_table_cap(cli_table_t *t, size_t col, size_t max);
/* Appends a row of ncols cells (copied; NULL is ""). Control characters become spaces.
 * Returns 0, or -1 when out of memory. */
int cli_table_add(cli_table_t *t, const char *const *cells);
/* Rows added so far. */
size_t cli_table_rows(const cli_table_t *t);
/* Prints the header line and every row, each line ending in "\n". */
void cli_table_print(const cli_table_t *t, FILE *out);
void cli_table_destroy(cli_table_t **self_p);

/* Width of s in terminal columns, counting UTF-8 characters. */
size_t cli_text_width(const char *s);

#endif
