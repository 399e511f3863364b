/* web_referral — one referral as a clinic sees it (patient, referrer, reason and findings,
 * triage's decision with the words that drove it, each handoff with its slot, status and the
 * actions allowed now, the history and the care thread), the actions and posts sent from it,
 * attachments, and the referral form. What a clinic may see is what its own store holds: a
 * referral that is not in it does not exist for this clinic's users. Every view and action is
 * audited with the user. */
#include "web_pages.h"
#include "hx_attach.h"
#include "hx_inbox.h"
#include "hx_intake.h"
#include "hx_lifecycle.h"
#include "hx_refjson.h"
#include "hx_thread_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VIEW_MAX 256

typedef struct {
    const char *rid;
    Handoff__Handoff *handoffs[8];      /* received: the latest of each discipline */
    uint64_t handoff_at[8];             /* when each came */
    size_t n_handoffs;
    Handoff__StatusUpdate *updates[VIEW_MAX];
    uint64_t update_at[VIEW_MAX];
    bool refusal[VIEW_MAX];
    size_t n_updates;
    Handoff__ThreadPost *posts[VIEW_MAX];
    size_t n_posts;
    json_t *rows;                       /* the inbox's rows of this referral */
    Handoff__Referral *sent_referral;   /* as this clinic sent it, when the store has it whole */
    bool sent;
    char sent_ref[80], sent_patient[160];
    uint64_t sent_at;
} view_t;

static void on_handoff(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type;
    view_t *v = ud;
    Handoff__Handoff *h = handoff__handoff__unpack(NULL, len, data);
    if (!h)
        return;
    Handoff__Discipline d = h->booking ? h->booking->discipline : 0;
    for (size_t i = 0; i < v->n_handoffs; i++) {
        Handoff__Discipline e = v->handoffs[i]->booking ? v->handoffs[i]->booking->discipline : 0;
        if (e == d) {                   /* a later handoff of the same discipline (re-booked) */
            handoff__handoff__free_unpacked(v->handoffs[i], NULL);
            v->handoffs[i] = h;
            v->handoff_at[i] = at;
            return;
        }
    }
    if (v->n_handoffs < sizeof v->handoffs / sizeof *v->handoffs) {
        v->handoff_at[v->n_handoffs] = at;
        v->handoffs[v->n_handoffs++] = h;
    }
    else
        handoff__handoff__free_unpacked(h, NULL);
}

static void on_update(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    view_t *v = ud;
    if (v->n_updates == VIEW_MAX)
        return;
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, data);
    if (!s)
        return;
    v->refusal[v->n_updates] = !strcmp(type, "handoff.Refusal");
    v->update_at[v->n_updates] = at;
    v->updates[v->n_updates++] = s;
}

static void on_post(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    view_t *v = ud;
    Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, len, data);
    if (!p)
        return;
    for (size_t i = 0; i < v->n_posts; i++)
        if (!strcmp(v->posts[i]->post_id, p->post_id)) {     /* delivered twice is one */
            handoff__thread_post__free_unpacked(p, NULL);
            return;
        }
    if (v->n_posts < VIEW_MAX)
        v->posts[v->n_posts++] = p;
    else
        handoff__thread_post__free_unpacked(p, NULL);
}

static void on_sent(void *ud, const char *referral_id, const char *ref, const char *patient, uint64_t at_ms)
{
    view_t *v = ud;
    if (strcmp(referral_id, v->rid) != 0)
        return;
    v->sent = true;
    v->sent_at = at_ms;
    snprintf(v->sent_ref, sizeof v->sent_ref, "%s", ref ? ref : "");
    snprintf(v->sent_patient, sizeof v->sent_patient, "%s", patient ? patient : "");
}

static int post_order(const void *a, const void *b)
{
    const Handoff__ThreadPost *x = *(Handoff__ThreadPost *const *)a, *y = *(Handoff__ThreadPost *const *)b;
    return x->at_ms < y->at_ms ? -1 : x->at_ms > y->at_ms;
}

