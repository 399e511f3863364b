/* Unit tests for the hash-chained audit log: a clean chain verifies; an edited, deleted or
 * reordered line is found, by number; against the anchor (the head the broker's log
 * recorded) a cut tail or a replaced file is found, and a cut file is not appended to.
 * Rotation (a clock of the test's own): by size and by UTC day, one chain over the series,
 * retention, a crash mid-rotation; verify over a series names an edited line in an old file,
 * a missing middle file, a truncated one, one the series does not reach. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hx_audit.h"

static char path[256];
static char lines[8][512];
static size_t n_lines;

static void setup(void)
{
    snprintf(path, sizeof path, "/tmp/handoff-audit-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char err[256];
    hx_audit_t *a = hx_audit_open(path, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    const char *actions[] = {"hello", "submit", "fetch", "dlq.replay", "hello"};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(hx_audit_write(a, "clinic:northpoint", actions[i], "00ff", "ok"), 0);
    hx_audit_close(&a);
    FILE *f = fopen(path, "r");
    n_lines = 0;
    while (n_lines < 8 && fgets(lines[n_lines], sizeof lines[0], f))
        n_lines++;
    fclose(f);
    cr_assert_eq(n_lines, 5);
}

static void teardown(void)
{
    unlink(path);
}

TestSuite(audit, .init = setup, .fini = teardown);

static void rewrite(const int order[], size_t n)
{
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i < n; i++)
        fputs(lines[order[i]], f);
    fclose(f);
}

Test(audit, a_clean_chain_verifies_and_continues_after_reopening)
{
    char why[256];
    size_t count = 0;
    cr_assert_eq(hx_audit_verify(path, &count, why, sizeof why), 0, "%s", why);
    cr_assert_eq(count, 5);
    char err[256];
    hx_audit_t *a = hx_audit_open(path, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    cr_assert_eq(hx_audit_write(a, "admin:ops", "dlq.purge", "", "purged"), 0);
    hx_audit_close(&a);
    cr_assert_eq(hx_audit_verify(path, &count, why, sizeof why), 0, "%s", why);
    cr_assert_eq(count, 6);
}

Test(audit, an_edited_line_is_found)
{
    char *p = strstr(lines[2], "\"outcome\":\"ok\"");
    cr_assert_not_null(p);
    memcpy(p, "\"outcome\":\"no\"", 14);
    rewrite((int[]){0, 1, 2, 3, 4}, 5);
    char why[256];
    cr_assert_eq(hx_audit_verify(path, NULL, why, sizeof why), 3);
    cr_assert(strstr(why, "edited"), "%s", why);
    char err[256];
    cr_assert_null(hx_audit_open(path, err, sizeof err), "no appending to a broken chain");
}

Test(audit, a_deleted_line_is_found)
{
    rewrite((int[]){0, 1, 3, 4}, 4);
    char why[256];
    cr_assert_eq(hx_audit_verify(path, NULL, why, sizeof why), 3);
    cr_assert(strstr(why, "does not follow"), "%s", why);
}

Test(audit, reordered_lines_are_found)
{
    rewrite((int[]){0, 2, 1, 3, 4}, 5);
    char why[256];
    cr_assert_eq(hx_audit_verify(path, NULL, why, sizeof why), 2);
}

Test(audit, a_line_that_is_not_a_record_is_found)
{
    strcpy(lines[1], "hello world\n");
    rewrite((int[]){0, 1, 2}, 3);
    char why[256];
    cr_assert_eq(hx_audit_verify(path, NULL, why, sizeof why), 2);
    cr_assert(strstr(why, "not an audit record"), "%s", why);
}

/* ---- the anchor: the head the broker's log recorded ------------------------------------------ */

static char anchor_file[300];

/* The head as the log store asks for it at a commit, then made durable (the anchor file
 * written); returns the blob. */
static void anchor_head(hx_audit_t *a, uint8_t blob[HX_AUDIT_ANCHOR_LEN])
{
    int fd = -1;
    cr_assert_eq(hx_audit_anchor_hook(a, blob, HX_AUDIT_ANCHOR_LEN, &fd), HX_AUDIT_ANCHOR_LEN);
    cr_assert_geq(fd, 0, "the audit file, to be synced before the head is recorded");
    snprintf(anchor_file, sizeof anchor_file, "%s.anchor", path);
    cr_assert_eq(hx_audit_set_anchor_file(a, anchor_file), 0);
    hx_audit_anchored_hook(a, blob, HX_AUDIT_ANCHOR_LEN);
    cr_assert_null(hx_audit_anchor_error(a));
}

