/* Integration: the collaborative story of `make demo` (deploy/sample/stories/07-post-surgical-
 * knee.json) against the real broker, intake, triage and scheduling on 127.0.0.1. Played step
 * by step through the CLI, asserting after every step each handoff's status and the derived
 * referral status as the referrer sees it (`status ID`: the latest update and its handoffs),
 * each receiving clinic's own row in its inbox, and the care thread (the question awaiting a
 * reply until it is answered, the summaries reaching the referrer); the decline of massage
 * never changes the physiotherapy handoff. Then the same story by `handoff play`, and every
 * story handoff-gen writes for a small generated network played to its end.
 *
 * Every wait is a condition polled with a deadline (net_wait); nothing sleeps in its place. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define START "2026-11-23T08:00"       /* a Monday */
#define WAIT_MS 60000
#define STORY "deploy/sample/stories/07-post-surgical-knee.json"
#define REFERRAL "deploy/sample/referrals/07-post-surgical-knee.json"
#define PT "physiotherapy"
#define RMT "massage_therapy"

static net_t net;

static void setup(void)
{
    net_init(&net);
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
}

static void teardown(void)
{
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(story, .init = setup, .fini = teardown, .timeout = 600);

#define cli(clinic, out, ...) net_cli_json(&net, (clinic), (out), __VA_ARGS__)

#define jstr(o, key) net_jstr((o), (key))

/* The referrer's history of rid (NULL when it has none yet). */
static json_t *history(const char *clinic, const char *rid)
{
    json_t *j = NULL;
    if (cli(clinic, &j, "status", rid, NULL) != 0) {
        json_decref(j);
        return NULL;
    }
    json_t *h = json_incref(json_object_get(j, "history"));
    json_decref(j);
    return h;
}

static json_t *handoff_of(json_t *update, const char *d)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(update, "handoffs"), i, v) if (!strcmp(jstr(v, "discipline"), d)) return v;
    return NULL;
}

/* The referral's status and each handoff's ("referral/pt/rmt") in update. */
static void triple(json_t *update, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/%s", jstr(update, "status"), jstr(handoff_of(update, PT), "status"),
             jstr(handoff_of(update, RMT), "status"));
}

typedef struct {
    const char *clinic, *rid, *want;     /* want: "referral/pt/rmt" of the latest update */
    char got[128];
} view_q_t;

static bool referrer_sees(void *arg)
{
    view_q_t *q = arg;
    json_t *h = history(q->clinic, q->rid);
    q->got[0] = '\0';
    if (h && json_array_size(h))
        triple(json_array_get(h, json_array_size(h) - 1), q->got, sizeof q->got);
    json_decref(h);
    return strcmp(q->got, q->want) == 0;
}

/* clinic's own (received) row of rid and discipline d in its inbox: "group/status". */
static void inbox_row(const char *clinic, const char *rid, const char *d, char *out, size_t cap)
{
    json_t *in = NULL;
    out[0] = '\0';
    cr_assert_eq(cli(clinic, &in, "inbox", NULL), 0, "inbox of %s", clinic);
    net_inbox_row(in, rid, d, out, cap);
    json_decref(in);
}

typedef struct {
    const char *clinic, *rid;
    size_t posts;
    int awaiting;
    json_t *thread;
} thread_q_t;

static bool thread_is(void *arg)
{
    thread_q_t *q = arg;
    json_decref(q->thread);
    q->thread = NULL;
    if (cli(q->clinic, &q->thread, "thread", q->rid, NULL) != 0 || !q->thread)
        return false;
    return json_array_size(json_object_get(q->thread, "posts")) == q->posts &&
           json_is_true(json_object_get(q->thread, "awaiting_reply")) == q->awaiting;
}

/* The referrer's thread has n posts and awaits a reply (or not); returns it (decref it). */
static json_t *expect_thread(const char *clinic, const char *rid, size_t n, int awaiting, const char *step)
{
    thread_q_t q = {clinic, rid, n, awaiting, NULL};
    cr_assert(net_wait(thread_is, &q, WAIT_MS), "%s: %s's thread has %zu post(s)%s (logs in %s)", step, clinic, n,
              awaiting ? ", awaiting a reply" : "", net.dir);
    return q.thread;
}

static bool has_post(json_t *thread, const char *kind, const char *by, const char *text)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(thread, "posts"), i, p) if (!strcmp(jstr(p, "kind"), kind) &&
                                                                    !strcmp(jstr(p, "by"), by) &&
                                                                    !strcmp(jstr(p, "text"), text)) return true;
    return false;
}

