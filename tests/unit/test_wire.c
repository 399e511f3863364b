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
Test(idmap, agrees_with_a_plain_array)
{
    enum { N = 20000 };
    static uint8_t recs[N][HX_ID_LEN];
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
    hx_idmap_free(&m);
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
