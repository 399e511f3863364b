/* hx_worker — a service worker on a libuv loop: HELLO as a worker, handle DELIVERs, ack
 * each input together with its outputs, heartbeat, and reconnect when the broker is
 * silent or says BYE. With a replicated broker (a list of nodes), a node that is not the
 * leader (ERR_NOT_LEADER) sends the worker on to the leader it names, or to the next node. */
#include "hx_worker.h"
#include "hx_client_internal.h"
#include "hx_http.h"
#include "hx_log.h"
#include "hx_zuv.h"

#include <signal.h>
#include <stddef.h>
#include <utlist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zmq.h>

struct hx_outbox {
    const uint8_t *input_id;
    size_t n;
    Handoff__Message msgs[HX_MAX_BATCH];
    Handoff__Address addrs[HX_MAX_BATCH];
    uint8_t ids[HX_MAX_BATCH][HX_ID_LEN];
};

typedef struct {
    hx_zuv_t zuv;
    void *sock;
    hx_zuv_t mon_zuv;           /* the handshake monitor of sock, when it could be attached */
    void *mon;
    int open;                   /* zuvs not closed yet */
    struct hx_worker *w;
} conn_t;

/* An ACK/NACK or a post the broker has not confirmed yet: kept so that one refused while the
 * broker cannot write (ERR_UNAVAILABLE, ERR_BUSY) is sent again after a pause, not dropped;
 * a post that met a full send queue (thousands posted at once: a retry tick with a long wait
 * list) waits here, in order, and goes as the queue drains. */
typedef struct unconfirmed {
    uint8_t req[HX_ID_LEN];
    hx_buf_t frame;
    bool post;                  /* a SUBMIT (hx_worker_post): kept across sessions, unlike an answer */
    uint64_t resend_at;         /* 0: waiting for the answer */
    uint32_t delay;
    struct unconfirmed *prev, *next;
} unconfirmed_t;

/* A handled message's answer, packed and waiting for the burst's commit. */
typedef struct {
    uint8_t input[HX_ID_LEN], req[HX_ID_LEN];
    bool ok;
    hx_buf_t frame;
} answer_t;

struct hx_worker {
    uv_loop_t loop;
    void *zctx;
    conn_t *conn;
    uv_timer_t timer;
    uv_signal_t sigint, sigterm, sighup;
    char endpoint[HX_ENDPOINT_MAX + 1];        /* the node connected to: one of nodes */
    char nodes[HX_ENDPOINTS_MAX][HX_ENDPOINT_MAX + 1];
    int n_nodes, node;
    uv_timer_t hop;             /* to the leader a node named (ERR_NOT_LEADER) */
    int hops;                   /* nodes that said "not the leader" since the last WELCOME */
    char service[HX_NAME_MAX + 1];
    char curve_server[41], curve_public[41], curve_secret[41];
    uint32_t credit, heartbeat_ms, liveness;
    uint64_t last_recv, last_send;
    uint64_t hello_at;          /* when the last HELLO went out */
    bool welcomed, stopping;
    unsigned mon_seq;           /* one inproc address per connection's monitor */
    int drops;                  /* handshakes closed without a reason, in a row */
    char refused[256];          /* why the broker refuses the handshake ("" when it does not) */
    hx_handler_fn fn;
    void *arg;
    void (*reload)(hx_worker_t *, void *);
    void *reload_arg;
    uv_timer_t tick;            /* hx_worker_every */
    void (*tick_fn)(hx_worker_t *, void *);
    void *tick_arg;
    uint64_t tick_ms;
    hx_buf_t buf;
    hx_outbox_t *outbox;
    hx_worker_batch_t batch;    /* begin NULL: no transaction around a burst */
    hx_batch_t **pending;       /* DELIVERs received and not handled yet: the burst */
    size_t n_pending, cap_pending;
    uv_idle_t idle;             /* active while pending: the burst is handled before the loop waits */
    bool idle_init;
    answer_t *answers;          /* kept between bursts (their buffers are reused) */
    size_t cap_answers;
    unconfirmed_t *unconfirmed;
    hx_http_t *http;
    hx_metrics_t *metrics, *own_metrics;        /* own_metrics: made here when none was given */
    hx_metric_t *m_latency, *m_ok, *m_failed, *m_connected, *m_reconnects;
    /* the store could not be reached (HX_WORKER_STORE_DOWN): paused, probing */
    bool store_down;
    char store_why[256];
    uint64_t probe_at;
    uint32_t probe_delay;
};

/* While a replicated broker elects a leader, its nodes answer ERR_NOT_LEADER with no leader:
 * the next node is tried after this pause, not at once (a busy loop of connections). */
#define HX_NO_LEADER_PAUSE_MS 100

static void follow_leader(hx_worker_t *w, const Handoff__Envelope *env);
static void on_hop(uv_timer_t *t);

/* Handling time per message, 100 us .. 30 s (a handler may wait on SQLite's busy timeout). */
static const uint64_t latency_bounds_ns[] = {100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
                                             25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
                                             2500000000u, 5000000000u, 10000000000u, 30000000000u};

