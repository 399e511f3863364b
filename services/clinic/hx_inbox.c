/* hx_inbox — the grouped inbox and its folders (see hx_inbox.h for the mapping). */
#include "hx_inbox.h"
#include "hx_clinic_internal.h"
#include "hx_refjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A referral's care thread as far as the folders need it: the posts seen (by post_id, so
 * that one delivered twice counts once) and the latest of them. */
typedef struct {
    char rid[32];
    char **ids;
    size_t n_ids, cap_ids;
    bool any;
    uint64_t at_ms;                     /* the latest post's */
    bool awaiting;
    char *asked_by;
} thread_t;

struct hx_inbox {
    char *clinic;
    row_t *rows;
    size_t n, cap;
    thread_t *threads;
    size_t n_threads, cap_threads;
};

hx_group_t hx_inbox_group(bool received, Handoff__TaskStatus status, const char *event)
{
    bool declined = event && strcmp(event, "decline") == 0;
    switch (status) {
    case HANDOFF__TASK_STATUS__TASK_ACCEPTED:
    case HANDOFF__TASK_STATUS__TASK_IN_PROGRESS:
    case HANDOFF__TASK_STATUS__TASK_COMPLETED:
        return HX_GROUP_BOOKED;
    case HANDOFF__TASK_STATUS__TASK_CANCELLED:
    case HANDOFF__TASK_STATUS__TASK_REJECTED:
    case HANDOFF__TASK_STATUS__TASK_FAILED:
    case HANDOFF__TASK_STATUS__TASK_ENTERED_IN_ERROR:
        return HX_GROUP_DECLINED;
    case HANDOFF__TASK_STATUS__TASK_READY:
        return received ? HX_GROUP_NEW : HX_GROUP_BOOKED;
    default:                            /* none yet, draft, requested, received, on-hold */
        if (received)
            return declined ? HX_GROUP_DECLINED : HX_GROUP_NEW;
        return HX_GROUP_PENDING;
    }
}

const char *hx_group_title(hx_group_t g)
{
    static const char *const t[] = {"NEW", "PENDING BOOKING", "BOOKED", "DECLINED"};
    return (unsigned)g < HX_GROUP_COUNT ? t[g] : "?";
}

const char *hx_group_key(hx_group_t g)
{
    static const char *const k[] = {"new", "pending_booking", "booked", "declined"};
    return (unsigned)g < HX_GROUP_COUNT ? k[g] : "?";
}

static const char *const folder_keys[HX_FOLDER_COUNT] = {"new",     "needs_reply", "pending_booking", "booked",
                                                         "in_care", "declined",    "completed"};

const char *hx_folder_key(hx_folder_t f)
{
    return (unsigned)f < HX_FOLDER_COUNT ? folder_keys[f] : "?";
}

const char *hx_folder_title(hx_folder_t f)
{
    static const char *const t[HX_FOLDER_COUNT] = {"New",     "Needs reply", "Pending booking", "Booked",
                                                   "In care", "Declined",    "Completed"};
    return (unsigned)f < HX_FOLDER_COUNT ? t[f] : "?";
}

hx_folder_t hx_folder_from_key(const char *key)
{
    for (int f = 0; key && f < HX_FOLDER_COUNT; f++)
        if (strcmp(key, folder_keys[f]) == 0)
            return (hx_folder_t)f;
    return HX_FOLDER_COUNT;
}

const char *hx_inbox_status_text(Handoff__TaskStatus status, const char *event)
{
    if (event && strcmp(event, "decline") == 0)
        return "declined";
    if (event && strcmp(event, "redirect") == 0 && status == HANDOFF__TASK_STATUS__TASK_CANCELLED)
        return "redirected";        /* the clinic that handed it on: its part ended */
    if (status == HANDOFF__TASK_STATUS__TASK_UNSPECIFIED)
        return "submitted";
    return hx_status_text(status);
}

const Handoff__HandoffStatus *hx_own_handoff(const Handoff__StatusUpdate *s, const char *clinic,
                                             Handoff__Discipline d)
{
    for (size_t i = 0; s && clinic && i < s->n_handoffs; i++) {
        const Handoff__HandoffStatus *h = s->handoffs[i];
        if (h && !strcmp(h->clinic_id, clinic) && (!d || h->discipline == d))
            return h;
    }
    return NULL;
}

