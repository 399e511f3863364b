/* hx_raft_guard — libraft 0.15's disk I/O (raft_uv) with its lost-barrier bug kept out.
 *
 * raft_uv runs a log truncation and a snapshot's store each behind a "barrier", and keeps one
 * barrier at a time: a second one asked for while the first runs, with no open segment to wait
 * on, is dropped and never run (fixed upstream in 2023, after the 0.15 Debian bookworm ships).
 * A follower told to drop a deposed leader's entries while it stores a snapshot of its own
 * then keeps them on disk beside the new ones; started again, it loads the dropped entries and
 * ignores the new (tests/unit/test_raft_guard.c shows it). A snapshot asked for while a
 * truncation runs uses the same one barrier: it waits too.
 *
 * The guard sits between libraft and raft_uv (it replaces the io's truncate, append,
 * snapshot_put and close) and never lets the two overlap: a truncation asked for while a
 * snapshot is being stored waits until it is stored; a snapshot asked for while a truncation
 * runs waits until the truncation is done (known when the first append asked for after it, which
 * raft_uv holds behind the truncation, completes: libraft always appends right after it
 * truncates). Whatever comes after a waiting request waits with it, in order, so raft_uv sees
 * the same sequence of requests, only later. Nothing else is changed or copied. */
#ifndef HX_RAFT_GUARD_H
#define HX_RAFT_GUARD_H
#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct hx_raft_guard_op hx_raft_guard_op_t;

typedef struct {
    struct raft_io io;          /* given to raft_init: raft_uv's, with four methods replaced */
    int (*append)(struct raft_io *, struct raft_io_append *, const struct raft_entry *, unsigned,
                  raft_io_append_cb);
    int (*truncate)(struct raft_io *, raft_index);
    int (*snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *, const struct raft_snapshot *,
                        raft_io_snapshot_put_cb);
    void (*close)(struct raft_io *, raft_io_close_cb);
    bool putting;               /* a snapshot's store runs */
    bool truncating;            /* a truncation runs (until `after` completes) */
    struct raft_io_append *after;   /* the first append after it, and its own callback */
    raft_io_append_cb after_cb;
    raft_io_snapshot_put_cb put_cb;
    struct raft_io_snapshot_put *put;   /* the store running */
    bool closing;
    raft_io_close_cb close_cb;
    hx_raft_guard_op_t *head, *tail;    /* requests waiting, in order */
    void *next_guard;           /* the guards installed (callbacks name only their request) */
    uv_timer_t drain;           /* what waited goes on at the next turn of the loop: raft_uv calls
                                   a store's callback before it lets go of its barrier */
    unsigned long held;         /* requests that had to wait, ever (for the tests and the log) */
} hx_raft_guard_t;

/* After raft_uv_init(&g->io, loop, ...): the guard's methods in place of raft_uv's. 0, or a
 * libuv error (the timer). */
int hx_raft_guard_install(hx_raft_guard_t *g, uv_loop_t *loop);
/* An installed guard given up before its io was ever closed (raft_init failed): forgotten, its
 * timer closed (run the loop once before freeing g). */
void hx_raft_guard_abandon(hx_raft_guard_t *g);

#endif
