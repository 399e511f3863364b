/* hx_cluster — the broker replicated on Raft (the C library Debian packages as libraft-dev, on
 * the broker's own libuv loop): 3 nodes (5 allowed) that keep serving and keep every
 * acknowledged message when any one of them dies, stalls or is cut off.
 *
 * The design is Raft's (Ongaro and Ousterhout, "In Search of an Understandable Consensus
 * Algorithm", 2014; Ongaro's thesis, §6.4 for the leader's lease): what the broker's store
 * did (the messages accepted, settled, dead-lettered, revived; their failed attempts; the
 * dedup window) is a replicated state machine. Every transaction the router closes in one
 * loop pass becomes one log entry (the broker's group commit, now a round of replication);
 * "accepted" is answered once that entry is committed (on the disks of a majority) and
 * applied. Every node applies the same committed entries to the same state: the messages
 * held, each with its body, failures and dead-letter reason, in the order accepted, and the
 * dedup window.
 *
 * Only the leader serves. It builds its router from the committed state (as the single-node
 * broker rebuilds its router from the log at start) once a barrier of its own term has been
 * applied (so every id committed before is known to the dedup window), and only while its
 * lease holds: an entry it proposed at time T and saw committed means a majority heard from
 * it after T, so no other leader can be elected before T plus the election timeout; it
 * renews the lease with a barrier each heartbeat when it has nothing else to commit. When it
 * loses the leadership or its lease, its router is dropped at once (what it had not
 * committed goes with it; its clients hear ERR_NOT_LEADER and resend to the new leader,
 * where the dedup window makes that exactly once). A deposed leader can never acknowledge
 * again: an answer is sent only from the commit of an entry of the term it leads, and its
 * log's uncommitted tail is replaced by the new leader's (Raft's own log matching).
 *
 * The other nodes answer every frame with ERR_NOT_LEADER naming the leader's client endpoint.
 * Snapshots carry the whole state (the dedup window, then every held message), so a node
 * that lagged or lost its disk catches up from the others. Single-node brokers never link
 * any of this into their path: the broker builds a cluster only with --cluster. */
#ifndef HX_CLUSTER_H
#define HX_CLUSTER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hx_store.h"
#include "hx_wire.h"

#define HX_CLUSTER_MAX 7
#define HX_CLUSTER_SEGMENT_MB 64       /* the default (libraft's own is 8) */
#define HX_CLUSTER_SEGMENT_MIN_MB 8
#define HX_CLUSTER_SEGMENT_MAX_MB 1024
#define HX_CLUSTER_ADDR_MAX 255

typedef struct hx_cluster hx_cluster_t;

typedef struct {
    uint64_t id;                            /* 1 and up, unique in the cluster */
    char raft[HX_CLUSTER_ADDR_MAX + 1];     /* HOST:PORT the nodes reach each other at */
    char client[HX_CLUSTER_ADDR_MAX + 1];   /* the endpoint clients connect to: tcp://HOST:PORT */
} hx_cluster_node_t;

typedef struct {
    void *loop;                 /* the broker's uv_loop_t */
    const char *dir;            /* where Raft keeps its log and snapshots (created if missing) */
    uint64_t self;              /* this node's id: one of nodes[] */
    hx_cluster_node_t nodes[HX_CLUSTER_MAX];
    size_t n_nodes;
    const char *raft_bind;      /* NULL: listen on nodes[self].raft; else HOST:PORT to listen on */
    bool join;                  /* a new node joining a running cluster: an empty directory is not
                                   bootstrapped; it waits to be added (cluster.add on the leader) */
    uint32_t election_ms;       /* default 1000 */
    uint32_t heartbeat_ms;      /* default 100 */
    uint32_t snapshot_entries;  /* a snapshot after this many entries; default 1024 */
    uint32_t segment_mb;        /* the Raft log's segment files, MiB (HX_CLUSTER_SEGMENT_MIN_MB..
                                   HX_CLUSTER_SEGMENT_MAX_MB); 0: HX_CLUSTER_SEGMENT_MB */
    uint32_t dedup_window;      /* the router's: ids kept in the replicated window */
    const uint8_t *key;         /* NULL, or 32 bytes (--data-key): entries and snapshots are sealed
                                   with it (XSalsa20-Poly1305) on disk and between the nodes */
    const uint8_t *peer_key;    /* NULL, or 32 bytes every node has (derived from the broker's CURVE
                                   secret): a Raft connection is used only once both ends proved
                                   they hold it (a challenge and response each way) */
    /* Told on the loop when this node starts serving (true: build a router on
     * hx_cluster_store) or must stop at once (false: drop the router and its store). */
    void (*on_serving)(void *arg, bool serving);
    void *arg;
} hx_cluster_config_t;

/* Parses --cluster "ID=RAFTIP:PORT=tcp://HOST:PORT,..." into cfg->nodes. 0, or -1 with why
 * naming the element. */
int hx_cluster_parse(const char *spec, hx_cluster_config_t *cfg, char *why, size_t cap);
/* One element of it, "ID=RAFTIP:PORT=tcp://HOST:PORT", into n. 0, or -1 with why. */
int hx_cluster_parse_node(const char *text, hx_cluster_node_t *n, char *why, size_t cap);

/* Starts this node: its Raft log loaded (or, in an empty directory, the configuration of
 * cfg->nodes written as its first entry), its transport listening. NULL with why. */
hx_cluster_t *hx_cluster_start(const hx_cluster_config_t *cfg, char *err, size_t cap);
/* Stops Raft (running the loop until it has closed its handles) and frees everything. */
void hx_cluster_stop(hx_cluster_t **self_p);

