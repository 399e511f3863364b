/* Unit tests for hx_wire: names, ids, packing and the DELIVER fast path. */
#include <criterion/criterion.h>
#include <string.h>

#include "hx_wire.h"

Test(wire, names)
{
    cr_assert(hx_name_valid("intake"));
    cr_assert(hx_name_valid("clinic-01.north_A"));
    cr_assert_not(hx_name_valid(""));
    cr_assert_not(hx_name_valid(NULL));
    cr_assert_not(hx_name_valid("a b"));
    cr_assert_not(hx_name_valid("caf\xc3\xa9"));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name);
    long_name[64] = '\0';
    cr_assert(hx_name_valid(long_name));
    long_name[64] = 'a';
    long_name[65] = '\0';
    cr_assert_not(hx_name_valid(long_name));
}

Test(wire, derived_ids_are_stable_and_distinct)
{
    uint8_t in[16] = {1, 2, 3}, a[16], b[16], c[16];
    hx_id_derive(in, 0, a);
    hx_id_derive(in, 0, b);
    hx_id_derive(in, 1, c);
    cr_assert_eq(memcmp(a, b, 16), 0);
    cr_assert_neq(memcmp(a, c, 16), 0);
    char hex[33];
    hx_id_hex(in, hex);
    cr_assert_str_eq(hex, "01020300000000000000000000000000");
}

Test(wire, envelope_round_trip)
{
    uint8_t id[16];
    hx_id_random(id);
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_HELLO;
    env.id = (ProtobufCBinaryData){16, id};
    env.role = HANDOFF__ROLE__ROLE_WORKER;
    env.name = "triage";
    env.credit = 7;
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(&env, &b), 0);
    Handoff__Envelope *e = handoff__envelope__unpack(NULL, b.len, b.data);
    cr_assert_not_null(e);
    cr_assert_eq(e->kind, HANDOFF__KIND__KIND_HELLO);
    cr_assert_str_eq(e->name, "triage");
    cr_assert_eq(e->credit, 7);
    cr_assert_eq(memcmp(e->id.data, id, 16), 0);
    handoff__envelope__free_unpacked(e, NULL);
    hx_buf_free(&b);
}

Test(wire, appended_messages_decode_with_their_attempt)
{
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "lakeside";
    Handoff__Message m = HANDOFF__MESSAGE__INIT;
    uint8_t id[16] = {9};
    m.id = (ProtobufCBinaryData){16, id};
    m.to = &to;
    m.type = "handoff.Handoff";
    m.attempt = 0;
    uint8_t payload[300];
    memset(payload, 0x5a, sizeof payload);
    m.payload = (ProtobufCBinaryData){sizeof payload, payload};
    uint8_t stored[1024];
    size_t len = handoff__message__pack(&m, stored);

    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_DELIVER;
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(&env, &b), 0);
    cr_assert_eq(hx_wire_append_message(&b, stored, len, 3), 0);
    cr_assert_eq(hx_wire_append_message(&b, stored, len, 300), 0);
    Handoff__Envelope *e = handoff__envelope__unpack(NULL, b.len, b.data);
    cr_assert_not_null(e);
    cr_assert_eq(e->n_messages, 2);
    cr_assert_eq(e->messages[0]->attempt, 3);
    cr_assert_eq(e->messages[1]->attempt, 300);
    cr_assert_str_eq(e->messages[1]->to->name, "lakeside");
    cr_assert_eq(e->messages[1]->payload.len, sizeof payload);
    handoff__envelope__free_unpacked(e, NULL);
    hx_buf_free(&b);
}

Test(wire, truncated_envelopes_never_decode_into_garbage)
{
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_ERROR;
    env.error_text = "a reasonably long error text to cut";
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(&env, &b), 0);
    for (size_t cut = 1; cut < b.len; cut++) {
        Handoff__Envelope *e = handoff__envelope__unpack(NULL, cut, b.data);
        if (e) {   /* a cut on a field boundary is a valid shorter envelope */
            cr_assert(e->error_text == NULL || strlen(e->error_text) <= strlen(env.error_text));
            handoff__envelope__free_unpacked(e, NULL);
        }
    }
    hx_buf_free(&b);
}

