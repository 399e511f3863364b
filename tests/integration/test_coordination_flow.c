/* Integration: coordination between the clinics of a referral, end to end through the clinic
 * CLI (`handoff --json ...`) against the real broker, intake, triage and scheduling on
 * 127.0.0.1. A receiving clinic redirects its handoff to another clinic or to a named
 * therapist (its own handoff ends, the new clinic's inbox has it, the other handoff is
 * untouched, the referral's status derived after each step); a redirect the directory or the
 * calendar does not allow, or asked by a clinic that does not hold the handoff, is refused
 * and changes nothing. A treating physiotherapy clinic asks for massage therapy to be added:
 * triage checks the referral, scheduling books massage within the collaborative window after
 * the physiotherapy booking; refused for a referral whose findings contraindicate massage, when
 * no slot fits, and when the asking clinic does not hold the physiotherapy handoff.
 *
 * Every wait is a condition polled with a deadline (net_wait). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define START "2026-11-23T08:00"       /* a Monday */
#define WAIT_MS 60000
#define PT "physiotherapy"
#define RMT "massage_therapy"

static net_t net;

static void setup(void)
{
    net_init(&net);
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
    net_start_front(&net);
    const char *sched[] = {"--collab-days", "3", NULL};
    net_start_scheduling(&net, "scheduling", START, NULL, sched);
}

static void teardown(void)
{
    int bad = net_stop_all(&net);
    net_fini_verdict(bad, net.dir);
}

TestSuite(coordination, .init = setup, .fini = teardown, .timeout = 300);

/* ---- the CLI ---------------------------------------------------------------------------- */

#define jstr(o, key) net_jstr((o), (key))

/* `handoff --json ARGS` as clinic (NULL-terminated), expecting exit `expect`; the answer as
 * JSON (json_null() when it printed none, e.g. a usage error). */
#define CLI(expect, clinic, ...) cli_json((expect), (clinic), __VA_ARGS__, NULL)
static json_t *cli_json(int expect, const char *clinic, ...)
{
    static char buf[1 << 20];
    const char *args[24] = {"--json", "--timeout-ms", "10000"};
    size_t k = 3;
    va_list ap;
    va_start(ap, clinic);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        cr_assert_lt(k, 23, "too many arguments");
        args[k++] = a;
    }
    va_end(ap);
    args[k] = NULL;
    int rc = net_cli(&net, clinic, buf, sizeof buf, args);
    cr_assert_eq(rc, expect, "handoff %s %s (as %s): exit %d, expected %d: %.600s (logs in %s)", args[3],
                 k > 4 ? args[4] : "", clinic, rc, expect, buf, net.dir);
    json_error_t jerr;
    json_t *j = json_loads(buf, 0, &jerr);
    return j ? j : json_null();
}

/* A copy of a sample referral referred by northpoint with its own ref, preferences and
 * findings (NULL: as in the sample); its path. */
static const char *referral_file(const char *sample, const char *ref, json_t *prefs, json_t *findings)
{
    static char paths[4][512];
    static int k;
    char *path = paths[k++ % 4], src[512];
    snprintf(src, sizeof src, "deploy/sample/referrals/%s", sample);
    json_error_t jerr;
    json_t *j = json_load_file(net_src(src), 0, &jerr);
    cr_assert_not_null(j, "%s: %s", sample, jerr.text);
    json_object_set_new(j, "ref", json_string(ref));
    json_object_set_new(json_object_get(j, "referrer"), "clinic_id", json_string("northpoint"));
    if (prefs)
        json_object_set_new(j, "preferences", prefs);
    if (findings)
        json_object_set_new(j, "findings", findings);
    snprintf(path, sizeof paths[0], "%s/%s.json", net.dir, ref);
    cr_assert_eq(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
    return path;
}

/* The referral's history at northpoint (a JSON array, maybe empty). */
static json_t *history(const char *rid)
{
    json_t *j = NULL;
    int rc = net_cli_json(&net, "northpoint", &j, "status", rid, NULL);
    json_t *h = rc == 0 ? json_incref(json_object_get(j, "history")) : json_array();
    json_decref(j);
    return h;
}

static json_t *last(json_t *hist)
{
    size_t n = json_array_size(hist);
    return n ? json_array_get(hist, n - 1) : NULL;
}

static json_t *handoff_of(json_t *update, const char *d)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(update, "handoffs"), i, v) {
        if (strcmp(jstr(v, "discipline"), d) == 0)
            return v;
    }
    return NULL;
}

