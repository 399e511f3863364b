/* Unit tests for log compaction (hx_store.h "Compaction", hx_router_compact.c): a mailbox
 * nobody reads and a dead letter nobody replays no longer keep every later segment; what
 * they hold survives, in its state, a crash at every point of the traffic; recovery takes a
 * moved copy whether or not the old one is still on disk. A router fed frames by hand on a
 * real log store with small segments, written synchronously (no loop). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "router_test.h"

#define SEGMENT (16u << 10)

static char dir[256];
static hx_policy_t *any_policy;

static hx_store_t *open_log(const char *at)
{
    char err[512];
    hx_store_log_config_t c = {.dir = at, .segment_bytes = SEGMENT};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    return s;
}

static hx_router_t *router_on(hx_store_t *s)
{
    if (!any_policy) {
        char err[200];
        any_policy = hx_policy_parse("{\"rules\": [{\"from\": \"*\", \"to\": \"*\", \"types\": [\"*\"]}]}", err,
                                     sizeof err);
        cr_assert_not_null(any_policy, "%s", err);
    }
    hx_router_config_t cfg = {.send = router_test_capture, .store = s, .heartbeat_ms = 1000000, .liveness = 3,
                              .dedup_window = 128, .ack_timeout_ms = 1000000000u, .backoff_ms = 10,
                              .max_attempts = 1, .policy = any_policy, .sender_share = 100};
    hx_router_t *r = hx_router_new(&cfg);
    cr_assert_not_null(r);
    cr_assert_eq(hx_router_recover(r), 0, "the log recovers");
    return r;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/handoff-compact-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    n_sent = 0;
    send_fails_to = NULL;
    store = open_log(dir);
    router = router_on(store);
}

static void teardown(void)
{
    router_test_clear();
    hx_router_destroy(&router);
    hx_store_destroy(&store);
    hx_policy_destroy(&any_policy);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.copy'", dir, dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(compact, .init = setup, .fini = teardown);

/* Segment files in d, and the highest segment number seen. */
static size_t segments(const char *d, unsigned long long *highest)
{
    DIR *dd = opendir(d);
    cr_assert_not_null(dd);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dd))) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".log") == 0) {
            n++;
            unsigned long long v = strtoull(de->d_name, NULL, 10);
            if (highest && v > *highest)
                *highest = v;
        }
    }
    closedir(dd);
    return n;
}

static void fetch(const char *peer)
{
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    uint8_t req[16];
    make_id(req, 7777);
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_FETCH;
    env.id = (ProtobufCBinaryData){16, req};
    env.max = 100;
    feed(peer, &env, 0);
}

/* The dead letters' list as an admin sees it: the reply, or NULL. */
static Handoff__Envelope *dlq_list(hx_router_t *r)
{
    hx_router_t *keep = router;
    router = r;
    hello("ops", HANDOFF__ROLE__ROLE_ADMIN, "operator", 0);
    uint8_t req[16];
    make_id(req, 9999);
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_ADMIN;
    env.id = (ProtobufCBinaryData){16, req};
    env.admin_op = "dlq.list";
    feed("ops", &env, 0);
    router = keep;
    return last_to("ops");
}

/* What a recovered copy must hold, whenever the crash came: the never-read mailbox's three
 * messages waiting, the dead letter dead with its reason and attempts, nothing else. */
static void check_held(hx_router_t *r, const char *when)
{
    cr_assert_eq(hx_router_depth(r, "mailbox", "silent", NULL), 3, "%s: the unread mailbox keeps its 3", when);
    hx_router_stats_t st;
    hx_router_stats(r, &st);
    cr_assert_eq(st.dead, 1, "%s: one dead letter, got %llu", when, (unsigned long long)st.dead);
    Handoff__Envelope *l = dlq_list(r);
    cr_assert_not_null(l);
    cr_assert_eq(l->n_dead, 1, "%s", when);
    cr_assert_eq(number_of(&l->dead[0]->message->id), 500, "%s", when);
    cr_assert_str_eq(l->dead[0]->reason, "cannot parse", "%s: the reason survives", when);
    cr_assert_eq(l->dead[0]->attempts, 1, "%s", when);
    long depth = hx_router_depth(r, "service", "svc", NULL);
    cr_assert(depth <= 0, "%s: the traffic was all acked, %ld left", when, depth);
}

