/* intake_store — intake's record (one row per referral: its first outcome), as schema steps
 * per dialect (hx_db.h): handoff-intake opens its store with them, `handoff admin migrate`
 * makes the PostgreSQL schema with them before copying a SQLite store into it. */
#ifndef INTAKE_STORE_H
#define INTAKE_STORE_H
#include <stddef.h>

#include "hx_db.h"

extern const hx_db_step_t hx_intake_steps[];
extern const size_t hx_intake_n_steps;

#endif
