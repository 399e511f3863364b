/* hx_accounts_internal — what the accounts store shares with the other part of its library
 * that keeps its tables in the same store (hx_api.c): the store, statements with the store's
 * error kept, transactions, the clock and the API's key. Not for programs: they use
 * hx_accounts.h and hx_api.h. */
#ifndef HX_ACCOUNTS_INTERNAL_H
#define HX_ACCOUNTS_INTERNAL_H
#include "hx_accounts.h"
#include "hx_db.h"

#include <sodium.h>

/* The store's connection (owned by the store; one thread at a time, as the store). */
hx_db_t *hx_accounts_db(hx_accounts_t *a);
/* Now, by the store's clock (the injected one, else the real one), in ms since the epoch. */
uint64_t hx_accounts_now_ms(const hx_accounts_t *a);
/* The key of the API's secret and token hashes (crypto_generichash_KEYBYTES), made once and
 * kept in the store. */
const uint8_t *hx_accounts_api_key(const hx_accounts_t *a);

/* sql (a string literal: kept prepared) with n values bound to ?1.. in order; NULL on error.
 * Give it back with hx_db_done. */
hx_db_stmt_t *hx_accounts_prep(hx_accounts_t *a, const char *sql, const hx_db_val_t *v, size_t n);
/* hx_db_step, its failure kept for hx_accounts_error. */
int hx_accounts_step(hx_accounts_t *a, hx_db_stmt_t *st);
/* One statement run: 0, or -1. *changes (may be NULL): the rows it wrote. */
int hx_accounts_exec(hx_accounts_t *a, const char *sql, const hx_db_val_t *v, size_t n, int64_t *changes);
/* A write transaction (hx_db_begin), its commit (rolled back when it fails) and rollback. */
int hx_accounts_begin(hx_accounts_t *a);
int hx_accounts_commit(hx_accounts_t *a);
void hx_accounts_rollback(hx_accounts_t *a);
/* What last failed, in words (the store and the database's message). */
const char *hx_accounts_error(const hx_accounts_t *a);

#define HX_ACC_VALS(...) ((const hx_db_val_t[]){__VA_ARGS__}), (sizeof((const hx_db_val_t[]){__VA_ARGS__}) / sizeof(hx_db_val_t))
#define EXEC(a, sql, changes, ...) hx_accounts_exec((a), (sql), HX_ACC_VALS(__VA_ARGS__), (changes))
#define EXEC0(a, sql, changes) hx_accounts_exec((a), (sql), NULL, 0, (changes))
#define PREP(a, sql, ...) hx_accounts_prep((a), (sql), HX_ACC_VALS(__VA_ARGS__))

#endif
