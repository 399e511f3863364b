/* Unit tests for the durable log store: commit, recovery, torn tails at every byte,
 * corruption, segment roll-over and deletion with the dedup checkpoint, disk faults; damage
 * inside the acknowledged part (every byte flipped in turn) refused, a torn tail past it cut,
 * salvage, and the anchor each commit records. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hx_store.h"

static char dir[256];

typedef struct {
    size_t puts, settles, deads, revives, attempts, dedups;
    uint64_t handles[4096];
    size_t lens[4096];
    uint8_t dedup_ids[4096][16];
    char last_reason[256];
    uint64_t commit_seq;
    int commit_status;
    size_t commits;
} seen_t;

static seen_t seen;

static void v_put(void *a, uint64_t h, const uint8_t *m, size_t len)
{
    (void)a;
    (void)m;
    if (seen.puts < 4096) {
        seen.handles[seen.puts] = h;
        seen.lens[seen.puts] = len;
    }
    seen.puts++;
}
static void v_settle(void *a, const uint8_t id[16]) { (void)a, (void)id; seen.settles++; }
static void v_dead(void *a, const uint8_t id[16], uint32_t n, uint64_t at, const char *reason)
{
    (void)a, (void)id, (void)n, (void)at;
    snprintf(seen.last_reason, sizeof seen.last_reason, "%s", reason);
    seen.deads++;
}
static void v_revive(void *a, const uint8_t id[16]) { (void)a, (void)id; seen.revives++; }
static void v_attempts(void *a, const uint8_t id[16], uint32_t n) { (void)a, (void)id, (void)n; seen.attempts++; }
static void v_dedup(void *a, const uint8_t id[16])
{
    (void)a;
    if (seen.dedups < 4096)
        memcpy(seen.dedup_ids[seen.dedups], id, 16);
    seen.dedups++;
}
static const hx_store_visitor_t visitor = {v_put, v_settle, v_dead, v_revive, v_attempts, v_dedup};

static void on_commit(void *arg, uint64_t seq, int status)
{
    (void)arg;
    seen.commit_seq = seq;
    seen.commit_status = status;
    seen.commits++;
}

static uint8_t ids_for_checkpoint[64][16];
static size_t n_ids_for_checkpoint;
static void dedup_ids(void *arg, hx_buf_t *out)
{
    (void)arg;
    for (size_t i = 0; i < n_ids_for_checkpoint; i++)
        hx_buf_append(out, ids_for_checkpoint[i], 16);
}

static hx_store_t *open_store(uint64_t segment_bytes, const char *faults)
{
    char err[512];
    hx_store_log_config_t c = {.dir = dir, .segment_bytes = segment_bytes, .faults_path = faults};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    s->on_commit = on_commit;
    s->dedup_ids = dedup_ids;
    return s;
}

static int recover(hx_store_t *s)
{
    memset(&seen, 0, sizeof seen);
    return s->ops->recover(s, &visitor, NULL);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/handoff-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&seen, 0, sizeof seen);
    n_ids_for_checkpoint = 0;
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static void id_of(int n, uint8_t id[16])
{
    memset(id, 0, 16);
    id[0] = 0x42;
    id[15] = (uint8_t)n;
    id[14] = (uint8_t)(n >> 8);
}

/* One transaction with one put of a message of `len` bytes. */
static uint64_t txn_put(hx_store_t *s, int n, size_t len, uint64_t *handle)
{
    uint8_t msg[2048];
    memset(msg, n & 0xff, sizeof msg);
    cr_assert_eq(s->ops->begin(s), 0);
    cr_assert_eq(s->ops->put(s, msg, len, handle), 0);
    uint64_t seq;
    cr_assert_eq(s->ops->end(s, &seq), 0);
    return seq;
}

