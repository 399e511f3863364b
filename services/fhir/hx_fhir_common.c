/* hx_fhir_common — what every part of the FHIR mapping shares (see hx_fhir.h): resource type
 * names, ids, instants, OperationOutcome, the directory for programs that cannot include
 * hx_schedule.h, the foci of a received message, and the R4 backport IG's Subscription and
 * notification Bundle. */
#include "hx_fhir.h"
#include "hx_fhir_internal.h"
#include "hx_refjson.h"
#include "hx_schedule.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names, codes, ids ----------------------------------------------------------------------- */

static const char *const type_names[HX_FHIR_TYPE_COUNT] = {
    [HX_FHIR_SERVICE_REQUEST] = "ServiceRequest",
    [HX_FHIR_TASK] = "Task",
    [HX_FHIR_PATIENT] = "Patient",
    [HX_FHIR_PRACTITIONER] = "Practitioner",
    [HX_FHIR_PRACTITIONER_ROLE] = "PractitionerRole",
    [HX_FHIR_ORGANIZATION] = "Organization",
    [HX_FHIR_LOCATION] = "Location",
    [HX_FHIR_APPOINTMENT] = "Appointment",
    [HX_FHIR_COMMUNICATION] = "Communication",
    [HX_FHIR_DOCUMENT_REFERENCE] = "DocumentReference",
    [HX_FHIR_BINARY] = "Binary",
};

const char *hx_fhir_type_name(hx_fhir_type_t t)
{
    return (unsigned)t < HX_FHIR_TYPE_COUNT ? type_names[t] : NULL;
}

hx_fhir_type_t hx_fhir_type_from_name(const char *name)
{
    for (int t = 0; name && t < HX_FHIR_TYPE_COUNT; t++)
        if (strcmp(name, type_names[t]) == 0)
            return (hx_fhir_type_t)t;
    return HX_FHIR_TYPE_COUNT;
}

bool hx_fhir_id_valid(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return false;
    }
    return n >= 1 && n <= 64;
}

bool hx_fhir_code_valid(const char *s)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        bool ws = s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n';
        if (ws && (s[i] != ' ' || i == 0 || !s[i + 1] || s[i + 1] == ' '))
            return false;
    }
    return true;
}

bool hx_fhir_one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; s && list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static const char *const discipline_codes[] = {NULL, "physiotherapy", "massage-therapy", "physician"};

const char *hx_fhir_discipline_code(Handoff__Discipline d)
{
    return (unsigned)d < sizeof discipline_codes / sizeof *discipline_codes ? discipline_codes[d] : NULL;
}

Handoff__Discipline hx_fhir_discipline_from_code(const char *s)
{
    for (size_t d = 1; s && d < sizeof discipline_codes / sizeof *discipline_codes; d++)
        if (strcmp(s, discipline_codes[d]) == 0)
            return (Handoff__Discipline)d;
    return HANDOFF__DISCIPLINE__DISCIPLINE_UNSPECIFIED;
}

const char *hx_fhir_business_status(Handoff__TaskStatus st, const char *event)
{
    if (event && strcmp(event, "decline") == 0)
        return "declined";
    if (event && strcmp(event, "redirect") == 0 && st == HANDOFF__TASK_STATUS__TASK_CANCELLED)
        return "redirected";
    if (st == HANDOFF__TASK_STATUS__TASK_UNSPECIFIED)
        return "submitted";
    return hx_fhir_task_status(st);
}

const char *hx_fhir_task_status(Handoff__TaskStatus st)
{
    if (st <= HANDOFF__TASK_STATUS__TASK_UNSPECIFIED || st > HANDOFF__TASK_STATUS__TASK_ENTERED_IN_ERROR)
        return "requested";
    return hx_status_text(st);
}

json_t *hx_fhir_ref(const char *type, const char *id)
{
    char buf[160];
    snprintf(buf, sizeof buf, "%s/%s", type, id);
    return json_pack("{s:s}", "reference", buf);
}

