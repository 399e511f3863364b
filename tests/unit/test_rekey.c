/* Unit tests for hx_store_log_rekey (handoff-broker --rekey): a log sealed with one key, or in
 * clear, sealed anew with another. Every entry and every body reads back the same with the
 * new key and not at all with the old; no byte the old key sealed is left in the directory;
 * a wrong or missing old key changes nothing; a rekey stopped at each of its steps is refused
 * by recovery and finished (or undone) by running it again. */
#define _GNU_SOURCE                     /* memmem */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hx_store.h"

#define SEG_BYTES 4096
#define N_MSGS 120

static char dir[256];
static uint8_t key_a[32], key_b[32];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/handoff-rekey-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(key_a, 0xa1, sizeof key_a);
    memset(key_b, 0xb2, sizeof key_b);
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.copy'", dir, dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(rekey, .init = setup, .fini = teardown);

/* ---- what a log holds: every callback of its recovery, in order, as bytes ----------------- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
    size_t puts;
} transcript_t;

static void tr_add(transcript_t *t, char kind, const void *p, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = realloc(t->data, t->cap);
        cr_assert_not_null(t->data);
    }
    t->data[t->len++] = (uint8_t)kind;
    memcpy(t->data + t->len, p, n);
    t->len += n;
}

static void v_put(void *a, uint64_t h, const uint8_t *m, size_t len)
{
    (void)h;
    ((transcript_t *)a)->puts++;
    tr_add(a, 'P', m, len);
}
static void v_settle(void *a, const uint8_t id[16]) { tr_add(a, 'S', id, 16); }
static void v_dead(void *a, const uint8_t id[16], uint32_t n, uint64_t at, const char *reason)
{
    tr_add(a, 'D', id, 16);
    tr_add(a, 'n', &n, sizeof n);
    tr_add(a, 't', &at, sizeof at);
    tr_add(a, 'r', reason, strlen(reason));
}
static void v_revive(void *a, const uint8_t id[16]) { tr_add(a, 'R', id, 16); }
static void v_attempts(void *a, const uint8_t id[16], uint32_t n)
{
    tr_add(a, 'A', id, 16);
    tr_add(a, 'n', &n, sizeof n);
}
static void v_dedup(void *a, const uint8_t id[16]) { tr_add(a, 'X', id, 16); }
static void v_moved(void *a, uint64_t h, const uint8_t *m, size_t len, uint32_t n, uint64_t at, const char *reason)
{
    (void)h;
    ((transcript_t *)a)->puts++;
    tr_add(a, 'M', m, len);
    tr_add(a, 'n', &n, sizeof n);
    tr_add(a, 't', &at, sizeof at);
    tr_add(a, 'r', reason ? reason : "-", reason ? strlen(reason) : 1);
}
static const hx_store_visitor_t visitor = {v_put, v_settle, v_dead, v_revive, v_attempts, v_dedup, v_moved};

/* Recovers the log in d with key (NULL: in clear) into *t; the store's recover status, the
 * reason in why. */
static int read_log(const char *d, const uint8_t *key, transcript_t *t, char *why, size_t cap)
{
    memset(t, 0, sizeof *t);
    char err[512];
    hx_store_log_config_t c = {.dir = d, .segment_bytes = SEG_BYTES, .key = key};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    int rc = s->ops->recover(s, &visitor, t);
    const char *w = "";
    s->ops->health(s, &w);
    snprintf(why, cap, "%s", w ? w : "");
    hx_store_destroy(&s);
    return rc;
}

/* ---- writing a log ------------------------------------------------------------------------ */

static void id_of(int n, uint8_t id[16])
{
    memset(id, 0, 16);
    id[0] = 0x5e;
    id[14] = (uint8_t)(n >> 8);
    id[15] = (uint8_t)n;
}

/* A real Message, id id_of(n), whose payload names a patient: "Carvalho-<n>|...". */
static size_t packed(int n, uint8_t *out, size_t cap)
{
    uint8_t id[16];
    id_of(n, id);
    char payload[160];
    int plen = snprintf(payload, sizeof payload, "Carvalho-%04d|referral for physiotherapy, lumbar pain", n);
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "lakeside";
    Handoff__Message m = HANDOFF__MESSAGE__INIT;
    m.id = (ProtobufCBinaryData){16, id};
    m.to = &to;
    m.type = "referral";
    m.payload = (ProtobufCBinaryData){(size_t)plen, (uint8_t *)payload};
    cr_assert_leq(handoff__message__get_packed_size(&m), cap);
    return handoff__message__pack(&m, out);
}

