/* bench_pipeline — generated referrals end to end: each referring clinic submits to intake;
 * intake, triage and scheduling (the real programs) pass them on; the bench, holding a
 * session for every clinic of the generated network, fetches the handoffs from the
 * receiving clinics' mailboxes and the status updates from the referrers'. A referral is
 * settled by its final status: ready (booked, with its handoffs fetched), rejected or
 * on-hold. Latency: submit (or its scheduled time) until its first handoff is fetched. */
#include "bench.h"
#include "hx_errors.h"
#include "hx_gen.h"
#include "hx_intake.h"
#include "hx_refjson.h"
#include "hx_util.h"
#include "referral.pb-c.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <zmq.h>

/* An empty mailbox is asked again after this: 40 clinics polling is load on the broker too,
 * and the end-to-end latency includes up to this much polling delay. */
#define FETCH_IDLE_NS (2u * 1000000u)

typedef enum { S_UNSENT, S_SENT, S_ACCEPTED, S_READY, S_REJECTED, S_ON_HOLD } rstate_t;

typedef struct {
    char rid[HX_REFERRAL_ID_LEN + 1];
    uint8_t id[HX_ID_LEN];
    uint32_t clinic;            /* index of the referring clinic */
    hx_gen_kind_t kind;
    uint8_t *payload;
    size_t payload_len;
    rstate_t state;
    uint64_t t_submit;          /* sent (closed loop) or scheduled (open loop) */
    uint64_t t_handoff;         /* first handoff fetched */
    uint64_t t_settled;         /* seen settled (0: not yet) */
    uint32_t bookings;          /* from the ready status */
    uint32_t handoffs;          /* fetched */
    uint32_t disciplines;       /* bit per discipline handed off, to spot a doubled handoff */
    uint32_t status_dups;
    bool counted;               /* in pl->n_settled */
    Handoff__TaskStatus last_status;    /* the last final status received, and its time */
    uint64_t last_status_ms;
    UT_hash_handle hh;
} ref_t;

typedef struct {
    char id[HX_ID_MAX + 1];
    bench_conn_t conn;
    bool fetch_out;
    uint64_t next_fetch;        /* not before (after an empty mailbox) */
    UT_hash_handle hh;
} clinic_t;

typedef struct {
    bench_env_t *e;
    const bench_opts_t *o;
    clinic_t *clinics;          /* array */
    clinic_t *by_id;            /* hash over the array */
    size_t n_clinics;
    ref_t *refs;
    ref_t *by_rid;
    uint64_t n_refs;
    hx_buf_t buf;
    uint64_t fetch_seq;
    uint64_t duplicated, foreign, refused;
    uint64_t n_settled;         /* referrals settled now (kept as their states change) */
    char error[256];
} pipe_t;

/* ---- the network and its referrals ------------------------------------------------------- */

static int make_network(pipe_t *pl, hx_gen_t **gen_out)
{
    char rules_path[1200], dir_path[700];
    /* (paths longer than these buffers are cut and then simply not found) */
    snprintf(rules_path, sizeof rules_path, "%.1100s/services/triage/rules.json", pl->e->src);
    json_error_t jerr;
    json_t *rules = json_load_file(rules_path, 0, &jerr);
    if (!rules) {
        fprintf(stderr, "%s: pipeline: %s: %s (give --source-dir DIR)\n", BENCH_PROG, rules_path, jerr.text);
        return -1;
    }
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_gen_options_t go = {.clinics = pl->o->clinics, .therapists = pl->o->therapists, .seed = pl->o->seed};
    hx_gen_t *g = hx_gen_new(rules, &go, &errs);
    json_decref(rules);
    if (!g) {
        char why[1024];
        fprintf(stderr, "%s: pipeline: %s\n", BENCH_PROG, hx_errors_join(&errs, why, sizeof why));
        return -1;
    }
    json_t *dir = hx_gen_directory(g);
    snprintf(dir_path, sizeof dir_path, "%s/directory.json", pl->e->dir);
    if (!dir || json_dump_file(dir, dir_path, JSON_COMPACT) != 0) {
        json_decref(dir);
        hx_gen_destroy(&g);
        fprintf(stderr, "%s: pipeline: cannot write %s\n", BENCH_PROG, dir_path);
        return -1;
    }
    json_t *cl = json_object_get(dir, "clinics");
    pl->n_clinics = json_array_size(cl);
    pl->clinics = calloc(pl->n_clinics ? pl->n_clinics : 1, sizeof *pl->clinics);
    for (size_t i = 0; pl->clinics && i < pl->n_clinics; i++) {
        clinic_t *c = &pl->clinics[i];
        snprintf(c->id, sizeof c->id, "%s", json_string_value(json_object_get(json_array_get(cl, i), "id")));
        HASH_ADD_STR(pl->by_id, id, c);
    }
    json_decref(dir);
    *gen_out = g;
    return pl->clinics ? 0 : -1;
}

