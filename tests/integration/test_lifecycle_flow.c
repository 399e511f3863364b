/* Integration: a referral's lifecycle after it is booked, end to end through the clinic CLI
 * (`handoff --json ...`) against the real broker, intake, triage and scheduling on 127.0.0.1:
 * the receiving clinic accepts, starts and completes; declines (the referral is booked again
 * with another therapist); the referrer revokes (the receiver is told); a referral on hold is
 * booked when a slot frees; two scheduling workers sharing one database never double-book,
 * and both come up when started together on a fresh database. A collaborative referral is two
 * handoffs with their own lifecycles: physiotherapy in progress while massage is declined and
 * booked again, the referral's status derived from both after every step; a revoke cancels
 * the open handoffs and leaves a completed one completed.
 *
 * Every wait is a condition polled with a deadline (net_wait); the deadlines are generous
 * because the machine may be slow (and the programs may run under the sanitizers). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_errors.h"
#include "hx_schedule.h"
#include "hx_spawn.h"

#define START "2026-11-23T08:00"       /* a Monday */
#define WAIT_MS 60000
#define CLI_TIMEOUT "10000"             /* per broker attempt; a change waits 4x this for its answer */

static net_t net;
static hx_directory_t *dir;

static void setup(void)
{
    net_init(&net);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    dir = hx_directory_load(net_src("deploy/sample/directory.json"), &errs);
    cr_assert_not_null(dir);
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
}

static void teardown(void)
{
    hx_directory_destroy(&dir);
    int bad = net_stop_all(&net);
    net_fini_verdict(bad, net.dir);
}

TestSuite(lifecycle, .init = setup, .fini = teardown, .timeout = 300);

/* ---- the CLI ---------------------------------------------------------------------------- */

/* Runs `handoff --json --timeout-ms N ARGS...` (ap: NULL-terminated) as clinic into buf. */
static int run_cli(const char *clinic, char *buf, size_t cap, va_list ap)
{
    const char *args[32] = {"--json", "--timeout-ms", CLI_TIMEOUT};
    size_t k = 3;
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        cr_assert_lt(k, 30, "too many CLI arguments");
        args[k++] = a;
    }
    args[k] = NULL;
    return net_cli(&net, clinic, buf, cap, args);
}

/* Runs the CLI as clinic; returns its exit status and, when out is set, its output parsed
 * as JSON (NULL when it is not JSON). */
static int cli(const char *clinic, json_t **out, ...)
{
    static char buf[4 << 20];
    va_list ap;
    va_start(ap, out);
    int rc = run_cli(clinic, buf, sizeof buf, ap);
    va_end(ap);
    if (out) {
        json_error_t jerr;
        *out = json_loads(buf, 0, &jerr);
    }
    return rc;
}

/* The same, expecting exit status `expect` and a JSON answer. */
static json_t *cli_json(int expect, const char *what, const char *clinic, ...)
{
    static char buf[4 << 20];
    va_list ap;
    va_start(ap, clinic);
    int rc = run_cli(clinic, buf, sizeof buf, ap);
    va_end(ap);
    cr_assert_eq(rc, expect, "%s (as %s): exit %d, expected %d; output: %.400s (logs in %s)", what, clinic, rc,
                 expect, buf, net.dir);
    json_error_t jerr;
    json_t *j = json_loads(buf, 0, &jerr);
    cr_assert_not_null(j, "%s (as %s): not JSON: %s: %.400s", what, clinic, jerr.text, buf);
    return j;
}

#define jstr(o, key) net_jstr((o), (key))

/* Writes a copy of a sample referral with its own "ref", referred by `clinic`, into the
 * test's directory; returns its path (static storage, 8 in rotation). */
static const char *referral_file(const char *sample, const char *clinic, const char *ref)
{
    static char paths[8][512];
    static int k;
    char *path = paths[k++ % 8];
    json_error_t jerr;
    char src[512];
    snprintf(src, sizeof src, "deploy/sample/referrals/%s", sample);
    json_t *j = json_load_file(net_src(src), 0, &jerr);
    cr_assert_not_null(j, "%s: %s", sample, jerr.text);
    json_object_set_new(j, "ref", json_string(ref));
    json_object_set_new(json_object_get(j, "referrer"), "clinic_id", json_string(clinic));
    snprintf(path, sizeof paths[0], "%s/%s-%s.json", net.dir, clinic, ref);
    cr_assert_eq(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
    return path;
}

/* Submits one referral file; returns its referral id (static storage, 8 in rotation). */
static const char *submit(const char *clinic, const char *file)
{
    static char ids[8][32];
    static int k;
    char *id = ids[k++ % 8];
    json_t *j = cli_json(0, "submit", clinic, "submit", file, NULL);
    cr_assert_eq(json_array_size(j), 1);
    snprintf(id, sizeof ids[0], "%s", jstr(json_array_get(j, 0), "referral_id"));
    cr_assert_eq(strlen(id), 18, "a referral id: '%s'", id);
    json_decref(j);
    return id;
}

/* The referral's history as `clinic` holds it (a JSON array), or NULL when it has none yet. */
static json_t *history(const char *clinic, const char *rid)
{
    json_t *j = NULL;
    int rc = cli(clinic, &j, "status", rid, NULL);
    if (rc != 0) {
        cr_assert_eq(rc, 4, "handoff status %s (as %s) exited %d (logs in %s)", rid, clinic, rc, net.dir);
        json_decref(j);
        return NULL;
    }
    cr_assert_not_null(j, "handoff status %s (as %s): not JSON", rid, clinic);
    json_t *h = json_incref(json_object_get(j, "history"));
    json_decref(j);
    cr_assert(json_is_array(h));
    return h;
}

static json_t *last(json_t *hist)
{
    size_t n = json_array_size(hist);
    return n ? json_array_get(hist, n - 1) : NULL;
}

/* "requested,received,ready" */
static void statuses(json_t *hist, char *out, size_t cap)
{
    size_t i, len = 0;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(hist, i, v) {
        if (len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", jstr(v, "status"));
    }
}

typedef struct {
    const char *clinic;
    const char *rid;
    const char *const *want;    /* NULL-terminated: the latest status is one of these */
    size_t min_len;             /* and the history has at least this many entries */
} until_t;

static bool until_cond(void *arg)
{
    const until_t *u = arg;
    json_t *h = history(u->clinic, u->rid);
    bool ok = false;
    if (h && json_array_size(h) >= u->min_len) {
        const char *s = jstr(last(h), "status");
        for (size_t i = 0; u->want[i] && !ok; i++)
            ok = strcmp(s, u->want[i]) == 0;
    }
    json_decref(h);
    return ok;
}

static const char *const SETTLED[] = {"ready", "on-hold", "rejected", NULL};

/* Waits until the referrer's latest status of rid is one of want (with at least min_len
 * entries); returns the history. */
static json_t *wait_history(const char *clinic, const char *rid, const char *const *want, size_t min_len)
{
    until_t u = {clinic, rid, want, min_len};
    bool ok = net_wait(until_cond, &u, WAIT_MS);
    json_t *h = history(clinic, rid);
    char seen[512] = "(none)";
    if (h)
        statuses(h, seen, sizeof seen);
    cr_assert(ok, "%s at %s: history %s did not reach %s within %d ms (logs in %s)", rid, clinic, seen, want[0],
              WAIT_MS, net.dir);
    return h;
}

/* Waits until rid is settled at its referrer and asserts that it is ready; returns the
 * booking of the ready status (borrowed from *hist_out, which the caller frees). */
static json_t *wait_ready(const char *clinic, const char *rid, json_t **hist_out)
{
    json_t *h = wait_history(clinic, rid, SETTLED, 1);
    json_t *l = last(h);
    cr_assert_str_eq(jstr(l, "status"), "ready", "%s: %s (%s)", rid, jstr(l, "status"), jstr(l, "reason"));
    json_t *b = json_array_get(json_object_get(l, "bookings"), 0);
    cr_assert_not_null(b, "%s: ready without a booking", rid);
    *hist_out = h;
    return b;
}

/* Every completion's summary (required for complete). */
#define SUMMARY "Goals met: pain-free gait, full range; discharged to a home program."

/* A lifecycle change as `clinic`; returns the answer (a StatusUpdate as JSON). */
static json_t *change(int expect, const char *clinic, const char *event, const char *rid, const char *reason)
{
    char what[96];
    snprintf(what, sizeof what, "%s %s", event, rid);
    if (reason)
        return cli_json(expect, what, clinic, event, rid, "--reason", reason, NULL);
    if (strcmp(event, "complete") == 0)     /* a completion carries its summary */
        return cli_json(expect, what, clinic, event, rid, "--summary", SUMMARY, NULL);
    return cli_json(expect, what, clinic, event, rid, NULL);
}

/* A clinic of the directory that is none of the given ones. */
static const char *other_clinic(const char *a, const char *b)
{
    const hx_clinic_t *c;
    size_t n = hx_directory_clinics(dir, &c);
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].id, a) != 0 && strcmp(c[i].id, b) != 0)
            return c[i].id;
    cr_assert_fail("no third clinic in the directory");
    return NULL;
}

