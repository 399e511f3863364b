/* Integration: a referral triage cannot place, end to end through the CLI against the real
 * broker, intake, triage and scheduling on 127.0.0.1: it is held under review (the referrer
 * is told, with what was not understood), reaches the network's reviewer, and the reviewer's
 * decision books it or sends it to a physician, the referrer told at each step. A second
 * decision, a decision from a reviewer the network does not list, and a decision sent by a
 * clinic's session are all refused.
 *
 * Every wait is a condition polled with a deadline (net_wait). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_wire.h"
#include "referral.pb-c.h"

#define START "2026-11-23T08:00"       /* a Monday */
#define WAIT_MS 60000
#define REVIEWER "review"               /* scheduling's default --reviewers */

static net_t net;

static void setup(void)
{
    net_init(&net);
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
    net_start_services(&net, START);
}

static void teardown(void)
{
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(review, .init = setup, .fini = teardown, .timeout = 300);

/* `handoff --json ARGS...` as clinic (harness.h); args NULL-terminated. */
#define cli(clinic, out, ...) net_cli_json(&net, (clinic), (out), __VA_ARGS__)

/* A referral from harbour that no rule can place: no code the rules know, no wording. */
static const char *unplaceable(const char *ref)
{
    static char path[512];
    json_error_t jerr;
    json_t *j = json_load_file(net_src("deploy/sample/referrals/01-ankle-sprain.json"), 0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    json_object_set_new(j, "ref", json_string(ref));
    json_object_set_new(j, "conditions", json_pack("[s]", "zq_unlisted_code"));
    const char *blank[] = {"reason", "history", "diagnosis", "current_treatment", "expectations"};
    for (size_t i = 0; i < sizeof blank / sizeof *blank; i++)
        json_object_set_new(j, blank[i], json_string(i == 0 ? "Please see." : ""));
    snprintf(path, sizeof path, "%s/%s.json", net.dir, ref);
    cr_assert_eq(json_dump_file(j, path, 0), 0);
    json_decref(j);
    return path;
}

static const char *submit(const char *file)
{
    static char id[32];
    json_t *j = NULL;
    int rc = cli("harbour", &j, "submit", file, NULL);
    cr_assert_eq(rc, 0, "submit %s: exit %d (logs in %s)", file, rc, net.dir);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(json_array_get(j, 0), "referral_id")));
    json_decref(j);
    return id;
}

typedef struct {
    const char *rid, *event;
    int status;                 /* the wanted status (HANDOFF__TASK_STATUS__*), 0: any */
    char reason[1024];
} seen_t;

/* True when harbour's history of rid has an update with this event (and status). */
static bool referrer_saw(void *arg)
{
    seen_t *s = arg;
    json_t *j = NULL;
    bool found = false;
    if (cli("harbour", &j, "status", s->rid, NULL) == 0 && j) {
        json_t *h = json_object_get(j, "history"), *u;
        size_t i;
        json_array_foreach(h, i, u) {
            const char *ev = json_string_value(json_object_get(u, "event"));
            const char *st = json_string_value(json_object_get(u, "status"));
            bool status_ok = !s->status ||
                             (s->status == HANDOFF__TASK_STATUS__TASK_READY && st && !strcmp(st, "ready")) ||
                             (s->status == HANDOFF__TASK_STATUS__TASK_REJECTED && st && !strcmp(st, "rejected"));
            if (ev && !strcmp(ev, s->event) && status_ok) {
                snprintf(s->reason, sizeof s->reason, "%s", json_string_value(json_object_get(u, "reason")));
                found = true;
            }
        }
    }
    json_decref(j);
    return found;
}

typedef struct {
    const char *rid;
    json_t *item;
} pending_t;

static bool reviewer_has(void *arg)
{
    pending_t *p = arg;
    json_t *j = NULL;
    if (cli("harbour", &j, "--reviewer", REVIEWER, "review", "list", NULL) != 0 || !j) {
        json_decref(j);
        return false;
    }
    size_t i;
    json_t *it;
    json_array_foreach(j, i, it) {
        if (!strcmp(json_string_value(json_object_get(it, "referral_id")), p->rid)) {
            p->item = json_incref(it);
            break;
        }
    }
    json_decref(j);
    return p->item != NULL;
}

