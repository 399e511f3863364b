/* hx_router_compact — keeping the log's disk use to what the broker holds (hx_store.h,
 * "Compaction"), and saying which queue keeps how much of it.
 *
 * The store can delete only its oldest segment, and only once nothing in it is held; a
 * mailbox nobody reads or a dead letter nobody replays would keep that segment and every one
 * after it. When the store says the log has grown past twice what is held, the router moves
 * the messages it holds in the oldest segment to the log's end, a MiB per step, one step
 * in flight at a time: each as a MOVED entry (its body and its state) in an ordinary
 * transaction, and only when that is durable does the message's handle change and its old
 * place get released. A message settled, purged or replayed meanwhile is simply no longer at
 * its old place when the step finishes: its new copy is released instead. */
#include "hx_router_internal.h"

#define COMPACT_STEP_BYTES (1u << 20)   /* moved per step: about a ms of the loop, not a stall */
#define COMPACT_GAP_MS 10               /* between steps: at most 100 MiB/s */
#define COMPACT_STEP_SLOTS (1u << 15)   /* of the id map looked at per step (about a ms) */
#define PIN_SCAN_SLOTS (1u << 15)       /* ... per tick by the scan of pinned segments */
#define PIN_SCAN_GAP_MS 5000            /* between the starts of two such scans */

/* Frees a batch, releasing the new places when `release_to` (the move did not happen). */
static void batch_free(hx_router_t *r, move_batch_t *b, bool release_to)
{
    for (size_t i = 0; release_to && i < b->n; i++)
        r->cfg.store->ops->release(r->cfg.store, b->msgs[i].to);
    free(b->msgs);
    free(b);
}

void rt_moves_done(hx_router_t *r, uint64_t seq, int status)
{
    while (r->moves && r->moves->seq <= seq) {
        move_batch_t *b = r->moves;
        r->moves = b->next;
        if (!r->moves)
            r->moves_tail = NULL;
        for (size_t i = 0; status == 0 && i < b->n; i++) {
            struct moved_msg *m = &b->msgs[i];
            entry_t *e = rt_entry_find(r, m->id);
            if (e && e->handle == m->from) {
                e->handle = m->to;
                r->cfg.store->ops->release(r->cfg.store, m->from);
            } else {
                r->cfg.store->ops->release(r->cfg.store, m->to);    /* settled meanwhile */
            }
        }
        batch_free(r, b, status != 0);
    }
}

void rt_moves_free(hx_router_t *r)
{
    while (r->moves) {                          /* never durable: the old places stay */
        move_batch_t *b = r->moves;
        r->moves = b->next;
        batch_free(r, b, false);
    }
    r->moves_tail = NULL;
}

/* Which message may move now: held (waiting, in flight, backing off or dead), not being
 * added or settled by a transaction still in flight. */
static bool movable(const entry_t *e)
{
    return e->state != E_PENDING && e->state != E_SETTLING;
}

