/* Unit: search over a clinic's view (hx_fhir_search) — harbour sent two referrals (one booked
 * at northpoint and accepted there, one on the wait list), received a handoff of a third from
 * eastgate, and its care thread holds a question with a file. Every parameter of every type,
 * date prefixes and precision, comma-or and repeated-and, modifiers, _include (each resource
 * once, never one of the matches), _sort, and the refusals of an unknown parameter or a bad
 * value. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_test.h"
#include "hx_fhir.h"
#include "hx_schedule.h"

#define R1 "R-7K3M9Q2W4X6Z8B1C"         /* sent, booked at northpoint, accepted */
#define R2 "R-5H8J2N4P6R8T0V3D"         /* sent, on hold */
#define R3 "R-9A1B3C5D7E9F2G4H"         /* received from eastgate */
#define POST "P-00112233445566ff"

/* ---- the clinic's messages ------------------------------------------------------------------ */

static uint64_t at(const char *instant)
{
    uint64_t ms;
    cr_assert_eq(hx_fhir_parse_instant(instant, &ms), 0, "%s", instant);
    return ms;
}

static Handoff__Referral *referral(const char *rid, const char *ref, const char *from, const char *given,
                                   const char *date, Handoff__Priority prio)
{
    Handoff__Patient p = HANDOFF__PATIENT__INIT;
    p.given_name = (char *)given;
    p.family_name = "Example";
    p.birth_date = "1980-01-01";
    p.phone = "905 555 0101";
    p.health_card = "1234-567-890";
    Handoff__Referrer f = HANDOFF__REFERRER__INIT;
    isabel(&f, from);
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = (char *)rid;
    r.ref = (char *)ref;
    r.referring_clinic = (char *)from;
    r.patient = &p;
    r.referrer = &f;
    r.reason = "knee pain";
    r.priority = prio;
    r.consent = HANDOFF__CONSENT__CONSENT_GIVEN;
    r.referral_date = (char *)date;
    return copy(&r.base);
}

static Handoff__StatusUpdate *update(const char *rid, const char *ref, Handoff__TaskStatus s, const char *event,
                                     Handoff__HandoffStatus *h, Handoff__Booking *b)
{
    Handoff__HandoffStatus *hs[] = {h};
    Handoff__Booking *bs[] = {b};
    Handoff__StatusUpdate u = HANDOFF__STATUS_UPDATE__INIT;
    u.referral_id = (char *)rid;
    u.ref = (char *)ref;
    u.status = s;
    u.event = (char *)event;
    u.handoffs = hs;
    u.n_handoffs = h ? 1 : 0;
    u.bookings = bs;
    u.n_bookings = b ? 1 : 0;
    u.by = "scheduling";
    return copy(&u.base);
}

static const char *directory_json =
    "{\"version\": 2, \"time_zone\": \"America/Toronto\","
    " \"clinics\": ["
    "  {\"id\": \"northpoint\", \"name\": \"Northpoint Physiotherapy\", \"city\": \"Toronto\", \"province\": \"ON\"},"
    "  {\"id\": \"harbour\", \"name\": \"Harbour Family Health\", \"city\": \"Hamilton\", \"province\": \"ON\"},"
    "  {\"id\": \"eastgate\", \"name\": \"Eastgate Health Collective\", \"city\": \"Ottawa\", \"province\": \"ON\"}],"
    " \"therapists\": ["
    "  {\"id\": \"t-amira\", \"name\": \"Amira Haddad\", \"discipline\": \"physiotherapy\", \"registration\": \"CPO 14523\","
    "   \"clinic_id\": \"northpoint\", \"languages\": [\"en\"], \"virtual\": true,"
    "   \"hours\": [{\"day\": 1, \"from\": \"08:00\", \"to\": \"16:00\"}]},"
    "  {\"id\": \"t-hana\", \"name\": \"Hana Sato\", \"discipline\": \"massage_therapy\", \"registration\": \"CMTO 27755\","
    "   \"clinic_id\": \"harbour\", \"languages\": [\"en\"], \"virtual\": false,"
    "   \"hours\": [{\"day\": 5, \"from\": \"12:00\", \"to\": \"20:00\"}]}]}";

