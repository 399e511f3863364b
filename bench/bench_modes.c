/* bench_modes — submit, latency, deliver and recovery: each against a durable broker that
 * the mode starts in its own temporary directory, checking every id as it goes. */
#include "bench.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

/* ---- the broker's own counters (ADMIN "stats") ----------------------------------------------- */

json_t *bench_broker_stats(bench_env_t *e)
{
    bench_conn_t c;
    if (bench_conn_open(&c, e, HANDOFF__ROLE__ROLE_ADMIN, "bench-stats", 0))   /* all counters: admin only */
        return NULL;
    Handoff__Envelope a = HANDOFF__ENVELOPE__INIT;
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    a.version = HX_PROTOCOL_VERSION;
    a.kind = HANDOFF__KIND__KIND_ADMIN;
    a.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    a.admin_op = "stats";
    hx_buf_t buf = {0};
    zmq_msg_t m;
    zmq_msg_init(&m);
    json_t *j = NULL;
    if (bench_conn_send_env(&c, &a, &buf) == 0 && bench_conn_recv(&c, &m, 10000) == 1) {
        Handoff__Envelope *r = handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        if (r && r->kind == HANDOFF__KIND__KIND_ADMIN_REPLY && r->text && r->text[0])
            j = json_loads(r->text, 0, NULL);
        if (r)
            handoff__envelope__free_unpacked(r, NULL);
    }
    zmq_msg_close(&m);
    hx_buf_free(&buf);
    bench_conn_close(&c);
    return j;
}

/* accepted messages and fdatasyncs so far; false when the broker does not answer "stats" */
static bool broker_stats(bench_env_t *e, uint64_t *accepted, uint64_t *fsyncs)
{
    json_t *j = bench_broker_stats(e);
    json_t *acc = json_object_get(json_object_get(j, "totals"), "accepted");
    json_t *fs = json_object_get(json_object_get(j, "store"), "fsyncs");
    bool ok = json_is_integer(acc) && json_is_integer(fs);
    if (ok) {
        *accepted = (uint64_t)json_integer_value(acc);
        *fsyncs = (uint64_t)json_integer_value(fs);
    }
    json_decref(j);
    return ok;
}

/* ---- producers: closed loop (a window) or open loop (a rate) ----------------------------------- */

typedef struct {
    bench_env_t *e;
    uint32_t index;
    uint64_t n;                 /* messages to send at most */
    uint32_t batch;             /* messages per SUBMIT */
    uint32_t window;            /* SUBMITs outstanding at most */
    double rate;                /* messages per second (open loop), 0 = closed loop */
    double duration_s;          /* stop sending after this (0: by count) */
    pthread_barrier_t *go;
    /* results */
    bench_samples_t lat;        /* per request: ack time - send time (open loop: - scheduled time) */
    bench_samples_t lag;        /* open loop: actual send - scheduled send */
    uint64_t sent, acked, duplicated, refused, lost;
    uint64_t t_start, t_end;
    int failed;
    char error[256];
} producer_t;

enum { R_UNSENT = 0, R_OUT = 1, R_ACKED = 2, R_REFUSED = 3 };

static int grow(uint8_t **st, uint64_t **ts, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    uint8_t *ns = realloc(*st, nc);
    if (!ns)
        return -1;
    *st = ns;
    uint64_t *nt = realloc(*ts, nc * sizeof *nt);
    if (!nt)
        return -1;
    *ts = nt;
    memset(*st + *cap, 0, nc - *cap);
    *cap = nc;
    return 0;
}

/* One producer's loop state: its session, its prepacked SUBMIT and each request's state and
 * send (or scheduled) time. */
typedef struct {
    bench_conn_t c;
    bench_prepacked_t pp;
    uint8_t (*ids)[HX_ID_LEN];  /* the batch's message ids */
    uint8_t *st;                /* per request: R_* */
    uint64_t *ts;               /* per request: sent (closed loop) or scheduled (open loop) */
    size_t cap;
    uint64_t n_req, next, outstanding;
    uint32_t stream;
    double interval_ns;         /* open loop: between requests; 0 = closed loop */
    uint64_t stop_at, last_heard;
    zmq_msg_t m;
} pstate_t;

static int producer_fail(producer_t *p, const char *why)
{
    p->failed = 1;
    snprintf(p->error, sizeof p->error, "%s", why);
    return -1;
}

/* Opens the session and packs the SUBMIT, meets the others at the barrier; -1 when it could
 * not (then nothing is left open). */