/* Submits the sample referral as its referring clinic; returns its id. */
static const char *submit_sample(const char *clinic, const char *file)
{
    static char rid[32];
    json_t *out = NULL;
    int rc = cli(clinic, &out, "submit", net_src(file), NULL);
    cr_assert_eq(rc, 0, "submit %s: exit %d (logs in %s)", file, rc, net.dir);
    snprintf(rid, sizeof rid, "%s", jstr(json_array_get(out, 0), "referral_id"));
    json_decref(out);
    return rid;
}

static json_t *story_steps(void)
{
    json_error_t jerr;
    json_t *s = json_load_file(net_src(STORY), 0, &jerr);
    cr_assert_not_null(s, "%s: %s", STORY, jerr.text);
    return s;
}

/* What the story's steps lead to, after each one. */
static const struct {
    const char *view;           /* referral/physiotherapy/massage as the referrer sees them */
    size_t posts;               /* on the referrer's thread */
    int awaiting;
    const char *pt_row, *rmt_row;   /* each receiving clinic's own row in its inbox */
} want[] = {
    {"accepted/accepted/ready", 0, 0, "booked/accepted", "new/ready"},
    {"in-progress/in-progress/ready", 0, 0, "booked/in-progress", "new/ready"},
    {"in-progress/in-progress/ready", 0, 0, "booked/in-progress", "new/ready"},    /* massage booked again */
    {"in-progress/in-progress/accepted", 0, 0, "booked/in-progress", "booked/accepted"},
    {"in-progress/in-progress/accepted", 1, 1, "booked/in-progress", "booked/accepted"},
    {"in-progress/in-progress/accepted", 2, 0, "booked/in-progress", "booked/accepted"},
    {"in-progress/in-progress/in-progress", 2, 0, "booked/in-progress", "booked/in-progress"},
    {"in-progress/in-progress/in-progress", 3, 0, "booked/in-progress", "booked/in-progress"},
    {"in-progress/completed/in-progress", 4, 0, "booked/completed", "booked/in-progress"},
    {"completed/completed/completed", 5, 0, "booked/completed", "booked/completed"},
};

/* The clinic holding discipline d's handoff now, as the referrer sees it. */
static void holder(const char *referrer, const char *rid, const char *d, char *out, size_t cap)
{
    json_t *h = history(referrer, rid);
    snprintf(out, cap, "%s", jstr(handoff_of(json_array_get(h, json_array_size(h) - 1), d), "clinic_id"));
    json_decref(h);
    cr_assert(out[0], "%s has no clinic for %s of %s", referrer, d, rid);
}

/* Runs one step of the story as the command its clinic would type; returns the answer. */
static json_t *run_step(json_t *st, const char *clinic, const char *rid)
{
    const char *actor = jstr(st, "actor"), *action = jstr(st, "action");
    json_t *j = NULL;
    int rc;
    if (!strcmp(action, "decline"))
        rc = cli(clinic, &j, action, rid, "--discipline", actor, "--reason", jstr(st, "reason"), NULL);
    else if (!strcmp(action, "complete"))
        rc = cli(clinic, &j, action, rid, "--discipline", actor, "--summary", jstr(st, "summary"), NULL);
    else if (!strcmp(action, "question"))
        rc = cli(clinic, &j, "note", rid, jstr(st, "text"), "--ask", NULL);
    else if (!strcmp(action, "note") || !strcmp(action, "reply"))
        rc = cli(clinic, &j, action, rid, jstr(st, "text"), NULL);
    else
        rc = cli(clinic, &j, action, rid, "--discipline", actor, NULL);
    cr_assert_eq(rc, 0, "%s %s as %s: exit %d (logs in %s)", actor, action, clinic, rc, net.dir);
    return j;
}

/* After a decline: the referrer's update for it (physiotherapy untouched, massage being
 * booked again), then massage booked again with another therapist. */
static void expect_rebooked(const char *rid, size_t before, const char *declined_by, const char *therapist)
{
    view_q_t q = {"northpoint", rid, "in-progress/in-progress/ready", ""};
    cr_assert(net_wait(referrer_sees, &q, WAIT_MS), "massage booked again: northpoint sees %s (logs in %s)", q.got,
              net.dir);
    json_t *h = history("northpoint", rid), *dec = json_array_get(h, before);
    char t[128];
    triple(dec, t, sizeof t);
    cr_expect_str_eq(jstr(dec, "event"), "decline");
    cr_expect_str_eq(t, "in-progress/in-progress/received", "the decline of massage never changes physiotherapy");
    json_t *rb = handoff_of(json_array_get(h, json_array_size(h) - 1), RMT);
    cr_expect_str_neq(jstr(rb, "therapist_id"), therapist, "never booked again with the therapist who declined");
    if (strcmp(jstr(rb, "clinic_id"), declined_by) != 0) {
        char row[64];
        inbox_row(declined_by, rid, RMT, row, sizeof row);
        cr_expect_str_eq(row, "declined/declined", "the clinic that declined massage");
    }
    json_decref(h);
}

