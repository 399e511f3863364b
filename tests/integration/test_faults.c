/* Integration: the fault matrix against the real broker on 127.0.0.1. Each row sends one kind
 * of bad input from a raw ZeroMQ peer (tests may speak the protocol by hand) and then checks
 * that the offender got the documented error (docs/PROTOCOL.md) or lost its connection, and
 * that a well-behaved clinic is still served without loss. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "envelope.pb-c.h"
#include "harness.h"
#include "hx_client.h"

static net_t net;
static void *zctx;
static void *socks[64];         /* open raw sockets: teardown closes what a failed test left */

static void setup(void)
{
    net_init(&net);
    zctx = zmq_ctx_new();
    const char *extra[] = {"--max-frame", "65536", "--heartbeat-ms", "100", "--max-queue", "50", NULL};
    net_start_broker_open(&net, extra);
}

static void teardown(void)
{
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (socks[i])
            zmq_close(socks[i]);
    memset(socks, 0, sizeof socks);
    zmq_ctx_term(zctx);
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 120);

/* A socket of this type, kept in socks until raw_close. */
static void *raw_open(int type)
{
    void *s = zmq_socket(zctx, type);
    cr_assert_not_null(s);
    size_t i = 0;
    while (i < sizeof socks / sizeof socks[0] && socks[i])
        i++;
    cr_assert_lt(i, sizeof socks / sizeof socks[0], "too many raw sockets");
    socks[i] = s;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    return s;
}

static void raw_close(void *s)
{
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (socks[i] == s)
            socks[i] = NULL;
    zmq_close(s);
}

/* A DEALER to nowhere yet (replies wait up to 20 s: every one here must come). */
static void *raw_socket(void)
{
    void *s = raw_open(ZMQ_DEALER);
    int timeout = 20000;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    return s;
}

static void *raw_peer(void)
{
    void *s = raw_socket();
    cr_assert_eq(zmq_connect(s, net.endpoint), 0);
    return s;
}

/* zmq_send that must take the whole frame. */
static void send_raw(void *s, const void *data, size_t n, int flags)
{
    cr_assert_eq(zmq_send(s, data, n, flags), (int)n, "zmq_send of %zu bytes: %s", n, zmq_strerror(errno));
}

static void send_env(void *s, const Handoff__Envelope *e)
{
    size_t n = handoff__envelope__get_packed_size(e);
    uint8_t *buf = malloc(n ? n : 1);
    handoff__envelope__pack(e, buf);
    send_raw(s, buf, n, 0);
    free(buf);
}

/* The next envelope that is not a heartbeat (NULL after the receive timeout). */
static Handoff__Envelope *recv_env(void *s)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            return NULL;
        }
        Handoff__Envelope *e = handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (e && e->kind == HANDOFF__KIND__KIND_HEARTBEAT) {
            handoff__envelope__free_unpacked(e, NULL);
            continue;
        }
        return e;
    }
}

static void expect_error(void *s, Handoff__ErrorCode code, const char *text_part)
{
    Handoff__Envelope *e = recv_env(s);
    cr_assert_not_null(e, "no answer");
    cr_expect_eq(e->kind, HANDOFF__KIND__KIND_ERROR);
    cr_expect_eq(e->error_code, code, "got %d: %s", e->error_code, e->error_text);
    if (text_part)
        cr_expect(strstr(e->error_text, text_part), "'%s' does not mention '%s'", e->error_text, text_part);
    handoff__envelope__free_unpacked(e, NULL);
}

static void hello(void *s, Handoff__Role role, const char *name)
{
    uint8_t id[16] = {7};
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = HANDOFF__KIND__KIND_HELLO;
    e.id = (ProtobufCBinaryData){16, id};
    e.role = role;
    e.name = (char *)name;
    send_env(s, &e);
    Handoff__Envelope *w = recv_env(s);
    cr_assert_not_null(w);
    cr_assert_eq(w->kind, HANDOFF__KIND__KIND_WELCOME);
    handoff__envelope__free_unpacked(w, NULL);
}