#include "hx_idmap.h"

/* The id map against a plain array: every id found after puts, growth and removals in a
 * scattered order; removed ones gone; ids that differ in their last byte only (a client's
 * counter) are as good as random ones. */
enum { IDMAP_N = 20000 };
static uint8_t recs[IDMAP_N][HX_ID_LEN];
static unsigned released[IDMAP_N];     /* how often each record was released */
static void mark_release(void *rec)
{
    ptrdiff_t i = ((uint8_t *)rec - recs[0]) / HX_ID_LEN;
    cr_assert(i >= 0 && i < IDMAP_N && (uint8_t *)rec == recs[i], "released a record the map never held");
    released[i]++;
}

Test(idmap, agrees_with_a_plain_array)
{
    enum { N = IDMAP_N };
    for (int i = 0; i < N; i++) {
        if (i % 2)
            hx_id_random(recs[i]);
        else {
            memset(recs[i], 0x42, HX_ID_LEN);
            recs[i][14] = (uint8_t)(i >> 8);
            recs[i][15] = (uint8_t)i;
        }
    }
    hx_idmap_t m;
    cr_assert_eq(hx_idmap_init(&m), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_null(hx_idmap_find(&m, recs[i]));
        cr_assert_eq(hx_idmap_put(&m, recs[i]), 0);
    }
    cr_assert_eq(m.n, N);
    cr_assert_leq(m.n * 10, m.cap * 7);
    for (int i = 0; i < N; i++)
        cr_assert_eq(hx_idmap_find(&m, recs[i]), recs[i]);
    /* remove every third one, in a scattered order */
    for (int k = 0; k < N; k++) {
        int i = (int)(((long)k * 7919) % N);
        if (i % 3 == 0)
            hx_idmap_remove(&m, recs[i]);
    }
    hx_idmap_remove(&m, recs[0]);                    /* twice: nothing happens */
    size_t left = 0;
    for (int i = 0; i < N; i++) {
        void *got = hx_idmap_find(&m, recs[i]);
        if (i % 3 == 0)
            cr_assert_null(got, "removed id %d still found", i);
        else {
            cr_assert_eq(got, recs[i], "id %d lost after removals", i);
            left++;
        }
    }
    cr_assert_eq(m.n, left);
    size_t seen = 0;
    for (size_t i = 0; i < m.cap; i++)
        seen += m.slots[i].rec != NULL;
    cr_assert_eq(seen, left);
    uint8_t absent[HX_ID_LEN];
    memset(absent, 0x42, HX_ID_LEN);
    absent[13] = 1;
    cr_assert_null(hx_idmap_find(&m, absent));
    /* cleared: each record held released once and the removed ones not at all, nothing
     * found, the capacity kept, and it takes records again */
    size_t cap = m.cap;
    hx_idmap_clear(&m, mark_release);
    for (int i = 0; i < N; i++)
        cr_assert_eq(released[i], i % 3 == 0 ? 0u : 1u, "record %d released %u times by a clear", i, released[i]);
    cr_assert_eq(m.n, 0);
    cr_assert_eq(m.cap, cap);
    for (int i = 0; i < N; i++)
        cr_assert_null(hx_idmap_find(&m, recs[i]), "id %d found after a clear", i);
    cr_assert_eq(hx_idmap_put(&m, recs[1]), 0);
    cr_assert_eq(hx_idmap_find(&m, recs[1]), recs[1]);
    cr_assert_eq(m.n, 1);
    hx_idmap_free(&m);
}

/* A map that held many and drained gives its table back, halving as it empties (never below
 * its first size), and still finds what it holds. */
