/* hx_fhir_map — the view: one clinic's messages in, FHIR R4 resources out (docs/FHIR.md,
 * "Mapping"). Fed as hx_inbox is fed, it reads the messages the same way: a handoff this
 * clinic received follows its own handoff's status (the StatusUpdate.handoffs entry it holds),
 * never the referral's; a referral it sent follows the referral's status and keeps each
 * handoff's. A receiving clinic only ever learns of its own handoffs, so its view has no
 * other clinic's child Task. Resources are built when asked for, from the messages kept. */
#include "hx_fhir.h"
#include "hx_fhir_internal.h"
#include "hx_refjson.h"
#include "hx_schedule.h"
#include "hx_wire.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")
#define N_DISC 4                        /* disciplines are 1..3 */

#define EXT_SECTION "urn:handoff:ext:section"
#define EXT_CONSENT "urn:handoff:ext:consent"
#define EXT_LANGUAGE "urn:handoff:ext:session-language"
#define EXT_VIRTUAL_OK "urn:handoff:ext:virtual-ok"
#define EXT_MASSAGE "urn:handoff:ext:massage-minutes"
#define EXT_AVAILABILITY "urn:handoff:ext:availability"
#define EXT_REG_KIND "urn:handoff:ext:registration-kind"
#define EXT_THERAPIST "urn:handoff:ext:therapist"
#define EXT_EVENT "urn:handoff:ext:event"
#define EXT_WAIT "urn:handoff:ext:wait-list"
#define EXT_AWAITING "urn:handoff:ext:awaiting-reply"
#define EXT_VIRTUAL "urn:handoff:ext:virtual"
#define EXT_TZ "http://hl7.org/fhir/StructureDefinition/timezone"
#define SYS_CARD "urn:handoff:health-card"
#define SYS_LANG "urn:ietf:bcp:47"
#define SYS_REG "urn:handoff:registration:"

typedef struct {
    uint64_t ms;                        /* the latest message that touched it */
    unsigned n;                         /* how many did */
} touch_t;

/* One handoff of a referral (a child Task), as this clinic knows it. Strings point into the
 * messages the view owns. */
typedef struct {
    bool known;
    bool own;                           /* this clinic received it (a Handoff) */
    Handoff__TaskStatus status;         /* 0: a received handoff with nothing since (ready) */
    const char *clinic, *therapist, *therapist_name, *event, *reason;
    const Handoff__HandoffStatus *hs;   /* its latest status entry (wait list), or NULL */
    const Handoff__Booking *booking;    /* its latest booking, or NULL */
    uint64_t since_ms;
    touch_t t;
} hnd_t;

typedef struct {
    char rid[40], ref[80];
    bool sent, holds;
    const Handoff__Referral *referral;  /* the latest whole referral, or NULL */
    const Handoff__TriageDecision *decision;
    Handoff__TaskStatus status;         /* the referral's; 0: submitted, nothing since */
    const char *event, *reason;
    uint64_t since_ms;
    touch_t state, content;
    hnd_t h[N_DISC];
    size_t *posts;                      /* its posts: indices into the view's posts */
    size_t n_posts, cap_posts;
} ref_t;

typedef struct {
    const Handoff__ThreadPost *p;
    uint64_t at_ms;
} post_t;

struct hx_fhir_view {
    char *clinic;
    const hx_directory_t *dir;
    ref_t **refs;
    size_t n_refs, cap_refs;
    post_t *posts;
    size_t n_posts, cap_posts;
    ProtobufCMessage **msgs;            /* every message kept, freed with the view */
    size_t n_msgs, cap_msgs;
    json_t *by_rid;                     /* referral id -> its index in refs (a jansson object:
                                           a hash table), so feeding a view is linear */
    json_t *post_ids;                   /* the post ids seen: a post delivered twice is one */
};

/* ---- the view and its feeding ------------------------------------------------------------- */

hx_fhir_view_t *hx_fhir_view_new(const char *clinic, const hx_directory_t *dir)
{
    hx_fhir_view_t *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->clinic = strdup(clinic ? clinic : "");
    if (!v->clinic) {
        free(v);
        return NULL;
    }
    v->dir = dir;
    v->by_rid = json_object();
    v->post_ids = json_object();
    if (!v->by_rid || !v->post_ids) {
        hx_fhir_view_destroy(&v);
        return NULL;
    }
    return v;
}

void hx_fhir_view_destroy(hx_fhir_view_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_fhir_view_t *v = *self_p;
    for (size_t i = 0; i < v->n_msgs; i++)
        protobuf_c_message_free_unpacked(v->msgs[i], NULL);
    for (size_t i = 0; i < v->n_refs; i++) {
        free(v->refs[i]->posts);
        free(v->refs[i]);
    }
    free(v->msgs);
    free(v->refs);
    free(v->posts);
    json_decref(v->by_rid);
    json_decref(v->post_ids);
    free(v->clinic);
    free(v);
    *self_p = NULL;
}

const char *hx_fhir_view_clinic(const hx_fhir_view_t *v)
{
    return v ? v->clinic : NULL;
}

static bool grow(void **p, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return true;
    size_t more = *cap ? 2 * *cap : 16;
    void *q = realloc(*p, more * elem);
    if (!q)
        return false;
    *p = q;
    *cap = more;
    return true;
}

/* Keeps m (freed with the view); on failure frees it at once. */
static int keep(hx_fhir_view_t *v, ProtobufCMessage *m)
{
    if (!grow((void **)&v->msgs, v->n_msgs, &v->cap_msgs, sizeof *v->msgs)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return HX_ENOMEM;
    }
    v->msgs[v->n_msgs++] = m;
    return 0;
}

static void touch(touch_t *t, uint64_t ms)
{
    if (ms > t->ms)
        t->ms = ms;
    t->n++;
}

/* A referral id that leaves room for a child's suffix as a FHIR id. */
static bool rid_ok(const char *rid)
{
    return hx_fhir_id_valid(rid) && strlen(rid) < 40;
}

static ref_t *ref_of(const hx_fhir_view_t *v, const char *rid)
{
    json_t *i = rid ? json_object_get(v->by_rid, rid) : NULL;
    return i ? v->refs[json_integer_value(i)] : NULL;
}

static bool ref_add_post(ref_t *r, size_t i)
{
    if (!grow((void **)&r->posts, r->n_posts, &r->cap_posts, sizeof *r->posts))
        return false;
    r->posts[r->n_posts++] = i;
    return true;
}

static ref_t *ref_new(hx_fhir_view_t *v, const char *rid, uint64_t at_ms)
{
    if (!grow((void **)&v->refs, v->n_refs, &v->cap_refs, sizeof *v->refs))
        return NULL;
    ref_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->rid, sizeof r->rid, "%s", rid);
    r->since_ms = at_ms;
    if (json_object_set_new(v->by_rid, r->rid, json_integer((json_int_t)v->n_refs)) != 0) {
        free(r);
        return NULL;
    }
    v->refs[v->n_refs++] = r;
    /* posts fed before their referral (the loader feeds them last: none) */
    for (size_t i = 0; i < v->n_posts; i++)
        if (!strcmp(v->posts[i].p->referral_id, r->rid) && !ref_add_post(r, i))
            return NULL;
    return r;
}

/* The record of referral rid, made when there is none yet; NULL out of memory. */
static ref_t *ref_get(hx_fhir_view_t *v, const char *rid, uint64_t at_ms)
{
    ref_t *r = ref_of(v, rid);
    return r ? r : ref_new(v, rid, at_ms);
}

