/* Unit: scheduling's answer to a StatsRequest (services/scheduling/hx_stats.c) with an injected
 * clock and known bookings: nearest-rank median and p90 of the minutes from receipt to booking
 * and to the first session, declines per declining clinic, on-hold per referring clinic,
 * referrals per ISO week and discipline, the review backlog, the next free slot per clinic
 * and discipline; an empty network; one clinic; a window out of range refused. The answer
 * holds no referral id. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_booking.h"
#include "hx_pgtest_hooks.h"
#include "hx_errors.h"
#include "hx_schedule.h"
#include "hx_stats.h"

#define DAY_MS (24ull * 3600 * 1000)
#define MIN_MS 60000ull
#define PHYSIO HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define MASSAGE HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY

static char dir_path[] = "/tmp/hx-stats-XXXXXX";
static hx_directory_t *directory;
static hx_booking_t *store;
static uint64_t now_ms;
static uint64_t monday_ms;          /* 2026-11-23T00:00Z, a Monday (ISO week 2026-W48) */
static uint32_t next_id;

static uint64_t test_clock(void *arg)
{
    return *(const uint64_t *)arg;
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir_path));
    hx_minute_t monday;
    cr_assert_eq(hx_minute_parse("2026-11-23T00:00", &monday), 0);
    monday_ms = now_ms = (uint64_t)monday * 60000;
}

static void teardown(void)
{
    hx_booking_close(&store);
    hx_directory_destroy(&directory);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_path);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(stats, .init = setup, .fini = teardown);

/* Every day of the week from..to (HH:MM) as a therapist's hours. */
#define WEEK(from, to)                                                                                              \
    "[{\"day\": 1, \"from\": \"" from "\", \"to\": \"" to "\"}, {\"day\": 2, \"from\": \"" from "\", \"to\": \"" to  \
    "\"}, {\"day\": 3, \"from\": \"" from "\", \"to\": \"" to "\"}, {\"day\": 4, \"from\": \"" from "\", \"to\": \""  \
    to "\"}, {\"day\": 5, \"from\": \"" from "\", \"to\": \"" to "\"}, {\"day\": 6, \"from\": \"" from "\", \"to\": " \
    "\"" to "\"}, {\"day\": 7, \"from\": \"" from "\", \"to\": \"" to "\"}]"

/* northpoint: one physiotherapist, one session a day (09:00-10:00). */
static const char one_a_day[] =
    "{\"version\": 1, \"clinics\": [{\"id\": \"northpoint\", \"name\": \"Northpoint\", \"city\": \"Toronto\"}],"
    " \"therapists\": [{\"id\": \"t-amira\", \"name\": \"Amira Haddad\", \"discipline\": \"physiotherapy\","
    " \"registration\": \"CPO 14523\", \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": false,"
    " \"hours\": " WEEK("09:00", "10:00") "}]}";

/* northpoint: one physiotherapist, 08:00-18:00 every day. */
static const char one_clinic[] =
    "{\"version\": 1, \"clinics\": [{\"id\": \"northpoint\", \"name\": \"Northpoint\", \"city\": \"Toronto\"}],"
    " \"therapists\": [{\"id\": \"t-amira\", \"name\": \"Amira Haddad\", \"discipline\": \"physiotherapy\","
    " \"registration\": \"CPO 14523\", \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": false,"
    " \"hours\": " WEEK("08:00", "18:00") "}]}";

/* northpoint: a physiotherapist 08:00-18:00 and a massage therapist 12:00-14:00 every day;
 * lakeside: a physiotherapist 10:00-11:00. */
