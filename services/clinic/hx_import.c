/* hx_import — CSV and NDJSON referral files for `handoff import` and the portal's import (see hx_import.h). */
#include "hx_import.h"
#include "hx_intake.h"
#include "hx_refjson.h"

#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_MAX_BYTES (1u << 20)       /* a referral is far smaller; the broker's frame is 1 MiB */
#define ROWS_MAX 1000000u

typedef enum { COL_STRING, COL_LIST, COL_BOOL, COL_UINT, COL_AVAILABILITY } col_kind_t;

static const struct {
    const char *path;
    col_kind_t kind;
} COLUMNS[] = {
    {"ref", COL_STRING},
    {"patient.given_name", COL_STRING},
    {"patient.family_name", COL_STRING},
    {"patient.birth_date", COL_STRING},
    {"patient.phone", COL_STRING},
    {"patient.email", COL_STRING},
    {"patient.health_card", COL_STRING},
    {"patient.language", COL_STRING},
    {"referrer.name", COL_STRING},
    {"referrer.discipline", COL_STRING},
    {"referrer.registration_body", COL_STRING},
    {"referrer.registration_number", COL_STRING},
    {"referrer.clinic_id", COL_STRING},
    {"referrer.phone", COL_STRING},
    {"referrer.email", COL_STRING},
    {"referrer.province", COL_STRING},
    {"reason", COL_STRING},
    {"conditions", COL_LIST},
    {"findings", COL_LIST},
    {"history", COL_STRING},
    {"diagnosis", COL_STRING},
    {"current_treatment", COL_STRING},
    {"priority", COL_STRING},
    {"consent", COL_STRING},
    {"referral_date", COL_STRING},
    {"expectations", COL_STRING},
    {"preferences.clinic_ids", COL_LIST},
    {"preferences.language", COL_STRING},
    {"preferences.virtual_ok", COL_BOOL},
    {"preferences.massage_minutes", COL_UINT},
    {"preferences.availability", COL_AVAILABILITY},
};
#define N_COLUMNS (sizeof COLUMNS / sizeof *COLUMNS)

const char *hx_import_columns(void)
{
    static char list[1024];
    if (!list[0]) {
        size_t len = 0;
        for (size_t i = 0; i < N_COLUMNS && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", COLUMNS[i].path);
    }
    return list;
}

void hx_row_error(hx_row_t *r, const char *field, const char *fmt, ...)
{
    hx_row_error_t *more = realloc(r->errs, (r->n_errs + 1) * sizeof *more);
    if (!more)
        return;
    r->errs = more;
    hx_row_error_t *e = &more[r->n_errs++];
    snprintf(e->field, sizeof e->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof e->why, fmt, ap);
    va_end(ap);
}

void hx_rows_free(hx_rows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        json_decref(rows->rows[i].json);
        free(rows->rows[i].errs);
    }
    free(rows->rows);
    rows->rows = NULL;
    rows->n = 0;
}

int hx_import_format(const char *path, const char *flag, hx_format_t *out, char *err, size_t cap)
{
    if (flag) {
        if (strcmp(flag, "csv") == 0)
            *out = HX_FORMAT_CSV;
        else if (strcmp(flag, "ndjson") == 0 || strcmp(flag, "jsonl") == 0)
            *out = HX_FORMAT_NDJSON;
        else {
            snprintf(err, cap, "--format: must be csv or ndjson, got '%.100s'", flag);
            return -1;
        }
        return 0;
    }
    const char *dot = strrchr(path, '.');
    if (dot && strcasecmp(dot, ".csv") == 0)
        *out = HX_FORMAT_CSV;
    else if (dot && (strcasecmp(dot, ".ndjson") == 0 || strcasecmp(dot, ".jsonl") == 0))
        *out = HX_FORMAT_NDJSON;
    else {
        snprintf(err, cap, "%.300s: cannot tell the format from the name (.csv, .ndjson or .jsonl); "
                 "say --format csv or --format ndjson", path);
        return -1;
    }
    return 0;
}

