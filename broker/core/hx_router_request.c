/* hx_router_request — the requests that carry messages or acks: SUBMIT, ACK (with
 * outputs), NACK and FETCH; message checks and the routing policy; accepting messages into a
 * store transaction, all or none. */
#include "hx_router_internal.h"

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

/* The routing policy (hx_policy): may p send m? Writes the refusal into why. */
static bool policy_permits(const hx_router_t *r, const peer_t *p, const Handoff__Message *m, size_t i, char *why,
                           size_t cap)
{
    bool to_service = m->to->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE;
    hx_policy_role_t role = p->role == HANDOFF__ROLE__ROLE_WORKER  ? HX_POLICY_SERVICE
                            : p->role == HANDOFF__ROLE__ROLE_ADMIN ? HX_POLICY_ADMIN
                            : p->role == HANDOFF__ROLE__ROLE_REVIEWER ? HX_POLICY_REVIEWER
                                                                   : HX_POLICY_CLINIC;
    if (hx_policy_allows(r->policy, role, p->name, to_service ? HX_POLICY_TO_SERVICE : HX_POLICY_TO_MAILBOX,
                         m->to->name, m->type))
        return true;
    snprintf(why, cap, "messages[%zu]: %s %.64s may not send %.128s to %s %.64s (routing policy)", i,
             rt_role_word(p->role), p->name, m->type, to_service ? "service" : "mailbox", m->to->name);
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
    uint64_t at = rt_wall_ms();
    Handoff__ErrorCode code = HANDOFF__ERROR_CODE__ERR_NONE;
    size_t i;
    for (i = 0; i < n; i++) {
        targets[i] = NULL;
        if (rt_is_known(r, msgs[i]->id.data))
            continue;
        queue_t *q = rt_queue_get(r, msgs[i]->to->kind, msgs[i]->to->name);
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
        if (service && !origin && !(origin = rt_origin_get(r, origin_name))) {
            snprintf(why, cap, "the broker is out of memory");
            code = HANDOFF__ERROR_CODE__ERR_UNAVAILABLE;
            break;
        }
        /* a mailbox never refuses a service: what services deliver must not stall the
         * pipeline (the depth is a metric with an alert rule instead) */
        if ((service || !worker) && (q->n_held + q->pending >= r->cfg.max_queue ||
                                     q->bytes + q->pending_bytes + size > r->cfg.max_queue_bytes)) {
            snprintf(why, cap, "messages[%zu].to: %s %s is full (%u messages or %llu bytes); retry later", i,
                     service ? "service" : "mailbox", rt_queue_name(q), r->cfg.max_queue,
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
        rt_origin_release(r, origin);
        return code;
    }

    /* Phase 2: into the transaction. */
    for (i = 0; i < n; i++) {
        Handoff__Message *m = msgs[i];
        if (!targets[i] || rt_entry_find(r, m->id.data)) {   /* phase 1 checked the dedup window */
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
            e = rt_entry_new(r, m->id.data, targets[i], origin, (int)m->priority, handle, len, at);
            if (!e)
                r->cfg.store->ops->release(r->cfg.store, handle);
        }
        if (!e) {
            while (*n_added) {
                entry_t *u = added[--*n_added];
                rt_dedup_remove(r, u->id);
                rt_held_sub(u);
                rt_entry_free(r, u);
            }
            rt_origin_release(r, origin);
            snprintf(why, cap, "the broker cannot store messages now");
            return HANDOFF__ERROR_CODE__ERR_UNAVAILABLE;
        }
        added[(*n_added)++] = e;
        if (r->cfg.audit) {
            char outcome[HX_NAME_MAX + 32];
            snprintf(outcome, sizeof outcome, "stored for %s", rt_queue_name(e->lane->queue));
            rt_audit(r, p, "submit", e->id, outcome);
        }
    }
    rt_origin_release(r, origin);                  /* all duplicates: nothing uses it */
    return HANDOFF__ERROR_CODE__ERR_NONE;
}

/* The refusal every changing request gets while the store cannot write. */
bool rt_store_refuses(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    const char *why = "";
    if (r->cfg.store->ops->health(r->cfg.store, &why) == 0)
        return false;
    rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
    return true;
}

/* Opens the transaction of a request that changes something, or refuses the request. */
bool rt_open_request(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    if (rt_store_refuses(r, p, env))
        return false;
    if (rt_txn_begin(r) == 0)
        return true;
    char why[256];
    rt_store_why(r, why, sizeof why);
    rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
    return false;
}

/* Ends a request's transaction and queues its action; undoes it if the end fails. */
void rt_commit_request(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, Handoff__Kind reply,
                           entry_t **added, size_t n_added, entry_t **settled, size_t n_settled, bool began)
{
    uint64_t seq = r->last_seq;
    int rc = began ? rt_txn_end(r, &seq) : 0;
    action_t *a = rc == 0 ? rt_action_new(p, env->id, reply, n_added, n_settled) : NULL;
    if (!a) {
        for (size_t i = 0; i < n_added; i++) {
            rt_dedup_remove(r, added[i]->id);
            rt_held_sub(added[i]);
            rt_entry_free(r, added[i]);
        }
        for (size_t i = 0; i < n_settled; i++)
            rt_to_waiting(settled[i], true);
        char why[256];
        rt_store_why(r, why, sizeof why);
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
        return;
    }
    if (n_added)
        memcpy(a->added, added, n_added * sizeof *added);
    a->n_added = n_added;
    if (n_settled)
        memcpy(a->settled, settled, n_settled * sizeof *settled);
    a->n_settled = n_settled;
    rt_action_queue(r, a, seq);
    rt_actions_settle(r);
}

void rt_on_submit(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    char why[512];
    if (env->id.len != HX_ID_LEN) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "id: a SUBMIT must carry a %d-byte request id", HX_ID_LEN);
        return;
    }
    if (env->n_messages == 0) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "messages: a SUBMIT carries at least one message");
        return;
    }
    if (!rt_open_request(r, p, env))
        return;
    entry_t *added[HX_MAX_BATCH];
    size_t n_added;
    const lineage_t own = {NULL, 0, false};
    Handoff__ErrorCode code =
        accept_messages(r, p, env->messages, env->n_messages, &own, added, &n_added, why, sizeof why);
    if (code != HANDOFF__ERROR_CODE__ERR_NONE) {
        r->cfg.store->ops->abort(r->cfg.store);
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, code, "%s", why);
        return;
    }
    if (n_added == 0)                           /* all known already: answered after the originals */
        r->cfg.store->ops->abort(r->cfg.store);
    rt_commit_request(r, p, env, HANDOFF__KIND__KIND_ACCEPTED, added, n_added, NULL, 0, n_added > 0);
}

