/* hx_import — reads referrals for `handoff import` and the portal's import from CSV (libcsv;
 * a header row of Referral JSON field paths such as patient.birth_date) or newline-delimited
 * JSON (one Referral JSON object per line), and checks each one as `handoff submit` does.
 * Pure: no broker, no store. The columns are documented in docs/OPERATIONS.md, "Importing referrals". */
#ifndef HX_IMPORT_H
#define HX_IMPORT_H
#include <jansson.h>
#include <stddef.h>
#include "hx_errors.h"
#include "hx_registration.h"
#include "referral.pb-c.h"

typedef enum { HX_FORMAT_AUTO, HX_FORMAT_CSV, HX_FORMAT_NDJSON } hx_format_t;

typedef struct {
    char field[96];             /* "patient.birth_date", "conditions[1]", "row" */
    char why[200];
} hx_row_error_t;

typedef struct {
    size_t line;                /* where the row starts in the file (1-based) */
    json_t *json;               /* the referral as Referral JSON; NULL when the row could not be read */
    char ref[80];               /* its "ref", "" when it has none */
    hx_row_error_t *errs;      /* what is wrong with it (n_errs of them) */
    size_t n_errs;
} hx_row_t;

typedef struct {
    hx_format_t format;
    size_t n;
    hx_row_t *rows;
} hx_rows_t;

/* The format of path: flag ("csv", "ndjson", "jsonl"; NULL for none) or else its
 * extension (.csv, .ndjson, .jsonl). Returns 0, or -1 with err set. */
int hx_import_format(const char *path, const char *flag, hx_format_t *out, char *err, size_t cap);
/* Reads every row of path. Returns 0 (rows with problems carry them), or -1 with err set
 * when the file as a whole cannot be used: unreadable, an empty or bad CSV header (unknown
 * column, no "ref" column, a column twice), or CSV that does not parse (with its line). */
int hx_import_read(const char *path, hx_format_t format, hx_rows_t *out, char *err, size_t cap);
void hx_rows_free(hx_rows_t *rows);
/* Adds a problem to a row. */
void hx_row_error(hx_row_t *r, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The CSV columns, comma-separated, for messages and --help. */
const char *hx_import_columns(void);

/* Checks a Referral JSON object as `handoff submit` does: types and spellings, then (unless
 * no_validate) a "ref" and every rule intake applies, the referrer's registration against reg
 * (NULL: the built-in registration file). Returns the Referral (free with
 * hx_referral_free), or NULL with every problem in errs. */
Handoff__Referral *hx_referral_check(const json_t *j, const hx_registration_t *reg, int no_validate,
                                      hx_errors_t *errs);

#endif
