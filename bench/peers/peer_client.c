/* handoff-bench-peer — the peers' half of `make bench-peers`: the same two measurements as
 * handoff-bench's submit and deliver modes, made against RabbitMQ (AMQP 0-9-1, librabbitmq)
 * or NATS JetStream (libnats) already running on 127.0.0.1. One connection, one producer,
 * W publishes outstanding; each payload starts with its sequence number so that every
 * message can be checked as it is confirmed or delivered. One JSON line on stdout. */
#include "hx_opt.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <nats/nats.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define PROG "handoff-bench-peer"
#define STR(x) STR_(x)
#define STR_(x) #x
#define SEQ_BYTES 8                             /* the sequence number at the payload's start */
#define MAX_SIZE 900000                         /* as handoff-bench: the same message sizes */
#define MAX_COUNT 100000000
#define IDLE_S 30                               /* no confirm / delivery this long: give up */
#define CHANNEL_PUB 1                           /* RabbitMQ: confirm-mode channel */
#define CHANNEL_SUB 2                           /* RabbitMQ: first consuming channel */
#define MAX_CONSUMERS 16

static const char usage_head[] =
    "usage: handoff-bench-peer --peer rabbitmq|nats --port N [options]\n"
    "\n"
    "The peers' half of `make bench-peers` (bench/peers/peers.py starts the servers): the\n"
    "measurements of handoff-bench's submit and deliver modes against a RabbitMQ or NATS\n"
    "JetStream server on 127.0.0.1:PORT. One connection; each payload begins with its\n"
    "sequence number, so each message is checked as it is confirmed or delivered.\n"
    "\n"
    "ops:\n"
    "  submit   a fresh durable queue (RabbitMQ: classic, durable; persistent messages,\n"
    "           publisher confirms) or stream (NATS: file storage, work-queue retention,\n"
    "           one subject); --count messages with at most --window unconfirmed:\n"
    "           throughput and publish->confirm latency\n"
    "  deliver  fills a fresh queue/stream the same way (not timed), then --consumers\n"
    "           take them all: RabbitMQ basic.consume with manual acks, prefetch\n"
    "           --batch, basic.ack multiple=true every --batch/2 deliveries; NATS a\n"
    "           durable pull consumer (explicit acks), Fetch(--batch), natsMsg_Ack for\n"
    "           each and AckSync for the last, so the clock stops only once the server\n"
    "           has processed every ack. Every sequence number must come back once.\n"
    "\n"
    "options:\n";

static const char usage_tail[] =
    "\n"
    "output: one JSON line on stdout, e.g.\n"
    "  {\"peer\":\"nats\",\"op\":\"submit\",\"messages\":200000,\"seconds\":2.1,\"msgs_per_s\":95000,\n"
    "   \"p50_us\":9000,\"p99_us\":15000,\"lost\":0,\"duplicated\":0,\"ok\":true,...}\n"
    "submit: lost = publishes not confirmed (nack, error, timeout); duplicated = confirmed\n"
    "twice (RabbitMQ) or acked as a duplicate (NATS). deliver: lost = sequence numbers\n"
    "never delivered, duplicated = deliveries beyond the first.\n"
    "exit status: 0 all checked out; 1 something lost, doubled or failed; 2 a bad option.\n";

enum { O_PEER, O_PORT, O_OP, O_COUNT, O_SIZE, O_WINDOW, O_BATCH, O_CONSUMERS, O_QUEUE, O_N };
static const hx_opt_t options[O_N] = {
    [O_PEER] = {"peer", HX_OPT_TEXT, NULL, NULL, 0, 0, "NAME", "rabbitmq or nats (required)"},
    [O_PORT] = {"port", HX_OPT_U32, NULL, NULL, 1, 65535, "N",
                "the server's port on 127.0.0.1: AMQP or NATS client port (required)"},
    [O_OP] = {"op", HX_OPT_TEXT, NULL, "submit", 0, 0, "OP", "submit or deliver"},
    [O_COUNT] = {"count", HX_OPT_U64, NULL, "200000", 1, MAX_COUNT, "N", "messages, 1 to " STR(MAX_COUNT)},
    [O_SIZE] = {"size", HX_OPT_U32, NULL, "1024", SEQ_BYTES, MAX_SIZE, "BYTES",
                "payload, " STR(SEQ_BYTES) " (the sequence number) to " STR(MAX_SIZE)},
    [O_WINDOW] = {"window", HX_OPT_U32, NULL, "1000", 1, 100000, "W",
                  "publishes outstanding (unconfirmed), also while deliver fills, 1 to\n100000"},
    [O_BATCH] = {"batch", HX_OPT_U32, NULL, "100", 1, 65535, "N",
                 "deliver: RabbitMQ prefetch (basic.qos) / NATS Fetch size, 1 to 65535"},
    [O_CONSUMERS] = {"consumers", HX_OPT_U32, NULL, "1", 1, MAX_CONSUMERS, "N",
                     "deliver: consumers taking from the queue at once (handoff-bench's\n"
                     "deliver has 4 sessions): RabbitMQ channels of the one connection,\n"
                     "NATS threads pulling from the one durable consumer; 1 to " STR(MAX_CONSUMERS)},
    [O_QUEUE] = {"queue", HX_OPT_TEXT, NULL, "handoff_bench", 0, 0, "NAME",
                 "queue (RabbitMQ) or stream and subject (NATS); letters, digits, '_'\n"
                 "and '-'; deleted and created afresh"},
};

