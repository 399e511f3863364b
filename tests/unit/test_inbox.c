/* Unit: the clinic library's inbox folders (hx_inbox.h) without a broker — each of the seven
 * folders reached from messages put into a clinic's store as a sync would store them and read
 * back with hx_inbox_load; whose question needs a reply; care-thread posts in any order with
 * the rows; the folder keys. The groups and the CLI's tables are tests/unit/test_cli.c's. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_inbox.h"

static char home[64];

static void make_home(void)
{
    snprintf(home, sizeof home, "/tmp/hx-inbox-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(home));
}

static void remove_home(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(inbox_folders, .init = make_home, .fini = remove_home);

#define PT HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY

static hx_clinic_t *open_clinic(const char *name)
{
    char err[512] = "";
    hx_clinic_opts_t o = {.broker = "tcp://127.0.0.1:1", .clinic = name, .home = home, .timeout_ms = 300};
    hx_clinic_t *c = NULL;
    cr_assert_eq(hx_clinic_open(&o, &c, err, sizeof err), 0, "open: %s", err);
    return c;
}

static sqlite3 *store_of(const char *clinic)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.db", home, clinic);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

/* m stored in clinic's store as received at at_ms, as a sync stores it. */
static void put(const char *clinic, const char *type, const char *rid, uint64_t at_ms, const ProtobufCMessage *m)
{
    static unsigned n;
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    cr_assert_not_null(buf);
    protobuf_c_message_pack(m, buf);
    uint8_t id[16] = {0};
    n++;
    memcpy(id, &n, sizeof n);
    sqlite3 *db = store_of(clinic);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "INSERT INTO received(id, type, referral_id, from_name, at_ms, payload) "
                                    "VALUES (?, ?, ?, 'scheduling', ?, ?)",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_bind_blob(st, 1, id, sizeof id, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, rid, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)at_ms);
    sqlite3_bind_blob(st, 5, buf, (int)len, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(buf);
}

/* A referral clinic submitted, as hx_clinic_submit records it. */
static void put_sent(const char *clinic, const char *rid, const char *ref, uint64_t at_ms)
{
    sqlite3 *db = store_of(clinic);
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO sent(referral_id, ref, file, at_ms, patient) VALUES ('%s', '%s', 'a.json', %llu, 'Ada')", rid,
             ref, (unsigned long long)at_ms);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static Handoff__Booking the_booking(const char *rid, const char *clinic)
{
    Handoff__Booking b = HANDOFF__BOOKING__INIT;
    b.referral_id = (char *)rid;
    b.discipline = PT;
    b.therapist_name = "Amira Haddad";
    b.clinic_id = (char *)clinic;
    b.start = "2026-11-24T08:00";
    b.minutes = 60;
    return b;
}

/* The handoff of rid from harbour, booked at clinic. */
static void put_handoff(const char *clinic, const char *rid, uint64_t at_ms)
{
    Handoff__Patient p = HANDOFF__PATIENT__INIT;
    p.given_name = "Bo";
    p.family_name = "Diddley";
    p.birth_date = "1961-04-02";
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.patient = &p;
    r.referring_clinic = "harbour";
    r.ref = "HB-9";
    Handoff__Booking b = the_booking(rid, clinic);
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = (char *)rid;
    h.referral = &r;
    h.booking = &b;
    put(clinic, "handoff.Handoff", rid, at_ms, &h.base);
}

/* A status update of rid: the referral's status and event, and the handoff held by at (its
 * own status hs; none when at is NULL). */
static void put_status(const char *clinic, const char *rid, Handoff__TaskStatus s, const char *event,
                       const char *at, Handoff__TaskStatus hs, uint64_t at_ms)
{
    Handoff__Booking b = the_booking(rid, at ? at : "");
    Handoff__Booking *bs[] = {&b};
    Handoff__HandoffStatus h = HANDOFF__HANDOFF_STATUS__INIT;
    h.discipline = PT;
    h.status = hs;
    h.clinic_id = (char *)(at ? at : "");
    h.event = (char *)event;
    Handoff__HandoffStatus *hs_[] = {&h};
    Handoff__StatusUpdate u = HANDOFF__STATUS_UPDATE__INIT;
    u.referral_id = (char *)rid;
    u.ref = "HB-9";
    u.status = s;
    u.event = (char *)event;
    u.reason = "why";
    if (at) {
        u.bookings = bs;
        u.n_bookings = 1;
        u.handoffs = hs_;
        u.n_handoffs = 1;
    }
    put(clinic, "handoff.StatusUpdate", rid, at_ms, &u.base);
}