static char *segment_path(int number)
{
    static char p[400];
    snprintf(p, sizeof p, "%s/%020d.log", dir, number);
    return p;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ---- helpers for damaged logs ----------------------------------------------------------------- */

static char *dir_path(const char *name)
{
    static char p[4][600];
    static int k;
    char *out = p[k++ % 4];
    snprintf(out, sizeof p[0], "%s/%s", dir, name);
    return out;
}

static char *synced_path(void)
{
    return dir_path("SYNCED");
}

static const char *why_of(hx_store_t *s)
{
    const char *why = "";
    s->ops->health(s, &why);
    return why;
}

static const char *id_hex(int n)
{
    static char out[4][33];
    static int k;
    uint8_t id[16];
    id_of(n, id);
    char *o = out[k++ % 4];
    hx_id_hex(id, o);
    return o;
}

/* One transaction putting one real Message: id id_of(n), a payload of len bytes. */
static void txn_msg(hx_store_t *s, int n, size_t len)
{
    uint8_t id[16], payload[1024], buf[2048];
    id_of(n, id);
    memset(payload, 'a' + n % 26, len);
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "lakeside";
    Handoff__Message m = HANDOFF__MESSAGE__INIT;
    m.id = (ProtobufCBinaryData){16, id};
    m.to = &to;
    m.type = "t";
    m.payload = (ProtobufCBinaryData){len, payload};
    size_t blen = handoff__message__pack(&m, buf);
    uint64_t h, seq;
    cr_assert_eq(s->ops->begin(s), 0);
    cr_assert_eq(s->ops->put(s, buf, blen, &h), 0);
    cr_assert_eq(s->ops->end(s, &seq), 0);
}

typedef struct {
    uint8_t *data;
    size_t len;
} bytes_t;

static bytes_t slurp(const char *path)
{
    bytes_t b = {0};
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    b.len = (size_t)n;
    b.data = malloc(b.len + 1);
    cr_assert_eq(fread(b.data, 1, b.len, f), b.len);
    fclose(f);
    return b;
}

static void spill(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* A record of a segment: where it starts and ends, its type (1 transaction, 2 checkpoint,
 * 3 commit) and, for a put, the number of its message (else -1). */
typedef struct {
    size_t off, end;
    uint8_t type;
    int msg;
} rec_t;

static size_t records_of(const bytes_t *b, rec_t *out, size_t cap)
{
    size_t n = 0, off = 0;
    while (off + 9 <= b->len && n < cap) {
        const uint8_t *p = b->data + off;
        uint32_t len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        rec_t r = {off, off + 8 + len, p[8], -1};
        /* a put: kind 1, u32 length, then the Message, whose first field is the id (0a 10 ...) */
        if (r.type == 1 && len > 6 + 18 && p[9] == 1 && p[14] == 0x0a && p[15] == 16)
            r.msg = p[16 + 14] << 8 | p[16 + 15];
        out[n++] = r;
        off = r.end;
    }
    cr_assert_eq(off, b->len, "the test reads the whole segment");
    return n;
}

/* Writes `damaged` as segment seg, opens the store: recovery must refuse, name the segment
 * and the damaged record's offset, and leave the file as it was. Returns why. */
static const char *expect_refusal(uint64_t segment_bytes, int seg, size_t rec_off, const bytes_t *damaged,
                                  const char *what)
{
    static char why[8192];
    spill(segment_path(seg), damaged->data, damaged->len);
    hx_store_t *s = open_store(segment_bytes, NULL);
    int rc = recover(s);
    snprintf(why, sizeof why, "%s", why_of(s));
    hx_store_destroy(&s);
    cr_assert_eq(rc, HX_EFAILED, "%s: recovery did not refuse (%d): %s", what, rc, why);
    char want[128];
    snprintf(want, sizeof want, "%020d.log is damaged at offset %zu (", seg, rec_off);
    cr_assert(strstr(why, want), "%s: expected \"%s\" in: %s", what, want, why);
    bytes_t now = slurp(segment_path(seg));
    cr_assert(now.len == damaged->len && memcmp(now.data, damaged->data, now.len) == 0,
              "%s: the segment was changed", what);
    free(now.data);
    return why;
}

Test(store, committed_transactions_are_recovered)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    uint64_t h[10];
    uint64_t last = 0;
    for (int i = 0; i < 10; i++)
        last = txn_put(s, i, 100 + (size_t)i, &h[i]);
    cr_assert_eq(s->ops->durable_seq(s), 0, "nothing is durable before the flush");
    s->ops->flush(s);
    cr_assert_eq(seen.commit_status, 0);
    cr_assert_eq(seen.commit_seq, last, "one flush made all ten durable (group commit)");
    cr_assert_eq(seen.commits, 1);
    const uint8_t *data;
    cr_assert_eq(s->ops->get(s, h[3], 103, &data), 0);
    cr_assert_eq(data[0], 3);
    uint8_t id[16];
    id_of(3, id);
    cr_assert_eq(s->ops->begin(s), 0);
    cr_assert_eq(s->ops->settle(s, id), 0);
    cr_assert_eq(s->ops->attempts(s, id, 2), 0);
    cr_assert_eq(s->ops->dead(s, id, 5, 1234, "always fails"), 0);
    cr_assert_eq(s->ops->revive(s, id), 0);
    uint64_t seq;
    cr_assert_eq(s->ops->end(s, &seq), 0);
    s->ops->flush(s);
    hx_store_destroy(&s);

    s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    cr_assert_eq(seen.puts, 10);
    cr_assert_eq(seen.settles, 1);
    cr_assert_eq(seen.deads, 1);
    cr_assert_str_eq(seen.last_reason, "always fails");
    cr_assert_eq(seen.revives, 1);
    cr_assert_eq(seen.attempts, 1);
    cr_assert_eq(seen.handles[7], h[7], "handles survive a restart");
    cr_assert_eq(s->ops->get(s, seen.handles[7], seen.lens[7], &data), 0);
    cr_assert_eq(data[0], 7);
    hx_store_destroy(&s);
}

Test(store, unflushed_transactions_are_not_there_after_a_restart)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    uint64_t h;
    txn_put(s, 1, 50, &h);
    s->ops->flush(s);
    txn_put(s, 2, 50, &h);                      /* never flushed: never acknowledged */
    hx_store_destroy(&s);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    cr_assert_eq(seen.puts, 1);
    hx_store_destroy(&s);
}

Test(store, a_second_broker_cannot_open_the_same_directory)
{
    hx_store_t *s = open_store(0, NULL);
    char err[512];
    hx_store_log_config_t c = {.dir = dir};
    hx_store_t *t = hx_store_log_new(&c, err, sizeof err);
    cr_assert_null(t);
    cr_assert(strstr(err, "is in use by another handoff-broker (its LOCK is held)") && strstr(err, dir), "%s", err);
    /* a cluster node and --recover-cluster take the same lock by the directory's name */
    cr_assert_eq(hx_store_lock_dir(dir, -1, err, sizeof err), -1);
    cr_assert(strstr(err, "is in use by another handoff-broker"), "%s", err);
    hx_store_destroy(&s);
    int fd = hx_store_lock_dir(dir, -1, err, sizeof err);
    cr_assert_geq(fd, 0, "the lock is free once the store is closed: %s", err);
    t = hx_store_log_new(&c, err, sizeof err);
    cr_assert_null(t, "a store cannot open a directory a node holds");
    close(fd);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/not-there", dir);
    cr_assert_eq(hx_store_lock_dir(missing, -1, err, sizeof err), -1);
    cr_assert(strstr(err, "not-there/LOCK: No such file or directory"), "%s", err);
}

