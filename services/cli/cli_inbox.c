/* cli_inbox — the grouped inbox (see cli_inbox.h for the mapping). */
#include "cli_inbox.h"
#include "cli_fmt.h"
#include "cli_table.h"
#include "hx_refjson.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char rid[32], ref[80], patient[160], born[16], other[80], event[24], reason[400];
    bool received;
    Handoff__Discipline discipline;     /* received rows: which booking */
    Handoff__TaskStatus status;         /* 0: nothing since the handoff / the submission */
    uint64_t since_ms, updated_ms;
    json_t *bookings;                   /* array: the latest known bookings */
    json_t *handoffs;                   /* sent rows: each handoff's latest status (array) */
    json_t *handoff;                    /* received rows: the whole handoff */
} row_t;

struct cli_inbox {
    const char *clinic;
    row_t *rows;
    size_t n, cap;
};

cli_group_t cli_inbox_group(bool received, Handoff__TaskStatus status, const char *event)
{
    bool declined = event && strcmp(event, "decline") == 0;
    switch (status) {
    case HANDOFF__TASK_STATUS__TASK_ACCEPTED:
    case HANDOFF__TASK_STATUS__TASK_IN_PROGRESS:
    case HANDOFF__TASK_STATUS__TASK_COMPLETED:
        return CLI_GROUP_BOOKED;
    case HANDOFF__TASK_STATUS__TASK_CANCELLED:
    case HANDOFF__TASK_STATUS__TASK_REJECTED:
    case HANDOFF__TASK_STATUS__TASK_FAILED:
    case HANDOFF__TASK_STATUS__TASK_ENTERED_IN_ERROR:
        return CLI_GROUP_DECLINED;
    case HANDOFF__TASK_STATUS__TASK_READY:
        return received ? CLI_GROUP_NEW : CLI_GROUP_BOOKED;
    default:                            /* none yet, draft, requested, received, on-hold */
        if (received)
            return declined ? CLI_GROUP_DECLINED : CLI_GROUP_NEW;
        return CLI_GROUP_PENDING;
    }
}

const char *cli_group_title(cli_group_t g)
{
    static const char *const t[] = {"NEW", "PENDING BOOKING", "BOOKED", "DECLINED"};
    return (unsigned)g < CLI_GROUP_COUNT ? t[g] : "?";
}

const char *cli_group_key(cli_group_t g)
{
    static const char *const k[] = {"new", "pending_booking", "booked", "declined"};
    return (unsigned)g < CLI_GROUP_COUNT ? k[g] : "?";
}

const char *cli_inbox_status_text(Handoff__TaskStatus status, const char *event)
{
    if (event && strcmp(event, "decline") == 0)
        return "declined";
    if (event && strcmp(event, "redirect") == 0 && status == HANDOFF__TASK_STATUS__TASK_CANCELLED)
        return "redirected";        /* the clinic that handed it on: its part ended */
    if (status == HANDOFF__TASK_STATUS__TASK_UNSPECIFIED)
        return "submitted";
    return hx_status_text(status);
}

const Handoff__HandoffStatus *cli_own_handoff(const Handoff__StatusUpdate *s, const char *clinic,
                                              Handoff__Discipline d)
{
    for (size_t i = 0; s && clinic && i < s->n_handoffs; i++) {
        const Handoff__HandoffStatus *h = s->handoffs[i];
        if (h && !strcmp(h->clinic_id, clinic) && (!d || h->discipline == d))
            return h;
    }
    return NULL;
}

void cli_handoffs_text(const Handoff__StatusUpdate *s, char *out, size_t cap)
{
    size_t len = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < s->n_handoffs && len < cap; i++) {
        const Handoff__HandoffStatus *h = s->handoffs[i];
        if (!h)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s %s%s%s", len ? "; " : "", hx_discipline_text(h->discipline),
                                cli_inbox_status_text(h->status, h->event), h->clinic_id[0] ? " at " : "",
                                h->clinic_id);
        if (h->wait_position && len < cap)      /* on the wait list: its place and the estimate */
            len += (size_t)snprintf(out + len, cap - len, " (wait list %u of %u%s%s%s)", h->wait_position,
                                    h->wait_length, h->wait_estimate[0] ? ", estimate " : "", h->wait_estimate,
                                    h->escalated ? ", escalated" : "");
    }
}

cli_inbox_t *cli_inbox_new(const char *clinic)
{
    cli_inbox_t *in = calloc(1, sizeof *in);
    if (in)
        in->clinic = clinic;
    return in;
}

void cli_inbox_destroy(cli_inbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_inbox_t *in = *self_p;
    for (size_t i = 0; i < in->n; i++) {
        json_decref(in->rows[i].bookings);
        json_decref(in->rows[i].handoffs);
        json_decref(in->rows[i].handoff);
    }
    free(in->rows);
    free(in);
    *self_p = NULL;
}

