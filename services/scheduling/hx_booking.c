/* hx_booking — scheduling's referrals, bookings, lifecycle and calendar in SQLite. */
#include "hx_audit.h"
#include "hx_booking.h"
#include "hx_booking_internal.h"
#include "hx_intake.h"
#include "hx_lifecycle.h"
#include "hx_log.h"
#include "hx_refjson.h"
#include "hx_seal.h"
#include "hx_svc.h"
#include "hx_thread_rules.h"

#include <sodium.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOT_MINUTES 15
#define HOLD_RETRIES_PER_MESSAGE 20

struct hx_booking {
    hx_db_t *db;                        /* SQLite (the default) or PostgreSQL (hx_db.h) */
    hx_audit_t *audit;
    const hx_directory_t *dir;
    hx_booking_config_t cfg;
    /* Every live booking, kept between messages: rebuilding it from the table for each
     * referral made booking cost grow with every booking ever made. It is dropped when
     * another connection (a second scheduling worker) has committed since (SQLite: PRAGMA
     * data_version; PostgreSQL: the calendar_version row), when a transaction rolls back,
     * and before any message that may cancel bookings; so inside a transaction it always
     * equals the table. */
    hx_calendar_t *cal;
    int64_t cal_version;
    /* cfg.data_key copied: the referral (case_pb), the care thread's text and attachments,
     * and each handled message's stored outputs are sealed with it (hx_seal.h) */
    uint8_t key[HX_SEAL_KEY_LEN];
    bool sealing;
    hx_attach_typer_t *typer;       /* tells an attachment's type by its content */
    bool in_batch;                  /* a burst's transaction is open (hx_booking_batch_begin) */
    /* referrals held by a version from before the wait list, not on it until their next
     * retry: the retries then come from the referrals table (hx_booking_on_hold) */
    bool waitlist_legacy;
};