static Handoff__ThreadPost the_post(const char *rid, const char *id, const char *kind, const char *by, bool awaiting,
                                    const char *asked_by)
{
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = (char *)rid;
    p.post_id = (char *)id;
    p.kind = (char *)kind;
    p.text = "text";
    p.by = (char *)by;
    p.awaiting_reply = awaiting;
    p.asked_by = (char *)(awaiting ? asked_by : "");
    return p;
}

static void put_post(const char *clinic, const char *rid, const char *id, const char *kind, const char *by,
                     bool awaiting, const char *asked_by, uint64_t at_ms)
{
    Handoff__ThreadPost p = the_post(rid, id, kind, by, awaiting, asked_by);
    put(clinic, "handoff.ThreadPost", rid, at_ms, &p.base);
}

typedef struct {
    char folder[32];
    bool needs_reply;
    char born[16];
} seen_t;

/* clinic's row of rid on side ("received" | "sent"), read back from its store. */
static seen_t row_in_store(const char *clinic, const char *rid, const char *side)
{
    hx_clinic_t *c = open_clinic(clinic);
    hx_inbox_t *in = NULL;
    cr_assert_eq(hx_inbox_load(c, &in), 0, "%s", hx_clinic_error(c));
    json_t *rows = hx_inbox_rows_json(in);
    seen_t s = {""};
    size_t i, found = 0;
    json_t *r;
    json_array_foreach(rows, i, r) {
        if (strcmp(json_string_value(json_object_get(r, "referral_id")), rid) != 0 ||
            strcmp(json_string_value(json_object_get(r, "side")), side) != 0)
            continue;
        found++;
        snprintf(s.folder, sizeof s.folder, "%s", json_string_value(json_object_get(r, "folder")));
        s.needs_reply = json_is_true(json_object_get(r, "needs_reply"));
        snprintf(s.born, sizeof s.born, "%s", json_string_value(json_object_get(r, "born")));
        /* the folder counts agree with the rows */
        hx_folder_t f = hx_folder_from_key(s.folder);
        cr_expect_neq(f, HX_FOLDER_COUNT, "%s", s.folder);
        cr_expect_geq(hx_inbox_folder_count(in, f), 1);
    }
    cr_expect_eq(found, 1, "%s has %zu %s rows of %s", clinic, found, side, rid);
    json_decref(rows);
    hx_inbox_destroy(&in);
    hx_clinic_destroy(&c);
    return s;
}

#define EXPECT_FOLDER(clinic, rid, side, want)                                                                    \
    do {                                                                                                          \
        seen_t s_ = row_in_store(clinic, rid, side);                                                              \
        cr_expect_str_eq(s_.folder, want, "%s's %s row of %s", clinic, side, rid);                                \
    } while (0)

Test(inbox_folders, a_received_handoff_through_its_thread_and_its_care)
{
    const char *rid = "R-0000000000000001";
    hx_clinic_t *c = open_clinic("lakeside");   /* makes the store */
    hx_clinic_destroy(&c);
    put_handoff("lakeside", rid, 1000);
    seen_t s = row_in_store("lakeside", rid, "received");
    cr_expect_str_eq(s.folder, "new");
    cr_expect_not(s.needs_reply);
    cr_expect_str_eq(s.born, "1961-04-02");
    /* the referrer asks: the question awaits this clinic's reply */
    put_post("lakeside", rid, "P-01", "question", "harbour", true, "harbour", 1100);
    s = row_in_store("lakeside", rid, "received");
    cr_expect_str_eq(s.folder, "needs_reply");
    cr_expect(s.needs_reply);
    /* this clinic replies: nothing awaits, the handoff is new again */
    put_post("lakeside", rid, "P-02", "reply", "lakeside", false, "", 1200);
    s = row_in_store("lakeside", rid, "received");
    cr_expect_str_eq(s.folder, "new");
    cr_expect_not(s.needs_reply);
    put_status("lakeside", rid, HANDOFF__TASK_STATUS__TASK_ACCEPTED, "accept", "lakeside",
               HANDOFF__TASK_STATUS__TASK_ACCEPTED, 1300);
    EXPECT_FOLDER("lakeside", rid, "received", "booked");
    put_status("lakeside", rid, HANDOFF__TASK_STATUS__TASK_IN_PROGRESS, "start", "lakeside",
               HANDOFF__TASK_STATUS__TASK_IN_PROGRESS, 1400);
    EXPECT_FOLDER("lakeside", rid, "received", "in_care");
    /* a question while in care: needs reply first */
    put_post("lakeside", rid, "P-03", "question", "harbour", true, "harbour", 1450);
    EXPECT_FOLDER("lakeside", rid, "received", "needs_reply");
    /* completed wins over a question still open */
    put_status("lakeside", rid, HANDOFF__TASK_STATUS__TASK_COMPLETED, "complete", "lakeside",
               HANDOFF__TASK_STATUS__TASK_COMPLETED, 1500);
    s = row_in_store("lakeside", rid, "received");
    cr_expect_str_eq(s.folder, "completed");
    cr_expect(s.needs_reply, "the question is still open, only the folder says completed");
}

