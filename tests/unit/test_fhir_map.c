/* Unit: the FHIR mapping's outbound half (hx_fhir.h) — a clinic's messages fed into a view
 * and read back as R4 resources: a sent referral through triage, booking, accept, start and
 * completion; a received handoff declined; a redirect seen from each of its three clinics;
 * care-thread posts with a file; the directory; what a receiving clinic must not see; the
 * foci of messages; the backport notification Bundle and the Subscription; instants, ids and
 * OperationOutcome. With HX_FHIR_SAMPLES set, every resource produced is written there
 * (Type-id.json) for the schema check. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_test.h"
#include "hx_fhir.h"
#include "hx_schedule.h"

#define RID "R-7K3M9Q2W4X6Z8B1C"
#define RID2 "R-5H8J2N4P6R8T0V3D"
#define RID3 "R-9A1B3C5D7E9F2G4H"
#define T0 UINT64_C(1795000000000)      /* 2026-11-18T... */

/* ---- building messages ---------------------------------------------------------------------- */

static Handoff__Patient the_patient = HANDOFF__PATIENT__INIT;
static Handoff__Referrer the_referrer = HANDOFF__REFERRER__INIT;
static Handoff__Preferences the_prefs = HANDOFF__PREFERENCES__INIT;
static Handoff__Availability the_window = HANDOFF__AVAILABILITY__INIT;
static Handoff__Availability *the_windows[] = {&the_window};
static char *the_clinics[] = {"northpoint", "lakeside"};
static char *the_conditions[] = {"whiplash"};

/* The referral harbour sent (a stack value whose parts are static). */
static Handoff__Referral referral(const char *rid, const char *ref)
{
    ada(&the_patient);
    the_referrer.name = "Dr Grace Hopper";
    the_referrer.discipline = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN;
    the_referrer.registration_body = "CPSO";
    the_referrer.registration_number = "123456";
    the_referrer.clinic_id = "harbour";
    the_referrer.province = "ON";
    the_referrer.registration_kind = "college";
    the_window.day = 1;
    the_window.from = "09:00";
    the_window.to = "17:00";
    the_prefs.clinic_ids = the_clinics;
    the_prefs.n_clinic_ids = 2;
    the_prefs.language = "en";
    the_prefs.availability = the_windows;
    the_prefs.n_availability = 1;
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = (char *)rid;
    r.ref = (char *)ref;
    r.referring_clinic = "harbour";
    r.patient = &the_patient;
    r.referrer = &the_referrer;
    r.reason = "neck pain after a car accident; assess and treat";
    r.conditions = the_conditions;
    r.n_conditions = 1;
    r.history = "rear-ended 2026-11-10";
    r.priority = HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    r.consent = HANDOFF__CONSENT__CONSENT_GIVEN;
    r.preferences = &the_prefs;
    r.referral_date = "2026-11-18";
    return r;
}

static Handoff__TriageEvidence ev_whiplash = HANDOFF__TRIAGE_EVIDENCE__INIT;
static Handoff__TriageEvidence ev_phrase = HANDOFF__TRIAGE_EVIDENCE__INIT;
static Handoff__TriageEvidence ev_unfired = HANDOFF__TRIAGE_EVIDENCE__INIT;
static Handoff__TriageEvidence *the_evidence[] = {&ev_whiplash, &ev_phrase, &ev_unfired};
static Handoff__Discipline the_plan[] = {PT};

/* e: rule's evidence (words of intake's field source), fired or not, naming SNOMED CT concept
 * snomed (with its display, when not NULL). */
static void evidence(Handoff__TriageEvidence *e, const char *rule, const char *source, const char *words, bool fired,
                     const char *snomed, const char *display)
{
    e->rule = (char *)rule;
    e->source = (char *)source;
    e->words = (char *)words;
    e->fired = fired;
    e->snomed = (char *)snomed;
    if (display)
        e->snomed_display = (char *)display;
}

static Handoff__TriageDecision decision(void)
{
    evidence(&ev_whiplash, "condition:whiplash", "conditions", "whiplash", true, "39848009",
             "Whiplash injury to neck");
    evidence(&ev_phrase, "condition:neck_pain", "reason", "neck pain", true, "81680005", "Neck pain");
    evidence(&ev_unfired, "red_flag:saddle_anaesthesia", "history", "saddle numbness", false, "23456004", NULL);
    ev_unfired.status = "negated";
    Handoff__TriageDecision d = HANDOFF__TRIAGE_DECISION__INIT;
    d.referral_id = RID;
    d.disciplines = the_plan;
    d.n_disciplines = 1;
    d.priority = HANDOFF__PRIORITY__PRIORITY_URGENT;
    d.reason = "whiplash: physiotherapy";
    d.evidence = the_evidence;
    d.n_evidence = 3;
    return d;
}

static Handoff__HandoffStatus entry(Handoff__Discipline d, Handoff__TaskStatus s, const char *clinic,
                                   const char *therapist, const char *event)
{
    Handoff__HandoffStatus h = HANDOFF__HANDOFF_STATUS__INIT;
    h.discipline = d;
    h.status = s;
    h.clinic_id = (char *)clinic;
    h.therapist_id = (char *)therapist;
    h.event = (char *)event;
    return h;
}

/* A status update of rid: the referral's status and event, handoffs (n) and bookings (m). */
static Handoff__StatusUpdate *update(const char *rid, Handoff__TaskStatus s, const char *event, const char *reason,
                                     Handoff__HandoffStatus **hs, size_t n, Handoff__Booking **bs, size_t m)
{
    Handoff__StatusUpdate u = HANDOFF__STATUS_UPDATE__INIT;
    u.referral_id = (char *)rid;
    u.ref = "HB-1";
    u.status = s;
    u.event = (char *)event;
    u.reason = (char *)reason;
    u.handoffs = hs;
    u.n_handoffs = n;
    u.bookings = bs;
    u.n_bookings = m;
    u.by = "scheduling";
    return copy(&u.base);
}

static Handoff__Handoff *handoff(const char *rid, Handoff__Booking *b)
{
    Handoff__Referral r = referral(rid, "HB-2");
    Handoff__TriageDecision d = decision();
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = (char *)rid;
    h.referral = &r;
    h.decision = &d;
    h.booking = b;
    return copy(&h.base);
}

static const char *reply_to = "";      /* in_reply_to of the next post */

static Handoff__ThreadPost *post(const char *rid, const char *id, const char *kind, const char *by, uint64_t at,
                                 const char *text, bool file)
{
    Handoff__Attachment a;
    png_file(&a, "knee-xray.png");
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = (char *)rid;
    p.post_id = (char *)id;
    p.kind = (char *)kind;
    p.by = (char *)by;
    p.at_ms = at;
    p.text = (char *)text;
    p.in_reply_to = (char *)reply_to;
    p.awaiting_reply = !strcmp(kind, "question");
    p.asked_by = p.awaiting_reply ? (char *)by : "";
    if (file)
        p.attachment = &a;
    return copy(&p.base);
}

/* ---- the directory ---------------------------------------------------------------------------- */

static const char *directory_json =
    "{\"version\": 2, \"time_zone\": \"America/Toronto\","
    " \"clinics\": ["
    "  {\"id\": \"northpoint\", \"name\": \"Northpoint Physiotherapy\", \"city\": \"Toronto\", \"province\": \"ON\","
    "   \"time_zone\": \"America/Toronto\", \"location\": {\"lat\": 43.7615, \"lon\": -79.4111, \"postal_code\": \"M2N 5N8\"}},"
    "  {\"id\": \"lakeside\", \"name\": \"Lakeside Physio & Massage\", \"city\": \"Mississauga\", \"province\": \"ON\"},"
    "  {\"id\": \"eastgate\", \"name\": \"Eastgate Health Collective\", \"city\": \"Ottawa\", \"province\": \"ON\"}],"
    " \"therapists\": ["
    "  {\"id\": \"t-amira\", \"name\": \"Amira Haddad\", \"discipline\": \"physiotherapy\", \"registration\": \"CPO 14523\","
    "   \"clinic_id\": \"northpoint\", \"languages\": [\"en\", \"ar\"], \"virtual\": true,"
    "   \"hours\": [{\"day\": 1, \"from\": \"08:00\", \"to\": \"16:00\"}, {\"day\": 3, \"from\": \"12:00\", \"to\": \"20:00\"}]},"
    "  {\"id\": \"t-sofia\", \"name\": \"Sofia Martins\", \"discipline\": \"massage_therapy\", \"registration\": \"CMTO 27755\","
    "   \"clinic_id\": \"lakeside\", \"languages\": [\"en\", \"pt\"], \"virtual\": false,"
    "   \"hours\": [{\"day\": 5, \"from\": \"12:00\", \"to\": \"20:00\"}]},"
    "  {\"id\": \"t-ben\", \"name\": \"Ben Tremblay\", \"discipline\": \"massage_therapy\", \"registration\": \"CMTO 30001\","
    "   \"clinic_id\": \"eastgate\", \"languages\": [\"en\", \"fr\"], \"virtual\": false,"
    "   \"hours\": [{\"day\": 2, \"from\": \"09:00\", \"to\": \"17:00\"}]}]}";