typedef struct {
    const char *clinic;
    const char *rid;
    const char *therapist;      /* NULL: any */
} inbox_q_t;

/* The handoff of rid in clinic's inbox (with that therapist, if set), as a new reference. */
static json_t *inbox_find(const inbox_q_t *q)
{
    json_t *in = cli_json(0, "inbox", q->clinic, "handoffs", NULL);
    json_t *found = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(in, i, v) {
        if (!found && strcmp(jstr(v, "referral_id"), q->rid) == 0 &&     /* the first (a clinic may hold two) */
            (!q->therapist || strcmp(jstr(json_object_get(v, "booking"), "therapist_id"), q->therapist) == 0))
            found = json_incref(v);
    }
    json_decref(in);
    return found;
}

static bool inbox_has(void *arg)
{
    json_t *h = inbox_find(arg);
    json_decref(h);
    return h != NULL;
}

/* ---- 1. accept, start, complete -------------------------------------------------------- */

Test(lifecycle, accept_start_complete)
{
    net_start_services(&net, START);
    /* 01: physiotherapy only (ankle sprain), referred by harbour, a Portuguese speaker who
     * prefers lakeside: handed to another clinic than the referrer. */
    const char *referrer = "harbour";
    char rid[32];
    snprintf(rid, sizeof rid, "%s", submit(referrer, net_src("deploy/sample/referrals/01-ankle-sprain.json")));
    json_t *hist;
    json_t *booking = wait_ready(referrer, rid, &hist);
    cr_assert_str_eq(jstr(booking, "discipline"), "physiotherapy", "got %s", jstr(booking, "discipline"));
    char receiver[64];
    snprintf(receiver, sizeof receiver, "%s", jstr(booking, "clinic_id"));
    json_decref(hist);
    cr_assert(receiver[0]);
    inbox_q_t q = {receiver, rid, NULL};
    cr_assert(net_wait(inbox_has, &q, WAIT_MS), "%s's inbox has no handoff of %s", receiver, rid);

    /* a clinic that is not the receiver may not accept */
    const char *stranger = other_clinic(referrer, receiver);
    json_t *a = change(1, stranger, "accept", rid, NULL);
    cr_expect_str_eq(jstr(a, "status"), "ready", "refused: the status is unchanged; got %s", jstr(a, "status"));
    cr_expect(strstr(jstr(a, "reason"), "only the current receiving clinic may accept"), "reason: %s",
              jstr(a, "reason"));
    json_decref(a);

    a = change(0, receiver, "accept", rid, NULL);
    cr_expect_str_eq(jstr(a, "status"), "accepted", "got %s: %s", jstr(a, "status"), jstr(a, "reason"));
    json_decref(a);
    a = change(0, receiver, "start", rid, NULL);
    cr_expect_str_eq(jstr(a, "status"), "in-progress", "got %s: %s", jstr(a, "status"), jstr(a, "reason"));
    json_decref(a);
    a = change(0, receiver, "complete", rid, NULL);
    cr_expect_str_eq(jstr(a, "status"), "completed", "got %s: %s", jstr(a, "status"), jstr(a, "reason"));
    json_decref(a);

    /* the referrer saw every step, in order */
    const char *const done[] = {"completed", NULL};
    hist = wait_history(referrer, rid, done, 6);
    char seen[512];
    statuses(hist, seen, sizeof seen);
    cr_expect_str_eq(seen, "requested,received,ready,accepted,in-progress,completed", "history: %s", seen);
    json_decref(hist);

    /* completed is final: starting again is refused, naming the current status */
    a = change(1, receiver, "start", rid, NULL);
    cr_expect(strstr(jstr(a, "reason"), "completed"), "the reason names the current status: %s", jstr(a, "reason"));
    json_decref(a);

    /* the referrer is not the receiver either; a refused change leaves the status as it is,
     * and the answer carries that status (StatusUpdate.refused: "status is unchanged") */
    a = change(1, referrer, "accept", rid, NULL);
    cr_expect(strstr(jstr(a, "reason"), "only the current receiving clinic may"), "reason: %s", jstr(a, "reason"));
    cr_expect_str_eq(jstr(a, "status"), "completed", "the refusal carries the current status, completed; got %s "
                     "(reason: %s)", jstr(a, "status"), jstr(a, "reason"));
    json_decref(a);

    /* another referral: start before accept is refused, naming "ready" */
    const char *referrer2 = "eastgate";
    char rid2[32];
    snprintf(rid2, sizeof rid2, "%s", submit(referrer2, net_src("deploy/sample/referrals/02-pelvic-floor.json")));
    booking = wait_ready(referrer2, rid2, &hist);
    char receiver2[64];
    snprintf(receiver2, sizeof receiver2, "%s", jstr(booking, "clinic_id"));
    json_decref(hist);
    a = change(1, receiver2, "start", rid2, NULL);
    cr_expect_str_eq(jstr(a, "status"), "ready", "got %s", jstr(a, "status"));
    cr_expect(strstr(jstr(a, "reason"), "ready"), "the reason names the current status: %s", jstr(a, "reason"));
    json_decref(a);
    a = change(1, receiver2, "complete", rid2, NULL);
    cr_expect(strstr(jstr(a, "reason"), "ready"), "the reason names the current status: %s", jstr(a, "reason"));
    json_decref(a);
    /* nothing changed for its referrer */
    hist = history(referrer2, rid2);
    cr_expect_str_eq(jstr(last(hist), "status"), "ready", "got %s", jstr(last(hist), "status"));
    json_decref(hist);

    /* last, as it may change the first referral: completed is final, so the referrer cannot
     * revoke it any more */
    a = NULL;
    int rc = cli(referrer, &a, "revoke", rid, NULL);
    cr_expect_eq(rc, 1, "revoking a completed referral is refused; got exit %d, status %s: %s", rc,
                 jstr(a, "status"), jstr(a, "reason"));
    cr_expect(strstr(jstr(a, "reason"), "completed"), "the reason names the current status: %s", jstr(a, "reason"));
    json_decref(a);
}

/* ---- 2. decline: booked again with another therapist ------------------------------------ */