/* The row of rid on one side (and discipline, for received rows), or a new one. */
static row_t *row_for(cli_inbox_t *in, const char *rid, bool received, Handoff__Discipline d, bool create)
{
    for (size_t i = 0; i < in->n; i++) {
        row_t *r = &in->rows[i];
        if (r->received == received && strcmp(r->rid, rid) == 0 && (!received || r->discipline == d))
            return r;
    }
    if (!create)
        return NULL;
    if (in->n == in->cap) {
        size_t cap = in->cap ? 2 * in->cap : 32;
        row_t *more = realloc(in->rows, cap * sizeof *more);
        if (!more)
            return NULL;
        in->rows = more;
        in->cap = cap;
    }
    row_t *r = &in->rows[in->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->rid, sizeof r->rid, "%s", rid);
    r->received = received;
    r->discipline = d;
    r->bookings = json_array();
    r->handoffs = json_array();
    return r;
}

int cli_inbox_add_sent(cli_inbox_t *in, const char *referral_id, const char *ref, const char *patient,
                       uint64_t at_ms)
{
    row_t *r = row_for(in, referral_id, false, 0, true);
    if (!r)
        return -1;
    if (!r->ref[0])
        snprintf(r->ref, sizeof r->ref, "%s", ref ? ref : "");
    if (patient && *patient)
        snprintf(r->patient, sizeof r->patient, "%s", patient);
    if (!r->since_ms || at_ms < r->since_ms)
        r->since_ms = at_ms;
    if (!r->updated_ms)
        r->updated_ms = at_ms;
    return 0;
}

int cli_inbox_add_handoff(cli_inbox_t *in, const Handoff__Handoff *h, uint64_t at_ms)
{
    if (!h->booking)
        return 0;
    row_t *r = row_for(in, h->referral_id, true, h->booking->discipline, true);
    if (!r)
        return -1;
    const Handoff__Referral *ref = h->referral;
    const Handoff__Patient *p = ref ? ref->patient : NULL;
    snprintf(r->ref, sizeof r->ref, "%s", ref ? ref->ref : "");
    snprintf(r->patient, sizeof r->patient, "%s%s%s", p ? p->given_name : "", p ? " " : "", p ? p->family_name : "");
    snprintf(r->born, sizeof r->born, "%s", p ? p->birth_date : "");
    snprintf(r->other, sizeof r->other, "%s", ref ? ref->referring_clinic : "");
    r->status = 0;                      /* a new handoff (also after a decline): new again */
    r->event[0] = r->reason[0] = '\0';
    r->since_ms = r->updated_ms = at_ms;
    json_array_clear(r->bookings);
    json_array_append_new(r->bookings, hx_booking_to_json(h->booking));
    json_decref(r->handoff);
    r->handoff = hx_handoff_to_json(h);
    return 0;
}

static bool sent_event(const char *ev)
{
    static const char *const only_referrer[] = {"submit", "receive", "reject", "hold", "book"};
    for (size_t i = 0; ev && i < sizeof only_referrer / sizeof *only_referrer; i++)
        if (strcmp(ev, only_referrer[i]) == 0)
            return true;
    return false;
}

static void apply(row_t *r, const Handoff__StatusUpdate *s, uint64_t at_ms)
{
    r->status = s->status;
    snprintf(r->event, sizeof r->event, "%s", s->event);
    snprintf(r->reason, sizeof r->reason, "%s", s->reason);
    r->updated_ms = at_ms;
    if (!r->ref[0])
        snprintf(r->ref, sizeof r->ref, "%s", s->ref);
}

/* The receiving side of a newer update: each handoff this clinic holds moves to that
 * handoff's own status, whatever the referral's is. */
static void apply_handoffs(cli_inbox_t *in, const Handoff__StatusUpdate *s, uint64_t at_ms)
{
    for (size_t i = 0; i < s->n_handoffs; i++) {
        const Handoff__HandoffStatus *h = s->handoffs[i];
        if (!h || strcmp(h->clinic_id, in->clinic) != 0)
            continue;
        row_t *r = row_for(in, s->referral_id, true, h->discipline, false);
        if (!r || at_ms < r->since_ms)
            continue;
        r->status = h->status;
        snprintf(r->event, sizeof r->event, "%s", h->event[0] ? h->event : s->event);
        snprintf(r->reason, sizeof r->reason, "%s", h->reason[0] ? h->reason : s->reason);
        r->updated_ms = at_ms;
        if (!r->ref[0])
            snprintf(r->ref, sizeof r->ref, "%s", s->ref);
    }
}