static hx_directory_t *dir;

static void load_directory(void)
{
    hx_errors_t errs = {0};
    dir = hx_directory_parse(directory_json, &errs);
    char why[1024] = "";
    if (!dir)
        hx_errors_join(&errs, why, sizeof why);
    cr_assert_not_null(dir, "directory: %s", why);
}

static void free_directory(void)
{
    hx_directory_destroy(&dir);
}

TestSuite(fhir_map, .init = load_directory, .fini = free_directory);

/* ---- reading resources ------------------------------------------------------------------------ */

/* Writes res to $HX_FHIR_SAMPLES/Type-id.json when that is set. */
static void sample(const json_t *res)
{
    const char *d = getenv("HX_FHIR_SAMPLES");
    const char *type = json_string_value(json_object_get(res, "resourceType"));
    const char *id = json_string_value(json_object_get(res, "id"));
    if (!d || !*d || !type || !id)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%s.json", d, type, id);
    cr_assert_eq(json_dump_file(res, path, JSON_INDENT(2) | JSON_SORT_KEYS), 0, "writing %s", path);
}

/* Every resource of the view: checked for FHIR's rules on ids, metas and empty values, and
 * written as a sample. */
static void no_empty(const json_t *j, const char *where)
{
    if (json_is_string(j))
        cr_assert(strlen(json_string_value(j)) > 0, "empty string in %s", where);
    if (json_is_array(j)) {
        cr_assert(json_array_size(j) > 0, "empty array in %s", where);
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x) no_empty(x, where);
    }
    if (json_is_object(j)) {
        cr_assert(json_object_size(j) > 0, "empty object in %s", where);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)j, k, x) no_empty(x, k);
    }
}

static void check_all(const hx_fhir_view_t *v)
{
    for (int t = 0; t < HX_FHIR_TYPE_COUNT; t++) {
        json_t *a = hx_fhir_view_all(v, (hx_fhir_type_t)t);
        cr_assert_not_null(a);
        size_t i;
        json_t *r;
        uint64_t last = UINT64_MAX;
        json_array_foreach(a, i, r) {
            const char *id = json_string_value(json_object_get(r, "id"));
            cr_assert(hx_fhir_id_valid(id), "id %s", id ? id : "(none)");
            cr_assert_str_eq(json_string_value(json_object_get(r, "resourceType")), hx_fhir_type_name(t));
            uint64_t ms;
            const char *lu = json_string_value(json_object_get(json_object_get(r, "meta"), "lastUpdated"));
            cr_assert_eq(hx_fhir_parse_instant(lu, &ms), 0, "lastUpdated %s", lu ? lu : "(none)");
            cr_assert_leq(ms, last, "most recently updated first");
            last = ms;
            cr_assert_not_null(json_object_get(json_object_get(r, "meta"), "versionId"));
            no_empty(r, id);
            json_t *again = hx_fhir_view_read(v, (hx_fhir_type_t)t, id);
            cr_assert(json_equal(again, r), "read %s/%s as listed", hx_fhir_type_name(t), id);
            json_decref(again);
            sample(r);
        }
        json_decref(a);
    }
}

static json_t *read_ok(const hx_fhir_view_t *v, hx_fhir_type_t t, const char *id)
{
    json_t *r = hx_fhir_view_read(v, t, id);
    cr_assert_not_null(r, "%s/%s", hx_fhir_type_name(t), id);
    return r;
}

static const char *str_at(const json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *x = j;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && x; k = strtok_r(NULL, ".", &save)) {
        char *end;
        long i = strtol(k, &end, 10);
        x = *end == '\0' ? json_array_get(x, (size_t)i) : json_object_get(x, k);
    }
    return json_string_value(x);
}

#define ASSERT_AT(res, path, want)                                                                                \
    do {                                                                                                           \
        const char *got_ = str_at(res, path);                                                                      \
        cr_assert(got_ && !strcmp(got_, want), "%s: %s, expected %s", path, got_ ? got_ : "(none)", want);         \
    } while (0)

static size_t count(const hx_fhir_view_t *v, hx_fhir_type_t t)
{
    json_t *a = hx_fhir_view_all(v, t);
    size_t n = json_array_size(a);
    json_decref(a);
    return n;
}

/* The extension of url on o, or NULL. */
static const json_t *ext(const json_t *o, const char *url)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(o, "extension"), i, e) if (!strcmp(str_at(e, "url"), url)) return e;
    return NULL;
}

/* ---- common ----------------------------------------------------------------------------------- */

Test(fhir_map, type_names_and_ids)
{
    for (int t = 0; t < HX_FHIR_TYPE_COUNT; t++)
        cr_assert_eq(hx_fhir_type_from_name(hx_fhir_type_name(t)), t);
    cr_assert_eq(hx_fhir_type_from_name("Condition"), HX_FHIR_TYPE_COUNT);
    cr_assert_eq(hx_fhir_type_from_name(NULL), HX_FHIR_TYPE_COUNT);
    cr_assert_null(hx_fhir_type_name(HX_FHIR_TYPE_COUNT));
    cr_assert(hx_fhir_id_valid(RID "-massage-therapy"));
    cr_assert(hx_fhir_id_valid("a.b-C9"));
    cr_assert_not(hx_fhir_id_valid(""));
    cr_assert_not(hx_fhir_id_valid(NULL));
    cr_assert_not(hx_fhir_id_valid("has space"));
    cr_assert_not(hx_fhir_id_valid("under_score"));
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    cr_assert_not(hx_fhir_id_valid(long_id));
    long_id[64] = '\0';
    cr_assert(hx_fhir_id_valid(long_id));
}