Test(idmap, shrinks_as_it_drains)
{
    enum { N = IDMAP_N, KEEP = 100 };
    for (int i = 0; i < N; i++)
        hx_id_random(recs[i]);
    hx_idmap_t m;
    cr_assert_eq(hx_idmap_init(&m), 0);
    size_t first = m.cap;
    for (int i = 0; i < N; i++)
        cr_assert_eq(hx_idmap_put(&m, recs[i]), 0);
    size_t peak = m.cap;
    cr_assert_geq(peak, (size_t)N);
    for (int i = KEEP; i < N; i++) {
        hx_idmap_remove(&m, recs[i]);
        cr_assert(m.n * 10 <= m.cap * 7, "%zu records in %zu slots after a removal", m.n, m.cap);
        if (i % 997 == 0)                           /* the kept ones found on the way down */
            for (int k = 0; k < KEEP; k++)
                cr_assert_eq(hx_idmap_find(&m, recs[k]), recs[k], "id %d lost at %zu slots", k, m.cap);
    }
    cr_assert_eq(m.n, (size_t)KEEP);
    cr_assert_eq(m.cap, first, "%zu slots left for %d records (peak %zu)", m.cap, KEEP, peak);
    for (int i = 0; i < N; i++)
        cr_assert_eq(hx_idmap_find(&m, recs[i]), i < KEEP ? (void *)recs[i] : NULL, "id %d", i);
    for (int i = KEEP; i < N; i++)                  /* and it grows again */
        cr_assert_eq(hx_idmap_put(&m, recs[i]), 0);
    cr_assert_eq(m.cap, peak);
    for (int i = 0; i < N; i++)
        cr_assert_eq(hx_idmap_find(&m, recs[i]), recs[i]);
    hx_idmap_free(&m);
}

#include "hx_pool.h"

/* The entry pool: objects zeroed, distinct and writable; freed ones reused; blocks that empty
 * given back except one; everything consistent over a scattered order of frees. (Under the
 * sanitizers the pool is plain calloc: the block counts are not checked there.) */
Test(pool, hands_out_distinct_zeroed_objects_and_gives_blocks_back)
{
    enum { N = 50000, SIZE = 96 };
    hx_pool_t *p = hx_pool_new(SIZE);
    cr_assert_not_null(p);
    cr_assert_null(hx_pool_new(0));
    cr_assert_null(hx_pool_new(5000));
    static unsigned char *objs[N];
    for (int i = 0; i < N; i++) {
        objs[i] = hx_pool_alloc(p);
        cr_assert_not_null(objs[i]);
        for (int k = 0; k < SIZE; k++)
            cr_assert_eq(objs[i][k], 0, "object %d byte %d not zeroed", i, k);
        memset(objs[i], (unsigned char)(i % 251) + 1, SIZE);
    }
    cr_assert_eq(hx_pool_used(p), N);
    size_t full = hx_pool_bytes(p);
    cr_assert_geq(full, (size_t)N * SIZE, "the pool holds less than its objects");
#ifndef __SANITIZE_ADDRESS__
    cr_assert_lt(full, (size_t)N * SIZE + (size_t)N * SIZE / 50 + (2u << 20),
                 "more than 2 %% (and a block) over the objects themselves: %zu for %d", full, N);
#endif
    for (int i = 0; i < N; i++)                         /* nothing overlapped */
        for (int k = 0; k < SIZE; k++)
            cr_assert_eq(objs[i][k], (unsigned char)(i % 251) + 1, "object %d was overwritten", i);
    /* free two thirds in a scattered order, then allocate them again: reused, zeroed */
    for (int k = 0; k < N; k++) {
        int i = (int)(((long)k * 7919) % N);
        if (i % 3) {
            hx_pool_free(p, objs[i]);
            objs[i] = NULL;
        }
    }
    cr_assert_eq(hx_pool_used(p), (size_t)(N + 2) / 3);
    for (int i = 0; i < N; i++)
        if (!objs[i]) {
            objs[i] = hx_pool_alloc(p);
            cr_assert_not_null(objs[i]);
            for (int k = 0; k < SIZE; k++)
                cr_assert_eq(objs[i][k], 0);
            memset(objs[i], (unsigned char)(i % 251) + 1, SIZE);
        }
#ifndef __SANITIZE_ADDRESS__
    cr_assert_eq(hx_pool_bytes(p), full, "freed objects were not reused");
#endif
    for (int i = 0; i < N; i++)
        for (int k = 0; k < SIZE; k++)
            cr_assert_eq(objs[i][k], (unsigned char)(i % 251) + 1, "object %d was overwritten", i);
    /* all back: at most the one spare block is kept */
    for (int i = N - 1; i >= 0; i--)
        hx_pool_free(p, objs[i]);
    hx_pool_free(p, NULL);
    cr_assert_eq(hx_pool_used(p), 0);
#ifndef __SANITIZE_ADDRESS__
    cr_assert_leq(hx_pool_bytes(p), 2u << 20, "%zu bytes kept with nothing out (one spare block at most)",
                  hx_pool_bytes(p));
#endif
    hx_pool_destroy(&p);
    cr_assert_null(p);
}

