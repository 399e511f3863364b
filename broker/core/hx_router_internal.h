/* hx_router_internal — what the router's files share: the entry, lane, origin, queue, peer
 * and router structures (hx_router.c describes the states), and the functions one file
 * defines for another. Private to hx_router*.c; nothing outside the router includes it. */
#ifndef HX_ROUTER_INTERNAL_H
#define HX_ROUTER_INTERNAL_H
#include "hx_idmap.h"
#include "hx_pool.h"
#include "hx_policy.h"
#include "hx_router.h"
#include "hx_log.h"
#include "hx_wire.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>
#include <utlist.h>


typedef struct entry entry_t;
typedef struct queue queue_t;
typedef struct peer peer_t;
typedef struct lane lane_t;
typedef struct origin origin_t;

#define PRIOS 4                 /* Handoff__Priority: routine, urgent, asap, stat */

typedef enum { E_PENDING, E_WAITING, E_INFLIGHT, E_DELAYED, E_SETTLING, E_DEAD } estate_t;

struct entry {                  /* 88 bytes, from r->entry_pool (hx_pool: no malloc header) */
    uint8_t id[HX_ID_LEN];
    uint64_t handle;            /* in the store */
    lane_t *lane;               /* its origin's lane of its queue (lane->queue: the queue) */
    peer_t *holder;             /* INFLIGHT only */
    union {                     /* one per state: a queued message costs 16 bytes less */
        uint64_t delivered_at;  /* INFLIGHT: when (monotonic ms) */
        uint64_t due;           /* DELAYED: when it may go again */
        uint64_t dead_at;       /* DEAD, and SETTLING out of DEAD: Unix ms */
    };
    char *reason;               /* DEAD: the last error */
    entry_t *prev, *next;       /* in the list of its state */
    uint32_t size;              /* bytes of the stored message */
    uint32_t accepted_s;        /* Unix seconds when the broker accepted it (the oldest-age gauge) */
    uint16_t attempt;           /* deliveries so far (stops at 65535) */
    uint16_t failures;          /* deliveries that failed (at most --max-attempts, <= 1000) */
    uint8_t state;              /* estate_t */
    uint8_t prio;               /* Handoff__DeliveryPriority */
};

/* A count from the store (u32) in an entry's 16-bit field: it stops at 65535. */
static inline uint16_t rt_count16(uint32_t v)
{
    return v < UINT16_MAX ? (uint16_t)v : UINT16_MAX;
}

/* A request waiting for its store transaction to become durable. */
typedef struct action {
    uint64_t seq;
    uint8_t rid[256];
    size_t rid_len;             /* 0: nobody to answer */
    uint8_t corr[HX_ID_LEN];
    size_t corr_len;
    Handoff__Kind reply;
    entry_t **added;            /* PENDING: enqueue on success, forget on failure */
    size_t n_added;
    entry_t **settled;          /* SETTLING: free on success, back to the queue on failure */
    size_t n_settled;
    struct action *next;
} action_t;

/* Whom messages are for ("clinic:<id>", or the sender when it is not working for a
 * clinic): the account of the fair share, over every service queue. */
struct origin {
    char name[HX_NAME_MAX + 16];
    size_t n_held;              /* messages held in service queues (not dead) */
    uint64_t bytes;
    size_t pending;             /* scratch: about to be added by one request */
    uint64_t pending_bytes;
    size_t lanes;               /* lanes of this origin: freed with the last */
    UT_hash_handle hh;
};

/* One origin's waiting messages in one queue, a list per priority class. */
struct lane {
    origin_t *origin;           /* NULL: a mailbox's only lane */
    queue_t *queue;
    entry_t *waiting[PRIOS];
    lane_t *tprev[PRIOS], *tnext[PRIOS];    /* in queue->turn[c] while waiting[c] */
    size_t refs;                /* entries of the lane, in any state */
    UT_hash_handle hh;          /* in queue->lanes, keyed by origin */
};

struct queue {
    char key[2 + HX_NAME_MAX + 1];  /* "s:" or "m:" + name */
    Handoff__AddressKind kind;
    lane_t *lanes;
    lane_t *turn[PRIOS];        /* lanes with waiting messages of class c, next first */
    size_t n_waiting, n_inflight, n_held;   /* n_held: every message of the queue not dead */
    uint64_t bytes;             /* of the messages held */
    size_t pending;             /* scratch: messages about to be added by one request */
    uint64_t pending_bytes;
    peer_t *ready;              /* workers with spare credit */
    size_t n_workers;
    uint64_t n_in, n_out;       /* messages accepted into it, settled out of it (for rates) */
    uint64_t pin_seg;           /* the oldest log segment one of its messages is in (0: none), as
                                   of the last scan (hx_router_compact.c) */
    uint64_t pin_next;          /* ... as found so far by the scan under way */
    UT_hash_handle hh;
};

