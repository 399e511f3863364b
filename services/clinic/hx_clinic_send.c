/* hx_clinic — what a clinic sends: referrals to intake, lifecycle changes (and posts, review
 * decisions, requests for the network's figures) to scheduling. */
#include "hx_clinic_internal.h"
#include "hx_thread_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A referral as the message to intake: its id from this clinic and its ref (so sending it
 * again is the same message, and the broker keeps one copy). Returns the packed payload
 * (the caller frees it) or NULL. */
static uint8_t *referral_msg(const hx_clinic_t *c, const Handoff__Referral *r, hx_msg_t *m)
{
    memset(m, 0, sizeof *m);
    hx_submission_id(c->clinic, r->ref, m->id);
    size_t len = handoff__referral__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    handoff__referral__pack(r, buf);
    m->to_kind = HX_TO_SERVICE;
    m->to = "intake";
    m->type = "handoff.Referral";
    m->payload = buf;
    m->payload_len = len;
    /* the broker hands urgent work out first (routine 0 .. stat 3; referral.proto counts from
     * PRIORITY_ROUTINE = 1, with 0 unspecified) */
    m->priority = r->priority > HANDOFF__PRIORITY__PRIORITY_ROUTINE ? (uint32_t)r->priority - 1 : 0;
    return buf;
}

int hx_clinic_submit(hx_clinic_t *c, const Handoff__Referral *r, const char *source, char rid[HX_REFERRAL_ID_LEN + 1])
{
    int rc = hx_clinic_connect(c);
    if (rc)
        return rc;
    hx_msg_t m;
    uint8_t *buf = referral_msg(c, r, &m);
    if (!buf)
        return cl_fail(c, HX_ENOMEM, "out of memory");
    hx_referral_id(m.id, rid);
    rc = hx_client_submit(c->client, &m, 1);
    free(buf);
    if (rc)
        return cl_broker_fail(c, rc, "not accepted");
    return cl_record_sent(c, rid, r, source);
}

/* Sends msgs[0..n) until each is accepted or refused; a refused one is swapped to the end
 * (with idx and bufs) so the rest can be sent again with the same ids. */
static int send_until_answered(hx_clinic_t *c, hx_msg_t *msgs, uint8_t **bufs, size_t *idx, size_t n, uint32_t window,
                               hx_sent_state_t *state, void (*on_refused)(void *, size_t, const char *), void *ud)
{
    size_t left = n;                            /* msgs[0..left) are still to be accepted */
    while (left > 0) {
        size_t failed = 0;
        int rc = hx_client_submit_many(c->client, msgs, left, window, &failed);
        if (rc == 0) {
            for (size_t k = 0; k < left; k++)
                state[idx[k]] = HX_SENT_ACCEPTED;
            return 0;
        }
        if (rc != HX_EREFUSED || failed >= left)
            return cl_broker_fail(c, rc, "submitting");
        state[idx[failed]] = HX_SENT_REFUSED;
        if (on_refused)
            on_refused(ud, idx[failed], hx_client_error(c->client));
        hx_msg_t tm = msgs[failed];
        msgs[failed] = msgs[left - 1];
        msgs[left - 1] = tm;
        uint8_t *tb = bufs[failed];
        bufs[failed] = bufs[left - 1];
        bufs[left - 1] = tb;
        size_t ti = idx[failed];
        idx[failed] = idx[left - 1];
        idx[left - 1] = ti;
        left--;
    }
    return 0;
}

