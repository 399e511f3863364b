/* bench_conn — a lean client of the broker protocol (docs/PROTOCOL.md) for measuring it:
 * one DEALER per session, SUBMITs packed once and patched per message, replies read in
 * place without unpacking, plus filling a mailbox and draining it with checks. */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void *zctx;
static pthread_mutex_t zctx_lock = PTHREAD_MUTEX_INITIALIZER;

void *bench_zctx(void)
{
    pthread_mutex_lock(&zctx_lock);
    if (!zctx) {
        zctx = zmq_ctx_new();
        int n = 1;                              /* 2 cores: the broker needs the other */
        zmq_ctx_set(zctx, ZMQ_IO_THREADS, n);
    }
    pthread_mutex_unlock(&zctx_lock);
    return zctx;
}

void bench_zctx_term(void)
{
    if (zctx)
        zmq_ctx_term(zctx);
    zctx = NULL;
}

/* ---- reading protobuf in place (hx_wire_next_field) ------------------------------------- */

bool bench_reply_scan(const uint8_t *p, size_t len, bench_reply_t *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *end = p + len;
    hx_wire_field_t f;
    while (p < end) {
        if (!hx_wire_next_field(&p, end, &f))
            return false;
        if (f.num == 2 && f.wire == 0)
            out->kind = (uint32_t)f.v;
        else if (f.num == 4 && f.wire == 2 && f.len == HX_ID_LEN)
            out->corr = f.data;
        else if (f.num == 14 && f.wire == 0)
            out->error_code = (uint32_t)f.v;
        else if (f.num == 15 && f.wire == 2) {
            out->text = f.data;
            out->text_len = f.len;
        }
    }
    return true;
}

/* Calls fn for each message of a packed DELIVER: its id, attempt, type and payload. */
typedef void (*msg_fn)(void *arg, const uint8_t *id, uint32_t attempt);

static int each_message(const uint8_t *p, size_t len, msg_fn fn, void *arg)
{
    const uint8_t *end = p + len;
    hx_wire_field_t f;
    int n = 0;
    while (p < end) {
        if (!hx_wire_next_field(&p, end, &f))
            return -1;
        if (f.num != 11 || f.wire != 2)
            continue;
        const uint8_t *q = f.data, *qend = f.data + f.len;
        const uint8_t *id = NULL;
        uint32_t attempt = 0;
        hx_wire_field_t g;
        while (q < qend) {
            if (!hx_wire_next_field(&q, qend, &g))
                return -1;
            if (g.num == 1 && g.wire == 2 && g.len == HX_ID_LEN)
                id = g.data;
            else if (g.num == 7 && g.wire == 0)
                attempt = (uint32_t)g.v;          /* the last one counts (hx_wire_append_message) */
        }
        if (id)
            fn(arg, id, attempt);
        n++;
    }
    return n;
}

/* ---- ids ------------------------------------------------------------------------------------- */