struct peer {
    uint8_t rid[256];
    size_t rid_len;
    Handoff__Role role;
    char name[HX_NAME_MAX + 1];
    queue_t *queue;             /* a worker's service, a clinic's mailbox */
    uint32_t credit;
    entry_t *inflight;
    size_t n_inflight;
    uint64_t last_recv, last_send;
    char principal[96];         /* "" without CURVE */
    char origin[HX_NAME_MAX + 16];  /* "clinic:<name>" etc.: whom its own submits are for */
    bool is_ready;
    peer_t *rprev, *rnext;      /* in queue->ready */
    UT_hash_handle hh;
};

/* Messages compaction wrote again, waiting for that transaction to become durable: then
 * each one still at `from` moves to `to` (hx_router_compact.c). */
typedef struct move_batch {
    uint64_t seq;
    size_t n;
    struct moved_msg {
        uint8_t id[HX_ID_LEN];
        uint64_t from, to;
    } *msgs;
    struct move_batch *next;
} move_batch_t;

typedef struct dedup {
    uint8_t id[HX_ID_LEN];
    struct dedup *prev, *next;  /* oldest first, for eviction */
} dedup_t;

struct hx_router {
    hx_router_config_t cfg;
    peer_t *peers;
    queue_t *queues;
    size_t n_queues;
    hx_idmap_t entries;         /* entry_t by id */
    hx_pool_t *entry_pool;      /* where entries live */
    hx_pool_t *dedup_pool;      /* where the dedup window's nodes live */
    origin_t *origins;
    const hx_policy_t *policy;  /* cfg.policy, or own_policy */
    hx_policy_t *own_policy;
    entry_t *delayed;           /* by due time */
    entry_t *dead;
    size_t n_delayed, n_dead;
    action_t *actions, *actions_tail;
    uint64_t last_seq;          /* of the last transaction ended */
    hx_idmap_t dedup;           /* dedup_t by id */
    dedup_t *dedup_fifo;
    size_t n_dedup;
    hx_buf_t out;
    hx_buf_t scratch;
    hx_arena_t arena;           /* the envelope being handled: reset after each frame */
    queue_t *rec_last;          /* recovery: the queue of the record before */
    hx_router_stats_t stats;
    uint64_t now;
    uint64_t born_ms;           /* monotonic ms at hx_router_new, for the uptime */
    uint64_t live_bytes, live_count;        /* every message held, in any state: what the log must keep */
    move_batch_t *moves, *moves_tail;       /* compaction's transactions, oldest first */
    uint64_t compact_at, pin_scan_at;       /* monotonic ms of the next compaction step, pin scan */
    uint64_t compact_seg;                   /* the segment being emptied, and where its scan is */
    size_t compact_cursor;
    uint64_t dead_pin_seg, dead_pin_next;   /* as queue.pin_seg, pin_next, for the dead letters */
    size_t pin_cursor;                      /* where the scan under way has got to */
    bool pin_scanning;
};

/* ---- small and hot: inline in every file */

static inline const char *rt_queue_name(const queue_t *q)
{
    return q->key + 2;
}

static inline peer_t *rt_peer_find(const hx_router_t *r, const uint8_t *rid, size_t len)
{
    peer_t *p = NULL;
    HASH_FIND(hh, r->peers, rid, len, p);
    return p;
}

static inline entry_t *rt_entry_find(const hx_router_t *r, const uint8_t *id)
{
    return hx_idmap_find(&r->entries, id);
}

static inline void rt_ready_add(peer_t *p)
{
    if (!p->is_ready && p->role == HANDOFF__ROLE__ROLE_WORKER && p->n_inflight < p->credit) {
        DL_APPEND2(p->queue->ready, p, rprev, rnext);
        p->is_ready = true;
    }
}

static inline void rt_ready_remove(peer_t *p)
{
    if (p->is_ready) {
        DL_DELETE2(p->queue->ready, p, rprev, rnext);
        p->is_ready = false;
    }
}

/* A message the queue holds (counted against its bounds, and its origin's share). */
static inline void rt_held_add(entry_t *e)
{
    e->lane->queue->n_held++;
    e->lane->queue->bytes += e->size;
    origin_t *o = e->lane->origin;
    if (o) {
        o->n_held++;
        o->bytes += e->size;
    }
}