static uint8_t checkpoint_ids[8][16];
static void dedup_ids(void *arg, hx_buf_t *out)
{
    (void)arg;
    for (int i = 0; i < 8; i++)
        hx_buf_append(out, checkpoint_ids[i], 16);
}

/* A log of several segments with every kind of entry: puts (some settled, with their ids in
 * every checkpoint), one message failed twice then dead, revived, dead again, and moved by
 * compaction with its state. key NULL: in clear. */
static void write_log(const uint8_t *key)
{
    char err[512];
    hx_store_log_config_t c = {.dir = dir, .segment_bytes = SEG_BYTES, .key = key};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    s->dedup_ids = dedup_ids;
    transcript_t none;
    memset(&none, 0, sizeof none);
    cr_assert_eq(s->ops->recover(s, &visitor, &none), 0);
    free(none.data);
    uint8_t msg[512], id[16];
    uint64_t h, seq, h7 = 0;
    size_t len7 = 0;
    for (int n = 1; n <= N_MSGS; n++) {
        size_t len = packed(n, msg, sizeof msg);
        id_of(n, id);
        cr_assert_eq(s->ops->begin(s), 0);
        cr_assert_eq(s->ops->put(s, msg, len, &h), 0);
        if (n % 3 == 0)
            cr_assert_eq(s->ops->settle(s, id), 0);
        if (n == 7) {
            h7 = h, len7 = len;
            cr_assert_eq(s->ops->attempts(s, id, 2), 0);
        }
        cr_assert_eq(s->ops->end(s, &seq), 0);
        if (n % 3 == 0 && n / 3 <= 8)
            memcpy(checkpoint_ids[n / 3 - 1], id, 16);
        if (n % 10 == 0)
            s->ops->flush(s);
    }
    id_of(7, id);
    cr_assert_eq(s->ops->begin(s), 0);
    cr_assert_eq(s->ops->dead(s, id, 3, 1700000000123ull, "no clinic named lakeside"), 0);
    cr_assert_eq(s->ops->end(s, &seq), 0);
    cr_assert_eq(s->ops->begin(s), 0);
    cr_assert_eq(s->ops->revive(s, id), 0);
    cr_assert_eq(s->ops->dead(s, id, 5, 1700000000456ull, "worker failed"), 0);
    cr_assert_eq(s->ops->end(s, &seq), 0);
    s->ops->flush(s);
    const uint8_t *body;
    cr_assert_eq(s->ops->get(s, h7, len7, &body), 0);
    uint8_t copy[512];
    memcpy(copy, body, len7);
    uint64_t moved;
    cr_assert_eq(s->ops->begin(s), 0);
    cr_assert_eq(s->ops->move(s, id, copy, len7, 5, 1700000000456ull, "worker failed", &moved), 0);
    cr_assert_eq(s->ops->end(s, &seq), 0);
    s->ops->flush(s);
    cr_assert_eq(s->ops->durable_seq(s), seq);
    hx_store_destroy(&s);
}

/* ---- the directory's files ------------------------------------------------------------------ */

typedef struct {
    uint8_t *data;
    size_t len;
} bytes_t;

static bytes_t slurp(const char *path)
{
    bytes_t b = {0};
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    b.len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(b.len + 1);
    cr_assert_eq(fread(b.data, 1, b.len, f), b.len);
    fclose(f);
    return b;
}

/* Every regular file under d (one level of subdirectories too), concatenated: what an
 * attacker with the disk would read. */
static bytes_t everything_in(const char *d)
{
    bytes_t all = {0};
    DIR *dd = opendir(d);
    cr_assert_not_null(dd, "%s", d);
    struct dirent *de;
    while ((de = readdir(dd))) {
        if (de->d_name[0] == '.')
            continue;
        char p[700];
        snprintf(p, sizeof p, "%s/%s", d, de->d_name);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        bytes_t one = S_ISDIR(st.st_mode) ? everything_in(p) : slurp(p);
        all.data = realloc(all.data, all.len + one.len + 1);
        memcpy(all.data + all.len, one.data, one.len);
        all.len += one.len;
        free(one.data);
    }
    closedir(dd);
    return all;
}

