/* hx_raft_guard: libraft 0.15's raft_uv on a real directory, driven as libraft drives it when a
 * follower must drop a deposed leader's entries while a snapshot is stored (and the other way
 * round). Unguarded, raft_uv drops the truncation: the directory keeps the old entries beside
 * the new ones and a restart loads the old ones. Guarded, a restart loads the new ones. */
#include <criterion/criterion.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hx_raft_guard.h"

static uv_loop_t loop;
static char dir[64];
static struct raft_configuration conf;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hx-raft-guard-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(uv_loop_init(&loop), 0);
    raft_configuration_init(&conf);
    cr_assert_eq(raft_configuration_add(&conf, 1, "127.0.0.1:9", RAFT_VOTER), 0);
}

static void teardown(void)
{
    raft_configuration_close(&conf);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(raft_guard, .init = setup, .fini = teardown, .timeout = 60);

/* An io on dir: raft_uv's, guarded or not, initialized and loaded (as raft_start does). */
typedef struct {
    struct raft_uv_transport tcp;
    hx_raft_guard_t g;
    struct raft_io *io;
} disk_t;

static void on_closed(struct raft_io *io)
{
    *(bool *)io->data = true;
}

/* The entries loaded; text of entry i in texts[i] ("conf" for a configuration). */
typedef struct {
    raft_index start, snapshot;
    size_t n;
    raft_term terms[32];
    char texts[32][9];
} loaded_t;

static void disk_open(disk_t *d, bool guarded, loaded_t *out)
{
    memset(d, 0, sizeof *d);
    cr_assert_eq(raft_uv_tcp_init(&d->tcp, &loop), 0);
    cr_assert_eq(raft_uv_init(&d->g.io, &loop, dir, &d->tcp), 0);
    if (guarded)
        cr_assert_eq(hx_raft_guard_install(&d->g, &loop), 0);
    d->io = &d->g.io;
    cr_assert_eq(d->io->init(d->io, 1, "127.0.0.1:9"), 0, "%s", d->io->errmsg);
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap = NULL;
    raft_index start;
    struct raft_entry *entries = NULL;
    size_t n = 0;
    cr_assert_eq(d->io->load(d->io, &term, &vote, &snap, &start, &entries, &n), 0, "load: %s", d->io->errmsg);
    if (out) {
        memset(out, 0, sizeof *out);
        out->start = start;
        out->snapshot = snap ? snap->index : 0;
        out->n = n;
        for (size_t i = 0; i < n && i < 32; i++) {
            out->terms[i] = entries[i].term;
            if (entries[i].type == RAFT_COMMAND && entries[i].buf.len == 8)
                memcpy(out->texts[i], entries[i].buf.base, 8);
            else
                strcpy(out->texts[i], "conf");
        }
    }
    if (snap) {
        for (unsigned i = 0; i < snap->n_bufs; i++)
            raft_free(snap->bufs[i].base);
        raft_free(snap->bufs);
        raft_configuration_close(&snap->configuration);
        raft_free(snap);
    }
    void *batch = NULL;                 /* the entries' buffers: one allocation per batch */
    for (size_t i = 0; i < n; i++)
        if (entries[i].batch != batch)
            raft_free(batch = entries[i].batch);
    raft_free(entries);
}

static void disk_close(disk_t *d)
{
    bool closed = false;
    d->io->data = &closed;
    d->io->close(d->io, on_closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    raft_uv_close(d->io);
    raft_uv_tcp_close(&d->tcp);
    uv_run(&loop, UV_RUN_DEFAULT);
}

typedef struct {
    struct raft_io_append req;
    struct raft_entry entry;
    int *pending;
} append_t;

static void appended(struct raft_io_append *req, int status)
{
    append_t *a = (append_t *)req;
    cr_expect_eq(status, 0, "an append failed: %s", raft_strerror(status));
    (*a->pending)--;
    raft_free(a->entry.buf.base);
    free(a);
}

static void append(disk_t *d, raft_term term, const char *text, int *pending)
{
    append_t *a = calloc(1, sizeof *a);
    cr_assert_not_null(a);
    a->pending = pending;
    a->entry.term = term;
    a->entry.type = RAFT_COMMAND;
    a->entry.buf.len = 8;
    a->entry.buf.base = raft_calloc(1, 8);
    memcpy(a->entry.buf.base, text, strlen(text) < 8 ? strlen(text) : 8);
    (*pending)++;
    cr_assert_eq(d->io->append(d->io, &a->req, &a->entry, 1, appended), 0);
}

static bool put_done;
static void stored(struct raft_io_snapshot_put *req, int status)
{
    (void)req;
    cr_expect_eq(status, 0, "the snapshot was not stored: %s", raft_strerror(status));
    put_done = true;
}

/* A log of entries 1 (the configuration) and 2..11 of term 1 ("old2".."old11"). */
static void old_log(disk_t *d, bool guarded)
{
    disk_open(d, guarded, NULL);
    cr_assert_eq(d->io->bootstrap(d->io, &conf), 0, "%s", d->io->errmsg);
    disk_close(d);
    disk_open(d, guarded, NULL);
    int pending = 0;
    char text[16];
    for (int i = 2; i <= 11; i++) {
        snprintf(text, sizeof text, "old%d", i);
        append(d, 1, text, &pending);
    }
    while (pending)
        uv_run(&loop, UV_RUN_ONCE);
}

static struct raft_buffer snap_buf;
static struct raft_snapshot snap_at(raft_index index)
{
    snap_buf.len = 16;
    snap_buf.base = raft_calloc(1, 16);
    return (struct raft_snapshot){.index = index, .term = 1, .configuration = conf, .configuration_index = 1,
                                  .bufs = &snap_buf, .n_bufs = 1};
}

/* What libraft asks of a follower storing a snapshot of index 6 (2 entries kept) when the
 * leader's entries 8..10 of term 2 replace its own from 8 on: the truncation, then the new
 * entries. Returns what a restart loads. */
static void truncate_while_storing(bool guarded, loaded_t *out, unsigned long *held)
{
    disk_t d;
    old_log(&d, guarded);
    struct raft_snapshot s = snap_at(6);
    struct raft_io_snapshot_put put;
    put_done = false;
    cr_assert_eq(d.io->snapshot_put(d.io, 2, &put, &s, stored), 0);
    cr_assert_eq(d.io->truncate(d.io, 8), 0);
    int pending = 0;
    append(&d, 2, "NEW8", &pending);
    append(&d, 2, "NEW9", &pending);
    append(&d, 2, "NEW10", &pending);
    while (pending || !put_done)
        uv_run(&loop, UV_RUN_ONCE);
    *held = d.g.held;
    raft_free(snap_buf.base);
    disk_close(&d);
    disk_open(&d, false, out);
    disk_close(&d);
}

static void expect_new_entries(const loaded_t *l)
{
    raft_index last = l->start + l->n - 1;
    cr_expect_eq(last, 10, "the log ends at %llu, not 10", (unsigned long long)last);
    for (raft_index i = 8; i <= 10 && i >= l->start && i - l->start < l->n; i++) {
        char want[9];
        snprintf(want, sizeof want, "NEW%llu", (unsigned long long)i);
        cr_expect_eq(l->terms[i - l->start], 2, "entry %llu is of term %llu", (unsigned long long)i,
                     (unsigned long long)l->terms[i - l->start]);
        cr_expect_str_eq(l->texts[i - l->start], want, "entry %llu", (unsigned long long)i);
    }
}

Test(raft_guard, a_truncation_asked_for_while_a_snapshot_is_stored_is_kept)
{
    loaded_t l;
    unsigned long held = 0;
    truncate_while_storing(true, &l, &held);
    expect_new_entries(&l);
    cr_expect_gt(held, 0, "the truncation did not wait for the snapshot");
}

/* The bug itself (a positive control): unguarded, a restart loads the entries the truncation
 * should have removed. A libraft that keeps the truncation fails this test: the guard is then
 * no longer needed for it. (Not under the leak checker: raft_uv leaks the lost request.) */
Test(raft_guard, unguarded_raft_uv_0_15_loses_that_truncation)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("raft_uv leaks the truncation it loses; the leak checker would report it");
#else
    loaded_t l;
    unsigned long held = 0;
    truncate_while_storing(false, &l, &held);
    raft_index last = l.start + l.n - 1;
    bool lost = last != 10 || (l.n > 8 - l.start && strcmp(l.texts[8 - l.start], "NEW8") != 0);
    cr_expect(lost, "this libraft kept a truncation asked for while a snapshot was stored (the log ends at %llu, "
              "entry 8 is '%s'): hx_raft_guard is no longer needed for it",
              (unsigned long long)last, l.n > 8 - l.start ? l.texts[8 - l.start] : "");
    cr_expect_eq(held, 0);
#endif
}

/* The other order: a snapshot asked for after a truncation and its appends (as a follower's
 * threshold is passed right after it replaced entries). It waits for the truncation, is
 * stored, and the log is right. */
Test(raft_guard, a_snapshot_asked_for_while_a_truncation_runs_is_stored)
{
    disk_t d;
    old_log(&d, true);
    cr_assert_eq(d.io->truncate(d.io, 8), 0);
    int pending = 0;
    append(&d, 2, "NEW8", &pending);
    append(&d, 2, "NEW9", &pending);
    struct raft_snapshot s = snap_at(6);
    struct raft_io_snapshot_put put;
    put_done = false;
    cr_assert_eq(d.io->snapshot_put(d.io, 2, &put, &s, stored), 0);
    append(&d, 2, "NEW10", &pending);
    for (int spins = 0; (pending || !put_done) && spins < 100000; spins++)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert(put_done, "the snapshot was never stored");
    cr_expect_gt(d.g.held, 0, "the snapshot did not wait for the truncation");
    raft_free(snap_buf.base);
    disk_close(&d);
    loaded_t l;
    disk_open(&d, false, &l);
    disk_close(&d);
    cr_expect_eq(l.snapshot, 6);
    expect_new_entries(&l);
}