/* Referrals [first, first + n) of the generator, packed, with their ids. */
static int make_referrals(pipe_t *pl, hx_gen_t *g, uint64_t first, uint64_t n)
{
    pl->refs = calloc(n ? n : 1, sizeof *pl->refs);
    if (!pl->refs)
        return -1;
    pl->n_refs = n;
    for (uint64_t i = 0; i < n; i++) {
        if (i % 1024 == 0)                      /* a million take a minute: the sessions stay alive */
            for (size_t k = 0; k < pl->n_clinics; k++)
                bench_conn_keepalive(&pl->clinics[k].conn, bench_now_ns());
        ref_t *r = &pl->refs[i];
        json_t *j = hx_gen_referral(g, first + i, &r->kind);
        hx_errors_t errs;
        hx_errors_clear(&errs);
        Handoff__Referral *ref = j ? hx_referral_from_json(j, &errs) : NULL;
        json_decref(j);
        clinic_t *c = NULL;
        if (ref && ref->referrer)
            HASH_FIND_STR(pl->by_id, ref->referrer->clinic_id, c);
        if (!ref || !c) {
            hx_referral_free(ref);
            fprintf(stderr, "%s: pipeline: generated referral %" PRIu64 " is unusable\n", BENCH_PROG, first + i);
            return -1;
        }
        r->clinic = (uint32_t)(c - pl->clinics);
        hx_submission_id(c->id, ref->ref, r->id);
        hx_referral_id(r->id, r->rid);
        r->payload_len = handoff__referral__get_packed_size(ref);
        r->payload = malloc(r->payload_len ? r->payload_len : 1);
        if (!r->payload) {
            hx_referral_free(ref);
            return -1;
        }
        handoff__referral__pack(ref, r->payload);
        hx_referral_free(ref);
        ref_t *dup = NULL;
        HASH_FIND_STR(pl->by_rid, r->rid, dup);
        if (dup) {
            fprintf(stderr, "%s: pipeline: two generated referrals share id %s\n", BENCH_PROG, r->rid);
            return -1;
        }
        HASH_ADD_STR(pl->by_rid, rid, r);
    }
    return 0;
}

static void free_referrals(pipe_t *pl)
{
    HASH_CLEAR(hh, pl->by_rid);
    for (uint64_t i = 0; pl->refs && i < pl->n_refs; i++)
        free(pl->refs[i].payload);
    free(pl->refs);
    pl->refs = NULL;
    pl->n_refs = 0;
}

/* ---- the services ---------------------------------------------------------------------------- */

