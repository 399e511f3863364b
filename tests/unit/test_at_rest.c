/* Unit: patient data at rest (docs/OPERATIONS.md, "Encryption at rest") — sealed values and
 * their key ids (hx_seal), and a clinic's store sealed with its store key (made on first use,
 * one derived from the portal's data key, a clear store sealed in place, a wrong key refused
 * with the key id it needs, a rotation). Scheduling's rekey: test_booking_rekey.c. What is
 * checked on disk is the files' bytes themselves. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hx_clinic.h"
#include "hx_seal.h"

static char home[64];

static void make_home(void)
{
    cr_assert_eq(sodium_init() >= 0, 1);
    snprintf(home, sizeof home, "/tmp/hx-at-rest-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(home));
}

static void remove_home(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(seal, .init = make_home, .fini = remove_home);
TestSuite(store, .init = make_home, .fini = remove_home);

static void key_of(uint8_t key[32], uint8_t fill)
{
    memset(key, fill, 32);
}

/* ---- sealed values ---------------------------------------------------------------------- */

Test(seal, a_value_carries_the_id_of_the_key_that_sealed_it)
{
    uint8_t a[32], b[32], *v, *out;
    size_t n, len;
    key_of(a, 1);
    key_of(b, 2);
    cr_assert_eq(hx_seal(a, (const uint8_t *)"Mendes-Example", 14, &v, &n), 0);
    cr_expect_eq(n, 14 + HX_SEAL_OVERHEAD);
    cr_expect(hx_sealed(v, n));
    cr_expect_eq(memcmp(v, "\0s2", 3), 0, "the mark of a value with a key id");
    char id[HX_SEAL_ID_TEXT], ida[HX_SEAL_ID_TEXT], idb[HX_SEAL_ID_TEXT];
    hx_seal_key_id(a, ida);
    hx_seal_key_id(b, idb);
    cr_expect_eq(strlen(ida), 8);
    cr_expect_str_neq(ida, idb);
    cr_assert(hx_sealed_key_id(v, n, id));
    cr_expect_str_eq(id, ida);
    cr_expect_null(memmem(v, n, "Mendes", 6), "nothing of the value is readable");

    char why[400];
    cr_assert_eq(hx_unseal(a, v, n, &out, &len, why, sizeof why), 0, "%s", why);
    cr_expect_eq(len, 14);
    cr_expect_str_eq((char *)out, "Mendes-Example");
    free(out);

    cr_assert_eq(hx_unseal(b, v, n, &out, &len, why, sizeof why), -1);
    cr_expect(strstr(why, ida) && strstr(why, idb), "the error names the id it was sealed with and this key's: %s",
              why);
    cr_assert_eq(hx_unseal(NULL, v, n, &out, &len, why, sizeof why), -1);
    cr_expect(strstr(why, ida), "no key: the error names the id needed: %s", why);

    v[n - 1] ^= 1;                              /* damage with the right key id */
    cr_assert_eq(hx_unseal(a, v, n, &out, &len, why, sizeof why), -1);
    cr_expect(strstr(why, "damage"), "%s", why);
    cr_assert_eq(hx_unseal(a, v, 10, &out, &len, why, sizeof why), -1);
    cr_expect(strstr(why, "too short"), "%s", why);
    free(v);
}

Test(seal, values_sealed_before_key_ids_are_still_read)
{
    uint8_t a[32], b[32], v[3 + 24 + 16 + 5], *out;
    size_t len;
    key_of(a, 7);
    key_of(b, 8);
    memcpy(v, "\0s1", 3);
    randombytes_buf(v + 3, 24);
    crypto_secretbox_easy(v + 3 + 24, (const uint8_t *)"Tiago", 5, v + 3, a);
    char why[400], id[HX_SEAL_ID_TEXT];
    cr_expect(hx_sealed(v, sizeof v));
    cr_expect_not(hx_sealed_key_id(v, sizeof v, id), "an 's1' value carries no key id");
    cr_assert_eq(hx_unseal(a, v, sizeof v, &out, &len, why, sizeof why), 0, "%s", why);
    cr_expect_eq(len, 5);
    cr_expect_eq(memcmp(out, "Tiago", 5), 0);
    free(out);
    cr_expect_eq(hx_unseal(b, v, sizeof v, &out, &len, why, sizeof why), -1);
    cr_expect(strstr(why, "does not open"), "%s", why);
    /* a clear value is copied as it is */
    cr_assert_eq(hx_unseal(NULL, (const uint8_t *)"clear", 5, &out, &len, why, sizeof why), 0);
    cr_expect_str_eq((char *)out, "clear");
    free(out);
}

