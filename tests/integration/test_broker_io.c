/* Integration: the real broker over TCP on 127.0.0.1 with the client library —
 * a 10,000-message burst through workers with none lost or doubled, a worker killed
 * while holding a message sees it redelivered to another, and one peer's garbage, sent
 * between another's requests, leaves that other peer's traffic intact. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <uthash.h>
#include <zmq.h>

#include "envelope.pb-c.h"
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
    net_fini_verdict(bad, net.dir);
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

/* Sends garbage frame number i from the raw peer s: four kinds in turn, each one the broker
 * must answer ERR_MALFORMED (docs/PROTOCOL.md) — bytes that are no protobuf (an invalid tag),
 * an empty frame, a message of two frames, and a SUBMIT to northpoint's mailbox cut inside
 * its message (so it never decodes, and must never be delivered). */
static void send_garbage(void *s, unsigned i)
{
    uint8_t buf[512];
    size_t n = 0;
    switch (i % 4) {
    case 0:
        buf[0] = 0x07;                          /* field 0, wire type 7: no protobuf starts so */
        n = 1 + i % 61;
        for (size_t k = 1; k < n; k++)
            buf[k] = (uint8_t)(i * 31 + k * 7);
        break;
    case 1:
        n = 0;
        break;
    case 2:
        cr_assert_eq(zmq_send(s, "x", 1, ZMQ_SNDMORE | ZMQ_DONTWAIT), 1, "%s", zmq_strerror(errno));
        buf[0] = 'y';
        n = 1;
        break;
    case 3: {
        uint8_t id[16] = {0xba, 0xd0, (uint8_t)i, (uint8_t)(i >> 8)};
        Handoff__Address to = HANDOFF__ADDRESS__INIT;
        to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
        to.name = "northpoint";
        Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
        m.id = (ProtobufCBinaryData){16, id};
        m.to = &to;
        m.type = "t";
        m.payload = (ProtobufCBinaryData){6, (uint8_t *)"forged"};
        Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
        e.version = 1;
        e.kind = HANDOFF__KIND__KIND_SUBMIT;
        e.id = (ProtobufCBinaryData){16, id};
        e.n_messages = 1;
        e.messages = &mp;
        cr_assert_lt(handoff__envelope__get_packed_size(&e), sizeof buf);
        n = handoff__envelope__pack(&e, buf) - 3;   /* messages (field 11) is last: cut inside it */
        break;
    }
    }
    cr_assert_eq(zmq_send(s, buf, n, ZMQ_DONTWAIT), (int)n, "garbage %u: %s", i, zmq_strerror(errno));
}