static size_t physios_speaking(const char *lang)
{
    const hx_therapist_t *t;
    size_t n = hx_directory_therapists(dir, &t), count = 0;
    for (size_t i = 0; i < n; i++) {
        bool speaks = false;
        for (size_t k = 0; k < t[i].n_languages; k++)
            speaks |= strcmp(t[i].languages[k], lang) == 0;
        count += speaks && t[i].discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    }
    return count;
}

Test(lifecycle, decline_reassigns_to_another_therapist)
{
    net_start_services(&net, START);
    /* 02: pelvic floor, physiotherapy only, French, no availability limits: every French-
     * speaking physiotherapist could take it. */
    cr_assert_geq(physios_speaking("fr"), 2, "the sample directory has two French-speaking physiotherapists");
    const char *referrer = "eastgate";
    char rid[32];
    snprintf(rid, sizeof rid, "%s", submit(referrer, net_src("deploy/sample/referrals/02-pelvic-floor.json")));
    json_t *hist;
    json_t *booking = wait_ready(referrer, rid, &hist);
    char receiver[64], therapist[64];
    snprintf(receiver, sizeof receiver, "%s", jstr(booking, "clinic_id"));
    snprintf(therapist, sizeof therapist, "%s", jstr(booking, "therapist_id"));
    json_decref(hist);

    /* a decline needs a reason: usage error, nothing sent */
    cr_expect_eq(cli(receiver, NULL, "decline", rid, NULL), 2, "decline without --reason");
    hist = history(referrer, rid);
    cr_expect_eq(json_array_size(hist), 3, "requested, received, ready; nothing more");
    json_decref(hist);

    const char *why = "therapist away for pelvic floor training";
    json_t *a = change(0, receiver, "decline", rid, why);
    cr_expect_str_eq(jstr(a, "status"), "received", "declined: back to scheduling; got %s (%s)", jstr(a, "status"),
                     jstr(a, "reason"));
    json_decref(a);

    const char *const again[] = {"ready", "on-hold", NULL};
    hist = wait_history(referrer, rid, again, 5);
    char seen[512];
    statuses(hist, seen, sizeof seen);
    cr_assert_str_eq(seen, "requested,received,ready,received,ready", "history: %s", seen);
    json_t *declined = json_array_get(hist, 3);
    cr_expect(strstr(jstr(declined, "reason"), why), "the decline's reason is passed on: %s",
              jstr(declined, "reason"));
    cr_expect(strstr(jstr(declined, "reason"), "declined"), "%s", jstr(declined, "reason"));
    cr_expect_str_eq(jstr(json_array_get(json_object_get(declined, "bookings"), 0), "therapist_id"), therapist,
                     "the declined booking (%s) is named", therapist);
    json_t *rebooked = json_array_get(json_object_get(last(hist), "bookings"), 0);
    cr_assert_not_null(rebooked);
    char therapist2[64], receiver2[64];
    snprintf(therapist2, sizeof therapist2, "%s", jstr(rebooked, "therapist_id"));
    snprintf(receiver2, sizeof receiver2, "%s", jstr(rebooked, "clinic_id"));
    json_decref(hist);
    cr_expect_str_neq(therapist2, therapist, "booked again with a different therapist");
    const hx_therapist_t *t2 = hx_directory_therapist(dir, therapist2);
    cr_assert_not_null(t2, "%s is in the directory", therapist2);
    cr_expect_eq(t2->discipline, HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY);
    cr_expect_str_eq(t2->clinic_id, receiver2, "%s works at %s", therapist2, t2->clinic_id);

    /* the new receiver has the handoff, with the new therapist */
    inbox_q_t q = {receiver2, rid, therapist2};
    cr_expect(net_wait(inbox_has, &q, WAIT_MS), "%s's inbox has the handoff of %s with %s", receiver2, rid,
              therapist2);
}

/* ---- 3. revoke: the receiver is told -------------------------------------------------- */

Test(lifecycle, revoke_tells_the_receiver)
{
    net_start_services(&net, START);
    const char *referrer = "harbour";
    char rid[32];
    snprintf(rid, sizeof rid, "%s", submit(referrer, net_src("deploy/sample/referrals/01-ankle-sprain.json")));
    json_t *hist;
    json_t *booking = wait_ready(referrer, rid, &hist);
    char receiver[64];
    snprintf(receiver, sizeof receiver, "%s", jstr(booking, "clinic_id"));
    json_decref(hist);
    cr_assert_str_neq(receiver, referrer, "sample 01 is handed to another clinic than its referrer");

    /* only the referrer may revoke: not the receiver, not a third clinic */
    json_t *a = change(1, receiver, "revoke", rid, NULL);
    cr_expect(strstr(jstr(a, "reason"), "only the referring clinic may revoke"), "reason: %s", jstr(a, "reason"));
    json_decref(a);
    a = change(1, other_clinic(referrer, receiver), "revoke", rid, NULL);
    cr_expect(strstr(jstr(a, "reason"), "only the referring clinic may revoke"), "reason: %s", jstr(a, "reason"));
    json_decref(a);

    a = change(0, referrer, "revoke", rid, "patient moved away");
    cr_expect_str_eq(jstr(a, "status"), "cancelled", "got %s: %s", jstr(a, "status"), jstr(a, "reason"));
    json_decref(a);

    /* the receiving clinic's own store has the cancellation */
    const char *const cancelled[] = {"cancelled", NULL};
    hist = wait_history(receiver, rid, cancelled, 1);
    cr_expect(strstr(jstr(last(hist), "reason"), "patient moved away"), "reason: %s", jstr(last(hist), "reason"));
    json_decref(hist);
    hist = history(referrer, rid);
    cr_expect_str_eq(jstr(last(hist), "status"), "cancelled", "got %s", jstr(last(hist), "status"));
    json_decref(hist);

    /* cancelled is final */
    a = change(1, referrer, "revoke", rid, NULL);
    cr_expect(strstr(jstr(a, "reason"), "cancelled"), "the reason names the current status: %s", jstr(a, "reason"));
    json_decref(a);
    a = change(1, receiver, "accept", rid, NULL);
    json_decref(a);
}

/* ---- 4. on hold until a slot frees --------------------------------------------------- */