static void view_free(view_t *v)
{
    for (size_t i = 0; i < v->n_handoffs; i++)
        handoff__handoff__free_unpacked(v->handoffs[i], NULL);
    for (size_t i = 0; i < v->n_updates; i++)
        handoff__status_update__free_unpacked(v->updates[i], NULL);
    for (size_t i = 0; i < v->n_posts; i++)
        handoff__thread_post__free_unpacked(v->posts[i], NULL);
    json_decref(v->rows);
    if (v->sent_referral)
        handoff__referral__free_unpacked(v->sent_referral, NULL);
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Reads everything the clinic's store holds about rid. 0 when it holds anything, 1 when
 * nothing (not this clinic's referral), -1 when the store could not be read. */
static int view_load(web_hosted_t *h, const char *rid, view_t *v, uint64_t *version)
{
    memset(v, 0, sizeof *v);
    v->rid = rid;
    hx_inbox_t *in = NULL;
    pthread_mutex_lock(&h->mu);
    hx_clinic_query_t q = {.type = "handoff.Handoff", .referral_id = rid};
    int rc = hx_clinic_each_received(h->clinic, &q, on_handoff, v);
    q.type = "handoff.StatusUpdate";
    rc |= hx_clinic_each_received(h->clinic, &q, on_update, v);
    q.type = "handoff.Refusal";
    rc |= hx_clinic_each_received(h->clinic, &q, on_update, v);
    q.type = "handoff.ThreadPost";
    rc |= hx_clinic_each_received(h->clinic, &q, on_post, v);
    rc |= hx_clinic_each_sent(h->clinic, on_sent, v);
    if (rc == 0 && v->sent)
        rc = hx_clinic_sent_referral(h->clinic, rid, &v->sent_referral);
    if (rc == 0)
        rc = hx_inbox_load(h->clinic, &in);
    *version = h->version;
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        return -1;
    json_t *all = hx_inbox_rows_json(in), *mine = json_array();
    hx_inbox_destroy(&in);
    size_t i;
    json_t *row;
    json_array_foreach(all, i, row)
    {
        if (!strcmp(jstr(row, "referral_id"), rid))
            json_array_append(mine, row);
    }
    json_decref(all);
    v->rows = mine;
    qsort(v->posts, v->n_posts, sizeof *v->posts, post_order);
    return v->n_handoffs || v->n_updates || v->n_posts || v->sent ? 0 : 1;
}

/* ---- drawing ---------------------------------------------------------------------------------- */

static void dl_item(hx_html_t *b, const char *term, const char *value)
{
    if (value && *value)
        HX_HTML_F(b, "<dt>%s</dt><dd>%s</dd>", term, value);
}

static void list_item(hx_html_t *b, const char *term, char **items, size_t n)
{
    if (!n)
        return;
    HX_HTML_F(b, "<dt>%s</dt><dd>", term);
    for (size_t i = 0; i < n; i++)
        HX_HTML_F(b, "%s%s", i ? ", " : "", items[i]);
    HX_HTML_MARKUP(b, "</dd>");
}

static void draw_referral(hx_html_t *b, const Handoff__Referral *ref)
{
    const Handoff__Patient *p = ref->patient;
    HX_HTML_MARKUP(b, "<section class=\"card\"><h2>Patient</h2><dl>");
    if (p) {
        char name[200];
        snprintf(name, sizeof name, "%s %s", p->given_name, p->family_name);
        dl_item(b, "Name", name);
        dl_item(b, "Born", p->birth_date);
        dl_item(b, "Phone", p->phone);
        dl_item(b, "E-mail", p->email);
        dl_item(b, "Health card", p->health_card);
        dl_item(b, "Language", p->language);
        dl_item(b, "Postal code", p->postal_code);
    }
    dl_item(b, "Consent", hx_consent_text(ref->consent));
    HX_HTML_MARKUP(b, "</dl></section>");
    const Handoff__Referrer *rr = ref->referrer;
    HX_HTML_MARKUP(b, "<section class=\"card\"><h2>Referrer</h2><dl>");
    dl_item(b, "Clinic", ref->referring_clinic);
    dl_item(b, "Their ref", ref->ref);
    if (rr) {
        char reg[160];
        snprintf(reg, sizeof reg, "%s %s%s%s", rr->registration_body, rr->registration_number,
                 rr->province[0] ? ", " : "", rr->province);
        dl_item(b, "Name", rr->name);
        dl_item(b, "Discipline", hx_discipline_text(rr->discipline));
        dl_item(b, "Registration", reg);
        dl_item(b, "Phone", rr->phone);
        dl_item(b, "E-mail", rr->email);
    }
    dl_item(b, "Referral date", ref->referral_date);
    HX_HTML_MARKUP(b, "</dl></section><section class=\"card wide\"><h2>Reason and findings</h2><dl>");
    dl_item(b, "Reason", ref->reason);
    dl_item(b, "Priority", hx_priority_text(ref->priority));
    list_item(b, "Conditions", ref->conditions, ref->n_conditions);
    list_item(b, "Findings", ref->findings, ref->n_findings);
    dl_item(b, "History", ref->history);
    dl_item(b, "Diagnosis", ref->diagnosis);
    dl_item(b, "Current treatment", ref->current_treatment);
    dl_item(b, "Expectations", ref->expectations);
    HX_HTML_MARKUP(b, "</dl></section>");
}

static void draw_decision(hx_html_t *b, const Handoff__TriageDecision *d)
{
    if (!d)
        return;
    HX_HTML_MARKUP(b, "<section class=\"card wide\"><h2>Triage decision</h2><dl>");
    HX_HTML_MARKUP(b, "<dt>Plan</dt><dd>");
    for (size_t i = 0; i < d->n_disciplines; i++)
        HX_HTML_F(b, "%s%s", i ? " and " : "", hx_discipline_text(d->disciplines[i]));
    if (!d->n_disciplines)
        HX_HTML_MARKUP(b, "-");
    HX_HTML_MARKUP(b, "</dd>");
    dl_item(b, "Priority", hx_priority_text(d->priority));
    if (d->red_flag)
        HX_HTML_F(b, "<dt>Red flag</dt><dd class=\"alert\">%s</dd>",
                  d->emergency ? "emergency: to a physician now" : "to a physician");
    if (d->needs_review)
        HX_HTML_MARKUP(b, "<dt>Review</dt><dd>placed by a reviewer of the network</dd>");
    dl_item(b, "Why", d->reason);
    list_item(b, "Notes", d->notes, d->n_notes);
    HX_HTML_MARKUP(b, "</dl>");
    if (d->n_evidence) {
        HX_HTML_MARKUP(b, "<div class=\"scroll\" role=\"region\" tabindex=\"0\" aria-label=\"The words that drove it\">"
                          "<table class=\"evidence cards\"><caption>The words that drove it</caption><thead><tr>"
                          "<th scope=\"col\">Rule</th><th scope=\"col\">As written</th><th scope=\"col\">Where</th>"
                          "<th scope=\"col\">Read as</th><th scope=\"col\">Counted</th></tr></thead><tbody>");
        for (size_t i = 0; i < d->n_evidence; i++) {
            const Handoff__TriageEvidence *e = d->evidence[i];
            char read[256];
            snprintf(read, sizeof read, "%s%s%s%s%s", e->status, e->cue[0] ? " (" : "", e->cue, e->cue[0] ? ")" : "",
                     e->note[0] ? "; " : "");
            HX_HTML_F(b, "<tr><td data-label=\"Rule\">%s%s%s</td><td data-label=\"As written\">%s</td>"
                         "<td data-label=\"Where\">%s</td><td data-label=\"Read as\">%s%s</td>"
                         "<td data-label=\"Counted\">%s</td></tr>",
                      e->snomed_display[0] ? e->snomed_display : e->rule, e->snomed_display[0] ? " · " : "",
                      e->snomed_display[0] ? e->rule : "", e->words, e->source, read, e->note,
                      e->fired ? "yes" : "no");
        }
        HX_HTML_MARKUP(b, "</tbody></table></div>");
    }
    HX_HTML_MARKUP(b, "</section>");
}

static void hidden(web_req_t *r, const char *rid, const char *event, const char *discipline)
{
    HX_HTML_F(&r->body,
              "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"id\" value=\"%s\">"
              "<input type=\"hidden\" name=\"event\" value=\"%s\"><input type=\"hidden\" name=\"discipline\" "
              "value=\"%s\">",
              r->csrf, rid, event, discipline);
}

/* The forms of the events this side may cause now. */
static void draw_actions(web_req_t *r, const char *rid, const char *status_text, bool received, const char *discipline)
{
    hx_html_t *b = &r->body;
    Handoff__TaskStatus st = !strcmp(status_text, "submitted") ? HANDOFF__TASK_STATUS__TASK_REQUESTED
                                                                : hx_status_from_text(status_text);
    hx_event_t ev[HX_EVENT_COUNT];
    size_t n = st ? hx_lifecycle_allowed(st, received ? HX_ACTOR_RECEIVER : HX_ACTOR_REFERRER, ev, HX_EVENT_COUNT) : 0;
    if (!n)
        return;
    HX_HTML_MARKUP(b, "<div class=\"actions\">");
    for (size_t i = 0; i < n; i++) {
        const char *e = hx_event_text(ev[i]);
        if (ev[i] == HX_EVENT_ERROR)
            continue;                   /* entered-in-error is the network operators' */
        if (ev[i] == HX_EVENT_ADD && strcmp(discipline, "physiotherapy") != 0)
            continue;                   /* a physiotherapy clinic asks for massage therapy */
        char id[64];
        snprintf(id, sizeof id, "%s-%s", e, discipline[0] ? discipline : "referral");
        if (ev[i] == HX_EVENT_ACCEPT || ev[i] == HX_EVENT_START) {
            HX_HTML_MARKUP(b, "<form method=\"post\" action=\"/referral/action\" class=\"inline\">");
            hidden(r, rid, e, discipline);
            HX_HTML_F(b, "<button type=\"submit\" class=\"primary\" id=\"do-%s\">%s</button></form>", id,
                      ev[i] == HX_EVENT_ACCEPT ? "Accept" : "Start care (first session held)");
            continue;
        }
        const char *label = ev[i] == HX_EVENT_DECLINE    ? "Decline"
                            : ev[i] == HX_EVENT_COMPLETE ? "Complete"
                            : ev[i] == HX_EVENT_REDIRECT ? "Redirect to another clinic"
                            : ev[i] == HX_EVENT_REVOKE   ? "Revoke this referral"
                            : ev[i] == HX_EVENT_FAIL     ? "Cannot be carried out"
                            : ev[i] == HX_EVENT_ADD      ? "Ask for massage therapy too"
                                                         : e;
        HX_HTML_F(b, "<details class=\"action\"><summary id=\"open-%s\">%s</summary>", id, label);
        HX_HTML_MARKUP(b, "<form method=\"post\" action=\"/referral/action\" class=\"stack\">");
        hidden(r, rid, e, discipline);
        if (ev[i] == HX_EVENT_COMPLETE) {
            HX_HTML_F(b, "<label for=\"summary-%s\">Completion summary (sent to the referring clinic)</label>"
                         "<textarea id=\"summary-%s\" name=\"summary\" rows=\"4\" maxlength=\"4000\" required>"
                         "</textarea>",
                      id, id);
        } else {
            if (ev[i] == HX_EVENT_REDIRECT)
                HX_HTML_F(b, "<label for=\"to-%s\">To clinic (id, or clinic/therapist)</label>"
                             "<input id=\"to-%s\" name=\"to\" required maxlength=\"150\">",
                          id, id);
            bool required = ev[i] != HX_EVENT_REVOKE;
            HX_HTML_F(b, "<label for=\"reason-%s\">Reason%s</label><textarea id=\"reason-%s\" name=\"reason\" rows=\"2\" "
                         "maxlength=\"800\"%s></textarea>",
                      id, required ? " (the referring clinic is told)" : " (optional)", id, required ? " required" : "");
        }
        HX_HTML_F(b, "<button type=\"submit\" id=\"do-%s\">%s</button></form></details>", id, label);
    }
    HX_HTML_MARKUP(b, "</div>");
}

static void draw_handoffs(web_req_t *r, const view_t *v)
{
    hx_html_t *b = &r->body;
    size_t i;
    json_t *row;
    HX_HTML_MARKUP(b, "<section class=\"card wide\"><h2>Handoffs</h2>");
    json_array_foreach(v->rows, i, row)
    {
        bool received = !strcmp(jstr(row, "side"), "received");
        json_t *bks = json_object_get(row, "bookings");
        if (received) {
            json_t *bk = json_array_get(bks, 0);
            char slot[128];
            web_slot_text(bk, slot, sizeof slot);
            HX_HTML_F(b, "<div class=\"handoff\"><h3>%s, to this clinic</h3><dl>", jstr(bk, "discipline"));
            dl_item(b, "Therapist", jstr(bk, "therapist_name"));
            dl_item(b, "Slot", slot);
            HX_HTML_F(b, "<dt>Minutes</dt><dd>%lld%s</dd>", (long long)json_integer_value(json_object_get(bk, "minutes")),
                      json_is_true(json_object_get(bk, "virtual")) ? ", virtual" : "");
            HX_HTML_F(b, "<dt>Status</dt><dd><span class=\"st st-%s\">%s</span></dd>", jstr(row, "folder"),
                      jstr(row, "status"));
            dl_item(b, "Why", jstr(row, "reason"));
            HX_HTML_MARKUP(b, "</dl>");
            draw_actions(r, v->rid, jstr(row, "status"), true, jstr(bk, "discipline"));
            HX_HTML_MARKUP(b, "</div>");
        } else {
            HX_HTML_F(b, "<div class=\"handoff\"><h3>Sent by this clinic</h3><dl><dt>Referral status</dt>"
                         "<dd><span class=\"st st-%s\">%s</span></dd>",
                      jstr(row, "folder"), jstr(row, "status"));
            dl_item(b, "Why", jstr(row, "reason"));
            HX_HTML_MARKUP(b, "</dl>");
            json_t *hs = json_object_get(row, "handoffs");
            size_t j;
            json_t *hsj;
            if (json_array_size(hs)) {
                HX_HTML_MARKUP(b, "<div class=\"scroll\" role=\"region\" tabindex=\"0\" aria-label=\"Handoffs\">"
                                  "<table class=\"cards\"><thead><tr><th scope=\"col\">Discipline</th>"
                                  "<th scope=\"col\">Clinic</th>"
                                  "<th scope=\"col\">Therapist</th><th scope=\"col\">Slot</th><th scope=\"col\">Status"
                                  "</th></tr></thead><tbody>");
                json_array_foreach(hs, j, hsj)
                {
                    char slot[128] = "-";
                    size_t k;
                    json_t *bk;
                    json_array_foreach(bks, k, bk)
                    {
                        if (!strcmp(jstr(bk, "discipline"), jstr(hsj, "discipline")))
                            web_slot_text(bk, slot, sizeof slot);
                    }
                    const char *hst = jstr(hsj, "status");
                    HX_HTML_F(b, "<tr><td data-label=\"Discipline\">%s</td><td data-label=\"Clinic\">%s</td>"
                                 "<td data-label=\"Therapist\">%s</td><td data-label=\"Slot\">%s</td>"
                                 "<td data-label=\"Status\">%s%s%s</td></tr>",
                              jstr(hsj, "discipline"), *jstr(hsj, "clinic_id") ? jstr(hsj, "clinic_id") : "-",
                              *jstr(hsj, "therapist_name") ? jstr(hsj, "therapist_name") : "-", slot,
                              !strcmp(jstr(hsj, "event"), "decline") ? "declined" : hst,
                              *jstr(hsj, "reason") ? ": " : "", jstr(hsj, "reason"));
                }
                HX_HTML_MARKUP(b, "</tbody></table></div>");
            }
            draw_actions(r, v->rid, jstr(row, "status"), false, "");
            HX_HTML_MARKUP(b, "</div>");
        }
    }
    HX_HTML_MARKUP(b, "</section>");
}

static void draw_history(web_req_t *r, const view_t *v)
{
    hx_html_t *b = &r->body;
    HX_HTML_MARKUP(b, "<section class=\"card wide\"><h2>History</h2><ol class=\"history\">");
    if (v->sent) {
        char when[32];
        web_time_text(v->sent_at, when);
        HX_HTML_F(b, "<li><time>%s</time> sent by this clinic (ref %s)</li>", when, v->sent_ref);
    }
    for (size_t i = 0; i < v->n_handoffs; i++) {
        const Handoff__Booking *bk = v->handoffs[i]->booking;
        char when[32];
        web_time_text(v->handoff_at[i], when);
        HX_HTML_F(b, "<li><time>%s</time> <strong>handed to this clinic</strong>: %s with %s</li>", when,
                  bk ? hx_discipline_text(bk->discipline) : "-", bk ? bk->therapist_name : "-");
    }
    for (size_t i = 0; i < v->n_updates; i++) {
        const Handoff__StatusUpdate *s = v->updates[i];
        char when[32], hs[600];
        web_time_text(s->at_ms ? s->at_ms : v->update_at[i], when);
        hx_handoffs_text(s, hs, sizeof hs);
        if (v->refusal[i] || s->refused)
            HX_HTML_F(b, "<li class=\"refused\"><time>%s</time> %s refused: %s</li>", when, s->event, s->reason);
        else
            HX_HTML_F(b, "<li><time>%s</time> <strong>%s</strong> by %s: %s%s%s%s%s</li>", when, s->event, s->by,
                      hx_status_text(s->status), s->reason[0] ? " · " : "", s->reason, hs[0] ? " · " : "", hs);
    }
    HX_HTML_MARKUP(b, "</ol></section>");
}

static void draw_thread(web_req_t *r, const view_t *v)
{
    hx_html_t *b = &r->body;
    const char *me = r->hosted->id;
    HX_HTML_MARKUP(b, "<section class=\"card wide\" id=\"thread\"><h2>Care thread</h2>");
    if (!v->n_posts)
        HX_HTML_MARKUP(b, "<p class=\"empty\">No posts yet.</p>");
    HX_HTML_MARKUP(b, "<ol class=\"thread\">");
    for (size_t i = 0; i < v->n_posts; i++) {
        const Handoff__ThreadPost *p = v->posts[i];
        char when[32];
        web_time_text(p->at_ms, when);
        HX_HTML_F(b, "<li class=\"post post-%s%s\"><p class=\"meta\"><strong>%s</strong> · %s · <time>%s</time></p>"
                     "<p class=\"text\">%s</p>",
                  p->kind, strcmp(p->by, me) ? "" : " mine", p->by, p->kind, when, p->text);
        if (p->attachment) {
            HX_HTML_MARKUP(b, "<p class=\"file\"><a href=\"/attachment?id=");
            hx_html_query(b, v->rid);
            HX_HTML_MARKUP(b, "&amp;post=");
            hx_html_query(b, p->post_id);
            HX_HTML_F(b, "\">%s</a> (%s, %zu bytes)</p>", p->attachment->name, p->attachment->media_type,
                      p->attachment->data.len);
        }
        HX_HTML_MARKUP(b, "</li>");
    }
    HX_HTML_MARKUP(b, "</ol>");
    const Handoff__ThreadPost *last = v->n_posts ? v->posts[v->n_posts - 1] : NULL;
    bool awaiting_me = last && last->awaiting_reply && strcmp(last->asked_by, me) != 0;
    if (last && last->awaiting_reply)
        HX_HTML_F(b, "<p class=\"awaiting\">%s</p>",
                  awaiting_me ? "A question awaits this clinic's reply." : "Awaiting a reply to this clinic's question.");
    HX_HTML_MARKUP(b, "<form method=\"post\" action=\"/referral/post\" enctype=\"multipart/form-data\" class=\"stack\">");
    HX_HTML_F(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"id\" value=\"%s\">",
              r->csrf, v->rid);
    HX_HTML_F(b,
              "<label for=\"kind\">Post as</label><select id=\"kind\" name=\"kind\">"
              "<option value=\"reply\"%s>Reply</option><option value=\"note\"%s>Note</option>"
              "<option value=\"question\">Question (awaits a reply)</option></select>",
              awaiting_me ? " selected" : "", awaiting_me ? "" : " selected");
    HX_HTML_MARKUP(b, "<label for=\"text\">Message</label><textarea id=\"text\" name=\"text\" rows=\"3\" maxlength=\"4000\" "
                      "required></textarea><label for=\"attachment\">Attachment (PDF, PNG or JPEG, at most 256 KiB; "
                      "optional)</label><input id=\"attachment\" name=\"attachment\" type=\"file\" "
                      "accept=\"application/pdf,image/png,image/jpeg\"><button type=\"submit\" id=\"do-post\">Post"
                      "</button></form></section>");
}

static bool rid_ok(web_req_t *r, const char *rid)
{
    if (rid && hx_referral_id_valid(rid))
        return true;
    page_error(r, 400, "Not a referral id", "A referral id is R- and 16 characters of 0-9 A-Z without I L O U.");
    return false;
}

static bool clinic_user(web_req_t *r)
{
    if (r->hosted && !r->hosted->reviewer)
        return true;
    r->web->denied++;
    page_error(r, 403, "Not allowed", "Referrals are seen by the users of the clinics that take part in them.");
    return false;
}

/* The referral page, with a notice on top (ok or not) when an action or post just happened. */
static void referral_page(web_req_t *r, const char *rid, bool ok, const char *notice)
{
    view_t v;
    uint64_t version = 0;
    int rc = view_load(r->hosted, rid, &v, &version);
    if (rc != 0) {
        view_free(&v);
        if (rc > 0) {
            r->web->denied++;
            web_audit(r, "view-unknown", rid, "not in this clinic's store");
        }
        page_error(r, rc > 0 ? 404 : 500, rc > 0 ? "Not found" : "Unavailable",
                   rc > 0 ? "This clinic has no referral with that id." : "The clinic's store could not be read.");
        return;
    }
    web_audit(r, "view", rid, "");
    hx_html_t *b = &r->body;
    web_page_begin(r, rid, version);
    HX_HTML_F(b, "<p class=\"crumbs\"><a href=\"/\">Inbox</a></p><h1>Referral %s</h1>", rid);
    if (notice)
        web_flash(r, ok, notice);
    const Handoff__Referral *whole = v.n_handoffs && v.handoffs[0]->referral ? v.handoffs[0]->referral
                                                                              : v.sent_referral;
    if (!whole && v.sent)
        HX_HTML_F(b, "<section class=\"card\"><h2>Patient</h2><dl><dt>Name</dt><dd>%s</dd><dt>Your ref</dt>"
                     "<dd>%s</dd></dl></section>",
                  v.sent_patient[0] ? v.sent_patient : "-", v.sent_ref);
    HX_HTML_MARKUP(b, "<div class=\"grid\">");
    if (whole)
        draw_referral(b, whole);
    const Handoff__TriageDecision *d = v.n_handoffs ? v.handoffs[0]->decision : NULL;
    for (size_t i = v.n_updates; !d && i-- > 0;)
        d = v.updates[i]->decision;
    draw_decision(b, d);
    draw_handoffs(r, &v);
    draw_thread(r, &v);
    draw_history(r, &v);
    HX_HTML_MARKUP(b, "</div>");
    web_page_end(r);
    view_free(&v);
}

static const char *done_text(const char *done)
{
    static const struct {
        const char *key, *text;
    } t[] = {{"accept", "Accepted."}, {"decline", "Declined: it goes back to be booked elsewhere."},
             {"start", "Care started."}, {"complete", "Completed; the summary went to the referring clinic."},
             {"revoke", "Revoked."}, {"redirect", "Redirected."}, {"fail", "Marked as not carried out."},
             {"add", "Asked for massage therapy: triage checks it."}, {"post", "Posted."},
             {"submit", "Sent: intake checks it and triage places it."}, {"pending", "Sent; the answer has not come yet."}};
    for (size_t i = 0; done && i < sizeof t / sizeof *t; i++)
        if (!strcmp(done, t[i].key))
            return t[i].text;
    return NULL;
}

void page_referral(web_req_t *r)
{
    const char *rid = web_arg(r, "id");
    if (!clinic_user(r) || !rid_ok(r, rid))
        return;
    referral_page(r, rid, true, done_text(web_arg(r, "done")));
}

static void done_redirect(web_req_t *r, const char *rid, const char *done)
{
    char to[128];
    snprintf(to, sizeof to, "/referral?id=%s&done=%s", rid, done);
    web_redirect(r, to);
}

/* Whether the clinic's store holds rid at all (an action on anything else is refused here,
 * before scheduling refuses it too). */
static bool known(web_req_t *r, const char *rid)
{
    view_t v;
    uint64_t version;
    int rc = view_load(r->hosted, rid, &v, &version);
    view_free(&v);
    if (rc == 0)
        return true;
    r->web->denied++;
    web_audit(r, "denied", rid, "not in this clinic's store");
    page_error(r, 404, "Not found", "This clinic has no referral with that id.");
    return false;
}

void page_action(web_req_t *r)
{
    const char *rid = web_field(r, "id"), *event = web_field(r, "event");
    if (!clinic_user(r) || !rid_ok(r, rid))
        return;
    static const char *const events[] = {"accept", "decline", "start", "complete", "fail", "revoke", "redirect", "add"};
    bool valid = false;
    for (size_t i = 0; event && i < sizeof events / sizeof *events; i++)
        valid |= !strcmp(event, events[i]);
    if (!valid) {
        page_error(r, 400, "Unknown action", "That is not an action on a referral.");
        return;
    }
    if (r->user.role == HX_USER_FRONT_DESK && (!strcmp(event, "start") || !strcmp(event, "complete"))) {
        r->web->denied++;
        web_audit(r, "denied", rid, event);
        page_error(r, 403, "Not allowed", "Starting and completing care is for clinicians.");
        return;
    }
    if (!known(r, rid))
        return;
    const char *reason = web_field(r, "reason"), *summary = web_field(r, "summary"), *to = web_field(r, "to");
    const char *disc = web_field(r, "discipline");
    Handoff__StatusChange ch = HANDOFF__STATUS_CHANGE__INIT;
    ch.referral_id = (char *)rid;
    ch.event = (char *)event;
    ch.reason = (char *)(reason ? reason : "");
    ch.summary = (char *)"";
    if (disc && *disc && !(ch.discipline = hx_discipline_from_text(disc))) {
        referral_page(r, rid, false, "discipline: must be physiotherapy or massage_therapy");
        return;
    }
    char why[200] = "", target[160] = "";
    bool needs_reason = !strcmp(event, "decline") || !strcmp(event, "fail") || !strcmp(event, "redirect") ||
                        !strcmp(event, "add");
    if (needs_reason && (!reason || !*reason))
        snprintf(why, sizeof why, "reason: required for %s (the referring clinic is told why)", event);
    else if (reason && strlen(reason) > 800)
        snprintf(why, sizeof why, "reason: at most 800 characters");
    else if (!strcmp(event, "complete") && hx_thread_text_check("summary", summary ? summary : "", why, sizeof why) == 0)
        ch.summary = (char *)summary;
    if (!strcmp(event, "add")) {
        ch.discipline = HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY;
    }
    if (!why[0] && !strcmp(event, "redirect")) {
        if (!to || !*to || *to == '/' || strlen(to) >= sizeof target) {
            snprintf(why, sizeof why, "to: the clinic to redirect to (CLINIC or CLINIC/THERAPIST_ID)");
        } else {
            snprintf(target, sizeof target, "%s", to);
            char *slash = strchr(target, '/');
            if (slash)
                *slash++ = '\0';
            ch.to_clinic = target;
            ch.to_therapist = slash ? slash : (char *)"";
            ch.discipline = 0;
            if (disc && *disc)
                ch.discipline = hx_discipline_from_text(disc);
        }
    }
    if (why[0]) {
        r->status = 400;
        referral_page(r, rid, false, why);
        return;
    }
    web_hosted_t *h = r->hosted;
    Handoff__StatusUpdate *s = NULL;
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_change(h->clinic, &ch, r->web->cfg.wait_ms, &s);
    char err[256];
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    r->web->actions++;
    web_audit(r, event, rid, rc ? "not sent" : !s ? "sent, no answer yet" : s->refused ? "refused" : "done");
    if (rc != 0) {
        r->status = 503;
        char text[400];
        snprintf(text, sizeof text, "Not sent: %s", err);
        referral_page(r, rid, false, text);
    } else if (!s) {
        done_redirect(r, rid, "pending");
    } else if (s->refused) {
        r->status = 409;
        char text[600];
        snprintf(text, sizeof text, "Refused: %s", s->reason);
        referral_page(r, rid, false, text);
    } else {
        done_redirect(r, rid, event);
    }
    if (s)
        handoff__status_update__free_unpacked(s, NULL);
}

void page_post(web_req_t *r)
{
    const char *rid = web_field(r, "id"), *kind = web_field(r, "kind"), *text = web_field(r, "text");
    if (!clinic_user(r) || !rid_ok(r, rid) || !known(r, rid))
        return;
    char why[200] = "";
    if (!kind || (strcmp(kind, "note") && strcmp(kind, "question") && strcmp(kind, "reply")))
        snprintf(why, sizeof why, "kind: must be note, question or reply");
    else
        hx_thread_post_check(kind, text ? text : "", "", why, sizeof why);
    const web_field_t *file = web_field_full(r, "attachment");
    Handoff__Attachment att = HANDOFF__ATTACHMENT__INIT;
    bool with_file = file && file->filename && file->filename[0] && file->len > 0;
    if (!why[0] && with_file) {
        if (file->len > HX_ATTACH_MAX)
            snprintf(why, sizeof why, "attachment: %zu bytes, at most %d", file->len, HX_ATTACH_MAX);
        else if (strlen(file->filename) > HX_ATTACH_NAME_MAX)
            snprintf(why, sizeof why, "attachment: its name is longer than %d bytes", HX_ATTACH_NAME_MAX);
        att.name = file->filename;
        att.data.data = (uint8_t *)file->value;
        att.data.len = file->len;
    }
    if (why[0]) {
        r->status = 400;
        referral_page(r, rid, false, why);
        return;
    }
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = (char *)rid;
    p.kind = (char *)kind;
    p.text = (char *)text;
    if (with_file)
        p.attachment = &att;
    web_hosted_t *h = r->hosted;
    Handoff__ThreadPost *posted = NULL;
    Handoff__StatusUpdate *refused = NULL;
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_thread_post(h->clinic, &p, r->web->cfg.wait_ms, &posted, &refused);
    char err[256];
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    r->web->actions++;
    web_audit(r, kind, rid, rc ? "not sent" : refused ? "refused" : with_file ? "with attachment" : "");
    if (rc != 0) {
        r->status = 503;
        char t[400];
        snprintf(t, sizeof t, "Not sent: %s", err);
        referral_page(r, rid, false, t);
    } else if (refused) {
        r->status = 409;
        char t[600];
        snprintf(t, sizeof t, "Refused: %s", refused->reason);
        referral_page(r, rid, false, t);
    } else {
        done_redirect(r, rid, posted ? "post" : "pending");
    }
    if (posted)
        handoff__thread_post__free_unpacked(posted, NULL);
    if (refused)
        handoff__status_update__free_unpacked(refused, NULL);
}

void page_attachment(web_req_t *r)
{
    const char *rid = web_arg(r, "id"), *post = web_arg(r, "post");
    if (!clinic_user(r) || !rid_ok(r, rid))
        return;
    if (!post || !hx_thread_post_id_valid(post)) {
        page_error(r, 400, "Not a post id", "A post id is P- and 16 hex digits.");
        return;
    }
    view_t v;
    uint64_t version;
    int rc = view_load(r->hosted, rid, &v, &version);
    const Handoff__ThreadPost *p = NULL;
    for (size_t i = 0; rc == 0 && i < v.n_posts; i++)
        if (!strcmp(v.posts[i]->post_id, post) && v.posts[i]->attachment)
            p = v.posts[i];
    if (!p) {
        view_free(&v);
        r->web->denied++;
        web_audit(r, "denied", rid, "attachment not in this clinic's store");
        page_error(r, 404, "Not found", "This clinic has no such attachment.");
        return;
    }
    const Handoff__Attachment *a = p->attachment;
    r->blob = malloc(a->data.len ? a->data.len : 1);
    if (r->blob) {
        memcpy(r->blob, a->data.data, a->data.len);
        r->blob_len = a->data.len;
    }
    /* scheduling set the media type from the content: one of three */
    r->content_type = !strcmp(a->media_type, "application/pdf") ? "application/pdf"
                      : !strcmp(a->media_type, "image/png")     ? "image/png"
                      : !strcmp(a->media_type, "image/jpeg")    ? "image/jpeg"
                                                                : "application/octet-stream";
    char safe[HX_ATTACH_NAME_MAX + 1];
    size_t j = 0;
    for (const char *c = a->name; *c && j < sizeof safe - 1; c++)
        safe[j++] = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                            *c == '-' || *c == '_'
                        ? *c
                        : '_';
    safe[j] = '\0';
    snprintf(r->disposition, sizeof r->disposition, "attachment; filename=\"%s\"", j ? safe : "attachment");
    web_audit(r, "download", rid, post);
    view_free(&v);
}

/* ---- the referral form ---------------------------------------------------------------------- */

typedef enum { F_TEXT, F_AREA, F_DATE, F_LIST, F_SELECT, F_CHECK, F_NUMBER } ftype_t;

static const struct {
    const char *path, *label, *choices, *autocomplete;
    ftype_t type;
    bool required;
} form[] = {
    {"ref", "Your clinic's ref for this referral", NULL, "off", F_TEXT, true},
    {"patient.given_name", "Patient's given name", NULL, "off", F_TEXT, true},
    {"patient.family_name", "Patient's family name", NULL, "off", F_TEXT, true},
    {"patient.birth_date", "Date of birth", NULL, "off", F_DATE, true},
    {"patient.phone", "Patient's phone", NULL, "off", F_TEXT, false},
    {"patient.email", "Patient's e-mail", NULL, "off", F_TEXT, false},
    {"patient.health_card", "Health card", NULL, "off", F_TEXT, false},
    {"patient.language", "Preferred language (en, fr, ...)", NULL, "off", F_TEXT, false},
    {"patient.postal_code", "Patient's postal code", NULL, "off", F_TEXT, false},
    {"referrer.name", "Referring clinician", NULL, "name", F_TEXT, true},
    {"referrer.discipline", "Referrer's discipline", "physiotherapy massage_therapy physician", NULL, F_SELECT, true},
    {"referrer.registration_body", "Registration body (CPO, CMTO, ...)", NULL, "off", F_TEXT, true},
    {"referrer.registration_number", "Registration number", NULL, "off", F_TEXT, true},
    {"referrer.province", "Province of registration (ON, BC, ...)", NULL, "off", F_TEXT, false},
    {"referrer.phone", "Referrer's phone", NULL, "tel", F_TEXT, false},
    {"referrer.email", "Referrer's e-mail", NULL, "email", F_TEXT, false},
    {"reason", "Reason for referral and question asked", NULL, NULL, F_AREA, true},
    {"conditions", "Condition codes (comma separated; optional)", NULL, "off", F_LIST, false},
    {"findings", "Red-flag and contraindication codes (comma separated; optional)", NULL, "off", F_LIST, false},
    {"history", "History", NULL, NULL, F_AREA, false},
    {"diagnosis", "Diagnosis", NULL, NULL, F_AREA, false},
    {"current_treatment", "Current treatment", NULL, NULL, F_AREA, false},
    {"expectations", "Expectations", NULL, NULL, F_AREA, false},
    {"priority", "Priority", "routine urgent asap stat", NULL, F_SELECT, true},
    {"consent", "Patient's consent to share", "given withheld", NULL, F_SELECT, true},
    {"referral_date", "Referral date", NULL, "off", F_DATE, true},
    {"preferences.virtual_ok", "Virtual sessions are fine", NULL, NULL, F_CHECK, false},
    {"preferences.massage_minutes", "Massage session minutes (30, 45, 60, 90)", NULL, "off", F_NUMBER, false},
};
#define N_FORM (sizeof form / sizeof *form)

static void field_id(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "f-%s", path);
    for (char *c = out; *c; c++)
        if (*c == '.')
            *c = '-';
}

/* Sets path ("a.b") in j to v. */
static void put_path(json_t *j, const char *path, json_t *v)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        json_object_set_new(j, path, v);
        return;
    }
    char head[64];
    snprintf(head, sizeof head, "%.*s", (int)(dot - path), path);
    json_t *sub = json_object_get(j, head);
    if (!sub) {
        sub = json_object();
        json_object_set_new(j, head, sub);
    }
    put_path(sub, dot + 1, v);
}

