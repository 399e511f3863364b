/* hx_store_log — the durable store: an append-only log of segments in a data directory.
 *
 * File DIR/<20-digit number>.log, a sequence of records:
 *     u32 length (of the payload, little-endian) | u32 CRC-32C of the payload | payload
 * payload = u8 record type (1 transaction, 2 checkpoint) then entries:
 *     u8 kind | u32 length | bytes
 * kinds: 1 PUT (a packed Message), 2 SETTLE (id), 3 DEAD (id, u32 attempts, u64 ms, reason),
 *        4 REVIVE (id), 5 ATTEMPTS (id, u32), 6 DEDUP (ids; only in checkpoints).
 * One router request is one transaction is one record, so it is all there or not at all.
 * A checkpoint opens every segment with the dedup window, so deleting old segments never
 * forgets which ids were accepted.
 *
 * Group commit: closed transactions collect in batches; one write and one fdatasync (on
 * the libuv thread pool) make a whole batch durable, while the next batch collects; only
 * then does the owner hear on_commit and answer "accepted". The oldest segment is deleted
 * once every message put in it is released and the next segment's checkpoint is durable.
 * Recovery truncates a torn tail (an incomplete or mismatching last record). */
#define _GNU_SOURCE
#include "hx_crc32c.h"
#include "hx_log.h"
#include "hx_store.h"

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
#include <unistd.h>
#include <utlist.h>
#include <uv.h>

enum { REC_TXN = 1, REC_CHECKPOINT = 2 };
enum { E_PUT = 1, E_SETTLE = 2, E_DEAD = 3, E_REVIVE = 4, E_ATTEMPTS = 5, E_DEDUP = 6 };
#define REC_HEADER 8
#define ENTRY_HEADER 5
#define REC_MAX (256u << 20)
#define OFFSET_BITS 36

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
    int dirfd, lockfd;
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
    char why[PATH_MAX + 256];
    uint64_t last_probe;
    hx_buf_t rbuf;
    hx_buf_t sealed;            /* scratch for sealing and opening bodies */
    bool recovering;
    bool encrypt;
    uint8_t key[crypto_secretbox_KEYBYTES];
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

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static int entry(hx_buf_t *b, uint8_t kind, const void *a, size_t alen, const void *c, size_t clen)
{
    uint8_t h[ENTRY_HEADER];
    h[0] = kind;
    put_u32(h + 1, (uint32_t)(alen + clen));
    if (hx_buf_append(b, h, sizeof h) || hx_buf_append(b, a, alen) || hx_buf_append(b, c, clen))
        return HX_ENOMEM;
    return 0;
}