static int send_env(hx_worker_t *w, const Handoff__Envelope *env)
{
    if (!w->conn || hx_wire_pack(env, &w->buf))
        return -1;
    if (zmq_send(w->conn->sock, w->buf.data, w->buf.len, ZMQ_DONTWAIT) < 0)
        return -1;
    w->last_send = uv_now(&w->loop);
    return 0;
}

static void env_init(Handoff__Envelope *env, Handoff__Kind kind)
{
    handoff__envelope__init(env);
    env->version = HX_PROTOCOL_VERSION;
    env->kind = kind;
}

static void send_hello(hx_worker_t *w)
{
    Handoff__Envelope env;
    env_init(&env, HANDOFF__KIND__KIND_HELLO);
    env.role = HANDOFF__ROLE__ROLE_WORKER;
    env.name = w->service;
    env.credit = w->credit;
    send_env(w, &env);
    w->hello_at = uv_now(&w->loop);
}

static void outbox_reset(hx_outbox_t *o, const uint8_t *input_id)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->msgs[i].payload.data);
        free(o->msgs[i].type);
        free(o->addrs[i].name);
    }
    o->n = 0;
    o->input_id = input_id;
}

int hx_outbox_add(hx_outbox_t *o, hx_addr_kind_t kind, const char *to, const char *type, const void *payload,
                  size_t len)
{
    if (o->n >= HX_MAX_BATCH || !hx_name_valid(to) || !type || strlen(type) > HX_TYPE_MAX)
        return HX_EINVAL;
    size_t i = o->n;
    Handoff__Message *m = &o->msgs[i];
    Handoff__Address *a = &o->addrs[i];
    handoff__message__init(m);
    handoff__address__init(a);
    a->kind = kind == HX_TO_SERVICE ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    a->name = strdup(to);
    m->type = strdup(type);
    m->payload.data = malloc(len ? len : 1);
    if (!a->name || !m->type || !m->payload.data) {
        free(a->name);
        free(m->type);
        free(m->payload.data);
        return HX_ENOMEM;
    }
    if (len)
        memcpy(m->payload.data, payload, len);
    m->payload.len = len;
    hx_id_derive(o->input_id, (uint32_t)i, o->ids[i]);
    m->id = (ProtobufCBinaryData){HX_ID_LEN, o->ids[i]};
    m->correlation_id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)o->input_id};
    m->to = a;
    o->n++;
    return 0;
}

hx_outbox_t *hx_outbox_new(const uint8_t input_id[HX_ID_LEN])
{
    hx_outbox_t *o = calloc(1, sizeof *o);
    if (o)
        o->input_id = input_id;
    return o;
}

void hx_outbox_reset(hx_outbox_t *o, const uint8_t input_id[HX_ID_LEN])
{
    outbox_reset(o, input_id);
}

void hx_outbox_destroy(hx_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    outbox_reset(*self_p, NULL);
    free(*self_p);
    *self_p = NULL;
}

static void unconfirmed_free(hx_worker_t *w, unconfirmed_t *u)
{
    DL_DELETE(w->unconfirmed, u);
    hx_buf_free(&u->frame);
    free(u);
}

static void unconfirmed_clear(hx_worker_t *w)
{
    while (w->unconfirmed)
        unconfirmed_free(w, w->unconfirmed);
}

/* The session is gone: its answers go (the broker gives their messages back and delivers them
 * again), its posts stay and go again, in order, once a new session is welcomed (their ids make
 * a second copy of one the broker did take harmless). */
static void unconfirmed_new_session(hx_worker_t *w, uint64_t now)
{
    unconfirmed_t *u, *tmp;
    DL_FOREACH_SAFE(w->unconfirmed, u, tmp) {
        if (!u->post)
            unconfirmed_free(w, u);
        else
            u->resend_at = now ? now : 1;
    }
}

static unconfirmed_t *unconfirmed_find(hx_worker_t *w, const ProtobufCBinaryData *corr)
{
    unconfirmed_t *u;
    DL_FOREACH(w->unconfirmed, u)
        if (corr->len == HX_ID_LEN && memcmp(u->req, corr->data, HX_ID_LEN) == 0)
            return u;
    return NULL;
}

static void unconfirmed_resend(hx_worker_t *w, uint64_t now)
{
    unconfirmed_t *u;
    DL_FOREACH(w->unconfirmed, u) {
        if (!u->resend_at || u->resend_at > now || !w->conn || !w->welcomed)
            continue;
        if (zmq_send(w->conn->sock, u->frame.data, u->frame.len, ZMQ_DONTWAIT) < 0)
            break;                              /* the queue is full again: the rest wait, in order */
        u->resend_at = 0;
        w->last_send = now;
    }
}

size_t hx_outbox_count(const hx_outbox_t *o)
{
    return o->n;
}

int hx_outbox_get(const hx_outbox_t *o, size_t i, hx_addr_kind_t *kind, const char **to, const char **type,
                  const uint8_t **payload, size_t *len)
{
    if (i >= o->n)
        return HX_EINVAL;
    *kind = o->addrs[i].kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? HX_TO_SERVICE : HX_TO_MAILBOX;
    *to = o->addrs[i].name;
    *type = o->msgs[i].type;
    *payload = o->msgs[i].payload.data;
    *len = o->msgs[i].payload.len;
    return 0;
}

