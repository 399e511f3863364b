/* web_fhir_write — the FHIR API's writes (web_fhir.h): a referral submitted as a transaction
 * Bundle, a handoff acted on by a Task update, a post to the care thread, and subscriptions.
 * Each goes the way the portal's forms go: the same checks (intake's, hx_fhir's), the same
 * clinic library calls, the same answers from scheduling; a refusal is an OperationOutcome
 * with scheduling's reason, word for word. */
#include "web_fhir_internal.h"
#include "web_notify.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- submit ---- */

typedef struct {
    const char *rid;
    bool known;
} known_t;

static void on_update(void *ud, const char *type, const uint8_t *payload, size_t len, uint64_t at_ms)
{
    (void)type, (void)at_ms;
    known_t *k = ud;
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, payload);
    if (s && s->by && !strcmp(s->by, "scheduling"))
        k->known = true;
    if (s)
        handoff__status_update__free_unpacked(s, NULL);
}

/* Waits (h->mu held) until scheduling has told this clinic about the referral, so that a
 * post to its thread is taken; false when wait_ms passed first. */
static bool wait_scheduling(web_hosted_t *h, const char *rid, uint32_t wait_ms)
{
    uint64_t until = now_ms() + wait_ms;
    hx_clinic_query_t q = {.type = "handoff.StatusUpdate", .referral_id = rid};
    for (;;) {
        known_t k = {rid, false};
        hx_clinic_sync(h->clinic, NULL);
        hx_clinic_each_received(h->clinic, &q, on_update, &k);
        if (k.known)
            return true;
        uint64_t now = now_ms();
        if (now >= until)
            return false;
        /* a sync stores what arrives and broadcasts; wait for one, at most 200 ms */
        web_timedwait(&h->changed, &h->mu, CLOCK_REALTIME, until - now < 200 ? until - now : 200);
    }
}

static json_t *response_entry(const char *status, const char *location, uint64_t at_ms, json_t *outcome)
{
    char when[32];
    hx_fhir_instant(at_ms, when, sizeof when);
    json_t *r = json_pack("{s:s,s:s}", "status", status, "lastModified", when);
    if (location)
        json_object_set_new(r, "location", json_string(location));
    if (outcome)
        json_object_set_new(r, "outcome", outcome);
    return json_pack("{s:o}", "response", r);
}

