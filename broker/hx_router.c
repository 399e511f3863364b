/* hx_router — sessions, queues, mailboxes, credit, acks, heartbeats, redelivery with
 * backoff, the dead-letter queue; no sockets here.
 *
 * Every accepted message is an entry_t, found by id in `entries`, in exactly one state:
 *   PENDING   accepted into a store transaction that is not durable yet (in an action)
 *   WAITING   in its queue's `waiting` list
 *   INFLIGHT  in its holder's `inflight` list
 *   DELAYED   in the router's `delayed` list until its backoff is over
 *   SETTLING  acked or purged, in an action until the settle is durable
 *   DEAD      in the dead-letter list
 * A worker with spare credit sits in its service's `ready` list; dispatch hands the next
 * waiting message to the first ready worker and rotates it to the back (load balancing).
 *
 * Fair share. A service queue's waiting messages sit in lanes, one per origin (the clinic
 * the work is for: what it submitted and every output a worker acks with it), each lane
 * with one list per priority class. The next message is the head of the first lane in
 * the turn of the highest class that has any; that lane then goes to the back of the turn,
 * so within a class the origins take turns, one message each (round-robin), and a stat or
 * urgent message goes before every routine one. An origin may hold at most
 * --sender-share percent of --max-queue (and of --max-queue-bytes) in all service queues
 * together: a clinic over its share gets ERR_BUSY for its own submits, nobody else does.
 * A mailbox has one lane (its messages go out oldest first) and never refuses a service.
 *
 * Each request that changes anything is one store transaction; its reply (and making its
 * new messages deliverable) waits in an action until the store says the transaction is
 * durable. If the store fails, the action is undone and answered ERR_UNAVAILABLE. */
#include "hx_idmap.h"
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

struct entry {
    uint8_t id[HX_ID_LEN];
    uint64_t handle;            /* in the store */
    uint32_t size;              /* bytes of the stored message */
    uint32_t attempt;           /* deliveries so far */
    uint32_t failures;          /* deliveries that failed */
    estate_t state;
    uint8_t prio;               /* Handoff__DeliveryPriority */
    queue_t *queue;
    lane_t *lane;               /* of queue: its origin's */
    peer_t *holder;             /* INFLIGHT only */
    union {                     /* one per state: a queued message costs 16 bytes less */
        uint64_t delivered_at;  /* INFLIGHT: when (monotonic ms) */
        uint64_t due;           /* DELAYED: when it may go again */
        uint64_t dead_at;       /* DEAD, and SETTLING out of DEAD: Unix ms */
    };
    uint64_t accepted_ms;       /* Unix ms when the broker accepted it (for the oldest-age gauge) */
    char *reason;               /* DEAD: the last error */
    entry_t *prev, *next;       /* in the list of its state */
};

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
};

/* ---- helpers ------------------------------------------------------------------------ */

