/* hx_router_recover — rebuilding queues, mailboxes, dead letters and the dedup window from
 * the store's records at start. */
#include "hx_router_internal.h"

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
        if (r->rec_last && r->rec_last->kind == h.to_kind && strcmp(rt_queue_name(r->rec_last), name) == 0)
            q = r->rec_last;
        else if (hx_name_valid(name))
            q = r->rec_last = rt_queue_get(r, h.to_kind, name);
    }
    /* its origin and priority as accepted (a record written before they existed: the
     * sender's, from its from address, routine) */
    origin_t *o = NULL;
    char oname[sizeof o->name];
    if (q && h.origin && h.origin_len && h.origin_len < sizeof oname) {
        memcpy(oname, h.origin, h.origin_len);
        oname[h.origin_len] = 0;
        o = rt_origin_get(r, oname);
    } else if (q) {
        Handoff__Message *m = handoff__message__unpack(NULL, len, msg);
        if (m && m->from && hx_name_valid(m->from->name)) {
            snprintf(oname, sizeof oname, "%s:%s",
                     m->from->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? "service" : "clinic", m->from->name);
            o = rt_origin_get(r, oname);
        }
        if (m)
            handoff__message__free_unpacked(m, NULL);
    }
    int prio = h.priority <= HANDOFF__DELIVERY_PRIORITY__DELIVERY_STAT ? (int)h.priority : 0;
    entry_t *e = q && o && !rt_entry_find(r, h.id) ? rt_entry_new(r, h.id, q, o, prio, handle, len, h.accepted_at_ms) : NULL;
    if (!e && o)
        rt_origin_release(r, o);
    if (e) {
        rt_to_waiting(e, false);
    } else {
        r->cfg.store->ops->release(r->cfg.store, handle);
        hx_warn("log: a stored message could not be restored (undecodable or repeated); skipped");
    }
}

static void rec_settle(void *arg, const uint8_t id[HX_ID_LEN])
{
    hx_router_t *r = arg;
    entry_t *e = rt_entry_find(r, id);
    if (e) {
        rt_entry_unlink(r, e);
        if (e->state != E_DEAD)
            rt_held_sub(e);
        rt_entry_free(r, e);
    }
    rt_dedup_add(r, id);                        /* settled: remembered, as when it happened */
}

static void rec_dead(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms, const char *reason)
{
    hx_router_t *r = arg;
    entry_t *e = rt_entry_find(r, id);
    if (e && e->state != E_DEAD) {
        rt_entry_unlink(r, e);
        e->failures = rt_count16(attempts);
        rt_to_dead(r, e, reason, at_ms);
    }
}

static void rec_revive(void *arg, const uint8_t id[HX_ID_LEN])
{
    hx_router_t *r = arg;
    entry_t *e = rt_entry_find(r, id);
    if (e && e->state == E_DEAD) {
        rt_entry_unlink(r, e);
        e->failures = e->attempt = 0;
        rt_held_add(e);
        rt_to_waiting(e, false);
    }
}

static void rec_attempts(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts)
{
    entry_t *e = rt_entry_find(arg, id);
    if (e) {
        e->failures = rt_count16(attempts);
        e->attempt = rt_count16(attempts);
    }
}

/* A message compaction wrote again further on, with its state as of then. Its earlier place
 * may still be in the log (the crash came before the old segment went): this one supersedes
 * it. */
static void rec_moved(void *arg, uint64_t handle, const uint8_t *msg, size_t len, uint32_t attempts,
                      uint64_t dead_at_ms, const char *reason)
{
    hx_router_t *r = arg;
    hx_msg_head_t h;
    if (hx_wire_scan_message(msg, len, &h) != 0 || h.id_len != HX_ID_LEN) {
        r->cfg.store->ops->release(r->cfg.store, handle);
        hx_warn("log: a moved message could not be restored (undecodable); skipped");
        return;
    }
    entry_t *e = rt_entry_find(r, h.id);
    if (e) {
        r->cfg.store->ops->release(r->cfg.store, e->handle);
        e->handle = handle;
    } else {
        rec_put(arg, handle, msg, len);
        if (!(e = rt_entry_find(r, h.id)))
            return;
    }
    if (reason) {
        if (e->state != E_DEAD) {
            rt_entry_unlink(r, e);
            e->failures = rt_count16(attempts);
            rt_to_dead(r, e, reason, dead_at_ms);
        }
        return;
    }
    if (e->state == E_DEAD) {
        rt_entry_unlink(r, e);
        rt_held_add(e);
        rt_to_waiting(e, false);
    }
    e->failures = e->attempt = rt_count16(attempts);
}

static void rec_dedup(void *arg, const uint8_t id[HX_ID_LEN])
{
    rt_dedup_add(arg, id);
}

int hx_router_recover(hx_router_t *r)
{
    static const hx_store_visitor_t v = {rec_put, rec_settle, rec_dead, rec_revive, rec_attempts, rec_dedup,
                                         rec_moved};
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