static int producer_start(producer_t *p, pstate_t *s)
{
    memset(s, 0, sizeof *s);
    char name[32];
    snprintf(name, sizeof name, "bench-p%u", p->index);
    s->ids = calloc(p->batch, HX_ID_LEN);
    int opened = bench_conn_open(&s->c, p->e, HANDOFF__ROLE__ROLE_CLINIC, name, 0);
    int packed = bench_prepack_submit(&s->pp, HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX, name, "bench", p->e->o->size,
                                      p->batch);
    pthread_barrier_wait(p->go);
    if (opened || packed || !s->ids) {
        p->failed = 1;
        snprintf(p->error, sizeof p->error, "producer %u could not start", p->index);
        if (!opened)
            bench_conn_close(&s->c);
        bench_prepack_free(&s->pp);
        free(s->ids);
        return -1;
    }
    s->n_req = (p->n + p->batch - 1) / p->batch;
    s->stream = 0x10000u + p->index;
    s->interval_ns = p->rate > 0 ? 1e9 / (p->rate / p->batch) : 0;
    zmq_msg_init(&s->m);
    p->t_start = bench_now_ns();
    s->stop_at = p->duration_s > 0 ? p->t_start + (uint64_t)(p->duration_s * 1e9) : UINT64_MAX;
    s->last_heard = p->t_start;
    return 0;
}

static bool may_send(const pstate_t *s, uint64_t now)
{
    return s->next < s->n_req && now < s->stop_at;
}

/* Sends every request that is due (open loop) or fits the window (closed loop). */
static int send_due(producer_t *p, pstate_t *s, uint64_t now)
{
    while (may_send(s, now) && s->outstanding < p->window) {
        uint64_t due = s->interval_ns > 0 ? p->t_start + (uint64_t)((double)s->next * s->interval_ns) : now;
        if (due > now)
            break;
        if (grow(&s->st, &s->ts, &s->cap, s->next + 1))
            return producer_fail(p, "out of memory");
        for (uint32_t i = 0; i < p->batch; i++)
            bench_id(s->ids[i], s->stream, s->next * p->batch + i);
        bench_prepack_set_ids(&s->pp, (const uint8_t(*)[HX_ID_LEN])s->ids);
        if (bench_conn_send(&s->c, s->pp.buf.data, s->pp.buf.len))
            return producer_fail(p, "send failed");
        if (s->interval_ns > 0) {
            uint64_t sent_at = bench_now_ns();
            bench_samples_add(&p->lag, sent_at - due);
            s->ts[s->next] = due;               /* from the scheduled time: no coordinated omission */
        } else {
            s->ts[s->next] = now;
        }
        s->st[s->next++] = R_OUT;
        s->outstanding++;
        p->sent += p->batch;
    }
    return 0;
}

/* Open loop with nothing received: sleeps until the next send is due (at least 250 us).
 * Returns 0, or -1 when nothing was heard for 30 s with requests outstanding. */
static int idle(pstate_t *s, uint64_t t_start, bool sending)
{
    uint64_t due = t_start + (uint64_t)((double)s->next * s->interval_ns);
    uint64_t t = bench_now_ns();
    if (t - s->last_heard > 30ull * 1000000000u && s->outstanding)
        return -1;
    /* At least 250 us at a time: waking every 20-40 us to send one message stole a core from
     * the broker on a 2-core machine. A send made late by this counts in its latency
     * (measured from the scheduled time), so the figure stays honest. */
    if (!sending || due > t)
        bench_sleep_ns(!sending ? 250000 : due - t > 250000 ? due - t : 250000);
    bench_conn_keepalive(&s->c, t);
    return 0;
}

/* Counts one reply (in s->m, received at t) against its request. */
static void take_reply(producer_t *p, pstate_t *s, uint64_t t)
{
    s->last_heard = t;
    bench_reply_t rep;
    uint32_t stream;
    uint64_t seq;
    if (!bench_reply_scan(zmq_msg_data(&s->m), zmq_msg_size(&s->m), &rep) || !rep.corr ||
        !bench_id_parse(rep.corr, &stream, &seq) || stream != s->stream || seq / p->batch >= s->next) {
        if (rep.kind == HANDOFF__KIND__KIND_ERROR && !p->error[0])
            snprintf(p->error, sizeof p->error, "broker: %.*s", (int)rep.text_len, (const char *)rep.text);
        return;
    }
    uint64_t req = seq / p->batch;
    if (rep.kind == HANDOFF__KIND__KIND_ACCEPTED) {
        if (s->st[req] == R_OUT) {
            s->st[req] = R_ACKED;
            s->outstanding--;
            p->acked += p->batch;
            bench_samples_add(&p->lat, t - s->ts[req]);
        } else {
            p->duplicated += p->batch;
        }
    } else if (rep.kind == HANDOFF__KIND__KIND_ERROR) {
        if (s->st[req] == R_OUT) {
            s->st[req] = R_REFUSED;
            s->outstanding--;
        }
        p->refused += p->batch;
        if (!p->error[0])
            snprintf(p->error, sizeof p->error, "broker refused: %.*s", (int)rep.text_len, (const char *)rep.text);
    }
}