Test(fhir_map, instants)
{
    char s[32];
    hx_fhir_instant(0, s, sizeof s);
    cr_assert_str_eq(s, "1970-01-01T00:00:00.000Z");
    hx_fhir_instant(UINT64_C(1795885389123), s, sizeof s);
    cr_assert_str_eq(s, "2026-11-28T17:03:09.123Z");
    uint64_t ms;
    cr_assert_eq(hx_fhir_parse_instant("2026-11-28T17:03:09.123Z", &ms), 0);
    cr_assert_eq(ms, UINT64_C(1795885389123));
    cr_assert_eq(hx_fhir_parse_instant("2026-11-28T12:03:09.123-05:00", &ms), 0);
    cr_assert_eq(ms, UINT64_C(1795885389123));
    cr_assert_eq(hx_fhir_parse_instant("2026-11-28T18:33:09.1234+01:30", &ms), 0);
    cr_assert_eq(ms, UINT64_C(1795885389123));
    cr_assert_eq(hx_fhir_parse_instant("2026-11-28T17:03Z", &ms), 0);
    cr_assert_eq(ms, UINT64_C(1795885380000));
    cr_assert_eq(hx_fhir_parse_instant("2026-11-28T17:03:09", &ms), 0);
    cr_assert_eq(ms, UINT64_C(1795885389000));
    cr_assert_eq(hx_fhir_parse_instant("2026-11-28", &ms), 0);
    cr_assert_eq(ms, UINT64_C(1795824000000));
    cr_assert_eq(hx_fhir_parse_instant("2026-11", &ms), 0);
    cr_assert_eq(ms, UINT64_C(1793491200000));
    cr_assert_eq(hx_fhir_parse_instant("2024-02-29", &ms), 0);
    static const char *const bad[] = {"",          "2026-11-31",       "2026-02-29",      "2026-13-01",
                                      "26-11-28",  "2026-11-28T25:00", "2026-11-28T17:3", "2026-11-28T17:03:09.Z",
                                      "2026-11-28 17:03", "2026-11-28T17:03+5", "yesterday", "1969-12-31"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(hx_fhir_parse_instant(bad[i], &ms), -1, "%s", bad[i]);
    cr_assert_eq(hx_fhir_parse_instant(NULL, &ms), -1);
    /* round trip */
    hx_fhir_instant(T0 + 7, s, sizeof s);
    cr_assert_eq(hx_fhir_parse_instant(s, &ms), 0);
    cr_assert_eq(ms, T0 + 7);
}

Test(fhir_map, outcome)
{
    json_t *oo = hx_fhir_outcome("error", "invalid", "birthDate: not a date", "Bundle.entry[1].resource.birthDate");
    cr_assert_not_null(oo);
    ASSERT_AT(oo, "resourceType", "OperationOutcome");
    ASSERT_AT(oo, "issue.0.severity", "error");
    ASSERT_AT(oo, "issue.0.code", "invalid");
    ASSERT_AT(oo, "issue.0.diagnostics", "birthDate: not a date");
    ASSERT_AT(oo, "issue.0.expression.0", "Bundle.entry[1].resource.birthDate");
    hx_fhir_outcome_add(oo, "warning", "not-supported", "_revinclude is not supported", NULL);
    cr_assert_eq(json_array_size(json_object_get(oo, "issue")), 2);
    ASSERT_AT(oo, "issue.1.severity", "warning");
    cr_assert_null(json_object_get(json_array_get(json_object_get(oo, "issue"), 1), "expression"));
    json_object_set_new(oo, "id", json_string("outcome-1"));
    no_empty(oo, "outcome");
    sample(oo);
    json_decref(oo);
}

Test(fhir_map, directory_load)
{
    char err[512];
    cr_assert_null(hx_fhir_directory_load("/nonexistent/directory.json", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/directory.json") != NULL, "%s", err);
    cr_assert_null(hx_fhir_directory_load(NULL, err, sizeof err));
    char path[] = "/tmp/hx-fhir-dir-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(directory_json, f);
    fclose(f);
    hx_directory_t *d = hx_fhir_directory_load(path, err, sizeof err);
    cr_assert_not_null(d, "%s", err);
    cr_assert_not_null(hx_directory_clinic(d, "lakeside"));
    hx_fhir_directory_free(&d);
    cr_assert_null(d);
    f = fopen(path, "w");
    fputs("{\"version\": 2, \"clinics\": [{\"id\": \"Bad Id\", \"name\": \"x\"}], \"therapists\": []}", f);
    fclose(f);
    cr_assert_null(hx_fhir_directory_load(path, err, sizeof err));
    cr_assert(strstr(err, "clinics[0]") != NULL, "%s", err);
    remove(path);
}

/* ---- a referral sent, through its lifecycle ------------------------------------------------------ */

/* harbour's view of RID: sent, triaged, booked at northpoint with t-amira. */
static hx_fhir_view_t *harbour_booked(void)
{
    hx_fhir_view_t *v = hx_fhir_view_new("harbour", dir);
    cr_assert_not_null(v);
    Handoff__Referral r = referral(RID, "HB-1");
    cr_assert_eq(hx_fhir_view_add_sent(v, RID, "HB-1", copy(&r.base), T0), 0);
    cr_assert_eq(hx_fhir_view_add_status(v, update(RID, ST(REQUESTED), "submit", "valid", NULL, 0, NULL, 0), T0 + 1000),
                 0);
    Handoff__StatusUpdate *u = update(RID, ST(RECEIVED), "receive", "triaged: physiotherapy", NULL, 0, NULL, 0);
    Handoff__TriageDecision d = decision();
    u->decision = copy(&d.base);
    cr_assert_eq(hx_fhir_view_add_status(v, u, T0 + 2000), 0);
    Handoff__Booking b = booking(RID, PT, "northpoint", "t-amira", "2026-11-24T14:00Z");
    Handoff__Booking *bs[] = {&b};
    Handoff__HandoffStatus h = entry(PT, ST(READY), "northpoint", "t-amira", "book");
    Handoff__HandoffStatus *hs[] = {&h};
    cr_assert_eq(hx_fhir_view_add_status(v, update(RID, ST(READY), "book", "booked", hs, 1, bs, 1), T0 + 3000), 0);
    return v;
}

/* The referral's next step as harbour hears it: one handoff status, the referral's status. */
static void step(hx_fhir_view_t *v, Handoff__TaskStatus s, const char *event, uint64_t at)
{
    Handoff__HandoffStatus h = entry(PT, s, "northpoint", "t-amira", event);
    Handoff__HandoffStatus *hs[] = {&h};
    cr_assert_eq(hx_fhir_view_add_status(v, update(RID, s, event, event, hs, 1, NULL, 0), at), 0);
}

Test(fhir_map, sent_referral_service_request)
{
    hx_fhir_view_t *v = harbour_booked();
    json_t *sr = read_ok(v, HX_FHIR_SERVICE_REQUEST, RID);
    ASSERT_AT(sr, "status", "active");
    ASSERT_AT(sr, "intent", "order");
    ASSERT_AT(sr, "priority", "urgent");          /* triage's, not the routine sent */
    ASSERT_AT(sr, "identifier.0.system", HX_FHIR_SYS_REFERRAL_ID);
    ASSERT_AT(sr, "identifier.0.value", RID);
    ASSERT_AT(sr, "identifier.1.system", HX_FHIR_SYS_REF);
    ASSERT_AT(sr, "identifier.1.value", "HB-1");
    ASSERT_AT(sr, "identifier.1.assigner.reference", "Organization/harbour");
    ASSERT_AT(sr, "subject.reference", "Patient/" RID "-patient");
    ASSERT_AT(sr, "requester.reference", "PractitionerRole/" RID "-referrer");
    ASSERT_AT(sr, "authoredOn", "2026-11-18");
    ASSERT_AT(sr, "code.coding.0.system", HX_FHIR_SYS_DISCIPLINE);
    ASSERT_AT(sr, "code.coding.0.code", "physiotherapy");
    ASSERT_AT(sr, "performerType.coding.0.code", "physiotherapy");
    ASSERT_AT(sr, "performer.0.reference", "Organization/northpoint");
    ASSERT_AT(sr, "performer.1.reference", "Organization/lakeside");
    /* reasonCode: the reason as text, the condition with its SNOMED CT concept, the phrase read */
    json_t *rc = json_object_get(sr, "reasonCode");
    cr_assert_eq(json_array_size(rc), 3);
    ASSERT_AT(rc, "0.text", "neck pain after a car accident; assess and treat");
    ASSERT_AT(rc, "1.coding.0.system", HX_FHIR_SYS_CONDITION);
    ASSERT_AT(rc, "1.coding.0.code", "whiplash");
    ASSERT_AT(rc, "1.coding.1.system", HX_FHIR_SNOMED);
    ASSERT_AT(rc, "1.coding.1.code", "39848009");
    ASSERT_AT(rc, "2.coding.0.code", "81680005");
    ASSERT_AT(rc, "2.text", "neck pain");
    char *dump = json_dumps(sr, 0);
    cr_assert_null(strstr(dump, "23456004"), "an evidence that did not fire gives no code");
    free(dump);
    ASSERT_AT(sr, "note.0.text", "rear-ended 2026-11-10");
    ASSERT_AT(sr, "note.0.extension.0.valueCode", "history");
    cr_assert_str_eq(str_at(ext(sr, "urn:handoff:ext:consent"), "valueCode"), "given");
    cr_assert_str_eq(str_at(ext(sr, "urn:handoff:ext:session-language"), "valueCode"), "en");
    const json_t *av = ext(sr, "urn:handoff:ext:availability");
    cr_assert_not_null(av);
    ASSERT_AT(av, "extension.1.valueTime", "09:00:00");
    ASSERT_AT(av, "extension.2.valueTime", "17:00:00");
    ASSERT_AT(sr, "meta.versionId", "4");
    json_decref(sr);

    json_t *p = read_ok(v, HX_FHIR_PATIENT, RID "-patient");
    ASSERT_AT(p, "name.0.family", "Lovelace");
    ASSERT_AT(p, "name.0.given.0", "Ada");
    ASSERT_AT(p, "birthDate", "1961-04-02");
    ASSERT_AT(p, "identifier.0.system", "urn:handoff:health-card");
    ASSERT_AT(p, "telecom.1.system", "email");
    ASSERT_AT(p, "address.0.postalCode", "L8P 4R5");
    ASSERT_AT(p, "communication.0.language.coding.0.code", "en");
    json_decref(p);
    json_t *pr = read_ok(v, HX_FHIR_PRACTITIONER, RID "-referrer");
    ASSERT_AT(pr, "name.0.text", "Dr Grace Hopper");
    ASSERT_AT(pr, "identifier.0.system", "urn:handoff:registration:CPSO");
    ASSERT_AT(pr, "identifier.0.value", "123456");
    json_decref(pr);
    json_t *role = read_ok(v, HX_FHIR_PRACTITIONER_ROLE, RID "-referrer");
    ASSERT_AT(role, "practitioner.reference", "Practitioner/" RID "-referrer");
    ASSERT_AT(role, "organization.reference", "Organization/harbour");
    ASSERT_AT(role, "code.0.coding.0.code", "physician");
    cr_assert_str_eq(str_at(ext(role, "urn:handoff:ext:registration-kind"), "valueCode"), "college");
    json_decref(role);
    check_all(v);
    hx_fhir_view_destroy(&v);
    cr_assert_null(v);
}

Test(fhir_map, sent_referral_tasks_through_completion)
{
    hx_fhir_view_t *v = harbour_booked();
    json_t *t = read_ok(v, HX_FHIR_TASK, RID);
    ASSERT_AT(t, "status", "ready");
    ASSERT_AT(t, "businessStatus.coding.0.code", "ready");
    ASSERT_AT(t, "code.coding.0.code", "referral");
    ASSERT_AT(t, "basedOn.0.reference", "ServiceRequest/" RID);
    ASSERT_AT(t, "for.reference", "Patient/" RID "-patient");
    cr_assert_null(json_object_get(t, "owner"), "the parent Task has no owner");
    cr_assert_null(json_object_get(t, "partOf"));
    json_decref(t);
    json_t *c = read_ok(v, HX_FHIR_TASK, RID "-physiotherapy");
    ASSERT_AT(c, "status", "ready");
    ASSERT_AT(c, "owner.reference", "Organization/northpoint");
    ASSERT_AT(c, "partOf.0.reference", "Task/" RID);
    ASSERT_AT(c, "code.coding.0.code", "handoff");
    ASSERT_AT(c, "code.text", "physiotherapy");
    ASSERT_AT(c, "lastModified", "2026-11-18T11:06:43.000Z");
    ASSERT_AT(c, "authoredOn", "2026-11-18T11:06:40.000Z");
    cr_assert_str_eq(str_at(ext(c, "urn:handoff:ext:therapist"), "valueReference.reference"),
                     "PractitionerRole/t-amira");
    cr_assert_str_eq(str_at(ext(c, "urn:handoff:ext:event"), "valueCode"), "book");
    json_decref(c);
    json_t *a = read_ok(v, HX_FHIR_APPOINTMENT, RID "-physiotherapy");
    ASSERT_AT(a, "status", "booked");
    ASSERT_AT(a, "start", "2026-11-24T14:00:00.000Z");
    ASSERT_AT(a, "end", "2026-11-24T15:00:00.000Z");
    ASSERT_AT(a, "basedOn.0.reference", "ServiceRequest/" RID);
    ASSERT_AT(a, "participant.0.actor.reference", "Patient/" RID "-patient");
    ASSERT_AT(a, "participant.1.actor.reference", "PractitionerRole/t-amira");
    ASSERT_AT(a, "participant.2.actor.reference", "Location/northpoint");
    ASSERT_AT(a, "serviceType.0.coding.0.code", "physiotherapy");
    json_decref(a);

    step(v, ST(ACCEPTED), "accept", T0 + 4000);
    step(v, ST(IN_PROGRESS), "start", T0 + 5000);
    t = read_ok(v, HX_FHIR_TASK, RID);
    ASSERT_AT(t, "status", "in-progress");
    ASSERT_AT(t, "businessStatus.coding.0.code", "in-progress");
    json_decref(t);
    /* the completion summary comes to the referrer as a post by the completing clinic */
    cr_assert_eq(hx_fhir_view_add_post(v, post(RID, "P-00000000000000a1", "summary", "northpoint", T0 + 6000,
                                               "six sessions; full range of motion", false),
                                       T0 + 6000),
                 0);
    step(v, ST(COMPLETED), "complete", T0 + 6001);
    c = read_ok(v, HX_FHIR_TASK, RID "-physiotherapy");
    ASSERT_AT(c, "status", "completed");
    ASSERT_AT(c, "businessStatus.coding.0.code", "completed");
    ASSERT_AT(c, "output.0.type.text", "summary");
    ASSERT_AT(c, "output.0.valueString", "six sessions; full range of motion");
    ASSERT_AT(c, "meta.versionId", "4");          /* book, accept, start, complete */
    ASSERT_AT(c, "meta.lastUpdated", "2026-11-18T11:06:46.001Z");
    json_decref(c);
    json_t *sr = read_ok(v, HX_FHIR_SERVICE_REQUEST, RID);
    ASSERT_AT(sr, "status", "completed");
    json_decref(sr);
    a = read_ok(v, HX_FHIR_APPOINTMENT, RID "-physiotherapy");
    ASSERT_AT(a, "status", "fulfilled");
    json_decref(a);
    /* newest first: the parent and the child were both touched last by the completion */
    json_t *tasks = hx_fhir_view_all(v, HX_FHIR_TASK);
    cr_assert_eq(json_array_size(tasks), 2);
    ASSERT_AT(tasks, "0.id", RID);
    ASSERT_AT(tasks, "1.id", RID "-physiotherapy");
    json_decref(tasks);
    cr_assert(hx_fhir_view_sent(v, RID));
    cr_assert_not(hx_fhir_view_holds(v, RID, 0));
    Handoff__Discipline d = 9;
    cr_assert_str_eq(hx_fhir_task_referral(v, RID "-physiotherapy", &d), RID);
    cr_assert_eq(d, PT);
    cr_assert_str_eq(hx_fhir_task_referral(v, RID, &d), RID);
    cr_assert_eq(d, 0);
    cr_assert_null(hx_fhir_task_referral(v, RID "-massage-therapy", &d));
    cr_assert_null(hx_fhir_task_referral(v, RID2, &d));
    check_all(v);
    hx_fhir_view_destroy(&v);
}

Test(fhir_map, refused_update_changes_nothing)
{
    hx_fhir_view_t *v = harbour_booked();
    json_t *before = hx_fhir_view_all(v, HX_FHIR_TASK);
    Handoff__StatusUpdate *u = update(RID, ST(CANCELLED), "revoke", "cannot revoke", NULL, 0, NULL, 0);
    u->refused = true;
    cr_assert_eq(hx_fhir_view_add_status(v, u, T0 + 9000), 0);
    json_t *after = hx_fhir_view_all(v, HX_FHIR_TASK);
    cr_assert(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    hx_fhir_view_destroy(&v);
}

Test(fhir_map, sent_without_the_referral)
{
    hx_fhir_view_t *v = hx_fhir_view_new("harbour", NULL);
    cr_assert_eq(hx_fhir_view_add_sent(v, RID2, "HB-7", NULL, T0), 0);
    json_t *sr = read_ok(v, HX_FHIR_SERVICE_REQUEST, RID2);
    ASSERT_AT(sr, "identifier.1.value", "HB-7");
    ASSERT_AT(sr, "status", "active");
    cr_assert_null(json_object_get(sr, "code"), "no disciplines before triage");
    json_decref(sr);
    json_t *t = read_ok(v, HX_FHIR_TASK, RID2);
    ASSERT_AT(t, "status", "requested");
    ASSERT_AT(t, "businessStatus.coding.0.code", "submitted");
    json_decref(t);
    cr_assert_eq(count(v, HX_FHIR_TASK), 1);
    cr_assert_eq(count(v, HX_FHIR_ORGANIZATION), 1, "only its own id, without a directory");
    check_all(v);
    hx_fhir_view_destroy(&v);
}

/* ---- a handoff received, declined ----------------------------------------------------------------- */

Test(fhir_map, received_handoff_declined)
{
    hx_fhir_view_t *v = hx_fhir_view_new("northpoint", dir);
    Handoff__Booking b = booking(RID2, PT, "northpoint", "t-amira", "2026-11-24T14:00Z");
    cr_assert_eq(hx_fhir_view_add_handoff(v, handoff(RID2, &b), T0), 0);
    json_t *c = read_ok(v, HX_FHIR_TASK, RID2 "-physiotherapy");
    ASSERT_AT(c, "status", "ready");
    ASSERT_AT(c, "businessStatus.coding.0.code", "ready");
    ASSERT_AT(c, "owner.reference", "Organization/northpoint");
    ASSERT_AT(c, "partOf.0.reference", "Task/" RID2);
    json_decref(c);
    cr_assert(hx_fhir_view_holds(v, RID2, PT));
    cr_assert(hx_fhir_view_holds(v, RID2, 0));
    cr_assert_not(hx_fhir_view_holds(v, RID2, MT));
    cr_assert_not(hx_fhir_view_sent(v, RID2));
    json_t *sr = read_ok(v, HX_FHIR_SERVICE_REQUEST, RID2);
    ASSERT_AT(sr, "identifier.1.value", "HB-2");
    ASSERT_AT(sr, "identifier.1.assigner.reference", "Organization/harbour");
    json_decref(sr);

    /* its own decline's answer */
    Handoff__HandoffStatus h = entry(PT, ST(RECEIVED), "northpoint", "t-amira", "decline");
    h.reason = "no capacity this month";
    Handoff__HandoffStatus *hs[] = {&h};
    cr_assert_eq(hx_fhir_view_add_status(v, update(RID2, ST(RECEIVED), "decline", "declined", hs, 1, NULL, 0), T0 + 1000),
                 0);
    c = read_ok(v, HX_FHIR_TASK, RID2 "-physiotherapy");
    ASSERT_AT(c, "status", "rejected");            /* to the clinic that declined it */
    ASSERT_AT(c, "businessStatus.coding.0.code", "declined");
    ASSERT_AT(c, "statusReason.text", "no capacity this month");
    ASSERT_AT(c, "owner.reference", "Organization/northpoint");
    json_decref(c);
    json_t *a = read_ok(v, HX_FHIR_APPOINTMENT, RID2 "-physiotherapy");
    ASSERT_AT(a, "status", "cancelled");
    json_decref(a);
    /* harbour is named (the referrer) but not in the directory: only its id */
    json_t *o = read_ok(v, HX_FHIR_ORGANIZATION, "harbour");
    ASSERT_AT(o, "name", "harbour");
    ASSERT_AT(o, "identifier.0.value", "harbour");
    json_decref(o);
    check_all(v);
    hx_fhir_view_destroy(&v);
}

Test(fhir_map, never_another_clinics_handoff)
{
    hx_fhir_view_t *v = hx_fhir_view_new("northpoint", dir);
    Handoff__Booking b = booking(RID2, PT, "northpoint", "t-amira", "2026-11-24T14:00Z");
    cr_assert_eq(hx_fhir_view_add_handoff(v, handoff(RID2, &b), T0), 0);
    /* an update that (as an add's does) lists a handoff of another clinic too */
    Handoff__HandoffStatus mine = entry(PT, ST(IN_PROGRESS), "northpoint", "t-amira", "start");
    Handoff__HandoffStatus theirs = entry(MT, ST(READY), "lakeside", "t-sofia", "book");
    Handoff__HandoffStatus *hs[] = {&mine, &theirs};
    Handoff__Booking mb = booking(RID2, MT, "lakeside", "t-sofia", "2026-11-25T15:00Z");
    Handoff__Booking *bs[] = {&mb};
    cr_assert_eq(hx_fhir_view_add_status(v, update(RID2, ST(IN_PROGRESS), "add", "added", hs, 2, bs, 1), T0 + 1000), 0);
    /* a status update of a referral it neither sent nor holds */
    Handoff__HandoffStatus other = entry(PT, ST(ACCEPTED), "lakeside", "t-lucas", "accept");
    Handoff__HandoffStatus *os[] = {&other};
    cr_assert_eq(hx_fhir_view_add_status(v, update(RID3, ST(ACCEPTED), "accept", "", os, 1, NULL, 0), T0 + 2000), 0);
    cr_assert_null(hx_fhir_view_read(v, HX_FHIR_TASK, RID2 "-massage-therapy"));
    cr_assert_null(hx_fhir_view_read(v, HX_FHIR_APPOINTMENT, RID2 "-massage-therapy"));
    cr_assert_null(hx_fhir_view_read(v, HX_FHIR_TASK, RID3 "-physiotherapy"));
    cr_assert_null(hx_fhir_view_read(v, HX_FHIR_SERVICE_REQUEST, RID3));
    cr_assert_null(hx_fhir_task_referral(v, RID2 "-massage-therapy", NULL));
    cr_assert_eq(count(v, HX_FHIR_TASK), 2);
    cr_assert_eq(count(v, HX_FHIR_APPOINTMENT), 1);
    json_t *c = read_ok(v, HX_FHIR_TASK, RID2 "-physiotherapy");
    ASSERT_AT(c, "status", "in-progress");
    json_decref(c);
    json_t *tasks = hx_fhir_view_all(v, HX_FHIR_TASK);
    char *dump = json_dumps(tasks, 0);
    cr_assert_null(strstr(dump, "lakeside"));
    free(dump);
    json_decref(tasks);
    check_all(v);
    hx_fhir_view_destroy(&v);
}

/* ---- a redirect, from each side ----------------------------------------------------------------------- */

Test(fhir_map, redirect)
{
    Handoff__Booking old = booking(RID3, MT, "lakeside", "t-sofia", "2026-11-27T17:00Z");
    Handoff__Booking nb = booking(RID3, MT, "eastgate", "t-ben", "2026-11-24T14:00Z");
    /* lakeside: received, then its redirect's answer */
    hx_fhir_view_t *lake = hx_fhir_view_new("lakeside", dir);
    cr_assert_eq(hx_fhir_view_add_handoff(lake, handoff(RID3, &old), T0), 0);
    Handoff__HandoffStatus ended = entry(MT, ST(CANCELLED), "lakeside", "t-sofia", "redirect");
    Handoff__HandoffStatus *es[] = {&ended};
    cr_assert_eq(hx_fhir_view_add_status(lake, update(RID3, ST(READY), "redirect", "to eastgate", es, 1, NULL, 0),
                                         T0 + 1000),
                 0);
    json_t *c = read_ok(lake, HX_FHIR_TASK, RID3 "-massage-therapy");
    ASSERT_AT(c, "status", "cancelled");
    ASSERT_AT(c, "businessStatus.coding.0.code", "redirected");
    ASSERT_AT(c, "owner.reference", "Organization/lakeside");
    json_decref(c);
    json_t *a = read_ok(lake, HX_FHIR_APPOINTMENT, RID3 "-massage-therapy");
    ASSERT_AT(a, "status", "cancelled");
    json_decref(a);
    check_all(lake);
    hx_fhir_view_destroy(&lake);
    /* eastgate: a new handoff, ready */
    hx_fhir_view_t *east = hx_fhir_view_new("eastgate", dir);
    cr_assert_eq(hx_fhir_view_add_handoff(east, handoff(RID3, &nb), T0 + 1000), 0);
    c = read_ok(east, HX_FHIR_TASK, RID3 "-massage-therapy");
    ASSERT_AT(c, "status", "ready");
    ASSERT_AT(c, "owner.reference", "Organization/eastgate");
    json_decref(c);
    hx_fhir_view_destroy(&east);
    /* harbour, the referrer: booked at lakeside, then redirected to eastgate */
    hx_fhir_view_t *hb = hx_fhir_view_new("harbour", dir);
    Handoff__Referral r = referral(RID3, "HB-3");
    cr_assert_eq(hx_fhir_view_add_sent(hb, RID3, "HB-3", copy(&r.base), T0 - 5000), 0);
    Handoff__HandoffStatus booked = entry(MT, ST(READY), "lakeside", "t-sofia", "book");
    Handoff__HandoffStatus *bs1[] = {&booked};
    Handoff__Booking *ob[] = {&old};
    cr_assert_eq(hx_fhir_view_add_status(hb, update(RID3, ST(READY), "book", "booked", bs1, 1, ob, 1), T0 - 4000), 0);
    Handoff__HandoffStatus moved = entry(MT, ST(READY), "eastgate", "t-ben", "redirect");
    Handoff__HandoffStatus *bs2[] = {&moved};
    Handoff__Booking *nbs[] = {&nb};
    cr_assert_eq(hx_fhir_view_add_status(hb, update(RID3, ST(READY), "redirect", "massage_therapy redirected", bs2, 1,
                                                    nbs, 1),
                                         T0 + 1000),
                 0);
    c = read_ok(hb, HX_FHIR_TASK, RID3 "-massage-therapy");
    ASSERT_AT(c, "status", "ready");
    ASSERT_AT(c, "businessStatus.coding.0.code", "ready");
    ASSERT_AT(c, "owner.reference", "Organization/eastgate");
    cr_assert_str_eq(str_at(ext(c, "urn:handoff:ext:event"), "valueCode"), "redirect");
    json_decref(c);
    a = read_ok(hb, HX_FHIR_APPOINTMENT, RID3 "-massage-therapy");
    ASSERT_AT(a, "status", "booked");
    ASSERT_AT(a, "start", "2026-11-24T14:00:00.000Z");
    ASSERT_AT(a, "participant.1.actor.reference", "PractitionerRole/t-ben");
    ASSERT_AT(a, "participant.2.actor.reference", "Location/eastgate");
    json_decref(a);
    check_all(hb);
    hx_fhir_view_destroy(&hb);
}

Test(fhir_map, on_hold_wait_list)
{
    hx_fhir_view_t *v = hx_fhir_view_new("harbour", dir);
    Handoff__HandoffStatus h = entry(PT, ST(ON_HOLD), "", "", "hold");
    h.reason = "no physiotherapy slot within 60 day(s)";
    h.wait_position = 3;
    h.wait_length = 12;
    h.wait_estimate = "2026-12-01";
    Handoff__HandoffStatus *hs[] = {&h};
    cr_assert_eq(hx_fhir_view_add_status(v, update(RID, ST(ON_HOLD), "hold", "on hold", hs, 1, NULL, 0), T0), 0);
    cr_assert(hx_fhir_view_sent(v, RID), "an on-hold update is the referrer's");
    json_t *c = read_ok(v, HX_FHIR_TASK, RID "-physiotherapy");
    ASSERT_AT(c, "status", "on-hold");
    cr_assert_null(json_object_get(c, "owner"), "no owner while it is still to be booked");
    const json_t *w = ext(c, "urn:handoff:ext:wait-list");
    cr_assert_not_null(w);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(w, "extension"), 0), "valueInteger")),
                 3);
    ASSERT_AT(w, "extension.2.valueDate", "2026-12-01");
    json_decref(c);
    json_t *sr = read_ok(v, HX_FHIR_SERVICE_REQUEST, RID);
    ASSERT_AT(sr, "status", "on-hold");
    json_decref(sr);
    cr_assert_eq(count(v, HX_FHIR_APPOINTMENT), 0);
    check_all(v);
    hx_fhir_view_destroy(&v);
}