static const char *queue_name(const queue_t *q)
{
    return q->key + 2;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *role_word(Handoff__Role role)
{
    return role == HANDOFF__ROLE__ROLE_WORKER ? "service" : role == HANDOFF__ROLE__ROLE_ADMIN ? "admin" : "clinic";
}

static queue_t *queue_find(const hx_router_t *r, Handoff__AddressKind kind, const char *name)
{
    char key[sizeof ((queue_t *)0)->key];
    size_t n = strnlen(name, HX_NAME_MAX);
    key[0] = kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? 's' : 'm';
    key[1] = ':';
    memcpy(key + 2, name, n);
    key[2 + n] = 0;
    queue_t *q = NULL;
    HASH_FIND_STR(r->queues, key, q);
    return q;
}

/* Finds or creates; NULL when the number of queues is at its bound or memory is out. */
static queue_t *queue_get(hx_router_t *r, Handoff__AddressKind kind, const char *name)
{
    queue_t *q = queue_find(r, kind, name);
    if (q || r->n_queues >= r->cfg.max_queues)
        return q;
    q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    snprintf(q->key, sizeof q->key, "%c:%s", kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? 's' : 'm', name);
    q->kind = kind;
    HASH_ADD_STR(r->queues, key, q);
    r->n_queues++;
    return q;
}

static peer_t *peer_find(const hx_router_t *r, const uint8_t *rid, size_t len)
{
    peer_t *p = NULL;
    HASH_FIND(hh, r->peers, rid, len, p);
    return p;
}

static entry_t *entry_find(const hx_router_t *r, const uint8_t *id)
{
    return hx_idmap_find(&r->entries, id);
}

static void ready_add(peer_t *p)
{
    if (!p->is_ready && p->role == HANDOFF__ROLE__ROLE_WORKER && p->n_inflight < p->credit) {
        DL_APPEND2(p->queue->ready, p, rprev, rnext);
        p->is_ready = true;
    }
}

static void ready_remove(peer_t *p)
{
    if (p->is_ready) {
        DL_DELETE2(p->queue->ready, p, rprev, rnext);
        p->is_ready = false;
    }
}

static dedup_t *dedup_find(const hx_router_t *r, const uint8_t *id)
{
    return hx_idmap_find(&r->dedup, id);
}

static void dedup_add(hx_router_t *r, const uint8_t *id)
{
    if (r->cfg.dedup_window == 0 || dedup_find(r, id))
        return;
    dedup_t *d;
    if (r->n_dedup >= r->cfg.dedup_window) {
        d = r->dedup_fifo;                       /* evict the oldest, reuse its node */
        DL_DELETE(r->dedup_fifo, d);
        hx_idmap_remove(&r->dedup, d->id);
        r->n_dedup--;
    } else if (!(d = malloc(sizeof *d))) {
        return;                                  /* dedup is best effort beyond memory */
    }
    memcpy(d->id, id, HX_ID_LEN);
    if (hx_idmap_put(&r->dedup, d) != 0) {
        free(d);
        return;
    }
    DL_APPEND(r->dedup_fifo, d);
    r->n_dedup++;
}

static void dedup_remove(hx_router_t *r, const uint8_t *id)
{
    dedup_t *d = dedup_find(r, id);
    if (d) {
        DL_DELETE(r->dedup_fifo, d);
        hx_idmap_remove(&r->dedup, d->id);
        r->n_dedup--;
        free(d);
    }
}

/* The store's checkpoint hook: every remembered id, oldest first. */
static void dedup_ids(void *arg, hx_buf_t *out)
{
    hx_router_t *r = arg;
    const dedup_t *d;
    DL_FOREACH(r->dedup_fifo, d) hx_buf_append(out, d->id, HX_ID_LEN);
}

/* ---- sending ------------------------------------------------------------------------ */

static int send_buf(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p)
{
    int rc = r->cfg.send(r->cfg.send_arg, rid, rid_len, r->out.data, r->out.len);
    if (rc == 0 && p)
        p->last_send = r->now;
    return rc;
}

static void env_init(Handoff__Envelope *env, Handoff__Kind kind, ProtobufCBinaryData corr)
{
    handoff__envelope__init(env);
    env->version = HX_PROTOCOL_VERSION;
    env->kind = kind;
    env->correlation_id = corr;
}

static int send_env(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, const Handoff__Envelope *env)
{
    if (hx_wire_pack(env, &r->out))
        return -1;
    return send_buf(r, rid, rid_len, p);
}

static void reply_error(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, ProtobufCBinaryData corr,
                        Handoff__ErrorCode code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void audit(hx_router_t *r, const peer_t *p, const char *action, const uint8_t *id, const char *outcome)
{
    if (!r->cfg.audit)
        return;
    char hex[2 * HX_ID_LEN + 1] = "";
    if (id)
        hx_id_hex(id, hex);
    char who[112];
    if (p && p->principal[0])
        snprintf(who, sizeof who, "%s", p->principal);
    else if (p)
        snprintf(who, sizeof who, "%s:%s", p->role == HANDOFF__ROLE__ROLE_WORKER ? "service"
                                           : p->role == HANDOFF__ROLE__ROLE_ADMIN ? "admin" : "clinic", p->name);
    else
        snprintf(who, sizeof who, "(no session)");
    r->cfg.audit(r->cfg.audit_arg, who, action, hex, outcome);
}

static void reply_error(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, ProtobufCBinaryData corr,
                        Handoff__ErrorCode code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (code == HANDOFF__ERROR_CODE__ERR_FORBIDDEN) {
        char outcome[560];
        snprintf(outcome, sizeof outcome, "refused: %s", text);
        audit(r, p, "request", corr.len == HX_ID_LEN ? corr.data : NULL, outcome);
    }
    Handoff__Envelope env;
    env_init(&env, HANDOFF__KIND__KIND_ERROR, corr);
    env.error_code = code;
    env.error_text = text;
    r->stats.refused++;
    r->stats.refused_by_code[(unsigned)code < HX_ROUTER_CODES ? (unsigned)code : 0]++;
    hx_debug("refused %s from %s: %s", hx_wire_error_text(code), p ? p->name : "(no session)", text);
    send_env(r, rid, rid_len, p, &env);
}

/* ---- origins and lanes ------------------------------------------------------------------ */

static origin_t *origin_get(hx_router_t *r, const char *name)
{
    origin_t *o = NULL;
    HASH_FIND_STR(r->origins, name, o);
    if (o)
        return o;
    if (strlen(name) >= sizeof o->name || !(o = calloc(1, sizeof *o)))
        return NULL;
    strcpy(o->name, name);
    HASH_ADD_STR(r->origins, name, o);
    return o;
}

/* Frees o when no lane uses it (and it holds nothing). */
static void origin_release(hx_router_t *r, origin_t *o)
{
    if (o && !o->lanes && !o->n_held && !o->pending) {
        HASH_DELETE(hh, r->origins, o);
        free(o);
    }
}

/* o's lane in q (a mailbox: its only lane, whatever o); NULL when memory is out. */
static lane_t *lane_get(hx_router_t *r, queue_t *q, origin_t *o)
{
    if (q->kind != HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE)
        o = NULL;
    lane_t *l = NULL;
    HASH_FIND_PTR(q->lanes, &o, l);
    if (l)
        return l;
    if (!(l = calloc(1, sizeof *l)))
        return NULL;
    l->origin = o;
    l->queue = q;
    HASH_ADD_PTR(q->lanes, origin, l);
    if (o)
        o->lanes++;
    (void)r;
    return l;
}

static void lane_unref(hx_router_t *r, lane_t *l)
{
    if (--l->refs)
        return;
    HASH_DELETE(hh, l->queue->lanes, l);
    origin_t *o = l->origin;
    free(l);
    if (o) {
        o->lanes--;
        origin_release(r, o);
    }
}

/* ---- message states --------------------------------------------------------------------- */

static void entry_free(hx_router_t *r, entry_t *e)
{
    hx_idmap_remove(&r->entries, e->id);
    r->cfg.store->ops->release(r->cfg.store, e->handle);
    lane_unref(r, e->lane);
    free(e->reason);
    free(e);
}

/* The next message q hands out: the head of the first lane in the highest class's turn. */
static entry_t *queue_head(const queue_t *q)
{
    for (int c = PRIOS - 1; c >= 0; c--)
        if (q->turn[c])
            return q->turn[c]->waiting[c];
    return NULL;
}

/* Takes e out of the list of its current state (it keeps its queue accounting). */
static void entry_unlink(hx_router_t *r, entry_t *e)
{
    queue_t *q = e->queue;
    switch (e->state) {
    case E_WAITING: {
        lane_t *l = e->lane;
        DL_DELETE(l->waiting[e->prio], e);
        if (!l->waiting[e->prio])
            DL_DELETE2(q->turn[e->prio], l, tprev[e->prio], tnext[e->prio]);
        q->n_waiting--;
        break;
    }
    case E_INFLIGHT:
        DL_DELETE(e->holder->inflight, e);
        e->holder->n_inflight--;
        q->n_inflight--;
        ready_add(e->holder);
        e->holder = NULL;
        break;
    case E_DELAYED:
        DL_DELETE(r->delayed, e);
        r->n_delayed--;
        break;
    case E_DEAD:
        DL_DELETE(r->dead, e);
        r->n_dead--;
        break;
    case E_PENDING:
    case E_SETTLING:
        break;
    }
}

/* A message the queue holds (counted against its bounds, and its origin's share). */
static void held_add(entry_t *e)
{
    e->queue->n_held++;
    e->queue->bytes += e->size;
    origin_t *o = e->lane->origin;
    if (o) {
        o->n_held++;
        o->bytes += e->size;
    }
}

/* A message of the queue no longer held by it (settled or dead): its bytes are free. */
static void held_sub(const entry_t *e)
{
    e->queue->n_held--;
    e->queue->bytes -= e->size;
    origin_t *o = e->lane->origin;
    if (o) {
        o->n_held--;
        o->bytes -= e->size;
    }
}

/* Waiting in its lane: at the back, or at the front (a message given back, whose lane
 * then also goes first in its turn). */
static void to_waiting(entry_t *e, bool front)
{
    queue_t *q = e->queue;
    lane_t *l = e->lane;
    int c = e->prio;
    e->state = E_WAITING;
    bool idle = !l->waiting[c];
    if (front)
        DL_PREPEND(l->waiting[c], e);
    else
        DL_APPEND(l->waiting[c], e);
    if (idle && front)
        DL_PREPEND2(q->turn[c], l, tprev[c], tnext[c]);
    else if (idle)
        DL_APPEND2(q->turn[c], l, tprev[c], tnext[c]);
    q->n_waiting++;
}

/* After e was handed out: its lane goes to the back of its turn (round-robin). */
static void lane_rotate(queue_t *q, lane_t *l, int c)
{
    if (l->waiting[c] && q->turn[c] == l && l->tnext[c]) {
        DL_DELETE2(q->turn[c], l, tprev[c], tnext[c]);
        DL_APPEND2(q->turn[c], l, tprev[c], tnext[c]);
    }
}

static void dispatch(hx_router_t *r, queue_t *q);
static void to_dead(hx_router_t *r, entry_t *e, const char *reason, uint64_t at);

/* ---- store transactions and actions ------------------------------------------------------ */

static int txn_begin(hx_router_t *r)
{
    return r->cfg.store->ops->begin(r->cfg.store);
}

static int txn_end(hx_router_t *r, uint64_t *seq)
{
    int rc = r->cfg.store->ops->end(r->cfg.store, seq);
    if (rc == 0)
        r->last_seq = *seq;
    else
        r->cfg.store->ops->abort(r->cfg.store);
    return rc;
}

static void store_why(const hx_router_t *r, char *out, size_t cap)
{
    const char *why = "";
    r->cfg.store->ops->health(r->cfg.store, &why);
    snprintf(out, cap, "%s", why && *why ? why : "the broker cannot write its log");
}

static action_t *action_new(peer_t *p, ProtobufCBinaryData corr, Handoff__Kind reply, size_t n_added,
                            size_t n_settled)
{
    action_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->added = n_added ? calloc(n_added, sizeof *a->added) : NULL;
    a->settled = n_settled ? calloc(n_settled, sizeof *a->settled) : NULL;
    if ((n_added && !a->added) || (n_settled && !a->settled)) {
        free(a->added);
        free(a->settled);
        free(a);
        return NULL;
    }
    if (p && corr.len == HX_ID_LEN) {
        memcpy(a->rid, p->rid, p->rid_len);
        a->rid_len = p->rid_len;
        memcpy(a->corr, corr.data, HX_ID_LEN);
        a->corr_len = HX_ID_LEN;
    }
    a->reply = reply;
    return a;
}

static void action_queue(hx_router_t *r, action_t *a, uint64_t seq)
{
    a->seq = seq;
    if (r->actions_tail)
        r->actions_tail->next = a;
    else
        r->actions = a;
    r->actions_tail = a;
}

static void action_finish(hx_router_t *r, action_t *a, int status)
{
    char why[256] = "";
    if (status)
        store_why(r, why, sizeof why);
    if (a->rid_len) {                           /* the answer first, then the deliveries */
        peer_t *p = peer_find(r, a->rid, a->rid_len);
        ProtobufCBinaryData corr = {a->corr_len, a->corr};
        if (status == 0) {
            if (hx_wire_pack_reply(&r->out, a->reply, corr.data, corr.len) == 0)
                send_buf(r, a->rid, a->rid_len, p);
        } else {
            reply_error(r, a->rid, a->rid_len, p, corr, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
        }
    }
    for (size_t i = 0; i < a->n_settled; i++) {
        entry_t *e = a->settled[i];
        queue_t *q = e->queue;
        if (status == 0) {
            held_sub(e);
            entry_free(r, e);
            r->stats.acked++;
            q->n_out++;
        } else if (e->reason) {                 /* a purge that did not last: still dead */
            to_dead(r, e, e->reason, e->dead_at);
        } else {                                /* the settle is not durable: deliver it again */
            to_waiting(e, true);
        }
        dispatch(r, q);
    }
    for (size_t i = 0; i < a->n_added; i++) {
        entry_t *e = a->added[i];
        queue_t *q = e->queue;
        if (status == 0) {
            to_waiting(e, false);
            r->stats.accepted++;
            q->n_in++;
            dispatch(r, q);
        } else {                                /* never durable: forget it, and let a retry in */
            dedup_remove(r, e->id);
            held_sub(e);
            entry_free(r, e);
        }
    }
    free(a->added);
    free(a->settled);
    free(a);
}

/* Finishes every action whose transaction is now durable (status 0) or failed. */
static void actions_done(hx_router_t *r, uint64_t seq, int status)
{
    while (r->actions && r->actions->seq <= seq) {
        action_t *a = r->actions;
        r->actions = a->next;
        if (!r->actions)
            r->actions_tail = NULL;
        action_finish(r, a, status);
    }
}

static void on_commit(void *arg, uint64_t seq, int status)
{
    actions_done(arg, seq, status);
}

/* After a request: what the store already made durable is answered now. */
static void actions_settle(hx_router_t *r)
{
    actions_done(r, r->cfg.store->ops->durable_seq(r->cfg.store), 0);
}

/* ---- failures, backoff, dead letters ----------------------------------------------------- */

static uint64_t backoff(const hx_router_t *r, uint32_t failures)
{
    uint64_t d = r->cfg.backoff_ms;
    for (uint32_t i = 1; i < failures && d < r->cfg.backoff_max_ms; i++)
        d *= 2;
    return d < r->cfg.backoff_max_ms ? d : r->cfg.backoff_max_ms;
}

static void to_delayed(hx_router_t *r, entry_t *e, uint64_t due)
{
    e->state = E_DELAYED;
    e->due = due;
    entry_t *at = r->delayed ? r->delayed->prev : NULL;     /* from the back: dues mostly grow */
    while (at && at->due > due)
        at = at == r->delayed ? NULL : at->prev;
    if (!at)
        DL_PREPEND(r->delayed, e);
    else if (at == r->delayed->prev)
        DL_APPEND(r->delayed, e);
    else
        DL_APPEND_ELEM(r->delayed, at, e);
    r->n_delayed++;
}

static void to_dead(hx_router_t *r, entry_t *e, const char *reason, uint64_t at)
{
    e->state = E_DEAD;
    e->dead_at = at;
    char *copy = strndup(reason && *reason ? reason : "no reason given", 255);
    free(e->reason);
    e->reason = copy;
    DL_APPEND(r->dead, e);
    r->n_dead++;
    held_sub(e);                  /* dead letters do not fill their queue */
}

/* A delivery of e (already unlinked) failed: retry after a backoff, or give up. The new
 * count (and the death) go into the current transaction. */
static void failed(hx_router_t *r, entry_t *e, const char *reason, bool *logged)
{
    e->failures++;
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(e->id, hex);
    if (e->failures >= r->cfg.max_attempts) {
        uint64_t at = wall_ms();
        *logged |= r->cfg.store->ops->dead(r->cfg.store, e->id, e->failures, at, reason ? reason : "") == 0;
        to_dead(r, e, reason, at);
        r->stats.dead_lettered++;
        hx_warn("message %s to %s failed %u times: dead letter (%.120s)", hex, queue_name(e->queue), e->failures,
                reason ? reason : "");
        return;
    }
    *logged |= r->cfg.store->ops->attempts(r->cfg.store, e->id, e->failures) == 0;
    uint64_t delay = backoff(r, e->failures);
    to_delayed(r, e, r->now + delay);
    hx_debug("message %s failed (%u of %u): again in %llu ms", hex, e->failures, r->cfg.max_attempts,
             (unsigned long long)delay);
}

/* Records the failures of one event (a nack, a dead worker, a timeout) in a transaction. */
static bool failures_begin(hx_router_t *r)
{
    return txn_begin(r) == 0;
}

static void failures_end(hx_router_t *r, bool began, bool logged)
{
    if (!began)
        return;
    uint64_t seq;
    if (logged)
        txn_end(r, &seq);
    else
        r->cfg.store->ops->abort(r->cfg.store);
}

/* ---- sessions ----------------------------------------------------------------------- */

/* Ends p's session. Its unacked messages go back: a clinic's to the front of its mailbox in
 * order; a worker's count as failed deliveries when `failure` (it died or went silent),
 * otherwise (it said bye, or was never reached) straight back to the front. */
static void peer_drop(hx_router_t *r, peer_t *p, const char *why, bool failure)
{
    size_t back = p->n_inflight;
    bool count = failure && p->role == HANDOFF__ROLE__ROLE_WORKER;
    bool began = count && back && failures_begin(r), logged = false;
    while (p->inflight) {
        entry_t *e = p->inflight->prev;          /* the tail: prepend newest first keeps order */
        entry_unlink(r, e);
        if (count)
            failed(r, e, why, &logged);
        else
            to_waiting(e, true);
    }
    failures_end(r, began, logged);
    ready_remove(p);
    if (p->role == HANDOFF__ROLE__ROLE_WORKER)
        p->queue->n_workers--;
    if (back)
        hx_warn("%s %s left (%s): %zu unacked message(s) back to %s", p->role == HANDOFF__ROLE__ROLE_WORKER ? "worker" : "session",
                p->name, why, back, queue_name(p->queue));
    else
        hx_debug("%s left (%s)", p->name, why);
    HASH_DELETE(hh, r->peers, p);
    free(p);
}

static int deliver(hx_router_t *r, peer_t *w, entry_t *e)
{
    queue_t *q = e->queue;
    entry_unlink(r, e);
    lane_rotate(q, e->lane, e->prio);
    e->state = E_INFLIGHT;
    e->holder = w;
    e->delivered_at = r->now;
    DL_APPEND(w->inflight, e);
    w->n_inflight++;
    q->n_inflight++;
    e->attempt++;
    if (e->attempt > 1)
        r->stats.redelivered++;
    r->stats.delivered++;

    Handoff__Envelope env;
    env_init(&env, HANDOFF__KIND__KIND_DELIVER, (ProtobufCBinaryData){0, NULL});
    const uint8_t *body;
    if (hx_wire_pack(&env, &r->out) || r->cfg.store->ops->get(r->cfg.store, e->handle, e->size, &body) ||
        hx_wire_append_message(&r->out, body, e->size, e->attempt) || send_buf(r, w->rid, w->rid_len, w)) {
        e->attempt--;
        peer_drop(r, w, "unreachable", false);
        return -1;
    }
    audit(r, w, "deliver", e->id, "delivered");
    if (w->n_inflight >= w->credit) {
        ready_remove(w);
    } else {                                    /* rotate: the next message goes to the next worker */
        DL_DELETE2(q->ready, w, rprev, rnext);
        DL_APPEND2(q->ready, w, rprev, rnext);
    }
    return 0;
}

static void dispatch(hx_router_t *r, queue_t *q)
{
    if (!q || q->kind != HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE)
        return;
    entry_t *e;
    while (q->ready && (e = queue_head(q)))
        deliver(r, q->ready, e);
}

/* True when an authenticated principal may open this session. */
static bool principal_permits(const char *principal, Handoff__Role role, const char *name)
{
    const char *want = role == HANDOFF__ROLE__ROLE_CLINIC   ? "clinic:"
                       : role == HANDOFF__ROLE__ROLE_WORKER ? "service:"
                       : role == HANDOFF__ROLE__ROLE_ADMIN  ? "admin:"
                                                            : NULL;
    size_t n = want ? strlen(want) : 0;
    return want && strncmp(principal, want, n) == 0 && strcmp(principal + n, name) == 0;
}

static void on_hello(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, const Handoff__Envelope *env,
                     const char *principal)
{
    bool worker = env->role == HANDOFF__ROLE__ROLE_WORKER;
    if (env->role != HANDOFF__ROLE__ROLE_CLINIC && !worker && env->role != HANDOFF__ROLE__ROLE_ADMIN) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "role: must be ROLE_CLINIC, ROLE_WORKER or ROLE_ADMIN, got %d", (int)env->role);
        return;
    }
    if (!hx_name_valid(env->name)) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "name: must be 1 to %d characters of [A-Za-z0-9._-]", HX_NAME_MAX);
        return;
    }
    if (principal && r->cfg.principal_allowed && !r->cfg.principal_allowed(r->cfg.principal_arg, principal)) {
        hx_warn("refused: %s is no longer in the allow-list", principal);
        if (r->cfg.audit)
            r->cfg.audit(r->cfg.audit_arg, principal, "hello", "", "refused: the key is no longer allowed");
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "this key (%s) is no longer allowed", principal);
        return;
    }
    if (principal && !principal_permits(principal, env->role, env->name)) {
        hx_warn("refused: the key of %s asked for a session as %s %s", principal,
                worker ? "service" : env->role == HANDOFF__ROLE__ROLE_ADMIN ? "admin" : "clinic", env->name);
        if (r->cfg.audit) {
            char outcome[160];
            snprintf(outcome, sizeof outcome, "refused: asked for a session as %s %s",
                     worker ? "service" : env->role == HANDOFF__ROLE__ROLE_ADMIN ? "admin" : "clinic", env->name);
            r->cfg.audit(r->cfg.audit_arg, principal, "hello", "", outcome);
        }
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "this key belongs to %s: it may not open a session as %s %s", principal,
                    worker ? "service" : env->role == HANDOFF__ROLE__ROLE_ADMIN ? "admin" : "clinic", env->name);
        return;
    }
    if (worker && env->credit > HX_MAX_CREDIT) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "credit: must be 0 to %d, got %u", HX_MAX_CREDIT, env->credit);
        return;
    }
    if (rid_len > sizeof p->rid)
        return;                                     /* libzmq routing ids are at most 255 bytes */
    /* An admin session reads no queue of its own: it gets a mailbox named "admin.<name>". */
    char qname[HX_NAME_MAX + 8];
    snprintf(qname, sizeof qname, "%s%s", env->role == HANDOFF__ROLE__ROLE_ADMIN ? "admin." : "", env->name);
    queue_t *q = queue_get(r, worker ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX,
                           qname);
    if (!q) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BUSY, "the broker holds %u queues, its bound",
                    r->cfg.max_queues);
        return;
    }
    if (p) {                                        /* a new session on the same connection */
        queue_t *old = p->queue;
        peer_drop(r, p, "said hello again", false);
        dispatch(r, old);
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return;
    memcpy(p->rid, rid, rid_len);
    p->rid_len = rid_len;
    p->role = env->role;
    snprintf(p->name, sizeof p->name, "%s", env->name);
    snprintf(p->principal, sizeof p->principal, "%s", principal ? principal : "");
    snprintf(p->origin, sizeof p->origin, "%s:%s", role_word(p->role), p->name);
    p->queue = q;
    p->credit = worker ? (env->credit ? env->credit : 1) : 0;
    p->last_recv = p->last_send = r->now;
    HASH_ADD(hh, r->peers, rid, p->rid_len, p);
    if (worker)
        q->n_workers++;
    hx_info("%s %s joined", worker ? "worker" : env->role == HANDOFF__ROLE__ROLE_ADMIN ? "admin" : "clinic", p->name);
    audit(r, p, "hello", NULL, "session opened");

    Handoff__Envelope w;
    env_init(&w, HANDOFF__KIND__KIND_WELCOME, env->id);
    w.heartbeat_ms = r->cfg.heartbeat_ms;
    w.liveness = r->cfg.liveness;
    w.max_frame = r->cfg.max_frame;
    send_env(r, p->rid, p->rid_len, p, &w);
    ready_add(p);
    dispatch(r, q);
}

