/* Unit: scheduling's SQLite store migrated in place to one lifecycle per handoff (user_version
 * 1), then to attachments on the care thread (2), then to instants (3: a start in the network's
 * time becomes its clinic's instant, slots moved with it), then to the times the network's
 * figures need (4: receipt, booking and start times, the decline and hold log; older rows have
 * none); a store newer than the program is refused. A store of version 0 had one status per referral that every change overwrote: a
 * collaborative referral whose physiotherapy was in progress could be left "on-hold" after
 * its massage was declined. Opened by this version, the store keeps its data, what was to be
 * booked keeps the old status (on-hold: still retried), and the referral's status is derived
 * again from its handoffs. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_booking.h"
#include "hx_errors.h"
#include "hx_schedule.h"

#define ST(x) HANDOFF__TASK_STATUS__TASK_##x

static char dir_path[] = "/tmp/hx-migrate-XXXXXX";
static char db_path[600];
static hx_directory_t *directory;

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir_path));
    snprintf(db_path, sizeof db_path, "%s/scheduling.db", dir_path);
    const char *src = getenv("HX_SOURCE_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/deploy/sample/directory.json", src ? src : ".");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    directory = hx_directory_load(path, &errs);
    cr_assert_not_null(directory, "%s", path);
}

static void teardown(void)
{
    hx_directory_destroy(&directory);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_path);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(booking_migrate, .init = setup, .fini = teardown);

static void sql(sqlite3 *db, const char *text)
{
    char *err = NULL;
    cr_assert_eq(sqlite3_exec(db, text, NULL, NULL, &err), SQLITE_OK, "%s: %s", text, err ? err : "?");
}

/* A referral as version 0 stored it: a triaged case for physiotherapy and massage, its one
 * status, and its bookings given as (discipline, status) pairs. */
static void old_referral(sqlite3 *db, const char *rid, int status, const int *bookings, size_t n)
{
    Handoff__Discipline both[] = {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY,
                                  HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY};
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = (char *)rid;
    r.referring_clinic = "northpoint";
    r.ref = "NP-OLD";
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    d.disciplines = both;
    d.n_disciplines = 2;
    Handoff__Case c = HANDOFF__CASE__INIT;
    c.referral = &r;
    c.decision = &d;
    uint8_t buf[512];
    size_t len = handoff__case__pack(&c, buf);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO referrals(referral_id, referring_clinic, ref, status, reason, "
                                        "case_pb, updated_ms) VALUES (?, 'northpoint', 'NP-OLD', ?, 'no slot', ?, 1)",
                                    -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, status);
    sqlite3_bind_blob(st, 3, buf, (int)len, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    for (size_t i = 0; i < n; i++) {
        char text[300];
        snprintf(text, sizeof text, "INSERT INTO bookings VALUES ('%s', %d, '%s', '%s', %d, 60, %d, 0)", rid,
                 bookings[2 * i], bookings[2 * i] == 1 ? "t-lucas" : "t-sofia", "lakeside", 1000 + 100 * (int)i,
                 bookings[2 * i + 1]);
        sql(db, text);
    }
}

/* The version-0 tables a referral and its bookings lived in. */
static void make_version0(void)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sql(db, "CREATE TABLE referrals (referral_id TEXT PRIMARY KEY, referring_clinic TEXT NOT NULL, ref TEXT NOT NULL,"
            " status INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '', case_pb BLOB NOT NULL,"
            " updated_ms INTEGER NOT NULL);"
            "CREATE TABLE bookings (referral_id TEXT NOT NULL, discipline INTEGER NOT NULL, therapist_id TEXT NOT NULL,"
            " clinic_id TEXT NOT NULL, start INTEGER NOT NULL, minutes INTEGER NOT NULL, status INTEGER NOT NULL,"
            " virtual INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (referral_id, discipline));"
            "CREATE TABLE slots (therapist_id TEXT NOT NULL, slot INTEGER NOT NULL, referral_id TEXT NOT NULL,"
            " PRIMARY KEY (therapist_id, slot)) WITHOUT ROWID;");
    /* physiotherapy in progress, massage declined and not booked again: left "on-hold" */
    old_referral(db, "R-OLDONHOLD000001", ST(ON_HOLD), (const int[]){1, ST(IN_PROGRESS)}, 1);
    /* its hour (start 1000 min, network time) held in the 15-minute slots 66..69 */
    sql(db, "INSERT INTO slots VALUES ('t-lucas', 66, 'R-OLDONHOLD000001'), ('t-lucas', 67, 'R-OLDONHOLD000001'),"
            " ('t-lucas', 68, 'R-OLDONHOLD000001'), ('t-lucas', 69, 'R-OLDONHOLD000001')");
    /* both booked, one accepted: version 0 said ready (the least advanced) */
    old_referral(db, "R-OLDBOTH00000002", ST(READY), (const int[]){1, ST(ACCEPTED), 2, ST(READY)}, 2);
    /* revoked: everything cancelled */
    old_referral(db, "R-OLDREVOKED00003", ST(CANCELLED), (const int[]){1, ST(CANCELLED), 2, ST(CANCELLED)}, 2);
    /* on hold before anything was booked */
    old_referral(db, "R-OLDNOTHING00004", ST(ON_HOLD), NULL, 0);
    sqlite3_close(db);
}

static int column_int(const char *query)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(db, query, -1, &st, NULL), SQLITE_OK, "%s: %s", query, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: no row", query);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int referral_int(const char *rid, const char *column)
{
    char q[200];
    snprintf(q, sizeof q, "SELECT %s FROM referrals WHERE referral_id = '%s'", column, rid);
    return column_int(q);
}