/* The data directory as a crash would leave it now, recovered into a router of its own. */
static void crash_copy_check(const char *when)
{
    char copy[300], cmd[1400];
    snprintf(copy, sizeof copy, "%s.copy", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s' && rm -f '%s/LOCK'", copy, dir, copy, copy);
    cr_assert_eq(system(cmd), 0);
    hx_store_t *s = open_log(copy);
    hx_router_t *r = router_on(s);
    check_held(r, when);
    hx_router_destroy(&r);
    hx_store_destroy(&s);
}

static void pinned_of_silent(void *arg, const hx_queue_info_t *q)
{
    if (q->mailbox && strcmp(q->name, "silent") == 0)
        *(uint64_t *)arg = q->pinned_bytes;
}

static uint64_t compacted(void)
{
    uint64_t m = 0, b = 0;
    store->ops->compacted(store, &m, &b);
    return m;
}

Test(compact, an_unread_mailbox_and_a_dead_letter_no_longer_keep_the_log)
{
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    hello("w", HANDOFF__ROLE__ROLE_WORKER, "svc", 1);
    hello("pw", HANDOFF__ROLE__ROLE_WORKER, "poison", 1);
    for (int n = 1; n <= 3; n++)
        send_msg("c1", n, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "silent", "test", 0);
    send_msg("c1", 500, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "poison", "test", 0);
    hx_router_flush(router);
    nack_why("pw", 500, "cannot parse", 0);
    hx_router_flush(router);

    uint64_t t = 1000, last_moved = 0;
    int last_check = -1000;
    size_t checks = 0;
    const int traffic = 4000;
    for (int i = 0; i < traffic; i++) {
        send_msg("c1", 1000 + i, HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE, "svc", "test", 0);
        hx_router_flush(router);
        ack("w", HANDOFF__KIND__KIND_ACK, 1000 + i, NULL, 0);
        hx_router_flush(router);
        hx_router_tick(router, t += 25);
        hx_router_flush(router);
        if (n_sent > ROUTER_TEST_MAX_SENT - 16)
            router_test_clear();
        /* a crash right after a compaction step (one in every 100 messages at most: each
         * check copies the directory), and every so often in between */
        if ((compacted() != last_moved && i - last_check >= 100) || i % 500 == 0) {
            last_check = i;
            char when[64];
            snprintf(when, sizeof when, "a crash after message %d", i);
            crash_copy_check(when);
            checks++;
            last_moved = compacted();
        }
    }
    unsigned long long highest = 0;
    size_t files = segments(dir, &highest);
    uint64_t bytes = store->ops->bytes(store);
    cr_log_info("%d messages through, %llu segments written, %zu left (%llu bytes); %llu messages moved; %zu "
                "crash copies recovered", traffic, highest, files, (unsigned long long)bytes,
                (unsigned long long)compacted(), checks);
    cr_assert_geq(highest, 40, "the traffic filled at least 40 segments, got %llu", highest);
    cr_assert_leq(files, 5, "disk use follows what is held: %zu segments left of %llu", files, highest);
    cr_assert_leq(bytes, 5 * SEGMENT);
    cr_assert_geq(compacted(), 8, "the held messages were moved more than once");
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.held_bytes > 0 && st.held_bytes < 1000, true, "4 small messages held: %llu bytes",
                 (unsigned long long)st.held_bytes);
    /* what the unread mailbox and the dead letter keep on disk: a few segments, not the traffic */
    uint64_t pinned = 0;
    hx_router_foreach_queue(router, pinned_of_silent, &pinned);
    cr_assert_gt(pinned, 0, "the unread mailbox pins its messages' segment");
    cr_assert_leq(pinned, bytes);
    cr_assert_gt(st.dead_pinned_bytes, 0);
    cr_assert_leq(st.dead_pinned_bytes, bytes);

    /* a clean restart, then the clinic at last reads its mailbox: each message once */
    router_test_clear();
    hx_router_destroy(&router);
    hx_store_destroy(&store);
    store = open_log(dir);
    router = router_on(store);
    check_held(router, "after a restart");
    hello("c2", HANDOFF__ROLE__ROLE_CLINIC, "silent", 0);
    fetch("c2");
    Handoff__Envelope *f = last_to("c2");
    cr_assert_not_null(f);
    cr_assert_eq(f->n_messages, 3);
    int seen[4] = {0};
    for (size_t i = 0; i < f->n_messages; i++) {
        int n = msg_number(f->messages[i]);
        cr_assert(n >= 1 && n <= 3, "message %d", n);
        seen[n]++;
        cr_assert_eq(f->messages[i]->payload.len, 5);
        cr_assert_eq(memcmp(f->messages[i]->payload.data, "hello", 5), 0, "the body survived its moves");
    }
    cr_assert(seen[1] == 1 && seen[2] == 1 && seen[3] == 1);
}

/* A packed message for the mailbox "silent", id number n. */
static size_t packed(int n, uint8_t *out, size_t cap)
{
    uint8_t id[16];
    make_id(id, n);
    Handoff__Address to = HANDOFF__ADDRESS__INIT, from = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "silent";
    from.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    from.name = "northpoint";
    Handoff__Message m = HANDOFF__MESSAGE__INIT;
    m.id = (ProtobufCBinaryData){16, id};
    m.to = &to;
    m.from = &from;
    m.type = "test";
    m.payload = (ProtobufCBinaryData){5, (uint8_t *)"hello"};
    size_t len = handoff__message__get_packed_size(&m);
    cr_assert_leq(len, cap);
    return handoff__message__pack(&m, out);
}

