/* Integration: one clinic cannot starve another (issue "one clinic can stop another from
 * receiving"). The real broker, intake, triage and scheduling on 127.0.0.1: clinic-a imports
 * 20,000 generated referrals with `handoff import` (4,000 under the sanitizers, which run the
 * programs several times slower), all routine, and while they are queued clinic-b submits 10
 * urgent ones.
 *
 * The bound: service queues hand out urgent work first and take turns over clinics, so an
 * urgent referral waits at each service only for what its workers already hold. Measured as
 * work, not time (a slow machine slows both alike): the import's backlog waits at intake (the
 * import runs before intake starts, so it is all there however fast intake is), and
 * intake records each referral it handles in order (its database's row ids); clinic-b's last
 * urgent referral must be handled within FAIR_BOUND referrals of the moment it was submitted
 * — without fair share it would come after the whole backlog, thousands. Their latencies (p50, p99) are
 * printed. And nothing is lost: every referral of both clinics comes out of the pipeline
 * (booked, on hold or sent back) exactly as submitted. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_refjson.h"
#include "hx_spawn.h"
#include "referral.pb-c.h"

#if defined(__SANITIZE_ADDRESS__)
#define FAIR_IMPORT 4000
#else
#define FAIR_IMPORT 20000
#endif
#define FAIR_URGENT 10
#define FAIR_BOUND 100    /* b's own 10, what intake holds and has handled unacked (credit 32), slack */
#define START "2026-11-23T08:00"

static net_t net;

static void setup(void)
{
    net_init(&net);
}

static void teardown(void)
{
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(fairness, .init = setup, .fini = teardown, .timeout = 1800);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Rewrites an NDJSON file of referrals in place with referrer.clinic_id = clinic (intake
 * refuses a referral whose referrer names another clinic than the sender) and every
 * referral's priority `priority`. */
static void as_clinic(const char *ndjson, const char *clinic, const char *priority)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", ndjson);
    FILE *in = fopen(ndjson, "r"), *out = fopen(tmp, "w");
    cr_assert(in && out);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        cr_assert_not_null(j);
        json_object_set_new(json_object_get(j, "referrer"), "clinic_id", json_string(clinic));
        json_object_set_new(j, "priority", json_string(priority));
        char *text = json_dumps(j, JSON_COMPACT);
        fprintf(out, "%s\n", text);
        free(text);
        json_decref(j);
    }
    free(line);
    fclose(in);
    cr_assert_eq(fclose(out), 0);
    cr_assert_eq(rename(tmp, ndjson), 0);
}

/* Runs handoff-gen to completion. */
static void gen(const char *out, const char *ndjson, int referrals, int seed)
{
    char n[16], s[16];
    snprintf(n, sizeof n, "%d", referrals);
    snprintf(s, sizeof s, "%d", seed);
    const char *argv[] = {net_bin("services/gen/handoff-gen"), "--clinics", "40", "--therapists", "400",
                          "--referrals", n, "--seed", s, "--rules", net_src("services/triage/rules.json"),
                          "--out", out, "--ndjson", ndjson, NULL};
    int code = -1;
    cr_assert_eq(hx_spawn_run(&(hx_spawn_opts_t){.argv = argv}, NULL, 0, NULL, 0, &code), 0);
    cr_assert_eq(code, 0, "handoff-gen failed");
}

/* The referral ids (as hx_referral_id writes them) of the refs in an NDJSON file, for clinic,
 * as keys of a JSON object (a set). */
static json_t *expected_ids(const char *ndjson, const char *clinic)
{
    FILE *f = fopen(ndjson, "r");
    cr_assert_not_null(f);
    json_t *set = json_object();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        cr_assert_not_null(j);
        uint8_t id[16];
        char rid[HX_REFERRAL_ID_LEN + 1];
        hx_submission_id(clinic, json_string_value(json_object_get(j, "ref")), id);
        hx_referral_id(id, rid);
        json_object_set_new(set, rid, json_false());
        json_decref(j);
    }
    free(line);
    fclose(f);
    return set;
}

/* The count of messages settled out of service queue `queue` so far (the admin stats); with
 * `deepest`, the name of the service queue holding the most waiting messages goes there. */
static uint64_t settled_out(hx_client_t *admin, const char *queue, uint64_t *waiting, char *deepest, size_t cap)
{
    char *text = NULL;
    cr_assert_eq(hx_client_stats(admin, &text), 0, "%s", hx_client_error(admin));
    json_t *s = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(s);
    uint64_t out = 0;
    if (waiting)
        *waiting = 0;
    size_t i;
    json_t *q;
    uint64_t most = 0;
    json_array_foreach(json_object_get(s, "queues"), i, q) {
        uint64_t depth = (uint64_t)json_integer_value(json_object_get(q, "depth"));
        if (waiting)
            *waiting += depth + (uint64_t)json_integer_value(json_object_get(q, "inflight"));
        if (deepest && depth >= most) {
            most = depth;
            snprintf(deepest, cap, "%s", json_string_value(json_object_get(q, "name")));
        }
        if (queue && strcmp(json_string_value(json_object_get(q, "name")), queue) == 0)
            out = (uint64_t)json_integer_value(json_object_get(q, "out"));
    }
    json_decref(s);
    return out;
}