/* Checks one message of a SUBMIT or ACK; writes the first problem into why. */
static bool message_valid(const Handoff__Message *m, size_t i, char *why, size_t cap)
{
    if (m->id.len != HX_ID_LEN)
        snprintf(why, cap, "messages[%zu].id: must be %d bytes, got %zu", i, HX_ID_LEN, m->id.len);
    else if (!m->to || (m->to->kind != HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE &&
                        m->to->kind != HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX))
        snprintf(why, cap, "messages[%zu].to.kind: must be ADDRESS_SERVICE or ADDRESS_MAILBOX", i);
    else if (!hx_name_valid(m->to->name))
        snprintf(why, cap, "messages[%zu].to.name: must be 1 to %d characters of [A-Za-z0-9._-]", i, HX_NAME_MAX);
    else if (!m->type[0])
        snprintf(why, cap, "messages[%zu].type: required (the payload's type name, 1 to %d characters)", i,
                 HX_TYPE_MAX);
    else if (strlen(m->type) > HX_TYPE_MAX)
        snprintf(why, cap, "messages[%zu].type: longer than %d characters", i, HX_TYPE_MAX);
    else if ((unsigned)m->priority > HANDOFF__DELIVERY_PRIORITY__DELIVERY_STAT)
        snprintf(why, cap, "messages[%zu].priority: must be 0 to 3 (routine, urgent, asap, stat), got %u", i,
                 (unsigned)m->priority);
    else if (m->correlation_id.len != 0 && m->correlation_id.len != HX_ID_LEN)
        snprintf(why, cap, "messages[%zu].correlation_id: must be empty or %d bytes", i, HX_ID_LEN);
    else
        return true;
    return false;
}

