/* hx_waitlist — referrals on hold as a wait list: one row per handoff waiting for a slot,
 * ordered by priority (stat first, then asap, urgent, routine), then by arrival (when it went
 * on the wait list). Scheduling retries them in that order as the horizon advances (a tick
 * posts a handoff.Retry for each) and when a slot is freed; each retry that finds no slot
 * reports the position and an estimate to the referrer when either changed, and escalates,
 * once, a referral that waited longer than its priority's bound.
 *
 * The table is new and independent of the referrals' columns, so it is created on open
 * (IF NOT EXISTS) without a schema version: a store older than it simply has no rows, and
 * its held referrals join the list, by their last update, at their next retry. */
#include "hx_booking_internal.h"
#include "hx_log.h"
#include "hx_refjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (24ull * 60 * 60 * 1000)
#define ON_HOLD HANDOFF__TASK_STATUS__TASK_ON_HOLD

static const char waitlist_schema[] =
    "CREATE TABLE IF NOT EXISTS waitlist ("
    "  referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, priority INTEGER NOT NULL,"
    "  since_ms INTEGER NOT NULL, escalated_ms INTEGER NOT NULL DEFAULT 0,"
    "  told_position INTEGER NOT NULL DEFAULT 0, told_length INTEGER NOT NULL DEFAULT 0,"
    "  told_estimate TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (referral_id, discipline)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS waitlist_order ON waitlist(discipline, priority, since_ms);"
    /* the ones not yet escalated, by how long they waited (hx_waitlist_due) */
    "CREATE INDEX IF NOT EXISTS waitlist_unescalated ON waitlist(priority, since_ms) WHERE escalated_ms = 0;"
    /* how many wait per discipline and priority, kept by triggers in the same transactions, so
     * that a place is counted without reading the list (place) */
    "CREATE TABLE IF NOT EXISTS waitlist_counts ("
    "  discipline INTEGER NOT NULL, priority INTEGER NOT NULL, n INTEGER NOT NULL,"
    "  PRIMARY KEY (discipline, priority)) WITHOUT ROWID;"
    "CREATE TRIGGER IF NOT EXISTS waitlist_counts_in AFTER INSERT ON waitlist BEGIN"
    "  INSERT INTO waitlist_counts VALUES (NEW.discipline, NEW.priority, 1)"
    "  ON CONFLICT (discipline, priority) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS waitlist_counts_out AFTER DELETE ON waitlist BEGIN"
    "  UPDATE waitlist_counts SET n = n - 1 WHERE discipline = OLD.discipline AND priority = OLD.priority; END;"
    "CREATE TRIGGER IF NOT EXISTS waitlist_counts_move AFTER UPDATE OF discipline, priority ON waitlist BEGIN"
    "  UPDATE waitlist_counts SET n = n - 1 WHERE discipline = OLD.discipline AND priority = OLD.priority;"
    "  INSERT INTO waitlist_counts VALUES (NEW.discipline, NEW.priority, 1)"
    "  ON CONFLICT (discipline, priority) DO UPDATE SET n = n + 1; END;";

/* One statement of init's: 0, or -1 (logged). found (may be NULL): whether it gave a row. */
static int init_step(hx_booking_t *b, const char *sql, bool *found)
{
    hx_db_stmt_t *st = bk_prep(b, sql);
    int rc = st && hx_db_bind_int(st, 1, ON_HOLD) == 0 ? hx_db_step(st) : -1;
    if (found)
        *found = rc == HX_DB_ROW;
    if (rc < 0 && st)
        hx_error("scheduling database: the wait list: %s", hx_db_errmsg(bk_db(b)));
    bk_done(b, st);
    return rc < 0 ? -1 : 0;
}