static json_t *form_json(web_req_t *r)
{
    json_t *j = json_object();
    for (size_t i = 0; i < N_FORM; i++) {
        const char *v = web_field(r, form[i].path);
        if (form[i].type == F_CHECK) {
            put_path(j, form[i].path, json_boolean(v && *v));
        } else if (!v || !*v) {
            if (form[i].type == F_LIST)
                put_path(j, form[i].path, json_array());
        } else if (form[i].type == F_LIST) {
            json_t *a = json_array();
            char *copy = strdup(v), *save = NULL;
            for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
                while (*t == ' ')
                    t++;
                size_t n = strlen(t);
                while (n && t[n - 1] == ' ')
                    t[--n] = '\0';
                if (*t)
                    json_array_append_new(a, json_string(t));
            }
            free(copy);
            put_path(j, form[i].path, a);
        } else if (form[i].type == F_NUMBER) {
            char *end;
            long n = strtol(v, &end, 10);
            put_path(j, form[i].path, *end || n < 0 || n > 100000 ? json_string(v) : json_integer(n));
        } else {
            put_path(j, form[i].path, json_string(v));
        }
    }
    put_path(j, "referrer.clinic_id", json_string(r->hosted->id));
    return j;
}

/* The errors of field path (its own path, or an item of it: "conditions[2]"), each named as
 * the form names the field (its label) rather than by its path. */
