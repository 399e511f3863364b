/* Unit tests for the hash-chained audit log: a clean chain verifies; an edited, deleted or
 * reordered line is found, by number; against the anchor (the head the broker's log
 * recorded) a cut tail or a replaced file is found, and a cut file is not appended to. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