static const char two_clinics[] =
    "{\"version\": 1, \"clinics\": [{\"id\": \"northpoint\", \"name\": \"Northpoint\", \"city\": \"Toronto\"},"
    " {\"id\": \"lakeside\", \"name\": \"Lakeside\", \"city\": \"Toronto\"}],"
    " \"therapists\": [{\"id\": \"t-amira\", \"name\": \"Amira Haddad\", \"discipline\": \"physiotherapy\","
    " \"registration\": \"CPO 14523\", \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": false,"
    " \"hours\": " WEEK("08:00", "18:00") "},"
    " {\"id\": \"t-mei\", \"name\": \"Mei Chen\", \"discipline\": \"massage_therapy\","
    " \"registration\": \"CMTO 20117\", \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": false,"
    " \"hours\": " WEEK("12:00", "14:00") "},"
    " {\"id\": \"t-lucas\", \"name\": \"Lucas Silva\", \"discipline\": \"physiotherapy\","
    " \"registration\": \"CPO 15501\", \"clinic_id\": \"lakeside\", \"languages\": [\"en\"], \"virtual\": false,"
    " \"hours\": " WEEK("10:00", "11:00") "}]}";

static void open_store(const char *json, uint32_t horizon_days)
{
    char path[600], db[600];
    snprintf(path, sizeof path, "%s/directory.json", dir_path);
    char why[1024];
    cr_assert_eq(hx_pgtest_store_url(dir_path, "scheduling.db", db, sizeof db, why, sizeof why), 0, "%s", why);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(json, f);
    fclose(f);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    directory = hx_directory_load(path, &errs);
    cr_assert_not_null(directory, "%s", path);
    char err[256];
    hx_booking_config_t cfg = {.db_url = db, .start = -1, .horizon_days = horizon_days, .collab_days = 14,
                               .clock = test_clock, .clock_arg = &now_ms, .routine_days = 30};
    store = hx_booking_open(&cfg, directory, err, sizeof err);
    cr_assert_not_null(store, "%s", err);
}

/* Handles one message; the payload of its first output of type want to `to` is copied into
 * *got (malloc'd; NULL when none). */
static void handle(const char *type, hx_addr_kind_t from_kind, const char *from, const void *payload, size_t len,
                   const char *want, const char *to_want, uint8_t **got, size_t *got_len)
{
    hx_msg_t in = {.from_kind = from_kind, .from = from, .type = type, .payload = payload, .payload_len = len};
    uint32_t id = ++next_id;
    memcpy(in.id, &id, sizeof id);
    hx_outbox_t *out = hx_outbox_new(in.id);
    cr_assert_not_null(out);
    char err[256];
    cr_assert_eq(hx_booking_handle(store, &in, out, err, sizeof err), 0, "%s", err);
    if (got)
        *got = NULL;
    for (size_t i = 0; got && !*got && i < hx_outbox_count(out); i++) {
        hx_addr_kind_t kind;
        const char *to, *t;
        const uint8_t *p;
        size_t n;
        cr_assert_eq(hx_outbox_get(out, i, &kind, &to, &t, &p, &n), 0);
        if (strcmp(t, want) == 0 && strcmp(to, to_want) == 0) {
            *got = malloc(n ? n : 1);
            memcpy(*got, p, n);
            *got_len = n;
        }
    }
    hx_outbox_destroy(&out);
}

/* A triaged referral from `from` for the disciplines d[0..n) (n 0: triage could not place it). */
static void refer(const char *rid, const char *from, const Handoff__Discipline *d, size_t n)
{
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = (char *)rid;
    r.referring_clinic = (char *)from;
    r.ref = (char *)rid;
    Handoff__Patient p = HANDOFF__PATIENT__INIT;
    p.given_name = "Wanda";
    p.family_name = "Zyxwicz";
    r.patient = &p;
    r.reason = "knee pain after a fall";
    Handoff__TriageDecision dec = HANDOFF__TRIAGE_DECISION__INIT;
    dec.disciplines = (Handoff__Discipline *)d;
    dec.n_disciplines = n;
    dec.needs_review = n == 0;
    Handoff__Case c = HANDOFF__CASE__INIT;
    c.referral = &r;
    c.decision = &dec;
    uint8_t buf[1024];
    size_t len = handoff__case__pack(&c, buf);
    handle("handoff.Case", HX_TO_SERVICE, "triage", buf, len, "", "", NULL, NULL);
}