void bench_id(uint8_t id[HX_ID_LEN], uint32_t stream, uint64_t seq)
{
    memcpy(id, "HXBN", 4);
    for (int i = 0; i < 4; i++)
        id[4 + i] = (uint8_t)(stream >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        id[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

bool bench_id_parse(const uint8_t id[HX_ID_LEN], uint32_t *stream, uint64_t *seq)
{
    if (memcmp(id, "HXBN", 4) != 0)
        return false;
    uint32_t s = 0;
    uint64_t q = 0;
    for (int i = 0; i < 4; i++)
        s = s << 8 | id[4 + i];
    for (int i = 0; i < 8; i++)
        q = q << 8 | id[8 + i];
    *stream = s;
    *seq = q;
    return true;
}

/* ---- connections -------------------------------------------------------------------------------- */

int bench_conn_send(bench_conn_t *c, const void *data, size_t len)
{
    for (;;) {
        if (zmq_send(c->sock, data, len, 0) >= 0)
            break;
        if (errno != EINTR || bench_stop)
            return -1;
    }
    c->last_send_ns = bench_now_ns();
    return 0;
}

int bench_conn_send_env(bench_conn_t *c, const Handoff__Envelope *env, hx_buf_t *scratch)
{
    if (hx_wire_pack(env, scratch))
        return -1;
    return bench_conn_send(c, scratch->data, scratch->len);
}

void bench_conn_keepalive(bench_conn_t *c, uint64_t now_ns)
{
    if (now_ns - c->last_send_ns < 500ull * 1000000u)
        return;
    static const uint8_t hb[] = {0x08, 0x01, 0x10, HANDOFF__KIND__KIND_HEARTBEAT};   /* version 1, kind */
    bench_conn_send(c, hb, sizeof hb);
}

int bench_conn_recv(bench_conn_t *c, void *zmsg, int timeout_ms)
{
    zmq_msg_t *m = zmsg;
    uint64_t deadline = timeout_ms > 0 ? bench_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        if (bench_stop)
            return -1;
        int rc = zmq_msg_recv(m, c->sock, ZMQ_DONTWAIT);    /* first without a poll: often ready */
        if (rc >= 0) {
            bench_reply_t r;
            if (bench_reply_scan(zmq_msg_data(m), zmq_msg_size(m), &r) && r.kind == HANDOFF__KIND__KIND_HEARTBEAT)
                continue;
            return 1;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        int left = -1;
        if (timeout_ms == 0) {
            left = 0;
        } else if (timeout_ms > 0) {
            uint64_t now = bench_now_ns();
            if (now >= deadline)
                return 0;
            left = (int)((deadline - now) / 1000000u) + 1;
        }
        if (left != 0) {
            /* wake at least every 100 ms to notice a signal and to send heartbeats */
            zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
            rc = zmq_poll(&it, 1, left < 0 || left > 100 ? 100 : left);
            if (rc < 0 && errno != EINTR)
                return -1;
            bench_conn_keepalive(c, bench_now_ns());
            continue;
        }
        if (timeout_ms == 0)
            return 0;
    }
}

int bench_conn_open(bench_conn_t *c, bench_env_t *e, Handoff__Role role, const char *name, uint32_t credit)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->sock = zmq_socket(bench_zctx(), ZMQ_DEALER);
    if (!c->sock)
        return -1;
    int zero = 0, hwm = 0;                      /* unbounded queues: the window bounds them */
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (e->o->curve) {
        char pub[41], sec[41];
        if (bench_key_for(e, role == HANDOFF__ROLE__ROLE_WORKER  ? "service"
                                  : role == HANDOFF__ROLE__ROLE_ADMIN ? "admin"
                                                                      : "clinic",
                              name, pub, sec, NULL, 0))
            goto fail;
        zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, e->server_pub, 40);
        zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    if (zmq_connect(c->sock, e->endpoint) != 0) {
        fprintf(stderr, "%s: connect %s: %s\n", BENCH_PROG, e->endpoint, zmq_strerror(errno));
        goto fail;
    }
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    Handoff__Envelope hello = HANDOFF__ENVELOPE__INIT;
    hello.version = HX_PROTOCOL_VERSION;
    hello.kind = HANDOFF__KIND__KIND_HELLO;
    hello.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    hello.role = role;
    hello.name = c->name;
    hello.credit = credit;
    hx_buf_t b = {0};
    int rc = bench_conn_send_env(c, &hello, &b);
    hx_buf_free(&b);
    if (rc)
        goto fail;
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t deadline = bench_now_ns() + 10ull * 1000000000u;
    while (bench_now_ns() < deadline) {
        rc = bench_conn_recv(c, &m, 1000);
        if (rc < 0)
            break;
        bench_reply_t r;
        if (rc == 1 && bench_reply_scan(zmq_msg_data(&m), zmq_msg_size(&m), &r) && r.corr &&
            memcmp(r.corr, id, HX_ID_LEN) == 0) {
            if (r.kind == HANDOFF__KIND__KIND_WELCOME) {
                zmq_msg_close(&m);
                return 0;
            }
            if (!e->probing)
                fprintf(stderr, "%s: HELLO as %s refused: %.*s\n", BENCH_PROG, name, (int)r.text_len,
                        (const char *)r.text);
            break;
        }
    }
    zmq_msg_close(&m);
    if (!bench_stop && rc >= 0 && !e->probing)
        fprintf(stderr, "%s: no WELCOME for %s from %s\n", BENCH_PROG, name, e->endpoint);
fail:
    zmq_close(c->sock);
    c->sock = NULL;
    return -1;
}

void bench_conn_close(bench_conn_t *c)
{
    if (!c->sock)
        return;
    static const uint8_t bye[] = {0x08, 0x01, 0x10, HANDOFF__KIND__KIND_BYE};
    zmq_send(c->sock, bye, sizeof bye, ZMQ_DONTWAIT);
    int linger = 200;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(c->sock);
    c->sock = NULL;
}

/* ---- prepacked SUBMIT ------------------------------------------------------------------------------- */

static size_t find(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return i;
    return (size_t)-1;
}

int bench_prepack_submit(bench_prepacked_t *pp, Handoff__AddressKind kind, const char *to, const char *type,
                         size_t payload_len, size_t k)
{
    memset(pp, 0, sizeof *pp);
    static const uint8_t env_mark[HX_ID_LEN] = "\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef\xf0";
    uint8_t *payload = malloc(payload_len ? payload_len : 1);
    Handoff__Message *ms = calloc(k, sizeof *ms);
    Handoff__Message **mp = calloc(k, sizeof *mp);
    uint8_t (*marks)[HX_ID_LEN] = calloc(k, HX_ID_LEN);
    pp->msg_id_off = calloc(k, sizeof *pp->msg_id_off);
    pp->k = k;
    int rc = -1;
    if (!payload || !ms || !mp || !marks || !pp->msg_id_off)
        goto out;
    for (size_t i = 0; i < payload_len; i++)    /* not all zeros, not compressible */
        payload[i] = (uint8_t)(i * 2654435761u >> 13);
    Handoff__Address addr = HANDOFF__ADDRESS__INIT;
    addr.kind = kind;
    addr.name = (char *)to;
    for (size_t i = 0; i < k; i++) {
        memcpy(marks[i], "\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc", 12);
        marks[i][12] = 0xc5;
        marks[i][13] = (uint8_t)(i >> 8);
        marks[i][14] = (uint8_t)i;
        marks[i][15] = 0xc6;
        handoff__message__init(&ms[i]);
        ms[i].id = (ProtobufCBinaryData){HX_ID_LEN, marks[i]};
        ms[i].to = &addr;
        ms[i].type = (char *)type;
        ms[i].payload = (ProtobufCBinaryData){payload_len, payload};
        mp[i] = &ms[i];
    }
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = HX_PROTOCOL_VERSION;
    env.kind = HANDOFF__KIND__KIND_SUBMIT;
    env.id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)env_mark};
    env.n_messages = k;
    env.messages = mp;
    if (hx_wire_pack(&env, &pp->buf))
        goto out;
    pp->env_id_off = find(pp->buf.data, pp->buf.len, env_mark, HX_ID_LEN);
    rc = pp->env_id_off == (size_t)-1 ? -1 : 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        size_t from = i ? pp->msg_id_off[i - 1] + HX_ID_LEN : 0;    /* packed in order */
        size_t at = find(pp->buf.data + from, pp->buf.len - from, marks[i], HX_ID_LEN);
        if (at == (size_t)-1)
            rc = -1;
        else
            pp->msg_id_off[i] = from + at;
    }