typedef enum { PEER_RABBITMQ, PEER_NATS } peer_t;
typedef enum { OP_SUBMIT, OP_DELIVER } op_t;

typedef struct {
    peer_t peer;
    op_t op;
    uint16_t port;
    uint64_t count;
    uint32_t size, window, batch, consumers;
    const char *queue;
} opts_t;

/* What one run found; the JSON line is made from it. */
typedef struct {
    uint64_t messages;                          /* confirmed (submit) / delivered (deliver) */
    double seconds;
    uint64_t *lat_ns;                           /* submit: publish->confirm, one per confirm */
    uint64_t nlat;
    uint64_t lost, duplicated;
} result_t;

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void *xcalloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        fail("out of memory for %s (%zu x %zu bytes)", what, n, size);
    return p;
}

/* A payload with seq in its first bytes (host order: both ends are this program). */
static void put_seq(unsigned char *buf, uint64_t seq)
{
    memcpy(buf, &seq, sizeof seq);
}

/* The sequence number of a delivered payload, or UINT64_MAX if it cannot be one of ours. */
static uint64_t get_seq(const void *data, size_t len, uint64_t count)
{
    uint64_t seq;
    if (len < SEQ_BYTES)
        return UINT64_MAX;
    memcpy(&seq, data, sizeof seq);
    return seq < count ? seq : UINT64_MAX;
}

/* Counts one delivery of seq: a second one is a duplicate, a foreign one is reported. */
static void mark_seen(uint8_t *seen, uint64_t seq, result_t *r)
{
    if (seq == UINT64_MAX) {
        fail("deliver: a message whose payload is not one of this run's sequence numbers");
        r->duplicated++;
        return;
    }
    if (seen[seq])
        r->duplicated++;
    else
        seen[seq] = 1;
}

static uint64_t count_missing(const uint8_t *seen, uint64_t count)
{
    uint64_t missing = 0;
    for (uint64_t i = 0; i < count; i++)
        missing += !seen[i];
    return missing;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank) of the sorted v, in microseconds. */
static double pct_us(const uint64_t *v, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1000.0;
}

/* ---- RabbitMQ ----------------------------------------------------------------------------- */

