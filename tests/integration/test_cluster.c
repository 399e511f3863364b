/* Integration: the replicated broker (handoff-broker --cluster, on Raft), three nodes on
 * 127.0.0.1 with ports the test chooses, each with its own data directory.
 *   one_leader_serves_and_the_others_name_it
 *                         one node serves; a HELLO to another is answered ERR_NOT_LEADER
 *                         naming the leader's endpoint; a client given the three endpoints
 *                         submits and fetches through whichever leads
 *   failover_cycles       HX_CLUSTER_CYCLES (default 20) cycles under load (the crash loop's,
 *                         load.c, over the endpoint list; two echo workers on it too), each
 *                         one of: kill -9 the leader (and start it again); SIGSTOP the leader
 *                         past its lease, then SIGCONT (it must not serve any more: another
 *                         leads); kill -9 a follower (and start it again); a follower started
 *                         again on an emptied data directory (it catches up from the others).
 *                         After each, a new leader within 5 s of losing the old one. At the
 *                         end: every acknowledged message delivered, none under two ids.
 *   a_cut_off_leader_stops_acknowledging
 *                         through a relay the test controls between the nodes: with the
 *                         leader's traffic to one follower dropped it goes on committing with
 *                         the other, its term unchanged; cut off from both, it acknowledges
 *                         nothing more, the other two elect a leader within 5 s and serve, and
 *                         once the cut heals it follows that leader; what was acknowledged
 *                         arrives once, what it could not commit never
 *   the_pipeline_goes_on_through_a_leader_change
 *                         a referral submitted, the leader killed at once: the services carry
 *                         it on through the new leader and the clinic has one handoff of it
 *   a_committed_state_survives_a_full_restart
 *                         messages held, dead letters and settled ids are the same after all
 *                         three nodes stop and start again (snapshots included)
 *   an_idle_cluster_does_not_snapshot_an_unchanged_state_again
 *                         the leader's lease barriers alone (no message) take no node past a
 *                         snapshot threshold into another snapshot; a changed state does
 *   a_growing_queue_is_not_snapshotted_at_every_threshold
 *                         400 messages held, one entry each, past 25 thresholds of 16: each
 *                         node takes 1 to 8 snapshots (one as the queue about doubles), and a
 *                         follower restarted comes back holding all (400 and one more)
 *   a_stranger_cannot_speak_raft
 *                         with a key the nodes share: a connection to a Raft port that does
 *                         not answer the node's challenge with that key is closed and counted;
 *                         a node started with another key is kept out (the two others serve
 *                         on), and with the right key it catches up
 *   a_single_brokers_log_is_not_left_behind
 *                         a node refuses a data directory holding a single broker's log
 *   nodes_are_added_and_removed_and_the_leadership_moved
 *                         `handoff cluster add --wait`, `transfer`, `remove`; the newcomer
 *                         leading is killed: another leads within 5 s, nothing is lost
 *   a_lost_cluster_comes_back_from_one_nodes_copy
 *                         every node lost but a stopped node's copy: --recover-cluster makes
 *                         it a cluster of one, the others join; what the copy held, once
 *   every_node_rekeyed_serves_the_same_messages_with_the_new_key
 *                         --rekey on each stopped node (a snapshot and entries after it):
 *                         refused on a running node, with a wrong key or none; a rekey cut
 *                         short (copy half made; copy made, not in place) stops the node from
 *                         starting and is finished by running it again; started on the new
 *                         key, the nodes serve every body as sent, once; the old key opens
 *                         nothing
 *   the_audit_logs_head_is_kept_by_every_node
 *                         with --audit, the leader's audit head is recorded in the replicated
 *                         log; a node whose audit log lost its end and whose data directory
 *                         was lost too learns the head back from the others, refuses to serve
 *                         when made the leader (exit 1), and another leads
 *
 * The leader is read from each node's /metrics (handoff_broker_raft_serving). Every wait is on
 * a condition with a deadline; the 5 s bound on a new leader is the issue's, measured from the
 * moment the leader was killed or stopped to the moment another serves. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "envelope.pb-c.h"
#include "harness.h"
#include "hx_client.h"
#include "hx_spawn.h"
#include <jansson.h>
#include "load.h"

#define NODES 3
#define LEADER_BOUND_MS 5000

static net_t net;
static const char *snapshot_entries;    /* --raft-snapshot-entries of the nodes started */
static const char *raft_heartbeat;      /* their --raft-heartbeat-ms */
static char data_key[700];              /* the nodes' --data-key, or "" */

typedef struct {
    int port, raft, http;
    char dir[512], ready[512], name[16], endpoint[64];
    pid_t pid;
    bool stopped;               /* SIGSTOPped */
} node_t;

static node_t nodes[NODES + 1];        /* nodes[NODES]: a newcomer (the membership test) */
static int n_nodes = NODES;             /* the nodes the leader is looked for among */
static char spec[1024], endpoints[512], spec_join[1400], endpoints_all[600];
static bool relayed;            /* the nodes reach each other through the test's relay */
static bool network_policy;     /* the built-in routing policy (else policy-any.json: made-up types) */
static const char *client_list; /* the endpoints clients are given (NULL: the three) */
static bool joining[NODES + 1]; /* started with --join (the newcomer always is) */
static bool audited;            /* each node keeps an audit log, net.dir/audit-nN.jsonl */


/* --cluster: node i's Raft address 127.0.0.1:RAFT, or (relayed) 127.0.1.(i+1):RAFT, where the
 * relay listens and forwards to the node, which listens on 127.0.0.1:RAFT (--raft-bind). */
static void make_spec(void)
{
    size_t k = 0;
    for (int i = 0; i < NODES; i++)
        k += (size_t)snprintf(spec + k, sizeof spec - k, "%s%d=127.0.%d.%d:%d=%s", i ? "," : "", i + 1,
                              relayed ? 1 : 0, relayed ? i + 1 : 1, nodes[i].raft, nodes[i].endpoint);
}

static void setup(void)
{
    net_init(&net);
    size_t e = 0;
    for (int i = 0; i <= NODES; i++) {
        node_t *n = &nodes[i];
        memset(n, 0, sizeof *n);
        n->port = net_free_port();
        n->raft = net_free_port();
        n->http = net_free_port();
        snprintf(n->dir, sizeof n->dir, "%s/n%d", net.dir, i + 1);
        snprintf(n->ready, sizeof n->ready, "%s/n%d.ready", net.dir, i + 1);
        snprintf(n->name, sizeof n->name, "broker-%d", i + 1);
        snprintf(n->endpoint, sizeof n->endpoint, "tcp://127.0.0.1:%d", n->port);
        if (i < NODES)
            e += (size_t)snprintf(endpoints + e, sizeof endpoints - e, "%s%s", i ? "," : "", n->endpoint);
    }
    snprintf(endpoints_all, sizeof endpoints_all, "%s,%s", endpoints, nodes[NODES].endpoint);
    relayed = false;
    network_policy = false;
    snapshot_entries = "256";
    raft_heartbeat = "100";
    data_key[0] = '\0';
    n_nodes = NODES;
    client_list = NULL;
    memset(joining, 0, sizeof joining);
    audited = false;
    make_spec();
    snprintf(spec_join, sizeof spec_join, "%s,%d=127.0.0.1:%d=%s", spec, NODES + 1, nodes[NODES].raft,
             nodes[NODES].endpoint);
}

static void teardown(void)
{
    for (int i = 0; i <= NODES; i++)
        if (nodes[i].pid && nodes[i].stopped)
            kill(nodes[i].pid, SIGCONT);
    int bad = net_stop_all(&net);
    net_fini_verdict(bad, net.dir);
}

TestSuite(cluster, .init = setup, .fini = teardown, .timeout = 900);

static bool file_there(void *arg)
{
    return access(arg, F_OK) == 0;
}

/* Starts node i (0-based) with its fixed ports and directory; waits until it listens. */
static void start_node(int i)
{
    node_t *n = &nodes[i];
    char id[16], http[32], bind[32];
    snprintf(id, sizeof id, "%d", i + 1);
    snprintf(http, sizeof http, "127.0.0.1:%d", n->http);
    snprintf(bind, sizeof bind, "127.0.0.1:%d", n->raft);
    unlink(n->ready);
    const char *argv[48] = {net_bin("broker/handoff-broker"), "--bind", n->endpoint, "--plain-tcp-for-tests",
                            "--ready-file", n->ready, "--data", n->dir, "--cluster", i < NODES ? spec : spec_join,
                            "--node-id", id, "--http",
                            http, "--heartbeat-ms", "200", "--max-attempts", "1000", "--backoff-ms", "10",
                            "--backoff-max-ms", "100", "--raft-election-ms", "1000", "--raft-heartbeat-ms",
                            raft_heartbeat,
                            "--raft-snapshot-entries", snapshot_entries};
    size_t k = 28;
    if (!network_policy) {
        argv[k++] = "--policy";
        argv[k++] = net_src("tests/integration/policy-any.json");
    }
    if (relayed) {
        argv[k++] = "--raft-bind";
        argv[k++] = bind;
    }
    if (data_key[0]) {
        argv[k++] = "--data-key";
        argv[k++] = data_key;
    }
    char audit[600];
    if (audited) {
        snprintf(audit, sizeof audit, "%s/audit-n%d.jsonl", net.dir, i + 1);
        argv[k++] = "--audit";
        argv[k++] = audit;
    }
    if (i == NODES || joining[i])
        argv[k++] = "--join";           /* the newcomer waits to be added */
    argv[k] = NULL;
    n->pid = net_spawn(&net, n->name, argv);
    n->stopped = false;
    cr_assert(net_wait(file_there, n->ready, 20000), "%s did not start (see %s/%s.log)", n->name, net.dir, n->name);
}

/* GET path from 127.0.0.1:port into out (the body, NUL-terminated); false when nothing
 * answered within 500 ms (a stopped or dead node). */
