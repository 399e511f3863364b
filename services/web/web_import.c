/* web_import — importing a CSV or NDJSON file of referrals in the portal, as `handoff import`
 * does (the same reader and checks: hx_import.h): every row is checked first, the valid ones
 * are sent in chunks by a job thread while the page shows its progress, and the rows with
 * problems are listed with their line, field and what is wrong. A job is its user's: no one
 * else may look at it. Jobs live in memory (the referrals they sent are in the clinic's store;
 * re-importing the same file is safe: the same ref is the same referral). */
#include "web_pages.h"
#include "hx_import.h"
#include "hx_intake.h"
#include "hx_refjson.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <unistd.h>

#define JOBS_MAX 32
#define CHUNK 64

typedef struct {
    size_t line;
    char ref[80], field[96], why[200];
} problem_t;

typedef struct {
    bool used, running;
    char id[33];
    char user[HX_USER_MAX + 1];
    web_t *web;
    web_hosted_t *h;
    pthread_t thread;
    char file_name[129];
    /* under jobs_mu */
    size_t total, valid, sent, already, refused, invalid;
    char stopped[400];                  /* why sending stopped early ("" when it did not) */
    problem_t *problems;
    size_t n_problems;
    uint64_t finished_ms;
    /* the job thread's alone */
    hx_rows_t rows;
    Handoff__Referral **refs;
    size_t *line_of;
} job_t;

static job_t jobs[JOBS_MAX];
static pthread_mutex_t jobs_mu = PTHREAD_MUTEX_INITIALIZER;

static void problem_add(job_t *j, size_t line, const char *ref, const char *field, const char *why)
{
    problem_t *grown = realloc(j->problems, (j->n_problems + 1) * sizeof *grown);
    if (!grown)
        return;
    j->problems = grown;
    problem_t *p = &grown[j->n_problems++];
    p->line = line;
    snprintf(p->ref, sizeof p->ref, "%s", ref ? ref : "");
    snprintf(p->field, sizeof p->field, "%s", field);
    snprintf(p->why, sizeof p->why, "%s", why);
}

typedef struct {
    job_t *j;
    const size_t *line;
    Handoff__Referral **refs;
} chunk_t;

static void on_refused(void *ud, size_t i, const char *why)
{
    chunk_t *c = ud;
    pthread_mutex_lock(&jobs_mu);
    problem_add(c->j, c->line[i], c->refs[i]->ref, "row", why);
    pthread_mutex_unlock(&jobs_mu);
}

static void *job_run(void *arg)
{
    job_t *j = arg;
    hx_sent_state_t state[CHUNK];
    const char *sources[CHUNK];
    char where[CHUNK][200];
    for (size_t off = 0; off < j->valid && !atomic_load(&j->web->stop); off += CHUNK) {
        size_t n = j->valid - off < CHUNK ? j->valid - off : CHUNK;
        for (size_t k = 0; k < n; k++) {
            snprintf(where[k], sizeof where[k], "portal:%s:%zu", j->file_name, j->line_of[off + k]);
            sources[k] = where[k];
        }
        chunk_t ch = {j, j->line_of + off, j->refs + off};
        pthread_mutex_lock(&j->h->mu);
        int rc = hx_clinic_submit_batch(j->h->clinic, j->refs + off, sources, n, 32, state, on_refused, &ch);
        char err[256];
        snprintf(err, sizeof err, "%s", hx_clinic_error(j->h->clinic));
        web_hosted_bump(j->h);
        pthread_mutex_unlock(&j->h->mu);
        pthread_mutex_lock(&jobs_mu);
        for (size_t k = 0; k < n; k++) {
            j->sent += state[k] == HX_SENT_ACCEPTED;
            j->refused += state[k] == HX_SENT_REFUSED;
        }
        if (rc)
            snprintf(j->stopped, sizeof j->stopped, "sending stopped: %s (import the file again to send the rest)",
                     err);
        pthread_mutex_unlock(&jobs_mu);
        if (rc)
            break;
    }
    pthread_mutex_lock(&jobs_mu);
    if (atomic_load(&j->web->stop) && j->sent + j->refused + j->already < j->total - j->invalid && !j->stopped[0])
        snprintf(j->stopped, sizeof j->stopped, "the portal was stopped before every row was sent");
    j->running = false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    j->finished_ms = (uint64_t)ts.tv_sec * 1000u;
    pthread_mutex_unlock(&jobs_mu);
    for (size_t i = 0; i < j->valid; i++)
        hx_referral_free(j->refs[i]);
    free(j->refs);
    free(j->line_of);
    j->refs = NULL;
    j->line_of = NULL;
    hx_rows_free(&j->rows);
    return NULL;
}

/* A free slot (the oldest finished job gives way), or NULL when every slot is running. */
static job_t *job_slot(void)
{
    job_t *best = NULL;
    for (size_t i = 0; i < JOBS_MAX; i++) {
        if (!jobs[i].used)
            return &jobs[i];
        if (!jobs[i].running && (!best || jobs[i].finished_ms < best->finished_ms))
            best = &jobs[i];
    }
    if (best) {
        pthread_join(best->thread, NULL);
        free(best->problems);
        memset(best, 0, sizeof *best);
    }
    return best;
}

