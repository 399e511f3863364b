/* Unit: the clinic library without a broker — opening and upgrading the local store, its
 * refusals, the ids a clinic gives its referrals, and reading the store back with the
 * filters the inbox, status and handoffs use. The mailbox sync and the requests against a
 * real broker are tested through the CLI (tests/integration/test_cli_flow.c,
 * test_lifecycle_flow.c). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hx_clinic.h"

static char home[64];

static void make_home(void)
{
    snprintf(home, sizeof home, "/tmp/hx-clinic-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(home));
}

static void remove_home(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(clinic, .init = make_home, .fini = remove_home);

static hx_clinic_t *open_clinic(const char *name)
{
    char err[512] = "";
    hx_clinic_opts_t o = {.broker = "tcp://127.0.0.1:1", .clinic = name, .home = home, .timeout_ms = 300};
    hx_clinic_t *c = NULL;
    cr_assert_eq(hx_clinic_open(&o, &c, err, sizeof err), 0, "open: %s", err);
    return c;
}

Test(clinic, the_store_is_one_private_file_per_clinic)
{
    hx_clinic_t *c = open_clinic("lakeside");
    cr_expect_str_eq(hx_clinic_name(c), "lakeside");
    cr_expect_null(hx_clinic_client(c), "no broker session before one is needed");
    char path[128];
    snprintf(path, sizeof path, "%s/lakeside.db", home);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "patient data is readable by its owner only: %o", st.st_mode & 0777);
    hx_clinic_destroy(&c);
    cr_expect_null(c);
    hx_clinic_destroy(&c);                      /* twice is harmless */
}