/* Writes: message 1 put, made dead, then enough other traffic to fill several segments,
 * then message 1 moved (dead, with its reason) without its old place released, as a crash
 * right after the move became durable leaves it; `settle_after` settles it after the move. */
static void write_moved_log(bool settle_after)
{
    uint8_t msg[256], id[16];
    size_t len = packed(1, msg, sizeof msg);
    make_id(id, 1);
    uint64_t seq, h, moved;
    cr_assert_eq(store->ops->begin(store), 0);
    cr_assert_eq(store->ops->put(store, msg, len, &h), 0);
    cr_assert_eq(store->ops->end(store, &seq), 0);
    cr_assert_eq(store->ops->begin(store), 0);
    cr_assert_eq(store->ops->dead(store, id, 4, 1234, "bad referral"), 0);
    cr_assert_eq(store->ops->end(store, &seq), 0);
    for (int n = 100; n < 400; n++) {
        uint8_t other[256], oid[16];
        size_t olen = packed(n, other, sizeof other);
        uint64_t oh;
        make_id(oid, n);
        cr_assert_eq(store->ops->begin(store), 0);
        cr_assert_eq(store->ops->put(store, other, olen, &oh), 0);
        cr_assert_eq(store->ops->settle(store, oid), 0);
        cr_assert_eq(store->ops->end(store, &seq), 0);
        store->ops->flush(store);
        store->ops->release(store, oh);
    }
    const uint8_t *body;
    cr_assert_eq(store->ops->get(store, h, len, &body), 0);
    uint8_t copy[256];
    memcpy(copy, body, len);
    cr_assert_eq(store->ops->begin(store), 0);
    cr_assert_eq(store->ops->move(store, id, copy, len, 4, 1234, "bad referral", &moved), 0);
    if (settle_after)
        cr_assert_eq(store->ops->settle(store, id), 0);
    cr_assert_eq(store->ops->end(store, &seq), 0);
    store->ops->flush(store);
    cr_assert_eq(store->ops->durable_seq(store), seq);
    hx_store_destroy(&store);
}

Test(compact, recovery_takes_the_moved_copy_with_its_state_whether_or_not_the_old_is_there)
{
    hx_router_destroy(&router);                 /* the log is written by hand here */
    write_moved_log(false);
    char first[400];
    snprintf(first, sizeof first, "%s/%020d.log", dir, 1);
    cr_assert_eq(access(first, F_OK), 0, "the old place is still on disk");

    /* both there: one dead letter, its reason from the move */
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s.copy' && cp -a '%s' '%s.copy' && rm -f '%s.copy/LOCK'", dir, dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    store = open_log(dir);
    router = router_on(store);
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.dead, 1);
    cr_assert_eq(hx_router_depth(router, "mailbox", "silent", NULL), 0, "not waiting: dead");
    Handoff__Envelope *l = dlq_list(router);
    cr_assert_eq(l->n_dead, 1);
    cr_assert_str_eq(l->dead[0]->reason, "bad referral");
    cr_assert_eq(l->dead[0]->attempts, 4);
    cr_assert_eq(l->dead[0]->dead_at_ms, 1234);
    cr_assert_neq(access(first, F_OK), 0, "superseded, the old segment went after recovery");
    router_test_clear();
    hx_router_destroy(&router);
    hx_store_destroy(&store);

    /* the old segment gone (the put and the record that made it dead with it): the same */
    char copy[300];
    snprintf(copy, sizeof copy, "%s.copy", dir);
    snprintf(first, sizeof first, "%s/%020d.log", copy, 1);
    cr_assert_eq(unlink(first), 0);
    store = open_log(copy);
    router = router_on(store);
    hx_router_stats(router, &st);
    cr_assert_eq(st.dead, 1, "the state came with the move");
    l = dlq_list(router);
    cr_assert_eq(l->n_dead, 1);
    cr_assert_str_eq(l->dead[0]->reason, "bad referral");
    cr_assert_eq(l->dead[0]->attempts, 4);
}

Test(compact, a_message_settled_after_its_move_stays_settled)
{
    hx_router_destroy(&router);
    write_moved_log(true);
    store = open_log(dir);
    router = router_on(store);
    hx_router_stats_t st;
    hx_router_stats(router, &st);
    cr_assert_eq(st.dead, 0);
    cr_assert_eq(st.held_bytes, 0, "nothing held");
    unsigned long long highest = 0;
    cr_assert_leq(segments(dir, &highest), 2, "every settled segment went");
}

Test(compact, a_memory_store_has_nothing_to_compact)
{
    hx_router_destroy(&router);
    hx_store_destroy(&store);
    store = hx_store_memory_new();
    router = router_on(store);
    hello("c1", HANDOFF__ROLE__ROLE_CLINIC, "northpoint", 0);
    send_msg("c1", 1, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, "silent", "test", 0);
    for (uint64_t t = 0; t < 10000; t += 25)
        hx_router_tick(router, t);
    cr_assert_eq(hx_router_depth(router, "mailbox", "silent", NULL), 1);
    cr_assert_null(store->ops->compacted);
}
