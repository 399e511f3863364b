/* Unit tests for hx_router: sessions, queues, mailboxes, credit, acks, heartbeats. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router_test.h"

/* Most tests here exercise the mechanics with made-up types: any type anywhere, and no
 * share bound beyond the queue's own. The network's own table has tests of its own. */
static hx_policy_t *any_policy;

static hx_policy_t *policy_any(void)
{
    if (!any_policy) {
        char err[200];
        any_policy = hx_policy_parse("{\"rules\": [{\"from\": \"*\", \"to\": \"*\", \"types\": [\"*\"]}]}", err,
                                     sizeof err);
        cr_assert_not_null(any_policy, "%s", err);
    }
    return any_policy;
}

static void setup_cfg(uint32_t max_queue)
{
    store = hx_store_memory_new();
    hx_router_config_t cfg = {.send = router_test_capture, .store = store, .heartbeat_ms = 100, .liveness = 3,
                              .max_queue = max_queue, .dedup_window = 1000,
                              .backoff_ms = 10, .max_attempts = 3, .policy = policy_any(), .sender_share = 100};
    router = hx_router_new(&cfg);
    n_sent = 0;
    send_fails_to = NULL;
}

static void setup(void)
{
    setup_cfg(0);
}

static void teardown(void)
{
    router_test_clear();
    hx_router_destroy(&router);
    hx_store_destroy(&store);
    hx_policy_destroy(&any_policy);
    cr_assert_null(router);
}

/* Submits message number n (type "test") from peer to (kind, name). */
static void submit(const char *peer, int n, Handoff__AddressKind kind, const char *to)
{
    send_msg(peer, n, kind, to, "test", 0);
}

static void fetch(const char *peer, uint32_t max)
{
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    uint8_t req[16];
    make_id(req, 7777);
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_FETCH;
    env.id = (ProtobufCBinaryData){16, req};
    env.max = max;
    feed(peer, &env, 0);
}

static size_t count_kind(const char *peer, Handoff__Kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < n_sent; i++)
        if (strcmp(sent[i].peer, peer) == 0 && sent[i].env->kind == kind)
            n++;
    return n;
}

static long depth(const char *kind, const char *name, long *inflight)
{
    return hx_router_depth(router, kind, name, inflight);
}

TestSuite(router, .init = setup, .fini = teardown);

Test(router, hello_gets_welcome_with_settings)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "intake", 5);
    Handoff__Envelope *e = last_to("w1");
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, HANDOFF__KIND__KIND_WELCOME);
    cr_assert_eq(e->heartbeat_ms, 100);
    cr_assert_eq(e->liveness, 3);
    cr_assert_eq(e->correlation_id.len, 16);
}

Test(router, requests_without_session_are_not_ready)
{
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    Handoff__Envelope *e = last_to("c1");
    cr_assert_eq(e->kind, HANDOFF__KIND__KIND_ERROR);
    cr_assert_eq(e->error_code, HANDOFF__ERROR_CODE__ERR_NOT_READY);
    cr_assert_eq(depth("service", "intake", NULL), -1, "nothing may be queued");
}