typedef struct {
    const char *rid, *event;
    size_t after;               /* more entries than this */
} hist_q_t;

static bool hist_reached(void *arg)
{
    const hist_q_t *q = arg;
    json_t *h = history(q->rid);
    bool ok = json_array_size(h) > q->after && (!q->event || !strcmp(jstr(last(h), "event"), q->event)) &&
              strcmp(jstr(last(h), "status"), "received") != 0 && strcmp(jstr(last(h), "status"), "requested") != 0;
    json_decref(h);
    return ok;
}

/* Submits a referral as northpoint and waits until it is booked (ready); its id. */
static const char *booked(const char *file, size_t n_handoffs)
{
    static char ids[4][32];
    static int k;
    char *id = ids[k++ % 4];
    json_t *j = CLI(0, "northpoint", "submit", file);
    snprintf(id, sizeof ids[0], "%s", jstr(json_array_get(j, 0), "referral_id"));
    json_decref(j);
    hist_q_t q = {id, "book", 0};
    cr_assert(net_wait(hist_reached, &q, WAIT_MS), "%s was not booked (logs in %s)", id, net.dir);
    json_t *h = history(id);
    cr_assert_str_eq(jstr(last(h), "status"), "ready", "%s: %s", id, jstr(last(h), "reason"));
    cr_assert_eq(json_array_size(json_object_get(last(h), "handoffs")), n_handoffs);
    json_decref(h);
    return id;
}

/* Asserts the referrer's latest update: its event, the referral's status and each handoff's
 * "status@clinic/therapist" ("" when there is no such handoff). */
static void expect_referrer(const char *step, const char *rid, const char *event, const char *status,
                            const char *pt, const char *rmt)
{
    json_t *h = history(rid), *l = last(h);
    cr_expect_str_eq(jstr(l, "event"), event, "%s: event %s (%s)", step, jstr(l, "event"), jstr(l, "reason"));
    cr_expect_str_eq(jstr(l, "status"), status, "%s: the referral is %s (%s)", step, jstr(l, "status"),
                     jstr(l, "reason"));
    const char *want[2] = {pt, rmt}, *d[2] = {PT, RMT};
    for (int i = 0; i < 2; i++) {
        json_t *x = handoff_of(l, d[i]);
        char got[128] = "";
        if (x)
            snprintf(got, sizeof got, "%s@%s/%s", jstr(x, "status"), jstr(x, "clinic_id"), jstr(x, "therapist_id"));
        cr_expect_str_eq(got, want[i], "%s: %s is %s, expected %s", step, d[i], got, want[i]);
    }
    json_decref(h);
}

/* clinic's own row of rid and discipline d in its inbox: "group/status" ("" when none). */
static void inbox_row(const char *clinic, const char *rid, const char *d, char *out, size_t cap)
{
    json_t *in = CLI(0, clinic, "inbox");
    out[0] = '\0';
    net_inbox_row(in, rid, d, out, cap);
    json_decref(in);
}

typedef struct {
    const char *clinic, *rid, *d, *want;
} row_q_t;

static bool row_is(void *arg)
{
    const row_q_t *q = arg;
    char row[96];
    inbox_row(q->clinic, q->rid, q->d, row, sizeof row);
    return strcmp(row, q->want) == 0;
}

static void wait_row(const char *clinic, const char *rid, const char *d, const char *want)
{
    row_q_t q = {clinic, rid, d, want};
    char row[96];
    bool ok = net_wait(row_is, &q, WAIT_MS);
    inbox_row(clinic, rid, d, row, sizeof row);
    cr_expect(ok, "%s's inbox: %s of %s is '%s', expected '%s'", clinic, d, rid, row, want);
}

/* The collaborative sample (chronic low back pain) preferring laurier then lakeside, no
 * language or availability: physiotherapy with Lucas at lakeside Monday 08:00, massage with
 * Priya at harbour at 09:00. */
