/* The clinic commands of `handoff`: submit, import, inbox, handoffs, status, watch and the
 * lifecycle changes. The store, the mailbox sync and the requests are the clinic library's
 * (hx_clinic.h); this file reads the command line and prints. */
#include "cli_cmd.h"
#include "cli_fmt.h"
#include "hx_import.h"
#include "cli_inbox.h"
#include "cli_progress.h"
#include "cli_table.h"
#include "hx_errors.h"
#include "hx_refjson.h"
#include "hx_thread_rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* text with every byte that is not printable ASCII as '?': what an untrusted sender named
 * (a message type) is printed, never its control characters. */
static const char *printable(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    for (; text && text[n] && n + 1 < cap; n++)
        out[n] = text[n] >= 0x20 && text[n] < 0x7f ? text[n] : '?';
    out[n] = '\0';
    return out;
}

/* A message the clinic library dropped (its sender does not issue its type), named on stderr. */
static void report_dropped(void *ud, const hx_msg_t *m, const char *why)
{
    (void)ud;
    char hex[2 * HX_ID_LEN + 1], type[HX_TYPE_MAX + 1], from[HX_NAME_MAX + 1], shown[512];
    hx_id_hex(m->id, hex);
    fprintf(stderr, "handoff: dropped %s %s from %s:%s: %s\n", printable(m->type, type, sizeof type), hex,
            m->from_kind == HX_TO_SERVICE ? "service" : "mailbox", printable(m->from, from, sizeof from),
            printable(why, shown, sizeof shown));
}

int cli_sync_store(cli_t *c, hx_clinic_sync_t *s)
{
    hx_clinic_sync_t plain = {0};
    if (!s)
        s = &plain;
    s->on_dropped = report_dropped;
    int rc = hx_clinic_sync(c->store, s);
    return rc ? cli_clinic_failure(c, rc) : EXIT_OK;
}

/* ---- submit ----------------------------------------------------------------------------- */

/* The registration file the settings name, read once into c->registration (none set: the
 * built-in one is used): EXIT_OK, or EXIT_USAGE after saying why it was refused. */
static int registration_load(cli_t *c)
{
    const char *path = cli_config_get(&c->cfg, CLI_SET_REGISTRATION);
    if (!path || c->registration || c->no_validate)
        return EXIT_OK;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    c->registration = hx_registration_load(path, &errs);
    if (c->registration)
        return EXIT_OK;
    char why[2048];
    fprintf(stderr, "handoff: registration file %s (from %s) refused: %s\n", path,
            c->cfg.v[CLI_SET_REGISTRATION].where, hx_errors_join(&errs, why, sizeof why));
    return EXIT_USAGE;
}

static int load_referral(const cli_t *c, const char *file, Handoff__Referral **out)
{
    json_error_t jerr;
    json_t *j = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        fprintf(stderr, "%s: line %d, column %d: %s\n", file, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_check(j, c->registration, c->no_validate, &errs);
    json_decref(j);
    if (!r) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s: %s: %s\n", file, errs.items[i].path, errs.items[i].why);
        if (errs.dropped)
            fprintf(stderr, "%s: and %zu more\n", file, errs.dropped);
        return -1;
    }
    *out = r;
    return 0;
}

int cmd_submit(cli_t *c, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "handoff: submit needs at least one FILE.json (see handoff help submit)\n");
        return EXIT_USAGE;
    }
    int rc = registration_load(c), src;
    if (rc != EXIT_OK)
        return rc;
    json_t *results = json_array();
    for (int i = 0; i < argc; i++) {
        Handoff__Referral *r = NULL;
        if (load_referral(c, argv[i], &r)) {
            rc = EXIT_DATAERR;
            continue;
        }
        if ((src = hx_clinic_connect(c->store))) {
            hx_referral_free(r);
            rc = cli_clinic_failure(c, src);
            break;
        }
        char rid[HX_REFERRAL_ID_LEN + 1];
        if ((src = hx_clinic_submit(c->store, r, argv[i], rid))) {
            fprintf(stderr, "%s: %s\n", argv[i], hx_clinic_error(c->store));
            rc = cli_exit_for(src);
            hx_referral_free(r);
            continue;
        }
        if (c->json)
            json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "referral_id", rid, "ref", r->ref, "file",
                                                     argv[i]));
        else
            printf("%s  accepted  %s (ref %s)\n", rid, argv[i], r->ref);
        hx_referral_free(r);
    }
    if (c->json)
        cli_print_json(results);
    else
        json_decref(results);
    return rc;
}