int hx_clinic_submit_batch(hx_clinic_t *c, Handoff__Referral *const *r, const char *const *source, size_t n,
                           uint32_t window, hx_sent_state_t *state,
                           void (*on_refused)(void *ud, size_t i, const char *why), void *ud)
{
    for (size_t i = 0; i < n; i++)
        state[i] = HX_SENT_NOT_YET;
    if (n == 0)
        return 0;
    if (n > HX_MAX_BATCH)
        return cl_fail(c, HX_EINVAL, "at most %d referrals in one batch, not %zu", HX_MAX_BATCH, n);
    int rc = hx_clinic_connect(c);
    if (rc)
        return rc;
    hx_msg_t *msgs = calloc(n, sizeof *msgs);
    uint8_t **bufs = calloc(n, sizeof *bufs);
    size_t *idx = calloc(n, sizeof *idx);
    for (size_t k = 0; msgs && bufs && idx && k < n; k++) {
        idx[k] = k;
        if (!(bufs[k] = referral_msg(c, r[k], &msgs[k])))
            break;
    }
    if (!msgs || !bufs || !idx || !bufs[n - 1])
        rc = cl_fail(c, HX_ENOMEM, "submitting: out of memory");
    else
        rc = send_until_answered(c, msgs, bufs, idx, n, window, state, on_refused, ud);
    sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        char rid[HX_REFERRAL_ID_LEN + 1];
        hx_clinic_referral_id(c, r[i]->ref, rid);
        if (state[i] == HX_SENT_ACCEPTED && cl_record_sent(c, rid, r[i], source ? source[i] : NULL) && !rc)
            rc = HX_EIO;
    }
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK && !rc)
        rc = cl_fail(c, HX_EIO, "recording what was sent: %s", sqlite3_errmsg(c->db));
    for (size_t k = 0; bufs && k < n; k++)
        free(bufs[k]);
    free(msgs);
    free(bufs);
    free(idx);
    return rc;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sends a request of type to scheduling and waits up to wait_ms for the message that
 * answers it (its correlation id), syncing the mailbox meanwhile; the answer in s. */
static int request_raw(hx_clinic_t *c, const char *type, const char *what, const ProtobufCMessage *msg,
                       uint32_t wait_ms, hx_clinic_sync_t *s)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > HX_ATTACH_MAX + 16384)
        return cl_fail(c, HX_EINVAL, "%s: the message is too large (%zu bytes)", what, len);
    int rc = hx_clinic_connect(c);
    if (rc)
        return rc;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return cl_fail(c, HX_ENOMEM, "%s: out of memory", what);
    protobuf_c_message_pack(msg, buf);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "scheduling";
    m.type = type;
    m.payload = buf;
    m.payload_len = len;
    rc = hx_client_submit(c->client, &m, 1);
    free(buf);
    if (rc)
        return cl_broker_fail(c, rc, what);
    s->watch = m.id;
    uint64_t until = mono_ms() + wait_ms;
    while ((rc = hx_clinic_sync(c, s)) == 0 && !s->answer && mono_ms() < until && !cl_stopping(c)) {
        struct timespec nap = {0, 50 * 1000000};
        nanosleep(&nap, NULL);
    }
    s->watch = NULL;
    return rc;
}

/* request_raw for a change or decision answered by a StatusUpdate. */
static int request(hx_clinic_t *c, const char *type, const char *what, const ProtobufCMessage *msg, uint32_t wait_ms,
                   Handoff__StatusUpdate **answer)
{
    hx_clinic_sync_t s = {0};
    int rc = request_raw(c, type, what, msg, wait_ms, &s);
    if (rc == 0 && s.answer && !(*answer = handoff__status_update__unpack(NULL, s.answer_len, s.answer)))
        rc = cl_fail(c, HX_EIO, "%s: the answer does not decode", what);
    free(s.answer);
    return rc;
}

int hx_clinic_change(hx_clinic_t *c, const Handoff__StatusChange *ch, uint32_t wait_ms,
                     Handoff__StatusUpdate **answer)
{
    *answer = NULL;
    if (!hx_referral_id_valid(ch->referral_id))
        return cl_fail(c, HX_EINVAL, "'%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)",
                       ch->referral_id ? ch->referral_id : "");
    Handoff__StatusChange probe = *ch;       /* the reason's size, apart from the summary */
    probe.summary = "";
    if (handoff__status_change__get_packed_size(&probe) > 1024)
        return cl_fail(c, HX_EINVAL, "reason: at most 800 characters");
    char why[160];
    if (ch->event && strcmp(ch->event, "complete") == 0 &&
        hx_thread_text_check("summary", ch->summary, why, sizeof why) != 0)
        return cl_fail(c, HX_EINVAL, "%s (the completion summary goes to the referring clinic)", why);
    char what[64];
    snprintf(what, sizeof what, "%s", ch->event);
    return request(c, "handoff.StatusChange", what, &ch->base, wait_ms, answer);
}

