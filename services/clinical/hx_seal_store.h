/* hx_seal_store — sealing the values of a SQLite store in place (hx_seal.h): a store written
 * in clear sealed when a key is first given, and every value sealed again with a new key (a
 * rotation), each in the caller's transaction; then the file rewritten so that no page of the
 * old values is left in it or in its WAL. Used by the clinics' stores (hx_clinic) and
 * scheduling's database (handoff-scheduling --rekey). */
#ifndef HX_SEAL_STORE_H
#define HX_SEAL_STORE_H
#include "hx_seal.h"

#include <sqlite3.h>

/* A column of sealed values: its table, the column, and the table's primary key (one column). */
typedef struct {
    const char *table, *key, *column;
} hx_sealed_column_t;

/* Seals the values of the n columns again with key to: each opened with from first (NULL: no
 * key, so only clear values open), or, when only_clear, just the values not sealed yet. NULLs
 * stay NULL. Run it inside a transaction: on an error the caller rolls back, and nothing
 * changed. *count: the values sealed. 0, or -1 with why in err (the table, column and row). */
int hx_seal_columns(sqlite3 *db, const hx_sealed_column_t *cols, size_t n, const uint8_t *from, const uint8_t *to,
                    bool only_clear, size_t *count, char *err, size_t cap);

/* After values were sealed, outside any transaction: the old pages out of the files. With
 * PRAGMA secure_delete=ON (set it when the handle opens) what a change frees is zeroed; the
 * VACUUM writes the file anew; the WAL, which may hold pages of earlier writes, is checkpointed
 * and truncated. 0, or -1 with why in err. */
int hx_seal_scrub(sqlite3 *db, char *err, size_t cap);

#endif