void hx_handoffs_text(const Handoff__StatusUpdate *s, char *out, size_t cap)
{
    size_t len = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < s->n_handoffs && len < cap; i++) {
        const Handoff__HandoffStatus *h = s->handoffs[i];
        if (!h)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s %s%s%s", len ? "; " : "", hx_discipline_text(h->discipline),
                                hx_inbox_status_text(h->status, h->event), h->clinic_id[0] ? " at " : "",
                                h->clinic_id);
        if (h->wait_position && len < cap)      /* on the wait list: its place and the estimate */
            len += (size_t)snprintf(out + len, cap - len, " (wait list %u of %u%s%s%s)", h->wait_position,
                                    h->wait_length, h->wait_estimate[0] ? ", estimate " : "", h->wait_estimate,
                                    h->escalated ? ", escalated" : "");
    }
}

hx_inbox_t *hx_inbox_new(const char *clinic)
{
    hx_inbox_t *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->clinic = strdup(clinic ? clinic : "");
    if (!in->clinic) {
        free(in);
        return NULL;
    }
    return in;
}

void hx_inbox_destroy(hx_inbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_inbox_t *in = *self_p;
    for (size_t i = 0; i < in->n; i++) {
        json_decref(in->rows[i].bookings);
        json_decref(in->rows[i].handoffs);
        json_decref(in->rows[i].handoff);
    }
    for (size_t i = 0; i < in->n_threads; i++) {
        thread_t *t = &in->threads[i];
        for (size_t k = 0; k < t->n_ids; k++)
            free(t->ids[k]);
        free(t->ids);
        free(t->asked_by);
    }
    free(in->threads);
    free(in->rows);
    free(in->clinic);
    free(in);
    *self_p = NULL;
}

/* Makes room for one more element of size elem in *v (n used, *cap allocated): false when
 * out of memory. */
static bool grow(void **v, size_t n, size_t *cap, size_t elem, size_t first)
{
    if (n < *cap)
        return true;
    size_t more = *cap ? 2 * *cap : first;
    void *p = realloc(*v, more * elem);
    if (!p)
        return false;
    *v = p;
    *cap = more;
    return true;
}

/* The row of rid on one side (and discipline, for received rows), or a new one. */
static row_t *row_for(hx_inbox_t *in, const char *rid, bool received, Handoff__Discipline d, bool create)
{
    for (size_t i = 0; i < in->n; i++) {
        row_t *r = &in->rows[i];
        if (r->received == received && strcmp(r->rid, rid) == 0 && (!received || r->discipline == d))
            return r;
    }
    if (!create || !grow((void **)&in->rows, in->n, &in->cap, sizeof *in->rows, 32))
        return NULL;
    row_t *r = &in->rows[in->n];
    memset(r, 0, sizeof *r);
    r->bookings = json_array();
    r->handoffs = json_array();
    if (!r->bookings || !r->handoffs) {
        json_decref(r->bookings);
        json_decref(r->handoffs);
        return NULL;
    }
    in->n++;
    snprintf(r->rid, sizeof r->rid, "%s", rid);
    r->received = received;
    r->discipline = d;
    return r;
}

int hx_inbox_add_sent(hx_inbox_t *in, const char *referral_id, const char *ref, const char *patient,
                      uint64_t at_ms)
{
    row_t *r = row_for(in, referral_id, false, 0, true);
    if (!r)
        return HX_ENOMEM;
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

int hx_inbox_add_handoff(hx_inbox_t *in, const Handoff__Handoff *h, uint64_t at_ms)
{
    if (!h->booking)
        return 0;
    row_t *r = row_for(in, h->referral_id, true, h->booking->discipline, true);
    if (!r)
        return HX_ENOMEM;
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
static void apply_handoffs(hx_inbox_t *in, const Handoff__StatusUpdate *s, uint64_t at_ms)
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

int hx_inbox_add_status(hx_inbox_t *in, const Handoff__StatusUpdate *s, uint64_t at_ms)
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
               s->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD)) {
        r = row_for(in, s->referral_id, false, 0, true);
        if (!r)
            return HX_ENOMEM;
    }
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

/* ---- care threads --------------------------------------------------------------------------- */

static thread_t *thread_of(const hx_inbox_t *in, const char *rid)
{
    for (size_t i = 0; i < in->n_threads; i++)
        if (strcmp(in->threads[i].rid, rid) == 0)
            return &in->threads[i];
    return NULL;
}