/* ---- import ----------------------------------------------------------------------------- */

typedef enum { ROW_BAD, ROW_TO_SEND, ROW_ALREADY, ROW_SUBMITTED, ROW_REFUSED } row_state_t;

typedef struct {
    row_state_t state;
    Handoff__Referral *r;
    char rid[HX_REFERRAL_ID_LEN + 1];
} import_row_t;

static const char *row_result(row_state_t s, int dry_run)
{
    switch (s) {
    case ROW_TO_SEND: return dry_run ? "would_submit" : "not_sent";
    case ROW_ALREADY: return "already_accepted";
    case ROW_SUBMITTED: return "submitted";
    default: return "failed";
    }
}

/* One chunk of an import on its way: which rows, their referrals and where they came from. */
typedef struct {
    hx_rows_t *rows;
    const size_t *idx;          /* row of each referral in the chunk */
} import_chunk_t;

static void import_refused(void *ud, size_t i, const char *why)
{
    import_chunk_t *ch = ud;
    hx_row_error(&ch->rows->rows[ch->idx[i]], "row", "the broker refused it: %s", why);
}

/* Sends the rows in todo (indexes into rows) with up to c->window in flight, in chunks so
 * that progress can be drawn; the clinic library records each accepted one. Returns EXIT_OK,
 * or EXIT_UNREACHABLE when the broker stopped answering, EXIT_DENIED when a new connection's
 * key was refused (the rest stay ROW_TO_SEND). */
static int import_send(cli_t *c, const char *file, hx_rows_t *rows, import_row_t *st, size_t *todo, size_t n_todo)
{
    size_t chunk = 4 * (size_t)c->window;
    chunk = chunk < 64 ? 64 : chunk > HX_MAX_BATCH ? HX_MAX_BATCH : chunk;
    Handoff__Referral **refs = calloc(chunk, sizeof *refs);
    char (*where)[4300] = calloc(chunk, sizeof *where);
    const char **sources = calloc(chunk, sizeof *sources);
    hx_sent_state_t *sent = calloc(chunk, sizeof *sent);
    if (!refs || !where || !sources || !sent) {
        free(refs), free(where), free(sources), free(sent);
        fprintf(stderr, "handoff: import: out of memory\n");
        return EXIT_FAIL;
    }
    cli_progress_t p;
    cli_progress_start(&p, stderr, isatty(STDERR_FILENO), "import", n_todo, cli_now_ms());
    int rc = EXIT_OK;
    size_t done = 0;
    for (size_t off = 0; off < n_todo && rc == EXIT_OK; off += chunk) {
        size_t n = n_todo - off < chunk ? n_todo - off : chunk;
        for (size_t k = 0; k < n; k++) {
            size_t i = todo[off + k];
            refs[k] = st[i].r;
            snprintf(where[k], sizeof where[k], "%s:%zu", file, rows->rows[i].line);
            sources[k] = where[k];
        }
        import_chunk_t ch = {rows, todo + off};
        int src = hx_clinic_submit_batch(c->store, refs, sources, n, c->window, sent, import_refused, &ch);
        for (size_t k = 0; k < n; k++) {
            row_state_t *s = &st[todo[off + k]].state;
            *s = sent[k] == HX_SENT_ACCEPTED ? ROW_SUBMITTED : sent[k] == HX_SENT_REFUSED ? ROW_REFUSED : *s;
            done += sent[k] != HX_SENT_NOT_YET;
        }
        if (src) {
            fprintf(stderr, "handoff: import: %s\n", hx_clinic_error(c->store));
            rc = cli_exit_for(src);
        }
        cli_progress_update(&p, done, cli_now_ms());
    }
    cli_progress_finish(&p, cli_now_ms());
    free(refs), free(where), free(sources), free(sent);
    return rc;
}

static void import_summary_json(cli_t *c, const char *file, hx_rows_t *rows, import_row_t *st, size_t *count)
{
    json_t *refs = json_array(), *errs = json_array();
    for (size_t i = 0; i < rows->n; i++) {
        hx_row_t *r = &rows->rows[i];
        if (st[i].state != ROW_BAD)
            json_array_append_new(refs, json_pack("{s:I, s:s, s:s, s:s}", "line", (json_int_t)r->line, "ref", r->ref,
                                                  "referral_id", st[i].rid, "result",
                                                  row_result(st[i].state, c->dry_run)));
        for (size_t k = 0; k < r->n_errs; k++)
            json_array_append_new(errs, json_pack("{s:I, s:s, s:s, s:s}", "line", (json_int_t)r->line, "ref", r->ref,
                                                  "field", r->errs[k].field, "reason", r->errs[k].why));
    }
    cli_print_json(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:o}", "file", file, "format",
                             rows->format == HX_FORMAT_CSV ? "csv" : "ndjson", "rows", (json_int_t)rows->n,
                             "submitted", (json_int_t)count[ROW_SUBMITTED], "already_accepted",
                             (json_int_t)count[ROW_ALREADY], "failed",
                             (json_int_t)(count[ROW_BAD] + count[ROW_REFUSED]), "not_sent",
                             (json_int_t)(c->dry_run ? 0 : count[ROW_TO_SEND]), "dry_run", c->dry_run, "referrals",
                             refs, "errors", errs));
}