static bool is_known(const hx_router_t *r, const uint8_t *id)
{
    return entry_find(r, id) || dedup_find(r, id);
}

static entry_t *entry_new(hx_router_t *r, const uint8_t *id, queue_t *q, origin_t *o, int prio, uint64_t handle,
                          size_t size, uint64_t accepted_ms)
{
    entry_t *e = calloc(1, sizeof *e);
    lane_t *l = e ? lane_get(r, q, o) : NULL;
    if (!l) {
        free(e);
        return NULL;
    }
    memcpy(e->id, id, HX_ID_LEN);
    e->queue = q;
    e->lane = l;
    e->prio = q->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? (uint8_t)prio : 0;
    e->handle = handle;
    e->size = (uint32_t)size;
    e->state = E_PENDING;
    e->accepted_ms = accepted_ms;
    if (hx_idmap_put(&r->entries, e) != 0) {
        if (!l->refs) {
            l->refs = 1;
            lane_unref(r, l);
        }
        free(e);
        return NULL;
    }
    l->refs++;
    held_add(e);
    dedup_add(r, id);
    return e;
}

/* The routing policy (hx_policy): may p send m? Writes the refusal into why. */
static bool policy_permits(const hx_router_t *r, const peer_t *p, const Handoff__Message *m, size_t i, char *why,
                           size_t cap)
{
    bool to_service = m->to->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE;
    hx_policy_role_t role = p->role == HANDOFF__ROLE__ROLE_WORKER  ? HX_POLICY_SERVICE
                            : p->role == HANDOFF__ROLE__ROLE_ADMIN ? HX_POLICY_ADMIN
                                                                   : HX_POLICY_CLINIC;
    if (hx_policy_allows(r->policy, role, p->name, to_service ? HX_POLICY_TO_SERVICE : HX_POLICY_TO_MAILBOX,
                         m->to->name, m->type))
        return true;
    snprintf(why, cap, "messages[%zu]: %s %.64s may not send %.128s to %s %.64s (routing policy)", i,
             role_word(p->role), p->name, m->type, to_service ? "service" : "mailbox", m->to->name);
    return false;
}

/* Who the outputs of an ACK are for: the origin of the inputs it settles when they share
 * one, else the sender's own; and at least the highest priority among them. */
typedef struct {
    origin_t *origin;           /* NULL: the sender's own */
    int prio;                   /* the least priority the messages get */
    bool outputs;               /* an ACK's outputs: not bounded by the sender's share */
} lineage_t;

/* Checks msgs and puts the new ones into the open transaction (all or none); they are
 * PENDING in added[] until it is durable. Returns ERR_NONE or an error with text in why. */
static Handoff__ErrorCode accept_messages(hx_router_t *r, peer_t *p, Handoff__Message **msgs, size_t n,
                                          const lineage_t *lin, entry_t **added, size_t *n_added, char *why,
                                          size_t cap)
{
    *n_added = 0;
    if (n > HX_MAX_BATCH) {
        snprintf(why, cap, "messages: at most %d in one request, got %zu", HX_MAX_BATCH, n);
        return HANDOFF__ERROR_CODE__ERR_BAD_FIELD;
    }
    for (size_t i = 0; i < n; i++)
        if (!message_valid(msgs[i], i, why, cap))
            return HANDOFF__ERROR_CODE__ERR_BAD_FIELD;
    for (size_t i = 0; i < n; i++)
        if (!policy_permits(r, p, msgs[i], i, why, cap)) {
            hx_warn("refused: %s", why);
            return HANDOFF__ERROR_CODE__ERR_FORBIDDEN;
        }

    /* The origin every message of this request gets: its account is needed only for
     * messages to service queues (a mailbox has one lane and no share). */
    origin_t *origin = lin->origin;
    const char *origin_name = origin ? origin->name : p->origin;
    bool worker = p->role == HANDOFF__ROLE__ROLE_WORKER;
    uint64_t share_n = (uint64_t)r->cfg.max_queue * r->cfg.sender_share / 100;
    uint64_t share_bytes = r->cfg.max_queue_bytes / 100 * r->cfg.sender_share;

    /* Phase 1: every target queue exists and has room, and the origin is within its share. */
    queue_t *targets[HX_MAX_BATCH];
    size_t sizes[HX_MAX_BATCH];
    Handoff__Address from;
    handoff__address__init(&from);
    from.kind = worker ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    from.name = p->name;
    uint64_t at = wall_ms();
    Handoff__ErrorCode code = HANDOFF__ERROR_CODE__ERR_NONE;
    size_t i;
    for (i = 0; i < n; i++) {
        targets[i] = NULL;
        if (is_known(r, msgs[i]->id.data))
            continue;
        queue_t *q = queue_get(r, msgs[i]->to->kind, msgs[i]->to->name);
        if (!q) {
            snprintf(why, cap, "messages[%zu].to: the broker holds %u queues, its bound", i, r->cfg.max_queues);
            code = HANDOFF__ERROR_CODE__ERR_BUSY;
            break;
        }
        /* its stored form, sized once here and packed in phase 2: the broker sets from,
         * origin, accepted_at_ms and attempt (a request's messages all get the same values) */
        Handoff__Message *m = msgs[i];
        Handoff__Address *saved = m->from;
        m->from = &from;
        m->accepted_at_ms = at;
        m->attempt = 0;
        m->origin = (char *)origin_name;
        if ((int)m->priority < lin->prio)
            m->priority = (Handoff__DeliveryPriority)lin->prio;
        size_t size = sizes[i] = handoff__message__get_packed_size(m);
        m->from = saved;
        bool service = q->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE;
        if (service && !origin && !(origin = origin_get(r, origin_name))) {
            snprintf(why, cap, "the broker is out of memory");
            code = HANDOFF__ERROR_CODE__ERR_UNAVAILABLE;
            break;
        }
        /* a mailbox never refuses a service: what services deliver must not stall the
         * pipeline (the depth is a metric with an alert rule instead) */
        if ((service || !worker) && (q->n_held + q->pending >= r->cfg.max_queue ||
                                     q->bytes + q->pending_bytes + size > r->cfg.max_queue_bytes)) {
            snprintf(why, cap, "messages[%zu].to: %s %s is full (%u messages or %llu bytes); retry later", i,
                     service ? "service" : "mailbox", queue_name(q), r->cfg.max_queue,
                     (unsigned long long)r->cfg.max_queue_bytes);
            code = HANDOFF__ERROR_CODE__ERR_BUSY;
            break;
        }
        if (service && !lin->outputs &&
            (origin->n_held + origin->pending >= share_n || origin->bytes + origin->pending_bytes + size > share_bytes)) {
            snprintf(why, cap, "messages[%zu].to: %s already has %zu messages (%llu bytes) waiting in the service "
                     "queues, its share (%u%% of %u messages or of %llu bytes); retry later", i, origin->name,
                     origin->n_held + origin->pending, (unsigned long long)(origin->bytes + origin->pending_bytes),
                     r->cfg.sender_share, r->cfg.max_queue, (unsigned long long)r->cfg.max_queue_bytes);
            code = HANDOFF__ERROR_CODE__ERR_BUSY;
            break;
        }
        q->pending++;
        q->pending_bytes += size;
        if (service) {
            origin->pending++;
            origin->pending_bytes += size;
        }
        targets[i] = q;
    }
    for (size_t j = 0; j < i; j++)
        if (targets[j])
            targets[j]->pending = targets[j]->pending_bytes = 0;
    if (origin)
        origin->pending = origin->pending_bytes = 0;
    if (code != HANDOFF__ERROR_CODE__ERR_NONE) {
        origin_release(r, origin);
        return code;
    }

    /* Phase 2: into the transaction. */
    for (i = 0; i < n; i++) {
        Handoff__Message *m = msgs[i];
        if (!targets[i] || entry_find(r, m->id.data)) {   /* phase 1 checked the dedup window */
            r->stats.duplicates++;
            continue;
        }
        Handoff__Address *saved = m->from;
        m->from = &from;
        size_t len = sizes[i];
        int rc = hx_buf_reserve(&r->scratch, len);
        if (rc == 0 && handoff__message__pack(m, r->scratch.data) != len)
            rc = HX_EIO;                        /* not what phase 1 sized: never expected */
        m->from = saved;
        uint64_t handle;
        entry_t *e = NULL;
        if (rc == 0 && r->cfg.store->ops->put(r->cfg.store, r->scratch.data, len, &handle) == 0) {
            e = entry_new(r, m->id.data, targets[i], origin, (int)m->priority, handle, len, at);
            if (!e)
                r->cfg.store->ops->release(r->cfg.store, handle);
        }
        if (!e) {
            while (*n_added) {
                entry_t *u = added[--*n_added];
                dedup_remove(r, u->id);
                held_sub(u);
                entry_free(r, u);
            }
            origin_release(r, origin);
            snprintf(why, cap, "the broker cannot store messages now");
            return HANDOFF__ERROR_CODE__ERR_UNAVAILABLE;
        }
        added[(*n_added)++] = e;
        if (r->cfg.audit) {
            char outcome[HX_NAME_MAX + 32];
            snprintf(outcome, sizeof outcome, "stored for %s", queue_name(e->queue));
            audit(r, p, "submit", e->id, outcome);
        }
    }
    origin_release(r, origin);                  /* all duplicates: nothing uses it */
    return HANDOFF__ERROR_CODE__ERR_NONE;
}