static hx_row_t *new_row(hx_rows_t *rows, size_t *cap, size_t line)
{
    if (rows->n == *cap) {
        size_t more = *cap ? 2 * *cap : 64;
        hx_row_t *r = realloc(rows->rows, more * sizeof *r);
        if (!r)
            return NULL;
        rows->rows = r;
        *cap = more;
    }
    hx_row_t *r = &rows->rows[rows->n++];
    memset(r, 0, sizeof *r);
    r->line = line;
    return r;
}

static void row_ref(hx_row_t *r)
{
    const char *ref = json_string_value(json_object_get(r->json, "ref"));
    snprintf(r->ref, sizeof r->ref, "%s", ref ? ref : "");
}

/* ---- NDJSON ------------------------------------------------------------------------------ */

static int read_ndjson(FILE *f, hx_rows_t *rows, char *err, size_t cap)
{
    char *line = NULL;
    size_t lcap = 0, rcap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t i = 0;
        while (i < (size_t)len && isspace((unsigned char)line[i]))
            i++;
        if (i == (size_t)len)
            continue;                           /* blank lines are allowed */
        if (rows->n >= ROWS_MAX) {
            snprintf(err, cap, "line %zu: more than %u referrals in one file; split it", lineno, ROWS_MAX);
            rc = -1;
            break;
        }
        hx_row_t *r = new_row(rows, &rcap, lineno);
        if (!r) {
            snprintf(err, cap, "out of memory at line %zu", lineno);
            rc = -1;
            break;
        }
        if ((size_t)len > LINE_MAX_BYTES) {
            hx_row_error(r, "row", "longer than %u bytes", LINE_MAX_BYTES);
            continue;
        }
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j) {
            hx_row_error(r, "row", "not JSON: column %d: %s", jerr.column, jerr.text);
            continue;
        }
        if (!json_is_object(j)) {
            hx_row_error(r, "row", "must be one JSON object (a referral), got a JSON %s",
                          json_is_array(j) ? "array" : json_is_string(j) ? "string" : "value");
            json_decref(j);
            continue;
        }
        r->json = j;
        row_ref(r);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, cap, "read error after line %zu: %s", lineno, strerror(errno));
        rc = -1;
    }
    free(line);
    return rc;
}

/* ---- CSV --------------------------------------------------------------------------------- */

typedef struct {
    hx_rows_t *rows;
    size_t rcap;
    size_t line;                /* the physical line being fed */
    size_t rec_line;            /* where the current record started */
    int between;                /* no field of a new record seen yet */
    int header_done;
    size_t ncols;
    int col[64];                /* header column -> COLUMNS index */
    char **fields;              /* the current record */
    size_t nfields, fcap;
    char err[1400];
} csv_ctx_t;

static void on_field(void *s, size_t len, void *data)
{
    csv_ctx_t *x = data;
    if (x->between) {
        x->between = 0;
        x->rec_line = x->line;
    }
    if (x->nfields == x->fcap) {
        size_t more = x->fcap ? 2 * x->fcap : 32;
        char **f = realloc(x->fields, more * sizeof *f);
        if (!f) {
            snprintf(x->err, sizeof x->err, "out of memory at line %zu", x->line);
            return;
        }
        x->fields = f;
        x->fcap = more;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        snprintf(x->err, sizeof x->err, "out of memory at line %zu", x->line);
        return;
    }
    memcpy(copy, s ? s : "", s ? len : 0);
    copy[s ? len : 0] = '\0';
    x->fields[x->nfields++] = copy;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The object at the dotted path's parent inside root, created as needed; *leaf is the
 * last part. */
static json_t *parent_of(json_t *root, const char *path, char *leaf, size_t cap)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        snprintf(leaf, cap, "%s", path);
        return root;
    }
    char head[64];
    snprintf(head, sizeof head, "%.*s", (int)(dot - path), path);
    json_t *o = json_object_get(root, head);
    if (!o) {
        o = json_object();
        json_object_set_new(root, head, o);
    }
    snprintf(leaf, cap, "%s", dot + 1);
    return o;
}

