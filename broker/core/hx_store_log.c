/* hx_store_log — the durable store: an append-only log of segments in a data directory.
 *
 * File DIR/<20-digit number>.log, a sequence of records:
 *     u32 length (of the payload, little-endian) | u32 CRC-32C of the payload | payload
 * payload = u8 record type (1 transaction, 2 checkpoint, 3 commit); 1 and 2 hold entries:
 *     u8 kind | u32 length | bytes
 * kinds: 1 PUT (a packed Message), 2 SETTLE (id), 3 DEAD (id, u32 attempts, u64 ms, reason),
 *        4 REVIVE (id), 5 ATTEMPTS (id, u32), 6 DEDUP (ids; only in checkpoints),
 *        7 MOVED (id, u32 attempts, u64 dead-since ms, u8 dead, u8 reason length, reason,
 *          then the message as a PUT holds it): compaction wrote a held message again at the
 *          log's end with its state, superseding its earlier PUT (see "Compaction" below).
 * One router request is one transaction is one record, so it is all there or not at all.
 * A checkpoint opens every segment with the dedup window, so deleting old segments never
 * forgets which ids were accepted. A commit record closes every group-commit write:
 *     "HXCOMMIT" | u64 segment, u64 offset: where this record is |
 *     u64 segment, u64 offset: the end of the log that was durable when the write was issued |
 *     u8 length | anchor (a blob the owner asks to record, e.g. the audit chain's head)
 *
 * Group commit: closed transactions collect in batches; one write and one fdatasync (on
 * the libuv thread pool) make a whole batch durable, while the next batch collects; only
 * then does the owner hear on_commit and answer "accepted". The oldest segment is deleted
 * once every message put in it is released and the next segment's checkpoint is durable.
 *
 * A torn tail is only what was never acknowledged. A record that fails its CRC is either a
 * write the machine did not finish (nobody was told "accepted": recovery may cut it) or
 * damage to what was acknowledged (recovery refuses, names it and keeps every byte;
 * hx_store_log_salvage is the way out). Recovery tells them apart by knowing how far the
 * log had been made durable, from two sources; the further one counts:
 *   - DIR/SYNCED, two 64-byte slots written in turn (each with a counter and a CRC): after
 *     every fdatasync, and before anybody is answered, the writer thread pwrites the log's
 *     new durable end into it. It is not itself synced: a second fdatasync per group commit
 *     would add its latency to every ack and halve the commit rate when the load is light.
 *     A crashed or killed process leaves it in the page cache, a clean stop and every
 *     recovery sync it; only a power loss can leave it up to the kernel's writeback delay
 *     (about 30 s) behind.
 *   - every commit record's mark, synced with its data: each write vouches for everything
 *     before it, so behind a stale SYNCED only the last write is in doubt, and after a power
 *     loss that is the very write that may be torn. After a damaged record recovery looks
 *     ahead for commit records (found by their magic, proved by naming their own position).
 * The hot path pays about 60 bytes and a CRC over them per group commit on the loop thread,
 * and one 64-byte pwrite on the thread pool (about 3 us per commit where fdatasync costs
 * nothing, on tmpfs; next to a disk's ~150 us fdatasync it does not show in the submit
 * benchmark). A log written before SYNCED existed has neither; its first recovery keeps the
 * old rule (a damaged record is cut when no later segment holds data), refusing also when
 * the record after the damaged one reads; then it writes SYNCED, and the rule above holds.
 *
 * Compaction: only the oldest segment can go (a later one may hold the SETTLE that retires a
 * PUT of an earlier one), so one message nobody takes — a mailbox no one reads, a dead letter
 * no one replays — would keep its segment and every later one. When the log holds more than
 * twice what is held plus two segments, the owner moves the messages of the oldest segment
 * it still holds to the log's end (MOVED, in an ordinary transaction: written and fdatasynced
 * like any other) and releases their old places only once that is durable; then the segment
 * is deleted as a settled one is. A crash before: the old PUT and the MOVED are both there,
 * and recovery takes the later one. MOVED carries the message's state, because the records
 * that made it dead or counted its attempts may be in segments deleted later. */
#define _GNU_SOURCE
#include "hx_crc32c.h"
#include "hx_log.h"
#include "hx_store.h"
#include "hx_store_format.h"

#include <sodium.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utlist.h>
#include <uv.h>

enum { REC_TXN = 1, REC_CHECKPOINT = 2, REC_COMMIT = 3 };
enum { E_PUT = 1, E_SETTLE = 2, E_DEAD = 3, E_REVIVE = 4, E_ATTEMPTS = 5, E_DEDUP = 6, E_MOVED = 7 };
#define REC_HEADER 8
#define ENTRY_HEADER 5
#define MOVED_FIXED (HX_ID_LEN + 4 + 8 + 1 + 1)   /* id, attempts, dead since, dead, reason length */
#define REC_MAX (256u << 20)
#define OFFSET_BITS 36
#define COMMIT_MAGIC "HXCOMMIT"
#define COMMIT_FIXED (1 + 8 + 32 + 1)   /* type, magic, two positions, anchor length */
#define SALVAGE_DIR "salvage.new"
#define REKEY_DIR "rekey.new"     /* see "rekey" below */
#define REKEY_OLD "rekey.old"

/* A place in the log: segment number, then byte offset; (0, 0) is before everything. */
typedef struct {
    uint64_t seg, off;
} pos_t;

static int pos_cmp(pos_t a, pos_t b)
{
    if (a.seg != b.seg)
        return a.seg < b.seg ? -1 : 1;
    return a.off < b.off ? -1 : a.off > b.off;
}

typedef struct segment {
    uint64_t number;
    int fd;
    uint64_t durable;           /* bytes known to be on disk */
    uint64_t logical;           /* bytes appended: durable + being written + waiting */
    uint64_t live;              /* puts not yet released */
    bool new_file;              /* its first write also syncs the directory */
    struct segment *prev, *next;
} segment_t;

typedef struct batch {
    segment_t *seg;
    uint64_t offset;
    hx_buf_t buf;
    uint64_t last_seq;
    bool dirsync;
    struct batch *next;
} batch_t;

typedef struct {
    hx_store_t base;
    char dir[PATH_MAX];
    int dirfd, lockfd, markfd;
    uint64_t segment_bytes;
    uv_loop_t *loop;
    char faults[PATH_MAX];
    segment_t *segs;            /* oldest first; the last is active */
    hx_buf_t txn;
    bool in_txn;
    uint64_t txn_base;
    batch_t *pending;           /* closed, waiting to be written */
    batch_t *writing;           /* being written */
    uv_work_t work;
    int work_status;
    uint64_t work_ns;           /* how long the last group commit's write and sync took */
    uint64_t syncs;             /* group commits made durable */
    bool work_busy;
    uint64_t seq, durable_seq;
    int state;
    char why[2 * PATH_MAX + 1024];
    uint64_t last_probe;
    hx_buf_t rbuf;
    hx_buf_t sealed;            /* scratch for sealing and opening bodies */
    bool recovering;
    bool recovered;             /* writes wait for recovery: it decides where they go */
    bool encrypt;
    bool wrong_key;             /* recovery found a body this key does not open */
    uint8_t key[crypto_secretbox_KEYBYTES];
    pos_t durable_end;          /* the log's end as of the last group commit made durable */
    pos_t work_end;             /* ... as of the one being written (the writer puts it in SYNCED) */
    uint64_t mark_count;        /* SYNCED writes so far: the next goes to slot (count + 1) % 2 */
    int mark_errno;             /* the writer could not update SYNCED (warned about once) */
    bool mark_warned;
    uint8_t anchor[HX_STORE_ANCHOR_MAX];        /* the latest issued with a group commit */
    size_t anchor_len;
    uint8_t dur_anchor[HX_STORE_ANCHOR_MAX];    /* the latest durable */
    size_t dur_anchor_len;
    uint8_t ready[HX_STORE_ANCHOR_MAX];         /* the latest whose file is synced: next to record */
    size_t ready_len;
    uint8_t syncing[HX_STORE_ANCHOR_MAX];       /* the one whose file is being synced */
    size_t syncing_len;
    uv_work_t anchor_work;
    uint64_t anchor_synced_ns;  /* when the last sync of the anchored file began */
    bool anchor_busy;
    int anchor_fd;
    int anchor_errno;
    uint64_t moved, moved_bytes;        /* messages compaction wrote again, and their bytes */
} log_store_t;

/* With a key a PUT entry holds nonce | secretbox(message); without, the message itself. */
#define SEAL_OVERHEAD (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)

static size_t stored_len(const log_store_t *s, size_t len)
{
    return s->encrypt ? len + SEAL_OVERHEAD : len;
}

/* Opens a sealed body into s->rbuf; -1 when it does not authenticate (wrong key, damage). */
static int unseal(log_store_t *s, const uint8_t *in, size_t in_len, const uint8_t **out, size_t *out_len)
{
    if (!s->encrypt) {
        *out = in;
        *out_len = in_len;
        return 0;
    }
    if (in_len < SEAL_OVERHEAD || hx_buf_reserve(&s->rbuf, in_len))
        return -1;
    size_t n = in_len - SEAL_OVERHEAD;
    if (crypto_secretbox_open_easy(s->rbuf.data, in + crypto_secretbox_NONCEBYTES, in_len - crypto_secretbox_NONCEBYTES,
                                   in, s->key) != 0)
        return -1;
    *out = s->rbuf.data;
    *out_len = n;
    return 0;
}

static uint64_t make_handle(uint64_t seg, uint64_t off)
{
    return (seg << OFFSET_BITS) | off;
}

static segment_t *seg_of(log_store_t *s, uint64_t handle)
{
    uint64_t n = handle >> OFFSET_BITS;
    segment_t *g;
    for (g = s->segs ? s->segs->prev : NULL; g; g = g == s->segs ? NULL : g->prev)
        if (g->number == n)
            return g;
    return NULL;
}

static segment_t *active(log_store_t *s)
{
    return s->segs ? s->segs->prev : NULL;
}


static int entry(hx_buf_t *b, uint8_t kind, const void *a, size_t alen, const void *c, size_t clen)
{
    uint8_t h[ENTRY_HEADER];
    h[0] = kind;
    hx_put_u32(h + 1, (uint32_t)(alen + clen));
    if (hx_buf_append(b, h, sizeof h) || hx_buf_append(b, a, alen) || hx_buf_append(b, c, clen))
        return HX_ENOMEM;
    return 0;
}


/* ---- batches -------------------------------------------------------------------------- */

static batch_t *batch_for(log_store_t *s, segment_t *g)
{
    batch_t *last = NULL, *b;
    LL_FOREACH(s->pending, b) last = b;
    if (last && last->seg == g)
        return last;
    b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->seg = g;
    b->offset = g->logical;
    b->dirsync = g->new_file;
    g->new_file = false;
    LL_APPEND(s->pending, b);
    return b;
}

static void batch_free(batch_t *b)
{
    hx_buf_free(&b->buf);
    free(b);
}

/* Opens a new active segment, whose first record is the dedup checkpoint. */
static int roll(log_store_t *s)
{
    segment_t *cur = active(s);
    uint64_t n = cur ? cur->number + 1 : 1;
    char name[64];
    hx_seg_name(n, name, sizeof name);
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(s->why, sizeof s->why, "cannot create log segment %s/%s: %s", s->dir, name, strerror(errno));
        return HX_EIO;
    }
    segment_t *g = calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        return HX_ENOMEM;
    }
    g->number = n;
    g->fd = fd;
    g->new_file = true;
    DL_APPEND(s->segs, g);

    hx_buf_t ids = {0};
    if (s->base.dedup_ids)
        s->base.dedup_ids(s->base.owner, &ids);
    hx_buf_t rec = {0};
    uint8_t head[REC_HEADER + 1] = {0};
    head[REC_HEADER] = REC_CHECKPOINT;
    int rc = hx_buf_append(&rec, head, sizeof head);
    if (rc == 0)
        rc = entry(&rec, E_DEDUP, ids.data, ids.len, NULL, 0);
    batch_t *b = rc == 0 ? batch_for(s, g) : NULL;
    if (b) {
        hx_put_u32(rec.data, (uint32_t)(rec.len - REC_HEADER));
        hx_put_u32(rec.data + 4, hx_crc32c(0, rec.data + REC_HEADER, rec.len - REC_HEADER));
        rc = hx_buf_append(&b->buf, rec.data, rec.len);
        b->last_seq = s->seq;
        g->logical += rec.len;
    } else {
        rc = HX_ENOMEM;
    }
    hx_buf_free(&ids);
    hx_buf_free(&rec);
    return rc;
}

/* ---- transactions --------------------------------------------------------------------- */

static int log_begin(hx_store_t *base)
{
    log_store_t *s = (log_store_t *)base;
    if (s->state)
        return s->state;
    if (!s->recovered)
        return HX_EINVAL;
    segment_t *g = active(s);
    if (!g || g->logical >= s->segment_bytes) {
        int rc = roll(s);
        if (rc)
            return rc;
        g = active(s);
    }
    s->txn.len = 0;
    uint8_t head[REC_HEADER + 1] = {0};
    head[REC_HEADER] = REC_TXN;
    if (hx_buf_append(&s->txn, head, sizeof head))
        return HX_ENOMEM;
    s->txn_base = g->logical;
    s->in_txn = true;
    return 0;
}