static void import_failed_rows(hx_rows_t *rows)
{
    static const char *const head[] = {"LINE", "REF", "FIELD", "WHY"};
    cli_table_t *t = cli_table_new(4, head, "rlll");
    for (size_t i = 0; t && i < rows->n; i++) {
        hx_row_t *r = &rows->rows[i];
        for (size_t k = 0; k < r->n_errs; k++) {
            char line[24];
            snprintf(line, sizeof line, "%zu", r->line);
            const char *row[] = {line, r->ref[0] ? r->ref : "-", r->errs[k].field, r->errs[k].why};
            cli_table_add(t, row);
        }
    }
    if (t) {
        printf("\nfailed rows:\n");
        cli_table_print(t, stdout);
        cli_table_destroy(&t);
    }
}

static void import_summary(cli_t *c, const char *file, hx_rows_t *rows, import_row_t *st, int unreachable)
{
    size_t count[5] = {0};
    for (size_t i = 0; i < rows->n; i++)
        count[st[i].state]++;
    if (c->json) {
        import_summary_json(c, file, rows, st, count);
        return;
    }
    size_t failed = count[ROW_BAD] + count[ROW_REFUSED];
    printf("import %s (%s): %zu row(s)\n", file, rows->format == HX_FORMAT_CSV ? "csv" : "ndjson", rows->n);
    if (c->dry_run)
        printf("  would submit      %zu\n", count[ROW_TO_SEND]);
    else
        printf("  submitted         %zu\n", count[ROW_SUBMITTED]);
    printf("  already accepted  %zu%s\n", count[ROW_ALREADY],
           count[ROW_ALREADY] ? "  (by an earlier import or submit; not sent again)" : "");
    printf("  failed            %zu\n", failed);
    if (!c->dry_run && count[ROW_TO_SEND])
        printf("  not sent          %zu  (%s; run the same import again to send the rest)\n", count[ROW_TO_SEND],
               unreachable ? "the broker stopped answering" : "stopped early");
    if (failed)
        import_failed_rows(rows);
}

/* Checks row i of an import: st[i] becomes ROW_BAD (the row carries why), ROW_ALREADY or
 * ROW_TO_SEND. */
static void import_check_row(cli_t *c, hx_rows_t *rows, import_row_t *st, size_t i)
{
    hx_row_t *row = &rows->rows[i];
    st[i].state = ROW_BAD;
    if (!row->json)
        return;                                 /* already carries why */
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_check(row->json, c->registration, c->no_validate, &errs);
    if (r && !r->ref[0])
        hx_errors_add(&errs, "ref", "required: this clinic's own number for the referral");
    for (size_t k = 0; k < errs.count; k++)
        hx_row_error(row, errs.items[k].path, "%s", errs.items[k].why);
    if (errs.dropped)
        hx_row_error(row, "row", "and %zu more problems", errs.dropped);
    if (row->n_errs) {                          /* also a cell the CSV reader could not use */
        hx_referral_free(r);
        return;
    }
    for (size_t j = 0; j < i; j++)              /* the same ref twice is the same referral */
        if (st[j].r && strcmp(st[j].r->ref, r->ref) == 0) {
            hx_row_error(row, "ref", "'%s' is also on line %zu: one row per referral", r->ref, rows->rows[j].line);
            hx_referral_free(r);
            return;
        }
    st[i].r = r;
    hx_clinic_referral_id(c->store, r->ref, st[i].rid);
    st[i].state = hx_clinic_sent_before(c->store, st[i].rid) ? ROW_ALREADY : ROW_TO_SEND;
}