/* The refusal every changing request gets while the store cannot write. */
static bool store_refuses(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    const char *why = "";
    if (r->cfg.store->ops->health(r->cfg.store, &why) == 0)
        return false;
    reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
    return true;
}

/* Opens the transaction of a request that changes something, or refuses the request. */
static bool open_request(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    if (store_refuses(r, p, env))
        return false;
    if (txn_begin(r) == 0)
        return true;
    char why[256];
    store_why(r, why, sizeof why);
    reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
    return false;
}

/* Ends a request's transaction and queues its action; undoes it if the end fails. */
static void commit_request(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, Handoff__Kind reply,
                           entry_t **added, size_t n_added, entry_t **settled, size_t n_settled, bool began)
{
    uint64_t seq = r->last_seq;
    int rc = began ? txn_end(r, &seq) : 0;
    action_t *a = rc == 0 ? action_new(p, env->id, reply, n_added, n_settled) : NULL;
    if (!a) {
        for (size_t i = 0; i < n_added; i++) {
            dedup_remove(r, added[i]->id);
            held_sub(added[i]);
            entry_free(r, added[i]);
        }
        for (size_t i = 0; i < n_settled; i++)
            to_waiting(settled[i], true);
        char why[256];
        store_why(r, why, sizeof why);
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
        return;
    }
    if (n_added)
        memcpy(a->added, added, n_added * sizeof *added);
    a->n_added = n_added;
    if (n_settled)
        memcpy(a->settled, settled, n_settled * sizeof *settled);
    a->n_settled = n_settled;
    action_queue(r, a, seq);
    actions_settle(r);
}

static void on_submit(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    char why[512];
    if (env->id.len != HX_ID_LEN) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "id: a SUBMIT must carry a %d-byte request id", HX_ID_LEN);
        return;
    }
    if (env->n_messages == 0) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "messages: a SUBMIT carries at least one message");
        return;
    }
    if (!open_request(r, p, env))
        return;
    entry_t *added[HX_MAX_BATCH];
    size_t n_added;
    const lineage_t own = {NULL, 0, false};
    Handoff__ErrorCode code =
        accept_messages(r, p, env->messages, env->n_messages, &own, added, &n_added, why, sizeof why);
    if (code != HANDOFF__ERROR_CODE__ERR_NONE) {
        r->cfg.store->ops->abort(r->cfg.store);
        reply_error(r, p->rid, p->rid_len, p, env->id, code, "%s", why);
        return;
    }
    if (n_added == 0)                           /* all known already: answered after the originals */
        r->cfg.store->ops->abort(r->cfg.store);
    commit_request(r, p, env, HANDOFF__KIND__KIND_ACCEPTED, added, n_added, NULL, 0, n_added > 0);
}

/* Finds the entries named by env->acks. Acks must name messages of p's own queue;
 * held_only: held by p right now. */
static bool collect_acks(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, bool held_only, entry_t **found)
{
    if (env->n_acks > HX_MAX_BATCH) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "acks: at most %d in one request, got %zu", HX_MAX_BATCH, env->n_acks);
        return false;
    }
    /* The ids seen so far in this request, to find one given twice: open addressing over
     * entry pointers, at most half full. */
    entry_t *seen[2 * HX_MAX_BATCH + 48];
    size_t slots = 64;
    while (slots < 2 * env->n_acks)
        slots *= 2;
    if (slots > sizeof seen / sizeof seen[0])
        slots = sizeof seen / sizeof seen[0];
    memset(seen, 0, slots * sizeof seen[0]);
    for (size_t i = 0; i < env->n_acks; i++) {
        char hex[2 * HX_ID_LEN + 1];
        found[i] = NULL;
        if (env->acks[i].len != HX_ID_LEN) {
            reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                        "acks[%zu]: must be %d bytes, got %zu", i, HX_ID_LEN, env->acks[i].len);
            return false;
        }
        entry_t *e = entry_find(r, env->acks[i].data);
        bool mine = e && e->queue == p->queue && e->state != E_DEAD && e->state != E_PENDING;
        if (mine && (!held_only || e->holder == p)) {
            size_t k = (size_t)(((uintptr_t)e >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 40) % slots;
            while (seen[k] && seen[k] != e)
                k = (k + 1) % slots;
            if (seen[k] == e)                   /* the same id twice in one request */
                e = NULL;
            else
                seen[k] = e;
            found[i] = e && e->state != E_SETTLING ? e : NULL;
            continue;
        }
        if (!e && !held_only)                      /* already settled: acking again is harmless */
            continue;
        hx_id_hex(env->acks[i].data, hex);
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE,
                    "acks[%zu]: message %s is not %s", i, hex, held_only ? "held by you" : "in your queue");
        return false;
    }
    return true;
}

static void on_ack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    entry_t *found[HX_MAX_BATCH], *added[HX_MAX_BATCH], *settled[HX_MAX_BATCH];
    size_t n_added = 0, n_settled = 0;
    char why[512];
    if (!collect_acks(r, p, env, false, found))
        return;
    if (!open_request(r, p, env))
        return;
    if (env->n_messages) {
        lineage_t lin = {NULL, 0, true};
        bool mixed = false;
        for (size_t i = 0; i < env->n_acks; i++) {
            const entry_t *e = found[i];
            if (!e || !e->lane->origin)
                continue;
            if (lin.origin && lin.origin != e->lane->origin)
                mixed = true;
            lin.origin = e->lane->origin;
            if (e->prio > lin.prio)
                lin.prio = e->prio;
        }
        if (mixed)
            lin.origin = NULL;
        Handoff__ErrorCode code =
            accept_messages(r, p, env->messages, env->n_messages, &lin, added, &n_added, why, sizeof why);
        if (code != HANDOFF__ERROR_CODE__ERR_NONE) {
            r->cfg.store->ops->abort(r->cfg.store);
            reply_error(r, p->rid, p->rid_len, p, env->id, code, "%s", why);
            return;
        }
    }
    for (size_t i = 0; i < env->n_acks; i++) {
        entry_t *e = found[i];
        if (!e)
            continue;
        r->cfg.store->ops->settle(r->cfg.store, e->id);
        entry_unlink(r, e);
        e->state = E_SETTLING;
        settled[n_settled++] = e;
    }
    bool began = n_added || n_settled;
    if (!began)
        r->cfg.store->ops->abort(r->cfg.store);
    if (env->id.len == HX_ID_LEN || began)
        commit_request(r, p, env, HANDOFF__KIND__KIND_ACCEPTED, added, n_added, settled, n_settled, began);
    dispatch(r, p->queue);
}

static void on_nack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    entry_t *found[HX_MAX_BATCH];
    if (p->role != HANDOFF__ROLE__ROLE_WORKER) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "NACK: only a worker nacks; a clinic that cannot keep a message does not ack it, and gets it "
                    "again from its next session");
        return;
    }
    if (!collect_acks(r, p, env, true, found))
        return;
    bool began = failures_begin(r), logged = false;
    for (size_t i = 0; i < env->n_acks; i++) {
        entry_t *e = found[i];
        if (!e)
            continue;
        entry_unlink(r, e);
        r->stats.nacked++;
        char hex[2 * HX_ID_LEN + 1];
        hx_id_hex(e->id, hex);
        hx_warn("%s nacked %s (attempt %u): %.120s", p->name, hex, e->attempt, env->error_text);
        failed(r, e, env->error_text, &logged);
    }
    failures_end(r, began, logged);
    ready_add(p);
    if (env->id.len == HX_ID_LEN)
        commit_request(r, p, env, HANDOFF__KIND__KIND_ACCEPTED, NULL, 0, NULL, 0, false);
    dispatch(r, p->queue);
}