/* Keeps frame until the broker confirms req; resend_at: 0 when it was sent, else when to send
 * it (it was not). -1 when out of memory. */
static int track(hx_worker_t *w, const uint8_t req[HX_ID_LEN], const hx_buf_t *frame, uint64_t resend_at, bool post)
{
    unconfirmed_t *u = calloc(1, sizeof *u);
    if (u && hx_buf_append(&u->frame, frame->data, frame->len) == 0) {
        memcpy(u->req, req, HX_ID_LEN);
        u->resend_at = resend_at;
        u->post = post;
        DL_APPEND(w->unconfirmed, u);
        return 0;
    }
    free(u);
    return -1;
}

int hx_worker_post(hx_worker_t *w, const uint8_t id[HX_ID_LEN], hx_addr_kind_t kind, const char *to,
                   const char *type, const void *payload, size_t len)
{
    if (!hx_name_valid(to) || !type || strlen(type) > HX_TYPE_MAX)
        return HX_EINVAL;
    Handoff__Address a = HANDOFF__ADDRESS__INIT;
    a.kind = kind == HX_TO_SERVICE ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    a.name = (char *)to;
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)id};
    m.to = &a;
    m.type = (char *)type;
    m.payload = (ProtobufCBinaryData){len, (uint8_t *)payload};
    Handoff__Envelope env;
    env_init(&env, HANDOFF__KIND__KIND_SUBMIT);
    env.id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)id};
    env.n_messages = 1;
    env.messages = &mp;
    if (!w->conn || hx_wire_pack(&env, &w->buf))
        return HX_EIO;
    /* Behind posts still waiting, or into a full queue: it waits its turn (unconfirmed_resend). */
    const unconfirmed_t *last = w->unconfirmed ? w->unconfirmed->prev : NULL;
    const bool waiting = (last && last->resend_at != 0) || !w->welcomed;
    if (!waiting && zmq_send(w->conn->sock, w->buf.data, w->buf.len, ZMQ_DONTWAIT) >= 0) {
        w->last_send = uv_now(&w->loop);
        return track(w, id, &w->buf, 0, true) == 0 ? 0 : HX_ENOMEM;
    }
    if (!waiting && zmq_errno() != EAGAIN)
        return HX_EIO;
    return track(w, id, &w->buf, uv_now(&w->loop) ? uv_now(&w->loop) : 1, true) == 0 ? 0 : HX_ENOMEM;
}

/* The ACK of a->input with its outputs (msgs, n), or its NACK with why (ack false), packed into
 * a->frame under a new request id; an empty frame when it cannot be packed (not answered: the
 * broker redelivers the message). */
static void pack_answer(answer_t *a, bool ack, const char *why, Handoff__Message **msgs, size_t n)
{
    Handoff__Envelope env;
    ProtobufCBinaryData input = {HX_ID_LEN, a->input};
    hx_id_random(a->req);
    env_init(&env, ack ? HANDOFF__KIND__KIND_ACK : HANDOFF__KIND__KIND_NACK);
    env.id = (ProtobufCBinaryData){HX_ID_LEN, a->req};
    env.n_acks = 1;
    env.acks = &input;
    env.n_messages = n;
    env.messages = msgs;
    env.error_text = ack ? NULL : (char *)why;
    a->ok = ack;
    if (hx_wire_pack(&env, &a->frame))
        a->frame.len = 0;
}

/* Handles one message: its ACK with the outputs, or its NACK, packed into a (not sent). */
static void handle(hx_worker_t *w, const hx_msg_t *in, answer_t *a)
{
    char err[256] = "";
    hx_outbox_t *o = w->outbox;
    outbox_reset(o, in->id);
    memcpy(a->input, in->id, HX_ID_LEN);
    uint64_t t0 = uv_hrtime();
    int rc = w->fn(w->arg, in, o, err, sizeof err);
    hx_metric_observe(w->m_latency, uv_hrtime() - t0);
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(in->id, hex);
    if (rc != 0) {
        hx_warn("could not handle %s (attempt %u): %s", hex, in->attempt, err);
        pack_answer(a, false, err, NULL, 0);
    } else {
        Handoff__Message *mp[HX_MAX_BATCH];
        for (size_t i = 0; i < o->n; i++)
            mp[i] = &o->msgs[i];
        pack_answer(a, true, NULL, mp, o->n);
        hx_debug("handled %s: %zu output(s)", hex, o->n);
    }
    outbox_reset(o, NULL);
}

/* Sends a handled message's answer and keeps it until the broker confirms it. */
static void send_answer(hx_worker_t *w, answer_t *a)
{
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(a->input, hex);
    hx_metric_add(a->ok ? w->m_ok : w->m_failed, 1);
    if (a->frame.len && w->conn && zmq_send(w->conn->sock, a->frame.data, a->frame.len, ZMQ_DONTWAIT) >= 0) {
        w->last_send = uv_now(&w->loop);
        track(w, a->req, &a->frame, 0, false);
    } else if (!a->frame.len || !w->conn || zmq_errno() != EAGAIN ||
               track(w, a->req, &a->frame, uv_now(&w->loop), false) != 0) {   /* a full queue: it waits its turn */
        hx_warn("could not send the %s of %s; the broker will redeliver it", a->ok ? "ack" : "nack", hex);
    }
}