/* A well-behaved clinic still submits and gets its message: nobody else was disturbed. */
static void others_still_served(void)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "goodclinic");
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_MAILBOX;
    m.to = "goodclinic";
    m.type = "t";
    m.payload = (const uint8_t *)"still here";
    m.payload_len = 10;
    cr_assert_eq(hx_client_submit(c, &m, 1), 0, "%s", hx_client_error(c));
    hx_batch_t *b = NULL;
    cr_assert_eq(hx_client_fetch(c, 10, &b), 0);
    cr_assert_eq(b->count, 1, "the good clinic's message is there");
    cr_assert_eq(memcmp(b->msgs[0].payload, "still here", 10), 0);
    cr_assert_eq(hx_client_ack(c, (const uint8_t(*)[16])b->msgs[0].id, 1), 0);
    hx_batch_destroy(&b);
    hx_client_destroy(&c);
}

Test(faults, wrong_frame_count)
{
    void *s = raw_peer();
    send_raw(s, "a", 1, ZMQ_SNDMORE);
    send_raw(s, "b", 1, 0);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_MALFORMED, "exactly 1 frame");
    raw_close(s);
    others_still_served();
}

Test(faults, empty_frame)
{
    void *s = raw_peer();
    send_raw(s, "", 0, 0);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_MALFORMED, NULL);
    raw_close(s);
    others_still_served();
}

Test(faults, oversized_frame)
{
    void *s = raw_peer();
    size_t n = 65536 + 100;                     /* over max_frame, under libzmq's own cut-off */
    char *big = calloc(1, n);
    send_raw(s, big, n, 0);
    free(big);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_TOO_LARGE, "max_frame");
    raw_close(s);
    others_still_served();
}

/* Up to the documented hard cap (max_frame + 64 KiB) a frame over max_frame is answered,
 * never silently cut off; the connection stays usable. */
Test(faults, frame_just_over_max_frame_is_answered)
{
    const size_t over[] = {1, 31, 500, 1023, 1024, 1025, 4096, 65536};
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        void *s = raw_peer();
        size_t n = 65536 + over[i];
        char *big = calloc(1, n);
        send_raw(s, big, n, 0);
        free(big);
        Handoff__Envelope *e = recv_env(s);
        if (!e)
            raw_close(s);
        cr_assert_not_null(e, "a frame %zu bytes over max_frame got no answer (dropped?)", over[i]);
        cr_expect_eq(e->error_code, HANDOFF__ERROR_CODE__ERR_TOO_LARGE, "%zu over: got %d: %s", over[i],
                     e->error_code, e->error_text);
        handoff__envelope__free_unpacked(e, NULL);
        hello(s, HANDOFF__ROLE__ROLE_CLINIC, "after-big");    /* the same connection still works */
        raw_close(s);
    }
    others_still_served();
}

Test(faults, unknown_message_kind)
{
    void *s = raw_peer();
    hello(s, HANDOFF__ROLE__ROLE_CLINIC, "faulty");
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = 42;
    send_env(s, &e);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_UNKNOWN_KIND, "42");
    raw_close(s);
    others_still_served();
}

Test(faults, garbage_and_truncated_protobuf)
{
    void *s = raw_peer();
    send_raw(s, "\xff\xff\xff\xff\x0f", 5, 0);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_MALFORMED, "Envelope");
    uint8_t id[16] = {1};
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = HANDOFF__KIND__KIND_HELLO;
    e.id = (ProtobufCBinaryData){16, id};
    e.name = "truncated-clinic-name";
    uint8_t buf[256];
    size_t n = handoff__envelope__pack(&e, buf);
    send_raw(s, buf, n - 5, 0);                 /* cut inside the name */
    expect_error(s, HANDOFF__ERROR_CODE__ERR_MALFORMED, NULL);
    raw_close(s);
    others_still_served();
}

Test(faults, unknown_enum_values)
{
    void *s = raw_peer();
    uint8_t id[16] = {1};
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = HANDOFF__KIND__KIND_HELLO;
    e.id = (ProtobufCBinaryData){16, id};
    e.role = 9;
    e.name = "x";
    send_env(s, &e);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "role");
    hello(s, HANDOFF__ROLE__ROLE_CLINIC, "faulty");
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = 77;
    to.name = "somewhere";
    uint8_t mid[16] = {2};
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){16, mid};
    m.to = &to;
    Handoff__Envelope sub = HANDOFF__ENVELOPE__INIT;
    sub.version = 1;
    sub.kind = HANDOFF__KIND__KIND_SUBMIT;
    sub.id = (ProtobufCBinaryData){16, mid};
    sub.n_messages = 1;
    sub.messages = &mp;
    send_env(s, &sub);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "messages[0].to.kind");
    raw_close(s);
    others_still_served();
}