static bool http_get(int port, const char *path, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct timeval tv = {0, 500000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[128];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    size_t n = 0;
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && send(fd, req, (size_t)rl, MSG_NOSIGNAL) == rl;
    while (ok && n + 1 < cap) {
        ssize_t got = recv(fd, out + n, cap - 1 - n, 0);
        if (got <= 0) {
            ok = got == 0;
            break;
        }
        n += (size_t)got;
    }
    close(fd);
    out[n] = '\0';
    return ok && n > 0;
}

/* A gauge of node i's /metrics, or -1 when the node does not answer. */
static long metric(int i, const char *name)
{
    static char body[1 << 16];
    if (!nodes[i].pid || nodes[i].stopped || !http_get(nodes[i].http, "/metrics", body, sizeof body))
        return -1;
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(body, want);
    return at ? strtol(at + strlen(want), NULL, 10) : -1;
}

/* The node that serves now (0-based), or -1. */
static int serving(void)
{
    for (int i = 0; i < n_nodes; i++)
        if (metric(i, "handoff_broker_raft_serving") == 1)
            return i;
    return -1;
}

typedef struct {
    int not;                    /* a node that must not be the one (-1: any) */
    int found;
} leader_wait_t;

static bool leader_cond(void *arg)
{
    leader_wait_t *w = arg;
    w->found = serving();
    return w->found >= 0 && w->found != w->not;
}

typedef struct {
    int node;
    long at_least;
    const char *name;
    bool exactly;               /* the gauge equal to at_least, not only at or past it */
} metric_wait_t;

static bool metric_reaches(void *arg)
{
    metric_wait_t *w = arg;
    long v = metric(w->node, w->name);
    return w->exactly ? v == w->at_least : v >= w->at_least;
}

/* Waits up to ms for a serving leader other than `not`; its index. */
static int wait_leader(int not, int ms)
{
    leader_wait_t w = {not, -1};
    cr_assert(net_wait(leader_cond, &w, ms), "no node serves within %d ms (logs in %s)", ms, net.dir);
    return w.found;
}


/* ---- the relay between the nodes ---------------------------------------------------------
 * Node i's Raft address is 127.0.1.(i+1):RAFT (make_spec, relayed): a listener here accepts
 * there, reads the connecting node's id from Raft's handshake (a u64 protocol version, then a
 * u64 server id), connects on to the node at 127.0.0.1:RAFT and copies both ways. cut[a][b]
 * drops what node a sends to node b: a connection from a to b is closed when it is set, and
 * new ones closed at once (Raft connects again every second). */

static atomic_int cut[NODES][NODES];
static atomic_int live[NODES][NODES];   /* connections from a to b being copied now */
static atomic_bool relay_stop;
static atomic_int relay_threads;
static pthread_t relay_listeners[NODES];
static int relay_fds[NODES];

typedef struct {
    int from_fd, target;
} conn_arg_t;

static void *relay_conn(void *arg)
{
    conn_arg_t *a = arg;
    int in = a->from_fd, target = a->target, out = -1;
    free(a);
    uint8_t head[16];
    size_t got = 0;
    struct pollfd p = {in, POLLIN, 0};
    while (got < sizeof head && !atomic_load(&relay_stop) && poll(&p, 1, 100) >= 0) {
        if (!(p.revents & (POLLIN | POLLHUP)))
            continue;
        ssize_t n = recv(in, head + got, sizeof head - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    uint64_t src = 0;
    for (int i = 0; i < 8; i++)
        src |= (uint64_t)head[8 + i] << (8 * i);
    int from = src >= 1 && src <= NODES ? (int)src - 1 : -1;
    if (got == sizeof head && from >= 0 && !atomic_load(&cut[from][target])) {
        out = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)nodes[target].raft),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (out < 0 || connect(out, (struct sockaddr *)&to, sizeof to) != 0 ||
            send(out, head, sizeof head, MSG_NOSIGNAL) != (ssize_t)sizeof head) {
            if (out >= 0)
                close(out);
            out = -1;
        }
    }
    uint8_t buf[65536];
    if (out >= 0)
        atomic_fetch_add(&live[from][target], 1);
    while (out >= 0 && !atomic_load(&relay_stop) && !atomic_load(&cut[from][target])) {
        struct pollfd ps[2] = {{in, POLLIN, 0}, {out, POLLIN, 0}};
        if (poll(ps, 2, 50) < 0)
            break;
        bool done = false;
        for (int k = 0; k < 2 && !done; k++) {
            if (!(ps[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(ps[k].fd, buf, sizeof buf, 0);
            done = n <= 0 || send(ps[1 - k].fd, buf, (size_t)n, MSG_NOSIGNAL) != n;
        }
        if (done)
            break;
    }
    if (out >= 0) {
        close(out);
        atomic_fetch_sub(&live[from][target], 1);
    }
    close(in);
    atomic_fetch_sub(&relay_threads, 1);
    return NULL;
}

static void *relay_listen(void *arg)
{
    int target = (int)(intptr_t)arg, fd = relay_fds[target];
    struct pollfd p = {fd, POLLIN, 0};
    while (!atomic_load(&relay_stop)) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            continue;
        conn_arg_t *a = malloc(sizeof *a);
        a->from_fd = c;
        a->target = target;
        pthread_t t;
        atomic_fetch_add(&relay_threads, 1);
        if (pthread_create(&t, NULL, relay_conn, a) == 0) {
            pthread_detach(t);
        } else {
            atomic_fetch_sub(&relay_threads, 1);
            close(c);
            free(a);
        }
    }
    close(fd);
    return NULL;
}

static void relay_start(void)
{
    atomic_store(&relay_stop, false);
    for (int i = 0; i < NODES; i++) {
        for (int j = 0; j < NODES; j++) {
            atomic_store(&cut[i][j], 0);
            atomic_store(&live[i][j], 0);
        }
        relay_fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(relay_fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        char host[32];
        snprintf(host, sizeof host, "127.0.1.%d", i + 1);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)nodes[i].raft)};
        inet_pton(AF_INET, host, &a.sin_addr);
        cr_assert_eq(bind(relay_fds[i], (struct sockaddr *)&a, sizeof a), 0, "relay on %s:%d", host, nodes[i].raft);
        cr_assert_eq(listen(relay_fds[i], 16), 0);
        cr_assert_eq(pthread_create(&relay_listeners[i], NULL, relay_listen, (void *)(intptr_t)i), 0);
    }
}

static bool relay_idle(void *arg)
{
    (void)arg;
    return atomic_load(&relay_threads) == 0;
}

static void relay_end(void)
{
    atomic_store(&relay_stop, true);
    for (int i = 0; i < NODES; i++)
        pthread_join(relay_listeners[i], NULL);
    cr_expect(net_wait(relay_idle, NULL, 5000), "the relay's connections did not end");
}

static int isolated = -1;

static bool cut_through(void *arg)
{
    (void)arg;
    for (int b = 0; b < NODES; b++)
        if (atomic_load(&live[isolated][b]) || atomic_load(&live[b][isolated]))
            return false;
    return true;
}

/* Node a cut off from every other node, both ways, once no connection of it is copied any
 * more (or joined again: on false). */
static void isolate(int a, bool on)
{
    for (int b = 0; b < NODES; b++)
        if (b != a) {
            atomic_store(&cut[a][b], on);
            atomic_store(&cut[b][a], on);
        }
    isolated = a;
    if (on)
        cr_assert(net_wait(cut_through, NULL, 5000), "node %d's connections were not cut", a + 1);
}

static void start_all(void)
{
    for (int i = 0; i < NODES; i++)
        start_node(i);
}

static void write_data_key(const char *path, int digit)
{
    FILE *kf = fopen(path, "w");
    cr_assert_not_null(kf);
    fprintf(kf, "%064d\n", digit);
    fclose(kf);
    chmod(path, 0600);
}

/* hx-test-worker echoing the service "echo" to the mailbox "sink", over the endpoint list. */
static pid_t start_echo(const char *name)
{
    const char *argv[] = {net_bin("tests/hx-test-worker"), "--broker", endpoints, "--mode", "echo", "--service",
                          "echo", "--to", "sink", "--credit", "16", NULL};
    return net_spawn(&net, name, argv);
}

/* One frame to endpoint over a fresh DEALER; the reply unpacked (NULL when none in 3 s). */
static Handoff__Envelope *ask(const char *endpoint, const Handoff__Envelope *req)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, wait = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &wait, sizeof wait);
    cr_assert_eq(zmq_connect(s, endpoint), 0);
    size_t len = handoff__envelope__get_packed_size(req);
    uint8_t *buf = malloc(len);
    handoff__envelope__pack(req, buf);
    cr_assert_eq(zmq_send(s, buf, len, 0), (int)len);
    free(buf);
    uint8_t reply[65536];
    int got = zmq_recv(s, reply, sizeof reply, 0);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return got > 0 ? handoff__envelope__unpack(NULL, (size_t)got, reply) : NULL;
}

/* A clinic's HELLO (lakeside) with a fresh request id, written into id. */
static Handoff__Envelope clinic_hello(uint8_t id[HX_ID_LEN])
{
    Handoff__Envelope hello = HANDOFF__ENVELOPE__INIT;
    hx_id_random(id);
    hello.version = 1;
    hello.kind = HANDOFF__KIND__KIND_HELLO;
    hello.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    hello.role = HANDOFF__ROLE__ROLE_CLINIC;
    hello.name = "lakeside";
    return hello;
}

static hx_msg_t message(const char *to, const char *payload)
{
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_MAILBOX;
    m.to = to;
    m.type = "test.n";
    m.payload = (const uint8_t *)payload;
    m.payload_len = strlen(payload);
    return m;
}

static hx_client_t *session(const char *name)
{
    char err[256];
    hx_client_opts_t o = {.endpoint = client_list ? client_list : endpoints, .clinic = name, .timeout_ms = 2000,
                          .attempts = 5};
    hx_client_t *c = hx_client_connect(&o, err, sizeof err);
    cr_assert_not_null(c, "%s (logs in %s)", err, net.dir);
    return c;
}

/* Fetches mailbox box until `want` distinct messages arrived (acking each); fails on a
 * message seen twice. */
static void fetch_all(const char *box, size_t want)
{
    hx_client_t *c = session(box);
    uint8_t (*seen)[HX_ID_LEN] = calloc(want + 1, HX_ID_LEN);
    size_t n = 0;
    int64_t until = net_mono_ms() + 30000;
    while (n < want && net_mono_ms() < until) {
        hx_batch_t *b = NULL;
        int rc = hx_client_fetch(c, 100, &b);
        cr_assert_eq(rc, 0, "fetch %s: %s", box, hx_client_error(c));
        for (size_t i = 0; i < b->count; i++) {
            for (size_t j = 0; j < n; j++)
                cr_assert(memcmp(seen[j], b->msgs[i].id, HX_ID_LEN), "a message of %s came twice", box);
            cr_assert_lt(n, want, "more messages in %s than were sent", box);
            memcpy(seen[n++], b->msgs[i].id, HX_ID_LEN);
            cr_assert_eq(hx_client_ack(c, (const uint8_t (*)[HX_ID_LEN])&b->msgs[i].id, 1), 0);
        }
        if (!b->count)
            net_nap_ms(20);                 /* polling an empty mailbox */
        hx_batch_destroy(&b);
    }
    cr_expect_eq(n, want, "%zu of %zu messages of %s arrived", n, want, box);
    free(seen);
    hx_client_destroy(&c);
}

/* Mailbox box holds nothing now (one fetch); why names what would have come back. */
static void expect_empty(const char *box, const char *why)
{
    hx_client_t *o = session(box);
    hx_batch_t *b = NULL;
    cr_assert_eq(hx_client_fetch(o, 100, &b), 0, "fetch %s: %s", box, hx_client_error(o));
    cr_expect_eq(b->count, 0, "%zu message(s) in %s: %s", b->count, box, why);
    hx_batch_destroy(&b);
    hx_client_destroy(&o);
}

static bool none_held(void *arg)
{
    (void)arg;
    for (int i = 0; i < n_nodes; i++)
        if (metric(i, "handoff_broker_raft_held_messages") != 0)
            return false;
    return true;
}

/* Calls each(path, name, arg) on every file of node i's Raft directory whose name begins with
 * prefix; false when there is no such directory. */
static bool raft_files(int i, const char *prefix, void (*each)(const char *path, const char *name, void *arg),
                       void *arg)
{
    char raft[600];
    snprintf(raft, sizeof raft, "%s/raft", nodes[i].dir);
    DIR *d = opendir(raft);
    if (!d)
        return false;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[900];
        snprintf(path, sizeof path, "%s/%s", raft, e->d_name);
        each(path, e->d_name, arg);
    }
    closedir(d);
    return true;
}