/* The store cannot be reached: the burst goes back to the broker with the session (BYE: no
 * failed delivery), and nothing is taken until the probe says the store is back (on_timer). */
static void store_pause(hx_worker_t *w, size_t n, const char *why)
{
    hx_warn("the store cannot be reached (%s): %zu message(s) given back to the broker; serving again once it "
            "can", why, n);
    Handoff__Envelope bye;
    env_init(&bye, HANDOFF__KIND__KIND_BYE);
    send_env(w, &bye);
    w->welcomed = false;
    w->store_down = true;
    snprintf(w->store_why, sizeof w->store_why, "%s", why);
    w->probe_delay = 100;
    w->probe_at = uv_now(&w->loop) + w->probe_delay;
    for (size_t i = 0; i < w->n_pending; i++)
        hx_batch_destroy(&w->pending[i]);
    w->n_pending = 0;
}

/* While paused: the store tried again (probe, else begin and rollback), at doubling intervals;
 * once it answers, a new session. */
static void store_probe(hx_worker_t *w, uint64_t now)
{
    if (now < w->probe_at)
        return;
    char why[256] = "";
    int rc;
    if (w->batch.probe) {
        rc = w->batch.probe(w->batch.arg, why, sizeof why);
    } else {
        rc = w->batch.begin(w->batch.arg, why, sizeof why);
        if (rc == 0 && w->batch.rollback)
            w->batch.rollback(w->batch.arg);
    }
    if (rc != 0) {
        w->probe_delay = w->probe_delay < 2500 ? w->probe_delay * 2 : 5000;
        w->probe_at = now + w->probe_delay;
        if (why[0])
            snprintf(w->store_why, sizeof w->store_why, "%s", why);
        return;
    }
    hx_info("the store can be used again: serving %s", w->service);
    w->store_down = false;
    w->last_recv = now;
    send_hello(w);
}

/* The burst: every message delivered since the last one, handled in one transaction when the
 * service gave one (hx_worker_set_batch), then every answer sent. */
static void handle_pending(hx_worker_t *w)
{
    size_t total = 0;
    for (size_t i = 0; i < w->n_pending; i++)
        total += w->pending[i]->count;
    if (total > w->cap_answers) {
        answer_t *t = realloc(w->answers, total * sizeof *t);
        if (t) {
            memset(t + w->cap_answers, 0, (total - w->cap_answers) * sizeof *t);
            w->answers = t;
            w->cap_answers = total;
        }
    }
    total = total < w->cap_answers ? total : w->cap_answers;   /* the rest: redelivered */
    char err[256] = "";
    bool txn = w->batch.begin != NULL;
    int began = txn ? w->batch.begin(w->batch.arg, err, sizeof err) : 0;
    if (began == HX_WORKER_STORE_DOWN) {
        store_pause(w, total, err);
        return;
    }
    if (began != 0)
        hx_warn("cannot begin the transaction for %zu message(s): %s; nacking them", total, err);
    size_t n = 0;
    for (size_t i = 0; i < w->n_pending; i++)
        for (size_t k = 0; k < w->pending[i]->count && n < total && !w->stopping; k++) {
            answer_t *a = &w->answers[n++];
            const hx_msg_t *in = &w->pending[i]->msgs[k];
            if (began == 0) {
                handle(w, in, a);
            } else {
                memcpy(a->input, in->id, HX_ID_LEN);
                pack_answer(a, false, err, NULL, 0);
            }
        }
    if (txn && began == 0 && w->batch.commit(w->batch.arg, err, sizeof err) != 0) {
        if (w->batch.rollback)
            w->batch.rollback(w->batch.arg);
        hx_warn("could not commit the %zu message(s) handled together: %s; nacking them", n, err);
        char why[300];
        snprintf(why, sizeof why, "commit: %s", err);
        for (size_t i = 0; i < n; i++)
            pack_answer(&w->answers[i], false, why, NULL, 0);
    }
    for (size_t i = 0; i < n; i++)
        send_answer(w, &w->answers[i]);
    for (size_t i = 0; i < w->n_pending; i++)
        hx_batch_destroy(&w->pending[i]);
    w->n_pending = 0;
}

static void on_idle(uv_idle_t *h)
{
    hx_worker_t *w = h->data;
    uv_idle_stop(h);
    handle_pending(w);
}

/* A DELIVER joins the burst, handled before the loop next waits for input. */
static void add_pending(hx_worker_t *w, hx_batch_t *b)
{
    if (w->n_pending == w->cap_pending) {
        size_t cap = w->cap_pending ? 2 * w->cap_pending : 16;
        hx_batch_t **t = realloc(w->pending, cap * sizeof *t);
        if (!t) {
            hx_warn("out of memory: %zu delivered message(s) left to the broker's redelivery", b->count);
            hx_batch_destroy(&b);
            return;
        }
        w->pending = t;
        w->cap_pending = cap;
    }
    w->pending[w->n_pending++] = b;
    if (!w->idle_init) {
        uv_idle_init(&w->loop, &w->idle);
        w->idle.data = w;
        w->idle_init = true;
    }
    uv_idle_start(&w->idle, on_idle);
}

