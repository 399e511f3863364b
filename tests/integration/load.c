/* load — see load.h. */
#include "load.h"
#include "harness.h"
#include "hx_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>


#define CL_MAX_SEQ (1u << 22)
#define CL_BATCH 20                     /* messages per SUBMIT */
#define CL_WINDOW 4000                  /* acked but not yet received, at most */

typedef struct seen_id {
    uint8_t id[HX_ID_LEN];
    UT_hash_handle hh;
} seen_id_t;

struct load {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t sub, con;
    char endpoint[512];
    atomic_bool stop_submit, stop_consume;
    uint8_t *acked;                     /* per sequence number: the broker accepted it */
    uint8_t *ids;                       /* per sequence number: distinct message ids seen (saturating) */
    uint32_t next_seq;
    size_t acked_n, received_n, acked_received_n, duplicated, redelivered, submit_retries;
    seen_id_t *seen;
    char fatal[256];
};

static hx_client_t *load_session(load_t *L, const char *name)
{
    char err[256];
    hx_client_opts_t o = {.endpoint = L->endpoint, .clinic = name, .timeout_ms = 500, .attempts = 2};
    return hx_client_connect(&o, err, sizeof err);
}

static void load_fatal(load_t *L, const char *fmt, const char *a, const char *b)
{
    pthread_mutex_lock(&L->mu);
    if (!L->fatal[0])
        snprintf(L->fatal, sizeof L->fatal, fmt, a, b);
    pthread_mutex_unlock(&L->mu);
    atomic_store(&L->stop_submit, true);
}

/* Submits batches of unique sequence numbers under unique random ids; a number counts as
 * acked only once hx_client_submit returned 0. A failed batch is retried with the same ids,
 * on a new client, until accepted or the load stops (then it is neither acked nor counted). */
static void *submitter(void *arg)
{
    load_t *L = arg;
    hx_msg_t msgs[CL_BATCH];
    char payloads[CL_BATCH][16];
    uint32_t first = 0;
    bool pending = false;
    hx_client_t *c = NULL;
    while (!atomic_load(&L->stop_submit)) {
        if (!pending) {
            pthread_mutex_lock(&L->mu);
            while (L->acked_n - L->acked_received_n > CL_WINDOW && !atomic_load(&L->stop_submit)) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += 100 * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                    until.tv_sec++;
                    until.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&L->cv, &L->mu, &until);
            }
            first = L->next_seq;
            bool full = first + CL_BATCH > CL_MAX_SEQ;
            if (!full)
                L->next_seq += CL_BATCH;
            pthread_mutex_unlock(&L->mu);
            if (atomic_load(&L->stop_submit) || full)
                break;
            for (uint32_t i = 0; i < CL_BATCH; i++) {
                hx_msg_t *m = &msgs[i];
                memset(m, 0, sizeof *m);
                hx_id_random(m->id);
                snprintf(payloads[i], sizeof payloads[i], "%u", first + i);
                m->to_kind = HX_TO_SERVICE;
                m->to = "echo";
                m->type = "test.seq";
                m->payload = (const uint8_t *)payloads[i];
                m->payload_len = strlen(payloads[i]);
            }
            pending = true;
        }
        if (!c && !(c = load_session(L, "producer")))
            continue;                       /* the broker is down: connecting waited for it */
        int rc = hx_client_submit(c, msgs, CL_BATCH);
        if (rc == 0) {
            pthread_mutex_lock(&L->mu);
            for (uint32_t i = 0; i < CL_BATCH; i++) {
                uint32_t s = first + i;
                if (L->acked[s])
                    continue;
                L->acked[s] = 1;
                L->acked_n++;
                if (L->ids[s])
                    L->acked_received_n++;
            }
            pthread_mutex_unlock(&L->mu);
            pending = false;
            continue;
        }
        if (rc == HX_EREFUSED) {
            Handoff__ErrorCode code = hx_client_error_code(c);
            if (code != HANDOFF__ERROR_CODE__ERR_BUSY && code != HANDOFF__ERROR_CODE__ERR_UNAVAILABLE &&
                code != HANDOFF__ERROR_CODE__ERR_NOT_READY && code != HANDOFF__ERROR_CODE__ERR_NOT_LEADER) {
                load_fatal(L, "submit refused: %s: %s", hx_wire_error_text(code), hx_client_error(c));
                break;
            }
            net_nap_ms(10);                     /* a retry pause, not a wait for a condition */
        }
        pthread_mutex_lock(&L->mu);
        L->submit_retries++;
        pthread_mutex_unlock(&L->mu);
        hx_client_destroy(&c);              /* the same ids again, on a new client */
    }
    hx_client_destroy(&c);
    return NULL;
}