static const char schema[] =
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS referrals ("
    "  referral_id TEXT PRIMARY KEY, referring_clinic TEXT NOT NULL, ref TEXT NOT NULL,"
    "  status INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '', case_pb BLOB NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS referrals_status ON referrals(status, updated_ms);"
    "CREATE TABLE IF NOT EXISTS bookings ("
    "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, therapist_id TEXT NOT NULL, clinic_id TEXT NOT NULL,"
    "  start INTEGER NOT NULL, minutes INTEGER NOT NULL, status INTEGER NOT NULL,"
    "  virtual INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (referral_id, discipline));"
    /* one row per 15-minute slot a therapist holds: a second booking of it cannot be stored */
    "CREATE TABLE IF NOT EXISTS slots ("
    "  therapist_id TEXT NOT NULL, slot INTEGER NOT NULL, referral_id TEXT NOT NULL,"
    "  PRIMARY KEY (therapist_id, slot)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS declined ("
    "  referral_id TEXT NOT NULL, therapist_id TEXT NOT NULL, PRIMARY KEY (referral_id, therapist_id)) WITHOUT ROWID;"
    /* the directory in force (imported from its JSON file at start and at every reload) */
    "CREATE TABLE IF NOT EXISTS clinics (id TEXT PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS therapists ("
    "  id TEXT PRIMARY KEY, name TEXT NOT NULL, discipline INTEGER NOT NULL, registration TEXT NOT NULL,"
    "  clinic_id TEXT NOT NULL REFERENCES clinics(id), languages TEXT NOT NULL, virtual INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS hours ("
    "  therapist_id TEXT NOT NULL REFERENCES therapists(id), day INTEGER NOT NULL, from_min INTEGER NOT NULL,"
    "  to_min INTEGER NOT NULL);"
    /* referrals triage could not place, and what a reviewer decided (hx_review.c) */
    "CREATE TABLE IF NOT EXISTS reviews ("
    "  referral_id TEXT PRIMARY KEY, state TEXT NOT NULL, requested_ms INTEGER NOT NULL,"
    "  reviewer TEXT NOT NULL DEFAULT '', decision TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',"
    "  decided_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    /* each referral's care thread, and the question awaiting a reply (hx_thread.c) */
    "CREATE TABLE IF NOT EXISTS thread ("
    "  post_id TEXT PRIMARY KEY, referral_id TEXT NOT NULL, kind TEXT NOT NULL, by TEXT NOT NULL,"
    "  text TEXT NOT NULL, in_reply_to TEXT NOT NULL DEFAULT '', at_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS thread_referral ON thread(referral_id, at_ms);"
    "CREATE TABLE IF NOT EXISTS thread_state ("
    "  referral_id TEXT PRIMARY KEY, question_id TEXT NOT NULL, asked_by TEXT NOT NULL,"
    "  asked_ms INTEGER NOT NULL) WITHOUT ROWID;"
    /* what a treating clinic asked to be added to a referral, and triage's answer (hx_coordinate.c) */
    "CREATE TABLE IF NOT EXISTS additions ("
    "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, state TEXT NOT NULL, requested_by TEXT NOT NULL,"
    "  request_id BLOB NOT NULL, asked_ms INTEGER NOT NULL, answer TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (referral_id, discipline)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS handled ("
    "  msg_id BLOB PRIMARY KEY, outputs BLOB NOT NULL, at_ms INTEGER NOT NULL) WITHOUT ROWID;";

/* PostgreSQL: the store as SQLite's is at version 4 with the wait list, in one step; the steps
 * after it are hx_db's (handoff_schema). Values that may be sealed are bytea (SQLite keeps a
 * clear text as TEXT); "by" is a reserved word there. */
static const hx_db_step_t pg_steps[] = {
    {.postgres =
         "CREATE TABLE referrals ("
         "  referral_id TEXT PRIMARY KEY, referring_clinic TEXT NOT NULL, ref TEXT NOT NULL,"
         "  status INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '', case_pb BYTEA NOT NULL,"
         "  updated_ms BIGINT NOT NULL, pending INTEGER NOT NULL DEFAULT 3, pending_event TEXT NOT NULL DEFAULT '',"
         "  pending_reason TEXT NOT NULL DEFAULT '', received_ms BIGINT);"
         "CREATE INDEX referrals_status ON referrals(status, updated_ms);"
         "CREATE INDEX referrals_pending ON referrals(pending, updated_ms);"
         "CREATE INDEX referrals_received ON referrals(received_ms);"
         "CREATE TABLE bookings ("
         "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, therapist_id TEXT NOT NULL,"
         "  clinic_id TEXT NOT NULL, start BIGINT NOT NULL, minutes INTEGER NOT NULL, status INTEGER NOT NULL,"
         "  virtual INTEGER NOT NULL DEFAULT 0, event TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',"
         "  distance_m BIGINT, booked_ms BIGINT, started_ms BIGINT, PRIMARY KEY (referral_id, discipline));"
         /* one row per 15-minute slot a therapist holds: a second booking of it cannot be stored,
          * whichever worker on whichever machine tries */
         "CREATE TABLE slots ("
         "  therapist_id TEXT NOT NULL, slot BIGINT NOT NULL, referral_id TEXT NOT NULL,"
         "  PRIMARY KEY (therapist_id, slot));"
         "CREATE INDEX slots_referral ON slots(referral_id);"
         "CREATE TABLE declined ("
         "  referral_id TEXT NOT NULL, therapist_id TEXT NOT NULL, PRIMARY KEY (referral_id, therapist_id));"
         "CREATE TABLE clinics (id TEXT PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);"
         "CREATE TABLE therapists ("
         "  id TEXT PRIMARY KEY, name TEXT NOT NULL, discipline INTEGER NOT NULL, registration TEXT NOT NULL,"
         "  clinic_id TEXT NOT NULL REFERENCES clinics(id), languages TEXT NOT NULL, virtual INTEGER NOT NULL);"
         "CREATE TABLE hours ("
         "  therapist_id TEXT NOT NULL REFERENCES therapists(id), day INTEGER NOT NULL, from_min INTEGER NOT NULL,"
         "  to_min INTEGER NOT NULL);"
         "CREATE TABLE reviews ("
         "  referral_id TEXT PRIMARY KEY, state TEXT NOT NULL, requested_ms BIGINT NOT NULL,"
         "  reviewer TEXT NOT NULL DEFAULT '', decision TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',"
         "  decided_ms BIGINT NOT NULL DEFAULT 0);"
         "CREATE TABLE thread ("
         "  post_id TEXT PRIMARY KEY, referral_id TEXT NOT NULL, kind TEXT NOT NULL, \"by\" TEXT NOT NULL,"
         "  text BYTEA NOT NULL, in_reply_to TEXT NOT NULL DEFAULT '', at_ms BIGINT NOT NULL, attachment BYTEA);"
         "CREATE INDEX thread_referral ON thread(referral_id, at_ms);"
         "CREATE TABLE thread_state ("
         "  referral_id TEXT PRIMARY KEY, question_id TEXT NOT NULL, asked_by TEXT NOT NULL, asked_ms BIGINT NOT NULL);"
         "CREATE TABLE additions ("
         "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, state TEXT NOT NULL, requested_by TEXT NOT NULL,"
         "  request_id BYTEA NOT NULL, asked_ms BIGINT NOT NULL, answer TEXT NOT NULL DEFAULT '',"
         "  PRIMARY KEY (referral_id, discipline));"
         "CREATE TABLE handled (msg_id BYTEA PRIMARY KEY, outputs BYTEA NOT NULL, at_ms BIGINT NOT NULL);"
         "CREATE TABLE handoff_log ("
         "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, clinic_id TEXT NOT NULL, event TEXT NOT NULL,"
         "  at_ms BIGINT NOT NULL);"
         "CREATE INDEX handoff_log_referral ON handoff_log(referral_id, event);"
         /* the wait list (hx_waitlist.c), its counts kept by a trigger in the same transaction */
         "CREATE TABLE waitlist ("
         "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, priority INTEGER NOT NULL,"
         "  since_ms BIGINT NOT NULL, escalated_ms BIGINT NOT NULL DEFAULT 0,"
         "  told_position INTEGER NOT NULL DEFAULT 0, told_length INTEGER NOT NULL DEFAULT 0,"
         "  told_estimate TEXT NOT NULL DEFAULT '', PRIMARY KEY (referral_id, discipline));"
         "CREATE INDEX waitlist_order ON waitlist(discipline, priority, since_ms);"
         "CREATE INDEX waitlist_unescalated ON waitlist(priority, since_ms) WHERE escalated_ms = 0;"
         "CREATE TABLE waitlist_counts ("
         "  discipline INTEGER NOT NULL, priority INTEGER NOT NULL, n BIGINT NOT NULL,"
         "  PRIMARY KEY (discipline, priority));"
         "CREATE FUNCTION waitlist_count() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$ "
         "BEGIN "
         "  IF TG_OP IN ('DELETE', 'UPDATE') THEN "
         "    UPDATE waitlist_counts SET n = n - 1 WHERE discipline = OLD.discipline AND priority = OLD.priority; "
         "  END IF; "
         "  IF TG_OP IN ('INSERT', 'UPDATE') THEN "
         "    INSERT INTO waitlist_counts VALUES (NEW.discipline, NEW.priority, 1) "
         "    ON CONFLICT (discipline, priority) DO UPDATE SET n = waitlist_counts.n + 1; "
         "  END IF; "
         "  RETURN NULL; "
         "END $$;"
         "CREATE TRIGGER waitlist_counts_in_out AFTER INSERT OR DELETE ON waitlist "
         "  FOR EACH ROW EXECUTE FUNCTION waitlist_count();"
         "CREATE TRIGGER waitlist_counts_move AFTER UPDATE OF discipline, priority ON waitlist "
         "  FOR EACH ROW EXECUTE FUNCTION waitlist_count();"
         /* moved on by every scheduling write transaction (write_commit): how a worker knows
          * another changed the calendar it keeps in memory */
         "CREATE TABLE calendar_version (one INTEGER PRIMARY KEY CHECK (one = 1), v BIGINT NOT NULL);"
         "INSERT INTO calendar_version VALUES (1, 0);"},
};

static int directory_import(hx_booking_t *b, const hx_directory_t *dir);
static int schema_migrate(hx_booking_t *b);
static int user_version(hx_booking_t *b);
#define SCHEMA_VERSION HX_BOOKING_SQLITE_VERSION   /* PRAGMA user_version after schema_migrate */
static int booking_mark(hx_booking_t *b, const char *rid, Handoff__Discipline d, Handoff__TaskStatus to,
                        hx_event_t ev, const char *reason);

/* ---- small SQLite helpers ---------------------------------------------------------------- */

/* Prepared statements, kept (hx_db_prep): preparing (parsing and planning) was a third of
 * scheduling's instructions per referral. */
static hx_db_stmt_t *prep(hx_booking_t *b, const char *sql)
{
    hx_db_stmt_t *st = hx_db_prep(b->db, sql);
    if (!st)
        hx_error("scheduling database: %s", hx_db_errmsg(b->db));
    return st;
}

/* A statement from prep is done with. NULL is ignored. */
static void done(hx_booking_t *b, hx_db_stmt_t *st)
{
    (void)b;
    hx_db_done(st);
}

static int exec(hx_booking_t *b, const char *sql)
{
    if (hx_db_run(b->db, sql) != 0) {
        hx_error("scheduling database: %s", hx_db_errmsg(b->db));
        return -1;
    }
    return 0;
}

static bool on_postgres(const hx_booking_t *b)
{
    return hx_db_kind(b->db) == HX_DB_POSTGRES;
}

uint64_t bk_now_ms(const hx_booking_t *b)
{
    return b->cfg.clock ? b->cfg.clock(b->cfg.clock_arg) : hx_svc_now_ms();
}

const hx_booking_config_t *bk_config(const hx_booking_t *b)
{
    return &b->cfg;
}

static hx_minute_t now_minutes(const hx_booking_t *b)
{
    return (hx_minute_t)(bk_now_ms(b) / 60000);  /* an instant: minutes since 1970 UTC */
}

/* ---- outputs ------------------------------------------------------------------------------- */

static int emit_status(hx_outbox_t *out, const char *to, const char *referral_id, const char *ref,
                       Handoff__TaskStatus status, hx_event_t ev, bool refused, const char *reason,
                       Handoff__Booking **bookings, size_t n, Handoff__TriageDecision *decision)
{
    return hx_svc_status(out, to, referral_id, ref, status, reason, "scheduling", bookings, n, decision,
                         hx_event_text(ev), refused);
}

/* ---- the referral as stored ------------------------------------------------------------------ */

typedef struct {
    Handoff__TaskStatus status;     /* derived from the handoffs (hx_referral_status) */
    Handoff__TaskStatus pending;    /* the handoffs still to be booked: received, on-hold, cancelled */
    char pending_event[24];
    char pending_reason[256];
    char referring_clinic[80];
    char ref[80];
    Handoff__Case *c;               /* unpacked case_pb */
} referral_row_t;

/* ---- sealed values ------------------------------------------------------------------------- */

int bk_bind_sealed(hx_booking_t *b, hx_db_stmt_t *st, int idx, const void *data, size_t len, bool text)
{
    /* clear text stays text on SQLite (readable with the sqlite3 shell); PostgreSQL's columns
     * for values that may be sealed are bytea, so there it goes in as bytes */
    if (!b->sealing)
        return text && !on_postgres(b) ? hx_db_bind_textn(st, idx, data, len) : hx_db_bind_blob(st, idx, data, len);
    uint8_t *v;
    size_t n;
    if (hx_seal(b->key, data, len, &v, &n) != 0)
        return -1;
    int rc = hx_db_bind_blob(st, idx, v, n);
    free(v);
    return rc;
}

int bk_column_open(hx_booking_t *b, hx_db_stmt_t *st, int col, uint8_t **out, size_t *len)
{
    char why[160];
    const uint8_t *v = hx_db_col_blob(st, col);
    if (hx_unseal(b->sealing ? b->key : NULL, v, hx_db_col_bytes(st, col), out, len, why,
                  sizeof why) != 0) {
        hx_error("scheduling database: %s", why);
        return -1;
    }
    return 0;
}

hx_attach_typer_t *bk_typer(hx_booking_t *b)
{
    return b->typer;
}

static Handoff__Case *case_column(hx_booking_t *b, hx_db_stmt_t *st, int col)
{
    uint8_t *v;
    size_t n;
    if (bk_column_open(b, st, col, &v, &n) != 0)
        return NULL;
    Handoff__Case *c = handoff__case__unpack(NULL, n, v);
    free(v);
    return c;
}

int bk_bind_case(hx_booking_t *b, hx_db_stmt_t *st, int idx, const Handoff__Case *c)
{
    size_t len = handoff__case__get_packed_size(c);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -1;
    handoff__case__pack(c, buf);
    int rc = bk_bind_sealed(b, st, idx, buf, len, false);
    free(buf);
    return rc;
}

static void row_free(referral_row_t *r)
{
    if (r->c)
        handoff__case__free_unpacked(r->c, NULL);
    r->c = NULL;
}

/* 1 found, 0 not found, -1 error. */
static int row_load(hx_booking_t *b, const char *referral_id, referral_row_t *r)
{
    memset(r, 0, sizeof *r);
    hx_db_stmt_t *st = prep(b, "SELECT status, referring_clinic, ref, case_pb, pending, pending_reason, pending_event "
                               "FROM referrals "
                               "WHERE referral_id = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, referral_id);
    int rc = hx_db_step(st);
    int found = 0;
    if (rc == HX_DB_ROW) {
        r->status = (Handoff__TaskStatus)hx_db_col_int(st, 0);
        snprintf(r->referring_clinic, sizeof r->referring_clinic, "%s", hx_db_col_text(st, 1));
        snprintf(r->ref, sizeof r->ref, "%s", hx_db_col_text(st, 2));
        r->c = case_column(b, st, 3);
        r->pending = (Handoff__TaskStatus)hx_db_col_int(st, 4);
        snprintf(r->pending_reason, sizeof r->pending_reason, "%s", hx_db_col_text(st, 5));
        snprintf(r->pending_event, sizeof r->pending_event, "%s", hx_db_col_text(st, 6));
        found = r->c ? 1 : -1;
    } else if (rc != HX_DB_DONE) {
        found = -1;
    }
    done(b, st);
    return found;
}

static int set_status(hx_booking_t *b, const char *referral_id, Handoff__TaskStatus s, const char *reason)
{
    hx_db_stmt_t *st = prep(b, "UPDATE referrals SET status = ?, reason = ?, updated_ms = ? WHERE referral_id = ?");
    if (!st)
        return -1;
    hx_db_bind_int(st, 1, (int)s);
    hx_db_bind_text(st, 2, reason ? reason : "");
    hx_db_bind_int(st, 3, (int64_t)bk_now_ms(b));
    hx_db_bind_text(st, 4, referral_id);
    int rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    done(b, st);
    return rc;
}

/* ---- bookings ------------------------------------------------------------------------------- */

typedef bk_booking_t booking_t;        /* hx_booking_internal.h */

/* The live (not cancelled) bookings of a referral, at most 2. */
static int bookings_load(hx_booking_t *b, const char *referral_id, booking_t *out, size_t *n)
{
    *n = 0;
    hx_db_stmt_t *st = prep(b, "SELECT discipline, therapist_id, clinic_id, start, minutes, status, virtual, distance_m "
                               "FROM bookings WHERE referral_id = ? AND status != ? ORDER BY start");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, referral_id);
    hx_db_bind_int(st, 2, HANDOFF__TASK_STATUS__TASK_CANCELLED);
    while (hx_db_step(st) == HX_DB_ROW && *n < 2) {
        booking_t *k = &out[(*n)++];
        memset(k, 0, sizeof *k);
        k->discipline = (Handoff__Discipline)hx_db_col_int(st, 0);
        snprintf(k->therapist_id, sizeof k->therapist_id, "%s", hx_db_col_text(st, 1));
        snprintf(k->clinic_id, sizeof k->clinic_id, "%s", hx_db_col_text(st, 2));
        k->start = hx_db_col_int(st, 3);
        k->minutes = (uint32_t)hx_db_col_int(st, 4);
        k->status = (Handoff__TaskStatus)hx_db_col_int(st, 5);
        k->virtual_session = hx_db_col_int(st, 6) != 0;
        k->km_known = !hx_db_col_null(st, 7);
        k->km = k->km_known ? hx_db_col_int(st, 7) / 1000.0 : 0;
    }
    done(b, st);
    return 0;
}

static Handoff__Booking *booking_pb(hx_booking_t *b, const char *referral_id, booking_t *k)
{
    const hx_therapist_t *t = hx_directory_therapist(b->dir, k->therapist_id);
    const hx_clinic_t *c = hx_directory_clinic(b->dir, k->clinic_id);
    const hx_tz_t *z = c ? c->tz : hx_directory_zone(b->dir);
    snprintf(k->therapist_name, sizeof k->therapist_name, "%s", t ? t->name : k->therapist_id);
    hx_minute_format(hx_tz_to_local(z, k->start), k->start_text);
    hx_minute_format(k->start, k->start_utc);
    strcat(k->start_utc, "Z");
    hx_tz_offset_text(hx_tz_offset(z, k->start), k->utc_offset);
    handoff__booking__init(&k->pb);
    k->pb.start_utc = k->start_utc;
    k->pb.time_zone = (char *)hx_tz_name(z);
    k->pb.utc_offset = k->utc_offset;
    k->pb.distance_known = k->km_known;
    k->pb.distance_km = k->km_known ? k->km : 0;
    k->pb.referral_id = (char *)referral_id;
    k->pb.discipline = k->discipline;
    k->pb.therapist_id = k->therapist_id;
    k->pb.therapist_name = k->therapist_name;
    k->pb.clinic_id = k->clinic_id;
    k->pb.start = k->start_text;
    k->pb.minutes = k->minutes;
    k->pb.virtual_ = k->virtual_session;
    return &k->pb;
}

/* Every live booking of every referral, for the slot finder: the kept calendar, or a new
 * one read from the table. */
static hx_calendar_t *calendar_load(hx_booking_t *b)
{
    if (b->cal)
        return b->cal;
    hx_calendar_t *c = hx_calendar_new();
    hx_db_stmt_t *st = c ? prep(b, "SELECT therapist_id, start, minutes FROM bookings WHERE status != ?") : NULL;
    if (!st) {
        hx_calendar_destroy(&c);
        return NULL;
    }
    hx_db_bind_int(st, 1, HANDOFF__TASK_STATUS__TASK_CANCELLED);
    while (hx_db_step(st) == HX_DB_ROW)
        hx_calendar_book(c, hx_db_col_text(st, 0), hx_db_col_int(st, 1),
                         (uint32_t)hx_db_col_int(st, 2));
    done(b, st);
    b->cal = c;
    return c;
}

static void calendar_drop(hx_booking_t *b)
{
    hx_calendar_destroy(&b->cal);
}

/* Changes when another connection (a second scheduling worker) commits; -1 on error. SQLite:
 * PRAGMA data_version. PostgreSQL: the calendar_version row, which every write transaction
 * moves on as it commits (write_commit). */
static int64_t data_version(hx_booking_t *b)
{
    hx_db_stmt_t *st = prep(b, on_postgres(b) ? "SELECT v FROM calendar_version" : "PRAGMA data_version");
    int64_t v = st && hx_db_step(st) == HX_DB_ROW ? hx_db_col_int(st, 0) : -1;
    done(b, st);
    return v;
}

/* A write transaction. On PostgreSQL every scheduling worker's write transaction first takes
 * one transaction-scoped advisory lock, so that workers on any number of machines take turns
 * as SQLite's BEGIN IMMEDIATE makes them: each sees the calendar as the last one left it, and
 * the calendar kept in memory is dropped when another worker moved it on. (The slots' primary
 * key refuses a double booking whatever happens; the turn keeps a worker from ever trying
 * one.) HX_DB_UNAVAILABLE when PostgreSQL cannot be reached. */
static int write_begin(hx_booking_t *b, char *err, size_t errcap)
{
    int rc = hx_db_begin(b->db, err, errcap);
    if (rc != 0 || !on_postgres(b))
        return rc;
    int64_t v = exec(b, "SELECT pg_advisory_xact_lock(4851526548726104666)") == 0 ? data_version(b) : -1;
    if (v < 0) {
        snprintf(err, errcap, "scheduling database: %s", hx_db_errmsg(b->db));
        hx_db_rollback(b->db);
        return -1;
    }
    if (v != b->cal_version)
        calendar_drop(b);                       /* another worker changed the calendar */
    b->cal_version = v;
    return 0;
}

/* Commits a write transaction; on PostgreSQL the calendar's version moves on with it (still
 * under the lock: no other worker committed since write_begin looked). */
static int write_commit(hx_booking_t *b, char *err, size_t errcap)
{
    if (on_postgres(b)) {
        hx_db_stmt_t *st = prep(b, "UPDATE calendar_version SET v = v + 1 RETURNING v");
        int64_t v = st && hx_db_step(st) == HX_DB_ROW ? hx_db_col_int(st, 0) : -1;
        done(b, st);
        if (v < 0) {
            snprintf(err, errcap, "scheduling database: %s", hx_db_errmsg(b->db));
            hx_db_rollback(b->db);
            calendar_drop(b);
            return -1;
        }
        b->cal_version = v;
    }
    int rc = hx_db_commit(b->db, err, errcap);
    if (rc != 0)
        calendar_drop(b);                       /* it held what is now undone */
    return rc;
}

/* ---- handoffs: one per discipline of the plan, each with its own lifecycle ------------------- */

typedef bk_handoff_t handoff_t;        /* hx_booking_internal.h */
typedef bk_handoffs_t handoffs_t;

/* The booking of h->k.discipline, whatever its status: 1 found, 0 not, -1 error. */
static int booking_load_one(hx_booking_t *b, const char *rid, handoff_t *h)
{
    hx_db_stmt_t *st = prep(b, "SELECT therapist_id, clinic_id, start, minutes, status, virtual, event, reason "
                               "FROM bookings WHERE referral_id = ? AND discipline = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    hx_db_bind_int(st, 2, (int)h->k.discipline);
    int rc = hx_db_step(st);
    int found = rc == HX_DB_ROW ? 1 : rc == HX_DB_DONE ? 0 : -1;
    if (found == 1) {
        booking_t *k = &h->k;
        snprintf(k->therapist_id, sizeof k->therapist_id, "%s", hx_db_col_text(st, 0));
        snprintf(k->clinic_id, sizeof k->clinic_id, "%s", hx_db_col_text(st, 1));
        k->start = hx_db_col_int(st, 2);
        k->minutes = (uint32_t)hx_db_col_int(st, 3);
        k->status = h->status = (Handoff__TaskStatus)hx_db_col_int(st, 4);
        k->virtual_session = hx_db_col_int(st, 5) != 0;
        snprintf(h->event, sizeof h->event, "%s", hx_db_col_text(st, 6));
        snprintf(h->reason, sizeof h->reason, "%s", hx_db_col_text(st, 7));
        h->booked = true;
    }
    done(b, st);
    return found;
}

/* The handoffs of a referral as stored (row: loaded by row_load), and its status derived
 * from them. -1 on a database error, or when a stored status is not one. */
static int handoffs_load(hx_booking_t *b, const char *rid, const referral_row_t *row, handoffs_t *hs)
{
    memset(hs, 0, sizeof *hs);
    const Handoff__TriageDecision *d = row->c ? row->c->decision : NULL;
    Handoff__TaskStatus st[2];
    for (size_t i = 0; d && i < d->n_disciplines && hs->n < 2; i++) {
        if (d->disciplines[i] != HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY &&
            d->disciplines[i] != HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY)
            continue;
        handoff_t *h = &hs->h[hs->n];
        h->k.discipline = d->disciplines[i];
        int found = booking_load_one(b, rid, h);
        if (found < 0)
            return -1;
        if (found == 0) {
            h->status = row->pending ? row->pending : HANDOFF__TASK_STATUS__TASK_RECEIVED;
            snprintf(h->reason, sizeof h->reason, "%s", row->pending_reason);
            snprintf(h->event, sizeof h->event, "%s", row->pending_event);
        }
        st[hs->n++] = h->status;
    }
    hs->status = hx_referral_status(row->status, st, hs->n);
    if (hs->status == HANDOFF__TASK_STATUS__TASK_UNSPECIFIED) {
        hx_error("referral %s: a stored status that is not a task status (referral %d)", rid, (int)row->status);
        return -1;
    }
    return 0;
}

/* Stores the referral's status as its handoffs now say (hs: them, after the change). */
static int referral_derive(hx_booking_t *b, const char *rid, handoffs_t *hs)
{
    referral_row_t row;
    int rc = row_load(b, rid, &row) == 1 ? handoffs_load(b, rid, &row, hs) : -1;
    if (rc == 0 && hs->n && hs->status != row.status) {
        hx_db_stmt_t *st = prep(b, "UPDATE referrals SET status = ?, updated_ms = ? WHERE referral_id = ?");
        rc = st ? 0 : -1;
        if (st) {
            hx_db_bind_int(st, 1, (int)hs->status);
            hx_db_bind_int(st, 2, (int64_t)bk_now_ms(b));
            hx_db_bind_text(st, 3, rid);
            rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
        }
        done(b, st);
    }
    row_free(&row);
    return rc;
}

/* The status of the handoffs still to be booked, with the event and reason that put them there. */
static int set_pending(hx_booking_t *b, const char *rid, Handoff__TaskStatus s, hx_event_t ev, const char *reason)
{
    hx_db_stmt_t *st = prep(b, "UPDATE referrals SET pending = ?, pending_event = ?, pending_reason = ? "
                               "WHERE referral_id = ?");
    int rc = st ? 0 : -1;
    if (st) {
        hx_db_bind_int(st, 1, (int)s);
        hx_db_bind_text(st, 2, ev ? hx_event_text(ev) : "");
        hx_db_bind_text(st, 3, reason ? reason : "");
        hx_db_bind_text(st, 4, rid);
        rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    }
    done(b, st);
    if (rc == 0 && s != HANDOFF__TASK_STATUS__TASK_ON_HOLD)
        rc = hx_waitlist_leave(b, rid);         /* the wait list holds exactly those on hold */
    return rc;
}

/* A handoff as it travels (HandoffStatus), pointing into h. */
static Handoff__HandoffStatus *handoff_pb(hx_booking_t *b, const char *rid, handoff_t *h)
{
    handoff__handoff_status__init(&h->pb);
    h->pb.discipline = h->k.discipline;
    h->pb.status = h->status;
    if (h->booked) {
        booking_pb(b, rid, &h->k);
        h->pb.clinic_id = h->k.clinic_id;
        h->pb.therapist_id = h->k.therapist_id;
        h->pb.therapist_name = h->k.therapist_name;
    }
    h->pb.event = h->event;
    h->pb.reason = h->reason;
    if (!h->booked && h->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD)
        hx_waitlist_fill(b, rid, h);            /* its place on the wait list (hx_waitlist.c) */
    return &h->pb;
}

typedef bk_update_t update_t;          /* hx_booking_internal.h */

/* A StatusUpdate to clinic `to`: u, and the n handoffs in list. */
static int tell(hx_booking_t *b, hx_outbox_t *out, const char *to, const update_t *u, handoff_t *const *list,
                size_t n)
{
    Handoff__HandoffStatus *pp[2];
    Handoff__StatusUpdate s = HANDOFF__STATUS_UPDATE__INIT;
    for (size_t i = 0; i < n && i < 2; i++)
        pp[i] = handoff_pb(b, u->rid, list[i]);
    s.referral_id = (char *)u->rid;
    s.ref = (char *)(u->ref ? u->ref : "");
    s.status = u->status;
    s.reason = (char *)(u->reason ? u->reason : "");
    s.by = "scheduling";
    s.at_ms = bk_now_ms(b);
    s.bookings = u->bookings;
    s.n_bookings = u->n_bookings;
    s.decision = u->decision;
    s.event = (char *)(u->event_text ? u->event_text : hx_event_text(u->ev));
    s.handoffs = pp;
    s.n_handoffs = n < 2 ? n : 2;
    return hx_svc_emit(out, HX_TO_MAILBOX, to, "handoff.StatusUpdate", &s.base);
}

/* Tells the referrer (every handoff) of u. */
static int tell_referrer(hx_booking_t *b, hx_outbox_t *out, const char *referrer, const update_t *u,
                         handoffs_t *hs)
{
    handoff_t *list[2] = {&hs->h[0], &hs->h[1]};
    return tell(b, out, referrer, u, list, hs->n);
}

/* Tells a receiving clinic of u with the handoffs it holds (of those in hs), when it holds one. */
static int tell_receiver(hx_booking_t *b, hx_outbox_t *out, const char *clinic, const update_t *u, handoffs_t *hs)
{
    handoff_t *list[2];
    size_t n = 0;
    for (size_t i = 0; i < hs->n; i++)
        if (hs->h[i].booked && !strcmp(hs->h[i].k.clinic_id, clinic))
            list[n++] = &hs->h[i];
    return n ? tell(b, out, clinic, u, list, n) : 0;
}

static int booking_insert(hx_booking_t *b, const char *referral_id, const booking_t *k)
{
    /* booked_ms: when this booking was made; started_ms: its start event (booking_mark) */
    hx_db_stmt_t *st = prep(b, "INSERT INTO bookings(referral_id, discipline, therapist_id, clinic_id, start, minutes, "
                               "status, virtual, event, reason, distance_m, booked_ms, started_ms) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'book', '', ?, ?, NULL) "
                               "ON CONFLICT(referral_id, discipline) "
                               "DO UPDATE SET therapist_id = excluded.therapist_id, clinic_id = excluded.clinic_id, "
                               "start = excluded.start, minutes = excluded.minutes, status = excluded.status, "
                               "virtual = excluded.virtual, event = excluded.event, reason = excluded.reason, "
                               "distance_m = excluded.distance_m, booked_ms = excluded.booked_ms, started_ms = NULL");
    hx_db_stmt_t *sl = prep(b, "INSERT INTO slots(therapist_id, slot, referral_id) VALUES (?, ?, ?)");
    int rc = st && sl ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_text(st, 1, referral_id);
        hx_db_bind_int(st, 2, (int)k->discipline);
        hx_db_bind_text(st, 3, k->therapist_id);
        hx_db_bind_text(st, 4, k->clinic_id);
        hx_db_bind_int(st, 5, k->start);
        hx_db_bind_int(st, 6, (int)k->minutes);
        hx_db_bind_int(st, 7, HANDOFF__TASK_STATUS__TASK_READY);
        hx_db_bind_int(st, 8, k->virtual_session);
        if (k->km_known)
            hx_db_bind_int(st, 9, (int64_t)(k->km * 1000 + 0.5));
        else
            hx_db_bind_null(st, 9);
        hx_db_bind_int(st, 10, (int64_t)bk_now_ms(b));
        rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    }
    for (hx_minute_t m = k->start; rc == 0 && m < k->start + (hx_minute_t)k->minutes; m += SLOT_MINUTES) {
        hx_db_reset(sl);
        hx_db_bind_text(sl, 1, k->therapist_id);
        hx_db_bind_int(sl, 2, m / SLOT_MINUTES);
        hx_db_bind_text(sl, 3, referral_id);
        if (hx_db_step(sl) != HX_DB_DONE) {
            hx_error("slot %s@%lld is already held: %s", k->therapist_id, (long long)m, hx_db_errmsg(b->db));
            rc = -1;
        }
    }
    done(b, st);
    done(b, sl);
    return rc;
}

/* Frees the slots of a booking and marks it cancelled (or deletes it, for a decline). */
static int booking_end(hx_booking_t *b, const char *referral_id, Handoff__Discipline d, bool forget)
{
    hx_db_stmt_t *sl = prep(b, "DELETE FROM slots WHERE referral_id = ? AND therapist_id = "
                               "(SELECT therapist_id FROM bookings WHERE referral_id = ? AND discipline = ?)");
    hx_db_stmt_t *st = prep(b, forget ? "DELETE FROM bookings WHERE referral_id = ? AND discipline = ?"
                                      : "UPDATE bookings SET status = ? WHERE referral_id = ? AND discipline = ?");
    int rc = sl && st ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_text(sl, 1, referral_id);
        hx_db_bind_text(sl, 2, referral_id);
        hx_db_bind_int(sl, 3, (int)d);
        rc = hx_db_step(sl) == HX_DB_DONE ? 0 : -1;
        int k = 1;
        if (!forget)
            hx_db_bind_int(st, k++, HANDOFF__TASK_STATUS__TASK_CANCELLED);
        hx_db_bind_text(st, k++, referral_id);
        hx_db_bind_int(st, k, (int)d);
        if (rc == 0)
            rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    }
    done(b, sl);
    done(b, st);
    return rc;
}

