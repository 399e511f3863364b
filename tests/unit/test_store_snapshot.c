/* Unit tests for hx_store_log_snapshot: snapshots taken while a log store is written in the
 * same process (on another thread, with small segments that roll over and are deleted once
 * settled) recover, and hold every transaction made durable before the snapshot began and an
 * unbroken prefix of the rest; a segment deleted once opened is still copied whole; a log without
 * SYNCED is refused. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hx_store.h"

#define SETTLE_LAG 50                   /* transaction n settles message n - SETTLE_LAG */
#define SNAPSHOTS 6

static char dir[256], live[300];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/handoff-snap-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(live, sizeof live, "%s/live", dir);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store_snapshot, .init = setup, .fini = teardown, .timeout = 120);

static void id_of(uint32_t n, uint8_t id[16])
{
    memset(id, 0, 16);
    id[0] = 0x5a;
    memcpy(id + 12, &n, 4);
}

/* The writer: transaction n puts message n (its id in its first bytes) and settles message
 * n - SETTLE_LAG, whose handle is released once that is durable; one flush per transaction. */
typedef struct {
    hx_store_t *s;
    atomic_uint_fast32_t durable;       /* transactions made durable so far */
    atomic_bool stop;
    uint64_t committed_seq;
    uint64_t handles[SETTLE_LAG];
} writer_t;

static void w_commit(void *arg, uint64_t seq, int status)
{
    writer_t *w = arg;
    cr_assert_eq(status, 0);
    w->committed_seq = seq;
}

static void w_dedup(void *arg, hx_buf_t *out)
{
    (void)arg;
    (void)out;
}

static void *writer_run(void *arg)
{
    writer_t *w = arg;
    uint8_t msg[300];
    memset(msg, 0xab, sizeof msg);
    for (uint32_t n = 0; !atomic_load(&w->stop) && n < 200000; n++) {
        uint8_t id[16];
        id_of(n, id);
        memcpy(msg, id, 16);
        uint64_t seq, handle;
        cr_assert_eq(w->s->ops->begin(w->s), 0);
        cr_assert_eq(w->s->ops->put(w->s, msg, sizeof msg, &handle), 0);
        if (n >= SETTLE_LAG) {
            id_of(n - SETTLE_LAG, id);
            cr_assert_eq(w->s->ops->settle(w->s, id), 0);
        }
        cr_assert_eq(w->s->ops->end(w->s, &seq), 0);
        w->s->ops->flush(w->s);
        cr_assert_geq(w->committed_seq, seq, "transaction %u was not made durable by its flush", n);
        if (n >= SETTLE_LAG)
            w->s->ops->release(w->s, w->handles[n % SETTLE_LAG]);
        w->handles[n % SETTLE_LAG] = handle;
        atomic_store(&w->durable, n + 1);
    }
    return NULL;
}

/* What a recovery of a snapshot found: the messages put and not settled. */
typedef struct {
    uint8_t *live;                      /* by message number */
    uint32_t max;
    size_t puts;
} found_t;

static found_t found;

static void f_put(void *a, uint64_t h, const uint8_t *m, size_t len)
{
    (void)a, (void)h;
    cr_assert_eq(len, 300);
    uint32_t n;
    memcpy(&n, m + 12, 4);
    cr_assert_lt(n, 200000);
    found.live[n] = 1;
    found.puts++;
    if (n > found.max)
        found.max = n;
}
static void f_settle(void *a, const uint8_t id[16])
{
    (void)a;
    uint32_t n;
    memcpy(&n, id + 12, 4);
    found.live[n] = 0;
}
static void f_dead(void *a, const uint8_t id[16], uint32_t k, uint64_t at, const char *reason)
{
    (void)a, (void)id, (void)k, (void)at, (void)reason;
    cr_assert_fail("no dead letters were written");
}
static void f_id(void *a, const uint8_t id[16]) { (void)a, (void)id; }
static void f_attempts(void *a, const uint8_t id[16], uint32_t k) { (void)a, (void)id, (void)k; }

