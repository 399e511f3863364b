/* Unit: a client and a worker given the nodes of a replicated broker (a comma-separated list)
 * find its leader. The nodes are fakes on one thread: ROUTER sockets on loopback ports that
 * answer as a follower (ERROR ERR_NOT_LEADER naming the leader), as a leader (a minimal
 * broker: WELCOME, ACCEPTED) or not at all; an "election" makes every node answer with no
 * leader until it ends. Plain TCP, no CURVE. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "hx_client.h"
#include "hx_log.h"
#include "hx_worker.h"

typedef enum { NODE_LEADER, NODE_FOLLOWER, NODE_SILENT } node_mode_t;

#define MAX_SEEN 64

/* One fake node: how it answers, and what it was sent. */
typedef struct {
    void *sock;
    char endpoint[64];
    node_mode_t mode;
    char hint[128];             /* a follower: the leader it names ("" none) */
    int frames, hellos, worker_hellos, worker_welcomes;
    int not_leader, hellos_refused;     /* answers ERR_NOT_LEADER: all, to a HELLO */
    size_t n_req, n_msg;
    uint8_t req[MAX_SEEN][HX_ID_LEN];   /* SUBMITs' request ids, refused ones too */
    uint8_t msg[MAX_SEEN][HX_ID_LEN];   /* their messages' ids */
} node_t;

typedef struct {
    void *zctx;
    node_t node[3];
    int n;
    uint32_t heartbeat_ms;      /* sent in WELCOME */
    int64_t election_ends;      /* until then every node answers "no leader known" */
    pthread_mutex_t mu;
    pthread_t thread;
    atomic_bool stop;
} fake_t;

static fake_t fake;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply(void *sock, const zmq_msg_t *rid, const Handoff__Envelope *env)
{
    size_t len = handoff__envelope__get_packed_size(env);
    uint8_t *buf = malloc(len ? len : 1);
    handoff__envelope__pack(env, buf);
    zmq_send(sock, zmq_msg_data((zmq_msg_t *)rid), zmq_msg_size((zmq_msg_t *)rid), ZMQ_SNDMORE);
    zmq_send(sock, buf, len, 0);
    free(buf);
}

/* nd's answer to env, and what it saw (under the lock). */
static void answer(node_t *nd, const zmq_msg_t *rid, const Handoff__Envelope *env)
{
    nd->frames++;
    if (env->kind == HANDOFF__KIND__KIND_HELLO) {
        nd->hellos++;
        nd->worker_hellos += env->role == HANDOFF__ROLE__ROLE_WORKER;
    }
    if (env->kind == HANDOFF__KIND__KIND_SUBMIT && env->id.len == HX_ID_LEN && nd->n_req < MAX_SEEN) {
        memcpy(nd->req[nd->n_req++], env->id.data, HX_ID_LEN);
        for (size_t i = 0; i < env->n_messages && nd->n_msg < MAX_SEEN; i++)
            if (env->messages[i]->id.len == HX_ID_LEN)
                memcpy(nd->msg[nd->n_msg++], env->messages[i]->id.data, HX_ID_LEN);
    }
    if (nd->mode == NODE_SILENT)
        return;
    Handoff__Envelope r;
    handoff__envelope__init(&r);
    r.version = HX_PROTOCOL_VERSION;
    r.correlation_id = env->id;
    if (nd->mode == NODE_FOLLOWER || now_ms() < fake.election_ends) {
        nd->not_leader++;
        nd->hellos_refused += env->kind == HANDOFF__KIND__KIND_HELLO;
        r.kind = HANDOFF__KIND__KIND_ERROR;
        r.error_code = HANDOFF__ERROR_CODE__ERR_NOT_LEADER;
        r.leader = now_ms() < fake.election_ends ? "" : nd->hint;
        r.error_text = r.leader;
        reply(nd->sock, rid, &r);
        return;
    }
    switch (env->kind) {                        /* the leader: what the real broker answers */
    case HANDOFF__KIND__KIND_HELLO:
        r.kind = HANDOFF__KIND__KIND_WELCOME;
        nd->worker_welcomes += env->role == HANDOFF__ROLE__ROLE_WORKER;
        r.heartbeat_ms = fake.heartbeat_ms;
        r.liveness = 3;
        r.max_frame = 1u << 20;
        break;
    case HANDOFF__KIND__KIND_SUBMIT:
        r.kind = HANDOFF__KIND__KIND_ACCEPTED;
        break;
    case HANDOFF__KIND__KIND_ACK:
    case HANDOFF__KIND__KIND_NACK:
        if (env->id.len != HX_ID_LEN)
            return;
        r.kind = HANDOFF__KIND__KIND_ACCEPTED;
        break;
    case HANDOFF__KIND__KIND_HEARTBEAT:
        r.kind = HANDOFF__KIND__KIND_HEARTBEAT;
        break;
    default:
        return;
    }
    reply(nd->sock, rid, &r);
}