Test(store, a_write_torn_past_the_acknowledged_end_keeps_every_complete_record)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    txn_msg(s, 0, 1);                           /* segment 1 also opens with a checkpoint */
    s->ops->flush(s);
    bytes_t acked = slurp(synced_path());       /* what SYNCED said after the first group commit */
    off_t first = file_size(segment_path(1));
    for (int i = 1; i < 6; i++) {
        txn_msg(s, i, 40 + (size_t)i * 7);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    /* The later writes as a crash leaves them when nobody heard back: SYNCED still at the
     * first; each later write vouches only for what came before it. Cut at every byte. */
    bytes_t whole = slurp(segment_path(1));
    rec_t recs[64];
    size_t nr = records_of(&whole, recs, 64);
    for (off_t cut = first; cut < (off_t)whole.len; cut++) {
        spill(segment_path(1), whole.data, (size_t)cut);
        spill(synced_path(), acked.data, acked.len);
        s = open_store(0, NULL);
        cr_assert_eq(recover(s), 0, "cut at %ld: %s", (long)cut, why_of(s));
        size_t complete = 0, keep = 0;
        for (size_t k = 0; k < nr && recs[k].end <= (size_t)cut; k++) {
            complete += recs[k].msg >= 0;
            keep = recs[k].end;
        }
        cr_assert_eq(seen.puts, complete, "cut at %ld: %zu puts, expected %zu", (long)cut, seen.puts, complete);
        cr_assert_eq(file_size(segment_path(1)), (off_t)keep, "cut at %ld: the torn record is cut off", (long)cut);
        /* and the store goes on: a new record lands after the last good one */
        txn_msg(s, 9, 10);
        s->ops->flush(s);
        cr_assert_eq(seen.commit_status, 0);
        hx_store_destroy(&s);
        s = open_store(0, NULL);
        cr_assert_eq(recover(s), 0, "%s", why_of(s));
        cr_assert_eq(seen.puts, complete + 1);
        hx_store_destroy(&s);
    }
    free(whole.data);
    free(acked.data);
}

Test(store, garbage_in_the_middle_with_data_after_is_refused)
{
    hx_store_t *s = open_store(512, NULL);
    cr_assert_eq(recover(s), 0);
    uint64_t h;
    for (int i = 0; i < 12; i++) {
        txn_put(s, i, 200, &h);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    cr_assert_gt(file_size(segment_path(2)), 0, "a second segment holds data");
    int fd = open(segment_path(1), O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "XXXX", 4, 30), 4);
    close(fd);
    s = open_store(512, NULL);
    cr_assert_eq(recover(s), HX_EFAILED);
    const char *why = "";
    s->ops->health(s, &why);
    cr_assert(strstr(why, "00000000000000000001.log"), "%s", why);
    hx_store_destroy(&s);
}

/* ---- damage inside what was acknowledged (issue 13, point 2) ------------------------------------ */

/* Every byte of a segment holding eight acknowledged messages, flipped in turn: recovery
 * refuses each time, names the segment, the damaged record's offset and the messages on
 * either side, and leaves the file as it found it. (The old recovery took most of these for a
 * torn tail and cut the rest of the segment away.) */
Test(store, flipped_byte_in_acked_prefix_refuses)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 8; i++) {
        txn_msg(s, i, 20 + 9 * (size_t)i);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);                       /* a clean stop: every record was acknowledged */
    bytes_t seg = slurp(segment_path(1)), mark = slurp(synced_path());
    rec_t recs[64];
    size_t nr = records_of(&seg, recs, 64);
    cr_assert_geq(nr, 17, "a checkpoint, then a put and a commit record per group commit");
    for (size_t pos = 0; pos < seg.len; pos++) {
        size_t k = 0;
        while (recs[k].end <= pos)
            k++;
        seg.data[pos] ^= 0x20;
        spill(synced_path(), mark.data, mark.len);
        char what[96];
        snprintf(what, sizeof what, "byte %zu flipped (record %zu, at %zu)", pos, k, recs[k].off);
        const char *why = expect_refusal(0, 1, recs[k].off, &seg, what);
        int before = -1, after = -1;
        for (size_t j = 0; j < k; j++)
            if (recs[j].msg >= 0)
                before = recs[j].msg;
        for (size_t j = nr; j-- > k + 1;)
            if (recs[j].msg >= 0)
                after = recs[j].msg;
        if (before >= 0)
            cr_assert(strstr(why, id_hex(before)), "%s: the message before (%d) is not named: %s", what, before, why);
        if (after >= 0)
            cr_assert(strstr(why, id_hex(after)), "%s: the message after (%d) is not named: %s", what, after, why);
        seg.data[pos] ^= 0x20;
    }
    free(seg.data);
    free(mark.data);
}

/* The same across a log of several segments: a sample of bytes in every segment, the last
 * (active) one included. */