/* ---- booking what is missing ------------------------------------------------------------------ */

/* A physiotherapy session is held virtually when the patient accepts that, the therapist
 * offers it, and the therapist's clinic is not one the patient prefers to go to (massage
 * is hands-on: never virtual). */
static bool is_virtual(const Handoff__Preferences *p, const hx_therapist_t *t, Handoff__Discipline d)
{
    if (!p || !p->virtual_ok || !t->virtual_ok || d != HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY)
        return false;
    for (size_t i = 0; i < p->n_clinic_ids; i++)
        if (!strcmp(p->clinic_ids[i], t->clinic_id))
            return false;
    return true;
}

/* What booking one referral works from, and the bookings it adds. */
typedef struct {
    const Handoff__Preferences *p;
    Handoff__Priority prio;
    hx_minute_t not_before;     /* the earliest start, on a 15-minute boundary */
    uint32_t within;            /* days ahead the first session may be, as the priority allows */
    hx_calendar_t *cal;
    char *declined[32];         /* therapists who declined the referral (strdup'd) */
    size_t n_declined;
    booking_t have[2], add[2];  /* the live bookings; the ones found now */
    size_t n_have, n_add;
    const booking_t *pt;        /* the live physiotherapy booking, if any */
    const Handoff__Referral *r;
    bool has_origin;            /* where the patient is: their postal code's area */
    double origin_lat, origin_lon;
    const bk_where_t *where;    /* NULL, or where to look only (a redirect) */
} booking_plan_t;

/* The referral's live bookings, the calendar and who declined it, into plan; -1 on error. */
static int plan_load(hx_booking_t *b, const char *referral_id, booking_plan_t *plan)
{
    int rc = bookings_load(b, referral_id, plan->have, &plan->n_have);
    plan->cal = rc == 0 ? calendar_load(b) : NULL;
    hx_db_stmt_t *st = prep(b, "SELECT therapist_id FROM declined WHERE referral_id = ?");
    if (!plan->cal || !st) {
        done(b, st);
        return -1;
    }
    hx_db_bind_text(st, 1, referral_id);
    while (hx_db_step(st) == HX_DB_ROW && plan->n_declined < 32)
        plan->declined[plan->n_declined++] = strdup(hx_db_col_text(st, 0));
    done(b, st);
    return 0;
}

/* When the sessions may start: from now (or the configured start), and within the horizon,
 * or fewer days as the priority (the decision's, else the referral's) requires. */
static void plan_window(const hx_booking_t *b, const Handoff__Referral *r, const Handoff__TriageDecision *d,
                        booking_plan_t *plan)
{
    hx_minute_t not_before = b->cfg.start >= 0 ? b->cfg.start : now_minutes(b);
    plan->not_before = (not_before + 14) / 15 * 15;
    plan->p = r->preferences;
    plan->r = r;
    /* where the patient is: their postal code's area (without one, the earliest slot wins) */
    plan->has_origin = r->patient && hx_directory_locate(b->dir, r->patient->postal_code, &plan->origin_lat,
                                                         &plan->origin_lon) == 0;
    /* priority bounds how far away the first session may be */
    plan->prio = d->priority ? d->priority : r->priority;
    plan->within = b->cfg.horizon_days;
    uint32_t prio_days = plan->prio == HANDOFF__PRIORITY__PRIORITY_STAT     ? 1
                         : plan->prio == HANDOFF__PRIORITY__PRIORITY_ASAP   ? 3
                         : plan->prio == HANDOFF__PRIORITY__PRIORITY_URGENT ? 7
                                                                            : plan->within;
    if (prio_days < plan->within)
        plan->within = prio_days;
    for (size_t i = 0; i < plan->n_have; i++)
        if (plan->have[i].discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY)
            plan->pt = &plan->have[i];
}

