/* Unit tests for the hash-chained audit log: a clean chain verifies; an edited, deleted or
 * reordered line is found, by number. */
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