static int start_services(pipe_t *pl)
{
    bench_env_t *e = pl->e;
    char intake_db[700], sched_db[700], rules[1200], dir[700];
    snprintf(intake_db, sizeof intake_db, "%s/intake.db", e->dir);
    snprintf(sched_db, sizeof sched_db, "%s/scheduling.db", e->dir);
    snprintf(rules, sizeof rules, "%s/services/triage/rules.json", e->src);
    snprintf(dir, sizeof dir, "%s/directory.json", e->dir);
    char keys[3][700], server[700];
    static const char *const names[3] = {"intake", "triage", "scheduling"};
    if (e->o->curve) {
        snprintf(server, sizeof server, "%s/broker.pub", e->dir);
        FILE *f = fopen(server, "w");
        if (!f || fprintf(f, "%s\n", e->server_pub) < 0 || fclose(f) != 0)
            return -1;
        for (int i = 0; i < 3; i++) {
            char pub[41], sec[41];
            if (bench_key_for(e, "service", names[i], pub, sec, keys[i], sizeof keys[i]))
                return -1;
        }
    }
    if (e->o->postgres) {                /* intake's and scheduling's stores on a server of the run's own */
        char why[2048];
        if (hx_pgtest_start(&e->pg, why, sizeof why) != 0) {
            fprintf(stderr, "handoff-bench: --store postgres: %s\n", why);
            return -1;
        }
        snprintf(intake_db, sizeof intake_db, "%s", e->pg.url);
        snprintf(sched_db, sizeof sched_db, "%s", e->pg.url);
    }
    for (int i = 0; i < 3; i++) {
        const char *args[16] = {"--broker", e->endpoint};
        size_t n = 2;
        if (i == 0) {
            args[n++] = "--db";
            args[n++] = intake_db;
        } else if (i == 1) {
            args[n++] = "--rules";
            args[n++] = rules;
        } else {
            args[n++] = "--directory";
            args[n++] = dir;
            args[n++] = "--start";
            args[n++] = HX_GEN_DEFAULT_DATE "T08:00";
            args[n++] = "--db";
            args[n++] = sched_db;
        }
        if (e->o->curve) {
            args[n++] = "--key";
            args[n++] = keys[i];
            args[n++] = "--server-key";
            args[n++] = server;
        }
        args[n] = NULL;
        char rel[64];
        snprintf(rel, sizeof rel, "services/%s/handoff-%s", names[i], names[i]);
        if (bench_spawn(e, names[i], rel, args) < 0)
            return -1;
    }
    /* ready when the broker counts three workers */
    uint64_t t0 = bench_now_ns();
    while (bench_now_ns() - t0 < 30ull * 1000000000u && !bench_stop) {
        json_t *st = bench_broker_stats(e);
        json_t *w = json_object_get(json_object_get(st, "peers"), "worker");
        long long workers = json_is_integer(w) ? json_integer_value(w) : -1;
        json_decref(st);
        if (workers >= 3)
            return 0;
        if (workers < 0 && bench_now_ns() - t0 > 2ull * 1000000000u)
            return 0;                           /* a broker without "stats": the services had time */
        bench_sleep_ns(50 * 1000000u);
    }
    fprintf(stderr, "%s: pipeline: the services did not join the broker within 30 s; see %s/*.log\n", BENCH_PROG,
            e->dir);
    return -1;
}

/* ---- what comes back --------------------------------------------------------------------------- */

static bool settled(const ref_t *r);

/* After r's state changed: the settled count follows (a referral on hold, then booked from the
 * wait list, is unsettled until its handoffs come), and the first time it settles is kept. */
static void note(pipe_t *pl, ref_t *r, uint64_t now)
{
    bool s = settled(r);
    if (s == r->counted)
        return;
    r->counted = s;
    if (s) {
        pl->n_settled++;
        if (!r->t_settled)
            r->t_settled = now;
    } else {
        pl->n_settled--;
    }
}

static void on_handoff(pipe_t *pl, const Handoff__Message *m, uint64_t now)
{
    Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload.len, m->payload.data);
    ref_t *r = NULL;
    if (h)
        HASH_FIND_STR(pl->by_rid, h->referral_id, r);
    if (!r) {
        pl->foreign++;
    } else {
        uint32_t bit = 1u << ((h->booking ? (unsigned)h->booking->discipline : 0) & 31);
        if (r->disciplines & bit)
            pl->duplicated++;
        r->disciplines |= bit;
        if (r->handoffs++ == 0)
            r->t_handoff = now;
        note(pl, r, now);
    }
    if (h)
        handoff__handoff__free_unpacked(h, NULL);
}