/* Near the patient: the nearest clinic among slots within the priority's bound (routine:
 * near_days); a collaborative pair's second handoff within collab_km of the first's clinic,
 * unless the session may be virtual. */
static void plan_near(const hx_booking_t *b, const booking_plan_t *plan, Handoff__Discipline disc, hx_slot_query_t *q)
{
    uint32_t near = plan->prio == HANDOFF__PRIORITY__PRIORITY_STAT     ? 1
                    : plan->prio == HANDOFF__PRIORITY__PRIORITY_ASAP   ? 3
                    : plan->prio == HANDOFF__PRIORITY__PRIORITY_URGENT ? 7
                                                                       : (b->cfg.near_days ? b->cfg.near_days : 14);
    q->has_origin = plan->has_origin;
    q->origin_lat = plan->origin_lat;
    q->origin_lon = plan->origin_lon;
    q->near_until = q->not_before + (hx_minute_t)near * 24 * 60;
    const booking_t *other = NULL;
    for (size_t i = 0; i < plan->n_have && !other; i++)
        if (plan->have[i].discipline != disc && plan->have[i].status != HANDOFF__TASK_STATUS__TASK_CANCELLED)
            other = &plan->have[i];
    for (size_t i = 0; i < plan->n_add && !other; i++)
        if (plan->add[i].discipline != disc)
            other = &plan->add[i];
    const hx_clinic_t *c = other && !other->virtual_session ? hx_directory_clinic(b->dir, other->clinic_id) : NULL;
    if (c && c->located) {
        q->has_anchor = true;
        q->anchor_lat = c->lat;
        q->anchor_lon = c->lon;
        q->anchor_km = b->cfg.collab_km ? b->cfg.collab_km : 100;
        /* only physiotherapy may be virtual (is_virtual): massage is hands-on */
        q->anchor_virtual_ok = disc == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY && plan->p && plan->p->virtual_ok;
    }
}

/* The slot query for discipline disc: the patient's preferences, the window (for massage
 * after an assessment: the collaborative window after it), without who declined; *days is
 * the window's length. */
static void plan_query(const hx_booking_t *b, const booking_plan_t *plan, Handoff__Discipline disc,
                       hx_slot_query_t *q, uint32_t *days)
{
    const Handoff__Preferences *p = plan->p;
    memset(q, 0, sizeof *q);
    q->discipline = disc;
    q->minutes = hx_session_minutes(disc, p ? p->massage_minutes : 0);
    q->not_before = plan->not_before;
    q->horizon = plan->not_before + (hx_minute_t)plan->within * 24 * 60;
    *days = plan->within;
    if (disc == HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY && (plan->pt || plan->n_add)) {
        const booking_t *first = plan->pt ? plan->pt : &plan->add[0];     /* collaborative: after the assessment */
        q->not_before = first->start + first->minutes;
        q->horizon = first->start + (hx_minute_t)b->cfg.collab_days * 24 * 60;
        *days = b->cfg.collab_days;
        /* Added, redirected or booked again once the assessment is past: from now, and for
         * collab_days from now (the physiotherapy sessions go on after the assessment). */
        const hx_minute_t window = (hx_minute_t)b->cfg.collab_days * 24 * 60;
        if (q->not_before < plan->not_before) {
            q->not_before = plan->not_before;
            if (q->horizon < q->not_before + window)
                q->horizon = q->not_before + window;
        }
    }
    if (plan->where) {
        q->only_clinic = plan->where->only_clinic;
        q->only_therapist = plan->where->only_therapist;
        q->exclude_therapist = plan->where->exclude_therapist;
    }
    if (p) {
        q->clinic_ids = (const char *const *)p->clinic_ids;
        q->n_clinic_ids = p->n_clinic_ids;
        q->language = p->language;
        q->availability = (const Handoff__Availability *const *)p->availability;
        q->n_availability = p->n_availability;
    }
    q->exclude = (const char *const *)plan->declined;
    q->n_exclude = plan->n_declined;
    plan_near(b, plan, disc, q);
}

/* Finds a slot for discipline disc and adds it to plan (and to the calendar); when none fits,
 * says why. */
static void plan_find(hx_booking_t *b, booking_plan_t *plan, Handoff__Discipline disc, char *why, size_t cap)
{
    hx_slot_query_t q;
    uint32_t days;
    plan_query(b, plan, disc, &q, &days);
    hx_slot_t slot;
    if (hx_slot_find(b->dir, plan->cal, &q, &slot) != 0) {
        char bound[48] = "";
        if (days < b->cfg.horizon_days && q.horizon == plan->not_before + (hx_minute_t)plan->within * 24 * 60)
            snprintf(bound, sizeof bound, " (as its priority, %s, requires)", hx_priority_text(plan->prio));
        char where[96] = "";
        if (q.only_therapist && q.only_therapist[0])
            snprintf(where, sizeof where, " with therapist %.40s", q.only_therapist);
        else if (q.only_clinic && q.only_clinic[0])
            snprintf(where, sizeof where, " at clinic %.40s", q.only_clinic);
        char near[96] = "";
        if (q.has_anchor)
            snprintf(near, sizeof near, " at a clinic within %.0f km of the other handoff's (--collab-km)", q.anchor_km);
        snprintf(why, cap, "no %s slot of %u min%s within %u day(s)%s%s that fits the patient's availability%s%s%s",
                 hx_discipline_text(disc), q.minutes, where, days, bound, near,
                 q.language && q.language[0] ? " and language " : "", q.language ? q.language : "",
                 plan->n_declined ? " (therapists who declined excluded)" : "");
        return;
    }
    booking_t *k = &plan->add[plan->n_add++];
    memset(k, 0, sizeof *k);
    k->discipline = disc;
    snprintf(k->therapist_id, sizeof k->therapist_id, "%s", slot.therapist->id);
    snprintf(k->clinic_id, sizeof k->clinic_id, "%s", slot.therapist->clinic_id);
    k->start = slot.start;
    k->minutes = slot.minutes;
    k->status = HANDOFF__TASK_STATUS__TASK_READY;
    k->virtual_session = is_virtual(plan->p, slot.therapist, disc);
    k->km_known = slot.km >= 0;
    k->km = k->km_known ? slot.km : 0;
    hx_calendar_book(plan->cal, k->therapist_id, k->start, k->minutes);
}

/* Finds a slot for discipline disc when it has no live booking (plan_find). */
static void plan_discipline(hx_booking_t *b, booking_plan_t *plan, Handoff__Discipline disc, char *why,
                            size_t cap)
{
    bool booked = false;
    for (size_t k = 0; k < plan->n_have; k++)
        booked |= plan->have[k].discipline == disc;
    if (booked || (disc != HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY &&
                   disc != HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY))
        return;
    plan_find(b, plan, disc, why, cap);
}

/* Nothing was booked (why): the referral goes on hold, and the referrer is told once. */
static int book_hold(hx_booking_t *b, const char *referral_id, const referral_row_t *row,
                     Handoff__TriageDecision *d, const char *why, hx_outbox_t *out)
{
    bool was_on_hold = row->pending == HANDOFF__TASK_STATUS__TASK_ON_HOLD;
    handoffs_t hs;
    int rc = set_pending(b, referral_id, HANDOFF__TASK_STATUS__TASK_ON_HOLD, HX_EVENT_HOLD, why);
    if (rc == 0)
        rc = set_status(b, referral_id, HANDOFF__TASK_STATUS__TASK_ON_HOLD, why);  /* own; derived next */
    if (rc == 0)
        rc = referral_derive(b, referral_id, &hs);
    for (size_t i = 0; rc == 0 && !was_on_hold && i < hs.n; i++)   /* for the network's figures */
        if (!hs.h[i].booked && hs.h[i].status == HANDOFF__TASK_STATUS__TASK_ON_HOLD)
            rc = bk_log_event(b, referral_id, hs.h[i].k.discipline, "", "hold");
    if (rc == 0 && !was_on_hold)
        hx_info("referral %s: handoff(s) on hold", referral_id);
    /* on the wait list; the referrer is told when it went on hold, then only when its
     * position or estimate changed (hx_waitlist.c) */
    if (rc == 0)
        rc = hx_waitlist_held(b, referral_id, row->referring_clinic, row->ref, row->c, why, !was_on_hold, &hs, out);
    (void)d;
    return rc;
}

/* Tells the referrer every booking of the referral (ready, "booked: ..."), and logs the new
 * ones by id. */
static int book_tell_referrer(hx_booking_t *b, const char *referral_id, const referral_row_t *row,
                              Handoff__TriageDecision *d, const booking_plan_t *plan, hx_outbox_t *out)
{
    booking_t all[2];
    size_t n_all = 0;
    Handoff__Booking *bp[2];
    char text[256];
    size_t len = (size_t)snprintf(text, sizeof text, "booked:");
    int rc = bookings_load(b, referral_id, all, &n_all);
    for (size_t i = 0; i < n_all && rc == 0; i++) {
        bp[i] = booking_pb(b, referral_id, &all[i]);
        if (len < sizeof text)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s %s with %s %s %s %s%s", i ? ";" : "",
                                    hx_discipline_text(all[i].discipline), all[i].therapist_name,
                                    all[i].virtual_session ? "(virtual) of" : "at", all[i].clinic_id,
                                    all[i].start_text, all[i].utc_offset);
        if (len < sizeof text && all[i].km_known && !all[i].virtual_session)
            len += (size_t)snprintf(text + len, sizeof text - len, ", %.1f km away", all[i].km);
    }
    handoffs_t hs;
    if (rc == 0)
        rc = referral_derive(b, referral_id, &hs);
    update_t u = {.rid = referral_id, .ref = row->ref, .status = hs.status, .ev = HX_EVENT_BOOK, .reason = text,
                  .bookings = bp, .n_bookings = n_all, .decision = d};
    if (rc == 0)
        rc = tell_referrer(b, out, row->referring_clinic, &u, &hs);
    char ids[160] = "";
    size_t k = 0;
    for (size_t i = 0; i < plan->n_add && k < sizeof ids; i++)
        k += (size_t)snprintf(ids + k, sizeof ids - k, "%s%s@%s %s", i ? ", " : "", plan->add[i].therapist_id,
                              plan->add[i].clinic_id, plan->add[i].start_text);
    hx_info("referral %s booked: %s", referral_id, ids);   /* ids only in logs */
    return rc;
}

/* Records the bookings found (the referral ready), sends a handoff to each new receiver,
 * then tells the referrer. */
static int book_found(hx_booking_t *b, const char *referral_id, const referral_row_t *row, booking_plan_t *plan,
                      hx_outbox_t *out)
{
    Handoff__TriageDecision *d = row->c->decision;
    int rc = 0;
    for (size_t i = 0; i < plan->n_add && rc == 0; i++)
        rc = booking_insert(b, referral_id, &plan->add[i]);
    if (rc == 0 && plan->n_add)
        rc = set_pending(b, referral_id, HANDOFF__TASK_STATUS__TASK_RECEIVED, HX_EVENT_NONE, "");
    if (rc == 0 && plan->n_add)
        rc = hx_waitlist_leave(b, referral_id);    /* off the wait list, if it was on it */
    if (rc == 0 && plan->n_add)
        rc = set_status(b, referral_id, HANDOFF__TASK_STATUS__TASK_READY, "");  /* derived again below */
    /* a handoff to each new receiver, then all bookings to the referrer */
    for (size_t i = 0; i < plan->n_add && rc == 0; i++) {
        Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
        h.referral_id = (char *)referral_id;
        h.referral = row->c->referral;
        h.decision = d;
        h.booking = booking_pb(b, referral_id, &plan->add[i]);
        rc = hx_svc_emit(out, HX_TO_MAILBOX, plan->add[i].clinic_id, "handoff.Handoff", &h.base);
    }
    if (rc == 0 && plan->n_add)
        rc = book_tell_referrer(b, referral_id, row, d, plan, out);
    return rc;
}

/* Books every discipline of the referral's plan that has no live booking: all of them or
 * none (then the referral is on hold, with the reason). Emits the handoffs and statuses. */
static int book_missing(hx_booking_t *b, const char *referral_id, hx_outbox_t *out)
{
    referral_row_t row;
    if (row_load(b, referral_id, &row) != 1)
        return -1;
    Handoff__TriageDecision *d = row.c->decision;
    booking_plan_t plan = {0};
    if (plan_load(b, referral_id, &plan) != 0) {
        row_free(&row);
        return -1;
    }
    plan_window(b, row.c->referral, d, &plan);
    char why[256] = "";
    for (size_t i = 0; i < d->n_disciplines && plan.n_add < 2 && !why[0]; i++)
        plan_discipline(b, &plan, d->disciplines[i], why, sizeof why);
    for (size_t i = 0; i < plan.n_declined; i++)
        free(plan.declined[i]);
    if (why[0])                         /* all or none: the slots found go back to the calendar */
        for (size_t i = 0; i < plan.n_add && plan.cal; i++)
            hx_calendar_cancel(plan.cal, plan.add[i].therapist_id, plan.add[i].start);
    int rc = why[0] ? book_hold(b, referral_id, &row, d, why, out) : book_found(b, referral_id, &row, &plan, out);
    row_free(&row);
    return rc;
}

static int txn_open(hx_booking_t *b, bool write);
static int txn_close(hx_booking_t *b, bool write, bool commit);

