/* Unit tests for the durable log store: commit, recovery, torn tails at every byte,
 * corruption, segment roll-over and deletion with the dedup checkpoint, disk faults. */
#include <criterion/criterion.h>
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
    cr_assert(strstr(err, "in use"), "%s", err);
    hx_store_destroy(&s);
}

Test(store, torn_tail_at_every_byte_keeps_every_earlier_record)
{
    hx_store_t *s = open_store(0, NULL);
    cr_assert_eq(recover(s), 0);
    uint64_t h;
    off_t ends[6];
    txn_put(s, 0, 1, &h);                       /* segment 1 also opens with a checkpoint */
    s->ops->flush(s);
    ends[0] = file_size(segment_path(1));
    for (int i = 1; i < 6; i++) {
        txn_put(s, i, 40 + (size_t)i * 7, &h);
        s->ops->flush(s);
        ends[i] = file_size(segment_path(1));
    }
    hx_store_destroy(&s);
    /* keep the whole file, then cut copies of it at every byte */
    char whole[400], cmd[900];
    snprintf(whole, sizeof whole, "%s.whole", segment_path(1));
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", segment_path(1), whole);
    cr_assert_eq(system(cmd), 0);
    off_t size = ends[5];
    for (off_t cut = ends[0]; cut < size; cut++) {
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", whole, segment_path(1));
        cr_assert_eq(system(cmd), 0);
        cr_assert_eq(truncate(segment_path(1), cut), 0);
        s = open_store(0, NULL);
        cr_assert_eq(recover(s), 0, "cut at %ld", (long)cut);
        size_t complete = 0;
        while (complete < 6 && ends[complete] <= cut)
            complete++;
        cr_assert_eq(seen.puts, complete, "cut at %ld: %zu puts, expected %zu", (long)cut, seen.puts, complete);
        cr_assert_eq(file_size(segment_path(1)), ends[complete - 1], "the torn tail is cut off");
        /* and the store goes on: a new record lands after the last good one */
        txn_put(s, 9, 10, &h);
        s->ops->flush(s);
        cr_assert_eq(seen.commit_status, 0);
        hx_store_destroy(&s);
        s = open_store(0, NULL);
        cr_assert_eq(recover(s), 0);
        cr_assert_eq(seen.puts, complete + 1);
        hx_store_destroy(&s);
    }
    unlink(whole);
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
    hx_router_config_t cfg = {.send = discard, .store = s};
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