int hx_inbox_add_post(hx_inbox_t *in, const Handoff__ThreadPost *p, uint64_t at_ms)
{
    char rid[sizeof in->threads[0].rid];
    snprintf(rid, sizeof rid, "%s", p->referral_id);    /* as a row keeps it */
    thread_t *t = thread_of(in, rid);
    if (!t) {
        if (!grow((void **)&in->threads, in->n_threads, &in->cap_threads, sizeof *in->threads, 16))
            return HX_ENOMEM;
        t = &in->threads[in->n_threads++];
        memset(t, 0, sizeof *t);
        memcpy(t->rid, rid, sizeof rid);
    }
    if (p->post_id[0]) {                /* a post delivered twice is one */
        for (size_t i = 0; i < t->n_ids; i++)
            if (strcmp(t->ids[i], p->post_id) == 0)
                return 0;
        if (!grow((void **)&t->ids, t->n_ids, &t->cap_ids, sizeof *t->ids, 8))
            return HX_ENOMEM;
        if (!(t->ids[t->n_ids] = strdup(p->post_id)))
            return HX_ENOMEM;
        t->n_ids++;
    }
    if (t->any && at_ms < t->at_ms)
        return 0;                       /* an older post: the latest stays (same time: added later wins) */
    char *asked_by = strdup(p->asked_by);
    if (!asked_by)
        return HX_ENOMEM;
    free(t->asked_by);
    t->asked_by = asked_by;
    t->any = true;
    t->at_ms = at_ms;
    t->awaiting = p->awaiting_reply;
    return 0;
}

/* Whether the latest post of rid's thread awaits a reply from this clinic (asked by another). */
static bool needs_reply(const hx_inbox_t *in, const char *rid)
{
    const thread_t *t = thread_of(in, rid);
    return t && t->any && t->awaiting && strcmp(t->asked_by, in->clinic) != 0;
}

/* ---- reading it ------------------------------------------------------------------------------ */

/* A row's status as staff read it: a received handoff with nothing since is ready. */
static const char *row_status(const row_t *r)
{
    if (r->received && r->status == HANDOFF__TASK_STATUS__TASK_UNSPECIFIED)
        return hx_status_text(HANDOFF__TASK_STATUS__TASK_READY);
    return hx_inbox_status_text(r->status, r->event);
}

static hx_group_t group_of(const row_t *r)
{
    return hx_inbox_group(r->received, r->status, r->event);
}

static hx_folder_t folder_of(const hx_inbox_t *in, const row_t *r)
{
    hx_group_t g = group_of(r);
    if (g == HX_GROUP_DECLINED)
        return HX_FOLDER_DECLINED;
    if (r->status == HANDOFF__TASK_STATUS__TASK_COMPLETED)
        return HX_FOLDER_COMPLETED;
    if (needs_reply(in, r->rid))
        return HX_FOLDER_NEEDS_REPLY;
    if (g == HX_GROUP_NEW)
        return HX_FOLDER_NEW;
    if (g == HX_GROUP_PENDING)
        return HX_FOLDER_PENDING;
    if (r->status == HANDOFF__TASK_STATUS__TASK_IN_PROGRESS)
        return HX_FOLDER_IN_CARE;
    return HX_FOLDER_BOOKED;
}

size_t hx_inbox_count(const hx_inbox_t *in, hx_group_t g)
{
    size_t n = 0;
    for (size_t i = 0; i < in->n; i++)
        n += group_of(&in->rows[i]) == g;
    return n;
}

size_t hx_inbox_folder_count(const hx_inbox_t *in, hx_folder_t f)
{
    size_t n = 0;
    for (size_t i = 0; i < in->n; i++)
        n += folder_of(in, &in->rows[i]) == f;
    return n;
}

static int by_time(const void *a, const void *b)
{
    const row_t *x = *(row_t *const *)a, *y = *(row_t *const *)b;
    if (x->updated_ms != y->updated_ms)
        return x->updated_ms < y->updated_ms ? -1 : 1;
    return strcmp(x->rid, y->rid);
}

/* Most recently updated first; the same time by referral id, then as added (one order). */
static int by_time_newest(const void *a, const void *b)
{
    const row_t *x = *(row_t *const *)a, *y = *(row_t *const *)b;
    if (x->updated_ms != y->updated_ms)
        return x->updated_ms > y->updated_ms ? -1 : 1;
    int c = strcmp(x->rid, y->rid);
    if (c)
        return c;
    return x < y ? -1 : x > y;
}

/* The rows of group g (every row when g is HX_GROUP_COUNT) sorted by cmp (malloc'd; *n set). */
static const row_t **rows_of(const hx_inbox_t *in, hx_group_t g, int (*cmp)(const void *, const void *), size_t *n)
{
    const row_t **v = malloc((in->n ? in->n : 1) * sizeof *v);
    *n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < in->n; i++)
        if (g == HX_GROUP_COUNT || group_of(&in->rows[i]) == g)
            v[(*n)++] = &in->rows[i];
    qsort(v, *n, sizeof *v, cmp);
    return v;
}

static const char *bstr(const row_t *r, const char *key)
{
    const char *s = json_string_value(json_object_get(json_array_get(r->bookings, 0), key));
    return s ? s : "";
}