static bool disc_ok(Handoff__Discipline d)
{
    return d > 0 && d < N_DISC;
}

static hnd_t *hnd_of(ref_t *r, Handoff__Discipline d)
{
    return disc_ok(d) ? &r->h[d] : NULL;
}

int hx_fhir_view_add_sent(hx_fhir_view_t *v, const char *referral_id, const char *ref, Handoff__Referral *rf,
                          uint64_t at_ms)
{
    if (rf && keep(v, &rf->base) != 0)
        return HX_ENOMEM;
    if (!rid_ok(referral_id))
        return 0;                       /* nothing FHIR could name */
    ref_t *r = ref_get(v, referral_id, at_ms);
    if (!r)
        return HX_ENOMEM;
    r->sent = true;
    if (!r->ref[0])
        snprintf(r->ref, sizeof r->ref, "%s", ref && *ref ? ref : rf ? S(rf->ref) : "");
    if (at_ms < r->since_ms)
        r->since_ms = at_ms;
    if (rf) {
        r->referral = rf;
        touch(&r->content, at_ms);
    }
    touch(&r->state, at_ms);
    return 0;
}

int hx_fhir_view_add_handoff(hx_fhir_view_t *v, Handoff__Handoff *h, uint64_t at_ms)
{
    if (!h)
        return 0;
    if (keep(v, &h->base) != 0)
        return HX_ENOMEM;
    const Handoff__Booking *b = h->booking;
    if (!b || !rid_ok(h->referral_id) || !disc_ok(b->discipline))
        return 0;
    ref_t *r = ref_get(v, h->referral_id, at_ms);
    if (!r)
        return HX_ENOMEM;
    r->holds = true;
    if (h->referral) {
        r->referral = h->referral;
        touch(&r->content, at_ms);
        if (!r->ref[0])
            snprintf(r->ref, sizeof r->ref, "%s", S(h->referral->ref));
    }
    if (h->decision)
        r->decision = h->decision;
    if (!r->sent && !r->status)
        r->status = HANDOFF__TASK_STATUS__TASK_READY;   /* a handoff: booked at least */
    touch(&r->state, at_ms);
    hnd_t *x = hnd_of(r, b->discipline);
    *x = (hnd_t){.known = true, .own = true, .clinic = b->clinic_id, .therapist = b->therapist_id,
                 .therapist_name = b->therapist_name, .booking = b, .since_ms = at_ms, .t = x->t};
    touch(&x->t, at_ms);                /* a new handoff (also after a decline): ready again */
    return 0;
}

/* A handoff's status entry applied to its record. */
static void apply_entry(hnd_t *x, const Handoff__HandoffStatus *e, const Handoff__StatusUpdate *s, uint64_t at_ms)
{
    x->known = true;
    x->status = e->status;
    x->event = e->event && *e->event ? e->event : s->event;
    x->reason = e->reason && *e->reason ? e->reason : s->reason;
    x->clinic = e->clinic_id;
    if (e->therapist_id && *e->therapist_id) {
        x->therapist = e->therapist_id;
        x->therapist_name = e->therapist_name;
    } else if (!e->clinic_id || !*e->clinic_id) {
        x->therapist = x->therapist_name = NULL;        /* being booked (again): nobody holds it */
    }
    x->hs = e;
    touch(&x->t, at_ms);
}

/* An update older than StatusUpdate.handoffs: its status was the booking's it names. */
static void apply_booking_status(hnd_t *x, const Handoff__Booking *b, const Handoff__StatusUpdate *s, uint64_t at_ms)
{
    x->known = true;
    x->status = s->status;
    x->event = s->event;
    x->reason = s->reason;
    x->clinic = b->clinic_id;
    x->therapist = b->therapist_id;
    x->therapist_name = b->therapist_name;
    x->hs = NULL;
    touch(&x->t, at_ms);
}

static bool referrer_event(const char *ev)
{
    static const char *const only_referrer[] = {"submit", "receive", "reject", "hold", "book", NULL};
    return hx_fhir_one_of(ev, only_referrer);
}

/* The receiving side: each handoff this clinic holds moves to its own entry's status. */
static void apply_own(hx_fhir_view_t *v, ref_t *r, const Handoff__StatusUpdate *s, uint64_t at_ms)
{
    for (size_t i = 0; i < s->n_handoffs; i++) {
        const Handoff__HandoffStatus *e = s->handoffs[i];
        hnd_t *x = e ? hnd_of(r, e->discipline) : NULL;
        if (x && x->own && strcmp(S(e->clinic_id), v->clinic) == 0 && at_ms >= x->since_ms)
            apply_entry(x, e, s, at_ms);
    }
    for (size_t i = 0; !s->n_handoffs && i < s->n_bookings; i++) {
        const Handoff__Booking *b = s->bookings[i];
        hnd_t *x = b ? hnd_of(r, b->discipline) : NULL;
        if (x && x->own && strcmp(S(b->clinic_id), v->clinic) == 0 && at_ms >= x->since_ms)
            apply_booking_status(x, b, s, at_ms);
    }
}

/* The referring side: every handoff of the referral, and the bookings made. */
static void apply_all(ref_t *r, const Handoff__StatusUpdate *s, uint64_t at_ms)
{
    for (size_t i = 0; i < s->n_handoffs; i++) {
        const Handoff__HandoffStatus *e = s->handoffs[i];
        hnd_t *x = e ? hnd_of(r, e->discipline) : NULL;
        if (x)
            apply_entry(x, e, s, at_ms);
    }
    for (size_t i = 0; i < s->n_bookings; i++) {
        const Handoff__Booking *b = s->bookings[i];
        hnd_t *x = b ? hnd_of(r, b->discipline) : NULL;
        if (!x)
            continue;
        if (!s->n_handoffs)
            apply_booking_status(x, b, s, at_ms);
        x->booking = b;
    }
}

int hx_fhir_view_add_status(hx_fhir_view_t *v, Handoff__StatusUpdate *s, uint64_t at_ms)
{
    if (!s)
        return 0;
    if (s->refused || !rid_ok(s->referral_id)) {
        handoff__status_update__free_unpacked(s, NULL);     /* an answer that changed nothing */
        return 0;
    }
    if (keep(v, &s->base) != 0)
        return HX_ENOMEM;
    ref_t *r = ref_of(v, s->referral_id);
    bool for_referrer = referrer_event(s->event) || s->status == HANDOFF__TASK_STATUS__TASK_REQUESTED ||
                        s->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD;
    if (!r && for_referrer && !(r = ref_new(v, s->referral_id, at_ms)))
        return HX_ENOMEM;
    if (!r)
        return 0;                       /* not a referral this clinic takes part in */
    if (for_referrer)
        r->sent = true;
    if (r->holds)
        apply_own(v, r, s, at_ms);
    if (r->sent)
        apply_all(r, s, at_ms);
    r->status = s->status;
    r->event = s->event;
    r->reason = s->reason;
    if (!r->ref[0])
        snprintf(r->ref, sizeof r->ref, "%s", S(s->ref));
    if (s->decision)
        r->decision = s->decision;
    touch(&r->state, at_ms);
    return 0;
}