Test(store, flipped_byte_in_acked_prefix_of_a_multi_segment_log_refuses)
{
    hx_store_t *s = open_store(512, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 30; i++) {
        txn_msg(s, i, 60);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    int nsegs = 0;
    while (file_size(segment_path(nsegs + 1)) >= 0)
        nsegs++;
    cr_assert_geq(nsegs, 4, "the messages span several segments");
    bytes_t mark = slurp(synced_path());
    for (int g = 1; g <= nsegs; g++) {
        bytes_t seg = slurp(segment_path(g));
        rec_t recs[64];
        records_of(&seg, recs, 64);
        for (size_t pos = (size_t)g % 7; pos < seg.len; pos += 7) {
            size_t k = 0;
            while (recs[k].end <= pos)
                k++;
            seg.data[pos] ^= 0x01;
            spill(synced_path(), mark.data, mark.len);
            char what[96];
            snprintf(what, sizeof what, "segment %d, byte %zu flipped", g, pos);
            expect_refusal(512, g, recs[k].off, &seg, what);
            seg.data[pos] ^= 0x01;
        }
        spill(segment_path(g), seg.data, seg.len);
        free(seg.data);
    }
    spill(synced_path(), mark.data, mark.len);
    s = open_store(512, NULL);
    cr_assert_eq(recover(s), 0, "the intact log opens: %s", why_of(s));
    cr_assert_eq(seen.puts, 30);
    hx_store_destroy(&s);
    free(mark.data);
}

/* Group commits after the one SYNCED names, as a power loss can leave them: each write still
 * vouches for everything before it, so damage anywhere up to the last write is refused; a
 * flipped byte in the last write (three transactions that nobody can know were answered) is a
 * torn tail: cut from the damaged record on, and nothing before it. */
Test(store, flipped_byte_past_acked_end_cuts_only_unacked_tail)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 3; i++) {
        txn_msg(s, i, 30);
        s->ops->flush(s);
    }
    bytes_t stale = slurp(synced_path());
    for (int i = 3; i < 6; i++) {
        txn_msg(s, i, 30);
        s->ops->flush(s);
    }
    size_t vouched = (size_t)file_size(segment_path(1));
    for (int i = 6; i < 9; i++)
        txn_msg(s, i, 30);
    s->ops->flush(s);                           /* one group commit, three transactions */
    hx_store_destroy(&s);
    bytes_t seg = slurp(segment_path(1));
    rec_t recs[64];
    size_t nr = records_of(&seg, recs, 64);
    for (size_t pos = 0; pos < seg.len; pos++) {
        size_t k = 0;
        while (recs[k].end <= pos)
            k++;
        char what[96];
        snprintf(what, sizeof what, "byte %zu flipped (record at %zu)", pos, recs[k].off);
        seg.data[pos] ^= 0x40;
        spill(synced_path(), stale.data, stale.len);
        if (recs[k].off < vouched) {
            expect_refusal(0, 1, recs[k].off, &seg, what);
        } else {
            spill(segment_path(1), seg.data, seg.len);
            s = open_store(0, NULL);
            cr_assert_eq(recover(s), 0, "%s: %s", what, why_of(s));
            size_t kept = 0;
            for (size_t j = 0; j < k; j++)
                kept += recs[j].msg >= 0;
            cr_assert_geq(kept, 6, "%s: every acknowledged message is kept", what);
            cr_assert_eq(seen.puts, kept, "%s: %zu puts, expected %zu", what, seen.puts, kept);
            cr_assert_eq(file_size(segment_path(1)), (off_t)recs[k].off, "%s: cut exactly at the damage", what);
            hx_store_destroy(&s);
        }
        seg.data[pos] ^= 0x40;
    }
    (void)nr;
    free(seg.data);
    free(stale.data);
}

/* Records that were acknowledged and are simply gone (a segment cut short at a record
 * boundary, a segment deleted) are refused too, not taken for a shorter log. */
Test(store, acknowledged_records_missing_are_refused)
{
    hx_store_t *s = open_store(512, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 20; i++) {
        txn_msg(s, i, 60);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    int nsegs = 0;
    while (file_size(segment_path(nsegs + 1)) >= 0)
        nsegs++;
    cr_assert_geq(nsegs, 3);
    bytes_t last = slurp(segment_path(nsegs)), middle = slurp(segment_path(2));
    rec_t recs[64];
    size_t nr = records_of(&last, recs, 64);
    cr_assert_geq(nr, 2);
    cr_assert_eq(truncate(segment_path(nsegs), (off_t)recs[nr - 2].end), 0);   /* the last record, gone */
    s = open_store(512, NULL);
    cr_assert_eq(recover(s), HX_EFAILED, "a segment cut short at a record boundary");
    cr_assert(strstr(why_of(s), "acknowledged records are missing"), "%s", why_of(s));
    hx_store_destroy(&s);
    cr_assert_eq(file_size(segment_path(nsegs)), (off_t)recs[nr - 2].end, "nothing was cut");

    spill(segment_path(nsegs), last.data, last.len);
    cr_assert_eq(unlink(segment_path(nsegs)), 0);                              /* the active segment, gone */
    s = open_store(512, NULL);
    cr_assert_eq(recover(s), HX_EFAILED, "the last segment deleted");
    cr_assert(strstr(why_of(s), "acknowledged records are missing"), "%s", why_of(s));
    hx_store_destroy(&s);

    spill(segment_path(nsegs), last.data, last.len);
    cr_assert_eq(unlink(segment_path(2)), 0);                                  /* one in the middle */
    s = open_store(512, NULL);
    cr_assert_eq(recover(s), HX_EFAILED, "a middle segment deleted");
    cr_assert(strstr(why_of(s), "00000000000000000002.log is missing"), "%s", why_of(s));
    hx_store_destroy(&s);

    spill(segment_path(2), middle.data, middle.len);
    s = open_store(512, NULL);
    cr_assert_eq(recover(s), 0, "whole again: %s", why_of(s));
    cr_assert_eq(seen.puts, 20);
    hx_store_destroy(&s);
    free(last.data);
    free(middle.data);
}

/* A log written before SYNCED and commit records existed opens; its first recovery keeps the
 * old rule (a damaged tail with nothing readable after it is cut) except that damage followed
 * by readable records is now refused; then SYNCED is written and the new rule holds. */
Test(store, a_log_from_before_synced_opens)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 6; i++) {
        txn_msg(s, i, 50);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    bytes_t seg = slurp(segment_path(1));
    rec_t recs[64];
    size_t nr = records_of(&seg, recs, 64);
    bytes_t old = {malloc(seg.len), 0};         /* the same log in the old format */
    rec_t orecs[64];
    size_t on = 0;
    for (size_t k = 0; k < nr; k++) {
        if (recs[k].type == 3)
            continue;
        orecs[on] = recs[k];
        orecs[on].off = old.len;
        memcpy(old.data + old.len, seg.data + recs[k].off, recs[k].end - recs[k].off);
        old.len += recs[k].end - recs[k].off;
        orecs[on++].end = old.len;
    }
    spill(segment_path(1), old.data, old.len);
    cr_assert_eq(unlink(synced_path()), 0);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0, "%s", why_of(s));
    cr_assert_eq(seen.puts, 6);
    hx_store_destroy(&s);
    cr_assert_eq(file_size(synced_path()), 128, "SYNCED is written after the first recovery");

    /* torn in its last record, nothing after it: cut, as before */
    cr_assert_eq(unlink(synced_path()), 0);
    spill(segment_path(1), old.data, old.len - 5);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0, "%s", why_of(s));
    cr_assert_eq(seen.puts, 5);
    cr_assert_eq(file_size(segment_path(1)), (off_t)orecs[on - 2].end);
    hx_store_destroy(&s);

    /* damaged in the middle, readable records after it: refused */
    cr_assert_eq(unlink(synced_path()), 0);
    old.data[orecs[3].off + 20] ^= 0x08;
    spill(segment_path(1), old.data, old.len);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), HX_EFAILED, "damage followed by readable records");
    cr_assert(strstr(why_of(s), "readable records follow it"), "%s", why_of(s));
    hx_store_destroy(&s);
    cr_assert_eq(file_size(segment_path(1)), (off_t)old.len, "nothing was cut");
    free(seg.data);
    free(old.data);
}