#include "hx_crc32c.h"

/* appendf: short text, and text longer than its stack buffer, formatted in place. */
Test(wire, buf_appendf_short_and_long)
{
    hx_buf_t b = {0};
    cr_assert_eq(hx_buf_appendf(&b, "%s=%d;", "n", 42), 0);
    char long_value[600];
    memset(long_value, 'x', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    cr_assert_eq(hx_buf_appendf(&b, "[%s]", long_value), 0);
    cr_assert_eq(b.len, strlen("n=42;") + 2 + strlen(long_value));
    cr_assert_eq(memcmp(b.data, "n=42;[xxx", 9), 0);
    cr_assert_eq(b.data[b.len - 1], ']');
    hx_buf_free(&b);
}

/* The reply fast path writes exactly the bytes protobuf-c writes for such an envelope. */
Test(wire, reply_fast_path_matches_protobuf)
{
    uint8_t corr[HX_ID_LEN];
    hx_id_random(corr);
    const Handoff__Kind kinds[] = {HANDOFF__KIND__KIND_ACCEPTED, HANDOFF__KIND__KIND_HEARTBEAT, HANDOFF__KIND__KIND_WELCOME,
                                   (Handoff__Kind)0};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (size_t corr_len = 0; corr_len <= HX_ID_LEN; corr_len += HX_ID_LEN) {
            Handoff__Envelope env;
            handoff__envelope__init(&env);
            env.version = HX_PROTOCOL_VERSION;
            env.kind = kinds[k];
            env.correlation_id.data = corr;
            env.correlation_id.len = corr_len;
            hx_buf_t want = {0}, got = {0};
            cr_assert_eq(hx_wire_pack(&env, &want), 0);
            cr_assert_eq(hx_wire_pack_reply(&got, kinds[k], corr, corr_len), 0);
            cr_assert_eq(got.len, want.len, "kind %d corr %zu: %zu bytes, protobuf-c %zu", kinds[k], corr_len, got.len,
                         want.len);
            cr_assert_eq(memcmp(got.data, want.data, want.len), 0);
            hx_buf_free(&want);
            hx_buf_free(&got);
        }
}

/* Recovery's in-place scan reads the same id, address and time as a full unpack, and refuses
 * every truncation that cuts a field. */
Test(wire, message_scan_agrees_with_unpack)
{
    uint8_t id[HX_ID_LEN], corr[HX_ID_LEN], payload[300];
    hx_id_random(id);
    hx_id_random(corr);
    memset(payload, 0xab, sizeof payload);
    Handoff__Address to = HANDOFF__ADDRESS__INIT, from = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to.name = "clinic-7";
    from.kind = HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE;
    from.name = "scheduling";
    Handoff__Message m = HANDOFF__MESSAGE__INIT;
    m.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    m.to = &to;
    m.from = &from;
    m.type = "handoff.Handoff";
    m.payload = (ProtobufCBinaryData){sizeof payload, payload};
    m.correlation_id = (ProtobufCBinaryData){HX_ID_LEN, corr};
    m.attempt = 3;
    m.accepted_at_ms = UINT64_C(1795619180812);
    uint8_t buf[512];
    size_t len = handoff__message__pack(&m, buf);
    hx_msg_head_t h;
    cr_assert_eq(hx_wire_scan_message(buf, len, &h), 0);
    cr_assert_eq(h.id_len, HX_ID_LEN);
    cr_assert_eq(memcmp(h.id, id, HX_ID_LEN), 0);
    cr_assert_eq(h.to_kind, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX);
    cr_assert_eq(h.to_name_len, strlen("clinic-7"));
    cr_assert_eq(memcmp(h.to_name, "clinic-7", h.to_name_len), 0);
    cr_assert_eq(h.accepted_at_ms, m.accepted_at_ms);
    size_t refused = 0;
    for (size_t cut = 1; cut < len; cut++) {
        Handoff__Message *u = handoff__message__unpack(NULL, cut, buf);
        int rc = hx_wire_scan_message(buf, cut, &h);
        if (!u)
            refused++;
        /* whatever protobuf-c cannot decode, the scan must not accept either */
        if (!u)
            cr_assert_eq(rc, -1, "cut at %zu: protobuf-c refuses, the scan accepts", cut);
        if (u)
            handoff__message__free_unpacked(u, NULL);
    }
    cr_assert_gt(refused, 0);
}

/* The arena hands out aligned memory, spills into extra blocks past its size, and unpacked
 * envelopes read the same as with malloc. */
Test(wire, arena_unpacks_envelopes)
{
    hx_arena_t a;
    cr_assert_eq(hx_arena_init(&a, 256), 0);
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = 1;
    env.kind = HANDOFF__KIND__KIND_ADMIN;
    env.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    env.admin_op = "dlq.list";
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(&env, &b), 0);
    for (int round = 0; round < 50; round++) {
        Handoff__Envelope *u = handoff__envelope__unpack(&a.pb, b.len, b.data);
        cr_assert_not_null(u);
        cr_assert_str_eq(u->admin_op, "dlq.list");
        cr_assert_eq(memcmp(u->id.data, id, HX_ID_LEN), 0);
        cr_assert_eq((uintptr_t)u % 16, 0);
        void *big = a.pb.alloc(a.pb.allocator_data, 1000);   /* beyond the block */
        cr_assert_not_null(big);
        memset(big, 1, 1000);
        hx_arena_reset(&a);
        cr_assert_eq(a.used, 0);
        cr_assert_null(a.extra);
    }
    hx_buf_free(&b);
    hx_arena_free(&a);
}