Test(inbox_folders, a_sent_referral_pends_and_a_receivers_decline_is_declined_on_its_side)
{
    const char *rid = "R-0000000000000002";
    hx_clinic_t *c = open_clinic("lakeside");
    hx_clinic_destroy(&c);
    c = open_clinic("northpoint");
    hx_clinic_destroy(&c);
    /* lakeside referred it, no answer yet */
    put_sent("lakeside", rid, "LK-1", 1000);
    seen_t s = row_in_store("lakeside", rid, "sent");
    cr_expect_str_eq(s.folder, "pending_booking");
    cr_expect_str_eq(s.born, "", "a sent row knows no birth date");
    /* booked at northpoint, which declines it */
    put_status("lakeside", rid, HANDOFF__TASK_STATUS__TASK_READY, "book", "northpoint",
               HANDOFF__TASK_STATUS__TASK_READY, 1100);
    EXPECT_FOLDER("lakeside", rid, "sent", "booked");
    put_handoff("northpoint", rid, 1100);
    EXPECT_FOLDER("northpoint", rid, "received", "new");
    put_status("northpoint", rid, HANDOFF__TASK_STATUS__TASK_RECEIVED, "decline", "northpoint",
               HANDOFF__TASK_STATUS__TASK_RECEIVED, 1200);
    EXPECT_FOLDER("northpoint", rid, "received", "declined");
    /* the referrer's side of the same decline: being booked again */
    put_status("lakeside", rid, HANDOFF__TASK_STATUS__TASK_RECEIVED, "decline", "northpoint",
               HANDOFF__TASK_STATUS__TASK_RECEIVED, 1200);
    EXPECT_FOLDER("lakeside", rid, "sent", "pending_booking");
    /* a question the referrer asked needs no reply from it, but from the clinic asked */
    put_post("lakeside", rid, "P-01", "question", "lakeside", true, "lakeside", 1300);
    s = row_in_store("lakeside", rid, "sent");
    cr_expect_str_eq(s.folder, "pending_booking");
    cr_expect_not(s.needs_reply, "lakeside asked the question itself");
    /* revoked: declined, whatever the thread says */
    put_status("lakeside", rid, HANDOFF__TASK_STATUS__TASK_CANCELLED, "revoke", NULL, 0, 1400);
    EXPECT_FOLDER("lakeside", rid, "sent", "declined");
}

/* Straight from messages: whose question needs a reply, posts before their rows, the latest
 * by time then as added, a post added twice. */
Test(inbox_folders, the_thread_decides_needs_reply_in_any_order)
{
    const char *rid = "R-0000000000000003";
    Handoff__Booking b = the_booking(rid, "lakeside");
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referring_clinic = "harbour";
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = (char *)rid;
    h.referral = &r;
    h.booking = &b;

    /* the post comes first, the row after it */
    hx_inbox_t *in = hx_inbox_new("lakeside");
    Handoff__ThreadPost q = the_post(rid, "P-01", "question", "harbour", true, "harbour");
    cr_assert_eq(hx_inbox_add_post(in, &q, 500), 0);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_NEEDS_REPLY), 0, "no row yet");
    cr_assert_eq(hx_inbox_add_handoff(in, &h, 1000), 0);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_NEEDS_REPLY), 1);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_NEW), 0);
    cr_expect_eq(hx_inbox_count(in, HX_GROUP_NEW), 1, "the groups do not read the thread");
    /* a reply added before an older question: the reply is still the latest */
    Handoff__ThreadPost a = the_post(rid, "P-03", "reply", "lakeside", false, "");
    Handoff__ThreadPost old = the_post(rid, "P-02", "question", "harbour", true, "harbour");
    cr_assert_eq(hx_inbox_add_post(in, &a, 700), 0);
    cr_assert_eq(hx_inbox_add_post(in, &old, 600), 0);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_NEW), 1);
    /* at the same time, the one added later is the latest; a post added twice counts once */
    Handoff__ThreadPost again = the_post(rid, "P-04", "question", "harbour", true, "harbour");
    cr_assert_eq(hx_inbox_add_post(in, &again, 700), 0);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_NEEDS_REPLY), 1);
    cr_assert_eq(hx_inbox_add_post(in, &a, 800), 0);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_NEEDS_REPLY), 1, "P-03 was added before");
    hx_inbox_destroy(&in);
    cr_expect_null(in);

    /* this clinic's own question awaits the other side, not this clinic */
    in = hx_inbox_new("lakeside");
    Handoff__ThreadPost mine = the_post(rid, "P-01", "question", "lakeside", true, "lakeside");
    cr_assert_eq(hx_inbox_add_handoff(in, &h, 1000), 0);
    cr_assert_eq(hx_inbox_add_post(in, &mine, 1100), 0);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_NEW), 1);
    json_t *rows = hx_inbox_rows_json(in);
    cr_expect(json_is_false(json_object_get(json_array_get(rows, 0), "needs_reply")));
    json_decref(rows);
    hx_inbox_destroy(&in);
}

