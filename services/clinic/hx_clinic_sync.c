/* hx_clinic — moving the mailbox into the local store (hx_clinic_sync). */
#include "hx_clinic_internal.h"
#include "hx_issuer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a message received is stored: its type (a refused StatusUpdate is an answer to this
 * clinic, not a change, and is kept apart as handoff.Refusal), the referral it is about ("" when
 * the payload does not say) and when it happened. */
static void received_facts(const hx_msg_t *m, const char **type, char *referral_id, size_t cap, uint64_t *at)
{
    *type = m->type;
    *at = m->accepted_at_ms;
    referral_id[0] = '\0';
    if (strcmp(m->type, "handoff.Handoff") == 0) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
        if (h) {
            snprintf(referral_id, cap, "%s", h->referral_id);
            handoff__handoff__free_unpacked(h, NULL);
        }
    } else if (strcmp(m->type, "handoff.ReviewRequest") == 0) {
        Handoff__ReviewRequest *q = handoff__review_request__unpack(NULL, m->payload_len, m->payload);
        if (q) {
            snprintf(referral_id, cap, "%s", q->referral_id);
            handoff__review_request__free_unpacked(q, NULL);
        }
    } else if (strcmp(m->type, "handoff.ThreadPost") == 0) {
        Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, m->payload_len, m->payload);
        if (p) {
            snprintf(referral_id, cap, "%s", p->referral_id);
            if (p->at_ms)
                *at = p->at_ms;
            handoff__thread_post__free_unpacked(p, NULL);
        }
    } else if (strcmp(m->type, "handoff.StatusUpdate") == 0) {
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
        if (s) {
            snprintf(referral_id, cap, "%s", s->referral_id);
            if (s->at_ms)
                *at = s->at_ms;
            if (s->refused)
                *type = "handoff.Refusal";
            handoff__status_update__free_unpacked(s, NULL);
        }
    }
}

/* "service:scheduling" / "mailbox:lakeside": the broker-set sender of m. */
static void sender_text(const hx_msg_t *m, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%s", m->from_kind == HX_TO_SERVICE ? "service" : "mailbox", m->from ? m->from : "");
}

/* One fetched batch on its way into the store. */
typedef struct {
    sqlite3_stmt *ins, *drop;
    uint8_t (*ids)[HX_ID_LEN];
    const char **types;         /* stored for the first time: the stored type */
    uint64_t *ats;
    bool *dropped;              /* dropped for the first time */
} batch_t;

static void batch_free(batch_t *b)
{
    free(b->ids);
    free(b->types);
    free(b->ats);
    free(b->dropped);
}

static int batch_alloc(batch_t *b, size_t n)
{
    b->ids = calloc(n, HX_ID_LEN);
    b->types = calloc(n, sizeof *b->types);
    b->ats = calloc(n, sizeof *b->ats);
    b->dropped = calloc(n, sizeof *b->dropped);
    return b->ids && b->types && b->ats && b->dropped ? 0 : HX_ENOMEM;
}

/* Records m as dropped (its sender does not issue its type): never clinical data, never an
 * answer. Returns whether the statement ran. */