static void on_fetch(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    if (p->role != HANDOFF__ROLE__ROLE_CLINIC) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "FETCH: only a clinic session fetches from its mailbox");
        return;
    }
    if (env->max > HX_MAX_BATCH) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "max: at most %d, got %u", HX_MAX_BATCH, env->max);
        return;
    }
    uint32_t max = env->max ? env->max : 100;
    Handoff__Envelope d;
    env_init(&d, HANDOFF__KIND__KIND_DELIVER, env->id);
    if (hx_wire_pack(&d, &r->out))
        return;
    queue_t *q = p->queue;
    entry_t *e;
    for (uint32_t k = 0; k < max && (e = queue_head(q)); k++) {
        const uint8_t *body;
        if (k > 0 && r->out.len + e->size + 32 > r->cfg.max_frame)
            break;
        if (r->cfg.store->ops->get(r->cfg.store, e->handle, e->size, &body) ||
            hx_wire_append_message(&r->out, body, e->size, e->attempt + 1))
            break;
        entry_unlink(r, e);
        e->state = E_INFLIGHT;
        e->holder = p;
        e->delivered_at = r->now;
        DL_APPEND(p->inflight, e);
        p->n_inflight++;
        q->n_inflight++;
        if (++e->attempt > 1)
            r->stats.redelivered++;
        r->stats.delivered++;
        audit(r, p, "fetch", e->id, "delivered");
    }
    if (send_buf(r, p->rid, p->rid_len, p))
        peer_drop(r, p, "unreachable", false);
}

static int stats_json_own(const hx_router_t *r, const queue_t *own, hx_buf_t *out);

/* ---- admin: health and the dead-letter queue ---------------------------------------------- */

static void on_admin(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    const char *op = env->admin_op;
    if (strcmp(op, "stats") == 0) {              /* counts and names: all to an admin, its own to others */
        hx_buf_t json = {0};
        int rc = p->role == HANDOFF__ROLE__ROLE_ADMIN ? hx_router_stats_json(r, &json)
                                                      : stats_json_own(r, p->queue, &json);
        if (rc != 0) {
            hx_buf_free(&json);
            reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE,
                        "stats: out of memory");
            return;
        }
        Handoff__Envelope rep;
        env_init(&rep, HANDOFF__KIND__KIND_ADMIN_REPLY, env->id);
        rep.text = (char *)json.data;
        send_env(r, p->rid, p->rid_len, p, &rep);
        hx_buf_free(&json);
        return;
    }
    if (strcmp(op, "health") == 0) {
        if (store_refuses(r, p, env))
            return;
        Handoff__Envelope rep;
        env_init(&rep, HANDOFF__KIND__KIND_ADMIN_REPLY, env->id);
        send_env(r, p->rid, p->rid_len, p, &rep);
        return;
    }
    bool list = strcmp(op, "dlq.list") == 0, show = strcmp(op, "dlq.show") == 0;
    bool replay = strcmp(op, "dlq.replay") == 0, purge = strcmp(op, "dlq.purge") == 0;
    if (!list && !show && !replay && !purge) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "admin_op: '%.40s' is not health, stats, dlq.list, dlq.show, dlq.replay or dlq.purge", op);
        return;
    }
    if (p->role != HANDOFF__ROLE__ROLE_ADMIN) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "%s: only an admin session may use the dead-letter queue", op);
        return;
    }
    entry_t *target = NULL;
    if (!list) {
        if (env->n_acks != 1 || env->acks[0].len != HX_ID_LEN) {
            reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                        "acks: %s names exactly one %d-byte message id", op, HX_ID_LEN);
            return;
        }
        target = entry_find(r, env->acks[0].data);
        if (!target || target->state != E_DEAD) {
            char hex[2 * HX_ID_LEN + 1];
            hx_id_hex(env->acks[0].data, hex);
            reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE,
                        "acks[0]: message %s is not in the dead-letter queue", hex);
            return;
        }
    }
    if (replay || purge) {
        if (!open_request(r, p, env))
            return;
        entry_unlink(r, target);
        if (replay) {
            r->cfg.store->ops->revive(r->cfg.store, target->id);
            target->failures = 0;
            target->attempt = 0;
            held_add(target);
            free(target->reason);
            target->reason = NULL;
            to_waiting(target, false);
            hx_info("%s replayed a dead letter to %s", p->name, queue_name(target->queue));
            audit(r, p, "dlq.replay", target->id, "replayed");
            commit_request(r, p, env, HANDOFF__KIND__KIND_ADMIN_REPLY, NULL, 0, NULL, 0, true);
            dispatch(r, target->queue);
        } else {
            r->cfg.store->ops->settle(r->cfg.store, target->id);
            target->state = E_SETTLING;
            held_add(target);                   /* action_finish forgets it once more */
            hx_info("%s purged a dead letter of %s", p->name, queue_name(target->queue));
            audit(r, p, "dlq.purge", target->id, "purged");
            commit_request(r, p, env, HANDOFF__KIND__KIND_ADMIN_REPLY, NULL, 0, &target, 1, true);
        }
        return;
    }
    /* list or show: dead letters with their messages (show: with the payload) */
    size_t n = list ? r->n_dead : 1, k = 0;
    Handoff__DeadLetter *dl = calloc(n ? n : 1, sizeof *dl);
    Handoff__DeadLetter **dlp = calloc(n ? n : 1, sizeof *dlp);
    Handoff__Message **msgs = calloc(n ? n : 1, sizeof *msgs);
    if (!dl || !dlp || !msgs) {
        free(dl);
        free(dlp);
        free(msgs);
        return;
    }
    size_t bytes = 0;
    for (entry_t *e = list ? r->dead : target; e && k < n; e = list ? e->next : NULL) {
        const uint8_t *body;
        if (r->cfg.store->ops->get(r->cfg.store, e->handle, e->size, &body))
            continue;
        Handoff__Message *m = handoff__message__unpack(NULL, e->size, body);
        if (!m)
            continue;
        if (list) {
            m->payload.len = 0;                 /* the list carries no clinical content */
        }
        bytes += e->size + 300;
        if (list && bytes > r->cfg.max_frame)
            break;
        m->attempt = e->failures;
        msgs[k] = m;
        handoff__dead_letter__init(&dl[k]);
        dl[k].message = m;
        dl[k].reason = e->reason ? e->reason : "";
        dl[k].attempts = e->failures;
        dl[k].dead_at_ms = e->dead_at;
        dlp[k] = &dl[k];
        k++;
    }
    Handoff__Envelope rep;
    env_init(&rep, HANDOFF__KIND__KIND_ADMIN_REPLY, env->id);
    rep.n_dead = k;
    rep.dead = dlp;
    send_env(r, p->rid, p->rid_len, p, &rep);
    for (size_t i = 0; i < k; i++)
        handoff__message__free_unpacked(msgs[i], NULL);
    free(msgs);
    free(dl);
    free(dlp);
}

/* ---- frames ------------------------------------------------------------------------------ */

void hx_router_on_frame(hx_router_t *r, const uint8_t *rid, size_t rid_len, const uint8_t *frame, size_t len,
                        uint64_t now_ms)
{
    hx_router_on_frame_from(r, rid, rid_len, NULL, frame, len, now_ms);
}

void hx_router_on_frame_from(hx_router_t *r, const uint8_t *rid, size_t rid_len, const char *principal,
                             const uint8_t *frame, size_t len, uint64_t now_ms)
{
    static const ProtobufCBinaryData none = {0, NULL};
    r->now = now_ms;
    peer_t *p = peer_find(r, rid, rid_len);
    if (p)
        p->last_recv = now_ms;
    if (len > r->cfg.max_frame) {
        reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_TOO_LARGE,
                    "frame of %zu bytes exceeds max_frame %u", len, r->cfg.max_frame);
        return;
    }
    Handoff__Envelope *env = len ? handoff__envelope__unpack(&r->arena.pb, len, frame) : NULL;
    if (!env) {
        hx_arena_reset(&r->arena);
        reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_MALFORMED, "frame is not a decodable Envelope");
        return;
    }
    char why[160];
    if (env->version != HX_PROTOCOL_VERSION) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_VERSION,
                    "version: %u is not supported (this broker speaks %d)", env->version, HX_PROTOCOL_VERSION);
    } else if ((env->kind == HANDOFF__KIND__KIND_HELLO || env->kind == HANDOFF__KIND__KIND_ADMIN ||
                env->n_messages) && !hx_wire_strings_clean(frame, len, why, sizeof why)) {
        /* (only where a string is used: a name, an op, a message's type or address) */
        reply_error(r, rid, rid_len, p, env->id.len == HX_ID_LEN ? env->id : none, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "%s", why);
    } else if (env->id.len != 0 && env->id.len != HX_ID_LEN) {
        reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "id: must be %d bytes, got %zu",
                    HX_ID_LEN, env->id.len);
    } else if (env->kind == HANDOFF__KIND__KIND_HELLO) {
        on_hello(r, rid, rid_len, p, env, principal);
    } else if (env->kind == HANDOFF__KIND__KIND_BYE) {
        if (p) {
            queue_t *q = p->queue;
            peer_drop(r, p, "said bye", false);
            dispatch(r, q);
        }
    } else if (env->kind != HANDOFF__KIND__KIND_SUBMIT && env->kind != HANDOFF__KIND__KIND_ACK &&
               env->kind != HANDOFF__KIND__KIND_NACK && env->kind != HANDOFF__KIND__KIND_FETCH &&
               env->kind != HANDOFF__KIND__KIND_HEARTBEAT && env->kind != HANDOFF__KIND__KIND_ADMIN) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNKNOWN_KIND,
                    "kind: %d is not a request a peer may send", (int)env->kind);
    } else if (!p) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_NOT_READY, "no session: send HELLO first");
    } else {
        switch (env->kind) {
        case HANDOFF__KIND__KIND_SUBMIT: on_submit(r, p, env); break;
        case HANDOFF__KIND__KIND_ACK: on_ack(r, p, env); break;
        case HANDOFF__KIND__KIND_NACK: on_nack(r, p, env); break;
        case HANDOFF__KIND__KIND_FETCH: on_fetch(r, p, env); break;
        case HANDOFF__KIND__KIND_ADMIN: on_admin(r, p, env); break;
        default: break;                                /* HEARTBEAT: last_recv is enough */
        }
    }
    hx_arena_reset(&r->arena);                         /* frees env */
}