static const char *collab(const char *ref, const char *priority)
{
    const char *file = referral_file("08-chronic-low-back-pain.json", ref,
                                     json_pack("{s:[s,s]}", "clinic_ids", "laurier", "lakeside"), NULL);
    if (priority) {
        json_error_t jerr;
        json_t *j = json_load_file(file, 0, &jerr);
        json_object_set_new(j, "priority", json_string(priority));
        cr_assert_eq(json_dump_file(j, file, JSON_INDENT(2)), 0);
        json_decref(j);
    }
    const char *rid = booked(file, 2);
    expect_referrer("booked", rid, "book", "ready", "ready@lakeside/t-lucas", "ready@harbour/t-priya");
    wait_row("lakeside", rid, PT, "new/ready");
    wait_row("harbour", rid, RMT, "new/ready");
    return rid;
}

/* ---- redirect ------------------------------------------------------------------------- */

Test(coordination, redirect_to_another_clinic_then_to_a_named_therapist)
{
    const char *rid = collab("NP-COORD-1", NULL);
    json_decref(CLI(0, "lakeside", "accept", rid, "--discipline", PT));
    expect_referrer("physiotherapy accepted", rid, "accept", "accepted", "accepted@lakeside/t-lucas",
                    "ready@harbour/t-priya");

    /* harbour hands massage to riverdale (Toronto: within --collab-km of the physiotherapy): its own handoff ends, riverdale's inbox has it */
    json_t *a = CLI(0, "harbour", "redirect", rid, "--to", "riverdale", "--reason", "patient lives near riverdale");
    json_t *own = handoff_of(a, RMT);
    cr_expect_str_eq(jstr(own, "status"), "cancelled", "harbour's handoff ends: %s", jstr(a, "reason"));
    cr_expect_str_eq(jstr(own, "event"), "redirect");
    cr_expect_str_eq(jstr(own, "clinic_id"), "harbour");
    cr_expect(strstr(jstr(a, "reason"), "patient lives near riverdale"), "%s", jstr(a, "reason"));
    json_decref(a);
    expect_referrer("massage redirected", rid, "redirect", "accepted", "accepted@lakeside/t-lucas",
                    "ready@riverdale/t-omar");
    wait_row("riverdale", rid, RMT, "new/ready");
    wait_row("harbour", rid, RMT, "declined/redirected");
    wait_row("lakeside", rid, PT, "booked/accepted");

    /* lakeside hands its accepted physiotherapy to Daniel at northpoint: ready again there */
    a = CLI(0, "lakeside", "redirect", rid, "--to", "northpoint/t-daniel", "--reason", "Daniel sees spines");
    cr_expect_str_eq(jstr(handoff_of(a, PT), "status"), "cancelled", "%s", jstr(a, "reason"));
    json_decref(a);
    expect_referrer("physiotherapy redirected", rid, "redirect", "ready", "ready@northpoint/t-daniel",
                    "ready@riverdale/t-omar");
    wait_row("northpoint", rid, PT, "new/ready");
    wait_row("lakeside", rid, PT, "declined/redirected");

    /* the new receivers act on their handoffs; the old ones no longer can */
    json_decref(CLI(0, "riverdale", "accept", rid));
    a = CLI(1, "harbour", "accept", rid);
    cr_expect(strstr(jstr(a, "reason"), "does not hold it"), "%s", jstr(a, "reason"));
    json_decref(a);
    expect_referrer("massage accepted at riverdale", rid, "accept", "accepted", "ready@northpoint/t-daniel",
                    "accepted@riverdale/t-omar");
}