static void *fake_run(void *arg)
{
    (void)arg;
    while (!atomic_load(&fake.stop)) {
        zmq_pollitem_t items[3];
        for (int k = 0; k < fake.n; k++)
            items[k] = (zmq_pollitem_t){fake.node[k].sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(items, fake.n, 20) <= 0)
            continue;
        for (int k = 0; k < fake.n; k++) {
            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t rid, frame;
            zmq_msg_init(&rid);
            zmq_msg_init(&frame);
            if (zmq_msg_recv(&rid, items[k].socket, 0) >= 0 && zmq_msg_more(&rid) &&
                zmq_msg_recv(&frame, items[k].socket, 0) >= 0 && !zmq_msg_more(&frame)) {
                Handoff__Envelope *env = handoff__envelope__unpack(NULL, zmq_msg_size(&frame), zmq_msg_data(&frame));
                if (env) {
                    pthread_mutex_lock(&fake.mu);
                    answer(&fake.node[k], &rid, env);
                    pthread_mutex_unlock(&fake.mu);
                    handoff__envelope__free_unpacked(env, NULL);
                }
            }
            zmq_msg_close(&rid);
            zmq_msg_close(&frame);
        }
    }
    return NULL;
}

/* n nodes on loopback ports, all leaders until set otherwise; the thread starts with fake_go. */
static void fake_new(int n)
{
    memset(&fake, 0, sizeof fake);
    hx_log_init("test", HX_LOG_WARN);
    pthread_mutex_init(&fake.mu, NULL);
    fake.zctx = zmq_ctx_new();
    fake.n = n;
    fake.heartbeat_ms = 1000;
    for (int k = 0; k < n; k++) {
        node_t *nd = &fake.node[k];
        nd->sock = zmq_socket(fake.zctx, ZMQ_ROUTER);
        int zero = 0;
        zmq_setsockopt(nd->sock, ZMQ_LINGER, &zero, sizeof zero);
        cr_assert_eq(zmq_bind(nd->sock, "tcp://127.0.0.1:*"), 0);
        size_t len = sizeof nd->endpoint;
        cr_assert_eq(zmq_getsockopt(nd->sock, ZMQ_LAST_ENDPOINT, nd->endpoint, &len), 0);
    }
}

static void fake_go(void)
{
    cr_assert_eq(pthread_create(&fake.thread, NULL, fake_run, NULL), 0);
}

static void fake_end(void)
{
    atomic_store(&fake.stop, true);
    pthread_join(fake.thread, NULL);
    for (int k = 0; k < fake.n; k++)
        zmq_close(fake.node[k].sock);
    zmq_ctx_term(fake.zctx);
    pthread_mutex_destroy(&fake.mu);
}

/* Node k follows, naming node `leader` (-1: hint is the text to name). */
static void follower(int k, int leader, const char *hint)
{
    pthread_mutex_lock(&fake.mu);
    fake.node[k].mode = NODE_FOLLOWER;
    snprintf(fake.node[k].hint, sizeof fake.node[k].hint, "%s", leader >= 0 ? fake.node[leader].endpoint : hint);
    pthread_mutex_unlock(&fake.mu);
}

static void leads(int k)
{
    pthread_mutex_lock(&fake.mu);
    fake.node[k].mode = NODE_LEADER;
    pthread_mutex_unlock(&fake.mu);
}