/* One step: up to COMPACT_STEP_BYTES of the messages in segment seg, in one transaction. */
static void compact_step(hx_router_t *r, uint64_t seg)
{
    hx_store_t *st = r->cfg.store;
    size_t cap = 0, n = 0;
    uint64_t bytes = 0;
    entry_t **pick = NULL;
    /* The scan goes on from where the last step of this segment stopped, round the map, so a
     * large number of held messages costs each step a bounded slice. */
    if (r->compact_seg != seg || r->compact_cursor >= r->entries.cap) {
        r->compact_seg = seg;
        r->compact_cursor = 0;
    }
    for (size_t looked = 0; looked < COMPACT_STEP_SLOTS && looked < r->entries.cap && bytes < COMPACT_STEP_BYTES;
         looked++) {
        size_t i = r->compact_cursor;
        r->compact_cursor = (i + 1) & (r->entries.cap - 1);
        entry_t *e = r->entries.slots[i].rec;
        if (!e || !movable(e) || st->ops->segment_of(st, e->handle) != seg)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            entry_t **t = realloc(pick, ncap * sizeof *t);
            if (!t)
                break;
            pick = t;
            cap = ncap;
        }
        pick[n++] = e;
        bytes += e->size;
    }
    move_batch_t *b = n ? calloc(1, sizeof *b) : NULL;
    if (b && !(b->msgs = calloc(n, sizeof *b->msgs))) {
        free(b);
        b = NULL;
    }
    if (!b || rt_txn_begin(r) != 0) {
        if (b)
            batch_free(r, b, false);            /* nothing moved yet */
        free(pick);
        return;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        entry_t *e = pick[i];
        const uint8_t *body;
        struct moved_msg *m = &b->msgs[b->n];
        rc = st->ops->get(st, e->handle, e->size, &body);
        if (rc == 0)
            rc = st->ops->move(st, e->id, body, e->size, e->failures, e->state == E_DEAD ? e->dead_at : 0,
                               e->state == E_DEAD ? e->reason : NULL, &m->to);
        if (rc == 0) {
            memcpy(m->id, e->id, HX_ID_LEN);
            m->from = e->handle;
            b->n++;
        }
    }
    free(pick);
    uint64_t seq;
    if (rc != 0) {
        st->ops->abort(st);
        hx_warn("compaction: cannot move a message out of log segment %llu (%s); trying again later",
                (unsigned long long)seg, hx_strerror(rc));
        batch_free(r, b, true);
        return;
    }
    if (rt_txn_end(r, &seq) != 0) {
        batch_free(r, b, true);
        return;
    }
    b->seq = seq;
    if (r->moves_tail)
        r->moves_tail->next = b;
    else
        r->moves = b;
    r->moves_tail = b;
    hx_debug("compaction: moving %zu message(s), %llu bytes, out of log segment %llu", b->n,
             (unsigned long long)bytes, (unsigned long long)seg);
}

/* For each queue, and the dead letters: the oldest segment one of its messages is in. A
 * slice of the id map per tick (a scan of a million held messages at once would stall the
 * loop for about 100 ms of cache misses); what a whole pass found is published at its end. */
static void pin_scan(hx_router_t *r, uint64_t now_ms)
{
    hx_store_t *st = r->cfg.store;
    queue_t *q;
    if (!r->pin_scanning) {
        if (now_ms < r->pin_scan_at)
            return;
        r->pin_scan_at = now_ms + PIN_SCAN_GAP_MS;
        r->pin_scanning = true;
        r->pin_cursor = 0;
        for (q = r->queues; q; q = q->hh.next)
            q->pin_next = 0;
        r->dead_pin_next = 0;
    }
    size_t end = r->pin_cursor + PIN_SCAN_SLOTS < r->entries.cap ? r->pin_cursor + PIN_SCAN_SLOTS : r->entries.cap;
    for (size_t i = r->pin_cursor; i < end; i++) {
        entry_t *e = r->entries.slots[i].rec;
        if (!e || e->state == E_PENDING)
            continue;
        uint64_t seg = st->ops->segment_of(st, e->handle);
        uint64_t *pin = e->state == E_DEAD ? &r->dead_pin_next : &e->lane->queue->pin_next;
        if (!*pin || seg < *pin)
            *pin = seg;
    }
    r->pin_cursor = end;
    if (end < r->entries.cap)
        return;
    for (q = r->queues; q; q = q->hh.next)
        q->pin_seg = q->pin_next;
    r->dead_pin_seg = r->dead_pin_next;
    r->pin_scanning = false;
}

uint64_t rt_pinned_bytes(const hx_router_t *r, uint64_t seg)
{
    const hx_store_t *st = r->cfg.store;
    return seg && st->ops->bytes_from ? st->ops->bytes_from(st, seg) : 0;
}

void rt_compact_tick(hx_router_t *r, uint64_t now_ms)
{
    hx_store_t *st = r->cfg.store;
    if (!st->ops->compact_pick || !st->ops->move || !st->ops->segment_of)
        return;
    pin_scan(r, now_ms);
    if (r->moves || now_ms < r->compact_at)     /* one step in flight at a time */
        return;
    r->compact_at = now_ms + COMPACT_GAP_MS;
    uint64_t seg = st->ops->compact_pick(st, r->live_bytes, r->live_count);
    if (seg)
        compact_step(r, seg);
}
