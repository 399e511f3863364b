/* Unit: the allow-list and the revoked record (hx_curve): parsing, what a reload changed,
 * revoked keys left out, and a file replaced after it was opened. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hx_curve.h"

static char keys[4][HX_KEY_Z85 + 1];
static uint8_t raw[4][32];

static void setup(void)
{
    for (int i = 0; i < 4; i++) {
        char sec[HX_KEY_Z85 + 1];
        cr_assert_eq(hx_key_generate(keys[i], sec), 0);
        cr_assert_not_null(zmq_z85_decode(raw[i], keys[i]));
    }
}

TestSuite(curve, .init = setup);

static hx_allow_t *allow_of(const char *fmt, ...)
{
    static char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char err[256] = "";
    hx_allow_t *a = hx_allow_parse(text, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    return a;
}

/* Appends "principal;" to the string arg, checking the Z85 text given is the key's. */
static void note(void *arg, const uint8_t key[32], const char *principal, const char *z85)
{
    char z[HX_KEY_Z85 + 1];
    zmq_z85_encode(z, key, 32);
    cr_expect_str_eq(z, z85);
    strncat(arg, principal, 200);
    strncat(arg, ";", 2);
}

Test(curve, the_revoked_record_takes_any_trailing_fields_and_counts_a_key_once)
{
    char text[1024], err[256] = "";
    snprintf(text, sizeof text,
             "# <key> <role> <name> <date> <why>\n%s clinic lakeside 2026-01-05T10:00:00Z revoked\n"
             "%s\n\n%s clinic lakeside 2026-02-01T10:00:00Z revoked\n%s nonsense-role x y z\n",
             keys[0], keys[1], keys[0], keys[2]);
    hx_allow_t *r = hx_revoked_parse(text, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    cr_expect_eq(hx_allow_count(r), 3);
    cr_expect_str_eq(hx_allow_find(r, raw[0]), "clinic:lakeside");
    cr_expect_str_eq(hx_allow_find(r, raw[1]), "", "a bare key has no principal, but is listed");
    cr_expect_str_eq(hx_allow_find(r, raw[2]), "");
    cr_expect_null(hx_allow_find(r, raw[3]));
    hx_allow_destroy(&r);
    cr_expect_null(r);
}

Test(curve, a_revoked_record_line_without_a_key_is_refused_with_its_line)
{
    char err[256] = "";
    cr_expect_null(hx_revoked_parse("# fine\nnot-a-key clinic x\n", err, sizeof err));
    cr_expect(strstr(err, "line 2: the key is not 40 characters of Z85"), "%s", err);
}

Test(curve, subtract_leaves_out_revoked_keys_and_names_each)
{
    hx_allow_t *a = allow_of("%s clinic northpoint\n%s clinic lakeside\n%s service intake\n", keys[0], keys[1], keys[2]);
    hx_allow_t *r = hx_allow_new();
    cr_assert_not_null(r);
    cr_assert_eq(hx_allow_put(r, raw[1], ""), 0);
    cr_assert_eq(hx_allow_put(r, raw[3], "clinic:gone"), 0);
    char seen[256] = "";
    cr_expect_eq(hx_allow_subtract(a, r, note, seen), 1);
    cr_expect_str_eq(seen, "clinic:lakeside;");
    cr_expect_eq(hx_allow_count(a), 2);
    cr_expect_null(hx_allow_find(a, raw[1]));
    cr_expect_not_null(hx_allow_find(a, raw[0]));
    cr_expect(!hx_allow_has_principal(a, "clinic:lakeside"));
    hx_allow_destroy(&a);
    hx_allow_destroy(&r);
}

Test(curve, each_missing_names_removed_added_and_rebound_keys_in_file_order)
{
    hx_allow_t *old = allow_of("%s clinic northpoint\n%s clinic lakeside\n%s service intake\n", keys[0], keys[1],
                               keys[2]);
    hx_allow_t *now = allow_of("%s clinic northpoint\n%s service intake\n%s clinic harbour\n%s admin lakeside\n",
                               keys[0], keys[2], keys[3], keys[1]);
    char gone[256] = "", came[256] = "";
    hx_allow_each_missing(old, now, note, gone);
    hx_allow_each_missing(now, old, note, came);
    cr_expect_str_eq(gone, "clinic:lakeside;", "the key now names someone else: its old binding went");
    cr_expect_str_eq(came, "clinic:harbour;admin:lakeside;");
    hx_allow_destroy(&old);
    hx_allow_destroy(&now);
}

Test(curve, put_and_remove)
{
    hx_allow_t *a = hx_allow_new();
    cr_assert_not_null(a);
    cr_expect_eq(hx_allow_put(a, raw[0], "clinic:a"), 0);
    cr_expect_eq(hx_allow_put(a, raw[0], "clinic:b"), 0);
    cr_expect_eq(hx_allow_count(a), 1);
    cr_expect_str_eq(hx_allow_find(a, raw[0]), "clinic:b");
    cr_expect(hx_allow_remove(a, raw[0]));
    cr_expect(!hx_allow_remove(a, raw[0]));
    cr_expect_eq(hx_allow_count(a), 0);
    hx_allow_destroy(&a);
}

Test(curve, load_refuses_a_folder_and_names_a_missing_file)
{
    char err[700] = "";
    cr_expect_null(hx_allow_load("/tmp", err, sizeof err));
    cr_expect(strstr(err, "/tmp: not a regular file"), "%s", err);
    cr_expect_null(hx_revoked_load("/nonexistent/revoked.txt", err, sizeof err));
    cr_expect(strstr(err, "/nonexistent/revoked.txt: No such file or directory"), "%s", err);
}

Test(curve, an_empty_file_is_an_empty_list)
{
    char path[] = "/tmp/hx-curve-XXXXXX", err[700] = "";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    hx_allow_t *a = hx_revoked_load(path, err, sizeof err);
    cr_expect_not_null(a, "%s", err);
    cr_expect_eq(a ? hx_allow_count(a) : 99, 0);
    hx_allow_destroy(&a);
    unlink(path);
}
