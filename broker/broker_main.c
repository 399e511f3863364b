/* handoff-broker — the daemon: one ROUTER socket on a libuv loop, feeding hx_router. */
#include "hx_audit.h"
#include "hx_cluster.h"
#include "hx_curve.h"
#include "hx_http.h"
#include "hx_log.h"
#include "hx_metrics.h"
#include "hx_opt.h"
#include "hx_router.h"
#include "hx_store.h"
#include "hx_wire.h"
#include "hx_zuv.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

static const char usage_head[] =
    "usage: handoff-broker [options]\n"
    "\n"
    "The Handoff message broker: service queues, clinic mailboxes, heartbeats, redelivery.\n"
    "\n"
    "options (each also from the environment variable shown, then its default):\n";

static const char usage_tail[] =
    "\n"
    "example:\n"
    "  handoff-broker --bind tcp://0.0.0.0:5555 --data /var/lib/handoff --data-key data.key \\\n"
    "    --curve-secret broker.key --allow allow.txt --audit /var/lib/handoff/audit.jsonl\n"
    "\n"
    "Without CURVE keys the broker refuses to start (--plain-tcp-for-tests is for loopback tests).\n"
    "With --data, a message is answered \"accepted\" only once it is on disk (fdatasync).\n"
    "With --cluster (and --node-id, --data), the broker is one node of a replicated broker:\n"
    "\"accepted\" once a majority of the nodes have it on disk; the other nodes answer\n"
    "ERR_NOT_LEADER naming the leader (docs/OPERATIONS.md, \"A replicated broker\").\n"
    "SIGINT or SIGTERM: says BYE to every peer and exits 0. SIGHUP: reads --allow and --revoked again.\n";

/* The broker's options: one row each (flag, environment, default, bounds, help). */
enum {
    O_BIND, O_HEARTBEAT, O_LIVENESS, O_MAX_FRAME, O_MAX_QUEUE, O_DEDUP, O_DATA, O_SEGMENT, O_SALVAGE, O_REKEY,
    O_NEW_DATA_KEY,    O_MAX_QUEUE_BYTES, O_ATTEMPTS, O_BACKOFF, O_BACKOFF_MAX, O_ACK_TIMEOUT, O_SHARE, O_POLICY, O_PRINT_POLICY,
    O_FAULTS, O_CURVE_SECRET, O_DATA_KEY, O_AUDIT, O_AUDIT_MAX_BYTES, O_AUDIT_ROTATE, O_AUDIT_KEEP_DAYS, O_PLAIN,
    O_ALLOW, O_REVOKED, O_READY, O_HTTP, O_LOG_LEVEL, O_LOG_FORMAT, O_CLUSTER, O_NODE_ID, O_RAFT_BIND,
    O_RAFT_ELECTION, O_RAFT_HEARTBEAT, O_RAFT_SNAPSHOT, O_RAFT_SEGMENT, O_JOIN, O_RECOVER, O_COUNT
};
static const hx_opt_t options[O_COUNT] = {
    [O_BIND] = {"bind", HX_OPT_TEXT, "HANDOFF_BIND", "tcp://127.0.0.1:5555", 0, 0, "ENDPOINT",
                "where to listen; tcp://127.0.0.1:* picks a free port (see --ready-file)"},
    [O_HEARTBEAT] = {"heartbeat-ms", HX_OPT_U32, "HANDOFF_HEARTBEAT_MS", "1000", 10, 60000, "N",
                     "heartbeat interval, 10..60000"},
    [O_LIVENESS] = {"liveness", HX_OPT_U32, "HANDOFF_LIVENESS", "3", 2, 100, "N",
                    "missed heartbeats before a peer is dead, 2..100"},
    [O_MAX_FRAME] = {"max-frame", HX_OPT_U32, "HANDOFF_MAX_FRAME", "1048576", 1024, 64u << 20, "BYTES",
                     "largest frame accepted (1 KiB..64 MiB); up to 64 KiB more is answered\nERR_TOO_LARGE"},
    [O_MAX_QUEUE] = {"max-queue", HX_OPT_U32, "HANDOFF_MAX_QUEUE", "100000", 1, 100000000, "N",
                     "messages per service queue (and mailbox, for non-workers)"},
    [O_DEDUP] = {"dedup-window", HX_OPT_U32, "HANDOFF_DEDUP_WINDOW", "100000", 0, 100000000, "N",
                 "ids of settled messages remembered for exact resubmits (a\nheld message is always recognized)"},
    [O_DATA] = {"data", HX_OPT_TEXT, "HANDOFF_DATA", NULL, 0, 0, "DIR",
                "keep queues in a durable log in DIR; without it queues live in memory\nand a restart loses them"},
    [O_SEGMENT] = {"segment-bytes", HX_OPT_U32, "HANDOFF_SEGMENT_BYTES", "67108864", 4096, 4000000000u, "N",
                   "log segment size"},
    [O_SALVAGE] = {"salvage", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                   "with --data (and --data-key if the log is sealed): copy every readable\nrecord of a damaged "
                   "log into a new log, move the original segments\nuntouched into DIR/damaged-<time>/, list what "
                   "could not be read, exit"},
    [O_REKEY] = {"rekey", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                 "with --data, --new-data-key (and --data-key if the log is sealed): seal\nthe whole log "
                 "anew with the new key, check it, remove the old\nsegments, exit (the broker stopped; "
                 "run again if interrupted);\na cluster node's Raft log too (every node, all stopped)"},
    [O_NEW_DATA_KEY] = {"new-data-key", HX_OPT_TEXT, NULL, NULL, 0, 0, "FILE", "with --rekey: the key to seal the log with"},
    [O_MAX_QUEUE_BYTES] = {"max-queue-bytes", HX_OPT_U32, "HANDOFF_MAX_QUEUE_BYTES", "268435456", 4096, 4000000000u,
                           "N", "message bytes per service queue (and mailbox, for non-workers)"},
    [O_ATTEMPTS] = {"max-attempts", HX_OPT_U32, "HANDOFF_MAX_ATTEMPTS", "5", 1, 1000, "N",
                    "failed deliveries before the dead-letter queue"},
    [O_BACKOFF] = {"backoff-ms", HX_OPT_U32, "HANDOFF_BACKOFF_MS", "500", 1, 3600000, "N",
                   "delay after a first failure, doubling"},
    [O_BACKOFF_MAX] = {"backoff-max-ms", HX_OPT_U32, "HANDOFF_BACKOFF_MAX_MS", "60000", 1, 86400000, "N",
                       "cap on that delay"},
    [O_ACK_TIMEOUT] = {"ack-timeout-ms", HX_OPT_U32, "HANDOFF_ACK_TIMEOUT_MS", "30000", 10, 86400000, "N",
                       "a worker holding a message longer has failed it"},
    [O_SHARE] = {"sender-share", HX_OPT_U32, "HANDOFF_SENDER_SHARE", "25", 1, 100, "PCT",
                 "one clinic (with the work done for it) may hold at most PCT percent\nof --max-queue and "
                 "--max-queue-bytes in the service queues, 1..100"},
    [O_POLICY] = {"policy", HX_OPT_TEXT, "HANDOFF_POLICY", NULL, 0, 0, "FILE",
                  "who may send what where, as JSON; without it the built-in table of\nthe Handoff network "
                  "(see --print-policy)"},
    [O_PRINT_POLICY] = {"print-policy", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                        "print the routing policy in force (built-in or --policy) and exit"},
    [O_FAULTS] = {"test-faults", HX_OPT_TEXT, NULL, NULL, 0, 0, "FILE",
                  "tests only: \"enospc\" or \"eio\" in FILE makes log writes fail"},
    [O_CURVE_SECRET] = {"curve-secret", HX_OPT_TEXT, "HANDOFF_CURVE_SECRET", NULL, 0, 0, "FILE",
                        "CURVE on: the broker's secret key (see handoff keygen); needs --allow"},
    [O_DATA_KEY] = {"data-key", HX_OPT_TEXT, "HANDOFF_DATA_KEY", NULL, 0, 0, "FILE",
                    "seal message bodies in the log with this key (64 hex characters;\nhandoff datakey FILE "
                    "makes one)"},
    [O_AUDIT] = {"audit", HX_OPT_TEXT, "HANDOFF_AUDIT", NULL, 0, 0, "FILE",
                 "append-only audit log, one hash-chained JSON line per session,\nrefusal, submit, mailbox "
                 "delivery and dead-letter operation\n(ids only); check it with handoff audit verify"},
    [O_AUDIT_MAX_BYTES] = {"audit-max-bytes", HX_OPT_U64, "HANDOFF_AUDIT_MAX_BYTES", "67108864", 0, UINT64_MAX,
                           "N",
                           "rotate the audit log before a line would take it past N bytes:\nFILE becomes "
                           "FILE.YYYYMMDDTHHMMSSZ and a new FILE continues the chain;\n0: no size limit"},
    [O_AUDIT_ROTATE] = {"audit-rotate", HX_OPT_TEXT, "HANDOFF_AUDIT_ROTATE", "size", 0, 0, "WHEN",
                        "size (by --audit-max-bytes only), or daily: also at the first event\nof each UTC day"},
    [O_AUDIT_KEEP_DAYS] = {"audit-keep-days", HX_OPT_U32, "HANDOFF_AUDIT_KEEP_DAYS", "0", 0, 36500, "N",
                           "after a rotation, delete rotated audit files more than N days old;\n0: keep them all "
                           "(deleting audit records is the custodian's decision)"},
    [O_PLAIN] = {"plain-tcp-for-tests", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                 "without CURVE: no encryption, no authentication; only on a\nloopback or ipc endpoint, for "
                 "tests"},
    [O_ALLOW] = {"allow", HX_OPT_TEXT, "HANDOFF_ALLOW", NULL, 0, 0, "FILE",
                 "the keys that may connect, one per line: \"<public key>\n<clinic|service|admin|reviewer> <name>\"; a "
                 "key may open only that session"},
    [O_REVOKED] = {"revoked", HX_OPT_TEXT, "HANDOFF_REVOKED", NULL, 0, 0, "FILE",
                   "keys never to allow, one per line: \"<public key> ...\"\n(deploy/keys.sh keeps it); an "
                   "allow-list line with such a key is left out"},
    [O_READY] = {"ready-file", HX_OPT_TEXT, NULL, NULL, 0, 0, "PATH", "write the bound endpoint to PATH once listening"},
    [O_HTTP] = {"http", HX_OPT_TEXT, "HANDOFF_HTTP", NULL, 0, 0, "HOST:PORT",
                "serve /metrics (Prometheus), /healthz and /readyz there (off\nwithout it); e.g. 127.0.0.1:9100"},
    [O_LOG_LEVEL] = {"log-level", HX_OPT_TEXT, "HANDOFF_LOG_LEVEL", "info", 0, 0, "LEVEL",
                     "debug, info, warn, error"},
    [O_LOG_FORMAT] = {"log-format", HX_OPT_TEXT, "HANDOFF_LOG_FORMAT", "text", 0, 0, "FORMAT",
                      "text, or json: one object per line"},
    [O_CLUSTER] = {"cluster", HX_OPT_TEXT, "HANDOFF_CLUSTER", NULL, 0, 0, "NODES",
                   "a replicated broker: every node as ID=RAFTIP:PORT=tcp://HOST:PORT,\ncomma-separated, the "
                   "same on each node (3 or 5 nodes); needs --node-id\nand --data (Raft's log in DIR/raft)"},
    [O_NODE_ID] = {"node-id", HX_OPT_U32, "HANDOFF_NODE_ID", "0", 0, 1000000, "ID",
                   "with --cluster: which of its nodes this one is"},
    [O_RAFT_BIND] = {"raft-bind", HX_OPT_TEXT, "HANDOFF_RAFT_BIND", NULL, 0, 0, "HOST:PORT",
                     "with --cluster: listen for the other nodes there rather than at this\nnode's RAFTIP:PORT "
                     "(a container's 0.0.0.0:PORT); the same port"},
    [O_RAFT_ELECTION] = {"raft-election-ms", HX_OPT_U32, "HANDOFF_RAFT_ELECTION_MS", "1000", 100, 60000, "N",
                         "with --cluster: a follower that hears no leader for N to 2N ms\nstands for election"},
    [O_RAFT_HEARTBEAT] = {"raft-heartbeat-ms", HX_OPT_U32, "HANDOFF_RAFT_HEARTBEAT_MS", "100", 10, 10000, "N",
                          "with --cluster: the leader's heartbeat (and lease renewal) interval"},
    [O_JOIN] = {"join", HX_OPT_FLAG, "HANDOFF_JOIN", NULL, 0, 0, NULL,
                "with --cluster: a new node for a running cluster; it waits until the\nleader adds it "
                "(handoff admin cluster add) rather than starting one"},
    [O_RECOVER] = {"recover-cluster", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                   "with --cluster, --node-id, --data: every node lost but this copy of\none node's "
                   "directory: make it the log of a cluster of this node\nalone (at its --cluster address), "
                   "exit. Start it then as usual; it\nleads by itself: start the others on empty "
                   "directories with --join\nand add them (handoff cluster add). Once, with the node stopped"},
    [O_RAFT_SNAPSHOT] = {"raft-snapshot-entries", HX_OPT_U32, "HANDOFF_RAFT_SNAPSHOT_ENTRIES", "1024", 16,
                         10000000, "N", "with --cluster: every N log entries a snapshot of the\nstate is due; it is taken once the entries since the\n"
                         "last hold as many bytes as the state (or after 32 N)"},
    [O_RAFT_SEGMENT] = {"raft-segment-mb", HX_OPT_U32, "HANDOFF_RAFT_SEGMENT_MB", "64", HX_CLUSTER_SEGMENT_MIN_MB,
                        HX_CLUSTER_SEGMENT_MAX_MB, "N", "with --cluster: the Raft log's segment files, N MiB each; while\n"
                        "the node runs, three are allocated at a time"},
};