static hx_directory_t *dir;
static hx_fhir_view_t *view;

static void build(void)
{
    hx_errors_t errs = {0};
    dir = hx_directory_parse(directory_json, &errs);
    cr_assert_not_null(dir);
    view = hx_fhir_view_new("harbour", dir);
    cr_assert_not_null(view);

    /* R1: sent 2026-11-18, booked at northpoint, accepted there 2026-11-20 */
    cr_assert_eq(hx_fhir_view_add_sent(view, R1, "HB-1",
                                       referral(R1, "HB-1", "harbour", "Ada", "2026-11-18",
                                                HANDOFF__PRIORITY__PRIORITY_URGENT),
                                       at("2026-11-18T14:00:00Z")), 0);
    Handoff__Booking b1 = booking(R1, PT, "northpoint", "t-amira", "2026-11-24T14:00Z");
    Handoff__HandoffStatus h1 = HANDOFF__HANDOFF_STATUS__INIT;
    h1.discipline = PT;
    h1.status = ST(READY);
    h1.clinic_id = "northpoint";
    h1.therapist_id = "t-amira";
    h1.event = "book";
    cr_assert_eq(hx_fhir_view_add_status(view, update(R1, "HB-1", ST(READY), "book", &h1, &b1),
                                         at("2026-11-19T09:00:00Z")), 0);
    h1.status = ST(ACCEPTED);
    h1.event = "accept";
    cr_assert_eq(hx_fhir_view_add_status(view, update(R1, "HB-1", ST(ACCEPTED), "accept", &h1, &b1),
                                         at("2026-11-20T10:30:00Z")), 0);

    /* R2: sent 2026-11-21, on the wait list */
    cr_assert_eq(hx_fhir_view_add_sent(view, R2, "HB-2",
                                       referral(R2, "HB-2", "harbour", "Bruno", "2026-11-21",
                                                HANDOFF__PRIORITY__PRIORITY_ROUTINE),
                                       at("2026-11-21T08:00:00Z")), 0);
    Handoff__HandoffStatus h2 = HANDOFF__HANDOFF_STATUS__INIT;
    h2.discipline = PT;
    h2.status = ST(ON_HOLD);
    h2.event = "hold";
    h2.reason = "no slot";
    cr_assert_eq(hx_fhir_view_add_status(view, update(R2, "HB-2", ST(ON_HOLD), "hold", &h2, NULL),
                                         at("2026-11-21T08:05:00Z")), 0);

    /* R3: a massage handoff from eastgate, booked with harbour's t-hana */
    Handoff__Booking b3 = booking(R3, MT, "harbour", "t-hana", "2026-11-27T17:00Z");
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = R3;
    h.referral = referral(R3, "EG-7", "eastgate", "Chloe", "2026-11-22", HANDOFF__PRIORITY__PRIORITY_ASAP);
    h.booking = &b3;
    Handoff__Handoff *hc = copy(&h.base);
    handoff__referral__free_unpacked(h.referral, NULL);
    cr_assert_eq(hx_fhir_view_add_handoff(view, hc, at("2026-11-22T12:00:00Z")), 0);

    /* a question on R3 from eastgate, with a file */
    Handoff__Attachment a;
    png_file(&a, "knee.png");
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = R3;
    p.post_id = POST;
    p.kind = "question";
    p.by = "eastgate";
    p.at_ms = at("2026-11-23T16:00:00Z");
    p.text = "Any imaging?";
    p.awaiting_reply = true;
    p.asked_by = "eastgate";
    p.attachment = &a;
    cr_assert_eq(hx_fhir_view_add_post(view, copy(&p.base), p.at_ms), 0);
}

static void teardown(void)
{
    hx_fhir_view_destroy(&view);
    hx_directory_destroy(&dir);
}

TestSuite(fhir_search, .init = build, .fini = teardown);

/* ---- helpers -------------------------------------------------------------------------------- */

/* "Type/id Type/id" of an array of resources, in order. */
static const char *ids(const json_t *a)
{
    static char buf[2048];
    size_t o = 0;
    buf[0] = '\0';
    size_t i;
    json_t *r;
    json_array_foreach(a, i, r)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s/%s", i ? " " : "",
                              json_string_value(json_object_get(r, "resourceType")),
                              json_string_value(json_object_get(r, "id")));
    return buf;
}