int hx_fhir_view_add_post(hx_fhir_view_t *v, Handoff__ThreadPost *p, uint64_t at_ms)
{
    if (!p)
        return 0;
    if (keep(v, &p->base) != 0)
        return HX_ENOMEM;
    if (!hx_fhir_id_valid(p->post_id) || !rid_ok(p->referral_id))
        return 0;
    if (json_object_get(v->post_ids, p->post_id))
        return 0;                       /* a post delivered twice is one */
    if (!grow((void **)&v->posts, v->n_posts, &v->cap_posts, sizeof *v->posts) ||
        json_object_set_new(v->post_ids, p->post_id, json_true()) != 0)
        return HX_ENOMEM;
    ref_t *r = ref_of(v, p->referral_id);
    if (r && !ref_add_post(r, v->n_posts))
        return HX_ENOMEM;
    v->posts[v->n_posts++] = (post_t){.p = p, .at_ms = at_ms};
    return 0;
}

/* ---- small builders ------------------------------------------------------------------------- */

static json_t *res_new(const char *type, const char *id)
{
    return json_pack("{s:s, s:s}", "resourceType", type, "id", id);
}

/* The referral rid's Patient: {"reference": "Patient/RID-patient"}. */
static json_t *patient_ref(const char *rid)
{
    char pid[64];
    snprintf(pid, sizeof pid, "%s-patient", rid);
    return hx_fhir_ref("Patient", pid);
}

static json_t *coding(const char *sys, const char *code, const char *display)
{
    json_t *c = json_pack("{s:s, s:s}", "system", sys, "code", code);
    hx_fhir_set_str(c, "display", display);
    return c;
}

/* {"coding":[{system, code}]}, or NULL when code is not one. */
static json_t *concept(const char *sys, const char *code)
{
    if (!hx_fhir_code_valid(code))
        return NULL;
    return json_pack("{s:[o]}", "coding", coding(sys, code, NULL));
}

/* Sets o[key] to a, or drops a when it is empty (FHIR has no empty arrays). */
static void set_list(json_t *o, const char *key, json_t *a)
{
    if (json_array_size(a))
        json_object_set_new(o, key, a);
    else
        json_decref(a);
}

static void set_ref(json_t *o, const char *key, const char *type, const char *id)
{
    if (hx_fhir_id_valid(id))
        json_object_set_new(o, key, hx_fhir_ref(type, id));
}

static void add_ref(json_t *a, const char *type, const char *id)
{
    if (hx_fhir_id_valid(id))
        json_array_append_new(a, hx_fhir_ref(type, id));
}

static void set_instant(json_t *o, const char *key, uint64_t ms)
{
    char at[32];
    hx_fhir_instant(ms, at, sizeof at);
    json_object_set_new(o, key, json_string(at));
}

/* Appends an extension (taken) to o.extension. */
static void add_ext_obj(json_t *o, json_t *ext)
{
    json_t *a = json_object_get(o, "extension");
    if (ext && !a) {
        a = json_array();
        json_object_set_new(o, "extension", a);
    }
    json_array_append_new(a, ext);
}

/* Appends an extension of url with one value (taken; NULL: nothing) to o.extension. */
static void add_ext(json_t *o, const char *url, const char *vkey, json_t *value)
{
    if (value)
        add_ext_obj(o, json_pack("{s:s, s:o}", "url", url, vkey, value));
}

static json_t *code_value(const char *s)
{
    return hx_fhir_code_valid(s) ? json_string(s) : NULL;
}

/* A FHIR date ("YYYY-MM-DD"), or NULL. */
static json_t *date_value(const char *s)
{
    return hx_fhir_date_valid(s) ? json_string(s) : NULL;
}

static json_t *discipline_concept(Handoff__Discipline d)
{
    const char *c = hx_fhir_discipline_code(d);
    return c ? concept(HX_FHIR_SYS_DISCIPLINE, c) : NULL;
}

static json_t *telecom(const char *phone, const char *email)
{
    json_t *a = json_array();
    if (phone && *phone)
        json_array_append_new(a, json_pack("{s:s, s:s}", "system", "phone", "value", phone));
    if (email && *email)
        json_array_append_new(a, json_pack("{s:s, s:s}", "system", "email", "value", email));
    return a;
}

/* ---- resources of a referral ------------------------------------------------------------------ */

typedef struct {
    json_t *res;
    uint64_t ms;
} item_t;

/* What a build collects: every resource of one type, or only the one with id want. */
typedef struct {
    const char *want;
    item_t *v;
    size_t n, cap;
    bool oom;
} out_t;

static bool wanted(const out_t *o, const char *id)
{
    return !o->want || strcmp(o->want, id) == 0;
}

/* Gives res its meta and adds it (takes the reference). */
static void emit(out_t *o, json_t *res, touch_t t)
{
    if (!res || !grow((void **)&o->v, o->n, &o->cap, sizeof *o->v)) {
        o->oom = true;
        json_decref(res);
        return;
    }
    char ver[16];
    snprintf(ver, sizeof ver, "%u", t.n ? t.n : 1);
    json_t *meta = json_pack("{s:s}", "versionId", ver);
    set_instant(meta, "lastUpdated", t.ms);
    json_object_set_new(res, "meta", meta);
    o->v[o->n++] = (item_t){.res = res, .ms = t.ms};
}

static const char *referring_clinic(const hx_fhir_view_t *v, const ref_t *r)
{
    if (r->referral && r->referral->referring_clinic && *r->referral->referring_clinic)
        return r->referral->referring_clinic;
    return r->sent ? v->clinic : "";
}

/* The touch of what the referral itself carries: its messages, or when none carried it whole,
 * its first. */
static touch_t content_touch(const ref_t *r)
{
    return r->content.n ? r->content : (touch_t){.ms = r->since_ms, .n = 1};
}

static const char *sr_status(Handoff__TaskStatus st)
{
    switch (st) {
    case HANDOFF__TASK_STATUS__TASK_DRAFT:
        return "draft";
    case HANDOFF__TASK_STATUS__TASK_ON_HOLD:
        return "on-hold";
    case HANDOFF__TASK_STATUS__TASK_COMPLETED:
        return "completed";
    case HANDOFF__TASK_STATUS__TASK_CANCELLED:
    case HANDOFF__TASK_STATUS__TASK_REJECTED:
    case HANDOFF__TASK_STATUS__TASK_FAILED:
        return "revoked";
    case HANDOFF__TASK_STATUS__TASK_ENTERED_IN_ERROR:
        return "entered-in-error";
    default:                            /* submitted, requested, received, accepted, ready, in-progress */
        return "active";
    }
}