int cmd_import(cli_t *c, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "handoff: import takes one FILE (.csv, .ndjson or .jsonl; see handoff help import)\n");
        return EXIT_USAGE;
    }
    const char *file = argv[0];
    char err[2048];
    hx_format_t format;
    if (registration_load(c) != EXIT_OK)
        return EXIT_USAGE;
    if (hx_import_format(file, c->format, &format, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: import: %s\n", err);
        return EXIT_USAGE;
    }
    hx_rows_t rows;
    if (hx_import_read(file, format, &rows, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: import: %s\n", err);
        return EXIT_DATAERR;
    }
    import_row_t *st = calloc(rows.n ? rows.n : 1, sizeof *st);
    size_t *todo = calloc(rows.n ? rows.n : 1, sizeof *todo);
    if (!st || !todo) {
        free(st), free(todo);
        hx_rows_free(&rows);
        fprintf(stderr, "handoff: import: out of memory\n");
        return EXIT_FAIL;
    }
    size_t n_todo = 0;
    for (size_t i = 0; i < rows.n; i++) {
        import_check_row(c, &rows, st, i);
        if (st[i].state == ROW_TO_SEND)
            todo[n_todo++] = i;
    }
    int rc = EXIT_OK, crc;
    if (!c->dry_run && n_todo > 0) {
        if ((crc = hx_clinic_connect(c->store)))
            rc = cli_clinic_failure(c, crc);
        else
            rc = import_send(c, file, &rows, st, todo, n_todo);
    }
    import_summary(c, file, &rows, st, rc == EXIT_UNREACHABLE);
    bool bad = false, refused = false;
    for (size_t i = 0; i < rows.n; i++) {
        bad |= st[i].state == ROW_BAD;
        refused |= st[i].state == ROW_REFUSED;
        hx_referral_free(st[i].r);
    }
    free(st);
    free(todo);
    hx_rows_free(&rows);
    if (rc == EXIT_UNREACHABLE || rc == EXIT_DENIED || rc == EXIT_USAGE)
        return rc;
    if (bad)
        return EXIT_DATAERR;
    return refused ? EXIT_FAIL : rc;
}

/* ---- inbox, handoffs, status ----------------------------------------------------------- */

/* The answer to a change: the handoff this clinic holds (a receiver's change), then the
 * referral; for the referrer, the referral and each handoff. */
static void change_print(cli_t *c, const char *rid, const char *event, const Handoff__StatusUpdate *s,
                         Handoff__Discipline d)
{
    const Handoff__HandoffStatus *own = hx_own_handoff(s, c->clinic, d);
    char handoffs[400];
    hx_handoffs_text(s, handoffs, sizeof handoffs);
    if (own && strcmp(event, "revoke") != 0)
        printf("%s %s: %s %s (referral %s) — %s\n", rid, event, hx_discipline_text(own->discipline),
               hx_inbox_status_text(own->status, own->event), hx_status_text(s->status), s->reason);
    else if (handoffs[0])
        printf("%s %s: %s (%s) — %s\n", rid, event, hx_status_text(s->status), handoffs, s->reason);
    else
        printf("%s %s: %s — %s\n", rid, event, hx_status_text(s->status), s->reason);
}

int cmd_inbox(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: inbox takes no arguments (see handoff help inbox)\n");
        return EXIT_USAGE;
    }
    int rc = cli_sync_store(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    hx_inbox_t *in = NULL;
    if ((rc = hx_inbox_load(c->store, &in)))
        return cli_clinic_failure(c, rc);
    size_t dropped = hx_clinic_dropped(c->store);
    if (c->json) {
        cli_print_json(cli_inbox_json(in));
    } else {
        cli_inbox_print(in, stdout, cli_now_ms());
        if (dropped)                    /* each is named on stderr */
            printf("\n%zu message%s dropped: not from %s issuing service\n", dropped, dropped == 1 ? "" : "s",
                   dropped == 1 ? "its" : "their");
    }
    hx_inbox_destroy(&in);
    return EXIT_OK;
}

typedef struct {
    cli_t *c;
    json_t *all;
    cli_table_t *t;
    size_t n;
    uint64_t now;
    const char *id;             /* status: the one referral asked about, or NULL */
} listing_t;

static void handoffs_row(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type;
    listing_t *l = ud;
    Handoff__Handoff *h = handoff__handoff__unpack(NULL, len, data);
    if (!h)
        return;
    l->n++;
    if (l->c->json) {
        json_array_append_new(l->all, hx_handoff_to_json(h));
    } else if (l->t) {
        const Handoff__Booking *b = h->booking;
        char name[160], minutes[16], start[CLI_FMT_LEN], when[CLI_FMT_LEN], reg[224];
        hx_patient_name(h->referral, name, sizeof name);
        hx_registration_text(h->referral ? h->referral->referrer : NULL, reg, sizeof reg);
        snprintf(minutes, sizeof minutes, "%u", b ? b->minutes : 0);
        const Handoff__Patient *p = h->referral ? h->referral->patient : NULL;
        const char *row[] = {h->referral_id, name, p ? p->birth_date : "",
                             b ? hx_discipline_text(b->discipline) : "", b ? b->therapist_name : "",
                             cli_slot_text(b ? b->start : "", b ? b->utc_offset : "", start), minutes,
                             h->referral ? h->referral->referring_clinic : "", reg[0] ? reg : "-",
                             cli_time_ago(l->now, at, when)};
        cli_table_add(l->t, row);
    }
    handoff__handoff__free_unpacked(h, NULL);
}

/* Every handoff received, oldest first (the table, or the handoffs as a JSON array). */
int cmd_handoffs(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: handoffs takes no arguments\n");
        return EXIT_USAGE;
    }
    int rc = cli_sync_store(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    static const char *const head[] = {"REFERRAL", "PATIENT", "BORN",         "DISCIPLINE", "THERAPIST", "START",
                                       "MIN",      "FROM",    "REGISTRATION", "RECEIVED"};
    listing_t l = {.c = c, .all = json_array(), .t = cli_table_new(10, head, "llllllrlll"), .now = cli_now_ms()};
    if (l.t)
        cli_table_cap(l.t, 1, 28);
    hx_clinic_query_t q = {.type = "handoff.Handoff"};
    if (hx_clinic_each_received(c->store, &q, handoffs_row, &l) == 0) {
        if (c->json) {
            cli_print_json(l.all);
            l.all = NULL;
        } else {
            if (l.t && cli_table_rows(l.t))
                cli_table_print(l.t, stdout);
            printf("%zu handoff(s) received by %s\n", l.t ? cli_table_rows(l.t) : 0, c->clinic);
        }
    } else {
        rc = cli_clinic_failure(c, HX_EIO);
    }
    json_decref(l.all);
    cli_table_destroy(&l.t);
    return rc;
}

static void status_row(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    listing_t *l = ud;
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, data);
    if (!s)
        return;
    l->n++;
    char when[CLI_FMT_LEN];
    if (l->c->json) {
        json_array_append_new(l->all, hx_status_to_json(s));
    } else if (l->t && l->id) {
        char handoffs[400];
        hx_handoffs_text(s, handoffs, sizeof handoffs);
        const char *row[] = {cli_time_abs(s->at_ms, when), hx_status_text(s->status), s->event, s->by,
                             handoffs[0] ? handoffs : "-", s->reason};
        cli_table_add(l->t, row);
    } else if (l->t) {
        const char *row[] = {s->referral_id, s->ref, hx_status_text(s->status), cli_time_ago(l->now, s->at_ms, when),
                             s->reason};
        cli_table_add(l->t, row);
    }
    handoff__status_update__free_unpacked(s, NULL);
}