/* ---- salvage ---------------------------------------------------------------------------------- */

/* The name of the one damaged-* directory in dir. */
static const char *damaged_dir(void)
{
    static char out[600];
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    int found = 0;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "damaged-", 8) == 0) {
            snprintf(out, sizeof out, "%s/%s", dir, de->d_name);
            found++;
        }
    closedir(d);
    cr_assert_eq(found, 1, "one damaged-* directory");
    return out;
}

/* Runs the salvage; its report into out. */
static int run_salvage(char *out, size_t cap)
{
    char err[512] = "";
    size_t len = 0;
    char *text = NULL;
    FILE *f = open_memstream(&text, &len);
    hx_store_log_config_t c = {.dir = dir};
    int rc = hx_store_log_salvage(&c, f, err, sizeof err);
    fclose(f);
    snprintf(out, cap, "%s%s", text, err);
    free(text);
    return rc;
}

/* The message numbers the store holds, as recovery hands them over. */
static size_t held_messages(hx_store_t *s, bool held[64])
{
    memset(held, 0, 64);
    size_t n = 0;
    for (size_t i = 0; i < seen.puts && i < 4096; i++) {
        const uint8_t *body;
        cr_assert_eq(s->ops->get(s, seen.handles[i], seen.lens[i], &body), 0);
        int msg = body[2 + 14] << 8 | body[2 + 15];
        cr_assert_lt(msg, 64);
        held[msg] = true;
        n++;
    }
    return n;
}

/* Two flipped bytes, in two segments: recovery refuses; --salvage copies every readable
 * record into a new log, moves the originals aside untouched, names both losses with the
 * messages around them; then the store opens with every readable message and goes on. */
Test(store, salvage_keeps_every_readable_record)
{
    hx_store_t *s = open_store(1024, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 16; i++) {
        txn_msg(s, i, 100);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    /* flip a byte in the bodies of messages 5 and 13 */
    int nsegs = 0;
    while (file_size(segment_path(nsegs + 1)) >= 0)
        nsegs++;
    bytes_t flipped[16];
    int damaged_seg[2] = {0, 0};
    size_t damaged_off[2];
    for (int g = 1; g <= nsegs; g++) {
        flipped[g] = slurp(segment_path(g));
        rec_t recs[64];
        size_t nr = records_of(&flipped[g], recs, 64);
        for (size_t k = 0; k < nr; k++) {
            int which = recs[k].msg == 5 ? 0 : recs[k].msg == 13 ? 1 : -1;
            if (which < 0)
                continue;
            flipped[g].data[recs[k].end - 10] ^= 0x10;
            damaged_seg[which] = g;
            damaged_off[which] = recs[k].off;
        }
        spill(segment_path(g), flipped[g].data, flipped[g].len);
    }
    cr_assert(damaged_seg[0] && damaged_seg[1] && damaged_seg[0] != damaged_seg[1], "in two segments");
    s = open_store(1024, NULL);
    cr_assert_eq(recover(s), HX_EFAILED);
    hx_store_destroy(&s);

    char report[8192];
    cr_assert_eq(run_salvage(report, sizeof report), 0, "%s", report);
    for (int w = 0; w < 2; w++) {
        char want[128];
        snprintf(want, sizeof want, "%020d.log: bytes %zu to ", damaged_seg[w], damaged_off[w]);
        cr_assert(strstr(report, want), "the report names %s: %s", want, report);
        cr_assert(strstr(report, id_hex(w ? 12 : 4)) && strstr(report, id_hex(w ? 14 : 6)),
                  "the report names the messages around it: %s", report);
    }
    cr_assert(strstr(report, "(acknowledged)"), "%s", report);
    const char *aside = damaged_dir();
    for (int g = 1; g <= nsegs; g++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%020d.log", aside, g);
        bytes_t kept = slurp(p);
        cr_assert(kept.len == flipped[g].len && memcmp(kept.data, flipped[g].data, kept.len) == 0,
                  "segment %d is kept aside untouched", g);
        free(kept.data);
        free(flipped[g].data);
    }
    char p[700];
    snprintf(p, sizeof p, "%s/salvage-report.txt", aside);
    cr_assert_gt(file_size(p), 0, "the report is kept beside them");
    cr_assert_eq(file_size(dir_path("salvage.new")), -1);

    s = open_store(1024, NULL);
    cr_assert_eq(recover(s), 0, "the salvaged log opens: %s", why_of(s));
    bool held[64];
    cr_assert_eq(held_messages(s, held), 14);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(held[i], i != 5 && i != 13, "message %d", i);
    txn_msg(s, 20, 100);
    s->ops->flush(s);
    cr_assert_eq(seen.commit_status, 0);
    hx_store_destroy(&s);
    s = open_store(1024, NULL);
    cr_assert_eq(recover(s), 0, "%s", why_of(s));
    cr_assert_eq(seen.puts, 15);
    hx_store_destroy(&s);
}

Test(store, salvage_of_an_intact_log_moves_nothing)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 4; i++) {
        txn_msg(s, i, 50);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    bytes_t before = slurp(segment_path(1));
    char report[4096];
    cr_assert_eq(run_salvage(report, sizeof report), 0, "%s", report);
    cr_assert(strstr(report, "nothing to salvage"), "%s", report);
    bytes_t after = slurp(segment_path(1));
    cr_assert(before.len == after.len && memcmp(before.data, after.data, after.len) == 0);
    cr_assert_eq(file_size(dir_path("salvage.new")), -1);
    free(before.data);
    free(after.data);
}