/* A copy of node k's record, taken under the lock. */
static node_t seen(int k)
{
    pthread_mutex_lock(&fake.mu);
    node_t nd = fake.node[k];
    pthread_mutex_unlock(&fake.mu);
    return nd;
}

/* "a,b,c" of the nodes named by indexes (-1 ends). */
static const char *list_of(int a, int b, int c)
{
    static char text[256];
    int ix[3] = {a, b, c};
    text[0] = '\0';
    for (int i = 0; i < 3 && ix[i] >= 0; i++) {
        if (i)
            strcat(text, ",");
        strcat(text, fake.node[ix[i]].endpoint);
    }
    return text;
}

static hx_client_t *open_client(const char *endpoints, int timeout_ms, int attempts)
{
    char err[512] = "";
    hx_client_opts_t o = {.endpoint = endpoints, .clinic = "lakeside", .timeout_ms = timeout_ms,
                          .attempts = attempts};
    hx_client_t *c = NULL;
    int rc = hx_client_open(&o, &c, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", endpoints, err);
    return c;
}

/* A message to service intake under a new id, also put in id. */
static hx_msg_t message(uint8_t id[HX_ID_LEN])
{
    hx_msg_t m = {.to_kind = HX_TO_SERVICE, .to = "intake", .type = "handoff.Referral",
                  .payload = (const uint8_t *)"x", .payload_len = 1};
    hx_id_random(m.id);
    memcpy(id, m.id, HX_ID_LEN);
    return m;
}

static int submit_one(hx_client_t *c, uint8_t id[HX_ID_LEN])
{
    hx_msg_t m = message(id);
    return hx_client_submit(c, &m, 1);
}

static bool has_id(const uint8_t (*ids)[HX_ID_LEN], size_t n, const uint8_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(ids[i], id, HX_ID_LEN) == 0)
            return true;
    return false;
}

TestSuite(failover, .timeout = 60);

Test(failover, a_follower_sends_the_client_to_the_leader_it_names)
{
    fake_new(2);
    follower(0, 1, NULL);
    fake_go();
    hx_client_t *c = open_client(list_of(0, 1, -1), 3000, 3);
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[1].endpoint);
    uint8_t id[HX_ID_LEN];
    cr_assert_eq(submit_one(c, id), 0, "%s", hx_client_error(c));
    node_t f = seen(0), l = seen(1);
    cr_expect_eq(f.frames, 1, "the follower got the first HELLO only");
    cr_expect_eq(l.hellos, 1);
    cr_assert_eq(l.n_msg, 1);
    cr_expect_eq(memcmp(l.msg[0], id, HX_ID_LEN), 0, "the leader got the message's id");
    hx_client_destroy(&c);
    fake_end();
}

Test(failover, a_hint_to_a_node_of_the_list_is_followed_before_the_next)
{
    fake_new(3);
    follower(0, 2, NULL);
    follower(1, 2, NULL);
    fake_go();
    int64_t t0 = now_ms();
    hx_client_t *c = open_client(list_of(0, 1, 2), 3000, 3);
    cr_expect_lt(now_ms() - t0, 1000, "no timeout, no pause");
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[2].endpoint);
    cr_expect_eq(seen(1).frames, 0, "the node between was skipped");
    hx_client_destroy(&c);
    fake_end();
}

Test(failover, a_hint_outside_the_list_is_ignored_for_the_next_node)
{
    fake_new(3);
    follower(0, -1, "tcp://127.0.0.1:1");
    follower(1, 2, NULL);
    fake_go();
    int64_t t0 = now_ms();
    hx_client_t *c = open_client(list_of(0, 1, 2), 3000, 3);
    cr_expect_lt(now_ms() - t0, 1000, "no time spent on the foreign endpoint");
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[2].endpoint);
    cr_expect_eq(seen(1).hellos, 1, "the next node of the list was asked");
    uint8_t id[HX_ID_LEN];
    cr_expect_eq(submit_one(c, id), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    fake_end();
}