void web_import_stop(web_t *w)
{
    (void)w;                            /* web->stop is set: each job ends after its chunk */
    for (size_t i = 0; i < JOBS_MAX; i++) {
        if (jobs[i].used)
            pthread_join(jobs[i].thread, NULL);
        free(jobs[i].problems);
        memset(&jobs[i], 0, sizeof jobs[i]);
    }
}

static void draw_upload(web_req_t *r, const char *error)
{
    hx_html_t *b = &r->body;
    web_page_begin(r, "Import referrals", 0);
    HX_HTML_MARKUP(b, "<h1>Import referrals</h1>");
    if (error)
        web_flash(r, false, error);
    HX_HTML_F(b,
              "<p>A CSV file with a header row of field paths, or NDJSON (one referral as JSON per line), as "
              "<code>handoff import</code> reads. Every row is checked first; the valid ones are sent, the others "
              "listed with what is wrong. Importing the same file again is safe: a ref already sent is the same "
              "referral.</p><form method=\"post\" action=\"/import\" enctype=\"multipart/form-data\" "
              "class=\"stack\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
              "<label for=\"file\">File (.csv, .ndjson or .jsonl, at most 16 MiB)</label>"
              "<input id=\"file\" name=\"file\" type=\"file\" required accept=\".csv,.ndjson,.jsonl,text/csv\">"
              "<label for=\"format\">Format</label><select id=\"format\" name=\"format\">"
              "<option value=\"\">from the file's name</option><option value=\"csv\">CSV</option>"
              "<option value=\"ndjson\">NDJSON</option></select><button type=\"submit\" id=\"do-import\">Import"
              "</button></form><details><summary>CSV columns</summary><p><code>%s</code></p></details>",
              r->csrf, hx_import_columns());
    web_page_end(r);
}

static void draw_job(web_req_t *r, job_t *j)
{
    hx_html_t *b = &r->body;
    pthread_mutex_lock(&jobs_mu);
    bool running = j->running;
    size_t done = j->sent + j->refused + j->already + j->invalid;
    r->refresh_s = running ? 1 : 0;     /* the page asks again each second while it runs */
    web_page_begin(r, "Import referrals", 0);
    HX_HTML_F(b, "<h1>Import of %s</h1>", j->file_name);
    HX_HTML_F(b, "<p><label for=\"progress\">%s</label> <progress id=\"progress\" max=\"%zu\" value=\"%zu\">%zu of %zu"
                 "</progress> %zu of %zu rows</p>",
              running ? "Sending" : "Done", j->total ? j->total : 1, done, done, j->total, done, j->total);
    HX_HTML_F(b, "<dl class=\"card\"><dt>Rows</dt><dd>%zu</dd><dt>Sent</dt><dd id=\"import-sent\">%zu</dd>"
                 "<dt>Already sent before</dt><dd>%zu</dd><dt>With problems (not sent)</dt><dd id=\"import-invalid\">%zu"
                 "</dd><dt>Refused by the network</dt><dd>%zu</dd></dl>",
              j->total, j->sent, j->already, j->invalid, j->refused);
    if (j->stopped[0])
        web_flash(r, false, j->stopped);
    if (j->n_problems) {
        HX_HTML_MARKUP(b, "<h2>Rows with problems</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">Line"
                          "</th><th scope=\"col\">Ref</th><th scope=\"col\">Field</th><th scope=\"col\">What is wrong"
                          "</th></tr></thead><tbody>");
        for (size_t i = 0; i < j->n_problems && i < 1000; i++)
            HX_HTML_F(b, "<tr><td>%zu</td><td>%s</td><td>%s</td><td>%s</td></tr>", j->problems[i].line,
                      j->problems[i].ref, j->problems[i].field, j->problems[i].why);
        HX_HTML_MARKUP(b, "</tbody></table></div>");
        if (j->n_problems > 1000)
            HX_HTML_F(b, "<p>… and %zu more.</p>", j->n_problems - 1000);
    }
    if (!running)
        HX_HTML_MARKUP(b, "<p><a href=\"/?folder=pending_booking\">Pending booking</a> · <a href=\"/import\">Import "
                          "another file</a></p>");
    pthread_mutex_unlock(&jobs_mu);
    web_page_end(r);
}

