/* Integration: intake's record on PostgreSQL (--db postgresql://…), with the server restarted
 * while referrals flow. The real broker and intake on 127.0.0.1, a PostgreSQL server of
 * Debian's package started by the test (hx_pgtest) on a port of its own. A clinic submits
 * referrals before, during and after the outage. While the server is down, intake gives what
 * the broker delivers back (BYE: not a failed delivery, so nothing goes to the dead letters
 * however long the outage; the broker here dead-letters at the first failure), says it is not ready on /readyz and why, and serves again by
 * itself once the server is back. Every referral is recorded once and the clinic is told
 * "requested" once for each: nothing lost, nothing doubled. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "hx_api.h"
#include "hx_client.h"
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_pgtest.h"
#include "hx_refjson.h"
#include "hx_spawn.h"
#include "hx_registration.h"
#include "referral.pb-c.h"

#define CLINIC "northpoint"
#define BEFORE 60
#define DURING 60
#define AFTER 30

static net_t net;
static hx_pgtest_t pg;

static void setup(void)
{
    net_init(&net);
    char why[2048];
    cr_assert_eq(hx_pgtest_start(&pg, why, sizeof why), 0, "%s", why);
}

static void teardown(void)
{
    int bad = net_stop_all(&net);
    hx_pgtest_destroy(&pg);                     /* the server goes either way */
    net_fini_verdict(bad, net.dir);
}

TestSuite(store_pg, .init = setup, .fini = teardown, .timeout = 600);

/* GET path from 127.0.0.1:port: the HTTP status, the body in body. */
static int http_get(int port, const char *path, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    body[0] = '\0';
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[200];
    static char resp[1 << 16];      /* /metrics: some 20 KB */
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    size_t got = 0;
    if (write(fd, req, (size_t)n) == n) {
        ssize_t r;
        while (got + 1 < sizeof resp && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0)
            got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    int status = -1;
    sscanf(resp, "HTTP/%*s %d", &status);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

/* The sample referrals, sent as CLINIC with refs PG-<i>. */
static Handoff__Referral *samples[64];
static size_t n_samples;

static void load_samples(void)
{
    const char *names[] = {"01-ankle-sprain.json", "04-tension-headache.json", "05-stress-anxiety.json", NULL};
    for (size_t i = 0; names[i]; i++) {
        char path[600];
        snprintf(path, sizeof path, "deploy/sample/referrals/%s", names[i]);
        json_error_t jerr;
        json_t *j = json_load_file(net_src(path), 0, &jerr);
        if (!j)
            continue;
        hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *r = hx_referral_from_json(j, &errs);
        json_decref(j);
        if (r && !hx_intake_check(r, hx_registration_builtin(), &errs))
            samples[n_samples++] = r;
        else if (r)
            hx_referral_free(r);
    }
}

static void submit_range(hx_client_t *c, int from, int to)
{
    for (int i = from; i < to; i++) {
        Handoff__Referral *r = samples[(size_t)i % n_samples];
        char ref[32];
        snprintf(ref, sizeof ref, "PG-%04d", i);
        char *old_ref = r->ref, *old_clinic = r->referrer->clinic_id;
        r->ref = ref;
        r->referrer->clinic_id = CLINIC;
        size_t len = handoff__referral__get_packed_size(r);
        uint8_t *buf = malloc(len);
        cr_assert_not_null(buf);
        handoff__referral__pack(r, buf);
        r->ref = old_ref;
        r->referrer->clinic_id = old_clinic;
        hx_msg_t m = {.to_kind = HX_TO_SERVICE, .to = "intake", .type = "handoff.Referral", .payload = buf,
                      .payload_len = len};
        hx_submission_id(CLINIC, ref, m.id);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "%s", hx_client_error(c));
        free(buf);
    }
}

/* The clinic's mailbox drained: each "requested" status counted per referral in seen. */
/* One more for referral_id in counts. */
static void count_one(json_t *counts, const char *referral_id)
{
    json_t *n = json_object_get(counts, referral_id);
    json_object_set_new(counts, referral_id, json_integer(n ? json_integer_value(n) + 1 : 1));
}

/* The clinic's mailbox drained, acked, each StatusUpdate given to on_update. */
static void drain_updates(hx_client_t *c, void (*on_update)(const Handoff__StatusUpdate *u, void *arg), void *arg)
{
    for (;;) {
        hx_batch_t *b = NULL;
        cr_assert_eq(hx_client_fetch(c, 200, &b), 0, "%s", hx_client_error(c));
        if (b->count == 0) {
            hx_batch_destroy(&b);
            return;
        }
        uint8_t (*ids)[16] = calloc(b->count, 16);
        for (size_t i = 0; i < b->count; i++) {
            memcpy(ids[i], b->msgs[i].id, 16);
            if (strcmp(b->msgs[i].type, "handoff.StatusUpdate") != 0)
                continue;
            Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, b->msgs[i].payload_len,
                                                                      b->msgs[i].payload);
            cr_assert_not_null(u);
            on_update(u, arg);
            handoff__status_update__free_unpacked(u, NULL);
        }
        cr_assert_eq(hx_client_ack(c, (const uint8_t(*)[16])ids, b->count), 0, "%s", hx_client_error(c));
        free(ids);
        hx_batch_destroy(&b);
    }
}