Test(router, bad_frames_get_precise_errors)
{
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    hx_router_on_frame(router, (const uint8_t *)"c1", 2, (const uint8_t *)"\xff\xff\xff", 3, 0);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_MALFORMED);
    hx_router_on_frame(router, (const uint8_t *)"c1", 2, (const uint8_t *)"", 0, 0);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_MALFORMED);
    hx_router_on_bad_frames(router, (const uint8_t *)"c1", 2, 3, 0);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_MALFORMED);
    cr_assert(strstr(last_to("c1")->error_text, "got 3"));

    uint8_t *big = calloc(1, HX_DEFAULT_MAX_FRAME + 1);
    hx_router_on_frame(router, (const uint8_t *)"c1", 2, big, HX_DEFAULT_MAX_FRAME + 1, 0);
    free(big);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_TOO_LARGE);

    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 2;
    env.kind = HANDOFF__KIND__KIND_HEARTBEAT;
    feed("c1", &env, 0);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_VERSION);

    env.version = 1;
    env.kind = 99;
    feed("c1", &env, 0);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_UNKNOWN_KIND);

    env.kind = HANDOFF__KIND__KIND_HEARTBEAT;
    env.id = (ProtobufCBinaryData){3, (uint8_t *)"abc"};
    feed("c1", &env, 0);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_assert(strstr(last_to("c1")->error_text, "id:"));

    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "bad name!");
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_assert(strstr(last_to("c1")->error_text, "messages[0].to.name"), "%s", last_to("c1")->error_text);

    submit("c1", 2, 7, "intake");
    cr_assert(strstr(last_to("c1")->error_text, "messages[0].to.kind"), "%s", last_to("c1")->error_text);

    /* and the session still works */
    submit("c1", 3, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    cr_assert_eq(last_to("c1")->kind, HANDOFF__KIND__KIND_ACCEPTED);
    cr_assert_eq(depth("service", "intake", NULL), 1);
}

Test(router, bad_hello_is_refused)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "", 1);
    cr_assert_eq(last_to("w1")->error_code, HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_assert(strstr(last_to("w1")->error_text, "name"));
    hello("w1", 9, "intake", 1);
    cr_assert(strstr(last_to("w1")->error_text, "role"));
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "intake", 5000);
    cr_assert(strstr(last_to("w1")->error_text, "credit"));
}

Test(router, messages_wait_for_a_worker_and_carry_the_sender)
{
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    cr_assert_eq(last_to("c1")->kind, HANDOFF__KIND__KIND_ACCEPTED);
    cr_assert_eq(depth("service", "intake", NULL), 1);

    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    Handoff__Envelope *d = last_to("w1");
    cr_assert_eq(d->kind, HANDOFF__KIND__KIND_DELIVER);
    cr_assert_eq(d->n_messages, 1);
    Handoff__Message *m = d->messages[0];
    cr_assert_eq(msg_number(m), 1);
    cr_assert_eq(m->attempt, 1);
    cr_assert_eq(m->from->kind, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX);
    cr_assert_str_eq(m->from->name, "northpoint");
    cr_assert_str_eq(m->type, "test");
    cr_assert_eq(m->payload.len, 5);
    cr_assert_gt(m->accepted_at_ms, 0);
    long inflight;
    cr_assert_eq(depth("service", "intake", &inflight), 0);
    cr_assert_eq(inflight, 1);
}

Test(router, work_is_balanced_over_workers)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "triage", 10);
    hello("w2", HANDOFF__ROLE__ROLE_WORKER, "triage", 10);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    for (int i = 1; i <= 10; i++)
        submit("c1", i, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    cr_assert_eq(count_kind("w1", HANDOFF__KIND__KIND_DELIVER), 5);
    cr_assert_eq(count_kind("w2", HANDOFF__KIND__KIND_DELIVER), 5);
}

Test(router, credit_bounds_what_a_worker_holds)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "triage", 2);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    for (int i = 1; i <= 3; i++)
        submit("c1", i, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    cr_assert_eq(count_kind("w1", HANDOFF__KIND__KIND_DELIVER), 2);
    cr_assert_eq(depth("service", "triage", NULL), 1);
    ack("w1", HANDOFF__KIND__KIND_ACK, 1, NULL, 0);
    cr_assert_eq(count_kind("w1", HANDOFF__KIND__KIND_DELIVER), 3);
    cr_assert_eq(msg_number(last_to("w1")->messages[0]), 3);
}