out:
    free(payload);
    free(ms);
    free(mp);
    free(marks);
    return rc;
}

void bench_prepack_set_ids(bench_prepacked_t *pp, const uint8_t (*ids)[HX_ID_LEN])
{
    memcpy(pp->buf.data + pp->env_id_off, ids[0], HX_ID_LEN);   /* a stable request id: the first message's */
    for (size_t i = 0; i < pp->k; i++)
        memcpy(pp->buf.data + pp->msg_id_off[i], ids[i], HX_ID_LEN);
}

void bench_prepack_free(bench_prepacked_t *pp)
{
    hx_buf_free(&pp->buf);
    free(pp->msg_id_off);
    pp->msg_id_off = NULL;
}

/* ---- fill -------------------------------------------------------------------------------------------- */

/* A filler's state: one session, SUBMITs of up to `per` messages, at most FILL_WINDOW of them
 * unanswered. A request's index rides in its id's sequence, so its ACCEPTED says how many
 * messages it carried. */
#define FILL_WINDOW 8
#define FILL_STREAM 0xF111u

typedef struct {
    bench_conn_t c;
    const char *mailbox;
    uint32_t stream;
    uint64_t n;
    size_t per;
    uint8_t *payload;
    uint32_t size;
    Handoff__Message *ms;
    Handoff__Message **mp;
    uint8_t (*ids)[HX_ID_LEN];
    Handoff__Address addr;
    hx_buf_t buf;
    uint64_t sent, accepted, outstanding, reqs_sent;
} filler_t;