/* ---- posts ------------------------------------------------------------------------------------------ */

Test(fhir_map, posts_and_attachments)
{
    hx_fhir_view_t *v = harbour_booked();
    cr_assert_eq(hx_fhir_view_add_post(v, post(RID, "P-00000000000000b1", "question", "northpoint", T0 + 5000,
                                               "is there an x-ray?", false),
                                       T0 + 5000),
                 0);
    reply_to = "P-00000000000000b1";
    Handoff__ThreadPost *reply = post(RID, "P-00000000000000b2", "reply", "harbour", T0 + 6000, "attached", true);
    reply_to = "";
    cr_assert_eq(hx_fhir_view_add_post(v, reply, T0 + 6000), 0);
    /* delivered twice: one post */
    cr_assert_eq(hx_fhir_view_add_post(v, post(RID, "P-00000000000000b2", "reply", "harbour", T0 + 6000, "attached", true),
                                       T0 + 7000),
                 0);
    cr_assert_eq(count(v, HX_FHIR_COMMUNICATION), 2);
    cr_assert_eq(count(v, HX_FHIR_DOCUMENT_REFERENCE), 1);
    cr_assert_eq(count(v, HX_FHIR_BINARY), 1);
    json_t *q = read_ok(v, HX_FHIR_COMMUNICATION, "P-00000000000000b1");
    ASSERT_AT(q, "status", "completed");
    ASSERT_AT(q, "category.0.coding.0.code", "question");
    ASSERT_AT(q, "basedOn.0.reference", "ServiceRequest/" RID);
    ASSERT_AT(q, "partOf.0.reference", "Task/" RID);
    ASSERT_AT(q, "sender.reference", "Organization/northpoint");
    ASSERT_AT(q, "payload.0.contentString", "is there an x-ray?");
    cr_assert(json_is_true(json_object_get(ext(q, "urn:handoff:ext:awaiting-reply"), "valueBoolean")));
    json_decref(q);
    json_t *r = read_ok(v, HX_FHIR_COMMUNICATION, "P-00000000000000b2");
    ASSERT_AT(r, "inResponseTo.0.reference", "Communication/P-00000000000000b1");
    ASSERT_AT(r, "payload.1.contentAttachment.url", "Binary/P-00000000000000b2");
    ASSERT_AT(r, "payload.1.contentAttachment.contentType", "image/png");
    ASSERT_AT(r, "payload.1.contentAttachment.title", "knee-xray.png");
    const json_t *att = json_object_get(json_array_get(json_object_get(r, "payload"), 1), "contentAttachment");
    cr_assert_eq(json_integer_value(json_object_get(att, "size")), 16);
    json_decref(r);
    json_t *dr = read_ok(v, HX_FHIR_DOCUMENT_REFERENCE, "P-00000000000000b2");
    ASSERT_AT(dr, "status", "current");
    ASSERT_AT(dr, "context.related.0.reference", "Communication/P-00000000000000b2");
    ASSERT_AT(dr, "author.0.reference", "Organization/harbour");
    ASSERT_AT(dr, "content.0.attachment.url", "Binary/P-00000000000000b2");
    json_decref(dr);
    json_t *bin = read_ok(v, HX_FHIR_BINARY, "P-00000000000000b2");
    ASSERT_AT(bin, "contentType", "image/png");
    ASSERT_AT(bin, "data", "iVBORw0KGgoAAAANSUhEUg==");
    json_decref(bin);
    cr_assert_null(hx_fhir_view_read(v, HX_FHIR_BINARY, "P-00000000000000b1"), "a post without a file has none");
    json_t *sr = read_ok(v, HX_FHIR_SERVICE_REQUEST, RID);
    ASSERT_AT(sr, "supportingInfo.0.reference", "DocumentReference/P-00000000000000b2");
    json_decref(sr);
    json_t *all = hx_fhir_view_all(v, HX_FHIR_COMMUNICATION);
    ASSERT_AT(all, "0.id", "P-00000000000000b2");     /* newest first */
    json_decref(all);
    check_all(v);
    hx_fhir_view_destroy(&v);
}