Test(broker_io, garbage_from_one_peer_does_not_disturb_others)
{
    net_start_broker_open(&net, NULL);
    hx_client_t *a = clinic("lakeside");
    /* an invalid address is refused with the field named, and the session goes on */
    hx_msg_t bad = {0};
    hx_id_random(bad.id);
    bad.to_kind = HX_TO_MAILBOX;
    bad.to = "no spaces allowed";
    bad.type = "t";
    cr_assert_eq(hx_client_submit(a, &bad, 1), HX_EREFUSED);
    cr_assert_eq(hx_client_error_code(a), HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_assert(strstr(hx_client_error(a), "messages[0].to.name"), "%s", hx_client_error(a));

    /* a raw peer sends GARBAGE frames before each of lakeside's N submits to northpoint, so
     * they reach the broker in the same reads; it reads none of its replies until the end */
    enum { N = 300, GARBAGE = 4 };
    void *zctx = zmq_ctx_new();
    void *vandal = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0, timeout = 20000;
    zmq_setsockopt(vandal, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(vandal, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(vandal, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(vandal, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert_eq(zmq_connect(vandal, net.endpoint), 0);
    static char payloads[N][32];
    for (unsigned i = 0; i < N; i++) {
        for (unsigned k = 0; k < GARBAGE; k++)
            send_garbage(vandal, i * GARBAGE + k);
        hx_msg_t m = {0};
        hx_id_random(m.id);
        m.to_kind = HX_TO_MAILBOX;
        m.to = "northpoint";
        m.type = "t";
        snprintf(payloads[i], sizeof payloads[i], "referral-%04u", i);
        m.payload = (const uint8_t *)payloads[i];
        m.payload_len = strlen(payloads[i]);
        cr_assert_eq(hx_client_submit(a, &m, 1), 0, "submit %u between garbage: %s", i, hx_client_error(a));
        if (i == 0)
            cr_assert_eq(hx_client_submit(a, &m, 1), 0, "a resubmit is accepted again (and kept once)");
    }

    /* northpoint gets exactly lakeside's N messages, each once and intact, and nothing forged */
    hx_client_t *b = clinic("northpoint");
    static unsigned seen[N];
    size_t got = 0;
    for (;;) {
        hx_batch_t *batch = NULL;
        cr_assert_eq(hx_client_fetch(b, 100, &batch), 0, "%s", hx_client_error(b));
        if (batch->count == 0) {
            hx_batch_destroy(&batch);
            break;
        }
        uint8_t(*ids)[16] = calloc(batch->count, 16);
        for (size_t k = 0; k < batch->count; k++) {
            const hx_msg_t *m = &batch->msgs[k];
            unsigned v = N;
            char text[32] = "";
            cr_assert_lt(m->payload_len, sizeof text, "a payload of %zu bytes arrived", m->payload_len);
            memcpy(text, m->payload, m->payload_len);
            cr_assert_eq(sscanf(text, "referral-%4u", &v), 1, "'%s' arrived (from %s)", text, m->from);
            cr_assert_lt(v, N);
            cr_assert_str_eq(text, payloads[v]);
            cr_assert_str_eq(m->from, "lakeside");
            cr_assert_str_eq(m->type, "t");
            seen[v]++;
            got++;
            memcpy(ids[k], m->id, 16);
        }
        cr_assert_eq(hx_client_ack(b, (const uint8_t(*)[16])ids, batch->count), 0);
        free(ids);
        hx_batch_destroy(&batch);
    }
    cr_expect_eq(got, N, "northpoint got %zu of lakeside's %d messages", got, N);
    for (unsigned i = 0; i < N; i++)
        cr_expect_eq(seen[i], 1, "message %u arrived %u times", i, seen[i]);
    hx_batch_t *own = NULL;
    cr_assert_eq(hx_client_fetch(a, 100, &own), 0);
    cr_expect_eq(own->count, 0, "lakeside's mailbox holds %zu message(s) it never was sent", own->count);
    hx_batch_destroy(&own);

    /* and the vandal got exactly one ERR_MALFORMED per garbage message, nothing else */
    size_t errors = 0;
    while (errors < (size_t)N * GARBAGE) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc = zmq_msg_recv(&m, vandal, 0);
        if (rc < 0) {
            zmq_msg_close(&m);
            break;
        }
        Handoff__Envelope *e = handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        cr_assert_not_null(e, "the broker sent the vandal an undecodable frame");
        cr_assert_eq(e->kind, HANDOFF__KIND__KIND_ERROR, "the vandal got kind %d", (int)e->kind);
        cr_assert_eq(e->error_code, HANDOFF__ERROR_CODE__ERR_MALFORMED, "reply %zu: %d %s", errors, e->error_code,
                     e->error_text);
        handoff__envelope__free_unpacked(e, NULL);
        errors++;
    }
    cr_expect_eq(errors, (size_t)N * GARBAGE, "the vandal's garbage got %zu answers of %d", errors, N * GARBAGE);
    char extra[16];
    cr_expect_eq(zmq_recv(vandal, extra, sizeof extra, ZMQ_DONTWAIT), -1, "a reply more than the garbage asked for");
    zmq_close(vandal);
    zmq_ctx_term(zctx);
    hx_client_destroy(&b);
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