/* Sends the next SUBMIT: messages [sent, sent + k) of the stream. */
static int fill_send(filler_t *f)
{
    size_t k = f->n - f->sent < f->per ? (size_t)(f->n - f->sent) : f->per;
    for (size_t i = 0; i < k; i++) {
        handoff__message__init(&f->ms[i]);
        bench_id(f->ids[i], f->stream, f->sent + i);
        f->ms[i].id = (ProtobufCBinaryData){HX_ID_LEN, f->ids[i]};
        f->ms[i].to = &f->addr;
        f->ms[i].type = "bench";
        f->ms[i].payload = (ProtobufCBinaryData){f->size, f->payload};
        f->mp[i] = &f->ms[i];
    }
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = HX_PROTOCOL_VERSION;
    env.kind = HANDOFF__KIND__KIND_SUBMIT;
    uint8_t rid[HX_ID_LEN];
    bench_id(rid, FILL_STREAM, f->reqs_sent);
    env.id = (ProtobufCBinaryData){HX_ID_LEN, rid};
    env.n_messages = k;
    env.messages = f->mp;
    if (bench_conn_send_env(&f->c, &env, &f->buf))
        return -1;
    f->sent += k;
    f->reqs_sent++;
    f->outstanding++;
    return 0;
}

/* Counts one reply; -1 (reason on stderr) when the broker refused. */
static int fill_take(filler_t *f, zmq_msg_t *m)
{
    bench_reply_t rep;
    if (!bench_reply_scan(zmq_msg_data(m), zmq_msg_size(m), &rep))
        return 0;
    if (rep.kind == HANDOFF__KIND__KIND_ERROR) {
        fprintf(stderr, "%s: filling %s refused: %.*s\n", BENCH_PROG, f->mailbox, (int)rep.text_len,
                (const char *)rep.text);
        return -1;
    }
    uint32_t st;
    uint64_t idx;
    if (rep.kind == HANDOFF__KIND__KIND_ACCEPTED && rep.corr && bench_id_parse(rep.corr, &st, &idx) &&
        st == FILL_STREAM) {
        uint64_t first = idx * f->per;
        f->accepted += f->n - first < f->per ? f->n - first : f->per;
        f->outstanding--;
    }
    return 0;
}