static bool holds(const bytes_t *b, const void *needle, size_t n)
{
    return n && b->len >= n && memmem(b->data, b->len, needle, n) != NULL;
}

static bool exists(const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static int rekey(const uint8_t *old, const uint8_t *new_key, char *out, size_t cap, char *err, size_t errcap)
{
    FILE *f = fmemopen(out, cap, "w");
    cr_assert_not_null(f);
    hx_store_log_config_t c = {.dir = dir, .segment_bytes = SEG_BYTES, .key = old};
    int rc = hx_store_log_rekey(&c, new_key, f, err, errcap);
    fclose(f);
    return rc;
}

/* The sealed form of message 5's body as the log holds it now: 48 bytes from just after its
 * PUT entry's header (the nonce and the start of the box), found by the entry that follows
 * the record header; used to prove those bytes are gone after the rekey. */
static bytes_t a_sealed_body(void)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%020d.log", dir, 1);
    bytes_t seg = slurp(p);
    /* records: u32 len | u32 crc | type; entries: kind | u32 len | bytes. The 5th TXN's first
     * entry is message 5's PUT (the segment opens with a checkpoint). */
    size_t off = 0;
    int txn = 0;
    bytes_t out = {0};
    while (off + 9 <= seg.len) {
        uint32_t len = (uint32_t)seg.data[off] | (uint32_t)seg.data[off + 1] << 8 |
                       (uint32_t)seg.data[off + 2] << 16 | (uint32_t)seg.data[off + 3] << 24;
        if (seg.data[off + 8] == 1 && ++txn == 5) {
            cr_assert_eq(seg.data[off + 9], 1, "a PUT entry");
            out.len = 48;
            out.data = malloc(48);
            memcpy(out.data, seg.data + off + 9 + 5, 48);
            break;
        }
        off += 8 + len;
    }
    free(seg.data);
    cr_assert_not_null(out.data, "message 5's record was found");
    return out;
}

/* ---- tests ------------------------------------------------------------------------------------ */