/* Finds the entries named by env->acks. Acks must name messages of p's own queue;
 * held_only: held by p right now. */
static bool collect_acks(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, bool held_only, entry_t **found)
{
    if (env->n_acks > HX_MAX_BATCH) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
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
            rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                        "acks[%zu]: must be %d bytes, got %zu", i, HX_ID_LEN, env->acks[i].len);
            return false;
        }
        entry_t *e = rt_entry_find(r, env->acks[i].data);
        bool mine = e && e->lane->queue == p->queue && e->state != E_DEAD && e->state != E_PENDING;
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
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE,
                    "acks[%zu]: message %s is not %s", i, hex, held_only ? "held by you" : "in your queue");
        return false;
    }
    return true;
}

void rt_on_ack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    entry_t *found[HX_MAX_BATCH], *added[HX_MAX_BATCH], *settled[HX_MAX_BATCH];
    size_t n_added = 0, n_settled = 0;
    char why[512];
    if (!collect_acks(r, p, env, false, found))
        return;
    if (!rt_open_request(r, p, env))
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
            rt_reply_error(r, p->rid, p->rid_len, p, env->id, code, "%s", why);
            return;
        }
    }
    for (size_t i = 0; i < env->n_acks; i++) {
        entry_t *e = found[i];
        if (!e)
            continue;
        r->cfg.store->ops->settle(r->cfg.store, e->id);
        rt_entry_unlink(r, e);
        e->state = E_SETTLING;
        settled[n_settled++] = e;
    }
    bool began = n_added || n_settled;
    if (!began)
        r->cfg.store->ops->abort(r->cfg.store);
    /* the commit dispatches, and a delivery to p that fails drops p: its queue is kept first */
    queue_t *q = p->queue;
    if (env->id.len == HX_ID_LEN || began)
        rt_commit_request(r, p, env, HANDOFF__KIND__KIND_ACCEPTED, added, n_added, settled, n_settled, began);
    rt_dispatch(r, q);
}

