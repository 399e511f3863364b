/* Unit: scheduling's wait list with an injectable clock (no sleeps). One physiotherapist gives
 * one session a day and the horizon is two days: referrals beyond that wait on hold. As the
 * clock moves a day on, a new day enters the horizon and the retries (in the order the wait
 * list gives, as scheduling's tick posts them) book the urgent referral held after a routine
 * one first; the routine one is told its new position and an estimate, once, not at every
 * retry; one that can never be booked (a language nobody speaks) is escalated once its
 * priority's bound has passed, exactly once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_booking.h"
#include "hx_pgtest_hooks.h"
#include "hx_errors.h"
#include "hx_schedule.h"

#define ST(x) HANDOFF__TASK_STATUS__TASK_##x
#define DAY_MS (24ull * 3600 * 1000)
#define PHYSIO HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY

static char dir_path[] = "/tmp/hx-waitlist-XXXXXX";
static hx_directory_t *directory;
static hx_booking_t *store;
static uint64_t now_ms;             /* the clock the store reads */
static uint32_t next_id;

static uint64_t test_clock(void *arg)
{
    return *(const uint64_t *)arg;
}

static const char directory_json[] =
    "{\"version\": 1, \"clinics\": [{\"id\": \"northpoint\", \"name\": \"Northpoint\", \"city\": \"Toronto\"}],"
    " \"therapists\": [{\"id\": \"t-amira\", \"name\": \"Amira Haddad\", \"discipline\": \"physiotherapy\","
    " \"registration\": \"CPO 14523\", \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": false,"
    " \"hours\": [{\"day\": 1, \"from\": \"09:00\", \"to\": \"10:00\"}, {\"day\": 2, \"from\": \"09:00\", \"to\": \"10:00\"},"
    " {\"day\": 3, \"from\": \"09:00\", \"to\": \"10:00\"}, {\"day\": 4, \"from\": \"09:00\", \"to\": \"10:00\"},"
    " {\"day\": 5, \"from\": \"09:00\", \"to\": \"10:00\"}, {\"day\": 6, \"from\": \"09:00\", \"to\": \"10:00\"},"
    " {\"day\": 7, \"from\": \"09:00\", \"to\": \"10:00\"}]}]}";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir_path));
    char path[600], db[600];
    snprintf(path, sizeof path, "%s/directory.json", dir_path);
    char why[1024];
    cr_assert_eq(hx_pgtest_store_url(dir_path, "scheduling.db", db, sizeof db, why, sizeof why), 0, "%s", why);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(directory_json, f);
    fclose(f);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    directory = hx_directory_load(path, &errs);
    cr_assert_not_null(directory, "%s", path);
    hx_minute_t monday;
    cr_assert_eq(hx_minute_parse("2026-11-23T00:00", &monday), 0);   /* a Monday, 00:00 UTC */
    now_ms = (uint64_t)monday * 60000;
    char err[256];
    hx_booking_config_t cfg = {.db_url = db, .start = -1, .horizon_days = 2, .collab_days = 14,
                               .clock = test_clock, .clock_arg = &now_ms, .routine_days = 30};
    store = hx_booking_open(&cfg, directory, err, sizeof err);
    cr_assert_not_null(store, "%s", err);
}

static void teardown(void)
{
    hx_booking_close(&store);
    hx_directory_destroy(&directory);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_path);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(waitlist, .init = setup, .fini = teardown);

/* What one handled message sent to the referrer: its StatusUpdates (at most 4, unpacked). */
typedef struct {
    Handoff__StatusUpdate *u[4];
    size_t n;
} sent_t;

static void sent_free(sent_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        handoff__status_update__free_unpacked(s->u[i], NULL);
    s->n = 0;
}

static void handle(const char *type, const char *from, const void *payload, size_t len, sent_t *sent)
{
    hx_msg_t in = {.from_kind = HX_TO_SERVICE, .from = from, .type = type, .payload = payload, .payload_len = len};
    uint32_t id = ++next_id;
    memcpy(in.id, &id, sizeof id);
    hx_outbox_t *out = hx_outbox_new(in.id);
    cr_assert_not_null(out);
    char err[256];
    cr_assert_eq(hx_booking_handle(store, &in, out, err, sizeof err), 0, "%s", err);
    memset(sent, 0, sizeof *sent);
    for (size_t i = 0; i < hx_outbox_count(out); i++) {
        hx_addr_kind_t kind;
        const char *to, *t;
        const uint8_t *p;
        size_t n;
        cr_assert_eq(hx_outbox_get(out, i, &kind, &to, &t, &p, &n), 0);
        if (strcmp(t, "handoff.StatusUpdate") == 0 && strcmp(to, "northpoint") == 0 && sent->n < 4)
            cr_assert_not_null(sent->u[sent->n++] = handoff__status_update__unpack(NULL, n, p));
    }
    hx_outbox_destroy(&out);
}