static json_t *ms_json(uint64_t ms)
{
    return json_integer((json_int_t)(ms > INT64_MAX ? INT64_MAX : ms));
}

static json_t *row_json(const hx_inbox_t *in, const row_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "referral_id", json_string(r->rid));
    json_object_set_new(o, "ref", json_string(r->ref));
    json_object_set_new(o, "side", json_string(r->received ? "received" : "sent"));
    json_object_set_new(o, "status", json_string(row_status(r)));
    json_object_set_new(o, "event", json_string(r->event));
    json_object_set_new(o, "patient", r->patient[0] ? json_string(r->patient) : json_null());
    json_object_set_new(o, "born", json_string(r->born));
    json_object_set_new(o, "other_clinic", r->received ? json_string(r->other)
                                           : json_array_size(r->bookings) ? json_string(bstr(r, "clinic_id"))
                                                                           : json_null());
    json_object_set_new(o, "bookings", json_incref(r->bookings));
    if (!r->received)
        json_object_set_new(o, "handoffs", json_incref(r->handoffs));
    json_object_set_new(o, "since_ms", ms_json(r->since_ms));
    json_object_set_new(o, "updated_ms", ms_json(r->updated_ms));
    json_object_set_new(o, "reason", json_string(r->reason));
    json_object_set_new(o, "folder", json_string(hx_folder_key(folder_of(in, r))));
    json_object_set_new(o, "needs_reply", json_boolean(needs_reply(in, r->rid)));
    if (r->handoff)
        json_object_set_new(o, "handoff", json_incref(r->handoff));
    return o;
}

/* The rows of group g (HX_GROUP_COUNT: all) in cmp's order as a JSON array. */
static json_t *rows_json(const hx_inbox_t *in, hx_group_t g, int (*cmp)(const void *, const void *))
{
    size_t n;
    const row_t **v = rows_of(in, g, cmp, &n);
    json_t *a = json_array();
    for (size_t i = 0; v && i < n; i++)
        json_array_append_new(a, row_json(in, v[i]));
    free(v);
    return a;
}

json_t *hx_inbox_json(const hx_inbox_t *in)
{
    json_t *all = json_object();
    for (int g = 0; g < HX_GROUP_COUNT; g++)
        json_object_set_new(all, hx_group_key((hx_group_t)g), rows_json(in, (hx_group_t)g, by_time));
    return all;
}

json_t *hx_inbox_rows_json(const hx_inbox_t *in)
{
    return rows_json(in, HX_GROUP_COUNT, by_time_newest);
}

/* ---- from the store ---------------------------------------------------------------------------- */

typedef struct {
    hx_inbox_t *in;
    int rc;                             /* the first add that failed */
} load_t;

static void load_sent(void *ud, const char *referral_id, const char *ref, const char *patient, uint64_t at_ms)
{
    load_t *l = ud;
    int rc = hx_inbox_add_sent(l->in, referral_id, ref, patient, at_ms);
    if (rc && !l->rc)
        l->rc = rc;
}

static void load_received(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    load_t *l = ud;
    int rc = 0;
    if (strcmp(type, "handoff.Handoff") == 0) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, len, data);
        if (h)
            rc = hx_inbox_add_handoff(l->in, h, at);
        handoff__handoff__free_unpacked(h, NULL);
    } else if (strcmp(type, "handoff.StatusUpdate") == 0) {
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, data);
        if (s)
            rc = hx_inbox_add_status(l->in, s, at);
        handoff__status_update__free_unpacked(s, NULL);
    } else if (strcmp(type, "handoff.ThreadPost") == 0) {
        Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, len, data);
        if (p)
            rc = hx_inbox_add_post(l->in, p, at);
        handoff__thread_post__free_unpacked(p, NULL);
    }
    if (rc && !l->rc)
        l->rc = rc;
}

int hx_inbox_load(hx_clinic_t *c, hx_inbox_t **out)
{
    *out = NULL;
    load_t l = {.in = hx_inbox_new(hx_clinic_name(c))};
    if (!l.in)
        return cl_fail(c, HX_ENOMEM, "reading the inbox: out of memory");
    hx_clinic_query_t posts = {.type = "handoff.ThreadPost"};
    int rc = hx_clinic_each_sent(c, load_sent, &l);
    if (!rc)
        rc = hx_clinic_each_received(c, NULL, load_received, &l);
    if (!rc)
        rc = hx_clinic_each_received(c, &posts, load_received, &l);
    if (!rc && l.rc)
        rc = cl_fail(c, l.rc, "reading the inbox: out of memory");
    if (rc) {
        hx_inbox_destroy(&l.in);
        return rc;
    }
    *out = l.in;
    return 0;
}