/* Searches with "name=value&name=value" (no URL encoding here); expects the matches' ids in
 * want (space-separated "id"s without types, in order) and, when inc is not NULL, the
 * included ones ("Type/id", in order). */
static void search(hx_fhir_type_t t, const char *query, const char *want, const char *inc)
{
    char q[512];
    snprintf(q, sizeof q, "%s", query);
    hx_fhir_param_t p[8];
    size_t n = 0;
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv && n < 8; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        cr_assert_not_null(eq);
        *eq = '\0';
        p[n].name = kv;
        p[n++].value = eq + 1;
    }
    json_t *m = NULL, *i = NULL, *oo = NULL;
    int rc = hx_fhir_search(view, t, p, n, &m, &i, &oo);
    cr_assert_eq(rc, 0, "%s?%s refused: %s", hx_fhir_type_name(t), query, dump(oo));
    cr_assert_null(oo);
    char got[2048] = "";
    size_t o = 0, k;
    json_t *r;
    json_array_foreach(m, k, r)
        o += (size_t)snprintf(got + o, sizeof got - o, "%s%s", k ? " " : "", json_string_value(json_object_get(r, "id")));
    cr_expect_str_eq(got, want, "%s?%s\n got %s\nwant %s", hx_fhir_type_name(t), query, got, want);
    if (inc)
        cr_expect_str_eq(ids(i), inc, "%s?%s included\n got %s\nwant %s", hx_fhir_type_name(t), query, ids(i), inc);
    json_decref(m);
    json_decref(i);
}

static void refused(hx_fhir_type_t t, const char *name, const char *value, const char *code)
{
    hx_fhir_param_t p = {name, value};
    json_t *m = (json_t *)1, *i = (json_t *)1, *oo = NULL;
    cr_assert_eq(hx_fhir_search(view, t, &p, 1, &m, &i, &oo), -1, "%s?%s=%s was taken", hx_fhir_type_name(t), name,
                 value);
    cr_expect_null(m);
    cr_expect_null(i);
    json_t *issue = json_array_get(json_object_get(oo, "issue"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(issue, "code")), code, "%s", dump(oo));
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(issue, "expression"), 0)), name, "%s",
                     dump(oo));
    json_decref(oo);
}

/* ---- Task ----------------------------------------------------------------------------------- */