/* A salvage stopped half-way is refused by recovery, and finished (or redone) by running it
 * again. */
Test(store, an_interrupted_salvage_is_refused_then_finished)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    for (int i = 0; i < 6; i++) {
        txn_msg(s, i, 50);
        s->ops->flush(s);
    }
    hx_store_destroy(&s);
    bytes_t seg = slurp(segment_path(1));
    rec_t recs[64];
    size_t nr = records_of(&seg, recs, 64);
    for (size_t k = 0; k < nr; k++)
        if (recs[k].msg == 2)
            seg.data[recs[k].end - 3] ^= 0x02;
    spill(segment_path(1), seg.data, seg.len);
    bytes_t mark = slurp(synced_path());

    /* stopped before the new log was complete: started again from the start */
    cr_assert_eq(mkdir(dir_path("salvage.new"), 0700), 0);
    spill(dir_path("salvage.new/00000000000000000001.log"), (const uint8_t *)"half", 4);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), HX_EFAILED);
    cr_assert(strstr(why_of(s), "salvage of this log was interrupted"), "%s", why_of(s));
    hx_store_destroy(&s);
    char report[8192];
    cr_assert_eq(run_salvage(report, sizeof report), 0, "%s", report);
    bytes_t salvaged = slurp(segment_path(1)), salvaged_mark = slurp(synced_path());

    /* stopped after the new log was complete, before anything moved */
    const char *aside = damaged_dir();
    char from[800], to[800];
    cr_assert_eq(mkdir(dir_path("salvage.new"), 0700), 0);
    cr_assert_eq(rename(segment_path(1), dir_path("salvage.new/00000000000000000001.log")), 0);
    cr_assert_eq(rename(synced_path(), dir_path("salvage.new/SYNCED")), 0);
    snprintf(from, sizeof from, "%s/salvage-report.txt", aside);
    cr_assert_eq(rename(from, dir_path("salvage.new/salvage-report.txt")), 0);
    snprintf(from, sizeof from, "%s/00000000000000000001.log", aside);
    cr_assert_eq(rename(from, segment_path(1)), 0);
    snprintf(from, sizeof from, "%s/SYNCED", aside);
    cr_assert_eq(rename(from, synced_path()), 0);
    snprintf(to, sizeof to, "%s\n", strrchr(aside, '/') + 1);
    spill(dir_path("salvage.new/DONE"), (const uint8_t *)to, strlen(to));
    cr_assert_eq(rmdir(aside), 0);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), HX_EFAILED);
    hx_store_destroy(&s);
    cr_assert_eq(run_salvage(report, sizeof report), 0, "%s", report);
    cr_assert(strstr(report, "Finishing the salvage"), "%s", report);
    snprintf(from, sizeof from, "%s/00000000000000000001.log", aside);
    bytes_t now = slurp(segment_path(1)), now_mark = slurp(synced_path()), orig = slurp(from);
    cr_assert(now.len == salvaged.len && memcmp(now.data, salvaged.data, now.len) == 0, "the salvaged log in place");
    cr_assert(now_mark.len == salvaged_mark.len && memcmp(now_mark.data, salvaged_mark.data, now_mark.len) == 0);
    cr_assert(orig.len == seg.len && memcmp(orig.data, seg.data, seg.len) == 0, "the original aside");
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0, "%s", why_of(s));
    cr_assert_eq(seen.puts, 5);
    hx_store_destroy(&s);
    free(seg.data), free(mark.data), free(salvaged.data), free(salvaged_mark.data), free(now.data);
    free(now_mark.data), free(orig.data);
}

/* ---- the anchor ------------------------------------------------------------------------------- */

static uint8_t anchor_now[HX_STORE_ANCHOR_MAX], anchor_got[HX_STORE_ANCHOR_MAX];
static size_t anchor_now_len, anchor_got_len;
static int anchor_calls, anchor_sync_fd = -1;

static size_t t_anchor(void *arg, uint8_t *out, size_t cap, int *sync_fd)
{
    (void)arg;
    cr_assert_geq(cap, anchor_now_len);
    memcpy(out, anchor_now, anchor_now_len);
    *sync_fd = anchor_sync_fd;
    return anchor_now_len;
}

static void t_anchored(void *arg, const uint8_t *blob, size_t len)
{
    (void)arg;
    memcpy(anchor_got, blob, len);
    anchor_got_len = len;
    anchor_calls++;
}

static void set_anchor(const char *text)
{
    anchor_now_len = strlen(text);
    memcpy(anchor_now, text, anchor_now_len);
}

static void expect_anchor(const char *text, int calls)
{
    cr_assert_eq(anchor_calls, calls, "on_anchor calls");
    cr_assert(anchor_got_len == strlen(text) && memcmp(anchor_got, text, anchor_got_len) == 0, "anchor %.*s, "
              "expected %s", (int)anchor_got_len, (const char *)anchor_got, text);
}