int cmd_status(cli_t *c, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "handoff: status takes at most one referral id\n");
        return EXIT_USAGE;
    }
    int rc = cli_sync_store(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    static const char *const hist[] = {"TIME", "STATUS", "EVENT", "BY", "HANDOFFS", "DETAIL"};
    static const char *const list[] = {"REFERRAL", "REF", "STATUS", "UPDATED", "DETAIL"};
    listing_t l = {.c = c, .all = json_array(), .now = cli_now_ms(), .id = argc ? argv[0] : NULL};
    l.t = l.id ? cli_table_new(6, hist, NULL) : cli_table_new(5, list, NULL);
    /* one referral's history, or the latest update of each */
    hx_clinic_query_t q = {.type = "handoff.StatusUpdate", .referral_id = l.id, .latest = !l.id};
    if (hx_clinic_each_received(c->store, &q, status_row, &l) != 0)
        rc = cli_clinic_failure(c, HX_EIO);
    else if (c->json)
        cli_print_json(l.id ? json_pack("{s:s, s:O}", "referral_id", l.id, "history", l.all) : json_incref(l.all));
    else if (l.t && l.n)
        cli_table_print(l.t, stdout);
    if (rc == EXIT_OK && !c->json && !l.id)
        printf("%zu referral(s) with a status at %s\n", l.n, c->clinic);
    json_decref(l.all);
    cli_table_destroy(&l.t);
    if (rc == EXIT_OK && l.id && l.n == 0) {
        fprintf(stderr, "handoff: no status received for %s at clinic %s\n", l.id, c->clinic);
        return EXIT_NOTFOUND;
    }
    return rc;
}