/* Counts what was never answered and closes everything. */
static void producer_finish(producer_t *p, pstate_t *s)
{
    p->t_end = bench_now_ns();
    for (uint64_t i = 0; i < s->next; i++)
        if (s->st[i] == R_OUT)
            p->lost += p->batch;
    zmq_msg_close(&s->m);
    bench_conn_close(&s->c);
    bench_prepack_free(&s->pp);
    free(s->ids);
    free(s->st);
    free(s->ts);
}

static void *producer_run(void *arg)
{
    producer_t *p = arg;
    pstate_t s;
    if (producer_start(p, &s))
        return NULL;
    for (;;) {
        if (bench_stop) {
            producer_fail(p, "interrupted");
            break;
        }
        uint64_t now = bench_now_ns();
        if (send_due(p, &s, now))
            break;
        bool sending = may_send(&s, now);
        if (!sending && s.outstanding == 0)
            break;
        int r;
        if (s.interval_ns > 0) {
            r = bench_conn_recv(&s.c, &s.m, 0);
            if (r == 0 && idle(&s, p->t_start, sending) == 0)
                continue;                       /* nothing yet, still in time */
        } else {
            r = bench_conn_recv(&s.c, &s.m, 30000);
        }
        if (r <= 0) {
            p->failed = 1;
            snprintf(p->error, sizeof p->error, "producer %u: no answer for 30 s with %" PRIu64 " outstanding",
                     p->index, s.outstanding);
            break;
        }
        take_reply(p, &s, bench_now_ns());
    }
    producer_finish(p, &s);
    return NULL;
}

typedef struct {
    uint64_t sent, acked, duplicated, refused, lost;
    double seconds;
    bench_samples_t lat, lag;
    int failed;
} load_result_t;

static int run_producers(bench_env_t *e, uint32_t n_prod, uint64_t count, uint32_t batch, uint32_t window, double rate,
                         double duration_s, load_result_t *out)
{
    memset(out, 0, sizeof *out);
    producer_t *ps = calloc(n_prod, sizeof *ps);
    pthread_t *th = calloc(n_prod, sizeof *th);
    pthread_barrier_t go;
    if (!ps || !th || pthread_barrier_init(&go, NULL, n_prod + 1) != 0) {
        free(ps);
        free(th);
        return -1;
    }
    for (uint32_t i = 0; i < n_prod; i++) {
        uint64_t share = count / n_prod + (i < count % n_prod);
        ps[i] = (producer_t){.e = e, .index = i, .n = share, .batch = batch, .window = window,
                             .rate = rate / n_prod, .duration_s = duration_s, .go = &go};
        if (pthread_create(&th[i], NULL, producer_run, &ps[i]) != 0) {
            fprintf(stderr, "%s: cannot start a producer thread\n", BENCH_PROG);
            bench_kill_all();
            exit(1);                            /* the barrier cannot be released: give up now */
        }
    }
    pthread_barrier_wait(&go);
    uint64_t t0 = UINT64_MAX, t1 = 0;
    for (uint32_t i = 0; i < n_prod; i++) {
        pthread_join(th[i], NULL);
        producer_t *p = &ps[i];
        if (p->failed) {
            out->failed = 1;
            fprintf(stderr, "%s: %s\n", BENCH_PROG, p->error);
        } else if (p->error[0]) {
            fprintf(stderr, "%s: %s\n", BENCH_PROG, p->error);
        }
        out->sent += p->sent;
        out->acked += p->acked;
        out->duplicated += p->duplicated;
        out->refused += p->refused;
        out->lost += p->lost;
        if (p->t_start && p->t_start < t0)
            t0 = p->t_start;
        if (p->t_end > t1)
            t1 = p->t_end;
        bench_samples_merge(&out->lat, &p->lat);
        bench_samples_merge(&out->lag, &p->lag);
        bench_samples_free(&p->lat);
        bench_samples_free(&p->lag);
    }
    out->seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    bench_samples_sort(&out->lat);
    bench_samples_sort(&out->lag);
    pthread_barrier_destroy(&go);
    free(ps);
    free(th);
    return 0;
}