static const Handoff__Discipline room_disc[] = {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY,
                                                HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY};

/* The disciplines (bit 1 << discipline) a held referral could be booked in now: a search with
 * none of a patient's constraints (any clinic, language, hours; the shortest session; from now
 * to the farthest a retry may look: the horizon, and for massage the collaborative window after
 * an assessment at its end) finds a slot. A referral's own search only narrows that one, so a
 * discipline without room books no retry: with the calendar full, retrying its wait list would
 * cost a search and a transaction each to find nothing. The slot finder remembers each
 * therapist's first free start, so this costs about one look per therapist. */
static unsigned room_mask(hx_booking_t *b)
{
    hx_calendar_t *cal = calendar_load(b);
    hx_minute_t now = b->cfg.start >= 0 ? b->cfg.start : now_minutes(b);
    now = (now + 14) / 15 * 15;                     /* as plan_window */
    unsigned mask = 0;
    for (size_t i = 0; cal && i < sizeof room_disc / sizeof room_disc[0]; i++) {
        uint32_t days = b->cfg.horizon_days + (i == 1 ? b->cfg.collab_days : 0);
        hx_slot_query_t q = {.discipline = room_disc[i], .minutes = hx_session_minutes_min(room_disc[i]),
                             .not_before = now, .horizon = now + (hx_minute_t)days * 24 * 60};
        hx_slot_t slot;
        if (hx_slot_find(b->dir, cal, &q, &slot) == 0)
            mask |= 1u << room_disc[i];
    }
    return mask;
}

/* Referrals to retry now, in wait-list order: those waiting for a discipline in mask (those
 * with room), and those due to be escalated (a retry escalates them), at most cap. */
static size_t to_retry(hx_booking_t *b, char (*ids)[32], size_t cap, unsigned mask)
{
    if (b->waitlist_legacy)             /* as before the wait list: every held referral */
        return hx_booking_on_hold(b, ids, cap);
    size_t n = mask ? hx_waitlist_order(b, mask, ids, cap) : 0;
    if (n < cap) {                      /* the overdue ones not already listed */
        char (*due)[32] = malloc((cap - n) * sizeof *due);
        size_t k = due ? hx_waitlist_due(b, due, cap - n) : 0;
        for (size_t i = 0; i < k && n < cap; i++) {
            bool listed = false;
            for (size_t j = 0; j < n && !listed; j++)
                listed = strcmp(ids[j], due[i]) == 0;
            if (!listed)
                memcpy(ids[n++], due[i], sizeof ids[0]);
        }
        free(due);
    }
    return n;
}

/* A slot was freed (a decline, fail, redirect or revoke): the wait list is offered it, in its
 * order, a few at a time, until no discipline they wait for has room left. */
static int retry_on_hold(hx_booking_t *b, hx_outbox_t *out)
{
    char ids[HOLD_RETRIES_PER_MESSAGE][32];
    unsigned mask = b->waitlist_legacy ? ~0u : room_mask(b);
    size_t n = to_retry(b, ids, HOLD_RETRIES_PER_MESSAGE, mask);
    for (size_t i = 0; i < n; i++) {
        if (book_missing(b, ids[i], out) != 0)
            return -1;
        if (i + 1 < n && !b->waitlist_legacy && !(room_mask(b) & mask))
            break;                      /* the freed slot is taken: the rest would find nothing */
    }
    return 0;
}

size_t hx_booking_on_hold(hx_booking_t *b, char (*ids)[32], size_t cap)
{
    if (!b->waitlist_legacy)
        return hx_waitlist_order(b, ~0u, ids, cap);
    /* wait-list order (hx_waitlist.c); one held before the wait list existed comes by updated_ms */
    hx_db_stmt_t *st = prep(b, "SELECT r.referral_id FROM referrals r LEFT JOIN waitlist w USING (referral_id) "
                               "WHERE r.pending = ? GROUP BY r.referral_id "
                               "ORDER BY COALESCE(MAX(w.priority), 0) DESC, COALESCE(MIN(w.since_ms), r.updated_ms), "
                               "r.referral_id LIMIT ?");
    size_t n = 0;
    if (!st)
        return 0;
    hx_db_bind_int(st, 1, HANDOFF__TASK_STATUS__TASK_ON_HOLD);
    hx_db_bind_int(st, 2, (int64_t)cap);
    while (hx_db_step(st) == HX_DB_ROW && n < cap)
        snprintf(ids[n++], sizeof ids[0], "%s", hx_db_col_text(st, 0));
    done(b, st);
    return n;
}

size_t hx_booking_to_retry(hx_booking_t *b, char (*ids)[32], size_t cap)
{
    /* a read transaction: the calendar checked against another worker's commits, as a message's */
    if (txn_open(b, false) != 0)
        return 0;
    int64_t version = data_version(b);
    if (version < 0 || version != b->cal_version)
        calendar_drop(b);
    b->cal_version = version;
    size_t n = to_retry(b, ids, cap, b->waitlist_legacy ? ~0u : room_mask(b));
    txn_close(b, false, true);
    return n;
}

/* ---- messages ----------------------------------------------------------------------------- */

static int on_case(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out)
{
    Handoff__Case *c = handoff__case__unpack(NULL, in->payload_len, in->payload);
    if (c && c->add) {
        int rc = hx_coord_on_added(b, in, c, out);      /* triage's answer to an add (hx_coordinate.c) */
        handoff__case__free_unpacked(c, NULL);
        return rc;
    }
    if (c && c->referral && c->decision && c->decision->needs_review && !c->decision->red_flag) {
        int rc = hx_review_on_case(b, in, c, out);     /* a clinician of the network decides */
        handoff__case__free_unpacked(c, NULL);
        return rc;
    }
    if (!c || !c->referral || !c->decision || c->decision->n_disciplines == 0 || !c->referral->referral_id[0] ||
        !c->referral->referring_clinic[0] || strlen(c->referral->referral_id) > HX_REFERRAL_ID_LEN) {
        hx_warn("a message from %s ignored: not a triaged Case", in->from);
        if (c)
            handoff__case__free_unpacked(c, NULL);
        return 0;
    }
    char rid[32];
    snprintf(rid, sizeof rid, "%s", c->referral->referral_id);
    referral_row_t row;
    int found = row_load(b, rid, &row);
    row_free(&row);
    int rc = 0;
    if (found == 0) {
        hx_db_stmt_t *st = prep(b, "INSERT INTO referrals(referral_id, referring_clinic, ref, status, case_pb, "
                                   "updated_ms, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?6)");
        rc = st && bk_bind_case(b, st, 5, c) == 0 ? 0 : -1;
        if (rc == 0) {
            hx_db_bind_text(st, 1, rid);
            hx_db_bind_text(st, 2, c->referral->referring_clinic);
            hx_db_bind_text(st, 3, c->referral->ref);
            hx_db_bind_int(st, 4, HANDOFF__TASK_STATUS__TASK_RECEIVED);
            hx_db_bind_int(st, 6, (int64_t)bk_now_ms(b));
            rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
        }
        done(b, st);
        if (rc == 0)
            rc = book_missing(b, rid, out);
    } else if (found < 0) {
        rc = -1;
    } else {
        hx_info("referral %s is already scheduled; the repeated case changes nothing", rid);
    }
    handoff__case__free_unpacked(c, NULL);
    return rc;
}

/* Every clinic's change, done or refused, into the audit log (when there is one). */
void bk_audit_write(hx_booking_t *b, const char *role, const hx_msg_t *in, const char *what, const char *rid,
                    const char *outcome)
{
    if (!b->audit)
        return;
    char principal[96], action[48];
    snprintf(principal, sizeof principal, "%s:%s", role, in->from);
    snprintf(action, sizeof action, "referral.%s", what);
    if (hx_audit_write(b->audit, principal, action, rid, outcome) != 0)
        hx_error("cannot write the audit log");
}

static void audit_change(hx_booking_t *b, const hx_msg_t *in, hx_event_t ev, const char *rid, const char *outcome)
{
    bk_audit_write(b, "clinic", in, hx_event_text(ev), rid, outcome);
}

static int refuse(hx_booking_t *b, hx_outbox_t *out, const hx_msg_t *in, const char *rid, const referral_row_t *row, hx_event_t ev,
                  const char *why)
{
    char outcome[400];
    snprintf(outcome, sizeof outcome, "refused: %s", why);
    audit_change(b, in, ev, rid, outcome);
    hx_info("referral %s: %s refused for clinic %s", rid, hx_event_text(ev), in->from);
    return emit_status(out, in->from, rid, row && row->c ? row->ref : "",
                       row && row->c ? row->status : HANDOFF__TASK_STATUS__TASK_UNSPECIFIED, ev, true, why, NULL, 0,
                       NULL);
}

/* Ends the open booked handoffs of hs (cancelled by a revoke, with text): their slots freed. */
static int revoke_handoffs(hx_booking_t *b, const char *rid, handoffs_t *hs, const char *text, bool *was_open)
{
    int rc = 0;
    for (size_t i = 0; i < hs->n && rc == 0; i++) {
        handoff_t *h = &hs->h[i];
        was_open[i] = h->booked && !hx_lifecycle_final(h->status);
        if (!was_open[i])
            continue;
        rc = booking_end(b, rid, h->k.discipline, false);
        if (rc == 0)
            rc = booking_mark(b, rid, h->k.discipline, HANDOFF__TASK_STATUS__TASK_CANCELLED, HX_EVENT_REVOKE, text);
    }
    return rc;
}

/* The referring clinic revokes the referral: every open handoff is cancelled (its clinic
 * told; a completed one stays completed), what was still to be booked is cancelled too, the
 * referrer is told, and referrals on hold get a chance at the slots. */
static int change_revoke(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                         const char *rid, const referral_row_t *row)
{
    hx_event_t ev = HX_EVENT_REVOKE;
    char why[320];
    Handoff__TaskStatus to;
    if (strcmp(in->from, row->referring_clinic) != 0) {
        snprintf(why, sizeof why, "only the referring clinic may revoke referral %s", rid);
        return refuse(b, out, in, rid, row, ev, why);
    }
    if (hx_lifecycle_apply(row->status, ev, HX_ACTOR_REFERRER, &to, why, sizeof why) != 0)
        return refuse(b, out, in, rid, row, ev, why);
    char text[320];
    snprintf(text, sizeof text, "revoked by the referring clinic%s%.200s", ch->reason[0] ? ": " : "", ch->reason);
    handoffs_t hs;
    bool was_open[2] = {false, false};
    int rc = handoffs_load(b, rid, row, &hs);
    if (rc == 0)
        rc = revoke_handoffs(b, rid, &hs, text, was_open);
    if (rc == 0)
        rc = set_pending(b, rid, HANDOFF__TASK_STATUS__TASK_CANCELLED, ev, text);
    if (rc == 0)
        rc = set_status(b, rid, to, text);      /* own: cancelled; with handoffs, derived next */
    if (rc == 0)
        rc = referral_derive(b, rid, &hs);
    update_t u = {.rid = rid, .ref = row->ref, .status = hs.status, .ev = ev, .reason = text};
    for (size_t i = 0; i < hs.n && rc == 0; i++) {
        bool told = (i == 1 && was_open[0] && !strcmp(hs.h[0].k.clinic_id, hs.h[1].k.clinic_id)) ||
                    !strcmp(hs.h[i].k.clinic_id, row->referring_clinic);     /* told below, of all */
        if (!was_open[i] || told)
            continue;
        Handoff__Booking *bp = booking_pb(b, rid, &hs.h[i].k);
        u.bookings = &bp;
        u.n_bookings = 1;
        rc = tell_receiver(b, out, hs.h[i].k.clinic_id, &u, &hs);
    }
    u.bookings = NULL;
    u.n_bookings = 0;
    if (rc == 0)
        rc = tell_referrer(b, out, row->referring_clinic, &u, &hs);
    if (rc == 0)
        rc = retry_on_hold(b, out);
    hx_info("referral %s revoked", rid);
    audit_change(b, in, ev, rid, "done: cancelled");
    return rc;
}

/* Records that therapist_id declined the referral, so it is not offered again. */
static int declined_add(hx_booking_t *b, const char *rid, const char *therapist_id)
{
    hx_db_stmt_t *st = prep(b, "INSERT INTO declined(referral_id, therapist_id) VALUES (?, ?) "
                               "ON CONFLICT DO NOTHING");
    int rc = st ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_text(st, 1, rid);
        hx_db_bind_text(st, 2, therapist_id);
        rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    }
    done(b, st);
    return rc;
}

/* Sets the status of the referral's booking of discipline d, with the event and why. */
static int booking_mark(hx_booking_t *b, const char *rid, Handoff__Discipline d, Handoff__TaskStatus to,
                        hx_event_t ev, const char *reason)
{
    /* the first start event is when its first session began (the network's figures, hx_stats.c) */
    hx_db_stmt_t *st = prep(b, "UPDATE bookings SET status = ?1, event = ?2, reason = ?3, "
                               "started_ms = CASE WHEN ?6 AND started_ms IS NULL THEN ?7 ELSE started_ms END "
                               "WHERE referral_id = ?4 AND discipline = ?5");
    int rc = st ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_int(st, 1, (int)to);
        hx_db_bind_text(st, 2, hx_event_text(ev));
        hx_db_bind_text(st, 3, reason ? reason : "");
        hx_db_bind_text(st, 4, rid);
        hx_db_bind_int(st, 5, (int)d);
        hx_db_bind_int(st, 6, ev == HX_EVENT_START);
        hx_db_bind_int(st, 7, (int64_t)bk_now_ms(b));
        rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    }
    done(b, st);
    return rc;
}

