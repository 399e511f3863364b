/* hx_router_queue — the life of a message in the router: its states and lists, lanes and
 * origins (fair share), the dedup window, store transactions and the actions that answer
 * once they are durable, failures with backoff, dead letters, and delivery to workers. */
#include "hx_router_internal.h"

static dedup_t *dedup_find(const hx_router_t *r, const uint8_t *id)
{
    return hx_idmap_find(&r->dedup, id);
}

/* The dedup window remembers the ids of messages the broker no longer holds (settled or
 * purged, in that order), the last --dedup-window of them; a held message is found by its
 * entry. So a message is added when it goes, not when it comes: recovery does not add each
 * message it restores (the window comes from the segments' checkpoints and the settles after
 * them), and a million queued messages do not each pay for a place in it. */
void rt_dedup_add(hx_router_t *r, const uint8_t *id)
{
    if (r->cfg.dedup_window == 0 || dedup_find(r, id))
        return;
    dedup_t *d;
    if (r->n_dedup >= r->cfg.dedup_window) {
        d = r->dedup_fifo;                       /* evict the oldest, reuse its node */
        DL_DELETE(r->dedup_fifo, d);
        hx_idmap_remove(&r->dedup, d->id);
        r->n_dedup--;
    } else if (!(d = hx_pool_alloc(r->dedup_pool))) {
        return;                                  /* dedup is best effort beyond memory */
    }
    memcpy(d->id, id, HX_ID_LEN);
    if (hx_idmap_put(&r->dedup, d) != 0) {
        hx_pool_free(r->dedup_pool, d);
        return;
    }
    DL_APPEND(r->dedup_fifo, d);
    r->n_dedup++;
}

void rt_dedup_remove(hx_router_t *r, const uint8_t *id)
{
    dedup_t *d = dedup_find(r, id);
    if (d) {
        DL_DELETE(r->dedup_fifo, d);
        hx_idmap_remove(&r->dedup, d->id);
        r->n_dedup--;
        hx_pool_free(r->dedup_pool, d);
    }
}

/* The store's checkpoint hook: every remembered id, oldest first. */
void rt_dedup_ids(void *arg, hx_buf_t *out)
{
    hx_router_t *r = arg;
    const dedup_t *d;
    DL_FOREACH(r->dedup_fifo, d) hx_buf_append(out, d->id, HX_ID_LEN);
}

/* ---- origins and lanes ------------------------------------------------------------------ */

origin_t *rt_origin_get(hx_router_t *r, const char *name)
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
void rt_origin_release(hx_router_t *r, origin_t *o)
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
        rt_origin_release(r, o);
    }
}

/* ---- message states --------------------------------------------------------------------- */

void rt_entry_free(hx_router_t *r, entry_t *e)
{
    hx_idmap_remove(&r->entries, e->id);
    r->live_bytes -= e->size;
    r->live_count--;
    r->cfg.store->ops->release(r->cfg.store, e->handle);
    lane_unref(r, e->lane);
    free(e->reason);
    hx_pool_free(r->entry_pool, e);
}

/* The next message q hands out: the head of the first lane in the highest class's turn. */
entry_t *rt_queue_head(const queue_t *q)
{
    for (int c = PRIOS - 1; c >= 0; c--)
        if (q->turn[c])
            return q->turn[c]->waiting[c];
    return NULL;
}

