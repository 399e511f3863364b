/* hx_store_snapshot — a consistent copy of a durable log while its broker keeps writing it,
 * without the broker's help (hx_store.h, hx_store_log_snapshot).
 *
 * The rule: list the segments and open every one (an open descriptor keeps a file readable
 * after the broker deletes it), THEN read SYNCED's durable end E, list again and open any
 * segment up to E's that appeared meanwhile. The copy is every opened segment numbered up to
 * E's, that one cut at E's offset (a record boundary: the end of a group commit), none after
 * it, and a SYNCED naming E. Segments are append-only, and one is deleted only after what it
 * holds is settled durably and the next segment's checkpoint is durable; so the copy is what a
 * crash at E would have left, which recovery handles. A segment that vanished before it could
 * be opened held nothing needed past the oldest one that was opened: only the unbroken run of
 * segments that ends at E's is copied.
 *
 * The on-disk format is hx_store_log.c's (its header comment); the segment names and SYNCED
 * come from hx_store_format.h, which both files use. */
#define _GNU_SOURCE
#include "hx_store.h"
#include "hx_store_format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The audit chain's head as the broker last recorded it (hx_audit.h, HX_AUDIT_ANCHOR_FILE). */
#define SNAP_ANCHOR_FILE "audit.anchor"
#define SNAP_ANCHOR_MAX 4096


/* One segment file held open. */
typedef struct {
    uint64_t number;
    int fd;
} snap_seg_t;

typedef struct {
    snap_seg_t *segs;           /* sorted by number */
    size_t n, cap;
} snap_set_t;

static bool snap_has(const snap_set_t *s, uint64_t number)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->segs[i].number == number)
            return true;
    return false;
}

static int snap_cmp(const void *a, const void *b)
{
    uint64_t x = ((const snap_seg_t *)a)->number, y = ((const snap_seg_t *)b)->number;
    return x < y ? -1 : x > y;
}

static void snap_close(snap_set_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        close(s->segs[i].fd);
    free(s->segs);
    memset(s, 0, sizeof *s);
}

/* Lists dirfd and opens every segment not yet in s numbered up to `upto`. A segment deleted
 * between the listing and the open is skipped. 0, or HX_EIO / HX_ENOMEM with the reason. */
static int snap_scan(int dirfd, const char *dir, uint64_t upto, snap_set_t *s, char *err, size_t errcap)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        snprintf(err, errcap, "cannot read %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return HX_EIO;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        char *end;
        unsigned long long num = strtoull(de->d_name, &end, 10);
        if (strlen(de->d_name) != 24 || end != de->d_name + 20 || strcmp(end, ".log") != 0 || num == 0 ||
            num > upto || snap_has(s, num))
            continue;
        int sfd = openat(dirfd, de->d_name, O_RDONLY | O_CLOEXEC);
        if (sfd < 0) {
            if (errno == ENOENT)
                continue;               /* deleted meanwhile: settled */
            snprintf(err, errcap, "cannot open %s/%s: %s", dir, de->d_name, strerror(errno));
            rc = HX_EIO;
            break;
        }
        if (s->n == s->cap) {
            size_t ncap = s->cap ? s->cap * 2 : 16;
            snap_seg_t *t = realloc(s->segs, ncap * sizeof *t);
            if (!t) {
                close(sfd);
                rc = HX_ENOMEM;
                snprintf(err, errcap, "out of memory");
                break;
            }
            s->segs = t;
            s->cap = ncap;
        }
        s->segs[s->n++] = (snap_seg_t){num, sfd};
    }
    closedir(d);
    if (s->n)
        qsort(s->segs, s->n, sizeof *s->segs, snap_cmp);
    return rc;
}

/* SYNCED's durable end: the slot with the higher counter whose CRC checks (as mark_read in
 * hx_store_log.c). False when neither does. */