/* A triaged physiotherapy referral from northpoint, of priority prio, in language lang. */
static void refer(const char *rid, Handoff__Priority prio, const char *lang, sent_t *sent)
{
    Handoff__Discipline physio[] = {PHYSIO};
    Handoff__Preferences p = HANDOFF__PREFERENCES__INIT;
    p.language = (char *)lang;
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = (char *)rid;
    r.referring_clinic = "northpoint";
    r.ref = "NP-WAIT";
    r.preferences = &p;
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    d.disciplines = physio;
    d.n_disciplines = 1;
    d.priority = prio;
    Handoff__Case c = HANDOFF__CASE__INIT;
    c.referral = &r;
    c.decision = &d;
    uint8_t buf[512];
    size_t len = handoff__case__pack(&c, buf);
    handle("handoff.Case", "triage", buf, len, sent);
}

static void retry(const char *rid, sent_t *sent)
{
    Handoff__Retry t = HANDOFF__RETRY__INIT;
    t.referral_id = (char *)rid;
    uint8_t buf[64];
    size_t len = handoff__retry__pack(&t, buf);
    handle("handoff.Retry", "scheduling", buf, len, sent);
}

/* The one handoff of an update, checked to be physiotherapy. */
static const Handoff__HandoffStatus *only(const Handoff__StatusUpdate *u)
{
    cr_assert_eq(u->n_handoffs, 1);
    cr_assert_eq(u->handoffs[0]->discipline, PHYSIO);
    return u->handoffs[0];
}

/* The tick: the held referrals scheduling's tick posts (hx_booking_to_retry), retried in turn. */
static size_t tick(char (*ids)[32], size_t cap, sent_t *each)
{
    size_t n = hx_booking_to_retry(store, ids, cap);
    for (size_t i = 0; i < n; i++)
        retry(ids[i], &each[i]);
    return n;
}

Test(waitlist, new_days_book_in_priority_order_and_report_changes_only)
{
    sent_t s;
    refer("R-MON", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);       /* Monday 09:00 */
    cr_assert_eq(s.n, 1);
    cr_expect_eq(s.u[0]->status, ST(READY));
    sent_free(&s);
    refer("R-TUE", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);       /* Tuesday 09:00 */
    cr_expect_eq(s.u[0]->status, ST(READY));
    sent_free(&s);

    /* the horizon is full: a routine referral, then (a minute later) an urgent one, wait */
    refer("R-ROUTINE", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);
    cr_assert_eq(s.n, 1);
    cr_expect_eq(s.u[0]->status, ST(ON_HOLD));
    const Handoff__HandoffStatus *h = only(s.u[0]);
    cr_expect_eq(h->wait_position, 1);
    cr_expect_eq(h->wait_length, 1);
    cr_expect_eq(h->wait_since_ms, now_ms);
    cr_expect_str_eq(h->wait_estimate, "2026-11-25");   /* today + the 2-day window, nobody ahead */
    cr_expect(strstr(s.u[0]->reason, "wait list position physiotherapy 1 of 1, estimate 2026-11-25"),
              "%s", s.u[0]->reason);
    sent_free(&s);
    now_ms += 60000;
    refer("R-URGENT", HANDOFF__PRIORITY__PRIORITY_URGENT, NULL, &s);
    cr_assert_eq(s.n, 1);
    h = only(s.u[0]);
    cr_expect_eq(h->wait_position, 1, "urgent goes first");
    cr_expect_eq(h->wait_length, 2);
    sent_free(&s);

    /* nothing changed: a retry says nothing */
    retry("R-ROUTINE", &s);
    cr_expect_eq(s.n, 1, "its position changed (2 of 2): told once");
    if (s.n)
        cr_expect_eq(only(s.u[0])->wait_position, 2);
    sent_free(&s);
    retry("R-ROUTINE", &s);
    cr_expect_eq(s.n, 0, "the same position and estimate again: no update");
    sent_free(&s);

    /* the horizon is full: the tick tries nobody, though two wait */
    char ids[8][32];
    sent_t each[8];
    cr_expect_eq(hx_booking_to_retry(store, ids, 8), 0);
    cr_expect_eq(hx_booking_on_hold(store, ids, 8), 2);

    /* a day on: Wednesday 09:00 enters the horizon; the tick retries urgent first, and it gets it */
    now_ms += DAY_MS;
    size_t n = tick(ids, 8, each);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(ids[0], "R-URGENT");
    cr_expect_str_eq(ids[1], "R-ROUTINE");
    cr_assert_eq(each[0].n, 1);
    cr_expect_eq(each[0].u[0]->status, ST(READY));
    cr_expect_str_eq(each[0].u[0]->event, "book");
    cr_assert_eq(each[1].n, 1, "the routine one moved up: told");
    h = only(each[1].u[0]);
    cr_expect_eq(h->status, ST(ON_HOLD));
    cr_expect_eq(h->wait_position, 1);
    cr_expect_eq(h->wait_length, 1);
    cr_expect_str_eq(h->wait_estimate, "2026-11-26");
    for (size_t i = 0; i < n; i++)
        sent_free(&each[i]);

    /* another day: Thursday opens and the routine one is booked; the wait list is empty */
    now_ms += DAY_MS;
    n = tick(ids, 8, each);
    cr_assert_eq(n, 1);
    cr_assert_eq(each[0].n, 1);
    cr_expect_eq(each[0].u[0]->status, ST(READY));
    sent_free(&each[0]);
    cr_expect_eq(hx_booking_on_hold(store, ids, 8), 0);
    uint64_t by[5];
    cr_assert_eq(hx_booking_waiting(store, by), 0);
    cr_expect_eq(by[1] + by[2] + by[3] + by[4], 0);
}