static void report_latency(bench_report_t *r, const bench_samples_t *lat, const char *what)
{
    char label[96];
    static const struct { double p; const char *key; } pcts[] = {
        {50, "p50_us"}, {90, "p90_us"}, {99, "p99_us"}, {99.9, "p99_9_us"}};
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        snprintf(label, sizeof label, "%s p%g", what, pcts[i].p);
        bench_report_num(r, pcts[i].key, bench_samples_pct_us(lat, pcts[i].p), "us", label);
    }
    snprintf(label, sizeof label, "%s max", what);
    bench_report_num(r, "max_us", lat->n ? (double)lat->v[lat->n - 1] / 1000.0 : 0, "us", label);
}

/* CPU per message of the broker (all its threads) and of the bench itself: on a 2-core
 * machine the two share the cores, so both matter for reading a throughput figure. */
static void report_cpu(bench_report_t *r, uint64_t broker_ns, uint64_t self_ns, uint64_t msgs)
{
    if (!msgs)
        return;
    bench_report_num(r, "broker_cpu_us_per_msg", (double)broker_ns / 1000.0 / (double)msgs, "us",
                     "broker CPU per message");
    bench_report_num(r, "bench_cpu_us_per_msg", (double)self_ns / 1000.0 / (double)msgs, "us",
                     "bench (client) CPU per message");
}

static void report_common(bench_report_t *r, const bench_opts_t *o)
{
    bench_report_int(r, "size", o->size, NULL);
    bench_report_str(r, "curve", o->curve ? "on" : "off");
}

static int verdict(bench_report_t *r, uint64_t lost, uint64_t duplicated, int failed)
{
    bench_report_int(r, "lost", lost, "lost");
    bench_report_int(r, "duplicated", duplicated, "duplicated");
    bench_report_str(r, "ok", !failed && lost == 0 && duplicated == 0 ? "yes" : "no");
    bench_report_end(r);
    return !failed && lost == 0 && duplicated == 0 ? 0 : 1;
}

/* ---- submit ------------------------------------------------------------------------------------- */

/* What the broker counted and what both sides spent while the producers ran. */
typedef struct {
    bool stats;                 /* the broker answered "stats" before and after */
    uint64_t accepted, fsyncs;  /* during the run */
    uint64_t broker_cpu_ns, self_cpu_ns;
    uint64_t nodes_cpu_ns;      /* a cluster: every node's */
} load_cost_t;

/* With --curve: the producers' and the stats session's keys, before the broker reads its
 * allow-list. */
static void load_keys(bench_env_t *e, const bench_opts_t *o)
{
    if (!o->curve)
        return;
    char name[32], pub[41], sec[41];
    for (uint32_t i = 0; i < o->producers; i++) {
        snprintf(name, sizeof name, "bench-p%u", i);
        bench_key_for(e, "clinic", name, pub, sec, NULL, 0);
    }
    bench_key_for(e, "admin", "bench-stats", pub, sec, NULL, 0);
}

/* The table rows and JSON line of a submit or latency run; 0 when it checked out. */
static int report_load(const bench_opts_t *o, bool open_loop, double rate, const load_result_t *res,
                       const load_cost_t *cost, uint32_t nodes)
{
    bench_report_t r;
    char mode[48];
    snprintf(mode, sizeof mode, "%s%s", open_loop ? "latency" : "submit", nodes ? "-cluster" : "");
    bench_report_begin(&r, o, mode);
    if (nodes)
        bench_report_int(&r, "nodes", nodes, "replicated nodes (a majority has each message on disk)");
    if (open_loop)
        bench_report_num(&r, "offered_per_s", rate, "msg/s", "offered rate");
    bench_report_num(&r, "msgs_per_s", res->seconds > 0 ? (double)res->acked / res->seconds : 0, "msg/s",
                     open_loop ? "achieved (acked) rate" : "durable submit->ack");
    bench_report_num(&r, "mb_per_s", res->seconds > 0 ? (double)res->acked * o->size / res->seconds / 1e6 : 0,
                     "MB/s", "payload throughput");
    bench_report_int(&r, "messages", res->acked, "messages acked");
    bench_report_num(&r, "seconds", res->seconds, "s", "elapsed");
    bench_report_int(&r, "producers", o->producers, NULL);
    bench_report_int(&r, open_loop ? "batch" : "window", open_loop ? o->batch : o->window, NULL);
    if (!open_loop)
        bench_report_int(&r, "batch", o->batch, NULL);
    report_common(&r, o);
    report_latency(&r, &res->lat, "ack latency");
    if (open_loop) {
        bench_report_num(&r, "send_lag_p99_us", bench_samples_pct_us(&res->lag, 99), "us",
                         "sender lateness p99 (included)");
    }
    if (cost->stats) {
        bench_report_int(&r, "broker_accepted", cost->accepted, "broker counted accepted");
        bench_report_int(&r, "fdatasyncs", cost->fsyncs, "group commits (fdatasync)");
        bench_report_num(&r, "msgs_per_fsync", cost->fsyncs ? (double)cost->accepted / (double)cost->fsyncs : 0,
                         "", "messages per fdatasync");
    }
    report_cpu(&r, cost->broker_cpu_ns, cost->self_cpu_ns, res->acked);
    if (nodes && res->acked)
        bench_report_num(&r, "nodes_cpu_us_per_msg", (double)cost->nodes_cpu_ns / 1000.0 / (double)res->acked, "us",
                         "all nodes' CPU per message");
    bench_report_int(&r, "refused", res->refused, "refused");
    /* the broker must have stored exactly what it acknowledged */
    uint64_t lost = res->lost + res->refused;
    uint64_t dup = res->duplicated;
    if (cost->stats && cost->accepted > res->acked)
        dup += cost->accepted - res->acked;
    return verdict(&r, lost, dup, res->failed);
}