static bool store_dropped(hx_clinic_t *c, batch_t *b, size_t i, const hx_msg_t *m, const char *why)
{
    char sender[HX_NAME_MAX + 16];
    sender_text(m, sender, sizeof sender);
    sqlite3_reset(b->drop);
    sqlite3_bind_blob(b->drop, 1, m->id, HX_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(b->drop, 2, m->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->drop, 3, sender, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(b->drop, 4, (sqlite3_int64)m->accepted_at_ms);
    sqlite3_bind_text(b->drop, 5, why, -1, SQLITE_TRANSIENT);
    bool ok = sqlite3_step(b->drop) == SQLITE_DONE;
    b->dropped[i] = ok && sqlite3_changes(c->db) == 1;
    return ok;
}

/* When m answers the request s watches (its correlation id), a copy of it into s. */
static void watch_answer(const hx_msg_t *m, hx_clinic_sync_t *s)
{
    if (s && s->watch && !s->answer && m->correlation_id && memcmp(m->correlation_id, s->watch, HX_ID_LEN) == 0 &&
        (s->answer = malloc(m->payload_len ? m->payload_len : 1))) {
        memcpy(s->answer, m->payload, m->payload_len);
        s->answer_len = m->payload_len;
        snprintf(s->answer_type, sizeof s->answer_type, "%s", m->type);
    }
}

static bool store_received(hx_clinic_t *c, batch_t *b, size_t i, const hx_msg_t *m, hx_clinic_sync_t *s)
{
    /* The network's figures answer one request and hold nothing of a referral: handed to the
     * request that waits for them (hx_clinic_stats), never kept; one that comes too late is
     * acked and forgotten. */
    if (strcmp(m->type, "handoff.NetworkStats") == 0) {
        watch_answer(m, s);
        return true;
    }
    char referral_id[64];
    const char *type;
    uint64_t at;
    received_facts(m, &type, referral_id, sizeof referral_id, &at);
    sqlite3_reset(b->ins);
    sqlite3_bind_blob(b->ins, 1, m->id, HX_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(b->ins, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(b->ins, 3, referral_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(b->ins, 4, m->from, -1, SQLITE_STATIC);
    sqlite3_bind_int64(b->ins, 5, (sqlite3_int64)at);
    /* the payload is what names the patient: sealed with the store key */
    bool ok = cl_bind_sealed(c, b->ins, 6, m->payload, m->payload_len) == 0 && sqlite3_step(b->ins) == SQLITE_DONE;
    if (ok && sqlite3_changes(c->db) == 1) {
        b->types[i] = type;
        b->ats[i] = at;
    }
    watch_answer(m, s);
    return ok;
}

/* Stores one fetched batch in one transaction, then acks it; reports what was new. */
static int store_batch(hx_clinic_t *c, batch_t *b, const hx_batch_t *fetched, hx_clinic_sync_t *s)
{
    if (batch_alloc(b, fetched->count))
        return cl_fail(c, HX_ENOMEM, "storing received messages: out of memory");
    sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    bool ok = true;
    for (size_t i = 0; i < fetched->count && ok; i++) {
        const hx_msg_t *m = &fetched->msgs[i];
        memcpy(b->ids[i], m->id, HX_ID_LEN);
        char why[512];
        if (hx_issuer_check(m->type, m->from_kind == HX_TO_SERVICE, m->from, why, sizeof why) != 0)
            ok = store_dropped(c, b, i, m, why);
        else
            ok = store_received(c, b, i, m, s);
    }
    if (!ok || sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = cl_fail(c, HX_EIO, "cannot store received messages: %s", sqlite3_errmsg(c->db));
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    int rc = 0;
    if (hx_client_ack(c->client, (const uint8_t(*)[HX_ID_LEN])b->ids, fetched->count) != 0)
        rc = cl_fail(c, HX_EREFUSED, "ack refused: %s", hx_client_error(c->client));
    /* stored either way: a message not acked comes again and is ignored */
    for (size_t i = 0; i < fetched->count; i++) {
        const hx_msg_t *m = &fetched->msgs[i];
        if (b->dropped[i]) {
            char why[512];
            hx_issuer_check(m->type, m->from_kind == HX_TO_SERVICE, m->from, why, sizeof why);
            c->dropped++;
            if (s && s->on_dropped)
                s->on_dropped(s->ud, m, why);
        } else if (s && s->on_new && b->types[i]) {
            s->on_new(s->ud, m, b->types[i], b->ats[i]);
        }
    }
    return rc;
}

int hx_clinic_sync(hx_clinic_t *c, hx_clinic_sync_t *s)
{
    int rc = hx_clinic_connect(c);
    if (rc)
        return rc;
    batch_t b = {0};
    if (sqlite3_prepare_v2(c->db,
                           "INSERT OR IGNORE INTO received(id, type, referral_id, from_name, at_ms, payload) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &b.ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO dropped(id, type, sender, at_ms, why) VALUES (?, ?, ?, ?, ?)",
                           -1, &b.drop, NULL) != SQLITE_OK) {
        rc = cl_fail(c, HX_EIO, "cannot store received messages: %s", sqlite3_errmsg(c->db));
        sqlite3_finalize(b.ins);
        return rc;
    }
    while (rc == 0) {
        hx_batch_t *fetched = NULL;
        int frc = hx_client_fetch(c->client, 100, &fetched);
        if (frc) {
            rc = cl_broker_fail(c, frc, "fetching the mailbox");
            break;
        }
        if (fetched->count == 0) {              /* the broker says the mailbox is empty */
            hx_batch_destroy(&fetched);
            break;
        }
        rc = store_batch(c, &b, fetched, s);
        batch_free(&b);
        b.ids = NULL, b.types = NULL, b.ats = NULL, b.dropped = NULL;
        hx_batch_destroy(&fetched);
        if (cl_stopping(c))
            break;
    }
    sqlite3_finalize(b.ins);
    sqlite3_finalize(b.drop);
    if (rc == 0)
        cl_fail(c, 0, "%s", "");
    return rc;
}