static bool digits_only(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The fired evidence of the decision that names condition code (its SNOMED CT concept), or NULL. */
static const Handoff__TriageEvidence *condition_evidence(const Handoff__TriageDecision *d, const char *code)
{
    for (size_t i = 0; d && i < d->n_evidence; i++) {
        const Handoff__TriageEvidence *e = d->evidence[i];
        if (!e || !e->fired || !digits_only(e->snomed))
            continue;
        const char *colon = strchr(S(e->rule), ':');
        bool by_rule = colon && strncmp(e->rule, "condition:", 10) == 0 && strcmp(colon + 1, code) == 0;
        bool by_source = !strcmp(S(e->source), "conditions") && !strcmp(S(e->words), code);
        if (by_rule || by_source)
            return e;
    }
    return NULL;
}

static bool free_text_source(const char *src)
{
    static const char *const fields[] = {"reason", "history", "diagnosis", "current_treatment", "expectations",
                                         NULL};
    return hx_fhir_one_of(src, fields);
}

static json_t *reason_codes(const Handoff__Referral *rf, const Handoff__TriageDecision *d)
{
    json_t *a = json_array();
    if (rf && rf->reason && *rf->reason)
        json_array_append_new(a, json_pack("{s:s}", "text", rf->reason));
    for (size_t i = 0; rf && i < rf->n_conditions; i++) {
        json_t *c = concept(HX_FHIR_SYS_CONDITION, rf->conditions[i]);
        const Handoff__TriageEvidence *e = c ? condition_evidence(d, rf->conditions[i]) : NULL;
        if (e)
            json_array_append_new(json_object_get(c, "coding"),
                                  coding(HX_FHIR_SNOMED, e->snomed, e->snomed_display));
        if (c)
            json_array_append_new(a, c);
    }
    for (size_t i = 0; rf && i < rf->n_findings; i++) {
        json_t *c = concept(HX_FHIR_SYS_FINDING, rf->findings[i]);
        if (c)
            json_array_append_new(a, c);
    }
    for (size_t i = 0; d && i < d->n_evidence; i++) {      /* phrases of the free text */
        const Handoff__TriageEvidence *e = d->evidence[i];
        if (!e || !e->fired || !digits_only(e->snomed) || !free_text_source(e->source))
            continue;
        json_t *c = json_pack("{s:[o]}", "coding", coding(HX_FHIR_SNOMED, e->snomed, e->snomed_display));
        hx_fhir_set_str(c, "text", e->words);
        json_array_append_new(a, c);
    }
    return a;
}

static json_t *disciplines_concept(const Handoff__TriageDecision *d)
{
    json_t *codings = json_array();
    for (size_t i = 0; d && i < d->n_disciplines; i++) {
        const char *c = hx_fhir_discipline_code(d->disciplines[i]);
        if (c)
            json_array_append_new(codings, coding(HX_FHIR_SYS_DISCIPLINE, c, NULL));
    }
    if (!json_array_size(codings)) {
        json_decref(codings);
        return NULL;
    }
    return json_pack("{s:o}", "coding", codings);
}

static void add_note(json_t *notes, const char *text, const char *section)
{
    if (!text || !*text)
        return;
    json_t *n = json_pack("{s:s}", "text", text);
    if (n && section)
        add_ext(n, EXT_SECTION, "valueCode", json_string(section));
    json_array_append_new(notes, n);
}

static json_t *sr_notes(const Handoff__Referral *rf, const Handoff__TriageDecision *d)
{
    json_t *a = json_array();
    if (rf) {
        add_note(a, rf->history, "history");
        add_note(a, rf->diagnosis, "diagnosis");
        add_note(a, rf->current_treatment, "current-treatment");
        add_note(a, rf->expectations, "expectations");
    }
    for (size_t i = 0; d && i < d->n_notes; i++)
        add_note(a, d->notes[i], NULL);
    if (d)
        add_note(a, d->reason, NULL);
    return a;
}

/* "HH:MM" as a FHIR time "HH:MM:00", or NULL. */
static json_t *time_value(const char *s)
{
    if (!s || strlen(s) != 5 || s[2] != ':')
        return NULL;
    int h = 0, m = 0;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return NULL;
    h = (s[0] - '0') * 10 + (s[1] - '0');
    m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return NULL;
    char t[16];
    snprintf(t, sizeof t, "%02d:%02d:00", h, m);
    return json_string(t);
}

static void sr_extensions(json_t *o, const Handoff__Referral *rf)
{
    if (!rf)
        return;
    if (rf->consent == HANDOFF__CONSENT__CONSENT_GIVEN || rf->consent == HANDOFF__CONSENT__CONSENT_WITHHELD)
        add_ext(o, EXT_CONSENT, "valueCode", json_string(hx_consent_text(rf->consent)));
    const Handoff__Preferences *p = rf->preferences;
    if (!p)
        return;
    add_ext(o, EXT_LANGUAGE, "valueCode", code_value(p->language));
    add_ext(o, EXT_VIRTUAL_OK, "valueBoolean", json_boolean(p->virtual_ok));
    if (p->massage_minutes)
        add_ext(o, EXT_MASSAGE, "valueInteger", json_integer(p->massage_minutes));
    for (size_t i = 0; i < p->n_availability; i++) {
        const Handoff__Availability *w = p->availability[i];
        json_t *from = w ? time_value(w->from) : NULL, *to = w ? time_value(w->to) : NULL;
        if (!w || w->day < 1 || w->day > 7 || !from || !to) {
            json_decref(from);
            json_decref(to);
            continue;
        }
        json_t *sub = json_pack("[{s:s, s:i}, {s:s, s:o}, {s:s, s:o}]", "url", "day", "valueInteger", (int)w->day,
                                "url", "from", "valueTime", from, "url", "to", "valueTime", to);
        add_ext_obj(o, json_pack("{s:s, s:o}", "url", EXT_AVAILABILITY, "extension", sub));
    }
}

static json_t *service_request(const hx_fhir_view_t *v, const ref_t *r)
{
    const Handoff__Referral *rf = r->referral;
    const Handoff__TriageDecision *d = r->decision;
    json_t *o = res_new("ServiceRequest", r->rid);
    char pid[64], rid[64];
    snprintf(pid, sizeof pid, "%s-patient", r->rid);
    snprintf(rid, sizeof rid, "%s-referrer", r->rid);
    json_t *ids = json_array();
    json_array_append_new(ids, json_pack("{s:s, s:s}", "system", HX_FHIR_SYS_REFERRAL_ID, "value", r->rid));
    if (r->ref[0]) {
        json_t *id = json_pack("{s:s, s:s}", "system", HX_FHIR_SYS_REF, "value", r->ref);
        set_ref(id, "assigner", "Organization", referring_clinic(v, r));
        json_array_append_new(ids, id);
    }
    json_object_set_new(o, "identifier", ids);
    json_object_set_new(o, "status", json_string(sr_status(r->status)));
    json_object_set_new(o, "intent", json_string("order"));
    Handoff__Priority pr = d && d->priority ? d->priority : rf ? rf->priority : 0;
    if (pr >= HANDOFF__PRIORITY__PRIORITY_ROUTINE && pr <= HANDOFF__PRIORITY__PRIORITY_STAT)
        json_object_set_new(o, "priority", json_string(hx_priority_text(pr)));
    json_t *code = disciplines_concept(d);
    if (code) {
        json_object_set_new(o, "code", code);
        json_object_set_new(o, "performerType", json_deep_copy(code));
    }
    set_list(o, "reasonCode", reason_codes(rf, d));
    set_ref(o, "subject", "Patient", pid);
    if (rf)
        json_object_set_new(o, "authoredOn", date_value(rf->referral_date));
    set_ref(o, "requester", "PractitionerRole", rid);
    json_t *perf = json_array();
    for (size_t i = 0; rf && rf->preferences && i < rf->preferences->n_clinic_ids; i++)
        add_ref(perf, "Organization", rf->preferences->clinic_ids[i]);
    set_list(o, "performer", perf);
    set_list(o, "note", sr_notes(rf, d));
    json_t *docs = json_array();
    for (size_t i = 0; i < r->n_posts; i++) {
        const Handoff__ThreadPost *p = v->posts[r->posts[i]].p;
        if (p->attachment && p->attachment->data.len)
            add_ref(docs, "DocumentReference", p->post_id);
    }
    set_list(o, "supportingInfo", docs);
    sr_extensions(o, rf);
    return o;
}

static json_t *patient(const ref_t *r, const char *id)
{
    json_t *o = res_new("Patient", id);
    const Handoff__Patient *p = r->referral ? r->referral->patient : NULL;
    if (!p)
        return o;
    if (p->health_card && *p->health_card)
        json_object_set_new(o, "identifier",
                            json_pack("[{s:s, s:s}]", "system", SYS_CARD, "value", p->health_card));
    json_t *name = json_object();
    hx_fhir_set_str(name, "family", p->family_name);
    if (p->given_name && *p->given_name)
        json_object_set_new(name, "given", json_pack("[s]", p->given_name));
    if (json_object_size(name))
        json_object_set_new(o, "name", json_pack("[o]", name));
    else
        json_decref(name);
    json_t *born = date_value(p->birth_date);
    if (born)
        json_object_set_new(o, "birthDate", born);
    set_list(o, "telecom", telecom(p->phone, p->email));
    if (p->postal_code && *p->postal_code)
        json_object_set_new(o, "address", json_pack("[{s:s}]", "postalCode", p->postal_code));
    if (hx_fhir_code_valid(p->language))
        json_object_set_new(o, "communication",
                            json_pack("[{s:{s:[{s:s, s:s}]}, s:b}]", "language", "coding", "system", SYS_LANG,
                                      "code", p->language, "preferred", 1));
    return o;
}

static bool body_ok(const char *b)
{
    if (!b || !*b)
        return false;
    for (; *b; b++)
        if (!((*b >= 'A' && *b <= 'Z') || (*b >= 'a' && *b <= 'z') || (*b >= '0' && *b <= '9')))
            return false;
    return true;
}

/* [{system urn:handoff:registration:BODY, value NUMBER}] appended to a, when both are given. */
static void add_registration(json_t *a, const char *body, const char *number)
{
    if (!body_ok(body) || !number || !*number)
        return;
    char sys[96];
    snprintf(sys, sizeof sys, SYS_REG "%s", body);
    json_array_append_new(a, json_pack("{s:s, s:s}", "system", sys, "value", number));
}

static json_t *referrer_practitioner(const ref_t *r, const char *id)
{
    json_t *o = res_new("Practitioner", id);
    const Handoff__Referrer *p = r->referral ? r->referral->referrer : NULL;
    if (!p)
        return o;
    json_t *ids = json_array();
    add_registration(ids, p->registration_body, p->registration_number);
    set_list(o, "identifier", ids);
    if (p->name && *p->name)
        json_object_set_new(o, "name", json_pack("[{s:s}]", "text", p->name));
    if (p->province && *p->province)
        json_object_set_new(o, "address", json_pack("[{s:s}]", "state", p->province));
    return o;
}

static json_t *referrer_role(const hx_fhir_view_t *v, const ref_t *r, const char *id)
{
    json_t *o = res_new("PractitionerRole", id);
    set_ref(o, "practitioner", "Practitioner", id);
    set_ref(o, "organization", "Organization", referring_clinic(v, r));
    const Handoff__Referrer *p = r->referral ? r->referral->referrer : NULL;
    if (!p)
        return o;
    json_t *c = discipline_concept(p->discipline);
    if (c)
        json_object_set_new(o, "code", json_pack("[o]", c));
    set_list(o, "telecom", telecom(p->phone, p->email));
    add_ext(o, EXT_REG_KIND, "valueCode", code_value(p->registration_kind));
    return o;
}

/* The latest summary post of the referral by clinic: a completed handoff's output. */
static const char *summary_of(const hx_fhir_view_t *v, const ref_t *r, const char *clinic)
{
    const post_t *best = NULL;
    for (size_t i = 0; i < r->n_posts; i++) {
        const post_t *p = &v->posts[r->posts[i]];
        if (!strcmp(S(p->p->kind), "summary") && clinic &&
            !strcmp(S(p->p->by), clinic) && p->p->text && *p->p->text && (!best || p->at_ms >= best->at_ms))
            best = p;
    }
    return best ? best->p->text : NULL;
}

/* What every Task of the referral carries. */
static json_t *task_base(const ref_t *r, const char *id, Handoff__TaskStatus st, const char *business,
                         const char *event, const char *reason, uint64_t modified)
{
    char sr[64], role[64];
    snprintf(sr, sizeof sr, "%s", r->rid);
    snprintf(role, sizeof role, "%s-referrer", r->rid);
    json_t *o = res_new("Task", id);
    json_object_set_new(o, "status", json_string(hx_fhir_task_status(st)));
    json_object_set_new(o, "businessStatus", concept(HX_FHIR_SYS_BUSINESS, business));
    json_object_set_new(o, "intent", json_string("order"));
    json_object_set_new(o, "basedOn", json_pack("[o]", hx_fhir_ref("ServiceRequest", sr)));
    json_object_set_new(o, "focus", hx_fhir_ref("ServiceRequest", sr));
    json_object_set_new(o, "for", patient_ref(r->rid));
    json_object_set_new(o, "requester", hx_fhir_ref("PractitionerRole", role));
    if (reason && *reason)
        json_object_set_new(o, "statusReason", json_pack("{s:s}", "text", reason));
    set_instant(o, "authoredOn", r->since_ms);
    set_instant(o, "lastModified", modified);
    add_ext(o, EXT_EVENT, "valueCode", code_value(event));
    return o;
}

static json_t *parent_task(const ref_t *r)
{
    json_t *o = task_base(r, r->rid, r->status, hx_fhir_business_status(r->status, r->event), r->event, r->reason,
                          r->state.ms);
    json_object_set_new(o, "code", concept(HX_FHIR_SYS_TASK_CODE, "referral"));
    return o;
}

static json_t *wait_list(const Handoff__HandoffStatus *e)
{
    json_t *sub = json_array();
    json_array_append_new(sub, json_pack("{s:s, s:i}", "url", "position", "valueInteger", (int)e->wait_position));
    json_array_append_new(sub, json_pack("{s:s, s:i}", "url", "length", "valueInteger", (int)e->wait_length));
    json_t *est = date_value(e->wait_estimate);
    if (est)
        json_array_append_new(sub, json_pack("{s:s, s:o}", "url", "estimate", "valueDate", est));
    json_array_append_new(sub, json_pack("{s:s, s:b}", "url", "escalated", "valueBoolean", e->escalated));
    return json_pack("{s:s, s:o}", "url", EXT_WAIT, "extension", sub);
}

/* A received handoff with nothing since reads ready. One this clinic declined reads rejected
 * to it (FHIR: the performer decided not to do it; the status its EMR set), while the
 * handoff itself is received again, being booked elsewhere, as its referrer reads it. */
static Handoff__TaskStatus hnd_status(const hnd_t *x)
{
    if (x->own && x->event && !strcmp(x->event, "decline"))
        return HANDOFF__TASK_STATUS__TASK_REJECTED;
    return x->own && !x->status ? HANDOFF__TASK_STATUS__TASK_READY : x->status;
}

static json_t *child_task(const hx_fhir_view_t *v, const ref_t *r, Handoff__Discipline d, const char *id)
{
    const hnd_t *x = &r->h[d];
    Handoff__TaskStatus st = hnd_status(x);
    json_t *o = task_base(r, id, st, hx_fhir_business_status(st, x->event), x->event, x->reason, x->t.ms);
    json_t *code = concept(HX_FHIR_SYS_TASK_CODE, "handoff");
    json_object_set_new(code, "text", json_string(hx_fhir_discipline_code(d)));
    json_object_set_new(o, "code", code);
    json_object_set_new(o, "partOf", json_pack("[o]", hx_fhir_ref("Task", r->rid)));
    set_ref(o, "owner", "Organization", x->clinic);
    const char *summary = st == HANDOFF__TASK_STATUS__TASK_COMPLETED ? summary_of(v, r, x->clinic) : NULL;
    if (summary)
        json_object_set_new(o, "output",
                            json_pack("[{s:{s:s}, s:s}]", "type", "text", "summary", "valueString", summary));
    if (hx_fhir_id_valid(x->therapist))
        add_ext(o, EXT_THERAPIST, "valueReference", hx_fhir_ref("PractitionerRole", x->therapist));
    if (st == HANDOFF__TASK_STATUS__TASK_ON_HOLD && x->hs && x->hs->wait_position)
        add_ext_obj(o, wait_list(x->hs));
    return o;
}

/* Whether this clinic may see the handoff: its own, or any of a referral it sent. */
static bool hnd_visible(const ref_t *r, Handoff__Discipline d)
{
    return r->h[d].known && (r->h[d].own || r->sent);
}

/* The booking's start as ms (its instant, or in older bookings its start in the network's
 * time); -1 when it has none. */
static int booking_start(const Handoff__Booking *b, uint64_t *ms)
{
    char buf[40];
    if (b->start_utc && *b->start_utc && hx_fhir_parse_instant(b->start_utc, ms) == 0)
        return 0;
    snprintf(buf, sizeof buf, "%sZ", S(b->start));
    return b->start && strlen(b->start) == 16 && hx_fhir_parse_instant(buf, ms) == 0 ? 0 : -1;
}

static const char *appointment_status(Handoff__TaskStatus st)
{
    switch (st) {
    case HANDOFF__TASK_STATUS__TASK_READY:
    case HANDOFF__TASK_STATUS__TASK_ACCEPTED:
    case HANDOFF__TASK_STATUS__TASK_IN_PROGRESS:
        return "booked";
    case HANDOFF__TASK_STATUS__TASK_COMPLETED:
        return "fulfilled";
    default:                            /* declined, redirected away, revoked, failed */
        return "cancelled";
    }
}

static json_t *participant(const char *type, const char *id, const char *display)
{
    json_t *actor = hx_fhir_ref(type, id);
    hx_fhir_set_str(actor, "display", display);
    return json_pack("{s:o, s:s}", "actor", actor, "status", "accepted");
}

static json_t *appointment(const ref_t *r, Handoff__Discipline d, const char *id, uint64_t start)
{
    const hnd_t *x = &r->h[d];
    const Handoff__Booking *b = x->booking;
    char pid[64];
    snprintf(pid, sizeof pid, "%s-patient", r->rid);
    uint32_t minutes = b->minutes ? b->minutes : 60;
    json_t *o = res_new("Appointment", id);
    json_object_set_new(o, "status", json_string(appointment_status(hnd_status(x))));
    json_object_set_new(o, "serviceType", json_pack("[o]", discipline_concept(d)));
    set_instant(o, "start", start);
    set_instant(o, "end", start + (uint64_t)minutes * 60000);
    json_object_set_new(o, "minutesDuration", json_integer(minutes));
    json_object_set_new(o, "basedOn", json_pack("[o]", hx_fhir_ref("ServiceRequest", r->rid)));
    json_t *who = json_array();
    json_array_append_new(who, participant("Patient", pid, NULL));
    if (hx_fhir_id_valid(b->therapist_id))
        json_array_append_new(who, participant("PractitionerRole", b->therapist_id, b->therapist_name));
    if (hx_fhir_id_valid(b->clinic_id))
        json_array_append_new(who, participant("Location", b->clinic_id, NULL));
    json_object_set_new(o, "participant", who);
    add_ext(o, EXT_VIRTUAL, "valueBoolean", json_boolean(b->virtual_));
    return o;
}

static void build_referral(const hx_fhir_view_t *v, const ref_t *r, hx_fhir_type_t t, out_t *o)
{
    char id[64];
    switch (t) {
    case HX_FHIR_SERVICE_REQUEST:
        if (wanted(o, r->rid))
            emit(o, service_request(v, r), r->state);
        return;
    case HX_FHIR_PATIENT:
        snprintf(id, sizeof id, "%s-patient", r->rid);
        if (wanted(o, id))
            emit(o, patient(r, id), content_touch(r));
        return;
    case HX_FHIR_PRACTITIONER:
    case HX_FHIR_PRACTITIONER_ROLE:
        snprintf(id, sizeof id, "%s-referrer", r->rid);
        if (wanted(o, id))
            emit(o, t == HX_FHIR_PRACTITIONER ? referrer_practitioner(r, id) : referrer_role(v, r, id),
                 content_touch(r));
        return;
    case HX_FHIR_TASK:
        if (wanted(o, r->rid))
            emit(o, parent_task(r), r->state);
        break;
    case HX_FHIR_APPOINTMENT:
        break;
    default:
        return;
    }
    for (Handoff__Discipline d = 1; d < N_DISC; d++) {
        if (!hnd_visible(r, d))
            continue;
        snprintf(id, sizeof id, "%s-%s", r->rid, hx_fhir_discipline_code(d));
        uint64_t start;
        if (!wanted(o, id))
            continue;
        if (t == HX_FHIR_TASK)
            emit(o, child_task(v, r, d, id), r->h[d].t);
        else if (r->h[d].booking && booking_start(r->h[d].booking, &start) == 0)
            emit(o, appointment(r, d, id, start), r->h[d].t);
    }
}

/* ---- posts ------------------------------------------------------------------------------------ */

static const char *post_kind(const Handoff__ThreadPost *p)
{
    return hx_fhir_code_valid(p->kind) ? p->kind : "note";
}

static const char *media_type(const Handoff__Attachment *a)
{
    return a->media_type && *a->media_type ? a->media_type : "application/octet-stream";
}

static json_t *attachment(const Handoff__ThreadPost *p)
{
    const Handoff__Attachment *a = p->attachment;
    char url[96];
    snprintf(url, sizeof url, "Binary/%s", p->post_id);
    json_t *o = json_pack("{s:s, s:I, s:s}", "contentType", media_type(a), "size", (json_int_t)a->data.len, "url", url);
    hx_fhir_set_str(o, "title", a->name);
    return o;
}

static bool has_file(const Handoff__ThreadPost *p)
{
    return p->attachment && p->attachment->data.len && p->attachment->data.data;
}

static json_t *communication(const post_t *pp)
{
    const Handoff__ThreadPost *p = pp->p;
    json_t *o = res_new("Communication", p->post_id);
    json_object_set_new(o, "status", json_string("completed"));
    json_object_set_new(o, "category", json_pack("[o]", concept(HX_FHIR_SYS_POST_KIND, post_kind(p))));
    json_object_set_new(o, "basedOn", json_pack("[o]", hx_fhir_ref("ServiceRequest", p->referral_id)));
    json_object_set_new(o, "partOf", json_pack("[o]", hx_fhir_ref("Task", p->referral_id)));
    json_object_set_new(o, "subject", patient_ref(p->referral_id));
    set_instant(o, "sent", p->at_ms ? p->at_ms : pp->at_ms);
    set_ref(o, "sender", "Organization", p->by);
    json_t *payload = json_array();
    if (p->text && *p->text)
        json_array_append_new(payload, json_pack("{s:s}", "contentString", p->text));
    if (has_file(p))
        json_array_append_new(payload, json_pack("{s:o}", "contentAttachment", attachment(p)));
    set_list(o, "payload", payload);
    if (!strcmp(post_kind(p), "reply") && hx_fhir_id_valid(p->in_reply_to))
        json_object_set_new(o, "inResponseTo", json_pack("[o]", hx_fhir_ref("Communication", p->in_reply_to)));
    add_ext(o, EXT_AWAITING, "valueBoolean", json_boolean(p->awaiting_reply));
    return o;
}

static json_t *document_reference(const post_t *pp)
{
    const Handoff__ThreadPost *p = pp->p;
    json_t *o = res_new("DocumentReference", p->post_id);
    json_object_set_new(o, "status", json_string("current"));
    json_object_set_new(o, "subject", patient_ref(p->referral_id));
    set_instant(o, "date", p->at_ms ? p->at_ms : pp->at_ms);
    json_t *author = json_array();
    add_ref(author, "Organization", p->by);
    set_list(o, "author", author);
    json_object_set_new(o, "context", json_pack("{s:[o]}", "related", hx_fhir_ref("Communication", p->post_id)));
    json_object_set_new(o, "content", json_pack("[{s:o}]", "attachment", attachment(p)));
    return o;
}

static json_t *binary(const post_t *pp)
{
    const Handoff__Attachment *a = pp->p->attachment;
    size_t cap = sodium_base64_ENCODED_LEN(a->data.len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(cap);
    if (!b64)
        return NULL;
    sodium_bin2base64(b64, cap, a->data.data, a->data.len, sodium_base64_VARIANT_ORIGINAL);
    json_t *o = res_new("Binary", pp->p->post_id);
    json_object_set_new(o, "contentType", json_string(media_type(a)));
    json_object_set_new(o, "data", json_string(b64));
    free(b64);
    return o;
}

static void build_post(const post_t *pp, hx_fhir_type_t t, out_t *o)
{
    touch_t tt = {.ms = pp->at_ms, .n = 1};
    if (!wanted(o, pp->p->post_id))
        return;
    if (t == HX_FHIR_COMMUNICATION)
        emit(o, communication(pp), tt);
    else if (t == HX_FHIR_DOCUMENT_REFERENCE && has_file(pp->p))
        emit(o, document_reference(pp), tt);
    else if (t == HX_FHIR_BINARY && has_file(pp->p))
        emit(o, binary(pp), tt);
}

/* ---- the directory ---------------------------------------------------------------------------- */

static const touch_t directory_touch = {.ms = 0, .n = 1};

static json_t *clinic_address(const hx_clinic_t *c)
{
    json_t *a = json_object();
    hx_fhir_set_str(a, "city", c->city);
    hx_fhir_set_str(a, "state", c->province);
    hx_fhir_set_str(a, "postalCode", c->postal_code);
    json_object_set_new(a, "country", json_string("CA"));
    return json_pack("[o]", a);
}

static json_t *organization(const hx_clinic_t *c, const char *id)
{
    json_t *o = res_new("Organization", id);
    json_object_set_new(o, "identifier", json_pack("[{s:s, s:s}]", "system", HX_FHIR_SYS_CLINIC, "value", id));
    if (!c) {                           /* named in a message, not in the directory: only its id */
        json_object_set_new(o, "name", json_string(id));
        return o;
    }
    json_object_set_new(o, "active", json_true());
    json_object_set_new(o, "name", json_string(c->name[0] ? c->name : id));
    json_object_set_new(o, "address", clinic_address(c));
    return o;
}

static json_t *location(const hx_clinic_t *c, const char *id)
{
    json_t *o = res_new("Location", id);
    json_object_set_new(o, "name", json_string(c && c->name[0] ? c->name : id));
    set_ref(o, "managingOrganization", "Organization", id);
    if (!c)
        return o;
    json_object_set_new(o, "status", json_string("active"));
    json_t *addr = clinic_address(c);
    json_object_set_new(o, "address", json_incref(json_array_get(addr, 0)));
    json_decref(addr);
    if (c->located)
        json_object_set_new(o, "position", json_pack("{s:f, s:f}", "longitude", c->lon, "latitude", c->lat));
    if (c->zoned && c->tz)
        add_ext(o, EXT_TZ, "valueCode", code_value(hx_tz_name(c->tz)));
    return o;
}

static json_t *therapist_practitioner(const hx_therapist_t *t, const char *id, const char *name)
{
    json_t *o = res_new("Practitioner", id);
    json_t *ids = json_array();
    json_array_append_new(ids, json_pack("{s:s, s:s}", "system", HX_FHIR_SYS_THERAPIST, "value", id));
    if (t) {
        char body[32] = "";
        const char *sp = strchr(t->registration, ' ');
        if (sp && (size_t)(sp - t->registration) < sizeof body) {
            memcpy(body, t->registration, (size_t)(sp - t->registration));
            body[sp - t->registration] = '\0';
            add_registration(ids, body, sp + 1);
        }
    }
    json_object_set_new(o, "identifier", ids);
    const char *n = t ? t->name : name;
    if (n && *n)
        json_object_set_new(o, "name", json_pack("[{s:s}]", "text", n));
    json_t *langs = json_array();
    for (size_t i = 0; t && i < t->n_languages; i++)
        if (hx_fhir_code_valid(t->languages[i]))
            json_array_append_new(langs, json_pack("{s:[{s:s, s:s}]}", "coding", "system", SYS_LANG, "code",
                                                   t->languages[i]));
    set_list(o, "communication", langs);
    return o;
}

static void hhmmss(uint16_t minutes, char out[16])
{
    if (minutes >= 24 * 60)
        snprintf(out, 16, "23:59:59");
    else
        snprintf(out, 16, "%02u:%02u:00", (unsigned)(minutes / 60), (unsigned)(minutes % 60));
}

static json_t *therapist_role(const hx_therapist_t *t, const char *id, const char *clinic)
{
    static const char *const days[] = {"", "mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    json_t *o = res_new("PractitionerRole", id);
    json_object_set_new(o, "identifier", json_pack("[{s:s, s:s}]", "system", HX_FHIR_SYS_THERAPIST, "value", id));
    set_ref(o, "practitioner", "Practitioner", id);
    const char *c = t ? t->clinic_id : clinic;
    set_ref(o, "organization", "Organization", c);
    if (hx_fhir_id_valid(c))
        json_object_set_new(o, "location", json_pack("[o]", hx_fhir_ref("Location", c)));
    if (!t)
        return o;
    json_object_set_new(o, "active", json_true());
    json_t *code = discipline_concept(t->discipline);
    if (code)
        json_object_set_new(o, "code", json_pack("[o]", code));
    json_t *hours = json_array();
    for (size_t i = 0; i < t->n_hours; i++) {
        const hx_window_t *w = &t->hours[i];
        if (w->day < 1 || w->day > 7)
            continue;
        char from[16], to[16];
        hhmmss(w->from, from);
        hhmmss(w->to, to);
        json_array_append_new(hours, json_pack("{s:[s], s:s, s:s}", "daysOfWeek", days[w->day], "availableStartTime",
                                               from, "availableEndTime", to));
    }
    set_list(o, "availableTime", hours);
    return o;
}

/* Names a clinic (or a therapist: name, clinic) the messages mention, once. */
static void name_id(json_t *seen, const char *id, const char *name, const char *clinic)
{
    if (!hx_fhir_id_valid(id) || json_object_get(seen, id))
        return;
    json_object_set_new(seen, id, json_pack("{s:s, s:s}", "name", S(name), "clinic", S(clinic)));
}

static void name_booking(json_t *clinics, json_t *therapists, const char *clinic, const char *th, const char *name)
{
    name_id(clinics, clinic, NULL, NULL);
    name_id(therapists, th, name, clinic);
}

/* Every clinic and therapist the view's resources refer to. */
static void named(const hx_fhir_view_t *v, json_t *clinics, json_t *therapists)
{
    name_id(clinics, v->clinic, NULL, NULL);
    for (size_t i = 0; i < v->n_refs; i++) {
        const ref_t *r = v->refs[i];
        name_id(clinics, referring_clinic(v, r), NULL, NULL);
        const Handoff__Preferences *p = r->referral ? r->referral->preferences : NULL;
        for (size_t k = 0; p && k < p->n_clinic_ids; k++)
            name_id(clinics, p->clinic_ids[k], NULL, NULL);
        for (Handoff__Discipline d = 1; d < N_DISC; d++) {
            const hnd_t *x = &r->h[d];
            if (!hnd_visible(r, d))
                continue;
            name_booking(clinics, therapists, x->clinic, x->therapist, x->therapist_name);
            if (x->booking)
                name_booking(clinics, therapists, x->booking->clinic_id, x->booking->therapist_id,
                             x->booking->therapist_name);
        }
    }
    for (size_t i = 0; i < v->n_posts; i++)
        name_id(clinics, v->posts[i].p->by, NULL, NULL);
}

static void build_directory(const hx_fhir_view_t *v, hx_fhir_type_t t, out_t *o)
{
    const hx_clinic_t *cs = NULL;
    const hx_therapist_t *ts = NULL;
    size_t nc = v->dir ? hx_directory_clinics(v->dir, &cs) : 0;
    size_t nt = v->dir ? hx_directory_therapists(v->dir, &ts) : 0;
    bool clinic_type = t == HX_FHIR_ORGANIZATION || t == HX_FHIR_LOCATION;
    for (size_t i = 0; clinic_type && i < nc; i++)
        if (hx_fhir_id_valid(cs[i].id) && wanted(o, cs[i].id))
            emit(o, t == HX_FHIR_ORGANIZATION ? organization(&cs[i], cs[i].id) : location(&cs[i], cs[i].id),
                 directory_touch);
    for (size_t i = 0; !clinic_type && i < nt; i++)
        if (hx_fhir_id_valid(ts[i].id) && wanted(o, ts[i].id))
            emit(o, t == HX_FHIR_PRACTITIONER ? therapist_practitioner(&ts[i], ts[i].id, NULL)
                                              : therapist_role(&ts[i], ts[i].id, NULL),
                 directory_touch);
    json_t *clinics = json_object(), *therapists = json_object();
    named(v, clinics, therapists);
    const char *id;
    json_t *x;
    json_object_foreach(clinic_type ? clinics : therapists, id, x) {
        bool in_dir = v->dir && (clinic_type ? (const void *)hx_directory_clinic(v->dir, id)
                                             : (const void *)hx_directory_therapist(v->dir, id));
        if (in_dir || !wanted(o, id))
            continue;
        const char *name = json_string_value(json_object_get(x, "name"));
        const char *clinic = json_string_value(json_object_get(x, "clinic"));
        if (t == HX_FHIR_ORGANIZATION)
            emit(o, organization(NULL, id), directory_touch);
        else if (t == HX_FHIR_LOCATION)
            emit(o, location(NULL, id), directory_touch);
        else if (t == HX_FHIR_PRACTITIONER)
            emit(o, therapist_practitioner(NULL, id, name), directory_touch);
        else
            emit(o, therapist_role(NULL, id, clinic), directory_touch);
    }
    json_decref(clinics);
    json_decref(therapists);
}

/* ---- reading the view ------------------------------------------------------------------------- */

static void build(const hx_fhir_view_t *v, hx_fhir_type_t t, out_t *o)
{
    switch (t) {
    case HX_FHIR_ORGANIZATION:
    case HX_FHIR_LOCATION:
        build_directory(v, t, o);
        return;
    case HX_FHIR_PRACTITIONER:
    case HX_FHIR_PRACTITIONER_ROLE:
        build_directory(v, t, o);
        break;
    case HX_FHIR_COMMUNICATION:
    case HX_FHIR_DOCUMENT_REFERENCE:
    case HX_FHIR_BINARY:
        for (size_t i = 0; i < v->n_posts; i++)
            build_post(&v->posts[i], t, o);
        return;
    default:
        break;
    }
    for (size_t i = 0; i < v->n_refs; i++)
        build_referral(v, v->refs[i], t, o);
}

static int newest_first(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms > y->ms ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x->res, "id")), json_string_value(json_object_get(y->res, "id")));
}