/* --cluster's last row: what replication costs, the replicated rate as a share of the single
 * broker's. */
static int report_ratio(const bench_opts_t *o, const char *mode, double single, double replicated)
{
    bench_report_t r;
    bench_report_begin(&r, o, mode);
    bench_report_int(&r, "nodes", o->cluster, "replicated nodes");
    bench_report_num(&r, "single_msgs_per_s", single, "msg/s", "single broker");
    bench_report_num(&r, "replicated_msgs_per_s", replicated, "msg/s", "replicated");
    bench_report_num(&r, "ratio", single > 0 ? replicated / single : 0, "", "replicated / single");
    return verdict(&r, 0, 0, false);
}

/* One run: the single durable broker, or (nodes > 0) a replicated one of that many nodes,
 * the producers on its leader. *rate_out: the acked messages per second. */
static int submit_or_latency_on(const bench_opts_t *o, bool open_loop, uint32_t nodes, double *rate_out)
{
    const char *mode = open_loop ? "latency" : "submit";
    bench_env_t e;
    if (bench_env_init(&e, o, mode)) {
        bench_env_cleanup(&e);
        return 1;
    }
    int rc = 1;
    load_keys(&e, o);
    if (nodes ? bench_start_cluster(&e, nodes) : bench_start_broker(&e, NULL))
        goto out;
    double rate = open_loop ? o->rate : 0;
    uint64_t count = o->count;
    if (open_loop && o->duration_s > 0 && !count)
        count = (uint64_t)(rate * o->duration_s);
    if (!open_loop && o->duration_s > 0 && !count)
        count = UINT64_MAX / 2;                 /* by time */
    bench_say(o, "%s: %u producer(s), %s %u, %u B, %s%s\n", mode, o->producers, open_loop ? "batch" : "window",
              open_loop ? o->batch : o->window, o->size, o->duration_s > 0 && !open_loop ? "for the duration" : "",
              o->curve ? ", CURVE" : "");
    load_result_t res;
    load_cost_t cost = {0};
    uint64_t acc0 = 0, fs0 = 0, acc1 = 0, fs1 = 0;
    bool stats = broker_stats(&e, &acc0, &fs0);
    pid_t broker = bench_pid(&e, "broker");
    bench_attach_start(&e);
    uint64_t bcpu0 = bench_cpu_ns(broker), scpu0 = bench_cpu_ns(getpid()), ncpu0 = bench_brokers_cpu_ns(&e);
    int prc = run_producers(&e, o->producers, count, o->batch, open_loop ? 1000000 : o->window, rate, o->duration_s,
                            &res);
    cost.broker_cpu_ns = bench_cpu_ns(broker) - bcpu0;
    cost.nodes_cpu_ns = bench_brokers_cpu_ns(&e) - ncpu0;
    cost.self_cpu_ns = bench_cpu_ns(getpid()) - scpu0;
    bench_attach_stop(&e);
    if (prc)
        goto out;
    cost.stats = stats && broker_stats(&e, &acc1, &fs1);
    cost.accepted = acc1 - acc0;
    cost.fsyncs = fs1 - fs0;
    rc = report_load(o, open_loop, rate, &res, &cost, nodes);
    if (rate_out)
        *rate_out = res.seconds > 0 ? (double)res.acked / res.seconds : 0;
    bench_samples_free(&res.lat);
    bench_samples_free(&res.lag);
out:
    bench_env_cleanup(&e);
    return rc;
}