static void on_status(pipe_t *pl, const Handoff__Message *m, uint64_t now)
{
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, m->payload.len, m->payload.data);
    ref_t *r = NULL;
    if (s)
        HASH_FIND_STR(pl->by_rid, s->referral_id, r);
    if (!r) {
        pl->foreign++;
    } else {
        rstate_t to = s->status == HANDOFF__TASK_STATUS__TASK_READY      ? S_READY
                      : s->status == HANDOFF__TASK_STATUS__TASK_REJECTED ? S_REJECTED
                      : s->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD  ? S_ON_HOLD
                                                                          : S_UNSENT;
        if (to != S_UNSENT) {
            /* The same update twice is a duplicate, and so is anything after ready or rejected
             * (nothing in a run changes a referral then). On hold is not final: the referrer
             * is told again when its place on the wait list changes, and it may be booked
             * from the wait list as slots free. */
            bool same = r->last_status == s->status && r->last_status_ms == s->at_ms;
            if (same || r->state == S_READY || r->state == S_REJECTED) {
                r->status_dups++;
            } else {
                r->state = to;
                r->bookings = (uint32_t)s->n_bookings;
            }
            r->last_status = s->status;
            r->last_status_ms = s->at_ms;
            note(pl, r, now);
        }
    }
    if (s)
        handoff__status_update__free_unpacked(s, NULL);
}

static bool settled(const ref_t *r)
{
    if (r->state == S_REJECTED || r->state == S_ON_HOLD)
        return true;
    return r->state == S_READY && r->handoffs >= r->bookings;
}

/* A DELIVER from a clinic's mailbox: record everything, then ack it all. */
static int on_deliver(pipe_t *pl, clinic_t *c, const uint8_t *data, size_t len, uint64_t now)
{
    Handoff__Envelope *env = handoff__envelope__unpack(NULL, len, data);
    if (!env)
        return -1;
    c->fetch_out = false;
    if (env->n_messages == 0) {
        c->next_fetch = now + FETCH_IDLE_NS;    /* empty: look again a little later */
        handoff__envelope__free_unpacked(env, NULL);
        return 0;
    }
    ProtobufCBinaryData acks[HX_MAX_BATCH];
    for (size_t i = 0; i < env->n_messages; i++) {
        const Handoff__Message *m = env->messages[i];
        acks[i] = m->id;
        if (strcmp(m->type, "handoff.Handoff") == 0)
            on_handoff(pl, m, now);
        else if (strcmp(m->type, "handoff.StatusUpdate") == 0)
            on_status(pl, m, now);
    }
    Handoff__Envelope ack = HANDOFF__ENVELOPE__INIT;
    ack.version = HX_PROTOCOL_VERSION;
    ack.kind = HANDOFF__KIND__KIND_ACK;
    ack.n_acks = env->n_messages;
    ack.acks = acks;
    int rc = bench_conn_send_env(&c->conn, &ack, &pl->buf);
    handoff__envelope__free_unpacked(env, NULL);
    c->next_fetch = 0;                          /* more may be waiting */
    return rc;
}

static int send_fetch(pipe_t *pl, clinic_t *c)
{
    Handoff__Envelope f = HANDOFF__ENVELOPE__INIT;
    uint8_t id[HX_ID_LEN];
    bench_id(id, 0xFC000000u + (uint32_t)(c - pl->clinics), pl->fetch_seq++);
    f.version = HX_PROTOCOL_VERSION;
    f.kind = HANDOFF__KIND__KIND_FETCH;
    f.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    f.max = HX_MAX_BATCH;
    if (bench_conn_send_env(&c->conn, &f, &pl->buf))
        return -1;
    c->fetch_out = true;
    return 0;
}

static int send_referral(pipe_t *pl, ref_t *r)
{
    clinic_t *c = &pl->clinics[r->clinic];
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE;
    to.name = "intake";
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){HX_ID_LEN, r->id};
    m.to = &to;
    m.type = "handoff.Referral";
    m.payload = (ProtobufCBinaryData){r->payload_len, r->payload};
    Handoff__Envelope env = HANDOFF__ENVELOPE__INIT;
    env.version = HX_PROTOCOL_VERSION;
    env.kind = HANDOFF__KIND__KIND_SUBMIT;
    env.id = (ProtobufCBinaryData){HX_ID_LEN, r->id};
    env.n_messages = 1;
    env.messages = &mp;
    return bench_conn_send_env(&c->conn, &env, &pl->buf);
}

