/* hx_accounts_internal — what the accounts store shares with the other parts of its library
 * that keep their tables in the same file (hx_api.c): the SQLite handle, the clock and the
 * API's key. Not for programs: they use hx_accounts.h and hx_api.h. */
#ifndef HX_ACCOUNTS_INTERNAL_H
#define HX_ACCOUNTS_INTERNAL_H
#include "hx_accounts.h"

#include <sodium.h>
#include <sqlite3.h>

/* The store's SQLite handle (owned by the store). */
sqlite3 *hx_accounts_db(hx_accounts_t *a);
/* Now, by the store's clock (the injected one, else the real one), in ms since the epoch. */
uint64_t hx_accounts_now_ms(const hx_accounts_t *a);
/* The key of the API's secret and token hashes (crypto_generichash_KEYBYTES), made once and
 * kept in the store. */
const uint8_t *hx_accounts_api_key(const hx_accounts_t *a);

/* Runs sql with up to two text binds (?1, ?2) and an integer (?3, when n >= 0): 0 when it ran
 * (SQLITE_DONE or SQLITE_ROW), -1 when not. */
int hx_accounts_run(hx_accounts_t *a, const char *sql, const char *t1, const char *t2, int64_t n);

/* hx_api.c: the API's tables, also on a store made before them. 0, or -1. */
int hx_api_migrate(hx_accounts_t *a);

#endif
