/* web_review — the needs-review queue for the network's reviewers: the referrals triage could
 * not place, what it could not read, the referral, and a decision (physiotherapy, massage
 * therapy, both, or a physician) with its reason, sent to scheduling from the reviewer's own
 * mailbox as `handoff review decide` sends it. */
#include "web_pages.h"
#include "hx_refjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Handoff__ReviewRequest *rq[256];
    uint64_t at[256];
    char decided[256][400];
    size_t n;
} queue_t;

static void on_request(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type;
    queue_t *q = ud;
    Handoff__ReviewRequest *rq = handoff__review_request__unpack(NULL, len, data);
    if (!rq || !rq->case_ || !rq->case_->referral || !rq->case_->decision || q->n == 256) {
        if (rq)
            handoff__review_request__free_unpacked(rq, NULL);
        return;
    }
    for (size_t i = 0; i < q->n; i++)
        if (!strcmp(q->rq[i]->referral_id, rq->referral_id)) {
            handoff__review_request__free_unpacked(rq, NULL);
            return;
        }
    q->at[q->n] = at;
    q->decided[q->n][0] = '\0';
    q->rq[q->n++] = rq;
}

static void on_update(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    queue_t *q = ud;
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, data);
    for (size_t i = 0; s && !strcmp(s->event, "review") && !s->refused && i < q->n; i++)
        if (!strcmp(q->rq[i]->referral_id, s->referral_id))
            snprintf(q->decided[i], sizeof q->decided[i], "%s", s->reason);
    if (s)
        handoff__status_update__free_unpacked(s, NULL);
}