/* ---- one run ---------------------------------------------------------------------------------------- */

typedef struct {
    double seconds;
    uint64_t ready, rejected, on_hold, unsettled, not_booked, misrouted, duplicated;
    bench_samples_t e2e;
    int failed;
    /* by tenth of the run's time: referrals settled in it, and their submit->settled
     * latencies (a drift in cost as bookings and held referrals pile up shows here) */
    uint64_t t0, t_end;
    uint64_t tenth_settled[10];
    bench_samples_t tenth_lat[10];
    /* scheduling's CPU time, sampled every 100 ms: its cost per referral by tenth (a search
     * that grows with the bookings already made shows here first) */
    uint64_t *cpu_at, *cpu_ns;
    size_t n_cpu, cap_cpu;
    double sched_us_per_ref[10];
} run_t;

static void cpu_sample(run_t *out, pid_t pid, uint64_t now)
{
    if (pid <= 0 || (out->n_cpu && now - out->cpu_at[out->n_cpu - 1] < 100 * 1000000ull))
        return;
    if (out->n_cpu == out->cap_cpu) {
        size_t cap = out->cap_cpu ? out->cap_cpu * 2 : 1024;
        uint64_t *a = realloc(out->cpu_at, cap * sizeof *a);
        if (a)
            out->cpu_at = a;
        uint64_t *v = a ? realloc(out->cpu_ns, cap * sizeof *v) : NULL;
        if (!v)
            return;
        out->cpu_ns = v;
        out->cap_cpu = cap;
    }
    out->cpu_at[out->n_cpu] = now;
    out->cpu_ns[out->n_cpu++] = bench_cpu_ns(pid);
}

/* Scheduling's CPU time at instant t: the last sample at or before it. */
static uint64_t cpu_at(const run_t *r, uint64_t t)
{
    uint64_t v = 0;
    for (size_t i = 0; i < r->n_cpu && r->cpu_at[i] <= t; i++)
        v = r->cpu_ns[i];
    return v;
}

/* Where a run is: referrals [0, next) submitted, n_settled of them settled. */
typedef struct {
    double interval;            /* open loop: ns between submissions; 0 = closed loop */
    uint32_t window;
    uint64_t t0, next, in_flight, n_settled;
    uint64_t last_progress, t_end;
} cursor_t;

/* Submits what is due (open loop) or fits the window (closed loop). */
static int submit_due(pipe_t *pl, cursor_t *k, uint64_t now)
{
    while (k->next < pl->n_refs) {
        uint64_t due = k->interval > 0 ? k->t0 + (uint64_t)((double)k->next * k->interval) : now;
        if (due > now || (k->interval == 0 && k->in_flight >= k->window))
            break;
        ref_t *r = &pl->refs[k->next++];
        if (send_referral(pl, r))
            return -1;
        r->state = S_SENT;
        r->t_submit = due;
        k->in_flight++;
    }
    return 0;
}

/* A FETCH to every mailbox that has none outstanding and is not resting after an empty one. */
static int fetch_all(pipe_t *pl, uint64_t now)
{
    for (size_t i = 0; i < pl->n_clinics; i++) {
        clinic_t *c = &pl->clinics[i];
        if (!c->fetch_out && c->next_fetch <= now && send_fetch(pl, c))
            return -1;
    }
    return 0;
}

/* Everything a clinic's session has received: deliveries, ACCEPTED for its referrals, errors. */
static int take_replies(pipe_t *pl, clinic_t *c, zmq_msg_t *m, uint64_t now)
{
    while (zmq_msg_recv(m, c->conn.sock, ZMQ_DONTWAIT) >= 0) {
        bench_reply_t rep;
        if (!bench_reply_scan(zmq_msg_data(m), zmq_msg_size(m), &rep))
            continue;
        if (rep.kind == HANDOFF__KIND__KIND_DELIVER) {
            if (on_deliver(pl, c, zmq_msg_data(m), zmq_msg_size(m), now))
                return -1;
        } else if (rep.kind == HANDOFF__KIND__KIND_ACCEPTED && rep.corr) {
            ref_t *r = NULL;
            char rid[HX_REFERRAL_ID_LEN + 1];
            hx_referral_id(rep.corr, rid);
            HASH_FIND_STR(pl->by_rid, rid, r);
            if (r && r->state == S_SENT)
                r->state = S_ACCEPTED;
        } else if (rep.kind == HANDOFF__KIND__KIND_ERROR) {
            pl->refused++;
            if (!pl->error[0])
                snprintf(pl->error, sizeof pl->error, "broker refused: %.*s", (int)rep.text_len,
                         (const char *)rep.text);
        }
    }
    bench_conn_keepalive(&c->conn, now);
    return 0;
}