static void refer_physio(const char *rid, const char *from)
{
    static const Handoff__Discipline physio[] = {PHYSIO};
    refer(rid, from, physio, 1);
}

/* A receiving clinic's lifecycle change; the answer must not be refused. */
static void change(const char *rid, const char *clinic, const char *event)
{
    Handoff__StatusChange ch = HANDOFF__STATUS_CHANGE__INIT;
    ch.referral_id = (char *)rid;
    ch.event = (char *)event;
    ch.reason = "not a fit for our clinic this month";
    uint8_t buf[256], *answer;
    size_t len = handoff__status_change__pack(&ch, buf), n;
    handle("handoff.StatusChange", HX_TO_MAILBOX, clinic, buf, len, "handoff.StatusUpdate", clinic, &answer, &n);
    cr_assert_not_null(answer, "%s of %s: no answer", event, rid);
    Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, n, answer);
    cr_assert_not_null(u);
    cr_assert(!u->refused, "%s of %s refused: %s", event, rid, u->reason);
    handoff__status_update__free_unpacked(u, NULL);
    free(answer);
}

static void retry(const char *rid)
{
    Handoff__Retry t = HANDOFF__RETRY__INIT;
    t.referral_id = (char *)rid;
    uint8_t buf[64];
    size_t len = handoff__retry__pack(&t, buf);
    handle("handoff.Retry", HX_TO_SERVICE, "scheduling", buf, len, "", "", NULL, NULL);
}

/* harbour asks for the figures of `weeks` weeks; the packed answer in raw (when not NULL). */
static Handoff__NetworkStats *ask(uint32_t weeks, uint8_t **raw, size_t *raw_len)
{
    Handoff__StatsRequest rq = HANDOFF__STATS_REQUEST__INIT;
    rq.weeks = weeks;
    uint8_t buf[16], *answer;
    size_t len = handoff__stats_request__pack(&rq, buf), n;
    handle("handoff.StatsRequest", HX_TO_MAILBOX, "harbour", buf, len, "handoff.NetworkStats", "harbour", &answer,
           &n);
    cr_assert_not_null(answer, "no NetworkStats for harbour");
    Handoff__NetworkStats *s = handoff__network_stats__unpack(NULL, n, answer);
    cr_assert_not_null(s);
    if (raw) {
        *raw = answer;
        *raw_len = n;
    } else {
        free(answer);
    }
    return s;
}

static const Handoff__ClinicStats *row(const Handoff__NetworkStats *s, const char *clinic, Handoff__Discipline d)
{
    for (size_t i = 0; i < s->n_clinics; i++)
        if (!strcmp(s->clinics[i]->clinic_id, clinic) && s->clinics[i]->discipline == d)
            return s->clinics[i];
    return NULL;
}

static const Handoff__NextSlot *slot(const Handoff__NetworkStats *s, const char *clinic, Handoff__Discipline d)
{
    for (size_t i = 0; i < s->n_next_slots; i++)
        if (!strcmp(s->next_slots[i]->clinic_id, clinic) && s->next_slots[i]->discipline == d)
            return s->next_slots[i];
    return NULL;
}

static uint32_t week_count(const Handoff__NetworkStats *s, const char *week, Handoff__Discipline d, bool *present)
{
    *present = false;
    for (size_t i = 0; i < s->n_referrals; i++)
        if (!strcmp(s->referrals[i]->week, week) && s->referrals[i]->discipline == d) {
            *present = true;
            return s->referrals[i]->count;
        }
    return 0;
}

static bool contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k))
            return true;
    return false;
}

/* ---- the pure parts ---------------------------------------------------------------------------- */

