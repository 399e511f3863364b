/* Unit: the FHIR mapping's inbound half (hx_fhir.h) — a submitted transaction Bundle read into
 * a Referral, every kind of refusal with the FHIRPath of its element, intake's errors mapped
 * back to the Bundle, a referral mapped out by the view and read back in, JSON Patch (RFC 6902
 * and its appendix A), Task updates into StatusChanges, Communications into care-thread posts,
 * and Subscriptions. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_test.h"
#include "hx_fhir.h"
#include "hx_intake.h"

#define RID "R-7K3M9Q2W4X6Z8B1C"

/* ---- helpers -------------------------------------------------------------------------------- */

/* JSON written with ' for " (the texts here hold no apostrophes). */
static json_t *js(const char *text)
{
    char *t = strdup(text);
    cr_assert_not_null(t);
    for (char *c = t; *c; c++)
        if (*c == '\'')
            *c = '"';
    json_error_t err;
    json_t *j = json_loads(t, 0, &err);
    cr_assert_not_null(j, "test JSON: %s (line %d, column %d)", err.text, err.line, err.column);
    free(t);
    return j;
}

/* Whether oo has an issue at exactly expr (and, when code is not NULL, of that code). */
static bool has_issue(const json_t *oo, const char *expr, const char *code)
{
    size_t i;
    json_t *issue;
    json_array_foreach(json_object_get(oo, "issue"), i, issue) {
        const char *e = json_string_value(json_array_get(json_object_get(issue, "expression"), 0));
        const char *c = json_string_value(json_object_get(issue, "code"));
        if (e && strcmp(e, expr) == 0 && (!code || (c && strcmp(c, code) == 0)))
            return true;
    }
    return false;
}

/* Every issue has an expression (the contract of a refusal). */
static void every_issue_placed(const json_t *oo)
{
    cr_assert(json_array_size(json_object_get(oo, "issue")) > 0);
    size_t i;
    json_t *issue;
    json_array_foreach(json_object_get(oo, "issue"), i, issue)
        cr_expect(json_is_string(json_array_get(json_object_get(issue, "expression"), 0)), "issue %zu: %s", i,
                  json_string_value(json_object_get(issue, "diagnostics")));
}

#define PDF64 "JVBERi0xLjQgZGlzY2hhcmdlIG5vdGU="    /* "%PDF-1.4 discharge note" */

/* A referral as an EMR submits it: 0 ServiceRequest, 1 Patient, 2 PractitionerRole,
 * 3 Practitioner, 4 DocumentReference. */
static const char BUNDLE[] =
    "{'resourceType':'Bundle','type':'transaction','entry':["
    "{'fullUrl':'urn:uuid:sr','request':{'method':'POST','url':'ServiceRequest',"
    " 'ifNoneExist':'identifier=urn:handoff:ref|HB-2026-0141'},"
    " 'resource':{'resourceType':'ServiceRequest','meta':{'profile':['http://example.org/x']},"
    "  'extension':["
    "   {'url':'urn:handoff:ext:consent','valueCode':'given'},"
    "   {'url':'urn:handoff:ext:session-language','valueCode':'pt'},"
    "   {'url':'urn:handoff:ext:virtual-ok','valueBoolean':true},"
    "   {'url':'urn:handoff:ext:availability','extension':[{'url':'day','valueInteger':1},"
    "     {'url':'from','valueTime':'07:30:00'},{'url':'to','valueTime':'12:00:00'}]},"
    "   {'url':'urn:handoff:ext:massage-minutes','valueInteger':45},"
    "   {'url':'http://example.org/emr-flag','valueString':'ignored'}],"
    "  'identifier':[{'system':'urn:handoff:ref','value':'HB-2026-0141'},{'system':'urn:emr:order','value':'77'}],"
    "  'status':'active','intent':'order','priority':'urgent',"
    "  'subject':{'reference':'urn:uuid:pt'},'authoredOn':'2026-11-16T09:30:00-05:00',"
    "  'requester':{'reference':'PractitionerRole/role1'},"
    "  'performer':[{'reference':'Organization/lakeside'},{'reference':'Organization/northpoint'}],"
    "  'reasonCode':[{'text':'Inversion sprain of the right ankle, still limping on stairs.'},"
    "   {'coding':[{'system':'urn:handoff:condition','code':'ankle_sprain'},"
    "     {'system':'http://snomed.info/sct','code':'44465007','display':'Sprain of ankle'}]},"
    "   {'coding':[{'system':'urn:handoff:finding','code':'night_pain'}]},"
    "   {'coding':[{'system':'http://snomed.info/sct','code':'22253000','display':'Pain'}],'text':'pain when running'}],"
    "  'note':[{'extension':[{'url':'urn:handoff:ext:section','valueCode':'history'}],'text':'No previous injury.'},"
    "   {'extension':[{'url':'urn:handoff:ext:section','valueCode':'diagnosis'}],'text':'Grade II sprain.'},"
    "   {'extension':[{'url':'urn:handoff:ext:section','valueCode':'current-treatment'}],'text':'Taping.'},"
    "   {'extension':[{'url':'urn:handoff:ext:section','valueCode':'expectations'}],'text':'Back to futsal.'},"
    "   {'text':'Seen at the emergency department.'}],"
    "  'supportingInfo':[{'reference':'urn:uuid:doc'}]}},"
    "{'fullUrl':'urn:uuid:pt','request':{'method':'POST','url':'Patient'},"
    " 'resource':{'resourceType':'Patient','id':'pt1',"
    "  'identifier':[{'system':'urn:emr:mrn','value':'A1'},{'system':'urn:handoff:health-card','value':'5555-141-001-TM'}],"
    "  'name':[{'use':'official','family':'Mendes','given':['Tiago','Luis']}],'gender':'male',"
    "  'telecom':[{'system':'fax','value':'905 555 0199'},{'system':'phone','value':'+1 905-555-0141'},"
    "   {'system':'email','value':'tiago@example.org'}],"
    "  'birthDate':'1994-07-19','address':[{'city':'Mississauga','postalCode':'L5B 1M2'}],"
    "  'communication':[{'language':{'coding':[{'system':'urn:ietf:bcp:47','code':'en'}]}},"
    "   {'language':{'coding':[{'system':'urn:ietf:bcp:47','code':'pt'}]},'preferred':true}]}},"
    "{'fullUrl':'urn:uuid:role','request':{'method':'POST','url':'PractitionerRole'},"
    " 'resource':{'resourceType':'PractitionerRole','id':'role1',"
    "  'practitioner':{'reference':'urn:uuid:prac'},'organization':{'reference':'Organization/harbour'},"
    "  'code':[{'coding':[{'system':'urn:handoff:discipline','code':'physiotherapy'}]}],"
    "  'telecom':[{'system':'phone','value':'905-555-0100'},{'system':'email','value':'iruiz@example.org'}]}},"
    "{'fullUrl':'urn:uuid:prac','request':{'method':'POST','url':'Practitioner'},"
    " 'resource':{'resourceType':'Practitioner','identifier':[{'system':'urn:handoff:registration:CPO','value':'19877'}],"
    "  'name':[{'text':'Isabel Ruiz'}],'address':[{'state':'ON'}]}},"
    "{'fullUrl':'urn:uuid:doc','request':{'method':'POST','url':'DocumentReference'},"
    " 'resource':{'resourceType':'DocumentReference','status':'current','subject':{'reference':'urn:uuid:pt'},"
    "  'content':[{'attachment':{'contentType':'application/pdf','title':'discharge.pdf','data':'" PDF64 "'}}]}}"
    "]}";

/* The bundle with a JSON Patch (written as js does) applied. */
static json_t *bundle_with(const char *patch)
{
    json_t *b = js(BUNDLE);
    if (!patch)
        return b;
    json_t *p = js(patch), *oo = NULL;
    json_t *out = hx_fhir_json_patch(b, p, &oo);
    cr_assert_not_null(out, "test patch: %s", dump(oo));
    json_decref(b);
    json_decref(p);
    return out;
}

/* Reads the patched bundle expecting a refusal at expr; returns nothing, checks s is zeroed. */
static void refused_at(const char *patch, const char *expr, const char *code)
{
    json_t *b = bundle_with(patch);
    hx_fhir_submission_t s;
    memset(&s, 0x5a, sizeof s);
    json_t *oo = NULL;
    cr_assert_eq(hx_fhir_read_submission(b, "harbour", 32, &s, &oo), -1, "patch %s was taken", patch);
    cr_expect(has_issue(oo, expr, code), "patch %s: no %s issue at %s in %s", patch, code ? code : "", expr,
              dump(oo));
    every_issue_placed(oo);
    hx_fhir_submission_t zero;
    memset(&zero, 0, sizeof zero);
    cr_expect(memcmp(&s, &zero, sizeof s) == 0, "the submission is not zeroed after a refusal");
    json_decref(oo);
    json_decref(b);
}

static void read_ok(json_t *b, hx_fhir_submission_t *s)
{
    json_t *oo = NULL;
    int rc = hx_fhir_read_submission(b, "harbour", 32, s, &oo);
    cr_assert_eq(rc, 0, "refused: %s", dump(oo));
    cr_assert_null(oo);
}