/* Physiotherapy stays in progress in every update from its start to its completion. */
static void expect_physio_untouched(const char *rid)
{
    json_t *h = history("northpoint", rid), *u;
    size_t i, in_care = 0;
    bool started = false;
    json_array_foreach(h, i, u) {
        const char *pt = jstr(handoff_of(u, PT), "status");
        if (!strcmp(pt, "completed"))
            break;
        started |= !strcmp(pt, "in-progress");
        if (started) {
            cr_expect_str_eq(pt, "in-progress", "update %zu (%s): physiotherapy is %s", i, jstr(u, "event"), pt);
            in_care++;
        }
    }
    cr_expect_geq(in_care, 5, "physiotherapy in progress through its start, massage's decline, booking, "
                              "acceptance and start (%zu updates)", in_care);
    json_decref(h);
}

static void expect_after(size_t i, const char *rid, const char *pt, const char *rmt)
{
    char step[32], row[64];
    snprintf(step, sizeof step, "after step %zu", i + 1);
    view_q_t q = {"northpoint", rid, want[i].view, ""};
    cr_assert(net_wait(referrer_sees, &q, WAIT_MS), "%s: northpoint sees %s, expected %s (logs in %s)", step, q.got,
              want[i].view, net.dir);
    inbox_row(pt, rid, PT, row, sizeof row);
    cr_expect_str_eq(row, want[i].pt_row, "%s: the physiotherapy clinic %s's inbox", step, pt);
    inbox_row(rmt, rid, RMT, row, sizeof row);
    cr_expect_str_eq(row, want[i].rmt_row, "%s: the massage clinic %s's inbox", step, rmt);
    json_decref(expect_thread("northpoint", rid, want[i].posts, want[i].awaiting, step));
}

Test(story, the_demo_story_step_by_step)
{
    net_start_services(&net, START);
    const char *rid = submit_sample("northpoint", REFERRAL);
    view_q_t booked = {"northpoint", rid, "ready/ready/ready", ""};
    cr_assert(net_wait(referrer_sees, &booked, WAIT_MS), "booked: northpoint sees %s (logs in %s)", booked.got,
              net.dir);
    json_t *story = story_steps(), *steps = json_object_get(story, "steps");
    cr_assert_eq(json_array_size(steps), sizeof want / sizeof *want, "the demo's story has %zu steps",
                 json_array_size(steps));
    char pt[32], rmt[32], therapist[64];
    holder("northpoint", rid, PT, pt, sizeof pt);
    for (size_t i = 0; i < json_array_size(steps); i++) {
        json_t *st = json_array_get(steps, i), *h = history("northpoint", rid);
        const size_t before = json_array_size(h);
        const char *actor = jstr(st, "actor"), *action = jstr(st, "action");
        holder("northpoint", rid, RMT, rmt, sizeof rmt);
        snprintf(therapist, sizeof therapist, "%s",
                 jstr(handoff_of(json_array_get(h, before - 1), RMT), "therapist_id"));
        json_decref(h);
        const char *clinic = !strcmp(actor, PT) ? pt : !strcmp(actor, RMT) ? rmt : "northpoint";
        if (!strcmp(action, "reply")) {         /* the massage clinic sees the question awaiting its reply */
            json_t *t = expect_thread(clinic, rid, 1, 1, "before the reply");
            cr_expect_str_eq(jstr(t, "asked_by"), pt, "the physiotherapy clinic asked");
            json_decref(t);
        }
        json_decref(run_step(st, clinic, rid));
        if (!strcmp(action, "decline")) {
            expect_rebooked(rid, before, rmt, therapist);
            holder("northpoint", rid, RMT, rmt, sizeof rmt);
        }
        expect_after(i, rid, pt, rmt);
        if (!strcmp(action, "complete")) {      /* the summary reaches the referrer on its thread */
            json_t *t = expect_thread("northpoint", rid, want[i].posts, 0, "summary");
            cr_expect(has_post(t, "summary", clinic, jstr(st, "summary")), "%s's summary on northpoint's thread",
                      clinic);
            json_decref(t);
        }
    }
    expect_physio_untouched(rid);
    json_decref(story);
}