Test(stats, quantiles_are_nearest_rank)
{
    uint32_t m = 7, p = 7;
    hx_stats_quantiles(NULL, 0, &m, &p);
    cr_expect_eq(m, 0);
    cr_expect_eq(p, 0);
    uint32_t one[] = {42};
    hx_stats_quantiles(one, 1, &m, &p);
    cr_expect_eq(m, 42);
    cr_expect_eq(p, 42);
    uint32_t four[] = {40, 10, 30, 20};
    hx_stats_quantiles(four, 4, &m, &p);
    cr_expect_eq(m, 20, "rank ceil(4/2) = 2");
    cr_expect_eq(p, 40, "rank ceil(3.6) = 4");
    uint32_t ten[] = {100, 90, 80, 70, 60, 50, 40, 30, 20, 10};
    hx_stats_quantiles(ten, 10, &m, &p);
    cr_expect_eq(m, 50);
    cr_expect_eq(p, 90);
    uint32_t hundred[100];
    for (uint32_t i = 0; i < 100; i++)
        hundred[i] = 100 - i;      /* 100 .. 1 */
    hx_stats_quantiles(hundred, 100, &m, &p);
    cr_expect_eq(m, 50);
    cr_expect_eq(p, 90);
    uint32_t eleven[11];
    for (uint32_t i = 0; i < 11; i++)
        eleven[i] = i + 1;
    hx_stats_quantiles(eleven, 11, &m, &p);
    cr_expect_eq(m, 6);
    cr_expect_eq(p, 10, "rank ceil(9.9) = 10");
}

Test(stats, iso_weeks_in_utc)
{
    char w[12];
    uint64_t start;
    hx_stats_iso_week(monday_ms, w, &start);
    cr_expect_str_eq(w, "2026-W48");
    cr_expect_eq(start, monday_ms);
    hx_stats_iso_week(monday_ms + 7 * DAY_MS - 1, w, &start);     /* Sunday 23:59:59.999 */
    cr_expect_str_eq(w, "2026-W48");
    cr_expect_eq(start, monday_ms);
    hx_minute_t m;
    cr_assert_eq(hx_minute_parse("2027-01-01T12:00", &m), 0);      /* a Friday: 2026 has 53 weeks */
    hx_stats_iso_week((uint64_t)m * 60000, w, &start);
    cr_expect_str_eq(w, "2026-W53");
    cr_assert_eq(hx_minute_parse("2024-12-30T00:00", &m), 0);      /* a Monday: week 1 of 2025 */
    hx_stats_iso_week((uint64_t)m * 60000, w, &start);
    cr_expect_str_eq(w, "2025-W01");
    cr_expect_eq(start, (uint64_t)m * 60000);
}

/* ---- through scheduling's store ---------------------------------------------------------------- */

Test(stats, an_empty_network_has_slots_and_nothing_else)
{
    open_store(two_clinics, 14);
    now_ms = monday_ms + 7 * MIN_MS;            /* Monday 00:07 UTC */
    Handoff__NetworkStats *s = ask(0, NULL, NULL);
    cr_expect_eq(s->weeks, 12, "0 asks for 12 weeks");
    cr_expect_eq(s->at_ms, now_ms);
    cr_expect_eq(s->from_ms, monday_ms - 11 * 7 * DAY_MS, "Monday 00:00 UTC of the first of 12 ISO weeks");
    cr_expect_eq(s->n_referrals, 24, "every week, physiotherapy and massage therapy, count 0");
    for (size_t i = 0; i < s->n_referrals; i++)
        cr_expect_eq(s->referrals[i]->count, 0);
    cr_expect_str_eq(s->referrals[0]->week, "2026-W37");
    cr_expect_str_eq(s->referrals[s->n_referrals - 1]->week, "2026-W48");
    cr_expect_eq(s->referrals[s->n_referrals - 1]->week_start_ms, monday_ms);
    cr_expect_eq(s->n_clinics, 0);
    cr_expect_eq(s->received, 0);
    cr_expect_eq(s->review_pending, 0);
    cr_expect_eq(s->review_oldest_ms, 0);
    cr_expect_eq(s->on_hold_now, 0);
    cr_expect_eq(s->horizon_days, 14);
    cr_expect_eq(s->n_next_slots, 3, "northpoint physiotherapy and massage, lakeside physiotherapy");
    const Handoff__NextSlot *pt = slot(s, "northpoint", PHYSIO);
    cr_assert_not_null(pt);
    cr_expect(pt->found);
    cr_expect_str_eq(pt->start_utc, "2026-11-23T08:00Z");
    cr_expect_str_eq(pt->start, "2026-11-23T08:00", "a directory without zones is UTC");
    cr_expect_str_eq(pt->clinic_name, "Northpoint");
    cr_expect_eq(pt->minutes, 60);
    cr_expect_eq(pt->wait_min, 8 * 60 - 7);
    cr_expect_eq(pt->therapists, 1);
    const Handoff__NextSlot *mt = slot(s, "northpoint", MASSAGE);
    cr_assert_not_null(mt);
    cr_expect_str_eq(mt->start_utc, "2026-11-23T12:00Z");
    cr_assert_not_null(slot(s, "lakeside", PHYSIO));
    cr_expect_str_eq(slot(s, "lakeside", PHYSIO)->start_utc, "2026-11-23T10:00Z");
    cr_expect_null(slot(s, "lakeside", MASSAGE), "lakeside has no massage therapist");
    handoff__network_stats__free_unpacked(s, NULL);
}

