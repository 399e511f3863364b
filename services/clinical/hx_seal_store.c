/* hx_seal_store — sealing a store's values in place (see hx_seal_store.h). */
#include "hx_seal_store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The keys of the rows to seal: listed before any row changes, so that no row is met twice. */
typedef struct {
    sqlite3_value **v;
    size_t n, room;
} keys_t;

static void keys_free(keys_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        sqlite3_value_free(k->v[i]);
    free(k->v);
}

static int keys_list(sqlite3 *db, const hx_sealed_column_t *c, bool only_clear, keys_t *k)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE %s IS NOT NULL%s%s%s", c->key, c->table, c->column,
             only_clear ? " AND substr(" : "", only_clear ? c->column : "", only_clear ? ", 1, 1) IS NOT x'00'" : "");
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (k->n == k->room) {
            size_t room = k->room ? 2 * k->room : 64;
            sqlite3_value **more = realloc(k->v, room * sizeof *more);
            if (!more)
                break;
            k->v = more;
            k->room = room;
        }
        if (!(k->v[k->n] = sqlite3_value_dup(sqlite3_column_value(st, 0))))
            break;
        k->n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The row's key as text, for errors. */
static void key_text(sqlite3_value *v, char *out, size_t cap)
{
    if (sqlite3_value_type(v) == SQLITE_BLOB) {
        size_t n = (size_t)sqlite3_value_bytes(v), at = 0;
        const uint8_t *b = sqlite3_value_blob(v);
        for (size_t i = 0; i < n && at + 3 < cap; i++, at += 2)
            snprintf(out + at, cap - at, "%02x", b[i]);
        out[at] = '\0';
    } else {
        snprintf(out, cap, "%s", sqlite3_value_text(v) ? (const char *)sqlite3_value_text(v) : "");
    }
}

static int seal_column(sqlite3 *db, const hx_sealed_column_t *c, const uint8_t *from, const uint8_t *to,
                       bool only_clear, size_t *count, char *err, size_t cap)
{
    keys_t k = {0};
    sqlite3_stmt *get = NULL, *put = NULL;
    char sql[512], row[80];
    int rc = keys_list(db, c, only_clear, &k);
    snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE %s = ?", c->column, c->table, c->key);
    if (rc == 0 && sqlite3_prepare_v2(db, sql, -1, &get, NULL) != SQLITE_OK)
        rc = -1;
    snprintf(sql, sizeof sql, "UPDATE %s SET %s = ?1 WHERE %s = ?2", c->table, c->column, c->key);
    if (rc == 0 && sqlite3_prepare_v2(db, sql, -1, &put, NULL) != SQLITE_OK)
        rc = -1;
    if (rc != 0)
        snprintf(err, cap, "%s.%s: %s", c->table, c->column, sqlite3_errmsg(db));
    for (size_t i = 0; rc == 0 && i < k.n; i++) {
        key_text(k.v[i], row, sizeof row);
        sqlite3_reset(get);
        sqlite3_bind_value(get, 1, k.v[i]);
        if (sqlite3_step(get) != SQLITE_ROW) {
            snprintf(err, cap, "%s.%s of %s: %s", c->table, c->column, row, sqlite3_errmsg(db));
            rc = -1;
            break;
        }
        uint8_t *clear, *sealed;
        size_t len, slen;
        char why[400];
        if (hx_unseal(from, sqlite3_column_blob(get, 0), (size_t)sqlite3_column_bytes(get, 0), &clear, &len, why,
                      sizeof why) != 0) {
            snprintf(err, cap, "%s.%s of %s: %s", c->table, c->column, row, why);
            rc = -1;
            break;
        }
        int sealed_rc = hx_seal(to, clear, len, &sealed, &slen);
        sodium_memzero(clear, len);
        free(clear);
        if (sealed_rc != 0) {
            snprintf(err, cap, "%s.%s: out of memory", c->table, c->column);
            rc = -1;
            break;
        }
        sqlite3_reset(put);
        sqlite3_bind_blob(put, 1, sealed, (int)slen, free);
        sqlite3_bind_value(put, 2, k.v[i]);
        if (sqlite3_step(put) != SQLITE_DONE) {
            snprintf(err, cap, "%s.%s of %s: %s", c->table, c->column, row, sqlite3_errmsg(db));
            rc = -1;
            break;
        }
        (*count)++;
    }
    keys_free(&k);
    sqlite3_finalize(get);
    sqlite3_finalize(put);
    return rc;
}

int hx_seal_columns(sqlite3 *db, const hx_sealed_column_t *cols, size_t n, const uint8_t *from, const uint8_t *to,
                    bool only_clear, size_t *count, char *err, size_t cap)
{
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (seal_column(db, &cols[i], from, to, only_clear, count, err, cap) != 0)
            return -1;
    return 0;
}

int hx_seal_scrub(sqlite3 *db, char *err, size_t cap)
{
    char *why = NULL;
    if (sqlite3_exec(db, "VACUUM", NULL, NULL, &why) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, &why) != SQLITE_OK) {
        snprintf(err, cap, "the VACUUM after sealing: %s", why ? why : sqlite3_errmsg(db));
        sqlite3_free(why);
        return -1;
    }
    return 0;
}
