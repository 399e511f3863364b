/* Unit tests for the trust rules of the router with the network's own routing policy (the
 * built-in table): who may send what where (issue "a clinic can forge another clinic's
 * inbox"), fair share over clinics on service queues, mailboxes that never refuse a
 * service, and the smaller protocol rules (NUL in names, stats scope, NACK, empty type). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_policy.h"
#include "router_test.h"

static char audit_log[64][256];
static size_t n_audit;

static void on_audit(void *arg, const char *principal, const char *action, const char *id, const char *outcome)
{
    (void)arg, (void)id;
    if (n_audit < 64)
        snprintf(audit_log[n_audit++], sizeof audit_log[0], "%s %s %s", principal, action, outcome);
}

static void start(uint32_t max_queue, uint32_t share)
{
    store = hx_store_memory_new();
    hx_router_config_t cfg = {.send = router_test_capture, .store = store, .max_queue = max_queue,
                              .sender_share = share, .audit = on_audit};
    router = hx_router_new(&cfg);               /* no policy given: the built-in table */
    cr_assert_not_null(router);
    n_sent = n_audit = 0;
}

static void setup(void)
{
    start(0, 0);
}

static void teardown(void)
{
    router_test_clear();
    hx_router_destroy(&router);
    hx_store_destroy(&store);
}

TestSuite(policy, .init = setup, .fini = teardown);

static Handoff__Envelope *refer(const char *peer, int n, int prio)
{
    return send_msg(peer, n, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake", "handoff.Referral", prio);
}

/* Acks message n (held by peer) with at most one output; returns the reply. */
static Handoff__Envelope *ack_with(const char *peer, int n, Handoff__Message *out)
{
    return ack(peer, HANDOFF__KIND__KIND_ACK, n, out ? &out : NULL, out ? 1 : 0);
}

static void expect_code(const Handoff__Envelope *e, Handoff__ErrorCode code, const char *text)
{
    cr_assert_not_null(e);
    cr_assert_eq(e->error_code, code, "got %d: %s", e->error_code, e->error_text ? e->error_text : "");
    if (text)
        cr_assert(strstr(e->error_text, text), "'%s' does not say '%s'", e->error_text, text);
}

static void expect_accepted(const Handoff__Envelope *e)
{
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, HANDOFF__KIND__KIND_ACCEPTED, "refused %d: %s", e->error_code,
                 e->error_text ? e->error_text : "");
}

/* The messages delivered to peer since index `from` of sent[], in order: their numbers. */
static size_t delivered(const char *peer, size_t from, int *out, size_t cap, Handoff__Message **msgs)
{
    size_t k = 0;
    for (size_t i = from; i < n_sent; i++)
        if (strcmp(sent[i].peer, peer) == 0 && sent[i].env->kind == HANDOFF__KIND__KIND_DELIVER)
            for (size_t j = 0; j < sent[i].env->n_messages && k < cap; j++) {
                if (msgs)
                    msgs[k] = sent[i].env->messages[j];
                out[k++] = number_of(&sent[i].env->messages[j]->id);
            }
    return k;
}

/* ---- 1. the routing policy -------------------------------------------------------------- */

