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
 * durable. If the store fails, the action is undone and answered ERR_UNAVAILABLE.
 *
 * The router's files: this one (sessions, sending, frames, time, life), hx_router_queue.c
 * (message states, lanes, dedup, transactions, failures, delivery), hx_router_request.c
 * (SUBMIT, ACK, NACK, FETCH and the routing policy), hx_router_admin.c (ADMIN and the
 * statistics), hx_router_recover.c (rebuilding from the store); what they share is in
 * hx_router_internal.h, with the rt_ prefix. */
#include "hx_router_internal.h"

/* ---- helpers ------------------------------------------------------------------------ */

uint64_t rt_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t rt_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *rt_role_word(Handoff__Role role)
{
    return role == HANDOFF__ROLE__ROLE_WORKER     ? "service"
           : role == HANDOFF__ROLE__ROLE_ADMIN    ? "admin"
           : role == HANDOFF__ROLE__ROLE_REVIEWER ? "reviewer"
                                                  : "clinic";
}

queue_t *rt_queue_find(const hx_router_t *r, Handoff__AddressKind kind, const char *name)
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
queue_t *rt_queue_get(hx_router_t *r, Handoff__AddressKind kind, const char *name)
{
    queue_t *q = rt_queue_find(r, kind, name);
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

/* ---- sending ------------------------------------------------------------------------ */

int rt_send_buf(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p)
{
    int rc = r->cfg.send(r->cfg.send_arg, rid, rid_len, r->out.data, r->out.len);
    if (rc == 0 && p)
        p->last_send = r->now;
    return rc;
}

void rt_env_init(Handoff__Envelope *env, Handoff__Kind kind, ProtobufCBinaryData corr)
{
    handoff__envelope__init(env);
    env->version = HX_PROTOCOL_VERSION;
    env->kind = kind;
    env->correlation_id = corr;
}

int rt_send_env(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, const Handoff__Envelope *env)
{
    if (hx_wire_pack(env, &r->out))
        return -1;
    return rt_send_buf(r, rid, rid_len, p);
}


void rt_audit(hx_router_t *r, const peer_t *p, const char *action, const uint8_t *id, const char *outcome)
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
        snprintf(who, sizeof who, "%s:%s", rt_role_word(p->role), p->name);
    else
        snprintf(who, sizeof who, "(no session)");
    r->cfg.audit(r->cfg.audit_arg, who, action, hex, outcome);
}

void rt_reply_error(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, ProtobufCBinaryData corr,
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
        rt_audit(r, p, "request", corr.len == HX_ID_LEN ? corr.data : NULL, outcome);
    }
    Handoff__Envelope env;
    rt_env_init(&env, HANDOFF__KIND__KIND_ERROR, corr);
    env.error_code = code;
    env.error_text = text;
    r->stats.refused++;
    r->stats.refused_by_code[(unsigned)code < HX_ROUTER_CODES ? (unsigned)code : 0]++;
    hx_debug("refused %s from %s: %s", hx_wire_error_text(code), p ? p->name : "(no session)", text);
    rt_send_env(r, rid, rid_len, p, &env);
}

/* ---- sessions ----------------------------------------------------------------------- */

/* Ends p's session. Its unacked messages go back: a clinic's to the front of its mailbox in
 * order; a worker's count as failed deliveries when `failure` (it died or went silent),
 * otherwise (it said bye, or was never reached) straight back to the front. */
void rt_peer_drop(hx_router_t *r, peer_t *p, const char *why, bool failure)
{
    size_t back = p->n_inflight;
    bool count = failure && p->role == HANDOFF__ROLE__ROLE_WORKER;
    bool began = count && back && rt_failures_begin(r), logged = false;
    while (p->inflight) {
        entry_t *e = p->inflight->prev;          /* the tail: prepend newest first keeps order */
        rt_entry_unlink(r, e);
        if (count)
            rt_failed(r, e, why, &logged);
        else
            rt_to_waiting(e, true);
    }
    rt_failures_end(r, began, logged);
    rt_ready_remove(p);
    if (p->role == HANDOFF__ROLE__ROLE_WORKER)
        p->queue->n_workers--;
    if (back)
        hx_warn("%s %s left (%s): %zu unacked message(s) back to %s", p->role == HANDOFF__ROLE__ROLE_WORKER ? "worker" : "session",
                p->name, why, back, rt_queue_name(p->queue));
    else
        hx_debug("%s left (%s)", p->name, why);
    HASH_DELETE(hh, r->peers, p);
    free(p);
}