/* The settled count (kept by note as replies come): progress, and the run's end. */
static void count_settled(pipe_t *pl, cursor_t *k, uint64_t now)
{
    if (pl->n_settled > k->n_settled) {
        k->last_progress = now;
        k->t_end = now;
    }
    k->n_settled = pl->n_settled;
    k->in_flight = k->next - k->n_settled;
}

/* The run's outcome from the referrals' final states. */
static void tally(pipe_t *pl, run_t *out)
{
    for (uint64_t i = 0; i < pl->n_refs; i++) {
        ref_t *r = &pl->refs[i];
        out->duplicated += r->status_dups;
        if (!settled(r)) {
            out->unsettled++;
            continue;
        }
        if (out->t_end > out->t0 && r->t_settled >= out->t0) {
            uint64_t d = (r->t_settled - out->t0) * 10 / (out->t_end - out->t0 + 1);
            d = d < 10 ? d : 9;
            out->tenth_settled[d]++;
            bench_samples_add(&out->tenth_lat[d], r->t_settled - r->t_submit);
        }
        if (r->state == S_READY) {
            out->ready++;
            if (r->handoffs)
                bench_samples_add(&out->e2e, r->t_handoff - r->t_submit);
        } else if (r->state == S_REJECTED) {
            out->rejected++;
        } else {
            out->on_hold++;
        }
        /* bookable cases that were not booked (on hold: no slot within the constraints) */
        if ((r->kind == HX_GEN_PHYSIO || r->kind == HX_GEN_MASSAGE || r->kind == HX_GEN_BOTH) &&
            r->state != S_READY)
            out->not_booked++;
        /* a red flag must go to a physician, never to a therapist */
        if (r->kind == HX_GEN_RED_FLAG && r->state == S_READY)
            out->misrouted++;
    }
    out->duplicated += pl->duplicated;
    pl->duplicated = 0;
    for (int d = 0; d < 10 && out->n_cpu && out->t_end > out->t0; d++) {
        uint64_t span = out->t_end - out->t0, a = out->t0 + span * (uint64_t)d / 10, b = out->t0 + span * (uint64_t)(d + 1) / 10;
        uint64_t used = cpu_at(out, b) - cpu_at(out, a);
        out->sched_us_per_ref[d] = out->tenth_settled[d] ? (double)used / 1e3 / (double)out->tenth_settled[d] : 0;
    }
    bench_samples_sort(&out->e2e);
    for (int d = 0; d < 10; d++)
        bench_samples_sort(&out->tenth_lat[d]);
}

static void run_free(run_t *r)
{
    free(r->cpu_at);
    free(r->cpu_ns);
    bench_samples_free(&r->e2e);
    for (int d = 0; d < 10; d++)
        bench_samples_free(&r->tenth_lat[d]);
}

/* Closed loop (rate 0): at most `window` referrals in flight (submitted, not settled).
 * Open loop: submissions at `rate` per second, by the clock. */