typedef struct {
    uv_loop_t loop;
    void *zctx;
    void *sock;
    hx_zuv_t zuv;
    uv_timer_t tick;
    uv_prepare_t flush;
    uv_signal_t sigint, sigterm;
    hx_router_t *router;
    hx_store_t *store;
    void *zap;                  /* ZAP handler (REP at inproc://zeromq.zap.01), with CURVE */
    hx_zuv_t zap_zuv;
    hx_allow_t *allow;
    const char *allow_path, *revoked_path;
    hx_allow_t *retired;        /* keys a reload took out, whose connections may still be open */
    bool frame_retired;         /* the frame being handled came over such a connection */
    uv_signal_t sighup;
    hx_audit_t *audit;
    hx_metrics_t *metrics;      /* series updated on the loop; the rest is read at scrape time */
    hx_metric_t *auth_refused, *fsync;
    hx_http_t *http;
    hx_policy_t *policy;        /* routing: who may send what where */
    bool sock_watched, zap_watched; /* hx_zuv_init done: hx_zuv_close at the end */
    /* --cluster: this node of the replicated broker; the router exists only while it serves */
    hx_cluster_t *cluster;
    hx_router_config_t rcfg;    /* what each router it serves with is made from */
    hx_buf_t refusal;
    uint8_t raft_peer_key[32];  /* --cluster: what the nodes prove to each other (see open_router) */
    const char *raft_peer_key_from;     /* NULL: none */
    int data_lock;              /* --cluster: DATA/LOCK, held while the node runs (-1: none) */
    bool audit_anchored;        /* the log (or the cluster) vouches for the audit chain's head */
    bool failed;                /* stopped for a reason that makes the exit status 1 */
} broker_t;

/* Group commit latency, 50 us .. 2.5 s: one fdatasync is ~150 us on a good disk. */
static const uint64_t fsync_bounds_ns[] = {50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
                                           10000000, 25000000, 50000000, 100000000, 250000000, 500000000,
                                           1000000000, 2500000000u};

static void on_sync(void *arg, uint64_t nanos)
{
    broker_t *b = arg;
    hx_metric_observe(b->fsync, nanos);
}

static void audit_event(void *arg, const char *principal, const char *action, const char *id, const char *outcome)
{
    broker_t *b = arg;
    if (b->audit && hx_audit_write(b->audit, principal, action, id, outcome) != 0)
        hx_error("cannot write the audit log");
}