void fx_submit(fx_t *x)
{
    snprintf(x->audit_action, sizeof x->audit_action, "fhir submit");
    json_t *b = fx_body_json(x);
    if (!b)
        return;
    hx_fhir_submission_t s;
    json_t *oo = NULL;
    if (hx_fhir_read_submission(b, x->h->id, WEB_FHIR_ENTRIES_MAX, &s, &oo) != 0) {
        size_t n = json_array_size(json_object_get(b, "entry"));
        json_decref(b);
        fx_fail_oo(x, n > WEB_FHIR_ENTRIES_MAX ? 413 : 400, oo);
        return;
    }
    size_t n_entries = json_array_size(json_object_get(b, "entry"));
    json_decref(b);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_intake_validate(s.referral, &errs);
    if (errs.count) {
        fx_fail_oo(x, 422, hx_fhir_submission_outcome(&s, &errs));
        hx_fhir_submission_free(&s);
        return;
    }
    web_hosted_t *h = x->h;
    char rid[HX_REFERRAL_ID_LEN + 1] = "", source[96];
    snprintf(source, sizeof source, "fhir:%s", x->grant.id);
    pthread_mutex_lock(&h->mu);
    hx_clinic_referral_id(h->clinic, s.ref, rid);
    bool before = hx_clinic_sent_before(h->clinic, rid);
    int rc = before ? 0 : hx_clinic_submit(h->clinic, s.referral, source, rid);
    char err[256];
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    /* the attachments go to the referral's care thread once scheduling knows the referral */
    json_t *posted = json_array();
    for (size_t i = 0; rc == 0 && !before && i < s.n_attach; i++) {
        if (i == 0 && !wait_scheduling(h, rid, x->w->cfg.wait_ms))
            break;
        Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
        p.referral_id = rid;
        p.kind = "note";
        char text[200];
        snprintf(text, sizeof text, "Attached with the referral: %s",
                 s.attach[i]->name && *s.attach[i]->name ? s.attach[i]->name : "a file");
        p.text = text;
        p.attachment = s.attach[i];
        Handoff__ThreadPost *ok = NULL;
        Handoff__StatusUpdate *no = NULL;
        int prc = hx_clinic_thread_post(h->clinic, &p, x->w->cfg.wait_ms, &ok, &no);
        if (prc == 0 && ok)
            json_array_append_new(posted, json_pack("{s:i,s:s}", "i", (int)i, "post", ok->post_id));
        else
            json_array_append_new(posted, json_pack("{s:i,s:s}", "i", (int)i, "why",
                                                    no && no->reason ? no->reason : "no answer in time"));
        if (ok)
            handoff__thread_post__free_unpacked(ok, NULL);
        if (no)
            handoff__status_update__free_unpacked(no, NULL);
    }
    if (rc == 0 && !before)
        web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    x->w->actions++;
    snprintf(x->audit_rid, sizeof x->audit_rid, "%s", rid);
    if (rc != 0) {
        json_decref(posted);
        hx_fhir_submission_free(&s);
        char why[400];
        snprintf(why, sizeof why, "not accepted: %s", err);
        fx_fail(x, rc == HX_EREFUSED ? 422 : 503, rc == HX_EREFUSED ? "business-rule" : "transient", why, NULL);
        return;
    }
    web_fhir_notify_kick(x->w);
    /* the transaction-response: one entry per request entry, in order */
    uint64_t at = now_ms();
    json_t *entries = json_array();
    for (size_t i = 0; i < n_entries; i++)
        json_array_append_new(entries, json_null());
    char loc[160];
    snprintf(loc, sizeof loc, "ServiceRequest/%s/_history/1", rid);
    json_array_set_new(entries, s.entry_sr,
                       response_entry(before ? "200 OK" : "201 Created", loc, at,
                                      before ? hx_fhir_outcome("information", "duplicate",
                                                               "this clinic submitted a referral with this ref "
                                                               "before: it is that referral (nothing new was sent)",
                                                               "Bundle.entry.request.ifNoneExist")
                                             : NULL));
    snprintf(loc, sizeof loc, "Patient/%s-patient/_history/1", rid);
    json_array_set_new(entries, s.entry_patient, response_entry(before ? "200 OK" : "201 Created", loc, at, NULL));
    snprintf(loc, sizeof loc, "PractitionerRole/%s-referrer/_history/1", rid);
    json_array_set_new(entries, s.entry_role, response_entry(before ? "200 OK" : "201 Created", loc, at, NULL));
    if (s.entry_practitioner < n_entries && s.entry_practitioner != s.entry_role) {
        snprintf(loc, sizeof loc, "Practitioner/%s-referrer/_history/1", rid);
        json_array_set_new(entries, s.entry_practitioner,
                           response_entry(before ? "200 OK" : "201 Created", loc, at, NULL));
    }
    /* attachments: the entries left, in order */
    size_t a = 0;
    for (size_t i = 0; i < n_entries; i++) {
        if (!json_is_null(json_array_get(entries, i)))
            continue;
        json_t *p = json_array_get(posted, a);
        const char *post = json_string_value(json_object_get(p, "post"));
        if (post) {
            snprintf(loc, sizeof loc, "DocumentReference/%s/_history/1", post);
            json_array_set_new(entries, i, response_entry("201 Created", loc, at, NULL));
        } else {
            char why[400];
            snprintf(why, sizeof why,
                     "the referral was accepted but this attachment was not posted to its care thread (%s): "
                     "post it with POST Communication",
                     before ? "the referral was submitted before"
                            : json_string_value(json_object_get(p, "why")) ? json_string_value(json_object_get(p, "why"))
                                                                          : "scheduling had not taken the referral in time");
            json_array_set_new(entries, i,
                               response_entry("202 Accepted", NULL, at, hx_fhir_outcome("warning", "incomplete", why, NULL)));
        }
        a++;
    }
    json_decref(posted);
    hx_fhir_submission_free(&s);
    x->status = before ? 200 : 201;
    x->out = json_pack("{s:s,s:s,s:o}", "resourceType", "Bundle", "type", "transaction-response", "entry", entries);
    snprintf(x->audit_detail, sizeof x->audit_detail, "%s", before ? "submitted before" : "accepted by the broker");
}

/* ---- Task updates ---- */

