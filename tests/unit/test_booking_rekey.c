/* Unit: scheduling's database sealed again with a new data key (handoff-scheduling --rekey,
 * hx_booking_rekey): every sealed value carries the new key's id, a store in clear is sealed,
 * a wrong old key changes nothing and names the key id expected, and nothing readable is left
 * in the files. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_booking.h"
#include "hx_seal.h"

static char home[64];

static void make_home(void)
{
    cr_assert_eq(sodium_init() >= 0, 1);
    snprintf(home, sizeof home, "/tmp/hx-rekey-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(home));
}

static void remove_home(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(scheduling, .init = make_home, .fini = remove_home);

static void key_of(uint8_t key[32], uint8_t fill)
{
    memset(key, fill, 32);
}

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

/* The tables scheduling seals values in, with one value of each sealed by key (NULL: clear). */
static void scheduling_db(const char *path, const uint8_t *key)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "PRAGMA journal_mode=WAL;"
                              "CREATE TABLE referrals (referral_id TEXT PRIMARY KEY, status INTEGER NOT NULL, "
                              "case_pb BLOB NOT NULL);"
                              "CREATE TABLE thread (post_id TEXT PRIMARY KEY, referral_id TEXT NOT NULL, text TEXT "
                              "NOT NULL, attachment BLOB) WITHOUT ROWID;"
                              "CREATE TABLE handled (msg_id BLOB PRIMARY KEY, outputs BLOB NOT NULL) WITHOUT ROWID;",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    static const char *const sql[] = {
        "INSERT INTO referrals VALUES ('R-A', 1, ?)",
        "INSERT INTO thread VALUES ('P-1', 'R-A', ?, NULL)",
        "INSERT INTO handled VALUES (x'0102', ?)",
    };
    static const char *const values[] = {"Case of Tiago Mendes-Example 5555-141-001-TM", "Mendes-Example's knee",
                                         "outputs naming Mendes-Example"};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(db, sql[i], -1, &st, NULL), SQLITE_OK);
        uint8_t *v;
        size_t n;
        if (key) {
            cr_assert_eq(hx_seal(key, (const uint8_t *)values[i], strlen(values[i]), &v, &n), 0);
            sqlite3_bind_blob(st, 1, v, (int)n, free);
        } else {
            sqlite3_bind_text(st, 1, values[i], -1, SQLITE_STATIC);
        }
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

static void expect_sealed_with(const char *path, const uint8_t *key)
{
    char want[HX_SEAL_ID_TEXT];
    hx_seal_key_id(key, want);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT case_pb FROM referrals UNION ALL SELECT text FROM thread UNION ALL "
                                        "SELECT outputs FROM handled", -1, &st, NULL), SQLITE_OK);
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const uint8_t *v = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        char id[HX_SEAL_ID_TEXT], why[400];
        cr_expect(hx_sealed_key_id(v, n, id), "row %d is sealed with a key id", rows);
        cr_expect_str_eq(id, want);
        uint8_t *out;
        size_t len;
        cr_expect_eq(hx_unseal(key, v, n, &out, &len, why, sizeof why), 0, "%s", why);
        if (len)
            free(out);
        rows++;
    }
    cr_expect_eq(rows, 3);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(scheduling, a_rekey_seals_every_value_again_and_leaves_nothing_readable)
{
    char path[160], err[1024];
    snprintf(path, sizeof path, "%s/scheduling.db", home);
    uint8_t a[32], b[32];
    key_of(a, 21);
    key_of(b, 22);
    scheduling_db(path, a);
    size_t n = 0;
    cr_assert_eq(hx_booking_rekey(path, a, b, &n, err, sizeof err), 0, "%s", err);
    cr_expect_eq(n, 3);
    expect_sealed_with(path, b);
    char wal[180];
    snprintf(wal, sizeof wal, "%s-wal", path);
    cr_expect_not(file_has(path, "Mendes-Example") || file_has(wal, "Mendes-Example"));
}

Test(scheduling, a_store_in_clear_is_sealed_by_a_rekey_without_an_old_key)
{
    char path[160], err[1024];
    snprintf(path, sizeof path, "%s/scheduling.db", home);
    uint8_t b[32];
    key_of(b, 23);
    scheduling_db(path, NULL);
    char wal[180];
    snprintf(wal, sizeof wal, "%s-wal", path);
    cr_assert(file_has(path, "5555-141-001-TM") || file_has(wal, "5555-141-001-TM"), "the test starts in clear");
    size_t n = 0;
    cr_assert_eq(hx_booking_rekey(path, NULL, b, &n, err, sizeof err), 0, "%s", err);
    cr_expect_eq(n, 3);
    expect_sealed_with(path, b);
    cr_expect_not(file_has(path, "5555-141-001-TM") || file_has(wal, "5555-141-001-TM"));
}

Test(scheduling, the_wrong_old_key_changes_nothing_and_names_the_key_id_expected)
{
    char path[160], err[1024];
    snprintf(path, sizeof path, "%s/scheduling.db", home);
    uint8_t a[32], wrong[32], b[32];
    key_of(a, 31);
    key_of(wrong, 32);
    key_of(b, 33);
    scheduling_db(path, a);
    char ida[HX_SEAL_ID_TEXT];
    hx_seal_key_id(a, ida);
    size_t n = 9;
    cr_assert_eq(hx_booking_rekey(path, wrong, b, &n, err, sizeof err), -1);
    cr_expect_eq(n, 0);
    cr_expect(strstr(err, ida) && strstr(err, "referrals.case_pb of R-A"), "names the row and the key id: %s", err);
    expect_sealed_with(path, a);                /* unchanged */
    cr_assert_eq(hx_booking_rekey(path, NULL, b, &n, err, sizeof err), -1, "no old key: sealed values do not open");
    cr_expect(strstr(err, ida), "%s", err);
    expect_sealed_with(path, a);
}

Test(scheduling, a_worker_with_another_key_or_none_is_refused_naming_the_key_id)
{
    char path[160], err[1024];
    snprintf(path, sizeof path, "%s/scheduling.db", home);
    uint8_t a[32], b[32];
    key_of(a, 41);
    key_of(b, 42);
    scheduling_db(path, NULL);
    cr_expect_eq(hx_booking_key_check(path, a, err, sizeof err), 0, "nothing sealed yet: any key: %s", err);
    cr_expect_eq(hx_booking_key_check(path, NULL, err, sizeof err), 0, "... or none: %s", err);
    size_t n;
    cr_assert_eq(hx_booking_rekey(path, NULL, a, &n, err, sizeof err), 0, "%s", err);
    char ida[HX_SEAL_ID_TEXT], idb[HX_SEAL_ID_TEXT];
    hx_seal_key_id(a, ida);
    hx_seal_key_id(b, idb);
    cr_expect_eq(hx_booking_key_check(path, a, err, sizeof err), 0, "%s", err);
    cr_expect_eq(hx_booking_key_check(path, b, err, sizeof err), -1);
    cr_expect(strstr(err, ida) && strstr(err, idb), "names the key id needed and the one given: %s", err);
    cr_expect_eq(hx_booking_key_check(path, NULL, err, sizeof err), -1);
    cr_expect(strstr(err, ida) && strstr(err, "no --data-key"), "%s", err);
}
