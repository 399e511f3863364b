/* hx_router — sessions, queues, mailboxes, credit, acks and heartbeats; no sockets here.
 *
 * Every accepted message is an entry_t, found by id in `entries`, and lives in exactly one
 * of two lists: its queue's `waiting` list, or its holder's `inflight` list. A worker with
 * spare credit sits in its service's `ready` list; dispatch hands the oldest waiting
 * message to the first ready worker and rotates it to the back (load balancing). */
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

struct entry {
    uint8_t id[HX_ID_LEN];
    uint64_t handle;            /* in the store */
    uint32_t attempt;           /* deliveries so far */
    queue_t *queue;
    peer_t *holder;             /* NULL while waiting */
    entry_t *prev, *next;       /* in queue->waiting or holder->inflight */
    UT_hash_handle hh;          /* router->entries, by id */
};

struct queue {
    char key[2 + HX_NAME_MAX + 1];  /* "s:" or "m:" + name */
    Handoff__AddressKind kind;
    entry_t *waiting;
    size_t n_waiting, n_inflight;
    size_t pending;             /* scratch: messages about to be added by one request */
    peer_t *ready;              /* workers with spare credit */
    size_t n_workers;
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
    bool is_ready;
    peer_t *rprev, *rnext;      /* in queue->ready */
    UT_hash_handle hh;
};

typedef struct dedup {
    uint8_t id[HX_ID_LEN];
    struct dedup *prev, *next;  /* oldest first, for eviction */
    UT_hash_handle hh;
} dedup_t;