static void task_answer(fx_t *x, const char *id)
{
    char rid[HX_REFERRAL_ID_LEN + 1];
    hx_fhir_view_t *v = fx_view_of(x, web_fhir_referral_of(HX_FHIR_TASK, id, rid) ? rid : NULL);
    if (!v)
        return;
    json_t *t = hx_fhir_view_read(v, HX_FHIR_TASK, id);
    hx_fhir_view_destroy(&v);
    if (t)
        fx_resource(x, 200, t);
    else
        fx_fail(x, 404, "not-found", "the Task is no longer this clinic's to read", NULL);
}

void fx_task_update(fx_t *x, const char *id, bool patch)
{
    snprintf(x->audit_action, sizeof x->audit_action, "fhir %s Task", patch ? "patch" : "update");
    json_t *body = NULL;
    if (patch) {
        /* a JSON Patch is an array: parsed here, not by fx_body_json (objects only) */
        json_error_t e;
        body = x->body && x->len ? json_loadb(x->body, x->len, JSON_REJECT_DUPLICATES, &e) : NULL;
        if (!json_is_array(body)) {
            json_decref(body);
            fx_fail(x, 400, "structure", "a JSON Patch is a JSON array of operations", NULL);
            return;
        }
    } else if (!(body = fx_body_json(x))) {
        return;
    }
    char of[HX_REFERRAL_ID_LEN + 1];
    hx_fhir_view_t *v = fx_view_of(x, web_fhir_referral_of(HX_FHIR_TASK, id, of) ? of : NULL);
    if (!v) {
        json_decref(body);
        return;
    }
    json_t *old = hx_fhir_view_read(v, HX_FHIR_TASK, id);
    Handoff__Discipline d = 0;
    const char *rid = hx_fhir_task_referral(v, id, &d);
    char referral[HX_REFERRAL_ID_LEN + 1] = "";
    if (rid)
        snprintf(referral, sizeof referral, "%s", rid);
    hx_fhir_view_destroy(&v);
    snprintf(x->audit_rid, sizeof x->audit_rid, "%s", referral);
    if (!old) {
        json_decref(body);
        char why[160];
        snprintf(why, sizeof why, "Task/%s: there is none this clinic may read", id);
        fx_fail(x, 404, "not-found", why, NULL);
        return;
    }
    /* If-Match: the version the client read */
    const char *match = fx_header(x, "If-Match");
    const char *version = json_string_value(json_object_get(json_object_get(old, "meta"), "versionId"));
    if (match && version) {
        char want[48];
        snprintf(want, sizeof want, "W/\"%s\"", version);
        if (strcmp(match, want) && strcmp(match, version)) {
            json_decref(body);
            json_decref(old);
            fx_fail(x, 412, "conflict", "the Task changed since that version was read (If-Match): read it again", NULL);
            return;
        }
    }
    json_t *oo = NULL, *want = NULL;
    if (patch) {
        want = hx_fhir_json_patch(old, body, &oo);
    } else {
        const char *bid = json_string_value(json_object_get(body, "id"));
        if (!bid || strcmp(bid, id)) {
            json_decref(body);
            json_decref(old);
            fx_fail(x, 400, "invalid", "the body's id must be the Task's id in the URL", "Task.id");
            return;
        }
        want = json_incref(body);
    }
    json_decref(body);
    if (!want) {
        json_decref(old);
        fx_fail_oo(x, 422, oo);
        return;
    }
    Handoff__StatusChange ch = HANDOFF__STATUS_CHANGE__INIT;
    int rc = hx_fhir_task_change(old, want, &ch, &oo);
    json_decref(old);
    json_decref(want);
    if (rc != 0) {
        fx_fail_oo(x, 422, oo);
        return;
    }
    snprintf(x->audit_action, sizeof x->audit_action, "fhir Task %s", ch.event ? ch.event : "?");
    web_hosted_t *h = x->h;
    Handoff__StatusUpdate *s = NULL;
    pthread_mutex_lock(&h->mu);
    rc = hx_clinic_change(h->clinic, &ch, x->w->cfg.wait_ms, &s);
    char err[256];
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    hx_fhir_change_free(&ch);
    x->w->actions++;
    web_fhir_notify_kick(x->w);
    if (rc != 0) {
        char why[400];
        snprintf(why, sizeof why, "not sent: %s", err);
        fx_fail(x, 503, "transient", why, NULL);
    } else if (!s) {
        x->status = 202;
        x->out = hx_fhir_outcome("information", "informational",
                                 "sent: scheduling has not answered yet; read the Task again for its status", NULL);
        snprintf(x->audit_detail, sizeof x->audit_detail, "sent, no answer yet");
    } else if (s->refused) {
        /* scheduling's reason, word for word: the same as the CLI and the portal show */
        fx_fail(x, 409, "business-rule", s->reason && *s->reason ? s->reason : "refused", "Task.status");
    } else {
        task_answer(x, id);
        snprintf(x->audit_detail, sizeof x->audit_detail, "done");
    }
    if (s)
        handoff__status_update__free_unpacked(s, NULL);
}