/* ---- the directory ----------------------------------------------------------------------------------- */

/* handoff-web reads a referral's resource from a view fed with that referral's messages alone
 * (web_fhir_view_load_referral): every resource of a referral must come out the same from it
 * as from the whole store's view, whatever else the store holds. */
static void feed_rid(hx_fhir_view_t *v, const char *only)
{
    /* harbour sent RID (booked at northpoint, then accepted), and RID2 (on hold); a post of
     * each, and one of RID with a file */
    if (!only || !strcmp(only, RID)) {
        Handoff__Referral r = referral(RID, "HB-1");
        cr_assert_eq(hx_fhir_view_add_sent(v, RID, "HB-1", copy(&r.base), T0), 0);
    }
    if (!only || !strcmp(only, RID2)) {
        Handoff__Referral r2 = referral(RID2, "HB-2");
        cr_assert_eq(hx_fhir_view_add_sent(v, RID2, "HB-2", copy(&r2.base), T0 + 500), 0);
    }
    if (!only || !strcmp(only, RID)) {
        Handoff__Booking b = booking(RID, PT, "northpoint", "t-amira", "2026-11-24T14:00Z");
        Handoff__Booking *bs[] = {&b};
        Handoff__HandoffStatus h = entry(PT, ST(READY), "northpoint", "t-amira", "book");
        Handoff__HandoffStatus *hs[] = {&h};
        cr_assert_eq(hx_fhir_view_add_status(v, update(RID, ST(READY), "book", "booked", hs, 1, bs, 1), T0 + 3000), 0);
    }
    if (!only || !strcmp(only, RID2)) {
        Handoff__HandoffStatus h2 = entry(PT, ST(ON_HOLD), "", "", "hold");
        Handoff__HandoffStatus *hs2[] = {&h2};
        cr_assert_eq(hx_fhir_view_add_status(v, update(RID2, ST(ON_HOLD), "hold", "no slot", hs2, 1, NULL, 0), T0 + 3500),
                     0);
    }
    if (!only || !strcmp(only, RID)) {
        Handoff__HandoffStatus h = entry(PT, ST(ACCEPTED), "northpoint", "t-amira", "accept");
        Handoff__HandoffStatus *hs[] = {&h};
        cr_assert_eq(hx_fhir_view_add_status(v, update(RID, ST(ACCEPTED), "accept", "accepted", hs, 1, NULL, 0), T0 + 4000),
                     0);
        cr_assert_eq(hx_fhir_view_add_post(v, post(RID, "P-00000000000000c1", "note", "northpoint", T0 + 5000, "seen",
                                                   true),
                                           T0 + 5000),
                     0);
    }
    if (!only || !strcmp(only, RID2))
        cr_assert_eq(hx_fhir_view_add_post(v, post(RID2, "P-00000000000000c2", "question", "harbour", T0 + 5500,
                                                   "any slot?", false),
                                           T0 + 5500),
                     0);
}