struct hx_router {
    hx_router_config_t cfg;
    peer_t *peers;
    queue_t *queues;
    size_t n_queues;
    entry_t *entries;
    dedup_t *dedup, *dedup_fifo;
    size_t n_dedup;
    hx_buf_t out;
    hx_buf_t scratch;
    hx_router_stats_t stats;
    uint64_t now;
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

static queue_t *queue_find(const hx_router_t *r, Handoff__AddressKind kind, const char *name)
{
    char key[sizeof ((queue_t *)0)->key];
    snprintf(key, sizeof key, "%c:%s", kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? 's' : 'm', name);
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

static bool dedup_has(const hx_router_t *r, const uint8_t *id)
{
    dedup_t *d = NULL;
    HASH_FIND(hh, r->dedup, id, HX_ID_LEN, d);
    return d != NULL;
}

static void dedup_add(hx_router_t *r, const uint8_t *id)
{
    if (r->cfg.dedup_window == 0)
        return;
    dedup_t *d;
    if (r->n_dedup >= r->cfg.dedup_window) {
        d = r->dedup_fifo;                       /* evict the oldest, reuse its node */
        DL_DELETE(r->dedup_fifo, d);
        HASH_DELETE(hh, r->dedup, d);
        r->n_dedup--;
    } else if (!(d = malloc(sizeof *d))) {
        return;                                  /* dedup is best effort beyond memory */
    }
    memcpy(d->id, id, HX_ID_LEN);
    HASH_ADD(hh, r->dedup, id, HX_ID_LEN, d);
    DL_APPEND(r->dedup_fifo, d);
    r->n_dedup++;
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

static void reply_error(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, ProtobufCBinaryData corr,
                        Handoff__ErrorCode code, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    Handoff__Envelope env;
    env_init(&env, HANDOFF__KIND__KIND_ERROR, corr);
    env.error_code = code;
    env.error_text = text;
    r->stats.refused++;
    hx_debug("refused %s from %s: %s", hx_wire_error_text(code), p ? p->name : "(no session)", text);
    send_env(r, rid, rid_len, p, &env);
}

static void reply_simple(hx_router_t *r, peer_t *p, Handoff__Kind kind, ProtobufCBinaryData corr)
{
    Handoff__Envelope env;
    env_init(&env, kind, corr);
    send_env(r, p->rid, p->rid_len, p, &env);
}

/* ---- sessions ----------------------------------------------------------------------- */

/* Ends p's session: its unacked messages go back to the front of their queue, in order. */
static void peer_drop(hx_router_t *r, peer_t *p, const char *why)
{
    size_t back = p->n_inflight;
    while (p->inflight) {
        entry_t *e = p->inflight->prev;          /* the tail: prepend newest first keeps order */
        DL_DELETE(p->inflight, e);
        e->holder = NULL;
        e->queue->n_inflight--;
        DL_PREPEND(e->queue->waiting, e);
        e->queue->n_waiting++;
    }
    p->n_inflight = 0;
    ready_remove(p);
    if (p->role == HANDOFF__ROLE__ROLE_WORKER)
        p->queue->n_workers--;
    if (back)
        hx_warn("%s %s left (%s): %zu unacked message(s) back to %s", p->role == HANDOFF__ROLE__ROLE_WORKER ? "worker" : "clinic",
                p->name, why, back, queue_name(p->queue));
    else
        hx_debug("%s left (%s)", p->name, why);
    HASH_DELETE(hh, r->peers, p);
    free(p);
}

static void dispatch(hx_router_t *r, queue_t *q);

static int deliver(hx_router_t *r, peer_t *w, entry_t *e)
{
    queue_t *q = e->queue;
    DL_DELETE(q->waiting, e);
    q->n_waiting--;
    e->holder = w;
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
    size_t len;
    if (hx_wire_pack(&env, &r->out) || r->cfg.store->ops->get(r->cfg.store, e->handle, &body, &len) ||
        hx_wire_append_message(&r->out, body, len, e->attempt) || send_buf(r, w->rid, w->rid_len, w)) {
        peer_drop(r, w, "unreachable");
        return -1;
    }
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
    while (q->waiting && q->ready)
        deliver(r, q->ready, q->waiting);
}

static void on_hello(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, const Handoff__Envelope *env)
{
    bool worker = env->role == HANDOFF__ROLE__ROLE_WORKER;
    if (env->role != HANDOFF__ROLE__ROLE_CLINIC && !worker) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "role: must be ROLE_CLINIC or ROLE_WORKER, got %d", (int)env->role);
        return;
    }
    if (!hx_name_valid(env->name)) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "name: must be 1 to %d characters of [A-Za-z0-9._-]", HX_NAME_MAX);
        return;
    }
    if (worker && env->credit > HX_MAX_CREDIT) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "credit: must be 0 to %d, got %u", HX_MAX_CREDIT, env->credit);
        return;
    }
    if (rid_len > sizeof p->rid)
        return;                                     /* libzmq routing ids are at most 255 bytes */
    queue_t *q = queue_get(r, worker ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX,
                           env->name);
    if (!q) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BUSY, "the broker holds %u queues, its bound",
                    r->cfg.max_queues);
        return;
    }
    if (p) {                                        /* a new session on the same connection */
        queue_t *old = p->queue;
        peer_drop(r, p, "said hello again");
        dispatch(r, old);
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return;
    memcpy(p->rid, rid, rid_len);
    p->rid_len = rid_len;
    p->role = env->role;
    snprintf(p->name, sizeof p->name, "%s", env->name);
    p->queue = q;
    p->credit = worker ? (env->credit ? env->credit : 1) : 0;
    p->last_recv = p->last_send = r->now;
    HASH_ADD(hh, r->peers, rid, p->rid_len, p);
    if (worker)
        q->n_workers++;
    hx_info("%s %s joined", worker ? "worker" : "clinic", p->name);

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
    else if (strlen(m->type) > HX_TYPE_MAX)
        snprintf(why, cap, "messages[%zu].type: longer than %d characters", i, HX_TYPE_MAX);
    else if (m->correlation_id.len != 0 && m->correlation_id.len != HX_ID_LEN)
        snprintf(why, cap, "messages[%zu].correlation_id: must be empty or %d bytes", i, HX_ID_LEN);
    else
        return true;
    return false;
}

static bool is_known(const hx_router_t *r, const uint8_t *id)
{
    entry_t *e = NULL;
    HASH_FIND(hh, r->entries, id, HX_ID_LEN, e);
    return e || dedup_has(r, id);
}

static void entry_free(hx_router_t *r, entry_t *e)
{
    HASH_DELETE(hh, r->entries, e);
    r->cfg.store->ops->settle(r->cfg.store, e->handle);
    free(e);
}