typedef struct {
    int files, other;           /* the files seen; those not as wanted */
} file_count_t;

static void count_default_segment(const char *path, const char *name, void *arg)
{
    (void)name;
    file_count_t *n = arg;
    struct stat st;
    if (stat(path, &st) != 0)
        return;                 /* (closed meanwhile) */
    n->files++;
    n->other += st.st_size != (off_t)64 << 20;
}

/* Whether every node writes its Raft log into segment files of --raft-segment-mb's default
 * (64 MiB, allocated whole when made: libraft's own is 8): each node has one open, and every
 * open one it has is of that size. */
static bool segments_of_the_default_size(void *arg)
{
    (void)arg;
    for (int i = 0; i < NODES; i++) {
        file_count_t n = {0};
        if (!raft_files(i, "open-", count_default_segment, &n) || !n.files || n.other)
            return false;
    }
    return true;
}

Test(cluster, one_leader_serves_and_the_others_name_it)
{
    unsetenv("HANDOFF_RAFT_SEGMENT_MB");        /* the nodes on the default (checked below) */
    start_all();
    int leader = wait_leader(-1, 20000);
    int follower = (leader + 1) % NODES;
    /* a follower answers a HELLO with ERR_NOT_LEADER and the leader's client endpoint */
    uint8_t id[HX_ID_LEN];
    Handoff__Envelope hello = clinic_hello(id);
    Handoff__Envelope *r = ask(nodes[follower].endpoint, &hello);
    cr_assert_not_null(r, "the follower did not answer");
    cr_expect_eq(r->kind, HANDOFF__KIND__KIND_ERROR);
    cr_expect_eq(r->error_code, HANDOFF__ERROR_CODE__ERR_NOT_LEADER);
    cr_expect_str_eq(r->leader, nodes[leader].endpoint);
    cr_expect(r->correlation_id.len == HX_ID_LEN && !memcmp(r->correlation_id.data, id, HX_ID_LEN));
    handoff__envelope__free_unpacked(r, NULL);
    r = ask(nodes[leader].endpoint, &hello);
    cr_assert_not_null(r);
    cr_expect_eq(r->kind, HANDOFF__KIND__KIND_WELCOME, "the leader welcomes");
    handoff__envelope__free_unpacked(r, NULL);

    /* through the list: 50 messages in, each out once */
    hx_client_t *c = session("lakeside");
    char payloads[50][8];
    for (int i = 0; i < 50; i++) {
        snprintf(payloads[i], sizeof payloads[i], "%d", i);
        hx_msg_t m = message("box", payloads[i]);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    hx_client_destroy(&c);
    fetch_all("box", 50);
    /* every node holds the same: the acks were replicated too (a follower learns the commit
     * at the leader's next heartbeat) */
    cr_expect(net_wait(none_held, NULL, 10000), "a node still holds messages after every ack (logs in %s)", net.dir);
    cr_expect(net_wait(segments_of_the_default_size, NULL, 10000),
              "a node's open Raft segments are not of 64 MiB each (in %s)", net.dir);
}

/* Removes every file under dir (the node's data directory emptied). */
static void wipe(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(cluster, failover_cycles, .timeout = 1800)
{
    const char *env = getenv("HX_CLUSTER_CYCLES");
    int cycles = env && *env ? atoi(env) : 20;
    cr_assert_gt(cycles, 0);
    start_all();
    wait_leader(-1, 20000);
    start_echo("echo-1");
    start_echo("echo-2");
    load_t *L = load_start(endpoints);
    cr_assert_not_null(L);
    int64_t worst = 0, t0 = net_mono_ms();
    static const char *const kinds[] = {"kill -9 the leader", "SIGSTOP the leader", "kill -9 a follower",
                                        "a follower's disk emptied"};
    for (int cycle = 0; cycle < cycles; cycle++) {
        int kind = cycle % 4;
        net_nap_ms(300);                    /* let the load run between two faults */
        int leader = wait_leader(-1, 20000);
        int victim = kind < 2 ? leader : (leader + 1 + cycle / 4 % 2) % NODES;
        node_t *v = &nodes[victim];
        int64_t t = net_mono_ms();
        if (kind == 0 || kind == 2 || kind == 3) {
            net_kill9(&net, v->pid);
            v->pid = 0;
        } else {
            cr_assert_eq(kill(v->pid, SIGSTOP), 0);
            v->stopped = true;
        }
        if (kind < 2) {
            int next = wait_leader(victim, 20000);
            int64_t took = net_mono_ms() - t;
            worst = took > worst ? took : worst;
            cr_expect_leq(took, LEADER_BOUND_MS, "cycle %d (%s): node %d served %lld ms after node %d was lost",
                          cycle + 1, kinds[kind], next + 1, (long long)took, victim + 1);
        }
        if (kind == 1) {
            cr_assert_eq(kill(v->pid, SIGCONT), 0);
            v->stopped = false;
            /* deposed: it stops serving on its own (its lease ran out while it was stopped) */
            int64_t until = net_mono_ms() + 10000;
            while (metric(victim, "handoff_broker_raft_serving") != 0 && net_mono_ms() < until)
                net_nap_ms(20);
            cr_expect_eq(metric(victim, "handoff_broker_raft_serving"), 0,
                         "cycle %d: the stopped leader serves again after SIGCONT", cycle + 1);
        } else {
            if (kind == 3)
                wipe(v->dir);
            start_node(victim);
        }
        if (kind == 3) {                /* it caught up: its applied index reached the leader's commit */
            int64_t until = net_mono_ms() + 30000;
            long applied = -1, commit = 0;
            while (net_mono_ms() < until) {
                int l = serving();
                commit = l >= 0 ? metric(l, "handoff_broker_raft_commit_index") : 0;
                applied = metric(victim, "handoff_broker_raft_applied_index");
                if (commit > 0 && applied >= commit - 50)
                    break;
                net_nap_ms(50);
            }
            cr_expect(commit > 0 && applied >= commit - 50, "cycle %d: node %d applied %ld of %ld after its wipe",
                      cycle + 1, victim + 1, applied, commit);
        }
        size_t a, r;
        load_progress(L, &a, &r);
        fprintf(stderr, "cluster: cycle %d/%d (%s, node %d): %zu acked, %zu received, %.1f s\n", cycle + 1, cycles,
                kinds[kind], victim + 1, a, r, (double)(net_mono_ms() - t0) / 1000.0);
    }
    wait_leader(-1, 20000);
    load_result_t res;
    load_finish(L, 300000, &res);
    fprintf(stderr, "cluster: cycles=%d acked=%zu received=%zu lost=%zu duplicated=%zu redelivered=%zu "
            "retries=%zu worst new leader %lld ms\n", cycles, res.acked, res.received, res.lost, res.duplicated,
            res.redelivered, res.submit_retries, (long long)worst);
    cr_assert_str_empty(res.fatal, "%s", res.fatal);
    cr_assert_gt(res.acked, 0, "nothing was accepted (logs in %s)", net.dir);
    cr_expect(res.drained, "not every accepted message arrived (%s)", res.stalled ? "nothing new for 60 s" : "300 s");
    cr_expect_eq(res.lost, 0, "%zu acknowledged message(s) lost", res.lost);
    cr_expect_eq(res.duplicated, 0, "%zu sequence number(s) arrived under more than one message id",
                 res.duplicated);
}


Test(cluster, a_cut_off_leader_stops_acknowledging)
{
    relayed = true;
    make_spec();
    relay_start();
    start_all();
    int leader = wait_leader(-1, 20000);
    long term = metric(leader, "handoff_broker_raft_term");

    /* one way: the leader's traffic to one follower dropped; the other makes a majority */
    int f1 = (leader + 1) % NODES;
    atomic_store(&cut[leader][f1], 1);
    hx_client_t *c = session("lakeside");
    size_t accepted = 0;
    char payloads[400][8];
    int64_t until = net_mono_ms() + 3000;       /* three election timeouts of the cut follower */
    while (net_mono_ms() < until && accepted < 200) {
        snprintf(payloads[accepted], sizeof payloads[0], "%zu", accepted);
        hx_msg_t m = message("box", payloads[accepted]);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit with one way cut: %s", hx_client_error(c));
        accepted++;
    }
    cr_expect_eq(serving(), leader, "the leader changed with one way of one follower cut");
    cr_expect_eq(metric(leader, "handoff_broker_raft_term"), term, "a new term with one way of one follower cut");
    atomic_store(&cut[leader][f1], 0);

    /* both ways, from both: the old leader alone acknowledges nothing */
    isolate(leader, true);
    int64_t t = net_mono_ms();
    char err[256];
    hx_client_opts_t o = {.endpoint = nodes[leader].endpoint, .clinic = "lakeside", .timeout_ms = 1500,
                          .attempts = 2};
    hx_client_t *alone = hx_client_connect(&o, err, sizeof err);
    hx_msg_t lost = message("box", "never");
    if (alone) {
        cr_expect_neq(hx_client_submit(alone, &lost, 1), 0, "the cut-off leader acknowledged a submit");
        hx_client_destroy(&alone);
    }
    int next = wait_leader(leader, 20000);
    int64_t took = net_mono_ms() - t;
    cr_expect_leq(took, LEADER_BOUND_MS, "node %d served %lld ms after the leader was cut off", next + 1,
                  (long long)took);
    cr_expect_eq(metric(leader, "handoff_broker_raft_serving"), 0, "the cut-off leader still serves");
    for (int i = 0; i < 100; i++, accepted++) {
        snprintf(payloads[accepted], sizeof payloads[0], "%zu", accepted);
        hx_msg_t m = message("box", payloads[accepted]);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit to the new leader: %s", hx_client_error(c));
    }
    hx_client_destroy(&c);

    /* healed: the old leader follows the new one */
    isolate(leader, false);
    int64_t deadline = net_mono_ms() + 20000;
    while (metric(leader, "handoff_broker_raft_leader") != next + 1 && net_mono_ms() < deadline)
        net_nap_ms(50);
    cr_expect_eq(metric(leader, "handoff_broker_raft_leader"), next + 1, "the old leader does not follow");
    fetch_all("box", accepted);
    hx_client_t *box = session("box");
    hx_batch_t *b = NULL;
    cr_assert_eq(hx_client_fetch(box, 100, &b), 0);
    cr_expect_eq(b->count, 0, "a message the cut-off leader could not commit arrived");
    hx_batch_destroy(&b);
    hx_client_destroy(&box);
    for (int i = 0; i < NODES; i++)
        net_stop(&net, nodes[i].pid, SIGTERM), nodes[i].pid = 0;
    relay_end();
}


/* ---- the pipeline through a leader change ---- */

typedef struct {
    const char *clinic, *rid;
    char status[32];
} status_wait_t;

static bool settled(void *arg)
{
    status_wait_t *w = arg;
    json_t *out = NULL;                 /* the clinic's referrals, each with its status */
    net_cli_json(&net, w->clinic, &out, "status", NULL);
    size_t i;
    json_t *r;
    json_array_foreach(out, i, r)
        if (!strcmp(net_jstr(r, "referral_id"), w->rid))
            snprintf(w->status, sizeof w->status, "%s", net_jstr(r, "status"));
    json_decref(out);
    return !strcmp(w->status, "ready") || !strcmp(w->status, "on-hold");
}

/* A referral submitted with the CLI, the leader killed at once: intake, triage and scheduling
 * (workers over the endpoint list) carry it on through the new leader, and the clinic it is
 * booked with has one handoff of it. */
Test(cluster, the_pipeline_goes_on_through_a_leader_change)
{
    network_policy = true;
    start_all();
    int leader = wait_leader(-1, 20000);
    cr_assert_lt(strlen(endpoints), sizeof net.endpoint);
    memcpy(net.endpoint, endpoints, strlen(endpoints) + 1);
    net_start_services(&net, "2026-11-23T08:00");
    const char *file = net_src("deploy/sample/referrals/01-ankle-sprain.json");
    json_error_t jerr;
    json_t *ref = json_load_file(file, 0, &jerr);
    cr_assert_not_null(ref, "%s", jerr.text);
    char from[64];
    snprintf(from, sizeof from, "%s", net_jstr(json_object_get(ref, "referrer"), "clinic_id"));
    json_decref(ref);
    json_t *out = NULL;
    cr_assert_eq(net_cli_json(&net, from, &out, "submit", file, NULL), 0, "submit (logs in %s)", net.dir);
    char rid[64];
    snprintf(rid, sizeof rid, "%s", net_jstr(json_array_get(out, 0), "referral_id"));
    json_decref(out);
    cr_assert(rid[0], "no referral id");
    net_kill9(&net, nodes[leader].pid);
    nodes[leader].pid = 0;
    wait_leader(leader, 20000);
    start_node(leader);
    status_wait_t w = {from, rid, ""};
    cr_assert(net_wait(settled, &w, 90000), "%s not settled through the leader change (status '%s'; logs in %s)",
              rid, w.status, net.dir);
    /* one handoff, at one clinic */
    json_t *dir = json_load_file(net_src("deploy/sample/directory.json"), 0, &jerr);
    cr_assert_not_null(dir, "%s", jerr.text);
    size_t k, handoffs = 0;
    json_t *c;
    json_array_foreach(json_object_get(dir, "clinics"), k, c) {
        json_t *in = NULL;
        net_cli_json(&net, net_jstr(c, "id"), &in, "handoffs", NULL);
        size_t j;
        json_t *h;
        json_array_foreach(in, j, h)
            handoffs += !strcmp(net_jstr(h, "referral_id"), rid);
        json_decref(in);
    }
    json_decref(dir);
    cr_expect_eq(handoffs, !strcmp(w.status, "ready") ? 1 : 0, "%zu handoffs of %s (%s)", handoffs, rid, w.status);
}

static void count_uncompressed_snapshot(const char *path, const char *name, void *arg)
{
    size_t len = strlen(name);
    if (len > 5 && !strcmp(name + len - 5, ".meta"))
        return;
    file_count_t *n = arg;
    uint8_t head[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return;                 /* (removed by a newer snapshot meanwhile) */
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    n->files++;
    n->other += !(got == 4 && !memcmp(head, "\x04\x22\x4d\x18", 4));
}

/* Node i's snapshot files (DIR/raft/snapshot-*, not .meta): how many, and how many of them
 * libraft wrote compressed (an LZ4 frame: 04 22 4d 18). */
static void snapshot_files(int i, int *files, int *lz4)
{
    file_count_t n = {0};
    cr_assert(raft_files(i, "snapshot-", count_uncompressed_snapshot, &n), "%s has no Raft directory", nodes[i].name);
    *files = n.files;
    *lz4 = n.files - n.other;
}

Test(cluster, a_committed_state_survives_a_full_restart)
{
    /* with a data key: the entries, and the snapshots made on a worker thread, are sealed */
    snprintf(data_key, sizeof data_key, "%s/data.key", net.dir);
    write_data_key(data_key, 7);
    start_all();
    wait_leader(-1, 20000);
    hx_client_t *c = session("lakeside");
    char payloads[300][16];
    for (int i = 0; i < 300; i++) {               /* past --raft-snapshot-entries: a snapshot */
        snprintf(payloads[i], sizeof payloads[i], "Okafor-%03d", i);
        hx_msg_t m = message(i % 2 ? "odd" : "even", payloads[i]);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, 1, "handoff_broker_raft_snapshots_total"};
        cr_assert(net_wait(metric_reaches, &w, 20000), "%s took no snapshot of 300 entries", nodes[i].name);
    }
    /* a message settled before the restart: its id stays known (resubmitting it adds nothing) */
    hx_msg_t once = message("once", "1");
    cr_assert_eq(hx_client_submit(c, &once, 1), 0);
    hx_client_destroy(&c);
    fetch_all("once", 1);
    for (int i = 0; i < NODES; i++)
        net_stop(&net, nodes[i].pid, SIGTERM), nodes[i].pid = 0;
    start_all();
    wait_leader(-1, 20000);
    c = session("lakeside");
    cr_assert_eq(hx_client_submit(c, &once, 1), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    fetch_all("odd", 150);
    fetch_all("even", 150);
    expect_empty("once", "a settled message resubmitted after the restart came back");
    /* no body in clear in any node's log or snapshots; the sealed snapshots are not given to
     * LZ4 (ciphertext does not compress: the attempt was CPU and memory for nothing) */
    for (int i = 0; i < NODES; i++) {
        cr_expect_not(net_dir_holds(nodes[i].dir, "Okafor-", 7), "%s keeps a body in clear", nodes[i].name);
        int files, lz4;
        snapshot_files(i, &files, &lz4);
        cr_expect(files >= 1 && lz4 == 0, "%s: %d of its %d sealed snapshot file(s) compressed", nodes[i].name, lz4,
                  files);
    }
}

/* The most bodies any node's log says were released while one of its snapshots was being
 * written ("...; N bod(ies) released meanwhile were kept for it"). */
static long most_kept_for_a_snapshot(void)
{
    long most = 0;
    for (int i = 0; i < NODES; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s.log", net.dir, nodes[i].name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            const char *at = strstr(line, " bod(ies) released meanwhile");
            if (!at)
                continue;
            while (at > line && at[-1] >= '0' && at[-1] <= '9')
                at--;
            long k = strtol(at, NULL, 10);
            if (k > most)
                most = k;
        }
        fclose(f);
    }
    return most;
}

/* A snapshot's view names the bodies held when it was taken and a worker writes them while
 * the node goes on: a message settled meanwhile is gone from the state at once, its body kept
 * for the view until the snapshot is stored (under the sanitizers, a body freed early is a
 * use after free). Messages of 64 KB filled and drained in rounds, with a snapshot asked every
 * 16 entries, until some node reports settling while a snapshot was written; then every
 * message came once, and after a full restart (from those snapshots) nothing comes back. */
Test(cluster, bodies_settled_while_a_snapshot_is_written_are_kept_for_it)
{
    snapshot_entries = "16";
    start_all();
    wait_leader(-1, 20000);
    enum { N = 1500, BATCH = 10, SIZE = 64 * 1024 };
    char *body = malloc(SIZE + 1);
    cr_assert_not_null(body);
    long kept = 0;
    int round = 0;
    for (; round < 4 && kept == 0; round++) {
        hx_client_t *c = session("lakeside");
        for (int i = 0; i < N; i += BATCH) {
            hx_msg_t m[BATCH];
            memset(body, 'a' + (i / BATCH) % 26, SIZE);     /* (a batch's messages share one body) */
            body[SIZE] = '\0';
            for (int j = 0; j < BATCH; j++)
                m[j] = message("drained", body);
            cr_assert_eq(hx_client_submit(c, m, BATCH), 0, "round %d, submit %d: %s", round, i, hx_client_error(c));
        }
        hx_client_destroy(&c);
        fetch_all("drained", N);
        kept = most_kept_for_a_snapshot();
    }
    free(body);
    cr_log_info("%ld bodies kept for a snapshot, in round %d", kept, round);
    cr_assert_gt(kept, 0, "no node settled a message while a snapshot was written, in %d rounds of %d (logs in %s)",
                 round, N, net.dir);
    cr_assert(net_wait(none_held, NULL, 20000), "messages still held after every one was acked (logs in %s)", net.dir);
    for (int i = 0; i < NODES; i++)
        net_stop(&net, nodes[i].pid, SIGTERM), nodes[i].pid = 0;
    start_all();
    wait_leader(-1, 20000);
    expect_empty("drained", "a message settled before the restart came back");
    for (int i = 0; i < NODES; i++) {
        metric_wait_t none = {i, 0, "handoff_broker_raft_held_messages", true};
        cr_expect(net_wait(metric_reaches, &none, 20000), "%s holds %ld message(s) after the restart", nodes[i].name,
                  metric(i, "handoff_broker_raft_held_messages"));
    }
}

/* An idle leader proposes a lease barrier every heartbeat: entries, so every node passes
 * --raft-snapshot-entries again and again with nothing changed. Each such snapshot would
 * write the whole queue again; none is taken (until many thresholds have passed), and a
 * changed state is snapshotted as before. */
Test(cluster, an_idle_cluster_does_not_snapshot_an_unchanged_state_again)
{
    snapshot_entries = "16";
    start_all();
    int leader = wait_leader(-1, 20000);
    hx_client_t *c = session("lakeside");
    for (int i = 0; i < 40; i++) {              /* one entry each: past the threshold */
        hx_msg_t m = message("idle", "x");
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, 1, "handoff_broker_raft_snapshots_total"};
        cr_assert(net_wait(metric_reaches, &w, 20000), "%s took no snapshot of 40 entries (logs in %s)",
                  nodes[i].name, net.dir);
    }
    /* two thresholds of barriers: every node's last snapshot holds the last message (the
     * first may have been taken before the last ones were applied) */
    long from = metric(leader, "handoff_broker_raft_commit_index");
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, from + 2 * 16, "handoff_broker_raft_applied_index"};
        cr_assert(net_wait(metric_reaches, &w, 60000), "%s applied no barriers (logs in %s)", nodes[i].name, net.dir);
    }
    long before[NODES];
    for (int i = 0; i < NODES; i++)
        before[i] = metric(i, "handoff_broker_raft_snapshots_total");
    /* then four thresholds of barriers alone (one every --raft-heartbeat-ms, 100) */
    from = metric(leader, "handoff_broker_raft_commit_index");
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, from + 4 * 16, "handoff_broker_raft_applied_index"};
        cr_assert(net_wait(metric_reaches, &w, 60000), "%s applied no barriers (logs in %s)", nodes[i].name, net.dir);
    }
    for (int i = 0; i < NODES; i++)
        cr_expect_eq(metric(i, "handoff_broker_raft_snapshots_total"), before[i],
                     "%s snapshotted an unchanged state again (%ld, then %ld)", nodes[i].name, before[i],
                     metric(i, "handoff_broker_raft_snapshots_total"));
    /* a changed state (the 40 delivered: their settles are entries of more bytes than the
     * state they leave): the next threshold takes a snapshot on every node */
    hx_client_destroy(&c);
    fetch_all("idle", 40);
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, before[i] + 1, "handoff_broker_raft_snapshots_total"};
        cr_expect(net_wait(metric_reaches, &w, 30000), "%s took no snapshot of a changed state", nodes[i].name);
    }
}

