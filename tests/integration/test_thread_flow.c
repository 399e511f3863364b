/* Integration: a referral's care thread end to end through the CLI against the real broker,
 * intake, triage and scheduling on 127.0.0.1. The referrer asks a question, the receiving
 * clinic sees it awaiting its reply and replies, both see the whole thread; a clinic not on
 * the referral is refused and never receives a post; a ThreadPost put straight into a mailbox
 * from a clinic's session is refused by the broker's routing policy.
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
    cr_expect_eq(net_stop_all(&net), 0, "a process did not stop cleanly");
}

TestSuite(thread, .init = setup, .fini = teardown, .timeout = 300);

/* `handoff --json ARGS...` as clinic (harness.h); args NULL-terminated. */
#define cli(clinic, out, ...) net_cli_json(&net, (clinic), (out), __VA_ARGS__)

typedef struct {
    const char *rid;
    char receiver[64];
} booked_t;

/* True when harbour's history of rid has the booking; the receiving clinic in receiver. */
static bool referrer_saw_booking(void *arg)
{
    booked_t *b = arg;
    json_t *j = NULL;
    if (cli("harbour", &j, "status", b->rid, NULL) == 0 && j) {
        json_t *h = json_object_get(j, "history"), *u;
        size_t i;
        json_array_foreach(h, i, u) {
            const char *ev = json_string_value(json_object_get(u, "event"));
            json_t *bk = json_array_get(json_object_get(u, "bookings"), 0);
            if (ev && !strcmp(ev, "book") && bk)
                snprintf(b->receiver, sizeof b->receiver, "%s", json_string_value(json_object_get(bk, "clinic_id")));
        }
    }
    json_decref(j);
    return b->receiver[0] != '\0';
}

typedef struct {
    const char *clinic, *rid;
    size_t posts;               /* wanted number of posts */
    int awaiting;               /* wanted awaiting_reply */
    json_t *thread;             /* the last thread read */
} thread_want_t;

static bool thread_is(void *arg)
{
    thread_want_t *w = arg;
    json_decref(w->thread);
    w->thread = NULL;
    if (cli(w->clinic, &w->thread, "thread", w->rid, NULL) != 0 || !w->thread)
        return false;
    return json_array_size(json_object_get(w->thread, "posts")) == w->posts &&
           json_is_true(json_object_get(w->thread, "awaiting_reply")) == w->awaiting;
}

static const char *post_field(json_t *thread, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(thread, "posts"), i), key));
}

/* Submits the ankle sprain sample as harbour and waits until it is booked. */
static void booked(const char *ref, char rid[32], char receiver[64])
{
    static char path[512];
    json_error_t jerr;
    json_t *j = json_load_file(net_src("deploy/sample/referrals/01-ankle-sprain.json"), 0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    json_object_set_new(j, "ref", json_string(ref));
    snprintf(path, sizeof path, "%s/%s.json", net.dir, ref);
    cr_assert_eq(json_dump_file(j, path, 0), 0);
    json_decref(j);
    json_t *out = NULL;
    int rc = cli("harbour", &out, "submit", path, NULL);
    cr_assert_eq(rc, 0, "submit: exit %d (logs in %s)", rc, net.dir);
    snprintf(rid, 32, "%s", json_string_value(json_object_get(json_array_get(out, 0), "referral_id")));
    json_decref(out);
    booked_t b = {.rid = rid};
    cr_assert(net_wait(referrer_saw_booking, &b, WAIT_MS), "%s is booked (logs in %s)", rid, net.dir);
    cr_assert_str_neq(b.receiver, "harbour");
    snprintf(receiver, 64, "%s", b.receiver);
}

Test(thread, a_question_awaits_the_reply_and_both_see_the_thread)
{
    char rid[32], rx[64];
    booked("HB-THR-1", rid, rx);
    json_t *j = NULL;
    int rc = cli("harbour", &j, "note", rid, "Any swelling after the first session?", "--ask", NULL);
    cr_assert_eq(rc, 0, "note --ask: exit %d (logs in %s)", rc, net.dir);
    cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "question");
    cr_expect_str_eq(json_string_value(json_object_get(j, "by")), "harbour");
    cr_expect(json_is_true(json_object_get(j, "awaiting_reply")));
    json_decref(j);

    thread_want_t w = {.clinic = rx, .rid = rid, .posts = 1, .awaiting = 1};
    cr_assert(net_wait(thread_is, &w, WAIT_MS), "the receiver %s sees the question awaiting its reply", rx);
    cr_expect_str_eq(json_string_value(json_object_get(w.thread, "asked_by")), "harbour");
    cr_expect_str_eq(post_field(w.thread, 0, "text"), "Any swelling after the first session?");
    json_decref(w.thread);

    rc = cli(rx, &j, "reply", rid, "None; range of motion is improving.", NULL);
    cr_assert_eq(rc, 0, "reply: exit %d (logs in %s)", rc, net.dir);
    cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "reply");
    cr_expect_not(json_is_true(json_object_get(j, "awaiting_reply")));
    json_decref(j);

    const char *both[] = {"harbour", rx};
    for (size_t i = 0; i < 2; i++) {
        thread_want_t t = {.clinic = both[i], .rid = rid, .posts = 2, .awaiting = 0};
        cr_assert(net_wait(thread_is, &t, WAIT_MS), "%s sees the question and the reply", both[i]);
        cr_expect_str_eq(post_field(t.thread, 0, "kind"), "question");
        cr_expect_str_eq(post_field(t.thread, 0, "by"), "harbour");
        cr_expect_str_eq(post_field(t.thread, 1, "kind"), "reply");
        cr_expect_str_eq(post_field(t.thread, 1, "by"), rx);
        json_decref(t.thread);
    }

    /* the receiver completes with a summary, which reaches the referrer on the thread */
    const char *steps[] = {"accept", "start"};
    for (size_t i = 0; i < 2; i++) {
        rc = cli(rx, &j, steps[i], rid, NULL);
        cr_assert_eq(rc, 0, "%s: exit %d (logs in %s)", steps[i], rc, net.dir);
        json_decref(j);
    }
    rc = cli(rx, &j, "complete", rid, "--summary", "Discharged: full range, home program.", NULL);
    cr_assert_eq(rc, 0, "complete --summary: exit %d (logs in %s)", rc, net.dir);
    cr_expect_str_eq(json_string_value(json_object_get(j, "status")), "completed");
    json_decref(j);
    thread_want_t t = {.clinic = "harbour", .rid = rid, .posts = 3, .awaiting = 0};
    cr_assert(net_wait(thread_is, &t, WAIT_MS), "the referrer reads the summary");
    cr_expect_str_eq(post_field(t.thread, 2, "kind"), "summary");
    cr_expect_str_eq(post_field(t.thread, 2, "by"), rx);
    cr_expect_str_eq(post_field(t.thread, 2, "text"), "Discharged: full range, home program.");
    json_decref(t.thread);
}