int cli_inbox_add_status(cli_inbox_t *in, const Handoff__StatusUpdate *s, uint64_t at_ms)
{
    if (s->refused)
        return 0;                       /* an answer that changed nothing */
    /* the receiving side: its own handoff's status; in updates older than handoffs, the
     * update's status was that of the booking it names */
    if (s->n_handoffs)
        apply_handoffs(in, s, at_ms);
    for (size_t i = 0; i < s->n_bookings && !s->n_handoffs; i++) {
        const Handoff__Booking *b = s->bookings[i];
        if (!b || strcmp(b->clinic_id, in->clinic) != 0)
            continue;
        row_t *r = row_for(in, s->referral_id, true, b->discipline, false);
        if (r && at_ms >= r->since_ms)
            apply(r, s, at_ms);
    }
    /* the referring side: what only a referrer is told, or a referral it submitted */
    row_t *r = row_for(in, s->referral_id, false, 0, false);
    if (!r && (sent_event(s->event) || s->status == HANDOFF__TASK_STATUS__TASK_REQUESTED ||
               s->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD))
        r = row_for(in, s->referral_id, false, 0, true);
    if (!r)
        return 0;
    if (!r->since_ms)
        r->since_ms = at_ms;
    apply(r, s, at_ms);
    if (s->n_bookings) {
        json_array_clear(r->bookings);
        for (size_t i = 0; i < s->n_bookings; i++)
            if (s->bookings[i])
                json_array_append_new(r->bookings, hx_booking_to_json(s->bookings[i]));
    }
    if (s->n_handoffs) {
        json_array_clear(r->handoffs);
        for (size_t i = 0; i < s->n_handoffs; i++)
            if (s->handoffs[i])
                json_array_append_new(r->handoffs, hx_handoff_status_to_json(s->handoffs[i]));
    }
    return 0;
}

/* A row's status as staff read it: a received handoff with nothing since is ready. */
static const char *row_status(const row_t *r)
{
    if (r->received && r->status == HANDOFF__TASK_STATUS__TASK_UNSPECIFIED)
        return hx_status_text(HANDOFF__TASK_STATUS__TASK_READY);
    return cli_inbox_status_text(r->status, r->event);
}

static cli_group_t group_of(const row_t *r)
{
    return cli_inbox_group(r->received, r->status, r->event);
}

size_t cli_inbox_count(const cli_inbox_t *in, cli_group_t g)
{
    size_t n = 0;
    for (size_t i = 0; i < in->n; i++)
        n += group_of(&in->rows[i]) == g;
    return n;
}

static int by_time(const void *a, const void *b)
{
    const row_t *x = *(row_t *const *)a, *y = *(row_t *const *)b;
    if (x->updated_ms != y->updated_ms)
        return x->updated_ms < y->updated_ms ? -1 : 1;
    return strcmp(x->rid, y->rid);
}

/* The rows of group g in time order (malloc'd; *n set). */
static const row_t **rows_of(const cli_inbox_t *in, cli_group_t g, size_t *n)
{
    const row_t **v = malloc((in->n ? in->n : 1) * sizeof *v);
    *n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < in->n; i++)
        if (group_of(&in->rows[i]) == g)
            v[(*n)++] = &in->rows[i];
    qsort(v, *n, sizeof *v, by_time);
    return v;
}

static const char *bstr(const row_t *r, const char *key)
{
    const char *s = json_string_value(json_object_get(json_array_get(r->bookings, 0), key));
    return s ? s : "";
}

/* "physiotherapy" or "physiotherapy +1" when there are two bookings. */
static void booking_cell(const row_t *r, const char *key, char *out, size_t cap)
{
    size_t n = json_array_size(r->bookings);
    snprintf(out, cap, "%s%s", bstr(r, key), n > 1 ? " +1" : "");
}