static hx_audit_t *open_log(void)
{
    char err[256];
    hx_audit_t *a = hx_audit_open(path, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    return a;
}

Test(audit, the_anchor_names_a_cut_tail)
{
    hx_audit_t *a = open_log();
    uint8_t blob[HX_AUDIT_ANCHOR_LEN];
    anchor_head(a, blob);
    hx_audit_close(&a);
    char why[512];
    size_t count = 0, anchored = 0;
    cr_assert_eq(hx_audit_verify_anchored(path, anchor_file, &count, &anchored, why, sizeof why), 0, "%s", why);
    cr_assert_eq(count, 5);
    cr_assert_eq(anchored, 5);
    rewrite((int[]){0, 1, 2}, 3);
    cr_assert_eq(hx_audit_verify(path, &count, why, sizeof why), 0, "the chain alone cannot tell: %s", why);
    cr_assert_eq(hx_audit_verify_anchored(path, anchor_file, &count, &anchored, why, sizeof why), 4);
    cr_assert(strstr(why, "the audit log ends at line 3 but the log anchored line 5"), "%s", why);
    unlink(anchor_file);
}

Test(audit, a_cut_log_is_not_appended_to)
{
    hx_audit_t *a = open_log();
    uint8_t blob[HX_AUDIT_ANCHOR_LEN], again[HX_AUDIT_ANCHOR_LEN];
    anchor_head(a, blob);
    hx_audit_close(&a);
    rewrite((int[]){0, 1, 2}, 3);
    a = open_log();                             /* the chain that is left holds */
    hx_audit_anchored_hook(a, blob, sizeof blob);   /* what recovery found in the log */
    const char *e = hx_audit_anchor_error(a);
    cr_assert_not_null(e);
    cr_assert(strstr(e, "the audit log ends at line 3 but the log anchored line 5"), "%s", e);
    int fd = -1;
    cr_assert_eq(hx_audit_anchor_hook(a, again, sizeof again, &fd), HX_AUDIT_ANCHOR_LEN);
    cr_assert_eq(memcmp(again, blob, sizeof blob), 0, "the log keeps the anchor it had: the evidence");
    hx_audit_close(&a);
    unlink(anchor_file);
}

Test(audit, a_replaced_log_is_found)
{
    hx_audit_t *a = open_log();
    uint8_t blob[HX_AUDIT_ANCHOR_LEN];
    anchor_head(a, blob);
    hx_audit_close(&a);
    unlink(path);                               /* another chain of six lines in its place */
    a = open_log();
    for (int i = 0; i < 6; i++)
        cr_assert_eq(hx_audit_write(a, "clinic:northpoint", "submit", "00ff", "forged"), 0);
    hx_audit_close(&a);
    char why[512];
    size_t count = 0, anchored = 0;
    cr_assert_eq(hx_audit_verify_anchored(path, anchor_file, &count, &anchored, why, sizeof why), 5);
    cr_assert(strstr(why, "rewritten or replaced"), "%s", why);
    a = open_log();
    hx_audit_anchored_hook(a, blob, sizeof blob);
    cr_assert_not_null(hx_audit_anchor_error(a));
    hx_audit_close(&a);
    unlink(anchor_file);
}

Test(audit, an_empty_log_starts_a_new_chain_that_says_so)
{
    hx_audit_t *a = open_log();
    uint8_t blob[HX_AUDIT_ANCHOR_LEN];
    anchor_head(a, blob);
    hx_audit_close(&a);
    rewrite(NULL, 0);
    a = open_log();
    hx_audit_anchored_hook(a, blob, sizeof blob);
    cr_assert_null(hx_audit_anchor_error(a));
    hx_audit_close(&a);
    char why[512];
    size_t count = 0;
    cr_assert_eq(hx_audit_verify(path, &count, why, sizeof why), 0, "%s", why);
    cr_assert_eq(count, 1);
    FILE *f = fopen(path, "r");
    char line[1024] = "";
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    cr_assert(strstr(line, "audit.new-chain") && strstr(line, "line 5"), "%s", line);
    unlink(anchor_file);
}

/* ---- rotation: FILE.YYYYMMDDTHHMMSSZ, one chain over the series ------------------------------ */

static char dir[256], log_path[300];
static time_t now_s;

static time_t test_clock(void *arg)
{
    return *(time_t *)arg;
}

static void rot_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/handoff-audit-rot-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(log_path, sizeof log_path, "%s/audit.jsonl", dir);
    now_s = 1772409600;                         /* 2026-03-02T00:00:00Z */
}