Test(store_snapshot, snapshots_under_writes_recover_every_durable_transaction)
{
    char err[1024];
    hx_store_log_config_t c = {.dir = live, .segment_bytes = 8192};
    writer_t w = {0};
    w.s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(w.s, "%s", err);
    w.s->on_commit = w_commit;
    w.s->dedup_ids = w_dedup;
    w.s->owner = &w;
    cr_assert_eq(w.s->ops->recover(w.s, NULL, NULL), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, writer_run, &w), 0);
    found.live = calloc(200000, 1);
    uint64_t last_end_seg = 0;
    for (int k = 0; k < SNAPSHOTS; k++) {
        uint32_t want = (uint32_t)(k + 1) * 300;
        while (atomic_load(&w.durable) < want)
            usleep(1000);
        uint32_t before = (uint32_t)atomic_load(&w.durable);
        char copy[400];
        snprintf(copy, sizeof copy, "%s/copy-%d", dir, k);
        hx_store_snapshot_t info;
        cr_assert_eq(hx_store_log_snapshot_dir(live, copy, &info, err, sizeof err), 0, "snapshot %d: %s", k, err);
        cr_assert_geq(info.segments, 1);
        cr_assert_geq(info.end_seg, last_end_seg);
        last_end_seg = info.end_seg;

        /* the copy recovers, as the broker would recover it */
        hx_store_log_config_t cc = {.dir = copy};
        hx_store_t *s = hx_store_log_new(&cc, err, sizeof err);
        cr_assert_not_null(s, "%s", err);
        memset(found.live, 0, 200000);
        found.max = 0;
        found.puts = 0;
        hx_store_visitor_t v = {f_put, f_settle, f_dead, f_id, f_attempts, f_id};
        int rc = s->ops->recover(s, &v, NULL);
        const char *why = "";
        if (rc)
            s->ops->health(s, &why);
        cr_assert_eq(rc, 0, "snapshot %d (segments %llu..%llu, end %llu:%llu) does not recover: %s", k,
                     (unsigned long long)info.first_seg, (unsigned long long)info.end_seg,
                     (unsigned long long)info.end_seg, (unsigned long long)info.end_off, why);
        hx_store_destroy(&s);
        /* everything durable before the snapshot began is there, and what is live is exactly
         * the last SETTLE_LAG messages of an unbroken prefix */
        cr_assert_geq(found.max + 1, before, "snapshot %d holds messages up to %u, but %u were durable before it",
                      k, found.max, before);
        uint32_t lo = found.max + 1 > SETTLE_LAG ? found.max + 1 - SETTLE_LAG : 0;
        for (uint32_t n = 0; n <= found.max; n++)
            cr_assert_eq(found.live[n], n >= lo, "snapshot %d: message %u is %s (the prefix ends at %u)", k, n,
                         found.live[n] ? "live" : "missing or settled", found.max);
    }
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    cr_assert_gt(last_end_seg, 3, "the log should have rolled over several segments (it reached %llu)",
                 (unsigned long long)last_end_seg);
    /* the oldest segments were deleted while the snapshots ran: the later copies start later */
    char first[400];
    snprintf(first, sizeof first, "%s/%020d.log", live, 1);
    cr_assert(access(first, F_OK) != 0, "segment 1 should have been deleted once settled");
    hx_store_destroy(&w.s);
    free(found.live);
}

static int never(void *arg, const char *name, int fd, uint64_t len, const uint8_t *data)
{
    (void)arg, (void)name, (void)fd, (void)len, (void)data;
    return 0;
}

Test(store_snapshot, a_directory_without_synced_is_refused)
{
    cr_assert_eq(mkdir(live, 0700), 0);
    char seg[400];
    snprintf(seg, sizeof seg, "%s/%020d.log", live, 1);
    FILE *f = fopen(seg, "w");
    cr_assert_not_null(f);
    fclose(f);
    char err[1024];
    hx_store_snapshot_t info;
    int rc = hx_store_log_snapshot(live, never, NULL, &info, err, sizeof err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "SYNCED") != NULL, "%s", err);
    rc = hx_store_log_snapshot("/nonexistent/handoff", never, NULL, &info, err, sizeof err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "/nonexistent/handoff") != NULL, "%s", err);
}