/* The single broker, then (--cluster N) the same load on N replicated nodes, and what
 * replication costs: the replicated rate as a share of the single one. */
static int submit_or_latency(const bench_opts_t *o, bool open_loop)
{
    double single = 0, replicated = 0;
    int rc = submit_or_latency_on(o, open_loop, 0, &single);
    if (o->cluster && !bench_stop) {
        rc |= submit_or_latency_on(o, open_loop, o->cluster, &replicated);
        rc |= report_ratio(o, open_loop ? "latency-cluster-ratio" : "submit-cluster-ratio", single, replicated);
    }
    return rc;
}

int bench_mode_submit(const bench_opts_t *o)
{
    return submit_or_latency(o, false);
}

int bench_mode_latency(const bench_opts_t *o)
{
    return submit_or_latency(o, true);
}

/* ---- latency-curve --------------------------------------------------------------------------------- */

/* The knee: the closed-loop maximum first (submit with --producers, window --window, for
 * --duration-s), then open-loop runs at 10, 25, 50, 75 and 90 % of it on the same broker, each
 * for --duration-s: p50, p99 and p99.9 of the ack latency at each, measured from each send's
 * scheduled time. One table row and JSON keys per point (e.g. p99_us_at_50). */
int bench_mode_latency_curve(const bench_opts_t *o)
{
    static const unsigned pct[] = {10, 25, 50, 75, 90};
    bench_env_t e;
    if (bench_env_init(&e, o, "latency-curve")) {
        bench_env_cleanup(&e);
        return 1;
    }
    int rc = 1, failed = 0;
    uint64_t lost = 0, dup = 0;
    load_keys(&e, o);
    if (bench_start_broker(&e, NULL))
        goto out;
    bench_say(o, "latency-curve: %u producer(s), window %u, %u B: the maximum for %.1f s\n", o->producers, o->window,
              o->size, o->duration_s);
    load_result_t res;
    if (run_producers(&e, o->producers, UINT64_MAX / 2, o->batch, o->window, 0, o->duration_s, &res))
        goto out;
    double max = res.seconds > 0 ? (double)res.acked / res.seconds : 0;
    uint64_t total = res.acked;
    lost += res.lost + res.refused;
    dup += res.duplicated;
    failed |= res.failed;
    bench_samples_free(&res.lat);
    bench_samples_free(&res.lag);
    bench_report_t r;
    bench_report_begin(&r, o, "latency-curve");
    bench_report_num(&r, "max_msgs_per_s", max, "msg/s", "closed-loop maximum");
    report_common(&r, o);
    for (size_t i = 0; i < sizeof pct / sizeof pct[0] && max > 0 && !failed; i++) {
        double rate = max * pct[i] / 100.0;
        bench_say(o, "latency-curve: %u %% of the maximum, %.0f msg/s offered for %.1f s\n", pct[i], rate,
                  o->duration_s);
        if (run_producers(&e, o->producers, (uint64_t)(rate * o->duration_s), o->batch, 1000000, rate, o->duration_s,
                          &res)) {
            failed = 1;
            break;
        }
        char key[40], label[80];
        snprintf(key, sizeof key, "offered_at_%u", pct[i]);
        snprintf(label, sizeof label, "%u %%: offered", pct[i]);
        bench_report_num(&r, key, rate, "msg/s", label);
        snprintf(key, sizeof key, "achieved_at_%u", pct[i]);
        snprintf(label, sizeof label, "%u %%: achieved", pct[i]);
        bench_report_num(&r, key, res.seconds > 0 ? (double)res.acked / res.seconds : 0, "msg/s", label);
        static const struct { double p; const char *name; } ps[] = {{50, "p50"}, {99, "p99"}, {99.9, "p99_9"}};
        for (size_t k = 0; k < 3; k++) {
            snprintf(key, sizeof key, "%s_us_at_%u", ps[k].name, pct[i]);
            snprintf(label, sizeof label, "%u %%: ack latency p%g", pct[i], ps[k].p);
            bench_report_num(&r, key, bench_samples_pct_us(&res.lat, ps[k].p), "us", label);
        }
        total += res.acked;
        lost += res.lost + res.refused;
        dup += res.duplicated;
        failed |= res.failed;
        bench_samples_free(&res.lat);
        bench_samples_free(&res.lag);
    }
    bench_report_int(&r, "messages", total, "messages acked, all runs");
    rc = verdict(&r, lost, dup, failed || max <= 0);
out:
    bench_env_cleanup(&e);
    return rc;
}

/* ---- deliver -------------------------------------------------------------------------------------- */