/* ---- the submission: what is read ------------------------------------------------------------- */

Test(fhir_read_submission, reads_every_mapped_element)
{
    json_t *b = bundle_with(NULL);
    hx_fhir_submission_t s;
    read_ok(b, &s);
    const Handoff__Referral *r = s.referral;
    cr_assert_not_null(r);
    cr_expect_str_eq(r->ref, "HB-2026-0141");
    cr_expect_str_eq(s.ref, "HB-2026-0141");
    cr_expect(s.conditional);
    cr_expect_str_eq(r->referring_clinic, "harbour");
    cr_expect_eq(r->priority, HANDOFF__PRIORITY__PRIORITY_URGENT);
    cr_expect_eq(r->consent, HANDOFF__CONSENT__CONSENT_GIVEN);
    cr_expect_str_eq(r->referral_date, "2026-11-16");
    /* words alone are the reason; a coded entry of another system adds its words */
    cr_expect_str_eq(r->reason, "Inversion sprain of the right ankle, still limping on stairs.; pain when running");
    cr_assert_eq(r->n_conditions, 1);
    cr_expect_str_eq(r->conditions[0], "ankle_sprain");
    cr_assert_eq(r->n_findings, 1);
    cr_expect_str_eq(r->findings[0], "night_pain");
    cr_expect_str_eq(r->history, "No previous injury.\n\nSeen at the emergency department.");
    cr_expect_str_eq(r->diagnosis, "Grade II sprain.");
    cr_expect_str_eq(r->current_treatment, "Taping.");
    cr_expect_str_eq(r->expectations, "Back to futsal.");

    const Handoff__Preferences *p = r->preferences;
    cr_assert_not_null(p);
    cr_assert_eq(p->n_clinic_ids, 2);
    cr_expect_str_eq(p->clinic_ids[0], "lakeside");
    cr_expect_str_eq(p->clinic_ids[1], "northpoint");
    cr_expect_str_eq(p->language, "pt");
    cr_expect(p->virtual_ok);
    cr_expect_eq(p->massage_minutes, 45);
    cr_assert_eq(p->n_availability, 1);
    cr_expect_eq(p->availability[0]->day, 1);
    cr_expect_str_eq(p->availability[0]->from, "07:30");
    cr_expect_str_eq(p->availability[0]->to, "12:00");

    const Handoff__Patient *pt = r->patient;
    cr_expect_str_eq(pt->given_name, "Tiago Luis");
    cr_expect_str_eq(pt->family_name, "Mendes");
    cr_expect_str_eq(pt->birth_date, "1994-07-19");
    cr_expect_str_eq(pt->phone, "+1 905-555-0141");
    cr_expect_str_eq(pt->email, "tiago@example.org");
    cr_expect_str_eq(pt->health_card, "5555-141-001-TM");
    cr_expect_str_eq(pt->postal_code, "L5B 1M2");
    cr_expect_str_eq(pt->language, "pt", "the preferred communication wins");

    const Handoff__Referrer *f = r->referrer;
    cr_expect_str_eq(f->name, "Isabel Ruiz");
    cr_expect_eq(f->discipline, PT);
    cr_expect_str_eq(f->registration_body, "CPO");
    cr_expect_str_eq(f->registration_number, "19877");
    cr_expect_str_eq(f->clinic_id, "harbour");
    cr_expect_str_eq(f->phone, "905-555-0100");
    cr_expect_str_eq(f->email, "iruiz@example.org");
    cr_expect_str_eq(f->province, "ON");
    cr_expect_str_eq(f->registration_kind, "", "intake sets it, never the client");

    cr_assert_eq(s.n_attach, 1);
    cr_expect_str_eq(s.attach[0]->name, "discharge.pdf");
    cr_assert_eq(s.attach[0]->data.len, strlen("%PDF-1.4 discharge note"));
    cr_expect(memcmp(s.attach[0]->data.data, "%PDF-1.4 discharge note", s.attach[0]->data.len) == 0);
    cr_expect_str_eq(s.attach_path[0], "Bundle.entry[4].resource");

    cr_expect_eq(s.entry_sr, 0);
    cr_expect_eq(s.entry_patient, 1);
    cr_expect_eq(s.entry_role, 2);
    cr_expect_eq(s.entry_practitioner, 3);
    cr_expect_str_eq(s.full_url[0], "urn:uuid:sr");
    cr_expect_str_eq(s.full_url[1], "urn:uuid:pt");
    cr_expect_str_eq(s.full_url[2], "urn:uuid:role");
    cr_expect_str_eq(s.full_url[3], "urn:uuid:prac");

    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_eq(hx_intake_validate(r, &errs), 0, "intake refuses what was read: %s",
                 errs.count ? errs.items[0].why : "");
    hx_fhir_submission_free(&s);
    cr_expect_null(s.referral);
    cr_expect_null(s.paths);
    json_decref(b);
}