void hx_worker_set_batch(hx_worker_t *w, const hx_worker_batch_t *b)
{
    if (b && b->begin && b->commit)
        w->batch = *b;
    else
        memset(&w->batch, 0, sizeof w->batch);
}

static void on_message(hx_zuv_t *z, zmq_msg_t *parts, size_t n, void *arg)
{
    (void)z;
    hx_worker_t *w = arg;
    if (n != 1)
        return;
    Handoff__Envelope *env = handoff__envelope__unpack(NULL, zmq_msg_size(&parts[0]), zmq_msg_data(&parts[0]));
    if (!env) {
        hx_warn("undecodable frame from the broker ignored");
        return;
    }
    w->last_recv = uv_now(&w->loop);
    switch (env->kind) {
    case HANDOFF__KIND__KIND_WELCOME:
        if (!w->welcomed)
            hx_info("serving %s (credit %u)", w->service, w->credit);
        w->welcomed = true;
        w->hops = 0;
        if (env->heartbeat_ms)
            w->heartbeat_ms = env->heartbeat_ms;
        if (env->liveness)
            w->liveness = env->liveness;
        break;
    case HANDOFF__KIND__KIND_DELIVER: {
        hx_batch_t *b = hx_batch_from_envelope(env);
        env = NULL;
        /* paused: sent before our BYE reached the broker, which gives it back with the session */
        if (b && b->count && !w->stopping && !w->store_down)
            add_pending(w, b);
        else
            hx_batch_destroy(&b);
        break;
    }
    case HANDOFF__KIND__KIND_ACCEPTED: {
        unconfirmed_t *u = unconfirmed_find(w, &env->correlation_id);
        if (u)
            unconfirmed_free(w, u);
        break;
    }
    case HANDOFF__KIND__KIND_ERROR: {
        unconfirmed_t *u = unconfirmed_find(w, &env->correlation_id);
        if (env->error_code == HANDOFF__ERROR_CODE__ERR_NOT_LEADER) {
            /* every frame in flight comes back so: the first one moves the worker (its HELLO at
             * the leader, then the posts), the rest are dropped with this connection; paused, the
             * HELLO after the probe gets the answer again */
            if (!w->store_down && !w->stopping && !uv_is_active((uv_handle_t *)&w->hop))
                follow_leader(w, env);
        } else if (env->error_code == HANDOFF__ERROR_CODE__ERR_NOT_READY) {
            /* the session is gone (the broker expired it while this loop was busy): one HELLO,
             * for the first refusal only. Every ack, heartbeat and post in flight comes back
             * refused; a HELLO for each started a new session each, every one giving back what
             * the one before had just been handed (1,300 sessions in 2 s after a 3 s stall). A
             * HELLO lost with its connection is sent again by on_timer after a liveness window. */
            bool was = w->welcomed;
            w->welcomed = false;
            if (u && u->post)
                u->resend_at = w->last_recv ? w->last_recv : 1;     /* again in the next session */
            else if (u)
                unconfirmed_free(w, u);
            if (was)
                unconfirmed_new_session(w, w->last_recv);
            if (was && !w->store_down)
                send_hello(w);
        } else if (u && (env->error_code == HANDOFF__ERROR_CODE__ERR_UNAVAILABLE ||
                         env->error_code == HANDOFF__ERROR_CODE__ERR_BUSY)) {
            u->delay = u->delay ? (u->delay < 4000 ? u->delay * 2 : 8000) : 250;
            u->resend_at = w->last_recv + u->delay;
            hx_warn("broker cannot take an ack now (%s); sending it again in %u ms", env->error_text, u->delay);
        } else {
            if (u)
                unconfirmed_free(w, u);
            hx_warn("broker refused a request: %s: %s", hx_wire_error_text(env->error_code), env->error_text);
        }
        break;
    }
    case HANDOFF__KIND__KIND_BYE:
        hx_warn("broker said bye; waiting for it to return");
        w->welcomed = false;
        unconfirmed_new_session(w, w->last_recv);
        break;
    default:
        break;
    }
    if (env)
        handoff__envelope__free_unpacked(env, NULL);
}

/* A node that is not the leader answered (env): a new connection to the leader it names when
 * that is one of the list's nodes (a node cannot send the worker anywhere else), else to the
 * next node; at once, or after a pause when no leader is known yet (an election) or the whole
 * list was tried. The session is gone: unconfirmed_new_session keeps the posts for the next. */
static void follow_leader(hx_worker_t *w, const Handoff__Envelope *env)
{
    const char *leader = env->leader ? env->leader : "";
    w->welcomed = false;
    w->node = hx_endpoints_next((const char (*)[HX_ENDPOINT_MAX + 1])w->nodes, w->n_nodes, w->node, leader, "worker");
    bool pause = !leader[0] || ++w->hops >= w->n_nodes;
    uv_timer_start(&w->hop, on_hop, pause ? HX_NO_LEADER_PAUSE_MS : 0, 0);
}