static hx_booking_t *open_store_key(const uint8_t *key)
{
    hx_booking_config_t cfg = {.db_url = db_path, .start = -1, .horizon_days = 14, .collab_days = 7,
                               .data_key = key};
    char err[256] = "";
    hx_booking_t *b = hx_booking_open(&cfg, directory, err, sizeof err);
    cr_assert_not_null(b, "open: %s", err);
    return b;
}

static hx_booking_t *open_store(void)
{
    return open_store_key(NULL);
}

Test(booking_migrate, a_version_0_store_is_migrated_in_place)
{
    make_version0();
    hx_booking_t *b = open_store();
    cr_expect_eq(column_int("PRAGMA user_version"), 4);
    cr_expect_eq(referral_int("R-OLDONHOLD000001", "status"), ST(IN_PROGRESS),
                 "physiotherapy in progress: the referral is in progress again, not on hold");
    cr_expect_eq(referral_int("R-OLDONHOLD000001", "pending"), ST(ON_HOLD), "massage still waits for a slot");
    cr_expect_eq(referral_int("R-OLDBOTH00000002", "status"), ST(ACCEPTED));
    cr_expect_eq(referral_int("R-OLDREVOKED00003", "status"), ST(CANCELLED));
    cr_expect_eq(referral_int("R-OLDREVOKED00003", "pending"), ST(CANCELLED));
    cr_expect_eq(referral_int("R-OLDNOTHING00004", "status"), ST(ON_HOLD));
    cr_expect_eq(column_int("SELECT status FROM bookings WHERE referral_id = 'R-OLDONHOLD000001'"), ST(IN_PROGRESS),
                 "a booking keeps its own status");
    /* version 3: the network's time was the clinic's wall clock (lakeside: America/Toronto, EST
     * in January 1970): the start becomes the instant, 5 hours later in UTC, its slots with it */
    cr_expect_eq(column_int("SELECT start FROM bookings WHERE referral_id = 'R-OLDONHOLD000001'"), 1000 + 300);
    cr_expect_eq(column_int("SELECT MIN(slot) FROM slots WHERE referral_id = 'R-OLDONHOLD000001'"), 86);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM slots WHERE referral_id = 'R-OLDONHOLD000001'"), 4);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM slots WHERE slot < 0"), 0);
    /* version 4: nothing recorded when they were received, booked or started */
    cr_expect_eq(column_int("SELECT COUNT(*) FROM referrals WHERE received_ms IS NULL"), 4);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM bookings WHERE booked_ms IS NULL AND started_ms IS NULL"), 5);
    /* what waits for a slot is retried: the massage of the first, and the fourth */
    char ids[8][32];
    size_t n = hx_booking_on_hold(b, ids, 8);
    cr_expect_eq(n, 2, "two referrals have a handoff on hold, got %zu", n);
    hx_booking_close(&b);
    cr_expect_null(b);
}

Test(booking_migrate, opening_again_changes_nothing)
{
    make_version0();
    hx_booking_t *b = open_store();
    hx_booking_close(&b);
    b = open_store();
    cr_expect_eq(column_int("PRAGMA user_version"), 4);
    cr_expect_eq(referral_int("R-OLDONHOLD000001", "status"), ST(IN_PROGRESS));
    cr_expect_eq(column_int("SELECT COUNT(*) FROM referrals"), 4);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM bookings"), 5);
    hx_booking_close(&b);
}

Test(booking_migrate, a_new_store_starts_at_the_current_version)
{
    hx_booking_t *b = open_store();
    cr_expect_eq(column_int("PRAGMA user_version"), 4);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM pragma_table_info('referrals') WHERE name = 'pending'"), 1);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM pragma_table_info('bookings') WHERE name = 'event'"), 1);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM pragma_table_info('thread') WHERE name = 'attachment'"), 1);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM pragma_table_info('referrals') WHERE name = 'received_ms'"), 1);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM pragma_table_info('bookings') WHERE name IN ('booked_ms', "
                            "'started_ms')"), 2);
    cr_expect_eq(column_int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'handoff_log'"), 1);
    hx_booking_close(&b);
}

Test(booking_migrate, a_store_of_a_newer_version_is_refused_and_left_alone)
{
    hx_booking_t *b = open_store();
    hx_booking_close(&b);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sql(db, "PRAGMA user_version = 5");
    sqlite3_close(db);
    hx_booking_config_t cfg = {.db_url = db_path, .start = -1, .horizon_days = 14, .collab_days = 7};
    char err[512] = "";
    b = hx_booking_open(&cfg, directory, err, sizeof err);
    cr_expect_null(b);
    hx_booking_close(&b);
    cr_expect_not_null(strstr(err, "version 5, newer than this program's 4"), "%s", err);
    cr_expect_eq(column_int("PRAGMA user_version"), 5, "the store is not touched");
}

Test(booking_migrate, a_clear_store_opened_with_a_data_key_is_read_as_it_is)
{
    make_version0();
    uint8_t key[32];
    memset(key, 7, sizeof key);
    /* the migration reads every booked referral (case_pb written in clear) to derive it */
    hx_booking_t *b = open_store_key(key);
    cr_expect_eq(column_int("PRAGMA user_version"), 4);
    cr_expect_eq(referral_int("R-OLDONHOLD000001", "status"), ST(IN_PROGRESS));
    cr_expect_eq(column_int("SELECT COUNT(*) FROM referrals WHERE substr(case_pb, 1, 1) = x'00'"), 0,
                 "nothing is rewritten");
    hx_booking_close(&b);
}