Test(waitlist, overdue_is_escalated_exactly_once)
{
    sent_t s;
    refer("R-FR", HANDOFF__PRIORITY__PRIORITY_URGENT, "fr", &s);        /* nobody speaks French */
    cr_assert_eq(s.n, 1);
    cr_expect_eq(s.u[0]->status, ST(ON_HOLD));
    cr_expect_str_eq(s.u[0]->event, "hold");
    sent_free(&s);
    uint64_t by[5];
    cr_assert_eq(hx_booking_waiting(store, by), 0);
    cr_expect_eq(by[HANDOFF__PRIORITY__PRIORITY_URGENT], 1);

    /* within its bound (urgent: 7 days) nothing is escalated, day after day */
    for (int day = 1; day <= 6; day++) {
        now_ms += DAY_MS;
        retry("R-FR", &s);
        for (size_t i = 0; i < s.n; i++)
            cr_expect_str_neq(s.u[i]->event, "escalate", "day %d", day);
        sent_free(&s);
    }
    now_ms += DAY_MS + 60000;                   /* 7 days and a minute on hold */
    retry("R-FR", &s);
    size_t escalations = 0;
    for (size_t i = 0; i < s.n; i++)
        if (strcmp(s.u[i]->event, "escalate") == 0) {
            escalations++;
            cr_expect_eq(s.u[i]->status, ST(ON_HOLD));
            cr_expect(strstr(s.u[i]->reason, "on the wait list for 7 day(s) 0 hour(s)"), "%s", s.u[i]->reason);
            cr_expect(strstr(s.u[i]->reason, "(urgent: 7 day(s))"), "%s", s.u[i]->reason);
            cr_expect(only(s.u[i])->escalated);
        }
    cr_expect_eq(escalations, 1);
    sent_free(&s);
    for (int i = 0; i < 3; i++) {               /* later retries: never again */
        now_ms += DAY_MS;
        retry("R-FR", &s);
        for (size_t k = 0; k < s.n; k++)
            cr_expect_str_neq(s.u[k]->event, "escalate");
        sent_free(&s);
    }
}

/* The place each referral is told, against a model of the list: a new hold goes to the end of
 * its priority; a retry (the tick's order) reports where it stands after one ahead of it left.
 * Places are counted from the front or from the back of a priority, whichever is shorter: the
 * referrals here sit before, at and after the middle of theirs. */