/* ---- a clinic's store ------------------------------------------------------------------- */

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    bool found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/* Whether any of the store's files (the database, its WAL) holds needle. */
static bool store_has(const char *clinic, const char *needle)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s.db", home, clinic);
    bool found = file_has(path, needle);
    snprintf(path, sizeof path, "%s/%s.db-wal", home, clinic);
    return found || file_has(path, needle);
}

static int open_with(const char *clinic, const uint8_t *key, const char *key_file, hx_clinic_t **c, char *err,
                     size_t cap)
{
    hx_clinic_opts_t o = {.broker = "tcp://127.0.0.1:1", .clinic = clinic, .home = home, .timeout_ms = 300,
                          .store_key = key, .store_key_from = key ? "the test's key" : NULL,
                          .store_key_file = key_file};
    err[0] = '\0';
    return hx_clinic_open(&o, c, err, cap);
}

/* A store as written before its values were sealed: the schema of then, rows in clear. */
static void clear_store(const char *clinic)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s.db", home, clinic);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "PRAGMA journal_mode=WAL;"
                              "CREATE TABLE received (id BLOB PRIMARY KEY, type TEXT NOT NULL, referral_id TEXT "
                              "NOT NULL, from_name TEXT NOT NULL, at_ms INTEGER NOT NULL, payload BLOB NOT NULL);"
                              "CREATE TABLE sent (referral_id TEXT PRIMARY KEY, ref TEXT NOT NULL, file TEXT NOT "
                              "NULL, at_ms INTEGER NOT NULL, patient TEXT NOT NULL DEFAULT '', body BLOB);"
                              "INSERT INTO received VALUES (x'01', 'handoff.Handoff', 'R-A', 'scheduling', 10, "
                              "CAST('Dorothy Quigley-Example 5555-703-001-DQ' AS BLOB));"
                              "INSERT INTO received VALUES (x'02', 'handoff.StatusUpdate', 'R-A', 'scheduling', 11, "
                              "CAST('update about Quigley-Example' AS BLOB));"
                              "INSERT INTO sent VALUES ('R-B', 'NP-1', 'referrals/quigley.json', 5, "
                              "'Dorothy Quigley-Example', NULL);",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static void collect(void *ud, const char *type, const uint8_t *payload, size_t len, uint64_t at_ms)
{
    (void)type, (void)at_ms;
    strncat(ud, (const char *)payload, len);
    strcat(ud, "|");
}

static void collect_sent(void *ud, const char *rid, const char *ref, const char *patient, uint64_t at_ms)
{
    (void)rid, (void)ref, (void)at_ms;
    strcat(ud, patient);
}