/* ---- watch ------------------------------------------------------------------------------ */

static void watch_handoff(cli_t *c, const hx_msg_t *m, const char *when)
{
    Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
    if (!h)
        return;
    char name[160], start[CLI_FMT_LEN], text[900], reg[224];
    hx_patient_name(h->referral, name, sizeof name);
    hx_registration_text(h->referral ? h->referral->referrer : NULL, reg, sizeof reg);
    const Handoff__Booking *b = h->booking;
    snprintf(text, sizeof text, "%s: %s with %s, %s, %u min (from %s%s%s)", name[0] ? name : "?",
             b ? hx_discipline_text(b->discipline) : "?", b ? b->therapist_name : "?",
             cli_slot_text(b ? b->start : "", b ? b->utc_offset : "", start), b ? b->minutes : 0,
             h->referral ? h->referral->referring_clinic : "?", reg[0] ? ", referrer " : "", reg);
    if (c->json) {
        json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "at_ms", cli_ms_json(m->accepted_at_ms),
                              "at", when, "kind", "handoff", "referral_id", h->referral_id, "ref",
                              h->referral ? h->referral->ref : "", "status", "ready", "group", "new", "text", text);
        json_object_set_new(o, "handoff", hx_handoff_to_json(h));
        cli_print_json_line(o);
    } else {
        printf("%s  %-10s  %s  %s\n", when, "NEW", h->referral_id, text);
        fflush(stdout);
    }
    handoff__handoff__free_unpacked(h, NULL);
}

static void watch_print(void *ud, const hx_msg_t *m, const char *type, uint64_t at_ms)
{
    cli_t *c = ud;
    char when[CLI_FMT_LEN], text[900];
    cli_time_abs(at_ms, when);
    if (strcmp(type, "handoff.Handoff") == 0) {
        watch_handoff(c, m, when);
        return;
    }
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
    if (!s)
        return;
    bool received = false;                  /* about a booking this clinic holds, not its own referral */
    for (size_t i = 0; i < s->n_bookings; i++)
        received |= s->bookings[i] && strcmp(s->bookings[i]->clinic_id, c->clinic) == 0;
    const Handoff__HandoffStatus *own = hx_own_handoff(s, c->clinic, 0);
    received = (received || own) && strcmp(s->event, "book") != 0;
    /* a receiving clinic reads its own handoff's status, a referrer the referral's */
    Handoff__TaskStatus st = received && own ? own->status : s->status;
    const char *status = s->refused ? "refused" : hx_inbox_status_text(st, s->event);
    snprintf(text, sizeof text, "%s%s%s", s->ref[0] ? s->ref : "", s->ref[0] ? ": " : "", s->reason);
    if (c->json) {
        json_t *o = json_pack("{s:o, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "at_ms", cli_ms_json(at_ms), "at", when,
                              "kind", s->refused ? "refusal" : "status", "referral_id", s->referral_id, "ref", s->ref,
                              "status", status, "group",
                              s->refused ? "" : hx_group_key(hx_inbox_group(received, st, s->event)), "text",
                              text);
        json_object_set_new(o, "update", hx_status_to_json(s));
        cli_print_json_line(o);
    } else {
        printf("%s  %-10s  %s  %s\n", when, status, s->referral_id, text);
        fflush(stdout);
    }
    handoff__status_update__free_unpacked(s, NULL);
}

int cmd_watch(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: watch takes no arguments (see handoff help watch)\n");
        return EXIT_USAGE;
    }
    cli_catch_stop_signals();
    int crc;
    if ((crc = hx_clinic_connect(c->store)))
        return cli_clinic_failure(c, crc);
    if (!c->json && isatty(STDERR_FILENO))
        fprintf(stderr, "watching %s at %s (Ctrl-C to stop)\n", c->clinic, c->broker);
    int down = 0;
    while (!cli_stop_requested) {
        hx_clinic_sync_t s = {.on_new = watch_print, .ud = c};
        int rc = hx_clinic_client(c->store) ? cli_sync_store(c, &s) : EXIT_UNREACHABLE;
        if (rc == EXIT_UNREACHABLE) {
            if (!down)
                fprintf(stderr, "handoff: watch: the broker is not answering; still trying\n");
            down = 1;
            hx_clinic_disconnect(c->store);
            c->quiet_connect = 1;
            int again = cli_stop_requested ? HX_ETIMEDOUT : hx_clinic_connect(c->store);
            if (again == 0) {
                fprintf(stderr, "handoff: watch: the broker answers again\n");
                down = 0;
            } else if (cli_exit_for(again) != EXIT_UNREACHABLE) {  /* refused (the key was revoked): say why, stop */
                fprintf(stderr, "handoff: watch: %s\n", hx_clinic_error(c->store));
                return cli_exit_for(again);
            }
        } else if (rc != EXIT_OK) {
            return rc;
        }
        cli_nap_ms(c->interval_ms);
    }
    return EXIT_OK;
}