Test(stats, one_clinic_times_to_booking_declines_and_holds)
{
    open_store(one_a_day, 2);
    /* Monday 00:00: two booked at once (Monday and Tuesday 09:00), the third on hold */
    refer_physio("R-ONE0000000000001", "harbour");
    refer_physio("R-ONE0000000000002", "harbour");
    refer_physio("R-ONE0000000000003", "harbour");
    Handoff__NetworkStats *s = ask(1, NULL, NULL);
    cr_expect_eq(s->on_hold_now, 1);
    /* the calendar is full to the horizon (Monday and Tuesday): no free slot */
    const Handoff__NextSlot *next = slot(s, "northpoint", PHYSIO);
    cr_assert_not_null(next);
    cr_expect(!next->found);
    cr_expect_str_eq(next->start_utc, "");
    cr_expect_eq(next->wait_min, 0);
    handoff__network_stats__free_unpacked(s, NULL);
    /* a day on, Wednesday enters the horizon: the third is booked 1440 minutes after receipt */
    now_ms = monday_ms + DAY_MS;
    retry("R-ONE0000000000003");
    /* the second's first session begins on Tuesday at 09:00: 33 hours after receipt */
    now_ms = monday_ms + DAY_MS + 9 * 60 * MIN_MS;
    change("R-ONE0000000000002", "northpoint", "accept");
    change("R-ONE0000000000002", "northpoint", "start");

    uint8_t *raw;
    size_t raw_len;
    s = ask(1, &raw, &raw_len);
    cr_expect_eq(s->n_clinics, 2, "northpoint as the receiver, harbour as the referrer");
    const Handoff__ClinicStats *np = row(s, "northpoint", PHYSIO);
    cr_assert_not_null(np);
    cr_expect_str_eq(np->clinic_name, "Northpoint");
    cr_expect_eq(np->booked, 3);
    cr_expect_eq(np->to_booking_median_min, 0, "of 0, 0, 1440: rank 2");
    cr_expect_eq(np->to_booking_p90_min, 1440, "rank 3");
    cr_expect_eq(np->started, 1);
    cr_expect_eq(np->to_start_median_min, 33 * 60);
    cr_expect_eq(np->to_start_p90_min, 33 * 60);
    cr_expect_eq(np->declined, 0);
    cr_expect_eq(np->referred, 0, "northpoint referred nothing");
    const Handoff__ClinicStats *hb = row(s, "harbour", PHYSIO);
    cr_assert_not_null(hb);
    cr_expect_str_eq(hb->clinic_name, "", "harbour is not in scheduling's directory");
    cr_expect_eq(hb->referred, 3);
    cr_expect_eq(hb->on_hold, 1);
    cr_expect_eq(hb->booked, 0);
    cr_expect_eq(s->on_hold_now, 0);
    bool present;
    cr_expect_eq(week_count(s, "2026-W48", PHYSIO, &present), 3);
    cr_expect(present);
    /* Tuesday 09:00: Wednesday's session is taken, Thursday's (the horizon's end) is free */
    next = slot(s, "northpoint", PHYSIO);
    cr_assert_not_null(next);
    cr_expect(next->found);
    cr_expect_str_eq(next->start_utc, "2026-11-26T09:00Z");
    cr_expect_eq(next->wait_min, 2 * 24 * 60);
    /* aggregates only: no referral id, no patient, no reason anywhere in the answer */
    cr_expect(!contains(raw, raw_len, "R-ONE"));
    cr_expect(!contains(raw, raw_len, "Zyxwicz"));
    cr_expect(!contains(raw, raw_len, "knee"));
    cr_expect(!contains(raw, raw_len, "t-amira"));
    free(raw);
    handoff__network_stats__free_unpacked(s, NULL);

    /* northpoint declines the first: it is not offered to its only therapist again, so it waits */
    change("R-ONE0000000000001", "northpoint", "decline");
    s = ask(1, NULL, NULL);
    np = row(s, "northpoint", PHYSIO);
    cr_assert_not_null(np);
    cr_expect_eq(np->declined, 1);
    cr_expect_eq(np->booked, 2, "the declined booking is gone; decline rate 1 / (2 + 1)");
    cr_expect_eq(np->to_booking_median_min, 0, "of 0, 1440: rank 1");
    cr_expect_eq(np->to_booking_p90_min, 1440, "rank 2");
    hb = row(s, "harbour", PHYSIO);
    cr_assert_not_null(hb);
    cr_expect_eq(hb->on_hold, 2, "the third, then the first");
    cr_expect_eq(s->on_hold_now, 1);
    handoff__network_stats__free_unpacked(s, NULL);
}

