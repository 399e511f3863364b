/* router_test — the router's unit suites' shared fixture parts and envelope builders. */
#include "router_test.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

sent_t sent[ROUTER_TEST_MAX_SENT];
size_t n_sent;
hx_router_t *router;
hx_store_t *store;
const char *send_fails_to;

int router_test_capture(void *arg, const uint8_t *peer, size_t len, const uint8_t *frame, size_t flen)
{
    (void)arg;
    if (send_fails_to && len == strlen(send_fails_to) && memcmp(peer, send_fails_to, len) == 0)
        return -1;
    cr_assert_lt(n_sent, ROUTER_TEST_MAX_SENT);
    snprintf(sent[n_sent].peer, sizeof sent[n_sent].peer, "%.*s", (int)len, (const char *)peer);
    sent[n_sent].env = handoff__envelope__unpack(NULL, flen, frame);
    cr_assert_not_null(sent[n_sent].env, "the router sent an undecodable frame");
    n_sent++;
    return 0;
}

void router_test_clear(void)
{
    for (size_t i = 0; i < n_sent; i++)
        handoff__envelope__free_unpacked(sent[i].env, NULL);
    n_sent = 0;
}

void feed(const char *peer, const Handoff__Envelope *env, uint64_t now)
{
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(env, &b), 0);
    hx_router_on_frame(router, (const uint8_t *)peer, strlen(peer), b.data, b.len, now);
    hx_buf_free(&b);
}

void make_id(uint8_t id[16], int n)
{
    memset(id, 0, 16);
    id[0] = 0xAB;
    id[13] = (uint8_t)(n >> 16);
    id[14] = (uint8_t)(n >> 8);
    id[15] = (uint8_t)n;
}

int number_of(const ProtobufCBinaryData *id)
{
    return (id->data[13] << 16) | (id->data[14] << 8) | id->data[15];
}

int msg_number(const Handoff__Message *m)
{
    return number_of(&m->id);
}

void hello(const char *peer, Handoff__Role role, const char *name, uint32_t credit)
{
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    uint8_t id[16];
    make_id(id, 999999);
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_HELLO;
    env.id = (ProtobufCBinaryData){16, id};
    env.role = role;
    env.name = (char *)name;
    env.credit = credit;
    feed(peer, &env, 0);
}

Handoff__Envelope *last_to(const char *peer)
{
    for (size_t i = n_sent; i-- > 0;)
        if (strcmp(sent[i].peer, peer) == 0)
            return sent[i].env;
    return NULL;
}

Handoff__Envelope *send_msg_at(const char *peer, int n, Handoff__AddressKind kind, const char *to, const char *type,
                               int prio, uint64_t now)
{
    uint8_t id[16];
    make_id(id, n);
    Handoff__Address addr = HANDOFF__ADDRESS__INIT;
    addr.kind = kind;
    addr.name = (char *)to;
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){16, id};
    m.to = &addr;
    m.type = (char *)type;
    m.priority = (Handoff__DeliveryPriority)prio;
    m.payload = (ProtobufCBinaryData){5, (uint8_t *)"hello"};
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_SUBMIT;
    env.id = (ProtobufCBinaryData){16, id};
    env.n_messages = 1;
    env.messages = &mp;
    feed(peer, &env, now);
    return last_to(peer);
}

Handoff__Envelope *send_msg(const char *peer, int n, Handoff__AddressKind kind, const char *to, const char *type,
                            int prio)
{
    return send_msg_at(peer, n, kind, to, type, prio, 0);
}

Handoff__Envelope *ack(const char *peer, Handoff__Kind kind, int n, Handoff__Message **outs, size_t n_outs)
{
    uint8_t id[16], req[16];
    make_id(id, n);
    make_id(req, 800000 + n);
    ProtobufCBinaryData a = {16, id};
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = kind;
    env.id = (ProtobufCBinaryData){16, req};
    env.n_acks = 1;
    env.acks = &a;
    env.n_messages = n_outs;
    env.messages = outs;
    env.error_text = "test failure";
    feed(peer, &env, 0);
    for (size_t i = n_sent; i-- > 0;)
        if (strcmp(sent[i].peer, peer) == 0 && sent[i].env->correlation_id.len == 16 &&
            memcmp(sent[i].env->correlation_id.data, req, 16) == 0)
            return sent[i].env;
    return NULL;
}

void nack_why(const char *peer, int n, const char *why, uint64_t now)
{
    uint8_t id[16];
    make_id(id, n);
    ProtobufCBinaryData a = {16, id};
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_NACK;
    env.n_acks = 1;
    env.acks = &a;
    env.error_text = (char *)why;
    feed(peer, &env, now);
}