void hx_fhir_set_str(json_t *o, const char *key, const char *s)
{
    if (o && s && *s)
        json_object_set_new(o, key, json_string(s));
}

/* ---- instants -------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

void hx_fhir_instant(uint64_t ms, char *out, size_t cap)
{
    uint64_t max = UINT64_C(253402300799999);      /* 9999-12-31T23:59:59.999Z */
    if (ms > max)
        ms = max;
    int64_t secs = (int64_t)(ms / 1000);
    int y;
    unsigned m, d;
    civil_from_days(secs / 86400, &y, &m, &d);
    int64_t sod = secs % 86400;
    snprintf(out, cap, "%04d-%02u-%02uT%02d:%02d:%02d.%03uZ", y, m, d, (int)(sod / 3600), (int)(sod / 60 % 60),
             (int)(sod % 60), (unsigned)(ms % 1000));
}

/* n digits at *s into *v (advancing *s); false when they are not digits. */
static bool digits(const char **s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return false;
        *v = *v * 10 + (c - '0');
    }
    *s += n;
    return true;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The time part after 'T': HH:MM[:SS[.fff...]] and a zone (Z, +hh:mm, -hh:mm, or none: UTC).
 * Adds its milliseconds from midnight (and the zone's shift) to *ms. */
static int parse_time(const char *s, int64_t *ms)
{
    int hh, mm, ss = 0, frac = 0;
    if (!digits(&s, 2, &hh) || *s++ != ':' || !digits(&s, 2, &mm) || hh > 23 || mm > 59)
        return -1;
    if (*s == ':') {
        s++;
        if (!digits(&s, 2, &ss) || ss > 60)
            return -1;
        if (*s == '.') {
            s++;
            int n = 0;
            for (; *s >= '0' && *s <= '9'; s++, n++)
                if (n < 3)
                    frac = frac * 10 + (*s - '0');
            if (n == 0)
                return -1;
            for (; n < 3; n++)
                frac *= 10;
        }
    }
    int64_t t = ((int64_t)hh * 3600 + mm * 60 + (ss > 59 ? 59 : ss)) * 1000 + frac;
    if (*s == 'Z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1, oh, om;
        if (!digits(&s, 2, &oh) || *s++ != ':' || !digits(&s, 2, &om) || oh > 14 || om > 59)
            return -1;
        t -= sign * ((int64_t)oh * 3600 + om * 60) * 1000;
    }
    if (*s)
        return -1;
    *ms += t;
    return 0;
}

/* A date, year-month or year at *s (advancing it); false when it is not one. */
static bool parse_date(const char **s, int *y, int *m, int *d)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    *m = *d = 1;
    if (!digits(s, 4, y) || *y < 1)
        return false;
    if (**s == '-') {
        (*s)++;
        if (!digits(s, 2, m) || *m < 1 || *m > 12)
            return false;
        if (**s == '-') {
            (*s)++;
            if (!digits(s, 2, d) || *d < 1 || (unsigned)*d > mdays[*m - 1] + (*m == 2 && leap(*y)))
                return false;
        }
    }
    return true;
}

bool hx_fhir_date_valid(const char *s)
{
    int y, m, d;
    return s && strlen(s) == 10 && parse_date(&s, &y, &m, &d) && !*s;
}

int hx_fhir_parse_instant(const char *s, uint64_t *ms)
{
    int y, m, d;
    if (!s || !parse_date(&s, &y, &m, &d))
        return -1;
    int64_t t = days_from_civil(y, (unsigned)m, (unsigned)d) * 86400000;
    if (*s == 'T') {
        if (parse_time(s + 1, &t) != 0)
            return -1;
    } else if (*s) {
        return -1;
    }
    if (t < 0)
        return -1;
    *ms = (uint64_t)t;
    return 0;
}

/* ---- OperationOutcome ------------------------------------------------------------------------ */