Test(coordination, a_refused_redirect_leaves_the_handoff_where_it_was)
{
    const char *rid = collab("NP-COORD-2", "stat");
    json_t *h = history(rid);
    size_t before = json_array_size(h);
    json_decref(h);
    static const struct {
        const char *clinic, *to, *want;
    } refused[] = {
        {"harbour", "northpoint/t-amira", "to_therapist: t-amira (Amira Haddad) practises physiotherapy, not "
                                          "massage_therapy"},
        {"harbour", "eastgate/t-nobody", "to_therapist: no therapist 't-nobody' in the directory"},
        {"harbour", "eastgate/t-julien", "to_therapist: t-julien (Julien Bouchard) works at clinic laurier, not "
                                         "eastgate"},
        {"harbour", "atlantis", "to_clinic: no clinic 'atlantis' in the directory"},
        {"harbour", "harbour/t-priya", "to_therapist: t-priya (Priya Raman) may not be offered this referral"},
        /* the referrer, and a third clinic taking it for itself: neither holds it */
        {"northpoint", "eastgate", "only the current receiving clinic may redirect a handoff of referral"},
        {"riverdale", "riverdale", "only the current receiving clinic may redirect a handoff of referral"},
        /* stat: within a day; Wei works from Tuesday 10:00 */
        {"lakeside", "riverdale/t-wei", "no physiotherapy slot of 60 min with therapist t-wei within 1 day(s) (as "
                                        "its priority, stat, requires)"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        json_t *a = CLI(1, refused[i].clinic, "redirect", rid, "--to", refused[i].to, "--reason", "try");
        cr_expect(json_is_true(json_object_get(a, "refused")), "%zu: refused", i);
        cr_expect(strstr(jstr(a, "reason"), refused[i].want), "%zu: '%s', expected '%s'", i, jstr(a, "reason"),
                  refused[i].want);
        cr_expect_str_eq(jstr(a, "event"), "redirect");
        json_decref(a);
    }
    json_decref(CLI(2, "harbour", "redirect", rid, "--to", "eastgate"));    /* no --reason: not sent */
    json_decref(CLI(2, "harbour", "redirect", rid, "--reason", "no target"));

    /* in progress it is too late to redirect: from in-progress the receiver may complete or fail */
    json_decref(CLI(0, "lakeside", "accept", rid, "--discipline", PT));
    json_decref(CLI(0, "lakeside", "start", rid, "--discipline", PT));
    json_t *a = CLI(1, "lakeside", "redirect", rid, "--to", "riverdale", "--reason", "too late");
    cr_expect(strstr(jstr(a, "reason"), "cannot redirect a referral that is in-progress"), "%s", jstr(a, "reason"));
    json_decref(a);

    /* nothing moved: the referrer was told of the accept and the start only */
    h = history(rid);
    cr_expect_eq(json_array_size(h), before + 2, "refusals go to the sender only");
    json_decref(h);
    expect_referrer("after the refusals", rid, "start", "in-progress", "in-progress@lakeside/t-lucas",
                    "ready@harbour/t-priya");
    wait_row("harbour", rid, RMT, "new/ready");
}

/* ---- add massage -------------------------------------------------------------------------- */

/* The ankle sprain sample (physiotherapy only) with no language or availability, lakeside
 * preferred: physiotherapy with Lucas at lakeside, Monday 08:00. */
static const char *ankle(const char *ref, json_t *findings)
{
    const char *file = referral_file("01-ankle-sprain.json", ref, json_pack("{s:[s]}", "clinic_ids", "lakeside"),
                                     findings);
    const char *rid = booked(file, 1);
    expect_referrer("booked", rid, "book", "ready", "ready@lakeside/t-lucas", "");
    wait_row("lakeside", rid, PT, "new/ready");
    return rid;
}

Test(coordination, massage_added_within_the_collaborative_window)
{
    const char *rid = ankle("NP-COORD-3", NULL);
    const char *why = "calf tightness limits the exercise program";
    json_t *a = CLI(1, "lakeside", "add-massage", rid, "--reason", why);
    cr_expect(strstr(jstr(a, "reason"), "cannot ask to add a discipline to a referral that is ready"), "%s",
              jstr(a, "reason"));
    json_decref(a);
    json_decref(CLI(0, "lakeside", "accept", rid));
    const char *strangers[] = {"northpoint", "riverdale"};
    for (int i = 0; i < 2; i++) {
        a = CLI(1, strangers[i], "add-massage", rid, "--reason", why);
        cr_expect(strstr(jstr(a, "reason"), "only the clinic holding the physiotherapy handoff"), "%s: %s",
                  strangers[i], jstr(a, "reason"));
        json_decref(a);
    }
    json_decref(CLI(2, "lakeside", "add-massage", rid));                    /* no --reason */
    json_decref(CLI(0, "lakeside", "start", rid));

    /* asked: triage checks it, scheduling books massage, the outcome comes back */
    a = CLI(0, "lakeside", "add-massage", rid, "--reason", why);
    cr_expect_str_eq(jstr(a, "event"), "add", "%s", jstr(a, "reason"));
    cr_expect(!json_is_true(json_object_get(a, "refused")), "%s", jstr(a, "reason"));
    json_t *m = handoff_of(a, RMT);
    cr_assert_not_null(m, "the asking clinic sees the massage handoff: %s", jstr(a, "reason"));
    cr_expect_str_eq(jstr(m, "status"), "ready");
    char clinic[32], therapist[32];
    snprintf(clinic, sizeof clinic, "%s", jstr(m, "clinic_id"));
    snprintf(therapist, sizeof therapist, "%s", jstr(m, "therapist_id"));
    cr_expect_str_eq(jstr(handoff_of(a, PT), "status"), "in-progress", "physiotherapy is untouched");
    cr_expect(strstr(jstr(a, "reason"), why), "%s", jstr(a, "reason"));
    json_decref(a);

    char want[96];
    snprintf(want, sizeof want, "ready@%s/%s", clinic, therapist);
    expect_referrer("massage added", rid, "add", "in-progress", "in-progress@lakeside/t-lucas", want);
    /* the booking: after the assessment (Monday 08:00-09:00), within --collab-days 3 */
    json_t *h = history(rid);
    const char *start = NULL;
    size_t i;
    json_t *v, *b;
    json_array_foreach(h, i, v) {
        size_t k;
        json_array_foreach(json_object_get(v, "bookings"), k, b) {
            if (!strcmp(jstr(v, "event"), "book") && !strcmp(jstr(b, "discipline"), RMT))
                start = jstr(b, "start");
        }
    }
    cr_assert_not_null(start, "the referrer was told of the massage booking");
    cr_expect(strcmp(start, "2026-11-23T09:00") >= 0 && strcmp(start, "2026-11-26T08:00") <= 0,
              "massage at %s: within 3 days after the physiotherapy booking", start);
    json_decref(h);
    wait_row(clinic, rid, RMT, "new/ready");

    a = CLI(1, "lakeside", "add-massage", rid, "--reason", why);
    cr_expect(strstr(jstr(a, "reason"), "already has a massage_therapy handoff (ready)"), "%s", jstr(a, "reason"));
    json_decref(a);
}

Test(coordination, massage_refused_when_the_findings_contraindicate_it_or_no_slot_fits)
{
    const char *rid = ankle("NP-COORD-4", json_pack("[s]", "known_dvt"));
    json_decref(CLI(0, "lakeside", "accept", rid));
    json_t *a = CLI(1, "lakeside", "add-massage", rid, "--reason", "muscle guarding");
    cr_expect(json_is_true(json_object_get(a, "refused")));
    cr_expect(strstr(jstr(a, "reason"), "massage therapy: contraindicated by finding known_dvt"), "%s",
              jstr(a, "reason"));
    json_decref(a);
    expect_referrer("massage refused", rid, "accept", "accepted", "accepted@lakeside/t-lucas", "");

    /* the sample as written: a Portuguese speaker free Monday to Thursday mornings; massage
     * within 3 days after Monday's assessment in Portuguese: Sofia works afternoons */
    const char *file = referral_file("01-ankle-sprain.json", "NP-COORD-5", NULL, NULL);
    rid = booked(file, 1);
    json_decref(CLI(0, "lakeside", "accept", rid));
    a = CLI(1, "lakeside", "add-massage", rid, "--reason", "muscle guarding");
    cr_expect(strstr(jstr(a, "reason"), "no massage_therapy slot of 60 min within 3 day(s)"), "%s",
              jstr(a, "reason"));
    json_decref(a);
    json_t *h = history(rid);
    cr_expect_eq(json_array_size(json_object_get(last(h), "handoffs")), 1, "no massage handoff");
    json_decref(h);
}