Test(waitlist, every_place_told_is_the_place_in_the_list)
{
    sent_t s;
    refer("R-MON", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);
    sent_free(&s);
    refer("R-TUE", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);
    sent_free(&s);
    /* 14 arrivals, a minute apart, routine and urgent mixed */
    static const Handoff__Priority arrive[] = {1, 1, 2, 1, 1, 2, 1, 1, 1, 2, 1, 1, 2, 1};
    enum { N = sizeof arrive / sizeof arrive[0] };
    char rid[N][16];
    for (int i = 0; i < N; i++) {
        now_ms += 60000;
        snprintf(rid[i], sizeof rid[i], "R-%02d", i);
        refer(rid[i], arrive[i], NULL, &s);
        cr_assert_eq(s.n, 1, "%s", rid[i]);
        const Handoff__HandoffStatus *h = only(s.u[0]);
        uint32_t want = 1;              /* the urgent ones, then those of its own priority, before it */
        for (int k = 0; k < i; k++)
            want += arrive[k] >= arrive[i];
        cr_expect_eq(h->wait_position, want, "%s arrived at %u, told %u", rid[i], want, h->wait_position);
        cr_expect_eq(h->wait_length, (uint32_t)i + 1);
        sent_free(&s);
    }
    /* the model's order: urgent by arrival, then routine by arrival */
    int order[N], n = 0;
    for (int p = 2; p >= 1; p--)
        for (int i = 0; i < N; i++)
            if (arrive[i] == (Handoff__Priority)p)
                order[n++] = i;
    char ids[N][32];
    cr_assert_eq(hx_booking_on_hold(store, ids, N), N);
    for (int i = 0; i < N; i++)
        cr_expect_str_eq(ids[i], rid[order[i]], "place %d", i + 1);

    /* Wednesday enters the horizon: the first urgent one is booked, each after it moves up one */
    now_ms += DAY_MS;
    sent_t each[N];
    size_t got = tick(ids, N, each);
    cr_assert_eq(got, N, "a day with room: every held referral is tried");
    cr_assert_eq(each[0].n, 1);
    cr_expect_eq(each[0].u[0]->status, ST(READY));
    for (int i = 1; i < N; i++) {
        cr_assert_eq(each[i].n, 1, "%s moved up: told", ids[i]);
        const Handoff__HandoffStatus *h = only(each[i].u[0]);
        cr_expect_eq(h->wait_position, (uint32_t)i, "%s", ids[i]);
        cr_expect_eq(h->wait_length, N - 1);
    }
    for (size_t i = 0; i < got; i++)
        sent_free(&each[i]);
}

/* With the calendar full, the tick tries only who is due for escalation: the rest could not be
 * booked whatever they asked (their discipline has no free slot at all), and trying them would
 * cost a search and a transaction each. */
Test(waitlist, a_full_calendar_retries_only_the_overdue)
{
    sent_t s;
    refer("R-MON", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);
    sent_free(&s);
    refer("R-FR", HANDOFF__PRIORITY__PRIORITY_URGENT, "fr", &s);     /* nobody speaks French */
    cr_expect_eq(s.u[0]->status, ST(ON_HOLD));
    sent_free(&s);
    char ids[8][32];
    cr_expect_eq(hx_booking_to_retry(store, ids, 8), 1, "Tuesday is free: R-FR is tried (it may fit)");
    refer("R-TUE", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);
    cr_expect_eq(s.u[0]->status, ST(READY));
    sent_free(&s);
    refer("R-WAIT", HANDOFF__PRIORITY__PRIORITY_ROUTINE, NULL, &s);
    cr_expect_eq(s.u[0]->status, ST(ON_HOLD));
    sent_free(&s);
    cr_expect_eq(hx_booking_to_retry(store, ids, 8), 0, "full: nobody is tried");
    cr_expect_eq(hx_booking_on_hold(store, ids, 8), 2);

    /* 7 days and a minute on, each new day taken as it enters the horizon: R-FR is overdue */
    for (int day = 1; day <= 7; day++) {
        now_ms += DAY_MS;
        char rid[16];
        snprintf(rid, sizeof rid, "R-DAY%d", day);
        refer(rid, HANDOFF__PRIORITY__PRIORITY_URGENT, NULL, &s);
        cr_expect_eq(s.u[0]->status, ST(READY), "%s", rid);
        sent_free(&s);
    }
    now_ms += 60000;
    size_t n = hx_booking_to_retry(store, ids, 8);
    cr_assert_eq(n, 1, "only the overdue one");
    cr_expect_str_eq(ids[0], "R-FR");
    retry("R-FR", &s);
    size_t escalated = 0;
    for (size_t i = 0; i < s.n; i++)
        escalated += strcmp(s.u[i]->event, "escalate") == 0;
    cr_expect_eq(escalated, 1);
    sent_free(&s);
    cr_expect_eq(hx_booking_to_retry(store, ids, 8), 0, "escalated once: not due again");
}
