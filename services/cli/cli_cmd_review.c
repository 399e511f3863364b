/* `handoff review`: a reviewer of the network (a key of role reviewer, --reviewer NAME) sees
 * the referrals triage could not place and decides each: list, show ID, decide ID --as
 * physio|massage|both|physician --reason TEXT. The requests arrive in the reviewer's mailbox
 * and are kept in its local store as a clinic's messages are (hx_clinic.h); a decision is
 * sent to scheduling, which books the referral or sends it to a physician, tells the
 * referring clinic, and answers every reviewer. */
#include "cli_cmd.h"
#include "cli_fmt.h"
#include "cli_table.h"
#include "hx_refjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One referral under review as the store has it: the request and, once decided, the answer. */
typedef struct {
    Handoff__ReviewRequest *rq;
    uint64_t at_ms;
    char decided[1024];         /* the decision as scheduling reported it; "" while pending */
} item_t;

typedef struct {
    item_t *items;
    size_t n, cap;
} review_list_t;

static void on_request(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type;
    review_list_t *l = ud;
    Handoff__ReviewRequest *rq = handoff__review_request__unpack(NULL, len, data);
    if (!rq || !rq->case_ || !rq->case_->referral || !rq->case_->decision) {
        if (rq)
            handoff__review_request__free_unpacked(rq, NULL);
        return;
    }
    for (size_t i = 0; i < l->n; i++)           /* a request repeated (redelivered) is one */
        if (strcmp(l->items[i].rq->referral_id, rq->referral_id) == 0) {
            handoff__review_request__free_unpacked(rq, NULL);
            return;
        }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        item_t *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) {
            handoff__review_request__free_unpacked(rq, NULL);
            return;
        }
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n++] = (item_t){.rq = rq, .at_ms = at};
}

static void on_update(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    review_list_t *l = ud;
    Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, data);
    if (!s)
        return;
    for (size_t i = 0; strcmp(s->event, "review") == 0 && !s->refused && i < l->n; i++)
        if (strcmp(l->items[i].rq->referral_id, s->referral_id) == 0)
            snprintf(l->items[i].decided, sizeof l->items[i].decided, "%s", s->reason);
    handoff__status_update__free_unpacked(s, NULL);
}