/* ---- lifecycle changes ------------------------------------------------------------------ */

/* redirect: --to CLINIC[/THERAPIST_ID] into ch (to: its copy, split at '/'); add-massage:
 * event "add" for massage therapy. 0, or -1 after saying what is wrong. */
static int change_coord(const cli_t *c, const char *cmd, Handoff__StatusChange *ch, char to[160])
{
    if (c->to && strcmp(cmd, "redirect") != 0) {
        fprintf(stderr, "handoff: --to is for redirect, not %s\n", cmd);
        return -1;
    }
    if (strcmp(cmd, "add-massage") == 0 && c->discipline) {
        fprintf(stderr, "handoff: --discipline is not for add-massage (it asks for massage_therapy)\n");
        return -1;
    }
    if (strcmp(cmd, "add-massage") == 0) {
        ch->event = "add";
        ch->discipline = HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
        return 0;
    }
    if (strcmp(cmd, "redirect") != 0)
        return 0;
    if (!c->to || !c->to[0] || c->to[0] == '/' || strlen(c->to) >= 160) {
        fprintf(stderr, "handoff: redirect needs --to CLINIC or --to CLINIC/THERAPIST_ID (got '%s')\n",
                c->to ? c->to : "");
        return -1;
    }
    snprintf(to, 160, "%s", c->to);
    char *slash = strchr(to, '/');
    if (slash)
        *slash++ = '\0';
    ch->to_clinic = to;
    ch->to_therapist = slash ? slash : "";
    return 0;
}

typedef struct {
    const char *rid;
    uint64_t after_ms;
    Handoff__StatusUpdate *outcome;
} add_wait_t;

/* The outcome of an add: an update of event add for the referral, not older than the
 * answer, that is refused or has a massage therapy handoff (the answer itself has none). */
static void add_match(add_wait_t *w, const uint8_t *payload, size_t len)
{
    Handoff__StatusUpdate *s = w->outcome ? NULL : handoff__status_update__unpack(NULL, len, payload);
    bool massage = false;
    for (size_t i = 0; s && i < s->n_handoffs; i++)
        massage |= s->handoffs[i]->discipline == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
    if (s && !strcmp(s->referral_id, w->rid) && !strcmp(s->event, "add") && s->at_ms >= w->after_ms &&
        (s->refused || massage))
        w->outcome = s;
    else if (s)
        handoff__status_update__free_unpacked(s, NULL);
}

static void add_outcome(void *ud, const hx_msg_t *m, const char *type, uint64_t at_ms)
{
    (void)at_ms;
    if (!strcmp(type, "handoff.StatusUpdate") || !strcmp(type, "handoff.Refusal"))
        add_match(ud, m->payload, m->payload_len);
}

static void add_stored(void *ud, const char *type, const uint8_t *payload, size_t len, uint64_t at_ms)
{
    (void)type, (void)at_ms;
    add_match(ud, payload, len);
}

/* add-massage: scheduling answered that triage checks it; prints that answer and waits (up
 * to 4 x --timeout-ms, syncing) for the outcome, which replaces *s. 0 when it came, 1 when
 * not yet (said so). */
static int add_follow(cli_t *c, const char *cmd, Handoff__StatusUpdate **s)
{
    add_wait_t w = {.rid = (*s)->referral_id, .after_ms = (*s)->at_ms};
    if (!c->json)
        change_print(c, (*s)->referral_id, cmd, *s, 0);
    /* it may have come with the answer: the store first, then what arrives */
    hx_clinic_query_t q = {.type = "handoff.Refusal", .referral_id = w.rid};
    hx_clinic_each_received(c->store, &q, add_stored, &w);
    q.type = "handoff.StatusUpdate";
    hx_clinic_each_received(c->store, &q, add_stored, &w);
    for (uint32_t waited = 0; !w.outcome && waited < 4 * c->timeout_ms; waited += 100) {
        hx_clinic_sync_t sync = {.on_new = add_outcome, .ud = &w};
        if (cli_sync_store(c, &sync) != EXIT_OK)
            break;
        if (!w.outcome)
            cli_nap_ms(100);
    }
    if (!w.outcome) {
        if (c->json)
            cli_print_json(json_pack("{s:o, s:n}", "answer", hx_status_to_json(*s), "outcome"));
        else
            printf("%s %s: triage's answer is not in yet (see 'handoff status %s' later)\n", cmd, (*s)->referral_id,
                   (*s)->referral_id);
        return 1;
    }
    handoff__status_update__free_unpacked(*s, NULL);
    *s = w.outcome;
    return 0;
}