static int send_frame(void *arg, const uint8_t *peer, size_t peer_len, const uint8_t *frame, size_t len)
{
    broker_t *b = arg;
    if (zmq_send(b->sock, peer, peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;                              /* EHOSTUNREACH (gone) or EAGAIN (not reading) */
    if (zmq_send(b->sock, frame, len, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

/* A connection's handshake outlives a reload, and the router knows sessions by principal:
 * when a reload took out one key of a principal that still has another (a rotation), the
 * old key's connection would keep its session. The ZAP handler tags each connection with its
 * key (metadata "X-Key"); a frame over a connection whose key was taken out ends its session
 * (as a BYE would: what it held goes back to its queue) and is refused. True for such a frame. */
static bool from_retired_key(broker_t *b, const uint8_t *rid, size_t rid_len, zmq_msg_t *msg, const char *principal,
                             uint64_t now)
{
    const char *z85 = zmq_msg_gets(msg, "X-Key");
    uint8_t key[32];
    if (!z85 || strlen(z85) != HX_KEY_Z85 || !zmq_z85_decode(key, z85) || !hx_allow_find(b->retired, key))
        return false;
    hx_router_stats_t before, after;
    hx_router_stats(b->router, &before);
    hx_buf_t bye = {0};
    if (hx_wire_pack_reply(&bye, HANDOFF__KIND__KIND_BYE, NULL, 0) == 0)
        hx_router_on_frame_from(b->router, rid, rid_len, principal, bye.data, bye.len, now);
    hx_buf_free(&bye);
    hx_router_stats(b->router, &after);
    if (after.peers < before.peers) {
        hx_warn("session of %s ended: its key %.8s... was removed from the allow-list", principal, z85);
        audit_event(b, principal, "session", z85, "ended: the key was removed from the allow-list");
    }
    return true;
}

static void on_message(hx_zuv_t *z, zmq_msg_t *parts, size_t n, void *arg)
{
    (void)z;
    broker_t *b = arg;
    uint64_t now = uv_now(&b->loop);
    const uint8_t *rid = zmq_msg_data(&parts[0]);
    size_t rid_len = zmq_msg_size(&parts[0]);
    if (b->cluster && !b->router) {             /* a node that does not serve: the leader is there */
        if (n == 2 && b->zap && !zmq_msg_gets(&parts[1], "User-Id"))
            return;
        if (n >= 2 && hx_cluster_refusal(b->cluster, zmq_msg_data(&parts[n - 1]), zmq_msg_size(&parts[n - 1]),
                                         &b->refusal) == 0)
            send_frame(b, rid, rid_len, b->refusal.data, b->refusal.len);
        return;
    }
    if (n != 2) {
        hx_router_on_bad_frames(b->router, rid, rid_len, n - 1, now);
        return;
    }
    /* with CURVE, who the key is (our ZAP handler's answer), never what the frame claims */
    const char *principal = b->zap ? zmq_msg_gets(&parts[1], "User-Id") : NULL;
    if (b->zap && !principal)
        return;
    if (b->retired && hx_allow_count(b->retired) > 0 && from_retired_key(b, rid, rid_len, &parts[1], principal, now))
        b->frame_retired = true;                /* its HELLO is refused: principal_allowed says no */
    hx_router_on_frame_from(b->router, rid, rid_len, principal, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]),
                            now);
    b->frame_retired = false;
}

/* ZAP (RFC 27): version, request id, domain, address, identity, mechanism, credentials;
 * answered 200 with the key's principal as User-Id, or 400. */
static void on_zap(hx_zuv_t *z, zmq_msg_t *parts, size_t n, void *arg)
{
    broker_t *b = arg;
    const char *status = "400", *text = "unknown key", *user = "";
    char principal[HX_PRINCIPAL_MAX] = "";
    uint8_t meta[1 + 5 + 4 + HX_KEY_Z85];       /* ZMTP property "X-Key" = the key in Z85 */
    size_t meta_len = 0;
    if (n >= 7 && zmq_msg_size(&parts[5]) == 5 && memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&parts[6]) == 32) {
        const char *p = hx_allow_find(b->allow, zmq_msg_data(&parts[6]));
        if (p) {
            snprintf(principal, sizeof principal, "%s", p);
            status = "200", text = "OK", user = principal;
            char z85[HX_KEY_Z85 + 1];
            zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
            meta[0] = 5;
            memcpy(meta + 1, "X-Key", 5);
            meta[6] = meta[7] = meta[8] = 0;
            meta[9] = HX_KEY_Z85;
            memcpy(meta + 10, z85, HX_KEY_Z85);
            meta_len = sizeof meta;
        } else {
            char z85[HX_KEY_Z85 + 1];
            zmq_z85_encode(z85, zmq_msg_data(&parts[6]), 32);
            hx_warn("refused a connection: key %s is not in the allow-list", z85);
            hx_metric_add(b->auth_refused, 1);
            audit_event(b, "(unknown key)", "connect", z85, "refused: not in the allow-list");
        }
    } else {
        text = "CURVE required";
        hx_metric_add(b->auth_refused, 1);
    }
    const void *req_id = n >= 2 ? zmq_msg_data(&parts[1]) : "";
    size_t req_len = n >= 2 ? zmq_msg_size(&parts[1]) : 0;
    zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(z->sock, req_id, req_len, ZMQ_SNDMORE);
    zmq_send(z->sock, status, 3, ZMQ_SNDMORE);
    zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(z->sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(z->sock, meta, meta_len, 0);
}

static bool principal_allowed(void *arg, const char *principal)
{
    broker_t *b = arg;
    return !b->frame_retired && b->allow && hx_allow_has_principal(b->allow, principal);
}

static void warn_revoked(void *arg, const uint8_t key[32], const char *principal, const char *z85)
{
    (void)arg;
    (void)key;
    hx_warn("allow-list: left out %s (key %s): the key is in the revoked record", principal, z85);
}

/* The allow-list less the keys of the revoked record (when there is one); NULL with the
 * reason in err when either does not load. */
static hx_allow_t *load_allow(const char *allow_path, const char *revoked_path, char *err, size_t errcap)
{
    hx_allow_t *a = hx_allow_load(allow_path, err, errcap);
    if (!a || !revoked_path)
        return a;
    hx_allow_t *revoked = hx_revoked_load(revoked_path, err, errcap);
    if (!revoked) {
        hx_allow_destroy(&a);
        return NULL;
    }
    hx_allow_subtract(a, revoked, warn_revoked, NULL);
    hx_allow_destroy(&revoked);
    return a;
}

typedef struct {
    broker_t *b;
    const hx_allow_t *other;    /* the other list: whether the principal is in it decides the wording */
    hx_buf_t text;
    size_t n;
    bool removed, oom;
} reload_diff_t;

/* One key the reload took out (removed) or put in, named by its principal; a principal
 * still listed under another key (a rotation) is named with the key's first characters. */
static void note_change(void *arg, const uint8_t key[32], const char *principal, const char *z85)
{
    reload_diff_t *d = arg;
    broker_t *b = d->b;
    bool other_key = hx_allow_has_principal(d->other, principal);
    if (hx_buf_appendf(&d->text, "%s%s", d->n++ ? ", " : "", principal) != 0 ||
        (other_key && hx_buf_appendf(&d->text, " (%s key %.8s...)", d->removed ? "old" : "new", z85) != 0))
        d->oom = true;
    if (d->removed) {
        if (!b->retired)
            b->retired = hx_allow_new();
        if (!b->retired || hx_allow_put(b->retired, key, principal) != 0)
            d->oom = true;
        audit_event(b, principal, "allow-list", z85, "removed: the key may no longer connect");
    } else {
        if (b->retired)
            hx_allow_remove(b->retired, key);
        audit_event(b, principal, "allow-list", z85, "added");
    }
}

/* SIGHUP: the allow-list (less the revoked record) again; a file that does not load leaves
 * the old list in force. The log line names every key taken out or put in. */
static void on_hup(uv_signal_t *s, int signum)
{
    (void)signum;
    broker_t *b = s->data;
    if (!b->allow_path)
        return;
    char err[700];
    hx_allow_t *a = load_allow(b->allow_path, b->revoked_path, err, sizeof err);
    if (!a) {
        hx_error("allow-list refused, keeping the one in force: %s", err);
        return;
    }
    reload_diff_t gone = {.b = b, .other = a, .removed = true}, came = {.b = b, .other = b->allow};
    hx_allow_each_missing(b->allow, a, note_change, &gone);
    hx_allow_each_missing(a, b->allow, note_change, &came);
    hx_allow_destroy(&b->allow);
    b->allow = a;
    if (gone.oom || came.oom)
        hx_error("allow-list: out of memory while noting the reload's changes");
    const char *gone_text = gone.text.data && !gone.oom ? (const char *)gone.text.data : "";
    const char *came_text = came.text.data && !came.oom ? (const char *)came.text.data : "";
    hx_info("allow-list reloaded: %zu key(s)%s%.*s%s%.*s%s", hx_allow_count(a), gone.n ? "; removed " : "",
            *gone_text ? (int)gone.text.len : 0, gone_text, came.n ? "; added " : "",
            *came_text ? (int)came.text.len : 0, came_text, gone.n || came.n ? "" : "; no change");
    hx_buf_free(&gone.text);
    hx_buf_free(&came.text);
    if (b->router)
        hx_router_recheck(b->router);           /* sessions of removed principals end now */
}

/* ---- /metrics and /readyz, written on the loop thread (hx_http asks through uv_async) -- */

typedef struct {
    hx_buf_t *out;
    bool mailbox;
    int field;
    int rc;
} metrics_walk_t;

enum { F_DEPTH, F_INFLIGHT, F_BYTES, F_AGE, F_WORKERS, F_PINNED };

static void metrics_queue(void *arg, const hx_queue_info_t *q)
{
    static const char *const svc[] = {"handoff_broker_queue_depth", "handoff_broker_queue_inflight",
                                      "handoff_broker_queue_bytes", "handoff_broker_queue_oldest_age_seconds",
                                      "handoff_broker_queue_workers", "handoff_broker_queue_pinned_bytes"};
    static const char *const mbx[] = {"handoff_broker_mailbox_depth", "handoff_broker_mailbox_inflight",
                                      "handoff_broker_mailbox_bytes", "handoff_broker_mailbox_oldest_age_seconds",
                                      NULL, "handoff_broker_mailbox_pinned_bytes"};
    metrics_walk_t *w = arg;
    if (q->mailbox != w->mailbox || w->rc)
        return;
    const char *name = w->mailbox ? mbx[w->field] : svc[w->field];
    const char *label = w->mailbox ? "mailbox" : "queue";
    uint64_t v = w->field == F_DEPTH ? q->depth : w->field == F_INFLIGHT ? q->inflight
                 : w->field == F_BYTES ? q->bytes : w->field == F_PINNED ? q->pinned_bytes : q->workers;
    w->rc = w->field == F_AGE ? hx_metrics_write_f64(w->out, name, label, q->name, (double)q->oldest_age_ms / 1000.0)
                              : hx_metrics_write_u64(w->out, name, label, q->name, v);
}

static int write_queues(broker_t *b, hx_buf_t *out)
{
    static const struct {
        bool mailbox;
        int field;
        const char *name, *help;
        hx_metric_type_t type;
    } fams[] = {
        {false, F_DEPTH, "handoff_broker_queue_depth", "Messages waiting in a service queue (not in flight, not "
                                                       "waiting out a retry backoff).", HX_METRIC_GAUGE},
        {false, F_INFLIGHT, "handoff_broker_queue_inflight", "Messages of a service queue delivered to a worker "
                                                             "and not acked yet.", HX_METRIC_GAUGE},
        {false, F_BYTES, "handoff_broker_queue_bytes", "Bytes of the messages a service queue holds.",
         HX_METRIC_GAUGE},
        {false, F_AGE, "handoff_broker_queue_oldest_age_seconds", "Age of the message at the head of a service "
                                                                  "queue (0 when it is empty).", HX_METRIC_GAUGE},
        {false, F_WORKERS, "handoff_broker_queue_workers", "Workers connected to a service queue.",
         HX_METRIC_GAUGE},
        {false, F_PINNED, "handoff_broker_queue_pinned_bytes", "Log bytes on disk from the segment holding a "
                                                               "service queue's oldest message to the end.",
         HX_METRIC_GAUGE},
        {true, F_DEPTH, "handoff_broker_mailbox_depth", "Messages waiting in a clinic's mailbox.", HX_METRIC_GAUGE},
        {true, F_INFLIGHT, "handoff_broker_mailbox_inflight", "Messages a clinic fetched and has not acked yet.",
         HX_METRIC_GAUGE},
        {true, F_BYTES, "handoff_broker_mailbox_bytes", "Bytes of the messages a clinic's mailbox holds.",
         HX_METRIC_GAUGE},
        {true, F_AGE, "handoff_broker_mailbox_oldest_age_seconds", "Age of the oldest message waiting in a "
                                                                   "clinic's mailbox (0 when it is empty).",
         HX_METRIC_GAUGE},
        {true, F_PINNED, "handoff_broker_mailbox_pinned_bytes", "Log bytes on disk from the segment holding a "
                                                                "mailbox's oldest message to the end.",
         HX_METRIC_GAUGE},
    };
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        metrics_walk_t w = {.out = out, .mailbox = fams[i].mailbox, .field = fams[i].field};
        if (hx_metrics_write_family(out, fams[i].name, fams[i].type, fams[i].help))
            return HX_ENOMEM;
        hx_router_foreach_queue(b->router, metrics_queue, &w);
        if (w.rc)
            return w.rc;
    }
    return 0;
}

static int write_one(hx_buf_t *out, const char *name, hx_metric_type_t type, const char *help, uint64_t v)
{
    return hx_metrics_write_family(out, name, type, help) || hx_metrics_write_u64(out, name, NULL, NULL, v)
               ? HX_ENOMEM : 0;
}

/* Whether the broker can serve (what /readyz says): its store can write; in a cluster, this
 * node serves, or follows a leader it can name to its clients. */
static bool broker_ready(broker_t *b, char *why, size_t cap)
{
    if (b->cluster && !b->router) {
        hx_cluster_status_t cs;
        hx_cluster_status(b->cluster, uv_now(&b->loop), &cs);
        if (cs.leader && cs.leader != cs.self) {
            snprintf(why, cap, "follower of node %llu (%s)", (unsigned long long)cs.leader,
                     hx_cluster_leader(b->cluster));
            return true;
        }
        snprintf(why, cap, cs.leader ? "the leader, not serving yet" : "no leader yet (an election)");
        return false;
    }
    const char *w = "";
    bool ok = b->store->ops->health(b->store, &w) == 0;
    snprintf(why, cap, "%s", w && *w ? w : ok ? "" : "the store cannot write");
    return ok;
}

/* The cluster's figures: this node's role, term, indexes, the leader it knows, leader changes,
 * the replicated state, the lease and the configuration. */
static int write_cluster(broker_t *b, hx_buf_t *out)
{
    hx_cluster_status_t cs;
    hx_cluster_status(b->cluster, uv_now(&b->loop), &cs);
    static const char *const roles[] = {"leader", "follower", "candidate", "unavailable"};
    int rc = hx_metrics_write_family(out, "handoff_broker_raft_role", HX_METRIC_GAUGE,
                                     "1 for this node's Raft role now, 0 for the others.");
    for (size_t i = 0; rc == 0 && i < 4; i++)
        rc = hx_metrics_write_u64(out, "handoff_broker_raft_role", "role", roles[i], !strcmp(cs.role, roles[i]));
    const struct {
        const char *name;
        hx_metric_type_t type;
        const char *help;
        uint64_t v;
    } figures[] = {
        {"handoff_broker_raft_serving", HX_METRIC_GAUGE,
         "1 while this node serves clients (the leader, its barrier applied, its lease held).", cs.serving},
        {"handoff_broker_raft_term", HX_METRIC_GAUGE, "The Raft term this node is in.", cs.term},
        {"handoff_broker_raft_leader", HX_METRIC_GAUGE, "The id of the leader this node knows (0: none).", cs.leader},
        {"handoff_broker_raft_commit_index", HX_METRIC_GAUGE, "The last log index this node knows committed.",
         cs.commit_index},
        {"handoff_broker_raft_applied_index", HX_METRIC_GAUGE, "The last log index applied to this node's state.",
         cs.applied_index},
        {"handoff_broker_raft_last_index", HX_METRIC_GAUGE, "The last index of this node's log (committed or not).",
         cs.last_index},
        {"handoff_broker_raft_leader_changes_total", HX_METRIC_COUNTER,
         "Times this node saw a new leader (itself included).", cs.leader_changes},
        {"handoff_broker_raft_committed_total", HX_METRIC_COUNTER,
         "Entries this node proposed as leader that were committed.", cs.committed},
        {"handoff_broker_raft_snapshots_total", HX_METRIC_COUNTER, "Snapshots of the state this node took.",
         cs.snapshots},
        {"handoff_broker_raft_held_messages", HX_METRIC_GAUGE,
         "Messages in the replicated state (held: waiting, in flight or dead).", cs.held},
        {"handoff_broker_raft_held_bytes", HX_METRIC_GAUGE, "Bytes of the messages in the replicated state.",
         cs.held_bytes},
        {"handoff_broker_raft_log_bytes", HX_METRIC_GAUGE,
         "Bytes of the entries applied since this node's last snapshot: one is taken once they reach the "
         "state's (held bytes and settled ids).",
         cs.log_bytes},
        {"handoff_broker_raft_nodes", HX_METRIC_GAUGE,
         "Nodes in the Raft configuration this node has (voters and others).", cs.nodes},
        {"handoff_broker_raft_voters", HX_METRIC_GAUGE, "Voters in that configuration: a majority of them commits.",
         cs.voters},
        {"handoff_broker_raft_membership_change", HX_METRIC_GAUGE,
         "1 while an operator's membership change runs (on the leader).", cs.changing},
        {"handoff_broker_raft_peers_refused_total", HX_METRIC_COUNTER,
         "Raft connections closed because the other end did not prove the nodes' key.", cs.peers_refused},
    };
    for (size_t i = 0; rc == 0 && i < sizeof figures / sizeof figures[0]; i++)
        rc = write_one(out, figures[i].name, figures[i].type, figures[i].help, figures[i].v);
    if (rc == 0)
        rc = hx_metrics_write_family(out, "handoff_broker_raft_lease_left_seconds", HX_METRIC_GAUGE,
                                     "The serving leader's lease still to run (0 on other nodes).") ||
             hx_metrics_write_f64(out, "handoff_broker_raft_lease_left_seconds", NULL, NULL,
                                  (double)cs.lease_left_ms / 1000.0);
    return rc ? HX_ENOMEM : 0;
}

static int write_metrics(broker_t *b, hx_buf_t *out)
{
    char why_text[600];
    bool ready = broker_ready(b, why_text, sizeof why_text);
    if (b->cluster && write_cluster(b, out) != 0)
        return HX_ENOMEM;
    if (!b->router)
        return write_one(out, "handoff_broker_ready", HX_METRIC_GAUGE,
                         "1 when the broker can write its store (what /readyz says), else 0.", ready) ||
                       hx_metrics_render(b->metrics, out)
                   ? HX_ENOMEM
                   : 0;
    hx_router_stats_t st;
    hx_router_stats(b->router, &st);
    static const struct {
        const char *name, *help;
        size_t offset;
    } totals[] = {
        {"handoff_broker_messages_accepted_total", "Messages accepted (durable, answered \"accepted\").",
         offsetof(hx_router_stats_t, accepted)},
        {"handoff_broker_messages_duplicate_total", "Submitted messages whose id the broker already had "
                                                    "(kept once).", offsetof(hx_router_stats_t, duplicates)},
        {"handoff_broker_messages_delivered_total", "Deliveries to workers and clinic fetches, retries included.",
         offsetof(hx_router_stats_t, delivered)},
        {"handoff_broker_messages_acked_total", "Messages acked and settled (durably).",
         offsetof(hx_router_stats_t, acked)},
        {"handoff_broker_messages_nacked_total", "Messages a worker nacked.", offsetof(hx_router_stats_t, nacked)},
        {"handoff_broker_messages_redelivered_total", "Deliveries after the first of the same message.",
         offsetof(hx_router_stats_t, redelivered)},
        {"handoff_broker_messages_dead_lettered_total", "Messages moved to the dead-letter queue after "
                                                        "max-attempts failures.",
         offsetof(hx_router_stats_t, dead_lettered)},
        {"handoff_broker_peers_expired_total", "Sessions ended because the peer's heartbeats stopped.",
         offsetof(hx_router_stats_t, expired)},
    };
    int rc = write_one(out, "handoff_broker_uptime_seconds", HX_METRIC_GAUGE, "Seconds since the broker started.",
                       st.uptime_ms / 1000) ||
             write_one(out, "handoff_broker_ready", HX_METRIC_GAUGE,
                       "1 when the broker can write its store (what /readyz says), else 0.", ready) ||
             write_queues(b, out) ||
             write_one(out, "handoff_broker_dlq_messages", HX_METRIC_GAUGE, "Messages in the dead-letter queue.",
                       st.dead) ||
             write_one(out, "handoff_broker_delayed_messages", HX_METRIC_GAUGE,
                       "Messages waiting out a retry backoff.", st.delayed) ||
             write_one(out, "handoff_broker_store_bytes", HX_METRIC_GAUGE,
                       "Bytes of the store: log segments on disk (--data), or message bytes in memory.",
                       b->store->ops->bytes(b->store)) ||
             write_one(out, "handoff_broker_held_bytes", HX_METRIC_GAUGE,
                       "Bytes of every message the broker holds, dead letters included: what the log must keep.",
                       st.held_bytes) ||
             write_one(out, "handoff_broker_dlq_pinned_bytes", HX_METRIC_GAUGE,
                       "Log bytes on disk from the segment holding the oldest dead letter to the end.",
                       st.dead_pinned_bytes);
    uint64_t moved = 0, moved_bytes = 0;
    if (b->store->ops->compacted)
        b->store->ops->compacted(b->store, &moved, &moved_bytes);
    if (rc == 0)
        rc = write_one(out, "handoff_broker_compacted_messages_total", HX_METRIC_COUNTER,
                       "Messages compaction wrote again at the log's end so that old segments could go.", moved) ||
             write_one(out, "handoff_broker_compacted_bytes_total", HX_METRIC_COUNTER,
                       "Message bytes compaction wrote again at the log's end.", moved_bytes);
    for (size_t i = 0; rc == 0 && i < sizeof totals / sizeof totals[0]; i++)
        rc = write_one(out, totals[i].name, HX_METRIC_COUNTER, totals[i].help,
                       *(const uint64_t *)((const char *)&st + totals[i].offset));
    if (rc == 0)
        rc = hx_metrics_write_family(out, "handoff_broker_peers", HX_METRIC_GAUGE, "Sessions open now, by role.") ||
             hx_metrics_write_u64(out, "handoff_broker_peers", "role", "clinic", st.clinics) ||
             hx_metrics_write_u64(out, "handoff_broker_peers", "role", "worker", st.workers) ||
             hx_metrics_write_u64(out, "handoff_broker_peers", "role", "admin", st.admins);
    if (rc == 0)
        rc = hx_metrics_write_family(out, "handoff_broker_refused_total", HX_METRIC_COUNTER,
                                     "Requests refused with an ERROR reply, by error code.");
    for (int code = 1; rc == 0 && code < HX_ROUTER_CODES; code++) {
        const char *name = hx_wire_error_text((Handoff__ErrorCode)code);
        if (strcmp(name, "unknown-error") != 0)
            rc = hx_metrics_write_u64(out, "handoff_broker_refused_total", "code", name, st.refused_by_code[code]);
    }
    return rc ? HX_ENOMEM : hx_metrics_render(b->metrics, out);
}

static int http_page(void *arg, hx_http_page_t page, hx_buf_t *out)
{
    broker_t *b = arg;
    if (page == HX_HTTP_METRICS)
        return write_metrics(b, out) == 0 ? 200 : 500;
    char why[600], line[700];
    if (broker_ready(b, why, sizeof why)) {
        int n = snprintf(line, sizeof line, "ready%s%s\n", why[0] ? ": " : "", why);
        return hx_buf_append(out, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : strlen(line)) ? 500 : 200;
    }
    int n = snprintf(line, sizeof line, "not ready: %s\n", why);
    return hx_buf_append(out, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : strlen(line)) ? 500 : 503;
}

static void on_tick(uv_timer_t *t)
{
    broker_t *b = t->data;
    uv_update_time(&b->loop);
    hx_cluster_poll(b->cluster, uv_now(&b->loop));  /* first: a lapsed lease drops the router */
    if (b->router)
        hx_router_tick(b->router, uv_now(&b->loop));
}

/* Once per loop pass, after everything read in it: one group commit (a round of replication
 * in a cluster). */
static void on_flush(uv_prepare_t *h)
{
    broker_t *b = h->data;
    hx_cluster_poll(b->cluster, uv_now(&b->loop));
    if (b->router)
        hx_router_flush(b->router);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    broker_t *b = s->data;
    hx_info("signal %d: saying bye to peers and stopping", signum);
    if (b->router)
        hx_router_goodbye(b->router);
    uv_stop(&b->loop);
}

/* --salvage: every readable record of a damaged log into a new log (hx_store_log_salvage). */
static int run_salvage(const char *data, const char *data_key, uint32_t segment_bytes)
{
    if (!data) {
        fprintf(stderr, "handoff-broker: --salvage needs --data DIR\n");
        return 2;
    }
    uint8_t key[32];
    char err[4400];
    if (data_key && hx_data_key_load(data_key, key, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-broker: --data-key: %s\n", err);
        return 2;
    }
    hx_store_log_config_t lc = {.dir = data, .segment_bytes = segment_bytes, .key = data_key ? key : NULL};
    int rc = hx_store_log_salvage(&lc, stdout, err, sizeof err);
    memset(key, 0, sizeof key);
    if (rc != 0) {
        fprintf(stderr, "handoff-broker: --salvage: %s\n", err);
        return 1;
    }
    return 0;
}

/* --recover-cluster: DATA/raft, a copy of a lost cluster's node, made the log of a cluster of
 * this node alone (hx_cluster_recover). */
static int run_recover(const hx_opt_val_t *v)
{
    if (!v[O_CLUSTER].text || v[O_JOIN].on) {
        fprintf(stderr, "handoff-broker: --recover-cluster needs --cluster, --node-id and --data (and not --join)\n");
        return 2;
    }
    char err[700], dir[4200];
    hx_cluster_config_t cc = {.self = v[O_NODE_ID].u32};
    if (hx_cluster_parse(v[O_CLUSTER].text, &cc, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-broker: --cluster: %s\n", err);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/raft", v[O_DATA].text);
    cc.dir = dir;
    struct stat st;
    if (stat(v[O_DATA].text, &st) != 0) {
        fprintf(stderr, "handoff-broker: --recover-cluster: %s holds no Raft log (%s)\n", dir, strerror(errno));
        return 1;
    }
    int lock = hx_store_lock_dir(v[O_DATA].text, -1, err, sizeof err);
    int rc = lock < 0 ? -1 : hx_cluster_recover(&cc, err, sizeof err);
    if (lock >= 0)
        close(lock);
    if (rc != 0) {
        fprintf(stderr, "handoff-broker: --recover-cluster: %s\n", err);
        return 1;
    }
    const char *raft = "";
    for (size_t i = 0; i < cc.n_nodes; i++)
        if (cc.nodes[i].id == cc.self)
            raft = cc.nodes[i].raft;
    printf("%s: the log of a cluster of node %llu alone (Raft at %s) from now on.\n"
           "Start this node as usual (without --recover-cluster): it leads by itself. Start each other node on "
           "an empty --data with --join, then add it on this one: handoff cluster add ID=RAFT=CLIENT --wait\n",
           dir, (unsigned long long)cc.self, raft);
    return 0;
}

/* --rekey: the whole log sealed anew with --new-data-key (hx_store_log_rekey). */
static int run_rekey(const char *data, const char *data_key, const char *new_key_path, uint32_t segment_bytes)
{
    if (!data || !new_key_path) {
        fprintf(stderr, "handoff-broker: --rekey needs --data DIR and --new-data-key FILE (and --data-key FILE, "
                        "the key the log is sealed with now, unless it is in clear)\n");
        return 2;
    }
    uint8_t key[32], new_key[32];
    char err[4400];
    if (data_key && hx_data_key_load(data_key, key, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-broker: --data-key: %s\n", err);
        return 2;
    }
    if (hx_data_key_load(new_key_path, new_key, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-broker: --new-data-key: %s\n", err);
        memset(key, 0, sizeof key);
        return 2;
    }
    int rc;
    if (hx_cluster_rekey_applies(data)) {   /* a replicated broker's node */
        int lock = hx_store_lock_dir(data, -1, err, sizeof err);
        rc = lock < 0 ? HX_EINVAL : hx_cluster_rekey(data, data_key ? key : NULL, new_key, stdout, err, sizeof err);
        if (lock >= 0)
            close(lock);
    } else {
        hx_store_log_config_t lc = {.dir = data, .segment_bytes = segment_bytes, .key = data_key ? key : NULL};
        rc = hx_store_log_rekey(&lc, new_key, stdout, err, sizeof err);
    }
    memset(key, 0, sizeof key);
    memset(new_key, 0, sizeof new_key);
    if (rc != 0) {
        fprintf(stderr, "handoff-broker: --rekey: %s\n", err);
        return rc == HX_EINVAL ? 2 : 1;
    }
    return 0;
}

static int write_ready_file(const char *path, void *sock)
{
    char endpoint[256];
    size_t len = sizeof endpoint;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &len) != 0)
        return -1;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", endpoint);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

/* The routing policy from FILE, or the built-in table when path is NULL; NULL after saying
 * why on stderr. */
static hx_policy_t *load_policy(const char *path)
{
    char err[400] = "out of memory";
    hx_policy_t *p = path ? hx_policy_load(path, err, sizeof err) : hx_policy_default();
    if (!p)
        fprintf(stderr, "handoff-broker: --policy: %s\n", err);
    return p;
}

/* The CURVE settings: the broker's secret key and the allow-list (without --revoked's keys),
 * or plain TCP on a loopback endpoint for tests. 0, or 2 after saying what is wrong. */
static int check_security(const hx_opt_val_t *v, char server_sec[HX_KEY_Z85 + 1], hx_allow_t **allow_list)
{
    const char *bind = v[O_BIND].text, *curve_secret = v[O_CURVE_SECRET].text, *allow = v[O_ALLOW].text,
               *revoked = v[O_REVOKED].text;
    bool plain = v[O_PLAIN].on;
    *allow_list = NULL;
    if (revoked && !allow) {
        fprintf(stderr, "handoff-broker: --revoked needs --allow (it leaves keys out of the allow-list)\n");
        return 2;
    }
    if (!curve_secret && !allow && !plain) {
        fprintf(stderr, "handoff-broker: CURVE is required: give --curve-secret and --allow (see handoff keygen), "
                        "or --plain-tcp-for-tests on a loopback endpoint\n");
        return 2;
    }
    if (plain && (curve_secret || allow)) {
        fprintf(stderr, "handoff-broker: --plain-tcp-for-tests and CURVE exclude each other\n");
        return 2;
    }
    if (plain && strncmp(bind, "tcp://127.", 10) != 0 && strncmp(bind, "tcp://localhost:", 16) != 0 &&
        strncmp(bind, "ipc://", 6) != 0 && strncmp(bind, "inproc://", 9) != 0) {
        fprintf(stderr, "handoff-broker: --plain-tcp-for-tests: only on 127.0.0.1, localhost or ipc://, not %s\n",
                bind);
        return 2;
    }
    if (plain)
        return 0;
    char err[600], server_pub[HX_KEY_Z85 + 1];
    if (!curve_secret || !allow) {
        fprintf(stderr, "handoff-broker: CURVE needs both --curve-secret and --allow\n");
        return 2;
    }
    if (hx_key_load(curve_secret, server_pub, server_sec, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-broker: --curve-secret: %s\n", err);
        return 2;
    }
    if (!(*allow_list = load_allow(allow, revoked, err, sizeof err))) {
        fprintf(stderr, "handoff-broker: --allow: %s (refusing to start: CURVE without an allow-list "
                        "would admit any key)\n", err);
        return 2;
    }
    return 0;
}

/* The ZAP handler (with CURVE) and then the ROUTER socket, bound. 0 or -1 (said why). */
static int open_socket(broker_t *b, const char *bind, const char *server_sec, uint32_t max_frame)
{
    if (b->allow) {                             /* the ZAP handler first, then the server socket */
        b->zap = zmq_socket(b->zctx, ZMQ_REP);
        int zero0 = 0;
        zmq_setsockopt(b->zap, ZMQ_LINGER, &zero0, sizeof zero0);
        if (zmq_bind(b->zap, "inproc://zeromq.zap.01") != 0) {
            fprintf(stderr, "handoff-broker: cannot start the ZAP handler: %s\n", zmq_strerror(errno));
            return -1;
        }
    }
    b->sock = zmq_socket(b->zctx, ZMQ_ROUTER);
    if (b->allow) {
        int server = 1;
        zmq_setsockopt(b->sock, ZMQ_CURVE_SERVER, &server, sizeof server);
        zmq_setsockopt(b->sock, ZMQ_CURVE_SECRETKEY, server_sec, HX_KEY_Z85);
        zmq_setsockopt(b->sock, ZMQ_ZAP_DOMAIN, "handoff", 7);
    }
    int one = 1, zero = 0, hwm = 100000;
    /* Frames up to max_frame + HX_FRAME_GRACE are read and answered ERR_TOO_LARGE; libzmq
     * drops a peer beyond that (its limit counts CURVE's box too, hence the extra 256). */
    int64_t maxmsg = (int64_t)max_frame + HX_FRAME_GRACE + 256;
    zmq_setsockopt(b->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(b->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_bind(b->sock, bind) != 0) {
        fprintf(stderr, "handoff-broker: --bind %s: %s\n", bind, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* Whether data holds a single broker's log segments (20 digits, ".log") and raft_dir does not
 * exist yet: a cluster started there would leave what that log holds behind. */
static bool single_log_there(const char *data, const char *raft_dir)
{
    struct stat st;
    if (stat(raft_dir, &st) == 0)
        return false;
    DIR *d = opendir(data);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));)
        found = strlen(e->d_name) == 24 && strspn(e->d_name, "0123456789") == 20 && !strcmp(e->d_name + 20, ".log");
    if (d)
        closedir(d);
    return found;
}

/* The store keeps the audit chain's head (and checks the file against it at recovery). */
static void anchor_audit(broker_t *b)
{
    b->store->anchor = hx_audit_anchor_hook;
    b->store->on_anchor = hx_audit_anchored_hook;
    b->store->anchor_arg = b->audit;
}

/* A node of a replicated broker starts serving (its router made from the committed state)
 * or stops at once (its router, and what it had not committed, dropped: its peers are told
 * BYE and find the leader). */
static void on_serving(void *arg, bool serving)
{
    broker_t *b = arg;
    if (serving && !b->router) {
        hx_router_config_t cfg = b->rcfg;
        cfg.store = b->store = hx_cluster_store(b->cluster);
        if (b->store && b->audit_anchored)     /* the cluster vouches for this node's audit head */
            anchor_audit(b);
        b->router = b->store ? hx_router_new(&cfg) : NULL;
        if (!b->router || hx_router_recover(b->router) != 0) {
            hx_error("cluster: cannot build the router from the committed state (out of memory)");
            hx_router_destroy(&b->router);
            hx_store_destroy(&b->store);
        } else if (hx_audit_anchor_error(b->audit)) {
            /* the head the cluster recorded for this node's audit log is not in the file:
             * appending would hide the cut. Serve nothing; stop (another node leads) */
            hx_error("cluster: --audit: %s; stopping", hx_audit_anchor_error(b->audit));
            hx_router_destroy(&b->router);
            hx_store_destroy(&b->store);
            b->failed = true;
            uv_stop(&b->loop);
        }
    } else if (!serving && b->router) {
        hx_router_goodbye(b->router);
        hx_router_destroy(&b->router);
        hx_store_destroy(&b->store);
    }
}

/* The router's hook for the cluster.* admin ops (hx_cluster_admin). */
static int cluster_admin(void *arg, const char *op, const char *text, hx_buf_t *out, char *why, size_t cap)
{
    broker_t *b = arg;
    return hx_cluster_admin(b->cluster, op, text, out, why, cap);
}

/* The key a cluster's nodes prove to each other on Raft's port (hx_cluster_config_t.peer_key),
 * derived from a secret every node has: the broker's CURVE secret, else the data key. */
static void derive_raft_peer_key(broker_t *b, const uint8_t secret[32], const char *from)
{
    static const char label[] = "handoff raft peers 1";
    crypto_generichash(b->raft_peer_key, sizeof b->raft_peer_key, (const unsigned char *)label, sizeof label - 1,
                       secret, 32);
    b->raft_peer_key_from = from;
}

/* The store (the durable log with --data, else memory; with --cluster, the replicated one),
 * the audit log, the router and its metrics, recovered from the log. 0 or -1 (said why). */
static int open_router(broker_t *b, hx_router_config_t *cfg, const hx_opt_val_t *v)
{
    const char *data = v[O_DATA].text, *data_key = v[O_DATA_KEY].text, *audit = v[O_AUDIT].text;
    hx_audit_rotation_t rot = {.max_bytes = v[O_AUDIT_MAX_BYTES].u64,
                               .daily = strcmp(v[O_AUDIT_ROTATE].text, "daily") == 0,
                               .keep_days = v[O_AUDIT_KEEP_DAYS].u32};
    uint8_t key[32];
    char key_err[600] = "needs --data";
    if (data_key && (!data || hx_data_key_load(data_key, key, key_err, sizeof key_err) != 0)) {
        fprintf(stderr, "handoff-broker: --data-key: %s\n", key_err);
        return -1;
    }
    if (v[O_CLUSTER].text) {
        /* a node of a replicated broker: Raft's log in DATA/raft is the store; a router is made
         * from the committed state whenever this node starts serving (on_serving) */
        char err[700], dir[4200];
        hx_cluster_config_t cc = {.loop = &b->loop, .self = v[O_NODE_ID].u32, .raft_bind = v[O_RAFT_BIND].text,
                                  .election_ms = v[O_RAFT_ELECTION].u32, .heartbeat_ms = v[O_RAFT_HEARTBEAT].u32,
                                  .snapshot_entries = v[O_RAFT_SNAPSHOT].u32, .segment_mb = v[O_RAFT_SEGMENT].u32,
                                  .dedup_window = cfg->dedup_window,
                                  .key = data_key ? key : NULL, .on_serving = on_serving, .arg = b};
        /* Raft's connections: used only between nodes that prove a key every node has. Derived
         * from the broker's CURVE secret (the nodes share it), else from the data key */
        if (!b->raft_peer_key_from && data_key)
            derive_raft_peer_key(b, key, "--data-key");
        cc.peer_key = b->raft_peer_key_from ? b->raft_peer_key : NULL;
        if (b->raft_peer_key_from)
            hx_info("cluster: Raft's connections are used only between nodes that prove a key derived from %s",
                    b->raft_peer_key_from);
        else
            hx_warn("cluster: Raft's connections are not authenticated (plain TCP for tests, no --data-key): any "
                    "process that reaches the Raft port can speak Raft");
        if (hx_cluster_parse(v[O_CLUSTER].text, &cc, err, sizeof err) != 0) {
            fprintf(stderr, "handoff-broker: --cluster: %s\n", err);
            return -1;
        }
        snprintf(dir, sizeof dir, "%s/raft", data);
        if (mkdir(data, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "handoff-broker: --data %s: %s\n", data, strerror(errno));
            return -1;
        }
        if ((b->data_lock = hx_store_lock_dir(data, -1, err, sizeof err)) < 0) {
            fprintf(stderr, "handoff-broker: --data: %s\n", err);
            return -1;
        }
        if (hx_cluster_rekey_leftover(data, err, sizeof err) != 0) {
            fprintf(stderr, "handoff-broker: --cluster: %s\n", err);
            return -1;
        }
        if (single_log_there(data, dir)) {
            fprintf(stderr, "handoff-broker: --cluster: %s holds a single broker's log (its *.log segments) and no "
                            "Raft log yet: a cluster does not take it over. Let the single broker deliver what it "
                            "holds first (handoff top shows none waiting), then move its segments away, or give the "
                            "node another --data\n", data);
            return -1;
        }
        cc.dir = dir;
        cc.join = v[O_JOIN].on;
        b->cluster = hx_cluster_start(&cc, err, sizeof err);
        memset(key, 0, sizeof key);
        if (!b->cluster) {
            fprintf(stderr, "handoff-broker: --cluster: %s\n", err);
            return -1;
        }
    } else if (data) {
        char err[512];
        hx_store_log_config_t lc = {.dir = data, .segment_bytes = v[O_SEGMENT].u32, .loop = &b->loop,
                                    .faults_path = v[O_FAULTS].text, .key = data_key ? key : NULL};
        b->store = hx_store_log_new(&lc, err, sizeof err);
        memset(key, 0, sizeof key);
        if (!b->store) {
            fprintf(stderr, "handoff-broker: --data: %s\n", err);
            return -1;
        }
    } else {
        b->store = hx_store_memory_new();
    }
    cfg->send = send_frame;
    cfg->send_arg = b;
    if (audit) {
        char err[600];
        if (!(b->audit = hx_audit_open_rotating(audit, &rot, err, sizeof err))) {
            fprintf(stderr, "handoff-broker: --audit: %s\n", err);
            return -1;
        }
        cfg->audit = audit_event;
        cfg->audit_arg = b;
        if (data && (b->store || b->cluster)) {    /* the log vouches for the chain's head */
            char anchor[4200];
            snprintf(anchor, sizeof anchor, "%s/%s", data, HX_AUDIT_ANCHOR_FILE);
            if (hx_audit_set_anchor_file(b->audit, anchor) != 0) {
                fprintf(stderr, "handoff-broker: out of memory\n");
                return -1;
            }
            if (b->store)                       /* (a cluster's: on_serving) */
                anchor_audit(b);
            b->audit_anchored = true;
        }
    }
    if (b->allow) {
        cfg->principal_allowed = principal_allowed;
        cfg->principal_arg = b;
    }
    if (b->cluster) {
        cfg->cluster_admin = cluster_admin;
        cfg->cluster_arg = b;
    }
    cfg->store = b->store;
    b->rcfg = *cfg;
    b->router = b->store ? hx_router_new(cfg) : NULL;
    b->metrics = hx_metrics_new();
    b->auth_refused = hx_metrics_counter(b->metrics, "handoff_broker_auth_refused_total",
                                         "Connections the ZAP handler refused (key not allowed, or not CURVE).",
                                         NULL, NULL);
    b->fsync = hx_metrics_histogram(b->metrics, "handoff_broker_fsync_seconds",
                                    "Time to write and fdatasync one group commit of the log.", NULL, NULL,
                                    fsync_bounds_ns, sizeof fsync_bounds_ns / sizeof fsync_bounds_ns[0], 1e9);
    if ((!b->cluster && (!b->store || !b->router)) || !b->metrics || !b->auth_refused || !b->fsync) {
        fprintf(stderr, "handoff-broker: out of memory\n");
        return -1;
    }
    if (b->cluster)
        return 0;
    if (hx_router_recover(b->router) != 0) {
        const char *why = "";
        b->store->ops->health(b->store, &why);
        fprintf(stderr, "handoff-broker: cannot recover from the log in %s: %s\n", data, why);
        return -1;
    }
    if (hx_audit_anchor_error(b->audit)) {      /* appending would hide the cut */
        fprintf(stderr, "handoff-broker: --audit: %s\n", hx_audit_anchor_error(b->audit));
        return -1;
    }
    return 0;
}

/* The loop's handles: the sockets watched, the tick, the flush, signals, HTTP, and the ready
 * file last. 0, or -1 before any handle exists, -2 after (said why). */
static int start_loop(broker_t *b, uint32_t heartbeat_ms, const hx_opt_val_t *v)
{
    if (b->zap && hx_zuv_init(&b->zap_zuv, &b->loop, b->zap, on_zap, b) != 0) {
        fprintf(stderr, "handoff-broker: cannot watch the ZAP socket\n");
        return -1;
    }
    b->zap_watched = b->zap != NULL;
    if (hx_zuv_init(&b->zuv, &b->loop, b->sock, on_message, b) != 0) {
        fprintf(stderr, "handoff-broker: cannot watch the socket\n");
        return -2;
    }
    b->sock_watched = true;
    uv_timer_init(&b->loop, &b->tick);
    b->tick.data = b;
    uint64_t period = heartbeat_ms / 4 < 50 ? heartbeat_ms / 4 : 50;   /* also the backoff's grain */
    uv_timer_start(&b->tick, on_tick, period ? period : 1, period ? period : 1);
    uv_prepare_init(&b->loop, &b->flush);
    b->flush.data = b;
    uv_prepare_start(&b->flush, on_flush);
    uv_signal_init(&b->loop, &b->sigint);
    uv_signal_init(&b->loop, &b->sigterm);
    b->sigint.data = b->sigterm.data = b;
    uv_signal_start(&b->sigint, on_signal, SIGINT);
    uv_signal_start(&b->sigterm, on_signal, SIGTERM);
    uv_signal_init(&b->loop, &b->sighup);
    b->sighup.data = b;
    uv_signal_start(&b->sighup, on_hup, SIGHUP);
    if (b->store) {
        b->store->on_sync = on_sync;
        b->store->sync_arg = b;
    }
    const char *http = v[O_HTTP].text, *ready = v[O_READY].text;
    if (http) {
        char err[600];
        hx_http_opts_t ho = {.listen = http, .loop = &b->loop, .page = http_page, .arg = b};
        if (!(b->http = hx_http_start(&ho, err, sizeof err))) {
            fprintf(stderr, "handoff-broker: --http %s: %s\n", http, err);
            return -2;
        }
        hx_info("metrics and health on http://%s (port %d): /metrics /healthz /readyz", http, hx_http_port(b->http));
    }
    if (ready && write_ready_file(ready, b->sock) != 0) {
        fprintf(stderr, "handoff-broker: --ready-file %s: %s\n", ready, strerror(errno));
        return -2;
    }
    return 0;
}

/* Closes whatever was opened, in reverse order. */
static void broker_close(broker_t *b)
{
    hx_http_stop(&b->http);                     /* before the loop's handles close */
    hx_cluster_stop(&b->cluster);               /* its router first, then Raft's own handles */
    if (b->data_lock >= 0)
        close(b->data_lock);                    /* (after Raft's last write) */
    sodium_memzero(b->raft_peer_key, sizeof b->raft_peer_key);
    hx_buf_free(&b->refusal);
    if (b->sock_watched)
        hx_zuv_close(&b->zuv, NULL);
    if (b->zap_watched)
        hx_zuv_close(&b->zap_zuv, NULL);
    uv_walk(&b->loop, close_walk, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    hx_router_destroy(&b->router);
    hx_metrics_destroy(&b->metrics);
    hx_store_destroy(&b->store);
    hx_audit_close(&b->audit);
    if (b->sock)
        zmq_close(b->sock);
    if (b->zap)
        zmq_close(b->zap);
    hx_allow_destroy(&b->allow);
    hx_allow_destroy(&b->retired);
    hx_policy_destroy(&b->policy);
    zmq_ctx_term(b->zctx);
    uv_loop_close(&b->loop);
}

#ifdef HX_JEMALLOC
/* Read by jemalloc when it starts (before main): its heap on 4 KiB pages, never transparent
 * huge pages, whatever /sys/kernel/mm/transparent_hugepage/enabled says. A replicated node's
 * heap grows with every accepted body; on a virtual machine a huge page is cleared from memory
 * the host took back (the kernel's clear_page was 31 % of a cluster submit run's samples), and
 * the replicated rate was 21,000-22,000 msg/s on huge pages against 34,000-37,000 on 4 KiB
 * pages, though the latter took 250,000 page faults to the former's 15,000 (docs/OPERATIONS.md,
 * "Memory pages"). MALLOC_CONF in the environment still overrides it, e.g. MALLOC_CONF=thp:always. */
const char *malloc_conf = "thp:never";
#endif

int main(int argc, char **argv)
{
    hx_opt_val_t v[O_COUNT];
    int prc = hx_opt_parse("handoff-broker", options, O_COUNT, argc, argv, usage_head, usage_tail, v);
    if (prc)
        return prc == 1 ? 0 : 2;
    hx_log_level_t lvl;
    if (hx_log_level_parse(v[O_LOG_LEVEL].text, &lvl)) {
        fprintf(stderr, "handoff-broker: --log-level: must be debug, info, warn or error\n");
        return 2;
    }
    hx_log_format_t fmt;
    if (hx_log_format_parse(v[O_LOG_FORMAT].text, &fmt)) {
        fprintf(stderr, "handoff-broker: --log-format: must be text or json, got '%s'\n", v[O_LOG_FORMAT].text);
        return 2;
    }
    if (strcmp(v[O_AUDIT_ROTATE].text, "size") != 0 && strcmp(v[O_AUDIT_ROTATE].text, "daily") != 0) {
        fprintf(stderr, "handoff-broker: --audit-rotate: must be size or daily, got '%s'\n",
                v[O_AUDIT_ROTATE].text);
        return 2;
    }
    hx_log_init("broker", lvl);                 /* text lines keep the short tag operators know */
    hx_log_set_format(fmt, "handoff-broker");
    if (v[O_HTTP].text && hx_http_parse_listen("handoff-broker", "--http", v[O_HTTP].text))
        return 2;
    hx_router_config_t cfg = {
        .heartbeat_ms = v[O_HEARTBEAT].u32, .liveness = v[O_LIVENESS].u32, .max_frame = v[O_MAX_FRAME].u32,
        .max_queue = v[O_MAX_QUEUE].u32, .dedup_window = v[O_DEDUP].u32, .max_attempts = v[O_ATTEMPTS].u32,
        .backoff_ms = v[O_BACKOFF].u32, .backoff_max_ms = v[O_BACKOFF_MAX].u32,
        .ack_timeout_ms = v[O_ACK_TIMEOUT].u32, .sender_share = v[O_SHARE].u32,
        .max_queue_bytes = v[O_MAX_QUEUE_BYTES].u32};
    hx_policy_t *routing = load_policy(v[O_POLICY].text);
    if (!routing)
        return 2;
    if (v[O_PRINT_POLICY].on) {
        char *text = hx_policy_json(routing);
        if (text)
            puts(text);
        free(text);
        hx_policy_destroy(&routing);
        return text ? 0 : 1;
    }
    if (v[O_SALVAGE].on) {
        hx_policy_destroy(&routing);
        return run_salvage(v[O_DATA].text, v[O_DATA_KEY].text, v[O_SEGMENT].u32);
    }
    if (v[O_REKEY].on) {
        hx_policy_destroy(&routing);
        return run_rekey(v[O_DATA].text, v[O_DATA_KEY].text, v[O_NEW_DATA_KEY].text, v[O_SEGMENT].u32);
    }
    if (v[O_NEW_DATA_KEY].text) {
        fprintf(stderr, "handoff-broker: --new-data-key goes with --rekey\n");
        hx_policy_destroy(&routing);
        return 2;
    }
    if (v[O_JOIN].on && !v[O_CLUSTER].text) {
        fprintf(stderr, "handoff-broker: --join goes with --cluster (a new node joining a replicated broker)\n");
        hx_policy_destroy(&routing);
        return 2;
    }
    /* a node's settings on a single broker would do nothing: on the command line the operator
     * meant a node (refused); from the environment (an env file shared with nodes) said once */
    static const int node_only[] = {O_NODE_ID, O_RAFT_BIND, O_RAFT_ELECTION, O_RAFT_HEARTBEAT, O_RAFT_SNAPSHOT,
                                    O_RAFT_SEGMENT};
    for (size_t i = 0; !v[O_CLUSTER].text && i < sizeof node_only / sizeof *node_only; i++) {
        const hx_opt_t *o = &options[node_only[i]];
        const hx_opt_val_t *ov = &v[node_only[i]];
        if (ov->given && ov->from_env) {
            hx_warn("%s is set, but without --cluster (%s) this is a single broker: it is ignored", o->env,
                    options[O_CLUSTER].env);
        } else if (ov->given) {
            fprintf(stderr, "handoff-broker: --%s goes with --cluster (a node of a replicated broker); without it "
                            "this is a single broker\n", o->name);
            hx_policy_destroy(&routing);
            return 2;
        }
    }
    if (v[O_CLUSTER].text && (!v[O_NODE_ID].u32 || !v[O_DATA].text)) {
        fprintf(stderr, "handoff-broker: --cluster needs --node-id (this node's id in it) and --data (where its "
                        "Raft log goes)\n");
        hx_policy_destroy(&routing);
        return 2;
    }
    if (v[O_RECOVER].on) {
        hx_policy_destroy(&routing);
        return run_recover(v);
    }
    char server_sec[HX_KEY_Z85 + 1] = "";
    hx_allow_t *allow_list = NULL;
    int rc = check_security(v, server_sec, &allow_list);
    if (rc) {
        hx_policy_destroy(&routing);
        return rc;
    }

    /* a peer's socket closed under a write (Raft's TCP transport to a node that died) is an
     * error to handle, not the end of the process */
    signal(SIGPIPE, SIG_IGN);
    broker_t b;
    memset(&b, 0, sizeof b);
    b.data_lock = -1;
    b.policy = routing;
    cfg.policy = b.policy;
    uv_loop_init(&b.loop);
    b.zctx = zmq_ctx_new();
    uint8_t raw_sec[32];
    if (server_sec[0] && zmq_z85_decode(raw_sec, server_sec)) {
        derive_raft_peer_key(&b, raw_sec, "--curve-secret");
        sodium_memzero(raw_sec, sizeof raw_sec);
    }
    b.allow = allow_list;
    b.allow_path = v[O_ALLOW].text;
    b.revoked_path = v[O_REVOKED].text;
    rc = 1;
    if (open_socket(&b, v[O_BIND].text, server_sec, cfg.max_frame) == 0 && open_router(&b, &cfg, v) == 0 &&
        start_loop(&b, cfg.heartbeat_ms, v) == 0) {
        hx_info("listening on %s (heartbeat %u ms x %u, max frame %u bytes, %s, %s)", v[O_BIND].text,
                cfg.heartbeat_ms, cfg.liveness, cfg.max_frame,
                b.cluster                ? "replicated (Raft): serving only while the leader"
                : !v[O_DATA].text        ? "in memory"
                : v[O_DATA_KEY].text     ? "durable log, bodies sealed with --data-key"
                                         : "durable log, bodies in clear",
                b.zap ? "CURVE with an allow-list" : "plain TCP without authentication");
        uv_run(&b.loop, UV_RUN_DEFAULT);
        rc = b.failed ? 1 : 0;
    }
    memset(server_sec, 0, sizeof server_sec);
    broker_close(&b);
    if (rc == 0)
        hx_info("stopped");
    return rc;
}