Test(lifecycle, on_hold_then_booked)
{
    /* Sample 01 needs a Portuguese-speaking physiotherapist between 07:30 and 12:00: only
     * t-lucas speaks Portuguese, and with a horizon of one day from Monday 08:00 he has a
     * few such hours. Referrals are submitted one at a time until one goes on hold. */
    const hx_therapist_t *t;
    size_t nt = hx_directory_therapists(dir, &t);
    const char *only = NULL;
    for (size_t i = 0; i < nt; i++)
        if (t[i].discipline == HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY)
            for (size_t k = 0; k < t[i].n_languages; k++)
                if (strcmp(t[i].languages[k], "pt") == 0) {
                    cr_assert_null(only, "one Portuguese-speaking physiotherapist (also %s)", t[i].id);
                    only = t[i].id;
                }
    cr_assert_not_null(only);

    net_start_front(&net);
    const char *extra[] = {"--horizon-days", "1", NULL};
    net_start_scheduling(&net, "scheduling", START, NULL, extra);

    const char *referrer = "harbour";
    char rids[12][32], held[32] = "";
    char starts[12][20];
    size_t n = 0;
    while (!held[0]) {
        cr_assert_lt(n, 12, "12 referrals for one therapist within a day and none on hold");
        char ref[32];
        snprintf(ref, sizeof ref, "HB-HOLD-%02zu", n);
        snprintf(rids[n], sizeof rids[0], "%s", submit(referrer, referral_file("01-ankle-sprain.json", referrer, ref)));
        json_t *h = wait_history(referrer, rids[n], SETTLED, 1);
        json_t *l = last(h);
        const char *s = jstr(l, "status");
        if (strcmp(s, "on-hold") == 0) {
            snprintf(held, sizeof held, "%s", rids[n]);
            cr_expect(strstr(jstr(l, "reason"), "physiotherapy"), "on hold: %s", jstr(l, "reason"));
        } else {
            cr_assert_str_eq(s, "ready", "%s: %s", jstr(l, "status"), jstr(l, "reason"));
            json_t *b = json_array_get(json_object_get(l, "bookings"), 0);
            cr_assert_str_eq(jstr(b, "therapist_id"), only, "got %s", jstr(b, "therapist_id"));
            snprintf(starts[n], sizeof starts[0], "%s", jstr(b, "start"));
            n++;
        }
        json_decref(h);
    }
    cr_assert_gt(n, 0, "at least one was booked before one went on hold");

    /* revoking a booked one frees its slot: the one on hold gets it */
    json_t *a = change(0, referrer, "revoke", rids[0], "booked elsewhere");
    cr_expect_str_eq(jstr(a, "status"), "cancelled", "got %s: %s", jstr(a, "status"), jstr(a, "reason"));
    json_decref(a);
    const char *const ready[] = {"ready", NULL};
    json_t *h = wait_history(referrer, held, ready, 4);
    char seen[512];
    statuses(h, seen, sizeof seen);
    cr_expect_str_eq(seen, "requested,received,on-hold,ready", "history: %s", seen);
    json_t *b = json_array_get(json_object_get(last(h), "bookings"), 0);
    cr_assert_not_null(b);
    cr_expect_str_eq(jstr(b, "therapist_id"), only, "got %s", jstr(b, "therapist_id"));
    cr_expect_str_eq(jstr(b, "start"), starts[0], "the freed slot %s; got %s", starts[0], jstr(b, "start"));
    char receiver[64];
    snprintf(receiver, sizeof receiver, "%s", jstr(b, "clinic_id"));
    json_decref(h);
    inbox_q_t q = {receiver, held, only};
    cr_expect(net_wait(inbox_has, &q, WAIT_MS), "%s's inbox has the handoff of %s", receiver, held);
}

/* ---- 5. two scheduling workers on one database -------------------------------------- */

#define MANY 60

typedef struct {
    char clinic[32];
    char rid[32];
    char status[16];
    json_t *latest;             /* the referrer's latest status */
} many_t;

static many_t many[MANY];

/* Every referral's latest status, from each referrer's `status` list; true when all are
 * settled. */
static bool all_settled(void *arg)
{
    (void)arg;
    const hx_clinic_t *c;
    size_t nc = hx_directory_clinics(dir, &c);
    for (size_t i = 0; i < MANY; i++) {
        json_decref(many[i].latest);
        many[i].latest = NULL;
    }
    for (size_t k = 0; k < nc; k++) {
        json_t *all = cli_json(0, "status", c[k].id, "status", NULL);
        size_t i;
        json_t *v;
        json_array_foreach(all, i, v) {
            for (size_t m = 0; m < MANY; m++)
                if (strcmp(many[m].clinic, c[k].id) == 0 && strcmp(many[m].rid, jstr(v, "referral_id")) == 0)
                    many[m].latest = json_incref(v);
        }
        json_decref(all);
    }
    for (size_t m = 0; m < MANY; m++) {
        const char *s = many[m].latest ? jstr(many[m].latest, "status") : "";
        if (strcmp(s, "ready") && strcmp(s, "on-hold") && strcmp(s, "rejected"))
            return false;
    }
    return true;
}

typedef struct {
    char therapist[32];
    hx_minute_t start;
    uint32_t minutes;
    char rid[32];
    char discipline[24];
} slot_t;

static size_t count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static bool workers_joined(void *arg)
{
    char log[512];
    snprintf(log, sizeof log, "%s/broker.log", net.dir);
    return count_in_file(log, "worker scheduling joined") >= *(const size_t *)arg;
}

/* What is asserted: with two handoff-scheduling workers sharing one SQLite file (credit 1
 * each, so the broker spreads the work), 60 referrals submitted at once from six clinics
 * are all settled (ready or on hold, none rejected: no red flags); across every clinic's
 * inbox no two bookings of the same therapist overlap in time; each ready referral has
 * exactly one handoff per discipline of its triage plan (and none for another), matching the
 * bookings its referrer was told; an on-hold referral has none; both workers booked some; and
 * neither booked from a calendar the other had made stale. */