/* Fetches mailbox "sink" and acks; counts distinct message ids per sequence number. */
static void *consumer(void *arg)
{
    load_t *L = arg;
    hx_client_t *c = NULL;
    while (!atomic_load(&L->stop_consume)) {
        if (!c && !(c = load_session(L, "sink")))
            continue;
        hx_batch_t *b = NULL;
        if (hx_client_fetch(c, 1000, &b) != 0) {
            hx_client_destroy(&c);
            continue;
        }
        if (b->count == 0) {
            hx_batch_destroy(&b);
            net_nap_ms(10);                     /* polling an empty mailbox */
            continue;
        }
        uint8_t(*ids)[HX_ID_LEN] = calloc(b->count, HX_ID_LEN);
        pthread_mutex_lock(&L->mu);
        for (size_t i = 0; i < b->count; i++) {
            const hx_msg_t *m = &b->msgs[i];
            memcpy(ids[i], m->id, HX_ID_LEN);
            char text[64] = "";
            const char *semi = memchr(m->payload, ';', m->payload_len);
            size_t len = semi ? m->payload_len - (size_t)(semi + 1 - (const char *)m->payload) : 0;
            if (semi && len < sizeof text)
                memcpy(text, semi + 1, len);
            char *end = NULL;
            unsigned long s = strtoul(text, &end, 10);
            if (!semi || !len || len >= sizeof text || *end || s >= L->next_seq) {
                if (!L->fatal[0])
                    snprintf(L->fatal, sizeof L->fatal, "unexpected message in sink: %s",
                             semi ? text : "no ';' in payload");
                continue;
            }
            seen_id_t *e = NULL;
            HASH_FIND(hh, L->seen, m->id, HX_ID_LEN, e);
            if (e) {
                L->redelivered++;
                continue;
            }
            e = calloc(1, sizeof *e);
            memcpy(e->id, m->id, HX_ID_LEN);
            HASH_ADD(hh, L->seen, id, HX_ID_LEN, e);
            if (L->ids[s] < 255)
                L->ids[s]++;
            if (L->ids[s] == 1) {
                L->received_n++;
                if (L->acked[s])
                    L->acked_received_n++;
            } else if (L->ids[s] == 2) {
                L->duplicated++;
            }
        }
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
        if (hx_client_ack(c, (const uint8_t(*)[HX_ID_LEN])ids, b->count) != 0)
            hx_client_destroy(&c);          /* they will come again: counted as redelivered */
        free(ids);
        hx_batch_destroy(&b);
    }
    hx_client_destroy(&c);
    return NULL;
}

/* Drained: every acked number received. Gives up (returns true with *stalled set) when
 * nothing new arrived for a minute, two ack timeouts' worth of nothing happening. */
typedef struct {
    load_t *L;
    size_t last_received;
    int64_t last_progress_ms;
    bool stalled;
} drain_t;

static bool drained(void *arg)
{
    drain_t *d = arg;
    pthread_mutex_lock(&d->L->mu);
    bool done = d->L->acked_received_n == d->L->acked_n;
    size_t received = d->L->received_n;
    pthread_mutex_unlock(&d->L->mu);
    int64_t now = net_mono_ms();
    if (received != d->last_received || !d->last_progress_ms) {
        d->last_received = received;
        d->last_progress_ms = now;
    }
    d->stalled = !done && now - d->last_progress_ms > 60000;
    return done || d->stalled;
}


load_t *load_start(const char *endpoint)
{
    load_t *L = calloc(1, sizeof *L);
    if (!L)
        return NULL;
    L->acked = calloc(CL_MAX_SEQ, 1);
    L->ids = calloc(CL_MAX_SEQ, 1);
    if (!L->acked || !L->ids) {
        free(L->acked);
        free(L->ids);
        free(L);
        return NULL;
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    snprintf(L->endpoint, sizeof L->endpoint, "%s", endpoint);
    uint8_t warm[HX_ID_LEN];
    hx_id_random(warm);                     /* libsodium's generator set up before the threads */
    pthread_create(&L->con, NULL, consumer, L);
    pthread_create(&L->sub, NULL, submitter, L);
    return L;
}

void load_progress(load_t *L, size_t *acked, size_t *received)
{
    pthread_mutex_lock(&L->mu);
    *acked = L->acked_n;
    *received = L->received_n;
    pthread_mutex_unlock(&L->mu);
}

void load_finish(load_t *L, int drain_ms, load_result_t *out)
{
    memset(out, 0, sizeof *out);
    atomic_store(&L->stop_submit, true);
    pthread_cond_broadcast(&L->cv);
    pthread_join(L->sub, NULL);
    drain_t dr = {L, 0, 0, false};
    out->drained = net_wait(drained, &dr, drain_ms) && !dr.stalled;
    out->stalled = dr.stalled;
    atomic_store(&L->stop_consume, true);
    pthread_join(L->con, NULL);
    out->acked = L->acked_n;
    out->received = L->received_n;
    out->lost = L->acked_n - L->acked_received_n;
    out->duplicated = L->duplicated;
    out->redelivered = L->redelivered;
    out->submit_retries = L->submit_retries;
    snprintf(out->fatal, sizeof out->fatal, "%s", L->fatal);
    seen_id_t *e, *tmp;
    HASH_ITER(hh, L->seen, e, tmp) {
        HASH_DEL(L->seen, e);
        free(e);
    }
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    free(L->acked);
    free(L->ids);
    free(L);
}
