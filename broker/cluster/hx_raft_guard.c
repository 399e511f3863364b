/* hx_raft_guard — see hx_raft_guard.h. */
#include "hx_raft_guard.h"

#include <stddef.h>
#include <stdlib.h>

#include "hx_log.h"

enum { OP_APPEND, OP_TRUNCATE, OP_PUT };

struct hx_raft_guard_op {
    int kind;
    struct raft_io_append *append;
    const struct raft_entry *entries;
    unsigned n;
    raft_io_append_cb append_cb;
    raft_index index;
    unsigned trailing;
    struct raft_io_snapshot_put *put;
    const struct raft_snapshot *snapshot;
    raft_io_snapshot_put_cb put_cb;
    hx_raft_guard_op_t *next;
};

static hx_raft_guard_t *guard_of(struct raft_io *io)
{
    return (hx_raft_guard_t *)((char *)io - offsetof(hx_raft_guard_t, io));
}

/* Whether op may go to raft_uv now: a truncation not while a snapshot is stored, a snapshot
 * not while a truncation runs; appends always (raft_uv orders them behind either). */
static bool may_go(const hx_raft_guard_t *g, const hx_raft_guard_op_t *op)
{
    return op->kind == OP_TRUNCATE ? !g->putting : op->kind == OP_PUT ? !g->truncating : true;
}

static void after_done(struct raft_io_append *req, int status);
static void put_done(struct raft_io_snapshot_put *req, int status);

/* Hands op to raft_uv; its return value. */
static int go(hx_raft_guard_t *g, const hx_raft_guard_op_t *op)
{
    int rv;
    switch (op->kind) {
    case OP_TRUNCATE:
        rv = g->truncate(&g->io, op->index);
        if (rv == 0) {
            g->truncating = true;
            g->after = NULL;
        }
        return rv;
    case OP_PUT:
        g->put_cb = op->put_cb;
        g->put = op->put;
        g->putting = true;          /* before: raft_uv may call put_done from inside */
        rv = g->snapshot_put(&g->io, op->trailing, op->put, op->snapshot, put_done);
        if (rv != 0)
            g->putting = false, g->put = NULL;
        return rv;
    default:
        if (g->truncating && !g->after) {
            g->after = op->append;
            g->after_cb = op->append_cb;
            rv = g->append(&g->io, op->append, op->entries, op->n, after_done);
            if (rv != 0)
                g->after = NULL;    /* the truncation stays "running" until an append completes */
            return rv;
        }
        return g->append(&g->io, op->append, op->entries, op->n, op->append_cb);
    }
}

/* A request that waited and then failed to start: told through its callback (it was accepted). */
static void failed(const hx_raft_guard_op_t *op, int rv)
{
    if (op->kind == OP_APPEND)
        op->append_cb(op->append, rv);
    else if (op->kind == OP_PUT)
        op->put_cb(op->put, rv);
    else
        hx_error("cluster: a log truncation that waited for a snapshot could not start: %s", raft_strerror(rv));
}

/* The requests that waited, in order, as far as they may go now. */
static void drain(hx_raft_guard_t *g)
{
    while (g->head && !g->closing && may_go(g, g->head)) {
        hx_raft_guard_op_t *op = g->head;
        g->head = op->next;
        if (!g->head)
            g->tail = NULL;
        int rv = go(g, op);
        if (rv != 0)
            failed(op, rv);
        free(op);
    }
}

static int submit(hx_raft_guard_t *g, const hx_raft_guard_op_t *op)
{
    if (!g->head && may_go(g, op))
        return go(g, op);
    hx_raft_guard_op_t *w = malloc(sizeof *w);
    if (!w)
        return RAFT_NOMEM;
    if (op->kind == OP_TRUNCATE && g->putting)
        hx_info("cluster: a truncation of the log (from entry %llu) waits until the snapshot being stored is "
                "(libraft 0.15 would drop it)", (unsigned long long)op->index);
    else if (op->kind == OP_PUT && g->truncating)
        hx_info("cluster: a snapshot waits until the log's truncation is done (libraft 0.15 would drop it)");
    *w = *op;
    w->next = NULL;
    if (g->tail)
        g->tail->next = w;
    else
        g->head = w;
    g->tail = w;
    g->held++;
    return 0;
}

/* raft_uv's callbacks name only the request (whose data field is libraft's): the guard is
 * the installed one whose pending append or store it is. */
