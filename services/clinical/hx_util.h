/* hx_util — small pure helpers shared by the clinical modules: calendar dates, clock times,
 * text limits and code spellings, and reading a JSON data file (hx_json_read, which returns
 * what jansson allocated). No state. */
#ifndef HX_UTIL_H
#define HX_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "hx_errors.h"

/* Limits on referral text, in characters (UTF-8 code points). The same limits are checked
 * on JSON input (hx_refjson) and on protobuf input from the network (hx_intake). */
#define HX_PERSON_NAME_MAX 200     /* names, email addresses */
#define HX_TEXT_MAX 4000    /* reason, history, diagnosis, current treatment, expectations */
#define HX_CODE_MAX 64      /* codes, dates, phone, ids, registration numbers */
#define HX_LIST_MAX 32      /* conditions, findings, preferred clinics, availability windows */
#define HX_ID_MAX 31        /* clinic and therapist ids: [a-z0-9-], 1..31 characters */

/* Days since 1970-01-01 of a proleptic Gregorian date (any year). */
int64_t hx_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The date of a day number (inverse of hx_days_from_civil). */
void hx_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
/* Days in month m (1..12) of year y, or 0 for a bad month. */
unsigned hx_days_in_month(int64_t y, unsigned m);
/* Day of the week of a day number: 1 = Monday .. 7 = Sunday (1970-01-01 was a Thursday). */
unsigned hx_weekday(int64_t days);

/* Parses exactly "YYYY-MM-DD" (year 0001..9999, a real calendar date) into days since
 * 1970-01-01. Returns 0, or -1 on any deviation. */
int hx_date_parse(const char *s, int64_t *days);
/* Parses exactly "HH:MM" (00:00..23:59, or 24:00 when allow_24) into minutes after
 * midnight. Returns 0 or -1. */
int hx_hhmm_parse(const char *s, bool allow_24, unsigned *minutes);

/* Number of UTF-8 code points in s (continuation bytes are not counted). */
size_t hx_utf8_chars(const char *s);
/* True when s is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
bool hx_utf8_valid(const char *s);
/* True for a non-empty code of [a-z0-9_] of at most HX_CODE_MAX characters. */
bool hx_is_code(const char *s);
/* True for a non-empty id of [a-z0-9-] of at most HX_ID_MAX characters. */
bool hx_is_id(const char *s);
/* Field paths for error messages, truncated to cap bytes: "base.key" (just "key" when base
 * is empty) and "base[i]". */
void hx_path_key(char *out, size_t cap, const char *base, const char *key);
void hx_path_index(char *out, size_t cap, const char *base, size_t i);
/* True when s is NULL, empty or only spaces/tabs/newlines. */
bool hx_is_blank(const char *s);

/* Reads JSON from the file `path`, or when path is NULL from `text` (named `what` in
 * errors). On failure adds one error (the file, or "line L, column C" with jansson's
 * reason) and returns NULL; duplicate keys are refused. */
json_t *hx_json_read(const char *path, const char *text, const char *what, hx_errors_t *errs);

#endif