static void rot_teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

TestSuite(rotation, .init = rot_setup, .fini = rot_teardown);

static hx_audit_t *open_rotating(uint64_t max_bytes, bool daily, uint32_t keep_days)
{
    hx_audit_rotation_t rot = {.max_bytes = max_bytes, .daily = daily, .keep_days = keep_days,
                               .clock = test_clock, .clock_arg = &now_s};
    char err[512];
    hx_audit_t *a = hx_audit_open_rotating(log_path, &rot, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    return a;
}

/* The rotated files, oldest first (names only), and how many. */
static size_t rotated(char names[][64], size_t cap)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "audit.jsonl.", 12) == 0 && n < cap)
            snprintf(names[n++], 64, "%.63s", e->d_name);
    closedir(d);
    for (size_t i = 1; i < n; i++)              /* insertion sort: a few names */
        for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
            char t[64];
            memcpy(t, names[k], 64);
            memcpy(names[k], names[k - 1], 64);
            memcpy(names[k - 1], t, 64);
        }
    return n;
}

static void in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Writes n events, the clock one second further for each. */
static void write_events(hx_audit_t *a, int n)
{
    for (int i = 0; i < n; i++) {
        cr_assert_eq(hx_audit_write(a, "clinic:northpoint", "submit", "00112233445566778899aabbccddeeff",
                                    "stored"), 0);
        now_s++;
    }
}

static size_t count_lines(const char *p)
{
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s", p);
    size_t n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void first_line(const char *p, char *out, size_t cap)
{
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s", p);
    cr_assert_not_null(fgets(out, (int)cap, f));
    fclose(f);
}

Test(rotation, by_size_the_chain_runs_across_the_files)
{
    hx_audit_t *a = open_rotating(1200, false, 0);
    write_events(a, 20);
    hx_audit_close(&a);
    char names[32][64], p[600], line[2048];
    size_t n = rotated(names, 32);
    cr_assert_geq(n, 3, "20 lines of ~330 bytes under 1200 bytes a file");
    size_t total = count_lines(log_path);
    for (size_t i = 0; i < n; i++) {
        in_dir(p, sizeof p, names[i]);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_leq(st.st_size, 1200, "%s has %lld bytes", names[i], (long long)st.st_size);
        total += count_lines(p);
    }
    first_line(log_path, line, sizeof line);
    cr_assert(strstr(line, "\"action\":\"audit.rotated\""), "%s", line);
    char want[200];
    snprintf(want, sizeof want, "\"id\":\"%s\"", names[n - 1]);
    cr_assert(strstr(line, want), "the new file names the one before: %s", line);
    hx_audit_report_t r;
    char why[1024];
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "%s", why);
    cr_assert_eq(r.files, n + 1);
    cr_assert_eq(r.lines, total);
    cr_assert_eq(total, 20 + n, "the events and one audit.rotated line per rotation");
    cr_assert_eq(r.start, 0);
    cr_assert_str_empty(r.trusted);
    a = open_rotating(1200, false, 0);           /* reopened, it continues the series */
    write_events(a, 3);
    hx_audit_close(&a);
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "%s", why);
    cr_assert_eq(r.lines, total + 3 + (rotated(names, 32) - n));
}

Test(rotation, at_most_one_rotation_a_second)
{
    hx_audit_t *a = open_rotating(1200, false, 0);
    for (int i = 0; i < 12; i++)                /* the clock stands still: one name free */
        cr_assert_eq(hx_audit_write(a, "clinic:northpoint", "submit", "", "stored"), 0);
    hx_audit_close(&a);
    char names[8][64];
    cr_assert_eq(rotated(names, 8), 1);
    char why[512];
    cr_assert_eq(hx_audit_verify(log_path, NULL, why, sizeof why), 0, "%s", why);
}

Test(rotation, daily_at_the_first_event_of_a_new_utc_day)
{
    now_s -= 3;                                 /* 2026-03-01T23:59:57Z */
    hx_audit_t *a = open_rotating(0, true, 0);
    write_events(a, 3);
    char names[8][64];
    cr_assert_eq(rotated(names, 8), 0, "still 1 March");
    write_events(a, 2);                         /* 00:00:00 and 00:00:01 on 2 March */
    hx_audit_close(&a);
    cr_assert_eq(rotated(names, 8), 1);
    cr_assert_str_eq(names[0], "audit.jsonl.20260302T000000Z");
    char p[600];
    in_dir(p, sizeof p, names[0]);
    cr_assert_eq(count_lines(p), 3, "the file holds 1 March");
    cr_assert_eq(count_lines(log_path), 3, "audit.rotated and the two events of 2 March");
    a = open_rotating(0, true, 0);              /* reopened the same day: no rotation */
    write_events(a, 1);
    now_s += 86400;
    write_events(a, 1);
    hx_audit_close(&a);
    cr_assert_eq(rotated(names, 8), 2);
    char why[512];
    cr_assert_eq(hx_audit_verify(log_path, NULL, why, sizeof why), 0, "%s", why);
}

