/* intake_store — see intake_store.h. */
#include "intake_store.h"

/* The intake record's schema, one step per version, each dialect's DDL. */
const hx_db_step_t hx_intake_steps[] = {
    {.sqlite = "CREATE TABLE IF NOT EXISTS referrals ("
               "  referral_id TEXT PRIMARY KEY, clinic TEXT NOT NULL, ref TEXT NOT NULL,"
               "  outcome TEXT NOT NULL, reason TEXT NOT NULL, received_ms INTEGER NOT NULL)",
     .postgres = "CREATE TABLE IF NOT EXISTS referrals ("
                 "  referral_id TEXT PRIMARY KEY, clinic TEXT NOT NULL, ref TEXT NOT NULL,"
                 "  outcome TEXT NOT NULL, reason TEXT NOT NULL, received_ms BIGINT NOT NULL)"},
};

const size_t hx_intake_n_steps = sizeof hx_intake_steps / sizeof hx_intake_steps[0];