static int run(pipe_t *pl, uint32_t window, double rate, run_t *out)
{
    memset(out, 0, sizeof *out);
    zmq_pollitem_t *items = calloc(pl->n_clinics, sizeof *items);
    if (!items)
        return -1;
    for (size_t i = 0; i < pl->n_clinics; i++)
        items[i] = (zmq_pollitem_t){pl->clinics[i].conn.sock, 0, ZMQ_POLLIN, 0};
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t t0 = bench_now_ns();
    cursor_t k = {.interval = rate > 0 ? 1e9 / rate : 0, .window = window, .t0 = t0, .last_progress = t0,
                  .t_end = t0};
    int rc = 0;                                 /* -1: a send failed or a delivery did not decode */
    pl->n_settled = 0;
    const pid_t sched = bench_pid(pl->e, "scheduling");
    cpu_sample(out, sched, t0);
    while (k.n_settled < pl->n_refs) {
        if (bench_stop) {
            out->failed = 1;
            break;
        }
        uint64_t now = bench_now_ns();
        if ((rc = submit_due(pl, &k, now)) != 0 || (rc = fetch_all(pl, now)) != 0)
            break;
        /* wait for something; wake for the next submission or fetch */
        if (zmq_poll(items, (int)pl->n_clinics, 1) < 0)
            continue;
        now = bench_now_ns();
        for (size_t i = 0; i < pl->n_clinics && rc == 0; i++)
            rc = take_replies(pl, &pl->clinics[i], &m, now);
        if (rc)
            break;
        count_settled(pl, &k, now);
        cpu_sample(out, sched, now);
        if (now - k.last_progress > 60ull * 1000000000u) {
            size_t at = strlen(pl->error);          /* after a refusal's text, if one came */
            snprintf(pl->error + at, sizeof pl->error - at, "%sno referral settled for 60 s (%" PRIu64 " of %" PRIu64
                     " settled)", at ? "; " : "", k.n_settled, pl->n_refs);
            break;
        }
    }
    if (rc)
        out->failed = 1;
    else
        out->seconds = (double)(k.t_end - t0) / 1e9;
    out->t0 = t0;
    out->t_end = k.t_end;
    tally(pl, out);
    zmq_msg_close(&m);
    free(items);
    return out->failed ? -1 : 0;
}

static int report(pipe_t *pl, const char *variant, double rate, uint32_t window, run_t *res)
{
    const bench_opts_t *o = pl->o;
    bench_report_t r;
    bench_report_begin(&r, o, "pipeline");
    bench_report_str(&r, "variant", variant);
    if (rate > 0)
        bench_report_num(&r, "offered_per_s", rate, "referrals/s", "offered rate");
    else
        bench_report_int(&r, "window", window, "referrals in flight at most");
    bench_report_num(&r, "referrals_per_s", res->seconds > 0 ? (double)pl->n_refs / res->seconds : 0,
                     "referrals/s", "referrals settled per second");
    bench_report_int(&r, "referrals", pl->n_refs, "referrals");
    bench_report_num(&r, "seconds", res->seconds, "s", "elapsed");
    bench_report_int(&r, "booked", res->ready, "booked (ready, handoffs fetched)");
    bench_report_int(&r, "rejected", res->rejected, "rejected (red flags etc.)");
    bench_report_int(&r, "on_hold", res->on_hold, "on hold (no slot)");
    bench_report_int(&r, "not_booked", res->not_booked, "bookable, on hold (no slot fits)");
    bench_report_int(&r, "clinics", pl->n_clinics, NULL);
    bench_report_str(&r, "curve", o->curve ? "on" : "off");
    bench_report_str(&r, "store", o->postgres ? "postgres" : "sqlite");
    static const struct { double p; const char *key; } pcts[] = {
        {50, "p50_us"}, {90, "p90_us"}, {99, "p99_us"}, {99.9, "p99_9_us"}};
    for (size_t i = 0; i < 4; i++) {
        char label[64];
        snprintf(label, sizeof label, "submit->handoff fetched p%g", pcts[i].p);
        bench_report_num(&r, pcts[i].key, bench_samples_pct_us(&res->e2e, pcts[i].p), "us", label);
    }
    double tenth_s = res->t_end > res->t0 ? (double)(res->t_end - res->t0) / 1e10 : 0;
    for (int d = 0; d < 10 && tenth_s > 0; d++) {
        char key[32], label[80];
        snprintf(key, sizeof key, "settled_per_s_t%d", d + 1);
        snprintf(label, sizeof label, "tenth %d of the run: settled per second", d + 1);
        bench_report_num(&r, key, (double)res->tenth_settled[d] / tenth_s, "referrals/s", label);
        snprintf(key, sizeof key, "p99_us_t%d", d + 1);
        snprintf(label, sizeof label, "tenth %d: submit->settled p99", d + 1);
        bench_report_num(&r, key, bench_samples_pct_us(&res->tenth_lat[d], 99), "us", label);
        if (res->n_cpu) {
            snprintf(key, sizeof key, "sched_us_per_ref_t%d", d + 1);
            snprintf(label, sizeof label, "tenth %d: scheduling's CPU per referral settled", d + 1);
            bench_report_num(&r, key, res->sched_us_per_ref[d], "us", label);
        }
    }
    if (pl->error[0])
        fprintf(stderr, "%s: pipeline: %s\n", BENCH_PROG, pl->error);
    uint64_t lost = res->unsettled + pl->refused;
    bench_report_int(&r, "misrouted", res->misrouted, "red flags booked with a therapist");
    bool ok = !res->failed && lost == 0 && res->duplicated == 0 && res->misrouted == 0;
    bench_report_int(&r, "lost", lost, "lost (never settled)");
    bench_report_int(&r, "duplicated", res->duplicated, "duplicated");
    bench_report_str(&r, "ok", ok ? "yes" : "no");
    bench_report_end(&r);
    return ok ? 0 : 1;
}