void rt_on_nack(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    entry_t *found[HX_MAX_BATCH];
    if (p->role != HANDOFF__ROLE__ROLE_WORKER) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "NACK: only a worker nacks; a clinic that cannot keep a message does not ack it, and gets it "
                    "again from its next session");
        return;
    }
    if (!collect_acks(r, p, env, true, found))
        return;
    bool began = rt_failures_begin(r), logged = false;
    for (size_t i = 0; i < env->n_acks; i++) {
        entry_t *e = found[i];
        if (!e)
            continue;
        rt_entry_unlink(r, e);
        r->stats.nacked++;
        char hex[2 * HX_ID_LEN + 1];
        hx_id_hex(e->id, hex);
        hx_warn("%s nacked %s (attempt %u): %.120s", p->name, hex, e->attempt, env->error_text);
        rt_failed(r, e, env->error_text, &logged);
    }
    rt_failures_end(r, began, logged);
    rt_ready_add(p);
    queue_t *q = p->queue;                      /* as for an ack: p may be dropped by the commit */
    if (env->id.len == HX_ID_LEN)
        rt_commit_request(r, p, env, HANDOFF__KIND__KIND_ACCEPTED, NULL, 0, NULL, 0, false);
    rt_dispatch(r, q);
}

void rt_on_fetch(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    if (p->role != HANDOFF__ROLE__ROLE_CLINIC && p->role != HANDOFF__ROLE__ROLE_REVIEWER) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "FETCH: only a clinic or reviewer session fetches from its mailbox");
        return;
    }
    if (env->max > HX_MAX_BATCH) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "max: at most %d, got %u", HX_MAX_BATCH, env->max);
        return;
    }
    uint32_t max = env->max ? env->max : 100;
    Handoff__Envelope d;
    rt_env_init(&d, HANDOFF__KIND__KIND_DELIVER, env->id);
    if (hx_wire_pack(&d, &r->out))
        return;
    queue_t *q = p->queue;
    entry_t *e;
    for (uint32_t k = 0; k < max && (e = rt_queue_head(q)); k++) {
        const uint8_t *body;
        if (k > 0 && r->out.len + e->size + 32 > r->cfg.max_frame)
            break;
        if (r->cfg.store->ops->get(r->cfg.store, e->handle, e->size, &body) ||
            hx_wire_append_message(&r->out, body, e->size, e->attempt < UINT16_MAX ? e->attempt + 1u : UINT16_MAX))
            break;
        rt_entry_unlink(r, e);
        e->state = E_INFLIGHT;
        e->holder = p;
        e->delivered_at = r->now;
        DL_APPEND(p->inflight, e);
        p->n_inflight++;
        q->n_inflight++;
        if (e->attempt < UINT16_MAX)
            e->attempt++;
        if (e->attempt > 1)
            r->stats.redelivered++;
        r->stats.delivered++;
        rt_audit(r, p, "fetch", e->id, "delivered");
    }
    if (rt_send_buf(r, p->rid, p->rid_len, p))
        rt_peer_drop(r, p, "unreachable", false);
}