/* A replicated broker's node keeps Raft's log in DATA/raft: a backup of it as a single
 * broker's log is refused, saying what to do instead. */
Test(store_snapshot, a_cluster_nodes_directory_is_refused_by_name)
{
    char raft[400];
    snprintf(raft, sizeof raft, "%s/raft", live);
    cr_assert_eq(mkdir(live, 0700), 0);
    cr_assert_eq(mkdir(raft, 0700), 0);
    char err[1024];
    hx_store_snapshot_t info;
    int rc = hx_store_log_snapshot(live, never, NULL, &info, err, sizeof err);
    cr_assert_eq(rc, HX_EINVAL);
    cr_assert(strstr(err, "replicated broker's node") && strstr(err, "Backing up a cluster"), "%s", err);
}

/* A receiver that deletes every segment of the source at its first call (as a broker deleting
 * settled segments would), then writes what it is given into `into`: an opened segment stays
 * readable through its descriptor. */
typedef struct {
    const char *src, *into;
    bool deleted;
    size_t files;
} deleting_t;

static int delete_then_copy(void *arg, const char *name, int fd, uint64_t len, const uint8_t *data)
{
    deleting_t *d = arg;
    char path[700];
    if (!d->deleted) {
        for (int n = 1; n < 100; n++) {
            snprintf(path, sizeof path, "%s/%020d.log", d->src, n);
            unlink(path);
        }
        d->deleted = true;
    }
    snprintf(path, sizeof path, "%s/%s", d->into, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    uint8_t buf[4096];
    for (uint64_t done = 0; done < len;) {
        size_t want = len - done < sizeof buf ? (size_t)(len - done) : sizeof buf;
        if (data) {
            memcpy(buf, data + done, want);
        } else {
            ssize_t n = pread(fd, buf, want, (off_t)done);
            cr_assert_eq((size_t)n, want, "%s: read %zd of %zu bytes at %llu", name, n, want,
                         (unsigned long long)done);
        }
        cr_assert_eq(fwrite(buf, 1, want, f), want);
        done += want;
    }
    cr_assert_eq(fclose(f), 0);
    d->files++;
    return 0;
}

Test(store_snapshot, segments_deleted_after_they_were_opened_are_still_copied)
{
    char err[1024];
    hx_store_log_config_t c = {.dir = live, .segment_bytes = 4096};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    s->dedup_ids = w_dedup;
    cr_assert_eq(s->ops->recover(s, NULL, NULL), 0);
    uint8_t msg[300];
    for (uint32_t n = 0; n < 100; n++) {
        memset(msg, 0, sizeof msg);
        memcpy(msg + 12, &n, 4);
        uint64_t h, seq;
        cr_assert_eq(s->ops->begin(s), 0);
        cr_assert_eq(s->ops->put(s, msg, sizeof msg, &h), 0);
        cr_assert_eq(s->ops->end(s, &seq), 0);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    char copy[400];
    snprintf(copy, sizeof copy, "%s/copy", dir);
    cr_assert_eq(mkdir(copy, 0700), 0);
    deleting_t d = {.src = live, .into = copy};
    hx_store_snapshot_t info;
    cr_assert_eq(hx_store_log_snapshot(live, delete_then_copy, &d, &info, err, sizeof err), 0, "%s", err);
    cr_assert_gt(info.segments, 5, "the log should span several segments (%zu)", info.segments);
    cr_assert_eq(d.files, info.segments + 1, "every segment and SYNCED");
    hx_store_log_config_t cc = {.dir = copy};
    s = hx_store_log_new(&cc, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    found.live = calloc(200000, 1);
    found.max = 0;
    found.puts = 0;
    hx_store_visitor_t v = {f_put, f_settle, f_dead, f_id, f_attempts, f_id};
    cr_assert_eq(s->ops->recover(s, &v, NULL), 0);
    cr_assert_eq(found.puts, 100, "%zu of the 100 messages recovered from the copy", found.puts);
    hx_store_destroy(&s);
    free(found.live);
}