Test(stats, median_and_p90_of_ten_first_sessions)
{
    open_store(one_clinic, 14);
    char rid[10][32];
    for (int k = 0; k < 10; k++) {
        snprintf(rid[k], sizeof rid[k], "R-TEN00000000000%02d", k);
        refer_physio(rid[k], "harbour");
    }
    /* all ten booked at once, Monday 08:00 to 17:00 */
    for (int k = 0; k < 10; k++) {
        now_ms = monday_ms + (uint64_t)(k + 1) * 60 * MIN_MS;   /* 60, 120, .. 600 minutes after receipt */
        change(rid[k], "northpoint", "accept");
        change(rid[k], "northpoint", "start");
    }
    Handoff__NetworkStats *s = ask(4, NULL, NULL);
    const Handoff__ClinicStats *np = row(s, "northpoint", PHYSIO);
    cr_assert_not_null(np);
    cr_expect_eq(np->booked, 10);
    cr_expect_eq(np->to_booking_median_min, 0);
    cr_expect_eq(np->to_booking_p90_min, 0);
    cr_expect_eq(np->started, 10);
    cr_expect_eq(np->to_start_median_min, 300, "rank 5 of 60 .. 600");
    cr_expect_eq(np->to_start_p90_min, 540, "rank 9");
    cr_expect_eq(row(s, "harbour", PHYSIO)->referred, 10);
    cr_expect_eq(s->n_clinics, 2);
    handoff__network_stats__free_unpacked(s, NULL);
}