int hx_clinic_review_decide(hx_clinic_t *c, const Handoff__ReviewDecision *d, uint32_t wait_ms,
                            Handoff__StatusUpdate **answer)
{
    *answer = NULL;
    if (!hx_referral_id_valid(d->referral_id))
        return cl_fail(c, HX_EINVAL, "'%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)",
                       d->referral_id ? d->referral_id : "");
    char what[64];
    snprintf(what, sizeof what, "review decide %s", d->referral_id);
    return request(c, "handoff.ReviewDecision", what, &d->base, wait_ms, answer);
}

int hx_clinic_thread_post(hx_clinic_t *c, const Handoff__ThreadPost *p, uint32_t wait_ms,
                          Handoff__ThreadPost **posted, Handoff__StatusUpdate **refused)
{
    *posted = NULL;
    *refused = NULL;
    char why[256];
    if (!hx_referral_id_valid(p->referral_id))
        return cl_fail(c, HX_EINVAL, "'%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)",
                       p->referral_id ? p->referral_id : "");
    if (hx_thread_post_check(p->kind, p->text, p->in_reply_to, why, sizeof why) != 0)
        return cl_fail(c, HX_EINVAL, "%s", why);
    const char *type;
    if (p->attachment && !c->typer && !(c->typer = hx_attach_typer_open(why, sizeof why)))
        return cl_fail(c, HX_EIO, "attachment: %s", why);
    if (p->attachment && hx_attach_check(c->typer, p->attachment->name, p->attachment->data.data,
                                         p->attachment->data.len, &type, why, sizeof why) != 0)
        return cl_fail(c, HX_EINVAL, "%s", why);
    char what[64];
    snprintf(what, sizeof what, "thread %s", p->kind);
    hx_clinic_sync_t s = {0};
    int rc = request_raw(c, "handoff.ThreadPost", what, &p->base, wait_ms, &s);
    if (rc == 0 && s.answer && strcmp(s.answer_type, "handoff.ThreadPost") == 0) {
        if (!(*posted = handoff__thread_post__unpack(NULL, s.answer_len, s.answer)))
            rc = cl_fail(c, HX_EIO, "%s: the answer does not decode", what);
    } else if (rc == 0 && s.answer) {
        if (!(*refused = handoff__status_update__unpack(NULL, s.answer_len, s.answer)))
            rc = cl_fail(c, HX_EIO, "%s: the answer does not decode", what);
    }
    free(s.answer);
    return rc;
}

int hx_clinic_stats(hx_clinic_t *c, const Handoff__StatsRequest *rq, uint32_t wait_ms, Handoff__NetworkStats **out)
{
    *out = NULL;
    if (rq->weeks > 52)
        return cl_fail(c, HX_EINVAL, "weeks: %u, must be 1 to 52 (0: 12)", rq->weeks);
    hx_clinic_sync_t s = {0};
    int rc = request_raw(c, "handoff.StatsRequest", "stats", &rq->base, wait_ms, &s);
    if (rc == 0 && s.answer && strcmp(s.answer_type, "handoff.NetworkStats") == 0) {
        if (!(*out = handoff__network_stats__unpack(NULL, s.answer_len, s.answer)))
            rc = cl_fail(c, HX_EIO, "stats: the answer does not decode");
    } else if (rc == 0 && s.answer) {
        Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, s.answer_len, s.answer);
        rc = cl_fail(c, HX_EREFUSED, "stats: refused by scheduling: %s",
                     u ? u->reason : "(an answer that does not decode)");
        if (u)
            handoff__status_update__free_unpacked(u, NULL);
    }
    free(s.answer);
    return rc;
}