Test(router, ack_with_outputs_settles_and_forwards)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "scheduling");

    uint8_t oid[16];
    make_id(oid, 100);
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "lakeside";
    Handoff__Message out = HANDOFF__MESSAGE__INIT, *op = &out;
    out.id = (ProtobufCBinaryData){16, oid};
    out.to = &to;
    out.type = "handoff.Handoff";
    ack("w1", HANDOFF__KIND__KIND_ACK, 1, &op, 1);
    cr_assert_eq(last_to("w1")->kind, HANDOFF__KIND__KIND_ACCEPTED);
    long inflight = -1;
    cr_assert_eq(depth("service", "scheduling", &inflight), 0);
    cr_assert_eq(inflight, 0);
    cr_assert_eq(depth("mailbox", "lakeside", NULL), 1);

    hello("c2", HANDOFF__ROLE__ROLE_CLINIC, "lakeside", 0);
    fetch("c2", 10);
    Handoff__Envelope *d = last_to("c2");
    cr_assert_eq(d->kind, HANDOFF__KIND__KIND_DELIVER);
    cr_assert_eq(d->n_messages, 1);
    cr_assert_str_eq(d->messages[0]->from->name, "scheduling");
    cr_assert_eq(d->messages[0]->from->kind, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE);

    /* the same ack again (a retry) creates nothing new */
    ack("w1", HANDOFF__KIND__KIND_ACK, 1, &op, 1);
    cr_assert_eq(last_to("w1")->kind, HANDOFF__KIND__KIND_ACCEPTED);
    cr_assert_eq(depth("mailbox", "lakeside", &inflight), 0);
    cr_assert_eq(inflight, 1);
}

Test(router, dead_worker_messages_go_to_another)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    cr_assert_eq(count_kind("w1", HANDOFF__KIND__KIND_DELIVER), 1);
    hello("w2", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    cr_assert_eq(count_kind("w2", HANDOFF__KIND__KIND_DELIVER), 0, "w1 still holds it");

    /* w2 and c1 stay alive; w1 goes silent */
    Handoff__Envelope hb = HANDOFF__ENVELOPE__INIT;
    hb.version = 1;
    hb.kind = HANDOFF__KIND__KIND_HEARTBEAT;
    for (uint64_t t = 50; t <= 400; t += 50) {
        feed("w2", &hb, t);
        feed("c1", &hb, t);
        hx_router_tick(router, t);
    }
    cr_assert_eq(count_kind("w2", HANDOFF__KIND__KIND_DELIVER), 1);
    Handoff__Envelope *d = NULL;
    for (size_t i = 0; i < n_sent; i++)
        if (!strcmp(sent[i].peer, "w2") && sent[i].env->kind == HANDOFF__KIND__KIND_DELIVER)
            d = sent[i].env;
    cr_assert_eq(msg_number(d->messages[0]), 1);
    cr_assert_eq(d->messages[0]->attempt, 2);
    cr_assert_gt(count_kind("w2", HANDOFF__KIND__KIND_HEARTBEAT), 0, "the broker heartbeats idle peers");
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.workers, 1);
    cr_assert_eq(st.redelivered, 1);
}