static const char *const DAYS[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* "mon 09:00-17:00; 3 13:00-18:00" -> [{"day":1,"from":"09:00","to":"17:00"}, ...] */
static json_t *availability(char *text, hx_row_t *r, const char *path)
{
    json_t *a = json_array();
    size_t k = 0;
    for (char *save = NULL, *item = strtok_r(text, ";", &save); item; item = strtok_r(NULL, ";", &save), k++) {
        item = trim(item);
        char day[16], from[8], to[8];
        int used = 0;
        if (sscanf(item, "%15s %5[0-9:]-%5[0-9:]%n", day, from, to, &used) != 3 || item[used] != '\0') {
            hx_row_error(r, path, "item %zu: must be DAY HH:MM-HH:MM (DAY 1-7 or mon..sun), items separated "
                          "by ';'; got '%.60s'", k + 1, item);
            continue;
        }
        long d = 0;
        for (size_t i = 0; i < 7; i++)
            if (strncasecmp(day, DAYS[i], 3) == 0 && strlen(day) >= 3)
                d = (long)i + 1;
        if (!d) {
            char *end;
            d = strtol(day, &end, 10);
            if (*end || d < 1 || d > 7) {
                hx_row_error(r, path, "item %zu: day must be 1 (Monday) to 7 (Sunday) or mon..sun, got '%s'",
                              k + 1, day);
                continue;
            }
        }
        json_array_append_new(a, json_pack("{s:I, s:s, s:s}", "day", (json_int_t)d, "from", from, "to", to));
    }
    return a;
}

/* Turns one CSV record into a row: its Referral JSON from the columns' paths. */
static void csv_record(csv_ctx_t *x)
{
    if (x->rows->n >= ROWS_MAX) {
        snprintf(x->err, sizeof x->err, "line %zu: more than %u referrals in one file; split it", x->rec_line,
                 ROWS_MAX);
        return;
    }
    hx_row_t *r = new_row(x->rows, &x->rcap, x->rec_line);
    if (!r) {
        snprintf(x->err, sizeof x->err, "out of memory at line %zu", x->rec_line);
        return;
    }
    if (x->nfields != x->ncols) {
        hx_row_error(r, "row", "%zu field(s), but the header has %zu columns", x->nfields, x->ncols);
        return;
    }
    json_t *root = json_object();
    for (size_t k = 0; k < x->ncols; k++) {
        char *v = trim(x->fields[k]);
        if (!*v)
            continue;                           /* an empty cell: the field is left out */
        const char *path = COLUMNS[x->col[k]].path;
        char leaf[64];
        json_t *parent = parent_of(root, path, leaf, sizeof leaf);
        json_t *val = NULL;
        switch (COLUMNS[x->col[k]].kind) {
        case COL_STRING:
            val = json_string(v);
            if (!val)
                hx_row_error(r, path, "not valid UTF-8");
            break;
        case COL_LIST:
            val = json_array();
            for (char *save = NULL, *item = strtok_r(v, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
                item = trim(item);
                if (*item)
                    json_array_append_new(val, json_string(item));
            }
            break;
        case COL_BOOL:
            if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
                val = json_true();
            else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
                val = json_false();
            else
                hx_row_error(r, path, "must be true or false (or yes/no, 1/0), got '%.60s'", v);
            break;
        case COL_UINT: {
            char *end;
            errno = 0;
            unsigned long n = strtoul(v, &end, 10);
            if (*end || errno || !isdigit((unsigned char)v[0]) || n > 100000)
                hx_row_error(r, path, "must be a whole number, got '%.60s'", v);
            else
                val = json_integer((json_int_t)n);
            break;
        }
        case COL_AVAILABILITY:
            val = availability(v, r, path);
            break;
        }
        if (val)
            json_object_set_new(parent, leaf, val);
    }
    r->json = root;
    row_ref(r);
}

static void on_record(int term, void *data)
{
    (void)term;
    csv_ctx_t *x = data;
    if (x->err[0])
        goto out;
    if (!x->header_done) {
        x->header_done = 1;
        x->ncols = x->nfields;
        if (x->ncols > sizeof x->col / sizeof *x->col) {
            snprintf(x->err, sizeof x->err, "line %zu (header): %zu columns, at most %zu", x->rec_line, x->ncols,
                     sizeof x->col / sizeof *x->col);
            goto out;
        }
        int have_ref = 0;
        for (size_t k = 0; k < x->ncols; k++) {
            char *name = x->fields[k];
            if (k == 0 && (unsigned char)name[0] == 0xEF && (unsigned char)name[1] == 0xBB &&
                (unsigned char)name[2] == 0xBF)
                name += 3;                      /* a byte-order mark, as spreadsheets write */
            name = trim(name);
            int found = -1;
            for (size_t i = 0; i < N_COLUMNS; i++)
                if (strcmp(COLUMNS[i].path, name) == 0)
                    found = (int)i;
            if (found < 0) {
                snprintf(x->err, sizeof x->err, "line %zu (header): column %zu: unknown column '%.60s'; the "
                         "columns are: %s", x->rec_line, k + 1, name, hx_import_columns());
                goto out;
            }
            for (size_t j = 0; j < k; j++)
                if (x->col[j] == found) {
                    snprintf(x->err, sizeof x->err, "line %zu (header): column '%s' appears twice (columns %zu "
                             "and %zu)", x->rec_line, name, j + 1, k + 1);
                    goto out;
                }
            x->col[k] = found;
            have_ref |= strcmp(name, "ref") == 0;
        }
        if (!have_ref)
            snprintf(x->err, sizeof x->err, "line %zu (header): no 'ref' column: each referral needs this "
                     "clinic's own number for it (it makes re-importing safe)", x->rec_line);
    } else {
        csv_record(x);
    }
out:
    for (size_t k = 0; k < x->nfields; k++)
        free(x->fields[k]);
    x->nfields = 0;
    x->between = 1;
}

static int read_csv(FILE *f, hx_rows_t *rows, char *err, size_t cap)
{
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    csv_ctx_t x = {.rows = rows, .between = 1};
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while (!x.err[0] && (len = getline(&line, &lcap, f)) >= 0) {
        x.line++;
        if (x.between)
            x.rec_line = x.line;
        if (csv_parse(&p, line, (size_t)len, on_field, on_record, &x) != (size_t)len) {
            snprintf(err, cap, "line %zu: not valid CSV: %s (a quote inside an unquoted field, or text after "
                     "a closing quote)", x.line, csv_strerror(csv_error(&p)));
            rc = -1;
            break;
        }
    }
    if (rc == 0 && !x.err[0] && csv_fini(&p, on_field, on_record, &x) != 0) {
        snprintf(err, cap, "line %zu: not valid CSV: a quoted field is never closed (it starts at line %zu)",
                 x.line, x.rec_line);
        rc = -1;
    }
    if (rc == 0 && x.err[0]) {
        snprintf(err, cap, "%s", x.err);
        rc = -1;
    }
    if (rc == 0 && !x.header_done) {
        snprintf(err, cap, "no header row: the first line names the columns (%s)", hx_import_columns());
        rc = -1;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, cap, "read error after line %zu: %s", x.line, strerror(errno));
        rc = -1;
    }
    for (size_t k = 0; k < x.nfields; k++)
        free(x.fields[k]);
    free(x.fields);
    free(line);
    csv_free(&p);
    return rc;
}

int hx_import_read(const char *path, hx_format_t format, hx_rows_t *out, char *err, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->format = format;
    char why[1400];
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = format == HX_FORMAT_CSV ? read_csv(f, out, why, sizeof why) : read_ndjson(f, out, why, sizeof why);
    fclose(f);
    if (rc != 0) {
        snprintf(err, cap, "%s: %s", path, why);
        hx_rows_free(out);
    }
    return rc;
}

Handoff__Referral *hx_referral_check(const json_t *j, const hx_registration_t *reg, int no_validate,
                                      hx_errors_t *errs)
{
    Handoff__Referral *r = hx_referral_from_json(j, errs);
    if (r && !no_validate) {
        if (!r->ref[0])
            hx_errors_add(errs, "ref", "required: this clinic's own number for the referral");
        hx_intake_check(r, reg ? reg : hx_registration_builtin(), errs);
    }
    if (errs->count) {
        hx_referral_free(r);
        return NULL;
    }
    return r;
}