/* Submits an unplaceable referral and waits until it is under review at the reviewer. */
static const char *held_for_review(const char *ref)
{
    const char *rid = submit(unplaceable(ref));
    seen_t s = {.rid = rid, .event = "review"};
    cr_assert(net_wait(referrer_saw, &s, WAIT_MS), "the referrer is told %s is under review (logs in %s)", rid,
              net.dir);
    cr_expect_not_null(strstr(s.reason, "zq_unlisted_code"), "and what was not understood: %s", s.reason);
    pending_t p = {.rid = rid};
    cr_assert(net_wait(reviewer_has, &p, WAIT_MS), "%s reaches the reviewer", rid);
    cr_expect_str_eq(json_string_value(json_object_get(p.item, "state")), "pending");
    cr_expect_str_eq(json_string_value(json_object_get(p.item, "referring_clinic")), "harbour");
    json_decref(p.item);
    return rid;
}

Test(review, unknown_wording_is_held_then_booked_as_the_reviewer_decides)
{
    char rid[32];
    snprintf(rid, sizeof rid, "%s", held_for_review("HB-REV-1"));
    json_t *j = NULL;
    int rc = cli("harbour", &j, "--reviewer", REVIEWER, "review", "decide", rid, "--as", "physio", "--reason",
                 "plantar heel pain on the phone with the referrer", NULL);
    cr_assert_eq(rc, 0, "decide: exit %d (logs in %s)", rc, net.dir);
    cr_expect_eq(json_is_true(json_object_get(j, "refused")), 0);
    json_decref(j);
    seen_t booked = {.rid = rid, .event = "book", .status = HANDOFF__TASK_STATUS__TASK_READY};
    cr_assert(net_wait(referrer_saw, &booked, WAIT_MS), "booked after the decision (logs in %s)", net.dir);

    /* a second decision is refused: the first one stands */
    rc = cli("harbour", &j, "--reviewer", REVIEWER, "review", "decide", rid, "--as", "physician", "--reason",
             "second thoughts", NULL);
    cr_expect_eq(rc, 1, "a second decision is refused (exit %d)", rc);
    cr_expect_not_null(strstr(json_string_value(json_object_get(j, "reason")), "already decided"));
    json_decref(j);
    pending_t p = {.rid = rid};
    cr_assert(reviewer_has(&p));
    cr_expect_str_eq(json_string_value(json_object_get(p.item, "state")), "decided");
    json_decref(p.item);
}

Test(review, the_reviewer_can_send_it_to_a_physician)
{
    char rid[32];
    snprintf(rid, sizeof rid, "%s", held_for_review("HB-REV-2"));
    json_t *j = NULL;
    int rc = cli("harbour", &j, "--reviewer", REVIEWER, "review", "decide", rid, "--as", "physician", "--reason",
                 "night pain reported by phone", NULL);
    cr_assert_eq(rc, 0, "decide: exit %d (logs in %s)", rc, net.dir);
    json_decref(j);
    seen_t s = {.rid = rid, .event = "reject", .status = HANDOFF__TASK_STATUS__TASK_REJECTED};
    cr_assert(net_wait(referrer_saw, &s, WAIT_MS), "the referrer is told to refer to a physician");
    cr_expect_not_null(strstr(s.reason, "physician"), "%s", s.reason);
    cr_expect_not_null(strstr(s.reason, "reviewed by " REVIEWER), "names the reviewer: %s", s.reason);
}

Test(review, only_a_listed_reviewer_may_decide)
{
    char rid[32];
    snprintf(rid, sizeof rid, "%s", held_for_review("HB-REV-3"));
    /* a reviewer session the network does not list */
    json_t *j = NULL;
    int rc = cli("harbour", &j, "--reviewer", "stranger", "review", "decide", rid, "--as", "both", "--reason", "x",
                 NULL);
    cr_expect_eq(rc, 1, "exit %d", rc);
    cr_expect_not_null(strstr(json_string_value(json_object_get(j, "reason")), "not one of this network's reviewers"));
    json_decref(j);
    /* a clinic's session: the broker's policy refuses the message itself */
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "harbour");
    Handoff__ReviewDecision d = HANDOFF__REVIEW_DECISION__INIT;
    d.referral_id = rid;
    d.physician = true;
    d.reason = "a clinic deciding its own referral";
    uint8_t buf[256];
    size_t len = handoff__review_decision__pack(&d, buf);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "scheduling";
    m.type = "handoff.ReviewDecision";
    m.payload = buf;
    m.payload_len = len;
    cr_expect_eq(hx_client_submit(c, &m, 1), HX_EREFUSED);
    cr_expect_eq(hx_client_error_code(c), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    /* and it is still pending */
    pending_t p = {.rid = rid};
    cr_assert(reviewer_has(&p));
    cr_expect_str_eq(json_string_value(json_object_get(p.item, "state")), "pending");
    json_decref(p.item);
}