/* Says what an RPC reply means when it is not a success; returns 0 on success, -1 if not. */
static int rmq_ok(amqp_rpc_reply_t r, const char *what)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        fail("rabbitmq: %s: no reply (missing RPC reply type)", what);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        fail("rabbitmq: %s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *c = r.reply.decoded;
            fail("rabbitmq: %s: server closed the connection: %u %.*s", what, c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *c = r.reply.decoded;
            fail("rabbitmq: %s: server closed the channel: %u %.*s", what, c->reply_code,
                 (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else {
            fail("rabbitmq: %s: unexpected server method 0x%08x", what, (unsigned)r.reply.id);
        }
        break;
    }
    return -1;
}

/* Connects as guest (allowed from the loopback only, which is where we are) and opens the
 * two channels. No heartbeats: librabbitmq serves them only inside its own calls, and a
 * run never idles long enough to need them. */
static amqp_connection_state_t rmq_connect(const opts_t *o)
{
    amqp_connection_state_t c = amqp_new_connection();
    if (!c) {
        fail("rabbitmq: amqp_new_connection failed (out of memory)");
        return NULL;
    }
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    if (!s) {
        fail("rabbitmq: amqp_tcp_socket_new failed (out of memory)");
        goto fail;
    }
    int st = amqp_socket_open(s, "127.0.0.1", o->port);
    if (st != AMQP_STATUS_OK) {
        fail("rabbitmq: connecting to 127.0.0.1:%u: %s", o->port, amqp_error_string2(st));
        goto fail;
    }
    if (rmq_ok(amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login as guest"))
        goto fail;
    amqp_channel_open(c, CHANNEL_PUB);
    if (rmq_ok(amqp_get_rpc_reply(c), "channel.open (publishing)"))
        goto fail;
    for (uint32_t i = 0; o->op == OP_DELIVER && i < o->consumers; i++) {
        amqp_channel_open(c, (amqp_channel_t)(CHANNEL_SUB + i));
        if (rmq_ok(amqp_get_rpc_reply(c), "channel.open (consuming)"))
            goto fail;
    }
    return c;
fail:
    amqp_destroy_connection(c);
    return NULL;
}

/* A fresh durable classic queue: what an earlier run left is deleted first. */
static int rmq_fresh_queue(amqp_connection_state_t c, const opts_t *o)
{
    amqp_bytes_t q = amqp_cstring_bytes(o->queue);
    amqp_queue_delete(c, CHANNEL_PUB, q, 0, 0);
    if (rmq_ok(amqp_get_rpc_reply(c), "queue.delete"))
        return -1;
    amqp_queue_declare(c, CHANNEL_PUB, q, 0, 1, 0, 0, amqp_empty_table);
    return rmq_ok(amqp_get_rpc_reply(c), "queue.declare (durable)");
}

/* A method frame that ends the run (channel or connection closed): says why, returns -1. */
static int rmq_closed(const amqp_frame_t *f, const char *what)
{
    if (f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *m = f->payload.method.decoded;
        fail("rabbitmq: %s: server closed channel %u: %u %.*s", what, f->channel, m->reply_code,
             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        return -1;
    }
    if (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = f->payload.method.decoded;
        fail("rabbitmq: %s: server closed the connection: %u %.*s", what, m->reply_code,
             (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        return -1;
    }
    return 0;
}

/* Publishes count persistent messages on the confirm-mode channel with at most window
 * unconfirmed. Confirms carry delivery tags 1, 2, ... in publish order, so tag t is
 * sequence number t-1; `multiple` confirms every tag up to it. If lat is not NULL each
 * confirm's latency is stored there. */
static int rmq_publish(amqp_connection_state_t c, const opts_t *o, result_t *r, uint64_t *lat, uint64_t *seconds_ns)
{
    int rc = -1;
    uint64_t *sent = xcalloc(o->count, sizeof *sent, "publish times");
    uint8_t *done = xcalloc(o->count, 1, "confirm flags");
    unsigned char *buf = xcalloc(o->size, 1, "payload");
    if (!sent || !done || !buf)
        goto out;
    memset(buf + SEQ_BYTES, 'x', o->size - SEQ_BYTES);
    amqp_confirm_select(c, CHANNEL_PUB);
    if (rmq_ok(amqp_get_rpc_reply(c), "confirm.select"))
        goto out;

    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG,
                                     .delivery_mode = 2, /* persistent */
                                     .content_type = amqp_cstring_bytes("application/octet-stream")};
    amqp_bytes_t q = amqp_cstring_bytes(o->queue);
    uint64_t next = 0, settled = 0, low = 0;    /* low: first sequence number not yet settled */
    uint64_t t0 = now_ns();
    while (settled < o->count) {
        while (next < o->count && next - settled < o->window) {
            put_seq(buf, next);
            sent[next] = now_ns();
            int st = amqp_basic_publish(c, CHANNEL_PUB, amqp_empty_bytes, q, 0, 0, &props,
                                        (amqp_bytes_t){o->size, buf});
            if (st != AMQP_STATUS_OK) {
                fail("rabbitmq: basic.publish of message %" PRIu64 ": %s", next, amqp_error_string2(st));
                goto out;
            }
            next++;
        }
        amqp_frame_t f;
        struct timeval tv = {IDLE_S, 0};
        int st = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) {
            fail("rabbitmq: no confirm for %d s with %" PRIu64 " of %" PRIu64 " settled", IDLE_S, settled,
                 o->count);
            r->lost += o->count - settled;
            break;
        }
        if (st != AMQP_STATUS_OK) {
            fail("rabbitmq: waiting for confirms: %s", amqp_error_string2(st));
            goto out;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (rmq_closed(&f, "waiting for confirms"))
            goto out;
        bool ack = f.payload.method.id == AMQP_BASIC_ACK_METHOD;
        bool nack = f.payload.method.id == AMQP_BASIC_NACK_METHOD;
        if (!ack && !nack)
            continue;                           /* e.g. connection.blocked: confirms still come */
        uint64_t tag, t = now_ns();
        bool multiple;
        if (ack) {
            const amqp_basic_ack_t *m = f.payload.method.decoded;
            tag = m->delivery_tag;
            multiple = m->multiple;
        } else {
            const amqp_basic_nack_t *m = f.payload.method.decoded;
            tag = m->delivery_tag;
            multiple = m->multiple;
        }
        if (tag == 0 || tag > next) {
            fail("rabbitmq: confirm for delivery tag %" PRIu64 " but only %" PRIu64 " published", tag, next);
            goto out;
        }
        for (uint64_t s = multiple ? low : tag - 1; s < tag; s++) {
            if (done[s]) {
                if (!multiple)
                    r->duplicated++;    /* a single confirm twice; `multiple` may overlap */
                continue;
            }
            done[s] = 1;
            settled++;
            if (nack)
                r->lost++;
            else if (lat)
                lat[r->nlat++] = t - sent[s];
        }
        while (low < o->count && done[low])
            low++;
    }
    *seconds_ns = now_ns() - t0;
    r->messages = settled - r->lost;
    rc = 0;
out:
    free(sent);
    free(done);
    free(buf);
    return rc;
}

/* Consumes count messages with --consumers consumers, one channel each (one thread serves
 * them all: the client is far from being the bottleneck): prefetch = batch, manual acks,
 * one basic.ack with multiple=true every batch/2 deliveries on a channel (so its prefetch
 * window never runs dry waiting for an ack), the rest at the end. basic.ack has no reply,
 * so a passive queue.declare on each channel after its last ack — a channel handles
 * methods in order — makes the clock stop only once the server has taken every ack. */
static int rmq_consume(amqp_connection_state_t c, const opts_t *o, result_t *r, uint64_t *seconds_ns)
{
    int rc = -1;
    uint8_t *seen = xcalloc(o->count, 1, "delivery flags");
    if (!seen)
        return -1;
    amqp_bytes_t q = amqp_cstring_bytes(o->queue);
    uint32_t ack_every = o->batch / 2 ? o->batch / 2 : 1;
    uint64_t unacked[MAX_CONSUMERS] = {0}, last_tag[MAX_CONSUMERS] = {0};
    uint64_t t0 = now_ns(), got = 0;
    for (uint32_t i = 0; i < o->consumers; i++) {
        amqp_channel_t ch = (amqp_channel_t)(CHANNEL_SUB + i);
        amqp_basic_qos(c, ch, 0, (uint16_t)o->batch, 0);
        if (rmq_ok(amqp_get_rpc_reply(c), "basic.qos"))
            goto out;
        amqp_basic_consume(c, ch, q, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
        if (rmq_ok(amqp_get_rpc_reply(c), "basic.consume"))
            goto out;
    }
    while (got < o->count) {
        amqp_envelope_t env;
        struct timeval tv = {IDLE_S, 0};
        amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t rep = amqp_consume_message(c, &env, &tv, 0);
        if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && rep.library_error == AMQP_STATUS_TIMEOUT) {
            fail("rabbitmq: no delivery for %d s after %" PRIu64 " of %" PRIu64, IDLE_S, got, o->count);
            break;
        }
        if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && rep.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            /* not a delivery: read the frame to learn whether the channel was closed */
            amqp_frame_t f;
            int st = amqp_simple_wait_frame(c, &f);
            if (st != AMQP_STATUS_OK) {
                fail("rabbitmq: reading a frame while consuming: %s", amqp_error_string2(st));
                goto out;
            }
            if (f.frame_type == AMQP_FRAME_METHOD && rmq_closed(&f, "consuming"))
                goto out;
            continue;
        }
        if (rmq_ok(rep, "consuming"))
            goto out;
        uint32_t i = (uint32_t)(env.channel - CHANNEL_SUB);
        if (env.channel < CHANNEL_SUB || i >= o->consumers) {
            fail("rabbitmq: a delivery on channel %u, which has no consumer", env.channel);
            amqp_destroy_envelope(&env);
            goto out;
        }
        mark_seen(seen, get_seq(env.message.body.bytes, env.message.body.len, o->count), r);
        got++;
        last_tag[i] = env.delivery_tag;
        amqp_destroy_envelope(&env);
        if (++unacked[i] >= ack_every) {
            int st = amqp_basic_ack(c, (amqp_channel_t)(CHANNEL_SUB + i), last_tag[i], 1);
            if (st != AMQP_STATUS_OK) {
                fail("rabbitmq: basic.ack up to tag %" PRIu64 ": %s", last_tag[i], amqp_error_string2(st));
                goto out;
            }
            unacked[i] = 0;
        }
    }
    uint64_t ready = 0;
    for (uint32_t i = 0; i < o->consumers; i++) {
        amqp_channel_t ch = (amqp_channel_t)(CHANNEL_SUB + i);
        if (unacked[i]) {
            int st = amqp_basic_ack(c, ch, last_tag[i], 1);
            if (st != AMQP_STATUS_OK) {
                fail("rabbitmq: basic.ack up to tag %" PRIu64 ": %s", last_tag[i], amqp_error_string2(st));
                goto out;
            }
        }
        amqp_queue_declare_ok_t *d = amqp_queue_declare(c, ch, q, 1, 0, 0, 0, amqp_empty_table);
        if (rmq_ok(amqp_get_rpc_reply(c), "queue.declare (passive, after the last ack)"))
            goto out;
        ready = d->message_count;
    }
    *seconds_ns = now_ns() - t0;
    r->messages = got;
    r->lost = count_missing(seen, o->count);
    if (ready)
        fail("rabbitmq: %" PRIu64 " message(s) still ready in the queue after the run", ready);
    rc = 0;
out:
    free(seen);
    return rc;
}

static int run_rabbitmq(const opts_t *o, result_t *r)
{
    amqp_connection_state_t c = rmq_connect(o);
    if (!c)
        return -1;
    int rc = -1;
    uint64_t ns = 0;
    if (rmq_fresh_queue(c, o))
        goto out;
    if (o->op == OP_SUBMIT) {
        if (!(r->lat_ns = xcalloc(o->count, sizeof *r->lat_ns, "latencies")))
            goto out;
        if (rmq_publish(c, o, r, r->lat_ns, &ns))
            goto out;
    } else {
        result_t fill = {0};
        if (rmq_publish(c, o, &fill, NULL, &ns))
            goto out;
        if (fill.lost || fill.duplicated) {
            fail("rabbitmq: filling the queue: %" PRIu64 " not confirmed, %" PRIu64 " confirmed twice", fill.lost,
                 fill.duplicated);
            goto out;
        }
        if (rmq_consume(c, o, r, &ns))
            goto out;
    }
    r->seconds = (double)ns / 1e9;
    rc = 0;
out:
    /* a clean close so the server logs no "client unexpectedly closed TCP connection" */
    rmq_ok(amqp_connection_close(c, AMQP_REPLY_SUCCESS), "connection.close");
    int st = amqp_destroy_connection(c);
    if (st != AMQP_STATUS_OK)
        fail("rabbitmq: amqp_destroy_connection: %s", amqp_error_string2(st));
    return rc;
}

/* ---- NATS JetStream ----------------------------------------------------------------------- */

static void nats_fail(const char *what, natsStatus s, jsErrCode jerr)
{
    const char *last = nats_GetLastError(NULL);
    if (jerr)
        fail("nats: %s: %s (JetStream error %d%s%s)", what, natsStatus_GetText(s), (int)jerr, last ? ": " : "",
             last ? last : "");
    else
        fail("nats: %s: %s%s%s", what, natsStatus_GetText(s), last ? ": " : "", last ? last : "");
}

/* The async-publish window: the ack handler runs on the library's thread. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t count, pending, settled;
    uint64_t *sent, *lat;                       /* lat NULL: do not record latencies */
    uint8_t *done;
    result_t *r;
    char first_err[256];
} nwin_t;

static void nats_on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    nwin_t *w = closure;
    uint64_t t = now_ns();
    uint64_t seq = get_seq(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), w->count);
    pthread_mutex_lock(&w->mu);
    if (seq == UINT64_MAX) {
        snprintf(w->first_err, sizeof w->first_err, "an ack for a message that is not one of ours");
    } else if (w->done[seq]) {
        w->r->duplicated++;
    } else {
        w->done[seq] = 1;
        w->settled++;
        if (pa && !pa->Duplicate) {
            if (w->lat)
                w->lat[w->r->nlat++] = t - w->sent[seq];
        } else if (pa) {
            w->r->duplicated++;     /* the stream already had it: not stored by this publish */
        } else {
            w->r->lost++;
            if (!w->first_err[0])
                snprintf(w->first_err, sizeof w->first_err, "message %" PRIu64 ": %s (JetStream error %d%s%s)", seq,
                         natsStatus_GetText(pae ? pae->Err : NATS_ERR), pae ? (int)pae->ErrCode : 0,
                         pae && pae->ErrText ? ": " : "", pae && pae->ErrText ? pae->ErrText : "");
        }
    }
    w->pending--;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    natsMsg_Destroy(msg);
}

/* Connects and makes the JetStream context whose async publishes report to w. The
 * library's own PublishAsync.MaxPending is left unlimited: our window (in nats_publish)
 * is exact and measured per message, while MaxPending would make js_PublishAsync stall
 * and then fail with a timeout instead of waiting. */
static int nats_connect(const opts_t *o, nwin_t *w, natsConnection **nc, jsCtx **js)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%u", o->port);
    natsOptions *no = NULL;
    natsStatus s = natsOptions_Create(&no);
    if (s == NATS_OK)
        s = natsOptions_SetURL(no, url);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(no, 5000);
    if (s != NATS_OK) {
        nats_fail("connection options", s, 0);
        natsOptions_Destroy(no);
        return -1;
    }
    s = natsConnection_Connect(nc, no);
    natsOptions_Destroy(no);
    if (s != NATS_OK) {
        char what[96];
        snprintf(what, sizeof what, "connecting to %s", url);
        nats_fail(what, s, 0);
        return -1;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;                            /* stream admin on a busy 2-core machine */
    jo.PublishAsync.AckHandler = nats_on_ack;
    jo.PublishAsync.AckHandlerClosure = w;
    s = natsConnection_JetStream(js, *nc, &jo);
    if (s != NATS_OK) {
        nats_fail("JetStream context", s, 0);
        return -1;
    }
    return 0;
}

/* A fresh stream on one subject (named like it): file storage, one replica, and
 * work-queue retention, so an acked message is removed as RabbitMQ and Handoff remove it. */
static int nats_fresh_stream(jsCtx *js, const opts_t *o)
{
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteStream(js, o->queue, NULL, &jerr);
    if (s != NATS_OK && jerr != JSStreamNotFoundErr) {
        nats_fail("deleting the old stream", s, jerr);
        return -1;
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subj = o->queue;
    sc.Name = o->queue;
    sc.Subjects = &subj;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_WorkQueuePolicy;
    sc.Replicas = 1;
    jsStreamInfo *si = NULL;
    jerr = 0;
    s = js_AddStream(&si, js, &sc, NULL, &jerr);
    if (s != NATS_OK) {
        nats_fail("creating the stream (file storage)", s, jerr);
        return -1;
    }
    jsStreamInfo_Destroy(si);
    return 0;
}

/* count async publishes with at most window unacknowledged, then waits for the rest. */
static int nats_publish(jsCtx *js, const opts_t *o, nwin_t *w, uint64_t *seconds_ns)
{
    unsigned char *buf = xcalloc(o->size, 1, "payload");
    if (!buf)
        return -1;
    memset(buf + SEQ_BYTES, 'x', o->size - SEQ_BYTES);
    int rc = -1;
    uint64_t t0 = now_ns();
    for (uint64_t seq = 0; seq < o->count; seq++) {
        pthread_mutex_lock(&w->mu);
        while (w->pending >= o->window)
            pthread_cond_wait(&w->cv, &w->mu);
        w->pending++;
        w->sent[seq] = now_ns();    /* before publishing: the ack may beat the call's return */
        pthread_mutex_unlock(&w->mu);
        put_seq(buf, seq);
        natsStatus s = js_PublishAsync(js, o->queue, buf, (int)o->size, NULL);
        if (s != NATS_OK) {
            char what[64];
            snprintf(what, sizeof what, "js_PublishAsync of message %" PRIu64, seq);
            nats_fail(what, s, 0);
            goto out;
        }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = IDLE_S * 1000;
    natsStatus s = js_PublishAsyncComplete(js, &po);
    if (s != NATS_OK) {
        nats_fail("waiting for the last publish acks", s, 0);
        goto out;
    }
    *seconds_ns = now_ns() - t0;
    pthread_mutex_lock(&w->mu);
    if (w->settled != o->count) {
        fail("nats: %" PRIu64 " of %" PRIu64 " publishes acknowledged", w->settled, o->count);
        w->r->lost += o->count - w->settled;
    }
    if (w->first_err[0])
        fail("nats: publish: %s", w->first_err);
    w->r->messages = w->settled - w->r->lost;
    pthread_mutex_unlock(&w->mu);
    rc = 0;
out:
    free(buf);
    return rc;
}

/* What the NATS consumer threads share. */
typedef struct {
    const opts_t *o;
    natsSubscription *sub[MAX_CONSUMERS];
    pthread_mutex_t mu;
    uint8_t *seen;
    uint64_t got, end_ns;
    bool done, failed;
    result_t *r;
} npull_t;

/* One consumer thread: Fetch(batch), then for each message natsMsg_Ack (no reply: the peer
 * of the acks Handoff batches into one ACK) and natsMsg_AckSync for the very last of the
 * run — the server handles the acks of one connection in order, so its reply means every
 * ack has been processed when the clock stops. Acks are sent under the lock, so no ack
 * counted earlier can still be unsent when the last one goes. AckSync for each would cost
 * a round trip per message, which neither RabbitMQ nor Handoff pays. */
typedef struct {
    npull_t *p;
    uint32_t i;
} npull_arg_t;

static void *nats_pull_thread(void *arg)
{
    npull_t *p = ((npull_arg_t *)arg)->p;
    natsSubscription *sub = p->sub[((npull_arg_t *)arg)->i];
    const opts_t *o = p->o;
    uint64_t idle_since = now_ns();
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool stop = p->done || p->failed;
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        /* short waits: a thread with nothing left must notice soon that the run is over */
        natsStatus s = natsSubscription_Fetch(&list, sub, (int)o->batch, 500, &jerr);
        if (s == NATS_TIMEOUT) {
            if (now_ns() - idle_since > (uint64_t)IDLE_S * 1000000000u) {
                /* given up on: what never came is counted as lost */
                pthread_mutex_lock(&p->mu);
                if (!p->done)
                    fail("nats: no delivery for %d s after %" PRIu64 " of %" PRIu64, IDLE_S, p->got, o->count);
                pthread_mutex_unlock(&p->mu);
                break;
            }
            continue;
        }
        if (s != NATS_OK) {
            nats_fail("natsSubscription_Fetch", s, jerr);
            pthread_mutex_lock(&p->mu);
            p->failed = true;
            pthread_mutex_unlock(&p->mu);
            break;
        }
        idle_since = now_ns();
        pthread_mutex_lock(&p->mu);
        for (int k = 0; k < list.Count && !p->failed; k++) {
            natsMsg *m = list.Msgs[k];
            mark_seen(p->seen, get_seq(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), o->count), p->r);
            bool last = ++p->got == o->count;
            s = last ? natsMsg_AckSync(m, NULL, &jerr) : natsMsg_Ack(m, NULL);
            if (s != NATS_OK) {
                nats_fail(last ? "natsMsg_AckSync (the last message)" : "natsMsg_Ack", s, jerr);
                p->failed = true;
            } else if (last) {
                p->end_ns = now_ns();
                p->done = true;
            }
        }
        pthread_mutex_unlock(&p->mu);
        natsMsgList_Destroy(&list);
    }
    return NULL;
}

/* --consumers threads, each with its own pull subscription bound to one durable consumer
 * with explicit acks, so the server spreads the messages over them. */
static int nats_consume(jsCtx *js, const opts_t *o, result_t *r, uint64_t *seconds_ns)
{
    npull_t p = {.o = o, .r = r};
    npull_arg_t args[MAX_CONSUMERS];
    pthread_t th[MAX_CONSUMERS];
    uint32_t started = 0;
    int rc = -1;
    if (!(p.seen = xcalloc(o->count, 1, "delivery flags")))
        return -1;
    pthread_mutex_init(&p.mu, NULL);
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < o->consumers; i++) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = o->queue;
        so.Config.AckPolicy = js_AckExplicit;
        jsErrCode jerr = 0;
        /* the first call creates the durable consumer, the others bind to it */
        natsStatus s = js_PullSubscribe(&p.sub[i], js, o->queue, "handoff_bench", NULL, &so, &jerr);
        if (s != NATS_OK) {
            nats_fail(i ? "binding to the durable pull consumer" : "creating the durable pull consumer", s, jerr);
            goto out;
        }
    }
    for (; started < o->consumers; started++) {
        args[started] = (npull_arg_t){&p, started};
        int e = pthread_create(&th[started], NULL, nats_pull_thread, &args[started]);
        if (e) {
            fail("nats: starting consumer thread %u: %s", started + 1, strerror(e));
            pthread_mutex_lock(&p.mu);
            p.failed = true;
            pthread_mutex_unlock(&p.mu);
            break;
        }
    }
    for (uint32_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (p.failed)
        goto out;
    *seconds_ns = (p.done ? p.end_ns : now_ns()) - t0;
    r->messages = p.got;
    r->lost = count_missing(p.seen, o->count);
    rc = 0;
out:
    /* the durable consumer goes with the stream, deleted by the next run */
    for (uint32_t i = 0; i < o->consumers; i++)
        if (p.sub[i])
            natsSubscription_Destroy(p.sub[i]);
    pthread_mutex_destroy(&p.mu);
    free(p.seen);
    return rc;
}

static int run_nats(const opts_t *o, result_t *r)
{
    int rc = -1;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    uint64_t ns = 0;
    result_t fill = {0};
    nwin_t w = {.count = o->count, .r = o->op == OP_SUBMIT ? r : &fill};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.sent = xcalloc(o->count, sizeof *w.sent, "publish times");
    w.done = xcalloc(o->count, 1, "ack flags");
    if (o->op == OP_SUBMIT)
        r->lat_ns = w.lat = xcalloc(o->count, sizeof *w.lat, "latencies");
    if (!w.sent || !w.done || (o->op == OP_SUBMIT && !w.lat))
        goto out;
    if (nats_connect(o, &w, &nc, &js) || nats_fresh_stream(js, o))
        goto out;
    if (nats_publish(js, o, &w, &ns))
        goto out;
    if (o->op == OP_DELIVER) {
        if (fill.lost || fill.duplicated) {
            fail("nats: filling the stream: %" PRIu64 " not acknowledged, %" PRIu64 " duplicates", fill.lost,
                 fill.duplicated);
            goto out;
        }
        if (nats_consume(js, o, r, &ns))
            goto out;
    }
    r->seconds = (double)ns / 1e9;
    rc = 0;
out:
    if (js)
        jsCtx_Destroy(js);
    if (nc) {
        natsConnection_Close(nc);
        natsConnection_Destroy(nc);
    }
    /* the library's threads: gone before the window's memory is freed */
    nats_CloseAndWait(5000);
    free(w.sent);
    free(w.done);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

/* ---- main ---------------------------------------------------------------------------------- */

static int read_options(int argc, char **argv, opts_t *o)
{
    hx_opt_val_t v[O_N];
    int rc = hx_opt_parse(PROG, options, O_N, argc, argv, usage_head, usage_tail, v);
    if (rc)
        return rc;
    if (!v[O_PEER].text || !v[O_PORT].given) {
        fail("--peer and --port are required (--help says more)");
        return 2;
    }
    if (strcmp(v[O_PEER].text, "rabbitmq") == 0)
        o->peer = PEER_RABBITMQ;
    else if (strcmp(v[O_PEER].text, "nats") == 0)
        o->peer = PEER_NATS;
    else {
        fail("--peer: must be rabbitmq or nats, got '%.60s'", v[O_PEER].text);
        return 2;
    }
    if (strcmp(v[O_OP].text, "submit") == 0)
        o->op = OP_SUBMIT;
    else if (strcmp(v[O_OP].text, "deliver") == 0)
        o->op = OP_DELIVER;
    else {
        fail("--op: must be submit or deliver, got '%.60s'", v[O_OP].text);
        return 2;
    }
    /* the name is a queue, a stream and a subject: the characters all three accept */
    const char *q = v[O_QUEUE].text;
    size_t qlen = strlen(q);
    if (qlen == 0 || qlen > 64 || strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != qlen) {
        fail("--queue: must be 1 to 64 letters, digits, '_' or '-', got '%.60s'", q);
        return 2;
    }
    o->port = (uint16_t)v[O_PORT].u32;
    o->count = v[O_COUNT].u64;
    o->size = v[O_SIZE].u32;
    o->window = v[O_WINDOW].u32;
    o->batch = v[O_BATCH].u32;
    o->consumers = v[O_CONSUMERS].u32;
    o->queue = q;
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o = {0};
    int rc = read_options(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    result_t r = {0};
    const char *peer = o.peer == PEER_RABBITMQ ? "rabbitmq" : "nats";
    const char *op = o.op == OP_SUBMIT ? "submit" : "deliver";
    if ((o.peer == PEER_RABBITMQ ? run_rabbitmq(&o, &r) : run_nats(&o, &r)) != 0) {
        fail("%s %s failed", peer, op);
        free(r.lat_ns);
        return 1;
    }
    bool ok = r.lost == 0 && r.duplicated == 0 && r.messages == o.count;
    printf("{\"peer\":\"%s\",\"op\":\"%s\",\"messages\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.0f", peer, op,
           r.messages, r.seconds, r.seconds > 0 ? (double)r.messages / r.seconds : 0.0);
    if (o.op == OP_SUBMIT) {
        qsort(r.lat_ns, r.nlat, sizeof *r.lat_ns, cmp_u64);
        printf(",\"p50_us\":%.0f,\"p99_us\":%.0f", pct_us(r.lat_ns, r.nlat, 50), pct_us(r.lat_ns, r.nlat, 99));
    }
    printf(",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64 ",\"count\":%" PRIu64 ",\"size\":%u,\"window\":%u", r.lost,
           r.duplicated, o.count, o.size, o.window);
    if (o.op == OP_DELIVER)
        printf(",\"batch\":%u,\"consumers\":%u", o.batch, o.consumers);
    printf(",\"ok\":%s}\n", ok ? "true" : "false");
    free(r.lat_ns);
    if (fflush(stdout) != 0) {
        fail("writing the result: %s", strerror(errno));
        return 1;
    }
    return ok ? 0 : 1;
}