static void field_errors(hx_html_t *b, const hx_errors_t *e, const char *path, const char *label, const char *id,
                         bool *used)
{
    size_t n = strlen(path);
    bool any = false;
    for (size_t i = 0; i < e->count; i++) {
        const char *p = e->items[i].path;
        if (strncmp(p, path, n) || (p[n] && p[n] != '[' && p[n] != '.'))
            continue;
        if (!any)
            HX_HTML_F(b, "<p class=\"error\" id=\"%s-error\">", id);
        HX_HTML_F(b, "%s%s: %s", any ? "; " : "", p[n] ? p : label, e->items[i].why);
        used[i] = any = true;
    }
    if (any)
        HX_HTML_MARKUP(b, "</p>");
}

static void draw_form(web_req_t *r, const hx_errors_t *e)
{
    hx_html_t *b = &r->body;
    bool used[HX_ERRORS_MAX] = {0};
    HX_HTML_MARKUP(b, "<h1>New referral</h1>");
    if (e && e->count) {
        HX_HTML_F(b, "<div class=\"flash bad\" role=\"alert\" id=\"form-errors\"><p>%zu field%s to put right; nothing "
                     "was sent.</p><ul>",
                  e->count, e->count == 1 ? "" : "s");
        for (size_t k = 0; k < e->count; k++) {     /* each a link to its field, for keyboards */
            size_t f = N_FORM;
            for (size_t i = 0; i < N_FORM && f == N_FORM; i++) {
                size_t n = strlen(form[i].path);
                const char *p = e->items[k].path;
                if (!strncmp(p, form[i].path, n) && (!p[n] || p[n] == '[' || p[n] == '.'))
                    f = i;
            }
            char id[80];
            if (f < N_FORM) {
                field_id(form[f].path, id, sizeof id);
                HX_HTML_F(b, "<li><a href=\"#%s\">%s</a>: %s</li>", id, form[f].label, e->items[k].why);
            } else {
                HX_HTML_F(b, "<li>%s: %s</li>", e->items[k].path, e->items[k].why);
            }
        }
        HX_HTML_MARKUP(b, "</ul></div>");
    }
    HX_HTML_F(b, "<form method=\"post\" action=\"/new\" class=\"stack referral-form\" novalidate>"
                 "<input type=\"hidden\" name=\"csrf\" value=\"%s\">",
              r->csrf);
    char today[16];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(today, sizeof today, "%Y-%m-%d", &tm);
    for (size_t i = 0; i < N_FORM; i++) {
        char id[80];
        field_id(form[i].path, id, sizeof id);
        const char *v = web_field(r, form[i].path);
        if (!v && !strcmp(form[i].path, "referral_date"))
            v = today;
        if (!v && !strcmp(form[i].path, "consent"))
            v = "given";
        bool bad = false;
        for (size_t k = 0; e && k < e->count; k++) {
            size_t n = strlen(form[i].path);
            const char *p = e->items[k].path;
            bad |= !strncmp(p, form[i].path, n) && (!p[n] || p[n] == '[' || p[n] == '.');
        }
        HX_HTML_MARKUP(b, "<div class=\"field\">");
        if (form[i].type == F_CHECK) {
            HX_HTML_F(b, "<label><input type=\"checkbox\" id=\"%s\" name=\"%s\" value=\"1\"%s> %s</label>", id,
                      form[i].path, v && *v ? " checked" : "", form[i].label);
            HX_HTML_MARKUP(b, "</div>");
            continue;
        }
        HX_HTML_F(b, "<label for=\"%s\">%s%s</label>", id, form[i].label, form[i].required ? " (required)" : "");
        if (e)
            field_errors(b, e, form[i].path, form[i].label, id, used);
        if (form[i].type == F_AREA) {
            HX_HTML_F(b, "<textarea id=\"%s\" name=\"%s\" rows=\"3\"", id, form[i].path);
            if (bad)
                HX_HTML_F(b, " aria-invalid=\"true\" aria-describedby=\"%s-error\"", id);
            HX_HTML_F(b, ">%s</textarea>", v ? v : "");
        } else if (form[i].type == F_SELECT) {
            HX_HTML_F(b, "<select id=\"%s\" name=\"%s\"", id, form[i].path);
            if (bad)
                HX_HTML_F(b, " aria-invalid=\"true\" aria-describedby=\"%s-error\"", id);
            HX_HTML_MARKUP(b, "><option value=\"\">choose</option>");
            char choices[128];
            snprintf(choices, sizeof choices, "%s", form[i].choices);
            char *save = NULL;
            for (char *c = strtok_r(choices, " ", &save); c; c = strtok_r(NULL, " ", &save))
                HX_HTML_F(b, "<option value=\"%s\"%s>%s</option>", c, v && !strcmp(v, c) ? " selected" : "", c);
            HX_HTML_MARKUP(b, "</select>");
        } else {
            HX_HTML_F(b, "<input id=\"%s\" name=\"%s\" type=\"%s\" value=\"%s\" autocomplete=\"%s\"", id, form[i].path,
                      form[i].type == F_DATE ? "date" : "text", v ? v : "", form[i].autocomplete);
            if (bad)
                HX_HTML_F(b, " aria-invalid=\"true\" aria-describedby=\"%s-error\"", id);
            HX_HTML_MARKUP(b, ">");
        }
        HX_HTML_MARKUP(b, "</div>");
    }
    /* errors that name no field of the form (preferences.availability, ...) */
    for (size_t k = 0; e && k < e->count; k++)
        if (!used[k])
            HX_HTML_F(b, "<p class=\"error\">%s: %s</p>", e->items[k].path, e->items[k].why);
    HX_HTML_MARKUP(b, "<button type=\"submit\" id=\"do-submit\">Send referral</button></form>");
}