/* ---- Communication ---- */

void fx_communication_create(fx_t *x)
{
    snprintf(x->audit_action, sizeof x->audit_action, "fhir post");
    json_t *body = fx_body_json(x);
    if (!body)
        return;
    Handoff__ThreadPost *p = NULL;
    json_t *oo = NULL;
    int rc = hx_fhir_read_communication(body, &p, &oo);
    json_decref(body);
    if (rc != 0) {
        fx_fail_oo(x, 422, oo);
        return;
    }
    snprintf(x->audit_rid, sizeof x->audit_rid, "%s", p->referral_id ? p->referral_id : "");
    /* the referral must be one this clinic takes part in: else it is none (as a read would be) */
    if (!hx_referral_id_valid(x->audit_rid)) {
        hx_fhir_post_free(&p);
        fx_fail(x, 404, "not-found", "basedOn: not a referral id", "Communication.basedOn[0]");
        return;
    }
    hx_fhir_view_t *v = fx_view_of(x, x->audit_rid);
    if (!v) {
        hx_fhir_post_free(&p);
        return;
    }
    bool mine = hx_fhir_view_sent(v, p->referral_id) || hx_fhir_view_holds(v, p->referral_id, 0);
    hx_fhir_view_destroy(&v);
    if (!mine) {
        hx_fhir_post_free(&p);
        fx_fail(x, 404, "not-found", "basedOn: no referral this clinic takes part in has this id",
                "Communication.basedOn[0]");
        return;
    }
    web_hosted_t *h = x->h;
    Handoff__ThreadPost *posted = NULL;
    Handoff__StatusUpdate *refused = NULL;
    pthread_mutex_lock(&h->mu);
    rc = hx_clinic_thread_post(h->clinic, p, x->w->cfg.wait_ms, &posted, &refused);
    char err[256];
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    hx_fhir_post_free(&p);
    x->w->actions++;
    if (rc != 0) {
        char why[400];
        snprintf(why, sizeof why, "not sent: %s", err);
        fx_fail(x, 503, "transient", why, NULL);
    } else if (refused) {
        fx_fail(x, 409, "business-rule", refused->reason && *refused->reason ? refused->reason : "refused", NULL);
    } else if (!posted) {
        x->status = 202;
        x->out = hx_fhir_outcome("information", "informational",
                                 "sent: scheduling has not answered yet; search Communication?based-on for it", NULL);
    } else {
        char id[64];
        snprintf(id, sizeof id, "%s", posted->post_id ? posted->post_id : "");
        hx_fhir_view_t *v2 = fx_view_of(x, x->audit_rid);
        json_t *c = v2 ? hx_fhir_view_read(v2, HX_FHIR_COMMUNICATION, id) : NULL;
        if (c) {
            snprintf(x->location, sizeof x->location, "%s/Communication/%s/_history/1", x->base, id);
            fx_resource(x, 201, c);
        } else if (v2) {        /* (without v2, fx_view_of answered 500) */
            x->status = 202;
            x->out = hx_fhir_outcome("information", "informational", "posted; it is stored at the next sync", NULL);
        }
        hx_fhir_view_destroy(&v2);
    }
    if (posted)
        handoff__thread_post__free_unpacked(posted, NULL);
    if (refused)
        handoff__status_update__free_unpacked(refused, NULL);
}

/* ---- Subscription ---- */

static json_t *sub_json(const hx_api_sub_t *s)
{
    return hx_fhir_subscription_json(&s->sub);
}