/* Takes e out of the list of its current state (it keeps its queue accounting). */
void rt_entry_unlink(hx_router_t *r, entry_t *e)
{
    queue_t *q = e->lane->queue;
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
        rt_ready_add(e->holder);
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

/* Waiting in its lane: at the back, or at the front (a message given back, whose lane
 * then also goes first in its turn). */
void rt_to_waiting(entry_t *e, bool front)
{
    queue_t *q = e->lane->queue;
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

/* ---- store transactions and actions ------------------------------------------------------ */

int rt_txn_begin(hx_router_t *r)
{
    return r->cfg.store->ops->begin(r->cfg.store);
}

int rt_txn_end(hx_router_t *r, uint64_t *seq)
{
    int rc = r->cfg.store->ops->end(r->cfg.store, seq);
    if (rc == 0)
        r->last_seq = *seq;
    else
        r->cfg.store->ops->abort(r->cfg.store);
    return rc;
}

void rt_store_why(const hx_router_t *r, char *out, size_t cap)
{
    const char *why = "";
    r->cfg.store->ops->health(r->cfg.store, &why);
    snprintf(out, cap, "%s", why && *why ? why : "the broker cannot write its log");
}

action_t *rt_action_new(peer_t *p, ProtobufCBinaryData corr, Handoff__Kind reply, size_t n_added,
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

void rt_action_queue(hx_router_t *r, action_t *a, uint64_t seq)
{
    a->seq = seq;
    if (r->actions_tail)
        r->actions_tail->next = a;
    else
        r->actions = a;
    r->actions_tail = a;
}

void rt_action_finish(hx_router_t *r, action_t *a, int status)
{
    char why[256] = "";
    if (status)
        rt_store_why(r, why, sizeof why);
    if (a->rid_len) {                           /* the answer first, then the deliveries */
        peer_t *p = rt_peer_find(r, a->rid, a->rid_len);
        ProtobufCBinaryData corr = {a->corr_len, a->corr};
        if (status == 0) {
            if (hx_wire_pack_reply(&r->out, a->reply, corr.data, corr.len) == 0)
                rt_send_buf(r, a->rid, a->rid_len, p);
        } else {
            /* a replicated broker's node that lost the leadership: its client resends to the
             * leader (the same ids: exactly once there) */
            rt_reply_error(r, a->rid, a->rid_len, p, corr,
                           status == HX_ENOTLEADER ? HANDOFF__ERROR_CODE__ERR_NOT_LEADER
                                                   : HANDOFF__ERROR_CODE__ERR_UNAVAILABLE, "%s", why);
        }
    }
    for (size_t i = 0; i < a->n_settled; i++) {
        entry_t *e = a->settled[i];
        queue_t *q = e->lane->queue;
        if (status == 0) {
            rt_held_sub(e);
            rt_dedup_add(r, e->id);             /* gone: its id is remembered from now on */
            rt_entry_free(r, e);
            r->stats.acked++;
            q->n_out++;
        } else if (e->reason) {                 /* a purge that did not last: still dead */
            rt_to_dead(r, e, e->reason, e->dead_at);
        } else {                                /* the settle is not durable: deliver it again */
            rt_to_waiting(e, true);
        }
        rt_dispatch(r, q);
    }
    for (size_t i = 0; i < a->n_added; i++) {
        entry_t *e = a->added[i];
        queue_t *q = e->lane->queue;
        if (status == 0) {
            rt_to_waiting(e, false);
            r->stats.accepted++;
            q->n_in++;
            rt_dispatch(r, q);
        } else {                                /* never durable: forget it, and let a retry in */
            rt_dedup_remove(r, e->id);
            rt_held_sub(e);
            rt_entry_free(r, e);
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
        rt_action_finish(r, a, status);
    }
}

void rt_on_commit(void *arg, uint64_t seq, int status)
{
    actions_done(arg, seq, status);
    rt_moves_done(arg, seq, status);
}

/* After a request: what the store already made durable is answered now. */
void rt_actions_settle(hx_router_t *r)
{
    uint64_t seq = r->cfg.store->ops->durable_seq(r->cfg.store);
    actions_done(r, seq, 0);
    rt_moves_done(r, seq, 0);
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

void rt_to_dead(hx_router_t *r, entry_t *e, const char *reason, uint64_t at)
{
    e->state = E_DEAD;
    e->dead_at = at;
    char *copy = strndup(reason && *reason ? reason : "no reason given", 255);
    free(e->reason);
    e->reason = copy;
    DL_APPEND(r->dead, e);
    r->n_dead++;
    rt_held_sub(e);                  /* dead letters do not fill their queue */
}

/* A delivery of e (already unlinked) failed: retry after a backoff, or give up. The new
 * count (and the death) go into the current transaction. */
void rt_failed(hx_router_t *r, entry_t *e, const char *reason, bool *logged)
{
    e->failures++;                              /* < max_attempts <= 1000 before this */
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(e->id, hex);
    if (e->failures >= r->cfg.max_attempts) {
        uint64_t at = rt_wall_ms();
        *logged |= r->cfg.store->ops->dead(r->cfg.store, e->id, e->failures, at, reason ? reason : "") == 0;
        rt_to_dead(r, e, reason, at);
        r->stats.dead_lettered++;
        hx_warn("message %s to %s failed %u times: dead letter (%.120s)", hex, rt_queue_name(e->lane->queue), e->failures,
                reason ? reason : "");
        return;
    }
    *logged |= r->cfg.store->ops->attempts(r->cfg.store, e->id, e->failures) == 0;
    uint64_t delay = backoff(r, e->failures);
    to_delayed(r, e, r->now + delay);
    hx_debug("message %s rt_failed (%u of %u): again in %llu ms", hex, e->failures, r->cfg.max_attempts,
             (unsigned long long)delay);
}

/* Records the failures of one event (a nack, a dead worker, a timeout) in a transaction. */
bool rt_failures_begin(hx_router_t *r)
{
    return rt_txn_begin(r) == 0;
}

void rt_failures_end(hx_router_t *r, bool began, bool logged)
{
    if (!began)
        return;
    uint64_t seq;
    if (logged)
        rt_txn_end(r, &seq);
    else
        r->cfg.store->ops->abort(r->cfg.store);
}

int rt_deliver(hx_router_t *r, peer_t *w, entry_t *e)
{
    queue_t *q = e->lane->queue;
    rt_entry_unlink(r, e);
    lane_rotate(q, e->lane, e->prio);
    e->state = E_INFLIGHT;
    e->holder = w;
    e->delivered_at = r->now;
    DL_APPEND(w->inflight, e);
    w->n_inflight++;
    q->n_inflight++;
    bool counted = e->attempt < UINT16_MAX;
    e->attempt += counted;
    if (e->attempt > 1)
        r->stats.redelivered++;
    r->stats.delivered++;

    Handoff__Envelope env;
    rt_env_init(&env, HANDOFF__KIND__KIND_DELIVER, (ProtobufCBinaryData){0, NULL});
    const uint8_t *body;
    if (hx_wire_pack(&env, &r->out) || r->cfg.store->ops->get(r->cfg.store, e->handle, e->size, &body) ||
        hx_wire_append_message(&r->out, body, e->size, e->attempt) || rt_send_buf(r, w->rid, w->rid_len, w)) {
        e->attempt -= counted;
        rt_peer_drop(r, w, "unreachable", false);
        return -1;
    }
    rt_audit(r, w, "deliver", e->id, "delivered");
    if (w->n_inflight >= w->credit) {
        rt_ready_remove(w);
    } else {                                    /* rotate: the next message goes to the next worker */
        DL_DELETE2(q->ready, w, rprev, rnext);
        DL_APPEND2(q->ready, w, rprev, rnext);
    }
    return 0;
}

void rt_dispatch(hx_router_t *r, queue_t *q)
{
    if (!q || q->kind != HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE)
        return;
    entry_t *e;
    while (q->ready && (e = rt_queue_head(q)))
        rt_deliver(r, q->ready, e);
}

bool rt_is_known(const hx_router_t *r, const uint8_t *id)
{
    return rt_entry_find(r, id) || dedup_find(r, id);
}

entry_t *rt_entry_new(hx_router_t *r, const uint8_t *id, queue_t *q, origin_t *o, int prio, uint64_t handle,
                          size_t size, uint64_t accepted_ms)
{
    entry_t *e = hx_pool_alloc(r->entry_pool);
    lane_t *l = e ? lane_get(r, q, o) : NULL;
    if (!l) {
        hx_pool_free(r->entry_pool, e);
        return NULL;
    }
    memcpy(e->id, id, HX_ID_LEN);
    e->lane = l;
    e->prio = q->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? (uint8_t)prio : 0;
    e->handle = handle;
    e->size = (uint32_t)size;
    e->state = E_PENDING;
    e->accepted_s = (uint32_t)(accepted_ms / 1000);
    if (hx_idmap_put(&r->entries, e) != 0) {
        if (!l->refs) {
            l->refs = 1;
            lane_unref(r, l);
        }
        hx_pool_free(r->entry_pool, e);
        return NULL;
    }
    l->refs++;
    rt_held_add(e);
    r->live_bytes += e->size;
    r->live_count++;
    return e;
}