Test(fhir_map, one_referrals_view_reads_as_the_whole)
{
    hx_fhir_view_t *all = hx_fhir_view_new("harbour", dir);
    feed_rid(all, NULL);
    const char *rids[] = {RID, RID2};
    for (size_t k = 0; k < 2; k++) {
        hx_fhir_view_t *one = hx_fhir_view_new("harbour", dir);
        feed_rid(one, rids[k]);
        const struct {
            hx_fhir_type_t t;
            const char *suffix;
        } ids[] = {{HX_FHIR_SERVICE_REQUEST, ""},     {HX_FHIR_TASK, ""},
                   {HX_FHIR_TASK, "-physiotherapy"},  {HX_FHIR_PATIENT, "-patient"},
                   {HX_FHIR_PRACTITIONER, "-referrer"}, {HX_FHIR_PRACTITIONER_ROLE, "-referrer"},
                   {HX_FHIR_APPOINTMENT, "-physiotherapy"}};
        size_t seen = 0;
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            char id[64];
            snprintf(id, sizeof id, "%s%s", rids[k], ids[i].suffix);
            json_t *a = hx_fhir_view_read(all, ids[i].t, id), *b = hx_fhir_view_read(one, ids[i].t, id);
            cr_assert_eq(a == NULL, b == NULL, "%s/%s: in one view and not the other", hx_fhir_type_name(ids[i].t), id);
            if (a) {
                char *ja = json_dumps(a, JSON_SORT_KEYS), *jb = json_dumps(b, JSON_SORT_KEYS);
                cr_assert_str_eq(ja, jb, "%s/%s differs", hx_fhir_type_name(ids[i].t), id);
                free(ja);
                free(jb);
                seen++;
            }
            json_decref(a);
            json_decref(b);
        }
        cr_assert_geq(seen, 6, "%s: too few of its resources were compared (%zu)", rids[k], seen);
        hx_fhir_view_destroy(&one);
    }
    hx_fhir_view_destroy(&all);
}