/* Each "requested" status counted per referral in seen (intake's only answer here). */
static void on_requested(const Handoff__StatusUpdate *u, void *seen)
{
    cr_assert_eq(u->status, HANDOFF__TASK_STATUS__TASK_REQUESTED, "%s: %s", u->referral_id, u->reason);
    count_one(seen, u->referral_id);
}

static void drain(hx_client_t *c, json_t *seen)
{
    drain_updates(c, on_requested, seen);
}

typedef struct {
    hx_client_t *c;
    json_t *seen;
    size_t want;
} told_t;

static bool all_told(void *arg)
{
    told_t *t = arg;
    drain(t->c, t->seen);
    return json_object_size(t->seen) >= t->want;
}

static bool log_says(void *arg)
{
    char path[600], buf[1 << 16];
    snprintf(path, sizeof path, "%s/intake.log", net.dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return strstr(buf, (const char *)arg) != NULL;
}

typedef struct {
    int port, want;
    char body[600];
} ready_t;

static bool readyz_is(void *arg)
{
    ready_t *r = arg;
    return http_get(r->port, "/readyz", r->body, sizeof r->body) == r->want;
}

/* Rows in PostgreSQL's intake.referrals: all, and distinct ids. */
static void pg_rows(long *all, long *distinct)
{
    PGconn *c = PQconnectdb(pg.url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SELECT count(*), count(DISTINCT referral_id) FROM intake.referrals "
                            "WHERE outcome = 'requested'");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    *all = atol(PQgetvalue(r, 0, 0));
    *distinct = atol(PQgetvalue(r, 0, 1));
    PQclear(r);
    PQfinish(c);
}

Test(store_pg, intake_on_postgresql_rides_out_a_server_restart_losing_and_doubling_nothing)
{
    load_samples();
    cr_assert_geq(n_samples, 2, "sample referrals that pass intake");
    /* one failed delivery is a dead letter: a nack for the outage would show at once */
    const char *extra[] = {"--heartbeat-ms", "200", "--max-attempts", "1", NULL};
    net_start_broker(&net, extra);
    int http = net_free_port();
    char http_arg[32];
    snprintf(http_arg, sizeof http_arg, "127.0.0.1:%d", http);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", pg.url,
                            "--http", http_arg, NULL};
    net_spawn(&net, "intake", intake);
    ready_t ready = {.port = http, .want = 200};
    cr_assert(net_wait(readyz_is, &ready, 30000), "intake never ready: %s (logs in %s)", ready.body, net.dir);

    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, CLINIC);
    told_t told = {.c = c, .seen = json_object(), .want = BEFORE};
    submit_range(c, 0, BEFORE);
    cr_assert(net_wait(all_told, &told, 60000), "before: %zu of %d told (logs in %s)", json_object_size(told.seen),
              BEFORE, net.dir);

    /* the server goes away; referrals keep coming */
    cr_assert_eq(hx_pgtest_stop(&pg), 0);
    submit_range(c, BEFORE, BEFORE + DURING);
    cr_assert(net_wait(log_says, "the store cannot be reached", 60000), "intake never noticed (logs in %s)", net.dir);
    ready.want = 503;
    cr_assert(net_wait(readyz_is, &ready, 30000), "/readyz: %s", ready.body);
    cr_expect(strstr(ready.body, "the store cannot be reached") && strstr(ready.body, "127.0.0.1"), "/readyz: %s",
              ready.body);
    static char metrics[1 << 16];
    cr_assert_eq(http_get(http, "/metrics", metrics, sizeof metrics), 200);
    cr_expect(strstr(metrics, "handoff_store_connected{store=\"intake\"} 0"), "while down:\n%s", metrics);

    /* back: intake serves again by itself, and what waited is handled */
    char why[2048];
    cr_assert_eq(hx_pgtest_restart(&pg, why, sizeof why), 0, "%s", why);
    submit_range(c, BEFORE + DURING, BEFORE + DURING + AFTER);
    told.want = BEFORE + DURING + AFTER;
    cr_assert(net_wait(all_told, &told, 120000), "after: %zu of %d told (logs in %s)", json_object_size(told.seen),
              BEFORE + DURING + AFTER, net.dir);
    ready.want = 200;
    cr_expect(net_wait(readyz_is, &ready, 30000), "/readyz after: %s", ready.body);
    /* the store's figures tell the same story: connected again, a reconnection, statements timed */
    cr_assert_eq(http_get(http, "/metrics", metrics, sizeof metrics), 200);
    cr_expect(strstr(metrics, "handoff_store_connected{store=\"intake\"} 1"), "%s", metrics);
    const char *rec = strstr(metrics, "handoff_store_reconnects_total{store=\"intake\"} ");
    cr_expect(rec && atol(rec + strlen("handoff_store_reconnects_total{store=\"intake\"} ")) >= 1, "%s", metrics);
    const char *cnt = strstr(metrics, "handoff_store_statement_seconds_count{store=\"intake\"} ");
    cr_expect(cnt && atol(cnt + strlen("handoff_store_statement_seconds_count{store=\"intake\"} ")) >=
                         BEFORE + DURING + AFTER, "one timed statement per referral at least:\n%s", metrics);
    const char *commits = strstr(metrics, "handoff_store_commit_seconds_count{store=\"intake\"} ");
    cr_expect(commits && atol(commits + strlen("handoff_store_commit_seconds_count{store=\"intake\"} ")) >= 1,
              "%s", metrics);

    const char *rid;
    json_t *n;
    json_object_foreach(told.seen, rid, n) cr_expect_eq(json_integer_value(n), 1, "%s told %lld times", rid,
                                                        (long long)json_integer_value(n));
    long all = 0, distinct = 0;
    pg_rows(&all, &distinct);
    cr_expect_eq(all, BEFORE + DURING + AFTER, "rows in intake.referrals");
    cr_expect_eq(distinct, all);

    /* nothing went to the dead letters: the outage was not a failed delivery */
    hx_client_t *admin = net_session(&net, HX_ROLE_ADMIN, "ops");
    char *text = NULL;
    cr_assert_eq(hx_client_stats(admin, &text), 0, "%s", hx_client_error(admin));
    json_t *s = json_loads(text, 0, NULL);
    free(text);
    cr_assert_not_null(s);
    json_t *dead = json_object_get(json_object_get(s, "totals"), "dead_lettered");
    cr_expect(json_is_integer(dead) && json_integer_value(dead) == 0, "dead letters: %lld",
              (long long)json_integer_value(dead));
    cr_expect_eq(json_integer_value(json_object_get(s, "dlq")), 0);
    json_decref(s);
    hx_client_destroy(&admin);
    json_decref(told.seen);
    hx_client_destroy(&c);
    for (size_t i = 0; i < n_samples; i++)
        hx_referral_free(samples[i]);
}

