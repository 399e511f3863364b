/* Integration: the real broker over TCP on 127.0.0.1 with the client library —
 * a 10,000-message burst through workers with none lost or doubled, and a worker killed
 * while holding a message sees it redelivered to another. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <uthash.h>

#include "harness.h"
#include "hx_client.h"

static net_t net;

static void setup(void)
{
    net_init(&net);
}

static void teardown(void)
{
    int bad = net_stop_all(&net);
    cr_expect_eq(bad, 0, "a process did not stop cleanly");
}

TestSuite(broker_io, .init = setup, .fini = teardown, .timeout = 240);

static hx_client_t *clinic(const char *name)
{
    return net_session(&net, HX_ROLE_CLINIC, name);
}

typedef struct seen {
    uint32_t n;
    UT_hash_handle hh;
} seen_t;

static pid_t start_worker(const char *mode, const char *marker, const char *credit)
{
    const char *argv[] = {net_bin("tests/hx-test-worker"), "--broker", net.endpoint, "--mode", mode,
                          "--credit", credit, "--to", "sink", marker ? "--marker" : NULL, marker, NULL};
    return net_spawn(&net, mode, argv);
}

Test(broker_io, burst_of_10000_through_workers_loses_nothing)
{
    const char *extra[] = {"--log-level", "info", NULL};
    net_start_broker_open(&net, extra);
    start_worker("echo", NULL, "200");
    start_worker("echo", NULL, "200");

    enum { N = 10000 };
    hx_msg_t *msgs = calloc(N, sizeof *msgs);
    uint32_t *payloads = calloc(N, sizeof *payloads);
    for (uint32_t i = 0; i < N; i++) {
        hx_id_random(msgs[i].id);
        payloads[i] = i;
        msgs[i].to_kind = HX_TO_SERVICE;
        msgs[i].to = "echo";
        msgs[i].type = "test.n";
        msgs[i].payload = (const uint8_t *)&payloads[i];
        msgs[i].payload_len = sizeof payloads[i];
    }
    hx_client_t *producer = clinic("producer");
    size_t failed = 0;
    int rc = hx_client_submit_many(producer, msgs, N, 500, &failed);
    cr_assert_eq(rc, 0, "submit failed at %zu: %s", failed, hx_client_error(producer));

    /* every message arrives in the sink exactly once, with its payload */
    hx_client_t *sink = clinic("sink");
    uint8_t *got = calloc(N, 1);
    size_t received = 0, duplicates = 0, rounds = 0;
    while (received < N && rounds < 20000) {
        hx_batch_t *b = NULL;
        cr_assert_eq(hx_client_fetch(sink, 1000, &b), 0);
        uint8_t(*ids)[16] = calloc(b->count ? b->count : 1, 16);
        for (size_t i = 0; i < b->count; i++) {
            const hx_msg_t *m = &b->msgs[i];
            cr_assert_str_eq(m->from, "echo");
            const char *semi = memchr(m->payload, ';', m->payload_len);
            cr_assert_not_null(semi);
            uint32_t v;
            cr_assert_eq(m->payload_len - (size_t)(semi + 1 - (const char *)m->payload), sizeof v);
            memcpy(&v, semi + 1, sizeof v);
            cr_assert_lt(v, N);
            if (got[v])
                duplicates++;
            else
                received++;
            got[v] = 1;
            memcpy(ids[i], m->id, 16);
        }
        if (b->count)
            cr_assert_eq(hx_client_ack(sink, (const uint8_t(*)[16])ids, b->count), 0);
        free(ids);
        if (b->count == 0)
            rounds++;
        hx_batch_destroy(&b);
    }
    cr_expect_eq(received, N, "lost %zu of %d", (size_t)N - received, N);
    cr_expect_eq(duplicates, 0);

    /* nothing more is waiting */
    hx_batch_t *b = NULL;
    cr_assert_eq(hx_client_fetch(sink, 1000, &b), 0);
    cr_expect_eq(b->count, 0);
    hx_batch_destroy(&b);
    hx_client_destroy(&sink);
    hx_client_destroy(&producer);
    free(got);
    free(msgs);
    free(payloads);
}

/* Submits one message with this payload to service "echo". */
static void submit_echo(hx_client_t *producer, const char *payload)
{
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "echo";
    m.type = "test.n";
    m.payload = (const uint8_t *)payload;
    m.payload_len = strlen(payload);
    cr_assert_eq(hx_client_submit(producer, &m, 1), 0, "%s", hx_client_error(producer));
}

/* Fetches from the sink until something arrives (up to about timeout_ms of polling). */
static hx_batch_t *fetch_first(hx_client_t *sink, int timeout_ms)
{
    hx_batch_t *b = NULL;
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        cr_assert_eq(hx_client_fetch(sink, 10, &b), 0);
        if (b->count)
            return b;
        hx_batch_destroy(&b);
        struct timespec nap = {0, 20 * 1000000};
        nanosleep(&nap, NULL);
    }
    return NULL;
}