static void seg_name(uint64_t n, char *out, size_t cap)
{
    snprintf(out, cap, "%020llu.log", (unsigned long long)n);
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
    seg_name(n, name, sizeof name);
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
        put_u32(rec.data, (uint32_t)(rec.len - REC_HEADER));
        put_u32(rec.data + 4, hx_crc32c(0, rec.data + REC_HEADER, rec.len - REC_HEADER));
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

static int log_put(hx_store_t *base, const uint8_t *msg, size_t len, uint64_t *handle)
{
    log_store_t *s = (log_store_t *)base;
    segment_t *g = active(s);
    uint64_t off = s->txn_base + s->txn.len + ENTRY_HEADER;
    if (off + len >= (1ull << OFFSET_BITS))
        return HX_EINVAL;
    if (s->encrypt) {
        s->sealed.len = 0;
        if (hx_buf_reserve(&s->sealed, len + SEAL_OVERHEAD))
            return HX_ENOMEM;
        randombytes_buf(s->sealed.data, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(s->sealed.data + crypto_secretbox_NONCEBYTES, msg, len, s->sealed.data, s->key);
        msg = s->sealed.data;
        len += SEAL_OVERHEAD;
    }
    if (entry(&s->txn, E_PUT, msg, len, NULL, 0))
        return HX_ENOMEM;
    g->live++;
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
    put_u32(v, attempts);
    return entry(&((log_store_t *)base)->txn, E_ATTEMPTS, id, HX_ID_LEN, v, 4);
}

static int log_dead(hx_store_t *base, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms,
                    const char *reason)
{
    uint8_t v[HX_ID_LEN + 12];
    memcpy(v, id, HX_ID_LEN);
    put_u32(v + HX_ID_LEN, attempts);
    put_u64(v + HX_ID_LEN + 4, at_ms);
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
    put_u32(s->txn.data, (uint32_t)(s->txn.len - REC_HEADER));
    put_u32(s->txn.data + 4, hx_crc32c(0, s->txn.data + REC_HEADER, s->txn.len - REC_HEADER));
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

/* On the thread pool: every batch written, each file synced once after its last batch,
 * and the directory synced when a batch opened a new segment file. */
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
    s->work_ns = uv_hrtime() - t0;
    s->work_status = rc;
}

static void gc(log_store_t *s);
static void start_write(log_store_t *s);

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
        s->syncs++;
        if (s->base.on_sync)
            s->base.on_sync(s->base.sync_arg, s->work_ns);
        if (s->base.on_commit)
            s->base.on_commit(s->base.owner, seq, 0);
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

static void start_write(log_store_t *s)
{
    if (s->work_busy || !s->pending || s->state)
        return;
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
        seg_name(g->number, name, sizeof name);
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

/* ---- recovery --------------------------------------------------------------------------- */

/* Replays one record's entries; -1 when they do not parse (corruption, not a torn write). */
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
        uint32_t elen = get_u32(p + off + 1);
        const uint8_t *e = p + off + ENTRY_HEADER;
        if (elen > len - off - ENTRY_HEADER)
            return -1;
        if (type == REC_CHECKPOINT) {
            if (kind != E_DEDUP || elen % HX_ID_LEN)
                return -1;
            for (uint32_t i = 0; first_seg && i < elen; i += HX_ID_LEN)
                v->dedup(arg, e + i);
        } else {
            switch (kind) {
            case E_PUT: {
                const uint8_t *body;
                size_t body_len;
                if (unseal(s, e, elen, &body, &body_len) != 0)
                    return -2;                  /* does not open: the wrong key */
                g->live++;
                v->put(arg, make_handle(g->number, rec_off + REC_HEADER + off + ENTRY_HEADER), body, body_len);
                break;
            }
            case E_SETTLE:
                if (elen != HX_ID_LEN)
                    return -1;
                v->settle(arg, e);
                break;
            case E_REVIVE:
                if (elen != HX_ID_LEN)
                    return -1;
                v->revive(arg, e);
                break;
            case E_ATTEMPTS:
                if (elen != HX_ID_LEN + 4)
                    return -1;
                v->attempts(arg, e, get_u32(e + HX_ID_LEN));
                break;
            case E_DEAD: {
                if (elen < HX_ID_LEN + 12 || elen > HX_ID_LEN + 12 + 255)
                    return -1;
                char reason[256];
                size_t rlen = elen - HX_ID_LEN - 12;
                memcpy(reason, e + HX_ID_LEN + 12, rlen);
                reason[rlen] = '\0';
                v->dead(arg, e, get_u32(e + HX_ID_LEN), get_u64(e + HX_ID_LEN + 4), reason);
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

static int log_recover(hx_store_t *base, const hx_store_visitor_t *v, void *arg)
{
    log_store_t *s = (log_store_t *)base;
    DIR *d = fdopendir(dup(s->dirfd));
    if (!d) {
        snprintf(s->why, sizeof s->why, "cannot read %s: %s", s->dir, strerror(errno));
        return HX_EIO;
    }
    uint64_t *nums = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        unsigned long long num = strtoull(de->d_name, &end, 10);
        if (strlen(de->d_name) != 24 || end != de->d_name + 20 || strcmp(end, ".log") != 0 || num == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *t = realloc(nums, cap * sizeof *nums);
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

    int rc = 0;
    s->recovering = true;
    uint64_t records = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[64];
        seg_name(nums[i], name, sizeof name);
        int fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            snprintf(s->why, sizeof s->why, "cannot open %s/%s: %s", s->dir, name, strerror(errno));
            if (fd >= 0)
                close(fd);
            rc = HX_EIO;
            break;
        }
        segment_t *g = calloc(1, sizeof *g);
        if (!g) {
            close(fd);
            rc = HX_ENOMEM;
            break;
        }
        g->number = nums[i];
        g->fd = fd;
        DL_APPEND(s->segs, g);
        uint64_t size = (uint64_t)st.st_size, off = 0;
        const uint8_t *map = NULL;
        if (size) {
            map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) {
                snprintf(s->why, sizeof s->why, "cannot map %s/%s: %s", s->dir, name, strerror(errno));
                rc = HX_EIO;
                break;
            }
        }
        bool torn = false;
        while (off < size) {
            uint32_t len = size - off >= REC_HEADER ? get_u32(map + off) : 0;
            if (size - off < REC_HEADER || len == 0 || len > REC_MAX || len > size - off - REC_HEADER ||
                hx_crc32c(0, map + off + REC_HEADER, len) != get_u32(map + off + 4)) {
                torn = true;
                break;
            }
            int prc = replay(s, g, off, map + off + REC_HEADER, len, i == 0, v, arg);
            if (prc == -2) {
                snprintf(s->why, sizeof s->why, "segment %s/%s: a message at offset %llu does not open with this "
                         "data key (a different --data-key, or none, was used to write it)", s->dir, name,
                         (unsigned long long)off);
                rc = HX_EFAILED;
                break;
            }
            if (prc != 0) {
                snprintf(s->why, sizeof s->why, "segment %s/%s is corrupt at offset %llu (a record with a valid "
                         "checksum does not parse)", s->dir, name, (unsigned long long)off);
                rc = HX_EFAILED;
                break;
            }
            records++;
            off += REC_HEADER + len;
        }
        if (map)
            munmap((void *)map, size);
        if (rc)
            break;
        if (torn) {
            bool later_empty = true;
            for (size_t j = i + 1; j < n; j++) {
                char later[64];
                struct stat ls;
                seg_name(nums[j], later, sizeof later);
                if (fstatat(s->dirfd, later, &ls, 0) == 0 && ls.st_size > 0)
                    later_empty = false;
            }
            if (!later_empty) {
                snprintf(s->why, sizeof s->why, "segment %s/%s is damaged at offset %llu and later segments "
                         "hold data: refusing to guess", s->dir, name, (unsigned long long)off);
                rc = HX_EFAILED;
                break;
            }
            hx_warn("log: cut a torn tail of %llu bytes from %s at offset %llu", (unsigned long long)(size - off),
                    name, (unsigned long long)off);
            if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0) {
                snprintf(s->why, sizeof s->why, "cannot cut the torn tail of %s: %s", name, strerror(errno));
                rc = HX_EIO;
                break;
            }
            for (size_t j = i + 1; j < n; j++) {    /* empty segments after it go too */
                char later[64];
                seg_name(nums[j], later, sizeof later);
                unlinkat(s->dirfd, later, 0);
            }
            n = i + 1;
        }
        g->durable = g->logical = off;
    }
    free(nums);
    s->recovering = false;
    if (rc == 0) {
        hx_info("log: recovered %llu record(s) from %zu segment(s) in %s", (unsigned long long)records, n, s->dir);
        gc(s);
    }
    return rc;
}

/* ---- life --------------------------------------------------------------------------- */

static void log_destroy(hx_store_t *base)
{
    log_store_t *s = (log_store_t *)base;
    batch_t *b, *bt;
    LL_FOREACH_SAFE(s->pending, b, bt) batch_free(b);
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
    .syncs = log_syncs};

hx_store_t *hx_store_log_new(const hx_store_log_config_t *cfg, char *err, size_t errcap)
{
    log_store_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->base.ops = &log_ops;
    s->dirfd = s->lockfd = -1;
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
    s->lockfd = openat(s->dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errcap, "data directory %s is in use by another broker (%s)", s->dir, strerror(errno));
        goto fail;
    }
    return &s->base;
fail:
    log_destroy(&s->base);
    return NULL;
}