static void list_free(review_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        handoff__review_request__free_unpacked(l->items[i].rq, NULL);
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Syncs the mailbox and reads every request and its answer from the store. */
static int list_load(cli_t *c, review_list_t *l)
{
    int rc = cli_sync_store(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    hx_clinic_query_t rq = {.type = "handoff.ReviewRequest"}, up = {.type = "handoff.StatusUpdate"};
    if (hx_clinic_each_received(c->store, &rq, on_request, l) || hx_clinic_each_received(c->store, &up, on_update, l))
        return cli_clinic_failure(c, HX_EIO);
    return EXIT_OK;
}

/* What triage could not place, joined with "; ". */
static void not_understood(const Handoff__TriageDecision *d, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d->n_not_understood && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "; " : "", d->not_understood[i]);
}

static json_t *item_json(const item_t *it)
{
    json_t *words = json_array();
    const Handoff__TriageDecision *d = it->rq->case_->decision;
    for (size_t i = 0; i < d->n_not_understood; i++)
        json_array_append_new(words, json_string(d->not_understood[i]));
    return json_pack("{s:s, s:s, s:s, s:o, s:I, s:o}", "referral_id", it->rq->referral_id, "referring_clinic",
                     it->rq->case_->referral->referring_clinic, "state", it->decided[0] ? "decided" : "pending",
                     "decision", it->decided[0] ? json_string(it->decided) : json_null(), "received_at_ms",
                     (json_int_t)it->at_ms, "not_understood", words);
}

static int review_list(cli_t *c)
{
    review_list_t l = {0};
    int rc = list_load(c, &l);
    if (rc != EXIT_OK) {
        list_free(&l);
        return rc;
    }
    size_t pending = 0;
    if (c->json) {
        json_t *all = json_array();
        for (size_t i = 0; i < l.n; i++)
            json_array_append_new(all, item_json(&l.items[i]));
        cli_print_json(all);
    } else {
        static const char *const head[] = {"REFERRAL", "FROM", "RECEIVED", "STATE", "NOT UNDERSTOOD"};
        cli_table_t *t = cli_table_new(5, head, NULL);
        uint64_t now = cli_now_ms();
        for (size_t i = 0; t && i < l.n; i++) {
            char when[CLI_FMT_LEN], words[600];
            not_understood(l.items[i].rq->case_->decision, words, sizeof words);
            const char *row[] = {l.items[i].rq->referral_id, l.items[i].rq->case_->referral->referring_clinic,
                                 cli_time_ago(now, l.items[i].at_ms, when), l.items[i].decided[0] ? "decided" : "PENDING",
                                 words};
            cli_table_add(t, row);
        }
        if (t && cli_table_rows(t))
            cli_table_print(t, stdout);
        cli_table_destroy(&t);
    }
    for (size_t i = 0; i < l.n; i++)
        pending += !l.items[i].decided[0];
    if (!c->json)
        printf("%zu referral(s) under review, %zu pending a decision (reviewer %s)\n", l.n, pending, c->reviewer);
    list_free(&l);
    return EXIT_OK;
}

static void show_text(const item_t *it)
{
    const Handoff__Referral *r = it->rq->case_->referral;
    const Handoff__TriageDecision *d = it->rq->case_->decision;
    char name[160], words[2000];
    hx_patient_name(r, name, sizeof name);
    not_understood(d, words, sizeof words);
    printf("referral        %s (ref %s from %s)\n", it->rq->referral_id, r->ref, r->referring_clinic);
    printf("state           %s\n", it->decided[0] ? it->decided : "pending: decide with handoff review decide");
    printf("not understood  %s\n", words);
    printf("patient         %s, born %s\n", name[0] ? name : "?", r->patient ? r->patient->birth_date : "?");
    printf("priority        %s\n", hx_priority_text(r->priority));
    const char *fields[][2] = {{"reason", r->reason},       {"history", r->history},
                               {"diagnosis", r->diagnosis}, {"treatment", r->current_treatment},
                               {"expectations", r->expectations}};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (fields[i][1] && fields[i][1][0])
            printf("%-15s %s\n", fields[i][0], fields[i][1]);
    for (size_t i = 0; i < r->n_conditions; i++)
        printf("%-15s %s\n", i ? "" : "conditions", r->conditions[i]);
    for (size_t i = 0; i < r->n_findings; i++)
        printf("%-15s %s\n", i ? "" : "findings", r->findings[i]);
    for (size_t i = 0; i < d->n_notes; i++)
        printf("%-15s %s\n", i ? "" : "triage notes", d->notes[i]);
}

static int review_show(cli_t *c, const char *id)
{
    review_list_t l = {0};
    int rc = list_load(c, &l);
    const item_t *it = NULL;
    for (size_t i = 0; rc == EXIT_OK && i < l.n && !it; i++)
        if (strcmp(l.items[i].rq->referral_id, id) == 0)
            it = &l.items[i];
    if (rc == EXIT_OK && !it) {
        fprintf(stderr, "handoff: review show: %s is not under review at reviewer %s\n", id, c->reviewer);
        rc = EXIT_NOTFOUND;
    } else if (rc == EXIT_OK && c->json) {
        json_t *o = item_json(it);
        json_object_set_new(o, "referral", hx_referral_to_json(it->rq->case_->referral));
        json_object_set_new(o, "triage", hx_decision_to_json(it->rq->case_->decision));
        cli_print_json(o);
    } else if (rc == EXIT_OK) {
        show_text(it);
    }
    list_free(&l);
    return rc;
}

/* --as: physio, massage, both or physician into d. */
static int plan_parse(const char *plan, Handoff__ReviewDecision *d, Handoff__Discipline disc[2])
{
    static const struct {
        const char *word;
        int n;
        Handoff__Discipline d[2];
    } plans[] = {
        {"physio", 1, {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY}},
        {"physiotherapy", 1, {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY}},
        {"massage", 1, {HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY}},
        {"massage_therapy", 1, {HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY}},
        {"both", 2, {HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY, HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY}},
        {"physician", 0, {0}},
    };
    for (size_t i = 0; plan && i < sizeof plans / sizeof *plans; i++)
        if (strcmp(plan, plans[i].word) == 0) {
            disc[0] = plans[i].d[0];
            disc[1] = plans[i].d[1];
            d->disciplines = disc;
            d->n_disciplines = (size_t)plans[i].n;
            d->physician = plans[i].n == 0;
            return 0;
        }
    return -1;
}

static int review_decide(cli_t *c, const char *id)
{
    Handoff__ReviewDecision d = HANDOFF__REVIEW_DECISION__INIT;
    Handoff__Discipline disc[2];
    if (plan_parse(c->plan, &d, disc) != 0) {
        fprintf(stderr, "handoff: review decide: --as must be physio, massage, both or physician%s%s%s\n",
                c->plan ? "; got '" : "", c->plan ? c->plan : "", c->plan ? "'" : "");
        return EXIT_USAGE;
    }
    if (!c->reason || !c->reason[0] || strlen(c->reason) > 800) {
        fprintf(stderr, "handoff: review decide: --reason TEXT is required (at most 800 characters): the referring "
                        "clinic and the audit log are told why\n");
        return EXIT_USAGE;
    }
    if (!hx_referral_id_valid(id)) {
        fprintf(stderr, "handoff: review decide: '%s' is not a referral id (R- and 16 characters of 0-9 A-Z "
                        "without I L O U)\n", id);
        return EXIT_USAGE;
    }
    d.referral_id = (char *)id;
    d.reason = (char *)c->reason;
    Handoff__StatusUpdate *s = NULL;
    int rc = hx_clinic_review_decide(c->store, &d, 4 * c->timeout_ms, &s);
    if (rc)
        return cli_clinic_failure(c, rc);
    if (!s) {
        printf("review decide %s: sent; no answer yet (see 'handoff review show %s' later)\n", id, id);
        return EXIT_OK;
    }
    if (c->json)
        cli_print_json(hx_status_to_json(s));
    else if (s->refused)
        printf("review decide %s refused: %s\n", id, s->reason);
    else
        printf("%s: %s — %s\n", id, hx_status_text(s->status), s->reason);
    rc = s->refused ? EXIT_FAIL : EXIT_OK;
    handoff__status_update__free_unpacked(s, NULL);
    return rc;
}

int cmd_review(cli_t *c, int argc, char **argv)
{
    const char *sub = argc ? argv[0] : "";
    if (strcmp(sub, "list") == 0 && argc == 1)
        return review_list(c);
    if (strcmp(sub, "show") == 0 && argc == 2)
        return review_show(c, argv[1]);
    if (strcmp(sub, "decide") == 0 && argc == 2)
        return review_decide(c, argv[1]);
    fprintf(stderr, "handoff: review needs one of: list, show ID, decide ID --as physio|massage|both|physician "
                    "--reason TEXT (see handoff help review)\n");
    return EXIT_USAGE;
}