Test(router, unreachable_worker_is_dropped_and_message_kept)
{
    send_fails_to = "w2";
    hello("w2", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    submit("c1", 2, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    long inflight;
    cr_assert_eq(depth("service", "intake", &inflight), 1);
    cr_assert_eq(inflight, 1, "w1 holds one, w2 was dropped");
    cr_assert_eq(count_kind("w1", HANDOFF__KIND__KIND_DELIVER), 1);
}

/* A worker's ack makes room for the next message, whose delivery finds the worker gone and
 * drops it: the ack's own handler must not touch the dropped worker afterwards (it did, a
 * use-after-free the ASan suite caught under load), and the next message waits for another. */
Test(router, worker_dropped_by_the_delivery_its_ack_made_room_for)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    submit("c1", 2, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    cr_assert_eq(count_kind("w1", HANDOFF__KIND__KIND_DELIVER), 1, "credit 1: one in flight");
    send_fails_to = "w1";
    ack("w1", HANDOFF__KIND__KIND_ACK, 1, NULL, 0);
    send_fails_to = NULL;
    long inflight;
    cr_assert_eq(depth("service", "intake", &inflight), 1, "message 2 waits");
    cr_assert_eq(inflight, 0);
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.workers, 0, "w1 was dropped");
    hello("w2", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    cr_assert_eq(count_kind("w2", HANDOFF__KIND__KIND_DELIVER), 1, "message 2 goes to the next worker");
}

Test(router, bye_returns_unacked_messages_in_order)
{
    hello("c2", HANDOFF__ROLE__ROLE_CLINIC, "lakeside", 0);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    for (int i = 1; i <= 3; i++)
        submit("c1", i, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "lakeside");
    fetch("c2", 2);
    cr_assert_eq(last_to("c2")->n_messages, 2);
    Handoff__Envelope bye = HANDOFF__ENVELOPE__INIT;
    bye.version = 1;
    bye.kind = HANDOFF__KIND__KIND_BYE;
    feed("c2", &bye, 0);
    cr_assert_eq(depth("mailbox", "lakeside", NULL), 3);
    hello("c3", HANDOFF__ROLE__ROLE_CLINIC, "lakeside", 0);
    fetch("c3", 10);
    Handoff__Envelope *d = last_to("c3");
    cr_assert_eq(d->n_messages, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(msg_number(d->messages[i]), i + 1, "order kept");
    cr_assert_eq(d->messages[0]->attempt, 2);
    cr_assert_eq(d->messages[2]->attempt, 1);
}

Test(router, clinics_touch_only_their_own_mailbox)
{
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    hello("c2", HANDOFF__ROLE__ROLE_CLINIC, "lakeside", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "lakeside");
    fetch("c1", 10);
    cr_assert_eq(last_to("c1")->n_messages, 0, "northpoint's mailbox is empty");
    ack("c1", HANDOFF__KIND__KIND_ACK, 1, NULL, 0);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE);
    cr_assert_eq(depth("mailbox", "lakeside", NULL), 1);

    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    fetch("w1", 10);
    cr_assert_eq(last_to("w1")->error_code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN);

    fetch("c2", 10);
    cr_assert_eq(last_to("c2")->n_messages, 1);
    ack("c2", HANDOFF__KIND__KIND_ACK, 1, NULL, 0);
    cr_assert_eq(last_to("c2")->kind, HANDOFF__KIND__KIND_ACCEPTED);
    long inflight;
    cr_assert_eq(depth("mailbox", "lakeside", &inflight), 0);
    cr_assert_eq(inflight, 0);
}

Test(router, resubmitting_an_id_is_exact)
{
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    cr_assert_eq(count_kind("c1", HANDOFF__KIND__KIND_ACCEPTED), 2);
    cr_assert_eq(depth("service", "intake", NULL), 1);
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.accepted, 1);
    cr_assert_eq(st.duplicates, 1);
}

Test(router, nack_puts_the_message_behind_the_others)
{
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    submit("c1", 2, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    cr_assert_eq(msg_number(last_to("w1")->messages[0]), 1);
    ack("w1", HANDOFF__KIND__KIND_NACK, 1, NULL, 0);
    Handoff__Envelope *d = NULL;
    for (size_t i = 0; i < n_sent; i++)
        if (!strcmp(sent[i].peer, "w1") && sent[i].env->kind == HANDOFF__KIND__KIND_DELIVER)
            d = sent[i].env;
    cr_assert_eq(msg_number(d->messages[0]), 2);
    ack("w1", HANDOFF__KIND__KIND_NACK, 5, NULL, 0);
    cr_assert_eq(last_to("w1")->error_code, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE);
}

Test(router, full_queue_answers_busy)
{
    hx_router_destroy(&router);                 /* again, with a queue bound of 2 */
    hx_store_destroy(&store);
    setup_cfg(2);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    submit("c1", 2, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    submit("c1", 3, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake");
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_BUSY);
    cr_assert(strstr(last_to("c1")->error_text, "intake"));
    cr_assert_eq(depth("service", "intake", NULL), 2);
}

static void keep_alive(const char *peer, uint64_t now)
{
    Handoff__Envelope hb = HANDOFF__ENVELOPE__INIT;
    hb.version = 1;
    hb.kind = HANDOFF__KIND__KIND_HEARTBEAT;
    feed(peer, &hb, now);
}

static void admin_op(const char *peer, const char *op, int n, uint64_t now)
{
    uint8_t id[16], req[16];
    make_id(id, n);
    make_id(req, 8000 + n);
    ProtobufCBinaryData a = {16, id};
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_ADMIN;
    env.id = (ProtobufCBinaryData){16, req};
    env.admin_op = (char *)op;
    if (n >= 0) {
        env.n_acks = 1;
        env.acks = &a;
    }
    feed(peer, &env, now);
}

static void nack_at(const char *peer, int n, uint64_t now)
{
    nack_why(peer, n, "always fails", now);
}

Test(router, a_poison_message_backs_off_then_becomes_a_dead_letter_that_an_admin_can_replay)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    hello("ops", HANDOFF__ROLE__ROLE_ADMIN, "operator", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    uint64_t t = 0;
    uint64_t delivered_at[8];
    size_t deliveries = 0;
    /* backoff 10 ms doubling; 3 attempts at most: delivered at 0, >=10 later, >=20 later */
    for (t = 0; t < 400 && deliveries < 8; t += 1) {
        size_t d = count_kind("w1", HANDOFF__KIND__KIND_DELIVER);
        if (d > deliveries) {
            delivered_at[deliveries++] = t;
            nack_at("w1", 1, t);
        }
        keep_alive("w1", t);
        keep_alive("ops", t);
        keep_alive("c1", t);
        hx_router_tick(router, t);
    }
    cr_assert_eq(deliveries, 3, "exactly max_attempts deliveries, got %zu", deliveries);
    cr_assert_geq(delivered_at[1] - delivered_at[0], 10);
    cr_assert_geq(delivered_at[2] - delivered_at[1], 20, "the delay doubles");
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.dead, 1);
    cr_assert_eq(depth("service", "triage", NULL), 0);

    admin_op("c1", "dlq.list", -1, t);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "clinics may not");
    admin_op("ops", "dlq.list", -1, t);
    Handoff__Envelope *l = last_to("ops");
    cr_assert_eq(l->kind, HANDOFF__KIND__KIND_ADMIN_REPLY);
    cr_assert_eq(l->n_dead, 1);
    cr_assert_str_eq(l->dead[0]->reason, "always fails");
    cr_assert_eq(l->dead[0]->attempts, 3);
    cr_assert_eq(l->dead[0]->message->payload.len, 0, "the list carries no payloads");
    admin_op("ops", "dlq.show", 1, t);
    cr_assert_eq(last_to("ops")->dead[0]->message->payload.len, 5);

    admin_op("ops", "dlq.replay", 1, t);
    cr_assert_eq(last_to("ops")->kind, HANDOFF__KIND__KIND_ADMIN_REPLY);
    Handoff__Envelope *d = last_to("w1");
    cr_assert_eq(d->kind, HANDOFF__KIND__KIND_DELIVER);
    cr_assert_eq(d->messages[0]->attempt, 1, "a replay starts counting again");
    admin_op("ops", "dlq.replay", 1, t);
    cr_assert_eq(last_to("ops")->error_code, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE, "replay is exact");
    hx_router_stats(router, &st);
    cr_assert_eq(st.dead, 0);
}

Test(router, dead_letters_can_be_purged)
{
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    hello("ops", HANDOFF__ROLE__ROLE_ADMIN, "operator", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    for (uint64_t t = 0; t < 400; t++) {
        if (last_to("w1")->kind == HANDOFF__KIND__KIND_DELIVER)
            nack_at("w1", 1, t);
        keep_alive("w1", t);
        keep_alive("ops", t);
        hx_router_tick(router, t);
    }
    admin_op("ops", "dlq.purge", 1, 400);
    cr_assert_eq(last_to("ops")->kind, HANDOFF__KIND__KIND_ADMIN_REPLY);
    admin_op("ops", "dlq.list", -1, 400);
    cr_assert_eq(last_to("ops")->n_dead, 0);
    admin_op("ops", "dlq.purge", 1, 400);
    cr_assert_eq(last_to("ops")->error_code, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE);
    admin_op("ops", "health", -1, 400);
    cr_assert_eq(last_to("ops")->kind, HANDOFF__KIND__KIND_ADMIN_REPLY);
}

/* A dead-letter list longer than a frame holds is cut to what fits (the rest stays in the
 * queue for the next look), and what was read for it and did not fit is not leaked (the
 * sanitizer suite runs this). */
Test(router, a_dead_letter_list_is_cut_to_one_frame)
{
    hx_router_destroy(&router);
    hx_store_destroy(&store);
    store = hx_store_memory_new();
    hx_router_config_t cfg = {.send = router_test_capture, .store = store, .heartbeat_ms = 100, .liveness = 3,
                              .backoff_ms = 1, .max_attempts = 1, .max_frame = 1000, .policy = policy_any(),
                              .sender_share = 100};
    router = hx_router_new(&cfg);
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    hello("ops", HANDOFF__ROLE__ROLE_ADMIN, "operator", 0);
    for (int i = 1; i <= 6; i++)
        submit("c1", i, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    hx_router_stats_t st = {0};
    for (uint64_t t = 0; t < 200 && st.dead < 6; t++) {
        for (int i = 1; i <= 6; i++)
            nack_at("w1", i, t);                /* each fails on its one attempt */
        keep_alive("w1", t);
        keep_alive("ops", t);
        keep_alive("c1", t);
        hx_router_tick(router, t);
        hx_router_stats(router, &st);
    }
    cr_assert_eq(st.dead, 6, "six dead letters, got %zu", (size_t)st.dead);
    admin_op("ops", "dlq.list", -1, 200);
    Handoff__Envelope *l = last_to("ops");
    cr_assert_eq(l->kind, HANDOFF__KIND__KIND_ADMIN_REPLY);
    cr_expect_gt(l->n_dead, 0, "the first ones fit");
    cr_expect_lt(l->n_dead, 6, "not all of them fit in 1000 bytes: got %zu", l->n_dead);
    hx_router_stats(router, &st);
    cr_expect_eq(st.dead, 6, "listing removes nothing");
}

Test(router, a_worker_that_holds_a_message_too_long_has_failed_it)
{
    hx_router_destroy(&router);
    hx_store_destroy(&store);
    store = hx_store_memory_new();
    hx_router_config_t cfg = {.send = router_test_capture, .store = store, .heartbeat_ms = 100, .liveness = 3,
                              .backoff_ms = 10, .ack_timeout_ms = 150, .policy = policy_any()};
    router = hx_router_new(&cfg);
    hello("w1", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    hello("w2", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    submit("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage");
    const char *first = count_kind("w1", HANDOFF__KIND__KIND_DELIVER) ? "w1" : "w2";
    const char *second = strcmp(first, "w1") ? "w1" : "w2";
    for (uint64_t t = 0; t <= 200; t += 10) {
        keep_alive("w1", t);
        keep_alive("w2", t);
        hx_router_tick(router, t);
    }
    cr_assert_eq(count_kind(second, HANDOFF__KIND__KIND_DELIVER), 1, "the held message went to the other worker");
    Handoff__Envelope *d = last_to(second);
    cr_assert_eq(d->messages[0]->attempt, 2);
}

Test(router, a_mailbox_bound_in_bytes_answers_busy)
{
    hx_router_destroy(&router);
    hx_store_destroy(&store);
    store = hx_store_memory_new();
    hx_router_config_t cfg = {.send = router_test_capture, .store = store, .max_queue_bytes = 300,
                              .policy = policy_any()};
    router = hx_router_new(&cfg);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    int accepted = 0;
    for (int i = 1; i <= 10; i++) {
        submit("c1", i, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "lakeside");
        if (last_to("c1")->kind == HANDOFF__KIND__KIND_ACCEPTED)
            accepted++;
    }
    cr_assert_gt(accepted, 0);
    cr_assert_lt(accepted, 10);
    cr_assert_eq(last_to("c1")->error_code, HANDOFF__ERROR_CODE__ERR_BUSY);
    cr_assert(strstr(last_to("c1")->error_text, "bytes"), "%s", last_to("c1")->error_text);
}