void hx_fhir_outcome_add(json_t *oo, const char *severity, const char *code, const char *diagnostics,
                         const char *expression)
{
    json_t *issues = json_object_get(oo, "issue");
    if (!json_is_array(issues)) {
        issues = json_array();
        if (json_object_set_new(oo, "issue", issues) != 0)
            return;
    }
    json_t *i = json_object();
    hx_fhir_set_str(i, "severity", hx_fhir_code_valid(severity) ? severity : "error");
    hx_fhir_set_str(i, "code", hx_fhir_code_valid(code) ? code : "processing");
    hx_fhir_set_str(i, "diagnostics", diagnostics);
    if (expression && *expression)
        json_object_set_new(i, "expression", json_pack("[s]", expression));
    json_array_append_new(issues, i);
}

json_t *hx_fhir_outcome(const char *severity, const char *code, const char *diagnostics, const char *expression)
{
    json_t *oo = json_pack("{s:s}", "resourceType", "OperationOutcome");
    if (oo)
        hx_fhir_outcome_add(oo, severity, code, diagnostics, expression);
    return oo;
}

/* ---- the directory --------------------------------------------------------------------------- */

hx_directory_t *hx_fhir_directory_load(const char *path, char *err, size_t cap)
{
    if (cap)
        err[0] = '\0';
    if (!path || !*path) {
        snprintf(err, cap, "directory: no file named");
        return NULL;
    }
    hx_errors_t *errs = calloc(1, sizeof *errs);
    if (!errs) {
        snprintf(err, cap, "directory: out of memory");
        return NULL;
    }
    hx_directory_t *d = hx_directory_load(path, errs);
    if (!d) {
        char why[1024];
        if (errs->count)
            hx_errors_join(errs, why, sizeof why);
        else
            snprintf(why, sizeof why, "cannot be read");
        snprintf(err, cap, "directory %s: %s", path, why);
    }
    free(errs);
    return d;
}

void hx_fhir_directory_free(hx_directory_t **d)
{
    hx_directory_destroy(d);
}

/* ---- foci of a received message ---------------------------------------------------------------- */

static size_t add_focus(hx_fhir_focus_t *out, size_t n, size_t cap, const char *topic, hx_fhir_type_t type,
                        const char *rid, Handoff__Discipline d)
{
    const char *dc = hx_fhir_discipline_code(d);
    if (n >= cap || !hx_fhir_id_valid(rid) || (type == HX_FHIR_TASK && !dc))
        return n;
    hx_fhir_focus_t f = {.topic = topic, .type = type};
    if (type == HX_FHIR_TASK)
        snprintf(f.id, sizeof f.id, "%s-%s", rid, dc);
    else
        snprintf(f.id, sizeof f.id, "%s", rid);
    for (size_t i = 0; i < n; i++)
        if (out[i].type == f.type && strcmp(out[i].id, f.id) == 0)
            return n;
    out[n] = f;
    return n + 1;
}

static size_t status_foci(const char *clinic, bool sent, const Handoff__StatusUpdate *s, hx_fhir_focus_t *out,
                          size_t cap)
{
    size_t n = 0;
    if (s->refused)
        return 0;                       /* a refused change changed nothing */
    for (size_t i = 0; i < s->n_handoffs; i++) {
        const Handoff__HandoffStatus *h = s->handoffs[i];
        if (h && strcmp(h->clinic_id, clinic) == 0)
            n = add_focus(out, n, cap, HX_FHIR_TOPIC_TASK, HX_FHIR_TASK, s->referral_id, h->discipline);
    }
    for (size_t i = 0; !s->n_handoffs && i < s->n_bookings; i++) {     /* older updates */
        const Handoff__Booking *b = s->bookings[i];
        if (b && strcmp(b->clinic_id, clinic) == 0)
            n = add_focus(out, n, cap, HX_FHIR_TOPIC_TASK, HX_FHIR_TASK, s->referral_id, b->discipline);
    }
    if (sent)
        n = add_focus(out, n, cap, HX_FHIR_TOPIC_SERVICE_REQUEST, HX_FHIR_SERVICE_REQUEST, s->referral_id, 0);
    return n;
}