/* One deliver run: the single durable broker, or (nodes > 0) a replicated one, the workers on
 * its leader (every ack committed on a majority before the message is settled). */
static int deliver_on(const bench_opts_t *o, uint32_t nodes, double *rate_out)
{
    bench_env_t e;
    if (bench_env_init(&e, o, "deliver")) {
        bench_env_cleanup(&e);
        return 1;
    }
    int rc = 1;
    const char *mailbox = "bench-d";
    if (o->curve) {
        char pub[41], sec[41];
        bench_key_for(&e, "clinic", mailbox, pub, sec, NULL, 0);
        bench_key_for(&e, "clinic", "bench-d-filler", pub, sec, NULL, 0);
    }
    if (nodes ? bench_start_cluster(&e, nodes) : bench_start_broker(&e, NULL))
        goto out;
    bench_say(o, "deliver: filling %s with %" PRIu64 " messages of %u B\n", mailbox, o->count, o->size);
    uint64_t t0 = bench_now_ns();
    if (bench_fill(&e, mailbox, 7, o->count, o->size))
        goto out;
    double fill_s = (double)(bench_now_ns() - t0) / 1e9;
    bench_say(o, "deliver: %u worker(s) fetching %u at a time and acking\n", o->workers, o->batch);
    bench_drain_t d;
    pid_t broker = bench_pid(&e, "broker");
    bench_attach_start(&e);
    uint64_t bcpu0 = bench_cpu_ns(broker), scpu0 = bench_cpu_ns(getpid()), ncpu0 = bench_brokers_cpu_ns(&e);
    int drc = bench_drain(&e, mailbox, 7, o->count, o->workers, o->batch, &d);
    uint64_t bcpu = bench_cpu_ns(broker) - bcpu0, scpu = bench_cpu_ns(getpid()) - scpu0;
    uint64_t ncpu = bench_brokers_cpu_ns(&e) - ncpu0;
    bench_attach_stop(&e);
    bench_report_t r;
    bench_report_begin(&r, o, nodes ? "deliver-cluster" : "deliver");
    if (nodes)
        bench_report_int(&r, "nodes", nodes, "replicated nodes (a majority has each ack on disk)");
    if (rate_out)
        *rate_out = d.seconds > 0 ? (double)d.delivered / d.seconds : 0;
    bench_report_num(&r, "msgs_per_s", d.seconds > 0 ? (double)d.delivered / d.seconds : 0, "msg/s",
                     "fetch+ack (durable ack)");
    bench_report_int(&r, "messages", d.delivered, "messages delivered");
    bench_report_num(&r, "seconds", d.seconds, "s", "elapsed");
    bench_report_num(&r, "fill_msgs_per_s", fill_s > 0 ? (double)o->count / fill_s : 0, "msg/s",
                     "pre-fill (batched submits)");
    bench_report_int(&r, "workers", o->workers, NULL);
    bench_report_int(&r, "batch", o->batch, NULL);
    report_common(&r, o);
    report_cpu(&r, bcpu, scpu, d.delivered);
    if (nodes && d.delivered)
        bench_report_num(&r, "nodes_cpu_us_per_msg", (double)ncpu / 1000.0 / (double)d.delivered, "us",
                         "all nodes' CPU per message");
    bench_report_int(&r, "leftover", d.leftover, "left in the mailbox");
    bench_report_int(&r, "foreign", d.foreign, NULL);
    rc = verdict(&r, d.lost + d.leftover, d.duplicated, drc != 0);
out:
    bench_env_cleanup(&e);
    return rc;
}

int bench_mode_deliver(const bench_opts_t *o)
{
    double single = 0, replicated = 0;
    int rc = deliver_on(o, 0, &single);
    if (o->cluster && !bench_stop) {
        rc |= deliver_on(o, o->cluster, &replicated);
        rc |= report_ratio(o, "deliver-cluster-ratio", single, replicated);
    }
    return rc;
}

/* ---- recovery ------------------------------------------------------------------------------------ */

/* Time until a fresh session gets an answer to "health". */
static int health_ns(bench_env_t *e, uint64_t *ns)
{
    uint64_t t0 = bench_now_ns();
    bench_conn_t c;
    if (bench_conn_open(&c, e, HANDOFF__ROLE__ROLE_CLINIC, "bench-health", 0))
        return -1;
    Handoff__Envelope a = HANDOFF__ENVELOPE__INIT;
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    a.version = HX_PROTOCOL_VERSION;
    a.kind = HANDOFF__KIND__KIND_ADMIN;
    a.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    a.admin_op = "health";
    hx_buf_t buf = {0};
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = -1;
    if (bench_conn_send_env(&c, &a, &buf) == 0 && bench_conn_recv(&c, &m, 60000) == 1) {
        bench_reply_t rep;
        if (bench_reply_scan(zmq_msg_data(&m), zmq_msg_size(&m), &rep) &&
            rep.kind == HANDOFF__KIND__KIND_ADMIN_REPLY)
            rc = 0;
    }
    *ns = bench_now_ns() - t0;
    zmq_msg_close(&m);
    hx_buf_free(&buf);
    bench_conn_close(&c);
    return rc;
}