/* A queue that only grows (a clinic away): with a snapshot at every threshold, each would
 * write the whole queue again (the 400 entries below, one message each, pass 25 thresholds of
 * 16). A node takes one only once the entries since its last hold as many bytes as the state:
 * about each time the queue has doubled. All 400 still arrive, and a node restarted after a
 * snapshot comes back with the whole queue (its snapshot and the log after it). The gauge of
 * the log since the last snapshot stays within the state's bytes and grows with a message. */
Test(cluster, a_growing_queue_is_not_snapshotted_at_every_threshold)
{
    snapshot_entries = "16";
    start_all();
    int leader = wait_leader(-1, 20000);
    hx_client_t *c = session("lakeside");
    char body[301];
    memset(body, 'q', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (int i = 0; i < 400; i++) {             /* one entry each (a reply before the next) */
        hx_msg_t m = message("away", body);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    hx_client_destroy(&c);
    long commit = metric(leader, "handoff_broker_raft_commit_index");
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, commit, "handoff_broker_raft_applied_index"};
        cr_assert(net_wait(metric_reaches, &w, 30000), "%s did not apply the 400 (logs in %s)", nodes[i].name, net.dir);
    }
    for (int i = 0; i < NODES; i++) {
        long snaps = metric(i, "handoff_broker_raft_snapshots_total");
        cr_expect(snaps >= 1 && snaps <= 8, "%s took %ld snapshot(s) of a queue growing to 400 messages "
                  "(1 to 8: one each time it about doubled; 25 thresholds passed)", nodes[i].name, snaps);
        /* the log since the last snapshot: at most the state's bytes and a threshold's entries */
        long log = metric(i, "handoff_broker_raft_log_bytes"), held = metric(i, "handoff_broker_raft_held_bytes");
        cr_expect(log >= 0 && held > 0 && log <= held + 16 * 1024, "%s: %ld bytes of log since its last snapshot, "
                  "%ld held", nodes[i].name, log, held);
        int files, lz4;                         /* in clear (no data key): compressed */
        snapshot_files(i, &files, &lz4);
        cr_expect(files >= 1 && lz4 == files, "%s: %d of its %d snapshot file(s) in clear compressed", nodes[i].name,
                  lz4, files);
    }
    /* one more message: every node's log since its last snapshot grows by at least its body
     * (the state is far larger than that log: no snapshot comes of it) */
    long log_before[NODES], snaps_before[NODES];
    for (int i = 0; i < NODES; i++) {
        log_before[i] = metric(i, "handoff_broker_raft_log_bytes");
        snaps_before[i] = metric(i, "handoff_broker_raft_snapshots_total");
    }
    c = session("lakeside");
    hx_msg_t one = message("away", body);
    cr_assert_eq(hx_client_submit(c, &one, 1), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    commit = metric(leader, "handoff_broker_raft_commit_index");
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, commit, "handoff_broker_raft_applied_index"};
        cr_assert(net_wait(metric_reaches, &w, 30000), "%s did not apply the 401st", nodes[i].name);
        long log = metric(i, "handoff_broker_raft_log_bytes");
        cr_expect(metric(i, "handoff_broker_raft_snapshots_total") != snaps_before[i] ||
                      log >= log_before[i] + (long)strlen(body),
                  "%s: log since its last snapshot %ld bytes, then %ld after a %zu-byte message", nodes[i].name,
                  log_before[i], log, strlen(body));
    }
    /* a follower restarted: its snapshot and the log after it give it the whole queue */
    int f = (leader + 1) % NODES;
    cr_assert_eq(net_stop(&net, nodes[f].pid, SIGTERM), 0);
    nodes[f].pid = 0;
    start_node(f);
    metric_wait_t held = {f, 401, "handoff_broker_raft_held_messages", true};
    cr_expect(net_wait(metric_reaches, &held, 30000), "%s holds %ld message(s) after a restart, not 401", nodes[f].name,
              metric(f, "handoff_broker_raft_held_messages"));
    fetch_all("away", 401);
}