static bool snap_mark_read(int dirfd, uint64_t *seg, uint64_t *off)
{
    int fd = openat(dirfd, HX_MARK_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    uint64_t count = 0;
    bool found = hx_mark_read(fd, seg, off, &count);
    close(fd);
    return found;
}

/* A SYNCED naming (seg, off) in both slots, so a reader finds it whichever it trusts. */
static void snap_mark_slots(uint8_t slots[2 * HX_MARK_SLOT], uint64_t seg, uint64_t off)
{
    hx_mark_slot(slots, 1, seg, off);
    hx_mark_slot(slots + HX_MARK_SLOT, 2, seg, off);
}

int hx_store_log_snapshot(const char *dir, hx_store_snapshot_fn fn, void *arg, hx_store_snapshot_t *info, char *err,
                          size_t errcap)
{
    memset(info, 0, sizeof *info);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        snprintf(err, errcap, "cannot open the log directory %s: %s", dir, strerror(errno));
        return HX_EIO;
    }
    snap_set_t set = {0};
    uint64_t eseg = 0, eoff = 0;
    int rc = snap_scan(dirfd, dir, UINT64_MAX, &set, err, errcap);
    struct stat raft;
    if (rc == 0 && fstatat(dirfd, "raft", &raft, 0) == 0 && S_ISDIR(raft.st_mode)) {
        snprintf(err, errcap, "%s is a replicated broker's node (it holds raft/), not a single broker's log: copy a "
                 "caught-up follower's directory while it is stopped (OPERATIONS.md, \"Backing up a cluster\")", dir);
        rc = HX_EINVAL;
    }
    if (rc == 0 && !snap_mark_read(dirfd, &eseg, &eoff)) {
        snprintf(err, errcap, "%s/%s is missing or names no durable end: not a log the broker has written (or one "
                 "from before SYNCED existed: start the broker on it once, then back it up)", dir, HX_MARK_FILE);
        rc = HX_EINVAL;
    }
    if (rc == 0)
        rc = snap_scan(dirfd, dir, eseg, &set, err, errcap);
    /* The unbroken run of opened segments that ends at E's. */
    size_t first = set.n, last = set.n;
    for (size_t i = set.n; rc == 0 && i-- > 0;) {
        if (set.segs[i].number > eseg)
            continue;
        if (last == set.n) {
            if (set.segs[i].number != eseg)
                break;
            last = i;
        } else if (set.segs[i].number + 1 != set.segs[i + 1].number) {
            break;
        }
        first = i;
    }
    if (rc == 0 && eseg != 0 && last == set.n) {
        snprintf(err, errcap, "%s/%s names segment " HX_SEG_FMT " as the log's durable end, but no such segment "
                 "exists: the log is damaged (see handoff-broker --salvage)", dir, HX_MARK_FILE,
                 (unsigned long long)eseg);
        rc = HX_EFAILED;
    }
    for (size_t i = first; rc == 0 && last != set.n && i <= last; i++) {
        char name[64];
        snprintf(name, sizeof name, HX_SEG_FMT, (unsigned long long)set.segs[i].number);
        struct stat st;
        if (fstat(set.segs[i].fd, &st) != 0) {
            snprintf(err, errcap, "cannot read %s/%s: %s", dir, name, strerror(errno));
            rc = HX_EIO;
            break;
        }
        uint64_t len = (uint64_t)st.st_size;
        if (i == last) {
            if (len < eoff) {
                snprintf(err, errcap, "%s/%s holds %llu bytes, but %s names offset %llu in it as durable: the log "
                         "is damaged (see handoff-broker --salvage)", dir, name, (unsigned long long)len,
                         HX_MARK_FILE, (unsigned long long)eoff);
                rc = HX_EFAILED;
                break;
            }
            len = eoff;
        }
        rc = fn(arg, name, set.segs[i].fd, len, NULL);
        if (rc) {
            snprintf(err, errcap, "copying %s/%s failed", dir, name);
            break;
        }
        info->segments++;
        info->bytes += len;
        if (i == first)
            info->first_seg = set.segs[i].number;
    }
    if (rc == 0) {
        uint8_t slots[2 * HX_MARK_SLOT];
        snap_mark_slots(slots, eseg, eoff);
        rc = fn(arg, HX_MARK_FILE, -1, sizeof slots, slots);
        if (rc)
            snprintf(err, errcap, "copying %s/%s failed", dir, HX_MARK_FILE);
        info->end_seg = eseg;
        info->end_off = eoff;
    }
    /* The audit anchor's copy, read after E: it names a head at or past the log's, and the
     * audit files, copied later still, reach at least that far. */
    int afd = rc == 0 ? openat(dirfd, SNAP_ANCHOR_FILE, O_RDONLY | O_CLOEXEC) : -1;
    if (afd >= 0) {
        uint8_t buf[SNAP_ANCHOR_MAX];
        ssize_t n = pread(afd, buf, sizeof buf, 0);
        close(afd);
        if (n > 0 && (rc = fn(arg, SNAP_ANCHOR_FILE, -1, (uint64_t)n, buf)) != 0)
            snprintf(err, errcap, "copying %s/%s failed", dir, SNAP_ANCHOR_FILE);
    }
    snap_close(&set);
    close(dirfd);
    return rc;
}

/* hx_store_log_snapshot_dir's writer: each file into the directory, synced. */
typedef struct {
    int dirfd;
    const char *dir;
    char *err;
    size_t errcap;
} snap_dir_t;

static int snap_write_file(void *arg, const char *name, int fd, uint64_t len, const uint8_t *data)
{
    snap_dir_t *d = arg;
    int out = openat(d->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        snprintf(d->err, d->errcap, "cannot create %s/%s: %s", d->dir, name, strerror(errno));
        return HX_EIO;
    }
    uint8_t buf[1 << 16];
    uint64_t done = 0;
    int rc = 0, saved = 0;
    while (rc == 0 && done < len) {
        size_t want = len - done < sizeof buf ? (size_t)(len - done) : sizeof buf;
        const uint8_t *p = data ? data + done : buf;
        ssize_t n = data ? (ssize_t)want : pread(fd, buf, want, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            saved = n < 0 ? errno : 0;
            rc = HX_EIO;
            break;
        }
        if (write(out, p, (size_t)n) != n) {
            saved = errno;
            rc = HX_EIO;
        }
        done += (uint64_t)n;
    }
    if (rc == 0 && fsync(out) != 0) {
        saved = errno;
        rc = HX_EIO;
    }
    if (rc)
        snprintf(d->err, d->errcap, "cannot write %s/%s: %s", d->dir, name, saved ? strerror(saved) : "short read");
    close(out);
    return rc;
}

int hx_store_log_snapshot_dir(const char *dir, const char *into, hx_store_snapshot_t *info, char *err, size_t errcap)
{
    if (mkdir(into, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errcap, "cannot create %s: %s", into, strerror(errno));
        return HX_EIO;
    }
    snap_dir_t d = {.dirfd = open(into, O_RDONLY | O_DIRECTORY | O_CLOEXEC), .dir = into};
    if (d.dirfd < 0) {
        snprintf(err, errcap, "cannot open %s: %s", into, strerror(errno));
        return HX_EIO;
    }
    char why[1024] = "";
    d.err = why;
    d.errcap = sizeof why;
    int rc = hx_store_log_snapshot(dir, snap_write_file, &d, info, err, errcap);
    if (rc && why[0])
        snprintf(err, errcap, "%s", why);
    if (rc == 0 && fsync(d.dirfd) != 0) {
        snprintf(err, errcap, "cannot sync %s: %s", into, strerror(errno));
        rc = HX_EIO;
    }
    close(d.dirfd);
    return rc;
}