/* ---- three scheduling workers on one PostgreSQL ---------------------------------------------- */

#define COMPETING 1000
#define REFERRER "riverdale"

/* Two physiotherapists at one clinic, mornings on weekdays: with a week's horizon a few dozen
 * sessions for a thousand referrals. */
static const char few_slots_json[] =
    "{\"version\": 1, \"clinics\": [{\"id\": \"northpoint\", \"name\": \"Northpoint\", \"city\": \"Toronto\"}],"
    " \"therapists\": ["
    "  {\"id\": \"t-amira\", \"name\": \"Amira Haddad\", \"discipline\": \"physiotherapy\", \"registration\": \"CPO 14523\","
    "   \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": false, \"hours\": ["
    "    {\"day\": 1, \"from\": \"09:00\", \"to\": \"12:00\"}, {\"day\": 2, \"from\": \"09:00\", \"to\": \"12:00\"},"
    "    {\"day\": 3, \"from\": \"09:00\", \"to\": \"12:00\"}, {\"day\": 4, \"from\": \"09:00\", \"to\": \"12:00\"},"
    "    {\"day\": 5, \"from\": \"09:00\", \"to\": \"12:00\"}]},"
    "  {\"id\": \"t-jonah\", \"name\": \"Jonah Park\", \"discipline\": \"physiotherapy\", \"registration\": \"CPO 20311\","
    "   \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": false, \"hours\": ["
    "    {\"day\": 1, \"from\": \"10:00\", \"to\": \"12:00\"}, {\"day\": 3, \"from\": \"10:00\", \"to\": \"12:00\"},"
    "    {\"day\": 5, \"from\": \"10:00\", \"to\": \"12:00\"}]}]}";

static const char competing_json[] =
    "{\"ref\": \"X\", \"patient\": {\"given_name\": \"Ada\", \"family_name\": \"Example\", \"birth_date\": \"1980-02-03\","
    " \"phone\": \"+1 416-555-0100\", \"health_card\": \"5555-100-001-AE\", \"language\": \"en\"},"
    " \"referrer\": {\"name\": \"Isabel Ruiz\", \"discipline\": \"physiotherapy\", \"registration_body\": \"CPO\","
    " \"registration_number\": \"19877\", \"clinic_id\": \"" REFERRER "\", \"phone\": \"416-555-0199\"},"
    " \"reason\": \"Grade II lateral ankle sprain three weeks ago; still limping on stairs.\","
    " \"conditions\": [\"ankle_sprain\"], \"findings\": [], \"priority\": \"routine\", \"consent\": \"given\","
    " \"referral_date\": \"2027-02-26\"}";

