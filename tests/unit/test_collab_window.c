/* Unit: a collaborative referral's massage booked again once the physiotherapy assessment is
 * long past. Massage is booked within --collab-days after the assessment; when it is declined
 * a month into the physiotherapy, that window is over, and it is booked from now on, within
 * --collab-days (the sessions go on), never in the past. The clock is injected (no sleeps). */
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
#define PT HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define RMT HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY

static char dir_path[] = "/tmp/hx-collab-window-XXXXXX";
static hx_directory_t *directory;
static hx_booking_t *store;
static uint64_t now_ms;
static uint32_t next_id;

static uint64_t test_clock(void *arg)
{
    return *(const uint64_t *)arg;
}

#define WEEK "[{\"day\":1,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":2,\"from\":\"09:00\",\"to\":\"17:00\"}," \
             "{\"day\":3,\"from\":\"09:00\",\"to\":\"17:00\"},{\"day\":4,\"from\":\"09:00\",\"to\":\"17:00\"}," \
             "{\"day\":5,\"from\":\"09:00\",\"to\":\"17:00\"}]"
static const char directory_json[] =
    "{\"version\": 2, \"time_zone\": \"America/Toronto\", \"clinics\": ["
    " {\"id\": \"northpoint\", \"name\": \"Northpoint\"}, {\"id\": \"lakeside\", \"name\": \"Lakeside\"}],"
    " \"therapists\": ["
    " {\"id\": \"t-amira\", \"name\": \"Amira\", \"discipline\": \"physiotherapy\", \"registration\": \"CPO 14523\","
    "  \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"hours\": " WEEK "},"
    " {\"id\": \"t-mei\", \"name\": \"Mei\", \"discipline\": \"massage_therapy\", \"registration\": \"CMTO 31408\","
    "  \"clinic_id\": \"lakeside\", \"languages\": [\"en\"], \"hours\": " WEEK "},"
    " {\"id\": \"t-sofia\", \"name\": \"Sofia\", \"discipline\": \"massage_therapy\", \"registration\": \"CMTO 27755\","
    "  \"clinic_id\": \"lakeside\", \"languages\": [\"en\"], \"hours\": " WEEK "}]}";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir_path));
    char db[600];
    char why[1024];
    cr_assert_eq(hx_pgtest_store_url(dir_path, "scheduling.db", db, sizeof db, why, sizeof why), 0, "%s", why);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    directory = hx_directory_parse(directory_json, &errs);
    cr_assert_not_null(directory);
    hx_minute_t monday;
    cr_assert_eq(hx_minute_parse("2026-11-23T00:00", &monday), 0);
    now_ms = (uint64_t)monday * 60000;
    char err[256];
    hx_booking_config_t cfg = {.db_url = db, .start = -1, .horizon_days = 60, .collab_days = 14,
                               .clock = test_clock, .clock_arg = &now_ms};
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

TestSuite(collab_window, .init = setup, .fini = teardown);

/* Handles one message; the last StatusUpdate to the referrer "harbour" into *last (or NULL). */
static void handle(hx_addr_kind_t from_kind, const char *from, const char *type, const ProtobufCMessage *m,
                   Handoff__StatusUpdate **last)
{
    uint8_t buf[1024];
    size_t len = protobuf_c_message_pack(m, buf);
    hx_msg_t in = {.from_kind = from_kind, .from = from, .type = type, .payload = buf, .payload_len = len};
    uint32_t id = ++next_id;
    memcpy(in.id, &id, sizeof id);
    hx_outbox_t *out = hx_outbox_new(in.id);
    char err[256];
    cr_assert_eq(hx_booking_handle(store, &in, out, err, sizeof err), 0, "%s", err);
    *last = NULL;
    for (size_t i = 0; i < hx_outbox_count(out); i++) {
        hx_addr_kind_t kind;
        const char *to, *t;
        const uint8_t *p;
        size_t n;
        cr_assert_eq(hx_outbox_get(out, i, &kind, &to, &t, &p, &n), 0);
        if (!strcmp(t, "handoff.StatusUpdate") && !strcmp(to, "harbour")) {
            if (*last)
                handoff__status_update__free_unpacked(*last, NULL);
            *last = handoff__status_update__unpack(NULL, n, p);
        }
    }
    hx_outbox_destroy(&out);
}

static const Handoff__Booking *booking_of(const Handoff__StatusUpdate *u, Handoff__Discipline d)
{
    for (size_t i = 0; u && i < u->n_bookings; i++)
        if (u->bookings[i]->discipline == d)
            return u->bookings[i];
    return NULL;
}

Test(collab_window, massage_declined_after_the_assessment_is_booked_again_from_now)
{
    Handoff__Discipline both[] = {PT, RMT};
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = "R-COLLABWINDOW001";
    r.referring_clinic = "harbour";
    r.ref = "HB-WINDOW";
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    d.disciplines = both;
    d.n_disciplines = 2;
    d.priority = HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    Handoff__Case c = HANDOFF__CASE__INIT;
    c.referral = &r;
    c.decision = &d;
    Handoff__StatusUpdate *u;
    handle(HX_TO_SERVICE, "triage", "handoff.Case", &c.base, &u);
    cr_assert_not_null(u);
    cr_assert_eq(u->status, ST(READY), "%s", u->reason);
    cr_expect_str_eq(booking_of(u, PT)->start, "2026-11-23T09:00", "Monday 09:00 Toronto");
    char first[17];
    snprintf(first, sizeof first, "%s", booking_of(u, RMT)->start);
    char *first_therapist = strdup(booking_of(u, RMT)->therapist_id);
    handoff__status_update__free_unpacked(u, NULL);

    /* a month on, physiotherapy in progress, the massage clinic declines */
    Handoff__StatusChange ch = HANDOFF__STATUS_CHANGE__INIT;
    ch.referral_id = r.referral_id;
    ch.discipline = PT;
    const char *steps[] = {"accept", "start"};
    for (size_t i = 0; i < 2; i++) {
        ch.event = (char *)steps[i];
        handle(HX_TO_MAILBOX, "northpoint", "handoff.StatusChange", &ch.base, &u);
        cr_assert_not_null(u);
        cr_assert_not(u->refused, "%s", u->reason);
        handoff__status_update__free_unpacked(u, NULL);
    }
    now_ms += 30 * DAY_MS;                          /* 2026-12-23: the window after the assessment is over */
    ch.event = "decline";
    ch.discipline = RMT;
    ch.reason = "therapist on leave";
    handle(HX_TO_MAILBOX, "lakeside", "handoff.StatusChange", &ch.base, &u);
    cr_assert_not_null(u);
    cr_assert_eq(u->status, ST(IN_PROGRESS), "%s", u->reason);
    const Handoff__Booking *m = booking_of(u, RMT);
    cr_assert_not_null(m, "massage is booked again, not held: %s", u->reason);
    cr_expect_str_neq(m->therapist_id, first_therapist, "not the therapist who declined");
    cr_expect_gt(strcmp(m->start, "2026-12-23T00:00"), 0, "from now on (%s), not before", m->start);
    cr_expect_lt(strcmp(m->start, "2027-01-06T23:59"), 0, "within --collab-days of now (%s)", m->start);
    cr_expect_gt(strcmp(m->start, first), 0);
    handoff__status_update__free_unpacked(u, NULL);
    free(first_therapist);
}