int bench_fill(bench_env_t *e, const char *mailbox, uint32_t stream, uint64_t n, uint32_t size)
{
    filler_t f = {.mailbox = mailbox, .stream = stream, .n = n, .size = size};
    char name[80];
    snprintf(name, sizeof name, "%s-filler", mailbox);
    if (bench_conn_open(&f.c, e, HANDOFF__ROLE__ROLE_CLINIC, name, 0))
        return -1;
    /* as many messages per SUBMIT as fit well under the 1 MiB frame bound */
    f.per = (768u * 1024u) / (size + 64u);
    if (f.per > HX_MAX_BATCH)
        f.per = HX_MAX_BATCH;
    if (f.per < 1)
        f.per = 1;
    f.payload = malloc(size ? size : 1);
    f.ms = calloc(f.per, sizeof *f.ms);
    f.mp = calloc(f.per, sizeof *f.mp);
    f.ids = calloc(f.per, HX_ID_LEN);
    handoff__address__init(&f.addr);
    f.addr.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    f.addr.name = (char *)mailbox;
    int rc = -1;
    if (f.payload && f.ms && f.mp && f.ids) {
        for (size_t i = 0; i < size; i++)
            f.payload[i] = (uint8_t)(i * 2654435761u >> 13);
        zmq_msg_t m;
        zmq_msg_init(&m);
        rc = 0;
        while (rc == 0 && f.accepted < n && !bench_stop) {
            while (rc == 0 && f.outstanding < FILL_WINDOW && f.sent < n)
                rc = fill_send(&f);
            if (rc)
                break;
            if (bench_conn_recv(&f.c, &m, 60000) <= 0) {
                fprintf(stderr, "%s: filling %s: no answer from the broker\n", BENCH_PROG, mailbox);
                rc = -1;
                break;
            }
            rc = fill_take(&f, &m);
        }
        if (rc == 0 && f.accepted != n)
            rc = -1;
        zmq_msg_close(&m);
    }
    bench_conn_close(&f.c);
    hx_buf_free(&f.buf);
    free(f.payload);
    free(f.ms);
    free(f.mp);
    free(f.ids);
    return rc;
}

/* ---- drain ------------------------------------------------------------------------------------------- */

typedef struct {
    bench_env_t *e;
    const char *mailbox;
    uint32_t stream, batch;
    uint64_t n;
    _Atomic uint8_t *seen;
    _Atomic uint64_t *delivered, *duplicated, *foreign, *acked;
    int failed;
    int index;
} drain_arg_t;

typedef struct {
    drain_arg_t *a;
    uint8_t (*ids)[HX_ID_LEN];
    size_t n_ids;
} drain_batch_t;

static void on_delivered(void *arg, const uint8_t *id, uint32_t attempt)
{
    (void)attempt;
    drain_batch_t *b = arg;
    drain_arg_t *a = b->a;
    memcpy(b->ids[b->n_ids++], id, HX_ID_LEN);
    uint32_t st;
    uint64_t seq;
    if (!bench_id_parse(id, &st, &seq) || st != a->stream || seq >= a->n) {
        atomic_fetch_add(a->foreign, 1);
        return;
    }
    if (atomic_fetch_add(&a->seen[seq], 1) > 0)
        atomic_fetch_add(a->duplicated, 1);
    else
        atomic_fetch_add(a->delivered, 1);
}

/* One draining session: at most one FETCH and two ACKs (one FETCH rides along) unanswered. */
typedef struct {
    drain_arg_t *a;
    bench_conn_t c;
    drain_batch_t b;            /* the ids of the DELIVER being handled */
    ProtobufCBinaryData *acks;
    hx_buf_t buf;
    uint64_t req;               /* requests sent: the sequence of their ids */
    int acks_out;               /* ACKs not yet ACCEPTED */
    bool fetch_out;
    uint32_t empties;           /* DELIVERs in a row with nothing (the rest is held by others) */
} drainer_t;