int bench_mode_pipeline(const bench_opts_t *o)
{
    bench_env_t e;
    pipe_t pl = {.o = o};
    hx_gen_t *g = NULL;
    int rc = 1;
    if (bench_env_init(&e, o, "pipeline")) {
        bench_env_cleanup(&e);
        return 1;
    }
    pl.e = &e;
    if (make_network(&pl, &g))
        goto out;
    if (o->curve) {                             /* every key before the broker reads the allow-list */
        char pub[41], sec[41], path[700];
        static const char *const svc[] = {"intake", "triage", "scheduling"};
        for (int i = 0; i < 3; i++)
            if (bench_key_for(&e, "service", svc[i], pub, sec, path, sizeof path))
                goto out;
        for (size_t i = 0; i < pl.n_clinics; i++)
            if (bench_key_for(&e, "clinic", pl.clinics[i].id, pub, sec, NULL, 0))
                goto out;
        bench_key_for(&e, "admin", "bench-stats", pub, sec, NULL, 0);
    }
    if (bench_start_broker(&e, NULL) || start_services(&pl))
        goto out;
    for (size_t i = 0; i < pl.n_clinics; i++)
        if (bench_conn_open(&pl.clinics[i].conn, &e, HANDOFF__ROLE__ROLE_CLINIC, pl.clinics[i].id, 0))
            goto out;
    rc = 0;
    uint64_t first = 0;
    /* the maximum: a window of referrals in flight (skipped when only a rate is asked for) */
    if (o->count > 0) {
        bench_say(o, "pipeline: %" PRIu64 " generated referrals from %zu clinics, %u in flight\n", o->count,
                  pl.n_clinics, o->window);
        if (make_referrals(&pl, g, first, o->count))
            goto fail;
        run_t res;
        bench_attach_start(&e);
        run(&pl, o->window, 0, &res);
        bench_attach_stop(&e);
        rc |= report(&pl, "max", 0, o->window, &res);
        run_free(&res);
        first += o->count;
        free_referrals(&pl);
    }
    /* latency at a fixed offered rate */
    if (o->rate > 0 && o->duration_s > 0 && !bench_stop) {
        uint64_t n = (uint64_t)(o->rate * o->duration_s);
        bench_say(o, "pipeline: %.0f referrals/s for %.1f s\n", o->rate, o->duration_s);
        if (make_referrals(&pl, g, first, n))
            goto fail;
        run_t res;
        run(&pl, 0, o->rate, &res);
        rc |= report(&pl, "rate", o->rate, 0, &res);
        run_free(&res);
        free_referrals(&pl);
    }
    goto out;
fail:
    rc = 1;
out:
    free_referrals(&pl);
    for (size_t i = 0; i < pl.n_clinics; i++)
        bench_conn_close(&pl.clinics[i].conn);
    HASH_CLEAR(hh, pl.by_id);
    free(pl.clinics);
    hx_buf_free(&pl.buf);
    hx_gen_destroy(&g);
    bench_env_cleanup(&e);
    return rc;
}