static int queue_load(web_hosted_t *h, queue_t *q, uint64_t *version)
{
    memset(q, 0, sizeof *q);
    hx_clinic_query_t rq = {.type = "handoff.ReviewRequest"}, up = {.type = "handoff.StatusUpdate"};
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_each_received(h->clinic, &rq, on_request, q) | hx_clinic_each_received(h->clinic, &up, on_update, q);
    *version = h->version;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void queue_free(queue_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        handoff__review_request__free_unpacked(q->rq[i], NULL);
}

static bool reviewer(web_req_t *r)
{
    if (r->user.role == HX_USER_REVIEWER && r->hosted && r->hosted->reviewer)
        return true;
    r->web->denied++;
    web_audit(r, "denied", "", "review queue");
    page_error(r, 403, "Not allowed", "The needs-review queue is for the network's reviewers.");
    return false;
}

static void draw_queue(web_req_t *r, const char *notice, bool ok)
{
    queue_t q;
    uint64_t version = 0;
    if (queue_load(r->hosted, &q, &version) != 0) {
        queue_free(&q);
        page_error(r, 500, "Unavailable", "The reviewer's store could not be read.");
        return;
    }
    hx_html_t *b = &r->body;
    web_page_begin(r, "Needs review", version);
    size_t pending = 0;
    for (size_t i = 0; i < q.n; i++)
        pending += !q.decided[i][0];
    HX_HTML_F(b, "<h1>Needs review <span class=\"count\">%zu</span></h1>", pending);
    if (notice)
        web_flash(r, ok, notice);
    if (!pending)
        HX_HTML_MARKUP(b, "<p class=\"empty\">Nothing waits for a decision.</p>");
    for (size_t i = 0; i < q.n; i++) {
        if (q.decided[i][0])
            continue;
        const Handoff__Referral *ref = q.rq[i]->case_->referral;
        const Handoff__TriageDecision *d = q.rq[i]->case_->decision;
        char name[160];
        hx_patient_name(ref, name, sizeof name);
        HX_HTML_F(b, "<section class=\"card wide\"><h2>%s <small>from %s</small></h2><dl><dt>Patient</dt><dd>%s, born "
                     "%s</dd><dt>Priority</dt><dd>%s</dd><dt>Reason</dt><dd>%s</dd>",
                  q.rq[i]->referral_id, ref->referring_clinic, name, ref->patient ? ref->patient->birth_date : "?",
                  hx_priority_text(ref->priority), ref->reason);
        if (ref->history[0])
            HX_HTML_F(b, "<dt>History</dt><dd>%s</dd>", ref->history);
        if (ref->diagnosis[0])
            HX_HTML_F(b, "<dt>Diagnosis</dt><dd>%s</dd>", ref->diagnosis);
        HX_HTML_MARKUP(b, "<dt>Triage could not read</dt><dd><ul>");
        for (size_t k = 0; k < d->n_not_understood; k++)
            HX_HTML_F(b, "<li>%s</li>", d->not_understood[k]);
        HX_HTML_MARKUP(b, "</ul></dd></dl>");
        const char *id = q.rq[i]->referral_id;
        HX_HTML_F(b, "<form method=\"post\" action=\"/review/decide\" class=\"stack\">"
                     "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"id\" value=\"%s\">"
                     "<fieldset><legend>Decision</legend>",
                  r->csrf, id);
        static const char *const plans[][2] = {{"physio", "Physiotherapy"}, {"massage", "Massage therapy"},
                                                {"both", "Both"}, {"physician", "To a physician"}};
        for (size_t k = 0; k < 4; k++)
            HX_HTML_F(b, "<label><input type=\"radio\" name=\"plan\" value=\"%s\" id=\"plan-%s-%s\"%s> %s</label>",
                      plans[k][0], plans[k][0], id, k ? "" : " required", plans[k][1]);
        HX_HTML_F(b, "</fieldset><label for=\"reason-%s\">Reason (the referring clinic is told)</label>"
                     "<textarea id=\"reason-%s\" name=\"reason\" rows=\"2\" maxlength=\"800\" required></textarea>"
                     "<button type=\"submit\" id=\"decide-%s\">Decide</button></form></section>",
                  id, id, id);
    }
    web_page_end(r);
    queue_free(&q);
    web_audit(r, "review-queue", "", "");
}

void page_review(web_req_t *r)
{
    if (reviewer(r))
        draw_queue(r, NULL, true);
}

void page_review_decide(web_req_t *r)
{
    if (!reviewer(r))
        return;
    const char *id = web_field(r, "id"), *plan = web_field(r, "plan"), *reason = web_field(r, "reason");
    Handoff__ReviewDecision d = HANDOFF__REVIEW_DECISION__INIT;
    Handoff__Discipline disc[2] = {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY,
                                   HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY};
    const char *why = NULL;
    if (!id || !hx_referral_id_valid(id))
        why = "id: not a referral id";
    else if (!plan || (strcmp(plan, "physio") && strcmp(plan, "massage") && strcmp(plan, "both") &&
                       strcmp(plan, "physician")))
        why = "plan: choose physiotherapy, massage therapy, both or a physician";
    else if (!reason || !*reason || strlen(reason) > 800)
        why = "reason: required, at most 800 characters (the referring clinic is told why)";
    if (why) {
        r->status = 400;
        draw_queue(r, why, false);
        return;
    }
    d.referral_id = (char *)id;
    d.reason = (char *)reason;
    if (!strcmp(plan, "physician")) {
        d.physician = true;
    } else {
        d.disciplines = !strcmp(plan, "massage") ? disc + 1 : disc;
        d.n_disciplines = !strcmp(plan, "both") ? 2 : 1;
    }
    web_hosted_t *h = r->hosted;
    Handoff__StatusUpdate *s = NULL;
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_review_decide(h->clinic, &d, r->web->cfg.wait_ms, &s);
    char err[256], text[600];
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    web_audit(r, "review-decide", id, rc ? "not sent" : !s ? "sent" : s->refused ? "refused" : plan);
    if (rc)
        snprintf(text, sizeof text, "Not sent: %s", err);
    else if (!s)
        snprintf(text, sizeof text, "Sent; the answer has not come yet.");
    else if (s->refused)
        snprintf(text, sizeof text, "Refused: %s", s->reason);
    else
        snprintf(text, sizeof text, "Decided: %s", s->reason);
    if (rc || (s && s->refused))
        r->status = rc ? 503 : 409;
    draw_queue(r, text, !rc && !(s && s->refused));
    if (s)
        handoff__status_update__free_unpacked(s, NULL);
}
