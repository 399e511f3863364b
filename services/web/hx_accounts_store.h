/* hx_accounts_store — the portal's accounts store (users, sessions, the second factor, the
 * audit, the notices' outbox and the FHIR API's clients, tokens and subscriptions) as schema
 * steps per dialect (hx_db.h, component "accounts"): handoff-web opens its store with them
 * (hx_accounts.c), `handoff admin migrate` makes the PostgreSQL schema with them before copying
 * a SQLite file into it. */
#ifndef HX_ACCOUNTS_STORE_H
#define HX_ACCOUNTS_STORE_H
#include <stddef.h>

#include "hx_db.h"

extern const hx_db_step_t hx_accounts_steps[];
extern const size_t hx_accounts_n_steps;

#endif