Test(rotation, retention_deletes_the_oldest_and_verify_trusts_the_oldest_present)
{
    hx_audit_t *a = open_rotating(0, true, 2);
    for (int day = 0; day < 6; day++) {
        write_events(a, 2);
        now_s += 86400;
    }
    write_events(a, 1);
    hx_audit_close(&a);
    char names[16][64];
    size_t n = rotated(names, 16);
    cr_assert_eq(n, 2, "of six rotated files, those more than 2 days old are gone");
    cr_assert_str_eq(names[0], "audit.jsonl.20260307T000010Z");
    cr_assert_str_eq(names[1], "audit.jsonl.20260308T000012Z");
    hx_audit_report_t r;
    char why[1024];
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(r.trusted, "audit.jsonl.20260306T000008Z");
    cr_assert(strstr(r.oldest, names[0]), "%s", r.oldest);
    cr_assert_gt(r.start, 0, "the series' lines before the oldest present");
}

Test(rotation, keeping_everything_is_the_default)
{
    hx_audit_t *a = open_rotating(0, true, 0);
    for (int day = 0; day < 6; day++) {
        write_events(a, 2);
        now_s += 86400 * 400;
    }
    hx_audit_close(&a);
    char names[16][64];
    cr_assert_eq(rotated(names, 16), 5);
}

/* A series of at least four files: three rotated or more, and the log. */
static void make_series(char names[][64])
{
    hx_audit_t *a = open_rotating(1200, false, 0);
    write_events(a, 11);
    hx_audit_close(&a);
    cr_assert_geq(rotated(names, 8), 3);
}

Test(rotation, an_edited_line_in_an_old_file_is_named)
{
    char names[8][64], p[600];
    make_series(names);
    in_dir(p, sizeof p, names[0]);
    char *whole = NULL;
    size_t len = 0;
    FILE *f = fopen(p, "r");
    cr_assert_eq(getdelim(&whole, &len, '\0', f) > 0, 1);
    fclose(f);
    char *s = strstr(strchr(whole, '\n') + 1, "\"stored\"");
    cr_assert_not_null(s);
    memcpy(s, "\"STORED\"", 8);
    f = fopen(p, "w");
    fputs(whole, f);
    fclose(f);
    free(whole);
    hx_audit_report_t r;
    char why[1024];
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 2);
    cr_assert_str_eq(r.bad_file, p);
    cr_assert(strstr(why, names[0]) && strstr(why, "line 2") && strstr(why, "edited"), "%s", why);
}

Test(rotation, a_missing_file_in_the_middle_is_named)
{
    char names[8][64], p[600];
    make_series(names);
    in_dir(p, sizeof p, names[1]);
    unlink(p);
    hx_audit_report_t r;
    char why[1024];
    cr_assert_gt(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0);
    cr_assert(strstr(why, names[1]) && strstr(why, "missing"), "%s", why);
    in_dir(p, sizeof p, names[0]);              /* the oldest gone too: a series again, trusted */
    unlink(p);
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(r.trusted, names[1]);
}

Test(rotation, a_truncated_rotated_file_is_named)
{
    char names[8][64], p[600];
    make_series(names);
    in_dir(p, sizeof p, names[1]);
    cr_assert_geq(count_lines(p), 2);
    FILE *f = fopen(p, "r");
    char keep[4096] = "";
    cr_assert_not_null(fgets(keep, sizeof keep, f));
    fclose(f);
    f = fopen(p, "w");
    fputs(keep, f);
    fclose(f);
    hx_audit_report_t r;
    char why[1024];
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 2);
    cr_assert_str_eq(r.bad_file, p);
    cr_assert(strstr(why, "were cut"), "%s", why);
}