Test(lifecycle, two_scheduling_workers_never_double_book, .timeout = 400)
{
    net_start_front(&net);
    /* One after the other (the second once the first has its session, so the database file
     * exists): two started at the same instant on a fresh file is its own test below. Both
     * have a session before the burst, so the broker can share it out. */
    const char *credit[] = {"--credit", "1", NULL};
    size_t want = 1;
    net_start_scheduling(&net, "scheduling", START, NULL, credit);
    cr_assert(net_wait(workers_joined, &want, WAIT_MS), "the first scheduling worker did not join (logs in %s)",
              net.dir);
    want = 2;
    net_start_scheduling(&net, "scheduling2", START, NULL, credit);
    cr_assert(net_wait(workers_joined, &want, WAIT_MS), "the second scheduling worker did not join (logs in %s)",
              net.dir);

    /* samples without red flags: physiotherapy only, massage only and both */
    static const char *const samples[] = {"01-ankle-sprain.json",        "02-pelvic-floor.json",
                                          "03-neurological-mobility.json", "04-tension-headache.json",
                                          "05-stress-anxiety.json",       "06-muscle-tension-posture.json",
                                          "07-post-surgical-knee.json",   "08-chronic-low-back-pain.json",
                                          "09-athletic-performance.json", "14-minor-strain-stat.json"};
    const size_t n_samples = sizeof samples / sizeof *samples;
    const hx_clinic_t *c;
    size_t nc = hx_directory_clinics(dir, &c);
    cr_assert_geq(nc, 3);
    static char files[MANY][512];
    for (size_t i = 0; i < MANY; i++) {
        memset(&many[i], 0, sizeof many[i]);
        snprintf(many[i].clinic, sizeof many[i].clinic, "%s", c[i % nc].id);
        char ref[32];
        snprintf(ref, sizeof ref, "MW-%03zu", i);
        snprintf(files[i], sizeof files[0], "%s", referral_file(samples[i % n_samples], many[i].clinic, ref));
    }
    /* one `submit` per clinic with all of its files, as fast as the CLI goes */
    for (size_t k = 0; k < nc; k++) {
        const char *args[32] = {"--json", "--timeout-ms", CLI_TIMEOUT, "submit"};
        size_t na = 4;
        for (size_t i = k; i < MANY; i += nc) {
            cr_assert_lt(na, 24);
            args[na++] = files[i];
        }
        args[na] = NULL;
        static char out[1 << 16];
        cr_assert_eq(net_cli(&net, c[k].id, out, sizeof out, args), 0, "submit as %s: %s", c[k].id, out);
        json_error_t jerr;
        json_t *j = json_loads(out, 0, &jerr);
        cr_assert_not_null(j, "%.200s", out);
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            size_t m = k + i * nc;
            cr_assert_lt(m, MANY);
            snprintf(many[m].rid, sizeof many[m].rid, "%s", jstr(v, "referral_id"));
        }
        json_decref(j);
    }
    for (size_t m = 0; m < MANY; m++)
        cr_assert_eq(strlen(many[m].rid), 18, "referral %zu was submitted", m);

    cr_assert(net_wait(all_settled, NULL, 3 * WAIT_MS), "not all %d referrals settled (logs in %s)", MANY, net.dir);

    /* every handoff from every inbox */
    static slot_t slots[4 * MANY];
    size_t n_slots = 0;
    for (size_t k = 0; k < nc; k++) {
        json_t *in = cli_json(0, "inbox", c[k].id, "handoffs", NULL);
        size_t i;
        json_t *v;
        json_array_foreach(in, i, v) {
            json_t *b = json_object_get(v, "booking");
            cr_assert_not_null(b);
            cr_assert_lt(n_slots, 4 * MANY, "more handoffs than bookings could be");
            slot_t *s = &slots[n_slots++];
            snprintf(s->therapist, sizeof s->therapist, "%s", jstr(b, "therapist_id"));
            cr_assert_eq(hx_minute_parse(jstr(b, "start"), &s->start), 0, "start '%s'", jstr(b, "start"));
            s->minutes = (uint32_t)json_integer_value(json_object_get(b, "minutes"));
            snprintf(s->rid, sizeof s->rid, "%s", jstr(v, "referral_id"));
            snprintf(s->discipline, sizeof s->discipline, "%s", jstr(b, "discipline"));
            cr_expect_str_eq(jstr(b, "clinic_id"), c[k].id, "%s: handed to the booked therapist's clinic", s->rid);
            cr_expect_gt(s->minutes, 0);
        }
        json_decref(in);
    }

    /* no therapist is booked twice at once */
    size_t overlaps = 0;
    for (size_t i = 0; i < n_slots; i++)
        for (size_t k = i + 1; k < n_slots; k++) {
            const slot_t *x = &slots[i], *y = &slots[k];
            if (strcmp(x->therapist, y->therapist) != 0)
                continue;
            if (x->start < y->start + (hx_minute_t)y->minutes && y->start < x->start + (hx_minute_t)x->minutes) {
                char xs[17], ys[17];
                hx_minute_format(x->start, xs);
                hx_minute_format(y->start, ys);
                cr_expect_fail("double booking of %s: %s %s %u min (%s) and %s %s %u min (%s)", x->therapist, x->rid,
                               xs, x->minutes, x->discipline, y->rid, ys, y->minutes, y->discipline);
                overlaps++;
            }
        }
    cr_expect_eq(overlaps, 0);

    /* one handoff per planned discipline, as the referrer was told */
    size_t ready = 0, on_hold = 0;
    for (size_t m = 0; m < MANY; m++) {
        const char *status = jstr(many[m].latest, "status");
        cr_expect(strcmp(status, "rejected") != 0, "%s (%s): rejected: %s", many[m].rid, many[m].clinic,
                  jstr(many[m].latest, "reason"));
        json_t *plan = json_object_get(json_object_get(many[m].latest, "decision"), "disciplines");
        bool is_ready = strcmp(status, "ready") == 0;
        ready += is_ready;
        on_hold += strcmp(status, "on-hold") == 0;
        size_t total = 0;
        for (size_t i = 0; i < n_slots; i++)
            total += strcmp(slots[i].rid, many[m].rid) == 0;
        if (!is_ready) {
            cr_expect_eq(total, 0, "%s is %s and has %zu handoff(s)", many[m].rid, status, total);
            continue;
        }
        cr_assert(json_array_size(plan) > 0, "%s: its ready status carries the triage plan", many[m].rid);
        cr_expect_eq(total, json_array_size(plan), "%s: %zu handoff(s) for a plan of %zu", many[m].rid, total,
                     json_array_size(plan));
        size_t d;
        json_t *disc;
        json_array_foreach(plan, d, disc) {
            size_t got = 0;
            const slot_t *s = NULL;
            for (size_t i = 0; i < n_slots; i++)
                if (!strcmp(slots[i].rid, many[m].rid) && !strcmp(slots[i].discipline, json_string_value(disc))) {
                    got++;
                    s = &slots[i];
                }
            cr_expect_eq(got, 1, "%s: %zu handoff(s) for %s", many[m].rid, got, json_string_value(disc));
            /* the same booking as the referrer was told */
            bool told = false;
            size_t b;
            json_t *bk;
            json_array_foreach(json_object_get(many[m].latest, "bookings"), b, bk) {
                hx_minute_t at;
                if (s && strcmp(jstr(bk, "discipline"), s->discipline) == 0 &&
                    strcmp(jstr(bk, "therapist_id"), s->therapist) == 0 &&
                    hx_minute_parse(jstr(bk, "start"), &at) == 0 && at == s->start)
                    told = true;
            }
            cr_expect(!s || told, "%s: the referrer was told the booking of %s", many[m].rid, s ? s->discipline : "");
        }
    }
    cr_expect_gt(ready, 0);
    cr_log_info("%zu ready, %zu on hold, %zu handoffs", ready, on_hold, n_slots);

    /* both workers did some of the booking */
    char log1[512], log2[512];
    snprintf(log1, sizeof log1, "%s/scheduling.log", net.dir);
    snprintf(log2, sizeof log2, "%s/scheduling2.log", net.dir);
    size_t b1 = count_in_file(log1, "booked:"), b2 = count_in_file(log2, "booked:");
    cr_expect_gt(b1, 0, "the first worker booked none (%zu by the second)", b2);
    cr_expect_gt(b2, 0, "the second worker booked none (%zu by the first)", b1);
    cr_expect_geq(b1 + b2, ready, "a booking log line for each ready referral");
    /* Each worker keeps its calendar between messages and must drop it when the other one
     * has committed: a stale calendar picks a slot the other already holds, which the slots
     * table refuses (so nothing is double-booked even then) and the message is handled again.
     * Here that must never happen. */
    size_t c1 = count_in_file(log1, "is already held"), c2 = count_in_file(log2, "is already held");
    cr_expect_eq(c1 + c2, 0, "a worker booked from a stale calendar %zu time(s) (logs in %s)", c1 + c2, net.dir);
    for (size_t m = 0; m < MANY; m++) {
        json_decref(many[m].latest);
        many[m].latest = NULL;
    }
}

/* ---- 6. two scheduling workers started together ------------------------------------- */

typedef struct {
    pid_t pid;
    char name[32];
    int status;                 /* wait status once it exited */
    bool exited, serving;
} worker_t;

static bool exited_or_serving(void *arg)
{
    worker_t *w = arg;
    for (size_t i = 0; i < 2; i++) {
        if (w[i].exited || w[i].serving)
            continue;
        char log[512];
        snprintf(log, sizeof log, "%s/%s.log", net.dir, w[i].name);
        if (count_in_file(log, "serving scheduling") > 0) {
            w[i].serving = true;
        } else if (hx_spawn_wait(w[i].pid, 0, &w[i].status) == 1) {
            w[i].exited = true;
            for (size_t k = 0; k < net.n; k++)     /* reaped here: the harness forgets it */
                if (net.procs[k].pid == w[i].pid)
                    net.procs[k].pid = 0;
        }
    }
    return (w[0].exited || w[0].serving) && (w[1].exited || w[1].serving);
}

static void first_line_with(const char *path, const char *needle, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, needle)) {
            line[strcspn(line, "\n")] = '\0';
            if (snprintf(out, cap, "%s", line) >= (int)cap)
                out[cap - 1] = '\0';           /* cut: callers look at its start */
            break;
        }
    if (f)
        fclose(f);
}

/* "Several scheduling workers may share" one --db: two started at the same moment on a
 * database file that does not exist yet (a first deployment) must both come up and serve.
 * Each round uses a fresh file; a worker that exits instead fails the test with its log. */