/* A message of the queue no longer held by it (settled or dead): its bytes are free. */
static inline void rt_held_sub(const entry_t *e)
{
    e->lane->queue->n_held--;
    e->lane->queue->bytes -= e->size;
    origin_t *o = e->lane->origin;
    if (o) {
        o->n_held--;
        o->bytes -= e->size;
    }
}

/* ---- sessions, sending, frames, time, life (hx_router.c) */
uint64_t rt_wall_ms(void);
uint64_t rt_mono_ms(void);
const char *rt_role_word(Handoff__Role role);
queue_t *rt_queue_find(const hx_router_t *r, Handoff__AddressKind kind, const char *name);
queue_t *rt_queue_get(hx_router_t *r, Handoff__AddressKind kind, const char *name);
int rt_send_buf(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p);
void rt_env_init(Handoff__Envelope *env, Handoff__Kind kind, ProtobufCBinaryData corr);
int rt_send_env(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, const Handoff__Envelope *env);
void rt_reply_error(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, ProtobufCBinaryData corr,
                    Handoff__ErrorCode code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
void rt_audit(hx_router_t *r, const peer_t *p, const char *action, const uint8_t *id, const char *outcome);
void rt_peer_drop(hx_router_t *r, peer_t *p, const char *why, bool failure);

/* ---- message states, lanes and origins, dedup, store transactions, failures, delivery (hx_router_queue.c) */
void rt_dedup_add(hx_router_t *r, const uint8_t *id);
void rt_dedup_remove(hx_router_t *r, const uint8_t *id);
void rt_dedup_ids(void *arg, hx_buf_t *out);
origin_t *rt_origin_get(hx_router_t *r, const char *name);
void rt_origin_release(hx_router_t *r, origin_t *o);
void rt_entry_free(hx_router_t *r, entry_t *e);
entry_t *rt_queue_head(const queue_t *q);
void rt_entry_unlink(hx_router_t *r, entry_t *e);
void rt_to_waiting(entry_t *e, bool front);
int rt_txn_begin(hx_router_t *r);
int rt_txn_end(hx_router_t *r, uint64_t *seq);
void rt_store_why(const hx_router_t *r, char *out, size_t cap);
action_t *rt_action_new(peer_t *p, ProtobufCBinaryData corr, Handoff__Kind reply, size_t n_added,
                            size_t n_settled);
void rt_action_queue(hx_router_t *r, action_t *a, uint64_t seq);
void rt_action_finish(hx_router_t *r, action_t *a, int status);
void rt_on_commit(void *arg, uint64_t seq, int status);
void rt_actions_settle(hx_router_t *r);
void rt_to_dead(hx_router_t *r, entry_t *e, const char *reason, uint64_t at);
void rt_failed(hx_router_t *r, entry_t *e, const char *reason, bool *logged);
bool rt_failures_begin(hx_router_t *r);
void rt_failures_end(hx_router_t *r, bool began, bool logged);
int rt_deliver(hx_router_t *r, peer_t *w, entry_t *e);
void rt_dispatch(hx_router_t *r, queue_t *q);

/* ---- compaction and pinned bytes (hx_router_compact.c) */
void rt_compact_tick(hx_router_t *r, uint64_t now_ms);
void rt_moves_done(hx_router_t *r, uint64_t seq, int status);
void rt_moves_free(hx_router_t *r);
uint64_t rt_pinned_bytes(const hx_router_t *r, uint64_t seg);
bool rt_is_known(const hx_router_t *r, const uint8_t *id);
entry_t *rt_entry_new(hx_router_t *r, const uint8_t *id, queue_t *q, origin_t *o, int prio, uint64_t handle,
                          size_t size, uint64_t accepted_ms);

/* ---- requests that carry messages or acks (hx_router_request.c) */
bool rt_store_refuses(hx_router_t *r, peer_t *p, const Handoff__Envelope *env);
bool rt_open_request(hx_router_t *r, peer_t *p, const Handoff__Envelope *env);
void rt_commit_request(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, Handoff__Kind reply,
                           entry_t **added, size_t n_added, entry_t **settled, size_t n_settled, bool began);
void rt_on_submit(hx_router_t *r, peer_t *p, const Handoff__Envelope *env);
void rt_on_ack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env);
void rt_on_nack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env);
void rt_on_fetch(hx_router_t *r, peer_t *p, const Handoff__Envelope *env);

/* ---- admin operations and statistics (hx_router_admin.c) */
void rt_on_admin(hx_router_t *r, peer_t *p, const Handoff__Envelope *env);

#endif