/* Sends the change of event on id (summary: complete's) and prints the answer. */
static int change_send(cli_t *c, const char *event, const char *id, const char *summary)
{
    Handoff__StatusChange ch = HANDOFF__STATUS_CHANGE__INIT;
    char to[160];
    if (c->discipline && !(ch.discipline = hx_discipline_from_text(c->discipline))) {
        fprintf(stderr, "handoff: --discipline: must be physiotherapy or massage_therapy, got '%s'\n", c->discipline);
        return EXIT_USAGE;
    }
    ch.referral_id = (char *)id;
    ch.event = (char *)event;
    if (change_coord(c, event, &ch, to) != 0)
        return EXIT_USAGE;
    ch.reason = (char *)(c->reason ? c->reason : "");
    if (handoff__status_change__get_packed_size(&ch) > 1024) {
        fprintf(stderr, "handoff: --reason: at most 800 characters\n");
        return EXIT_USAGE;
    }
    char why[160];
    if (summary && hx_thread_text_check("summary", summary, why, sizeof why) != 0) {
        fprintf(stderr, "handoff: complete: --%s\n", why);
        return EXIT_USAGE;
    }
    ch.summary = (char *)(summary ? summary : "");
    Handoff__StatusUpdate *s = NULL;
    int rc = hx_clinic_change(c->store, &ch, 4 * c->timeout_ms, &s);
    if (rc) {
        fprintf(stderr, "handoff: %s\n", hx_clinic_error(c->store));
        if (rc == HX_EREFUSED && hx_clinic_client(c->store) &&
            hx_client_error_code(hx_clinic_client(c->store)) == HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE)
            return EXIT_NOTFOUND;
        return cli_exit_for(rc);
    }
    if (!s) {
        if (c->json)
            cli_print_json(json_pack("{s:s, s:s, s:b}", "referral_id", id, "event", event, "answered", 0));
        else
            printf("%s %s: sent; no answer yet (see 'handoff status %s' later)\n", event, id, id);
        return EXIT_OK;
    }
    if (!s->refused && !strcmp(ch.event, "add") && add_follow(c, event, &s) != 0) {
        handoff__status_update__free_unpacked(s, NULL);
        return EXIT_OK;
    }
    if (c->json)
        cli_print_json(hx_status_to_json(s));
    else if (s->refused)
        printf("%s %s refused: %s\n", event, id, s->reason);
    else
        change_print(c, id, event, s, ch.discipline);
    rc = s->refused ? EXIT_FAIL : EXIT_OK;
    handoff__status_update__free_unpacked(s, NULL);
    return rc;
}

/* accept, decline, start, complete, fail, revoke, redirect, add-massage: sent to scheduling,
 * which answers in this clinic's mailbox; waits for that answer (add-massage: then for
 * triage's outcome). */
int cmd_change(cli_t *c, const char *event, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "handoff: %s takes one referral id (see handoff help %s)\n", event, event);
        return EXIT_USAGE;
    }
    if (!hx_referral_id_valid(argv[0])) {
        fprintf(stderr, "handoff: %s: '%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)\n",
                event, argv[0]);
        return EXIT_USAGE;
    }
    if ((!strcmp(event, "decline") || !strcmp(event, "fail") || !strcmp(event, "redirect") ||
         !strcmp(event, "add-massage")) && (!c->reason || !c->reason[0])) {
        fprintf(stderr, "handoff: %s needs --reason TEXT (the referring clinic is told why)\n", event);
        return EXIT_USAGE;
    }
    bool complete = strcmp(event, "complete") == 0;
    if (complete && !c->summary) {
        fprintf(stderr, "handoff: complete needs --summary TEXT|FILE (the completion summary goes to the referring "
                        "clinic on the care thread)\n");
        return EXIT_USAGE;
    }
    if (!complete && c->summary) {
        fprintf(stderr, "handoff: --summary is for complete, not %s\n", event);
        return EXIT_USAGE;
    }
    char *summary = complete ? cli_summary_text(c->summary) : NULL;
    if (complete && !summary)
        return EXIT_USAGE;
    int rc = change_send(c, event, argv[0], summary);
    free(summary);
    return rc;
}