/* The receiving clinic declines booking k: its therapist is excluded, the booking forgotten
 * (the discipline is to be booked again; the other handoff is untouched), both clinics told,
 * and another therapist is looked for. */
static int change_decline(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                          const char *rid, const referral_row_t *row, booking_t *k, Handoff__TaskStatus to)
{
    hx_event_t ev = HX_EVENT_DECLINE;
    char text[320];
    snprintf(text, sizeof text, "declined by %s (%s): %.200s; finding another therapist", in->from,
             k->therapist_id, ch->reason);
    /* the declined handoff as its clinic last sees it */
    handoff_t gone = {.booked = true, .k = *k, .status = to};
    snprintf(gone.event, sizeof gone.event, "%s", hx_event_text(ev));
    snprintf(gone.reason, sizeof gone.reason, "%.255s", text);
    Handoff__Booking *bp = booking_pb(b, rid, &gone.k);
    handoffs_t hs;
    int rc = declined_add(b, rid, k->therapist_id);
    if (rc == 0)        /* the booking row goes: the decline is kept for the network's figures */
        rc = bk_log_event(b, rid, k->discipline, k->clinic_id, "decline");
    if (rc == 0)
        rc = booking_end(b, rid, k->discipline, true);
    if (rc == 0)
        rc = set_pending(b, rid, to, ev, text);
    if (rc == 0)
        rc = referral_derive(b, rid, &hs);
    update_t u = {.rid = rid, .ref = row->ref, .status = hs.status, .ev = ev, .reason = text, .bookings = &bp,
                  .n_bookings = 1};
    if (rc == 0)
        rc = tell_referrer(b, out, row->referring_clinic, &u, &hs);
    if (rc == 0 && strcmp(in->from, row->referring_clinic) != 0)
        rc = tell(b, out, in->from, &u, (handoff_t *[]){&gone}, 1);
    if (rc == 0)
        rc = book_missing(b, rid, out);
    if (rc == 0)
        rc = retry_on_hold(b, out);
    hx_info("referral %s: %s declined by %s; rescheduling it", rid, hx_discipline_text(k->discipline), in->from);
    audit_change(b, in, ev, rid, "done: declined, rescheduling");
    return rc;
}

/* The receiving clinic accepts, starts, completes or fails booking k: that handoff moves to
 * `to` (the other is untouched), the referral's status is derived again, both clinics are told. */
static int change_advance(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const Handoff__StatusChange *ch,
                          const char *rid, const referral_row_t *row, hx_event_t ev, booking_t *k,
                          Handoff__TaskStatus to)
{
    char text[320];
    snprintf(text, sizeof text, "%s %s by %s%s%.200s", hx_discipline_text(k->discipline), hx_status_text(to),
             in->from, ch->reason[0] ? ": " : "", ch->reason);
    handoffs_t hs;
    int rc = ev == HX_EVENT_FAIL ? booking_end(b, rid, k->discipline, false) : 0;   /* its slots freed */
    if (rc == 0)
        rc = booking_mark(b, rid, k->discipline, to, ev, text);
    k->status = to;
    if (rc == 0)
        rc = referral_derive(b, rid, &hs);
    Handoff__Booking *bp = booking_pb(b, rid, k);
    update_t u = {.rid = rid, .ref = row->ref, .status = hs.status, .ev = ev, .reason = text, .bookings = &bp,
                  .n_bookings = 1};
    if (rc == 0)
        rc = tell_referrer(b, out, row->referring_clinic, &u, &hs);
    if (rc == 0 && strcmp(in->from, row->referring_clinic) != 0)
        rc = tell_receiver(b, out, in->from, &u, &hs);
    if (rc == 0 && ev == HX_EVENT_COMPLETE)     /* after the answer: the sender's answer comes first */
        rc = hx_thread_summary(b, in, out, rid, row->referring_clinic, ch->summary);
    hx_info("referral %s: %s %s by %s", rid, hx_discipline_text(k->discipline), hx_event_text(ev), in->from);
    audit_change(b, in, ev, rid, text);
    return rc;
}

/* A receiving clinic's accept, decline, start or complete: allowed only for the one booking
 * it holds (the discipline says which when it holds both), as the lifecycle allows. */
static int change_by_receiver(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out,
                              const Handoff__StatusChange *ch, const char *rid, const referral_row_t *row,
                              hx_event_t ev)
{
    char why[320];
    booking_t have[2];
    size_t n = 0, mine = 0;
    booking_t *k = NULL;
    int rc = bookings_load(b, rid, have, &n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(have[i].clinic_id, in->from) && (!ch->discipline || have[i].discipline == ch->discipline)) {
            k = &have[i];
            mine++;
        }
    Handoff__TaskStatus to;
    if (rc != 0)
        return -1;
    if (!k) {
        snprintf(why, sizeof why, "only the current receiving clinic may %s referral %s: clinic %s does not "
                 "hold it", hx_event_text(ev), rid, in->from);
        return refuse(b, out, in, rid, row, ev, why);
    }
    if (mine > 1) {
        snprintf(why, sizeof why, "discipline: clinic %s holds both bookings of %s; say which", in->from, rid);
        return refuse(b, out, in, rid, row, ev, why);
    }
    if (hx_lifecycle_apply(k->status, ev, HX_ACTOR_RECEIVER, &to, why, sizeof why) != 0)
        return refuse(b, out, in, rid, row, ev, why);
    if ((ev == HX_EVENT_DECLINE || ev == HX_EVENT_FAIL) && !ch->reason[0])
        return refuse(b, out, in, rid, row, ev,
                      ev == HX_EVENT_FAIL ? "reason: a fail needs a reason" : "reason: a decline needs a reason");
    /* the completion summary goes to the referrer: no completion without one */
    if (ev == HX_EVENT_COMPLETE && hx_thread_text_check("summary", ch->summary, why, sizeof why) != 0)
        return refuse(b, out, in, rid, row, ev, why);
    if (ev == HX_EVENT_DECLINE)
        return change_decline(b, in, out, ch, rid, row, k, to);
    return change_advance(b, in, out, ch, rid, row, ev, k, to);
}

static int on_change(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out)
{
    if (in->from_kind != HX_TO_MAILBOX) {
        hx_warn("a status change from service %s ignored: changes come from clinics", in->from);
        return 0;
    }
    Handoff__StatusChange *ch = handoff__status_change__unpack(NULL, in->payload_len, in->payload);
    if (!ch)
        return refuse(b, out, in, "", NULL, HX_EVENT_NONE, "payload: not a decodable handoff.StatusChange");
    hx_event_t ev = hx_event_from_text(ch->event);
    char rid[32];
    snprintf(rid, sizeof rid, "%.31s", ch->referral_id);
    referral_row_t row;
    int found = row_load(b, rid, &row);
    int rc;
    char why[320];
    if (ev != HX_EVENT_ACCEPT && ev != HX_EVENT_DECLINE && ev != HX_EVENT_START && ev != HX_EVENT_COMPLETE &&
        ev != HX_EVENT_FAIL && ev != HX_EVENT_REVOKE && ev != HX_EVENT_REDIRECT && ev != HX_EVENT_ADD) {
        snprintf(why, sizeof why, "event: '%.40s' is not accept, decline, start, complete, fail, revoke, redirect "
                 "or add", ch->event);
        rc = refuse(b, out, in, rid, NULL, ev, why);
    } else if (ch->discipline != 0 && ch->discipline != HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY &&
               ch->discipline != HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY) {
        snprintf(why, sizeof why, "discipline: %d is not a handoff's (physiotherapy 1, massage therapy 2, or 0: "
                 "the one this clinic holds)", (int)ch->discipline);
        rc = refuse(b, out, in, rid, NULL, ev, why);
    } else if (found < 0) {
        rc = -1;
    } else if (found == 0) {
        snprintf(why, sizeof why, "referral_id: %s is not a referral scheduling knows", rid);
        rc = refuse(b, out, in, rid, NULL, ev, why);
    } else if (ev == HX_EVENT_REVOKE) {
        rc = change_revoke(b, in, out, ch, rid, &row);
    } else if (ev == HX_EVENT_REDIRECT || ev == HX_EVENT_ADD) {   /* hx_coordinate.c */
        rc = ev == HX_EVENT_REDIRECT ? hx_coord_redirect(b, in, out, ch, rid) : hx_coord_add(b, in, out, ch, rid);
    } else {
        rc = change_by_receiver(b, in, out, ch, rid, &row, ev);
    }
    row_free(&row);
    handoff__status_change__free_unpacked(ch, NULL);
    return rc;
}

static int on_retry(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out)
{
    Handoff__Retry *t = handoff__retry__unpack(NULL, in->payload_len, in->payload);
    if (!t)
        return 0;
    referral_row_t row;
    int found = row_load(b, t->referral_id, &row);
    int rc = found == 1 && row.pending == HANDOFF__TASK_STATUS__TASK_ON_HOLD ? book_missing(b, t->referral_id, out)
                                                                             : found < 0 ? -1 : 0;
    row_free(&row);
    handoff__retry__free_unpacked(t, NULL);
    return rc;
}

/* ---- idempotence ------------------------------------------------------------------------------ */

static int outputs_store(hx_booking_t *b, const hx_msg_t *in, const hx_outbox_t *out)
{
    size_t n = hx_outbox_count(out);
    Handoff__StoredOutput *o = calloc(n ? n : 1, sizeof *o);
    Handoff__StoredOutput **op = calloc(n ? n : 1, sizeof *op);
    int rc = o && op ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        hx_addr_kind_t kind;
        const char *to, *type;
        const uint8_t *payload;
        size_t len;
        hx_outbox_get(out, i, &kind, &to, &type, &payload, &len);
        handoff__stored_output__init(&o[i]);
        o[i].to_service = kind == HX_TO_SERVICE;
        o[i].to = (char *)to;
        o[i].type = (char *)type;
        o[i].payload = (ProtobufCBinaryData){len, (uint8_t *)payload};
        op[i] = &o[i];
    }
    Handoff__StoredOutputs all = HANDOFF__STORED_OUTPUTS__INIT;
    all.outputs = op;
    all.n_outputs = n;
    size_t len = handoff__stored_outputs__get_packed_size(&all);
    uint8_t *buf = rc == 0 ? malloc(len ? len : 1) : NULL;
    hx_db_stmt_t *st = buf ? prep(b, "INSERT INTO handled(msg_id, outputs, at_ms) VALUES (?, ?, ?)") : NULL;
    if (st) {
        handoff__stored_outputs__pack(&all, buf);
        hx_db_bind_blob(st, 1, in->id, HX_ID_LEN);
        hx_db_bind_int(st, 3, (int64_t)bk_now_ms(b));
        rc = bk_bind_sealed(b, st, 2, buf, len, false) == 0 && hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    } else {
        rc = -1;
    }
    done(b, st);
    free(buf);
    free(o);
    free(op);
    return rc;
}

/* 1 when in was handled before (its outputs are replayed into out), 0 when not, -1 error. */
static int outputs_replay(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out)
{
    hx_db_stmt_t *st = prep(b, "SELECT outputs FROM handled WHERE msg_id = ?");
    if (!st)
        return -1;
    hx_db_bind_blob(st, 1, in->id, HX_ID_LEN);
    int found = 0;
    uint8_t *v = NULL;
    size_t n = 0;
    if (hx_db_step(st) == HX_DB_ROW) {
        Handoff__StoredOutputs *all = bk_column_open(b, st, 0, &v, &n) == 0
                                          ? handoff__stored_outputs__unpack(NULL, n, v) : NULL;
        found = all ? 1 : -1;
        for (size_t i = 0; all && i < all->n_outputs; i++) {
            const Handoff__StoredOutput *o = all->outputs[i];
            if (hx_outbox_add(out, o->to_service ? HX_TO_SERVICE : HX_TO_MAILBOX, o->to, o->type, o->payload.data,
                              o->payload.len) != 0)
                found = -1;
        }
        if (all)
            handoff__stored_outputs__free_unpacked(all, NULL);
    }
    free(v);
    done(b, st);
    return found;
}

/* A message's own transaction: SAVEPOINT inside a burst's (hx_booking_batch_begin), so one
 * message that fails undoes only its own changes; its own transaction otherwise (a read one:
 * a consistent view that waits for no writer). */