/* StatusUpdates in the referrer's mailbox: per referral, how many said "book" and "hold". */
typedef struct {
    json_t *booked, *held;
} placed_t;

static void on_placed(const Handoff__StatusUpdate *u, void *arg)
{
    placed_t *p = arg;
    if (!strcmp(u->event, "book"))
        count_one(p->booked, u->referral_id);
    else if (!strcmp(u->event, "hold"))
        count_one(p->held, u->referral_id);
}

static void drain_outcomes(hx_client_t *c, json_t *booked, json_t *held)
{
    placed_t p = {booked, held};
    drain_updates(c, on_placed, &p);
}

typedef struct {
    hx_client_t *c;
    json_t *booked, *held;
    size_t want;
} outcomes_t;

static bool all_placed(void *arg)
{
    outcomes_t *o = arg;
    drain_outcomes(o->c, o->booked, o->held);
    return json_object_size(o->booked) + json_object_size(o->held) >= o->want;
}

/* Referrals from REFERRER (competing_json) with refs PREFIX-<i>, i in [from, to). */
static void submit_competing(hx_client_t *c, const char *prefix, int from, int to)
{
    json_error_t jerr;
    json_t *j = json_loads(competing_json, 0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_from_json(j, &errs);
    json_decref(j);
    cr_assert_not_null(r);
    cr_assert_eq(hx_intake_check(r, hx_registration_builtin(), &errs), 0, "the referral passes intake");
    char *old_ref = r->ref;
    for (int i = from; i < to; i++) {
        char ref[32];
        snprintf(ref, sizeof ref, "%s-%04d", prefix, i);
        r->ref = ref;
        size_t len = handoff__referral__get_packed_size(r);
        uint8_t *buf = malloc(len);
        cr_assert_not_null(buf);
        handoff__referral__pack(r, buf);
        hx_msg_t m = {.to_kind = HX_TO_SERVICE, .to = "intake", .type = "handoff.Referral", .payload = buf,
                      .payload_len = len};
        hx_submission_id(REFERRER, ref, m.id);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "%s", hx_client_error(c));
        free(buf);
    }
    r->ref = old_ref;
    hx_referral_free(r);
}

/* The few-slots directory in the test's directory; its path in out. */
static void write_few_slots(char *out, size_t cap)
{
    snprintf(out, cap, "%s/few-slots.json", net.dir);
    FILE *f = fopen(out, "w");
    cr_assert_not_null(f);
    fputs(few_slots_json, f);
    fclose(f);
}

static pid_t start_scheduling(const char *name, const char *directory, const char *db)
{
    const char *sched[] = {net_bin("services/scheduling/handoff-scheduling"), "--broker", net.endpoint,
                           "--directory", directory, "--start", "2027-03-01T00:00", "--horizon-days", "7",
                           "--db", db, "--credit", "20", NULL};
    return net_spawn(&net, name, sched);
}

/* A scheduling worker's log says it found the store gone. */
static bool sched_paused(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 3; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/scheduling-%d.log", net.dir, i);
        FILE *f = fopen(path, "r");
        char *line = NULL;
        size_t cap = 0;
        bool found = false;
        while (f && !found && getline(&line, &cap, f) > 0)
            found = strstr(line, "the store cannot be reached") != NULL;
        free(line);
        if (f)
            fclose(f);
        if (found)
            return true;
    }
    return false;
}