/* Accepts msgs from p all or none. Returns ERR_NONE, or an error code with text in why. */
static Handoff__ErrorCode accept_messages(hx_router_t *r, peer_t *p, Handoff__Message **msgs, size_t n, char *why,
                                          size_t cap)
{
    if (n > HX_MAX_BATCH) {
        snprintf(why, cap, "messages: at most %d in one request, got %zu", HX_MAX_BATCH, n);
        return HANDOFF__ERROR_CODE__ERR_BAD_FIELD;
    }
    for (size_t i = 0; i < n; i++)
        if (!message_valid(msgs[i], i, why, cap))
            return HANDOFF__ERROR_CODE__ERR_BAD_FIELD;

    /* Phase 1: every target queue exists and has room. */
    queue_t *targets[HX_MAX_BATCH];
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
        if (q->n_waiting + q->n_inflight + q->pending >= r->cfg.max_queue) {
            snprintf(why, cap, "messages[%zu].to: %s %s is full (%u messages); retry later",
                     i, q->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? "service" : "mailbox", queue_name(q),
                     r->cfg.max_queue);
            code = HANDOFF__ERROR_CODE__ERR_BUSY;
            break;
        }
        q->pending++;
        targets[i] = q;
    }
    for (size_t j = 0; j < i; j++)
        if (targets[j])
            targets[j]->pending = 0;
    if (code != HANDOFF__ERROR_CODE__ERR_NONE)
        return code;

    /* Phase 2: store and enqueue; on a store failure undo this request's entries. */
    Handoff__Address from;
    handoff__address__init(&from);
    from.kind = p->role == HANDOFF__ROLE__ROLE_WORKER ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE
                                                     : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    from.name = p->name;
    uint64_t at = wall_ms();
    entry_t *added[HX_MAX_BATCH];
    size_t n_added = 0;
    for (i = 0; i < n; i++) {
        Handoff__Message *m = msgs[i];
        if (!targets[i] || is_known(r, m->id.data)) {
            r->stats.duplicates++;
            continue;
        }
        Handoff__Address *saved = m->from;
        m->from = &from;
        m->accepted_at_ms = at;
        m->attempt = 0;
        size_t len = handoff__message__get_packed_size(m);
        int rc = hx_buf_reserve(&r->scratch, len);
        if (rc == 0) {
            handoff__message__pack(m, r->scratch.data);
        }
        m->from = saved;
        entry_t *e = rc == 0 ? calloc(1, sizeof *e) : NULL;
        if (!e || r->cfg.store->ops->put(r->cfg.store, r->scratch.data, len, &e->handle)) {
            free(e);
            while (n_added) {
                entry_t *u = added[--n_added];
                DL_DELETE(u->queue->waiting, u);
                u->queue->n_waiting--;
                entry_free(r, u);
            }
            snprintf(why, cap, "the broker cannot store messages now");
            return HANDOFF__ERROR_CODE__ERR_UNAVAILABLE;
        }
        memcpy(e->id, m->id.data, HX_ID_LEN);
        e->queue = targets[i];
        HASH_ADD(hh, r->entries, id, HX_ID_LEN, e);
        DL_APPEND(e->queue->waiting, e);
        e->queue->n_waiting++;
        added[n_added++] = e;
    }
    for (i = 0; i < n_added; i++) {
        dedup_add(r, added[i]->id);
        r->stats.accepted++;
    }
    for (i = 0; i < n_added; i++)
        dispatch(r, added[i]->queue);
    return HANDOFF__ERROR_CODE__ERR_NONE;
}

static void on_submit(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    char why[256];
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
    Handoff__ErrorCode code = accept_messages(r, p, env->messages, env->n_messages, why, sizeof why);
    if (code != HANDOFF__ERROR_CODE__ERR_NONE) {
        reply_error(r, p->rid, p->rid_len, p, env->id, code, "%s", why);
        return;
    }
    reply_simple(r, p, HANDOFF__KIND__KIND_ACCEPTED, env->id);
}