static void print_group(const cli_inbox_t *in, cli_group_t g, FILE *out, uint64_t now_ms)
{
    size_t n;
    const row_t **v = rows_of(in, g, &n);
    fprintf(out, "%s (%zu)\n", cli_group_title(g), n);
    if (!v || n == 0) {
        free(v);
        return;
    }
    static const char *const h_new[] = {"REFERRAL", "PATIENT", "BORN", "DISCIPLINE", "THERAPIST", "START", "MIN",
                                        "FROM", "RECEIVED"};
    static const char *const h_pending[] = {"REFERRAL", "REF", "PATIENT", "STATUS", "SINCE", "UPDATED", "DETAIL"};
    static const char *const h_booked[] = {"REFERRAL", "REF", "PATIENT", "DISCIPLINE", "THERAPIST", "START",
                                           "WITH", "STATUS", "UPDATED"};
    static const char *const h_declined[] = {"REFERRAL", "REF", "PATIENT", "WITH", "STATUS", "UPDATED", "REASON"};
    cli_table_t *t = g == CLI_GROUP_NEW       ? cli_table_new(9, h_new, "llllllrll")
                     : g == CLI_GROUP_PENDING ? cli_table_new(7, h_pending, NULL)
                     : g == CLI_GROUP_BOOKED  ? cli_table_new(9, h_booked, NULL)
                                              : cli_table_new(7, h_declined, NULL);
    if (!t) {
        free(v);
        return;
    }
    cli_table_cap(t, 2, 28);            /* the patient's name */
    for (size_t i = 0; i < n; i++) {
        const row_t *r = v[i];
        char since[CLI_FMT_LEN], updated[CLI_FMT_LEN], start[CLI_FMT_LEN], minutes[16], with[96], disc[48],
            ther[128];
        cli_time_ago(now_ms, r->since_ms, since);
        cli_time_ago(now_ms, r->updated_ms, updated);
        cli_slot_text(bstr(r, "start"), bstr(r, "utc_offset"), start);
        json_int_t mins = json_integer_value(json_object_get(json_array_get(r->bookings, 0), "minutes"));
        snprintf(minutes, sizeof minutes, "%lld", (long long)mins);
        if (r->received)
            snprintf(with, sizeof with, "from %s", r->other[0] ? r->other : "?");
        else
            snprintf(with, sizeof with, "%s%s", json_array_size(r->bookings) ? "to " : "-", bstr(r, "clinic_id"));
        booking_cell(r, "discipline", disc, sizeof disc);
        booking_cell(r, "therapist_name", ther, sizeof ther);
        const char *patient = r->patient[0] ? r->patient : "-";
        const char *status = row_status(r);
        if (g == CLI_GROUP_NEW) {
            const char *row[] = {r->rid, patient, r->born, disc, ther, start, minutes, r->other, updated};
            cli_table_add(t, row);
        } else if (g == CLI_GROUP_PENDING) {
            const char *row[] = {r->rid, r->ref, patient, status, since, updated, r->reason};
            cli_table_add(t, row);
        } else if (g == CLI_GROUP_BOOKED) {
            const char *row[] = {r->rid, r->ref, patient, disc, ther, start, with, status, updated};
            cli_table_add(t, row);
        } else {
            const char *row[] = {r->rid, r->ref, patient, with, status, updated, r->reason};
            cli_table_add(t, row);
        }
    }
    cli_table_print(t, out);
    cli_table_destroy(&t);
    free(v);
}

void cli_inbox_print(const cli_inbox_t *in, FILE *out, uint64_t now_ms)
{
    for (int g = 0; g < CLI_GROUP_COUNT; g++) {
        if (g)
            fputc('\n', out);
        print_group(in, (cli_group_t)g, out, now_ms);
    }
}

static json_t *ms_json(uint64_t ms)
{
    return json_integer((json_int_t)(ms > INT64_MAX ? INT64_MAX : ms));
}

static json_t *row_json(const row_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "referral_id", json_string(r->rid));
    json_object_set_new(o, "ref", json_string(r->ref));
    json_object_set_new(o, "side", json_string(r->received ? "received" : "sent"));
    json_object_set_new(o, "status", json_string(row_status(r)));
    json_object_set_new(o, "event", json_string(r->event));
    json_object_set_new(o, "patient", r->patient[0] ? json_string(r->patient) : json_null());
    json_object_set_new(o, "other_clinic", r->received ? json_string(r->other)
                                           : json_array_size(r->bookings) ? json_string(bstr(r, "clinic_id"))
                                                                           : json_null());
    json_object_set_new(o, "bookings", json_incref(r->bookings));
    if (!r->received)
        json_object_set_new(o, "handoffs", json_incref(r->handoffs));
    json_object_set_new(o, "since_ms", ms_json(r->since_ms));
    json_object_set_new(o, "updated_ms", ms_json(r->updated_ms));
    json_object_set_new(o, "reason", json_string(r->reason));
    if (r->handoff)
        json_object_set_new(o, "handoff", json_incref(r->handoff));
    return o;
}

json_t *cli_inbox_json(const cli_inbox_t *in)
{
    json_t *all = json_object();
    for (int g = 0; g < CLI_GROUP_COUNT; g++) {
        size_t n;
        const row_t **v = rows_of(in, (cli_group_t)g, &n);
        json_t *a = json_array();
        for (size_t i = 0; v && i < n; i++)
            json_array_append_new(a, row_json(v[i]));
        free(v);
        json_object_set_new(all, cli_group_key((cli_group_t)g), a);
    }
    return all;
}