/* One number from PostgreSQL. */
static long pg_long(const char *sql)
{
    PGconn *c = PQconnectdb(pg.url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    long v = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* Three scheduling workers share one PostgreSQL store (as on three machines) while a thousand
 * referrals compete for a few dozen sessions, and the server is restarted in the middle: no
 * session is booked twice, and every referral is booked or on hold exactly once, as its
 * referrer is told; the workers resume by themselves. */
Test(store_pg, three_scheduling_workers_on_one_postgresql_never_double_book_across_a_restart)
{
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
    char directory[600];
    write_few_slots(directory, sizeof directory);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", pg.url, NULL};
    const char *triage[] = {net_bin("services/triage/handoff-triage"), "--broker", net.endpoint, "--rules",
                            net_src("services/triage/rules.json"), NULL};
    net_spawn(&net, "intake", intake);
    net_spawn(&net, "triage", triage);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "scheduling-%d", i + 1);
        start_scheduling(name, directory, pg.url);
    }
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, REFERRER);
    outcomes_t o = {.c = c, .booked = json_object(), .held = json_object(), .want = COMPETING / 10};
    submit_competing(c, "MW", 0, COMPETING);
    cr_assert(net_wait(all_placed, &o, 120000), "%zu booked and %zu held of %d before the restart (logs in %s)",
              json_object_size(o.booked), json_object_size(o.held), COMPETING / 10, net.dir);
    /* the server restarted under the three of them, with most referrals still to place: a
     * worker finds it gone, gives its burst back and waits, and all go on by themselves */
    cr_assert_eq(hx_pgtest_stop(&pg), 0);
    cr_assert(net_wait(sched_paused, NULL, 60000), "no scheduling worker noticed (logs in %s)", net.dir);
    char why[2048];
    cr_assert_eq(hx_pgtest_restart(&pg, why, sizeof why), 0, "%s", why);
    o.want = COMPETING;
    cr_assert(net_wait(all_placed, &o, 300000), "%zu booked and %zu held of %d (logs in %s)",
              json_object_size(o.booked), json_object_size(o.held), COMPETING, net.dir);
    drain_outcomes(c, o.booked, o.held);
    const char *rid;
    json_t *n;
    json_object_foreach(o.booked, rid, n) {
        cr_expect_eq(json_integer_value(n), 1, "%s told booked %lld times", rid, (long long)json_integer_value(n));
        cr_expect_null(json_object_get(o.held, rid), "%s told booked and held", rid);
    }
    json_object_foreach(o.held, rid, n)
        cr_expect_eq(json_integer_value(n), 1, "%s told held %lld times", rid, (long long)json_integer_value(n));
    size_t booked = json_object_size(o.booked);
    cr_expect_eq(booked + json_object_size(o.held), COMPETING);
    cr_expect_gt(booked, 20, "the week's sessions were booked: %zu", booked);
    cr_expect_gt(json_object_size(o.held), COMPETING / 2, "most wait: %zu", json_object_size(o.held));

    /* the store agrees: each referral once, booked or held; no two live bookings of one
     * therapist overlap; each live booking holds its own slots and nothing else does */
    cr_expect_eq(pg_long("SELECT count(*) FROM scheduling.referrals"), COMPETING);
    cr_expect_eq(pg_long("SELECT count(*) FROM scheduling.referrals r WHERE "
                         "(SELECT count(*) FROM scheduling.bookings k WHERE k.referral_id = r.referral_id "
                         "AND k.status != 7) + (CASE WHEN r.pending = 9 THEN 1 ELSE 0 END) != 1"), 0);
    cr_expect_eq(pg_long("SELECT count(*) FROM scheduling.bookings WHERE status != 7"), (long)booked);
    cr_expect_eq(pg_long("SELECT count(*) FROM scheduling.bookings a JOIN scheduling.bookings b "
                         "ON a.therapist_id = b.therapist_id AND a.referral_id < b.referral_id "
                         "WHERE a.status != 7 AND b.status != 7 "
                         "AND a.start < b.start + b.minutes AND b.start < a.start + a.minutes"), 0,
                 "overlapping bookings");
    cr_expect_eq(pg_long("SELECT count(*) FROM scheduling.slots"),
                 pg_long("SELECT COALESCE(sum(minutes / 15), 0) FROM scheduling.bookings WHERE status != 7"));
    /* the work was shared: every worker handled some */
    for (int i = 0; i < 3; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s/scheduling-%d.log", net.dir, i + 1);
        FILE *l = fopen(path, "r");
        cr_assert_not_null(l, "%s", path);
        char *line = NULL;
        size_t cap = 0;
        bool worked = false;
        while (!worked && getline(&line, &cap, l) > 0)
            worked = strstr(line, " booked: ") || strstr(line, "on hold");
        free(line);
        fclose(l);
        cr_expect(worked, "scheduling-%d handled nothing (%s)", i + 1, path);
    }
    json_decref(o.booked);
    json_decref(o.held);
    hx_client_destroy(&c);
}

/* ---- a SQLite network moved to PostgreSQL ----------------------------------------------------- */

#define MIGRATED 40
#define AFTERWARDS 10