/* Finds the entries named by env->acks; all must be p's to settle. */
static bool collect_acks(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, bool held_only, entry_t **found)
{
    if (env->n_acks > HX_MAX_BATCH) {
        reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "acks: at most %d in one request, got %zu", HX_MAX_BATCH, env->n_acks);
        return false;
    }
    for (size_t i = 0; i < env->n_acks; i++) {
        char hex[2 * HX_ID_LEN + 1];
        found[i] = NULL;
        if (env->acks[i].len != HX_ID_LEN) {
            reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                        "acks[%zu]: must be %d bytes, got %zu", i, HX_ID_LEN, env->acks[i].len);
            return false;
        }
        entry_t *e = NULL;
        HASH_FIND(hh, r->entries, env->acks[i].data, HX_ID_LEN, e);
        if (e && e->queue == p->queue && (!held_only || e->holder == p)) {
            found[i] = e;
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

static void settle(hx_router_t *r, entry_t *e)
{
    queue_t *q = e->queue;
    peer_t *h = e->holder;
    if (h) {
        DL_DELETE(h->inflight, e);
        h->n_inflight--;
        q->n_inflight--;
        ready_add(h);
    } else {
        DL_DELETE(q->waiting, e);
        q->n_waiting--;
    }
    entry_free(r, e);
    r->stats.acked++;
}

static void on_ack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    entry_t *found[HX_MAX_BATCH];
    char why[256];
    if (!collect_acks(r, p, env, false, found))
        return;
    if (env->n_messages) {
        Handoff__ErrorCode code = accept_messages(r, p, env->messages, env->n_messages, why, sizeof why);
        if (code != HANDOFF__ERROR_CODE__ERR_NONE) {
            reply_error(r, p->rid, p->rid_len, p, env->id, code, "%s", why);
            return;
        }
    }
    for (size_t i = 0; i < env->n_acks; i++)
        if (found[i]) {
            for (size_t j = i + 1; j < env->n_acks; j++)   /* the same id twice in one ack */
                if (found[j] == found[i])
                    found[j] = NULL;
            settle(r, found[i]);
        }
    if (env->id.len == HX_ID_LEN)
        reply_simple(r, p, HANDOFF__KIND__KIND_ACCEPTED, env->id);
    dispatch(r, p->queue);
}

static void on_nack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    entry_t *found[HX_MAX_BATCH];
    if (!collect_acks(r, p, env, true, found))
        return;
    for (size_t i = 0; i < env->n_acks; i++) {
        entry_t *e = found[i];
        if (!e || e->holder != p)
            continue;
        DL_DELETE(p->inflight, e);
        p->n_inflight--;
        e->holder = NULL;
        e->queue->n_inflight--;
        DL_APPEND(e->queue->waiting, e);   /* behind the others: one bad message does not block its queue */
        e->queue->n_waiting++;
        r->stats.nacked++;
        char hex[2 * HX_ID_LEN + 1];
        hx_id_hex(e->id, hex);
        hx_warn("%s nacked %s (attempt %u): %.120s", p->name, hex, e->attempt, env->error_text);
    }
    ready_add(p);
    if (env->id.len == HX_ID_LEN)
        reply_simple(r, p, HANDOFF__KIND__KIND_ACCEPTED, env->id);
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
    for (uint32_t k = 0; k < max && q->waiting; k++) {
        entry_t *e = q->waiting;
        const uint8_t *body;
        size_t len;
        if (r->cfg.store->ops->get(r->cfg.store, e->handle, &body, &len))
            break;
        if (k > 0 && r->out.len + len + 32 > r->cfg.max_frame)
            break;
        if (hx_wire_append_message(&r->out, body, len, e->attempt + 1))
            break;
        DL_DELETE(q->waiting, e);
        q->n_waiting--;
        e->holder = p;
        DL_APPEND(p->inflight, e);
        p->n_inflight++;
        q->n_inflight++;
        if (++e->attempt > 1)
            r->stats.redelivered++;
        r->stats.delivered++;
    }
    if (send_buf(r, p->rid, p->rid_len, p))
        peer_drop(r, p, "unreachable");
}