Test(rotation, a_rotated_file_the_series_does_not_reach_is_named)
{
    char names[8][64], p[600];
    make_series(names);
    cr_assert_eq(unlink(log_path), 0);
    char why[1024];
    hx_audit_report_t r;
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "the newest rotated file ends "
                 "the series when the log is missing: %s", why);
    cr_assert(r.log_empty);
    in_dir(p, sizeof p, "other.jsonl");         /* a new chain in the log's place */
    hx_audit_t *a = hx_audit_open(p, why, sizeof why);
    cr_assert_not_null(a, "%s", why);
    cr_assert_eq(hx_audit_write(a, "broker", "hello", "", "ok"), 0);
    hx_audit_close(&a);
    cr_assert_eq(rename(p, log_path), 0);
    cr_assert_gt(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0);
    cr_assert(strstr(why, "does not reach") && strstr(why, names[0]), "%s", why);
}

/* A crash between the rename and the new file's first line: the series verifies, and the next
 * open continues the newest rotated file. */
Test(rotation, a_rotation_stopped_by_a_crash_is_continued)
{
    hx_audit_t *a = open_rotating(0, false, 0);
    write_events(a, 4);
    hx_audit_close(&a);
    char p[600], why[1024];
    in_dir(p, sizeof p, "audit.jsonl.20260302T000010Z");
    cr_assert_eq(rename(log_path, p), 0);       /* renamed; no new file yet */
    hx_audit_report_t r;
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "%s", why);
    cr_assert_eq(r.lines, 4);
    FILE *f = fopen(log_path, "w");             /* created, its first line not written */
    fclose(f);
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "%s", why);
    a = open_rotating(0, false, 0);
    write_events(a, 1);
    hx_audit_close(&a);
    cr_assert_eq(hx_audit_verify_series(log_path, NULL, &r, why, sizeof why), 0, "%s", why);
    cr_assert_eq(r.files, 2);
    cr_assert_eq(r.lines, 6, "4, then audit.rotated and 1");
}

/* The broker's anchor counts lines over the series: a head recorded before a rotation is
 * found in the rotated file, at start and by verify; a cut is still found. */
Test(rotation, the_anchor_holds_across_rotation)
{
    hx_audit_t *a = open_rotating(1200, false, 0);
    write_events(a, 2);
    uint8_t blob[HX_AUDIT_ANCHOR_LEN];
    int fd = -1;
    cr_assert_eq(hx_audit_anchor_hook(a, blob, sizeof blob, &fd), HX_AUDIT_ANCHOR_LEN);
    char anchor[600];
    in_dir(anchor, sizeof anchor, "audit.anchor");
    cr_assert_eq(hx_audit_set_anchor_file(a, anchor), 0);
    hx_audit_anchored_hook(a, blob, sizeof blob);
    write_events(a, 8);                         /* rotations while the store may sync fd */
    hx_audit_close(&a);
    char names[8][64];
    cr_assert_geq(rotated(names, 8), 2);
    hx_audit_report_t r;
    char why[1024];
    cr_assert_eq(hx_audit_verify_series(log_path, anchor, &r, why, sizeof why), 0, "%s", why);
    cr_assert_eq(r.anchored, 2);
    a = open_rotating(1200, false, 0);          /* recovery finds the old head */
    cr_assert_eq(hx_audit_set_anchor_file(a, anchor), 0);
    hx_audit_anchored_hook(a, blob, sizeof blob);
    cr_assert_null(hx_audit_anchor_error(a), "%s", hx_audit_anchor_error(a));
    fd = -1;
    cr_assert_eq(hx_audit_anchor_hook(a, blob, sizeof blob, &fd), HX_AUDIT_ANCHOR_LEN);
    hx_audit_anchored_hook(a, blob, sizeof blob);
    hx_audit_close(&a);
    cr_assert_eq(hx_audit_verify_series(log_path, anchor, &r, why, sizeof why), 0, "%s", why);
    cr_assert_eq(r.anchored, r.lines, "the head now: the series' last line");
    FILE *f = fopen(log_path, "r");             /* cut the log's last line */
    char keep[8192] = "", line[4096];
    size_t n = count_lines(log_path);
    for (size_t i = 0; i + 1 < n && fgets(line, sizeof line, f); i++)
        strcat(keep, line);
    fclose(f);
    f = fopen(log_path, "w");
    fputs(keep, f);
    fclose(f);
    cr_assert_gt(hx_audit_verify_series(log_path, anchor, &r, why, sizeof why), 0);
    char want[160];
    snprintf(want, sizeof want, "the audit log ends at line %llu but the log anchored line %llu",
             (unsigned long long)r.lines, (unsigned long long)r.lines + 1);
    cr_assert(strstr(why, want), "%s", why);
    a = open_rotating(1200, false, 0);
    hx_audit_anchored_hook(a, blob, sizeof blob);
    cr_assert_not_null(hx_audit_anchor_error(a));
    hx_audit_close(&a);
}