/* libzmq does not retry a connection whose handshake was refused: the liveness timer makes a
 * new one, so a key added to the allow-list (and a reload) is picked up without a restart.
 * The refusal is logged once, not at each new connection. */
static void on_monitor(hx_zuv_t *z, zmq_msg_t *parts, size_t n, void *arg)
{
    (void)z;
    hx_worker_t *w = arg;
    char why[200];
    switch (hx_handshake_event(parts, n, w->curve_public, why, sizeof why)) {
    case HX_HANDSHAKE_OK:
        if (w->refused[0])
            hx_info("the broker accepts this worker's key again");
        w->refused[0] = '\0';
        w->drops = 0;
        break;
    case HX_HANDSHAKE_DROPPED:
        if (++w->drops < HX_HANDSHAKE_DROPS_REFUSED || w->refused[0])
            break;
        /* fall through */
    case HX_HANDSHAKE_REFUSED:
        if (strcmp(w->refused, why) != 0)
            hx_error("%s (trying again every %u ms)", why, w->heartbeat_ms * w->liveness);
        snprintf(w->refused, sizeof w->refused, "%s", why);
        break;
    default:
        break;
    }
}

/* Once both zuvs' handles are closed, the sockets go. */
static void conn_release(conn_t *c)
{
    if (--c->open > 0)
        return;
    zmq_close(c->sock);
    if (c->mon)
        zmq_close(c->mon);
    free(c);
}

static void conn_closed(hx_zuv_t *z)
{
    conn_release((conn_t *)z);
}

static void conn_mon_closed(hx_zuv_t *z)
{
    conn_release((conn_t *)((char *)z - offsetof(conn_t, mon_zuv)));
}

static void conn_close(hx_worker_t *w)
{
    if (w->conn) {
        conn_t *c = w->conn;
        w->conn = NULL;
        c->open = c->mon ? 2 : 1;
        hx_zuv_close(&c->zuv, conn_closed);
        if (c->mon)
            hx_zuv_close(&c->mon_zuv, conn_mon_closed);
    }
}

static int conn_open(hx_worker_t *w)
{
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return HX_ENOMEM;
    c->w = w;
    c->sock = zmq_socket(w->zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (w->curve_server[0]) {
        zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, w->curve_server, 40);
        zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, w->curve_public, 40);
        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, w->curve_secret, 40);
    }
    c->mon = hx_handshake_monitor(w->zctx, c->sock, w->mon_seq++);
    snprintf(w->endpoint, sizeof w->endpoint, "%s", w->nodes[w->node]);
    if (zmq_connect(c->sock, w->endpoint) != 0 || hx_zuv_init(&c->zuv, &w->loop, c->sock, on_message, w) != 0) {
        zmq_close(c->sock);
        if (c->mon)
            zmq_close(c->mon);
        free(c);
        return HX_EINVAL;
    }
    if (c->mon && hx_zuv_init(&c->mon_zuv, &w->loop, c->mon, on_monitor, w) != 0) {
        zmq_close(c->mon);                      /* without it, a refusal looks like silence */
        c->mon = NULL;
    }
    w->drops = 0;
    w->conn = c;
    w->welcomed = false;
    w->last_recv = uv_now(&w->loop);
    send_hello(w);
    return 0;
}

static void on_hop(uv_timer_t *t)
{
    hx_worker_t *w = t->data;
    conn_close(w);
    unconfirmed_new_session(w, uv_now(&w->loop));
    conn_open(w);
}

static void on_timer(uv_timer_t *t)
{
    hx_worker_t *w = t->data;
    uint64_t now = uv_now(&w->loop);
    if (w->store_down) {
        store_probe(w, now);
        return;
    }
    if (uv_is_active((uv_handle_t *)&w->hop))
        return;                                 /* a move to another node is under way */
    if (now - w->last_recv > (uint64_t)w->heartbeat_ms * w->liveness) {
        int from = w->node;
        if (w->n_nodes > 1)                     /* a replicated broker: its next node */
            w->node = (w->node + 1) % w->n_nodes;
        if (!w->refused[0] && w->node != from)  /* a refusal was logged when it came */
            hx_warn("broker node %s silent for %llu ms; trying %s", w->nodes[from],
                    (unsigned long long)(now - w->last_recv), w->nodes[w->node]);
        else if (!w->refused[0])
            hx_warn("broker silent for %llu ms; reconnecting", (unsigned long long)(now - w->last_recv));
        hx_metric_add(w->m_reconnects, 1);
        conn_close(w);
        unconfirmed_new_session(w, now);
        conn_open(w);
        return;
    }
    unconfirmed_resend(w, now);
    /* No WELCOME yet: HELLO again, but only after a liveness window. A HELLO is not lost on a
     * connection; sent again sooner, it can reach the broker right after the first one (both
     * queued while connecting), and the broker takes a second HELLO as a new session that
     * gives back what the first was just handed. */
    if (!w->welcomed && now - w->hello_at >= (uint64_t)w->heartbeat_ms * w->liveness)
        send_hello(w);
    else if (now - w->last_send >= w->heartbeat_ms) {
        Handoff__Envelope env;
        env_init(&env, HANDOFF__KIND__KIND_HEARTBEAT);
        send_env(w, &env);
    }
    if (w->conn)
        hx_zuv_drain(&w->conn->zuv);            /* our sends may have swallowed the edge */
}