int hx_waitlist_init(hx_booking_t *b)
{
    char err[512];
    if (bk_write_begin(b, err, sizeof err) != 0) {
        hx_error("%s", err);
        return -1;
    }
    /* PostgreSQL's store has the list from its first schema step (hx_booking.c) */
    int rc = bk_on_postgres(b) ? 0 : bk_exec(b, waitlist_schema);
    /* rows of referrals no longer on hold, left by a version that swept them later */
    if (rc == 0)
        rc = init_step(b, "DELETE FROM waitlist WHERE NOT EXISTS (SELECT 1 FROM referrals r WHERE "
                          "r.referral_id = waitlist.referral_id AND r.pending = ?)", NULL);
    /* the counts made anew from the list (a store from before them, or one changed by hand) */
    if (rc == 0)
        rc = bk_exec(b, "DELETE FROM waitlist_counts; INSERT INTO waitlist_counts "
                        "SELECT discipline, priority, COUNT(*) FROM waitlist GROUP BY discipline, priority");
    /* held referrals of a store from before the wait list, not on it yet */
    bool found = false;
    if (rc == 0)
        rc = init_step(b, "SELECT 1 FROM referrals r WHERE r.pending = ? AND NOT EXISTS "
                          "(SELECT 1 FROM waitlist w WHERE w.referral_id = r.referral_id) LIMIT 1", &found);
    if (rc == 0 && bk_write_commit(b, err, sizeof err) != 0) {
        hx_error("%s", err);
        return -1;
    }
    if (rc != 0) {
        bk_write_rollback(b);
        return -1;
    }
    return found ? 1 : 0;
}

/* The referral's priority: the decision's, else the referral's; unspecified counts as routine. */
static Handoff__Priority case_priority(const Handoff__Case *c)
{
    Handoff__Priority p = c && c->decision ? c->decision->priority : 0;
    if (!p && c && c->referral)
        p = c->referral->priority;
    return p ? p : HANDOFF__PRIORITY__PRIORITY_ROUTINE;
}

/* How long a referral of priority p may wait on hold before it is escalated, in days. */
static uint32_t bound_days(const hx_booking_t *b, Handoff__Priority p)
{
    const hx_booking_config_t *cfg = bk_config(b);
    return p == HANDOFF__PRIORITY__PRIORITY_STAT     ? 1
           : p == HANDOFF__PRIORITY__PRIORITY_ASAP   ? 3
           : p == HANDOFF__PRIORITY__PRIORITY_URGENT ? 7
           : cfg->routine_days                       ? cfg->routine_days
                                                     : cfg->horizon_days;
}

/* How far ahead a referral of priority p may be booked, in days (as plan_window: the
 * horizon, or fewer as the priority requires). */
static uint32_t window_days(const hx_booking_t *b, Handoff__Priority p)
{
    uint32_t w = bk_config(b)->horizon_days;
    uint32_t prio = p == HANDOFF__PRIORITY__PRIORITY_ROUTINE ? w : bound_days(b, p);
    return prio < w ? prio : w;
}

static int step_done(hx_booking_t *b, hx_db_stmt_t *st)
{
    int rc = st && hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    bk_done(b, st);
    return rc;
}

/* Puts the held handoffs of hs on the wait list (a new one arrives now; one already on it
 * keeps its arrival) and takes off what is no longer held. A referral that leaves hold
 * otherwise (booked, revoked) leaves the list then (set_pending, hx_booking.c): the list holds
 * exactly the referrals on hold, so nothing here reads the whole list. */