Test(policy, a_clinic_cannot_forge_another_clinics_inbox)
{
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    expect_code(send_msg("a", 1, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.Handoff", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "may not send handoff.Handoff to mailbox clinic-b");
    expect_code(send_msg("a", 2, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.StatusUpdate", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "routing policy");
    /* not even an unknown type, nor into its own mailbox */
    expect_code(send_msg("a", 3, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "x.Note", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    expect_code(send_msg("a", 4, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-a", "handoff.Handoff", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    long inflight = 0;
    cr_assert_leq(hx_router_depth(router, "mailbox", "clinic-b", &inflight), 0, "nothing reached clinic-b");
    /* each refusal is in the audit log, with the clinic's name */
    size_t refused = 0;
    for (size_t i = 0; i < n_audit; i++)
        refused += strstr(audit_log[i], "clinic:clinic-a") && strstr(audit_log[i], "refused") &&
                   strstr(audit_log[i], "routing policy");
    cr_assert_eq(refused, 4, "every refusal audited (%zu)", refused);
}

Test(policy, a_clinic_sends_referrals_to_intake_and_changes_to_scheduling_only)
{
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    expect_accepted(refer("a", 1, 0));
    expect_accepted(send_msg("a", 2, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "scheduling", "handoff.StatusChange", 0));
    expect_code(send_msg("a", 3, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "scheduling", "handoff.Case", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    expect_code(send_msg("a", 4, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "triage", "handoff.Case", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    expect_code(send_msg("a", 5, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake", "handoff.StatusChange", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    expect_code(send_msg("a", 6, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "scheduling", "handoff.Retry", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
}

/* The network's figures: a clinic or a reviewer asks scheduling, scheduling answers in the
 * mailbox; nobody else asks or answers, and nobody asks another service. */
Test(policy, the_network_figures_are_asked_of_scheduling_and_answered_by_it)
{
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    hello("r", HANDOFF__ROLE__ROLE_REVIEWER, "review", 0);
    hello("s", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    hello("i", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    expect_accepted(send_msg("a", 1, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "scheduling", "handoff.StatsRequest", 0));
    expect_accepted(send_msg("r", 2, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "scheduling", "handoff.StatsRequest", 0));
    expect_code(send_msg("a", 3, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "intake", "handoff.StatsRequest", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    expect_accepted(send_msg("s", 4, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-a", "handoff.NetworkStats", 0));
    expect_accepted(send_msg("s", 5, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "review", "handoff.NetworkStats", 0));
    expect_code(send_msg("i", 6, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-a", "handoff.NetworkStats", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "service intake may not send handoff.NetworkStats");
    expect_code(send_msg("a", 7, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.NetworkStats", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
}

Test(policy, only_the_issuing_service_puts_a_clinical_type_into_a_mailbox)
{
    hello("s", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    hello("i", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    hello("t", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    hello("o", HANDOFF__ROLE__ROLE_ADMIN, "ops", 0);
    expect_accepted(send_msg("s", 1, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.Handoff", 0));
    expect_accepted(send_msg("s", 2, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.StatusUpdate", 0));
    expect_accepted(send_msg("i", 3, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.StatusUpdate", 0));
    expect_accepted(send_msg("t", 4, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.StatusUpdate", 0));
    expect_code(send_msg("i", 5, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.Handoff", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "service intake may not send handoff.Handoff");
    expect_code(send_msg("t", 6, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.Handoff", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    expect_code(send_msg("o", 7, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.StatusUpdate", 0),
                HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "admin ops");
    cr_assert_eq(hx_router_depth(router, "mailbox", "clinic-b", NULL), 4);
}

Test(policy, a_refused_output_settles_nothing)
{
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    hello("i", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    expect_accepted(refer("a", 1, 0));
    cr_assert_eq(last_to("i")->kind, HANDOFF__KIND__KIND_DELIVER);
    uint8_t oid[16];
    make_id(oid, 2);
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "clinic-b";
    Handoff__Message out = HANDOFF__MESSAGE__INIT;
    out.id = (ProtobufCBinaryData){16, oid};
    out.to = &to;
    out.type = "handoff.Handoff";           /* intake does not issue handoffs */
    expect_code(ack_with("i", 1, &out), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, NULL);
    long inflight = 0;
    hx_router_depth(router, "service", "intake", &inflight);
    cr_assert_eq(inflight, 1, "the input is still held: nothing settled");
}

Test(policy, the_policy_file_format_is_checked_field_by_field)
{
    char err[256];
    const struct {
        const char *json, *says;
    } bad[] = {
        {"[]", "rules"},
        {"{\"rules\": [{\"from\": \"clinic:*\", \"to\": \"service:intake\"}]}", "rules[0].types"},
        {"{\"rules\": [{\"from\": \"mailbox:a\", \"to\": \"*\", \"types\": [\"*\"]}]}", "rules[0].from"},
        {"{\"rules\": [{\"from\": \"clinic:*\", \"to\": \"clinic:b\", \"types\": [\"*\"]}]}", "rules[0].to"},
        {"{\"rules\": [{\"from\": \"clinic:a b\", \"to\": \"*\", \"types\": [\"*\"]}]}", "rules[0].from"},
        {"{\"rules\": [{\"from\": \"*\", \"to\": \"*\", \"types\": [\"a\", \"*\"]}]}", "rules[0].types[1]"},
        {"{\"rules\": [{\"from\": \"*\", \"to\": \"*\", \"types\": [\"\"]}]}", "rules[0].types[0]"},
        {"{\"rules\": [], \"extra\": 1}", "extra"},
        {"{\"rules\": [{\"from\": \"*\", \"to\": \"*\", \"types\": [\"*\"], \"why\": 1}]}", "rules[0].why"},
        {"{\"rules\": ", "line 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        hx_policy_t *p = hx_policy_parse(bad[i].json, err, sizeof err);
        cr_expect_null(p, "accepted %s", bad[i].json);
        hx_policy_destroy(&p);
        cr_expect(strstr(err, bad[i].says), "'%s' does not name '%s'", err, bad[i].says);
    }
    /* the built-in table written out reads back as the same rules */
    hx_policy_t *d = hx_policy_default();
    char *text = hx_policy_json(d);
    hx_policy_t *back = hx_policy_parse(text, err, sizeof err);
    cr_assert_not_null(back, "%s", err);
    cr_assert_eq(hx_policy_size(back), hx_policy_size(d));
    cr_assert(hx_policy_allows(back, HX_POLICY_SERVICE, "scheduling", HX_POLICY_TO_MAILBOX, "x", "handoff.Handoff"));
    cr_assert_not(hx_policy_allows(back, HX_POLICY_CLINIC, "x", HX_POLICY_TO_MAILBOX, "y", "handoff.Handoff"));
    free(text);
    hx_policy_destroy(&d);
    hx_policy_destroy(&back);
}

/* ---- 3. fair share ---------------------------------------------------------------------------- */

/* Clinic a has a backlog of `backlog` routine referrals at intake; clinic b then submits
 * `few` with priority prio. A worker with credit 1 handles them one at a time: the position
 * (1-based) at which b's last one came out. */
static size_t last_of_b(int backlog, int few, int prio)
{
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    hello("b", HANDOFF__ROLE__ROLE_CLINIC, "clinic-b", 0);
    for (int i = 1; i <= backlog; i++)
        expect_accepted(refer("a", i, 0));
    for (int i = 0; i < few; i++)
        expect_accepted(refer("b", 100000 + i, prio));
    size_t mark = n_sent;
    hello("w", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    size_t last = 0;
    int seen_b = 0;
    for (int k = 1; k <= backlog + few && seen_b < few; k++) {
        int got[1];
        size_t n = delivered("w", mark, got, 1, NULL);
        cr_assert_eq(n, 1, "one delivery at a time (credit 1)");
        if (got[0] >= 100000) {
            seen_b++;
            last = (size_t)k;
        }
        mark = n_sent;
        expect_accepted(ack_with("w", got[0], NULL));
    }
    cr_assert_eq(seen_b, few);
    return last;
}

Test(policy, fair_share_takes_turns_over_clinics)
{
    /* 1000 routine referrals of a wait; b's 10 routine ones take every other turn */
    size_t last = last_of_b(1000, 10, 0);
    cr_assert_leq(last, 20, "clinic b's 10th referral came out at position %zu, behind a's backlog", last);
}

Test(policy, urgent_goes_before_routine)
{
    /* b's stat referrals go before every routine one of a */
    size_t last = last_of_b(500, 5, HANDOFF__DELIVERY_PRIORITY__DELIVERY_STAT);
    cr_assert_eq(last, 5, "b's 5 stat referrals came out first, the last at %zu", last);
}

Test(policy, within_a_clinic_urgent_overtakes_its_own_backlog)
{
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    for (int i = 1; i <= 50; i++)
        expect_accepted(refer("a", i, 0));
    expect_accepted(refer("a", 51, HANDOFF__DELIVERY_PRIORITY__DELIVERY_URGENT));
    size_t mark = n_sent;
    hello("w", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    int got[1];
    cr_assert_eq(delivered("w", mark, got, 1, NULL), 1);
    cr_assert_eq(got[0], 51, "the urgent one first, got %d", got[0]);
}

Test(policy, a_clinic_over_its_share_gets_busy_and_others_do_not)
{
    teardown();
    start(100, 25);                             /* 25 messages per clinic in the service queues */
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    hello("b", HANDOFF__ROLE__ROLE_CLINIC, "clinic-b", 0);
    for (int i = 1; i <= 25; i++)
        expect_accepted(refer("a", i, 0));
    expect_code(refer("a", 26, 0), HANDOFF__ERROR_CODE__ERR_BUSY, "clinic:clinic-a already has 25 messages");
    /* the share counts every service queue: a's lifecycle requests too */
    expect_code(send_msg("a", 27, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "scheduling", "handoff.StatusChange", 0),
                HANDOFF__ERROR_CODE__ERR_BUSY, "share");
    for (int i = 1; i <= 25; i++)
        expect_accepted(refer("b", 1000 + i, 0));
    /* once a's work is handled, a may submit again */
    hello("w", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    for (int k = 0; k < 2; k++) {
        int got[1];
        cr_assert_eq(delivered("w", n_sent - 1, got, 1, NULL), 1);
        expect_accepted(ack_with("w", got[0], NULL));
    }
    expect_accepted(refer("a", 26, 0));
}

Test(policy, outputs_keep_the_clinic_and_the_priority_of_their_input)
{
    teardown();
    start(100, 25);
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    hello("b", HANDOFF__ROLE__ROLE_CLINIC, "clinic-b", 0);
    hello("i", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    expect_accepted(refer("a", 1, HANDOFF__DELIVERY_PRIORITY__DELIVERY_URGENT));
    /* intake passes it on as a case for triage, without saying a priority */
    uint8_t oid[16];
    make_id(oid, 2);
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE;
    to.name = "triage";
    Handoff__Message out = HANDOFF__MESSAGE__INIT;
    out.id = (ProtobufCBinaryData){16, oid};
    out.to = &to;
    out.type = "handoff.Case";
    expect_accepted(ack_with("i", 1, &out));
    size_t mark = n_sent;
    hello("t", HANDOFF__ROLE__ROLE_WORKER, "triage", 1);
    Handoff__Message *m[1];
    int got[1];
    cr_assert_eq(delivered("t", mark, got, 1, m), 1);
    cr_assert_eq(got[0], 2);
    cr_assert_str_eq(m[0]->origin, "clinic:clinic-a", "the output is still clinic-a's work");
    cr_assert_eq(m[0]->priority, HANDOFF__DELIVERY_PRIORITY__DELIVERY_URGENT, "and still urgent");
    cr_assert_str_eq(m[0]->from->name, "intake", "from is still the sender");
    /* outputs are not refused for the clinic's share: the pipeline never stalls on it */
    for (int i = 0; i < 24; i++)
        expect_accepted(refer("a", 10 + i, 0));
    expect_code(refer("a", 40, 0), HANDOFF__ERROR_CODE__ERR_BUSY, "share");
    expect_accepted(ack_with("t", 2, NULL));
}

Test(policy, a_mailbox_never_refuses_a_service)
{
    teardown();
    start(5, 100);                              /* a queue holds 5 messages */
    hello("s", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    for (int i = 1; i <= 20; i++)
        expect_accepted(send_msg("s", i, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.Handoff", 0));
    cr_assert_eq(hx_router_depth(router, "mailbox", "clinic-b", NULL), 20);
    /* while a service queue still has its bound */
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    for (int i = 1; i <= 5; i++)
        expect_accepted(refer("a", 100 + i, 0));
    expect_code(refer("a", 106, 0), HANDOFF__ERROR_CODE__ERR_BUSY, "full");
}

/* ---- 5. the protocol as documented -------------------------------------------------------------- */

Test(policy, a_hello_name_with_a_nul_inside_is_refused)
{
    /* the name field carries "northpoint\0lakeside": the decoded C string would be "northpoint" */
    uint8_t frame[64];
    size_t k = 0;
    frame[k++] = 0x08, frame[k++] = 1;              /* version = 1 */
    frame[k++] = 0x10, frame[k++] = HANDOFF__KIND__KIND_HELLO;
    frame[k++] = 0x28, frame[k++] = HANDOFF__ROLE__ROLE_CLINIC;
    const char name[] = "northpoint\0lakeside";
    frame[k++] = 0x32, frame[k++] = sizeof name - 1;
    memcpy(frame + k, name, sizeof name - 1);
    k += sizeof name - 1;
    hx_router_on_frame(router, (const uint8_t *)"x", 1, frame, k, 0);
    expect_code(last_to("x"), HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "name: contains a NUL");
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.clinics, 0, "no session was opened");
}

Test(policy, a_type_or_address_with_a_nul_inside_is_refused)
{
    hello("s", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    /* packed with "clinic-bXclinic-c", then the X made a NUL: "clinic-b\0clinic-c" */
    Handoff__Address addr = HANDOFF__ADDRESS__INIT;
    addr.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    addr.name = "clinic-bXclinic-c";
    uint8_t id[16];
    make_id(id, 2);
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){16, id};
    m.to = &addr;
    m.type = "handoff.Handoff";
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_SUBMIT;
    env.id = (ProtobufCBinaryData){16, id};
    env.n_messages = 1;
    env.messages = &mp;
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(&env, &b), 0);
    uint8_t *x = NULL;
    for (size_t i = 0; !x && i + 17 <= b.len; i++)
        if (memcmp(b.data + i, "clinic-bXclinic-c", 17) == 0)
            x = b.data + i;
    cr_assert_not_null(x);
    x[8] = 0;
    hx_router_on_frame(router, (const uint8_t *)"s", 1, b.data, b.len, 0);
    hx_buf_free(&b);
    expect_code(last_to("s"), HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "messages[0].to.name: contains a NUL");
}

Test(policy, an_empty_type_is_refused)
{
    hello("s", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    expect_code(send_msg("s", 1, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "", 0),
                HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "messages[0].type: required");
}

Test(policy, a_priority_out_of_range_is_refused)
{
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    expect_code(refer("a", 1, 7), HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "messages[0].priority");
}

Test(policy, stats_shows_a_clinic_only_its_own_mailbox)
{
    hello("s", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    expect_accepted(send_msg("s", 1, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-a", "handoff.Handoff", 0));
    expect_accepted(send_msg("s", 2, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-b", "handoff.Handoff", 0));
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    hello("o", HANDOFF__ROLE__ROLE_ADMIN, "ops", 0);
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    uint8_t id[16];
    make_id(id, 77);
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_ADMIN;
    env.id = (ProtobufCBinaryData){16, id};
    env.admin_op = "stats";
    feed("a", &env, 0);
    const char *text = last_to("a")->text;
    cr_assert_not_null(text);
    cr_assert(strstr(text, "\"clinic-a\""), "%s", text);
    cr_assert_null(strstr(text, "clinic-b"), "a clinic sees another clinic's mailbox: %s", text);
    cr_assert_null(strstr(text, "scheduling"), "%s", text);
    cr_assert_null(strstr(text, "totals"), "%s", text);
    cr_assert(strstr(text, "\"scope\":\"own\""), "%s", text);
    feed("o", &env, 0);
    text = last_to("o")->text;
    cr_assert(strstr(text, "clinic-b") && strstr(text, "totals"), "an admin sees everything: %s", text);
}

Test(policy, a_clinic_may_not_nack)
{
    hello("s", HANDOFF__ROLE__ROLE_WORKER, "scheduling", 1);
    expect_accepted(send_msg("s", 1, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "clinic-a", "handoff.Handoff", 0));
    hello("a", HANDOFF__ROLE__ROLE_CLINIC, "clinic-a", 0);
    Handoff__Envelope f = HANDOFF__ENVELOPE__INIT;
    uint8_t req[16], id[16];
    make_id(req, 500);
    make_id(id, 1);
    f.version = 1;
    f.kind = HANDOFF__KIND__KIND_FETCH;
    f.id = (ProtobufCBinaryData){16, req};
    feed("a", &f, 0);
    cr_assert_eq(last_to("a")->n_messages, 1);
    ProtobufCBinaryData a = {16, id};
    Handoff__Envelope n = HANDOFF__ENVELOPE__INIT;
    n.version = 1;
    n.kind = HANDOFF__KIND__KIND_NACK;
    n.id = (ProtobufCBinaryData){16, req};
    n.n_acks = 1;
    n.acks = &a;
    feed("a", &n, 0);
    expect_code(last_to("a"), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "only a worker nacks");
    long inflight = 0;
    hx_router_depth(router, "mailbox", "clinic-a", &inflight);
    cr_assert_eq(inflight, 1, "still held by the clinic's session, not failed");
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.nacked, 0);
}

Test(policy, acking_a_settled_id_is_accepted_nacking_one_is_unknown)
{
    hello("i", HANDOFF__ROLE__ROLE_WORKER, "intake", 1);
    expect_accepted(ack_with("i", 4242, NULL));     /* never held, or settled long ago: harmless */
    uint8_t req[16], id[16];
    make_id(req, 501);
    make_id(id, 4242);
    ProtobufCBinaryData a = {16, id};
    Handoff__Envelope n = HANDOFF__ENVELOPE__INIT;
    n.version = 1;
    n.kind = HANDOFF__KIND__KIND_NACK;
    n.id = (ProtobufCBinaryData){16, req};
    n.n_acks = 1;
    n.acks = &a;
    feed("i", &n, 0);
    expect_code(last_to("i"), HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE, "not held by you");
}