void fx_subscription(fx_t *x, const char *id)
{
    const char *m = x->method;
    bool get = !strcmp(m, "GET") || !strcmp(m, "HEAD");
    snprintf(x->audit_action, sizeof x->audit_action, "fhir %s Subscription", m);
    if (id && !hx_fhir_id_valid(id)) {
        fx_fail(x, 404, "not-found", "not a resource id", NULL);
        return;
    }
    hx_api_sub_t s;
    memset(&s, 0, sizeof s);
    if (id && (get || !strcmp(m, "DELETE") || !strcmp(m, "PUT"))) {
        pthread_mutex_lock(&x->w->lock);
        int rc = hx_api_sub_get(x->w->accounts, x->grant.clinic, id, &s);
        pthread_mutex_unlock(&x->w->lock);
        if (rc != 0) {
            fx_fail(x, 404, "not-found", "Subscription: there is none of this clinic's with this id", NULL);
            return;
        }
    }
    if (id && get) {
        if (fx_allowed(x, "Subscription", 'r'))
            fx_resource(x, 200, sub_json(&s));
        return;
    }
    if (id && !strcmp(m, "DELETE")) {
        if (!fx_allowed(x, "Subscription", 'd'))
            return;
        pthread_mutex_lock(&x->w->lock);
        hx_api_sub_delete(x->w->accounts, x->grant.clinic, id);
        pthread_mutex_unlock(&x->w->lock);
        x->status = 204;
        x->out = json_object();
        return;
    }
    bool create = !id && !strcmp(m, "POST"), update = id && !strcmp(m, "PUT");
    if (!create && !update) {
        fx_fail(x, 405, "not-supported", "Subscription takes POST, GET, PUT and DELETE", NULL);
        return;
    }
    if (!fx_allowed(x, "Subscription", create ? 'c' : 'u'))
        return;
    const char *ct = fx_header(x, "Content-Type");
    if (!ct || (strncasecmp(ct, "application/fhir+json", 21) && strncasecmp(ct, "application/json", 16))) {
        fx_fail(x, 415, "not-supported", "the body must be application/fhir+json", NULL);
        return;
    }
    json_t *body = fx_body_json(x);
    if (!body)
        return;
    if (update) {
        const char *bid = json_string_value(json_object_get(body, "id"));
        if (!bid || strcmp(bid, id)) {
            json_decref(body);
            fx_fail(x, 400, "invalid", "the body's id must be the Subscription's id in the URL", "Subscription.id");
            return;
        }
    }
    hx_fhir_sub_t in;
    json_t *oo = NULL;
    int rc = hx_fhir_read_subscription(body, x->w->cfg.fhir_http_hooks, &in, &oo);
    json_decref(body);
    if (rc != 0) {
        fx_fail_oo(x, 422, oo);
        return;
    }
    char why[256] = "";
    if (create) {
        s.sub = in;
        snprintf(s.client, sizeof s.client, "%s", x->grant.id);
        snprintf(s.clinic, sizeof s.clinic, "%s", x->grant.clinic);
        /* from now on: what the store holds already is not news */
        pthread_mutex_lock(&x->h->mu);
        s.cursor = hx_clinic_last_seq(x->h->clinic);
        pthread_mutex_unlock(&x->h->mu);
        if (s.cursor < 0) {
            fx_fail(x, 500, "exception", "the clinic's store could not be read; try again", NULL);
            return;
        }
        if (strcmp(s.sub.status, "off"))
            snprintf(s.sub.status, sizeof s.sub.status, "requested");
        pthread_mutex_lock(&x->w->lock);
        rc = hx_api_sub_add(x->w->accounts, &s, why, sizeof why);
        pthread_mutex_unlock(&x->w->lock);
    } else {
        pthread_mutex_lock(&x->w->lock);
        rc = hx_api_sub_update(x->w->accounts, x->grant.clinic, id, &in, why, sizeof why);
        if (rc == 0)
            rc = hx_api_sub_get(x->w->accounts, x->grant.clinic, id, &s);
        pthread_mutex_unlock(&x->w->lock);
    }
    if (rc != 0) {
        fx_fail(x, 422, "business-rule", why[0] ? why : "the subscription could not be stored", NULL);
        return;
    }
    web_fhir_notify_kick(x->w);
    if (create)
        snprintf(x->location, sizeof x->location, "%s/Subscription/%s", x->base, s.sub.id);
    fx_resource(x, create ? 201 : 200, sub_json(&s));
}