/* Each group commit records the anchor; one of its own when only the anchor moved, and at a
 * clean stop; recovery hands back the latest, a commit without the hook keeps it, and so
 * does a salvage. */
Test(store, the_anchor_goes_with_every_commit_and_comes_back)
{
    char synced_file[300];
    snprintf(synced_file, sizeof synced_file, "%s/anchored-file", dir);
    anchor_sync_fd = open(synced_file, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(anchor_sync_fd, 0);
    anchor_calls = 0;
    hx_store_t *s = open_store(0, NULL);
    s->anchor = t_anchor;
    s->on_anchor = t_anchored;
    cr_assert_eq(recover(s), 0);
    cr_assert_eq(anchor_calls, 0, "an empty log holds no anchor");
    set_anchor("head-1");
    txn_msg(s, 1, 30);
    s->ops->flush(s);
    expect_anchor("head-1", 1);
    off_t size = file_size(segment_path(1));
    s->ops->flush(s);
    cr_assert_eq(file_size(segment_path(1)), size, "nothing moved: nothing written");
    set_anchor("head-2");
    s->ops->flush(s);
    expect_anchor("head-2", 2);
    cr_assert_gt(file_size(segment_path(1)), size, "only the anchor moved: a commit of its own");
    set_anchor("head-3");                       /* moved, then a clean stop: recorded there */
    hx_store_destroy(&s);
    expect_anchor("head-3", 3);

    s = open_store(0, NULL);
    s->on_anchor = t_anchored;
    cr_assert_eq(recover(s), 0);
    expect_anchor("head-3", 4);
    txn_msg(s, 2, 30);                          /* no anchor hook: the last one goes on */
    s->ops->flush(s);
    hx_store_destroy(&s);

    bytes_t seg = slurp(segment_path(1));
    rec_t recs[64];
    size_t nr = records_of(&seg, recs, 64);
    for (size_t k = 0; k < nr; k++)
        if (recs[k].msg == 1)
            seg.data[recs[k].end - 1] ^= 0x80;
    spill(segment_path(1), seg.data, seg.len);
    char report[8192];
    cr_assert_eq(run_salvage(report, sizeof report), 0, "%s", report);
    s = open_store(0, NULL);
    s->on_anchor = t_anchored;
    cr_assert_eq(recover(s), 0, "%s", why_of(s));
    expect_anchor("head-3", 5);
    cr_assert_eq(seen.puts, 1);
    hx_store_destroy(&s);
    close(anchor_sync_fd);
    anchor_sync_fd = -1;
    free(seg.data);
}

Test(store, settled_segments_are_deleted_and_the_checkpoint_keeps_the_ids)
{
    hx_store_t *s = open_store(1024, NULL);
    cr_assert_eq(recover(s), 0);
    uint64_t h[40];
    for (int i = 0; i < 40; i++) {
        txn_put(s, i, 300, &h[i]);
        s->ops->flush(s);
        if (i < 8) {                            /* the router's dedup window, as it grows */
            id_of(i, ids_for_checkpoint[n_ids_for_checkpoint++]);
        }
    }
    cr_assert_gt(file_size(segment_path(5)), 0, "several segments were written");
    for (int i = 0; i < 40; i++)
        s->ops->release(s, h[i]);
    cr_assert_eq(file_size(segment_path(1)), -1, "the settled first segment is gone");
    hx_store_destroy(&s);
    s = open_store(1024, NULL);
    cr_assert_eq(recover(s), 0);
    cr_assert_gt(seen.dedups, 0, "the oldest remaining segment opens with the dedup window");
    uint8_t id0[16];
    id_of(0, id0);
    cr_assert_eq(memcmp(seen.dedup_ids[0], id0, 16), 0);
    hx_store_destroy(&s);
}

static void write_faults(const char *path, const char *what)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(what, f);
    fclose(f);
}

Test(store, a_full_disk_refuses_and_recovers_when_space_returns)
{
    char faults[300];
    snprintf(faults, sizeof faults, "%s/faults", dir);
    hx_store_t *s = open_store(0, faults);
    cr_assert_eq(recover(s), 0);
    uint64_t h;
    txn_put(s, 1, 100, &h);
    s->ops->flush(s);
    cr_assert_eq(seen.commit_status, 0);
    off_t good = file_size(segment_path(1));

    write_faults(faults, "enospc");
    uint64_t seq = txn_put(s, 2, 100, &h);
    s->ops->flush(s);
    cr_assert_eq(seen.commit_status, -ENOSPC);
    cr_assert_geq(seen.commit_seq, seq);
    const char *why;
    cr_assert_eq(s->ops->health(s, &why), HX_EFULL);
    cr_assert(strstr(why, "full"), "%s", why);
    cr_assert_eq(s->ops->begin(s), HX_EFULL, "refuses while full");
    cr_assert_eq(file_size(segment_path(1)), good, "nothing half-written stays");
    s->ops->tick(s, 5000);
    cr_assert_eq(s->ops->health(s, &why), HX_EFULL, "still full while the fault lasts");

    unlink(faults);
    s->ops->tick(s, 10000);
    cr_assert_eq(s->ops->health(s, &why), 0, "space is back");
    txn_put(s, 3, 100, &h);
    s->ops->flush(s);
    cr_assert_eq(seen.commit_status, 0);
    hx_store_destroy(&s);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    cr_assert_eq(seen.puts, 2, "the two committed, not the refused one");
    hx_store_destroy(&s);
}