/* Fetches and acks what the clinic's mailbox holds; marks in `set` every referral of the set
 * that came out of the pipeline (a status from scheduling: booked or on hold; or sent back
 * by intake or triage), storing its arrival time in ms since t0 in `when` (NULL: not kept).
 * Returns how many were newly marked. */
static size_t drain(hx_client_t *c, json_t *set, uint64_t t0, uint64_t *when, size_t *n_when, bool booked_only)
{
    size_t marked = 0;
    for (;;) {
        hx_batch_t *b = NULL;
        cr_assert_eq(hx_client_fetch(c, 1000, &b), 0, "%s", hx_client_error(c));
        if (b->count == 0) {
            hx_batch_destroy(&b);
            return marked;
        }
        uint8_t (*ids)[16] = calloc(b->count, 16);
        for (size_t i = 0; i < b->count; i++) {
            const hx_msg_t *m = &b->msgs[i];
            memcpy(ids[i], m->id, 16);
            if (strcmp(m->type, "handoff.StatusUpdate") != 0)
                continue;
            Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
            cr_assert_not_null(u);
            bool booked = u->status == HANDOFF__TASK_STATUS__TASK_READY || u->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD;
            bool out = !u->refused && (booked || u->status == HANDOFF__TASK_STATUS__TASK_REJECTED);
            cr_assert(!booked_only || u->status != HANDOFF__TASK_STATUS__TASK_REJECTED, "%s was sent back: %s",
                      u->referral_id, u->reason);
            json_t *seen = json_object_get(set, u->referral_id);
            cr_assert_not_null(seen, "a status for %s, a referral this clinic never sent", u->referral_id);
            if (out && json_is_false(seen)) {
                json_object_set_new(set, u->referral_id, json_true());
                marked++;
                if (when)
                    when[(*n_when)++] = now_ms() - t0;
            }
            handoff__status_update__free_unpacked(u, NULL);
        }
        cr_assert_eq(hx_client_ack(c, (const uint8_t(*)[16])ids, b->count), 0, "%s", hx_client_error(c));
        free(ids);
        hx_batch_destroy(&b);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(fairness, an_import_does_not_hold_back_another_clinics_urgent_referrals)
{
    char gen_a[600], gen_b[600], a_nd[600], b_nd[600], dir_json[700];
    snprintf(gen_a, sizeof gen_a, "%s/gen-a", net.dir);
    snprintf(gen_b, sizeof gen_b, "%s/gen-b", net.dir);
    snprintf(a_nd, sizeof a_nd, "%s/a.ndjson", net.dir);
    snprintf(b_nd, sizeof b_nd, "%s/b.ndjson", net.dir);
    snprintf(dir_json, sizeof dir_json, "%s/directory.json", gen_a);
    gen(gen_a, a_nd, FAIR_IMPORT, 11);
    gen(gen_b, b_nd, FAIR_URGENT, 12);
    as_clinic(a_nd, "clinic-a", "routine");    /* a routine import ... */
    as_clinic(b_nd, "clinic-b", "urgent");     /* ... and urgent referrals of another clinic */

    net_start_broker(&net, NULL);               /* the network's own policy and default share */
    const char *sched[] = {"--directory", dir_json, NULL};
    net_start_scheduling(&net, "scheduling", START, NULL, sched);
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");

    /* clinic-a imports its whole file (every row accepted by the broker) while intake is not
     * running yet, so that the whole import waits at intake */
    static char out[1 << 16];
    const char *import[] = {"import", a_nd, NULL};
    cr_assert_eq(net_cli(&net, "clinic-a", out, sizeof out, import), 0, "import failed: %s (see %s/cli.log)", out,
                 net.dir);
    uint64_t backlog = 0;
    char deepest[80] = "";
    settled_out(admin, NULL, &backlog, deepest, sizeof deepest);
    cr_assert_str_eq(deepest, "intake", "the import's backlog is at %s, not at intake", deepest);
    cr_assert_geq(backlog, FAIR_IMPORT / 4, "only %llu messages queued after the import: no backlog to test against",
                  (unsigned long long)backlog);
    /* intake and triage start on that backlog: intake commits a burst at a time and would
     * otherwise pass the import on to scheduling as fast as the CLI sends it */
    net_start_front(&net);

    /* clinic-b: 10 urgent referrals, submitted at once */
    json_t *set_b = expected_ids(b_nd, "clinic-b");
    FILE *f = fopen(b_nd, "r");
    cr_assert_not_null(f);
    hx_msg_t msgs[FAIR_URGENT];
    uint8_t *bufs[FAIR_URGENT];
    char *line = NULL;
    size_t cap = 0, k = 0;
    while (k < FAIR_URGENT && getline(&line, &cap, f) > 0) {   /* (generated without red flags: seed 12) */
        json_t *j = json_loads(line, 0, NULL);
        static hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *r = hx_referral_from_json(j, &errs);
        cr_assert_not_null(r);
        memset(&msgs[k], 0, sizeof msgs[k]);
        hx_submission_id("clinic-b", r->ref, msgs[k].id);
        size_t len = handoff__referral__get_packed_size(r);
        bufs[k] = malloc(len);
        handoff__referral__pack(r, bufs[k]);
        msgs[k].to_kind = HX_TO_SERVICE;
        msgs[k].to = "intake";
        msgs[k].type = "handoff.Referral";
        msgs[k].payload = bufs[k];
        msgs[k].payload_len = len;
        msgs[k].priority = 1;                   /* urgent, as the CLI sends an urgent referral */
        hx_referral_free(r);
        json_decref(j);
        k++;
    }
    free(line);
    fclose(f);
    cr_assert_eq(k, FAIR_URGENT);
    hx_client_t *b = net_session(&net, HX_ROLE_CLINIC, "clinic-b");
    uint64_t t0 = now_ms();
    size_t failed = 0;
    cr_assert_eq(hx_client_submit_many(b, msgs, k, k, &failed), 0, "%s", hx_client_error(b));
    /* b's are queued now: what intake settled so far (it may hold up to its credit more) */
    uint64_t s0 = settled_out(admin, "intake", NULL, NULL, 0);
    uint64_t lat[FAIR_URGENT];
    size_t n_lat = 0, got_b = 0;
    while (got_b < FAIR_URGENT && now_ms() - t0 < 600000) {
        got_b += drain(b, set_b, t0, lat, &n_lat, true);
        if (got_b < FAIR_URGENT)
            usleep(20000);
    }
    cr_assert_eq(got_b, FAIR_URGENT, "clinic-b's urgent referrals did not all come out (logs in %s)", net.dir);
    /* where intake handled clinic-b's last one, counting from the first referral */
    char db[600];
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    sqlite3 *sq = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(sq, 10000);
    cr_assert_eq(sqlite3_prepare_v2(sq, "SELECT count(*), max(rowid) FROM referrals WHERE clinic = 'clinic-b'", -1, &st,
                                    NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(st, 0), FAIR_URGENT);
    uint64_t s1 = (uint64_t)sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(sq);
    qsort(lat, n_lat, sizeof lat[0], cmp_u64);
    fprintf(stderr,
            "fairness: %d urgent referrals of clinic-b behind a %d-row import of clinic-a (%llu messages queued): "
            "p50 %llu ms, p99 %llu ms from submit to booked/on hold; intake handled the last of them %llu "
            "referrals after their submit (bound %d)\n",
            FAIR_URGENT, FAIR_IMPORT, (unsigned long long)backlog, (unsigned long long)lat[n_lat / 2],
            (unsigned long long)lat[n_lat - 1], (unsigned long long)(s1 - s0), FAIR_BOUND);
    cr_expect_leq(s1, s0 + FAIR_BOUND,
                  "intake handled clinic-b's last urgent referral %llu referrals after it was submitted: it waited "
                  "behind clinic-a's import", (unsigned long long)(s1 - s0));
    for (size_t i = 0; i < k; i++)
        free(bufs[i]);

    /* nothing lost: every one of clinic-a's referrals comes out too */
    json_t *set_a = expected_ids(a_nd, "clinic-a");
    cr_assert_eq(json_object_size(set_a), FAIR_IMPORT);
    hx_client_t *a = net_session(&net, HX_ROLE_CLINIC, "clinic-a");
    size_t got_a = 0;
    uint64_t last_progress = now_ms();
    while (got_a < FAIR_IMPORT && now_ms() - last_progress < 120000) {
        size_t n = drain(a, set_a, t0, NULL, NULL, false);
        got_a += n;
        if (n)
            last_progress = now_ms();
        else
            usleep(200000);
    }
    cr_assert_eq(got_a, FAIR_IMPORT, "%zu of clinic-a's %d referrals came out (logs in %s)", got_a, FAIR_IMPORT,
                 net.dir);
    hx_client_destroy(&a);
    hx_client_destroy(&b);
    hx_client_destroy(&admin);
    json_decref(set_a);
    json_decref(set_b);
}