/* Once per loop pass and on the broker's tick: follows Raft's role, the barrier and the
 * lease, and calls on_serving when that changes. now_ms: monotonic. */
void hx_cluster_poll(hx_cluster_t *c, uint64_t now_ms);
bool hx_cluster_serving(const hx_cluster_t *c);

/* A store for the router this node serves with: its recover replays the committed state; its
 * transactions are proposed as entries at each flush and committed by the cluster. One at a
 * time; destroying it detaches it (what it proposed and is not committed yet is answered
 * no further). */
hx_store_t *hx_cluster_store(hx_cluster_t *c);

/* The answer of a node that does not serve to one frame: an ERROR ERR_NOT_LEADER with the
 * leader's client endpoint, correlated with the frame's id when it has one, into out. 0, or
 * HX_ENOMEM. */
int hx_cluster_refusal(const hx_cluster_t *c, const uint8_t *frame, size_t len, hx_buf_t *out);
/* The leader's client endpoint ("" when none is known). */
const char *hx_cluster_leader(const hx_cluster_t *c);

typedef struct {
    const char *role;           /* "leader", "follower", "candidate", "unavailable" */
    bool serving;
    uint64_t self, leader;      /* leader 0: none known */
    uint64_t term, commit_index, applied_index, last_index;
    uint64_t leader_changes;    /* times this node became leader or saw another one */
    uint64_t held, held_bytes, dedup;   /* the replicated state */
    uint64_t snapshots;         /* taken by this node */
    uint64_t log_bytes;         /* of the entries applied since this node's last snapshot */
    uint64_t committed;         /* entries of this node's proposals committed */
    uint64_t lease_left_ms;     /* the leader's lease still to run */
    uint64_t nodes, voters;     /* in the Raft configuration this node has */
    bool changing;              /* an operator's membership change is in progress (on the leader) */
    uint64_t peers_refused;     /* Raft connections closed: the other end did not prove the key */
} hx_cluster_status_t;

void hx_cluster_status(const hx_cluster_t *c, uint64_t now_ms, hx_cluster_status_t *out);
/* An operator's membership request (the admin ops, on the serving leader; docs/PROTOCOL.md):
 *   cluster.status               this node's view: the nodes (id, Raft address, client
 *                                endpoint, role), the leader, the term, the change in progress
 *                                and how the last one ended;
 *   cluster.add ID=RAFT=CLIENT   a node joins: its endpoints recorded in the replicated state
 *                                (every node can then name it to clients), added, caught up,
 *                                made a voter;
 *   cluster.remove ID            a node leaves the configuration (then its endpoints are
 *                                forgotten); the leader may remove itself, and steps down;
 *   cluster.transfer ID          the leadership moves to that voter.
 * One change at a time: a change begun returns at once with the status JSON in out (NUL
 * terminated); cluster.status tells when it is done. HX_EINVAL: arg is wrong (why names it);
 * HX_EREFUSED: not now (another change is in progress, or this node is not the serving leader). */
int hx_cluster_admin(hx_cluster_t *c, const char *op, const char *arg, hx_buf_t *out, char *why, size_t cap);

/* Every node of a cluster lost but a copy of one node's directory (cfg->dir, Raft's): the copy
 * made the log of a new cluster of this node alone (libraft's raft_recover appends a
 * configuration of cfg->self at its --cluster address), so that, started as usual, it leads by
 * itself; the others join it on empty directories (--join, cluster.add). Nodes started on empty
 * directories without --join would bootstrap a configuration of their own and, two of three,
 * could elect one of themselves in a term the copy used already. Run with the node stopped,
 * once. 0, or HX_EINVAL (cfg->self not a node; no log in cfg->dir), HX_EFAILED (err says why). */
int hx_cluster_recover(const hx_cluster_config_t *cfg, char *err, size_t cap);

/* A stopped node's Raft log (data/raft) sealed with new_key (hx_cluster_rekey.c): the whole
 * log written again beside it (data/raft.rekey) with libraft's own I/O, with the same term,
 * vote, snapshot (index, term, configuration) and entries (index, term, type), every entry of
 * the broker's and the snapshot opened with old_key (NULL: the log is in clear) and sealed
 * with new_key; read back, it must open with new_key to the same bytes, or nothing changes.
 * Only then is it put in place (data/raft.rekey.done marks the copy complete) and the old
 * log removed. Entries at or below the snapshot's index are left out (the snapshot holds
 * them). A run that was cut short is finished (or started over) by the same command. Every
 * node of the cluster must be rekeyed, and all start with the new key. The caller holds the
 * data directory's lock. What it did goes to out (a directory with no log has nothing to
 * rekey: 0). 0, or HX_EINVAL (the same key; sealed and old_key NULL: why says so), HX_EFAILED
 * (old_key does not open it), HX_EIO. */
int hx_cluster_rekey(const char *data, const uint8_t *old_key, const uint8_t new_key[32], FILE *out, char *err,
                     size_t cap);
/* Whether data is a replicated broker's node (its Raft log data/raft, or the copy a rekey cut
 * short left), which hx_cluster_rekey rekeys, rather than a single broker's log. */
bool hx_cluster_rekey_applies(const char *data);
/* Before a node starts on data: HX_EFAILED with why when a rekey of its log was cut short
 * (run --rekey again); the old log a finished rekey could not remove is removed. */
int hx_cluster_rekey_leftover(const char *data, char *why, size_t cap);

#endif