/* True when an authenticated principal may open this session. */
static bool principal_permits(const char *principal, Handoff__Role role, const char *name)
{
    const char *want = role == HANDOFF__ROLE__ROLE_CLINIC   ? "clinic:"
                       : role == HANDOFF__ROLE__ROLE_WORKER ? "service:"
                       : role == HANDOFF__ROLE__ROLE_ADMIN  ? "admin:"
                       : role == HANDOFF__ROLE__ROLE_REVIEWER ? "reviewer:"
                                                            : NULL;
    size_t n = want ? strlen(want) : 0;
    return want && strncmp(principal, want, n) == 0 && strcmp(principal + n, name) == 0;
}

static void on_hello(hx_router_t *r, const uint8_t *rid, size_t rid_len, peer_t *p, const Handoff__Envelope *env,
                     const char *principal)
{
    bool worker = env->role == HANDOFF__ROLE__ROLE_WORKER;
    if (env->role != HANDOFF__ROLE__ROLE_CLINIC && !worker && env->role != HANDOFF__ROLE__ROLE_ADMIN &&
        env->role != HANDOFF__ROLE__ROLE_REVIEWER) {
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "role: must be ROLE_CLINIC, ROLE_WORKER, ROLE_ADMIN or ROLE_REVIEWER, got %d", (int)env->role);
        return;
    }
    if (!hx_name_valid(env->name)) {
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "name: must be 1 to %d characters of [A-Za-z0-9._-]", HX_NAME_MAX);
        return;
    }
    if (principal && r->cfg.principal_allowed && !r->cfg.principal_allowed(r->cfg.principal_arg, principal)) {
        hx_warn("refused: %s is no longer in the allow-list", principal);
        if (r->cfg.audit)
            r->cfg.audit(r->cfg.audit_arg, principal, "hello", "", "refused: the key is no longer allowed");
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "this key (%s) is no longer allowed", principal);
        return;
    }
    if (principal && !principal_permits(principal, env->role, env->name)) {
        hx_warn("refused: the key of %s asked for a session as %s %s", principal, rt_role_word(env->role),
                env->name);
        if (r->cfg.audit) {
            char outcome[160];
            snprintf(outcome, sizeof outcome, "refused: asked for a session as %s %s", rt_role_word(env->role),
                     env->name);
            r->cfg.audit(r->cfg.audit_arg, principal, "hello", "", outcome);
        }
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "this key belongs to %s: it may not open a session as %s %s", principal,
                    rt_role_word(env->role), env->name);
        return;
    }
    if (worker && env->credit > HX_MAX_CREDIT) {
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "credit: must be 0 to %d, got %u", HX_MAX_CREDIT, env->credit);
        return;
    }
    if (rid_len > sizeof p->rid)
        return;                                     /* libzmq routing ids are at most 255 bytes */
    /* An admin session reads no queue of its own: it gets a mailbox named "admin.<name>". */
    char qname[HX_NAME_MAX + 8];
    snprintf(qname, sizeof qname, "%s%s", env->role == HANDOFF__ROLE__ROLE_ADMIN ? "admin." : "", env->name);
    queue_t *q = rt_queue_get(r, worker ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX,
                           qname);
    if (!q) {
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BUSY, "the broker holds %u queues, its bound",
                    r->cfg.max_queues);
        return;
    }
    if (p) {                                        /* a new session on the same connection */
        queue_t *old = p->queue;
        rt_peer_drop(r, p, "said hello again", false);
        rt_dispatch(r, old);
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return;
    memcpy(p->rid, rid, rid_len);
    p->rid_len = rid_len;
    p->role = env->role;
    snprintf(p->name, sizeof p->name, "%s", env->name);
    snprintf(p->principal, sizeof p->principal, "%s", principal ? principal : "");
    snprintf(p->origin, sizeof p->origin, "%s:%s", rt_role_word(p->role), p->name);
    p->queue = q;
    p->credit = worker ? (env->credit ? env->credit : 1) : 0;
    p->last_recv = p->last_send = r->now;
    HASH_ADD(hh, r->peers, rid, p->rid_len, p);
    if (worker)
        q->n_workers++;
    hx_info("%s %s joined", worker ? "worker" : rt_role_word(env->role), p->name);
    rt_audit(r, p, "hello", NULL, "session opened");

    Handoff__Envelope w;
    rt_env_init(&w, HANDOFF__KIND__KIND_WELCOME, env->id);
    w.heartbeat_ms = r->cfg.heartbeat_ms;
    w.liveness = r->cfg.liveness;
    w.max_frame = r->cfg.max_frame;
    rt_send_env(r, p->rid, p->rid_len, p, &w);
    rt_ready_add(p);
    rt_dispatch(r, q);
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
    peer_t *p = rt_peer_find(r, rid, rid_len);
    if (p)
        p->last_recv = now_ms;
    if (len > r->cfg.max_frame) {
        rt_reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_TOO_LARGE,
                    "frame of %zu bytes exceeds max_frame %u", len, r->cfg.max_frame);
        return;
    }
    Handoff__Envelope *env = len ? handoff__envelope__unpack(&r->arena.pb, len, frame) : NULL;
    if (!env) {
        hx_arena_reset(&r->arena);
        rt_reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_MALFORMED, "frame is not a decodable Envelope");
        return;
    }
    char why[160];
    if (env->version != HX_PROTOCOL_VERSION) {
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_VERSION,
                    "version: %u is not supported (this broker speaks %d)", env->version, HX_PROTOCOL_VERSION);
    } else if ((env->kind == HANDOFF__KIND__KIND_HELLO || env->kind == HANDOFF__KIND__KIND_ADMIN ||
                env->n_messages) && !hx_wire_strings_clean(frame, len, why, sizeof why)) {
        /* (only where a string is used: a name, an op, a message's type or address) */
        rt_reply_error(r, rid, rid_len, p, env->id.len == HX_ID_LEN ? env->id : none, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "%s", why);
    } else if (env->id.len != 0 && env->id.len != HX_ID_LEN) {
        rt_reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_BAD_FIELD, "id: must be %d bytes, got %zu",
                    HX_ID_LEN, env->id.len);
    } else if (env->kind == HANDOFF__KIND__KIND_HELLO) {
        on_hello(r, rid, rid_len, p, env, principal);
    } else if (env->kind == HANDOFF__KIND__KIND_BYE) {
        if (p) {
            queue_t *q = p->queue;
            rt_peer_drop(r, p, "said bye", false);
            rt_dispatch(r, q);
        }
    } else if (env->kind != HANDOFF__KIND__KIND_SUBMIT && env->kind != HANDOFF__KIND__KIND_ACK &&
               env->kind != HANDOFF__KIND__KIND_NACK && env->kind != HANDOFF__KIND__KIND_FETCH &&
               env->kind != HANDOFF__KIND__KIND_HEARTBEAT && env->kind != HANDOFF__KIND__KIND_ADMIN) {
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNKNOWN_KIND,
                    "kind: %d is not a request a peer may send", (int)env->kind);
    } else if (!p) {
        rt_reply_error(r, rid, rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_NOT_READY, "no session: send HELLO first");
    } else {
        switch (env->kind) {
        case HANDOFF__KIND__KIND_SUBMIT: rt_on_submit(r, p, env); break;
        case HANDOFF__KIND__KIND_ACK: rt_on_ack(r, p, env); break;
        case HANDOFF__KIND__KIND_NACK: rt_on_nack(r, p, env); break;
        case HANDOFF__KIND__KIND_FETCH: rt_on_fetch(r, p, env); break;
        case HANDOFF__KIND__KIND_ADMIN: rt_on_admin(r, p, env); break;
        default: break;                                /* HEARTBEAT: last_recv is enough */
        }
    }
    hx_arena_reset(&r->arena);                         /* frees env */
}