Test(failover, an_election_is_waited_out_then_the_leader_is_used)
{
    fake_new(2);
    follower(0, 1, NULL);
    fake.election_ends = now_ms() + 400;
    fake_go();
    int64_t t0 = now_ms();
    hx_client_t *c = open_client(list_of(0, 1, -1), 3000, 3);
    cr_expect_geq(now_ms() - t0, 350, "the client got its session only after the election");
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[1].endpoint);
    int asked = seen(0).not_leader + seen(1).not_leader;
    cr_expect_leq(asked, 10, "about one HELLO per 100 ms while no leader is known, not a busy loop: %d", asked);
    cr_expect_geq(asked, 3, "%d", asked);
    uint8_t id[HX_ID_LEN];
    cr_expect_eq(submit_one(c, id), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    fake_end();
}

Test(failover, no_leader_at_all_ends_within_the_attempts)
{
    fake_new(2);
    fake.election_ends = now_ms() + 3600000;
    fake_go();
    char err[512] = "";
    hx_client_opts_t o = {.endpoint = list_of(0, 1, -1), .clinic = "lakeside", .timeout_ms = 300, .attempts = 2};
    hx_client_t *c = NULL;
    int64_t t0 = now_ms();
    cr_expect_eq(hx_client_open(&o, &c, err, sizeof err), HX_ETIMEDOUT);
    int64_t took = now_ms() - t0;
    cr_expect_null(c);
    cr_expect_geq(took, 500, "%lld ms", (long long)took);
    cr_expect_lt(took, 2000, "%lld ms", (long long)took);
    cr_expect(strstr(err, "no leader found (2 attempts of 300 ms)"), "%s", err);
    cr_expect(strstr(err, "no leader is known yet"), "%s", err);
    int asked = seen(0).not_leader + seen(1).not_leader;
    cr_expect_leq(asked, 12, "%d", asked);
    fake_end();
}

Test(failover, a_silent_node_is_passed_over_after_the_timeout)
{
    fake_new(2);
    fake.node[0].mode = NODE_SILENT;
    fake_go();
    int64_t t0 = now_ms();
    hx_client_t *c = open_client(list_of(0, 1, -1), 300, 3);
    cr_expect_geq(now_ms() - t0, 290);
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[1].endpoint);
    uint8_t id[HX_ID_LEN];
    cr_expect_eq(submit_one(c, id), 0, "%s", hx_client_error(c));
    /* the leader goes silent too: the request moves on, and the other node leads by then */
    pthread_mutex_lock(&fake.mu);
    fake.node[1].mode = NODE_SILENT;
    fake.node[0].mode = NODE_LEADER;
    pthread_mutex_unlock(&fake.mu);
    cr_expect_eq(submit_one(c, id), 0, "%s", hx_client_error(c));
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[0].endpoint);
    node_t a = seen(0);
    cr_expect(has_id((const uint8_t (*)[HX_ID_LEN])a.msg, a.n_msg, id));
    hx_client_destroy(&c);
    fake_end();
}

Test(failover, a_leader_that_steps_down_gets_the_request_resent_with_the_same_ids)
{
    fake_new(2);
    follower(1, 0, NULL);
    fake_go();
    hx_client_t *c = open_client(list_of(0, 1, -1), 3000, 3);
    cr_assert_str_eq(hx_client_endpoint(c), fake.node[0].endpoint);
    follower(0, 1, NULL);                       /* node 1 is elected */
    leads(1);
    uint8_t id[HX_ID_LEN];
    cr_assert_eq(submit_one(c, id), 0, "%s", hx_client_error(c));
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[1].endpoint);
    node_t old = seen(0), now = seen(1);
    cr_assert_eq(old.n_req, 1);
    cr_assert_eq(now.n_req, 1);
    cr_expect_eq(memcmp(old.req[0], now.req[0], HX_ID_LEN), 0, "the same request id");
    cr_expect_eq(memcmp(old.msg[0], id, HX_ID_LEN), 0);
    cr_expect_eq(memcmp(now.msg[0], id, HX_ID_LEN), 0, "the same message id");
    cr_expect_eq(now.hellos, 1);
    hx_client_destroy(&c);
    fake_end();
}