static int txn_open(hx_booking_t *b, bool write)
{
    char err[512];
    if (b->in_batch)
        return exec(b, "SAVEPOINT message");
    if (write)
        return write_begin(b, err, sizeof err) == 0 ? 0 : -1;
    if (!on_postgres(b))
        return exec(b, "BEGIN");
    /* a connection lost since the last burst is made again here too (the tick, a query) */
    if (hx_db_ping(b->db, err, sizeof err) != 0) {
        hx_warn("%s", err);
        return -1;
    }
    return exec(b, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

static int txn_close(hx_booking_t *b, bool write, bool commit)
{
    if (b->in_batch) {
        if (commit)
            return exec(b, "RELEASE message");
        int rc = exec(b, "ROLLBACK TO message");
        return exec(b, "RELEASE message") || rc;
    }
    char err[512];
    if (commit && write && write_commit(b, err, sizeof err) != 0) {
        hx_error("%s", err);
        return -1;
    }
    if (commit && !write)
        return exec(b, "COMMIT");
    if (!commit)
        hx_db_rollback(b->db);
    return 0;
}

int hx_booking_batch_begin(hx_booking_t *b, char *err, size_t errcap)
{
    int rc = write_begin(b, err, errcap);
    if (rc == HX_DB_UNAVAILABLE)
        return HX_WORKER_STORE_DOWN;            /* given back, served again once it answers */
    if (rc != 0)
        return -1;
    b->in_batch = true;
    return 0;
}

int hx_booking_batch_commit(hx_booking_t *b, char *err, size_t errcap)
{
    b->in_batch = false;
    return write_commit(b, err, errcap);
}

void hx_booking_batch_rollback(hx_booking_t *b)
{
    b->in_batch = false;
    hx_db_rollback(b->db);
    calendar_drop(b);                           /* it held what is now undone */
}

int hx_booking_metrics(hx_booking_t *b, hx_metrics_t *m)
{
    return hx_db_metrics(b->db, m);
}

int hx_booking_ping(hx_booking_t *b, char *err, size_t errcap)
{
    return hx_db_ping(b->db, err, errcap);
}

/* A StatsRequest is a query: it reads in one read transaction (a consistent view; it waits for
 * no writer) and stores nothing, not even its outputs. A redelivered request is computed again;
 * its answer's message id is derived from the request's, so the broker keeps the first copy. */
static int handle_query(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    if (txn_open(b, false) != 0) {
        snprintf(err, errcap, "scheduling database: %s", hx_db_errmsg(b->db));
        return -1;
    }
    int64_t version = data_version(b);
    if (version < 0 || version != b->cal_version)
        calendar_drop(b);                       /* another worker changed the calendar */
    b->cal_version = version;
    int rc = hx_stats_on_request(b, in, out);
    if (txn_close(b, false, rc == 0) != 0)
        rc = -1;
    if (rc != 0) {
        snprintf(err, errcap, "scheduling database: %s", hx_db_errmsg(b->db));
        calendar_drop(b);
    }
    return rc;
}

int hx_booking_handle(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    /* the network's figures, asked by a clinic's or reviewer's session (the broker's policy) */
    if (strcmp(in->type, "handoff.StatsRequest") == 0 && in->from_kind == HX_TO_MAILBOX)
        return handle_query(b, in, out, err, errcap);
    /* cases come from triage only: a clinic cannot skip intake and triage by sending one */
    bool is_case = strcmp(in->type, "handoff.Case") == 0 && in->from_kind == HX_TO_SERVICE &&
                   strcmp(in->from, "triage") == 0;
    bool is_change = strcmp(in->type, "handoff.StatusChange") == 0;
    bool is_retry = strcmp(in->type, "handoff.Retry") == 0 && in->from_kind == HX_TO_SERVICE &&
                    strcmp(in->from, "scheduling") == 0;
    /* decisions come from reviewer sessions, which the broker's policy alone lets send them */
    bool is_review = strcmp(in->type, "handoff.ReviewDecision") == 0 && in->from_kind == HX_TO_MAILBOX;
    /* posts come from clinic sessions (the broker's policy); who posts is checked in hx_thread.c */
    bool is_post = strcmp(in->type, "handoff.ThreadPost") == 0 && in->from_kind == HX_TO_MAILBOX;
    if (!is_case && !is_change && !is_retry && !is_review && !is_post) {
        hx_warn("a message of type '%.64s' from %s ignored", in->type, in->from);
        return 0;
    }
    if (txn_open(b, true) != 0) {
        snprintf(err, errcap, "scheduling database busy: %s", hx_db_errmsg(b->db));
        return -1;
    }
    /* (PostgreSQL: looked at as the transaction took the writers' turn, write_begin) */
    int64_t version = on_postgres(b) ? b->cal_version : data_version(b);
    /* a clinic's change, a review or a post may cancel bookings: the calendar is read again;
     * cases and retries only book (and give back what they did not book), so they keep it. It
     * was also dropped for each retry, and each referral put on hold: with thousands on hold,
     * every referral then paid for reading every booking ever made (the pipeline's drift) */
    if ((!is_case && !is_retry) || version < 0 || version != b->cal_version)
        calendar_drop(b);
    b->cal_version = version;
    int rc = outputs_replay(b, in, out);
    if (rc == 0) {
        rc = is_case     ? on_case(b, in, out)
             : is_change ? on_change(b, in, out)
             : is_review ? hx_review_on_decision(b, in, out)
             : is_post   ? hx_thread_on_post(b, in, out)
                         : on_retry(b, in, out);
        if (rc == 0)
            rc = outputs_store(b, in, out);
    } else if (rc == 1) {
        rc = 0;                                 /* handled before: the same outputs again */
    }
    if (rc == 0 && txn_close(b, true, true) == 0)
        return 0;
    snprintf(err, errcap, "scheduling database: %s", hx_db_errmsg(b->db));
    txn_close(b, true, false);
    calendar_drop(b);
    return -1;
}

/* ---- life ------------------------------------------------------------------------------------- */

hx_booking_t *hx_booking_open(const hx_booking_config_t *cfg, const hx_directory_t *dir, char *err, size_t errcap)
{
    hx_booking_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    b->cfg = *cfg;
    b->cfg.data_key = NULL;
    b->dir = dir;
    if (cfg->data_key) {
        memcpy(b->key, cfg->data_key, sizeof b->key);
        b->sealing = true;
    }
    if (!(b->typer = hx_attach_typer_open(err, errcap))) {
        hx_booking_close(&b);
        return NULL;
    }
    const bool pg = strncmp(cfg->db_url, "postgres", 8) == 0;
    /* SQLite keeps its own versions (PRAGMA user_version, schema_migrate: stores older than
     * hx_db); PostgreSQL's are hx_db's steps */
    b->db = hx_db_open(cfg->db_url, "scheduling", pg ? pg_steps : NULL, pg ? sizeof pg_steps / sizeof *pg_steps : 0,
                       err, errcap);
    if (!b->db) {
        hx_booking_close(&b);
        return NULL;
    }
    const char *where = hx_db_where(b->db);
    if (cfg->audit_path &&
        !(b->audit = hx_audit_open_rotating(cfg->audit_path, cfg->audit_rotation, err, errcap))) {
        hx_booking_close(&b);
        return NULL;
    }
    int v = on_postgres(b) ? SCHEMA_VERSION : exec(b, schema) == 0 ? user_version(b) : -1;
    if (v > SCHEMA_VERSION) {
        snprintf(err, errcap, "%s: a scheduling database of version %d, newer than this program's %d: run the "
                 "handoff-scheduling that wrote it, or restore a backup of version %d or older", where, v,
                 SCHEMA_VERSION, SCHEMA_VERSION);
        hx_booking_close(&b);
        return NULL;
    }
    if (v < 0 || (!on_postgres(b) && schema_migrate(b) != 0) || directory_import(b, dir) != 0) {
        snprintf(err, errcap, "%s", hx_db_errmsg(b->db));
        hx_booking_close(&b);
        return NULL;
    }
    b->cal_version = -1;                        /* nothing kept yet */
    int legacy = hx_waitlist_init(b);           /* its own table (hx_waitlist.c) */
    b->waitlist_legacy = legacy == 1;
    if (legacy < 0) {
        snprintf(err, errcap, "the wait list: %s", hx_db_errmsg(b->db));
        hx_booking_close(&b);
        return NULL;
    }
    return b;
}

/* ---- migrations (PRAGMA user_version) ---------------------------------------------------------- */

/* Version 1: one lifecycle per handoff. A booking row already had its own status; the
 * referral gains the status of the handoffs still to be booked (pending: received, on-hold
 * or cancelled, with its event and reason), and bookings their last event and reason. A
 * store of version 0 keeps working: what was to be booked takes the referral's old status
 * (on-hold stays on hold, a revoked one stays cancelled), and every referral's status is
 * derived again from its handoffs (so one left "on-hold" while a booking was in progress is
 * in progress again). */
static const char migrate_v1[] =
    "ALTER TABLE referrals ADD COLUMN pending INTEGER NOT NULL DEFAULT 3;"     /* received */
    "ALTER TABLE referrals ADD COLUMN pending_event TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE referrals ADD COLUMN pending_reason TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE bookings ADD COLUMN event TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE bookings ADD COLUMN reason TEXT NOT NULL DEFAULT '';"
    "UPDATE referrals SET pending = status, pending_reason = reason WHERE status IN (7, 9);"  /* cancelled, on-hold */
    "UPDATE bookings SET event = 'book';"
    "CREATE INDEX IF NOT EXISTS referrals_pending ON referrals(pending, updated_ms);";

/* Version 2: a care-thread post may carry an attachment (packed handoff.Attachment, sealed
 * with the data key when there is one). Posts of version 1 have none. */
static const char migrate_v2[] = "ALTER TABLE thread ADD COLUMN attachment BLOB;";

/* Version 3: bookings gain distance_m (metres from the patient; NULL unknown), and a start
 * becomes an instant. Versions 0-2 stored the network's wall clock: each start is read as its
 * clinic's wall clock (the directory's zones now; a clinic without one: UTC, unchanged) and its
 * slots moved with it (first out of the way, to negative numbers, so no two collide midway). */
static int migrate_v3(hx_booking_t *b)
{
    hx_db_stmt_t *st = prep(b, "SELECT referral_id, discipline, therapist_id, clinic_id, start, minutes FROM bookings");
    hx_db_stmt_t *up = prep(b, "UPDATE bookings SET start = ? WHERE referral_id = ? AND discipline = ?");
    hx_db_stmt_t *sl = prep(b, "UPDATE slots SET slot = (-slot - 1) + ? WHERE referral_id = ? AND therapist_id = ? "
                               "AND slot < 0");
    int rc = st && up && sl && exec(b, "ALTER TABLE bookings ADD COLUMN distance_m INTEGER;"
                                       "UPDATE slots SET slot = -slot - 1;") == 0 ? 0 : -1;
    size_t moved = 0;
    while (rc == 0 && hx_db_step(st) == HX_DB_ROW) {
        const hx_clinic_t *c = hx_directory_clinic(b->dir, hx_db_col_text(st, 3));
        hx_minute_t local = hx_db_col_int(st, 4), utc = local;
        if (c && hx_tz_to_utc(c->tz, local, &utc) != 0)
            utc = local - hx_tz_offset(c->tz, local);      /* a skipped minute: the offset after it */
        hx_db_reset(up);
        hx_db_bind_int(up, 1, utc);
        hx_db_bind_text(up, 2, hx_db_col_text(st, 0));
        hx_db_bind_int(up, 3, hx_db_col_int(st, 1));
        hx_db_reset(sl);
        hx_db_bind_int(sl, 1, (utc - local) / SLOT_MINUTES);
        hx_db_bind_text(sl, 2, hx_db_col_text(st, 0));
        hx_db_bind_text(sl, 3, hx_db_col_text(st, 2));
        rc = hx_db_step(up) == HX_DB_DONE && hx_db_step(sl) == HX_DB_DONE ? 0 : -1;
        moved += utc != local;
    }
    done(b, st);
    done(b, up);
    done(b, sl);
    if (rc == 0)
        rc = exec(b, "DELETE FROM slots WHERE slot < 0; PRAGMA user_version = 3");
    if (rc == 0)
        hx_info("scheduling database migrated to version 3 (instants; %zu booking(s) moved from the network's "
                "time to their clinic's zone)", moved);
    return rc;
}

/* Version 4: what the network's figures (hx_stats.c, StatsRequest) are computed from. A
 * referral gains received_ms (when scheduling took it), a booking booked_ms (when it was made)
 * and started_ms (its first start event), and handoff_log keeps what the bookings table
 * forgets: each decline (by which clinic) and each time a handoff went on hold. Stores of
 * versions 0-3 never recorded these: their referrals have no receipt (NULL) and are left out
 * of the figures; referrals received from now on count. */
static const char migrate_v4[] =
    "ALTER TABLE referrals ADD COLUMN received_ms INTEGER;"
    "ALTER TABLE bookings ADD COLUMN booked_ms INTEGER;"
    "ALTER TABLE bookings ADD COLUMN started_ms INTEGER;"
    "CREATE TABLE IF NOT EXISTS handoff_log ("
    "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, clinic_id TEXT NOT NULL, event TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS handoff_log_referral ON handoff_log(referral_id, event);"
    "CREATE INDEX IF NOT EXISTS referrals_received ON referrals(received_ms);"
    "PRAGMA user_version = 4;";

/* Derives every booked referral's status again (after a migration). */
static int rederive_all(hx_booking_t *b)
{
    hx_db_stmt_t *st = prep(b, "SELECT DISTINCT referral_id FROM bookings");
    if (!st)
        return -1;
    int rc = 0, step;
    while (rc == 0 && (step = hx_db_step(st)) == HX_DB_ROW) {
        char rid[32];
        handoffs_t hs;
        snprintf(rid, sizeof rid, "%s", hx_db_col_text(st, 0));
        rc = referral_derive(b, rid, &hs);
    }
    if (rc == 0 && step != HX_DB_DONE)
        rc = -1;
    done(b, st);
    return rc;
}

static int user_version(hx_booking_t *b)
{
    hx_db_stmt_t *st = prep(b, "PRAGMA user_version");
    int v = st && hx_db_step(st) == HX_DB_ROW ? hx_db_col_int(st, 0) : -1;
    done(b, st);
    return v;
}

/* Brings the store to the current version in place, in one transaction (a second worker
 * starting at the same time waits, then finds it done). */
static int schema_migrate(hx_booking_t *b)
{
    if (exec(b, "BEGIN IMMEDIATE") != 0)
        return -1;
    int v = user_version(b);
    int rc = v < 0 ? -1 : 0;
    if (v > SCHEMA_VERSION)
        rc = -1;    /* hx_booking_open says why */
    if (rc == 0 && v < 1) {
        rc = exec(b, migrate_v1);
        if (rc == 0)
            rc = rederive_all(b);
        if (rc == 0)
            rc = exec(b, "PRAGMA user_version = 1");
        if (rc == 0)
            hx_info("scheduling database migrated to version 1 (one lifecycle per handoff)");
    }
    if (rc == 0 && v < 2) {
        rc = exec(b, migrate_v2);
        if (rc == 0)
            rc = exec(b, "PRAGMA user_version = 2");
        if (rc == 0)
            hx_info("scheduling database migrated to version 2 (attachments on the care thread)");
    }
    if (rc == 0 && v < 3)
        rc = migrate_v3(b);
    if (rc == 0 && v < 4) {
        rc = exec(b, migrate_v4);
        if (rc == 0)
            hx_info("scheduling database migrated to version 4 (receipt, booking and start times for the "
                    "network's figures)");
    }
    if (rc == 0 && exec(b, "COMMIT") == 0)
        return 0;
    exec(b, "ROLLBACK");
    return -1;
}

/* Replaces the directory tables with dir, in one transaction. */
static int directory_import(hx_booking_t *b, const hx_directory_t *dir)
{
    char err[512];
    if (write_begin(b, err, sizeof err) != 0) {
        hx_error("%s", err);
        return -1;
    }
    int rc = exec(b, "DELETE FROM hours; DELETE FROM therapists; DELETE FROM clinics;");
    hx_db_stmt_t *c = prep(b, "INSERT INTO clinics(id, name, city) VALUES (?, ?, ?)");
    hx_db_stmt_t *t = prep(b, "INSERT INTO therapists(id, name, discipline, registration, clinic_id, languages, "
                              "virtual) VALUES (?, ?, ?, ?, ?, ?, ?)");
    hx_db_stmt_t *h = prep(b, "INSERT INTO hours(therapist_id, day, from_min, to_min) VALUES (?, ?, ?, ?)");
    rc = rc == 0 && c && t && h ? 0 : -1;
    const hx_clinic_t *cl;
    size_t nc = hx_directory_clinics(dir, &cl);
    for (size_t i = 0; i < nc && rc == 0; i++) {
        hx_db_reset(c);
        hx_db_bind_text(c, 1, cl[i].id);
        hx_db_bind_text(c, 2, cl[i].name);
        hx_db_bind_text(c, 3, cl[i].city);
        rc = hx_db_step(c) == HX_DB_DONE ? 0 : -1;
    }
    const hx_therapist_t *th;
    size_t nt = hx_directory_therapists(dir, &th);
    for (size_t i = 0; i < nt && rc == 0; i++) {
        char langs[64] = "";
        size_t k = 0;
        for (size_t l = 0; l < th[i].n_languages && k < sizeof langs; l++)
            k += (size_t)snprintf(langs + k, sizeof langs - k, "%s%s", l ? "," : "", th[i].languages[l]);
        hx_db_reset(t);
        hx_db_bind_text(t, 1, th[i].id);
        hx_db_bind_text(t, 2, th[i].name);
        hx_db_bind_int(t, 3, (int)th[i].discipline);
        hx_db_bind_text(t, 4, th[i].registration);
        hx_db_bind_text(t, 5, th[i].clinic_id);
        hx_db_bind_text(t, 6, langs);
        hx_db_bind_int(t, 7, th[i].virtual_ok);
        rc = hx_db_step(t) == HX_DB_DONE ? 0 : -1;
        for (size_t w = 0; w < th[i].n_hours && rc == 0; w++) {
            hx_db_reset(h);
            hx_db_bind_text(h, 1, th[i].id);
            hx_db_bind_int(h, 2, th[i].hours[w].day);
            hx_db_bind_int(h, 3, th[i].hours[w].from);
            hx_db_bind_int(h, 4, th[i].hours[w].to);
            rc = hx_db_step(h) == HX_DB_DONE ? 0 : -1;
        }
    }
    done(b, c);
    done(b, t);
    done(b, h);
    if (rc == 0)
        return write_commit(b, err, sizeof err) == 0 ? 0 : -1;
    hx_db_rollback(b->db);
    return -1;
}

int hx_booking_set_directory(hx_booking_t *b, const hx_directory_t *dir)
{
    if (directory_import(b, dir) != 0)
        return -1;
    b->dir = dir;
    return 0;
}

void hx_booking_close(hx_booking_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_calendar_destroy(&(*self_p)->cal);
    hx_db_close(&(*self_p)->db);
    hx_audit_close(&(*self_p)->audit);
    hx_attach_typer_close(&(*self_p)->typer);
    sodium_memzero((*self_p)->key, sizeof (*self_p)->key);
    free(*self_p);
    *self_p = NULL;
}

/* ---- for hx_review.c (hx_booking_internal.h) ------------------------------------------------ */

const hx_db_step_t *hx_booking_pg_steps(size_t *n)
{
    *n = sizeof pg_steps / sizeof *pg_steps;
    return pg_steps;
}

hx_db_t *bk_db(hx_booking_t *b)
{
    return b->db;
}

bool bk_on_postgres(const hx_booking_t *b)
{
    return on_postgres(b);
}

int bk_exec(hx_booking_t *b, const char *sql)
{
    return exec(b, sql);
}

int bk_write_begin(hx_booking_t *b, char *err, size_t cap)
{
    return write_begin(b, err, cap);
}

int bk_write_commit(hx_booking_t *b, char *err, size_t cap)
{
    return write_commit(b, err, cap);
}

void bk_write_rollback(hx_booking_t *b)
{
    hx_db_rollback(b->db);
    calendar_drop(b);
}

hx_db_stmt_t *bk_prep(hx_booking_t *b, const char *sql)
{
    return prep(b, sql);
}

void bk_done(hx_booking_t *b, hx_db_stmt_t *st)
{
    done(b, st);
}

int bk_row_load(hx_booking_t *b, const char *referral_id, bk_row_t *r)
{
    referral_row_t row;
    int found = row_load(b, referral_id, &row);
    r->status = row.status;
    snprintf(r->referring_clinic, sizeof r->referring_clinic, "%s", row.referring_clinic);
    snprintf(r->ref, sizeof r->ref, "%s", row.ref);
    r->c = row.c;
    return found;
}

void bk_row_free(bk_row_t *r)
{
    if (r->c)
        handoff__case__free_unpacked(r->c, NULL);
    r->c = NULL;
}

int bk_set_status(hx_booking_t *b, const char *referral_id, Handoff__TaskStatus s, const char *reason)
{
    return set_status(b, referral_id, s, reason);
}

int bk_book(hx_booking_t *b, const char *referral_id, hx_outbox_t *out)
{
    return book_missing(b, referral_id, out);
}

int bk_refuse_request(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const char *role, const char *what,
                      const char *rid, const char *why)
{
    char outcome[1280];         /* a reviewer's refusal quotes up to 800 characters */
    snprintf(outcome, sizeof outcome, "refused: %s", why);
    bk_audit_write(b, role, in, what, rid, outcome);
    hx_info("%s of %s by %s refused: %s", what, rid[0] ? rid : "(no referral)", in->from, why);
    return hx_svc_status(out, in->from, rid, "", HANDOFF__TASK_STATUS__TASK_UNSPECIFIED, why, "scheduling", NULL, 0,
                         NULL, what, true);
}

int bk_emit_status(hx_outbox_t *out, const char *to, const char *referral_id, const char *ref,
                   Handoff__TaskStatus status, hx_event_t ev, bool refused, const char *reason,
                   Handoff__TriageDecision *decision)
{
    return emit_status(out, to, referral_id, ref, status, ev, refused, reason, NULL, 0, decision);
}


const char *bk_reviewers(const hx_booking_t *b)
{
    return b->cfg.reviewers && b->cfg.reviewers[0] ? b->cfg.reviewers : "review";
}

int bk_log_event(hx_booking_t *b, const char *rid, Handoff__Discipline d, const char *clinic, const char *event)
{
    hx_db_stmt_t *st = prep(b, "INSERT INTO handoff_log(referral_id, discipline, clinic_id, event, at_ms) "
                               "VALUES (?, ?, ?, ?, ?)");
    int rc = st ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_text(st, 1, rid);
        hx_db_bind_int(st, 2, (int)d);
        hx_db_bind_text(st, 3, clinic ? clinic : "");
        hx_db_bind_text(st, 4, event);
        hx_db_bind_int(st, 5, (int64_t)bk_now_ms(b));
        rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    }
    done(b, st);
    return rc;
}

hx_calendar_t *bk_calendar(hx_booking_t *b)
{
    return calendar_load(b);
}

/* ---- for hx_coordinate.c (hx_booking_internal.h) -------------------------------------------- */

const hx_directory_t *bk_directory(const hx_booking_t *b)
{
    return b->dir;
}

int bk_handoffs_load(hx_booking_t *b, const char *rid, bk_handoffs_t *hs)
{
    referral_row_t row;
    int rc = row_load(b, rid, &row) == 1 ? handoffs_load(b, rid, &row, hs) : -1;
    row_free(&row);
    return rc;
}

int bk_derive(hx_booking_t *b, const char *rid, bk_handoffs_t *hs)
{
    return referral_derive(b, rid, hs);
}

int bk_tell(hx_booking_t *b, hx_outbox_t *out, const char *to, const bk_update_t *u, bk_handoff_t *const *list,
            size_t n)
{
    return tell(b, out, to, u, list, n);
}

int bk_tell_referrer(hx_booking_t *b, hx_outbox_t *out, const char *referrer, const bk_update_t *u,
                     bk_handoffs_t *hs)
{
    return tell_referrer(b, out, referrer, u, hs);
}

int bk_tell_receiver(hx_booking_t *b, hx_outbox_t *out, const char *clinic, const bk_update_t *u, bk_handoffs_t *hs)
{
    return tell_receiver(b, out, clinic, u, hs);
}

Handoff__Booking *bk_booking_pb(hx_booking_t *b, const char *rid, bk_booking_t *k)
{
    return booking_pb(b, rid, k);
}

int bk_bookings_load(hx_booking_t *b, const char *rid, bk_booking_t *out, size_t *n)
{
    return bookings_load(b, rid, out, n);
}

int bk_slot_find(hx_booking_t *b, const char *rid, Handoff__Discipline d, const bk_where_t *w, bk_booking_t *k,
                 char *why, size_t cap)
{
    referral_row_t row;
    booking_plan_t plan = {.where = w};
    if (row_load(b, rid, &row) != 1 || plan_load(b, rid, &plan) != 0) {
        row_free(&row);
        return -1;
    }
    plan_window(b, row.c->referral, row.c->decision, &plan);
    why[0] = '\0';
    plan_find(b, &plan, d, why, cap);
    for (size_t i = 0; i < plan.n_declined; i++)
        free(plan.declined[i]);
    row_free(&row);
    calendar_drop(b);           /* plan_find wrote the slot into it: nothing is booked yet */
    if (plan.n_add == 0)
        return 0;
    *k = plan.add[0];
    booking_pb(b, rid, k);      /* start_text: the clinic's wall clock */
    return 1;
}

int bk_booking_add(hx_booking_t *b, const char *rid, const bk_booking_t *k, hx_event_t ev, const char *reason)
{
    calendar_drop(b);
    int rc = booking_insert(b, rid, k);
    return rc == 0 ? booking_mark(b, rid, k->discipline, HANDOFF__TASK_STATUS__TASK_READY, ev, reason) : rc;
}

int bk_booking_forget(hx_booking_t *b, const char *rid, Handoff__Discipline d)
{
    calendar_drop(b);           /* its slots are free from now on */
    return booking_end(b, rid, d, true);
}

int bk_declined_add(hx_booking_t *b, const char *rid, const char *therapist_id)
{
    return declined_add(b, rid, therapist_id);
}

int bk_set_pending(hx_booking_t *b, const char *rid, Handoff__TaskStatus s, hx_event_t ev, const char *reason)
{
    return set_pending(b, rid, s, ev, reason);
}

int bk_case_store(hx_booking_t *b, const char *rid, const Handoff__Case *c)
{
    hx_db_stmt_t *st = prep(b, "UPDATE referrals SET case_pb = ?, updated_ms = ? WHERE referral_id = ?");
    int rc = st && bk_bind_case(b, st, 1, c) == 0 ? 0 : -1;
    if (rc == 0) {
        hx_db_bind_int(st, 2, (int64_t)bk_now_ms(b));
        hx_db_bind_text(st, 3, rid);
        rc = hx_db_step(st) == HX_DB_DONE && hx_db_changes(b->db) == 1 ? 0 : -1;
    }
    done(b, st);
    return rc;
}

int bk_retry_on_hold(hx_booking_t *b, hx_outbox_t *out)
{
    return retry_on_hold(b, out);
}

int bk_refuse(hx_booking_t *b, hx_outbox_t *out, const hx_msg_t *in, const char *rid, const bk_row_t *row,
              hx_event_t ev, const char *why)
{
    referral_row_t r = {.status = row ? row->status : HANDOFF__TASK_STATUS__TASK_UNSPECIFIED,
                        .c = row ? row->c : NULL};
    snprintf(r.ref, sizeof r.ref, "%s", row ? row->ref : "");
    return refuse(b, out, in, rid, row ? &r : NULL, ev, why);
}