Test(faults, huge_repeated_fields)
{
    void *s = raw_peer();
    hello(s, HANDOFF__ROLE__ROLE_CLINIC, "faulty");
    enum { N = 2000 };                          /* more acks than one request may carry */
    ProtobufCBinaryData *acks = calloc(N, sizeof *acks);
    uint8_t id[16] = {3};
    for (size_t i = 0; i < N; i++)
        acks[i] = (ProtobufCBinaryData){16, id};
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = HANDOFF__KIND__KIND_ACK;
    e.id = (ProtobufCBinaryData){16, id};
    e.n_acks = N;
    e.acks = acks;
    send_env(s, &e);
    free(acks);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "acks");
    raw_close(s);
    others_still_served();
}

Test(faults, ids_of_the_wrong_length)
{
    void *s = raw_peer();
    hello(s, HANDOFF__ROLE__ROLE_CLINIC, "faulty");
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "faulty";
    uint8_t req[16] = {4};
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){5, (uint8_t *)"short"};
    m.to = &to;
    Handoff__Envelope sub = HANDOFF__ENVELOPE__INIT;
    sub.version = 1;
    sub.kind = HANDOFF__KIND__KIND_SUBMIT;
    sub.id = (ProtobufCBinaryData){16, req};
    sub.n_messages = 1;
    sub.messages = &mp;
    send_env(s, &sub);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "messages[0].id");
    sub.id = (ProtobufCBinaryData){3, req};
    send_env(s, &sub);
    expect_error(s, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "id");
    raw_close(s);
    others_still_served();
}

/* Waits (up to 20 s) for the first handshake event of the socket monitored on mon: true when
 * it is ZMQ_EVENT_HANDSHAKE_SUCCEEDED, i.e. the broker took the connection. */