void page_new(web_req_t *r)
{
    if (!clinic_user(r))
        return;
    bool post = !strcmp(r->method, "POST");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    if (!post) {
        web_page_begin(r, "New referral", 0);
        draw_form(r, NULL);
        web_page_end(r);
        return;
    }
    json_t *j = form_json(r);
    Handoff__Referral *ref = hx_referral_from_json(j, &errs);
    json_decref(j);
    if (ref)
        hx_intake_validate(ref, &errs);
    if (errs.count) {
        hx_referral_free(ref);
        r->status = 400;
        web_audit(r, "submit-invalid", "", "");
        web_page_begin(r, "New referral", 0);
        draw_form(r, &errs);
        web_page_end(r);
        return;
    }
    char rid[HX_REFERRAL_ID_LEN + 1] = "";
    web_hosted_t *h = r->hosted;
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_submit(h->clinic, ref, "portal", rid);
    char err[256];
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    if (rc == 0)
        web_hosted_bump(h);
    pthread_mutex_unlock(&h->mu);
    hx_referral_free(ref);
    r->web->actions++;
    web_audit(r, "submit", rid, rc ? "not accepted" : "accepted by the broker");
    if (rc != 0) {
        r->status = rc == HX_EREFUSED ? 400 : 503;
        web_page_begin(r, "New referral", 0);
        char text[400];
        snprintf(text, sizeof text, "Not sent: %s", err);
        web_flash(r, false, text);
        draw_form(r, NULL);
        web_page_end(r);
        return;
    }
    done_redirect(r, rid, "submit");
}