static int held_sync(hx_booking_t *b, const char *rid, Handoff__Priority prio, const bk_handoffs_t *hs)
{
    int held[2] = {0, 0};
    int rc = 0;
    for (size_t i = 0; i < hs->n && rc == 0; i++) {
        if (hs->h[i].booked || hs->h[i].status != ON_HOLD)
            continue;
        held[i] = (int)hs->h[i].k.discipline;
        hx_db_stmt_t *st = bk_prep(b, "INSERT INTO waitlist(referral_id, discipline, priority, since_ms) "
                                      "VALUES (?, ?, ?, ?) ON CONFLICT (referral_id, discipline) "
                                      "DO UPDATE SET priority = excluded.priority");
        if (st) {
            hx_db_bind_text(st, 1, rid);
            hx_db_bind_int(st, 2, held[i]);
            hx_db_bind_int(st, 3, (int)prio);
            hx_db_bind_int(st, 4, (int64_t)bk_now_ms(b));
        }
        rc = step_done(b, st);
    }
    hx_db_stmt_t *st = rc == 0 ? bk_prep(b, "DELETE FROM waitlist WHERE referral_id = ? AND discipline NOT IN (?, ?)")
                               : NULL;
    if (st) {
        hx_db_bind_text(st, 1, rid);
        hx_db_bind_int(st, 2, held[0]);
        hx_db_bind_int(st, 3, held[1]);
    }
    return rc == 0 ? step_done(b, st) : -1;
}

/* Where (rid, disc), on the list, stands on its discipline's wait list: 1-based position and
 * length. The length, how many wait at a higher priority and how many at its own come from
 * waitlist_counts (kept by triggers). Within its priority, the rows ahead of it and the rows
 * with it and after it are walked over the waitlist_order index (discipline, priority,
 * since_ms, then the key) a row at a time, in turn, and the side that ends first gives the
 * place: a new hold (at the end) and a retry (from the front) read a handful of rows, where
 * counting one side made one of them cost the whole list. */
/* PostgreSQL sends a query's rows whole, so the walk below would read every row of the
 * priority: there the rows ahead and the rows behind are counted on the server instead, each
 * count stopping at k rows, k growing fourfold until one side ends: the cost of the side that
 * ends first, as the walk. The referral's rows ahead of it (of same at its priority), or -1. */
static int64_t pg_ahead(hx_booking_t *b, const char *rid, int disc, int prio, int64_t since, int64_t same)
{
    static const char *const count[2] = {
        "SELECT count(*) FROM (SELECT 1 FROM waitlist WHERE discipline = ?1 AND priority = ?2 AND since_ms <= ?3 "
        "AND (since_ms < ?3 OR referral_id < ?4) LIMIT ?5) a",
        "SELECT count(*) FROM (SELECT 1 FROM waitlist WHERE discipline = ?1 AND priority = ?2 AND since_ms >= ?3 "
        "AND (since_ms > ?3 OR referral_id >= ?4) LIMIT ?5) b"};
    for (int64_t k = 64;; k *= 4) {
        for (int i = 0; i < 2; i++) {
            hx_db_stmt_t *st = bk_prep(b, count[i]);
            if (!st)
                return -1;
            hx_db_bind_int(st, 1, disc);
            hx_db_bind_int(st, 2, prio);
            hx_db_bind_int(st, 3, since);
            hx_db_bind_text(st, 4, rid);
            hx_db_bind_int(st, 5, k);
            int64_t n = hx_db_step(st) == HX_DB_ROW ? hx_db_col_int(st, 0) : -1;
            bk_done(b, st);
            if (n < 0)
                return -1;
            if (n < k)
                return i == 0 ? n : same - n;
        }
    }
}