void hx_router_on_frame(hx_router_t *r, const uint8_t *rid, size_t rid_len, const uint8_t *frame, size_t len,
                        uint64_t now_ms)
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
    Handoff__Envelope *env = len ? handoff__envelope__unpack(NULL, len, frame) : NULL;
    if (!env) {
        reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_MALFORMED, "frame is not a decodable Envelope");
        return;
    }
    if (env->version != HX_PROTOCOL_VERSION) {
        reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_VERSION,
                    "version: %u is not supported (this broker speaks %d)", env->version, HX_PROTOCOL_VERSION);
    } else if (env->id.len != 0 && env->id.len != HX_ID_LEN) {
        reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "id: must be %d bytes, got %zu",
                    HX_ID_LEN, env->id.len);
    } else if (env->kind == HANDOFF__KIND__KIND_HELLO) {
        on_hello(r, rid, rid_len, p, env);
    } else if (env->kind == HANDOFF__KIND__KIND_BYE) {
        if (p) {
            queue_t *q = p->queue;
            peer_drop(r, p, "said bye");
            dispatch(r, q);
        }
    } else if (env->kind != HANDOFF__KIND__KIND_SUBMIT && env->kind != HANDOFF__KIND__KIND_ACK &&
               env->kind != HANDOFF__KIND__KIND_NACK && env->kind != HANDOFF__KIND__KIND_FETCH &&
               env->kind != HANDOFF__KIND__KIND_HEARTBEAT) {
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
        default: break;                                /* HEARTBEAT: last_recv is enough */
        }
    }
    handoff__envelope__free_unpacked(env, NULL);
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

void hx_router_tick(hx_router_t *r, uint64_t now_ms)
{
    r->now = now_ms;
    uint64_t expiry = (uint64_t)r->cfg.heartbeat_ms * r->cfg.liveness;
    peer_t *p, *tmp;
    HASH_ITER(hh, r->peers, p, tmp) {
        if (now_ms - p->last_recv > expiry) {
            queue_t *q = p->queue;
            peer_drop(r, p, "heartbeat expired");
            dispatch(r, q);
        } else if (now_ms - p->last_send >= r->cfg.heartbeat_ms) {
            Handoff__Envelope env;
            env_init(&env, HANDOFF__KIND__KIND_HEARTBEAT, (ProtobufCBinaryData){0, NULL});
            if (send_env(r, p->rid, p->rid_len, p, &env)) {
                queue_t *q = p->queue;
                peer_drop(r, p, "unreachable");
                dispatch(r, q);
            }
        }
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

hx_router_t *hx_router_new(const hx_router_config_t *cfg)
{
    if (!cfg || !cfg->send || !cfg->store)
        return NULL;
    hx_router_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    if (!r->cfg.heartbeat_ms) r->cfg.heartbeat_ms = 1000;
    if (!r->cfg.liveness) r->cfg.liveness = 3;
    if (!r->cfg.max_frame) r->cfg.max_frame = HX_DEFAULT_MAX_FRAME;
    if (!r->cfg.max_queue) r->cfg.max_queue = 100000;
    if (!r->cfg.max_queues) r->cfg.max_queues = 10000;
    return r;
}

void hx_router_destroy(hx_router_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_router_t *r = *self_p;
    peer_t *p, *ptmp;
    HASH_ITER(hh, r->peers, p, ptmp) {
        HASH_DELETE(hh, r->peers, p);
        free(p);
    }
    entry_t *e, *etmp;
    HASH_ITER(hh, r->entries, e, etmp)
        entry_free(r, e);
    queue_t *q, *qtmp;
    HASH_ITER(hh, r->queues, q, qtmp) {
        HASH_DELETE(hh, r->queues, q);
        free(q);
    }
    dedup_t *d, *dtmp;
    HASH_ITER(hh, r->dedup, d, dtmp) {
        HASH_DELETE(hh, r->dedup, d);
        free(d);
    }
    hx_buf_free(&r->out);
    hx_buf_free(&r->scratch);
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
    for (p = r->peers; p; p = p->hh.next) {
        out->peers++;
        if (p->role == HANDOFF__ROLE__ROLE_WORKER)
            out->workers++;
        else
            out->clinics++;
    }
}