Test(failover, submit_many_resends_its_window_to_the_new_leader)
{
    fake_new(2);
    follower(1, 0, NULL);
    fake_go();
    hx_client_t *c = open_client(list_of(0, 1, -1), 3000, 3);
    follower(0, 1, NULL);
    leads(1);
    enum { N = 20 };
    hx_msg_t msgs[N];
    uint8_t ids[N][HX_ID_LEN];
    for (int i = 0; i < N; i++)
        msgs[i] = message(ids[i]);
    size_t failed = 99;
    cr_assert_eq(hx_client_submit_many(c, msgs, N, 8, &failed), 0, "%s", hx_client_error(c));
    node_t now = seen(1);
    for (int i = 0; i < N; i++)
        cr_expect(has_id((const uint8_t (*)[HX_ID_LEN])now.msg, now.n_msg, ids[i]), "message %d", i);
    cr_expect_eq(now.hellos, 1);
    hx_client_destroy(&c);
    fake_end();
}

Test(failover, one_endpoint_is_used_as_before)
{
    fake_new(1);
    fake_go();
    hx_client_t *c = open_client(fake.node[0].endpoint, 3000, 3);
    cr_expect_str_eq(hx_client_endpoint(c), fake.node[0].endpoint);
    uint8_t id[HX_ID_LEN];
    cr_expect_eq(submit_one(c, id), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    fake_end();
    char err[512] = "";
    hx_client_opts_t o = {.endpoint = "udp://nowhere", .clinic = "lakeside"};
    hx_client_t *bad = NULL;
    cr_expect_eq(hx_client_open(&o, &bad, err, sizeof err), HX_EINVAL);
    cr_expect(strstr(err, "broker endpoint 'udp://nowhere': "), "libzmq's refusal, as before: %s", err);
}

Test(failover, a_bad_list_is_refused_naming_the_element)
{
    static const struct {
        const char *list, *want;
    } cases[] = {
        {"tcp://127.0.0.1:5601,,tcp://127.0.0.1:5603", "endpoint 2 of 3 is empty"},
        {"tcp://127.0.0.1:5601,", "endpoint 2 of 2 is empty"},
        {"tcp://127.0.0.1:5601,udp://x:1", "endpoint 2 of 2: must be a ZeroMQ endpoint such as tcp://HOST:PORT, got "
                                           "'udp://x:1'"},
        {"tcp://127.0.0.1,tcp://127.0.0.1:5602", "endpoint 1 of 2: must be a ZeroMQ endpoint tcp://HOST:PORT"},
        {"tcp://a:1, tcp://b:2",
         "endpoint 2 of 2: must be a ZeroMQ endpoint such as tcp://HOST:PORT, got ' tcp://b:2'"},
        {"tcp://a:1,tcp://a:2,tcp://a:3,tcp://a:4,tcp://a:5,tcp://a:6,tcp://a:7,tcp://a:8",
         "at most 7 endpoints (the nodes of a replicated broker), got 8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "";
        hx_client_opts_t o = {.endpoint = cases[i].list, .clinic = "lakeside"};
        hx_client_t *c = NULL;
        cr_expect_eq(hx_client_open(&o, &c, err, sizeof err), HX_EINVAL, "%s", cases[i].list);
        cr_expect(strstr(err, cases[i].want), "%s: %s", cases[i].list, err);
        hx_worker_opts_t wo = {.endpoint = cases[i].list, .service = "intake"};
        err[0] = '\0';
        hx_worker_t *w = hx_worker_new(&wo, err, sizeof err);
        cr_expect_null(w, "%s", cases[i].list);
        cr_expect(strstr(err, cases[i].want), "%s: %s", cases[i].list, err);
        hx_worker_destroy(&w);
    }
    cr_expect_str_eq(hx_wire_error_text(HANDOFF__ERROR_CODE__ERR_NOT_LEADER), "not-leader");
    char err[512];
    cr_expect_eq(hx_endpoints_split("tcp://a:1,ipc:///run/b.sock,tcp://[::1]:3", NULL, err, sizeof err), 3);
    cr_expect_eq(hx_endpoints_split("tcp://a:1", NULL, err, sizeof err), 1);
}

/* ---- the worker ---------------------------------------------------------------------------- */

typedef struct {
    hx_worker_t *w;
    atomic_bool stop, post;
    uint8_t post_id[HX_ID_LEN];
    pthread_t thread;
    int rc;
} worker_run_t;

static int handler(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    (void)arg, (void)in, (void)out, (void)err, (void)errcap;
    return 0;
}

/* On the worker's loop: stops it, or posts once, when the test asks. */
static void on_tick(hx_worker_t *w, void *arg)
{
    worker_run_t *r = arg;
    if (atomic_exchange(&r->post, false))
        cr_expect_eq(hx_worker_post(w, r->post_id, HX_TO_SERVICE, "intake", "handoff.Referral", "x", 1), 0);
    if (atomic_load(&r->stop))
        hx_worker_stop(w);
}

static void *worker_main(void *arg)
{
    worker_run_t *r = arg;
    r->rc = hx_worker_run(r->w, handler, NULL);
    return NULL;
}

static void worker_start(worker_run_t *r, const char *endpoints)
{
    char err[512] = "";
    hx_worker_opts_t wo = {.endpoint = endpoints, .service = "intake", .heartbeat_ms = 50};
    r->w = hx_worker_new(&wo, err, sizeof err);
    cr_assert_not_null(r->w, "%s", err);
    hx_worker_every(r->w, 10, on_tick, r);
    cr_assert_eq(pthread_create(&r->thread, NULL, worker_main, r), 0);
}

static void worker_end(worker_run_t *r)
{
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    cr_expect_eq(r->rc, 0);
    hx_worker_destroy(&r->w);
}

/* Waits (up to 5 s) until node k has welcomed `want` worker sessions. */
static bool worker_sessions_reach(int k, int want)
{
    for (int64_t end = now_ms() + 5000; now_ms() < end;) {
        if (seen(k).worker_welcomes >= want)
            return true;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

Test(failover, a_worker_ends_up_with_a_session_on_the_leader)
{
    fake_new(2);
    follower(0, 1, NULL);
    fake_go();
    static worker_run_t r;
    worker_start(&r, list_of(0, 1, -1));
    cr_expect(worker_sessions_reach(1, 1), "the leader welcomed the worker");
    cr_expect_eq(seen(0).worker_hellos, 1, "the follower got the first HELLO, as a worker's");
    worker_end(&r);
    fake_end();
}

Test(failover, a_worker_follows_a_new_leader_and_posts_there)
{
    fake_new(2);
    fake.heartbeat_ms = 100;
    follower(1, 0, NULL);
    fake_go();
    static worker_run_t r;
    worker_start(&r, list_of(0, 1, -1));
    cr_assert(worker_sessions_reach(0, 1));
    cr_expect_eq(seen(1).frames, 0);
    follower(0, 1, NULL);                       /* node 1 is elected */
    leads(1);
    hx_id_random(r.post_id);
    atomic_store(&r.post, true);
    cr_expect(worker_sessions_reach(1, 1), "the new leader welcomed the worker");
    bool posted = false;
    for (int64_t end = now_ms() + 5000; now_ms() < end && !posted;) {
        node_t l = seen(1);
        posted = has_id((const uint8_t (*)[HX_ID_LEN])l.msg, l.n_msg, r.post_id);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    cr_expect(posted, "the post reached the new leader");
    worker_end(&r);
    fake_end();
}

Test(failover, a_worker_passes_a_silent_node_over)
{
    fake_new(2);
    fake.node[0].mode = NODE_SILENT;
    fake_go();
    static worker_run_t r;
    worker_start(&r, list_of(0, 1, -1));        /* silence: 3 heartbeats of 50 ms */
    cr_expect(worker_sessions_reach(1, 1), "the next node welcomed the worker");
    cr_expect_geq(seen(0).worker_hellos, 1, "the silent node was asked first");
    worker_end(&r);
    fake_end();
}

Test(failover, a_worker_waits_out_an_election)
{
    fake_new(2);
    follower(0, 1, NULL);
    fake.election_ends = now_ms() + 400;
    fake_go();
    static worker_run_t r;
    worker_start(&r, list_of(0, 1, -1));
    cr_expect(worker_sessions_reach(1, 1), "the leader welcomed the worker");
    int asked = seen(0).hellos_refused + seen(1).hellos_refused;
    cr_expect_leq(asked, 10, "about one HELLO per 100 ms while no leader is known: %d", asked);
    cr_expect_geq(asked, 3, "%d", asked);
    worker_end(&r);
    fake_end();
}