static void out_free(out_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        json_decref(o->v[i].res);
    free(o->v);
}

json_t *hx_fhir_view_all(const hx_fhir_view_t *v, hx_fhir_type_t t)
{
    if (!v || (unsigned)t >= HX_FHIR_TYPE_COUNT)
        return NULL;
    out_t o = {0};
    build(v, t, &o);
    json_t *a = json_array();
    if (o.oom || !a) {
        out_free(&o);
        json_decref(a);
        return NULL;
    }
    if (o.n)
        qsort(o.v, o.n, sizeof *o.v, newest_first);
    for (size_t i = 0; i < o.n; i++)
        json_array_append_new(a, o.v[i].res);
    free(o.v);
    return a;
}

json_t *hx_fhir_view_read(const hx_fhir_view_t *v, hx_fhir_type_t t, const char *id)
{
    if (!v || (unsigned)t >= HX_FHIR_TYPE_COUNT || !hx_fhir_id_valid(id))
        return NULL;
    out_t o = {.want = id};
    build(v, t, &o);
    json_t *res = o.n && !o.oom ? json_incref(o.v[0].res) : NULL;
    out_free(&o);
    return res;
}

const char *hx_fhir_task_referral(const hx_fhir_view_t *v, const char *task_id, Handoff__Discipline *d)
{
    if (d)
        *d = 0;
    for (size_t i = 0; v && task_id && i < v->n_refs; i++) {
        const ref_t *r = v->refs[i];
        size_t n = strlen(r->rid);
        if (strncmp(task_id, r->rid, n) != 0)
            continue;
        if (!task_id[n])
            return r->rid;
        Handoff__Discipline k = task_id[n] == '-' ? hx_fhir_discipline_from_code(task_id + n + 1) : 0;
        if (k && k < N_DISC && hnd_visible(r, k)) {
            if (d)
                *d = k;
            return r->rid;
        }
    }
    return NULL;
}

bool hx_fhir_view_sent(const hx_fhir_view_t *v, const char *referral_id)
{
    const ref_t *r = v ? ref_of(v, referral_id) : NULL;
    return r && r->sent;
}

bool hx_fhir_view_holds(const hx_fhir_view_t *v, const char *referral_id, Handoff__Discipline d)
{
    const ref_t *r = v ? ref_of(v, referral_id) : NULL;
    if (!r)
        return false;
    for (Handoff__Discipline k = 1; k < N_DISC; k++)
        if ((!d || d == k) && r->h[k].own)
            return true;
    return false;
}