void hx_router_on_bad_frames(hx_router_t *r, const uint8_t *rid, size_t rid_len, size_t frames, uint64_t now_ms)
{
    static const ProtobufCBinaryData none = {0, NULL};
    r->now = now_ms;
    peer_t *p = peer_find(r, rid, rid_len);
    if (p)
        p->last_recv = now_ms;
    reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_MALFORMED,
                "a message is exactly 1 frame (the Envelope), got %zu", frames);
}

/* ---- time ---------------------------------------------------------------------------------- */

void hx_router_tick(hx_router_t *r, uint64_t now_ms)
{
    r->now = now_ms;
    r->cfg.store->ops->tick(r->cfg.store, now_ms);
    uint64_t expiry = (uint64_t)r->cfg.heartbeat_ms * r->cfg.liveness;
    peer_t *p, *tmp;
    HASH_ITER(hh, r->peers, p, tmp) {
        if (now_ms - p->last_recv > expiry) {
            queue_t *q = p->queue;
            r->stats.expired++;
            peer_drop(r, p, "heartbeat expired", true);
            dispatch(r, q);
            continue;
        }
        if (now_ms - p->last_send >= r->cfg.heartbeat_ms) {
            Handoff__Envelope env;
            env_init(&env, HANDOFF__KIND__KIND_HEARTBEAT, (ProtobufCBinaryData){0, NULL});
            if (send_env(r, p->rid, p->rid_len, p, &env)) {
                queue_t *q = p->queue;
                peer_drop(r, p, "unreachable", true);
                dispatch(r, q);
                continue;
            }
        }
        if (p->role == HANDOFF__ROLE__ROLE_WORKER && p->inflight &&
            now_ms - p->inflight->delivered_at > r->cfg.ack_timeout_ms) {
            bool began = failures_begin(r), logged = false;
            while (p->inflight && now_ms - p->inflight->delivered_at > r->cfg.ack_timeout_ms) {
                entry_t *e = p->inflight;
                entry_unlink(r, e);
                failed(r, e, "no ack within the ack timeout", &logged);
            }
            failures_end(r, began, logged);
            dispatch(r, p->queue);
        }
    }
    /* backoffs that are over: to the front of their queue */
    while (r->delayed && r->delayed->due <= now_ms) {
        entry_t *e = r->delayed;
        entry_unlink(r, e);
        to_waiting(e, true);
        dispatch(r, e->queue);
    }
}

void hx_router_flush(hx_router_t *r)
{
    r->cfg.store->ops->flush(r->cfg.store);
}

void hx_router_recheck(hx_router_t *r)
{
    if (!r->cfg.principal_allowed)
        return;
    peer_t *p, *tmp;
    HASH_ITER(hh, r->peers, p, tmp) {
        if (!p->principal[0] || r->cfg.principal_allowed(r->cfg.principal_arg, p->principal))
            continue;
        hx_warn("session of %s ended: its key was removed from the allow-list", p->principal);
        Handoff__Envelope env;
        env_init(&env, HANDOFF__KIND__KIND_BYE, (ProtobufCBinaryData){0, NULL});
        send_env(r, p->rid, p->rid_len, p, &env);
        queue_t *q = p->queue;
        peer_drop(r, p, "key removed", false);
        dispatch(r, q);
    }
}

void hx_router_goodbye(hx_router_t *r)
{
    peer_t *p, *tmp;
    HASH_ITER(hh, r->peers, p, tmp) {
        Handoff__Envelope env;
        env_init(&env, HANDOFF__KIND__KIND_BYE, (ProtobufCBinaryData){0, NULL});
        send_env(r, p->rid, p->rid_len, p, &env);
    }
}

/* ---- recovery ------------------------------------------------------------------------------ */

static void rec_put(void *arg, uint64_t handle, const uint8_t *msg, size_t len)
{
    hx_router_t *r = arg;
    hx_msg_head_t h;
    char name[HX_NAME_MAX + 1];
    queue_t *q = NULL;
    if (hx_wire_scan_message(msg, len, &h) == 0 && h.id_len == HX_ID_LEN && h.to_name &&
        h.to_name_len <= HX_NAME_MAX) {
        memcpy(name, h.to_name, h.to_name_len);
        name[h.to_name_len] = 0;
        /* Records come in runs for one queue: the last one found is likely the next. */
        if (r->rec_last && r->rec_last->kind == h.to_kind && strcmp(queue_name(r->rec_last), name) == 0)
            q = r->rec_last;
        else if (hx_name_valid(name))
            q = r->rec_last = queue_get(r, h.to_kind, name);
    }
    /* its origin and priority as accepted (a record written before they existed: the
     * sender's, from its from address, routine) */
    origin_t *o = NULL;
    char oname[sizeof o->name];
    if (q && h.origin && h.origin_len && h.origin_len < sizeof oname) {
        memcpy(oname, h.origin, h.origin_len);
        oname[h.origin_len] = 0;
        o = origin_get(r, oname);
    } else if (q) {
        Handoff__Message *m = handoff__message__unpack(NULL, len, msg);
        if (m && m->from && hx_name_valid(m->from->name)) {
            snprintf(oname, sizeof oname, "%s:%s",
                     m->from->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? "service" : "clinic", m->from->name);
            o = origin_get(r, oname);
        }
        if (m)
            handoff__message__free_unpacked(m, NULL);
    }
    int prio = h.priority <= HANDOFF__DELIVERY_PRIORITY__DELIVERY_STAT ? (int)h.priority : 0;
    entry_t *e = q && o && !entry_find(r, h.id) ? entry_new(r, h.id, q, o, prio, handle, len, h.accepted_at_ms) : NULL;
    if (!e && o)
        origin_release(r, o);
    if (e) {
        to_waiting(e, false);
    } else {
        r->cfg.store->ops->release(r->cfg.store, handle);
        hx_warn("log: a stored message could not be restored (undecodable or repeated); skipped");
    }
}

static void rec_settle(void *arg, const uint8_t id[HX_ID_LEN])
{
    hx_router_t *r = arg;
    entry_t *e = entry_find(r, id);
    if (e) {
        entry_unlink(r, e);
        if (e->state != E_DEAD)
            held_sub(e);
        entry_free(r, e);
    }
}

static void rec_dead(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms, const char *reason)
{
    hx_router_t *r = arg;
    entry_t *e = entry_find(r, id);
    if (e && e->state != E_DEAD) {
        entry_unlink(r, e);
        e->failures = attempts;
        to_dead(r, e, reason, at_ms);
    }
}

static void rec_revive(void *arg, const uint8_t id[HX_ID_LEN])
{
    hx_router_t *r = arg;
    entry_t *e = entry_find(r, id);
    if (e && e->state == E_DEAD) {
        entry_unlink(r, e);
        e->failures = e->attempt = 0;
        held_add(e);
        to_waiting(e, false);
    }
}

static void rec_attempts(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts)
{
    entry_t *e = entry_find(arg, id);
    if (e) {
        e->failures = attempts;
        e->attempt = attempts;
    }
}

static void rec_dedup(void *arg, const uint8_t id[HX_ID_LEN])
{
    dedup_add(arg, id);
}

int hx_router_recover(hx_router_t *r)
{
    static const hx_store_visitor_t v = {rec_put, rec_settle, rec_dead, rec_revive, rec_attempts, rec_dedup};
    int rc = r->cfg.store->ops->recover(r->cfg.store, &v, r);
    r->rec_last = NULL;                         /* only for the replay */
    size_t waiting = 0;
    const queue_t *q;
    for (q = r->queues; q; q = q->hh.next)
        waiting += q->n_waiting;
    if (rc == 0 && (waiting || r->n_dead))
        hx_info("recovered %zu message(s) in %zu queue(s) and %zu dead letter(s)", waiting, r->n_queues, r->n_dead);
    return rc;
}

/* ---- life ---------------------------------------------------------------------------------- */