Test(rekey, a_sealed_log_reads_the_same_with_the_new_key_and_not_at_all_with_the_old)
{
    write_log(key_a);
    char why[1024], out[2048], err[1024];
    transcript_t before, after, none;
    cr_assert_eq(read_log(dir, key_a, &before, why, sizeof why), 0, "%s", why);
    cr_assert_eq(before.puts, N_MSGS + 1, "every put and the moved copy");
    bytes_t old_box = a_sealed_body();
    bytes_t files = everything_in(dir);
    cr_assert(holds(&files, old_box.data, old_box.len), "the positive control: the old sealed bytes are there");
    free(files.data);

    cr_assert_eq(rekey(key_a, key_b, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(out, "Sealed 121 message(s)"), "%s", out);
    cr_assert_not(exists("rekey.new") || exists("rekey.old"), "nothing left beside the log");

    cr_assert_eq(read_log(dir, key_b, &after, why, sizeof why), 0, "the new key opens it: %s", why);
    cr_assert_eq(after.len, before.len);
    cr_assert(memcmp(after.data, before.data, before.len) == 0,
              "every entry, id, state and body as it was, in the same order");
    cr_assert_eq(read_log(dir, key_a, &none, why, sizeof why), HX_EFAILED, "the old key opens nothing");
    cr_assert(strstr(why, "does not open with this data key"), "%s", why);
    cr_assert_eq(rekey(key_a, key_b, out, sizeof out, err, sizeof err), 0, "run again: %s", err);
    cr_assert(strstr(out, "sealed with the new key already: nothing to do"), "%s", out);

    files = everything_in(dir);
    cr_assert_not(holds(&files, old_box.data, old_box.len), "no byte sealed with the old key is left");
    cr_assert_not(holds(&files, "Carvalho-", 9), "and nothing in clear");
    free(files.data), free(old_box.data);
    free(before.data), free(after.data), free(none.data);
}

Test(rekey, a_log_in_clear_gains_a_key)
{
    write_log(NULL);
    char why[1024], out[2048], err[1024];
    transcript_t before, after, none;
    cr_assert_eq(read_log(dir, NULL, &before, why, sizeof why), 0, "%s", why);
    bytes_t files = everything_in(dir);
    cr_assert(holds(&files, "Carvalho-0005", 13), "the positive control: in clear before");
    free(files.data);

    cr_assert_eq(rekey(NULL, key_b, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert_eq(read_log(dir, key_b, &after, why, sizeof why), 0, "%s", why);
    cr_assert(after.len == before.len && memcmp(after.data, before.data, before.len) == 0, "the same log");
    files = everything_in(dir);
    cr_assert_not(holds(&files, "Carvalho-", 9), "no patient in clear any more");
    free(files.data);
    cr_assert_eq(read_log(dir, key_a, &none, why, sizeof why), HX_EFAILED, "another key opens nothing");
    free(before.data), free(after.data), free(none.data);
}

/* The wrong old key, or none for a sealed log, or the new key the same as the old: refused
 * with the reason, and not a byte of the directory changes. */
Test(rekey, a_wrong_or_missing_old_key_changes_nothing)
{
    write_log(key_a);
    char out[2048], err[1024];
    bytes_t before = everything_in(dir);
    uint8_t key_c[32];
    memset(key_c, 0xc3, sizeof key_c);

    cr_assert_eq(rekey(key_c, key_b, out, sizeof out, err, sizeof err), HX_EFAILED);
    cr_assert(strstr(err, "does not open with this data key"), "%s", err);
    cr_assert_eq(rekey(NULL, key_b, out, sizeof out, err, sizeof err), HX_EINVAL);
    cr_assert(strstr(err, "--data-key must name the key it was sealed with"), "%s", err);
    cr_assert_eq(rekey(key_a, key_a, out, sizeof out, err, sizeof err), HX_EINVAL);
    cr_assert(strstr(err, "the new key is the key the log is sealed with already"), "%s", err);

    cr_assert_not(exists("rekey.new") || exists("rekey.old"));
    bytes_t after = everything_in(dir);
    /* SYNCED is rewritten by a recovery with the same end: compare the segments' bytes */
    cr_assert_eq(after.len, before.len);
    free(before.data), free(after.data);
    char why[1024];
    transcript_t t;
    cr_assert_eq(read_log(dir, key_a, &t, why, sizeof why), 0, "the old key still opens it: %s", why);
    cr_assert_eq(t.puts, N_MSGS + 1);
    free(t.data);
}

Test(rekey, an_empty_log_has_nothing_to_rekey)
{
    char out[2048], err[1024];
    cr_assert_eq(rekey(key_a, key_b, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(out, "holds nothing: nothing to rekey"), "%s", out);
}

/* A rekey stopped at each of its steps: the broker refuses to start while rekey.new is there,
 * and running the rekey again finishes it (or, before DONE, starts it again). */
Test(rekey, a_rekey_stopped_at_any_step_is_refused_then_finished)
{
    write_log(key_a);
    char why[1024], out[2048], err[1024], cmd[4096];
    transcript_t want, got;
    cr_assert_eq(read_log(dir, key_a, &want, why, sizeof why), 0, "%s", why);
    /* the rekeyed files, made in a copy */
    snprintf(cmd, sizeof cmd, "rm -rf '%s.copy' && cp -a '%s' '%s.copy'", dir, dir, dir);
    cr_assert_eq(system(cmd), 0);
    char keep[sizeof dir];
    snprintf(keep, sizeof keep, "%s", dir);
    cr_assert_lt(strlen(keep) + 5, sizeof dir);
    memcpy(dir + strlen(keep), ".copy", 6);
    cr_assert_eq(rekey(key_a, key_b, out, sizeof out, err, sizeof err), 0, "%s", err);
    snprintf(dir, sizeof dir, "%s", keep);

    for (int step = 0; step < 4; step++) {
        /* the original log again, then the state a stop at `step` leaves */
        snprintf(cmd, sizeof cmd, "rm -rf '%s'/* && cp -a '%s.orig'/. '%s'/", dir, dir, dir);
        if (step == 0) {
            snprintf(cmd, sizeof cmd, "rm -rf '%s.orig' && cp -a '%s' '%s.orig'", dir, dir, dir);
            cr_assert_eq(system(cmd), 0);
        } else {
            cr_assert_eq(system(cmd), 0);
        }
        switch (step) {
        case 0: /* the copy half-written, no DONE: undone, then made again */
            snprintf(cmd, sizeof cmd, "mkdir '%s/rekey.new' && head -c 100 '%s.copy/%020d.log' > '%s/rekey.new/%020d.log'",
                     dir, dir, 1, dir, 1);
            break;
        case 1: /* the copy complete with DONE, nothing moved yet */
            snprintf(cmd, sizeof cmd, "mkdir '%s/rekey.new' && cp '%s.copy'/*.log '%s.copy/SYNCED' '%s/rekey.new/' && "
                     "echo rekeyed > '%s/rekey.new/DONE'", dir, dir, dir, dir, dir);
            break;
        case 2: /* ... and the old segments moved aside, half the new ones in place */
            snprintf(cmd, sizeof cmd, "mkdir '%s/rekey.new' '%s/rekey.old' && cp '%s.copy'/*.log '%s.copy/SYNCED' "
                     "'%s/rekey.new/' && echo rekeyed > '%s/rekey.new/DONE' && mv '%s'/*.log '%s/SYNCED' '%s/rekey.old/' "
                     "&& touch '%s/rekey.new/MOVED' && mv '%s/rekey.new/%020d.log' '%s/'", dir, dir, dir, dir, dir, dir,
                     dir, dir, dir, dir, dir, 1, dir);
            break;
        case 3: /* everything in place, only the old segments left to remove */
            snprintf(cmd, sizeof cmd, "mkdir '%s/rekey.old' && mv '%s'/*.log '%s/SYNCED' '%s/rekey.old/' && "
                     "cp '%s.copy'/*.log '%s.copy/SYNCED' '%s/'", dir, dir, dir, dir, dir, dir, dir);
            break;
        }
        cr_assert_eq(system(cmd), 0, "step %d", step);
        if (step < 3) {
            cr_assert_eq(read_log(dir, key_b, &got, why, sizeof why), HX_EFAILED, "step %d", step);
            cr_assert(strstr(why, "a rekey of this log was interrupted") && strstr(why, "--rekey"), "%s", why);
            free(got.data);
            cr_assert_eq(rekey(key_a, key_b, out, sizeof out, err, sizeof err), 0, "step %d: %s", step, err);
            if (step > 0)
                cr_assert(strstr(out, "Finishing the rekey that was interrupted"), "step %d: %s", step, out);
        }
        /* step 3: the broker's recovery itself removes what a finished rekey left */
        cr_assert_eq(read_log(dir, key_b, &got, why, sizeof why), 0, "step %d: %s", step, why);
        cr_assert(got.len == want.len && memcmp(got.data, want.data, want.len) == 0, "step %d: the same log", step);
        free(got.data);
        cr_assert_not(exists("rekey.new") || exists("rekey.old"), "step %d", step);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s.orig'", dir);
    cr_assert_eq(system(cmd), 0);
    free(want.data);
}

/* Run as root on a directory that belongs to another user (the packages' StateDirectory, the
 * user handoff), the rekeyed files take the directory's owner, so the broker can go on writing.
 * Skipped when not run as root. */
Test(rekey, as_root_the_new_files_take_the_directorys_owner)
{
    if (geteuid() != 0)
        cr_skip_test("needs root (chown)");
    write_log(key_a);
    const uid_t uid = 4242;
    const gid_t gid = 4343;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chown -R %u:%u '%s'", (unsigned)uid, (unsigned)gid, dir);
    cr_assert_eq(system(cmd), 0);
    char out[2048], err[1024];
    cr_assert_eq(rekey(key_a, key_b, out, sizeof out, err, sizeof err), 0, "%s", err);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    int seen = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        cr_assert(st.st_uid == uid && st.st_gid == gid, "%s belongs to %u:%u", de->d_name, (unsigned)st.st_uid,
                  (unsigned)st.st_gid);
        seen++;
    }
    closedir(d);
    cr_assert_geq(seen, 3, "the segments, SYNCED and LOCK");
}
