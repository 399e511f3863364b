/* hx_booking_rekey — scheduling's database sealed again with a new data key (hx_booking.h). */
#include "hx_booking.h"
#include "hx_db.h"
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

/* The key id of the first sealed value in the PostgreSQL store at url ("" when none). */
static int pg_sealed_id(const char *url, char theirs[HX_SEAL_ID_TEXT], char *err, size_t cap)
{
    /* literals, one per column (hx_db_prep keeps statements by their text's address) */
    static const char *const queries[] = {
        "SELECT case_pb FROM referrals WHERE substr(case_pb, 1, 3) = ? LIMIT 1",
        "SELECT text FROM thread WHERE substr(text, 1, 3) = ? LIMIT 1",
        "SELECT attachment FROM thread WHERE substr(attachment, 1, 3) = ? LIMIT 1",
        "SELECT outputs FROM handled WHERE substr(outputs, 1, 3) = ? LIMIT 1",
    };
    static const uint8_t magic[3] = {0x00, 0x73, 0x32};
    hx_db_t *db = hx_db_open(url, "scheduling", NULL, 0, err, cap);
    if (!db)
        return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && !theirs[0] && i < sizeof queries / sizeof *queries; i++) {
        hx_db_stmt_t *st = hx_db_prep(db, queries[i]);
        int step = st && hx_db_bind_blob(st, 1, magic, sizeof magic) == 0 ? hx_db_step(st) : -1;
        if (step == HX_DB_ROW)
            hx_sealed_key_id(hx_db_col_blob(st, 0), hx_db_col_bytes(st, 0), theirs);
        else if (step < 0) {
            snprintf(err, cap, "%s", hx_db_errmsg(db));
            rc = -1;
        }
        hx_db_done(st);
    }
    hx_db_close(&db);
    return rc;
}

int hx_booking_key_check(const char *url, const uint8_t *key, char *err, size_t cap)
{
    const char *db_path = url;
    if (strncmp(url, "postgres", 8) == 0) {
        char mine[HX_SEAL_ID_TEXT] = "", theirs[HX_SEAL_ID_TEXT] = "";
        if (key)
            hx_seal_key_id(key, mine);
        if (pg_sealed_id(url, theirs, err, cap) != 0)
            return -1;
        if (theirs[0] && strcmp(theirs, mine) != 0) {
            snprintf(err, cap, "the scheduling store is sealed with the data key of id %s, and %s%s: give the key "
                     "with id %s", theirs, key ? "--data-key has id " : "no --data-key is given", key ? mine : "",
                     theirs);
            return -1;
        }
        return 0;
    }
    hx_db_kind_t kind;
    if (hx_db_url_parse(url, &kind, &db_path, err, cap) != 0)
        return -1;
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

int hx_booking_rekey(const char *url, const uint8_t *old_key, const uint8_t new_key[32], size_t *count, char *err,
                     size_t cap)
{
    *count = 0;
    hx_db_kind_t kind;
    const char *db_path;
    if (hx_db_url_parse(url, &kind, &db_path, err, cap) != 0)
        return -1;
    if (kind != HX_DB_SQLITE) {
        snprintf(err, cap, "--rekey seals a SQLite store again; a PostgreSQL store keeps the key it has (OPERATIONS.md)");
        return -1;
    }
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