static void start_job(web_req_t *r)
{
    const web_field_t *f = web_field_full(r, "file");
    const char *format = web_field(r, "format");
    if (!f || !f->filename || !f->filename[0] || !f->len) {
        r->status = 400;
        draw_upload(r, "file: choose a CSV or NDJSON file to import");
        return;
    }
    char err[300];
    hx_format_t fmt;
    if (hx_import_format(f->filename, format && *format ? format : NULL, &fmt, err, sizeof err) != 0) {
        r->status = 400;
        draw_upload(r, err);
        return;
    }
    /* the reader takes a file: a private one, gone as soon as it is read */
    char tmp[] = "/tmp/handoff-web-import-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0 || write(fd, f->value, f->len) != (ssize_t)f->len) {
        if (fd >= 0)
            close(fd), unlink(tmp);
        page_error(r, 500, "Import failed", "The file could not be kept for reading.");
        return;
    }
    close(fd);
    hx_rows_t rows = {0};
    int rc = hx_import_read(tmp, fmt, &rows, err, sizeof err);
    unlink(tmp);
    if (rc != 0) {
        r->status = 400;
        char text[400];
        snprintf(text, sizeof text, "%s: %s", f->filename, err + (strncmp(err, tmp, strlen(tmp)) ? 0 : strlen(tmp)));
        draw_upload(r, text);
        return;
    }
    pthread_mutex_lock(&jobs_mu);
    job_t *j = job_slot();
    if (!j) {
        pthread_mutex_unlock(&jobs_mu);
        hx_rows_free(&rows);
        page_error(r, 503, "Busy", "Too many imports are running; try again in a minute.");
        return;
    }
    memset(j, 0, sizeof *j);
    j->used = j->running = true;
    uint8_t raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(j->id, sizeof j->id, raw, sizeof raw);
    snprintf(j->user, sizeof j->user, "%s", r->user.name);
    snprintf(j->file_name, sizeof j->file_name, "%s", f->filename);
    j->web = r->web;
    j->h = r->hosted;
    j->rows = rows;
    j->total = rows.n;
    j->refs = calloc(rows.n ? rows.n : 1, sizeof *j->refs);
    j->line_of = calloc(rows.n ? rows.n : 1, sizeof *j->line_of);
    for (size_t i = 0; j->refs && j->line_of && i < rows.n; i++) {
        hx_row_t *row = &rows.rows[i];
        for (size_t k = 0; k < row->n_errs; k++)
            problem_add(j, row->line, row->ref, row->errs[k].field, row->errs[k].why);
        if (row->n_errs || !row->json) {
            j->invalid++;
            continue;
        }
        /* the referrer's clinic is this clinic, as the form sets it */
        json_t *ref = json_object_get(row->json, "referrer");
        if (json_is_object(ref) && !json_object_get(ref, "clinic_id"))
            json_object_set_new(ref, "clinic_id", json_string(r->hosted->id));
        hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *referral = hx_referral_check(row->json, NULL, 0, &errs);
        if (!referral) {
            for (size_t k = 0; k < errs.count; k++)
                problem_add(j, row->line, row->ref, errs.items[k].path, errs.items[k].why);
            j->invalid++;
            continue;
        }
        char rid[HX_REFERRAL_ID_LEN + 1];
        pthread_mutex_lock(&r->hosted->mu);
        hx_clinic_referral_id(r->hosted->clinic, referral->ref, rid);
        bool before = hx_clinic_sent_before(r->hosted->clinic, rid);
        pthread_mutex_unlock(&r->hosted->mu);
        if (before) {
            j->already++;
            hx_referral_free(referral);
            continue;
        }
        j->line_of[j->valid] = row->line;
        j->refs[j->valid++] = referral;
    }
    if (!j->refs || !j->line_of || pthread_create(&j->thread, NULL, job_run, j) != 0) {
        for (size_t i = 0; j->refs && i < j->valid; i++)
            hx_referral_free(j->refs[i]);
        free(j->refs), free(j->line_of), free(j->problems);
        hx_rows_free(&j->rows);
        memset(j, 0, sizeof *j);
        pthread_mutex_unlock(&jobs_mu);
        page_error(r, 500, "Import failed", "The import could not be started.");
        return;
    }
    char to[64], detail[64];
    snprintf(to, sizeof to, "/import?job=%s", j->id);
    snprintf(detail, sizeof detail, "%zu rows, %zu valid", j->total, j->valid);
    pthread_mutex_unlock(&jobs_mu);
    r->web->actions++;
    web_audit(r, "import", "", detail);
    web_redirect(r, to);
}

void page_import(web_req_t *r)
{
    if (!r->hosted || r->hosted->reviewer) {
        r->web->denied++;
        page_error(r, 403, "Not allowed", "Importing referrals is for the users of a clinic.");
        return;
    }
    if (!strcmp(r->method, "POST")) {
        start_job(r);
        return;
    }
    const char *id = web_arg(r, "job");
    if (!id) {
        draw_upload(r, NULL);
        return;
    }
    job_t *found = NULL;
    pthread_mutex_lock(&jobs_mu);
    for (size_t i = 0; i < JOBS_MAX && !found; i++)
        if (jobs[i].used && strlen(id) == 32 && sodium_memcmp(jobs[i].id, id, 32) == 0 &&
            !strcmp(jobs[i].user, r->user.name))
            found = &jobs[i];
    pthread_mutex_unlock(&jobs_mu);
    if (!found) {
        page_error(r, 404, "Not found", "There is no such import of yours (imports are kept until the portal restarts).");
        return;
    }
    draw_job(r, found);
}
