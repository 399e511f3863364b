/* web_fhir_view — a hosted clinic's store loaded into an hx_fhir_view_t (web_fhir.h): the
 * referrals it sent (whole, when the store kept them), then the handoffs and status updates it
 * received in the order they happened, then its care threads' posts — the order hx_inbox_load
 * reads them in, so that the API and the inbox never tell a referral's story differently.
 * Every resource of one referral is built from that referral's messages alone, so a read of
 * one loads only its rows (the store's index on referral_id): its cost does not grow with the
 * store; searches load the whole store. */
#include "web_fhir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char referral_id[HX_REFERRAL_ID_LEN + 1];
    char ref[128];
    uint64_t at_ms;
} sent_row_t;

typedef struct {
    hx_fhir_view_t *v;
    sent_row_t *sent;
    size_t n_sent, cap_sent;
    int rc;
} load_t;

static void on_sent(void *ud, const char *referral_id, const char *ref, const char *patient, uint64_t at_ms)
{
    (void)patient;
    load_t *l = ud;
    if (l->rc)
        return;
    if (l->n_sent == l->cap_sent) {
        size_t cap = l->cap_sent ? l->cap_sent * 2 : 64;
        sent_row_t *n = realloc(l->sent, cap * sizeof *n);
        if (!n) {
            l->rc = HX_ENOMEM;
            return;
        }
        l->sent = n;
        l->cap_sent = cap;
    }
    sent_row_t *s = &l->sent[l->n_sent++];
    snprintf(s->referral_id, sizeof s->referral_id, "%s", referral_id);
    snprintf(s->ref, sizeof s->ref, "%s", ref);
    s->at_ms = at_ms;
}

static void on_received(void *ud, const char *type, const uint8_t *payload, size_t len, uint64_t at_ms)
{
    load_t *l = ud;
    if (l->rc)
        return;
    /* the store holds only what passed the issuer check; a payload that no longer unpacks is
     * skipped, as the inbox skips it */
    if (!strcmp(type, "handoff.Handoff")) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, len, payload);
        if (h)
            l->rc = hx_fhir_view_add_handoff(l->v, h, at_ms);
    } else if (!strcmp(type, "handoff.StatusUpdate")) {
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, payload);
        if (s)
            l->rc = hx_fhir_view_add_status(l->v, s, at_ms);
    } else if (!strcmp(type, "handoff.ThreadPost")) {
        Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, len, payload);
        if (p)
            l->rc = hx_fhir_view_add_post(l->v, p, at_ms);
    }
}

/* The whole store (rid NULL), or one referral's rows. */
static int load(web_t *w, web_hosted_t *h, const char *rid, hx_fhir_view_t **out, char *err, size_t cap)
{
    *out = NULL;
    load_t l = {.v = hx_fhir_view_new(h->id, w->dir)};
    if (!l.v) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    hx_clinic_query_t updates = {.referral_id = rid}, posts = {.type = "handoff.ThreadPost", .referral_id = rid};
    pthread_mutex_lock(&h->mu);
    int rc = rid ? hx_clinic_sent_one(h->clinic, rid, on_sent, &l) : hx_clinic_each_sent(h->clinic, on_sent, &l);
    for (size_t i = 0; !rc && !l.rc && i < l.n_sent; i++) {
        Handoff__Referral *r = NULL;
        rc = hx_clinic_sent_referral(h->clinic, l.sent[i].referral_id, &r);
        if (!rc)
            l.rc = hx_fhir_view_add_sent(l.v, l.sent[i].referral_id, l.sent[i].ref, r, l.sent[i].at_ms);
    }
    if (!rc && !l.rc)
        rc = hx_clinic_each_received(h->clinic, &updates, on_received, &l);
    if (!rc && !l.rc)
        rc = hx_clinic_each_received(h->clinic, &posts, on_received, &l);
    if (rc)
        snprintf(err, cap, "reading the clinic's store: %s", hx_clinic_error(h->clinic));
    pthread_mutex_unlock(&h->mu);
    free(l.sent);
    if (!rc && l.rc) {
        snprintf(err, cap, "out of memory");
        rc = l.rc;
    }
    if (rc) {
        hx_fhir_view_destroy(&l.v);
        return -1;
    }
    *out = l.v;
    return 0;
}

int web_fhir_view_load(web_t *w, web_hosted_t *h, hx_fhir_view_t **out, char *err, size_t cap)
{
    return load(w, h, NULL, out, err, cap);
}

int web_fhir_view_load_referral(web_t *w, web_hosted_t *h, const char *rid, hx_fhir_view_t **out, char *err,
                                size_t cap)
{
    return load(w, h, rid, out, err, cap);
}

bool web_fhir_referral_of(hx_fhir_type_t t, const char *id, char rid[HX_REFERRAL_ID_LEN + 1])
{
    switch (t) {
    case HX_FHIR_SERVICE_REQUEST:
    case HX_FHIR_TASK:
    case HX_FHIR_PATIENT:
    case HX_FHIR_PRACTITIONER:
    case HX_FHIR_PRACTITIONER_ROLE:
    case HX_FHIR_APPOINTMENT:
        break;
    default:
        return false;
    }
    /* R- and 16 characters, alone or followed by a suffix ("-physiotherapy", "-patient" ...);
     * directory ids are lower case and never look like one */
    if (!id || strlen(id) < HX_REFERRAL_ID_LEN || (id[HX_REFERRAL_ID_LEN] && id[HX_REFERRAL_ID_LEN] != '-'))
        return false;
    memcpy(rid, id, HX_REFERRAL_ID_LEN);
    rid[HX_REFERRAL_ID_LEN] = '\0';
    return hx_referral_id_valid(rid);
}
