/* hx_booking_store — what of scheduling's store others need without the rest of hx_booking.h
 * (`handoff admin migrate`): PostgreSQL's schema steps for the "scheduling" schema (hx_db.h),
 * and the version a SQLite store must be at (PRAGMA user_version) to be copied into it. */
#ifndef HX_BOOKING_STORE_H
#define HX_BOOKING_STORE_H
#include <stddef.h>

#include "hx_db.h"

const hx_db_step_t *hx_booking_pg_steps(size_t *n);
enum { HX_BOOKING_SQLITE_VERSION = 4 };

#endif