Test(store, a_new_store_makes_its_key_file_private_on_first_use)
{
    char err[2048], path[160];
    hx_clinic_t *c = NULL;
    cr_assert_eq(open_with("lakeside", NULL, NULL, &c, err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/lakeside.store.key", home);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "the key file is made: %s", path);
    cr_expect_eq(st.st_mode & 0777, 0600);
    cr_expect_str_eq(hx_clinic_store_key_from(c), path);
    cr_expect_eq(hx_clinic_sealed_in_place(c), 0, "a new store has nothing to seal in place");
    uint8_t key[32];
    char id[HX_SEAL_ID_TEXT];
    FILE *f = fopen(path, "r");
    char hex[80] = "";
    cr_assert(fgets(hex, sizeof hex, f));
    fclose(f);
    cr_assert_eq(sodium_hex2bin(key, 32, hex, 64, NULL, NULL, NULL), 0);
    hx_seal_key_id(key, id);
    cr_expect_str_eq(hx_clinic_store_key_id(c), id);
    hx_clinic_destroy(&c);
    /* the same key again: the file is read, not made anew */
    cr_assert_eq(open_with("lakeside", NULL, NULL, &c, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(hx_clinic_store_key_id(c), id);
    hx_clinic_destroy(&c);
}

Test(store, a_clear_store_is_sealed_in_place_once_and_reads_the_same)
{
    clear_store("northpoint");
    cr_assert(store_has("northpoint", "Quigley-Example"), "the test starts from clear values");
    char err[2048];
    uint8_t key[32];
    key_of(key, 3);
    hx_clinic_t *c = NULL;
    cr_assert_eq(open_with("northpoint", key, NULL, &c, err, sizeof err), 0, "%s", err);
    cr_expect_eq(hx_clinic_sealed_in_place(c), 4, "2 payloads, a patient's name and a file name");
    char seen[512] = "";
    hx_clinic_query_t all = {.type = "handoff.Handoff"};
    cr_assert_eq(hx_clinic_each_received(c, &all, collect, seen), 0, "%s", hx_clinic_error(c));
    cr_expect_str_eq(seen, "Dorothy Quigley-Example 5555-703-001-DQ|");
    seen[0] = '\0';
    cr_assert_eq(hx_clinic_each_sent(c, collect_sent, seen), 0);
    cr_expect_str_eq(seen, "Dorothy Quigley-Example");
    hx_clinic_destroy(&c);
    cr_expect_not(store_has("northpoint", "Quigley-Example"), "no clear page is left in the files");
    cr_expect_not(store_has("northpoint", "5555-703-001-DQ"));
    cr_expect_not(store_has("northpoint", "quigley.json"));
    cr_expect(store_has("northpoint", "R-A"), "ids stay clear for queries");

    cr_assert_eq(open_with("northpoint", key, NULL, &c, err, sizeof err), 0, "%s", err);
    cr_expect_eq(hx_clinic_sealed_in_place(c), 0, "sealed once: the second open has nothing to do");
    hx_clinic_destroy(&c);
}

Test(store, another_key_is_refused_at_open_naming_the_key_id_it_needs)
{
    clear_store("harbour");
    char err[2048];
    uint8_t a[32], b[32];
    key_of(a, 4);
    key_of(b, 5);
    char ida[HX_SEAL_ID_TEXT], idb[HX_SEAL_ID_TEXT];
    hx_seal_key_id(a, ida);
    hx_seal_key_id(b, idb);
    hx_clinic_t *c = NULL;
    cr_assert_eq(open_with("harbour", a, NULL, &c, err, sizeof err), 0, "%s", err);
    hx_clinic_destroy(&c);
    cr_expect_eq(open_with("harbour", b, NULL, &c, err, sizeof err), HX_EINVAL);
    cr_expect_null(c);
    cr_expect(strstr(err, ida) && strstr(err, idb) && strstr(err, "the test's key"),
              "the error names the key id needed, the one given and where it came from: %s", err);
    /* the default key file is missing: never made anew over a sealed store */
    cr_expect_eq(open_with("harbour", NULL, NULL, &c, err, sizeof err), HX_EINVAL);
    cr_expect(strstr(err, "harbour.store.key") && strstr(err, "missing") && strstr(err, ida), "%s", err);
    char path[160];
    snprintf(path, sizeof path, "%s/harbour.store.key", home);
    cr_expect_neq(access(path, F_OK), 0);
    /* a key file that is not one */
    snprintf(path, sizeof path, "%s/bad.key", home);
    FILE *f = fopen(path, "w");
    fputs("not a key\n", f);
    fclose(f);
    cr_expect_eq(open_with("harbour", NULL, path, &c, err, sizeof err), HX_EINVAL);
    cr_expect(strstr(err, "bad.key") && strstr(err, "64 hexadecimal"), "%s", err);
}

Test(store, a_rekey_seals_every_value_with_the_new_key_and_the_old_one_opens_nothing)
{
    clear_store("eastgate");
    char err[2048];
    uint8_t a[32], b[32];
    key_of(a, 6);
    key_of(b, 9);
    hx_clinic_t *c = NULL;
    cr_assert_eq(open_with("eastgate", a, NULL, &c, err, sizeof err), 0, "%s", err);
    size_t n = 0;
    cr_assert_eq(hx_clinic_rekey(c, b, &n), 0, "%s", hx_clinic_error(c));
    cr_expect_eq(n, 4);
    char idb[HX_SEAL_ID_TEXT];
    hx_seal_key_id(b, idb);
    cr_expect_str_eq(hx_clinic_store_key_id(c), idb);
    char seen[512] = "";
    cr_assert_eq(hx_clinic_each_received(c, NULL, collect, seen), 0, "%s", hx_clinic_error(c));
    cr_expect_str_eq(seen, "Dorothy Quigley-Example 5555-703-001-DQ|update about Quigley-Example|");
    hx_clinic_destroy(&c);
    cr_expect_not(store_has("eastgate", "Quigley-Example"));

    cr_expect_eq(open_with("eastgate", a, NULL, &c, err, sizeof err), HX_EINVAL, "the old key is refused");
    cr_assert_eq(open_with("eastgate", b, NULL, &c, err, sizeof err), 0, "%s", err);
    /* every value carries the new key's id */
    char path[160];
    snprintf(path, sizeof path, "%s/eastgate.db", home);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT payload FROM received UNION ALL SELECT patient FROM sent UNION ALL "
                                        "SELECT file FROM sent", -1, &st, NULL), SQLITE_OK);
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char id[HX_SEAL_ID_TEXT];
        cr_expect(hx_sealed_key_id(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), id));
        cr_expect_str_eq(id, idb);
        rows++;
    }
    cr_expect_eq(rows, 4);
    sqlite3_finalize(st);
    sqlite3_close(db);
    hx_clinic_destroy(&c);
}