static int place(hx_booking_t *b, const char *rid, int disc, int prio, int64_t since, uint32_t *pos, uint32_t *len)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT COALESCE(SUM(n), 0), COALESCE(SUM(n) FILTER (WHERE priority > ?2), 0), "
                                  "COALESCE(SUM(n) FILTER (WHERE priority = ?2), 0) FROM waitlist_counts "
                                  "WHERE discipline = ?1");
    if (!st)
        return -1;
    hx_db_bind_int(st, 1, disc);
    hx_db_bind_int(st, 2, prio);
    int64_t all = 0, above = 0, same = 0;
    int rc = hx_db_step(st) == HX_DB_ROW ? 0 : -1;
    if (rc == 0) {
        all = hx_db_col_int(st, 0);
        above = hx_db_col_int(st, 1);
        same = hx_db_col_int(st, 2);
    }
    bk_done(b, st);
    if (rc == 0 && bk_on_postgres(b)) {
        int64_t ahead = pg_ahead(b, rid, disc, prio, since, same);
        if (ahead < 0)
            return -1;
        *len = (uint32_t)all;
        *pos = (uint32_t)(above + ahead + 1);
        return 0;
    }
    hx_db_stmt_t *side[2] = {
        rc == 0 ? bk_prep(b, "SELECT 1 FROM waitlist WHERE discipline = ?1 AND priority = ?2 AND since_ms <= ?3 "
                             "AND (since_ms < ?3 OR referral_id < ?4) ORDER BY since_ms DESC, referral_id DESC")
                : NULL,
        rc == 0 ? bk_prep(b, "SELECT 1 FROM waitlist WHERE discipline = ?1 AND priority = ?2 AND since_ms >= ?3 "
                             "AND (since_ms > ?3 OR referral_id >= ?4) ORDER BY since_ms, referral_id")
                : NULL};
    for (int i = 0; i < 2 && side[i]; i++) {
        hx_db_bind_int(side[i], 1, disc);
        hx_db_bind_int(side[i], 2, prio);
        hx_db_bind_int(side[i], 3, since);
        hx_db_bind_text(side[i], 4, rid);
    }
    int64_t seen[2] = {0, 0}, ahead = -1;
    if (!side[0] || !side[1])
        rc = -1;
    while (rc == 0 && ahead < 0) {
        for (int i = 0; i < 2 && rc == 0 && ahead < 0; i++) {
            int step = hx_db_step(side[i]);
            if (step == HX_DB_ROW)
                seen[i]++;
            else if (step == HX_DB_DONE)
                ahead = i == 0 ? seen[0] : same - seen[1];
            else
                rc = -1;
        }
    }
    for (int i = 0; i < 2; i++)
        bk_done(b, side[i]);
    if (rc == 0) {
        *len = (uint32_t)all;
        *pos = (uint32_t)(above + ahead + 1);
    }
    return rc;
}

/* Sessions of discipline d the directory's therapists can give in an average day. */
static double sessions_per_day(const hx_booking_t *b, Handoff__Discipline d)
{
    const hx_therapist_t *t;
    size_t n = hx_directory_therapists(bk_directory(b), &t);
    uint32_t len = hx_session_minutes(d, 0);
    double week = 0;
    for (size_t i = 0; i < n && len; i++)
        for (size_t k = 0; t[i].discipline == d && k < t[i].n_hours; k++)
            week += (t[i].hours[k].to - t[i].hours[k].from) / len;
    return week / 7.0;
}

/* The estimate (docs/PROTOCOL.md "Wait list"): the day its turn comes if every session of its
 * discipline entering the horizon went to the wait list in order: today + its window + the
 * days the ones ahead of it take at the directory's sessions per day. It knows nothing of the
 * patient's availability, language or clinics, nor of slots freed by declines: an estimate.
 * "" when the directory has no such sessions. */
static void estimate(const hx_booking_t *b, Handoff__Priority prio, Handoff__Discipline d, uint32_t pos, char out[11])
{
    out[0] = '\0';
    double per_day = sessions_per_day(b, d);
    if (per_day <= 0)
        return;
    uint64_t days = window_days(b, prio) + (uint64_t)((pos - 1) / per_day);
    char text[17];
    hx_minute_format((hx_minute_t)(bk_now_ms(b) / 60000 + days * 24 * 60), text);
    snprintf(out, 11, "%.10s", text);
}

/* Works out each of the referral's wait-list rows' position and estimate, stores them as told
 * when they changed (*changed), and says them in text ("physiotherapy 3 of 12, estimate ..."). */