/* With a key: *msg sealed into s->sealed, and *len grown by the seal. */
static int seal_body(log_store_t *s, const uint8_t **msg, size_t *len)
{
    if (!s->encrypt)
        return 0;
    s->sealed.len = 0;
    if (hx_buf_reserve(&s->sealed, *len + SEAL_OVERHEAD))
        return HX_ENOMEM;
    randombytes_buf(s->sealed.data, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(s->sealed.data + crypto_secretbox_NONCEBYTES, *msg, *len, s->sealed.data, s->key);
    *msg = s->sealed.data;
    *len += SEAL_OVERHEAD;
    return 0;
}

static int log_put(hx_store_t *base, const uint8_t *msg, size_t len, uint64_t *handle)
{
    log_store_t *s = (log_store_t *)base;
    segment_t *g = active(s);
    uint64_t off = s->txn_base + s->txn.len + ENTRY_HEADER;
    if (off + len >= (1ull << OFFSET_BITS))
        return HX_EINVAL;
    if (seal_body(s, &msg, &len) || entry(&s->txn, E_PUT, msg, len, NULL, 0))
        return HX_ENOMEM;
    g->live++;
    *handle = make_handle(g->number, off);
    return 0;
}

static int log_move(hx_store_t *base, const uint8_t id[HX_ID_LEN], const uint8_t *msg, size_t len,
                    uint32_t attempts, uint64_t dead_at_ms, const char *reason, uint64_t *handle)
{
    log_store_t *s = (log_store_t *)base;
    segment_t *g = active(s);
    size_t rlen = reason ? strnlen(reason, 255) : 0;
    uint8_t head[MOVED_FIXED + 255];
    memcpy(head, id, HX_ID_LEN);
    hx_put_u32(head + HX_ID_LEN, attempts);
    hx_put_u64(head + HX_ID_LEN + 4, reason ? dead_at_ms : 0);
    head[HX_ID_LEN + 12] = reason != NULL;
    head[HX_ID_LEN + 13] = (uint8_t)rlen;
    if (rlen)
        memcpy(head + MOVED_FIXED, reason, rlen);
    uint64_t off = s->txn_base + s->txn.len + ENTRY_HEADER + MOVED_FIXED + rlen;
    if (!s->in_txn || off + len >= (1ull << OFFSET_BITS))
        return HX_EINVAL;
    size_t stored = len;
    if (seal_body(s, &msg, &stored) || entry(&s->txn, E_MOVED, head, MOVED_FIXED + rlen, msg, stored))
        return HX_ENOMEM;
    g->live++;
    s->moved++;
    s->moved_bytes += len;
    *handle = make_handle(g->number, off);
    return 0;
}

static int log_settle(hx_store_t *base, const uint8_t id[HX_ID_LEN])
{
    return entry(&((log_store_t *)base)->txn, E_SETTLE, id, HX_ID_LEN, NULL, 0);
}

static int log_revive(hx_store_t *base, const uint8_t id[HX_ID_LEN])
{
    return entry(&((log_store_t *)base)->txn, E_REVIVE, id, HX_ID_LEN, NULL, 0);
}

static int log_attempts(hx_store_t *base, const uint8_t id[HX_ID_LEN], uint32_t attempts)
{
    uint8_t v[4];
    hx_put_u32(v, attempts);
    return entry(&((log_store_t *)base)->txn, E_ATTEMPTS, id, HX_ID_LEN, v, 4);
}

static int log_dead(hx_store_t *base, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms,
                    const char *reason)
{
    uint8_t v[HX_ID_LEN + 12];
    memcpy(v, id, HX_ID_LEN);
    hx_put_u32(v + HX_ID_LEN, attempts);
    hx_put_u64(v + HX_ID_LEN + 4, at_ms);
    size_t rlen = strnlen(reason ? reason : "", 255);
    return entry(&((log_store_t *)base)->txn, E_DEAD, v, sizeof v, reason, rlen);
}

static int log_end(hx_store_t *base, uint64_t *seq)
{
    log_store_t *s = (log_store_t *)base;
    s->in_txn = false;
    segment_t *g = active(s);
    if (s->txn.len - REC_HEADER > REC_MAX)
        return HX_EINVAL;
    hx_put_u32(s->txn.data, (uint32_t)(s->txn.len - REC_HEADER));
    hx_put_u32(s->txn.data + 4, hx_crc32c(0, s->txn.data + REC_HEADER, s->txn.len - REC_HEADER));
    batch_t *b = batch_for(s, g);
    if (!b || hx_buf_append(&b->buf, s->txn.data, s->txn.len))
        return HX_ENOMEM;
    g->logical += s->txn.len;
    *seq = b->last_seq = ++s->seq;
    return 0;
}

static void log_abort(hx_store_t *base)
{
    log_store_t *s = (log_store_t *)base;
    s->in_txn = false;          /* puts of an aborted transaction are released by the owner */
}

/* ---- writing -------------------------------------------------------------------------- */

/* Tests only: what the faults file asks for ("enospc", "eio" or nothing). */
static int injected(const log_store_t *s, const char *what)
{
    if (!s->faults[0])
        return 0;
    char buf[32] = "";
    int fd = open(s->faults, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strncmp(buf, what, strlen(what)) == 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* SYNCED: the log is durable up to end. Two slots in turn, so a torn write of one leaves
 * the other. Called by the writer thread after its syncs, and by recovery. */
static int mark_write(log_store_t *s, pos_t end)
{
    uint8_t slot[HX_MARK_SLOT];
    uint64_t count = s->mark_count + 1;
    hx_mark_slot(slot, count, end.seg, end.off);
    int rc = pwrite_all(s->markfd, slot, sizeof slot, (count % 2) * HX_MARK_SLOT);
    if (rc == 0)
        s->mark_count = count;
    return rc;
}

/* The end SYNCED names (the slot with the higher counter that checks out), or false when
 * neither does (an empty file, or one from nothing). */
static bool mark_read(int fd, pos_t *end, uint64_t *count)
{
    return hx_mark_read(fd, &end->seg, &end->off, count);
}

/* On the thread pool: every batch written, each file synced once after its last batch,
 * the directory synced when a batch opened a new segment file, and then SYNCED told the new
 * end. */
static void work_cb(uv_work_t *w)
{
    log_store_t *s = w->data;
    uint64_t t0 = uv_hrtime();
    int rc = 0;
    bool dirsync = false;
    for (batch_t *b = s->writing; b && rc == 0; b = b->next) {
        rc = injected(s, "enospc") ? -ENOSPC : pwrite_all(b->seg->fd, b->buf.data, b->buf.len, b->offset);
        dirsync |= b->dirsync;
        if (rc == 0 && (!b->next || b->next->seg != b->seg)) {
            if (injected(s, "eio"))
                rc = -EIO;
            else if (fdatasync(b->seg->fd) != 0)
                rc = -errno;
        }
    }
    if (rc == 0 && dirsync && fsync(s->dirfd) != 0)
        rc = -errno;
    if (rc == 0) {
        int mrc = mark_write(s, s->work_end);
        s->mark_errno = mrc ? -mrc : 0;
    }
    s->work_ns = uv_hrtime() - t0;
    s->work_status = rc;
}

static void gc(log_store_t *s);
static void start_write(log_store_t *s);
static void after_cb(uv_work_t *w, int uv_status);

static void fail_all(log_store_t *s, int status)
{
    /* Nothing after the last durable byte counts: cut every segment back to it. */
    segment_t *g;
    DL_FOREACH(s->segs, g) {
        if (g->logical != g->durable) {
            if (ftruncate(g->fd, (off_t)g->durable) != 0)
                hx_warn("cannot cut segment %llu back to %llu bytes: %s", (unsigned long long)g->number,
                        (unsigned long long)g->durable, strerror(errno));
            g->logical = g->durable;
        }
    }
    batch_t *b, *tmp;
    LL_FOREACH_SAFE(s->pending, b, tmp) {
        LL_DELETE(s->pending, b);
        batch_free(b);
    }
    if (status == -ENOSPC) {
        s->state = HX_EFULL;
        snprintf(s->why, sizeof s->why, "the disk holding %s is full: not accepting until space returns", s->dir);
    } else {
        s->state = HX_EFAILED;
        snprintf(s->why, sizeof s->why, "writing the log in %s failed (%s): not accepting until the broker is "
                 "restarted and recovers from the log", s->dir, strerror(-status));
    }
    hx_error("%s", s->why);
    memcpy(s->anchor, s->dur_anchor, s->dur_anchor_len);   /* what was issued with it is not durable */
    s->anchor_len = s->dur_anchor_len;
    if (s->base.on_commit)
        s->base.on_commit(s->base.owner, s->seq, status);
}

static void after_cb(uv_work_t *w, int uv_status)
{
    log_store_t *s = w->data;
    int status = uv_status ? uv_status : s->work_status;
    s->work_busy = false;
    batch_t *b, *tmp;
    if (status == 0) {
        uint64_t seq = s->durable_seq;
        LL_FOREACH_SAFE(s->writing, b, tmp) {
            b->seg->durable = b->offset + b->buf.len;
            if (b->last_seq > seq)
                seq = b->last_seq;
            LL_DELETE(s->writing, b);
            batch_free(b);
        }
        s->durable_seq = seq;
        s->durable_end = s->work_end;
        s->syncs++;
        if (s->mark_errno && !s->mark_warned)
            hx_warn("log: cannot update %s/%s (%s): a later recovery may take damage to the newest records for "
                    "a torn tail", s->dir, HX_MARK_FILE, strerror(s->mark_errno));
        s->mark_warned |= s->mark_errno != 0;
        if (s->base.on_sync)
            s->base.on_sync(s->base.sync_arg, s->work_ns);
        if (s->base.on_commit)
            s->base.on_commit(s->base.owner, seq, 0);
        bool anchored = s->anchor_len != s->dur_anchor_len || memcmp(s->anchor, s->dur_anchor, s->anchor_len) != 0;
        if (anchored) {
            memcpy(s->dur_anchor, s->anchor, s->anchor_len);
            s->dur_anchor_len = s->anchor_len;
            if (s->base.on_anchor)
                s->base.on_anchor(s->base.anchor_arg, s->dur_anchor, s->dur_anchor_len);
        }
        gc(s);
        if (s->pending && !s->state)
            start_write(s);
        return;
    }
    LL_FOREACH_SAFE(s->writing, b, tmp) {
        LL_DELETE(s->writing, b);
        batch_free(b);
    }
    fail_all(s, status);
}

/* The commit record that closes a write at (seg, off); returns its size. */
static size_t commit_record(uint8_t *out, pos_t self, pos_t mark, const uint8_t *anchor, size_t anchor_len)
{
    uint8_t *p = out + REC_HEADER;
    p[0] = REC_COMMIT;
    memcpy(p + 1, COMMIT_MAGIC, 8);
    hx_put_u64(p + 9, self.seg);
    hx_put_u64(p + 17, self.off);
    hx_put_u64(p + 25, mark.seg);
    hx_put_u64(p + 33, mark.off);
    p[41] = (uint8_t)anchor_len;
    if (anchor_len)
        memcpy(p + COMMIT_FIXED, anchor, anchor_len);
    size_t len = COMMIT_FIXED + anchor_len;
    hx_put_u32(out, (uint32_t)len);
    hx_put_u32(out + 4, hx_crc32c(0, p, len));
    return REC_HEADER + len;
}

static bool same_blob(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static void anchor_sync_cb(uv_work_t *w)
{
    log_store_t *s = w->data;
    s->anchor_errno = fdatasync(s->anchor_fd) != 0 ? errno : 0;
}

static void anchor_synced(log_store_t *s, int status)
{
    s->anchor_busy = false;
    if (status == 0 && s->anchor_errno == 0) {
        memcpy(s->ready, s->syncing, s->syncing_len);
        s->ready_len = s->syncing_len;
    } else {
        hx_warn("log: cannot sync the anchored file, so its newest head is not recorded yet: %s",
                strerror(status ? -status : s->anchor_errno));
    }
}

static void anchor_synced_cb(uv_work_t *w, int status)
{
    log_store_t *s = w->data;
    anchor_synced(s, status);
    start_write(s);                             /* a commit of its own when nothing else goes */
}

/* Asks the owner for its anchor. A new one is recorded only once what it names is durable:
 * its file is synced first, on the thread pool beside the log's own write, so the commit
 * path does not wait for it, and at most once per ANCHOR_SYNC_GAP_NS, so that the disk is
 * not asked for a second flush per group commit (measured with --audit: 24% fewer messages
 * per second that way). The recorded anchor trails by up to that gap and one sync; a clean
 * stop records the last one. */
#define ANCHOR_SYNC_GAP_NS (50 * 1000000ull)

static void anchor_poll(log_store_t *s)
{
    if (!s->base.anchor || s->anchor_busy || s->state || !s->recovered)
        return;
    uint64_t now = uv_hrtime();
    if (s->loop && now - s->anchor_synced_ns < ANCHOR_SYNC_GAP_NS)
        return;
    uint8_t blob[HX_STORE_ANCHOR_MAX];
    int fd = -1;
    size_t len = s->base.anchor(s->base.anchor_arg, blob, sizeof blob, &fd);
    if (len > sizeof blob)
        len = sizeof blob;
    if (same_blob(blob, len, s->ready, s->ready_len))
        return;
    if (fd < 0) {
        memcpy(s->ready, blob, len);
        s->ready_len = len;
        return;
    }
    memcpy(s->syncing, blob, len);
    s->syncing_len = len;
    s->anchor_synced_ns = now;
    s->anchor_fd = fd;
    s->anchor_busy = true;
    s->anchor_work.data = s;
    if (s->loop && uv_queue_work(s->loop, &s->anchor_work, anchor_sync_cb, anchor_synced_cb) == 0)
        return;
    anchor_sync_cb(&s->anchor_work);            /* no loop: here and now */
    anchor_synced(s, 0);
}

/* Issues one group commit: what is pending, closed by a commit record that carries the
 * durable end so far and the anchor. With nothing pending, a commit of its own only when
 * the anchor moved. */
static void start_write(log_store_t *s)
{
    anchor_poll(s);
    if (s->work_busy || s->state || !s->recovered)
        return;
    bool moved = !same_blob(s->ready, s->ready_len, s->anchor, s->anchor_len);
    if (!s->pending) {
        if (!moved)
            return;
        if (!active(s) && roll(s) != 0) {
            hx_warn("log: cannot record the anchor: %s", s->why);
            return;
        }
        if (!s->pending && !batch_for(s, active(s)))
            return;
    }
    batch_t *last = s->pending;
    while (last->next)
        last = last->next;
    segment_t *g = last->seg;                   /* the active segment: batches go in log order */
    uint8_t rec[REC_HEADER + COMMIT_FIXED + HX_STORE_ANCHOR_MAX];
    size_t n = commit_record(rec, (pos_t){g->number, g->logical}, s->durable_end, s->ready, s->ready_len);
    if (hx_buf_append(&last->buf, rec, n) == 0) {  /* out of memory: this write goes without one */
        g->logical += n;
        memcpy(s->anchor, s->ready, s->ready_len);
        s->anchor_len = s->ready_len;
    }
    s->work_end = (pos_t){g->number, g->logical};
    s->writing = s->pending;
    s->pending = NULL;
    s->work_busy = true;
    s->work.data = s;
    if (s->loop && uv_queue_work(s->loop, &s->work, work_cb, after_cb) == 0)
        return;
    work_cb(&s->work);                          /* no loop: here and now */
    after_cb(&s->work, 0);
}

static void log_flush(hx_store_t *base)
{
    start_write((log_store_t *)base);
}

/* After a full disk: once a second, see whether a block can be written and synced. */
static void log_tick(hx_store_t *base, uint64_t now_ms)
{
    log_store_t *s = (log_store_t *)base;
    if (s->state != HX_EFULL || now_ms - s->last_probe < 1000)
        return;
    s->last_probe = now_ms;
    segment_t *g = active(s);
    if (!g || injected(s, "enospc"))
        return;
    static const uint8_t zeros[4096];
    int rc = pwrite_all(g->fd, zeros, sizeof zeros, g->durable);
    if (rc == 0 && fdatasync(g->fd) != 0)
        rc = -errno;
    if (ftruncate(g->fd, (off_t)g->durable) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0) {
        s->state = 0;
        s->why[0] = '\0';
        hx_info("disk space is back: accepting again");
    }
}

/* ---- reading, releasing, deleting ------------------------------------------------------- */

static int log_get(hx_store_t *base, uint64_t handle, size_t len, const uint8_t **data)
{
    log_store_t *s = (log_store_t *)base;
    segment_t *g = seg_of(s, handle);
    uint64_t off = handle & ((1ull << OFFSET_BITS) - 1);
    size_t want = stored_len(s, len);
    hx_buf_t *into = s->encrypt ? &s->sealed : &s->rbuf;
    if (!g || hx_buf_reserve(into, want))
        return HX_EIO;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(g->fd, into->data + got, want - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return HX_EIO;
        got += (size_t)n;
    }
    size_t out_len;
    return unseal(s, into->data, want, data, &out_len) == 0 && out_len == len ? 0 : HX_EIO;
}

static void gc(log_store_t *s)
{
    if (s->recovering)
        return;
    segment_t *g;
    while ((g = s->segs) && g != active(s) && g->live == 0 && g->durable == g->logical && g->next &&
           g->next->durable > 0) {
        char name[64];
        hx_seg_name(g->number, name, sizeof name);
        if (unlinkat(s->dirfd, name, 0) != 0) {
            hx_warn("cannot delete settled segment %s: %s", name, strerror(errno));
            return;
        }
        hx_debug("deleted settled segment %s", name);
        close(g->fd);
        DL_DELETE(s->segs, g);
        free(g);
    }
}

static void log_release(hx_store_t *base, uint64_t handle)
{
    log_store_t *s = (log_store_t *)base;
    segment_t *g = seg_of(s, handle);
    if (g && g->live)
        g->live--;
    gc(s);
}

static void log_forget(hx_store_t *base, uint64_t handle)
{
    (void)base;                                 /* on disk until settled: nothing to do */
    (void)handle;
}

static int log_health(const hx_store_t *base, const char **why)
{
    const log_store_t *s = (const log_store_t *)base;
    *why = s->why;
    return s->state;
}

static uint64_t log_durable(const hx_store_t *base)
{
    return ((const log_store_t *)base)->durable_seq;
}

static size_t log_bytes(const hx_store_t *base)
{
    const log_store_t *s = (const log_store_t *)base;
    size_t n = 0;
    const segment_t *g;
    DL_FOREACH(s->segs, g) n += g->logical;
    return n;
}

static uint64_t log_syncs(const hx_store_t *base)
{
    return ((const log_store_t *)base)->syncs;
}

/* ---- compaction ---------------------------------------------------------------------------- */

/* The oldest segment, when it is worth emptying: it still holds messages (one without any
 * goes by itself), it is not the active one, and the log holds more than twice what is
 * held — counted as stored, with each message's framing — plus two segments. Moving its
 * messages costs their bytes; what it frees is the rest of it and every settled segment
 * behind it, so under that bound the copying stays a fraction of what passes. */
static uint64_t log_compact_pick(const hx_store_t *base, uint64_t live_bytes, uint64_t live_messages)
{
    const log_store_t *s = (const log_store_t *)base;
    const segment_t *g = s->segs;
    if (s->state || !s->recovered || !g || g == s->segs->prev || g->live == 0)
        return 0;
    uint64_t framing = REC_HEADER + 1 + ENTRY_HEADER + MOVED_FIXED + (s->encrypt ? SEAL_OVERHEAD : 0);
    uint64_t held = live_bytes + live_messages * framing;
    return log_bytes(base) > 2 * held + 2 * s->segment_bytes ? g->number : 0;
}

static uint64_t log_segment_of(const hx_store_t *base, uint64_t handle)
{
    (void)base;
    return handle >> OFFSET_BITS;
}

static uint64_t log_bytes_from(const hx_store_t *base, uint64_t seg)
{
    const log_store_t *s = (const log_store_t *)base;
    uint64_t n = 0;
    const segment_t *g;
    DL_FOREACH(s->segs, g) {
        if (g->number >= seg)
            n += g->logical;
    }
    return n;
}

static void log_compacted(const hx_store_t *base, uint64_t *messages, uint64_t *bytes)
{
    const log_store_t *s = (const log_store_t *)base;
    *messages = s->moved;
    *bytes = s->moved_bytes;
}

/* ---- recovery --------------------------------------------------------------------------- */

/* Replays one record's entries into v; with v NULL only checks that they parse. -1 when they
 * do not (corruption, not a torn write), -2 when a body does not open with the key. */
static int replay(log_store_t *s, segment_t *g, uint64_t rec_off, const uint8_t *p, size_t len, bool first_seg,
                  const hx_store_visitor_t *v, void *arg)
{
    uint8_t type = p[0];
    if (type != REC_TXN && type != REC_CHECKPOINT)
        return -1;
    size_t off = 1;
    while (off < len) {
        if (len - off < ENTRY_HEADER)
            return -1;
        uint8_t kind = p[off];
        uint32_t elen = hx_get_u32(p + off + 1);
        const uint8_t *e = p + off + ENTRY_HEADER;
        if (elen > len - off - ENTRY_HEADER)
            return -1;
        if (type == REC_CHECKPOINT) {
            if (kind != E_DEDUP || elen % HX_ID_LEN)
                return -1;
            for (uint32_t i = 0; v && first_seg && i < elen; i += HX_ID_LEN)
                v->dedup(arg, e + i);
        } else {
            switch (kind) {
            case E_PUT: {
                if (!v)
                    break;
                const uint8_t *body;
                size_t body_len;
                if (unseal(s, e, elen, &body, &body_len) != 0)
                    return -2;                  /* does not open: the wrong key */
                g->live++;
                v->put(arg, make_handle(g->number, rec_off + REC_HEADER + off + ENTRY_HEADER), body, body_len);
                break;
            }
            case E_MOVED: {
                if (elen < MOVED_FIXED || e[HX_ID_LEN + 12] > 1 || elen < MOVED_FIXED + (uint32_t)e[HX_ID_LEN + 13])
                    return -1;
                if (!v)
                    break;
                size_t rlen = e[HX_ID_LEN + 13], at = MOVED_FIXED + rlen;
                const uint8_t *body;
                size_t body_len;
                hx_msg_head_t h;
                if (unseal(s, e + at, elen - at, &body, &body_len) != 0)
                    return -2;
                if (hx_wire_scan_message(body, body_len, &h) != 0 || h.id_len != HX_ID_LEN ||
                    memcmp(h.id, e, HX_ID_LEN) != 0)
                    return -1;                  /* the body is not the message the entry names */
                char reason[256];
                memcpy(reason, e + MOVED_FIXED, rlen);
                reason[rlen] = '\0';
                g->live++;
                uint64_t handle = make_handle(g->number, rec_off + REC_HEADER + off + ENTRY_HEADER + at);
                if (v->moved)
                    v->moved(arg, handle, body, body_len, hx_get_u32(e + HX_ID_LEN), hx_get_u64(e + HX_ID_LEN + 4),
                             e[HX_ID_LEN + 12] ? reason : NULL);
                else
                    v->put(arg, handle, body, body_len);
                break;
            }
            case E_SETTLE:
                if (elen != HX_ID_LEN)
                    return -1;
                if (v)
                    v->settle(arg, e);
                break;
            case E_REVIVE:
                if (elen != HX_ID_LEN)
                    return -1;
                if (v)
                    v->revive(arg, e);
                break;
            case E_ATTEMPTS:
                if (elen != HX_ID_LEN + 4)
                    return -1;
                if (v)
                    v->attempts(arg, e, hx_get_u32(e + HX_ID_LEN));
                break;
            case E_DEAD: {
                if (elen < HX_ID_LEN + 12 || elen > HX_ID_LEN + 12 + 255)
                    return -1;
                char reason[256];
                size_t rlen = elen - HX_ID_LEN - 12;
                memcpy(reason, e + HX_ID_LEN + 12, rlen);
                reason[rlen] = '\0';
                if (v)
                    v->dead(arg, e, hx_get_u32(e + HX_ID_LEN), hx_get_u64(e + HX_ID_LEN + 4), reason);
                break;
            }
            default:
                return -1;
            }
        }
        off += ENTRY_HEADER + elen;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The numbers of the segment files in dirfd, sorted. */
static int list_segments(int dirfd, const char *dir, uint64_t **out, size_t *count, char *why, size_t cap)
{
    *out = NULL;
    *count = 0;
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        snprintf(why, cap, "cannot read %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return HX_EIO;
    }
    rewinddir(d);                               /* the duplicate shares the position of the last listing */
    uint64_t *nums = NULL;
    size_t n = 0, ncap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        unsigned long long num = strtoull(de->d_name, &end, 10);
        if (strlen(de->d_name) != 24 || end != de->d_name + 20 || strcmp(end, ".log") != 0 || num == 0)
            continue;
        if (n == ncap) {
            ncap = ncap ? ncap * 2 : 16;
            uint64_t *t = realloc(nums, ncap * sizeof *nums);
            if (!t) {
                free(nums);
                closedir(d);
                return HX_ENOMEM;
            }
            nums = t;
        }
        nums[n++] = num;
    }
    closedir(d);
    if (n)
        qsort(nums, n, sizeof *nums, cmp_u64);
    *out = nums;
    *count = n;
    return 0;
}

/* A segment file mapped for reading. */
typedef struct {
    uint64_t number;
    int fd;
    const uint8_t *map;         /* NULL when the file is empty */
    uint64_t size;
} seg_map_t;

static int map_segment(int dirfd, const char *dir, uint64_t number, int flags, seg_map_t *m, char *why, size_t cap)
{
    char name[64];
    hx_seg_name(number, name, sizeof name);
    memset(m, 0, sizeof *m);
    m->number = number;
    m->fd = openat(dirfd, name, flags | O_CLOEXEC);
    struct stat st;
    if (m->fd < 0 || fstat(m->fd, &st) != 0) {
        snprintf(why, cap, "cannot open %s/%s: %s", dir, name, strerror(errno));
        if (m->fd >= 0)
            close(m->fd);
        m->fd = -1;
        return HX_EIO;
    }
    m->size = (uint64_t)st.st_size;
    if (m->size) {
        /* populated at once: recovery reads every byte, and faulting a gigabyte of log in
         * page by page took a third of a restart */
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, m->fd, 0);
        if (p == MAP_FAILED) {
            snprintf(why, cap, "cannot map %s/%s: %s", dir, name, strerror(errno));
            close(m->fd);
            m->fd = -1;
            return HX_EIO;
        }
        m->map = p;
    }
    return 0;
}

/* Unmaps; closes the file too unless its descriptor went elsewhere. */
static void unmap_segment(seg_map_t *m, bool keep_fd)
{
    if (m->map)
        munmap((void *)m->map, m->size);
    m->map = NULL;
    if (!keep_fd && m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

/* The payload length of the record at off when it is whole and its CRC holds, else 0. */
static uint32_t rec_at(const uint8_t *map, uint64_t size, uint64_t off)
{
    if (off > size || size - off < REC_HEADER + 1)
        return 0;
    uint32_t len = hx_get_u32(map + off);
    if (len == 0 || len > REC_MAX || len > size - off - REC_HEADER)
        return 0;
    return hx_crc32c(0, map + off + REC_HEADER, len) == hx_get_u32(map + off + 4) ? len : 0;
}

typedef struct {
    pos_t self, mark;
    const uint8_t *anchor;
    size_t anchor_len;
} commit_t;

/* A commit record's fields; false when p is none, or one that names another place than
 * (seg, off) or vouches for more than what precedes it. */
static bool commit_parse(const uint8_t *p, uint32_t len, uint64_t seg, uint64_t off, commit_t *c)
{
    if (len < COMMIT_FIXED || p[0] != REC_COMMIT || memcmp(p + 1, COMMIT_MAGIC, 8) != 0)
        return false;
    c->self = (pos_t){hx_get_u64(p + 9), hx_get_u64(p + 17)};
    c->mark = (pos_t){hx_get_u64(p + 25), hx_get_u64(p + 33)};
    c->anchor_len = p[41];
    c->anchor = p + COMMIT_FIXED;
    return c->anchor_len <= HX_STORE_ANCHOR_MAX && len == COMMIT_FIXED + c->anchor_len && c->self.seg == seg &&
           c->self.off == off && pos_cmp(c->mark, c->self) <= 0;
}

/* Raises *acked to the highest mark of the commit records that start at or after `from`
 * in m, found by their magic: how far the log was durable, read past damage. */
static void marks_in(const seg_map_t *m, uint64_t from, pos_t *acked)
{
    if (!m->map || m->size < REC_HEADER + COMMIT_FIXED || from > m->size - REC_HEADER - COMMIT_FIXED)
        return;
    const uint8_t *end = m->map + m->size;
    const uint8_t *p = m->map + from + REC_HEADER + 1;
    while (p + 8 <= end && (p = memmem(p, (size_t)(end - p), COMMIT_MAGIC, 8)) != NULL) {
        uint64_t rec = (uint64_t)(p - m->map) - REC_HEADER - 1;
        uint32_t len = rec_at(m->map, m->size, rec);
        commit_t c;
        if (len && commit_parse(m->map + rec + REC_HEADER, len, m->number, rec, &c) && pos_cmp(c.mark, *acked) > 0)
            *acked = c.mark;
        p++;
    }
}

/* Whether a record may start at off: the cheap checks before its CRC. */
static bool rec_plausible(const uint8_t *map, uint64_t size, uint64_t off)
{
    if (size - off < REC_HEADER + 1)
        return false;
    uint32_t len = hx_get_u32(map + off);
    if (len == 0 || len > REC_MAX || len > size - off - REC_HEADER)
        return false;
    const uint8_t *p = map + off + REC_HEADER;
    if (p[0] == REC_COMMIT)
        return len >= COMMIT_FIXED && memcmp(p + 1, COMMIT_MAGIC, 8) == 0;
    if (p[0] != REC_TXN && p[0] != REC_CHECKPOINT)
        return false;
    if (len == 1)
        return true;
    return len >= 1 + ENTRY_HEADER && p[1] >= E_PUT && p[1] <= E_MOVED && hx_get_u32(p + 2) <= len - 1 - ENTRY_HEADER;
}

/* The first readable record at or after `from` (size when there is none): byte by byte, for
 * finding the way on after damage. Gives up after checksumming 4 GiB of candidates, so bytes
 * shaped like record headers cannot stall it. */
static uint64_t resync(const uint8_t *map, uint64_t size, uint64_t from)
{
    uint64_t budget = 4ull << 30;
    for (uint64_t off = from; off < size && size - off >= REC_HEADER + 1; off++) {
        if (!rec_plausible(map, size, off))
            continue;
        uint32_t len = hx_get_u32(map + off);
        if (len > budget)
            return size;
        budget -= len;
        if (hx_crc32c(0, map + off + REC_HEADER, len) == hx_get_u32(map + off + 4))
            return off;
    }
    return size;
}

/* The first and last message ids a transaction record names (a put's, read from its message,
 * opened with the key when sealed); false when it names none that can be read. */
static bool record_ids(log_store_t *s, const uint8_t *p, size_t len, uint8_t first[HX_ID_LEN],
                       uint8_t last[HX_ID_LEN])
{
    if (len < 1 || p[0] != REC_TXN)
        return false;
    bool any = false;
    size_t off = 1;
    while (len - off >= ENTRY_HEADER) {
        uint8_t kind = p[off];
        uint32_t elen = hx_get_u32(p + off + 1);
        if (elen > len - off - ENTRY_HEADER)
            break;
        const uint8_t *e = p + off + ENTRY_HEADER, *id = NULL;
        if (kind == E_PUT) {
            const uint8_t *body;
            size_t body_len;
            hx_msg_head_t h;
            if (unseal(s, e, elen, &body, &body_len) == 0 && hx_wire_scan_message(body, body_len, &h) == 0 &&
                h.id && h.id_len == HX_ID_LEN)
                id = h.id;
        } else if (((kind >= E_SETTLE && kind <= E_ATTEMPTS) || kind == E_MOVED) && elen >= HX_ID_LEN) {
            id = e;
        }
        if (id) {
            if (!any)
                memcpy(first, id, HX_ID_LEN);
            memcpy(last, id, HX_ID_LEN);
            any = true;
        }
        off += ENTRY_HEADER + elen;
    }
    return any;
}

/* Where a readable transaction record is, to name its messages later. */
typedef struct {
    bool set;
    pos_t at;
    uint32_t len;
} rec_ref_t;

/* "message <id> (segment <name> offset <n>)", or "none". */
static void describe(char *out, size_t cap, bool found, const uint8_t id[HX_ID_LEN], pos_t at)
{
    if (!found) {
        snprintf(out, cap, "none");
        return;
    }
    char hex[2 * HX_ID_LEN + 1], name[64];
    hx_id_hex(id, hex);
    hx_seg_name(at.seg, name, sizeof name);
    snprintf(out, cap, "message %s (record at offset %llu of %s)", hex, (unsigned long long)at.off, name);
}

/* The last message id of the record ref names, read from m when it is there, else from its
 * segment's file. */
static bool ids_before(log_store_t *s, const rec_ref_t *ref, const seg_map_t *m, uint8_t id[HX_ID_LEN])
{
    uint8_t first[HX_ID_LEN];
    if (!ref->set)
        return false;
    if (m && m->number == ref->at.seg && m->map)
        return record_ids(s, m->map + ref->at.off + REC_HEADER, ref->len, first, id);
    segment_t *g = seg_of(s, make_handle(ref->at.seg, 0));
    uint8_t *buf = g ? malloc(ref->len) : NULL;
    bool found = buf && pread(g->fd, buf, ref->len, (off_t)(ref->at.off + REC_HEADER)) == (ssize_t)ref->len &&
                 record_ids(s, buf, ref->len, first, id);
    free(buf);
    return found;
}

/* The first readable transaction from (nums[i], from) on, in m and then the later segments,
 * that names a message: its first id and where it is. */
static bool ids_after(log_store_t *s, const uint64_t *nums, size_t n, size_t i, const seg_map_t *m, uint64_t from,
                      uint8_t id[HX_ID_LEN], pos_t *at)
{
    size_t looked = 0;
    for (size_t j = i; j < n && looked < 100000; j++) {
        seg_map_t other;
        const seg_map_t *cur = m;
        char why[64];
        if (j != i) {
            if (map_segment(s->dirfd, s->dir, nums[j], O_RDONLY, &other, why, sizeof why) != 0)
                continue;
            cur = &other;
            from = 0;
        }
        bool found = false;
        uint64_t off = resync(cur->map, cur->size, from);
        while (!found && off < cur->size && looked++ < 100000) {
            uint32_t len = rec_at(cur->map, cur->size, off);
            uint8_t last[HX_ID_LEN];
            if (record_ids(s, cur->map + off + REC_HEADER, len, id, last)) {
                *at = (pos_t){nums[j], off};
                found = true;
            }
            off = resync(cur->map, cur->size, off + REC_HEADER + len);
        }
        if (j != i)
            unmap_segment(&other, false);
        if (found)
            return true;
    }
    return false;
}

/* A record of segment nums[i] (mapped in m) at offset off does not read. A torn tail when it
 * lies past everything acknowledged (SYNCED and every commit record's mark, also those after
 * it); then it is cut, with every later segment, and *n shrinks. Otherwise the log is
 * damaged: refuse, naming it, and touch nothing. A log without SYNCED keeps the old rule: a
 * tail is torn when nothing readable follows it. */
static int damaged(log_store_t *s, const uint64_t *nums, size_t *n, size_t i, const seg_map_t *m, uint64_t off,
                   bool known, pos_t acked, const rec_ref_t *before)
{
    char name[64];
    hx_seg_name(nums[i], name, sizeof name);
    pos_t at = {nums[i], off};
    marks_in(m, off + 1, &acked);
    bool later = false;
    for (size_t j = i + 1; j < *n; j++) {
        seg_map_t lm;
        char why[64];
        if (map_segment(s->dirfd, s->dir, nums[j], O_RDONLY, &lm, why, sizeof why) != 0) {
            later = true;                       /* cannot look: assume it holds data */
            continue;
        }
        later |= lm.size > 0;
        marks_in(&lm, 0, &acked);
        unmap_segment(&lm, false);
    }
    bool follows = false;                       /* the record the damaged one's header points to reads */
    if (m->size - off >= REC_HEADER) {
        uint64_t hl = hx_get_u32(m->map + off);
        follows = hl > 0 && hl <= m->size - off - REC_HEADER && rec_at(m->map, m->size, off + REC_HEADER + hl) != 0;
    }
    const char *reason = NULL;
    char reason_buf[160];
    if (pos_cmp(at, acked) < 0) {
        snprintf(reason_buf, sizeof reason_buf, "inside the part of the log acknowledged as durable (up to segment "
                 "%llu offset %llu)", (unsigned long long)acked.seg, (unsigned long long)acked.off);
        reason = reason_buf;
    } else if (!known && (later || follows)) {
        reason = later ? "and later segments hold data" : "and readable records follow it";
    }
    if (reason) {
        uint8_t bid[HX_ID_LEN], aid[HX_ID_LEN];
        pos_t apos = {0, 0};
        bool has_before = ids_before(s, before, m, bid);
        bool has_after = ids_after(s, nums, *n, i, m, off + 1, aid, &apos);
        char bdesc[160], adesc[160];
        describe(bdesc, sizeof bdesc, has_before, bid, before->at);
        describe(adesc, sizeof adesc, has_after, aid, apos);
        snprintf(s->why, sizeof s->why, "segment %s/%s is damaged at offset %llu (a record that does not check "
                 "out), %s: refusing to start, nothing was cut. The last readable message before it: %s; the "
                 "first after it: %s. Keep a copy of the data directory, then run handoff-broker --salvage with "
                 "the same --data (see OPERATIONS.md, Recovery)", s->dir, name, (unsigned long long)off, reason,
                 bdesc, adesc);
        return HX_EFAILED;
    }
    hx_warn("log: cut a torn tail of %llu bytes from %s at offset %llu (never acknowledged: the log was durable up "
            "to segment %llu offset %llu)", (unsigned long long)(m->size - off), name, (unsigned long long)off,
            (unsigned long long)acked.seg, (unsigned long long)acked.off);
    if (ftruncate(m->fd, (off_t)off) != 0 || fdatasync(m->fd) != 0) {
        snprintf(s->why, sizeof s->why, "cannot cut the torn tail of %s: %s", name, strerror(errno));
        return HX_EIO;
    }
    for (size_t j = i + 1; j < *n; j++) {       /* segments after it were part of the same write */
        char later_name[64];
        hx_seg_name(nums[j], later_name, sizeof later_name);
        unlinkat(s->dirfd, later_name, 0);
    }
    *n = i + 1;
    return 0;
}

/* The segments to recover, sorted; refuses when a salvage was interrupted or a segment is
 * missing from the middle. */
static int remove_dir_at(int at, const char *name);

static int recover_list(log_store_t *s, uint64_t **out, size_t *count)
{
    struct stat st;
    if (fstatat(s->dirfd, SALVAGE_DIR, &st, 0) == 0) {
        snprintf(s->why, sizeof s->why, "%s/%s exists: a salvage of this log was interrupted; run handoff-broker "
                 "--salvage --data %s again to finish it", s->dir, SALVAGE_DIR, s->dir);
        return HX_EFAILED;
    }
    if (fstatat(s->dirfd, REKEY_DIR, &st, 0) == 0) {
        snprintf(s->why, sizeof s->why, "%s/%s exists: a rekey of this log was interrupted; run handoff-broker "
                 "--rekey with the same --data, --data-key and --new-data-key again to finish it", s->dir, REKEY_DIR);
        return HX_EFAILED;
    }
    if (fstatat(s->dirfd, REKEY_OLD, &st, 0) == 0) {   /* the new log is in place: these are the old one's */
        if (remove_dir_at(s->dirfd, REKEY_OLD) == 0)
            hx_info("log: removed %s/%s, the segments a finished rekey left", s->dir, REKEY_OLD);
        else
            hx_warn("log: cannot remove %s/%s (the segments a finished rekey left): %s", s->dir, REKEY_OLD,
                    strerror(errno));
    }
    uint64_t *nums;
    size_t n;
    int rc = list_segments(s->dirfd, s->dir, &nums, &n, s->why, sizeof s->why);
    if (rc)
        return rc;
    for (size_t i = 1; i < n; i++) {
        if (nums[i] != nums[i - 1] + 1) {
            snprintf(s->why, sizeof s->why, "segment %s/%020llu.log is missing (the log goes from %020llu.log to "
                     "%020llu.log): refusing to start without it; see handoff-broker --salvage", s->dir,
                     (unsigned long long)nums[i - 1] + 1, (unsigned long long)nums[i - 1],
                     (unsigned long long)nums[i]);
            free(nums);
            return HX_EFAILED;
        }
    }
    *out = nums;
    *count = n;
    return 0;
}

/* What recovery learns as it reads the segments in order. */
typedef struct {
    const hx_store_visitor_t *v;
    void *arg;
    pos_t acked;                /* how far the log had been made durable: SYNCED, then every commit record */
    bool known;                 /* SYNCED named an end */
    uint64_t records;
    rec_ref_t last_txn;         /* the last transaction read, to name its messages */
    uint8_t anchor[HX_STORE_ANCHOR_MAX];        /* the last commit record's */
    size_t anchor_len;
    bool anchored;
} recovery_t;

/* Replays the records of segment m (g in the store) into rv->v up to the first that does not
 * read, whose offset goes to *end; commit records raise rv->acked and carry the anchor. A
 * record that reads but does not parse or open is refused. */
static int recover_records(log_store_t *s, segment_t *g, const seg_map_t *m, bool first_seg, recovery_t *rv,
                           uint64_t *end)
{
    char name[64];
    hx_seg_name(m->number, name, sizeof name);
    int rc = 0;
    uint64_t off = 0;
    while (off < m->size) {
        uint32_t len = rec_at(m->map, m->size, off);
        if (!len)
            break;
        const uint8_t *p = m->map + off + REC_HEADER;
        int prc = 0;
        if (p[0] == REC_COMMIT) {
            commit_t c;
            if (commit_parse(p, len, m->number, off, &c)) {
                if (pos_cmp(c.mark, rv->acked) > 0)
                    rv->acked = c.mark;
                memcpy(rv->anchor, c.anchor, c.anchor_len);
                rv->anchor_len = c.anchor_len;
                rv->anchored = true;
            } else {
                prc = -1;
            }
        } else {
            prc = replay(s, g, off, p, len, first_seg, rv->v, rv->arg);
            if (p[0] == REC_TXN && len > 1)
                rv->last_txn = (rec_ref_t){true, {m->number, off}, len};
        }
        if (prc == -2) {
            s->wrong_key = true;
            snprintf(s->why, sizeof s->why, "segment %s/%s: a message at offset %llu does not open with this "
                     "data key (a different --data-key, or none, was used to write it)", s->dir, name,
                     (unsigned long long)off);
            rc = HX_EFAILED;
            break;
        }
        if (prc != 0) {
            snprintf(s->why, sizeof s->why, "segment %s/%s is corrupt at offset %llu (a record with a valid "
                     "checksum does not parse): refusing to start, nothing was cut; see handoff-broker "
                     "--salvage", s->dir, name, (unsigned long long)off);
            rc = HX_EFAILED;
            break;
        }
        rv->records++;
        off += REC_HEADER + len;
    }
    *end = off;
    return rc;
}

/* Opens and replays the segments nums[0..*n) into the store, oldest first; a record that does
 * not read ends a segment, and damaged() decides whether that is a torn tail (cut: *n shrinks)
 * or damage (refused). */
static int recover_segments(log_store_t *s, const uint64_t *nums, size_t *n, recovery_t *rv)
{
    int rc = 0;
    for (size_t i = 0; i < *n && rc == 0; i++) {
        seg_map_t m;
        rc = map_segment(s->dirfd, s->dir, nums[i], O_RDWR, &m, s->why, sizeof s->why);
        if (rc)
            break;
        segment_t *g = calloc(1, sizeof *g);
        if (!g) {
            unmap_segment(&m, false);
            rc = HX_ENOMEM;
            break;
        }
        g->number = nums[i];
        g->fd = m.fd;
        DL_APPEND(s->segs, g);
        uint64_t off;
        rc = recover_records(s, g, &m, i == 0, rv, &off);
        if (rc == 0 && off < m.size)
            rc = damaged(s, nums, n, i, &m, off, rv->known, rv->acked, &rv->last_txn);
        unmap_segment(&m, true);                /* the descriptor is the segment's now */
        if (rc)
            break;
        g->durable = g->logical = off;
    }
    return rc;
}

/* What recovery kept is accepted now: makes the last two segments durable, then says so in
 * SYNCED (synced, with the directory). */
static int recover_sync(log_store_t *s, pos_t end)
{
    segment_t *g = active(s);
    for (int k = 0; g && k < 2; k++, g = g == s->segs ? NULL : g->prev) {
        if (fdatasync(g->fd) != 0) {
            snprintf(s->why, sizeof s->why, "cannot sync segment %llu in %s: %s", (unsigned long long)g->number,
                     s->dir, strerror(errno));
            return HX_EIO;
        }
    }
    int mrc = mark_write(s, end);
    if (mrc == 0 && fdatasync(s->markfd) != 0)
        mrc = -errno;
    if (mrc == 0 && fsync(s->dirfd) != 0)
        mrc = -errno;
    if (mrc) {
        snprintf(s->why, sizeof s->why, "cannot write %s/%s: %s", s->dir, HX_MARK_FILE, strerror(-mrc));
        return HX_EIO;
    }
    return 0;
}

static int log_recover(hx_store_t *base, const hx_store_visitor_t *v, void *arg)
{
    log_store_t *s = (log_store_t *)base;
    uint64_t *nums;
    size_t n;
    int rc = recover_list(s, &nums, &n);
    if (rc)
        return rc;
    s->markfd = openat(s->dirfd, HX_MARK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->markfd < 0) {
        snprintf(s->why, sizeof s->why, "cannot open %s/%s: %s", s->dir, HX_MARK_FILE, strerror(errno));
        free(nums);
        return HX_EIO;
    }
    recovery_t rv = {.v = v, .arg = arg};
    rv.known = mark_read(s->markfd, &rv.acked, &s->mark_count);

    s->recovering = true;
    rc = recover_segments(s, nums, &n, &rv);
    s->recovering = false;
    pos_t end = {0, 0};
    if (rc == 0 && active(s))
        end = (pos_t){active(s)->number, active(s)->logical};
    if (rc == 0 && pos_cmp(end, rv.acked) < 0) {
        snprintf(s->why, sizeof s->why, "the log in %s ends at segment %llu offset %llu, but it had been made "
                 "durable up to segment %llu offset %llu: acknowledged records are missing (a segment was cut "
                 "short or removed); refusing to start. Keep a copy of the data directory, then run handoff-broker "
                 "--salvage with the same --data (see OPERATIONS.md, Recovery)", s->dir, (unsigned long long)end.seg,
                 (unsigned long long)end.off, (unsigned long long)rv.acked.seg, (unsigned long long)rv.acked.off);
        rc = HX_EFAILED;
    }
    free(nums);
    if (rc)
        return rc;
    if ((rc = recover_sync(s, end)) != 0)
        return rc;
    s->durable_end = end;
    if (rv.anchored) {
        memcpy(s->anchor, rv.anchor, rv.anchor_len);
        memcpy(s->dur_anchor, rv.anchor, rv.anchor_len);
        memcpy(s->ready, rv.anchor, rv.anchor_len);
        s->anchor_len = s->dur_anchor_len = s->ready_len = rv.anchor_len;
    }
    s->recovered = true;
    hx_info("log: recovered %llu record(s) from %zu segment(s) in %s", (unsigned long long)rv.records, n, s->dir);
    if (rv.anchored && s->base.on_anchor)
        s->base.on_anchor(s->base.anchor_arg, s->dur_anchor, s->dur_anchor_len);
    gc(s);
    return 0;
}

/* ---- salvage ---------------------------------------------------------------------------- */

/* Writes a whole file at dirfd/name and syncs it. */
static int write_file_at(int dirfd, const char *name, const void *data, size_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = pwrite_all(fd, data, len, 0);
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Removes dirfd/name and the files in it (a salvage that stopped before it was complete). */
static int remove_dir_at(int at, const char *name)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
    return unlinkat(at, name, AT_REMOVEDIR) == 0 ? 0 : -errno;
}

/* What could not be read: [from, to) of segment seg. */
typedef struct {
    uint64_t seg, from, to;
    bool has_before, has_after;
    uint8_t before[HX_ID_LEN], after[HX_ID_LEN];
    pos_t before_at, after_at;
} lost_t;

typedef struct {
    log_store_t *s;
    hx_buf_t report;
    lost_t *lost;
    size_t n_lost, cap_lost;
    bool missing;               /* whole segments, or acknowledged bytes at the end, are gone */
    uint64_t records, bytes_lost;
} salvage_t;

static int lost_add(salvage_t *sv, const lost_t *l)
{
    if (sv->n_lost == sv->cap_lost) {
        size_t cap = sv->cap_lost ? sv->cap_lost * 2 : 8;
        lost_t *t = realloc(sv->lost, cap * sizeof *t);
        if (!t)
            return HX_ENOMEM;
        sv->lost = t;
        sv->cap_lost = cap;
    }
    sv->lost[sv->n_lost++] = *l;
    sv->bytes_lost += l->to - l->from;
    return 0;
}

/* Salvage step 1: the original segments and SYNCED into dfd (DIR/<damaged>), untouched; then
 * MOVED in newfd (DIR/salvage.new) says it is done. */
static int salvage_move_originals(log_store_t *s, const char *damaged, int newfd, int dfd, char *err,
                                  size_t errcap)
{
    uint64_t *nums = NULL;
    size_t n = 0;
    int rc = list_segments(s->dirfd, s->dir, &nums, &n, err, errcap);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        hx_seg_name(nums[i], name, sizeof name);
        if (renameat(s->dirfd, name, dfd, name) != 0) {
            snprintf(err, errcap, "cannot move %s/%s into %s: %s", s->dir, name, damaged, strerror(errno));
            rc = HX_EIO;
            goto out;
        }
    }
    if (renameat(s->dirfd, HX_MARK_FILE, dfd, HX_MARK_FILE) != 0 && errno != ENOENT) {
        snprintf(err, errcap, "cannot move %s/%s into %s: %s", s->dir, HX_MARK_FILE, damaged, strerror(errno));
        rc = HX_EIO;
        goto out;
    }
    if (fsync(dfd) != 0 || fsync(s->dirfd) != 0 || write_file_at(newfd, "MOVED", "", 0) != 0 ||
        fsync(newfd) != 0) {
        snprintf(err, errcap, "cannot sync %s: %s", s->dir, strerror(errno));
        rc = HX_EIO;
        goto out;
    }
out:
    free(nums);
    return rc;
}

/* Salvage step 2: the salvaged segments and SYNCED from newfd (DIR/<newdir>) into DIR, the
 * report into dfd, then DIR/<newdir> removed. A rekey finishes the same way. */
static int salvage_move_salvaged(log_store_t *s, const char *newdir, int newfd, int dfd, char *err, size_t errcap)
{
    uint64_t *nums = NULL;
    size_t n = 0;
    int rc = list_segments(newfd, newdir, &nums, &n, err, errcap);
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        char name[64];
        hx_seg_name(nums[i], name, sizeof name);
        if (renameat(newfd, name, s->dirfd, name) != 0) {
            snprintf(err, errcap, "cannot move %s/%s/%s: %s", s->dir, newdir, name, strerror(errno));
            rc = HX_EIO;
            goto out;
        }
    }
    if ((renameat(newfd, HX_MARK_FILE, s->dirfd, HX_MARK_FILE) != 0 && errno != ENOENT) ||
        (renameat(newfd, "salvage-report.txt", dfd, "salvage-report.txt") != 0 && errno != ENOENT) ||
        fsync(s->dirfd) != 0 || fsync(dfd) != 0) {
        snprintf(err, errcap, "cannot move the salvaged log into %s: %s", s->dir, strerror(errno));
        rc = HX_EIO;
        goto out;
    }
    unlinkat(newfd, "MOVED", 0);
    unlinkat(newfd, "DONE", 0);
    if (unlinkat(s->dirfd, newdir, AT_REMOVEDIR) != 0 || fsync(s->dirfd) != 0) {
        snprintf(err, errcap, "cannot remove %s/%s: %s", s->dir, newdir, strerror(errno));
        rc = HX_EIO;
        goto out;
    }
out:
    free(nums);
    return rc;
}

/* Prints the salvage report kept in dfd (DIR/<damaged>), and where the originals are. */
static void salvage_print_report(log_store_t *s, int dfd, const char *damaged, FILE *out)
{
    int rfd = openat(dfd, "salvage-report.txt", O_RDONLY | O_CLOEXEC);
    if (rfd >= 0) {
        char buf[4096];
        ssize_t got;
        while ((got = read(rfd, buf, sizeof buf)) > 0)
            fwrite(buf, 1, (size_t)got, out);
        close(rfd);
    }
    fprintf(out, "The original segments are in %s/%s, untouched; the broker now starts from the salvaged log.\n",
            s->dir, damaged);
}

/* Moves the original segments (and SYNCED) into DIR/<damaged>, the salvaged ones from
 * DIR/salvage.new into DIR, and prints the report. Each step can be repeated: a salvage
 * that stopped half-way is finished by running it again. */
static int salvage_finish(log_store_t *s, const char *damaged, FILE *out, char *err, size_t errcap)
{
    int newfd = openat(s->dirfd, SALVAGE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (newfd < 0) {
        snprintf(err, errcap, "%s/%s: %s", s->dir, SALVAGE_DIR, strerror(errno));
        return HX_EIO;
    }
    int rc = 0, dfd = -1;
    struct stat st;
    if (mkdirat(s->dirfd, damaged, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errcap, "cannot create %s/%s: %s", s->dir, damaged, strerror(errno));
        rc = HX_EIO;
        goto out;
    }
    dfd = openat(s->dirfd, damaged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errcap, "%s/%s: %s", s->dir, damaged, strerror(errno));
        rc = HX_EIO;
        goto out;
    }
    if (fstatat(newfd, "MOVED", &st, 0) != 0 &&
        (rc = salvage_move_originals(s, damaged, newfd, dfd, err, errcap)) != 0)
        goto out;
    if ((rc = salvage_move_salvaged(s, SALVAGE_DIR, newfd, dfd, err, errcap)) != 0)
        goto out;
    salvage_print_report(s, dfd, damaged, out);
out:
    if (dfd >= 0)
        close(dfd);
    close(newfd);
    return rc;
}

/* Copies the readable records of segment nums[i] into copy; what does not read goes to
 * sv->lost. The commit records are left out (they name places in the old file); the new log
 * gets one of its own at its end. */
static int salvage_segment(salvage_t *sv, const uint64_t *nums, size_t n, size_t i, pos_t *acked,
                           rec_ref_t *before, uint8_t *anchor, size_t *anchor_len, hx_buf_t *copy, uint64_t *size)
{
    log_store_t *s = sv->s;
    seg_map_t m;
    char why[PATH_MAX + 64];
    copy->len = 0;
    int rc = map_segment(s->dirfd, s->dir, nums[i], O_RDONLY, &m, why, sizeof why);
    if (rc) {
        *size = 0;
        lost_t l = {.seg = nums[i]};
        sv->missing = true;
        hx_buf_appendf(&sv->report, "  %s\n", why);
        return lost_add(sv, &l);
    }
    *size = m.size;
    uint64_t off = 0;
    while (off < m.size && rc == 0) {
        uint32_t len = rec_at(m.map, m.size, off);
        const uint8_t *p = m.map + off + REC_HEADER;
        commit_t c;
        if (len && p[0] == REC_COMMIT && commit_parse(p, len, nums[i], off, &c)) {
            if (pos_cmp(c.mark, *acked) > 0)
                *acked = c.mark;
            memcpy(anchor, c.anchor, c.anchor_len);
            *anchor_len = c.anchor_len;
            off += REC_HEADER + len;
            continue;
        }
        if (len && p[0] != REC_COMMIT && replay(s, NULL, off, p, len, false, NULL, NULL) == 0) {
            uint8_t first[HX_ID_LEN], last[HX_ID_LEN];
            if (p[0] == REC_TXN && record_ids(s, p, len, first, last))
                *before = (rec_ref_t){true, {nums[i], off}, len};
            if (hx_buf_append(copy, m.map + off, REC_HEADER + len))
                rc = HX_ENOMEM;
            sv->records++;
            off += REC_HEADER + len;
            continue;
        }
        lost_t l = {.seg = nums[i], .from = off};
        l.to = resync(m.map, m.size, off + 1);
        l.has_before = ids_before(s, before, &m, l.before);
        l.before_at = before->at;
        l.has_after = ids_after(s, nums, n, i, &m, l.to, l.after, &l.after_at);
        rc = lost_add(sv, &l);
        off = l.to;
    }
    unmap_segment(&m, false);
    return rc;
}

/* A DIR/salvage.new left by an earlier salvage: finished when its DONE names the directory
 * the originals go to (*finished), else removed, being incomplete, to start again. */
static int salvage_leftover(log_store_t *s, FILE *out, char *err, size_t errcap, bool *finished)
{
    struct stat st;
    char damaged[64];
    *finished = false;
    if (fstatat(s->dirfd, SALVAGE_DIR, &st, 0) != 0)
        return 0;
    int fd = openat(s->dirfd, SALVAGE_DIR "/DONE", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, damaged, sizeof damaged - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (got > 8 && strncmp(damaged, "damaged-", 8) == 0 && memchr(damaged, '/', (size_t)got) == NULL) {
        damaged[got] = '\0';
        damaged[strcspn(damaged, "\n")] = '\0';
        fprintf(out, "Finishing the salvage that was interrupted (%s/%s).\n", s->dir, SALVAGE_DIR);
        *finished = true;
        return salvage_finish(s, damaged, out, err, errcap);
    }
    if (remove_dir_at(s->dirfd, SALVAGE_DIR) != 0) {  /* never complete: start again */
        snprintf(err, errcap, "cannot remove the incomplete %s/%s: %s", s->dir, SALVAGE_DIR, strerror(errno));
        return HX_EIO;
    }
    return 0;
}

/* Copies the readable records of every segment into newfd, numbered on from the first
 * without gaps, and notes in sv the gaps and what does not read. The last segment is left
 * in copy (closing the new log writes it); *last_size is its original size. */
static int salvage_copy(salvage_t *sv, const uint64_t *nums, size_t n, int newfd, pos_t *acked, uint8_t *anchor,
                        size_t *anchor_len, hx_buf_t *copy, uint64_t *last_size)
{
    int rc = 0;
    rec_ref_t before = {0};
    uint64_t size = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0 && nums[i] != nums[i - 1] + 1) {
            if (nums[i] - nums[i - 1] == 2)
                hx_buf_appendf(&sv->report, "  segment %020llu.log is missing (the new log is numbered on without "
                               "the gap)\n", (unsigned long long)nums[i - 1] + 1);
            else
                hx_buf_appendf(&sv->report, "  segments %020llu.log to %020llu.log are missing (the new log is "
                               "numbered on without the gap)\n", (unsigned long long)nums[i - 1] + 1,
                               (unsigned long long)nums[i] - 1);
            sv->missing = true;
        }
        rc = salvage_segment(sv, nums, n, i, acked, &before, anchor, anchor_len, copy, &size);
        *last_size = size;
        if (rc == 0 && i + 1 < n) {             /* numbered on from the first: no gaps */
            char name[64];
            hx_seg_name(nums[0] + i, name, sizeof name);
            if (write_file_at(newfd, name, copy->data, copy->len) != 0)
                rc = HX_EIO;
        }
    }
    return rc;
}

/* Reports acknowledged bytes missing at the end: the log (ending at end) was acknowledged
 * further, up to acked. */
static void salvage_report_end(salvage_t *sv, pos_t end, pos_t acked)
{
    if (acked.seg == end.seg)
        hx_buf_appendf(&sv->report, "  %020llu.log ends at byte %llu, but it was acknowledged up to byte %llu: "
                       "%llu acknowledged bytes are missing\n", (unsigned long long)end.seg,
                       (unsigned long long)end.off, (unsigned long long)acked.off,
                       (unsigned long long)(acked.off - end.off));
    else
        hx_buf_appendf(&sv->report, "  the log ends in segment %llu, but it was acknowledged up to segment "
                       "%llu offset %llu: segments are missing at the end\n", (unsigned long long)end.seg,
                       (unsigned long long)acked.seg, (unsigned long long)acked.off);
    sv->missing = true;
}

/* Reports each range that could not be read: where, how long, whether it was acknowledged,
 * and the readable messages on either side. */
static void salvage_report_lost(salvage_t *sv, pos_t acked, bool known)
{
    for (size_t k = 0; k < sv->n_lost; k++) {
        const lost_t *l = &sv->lost[k];
        if (l->to == l->from)
            continue;                           /* a segment that could not be opened: said above */
        pos_t from = {l->seg, l->from}, to = {l->seg, l->to};
        const char *what = pos_cmp(to, acked) <= 0   ? "acknowledged"
                           : pos_cmp(from, acked) >= 0 ? (known ? "never acknowledged: a torn tail"
                                                                 : "not known to be acknowledged (no SYNCED)")
                                                        : "partly acknowledged";
        char b[160], a[160];
        describe(b, sizeof b, l->has_before, l->before, l->before_at);
        describe(a, sizeof a, l->has_after, l->after, l->after_at);
        hx_buf_appendf(&sv->report, "  %020llu.log: bytes %llu to %llu (%llu bytes) could not be read (%s); the last "
                       "readable message before: %s; the first after: %s\n", (unsigned long long)l->seg,
                       (unsigned long long)l->from, (unsigned long long)l->to,
                       (unsigned long long)(l->to - l->from), what, b, a);
    }
}

/* Closes the new log's last segment (number seg, its records in copy) with a commit record
 * that carries the anchor on, and writes it; *end is where the new log ends. */
static int salvage_close_log(int newfd, uint64_t seg, const uint8_t *anchor, size_t anchor_len, hx_buf_t *copy,
                             pos_t *end)
{
    int rc = 0;
    uint8_t rec[REC_HEADER + COMMIT_FIXED + HX_STORE_ANCHOR_MAX];
    pos_t self = {seg, copy->len};
    size_t len = commit_record(rec, self, self, anchor, anchor_len);
    char name[64];
    hx_seg_name(self.seg, name, sizeof name);
    if (hx_buf_append(copy, rec, len) || write_file_at(newfd, name, copy->data, copy->len) != 0)
        rc = HX_EIO;
    *end = (pos_t){self.seg, copy->len};
    return rc;
}

/* A new log's SYNCED: its second slot, count 1, says the log is durable up to end. */
static void mark_slots_new(uint8_t slots[2 * HX_MARK_SLOT], pos_t end)
{
    memset(slots, 0, HX_MARK_SLOT);
    hx_mark_slot(slots + HX_MARK_SLOT, 1, end.seg, end.off);
}

/* The name of the directory the original segments go to, "damaged-<UTC time>", with "-<k>"
 * added when that exists. */
static void damaged_name(const log_store_t *s, char *damaged, size_t cap)
{
    struct stat st;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(damaged, cap, "damaged-%Y%m%dT%H%M%SZ", &tm);
    for (int k = 2; fstatat(s->dirfd, damaged, &st, 0) == 0 && k < 1000; k++) {
        size_t base_len = strlen("damaged-YYYYmmddTHHMMSSZ");
        snprintf(damaged + base_len, cap - base_len, "-%d", k);
    }
}

/* Completes the new log in newfd (its closing commit record, SYNCED, the report, and DONE,
 * which names where the originals go; all synced), then puts it in place; when it cannot be
 * written, removes it. */
static int salvage_complete(salvage_t *sv, const uint64_t *nums, size_t n, int newfd, const uint8_t *anchor,
                            size_t anchor_len, hx_buf_t *copy, FILE *out, char *err, size_t errcap)
{
    log_store_t *s = sv->s;
    int rc = 0;
    hx_buf_appendf(&sv->report, "Copied %llu readable record(s) into a new log; %llu byte(s) could not be "
                   "read.\n", (unsigned long long)sv->records, (unsigned long long)sv->bytes_lost);
    /* the last segment closes with a commit record: the anchor goes on, and all is durable */
    pos_t new_end = {0, 0};
    if (n)
        rc = salvage_close_log(newfd, nums[0] + n - 1, anchor, anchor_len, copy, &new_end);
    uint8_t slots[2 * HX_MARK_SLOT];
    mark_slots_new(slots, new_end);
    char damaged[64];
    damaged_name(s, damaged, sizeof damaged);
    char done[80];
    int dlen = snprintf(done, sizeof done, "%s\n", damaged);
    if (rc == 0 && (write_file_at(newfd, HX_MARK_FILE, slots, sizeof slots) != 0 ||
                    write_file_at(newfd, "salvage-report.txt", sv->report.data, sv->report.len) != 0 ||
                    write_file_at(newfd, "DONE", done, (size_t)dlen) != 0 || fsync(newfd) != 0 ||
                    fsync(s->dirfd) != 0))
        rc = HX_EIO;
    if (rc == 0)                                /* from here on a second run finishes it */
        return salvage_finish(s, damaged, out, err, errcap);
    remove_dir_at(s->dirfd, SALVAGE_DIR);
    return rc;
}

static int salvage(log_store_t *s, FILE *out, char *err, size_t errcap)
{
    bool finished;
    int rc = salvage_leftover(s, out, err, errcap, &finished);
    if (rc || finished)
        return rc;
    uint64_t *nums;
    size_t n;
    rc = list_segments(s->dirfd, s->dir, &nums, &n, err, errcap);
    if (rc)
        return rc;
    pos_t acked = {0, 0};
    uint64_t count = 0;
    int mfd = openat(s->dirfd, HX_MARK_FILE, O_RDONLY | O_CLOEXEC);
    bool known = mfd >= 0 && mark_read(mfd, &acked, &count);
    if (mfd >= 0)
        close(mfd);
    if (mkdirat(s->dirfd, SALVAGE_DIR, 0700) != 0) {
        snprintf(err, errcap, "cannot create %s/%s: %s", s->dir, SALVAGE_DIR, strerror(errno));
        free(nums);
        return HX_EIO;
    }
    int newfd = openat(s->dirfd, SALVAGE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    salvage_t sv = {.s = s};
    hx_buf_t copy = {0};
    uint8_t anchor[HX_STORE_ANCHOR_MAX];
    size_t anchor_len = 0;
    uint64_t last_size = 0;
    hx_buf_appendf(&sv.report, "Salvage of the log in %s (%zu segment(s)):\n", s->dir, n);
    if (newfd >= 0)
        rc = salvage_copy(&sv, nums, n, newfd, &acked, anchor, &anchor_len, &copy, &last_size);
    else
        rc = HX_EIO;
    pos_t end = n ? (pos_t){nums[n - 1], last_size} : (pos_t){0, 0};
    if (rc == 0 && pos_cmp(end, acked) < 0)
        salvage_report_end(&sv, end, acked);
    if (rc == 0)
        salvage_report_lost(&sv, acked, known);
    if (rc == 0 && sv.n_lost == 0 && !sv.missing) {
        remove_dir_at(s->dirfd, SALVAGE_DIR);
        fprintf(out, "Every record of the log in %s reads (%llu record(s)): nothing to salvage, nothing moved.\n",
                s->dir, (unsigned long long)sv.records);
        goto done;
    }
    if (rc == 0)
        rc = salvage_complete(&sv, nums, n, newfd, anchor, anchor_len, &copy, out, err, errcap);
    else
        remove_dir_at(s->dirfd, SALVAGE_DIR);
    if (rc != 0 && !err[0])
        snprintf(err, errcap, "cannot write the salvaged log in %s/%s (%s); the original log is untouched",
                 s->dir, SALVAGE_DIR, rc == HX_ENOMEM ? "out of memory" : strerror(errno));
done:
    if (newfd >= 0)
        close(newfd);
    hx_buf_free(&copy);
    hx_buf_free(&sv.report);
    free(sv.lost);
    free(nums);
    return rc;
}

int hx_store_log_salvage(const hx_store_log_config_t *cfg, FILE *out, char *err, size_t errcap)
{
    if (errcap)
        err[0] = '\0';
    hx_store_t *base = hx_store_log_new(cfg, err, errcap);
    if (!base)
        return HX_EIO;
    int rc = salvage((log_store_t *)base, out, err, errcap);
    base->ops->destroy(base);
    return rc;
}

/* ---- rekey ------------------------------------------------------------------------------ */

/* A rekey writes the whole log again into DIR/rekey.new with every body sealed with the new
 * key, checks that copy by recovering it with the new key (the same entries, the same bodies),
 * writes DONE there, then puts it in place as a salvage does: the old segments into
 * DIR/rekey.old, the new ones into DIR, and DIR/rekey.old removed. A crash before DONE leaves
 * the log as it was (the copy is removed by the next run); after DONE, the next run, or nothing
 * more than running it again, finishes. While DIR/rekey.new exists the broker does not start. */
/* What a log holds, to check a rekeyed copy against its original: the entries of each kind and
 * a BLAKE2b over each entry's contents (ids, states, the opened bodies) in log order. */
typedef struct {
    uint64_t puts, settles, deads, revives, attempts, dedups;
    crypto_generichash_state h;
    bool not_message;           /* a PUT that is no message: a sealed log read without its key */
} census_t;

static void census_add(census_t *c, uint8_t kind, const void *a, size_t alen, const void *b, size_t blen)
{
    crypto_generichash_update(&c->h, &kind, 1);
    crypto_generichash_update(&c->h, a, alen);
    if (blen)
        crypto_generichash_update(&c->h, b, blen);
}

static void cs_put(void *arg, uint64_t handle, const uint8_t *msg, size_t len)
{
    (void)handle;
    census_t *c = arg;
    hx_msg_head_t h;
    if (hx_wire_scan_message(msg, len, &h) != 0 || h.id_len != HX_ID_LEN)
        c->not_message = true;
    c->puts++;
    census_add(c, E_PUT, msg, len, NULL, 0);
}

static void cs_settle(void *arg, const uint8_t id[HX_ID_LEN])
{
    census_t *c = arg;
    c->settles++;
    census_add(c, E_SETTLE, id, HX_ID_LEN, NULL, 0);
}

static void cs_dead(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms, const char *reason)
{
    census_t *c = arg;
    uint8_t st[12];
    hx_put_u32(st, attempts);
    hx_put_u64(st + 4, at_ms);
    c->deads++;
    census_add(c, E_DEAD, id, HX_ID_LEN, st, sizeof st);
    census_add(c, E_DEAD, reason, strlen(reason), NULL, 0);
}

static void cs_revive(void *arg, const uint8_t id[HX_ID_LEN])
{
    census_t *c = arg;
    c->revives++;
    census_add(c, E_REVIVE, id, HX_ID_LEN, NULL, 0);
}

static void cs_attempts(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts)
{
    census_t *c = arg;
    uint8_t n[4];
    hx_put_u32(n, attempts);
    c->attempts++;
    census_add(c, E_ATTEMPTS, id, HX_ID_LEN, n, sizeof n);
}

static void cs_dedup(void *arg, const uint8_t id[HX_ID_LEN])
{
    census_t *c = arg;
    c->dedups++;
    census_add(c, E_DEDUP, id, HX_ID_LEN, NULL, 0);
}

static void cs_moved(void *arg, uint64_t handle, const uint8_t *msg, size_t len, uint32_t attempts,
                     uint64_t dead_at_ms, const char *reason)
{
    (void)handle;
    census_t *c = arg;
    uint8_t st[13];
    hx_put_u32(st, attempts);
    hx_put_u64(st + 4, dead_at_ms);
    st[12] = reason != NULL;
    c->puts++;
    census_add(c, E_MOVED, msg, len, st, sizeof st);
    if (reason)
        census_add(c, E_MOVED, reason, strlen(reason), NULL, 0);
}

static const hx_store_visitor_t census_visitor = {
    .put = cs_put, .settle = cs_settle, .dead = cs_dead, .revive = cs_revive, .attempts = cs_attempts,
    .dedup = cs_dedup, .moved = cs_moved};

/* Replays the store into c (its recover: once, on a store just opened); the reason in err. */
static int census_take(log_store_t *s, census_t *c, uint8_t digest[crypto_generichash_BYTES], char *err,
                       size_t errcap)
{
    memset(c, 0, sizeof *c);
    crypto_generichash_init(&c->h, NULL, 0, crypto_generichash_BYTES);
    int rc = log_recover(&s->base, &census_visitor, c);
    if (rc != 0) {
        snprintf(err, errcap, "%s", s->why);
        return rc;
    }
    crypto_generichash_final(&c->h, digest, crypto_generichash_BYTES);
    return 0;
}

/* Appends record p (len bytes, as s's key reads it) to out again, framed, every body in it
 * (a PUT's, a MOVED's) opened and sealed anew with key. */
static int rekey_record(log_store_t *s, const uint8_t *key, const uint8_t *p, uint32_t len, hx_buf_t *out)
{
    if (replay(s, NULL, 0, p, len, false, NULL, NULL) != 0)
        return HX_EIO;                          /* its entries are well formed from here on */
    size_t start = out->len;
    uint8_t head[REC_HEADER + 1] = {0};
    head[REC_HEADER] = p[0];
    if (hx_buf_append(out, head, sizeof head))
        return HX_ENOMEM;
    for (size_t off = 1; off < len;) {
        uint8_t kind = p[off];
        uint32_t elen = hx_get_u32(p + off + 1);
        const uint8_t *e = p + off + ENTRY_HEADER;
        size_t keep = elen;                     /* the bytes before the body: all when there is none */
        if (p[0] == REC_TXN && kind == E_PUT)
            keep = 0;
        else if (p[0] == REC_TXN && kind == E_MOVED)
            keep = MOVED_FIXED + e[HX_ID_LEN + 13];
        const uint8_t *body = NULL;
        size_t body_len = 0;
        if (keep < elen && unseal(s, e + keep, elen - keep, &body, &body_len) != 0)
            return HX_EIO;
        size_t sealed_len = keep < elen ? body_len + SEAL_OVERHEAD : 0;
        if (hx_buf_reserve(out, ENTRY_HEADER + keep + sealed_len))
            return HX_ENOMEM;
        uint8_t *q = out->data + out->len;
        q[0] = kind;
        hx_put_u32(q + 1, (uint32_t)(keep + sealed_len));
        memcpy(q + ENTRY_HEADER, e, keep);
        if (sealed_len) {
            uint8_t *nonce = q + ENTRY_HEADER + keep;
            randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
            crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, body, body_len, nonce, key);
        }
        out->len += ENTRY_HEADER + keep + sealed_len;
        off += ENTRY_HEADER + elen;
    }
    size_t plen = out->len - start - REC_HEADER;
    if (plen > REC_MAX)
        return HX_EINVAL;
    hx_put_u32(out->data + start, (uint32_t)plen);
    hx_put_u32(out->data + start + 4, hx_crc32c(0, out->data + start + REC_HEADER, plen));
    return 0;
}

/* Writes every segment the store recovered into newfd under its own number, each record
 * sealed anew with key (rekey_record); commit records are left out (they name places in the
 * old files) and the last segment closes with one of its own carrying the anchor on. */
static int rekey_copy(log_store_t *s, const uint8_t *key, int newfd, char *err, size_t errcap)
{
    hx_buf_t copy = {0};
    int rc = 0;
    segment_t *g;
    for (g = s->segs; g && rc == 0; g = g->next) {
        seg_map_t m;
        char name[64];
        hx_seg_name(g->number, name, sizeof name);
        if ((rc = map_segment(s->dirfd, s->dir, g->number, O_RDONLY, &m, err, errcap)) != 0)
            break;
        copy.len = 0;
        for (uint64_t off = 0; rc == 0 && off < g->logical;) {
            uint32_t len = rec_at(m.map, m.size, off);
            const uint8_t *p = m.map + off + REC_HEADER;
            if (!len)
                rc = HX_EIO;
            else if (p[0] != REC_COMMIT)
                rc = rekey_record(s, key, p, len, &copy);
            if (rc)
                snprintf(err, errcap, "%s/%s, the record at offset %llu: %s", s->dir, name, (unsigned long long)off,
                         rc == HX_ENOMEM ? "out of memory" : "cannot be read again (the log changed?)");
            off += REC_HEADER + len;
        }
        unmap_segment(&m, false);
        if (rc)
            break;
        if (g->next) {
            if (write_file_at(newfd, name, copy.data, copy.len) != 0)
                rc = HX_EIO;
        } else {
            pos_t end;
            uint8_t slots[2 * HX_MARK_SLOT];
            rc = salvage_close_log(newfd, g->number, s->dur_anchor, s->dur_anchor_len, &copy, &end);
            mark_slots_new(slots, end);
            if (rc == 0 && write_file_at(newfd, HX_MARK_FILE, slots, sizeof slots) != 0)
                rc = HX_EIO;
        }
        if (rc == HX_EIO)
            snprintf(err, errcap, "cannot write %s/%s/%s: %s", s->dir, REKEY_DIR, name, strerror(errno));
    }
    hx_buf_free(&copy);
    return rc;
}

/* The copy in DIR/rekey.new recovered with key: the same entries and bodies as want. */
static int rekey_check(log_store_t *s, const uint8_t *key, const census_t *want,
                       const uint8_t want_digest[crypto_generichash_BYTES], char *err, size_t errcap)
{
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", s->dir, REKEY_DIR) >= sizeof dir) {
        snprintf(err, errcap, "%s/%s: the path is too long", s->dir, REKEY_DIR);
        return HX_EINVAL;
    }
    hx_store_log_config_t c = {.dir = dir, .segment_bytes = s->segment_bytes, .key = key};
    hx_store_t *t = hx_store_log_new(&c, err, errcap);
    if (!t)
        return HX_EIO;
    census_t got;
    uint8_t digest[crypto_generichash_BYTES];
    int rc = census_take((log_store_t *)t, &got, digest, err, errcap);
    t->ops->destroy(t);
    if (rc == 0 && (got.puts != want->puts || got.settles != want->settles || got.deads != want->deads ||
                    got.revives != want->revives || got.attempts != want->attempts || got.dedups != want->dedups ||
                    sodium_memcmp(digest, want_digest, sizeof digest) != 0)) {
        snprintf(err, errcap, "the rekeyed copy in %s does not read back as the log it was made from "
                 "(%llu message(s) against %llu); the log is untouched", dir, (unsigned long long)got.puts,
                 (unsigned long long)want->puts);
        rc = HX_EIO;
    }
    return rc;
}

/* Run as root on a directory that belongs to the service's user (systemd's StateDirectory):
 * the files of the copy take the directory's owner, so that the broker can go on writing. */
static int rekey_owner(log_store_t *s, int newfd)
{
    struct stat st;
    if (geteuid() != 0 || fstat(s->dirfd, &st) != 0 || st.st_uid == 0)
        return 0;
    int fd = dup(newfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int rc = fchown(newfd, st.st_uid, st.st_gid);
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            rc = fchownat(newfd, de->d_name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
    closedir(d);
    return rc;
}

/* Puts the finished copy (DIR/rekey.new, DONE written) in place, then removes the old
 * segments. Each step can be repeated. */
static int rekey_finish(log_store_t *s, char *err, size_t errcap)
{
    int newfd = openat(s->dirfd, REKEY_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC), dfd = -1, rc = 0;
    struct stat st;
    if (newfd < 0 || (mkdirat(s->dirfd, REKEY_OLD, 0700) != 0 && errno != EEXIST) ||
        (dfd = openat(s->dirfd, REKEY_OLD, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errcap, "%s/%s: %s", s->dir, newfd < 0 ? REKEY_DIR : REKEY_OLD, strerror(errno));
        rc = HX_EIO;
        goto out;
    }
    if (fstatat(newfd, "MOVED", &st, 0) != 0 && (rc = salvage_move_originals(s, REKEY_OLD, newfd, dfd, err, errcap)))
        goto out;
    if ((rc = salvage_move_salvaged(s, REKEY_DIR, newfd, dfd, err, errcap)) != 0)
        goto out;
    close(dfd);
    dfd = -1;
    if (remove_dir_at(s->dirfd, REKEY_OLD) != 0 || fsync(s->dirfd) != 0) {
        snprintf(err, errcap, "the log is rekeyed, but the old segments in %s/%s cannot be removed: %s", s->dir,
                 REKEY_OLD, strerror(errno));
        rc = HX_EIO;
    }
out:
    if (dfd >= 0)
        close(dfd);
    if (newfd >= 0)
        close(newfd);
    return rc;
}

/* What an earlier run left: a finished copy is put in place (*finished); an unfinished one,
 * or old segments a finished run could not remove, are removed. */
static int rekey_leftover(log_store_t *s, FILE *out, char *err, size_t errcap, bool *finished)
{
    struct stat st;
    *finished = false;
    if (fstatat(s->dirfd, REKEY_DIR, &st, 0) == 0) {
        if (fstatat(s->dirfd, REKEY_DIR "/DONE", &st, 0) == 0) {
            fprintf(out, "Finishing the rekey that was interrupted (%s/%s holds the log sealed with the new key).\n",
                    s->dir, REKEY_DIR);
            *finished = true;
            return rekey_finish(s, err, errcap);
        }
        if (remove_dir_at(s->dirfd, REKEY_DIR) != 0) {
            snprintf(err, errcap, "cannot remove the unfinished %s/%s: %s", s->dir, REKEY_DIR, strerror(errno));
            return HX_EIO;
        }
    }
    if (fstatat(s->dirfd, REKEY_OLD, &st, 0) == 0 && remove_dir_at(s->dirfd, REKEY_OLD) != 0) {
        snprintf(err, errcap, "cannot remove %s/%s: %s", s->dir, REKEY_OLD, strerror(errno));
        return HX_EIO;
    }
    return 0;
}

static int rekey(log_store_t *s, const uint8_t *key, FILE *out, char *err, size_t errcap)
{
    bool finished;
    int rc = rekey_leftover(s, out, err, errcap, &finished);
    if (rc || finished) {
        if (rc == 0)
            fprintf(out, "The log in %s is sealed with the new key; start the broker with it.\n", s->dir);
        return rc;
    }
    census_t want;
    uint8_t digest[crypto_generichash_BYTES];
    rc = census_take(s, &want, digest, err, errcap);
    if (want.not_message) {                     /* read in clear, and it was not: say so, not "corrupt" */
        snprintf(err, errcap, "the log in %s holds bodies that are not messages: it is sealed, and --data-key "
                 "must name the key it was sealed with", s->dir);
        return HX_EINVAL;
    }
    if (rc != 0)
        return rc;
    if (!s->segs) {
        fprintf(out, "The log in %s holds nothing: nothing to rekey; start the broker with the new key.\n", s->dir);
        return 0;
    }
    if (mkdirat(s->dirfd, REKEY_DIR, 0700) != 0) {
        snprintf(err, errcap, "cannot create %s/%s: %s", s->dir, REKEY_DIR, strerror(errno));
        return HX_EIO;
    }
    int newfd = openat(s->dirfd, REKEY_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (newfd < 0) {
        snprintf(err, errcap, "%s/%s: %s", s->dir, REKEY_DIR, strerror(errno));
        rc = HX_EIO;
    }
    if (rc == 0)
        rc = rekey_copy(s, key, newfd, err, errcap);
    if (rc == 0)
        rc = rekey_check(s, key, &want, digest, err, errcap);
    if (rc == 0 && (unlinkat(newfd, "LOCK", 0) != 0 || rekey_owner(s, newfd) != 0 ||
                    write_file_at(newfd, "DONE", "rekeyed\n", 8) != 0 || fsync(newfd) != 0 ||
                    fsync(s->dirfd) != 0)) {
        snprintf(err, errcap, "cannot complete %s/%s: %s", s->dir, REKEY_DIR, strerror(errno));
        rc = HX_EIO;
    }
    if (newfd >= 0)
        close(newfd);
    if (rc != 0) {
        remove_dir_at(s->dirfd, REKEY_DIR);
        return rc;
    }
    rc = rekey_finish(s, err, errcap);          /* from here on a second run finishes it */
    if (rc == 0)
        fprintf(out, "Sealed %llu message(s) of the log in %s with the new key (%zu segment file(s)); the old "
                "segments are removed. Start the broker with the new key.\n", (unsigned long long)want.puts,
                s->dir, (size_t)(s->segs ? s->segs->prev->number - s->segs->number + 1 : 0));
    return rc;
}

int hx_store_log_rekey(const hx_store_log_config_t *cfg, const uint8_t new_key[32], FILE *out, char *err,
                       size_t errcap)
{
    if (errcap)
        err[0] = '\0';
    if (cfg->key && sodium_memcmp(cfg->key, new_key, 32) == 0) {
        snprintf(err, errcap, "the new key is the key the log is sealed with already");
        return HX_EINVAL;
    }
    hx_store_log_config_t c = *cfg;
    c.loop = NULL;
    hx_store_t *base = hx_store_log_new(&c, err, errcap);
    if (!base)
        return HX_EIO;
    if (sodium_init() < 0) {
        snprintf(err, errcap, "libsodium cannot start");
        base->ops->destroy(base);
        return HX_EIO;
    }
    int rc = rekey((log_store_t *)base, new_key, out, err, errcap);
    bool wrong_key = ((log_store_t *)base)->wrong_key;
    base->ops->destroy(base);
    if (rc == HX_EFAILED && wrong_key) {        /* sealed with the new key already (a second run)? */
        c.key = new_key;
        char err2[256];
        census_t got;
        uint8_t digest[crypto_generichash_BYTES];
        if ((base = hx_store_log_new(&c, err2, sizeof err2)) != NULL &&
            census_take((log_store_t *)base, &got, digest, err2, sizeof err2) == 0) {
            fprintf(out, "The log in %s is sealed with the new key already: nothing to do.\n", cfg->dir);
            rc = 0;
        }
        if (base)
            base->ops->destroy(base);
    }
    return rc;
}

/* ---- life --------------------------------------------------------------------------- */

static void log_destroy(hx_store_t *base)
{
    log_store_t *s = (log_store_t *)base;
    batch_t *b, *bt;
    LL_FOREACH_SAFE(s->pending, b, bt) batch_free(b);   /* never acknowledged: never written */
    s->pending = NULL;
    if (s->recovered && !s->state && !s->work_busy && !s->anchor_busy && s->base.anchor) {
        /* a clean stop: the owner's last head is recorded, here and now */
        s->loop = NULL;
        s->base.on_commit = NULL;
        s->base.on_sync = NULL;
        start_write(s);
    }
    LL_FOREACH_SAFE(s->writing, b, bt) batch_free(b);
    segment_t *g, *gt;
    DL_FOREACH_SAFE(s->segs, g, gt) {
        close(g->fd);
        free(g);
    }
    hx_buf_free(&s->txn);
    hx_buf_free(&s->rbuf);
    hx_buf_free(&s->sealed);
    sodium_memzero(s->key, sizeof s->key);
    if (s->markfd >= 0) {
        if (s->recovered && fdatasync(s->markfd) != 0)     /* a clean stop leaves it on disk */
            hx_warn("log: cannot sync %s/%s: %s", s->dir, HX_MARK_FILE, strerror(errno));
        close(s->markfd);
    }
    if (s->lockfd >= 0)
        close(s->lockfd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s);
}

static const hx_store_ops_t log_ops = {
    .begin = log_begin, .put = log_put, .settle = log_settle, .dead = log_dead, .revive = log_revive,
    .attempts = log_attempts, .end = log_end, .abort = log_abort, .get = log_get, .release = log_release,
    .forget = log_forget,
    .flush = log_flush, .tick = log_tick, .health = log_health, .durable_seq = log_durable,
    .recover = log_recover, .bytes = log_bytes, .destroy = log_destroy,
    .syncs = log_syncs, .move = log_move, .compact_pick = log_compact_pick, .segment_of = log_segment_of,
    .bytes_from = log_bytes_from, .compacted = log_compacted};

int hx_store_lock_dir(const char *dir, int dirfd, char *err, size_t errcap)
{
    char path[PATH_MAX];
    if (dirfd < 0 && (size_t)snprintf(path, sizeof path, "%s/LOCK", dir) >= sizeof path) {
        snprintf(err, errcap, "%.400s: the path is too long", dir);
        return -1;
    }
    int fd = dirfd >= 0 ? openat(dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600)
                        : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errcap, "%.400s/LOCK: %s", dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(err, errcap, "%.400s is in use by another handoff-broker (its LOCK is held): stop it first", dir);
        else
            snprintf(err, errcap, "%.400s/LOCK: %s", dir, strerror(e));
        return -1;
    }
    return fd;
}

hx_store_t *hx_store_log_new(const hx_store_log_config_t *cfg, char *err, size_t errcap)
{
    log_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->base.ops = &log_ops;
    s->dirfd = s->lockfd = s->markfd = s->anchor_fd = -1;
    snprintf(s->dir, sizeof s->dir, "%s", cfg->dir);
    s->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : (64u << 20);
    s->loop = cfg->loop;
    if (cfg->faults_path)
        snprintf(s->faults, sizeof s->faults, "%s", cfg->faults_path);
    if (cfg->key) {
        if (sodium_init() < 0) {
            snprintf(err, errcap, "libsodium cannot start");
            goto fail;
        }
        memcpy(s->key, cfg->key, sizeof s->key);
        s->encrypt = true;
    }
    if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errcap, "data directory %s: %s", s->dir, strerror(errno));
        goto fail;
    }
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        snprintf(err, errcap, "data directory %s: %s", s->dir, strerror(errno));
        goto fail;
    }
    if ((s->lockfd = hx_store_lock_dir(s->dir, s->dirfd, err, errcap)) < 0)
        goto fail;
    return &s->base;
fail:
    log_destroy(&s->base);
    return NULL;
}