/* Each table's rows in one text, in one order, from the SQLite file and from PostgreSQL. */
static const char *const fingerprints[][2] = {
    {"SELECT count(*) || ':' || COALESCE(group_concat(x, '|'), '') FROM (SELECT referral_id || ',' || status || ',' || "
     "pending || ',' || received_ms AS x FROM referrals ORDER BY referral_id)",
     "SELECT count(*) || ':' || COALESCE(string_agg(referral_id || ',' || status || ',' || pending || ',' || "
     "received_ms, '|' ORDER BY referral_id COLLATE \"C\"), '') FROM scheduling.referrals"},
    {"SELECT count(*) || ':' || COALESCE(group_concat(x, '|'), '') FROM (SELECT referral_id || ',' || discipline || "
     "',' || therapist_id || ',' || start || ',' || minutes || ',' || status AS x FROM bookings ORDER BY referral_id)",
     "SELECT count(*) || ':' || COALESCE(string_agg(referral_id || ',' || discipline || ',' || therapist_id || ',' || "
     "start || ',' || minutes || ',' || status, '|' ORDER BY referral_id COLLATE \"C\"), '') FROM scheduling.bookings"},
    {"SELECT count(*) || ':' || COALESCE(sum(slot), 0) FROM slots",
     "SELECT count(*) || ':' || COALESCE(sum(slot), 0) FROM scheduling.slots"},
    {"SELECT count(*) || ':' || COALESCE(group_concat(x, '|'), '') FROM (SELECT referral_id || ',' || event || ',' || "
     "at_ms AS x FROM handoff_log ORDER BY referral_id, at_ms, event)",
     "SELECT count(*) || ':' || COALESCE(string_agg(referral_id || ',' || event || ',' || at_ms, '|' "
     "ORDER BY referral_id COLLATE \"C\", at_ms, event COLLATE \"C\"), '') FROM scheduling.handoff_log"},
    {"SELECT count(*) || ':' || COALESCE(group_concat(x, '|'), '') FROM (SELECT referral_id || ',' || priority || ',' "
     "|| since_ms || ',' || told_position AS x FROM waitlist ORDER BY referral_id)",
     "SELECT count(*) || ':' || COALESCE(string_agg(referral_id || ',' || priority || ',' || since_ms || ',' || "
     "told_position, '|' ORDER BY referral_id COLLATE \"C\"), '') FROM scheduling.waitlist"},
    {"SELECT count(*) || ':' || COALESCE(sum(n), 0) FROM waitlist_counts",
     "SELECT count(*) || ':' || COALESCE(sum(n), 0) FROM scheduling.waitlist_counts"},
    {"SELECT count(*) || ':' || COALESCE(sum(length(outputs)), 0) FROM handled",
     "SELECT count(*) || ':' || COALESCE(sum(length(outputs)), 0) FROM scheduling.handled"},
};