/* The inbox keeps its own copy of the clinic's name. */
Test(inbox_folders, the_inbox_owns_the_clinic_name)
{
    char name[16] = "lakeside";
    hx_inbox_t *in = hx_inbox_new(name);
    strcpy(name, "harbour");
    const char *rid = "R-0000000000000004";
    Handoff__ThreadPost q = the_post(rid, "P-01", "question", "lakeside", true, "lakeside");
    cr_assert_eq(hx_inbox_add_post(in, &q, 10), 0);
    cr_assert_eq(hx_inbox_add_sent(in, rid, "LK-4", "", 5), 0);
    cr_expect_eq(hx_inbox_folder_count(in, HX_FOLDER_PENDING), 1, "asked by lakeside: no reply needed");
    hx_inbox_destroy(&in);
}

Test(inbox_folders, rows_are_listed_most_recently_updated_first)
{
    hx_inbox_t *in = hx_inbox_new("lakeside");
    hx_inbox_add_sent(in, "R-0000000000000005", "LK-5", "", 100);
    hx_inbox_add_sent(in, "R-0000000000000006", "LK-6", "", 300);
    hx_inbox_add_sent(in, "R-0000000000000007", "LK-7", "", 200);
    json_t *rows = hx_inbox_rows_json(in);
    cr_assert_eq(json_array_size(rows), 3);
    const char *want[] = {"LK-6", "LK-7", "LK-5"};
    for (size_t i = 0; i < 3; i++)
        cr_expect_str_eq(json_string_value(json_object_get(json_array_get(rows, i), "ref")), want[i], "row %zu", i);
    json_decref(rows);
    json_t *groups = hx_inbox_json(in);
    json_t *first = json_array_get(json_object_get(groups, "pending_booking"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(first, "ref")), "LK-5", "the groups: oldest first");
    cr_expect_str_eq(json_string_value(json_object_get(first, "folder")), "pending_booking");
    json_decref(groups);
    hx_inbox_destroy(&in);
}

Test(inbox_folders, folder_keys_and_titles_round_trip)
{
    static const char *const keys[] = {"new",     "needs_reply", "pending_booking", "booked",
                                       "in_care", "declined",    "completed"};
    static const char *const titles[] = {"New",     "Needs reply", "Pending booking", "Booked",
                                         "In care", "Declined",    "Completed"};
    for (int f = 0; f < HX_FOLDER_COUNT; f++) {
        cr_expect_str_eq(hx_folder_key((hx_folder_t)f), keys[f]);
        cr_expect_str_eq(hx_folder_title((hx_folder_t)f), titles[f]);
        cr_expect_eq(hx_folder_from_key(hx_folder_key((hx_folder_t)f)), (hx_folder_t)f, "%s", keys[f]);
    }
    cr_expect_eq(hx_folder_from_key("New"), HX_FOLDER_COUNT, "titles are not keys");
    cr_expect_eq(hx_folder_from_key(""), HX_FOLDER_COUNT);
    cr_expect_eq(hx_folder_from_key("pending"), HX_FOLDER_COUNT);
    cr_expect_eq(hx_folder_from_key(NULL), HX_FOLDER_COUNT);
    cr_expect_str_eq(hx_folder_key(HX_FOLDER_COUNT), "?");
    cr_expect_str_eq(hx_folder_title(HX_FOLDER_COUNT), "?");
}