Test(store, a_hosted_clinics_key_is_derived_per_clinic_from_the_data_key)
{
    uint8_t data[32], k1[32], k2[32], again[32];
    key_of(data, 11);
    hx_clinic_store_subkey(data, "lakeside", k1);
    hx_clinic_store_subkey(data, "harbour", k2);
    hx_clinic_store_subkey(data, "lakeside", again);
    cr_expect_eq(memcmp(k1, again, 32), 0, "the same clinic gets the same key");
    cr_expect_neq(memcmp(k1, k2, 32), 0, "each clinic its own");
    cr_expect_neq(memcmp(k1, data, 32), 0, "never the data key itself");
    /* BLAKE2b-256 keyed with the data key over "handoff clinic store " and the id (documented) */
    uint8_t want[32];
    crypto_generichash(want, 32, (const uint8_t *)"handoff clinic store lakeside", 29, data, 32);
    cr_expect_eq(memcmp(k1, want, 32), 0);
}

Test(store, a_rekey_stopped_before_its_key_file_moved_says_where_the_key_is)
{
    char err[2048], path[160], next[180];
    hx_clinic_t *c = NULL;
    cr_assert_eq(open_with("laurier", NULL, NULL, &c, err, sizeof err), 0, "%s", err);
    uint8_t b[32];
    key_of(b, 12);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, b, 32);
    snprintf(path, sizeof path, "%s/laurier.store.key", home);
    snprintf(next, sizeof next, "%s.new", path);
    FILE *f = fopen(next, "w");
    fprintf(f, "%s\n", hex);
    fclose(f);
    size_t n;
    cr_assert_eq(hx_clinic_rekey(c, b, &n), 0, "%s", hx_clinic_error(c));
    hx_clinic_destroy(&c);
    cr_expect_eq(open_with("laurier", NULL, NULL, &c, err, sizeof err), HX_EINVAL);
    cr_expect(strstr(err, "laurier.store.key.new has it"), "%s", err);
    cr_assert_eq(rename(next, path), 0);
    cr_assert_eq(open_with("laurier", NULL, NULL, &c, err, sizeof err), 0, "%s", err);
    hx_clinic_destroy(&c);
}