/* A TCP connection to 127.0.0.1:port; -1 when none. Reads time out after 3 s. */
static int raft_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* n bytes from fd (false on a timeout or the end). */
static bool read_n(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* With a data key (the nodes' Raft connections authenticated with a key derived from it):
 * a process that speaks libraft's handshake to a Raft port is challenged, and closed when it
 * answers without the key; a node with another key is kept out while the two others serve;
 * given the right key it catches up. */
Test(cluster, a_stranger_cannot_speak_raft)
{
    snprintf(data_key, sizeof data_key, "%s/data.key", net.dir);
    write_data_key(data_key, 7);
    start_all();
    int leader = wait_leader(-1, 20000);
    int other = (leader + 1) % NODES;
    long refused0 = metric(other, "handoff_broker_raft_peers_refused_total");
    cr_assert_geq(refused0, 0, "no handoff_broker_raft_peers_refused_total on %s", nodes[other].name);

    /* libraft's handshake (protocol 1, a node id, its address), then a wrong answer */
    int fd = raft_dial(nodes[other].raft);
    cr_assert_geq(fd, 0, "cannot reach %s's Raft port", nodes[other].name);
    uint8_t hs[24 + 16] = {0};
    hs[0] = 1;                                  /* the handshake's protocol, u64 little-endian */
    hs[8] = 2;                                  /* claiming to be node 2 (or 1) */
    hs[16] = 16;                                /* the address' length, padded to 8 */
    memcpy(hs + 24, "127.0.0.1:9", 11);
    cr_assert_eq(send(fd, hs, sizeof hs, MSG_NOSIGNAL), (ssize_t)sizeof hs);
    uint8_t challenge[36];
    cr_assert(read_n(fd, challenge, sizeof challenge), "%s sent no challenge", nodes[other].name);
    cr_expect(memcmp(challenge, "HXRA", 4) == 0, "the challenge does not start with HXRA");
    uint8_t wrong[64];
    memset(wrong, 0x5a, sizeof wrong);
    cr_assert_eq(send(fd, wrong, sizeof wrong, MSG_NOSIGNAL), (ssize_t)sizeof wrong);
    uint8_t more;
    cr_expect_eq(recv(fd, &more, 1, 0), 0, "the connection was not closed after a wrong answer");
    close(fd);
    metric_wait_t w = {other, refused0 + 1, "handoff_broker_raft_peers_refused_total"};
    cr_expect(net_wait(metric_reaches, &w, 10000), "the refused connection was not counted");

    /* a node with another key: the others do not let it in; they serve on */
    hx_client_t *c = session("lakeside");
    hx_msg_t m0 = message("kept", "before");
    cr_assert_eq(hx_client_submit(c, &m0, 1), 0, "%s", hx_client_error(c));
    int outsider = (leader + 2) % NODES;
    net_stop(&net, nodes[outsider].pid, SIGTERM);
    nodes[outsider].pid = 0;
    wipe(nodes[outsider].dir);                  /* a node set up anew, with the wrong key */
    char right[sizeof data_key];
    snprintf(right, sizeof right, "%s", data_key);
    snprintf(data_key, sizeof data_key, "%s/other.key", net.dir);
    write_data_key(data_key, 3);
    long refused1 = metric(leader, "handoff_broker_raft_peers_refused_total");
    start_node(outsider);
    metric_wait_t kept_out = {leader, refused1 + 1, "handoff_broker_raft_peers_refused_total"};
    cr_assert(net_wait(metric_reaches, &kept_out, 20000), "the leader did not refuse the node with another key");
    for (int i = 0; i < 20; i++) {
        hx_msg_t m = message("kept", "while");
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d with one node kept out: %s", i, hx_client_error(c));
    }
    cr_expect_neq(metric(outsider, "handoff_broker_raft_serving"), 1, "the outsider serves");
    cr_expect_eq(metric(outsider, "handoff_broker_raft_held_messages"), 0, "the outsider holds messages");
    /* the right key: it catches up */
    net_stop(&net, nodes[outsider].pid, SIGTERM);
    nodes[outsider].pid = 0;
    snprintf(data_key, sizeof data_key, "%s", right);
    start_node(outsider);
    long want = 21;
    metric_wait_t caught = {outsider, want, "handoff_broker_raft_held_messages"};
    cr_expect(net_wait(metric_reaches, &caught, 20000), "the node with the right key did not catch up (holds %ld)",
              metric(outsider, "handoff_broker_raft_held_messages"));
    hx_client_destroy(&c);
    fetch_all("kept", 21);
}

/* A data directory where a single broker kept its log: a node of a cluster does not start
 * there (what that log holds would be left behind), and says what to do. */
Test(cluster, a_single_brokers_log_is_not_left_behind)
{
    node_t *n = &nodes[0];
    char seg[700], id[8] = "1";
    cr_assert_eq(mkdir(n->dir, 0700), 0);
    snprintf(seg, sizeof seg, "%s/00000000000000000001.log", n->dir);
    FILE *f = fopen(seg, "w");
    cr_assert_not_null(f);
    fclose(f);
    const char *argv[] = {net_bin("broker/handoff-broker"), "--bind", n->endpoint, "--plain-tcp-for-tests", "--data",
                          n->dir, "--cluster", spec, "--node-id", id, NULL};
    char out[256], err[2048];
    int code = -1;
    hx_spawn_opts_t o = {.argv = argv, .out_pipe = true, .err_pipe = true};
    cr_assert_eq(hx_spawn_run(&o, out, sizeof out, err, sizeof err, &code), 0);
    cr_expect_eq(code, 1, "%s", err);
    cr_expect(strstr(err, "holds a single broker's log") && strstr(err, n->dir), "%s", err);
}

/* A node's settings without --cluster would do nothing: given as flags they are refused,
 * naming the flag; from the environment (a file shared with the nodes) the single broker
 * says it ignores them and serves. */
Test(cluster, a_nodes_settings_on_a_single_broker_are_refused_or_named)
{
    static const char *const flags[][2] = {{"--node-id", "2"},          {"--raft-bind", "127.0.0.1:7001"},
                                           {"--raft-election-ms", "900"}, {"--raft-heartbeat-ms", "50"},
                                           {"--raft-snapshot-entries", "64"}, {"--raft-segment-mb", "16"}};
    char out[256], err[2048];
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        const char *argv[] = {net_bin("broker/handoff-broker"), "--plain-tcp-for-tests", "--bind", nodes[0].endpoint,
                              flags[i][0], flags[i][1], NULL};
        int code = -1;
        hx_spawn_opts_t o = {.argv = argv, .out_pipe = true, .err_pipe = true};
        cr_assert_eq(hx_spawn_run(&o, out, sizeof out, err, sizeof err, &code), 0);
        cr_expect_eq(code, 2, "%s without --cluster: exit %d (%s)", flags[i][0], code, err);
        char want[80];
        snprintf(want, sizeof want, "%s goes with --cluster", flags[i][0]);
        cr_expect(strstr(err, want), "%s without --cluster said: %s", flags[i][0], err);
    }
    char log[600];
    snprintf(log, sizeof log, "%s/single.log", net.dir);
    const char *argv[] = {net_bin("broker/handoff-broker"), "--plain-tcp-for-tests", "--bind", nodes[0].endpoint,
                          "--ready-file", nodes[0].ready, NULL};
    const char *env[] = {"HANDOFF_RAFT_SEGMENT_MB=16", "HANDOFF_CLUSTER", NULL};
    hx_proc_t p;
    cr_assert_eq(hx_spawn(&(hx_spawn_opts_t){.argv = argv, .env = env, .log = log}, &p), 0);
    nodes[0].pid = p.pid;
    bool ready = net_wait(file_there, nodes[0].ready, 20000);
    int status = 0;
    cr_expect_eq(hx_spawn_stop(p.pid, SIGTERM, 10000, &status), 0);
    nodes[0].pid = 0;
    cr_assert(ready, "a single broker with HANDOFF_RAFT_SEGMENT_MB set did not start (%s)", log);
    cr_expect_eq(hx_spawn_exit_code(status), 0);
    char said[4096] = "";
    FILE *f = fopen(log, "r");
    cr_assert_not_null(f, "%s", log);
    said[fread(said, 1, sizeof said - 1, f)] = '\0';
    fclose(f);
    cr_expect(strstr(said, "HANDOFF_RAFT_SEGMENT_MB is set, but without --cluster"),
              "the single broker did not say it ignores HANDOFF_RAFT_SEGMENT_MB (%s)", log);
}

/* ---- membership --------------------------------------------------------------------------- */

/* The CLI as the operator (--admin ops) over the endpoint list; its stdout into out (stderr
 * into ops-cli.log); its exit code. */
static int operator_cli(const char *list, char *out, size_t cap, const char *const args[])
{
    char home[600], log[600];
    snprintf(home, sizeof home, "%s/ops-home", net.dir);
    mkdir(home, 0700);
    snprintf(log, sizeof log, "%s/ops-cli.log", net.dir);
    const char *argv[24] = {net_bin("services/cli/handoff"), "--broker", list, "--admin", "ops", "--home", home,
                            "--timeout-ms", "5000"};
    size_t k = 9;
    for (size_t i = 0; args[i] && k < 23; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    int code = -1;
    unlink(log);
    hx_spawn_opts_t o = {.argv = argv, .err_log = log, .out_pipe = true};
    cr_assert_eq(hx_spawn_run(&o, out, cap, NULL, 0, &code), 0, "cannot start %s", argv[0]);
    FILE *f = code ? fopen(log, "r") : NULL;    /* a failure: what it said, after its output */
    if (f) {
        size_t len = strlen(out);
        len += fread(out + len, 1, cap - 1 - len, f);
        out[len] = '\0';
        fclose(f);
    }
    return code;
}

/* An admin op through the client library: the broker's refusal code (ERR_NONE when it
 * answered), its text in why. */
static Handoff__ErrorCode admin_refusal(hx_client_t *op, const char *name, const char *arg, char *why, size_t cap)
{
    char *text = NULL;
    int rc = hx_client_admin_text(op, name, arg, &text);
    free(text);
    snprintf(why, cap, "%s", rc ? hx_client_error(op) : "");
    return rc ? hx_client_error_code(op) : HANDOFF__ERROR_CODE__ERR_NONE;
}

typedef struct {
    int node;
} serves_t;

static bool node_serves(void *arg)
{
    return serving() == ((serves_t *)arg)->node;
}

static bool holds_n(void *arg)
{
    const long *want = arg;
    return metric(NODES, "handoff_broker_raft_held_messages") == *want;
}

/* What a node answers a HELLO: the leader it names (ERR_NOT_LEADER), into out. */
static void leader_named_by(int i, char *out, size_t cap)
{
    uint8_t id[HX_ID_LEN];
    Handoff__Envelope hello = clinic_hello(id);
    Handoff__Envelope *r = ask(nodes[i].endpoint, &hello);
    cr_assert_not_null(r, "%s did not answer", nodes[i].name);
    cr_assert_eq(r->error_code, HANDOFF__ERROR_CODE__ERR_NOT_LEADER, "%s: %s", nodes[i].name, r->error_text);
    snprintf(out, cap, "%s", r->leader);
    handoff__envelope__free_unpacked(r, NULL);
}

/* A newcomer started with --join is added with `handoff cluster add --wait`: it catches up
 * (snapshots included) and votes. Bad requests are refused by field, and a clinic may not ask.
 * The leadership moves to it (`cluster transfer`); the original nodes, whose --cluster does
 * not list it, name it to clients (its endpoints were replicated), also after a restart. An
 * original node is removed (`cluster remove`); then the newcomer, leading, is killed: one of
 * the two others leads within the bound, and nothing acknowledged is lost. */
Test(cluster, nodes_are_added_and_removed_and_the_leadership_moved)
{
    start_all();
    wait_leader(-1, 20000);
    client_list = endpoints_all;
    hx_client_t *c = session("lakeside");
    static char payloads[600][8];
    for (int i = 0; i < 600; i++) {             /* past --raft-snapshot-entries: snapshots on every node */
        snprintf(payloads[i], sizeof payloads[i], "%d", i);
        hx_msg_t m = message("box", payloads[i]);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    hx_client_destroy(&c);

    start_node(NODES);                          /* --join: waits to be added */
    n_nodes = NODES + 1;
    cr_expect_neq(metric(NODES, "handoff_broker_raft_serving"), 1, "the newcomer does not serve by itself");
    char node4[200], why[600], out[16384];
    snprintf(node4, sizeof node4, "%d=127.0.0.1:%d=%s", NODES + 1, nodes[NODES].raft, nodes[NODES].endpoint);

    /* refused, each by its field */
    char opts_err[256];
    hx_client_opts_t oo = {.endpoint = endpoints, .clinic = "ops", .role = HX_ROLE_ADMIN, .timeout_ms = 2000,
                           .attempts = 5};
    hx_client_t *op = hx_client_connect(&oo, opts_err, sizeof opts_err);
    cr_assert_not_null(op, "%s", opts_err);
    cr_expect_eq(admin_refusal(op, "cluster.add", "4=127.0.0.1=tcp://127.0.0.1:1", why, sizeof why),
                 HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_expect(strstr(why, "the Raft address is IPV4:PORT"), "%s", why);
    cr_expect_eq(admin_refusal(op, "cluster.add", "4=node-4.internal:7001=tcp://127.0.0.1:1", why, sizeof why),
                 HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_expect(strstr(why, "takes no host names"), "%s", why);
    cr_expect_eq(admin_refusal(op, "cluster.add", "1=127.0.0.1:9=tcp://127.0.0.1:9", why, sizeof why),
                 HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_expect(strstr(why, "node 1's already"), "%s", why);
    cr_expect_eq(admin_refusal(op, "cluster.remove", "9", why, sizeof why), HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_expect(strstr(why, "node 9 is not in the cluster"), "%s", why);
    cr_expect_eq(admin_refusal(op, "cluster.remove", "one", why, sizeof why), HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    cr_expect_eq(admin_refusal(op, "cluster.grow", "", why, sizeof why), HANDOFF__ERROR_CODE__ERR_BAD_FIELD);
    hx_client_destroy(&op);
    c = session("lakeside");
    cr_expect_eq(admin_refusal(c, "cluster.status", "", why, sizeof why), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "%s",
                 why);
    hx_client_destroy(&c);

    /* added, through the CLI */
    const char *add[] = {"cluster", "add", node4, "--wait", NULL};
    cr_assert_eq(operator_cli(endpoints, out, sizeof out, add), 0, "%s (see %s/ops-cli.log)", out, net.dir);
    cr_expect(strstr(out, "node 4 added: a voter, caught up"), "%s", out);
    long want = 600;
    cr_assert(net_wait(holds_n, &want, 30000), "the newcomer does not hold the 600 messages (logs in %s)", net.dir);
    const char *status[] = {"--json", "cluster", "status", NULL};
    cr_assert_eq(operator_cli(endpoints, out, sizeof out, status), 0, "%s", out);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "%s: %s", jerr.text, out);
    cr_expect_eq(json_integer_value(json_object_get(j, "voters")), 4, "%s", out);
    cr_expect_eq(json_array_size(json_object_get(j, "nodes")), 4, "%s", out);
    json_decref(j);
    cr_expect_eq(metric(NODES, "handoff_broker_raft_voters"), 4, "the newcomer's configuration has 4 voters");

    /* the leadership to the newcomer; the original nodes name it */
    const char *transfer[] = {"cluster", "transfer", "4", "--wait", NULL};
    cr_assert_eq(operator_cli(endpoints_all, out, sizeof out, transfer), 0, "%s (see %s/ops-cli.log)", out, net.dir);
    serves_t s4 = {NODES};
    cr_assert(net_wait(node_serves, &s4, 20000), "node 4 does not serve after the transfer (logs in %s)", net.dir);
    char named[256];
    for (int i = 0; i < NODES; i++) {
        leader_named_by(i, named, sizeof named);
        cr_expect_str_eq(named, nodes[NODES].endpoint, "%s names the newcomer", nodes[i].name);
    }
    /* ... also once restarted (from its snapshot and log) */
    cr_assert_eq(net_stop(&net, nodes[1].pid, SIGTERM), 0);
    nodes[1].pid = 0;
    start_node(1);
    leader_named_by(1, named, sizeof named);
    for (int k = 0; k < 100 && !named[0]; k++) {    /* it learns the leader at its first heartbeat */
        net_nap_ms(50);
        leader_named_by(1, named, sizeof named);
    }
    cr_expect_str_eq(named, nodes[NODES].endpoint, "a restarted node names the newcomer");

    /* node 1 removed; then the newcomer, leading, killed: node 2 or 3 leads */
    const char *rm[] = {"cluster", "remove", "1", "--wait", NULL};
    cr_assert_eq(operator_cli(endpoints_all, out, sizeof out, rm), 0, "%s (see %s/ops-cli.log)", out, net.dir);
    cr_expect(strstr(out, "node 1 removed"), "%s", out);
    cr_assert_eq(operator_cli(endpoints_all, out, sizeof out, status), 0, "%s", out);
    j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "%s", out);
    cr_expect_eq(json_integer_value(json_object_get(j, "voters")), 3, "%s", out);
    json_decref(j);
    cr_assert_eq(net_stop(&net, nodes[0].pid, SIGTERM), 0);
    nodes[0].pid = 0;
    net_kill9(&net, nodes[NODES].pid);
    nodes[NODES].pid = 0;
    int64_t t0 = net_mono_ms();
    int leader = wait_leader(NODES, 20000);
    int64_t took = net_mono_ms() - t0;
    cr_expect(leader == 1 || leader == 2, "node %d leads", leader + 1);
    cr_expect_leq(took, LEADER_BOUND_MS, "a new leader after %lld ms", (long long)took);
    fetch_all("box", 600);
}

/* The backup OPERATIONS.md gives for a cluster: one caught-up follower stopped (the two others
 * serve on), its directory copied, started again. Then every machine is lost: the copy put into
 * one node's emptied directory (not the node it was taken from) and made a cluster of that node
 * alone (--recover-cluster), the two others started on empty directories with --join and added
 * (never bootstrapped: two empty nodes are a majority, and would elect one of themselves in a
 * term the copy used already). The cluster serves again with everything acknowledged up to the
 * copy, each message once; the settled message stays settled; the others catch up from it. */
Test(cluster, a_lost_cluster_comes_back_from_one_nodes_copy)
{
    snprintf(data_key, sizeof data_key, "%s/data.key", net.dir);
    write_data_key(data_key, 5);
    start_all();
    int leader = wait_leader(-1, 20000);
    int from = (leader + 1) % NODES, into = (leader + 2) % NODES;
    hx_client_t *c = session("lakeside");
    char payloads[300][16];
    for (int i = 0; i < 300; i++) {               /* past --raft-snapshot-entries: a snapshot in the copy */
        snprintf(payloads[i], sizeof payloads[i], "Adeyemi-%03d", i);
        hx_msg_t m = message("kept", payloads[i]);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    hx_msg_t once = message("once", "1");
    cr_assert_eq(hx_client_submit(c, &once, 1), 0);
    fetch_all("once", 1);
    /* caught up: the follower has applied the settle too (301 accepted, 1 settled) */
    metric_wait_t caught = {from, 300, "handoff_broker_raft_held_messages", true};
    metric_wait_t snapped = {from, 1, "handoff_broker_raft_snapshots_total"};
    cr_assert(net_wait(metric_reaches, &caught, 20000), "%s did not catch up", nodes[from].name);
    cr_assert(net_wait(metric_reaches, &snapped, 20000), "%s took no snapshot", nodes[from].name);

    /* a running node's directory is its own (DATA/LOCK): a second node process on it is
     * refused, and so is --recover-cluster, before either touches it */
    char from_id[16], bind[64], out[4096], err[4096];
    snprintf(from_id, sizeof from_id, "%d", from + 1);
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", net_free_port());
    const char *twice[] = {net_bin("broker/handoff-broker"), "--bind", bind, "--cluster", spec, "--node-id", from_id,
                           "--data", nodes[from].dir, "--data-key", data_key, "--plain-tcp-for-tests", NULL};
    const char *recover_live[] = {net_bin("broker/handoff-broker"), "--cluster", spec, "--node-id", from_id, "--data",
                                  nodes[from].dir, "--recover-cluster", NULL};
    const char *const *in_use[] = {twice, recover_live};
    int code = -1;
    hx_spawn_opts_t so = {.out_pipe = true, .err_pipe = true};
    for (int k = 0; k < 2; k++) {
        so.argv = in_use[k];
        cr_assert_eq(hx_spawn_run(&so, out, sizeof out, err, sizeof err, &code), 0);
        cr_expect_eq(code, 1, "%s on a running node's --data: exit %d (%s)", k ? "--recover-cluster" : "a second node",
                     code, err);
        cr_expect(strstr(err, "in use by another handoff-broker"), "%s on a running node's --data said: %s",
                  k ? "--recover-cluster" : "a second node", err);
    }
    cr_expect(net_wait(metric_reaches, &caught, 5000), "%s lost its state to a refused process", nodes[from].name);

    net_stop(&net, nodes[from].pid, SIGTERM);
    nodes[from].pid = 0;
    char backup[600], cmd[1400];
    snprintf(backup, sizeof backup, "%s/backup", net.dir);
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", nodes[from].dir, backup);
    cr_assert_eq(system(cmd), 0);
    start_node(from);
    /* acknowledged after the copy: not in it */
    for (int i = 0; i < 20; i++) {
        hx_msg_t m = message("after", "late");
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit after the copy %d: %s", i, hx_client_error(c));
    }
    hx_client_destroy(&c);

    for (int i = 0; i < NODES; i++) {
        net_stop(&net, nodes[i].pid, SIGTERM);
        nodes[i].pid = 0;
        wipe(nodes[i].dir);
    }
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", backup, nodes[into].dir);
    cr_assert_eq(system(cmd), 0);
    /* (without --recover-cluster, the copy's configuration names all three, and the two nodes
     * joining have none and vote for no one: nothing would be elected) */
    char id[16];
    snprintf(id, sizeof id, "%d", into + 1);
    const char *bad_argv[] = {net_bin("broker/handoff-broker"), "--cluster", spec, "--node-id", id, "--data",
                              nodes[(into + 1) % NODES].dir, "--recover-cluster", NULL};
    so.argv = bad_argv;
    cr_assert_eq(hx_spawn_run(&so, out, sizeof out, err, sizeof err, &code), 0);
    cr_expect_eq(code, 1, "--recover-cluster on an empty directory: exit %d (%s)", code, err);
    cr_expect(strstr(err, "holds no Raft log"), "--recover-cluster on an empty directory said: %s", err);
    const char *argv[] = {net_bin("broker/handoff-broker"), "--cluster", spec, "--node-id", id, "--data",
                          nodes[into].dir, "--recover-cluster", NULL};
    so.argv = argv;
    cr_assert_eq(hx_spawn_run(&so, out, sizeof out, err, sizeof err, &code), 0);
    cr_assert_eq(code, 0, "--recover-cluster: exit %d (%s)", code, err);
    cr_expect(strstr(out, "alone"), "--recover-cluster said: %s", out);
    for (int i = 0; i < NODES; i++)
        joining[i] = i != into;
    start_all();
    serves_t alone = {into};
    cr_assert(net_wait(node_serves, &alone, 20000), "the recovered %s does not serve alone (logs in %s)",
              nodes[into].name, net.dir);
    for (int i = 0; i < NODES; i++) {
        if (i == into)
            continue;
        char node[200];
        snprintf(node, sizeof node, "%d=127.0.0.1:%d=%s", i + 1, nodes[i].raft, nodes[i].endpoint);
        const char *add[] = {"cluster", "add", node, "--wait", NULL};
        code = operator_cli(endpoints, out, sizeof out, add);
        cr_assert_eq(code, 0, "cluster add %s: exit %d: %s", node, code, out);
    }
    for (int i = 0; i < NODES; i++) {
        metric_wait_t all = {i, 300, "handoff_broker_raft_held_messages", true};
        cr_assert(net_wait(metric_reaches, &all, 30000), "%s holds %ld of the copy's 300 messages (logs in %s)",
                  nodes[i].name, metric(i, "handoff_broker_raft_held_messages"), net.dir);
    }
    c = session("lakeside");
    cr_assert_eq(hx_client_submit(c, &once, 1), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    fetch_all("kept", 300);
    expect_empty("once", "the message settled before the copy came back");
    expect_empty("after", "accepted after the copy, they are in it");
    for (int i = 0; i < NODES; i++)
        cr_expect_not(net_dir_holds(nodes[i].dir, "Adeyemi-", 8), "%s keeps a body in clear", nodes[i].name);
}

/* handoff-broker --rekey on a stopped node's data directory dir, as the operator runs it. exit
 * code; what it printed in out, what it said on stderr in err. */
static int rekey_dir(const char *dir, const char *old_key, const char *new_key, char *out, size_t ocap, char *err,
                     size_t ecap)
{
    const char *argv[12] = {net_bin("broker/handoff-broker"), "--rekey", "--data", dir, "--new-data-key", new_key};
    size_t k = 6;
    if (old_key) {
        argv[k++] = "--data-key";
        argv[k++] = old_key;
    }
    argv[k] = NULL;
    int code = -1;
    hx_spawn_opts_t so = {.argv = argv, .out_pipe = true, .err_pipe = true};
    cr_assert_eq(hx_spawn_run(&so, out, ocap, err, ecap, &code), 0);
    return code;
}

static int rekey_node(int i, const char *old_key, const char *new_key, char *out, size_t ocap, char *err,
                      size_t ecap)
{
    return rekey_dir(nodes[i].dir, old_key, new_key, out, ocap, err, ecap);
}

static bool dir_has(int i, const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", nodes[i].dir, name);
    return access(path, F_OK) == 0;
}

/* Rotating the data key of a cluster: every node stopped, --rekey on each, all started with
 * the new key. Each node's log (a snapshot and the entries after it) is sealed anew; the
 * nodes elect a leader and serve every message held, with its body, and the dedup window;
 * the old key opens nothing any more. A rekey cut short (the copy half made; the copy made
 * and not yet in place) stops the node from starting, and running it again finishes it. */
Test(cluster, every_node_rekeyed_serves_the_same_messages_with_the_new_key)
{
    char old_key[700], new_key[700], other_key[700], out[4096], err[4096], cmd[4096];
    snprintf(old_key, sizeof old_key, "%s/old.key", net.dir);
    snprintf(new_key, sizeof new_key, "%s/new.key", net.dir);
    snprintf(other_key, sizeof other_key, "%s/other.key", net.dir);
    write_data_key(old_key, 3);
    write_data_key(new_key, 4);
    write_data_key(other_key, 9);
    snprintf(data_key, sizeof data_key, "%s", old_key);
    start_all();
    int leader = wait_leader(-1, 20000);
    hx_client_t *c = session("lakeside");
    enum { N = 300 };
    for (int i = 0; i < N; i++) {               /* past --raft-snapshot-entries: snapshots, then entries */
        char payload[32];
        snprintf(payload, sizeof payload, "Nakamura-%03d", i);
        hx_msg_t m = message("kept", payload);
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    hx_msg_t once = message("once", "1");
    cr_assert_eq(hx_client_submit(c, &once, 1), 0);
    hx_client_destroy(&c);
    fetch_all("once", 1);
    for (int i = 0; i < NODES; i++) {
        metric_wait_t all = {i, N, "handoff_broker_raft_held_messages", true};
        metric_wait_t snapped = {i, 1, "handoff_broker_raft_snapshots_total"};
        cr_assert(net_wait(metric_reaches, &all, 20000), "%s did not catch up", nodes[i].name);
        cr_assert(net_wait(metric_reaches, &snapped, 20000), "%s took no snapshot", nodes[i].name);
    }
    /* a running node's log is not rekeyed under it */
    cr_expect_eq(rekey_node(leader, old_key, new_key, out, sizeof out, err, sizeof err), 2, "%s", err);
    cr_expect(strstr(err, "in use by another handoff-broker"), "--rekey on a running node said: %s", err);
    for (int i = 0; i < NODES; i++)
        net_stop(&net, nodes[i].pid, SIGTERM), nodes[i].pid = 0;

    /* a wrong old key, or none, changes nothing */
    cr_expect_eq(rekey_node(0, other_key, new_key, out, sizeof out, err, sizeof err), 1, "%s", err);
    cr_expect(strstr(err, "does not open with this data key"), "a wrong --data-key: %s", err);
    cr_expect_eq(rekey_node(0, NULL, new_key, out, sizeof out, err, sizeof err), 2, "%s", err);
    cr_expect(strstr(err, "--data-key must name the key"), "no --data-key: %s", err);
    cr_expect_not(dir_has(0, "raft.rekey") || dir_has(0, "raft.old"), "a refused rekey left a copy");

    /* a node that never held a log (an empty raft/: started with --join, never added) has
     * nothing to rekey, and says so */
    char scratch[700];
    snprintf(scratch, sizeof scratch, "%s/scratch", net.dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/raft'", scratch);
    cr_assert_eq(system(cmd), 0);
    int empty = rekey_dir(scratch, old_key, new_key, out, sizeof out, err, sizeof err);
    cr_expect_eq(empty, 0, "--rekey of a node with no log: exit %d: %s", empty, err);
    cr_expect(strstr(out, "nothing to rekey"), "--rekey of a node with no log said: %s", out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    cr_assert_eq(system(cmd), 0);

    /* node 2: cut short after the copy was complete and checked (raft.rekey.done), before it
     * took the log's place: made by rekeying a copy of the node's directory */
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", nodes[1].dir, scratch);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(rekey_dir(scratch, old_key, new_key, out, sizeof out, err, sizeof err), 0,
                 "--rekey of the scratch copy: %s", err);
    snprintf(cmd, sizeof cmd, "mv '%s/raft' '%s/raft.rekey' && touch '%s/raft.rekey.done' && rm -rf '%s'",
             scratch, nodes[1].dir, nodes[1].dir, scratch);
    cr_assert_eq(system(cmd), 0);
    /* node 3: cut short while the copy was being made (no raft.rekey.done) */
    snprintf(cmd, sizeof cmd, "mkdir '%s/raft.rekey' && head -c 100 /dev/urandom > '%s/raft.rekey/open-1'",
             nodes[2].dir, nodes[2].dir);
    cr_assert_eq(system(cmd), 0);
    for (int i = 1; i < NODES; i++) {           /* neither starts until the rekey is run again */
        char id[16], bind[64];
        snprintf(id, sizeof id, "%d", i + 1);
        snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", net_free_port());
        const char *argv[] = {net_bin("broker/handoff-broker"), "--bind", bind, "--cluster", spec, "--node-id", id,
                              "--data", nodes[i].dir, "--data-key", new_key, "--plain-tcp-for-tests", NULL};
        int code = -1;
        hx_spawn_opts_t so = {.argv = argv, .out_pipe = true, .err_pipe = true};
        cr_assert_eq(hx_spawn_run(&so, out, sizeof out, err, sizeof err, &code), 0);
        cr_expect_neq(code, 0, "%s started in the middle of a rekey", nodes[i].name);
        cr_expect(strstr(err, "a rekey of this node's Raft log was interrupted"), "%s said: %s", nodes[i].name, err);
    }

    for (int i = 0; i < NODES; i++) {
        int code = rekey_node(i, old_key, new_key, out, sizeof out, err, sizeof err);
        cr_assert_eq(code, 0, "--rekey of %s: exit %d: %s", nodes[i].name, code, err);
        if (i == 1)
            cr_expect(strstr(out, "Finishing the rekey that was interrupted"), "%s: %s", nodes[i].name, out);
        else
            cr_expect(strstr(out, "Sealed the Raft log") && strstr(out, "the snapshot at index"), "%s: %s",
                      nodes[i].name, out);
        cr_expect_not(dir_has(i, "raft.rekey") || dir_has(i, "raft.rekey.done") || dir_has(i, "raft.old"),
                      "%s: the rekey left its files", nodes[i].name);
    }
    cr_expect_eq(rekey_node(0, old_key, new_key, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_expect(strstr(out, "sealed with the new key already: nothing to do"), "a second run: %s", out);
    cr_expect_eq(rekey_node(0, old_key, other_key, out, sizeof out, err, sizeof err), 1, "%s", err);
    cr_expect(strstr(err, "does not open with this data key"), "the old key after the rekey: %s", err);

    snprintf(data_key, sizeof data_key, "%s", new_key);
    start_all();
    wait_leader(-1, 20000);
    for (int i = 0; i < NODES; i++) {
        metric_wait_t all = {i, N, "handoff_broker_raft_held_messages", true};
        cr_assert(net_wait(metric_reaches, &all, 20000), "%s holds %ld of %d after the rekey (logs in %s)",
                  nodes[i].name, metric(i, "handoff_broker_raft_held_messages"), N, net.dir);
    }
    c = session("lakeside");
    cr_assert_eq(hx_client_submit(c, &once, 1), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    /* every body back as it was sent, each once */
    hx_client_t *k = session("kept");
    bool seen[N] = {0};
    int got = 0;
    int64_t until = net_mono_ms() + 30000;
    while (got < N && net_mono_ms() < until) {
        hx_batch_t *b = NULL;
        cr_assert_eq(hx_client_fetch(k, 100, &b), 0, "%s", hx_client_error(k));
        for (size_t j = 0; j < b->count; j++) {
            const hx_msg_t *m = &b->msgs[j];
            int n = -1;
            char text[32] = "";
            memcpy(text, m->payload, m->payload_len < sizeof text - 1 ? m->payload_len : sizeof text - 1);
            cr_assert(sscanf(text, "Nakamura-%3d", &n) == 1 && n >= 0 && n < N && strlen(text) == 12,
                      "a body came back as '%s'", text);
            cr_assert_not(seen[n], "message %d came twice", n);
            seen[n] = true;
            got++;
            cr_assert_eq(hx_client_ack(k, (const uint8_t (*)[HX_ID_LEN])&m->id, 1), 0);
        }
        if (!b->count)
            net_nap_ms(20);
        hx_batch_destroy(&b);
    }
    hx_client_destroy(&k);
    cr_expect_eq(got, N, "%d of %d messages came back after the rekey", got, N);
    expect_empty("once", "a message settled before the rekey came back");
    for (int i = 0; i < NODES; i++) {
        cr_expect_not(net_dir_holds(nodes[i].dir, "Nakamura-", 9), "%s keeps a body in clear", nodes[i].name);
        int files, lz4;                         /* (the rekey wrote them sealed, not compressed) */
        snapshot_files(i, &files, &lz4);
        cr_expect(files >= 1 && lz4 == 0, "%s: %d of its %d sealed snapshot file(s) compressed", nodes[i].name, lz4,
                  files);
    }
}

/* ---- the audit log's head in the replicated log ---- */

/* `handoff audit verify` of node i's audit log against its data directory: exit code, stdout
 * in out. */
static int audit_verify(int i, char *out, size_t cap)
{
    char file[600], err[1024];
    snprintf(file, sizeof file, "%s/audit-n%d.jsonl", net.dir, i + 1);
    const char *argv[] = {net_bin("services/cli/handoff"), "audit", "verify", file, nodes[i].dir, NULL};
    int code = -1;
    hx_spawn_opts_t so = {.argv = argv, .out_pipe = true, .err_pipe = true};
    cr_assert_eq(hx_spawn_run(&so, out, cap, err, sizeof err, &code), 0);
    return code;
}

typedef struct {
    int node;
    unsigned long long lines, anchored;
} anchored_t;

/* node's audit log verifies, and the head recorded reaches its last line */
static bool fully_anchored(void *arg)
{
    anchored_t *a = arg;
    char out[1024];
    return audit_verify(a->node, out, sizeof out) == 0 &&
           sscanf(out, "ok: %llu line(s), the chain holds and reaches the anchored line %llu", &a->lines,
                  &a->anchored) == 2 &&
           a->lines > 0 && a->anchored == a->lines;
}

static bool exited(void *arg)
{
    siginfo_t info = {0};
    return waitid(P_PID, (id_t)*(pid_t *)arg, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0;
}

/* The serving node's audit chain head is recorded in the replicated log (an anchor entry once
 * the file is synced), so it is kept by every node: a node whose audit log lost its last lines,
 * and whose own data directory (its Raft log, its audit.anchor) was lost too, learns the head
 * back from the others, and when it is made the leader it refuses to serve (appending would
 * hide the cut) and stops with exit status 1; another node leads. */
Test(cluster, the_audit_logs_head_is_kept_by_every_node)
{
    audited = true;
    snapshot_entries = "16";            /* the heads travel in snapshots too (below) */
    raft_heartbeat = "20";
    start_all();
    int leader = wait_leader(-1, 20000);
    hx_client_t *c = session("lakeside");
    for (int i = 0; i < 20; i++) {
        hx_msg_t m = message("box", "Abara");
        cr_assert_eq(hx_client_submit(c, &m, 1), 0, "submit %d: %s", i, hx_client_error(c));
    }
    hx_client_destroy(&c);
    fetch_all("box", 20);
    anchored_t a = {leader, 0, 0};
    cr_assert(net_wait(fully_anchored, &a, 20000), "%s's audit log is not anchored to its end (%llu of %llu lines; "
              "logs in %s)", nodes[leader].name, a.anchored, a.lines, net.dir);
    long commit = metric(leader, "handoff_broker_raft_commit_index");
    for (int i = 0; i < NODES; i++) {
        metric_wait_t w = {i, commit, "handoff_broker_raft_applied_index"};
        cr_assert(net_wait(metric_reaches, &w, 20000), "%s did not apply the head (logs in %s)", nodes[i].name,
                  net.dir);
        /* and a snapshot taken since, which holds the head: with nothing else changing, one is
         * taken once 32 thresholds of the leader's lease barriers (one a heartbeat) have passed,
         * about 10 s here; the node wiped below catches up from it (the entries before it are
         * gone, and none after it names a head) */
        metric_wait_t snap = {i, metric(i, "handoff_broker_raft_snapshots_total") + 1,
                              "handoff_broker_raft_snapshots_total"};
        cr_assert(net_wait(metric_reaches, &snap, 40000), "%s took no snapshot (logs in %s)", nodes[i].name, net.dir);
    }

    /* the leader's audit log loses its last 3 lines, and its data directory everything */
    int victim = leader;
    net_stop(&net, nodes[victim].pid, SIGTERM);
    nodes[victim].pid = 0;
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "f='%s/audit-n%d.jsonl' && head -n -3 \"$f\" > \"$f.cut\" && mv \"$f.cut\" \"$f\"",
             net.dir, victim + 1);
    cr_assert_eq(system(cmd), 0);
    wipe(nodes[victim].dir);
    int other = wait_leader(victim, 20000);
    start_node(victim);
    commit = metric(other, "handoff_broker_raft_commit_index");
    metric_wait_t caught = {victim, commit, "handoff_broker_raft_applied_index"};
    cr_assert(net_wait(metric_reaches, &caught, 30000), "%s did not catch up (logs in %s)", nodes[victim].name,
              net.dir);
    char id[16], out[4096];
    snprintf(id, sizeof id, "%d", victim + 1);
    const char *transfer[] = {"cluster", "transfer", id, NULL};
    int code = operator_cli(endpoints, out, sizeof out, transfer);
    cr_assert_eq(code, 0, "cluster transfer %s: exit %d: %s", id, code, out);
    pid_t pid = nodes[victim].pid;
    cr_assert(net_wait(exited, &pid, 20000), "%s serves with a cut audit log (logs in %s)", nodes[victim].name,
              net.dir);
    int status = net_stop(&net, pid, SIGTERM);
    nodes[victim].pid = 0;
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s ended with status %d, not exit 1", nodes[victim].name,
              status);
    char log[600];
    snprintf(log, sizeof log, "%s/%s.log", net.dir, nodes[victim].name);
    snprintf(cmd, sizeof cmd, "grep -q 'were cut' '%s'", log);
    cr_expect_eq(system(cmd), 0, "%s does not say its audit log was cut (see %s)", nodes[victim].name, log);
    cr_assert_geq(wait_leader(victim, 20000), 0, "no other node leads after %s stopped", nodes[victim].name);
    /* the others serve on */
    c = session("lakeside");
    hx_msg_t m = message("after", "1");
    cr_assert_eq(hx_client_submit(c, &m, 1), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    fetch_all("after", 1);
}