static int report(hx_booking_t *b, const char *rid, bool *changed, char *text, size_t cap)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT discipline, priority, since_ms, told_position, told_estimate "
                                  "FROM waitlist WHERE referral_id = ? ORDER BY discipline");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    int rc = 0, step;
    size_t len = 0;
    text[0] = '\0';
    while (rc == 0 && (step = hx_db_step(st)) == HX_DB_ROW) {
        int disc = hx_db_col_int(st, 0), prio = hx_db_col_int(st, 1);
        int64_t since = hx_db_col_int(st, 2);
        uint32_t told = (uint32_t)hx_db_col_int(st, 3), pos = 0, n = 0;
        char est[11], told_est[11];
        snprintf(told_est, sizeof told_est, "%s", hx_db_col_text(st, 4));
        rc = place(b, rid, disc, prio, since, &pos, &n);
        if (rc != 0)
            break;
        estimate(b, (Handoff__Priority)prio, (Handoff__Discipline)disc, pos, est);
        if (len < cap)
            len += (size_t)snprintf(text + len, cap - len, "%s%s %u of %u%s%s", len ? "; " : "",
                                    hx_discipline_text((Handoff__Discipline)disc), pos, n,
                                    est[0] ? ", estimate " : "", est);
        hx_db_stmt_t *up = bk_prep(b, "UPDATE waitlist SET told_position = ?, told_length = ?, told_estimate = ? "
                                      "WHERE referral_id = ? AND discipline = ?");
        if (up) {
            hx_db_bind_int(up, 1, (int)pos);
            hx_db_bind_int(up, 2, (int)n);
            hx_db_bind_text(up, 3, est);
            hx_db_bind_text(up, 4, rid);
            hx_db_bind_int(up, 5, disc);
        }
        rc = step_done(b, up);
        *changed |= pos != told || strcmp(est, told_est) != 0;
    }
    if (rc == 0 && step != HX_DB_DONE)
        rc = -1;
    bk_done(b, st);
    return rc;
}

/* Escalates the referral once when it has waited longer than its priority's bound: the
 * referrer is told (event "escalate"), the audit log and the log (warn, "alert") say it. */
static int escalate(hx_booking_t *b, const char *rid, const char *referrer, const char *ref, const Handoff__Case *c,
                    bk_handoffs_t *hs, hx_outbox_t *out)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT MIN(since_ms), MAX(escalated_ms) FROM waitlist WHERE referral_id = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    bool row = hx_db_step(st) == HX_DB_ROW && !hx_db_col_null(st, 0);
    uint64_t since = row ? (uint64_t)hx_db_col_int(st, 0) : 0;
    bool done = row && hx_db_col_int(st, 1) != 0;
    bk_done(b, st);
    Handoff__Priority prio = case_priority(c);
    uint32_t bound = bound_days(b, prio);
    uint64_t now = bk_now_ms(b);
    if (!row || done || now < since || now - since < bound * DAY_MS)
        return 0;
    st = bk_prep(b, "UPDATE waitlist SET escalated_ms = ? WHERE referral_id = ?");
    if (st) {
        hx_db_bind_int(st, 1, (int64_t)now);
        hx_db_bind_text(st, 2, rid);
    }
    if (step_done(b, st) != 0)
        return -1;
    uint64_t waited = now - since;
    char why[200];
    snprintf(why, sizeof why, "escalated: on the wait list for %llu day(s) %llu hour(s), longer than its "
             "priority's bound (%s: %u day(s))", (unsigned long long)(waited / DAY_MS),
             (unsigned long long)(waited % DAY_MS / 3600000), hx_priority_text(prio), bound);
    hx_warn("alert: referral %s %s", rid, why);
    hx_msg_t self = {.from_kind = HX_TO_SERVICE, .from = "scheduling"};
    bk_audit_write(b, "service", &self, "escalate", rid, why);
    bk_update_t u = {.rid = rid, .ref = ref, .status = hs->status, .ev = HX_EVENT_HOLD, .reason = why,
                     .decision = c ? c->decision : NULL, .event_text = "escalate"};
    return bk_tell_referrer(b, out, referrer, &u, hs);
}