size_t hx_fhir_message_foci(const char *clinic, bool sent, const char *type, const uint8_t *payload, size_t len,
                            hx_fhir_focus_t *out, size_t cap)
{
    size_t n = 0;
    if (!clinic || !type || (!payload && len) || !out)
        return 0;
    if (strcmp(type, "handoff.Handoff") == 0) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, len, payload);
        if (h && h->booking && strcmp(h->booking->clinic_id, clinic) == 0)
            n = add_focus(out, n, cap, HX_FHIR_TOPIC_TASK, HX_FHIR_TASK, h->referral_id, h->booking->discipline);
        handoff__handoff__free_unpacked(h, NULL);
    } else if (strcmp(type, "handoff.StatusUpdate") == 0) {
        Handoff__StatusUpdate *s = handoff__status_update__unpack(NULL, len, payload);
        if (s)
            n = status_foci(clinic, sent, s, out, cap);
        handoff__status_update__free_unpacked(s, NULL);
    }
    return n;
}

/* ---- subscriptions (R4 backport) ---------------------------------------------------------------- */

#define BACKPORT "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"

static const char *payload_code(hx_fhir_payload_t p)
{
    switch (p) {
    case HX_FHIR_PAYLOAD_FULL:
        return "full-resource";
    case HX_FHIR_PAYLOAD_EMPTY:
        return "empty";
    default:
        return "id-only";
    }
}

static const char *sub_status(const hx_fhir_sub_t *s)
{
    static const char *const ok[] = {"requested", "active", "error", "off"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(s->status, ok[i]) == 0)
            return ok[i];
    return "requested";
}

json_t *hx_fhir_subscription_json(const hx_fhir_sub_t *s)
{
    if (!s)
        return NULL;
    json_t *ch = json_pack("{s:s, s:s, s:{s:[{s:s, s:s}]}}", "type", "rest-hook", "payload", "application/fhir+json",
                           "_payload", "extension", "url", BACKPORT "backport-payload-content", "valueCode",
                           payload_code(s->payload));
    hx_fhir_set_str(ch, "endpoint", s->endpoint);
    json_t *o = json_pack("{s:s}", "resourceType", "Subscription");
    if (!o || !ch) {
        json_decref(o);
        json_decref(ch);
        return NULL;
    }
    if (hx_fhir_id_valid(s->id))
        json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "status", json_string(sub_status(s)));
    json_object_set_new(o, "reason", json_string(s->reason[0] ? s->reason : "notifications of the topic"));
    json_object_set_new(o, "criteria", json_string(s->topic[0] ? s->topic : HX_FHIR_TOPIC_TASK));
    json_object_set_new(o, "channel", ch);       /* the header stays the server's: never shown */
    if (s->end_ms) {
        char at[32];
        hx_fhir_instant(s->end_ms, at, sizeof at);
        json_object_set_new(o, "end", json_string(at));
    }
    hx_fhir_set_str(o, "error", s->error);
    return o;
}

/* A hash of the subscription, the notification's type, number and time: the Bundle's id and
 * the status entry's urn:uuid, the same for the same notification. */