Test(fhir_map, directory_resources)
{
    hx_fhir_view_t *v = hx_fhir_view_new("northpoint", dir);
    cr_assert_str_eq(hx_fhir_view_clinic(v), "northpoint");
    cr_assert_eq(count(v, HX_FHIR_ORGANIZATION), 3);
    cr_assert_eq(count(v, HX_FHIR_LOCATION), 3);
    cr_assert_eq(count(v, HX_FHIR_PRACTITIONER), 3);
    cr_assert_eq(count(v, HX_FHIR_PRACTITIONER_ROLE), 3);
    json_t *o = read_ok(v, HX_FHIR_ORGANIZATION, "northpoint");
    ASSERT_AT(o, "name", "Northpoint Physiotherapy");
    ASSERT_AT(o, "identifier.0.system", HX_FHIR_SYS_CLINIC);
    ASSERT_AT(o, "address.0.city", "Toronto");
    ASSERT_AT(o, "address.0.country", "CA");
    ASSERT_AT(o, "meta.versionId", "1");
    json_decref(o);
    json_t *l = read_ok(v, HX_FHIR_LOCATION, "northpoint");
    ASSERT_AT(l, "status", "active");
    ASSERT_AT(l, "managingOrganization.reference", "Organization/northpoint");
    ASSERT_AT(l, "address.postalCode", "M2N 5N8");
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(l, "position"), "latitude")), 43.7615, 1e-9);
    cr_assert_str_eq(str_at(ext(l, "http://hl7.org/fhir/StructureDefinition/timezone"), "valueCode"),
                     "America/Toronto");
    json_decref(l);
    json_t *p = read_ok(v, HX_FHIR_PRACTITIONER, "t-amira");
    ASSERT_AT(p, "identifier.0.system", HX_FHIR_SYS_THERAPIST);
    ASSERT_AT(p, "identifier.1.system", HX_FHIR_SYS_CPO);
    ASSERT_AT(p, "identifier.1.value", "14523");
    ASSERT_AT(p, "name.0.text", "Amira Haddad");
    ASSERT_AT(p, "communication.1.coding.0.code", "ar");
    json_decref(p);
    json_t *pr = read_ok(v, HX_FHIR_PRACTITIONER_ROLE, "t-sofia");
    ASSERT_AT(pr, "practitioner.reference", "Practitioner/t-sofia");
    ASSERT_AT(pr, "organization.reference", "Organization/lakeside");
    ASSERT_AT(pr, "location.0.reference", "Location/lakeside");
    ASSERT_AT(pr, "code.0.coding.0.code", "massage-therapy");
    ASSERT_AT(pr, "availableTime.0.daysOfWeek.0", "fri");
    ASSERT_AT(pr, "availableTime.0.availableStartTime", "12:00:00");
    ASSERT_AT(pr, "availableTime.0.availableEndTime", "20:00:00");
    json_decref(pr);
    cr_assert_null(hx_fhir_view_read(v, HX_FHIR_ORGANIZATION, "nowhere"));
    cr_assert_null(hx_fhir_view_read(v, HX_FHIR_ORGANIZATION, "not an id"));
    check_all(v);
    hx_fhir_view_destroy(&v);
}

/* ---- foci ---------------------------------------------------------------------------------------------- */

static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(buf);
    protobuf_c_message_pack(m, buf);
    return buf;
}

Test(fhir_map, foci)
{
    hx_fhir_focus_t f[4];
    size_t len;
    Handoff__Booking b = booking(RID, MT, "lakeside", "t-sofia", "2026-11-27T17:00Z");
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = RID;
    h.booking = &b;
    uint8_t *buf = packed(&h.base, &len);
    cr_assert_eq(hx_fhir_message_foci("lakeside", false, "handoff.Handoff", buf, len, f, 4), 1);
    cr_assert_str_eq(f[0].topic, HX_FHIR_TOPIC_TASK);
    cr_assert_eq(f[0].type, HX_FHIR_TASK);
    cr_assert_str_eq(f[0].id, RID "-massage-therapy");
    cr_assert_eq(hx_fhir_message_foci("northpoint", false, "handoff.Handoff", buf, len, f, 4), 0);
    free(buf);

    Handoff__HandoffStatus mine = entry(PT, ST(ACCEPTED), "northpoint", "t-amira", "accept");
    Handoff__HandoffStatus theirs = entry(MT, ST(READY), "lakeside", "t-sofia", "book");
    Handoff__HandoffStatus *hs[] = {&mine, &theirs};
    Handoff__StatusUpdate *u = update(RID, ST(ACCEPTED), "accept", "", hs, 2, NULL, 0);
    buf = packed(&u->base, &len);
    cr_assert_eq(hx_fhir_message_foci("northpoint", true, "handoff.StatusUpdate", buf, len, f, 4), 2);
    cr_assert_str_eq(f[0].id, RID "-physiotherapy");
    cr_assert_eq(f[1].type, HX_FHIR_SERVICE_REQUEST);
    cr_assert_str_eq(f[1].topic, HX_FHIR_TOPIC_SERVICE_REQUEST);
    cr_assert_str_eq(f[1].id, RID);
    cr_assert_eq(hx_fhir_message_foci("harbour", true, "handoff.StatusUpdate", buf, len, f, 4), 1);
    cr_assert_eq(f[0].type, HX_FHIR_SERVICE_REQUEST);
    cr_assert_eq(hx_fhir_message_foci("northpoint", true, "handoff.StatusUpdate", buf, len, f, 1), 1, "cap");
    cr_assert_eq(hx_fhir_message_foci("northpoint", true, "handoff.ThreadPost", buf, len, f, 4), 0);
    cr_assert_eq(hx_fhir_message_foci("northpoint", true, "handoff.StatusUpdate", (const uint8_t *)"\xff\xff", 2, f, 4),
                 0, "not decodable");
    free(buf);
    u->refused = true;
    buf = packed(&u->base, &len);
    cr_assert_eq(hx_fhir_message_foci("northpoint", true, "handoff.StatusUpdate", buf, len, f, 4), 0);
    free(buf);
    handoff__status_update__free_unpacked(u, NULL);
}