Test(thread, a_clinic_not_on_the_referral_is_refused_and_reads_nothing)
{
    char rid[32], rx[64];
    booked("HB-THR-2", rid, rx);
    const char *stranger = strcmp(rx, "eastgate") != 0 ? "eastgate" : "laurier";
    json_t *j = NULL;
    int rc = cli("harbour", &j, "note", rid, "Referral letter follows by fax.", NULL);
    cr_assert_eq(rc, 0, "note: exit %d (logs in %s)", rc, net.dir);
    json_decref(j);
    rc = cli(stranger, &j, "note", rid, "Let me in", NULL);
    cr_expect_eq(rc, 1, "a clinic not on the referral is refused (exit %d)", rc);
    cr_expect(json_is_true(json_object_get(j, "refused")));
    cr_expect_not_null(strstr(json_string_value(json_object_get(j, "reason")), "neither the referring clinic"),
                       "%s", json_string_value(json_object_get(j, "reason")));
    json_decref(j);
    /* the receiver has the referrer's note; the stranger has nothing */
    thread_want_t w = {.clinic = rx, .rid = rid, .posts = 1, .awaiting = 0};
    cr_assert(net_wait(thread_is, &w, WAIT_MS), "the receiver sees the note");
    json_decref(w.thread);
    thread_want_t s = {.clinic = stranger, .rid = rid, .posts = 0, .awaiting = 0};
    cr_expect(thread_is(&s), "the stranger reads nothing");
    json_decref(s.thread);
    /* text limits are checked before anything is sent */
    rc = cli("harbour", &j, "note", rid, "", NULL);
    cr_expect_eq(rc, 2, "an empty note: exit %d", rc);
    json_decref(j);
}

Test(thread, a_forged_post_into_a_mailbox_is_refused_by_the_broker)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "eastgate");
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = "R-0A1B2C3D4E5F6G7H";
    p.kind = "note";
    p.text = "from scheduling, honest";
    p.by = "harbour";
    uint8_t buf[256];
    size_t len = handoff__thread_post__pack(&p, buf);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_MAILBOX;
    m.to = "lakeside";
    m.type = "handoff.ThreadPost";
    m.payload = buf;
    m.payload_len = len;
    cr_expect_eq(hx_client_submit(c, &m, 1), HX_EREFUSED);
    cr_expect_eq(hx_client_error_code(c), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "%s", hx_client_error(c));
    hx_client_destroy(&c);
}

/* ---- the audit log: every post, taken or refused, by ids and never by its text ---------- */

static void setup_audited(void)
{
    net_init(&net);
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
    net_start_front(&net);
    char audit[512];
    snprintf(audit, sizeof audit, "%s/scheduling-audit.jsonl", net.dir);
    const char *sched[] = {"--audit", audit, NULL};
    net_start_scheduling(&net, "scheduling", START, NULL, sched);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

Test(thread_audit, every_post_is_audited_without_its_text, .init = setup_audited, .fini = teardown, .timeout = 300)
{
    char rid[32], rx[64], audit[512], who[256];
    snprintf(audit, sizeof audit, "%s/scheduling-audit.jsonl", net.dir);
    booked("HB-THR-3", rid, rx);
    const char *stranger = strcmp(rx, "eastgate") != 0 ? "eastgate" : "laurier";
    json_t *j = NULL;
    cr_assert_eq(cli("harbour", &j, "note", rid, "SECRET-WORDS-1 about the patient", "--ask", NULL), 0);
    json_decref(j);
    cr_expect_eq(cli(stranger, &j, "note", rid, "SECRET-WORDS-2 from a stranger", NULL), 1);
    json_decref(j);
    snprintf(who, sizeof who, "\"principal\":\"clinic:harbour\",\"action\":\"referral.thread\",\"id\":\"%s\"", rid);
    cr_expect(file_contains(audit, who), "the post is audited");
    cr_expect(file_contains(audit, "(question); awaiting reply"));
    snprintf(who, sizeof who, "\"principal\":\"clinic:%s\",\"action\":\"referral.thread\",\"id\":\"%s\"", stranger,
             rid);
    cr_expect(file_contains(audit, who), "the refused post is audited");
    cr_expect(file_contains(audit, "refused: clinic "));
    cr_expect_not(file_contains(audit, "SECRET-WORDS"), "no post's text is in the audit log");
    static char out[4096];
    const char *verify[] = {"audit", "verify", audit, NULL};
    cr_expect_eq(net_cli(&net, "unused", out, sizeof out, verify), 0, "%s", out);
}