Test(store, a_failed_fdatasync_refuses_until_restart)
{
    char faults[300];
    snprintf(faults, sizeof faults, "%s/faults", dir);
    hx_store_t *s = open_store(0, faults);
    cr_assert_eq(recover(s), 0);
    uint64_t h;
    txn_put(s, 1, 100, &h);
    s->ops->flush(s);
    write_faults(faults, "eio");
    txn_put(s, 2, 100, &h);
    s->ops->flush(s);
    cr_assert_eq(seen.commit_status, -EIO);
    const char *why;
    cr_assert_eq(s->ops->health(s, &why), HX_EFAILED);
    unlink(faults);
    s->ops->tick(s, 100000);
    cr_assert_eq(s->ops->health(s, &why), HX_EFAILED, "no retry-and-pretend");
    cr_assert_eq(s->ops->begin(s), HX_EFAILED);
    hx_store_destroy(&s);
    s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    cr_assert_eq(seen.puts, 1);
    cr_assert_eq(s->ops->health(s, &why), 0, "a restart recovers");
    hx_store_destroy(&s);
}

/* ---- the router on the log ---------------------------------------------------------------- */

#include "hx_router.h"

/* These tests put made-up types into a mailbox: a policy that allows any type anywhere. */
static hx_policy_t *policy_any(void)
{
    char err[200];
    hx_policy_t *p = hx_policy_parse("{\"rules\": [{\"from\": \"*\", \"to\": \"*\", \"types\": [\"*\"]}]}", err,
                                     sizeof err);
    cr_assert_not_null(p, "%s", err);
    return p;
}

static int discard(void *arg, const uint8_t *peer, size_t len, const uint8_t *frame, size_t flen)
{
    (void)arg, (void)peer, (void)len, (void)frame, (void)flen;
    return 0;
}

static void router_submit(hx_router_t *r, int n)
{
    uint8_t id[16];
    id_of(n, id);
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "lakeside";
    uint8_t payload[200];
    memset(payload, 'x', sizeof payload);
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){16, id};
    m.to = &to;
    m.type = "t";
    m.payload = (ProtobufCBinaryData){sizeof payload, payload};
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_SUBMIT;
    env.id = (ProtobufCBinaryData){16, id};
    env.n_messages = 1;
    env.messages = &mp;
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(&env, &b), 0);
    hx_router_on_frame(r, (const uint8_t *)"c1", 2, b.data, b.len, 0);
    hx_buf_free(&b);
}

Test(store, a_clean_shutdown_keeps_every_message_across_segments)
{
    hx_store_t *s = open_store(4096, NULL);
    hx_policy_t *any = policy_any();
    hx_router_config_t cfg = {.send = discard, .store = s, .policy = any};
    hx_router_t *r = hx_router_new(&cfg);
    cr_assert_eq(hx_router_recover(r), 0);
    Handoff__Envelope hello = HANDOFF__ENVELOPE__INIT;
    hello.version = 1;
    hello.kind = HANDOFF__KIND__KIND_HELLO;
    hello.role = HANDOFF__ROLE__ROLE_CLINIC;
    hello.name = "northpoint";
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(&hello, &b), 0);
    hx_router_on_frame(r, (const uint8_t *)"c1", 2, b.data, b.len, 0);
    hx_buf_free(&b);
    for (int i = 0; i < 200; i++) {
        router_submit(r, i);
        hx_router_flush(r);
    }
    cr_assert_eq(hx_router_depth(r, "mailbox", "lakeside", NULL), 200);
    cr_assert_gt(file_size(segment_path(5)), 0, "the messages span several segments");
    hx_router_destroy(&r);                      /* a clean stop: nothing was settled */
    hx_store_destroy(&s);
    cr_assert_gt(file_size(segment_path(1)), 0, "the first segment is still there");

    s = open_store(4096, NULL);
    hx_router_config_t cfg2 = {.send = discard, .store = s};
    r = hx_router_new(&cfg2);
    cr_assert_eq(hx_router_recover(r), 0);
    cr_assert_eq(hx_router_depth(r, "mailbox", "lakeside", NULL), 200, "every accepted message is back");
    hx_router_destroy(&r);
    hx_store_destroy(&s);
    hx_policy_destroy(&any);
}

static bool file_has(const char *file, const void *needle, size_t n)
{
    FILE *f = fopen(file, "rb");
    cr_assert_not_null(f);
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return true;
    return false;
}

Test(store, sealed_bodies_are_unreadable_without_the_key)
{
    uint8_t key[32], other[32];
    memset(key, 7, sizeof key);
    memset(other, 8, sizeof other);
    char err[512];
    hx_store_log_config_t c = {.dir = dir, .key = key};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    s->on_commit = on_commit;
    cr_assert_eq(recover(s), 0);
    const char *secret = "Beatriz Carvalho-Demo, 5555-420-008-BC";
    uint64_t h;
    cr_assert_eq(s->ops->begin(s), 0);
    cr_assert_eq(s->ops->put(s, (const uint8_t *)secret, strlen(secret), &h), 0);
    uint64_t seq;
    cr_assert_eq(s->ops->end(s, &seq), 0);
    s->ops->flush(s);
    const uint8_t *back;
    cr_assert_eq(s->ops->get(s, h, strlen(secret), &back), 0);
    cr_assert_eq(memcmp(back, secret, strlen(secret)), 0, "read back in clear");
    hx_store_destroy(&s);
    cr_assert_not(file_has(segment_path(1), "Carvalho", 8), "the segment holds no clear text");

    s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_eq(recover(s), 0);
    cr_assert_eq(seen.puts, 1);
    cr_assert_eq(seen.lens[0], strlen(secret));
    hx_store_destroy(&s);

    hx_store_log_config_t wrong = {.dir = dir, .key = other};
    s = hx_store_log_new(&wrong, err, sizeof err);
    cr_assert_eq(recover(s), HX_EFAILED, "the wrong key does not open the log");
    const char *why;
    s->ops->health(s, &why);
    cr_assert(strstr(why, "data key"), "%s", why);
    hx_store_destroy(&s);
}