Test(lifecycle, two_scheduling_workers_start_together_on_a_fresh_database)
{
    for (int round = 0; round < 20; round++) {
        char db[512];
        snprintf(db, sizeof db, "%s/fresh-%d.db", net.dir, round);
        worker_t w[2] = {0};
        for (size_t i = 0; i < 2; i++)
            snprintf(w[i].name, sizeof w[i].name, "fresh-%d-%c", round, (int)('a' + i));
        w[0].pid = net_start_scheduling(&net, w[0].name, START, db, NULL);
        w[1].pid = net_start_scheduling(&net, w[1].name, START, db, NULL);
        cr_assert(net_wait(exited_or_serving, w, WAIT_MS), "round %d: the workers neither served nor exited (logs in "
                  "%s)", round, net.dir);
        for (size_t i = 0; i < 2; i++) {
            if (!w[i].exited)
                continue;
            char log[512], why[600];
            snprintf(log, sizeof log, "%s/%s.log", net.dir, w[i].name);
            first_line_with(log, "--db", why, sizeof why);
            cr_expect_fail("round %d: %s exited (status %d) instead of serving: %s", round, w[i].name,
                           WIFEXITED(w[i].status) ? WEXITSTATUS(w[i].status) : -1, why);
        }
        for (size_t i = 0; i < 2; i++)
            if (!w[i].exited)
                cr_expect_eq(net_stop(&net, w[i].pid, SIGTERM), 0, "%s stops cleanly", w[i].name);
        if (w[0].exited || w[1].exited)
            break;                              /* shown once is enough */
    }
}

/* ---- the directory and virtual sessions ---------------------------------------------------- */

/* Writes the sample directory to path, without the therapist `drop` (NULL: all of them). */
static void write_directory(const char *path, const char *drop)
{
    json_error_t jerr;
    json_t *d = json_load_file(net_src("deploy/sample/directory.json"), 0, &jerr);
    cr_assert_not_null(d, "%s", jerr.text);
    json_t *ts = json_object_get(d, "therapists");
    for (size_t i = json_array_size(ts); drop && i-- > 0;)
        if (!strcmp(jstr(json_array_get(ts, i), "id"), drop))
            json_array_remove(ts, i);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_eq(json_dump_file(d, tmp, JSON_INDENT(2)), 0);
    cr_assert_eq(rename(tmp, path), 0);
    json_decref(d);
}

Test(lifecycle, a_directory_reload_books_what_waited)
{
    char path[512];
    snprintf(path, sizeof path, "%s/directory.json", net.dir);
    write_directory(path, "t-lucas");           /* the only Portuguese-speaking physiotherapist */
    net_start_front(&net);
    const char *extra[] = {"--directory", path, NULL};
    pid_t sched = net_start_scheduling(&net, "scheduling", START, NULL, extra);
    const char *rid = submit("harbour", referral_file("01-ankle-sprain.json", "harbour", "HB-RELOAD-1"));
    static const char *const held[] = {"on-hold", NULL};
    json_t *h = wait_history("harbour", rid, held, 1);
    cr_assert(strstr(jstr(last(h), "reason"), "language pt"), "%s", jstr(last(h), "reason"));
    json_decref(h);

    write_directory(path, NULL);                /* t-lucas is back */
    cr_assert_eq(kill(sched, SIGHUP), 0);
    static const char *const ready[] = {"ready", NULL};
    h = wait_history("harbour", rid, ready, 1);
    json_t *b = json_array_get(json_object_get(last(h), "bookings"), 0);
    cr_expect_str_eq(jstr(b, "therapist_id"), "t-lucas");
    char seen[256];
    statuses(h, seen, sizeof seen);
    cr_expect_str_eq(seen, "requested,received,on-hold,ready");
    json_decref(h);
}

/* A copy of a physiotherapy-only sample whose patient speaks Chinese (only t-wei, at
 * riverdale, treats in it) and prefers northpoint. */