void hx_router_on_bad_frames(hx_router_t *r, const uint8_t *rid, size_t rid_len, size_t frames, uint64_t now_ms)
{
    static const ProtobufCBinaryData none = {0, NULL};
    r->now = now_ms;
    peer_t *p = rt_peer_find(r, rid, rid_len);
    if (p)
        p->last_recv = now_ms;
    rt_reply_error(r, rid, rid_len, p, none, HANDOFF__ERROR_CODE__ERR_MALFORMED,
                "a message is exactly 1 frame (the Envelope), got %zu", frames);
}

/* ---- time ---------------------------------------------------------------------------------- */

void hx_router_tick(hx_router_t *r, uint64_t now_ms)
{
    r->now = now_ms;
    r->cfg.store->ops->tick(r->cfg.store, now_ms);
    rt_compact_tick(r, now_ms);
    uint64_t expiry = (uint64_t)r->cfg.heartbeat_ms * r->cfg.liveness;
    peer_t *p, *tmp;
    HASH_ITER(hh, r->peers, p, tmp) {
        if (now_ms - p->last_recv > expiry) {
            queue_t *q = p->queue;
            r->stats.expired++;
            rt_peer_drop(r, p, "heartbeat expired", true);
            rt_dispatch(r, q);
            continue;
        }
        if (now_ms - p->last_send >= r->cfg.heartbeat_ms) {
            Handoff__Envelope env;
            rt_env_init(&env, HANDOFF__KIND__KIND_HEARTBEAT, (ProtobufCBinaryData){0, NULL});
            if (rt_send_env(r, p->rid, p->rid_len, p, &env)) {
                queue_t *q = p->queue;
                rt_peer_drop(r, p, "unreachable", true);
                rt_dispatch(r, q);
                continue;
            }
        }
        if (p->role == HANDOFF__ROLE__ROLE_WORKER && p->inflight &&
            now_ms - p->inflight->delivered_at > r->cfg.ack_timeout_ms) {
            bool began = rt_failures_begin(r), logged = false;
            while (p->inflight && now_ms - p->inflight->delivered_at > r->cfg.ack_timeout_ms) {
                entry_t *e = p->inflight;
                rt_entry_unlink(r, e);
                rt_failed(r, e, "no ack within the ack timeout", &logged);
            }
            rt_failures_end(r, began, logged);
            rt_dispatch(r, p->queue);
        }
    }
    /* backoffs that are over: to the front of their queue */
    while (r->delayed && r->delayed->due <= now_ms) {
        entry_t *e = r->delayed;
        rt_entry_unlink(r, e);
        rt_to_waiting(e, true);
        rt_dispatch(r, e->lane->queue);
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
        rt_env_init(&env, HANDOFF__KIND__KIND_BYE, (ProtobufCBinaryData){0, NULL});
        rt_send_env(r, p->rid, p->rid_len, p, &env);
        queue_t *q = p->queue;
        rt_peer_drop(r, p, "key removed", false);
        rt_dispatch(r, q);
    }
}