Test(clinic, bad_options_are_refused_with_the_reason)
{
    struct {
        hx_clinic_opts_t o;
        const char *says;
    } cases[] = {
        {{.broker = "", .clinic = "lakeside", .home = home}, "endpoint"},
        {{.broker = "tcp://127.0.0.1:1", .clinic = "lake side", .home = home}, "clinic id"},
        {{.broker = "tcp://127.0.0.1:1", .clinic = "", .home = home}, "clinic id"},
        {{.broker = "tcp://127.0.0.1:1", .clinic = "lakeside", .home = home,
          .curve_server = "0123456789012345678901234567890123456789"}, "CURVE"},
        {{.broker = "tcp://127.0.0.1:1", .clinic = "lakeside", .home = home, .curve_server = "short",
          .curve_public = "short", .curve_secret = "short"}, "40 Z85"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "";
        hx_clinic_t *c = (hx_clinic_t *)1;
        cr_expect_eq(hx_clinic_open(&cases[i].o, &c, err, sizeof err), HX_EINVAL, "case %zu", i);
        cr_expect_null(c, "case %zu", i);
        cr_expect_not_null(strstr(err, cases[i].says), "case %zu: '%s' should name %s", i, err, cases[i].says);
    }
    char err[512] = "";
    hx_clinic_opts_t o = {.broker = "tcp://127.0.0.1:1", .clinic = "lakeside", .home = "/proc/no/such/dir"};
    hx_clinic_t *c = NULL;
    cr_expect_eq(hx_clinic_open(&o, &c, err, sizeof err), HX_EIO);
    cr_expect_not_null(strstr(err, "/proc/no/such/dir"), "names the folder: %s", err);
}

/* A store made before sent.patient existed is upgraded in place and keeps its rows. */
Test(clinic, an_old_store_is_upgraded_in_place)
{
    char path[128];
    snprintf(path, sizeof path, "%s/harbour.db", home);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE sent (referral_id TEXT PRIMARY KEY, ref TEXT NOT NULL, file TEXT NOT NULL,"
                              " at_ms INTEGER NOT NULL);"
                              "INSERT INTO sent VALUES ('R-0000000000000001', 'HB-1', 'a.json', 5);",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    hx_clinic_t *c = open_clinic("harbour");
    cr_expect(hx_clinic_sent_before(c, "R-0000000000000001"));
    cr_expect_not(hx_clinic_sent_before(c, "R-0000000000000002"));
    hx_clinic_destroy(&c);
    c = open_clinic("harbour");                 /* and opening it again changes nothing */
    cr_expect(hx_clinic_sent_before(c, "R-0000000000000001"));
    hx_clinic_destroy(&c);
}

/* Two programs of one clinic (a watch and a submit) opening a new store at the same moment.
 * Another connection holds the new file's write lock while this one turns it to WAL: SQLite
 * answers that at once with "database is locked", without waiting, so the open must wait for
 * the other itself. The holder lets go 100 ms after the open has begun. */
typedef struct {
    char path[128];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;      /* 1: the lock is held; 2: the open has begun */
} holder_t;

static void *hold_the_lock(void *arg)
{
    holder_t *h = arg;
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(h->path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    pthread_mutex_lock(&h->mu);
    h->stage = 1;
    pthread_cond_broadcast(&h->cv);
    while (h->stage < 2)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    struct timespec nap = {0, 100 * 1000000};
    nanosleep(&nap, NULL);
    cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    return NULL;
}

Test(clinic, two_programs_opening_a_new_store_together_both_open_it)
{
    holder_t h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    snprintf(h.path, sizeof h.path, "%s/ridge.db", home);
    /* the premise: a plain change to WAL is refused at once while the lock is held */
    sqlite3 *holder, *other;
    cr_assert_eq(sqlite3_open(h.path, &holder), SQLITE_OK);
    cr_assert_eq(sqlite3_open(h.path, &other), SQLITE_OK);
    sqlite3_busy_timeout(other, 5000);
    cr_assert_eq(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    cr_expect_eq(sqlite3_exec(other, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_BUSY);
    sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    sqlite3_close(holder);

    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, hold_the_lock, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (h.stage < 1)
        pthread_cond_wait(&h.cv, &h.mu);
    h.stage = 2;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    hx_clinic_t *c = open_clinic("ridge");      /* asserts the open succeeded */
    pthread_join(t, NULL);
    cr_expect_not(hx_clinic_sent_before(c, "R-0000000000000001"));
    hx_clinic_destroy(&c);
}

Test(clinic, referral_ids_are_the_clinics_own_and_checked)
{
    hx_clinic_t *a = open_clinic("lakeside"), *b = open_clinic("harbour");
    char r1[HX_REFERRAL_ID_LEN + 1], r2[HX_REFERRAL_ID_LEN + 1], r3[HX_REFERRAL_ID_LEN + 1];
    hx_clinic_referral_id(a, "LK-1", r1);
    hx_clinic_referral_id(a, "LK-1", r2);
    hx_clinic_referral_id(b, "LK-1", r3);
    cr_expect_str_eq(r1, r2, "the same ref is the same referral (a resubmission is not a copy)");
    cr_expect_str_neq(r1, r3, "another clinic's ref of the same text is another referral");
    cr_expect(hx_referral_id_valid(r1), "%s", r1);
    const char *bad[] = {"", "R-", "R-0000000000000000X", "X-0000000000000000", "R-000000000000000I",
                         "R-000000000000000u", "r-0000000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_not(hx_referral_id_valid(bad[i]), "'%s'", bad[i]);
    cr_expect_not(hx_referral_id_valid(NULL));
    hx_clinic_destroy(&a);
    hx_clinic_destroy(&b);
}

Test(clinic, patient_names_read_as_staff_write_them)
{
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    Handoff__Patient p = HANDOFF__PATIENT__INIT;
    char out[64];
    hx_patient_name(NULL, out, sizeof out);
    cr_expect_str_eq(out, "");
    hx_patient_name(&r, out, sizeof out);
    cr_expect_str_eq(out, "");
    r.patient = &p;
    p.given_name = "Ada";
    p.family_name = "Lovelace";
    hx_patient_name(&r, out, sizeof out);
    cr_expect_str_eq(out, "Ada Lovelace");
    p.given_name = "";
    hx_patient_name(&r, out, sizeof out);
    cr_expect_str_eq(out, "Lovelace");
}

/* Rows put into the store as a sync would, read back through the query filters. */
static void put(const char *home_dir, int n, const char *type, const char *rid, uint64_t at, const char *payload)
{
    char path[128], sql[512];
    snprintf(path, sizeof path, "%s/lakeside.db", home_dir);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql,
             "INSERT INTO received(id, type, referral_id, from_name, at_ms, payload) "
             "VALUES (x'%032x', '%s', '%s', 'scheduling', %llu, CAST('%s' AS BLOB))",
             n, type, rid, (unsigned long long)at, payload);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

static void collect(void *ud, const char *type, const uint8_t *payload, size_t len, uint64_t at_ms)
{
    (void)type, (void)at_ms;
    char *seen = ud;
    strncat(seen, (const char *)payload, len);
    strcat(seen, " ");
}

Test(clinic, the_store_is_read_back_by_type_referral_and_latest)
{
    hx_clinic_t *c = open_clinic("lakeside");
    put(home, 1, "handoff.StatusUpdate", "R-A", 10, "a1");
    put(home, 2, "handoff.StatusUpdate", "R-B", 11, "b1");
    put(home, 3, "handoff.Handoff", "R-A", 12, "ha");
    put(home, 4, "handoff.StatusUpdate", "R-A", 13, "a2");
    put(home, 5, "handoff.Refusal", "R-A", 14, "no");
    char seen[256] = "";
    cr_assert_eq(hx_clinic_each_received(c, NULL, collect, seen), 0);
    cr_expect_str_eq(seen, "a1 b1 ha a2 ", "handoffs and updates in time order; refusals are not changes");
    seen[0] = '\0';
    hx_clinic_query_t q = {.type = "handoff.StatusUpdate", .referral_id = "R-A"};
    cr_assert_eq(hx_clinic_each_received(c, &q, collect, seen), 0);
    cr_expect_str_eq(seen, "a1 a2 ", "one referral's history");
    seen[0] = '\0';
    q = (hx_clinic_query_t){.type = "handoff.StatusUpdate", .latest = true};
    cr_assert_eq(hx_clinic_each_received(c, &q, collect, seen), 0);
    cr_expect_str_eq(seen, "b1 a2 ", "the latest update of each referral, in time order");
    seen[0] = '\0';
    q = (hx_clinic_query_t){.type = "handoff.Refusal"};
    cr_assert_eq(hx_clinic_each_received(c, &q, collect, seen), 0);
    cr_expect_str_eq(seen, "no ");
    hx_clinic_destroy(&c);
}

typedef struct {
    char seen[256];
    int64_t seqs[8];
    size_t n;
} after_t;

static void collect_after(void *ud, int64_t seq, const char *type, const char *referral_id, const uint8_t *payload,
                          size_t len, uint64_t at_ms)
{
    after_t *a = ud;
    char one[64];
    snprintf(one, sizeof one, "%s/%s/%.*s/%llu ", type, referral_id, (int)len, (const char *)payload,
             (unsigned long long)at_ms);
    strcat(a->seen, one);
    if (a->n < sizeof a->seqs / sizeof *a->seqs)
        a->seqs[a->n++] = seq;
}

/* A reader keeping its place (a subscription's cursor) goes by the order rows were stored, not
 * by when their messages happened, and resumes exactly after the last row it dealt with. */
Test(clinic, received_rows_are_read_after_a_place_in_stored_order)
{
    hx_clinic_t *c = open_clinic("lakeside");
    after_t a = {0};
    cr_expect_eq(hx_clinic_last_seq(c), 0, "an empty store has no place yet");
    cr_assert_eq(hx_clinic_each_received_after(c, 0, 64, collect_after, &a), 0);
    cr_expect_eq(a.n, 0);
    put(home, 1, "handoff.Handoff", "R-A", 30, "ha");
    put(home, 2, "handoff.StatusUpdate", "R-A", 10, "a1");  /* happened earlier, stored later */
    put(home, 3, "handoff.Refusal", "R-B", 20, "no");
    int64_t last = hx_clinic_last_seq(c);
    cr_assert_gt(last, 0);
    cr_assert_eq(hx_clinic_each_received_after(c, 0, 0, collect_after, &a), 0);
    cr_expect_str_eq(a.seen, "handoff.Handoff/R-A/ha/30 handoff.StatusUpdate/R-A/a1/10 handoff.Refusal/R-B/no/20 ",
                     "every type, as stored");
    cr_assert_eq(a.n, 3);
    cr_expect(a.seqs[0] < a.seqs[1] && a.seqs[1] < a.seqs[2], "sequence numbers grow");
    cr_expect_eq(a.seqs[2], last, "the last row's number is the store's last");
    int64_t first = a.seqs[0], second = a.seqs[1];

    a = (after_t){0};
    cr_assert_eq(hx_clinic_each_received_after(c, 0, 2, collect_after, &a), 0);
    cr_expect_str_eq(a.seen, "handoff.Handoff/R-A/ha/30 handoff.StatusUpdate/R-A/a1/10 ", "at most limit rows");
    a = (after_t){0};
    cr_assert_eq(hx_clinic_each_received_after(c, first, 64, collect_after, &a), 0);
    cr_expect_str_eq(a.seen, "handoff.StatusUpdate/R-A/a1/10 handoff.Refusal/R-B/no/20 ", "only after the place");
    a = (after_t){0};
    cr_assert_eq(hx_clinic_each_received_after(c, second, 1, collect_after, &a), 0);
    cr_expect_str_eq(a.seen, "handoff.Refusal/R-B/no/20 ");
    a = (after_t){0};
    cr_assert_eq(hx_clinic_each_received_after(c, last, 64, collect_after, &a), 0);
    cr_expect_eq(a.n, 0, "nothing after the last");
    put(home, 4, "handoff.ThreadPost", "R-B", 40, "p1");
    cr_assert_eq(hx_clinic_each_received_after(c, last, 64, collect_after, &a), 0);
    cr_expect_str_eq(a.seen, "handoff.ThreadPost/R-B/p1/40 ", "a row stored later comes after the place");
    cr_expect_gt(hx_clinic_last_seq(c), last);
    cr_expect_eq(hx_clinic_each_received_after(c, 0, 64, NULL, NULL), HX_EINVAL);
    hx_clinic_destroy(&c);
}

/* A store that cannot be read says so: -1 and HX_EIO, with words. */
Test(clinic, an_unreadable_store_is_an_error_for_readers_after_a_place)
{
    hx_clinic_t *c = open_clinic("lakeside");
    char path[128];
    snprintf(path, sizeof path, "%s/lakeside.db", home);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "DROP TABLE received", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    after_t a = {0};
    cr_expect_eq(hx_clinic_last_seq(c), -1);
    cr_expect_not_null(strstr(hx_clinic_error(c), "received"), "%s", hx_clinic_error(c));
    cr_expect_eq(hx_clinic_each_received_after(c, 0, 64, collect_after, &a), HX_EIO);
    cr_expect_eq(a.n, 0);
    hx_clinic_destroy(&c);
}

/* No broker on the port: the sync says so in the library's terms and words, stores nothing. */
Test(clinic, a_silent_broker_is_a_timeout_with_words)
{
    hx_clinic_t *c = open_clinic("lakeside");
    int rc = hx_clinic_sync(c, NULL);
    cr_expect_eq(rc, HX_ETIMEDOUT, "got %d (%s)", rc, hx_strerror(rc));
    cr_expect_neq(hx_clinic_error(c)[0], '\0', "a reason is given");
    cr_expect_eq(hx_clinic_dropped(c), 0);
    hx_clinic_destroy(&c);
}