static int drain_fetch(drainer_t *d)
{
    Handoff__Envelope f = HANDOFF__ENVELOPE__INIT;
    uint8_t id[HX_ID_LEN];
    bench_id(id, 0xFE00u + (uint32_t)d->a->index, d->req++);
    f.version = HX_PROTOCOL_VERSION;
    f.kind = HANDOFF__KIND__KIND_FETCH;
    f.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    f.max = d->a->batch;
    if (bench_conn_send_env(&d->c, &f, &d->buf))
        return -1;
    d->fetch_out = true;
    return 0;
}

/* Acks every message of the DELIVER just read (d->b). */
static int drain_ack(drainer_t *d)
{
    for (size_t i = 0; i < d->b.n_ids; i++)
        d->acks[i] = (ProtobufCBinaryData){HX_ID_LEN, d->b.ids[i]};
    Handoff__Envelope ack = HANDOFF__ENVELOPE__INIT;
    uint8_t id[HX_ID_LEN];
    bench_id(id, 0xFD00u + (uint32_t)d->a->index, d->req++);
    ack.version = HX_PROTOCOL_VERSION;
    ack.kind = HANDOFF__KIND__KIND_ACK;
    ack.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    ack.n_acks = d->b.n_ids;
    ack.acks = d->acks;
    if (bench_conn_send_env(&d->c, &ack, &d->buf))
        return -1;
    d->acks_out++;
    return 0;
}

/* One reply: an ACCEPTED for an ACK, or a DELIVER to check and ack. -1 (reason on stderr)
 * on a refusal or a DELIVER that does not decode. */
static int drain_take(drainer_t *d, zmq_msg_t *m)
{
    drain_arg_t *a = d->a;
    bench_reply_t rep;
    if (!bench_reply_scan(zmq_msg_data(m), zmq_msg_size(m), &rep))
        return 0;
    if (rep.kind == HANDOFF__KIND__KIND_ERROR) {
        fprintf(stderr, "%s: draining %s refused: %.*s\n", BENCH_PROG, a->mailbox, (int)rep.text_len,
                (const char *)rep.text);
        return -1;
    }
    if (rep.kind == HANDOFF__KIND__KIND_ACCEPTED) {
        atomic_fetch_add(a->acked, 1);
        d->acks_out--;
        return 0;
    }
    if (rep.kind != HANDOFF__KIND__KIND_DELIVER)
        return 0;
    d->fetch_out = false;
    d->b.n_ids = 0;
    if (each_message(zmq_msg_data(m), zmq_msg_size(m), on_delivered, &d->b) < 0) {
        fprintf(stderr, "%s: draining %s: a DELIVER that does not decode\n", BENCH_PROG, a->mailbox);
        return -1;
    }
    if (d->b.n_ids == 0) {                      /* the rest is held by other sessions */
        if (++d->empties > 1)
            bench_sleep_ns(200000);
        return 0;
    }
    d->empties = 0;
    return drain_ack(d);
}

static void *drain_worker(void *arg)
{
    drain_arg_t *a = arg;
    drainer_t d = {.a = a};
    if (bench_conn_open(&d.c, a->e, HANDOFF__ROLE__ROLE_CLINIC, a->mailbox, 0)) {
        a->failed = 1;
        return NULL;
    }
    d.b = (drain_batch_t){a, calloc(a->batch, HX_ID_LEN), 0};
    d.acks = calloc(a->batch, sizeof *d.acks);
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = d.b.ids && d.acks ? 0 : -1;
    while (rc == 0) {
        if (bench_stop) {
            rc = -1;
            break;
        }
        bool done = atomic_load(a->delivered) + atomic_load(a->foreign) >= a->n;
        if (done && d.acks_out == 0 && !d.fetch_out)
            break;
        if (!d.fetch_out && !done && d.acks_out < 2 && drain_fetch(&d)) {
            rc = -1;
            break;
        }
        if (bench_conn_recv(&d.c, &m, 60000) <= 0) {
            fprintf(stderr, "%s: draining %s: no answer from the broker\n", BENCH_PROG, a->mailbox);
            rc = -1;
            break;
        }
        rc = drain_take(&d, &m);
    }
    if (rc)
        a->failed = 1;
    zmq_msg_close(&m);
    hx_buf_free(&d.buf);
    free(d.b.ids);
    free(d.acks);
    bench_conn_close(&d.c);
    return NULL;
}