int hx_waitlist_held(hx_booking_t *b, const char *rid, const char *referrer, const char *ref, const Handoff__Case *c,
                     const char *why, bool first, bk_handoffs_t *hs, hx_outbox_t *out)
{
    bool changed = false;
    char places[200];
    int rc = held_sync(b, rid, case_priority(c), hs);
    if (rc == 0)
        rc = report(b, rid, &changed, places, sizeof places);
    if (rc == 0 && (first || changed)) {
        char text[600];
        snprintf(text, sizeof text, "%s%s%s%s", why, places[0] ? "; wait list position " : "", places,
                 places[0] ? " (stat first, then asap, urgent, routine; each by arrival)" : "");
        bk_update_t u = {.rid = rid, .ref = ref, .status = hs->status, .ev = HX_EVENT_HOLD, .reason = text,
                         .decision = c ? c->decision : NULL};
        rc = bk_tell_referrer(b, out, referrer, &u, hs);
    }
    if (rc == 0)
        rc = escalate(b, rid, referrer, ref, c, hs, out);
    return rc;
}

int hx_waitlist_leave(hx_booking_t *b, const char *rid)
{
    hx_db_stmt_t *st = bk_prep(b, "DELETE FROM waitlist WHERE referral_id = ?");
    if (st)
        hx_db_bind_text(st, 1, rid);
    return step_done(b, st);
}

void hx_waitlist_fill(hx_booking_t *b, const char *rid, bk_handoff_t *h)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT told_position, told_length, told_estimate, since_ms, escalated_ms "
                                  "FROM waitlist WHERE referral_id = ? AND discipline = ?");
    if (!st)
        return;
    hx_db_bind_text(st, 1, rid);
    hx_db_bind_int(st, 2, (int)h->k.discipline);
    if (hx_db_step(st) == HX_DB_ROW) {
        h->pb.wait_position = (uint32_t)hx_db_col_int(st, 0);
        h->pb.wait_length = (uint32_t)hx_db_col_int(st, 1);
        snprintf(h->wait_estimate, sizeof h->wait_estimate, "%s", hx_db_col_text(st, 2));
        h->pb.wait_estimate = h->wait_estimate;
        h->pb.wait_since_ms = (uint64_t)hx_db_col_int(st, 3);
        h->pb.escalated = hx_db_col_int(st, 4) != 0;
    }
    bk_done(b, st);
}

int hx_booking_waiting(hx_booking_t *b, uint64_t by_priority[5])
{
    /* from the counts the triggers keep: the same whatever the list's length (counting the
     * referrals on hold read all of them: 2.3 s with 300,000, in the retry tick, long enough
     * for the broker to expire scheduling's session) */
    memset(by_priority, 0, 5 * sizeof by_priority[0]);
    hx_db_stmt_t *st = bk_prep(b, "SELECT priority, SUM(n) FROM waitlist_counts GROUP BY priority");
    if (!st)
        return -1;
    int step;
    while ((step = hx_db_step(st)) == HX_DB_ROW) {
        int p = hx_db_col_int(st, 0);
        if (p >= 0 && p < 5)
            by_priority[p] += (uint64_t)hx_db_col_int(st, 1);
    }
    bk_done(b, st);
    return step == HX_DB_DONE ? 0 : -1;
}

/* ---- the order of retries ----------------------------------------------------------------- */

typedef struct {
    int64_t since;
    char id[32];
    size_t at;                      /* position in the merged order, for the dedupe */
} waiting_t;

static int by_arrival(const void *x, const void *y)
{
    const waiting_t *a = x, *b = y;
    return a->since != b->since ? (a->since < b->since ? -1 : 1) : strcmp(a->id, b->id);
}