/* ---- subscriptions -------------------------------------------------------------------------------------- */

static hx_fhir_sub_t subscription(hx_fhir_payload_t payload)
{
    hx_fhir_sub_t s = {.payload = payload, .events = 4, .end_ms = T0 + 86400000};
    snprintf(s.id, sizeof s.id, "sub-1");
    snprintf(s.topic, sizeof s.topic, HX_FHIR_TOPIC_TASK);
    snprintf(s.endpoint, sizeof s.endpoint, "https://emr.example.org/hook");
    snprintf(s.header, sizeof s.header, "Authorization: Bearer s3cr3t-token");
    snprintf(s.status, sizeof s.status, "active");
    snprintf(s.reason, sizeof s.reason, "our handoffs");
    return s;
}

static const json_t *param(const json_t *params, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(params, i, p) if (!strcmp(str_at(p, "name"), name)) return p;
    return NULL;
}

Test(fhir_map, subscription_resource)
{
    hx_fhir_sub_t s = subscription(HX_FHIR_PAYLOAD_FULL);
    snprintf(s.error, sizeof s.error, "endpoint answered 503");
    json_t *j = hx_fhir_subscription_json(&s);
    cr_assert_not_null(j);
    ASSERT_AT(j, "resourceType", "Subscription");
    ASSERT_AT(j, "id", "sub-1");
    ASSERT_AT(j, "status", "active");
    ASSERT_AT(j, "criteria", HX_FHIR_TOPIC_TASK);
    ASSERT_AT(j, "reason", "our handoffs");
    ASSERT_AT(j, "channel.type", "rest-hook");
    ASSERT_AT(j, "channel.endpoint", "https://emr.example.org/hook");
    ASSERT_AT(j, "channel.payload", "application/fhir+json");
    ASSERT_AT(j, "channel._payload.extension.0.valueCode", "full-resource");
    ASSERT_AT(j, "end", "2026-11-19T11:06:40.000Z");
    ASSERT_AT(j, "error", "endpoint answered 503");
    char *dump = json_dumps(j, 0);
    cr_assert_null(strstr(dump, "s3cr3t"), "the header's value is never shown");
    free(dump);
    no_empty(j, "Subscription");
    sample(j);
    json_decref(j);
}

Test(fhir_map, notification_bundles)
{
    hx_fhir_sub_t s = subscription(HX_FHIR_PAYLOAD_ID_ONLY);
    json_t *hs = hx_fhir_notification(&s, "https://portal.example.org/fhir/r4", "handshake", 0, T0, NULL, NULL);
    cr_assert_not_null(hs);
    ASSERT_AT(hs, "resourceType", "Bundle");
    ASSERT_AT(hs, "type", "history");
    ASSERT_AT(hs, "timestamp", "2026-11-18T11:06:40.000Z");
    cr_assert_eq(json_array_size(json_object_get(hs, "entry")), 1);
    const json_t *st = json_object_get(json_array_get(json_object_get(hs, "entry"), 0), "resource");
    ASSERT_AT(st, "resourceType", "Parameters");
    ASSERT_AT(st, "meta.profile.0",
              "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4");
    const json_t *ps = json_object_get(st, "parameter");
    ASSERT_AT(param(ps, "subscription"), "valueReference.reference", "Subscription/sub-1");
    ASSERT_AT(param(ps, "topic"), "valueCanonical", HX_FHIR_TOPIC_TASK);
    ASSERT_AT(param(ps, "status"), "valueCode", "active");
    ASSERT_AT(param(ps, "type"), "valueCode", "handshake");
    ASSERT_AT(param(ps, "events-since-subscription-start"), "valueString", "4");
    cr_assert_null(param(ps, "notification-event"));
    ASSERT_AT(hs, "entry.0.request.method", "GET");
    ASSERT_AT(hs, "entry.0.response.status", "200");
    no_empty(hs, "handshake");
    sample(hs);

    hx_fhir_focus_t focus = {.topic = HX_FHIR_TOPIC_TASK, .type = HX_FHIR_TASK};
    snprintf(focus.id, sizeof focus.id, RID "-physiotherapy");
    json_t *ev = hx_fhir_notification(&s, "https://portal.example.org/fhir/r4", "event-notification", 5, T0 + 1000,
                                      &focus, NULL);
    cr_assert_not_null(ev);
    cr_assert_str_neq(str_at(ev, "id"), str_at(hs, "id"));
    cr_assert_eq(json_array_size(json_object_get(ev, "entry")), 1, "id-only: no resource");
    ps = json_object_get(json_object_get(json_array_get(json_object_get(ev, "entry"), 0), "resource"), "parameter");
    ASSERT_AT(param(ps, "type"), "valueCode", "event-notification");
    ASSERT_AT(param(ps, "events-since-subscription-start"), "valueString", "5");
    const json_t *ne = param(ps, "notification-event");
    cr_assert_not_null(ne);
    ASSERT_AT(ne, "part.0.name", "event-number");
    ASSERT_AT(ne, "part.0.valueString", "5");
    ASSERT_AT(ne, "part.1.valueInstant", "2026-11-18T11:06:41.000Z");
    ASSERT_AT(ne, "part.2.valueReference.reference", "Task/" RID "-physiotherapy");
    no_empty(ev, "event");
    sample(ev);
    json_t *ev6 = hx_fhir_notification(&s, "https://portal.example.org/fhir/r4", "event-notification", 6, T0 + 1000,
                                       &focus, NULL);
    cr_assert_str_neq(str_at(ev, "id"), str_at(ev6, "id"), "one id per event");
    json_decref(ev6);

    hx_fhir_view_t *v = harbour_booked();
    json_t *task = read_ok(v, HX_FHIR_TASK, RID "-physiotherapy");
    hx_fhir_sub_t full = subscription(HX_FHIR_PAYLOAD_FULL);
    json_t *fr = hx_fhir_notification(&full, "https://portal.example.org/fhir/r4", "event-notification", 5, T0 + 1000,
                                      &focus, task);
    cr_assert_eq(json_array_size(json_object_get(fr, "entry")), 2);
    ASSERT_AT(fr, "entry.1.fullUrl", "https://portal.example.org/fhir/r4/Task/" RID "-physiotherapy");
    ASSERT_AT(fr, "entry.1.resource.id", RID "-physiotherapy");
    ASSERT_AT(fr, "entry.1.request.url", "Task/" RID "-physiotherapy");
    ASSERT_AT(fr, "entry.1.response.status", "200");
    no_empty(fr, "full");
    json_decref(fr);
    hx_fhir_sub_t empty = subscription(HX_FHIR_PAYLOAD_EMPTY);
    json_t *em = hx_fhir_notification(&empty, "https://portal.example.org/fhir/r4", "event-notification", 5, T0 + 1000,
                                      &focus, task);
    cr_assert_eq(json_array_size(json_object_get(em, "entry")), 1);
    ps = json_object_get(json_object_get(json_array_get(json_object_get(em, "entry"), 0), "resource"), "parameter");
    ne = param(ps, "notification-event");
    cr_assert_eq(json_array_size(json_object_get(ne, "part")), 2, "empty: no focus");
    json_decref(em);
    cr_assert_null(hx_fhir_notification(&s, "https://x/fhir/r4", "gossip", 1, T0, NULL, NULL));
    json_decref(task);
    json_decref(ev);
    json_decref(hs);
    hx_fhir_view_destroy(&v);
}
