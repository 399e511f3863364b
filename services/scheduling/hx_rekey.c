/* hx_booking_rekey — scheduling's database sealed again with a new data key (hx_booking.h). */
#include "hx_booking.h"
#include "hx_seal_store.h"

#include <stdio.h>
#include <string.h>

/* What scheduling seals with its data key (hx_booking.c, hx_thread.c): each referral's Case,
 * each care-thread post's text and attachment, each handled message's stored outputs. */
static const hx_sealed_column_t sealed_columns[] = {
    {"referrals", "referral_id", "case_pb"},
    {"thread", "post_id", "text"},
    {"thread", "post_id", "attachment"},
    {"handled", "msg_id", "outputs"},
};

int hx_booking_key_check(const char *db_path, const uint8_t *key, char *err, size_t cap)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    char mine[HX_SEAL_ID_TEXT] = "", theirs[HX_SEAL_ID_TEXT] = "";
    if (key)
        hx_seal_key_id(key, mine);
    int rc = 0;
    for (size_t i = 0; rc == 0 && !theirs[0] && i < sizeof sealed_columns / sizeof *sealed_columns; i++) {
        const hx_sealed_column_t *c = &sealed_columns[i];
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE substr(%s, 1, 3) = x'007332' LIMIT 1", c->column, c->table,
                 c->column);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
            snprintf(err, cap, "%s: %s", db_path, sqlite3_errmsg(db));
            rc = -1;
            break;
        }
        if (sqlite3_step(st) == SQLITE_ROW)
            hx_sealed_key_id(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), theirs);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    if (rc == 0 && theirs[0] && strcmp(theirs, mine) != 0) {
        if (key)
            snprintf(err, cap, "%s is sealed with the data key of id %s, and --data-key has id %s: give the key with "
                     "id %s (or seal it with this one: --rekey)", db_path, theirs, mine, theirs);
        else
            snprintf(err, cap, "%s is sealed with the data key of id %s, and no --data-key is given: give the key "
                     "with id %s", db_path, theirs, theirs);
        rc = -1;
    }
    return rc;
}

int hx_booking_rekey(const char *db_path, const uint8_t *old_key, const uint8_t new_key[32], size_t *count, char *err,
                     size_t cap)
{
    *count = 0;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    char why[1024];
    int rc = sqlite3_exec(db, "PRAGMA secure_delete=ON; BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
    if (rc != 0)
        snprintf(err, cap, "%s: %s", db_path, sqlite3_errmsg(db));
    else if (hx_seal_columns(db, sealed_columns, sizeof sealed_columns / sizeof *sealed_columns, old_key, new_key,
                             false, count, why, sizeof why) != 0) {
        snprintf(err, cap, "%s: %s", db_path, why);
        rc = -1;
    } else if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, cap, "%s: %s", db_path, sqlite3_errmsg(db));
        rc = -1;
    }
    if (rc != 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        *count = 0;
    } else if (hx_seal_scrub(db, why, sizeof why) != 0) {
        snprintf(err, cap, "%s: sealed again, but %s (run it again: sqlite3 %s VACUUM)", db_path, why, db_path);
        rc = -1;
    }
    sqlite3_close(db);
    return rc;
}