Test(story, handoff_play_plays_the_demo_story)
{
    net_start_services(&net, START);
    const char *rid = submit_sample("northpoint", REFERRAL);
    static char out[1 << 16];
    const char *args[] = {"play", net_src(STORY), NULL};
    int rc = net_cli(&net, "northpoint", out, sizeof out, args);
    cr_assert_eq(rc, 0, "handoff play: exit %d (logs in %s):\n%s", rc, net.dir, out);
    cr_expect(strstr(out, "-- step 10 of 10: massage_therapy completes with a summary"), "%s", out);
    cr_expect(strstr(out, "$ handoff --clinic "), "each step shows its command");
    view_q_t q = {"northpoint", rid, "completed/completed/completed", ""};
    cr_expect(referrer_sees(&q), "northpoint sees %s", q.got);
    json_decref(expect_thread("northpoint", rid, 5, 0, "played"));
    expect_physio_untouched(rid);

    /* a step the story cannot take now is refused, naming it */
    const char *again[] = {"play", net_src(STORY), "1", NULL};
    rc = net_cli(&net, "northpoint", out, sizeof out, again);
    cr_expect_eq(rc, 1, "accepting a completed handoff: exit %d", rc);
}

/* ---- handoff-gen's stories: each one plays to its end ----------------------------------- */

/* What the CLI wrote to stderr (dir/cli.log) from byte `from` on, into out. */
static void cli_log_since(long from, char *out, size_t cap)
{
    char path[600];
    snprintf(path, sizeof path, "%s/cli.log", net.dir);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fseek(f, from, SEEK_SET) == 0) {
        size_t n = fread(out, 1, cap - 1, f);
        out[n] = '\0';
    }
    fclose(f);
}

static long cli_log_size(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/cli.log", net.dir);
    FILE *f = fopen(path, "r");
    long n = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    if (f)
        fclose(f);
    return n;
}

Test(story, every_story_handoff_gen_writes_plays_to_the_end)
{
    char gen[512], dir_json[600], rules[600], db[600], intake_db[600];
    snprintf(gen, sizeof gen, "%s/gen", net.dir);
    snprintf(rules, sizeof rules, "%s", net_src("services/triage/rules.json"));
    /* Small clinics (two therapists on average): the generated patients have postal codes, and
     * scheduling books both handoffs of one near them, at one clinic when it has both
     * disciplines, where a question has no other clinic to answer it. */
    const char *gen_argv[] = {net_bin("services/gen/handoff-gen"), "--clinics", "20", "--therapists", "40",
                              "--referrals", "60", "--seed", "16", "--rules", rules, "--out", gen, NULL};
    pid_t g = net_spawn(&net, "gen", gen_argv);
    int st = net_stop(&net, g, 0);
    cr_assert(st == 0, "handoff-gen failed (status %d; log in %s)", st, net.dir);
    snprintf(dir_json, sizeof dir_json, "%s/directory.json", gen);
    snprintf(db, sizeof db, "%s/scheduling.db", net.dir);
    snprintf(intake_db, sizeof intake_db, "%s/intake.db", net.dir);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", intake_db, NULL};
    const char *triage[] = {net_bin("services/triage/handoff-triage"), "--broker", net.endpoint, "--rules", rules, NULL};
    const char *sched[] = {net_bin("services/scheduling/handoff-scheduling"), "--broker", net.endpoint, "--directory",
                           dir_json, "--start", START, "--db", db, NULL};
    net_spawn(&net, "intake", intake);
    net_spawn(&net, "triage", triage);
    net_spawn(&net, "scheduling", sched);

    size_t played = 0, stopped = 0;
    static char out[1 << 16];
    for (int i = 1; i <= 60; i++) {
        char story[700], ref[700];
        snprintf(story, sizeof story, "%s/stories/%06d.json", gen, i);
        if (!net_file_exists(story))
            continue;
        snprintf(ref, sizeof ref, "%s/referrals/%06d.json", gen, i);
        json_error_t jerr;
        json_t *s = json_load_file(story, 0, &jerr);
        cr_assert_not_null(s, "%s: %s", story, jerr.text);
        const char *clinic = jstr(json_object_get(s, "referral"), "clinic");
        json_t *o = NULL;
        cr_assert_eq(cli(clinic, &o, "submit", ref, NULL), 0, "submit %s as %s", ref, clinic);
        json_decref(o);
        const char *args[] = {"play", story, NULL};
        long mark = cli_log_size();
        int rc = net_cli(&net, clinic, out, sizeof out, args);
        static char err[1 << 14];
        cli_log_since(mark, err, sizeof err);
        /* Two things outside a story can stop it, and the player names them: no slot for a
         * handoff in this small network (on-hold), and the two actors of a question and its
         * reply being one clinic here (it cannot answer itself). Anything else is a failure. */
        bool outside = rc == 1 && (strstr(err, " is on-hold") || strstr(err, "asked by this same clinic"));
        cr_expect(rc == 0 || outside, "%s plays to its end: exit %d (logs in %s):\n%s\n%s", story, rc, net.dir, out,
                  err);
        played += rc == 0;
        stopped += outside;
        json_decref(s);
    }
    cr_expect_geq(played, 4, "generated stories play to their end (%zu played, %zu stopped by the network)", played,
                  stopped);
}