static void on_signal(uv_signal_t *s, int signum)
{
    hx_worker_t *w = s->data;
    if (signum == SIGHUP) {
        if (w->reload)
            w->reload(w, w->reload_arg);
        return;
    }
    hx_info("signal %d: stopping", signum);
    hx_worker_stop(w);
}

static int observe_init(hx_worker_t *w, const hx_worker_opts_t *o, char *err, size_t errcap);

hx_worker_t *hx_worker_new(const hx_worker_opts_t *o, char *err, size_t errcap)
{
    if (!o || !o->endpoint || !hx_name_valid(o->service)) {
        snprintf(err, errcap, "service: must be 1 to %d characters of [A-Za-z0-9._-]", HX_NAME_MAX);
        return NULL;
    }
    /* A list is checked here, naming the bad element; one endpoint is left to libzmq, as it
     * always was. */
    char nodes[HX_ENDPOINTS_MAX][HX_ENDPOINT_MAX + 1], why[512];
    bool list = strchr(o->endpoint, ',') != NULL;
    int n_nodes = list ? hx_endpoints_split(o->endpoint, nodes, why, sizeof why) : 1;
    if (n_nodes < 0) {
        snprintf(err, errcap, "broker endpoints: %s", why);
        return NULL;
    }
    if (!list)
        snprintf(nodes[0], sizeof nodes[0], "%s", o->endpoint);
    if (o->credit > HX_MAX_CREDIT) {
        snprintf(err, errcap, "credit: at most %d", HX_MAX_CREDIT);
        return NULL;
    }
    hx_worker_t *w = calloc(1, sizeof *w);
    hx_outbox_t *ob = calloc(1, sizeof *ob);
    if (!w || !ob) {
        free(w);
        free(ob);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    w->outbox = ob;
    if (o->curve_server_key) {
        if (strlen(o->curve_server_key) != 40 || !o->curve_public || strlen(o->curve_public) != 40 ||
            !o->curve_secret || strlen(o->curve_secret) != 40) {
            snprintf(err, errcap, "CURVE needs the broker's public key and this worker's key pair");
            free(ob);
            free(w);
            return NULL;
        }
        memcpy(w->curve_server, o->curve_server_key, 41);
        memcpy(w->curve_public, o->curve_public, 41);
        memcpy(w->curve_secret, o->curve_secret, 41);
    }
    memcpy(w->nodes, nodes, sizeof nodes);
    w->n_nodes = n_nodes;
    snprintf(w->endpoint, sizeof w->endpoint, "%s", nodes[0]);
    snprintf(w->service, sizeof w->service, "%s", o->service);
    w->credit = o->credit ? o->credit : 1;
    w->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 1000;
    w->liveness = o->liveness ? o->liveness : 3;
    uv_loop_init(&w->loop);
    w->zctx = zmq_ctx_new();
    if (observe_init(w, o, err, errcap) != 0) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", err);
        hx_worker_destroy(&w);
        snprintf(err, errcap, "%s", keep);
        return NULL;
    }
    return w;
}

/* True while the worker has a session the broker answers (WELCOME, and heard from within
 * the liveness window). On the loop thread. */
static bool session_live(hx_worker_t *w, char *why, size_t cap)
{
    uv_update_time(&w->loop);
    uint64_t now = uv_now(&w->loop), limit = (uint64_t)w->heartbeat_ms * w->liveness;
    if (w->store_down) {
        snprintf(why, cap, "the store cannot be reached: %s", w->store_why);
        return false;
    }
    if (!w->conn || !w->welcomed) {
        if (w->refused[0])
            snprintf(why, cap, "no session with the broker at %s: %s", w->endpoint, w->refused);
        else
            snprintf(why, cap, "no session with the broker at %s", w->endpoint);
        return false;
    }
    if (now - w->last_recv > limit) {
        snprintf(why, cap, "the broker at %s has been silent for %llu ms", w->endpoint,
                 (unsigned long long)(now - w->last_recv));
        return false;
    }
    return true;
}

static int http_page(void *arg, hx_http_page_t page, hx_buf_t *out)
{
    hx_worker_t *w = arg;
    char why[600], line[640];
    bool live = session_live(w, why, sizeof why);
    if (page == HX_HTTP_METRICS) {
        hx_metric_set(w->m_connected, live);
        return hx_metrics_render(w->metrics, out) == 0 ? 200 : 500;
    }
    int n = live ? snprintf(line, sizeof line, "ready\n") : snprintf(line, sizeof line, "not ready: %s\n", why);
    if (n < 0 || (size_t)n >= sizeof line)
        n = (int)strlen(line);
    return hx_buf_append(out, line, (size_t)n) ? 500 : live ? 200 : 503;
}