static const char *chinese_speaker(const char *ref, bool virtual_ok)
{
    const char *path = referral_file("02-pelvic-floor.json", "harbour", ref);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    cr_assert_not_null(j);
    json_t *prefs = json_pack("{s:[s], s:s, s:b}", "clinic_ids", "northpoint", "language", "zh", "virtual_ok",
                              virtual_ok);
    json_object_set_new(j, "preferences", prefs);
    json_object_set_new(json_object_get(j, "patient"), "language", json_string("zh"));
    cr_assert_eq(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
    return path;
}

Test(lifecycle, physiotherapy_is_virtual_when_the_patient_accepts_and_the_clinic_is_not_theirs)
{
    net_start_front(&net);
    net_start_scheduling(&net, "scheduling", START, NULL, NULL);
    const hx_therapist_t *wei = hx_directory_therapist(dir, "t-wei");
    cr_assert(wei && wei->virtual_ok, "the sample directory's t-wei offers virtual sessions");

    const char *remote = submit("harbour", chinese_speaker("HB-VIRTUAL-1", true));
    json_t *h = NULL;
    json_t *b = wait_ready("harbour", remote, &h);
    cr_expect_str_eq(jstr(b, "therapist_id"), "t-wei");
    cr_expect(json_is_true(json_object_get(b, "virtual")), "the patient accepts virtual care: a virtual session");
    json_decref(h);

    const char *in_person = submit("harbour", chinese_speaker("HB-VIRTUAL-2", false));
    b = wait_ready("harbour", in_person, &h);
    cr_expect_str_eq(jstr(b, "therapist_id"), "t-wei");
    cr_expect(!json_is_true(json_object_get(b, "virtual")), "the patient did not accept virtual care");
    json_decref(h);
}

Test(lifecycle, a_clinic_cannot_skip_intake_and_triage)
{
    net_start_front(&net);
    net_start_scheduling(&net, "scheduling", START, NULL, NULL);
    /* a clinic sends a made-up triaged case straight to scheduling */
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = "R-0000000000000000";
    r.referring_clinic = "northpoint";
    r.ref = "FORGED-1";
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    Handoff__Discipline disc = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    d.disciplines = &disc;
    d.n_disciplines = 1;
    Handoff__Case c = HANDOFF__CASE__INIT;
    c.referral = &r;
    c.decision = &d;
    uint8_t buf[512];
    size_t len = handoff__case__pack(&c, buf);
    char err[256];
    hx_client_opts_t o = {.endpoint = net.endpoint, .clinic = "northpoint", .timeout_ms = 5000};
    hx_client_t *cl = hx_client_connect(&o, err, sizeof err);
    cr_assert_not_null(cl, "%s", err);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "scheduling";
    m.type = "handoff.Case";
    m.payload = buf;
    m.payload_len = len;
    /* the routing policy refuses it at the broker: only triage hands cases to scheduling */
    cr_assert_eq(hx_client_submit(cl, &m, 1), HX_EREFUSED, "a clinic's handoff.Case to scheduling was accepted");
    cr_expect_eq(hx_client_error_code(cl), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "%s", hx_client_error(cl));
    hx_client_destroy(&cl);

    /* a real referral after it: once that is booked, nothing of the forged case is anywhere */
    const char *rid = submit("northpoint", referral_file("02-pelvic-floor.json", "northpoint", "NP-AFTER-FORGED"));
    json_t *h = NULL;
    wait_ready("northpoint", rid, &h);
    json_decref(h);
    cr_expect_null(history("northpoint", "R-0000000000000000"), "no status for the forged referral");
    const hx_clinic_t *cs;
    size_t n = hx_directory_clinics(dir, &cs);
    for (size_t i = 0; i < n; i++) {
        json_t *in = cli_json(0, "inbox", cs[i].id, "handoffs", NULL);
        size_t k;
        json_t *v;
        json_array_foreach(in, k, v)
            cr_expect_str_neq(jstr(v, "referral_id"), "R-0000000000000000", "%s received a forged handoff", cs[i].id);
        json_decref(in);
    }
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

Test(lifecycle, every_change_done_or_refused_is_in_the_audit_log)
{
    char audit[512];
    snprintf(audit, sizeof audit, "%s/scheduling-audit.jsonl", net.dir);
    net_start_front(&net);
    const char *extra[] = {"--audit", audit, NULL};
    net_start_scheduling(&net, "scheduling", START, NULL, extra);
    const char *rid = submit("eastgate", referral_file("02-pelvic-floor.json", "eastgate", "EG-AUDIT-1"));
    json_t *h = NULL;
    json_t *b = wait_ready("eastgate", rid, &h);
    char receiver[64];
    snprintf(receiver, sizeof receiver, "%s", jstr(b, "clinic_id"));
    json_decref(h);
    const char *stranger = other_clinic(receiver, "eastgate");
    json_decref(change(1, stranger, "accept", rid, NULL));
    json_decref(change(0, receiver, "accept", rid, NULL));
    char who[256];
    snprintf(who, sizeof who, "\"principal\":\"clinic:%s\",\"action\":\"referral.accept\",\"id\":\"%s\"", stranger, rid);
    cr_expect(file_contains(audit, who), "the refused accept is audited");
    cr_expect(file_contains(audit, "\"outcome\":\"refused: only the current receiving clinic"));
    snprintf(who, sizeof who, "\"principal\":\"clinic:%s\",\"action\":\"referral.accept\"", receiver);
    cr_expect(file_contains(audit, who), "the accept is audited");
    static char out[4096];
    const char *verify[] = {"audit", "verify", audit, NULL};
    cr_expect_eq(net_cli(&net, "unused", out, sizeof out, verify), 0, "%s", out);
}

/* ---- collaborative care: one lifecycle per handoff (issue 16) ---------------------------- */

/* A collaborative referral (chronic low back pain: physiotherapy and massage) from
 * northpoint, which prefers laurier (massage only) then lakeside (both): physiotherapy goes to
 * lakeside, massage to laurier, and when laurier declines, massage can go to lakeside. */
static const char *collab_file(const char *ref)
{
    const char *path = referral_file("08-chronic-low-back-pain.json", "northpoint", ref);
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    cr_assert_not_null(j, "%s: %s", path, jerr.text);
    json_object_set_new(j, "preferences", json_pack("{s:[s,s]}", "clinic_ids", "laurier", "lakeside"));
    cr_assert_eq(json_dump_file(j, path, JSON_INDENT(2)), 0);
    json_decref(j);
    return path;
}

/* The handoff of discipline d in a status update (JSON), or NULL. */
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

/* The status of discipline d's handoff in update ("" when the update has none). */
static const char *hstatus(json_t *update, const char *d)
{
    return jstr(handoff_of(update, d), "status");
}

/* A change on the handoff of discipline d, as clinic. */
static json_t *change_d(int expect, const char *clinic, const char *event, const char *rid, const char *d,
                        const char *reason)
{
    char what[96];
    snprintf(what, sizeof what, "%s %s (%s)", event, rid, d);
    if (reason)
        return cli_json(expect, what, clinic, event, rid, "--discipline", d, "--reason", reason, NULL);
    if (strcmp(event, "complete") == 0)
        return cli_json(expect, what, clinic, event, rid, "--discipline", d, "--summary", SUMMARY, NULL);
    return cli_json(expect, what, clinic, event, rid, "--discipline", d, NULL);
}

/* Asserts the referrer's latest update of rid: the referral's status and each handoff's. */
static void expect_referrer(const char *step, const char *rid, const char *status, const char *pt,
                            const char *rmt)
{
    json_t *h = history("northpoint", rid);
    json_t *l = last(h);
    cr_expect_str_eq(jstr(l, "status"), status, "%s: the referral is %s, expected %s (%s)", step, jstr(l, "status"),
                     status, jstr(l, "reason"));
    cr_expect_str_eq(hstatus(l, "physiotherapy"), pt, "%s: physiotherapy is %s, expected %s", step,
                     hstatus(l, "physiotherapy"), pt);
    cr_expect_str_eq(hstatus(l, "massage_therapy"), rmt, "%s: massage is %s, expected %s", step,
                     hstatus(l, "massage_therapy"), rmt);
    json_decref(h);
}

/* The status of clinic's own (received) row of rid and discipline d in its inbox, as the
 * inbox shows it ("group/status"; "" when it has none). */
static void inbox_row(const char *clinic, const char *rid, const char *d, char *out, size_t cap)
{
    json_t *in = cli_json(0, "inbox", clinic, "inbox", NULL);
    out[0] = '\0';
    net_inbox_row(in, rid, d, out, cap);
    json_decref(in);
}

typedef struct {
    const char *rid;
    size_t after;               /* the history has more entries than this */
} settled_q_t;

/* The referrer's latest update is a booking or a hold after `after` entries. */
static bool rebooked(void *arg)
{
    const settled_q_t *q = arg;
    json_t *h = history("northpoint", q->rid);
    const char *ev = jstr(last(h), "event");
    bool ok = h && json_array_size(h) > q->after && (!strcmp(ev, "book") || !strcmp(ev, "hold"));
    json_decref(h);
    return ok;
}

/* Books a collaborative referral; returns its id and the two receiving clinics. */
static const char *collab_booked(const char *ref, char *pt_clinic, char *rmt_clinic, size_t cap)
{
    const char *rid = submit("northpoint", collab_file(ref));
    json_t *hist;
    wait_ready("northpoint", rid, &hist);
    json_t *l = last(hist);
    cr_assert_eq(json_array_size(json_object_get(l, "handoffs")), 2, "two handoffs: %s", jstr(l, "reason"));
    snprintf(pt_clinic, cap, "%s", jstr(handoff_of(l, "physiotherapy"), "clinic_id"));
    snprintf(rmt_clinic, cap, "%s", jstr(handoff_of(l, "massage_therapy"), "clinic_id"));
    cr_assert(pt_clinic[0] && rmt_clinic[0], "both handoffs are booked: %s", jstr(l, "reason"));
    json_decref(hist);
    expect_referrer("booked", rid, "ready", "ready", "ready");
    inbox_q_t q = {pt_clinic, rid, NULL};
    cr_assert(net_wait(inbox_has, &q, WAIT_MS), "%s's inbox has no handoff of %s", pt_clinic, rid);
    q.clinic = rmt_clinic;
    cr_assert(net_wait(inbox_has, &q, WAIT_MS), "%s's inbox has no handoff of %s", rmt_clinic, rid);
    return rid;
}

Test(lifecycle, collaborative_handoffs_live_their_own_lives, .timeout = 400)
{
    net_start_services(&net, START);
    char pt[32], rmt[32], row[64];
    const char *rid = collab_booked("NP-COLLAB-1", pt, rmt, sizeof pt);
    const char *PT = "physiotherapy", *RMT = "massage_therapy";
    cr_expect_str_neq(pt, rmt, "the two handoffs go to two clinics (%s)", pt);

    /* a discipline that is no handoff's is refused, naming the field */
    json_t *a = change_d(1, pt, "accept", rid, "physician", NULL);
    cr_expect(strstr(jstr(a, "reason"), "discipline: 3 is not a handoff's"), "%s", jstr(a, "reason"));
    json_decref(a);

    /* physiotherapy accepts and starts: only its handoff moves */
    a = change_d(0, pt, "accept", rid, PT, NULL);
    cr_expect_str_eq(jstr(a, "status"), "accepted", "the referral: %s", jstr(a, "reason"));
    cr_expect_str_eq(hstatus(a, PT), "accepted");
    cr_expect_eq(json_array_size(json_object_get(a, "handoffs")), pt[0] && strcmp(pt, rmt) ? 1 : 2,
                 "a receiving clinic is told of the handoffs it holds only (%s, %s): %s", pt, rmt,
                 json_dumps(json_object_get(a, "handoffs"), JSON_COMPACT));
    json_decref(a);
    expect_referrer("physiotherapy accepted", rid, "accepted", "accepted", "ready");
    a = change_d(0, pt, "start", rid, PT, NULL);
    cr_expect_str_eq(hstatus(a, PT), "in-progress");
    json_decref(a);
    expect_referrer("physiotherapy started", rid, "in-progress", "in-progress", "ready");

    /* massage declines: massage is booked again, physiotherapy stays in progress */
    json_t *h = history("northpoint", rid);
    settled_q_t sq = {rid, json_array_size(h)};
    json_decref(h);
    a = change_d(0, rmt, "decline", rid, RMT, "no massage therapist free that week");
    cr_expect_str_eq(jstr(a, "status"), "in-progress", "a decline of massage leaves the referral in progress");
    cr_expect_str_eq(jstr(handoff_of(a, RMT), "event"), "decline");
    cr_expect_str_eq(hstatus(a, PT), strcmp(pt, rmt) ? "" : "in-progress");
    json_decref(a);
    cr_assert(net_wait(rebooked, &sq, WAIT_MS), "massage was not booked again (logs in %s)", net.dir);
    h = history("northpoint", rid);
    json_t *dec = json_array_get(h, sq.after);
    cr_expect_str_eq(jstr(dec, "event"), "decline");
    cr_expect_str_eq(jstr(dec, "status"), "in-progress", "the referrer's decline update");
    cr_expect_str_eq(hstatus(dec, PT), "in-progress", "the decline of one never changes the other");
    cr_expect_str_eq(hstatus(dec, RMT), "received", "massage is being booked again");
    json_t *rb = last(h);
    cr_assert_str_eq(jstr(rb, "event"), "book", "massage re-booked: %s", jstr(rb, "reason"));
    cr_expect_str_eq(jstr(rb, "status"), "in-progress");
    cr_expect_str_eq(hstatus(rb, PT), "in-progress", "re-booking massage never changes physiotherapy");
    cr_expect_str_eq(hstatus(rb, RMT), "ready");
    char rmt2[32];
    snprintf(rmt2, sizeof rmt2, "%s", jstr(handoff_of(rb, RMT), "clinic_id"));
    json_decref(h);

    /* what each receiving clinic sees: its own handoff */
    inbox_row(pt, rid, PT, row, sizeof row);
    cr_expect_str_eq(row, "booked/in-progress", "the physiotherapy clinic's patient is in care, not on hold");
    if (strcmp(rmt, rmt2) != 0 && strcmp(rmt, pt) != 0) {
        inbox_row(rmt, rid, RMT, row, sizeof row);
        cr_expect_str_eq(row, "declined/declined", "the clinic that declined massage");
    }
    inbox_q_t q = {rmt2, rid, NULL};
    cr_assert(net_wait(inbox_has, &q, WAIT_MS), "%s's inbox has no handoff of %s", rmt2, rid);

    /* the new massage clinic accepts and starts; physiotherapy completes, then massage */
    json_decref(change_d(0, rmt2, "accept", rid, RMT, NULL));
    expect_referrer("massage accepted", rid, "in-progress", "in-progress", "accepted");
    json_decref(change_d(0, rmt2, "start", rid, RMT, NULL));
    expect_referrer("massage started", rid, "in-progress", "in-progress", "in-progress");
    json_decref(change_d(0, pt, "complete", rid, PT, NULL));
    expect_referrer("physiotherapy completed", rid, "in-progress", "completed", "in-progress");
    inbox_row(pt, rid, PT, row, sizeof row);
    cr_expect_str_eq(row, "booked/completed");
    a = change_d(0, rmt2, "complete", rid, RMT, NULL);
    cr_expect_str_eq(jstr(a, "status"), "completed", "both completed: %s", jstr(a, "reason"));
    json_decref(a);
    expect_referrer("both completed", rid, "completed", "completed", "completed");

    /* completed is final: a revoke is refused */
    a = cli_json(1, "revoke completed", "northpoint", "revoke", rid, NULL);
    cr_expect(strstr(jstr(a, "reason"), "completed"), "%s", jstr(a, "reason"));
    json_decref(a);
}

Test(lifecycle, revoke_cancels_every_open_handoff_and_keeps_a_completed_one, .timeout = 400)
{
    net_start_services(&net, START);
    char pt[32], rmt[32], row[64];
    const char *PT = "physiotherapy", *RMT = "massage_therapy";

    /* physiotherapy in progress, massage ready: both cancelled */
    const char *rid = collab_booked("NP-COLLAB-2", pt, rmt, sizeof pt);
    json_decref(change_d(0, pt, "accept", rid, PT, NULL));
    json_decref(change_d(0, pt, "start", rid, PT, NULL));
    json_t *a = cli_json(0, "revoke", "northpoint", "revoke", rid, "--reason", "patient moved away", NULL);
    cr_expect_str_eq(jstr(a, "status"), "cancelled", "%s", jstr(a, "reason"));
    cr_expect_str_eq(hstatus(a, PT), "cancelled");
    cr_expect_str_eq(hstatus(a, RMT), "cancelled");
    json_decref(a);
    expect_referrer("revoked", rid, "cancelled", "cancelled", "cancelled");
    inbox_row(pt, rid, PT, row, sizeof row);
    cr_expect_str_eq(row, "declined/cancelled", "the physiotherapy clinic is told");
    inbox_row(rmt, rid, RMT, row, sizeof row);
    cr_expect_str_eq(row, "declined/cancelled", "the massage clinic is told");

    /* physiotherapy completed, massage accepted: massage cancelled, physiotherapy stays completed */
    rid = collab_booked("NP-COLLAB-3", pt, rmt, sizeof pt);
    json_decref(change_d(0, pt, "accept", rid, PT, NULL));
    json_decref(change_d(0, pt, "start", rid, PT, NULL));
    json_decref(change_d(0, pt, "complete", rid, PT, NULL));
    json_decref(change_d(0, rmt, "accept", rid, RMT, NULL));
    expect_referrer("physiotherapy completed, massage accepted", rid, "in-progress", "completed", "accepted");
    a = cli_json(0, "revoke", "northpoint", "revoke", rid, NULL);
    cr_expect_str_eq(hstatus(a, PT), "completed", "a revoke never undoes completed care");
    cr_expect_str_eq(hstatus(a, RMT), "cancelled");
    cr_expect_str_eq(jstr(a, "status"), "completed", "completed with one handoff completed, the other cancelled");
    json_decref(a);
    inbox_row(pt, rid, PT, row, sizeof row);
    cr_expect_str_eq(row, "booked/completed", "the physiotherapy clinic's handoff is untouched");
    inbox_row(rmt, rid, RMT, row, sizeof row);
    cr_expect_str_eq(row, "declined/cancelled");
}

Test(lifecycle, a_failed_handoff_ends_alone, .timeout = 400)
{
    net_start_services(&net, START);
    char pt[32], rmt[32];
    const char *PT = "physiotherapy", *RMT = "massage_therapy";
    const char *rid = collab_booked("NP-COLLAB-4", pt, rmt, sizeof pt);
    cr_expect_eq(cli(rmt, NULL, "fail", rid, "--discipline", RMT, NULL), 2, "a fail needs --reason");
    json_t *a = change_d(0, rmt, "fail", rid, RMT, "patient cannot be reached");
    cr_expect_str_eq(hstatus(a, RMT), "failed");
    json_decref(a);
    expect_referrer("massage failed", rid, "ready", "ready", "failed");
    json_decref(change_d(0, pt, "accept", rid, PT, NULL));
    json_decref(change_d(0, pt, "start", rid, PT, NULL));
    a = change_d(0, pt, "complete", rid, PT, NULL);
    cr_expect_str_eq(jstr(a, "status"), "completed", "completed and failed: completed");
    json_decref(a);
    expect_referrer("physiotherapy completed", rid, "completed", "completed", "failed");
}