Test(crc32c, known_values_and_incremental)
{
    cr_assert_eq(hx_crc32c(0, "123456789", 9), 0xE3069283u);
    cr_assert_eq(hx_crc32c(0, "", 0), 0u);
    uint8_t zeros[32] = {0};
    cr_assert_eq(hx_crc32c(0, zeros, 32), 0x8A9136AAu);   /* RFC 3720 B.4 */
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    uint32_t whole = hx_crc32c(0, buf, sizeof buf);
    cr_assert_eq(hx_crc32c_portable(0, buf, sizeof buf), whole, "table and hardware agree");
    cr_assert_eq(hx_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    for (size_t cut = 0; cut <= sizeof buf; cut += 37)
        cr_assert_eq(hx_crc32c(hx_crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);
}

/* Long inputs take the three-stream path (3 x 4096 bytes at a time, joined by a table):
 * the same values as the table, at every length around the stripe boundaries, from any
 * starting crc and any alignment. */
Test(crc32c, long_inputs_agree_with_the_table)
{
    enum { LEN = 5 * 3 * 4096 + 100 };
    uint8_t *buf = malloc(LEN + 8);
    cr_assert_not_null(buf);
    uint32_t x = 12345;
    for (size_t i = 0; i < LEN + 8; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    static const size_t lens[] = {3 * 4096 - 1, 3 * 4096, 3 * 4096 + 1, 3 * 4096 + 7, 6 * 4096, 6 * 4096 + 8,
                                  9 * 4096 - 3, 15 * 4096, LEN};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        for (size_t off = 0; off < 8; off += 3)
            for (uint32_t start = 0; start < 3; start++) {
                uint32_t seed = start * 0x9E3779B9u;
                cr_assert_eq(hx_crc32c(seed, buf + off, lens[k]), hx_crc32c_portable(seed, buf + off, lens[k]),
                             "length %zu, offset %zu, start crc %08x", lens[k], off, seed);
            }
    /* split anywhere: the same as in one go */
    uint32_t whole = hx_crc32c(0, buf, LEN);
    for (size_t cut = 0; cut <= LEN; cut += 4093)
        cr_assert_eq(hx_crc32c(hx_crc32c(0, buf, cut), buf + cut, LEN - cut), whole);
    free(buf);
}

#include <criterion/redirect.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hx_opt.h"

/* An option table with every kind, as a program declares one. */
enum { T_SEED, T_COUNT, T_NAME, T_QUIET, T_N };
static const hx_opt_t topts[T_N] = {
    [T_SEED] = {"seed", HX_OPT_U64, "HX_TEST_SEED", "1", 0, UINT64_MAX, "S", "random seed"},
    [T_COUNT] = {"count", HX_OPT_U64, NULL, NULL, 5, UINT64_C(5000000000), "N", "how many"},
    [T_NAME] = {"name", HX_OPT_TEXT, NULL, "x", 0, 0, "TEXT", "a name"},
    [T_QUIET] = {"quiet", HX_OPT_FLAG, "HX_TEST_QUIET", NULL, 0, 0, NULL, "say less"},
};

/* hx_opt_parse on "prog" + args (NULL-terminated), what it printed to stderr in err. */
static int parse_opts(const char *const *args, hx_opt_val_t *v, char *err, size_t cap)
{
    char *argv[16] = {"prog"};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *tmp = tmpfile();
    cr_assert(saved >= 0 && tmp);
    cr_assert_geq(dup2(fileno(tmp), STDERR_FILENO), 0);
    int rc = hx_opt_parse("prog", topts, T_N, argc, argv, NULL, NULL, v);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(err, 1, cap - 1, tmp);
    err[n] = '\0';
    fclose(tmp);
    return rc;
}

Test(opt, u64_from_flag_environment_or_default)
{
    hx_opt_val_t v[T_N];
    char err[256];
    unsetenv("HX_TEST_SEED");
    cr_assert_eq(parse_opts((const char *[]){NULL}, v, err, sizeof err), 0, "%s", err);
    cr_expect_eq(v[T_SEED].u64, 1);
    cr_expect_not(v[T_SEED].given);
    cr_expect_null(v[T_COUNT].text, "no default, not given: no value");
    cr_expect_eq(v[T_COUNT].u64, 0);

    setenv("HX_TEST_SEED", "18446744073709551615", 1);
    cr_assert_eq(parse_opts((const char *[]){"--count", "5000000000", NULL}, v, err, sizeof err), 0, "%s", err);
    cr_expect_eq(v[T_SEED].u64, UINT64_MAX, "the largest value, from the environment");
    cr_expect(v[T_SEED].given && v[T_SEED].from_env);
    cr_expect_eq(v[T_COUNT].u64, UINT64_C(5000000000), "above 32 bits");
    cr_expect(v[T_COUNT].given);
    cr_expect_not(v[T_COUNT].from_env, "given by its flag");

    cr_assert_eq(parse_opts((const char *[]){"--seed=0", "--count", "5", NULL}, v, err, sizeof err), 0, "%s", err);
    cr_expect_eq(v[T_SEED].u64, 0, "the flag wins over the environment");
    cr_expect(v[T_SEED].given && !v[T_SEED].from_env);
    cr_expect_eq(v[T_COUNT].u64, 5, "the minimum");
    cr_expect_str_empty(err);
    unsetenv("HX_TEST_SEED");
}

/* Every refusal names the option, the bounds and the value, and nothing is accepted that is
 * not plain digits in range: strtoull's leading blanks, signs and wrap-around are not. */
Test(opt, u64_refusals_name_the_option_and_the_value)
{
    static const struct {
        const char *flag, *value, *why;
    } bad[] = {
        {"--count", "4", "prog: --count: must be an integer from 5 to 5000000000, got '4'\n"},
        {"--count", "5000000001", "prog: --count: must be an integer from 5 to 5000000000, got '5000000001'\n"},
        {"--seed", "18446744073709551616",
         "prog: --seed: must be an integer from 0 to 18446744073709551615, got '18446744073709551616'\n"},
        {"--seed", "99999999999999999999999",
         "prog: --seed: must be an integer from 0 to 18446744073709551615, got '99999999999999999999999'\n"},
        {"--seed", "-1", "prog: --seed: must be an integer from 0 to 18446744073709551615, got '-1'\n"},
        {"--seed", " -1", "prog: --seed: must be an integer from 0 to 18446744073709551615, got ' -1'\n"},
        {"--seed", "+1", "prog: --seed: must be an integer from 0 to 18446744073709551615, got '+1'\n"},
        {"--seed", " 1", "prog: --seed: must be an integer from 0 to 18446744073709551615, got ' 1'\n"},
        {"--seed", "1x", "prog: --seed: must be an integer from 0 to 18446744073709551615, got '1x'\n"},
        {"--seed", "0x10", "prog: --seed: must be an integer from 0 to 18446744073709551615, got '0x10'\n"},
        {"--seed", "", "prog: --seed: must be an integer from 0 to 18446744073709551615, got ''\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hx_opt_val_t v[T_N];
        char err[256];
        int rc = parse_opts((const char *[]){bad[i].flag, bad[i].value, NULL}, v, err, sizeof err);
        cr_expect_eq(rc, 2, "%s '%s' refused", bad[i].flag, bad[i].value);
        cr_expect_str_eq(err, bad[i].why);
    }
    hx_opt_val_t v[T_N];
    char err[256];
    setenv("HX_TEST_SEED", "7 ", 1);
    cr_expect_eq(parse_opts((const char *[]){NULL}, v, err, sizeof err), 2, "from the environment too");
    cr_expect_str_eq(err, "prog: --seed: must be an integer from 0 to 18446744073709551615, got '7 '\n");
    unsetenv("HX_TEST_SEED");
    cr_expect_eq(parse_opts((const char *[]){"--count", NULL}, v, err, sizeof err), 2);
    cr_expect_str_eq(err, "prog: --count needs a value (see --help)\n");
}

Test(opt, u64_checked_alone)
{
    uint64_t out = 42;
    cr_expect_eq(hx_opt_u64("p", "seed", "18446744073709551615", 0, UINT64_MAX, &out), 0);
    cr_expect_eq(out, UINT64_MAX);
    cr_expect_eq(hx_opt_u64("p", "seed", "007", 7, 7, &out), 0, "leading zeros are digits");
    cr_expect_eq(out, 7);
    out = 42;
    cr_redirect_stderr();
    cr_expect_eq(hx_opt_u64("p", "seed", NULL, 0, 1, &out), -1);
    cr_expect_eq(out, 42, "left alone on error");
}

/* A flag is on when given, or when its variable says 1, true, yes or on; 0, false, no, off
 * leave it off; anything else is refused naming the variable. */
Test(opt, flag_from_flag_or_environment)
{
    hx_opt_val_t v[T_N];
    char err[256];
    unsetenv("HX_TEST_QUIET");
    cr_assert_eq(parse_opts((const char *[]){NULL}, v, err, sizeof err), 0, "%s", err);
    cr_expect_not(v[T_QUIET].on);
    cr_assert_eq(parse_opts((const char *[]){"--quiet", NULL}, v, err, sizeof err), 0, "%s", err);
    cr_expect(v[T_QUIET].on);
    static const char *const yes[] = {"1", "true", "YES", "on"}, *const no[] = {"0", "false", "No", "off"};
    for (size_t i = 0; i < 4; i++) {
        setenv("HX_TEST_QUIET", yes[i], 1);
        cr_assert_eq(parse_opts((const char *[]){NULL}, v, err, sizeof err), 0, "%s", err);
        cr_expect(v[T_QUIET].on, "%s", yes[i]);
        cr_expect(v[T_QUIET].given && v[T_QUIET].from_env);
        setenv("HX_TEST_QUIET", no[i], 1);
        cr_assert_eq(parse_opts((const char *[]){NULL}, v, err, sizeof err), 0, "%s", err);
        cr_expect_not(v[T_QUIET].on, "%s", no[i]);
    }
    setenv("HX_TEST_QUIET", "0", 1);
    cr_assert_eq(parse_opts((const char *[]){"--quiet", NULL}, v, err, sizeof err), 0, "%s", err);
    cr_expect(v[T_QUIET].on, "the flag wins over the environment");
    setenv("HX_TEST_QUIET", "maybe", 1);
    cr_expect_eq(parse_opts((const char *[]){NULL}, v, err, sizeof err), 2);
    cr_expect_str_eq(err, "prog: HX_TEST_QUIET: must be 1, true, yes, on or 0, false, no, off (got 'maybe')\n");
    unsetenv("HX_TEST_QUIET");
}

/* --help lists the U64 option with its argument name and default, like the others. */
Test(opt, help_lists_u64_options, .init = cr_redirect_stdout)
{
    hx_opt_help(stdout, topts, T_N);
    fflush(stdout);
    cr_assert_stdout_eq_str("  --seed S               random seed [HX_TEST_SEED, 1]\n"
                            "  --count N              how many\n"
                            "  --name TEXT            a name [x]\n"
                            "  --quiet                say less [HX_TEST_QUIET]\n"
                            "  -h, --help             this text\n");
}

/* U32 options are checked as U64 ones are: plain digits in range, the bounds in the refusal. */
Test(opt, u32_takes_plain_digits_only)
{
    uint32_t out = 42;
    cr_expect_eq(hx_opt_u32("p", "--credit", "1000", 0, 1000, &out), 0);
    cr_expect_eq(out, 1000);
    const char *bad[] = {"+5", " 5", "5 ", "-0", "0x5", "1001", "4294967296", ""};
    cr_redirect_stderr();
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        out = 42;
        cr_expect_eq(hx_opt_u32("p", "--credit", bad[i], 0, 1000, &out), -1, "'%s' refused", bad[i]);
        cr_expect_eq(out, 42, "'%s': left alone on error", bad[i]);
    }
    fflush(stderr);
    cr_expect_stderr_eq_str("p: --credit: must be an integer from 0 to 1000, got '+5'\n"
                            "p: --credit: must be an integer from 0 to 1000, got ' 5'\n"
                            "p: --credit: must be an integer from 0 to 1000, got '5 '\n"
                            "p: --credit: must be an integer from 0 to 1000, got '-0'\n"
                            "p: --credit: must be an integer from 0 to 1000, got '0x5'\n"
                            "p: --credit: must be an integer from 0 to 1000, got '1001'\n"
                            "p: --credit: must be an integer from 0 to 1000, got '4294967296'\n"
                            "p: --credit: must be an integer from 0 to 1000, got ''\n");
}