static void sqlite_text(const char *path, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void pg_text(const char *sql, char *out, size_t cap)
{
    PGconn *c = PQconnectdb(pg.url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
}

/* handoff admin migrate ARGS...: its exit code, what it printed in out. */
static int migrate(char *out, size_t cap, const char *from, const char *to)
{
    char log[600];
    snprintf(log, sizeof log, "%s/migrate.log", net.dir);
    const char *argv[] = {net_bin("services/cli/handoff"), "admin", "migrate", "--from", from, "--to", to, NULL};
    int code = -1;
    hx_spawn_opts_t o = {.argv = argv, .err_log = log, .out_pipe = true};
    cr_assert_eq(hx_spawn_run(&o, out, cap, NULL, 0, &code), 0);
    return code;
}

/* The portal's accounts file beside the network's (web-accounts.db): a user with a session
 * and notices, three audit lines, a notice waiting, an API client with a subscription. Its
 * session token and the client's secret in session and secret. */
static void accounts_made(const char *path, char session[HX_TOKEN_LEN + 1], char secret[HX_TOKEN_LEN + 1])
{
    hx_accounts_t *a = NULL;
    hx_accounts_config_t cfg = {0};
    char err[512], why[256];
    cr_assert_eq(hx_accounts_open(path, &cfg, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(hx_user_add(a, "mei@lakeside", "lakeside", HX_USER_CLINICIAN, "correct horse battery", why,
                             sizeof why), 0, "%s", why);
    cr_assert_eq(hx_user_set_notify(a, "mei@lakeside", "mei@lakeside.example", HX_NOTIFY_ALL, why, sizeof why), 0);
    hx_user_t u;
    cr_assert_eq(hx_login(a, "mei@lakeside", "correct horse battery", session, &u), HX_LOGIN_OK);
    for (int i = 0; i < 3; i++) {
        hx_audit_t e = {.user = "mei@lakeside", .clinic = "lakeside", .action = "view", .referral_id = "R-MIG",
                        .detail = "", .address = "127.0.0.1"};
        cr_assert_eq(hx_audit(a, &e), 0);
    }
    cr_assert_eq(hx_mail_queue(a, "lakeside", HX_NOTIFY_HANDOFF, "K-MIG", "New handoff", "Body\r\n"), 1);
    cr_assert_eq(hx_api_client_add(a, "lake-emr", "lakeside", "system/Task.cruds", secret, why, sizeof why), 0, "%s",
                 why);
    hx_api_sub_t sub = {.client = "lake-emr", .clinic = "lakeside"};
    snprintf(sub.sub.topic, sizeof sub.sub.topic, "%s", HX_FHIR_TOPIC_TASK);
    snprintf(sub.sub.endpoint, sizeof sub.sub.endpoint, "https://emr.lakeside.example/hook");
    snprintf(sub.sub.status, sizeof sub.sub.status, "requested");
    sub.sub.payload = HX_FHIR_PAYLOAD_ID_ONLY;
    cr_assert_eq(hx_api_sub_add(a, &sub, why, sizeof why), 0, "%s", why);
    hx_accounts_close(&a);
}

static void audit_count(void *ud, const hx_audit_t *e)
{
    (void)e;
    ++*(int *)ud;
}

static void sub_count(void *ud, const hx_api_sub_t *s)
{
    (void)s;
    ++*(int *)ud;
}

/* What accounts_made wrote, now in PostgreSQL: the password signs in, the session and the
 * client's secret go on, the audit and the subscription are there, and new audit lines and
 * notices take numbers after the ones copied. */
static void accounts_moved(const char *url, const char *session, const char *secret)
{
    hx_accounts_t *a = NULL;
    hx_accounts_config_t cfg = {0};
    char err[512], why[256], token[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_accounts_open(url, &cfg, &a, err, sizeof err), 0, "%s", err);
    hx_user_t u;
    cr_expect_eq(hx_session_user(a, session, &u), 0, "the session came across");
    cr_expect_eq(hx_login(a, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_OK);
    cr_expect_eq(hx_api_token(a, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK,
                 "the client's secret came across (and the store's key with it): %s", why);
    int n = 0;
    cr_assert_eq(hx_audit_each(a, "lakeside", "R-MIG", 10, audit_count, &n), 0);
    cr_expect_eq(n, 3);
    hx_audit_t e = {.user = "mei@lakeside", .clinic = "lakeside", .action = "view", .referral_id = "R-MIG",
                    .detail = "", .address = "127.0.0.1"};
    cr_expect_eq(hx_audit(a, &e), 0, "a new audit line after the copied ones (its number not taken)");
    cr_expect_eq(hx_mail_queue(a, "lakeside", HX_NOTIFY_HANDOFF, "K-MIG2", "New handoff", "Body\r\n"), 1,
                 "a new notice after the copied one");
    n = 0;
    cr_assert_eq(hx_api_sub_each(a, "lakeside", sub_count, &n), 0);
    cr_expect_eq(n, 1);
    uint64_t waiting, sent, given_up;
    cr_assert_eq(hx_mail_counts(a, &waiting, &sent, &given_up), 0);
    cr_expect_eq(waiting, 2);
    hx_accounts_close(&a);
}

/* A network on SQLite with referrals booked and on hold (and their wait list and history),
 * its services stopped, moved with handoff admin migrate: every table of intake and
 * scheduling arrives as it was, and the portal's accounts file with them; scheduling started
 * on PostgreSQL then books new referrals around the bookings that came across. A second
 * migrate into the same database is refused. */
Test(store_pg, a_sqlite_network_migrated_to_postgresql_keeps_every_referral_booking_and_history)
{
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
    char directory[600], intake_db[600], sched_db[600], from[620];
    write_few_slots(directory, sizeof directory);
    snprintf(intake_db, sizeof intake_db, "%s/intake.db", net.dir);
    snprintf(sched_db, sizeof sched_db, "%s/scheduling.db", net.dir);
    snprintf(from, sizeof from, "sqlite:%s", net.dir);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", intake_db,
                            NULL};
    const char *triage[] = {net_bin("services/triage/handoff-triage"), "--broker", net.endpoint, "--rules",
                            net_src("services/triage/rules.json"), NULL};
    pid_t ip = net_spawn(&net, "intake", intake);
    net_spawn(&net, "triage", triage);
    pid_t sp = start_scheduling("scheduling", directory, sched_db);
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, REFERRER);
    submit_competing(c, "MG", 0, MIGRATED);
    outcomes_t o = {.c = c, .booked = json_object(), .held = json_object(), .want = MIGRATED};
    cr_assert(net_wait(all_placed, &o, 120000), "%zu booked and %zu held of %d (logs in %s)",
              json_object_size(o.booked), json_object_size(o.held), MIGRATED, net.dir);
    size_t booked = json_object_size(o.booked), held = json_object_size(o.held);
    cr_assert(booked > 0 && held > 0, "some booked (%zu), some held (%zu)", booked, held);
    cr_assert_eq(net_stop(&net, sp, SIGTERM), 0);
    cr_assert_eq(net_stop(&net, ip, SIGTERM), 0);
    char accounts_db[620], session[HX_TOKEN_LEN + 1], secret[HX_TOKEN_LEN + 1];
    snprintf(accounts_db, sizeof accounts_db, "%s/web-accounts.db", net.dir);
    accounts_made(accounts_db, session, secret);

    char out[8192];
    cr_assert_eq(migrate(out, sizeof out, from, pg.url), 0, "%s (stderr in %s/migrate.log)", out, net.dir);
    cr_expect(strstr(out, "intake.referrals") && strstr(out, "scheduling.bookings") && strstr(out, "accounts.audit"),
              "%s", out);
    accounts_moved(pg.url, session, secret);
    for (size_t i = 0; i < sizeof fingerprints / sizeof *fingerprints; i++) {
        char lite[1 << 14], there[1 << 14];
        sqlite_text(sched_db, fingerprints[i][0], lite, sizeof lite);
        pg_text(fingerprints[i][1], there, sizeof there);
        cr_expect_str_eq(there, lite, "%s", fingerprints[i][1]);
    }
    char lite[64], there[64];
    sqlite_text(intake_db, "SELECT count(*) || ':' || count(DISTINCT referral_id) FROM referrals", lite, sizeof lite);
    pg_text("SELECT count(*) || ':' || count(DISTINCT referral_id) FROM intake.referrals", there, sizeof there);
    cr_expect_str_eq(there, lite, "intake.referrals");
    cr_expect_neq(migrate(out, sizeof out, from, pg.url), 0, "a second migrate into the same database");

    /* the online backup takes the database too (pg_dump, into the encrypted bundle), and what
     * it took restores into another database with every booking */
    char key[600], bundle[600], into[600], pg_dump[600], log[600];
    snprintf(key, sizeof key, "%s/backup.key", net.dir);
    snprintf(bundle, sizeof bundle, "%s/network.hxb", net.dir);
    snprintf(into, sizeof into, "%s/restored", net.dir);
    snprintf(pg_dump, sizeof pg_dump, "%s/pg_dump", pg.bindir);
    snprintf(log, sizeof log, "%s/backup.log", net.dir);
    setenv("HANDOFF_PG_DUMP", pg_dump, 1);          /* the server's own version */
    const char *keygen[] = {net_bin("services/cli/handoff"), "datakey", key, NULL};
    const char *backup[] = {net_bin("services/cli/handoff"), "admin", "backup", bundle, "--pg", pg.url, "--key", key,
                            NULL};
    const char *restore[] = {net_bin("services/cli/handoff"), "admin", "restore", bundle, "--key", key, "--into", into,
                             NULL};
    const char *const *steps[] = {keygen, backup, restore};
    for (size_t i = 0; i < 3; i++) {
        int code = -1;
        hx_spawn_opts_t so = {.argv = steps[i], .err_log = log, .out_pipe = true};
        cr_assert_eq(hx_spawn_run(&so, out, sizeof out, NULL, 0, &code), 0);
        cr_assert_eq(code, 0, "%s: %s (stderr in %s)", steps[i][1], out, log);
    }
    cr_expect(strstr(out, "pg_restore --dbname="), "the restore says how to load the dump: %s", out);
    char dump[700];
    snprintf(dump, sizeof dump, "%s/pg/postgres.pgdump", into);
    struct stat sb;
    cr_assert_eq(stat(dump, &sb), 0, "%s", dump);
    cr_expect_eq(sb.st_mode & 0777, 0600);
    char again[400], why[1024];
    cr_assert_eq(hx_pgtest_database(pg.url, "restored", again, sizeof again, why, sizeof why), 0, "%s", why);
    char dbname[420], pg_restore[600];
    snprintf(dbname, sizeof dbname, "--dbname=%s", again);
    snprintf(pg_restore, sizeof pg_restore, "%s/pg_restore", pg.bindir);
    const char *load[] = {pg_restore, "--no-owner", dbname, dump, NULL};
    int code = -1;
    hx_spawn_opts_t so = {.argv = load, .err_log = log, .out_pipe = true};
    cr_assert_eq(hx_spawn_run(&so, out, sizeof out, NULL, 0, &code), 0);
    cr_assert_eq(code, 0, "pg_restore (stderr in %s)", log);
    PGconn *rc = PQconnectdb(again);
    cr_assert_eq(PQstatus(rc), CONNECTION_OK, "%s", PQerrorMessage(rc));
    PGresult *res = PQexec(rc, fingerprints[1][1]);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(rc));
    char restored[1 << 14], original[1 << 14];
    snprintf(restored, sizeof restored, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(rc);
    pg_text(fingerprints[1][1], original, sizeof original);
    cr_expect_str_eq(restored, original, "the bookings restored from the bundle's dump");

    /* the network goes on from PostgreSQL: new referrals are booked around what came across,
     * and every one of them once */
    const char *intake_pg[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", pg.url,
                               NULL};
    net_spawn(&net, "intake-pg", intake_pg);
    start_scheduling("scheduling-pg", directory, pg.url);
    submit_competing(c, "AF", 0, AFTERWARDS);
    o.want = MIGRATED + AFTERWARDS;
    cr_assert(net_wait(all_placed, &o, 120000), "%zu booked and %zu held of %d (logs in %s)",
              json_object_size(o.booked), json_object_size(o.held), MIGRATED + AFTERWARDS, net.dir);
    cr_expect_eq(pg_long("SELECT count(*) FROM scheduling.referrals"), MIGRATED + AFTERWARDS);
    cr_expect_eq(pg_long("SELECT count(*) FROM scheduling.bookings a JOIN scheduling.bookings b "
                         "ON a.therapist_id = b.therapist_id AND a.referral_id < b.referral_id "
                         "WHERE a.status != 7 AND b.status != 7 "
                         "AND a.start < b.start + b.minutes AND b.start < a.start + a.minutes"), 0,
                 "overlapping bookings");
    cr_expect_eq(pg_long("SELECT count(*) FROM intake.referrals"), MIGRATED + AFTERWARDS);
    json_decref(o.booked);
    json_decref(o.held);
    hx_client_destroy(&c);
}