static bool marker_written(void *arg)
{
    return net_file_exists(arg);
}

Test(broker_io, killed_worker_message_is_redelivered)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--liveness", "3", NULL};
    net_start_broker_open(&net, extra);
    char marker[512];
    snprintf(marker, sizeof marker, "%s/held", net.dir);
    pid_t holder = start_worker("hold", marker, "1");

    hx_client_t *producer = clinic("producer");
    submit_echo(producer, "referral-42");
    cr_assert(net_wait(marker_written, marker, 10000), "the holding worker never got the message");

    net_kill9(&net, holder);
    start_worker("echo", NULL, "1");

    hx_client_t *sink = clinic("sink");
    hx_batch_t *b = fetch_first(sink, 10000);
    cr_assert_not_null(b, "the message was not redelivered");
    cr_assert_eq(b->count, 1);
    cr_assert_eq(b->msgs[0].payload_len, strlen("attempt=2;referral-42"));
    cr_assert_eq(memcmp(b->msgs[0].payload, "attempt=2;referral-42", b->msgs[0].payload_len), 0,
                 "the second delivery carries attempt 2");
    cr_assert_eq(hx_client_ack(sink, (const uint8_t(*)[16])b->msgs[0].id, 1), 0);
    hx_batch_destroy(&b);
    hx_client_destroy(&sink);
    hx_client_destroy(&producer);
}

Test(broker_io, garbage_from_one_peer_does_not_disturb_others)
{
    net_start_broker_open(&net, NULL);
    hx_client_t *a = clinic("lakeside");
    /* an invalid address is refused with the field named, and the session goes on */
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_MAILBOX;
    m.to = "no spaces allowed";
    m.type = "t";
    cr_assert_eq(hx_client_submit(a, &m, 1), HX_EREFUSED);
    cr_assert_eq(hx_client_error_code(a), HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_assert(strstr(hx_client_error(a), "messages[0].to.name"), "%s", hx_client_error(a));
    m.to = "lakeside";
    cr_assert_eq(hx_client_submit(a, &m, 1), 0);
    cr_assert_eq(hx_client_submit(a, &m, 1), 0, "a resubmit is accepted again");
    hx_batch_t *b = NULL;
    cr_assert_eq(hx_client_fetch(a, 10, &b), 0);
    cr_assert_eq(b->count, 1, "and kept once");
    hx_batch_destroy(&b);
    hx_client_destroy(&a);
}

Test(broker_io, workers_come_back_after_the_broker_restarts)
{
    char bind[64];
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", net_free_port());
    const char *extra[] = {"--bind", bind, "--heartbeat-ms", "100", NULL};
    net_start_broker_open(&net, extra);
    pid_t broker = net.procs[0].pid;
    start_worker("echo", NULL, "4");

    /* the broker dies without a word; a new one starts on the same port */
    net_kill9(&net, broker);
    net_start_broker_open(&net, extra);

    hx_client_t *producer = clinic("producer");
    submit_echo(producer, "after-restart");

    hx_client_t *sink = clinic("sink");
    hx_batch_t *b = fetch_first(sink, 15000);
    cr_assert_not_null(b, "the worker never served the new broker");
    cr_assert_eq(b->count, 1);
    cr_assert_eq(memcmp(b->msgs[0].payload, "attempt=1;after-restart", b->msgs[0].payload_len), 0);
    hx_batch_destroy(&b);
    hx_client_destroy(&sink);
    hx_client_destroy(&producer);
}

Test(broker_io, a_worker_that_stops_heartbeating_mid_delivery_loses_the_message_to_another)
{
    const char *extra[] = {"--heartbeat-ms", "100", "--liveness", "3", NULL};
    net_start_broker_open(&net, extra);
    char marker[512];
    snprintf(marker, sizeof marker, "%s/held", net.dir);
    pid_t holder = start_worker("hold", marker, "1");     /* stays connected, goes silent */
    hx_client_t *producer = clinic("producer");
    submit_echo(producer, "referral-43");
    cr_assert(net_wait(marker_written, marker, 10000), "the holding worker never got the message");
    start_worker("echo", NULL, "1");
    hx_client_t *sink = clinic("sink");
    hx_batch_t *b = fetch_first(sink, 15000);
    cr_assert_not_null(b, "the silent worker's message was not redelivered");
    cr_assert_eq(memcmp(b->msgs[0].payload, "attempt=2;referral-43", b->msgs[0].payload_len), 0);
    hx_batch_destroy(&b);
    hx_client_destroy(&sink);
    hx_client_destroy(&producer);
    net_kill9(&net, holder);                    /* it hangs in its handler by design */
}