Test(stats, referrals_per_iso_week_and_discipline_and_the_review_backlog)
{
    open_store(two_clinics, 14);
    static const Handoff__Discipline both[] = {PHYSIO, MASSAGE}, massage[] = {MASSAGE};
    now_ms = monday_ms - 14 * DAY_MS + 3600 * 1000;             /* W46 */
    refer_physio("R-WK00000000000046", "harbour");
    now_ms = monday_ms - 7 * DAY_MS + 3600 * 1000;              /* W47: physiotherapy and massage */
    refer("R-WK00000000000047", "harbour", both, 2);
    now_ms = monday_ms + 3600 * 1000;                           /* W48: massage, and one under review */
    refer("R-WK00000000000048", "lakeside", massage, 1);
    refer("R-WK0000000000048R", "lakeside", NULL, 0);
    now_ms = monday_ms + 2 * 3600 * 1000;
    Handoff__NetworkStats *s = ask(3, NULL, NULL);
    cr_expect_eq(s->weeks, 3);
    cr_expect_eq(s->from_ms, monday_ms - 14 * DAY_MS);
    bool present;
    cr_expect_eq(week_count(s, "2026-W46", PHYSIO, &present), 1);
    cr_expect_eq(week_count(s, "2026-W46", MASSAGE, &present), 0);
    cr_expect(present, "a week's zero is there too");
    cr_expect_eq(week_count(s, "2026-W46", 0, &present), 0);
    cr_expect(!present, "no 'not placed' entry when there were none");
    cr_expect_eq(week_count(s, "2026-W47", PHYSIO, &present), 1);
    cr_expect_eq(week_count(s, "2026-W47", MASSAGE, &present), 1, "a collaborative referral counts in both");
    cr_expect_eq(week_count(s, "2026-W48", PHYSIO, &present), 0);
    cr_expect_eq(week_count(s, "2026-W48", MASSAGE, &present), 1);
    cr_expect_eq(week_count(s, "2026-W48", 0, &present), 1, "under review: no discipline yet");
    cr_expect(present);
    cr_expect_eq(s->n_referrals, 7);
    cr_expect_eq(s->received, 4, "each referral once");
    cr_expect_eq(s->review_pending, 1);
    cr_expect_eq(s->review_oldest_ms, monday_ms + 3600 * 1000);
    const Handoff__ClinicStats *hb = row(s, "harbour", MASSAGE);
    cr_assert_not_null(hb);
    cr_expect_eq(hb->referred, 1);
    cr_expect_eq(row(s, "harbour", PHYSIO)->referred, 2);
    cr_expect_eq(row(s, "lakeside", MASSAGE)->referred, 1);
    handoff__network_stats__free_unpacked(s, NULL);

    /* two weeks leave W46 out */
    s = ask(2, NULL, NULL);
    cr_expect_eq(week_count(s, "2026-W46", PHYSIO, &present), 0);
    cr_expect(!present);
    cr_expect_eq(row(s, "harbour", PHYSIO)->referred, 1);
    handoff__network_stats__free_unpacked(s, NULL);
}

Test(stats, a_window_out_of_range_is_refused)
{
    open_store(two_clinics, 14);
    Handoff__StatsRequest rq = HANDOFF__STATS_REQUEST__INIT;
    rq.weeks = 53;
    uint8_t buf[16], *answer;
    size_t len = handoff__stats_request__pack(&rq, buf), n;
    handle("handoff.StatsRequest", HX_TO_MAILBOX, "harbour", buf, len, "handoff.StatusUpdate", "harbour", &answer, &n);
    cr_assert_not_null(answer);
    Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, n, answer);
    cr_assert_not_null(u);
    cr_expect(u->refused);
    cr_expect_str_eq(u->event, "stats");
    cr_expect_str_eq(u->reason, "weeks: 53, must be 1 to 52 (0: 12)");
    handoff__status_update__free_unpacked(u, NULL);
    free(answer);
    /* and a payload that does not decode */
    handle("handoff.StatsRequest", HX_TO_MAILBOX, "harbour", "\xff\xff", 2, "handoff.StatusUpdate", "harbour", &answer,
           &n);
    cr_assert_not_null(answer);
    u = handoff__status_update__unpack(NULL, n, answer);
    cr_assert_not_null(u);
    cr_expect(u->refused);
    cr_expect_str_eq(u->reason, "payload: not a decodable handoff.StatsRequest");
    handoff__status_update__free_unpacked(u, NULL);
    free(answer);
    /* from a service it is no request at all: ignored */
    size_t before = 0;
    handle("handoff.StatsRequest", HX_TO_SERVICE, "triage", buf, len, "handoff.StatusUpdate", "triage", &answer,
           &before);
    cr_expect_null(answer);
}