static void notification_ids(const hx_fhir_sub_t *s, const char *type, uint64_t number, uint64_t at_ms,
                             char id[40], char uuid[48])
{
    char buf[256];
    unsigned char h[16];
    int n = snprintf(buf, sizeof buf, "%s\n%s\n%" PRIu64 "\n%" PRIu64, s->id, type, number, at_ms);
    crypto_generichash(h, sizeof h, (const unsigned char *)buf, (size_t)(n < 0 ? 0 : n), NULL, 0);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(id, 40, "N-%s", hex);
    snprintf(uuid, 48, "urn:uuid:%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 13, hex + 17, hex + 20);
}

static json_t *param(const char *name, const char *vkey, json_t *value)
{
    return json_pack("{s:s, s:o}", "name", name, vkey, value);
}

static json_t *event_param(const hx_fhir_sub_t *s, uint64_t number, uint64_t at_ms, const hx_fhir_focus_t *focus)
{
    char num[24], at[32];
    snprintf(num, sizeof num, "%" PRIu64, number);
    hx_fhir_instant(at_ms, at, sizeof at);
    json_t *parts = json_array();
    json_array_append_new(parts, param("event-number", "valueString", json_string(num)));
    json_array_append_new(parts, param("timestamp", "valueInstant", json_string(at)));
    const char *tn = focus ? hx_fhir_type_name(focus->type) : NULL;
    if (s->payload != HX_FHIR_PAYLOAD_EMPTY && tn && hx_fhir_id_valid(focus->id))
        json_array_append_new(parts, param("focus", "valueReference", hx_fhir_ref(tn, focus->id)));
    return json_pack("{s:s, s:o}", "name", "notification-event", "part", parts);
}

json_t *hx_fhir_notification(const hx_fhir_sub_t *s, const char *base, const char *type, uint64_t event_number,
                             uint64_t at_ms, const hx_fhir_focus_t *focus, const json_t *focus_resource)
{
    static const char *const types[] = {"handshake", "heartbeat", "event-notification", "query-status",
                                        "query-event", NULL};
    if (!s || !hx_fhir_one_of(type, types) || !hx_fhir_id_valid(s->id))
        return NULL;
    bool event = strcmp(type, "event-notification") == 0;
    char id[40], uuid[48], at[32], since[24], url[128];
    notification_ids(s, type, event_number, at_ms, id, uuid);
    hx_fhir_instant(at_ms, at, sizeof at);
    snprintf(since, sizeof since, "%" PRIu64, event && event_number > s->events ? event_number : s->events);
    json_t *params = json_array();
    json_array_append_new(params, param("subscription", "valueReference", hx_fhir_ref("Subscription", s->id)));
    json_array_append_new(params,
                          param("topic", "valueCanonical", json_string(s->topic[0] ? s->topic : HX_FHIR_TOPIC_TASK)));
    json_array_append_new(params, param("status", "valueCode", json_string(sub_status(s))));
    json_array_append_new(params, param("type", "valueCode", json_string(type)));
    json_array_append_new(params, param("events-since-subscription-start", "valueString", json_string(since)));
    if (event)
        json_array_append_new(params, event_param(s, event_number, at_ms, focus));
    json_t *status = json_pack("{s:s, s:{s:[s]}, s:o}", "resourceType", "Parameters", "meta", "profile",
                               BACKPORT "backport-subscription-status-r4", "parameter", params);
    snprintf(url, sizeof url, "Subscription/%s/$status", s->id);
    json_t *entries = json_array();
    json_array_append_new(entries, json_pack("{s:s, s:o, s:{s:s, s:s}, s:{s:s}}", "fullUrl", uuid, "resource", status,
                                             "request", "method", "GET", "url", url, "response", "status", "200"));
    const char *tn = focus ? hx_fhir_type_name(focus->type) : NULL;
    if (event && s->payload == HX_FHIR_PAYLOAD_FULL && focus_resource && tn && hx_fhir_id_valid(focus->id)) {
        char full[768], rel[160];
        snprintf(full, sizeof full, "%s/%s/%s", base && *base ? base : "", tn, focus->id);
        snprintf(rel, sizeof rel, "%s/%s", tn, focus->id);
        json_array_append_new(entries, json_pack("{s:s, s:O, s:{s:s, s:s}, s:{s:s}}", "fullUrl",
                                                 base && *base ? full : rel, "resource", focus_resource, "request",
                                                 "method", "PUT", "url", rel, "response", "status", "200"));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "resourceType", "Bundle", "id", id, "type", "history", "timestamp", at,
                     "entry", entries);
}