Test(fhir_search, task_parameters)
{
    /* every Task, most recently updated first */
    search(HX_FHIR_TASK, "", R3 " " R3 "-massage-therapy " R2 " " R2 "-physiotherapy " R1 " " R1 "-physiotherapy",
           NULL);
    search(HX_FHIR_TASK, "owner=Organization/northpoint", R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "owner=harbour", R3 "-massage-therapy", NULL);
    search(HX_FHIR_TASK, "owner=Organization/eastgate", "", NULL);
    search(HX_FHIR_TASK, "status=accepted", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "status=on-hold,accepted", R2 " " R2 "-physiotherapy " R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "status:not=accepted", R3 " " R3 "-massage-therapy " R2 " " R2 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "part-of=Task/" R1, R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "part-of=" R2, R2 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "based-on=ServiceRequest/" R2, R2 " " R2 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "patient=Patient/" R1 "-patient", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "patient=" R1 "-patient", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "code=urn:handoff:task|referral", R3 " " R2 " " R1, NULL);
    search(HX_FHIR_TASK, "code=handoff", R3 "-massage-therapy " R2 "-physiotherapy " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "code=urn:other|handoff", "", NULL);
    search(HX_FHIR_TASK, "business-status=on-hold", R2 " " R2 "-physiotherapy", NULL);
    /* and: both must hold */
    search(HX_FHIR_TASK, "code=handoff&status=accepted", R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_id=" R1 "," R2, R2 " " R1, NULL);
}

Test(fhir_search, last_updated_prefixes_and_precision)
{
    /* R1's Tasks last moved 2026-11-20T10:30Z, R2's 2026-11-21T08:05Z, R3's 2026-11-22T12:00Z */
    search(HX_FHIR_TASK, "_lastUpdated=2026-11-20", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=eq2026-11-20", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=2026-11-20T10:30", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=2026-11-20T10:31", "", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=2026-11-20T05:30:00-05:00", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=2026-11", R3 " " R3 "-massage-therapy " R2 " " R2 "-physiotherapy " R1 " " R1
                                                 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=2025", "", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=ne2026-11-20", R3 " " R3 "-massage-therapy " R2 " " R2 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=gt2026-11-21", R3 " " R3 "-massage-therapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=ge2026-11-21", R3 " " R3 "-massage-therapy " R2 " " R2 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=lt2026-11-21", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=le2026-11-21", R2 " " R2 "-physiotherapy " R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=sa2026-11-21", R3 " " R3 "-massage-therapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=eb2026-11-21", R1 " " R1 "-physiotherapy", NULL);
    /* an instant to the millisecond: R1's Tasks moved at exactly this one */
    search(HX_FHIR_TASK, "_lastUpdated=gt2026-11-20T10:30:00.000Z", R3 " " R3 "-massage-therapy " R2 " " R2
                                                                    "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=ge2026-11-20T10:30:00.000Z", R3 " " R3 "-massage-therapy " R2 " " R2
                                                                    "-physiotherapy " R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=lt2026-11-20T10:30:00.000Z", "", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=le2026-11-20T10:30:00.000Z", R1 " " R1 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=sa2026-11-20T10:30:00.000Z", R3 " " R3 "-massage-therapy " R2 " " R2
                                                                    "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=eb2026-11-20T10:30:00.001Z", R1 " " R1 "-physiotherapy", NULL);
    /* repeated: a window */
    search(HX_FHIR_TASK, "_lastUpdated=ge2026-11-21&_lastUpdated=lt2026-11-22", R2 " " R2 "-physiotherapy", NULL);
    search(HX_FHIR_TASK, "_lastUpdated=lt2026-11-20T10:30:00.001Z&_lastUpdated=gt2026-11-20T10:29:59.999Z",
           R1 " " R1 "-physiotherapy", NULL);
}

Test(fhir_search, service_request_parameters)
{
    search(HX_FHIR_SERVICE_REQUEST, "", R3 " " R2 " " R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "requester=Organization/harbour", R2 " " R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "requester=Organization/eastgate", R3, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "requester=PractitionerRole/" R2 "-referrer", R2, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "requester=" R2 "-referrer", R2, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "identifier=urn:handoff:ref|HB-1", R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "identifier=EG-7", R3, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "identifier=urn:handoff:referral-id|" R2, R2, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "identifier=urn:handoff:referral-id|HB-1", "", NULL);
    search(HX_FHIR_SERVICE_REQUEST, "identifier=urn:handoff:ref|", R3 " " R2 " " R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "status=on-hold", R2, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "status=active", R3 " " R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "patient=" R3 "-patient", R3, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "subject=Patient/" R3 "-patient", R3, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "priority=urgent,asap", R3 " " R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "authored=2026-11-21", R2, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "authored=ge2026-11-21", R3 " " R2, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "authored=lt2026-11-21", R1, NULL);
    /* a date is its whole day: the 21st begins before noon of the 21st */
    search(HX_FHIR_SERVICE_REQUEST, "authored=lt2026-11-21T12:00", R2 " " R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "authored=eq2026-11-21T12:00", "", NULL);
}

Test(fhir_search, other_types)
{
    search(HX_FHIR_COMMUNICATION, "based-on=ServiceRequest/" R3, POST, NULL);
    search(HX_FHIR_COMMUNICATION, "based-on=" R1, "", NULL);
    search(HX_FHIR_COMMUNICATION, "part-of=Task/" R3, POST, NULL);
    search(HX_FHIR_COMMUNICATION, "category=urn:handoff:post-kind|question", POST, NULL);
    search(HX_FHIR_COMMUNICATION, "category=note", "", NULL);
    search(HX_FHIR_COMMUNICATION, "sender=Organization/eastgate", POST, NULL);

    search(HX_FHIR_APPOINTMENT, "", R3 "-massage-therapy " R1 "-physiotherapy", NULL);
    search(HX_FHIR_APPOINTMENT, "actor=PractitionerRole/t-amira", R1 "-physiotherapy", NULL);
    search(HX_FHIR_APPOINTMENT, "actor=Location/harbour", R3 "-massage-therapy", NULL);
    search(HX_FHIR_APPOINTMENT, "based-on=" R3, R3 "-massage-therapy", NULL);
    search(HX_FHIR_APPOINTMENT, "status=booked", R3 "-massage-therapy " R1 "-physiotherapy", NULL);
    search(HX_FHIR_APPOINTMENT, "date=2026-11-24", R1 "-physiotherapy", NULL);
    search(HX_FHIR_APPOINTMENT, "date=gt2026-11-25", R3 "-massage-therapy", NULL);

    search(HX_FHIR_ORGANIZATION, "name=north", "northpoint", NULL);
    search(HX_FHIR_ORGANIZATION, "name=HARBOUR", "harbour", NULL);
    search(HX_FHIR_ORGANIZATION, "name:contains=health", "eastgate harbour", NULL);
    search(HX_FHIR_ORGANIZATION, "name:exact=Harbour", "", NULL);
    search(HX_FHIR_ORGANIZATION, "name:exact=Harbour Family Health", "harbour", NULL);
    search(HX_FHIR_ORGANIZATION, "identifier=urn:handoff:clinic|eastgate", "eastgate", NULL);
    search(HX_FHIR_LOCATION, "name=east", "eastgate", NULL);
    search(HX_FHIR_PATIENT, "name=chl", R3 "-patient", NULL);
    search(HX_FHIR_PATIENT, "name=example", R3 "-patient " R2 "-patient " R1 "-patient", NULL);
    search(HX_FHIR_PATIENT, "identifier=urn:handoff:health-card|1234-567-890", R3 "-patient " R2 "-patient " R1
                                                                             "-patient", NULL);
    search(HX_FHIR_PRACTITIONER, "name=amira", "t-amira", NULL);
    search(HX_FHIR_PRACTITIONER, "identifier=urn:handoff:registration:CPO|19877",
           R3 "-referrer " R2 "-referrer " R1 "-referrer", NULL);
    search(HX_FHIR_PRACTITIONER_ROLE, "organization=Organization/northpoint", "t-amira", NULL);
    search(HX_FHIR_PRACTITIONER_ROLE, "specialty=urn:handoff:discipline|massage-therapy", "t-hana", NULL);
    search(HX_FHIR_PRACTITIONER_ROLE, "identifier=urn:handoff:therapist|t-hana", "t-hana", NULL);

    search(HX_FHIR_DOCUMENT_REFERENCE, "related=Communication/" POST, POST, NULL);
    search(HX_FHIR_DOCUMENT_REFERENCE, "subject=" R3 "-patient", POST, NULL);
    search(HX_FHIR_DOCUMENT_REFERENCE, "subject=" R1 "-patient", "", NULL);
}

/* ---- _include and _sort ------------------------------------------------------------------------ */

Test(fhir_search, includes_each_target_once)
{
    search(HX_FHIR_TASK, "code=handoff&_include=Task:owner", R3 "-massage-therapy " R2 "-physiotherapy " R1
                                                             "-physiotherapy",
           "Organization/harbour Organization/northpoint");
    /* part-of names the parents, which are matches here: never included twice */
    search(HX_FHIR_TASK, "_include=Task:part-of&_include=Task:patient&based-on=" R1, R1 " " R1 "-physiotherapy",
           "Patient/" R1 "-patient");
    search(HX_FHIR_TASK, "_id=" R2 "-physiotherapy&_include=Task:part-of&_include=Task:based-on&_include=Task:focus",
           R2 "-physiotherapy", "Task/" R2 " ServiceRequest/" R2);
    search(HX_FHIR_SERVICE_REQUEST, "_id=" R1 "&_include=ServiceRequest:subject&_include=ServiceRequest:requester",
           R1, "Patient/" R1 "-patient PractitionerRole/" R1 "-referrer");
    search(HX_FHIR_APPOINTMENT, "_include=Appointment:actor&_id=" R1 "-physiotherapy", R1 "-physiotherapy",
           "Patient/" R1 "-patient PractitionerRole/t-amira Location/northpoint");
    search(HX_FHIR_COMMUNICATION, "_include=Communication:sender&_include=Communication:based-on", POST,
           "Organization/eastgate ServiceRequest/" R3);
    search(HX_FHIR_PRACTITIONER_ROLE,
           "_id=t-amira&_include=PractitionerRole:practitioner&_include=PractitionerRole:organization"
           "&_include=PractitionerRole:location",
           "t-amira", "Practitioner/t-amira Organization/northpoint Location/northpoint");
    search(HX_FHIR_DOCUMENT_REFERENCE, "_include=DocumentReference:subject", POST, "Patient/" R3 "-patient");
    /* nothing matched, nothing included */
    search(HX_FHIR_TASK, "owner=eastgate&_include=Task:owner", "", "");

    /* an included resource is exactly what a read gives */
    hx_fhir_param_t p[] = {{"_id", R1}, {"_include", "ServiceRequest:subject"}};
    json_t *m, *i, *oo;
    cr_assert_eq(hx_fhir_search(view, HX_FHIR_SERVICE_REQUEST, p, 2, &m, &i, &oo), 0);
    json_t *read = hx_fhir_view_read(view, HX_FHIR_PATIENT, R1 "-patient");
    cr_expect(json_equal(json_array_get(i, 0), read));
    json_decref(read);
    json_decref(m);
    json_decref(i);
}

Test(fhir_search, sort_and_skipped_parameters)
{
    search(HX_FHIR_SERVICE_REQUEST, "_sort=-_lastUpdated", R3 " " R2 " " R1, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "_sort=_lastUpdated", R1 " " R2 " " R3, NULL);
    search(HX_FHIR_SERVICE_REQUEST, "_count=1&_offset=1&_format=json", R3 " " R2 " " R1, NULL);
}

/* ---- refusals ----------------------------------------------------------------------------------- */

Test(fhir_search, refuses_unknown_parameters_and_bad_values)
{
    refused(HX_FHIR_TASK, "foo", "bar", "not-supported");
    refused(HX_FHIR_TASK, "requester", "x", "not-supported");           /* a ServiceRequest parameter */
    refused(HX_FHIR_TASK, "focus", "ServiceRequest/x", "not-supported"); /* only as an _include */
    refused(HX_FHIR_TASK, "status:missing", "true", "not-supported");
    refused(HX_FHIR_TASK, "owner:not", "harbour", "not-supported");
    refused(HX_FHIR_TASK, "_elements", "id", "not-supported");
    refused(HX_FHIR_TASK, "_summary", "count", "not-supported");
    refused(HX_FHIR_TASK, "_revinclude", "Communication:part-of", "not-supported");
    refused(HX_FHIR_TASK, "_sort", "status", "not-supported");
    refused(HX_FHIR_TASK, "_include", "Task:requester", "not-supported");
    refused(HX_FHIR_TASK, "_include", "ServiceRequest:subject", "invalid");
    refused(HX_FHIR_TASK, "_include", "owner", "invalid");
    refused(HX_FHIR_TASK, "_lastUpdated", "yesterday", "invalid");
    refused(HX_FHIR_TASK, "_lastUpdated", "xx2026-11-20", "invalid");
    refused(HX_FHIR_TASK, "_lastUpdated", "2026-02-30", "invalid");
    refused(HX_FHIR_TASK, "owner", "Clinic/harbour", "invalid");
    refused(HX_FHIR_TASK, "owner", "bad id!", "invalid");
    refused(HX_FHIR_TASK, "status", "", "invalid");
    refused(HX_FHIR_TASK, "status", "accepted,", "invalid");
    refused(HX_FHIR_SERVICE_REQUEST, "identifier", "|", "invalid");
    refused(HX_FHIR_APPOINTMENT, "date", "2026-13", "invalid");

    /* one bad parameter among good ones refuses the search */
    hx_fhir_param_t p[] = {{"status", "accepted"}, {"colour", "blue"}};
    json_t *m, *i, *oo;
    cr_expect_eq(hx_fhir_search(view, HX_FHIR_TASK, p, 2, &m, &i, &oo), -1);
    cr_expect_str_eq(json_string_value(json_array_get(
                         json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "expression"), 0)),
                     "colour");
    json_decref(oo);
}
