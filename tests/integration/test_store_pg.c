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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_pgtest.h"
#include "hx_refjson.h"
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
    cr_expect_eq(net_stop_all(&net), 0, "a process did not stop cleanly (logs in %s)", net.dir);
    hx_pgtest_destroy(&pg);
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
    char req[200], resp[4096];
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
static void drain(hx_client_t *c, json_t *seen)
{
    for (;;) {
        hx_batch_t *b = NULL;
        cr_assert_eq(hx_client_fetch(c, 500, &b), 0, "%s", hx_client_error(c));
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
            cr_assert_eq(u->status, HANDOFF__TASK_STATUS__TASK_REQUESTED, "%s: %s", u->referral_id, u->reason);
            json_t *n = json_object_get(seen, u->referral_id);
            json_object_set_new(seen, u->referral_id, json_integer(n ? json_integer_value(n) + 1 : 1));
            handoff__status_update__free_unpacked(u, NULL);
        }
        cr_assert_eq(hx_client_ack(c, (const uint8_t(*)[16])ids, b->count), 0, "%s", hx_client_error(c));
        free(ids);
        hx_batch_destroy(&b);
    }
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

    /* back: intake serves again by itself, and what waited is handled */
    char why[2048];
    cr_assert_eq(hx_pgtest_restart(&pg, why, sizeof why), 0, "%s", why);
    submit_range(c, BEFORE + DURING, BEFORE + DURING + AFTER);
    told.want = BEFORE + DURING + AFTER;
    cr_assert(net_wait(all_told, &told, 120000), "after: %zu of %d told (logs in %s)", json_object_size(told.seen),
              BEFORE + DURING + AFTER, net.dir);
    ready.want = 200;
    cr_expect(net_wait(readyz_is, &ready, 30000), "/readyz after: %s", ready.body);

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