hx_router_t *hx_router_new(const hx_router_config_t *cfg)
{
    if (!cfg || !cfg->send || !cfg->store)
        return NULL;
    hx_router_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->born_ms = mono_ms();
    if (!r->cfg.heartbeat_ms) r->cfg.heartbeat_ms = 1000;
    if (!r->cfg.liveness) r->cfg.liveness = 3;
    if (!r->cfg.max_frame) r->cfg.max_frame = HX_DEFAULT_MAX_FRAME;
    if (!r->cfg.max_queue) r->cfg.max_queue = 100000;
    if (!r->cfg.max_queues) r->cfg.max_queues = 10000;
    if (!r->cfg.max_queue_bytes) r->cfg.max_queue_bytes = 256u << 20;
    if (!r->cfg.max_attempts) r->cfg.max_attempts = 5;
    if (!r->cfg.backoff_ms) r->cfg.backoff_ms = 500;
    if (!r->cfg.backoff_max_ms) r->cfg.backoff_max_ms = 60000;
    if (!r->cfg.ack_timeout_ms) r->cfg.ack_timeout_ms = 30000;
    if (!r->cfg.sender_share || r->cfg.sender_share > 100) r->cfg.sender_share = 25;
    r->policy = cfg->policy;
    if (!r->policy)
        r->policy = r->own_policy = hx_policy_default();
    if (!r->policy || hx_arena_init(&r->arena, 64 * 1024) || hx_idmap_init(&r->entries) || hx_idmap_init(&r->dedup)) {
        hx_policy_destroy(&r->own_policy);
        hx_arena_free(&r->arena);
        hx_idmap_free(&r->entries);
        hx_idmap_free(&r->dedup);
        free(r);
        return NULL;
    }
    r->cfg.store->on_commit = on_commit;
    r->cfg.store->dedup_ids = dedup_ids;
    r->cfg.store->owner = r;
    return r;
}

void hx_router_destroy(hx_router_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_router_t *r = *self_p;
    action_t *a = r->actions;
    while (a) {                                 /* never durable: nobody was told "accepted" */
        action_t *next = a->next;
        free(a->added);
        free(a->settled);
        free(a);
        a = next;
    }
    peer_t *p, *ptmp;
    HASH_ITER(hh, r->peers, p, ptmp) {
        HASH_DELETE(hh, r->peers, p);
        free(p);
    }
    for (size_t i = 0; i < r->entries.cap; i++) {   /* not settled: the store keeps them */
        entry_t *e = r->entries.slots[i].rec;
        if (!e)
            continue;
        r->cfg.store->ops->forget(r->cfg.store, e->handle);
        free(e->reason);
        free(e);
    }
    hx_idmap_free(&r->entries);
    queue_t *q, *qtmp;
    HASH_ITER(hh, r->queues, q, qtmp) {
        lane_t *l, *ltmp;
        HASH_ITER(hh, q->lanes, l, ltmp) {
            HASH_DELETE(hh, q->lanes, l);
            free(l);
        }
        HASH_DELETE(hh, r->queues, q);
        free(q);
    }
    origin_t *o, *otmp;
    HASH_ITER(hh, r->origins, o, otmp) {
        HASH_DELETE(hh, r->origins, o);
        free(o);
    }
    hx_policy_destroy(&r->own_policy);
    dedup_t *d, *dtmp;
    DL_FOREACH_SAFE(r->dedup_fifo, d, dtmp) free(d);
    hx_idmap_free(&r->dedup);
    r->cfg.store->on_commit = NULL;
    r->cfg.store->dedup_ids = NULL;
    hx_buf_free(&r->out);
    hx_buf_free(&r->scratch);
    hx_arena_free(&r->arena);
    free(r);
    *self_p = NULL;
}

long hx_router_depth(const hx_router_t *r, const char *kind, const char *name, long *inflight)
{
    Handoff__AddressKind k = strcmp(kind, "service") == 0 ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE
                                                          : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    const queue_t *q = queue_find(r, k, name);
    if (!q)
        return -1;
    if (inflight)
        *inflight = (long)q->n_inflight;
    return (long)q->n_waiting;
}

void hx_router_stats(const hx_router_t *r, hx_router_stats_t *out)
{
    *out = r->stats;
    out->peers = out->workers = out->clinics = 0;
    const peer_t *p;
    out->admins = 0;
    for (p = r->peers; p; p = p->hh.next) {
        out->peers++;
        if (p->role == HANDOFF__ROLE__ROLE_WORKER)
            out->workers++;
        else if (p->role == HANDOFF__ROLE__ROLE_ADMIN)
            out->admins++;
        else
            out->clinics++;
    }
    out->dead = r->n_dead;
    out->delayed = r->n_delayed;
    out->uptime_ms = mono_ms() - r->born_ms;
}

void hx_router_foreach_queue(const hx_router_t *r, void (*fn)(void *arg, const hx_queue_info_t *q), void *arg)
{
    uint64_t wall = wall_ms();
    const queue_t *q;
    for (q = r->queues; q; q = q->hh.next) {
        hx_queue_info_t info = {
            .mailbox = q->kind == HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX,
            .name = queue_name(q),
            .depth = q->n_waiting,
            .inflight = q->n_inflight,
            .bytes = q->bytes,
            .workers = q->n_workers,
            .in_total = q->n_in,
            .out_total = q->n_out,
        };
        /* the oldest waiting message is the head of one of the lanes */
        uint64_t oldest = 0;
        for (int c = 0; c < PRIOS; c++) {
            const lane_t *l = q->turn[c];
            for (size_t k = 0; l && k < 1000; k++, l = l->tnext[c])
                if (l->waiting[c]->accepted_ms && (!oldest || l->waiting[c]->accepted_ms < oldest))
                    oldest = l->waiting[c]->accepted_ms;
        }
        if (oldest && oldest < wall)
            info.oldest_age_ms = wall - oldest;
        fn(arg, &info);
    }
}

typedef struct {
    hx_buf_t *out;
    bool mailboxes, first;
    int rc;
} json_walk_t;

static void json_append(json_walk_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void json_append(json_walk_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (w->rc == 0)
        w->rc = hx_buf_vappendf(w->out, fmt, ap);
    va_end(ap);
}

/* Queue names are [A-Za-z0-9._-] (hx_name_valid), so they need no JSON escaping. */
static void json_queue(void *arg, const hx_queue_info_t *q)
{
    json_walk_t *w = arg;
    if (q->mailbox != w->mailboxes)
        return;
    json_append(w, "%s{\"name\":\"%s\",\"depth\":%llu", w->first ? "" : ",", q->name,
                (unsigned long long)q->depth);
    if (!w->mailboxes)
        json_append(w, ",\"inflight\":%llu", (unsigned long long)q->inflight);
    json_append(w, ",\"bytes\":%llu,\"in\":%llu,\"out\":%llu", (unsigned long long)q->bytes,
                (unsigned long long)q->in_total, (unsigned long long)q->out_total);
    if (!w->mailboxes)
        json_append(w, ",\"oldest_age_ms\":%llu,\"workers\":%llu", (unsigned long long)q->oldest_age_ms,
                    (unsigned long long)q->workers);
    json_append(w, "}");
    w->first = false;
}

typedef struct {
    json_walk_t w;
    const queue_t *only;
} own_walk_t;

static void json_own(void *arg, const hx_queue_info_t *q)
{
    own_walk_t *o = arg;
    if (strcmp(q->name, queue_name(o->only)) == 0 &&
        q->mailbox == (o->only->kind == HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX))
        json_queue(&o->w, q);
}

/* What a clinic or a worker may see: its own mailbox or service queue, nothing of others. */
static int stats_json_own(const hx_router_t *r, const queue_t *own, hx_buf_t *out)
{
    hx_router_stats_t st;
    hx_router_stats(r, &st);
    own_walk_t o = {.w = {.out = out, .first = true}, .only = own};
    out->len = 0;
    json_append(&o.w, "{\"uptime_ms\":%llu,\"scope\":\"own\",\"queues\":[", (unsigned long long)st.uptime_ms);
    hx_router_foreach_queue(r, json_own, &o);
    json_append(&o.w, "],\"mailboxes\":[");
    o.w.mailboxes = o.w.first = true;
    hx_router_foreach_queue(r, json_own, &o);
    json_append(&o.w, "]}");
    if (o.w.rc == 0 && hx_buf_append(out, "", 1) == 0) {
        out->len--;
        return 0;
    }
    return HX_ENOMEM;
}

int hx_router_stats_json(const hx_router_t *r, hx_buf_t *out)
{
    hx_router_stats_t st;
    hx_router_stats(r, &st);
    const hx_store_t *s = r->cfg.store;
    json_walk_t w = {.out = out, .first = true};
    out->len = 0;
    json_append(&w, "{\"uptime_ms\":%llu,\"queues\":[", (unsigned long long)st.uptime_ms);
    hx_router_foreach_queue(r, json_queue, &w);
    json_append(&w, "],\"mailboxes\":[");
    w.mailboxes = w.first = true;
    hx_router_foreach_queue(r, json_queue, &w);
    json_append(&w, "],\"dlq\":%llu,\"totals\":{\"accepted\":%llu,\"delivered\":%llu,\"acked\":%llu,"
                "\"redelivered\":%llu,\"dead_lettered\":%llu,\"refused\":%llu},",
                (unsigned long long)st.dead, (unsigned long long)st.accepted, (unsigned long long)st.delivered,
                (unsigned long long)st.acked, (unsigned long long)st.redelivered,
                (unsigned long long)st.dead_lettered, (unsigned long long)st.refused);
    json_append(&w, "\"peers\":{\"clinic\":%llu,\"worker\":%llu,\"admin\":%llu},",
                (unsigned long long)st.clinics, (unsigned long long)st.workers, (unsigned long long)st.admins);
    json_append(&w, "\"store\":{\"bytes_on_disk\":%llu,\"fsyncs\":%llu}}",
                (unsigned long long)s->ops->bytes(s), (unsigned long long)(s->ops->syncs ? s->ops->syncs(s) : 0));
    if (w.rc == 0 && hx_buf_append(out, "", 1) == 0) {   /* NUL-terminated for the string field */
        out->len--;
        return 0;
    }
    return HX_ENOMEM;
}