/* The worker's own series, in the program's registry; the HTTP server if asked for. */
static int observe_init(hx_worker_t *w, const hx_worker_opts_t *o, char *err, size_t errcap)
{
    w->metrics = o->metrics;
    if (!w->metrics)
        w->metrics = w->own_metrics = hx_metrics_new();
    w->m_latency = hx_metrics_histogram(w->metrics, "handoff_service_processing_seconds",
                                        "Time the service's handler took for one message (acked or nacked).", "service", w->service,
                                        latency_bounds_ns, sizeof latency_bounds_ns / sizeof latency_bounds_ns[0],
                                        1e9);
    w->m_ok = hx_metrics_counter(w->metrics, "handoff_service_messages_total",
                                 "Messages handled, by result: ok (acked with its outputs) or failed (nacked, "
                                 "the broker retries).", "result", "ok");
    w->m_failed = hx_metrics_counter(w->metrics, "handoff_service_messages_total",
                                     "Messages handled, by result: ok (acked with its outputs) or failed (nacked, "
                                     "the broker retries).", "result", "failed");
    w->m_connected = hx_metrics_gauge(w->metrics, "handoff_service_connected",
                                      "1 while the service has a live session with the broker (what /readyz "
                                      "says), else 0.", NULL, NULL);
    w->m_reconnects = hx_metrics_counter(w->metrics, "handoff_service_reconnects_total",
                                         "Times the broker went silent and the service connected again.", NULL,
                                         NULL);
    if (!w->metrics || !w->m_latency || !w->m_ok || !w->m_failed || !w->m_connected || !w->m_reconnects) {
        snprintf(err, errcap, "cannot register the metrics (out of memory, or a name already taken)");
        return -1;
    }
    if (!o->http)
        return 0;
    char why[512];
    hx_http_opts_t ho = {.listen = o->http, .loop = &w->loop, .page = http_page, .arg = w};
    if (!(w->http = hx_http_start(&ho, why, sizeof why))) {
        snprintf(err, errcap, "--http %s: %s", o->http, why);
        return -1;
    }
    hx_info("metrics and health on http://%s (port %d): /metrics /healthz /readyz", o->http,
            hx_http_port(w->http));
    return 0;
}

void hx_worker_on_reload(hx_worker_t *w, void (*fn)(hx_worker_t *w, void *arg), void *arg)
{
    w->reload = fn;
    w->reload_arg = arg;
}

void hx_worker_every(hx_worker_t *w, uint64_t period_ms, void (*fn)(hx_worker_t *w, void *arg), void *arg)
{
    w->tick_fn = period_ms ? fn : NULL;
    w->tick_arg = arg;
    w->tick_ms = period_ms;
}

static void on_tick(uv_timer_t *t)
{
    hx_worker_t *w = t->data;
    w->tick_fn(w, w->tick_arg);
}

void hx_worker_stop(hx_worker_t *w)
{
    w->stopping = true;
    uv_stop(&w->loop);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int hx_worker_run(hx_worker_t *w, hx_handler_fn fn, void *arg)
{
    w->fn = fn;
    w->arg = arg;
    if (conn_open(w) != 0) {
        hx_error("cannot connect to %s", w->endpoint);
        return HX_EINVAL;
    }
    uv_timer_init(&w->loop, &w->timer);
    w->timer.data = w;
    uv_timer_init(&w->loop, &w->hop);
    w->hop.data = w;
    uint64_t period = w->heartbeat_ms / 2 ? w->heartbeat_ms / 2 : 1;
    uv_timer_start(&w->timer, on_timer, period, period);
    if (w->tick_fn) {
        uv_timer_init(&w->loop, &w->tick);
        w->tick.data = w;
        uv_timer_start(&w->tick, on_tick, w->tick_ms < 60000 ? w->tick_ms : 60000, w->tick_ms);
    }
    uv_signal_init(&w->loop, &w->sigint);
    uv_signal_init(&w->loop, &w->sigterm);
    uv_signal_init(&w->loop, &w->sighup);
    w->sigint.data = w->sigterm.data = w->sighup.data = w;
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sighup, on_signal, SIGHUP);
    if (!w->stopping)
        uv_run(&w->loop, UV_RUN_DEFAULT);

    Handoff__Envelope bye;                      /* unacked messages go back at once */
    env_init(&bye, HANDOFF__KIND__KIND_BYE);
    send_env(w, &bye);
    if (w->conn) {
        int linger = 500;
        zmq_setsockopt(w->conn->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    conn_close(w);
    hx_http_stop(&w->http);                     /* before the loop's handles close */
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return 0;
}

void hx_worker_destroy(hx_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_worker_t *w = *self_p;
    conn_close(w);
    hx_http_stop(&w->http);
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    zmq_ctx_term(w->zctx);
    unconfirmed_clear(w);
    for (size_t i = 0; i < w->n_pending; i++)   /* never acked: the broker redelivers them */
        hx_batch_destroy(&w->pending[i]);
    free(w->pending);
    for (size_t i = 0; i < w->cap_answers; i++)
        hx_buf_free(&w->answers[i].frame);
    free(w->answers);
    hx_buf_free(&w->buf);
    free(w->outbox);
    hx_metrics_destroy(&w->own_metrics);
    free(w);
    *self_p = NULL;
}