static hx_raft_guard_t *guards;

static hx_raft_guard_t *guard_of_append(const struct raft_io_append *req)
{
    for (hx_raft_guard_t *g = guards; g; g = g->next_guard)
        if (g->after == req)
            return g;
    return NULL;
}

static hx_raft_guard_t *guard_of_put(const struct raft_io_snapshot_put *req)
{
    for (hx_raft_guard_t *g = guards; g; g = g->next_guard)
        if (g->putting && g->put == req)
            return g;
    return NULL;
}

static void drain_soon(uv_timer_t *t)
{
    drain((hx_raft_guard_t *)t->data);
}

static void later(hx_raft_guard_t *g)
{
    if (g->head && !g->closing)
        uv_timer_start(&g->drain, drain_soon, 0, 0);
}

/* The first append after a truncation completed: raft_uv ran it once the truncation was done. */
static void after_done(struct raft_io_append *req, int status)
{
    hx_raft_guard_t *g = guard_of_append(req);
    if (!g)
        abort();                    /* only ever given for a guard's `after` */
    raft_io_append_cb cb = g->after_cb;
    g->truncating = false;
    g->after = NULL;
    later(g);
    cb(req, status);
}

/* A snapshot stored: raft_uv lets go of its barrier only after this returns, so what waited
 * for it goes on at the next turn of the loop. */
static void put_done(struct raft_io_snapshot_put *req, int status)
{
    hx_raft_guard_t *g = guard_of_put(req);
    if (!g)
        abort();
    raft_io_snapshot_put_cb cb = g->put_cb;
    g->putting = false;
    g->put = NULL;
    later(g);
    cb(req, status);
}

static int guard_append(struct raft_io *io, struct raft_io_append *req, const struct raft_entry *entries, unsigned n,
                        raft_io_append_cb cb)
{
    hx_raft_guard_op_t op = {.kind = OP_APPEND, .append = req, .entries = entries, .n = n, .append_cb = cb};
    return submit(guard_of(io), &op);
}

static int guard_truncate(struct raft_io *io, raft_index index)
{
    hx_raft_guard_op_t op = {.kind = OP_TRUNCATE, .index = index};
    return submit(guard_of(io), &op);
}

static int guard_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                              const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    hx_raft_guard_op_t op = {.kind = OP_PUT, .trailing = trailing, .put = req, .snapshot = snapshot, .put_cb = cb};
    return submit(guard_of(io), &op);
}

static void forget(hx_raft_guard_t *g)
{
    for (hx_raft_guard_t **p = &guards; *p; p = (hx_raft_guard_t **)&(*p)->next_guard)
        if (*p == g) {
            *p = g->next_guard;
            break;
        }
}

void hx_raft_guard_abandon(hx_raft_guard_t *g)
{
    forget(g);
    uv_close((uv_handle_t *)&g->drain, NULL);
}

static void close_done(struct raft_io *io)
{
    hx_raft_guard_t *g = guard_of(io);
    forget(g);
    if (g->close_cb)
        g->close_cb(io);
}

/* Closing: what still waits is canceled, as raft_uv cancels what it holds. */
static void guard_close(struct raft_io *io, raft_io_close_cb cb)
{
    hx_raft_guard_t *g = guard_of(io);
    g->closing = true;
    g->close_cb = cb;
    while (g->head) {
        hx_raft_guard_op_t *op = g->head;
        g->head = op->next;
        if (op->kind != OP_TRUNCATE)
            failed(op, RAFT_CANCELED);
        free(op);
    }
    g->tail = NULL;
    uv_close((uv_handle_t *)&g->drain, NULL);
    g->close(io, close_done);
}

int hx_raft_guard_install(hx_raft_guard_t *g, uv_loop_t *loop)
{
    int rv = uv_timer_init(loop, &g->drain);
    if (rv != 0)
        return rv;
    g->drain.data = g;
    g->append = g->io.append;
    g->truncate = g->io.truncate;
    g->snapshot_put = g->io.snapshot_put;
    g->close = g->io.close;
    g->io.append = guard_append;
    g->io.truncate = guard_truncate;
    g->io.snapshot_put = guard_snapshot_put;
    g->io.close = guard_close;
    g->putting = g->truncating = g->closing = false;
    g->after = NULL;
    g->put = NULL;
    g->head = g->tail = NULL;
    g->held = 0;
    g->next_guard = guards;
    guards = g;
    return 0;
}