void hx_router_goodbye(hx_router_t *r)
{
    peer_t *p, *tmp;
    HASH_ITER(hh, r->peers, p, tmp) {
        Handoff__Envelope env;
        rt_env_init(&env, HANDOFF__KIND__KIND_BYE, (ProtobufCBinaryData){0, NULL});
        rt_send_env(r, p->rid, p->rid_len, p, &env);
    }
}

/* ---- life ---------------------------------------------------------------------------------- */

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(entry_t) == 88, "an entry is 88 bytes on 64-bit machines (RSS per queued message)");
#endif

hx_router_t *hx_router_new(const hx_router_config_t *cfg)
{
    if (!cfg || !cfg->send || !cfg->store)
        return NULL;
    hx_router_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->born_ms = rt_mono_ms();
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
    r->entry_pool = hx_pool_new(sizeof(entry_t));
    r->dedup_pool = hx_pool_new(sizeof(dedup_t));
    if (!r->policy || !r->entry_pool || !r->dedup_pool || hx_arena_init(&r->arena, 64 * 1024) ||
        hx_idmap_init(&r->entries) || hx_idmap_init(&r->dedup)) {
        hx_pool_destroy(&r->entry_pool);
        hx_pool_destroy(&r->dedup_pool);
        hx_policy_destroy(&r->own_policy);
        hx_arena_free(&r->arena);
        hx_idmap_free(&r->entries);
        hx_idmap_free(&r->dedup);
        free(r);
        return NULL;
    }
    r->cfg.store->on_commit = rt_on_commit;
    r->cfg.store->dedup_ids = rt_dedup_ids;
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
    rt_moves_free(r);
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
        hx_pool_free(r->entry_pool, e);         /* (a block is freed when it empties) */
    }
    hx_pool_destroy(&r->entry_pool);
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
    DL_FOREACH_SAFE(r->dedup_fifo, d, dtmp) hx_pool_free(r->dedup_pool, d);
    r->dedup_fifo = NULL;
    hx_pool_destroy(&r->dedup_pool);
    hx_idmap_free(&r->dedup);
    r->cfg.store->on_commit = NULL;
    r->cfg.store->dedup_ids = NULL;
    hx_buf_free(&r->out);
    hx_buf_free(&r->scratch);
    hx_arena_free(&r->arena);
    free(r);
    *self_p = NULL;
}