static int by_id_then_at(const void *x, const void *y)
{
    const waiting_t *a = x, *b = y;
    int c = strcmp(a->id, b->id);
    return c ? c : (a->at < b->at ? -1 : a->at > b->at);
}

static int by_at(const void *x, const void *y)
{
    const waiting_t *a = x, *b = y;
    return a->at < b->at ? -1 : a->at > b->at;
}

/* Rows of one discipline and priority in arrival order, appended to w (at most cap in all). */
static int order_rows(hx_booking_t *b, int disc, int prio, waiting_t *w, size_t *n, size_t cap)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT referral_id, since_ms FROM waitlist WHERE discipline = ? AND priority = ? "
                                  "ORDER BY since_ms, referral_id LIMIT ?");
    if (!st)
        return -1;
    hx_db_bind_int(st, 1, disc);
    hx_db_bind_int(st, 2, prio);
    hx_db_bind_int(st, 3, (int64_t)(cap - *n));
    int step;
    while (*n < cap && (step = hx_db_step(st)) == HX_DB_ROW) {
        snprintf(w[*n].id, sizeof w[*n].id, "%s", hx_db_col_text(st, 0));
        w[*n].since = hx_db_col_int(st, 1);
        (*n)++;
    }
    bk_done(b, st);
    return 0;
}

size_t hx_waitlist_order(hx_booking_t *b, unsigned mask, char (*ids)[32], size_t cap)
{
    /* per priority, stat first: each discipline's list read from its index, merged by arrival;
     * a referral waiting for two disciplines comes once, at its first place */
    waiting_t *w = cap ? malloc(2 * cap * sizeof *w) : NULL;
    size_t n = 0;
    int rc = 0;
    for (int prio = HANDOFF__PRIORITY__PRIORITY_STAT; w && rc == 0 && prio >= 0 && n < cap; prio--) {
        size_t got = n;
        for (int disc = 1; disc < 8 && rc == 0; disc++)
            if (mask & (1u << disc))
                rc = order_rows(b, disc, prio, w, &got, n + cap);     /* n < cap: fits in 2 * cap */
        qsort(w + n, got - n, sizeof *w, by_arrival);
        n = got;
    }
    for (size_t i = 0; i < n; i++)
        w[i].at = i;
    qsort(w, n, sizeof *w, by_id_then_at);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(w[i].id, w[i - 1].id) != 0)
            w[k++] = w[i];
    qsort(w, k, sizeof *w, by_at);
    size_t out = k < cap ? k : cap;
    for (size_t i = 0; i < out; i++)
        memcpy(ids[i], w[i].id, sizeof ids[i]);
    free(w);
    return out;
}

size_t hx_waitlist_due(hx_booking_t *b, char (*ids)[32], size_t cap)
{
    size_t n = 0;
    uint64_t now = bk_now_ms(b);
    for (int prio = HANDOFF__PRIORITY__PRIORITY_STAT; prio >= 0 && n < cap; prio--) {
        uint64_t bound = (uint64_t)bound_days(b, prio ? (Handoff__Priority)prio : HANDOFF__PRIORITY__PRIORITY_ROUTINE) * DAY_MS;
        if (now < bound)
            continue;
        hx_db_stmt_t *st = bk_prep(b, "SELECT referral_id FROM waitlist WHERE priority = ? AND since_ms <= ? "
                                      "AND escalated_ms = 0 ORDER BY since_ms, referral_id LIMIT ?");
        if (!st)
            break;
        hx_db_bind_int(st, 1, prio);
        hx_db_bind_int(st, 2, (int64_t)(now - bound));
        hx_db_bind_int(st, 3, (int64_t)(cap - n));
        while (n < cap && hx_db_step(st) == HX_DB_ROW)
            snprintf(ids[n++], sizeof ids[0], "%s", hx_db_col_text(st, 0));
        bk_done(b, st);
    }
    return n;
}