/* One more session FETCHes from the drained mailbox: out->leftover is what it still finds
 * (counted against the ids, so a message delivered twice shows in out->duplicated). */
static void find_leftover(bench_env_t *e, const char *mailbox, drain_arg_t *counts, bench_drain_t *out)
{
    bench_conn_t c;
    if (bench_conn_open(&c, e, HANDOFF__ROLE__ROLE_CLINIC, mailbox, 0) != 0)
        return;
    Handoff__Envelope f = HANDOFF__ENVELOPE__INIT;
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    f.version = HX_PROTOCOL_VERSION;
    f.kind = HANDOFF__KIND__KIND_FETCH;
    f.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    f.max = HX_MAX_BATCH;
    hx_buf_t buf = {0};
    zmq_msg_t m;
    zmq_msg_init(&m);
    bench_reply_t rep;
    if (bench_conn_send_env(&c, &f, &buf) == 0 && bench_conn_recv(&c, &m, 10000) == 1 &&
        bench_reply_scan(zmq_msg_data(&m), zmq_msg_size(&m), &rep) && rep.kind == HANDOFF__KIND__KIND_DELIVER) {
        drain_batch_t b = {counts, calloc(HX_MAX_BATCH, HX_ID_LEN), 0};
        if (b.ids) {
            each_message(zmq_msg_data(&m), zmq_msg_size(&m), on_delivered, &b);
            out->leftover = b.n_ids;
            out->duplicated = atomic_load(counts->duplicated);
        }
        free(b.ids);
    }
    zmq_msg_close(&m);
    hx_buf_free(&buf);
    bench_conn_close(&c);
}

int bench_drain(bench_env_t *e, const char *mailbox, uint32_t stream, uint64_t n, uint32_t workers, uint32_t batch,
                bench_drain_t *out)
{
    memset(out, 0, sizeof *out);
    _Atomic uint8_t *seen = calloc(n ? n : 1, 1);
    _Atomic uint64_t delivered = 0, duplicated = 0, foreign = 0, acked = 0;
    drain_arg_t *args = calloc(workers, sizeof *args);
    pthread_t *th = calloc(workers, sizeof *th);
    if (!seen || !args || !th) {
        free(seen);
        free(args);
        free(th);
        return -1;
    }
    uint64_t t0 = bench_now_ns();
    int failed = 0;
    uint32_t started = 0;
    for (uint32_t i = 0; i < workers; i++) {
        args[i] = (drain_arg_t){e, mailbox, stream, batch, n, seen, &delivered, &duplicated, &foreign, &acked, 0,
                                (int)i};
        if (pthread_create(&th[i], NULL, drain_worker, &args[i]) != 0) {
            failed = 1;
            break;
        }
        started++;
    }
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        failed |= args[i].failed;
    }
    out->seconds = (double)(bench_now_ns() - t0) / 1e9;
    out->delivered = atomic_load(&delivered);
    out->duplicated = atomic_load(&duplicated);
    out->foreign = atomic_load(&foreign);
    for (uint64_t i = 0; i < n; i++)
        if (atomic_load(&seen[i]) == 0)
            out->lost++;
    /* nothing may be left behind: one more session must find the mailbox empty */
    if (!failed && !bench_stop) {
        drain_arg_t counts = {.stream = stream, .n = n, .seen = seen, .delivered = &delivered,
                              .duplicated = &duplicated, .foreign = &foreign};
        find_leftover(e, mailbox, &counts, out);
    }
    free(seen);
    free(args);
    free(th);
    return failed || bench_stop ? -1 : 0;
}