int bench_mode_recovery(const bench_opts_t *o)
{
    bench_env_t e;
    if (bench_env_init(&e, o, "recovery")) {
        bench_env_cleanup(&e);
        return 1;
    }
    int rc = 1;
    const char *mailbox = "bench-r";
    if (o->curve) {
        char pub[41], sec[41];
        bench_key_for(&e, "clinic", mailbox, pub, sec, NULL, 0);
        bench_key_for(&e, "clinic", "bench-r-filler", pub, sec, NULL, 0);
        bench_key_for(&e, "clinic", "bench-health", pub, sec, NULL, 0);
    }
    uint64_t first_ready;
    if (bench_start_broker(&e, &first_ready))
        goto out;
    uint64_t hns;
    if (health_ns(&e, &hns)) {
        fprintf(stderr, "%s: recovery: the new broker does not answer health\n", BENCH_PROG);
        goto out;
    }
    uint64_t rss_empty = bench_rss(bench_pid(&e, "broker"));
    bench_say(o, "recovery: filling %s with %" PRIu64 " messages of %u B\n", mailbox, o->count, o->size);
    uint64_t t0 = bench_now_ns();
    if (bench_fill(&e, mailbox, 9, o->count, o->size))
        goto out;
    double fill_s = (double)(bench_now_ns() - t0) / 1e9;
    uint64_t rss_full = bench_rss(bench_pid(&e, "broker"));
    bench_say(o, "recovery: stopping the broker (SIGTERM) and starting it again\n");
    int status = bench_stop_proc(&e, bench_pid(&e, "broker"));
    if (status != 0) {
        fprintf(stderr, "%s: recovery: the broker did not stop cleanly (status %d)\n", BENCH_PROG, status);
        goto out;
    }
    uint64_t ready_ns = 0;
    if (bench_start_broker(&e, &ready_ns))
        goto out;
    uint64_t t_health0 = bench_now_ns();
    if (health_ns(&e, &hns)) {
        fprintf(stderr, "%s: recovery: the restarted broker does not answer health\n", BENCH_PROG);
        goto out;
    }
    uint64_t health_total = ready_ns + (bench_now_ns() - t_health0);
    uint64_t rss = bench_rss(bench_pid(&e, "broker"));
    bench_say(o, "recovery: draining and checking every id\n");
    bench_drain_t d;
    int drc = bench_drain(&e, mailbox, 9, o->count, o->workers, o->batch, &d);
    bench_report_t r;
    bench_report_begin(&r, o, "recovery");
    bench_report_int(&r, "queued", o->count, "messages queued");
    bench_report_num(&r, "ready_ms", (double)ready_ns / 1e6, "ms", "restart until ready file");
    bench_report_num(&r, "health_ms", (double)health_total / 1e6, "ms", "restart until health answers");
    bench_report_num(&r, "empty_ready_ms", (double)first_ready / 1e6, "ms", "first start (empty) ready");
    bench_report_int(&r, "rss_bytes", rss, "broker RSS after restart (B)");
    bench_report_int(&r, "rss_empty_bytes", rss_empty, "broker RSS empty (B)");
    bench_report_int(&r, "rss_before_bytes", rss_full, "broker RSS before restart (B)");
    double per = o->count ? (double)(rss > rss_empty ? rss - rss_empty : 0) / (double)o->count : 0;
    bench_report_num(&r, "rss_per_msg_bytes", per, "B", "RSS per queued message");
    bench_report_num(&r, "fill_msgs_per_s", fill_s > 0 ? (double)o->count / fill_s : 0, "msg/s",
                     "fill (batched submits)");
    bench_report_num(&r, "drain_msgs_per_s", d.seconds > 0 ? (double)d.delivered / d.seconds : 0, "msg/s",
                     "drain after restart");
    bench_report_int(&r, "delivered", d.delivered, "delivered after restart");
    report_common(&r, o);
    bench_report_int(&r, "leftover", d.leftover, "left in the mailbox");
    rc = verdict(&r, d.lost + d.leftover, d.duplicated, drc != 0);
out:
    bench_env_cleanup(&e);
    return rc;
}