static bool handshake_succeeded(void *mon)
{
    int timeout = 20000;
    zmq_setsockopt(mon, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    uint16_t event = 0;
    if (zmq_msg_recv(&ev, mon, 0) == 6 && zmq_msg_more(&ev) && zmq_msg_recv(&addr, mon, 0) >= 0)
        memcpy(&event, zmq_msg_data(&ev), 2);
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
}

/* Twenty connections the broker took (each one's handshake done, watched by libzmq's monitor,
 * so the broker holds them) that say nothing while a clinic is served; afterwards each one
 * still gets its answer. */
Test(faults, a_peer_that_connects_and_never_speaks)
{
    enum { N = 20 };
    void *silent[N], *mon[N];
    for (int i = 0; i < N; i++) {
        silent[i] = raw_socket();
        char addr[64];
        snprintf(addr, sizeof addr, "inproc://silent-%d", i);
        cr_assert_eq(zmq_socket_monitor(silent[i], addr, ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 0);
        mon[i] = raw_open(ZMQ_PAIR);
        cr_assert_eq(zmq_connect(mon[i], addr), 0);
        cr_assert_eq(zmq_connect(silent[i], net.endpoint), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert(handshake_succeeded(mon[i]), "silent peer %d never got through its handshake", i);
    others_still_served();
    for (int i = 0; i < N; i++) {                /* the broker kept every one of them */
        uint8_t id[16] = {9, (uint8_t)i};
        Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
        e.version = 1;
        e.kind = HANDOFF__KIND__KIND_FETCH;
        e.id = (ProtobufCBinaryData){16, id};
        e.max = 1;
        send_env(silent[i], &e);
        expect_error(silent[i], HANDOFF__ERROR_CODE__ERR_NOT_READY, "HELLO");
    }
    for (int i = 0; i < N; i++) {
        raw_close(silent[i]);
        raw_close(mon[i]);
    }
}

/* A peer sends garbage as fast as it goes (every send must be taken) and reads none of its
 * replies while a clinic is served; then it finds one ERR_MALFORMED per frame waiting: the
 * broker refused each, in order, and dropped none. */
Test(faults, a_peer_that_floods)
{
    enum { N = 20000 };
    void *s = raw_peer();
    int unbounded = 0;
    zmq_setsockopt(s, ZMQ_SNDHWM, &unbounded, sizeof unbounded);
    zmq_setsockopt(s, ZMQ_RCVHWM, &unbounded, sizeof unbounded);
    for (int i = 0; i < N; i++)
        cr_assert_eq(zmq_send(s, "\xff\xff", 2, ZMQ_DONTWAIT), 2, "send %d: %s", i, zmq_strerror(errno));
    others_still_served();
    int refused = 0;
    for (; refused < N; refused++) {
        Handoff__Envelope *e = recv_env(s);
        if (!e)
            break;
        cr_assert_eq(e->kind, HANDOFF__KIND__KIND_ERROR, "reply %d: kind %d", refused, (int)e->kind);
        cr_assert_eq(e->error_code, HANDOFF__ERROR_CODE__ERR_MALFORMED, "reply %d: %d %s", refused, e->error_code,
                     e->error_text);
        handoff__envelope__free_unpacked(e, NULL);
    }
    cr_expect_eq(refused, N, "%d of %d garbage frames were answered ERR_MALFORMED", refused, N);
    char more[16];
    cr_expect_eq(zmq_recv(s, more, sizeof more, ZMQ_DONTWAIT), -1, "more replies than frames");
    raw_close(s);
}

Test(faults, a_full_mailbox_answers_busy_and_keeps_what_it_holds)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "producer");
    int accepted = 0;
    for (int i = 0; i < 60; i++) {
        hx_msg_t m = {0};
        hx_id_random(m.id);
        m.to_kind = HX_TO_MAILBOX;
        m.to = "slowclinic";                    /* nobody fetches: a slow consumer */
        m.type = "t";
        int rc = hx_client_submit(c, &m, 1);
        if (rc == 0)
            accepted++;
        else
            cr_assert_eq(hx_client_error_code(c), HANDOFF__ERROR_CODE__ERR_BUSY, "%s", hx_client_error(c));
    }
    cr_expect_eq(accepted, 50, "the --max-queue bound");
    hx_client_destroy(&c);
    others_still_served();
    hx_client_t *slow = net_session(&net, HX_ROLE_CLINIC, "slowclinic");
    hx_batch_t *b = NULL;
    cr_assert_eq(hx_client_fetch(slow, 1000, &b), 0);
    cr_expect_eq(b->count, 50, "nothing accepted was lost");
    hx_batch_destroy(&b);
    hx_client_destroy(&slow);
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

Test(faults, a_slow_consumer_keeps_broker_memory_bounded)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "producer");
    static uint8_t payload[32 * 1024];
    long before = 0;
    int busy = 0;
    for (int i = 0; i < 2050; i++) {
        if (i == 50)                            /* the mailbox is full now: memory from here on */
            before = rss_kb(net_pid(&net, "broker"));
        hx_msg_t m = {0};
        hx_id_random(m.id);
        m.to_kind = HX_TO_MAILBOX;
        m.to = "slowclinic";
        m.type = "t";
        m.payload = payload;
        m.payload_len = sizeof payload;
        if (hx_client_submit(c, &m, 1) != 0) {
            cr_assert_eq(hx_client_error_code(c), HANDOFF__ERROR_CODE__ERR_BUSY, "%s", hx_client_error(c));
            busy++;
        }
    }
    long after = rss_kb(net_pid(&net, "broker"));
    fprintf(stderr, "slow consumer: broker RSS %ld kB with the mailbox full, %ld kB after 2000 refusals\n", before,
            after);
    hx_client_destroy(&c);
    cr_expect_eq(busy, 2000, "every submit past the bound is refused with busy");
    /* 2000 refused 32 KB messages are 64 MB; the broker may not keep any of them. (Under
     * AddressSanitizer freed memory sits in its quarantine, so RSS says nothing there.) */
#ifndef __SANITIZE_ADDRESS__
    cr_expect_lt(after - before, 16 * 1024, "broker RSS grew from %ld to %ld kB", before, after);
#endif
    others_still_served();
}