Test(fhir_read_submission, paths_name_the_elements_read)
{
    json_t *b = bundle_with(NULL);
    hx_fhir_submission_t s;
    read_ok(b, &s);
    static const char *const want[][2] = {
        {"ref", "Bundle.entry[0].resource.identifier[0].value"},
        {"reason", "Bundle.entry[0].resource.reasonCode[0].text"},
        {"conditions[0]", "Bundle.entry[0].resource.reasonCode[1].coding[0].code"},
        {"findings[0]", "Bundle.entry[0].resource.reasonCode[2].coding[0].code"},
        {"history", "Bundle.entry[0].resource.note[0].text"},
        {"expectations", "Bundle.entry[0].resource.note[3].text"},
        {"consent", "Bundle.entry[0].resource.extension[0].valueCode"},
        {"preferences.availability[0].from", "Bundle.entry[0].resource.extension[3].extension[1].valueTime"},
        {"preferences.availability[0].day", "Bundle.entry[0].resource.extension[3].extension[0].valueInteger"},
        {"preferences.clinic_ids[1]", "Bundle.entry[0].resource.performer[1].reference"},
        {"referral_date", "Bundle.entry[0].resource.authoredOn"},
        {"patient.birth_date", "Bundle.entry[1].resource.birthDate"},
        {"patient.given_name", "Bundle.entry[1].resource.name[0].given"},
        {"patient.family_name", "Bundle.entry[1].resource.name[0].family"},
        {"patient.phone", "Bundle.entry[1].resource.telecom[1].value"},
        {"patient.health_card", "Bundle.entry[1].resource.identifier[1].value"},
        {"patient.language", "Bundle.entry[1].resource.communication[1].language.coding[0].code"},
        {"referrer.discipline", "Bundle.entry[2].resource.code[0].coding[0].code"},
        {"referrer.email", "Bundle.entry[2].resource.telecom[1].value"},
        {"referrer.name", "Bundle.entry[3].resource.name[0].text"},
        {"referrer.registration_number", "Bundle.entry[3].resource.identifier[0].value"},
        {"referrer.province", "Bundle.entry[3].resource.address[0].state"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    {
        const char *got = json_string_value(json_object_get(s.paths, want[i][0]));
        cr_expect_str_eq(got ? got : "(none)", want[i][1], "%s", want[i][0]);
    }
    hx_fhir_submission_free(&s);
    json_decref(b);
}

Test(fhir_read_submission, coded_reasons_give_words_and_never_refuse_snomed)
{
    json_t *b = bundle_with("[{'op':'replace','path':'/entry/0/resource/reasonCode','value':["
                            "{'coding':[{'system':'http://snomed.info/sct','code':'279039007','display':'Low back pain'}]},"
                            "{'coding':[{'system':'http://hl7.org/fhir/sid/icd-10','code':'M54.5'}],'text':'lumbago'}]},"
                            "{'op':'remove','path':'/entry/0/resource/note'}]");
    hx_fhir_submission_t s;
    read_ok(b, &s);
    cr_expect_str_eq(s.referral->reason, "Low back pain; lumbago");
    cr_expect_eq(s.referral->n_conditions, 0);
    cr_expect_str_eq(json_string_value(json_object_get(s.paths, "reason")),
                     "Bundle.entry[0].resource.reasonCode[0].coding");
    hx_fhir_submission_free(&s);
    json_decref(b);

    /* a coding without words is nothing triage can read */
    refused_at("[{'op':'replace','path':'/entry/0/resource/reasonCode/0','value':"
               "{'coding':[{'system':'http://snomed.info/sct','code':'279039007'}]}}]",
               "Bundle.entry[0].resource.reasonCode[0]", "required");
}

Test(fhir_read_submission, references_by_type_and_id_and_no_practitioner)
{
    /* subject by Patient/id, no Practitioner: the role's practitioner stays unnamed */
    json_t *b = bundle_with("[{'op':'replace','path':'/entry/0/resource/subject/reference','value':'Patient/pt1'},"
                            "{'op':'remove','path':'/entry/3'},"
                            "{'op':'remove','path':'/entry/2/resource/practitioner'}]");
    hx_fhir_submission_t s;
    read_ok(b, &s);
    cr_expect_str_eq(s.referral->referrer->name, "");
    cr_expect_null(s.full_url[3]);
    cr_expect_eq(s.entry_practitioner, SIZE_MAX, "no Practitioner: no index of an entry");
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_expect_gt(hx_intake_validate(s.referral, &errs), 0);
    json_t *oo = hx_fhir_submission_outcome(&s, &errs);
    cr_expect(has_issue(oo, "Bundle.entry[2].resource.practitioner", "required"), "%s", dump(oo));
    json_decref(oo);
    hx_fhir_submission_free(&s);
    json_decref(b);
}

/* ---- the submission: refusals ------------------------------------------------------------------ */

Test(fhir_read_submission, refuses_what_is_not_a_transaction)
{
    hx_fhir_submission_t s;
    json_t *oo = NULL;
    json_t *str = json_string("Bundle");
    cr_assert_eq(hx_fhir_read_submission(str, "harbour", 32, &s, &oo), -1);
    cr_expect(has_issue(oo, "Bundle", "structure"));
    json_decref(oo);
    json_decref(str);

    refused_at("[{'op':'replace','path':'/resourceType','value':'Parameters'}]", "Bundle.resourceType", "invalid");
    refused_at("[{'op':'replace','path':'/type','value':'batch'}]", "Bundle.type", "invalid");
    refused_at("[{'op':'replace','path':'/entry','value':[]}]", "Bundle.entry", "required");
    refused_at("[{'op':'add','path':'/signature','value':{}}]", "Bundle.signature", "structure");

    json_t *b = bundle_with(NULL);
    cr_assert_eq(hx_fhir_read_submission(b, "harbour", 4, &s, &oo), -1);
    cr_expect(has_issue(oo, "Bundle.entry", "too-costly"), "%s", dump(oo));
    json_decref(oo);
    json_decref(b);
}

Test(fhir_read_submission, refuses_bad_entries)
{
    refused_at("[{'op':'remove','path':'/entry/1/request'}]", "Bundle.entry[1].request", "required");
    refused_at("[{'op':'remove','path':'/entry/1/resource'}]", "Bundle.entry[1].resource", "required");
    refused_at("[{'op':'replace','path':'/entry/0/request/method','value':'PUT'}]", "Bundle.entry[0].request.method",
               "not-supported");
    refused_at("[{'op':'replace','path':'/entry/1/request/url','value':'Person'}]", "Bundle.entry[1].request.url",
               "invalid");
    refused_at("[{'op':'replace','path':'/entry/1/resource/resourceType','value':'Observation'}]",
               "Bundle.entry[1].resource.resourceType", "not-supported");
    refused_at("[{'op':'add','path':'/entry/-','value':{'request':{'method':'POST','url':'ServiceRequest'},"
               "'resource':{'resourceType':'ServiceRequest','status':'active'}}}]",
               "Bundle.entry[5]", "duplicate");
    refused_at("[{'op':'replace','path':'/entry/4/fullUrl','value':'urn:uuid:pt'}]", "Bundle.entry[4].fullUrl",
               "duplicate");
    refused_at("[{'op':'replace','path':'/entry/0/request/ifNoneExist','value':'identifier=urn:handoff:ref|OTHER'}]",
               "Bundle.entry[0].request.ifNoneExist", "invalid");
    refused_at("[{'op':'replace','path':'/entry/0/request/ifNoneExist','value':'_id=x'}]",
               "Bundle.entry[0].request.ifNoneExist", "not-supported");
}

Test(fhir_read_submission, refuses_missing_parts_and_unresolved_references)
{
    refused_at("[{'op':'remove','path':'/entry/1'}]", "Bundle.entry", "required");
    refused_at("[{'op':'remove','path':'/entry/0'}]", "Bundle.entry", "required");
    refused_at("[{'op':'remove','path':'/entry/0/resource/requester'}]", "Bundle.entry[0].resource.requester",
               "required");
    refused_at("[{'op':'remove','path':'/entry/0/resource/subject'}]", "Bundle.entry[0].resource.subject", "required");
    refused_at("[{'op':'replace','path':'/entry/0/resource/subject/reference','value':'Patient/elsewhere'}]",
               "Bundle.entry[0].resource.subject.reference", "not-found");
    refused_at("[{'op':'replace','path':'/entry/0/resource/requester/reference','value':'urn:uuid:prac'}]",
               "Bundle.entry[0].resource.requester.reference", "invalid");
    refused_at("[{'op':'replace','path':'/entry/0/resource/supportingInfo/0/reference','value':'urn:uuid:nothing'}]",
               "Bundle.entry[0].resource.supportingInfo[0].reference", "not-found");
    refused_at("[{'op':'replace','path':'/entry/0/resource/performer/0/reference','value':'Practitioner/x'}]",
               "Bundle.entry[0].resource.performer[0].reference", "invalid");
    refused_at("[{'op':'replace','path':'/entry/2/resource/organization/reference','value':'Organization/lakeside'}]",
               "Bundle.entry[2].resource.organization.reference", "business-rule");
}

Test(fhir_read_submission, refuses_unknown_elements_and_wrong_types)
{
    refused_at("[{'op':'add','path':'/entry/1/resource/maritalStatus','value':{'text':'S'}}]",
               "Bundle.entry[1].resource.maritalStatus", "structure");
    refused_at("[{'op':'add','path':'/entry/1/resource/name/0/nickname','value':'Ti'}]",
               "Bundle.entry[1].resource.name[0].nickname", "structure");
    refused_at("[{'op':'add','path':'/entry/0/resource/modifierExtension','value':[]}]",
               "Bundle.entry[0].resource.modifierExtension", "structure");
    refused_at("[{'op':'add','path':'/entry/1/resource/_birthDate','value':{}}]", "Bundle.entry[1].resource._birthDate",
               "structure");
    refused_at("[{'op':'add','path':'/entry/0/request/ifMatch','value':'W/1'}]", "Bundle.entry[0].request.ifMatch",
               "structure");
    refused_at("[{'op':'replace','path':'/entry/1/resource/birthDate','value':19940719}]",
               "Bundle.entry[1].resource.birthDate", "structure");
    refused_at("[{'op':'replace','path':'/entry/1/resource/name','value':{'family':'Mendes'}}]",
               "Bundle.entry[1].resource.name", "structure");
    refused_at("[{'op':'replace','path':'/entry/1/resource/telecom/1/value','value':''}]",
               "Bundle.entry[1].resource.telecom[1].value", "value");
    refused_at("[{'op':'add','path':'/entry/0/resource/code','value':{'text':'physio'}}]",
               "Bundle.entry[0].resource.code", "not-supported");
    refused_at("[{'op':'add','path':'/entry/0/resource/identifier/-','value':{'system':'urn:handoff:referral-id',"
               "'value':'R-0000000000000000'}}]",
               "Bundle.entry[0].resource.identifier[2]", "invalid");
    refused_at("[{'op':'add','path':'/entry/2/resource/extension','value':[{'url':'urn:handoff:ext:registration-kind',"
               "'valueCode':'college'}]}]",
               "Bundle.entry[2].resource.extension[0]", "invalid");
    refused_at("[{'op':'replace','path':'/entry/0/resource/extension/0/url','value':'urn:handoff:ext:consnt'}]",
               "Bundle.entry[0].resource.extension[0]", "not-supported");
    refused_at("[{'op':'replace','path':'/entry/0/resource/extension/3/extension/1/valueTime','value':'7.30'}]",
               "Bundle.entry[0].resource.extension[3].extension[1].valueTime", "value");
    refused_at("[{'op':'replace','path':'/entry/0/resource/authoredOn','value':'16/11/2026'}]",
               "Bundle.entry[0].resource.authoredOn", "value");
    refused_at("[{'op':'replace','path':'/entry/0/resource/authoredOn','value':'2026-02-30'}]",
               "Bundle.entry[0].resource.authoredOn", "value");
}

Test(fhir_read_submission, refuses_codes_outside_their_value_sets)
{
    refused_at("[{'op':'replace','path':'/entry/0/resource/priority','value':'soon'}]",
               "Bundle.entry[0].resource.priority", "value");
    refused_at("[{'op':'replace','path':'/entry/0/resource/intent','value':'plan'}]", "Bundle.entry[0].resource.intent",
               "value");
    refused_at("[{'op':'replace','path':'/entry/0/resource/status','value':'pending'}]",
               "Bundle.entry[0].resource.status", "value");
    refused_at("[{'op':'replace','path':'/entry/0/resource/status','value':'draft'}]",
               "Bundle.entry[0].resource.status", "business-rule");
    refused_at("[{'op':'replace','path':'/entry/1/resource/gender','value':'m'}]", "Bundle.entry[1].resource.gender",
               "value");
    refused_at("[{'op':'replace','path':'/entry/1/resource/telecom/0/system','value':'telegram'}]",
               "Bundle.entry[1].resource.telecom[0].system", "value");
    refused_at("[{'op':'replace','path':'/entry/0/resource/extension/0/valueCode','value':'maybe'}]",
               "Bundle.entry[0].resource.extension[0].valueCode", "value");
    refused_at("[{'op':'replace','path':'/entry/0/resource/note/0/extension/0/valueCode','value':'plan'}]",
               "Bundle.entry[0].resource.note[0].extension[0].valueCode", "value");
    refused_at("[{'op':'replace','path':'/entry/2/resource/code/0/coding/0/code','value':'chiropractic'}]",
               "Bundle.entry[2].resource.code[0].coding[0].code", "value");
    refused_at("[{'op':'replace','path':'/entry/4/resource/status','value':'superseded'}]",
               "Bundle.entry[4].resource.status", "value");
}

/* base64 of n bytes of 'A'. */
static char *big_base64(size_t n)
{
    size_t cap = n / 3 * 4 + 8;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        size_t left = n - i;
        memcpy(out + o, left >= 3 ? "QUFB" : left == 2 ? "QUE=" : "QQ==", 4);
        o += 4;
    }
    out[o] = '\0';
    return out;
}

static void refused_attachment(const char *data, const char *code)
{
    json_t *b = bundle_with(NULL);
    json_t *att = json_object_get(json_array_get(json_object_get(json_object_get(json_array_get(
                                      json_object_get(b, "entry"), 4), "resource"), "content"), 0), "attachment");
    json_object_set_new(att, "data", json_string(data));
    hx_fhir_submission_t s;
    json_t *oo = NULL;
    cr_assert_eq(hx_fhir_read_submission(b, "harbour", 32, &s, &oo), -1);
    cr_expect(has_issue(oo, "Bundle.entry[4].resource.content[0].attachment.data", code), "%s", dump(oo));
    json_decref(oo);
    json_decref(b);
}

Test(fhir_read_submission, refuses_attachments_too_big_or_not_base64_or_too_many)
{
    char *big = big_base64(262145);
    refused_attachment(big, "too-costly");
    free(big);
    refused_attachment("not base64!", "value");

    char *limit = big_base64(262144);         /* exactly the limit is taken */
    json_t *b = bundle_with(NULL);
    json_t *att = json_object_get(json_array_get(json_object_get(json_object_get(json_array_get(
                                      json_object_get(b, "entry"), 4), "resource"), "content"), 0), "attachment");
    json_object_set_new(att, "data", json_string(limit));
    free(limit);
    hx_fhir_submission_t s;
    read_ok(b, &s);
    cr_expect_eq(s.attach[0]->data.len, 262144);
    hx_fhir_submission_free(&s);
    json_decref(b);

    refused_at("[{'op':'replace','path':'/entry/4/resource/content/0/attachment/title','value':'a/b.pdf'}]",
               "Bundle.entry[4].resource.content[0].attachment.title", "value");
    refused_at("[{'op':'add','path':'/entry/4/resource/content/0/attachment/url','value':'http://x/y.pdf'}]",
               "Bundle.entry[4].resource.content[0].attachment.url", "not-supported");

    b = bundle_with(NULL);
    json_t *entries = json_object_get(b, "entry");
    json_t *doc = json_array_get(entries, 4);
    for (int i = 0; i < HX_FHIR_ATTACH_MAX; i++) {
        json_t *copy = json_deep_copy(doc);
        json_object_del(copy, "fullUrl");
        json_array_append_new(entries, copy);
    }
    json_t *oo = NULL;
    cr_assert_eq(hx_fhir_read_submission(b, "harbour", 32, &s, &oo), -1);
    char expr[64];
    snprintf(expr, sizeof expr, "Bundle.entry[%d].resource", 4 + HX_FHIR_ATTACH_MAX);
    cr_expect(has_issue(oo, expr, "too-costly"), "%s", dump(oo));
    json_decref(oo);
    json_decref(b);
}

Test(fhir_read_submission, reports_every_problem_at_once)
{
    json_t *b = bundle_with("[{'op':'replace','path':'/entry/0/resource/priority','value':'soon'},"
                            "{'op':'add','path':'/entry/1/resource/photo','value':[]},"
                            "{'op':'replace','path':'/entry/3/resource/name','value':'Isabel'}]");
    hx_fhir_submission_t s;
    json_t *oo = NULL;
    cr_assert_eq(hx_fhir_read_submission(b, "harbour", 32, &s, &oo), -1);
    cr_expect(has_issue(oo, "Bundle.entry[0].resource.priority", NULL));
    cr_expect(has_issue(oo, "Bundle.entry[1].resource.photo", NULL));
    cr_expect(has_issue(oo, "Bundle.entry[3].resource.name", NULL));
    json_decref(oo);
    json_decref(b);
}

/* ---- intake's errors back on the Bundle ---------------------------------------------------------- */

/* Reads the patched bundle (taken), runs intake, and expects an issue at expr. */
static void intake_error_at(const char *patch, const char *expr)
{
    json_t *b = bundle_with(patch);
    hx_fhir_submission_t s;
    read_ok(b, &s);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    cr_assert_gt(hx_intake_validate(s.referral, &errs), 0, "intake took patch %s", patch);
    json_t *oo = hx_fhir_submission_outcome(&s, &errs);
    cr_expect(has_issue(oo, expr, NULL), "patch %s: no issue at %s in %s", patch, expr, dump(oo));
    every_issue_placed(oo);
    json_decref(oo);
    hx_fhir_submission_free(&s);
    json_decref(b);
}

Test(fhir_read_submission, intake_errors_point_into_the_bundle)
{
    intake_error_at("[{'op':'replace','path':'/entry/1/resource/birthDate','value':'1994-13-40'}]",
                    "Bundle.entry[1].resource.birthDate");
    intake_error_at("[{'op':'remove','path':'/entry/1/resource/birthDate'}]", "Bundle.entry[1].resource.birthDate");
    intake_error_at("[{'op':'remove','path':'/entry/1/resource/telecom'}]", "Bundle.entry[1].resource.telecom");
    intake_error_at("[{'op':'replace','path':'/entry/1/resource/name/0/given','value':['  ']}]",
                    "Bundle.entry[1].resource.name[0].given");
    intake_error_at("[{'op':'replace','path':'/entry/1/resource/address/0/postalCode','value':'90210'}]",
                    "Bundle.entry[1].resource.address[0].postalCode");
    intake_error_at("[{'op':'replace','path':'/entry/0/resource/extension/3/extension/2/valueTime','value':'06:00:00'}]",
                    "Bundle.entry[0].resource.extension[3].extension[2].valueTime");
    intake_error_at("[{'op':'replace','path':'/entry/0/resource/extension/3/extension/0/valueInteger','value':9}]",
                    "Bundle.entry[0].resource.extension[3].extension[0].valueInteger");
    intake_error_at("[{'op':'replace','path':'/entry/0/resource/extension/0/valueCode','value':'withheld'}]",
                    "Bundle.entry[0].resource.extension[0].valueCode");
    intake_error_at("[{'op':'remove','path':'/entry/0/resource/extension/0'}]", "Bundle.entry[0].resource.extension");
    intake_error_at("[{'op':'replace','path':'/entry/0/resource/extension/4/valueInteger','value':50}]",
                    "Bundle.entry[0].resource.extension[4].valueInteger");
    intake_error_at("[{'op':'replace','path':'/entry/0/resource/performer/1/reference','value':'Organization/North.Point'}]",
                    "Bundle.entry[0].resource.performer[1].reference");
    intake_error_at("[{'op':'replace','path':'/entry/0/resource/reasonCode/1/coding/0/code','value':'Ankle-Sprain'}]",
                    "Bundle.entry[0].resource.reasonCode[1].coding[0].code");
    intake_error_at("[{'op':'replace','path':'/entry/0/resource/identifier/0/value','value':'HB 2026'},"
                    "{'op':'remove','path':'/entry/0/request/ifNoneExist'}]",
                    "Bundle.entry[0].resource.identifier[0].value");
    intake_error_at("[{'op':'remove','path':'/entry/0/resource/identifier/0'},"
                    "{'op':'remove','path':'/entry/0/request/ifNoneExist'}]",
                    "Bundle.entry[0].resource.identifier");
    intake_error_at("[{'op':'remove','path':'/entry/0/resource/reasonCode/0'},"
                    "{'op':'remove','path':'/entry/0/resource/reasonCode/2'}]",
                    "Bundle.entry[0].resource.reasonCode");
    intake_error_at("[{'op':'replace','path':'/entry/3/resource/identifier/0/value','value':'19-877'}]",
                    "Bundle.entry[3].resource.identifier[0].value");
    intake_error_at("[{'op':'replace','path':'/entry/3/resource/address/0/state','value':'ZZ'}]",
                    "Bundle.entry[3].resource.address[0].state");
    intake_error_at("[{'op':'remove','path':'/entry/2/resource/code'}]", "Bundle.entry[2].resource.code");
    intake_error_at("[{'op':'replace','path':'/entry/2/resource/telecom/1/value','value':'not an email'}]",
                    "Bundle.entry[2].resource.telecom[1].value");
    intake_error_at("[{'op':'remove','path':'/entry/0/resource/authoredOn'}]", "Bundle.entry[0].resource.authoredOn");
}

Test(fhir_read_submission, unknown_intake_paths_fall_back)
{
    json_t *b = bundle_with(NULL);
    hx_fhir_submission_t s;
    read_ok(b, &s);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_errors_add(&errs, "preferences.availability[0]", "required");
    hx_errors_add(&errs, "something.else", "odd");
    json_t *oo = hx_fhir_submission_outcome(&s, &errs);
    cr_expect(has_issue(oo, "Bundle.entry[0].resource.extension[3]", "required"), "%s", dump(oo));
    cr_expect(has_issue(oo, "Bundle.entry[0].resource", "invalid"), "%s", dump(oo));
    json_decref(oo);
    hx_fhir_submission_free(&s);
    json_decref(b);
}

/* ---- the mapping both ways: a referral out through the view and back in ---------------------------- */

static char *clinics[] = {"lakeside"};
static char *conditions[] = {"low_back_pain"};

Test(fhir_read_submission, what_the_view_writes_reads_back)
{
    Handoff__Patient pt = HANDOFF__PATIENT__INIT;
    ada(&pt);
    Handoff__Referrer rf = HANDOFF__REFERRER__INIT;
    isabel(&rf, "harbour");
    rf.province = "ON";
    rf.phone = "905-555-0100";
    Handoff__Availability w = HANDOFF__AVAILABILITY__INIT;
    w.day = 3;
    w.from = "09:00";
    w.to = "17:30";
    Handoff__Availability *ws[] = {&w};
    Handoff__Preferences pr = HANDOFF__PREFERENCES__INIT;
    pr.clinic_ids = clinics;
    pr.n_clinic_ids = 1;
    pr.language = "fr";
    pr.virtual_ok = true;
    pr.availability = ws;
    pr.n_availability = 1;
    pr.massage_minutes = 90;
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = RID;
    r.ref = "HB-9";
    r.referring_clinic = "harbour";
    r.patient = &pt;
    r.referrer = &rf;
    r.reason = "low back pain for six weeks";
    r.conditions = conditions;
    r.n_conditions = 1;
    r.history = "desk work";
    r.diagnosis = "mechanical";
    r.current_treatment = "ibuprofen";
    r.expectations = "return to work";
    r.priority = HANDOFF__PRIORITY__PRIORITY_ROUTINE;
    r.consent = HANDOFF__CONSENT__CONSENT_GIVEN;
    r.referral_date = "2026-11-20";
    r.preferences = &pr;

    size_t len = handoff__referral__get_packed_size(&r);
    uint8_t *buf = malloc(len);
    handoff__referral__pack(&r, buf);
    Handoff__Referral *heap = handoff__referral__unpack(NULL, len, buf);
    free(buf);
    hx_fhir_view_t *v = hx_fhir_view_new("harbour", NULL);
    cr_assert_eq(hx_fhir_view_add_sent(v, RID, "HB-9", heap, UINT64_C(1795000000000)), 0);

    /* what the server writes and a client cannot send: ids the network gives, triage's
     * codes, the registration kind intake sets */
    json_t *sr = hx_fhir_view_read(v, HX_FHIR_SERVICE_REQUEST, RID);
    json_t *pat = hx_fhir_view_read(v, HX_FHIR_PATIENT, RID "-patient");
    json_t *role = hx_fhir_view_read(v, HX_FHIR_PRACTITIONER_ROLE, RID "-referrer");
    json_t *prac = hx_fhir_view_read(v, HX_FHIR_PRACTITIONER, RID "-referrer");
    cr_assert(sr && pat && role && prac);
    json_t *ids = json_object_get(sr, "identifier");
    for (size_t i = json_array_size(ids); i-- > 0;) {
        json_t *id = json_array_get(ids, i);
        if (!strcmp(json_string_value(json_object_get(id, "system")), HX_FHIR_SYS_REFERRAL_ID))
            json_array_remove(ids, i);
        else
            json_object_del(id, "assigner");
    }
    json_object_del(sr, "code");
    json_object_del(sr, "performerType");
    json_object_del(role, "extension");
    json_t *entries = json_array();
    json_t *res[] = {sr, pat, role, prac};
    for (size_t i = 0; i < 4; i++) {
        const char *type = json_string_value(json_object_get(res[i], "resourceType"));
        json_array_append_new(entries, json_pack("{s:o, s:{s:s, s:s}}", "resource", res[i], "request", "method",
                                                 "POST", "url", type));
    }
    json_t *b = json_pack("{s:s, s:s, s:o}", "resourceType", "Bundle", "type", "transaction", "entry", entries);
    hx_fhir_submission_t s;
    read_ok(b, &s);
    const Handoff__Referral *g = s.referral;
    cr_expect_str_eq(g->ref, "HB-9");
    cr_expect_str_eq(g->patient->given_name, "Ada");
    cr_expect_str_eq(g->patient->family_name, "Lovelace");
    cr_expect_str_eq(g->patient->birth_date, "1961-04-02");
    cr_expect_str_eq(g->patient->phone, "+1 905 555 0101");
    cr_expect_str_eq(g->patient->email, "ada@example.org");
    cr_expect_str_eq(g->patient->health_card, "1234-567-890");
    cr_expect_str_eq(g->patient->language, "en");
    cr_expect_str_eq(g->patient->postal_code, "L8P 4R5");
    cr_expect_str_eq(g->referrer->name, "Isabel Ruiz");
    cr_expect_eq(g->referrer->discipline, PT);
    cr_expect_str_eq(g->referrer->registration_body, "CPO");
    cr_expect_str_eq(g->referrer->registration_number, "19877");
    cr_expect_str_eq(g->referrer->province, "ON");
    cr_expect_str_eq(g->referrer->phone, "905-555-0100");
    cr_expect_str_eq(g->reason, "low back pain for six weeks");
    cr_assert_eq(g->n_conditions, 1);
    cr_expect_str_eq(g->conditions[0], "low_back_pain");
    cr_expect_str_eq(g->history, "desk work");
    cr_expect_str_eq(g->diagnosis, "mechanical");
    cr_expect_str_eq(g->current_treatment, "ibuprofen");
    cr_expect_str_eq(g->expectations, "return to work");
    cr_expect_eq(g->priority, HANDOFF__PRIORITY__PRIORITY_ROUTINE);
    cr_expect_eq(g->consent, HANDOFF__CONSENT__CONSENT_GIVEN);
    cr_expect_str_eq(g->referral_date, "2026-11-20");
    cr_assert_not_null(g->preferences);
    cr_assert_eq(g->preferences->n_clinic_ids, 1);
    cr_expect_str_eq(g->preferences->clinic_ids[0], "lakeside");
    cr_expect_str_eq(g->preferences->language, "fr");
    cr_expect(g->preferences->virtual_ok);
    cr_expect_eq(g->preferences->massage_minutes, 90);
    cr_assert_eq(g->preferences->n_availability, 1);
    cr_expect_eq(g->preferences->availability[0]->day, 3);
    cr_expect_str_eq(g->preferences->availability[0]->from, "09:00");
    cr_expect_str_eq(g->preferences->availability[0]->to, "17:30");
    hx_fhir_submission_free(&s);
    json_decref(b);
    hx_fhir_view_destroy(&v);
}

/* ---- JSON Patch ----------------------------------------------------------------------------------- */

/* Applies patch to doc and expects want (NULL: a refusal). */
static void patch_gives(const char *doc, const char *patch, const char *want)
{
    json_t *d = js(doc), *p = js(patch), *oo = NULL;
    json_t *got = hx_fhir_json_patch(d, p, &oo);
    if (want) {
        json_t *w = js(want);
        cr_expect(got && json_equal(got, w), "patch %s on %s gave %s", patch, doc, got ? dump(got) : dump(oo));
        json_decref(w);
        cr_expect_null(oo);
    } else {
        cr_expect_null(got, "patch %s on %s was applied", patch, doc);
        cr_expect_eq(json_array_size(json_object_get(oo, "issue")), 1);
    }
    json_t *again = js(doc);
    cr_expect(json_equal(d, again), "the input document was changed");
    json_decref(again);
    json_decref(got);
    json_decref(oo);
    json_decref(d);
    json_decref(p);
}

Test(fhir_json_patch, rfc6902_appendix_a)
{
    /* A.1 .. A.16 */
    patch_gives("{'foo':'bar'}", "[{'op':'add','path':'/baz','value':'qux'}]", "{'baz':'qux','foo':'bar'}");
    patch_gives("{'foo':['bar','baz']}", "[{'op':'add','path':'/foo/1','value':'qux'}]",
                "{'foo':['bar','qux','baz']}");
    patch_gives("{'baz':'qux','foo':'bar'}", "[{'op':'remove','path':'/baz'}]", "{'foo':'bar'}");
    patch_gives("{'foo':['bar','qux','baz']}", "[{'op':'remove','path':'/foo/1'}]", "{'foo':['bar','baz']}");
    patch_gives("{'baz':'qux','foo':'bar'}", "[{'op':'replace','path':'/baz','value':'boo'}]",
                "{'baz':'boo','foo':'bar'}");
    patch_gives("{'foo':{'bar':'baz','waldo':'fred'},'qux':{'corge':'grault'}}",
                "[{'op':'move','from':'/foo/waldo','path':'/qux/thud'}]",
                "{'foo':{'bar':'baz'},'qux':{'corge':'grault','thud':'fred'}}");
    patch_gives("{'foo':['all','grass','cows','eat']}", "[{'op':'move','from':'/foo/1','path':'/foo/3'}]",
                "{'foo':['all','cows','eat','grass']}");
    patch_gives("{'baz':'qux','foo':['a',2,'c']}",
                "[{'op':'test','path':'/baz','value':'qux'},{'op':'test','path':'/foo/1','value':2}]",
                "{'baz':'qux','foo':['a',2,'c']}");
    patch_gives("{'baz':'qux'}", "[{'op':'test','path':'/baz','value':'bar'}]", NULL);
    patch_gives("{'foo':'bar'}", "[{'op':'add','path':'/child','value':{'grandchild':{}}}]",
                "{'foo':'bar','child':{'grandchild':{}}}");
    patch_gives("{'foo':'bar'}", "[{'op':'add','path':'/baz','value':'qux','xyz':123}]",
                "{'foo':'bar','baz':'qux'}");
    patch_gives("{'foo':'bar'}", "[{'op':'add','path':'/baz/bat','value':'qux'}]", NULL);
    patch_gives("{'/':9,'~1':10}", "[{'op':'test','path':'/~01','value':10}]", "{'/':9,'~1':10}");
    patch_gives("{'/':9,'~1':10}", "[{'op':'test','path':'/~01','value':'10'}]", NULL);
    patch_gives("{'foo':['bar']}", "[{'op':'add','path':'/foo/-','value':['abc','def']}]",
                "{'foo':['bar',['abc','def']]}");
}

Test(fhir_json_patch, pointers_and_every_operation_checked)
{
    patch_gives("{'a/b':1}", "[{'op':'replace','path':'/a~1b','value':2}]", "{'a/b':2}");
    patch_gives("{'a':1}", "[{'op':'replace','path':'','value':[1]}]", "[1]");
    patch_gives("{'a':1}", "[{'op':'add','path':'','value':{'b':2}}]", "{'b':2}");
    patch_gives("{'a':[1,2]}", "[{'op':'copy','from':'/a','path':'/b'},{'op':'add','path':'/b/-','value':3}]",
                "{'a':[1,2],'b':[1,2,3]}");
    patch_gives("{'a':[1]}", "[{'op':'add','path':'/a/2','value':3}]", NULL);    /* past the end */
    patch_gives("{'a':[1]}", "[{'op':'add','path':'/a/01','value':3}]", NULL);   /* leading zero */
    patch_gives("{'a':[1]}", "[{'op':'replace','path':'/a/-','value':3}]", NULL);
    patch_gives("{'a':1}", "[{'op':'replace','path':'/b','value':3}]", NULL);
    patch_gives("{'a':1}", "[{'op':'remove','path':'/b'}]", NULL);
    patch_gives("{'a':1}", "[{'op':'remove','path':''}]", NULL);
    patch_gives("{'a':1}", "[{'op':'add','path':'a','value':3}]", NULL);          /* no leading / */
    patch_gives("{'a':1}", "[{'op':'add','path':'/~2','value':3}]", NULL);        /* bad escape */
    patch_gives("{'a':1}", "[{'op':'add','path':'/b'}]", NULL);                   /* no value */
    patch_gives("{'a':1}", "[{'op':'move','path':'/b'}]", NULL);                  /* no from */
    patch_gives("{'a':{'b':1}}", "[{'op':'move','from':'/a','path':'/a/c'}]", NULL);
    patch_gives("{'a':1}", "[{'op':'frobnicate','path':'/a'}]", NULL);
    patch_gives("{'a':1}", "[{'path':'/a'}]", NULL);
    patch_gives("{'a':1}", "[17]", NULL);
    patch_gives("{'a':1}", "[{'op':'test','path':'/a','value':1.0}]", NULL);     /* 1 is not 1.0 */
    /* a failing operation leaves nothing half done */
    patch_gives("{'a':1}", "[{'op':'add','path':'/b','value':2},{'op':'test','path':'/b','value':3}]", NULL);

    json_t *d = js("{}"), *oo = NULL;
    json_t *p = js("{'op':'add'}");
    cr_expect_null(hx_fhir_json_patch(d, p, &oo));
    cr_expect_not_null(oo);
    json_decref(oo);
    json_decref(p);
    json_decref(d);
}

/* ---- Task updates --------------------------------------------------------------------------------- */

/* A child Task as the view writes it. */
static json_t *child_task(const char *status)
{
    json_t *t = js("{'resourceType':'Task','id':'" RID "-physiotherapy','meta':{'versionId':'3',"
                   "'lastUpdated':'2026-11-28T10:00:00.000Z'},"
                   "'extension':[{'url':'urn:handoff:ext:event','valueCode':'book'}],"
                   "'status':'requested','intent':'order',"
                   "'code':{'coding':[{'system':'urn:handoff:task','code':'handoff'}],'text':'physiotherapy'},"
                   "'businessStatus':{'coding':[{'system':'urn:handoff:business-status','code':'received'}]},"
                   "'basedOn':[{'reference':'ServiceRequest/" RID "'}],'partOf':[{'reference':'Task/" RID "'}],"
                   "'focus':{'reference':'ServiceRequest/" RID "'},'for':{'reference':'Patient/" RID "-patient'},"
                   "'requester':{'reference':'PractitionerRole/" RID "-referrer'},"
                   "'owner':{'reference':'Organization/lakeside'},'statusReason':{'text':'booked'},"
                   "'authoredOn':'2026-11-27T09:00:00.000Z','lastModified':'2026-11-28T10:00:00.000Z'}");
    json_object_set_new(t, "status", json_string(status));
    return t;
}

/* The change new (old patched) asks for; asserts it is taken. */
static void change_ok(const json_t *old_task, const char *patch, Handoff__StatusChange *ch)
{
    json_t *p = js(patch), *oo = NULL;
    json_t *nt = hx_fhir_json_patch(old_task, p, &oo);
    cr_assert_not_null(nt, "%s", dump(oo));
    int rc = hx_fhir_task_change(old_task, nt, ch, &oo);
    cr_assert_eq(rc, 0, "patch %s refused: %s", patch, dump(oo));
    json_decref(nt);
    json_decref(p);
}

static void change_refused(const json_t *old_task, const char *patch, const char *expr)
{
    json_t *p = js(patch), *oo = NULL;
    json_t *nt = hx_fhir_json_patch(old_task, p, &oo);
    cr_assert_not_null(nt, "%s", dump(oo));
    Handoff__StatusChange ch;
    cr_assert_eq(hx_fhir_task_change(old_task, nt, &ch, &oo), -1, "patch %s was taken", patch);
    cr_expect(has_issue(oo, expr, NULL), "patch %s: no issue at %s in %s", patch, expr, dump(oo));
    cr_expect_str_eq(ch.event, "", "nothing is left in the change after a refusal");
    json_decref(oo);
    json_decref(nt);
    json_decref(p);
}

Test(fhir_task_change, each_status_move_is_its_event)
{
    json_t *t = child_task("requested");
    Handoff__StatusChange ch;
    change_ok(t, "[{'op':'replace','path':'/status','value':'accepted'}]", &ch);
    cr_expect_str_eq(ch.event, "accept");
    cr_expect_str_eq(ch.referral_id, RID);
    cr_expect_eq(ch.discipline, PT);
    cr_expect_str_eq(ch.reason, "", "the reason of the change before is not this one's");
    hx_fhir_change_free(&ch);

    change_ok(t, "[{'op':'replace','path':'/status','value':'rejected'},"
                 "{'op':'replace','path':'/statusReason','value':{'text':'no therapist speaks Portuguese'}}]", &ch);
    cr_expect_str_eq(ch.event, "decline");
    cr_expect_str_eq(ch.reason, "no therapist speaks Portuguese");
    hx_fhir_change_free(&ch);

    json_object_set_new(t, "status", json_string("accepted"));
    change_ok(t, "[{'op':'replace','path':'/status','value':'in-progress'},"
                 "{'op':'replace','path':'/lastModified','value':'2026-11-29T08:00:00Z'},"
                 "{'op':'add','path':'/note','value':[{'text':'first visit'}]}]", &ch);
    cr_expect_str_eq(ch.event, "start");
    hx_fhir_change_free(&ch);

    json_object_set_new(t, "status", json_string("in-progress"));
    change_ok(t, "[{'op':'replace','path':'/status','value':'completed'},"
                 "{'op':'add','path':'/output','value':[{'type':{'text':'summary'},'valueString':'Discharged: full range.'}]}]",
              &ch);
    cr_expect_str_eq(ch.event, "complete");
    cr_expect_str_eq(ch.summary, "Discharged: full range.");
    hx_fhir_change_free(&ch);

    change_ok(t, "[{'op':'replace','path':'/status','value':'failed'},"
                 "{'op':'replace','path':'/statusReason','value':{'coding':[{'display':'patient moved away'}]}}]", &ch);
    cr_expect_str_eq(ch.event, "fail");
    cr_expect_str_eq(ch.reason, "patient moved away");
    hx_fhir_change_free(&ch);
    json_decref(t);
}

Test(fhir_task_change, redirect_and_revoke)
{
    json_t *t = child_task("accepted");
    Handoff__StatusChange ch;
    change_ok(t, "[{'op':'replace','path':'/owner/reference','value':'Organization/northpoint'},"
                 "{'op':'replace','path':'/statusReason/text','value':'closer to home'}]", &ch);
    cr_expect_str_eq(ch.event, "redirect");
    cr_expect_str_eq(ch.to_clinic, "northpoint");
    cr_expect_str_eq(ch.to_therapist, "");
    cr_expect_str_eq(ch.reason, "closer to home");
    cr_expect_eq(ch.discipline, PT);
    hx_fhir_change_free(&ch);

    change_ok(t, "[{'op':'replace','path':'/owner/reference','value':'PractitionerRole/t-anna'},"
                 "{'op':'replace','path':'/statusReason/text','value':'Anna does ankles'}]", &ch);
    cr_expect_str_eq(ch.event, "redirect");
    cr_expect_str_eq(ch.to_therapist, "t-anna");
    cr_expect_str_eq(ch.to_clinic, "");
    hx_fhir_change_free(&ch);

    /* the parent Task: cancelled is the referrer's revoke */
    json_t *parent = js("{'resourceType':'Task','id':'" RID "','status':'in-progress','intent':'order',"
                        "'code':{'coding':[{'system':'urn:handoff:task','code':'referral'}]},"
                        "'basedOn':[{'reference':'ServiceRequest/" RID "'}]}");
    change_ok(parent, "[{'op':'replace','path':'/status','value':'cancelled'},"
                      "{'op':'add','path':'/statusReason','value':{'text':'patient recovered'}}]", &ch);
    cr_expect_str_eq(ch.event, "revoke");
    cr_expect_eq(ch.discipline, 0);
    cr_expect_str_eq(ch.referral_id, RID);
    cr_expect_str_eq(ch.reason, "patient recovered");
    hx_fhir_change_free(&ch);
    change_refused(parent, "[{'op':'replace','path':'/status','value':'accepted'}]", "Task.status");

    /* a child Task named only by its code's text */
    json_t *mt = js("{'resourceType':'Task','id':'h2','status':'ready','code':{'text':'massage-therapy'},"
                    "'basedOn':[{'reference':'ServiceRequest/" RID "'}]}");
    change_ok(mt, "[{'op':'replace','path':'/status','value':'accepted'}]", &ch);
    cr_expect_eq(ch.discipline, MT);
    cr_expect_str_eq(ch.referral_id, RID);
    hx_fhir_change_free(&ch);
    json_decref(mt);
    json_decref(parent);
    json_decref(t);
}

Test(fhir_task_change, refuses_what_may_not_change)
{
    json_t *t = child_task("accepted");
    change_refused(t, "[{'op':'replace','path':'/intent','value':'plan'}]", "Task.intent");
    change_refused(t, "[{'op':'replace','path':'/for/reference','value':'Patient/other'}]", "Task.for");
    change_refused(t, "[{'op':'add','path':'/priority','value':'stat'}]", "Task.priority");
    change_refused(t, "[{'op':'remove','path':'/requester'}]", "Task.requester");
    change_refused(t, "[{'op':'replace','path':'/id','value':'other'}]", "Task.id");
    change_refused(t, "[{'op':'replace','path':'/extension/0/valueCode','value':'accept'}]", "Task.extension");
    change_refused(t, "[{'op':'add','path':'/description','value':'x'},{'op':'replace','path':'/status',"
                      "'value':'in-progress'}]", "Task.description");
    /* the status and its reasons */
    change_refused(t, "[{'op':'replace','path':'/status','value':'bogus'}]", "Task.status");
    change_refused(t, "[{'op':'replace','path':'/status','value':'on-hold'}]", "Task.status");
    change_refused(t, "[{'op':'replace','path':'/status','value':'cancelled'}]", "Task.status");
    change_refused(t, "[{'op':'replace','path':'/status','value':7}]", "Task.status");
    change_refused(t, "[{'op':'remove','path':'/status'}]", "Task.status");
    change_refused(t, "[{'op':'replace','path':'/status','value':'rejected'}]", "Task.statusReason");
    change_refused(t, "[{'op':'replace','path':'/status','value':'failed'},{'op':'remove','path':'/statusReason'}]",
                   "Task.statusReason");
    change_refused(t, "[{'op':'replace','path':'/status','value':'completed'}]", "Task.output");
    change_refused(t, "[{'op':'replace','path':'/status','value':'completed'},"
                      "{'op':'add','path':'/output','value':[{'valueString':7}]}]", "Task.output[0].valueString");
    change_refused(t, "[{'op':'add','path':'/note','value':[{'text':'just a note'}]}]", "Task.status");
    /* owners */
    change_refused(t, "[{'op':'replace','path':'/owner/reference','value':'Organization/northpoint'}]",
                   "Task.statusReason");
    change_refused(t, "[{'op':'replace','path':'/owner/reference','value':'Patient/x'},"
                      "{'op':'replace','path':'/statusReason/text','value':'why'}]", "Task.owner.reference");
    change_refused(t, "[{'op':'remove','path':'/owner'}]", "Task.owner");
    change_refused(t, "[{'op':'replace','path':'/owner/reference','value':'Organization/northpoint'},"
                      "{'op':'replace','path':'/statusReason/text','value':'why'},"
                      "{'op':'replace','path':'/status','value':'rejected'}]", "Task.status");
    json_decref(t);

    Handoff__StatusChange ch;
    json_t *oo = NULL;
    json_t *s = json_string("x");
    cr_expect_eq(hx_fhir_task_change(s, s, &ch, &oo), -1);
    cr_expect(has_issue(oo, "Task", "structure"));
    json_decref(oo);
    json_decref(s);
}

/* ---- Communication -------------------------------------------------------------------------------- */

static int comm(const char *text, Handoff__ThreadPost **p, json_t **oo)
{
    json_t *c = js(text);
    int rc = hx_fhir_read_communication(c, p, oo);
    json_decref(c);
    return rc;
}

static void comm_refused(const char *text, const char *expr)
{
    Handoff__ThreadPost *p = (Handoff__ThreadPost *)1;
    json_t *oo = NULL;
    cr_assert_eq(comm(text, &p, &oo), -1, "%s was taken", text);
    cr_expect_null(p);
    cr_expect(has_issue(oo, expr, NULL), "%s: no issue at %s in %s", text, expr, dump(oo));
    every_issue_placed(oo);
    json_decref(oo);
}

#define COMM(extra) "{'resourceType':'Communication','status':'completed','basedOn':[{'reference':'ServiceRequest/" RID "'}]," extra "}"

Test(fhir_communication, reads_posts)
{
    Handoff__ThreadPost *p = NULL;
    json_t *oo = NULL;
    cr_assert_eq(comm(COMM("'payload':[{'contentString':'Seen today, improving.'},"
                           "{'contentAttachment':{'contentType':'application/pdf','title':'notes.pdf','data':'" PDF64 "'}}]"),
                      &p, &oo), 0, "%s", dump(oo));
    cr_expect_str_eq(p->referral_id, RID);
    cr_expect_str_eq(p->kind, "note");
    cr_expect_str_eq(p->text, "Seen today, improving.");
    cr_assert_not_null(p->attachment);
    cr_expect_str_eq(p->attachment->name, "notes.pdf");
    cr_expect_eq(p->attachment->data.len, strlen("%PDF-1.4 discharge note"));
    hx_fhir_post_free(&p);
    cr_expect_null(p);

    cr_assert_eq(comm(COMM("'category':[{'coding':[{'system':'urn:handoff:post-kind','code':'question'}]}],"
                           "'payload':[{'contentString':'Any imaging?'}],'sender':{'reference':'Organization/x'},"
                           "'sent':'2026-11-28T10:00:00Z'"), &p, &oo), 0, "%s", dump(oo));
    cr_expect_str_eq(p->kind, "question");
    hx_fhir_post_free(&p);

    cr_assert_eq(comm(COMM("'category':[{'coding':[{'system':'urn:handoff:post-kind','code':'reply'}]}],"
                           "'inResponseTo':[{'reference':'Communication/P-0123456789abcdef'}],"
                           "'payload':[{'contentString':'X-ray clear.'}]"), &p, &oo), 0, "%s", dump(oo));
    cr_expect_str_eq(p->kind, "reply");
    cr_expect_str_eq(p->in_reply_to, "P-0123456789abcdef");
    hx_fhir_post_free(&p);
}

Test(fhir_communication, refusals)
{
    comm_refused("{'resourceType':'Patient'}", "Communication");
    comm_refused(COMM("'payload':[{'contentString':'x'}],'topic':{'text':'t'}"), "Communication.topic");
    comm_refused("{'resourceType':'Communication','payload':[{'contentString':'x'}]}", "Communication.basedOn");
    comm_refused("{'resourceType':'Communication','basedOn':[{'reference':'Patient/x'}],'payload':[{'contentString':'x'}]}",
                 "Communication.basedOn[0].reference");
    comm_refused(COMM("'status':'in-progress','payload':[{'contentString':'x'}]"), "Communication.status");
    comm_refused(COMM("'category':[{'coding':[{'system':'urn:handoff:post-kind','code':'summary'}]}],"
                      "'payload':[{'contentString':'x'}]"), "Communication.category[0].coding[0].code");
    comm_refused(COMM("'category':[{'coding':[{'system':'urn:handoff:post-kind','code':'memo'}]}],"
                      "'payload':[{'contentString':'x'}]"), "Communication.category[0].coding[0].code");
    comm_refused(COMM("'payload':[{'contentString':''}]"), "Communication.payload[0].contentString");
    comm_refused(COMM("'payload':[{'contentString':5}]"), "Communication.payload[0].contentString");
    comm_refused(COMM("'payload':[{'contentAttachment':{'title':'a.pdf','data':'" PDF64 "'}}]"),
                 "Communication.payload");
    comm_refused(COMM("'payload':[{'contentString':'x'},{'contentAttachment':{'title':'a\\\\b.pdf','data':'" PDF64
                      "'}}]"), "Communication.payload[1].contentAttachment.title");
    comm_refused(COMM("'payload':[{'contentString':'x'},{'contentAttachment':{'data':'" PDF64 "'}}]"),
                 "Communication.payload[1].contentAttachment.title");
    comm_refused(COMM("'payload':[{'contentString':'x'}],'inResponseTo':[{'reference':'Communication/P-0123456789abcdef'}]"),
                 "Communication.inResponseTo");
    comm_refused(COMM("'category':[{'coding':[{'system':'urn:handoff:post-kind','code':'reply'}]}],"
                      "'payload':[{'contentString':'x'}],'inResponseTo':[{'reference':'Communication/Q-1'}]"),
                 "Communication.inResponseTo[0].reference");

    /* text: 4000 bytes are taken, 4001 are not; no NUL */
    char *text = malloc(4002);
    memset(text, 'a', 4001);
    text[4001] = '\0';
    json_t *c = js(COMM("'payload':[{'contentString':''}]"));
    json_t *pay = json_object_get(json_array_get(json_object_get(c, "payload"), 0), "contentString");
    json_string_set(pay, text);
    Handoff__ThreadPost *p = NULL;
    json_t *oo = NULL;
    cr_expect_eq(hx_fhir_read_communication(c, &p, &oo), -1);
    cr_expect(has_issue(oo, "Communication.payload[0].contentString", "value"), "%s", dump(oo));
    json_decref(oo);
    oo = NULL;
    text[4000] = '\0';
    json_string_set(pay, text);
    cr_expect_eq(hx_fhir_read_communication(c, &p, &oo), 0);
    hx_fhir_post_free(&p);
    json_string_setn(pay, "a\0b", 3);
    cr_expect_eq(hx_fhir_read_communication(c, &p, &oo), -1);
    cr_expect(has_issue(oo, "Communication.payload[0].contentString", "structure"), "%s", dump(oo));
    json_decref(oo);
    free(text);

    /* an attachment over the limit */
    char *big = big_base64(262145);
    json_t *att = json_pack("{s:s, s:s}", "title", "big.pdf", "data", big);
    json_array_append_new(json_object_get(c, "payload"), json_pack("{s:o}", "contentAttachment", att));
    json_string_set(pay, "x");
    oo = NULL;
    cr_expect_eq(hx_fhir_read_communication(c, &p, &oo), -1);
    cr_expect(has_issue(oo, "Communication.payload[1].contentAttachment.data", "too-costly"), "%s", dump(oo));
    json_decref(oo);
    free(big);
    json_decref(c);
}

/* ---- Subscription --------------------------------------------------------------------------------- */

#define SUB(channel, extra) \
    "{'resourceType':'Subscription','status':'requested','reason':'EMR sync','criteria':'" HX_FHIR_TOPIC_TASK "'," \
    "'channel':{'type':'rest-hook','endpoint':'https://emr.example.org/hook'" channel "}" extra "}"
#define PAYLOAD_EXT "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"

static void sub_refused(const char *text, bool allow_http, const char *expr)
{
    json_t *in = js(text), *oo = NULL;
    hx_fhir_sub_t s;
    memset(&s, 0x5a, sizeof s);
    cr_assert_eq(hx_fhir_read_subscription(in, allow_http, &s, &oo), -1, "%s was taken", text);
    cr_expect(has_issue(oo, expr, NULL), "%s: no issue at %s in %s", text, expr, dump(oo));
    every_issue_placed(oo);
    cr_expect_str_eq(s.endpoint, "");
    json_decref(oo);
    json_decref(in);
}

Test(fhir_subscription, reads_a_rest_hook)
{
    json_t *in = js(SUB(",'payload':'application/fhir+json','header':['Authorization: Bearer abc'],"
                        "'_payload':{'extension':[{'url':'" PAYLOAD_EXT "','valueCode':'full-resource'}]}",
                        ",'end':'2027-01-01T00:00:00Z','id':'sub-1'"));
    hx_fhir_sub_t s;
    json_t *oo = NULL;
    cr_assert_eq(hx_fhir_read_subscription(in, false, &s, &oo), 0, "%s", dump(oo));
    cr_expect_str_eq(s.topic, HX_FHIR_TOPIC_TASK);
    cr_expect_str_eq(s.endpoint, "https://emr.example.org/hook");
    cr_expect_str_eq(s.header, "Authorization: Bearer abc");
    cr_expect_eq(s.payload, HX_FHIR_PAYLOAD_FULL);
    cr_expect_str_eq(s.status, "requested");
    cr_expect_str_eq(s.reason, "EMR sync");
    cr_expect_str_eq(s.id, "sub-1");
    uint64_t end;
    cr_assert_eq(hx_fhir_parse_instant("2027-01-01T00:00:00Z", &end), 0);
    cr_expect_eq(s.end_ms, end);
    json_decref(in);

    /* defaults: id-only, no header; active from a client is stored as requested; off stays off */
    in = js("{'resourceType':'Subscription','status':'active','criteria':'" HX_FHIR_TOPIC_SERVICE_REQUEST "',"
            "'channel':{'type':'rest-hook','endpoint':'http://127.0.0.1:9000/hook'}}");
    cr_expect_eq(hx_fhir_read_subscription(in, false, &s, &oo), -1, "http:// needs allow_http");
    cr_expect(has_issue(oo, "Subscription.channel.endpoint", "value"));
    json_decref(oo);
    cr_assert_eq(hx_fhir_read_subscription(in, true, &s, &oo), 0, "%s", dump(oo));
    cr_expect_eq(s.payload, HX_FHIR_PAYLOAD_ID_ONLY);
    cr_expect_str_eq(s.header, "");
    cr_expect_str_eq(s.status, "requested");
    cr_expect_eq(s.end_ms, 0);
    json_object_set_new(in, "status", json_string("off"));
    cr_assert_eq(hx_fhir_read_subscription(in, true, &s, &oo), 0);
    cr_expect_str_eq(s.status, "off");
    json_decref(in);
}

Test(fhir_subscription, refusals)
{
    sub_refused("{'resourceType':'Patient'}", false, "Subscription");
    sub_refused(SUB("", ",'criteria':'Task?owner=Organization/x'"), false, "Subscription.criteria");
    sub_refused(SUB("", ",'status':'error'"), false, "Subscription.status");
    sub_refused(SUB("", ",'topic':'x'"), false, "Subscription.topic");
    sub_refused(SUB("", ",'end':'next year'"), false, "Subscription.end");
    sub_refused(SUB(",'type':'websocket'", ""), false, "Subscription.channel.type");
    sub_refused(SUB(",'endpoint':'ftp://x/y'", ""), true, "Subscription.channel.endpoint");
    sub_refused(SUB(",'endpoint':'https://x/a b'", ""), false, "Subscription.channel.endpoint");
    sub_refused(SUB(",'payload':'application/json'", ""), false, "Subscription.channel.payload");
    sub_refused(SUB(",'header':['A: 1','B: 2']", ""), false, "Subscription.channel.header");
    sub_refused(SUB(",'header':['Authorization: x\\r\\nX-Evil: 1']", ""), false, "Subscription.channel.header[0]");
    sub_refused(SUB(",'header':['no colon']", ""), false, "Subscription.channel.header[0]");
    sub_refused(SUB(",'_payload':{'extension':[{'url':'" PAYLOAD_EXT "','valueCode':'everything'}]}", ""), false,
                "Subscription.channel._payload.extension[0].valueCode");
    sub_refused(SUB(",'secret':'x'", ""), false, "Subscription.channel.secret");
    sub_refused("{'resourceType':'Subscription','criteria':'" HX_FHIR_TOPIC_TASK "'}", false, "Subscription.channel");

    json_t *in = js(SUB("", ",'criteria':'x'")), *oo = NULL;
    hx_fhir_sub_t s;
    cr_assert_eq(hx_fhir_read_subscription(in, false, &s, &oo), -1);
    const char *diag = json_string_value(json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "diagnostics"));
    cr_expect(diag && strstr(diag, HX_FHIR_TOPIC_TASK) && strstr(diag, HX_FHIR_TOPIC_SERVICE_REQUEST), "%s", diag);
    json_decref(oo);
    json_decref(in);
}
